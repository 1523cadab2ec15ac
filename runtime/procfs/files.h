/* The files the /proc server serves: one list, which the server (names,
 * inodes), the views (what each is made from, its renderer), the builder
 * (where each goes inside) and the config ([proc] files) all read. Each
 * file is a named type (enum cvm_procfs_file), as in lxcfs, never a bare
 * number. */
#ifndef CVM_PROCFS_FILES_H
#define CVM_PROCFS_FILES_H

/* What a file is made from (flags). */
#define CVM_PROCFS_HOST_FILE 1u /* the host's file at its path: served as it is when
				 * the workspace has no cgroup of its own */
#define CVM_PROCFS_MEM_VIEW 2u  /* needs the memory half of the cgroup view */
#define CVM_PROCFS_CPU_VIEW 4u  /* needs the CPU half, and the CPUs the workspace sees */

/* F(TYPE, name in the mount and in [proc] files, path inside (and on the
 * host), flags, renderer (view.c: render_NAME)). Files.c and view.c expand
 * it; add a file here and nowhere else. */
#define CVM_PROCFS_FILE_LIST(F) \
	F(MEMINFO, "meminfo", "/proc/meminfo", CVM_PROCFS_HOST_FILE | CVM_PROCFS_MEM_VIEW, meminfo) \
	F(CPUINFO, "cpuinfo", "/proc/cpuinfo", CVM_PROCFS_HOST_FILE | CVM_PROCFS_CPU_VIEW, cpuinfo) \
	F(STAT, "stat", "/proc/stat", CVM_PROCFS_HOST_FILE | CVM_PROCFS_CPU_VIEW, stat) \
	F(UPTIME, "uptime", "/proc/uptime", CVM_PROCFS_CPU_VIEW, uptime) \
	F(SWAPS, "swaps", "/proc/swaps", CVM_PROCFS_HOST_FILE | CVM_PROCFS_MEM_VIEW, swaps) \
	F(CPU_ONLINE, "cpu_online", "/sys/devices/system/cpu/online", CVM_PROCFS_CPU_VIEW, cpulist) \
	F(LOADAVG, "loadavg", "/proc/loadavg", CVM_PROCFS_HOST_FILE, loadavg) \
	F(DISKSTATS, "diskstats", "/proc/diskstats", CVM_PROCFS_HOST_FILE, diskstats)

#define CVM_PROCFS_FILE_ENUM_(type, name, path, flags, render) CVM_PROCFS_##type,
enum cvm_procfs_file { CVM_PROCFS_FILE_LIST(CVM_PROCFS_FILE_ENUM_) CVM_PROCFS_N_FILES };

struct cvm_procfs_file_info {
	const char *name;       /* in the FUSE mount, and in [proc] files */
	const char *path;       /* where it goes inside; the host's file of that name */
	unsigned flags;         /* CVM_PROCFS_* above */
};
extern const struct cvm_procfs_file_info cvm_procfs_files[CVM_PROCFS_N_FILES];

/* The file called @name, or -1. */
int cvm_procfs_file_by_name(const char *name);
/* Where the file called @name goes inside the workspace ("/proc/meminfo"); NULL: none such. */
const char *cvm_procfs_target(const char *name);
/* "meminfo, cpuinfo, ...": for messages. */
const char *cvm_procfs_file_names(void);

/* The names as an initializer list ("meminfo", "cpuinfo", ...,). */
#define CVM_PROCFS_FILE_NAME_(type, name, path, flags, render) name,
#define CVM_PROCFS_FILES CVM_PROCFS_FILE_LIST(CVM_PROCFS_FILE_NAME_)

#endif
