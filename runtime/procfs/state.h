/* Inside runtime/procfs/: the state of one /proc server, all of it in one
 * struct, and which thread may touch what.
 *
 * Two threads share it: main, which runs cvm_procfs_serve(), and the
 * follower, which answers from a reader's CPU while that reader loops
 * (server.c, "the follower"; README "Following the reader"). The rules,
 * by group of fields below:
 *
 *   fixed       written before the follower starts, read-only after: any
 *               thread, no lock.
 *   hand-over   atomics and eventfds by which main hands the serving to the
 *               follower and takes it back: either thread, no lock.
 *   main's own  main only (with or without @serving).
 *   serving     only the thread that holds @serving: main, except while it
 *               waits (poll) or watches the follower; the follower only
 *               while it answers one request or unparks opens. Everything
 *               a request, a sysinfo(2) notification or a load sample
 *               touches is here, and so is @st, the memory PID 1 shares
 *               with every server it starts. One exception: the follower
 *               peeks at n_parked without the lock (parked_hint()) to skip
 *               taking it when nothing is parked; it looks again under it.
 */
#ifndef CVM_PROCFS_STATE_H
#define CVM_PROCFS_STATE_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "fuse_abi.h"
#include "render.h"
#include "server.h"
#include "view.h"

#define CVM_PROCFS_MAX_OPENS 4096
#define CVM_PROCFS_MAX_PARKED 64
#define CVM_PROCFS_MAX_LISTENERS 256
#define CVM_PROCFS_N_CLOSED 256
#define CVM_PROCFS_N_LEAVES 16

/* The notification being answered (in the state shared across restarts). */
struct cvm_procfs_inflight {
	uint64_t id;
	uint64_t addr;          /* the caller's struct sysinfo */
	uint32_t pid;           /* the caller, as this server's pid namespace numbers it */
	int32_t nr;
	bool busy;
};

/* What a server leaves for the next one: PID 1 maps it shared before the
 * first server (server.c says what the fields are for). */
struct cvm_procfs_state {
	int passthrough;                /* 1: agreed at INIT; 0/-1: not (or it cannot work) */
	bool pt_worked;                 /* a backing file was registered once */
	struct cvm_procfs_inflight inflight;    /* sysinfo(2) being answered */
	struct {
		int32_t id;             /* backing id new opens get; 0: none */
		uint32_t pins;          /* passthrough opens not released yet */
		uint32_t plain;         /* plain opens not released yet */
		uint64_t key;           /* whose snapshot (reader cgroup hash) */
		double at;              /* when it was rendered */
	} file[CVM_PROCFS_N_FILES];
	/* Every open until its RELEASE, passthrough or not: the kernel lets
	 * no plain open of an inode overlap a passthrough one (EIO, or empty
	 * splice reads), and a restarted server must know both kinds. */
	struct {
		uint64_t unique;        /* the OPEN, to know it again when resent */
		uint32_t node;          /* file + 1; 0: free */
		uint32_t pid;           /* who opened it */
		bool pt;
		double at;
	} open[CVM_PROCFS_MAX_OPENS];
};

/* One plain open's content as rendered at its last read at offset 0 (server.c). */
struct cvm_procfs_handle {
	bool rendered;          /* by this server (one that died took its own) */
	char *data;
	size_t len, cap;
};

struct cvm_procfs_server {
	/* fixed */
	const struct cvm_procfs *cfg;
	cpu_set_t own_cpus;                     /* where the follower may serve */
	int go_fd, cold_fd;                     /* eventfds: main -> follower, back; -1: no follower */

	/* hand-over */
	atomic_int follow_cpu;                  /* where the follower serves; -1: it sleeps */
	atomic_ulong followed;                  /* requests it answered */
	atomic_int follower_tid;

	/* main's own */
	double paused_until;                    /* no following before (after a raise) */
	double last_side;                       /* notifications last looked at */

	/* serving */
	pthread_mutex_t serving;
	struct cvm_procfs_state *st;            /* cfg->state, or own_state */
	struct cvm_procfs_state own_state;      /* no shared page: tests, the fuzzer */
	struct cvm_procfs_handle handles[CVM_PROCFS_MAX_OPENS];    /* by open slot */
	struct {
		struct cvm_fuse_in_header h;
		double since;
	} parked[CVM_PROCFS_MAX_PARKED];        /* opens that wait for closes */
	size_t n_parked;
	struct {
		uint32_t pid, node;
		double at;
	} closed[CVM_PROCFS_N_CLOSED];          /* who closed which file lately */
	union {
		struct cvm_fuse_init_in init;
		struct cvm_fuse_open_in open;
		struct cvm_fuse_read_in read;
		char name[256];
	} args;                                 /* the request's arguments, copied */
	double reader_cpu_at;                   /* a reader's CPU last looked up */
	int listeners[CVM_PROCFS_MAX_LISTENERS];        /* sysinfo(2) */
	size_t n_listeners;
	/* serving, view.c's */
	struct cvm_loadavg load;
	unsigned load_running, load_total, load_lastpid;
	char cg_mount[4096];                    /* found once: mountinfo is long */
	struct cvm_procfs_leaf leaves[CVM_PROCFS_N_LEAVES];    /* readers' cgroups */
	unsigned next_leaf;
	struct cvm_procfs_snapshot snaps[CVM_PROCFS_N_FILES];
	char host[CVM_PROCFS_MAX_FILE];         /* scratch: the host's file */
	char io[CVM_PROCFS_MAX_FILE];           /* scratch: io.stat */
};

/* sysinfo(2) as /proc/meminfo, uptime and loadavg say it to @pid (its
 * cgroup's memory, the workspace's uptime and load). 0 or -1. */
struct sysinfo;
int cvm_procfs_sysinfo(struct cvm_procfs_server *s, pid_t pid, struct sysinfo *si);

/* Take one notification from @listener and answer it (sysinfo.c). -1 when
 * the listener fails. */
int cvm_procfs_answer(struct cvm_procfs_server *s, int listener);
/* Answer the one a dead server took from @listener, if it was there. */
void cvm_procfs_answer_pending(struct cvm_procfs_server *s, int listener);

#endif
