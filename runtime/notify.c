#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "notify.h"

/* One byte with one fd attached. */
struct fd_msg {
	char byte;
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg;
};

static void fd_msg_init(struct fd_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->byte = 'L';
	m->iov = (struct iovec){ &m->byte, 1 };
	m->msg = (struct msghdr){ .msg_iov = &m->iov, .msg_iovlen = 1, .msg_control = m->u.buf,
				  .msg_controllen = sizeof(m->u.buf) };
}

int cvm_send_fd(int sock, int fd)
{
	struct fd_msg m;
	struct cmsghdr *c;

	fd_msg_init(&m);
	c = CMSG_FIRSTHDR(&m.msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &m.msg, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int cvm_sysinfo_notify_handoff(int sock, struct cvm_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	cleanup_close int fd = -1;
	int r;

	if (!ctx)
		return cvm_error_set(err, ENOMEM, "sysinfo filter");
	/* No no_new_privs: setuid programs (sudo) must keep working inside,
	 * and the caller has CAP_SYS_ADMIN in its user namespace. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(sysinfo), 0);
	if (r == 0)
		r = seccomp_load(ctx);
	if (r == 0 && (fd = seccomp_notify_fd(ctx)) < 0)
		r = fd;
	seccomp_release(ctx);
	if (r < 0)
		return cvm_error_set(err, -r, "sysinfo filter");
	/* From here on, this process's sysinfo(2) waits for an answerer; the
	 * listener must reach one. Nothing may keep a copy inside. */
	if (cvm_send_fd(sock, fd) < 0)
		return cvm_error_set(err, errno, "sysinfo filter: hand the listener to cvm");
	return 0;
}

int cvm_sysinfo_notify_recv(int sock)
{
	char link[64] = "", path[64];
	struct fd_msg m;
	struct cmsghdr *c;
	int fd;

	fd_msg_init(&m);
	if (recvmsg(sock, &m.msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 1)
		return -1;
	c = CMSG_FIRSTHDR(&m.msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)) || (m.msg.msg_flags & MSG_CTRUNC)) {
		errno = EBADMSG;
		return -1;
	}
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	/* Only a seccomp listener: nothing else is to be served or kept. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (readlink(path, link, sizeof(link) - 1) < 0 || strcmp(link, "anon_inode:seccomp notify")) {
		close(fd);
		errno = EBADMSG;
		return -1;
	}
	return fd;
}
