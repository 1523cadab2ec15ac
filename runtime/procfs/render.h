/* Render the virtual /proc and /sys files from a cgroup view and the
 * host's own file. Every function writes the whole file into @buf and
 * returns its length, or -1 when @len is too small: a file is always made
 * in one piece, so readers of any chunk size see one consistent snapshot. */
#ifndef CVM_PROCFS_RENDER_H
#define CVM_PROCFS_RENDER_H

#include <sys/types.h>

#include "cgview.h"

/* The CPUs the workspace may use: its cpuset (or @host_online), cut to
 * ceil(cpu.max quota / period). */
void cvm_visible_cpus(const struct cvm_cg_view *v, const struct cvm_cpuset *host_online,
		      struct cvm_cpuset *out);

ssize_t cvm_render_meminfo(const char *host, const struct cvm_cg_view *v, char *buf, size_t len);
ssize_t cvm_render_cpuinfo(const char *host, const struct cvm_cpuset *cpus, char *buf, size_t len);
ssize_t cvm_render_stat(const char *host, const struct cvm_cpuset *cpus, char *buf, size_t len);
ssize_t cvm_render_cpulist(const struct cvm_cpuset *cpus, char *buf, size_t len);
ssize_t cvm_render_swaps(const struct cvm_cg_view *v, char *buf, size_t len);
/* @up: seconds since the workspace started; @busy: CPU seconds it used
 * (cpu.stat usage_usec). Idle is what its CPUs did not use. */
ssize_t cvm_render_uptime(double up, unsigned ncpus, double busy, char *buf, size_t len);

/* /proc/diskstats: the host's devices, with the workspace's own I/O from
 * io.stat ("MAJ:MIN rbytes= wbytes= rios= wios= ..."); a device the
 * workspace never touched shows zeros. */
ssize_t cvm_render_diskstats(const char *host, const char *io_stat, char *buf, size_t len);

/* Load averages as the kernel keeps them: fixed point, decayed every 5 s. */
struct cvm_loadavg {
	unsigned long avg[3];           /* FIXED_1 = 2048 */
	double last;                    /* when the last 5 s tick was applied (s) */
};
/* Apply the 5 s ticks between @l->last and @now with @active tasks. */
void cvm_loadavg_tick(struct cvm_loadavg *l, double now, unsigned active);
ssize_t cvm_render_loadavg(const struct cvm_loadavg *l, unsigned running, unsigned total,
			   unsigned lastpid, char *buf, size_t len);

#endif
