/* Joining a running workspace from outside (cvm exec). */
#ifndef CVM_JOIN_H
#define CVM_JOIN_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* A running workspace, as whatever joins it needs it: PID 1 fills it once
 * the workspace runs, and cvm exec (the control socket's handlers) and the
 * bootstrap carry this one handle. */
struct cvm_ws_handle {
	int pidfd;              /* of the workspace's PID 1 */
	pid_t pid;
	bool join_net;          /* it has its own network namespace */
	char **envp;            /* its environment */
	const char *user;       /* [workspace] user: the default */
	const char *workdir;    /* [workspace] workdir, or NULL */
	bool seccomp;           /* commands get the profile, as its init has */
	char *const *seccomp_deny;      /* and the config's refusals */
	int notify_sock;        /* sysinfo(2) listeners go there (runtime/notify.h), or -1 */
};

/* Move the calling process into the workspace @ws: its user, mount, pid,
 * uts, ipc and cgroup namespaces (and net, when it has its own). *@cgroup_procs_fd gets the workspace group's
 * cgroup.procs, opened before, for cvm_join_spawn to move the command in. The caller must be a
 * disposable, single-threaded process of outer root: it becomes
 * non-dumpable first, because it still holds the outer cvm's memory and
 * inner root must not ptrace it or read its /proc files (the runc
 * CVE-2019-5736 class). Afterwards "/" is the workspace's root; the pid
 * namespace applies to children only. */
int cvm_join_enter(const struct cvm_ws_handle *ws, int *cgroup_procs_fd, struct cvm_error *err);

/* Whether the caller and @pid share namespace @ns ("net", ...). Ask before
 * cvm drops CAP_SYS_PTRACE: the workspace's init may be non-dumpable. */
bool cvm_join_shares_ns(pid_t pid, const char *ns);

struct cvm_join_cmd {
	const struct cvm_ws_handle *ws;
	char *const *argv;
	char **envp;            /* NULL: the workspace's; HOME and USER are added if missing */
	const char *user;       /* name, uid, uid:gid; NULL: the workspace's user */
	const char *workdir;    /* NULL: the workspace's, else the user's home if it exists, else / */
	int stdio[3];           /* when there is no pty */
	int pty_slave;          /* -1, or the pty the command gets as its terminal */
	int cgroup_procs_fd;    /* from cvm_join_enter, or -1 */
};

/* After cvm_join_enter: start the command inside. Errors before exec come
 * back as text on *@err_fd (read it to EOF; empty: exec succeeded) with
 * the exit status the caller should report (125/126/127) as the first
 * byte. Returns the command's pid. */
pid_t cvm_join_spawn(const struct cvm_join_cmd *cmd, int *err_fd, struct cvm_error *err);

#endif
