/* cvm check: a preflight report, one line per requirement. The probes are
 * in runtime/hostcheck.c; this judges them, words them and picks the exit
 * code (0: cvm can run, warnings or not; 1: something essential missing). */
#ifndef CVM_CHECK_H
#define CVM_CHECK_H

#include <stddef.h>

/* Ordered by severity: a report's verdict is its worst line. */
enum cvm_check_status {
	CVM_CHECK_OK = 0,
	CVM_CHECK_INFO,         /* nothing to judge (not asked for, or informational) */
	CVM_CHECK_WARN,         /* cvm runs, with less (and says what) */
	CVM_CHECK_MISSING,      /* cvm cannot run */
};

const char *cvm_check_status_name(enum cvm_check_status s);

/* What the kernel release (uname -r) alone says: which of the features cvm
 * relies on it predates. @why gets the reason, *@fix what to do (NULL when
 * nothing is to be done). */
enum cvm_check_status cvm_check_kernel(const char *release, char *why, size_t len,
				       const char **fix);

#endif
