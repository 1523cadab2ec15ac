#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "control.h"
#include "env.h"
#include "runtime/exitcode.h"
#include "log.h"
#include "runtime/cleanup.h"
#include "runtime/fdio.h"
#include "runtime/join.h"
#include "runtime/mounts.h"
#include "runtime/syscalls.h"

int cvm_ctl_sendmsg(int sock, const struct cvm_ctl_hdr *h, const void *payload, size_t len,
		    const int *fds, int n_fds)
{
	struct iovec iov[2] = { { (void *)h, sizeof(*h) }, { (void *)payload, len } };

	return cvm_fdio_send(sock, iov, len ? 2 : 1, fds, n_fds, 0) < 0 ? -1 : 0;
}

int cvm_ctl_send(int sock, uint32_t type, int32_t value, const void *payload, size_t len,
		 const int *fds, int n_fds)
{
	struct cvm_ctl_hdr h = { .magic = CVM_CTL_MAGIC, .type = type, .value = value };
	return cvm_ctl_sendmsg(sock, &h, payload, len, fds, n_fds);
}

int cvm_control_listen(const char *path, struct cvm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	cleanup_close int fd = -1;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return cvm_error_set(err, 0, "control socket %s: path too long", path);
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	*strrchr(dir, '/') = '\0';
	if (dir[0] && mkdir(dir, 0700) < 0 && errno == ENOENT && strrchr(dir, '/') != dir) {
		/* An outer image FROM scratch has no /run: make the parent too. */
		*strrchr(dir, '/') = '\0';
		mkdir(dir, 0755);
		dir[strlen(dir)] = '/';
	}
	if (dir[0] && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return cvm_error_set(err, errno, "control socket dir %s", dir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return cvm_error_set(err, errno, "control socket");
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* Left by an earlier cvm, unless one still answers there. */
		cleanup_close int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return cvm_error_set(err, 0, "control socket %s: another cvm is listening "
					     "there; give this one its own --control-socket", path);
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 16) < 0)
		return cvm_error_set(err, errno, "control socket %s", path);
	return steal_fd(&fd);
}

/* ---- one connection, in its own process ---------------------------------- */

struct request {
	struct cvm_ctl_hdr h;
	char buf[CVM_CTL_MAX];
	char *user, *workdir, *term;
	char *argv[256];
	int fds[3];
	int n_fds;
};

static int read_request(int conn, struct request *r)
{
	struct iovec iov[2] = { { &r->h, sizeof(r->h) }, { r->buf, sizeof(r->buf) - 1 } };
	ssize_t n = cvm_fdio_recv(conn, iov, 2, r->fds, 3, &r->n_fds, 0);
	char *p = r->buf, *end;
	int i;

	if (n < (ssize_t)sizeof(r->h) || r->h.magic != CVM_CTL_MAGIC)
		return -1;
	if (r->h.type == CVM_CTL_STATUS)
		return 0;
	if (r->h.type != CVM_CTL_RUN)
		return -1;
	end = r->buf + (n - (ssize_t)sizeof(r->h));
	*end = '\0';
	char **fields[3] = { &r->user, &r->workdir, &r->term };
	for (i = 0; i < 3; i++, p += strlen(p) + 1) {
		if (p >= end)
			return -1;
		*fields[i] = p;
	}
	for (i = 0; i < r->h.value && i < 255 && p < end; i++, p += strlen(p) + 1)
		r->argv[i] = p;
	r->argv[i] = NULL;
	return (i == r->h.value && i > 0) ? 0 : -1;
}

static int open_pty(int *master, int *slave, const struct cvm_ctl_hdr *h)
{
	struct cvm_error err = { 0 };

	/* /dev/ptmx is the workspace's now: the pty belongs to its devpts. */
	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0)
		return -1;
	*slave = cvm_pty_slave(*master, h->rows, h->cols, &err);
	return *slave < 0 ? -1 : 0;
}

