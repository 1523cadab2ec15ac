/* The console relay. Why a process of its own: a terminal that stops
 * reading (a paused `docker attach`, a suspended ssh) blocks the writer,
 * and PID 1 must never block; and what parses the workspace's bytes should
 * hold no privilege. Why it keeps a slave open: an init such as systemd
 * opens /dev/console, writes and closes it again, and a pty whose last
 * slave closes reads as hung up; the workspace's end is told by its pidfd
 * instead. */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "tty.h"
#include "runtime/caps.h"
#include "runtime/syscalls.h"

enum { FD_MASTER = 3, FD_PIDFD = 4 };

__attribute__((noreturn)) static void relay(void)
{
	struct cvm_relay r = { STDIN_FILENO, STDOUT_FILENO, FD_MASTER };
	struct pollfd p[2 + CVM_RELAY_NFDS] = { { FD_PIDFD, POLLIN, 0 } };
	struct cvm_error err = { 0 };
	sigset_t winch;
	int slave;

	/* Blocked already (inherited from PID 1); read through a signalfd. */
	sigemptyset(&winch);
	sigaddset(&winch, SIGWINCH);
	p[1] = (struct pollfd){ signalfd(-1, &winch, SFD_CLOEXEC), POLLIN, 0 };
	slave = ioctl(FD_MASTER, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0 || p[1].fd < 0 || cvm_caps_drop_all(&err) < 0) {
		log_error("console", "the console relay cannot start: %s",
			  err.msg[0] ? err.msg : strerror(errno));
		_exit(1);
	}
	fcntl(FD_MASTER, F_SETFL, O_NONBLOCK);
	for (;;) {
		cvm_relay_poll_set(&r, p + 2);
		if (poll(p, 2 + CVM_RELAY_NFDS, -1) < 0 && errno != EINTR)
			_exit(1);
		cvm_relay_pump(&r, p + 2);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(p[1].fd, &si, sizeof(si)) == sizeof(si))
				cvm_relay_winsize(&r);
		}
		if (p[0].revents & POLLIN) {
			cvm_relay_drain(&r);
			_exit(0);
		}
	}
}

pid_t cvm_console_start(int master, int ws_pidfd, struct cvm_error *err)
{
	pid_t pid = fork();

	if (pid < 0)
		return cvm_error_set(err, errno, "console relay: fork");
	if (pid > 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "cvm-console");
	/* Out of the way first: either may already sit at 3 or 4. */
	master = fcntl(master, F_DUPFD_CLOEXEC, 10);
	ws_pidfd = fcntl(ws_pidfd, F_DUPFD_CLOEXEC, 10);
	if (master < 0 || ws_pidfd < 0 || dup2(master, FD_MASTER) < 0 ||
	    dup2(ws_pidfd, FD_PIDFD) < 0) {
		log_error("console", "the console relay cannot start: %s", strerror(errno));
		_exit(1);
	}
	sys_close_range(FD_PIDFD + 1, ~0U, 0);
	relay();
}
