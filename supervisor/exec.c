/* cvm exec: run a command inside the running workspace, through the
 * supervisor's control socket (see control.h for the wire format). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "control.h"
#include "runtime/exitcode.h"
#include "tty.h"
#include "runtime/fdio.h"

static void exec_usage(FILE *out)
{
	fputs("Usage: cvm exec [OPTIONS] [--] CMD [ARG...]\n"
	      "\n"
	      "Run CMD inside the running workspace, as `kubectl exec` or a Coder agent\n"
	      "would: in its namespaces and cgroup, as its user, with its environment.\n"
	      "Run it in the outer container (kubectl exec POD -- cvm exec -- bash):\n"
	      "the control socket is not reachable from inside the workspace.\n"
	      "\n"
	      "Options:\n"
	      "  -u, --user USER      name, uid or uid:gid inside (default: [workspace] user)\n"
	      "  -w, --workdir DIR    working directory inside (default: the user's home)\n"
	      "  -t, --tty            give CMD a terminal (a pty of the workspace) and\n"
	      "                       follow this terminal's size\n"
	      "      --socket PATH    the supervisor's control socket (default: [supervisor]\n"
	      "                       control_socket as `cvm run` reads it: the config file,\n"
	      "                       then $CVM_SUPERVISOR_CONTROL_SOCKET; else\n"
	      "                       " CVM_DEFAULT_CONTROL_SOCKET ")\n"
	      "  -c, --config FILE    INI config (default $CVM_CONFIG, else " CVM_DEFAULT_CONFIG_PATH "\n"
	      "                       if present)\n"
	      "  -h, --help           show this help\n"
	      "\n"
	      "Exit status: CMD's, or 128+N when signal N killed it; 127 if CMD is not\n"
	      "found, 126 if it cannot be run, 125 if cvm could not start it.\n"
	      "\n"
	      "Examples:\n"
	      "  cvm exec -- ps aux\n"
	      "  cvm exec -t -u coder -w /home/coder -- bash -l\n", out);
}

struct exec_args {
	const char *user, *workdir, *socket, *config;
	char socket_path[4096];
	bool tty;
	char **argv;
	int argc;
};

static int parse_exec_args(int argc, char *argv[], struct exec_args *a)
{
	static const struct option longopts[] = {
		{ "user", required_argument, NULL, 'u' }, { "workdir", required_argument, NULL, 'w' },
		{ "tty", no_argument, NULL, 't' }, { "socket", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	struct cvm_error err = { 0 };
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+u:w:tc:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u': a->user = optarg; break;
		case 'w': a->workdir = optarg; break;
		case 't': a->tty = true; break;
		case 'S': a->socket = optarg; break;
		case 'c': a->config = optarg; break;
		case 'h': exec_usage(stdout); return 1;
		default: return -1;
		}
	}
	a->argv = argv + optind;
	a->argc = argc - optind;
	if (a->argc < 1 || a->argc > 255) {
		fputs("cvm exec: give a command: cvm exec [-t] -- CMD [ARG...]\n", stderr);
		return -1;
	}
	if (cvm_config_control_socket(a->config, a->socket, a->socket_path, sizeof(a->socket_path),
				      &err) < 0) {
		fprintf(stderr, "cvm exec: %s\n", err.msg);
		return -1;
	}
	a->socket = a->socket_path;
	return 0;
}

static int connect_supervisor(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "cvm exec: cannot reach the workspace supervisor at %s: %s; is "
			"`cvm run --rootfs ...` running in this container?\n", path, strerror(errno));
		return -1;
	}
	return fd;
}

static int send_run(int sock, const struct exec_args *a)
{
	char buf[CVM_CTL_MAX];
	size_t len = 0;
	const char *term = a->tty && getenv("TERM") ? getenv("TERM") : "";
	const char *head[3] = { a->user ? a->user : "", a->workdir ? a->workdir : "", term };
	struct cvm_ctl_hdr h = { .magic = CVM_CTL_MAGIC, .type = CVM_CTL_RUN, .value = a->argc,
				 .flags = a->tty ? CVM_CTL_TTY : 0 };
	struct winsize ws;
	static const int stdio[3] = { 0, 1, 2 };

	if (a->tty && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
		h.rows = ws.ws_row;
		h.cols = ws.ws_col;
	}
	for (int i = 0; i < 3 + a->argc; i++) {
		const char *s = i < 3 ? head[i] : a->argv[i - 3];
		size_t n = strlen(s) + 1;
		if (len + n > sizeof(buf) - sizeof(h)) {
			fputs("cvm exec: command line too long\n", stderr);
			return -1;
		}
		memcpy(buf + len, s, n);
		len += n;
	}
	/* Without a tty the command gets our stdin/stdout/stderr themselves. */
	if (cvm_ctl_sendmsg(sock, &h, buf, len, a->tty ? NULL : stdio, a->tty ? 0 : 3) < 0) {
		fprintf(stderr, "cvm exec: send: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* One message from the supervisor; a PTY message's fd goes to *@fd. */
static int recv_reply(int sock, struct cvm_ctl_hdr *h, char *text, size_t text_len, int *fd)
{
	struct iovec iov[2] = { { h, sizeof(*h) }, { text, text_len - 1 } };
	int got = -1, n_fds;
	ssize_t n = cvm_fdio_recv(sock, iov, 2, &got, 1, &n_fds, 0);

	if (n_fds && fd)
		*fd = got;
	else if (n_fds)
		close(got);
	if (n < (ssize_t)sizeof(*h) || h->magic != CVM_CTL_MAGIC)
		return -1;
	text[n - (ssize_t)sizeof(*h)] = '\0';
	return 0;
}

/* EXIT or ERROR: what cvm exec itself exits with. */
static int final_status(const struct cvm_ctl_hdr *h, const char *text)
{
	if (h->type == CVM_CTL_ERROR) {
		fprintf(stderr, "cvm exec: %s\n", text);
		return h->value ? h->value : CVM_EXIT_SETUP_FAILED;
	}
	return h->type == CVM_CTL_EXIT ? h->value : CVM_EXIT_SETUP_FAILED;
}

static void forward_signal(int sock, int sig)
{
	cvm_ctl_send(sock, CVM_CTL_SIGNAL, sig, NULL, 0, NULL, 0);
}

static int signal_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGWINCH);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC);
}