/* Relay signals from the client; hang up when the client goes away. */
static int wait_command(int conn, pid_t pid)
{
	int pfd = sys_pidfd_open(pid, 0), status;
	struct pollfd fds[2] = { { conn, POLLIN, 0 }, { pfd, POLLIN, 0 } };

	while (pfd >= 0 && poll(fds, 2, -1) >= 0 && !(fds[1].revents & POLLIN)) {
		struct cvm_ctl_hdr h;
		if (!(fds[0].revents & (POLLIN | POLLHUP)))
			continue;
		ssize_t n = recv(conn, &h, sizeof(h), 0);
		if (n <= 0) {
			kill(-pid, SIGHUP);     /* client gone: as when a terminal closes */
			kill(pid, SIGHUP);
			fds[0].fd = -1;
		} else if (n == sizeof(h) && h.magic == CVM_CTL_MAGIC && h.type == CVM_CTL_SIGNAL &&
			   h.value > 0 && h.value < NSIG)
			kill(pid, h.value);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return CVM_EXIT_SETUP_FAILED;
	return cvm_exit_status(status);
}

__attribute__((noreturn)) static void fail(int conn, int status, const char *msg)
{
	cvm_ctl_send(conn, CVM_CTL_ERROR, status, msg, strlen(msg) + 1, NULL, 0);
	_exit(0);
}

/* ---- cvm status --------------------------------------------------------- */

struct status_item {
	const char *name;       /* JSON key and label */
	const char *file;
	const char *label;
};

static const struct status_item status_items[] = {
	{ "memory_current", "memory.current", "memory used (bytes)" },
	{ "memory_max", "memory.max", "memory limit" },
	{ "memory_high", "memory.high", "memory high" },
	{ "swap_max", "memory.swap.max", "swap limit" },
	{ "cpu_max", "cpu.max", "cpu.max (quota period)" },
	{ "cpuset_cpus", "cpuset.cpus", "cpuset" },
	{ "pids_current", "pids.current", "processes" },
	{ "pids_max", "pids.max", "process limit" },
	{ "io_weight", "io.weight", "io weight" },
};

/* Append to @out (@len bytes, *@used of them taken); never past the end. */
static void put(char *out, size_t len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(char *out, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *used, len - *used, fmt, ap);
	va_end(ap);
	*used = n < 0 ? *used : *used + (size_t)n < len ? *used + (size_t)n : len - 1;
}

size_t cvm_status_format(const struct cvm_cgroup *cg, pid_t pid, bool json, char *out, size_t len)
{
	const char *where = cg ? cg->ws : "none (cvm is not PID 1)";
	char v[256], usage[256] = "", esc[2 * sizeof(cg->ws) + 8];
	size_t used = 0;

	if (json)
		put(out, len, &used, "{\"pid\": %d, \"cgroup\": %s", (int)pid,
		    cvm_json_string(esc, sizeof(esc), where));
	else
		put(out, len, &used, "workspace pid %d\ncgroup           %s\n", (int)pid, where);
	for (size_t i = 0; i < sizeof(status_items) / sizeof(status_items[0]); i++) {
		const struct status_item *it = &status_items[i];
		bool ok = cg && cvm_cgroup_read(cg, it->file, v, sizeof(v)) == 0;
		if (json)
			put(out, len, &used, ", \"%s\": %s", it->name,
			    cvm_json_string(esc, sizeof(esc), ok ? v : NULL));
		else
			put(out, len, &used, "%-16s %s\n", it->label, ok ? v : "n/a");
	}
	if (cg && cvm_cgroup_read(cg, "cpu.stat", usage, sizeof(usage)) == 0)
		usage[strcspn(usage, "\n")] = '\0';
	const char *usec = strstr(usage, "usage_usec ");
	usec = usec ? usec + 11 : NULL;
	if (json)       /* a number, if it is one */
		put(out, len, &used, ", \"cpu_usage_usec\": %s}\n",
		    usec && usec[strspn(usec, "0123456789")] == '\0' && *usec ? usec : "null");
	else
		put(out, len, &used, "cpu used (usec)  %s\n", usec ? usec : "n/a");
	return used;
}

/* One line per cgroup file we can read; "n/a" when the controller is off. */
__attribute__((noreturn)) static void status_reply(int conn, const struct cvm_control_ctx *ctx,
						   bool json)
{
	static char out[8192];
	size_t len = cvm_status_format(ctx->cgroup, ctx->ws->pid, json, out, sizeof(out));

	cvm_ctl_send(conn, CVM_CTL_EXIT, 0, out, len + 1, NULL, 0);
	_exit(0);
}

__attribute__((noreturn)) static void handle(int conn, const struct cvm_control_ctx *ctx)
{
	static struct request r;
	struct cvm_error err = { 0 };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv = { 10, 0 };
	int master = -1, slave = -1, efd, cg_fd = -1;
	char **env;
	char msg[1024];

	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0)
		fail(conn, CVM_EXIT_SETUP_FAILED, "only root of the outer container may use cvm exec");
	setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (read_request(conn, &r) < 0)
		fail(conn, CVM_EXIT_SETUP_FAILED, "malformed request");
	if (r.h.type == CVM_CTL_STATUS)
		status_reply(conn, ctx, r.h.flags & CVM_CTL_JSON);
	env = calloc(1, sizeof(char *));
	for (size_t i = 0; env && ctx->ws->envp[i]; i++) {
		char *eq = strchr(ctx->ws->envp[i], '=');
		*eq = '\0';
		cvm_env_set(&env, ctx->ws->envp[i], eq + 1);
		*eq = '=';
	}
	if (env && r.term[0])
		cvm_env_set(&env, "TERM", r.term);
	if (cvm_join_enter(ctx->ws, &cg_fd, &err) < 0)
		fail(conn, CVM_EXIT_SETUP_FAILED, err.msg);
	if ((r.h.flags & CVM_CTL_TTY) && open_pty(&master, &slave, &r.h) < 0)
		fail(conn, CVM_EXIT_SETUP_FAILED, "cannot open a pty in the workspace");
	struct cvm_join_cmd cmd = {
		.ws = ctx->ws, .argv = r.argv, .envp = env, .user = r.user[0] ? r.user : NULL,
		.workdir = r.workdir[0] ? r.workdir : NULL,
		.stdio = { r.n_fds > 0 ? r.fds[0] : -1, r.n_fds > 1 ? r.fds[1] : -1,
			   r.n_fds > 2 ? r.fds[2] : -1 },
		.pty_slave = slave,
		.cgroup_procs_fd = cg_fd,
	};
	pid_t pid = cvm_join_spawn(&cmd, &efd, &err);
	if (pid < 0)
		fail(conn, CVM_EXIT_SETUP_FAILED, err.msg);
	for (int i = 0; i < r.n_fds && i < 3; i++)
		close(r.fds[i]);
	cvm_closep(&slave);
	ssize_t n = read(efd, msg, sizeof(msg) - 1);
	if (n > 0) {
		msg[n] = '\0';
		waitpid(pid, NULL, 0);
		fail(conn, (unsigned char)msg[0], msg + 1);
	}
	if (master >= 0 && cvm_ctl_send(conn, CVM_CTL_PTY, 0, NULL, 0, &master, 1) < 0)
		kill(pid, SIGHUP);
	cvm_closep(&master);
	cvm_ctl_send(conn, CVM_CTL_EXIT, wait_command(conn, pid), NULL, 0, NULL, 0);
	_exit(0);
}

void cvm_control_on_ready(struct cvm_pid1 *p, int fd, uint32_t events, void *data)
{
	int conn;

	(void)p;
	(void)events;
	while ((conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		pid_t pid = fork();
		if (pid == 0)
			handle(conn, data);
		if (pid < 0)
			log_warn("control", "cvm exec: fork: %s", strerror(errno));
		close(conn);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_warn("control", "control socket: accept: %s", strerror(errno));
}
