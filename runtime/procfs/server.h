/* The /proc server: a FUSE file system of the virtual files, bound over
 * the workspace's /proc and /sys entries. It speaks the kernel's FUSE
 * protocol itself (the handful of requests a directory of read-only files
 * needs: INIT, LOOKUP, GETATTR, OPEN, READ, RELEASE, FORGET) rather than
 * through libfuse: no thread pool, no library state to lose, and a
 * restarted server just keeps reading the same /dev/fuse fd, which PID 1
 * holds, so the mount never breaks (lxcfs #193). Where the kernel has FUSE
 * passthrough, a process that opens a file again gets its snapshot as a
 * backing file the kernel reads itself (server.c says when, and why not
 * always). One thread serves; a second, the follower, takes over while a
 * reader loops, from that reader's CPU (server.c says why). It also
 * answers the workspace's sysinfo(2) (sysinfo.c). */
#ifndef CVM_PROCFS_SERVER_H
#define CVM_PROCFS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "runtime/error.h"
#include "files.h"          /* CVM_PROCFS_FILES, cvm_procfs_target() */

/* What a server leaves for the next one (backing ids and the passthrough
 * opens that pin them): PID 1 maps it shared before the first server. */
struct cvm_procfs_state;
size_t cvm_procfs_state_size(void);

struct cvm_procfs {
	int fuse_fd;                    /* /dev/fuse, the connection */
	char cg_top[4096];              /* the workspace's cgroup (outer path); "" if none */
	struct timespec start;          /* CLOCK_BOOTTIME when the workspace started */
	bool restarted;                 /* ask the kernel to resend what a dead server took */
	unsigned owner;                 /* outer uid/gid of the workspace's root: files are its */
	struct cvm_procfs_state *state; /* shared across restarts; NULL: the server's own */
	bool passthrough;               /* ask for FUSE passthrough ([proc] passthrough) */
	bool follow;                    /* answer from the readers' CPUs ([proc] follow) */
	/* sysinfo(2) listeners (runtime/notify.h): those PID 1 holds now, and
	 * a socket it sends new ones on; -1 / 0: none. */
	int ctl_fd;
	const int *listeners;
	size_t n_listeners;
};

/* Serve until the connection goes away (0) or fails (-1 with @err). */
int cvm_procfs_serve(const struct cvm_procfs *p, struct cvm_error *err);

/* One server's state (state.h), for answering requests without serving:
 * the unit tests and the fuzzer. @p must outlive it. NULL: no memory. */
struct cvm_procfs_server;
struct cvm_procfs_server *cvm_procfs_server_new(const struct cvm_procfs *p);
void cvm_procfs_server_free(struct cvm_procfs_server *s);

/* Answer one request read from /dev/fuse (@n bytes) on @fd. Exposed for
 * the fuzzer: whatever the bytes, an error reply or nothing, never a crash. */
int cvm_procfs_handle(struct cvm_procfs_server *s, int fd, const char *req, size_t n);

#endif
