#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "hostcheck.h"
#include "idmap.h"
#include "mounts.h"
#include "syscalls.h"
#include "workspace.h"

/* seccomp(2) without <linux/seccomp.h> (musl) */
#define CVM_SECCOMP_GET_ACTION_AVAIL 2
#define CVM_SECCOMP_RET_ERRNO 0x00050000U
/* The fixed inode number of the initial user namespace (PROC_USER_INIT_INO). */
#define CVM_PROC_USER_INIT_INO 0xEFFFFFFDu

/* ---- pure helpers ---------------------------------------------------------- */

int cvm_kver_parse(const char *release, struct cvm_kver *v)
{
	char *end;

	*v = (struct cvm_kver){ 0 };
	errno = 0;
	unsigned long major = strtoul(release, &end, 10);
	if (end == release || *end != '.' || errno || major > UINT_MAX)
		return -1;
	const char *p = end + 1;
	unsigned long minor = strtoul(p, &end, 10);
	if (end == p || errno || minor > UINT_MAX)
		return -1;
	v->major = (unsigned)major;
	v->minor = (unsigned)minor;
	if (*end == '.') {
		p = end + 1;
		unsigned long patch = strtoul(p, &end, 10);
		if (end != p && patch <= UINT_MAX)
			v->patch = (unsigned)patch;
	}
	return 0;
}

bool cvm_kver_at_least(const struct cvm_kver *v, unsigned major, unsigned minor)
{
	return v->major > major || (v->major == major && v->minor >= minor);
}