/* The terminal proxy: stdin -> pty, pty -> stdout, until the command ends. */
static int relay_tty(int sock, int master, int sfd)
{
	struct cvm_relay r = { STDIN_FILENO, STDOUT_FILENO, master };
	struct pollfd p[2 + CVM_RELAY_NFDS] = { { sock, POLLIN, 0 }, { sfd, POLLIN, 0 } };
	struct cvm_ctl_hdr h;
	char text[1024];

	for (;;) {
		cvm_relay_poll_set(&r, p + 2);
		if (poll(p, 2 + CVM_RELAY_NFDS, -1) < 0 && errno != EINTR)
			return CVM_EXIT_SETUP_FAILED;
		/* Every slave closed means the command is done: its status
		 * comes on the socket. */
		cvm_relay_pump(&r, p + 2);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGWINCH)
					cvm_relay_winsize(&r);
				else
					forward_signal(sock, (int)si.ssi_signo);
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			if (recv_reply(sock, &h, text, sizeof(text), NULL) < 0)
				return CVM_EXIT_SETUP_FAILED;
			/* Output the command wrote just before it ended. */
			cvm_relay_drain(&r);
			return final_status(&h, text);
		}
	}
}

static struct cvm_tty_raw saved_tty = { .fd = -1 };

static void restore_tty(void)
{
	cvm_tty_restore(&saved_tty);
}

