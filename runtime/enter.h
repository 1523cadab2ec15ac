/* Entering the workspace: the last steps of every process that starts a
 * command inside it, whoever started it: the command under cvm's own init
 * (cvm run --rootfs ... -- CMD), a `cvm exec` command, the bootstrap. One
 * way in, so that they cannot drift apart (user, groups, HOME, workdir,
 * terminal, signals, exit status of a failed exec). */
#ifndef CVM_ENTER_H
#define CVM_ENTER_H

#include <stdbool.h>

#include "error.h"

/* What everything inside runs under, applied before anything of the image
 * runs and inherited by all it starts: the bounding set (runtime/caps.h),
 * the seccomp profile with @deny's refusals when @seccomp, and sysinfo(2)
 * answered by the /proc server through the listener handed over on
 * @notify_sock (-1: none; closed here). A failed handover is a warning:
 * sysinfo(2) then gives the host's numbers. 0, or -1 with @err. */
int cvm_enter_confine(bool seccomp, char *const *deny, int notify_sock, struct cvm_error *err);

/* What comes into the workspace (its init, a joining cvm exec) is as
 * killable as anything inside: oom_score_adj back to 0 from cvm's -1000.
 * A failure is fatal to the caller: a process left shielded inside would
 * let the workspace's root dodge the OOM killer. 0, or -1 with @err. */
int cvm_enter_oom_reset(struct cvm_error *err);

struct cvm_enter {
	char *const *argv;
	char **envp;            /* HOME and USER are added when missing */
	const char *user;       /* name, uid, uid:gid */
	const char *workdir;    /* NULL: the user's home if it exists, else / */
	bool new_session;       /* setsid(): a command apart from whoever forked it */
	int tty;                /* -1, or a terminal: made the user's, the
				 * controlling one (a new session) and stdio */
	int stdio[3];           /* without a tty: dup2'd onto 0, 1, 2 (-1: keep) */
	int report_fd;          /* where a failure goes: -1, the log; else a
				 * status byte then the text (cvm_enter_fail) */
};

/* In the process that becomes the command (single-threaded, in the
 * workspace's namespaces, root inside, confined): become @e->user, go to
 * the workdir, reset signals, close what is not stdio, and exec. Never
 * returns; a failure ends the process with 125 (setup), 126 (cannot run)
 * or 127 (not found), said on @e->report_fd. */
__attribute__((noreturn)) void cvm_enter_exec(const struct cvm_enter *e);

/* execvp(@argv) with the environ as it is; when that fails, cvm_enter_fail()
 * with 127 (not found) or 126 (cannot run) and why (runtime/exitcode.h):
 * the one exec of every process cvm starts (cvm_enter_exec's, the inner
 * init's, cvm run's plain command). */
__attribute__((noreturn)) void cvm_enter_execvp(int report_fd, char *const argv[]);

/* Report a failure before exec and end with @status: on @report_fd (>= 0)
 * as one write of the status byte and the text, which the parent reads to
 * EOF; else as a log line (runtime/report.h). */
__attribute__((noreturn)) void cvm_enter_fail(int report_fd, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
