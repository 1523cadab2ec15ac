/* One image layer, tar to disk: libarchive reads (tar, pax, GNU long names;
 * gzip, zstd or nothing), and every write is an *at() call relative to a
 * directory fd opened inside the root with openat2(RESOLVE_BENEATH), so no
 * entry, symlink or hard link of the layer can reach outside it. See
 * layer.h for what is kept and what is refused. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <search.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/layer.h"
#include "runtime/cleanup.h"
#include "runtime/rootpath.h"
#include "runtime/syscalls.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define BENEATH (CVM_RESOLVE_BENEATH | CVM_RESOLVE_NO_MAGICLINKS)

struct dir_fix {                        /* a dir's mode and times, set at the end */
	char *path;
	mode_t mode;
	struct timespec ts[2];
};

struct unpack {
	struct archive *a;
	struct archive_entry *e;
	int root_fd;
	enum cvm_layer_mode mode;
	struct cvm_layer_stats *st;
	struct cvm_error *err;
	const char *entry;              /* the entry's name as in the tar */
	char path[PATH_MAX];            /* cleaned, relative to the root; "" is the root */
	void *seen;                     /* APPLY: paths (and their parents) of this layer */
	struct dir_fix *dirs;
	size_t n_dirs, cap_dirs;
};

static int fail(struct unpack *u, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct unpack *u, int e, const char *fmt, ...)
{
	char what[CVM_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return cvm_error_set(u->err, e, "layer entry %s: %s", u->entry, what);
}

/* ---- paths ---------------------------------------------------------------- */

/* "./a//b/./c/" -> "a/b/c"; "a/../b" -> "b". Absolute paths and ".." above
 * the root are refused: a layer's paths are relative to its root. */
static int clean_path(struct unpack *u, const char *what, const char *raw, char *out, size_t size)
{
	size_t len = 0;

	if (raw[0] == '/')
		return fail(u, 0, "%sabsolute path refused (a layer's paths are relative)", what);
	out[0] = '\0';
	for (const char *p = raw; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (len == 0)
				return fail(u, 0, "%s'..' leaves the layer's root: refused", what);
			while (len > 0 && out[len - 1] != '/')
				len--;
			len = len > 0 ? len - 1 : 0;
			out[len] = '\0';
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (len + n + 2 > size)
				return fail(u, ENAMETOOLONG, "%spath", what);
			if (len)
				out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
			out[len] = '\0';
		}
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* Split @path in place into its parent ("" for the root) and last name. */
static const char *split_leaf(char *path)
{
	char *slash = strrchr(path, '/');

	if (!slash) {
		memmove(path + 1, path, strlen(path) + 1);
		path[0] = '\0';
		return path + 1;
	}
	*slash = '\0';
	return slash + 1;
}

static int open_beneath(int root_fd, const char *rel)
{
	return cvm_root_openat2(root_fd, rel[0] ? rel : ".", O_PATH | O_DIRECTORY, BENEATH);
}

static int dir_error(struct unpack *u, const char *rel)
{
	if (errno == EXDEV)
		return fail(u, EXDEV, "%s%sleads out of the layer's root (an absolute symlink or "
			    "'..' on the way): refused", rel, rel[0] ? " " : "");
	return fail(u, errno, "open %s", rel[0] ? rel : ".");
}

/* An O_PATH fd of the dir @rel inside the root; with @create, missing dirs
 * on the way are made (0755, root's: what tar and Docker do). -1 with
 * errno ENOENT when missing and !@create; -1 with the error set otherwise. */
static int open_dir(struct unpack *u, const char *rel, bool create)
{
	char prefix[PATH_MAX];
	int fd = open_beneath(u->root_fd, rel);

	if (fd >= 0 || (errno == ENOENT && !create))
		return fd;
	if (errno != ENOENT) {
		int e = errno;
		dir_error(u, rel);
		errno = e;
		return -1;
	}
	/* Walk down, making what is missing; each step re-resolves from the
	 * root, so a symlink met on the way is checked like any other. */
	for (size_t i = 0;; i++) {
		if (rel[i] != '/' && rel[i] != '\0')
			continue;
		memcpy(prefix, rel, i);
		prefix[i] = '\0';
		cleanup_close int d = open_beneath(u->root_fd, prefix);
		if (d < 0 && errno == ENOENT) {
			char parent[PATH_MAX];
			snprintf(parent, sizeof(parent), "%s", prefix);
			const char *leaf = split_leaf(parent);
			cleanup_close int p = open_beneath(u->root_fd, parent);
			if (p < 0)
				return dir_error(u, parent);
			if (mkdirat(p, leaf, 0755) < 0 && errno != EEXIST)
				return fail(u, errno, "mkdir %s", prefix);
			/* 0755 whatever the caller's umask */
			if (fchmodat(p, leaf, 0755, 0) < 0)
				return fail(u, errno, "chmod %s", prefix);
			d = open_beneath(u->root_fd, prefix);
		}
		if (d < 0)
			return dir_error(u, prefix);
		if (rel[i] == '\0')
			return steal_fd(&d);
	}
}

/* ---- removal ---------------------------------------------------------------- */

static bool seen(struct unpack *u, const char *path)
{
	return u->seen && tfind(path, &u->seen, (int (*)(const void *, const void *))strcmp);
}

/* Remember @path and its parents as this layer's (APPLY mode). */
static int mark_seen(struct unpack *u, const char *path)
{
	char buf[PATH_MAX];

	if (u->mode != CVM_LAYER_APPLY || !path[0])
		return 0;
	snprintf(buf, sizeof(buf), "%s", path);
	for (;;) {
		if (!seen(u, buf)) {
			char *key = strdup(buf);
			if (!key || !tsearch(key, &u->seen, (int (*)(const void *, const void *))strcmp)) {
				free(key);
				return fail(u, ENOMEM, "remember");
			}
		}
		char *slash = strrchr(buf, '/');
		if (!slash)
			return 0;
		*slash = '\0';
	}
}

static int remove_at(struct unpack *u, int dfd, const char *name, const char *rel, bool keep_seen);

static void free_names(char ***names)
{
	for (size_t i = 0; *names && (*names)[i]; i++)
		free((*names)[i]);
	free(*names);
}

/* The names in the dir @dfd, NULL-terminated: read in full before anything
 * is removed, as removing under readdir(3) is unspecified. */
static char **list_dir(struct unpack *u, int dfd, const char *rel)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		fail(u, errno, "open %s", rel);
		return NULL;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char **more = realloc(names, (n + 2) * sizeof(*names));
		if (!more || !(more[n] = strdup(de->d_name))) {
			names = more ? more : names;
			goto nomem;
		}
		names = more;
		names[++n] = NULL;
	}
	if (errno) {
		fail(u, errno, "read %s", rel);
		free_names(&names);
		return NULL;
	}
	if (!names && !(names = calloc(1, sizeof(*names))))
		goto nomem;
	return names;
nomem:
	if (names)
		names[n] = NULL;
	free_names(&names);
	fail(u, ENOMEM, "read %s", rel);
	return NULL;
}

