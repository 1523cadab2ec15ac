/* The PID 1 core: one epoll loop over a signalfd, the main child's pidfd, a
 * stop timer and whatever else the supervisor watches (control socket, /proc
 * server). It reaps every process, forwards signals and stops gracefully. */
#ifndef CVM_PID1_H
#define CVM_PID1_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct cvm_pid1;

typedef void (*cvm_watch_cb)(struct cvm_pid1 *p, int fd, uint32_t events, void *data);
/* Called for every reaped process that is not the main child. */
typedef void (*cvm_reap_cb)(struct cvm_pid1 *p, pid_t pid, int wstatus, void *data);
/* Signal every process of the workspace except cvm itself; returns how many
 * were signalled (0: none left that we can see). */
typedef int (*cvm_signal_all_cb)(int sig, void *data);

#define CVM_PID1_MAX_WATCH 16

struct cvm_pid1_watch {
	int fd;
	cvm_watch_cb cb;
	void *data;
};

struct cvm_pid1 {
	int epfd;
	int sigfd;
	int timerfd;
	sigset_t saved_mask;           /* the mask cvm started with */
	uint64_t stop_timeout_ms;
	enum cvm_signal_target signal_target;
	/* Keep SIGWINCH: a workspace's init is not on cvm's terminal (the
	 * console relay passes the size on; systemd takes SIGWINCH as the
	 * keyboard request). */
	bool keep_winch;

	pid_t main_pid;
	int main_pidfd;
	bool main_exited;
	int main_status;               /* wait status of the main child */

	/* A process stopped before all others (cvm run's bootstrap, the way the
	 * Coder agent starts): on stop its process group gets SIGTERM and up to
	 * the grace period while everything else keeps running, then the usual
	 * stop. It must be our child (or adopted by us). -1: none. */
	pid_t first_pid;
	const char *first_name;        /* its log component */
	bool first_stopping;           /* its grace is running */

	bool stopping;                 /* SIGTERM sent to everyone, grace running */
	bool killing;                  /* grace over: SIGKILL until none is left */
	int exit_signal;               /* signal that made cvm stop, 0 if none */

	cvm_reap_cb on_reap;
	void *on_reap_data;
	cvm_signal_all_cb signal_all;
	void *signal_all_data;

	struct cvm_pid1_watch watches[CVM_PID1_MAX_WATCH];
};

/* Block every asynchronous signal, open signalfd/epoll/timerfd, and become a
 * child subreaper when not PID 1. Call before spawning anything. */
int cvm_pid1_init(struct cvm_pid1 *p, uint64_t stop_timeout_ms,
		  enum cvm_signal_target target, struct cvm_error *err);
void cvm_pid1_close(struct cvm_pid1 *p);

/* In a freshly forked child, before exec: default dispositions, empty mask. */
void cvm_pid1_child_reset_signals(void);

/* Hand the loop the main child; its exit starts the stop sequence. */
int cvm_pid1_set_main(struct cvm_pid1 *p, pid_t pid, struct cvm_error *err);

int cvm_pid1_watch(struct cvm_pid1 *p, int fd, cvm_watch_cb cb, void *data);
void cvm_pid1_unwatch(struct cvm_pid1 *p, int fd);

/* Begin the graceful stop (SIGTERM everyone, grace, SIGKILL). */
void cvm_pid1_request_stop(struct cvm_pid1 *p, int sig);

/* Run until the main child has exited and no process is left.
 * Returns the exit status for cvm (main child's code or 128+signal). */
int cvm_pid1_run(struct cvm_pid1 *p);

/* The default "signal everyone": kill(-1) as PID 1 of a pid namespace, else
 * a /proc walk of our descendants. Exposed for the workspace variant. */
int cvm_signal_descendants(int sig, void *data);

#endif
