#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "procserver.h"
#include "runtime/caps.h"
#include "runtime/cleanup.h"
#include "runtime/fdio.h"
#include "runtime/notify.h"
#include "runtime/syscalls.h"

/* In the server: the FUSE fd as 3, the socket PID 1 sends new sysinfo(2)
 * listeners on as 4, the listeners PID 1 holds from 5 on; nothing else. */
static int arrange_fds(struct cvm_procserver *s, int ctl)
{
	size_t k = 2 + s->n_listeners;
	int src[k], top = ctl > s->pf.fuse_fd ? ctl : s->pf.fuse_fd;
	static int moved[CVM_PROCSERVER_MAX_LISTENERS];

	src[0] = s->pf.fuse_fd;
	src[1] = ctl;
	for (size_t i = 0; i < s->n_listeners; i++) {
		src[2 + i] = s->listeners[i];
		top = s->listeners[i] > top ? s->listeners[i] : top;
	}
	/* Above every source first, so that no dup2 below overwrites one. */
	for (size_t i = 0; i < k; i++)
		if ((src[i] = fcntl(src[i], F_DUPFD, top + 1)) < 0)
			return -1;
	for (size_t i = 0; i < k; i++)
		if (dup2(src[i], 3 + (int)i) < 0)
			return -1;
	sys_close_range(3 + (unsigned)k, ~0U, 0);
	for (size_t i = 0; i < s->n_listeners; i++)
		moved[i] = 5 + (int)i;
	s->pf.fuse_fd = 3;
	s->pf.ctl_fd = 4;
	s->pf.listeners = moved;
	s->pf.n_listeners = s->n_listeners;
	return 0;
}

static pid_t spawn(struct cvm_procserver *s)
{
	int ctl[2];
	pid_t pid;

	/* A fresh socket for each server: what was sent to a dead one and not
	 * read goes with it (PID 1 still has those listeners, and the new
	 * server gets them below). */
	cvm_closep(&s->ctl_send);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		return -1;
	pid = fork();
	if (pid != 0) {
		close(ctl[0]);
		s->ctl_send = ctl[1];
		return pid;
	}
	/* The server: a crash here must not be PID 1's, and PID 1's death
	 * must be the server's. */
	struct cvm_error err = { 0 };
	prctl(PR_SET_NAME, "cvm-procfs");
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	cvm_pid1_child_reset_signals();
	if (arrange_fds(s, ctl[0]) < 0)
		_exit(1);
	/* It reads what the workspace sends: nothing of the outer container's
	 * privilege goes with it but what passthrough and following need, and
	 * only while cvm still has that (a server restarted after cvm dropped
	 * its capabilities serves every open the plain way, from one thread). */
	int kept = cvm_caps_server_drop(s->pf.passthrough, s->pf.follow, &err);
	if (kept < 0) {
		log_error("procfs", "%s", err.msg);
		_exit(1);
	}
	s->pf.follow = s->pf.follow && (kept & CVM_CAPS_KEPT_SYS_NICE);
	if (cvm_procfs_serve(&s->pf, &err) < 0) {
		log_error("procfs", "%s", err.msg);
		_exit(1);
	}
	_exit(0);
}

/* Listeners whose every process is gone report POLLHUP: drop them. */
static void drop_dead_listeners(struct cvm_procserver *s)
{
	for (size_t i = s->n_listeners; i-- > 0;) {
		struct pollfd pfd = { s->listeners[i], 0, 0 };
		if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) {
			close(s->listeners[i]);
			s->listeners[i] = s->listeners[--s->n_listeners];
		}
	}
}

/* A sysinfo(2) listener from the inner init or a `cvm exec` command: keep
 * it (restarted servers get it from here) and pass it to the server. */
