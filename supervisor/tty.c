#include "tty.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

int cvm_tty_make_raw(struct cvm_tty_raw *t, int fd)
{
	struct termios raw;

	t->fd = fd;
	t->on = false;
	if (!isatty(fd) || tcgetattr(fd, &t->saved) < 0)
		return -1;
	raw = t->saved;
	cfmakeraw(&raw);
	if (tcsetattr(fd, TCSANOW, &raw) < 0)
		return -1;
	t->on = true;
	return 0;
}

void cvm_tty_restore(struct cvm_tty_raw *t)
{
	if (t->on)
		tcsetattr(t->fd, TCSAFLUSH, &t->saved);
	t->on = false;
}

/* Write all of @buf; a full non-blocking pty waits for room rather than
 * drop what was typed. */
static int write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { fd, POLLOUT, 0 };
			poll(&p, 1, -1);
			continue;
		}
		if (w < 0 && errno != EINTR)
			return -1;
		if (w > 0) {
			buf += w;
			n -= (size_t)w;
		}
	}
	return 0;
}

/* One read from @from written to @to: -1 when @from has ended (EOF, EIO
 * of a pty whose other side is gone) or @to cannot take it. */
static int copy_some(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	return write_all(to, buf, (size_t)n);
}

void cvm_relay_poll_set(const struct cvm_relay *r, struct pollfd *p)
{
	p[0] = (struct pollfd){ r->master, POLLIN, 0 };
	p[1] = (struct pollfd){ r->in, POLLIN, 0 };
}

int cvm_relay_pump(struct cvm_relay *r, const struct pollfd *p)
{
	if (r->master >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
	    copy_some(r->master, r->out) < 0)
		r->master = -1;
	/* End of input stops only this direction: output goes on. */
	if (r->in >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
	    copy_some(r->in, r->master) < 0)
		r->in = -1;
	return r->master >= 0 ? 0 : -1;
}

void cvm_relay_drain(struct cvm_relay *r)
{
	struct pollfd p = { r->master, POLLIN, 0 };

	while (r->master >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
		if (copy_some(r->master, r->out) < 0)
			break;
}

void cvm_relay_winsize(const struct cvm_relay *r)
{
	struct winsize ws;

	if (r->in >= 0 && r->master >= 0 && ioctl(r->in, TIOCGWINSZ, &ws) == 0)
		ioctl(r->master, TIOCSWINSZ, &ws);
}
