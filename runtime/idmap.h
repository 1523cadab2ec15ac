/* Id ranges and idmapped mounts: how the workspace's ids meet the disk. */
#ifndef CVM_IDMAP_H
#define CVM_IDMAP_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* A detached, idmapped clone of the mount at the dir @dir_fd (an O_PATH fd
 * opened in the caller's mount namespace; @path names it in messages):
 * open_tree + mount_setattr(MOUNT_ATTR_IDMAP) with the user namespace
 * @userns_fd, plus @attr (CVM_MOUNT_ATTR_RDONLY, ...). The fd can be
 * move_mount()ed anywhere. When the filesystem cannot be idmapped, fails
 * with err->err == EINVAL and a message that names the filesystem. */
int cvm_idmap_clone(int dir_fd, const char *path, int userns_fd, uint64_t attr,
		    struct cvm_error *err);

/* Write the workspace's id maps, 0 -> @base for @count ids, uid and gid,
 * for the process @pid (whose user namespace has none yet). */
int cvm_idmap_write(pid_t pid, uint32_t base, uint32_t count, struct cvm_error *err);

/* A user namespace that maps 0 -> @base for @count ids (uid and gid), as
 * the workspace's, with no process left in it: an fd for
 * cvm_idmap_clone(). A forked child makes it and exits once the fd is open. */
int cvm_userns_open(uint32_t base, uint32_t count, struct cvm_error *err);

/* The filesystem type of @fd as a name ("ext4", "overlay", "nfs", ...). */
const char *cvm_fs_name(int fd);

/* Is [base, base + count) safe for the workspace in this outer container?
 * Every id must be mapped in @uid_map_path / @gid_map_path (the outer
 * container may itself be in a user namespace), and none may belong to an
 * account in @passwd_path / @group_path (a missing file is fine): a shared
 * id would let the workspace own the outer container's files. */
int cvm_idrange_check(uint32_t base, uint32_t count, const char *uid_map_path,
		      const char *gid_map_path, const char *passwd_path,
		      const char *group_path, struct cvm_error *err);

#endif
