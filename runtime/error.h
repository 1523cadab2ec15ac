/* cvm error object: runtime/ and gpu/ never exit; they return a negative
 * value and fill one of these. Callers add context on the way up with
 * cvm_error_prefix(); only supervisor/ decides to log and exit. */
#ifndef CVM_ERROR_H
#define CVM_ERROR_H

#include <stddef.h>

#define CVM_ERROR_MSG_MAX 1024

struct cvm_error {
	int err;                       /* errno, or 0 when not a system error */
	char msg[CVM_ERROR_MSG_MAX];   /* one line, no trailing newline */
};

/* Fill @e and return -1. The errno text is appended when @err != 0. */
int cvm_error_set(struct cvm_error *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend "context: " to the message already in @e; returns -1. */
int cvm_error_prefix(struct cvm_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void cvm_error_clear(struct cvm_error *e);

#endif
