/* The workspace's seccomp profile: everything a VM-like workspace needs
 * inside a user namespace is allowed (mount, unshare, setns, pivot_root,
 * keyctl, bpf where the kernel scopes it); what touches the node itself is
 * refused with EPERM. */
#ifndef CVM_SYSCALL_FILTER_H
#define CVM_SYSCALL_FILTER_H

#include "error.h"

/* Install the profile on the calling thread (inherited by its children
 * and kept across exec). Needs CAP_SYS_ADMIN in its user namespace or
 * no_new_privs. */
int cvm_seccomp_apply(struct cvm_error *err);

/* Drop from the bounding set (and so for good, for everything the caller
 * execs) the capabilities that mean nothing or only danger even in a user
 * namespace: modules, raw I/O, the clock, the kernel log, audit, MAC. */
int cvm_caps_bound(struct cvm_error *err);

#endif
