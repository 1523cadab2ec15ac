/* Unit tests for runtime/copytree.c. A fixture tree holds every file type and
 * property the copy must keep; it is copied and each property is checked on
 * the copy with lstat/readlink/getxattr. These tests run as root (here and in
 * CI): they make device nodes, chown, and set trusted.* and
 * security.capability xattrs. Every test works in a fresh mkdtemp dir under
 * /tmp, removed by its teardown; a failed test skips its teardown (check ends
 * the forked test at once), so main removes the run's dir holding them all. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "runtime/copytree.h"

#define OK(expr) ck_assert_msg((expr) >= 0, "%s: %s", #expr, strerror(errno))
#define assert_contains(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "'%s' does not contain '%s'", (hay), \
		      (needle))

#define BIG_SIZE (5u << 20)
#define DEEP_LEVELS 20
#define TMP_MTIME_SEC 1000000000       /* 2001-09-09 */
#define TMP_MTIME_NSEC 123456789
#define TMP_ATIME_SEC 981173106        /* 2001-02-03 */
#define LINK_MTIME_SEC 1234567890

static char run_dir[] = "/tmp/cvm-copytree.XXXXXX";
static char base[64], src[96], dst[96];
static int sfd = -1, dfd = -1;
static struct cvm_error err;
static struct rlimit saved_nofile, saved_fsize;
static bool caps_set;

/* VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, then permitted/inheritable
 * low and high words: cap_net_raw (13) permitted and effective. */
static const uint32_t cap_blob[5] = { 0x02000001, 1u << 13, 0, 0, 0 };

