#include <errno.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>

#include "seccomp.h"

/* Refused, with the reason. The kernel already checks most of these
 * against the initial user namespace; the profile is the second layer, and
 * the only one for a kernel bug reachable through them. The default is
 * allow: mount, unshare, setns, pivot_root, keyctl and bpf stay, because
 * systemd, dockerd, buildkit and apt use them and the kernel scopes them to
 * the workspace's namespaces. */
static const struct cvm_seccomp_rule denied[] = {
	{ "kexec_load", EPERM, "replaces the node's kernel" },
	{ "kexec_file_load", EPERM, "replaces the node's kernel" },
	{ "init_module", EPERM, "loads code into the node's kernel" },
	{ "finit_module", EPERM, "loads code into the node's kernel" },
	{ "delete_module", EPERM, "unloads the node's drivers" },
	{ "create_module", EPERM, "obsolete module interface" },
	{ "get_kernel_syms", EPERM, "obsolete module interface" },
	{ "query_module", EPERM, "obsolete module interface" },
	{ "open_by_handle_at", EPERM, "opens files by handle, past every mount (shocker)" },
	/* Handles only feed open_by_handle_at. EOPNOTSUPP is what a filesystem
	 * without handles answers, so systemd and util-linux fall back to
	 * /proc/self/mountinfo instead of failing. */
	{ "name_to_handle_at", EOPNOTSUPP, "makes handles for open_by_handle_at" },
	{ "swapon", EPERM, "changes the node's swap" },
	{ "swapoff", EPERM, "changes the node's swap" },
	{ "syslog", EPERM, "the node's kernel log" },
	{ "acct", EPERM, "process accounting of the node" },
	{ "settimeofday", EPERM, "the clock is the node's, not namespaced" },
	{ "clock_settime", EPERM, "the clock is the node's, not namespaced" },
	{ "clock_adjtime", EPERM, "the clock is the node's, not namespaced" },
	{ "adjtimex", EPERM, "the clock is the node's, not namespaced" },
	{ "stime", EPERM, "the clock is the node's, not namespaced" },
	{ "iopl", EPERM, "direct port I/O on the node" },
	{ "ioperm", EPERM, "direct port I/O on the node" },
	{ "lookup_dcookie", EPERM, "kernel profiling internals" },
	{ "perf_event_open", EPERM, "observes other processes of the node and the kernel" },
	{ "quotactl", EPERM, "quotas of the node's filesystems" },
	{ "nfsservctl", EPERM, "the node's NFS server" },
	{ "uselib", EPERM, "obsolete, a past source of kernel bugs" },
	{ "ustat", EPERM, "obsolete" },
	{ "vm86", EPERM, "obsolete" },
	{ "vm86old", EPERM, "obsolete" },
	{ "_sysctl", EPERM, "obsolete sysctl interface" },
	{ "kcmp", EPERM, "compares kernel objects across processes" },
};

#define N_DENIED (sizeof(denied) / sizeof(denied[0]))

const struct cvm_seccomp_rule *cvm_seccomp_rules(size_t *n)
{
	*n = N_DENIED;
	return denied;
}

bool cvm_seccomp_known_syscall(const char *name)
{
	return seccomp_syscall_resolve_name(name) != __NR_SCMP_ERROR;
}

static int deny(scmp_filter_ctx ctx, const char *name, int err)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0;       /* not on this architecture */
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 0);
}

int cvm_seccomp_apply(char *const *extra_deny, struct cvm_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	const char *what = "seccomp profile";
	int r = 0;

	if (!ctx)
		return cvm_error_set(err, ENOMEM, "seccomp");
	/* libseccomp sets no_new_privs by default, which every process of the
	 * workspace would inherit: sudo, su and setuid or file-capability
	 * binaries would stop working, in systemd's services too. Callers are
	 * root of the workspace's user namespace (CAP_SYS_ADMIN there), which
	 * the kernel accepts instead; the filter is the same. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	for (size_t i = 0; i < N_DENIED && r == 0; i++)
		r = deny(ctx, denied[i].name, denied[i].err);
	/* userfaultfd only for user-mode faults (UFFD_USER_MODE_ONLY = 1):
	 * kernel-mode faults are a classic way to stretch a kernel race. */
	int uffd = seccomp_syscall_resolve_name("userfaultfd");
	if (r == 0 && uffd != __NR_SCMP_ERROR)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), uffd, 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, 1, 0));
	/* [workspace] seccomp_deny: names the config checked already. A name
	 * the table has is fine (libseccomp merges equal rules). */
	for (size_t i = 0; r == 0 && extra_deny && extra_deny[i]; i++) {
		r = deny(ctx, extra_deny[i], EPERM);
		what = extra_deny[i];
	}
	if (r == 0) {
		what = "seccomp profile";
		r = seccomp_load(ctx);
	}
	seccomp_release(ctx);
	return r < 0 ? cvm_error_set(err, -r, "%s", what) : 0;
}
