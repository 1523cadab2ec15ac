/* Path safety inside an untrusted rootfs, and the id range checks. No
 * privileges needed: openat2 and plain files only. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/idmap.h"
#include "runtime/rootpath.h"
#include "tmptree.h"

static char root[64];
static int root_fd = -1;
static struct cvm_error err;

static void put(const char *rel, const char *text)
{
	tmptree_put(root, rel, text);
}

static void setup(void)
{
	char p[256];
	tmptree_make(root, "cvm-paths");
	put("etc/hostname", "img\n");
	/* The attacks: absolute and relative links that aim outside. */
	snprintf(p, sizeof(p), "%s/proc", root);
	ck_assert_int_eq(symlink("/", p), 0);
	snprintf(p, sizeof(p), "%s/up", root);
	ck_assert_int_eq(symlink("../../../../..", p), 0);
	snprintf(p, sizeof(p), "%s/hosts", root);
	ck_assert_int_eq(symlink("/etc/hostname", p), 0);
	snprintf(p, sizeof(p), "%s/selfroot", root);
	ck_assert_int_eq(symlink("/proc/self/root/etc", p), 0);
	root_fd = open(root, O_PATH | O_DIRECTORY);
	ck_assert_int_ge(root_fd, 0);
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	close(root_fd);
	tmptree_remove(root);
}

/* Does @fd name the same inode as ROOT/@rel? */
static int same_as(int fd, const char *rel)
{
	char p[256];
	struct stat a, b;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (fstat(fd, &a) < 0 || lstat(p, &b) < 0)
		return 0;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

START_TEST(symlink_leaf_is_refused)
{
	int fd = cvm_root_open(root_fd, "/proc", CVM_ROOT_DIR, S_IFDIR, &err);
	ck_assert_int_eq(fd, -1);
	ck_assert_msg(strstr(err.msg, "/proc is a symlink (-> /)"), "%s", err.msg);
}
END_TEST

START_TEST(dotdot_stays_inside)
{
	/* ../../etc from the root is the image's etc, not the host's. */
	int fd = cvm_root_open(root_fd, "../../../etc", CVM_ROOT_NOCREATE, S_IFDIR, &err);
	ck_assert_int_ge(fd, 0);
	ck_assert(same_as(fd, "etc"));
	close(fd);
}
END_TEST

START_TEST(symlink_in_the_middle_resolves_inside)
{
	/* up -> ../../../../.. is the root itself; up/etc is the image's etc. */
	int fd = cvm_root_open(root_fd, "/up/etc/hostname", CVM_ROOT_NOCREATE, S_IFREG, &err);
	ck_assert_int_ge(fd, 0);
	ck_assert(same_as(fd, "etc/hostname"));
	close(fd);
	/* Creating through an absolute link lands inside too. */
	fd = cvm_root_open(root_fd, "/proc/newdir/leaf", CVM_ROOT_DIR, S_IFDIR, &err);
	ck_assert_msg(fd >= 0, "%s", err.msg);
	ck_assert(same_as(fd, "newdir/leaf"));
	close(fd);
}
END_TEST

START_TEST(magic_links_are_refused)
{
	ck_assert_int_eq(cvm_root_open(root_fd, "/selfroot/x", CVM_ROOT_DIR, S_IFDIR, &err), -1);
	ck_assert_int_eq(access("/etc/x", F_OK), -1);
}
END_TEST

START_TEST(create_and_type_checks)
{
	int fd = cvm_root_open(root_fd, "/a/b/c", CVM_ROOT_FILE, S_IFREG, &err);
	ck_assert_msg(fd >= 0, "%s", err.msg);
	ck_assert(same_as(fd, "a/b/c"));
	close(fd);
	ck_assert_int_eq(cvm_root_open(root_fd, "/a/b/c", CVM_ROOT_DIR, S_IFDIR, &err), -1);
	ck_assert_msg(strstr(err.msg, "not a directory"), "%s", err.msg);
	ck_assert_int_eq(cvm_root_open(root_fd, "/missing", CVM_ROOT_NOCREATE, 0, &err), -1);
	ck_assert_int_eq(err.err, ENOENT);
	/* A symlink leaf is refused even when it points inside. */
	ck_assert_int_eq(cvm_root_open(root_fd, "/hosts", CVM_ROOT_NOCREATE, 0, &err), -1);
}
END_TEST

/* ---- id ranges ---- */

/* Reading an image's file (os-release): links are followed, all inside. */
START_TEST(read_follows_links_inside)
{
	char buf[64] = "", p[256];
	struct stat st;
	int fd = cvm_root_open_read(root_fd, "/hosts", &err);

	/* /hosts -> /etc/hostname: the image's "img", not the host's file. */
	ck_assert_msg(fd >= 0, "%s", err.msg);
	ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 4);
	ck_assert_str_eq(buf, "img\n");
	close(fd);
	fd = cvm_root_open_read(root_fd, "up/etc/hostname", &err);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(cvm_root_open_read(root_fd, "selfroot/hostname", &err), -1);
	/* A FIFO would block the reader: refused before it is opened. */
	snprintf(p, sizeof(p), "%s/etc/fifo", root);
	ck_assert_int_eq(mkfifo(p, 0644), 0);
	ck_assert_int_eq(cvm_root_open_read(root_fd, "/etc/fifo", &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "/etc/fifo is not a regular file"));
	/* lstat sees the link itself, its parents resolved inside. */
	ck_assert_int_eq(cvm_root_lstat(root_fd, "/hosts", &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_int_eq(cvm_root_lstat(root_fd, "/up/etc/hostname", &st), 0);
	ck_assert(S_ISREG(st.st_mode) && st.st_size == 4);
	ck_assert_int_eq(cvm_root_lstat(root_fd, "/etc/none", &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(idrange_checks)
{
	put("uid_map", "         0          0 4294967295\n");
	put("small_map", "0 100000 65536\n");
	put("passwd", "root:x:0:0::/root:/bin/sh\nsvc:x:120000:120000::/:/bin/false\n");
	put("group", "root:x:0:\n");
	char m[128], sm[128], pw[128], gr[128];
	snprintf(m, sizeof(m), "%s/uid_map", root);
	snprintf(sm, sizeof(sm), "%s/small_map", root);
	snprintf(pw, sizeof(pw), "%s/passwd", root);
	snprintf(gr, sizeof(gr), "%s/group", root);

	ck_assert_int_eq(cvm_idrange_check(200000, 65536, m, m, pw, gr, &err), 0);
	/* svc (120000) is in 100000-165535. */
	ck_assert_int_eq(cvm_idrange_check(100000, 65536, m, m, pw, gr, &err), -1);
	ck_assert_msg(strstr(err.msg, "user 'svc' (120000)"), "%s", err.msg);
	/* The outer container itself only has 100000-165535. */
	ck_assert_int_eq(cvm_idrange_check(100000, 65536, sm, sm, "/nonexistent", gr, &err), 0);
	ck_assert_int_eq(cvm_idrange_check(100001, 65536, sm, sm, "/nonexistent", gr, &err), -1);
	ck_assert_msg(strstr(err.msg, "not all mapped"), "%s", err.msg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("paths");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, symlink_leaf_is_refused);
	tcase_add_test(tc, dotdot_stays_inside);
	tcase_add_test(tc, symlink_in_the_middle_resolves_inside);
	tcase_add_test(tc, magic_links_are_refused);
	tcase_add_test(tc, create_and_type_checks);
	tcase_add_test(tc, read_follows_links_inside);
	tcase_add_test(tc, idrange_checks);
	suite_add_tcase(s, tc);
	return tmptree_run(s);
}
