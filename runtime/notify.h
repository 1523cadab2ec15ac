/* sysinfo(2) of the workspace, answered outside: a seccomp filter that
 * turns that one syscall into a user notification (SECCOMP_RET_USER_NOTIF),
 * whose listener goes to cvm's PID 1 and from there to the /proc server,
 * which writes the workspace's values (runtime/procfs/sysinfo.c). */
#ifndef CVM_NOTIFY_H
#define CVM_NOTIFY_H

#include "error.h"

/* Install the filter on the calling thread (inherited by its children,
 * kept across exec) and send its listener over @sock (SCM_RIGHTS), keeping
 * no copy. Needs CAP_SYS_ADMIN in the caller's user namespace. */
int cvm_sysinfo_notify_handoff(int sock, struct cvm_error *err);

/* Receive a listener sent by cvm_sysinfo_notify_handoff (non-blocking):
 * the fd, or -1 (errno EAGAIN: nothing yet; EBADMSG: what came was not a
 * seccomp listener, and it was closed). */
int cvm_sysinfo_notify_recv(int sock);

#endif
