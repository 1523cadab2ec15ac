/* Start a workspace: new user, mount, pid, uts, ipc and cgroup namespaces
 * over an idmapped overlay rootfs, with every system mount in place. */
#ifndef CVM_WORKSPACE_H
#define CVM_WORKSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "mounts.h"

/* A file cvm writes into the rootfs (resolv.conf, hosts). */
struct cvm_ws_write {
	const char *path;       /* absolute, inside */
	const char *content;
};

/* Where the init function finds spec.init_fd. */
#define CVM_WS_INIT_FD 3

/* The most lower dirs overlayfs stacks (OVL_MAX_STACK in fs/overlayfs). */
#define CVM_WS_MAX_LAYERS 500

struct cvm_ws_spec {
	const char *rootfs;             /* unpacked image dir (absolute), for messages */
	int rootfs_fd;                  /* O_PATH of it: the layer is made from this fd */
	/* Or the image as layer dirs (absolute, bottom first; image/layer.c's
	 * CVM_LAYER_OVERLAY form: whiteouts as 0/0 char devices, opaque dirs
	 * marked trusted.overlay.opaque), each idmapped and stacked as a lower
	 * dir of the overlay, no copy. 1..CVM_WS_MAX_LAYERS of them; when
	 * n_layers > 0, rootfs is not used. Should one not be idmappable,
	 * they are merged once into STATE/rootfs (the copy path). */
	char *const *layers;
	size_t n_layers;
	const char *state;              /* persistent dir (absolute), made if missing */
	bool copy_rootfs;               /* copy @rootfs once into STATE/rootfs even where it
					 * could be idmapped ([workspace] idmap = off) */
	uint32_t uid_base;
	uint32_t uid_count;
	const char *hostname;
	bool dev_fuse;
	bool dev_tun;
	bool console;                   /* a pty of the workspace's devpts as /dev/console
					 * and the init's stdin, stdout and stderr (its
					 * controlling terminal); the master comes back in
					 * cvm_ws.console, for the caller to relay */
	uint16_t console_rows, console_cols;    /* its first size (0: none) */
	int cgroup_fd;                  /* the workspace's cgroup (CLONE_INTO_CGROUP), or -1 */
	int procfs_fd;                  /* /dev/fuse of the running /proc server, or -1 */
	char *const *procfs_files;      /* which of its files to bind; NULL or empty: all */
	int init_fd;                    /* the one outer fd the init function keeps, as
					 * CVM_WS_INIT_FD (close-on-exec), or -1 */
	const struct cvm_ws_mount *mounts;
	size_t n_mounts;
	const struct cvm_ws_extras *extras;     /* GPU nodes, files, links; or NULL */
	/* Dirs inside (absolute) bound from STATE/engines/<escaped path>: a
	 * real filesystem for nested engines' overlay2, kept across restarts. */
	char *const *engine_dirs;
	size_t n_engine_dirs;
	/* Files written into the rootfs at each start (through the overlay,
	 * so they persist; a symlink in their place is replaced). */
	const struct cvm_ws_write *writes;
	size_t n_writes;
	/* A network namespace of its own (owned by the workspace's user
	 * namespace): cvm_ws_create() hands back an fd of it, for the caller
	 * to set up as outer root before cvm_ws_go(). false: the outer one. */
	bool netns;
};
/* News from the outer side (the fallback copy's progress, a kernel without
 * CLONE_INTO_CGROUP) goes out through runtime/report.h, as "workspace". */

/* Runs as PID 1 of the workspace, root of its user namespace, with "/" the
 * workspace root. Its return value is the workspace's exit code. */
typedef int (*cvm_ws_init_fn)(void *arg);

/* A workspace in two steps, so that the caller does its part in between
 * without a callback: cvm_ws_create() clones C into its namespaces, writes
 * its id maps and leaves it waiting; the caller sets up what needs C's
 * namespaces (the network, on @netns_fd); cvm_ws_go() builds the rootfs and
 * lets C run the init. cvm_ws_close() ends it all, in any state. */
struct cvm_ws {
	pid_t pid;      /* the workspace's PID 1, as the outer side sees it */
	int pidfd;
	int console;    /* the console's pty master (spec.console), or -1 */
	int netns_fd;   /* C's network namespace (spec.netns) until cvm_ws_go, or -1 */
	int sock;       /* to C until its go (private) */
	int procfs_mfd; /* the /proc server's FUSE mount, detached, until go (private) */
};

#define CVM_WS_NONE ((struct cvm_ws){ .pid = -1, .pidfd = -1, .console = -1, .netns_fd = -1, \
				      .sock = -1, .procfs_mfd = -1 })

/* The name under STATE/engines/ of the engine dir @path ("/var/lib/docker"
 * -> "var-lib-docker"; '-' and '\\' escaped as \x2d and \x5c, systemd's way,
 * so that different paths never share a dir). */
void cvm_ws_engine_dir_name(const char *path, char *buf, size_t len);

/* How many layer dirs (spec.layers) this kernel's overlay stacks:
 * CVM_WS_MAX_LAYERS where it takes the lowerdir+ option (Linux 6.8), else
 * as many as one lowerdir option's 255 bytes name (88). More must be
 * flattened (image/layer.h: cvm_layers_flatten). */
size_t cvm_ws_max_layers(void);

/* The image of @layers (bottom first, spec.layers' form) as the workspace
 * will see it: a detached read-only overlay of them (the layer dir itself
 * when there is one), attached nowhere, for looking into with openat (the
 * plan's probes: the init, systemd, the GPU library dirs). An fd, or -1. */
int cvm_ws_layers_view(char *const *layers, size_t n, struct cvm_error *err);


/* Clone C (which will run @init once everything is mounted) with its id
 * maps written; @ws from CVM_WS_NONE. 0, or -1 with nothing left running. */
int cvm_ws_create(const struct cvm_ws_spec *s, cvm_ws_init_fn init, void *arg,
		  struct cvm_ws *ws, struct cvm_error *err);

/* Build the workspace of @ws (from cvm_ws_create, with @s the same spec)
 * and let C go; returns once C is in its root (a join before that would
 * land in the outer filesystem). 0, or -1 with nothing left running. After
 * this @ws holds only pid, pidfd and console. */
int cvm_ws_go(const struct cvm_ws_spec *s, struct cvm_ws *ws, struct cvm_error *err);

/* Close what @ws holds; C dies too unless it got its go (after that it is
 * the caller's to stop and reap). Idempotent: every exit path may call it. */
void cvm_ws_close(struct cvm_ws *ws);

/* The rootfs recipe alone (cvm_ws_go uses it; cvm check probes with
 * it). In the caller's mount namespace, which must be private and
 * disposable: a scratch tmpfs over @s->state holding the idmapped layers
 * (@lower_fd, or STATE/rootfs of @state_fd when -1) and the writable
 * overlay at "root", the new cwd. The caller then acts with the file ids of
 * the workspace's root (s->uid_base), as the builder does. */
int cvm_ws_mount_rootfs(const struct cvm_ws_spec *s, int lower_fd, int state_fd,
			struct cvm_error *err);

#endif
