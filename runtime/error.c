#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cvm_error_set(struct cvm_error *e, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!e)
		return -1;
	e->err = err;
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (err && (size_t)n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(err));
	return -1;
}

int cvm_error_prefix(struct cvm_error *e, const char *fmt, ...)
{
	char prefix[CVM_ERROR_MSG_MAX / 2], old[CVM_ERROR_MSG_MAX];
	va_list ap;

	if (!e)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* truncation is fine: the start of the message is the useful part */
	if (snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old) < 0)
		e->msg[0] = '\0';
	return -1;
}

void cvm_error_clear(struct cvm_error *e)
{
	if (e) {
		e->err = 0;
		e->msg[0] = '\0';
	}
}
