#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "fdio.h"
#include "notify.h"

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
	if (cvm_fdio_send_fd(sock, fd, MSG_DONTWAIT) < 0)
		return cvm_error_set(err, errno, "sysinfo filter: hand the listener to cvm");
	return 0;
}

int cvm_sysinfo_notify_recv(int sock)
{
	char link[64] = "", path[64];
	int fd = cvm_fdio_recv_fd(sock, MSG_DONTWAIT);

	if (fd < 0)
		return -1;
	/* Only a seccomp listener: nothing else is to be served or kept. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (readlink(path, link, sizeof(link) - 1) < 0 || strcmp(link, "anon_inode:seccomp notify")) {
		close(fd);
		errno = EBADMSG;
		return -1;
	}
	return fd;
}
