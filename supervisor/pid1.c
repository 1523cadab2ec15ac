#include "pid1.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/exitcode.h"
#include "log.h"
#include "runtime/cleanup.h"
#include "runtime/proc.h"
#include "runtime/syscalls.h"

/* Faults are delivered synchronously to the thread that caused them; blocking
 * them would turn a crash into a hang, so they keep their default action. */
static const int sync_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT };

static bool is_sync_signal(int sig)
{
	for (size_t i = 0; i < sizeof(sync_signals) / sizeof(sync_signals[0]); i++)
		if (sync_signals[i] == sig)
			return true;
	return false;
}

static void block_async_signals(sigset_t *set)
{
	sigfillset(set);
	for (size_t i = 0; i < sizeof(sync_signals) / sizeof(sync_signals[0]); i++)
		sigdelset(set, sync_signals[i]);
}

static void reset_ignored(const sigset_t *set)
{
	struct sigaction old, dfl = { .sa_handler = SIG_DFL };

	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(set, sig) == 1 && sig != SIGKILL && sig != SIGSTOP &&
		    sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			sigaction(sig, &dfl, NULL);
}

int cvm_pid1_init(struct cvm_pid1 *p, uint64_t stop_timeout_ms,
		  enum cvm_signal_target target, struct cvm_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t set;

	memset(p, 0, sizeof(*p));
	p->epfd = p->sigfd = p->timerfd = p->main_pidfd = -1;
	p->main_pid = p->first_pid = -1;
	p->stop_timeout_ms = stop_timeout_ms;
	p->signal_target = target;
	p->signal_all = cvm_signal_descendants;
	for (size_t i = 0; i < CVM_PID1_MAX_WATCH; i++)
		p->watches[i].fd = -1;

	block_async_signals(&set);
	if (sigprocmask(SIG_BLOCK, &set, &p->saved_mask) < 0)
		return cvm_error_set(err, errno, "block signals");
	/* An ignored signal is dropped, never queued, so the signalfd would not
	 * see it. A shell starts its background jobs with SIGINT and SIGQUIT
	 * ignored; cvm must still hear and pass them on. Blocked, the default
	 * action does not run. */
	reset_ignored(&set);

	/* Not PID 1 (under a shell, in tests, under docker --init): orphans of
	 * our descendants must come to us, or "no orphan survives" is a lie. */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return cvm_error_set(err, errno, "become child subreaper");

	p->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (p->sigfd < 0)
		return cvm_error_set(err, errno, "signalfd");
	p->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (p->timerfd < 0)
		return cvm_error_set(err, errno, "timerfd_create");
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return cvm_error_set(err, errno, "epoll_create1");
	ev.data.fd = p->sigfd;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->sigfd, &ev) < 0)
		return cvm_error_set(err, errno, "epoll add signalfd");
	ev.data.fd = p->timerfd;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->timerfd, &ev) < 0)
		return cvm_error_set(err, errno, "epoll add timerfd");
	return 0;
}

void cvm_pid1_close(struct cvm_pid1 *p)
{
	cvm_closep(&p->epfd);
	cvm_closep(&p->sigfd);
	cvm_closep(&p->timerfd);
	cvm_closep(&p->main_pidfd);
	p->epfd = p->sigfd = p->timerfd = p->main_pidfd = -1;
}

void cvm_pid1_child_reset_signals(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t empty;

	/* Ignored dispositions survive execve; catatonit leaks them. Reset all. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);
}

int cvm_pid1_set_main(struct cvm_pid1 *p, pid_t pid, struct cvm_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN };

	p->main_pid = pid;
	/* The pidfd wakes the loop on exit even if SIGCHLDs were coalesced. */
	p->main_pidfd = sys_pidfd_open(pid, 0);
	if (p->main_pidfd < 0) {
		if (errno == ESRCH)  /* already gone: the SIGCHLD drain will see it */
			return 0;
		return cvm_error_set(err, errno, "pidfd_open %d", (int)pid);
	}
	ev.data.fd = p->main_pidfd;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->main_pidfd, &ev) < 0)
		return cvm_error_set(err, errno, "epoll add pidfd");
	return 0;
}

int cvm_pid1_watch(struct cvm_pid1 *p, int fd, cvm_watch_cb cb, void *data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	for (size_t i = 0; i < CVM_PID1_MAX_WATCH; i++) {
		if (p->watches[i].fd >= 0)
			continue;
		if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -1;
		p->watches[i] = (struct cvm_pid1_watch){ fd, cb, data };
		return 0;
	}
	errno = ENOSPC;
	return -1;
}

