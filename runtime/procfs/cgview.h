/* What /proc should say, for one reader: the limits and use of its cgroup,
 * the tightest along the way up to the workspace's root group. Pure file
 * reading, so the unit tests run it on fixture trees. */
#ifndef CVM_PROCFS_CGVIEW_H
#define CVM_PROCFS_CGVIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/error.h"

#define CVM_MAX_CPUS 1024
#define CVM_NO_LIMIT UINT64_MAX

struct cvm_cpuset {
	uint64_t bits[CVM_MAX_CPUS / 64];
};

/* "0-3,8,10-11" (cpuset.cpus, /sys/devices/system/cpu/online). 0 or -1. */
int cvm_cpuset_parse(const char *s, struct cvm_cpuset *out);
bool cvm_cpuset_has(const struct cvm_cpuset *c, unsigned cpu);
unsigned cvm_cpuset_count(const struct cvm_cpuset *c);
/* The list form again, "0-3,8". */
void cvm_cpuset_format(const struct cvm_cpuset *c, char *buf, size_t len);
/* Keep only the first @n CPUs. */
void cvm_cpuset_limit(struct cvm_cpuset *c, unsigned n);

struct cvm_cg_view {
	uint64_t mem_max;               /* bytes, CVM_NO_LIMIT: none up the tree */
	uint64_t mem_current;
	uint64_t swap_max;
	uint64_t swap_current;
	/* memory.stat of the reader's group */
	uint64_t anon, file, shmem, file_mapped, slab, slab_reclaimable, slab_unreclaimable;
	uint64_t active_anon, inactive_anon, active_file, inactive_file;
	uint64_t kernel_stack, pagetables;
	double cpu_limit;               /* CPUs from cpu.max, 0: none up the tree */
	bool has_cpuset;
	struct cvm_cpuset cpus;         /* cpuset.cpus.effective of the reader */
	uint64_t usage_usec, user_usec, system_usec;    /* cpu.stat */
};

/* Load the view of the group @leaf, taking limits from every group from
 * @leaf up to @top (absolute directories, @leaf inside or equal to @top).
 * Missing files mean "no limit" / 0, as with absent controllers. @what
 * says which half to read: each file needs only one, and a read is a
 * reader's wait. */
#define CVM_VIEW_MEM 1u       /* memory.*: meminfo, swaps */
#define CVM_VIEW_CPU 2u       /* cpu.*, cpuset: cpuinfo, stat, uptime, the CPU list */
#define CVM_VIEW_ALL 3u
int cvm_cg_view_load(const char *top, const char *leaf, unsigned what, struct cvm_cg_view *v,
		     struct cvm_error *err);

#endif
