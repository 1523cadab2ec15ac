/* How a workspace comes up (the order matters; see ARCHITECTURE.md):
 *
 *  parent (outer root)   clone3 C into new user/pid/uts/ipc/cgroup namespaces,
 *                        write C's id maps, idmap the layers with C's userns
 *  builder (outer root)  in its own mount namespace and inside C's pid and
 *                        ipc namespaces: overlay, /proc, /sys, /dev, volumes,
 *                        masks, pivot_root; then enter C's user namespace and
 *                        unshare the mount namespace once more
 *  C                     setns() into that last mount namespace, become root,
 *                        run the init callback
 *
 * Building as outer root and only then crossing into the user namespace is
 * what makes the kernel lock every mount (MNT_LOCKED): inner root cannot
 * unmount a mask or remount a read-only path read-write, yet it may mount
 * new things on top, as on a VM. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ftw.h>
#include <grp.h>
#include <stdarg.h>
#include <unistd.h>

#include "cleanup.h"
#include "enter.h"
#include "fdio.h"
#include "copytree.h"
#include "idmap.h"
#include "mounts.h"
#include "procfs/server.h"
#include "report.h"
#include "rootpath.h"
#include "syscalls.h"
#include "testhook.h"
#include "workspace.h"

#define NOSUID_NODEV_NOEXEC_ATTR (CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NODEV | \
				  CVM_MOUNT_ATTR_NOEXEC)
#define WS_NS_FLAGS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP)

struct ws_layers {
	int procfs_mfd;         /* the /proc server's FUSE mount, detached, or -1 */
	int lower_fd;           /* idmapped image dir, or -1 with the copy in state */
	int state_fd;           /* idmapped state dir */
	int userns_fd;
	int *layer_fds;         /* spec.layers idmapped, bottom first (or NULL) */
	size_t n_layer_fds;
};

/* ---- C: the workspace's PID 1 ------------------------------------------- */

__attribute__((noreturn)) static void ws_die(const char *what)
{
	cvm_report(CVM_REPORT_ERROR, "workspace", "%s: %s", what, strerror(errno));
	_exit(125);
}

/* The console becomes our controlling terminal (a new session, as a VM's
 * init has on its console) and stdin, stdout and stderr: what init starts
 * in the foreground gets job control, ^C, ^Z and the window size. */
static void take_console(int fd)
{
	if (setsid() < 0 || ioctl(fd, TIOCSCTTY, 0) < 0)
		ws_die("make the console the controlling terminal");
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) < 0)
			ws_die("console as stdio");
	close(fd);
}

__attribute__((noreturn)) static void ws_child(int sock, const struct cvm_ws_spec *s,
					       cvm_ws_init_fn init, void *arg)
{
	int mnt_fd, console;

	/* The outer cvm may die before it hands us the rootfs. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* cvm shields itself from the OOM killer; the workspace must not be.
	 * Now, while our ids still own our /proc entries. */
	struct cvm_error oom_err = { 0 };
	if (cvm_enter_oom_reset(&oom_err) < 0)
		ws_die("reset oom_score_adj");
	mnt_fd = cvm_fdio_recv_fd(sock, 0);
	console = s->console ? cvm_fdio_recv_fd(sock, 0) : -1;
	/* Wait for the parent's go as well: the builder is still a process of
	 * our pid namespace, and if we ran and exited at once, the kernel would
	 * kill it before it could report success. */
	char go;
	if (mnt_fd < 0 || (s->console && console < 0) || read(sock, &go, 1) != 1)
		_exit(125);     /* setup failed; the parent says why */
	if (setns(mnt_fd, CLONE_NEWNS) < 0)
		ws_die("enter the workspace's mount namespace");
	close(mnt_fd);
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		ws_die("become root of the user namespace");
	if (sethostname(s->hostname, strlen(s->hostname)) < 0)
		ws_die("sethostname");

	if (chdir("/") < 0)
		ws_die("chdir /");
	if (console >= 0)
		take_console(console);
	/* Now whoever joins us (cvm exec, the bootstrap) finds the workspace's
	 * root, not the clone's copy of the outer mount namespace. */
	if (write(sock, "R", 1) != 1)
		ws_die("report ready");
	close(sock);
	/* Nothing of the outer cvm (epoll, signalfd, sockets) goes inside,
	 * but the one fd the init function needs before its exec. */
	if (s->init_fd >= 0 && (dup2(s->init_fd, CVM_WS_INIT_FD) < 0 ||
				 fcntl(CVM_WS_INIT_FD, F_SETFD, FD_CLOEXEC) < 0))
		ws_die("keep the init's fd");
	sys_close_range(s->init_fd >= 0 ? CVM_WS_INIT_FD + 1 : 3, ~0U, 0);
	_exit(init(arg));
}

/* ---- the builder: every mount, as outer root ------------------------------- */

/* Overlay copies up and creates its workdir with the mounter's credentials.
 * Through the idmapped layers only ids of the workspace's range can be
 * written, so the mounter acts as the workspace's root (fsuid = base) with
 * its capabilities raised again (setfsuid drops the fs ones). */
static int as_workspace_root_fs(uid_t uid, gid_t gid)
{
	struct cvm_cap_header h = { CVM_CAP_VERSION_3, 0 };
	struct cvm_cap_data d[2];

	setfsgid(gid);
	setfsuid(uid);
	if (sys_capget(&h, d) < 0)
		return -1;
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	return sys_capset(&h, d);
}

static void free_strv(char ***v)
{
	for (size_t i = 0; *v && (*v)[i]; i++)
		free((*v)[i]);
	free(*v);
}

/* fsconfig(2) takes option values of at most 255 bytes. */
#define FSCONFIG_VALUE_MAX 255

/* The overlay options naming the lower dirs "0".."@n - 1" (layer i at "i",
 * short names, relative to the cwd), top first, with "e" below them all
 * when @empty_bottom. One "lowerdir=" when the list fits in an option;
 * else one "lowerdir+=" each (Linux 6.8; older kernels refuse the option
 * and the caller says so). NULL-terminated, or NULL without memory. */
