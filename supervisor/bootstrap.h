/* The bootstrap script ([bootstrap] script, CODER_BOOTSTRAP_SCRIPT): how the
 * Coder agent starts in a workspace. PID 1 starts it inside once the
 * workspace is up, through the same join path as `cvm exec`, as the
 * configured user; its output goes to cvm's log (component "bootstrap").
 * On stop it is the first to get SIGTERM and the grace period, while the
 * workspace still runs (pid1.h, first_pid). */
#ifndef CVM_BOOTSTRAP_H
#define CVM_BOOTSTRAP_H

#include <stddef.h>
#include <sys/types.h>

#include "pid1.h"
#include "runtime/join.h"

struct cvm_bootstrap {
	pid_t pid;              /* outer pid of /bin/sh -c SCRIPT, our child; -1: none */
	int out_fd;             /* its stdout and stderr, one pipe */
	char buf[4096];         /* the line being read */
	size_t len;
	const char *secret;     /* the agent token: shown as *** if the script prints it */
};

/* Start /bin/sh -c @script inside the workspace @ws, as its user, in its
 * workdir, with its environment. Returns 0, or -1 with @err filled (the
 * workspace runs on; the caller logs it). */
int cvm_bootstrap_start(struct cvm_bootstrap *b, const char *script,
			const struct cvm_ws_handle *ws, struct cvm_error *err);

/* Log its output line by line, and make PID 1 stop it first. */
int cvm_bootstrap_watch(struct cvm_bootstrap *b, struct cvm_pid1 *p);

#endif
