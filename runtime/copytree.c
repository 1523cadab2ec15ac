#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "copytree.h"

struct link_seen {
	dev_t dev;
	ino_t ino;
	char *path;             /* relative to the destination root */
};

struct copy_ctx {
	int dst_root;
	struct cvm_copy_progress done;
	struct timespec last_note;
	cvm_copy_progress_fn progress;
	void *arg;
	struct link_seen *links;
	size_t n_links, cap_links;
	struct cvm_error *err;
};

static void maybe_progress(struct copy_ctx *c)
{
	struct timespec now;

	if (!c->progress || c->done.files % 256)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - c->last_note.tv_sec >= 2) {
		c->last_note = now;
		c->progress(&c->done, c->arg);
	}
}

static int copy_xattrs(int src, int dst, const char *rel, struct copy_ctx *c)
{
	char names[65536], value[65536];
	ssize_t len = flistxattr(src, names, sizeof(names));

	if (len < 0)
		return errno == ENOTSUP ? 0 : cvm_error_set(c->err, errno, "copy %s: xattrs", rel);
	for (char *n = names; n < names + len; n += strlen(n) + 1) {
		ssize_t v = fgetxattr(src, n, value, sizeof(value));
		if (v < 0)
			return cvm_error_set(c->err, errno, "copy %s: xattr %s", rel, n);
		/* ACLs may not exist on the destination fs; everything else must. */
		if (fsetxattr(dst, n, value, (size_t)v, 0) < 0 &&
		    !(errno == ENOTSUP && !strncmp(n, "system.", 7)))
			return cvm_error_set(c->err, errno, "copy %s: xattr %s", rel, n);
	}
	return 0;
}

/* Owner first, then mode: chown clears setuid/setgid bits. */
static int copy_meta(int dst, const struct stat *st, const char *rel, struct copy_ctx *c)
{
	struct timespec t[2] = { st->st_atim, st->st_mtim };

	if (fchown(dst, st->st_uid, st->st_gid) < 0 || fchmod(dst, st->st_mode & 07777) < 0 ||
	    futimens(dst, t) < 0)
		return cvm_error_set(c->err, errno, "copy %s: owner, mode or times", rel);
	return 0;
}

static int copy_data(int src, int dst, const char *rel, struct copy_ctx *c)
{
	char buf[65536];
	ssize_t n;

	for (;;) {
		n = copy_file_range(src, NULL, dst, NULL, 1 << 30, 0);
		if (n > 0) {
			c->done.bytes += (uint64_t)n;
			continue;
		}
		if (n == 0)
			return 0;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return cvm_error_set(c->err, errno, "copy %s: data", rel);
		break;  /* no copy_file_range between these filesystems: plain copy */
	}
	while ((n = read(src, buf, sizeof(buf))) > 0) {
		if (write(dst, buf, (size_t)n) != n)
			return cvm_error_set(c->err, errno, "copy %s: write", rel);
		c->done.bytes += (uint64_t)n;
	}
	return n < 0 ? cvm_error_set(c->err, errno, "copy %s: read", rel) : 0;
}

/* A second name of an inode already copied becomes a hard link. */
static int link_if_seen(int dst_dir, const char *name, const struct stat *st, const char *rel,
			struct copy_ctx *c, bool *linked)
{
	*linked = false;
	if (st->st_nlink < 2)
		return 0;
	for (size_t i = 0; i < c->n_links; i++)
		if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino) {
			if (linkat(c->dst_root, c->links[i].path, dst_dir, name, 0) < 0)
				return cvm_error_set(c->err, errno, "copy %s: link", rel);
			*linked = true;
			return 0;
		}
	if (c->n_links == c->cap_links) {
		size_t cap = c->cap_links ? c->cap_links * 2 : 64;
		struct link_seen *l = realloc(c->links, cap * sizeof(*l));
		if (!l)
			return cvm_error_set(c->err, ENOMEM, "copy %s", rel);
		c->links = l;
		c->cap_links = cap;
	}
	c->links[c->n_links] = (struct link_seen){ st->st_dev, st->st_ino, strdup(rel) };
	if (!c->links[c->n_links].path)
		return cvm_error_set(c->err, ENOMEM, "copy %s", rel);
	c->n_links++;
	return 0;
}

