#include "fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"

union fd_cmsg {
	struct cmsghdr h;
	char buf[CMSG_SPACE(CVM_FDIO_MAX_FDS * sizeof(int))];
};

ssize_t cvm_fdio_send(int sock, const struct iovec *iov, int iovcnt, const int *fds, int n_fds,
		      int flags)
{
	union fd_cmsg u;
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };

	if (n_fds < 0 || n_fds > CVM_FDIO_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (n_fds > 0) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)n_fds * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)n_fds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)n_fds * sizeof(int));
	}
	return sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
}

ssize_t cvm_fdio_recv(int sock, struct iovec *iov, int iovcnt, int *fds, int max_fds,
		      int *n_fds, int flags)
{
	union fd_cmsg u;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	int got = 0, bad = msg.msg_flags & MSG_CTRUNC;

	*n_fds = 0;
	if (n < 0)
		return -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + (size_t)i * sizeof(int), sizeof(int));
			if (got < max_fds)
				fds[got++] = fd;
			else {
				close(fd);
				bad = 1;
			}
		}
	}
	if (bad) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		errno = EBADMSG;
		return -1;
	}
	*n_fds = got;
	return n;
}

int cvm_fdio_send_fd(int sock, int fd, int flags)
{
	char c = 'F';
	struct iovec iov = { &c, 1 };

	return cvm_fdio_send(sock, &iov, 1, &fd, 1, flags) == 1 ? 0 : -1;
}

int cvm_fdio_recv_fd(int sock, int flags)
{
	char c;
	struct iovec iov = { &c, 1 };
	int fd = -1, n_fds;
	ssize_t n = cvm_fdio_recv(sock, &iov, 1, &fd, 1, &n_fds, flags);

	if (n < 0)
		return -1;
	if (n != 1 || n_fds != 1) {
		if (n_fds == 1)
			close(fd);
		errno = n == 0 ? EPIPE : EBADMSG;
		return -1;
	}
	return fd;
}

int cvm_write_file(int dirfd, const char *path, const char *text, struct cvm_error *err)
{
	cleanup_close int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(text);

	errno = 0;
	if (fd >= 0 && write(fd, text, len) == (ssize_t)len)
		return 0;
	if (!errno)
		errno = EIO;    /* a short write */
	return err ? cvm_error_set(err, errno, "write %s", path) : -1;
}
