#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "procserver.h"
#include "runtime/cleanup.h"
#include "runtime/syscalls.h"

static pid_t spawn(struct cvm_procserver *s)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* The server: a crash here must not be PID 1's, and PID 1's death
	 * must be the server's. Only the FUSE fd goes with it. */
	struct cvm_error err = { 0 };
	prctl(PR_SET_NAME, "cvm-procfs");
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	cvm_pid1_child_reset_signals();
	if (dup2(s->pf.fuse_fd, 3) < 0)
		_exit(1);
	s->pf.fuse_fd = 3;
	sys_close_range(4, ~0U, 0);
	if (cvm_procfs_serve(&s->pf, &err) < 0) {
		log_error("%s", err.msg);
		_exit(1);
	}
	_exit(0);
}

int cvm_procserver_start(struct cvm_procserver *s, const char *cg_top, unsigned owner,
			  bool passthrough, struct cvm_error *err)
{
	memset(s, 0, sizeof(*s));
	s->pid = -1;
	snprintf(s->pf.cg_top, sizeof(s->pf.cg_top), "%s", cg_top ? cg_top : "");
	clock_gettime(CLOCK_BOOTTIME, &s->pf.start);
	s->pf.owner = owner;
	s->pf.passthrough = passthrough;
	s->pf.state = mmap(NULL, cvm_procfs_state_size(), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->pf.state == MAP_FAILED)
		return cvm_error_set(err, errno, "/proc server: shared state");
	s->pf.fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (s->pf.fuse_fd < 0)
		return cvm_error_set(err, errno, "/proc virtualization needs /dev/fuse in the outer "
				     "container (--privileged, or --device /dev/fuse)");
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
	s->pid = spawn(s);
	if (s->pid < 0)
		log_error("/proc server %s and cannot be restarted: %s", how, strerror(errno));
	else
		log_warn("/proc server %s; restarted it on the same connection (restart %u)", how,
			 s->restarts);
}

void cvm_procserver_watch(struct cvm_procserver *s, struct cvm_pid1 *p)
{
	p->on_reap = on_reap;
	p->on_reap_data = s;
}

void cvm_procserver_signal(struct cvm_procserver *s, int sig)
{
	if (s->pid > 0)
		kill(s->pid, sig);
}

void cvm_procserver_close(struct cvm_procserver *s)
{
	cvm_closep(&s->pf.fuse_fd);
}
