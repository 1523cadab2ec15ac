#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "idmap.h"
#include "mounts.h"
#include "rootpath.h"
#include "syscalls.h"

#define NOSUID_NODEV_NOEXEC (CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NODEV | CVM_MOUNT_ATTR_NOEXEC)

/* OCI/Docker defaults. Masks hide what a workspace has no business reading;
 * the kernel still guards these files itself (kcore needs CAP_SYS_RAWIO in
 * the initial namespace), the masks are defence in depth. */
static const char *const masked_paths[] = {
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/proc/sysrq-trigger", "/sys/firmware",
	"/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
};

/* Append what the kernel logged into the fs context ("e overlayfs: ..."). */
static void fs_context_log(int fsfd, struct cvm_error *err)
{
	char buf[512];
	ssize_t n;

	while ((n = read(fsfd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		size_t len = strlen(err->msg);
		if (len + 4 < sizeof(err->msg))
			snprintf(err->msg + len, sizeof(err->msg) - len, " [%s]", buf);
	}
}

int cvm_fs_new(const char *fstype, const char *const *options, uint64_t attr,
	       struct cvm_error *err)
{
	cleanup_close int fsfd = sys_fsopen(fstype, CVM_FSOPEN_CLOEXEC);
	int mfd;

	if (fsfd < 0)
		return cvm_error_set(err, errno, "fsopen %s", fstype);
	/* Names the mount in /proc/self/mounts ("proc on /proc"), not "none". */
	sys_fsconfig(fsfd, CVM_FSCONFIG_SET_STRING, "source", fstype, 0);
	for (size_t i = 0; options && options[i]; i++) {
		char key[64];
		const char *eq = strchr(options[i], '=');
		int r;
		if (eq) {
			snprintf(key, sizeof(key), "%.*s", (int)(eq - options[i]), options[i]);
			r = sys_fsconfig(fsfd, CVM_FSCONFIG_SET_STRING, key, eq + 1, 0);
		} else
			r = sys_fsconfig(fsfd, CVM_FSCONFIG_SET_FLAG, options[i], NULL, 0);
		if (r < 0) {
			cvm_error_set(err, errno, "%s option %s", fstype, options[i]);
			fs_context_log(fsfd, err);
			return -1;
		}
	}
	if (sys_fsconfig(fsfd, CVM_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		cvm_error_set(err, errno, "mount %s", fstype);
		fs_context_log(fsfd, err);
		return -1;
	}
	mfd = sys_fsmount(fsfd, CVM_FSMOUNT_CLOEXEC, (unsigned)attr);
	if (mfd < 0)
		return cvm_error_set(err, errno, "fsmount %s", fstype);
	return mfd;
}

int cvm_mount_at(int mfd, int root_fd, const char *path, unsigned want_type,
		 struct cvm_error *err)
{
	cleanup_close int target = cvm_root_open(root_fd, path,
						 want_type == S_IFREG ? CVM_ROOT_FILE : CVM_ROOT_DIR,
						 want_type, err);
	if (target < 0)
		return -1;
	if (sys_move_mount(mfd, "", target, "",
			   CVM_MOVE_MOUNT_F_EMPTY_PATH | CVM_MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return cvm_error_set(err, errno, "mount on %s", path);
	return 0;
}

/* New fs instance straight onto @path. */
static int mount_new(int root_fd, const char *path, const char *fstype,
		     const char *const *options, uint64_t attr, struct cvm_error *err)
{
	cleanup_close int mfd = cvm_fs_new(fstype, options, attr, err);

	if (mfd < 0 || cvm_mount_at(mfd, root_fd, path, S_IFDIR, err) < 0)
		return -1;
	return 0;
}

/* A tmpfs owned by the workspace's root. */
static int mount_tmpfs(int root_fd, const char *path, const char *mode, const char *size,
		       uint32_t base, uint64_t attr, struct cvm_error *err)
{
	char uid[32], gid[32], m[32], sz[48];
	snprintf(uid, sizeof(uid), "uid=%u", base);
	snprintf(gid, sizeof(gid), "gid=%u", base);
	snprintf(m, sizeof(m), "mode=%s", mode);
	snprintf(sz, sizeof(sz), "size=%s", size);
	const char *opts[] = { uid, gid, m, sz, NULL };
	return mount_new(root_fd, path, "tmpfs", opts, attr, err);
}

/* Bind the file or tree that @src_fd names onto @path (both in the root). */
static int bind_fd(int src_fd, int root_fd, const char *path, uint64_t attr,
		   struct cvm_error *err)
{
	struct stat st;
	cleanup_close int mfd = sys_open_tree(src_fd, "", AT_EMPTY_PATH | CVM_OPEN_TREE_CLONE |
					      CVM_OPEN_TREE_CLOEXEC | CVM_AT_RECURSIVE);
	if (mfd < 0 || fstat(mfd, &st) < 0)
		return cvm_error_set(err, errno, "bind %s", path);
	if (attr) {
		struct cvm_mount_attr a = { .attr_set = attr };
		if (sys_mount_setattr(mfd, "", AT_EMPTY_PATH | CVM_AT_RECURSIVE, &a, sizeof(a)) < 0)
			return cvm_error_set(err, errno, "bind %s: set flags", path);
	}
	return cvm_mount_at(mfd, root_fd, path, S_ISDIR(st.st_mode) ? S_IFDIR : S_IFREG, err);
}

/* Device nodes: mknod is impossible inside a user namespace, so outer root
 * makes them here, on a tmpfs the outer root mounted (a tmpfs mounted from
 * inside would be nodev). They take the device numbers the outer container
 * has, and belong to the workspace's root so it can use them. */
struct dev_node { const char *name; unsigned major, minor; unsigned gid_off; };

static int make_node(int dev_fd, const struct dev_node *n, uint32_t base, bool required,
		     struct cvm_error *err)
{
	char outer[64];
	struct stat st;
	dev_t rdev = makedev(n->major, n->minor);

	snprintf(outer, sizeof(outer), "/dev/%s", n->name);
	if (stat(outer, &st) == 0 && S_ISCHR(st.st_mode))
		rdev = st.st_rdev;
	else if (required)
		return cvm_error_set(err, 0, "%s is missing in the outer container; start it with "
				     "--privileged or --device %s, or turn the device off", outer, outer);
	if (mknodat(dev_fd, n->name, S_IFCHR | 0666, rdev) < 0)
		return cvm_error_set(err, errno, "mknod /dev/%s", n->name);
	if (fchownat(dev_fd, n->name, base, base + n->gid_off, AT_SYMLINK_NOFOLLOW) < 0)
		return cvm_error_set(err, errno, "chown /dev/%s", n->name);
	return 0;
}

/* An outer id shown inside as the same id when the range holds it, else
 * as the workspace's root (never as nobody, which nobody inside can use). */
static uint32_t inner_owner(const struct cvm_mounts_spec *s, uint32_t outer)
{
	return s->id_base + (outer < s->id_count ? outer : 0);
}

/* The extra nodes (GPUs): the outer node's number, mode and owners, in
 * subdirectories (nvidia-caps/, dri/) where named so. */
static int make_extra_nodes(int dev_fd, const struct cvm_mounts_spec *s, struct cvm_error *err)
{
	for (size_t i = 0; s->extras && i < s->extras->n_nodes; i++) {
		const struct cvm_ws_node *n = &s->extras->nodes[i];
		char dir[256];
		const char *slash = strrchr(n->inner, '/');

		if (slash) {
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - n->inner), n->inner);
			if ((mkdirat(dev_fd, dir, 0755) < 0 && errno != EEXIST) ||
			    fchownat(dev_fd, dir, s->id_base, s->id_base, AT_SYMLINK_NOFOLLOW) < 0)
				return cvm_error_set(err, errno, "/dev/%s", dir);
		}
		if (mknodat(dev_fd, n->inner, S_IFCHR | (n->mode & 0777), n->rdev) < 0 ||
		    fchmodat(dev_fd, n->inner, n->mode & 0777, 0) < 0)
			return cvm_error_set(err, errno, "mknod /dev/%s (for %s)", n->inner, n->outer);
		if (fchownat(dev_fd, n->inner, inner_owner(s, n->uid), inner_owner(s, n->gid),
			     AT_SYMLINK_NOFOLLOW) < 0)
			return cvm_error_set(err, errno, "chown /dev/%s", n->inner);
	}
	return 0;
}

static int make_dev_nodes(int dev_fd, const struct cvm_mounts_spec *s, struct cvm_error *err)
{
	static const struct dev_node std[] = {
		{ "null", 1, 3, 0 }, { "zero", 1, 5, 0 }, { "full", 1, 7, 0 },
		{ "random", 1, 8, 0 }, { "urandom", 1, 9, 0 }, { "tty", 5, 0, 5 },
	};
	static const struct dev_node fuse = { "fuse", 10, 229, 0 };
	static const struct dev_node tun = { "net/tun", 10, 200, 0 };
	static const char *const links[][2] = {
		{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
		{ "ptmx", "pts/ptmx" },
	};

	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++)
		if (make_node(dev_fd, &std[i], s->id_base, false, err) < 0)
			return -1;
	if (s->dev_fuse && make_node(dev_fd, &fuse, s->id_base, true, err) < 0)
		return -1;
	if (s->dev_tun && (mkdirat(dev_fd, "net", 0755) < 0 ||
			   fchownat(dev_fd, "net", s->id_base, s->id_base, 0) < 0 ||
			   make_node(dev_fd, &tun, s->id_base, true, err) < 0))
		return err->msg[0] ? -1 : cvm_error_set(err, errno, "/dev/net");
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i][1], dev_fd, links[i][0]) < 0 ||
		    fchownat(dev_fd, links[i][0], s->id_base, s->id_base, AT_SYMLINK_NOFOLLOW) < 0)
			return cvm_error_set(err, errno, "symlink /dev/%s", links[i][0]);
	return make_extra_nodes(dev_fd, s, err);
}

