/* The control socket: how `cvm exec` reaches the supervisor. It lives in
 * the outer container's filesystem (default /run/cvm/control.sock, mode
 * 0600, outer root only), which the workspace cannot see.
 *
 * Wire format: SOCK_SEQPACKET, one message per packet, each starting with
 * struct cvm_ctl_hdr (magic "CVM1", native byte order: both ends are this
 * binary on one machine).
 *   client -> server  RUN     value = argc; flags CVM_CTL_TTY; rows/cols of the
 *                             client's terminal; payload: user, workdir, TERM,
 *                             argv[0..argc-1], each NUL-terminated ("" = unset);
 *                             without a tty, SCM_RIGHTS carries stdin/out/err
 *                     SIGNAL  value = signal for the command
 *                     STATUS  flags CVM_CTL_JSON; answered with EXIT whose
 *                             payload is the report (cvm status)
 *   server -> client  PTY     SCM_RIGHTS carries the pty master (tty mode)
 *                     EXIT    value = exit status (code, or 128+signal)
 *                     ERROR   value = exit status (125/126/127); payload: text
 */
#ifndef CVM_CONTROL_H
#define CVM_CONTROL_H

#include <stdint.h>
#include <sys/types.h>

#include "pid1.h"
#include "runtime/join.h"
#include "runtime/cgroup.h"
#include "runtime/error.h"

#define CVM_CTL_MAGIC 0x314d5643u
#define CVM_CTL_MAX 65536
#define CVM_CTL_TTY 1u

enum cvm_ctl_type { CVM_CTL_RUN = 1, CVM_CTL_SIGNAL, CVM_CTL_PTY, CVM_CTL_EXIT, CVM_CTL_ERROR,
		    CVM_CTL_STATUS };
#define CVM_CTL_JSON 2u

struct cvm_ctl_hdr {
	uint32_t magic;
	uint32_t type;
	int32_t value;
	uint32_t flags;
	uint16_t rows, cols;
};

struct cvm_control_ctx {
	const struct cvm_ws_handle *ws;         /* what cvm exec joins */
	const struct cvm_cgroup *cgroup;        /* for cvm status; NULL: none */
};

/* What cvm status prints (text, or one JSON object whose every string is
 * escaped) about the workspace @pid and its cgroup @cg (NULL: none), from
 * the cgroup's files. Returns the length written into @out. */
size_t cvm_status_format(const struct cvm_cgroup *cg, pid_t pid, bool json, char *out, size_t len);

/* Bind and listen; returns a CLOEXEC|NONBLOCK fd. */
int cvm_control_listen(const char *path, struct cvm_error *err);

/* cvm_watch_cb for the listening fd: accepts every pending connection and
 * forks one handler per connection, so a slow client never stalls PID 1. */
void cvm_control_on_ready(struct cvm_pid1 *p, int fd, uint32_t events, void *data);

/* Send one message (with up to 3 fds). 0 or -1. */
int cvm_ctl_sendmsg(int sock, const struct cvm_ctl_hdr *h, const void *payload, size_t len,
		    const int *fds, int n_fds);
int cvm_ctl_send(int sock, uint32_t type, int32_t value, const void *payload, size_t len,
		 const int *fds, int n_fds);

#endif
