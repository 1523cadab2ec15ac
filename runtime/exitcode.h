#ifndef CVM_EXITCODE_H
#define CVM_EXITCODE_H

/* Shell conventions, as tini and docker use them. */
#define CVM_EXIT_CANNOT_EXEC 126   /* found but not executable */
#define CVM_EXIT_NOT_FOUND 127     /* command not found */
#define CVM_EXIT_SETUP_FAILED 125  /* cvm itself could not start the workload */
#define CVM_EXIT_USAGE 2           /* a bad command line, config or input: fix it and retry */

/* A wait(2) status as an exit code: the code, or 128+signal. */
int cvm_exit_status(int wstatus);

/* What to exit with when execve failed with @err. */
int cvm_exec_failure_status(int err);

/* A short human reason for an execve failure ("not found", "permission denied"). */
const char *cvm_exec_failure_reason(int err);

#endif
