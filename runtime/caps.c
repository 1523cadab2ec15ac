#include <cap-ng.h>
#include <errno.h>
#include <linux/capability.h>
#include <stddef.h>

#include "caps.h"

/* Dropped from the workspace's bounding set. Kept: CAP_SYS_ADMIN,
 * CAP_NET_ADMIN, CAP_SYS_BOOT (reboot(2) in a pid namespace is how systemd
 * halts it) and the rest a VM's root uses, all scoped to the workspace's
 * namespaces by the kernel. */
static const struct cvm_cap_note bound_drop[] = {
	{ CAP_SYS_MODULE, "sys_module", "modules are the node's" },
	{ CAP_SYS_RAWIO, "sys_rawio", "raw I/O to the node's devices and memory" },
	{ CAP_SYS_TIME, "sys_time", "the clock is the node's" },
	{ CAP_SYSLOG, "syslog", "the node's kernel log" },
	{ CAP_WAKE_ALARM, "wake_alarm", "wakes the node" },
	{ CAP_BLOCK_SUSPEND, "block_suspend", "keeps the node from suspending" },
	{ CAP_AUDIT_CONTROL, "audit_control", "the node's audit rules" },
	{ CAP_AUDIT_READ, "audit_read", "the node's audit log" },
	{ CAP_MAC_ADMIN, "mac_admin", "the node's LSM policy" },
	{ CAP_MAC_OVERRIDE, "mac_override", "bypasses the node's LSM policy" },
	{ CAP_SYS_PACCT, "sys_pacct", "process accounting of the node" },
};

/* What cvm itself keeps once the workspace runs. Everything it does to the
 * workspace after that (join it for cvm exec, signal it, move processes
 * into its cgroup) it may do as the owner of the workspace's user
 * namespace, which needs no capability at all. These are for the outer
 * side only. */
static const struct cvm_cap_note supervisor_keep[] = {
	{ CAP_DAC_OVERRIDE, "dac_override",
	  "open and remove the cgroups the workspace's root owns (delegation), to join and clean up" },
	{ CAP_SYS_PTRACE, "sys_ptrace",
	  "join a workspace whose init is cvm's own: that init is not dumpable, so setns "
	  "through its pidfd needs it" },
	/* last: kept only with a private network */
	{ CAP_NET_ADMIN, "net_admin",
	  "network = private only: remove the nftables table cvm added outside, on stop" },
};

static const struct cvm_cap_note server_keep[] = {
	{ CAP_DAC_OVERRIDE, "dac_override",
	  "answer sysinfo(2) through /proc/PID/mem of workspace processes (their files, mode 0600)" },
	{ CAP_SYS_ADMIN, "sys_admin",
	  "[proc] passthrough only, first server only: register its backing files with FUSE" },
	{ CAP_SYS_NICE, "sys_nice",
	  "[proc] follow only, first server only: put its SCHED_IDLE follower thread back to "
	  "normal priority when that thread's CPU stays busy" },
};

const struct cvm_cap_note *cvm_caps_server_kept(size_t *n)
{
	*n = sizeof(server_keep) / sizeof(server_keep[0]);
	return server_keep;
}

const struct cvm_cap_note *cvm_caps_bound_dropped(size_t *n)
{
	*n = sizeof(bound_drop) / sizeof(bound_drop[0]);
	return bound_drop;
}

const struct cvm_cap_note *cvm_caps_supervisor_kept(bool net_admin, size_t *n)
{
	*n = sizeof(supervisor_keep) / sizeof(supervisor_keep[0]) - (net_admin ? 0 : 1);
	return supervisor_keep;
}

int cvm_caps_bound(struct cvm_error *err)
{
	capng_get_caps_process();
	for (size_t i = 0; i < sizeof(bound_drop) / sizeof(bound_drop[0]); i++)
		capng_update(CAPNG_DROP, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_INHERITABLE |
			     CAPNG_BOUNDING_SET, (unsigned)bound_drop[i].cap);
	if (capng_apply(CAPNG_SELECT_BOTH) < 0)
		return cvm_error_set(err, errno, "drop capabilities");
	return 0;
}

int cvm_caps_server_drop(bool sys_admin, bool sys_nice, struct cvm_error *err)
{
	bool keep, nice, dac, setpcap;

	capng_get_caps_process();
	keep = sys_admin && capng_have_capability(CAPNG_PERMITTED, CAP_SYS_ADMIN);
	nice = sys_nice && capng_have_capability(CAPNG_PERMITTED, CAP_SYS_NICE);
	dac = capng_have_capability(CAPNG_PERMITTED, CAP_DAC_OVERRIDE);
	/* A server restarted by cvm after its own drop has no cap_setpcap: its
	 * bounding set stays cvm's short one; its own sets still go empty. */
	setpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
	capng_clear(setpcap ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS);
	if (keep)
		capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED |
			     (setpcap ? CAPNG_BOUNDING_SET : 0), CAP_SYS_ADMIN);
	if (nice)
		capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED |
			     (setpcap ? CAPNG_BOUNDING_SET : 0), CAP_SYS_NICE);
	/* sysinfo(2) answers go through /proc/PID/mem of the caller, a file
	 * of the workspace's ids, mode 0600 */
	if (dac)
		capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED |
			     (setpcap ? CAPNG_BOUNDING_SET : 0), CAP_DAC_OVERRIDE);
	if (capng_apply(setpcap ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS) < 0)
		return cvm_error_set(err, errno, "drop the /proc server's capabilities");
	return (keep ? CVM_CAPS_KEPT_SYS_ADMIN : 0) | (nice ? CVM_CAPS_KEPT_SYS_NICE : 0);
}

int cvm_caps_supervisor_drop(bool net_admin, struct cvm_error *err)
{
	size_t n = sizeof(supervisor_keep) / sizeof(supervisor_keep[0]) - (net_admin ? 0 : 1);

	capng_clear(CAPNG_SELECT_BOTH);
	for (size_t i = 0; i < n; i++)
		capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET,
			     (unsigned)supervisor_keep[i].cap);
	if (capng_apply(CAPNG_SELECT_BOTH) < 0)
		return cvm_error_set(err, errno, "drop cvm's own capabilities");
	return 0;
}

int cvm_caps_drop_all(struct cvm_error *err)
{
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_apply(CAPNG_SELECT_BOTH) < 0) {
		/* Without cap_setpcap the bounding set stays; the sets go empty. */
		capng_clear(CAPNG_SELECT_CAPS);
		if (capng_apply(CAPNG_SELECT_CAPS) < 0)
			return cvm_error_set(err, errno, "drop every capability");
	}
	return 0;
}
