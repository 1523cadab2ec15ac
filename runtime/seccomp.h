/* The workspace's seccomp profile: everything a VM-like workspace needs
 * inside a user namespace is allowed (mount, unshare, setns, pivot_root,
 * keyctl, bpf where the kernel scopes it); what touches the node itself is
 * refused. */
#ifndef CVM_SECCOMP_H
#define CVM_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct cvm_seccomp_rule {
	const char *name;       /* syscall */
	int err;                /* errno it returns */
	const char *why;
};

/* The built-in table (for `cvm check` and the docs). */
const struct cvm_seccomp_rule *cvm_seccomp_rules(size_t *n);

/* Whether libseccomp knows @name on this architecture. */
bool cvm_seccomp_known_syscall(const char *name);

/* Install the profile, plus EPERM for each name in the NULL-terminated
 * @extra_deny (may be NULL), on the calling thread (inherited by its
 * children and kept across exec). Needs CAP_SYS_ADMIN in its user
 * namespace or no_new_privs. */
int cvm_seccomp_apply(char *const *extra_deny, struct cvm_error *err);

#endif
