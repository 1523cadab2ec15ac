/* Running the /proc server (runtime/procfs/) apart from PID 1, and
 * restarting it on the same FUSE connection when it dies. */
#ifndef CVM_PROCSERVER_H
#define CVM_PROCSERVER_H

#include "pid1.h"
#include "runtime/procfs/server.h"

struct cvm_procserver {
	struct cvm_procfs pf;
	pid_t pid;
	unsigned restarts;
};

/* Open /dev/fuse and start the server. -1 with @err when there is no FUSE. */
int cvm_procserver_start(struct cvm_procserver *s, const char *cg_top, unsigned owner,
			  bool passthrough, struct cvm_error *err);

/* Let PID 1's reaping restart the server whenever it dies (until stopping);
 * takes PID 1's on_reap hook. */
void cvm_procserver_watch(struct cvm_procserver *s, struct cvm_pid1 *p);

void cvm_procserver_signal(struct cvm_procserver *s, int sig);
void cvm_procserver_close(struct cvm_procserver *s);

#endif
