#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "enter.h"
#include "exitcode.h"
#include "join.h"

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

int cvm_join_enter(const struct cvm_ws_handle *ws, int *cgroup_procs_fd, struct cvm_error *err)
{
	int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
		    CLONE_NEWCGROUP;

	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		return cvm_error_set(err, errno, "make the joining process non-dumpable");
	*cgroup_procs_fd = open_cgroup_procs(ws->pid);
	if (cvm_enter_oom_reset(err) < 0)
		return -1;
	if (ws->join_net)
		flags |= CLONE_NEWNET;
	if (setns(ws->pidfd, flags) < 0)
		return cvm_error_set(err, errno, "join the workspace's namespaces");
	/* Become the workspace's root: what we create (a pty) is then its
	 * root's, not owned by an id that does not exist inside. A change of
	 * ids resets dumpability to fs.suid_dumpable, so clear it again. */
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 ||
	    prctl(PR_SET_DUMPABLE, 0) < 0)
		return cvm_error_set(err, errno, "become the workspace's root");
	return 0;
}

/* The command's process: confined as the workspace's init is (a process
 * that joined from outside is not covered by the init's filter and
 * listener), then in as everything enters. */
__attribute__((noreturn)) static void child_exec(const struct cvm_join_cmd *c, int efd)
{
	struct cvm_error err = { 0 };
	const struct cvm_ws_handle *ws = c->ws;
	struct cvm_enter e = {
		.argv = c->argv, .envp = c->envp ? c->envp : ws->envp,
		.user = c->user ? c->user : ws->user, .workdir = c->workdir ? c->workdir : ws->workdir,
		.new_session = true, .tty = c->pty_slave,
		.stdio = { c->stdio[0], c->stdio[1], c->stdio[2] }, .report_fd = efd,
	};

	if (cvm_enter_confine(ws->seccomp, ws->seccomp_deny, ws->notify_sock, &err) < 0)
		cvm_enter_fail(efd, CVM_EXIT_SETUP_FAILED, "%s", err.msg);
	cvm_enter_exec(&e);
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