static int copy_file(int sdir, int ddir, const char *name, const struct stat *st,
		     const char *rel, struct copy_ctx *c)
{
	bool linked;
	cleanup_close int src = -1, dst = -1;

	if (link_if_seen(ddir, name, st, rel, c, &linked) < 0 || linked)
		return linked ? 0 : -1;
	src = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	dst = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (src < 0 || dst < 0)
		return cvm_error_set(c->err, errno, "copy %s", rel);
	if (copy_data(src, dst, rel, c) < 0 || copy_xattrs(src, dst, rel, c) < 0)
		return -1;
	return copy_meta(dst, st, rel, c);
}

static int copy_special(int sdir, int ddir, const char *name, const struct stat *st,
			const char *rel, struct copy_ctx *c)
{
	struct timespec t[2] = { st->st_atim, st->st_mtim };
	char target[4096];

	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
		if (n < 0)
			return cvm_error_set(c->err, errno, "copy %s: readlink", rel);
		target[n] = '\0';
		if (symlinkat(target, ddir, name) < 0)
			return cvm_error_set(c->err, errno, "copy %s: symlink", rel);
	} else if (mknodat(ddir, name, st->st_mode & (S_IFMT | 0777), st->st_rdev) < 0)
		return cvm_error_set(c->err, errno, "copy %s: mknod", rel);
	if (fchownat(ddir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (!S_ISLNK(st->st_mode) && fchmodat(ddir, name, st->st_mode & 07777, 0) < 0) ||
	    utimensat(ddir, name, t, AT_SYMLINK_NOFOLLOW) < 0)
		return cvm_error_set(c->err, errno, "copy %s: owner, mode or times", rel);
	return 0;
}

static int copy_dir(int sdir, int ddir, const char *rel, struct copy_ctx *c);

static int copy_entry(int sdir, int ddir, const char *name, const char *rel_dir,
		      struct copy_ctx *c)
{
	char rel[4096];
	struct stat st;

	if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", rel_dir, *rel_dir ? "/" : "", name) >=
	    sizeof(rel))
		return cvm_error_set(c->err, ENAMETOOLONG, "copy %s/%s", rel_dir, name);
	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return cvm_error_set(c->err, errno, "copy %s", rel);
	c->done.files++;
	maybe_progress(c);
	if (S_ISREG(st.st_mode))
		return copy_file(sdir, ddir, name, &st, rel, c);
	if (S_ISSOCK(st.st_mode))
		return 0;       /* a socket is a leftover of a process, not content */
	if (!S_ISDIR(st.st_mode))
		return copy_special(sdir, ddir, name, &st, rel, c);

	cleanup_close int s = -1, d = -1;
	if (mkdirat(ddir, name, 0700) < 0)
		return cvm_error_set(c->err, errno, "copy %s: mkdir", rel);
	s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0 || d < 0)
		return cvm_error_set(c->err, errno, "copy %s", rel);
	/* Children first: they change the directory's mtime. Two fds per
	 * level stay open, so depth is bounded by the fd limit (images are
	 * far shallower). */
	if (copy_dir(s, d, rel, c) < 0 || copy_xattrs(s, d, rel, c) < 0)
		return -1;
	return copy_meta(d, &st, rel, c);
}

static int copy_dir(int sdir, int ddir, const char *rel, struct copy_ctx *c)
{
	int fd = dup(sdir);
	cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return cvm_error_set(c->err, errno, "copy %s", *rel ? rel : ".");
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (copy_entry(sdir, ddir, de->d_name, rel, c) < 0)
			return -1;
	}
	return errno ? cvm_error_set(c->err, errno, "copy %s: readdir", *rel ? rel : ".") : 0;
}

int cvm_copy_tree(int src_dirfd, int dst_dirfd, cvm_copy_progress_fn progress, void *arg,
		  struct cvm_error *err)
{
	struct copy_ctx c = { .dst_root = dst_dirfd, .progress = progress, .arg = arg, .err = err };
	int r;

	clock_gettime(CLOCK_MONOTONIC, &c.last_note);
	r = copy_dir(src_dirfd, dst_dirfd, "", &c);
	if (r == 0 && progress)
		progress(&c.done, arg);
	for (size_t i = 0; i < c.n_links; i++)
		free(c.links[i].path);
	free(c.links);
	return r;
}
