/* Running the /proc server (runtime/procfs/) apart from PID 1, and
 * restarting it on the same FUSE connection when it dies. */
#ifndef CVM_PROCSERVER_H
#define CVM_PROCSERVER_H

#include "pid1.h"
#include "runtime/procfs/server.h"

#define CVM_PROCSERVER_MAX_LISTENERS 128

struct cvm_procserver {
	struct cvm_procfs pf;
	pid_t pid;
	unsigned restarts;
	/* sysinfo(2): listeners come in on notify_recv (the inner init and
	 * `cvm exec` commands send on notify_send); PID 1 keeps them all and
	 * passes each to the running server on ctl_send. */
	int notify_recv, notify_send, ctl_send;
	int listeners[CVM_PROCSERVER_MAX_LISTENERS];
	size_t n_listeners;
};

/* Open /dev/fuse and start the server ([proc] @passthrough and @follow).
 * -1 with @err when there is no FUSE. */
int cvm_procserver_start(struct cvm_procserver *s, const char *cg_top, unsigned owner,
			  bool passthrough, bool follow, struct cvm_error *err);

/* Let PID 1's reaping restart the server whenever it dies (until stopping),
 * and its loop take in sysinfo(2) listeners; takes PID 1's on_reap hook. */
void cvm_procserver_watch(struct cvm_procserver *s, struct cvm_pid1 *p);

void cvm_procserver_signal(struct cvm_procserver *s, int sig);
void cvm_procserver_close(struct cvm_procserver *s);

#endif
