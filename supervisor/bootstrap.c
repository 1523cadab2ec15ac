#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bootstrap.h"
#include "env.h"
#include "runtime/exitcode.h"
#include "log.h"
#include "runtime/cleanup.h"
#include "runtime/join.h"

/* What the helper tells PID 1: the script's pid, or why it did not start. */
struct report {
	pid_t pid;
	int status;             /* 0, or 125/126/127 as for cvm exec */
	char msg[1100];
};

/* The helper: a disposable fork of PID 1 that joins the workspace (which a
 * multi-purpose PID 1 must never do itself), starts the script there and
 * exits at once. The script, a child of the helper in the workspace's pid
 * namespace, is then adopted by us (the outer pid namespace's init, or the
 * subreaper): PID 1 reaps it and can signal it without a pid reuse race. */
__attribute__((noreturn)) static void helper(const char *script, const struct cvm_ws_handle *ws,
					    int out_fd, int report_fd)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };
	struct report r = { .pid = -1 };
	struct cvm_error err = { 0 };
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC), cg_fd = -1, efd;
	ssize_t n;

	prctl(PR_SET_NAME, "cvm-bootstrap");
	if (cvm_join_enter(ws, &cg_fd, &err) < 0)
		goto fail;
	struct cvm_join_cmd cmd = {
		.ws = ws, .argv = argv, .stdio = { null_fd, out_fd, out_fd }, .pty_slave = -1,
		.cgroup_procs_fd = cg_fd,
	};
	r.pid = cvm_join_spawn(&cmd, &efd, &err);
	if (r.pid < 0)
		goto fail;
	/* Empty: the script runs. Else a status byte and why it did not. */
	n = read(efd, r.msg, sizeof(r.msg) - 1);
	if (n > 0) {
		r.status = (unsigned char)r.msg[0];
		memmove(r.msg, r.msg + 1, (size_t)n);
	}
	if (write(report_fd, &r, sizeof(r)) < 0)
		_exit(1);
	_exit(0);
fail:
	r.status = CVM_EXIT_SETUP_FAILED;
	snprintf(r.msg, sizeof(r.msg), "%.1000s", err.msg);
	if (write(report_fd, &r, sizeof(r)) < 0)
		_exit(1);
	_exit(0);
}

int cvm_bootstrap_start(struct cvm_bootstrap *b, const char *script,
			const struct cvm_ws_handle *ws, struct cvm_error *err)
{
	cleanup_close int out_r = -1, out_w = -1, rep_r = -1, rep_w = -1;
	int fds[2], status;
	struct report r;
	pid_t h;

	b->pid = -1;
	b->out_fd = -1;
	b->len = 0;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return cvm_error_set(err, errno, "pipe");
	out_r = fds[0];
	out_w = fds[1];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return cvm_error_set(err, errno, "pipe");
	rep_r = fds[0];
	rep_w = fds[1];
	h = fork();
	if (h < 0)
		return cvm_error_set(err, errno, "fork");
	if (h == 0)
		helper(script, ws, out_w, rep_w);
	cvm_closep(&out_w);
	cvm_closep(&rep_w);
	/* The helper only joins and forks: this wait is short. */
	ssize_t n;
	do
		n = read(rep_r, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	while (waitpid(h, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(r))
		return cvm_error_set(err, 0, "the helper that joins the workspace died (status %d)",
				     cvm_exit_status(status));
	r.msg[sizeof(r.msg) - 1] = '\0';
	if (r.pid < 0 || r.status)
		return cvm_error_set(err, 0, "%s", r.msg);
	b->pid = r.pid;
	b->out_fd = steal_fd(&out_r);
	b->secret = cvm_env_get(ws->envp, "CODER_AGENT_TOKEN");
	if (b->secret && !b->secret[0])
		b->secret = NULL;
	fcntl(b->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* One line of output; the agent token is never logged, not even when the
 * script prints it. */
static void log_output(const struct cvm_bootstrap *b, const char *s, size_t len)
{
	char line[sizeof(b->buf) * 2];
	size_t o = 0, n = b->secret ? strlen(b->secret) : 0;

	for (size_t i = 0; i < len && o + 4 < sizeof(line);) {
		if (n && i + n <= len && !memcmp(s + i, b->secret, n)) {
			memcpy(line + o, "***", 3);
			o += 3;
			i += n;
		} else
			line[o++] = s[i++];
	}
	line[o] = '\0';
	log_info("bootstrap", "%s", line);
}

static void log_lines(struct cvm_bootstrap *b, bool flush)
{
	char *start = b->buf, *nl;
	size_t left = b->len;

	while ((nl = memchr(start, '\n', left))) {
		log_output(b, start, (size_t)(nl - start));
		left -= (size_t)(nl + 1 - start);
		start = nl + 1;
	}
	/* A line longer than the buffer is logged in pieces. */
	if (left && (flush || left == sizeof(b->buf))) {
		log_output(b, start, left);
		left = 0;
	}
	memmove(b->buf, start, left);
	b->len = left;
}

static void on_output(struct cvm_pid1 *p, int fd, uint32_t events, void *data)
{
	struct cvm_bootstrap *b = data;
	ssize_t n;

	(void)events;
	while ((n = read(fd, b->buf + b->len, sizeof(b->buf) - b->len)) > 0) {
		b->len += (size_t)n;
		log_lines(b, false);
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		/* Every writer is gone: the script and whatever it started. */
		log_lines(b, true);
		cvm_pid1_unwatch(p, fd);
		cvm_closep(&b->out_fd);
		b->out_fd = -1;
	}
}

int cvm_bootstrap_watch(struct cvm_bootstrap *b, struct cvm_pid1 *p)
{
	p->first_pid = b->pid;
	p->first_name = "bootstrap";
	return cvm_pid1_watch(p, b->out_fd, on_output, b);
}
