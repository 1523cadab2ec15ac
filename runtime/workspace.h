/* Start a workspace: new user, mount, pid, uts, ipc and cgroup namespaces
 * over an idmapped overlay rootfs, with every system mount in place. */
#ifndef CVM_WORKSPACE_H
#define CVM_WORKSPACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "mounts.h"

struct cvm_ws_spec {
	const char *rootfs;             /* unpacked image dir (absolute) */
	const char *state;              /* persistent dir (absolute), made if missing */
	uint32_t uid_base;
	uint32_t uid_count;
	const char *hostname;
	bool dev_fuse;
	bool dev_tun;
	int console_fd;                 /* terminal for /dev/console, or -1 */
	int cgroup_fd;                  /* the workspace's cgroup (CLONE_INTO_CGROUP), or -1 */
	int procfs_fd;                  /* /dev/fuse of the running /proc server, or -1 */
	char *const *procfs_files;      /* which of its files to bind; NULL or empty: all */
	int init_fd;                    /* the one outer fd the init function keeps, as fd 3
					 * (close-on-exec), or -1 */
	const struct cvm_ws_mount *mounts;
	size_t n_mounts;
	/* One line of news from the outer side (the fallback copy's progress). */
	void (*note)(const char *line, void *arg);
	void *note_arg;
};

/* Runs as PID 1 of the workspace, root of its user namespace, with "/" the
 * workspace root. Its return value is the workspace's exit code. */
typedef int (*cvm_ws_init_fn)(void *arg);

struct cvm_ws {
	pid_t pid;      /* the workspace's PID 1, as the outer side sees it */
	int pidfd;
};

/* Build and start the workspace; @init runs once everything is mounted.
 * Returns 0, or -1 with nothing left running. */
int cvm_ws_start(const struct cvm_ws_spec *s, cvm_ws_init_fn init, void *arg,
		 struct cvm_ws *out, struct cvm_error *err);

#endif
