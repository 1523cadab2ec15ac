/* Prefixed wrappers and local copies of the kernel structs/constants for the
 * syscalls musl does not wrap. <linux/mount.h> does not compile under
 * musl-gcc, so nothing here includes it. x86_64 and aarch64 share these
 * numbers (the "new" syscalls are numbered the same on every arch). */
#ifndef CVM_SYSCALLS_H
#define CVM_SYSCALLS_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_fsconfig
#define __NR_fsconfig 431
#endif
#ifndef __NR_fsmount
#define __NR_fsmount 432
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif

/* open_tree(2) */
#define CVM_OPEN_TREE_CLONE 1
#define CVM_OPEN_TREE_CLOEXEC O_CLOEXEC
/* move_mount(2) */
#define CVM_MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define CVM_MOVE_MOUNT_T_EMPTY_PATH 0x00000040
/* mount_setattr(2) */
#define CVM_MOUNT_ATTR_RDONLY 0x00000001
#define CVM_MOUNT_ATTR_NOSUID 0x00000002
#define CVM_MOUNT_ATTR_NODEV 0x00000004
#define CVM_MOUNT_ATTR_NOEXEC 0x00000008
#define CVM_MOUNT_ATTR_IDMAP 0x00100000
#define CVM_AT_RECURSIVE 0x8000
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
/* fsopen/fsconfig/fsmount */
#define CVM_FSOPEN_CLOEXEC 0x00000001
#define CVM_FSCONFIG_SET_FLAG 0
#define CVM_FSCONFIG_SET_STRING 1
#define CVM_FSCONFIG_SET_FD 5
#define CVM_FSCONFIG_CMD_CREATE 6
#define CVM_FSMOUNT_CLOEXEC 0x00000001
/* openat2(2) */
#define CVM_RESOLVE_NO_XDEV 0x01
#define CVM_RESOLVE_NO_MAGICLINKS 0x02
#define CVM_RESOLVE_NO_SYMLINKS 0x04
#define CVM_RESOLVE_BENEATH 0x08
#define CVM_RESOLVE_IN_ROOT 0x10
/* close_range(2) */
#define CVM_CLOSE_RANGE_CLOEXEC (1U << 2)
/* clone3(2) */
#define CVM_CLONE_PIDFD 0x00001000
#define CVM_CLONE_INTO_CGROUP 0x200000000ULL

struct cvm_mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};

struct cvm_open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};

struct cvm_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

static inline int sys_pidfd_open(pid_t pid, unsigned int flags)
{
	return (int)syscall(__NR_pidfd_open, pid, flags);
}

static inline int sys_pidfd_send_signal(int pidfd, int sig, void *info, unsigned int flags)
{
	return (int)syscall(__NR_pidfd_send_signal, pidfd, sig, info, flags);
}

static inline int sys_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
	return (int)syscall(__NR_close_range, first, last, flags);
}

static inline int sys_open_tree(int dfd, const char *path, unsigned int flags)
{
	return (int)syscall(__NR_open_tree, dfd, path, flags);
}

static inline int sys_move_mount(int from_dfd, const char *from_path, int to_dfd,
				 const char *to_path, unsigned int flags)
{
	return (int)syscall(__NR_move_mount, from_dfd, from_path, to_dfd, to_path, flags);
}

static inline int sys_mount_setattr(int dfd, const char *path, unsigned int flags,
				    struct cvm_mount_attr *attr, size_t size)
{
	return (int)syscall(__NR_mount_setattr, dfd, path, flags, attr, size);
}

static inline int sys_fsopen(const char *fsname, unsigned int flags)
{
	return (int)syscall(__NR_fsopen, fsname, flags);
}

static inline int sys_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux)
{
	return (int)syscall(__NR_fsconfig, fd, cmd, key, value, aux);
}

static inline int sys_fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
	return (int)syscall(__NR_fsmount, fd, flags, attr_flags);
}

static inline int sys_openat2(int dfd, const char *path, struct cvm_open_how *how, size_t size)
{
	return (int)syscall(__NR_openat2, dfd, path, how, size);
}

/* capget/capset(2): glibc and musl wrap neither in a common header. */
#define CVM_CAP_VERSION_3 0x20080522
struct cvm_cap_header {
	uint32_t version;
	int pid;
};
struct cvm_cap_data {
	uint32_t effective;
	uint32_t permitted;
	uint32_t inheritable;
};

static inline int sys_capget(struct cvm_cap_header *h, struct cvm_cap_data d[2])
{
	return (int)syscall(SYS_capget, h, d);
}

static inline int sys_capset(struct cvm_cap_header *h, struct cvm_cap_data d[2])
{
	return (int)syscall(SYS_capset, h, d);
}

static inline int sys_pivot_root(const char *new_root, const char *put_old)
{
	return (int)syscall(SYS_pivot_root, new_root, put_old);
}

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif

static inline int sys_memfd_create(const char *name, unsigned int flags)
{
	return (int)syscall(__NR_memfd_create, name, flags);
}

static inline int sys_seccomp(unsigned int op, unsigned int flags, void *args)
{
	return (int)syscall(__NR_seccomp, op, flags, args);
}

static inline int sys_pidfd_getfd(int pidfd, int fd, unsigned int flags)
{
	return (int)syscall(__NR_pidfd_getfd, pidfd, fd, flags);
}

static inline pid_t sys_clone3(struct cvm_clone_args *args, size_t size)
{
	return (pid_t)syscall(__NR_clone3, args, size);
}

#endif