/* A fully visible proc and sysfs instance, kept under /dev where nothing
 * can reach it. The kernel lets a user namespace mount a new proc or sysfs
 * (Docker, nested containers, `unshare -p` inside need it) only if one that
 * is not partly covered by a locked mount already exists in the mount
 * namespace; ours at /proc has the masks on it, so this one vouches. The
 * /dev tmpfs goes on top and is locked there, so it cannot be uncovered. */
static int mount_hidden_witnesses(int root_fd, struct cvm_error *err)
{
	static const char *const opts[] = { "mode=0700", "size=4k", NULL };
	cleanup_close int base = cvm_fs_new("tmpfs", opts, NOSUID_NODEV_NOEXEC, err);
	cleanup_close int proc = -1, sys = -1;

	if (base < 0 || cvm_mount_at(base, root_fd, "/dev", S_IFDIR, err) < 0)
		return cvm_error_prefix(err, "/dev");
	proc = cvm_fs_new("proc", NULL, NOSUID_NODEV_NOEXEC, err);
	if (proc < 0 || cvm_mount_at(proc, root_fd, "/dev/.proc", S_IFDIR, err) < 0)
		return -1;
	sys = cvm_fs_new("sysfs", NULL, NOSUID_NODEV_NOEXEC | CVM_MOUNT_ATTR_RDONLY, err);
	if (sys < 0 || cvm_mount_at(sys, root_fd, "/dev/.sys", S_IFDIR, err) < 0)
		return -1;
	return 0;
}