static void on_listener(struct cvm_pid1 *p, int fd, uint32_t events, void *data)
{
	struct cvm_procserver *s = data;
	int l;

	(void)p;
	(void)events;
	while ((l = cvm_sysinfo_notify_recv(fd)) >= 0 || errno == EBADMSG) {
		if (l < 0) {
			log_warn("procfs", "/proc server: ignored a message that was not a seccomp listener");
			continue;
		}
		drop_dead_listeners(s);
		if (s->n_listeners == CVM_PROCSERVER_MAX_LISTENERS) {
			/* Closed, its callers' sysinfo(2) fails with ENOSYS rather
			 * than waiting for an answer that never comes. */
			log_warn("procfs", "/proc server: %d sysinfo listeners already; sysinfo(2) of one "
				 "more command fails with ENOSYS", CVM_PROCSERVER_MAX_LISTENERS);
			close(l);
			continue;
		}
		s->listeners[s->n_listeners++] = l;
		if (s->ctl_send >= 0 && cvm_fdio_send_fd(s->ctl_send, l, MSG_DONTWAIT) < 0)
			log_warn("procfs", "/proc server: cannot pass it a sysinfo listener (%s); the next "
				 "server gets it", strerror(errno));
	}
}

int cvm_procserver_start(struct cvm_procserver *s, const char *cg_top, unsigned owner,
			  bool passthrough, bool follow, struct cvm_error *err)
{
	int sv[2];

	memset(s, 0, sizeof(*s));
	s->pid = -1;
	s->ctl_send = s->notify_recv = s->notify_send = -1;
	s->pf.ctl_fd = -1;
	snprintf(s->pf.cg_top, sizeof(s->pf.cg_top), "%s", cg_top ? cg_top : "");
	clock_gettime(CLOCK_BOOTTIME, &s->pf.start);
	s->pf.owner = owner;
	s->pf.passthrough = passthrough;
	s->pf.follow = follow;
	s->pf.state = mmap(NULL, cvm_procfs_state_size(), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->pf.state == MAP_FAILED)
		return cvm_error_set(err, errno, "/proc server: shared state");
	s->pf.fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (s->pf.fuse_fd < 0)
		return cvm_error_set(err, errno, "/proc virtualization needs /dev/fuse in the outer "
				     "container (--privileged, or --device /dev/fuse)");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return cvm_error_set(err, errno, "/proc server: socketpair");
	s->notify_recv = sv[0];
	s->notify_send = sv[1];
	s->pid = spawn(s);
	if (s->pid < 0)
		return cvm_error_set(err, errno, "/proc server: fork");
	return 0;
}

/* PID 1 reaped a process: if it was the server, and it did not end
 * because the mount went away (exit 0), start another on the same fd. */
static void on_reap(struct cvm_pid1 *p, pid_t pid, int wstatus, void *data)
{
	struct cvm_procserver *s = data;
	char how[64];

	if (pid != s->pid)
		return;
	s->pid = -1;
	if ((WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) || p->stopping || p->main_exited)
		return;
	snprintf(how, sizeof(how), WIFEXITED(wstatus) ? "exited with %d" : "was killed by signal %d",
		 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus));
	/* Same fd, same mount: readers never see "Transport endpoint is not
	 * connected"; what the dead one had read, the kernel resends. */
	s->pf.restarted = true;
	s->restarts++;
	if (s->restarts == 1 && s->pf.passthrough)
		log_info("procfs", "restarted /proc servers serve every open the plain way: "
			 "passthrough needs cap_sys_admin, which cvm gave up after setup");
	s->pid = spawn(s);
	if (s->pid < 0)
		log_error("procfs", "/proc server %s and cannot be restarted: %s", how, strerror(errno));
	else
		log_warn("procfs", "/proc server %s; restarted it on the same connection (restart %u)", how,
			 s->restarts);
}

void cvm_procserver_watch(struct cvm_procserver *s, struct cvm_pid1 *p)
{
	p->on_reap = on_reap;
	p->on_reap_data = s;
	fcntl(s->notify_recv, F_SETFL, O_NONBLOCK);
	if (cvm_pid1_watch(p, s->notify_recv, on_listener, s) < 0)
		log_warn("procfs", "/proc server: sysinfo(2) will wait forever inside: %s", strerror(errno));
}

void cvm_procserver_signal(struct cvm_procserver *s, int sig)
{
	if (s->pid > 0)
		kill(s->pid, sig);
}

void cvm_procserver_close(struct cvm_procserver *s)
{
	cvm_closep(&s->pf.fuse_fd);
	cvm_closep(&s->ctl_send);
	cvm_closep(&s->notify_recv);
	cvm_closep(&s->notify_send);
	for (size_t i = 0; i < s->n_listeners; i++)
		close(s->listeners[i]);
	s->n_listeners = 0;
}
