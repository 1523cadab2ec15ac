/* Terminals: the caller's own in raw mode, and the copy loop between it
 * and a pty master that `cvm exec -t` and the workspace's console share. */
#ifndef CVM_TTY_H
#define CVM_TTY_H

#include <poll.h>
#include <stdbool.h>
#include <termios.h>

/* A terminal put in raw mode, and how it was before. */
struct cvm_tty_raw {
	int fd;
	bool on;
	struct termios saved;
};

/* Raw mode on @fd (every key, ^C and ^Z included, goes through as a byte;
 * the pty on the other side of the relay does the line discipline). 0, or
 * -1 when @fd is no terminal. */
int cvm_tty_make_raw(struct cvm_tty_raw *t, int fd);
/* Put it back as it was (idempotent). */
void cvm_tty_restore(struct cvm_tty_raw *t);

/* One direction pair: @in -> @master, @master -> @out. A side that ended
 * is -1. */
struct cvm_relay {
	int in, out, master;
};

#define CVM_RELAY_NFDS 2

/* The relay's entries of a poll set (@p[0], @p[1]). */
void cvm_relay_poll_set(const struct cvm_relay *r, struct pollfd *p);
/* After poll(): copy what is ready. -1 once the master side is done (all
 * of its slaves closed), else 0. */
int cvm_relay_pump(struct cvm_relay *r, const struct pollfd *p);
/* Copy to @out what the master still holds, without waiting. */
void cvm_relay_drain(struct cvm_relay *r);
/* The window size of @r->in onto the pty (the kernel then sends SIGWINCH
 * to the pty's foreground group). */
void cvm_relay_winsize(const struct cvm_relay *r);

#endif