/* /dev/null of the workspace, checked to be the null device before it is
 * bound anywhere: a mask made from whatever sits at /dev/null would expose
 * that instead (runc CVE-2025-31133). */
static int open_null(int root_fd, struct cvm_error *err)
{
	struct stat st;
	int fd = cvm_root_open(root_fd, "/dev/null", CVM_ROOT_NOCREATE, 0, err);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
		close(fd);
		return cvm_error_set(err, EPERM, "/dev/null of the workspace is not the null device");
	}
	return fd;
}

static int mount_dev(int root_fd, const struct cvm_mounts_spec *s, struct cvm_error *err)
{
	char ptsgid[32];
	cleanup_close int dev_fd = -1;

	if (mount_hidden_witnesses(root_fd, err) < 0 ||
	    mount_tmpfs(root_fd, "/dev", "0755", "64k", s->id_base,
			CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NOEXEC, err) < 0)
		return -1;
	/* An O_PATH fd is enough as the dirfd of mknodat/symlinkat. */
	dev_fd = cvm_root_open(root_fd, "/dev", CVM_ROOT_NOCREATE, S_IFDIR, err);
	if (dev_fd < 0 || make_dev_nodes(dev_fd, s, err) < 0)
		return -1;
	snprintf(ptsgid, sizeof(ptsgid), "gid=%u", s->id_base + 5);
	const char *pts_opts[] = { "newinstance", "ptmxmode=0666", "mode=0620", ptsgid, NULL };
	if (mount_new(root_fd, "/dev/pts", "devpts", pts_opts,
		      CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NOEXEC, err) < 0 ||
	    mount_tmpfs(root_fd, "/dev/shm", "1777", "50%", s->id_base, NOSUID_NODEV_NOEXEC, err) < 0 ||
	    mount_new(root_fd, "/dev/mqueue", "mqueue", NULL, NOSUID_NODEV_NOEXEC, err) < 0)
		return -1;
	return 0;
}

