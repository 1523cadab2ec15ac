/* A one-time copy of an image directory, for images on filesystems that
 * cannot be idmapped (overlay, NFS). */
#ifndef CVM_COPYTREE_H
#define CVM_COPYTREE_H

#include <stdint.h>

#include "error.h"

struct cvm_copy_progress {
	uint64_t files;
	uint64_t bytes;
};

/* Called about every 2 seconds while copying, and once at the end. */
typedef void (*cvm_copy_progress_fn)(const struct cvm_copy_progress *p, void *arg);

/* Copy the tree under @src_dirfd into the existing empty dir @dst_dirfd:
 * every file type, mode (setuid too), owner exactly as on disk, times, hard
 * links and extended attributes (file capabilities survive). Never follows
 * a symlink of the source. Errors name the relative path. */
int cvm_copy_tree(int src_dirfd, int dst_dirfd, cvm_copy_progress_fn progress, void *arg,
		  struct cvm_error *err);

#endif
