/* Small I/O that every part of cvm needs, written once, each with one
 * policy: fds passed over a unix socket (SCM_RIGHTS), and a short string
 * written to a kernel file (/proc, cgroupfs) in one write(2). */
#ifndef CVM_FDIO_H
#define CVM_FDIO_H

#include <sys/types.h>
#include <sys/uio.h>

#include "error.h"

/* The most fds one message carries (stdin, stdout, stderr). */
#define CVM_FDIO_MAX_FDS 3

/* One message: the bytes of @iov and @n_fds fds (at most
 * CVM_FDIO_MAX_FDS). @flags as for sendmsg(2); MSG_NOSIGNAL is always
 * added (a peer gone is EPIPE, never SIGPIPE). Bytes sent, or -1. */
ssize_t cvm_fdio_send(int sock, const struct iovec *iov, int iovcnt, const int *fds, int n_fds,
		      int flags);

/* One message into @iov; the fds it carries (close-on-exec) into @fds, at
 * most @max_fds, their count in *@n_fds. A message with more fds than
 * that, or whose control data was cut, is refused: what came is closed,
 * and -1 with EBADMSG. @flags as for recvmsg(2). Bytes received, or -1. */
ssize_t cvm_fdio_recv(int sock, struct iovec *iov, int iovcnt, int *fds, int max_fds,
		      int *n_fds, int flags);

/* The one-fd forms: a byte and @fd; the fd of such a message (-1 with
 * errno when there is none, EBADMSG). */
int cvm_fdio_send_fd(int sock, int fd, int flags);
int cvm_fdio_recv_fd(int sock, int flags);

/* Write @text to the existing file @path (relative to @dirfd, or absolute)
 * with a single write(2), as the kernel's files want it (uid_map,
 * cgroup.procs): a short write is an error (EIO). 0, or -1 with errno set
 * and, unless @err is NULL, @err naming the file. */
int cvm_write_file(int dirfd, const char *path, const char *text, struct cvm_error *err);

#endif