static void setup(void)
{
	snprintf(base, sizeof(base), "%s/t.XXXXXX", run_dir);
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(dst, sizeof(dst), "%s/dst", base);
	OK(mkdir(src, 0755));
	OK(mkdir(dst, 0755));
	OK(sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	OK(dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	OK(getrlimit(RLIMIT_NOFILE, &saved_nofile));
	OK(getrlimit(RLIMIT_FSIZE, &saved_fsize));
	cvm_error_clear(&err);
	cvm_copy_progress_interval_ms = 2000;
}

static void teardown(void)
{
	char cmd[128];

	setrlimit(RLIMIT_NOFILE, &saved_nofile);
	setrlimit(RLIMIT_FSIZE, &saved_fsize);
	close(sfd);
	close(dfd);
	umount2(dst, MNT_DETACH);       /* the ENOSPC test's tmpfs; EINVAL otherwise */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- fixture helpers ---------------------------------------------------- */

static void put(int dir, const char *name, const void *data, size_t n, mode_t mode)
{
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	OK(fd);
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	OK(fchmod(fd, mode));
	close(fd);
}

static int mkdir_open(int dir, const char *name, mode_t mode)
{
	int fd;

	OK(mkdirat(dir, name, mode));
	OK(fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	OK(fchmod(fd, mode));
	return fd;
}

static void set_times(int dir, const char *name, time_t atime, time_t mtime, long mnsec)
{
	struct timespec t[2] = { { atime, 0 }, { mtime, mnsec } };

	OK(utimensat(dir, name, t, AT_SYMLINK_NOFOLLOW));
}

static const char *in_src(char *buf, const char *rel)
{
	snprintf(buf, 128, "%s/%s", src, rel);
	return buf;
}

static void *read_all(int dir, const char *name, size_t *n)
{
	struct stat st;
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char *buf;

	OK(fd);
	OK(fstat(fd, &st));
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size + 1), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*n = (size_t)st.st_size;
	return buf;
}

static void fill_random(char *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = getrandom(buf + done, n - done, 0);
		OK(r);
		done += (size_t)r;
	}
}

static void build_deep(void)
{
	int dir = mkdir_open(sfd, "deep", 0755);

	for (int i = 1; i <= DEEP_LEVELS; i++) {
		char name[16];
		int next;

		snprintf(name, sizeof(name), "l%d", i);
		next = mkdir_open(dir, name, 0750);
		close(dir);
		dir = next;
	}
	put(dir, "leaf", "deep leaf\n", 10, 0644);
	close(dir);
}

static void build_links_and_specials(void)
{
	int links = mkdir_open(sfd, "links", 0755), other = mkdir_open(sfd, "other", 0755);
	int sub = mkdir_open(sfd, "sub", 0755), subdir = mkdir_open(sub, "dir", 0755);
	char path[128];

	put(links, "a", "linked\n", 7, 0640);
	OK(linkat(links, "a", links, "b", 0));
	OK(linkat(links, "a", other, "c", 0));
	OK(symlinkat("/", sfd, "root_link"));
	OK(symlinkat("../../etc/passwd", subdir, "etc_link"));
	OK(fchownat(sfd, "root_link", 1234, 5678, AT_SYMLINK_NOFOLLOW));
	/* trusted.*, not user.*: user xattrs are refused on symlinks. */
	OK(lsetxattr(in_src(path, "root_link"), "trusted.cvm", "on a link", 9, 0));
	OK(lsetxattr(in_src(path, "root_link"), "security.cvm", "label", 5, 0));
	set_times(sfd, "root_link", LINK_MTIME_SEC, LINK_MTIME_SEC, 5);
	OK(mkfifoat(sfd, "fifo", 0640));
	OK(fchownat(sfd, "fifo", 7, 8, 0));
	OK(fchmodat(sfd, "fifo", 0640, 0));
	OK(mknodat(sfd, "null", S_IFCHR | 0666, makedev(1, 3)));
	OK(fchmodat(sfd, "null", 0666, 0));
	OK(mknodat(sfd, "loop", S_IFBLK | 0660, makedev(7, 0)));
	close(links);
	close(other);
	close(subdir);
	close(sub);
}

static void build_files(void)
{
	char *big = malloc(BIG_SIZE);
	int fd;

	put(sfd, "suid", "#!/bin/sh\n", 10, 0755);
	/* chown first: it clears setuid, as it will in the copy. */
	OK(fchownat(sfd, "suid", 1000, 2000, 0));
	OK(fchmodat(sfd, "suid", 04755, 0));
	put(sfd, "xattr_file", "x\n", 2, 0600);
	OK(fd = openat(sfd, "xattr_file", O_RDONLY | O_CLOEXEC));
	OK(fsetxattr(fd, "user.cvm", "hello", 5, 0));
	OK(fsetxattr(fd, "trusted.cvm", "secret", 6, 0));
	close(fd);
	put(sfd, "caps", "\x7f" "ELF", 4, 0755);
	OK(fchownat(sfd, "caps", 1000, 1000, 0));
	OK(fd = openat(sfd, "caps", O_RDONLY | O_CLOEXEC));
	caps_set = fsetxattr(fd, "security.capability", cap_blob, sizeof(cap_blob), 0) == 0;
	close(fd);
	put(sfd, "empty", "", 0, 0400);
	ck_assert_ptr_nonnull(big);
	fill_random(big, BIG_SIZE);
	put(sfd, "big", big, BIG_SIZE, 0644);
	free(big);
}

static void build_dirs_and_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int tmp = mkdir_open(sfd, "tmp", 01777), ro = mkdir_open(sfd, "ro", 0755);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	put(tmp, "child", "c", 1, 0644);
	OK(fsetxattr(tmp, "user.dir", "d", 1, 0));
	put(ro, "inside", "i", 1, 0444);
	OK(fchmod(ro, 0555));
	close(tmp);
	close(ro);
	/* The children change the dir's mtime: set the times last. */
	set_times(sfd, "tmp", TMP_ATIME_SEC, TMP_MTIME_SEC, TMP_MTIME_NSEC);
	OK(s);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", src);
	OK(bind(s, (struct sockaddr *)&sa, sizeof(sa)));
	close(s);
}

static void build_and_copy(void)
{
	setup();
	build_deep();
	build_links_and_specials();
	build_files();
	build_dirs_and_socket();
	ck_assert_msg(cvm_copy_tree(sfd, dfd, NULL, NULL, &err) == 0, "%s", err.msg);
}

static void stat_both(const char *rel, struct stat *s, struct stat *d)
{
	ck_assert_msg(fstatat(sfd, rel, s, AT_SYMLINK_NOFOLLOW) == 0, "src %s: %s", rel,
		      strerror(errno));
	ck_assert_msg(fstatat(dfd, rel, d, AT_SYMLINK_NOFOLLOW) == 0, "dst %s: %s", rel,
		      strerror(errno));
}

static void assert_xattr(const char *rel, const char *name, const void *val, size_t n)
{
	char path[sizeof(dst) + 64], buf[256];
	ssize_t got;

	snprintf(path, sizeof(path), "%s/%s", dst, rel);
	got = lgetxattr(path, name, buf, sizeof(buf));
	ck_assert_msg(got == (ssize_t)n, "%s %s: %zd bytes (%s)", rel, name, got,
		      got < 0 ? strerror(errno) : "");
	ck_assert_msg(!memcmp(buf, val, n), "%s %s: other value", rel, name);
}

/* ---- the fixture, copied ------------------------------------------------ */

/* Owner, mode, type, size, rdev and mtime of every entry equal the source's. */
START_TEST(test_all_metadata)
{
	static const char *const rels[] = {
		"deep", "deep/l1", "deep/l1/l2", "suid", "xattr_file", "caps", "empty", "big",
		"links", "links/a", "links/b", "other/c", "sub/dir", "sub/dir/etc_link",
		"root_link", "fifo", "null", "loop", "tmp", "tmp/child", "ro", "ro/inside",
	};

	for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
		struct stat s, d;

		stat_both(rels[i], &s, &d);
		ck_assert_msg(s.st_mode == d.st_mode, "%s: mode %o, want %o", rels[i], d.st_mode,
			      s.st_mode);
		ck_assert_msg(s.st_uid == d.st_uid && s.st_gid == d.st_gid, "%s: owner", rels[i]);
		ck_assert_msg(s.st_size == d.st_size, "%s: size", rels[i]);
		ck_assert_msg(s.st_rdev == d.st_rdev, "%s: rdev", rels[i]);
		ck_assert_msg(s.st_mtim.tv_sec == d.st_mtim.tv_sec &&
			      s.st_mtim.tv_nsec == d.st_mtim.tv_nsec, "%s: mtime", rels[i]);
		ck_assert_msg(s.st_ino != d.st_ino, "%s: same inode as the source", rels[i]);
	}
}
END_TEST

