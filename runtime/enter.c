#include "enter.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "envlist.h"
#include "exitcode.h"
#include "fdio.h"
#include "notify.h"
#include "report.h"
#include "seccomp.h"
#include "syscalls.h"
#include "testhook.h"
#include "user.h"

int cvm_enter_confine(bool seccomp, char *const *deny, int notify_sock, struct cvm_error *err)
{
	struct cvm_error e = { 0 };

	if (cvm_caps_bound(err) < 0 || (seccomp && cvm_seccomp_apply(deny, err) < 0))
		return -1;
	if (notify_sock < 0)
		return 0;
	if (cvm_sysinfo_notify_handoff(notify_sock, &e) < 0)
		cvm_report(CVM_REPORT_WARN, "workspace", "sysinfo(2) gives the host's numbers: %s",
			   e.msg);
	close(notify_sock);
	return 0;
}

int cvm_enter_oom_reset(struct cvm_error *err)
{
	return cvm_write_file(AT_FDCWD, "/proc/self/oom_score_adj", "0", err);
}

void cvm_enter_fail(int report_fd, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	msg[0] = (char)status;
	va_start(ap, fmt);
	vsnprintf(msg + 1, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (report_fd < 0)
		cvm_report(CVM_REPORT_ERROR, "workspace", "%s", msg + 1);
	else if (write(report_fd, msg, 1 + strlen(msg + 1)) < 0)
		(void)0;        /* the status says it still */
	_exit(status);
}

/* The terminal becomes the user's, as login makes it, and the controlling
 * one of a new session; else the given stdio. */
static void take_stdio(const struct cvm_enter *e, const struct cvm_user *u)
{
	if (e->tty >= 0) {
		if (fchown(e->tty, u->uid, (gid_t)-1) < 0 || fchmod(e->tty, 0620) < 0)
			cvm_enter_fail(e->report_fd, CVM_EXIT_SETUP_FAILED, "pty owner: %s",
				       strerror(errno));
		setsid();
		if (ioctl(e->tty, TIOCSCTTY, 0) < 0)
			cvm_enter_fail(e->report_fd, CVM_EXIT_SETUP_FAILED,
				       "cannot make the pty the controlling terminal: %s",
				       strerror(errno));
		for (int i = 0; i < 3; i++)
			dup2(e->tty, i);
		return;
	}
	if (e->new_session)
		setsid();
	for (int i = 0; i < 3; i++)
		if (e->stdio[i] >= 0 && dup2(e->stdio[i], i) < 0)
			cvm_enter_fail(e->report_fd, CVM_EXIT_SETUP_FAILED, "stdio: %s",
				       strerror(errno));
}

void cvm_enter_exec(const struct cvm_enter *e)
{
	struct cvm_error err = { 0 };
	struct cvm_user u;
	const char *dir = e->workdir;
	char **env = e->envp;
	sigset_t none;

	if (cvm_user_resolve(AT_FDCWD, e->user, &u, &err) < 0)
		cvm_enter_fail(e->report_fd, CVM_EXIT_SETUP_FAILED, "user %s: %s", e->user, err.msg);
	take_stdio(e, &u);
	if (setgroups(u.n_groups, u.groups) < 0 || setresgid(u.gid, u.gid, u.gid) < 0 ||
	    setresuid(u.uid, u.uid, u.uid) < 0)
		cvm_enter_fail(e->report_fd, CVM_EXIT_SETUP_FAILED, "become user %s: %s", e->user,
			       strerror(errno));
	if (!dir)
		dir = access(u.home, X_OK) == 0 ? u.home : "/";
	if (chdir(dir) < 0)
		cvm_enter_fail(e->report_fd, CVM_EXIT_SETUP_FAILED, "workdir %s: %s", dir,
			       strerror(errno));
	/* The process is about to exec: a copy that fails to grow is left
	 * as it was, and nothing needs freeing. */
	if (!cvm_env_get(env, "HOME"))
		cvm_env_set(&env, "HOME", u.home);
	if (!cvm_env_get(env, "USER"))
		cvm_env_set(&env, "USER", u.name);
	/* Ignored dispositions survive execve (catatonit leaks them): reset all. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sys_close_range(3, ~0U, CVM_CLOSE_RANGE_CLOEXEC);
	/* Test hook, read from cvm's own (outer) environment: hold the command
	 * here, inside the workspace but not yet exec'd, so that the escape
	 * suite can attack a cvm process in that state every time. */
	const char *hold = cvm_test_hook("CVM_DEBUG_JOIN_HOLD_MS");
	if (hold)
		usleep((useconds_t)atoi(hold) * 1000);
	environ = env;
	cvm_enter_execvp(e->report_fd, e->argv);
}

void cvm_enter_execvp(int report_fd, char *const argv[])
{
	execvp(argv[0], argv);
	int x = errno;
	cvm_enter_fail(report_fd, cvm_exec_failure_status(x), "cannot run '%s': %s (%s)", argv[0],
		       strerror(x), cvm_exec_failure_reason(x));
}
