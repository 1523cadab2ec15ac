#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "rootpath.h"
#include "syscalls.h"

int cvm_root_openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
	struct cvm_open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .resolve = resolve };
	int fd;

	/* EAGAIN: a rename raced the walk; the kernel asks for a retry. */
	do
		fd = sys_openat2(dirfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd;
}

static int open_in_root(int root_fd, const char *path, int flags)
{
	/* Magic links (/proc/self/root) would be a way out even in-root. */
	return cvm_root_openat2(root_fd, path, flags | O_PATH,
				CVM_RESOLVE_IN_ROOT | CVM_RESOLVE_NO_MAGICLINKS);
}

/* Make the last component of @path inside its (already resolved) parent. */
static int create_leaf(int root_fd, const char *path, enum cvm_root_create create,
		       struct cvm_error *err)
{
	char parent[4096];
	const char *leaf;
	cleanup_close int pfd = -1;
	int r;

	if (strlen(path) >= sizeof(parent))
		return cvm_error_set(err, ENAMETOOLONG, "%s", path);
	strcpy(parent, path);
	while (strlen(parent) > 1 && parent[strlen(parent) - 1] == '/')
		parent[strlen(parent) - 1] = '\0';
	char *slash = strrchr(parent, '/');
	if (slash) {
		leaf = path + (slash - parent) + 1;
		*slash = '\0';
		if (parent[0] == '\0')
			strcpy(parent, "/");
	} else {
		leaf = path;
		strcpy(parent, ".");
	}
	if (leaf[0] == '\0' || !strcmp(leaf, ".") || !strcmp(leaf, ".."))
		return 0;
	/* A parent may be a symlink: it resolves inside the root. */
	pfd = open_in_root(root_fd, parent, O_DIRECTORY);
	if (pfd < 0 && errno == ENOENT) {
		if (create_leaf(root_fd, parent, CVM_ROOT_DIR, err) < 0)
			return -1;
		pfd = open_in_root(root_fd, parent, O_DIRECTORY);
	}
	if (pfd < 0)
		return cvm_error_set(err, errno, "%s", parent);
	/* Strip trailing slashes from the leaf for mkdirat/openat. */
	char name[256];
	size_t n = strcspn(leaf, "/");
	if (n >= sizeof(name))
		return cvm_error_set(err, ENAMETOOLONG, "%s", path);
	memcpy(name, leaf, n);
	name[n] = '\0';
	if (create == CVM_ROOT_DIR)
		r = mkdirat(pfd, name, 0755);
	else {
		r = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (r >= 0)
			r = close(r);
	}
	if (r < 0 && errno != EEXIST)
		return cvm_error_set(err, errno, "create %s", path);
	return 0;
}

int cvm_root_open(int root_fd, const char *path, enum cvm_root_create create,
		  mode_t want_type, struct cvm_error *err)
{
	cleanup_close int fd = open_in_root(root_fd, path, O_NOFOLLOW);
	struct stat st;

	if (fd < 0 && errno == ENOENT && create != CVM_ROOT_NOCREATE) {
		if (create_leaf(root_fd, path, create, err) < 0)
			return -1;
		fd = open_in_root(root_fd, path, O_NOFOLLOW);
	}
	if (fd < 0)
		return cvm_error_set(err, errno, "%s", path);
	if (fstat(fd, &st) < 0)
		return cvm_error_set(err, errno, "stat %s", path);
	if (S_ISLNK(st.st_mode)) {
		char target[256] = "?";
		ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
		target[n > 0 ? n : 1] = '\0';
		return cvm_error_set(err, 0, "%s is a symlink (-> %s) in the image; cvm does not "
				     "follow a symlink at a mount point: make it a real %s",
				     path, target, want_type == S_IFREG ? "file" : "directory");
	}
	if (want_type && (st.st_mode & S_IFMT) != want_type)
		return cvm_error_set(err, ENOTDIR, "%s is not a %s", path,
				     want_type == S_IFDIR ? "directory" : "regular file");
	return steal_fd(&fd);
}

int cvm_root_lstat(int root_fd, const char *path, struct stat *st)
{
	cleanup_close int fd = open_in_root(root_fd, path, O_NOFOLLOW);

	if (fd < 0)
		return -1;
	return fstat(fd, st);
}

int cvm_root_open_read(int root_fd, const char *path, struct cvm_error *err)
{
	cleanup_close int fd = open_in_root(root_fd, path, 0);
	char proc[64];
	struct stat st;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0)
		return cvm_error_set(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return cvm_error_set(err, EINVAL, "%s is not a regular file", path);
	/* Reopening the O_PATH fd reads exactly the file resolved above. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	r = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (r < 0)
		return cvm_error_set(err, errno, "%s", path);
	return r;
}
