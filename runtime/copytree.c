/* Recursive copy of an image directory (see copytree.h).
 *
 * The image is untrusted content: it may hold symlinks to "/" or "../..",
 * device nodes and setuid files. So every entry is opened relative to its
 * parent's fd with O_NOFOLLOW (or AT_SYMLINK_NOFOLLOW), never through a path
 * string, and a symlink is copied as a symlink, never followed.
 *
 * The walk uses an explicit stack of directory frames rather than recursion,
 * so a deep tree costs heap, not C stack. Each frame holds a source and a
 * destination dir fd; only the newest FD_WINDOW levels (and the root) keep
 * them open. A deeper level closes the fds of the level FD_WINDOW above it,
 * and on the way back up a closed level is reopened through ".." of its child
 * and checked against the dev/ino recorded when it was entered. Any depth is
 * then copied with at most 2 * (FD_WINDOW + 1) dir fds plus a few per entry;
 * real images are rarely more than 16 levels deep and never pay a reopen. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <search.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "copytree.h"

#define FD_WINDOW 16
#define CHECK_EVERY_ENTRIES 256
#define CHECK_EVERY_BYTES (32u << 20)
/* Bytes per copy_file_range call: small enough that progress keeps ticking
 * on a multi-GiB file, large enough that the call count does not matter. */
#define CFR_CHUNK (8u << 20)
#define RW_BUF_SIZE (128u << 10)
#define XATTR_BUF_SIZE 4096u
#define SHOWN_MAX 400           /* longest path in an error message */

unsigned int cvm_copy_progress_interval_ms = 2000;

struct frame {
	int src, dst;           /* -1 while closed to save fds (FD_WINDOW) */
	bool borrowed;          /* the caller's fds: never closed */
	struct stat st;         /* the source dir: applied at the end, checked on reopen */
	dev_t ddev;             /* identity of the destination dir, checked on reopen */
	ino_t dino;
	char *names;            /* the entries, NUL-separated, read when entering */
	size_t len, pos, names_cap;
	size_t rel_len;         /* length of this dir's relative path */
};

/* The first name a multiply-linked inode got in the copy. */
struct link_seen {
	dev_t dev;
	ino_t ino;
	char path[];            /* relative to the destination root */
};

struct copy_ctx {
	struct cvm_error *err;
	cvm_copy_progress_fn progress;
	void *arg;
	struct cvm_copy_progress done;
	struct timespec last_note;
	uint64_t entries_unchecked, bytes_unchecked;
	int dst_root;
	struct frame *frames;
	size_t depth, frames_cap;
	char *rel;              /* relative path of the entry at hand, for errors */
	size_t rel_len, rel_cap;
	char shown[SHOWN_MAX];  /* rel, shortened for a message */
	char *buf;              /* read/write fallback */
	char *xnames, *xvalue;
	size_t xnames_cap, xvalue_cap;
	void *links;            /* tsearch tree of struct link_seen */
};

/* ---- small helpers ------------------------------------------------------ */

/* realloc to at least @need bytes, doubling; NULL (old block kept) on failure. */
static void *grow(void *p, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 256;

	if (need <= *cap)
		return p;
	while (n < need)
		n *= 2;
	p = realloc(p, n);
	if (p)
		*cap = n;
	return p;
}

/* A path for a message. One longer than a message can hold keeps its start
 * and its end, so that the reason after it is never cut off. */
static const char *shorten(char buf[SHOWN_MAX], const char *path)
{
	size_t n = strlen(path);

	if (n < SHOWN_MAX)
		return path;
	snprintf(buf, SHOWN_MAX, "%.100s...%s", path, path + n - (SHOWN_MAX - 104));
	return buf;
}

static const char *rel_path(struct copy_ctx *c)
{
	return shorten(c->shown, c->rel_len ? c->rel : ".");
}

static int fail(struct copy_ctx *c, int err, const char *what)
{
	if (what)
		return cvm_error_set(c->err, err, "copy %s: %s", rel_path(c), what);
	return cvm_error_set(c->err, err, "copy %s", rel_path(c));
}

