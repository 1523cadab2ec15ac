#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "join.h"
#include "caps.h"
#include "notify.h"
#include "seccomp.h"
#include "syscalls.h"
#include "testhook.h"
#include "user.h"

/* The workspace's cgroup.procs, opened now, while we still see the outer
 * hierarchy: the command is moved in through it after fork (a write
 * checks the opener's credentials and cgroup namespace). -1 if there is
 * none. */
static int open_cgroup_procs(pid_t ws_pid)
{
	char path[8300], line[4096], mnt[4096];
	cleanup_file FILE *cg = NULL;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)ws_pid);
	cg = fopen(path, "re");
	if (!cg || cvm_cgroup_mount(mnt, sizeof(mnt)) < 0)
		return -1;
	while (fgets(line, sizeof(line), cg)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, sizeof(path), "%s%s/cgroup.procs", mnt, line + 3);
		return open(path, O_WRONLY | O_CLOEXEC);
	}
	return -1;
}

bool cvm_join_shares_ns(pid_t pid, const char *ns)
{
	char a[64], b[64];
	struct stat x, y;

	snprintf(a, sizeof(a), "/proc/self/ns/%s", ns);
	snprintf(b, sizeof(b), "/proc/%d/ns/%s", (int)pid, ns);
	return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_ino == y.st_ino && x.st_dev == y.st_dev;
}

int cvm_join_enter(int ws_pidfd, pid_t ws_pid, bool join_net, int *cgroup_procs_fd,
		   struct cvm_error *err)
{
	int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
		    CLONE_NEWCGROUP;

	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		return cvm_error_set(err, errno, "make the joining process non-dumpable");
	*cgroup_procs_fd = open_cgroup_procs(ws_pid);
	/* cvm runs at -1000; what joins the workspace is as killable as it. */
	int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (oom >= 0) {
		if (write(oom, "0", 1) < 0)
			(void)0;
		close(oom);
	}
	if (join_net)
		flags |= CLONE_NEWNET;
	if (setns(ws_pidfd, flags) < 0)
		return cvm_error_set(err, errno, "join the workspace's namespaces");
	/* Become the workspace's root: what we create (a pty) is then its
	 * root's, not owned by an id that does not exist inside. A change of
	 * ids resets dumpability to fs.suid_dumpable, so clear it again. */
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 ||
	    prctl(PR_SET_DUMPABLE, 0) < 0)
		return cvm_error_set(err, errno, "become the workspace's root");
	return 0;
}