static char **lower_opts(size_t n, bool empty_bottom)
{
	char **v = calloc(n + 2, sizeof(*v));
	size_t len = 0, k = 0;
	char *list;

	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(NULL, 0, "%zu:", i);
	len += empty_bottom ? 2 : 0;
	if (!v || !(list = calloc(1, len + sizeof("lowerdir=") + 1))) {
		free(v);
		return NULL;
	}
	char *p = list + sprintf(list, "lowerdir=");
	for (size_t i = n; i-- > 0;)
		p += sprintf(p, "%zu%s", i, i || empty_bottom ? ":" : "");
	if (empty_bottom)
		strcpy(p, "e");
	if (strlen(list) - strlen("lowerdir=") <= FSCONFIG_VALUE_MAX) {
		v[0] = list;
		return v;
	}
	free(list);
	for (size_t i = n; i-- > 0; k++)
		if (asprintf(&v[k], "lowerdir+=%zu", i) < 0)
			goto nomem;
	if (empty_bottom && !(v[k] = strdup("lowerdir+=e")))
		goto nomem;
	return v;
nomem:
	v[k] = NULL;
	free_strv(&v);
	return NULL;
}

/* How many layers fit in one lowerdir= option of lower_opts(). */
static size_t layers_in_one_option(void)
{
	size_t n = 0, len = 0;

	while (len + (size_t)snprintf(NULL, 0, "%zu:", n) - 1 <= FSCONFIG_VALUE_MAX)
		len += (size_t)snprintf(NULL, 0, "%zu:", n++);
	return n;
}

size_t cvm_ws_max_layers(void)
{
	cleanup_close int fd = sys_fsopen("overlay", CVM_FSOPEN_CLOEXEC);

	/* Only the option is parsed here; nothing is mounted. */
	if (fd >= 0 && sys_fsconfig(fd, CVM_FSCONFIG_SET_STRING, "lowerdir+", "/", 0) == 0)
		return CVM_WS_MAX_LAYERS;
	return layers_in_one_option();
}

/* The lower dirs @dirs (O_PATH fds, bottom first) as overlay options,
 * top first: one "lowerdir+=" each (Linux 6.8), or where the kernel lacks
 * it one "lowerdir=" of /proc/self/fd/N names, as far as it fits. */
static char **view_opts(const int *dirs, size_t n, struct cvm_error *err)
{
	bool plus = cvm_ws_max_layers() == CVM_WS_MAX_LAYERS;
	char **v = calloc(n + 1, sizeof(*v)), one[FSCONFIG_VALUE_MAX + 1] = "";
	size_t k = 0, used = 0;

	if (!v)
		return cvm_error_set(err, ENOMEM, "image view"), NULL;
	for (size_t i = n; i-- > 0;) {
		char name[32];
		snprintf(name, sizeof(name), "/proc/self/fd/%d", dirs[i]);
		if (plus) {
			if (asprintf(&v[k++], "lowerdir+=%s", name) < 0)
				goto nomem;
			continue;
		}
		if (used + strlen(name) + 1 > FSCONFIG_VALUE_MAX) {
			free_strv(&v);
			cvm_error_set(err, E2BIG, "%zu image layers are too many for one lowerdir "
				      "option on this kernel (lowerdir+ came with Linux 6.8)", n);
			return NULL;
		}
		used += (size_t)snprintf(one + used, sizeof(one) - used, "%s%s", used ? ":" : "", name);
	}
	if (!plus && asprintf(&v[k++], "lowerdir=%s", one) < 0)
		goto nomem;
	return v;
nomem:
	v[k - 1] = NULL;
	free_strv(&v);
	cvm_error_set(err, ENOMEM, "image view");
	return NULL;
}