static int rel_push(struct copy_ctx *c, const char *name)
{
	size_t n = strlen(name);
	char *p = grow(c->rel, &c->rel_cap, c->rel_len + n + 2);

	if (!p)
		return cvm_error_set(c->err, ENOMEM, "copy %s/%s", rel_path(c), name);
	c->rel = p;
	if (c->rel_len)
		p[c->rel_len++] = '/';
	memcpy(p + c->rel_len, name, n + 1);
	c->rel_len += n;
	return 0;
}

static void rel_pop(struct copy_ctx *c, size_t len)
{
	c->rel_len = len;
	if (c->rel)
		c->rel[len] = '\0';
}

static void note_progress(struct copy_ctx *c, uint64_t entries, uint64_t bytes)
{
	struct timespec now;
	int64_t ms;

	c->done.files += entries;
	c->done.bytes += bytes;
	c->entries_unchecked += entries;
	c->bytes_unchecked += bytes;
	if (!c->progress || (c->entries_unchecked < CHECK_EVERY_ENTRIES &&
			     c->bytes_unchecked < CHECK_EVERY_BYTES))
		return;
	c->entries_unchecked = c->bytes_unchecked = 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(now.tv_sec - c->last_note.tv_sec) * 1000 +
	     (now.tv_nsec - c->last_note.tv_nsec) / 1000000;
	if (ms >= (int64_t)cvm_copy_progress_interval_ms) {
		c->last_note = now;
		c->progress(&c->done, c->arg);
	}
}

/* ---- extended attributes ------------------------------------------------ */

/* Where to read or write xattrs: an fd, or (for the O_PATH fds of symlinks,
 * devices and fifos, which f*xattr refuses) its /proc/self/fd link, which
 * resolves to that very inode without following a symlink's target. */
struct xref {
	int fd;
	char path[40];
};

static void xref_init(struct xref *x, int fd, bool by_path)
{
	x->fd = fd;
	x->path[0] = '\0';
	if (by_path)
		snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d", fd);
}

static ssize_t x_list(const struct xref *x, char *buf, size_t n)
{
	return x->path[0] ? listxattr(x->path, buf, n) : flistxattr(x->fd, buf, n);
}

static ssize_t x_get(const struct xref *x, const char *name, char *buf, size_t n)
{
	return x->path[0] ? getxattr(x->path, name, buf, n) : fgetxattr(x->fd, name, buf, n);
}

static int x_set(const struct xref *x, const char *name, const char *val, size_t n)
{
	return x->path[0] ? setxattr(x->path, name, val, n, 0) : fsetxattr(x->fd, name, val, n, 0);
}

/* List (or get, when @name is set) into the ctx buffer, growing it on ERANGE:
 * a value may also grow between the size probe and the read. */
static ssize_t x_read(struct copy_ctx *c, const struct xref *x, const char *name)
{
	char **buf = name ? &c->xvalue : &c->xnames;
	size_t *cap = name ? &c->xvalue_cap : &c->xnames_cap;

	for (;;) {
		ssize_t n = name ? x_get(x, name, *buf, *cap) : x_list(x, *buf, *cap);
		char *p;

		if (n >= 0 || errno != ERANGE)
			return n;
		n = name ? x_get(x, name, NULL, 0) : x_list(x, NULL, 0);
		if (n < 0)
			return n;
		p = grow(*buf, cap, (size_t)n + 1);
		if (!p)
			return -1;
		*buf = p;
	}
}

static int copy_xattrs(struct copy_ctx *c, const struct xref *src, const struct xref *dst)
{
	ssize_t len = x_read(c, src, NULL);

	if (len < 0)
		return errno == EOPNOTSUPP ? 0 : fail(c, errno, "list xattrs");
	for (char *n = c->xnames; n < c->xnames + len; n += strlen(n) + 1) {
		ssize_t v = x_read(c, src, n);

		if (v < 0 && errno == ENODATA)
			continue;       /* removed since it was listed */
		if (v < 0)
			return cvm_error_set(c->err, errno, "copy %s: get xattr %s", rel_path(c), n);
		if (x_set(dst, n, c->xvalue, (size_t)v) == 0)
			continue;
		/* An ACL the destination fs cannot hold (system.posix_acl_*, or NFS's
		 * system.nfs4_acl on a local fs): the mode bits still carry the
		 * basic permissions, and refusing would make NFS images uncopyable. */
		if (errno == EOPNOTSUPP && !strncmp(n, "system.", 7))
			continue;
		return cvm_error_set(c->err, errno, "copy %s: set xattr %s", rel_path(c), n);
	}
	return 0;
}