/* In the command's process: report why we are about to fail, and go. */
__attribute__((noreturn)) static void child_fail(int fd, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void child_fail(int fd, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	msg[0] = (char)status;
	va_start(ap, fmt);
	vsnprintf(msg + 1, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (write(fd, msg, 1 + strlen(msg + 1)) < 0)
		_exit(status);
	_exit(status);
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, n) && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

/* A copy of @env with NAME=VALUE added (the child is about to exec: the
 * old array is simply left behind). */
static char **env_add(char **env, const char *name, const char *value)
{
	size_t n = 0;
	char **out, *entry;

	while (env && env[n])
		n++;
	out = calloc(n + 2, sizeof(char *));
	if (!out || asprintf(&entry, "%s=%s", name, value) < 0)
		return env;
	memcpy(out, env, n * sizeof(char *));
	out[n] = entry;
	return out;
}

static void setup_stdio(const struct cvm_join_cmd *c, int efd)
{
	setsid();
	if (c->pty_slave >= 0) {
		if (ioctl(c->pty_slave, TIOCSCTTY, 0) < 0)
			child_fail(efd, 125, "cannot make the pty the controlling terminal: %s",
				   strerror(errno));
		for (int i = 0; i < 3; i++)
			dup2(c->pty_slave, i);
		return;
	}
	for (int i = 0; i < 3; i++)
		if (c->stdio[i] >= 0 && dup2(c->stdio[i], i) < 0)
			child_fail(efd, 125, "stdio: %s", strerror(errno));
}

__attribute__((noreturn)) static void child_exec(const struct cvm_join_cmd *c, int efd)
{
	struct cvm_error err = { 0 };
	struct cvm_user u;
	const char *dir = c->workdir;
	char **env = c->envp;
	sigset_t none;

	if (cvm_caps_bound(&err) < 0 || (c->seccomp && cvm_seccomp_apply(c->seccomp_deny, &err) < 0))
		child_fail(efd, 125, "%s", err.msg);
	/* Its own filter and listener: the inner init's does not cover a
	 * process that joined from outside. */
	if (c->notify_sock >= 0 && cvm_sysinfo_notify_handoff(c->notify_sock, &err) < 0)
		child_fail(efd, 125, "%s", err.msg);
	if (c->notify_sock >= 0)
		close(c->notify_sock);
	if (cvm_user_resolve(AT_FDCWD, c->user, &u, &err) < 0)
		child_fail(efd, 125, "%s", err.msg);
	/* The user's terminal is the user's, as login would do it. */
	if (c->pty_slave >= 0 && (fchown(c->pty_slave, u.uid, (gid_t)-1) < 0 ||
				  fchmod(c->pty_slave, 0620) < 0))
		child_fail(efd, 125, "pty owner: %s", strerror(errno));
	setup_stdio(c, efd);
	if (setgroups(u.n_groups, u.groups) < 0 || setresgid(u.gid, u.gid, u.gid) < 0 ||
	    setresuid(u.uid, u.uid, u.uid) < 0)
		child_fail(efd, 125, "become user %s: %s", c->user, strerror(errno));
	if (!dir)
		dir = access(u.home, X_OK) == 0 ? u.home : "/";
	if (chdir(dir) < 0)
		child_fail(efd, 125, "workdir %s: %s", dir, strerror(errno));
	if (!env_get(env, "HOME"))
		env = env_add(env, "HOME", u.home);
	if (!env_get(env, "USER"))
		env = env_add(env, "USER", u.name);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sys_close_range(3, ~0U, CVM_CLOSE_RANGE_CLOEXEC);
	/* Test hook, read from cvm's own (outer) environment: hold the command
	 * here, inside the workspace but not yet exec'd, so that the escape
	 * suite can attack a cvm process in that state every time. */
	const char *hold = cvm_test_hook("CVM_DEBUG_JOIN_HOLD_MS");
	if (hold)
		usleep((useconds_t)atoi(hold) * 1000);
	environ = env;
	execvp(c->argv[0], c->argv);
	int e = errno;
	child_fail(efd, e == ENOENT || e == ENOTDIR ? 127 : 126, "cannot run '%s': %s", c->argv[0],
		   e == ENOENT ? "command not found" : strerror(e));
}

pid_t cvm_join_spawn(const struct cvm_join_cmd *cmd, int *err_fd, struct cvm_error *err)
{
	int p[2], go[2];
	pid_t pid;
	char buf[16];

	if (pipe2(p, O_CLOEXEC) < 0)
		return cvm_error_set(err, errno, "pipe");
	if (pipe2(go, O_CLOEXEC) < 0) {
		close(p[0]);
		close(p[1]);
		return cvm_error_set(err, errno, "pipe");
	}
	/* Forked here, in cvm's group, and only then moved into the
	 * workspace's: a fork inside a group at pids.max would fail, a move
	 * does not, so cvm exec works even while a fork bomb fills it. */
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		close(go[1]);
		if (read(go[0], buf, 1) != 1)
			_exit(125);
		close(go[0]);
		child_exec(cmd, p[1]);
	}
	close(p[1]);
	close(go[0]);
	if (pid < 0) {
		close(p[0]);
		close(go[1]);
		return cvm_error_set(err, errno, "fork into the workspace");
	}
	if (cmd->cgroup_procs_fd >= 0) {
		int n = snprintf(buf, sizeof(buf), "%d", (int)pid);
		if (write(cmd->cgroup_procs_fd, buf, (size_t)n) < 0)
			(void)0;        /* best effort: it then stays in cvm's group */
	}
	if (write(go[1], "G", 1) != 1)
		(void)0;
	close(go[1]);
	*err_fd = p[0];
	return pid;
}
