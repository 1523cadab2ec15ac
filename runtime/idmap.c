#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "fdio.h"
#include "idmap.h"
#include "syscalls.h"

static const struct { long magic; const char *name; } fs_names[] = {
	{ 0xEF53, "ext4" }, { 0x58465342, "xfs" }, { 0x9123683E, "btrfs" },
	{ 0x01021994, "tmpfs" }, { 0x794c7630, "overlay" }, { 0x6969, "nfs" },
	{ 0x65735546, "fuse" }, { 0x2fc12fc1, "zfs" }, { 0x01021997, "9p" },
	{ 0x00c36400, "ceph" }, { (long)0xFF534D42, "cifs" }, { 0x6e667364, "nfsd" },
	{ 0x73717368, "squashfs" }, { 0x858458f6, "ramfs" }, { 0xf2f52010, "f2fs" },
	{ 0x9fa0, "proc" }, { 0x62656572, "sysfs" }, { 0x4d44, "vfat" },
	{ (long)0xE0F5E1E2, "erofs" },
};

const char *cvm_fs_name(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return "unknown";
	for (size_t i = 0; i < sizeof(fs_names) / sizeof(fs_names[0]); i++)
		if ((unsigned long)sf.f_type == (unsigned long)fs_names[i].magic)
			return fs_names[i].name;
	return "unknown";
}

int cvm_idmap_clone(int dir_fd, const char *path, int userns_fd, uint64_t attr,
		    struct cvm_error *err)
{
	struct cvm_mount_attr a = {
		.attr_set = CVM_MOUNT_ATTR_IDMAP | attr,
		.userns_fd = (uint64_t)userns_fd,
	};
	cleanup_close int fd = sys_open_tree(dir_fd, "", CVM_OPEN_TREE_CLONE |
					     CVM_OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);

	if (fd < 0)
		return cvm_error_set(err, errno, "%s", path);
	if (sys_mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
		int e = errno;
		if (e == EINVAL) {
			/* errno stays in err->err for the caller's fallback;
			 * the message explains it better than strerror. */
			cvm_error_set(err, 0, "%s is on %s, which the kernel cannot idmap",
				      path, cvm_fs_name(fd));
			err->err = EINVAL;
			return -1;
		}
		return cvm_error_set(err, e, "idmap %s (on %s)", path, cvm_fs_name(fd));
	}
	return steal_fd(&fd);
}

int cvm_idmap_write(pid_t pid, uint32_t base, uint32_t count, struct cvm_error *err)
{
	char path[64], map[64];

	snprintf(map, sizeof(map), "0 %u %u\n", base, count);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	if (cvm_write_file(AT_FDCWD, path, map, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	return cvm_write_file(AT_FDCWD, path, map, err);
}

int cvm_userns_open(uint32_t base, uint32_t count, struct cvm_error *err)
{
	int sp[2], fd = -1;
	char path[64];
	unsigned char c = 0;
	cleanup_pid pid_t pid = -1;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return cvm_error_set(err, errno, "socketpair");
	pid = fork();
	if (pid == 0) {
		/* Report unshare's errno as one byte, then wait to be killed. */
		close(sp[0]);
		c = unshare(CLONE_NEWUSER) < 0 ? (unsigned char)errno : 0;
		if (write(sp[1], &c, 1) == 1)
			(void)!read(sp[1], &c, 1);
		_exit(0);
	}
	close(sp[1]);
	if (pid < 0) {
		cvm_error_set(err, errno, "fork");
	} else if (read(sp[0], &c, 1) != 1) {
		cvm_error_set(err, 0, "the user namespace helper died");
	} else if (c) {
		cvm_error_set(err, c, "unshare(CLONE_NEWUSER)");
	} else {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		if (cvm_idmap_write(pid, base, count, err) == 0 &&
		    (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			cvm_error_set(err, errno, "%s", path);
	}
	close(sp[0]);
	return fd;      /* cleanup_pid ends the child; the fd keeps the namespace */
}

/* Is every id of [base, end) inside one extent of a uid_map/gid_map file? */
static int range_mapped(const char *path, uint32_t base, uint64_t end, bool *ok,
			struct cvm_error *err)
{
	cleanup_file FILE *f = fopen(path, "re");
	uint64_t inside, outside, len;

	*ok = false;
	if (!f)
		return cvm_error_set(err, errno, "%s", path);
	while (fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64, &inside, &outside, &len) == 3)
		if (outside <= base && end <= outside + len)
			*ok = true;
	return 0;
}

/* First account of a passwd/group file whose id (3rd field) is in range. */
static bool account_in_range(const char *path, uint32_t base, uint64_t end,
			     char *name, size_t name_len, unsigned long *id)
{
	cleanup_file FILE *f = fopen(path, "re");
	char line[1024];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *user = strtok_r(line, ":", &save);
		char *pw = strtok_r(NULL, ":", &save), *num = strtok_r(NULL, ":", &save);
		char *e;
		if (!user || !pw || !num)
			continue;
		unsigned long v = strtoul(num, &e, 10);
		if (*e || e == num || v < base || v >= end)
			continue;
		snprintf(name, name_len, "%s", user);
		*id = v;
		return true;
	}
	return false;
}

int cvm_idrange_check(uint32_t base, uint32_t count, const char *uid_map_path,
		      const char *gid_map_path, const char *passwd_path,
		      const char *group_path, struct cvm_error *err)
{
	uint64_t end = (uint64_t)base + count;
	const char *maps[] = { uid_map_path, gid_map_path };
	const char *dbs[] = { passwd_path, group_path };
	char name[256];
	unsigned long id;
	bool ok;

	for (int i = 0; i < 2; i++) {
		if (range_mapped(maps[i], base, end, &ok, err) < 0)
			return -1;
		if (!ok)
			return cvm_error_set(err, 0, "uid_base: ids %u-%" PRIu64 " are not all "
					     "mapped in this container (%s); run the outer container "
					     "privileged, or pick uid_base/uid_count inside its map",
					     base, end - 1, maps[i]);
	}
	for (int i = 0; i < 2; i++)
		if (account_in_range(dbs[i], base, end, name, sizeof(name), &id))
			return cvm_error_set(err, 0, "uid_base: the workspace's ids %u-%" PRIu64
					     " include %s '%s' (%lu) of the outer container (%s); "
					     "pick a uid_base above it", base, end - 1,
					     i ? "group" : "user", name, id, dbs[i]);
	return 0;
}
