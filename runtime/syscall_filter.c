#include <errno.h>
#include <cap-ng.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stddef.h>

#include "syscall_filter.h"

/* Refused, with the reason. The kernel already checks most of these
 * against the initial user namespace; the profile is the second layer, and
 * the only one for a kernel bug reachable through them. */
static const struct { const char *name; const char *why; } denied[] = {
	{ "kexec_load", "replaces the node's kernel" },
	{ "kexec_file_load", "replaces the node's kernel" },
	{ "init_module", "loads code into the node's kernel" },
	{ "finit_module", "loads code into the node's kernel" },
	{ "delete_module", "unloads the node's drivers" },
	{ "create_module", "obsolete module interface" },
	{ "get_kernel_syms", "obsolete module interface" },
	{ "query_module", "obsolete module interface" },
	{ "open_by_handle_at", "opens files by handle, past every mount (shocker)" },
	{ "swapon", "changes the node's swap" },
	{ "swapoff", "changes the node's swap" },
	{ "syslog", "the node's kernel log" },
	{ "acct", "process accounting of the node" },
	{ "settimeofday", "the clock is the node's, not namespaced" },
	{ "clock_settime", "the clock is the node's, not namespaced" },
	{ "clock_adjtime", "the clock is the node's, not namespaced" },
	{ "adjtimex", "the clock is the node's, not namespaced" },
	{ "stime", "the clock is the node's, not namespaced" },
	{ "iopl", "direct port I/O on the node" },
	{ "ioperm", "direct port I/O on the node" },
	{ "lookup_dcookie", "kernel profiling internals" },
	{ "perf_event_open", "observes other processes of the node and the kernel" },
	{ "quotactl", "quotas of the node's filesystems" },
	{ "nfsservctl", "the node's NFS server" },
	{ "uselib", "obsolete, a past source of kernel bugs" },
	{ "ustat", "obsolete" },
	{ "vm86", "obsolete" },
	{ "vm86old", "obsolete" },
	{ "_sysctl", "obsolete sysctl interface" },
	{ "kcmp", "compares kernel objects across processes" },
};

int cvm_seccomp_apply(struct cvm_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = 0;

	if (!ctx)
		return cvm_error_set(err, ENOMEM, "seccomp");
	/* libseccomp sets no_new_privs by default, which every process of the
	 * workspace would inherit: sudo, su and setuid or file-capability
	 * binaries would stop working, in systemd's services too. Callers
	 * are root of the workspace's user namespace (CAP_SYS_ADMIN there),
	 * which the kernel accepts instead; the filter is the same. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]) && r == 0; i++) {
		int nr = seccomp_syscall_resolve_name(denied[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue;       /* not on this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	/* userfaultfd only for user-mode faults (UFFD_USER_MODE_ONLY = 1):
	 * kernel-mode faults are a classic way to stretch a kernel race. */
	int uffd = seccomp_syscall_resolve_name("userfaultfd");
	if (r == 0 && uffd != __NR_SCMP_ERROR)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), uffd, 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, 1, 0));
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r < 0 ? cvm_error_set(err, -r, "seccomp profile") : 0;
}

/* Kept: CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_BOOT (reboot(2) in a pid
 * namespace is how systemd halts it) and the rest a VM's root uses, all
 * scoped to the workspace's namespaces by the kernel. */
static const int bound_drop[] = {
	CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYSLOG, CAP_WAKE_ALARM,
	CAP_BLOCK_SUSPEND, CAP_AUDIT_CONTROL, CAP_AUDIT_READ, CAP_MAC_ADMIN,
	CAP_MAC_OVERRIDE, CAP_SYS_PACCT,
};

int cvm_caps_bound(struct cvm_error *err)
{
	capng_get_caps_process();
	for (size_t i = 0; i < sizeof(bound_drop) / sizeof(bound_drop[0]); i++)
		capng_update(CAPNG_DROP, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_INHERITABLE |
			     CAPNG_BOUNDING_SET, (unsigned)bound_drop[i]);
	if (capng_apply(CAPNG_SELECT_BOTH) < 0)
		return cvm_error_set(err, errno, "drop capabilities");
	return 0;
}