/* Remove what @dfd (@rel) holds; with @keep_seen, keep this layer's own
 * entries (and descend into its dirs to clear what earlier layers left). */
static int clear_dir(struct unpack *u, int dfd, const char *rel, bool keep_seen)
{
	__attribute__((cleanup(free_names))) char **names = list_dir(u, dfd, rel);

	if (!names)
		return -1;
	for (size_t i = 0; names[i]; i++)
		if (remove_at(u, dfd, names[i], rel, keep_seen) < 0)
			return -1;
	return 0;
}

static int remove_at(struct unpack *u, int dfd, const char *name, const char *rel, bool keep_seen)
{
	char child[PATH_MAX];
	struct stat st;

	snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "", name);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : fail(u, errno, "stat %s", child);
	bool keep = keep_seen && seen(u, child);
	if (S_ISDIR(st.st_mode)) {
		cleanup_close int sub = openat(dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return fail(u, errno, "open %s", child);
		if (clear_dir(u, sub, child, keep) < 0)
			return -1;
		if (!keep && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
			return fail(u, errno, "remove %s", child);
		return keep ? 1 : 0;
	}
	if (!keep && unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return fail(u, errno, "remove %s", child);
	return keep ? 1 : 0;
}

/* Make room for a new entry at @leaf in @pfd. 1: a dir is there and the new
 * entry is a dir (merge), 0: the place is free. */
static int make_room(struct unpack *u, int pfd, const char *leaf, const char *parent, bool is_dir)
{
	struct stat st;

	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : fail(u, errno, "stat");
	if (is_dir && S_ISDIR(st.st_mode))
		return 1;
	return remove_at(u, pfd, leaf, parent, false) < 0 ? -1 : 0;
}

/* ---- metadata ------------------------------------------------------------- */

static bool xattr_kept(const char *name)
{
	return !strncmp(name, "user.", 5) || !strcmp(name, "security.capability");
}

#define MAX_XATTRS 128

/* The tar's xattrs onto @fd, or through @path (/proc/self/fd/N/leaf, for
 * symlinks and fifos, which have no fd to write through) when @fd < 0.
 * libarchive's pax writer stores each twice (LIBARCHIVE.xattr and
 * SCHILY.xattr) and its reader lists both: the first of a name counts. */
static int set_xattrs(struct unpack *u, int fd, const char *path)
{
	const char *names[MAX_XATTRS], *name;
	const void *val;
	size_t size, n = 0;

	archive_entry_xattr_reset(u->e);
	while (archive_entry_xattr_next(u->e, &name, &val, &size) == ARCHIVE_OK) {
		bool dup = false;
		for (size_t i = 0; i < n && !dup; i++)
			dup = !strcmp(names[i], name);
		if (dup)
			continue;
		if (n == MAX_XATTRS)
			return fail(u, E2BIG, "more than %d xattrs", MAX_XATTRS);
		names[n++] = name;
		if (!xattr_kept(name)) {
			u->st->xattrs_dropped++;
			continue;
		}
		int r = fd >= 0 ? fsetxattr(fd, name, val, size, 0) : lsetxattr(path, name, val, size, 0);
		if (r < 0 && fd < 0 && errno == EPERM && !strncmp(name, "user.", 5)) {
			u->st->xattrs_dropped++;      /* user.* is for files and dirs only */
			continue;
		}
		if (r < 0)
			return fail(u, errno, "xattr %s", name);
	}
	return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[1].tv_sec = archive_entry_mtime(e);
	ts[1].tv_nsec = archive_entry_mtime_nsec(e);
	if (archive_entry_atime_is_set(e)) {
		ts[0].tv_sec = archive_entry_atime(e);
		ts[0].tv_nsec = archive_entry_atime_nsec(e);
	} else
		ts[0] = ts[1];
}

static mode_t entry_perm(struct archive_entry *e)
{
	return archive_entry_perm(e) & 07777;
}

/* Owner first (chown clears setuid and drops security.capability), then
 * xattrs, then the mode, then the times (which the others would touch). */
static int set_meta_fd(struct unpack *u, int fd, bool mode_and_times)
{
	struct timespec ts[2];

	if (fchown(fd, (uid_t)archive_entry_uid(u->e), (gid_t)archive_entry_gid(u->e)) < 0)
		return fail(u, errno, "chown");
	if (set_xattrs(u, fd, NULL) < 0)
		return -1;
	if (!mode_and_times)
		return 0;
	entry_times(u->e, ts);
	if (fchmod(fd, entry_perm(u->e)) < 0 || futimens(fd, ts) < 0)
		return fail(u, errno, "mode and times");
	return 0;
}

static int set_meta_at(struct unpack *u, int pfd, const char *leaf, bool is_link)
{
	char proc[PATH_MAX + 32];
	struct timespec ts[2];

	if (fchownat(pfd, leaf, (uid_t)archive_entry_uid(u->e), (gid_t)archive_entry_gid(u->e),
		     AT_SYMLINK_NOFOLLOW) < 0)
		return fail(u, errno, "chown");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", pfd, leaf);
	if (set_xattrs(u, -1, proc) < 0)
		return -1;
	/* A fifo: fchmodat follows a symlink, but this one was just made. */
	if (!is_link && fchmodat(pfd, leaf, entry_perm(u->e), 0) < 0)
		return fail(u, errno, "chmod");
	entry_times(u->e, ts);
	if (utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(u, errno, "times");
	return 0;
}

/* ---- entries ---------------------------------------------------------------- */

static int write_data(struct unpack *u, int fd)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(u->a, &buf, &size, &off)) == ARCHIVE_OK) {
		for (size_t done = 0; done < size;) {
			ssize_t n = pwrite(fd, (const char *)buf + done, size - done, off + (off_t)done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return fail(u, n < 0 ? errno : EIO, "write");
			done += (size_t)n;
		}
		u->st->bytes += size;
	}
	if (r != ARCHIVE_EOF)
		return fail(u, archive_errno(u->a) > 0 ? archive_errno(u->a) : 0, "read: %s",
			    archive_error_string(u->a));
	/* A sparse file's trailing hole. */
	if (archive_entry_size_is_set(u->e) && ftruncate(fd, archive_entry_size(u->e)) < 0)
		return fail(u, errno, "truncate");
	return 0;
}

static int make_file(struct unpack *u, int pfd, const char *leaf)
{
	cleanup_close int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				      O_CLOEXEC, 0600);

	if (fd < 0)
		return fail(u, errno, "create");
	if (write_data(u, fd) < 0)
		return -1;
	return set_meta_fd(u, fd, true);
}

