/* A one-time copy of an image directory, for images on filesystems that
 * cannot be idmapped (overlay, NFS): cvm copies the image once into its state
 * directory and reuses the copy on later starts. */
#ifndef CVM_COPYTREE_H
#define CVM_COPYTREE_H

#include <stdint.h>

#include "error.h"

struct cvm_copy_progress {
	uint64_t files;   /* entries created so far: files, dirs, links, devices... */
	uint64_t bytes;   /* file data copied so far (a hard link adds none) */
};

/* Called about every cvm_copy_progress_interval_ms while copying (the clock
 * is read only every 256 entries or 32 MiB of data, so it costs nothing), and
 * once more at the end with the totals when the copy succeeded. */
typedef void (*cvm_copy_progress_fn)(const struct cvm_copy_progress *p, void *arg);

/* 2000 (about every 2 seconds); tests lower it. */
extern unsigned int cvm_copy_progress_interval_ms;

/* Copy the tree under the directory fd @src_dirfd into the existing, empty
 * directory fd @dst_dirfd. The entries below the two directories are copied;
 * the owner, mode, times and xattrs of @dst_dirfd itself stay the caller's
 * business. Either fd may be O_PATH; neither is closed, nor its offset moved.
 *
 * Preserved: file type (regular, dir, symlink, fifo, char and block devices;
 * sockets are skipped without an error), mode including setuid, setgid and
 * sticky, uid/gid exactly as on disk (no shifting), atime and mtime (symlinks
 * too), hard links (by source dev/ino), and the extended attributes of every
 * namespace the process can read (user., trusted., security. including
 * security.capability, so file capabilities survive). A system.* attribute
 * (ACLs) the destination fs does not support (EOPNOTSUPP) is skipped.
 * File data goes through copy_file_range, falling back to read/write; holes
 * are not preserved on purpose.
 *
 * Never follows a symlink of the source, opens every entry relative to its
 * parent's fd, and copies across mount points of the source. Any depth
 * copies with a bounded number of fds (about 40).
 *
 * Returns 0, or -1 with @err naming the relative path and the reason:
 * "copy usr/bin/foo: write: No space left on device". On failure the
 * destination holds a partial copy for the caller to remove. */
int cvm_copy_tree(int src_dirfd, int dst_dirfd, cvm_copy_progress_fn progress, void *arg,
		  struct cvm_error *err);

#endif
