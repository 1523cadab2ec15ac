/* cgroup v2 for the workspace: cvm moves itself into a leaf, enables the
 * controllers, and makes a delegated group for the workspace with the
 * limits written by outer root. */
#ifndef CVM_CGROUP_H
#define CVM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define CVM_CGROUP_SUPERVISOR "cvm.supervisor"
#define CVM_CGROUP_WORKSPACE "workspace"

/* One limit file in the workspace group, e.g. { "memory.max", "67108864" }. */
struct cvm_cg_limit {
	const char *key;        /* config key, for messages: "memory" */
	const char *file;       /* "memory.max" */
	char value[64];
	bool explicit_;         /* set by the user (not "auto"): missing controller is an error */
};

struct cvm_cgroup {
	char root[4096];        /* our cgroup (normally the cgroup namespace root) */
	char ws[4200];          /* root/workspace */
	char controllers[256];  /* what root/cgroup.controllers offers */
	int ws_fd;              /* O_DIRECTORY fd of ws, for CLONE_INTO_CGROUP */
};

/* The visible cgroup2 mount point (a container's own /sys/fs/cgroup over
 * the host's hybrid .../unified). 0 or -1. */
int cvm_cgroup_mount(char *out, size_t len);

/* Where our own cgroup lives in the cgroup2 mount: "<mount><path>". */
int cvm_cgroup_self(char *out, size_t len, struct cvm_error *err);

/* Is this process in the host's root cgroup (the initial cgroup namespace's
 * "/")? Every process of the machine is there, and cvm must not rearrange
 * it (unshare --pid from a shell on a host). */
bool cvm_cgroup_in_host_root(void);

/* May cvm, when it is not PID 1, take its cgroup over as PID 1 does?
 * Under `docker run --init` (tini is PID 1, cvm its child) or an entrypoint
 * shell that does not exec, the container's cgroup holds cvm and its
 * ancestors only, and cvm_cgroup_setup moves them all into cvm's leaf, as
 * it moves a runtime's leftovers when cvm is PID 1. 1: yes, every process
 * of the group is cvm or an ancestor of cvm up to PID 1 of its own pid
 * namespace; 0: no, @why (len bytes) says which process is in the way;
 * -1: not in a container (the host's pid namespace): never. */
int cvm_cgroup_only_ancestors(char *why, size_t len);

/* The layout: cvm into root/cvm.supervisor, every available controller
 * enabled for the children, root/workspace made (emptied first if an
 * earlier run left it). @note gets one line per thing that is missing. */
int cvm_cgroup_setup(struct cvm_cgroup *cg, void (*note)(const char *line, void *arg),
		     void *arg, struct cvm_error *err);

/* Write the limits. A limit whose controller is missing is an error when
 * explicit, else a note. */
int cvm_cgroup_limits(struct cvm_cgroup *cg, const struct cvm_cg_limit *l, size_t n,
		      void (*note)(const char *line, void *arg), void *arg, struct cvm_error *err);

/* Hand the group to the workspace's root (outer @uid/@gid): the directory
 * and cgroup.procs, cgroup.subtree_control, cgroup.threads, as the cgroup v2
 * delegation rules say. Limit files stay outer root's. */
int cvm_cgroup_delegate(struct cvm_cgroup *cg, uid_t uid, gid_t gid, struct cvm_error *err);

/* Read DIR/FILE whole (a cgroup file is small: up to @len - 1 bytes). */
int cvm_cgroup_read_at(const char *dir, const char *file, char *buf, size_t len);

/* Read a file of the workspace group (trailing newline dropped). */
int cvm_cgroup_read(const struct cvm_cgroup *cg, const char *file, char *buf, size_t len);

/* SIGKILL everything in the workspace group (cgroup.kill). */
int cvm_cgroup_kill(const struct cvm_cgroup *cg);

/* Kill, wait for it to empty, remove the group and any below it. */
void cvm_cgroup_remove(struct cvm_cgroup *cg);

#endif
