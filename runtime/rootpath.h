/* Resolve paths inside an untrusted rootfs without ever leaving it. */
#ifndef CVM_ROOTPATH_H
#define CVM_ROOTPATH_H

#include <stdint.h>
#include <sys/stat.h>

#include "error.h"

/* openat2(2) of @path under @dirfd with @flags | O_CLOEXEC and the
 * CVM_RESOLVE_* bits @resolve, retried while the kernel says EAGAIN (a
 * rename raced the walk). The fd, or -1 with errno set. */
int cvm_root_openat2(int dirfd, const char *path, int flags, uint64_t resolve);

/* What cvm_root_open() creates when the path is missing. */
enum cvm_root_create {
	CVM_ROOT_NOCREATE = 0,
	CVM_ROOT_DIR,           /* missing parents and the path itself: dirs */
	CVM_ROOT_FILE,          /* missing parents: dirs; the path: empty file */
};

/* Open @path (absolute or relative, always taken inside @root_fd) as an
 * O_PATH fd. "..", absolute symlinks and relative ones in the middle of the
 * path resolve inside the root (RESOLVE_IN_ROOT); the last component must
 * not be a symlink at all, so an image cannot aim a mount at "/" or at a
 * file outside by planting "proc -> /". With @create, missing pieces are
 * made (0755 dirs / 0644 files, owned by the caller). @want_type is S_IFDIR,
 * S_IFREG or 0 (any): an existing entry of another type is an error. */
int cvm_root_open(int root_fd, const char *path, enum cvm_root_create create,
		  mode_t want_type, struct cvm_error *err);

/* lstat(2) of @path inside @root_fd: parents resolve inside the root, the
 * last component is not followed. 0, or -1 with errno set. */
int cvm_root_lstat(int root_fd, const char *path, struct stat *st);

/* Open the regular file @path inside @root_fd for reading, following
 * symlinks (all of them resolved inside the root: /etc/os-release is
 * "../usr/lib/os-release" on most images). A FIFO or device is refused
 * before it is opened, so an image cannot make the reader block. */
int cvm_root_open_read(int root_fd, const char *path, struct cvm_error *err);

#endif
