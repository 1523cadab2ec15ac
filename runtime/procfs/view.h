/* Inside runtime/procfs/: the renders the server serves (view.c). */
#ifndef CVM_PROCFS_VIEW_H
#define CVM_PROCFS_VIEW_H

#include <stdint.h>
#include <sys/types.h>

#include "files.h"

struct cvm_procfs_server;

#define CVM_PROCFS_MAX_FILE (256 * 1024)

/* How long a render (and the reader -> cgroup lookup) is reused: below the
 * resolution of what the files print (uptime and CPU times in 1/100 s) and
 * far below how often the kernel folds its own per-CPU memory counters
 * (vm.stat_interval, 1 s), so no reader can tell, while a loop of opens
 * costs one render per 10 ms instead of one per open. */
#define CVM_PROCFS_TTL 0.010

/* CLOCK_BOOTTIME in seconds. */
double cvm_procfs_now(void);

/* The reader's cgroup, by the pid a request came from. */
struct cvm_procfs_leaf {
	pid_t pid;
	double at;
	uint64_t key;           /* hash of path, never 0 */
	char path[4096];
};
const struct cvm_procfs_leaf *cvm_procfs_reader(struct cvm_procfs_server *s, pid_t pid, double now);

struct cvm_procfs_snapshot {
	uint64_t key;           /* whose: the reader cgroup's hash */
	double at;              /* rendered then (CLOCK_BOOTTIME) */
	size_t len;
	char data[CVM_PROCFS_MAX_FILE];     /* NUL-terminated */
};
/* @file as a reader in @e's cgroup sees it now (rendered at most TTL ago);
 * NULL when it cannot be rendered. */
const struct cvm_procfs_snapshot *cvm_procfs_snapshot(struct cvm_procfs_server *s,
						      enum cvm_procfs_file file,
						      const struct cvm_procfs_leaf *e, double now);
/* The length of the last render of @file (0: none yet). */
size_t cvm_procfs_last_len(const struct cvm_procfs_server *s, enum cvm_procfs_file file);

/* The CPU @pid last ran on (field 39 of /proc/PID/stat), or -1. */
int cvm_procfs_task_cpu(pid_t pid);

/* The workspace's load: start the 5 s clock; take the samples that are due. */
void cvm_procfs_load_start(struct cvm_procfs_server *s);
void cvm_procfs_load_due(struct cvm_procfs_server *s);

#endif