/* Does the comma list @opts name @want exactly? */
static bool has_option(const char *opts, const char *want)
{
	size_t n = strlen(want);

	for (const char *p = opts; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, want, n) && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

int cvm_hc_v1_mount(const char *mountinfo, const char *controller, char *out, size_t len)
{
	cleanup_file FILE *mi = fopen(mountinfo, "re");
	const char *want = controller && !strcmp(controller, "io") ? "blkio" : controller;
	char line[4096], point[4096], type[64], opts[1024];

	while (mi && fgets(line, sizeof(line), mi)) {
		/* ... MOUNTPOINT ... - TYPE SOURCE SUPER_OPTIONS */
		if (sscanf(line, "%*s %*s %*s %*s %4095s %*[^-]- %63s %*s %1023s", point, type,
			   opts) == 3 && !strcmp(type, "cgroup") && (!want || has_option(opts, want))) {
			snprintf(out, len, "%s", point);
			return 0;
		}
	}
	return -1;
}

int cvm_hc_existing(const char *path, char *out, size_t len)
{
	struct stat st;

	if ((size_t)snprintf(out, len, "%s", path) >= len)
		return -1;
	while (stat(out, &st) < 0) {
		char *slash = strrchr(out, '/');
		if (!slash)
			return -1;
		if (slash == out)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	return 0;
}

/* ---- running a probe in a child ------------------------------------------ */

/* unshare(@ns); a new mount namespace is made private first, so nothing
 * the child mounts propagates back, and it all goes when the child exits. */
static int unshare_private(int ns, struct cvm_error *e)
{
	if (ns && unshare(ns) < 0)
		return cvm_error_set(e, errno, "unshare");
	if ((ns & CLONE_NEWNS) && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return cvm_error_set(e, errno, "make the mount namespace private");
	return 0;
}

/* Run @fn in a forked child, after unshare_private(@ns). The child's error
 * comes back whole. */
static int in_child(int ns, int (*fn)(void *arg, struct cvm_error *e), void *arg,
		    struct cvm_error *err)
{
	int fds[2], status;
	struct cvm_error e = { 0 };
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return cvm_error_set(err, errno, "pipe");
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		if (unshare_private(ns, &e) == 0 && fn(arg, &e) == 0)
			_exit(0);
		/* < PIPE_BUF: one atomic write */
		(void)!write(fds[1], &e, sizeof(e));
		_exit(1);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return cvm_error_set(err, errno, "fork");
	}
	ssize_t n = read(fds[0], &e, sizeof(e));
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (n != (ssize_t)sizeof(e))
		return cvm_error_set(err, 0, "the probe process died (status %d)", status);
	e.msg[sizeof(e.msg) - 1] = '\0';
	*err = e;
	return -1;
}

/* ---- user namespaces, mounts, privileges --------------------------------- */

long cvm_hc_max_userns(void)
{
	cleanup_file FILE *f = fopen("/proc/sys/user/max_user_namespaces", "re");
	long v;

	return f && fscanf(f, "%ld", &v) == 1 ? v : -1;
}

static int nothing(void *arg, struct cvm_error *e)
{
	(void)arg; (void)e;
	return 0;
}

int cvm_hc_userns(struct cvm_error *err)
{
	return in_child(CLONE_NEWUSER, nothing, NULL, err) < 0 ?
		cvm_error_prefix(err, "create a user namespace") : 0;
}

static int attach_tmpfs(void *arg, struct cvm_error *e)
{
	static const char *const opts[] = { "size=4k", NULL };
	cleanup_close int mfd = cvm_fs_new("tmpfs", opts, 0, e);

	(void)arg;
	if (mfd < 0)
		return cvm_error_prefix(e, "mount a tmpfs");
	if (sys_move_mount(mfd, "", AT_FDCWD, "/", CVM_MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return cvm_error_set(e, errno, "attach a tmpfs (move_mount)");
	return 0;
}

int cvm_hc_mount(struct cvm_error *err)
{
	return in_child(CLONE_NEWNS, attach_tmpfs, NULL, err);
}

bool cvm_hc_init_userns(void)
{
	struct stat st;

	return stat("/proc/self/ns/user", &st) == 0 && st.st_ino == CVM_PROC_USER_INIT_INO;
}

int cvm_hc_effective_caps(uint64_t *caps, struct cvm_error *err)
{
	struct cvm_cap_header h = { CVM_CAP_VERSION_3, 0 };
	struct cvm_cap_data d[2];

	if (sys_capget(&h, d) < 0)
		return cvm_error_set(err, errno, "capget");
	*caps = (uint64_t)d[1].effective << 32 | d[0].effective;
	return 0;
}

/* ---- idmapped mounts and the overlay ------------------------------------- */

struct idmap_arg {
	int fd;
	const char *path;
	int userns_fd;
};

/* In cvm's own mount namespace, where @fd was opened (open_tree refuses a
 * mount of another namespace): a detached clone attaches nothing. */
static int idmap_once(void *arg, struct cvm_error *e)
{
	const struct idmap_arg *a = arg;
	int fd = cvm_idmap_clone(a->fd, a->path, a->userns_fd, CVM_MOUNT_ATTR_RDONLY, e);

	if (fd < 0)
		return -1;
	close(fd);      /* a detached mount: closing it unmounts it */
	return 0;
}

int cvm_hc_idmap(int fd, const char *path, int userns_fd, struct cvm_error *err)
{
	struct idmap_arg a = { fd, path, userns_fd };

	return in_child(0, idmap_once, &a, err);
}

struct overlay_arg {
	int rootfs_fd;
	const char *rootfs;
	const char *scratch;
	uint32_t base, count;
	int userns_fd;
};

#define PROBE_FILE ".cvm-check-probe"

static int overlay_once(void *arg, struct cvm_error *e)
{
	const struct overlay_arg *a = arg;
	struct cvm_ws_spec s = { .rootfs = a->rootfs, .rootfs_fd = a->rootfs_fd,
				 .state = a->scratch, .uid_base = a->base, .uid_count = a->count };
	cleanup_close int lower = -1, state = -1, f = -1,
			  scratch_fd = open(a->scratch, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	/* The layers first, as cvm run makes them: in cvm's mount namespace,
	 * where the fds were opened; only then a private one to mount in. */
	state = scratch_fd < 0 ? cvm_error_set(e, errno, "%s", a->scratch) :
		cvm_idmap_clone(scratch_fd, a->scratch, a->userns_fd, 0, e);
	if (state < 0)
		return cvm_error_prefix(e, "state layer");
	if (a->rootfs_fd >= 0) {
		lower = cvm_idmap_clone(a->rootfs_fd, a->rootfs, a->userns_fd,
					CVM_MOUNT_ATTR_RDONLY, e);
		if (lower < 0 && e->err != EINVAL)
			return cvm_error_prefix(e, "image layer");
	}
	if (unshare_private(CLONE_NEWNS, e) < 0 || cvm_ws_mount_rootfs(&s, lower, state, e) < 0)
		return -1;
	/* Now with the workspace root's file ids: the write must land in the
	 * upper layer as uid 0 on disk, which the idmapped state layer shows
	 * as the workspace's base id. */
	f = open("root/" PROBE_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f < 0)
		return cvm_error_set(e, errno, "write through the overlay");
	if (fstatat(AT_FDCWD, "state/upper/" PROBE_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return cvm_error_set(e, errno, "the written file in the upper layer");
	if (st.st_uid != a->base)
		return cvm_error_set(e, 0, "a file written as the workspace's root shows uid %u "
				     "in the upper layer, not %u", (unsigned)st.st_uid, a->base);
	return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int make_scratch(char *scratch, struct cvm_error *err)
{
	static const char *const dirs[] = { "upper", "work", "rootfs" };

	if (!mkdtemp(scratch))
		return cvm_error_set(err, errno, "scratch dir %s", scratch);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char sub[PATH_MAX];
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", scratch, dirs[i]) >= sizeof(sub))
			return cvm_error_set(err, ENAMETOOLONG, "scratch dir %s", scratch);
		if (mkdir(sub, 0755) < 0)
			return cvm_error_set(err, errno, "scratch dir %s", sub);
	}
	return 0;
}

int cvm_hc_overlay(int rootfs_fd, const char *rootfs, const char *state_dir, uint32_t base,
		   uint32_t count, struct cvm_error *err)
{
	char scratch[PATH_MAX];
	struct overlay_arg a = { rootfs_fd, rootfs, scratch, base, count, -1 };
	int r;

	if ((size_t)snprintf(scratch, sizeof(scratch), "%s/.cvm-check.XXXXXX", state_dir) >=
	    sizeof(scratch) - 16)
		return cvm_error_set(err, ENAMETOOLONG, "%s", state_dir);
	a.userns_fd = cvm_userns_open(base, count, err);
	if (a.userns_fd < 0)
		return cvm_error_prefix(err, "user namespace for the id map");
	r = make_scratch(scratch, err);
	if (r == 0)
		r = in_child(0, overlay_once, &a, err);
	close(a.userns_fd);
	if (nftw(scratch, rm_cb, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT && r == 0)
		return cvm_error_set(err, errno, "remove the scratch dir %s", scratch);
	return r;
}

/* ---- cgroup delegation --------------------------------------------------- */

static void clone_into(int dirfd, struct cvm_hc_delegation *out)
{
	struct cvm_clone_args ca = { .flags = CVM_CLONE_INTO_CGROUP, .exit_signal = SIGCHLD,
				     .cgroup = (uint64_t)dirfd };
	pid_t pid = sys_clone3(&ca, sizeof(ca));

	if (pid == 0)
		_exit(0);
	out->clone_into = pid > 0;
	out->clone_errno = pid < 0 ? errno : 0;
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int cvm_hc_delegation(const char *parent, uid_t uid, gid_t gid, struct cvm_hc_delegation *out,
		      struct cvm_error *err)
{
	struct cvm_cgroup cg = { .ws_fd = -1 };
	int r = 0;

	*out = (struct cvm_hc_delegation){ 0 };
	snprintf(out->group, sizeof(out->group), "%s/cvm-check.XXXXXX", parent);
	if (!mkdtemp(out->group))
		return cvm_error_set(err, errno, "create a cgroup under %s", parent);
	snprintf(cg.ws, sizeof(cg.ws), "%s", out->group);
	cg.ws_fd = open(cg.ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg.ws_fd < 0)
		r = cvm_error_set(err, errno, "%s", cg.ws);
	else if (cvm_cgroup_delegate(&cg, uid, gid, err) < 0)
		r = -1;
	else {
		out->has_kill = faccessat(cg.ws_fd, "cgroup.kill", F_OK, 0) == 0;
		clone_into(cg.ws_fd, out);
	}
	cvm_closep(&cg.ws_fd);
	if (cvm_cgroup_rmdir_at(AT_FDCWD, out->group) < 0 && r == 0)
		r = cvm_error_set(err, errno, "remove %s", out->group);
	return r;
}

/* ---- devices and seccomp -------------------------------------------------- */

int cvm_hc_fuse(struct cvm_error *err)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return cvm_error_set(err, errno, "open /dev/fuse");
	close(fd);
	return 0;
}

int cvm_hc_seccomp(int *mode, struct cvm_error *err)
{
	uint32_t action = CVM_SECCOMP_RET_ERRNO;

	*mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
	if (*mode < 0)
		return cvm_error_set(err, errno, "prctl(PR_GET_SECCOMP)");
	if (syscall(SYS_seccomp, CVM_SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0)
		return cvm_error_set(err, errno, "seccomp(SECCOMP_GET_ACTION_AVAIL, RET_ERRNO)");
	return 0;
}