int cvm_ws_layers_view(char *const *layers, size_t n, struct cvm_error *err)
{
	__attribute__((cleanup(free_strv))) char **opts = NULL;
	int *dirs, fd = -1;
	size_t i;

	if (n == 0)
		return cvm_error_set(err, EINVAL, "image view: no layers");
	if (n == 1) {   /* an overlay with no upper dir needs two lowers */
		fd = open(layers[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
		return fd < 0 ? cvm_error_set(err, errno, "image layer %s", layers[0]) : fd;
	}
	dirs = calloc(n, sizeof(*dirs));
	if (!dirs)
		return cvm_error_set(err, ENOMEM, "image view");
	for (i = 0; i < n; i++)
		if ((dirs[i] = open(layers[i], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
			cvm_error_set(err, errno, "image layer %s", layers[i]);
			break;
		}
	if (i == n && (opts = view_opts(dirs, n, err)))
		fd = cvm_fs_new("overlay", (const char *const *)opts, CVM_MOUNT_ATTR_RDONLY, err);
	while (i-- > 0)
		close(dirs[i]);
	free(dirs);
	if (fd < 0)
		return cvm_error_prefix(err, "image view");
	return fd;
}

static int mount_overlay(const struct cvm_ws_spec *s, char *const *lower, struct cvm_error *err)
{
	const char *opts[CVM_WS_MAX_LAYERS + 4];
	cleanup_close int mfd = -1;
	size_t n = 0;

	for (; lower[n] && n < CVM_WS_MAX_LAYERS + 1; n++)
		opts[n] = lower[n];
	opts[n++] = "upperdir=state/upper";
	opts[n++] = "workdir=state/work";
	opts[n] = NULL;
	if (as_workspace_root_fs(s->uid_base, s->uid_base) < 0)
		return cvm_error_set(err, errno, "overlay: credentials");
	mfd = cvm_fs_new("overlay", opts, 0, err);
	as_workspace_root_fs(0, 0);
	if (mfd < 0 && lower[1] && !strncmp(lower[0], "lowerdir+", 9))
		return cvm_error_prefix(err, "rootfs: %zu layers are too many for one lowerdir "
					"option on this kernel (it takes lowerdir+ from Linux 6.8): "
					"flatten the image", s->n_layers);
	if (mfd < 0)
		return cvm_error_prefix(err, "rootfs");
	if (sys_move_mount(mfd, "", AT_FDCWD, "root", CVM_MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return cvm_error_set(err, errno, "rootfs: attach overlay");
	return 0;
}

/* The idmapped image layers at "0".."n-1" of the scratch space. */
static int attach_layers(const struct ws_layers *l, struct cvm_error *err)
{
	char name[24];

	for (size_t i = 0; i < l->n_layer_fds; i++) {
		snprintf(name, sizeof(name), "%zu", i);
		if (mkdir(name, 0700) < 0 ||
		    sys_move_mount(l->layer_fds[i], "", AT_FDCWD, name, CVM_MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return cvm_error_set(err, errno, "rootfs: attach image layer %zu", i);
	}
	return 0;
}

/* Attach the layers on a scratch tmpfs (over the state path, in this
 * private mount namespace only) and mount the overlay at scratch/root. */
static int build_rootfs(const struct cvm_ws_spec *s, const struct ws_layers *l,
			struct cvm_error *err)
{
	static const char *const scratch_opts[] = { "mode=0700", "size=4k", NULL };
	cleanup_close int scratch = cvm_fs_new("tmpfs", scratch_opts, 0, err);

	if (scratch < 0)
		return -1;
	if (sys_move_mount(scratch, "", AT_FDCWD, s->state, CVM_MOVE_MOUNT_F_EMPTY_PATH) < 0 ||
	    chdir(s->state) < 0 || mkdir("lower", 0700) < 0 || mkdir("state", 0700) < 0 ||
	    mkdir("root", 0755) < 0)
		return cvm_error_set(err, errno, "rootfs: scratch space");
	if (l->lower_fd >= 0 &&
	    sys_move_mount(l->lower_fd, "", AT_FDCWD, "lower", CVM_MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return cvm_error_set(err, errno, "rootfs: attach the image layer");
	if (attach_layers(l, err) < 0)
		return -1;
	if (sys_move_mount(l->state_fd, "", AT_FDCWD, "state", CVM_MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return cvm_error_set(err, errno, "rootfs: attach the state layer");
	char *one[] = { l->lower_fd >= 0 ? "lowerdir=lower" : "lowerdir=state/rootfs", NULL };
	__attribute__((cleanup(free_strv))) char **many =
		l->n_layer_fds ? lower_opts(l->n_layer_fds, false) : NULL;
	if (l->n_layer_fds && !many)
		return cvm_error_set(err, ENOMEM, "rootfs");
	return mount_overlay(s, many ? many : one, err);
}

static int mount_rootfs(const struct cvm_ws_spec *s, const struct ws_layers *l,
			struct cvm_error *err)
{
	if (build_rootfs(s, l, err) < 0)
		return -1;
	/* Mount points the image lacks are created through the overlay, and
	 * only the workspace's ids can be written through its idmapped upper
	 * layer: build as the workspace's root (on disk: uid 0). */
	if (as_workspace_root_fs(s->uid_base, s->uid_base) < 0)
		return cvm_error_set(err, errno, "credentials");
	return 0;
}

int cvm_ws_mount_rootfs(const struct cvm_ws_spec *s, int lower_fd, int state_fd,
			struct cvm_error *err)
{
	struct ws_layers l = { -1, lower_fd, state_fd, -1 };

	return mount_rootfs(s, &l, err);
}

/* The FUSE mount is made here, by cvm in its own pid namespace: the kernel
 * reports readers' pids in the namespace of whoever mounted, and the server
 * lives in cvm's (it looks the reader's cgroup up by pid). */
static int procfs_mount(int fuse_fd, struct cvm_error *err)
{
	char fd_opt[32];
	int mfd;

	snprintf(fd_opt, sizeof(fd_opt), "fd=%d", fuse_fd);
	const char *opts[] = { fd_opt, "rootmode=40555", "user_id=0", "group_id=0",
			       "allow_other", NULL };
	mfd = cvm_fs_new("fuse", opts, NOSUID_NODEV_NOEXEC_ATTR, err);
	return mfd < 0 ? cvm_error_prefix(err, "/proc server") : mfd;
}

/* The /proc server's files over the real ones. Its FUSE mount sits on the
 * scratch space, which goes away at pivot_root: only the binds remain, so
 * the workspace cannot unmount the server's mount to reach a real file. */
static bool wanted(char *const *list, const char *name)
{
	if (!list || !list[0])
		return true;
	for (size_t i = 0; list[i]; i++)
		if (!strcmp(list[i], name))
			return true;
	return false;
}

static int bind_procfs(int mfd, char *const *only, int root_fd, struct cvm_error *err)
{
	static const char *const files[] = { CVM_PROCFS_FILES };

	if (mkdir("procfs", 0700) < 0 ||
	    sys_move_mount(mfd, "", AT_FDCWD, "procfs", CVM_MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return cvm_error_set(err, errno, "/proc server: mount");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[64];
		if (!wanted(only, files[i]))
			continue;
		snprintf(path, sizeof(path), "procfs/%s", files[i]);
		cleanup_close int f = sys_open_tree(AT_FDCWD, path, CVM_OPEN_TREE_CLONE |
						    CVM_OPEN_TREE_CLOEXEC);
		if (f < 0)
			return cvm_error_set(err, errno, "/proc server: %s", files[i]);
		if (cvm_mount_at(f, root_fd, cvm_procfs_target(files[i]), S_IFREG, err) < 0)
			return cvm_error_prefix(err, "/proc server");
	}
	return 0;
}

/* Bind each engine dir from the state layer (attached at "state" in the
 * builder's scratch space, idmapped already): overlay2 inside then runs on
 * the state dir's filesystem, not on the workspace's overlay. */
static int mount_engine_dirs(const struct cvm_ws_spec *s, int root_fd, struct cvm_error *err)
{
	char name[256], path[300];

	for (size_t i = 0; i < s->n_engine_dirs; i++) {
		cvm_ws_engine_dir_name(s->engine_dirs[i], name, sizeof(name));
		snprintf(path, sizeof(path), "state/engines/%s", name);
		cleanup_close int mfd = sys_open_tree(AT_FDCWD, path, CVM_OPEN_TREE_CLONE |
						      CVM_OPEN_TREE_CLOEXEC);
		if (mfd < 0)
			return cvm_error_set(err, errno, "engine dir %s", s->engine_dirs[i]);
		if (cvm_mount_at(mfd, root_fd, s->engine_dirs[i], S_IFDIR, err) < 0)
			return cvm_error_prefix(err, "engine dir");
	}
	return 0;
}

/* Write @f into the rootfs as the workspace's root. The image is untrusted:
 * whatever sits at the path that is not a plain file is refused, except a
 * symlink, which is replaced (an image's resolv.conf often points into
 * /run, at a resolver the workspace does not run). Nothing inside runs
 * yet, so nothing can swap the entry between the check and the open. */
static int write_ws_file(int root_fd, const struct cvm_ws_write *f, struct cvm_error *err)
{
	const char *name = strrchr(f->path, '/') + 1;
	char dir[4096];
	struct stat st;
	cleanup_close int dfd = -1, fd = -1;

	snprintf(dir, sizeof(dir), "%.*s", (int)(name - f->path), f->path);
	dfd = cvm_root_open(root_fd, dir, CVM_ROOT_DIR, S_IFDIR, err);
	if (dfd < 0)
		return cvm_error_prefix(err, "%s", f->path);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode) && unlinkat(dfd, name, 0) < 0)
			return cvm_error_set(err, errno, "replace the symlink %s", f->path);
		if (!S_ISLNK(st.st_mode) && !S_ISREG(st.st_mode))
			return cvm_error_set(err, 0, "%s in the image is not a file", f->path);
	}
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		    0644);
	if (fd < 0 || write(fd, f->content, strlen(f->content)) != (ssize_t)strlen(f->content))
		return cvm_error_set(err, errno, "write %s", f->path);
	return 0;
}

static int enter_root(int root_fd, struct cvm_error *err)
{
	/* pivot_root(".", ".") stacks the old root under the new one; the
	 * lazy unmount then drops it, and with it every outer mount. */
	if (fchdir(root_fd) < 0 || sys_pivot_root(".", ".") < 0)
		return cvm_error_set(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return cvm_error_set(err, errno, "detach the outer root");
	return 0;
}

static int build(const struct cvm_ws_spec *s, const struct ws_layers *l, int sock,
		 int result, struct cvm_error *err)
{
	cleanup_close int con_master = -1, con_slave = -1;
	struct cvm_mounts_spec ms = {
		.id_base = s->uid_base, .id_count = s->uid_count, .userns_fd = l->userns_fd,
		.dev_fuse = s->dev_fuse, .dev_tun = s->dev_tun,
		.mounts = s->mounts, .n_mounts = s->n_mounts, .extras = s->extras,
		.own_netns = s->netns,
	};
	cleanup_close int root_fd = -1, mnt_fd = -1;

	umask(0);
	if (mount_rootfs(s, l, err) < 0)
		return -1;
	root_fd = open("root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return cvm_error_set(err, errno, "rootfs");
	for (size_t i = 0; i < s->n_writes; i++)
		if (write_ws_file(root_fd, &s->writes[i], err) < 0)
			return -1;
	if (mount_engine_dirs(s, root_fd, err) < 0)
		return -1;
	if (cvm_mount_system(root_fd, &ms, err) < 0 ||
	    (l->procfs_mfd >= 0 && bind_procfs(l->procfs_mfd, s->procfs_files, root_fd, err) < 0) ||
	    (s->console && cvm_mount_console(root_fd, s->console_rows, s->console_cols, &con_master,
					      &con_slave, err) < 0) ||
	    enter_root(root_fd, err) < 0)
		return -1;
	/* Crossing into the user namespace and copying the mount namespace
	 * from there locks every mount made above. */
	if (setns(l->userns_fd, CLONE_NEWUSER) < 0 || unshare(CLONE_NEWNS) < 0)
		return cvm_error_set(err, errno, "lock the mounts");
	mnt_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (mnt_fd < 0 || cvm_fdio_send_fd(sock, mnt_fd, 0) < 0)
		return cvm_error_set(err, errno, "hand over the mount namespace");
	/* The console's slave goes to C, its master to the outer cvm. */
	if (s->console && (cvm_fdio_send_fd(sock, con_slave, 0) < 0 || cvm_fdio_send_fd(result, con_master, 0) < 0))
		return cvm_error_set(err, errno, "hand over the console");
	return 0;
}

/* Fork the builder into C's pid and ipc namespaces (a pid namespace only
 * applies to children, hence two forks). Its result comes back on a
 * socket: error text, or (with a console) the console's pty master. */
static int run_builder(const struct cvm_ws_spec *s, const struct ws_layers *l, int ws_pidfd,
		       int sock, int *console, struct cvm_error *err)
{
	int sp[2], status;
	pid_t pid;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return cvm_error_set(err, errno, "socketpair");
	pid = fork();
	if (pid < 0)
		return cvm_error_set(err, errno, "fork");
	if (pid == 0) {
		struct cvm_error e = { 0 };
		pid_t b;
		close(sp[0]);
		/* The cgroup namespace too: cgroup2 mounted from there shows the
		 * workspace's group as its root; and the network namespace, for
		 * sysfs to show the workspace's interfaces. */
		if (setns(ws_pidfd, CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWCGROUP |
			  (s->netns ? CLONE_NEWNET : 0)) < 0 ||
		    unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			cvm_error_set(&e, errno, "enter the workspace namespaces");
		} else if ((b = fork()) == 0) {
			if (build(s, l, sock, sp[1], &e) == 0)
				_exit(0);
		} else if (b > 0 && waitpid(b, &status, 0) == b) {
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
		} else
			cvm_error_set(&e, errno, "fork");
		n = write(sp[1], e.msg, strlen(e.msg));
		(void)n;
		_exit(1);
	}
	close(sp[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char msg[CVM_ERROR_MSG_MAX] = "";
		n = recv(sp[0], msg, sizeof(msg) - 1, MSG_DONTWAIT);
		msg[n > 0 ? n : 0] = '\0';
		close(sp[0]);
		return cvm_error_set(err, 0, "%s", msg[0] ? msg : "workspace setup failed");
	}
	*console = s->console ? cvm_fdio_recv_fd(sp[0], 0) : -1;
	close(sp[0]);
	if (s->console && *console < 0)
		return cvm_error_set(err, EIO, "the builder sent no console");
	return 0;
}

/* ---- without CLONE_INTO_CGROUP -------------------------------------------- */

/* In the child: wait until the parent has moved us, then root a new cgroup
 * namespace at our group, as CLONE_NEWCGROUP at clone time would have. */
static void enter_cgroup_late(int sock)
{
	char c;

	if (read(sock, &c, 1) != 1 || unshare(CLONE_NEWCGROUP) < 0 || write(sock, "R", 1) != 1)
		ws_die("enter the workspace's cgroup");
}

static int move_into_cgroup(pid_t pid, int cgroup_fd, int sock, struct cvm_error *err)
{
	char buf[32], c;
	cleanup_close int fd = openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	int n = snprintf(buf, sizeof(buf), "%d", (int)pid);

	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		return cvm_error_set(err, errno, "move the workspace into its cgroup");
	if (write(sock, "C", 1) != 1 || read(sock, &c, 1) != 1)
		return cvm_error_set(err, errno, "workspace cgroup namespace");
	return 0;
}

/* ---- the parent: ids, layers, the fallback copy -------------------------- */

static void copy_progress(const struct cvm_copy_progress *p, void *arg)
{
	(void)arg;
	cvm_report(CVM_REPORT_INFO, "workspace", "copying the image: %llu files, %llu MiB",
	     (unsigned long long)p->files, (unsigned long long)(p->bytes >> 20));
}

static int rm_tree_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

/* What filled STATE/rootfs (STATE/rootfs.source): the image dir's path, or
 * "layers:" and each layer dir's, a line each. malloc'd; "" when none. */
static char *read_marker(int state_dirfd)
{
	cleanup_close int fd = openat(state_dirfd, "rootfs.source", O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1);
	ssize_t n;

	while (buf && fd >= 0 && (n = read(fd, buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap) {
			char *more = cap < (1u << 20) ? realloc(buf, 2 * cap + 1) : NULL;
			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
	}
	if (buf)
		buf[len] = '\0';
	return buf;
}

static char *layers_marker(const struct cvm_ws_spec *s)
{
	size_t len = sizeof("layers:");
	char *m, *p;

	for (size_t i = 0; i < s->n_layers; i++)
		len += strlen(s->layers[i]) + 1;
	m = malloc(len);
	if (!m)
		return NULL;
	p = m + sprintf(m, "layers:");
	for (size_t i = 0; i < s->n_layers; i++)
		p += sprintf(p, "\n%s", s->layers[i]);
	return m;
}

/* Fill the empty STATE/rootfs (@dst) from what cannot be idmapped. */
typedef int (*fill_fn)(const struct cvm_ws_spec *s, int state_dirfd, int dst,
		       struct cvm_error *err);

/* The image dir, ids as they are. */
static int copy_image(const struct cvm_ws_spec *s, int state_dirfd, int dst, struct cvm_error *err)
{
	cleanup_close int src = openat(s->rootfs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	(void)state_dirfd;
	if (src < 0 || fstat(src, &st) < 0)
		return cvm_error_set(err, errno, "copy %s", s->rootfs);
	if (s->copy_rootfs)
		cvm_report(CVM_REPORT_INFO, "workspace", "idmap = off: copying %s once into %s/rootfs", s->rootfs, s->state);
	else
		cvm_report(CVM_REPORT_INFO, "workspace", "%s is on %s, which cannot be idmapped: copying it once into %s/rootfs",
		     s->rootfs, cvm_fs_name(src), s->state);
	if (cvm_copy_tree(src, dst, copy_progress, (void *)s, err) < 0)
		return cvm_error_prefix(err, "copy %s to %s/rootfs", s->rootfs, s->state);
	if (fchown(dst, st.st_uid, st.st_gid) < 0 || fchmod(dst, st.st_mode & 07777) < 0)
		return cvm_error_set(err, errno, "%s/rootfs", s->state);
	return 0;
}

/* In a child (it changes its cwd): STATE/rootfs.layers/ holds "0".."n-1",
 * symlinks to the layer dirs, and an empty "e"; a read-only overlay of
 * them, never attached anywhere, merges the layers as the workspace would
 * see them (whiteouts, opaque dirs), and cvm_copy_tree copies that. */
static int merge_layers_child(const struct cvm_ws_spec *s, int state_dirfd, int dst,
			      struct cvm_error *err)
{
	char name[24];
	cleanup_close int dir = -1, mfd = -1;
	__attribute__((cleanup(free_strv))) char **lower = lower_opts(s->n_layers, true);
	struct stat st;

	if (!lower)
		return cvm_error_set(err, ENOMEM, "merge the layers");
	if (mkdirat(state_dirfd, "rootfs.layers", 0700) < 0 ||
	    (dir = openat(state_dirfd, "rootfs.layers", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    mkdirat(dir, "e", 0700) < 0 || fchdir(dir) < 0)
		return cvm_error_set(err, errno, "%s/rootfs.layers", s->state);
	for (size_t i = 0; i < s->n_layers; i++) {
		snprintf(name, sizeof(name), "%zu", i);
		if (symlinkat(s->layers[i], dir, name) < 0)
			return cvm_error_set(err, errno, "%s/rootfs.layers/%s", s->state, name);
	}
	mfd = cvm_fs_new("overlay", (const char *const *)lower, CVM_MOUNT_ATTR_RDONLY, err);
	if (mfd < 0)
		return cvm_error_prefix(err, "merge the layers");
	if (fstat(mfd, &st) < 0)
		return cvm_error_set(err, errno, "merge the layers");
	if (cvm_copy_tree(mfd, dst, copy_progress, (void *)s, err) < 0)
		return cvm_error_prefix(err, "copy the merged layers to %s/rootfs", s->state);
	if (fchown(dst, st.st_uid, st.st_gid) < 0 || fchmod(dst, st.st_mode & 07777) < 0)
		return cvm_error_set(err, errno, "%s/rootfs", s->state);
	return 0;
}

static int merge_layers(const struct cvm_ws_spec *s, int state_dirfd, int dst, struct cvm_error *err)
{
	char path[4096], msg[CVM_ERROR_MSG_MAX] = "";
	int p[2], status;
	pid_t pid;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/rootfs.layers", s->state);
	if (nftw(path, rm_tree_cb, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return cvm_error_set(err, errno, "remove %s", path);
	cvm_report(CVM_REPORT_INFO, "workspace", "the %zu image layers cannot all be idmapped: merging them once into %s/rootfs",
	     s->n_layers, s->state);
	if (pipe2(p, O_CLOEXEC) < 0)
		return cvm_error_set(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return cvm_error_set(err, errno, "fork");
	}
	if (pid == 0) {
		struct cvm_error e = { 0 };
		close(p[0]);
		if (merge_layers_child(s, state_dirfd, dst, &e) == 0)
			_exit(0);
		n = write(p[1], e.msg, strlen(e.msg));
		_exit(1);
	}
	close(p[1]);
	n = read(p[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	nftw(path, rm_tree_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return cvm_error_set(err, 0, "%s", msg[0] ? msg : "merging the layers failed");
	return 0;
}

/* What cannot be idmapped is copied once into state/rootfs, ids as they
 * are, and that copy (on the idmapped state layer) is used from now on.
 * state/rootfs.source names where the copy came from (@source). */
static int copy_once(const struct cvm_ws_spec *s, int state_dirfd, const char *source,
		     fill_fn fill, struct cvm_error *err)
{
	cleanup_free char *marker = read_marker(state_dirfd);
	cleanup_close int dst = -1, mfd = -1;
	char path[4096];

	if (marker && !strcmp(marker, source)) {
		cvm_report(CVM_REPORT_INFO, "workspace", "using the copy of %s made earlier in %s/rootfs",
		     s->n_layers ? "the image layers" : s->rootfs, s->state);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/rootfs", s->state);
	if (unlinkat(state_dirfd, "rootfs.source", 0) < 0 && errno != ENOENT)
		return cvm_error_set(err, errno, "%s/rootfs.source", s->state);
	if (nftw(path, rm_tree_cb, 64, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return cvm_error_set(err, errno, "remove the old copy %s", path);
	if (mkdirat(state_dirfd, "rootfs", 0755) < 0 ||
	    (dst = openat(state_dirfd, "rootfs", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return cvm_error_set(err, errno, "%s", path);
	if (fill(s, state_dirfd, dst, err) < 0)
		return -1;
	mfd = openat(state_dirfd, "rootfs.source", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (mfd < 0 || write(mfd, source, strlen(source)) < 0)
		return cvm_error_set(err, errno, "%s/rootfs.source", s->state);
	cvm_report(CVM_REPORT_INFO, "workspace", "copy done; later starts reuse it (delete %s to copy again)", path);
	return 0;
}

static int copy_image_once(const struct cvm_ws_spec *s, int state_dirfd, struct cvm_error *err)
{
	return copy_once(s, state_dirfd, s->rootfs, copy_image, err);
}

static int copy_layers_once(const struct cvm_ws_spec *s, struct cvm_error *err)
{
	cleanup_free char *source = layers_marker(s);
	cleanup_close int state_dirfd = open(s->state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (!source)
		return cvm_error_set(err, ENOMEM, "layers");
	if (state_dirfd < 0)
		return cvm_error_set(err, errno, "%s", s->state);
	return copy_once(s, state_dirfd, source, merge_layers, err);
}

/* The driver files and links of a GPU plan are made in the overlay, so they
 * land in the upper layer: mount points (empty files) and symlinks. Left
 * there after the GPU is gone (or the driver changed), libcuda.so.1 would
 * name an empty file and fail as "file too short" instead of "not found".
 * So each start lists them in STATE/extras.list, and the next start
 * removes what the last one listed, before the overlay is mounted. Only
 * symlinks and empty files go, found inside the upper layer (the workspace
 * wrote there: its symlinks must not lead the removal elsewhere). */
#define EXTRAS_LIST "extras.list"

static void remove_leftover(int upper_fd, const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;
	struct cvm_error e = { 0 };
	cleanup_close int pfd = -1;

	if (path[0] != '/' || !slash || !slash[1] || (size_t)(slash - path) >= sizeof(dir))
		return;
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	pfd = cvm_root_open(upper_fd, dir, CVM_ROOT_NOCREATE, S_IFDIR, &e);
	if (pfd < 0 || fstatat(pfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_size == 0))
		unlinkat(pfd, slash + 1, 0);
}

static void remove_old_extras(int state_fd)
{
	cleanup_close int upper = openat(state_fd, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int fd = openat(state_fd, EXTRAS_LIST, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	cleanup_file FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	char line[4096];

	if (fd >= 0 && !f)
		close(fd);
	while (upper >= 0 && f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		remove_leftover(upper, line);
	}
}

static int list_extras(const struct cvm_ws_spec *s, int state_fd, struct cvm_error *err)
{
	const struct cvm_ws_extras *x = s->extras;
	cleanup_close int fd = -1;
	cleanup_file FILE *f = NULL;

	remove_old_extras(state_fd);
	if (unlinkat(state_fd, EXTRAS_LIST, 0) < 0 && errno != ENOENT)
		return cvm_error_set(err, errno, "%s/%s", s->state, EXTRAS_LIST);
	if (!x || x->n_files + x->n_links == 0)
		return 0;
	fd = openat(state_fd, EXTRAS_LIST, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f)
		return cvm_error_set(err, errno, "%s/%s", s->state, EXTRAS_LIST);
	steal_fd(&fd);
	for (size_t i = 0; i < x->n_files; i++)
		fprintf(f, "%s\n", x->files[i].target);
	for (size_t i = 0; i < x->n_links; i++)
		fprintf(f, "%s\n", x->links[i].path);
	if (fflush(f) != 0)
		return cvm_error_set(err, errno, "%s/%s", s->state, EXTRAS_LIST);
	return 0;
}

void cvm_ws_engine_dir_name(const char *path, char *buf, size_t len)
{
	size_t o = 0;

	while (*path == '/')
		path++;
	for (; *path && o + 5 < len; path++) {
		if (*path == '/') {
			while (path[1] == '/')
				path++;
			if (path[1])
				buf[o++] = '-';
		} else if (*path == '-' || *path == '\\')
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", (unsigned char)*path);
		else
			buf[o++] = *path;
	}
	buf[o] = '\0';
}

/* STATE/engines/NAME for each engine dir, owned by 0 on disk (the
 * workspace's root through the idmapped state layer). */
static int prepare_engine_dirs(const struct cvm_ws_spec *s, int state_fd, struct cvm_error *err)
{
	cleanup_close int fd = -1;
	char name[256];

	if (!s->n_engine_dirs)
		return 0;
	if (mkdirat(state_fd, "engines", 0755) < 0 && errno != EEXIST)
		return cvm_error_set(err, errno, "%s/engines", s->state);
	fd = openat(state_fd, "engines", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cvm_error_set(err, errno, "%s/engines", s->state);
	for (size_t i = 0; i < s->n_engine_dirs; i++) {
		cvm_ws_engine_dir_name(s->engine_dirs[i], name, sizeof(name));
		if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST)
			return cvm_error_set(err, errno, "%s/engines/%s", s->state, name);
	}
	return 0;
}

static int prepare_state(const struct cvm_ws_spec *s, struct cvm_error *err)
{
	cleanup_close int fd = -1;

	if (mkdir(s->state, 0700) < 0 && errno != EEXIST)
		return cvm_error_set(err, errno, "state dir %s", s->state);
	fd = open(s->state, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cvm_error_set(err, errno, "state dir %s", s->state);
	/* Owned by uid 0 on disk = the workspace's root, through the idmap. */
	if ((mkdirat(fd, "upper", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(fd, "work", 0700) < 0 && errno != EEXIST))
		return cvm_error_set(err, errno, "state dir %s", s->state);
	if (list_extras(s, fd, err) < 0)
		return -1;
	return prepare_engine_dirs(s, fd, err);
}

static void close_layer_fds(struct ws_layers *l)
{
	for (size_t i = 0; i < l->n_layer_fds; i++)
		close(l->layer_fds[i]);
	free(l->layer_fds);
	l->layer_fds = NULL;
	l->n_layer_fds = 0;
}

/* Each layer idmapped like the image dir; should one not be idmappable
 * (its filesystem, or CVM_DEBUG_LAYERS_NO_IDMAP in the tests), all of
 * them are merged into STATE/rootfs once. */
static int open_image_layers(const struct cvm_ws_spec *s, struct ws_layers *l,
			     struct cvm_error *err)
{
	if (s->n_layers > CVM_WS_MAX_LAYERS)
		return cvm_error_set(err, E2BIG, "rootfs: %zu image layers, and the overlay stacks at "
				     "most %d: flatten the image", s->n_layers, CVM_WS_MAX_LAYERS);
	if (s->n_layers > cvm_ws_max_layers())
		return cvm_error_set(err, E2BIG, "rootfs: %zu image layers, and this kernel's overlay "
				     "takes at most %zu in one lowerdir option (lowerdir+ came with "
				     "Linux 6.8): flatten the image", s->n_layers, cvm_ws_max_layers());
	if (s->copy_rootfs) {
		cvm_report(CVM_REPORT_INFO, "workspace", "idmap = off: the image layers are merged "
			   "into one copy");
		return copy_layers_once(s, err);
	}
	l->layer_fds = calloc(s->n_layers, sizeof(int));
	if (!l->layer_fds)
		return cvm_error_set(err, ENOMEM, "rootfs");
	for (size_t i = 0; i < s->n_layers; i++) {
		cleanup_close int dir = open(s->layers[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		int fd = dir < 0 ? cvm_error_set(err, errno, "open")
			: cvm_test_hook("CVM_DEBUG_LAYERS_NO_IDMAP")
			? cvm_error_set(err, EINVAL, "CVM_DEBUG_LAYERS_NO_IDMAP")
			: cvm_idmap_clone(dir, s->layers[i], l->userns_fd, CVM_MOUNT_ATTR_RDONLY, err);
		if (fd >= 0) {
			l->layer_fds[l->n_layer_fds++] = fd;
			continue;
		}
		close_layer_fds(l);
		if (err->err != EINVAL)
			return cvm_error_prefix(err, "image layer %s", s->layers[i]);
		cvm_report(CVM_REPORT_INFO, "workspace", "image layer %s: %s", s->layers[i], err->msg);
		cvm_error_clear(err);
		return copy_layers_once(s, err);
	}
	return 0;
}

static int open_layers(const struct cvm_ws_spec *s, pid_t pid, struct ws_layers *l,
		       struct cvm_error *err)
{
	char path[64];
	cleanup_close int state_dirfd = open(s->state, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (state_dirfd < 0)
		return cvm_error_set(err, errno, "state dir %s", s->state);
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	l->userns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (l->userns_fd < 0)
		return cvm_error_set(err, errno, "%s", path);
	l->state_fd = cvm_idmap_clone(state_dirfd, s->state, l->userns_fd, 0, err);
	if (l->state_fd < 0 && err->err == EINVAL) {
		char why[CVM_ERROR_MSG_MAX];
		snprintf(why, sizeof(why), "%s", err->msg);
		return cvm_error_set(err, 0, "state dir %s; the state dir must be idmappable: "
				     "use a volume on ext4, xfs, btrfs or tmpfs (kernel >= 6.3), "
				     "e.g. a Docker volume or a Kubernetes emptyDir", why);
	}
	if (l->state_fd < 0)
		return cvm_error_prefix(err, "state dir");
	if (s->n_layers)
		return open_image_layers(s, l, err);
	if (!s->copy_rootfs) {
		l->lower_fd = cvm_idmap_clone(s->rootfs_fd, s->rootfs, l->userns_fd,
					      CVM_MOUNT_ATTR_RDONLY, err);
		if (l->lower_fd >= 0)
			return 0;
		if (err->err != EINVAL)
			return cvm_error_prefix(err, "rootfs");
		cvm_error_clear(err);
	}
	return copy_image_once(s, state_dirfd, err);
}

static void close_layers(struct ws_layers *l)
{
	cvm_closep(&l->procfs_mfd);
	cvm_closep(&l->lower_fd);
	close_layer_fds(l);
	cvm_closep(&l->state_fd);
	cvm_closep(&l->userns_fd);
}

/* clone3 C into its namespaces: born in its cgroup where the kernel can
 * (no moment under cvm's limits), else moved there after clone. */
static pid_t clone_child(const struct cvm_ws_spec *s, int *pidfd, bool *late_cgroup)
{
	struct cvm_clone_args ca = { .flags = WS_NS_FLAGS | CVM_CLONE_PIDFD,
				     .exit_signal = SIGCHLD, .pidfd = (uint64_t)(uintptr_t)pidfd };
	pid_t pid;

	if (s->netns)
		ca.flags |= CLONE_NEWNET;
	if (s->cgroup_fd >= 0) {
		ca.flags |= CVM_CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)s->cgroup_fd;
	}
	*late_cgroup = false;
	pid = cvm_test_hook("CVM_DEBUG_NO_CLONE_INTO_CGROUP") ? (errno = ENOSYS, -1)
							: sys_clone3(&ca, sizeof(ca));
	if (pid < 0 && s->cgroup_fd >= 0 && (errno == ENOSYS || errno == EINVAL || errno == E2BIG)) {
		/* A kernel without CLONE_INTO_CGROUP (< 5.7): clone here, move the
		 * child, and let it make its cgroup namespace once it is there. */
		ca.flags &= ~(CVM_CLONE_INTO_CGROUP | (uint64_t)CLONE_NEWCGROUP);
		ca.cgroup = 0;
		*late_cgroup = true;
		cvm_report(CVM_REPORT_INFO, "workspace", "no CLONE_INTO_CGROUP (%s): moving the "
			   "workspace into its cgroup after clone", strerror(errno));
		pid = sys_clone3(&ca, sizeof(ca));
	}
	return pid;
}

static int open_netns(struct cvm_ws *ws, struct cvm_error *err)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)ws->pid);
	ws->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	return ws->netns_fd < 0 ? cvm_error_set(err, errno, "%s", path) : 0;
}

int cvm_ws_create(const struct cvm_ws_spec *s, cvm_ws_init_fn init, void *arg,
		  struct cvm_ws *ws, struct cvm_error *err)
{
	int sp[2];
	bool late_cgroup;

	if (prepare_state(s, err) < 0)
		return -1;
	if (s->procfs_fd >= 0 && (ws->procfs_mfd = procfs_mount(s->procfs_fd, err)) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		cvm_ws_close(ws);
		return cvm_error_set(err, errno, "socketpair");
	}
	ws->pid = clone_child(s, &ws->pidfd, &late_cgroup);
	if (ws->pid == 0) {
		close(sp[0]);
		if (late_cgroup)
			enter_cgroup_late(sp[1]);
		ws_child(sp[1], s, init, arg);
	}
	close(sp[1]);
	ws->sock = sp[0];
	if (ws->pid < 0) {
		cvm_error_set(err, errno, "clone3 into new namespaces");
		cvm_ws_close(ws);
		return -1;
	}
	if ((late_cgroup && move_into_cgroup(ws->pid, s->cgroup_fd, ws->sock, err) < 0) ||
	    cvm_idmap_write(ws->pid, s->uid_base, s->uid_count, err) < 0 ||
	    (s->netns && open_netns(ws, err) < 0)) {
		cvm_ws_close(ws);
		return -1;
	}
	return 0;
}

/* C has its namespaces and the caller has done its part in them: idmap the
 * layers with C's user namespace, build, and let C run. */
int cvm_ws_go(const struct cvm_ws_spec *s, struct cvm_ws *ws, struct cvm_error *err)
{
	struct ws_layers l = { steal_fd(&ws->procfs_mfd), -1, -1, -1 };
	char ready;

	cvm_closep(&ws->netns_fd);
	ws->netns_fd = -1;
	if (open_layers(s, ws->pid, &l, err) < 0 ||
	    run_builder(s, &l, ws->pidfd, ws->sock, &ws->console, err) < 0) {
		close_layers(&l);
		cvm_ws_close(ws);
		return -1;
	}
	close_layers(&l);
	if (write(ws->sock, "G", 1) != 1) {
		cvm_error_set(err, errno, "start the workspace");
		cvm_ws_close(ws);
		return -1;
	}
	/* Return only once C is in its mount namespace. No answer: C died,
	 * which the caller sees as its exit (125). */
	if (read(ws->sock, &ready, 1) < 0)
		ready = 0;
	cvm_closep(&ws->sock);
	ws->sock = -1;          /* C got its go: the caller's to stop and reap */
	return 0;
}

void cvm_ws_close(struct cvm_ws *ws)
{
	if (ws->sock >= 0 && ws->pid > 0)
		cvm_killpidp(&ws->pid);         /* half started: nobody else reaps it */
	if (ws->sock >= 0)
		ws->pid = -1;
	int *fds[] = { &ws->sock, &ws->netns_fd, &ws->procfs_mfd, &ws->console, &ws->pidfd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		cvm_closep(fds[i]);
		*fds[i] = -1;
	}
}
