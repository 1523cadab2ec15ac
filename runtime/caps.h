/* Capabilities (libcap-ng): the workspace's bounding set, and what cvm
 * itself keeps once the workspace runs. */
#ifndef CVM_CAPS_H
#define CVM_CAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct cvm_cap_note {
	int cap;
	const char *name;
	const char *why;
};

/* Drop from the bounding set (and so for good, for everything the caller
 * execs) the capabilities that mean nothing or only danger even in a user
 * namespace: modules, raw I/O, the clock, the kernel log, audit, MAC. */
int cvm_caps_bound(struct cvm_error *err);

/* After setup: keep only the short list below in every set, the bounding
 * set included, so that nothing cvm runs later can regain the rest;
 * cap_net_admin only with @net_admin (a private network to take down). */
int cvm_caps_supervisor_drop(bool net_admin, struct cvm_error *err);

/* The /proc server parses what the workspace sends: it keeps nothing but
 * cap_dac_override (sysinfo(2) answers through /proc/PID/mem of workspace
 * processes) and, each when asked for and when it still has it,
 * cap_sys_admin (@sys_admin: FUSE passthrough, its backing files) and
 * cap_sys_nice (@sys_nice: [proc] follow, raising its follower thread).
 * Returns which of those two it kept (CVM_CAPS_KEPT_*), -1 on error. */
#define CVM_CAPS_KEPT_SYS_ADMIN 1
#define CVM_CAPS_KEPT_SYS_NICE 2
int cvm_caps_server_drop(bool sys_admin, bool sys_nice, struct cvm_error *err);

/* No capability at all, in any set (the console relay: it only copies
 * bytes between two fds it already holds). */
int cvm_caps_drop_all(struct cvm_error *err);

/* The two lists with their reasons (for `cvm check` and the docs). */
const struct cvm_cap_note *cvm_caps_bound_dropped(size_t *n);
const struct cvm_cap_note *cvm_caps_supervisor_kept(bool net_admin, size_t *n);
const struct cvm_cap_note *cvm_caps_server_kept(size_t *n);

#endif
