/* Host probes for `cvm check`: each one tries the real thing cvm does and
 * leaves nothing behind. Mounts happen only in forked children with a
 * private mount namespace (they die with it; an idmapped clone is made
 * detached, attached nowhere, and dropped); the one cgroup a probe makes
 * is a uniquely named child of the caller's group, removed before return;
 * files go only into a scratch dir that is removed again. Each returns 0
 * when it works, or -1 with @err saying what failed (err->err: the errno).
 * Judging and wording the results is supervisor/check.c's job. */
#ifndef CVM_HOSTCHECK_H
#define CVM_HOSTCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* ---- pure helpers (unit-tested) ------------------------------------------ */

struct cvm_kver {
	unsigned major, minor, patch;
};

/* "6.18.44-fc-v657", "5.15.0-91-generic", "6.9": 0, or -1 when it does not
 * start with MAJOR.MINOR. */
int cvm_kver_parse(const char *release, struct cvm_kver *v);

/* Is @v at least @major.@minor? */
bool cvm_kver_at_least(const struct cvm_kver *v, unsigned major, unsigned minor);

/* Which cgroup v1 hierarchy holds @controller ("cpu", "memory", "io" is
 * v1's "blkio"; NULL: any), per the mountinfo file @mountinfo: its mount
 * point in @out and 0, or -1 when none does. */
int cvm_hc_v1_mount(const char *mountinfo, const char *controller, char *out, size_t len);

/* @path itself when it exists, else its nearest existing ancestor. */
int cvm_hc_existing(const char *path, char *out, size_t len);

/* ---- probes of the running kernel ---------------------------------------- */

/* /proc/sys/user/max_user_namespaces, or -1 (no such file: no user ns). */
long cvm_hc_max_userns(void);

/* A forked child makes a user namespace (unshare(CLONE_NEWUSER)). */
int cvm_hc_userns(struct cvm_error *err);

/* A forked child makes a private mount namespace and attaches a new tmpfs
 * there with the mount API cvm uses (fsopen/fsmount/move_mount). */
int cvm_hc_mount(struct cvm_error *err);

/* Is this process in the initial user namespace? */
bool cvm_hc_init_userns(void);

/* This process's effective capabilities, bit N = capability N. */
int cvm_hc_effective_caps(uint64_t *caps, struct cvm_error *err);

/* An idmapped clone of the mount at the dir @fd (O_PATH; @path names it)
 * with @userns_fd (from cvm_userns_open), made detached in a forked child
 * and dropped. err->err == EINVAL: the filesystem cannot be idmapped. */
int cvm_hc_idmap(int fd, const char *path, int userns_fd, struct cvm_error *err);

/* The workspace's rootfs recipe for real: idmapped layers, the overlay on
 * top (runtime/workspace.c), a file written through it that must land on
 * disk with the workspace root's id. The upper and work dirs live in a
 * scratch dir made in @state_dir (which must exist) and removed after;
 * @rootfs_fd (O_PATH; @rootfs names it) is the image layer, or -1 (or an
 * image that cannot be idmapped: an empty stand-in for the fallback copy). */
int cvm_hc_overlay(int rootfs_fd, const char *rootfs, const char *state_dir, uint32_t base,
		   uint32_t count, struct cvm_error *err);

/* What cvm_hc_delegation() found besides success. */
struct cvm_hc_delegation {
	char group[4200];       /* the scratch group it made (gone again) */
	bool has_kill;          /* cgroup.kill (Linux >= 5.14) */
	bool clone_into;        /* clone3(CLONE_INTO_CGROUP) into it worked */
	int clone_errno;        /* why not */
};

/* Make @parent/cvm-check.XXXXXX, hand it to @uid/@gid as cvm delegates the
 * workspace's group, start a child straight into it, and remove it. */
int cvm_hc_delegation(const char *parent, uid_t uid, gid_t gid, struct cvm_hc_delegation *out,
		      struct cvm_error *err);

/* open("/dev/fuse") and close it. */
int cvm_hc_fuse(struct cvm_error *err);

/* seccomp(2) filters available (prctl(PR_GET_SECCOMP) and
 * SECCOMP_GET_ACTION_AVAIL for SECCOMP_RET_ERRNO); @mode: this process's
 * own mode (0 none, 2 already under a filter). */
int cvm_hc_seccomp(int *mode, struct cvm_error *err);

#endif