static int run_tty(int sock, int sfd)
{
	struct cvm_ctl_hdr h;
	char text[1024];
	int master = -1, status;

	if (recv_reply(sock, &h, text, sizeof(text), &master) < 0)
		return CVM_EXIT_SETUP_FAILED;
	if (h.type != CVM_CTL_PTY || master < 0)
		return final_status(&h, text);
	fcntl(master, F_SETFL, O_NONBLOCK);
	if (cvm_tty_make_raw(&saved_tty, STDIN_FILENO) == 0)
		atexit(restore_tty);
	status = relay_tty(sock, master, sfd);
	restore_tty();
	return status;
}

static int run_plain(int sock, int sfd)
{
	struct pollfd p[2] = { { sock, POLLIN, 0 }, { sfd, POLLIN, 0 } };
	struct cvm_ctl_hdr h;
	char text[1024];

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return CVM_EXIT_SETUP_FAILED;
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGWINCH)
				forward_signal(sock, (int)si.ssi_signo);
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			if (recv_reply(sock, &h, text, sizeof(text), NULL) < 0) {
				fputs("cvm exec: the supervisor hung up\n", stderr);
				return CVM_EXIT_SETUP_FAILED;
			}
			return final_status(&h, text);
		}
	}
}

int cvm_cmd_exec(int argc, char *argv[])
{
	struct exec_args a = { 0 };
	int r = parse_exec_args(argc, argv, &a), sock, sfd;

	if (r != 0)
		return r > 0 ? 0 : 2;
	sock = connect_supervisor(a.socket);
	if (sock < 0)
		return CVM_EXIT_SETUP_FAILED;
	sfd = signal_fd();
	if (send_run(sock, &a) < 0)
		return CVM_EXIT_SETUP_FAILED;
	return a.tty ? run_tty(sock, sfd) : run_plain(sock, sfd);
}

/* ---- cvm status ---------------------------------------------------------- */

static void status_usage(FILE *out)
{
	fputs("Usage: cvm status [--json] [--socket PATH] [--config FILE]\n"
	      "\n"
	      "Print the running workspace's limits and current use, read from its\n"
	      "cgroup: memory, CPU quota and time used, processes. Run it in the\n"
	      "outer container. n/a (null in JSON): that controller is not available.\n"
	      "\n"
	      "Options:\n"
	      "      --json           one JSON object instead of text\n"
	      "      --socket PATH    the supervisor's control socket (default: as cvm exec)\n"
	      "  -c, --config FILE    INI config (default $CVM_CONFIG, else " CVM_DEFAULT_CONFIG_PATH "\n"
	      "                       if present)\n"
	      "  -h, --help           show this help\n", out);
}

int cvm_cmd_status(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' }, { "socket", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	struct cvm_ctl_hdr h = { .magic = CVM_CTL_MAGIC, .type = CVM_CTL_STATUS };
	const char *flag = NULL, *config = NULL;
	static char text[16384], path[4096];
	struct cvm_error err = { 0 };
	int opt, sock;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (opt == 'j')
			h.flags |= CVM_CTL_JSON;
		else if (opt == 'S')
			flag = optarg;
		else if (opt == 'c')
			config = optarg;
		else if (opt == 'h') {
			status_usage(stdout);
			return 0;
		} else
			return 2;
	}
	if (cvm_config_control_socket(config, flag, path, sizeof(path), &err) < 0) {
		fprintf(stderr, "cvm status: %s\n", err.msg);
		return 2;
	}
	sock = connect_supervisor(path);
	if (sock < 0)
		return CVM_EXIT_SETUP_FAILED;
	if (cvm_ctl_sendmsg(sock, &h, NULL, 0, NULL, 0) < 0 ||
	    recv_reply(sock, &h, text, sizeof(text), NULL) < 0) {
		fputs("cvm status: no answer from the supervisor\n", stderr);
		return CVM_EXIT_SETUP_FAILED;
	}
	if (h.type != CVM_CTL_EXIT)
		return final_status(&h, text);
	fputs(text, stdout);
	return 0;
}
