/* The /proc server's other job: answering the workspace's sysinfo(2).
 *
 * runtime/notify.c turns that syscall into a seccomp user notification
 * for the inner init's whole tree and for each `cvm exec` command; their
 * listeners reach this server through PID 1, which keeps a copy of each,
 * so that a restarted server answers them too and a listener never closes
 * while the workspace runs (a closed one would fail every sysinfo(2) with
 * ENOSYS). While no server runs, a caller waits; when an answer cannot be
 * computed, the kernel runs the real syscall (SECCOMP_USER_NOTIF_FLAG_CONTINUE,
 * the host's numbers: harmless for a call that only reads). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "runtime/cleanup.h"
#include "state.h"

/* <linux/seccomp.h>, which musl-gcc does not see. */
struct cvm_seccomp_notif {
	uint64_t id;
	uint32_t pid;
	uint32_t flags;
	int32_t nr;
	uint32_t arch;
	uint64_t ip;
	uint64_t args[6];
};
struct cvm_seccomp_notif_resp {
	uint64_t id;
	int64_t val;
	int32_t error;
	uint32_t flags;
};
#define CVM_SECCOMP_NOTIF_RECV 0xc0502100u      /* _IOWR('!', 0, struct seccomp_notif) */
#define CVM_SECCOMP_NOTIF_SEND 0xc0182101u      /* _IOWR('!', 1, struct seccomp_notif_resp) */
#define CVM_SECCOMP_NOTIF_ID_VALID 0x40082102u  /* _IOW('!', 2, __u64) */
#define CVM_SECCOMP_USER_NOTIF_FLAG_CONTINUE 1u

/* The kernel's struct sysinfo (<linux/sysinfo.h>), which is what the
 * caller's buffer holds. libc's may be bigger: musl's ends in 256 reserved
 * bytes, and writing that many smashed the caller's stack. */
struct cvm_kernel_sysinfo {
	long uptime;
	unsigned long loads[3];
	unsigned long totalram, freeram, sharedram, bufferram, totalswap, freeswap;
	uint16_t procs, pad;
	unsigned long totalhigh, freehigh;
	uint32_t mem_unit;
	char _f[20 - 2 * sizeof(unsigned long) - sizeof(uint32_t)];
};
_Static_assert(sizeof(long) != 8 || sizeof(struct cvm_kernel_sysinfo) == 112,
	       "the kernel's struct sysinfo is 112 bytes on 64-bit");

/* Write @si into the caller's buffer, as the kernel lays it out.
 * /proc/PID/mem is opened before the notification is checked to be still
 * pending: the open file is bound to that process, so a pid reused after
 * the check cannot be written to. */
static int deliver(int listener, const struct cvm_procfs_inflight *c, const struct sysinfo *si,
		   struct cvm_seccomp_notif_resp *r)
{
	char path[64];
	uint64_t id = c->id;
	struct cvm_kernel_sysinfo k = {
		.uptime = si->uptime,
		.loads = { si->loads[0], si->loads[1], si->loads[2] },
		.totalram = si->totalram, .freeram = si->freeram, .sharedram = si->sharedram,
		.bufferram = si->bufferram, .totalswap = si->totalswap, .freeswap = si->freeswap,
		.procs = si->procs, .totalhigh = si->totalhigh, .freehigh = si->freehigh,
		.mem_unit = si->mem_unit,
	};

	snprintf(path, sizeof(path), "/proc/%u/mem", c->pid);
	cleanup_close int fd = open(path, O_RDWR | O_CLOEXEC);
	if (ioctl(listener, CVM_SECCOMP_NOTIF_ID_VALID, &id) < 0)
		return -1;                      /* gone (killed, or it gave up) */
	if (fd < 0)
		r->flags = CVM_SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	else if (pwrite(fd, &k, sizeof(k), (off_t)c->addr) != (ssize_t)sizeof(k))
		r->error = -EFAULT;             /* what the kernel says of a bad pointer */
	return 0;
}

static void answer(struct cvm_procfs_server *s, int listener, struct cvm_procfs_inflight *c)
{
	struct cvm_seccomp_notif_resp r = { .id = c->id };
	struct sysinfo si;

	if (c->nr != SYS_sysinfo || cvm_procfs_sysinfo(s, (pid_t)c->pid, &si) < 0)
		r.flags = CVM_SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	else if (deliver(listener, c, &si, &r) < 0) {
		c->busy = false;
		return;
	}
	ioctl(listener, CVM_SECCOMP_NOTIF_SEND, &r);     /* ENOENT: it gave up meanwhile */
	c->busy = false;
}

int cvm_procfs_answer(struct cvm_procfs_server *s, int listener)
{
	struct cvm_procfs_inflight *c = &s->st->inflight;
	struct cvm_seccomp_notif n = { 0 };

	if (ioctl(listener, CVM_SECCOMP_NOTIF_RECV, &n) < 0)
		return errno == ENOENT || errno == EINTR ? 0 : -1;
	/* Kept in the shared state until answered: a server killed now leaves
	 * it to the next one (cvm_procfs_answer_pending). */
	c->pid = n.pid;
	c->nr = n.nr;
	c->addr = n.args[0];
	c->id = n.id;
	c->busy = true;
	answer(s, listener, c);
	return 0;
}

void cvm_procfs_answer_pending(struct cvm_procfs_server *s, int listener)
{
	struct cvm_procfs_inflight *c = &s->st->inflight;
	uint64_t id = c->id;

	if (c->busy && ioctl(listener, CVM_SECCOMP_NOTIF_ID_VALID, &id) == 0)
		answer(s, listener, c);
}