static int defer_dir(struct unpack *u, const char *path)
{
	if (u->n_dirs == u->cap_dirs) {
		size_t cap = u->cap_dirs ? u->cap_dirs * 2 : 64;
		struct dir_fix *d = realloc(u->dirs, cap * sizeof(*d));
		if (!d)
			return fail(u, ENOMEM, "dir list");
		u->dirs = d;
		u->cap_dirs = cap;
	}
	struct dir_fix *f = &u->dirs[u->n_dirs];
	f->path = strdup(path);
	if (!f->path)
		return fail(u, ENOMEM, "dir list");
	f->mode = entry_perm(u->e);
	entry_times(u->e, f->ts);
	u->n_dirs++;
	return 0;
}

/* A dir: made (or merged with the one there), owner and xattrs now, mode
 * and times at the end. */
static int make_dir(struct unpack *u, int dfd, const char *leaf)
{
	cleanup_close int fd = -1;

	if (leaf && mkdirat(dfd, leaf, 0700) < 0 && errno != EEXIST)
		return fail(u, errno, "mkdir");
	fd = openat(dfd, leaf ? leaf : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(u, errno, "open");
	if (set_meta_fd(u, fd, false) < 0)
		return -1;
	return defer_dir(u, u->path);
}

static int make_special(struct unpack *u, int pfd, const char *leaf, mode_t type)
{
	if (type == AE_IFLNK) {
		const char *target = archive_entry_symlink(u->e);
		if (!target)
			return fail(u, EINVAL, "symlink without a target");
		if (symlinkat(target, pfd, leaf) < 0)
			return fail(u, errno, "symlink");
	} else if (mknodat(pfd, leaf, S_IFIFO | 0600, 0) < 0)
		return fail(u, errno, "mkfifo");
	return set_meta_at(u, pfd, leaf, type == AE_IFLNK);
}

/* A hard link to @target, an entry already inside the root. */
static int make_hardlink(struct unpack *u, int pfd, const char *leaf, const char *parent,
			 const char *raw_target)
{
	char target[PATH_MAX], tparent[PATH_MAX];
	struct stat st;

	char what[PATH_MAX + 32];

	snprintf(what, sizeof(what), "hard link target %s: ", raw_target);
	if (clean_path(u, what, raw_target, target, sizeof(target)) < 0)
		return -1;
	snprintf(tparent, sizeof(tparent), "%s", target);
	const char *tleaf = split_leaf(tparent);
	if (!tleaf[0])
		return fail(u, EPERM, "hard link to the root");
	cleanup_close int tpfd = open_dir(u, tparent, false);
	if (tpfd < 0 && errno == ENOENT)
		return fail(u, ENOENT, "hard link target %s", target);
	if (tpfd < 0)
		return cvm_error_prefix(u->err, "hard link target %s", target);
	if (fstatat(tpfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(u, errno, "hard link target %s", target);
	if (S_ISDIR(st.st_mode))
		return fail(u, EPERM, "hard link target %s is a directory", target);
	if (!strcmp(target, u->path))
		return 0;                       /* a link to itself: nothing to do */
	if (make_room(u, pfd, leaf, parent, false) < 0)
		return -1;
	if (linkat(tpfd, tleaf, pfd, leaf, 0) < 0)
		return fail(u, errno, "hard link to %s", target);
	return 0;
}

/* .wh.NAME: in OVERLAY mode a 0/0 char device, unless this layer has a
 * NAME of its own (which hides the lower one already); in APPLY mode the
 * removal of what earlier layers left at NAME. */
static int whiteout(struct unpack *u, int pfd, const char *parent, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (!name[0] || !strcmp(name, ".") || !strcmp(name, ".."))
		return fail(u, EINVAL, "whiteout of nothing");
	snprintf(path, sizeof(path), "%s%s%s", parent, parent[0] ? "/" : "", name);
	if (u->mode == CVM_LAYER_APPLY)
		return seen(u, path) ? 0 : remove_at(u, pfd, name, parent, false) < 0 ? -1 : 0;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (mknodat(pfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0)
		return fail(u, errno, "whiteout");
	return 0;
}

/* .wh..wh..opq: the dir hides what lower layers hold in it. */
static int opaque(struct unpack *u, int pfd, const char *parent)
{
	cleanup_close int fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return fail(u, errno, "open %s", parent);
	if (u->mode == CVM_LAYER_APPLY)
		return clear_dir(u, fd, parent, true);
	if (fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
		return fail(u, errno, "opaque xattr on %s", parent[0] ? parent : ".");
	return 0;
}

static int entry(struct unpack *u)
{
	char parent[PATH_MAX];
	mode_t type = archive_entry_filetype(u->e);
	const char *hardlink = archive_entry_hardlink(u->e);
	const char *leaf;
	int r;

	if (clean_path(u, "", u->entry, u->path, sizeof(u->path)) < 0)
		return -1;
	snprintf(parent, sizeof(parent), "%s", u->path);
	leaf = split_leaf(parent);
	if (!leaf[0]) {                         /* "./": the root itself */
		if (type != AE_IFDIR || hardlink)
			return fail(u, EINVAL, "the root must be a directory");
		u->st->files++;
		return make_dir(u, u->root_fd, NULL);
	}
	bool wh = !strncmp(leaf, WH_PREFIX, strlen(WH_PREFIX));
	bool skip = !wh && !hardlink && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK);
	if (skip && type != AE_IFSOCK)
		u->st->devices_skipped++;
	/* A whiteout's parent may be missing (nothing to hide in APPLY mode),
	 * or be a file (umoci writes "f" then "f/.wh.x" when a dir became a
	 * file): the file hides all that was below already. */
	bool apply_wh = (wh || skip) && u->mode == CVM_LAYER_APPLY;
	cleanup_close int pfd = open_dir(u, parent, !apply_wh);
	if (pfd < 0 && (wh || skip) && (errno == ENOTDIR || (apply_wh && errno == ENOENT))) {
		cvm_error_clear(u->err);
		return 0;
	}
	if (pfd < 0)
		return -1;
	if (!strcmp(leaf, WH_OPAQUE))
		return opaque(u, pfd, parent);
	if (!strncmp(leaf, WH_PREFIX WH_PREFIX, 2 * strlen(WH_PREFIX)))
		return 0;                       /* AUFS' own (.wh..wh.plnk...): not ours */
	if (wh)
		return whiteout(u, pfd, parent, leaf + strlen(WH_PREFIX));
	if (mark_seen(u, u->path) < 0)
		return -1;
	if (skip) {
		/* Not made, yet the name holds nothing now: what a lower layer
		 * had there is gone (APPLY) or hidden (OVERLAY: a whiteout). */
		if (make_room(u, pfd, leaf, parent, false) < 0)
			return -1;
		if (u->mode == CVM_LAYER_OVERLAY && mknodat(pfd, leaf, S_IFCHR, makedev(0, 0)) < 0)
			return fail(u, errno, "whiteout for the skipped device");
		return 0;
	}
	u->st->files++;
	if (hardlink)
		return make_hardlink(u, pfd, leaf, parent, hardlink);
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && type != AE_IFIFO)
		return fail(u, EINVAL, "unknown file type 0%o", (unsigned)type);
	r = make_room(u, pfd, leaf, parent, type == AE_IFDIR);
	if (r < 0)
		return -1;
	if (type == AE_IFDIR)
		return make_dir(u, pfd, leaf);
	if (type == AE_IFREG)
		return make_file(u, pfd, leaf);
	return make_special(u, pfd, leaf, type);
}

/* Dirs' modes and times, once the layer's entries are in (each entry
 * changed its parent's mtime). In tar order: a dir listed twice gets its
 * last entry's. */
static int fix_dirs(struct unpack *u)
{
	for (size_t i = 0; i < u->n_dirs; i++) {
		struct dir_fix *f = &u->dirs[i];
		u->entry = f->path;
		cleanup_close int p = open_beneath(u->root_fd, f->path);
		if (p < 0 && (errno == ENOENT || errno == ENOTDIR))
			continue;               /* replaced or removed later in the layer */
		cleanup_close int fd = p >= 0 ? openat(p, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (fd < 0)
			return fail(u, errno, "open");
		if (fchmod(fd, f->mode) < 0 || futimens(fd, f->ts) < 0)
			return fail(u, errno, "mode and times");
	}
	return 0;
}

static struct archive *open_archive(int blob_fd, struct cvm_error *err)
{
	struct archive *a = archive_read_new();

	if (!a) {
		cvm_error_set(err, ENOMEM, "libarchive");
		return NULL;
	}
	/* ARCHIVE_WARN would mean an external gzip/zstd program: refused,
	 * the library must do it itself. */
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
	    archive_read_support_filter_none(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_open_fd(a, blob_fd, 128 * 1024) != ARCHIVE_OK) {
		cvm_error_set(err, archive_errno(a) > 0 ? archive_errno(a) : 0, "layer: %s",
			      archive_error_string(a) ? archive_error_string(a) : "libarchive setup");
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static void free_key(void *p)
{
	free(p);
}

int cvm_layer_unpack(int blob_fd, int root_fd, enum cvm_layer_mode mode, struct cvm_layer_stats *st,
		     struct cvm_error *err)
{
	struct cvm_layer_stats local;
	struct unpack u = { .root_fd = root_fd, .mode = mode, .st = st ? st : &local, .err = err };
	int r, ret = -1;

	memset(u.st, 0, sizeof(*u.st));
	u.a = open_archive(blob_fd, err);
	if (!u.a)
		return -1;
	for (;;) {
		r = archive_read_next_header(u.a, &u.e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			cvm_error_set(err, archive_errno(u.a) > 0 ? archive_errno(u.a) : 0,
				      "layer: read: %s", archive_error_string(u.a));
			goto out;
		}
		u.entry = archive_entry_pathname(u.e);
		if (!u.entry)
			u.entry = archive_entry_pathname_utf8(u.e);
		if (!u.entry) {
			cvm_error_set(err, EINVAL, "layer: an entry without a name");
			goto out;
		}
		if (entry(&u) < 0)
			goto out;
	}
	ret = fix_dirs(&u);
out:
	for (size_t i = 0; i < u.n_dirs; i++)
		free(u.dirs[i].path);
	free(u.dirs);
	tdestroy(u.seen, free_key);
	archive_read_free(u.a);
	return ret;
}

int cvm_layers_flatten(const int *blob_fds, size_t n, int root_fd, struct cvm_layer_stats *st,
		       struct cvm_error *err)
{
	struct cvm_layer_stats one, sum = { 0 };

	for (size_t i = 0; i < n; i++) {
		if (cvm_layer_unpack(blob_fds[i], root_fd, CVM_LAYER_APPLY, &one, err) < 0)
			return cvm_error_prefix(err, "layer %zu of %zu", i + 1, n);
		sum.files += one.files;
		sum.bytes += one.bytes;
		sum.xattrs_dropped += one.xattrs_dropped;
		sum.devices_skipped += one.devices_skipped;
	}
	if (st)
		*st = sum;
	return 0;
}