/* ---- metadata ----------------------------------------------------------- */

/* Owner, then xattrs, then mode, then times. chown clears setuid/setgid and
 * makes the kernel drop security.capability (killpriv), so the xattrs and
 * the mode come after it; setting an ACL rewrites group mode bits, so chmod
 * comes after the xattrs; xattrs and chmod change only ctime, so the times
 * set last stay as they are. */
static int set_meta_fd(struct copy_ctx *c, int src, int dst, const struct stat *st)
{
	struct timespec t[2] = { st->st_atim, st->st_mtim };
	struct xref xs, xd;

	xref_init(&xs, src, false);
	xref_init(&xd, dst, false);
	if (fchown(dst, st->st_uid, st->st_gid) < 0)
		return fail(c, errno, "chown");
	if (copy_xattrs(c, &xs, &xd) < 0)
		return -1;
	if (fchmod(dst, st->st_mode & 07777) < 0)
		return fail(c, errno, "chmod");
	if (futimens(dst, t) < 0)
		return fail(c, errno, "set times");
	return 0;
}

/* Symlinks, devices and fifos cannot be opened for I/O without following the
 * link, waking a driver or blocking, so their xattrs go through O_PATH fds. */
static int copy_xattrs_at(struct copy_ctx *c, int sdir, int ddir, const char *name)
{
	cleanup_close int s = openat(sdir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	cleanup_close int d = -1;
	struct xref xs, xd;
	ssize_t n;

	if (s < 0)
		return fail(c, errno, "open");
	xref_init(&xs, s, true);
	/* The common case, no xattrs at all, costs one listxattr. */
	n = x_list(&xs, c->xnames, c->xnames_cap);
	if (n == 0 || (n < 0 && errno == EOPNOTSUPP))
		return 0;
	d = openat(ddir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return fail(c, errno, "open the copy");
	xref_init(&xd, d, true);
	return copy_xattrs(c, &xs, &xd);
}

/* The same order as set_meta_fd, by name in a directory we created. */
static int set_meta_at(struct copy_ctx *c, int sdir, int ddir, const char *name,
		       const struct stat *st)
{
	struct timespec t[2] = { st->st_atim, st->st_mtim };

	if (fchownat(ddir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "chown");
	if (copy_xattrs_at(c, sdir, ddir, name) < 0)
		return -1;
	/* A symlink has no mode of its own. Anything else here is a device or
	 * fifo this copy just made, so following the name is safe. */
	if (!S_ISLNK(st->st_mode) && fchmodat(ddir, name, st->st_mode & 07777, 0) < 0)
		return fail(c, errno, "chmod");
	if (utimensat(ddir, name, t, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "set times");
	return 0;
}

/* ---- file data ---------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int copy_rw(struct copy_ctx *c, int src, int dst)
{
	ssize_t n;

	if (!c->buf && !(c->buf = malloc(RW_BUF_SIZE)))
		return fail(c, ENOMEM, NULL);
	while ((n = read(src, c->buf, RW_BUF_SIZE)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(c, errno, "read");
		if (write_all(dst, c->buf, (size_t)n) < 0)
			return fail(c, errno, "write");
		note_progress(c, 0, (uint64_t)n);
	}
	return 0;
}

/* copy_file_range cannot work between these files; read/write can. EPERM
 * covers seccomp profiles that deny the syscall (a real EPERM of the
 * destination shows again on write). */
static bool cfr_unsupported(int err)
{
	return err == EXDEV || err == EINVAL || err == ENOSYS || err == EOPNOTSUPP ||
	       err == EBADF || err == EPERM;
}

static int copy_data(struct copy_ctx *c, int src, int dst, off_t size)
{
	uint64_t total = 0;

	for (;;) {
		ssize_t n = copy_file_range(src, NULL, dst, NULL, CFR_CHUNK, 0);

		if (n > 0) {
			total += (uint64_t)n;
			note_progress(c, 0, (uint64_t)n);
			continue;
		}
		if (n == 0 && (total > 0 || size == 0))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && !cfr_unsupported(errno))
			return fail(c, errno, "copy_file_range");
		/* Unsupported here, or a filesystem (procfs-like, some FUSE) that
		 * reports 0 bytes for a non-empty file: go on from the offsets
		 * reached so far with plain read/write. */
		return copy_rw(c, src, dst);
	}
}

/* ---- one entry ---------------------------------------------------------- */

static int copy_regular(struct copy_ctx *c, int sdir, int ddir, const char *name,
			const struct stat *st)
{
	cleanup_close int src = -1, dst = -1;
	struct stat now;

	/* O_NONBLOCK: should the entry have become a fifo since fstatat, the
	 * open must not hang; the identity check below then refuses it. It has
	 * no effect on reading a regular file. */
	src = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (src < 0 || fstat(src, &now) < 0)
		return fail(c, errno, "open");
	if (now.st_dev != st->st_dev || now.st_ino != st->st_ino || !S_ISREG(now.st_mode))
		return fail(c, 0, "replaced during the copy");
	dst = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return fail(c, errno, "create");
	if (copy_data(c, src, dst, now.st_size) < 0)
		return -1;
	/* Owner and mode only now: data written to a setuid file would clear
	 * the bit again, and a read-only mode must not stop the writing. */
	return set_meta_fd(c, src, dst, &now);
}

static int copy_special(struct copy_ctx *c, int sdir, int ddir, const char *name,
			const struct stat *st)
{
	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(sdir, name, target, sizeof(target));

		if (n < 0)
			return fail(c, errno, "readlink");
		if ((size_t)n == sizeof(target))
			return fail(c, ENAMETOOLONG, "readlink");
		target[n] = '\0';
		if (symlinkat(target, ddir, name) < 0)
			return fail(c, errno, "symlink");
	} else if (mknodat(ddir, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0) {
		return fail(c, errno, "mknod");
	}
	return set_meta_at(c, sdir, ddir, name, st);
}

/* ---- hard links --------------------------------------------------------- */

static int link_cmp(const void *a, const void *b)
{
	const struct link_seen *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static struct link_seen *link_find(struct copy_ctx *c, const struct stat *st)
{
	struct link_seen key = { .dev = st->st_dev, .ino = st->st_ino };
	void *node = tfind(&key, &c->links, link_cmp);

	return node ? *(struct link_seen **)node : NULL;
}

/* Remember where the first name of a multiply-linked inode landed. */
static int link_remember(struct copy_ctx *c, const struct stat *st)
{
	struct link_seen *l = malloc(sizeof(*l) + c->rel_len + 1);

	if (!l)
		return fail(c, ENOMEM, NULL);
	l->dev = st->st_dev;
	l->ino = st->st_ino;
	memcpy(l->path, c->rel, c->rel_len + 1);
	if (!tsearch(l, &c->links, link_cmp)) {
		free(l);
		return fail(c, ENOMEM, NULL);
	}
	return 0;
}

/* Open the directory holding @path (relative to the destination root) one
 * component at a time with O_NOFOLLOW: no symlink of the copy is followed,
 * and paths longer than PATH_MAX work. *base is set to the last component;
 * @path is left as it was. */
static int open_dst_parent(struct copy_ctx *c, char *path, const char **base)
{
	int fd = openat(c->dst_root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char *slash;

	*base = path;
	while (fd >= 0 && (slash = strchr(*base, '/'))) {
		int next;

		*slash = '\0';
		next = openat(fd, *base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		*slash = '/';
		close(fd);
		fd = next;
		*base = slash + 1;
	}
	return fd;
}

static int make_link(struct copy_ctx *c, int ddir, const char *name, struct link_seen *l)
{
	const char *base;
	char shown[SHOWN_MAX];
	cleanup_close int dir = open_dst_parent(c, l->path, &base);

	/* linkat without AT_SYMLINK_FOLLOW links a symlink itself. */
	if (dir < 0 || linkat(dir, base, ddir, name, 0) < 0)
		return cvm_error_set(c->err, errno, "copy %s: link to %s", rel_path(c),
				     shorten(shown, l->path));
	return 0;
}

/* ---- directories -------------------------------------------------------- */

static void frame_close_fds(struct frame *f)
{
	if (f->borrowed)
		return;
	if (f->src >= 0)
		close(f->src);
	if (f->dst >= 0)
		close(f->dst);
	f->src = f->dst = -1;
}

static void frame_release(struct frame *f)
{
	frame_close_fds(f);
	free(f->names);
	f->names = NULL;
}

static int read_names(struct copy_ctx *c, struct frame *f)
{
	/* A fresh open file description: reading must not move the offset of
	 * an fd the caller gave us, and an O_PATH fd cannot be read at all. */
	int fd = openat(f->src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return fail(c, e, "open");
	}
	while ((errno = 0, de = readdir(d))) {
		size_t n = strlen(de->d_name) + 1;
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = grow(f->names, &f->names_cap, f->len + n);
		if (!p)
			return fail(c, ENOMEM, NULL);
		f->names = p;
		memcpy(p + f->len, de->d_name, n);
		f->len += n;
	}
	return errno ? fail(c, errno, "readdir") : 0;
}

static int push_frame(struct copy_ctx *c, const struct frame *nf)
{
	struct frame *p = grow(c->frames, &c->frames_cap, (c->depth + 1) * sizeof(*p));

	if (!p)
		return fail(c, ENOMEM, NULL);
	c->frames = p;
	p[c->depth++] = *nf;
	/* Keep the fds of the newest FD_WINDOW levels and the root only. */
	if (c->depth > FD_WINDOW + 1)
		frame_close_fds(&p[c->depth - 1 - FD_WINDOW]);
	return 0;
}

static int open_dir_pair(struct copy_ctx *c, const struct frame *parent, const char *name,
			 struct frame *nf)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	struct stat dst_st;
	dev_t dev = nf->st.st_dev;
	ino_t ino = nf->st.st_ino;

	nf->src = openat(parent->src, name, flags);
	if (nf->src < 0 || fstat(nf->src, &nf->st) < 0)
		return fail(c, errno, "open");
	if (nf->st.st_dev != dev || nf->st.st_ino != ino)
		return fail(c, 0, "replaced during the copy");
	nf->dst = openat(parent->dst, name, flags);
	if (nf->dst < 0 || fstat(nf->dst, &dst_st) < 0)
		return fail(c, errno, "open the copy");
	nf->ddev = dst_st.st_dev;
	nf->dino = dst_st.st_ino;
	return 0;
}

/* Make the directory and push its frame; its owner, mode, xattrs and times
 * are set in leave_dir, after its children: creating them changes its mtime,
 * and a read-only mode must not stop them. */
static int enter_dir(struct copy_ctx *c, const char *name, const struct stat *st)
{
	const struct frame *parent = &c->frames[c->depth - 1];
	struct frame nf = { .src = -1, .dst = -1, .st = *st, .rel_len = c->rel_len };

	if (mkdirat(parent->dst, name, 0700) < 0)
		return fail(c, errno, "mkdir");
	if (open_dir_pair(c, parent, name, &nf) < 0 || read_names(c, &nf) < 0 ||
	    push_frame(c, &nf) < 0) {
		frame_release(&nf);
		return -1;
	}
	note_progress(c, 1, 0);
	return 0;
}

/* Reopen a level whose fds were closed (FD_WINDOW) through ".." of its child,
 * and check it is the directory entered: a tree renamed during the copy
 * must fail, not carry on somewhere else. */
static int reopen_parent(struct copy_ctx *c, const struct frame *child, struct frame *parent)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	struct stat s, d;

	parent->src = openat(child->src, "..", flags);
	if (parent->src < 0 || fstat(parent->src, &s) < 0)
		return fail(c, errno, "reopen the parent dir");
	parent->dst = openat(child->dst, "..", flags);
	if (parent->dst < 0 || fstat(parent->dst, &d) < 0)
		return fail(c, errno, "reopen the parent dir of the copy");
	if (s.st_dev != parent->st.st_dev || s.st_ino != parent->st.st_ino ||
	    d.st_dev != parent->ddev || d.st_ino != parent->dino)
		return fail(c, 0, "parent dir moved during the copy");
	return 0;
}

static int leave_dir(struct copy_ctx *c)
{
	struct frame *f = &c->frames[c->depth - 1], *parent = f - 1;

	if (parent->src < 0 && reopen_parent(c, f, parent) < 0)
		return -1;
	if (set_meta_fd(c, f->src, f->dst, &f->st) < 0)
		return -1;
	frame_release(f);
	c->depth--;
	rel_pop(c, parent->rel_len);
	return 0;
}

static int copy_entry(struct copy_ctx *c, const char *name)
{
	const struct frame *f = &c->frames[c->depth - 1];
	size_t len = c->rel_len;
	struct link_seen *l;
	struct stat st;
	int r;

	if (rel_push(c, name) < 0)
		return -1;
	if (fstatat(f->src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "stat");
	if (S_ISDIR(st.st_mode))
		return enter_dir(c, name, &st);  /* its path stays until leave_dir */
	/* A socket is what a process left behind, not content: nothing could
	 * connect to a copy of it. */
	if (S_ISSOCK(st.st_mode)) {
		rel_pop(c, len);
		return 0;
	}
	l = st.st_nlink > 1 ? link_find(c, &st) : NULL;
	if (l)
		r = make_link(c, f->dst, name, l);
	else if (S_ISREG(st.st_mode))
		r = copy_regular(c, f->src, f->dst, name, &st);
	else
		r = copy_special(c, f->src, f->dst, name, &st);
	if (r == 0 && !l && st.st_nlink > 1)
		r = link_remember(c, &st);
	if (r < 0)
		return -1;
	note_progress(c, 1, 0);
	rel_pop(c, len);
	return 0;
}

static int walk(struct copy_ctx *c)
{
	while (c->depth > 0) {
		struct frame *f = &c->frames[c->depth - 1];

		if (f->pos < f->len) {
			/* The name stays valid: frames move on a push, names do not. */
			const char *name = f->names + f->pos;

			f->pos += strlen(name) + 1;
			if (copy_entry(c, name) < 0)
				return -1;
		} else if (c->depth > 1) {
			if (leave_dir(c) < 0)
				return -1;
		} else {
			break;  /* the root's own metadata is the caller's */
		}
	}
	return 0;
}

static void ctx_free(struct copy_ctx *c)
{
	while (c->depth > 0)
		frame_release(&c->frames[--c->depth]);
	free(c->frames);
	free(c->rel);
	free(c->buf);
	free(c->xnames);
	free(c->xvalue);
	tdestroy(c->links, free);
}

int cvm_copy_tree(int src_dirfd, int dst_dirfd, cvm_copy_progress_fn progress, void *arg,
		  struct cvm_error *err)
{
	struct copy_ctx c = { .err = err, .progress = progress, .arg = arg, .dst_root = dst_dirfd };
	struct frame root = { .src = src_dirfd, .dst = dst_dirfd, .borrowed = true };
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &c.last_note);
	/* The xattr buffers are never empty: a size-0 list call would return
	 * the size, not ERANGE, and x_read would take it for the result. */
	c.xnames = grow(NULL, &c.xnames_cap, XATTR_BUF_SIZE);
	c.xvalue = grow(NULL, &c.xvalue_cap, XATTR_BUF_SIZE);
	if (!c.xnames || !c.xvalue)
		r = fail(&c, ENOMEM, NULL);
	if (r == 0 && (read_names(&c, &root) < 0 || push_frame(&c, &root) < 0)) {
		frame_release(&root);
		r = -1;
	}
	if (r == 0)
		r = walk(&c);
	if (r == 0 && progress)
		progress(&c.done, arg);
	ctx_free(&c);
	return r;
}
