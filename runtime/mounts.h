/* The mounts inside a workspace rootfs: /proc, /sys, /dev, /run, /tmp, the
 * masked and read-only paths, and the user's idmapped volumes. */
#ifndef CVM_MOUNTS_H
#define CVM_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct cvm_ws_mount {
	const char *name;       /* for messages: [mount "NAME"] */
	const char *source;     /* absolute outer path */
	const char *target;     /* absolute path inside */
	bool readonly;
};

/* Extra pieces from outside (the GPU plan): character devices recreated
 * under /dev, regular files bound read-only, symlinks made in the rootfs. */
struct cvm_ws_node {
	const char *outer;      /* the outer container's node, for messages */
	const char *inner;      /* relative to /dev: nvidia0, dri/renderD128 */
	dev_t rdev;
	mode_t mode;            /* permission bits */
	uid_t uid;              /* outer owner; shown inside as the same id */
	gid_t gid;
};

struct cvm_ws_file {
	const char *source;     /* absolute outer path of a regular file */
	const char *target;     /* absolute path inside */
};

struct cvm_ws_link {
	const char *path;       /* absolute path inside */
	const char *target;     /* what it points to */
};

struct cvm_ws_extras {
	const struct cvm_ws_node *nodes;
	size_t n_nodes;
	const struct cvm_ws_file *files;
	size_t n_files;
	const struct cvm_ws_link *links;
	size_t n_links;
};

struct cvm_mounts_spec {
	uint32_t id_base;       /* outer id of the workspace's root */
	uint32_t id_count;      /* size of the workspace's id range */
	int userns_fd;          /* the workspace's user namespace, for idmaps */
	bool dev_fuse;
	bool dev_tun;
	bool own_netns;         /* the workspace has its own network namespace */
	const struct cvm_ws_mount *mounts;
	size_t n_mounts;
	const struct cvm_ws_extras *extras;     /* NULL: none */
};

/* Build every mount under @root_fd. Runs as outer root in the workspace's
 * (still outer-owned) mount namespace, from inside its pid and ipc
 * namespaces, so that the user namespace later sees them all locked. */
int cvm_mount_system(int root_fd, const struct cvm_mounts_spec *s, struct cvm_error *err);

/* The workspace's console: a new pty of the devpts at /dev/pts under
 * @root_fd (the workspace's own instance, so the terminal is the
 * workspace's and nothing of the outer terminal is reachable inside), its
 * slave bound on /dev/console, @rows x @cols in size (0: unset); both
 * ends come back. Run after
 * cvm_mount_system, with the file ids of the workspace's root (the slave is
 * then owned by root inside). */
int cvm_mount_console(int root_fd, uint16_t rows, uint16_t cols, int *master, int *slave,
		      struct cvm_error *err);

/* The other end of the new pty whose master is @master (just opened from a
 * ptmx): unlocked, the slave opened from the master itself (TIOCGPTPEER:
 * no path lookup, so nothing in the workspace can hand over another
 * file), @rows x @cols in size when both are set. The slave (close-on-exec,
 * not the controlling terminal yet), or -1 with @err. */
int cvm_pty_slave(int master, uint16_t rows, uint16_t cols, struct cvm_error *err);

/* A detached mount of a new @fstype instance with "key=value" / "flag"
 * @options (NULL-terminated) and MOUNT_ATTR_* @attr. Kernel messages from
 * the fs context end up in @err. */
int cvm_fs_new(const char *fstype, const char *const *options, uint64_t attr,
	       struct cvm_error *err);

/* Attach the detached mount @mfd on @path inside @root_fd, creating the
 * mount point (dir or file as @want_type says) when missing. */
int cvm_mount_at(int mfd, int root_fd, const char *path, unsigned want_type,
		 struct cvm_error *err);

#endif