START_TEST(test_deep)
{
	char rel[256] = "deep";
	struct stat st;
	size_t n;
	char *text;

	for (int i = 1; i <= DEEP_LEVELS; i++) {
		snprintf(rel + strlen(rel), sizeof(rel) - strlen(rel), "/l%d", i);
		OK(fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW));
		ck_assert_msg(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0750, "%s", rel);
	}
	strcat(rel, "/leaf");
	text = read_all(dfd, rel, &n);
	ck_assert_str_eq(text, "deep leaf\n");
	free(text);
}
END_TEST

START_TEST(test_setuid_owner)
{
	struct stat st;

	OK(fstatat(dfd, "suid", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 04755);
	ck_assert_uint_eq(st.st_uid, 1000);
	ck_assert_uint_eq(st.st_gid, 2000);
}
END_TEST

START_TEST(test_hard_links)
{
	struct stat a, b, c, s;

	OK(fstatat(dfd, "links/a", &a, AT_SYMLINK_NOFOLLOW));
	OK(fstatat(dfd, "links/b", &b, AT_SYMLINK_NOFOLLOW));
	OK(fstatat(dfd, "other/c", &c, AT_SYMLINK_NOFOLLOW));
	OK(fstatat(sfd, "links/a", &s, AT_SYMLINK_NOFOLLOW));
	ck_assert(a.st_ino == b.st_ino && a.st_ino == c.st_ino);
	ck_assert_uint_eq(a.st_nlink, 3);
	ck_assert(a.st_ino != s.st_ino);
	ck_assert_uint_eq(a.st_mode & 07777, 0640);
}
END_TEST

START_TEST(test_symlinks_not_followed)
{
	char buf[64];
	struct stat st;
	ssize_t n;

	OK(fstatat(dfd, "root_link", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_uint_eq(st.st_gid, 5678);
	ck_assert_int_eq(st.st_mtim.tv_sec, LINK_MTIME_SEC);
	ck_assert_int_eq(st.st_mtim.tv_nsec, 5);
	ck_assert_int_eq(st.st_atim.tv_sec, LINK_MTIME_SEC);
	OK(n = readlinkat(dfd, "root_link", buf, sizeof(buf)));
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(buf[0], '/');
	OK(fstatat(dfd, "sub/dir/etc_link", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert(S_ISLNK(st.st_mode));
	OK(n = readlinkat(dfd, "sub/dir/etc_link", buf, sizeof(buf) - 1));
	buf[n] = '\0';
	ck_assert_str_eq(buf, "../../etc/passwd");
	/* Nothing from behind either link was copied. */
	ck_assert_int_eq(faccessat(dfd, "etc", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	ck_assert_int_eq(faccessat(dfd, "passwd", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	assert_xattr("root_link", "trusted.cvm", "on a link", 9);
	assert_xattr("root_link", "security.cvm", "label", 5);
}
END_TEST

START_TEST(test_special_files)
{
	struct stat st;

	OK(fstatat(dfd, "fifo", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert(S_ISFIFO(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	ck_assert(st.st_uid == 7 && st.st_gid == 8);
	OK(fstatat(dfd, "null", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert(S_ISCHR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0666);
	ck_assert(major(st.st_rdev) == 1 && minor(st.st_rdev) == 3);
	OK(fstatat(dfd, "loop", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert(S_ISBLK(st.st_mode));
	ck_assert(major(st.st_rdev) == 7 && minor(st.st_rdev) == 0);
	/* A socket is skipped, without an error. */
	ck_assert_int_eq(fstatat(dfd, "sock", &st, AT_SYMLINK_NOFOLLOW), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_xattrs)
{
	assert_xattr("xattr_file", "user.cvm", "hello", 5);
	assert_xattr("xattr_file", "trusted.cvm", "secret", 6);
	assert_xattr("tmp", "user.dir", "d", 1);
}
END_TEST

START_TEST(test_file_capabilities)
{
	struct stat st;

	if (!caps_set) {
		fprintf(stderr, "test_file_capabilities: skipped: %s refuses security.capability\n",
			base);
		return;
	}
	/* Set after the chown to 1000 (which would drop it), before the chmod. */
	assert_xattr("caps", "security.capability", cap_blob, sizeof(cap_blob));
	OK(fstatat(dfd, "caps", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert_uint_eq(st.st_uid, 1000);
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
}
END_TEST

START_TEST(test_big_file_bytes)
{
	size_t ns, nd;
	char *s = read_all(sfd, "big", &ns), *d = read_all(dfd, "big", &nd);

	ck_assert_uint_eq(ns, BIG_SIZE);
	ck_assert_uint_eq(nd, BIG_SIZE);
	ck_assert(!memcmp(s, d, BIG_SIZE));
	free(s);
	free(d);
	s = read_all(dfd, "empty", &nd);
	ck_assert_uint_eq(nd, 0);
	free(s);
}
END_TEST

START_TEST(test_dir_mode_and_times)
{
	struct stat st;

	OK(fstatat(dfd, "tmp", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 01777);
	ck_assert_int_eq(st.st_mtim.tv_sec, TMP_MTIME_SEC);
	ck_assert_int_eq(st.st_mtim.tv_nsec, TMP_MTIME_NSEC);
	/* Against the value set: reading the source moved its own atime. */
	ck_assert_int_eq(st.st_atim.tv_sec, TMP_ATIME_SEC);
	OK(fstatat(dfd, "ro", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert_uint_eq(st.st_mode & 07777, 0555);
	OK(fstatat(dfd, "ro/inside", &st, AT_SYMLINK_NOFOLLOW));
	ck_assert_uint_eq(st.st_mode & 07777, 0444);
}
END_TEST

/* ---- progress ----------------------------------------------------------- */

struct seen {
	unsigned calls;
	struct cvm_copy_progress last;
	bool went_back;
};

static void on_progress(const struct cvm_copy_progress *p, void *arg)
{
	struct seen *s = arg;

	if (p->files < s->last.files || p->bytes < s->last.bytes)
		s->went_back = true;
	s->last = *p;
	s->calls++;
}

static void build_many(void)
{
	char *mib = calloc(1, 1u << 20);

	ck_assert_ptr_nonnull(mib);
	for (int i = 0; i < 10; i++) {
		char name[16];
		int dir;

		snprintf(name, sizeof(name), "d%d", i);
		dir = mkdir_open(sfd, name, 0755);
		for (int j = 0; j < 1000; j++) {
			snprintf(name, sizeof(name), "f%d", j);
			put(dir, name, "x", 1, 0644);
		}
		close(dir);
	}
	put(sfd, "mib", mib, 1u << 20, 0644);
	free(mib);
}

/* 10 dirs + 10,000 one-byte files + a 1 MiB file. With no interval, the
 * callback comes at every clock check (256 entries); with the default 2 s it
 * may come only at the end. Either way the last call carries the totals. */
START_TEST(test_progress)
{
	const uint64_t files = 10 + 10000 + 1, bytes = 10000 + (1u << 20);
	struct seen fast = { 0 }, slow = { 0 };
	int psrc, dst2, bfd;

	build_many();
	/* An O_PATH source fd is enough. */
	OK(psrc = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC));
	cvm_copy_progress_interval_ms = 0;
	ck_assert_msg(cvm_copy_tree(psrc, dfd, on_progress, &fast, &err) == 0, "%s", err.msg);
	ck_assert_uint_ge(fast.calls, files / 256);
	ck_assert(!fast.went_back);
	ck_assert_uint_eq(fast.last.files, files);
	ck_assert_uint_eq(fast.last.bytes, bytes);

	cvm_copy_progress_interval_ms = 2000;
	OK(bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	dst2 = mkdir_open(bfd, "dst2", 0755);
	ck_assert_msg(cvm_copy_tree(psrc, dst2, on_progress, &slow, &err) == 0, "%s", err.msg);
	ck_assert_uint_ge(slow.calls, 1);
	ck_assert_uint_le(slow.calls, fast.calls);
	ck_assert_uint_eq(slow.last.files, files);
	ck_assert_uint_eq(slow.last.bytes, bytes);
	close(dst2);
	close(bfd);
	close(psrc);
}
END_TEST

START_TEST(test_empty_tree)
{
	struct seen s = { 0 };

	ck_assert_msg(cvm_copy_tree(sfd, dfd, on_progress, &s, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(s.calls, 1);
	ck_assert_uint_eq(s.last.files, 0);
	ck_assert_uint_eq(s.last.bytes, 0);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

static void build_nested_big(void)
{
	int a = mkdir_open(sfd, "a", 0755), b = mkdir_open(a, "b", 0755);
	char *data = calloc(1, 2u << 20);

	ck_assert_ptr_nonnull(data);
	put(b, "big.bin", data, 2u << 20, 0644);
	free(data);
	close(b);
	close(a);
}

/* A real write failure, with no privilege needed: the file size limit. */
START_TEST(test_error_names_path_efbig)
{
	struct rlimit lim = { 1u << 20, saved_fsize.rlim_max };

	build_nested_big();
	signal(SIGXFSZ, SIG_IGN);
	OK(setrlimit(RLIMIT_FSIZE, &lim));
	ck_assert_int_eq(cvm_copy_tree(sfd, dfd, NULL, NULL, &err), -1);
	ck_assert_int_eq(err.err, EFBIG);
	ck_assert_msg(!strncmp(err.msg, "copy a/b/big.bin: ", 18), "%s", err.msg);
	assert_contains(err.msg, strerror(EFBIG));
}
END_TEST

/* The destination fills up: a 1 MiB tmpfs, mounted in this test's own
 * (forked) process after unsharing its mount namespace. */
START_TEST(test_error_names_path_enospc)
{
	build_nested_big();
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "test_error_names_path_enospc: skipped: no mount namespace: %s\n",
			strerror(errno));
		return;
	}
	OK(mount("tmpfs", dst, "tmpfs", 0, "size=1m"));
	close(dfd);
	OK(dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	ck_assert_int_eq(cvm_copy_tree(sfd, dfd, NULL, NULL, &err), -1);
	ck_assert_int_eq(err.err, ENOSPC);
	ck_assert_msg(!strncmp(err.msg, "copy a/b/big.bin: ", 18), "%s", err.msg);
	assert_contains(err.msg, strerror(ENOSPC));
}
END_TEST

/* ---- depth -------------------------------------------------------------- */

#define LONG_LEVELS 300

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int open_level(int root, int levels)
{
	int dir = dup(root);

	for (int i = 1; i <= levels; i++) {
		char name[64];
		int next;

		snprintf(name, sizeof(name), "level-with-a-rather-long-name-%03d", i);
		OK(next = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
		close(dir);
		dir = next;
	}
	return dir;
}

static void build_long(bool top_link)
{
	int dir = dup(sfd);

	for (int i = 1; i <= LONG_LEVELS; i++) {
		char name[64];
		int next;

		snprintf(name, sizeof(name), "level-with-a-rather-long-name-%03d", i);
		next = mkdir_open(dir, name, i % 2 ? 0755 : 0711);
		close(dir);
		dir = next;
	}
	put(dir, "leaf", "bottom", 6, 0600);
	if (!top_link) {
		close(dir);
		return;
	}
	/* A second name at the top: whichever name comes first, the link
	 * needs the other's path, which is longer than PATH_MAX. */
	OK(linkat(dir, "leaf", sfd, "top_link", 0));
	close(dir);
	dir = open_level(sfd, LONG_LEVELS / 2);
	set_times(dir, ".", TMP_ATIME_SEC, TMP_MTIME_SEC, TMP_MTIME_NSEC);
	close(dir);
}

/* 300 levels with a 64-fd limit: two fds per open level would need 600. */
START_TEST(test_deep_tree_few_fds)
{
	struct rlimit lim = { 64, saved_nofile.rlim_max };
	struct stat leaf, top, mid;
	int before, dir;
	size_t n;
	char *text;

	build_long(true);
	before = count_fds();
	OK(setrlimit(RLIMIT_NOFILE, &lim));
	ck_assert_msg(cvm_copy_tree(sfd, dfd, NULL, NULL, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(count_fds(), before);
	OK(setrlimit(RLIMIT_NOFILE, &saved_nofile));

	dir = open_level(dfd, LONG_LEVELS);
	text = read_all(dir, "leaf", &n);
	ck_assert_str_eq(text, "bottom");
	free(text);
	OK(fstatat(dir, "leaf", &leaf, AT_SYMLINK_NOFOLLOW));
	OK(fstatat(dfd, "top_link", &top, AT_SYMLINK_NOFOLLOW));
	ck_assert(leaf.st_ino == top.st_ino && leaf.st_nlink == 2);
	OK(fstat(dir, &mid));
	ck_assert_uint_eq(mid.st_mode & 07777, LONG_LEVELS % 2 ? 0755 : 0711);
	close(dir);
	dir = open_level(dfd, LONG_LEVELS / 2);
	OK(fstat(dir, &mid));
	ck_assert_int_eq(mid.st_mtim.tv_sec, TMP_MTIME_SEC);
	ck_assert_int_eq(mid.st_mtim.tv_nsec, TMP_MTIME_NSEC);
	close(dir);
}
END_TEST

/* An error deep down names the path, shortened so the reason still fits. */
START_TEST(test_error_long_path)
{
	struct rlimit lim = { 1, saved_fsize.rlim_max };
	const char *start = "copy level-with-a-rather-long-name-001/level-with-a-rather";
	const char *end = "/level-with-a-rather-long-name-300/leaf: copy_file_range: ";

	build_long(false);
	signal(SIGXFSZ, SIG_IGN);
	OK(setrlimit(RLIMIT_FSIZE, &lim));
	ck_assert_int_eq(cvm_copy_tree(sfd, dfd, NULL, NULL, &err), -1);
	ck_assert_int_eq(err.err, EFBIG);
	ck_assert_msg(!strncmp(err.msg, start, strlen(start)), "%s", err.msg);
	assert_contains(err.msg, "...");
	assert_contains(err.msg, end);
	assert_contains(err.msg, strerror(EFBIG));
	ck_assert_uint_lt(strlen(err.msg), 600);
}
END_TEST

/* Into another filesystem, where copy_file_range may give way to
 * read/write: the bytes still match. */
START_TEST(test_cross_fs_data)
{
	size_t ns, nd;
	char *s, *d;

	build_files();
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "test_cross_fs_data: skipped: no mount namespace: %s\n",
			strerror(errno));
		return;
	}
	OK(mount("tmpfs", dst, "tmpfs", 0, "size=64m"));
	close(dfd);
	OK(dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	/* tmpfs before 6.6 has no user.* xattrs: drop the one file that has them. */
	OK(unlinkat(sfd, "xattr_file", 0));
	ck_assert_msg(cvm_copy_tree(sfd, dfd, NULL, NULL, &err) == 0, "%s", err.msg);
	s = read_all(sfd, "big", &ns);
	d = read_all(dfd, "big", &nd);
	ck_assert_uint_eq(nd, ns);
	ck_assert(!memcmp(s, d, ns));
	free(s);
	free(d);
}
END_TEST

static Suite *copytree_suite(void)
{
	Suite *s = suite_create("copytree");
	TCase *copied = tcase_create("copied fixture"), *other = tcase_create("other trees");

	tcase_add_checked_fixture(copied, build_and_copy, teardown);
	tcase_set_timeout(copied, 30);
	tcase_add_test(copied, test_all_metadata);
	tcase_add_test(copied, test_deep);
	tcase_add_test(copied, test_setuid_owner);
	tcase_add_test(copied, test_hard_links);
	tcase_add_test(copied, test_symlinks_not_followed);
	tcase_add_test(copied, test_special_files);
	tcase_add_test(copied, test_xattrs);
	tcase_add_test(copied, test_file_capabilities);
	tcase_add_test(copied, test_big_file_bytes);
	tcase_add_test(copied, test_dir_mode_and_times);
	suite_add_tcase(s, copied);

	tcase_add_checked_fixture(other, setup, teardown);
	tcase_set_timeout(other, 60);
	tcase_add_test(other, test_progress);
	tcase_add_test(other, test_empty_tree);
	tcase_add_test(other, test_error_names_path_efbig);
	tcase_add_test(other, test_error_names_path_enospc);
	tcase_add_test(other, test_deep_tree_few_fds);
	tcase_add_test(other, test_error_long_path);
	tcase_add_test(other, test_cross_fs_data);
	suite_add_tcase(s, other);
	return s;
}

static void remove_run_dir(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", run_dir);
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (!mkdtemp(run_dir)) {
		perror(run_dir);
		return 1;
	}
	sr = srunner_create(copytree_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_run_dir();
	return failed != 0;
}
