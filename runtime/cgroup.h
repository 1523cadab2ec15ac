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

/* cgroup v1 next to cgroup2 (runtime/cgroup1.c says why): the workspace's
 * own group in each v1 hierarchy, which cvm joins before the workspace is
 * cloned. */
#define CVM_CGROUP_V1_MAX 16

struct cvm_cg1 {
	char opts[128];         /* the hierarchy, as /proc/self/cgroup names it:
				 * "cpu,cpuacct", "memory", "name=systemd" */
	int parent_fd;          /* cvm's group there (on a detached mount), or -1 */
	bool made;              /* CVM_CGROUP_WORKSPACE is there, ours to remove */
};

struct cvm_cgroup_v1 {
	struct cvm_cg1 h[CVM_CGROUP_V1_MAX];
	size_t n;
};

struct cvm_cgroup {
	char root[4096];        /* our cgroup (normally the cgroup namespace root) */
	char ws[4200];          /* root/workspace */
	char controllers[256];  /* what root/cgroup.controllers offers */
	int ws_fd;              /* O_DIRECTORY fd of ws, for CLONE_INTO_CGROUP */
	struct cvm_cgroup_v1 v1;
};

/* What cvm needs, and how to get it (for messages). */
#define CVM_CGROUP_NEEDS "cgroup v2, the unified hierarchy (Linux 5.14 or later, as cvm uses " \
	"cgroup.kill and CLONE_INTO_CGROUP), mounted at /sys/fs/cgroup and containing cvm's " \
	"own cgroup"
#define CVM_CGROUP_FIX_V2 "boot the node with systemd.unified_cgroup_hierarchy=1 on its " \
	"kernel command line (the default since systemd 247: Debian 11, Ubuntu 21.10, RHEL 9, " \
	"Amazon Linux 2023); with Docker, run on such a cgroup v2 host, where " \
	"--cgroupns=private is the default"
#define CVM_CGROUP_FIX_BIND "give the container its own cgroup at /sys/fs/cgroup: a private " \
	"cgroup namespace with cgroup2 mounted there (docker --cgroupns=private, the default " \
	"on cgroup v2), not a bind of another group's subtree"

/* The host's cgroups, as this process sees them. */
enum cvm_cg_layout {
	CVM_CG_UNIFIED,         /* cgroup2 only */
	CVM_CG_HYBRID,          /* v1 hierarchies next to a cgroup2 mount: cvm runs, the
				 * limits of controllers bound to v1 cannot apply */
	CVM_CG_V1_ONLY,         /* v1 hierarchies, no cgroup2 mount: refused */
	CVM_CG_NONE,            /* no cgroup filesystem at all: refused */
};

struct cvm_cg_host {
	enum cvm_cg_layout layout;
	char mount[4096];       /* the visible cgroup2 mount point, or "" */
	char self[4096];        /* the 0:: path of /proc/self/cgroup */
	bool has_self;          /* there is a 0:: line */
	bool self_found;        /* mount + self is a directory: the mount holds our group
				 * (false: none, or a bind of another subtree) */
	char v1[512];           /* the v1 hierarchies of /proc/self/cgroup, space-separated
				 * ("cpu,cpuacct memory name=systemd"), or "" */
	char v1_mount[4096];    /* where one v1 hierarchy is mounted, or "" */
};

/* Read @mountinfo and @proc_cgroup (paths, so tests can hand in
 * fixtures). @live: also check with statfs that a cgroup2 mount point is
 * still cgroup2 (not hidden by a later mount over it). */
void cvm_cgroup_host(const char *mountinfo, const char *proc_cgroup, bool live,
		     struct cvm_cg_host *h);

/* One line: what @h is ("cgroup v1 only here: ...", "the cgroup2 mount
 * at ... does not contain cvm's own cgroup ...", "hybrid: ..."). */
void cvm_cgroup_host_why(const struct cvm_cg_host *h, char *out, size_t len);

/* The visible cgroup2 mount point (a container's own /sys/fs/cgroup over
 * the host's hybrid .../unified). 0 or -1. */
int cvm_cgroup_mount(char *out, size_t len);

/* Where our own cgroup lives in the cgroup2 mount: "<mount><path>". When
 * there is none, @err says what the host is, what cvm needs and how to
 * get it. */
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
 * earlier run left it); on a hybrid host, cvm into CVM_CGROUP_WORKSPACE
 * under its group in every v1 hierarchy (cvm_cgroup_v1_enter). Each thing
 * that is missing is a warning line (runtime/report.h, as "cgroup"). */
int cvm_cgroup_setup(struct cvm_cgroup *cg, struct cvm_error *err);

/* Write the limits. A limit whose controller is missing is an error when
 * explicit, else a warning line. */
int cvm_cgroup_limits(struct cvm_cgroup *cg, const struct cvm_cg_limit *l, size_t n,
		      struct cvm_error *err);

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

/* For each v1 hierarchy of @proc_cgroup ("/proc/self/cgroup"): make
 * CVM_CGROUP_WORKSPACE under this process's group there (kept if an
 * earlier run left it), a cpuset's CPUs and nodes copied from the parent,
 * and move this process into it. The groups stay outer root's. */
int cvm_cgroup_v1_enter(struct cvm_cgroup_v1 *v, const char *proc_cgroup, struct cvm_error *err);

/* For cvm check: what cvm_cgroup_v1_enter needs, tried with a scratch
 * cvm-check.XXXXXX group in each hierarchy that nothing joins, removed
 * again. *@n: the hierarchies done. */
int cvm_cgroup_v1_probe(const char *proc_cgroup, size_t *n, struct cvm_error *err);

/* Move back to the parent groups and remove what cvm_cgroup_v1_enter made. */
void cvm_cgroup_v1_leave(struct cvm_cgroup_v1 *v);

/* rmdir @name at @dirfd, retried while the kernel still sees it busy (a
 * task that just left); 0 also when it is gone already. */
int cvm_cgroup_rmdir_at(int dirfd, const char *name);

/* Kill, wait for it to empty, remove the group and any below it, and the
 * v1 groups. */
void cvm_cgroup_remove(struct cvm_cgroup *cg);

#endif