void cvm_pid1_unwatch(struct cvm_pid1 *p, int fd)
{
	for (size_t i = 0; i < CVM_PID1_MAX_WATCH; i++) {
		if (p->watches[i].fd == fd) {
			epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
			p->watches[i].fd = -1;
		}
	}
}

/* ---- signalling everyone ------------------------------------------------ */

struct proc_pair {
	pid_t pid, ppid;
};

static size_t list_processes(struct proc_pair **out)
{
	cleanup_dir DIR *d = opendir("/proc");
	struct proc_pair *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	*out = NULL;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t ppid = cvm_proc_ppid(dirfd(d), de->d_name);
		if (ppid < 0)
			continue;
		if (n == cap) {
			struct proc_pair *nv = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[n++] = (struct proc_pair){ (pid_t)atoi(de->d_name), ppid };
	}
	*out = v;
	return n;
}

int cvm_signal_descendants(int sig, void *data)
{
	cleanup_free struct proc_pair *procs = NULL;
	cleanup_free pid_t *queue = NULL;
	size_t n, head = 0, tail = 0;
	int count = 0;

	(void)data;
	/* As PID 1 of a pid namespace, kill(-1) reaches every process in it but
	 * us, without trusting that /proc is our namespace's. */
	if (getpid() == 1)
		return kill(-1, sig) == 0 ? 1 : 0;

	n = list_processes(&procs);
	queue = calloc(n + 1, sizeof(*queue));
	if (!queue)
		return 0;
	queue[tail++] = getpid();
	while (head < tail) {
		pid_t parent = queue[head++];
		for (size_t i = 0; i < n; i++) {
			if (procs[i].ppid != parent || procs[i].pid == getpid())
				continue;
			if (tail <= n)
				queue[tail++] = procs[i].pid;
			if (kill(procs[i].pid, sig) == 0)
				count++;
		}
	}
	return count;
}

/* ---- the loop ----------------------------------------------------------- */