int cvm_pty_slave(int master, uint16_t rows, uint16_t cols, struct cvm_error *err)
{
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	int unlock = 0, slave;

	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 ||
	    (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		return cvm_error_set(err, errno, "a pty of the workspace");
	if (rows && cols)
		ioctl(master, TIOCSWINSZ, &ws);
	return slave;
}

int cvm_mount_console(int root_fd, uint16_t rows, uint16_t cols, int *master_out, int *slave_out,
		      struct cvm_error *err)
{
	/* The devpts under /dev/pts is the one cvm_mount_system just made:
	 * nothing of the image's is there. */
	cleanup_close int master = cvm_root_open(root_fd, "/dev/pts/ptmx", CVM_ROOT_NOCREATE, 0,
						 err);
	cleanup_close int slave = -1;

	if (master < 0)
		return cvm_error_prefix(err, "console");
	/* An O_PATH fd cannot do ioctls: reopen it for real, through
	 * /proc/self/fd, which names that same node. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", master);
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return cvm_error_set(err, errno, "console: open /dev/pts/ptmx");
	close(master);
	master = fd;
	slave = cvm_pty_slave(master, rows, cols, err);
	if (slave < 0)
		return cvm_error_prefix(err, "console");
	if (bind_fd(slave, root_fd, "/dev/console", 0, err) < 0)
		return -1;
	*master_out = steal_fd(&master);
	*slave_out = steal_fd(&slave);
	return 0;
}

static int mask_paths(int root_fd, struct cvm_error *err)
{
	static const char *const opts[] = { "size=4k", "mode=0555", "ro", NULL };
	cleanup_close int null_fd = open_null(root_fd, err);

	if (null_fd < 0)
		return -1;
	for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++) {
		struct stat st;
		cleanup_close int fd = cvm_root_open(root_fd, masked_paths[i], CVM_ROOT_NOCREATE, 0, err);
		if (fd < 0 && err->err == ENOENT)
			continue;
		if (fd < 0 || fstat(fd, &st) < 0)
			return -1;
		if (!S_ISDIR(st.st_mode)) {
			if (bind_fd(null_fd, root_fd, masked_paths[i], 0, err) < 0)
				return -1;
			continue;
		}
		cleanup_close int mfd = cvm_fs_new("tmpfs", opts, NOSUID_NODEV_NOEXEC |
						   CVM_MOUNT_ATTR_RDONLY, err);
		if (mfd < 0 || cvm_mount_at(mfd, root_fd, masked_paths[i], S_IFDIR, err) < 0)
			return cvm_error_prefix(err, "mask %s", masked_paths[i]);
	}
	cvm_error_clear(err);
	return 0;
}

static int readonly_paths_apply(int root_fd, struct cvm_error *err)
{
	for (size_t i = 0; i < sizeof(readonly_paths) / sizeof(readonly_paths[0]); i++) {
		cleanup_close int fd = cvm_root_open(root_fd, readonly_paths[i], CVM_ROOT_NOCREATE, 0, err);
		if (fd < 0 && err->err == ENOENT)
			continue;
		if (fd < 0 || bind_fd(fd, root_fd, readonly_paths[i],
				      NOSUID_NODEV_NOEXEC | CVM_MOUNT_ATTR_RDONLY, err) < 0)
			return cvm_error_prefix(err, "read-only %s", readonly_paths[i]);
	}
	cvm_error_clear(err);
	return 0;
}

/* A volume: an idmapped bind, so its files show inside with the owners
 * they have on disk (uid 1000 on disk is uid 1000 inside), no chown. */
static int mount_volume(int root_fd, const struct cvm_ws_mount *m, int userns_fd,
			struct cvm_error *err)
{
	struct cvm_mount_attr a = {
		.attr_set = CVM_MOUNT_ATTR_IDMAP | CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NODEV |
			    (m->readonly ? CVM_MOUNT_ATTR_RDONLY : 0),
		.userns_fd = (uint64_t)userns_fd,
	};
	struct stat st;
	cleanup_close int mfd = sys_open_tree(AT_FDCWD, m->source,
					      CVM_OPEN_TREE_CLONE | CVM_OPEN_TREE_CLOEXEC);

	if (mfd < 0 || fstat(mfd, &st) < 0)
		return cvm_error_set(err, errno, "mount \"%s\": source %s", m->name, m->source);
	if (sys_mount_setattr(mfd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
		int e = errno;
		char fs[32];
		snprintf(fs, sizeof(fs), "%s", cvm_fs_name(mfd));
		return cvm_error_set(err, e, "mount \"%s\": cannot idmap %s (on %s)%s", m->name,
				     m->source, fs, e == EINVAL ? "; put the volume on ext4, xfs, "
				     "btrfs or tmpfs" : "");
	}
	if (cvm_mount_at(mfd, root_fd, m->target, S_ISDIR(st.st_mode) ? S_IFDIR : S_IFREG, err) < 0)
		return cvm_error_prefix(err, "mount \"%s\": target", m->name);
	return 0;
}

/* The directory of @path inside the root (made when missing) and the last
 * name in @name. What a previous start left at the name (cvm's own symlink,
 * or the empty mount point of a file bound then) is removed when @clear
 * says so; whoever planned checked that the image itself has nothing there. */
static int open_parent(int root_fd, const char *path, char *name, size_t size, bool clear,
		       struct cvm_error *err)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int pfd;

	if (!slash || !slash[1] || (size_t)(slash - path) >= sizeof(dir))
		return cvm_error_set(err, EINVAL, "%s", path);
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	snprintf(name, size, "%s", slash + 1);
	pfd = cvm_root_open(root_fd, dir, CVM_ROOT_DIR, S_IFDIR, err);
	if (pfd < 0 || !clear || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return pfd;
	if ((S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_size == 0)) &&
	    unlinkat(pfd, name, 0) < 0) {
		close(pfd);
		return cvm_error_set(err, errno, "remove the old %s", path);
	}
	return pfd;
}

/* Bind @f read-only. Idmapped when its filesystem allows, so that files of
 * the node's root show as root's inside; else a plain bind (nobody's). */
static int bind_extra_file(int root_fd, const struct cvm_ws_file *f, int userns_fd,
			   struct cvm_error *err)
{
	struct cvm_mount_attr a = {
		.attr_set = CVM_MOUNT_ATTR_RDONLY | CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NODEV |
			    CVM_MOUNT_ATTR_IDMAP,
		.userns_fd = (uint64_t)userns_fd,
	};
	char name[256];
	struct stat st;
	cleanup_close int mfd = sys_open_tree(AT_FDCWD, f->source, CVM_OPEN_TREE_CLONE |
					      CVM_OPEN_TREE_CLOEXEC);
	cleanup_close int pfd = -1;

	if (mfd < 0 || fstat(mfd, &st) < 0 || !S_ISREG(st.st_mode))
		return cvm_error_set(err, mfd < 0 ? errno : EINVAL, "bind %s", f->source);
	if (sys_mount_setattr(mfd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
		a.attr_set &= ~(uint64_t)CVM_MOUNT_ATTR_IDMAP;
		if (sys_mount_setattr(mfd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
			return cvm_error_set(err, errno, "bind %s: read-only", f->source);
	}
	pfd = open_parent(root_fd, f->target, name, sizeof(name), true, err);
	if (pfd < 0)
		return -1;
	if (cvm_mount_at(mfd, root_fd, f->target, S_IFREG, err) < 0)
		return cvm_error_prefix(err, "bind %s", f->source);
	return 0;
}

static int make_extra_link(int root_fd, const struct cvm_ws_link *l, struct cvm_error *err)
{
	char name[256];
	cleanup_close int pfd = open_parent(root_fd, l->path, name, sizeof(name), true, err);

	if (pfd < 0)
		return -1;
	if (symlinkat(l->target, pfd, name) < 0)
		return cvm_error_set(err, errno, "symlink %s -> %s", l->path, l->target);
	return 0;
}

static int apply_extras(int root_fd, const struct cvm_mounts_spec *s, struct cvm_error *err)
{
	const struct cvm_ws_extras *x = s->extras;

	for (size_t i = 0; x && i < x->n_links; i++)
		if (make_extra_link(root_fd, &x->links[i], err) < 0)
			return -1;
	for (size_t i = 0; x && i < x->n_files; i++)
		if (bind_extra_file(root_fd, &x->files[i], s->userns_fd, err) < 0)
			return -1;
	return 0;
}

/* With a network namespace of its own, the net sysctls are the
 * workspace's (the kernel checks writes against the user namespace that
 * owns the network namespace): /proc/sys/net stays writable over the
 * read-only /proc/sys, as dockerd and systemd need (ip_forward, rp_filter).
 * Cloned from the proc mount before /proc/sys goes read-only. */
static int clone_proc_sys_net(int root_fd, const struct cvm_mounts_spec *s,
			      struct cvm_error *err)
{
	cleanup_close int fd = -1;
	int mfd;

	if (!s->own_netns)
		return -1;
	fd = cvm_root_open(root_fd, "/proc/sys/net", CVM_ROOT_NOCREATE, S_IFDIR, err);
	if (fd < 0)
		return -1;
	mfd = sys_open_tree(fd, "", AT_EMPTY_PATH | CVM_OPEN_TREE_CLONE | CVM_OPEN_TREE_CLOEXEC);
	if (mfd < 0)
		return cvm_error_set(err, errno, "/proc/sys/net");
	return mfd;
}

int cvm_mount_system(int root_fd, const struct cvm_mounts_spec *s, struct cvm_error *err)
{
	static const char *const no_opts[] = { NULL };
	cleanup_close int sys_net = -1;

	if (mount_new(root_fd, "/proc", "proc", no_opts, NOSUID_NODEV_NOEXEC, err) < 0 ||
	    mount_new(root_fd, "/sys", "sysfs", no_opts,
		      NOSUID_NODEV_NOEXEC | CVM_MOUNT_ATTR_RDONLY, err) < 0 ||
	    /* Made from inside the workspace's cgroup namespace (the builder
	     * joined it): the workspace's group is the root here. */
	    mount_new(root_fd, "/sys/fs/cgroup", "cgroup2", no_opts, NOSUID_NODEV_NOEXEC, err) < 0 ||
	    mount_dev(root_fd, s, err) < 0 ||
	    mount_tmpfs(root_fd, "/run", "0755", "20%", s->id_base,
			CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NODEV, err) < 0 ||
	    mount_tmpfs(root_fd, "/tmp", "1777", "50%", s->id_base,
			CVM_MOUNT_ATTR_NOSUID | CVM_MOUNT_ATTR_NODEV, err) < 0)
		return -1;
	for (size_t i = 0; i < s->n_mounts; i++)
		if (mount_volume(root_fd, &s->mounts[i], s->userns_fd, err) < 0)
			return -1;
	if (apply_extras(root_fd, s, err) < 0)
		return cvm_error_prefix(err, "gpu");
	if (s->own_netns && (sys_net = clone_proc_sys_net(root_fd, s, err)) < 0)
		return -1;
	if (mask_paths(root_fd, err) < 0 || readonly_paths_apply(root_fd, err) < 0)
		return -1;
	if (sys_net >= 0 && cvm_mount_at(sys_net, root_fd, "/proc/sys/net", S_IFDIR, err) < 0)
		return cvm_error_prefix(err, "writable /proc/sys/net");
	return 0;
}