static void arm_timer(struct cvm_pid1 *p, uint64_t first_ms, uint64_t interval_ms)
{
	struct itimerspec its = {
		.it_value = { (time_t)(first_ms / 1000), (long)(first_ms % 1000) * 1000000 },
		.it_interval = { (time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000 },
	};
	if (first_ms == 0)
		its.it_value.tv_nsec = 1;   /* 0 would disarm it */
	timerfd_settime(p->timerfd, 0, &its, NULL);
}

static void stop_all(struct cvm_pid1 *p)
{
	int n = p->signal_all(SIGTERM, p->signal_all_data);
	/* A stopped process would sit on its SIGTERM until the grace is over. */
	p->signal_all(SIGCONT, p->signal_all_data);
	if (n > 0)
		log_debug("supervisor", "stopping: sent SIGTERM to the workspace, grace period %llu ms",
			  (unsigned long long)p->stop_timeout_ms);
	arm_timer(p, p->stop_timeout_ms, 0);
}

/* The first process's group, SIGCONT after the signal: a stopped process
 * would sit on its SIGTERM. */
static void signal_first(struct cvm_pid1 *p, int sig)
{
	if (kill(-p->first_pid, sig) < 0)
		kill(p->first_pid, sig);
	if (sig != SIGKILL)
		kill(-p->first_pid, SIGCONT);
}

void cvm_pid1_request_stop(struct cvm_pid1 *p, int sig)
{
	if (p->stopping)
		return;
	p->stopping = true;
	if (sig && !p->exit_signal)
		p->exit_signal = sig;
	/* Once the main child is gone, so is the workspace it would have run in. */
	if (p->first_pid > 0 && !p->main_exited) {
		p->first_stopping = true;
		signal_first(p, SIGTERM);
		log_info(p->first_name, "stopping: sent SIGTERM to pid %d, the workspace stops after "
			 "it ends or in %llu ms", (int)p->first_pid,
			 (unsigned long long)p->stop_timeout_ms);
		arm_timer(p, p->stop_timeout_ms, 0);
		return;
	}
	stop_all(p);
}

static void first_ended(struct cvm_pid1 *p, int status)
{
	log_info(p->first_name, "pid %d ended (%s %d)", (int)p->first_pid,
		 WIFSIGNALED(status) ? "signal" : "exit status",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	p->first_pid = -1;
	if (p->first_stopping) {
		p->first_stopping = false;
		stop_all(p);
	}
}

static void grace_over(struct cvm_pid1 *p)
{
	uint64_t ticks;

	if (read(p->timerfd, &ticks, sizeof(ticks)) < 0)
		return;
	if (p->first_stopping) {
		log_warn(p->first_name, "pid %d did not end within the grace period of %llu ms: "
			 "killed it; stopping the workspace", (int)p->first_pid,
			 (unsigned long long)p->stop_timeout_ms);
		signal_first(p, SIGKILL);
		p->first_stopping = false;
		stop_all(p);
		return;
	}
	if (!p->killing) {
		p->killing = true;
		log_warn("supervisor", "grace period of %llu ms is over: killing what is left",
			 (unsigned long long)p->stop_timeout_ms);
		/* Keep killing every 100 ms: a fork racing the first SIGKILL survives it. */
		arm_timer(p, 100, 100);
	}
	p->signal_all(SIGKILL, p->signal_all_data);
}

static void forward_signal(struct cvm_pid1 *p, int sig)
{
	pid_t target;

	if (p->main_exited || p->main_pid <= 0 || (sig == SIGWINCH && p->keep_winch))
		return;
	if (p->signal_target == CVM_SIGNAL_ALL) {
		p->signal_all(sig, p->signal_all_data);
		return;
	}
	target = p->signal_target == CVM_SIGNAL_GROUP ? -p->main_pid : p->main_pid;
	if (kill(target, sig) < 0 && errno != ESRCH)
		log_warn("supervisor", "forward signal %d to %d: %s", sig, (int)target, strerror(errno));
}

static void handle_signals(struct cvm_pid1 *p)
{
	struct signalfd_siginfo si;

	while (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGCHLD || is_sync_signal(sig))
			continue;   /* the drain after every wake-up handles children */
		log_debug("supervisor", "received signal %d from pid %u", sig, si.ssi_pid);
		/* The stop sequence SIGTERMs every process, the main child
		 * included: forwarding the first SIGTERM as well would deliver
		 * it twice. */
		if (sig == SIGTERM && !p->stopping) {
			cvm_pid1_request_stop(p, sig);
			continue;
		}
		forward_signal(p, sig);
		if (sig == SIGINT)
			cvm_pid1_request_stop(p, sig);
	}
}

/* Returns true when no child is left at all. */
static bool reap_all(struct cvm_pid1 *p)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid > 0) {
			if (pid == p->main_pid && !p->main_exited) {
				p->main_exited = true;
				p->main_status = status;
				log_debug("supervisor", "main process %d exited, status %d", (int)pid,
					  cvm_exit_status(status));
			} else if (pid == p->first_pid) {
				first_ended(p, status);
			} else if (p->on_reap) {
				p->on_reap(p, pid, status, p->on_reap_data);
			}
			continue;
		}
		if (pid == 0)
			return false;
		if (errno == EINTR)
			continue;
		return errno == ECHILD;
	}
}

static void dispatch(struct cvm_pid1 *p, int fd, uint32_t events)
{
	if (fd == p->sigfd) {
		handle_signals(p);
	} else if (fd == p->timerfd) {
		grace_over(p);
	} else if (fd == p->main_pidfd) {
		/* the drain below reaps it; stop watching a pidfd that stays readable */
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
		cvm_closep(&p->main_pidfd);
		p->main_pidfd = -1;
	} else {
		for (size_t i = 0; i < CVM_PID1_MAX_WATCH; i++)
			if (p->watches[i].fd == fd)
				p->watches[i].cb(p, fd, events, p->watches[i].data);
	}
}

int cvm_pid1_run(struct cvm_pid1 *p)
{
	struct epoll_event evs[8];

	for (;;) {
		/* Reap first: the main child may be gone before we ever sleep. */
		bool none_left = reap_all(p);
		if (p->main_exited && none_left)
			break;
		/* The main child is gone but others live on: stop them. Only now,
		 * so a plain exit with nothing left behind costs no /proc walk. */
		if (p->main_exited && !p->stopping)
			cvm_pid1_request_stop(p, 0);
		int n = epoll_wait(p->epfd, evs, 8, -1);
		if (n < 0) {
			if (errno != EINTR)
				log_error("supervisor", "epoll_wait: %s", strerror(errno));
			continue;
		}
		for (int i = 0; i < n; i++)
			dispatch(p, evs[i].data.fd, evs[i].events);
	}
	return cvm_exit_status(p->main_status);
}
