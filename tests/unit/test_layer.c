/* Unit tests for image/layer.c. Each test writes layer tars with
 * libarchive's writer (pax, GNU tar; plain, gzip, zstd), unpacks them into
 * a fresh dir with cvm_layer_unpack and checks the tree with lstat,
 * readlink and getxattr. Attacks check the error names the entry and that
 * nothing appeared outside the root: the dir around it stays as it was,
 * and the absolute places a breakout would have reached stay missing.
 * Runs as root (here and in CI): chown, trusted.* and security.* xattrs. */
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/layer.h"

#define OK(expr) ck_assert_msg((expr) >= 0, "%s: %s", #expr, strerror(errno))
#define assert_contains(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "'%s' does not contain '%s'", (hay), \
		      (needle))

static char run_dir[] = "/tmp/cvm-layer.XXXXXX";
static char base[64], root[96];
static int rfd = -1;
static struct cvm_error err;
static struct cvm_layer_stats st;
static unsigned n_tars;
static char last_tar[128];

/* VFS_CAP_REVISION_2 | effective; cap_net_raw (13) permitted. */
static const uint32_t cap_blob[5] = { 0x02000001, 1u << 13, 0, 0, 0 };

struct ent {
	const char *name;
	mode_t mode;            /* S_IFxxx | perm */
	const char *data;       /* file content, or symlink target */
	const char *hardlink;
	unsigned uid, gid;
	time_t mtime;
	const char *xname[3];   /* xattrs (pax) */
	const void *xval[3];
	size_t xlen[3];
	dev_t rdev;
};

static void setup(void)
{
	snprintf(base, sizeof(base), "%s/t.XXXXXX", run_dir);
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(root, sizeof(root), "%s/root", base);
	OK(mkdir(root, 0755));
	OK(rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC));
	cvm_error_clear(&err);
	memset(&st, 0, sizeof(st));
}

static void teardown(void)
{
	char cmd[128];

	close(rfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

/* A tar of @ents in @format ("pax", "gnutar") through @filter ("gzip",
 * "zstd", "none"); returns an fd of it, read from the start. */
static int make_tar_as(const struct ent *ents, size_t n, const char *format, const char *filter)
{
	char *path = last_tar;
	struct archive *a = archive_write_new();

	snprintf(last_tar, sizeof(last_tar), "%s/layer%u.tar", base, n_tars++);
	ck_assert_int_eq(archive_write_set_format_by_name(a, format), ARCHIVE_OK);
	if (!strcmp(filter, "gzip"))
		ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	else if (!strcmp(filter, "zstd"))
		ck_assert_int_eq(archive_write_add_filter_zstd(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		const struct ent *x = &ents[i];
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, x->name);
		archive_entry_set_mode(e, x->mode ? x->mode : S_IFREG | 0644);
		archive_entry_set_uid(e, x->uid);
		archive_entry_set_gid(e, x->gid);
		archive_entry_set_mtime(e, x->mtime ? x->mtime : 1500000000, 0);
		if (x->hardlink) {
			archive_entry_set_hardlink(e, x->hardlink);
			archive_entry_set_size(e, 0);
		} else if (S_ISLNK(x->mode))
			archive_entry_set_symlink(e, x->data);
		else if (S_ISREG(archive_entry_mode(e)))
			archive_entry_set_size(e, x->data ? (la_int64_t)strlen(x->data) : 0);
		if (S_ISCHR(x->mode) || S_ISBLK(x->mode))
			archive_entry_set_rdev(e, x->rdev);
		for (int j = 0; j < 3 && x->xname[j]; j++)
			archive_entry_xattr_add_entry(e, x->xname[j], x->xval[j], x->xlen[j]);
		ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
		if (!x->hardlink && S_ISREG(archive_entry_mode(e)) && x->data)
			ck_assert_int_eq(archive_write_data(a, x->data, strlen(x->data)),
					 (la_ssize_t)strlen(x->data));
		archive_entry_free(e);
	}
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	OK(fd);
	return fd;
}

static int make_tar(const struct ent *ents, size_t n)
{
	return make_tar_as(ents, n, "pax", "none");
}

static int unpack(const struct ent *ents, size_t n, enum cvm_layer_mode mode)
{
	int fd = make_tar(ents, n);
	int r = cvm_layer_unpack(fd, rfd, mode, &st, &err);
	close(fd);
	return r;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define UNPACK_OK(ents, mode) \
	ck_assert_msg(unpack(ents, N(ents), mode) == 0, "unpack: %s", err.msg)

static struct stat lst(const char *rel)
{
	char p[512];
	struct stat s;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	ck_assert_msg(lstat(p, &s) == 0, "lstat %s: %s", rel, strerror(errno));
	return s;
}

static bool exists(const char *rel)
{
	char p[512];
	struct stat s;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return lstat(p, &s) == 0;
}

static void assert_content(const char *rel, const char *want)
{
	char p[512], buf[4096] = "";
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "r");
	ck_assert_msg(f != NULL, "%s: %s", rel, strerror(errno));
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_str_eq(buf, want);
}

static ssize_t xattr(const char *rel, const char *name, void *buf, size_t n)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return lgetxattr(p, name, buf, n);
}

/* base holds "root" and the tars, nothing else: nothing was written
 * beside the root. */
static void assert_outside_untouched(void)
{
	DIR *d = opendir(base);
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		ck_assert_msg(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			      !strcmp(de->d_name, "root") || !strncmp(de->d_name, "layer", 5),
			      "%s appeared beside the root", de->d_name);
	closedir(d);
}

/* ---- what is kept ------------------------------------------------------------ */

START_TEST(test_types_owner_mode_mtime)
{
	const struct ent ents[] = {
		{ "./", S_IFDIR | 0751, .mtime = 1400000000 },
		{ "usr/", S_IFDIR | 0755, .mtime = 1300000000 },
		{ "usr/bin/", S_IFDIR | 0555, .uid = 2, .gid = 3, .mtime = 1200000000 },
		{ "usr/bin/su", S_IFREG | 04755, "su binary", .uid = 0, .gid = 0, .mtime = 1100000000 },
		{ "usr/bin/wall", S_IFREG | 02755, "wall", .uid = 0, .gid = 5 },
		{ "tmp/", S_IFDIR | 01777 },
		{ "home/u/file", S_IFREG | 0600, "mine", .uid = 1234, .gid = 5678, .mtime = 1000000000 },
		{ "home/u/link", S_IFLNK | 0777, "file", .uid = 1234, .gid = 5678, .mtime = 1234567890 },
		{ "home/u/abs", S_IFLNK | 0777, "/etc/passwd" },
		{ "home/u/hard", S_IFREG | 0600, .hardlink = "home/u/file" },
		{ "run/fifo", S_IFIFO | 0620, .uid = 7, .gid = 8 },
	};
	struct stat s;
	char p[160], buf[64];

	mode_t old_umask = umask(077);                          /* ...whatever the umask */
	UNPACK_OK(ents, CVM_LAYER_OVERLAY);
	umask(old_umask);
	s = lst(".");
	ck_assert_int_eq(s.st_mode & 07777, 0751);
	ck_assert_int_eq(s.st_mtime, 1400000000);
	s = lst("usr/bin");
	ck_assert(S_ISDIR(s.st_mode));
	ck_assert_int_eq(s.st_mode & 07777, 0555);      /* set after su and wall went in */
	ck_assert_int_eq(s.st_uid, 2);
	ck_assert_int_eq(s.st_gid, 3);
	ck_assert_int_eq(s.st_mtime, 1200000000);       /* not the time su was written */
	ck_assert_int_eq(lst("usr").st_mtime, 1300000000);
	s = lst("usr/bin/su");
	ck_assert_int_eq(s.st_mode & 07777, 04755);
	ck_assert_int_eq(s.st_mtime, 1100000000);
	assert_content("usr/bin/su", "su binary");
	ck_assert_int_eq(lst("usr/bin/wall").st_mode & 07777, 02755);
	ck_assert_int_eq(lst("usr/bin/wall").st_gid, 5);
	ck_assert_int_eq(lst("tmp").st_mode & 07777, 01777);
	s = lst("home/u/file");
	ck_assert_int_eq(s.st_uid, 1234);
	ck_assert_int_eq(s.st_gid, 5678);
	ck_assert_int_eq(s.st_mtime, 1000000000);
	ck_assert_int_eq(s.st_nlink, 2);
	ck_assert_int_eq(lst("home/u/hard").st_ino, s.st_ino);
	s = lst("home/u/link");
	ck_assert(S_ISLNK(s.st_mode));
	ck_assert_int_eq(s.st_uid, 1234);
	ck_assert_int_eq(s.st_mtime, 1234567890);
	snprintf(p, sizeof(p), "%s/home/u/abs", root);
	ssize_t n = readlink(p, buf, sizeof(buf) - 1);
	ck_assert_int_eq(n, 11);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "/etc/passwd");           /* stored as-is */
	s = lst("run/fifo");
	ck_assert(S_ISFIFO(s.st_mode));
	ck_assert_int_eq(s.st_mode & 07777, 0620);
	ck_assert_int_eq(s.st_uid, 7);
	ck_assert_int_eq(lst("run").st_mode & 07777, 0755);     /* made on the way... */
	ck_assert_uint_eq(st.files, N(ents));
	ck_assert_uint_eq(st.bytes, strlen("su binary") + strlen("wall") + strlen("mine"));
}
END_TEST

static void check_small_tree(void)
{
	assert_content("etc/os-release", "ID=test\n");
	ck_assert(S_ISLNK(lst("bin").st_mode));
	ck_assert_uint_eq(st.files, 3);
}

static const struct ent small[] = {
	{ "etc/os-release", S_IFREG | 0644, "ID=test\n" },
	{ "usr/bin/", S_IFDIR | 0755 },
	{ "bin", S_IFLNK | 0777, "usr/bin" },
};

START_TEST(test_filters)
{
	static const char *const filters[] = { "none", "gzip", "zstd" };
	const char *filter = filters[_i];
	int fd = make_tar_as(small, N(small), "pax", filter);
	char magic[4] = "";

	/* The tar really is compressed as named: gzip 1f 8b, zstd 28 b5 2f fd. */
	ck_assert_int_eq(pread(fd, magic, 4, 0), 4);
	if (!strcmp(filter, "gzip"))
		ck_assert(magic[0] == '\x1f' && magic[1] == '\x8b');
	else if (!strcmp(filter, "zstd"))
		ck_assert(!memcmp(magic, "\x28\xb5\x2f\xfd", 4));
	else
		ck_assert(!memcmp(magic, "etc/", 4));
	ck_assert_msg(cvm_layer_unpack(fd, rfd, CVM_LAYER_APPLY, &st, &err) == 0, "%s", err.msg);
	close(fd);
	check_small_tree();
}
END_TEST

START_TEST(test_long_names)
{
	static const char *const formats[] = { "pax", "gnutar" };
	char dir[300], name[600], target[300];

	memset(dir, 'd', 150);
	dir[150] = '\0';
	snprintf(name, sizeof(name), "%s/%0200d", dir, 7);      /* 351 chars, a 200-char leaf */
	memset(target, 't', 250);
	target[250] = '\0';
	const struct ent ents[] = {
		{ name, S_IFREG | 0644, "long" },
		{ "l", S_IFLNK | 0777, target },
		{ "h", S_IFREG | 0644, .hardlink = name },
	};
	int fd = make_tar_as(ents, N(ents), formats[_i], "none");
	ck_assert_msg(cvm_layer_unpack(fd, rfd, CVM_LAYER_OVERLAY, &st, &err) == 0, "%s", err.msg);
	close(fd);
	assert_content(name, "long");
	ck_assert_int_eq(lst("h").st_ino, lst(name).st_ino);
	char p[128], got[300];
	snprintf(p, sizeof(p), "%s/l", root);
	ssize_t n = readlink(p, got, sizeof(got));
	ck_assert_int_eq(n, 250);
	ck_assert(!memcmp(got, target, 250));
}
END_TEST

START_TEST(test_xattrs)
{
	const struct ent ents[] = {
		{ "ping", S_IFREG | 0755, "ping", .uid = 0,
		  .xname = { "security.capability", "user.note", "trusted.overlay.opaque" },
		  .xval = { cap_blob, "hello", "y" }, .xlen = { sizeof(cap_blob), 5, 1 } },
		{ "d/", S_IFDIR | 0755,
		  .xname = { "security.selinux", "user.dir", "trusted.evil" },
		  .xval = { "system_u:object_r:bin_t:s0", "x", "1" }, .xlen = { 26, 1, 1 } },
	};
	uint32_t cap[5];
	char buf[16];

	UNPACK_OK(ents, CVM_LAYER_OVERLAY);
	ck_assert_int_eq(xattr("ping", "security.capability", cap, sizeof(cap)), sizeof(cap_blob));
	ck_assert(!memcmp(cap, cap_blob, sizeof(cap_blob)));
	ck_assert_int_eq(xattr("ping", "user.note", buf, sizeof(buf)), 5);
	ck_assert(!memcmp(buf, "hello", 5));
	ck_assert_int_eq(xattr("ping", "trusted.overlay.opaque", buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, ENODATA);
	ck_assert_int_eq(xattr("d", "user.dir", buf, sizeof(buf)), 1);
	ck_assert_int_eq(xattr("d", "trusted.evil", buf, sizeof(buf)), -1);
	ck_assert_int_eq(xattr("d", "security.selinux", buf, sizeof(buf)), -1);
	ck_assert_uint_eq(st.xattrs_dropped, 3);
}
END_TEST

START_TEST(test_devices_skipped)
{
	const struct ent lower[] = { { "dev/mem", S_IFREG | 0644, "was a file" } };
	const struct ent ents[] = {
		{ "dev/sda", S_IFBLK | 0660, .rdev = makedev(8, 0) },
		{ "dev/mem", S_IFCHR | 0640, .rdev = makedev(1, 1) },
		{ "dev/keep", S_IFREG | 0644, "k" },
	};

	/* APPLY: not made, and what was there is gone. */
	UNPACK_OK(lower, CVM_LAYER_APPLY);
	UNPACK_OK(ents, CVM_LAYER_APPLY);
	ck_assert(!exists("dev/sda"));
	ck_assert(!exists("dev/mem"));
	ck_assert(exists("dev/keep"));
	ck_assert_uint_eq(st.devices_skipped, 2);
	/* OVERLAY: a whiteout in its place hides the lower layer's entry. */
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", root);
	ck_assert_int_eq(system(cmd), 0);
	UNPACK_OK(ents, CVM_LAYER_OVERLAY);
	struct stat s = lst("dev/sda");
	ck_assert(S_ISCHR(s.st_mode));
	ck_assert_int_eq(s.st_rdev, makedev(0, 0));
	ck_assert_int_eq(lst("dev/mem").st_rdev, makedev(0, 0));
	ck_assert_uint_eq(st.devices_skipped, 2);
}
END_TEST

START_TEST(test_relative_symlink_parent)
{
	/* Merged /usr: lib -> usr/lib; an entry through it lands in usr/lib. */
	const struct ent ents[] = {
		{ "usr/lib/", S_IFDIR | 0755 },
		{ "lib", S_IFLNK | 0777, "usr/lib" },
		{ "lib/libc.so", S_IFREG | 0644, "libc" },
	};

	UNPACK_OK(ents, CVM_LAYER_OVERLAY);
	assert_content("usr/lib/libc.so", "libc");
	ck_assert(S_ISLNK(lst("lib").st_mode));
}
END_TEST

/* ---- whiteouts and replacement ---------------------------------------------- */

START_TEST(test_whiteouts_overlay)
{
	const struct ent ents[] = {
		{ "etc/.wh.motd", S_IFREG | 0644 },
		{ "opt/.wh..wh..opq", S_IFREG | 0644 },
		{ "opt/new", S_IFREG | 0644, "n" },
		{ "srv/mine", S_IFREG | 0644, "this layer's own" },
		{ "srv/.wh.mine", S_IFREG | 0644 },     /* hides only lower layers' */
		{ ".wh.gone-dir", S_IFREG | 0644 },
		{ "x/.wh..wh.plnk", S_IFREG | 0644 },   /* AUFS' own: ignored */
		{ "srv/mine/.wh.y", S_IFREG | 0644 },   /* under a file: nothing to hide */
	};
	char buf[4];

	UNPACK_OK(ents, CVM_LAYER_OVERLAY);
	struct stat s = lst("etc/motd");
	ck_assert(S_ISCHR(s.st_mode));
	ck_assert_int_eq(s.st_rdev, makedev(0, 0));
	ck_assert(S_ISCHR(lst("gone-dir").st_mode));
	ck_assert(!exists("etc/.wh.motd"));
	ck_assert_int_eq(xattr("opt", "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], 'y');
	assert_content("opt/new", "n");
	ck_assert(!exists("opt/.wh..wh..opq"));
	assert_content("srv/mine", "this layer's own");
	ck_assert(!exists("x/.wh..wh.plnk"));
	ck_assert_uint_eq(st.files, 2);
}
END_TEST

START_TEST(test_whiteouts_apply)
{
	const struct ent lower[] = {
		{ "a/x", S_IFREG | 0644, "x" },
		{ "a/y", S_IFREG | 0644, "y" },
		{ "d/old", S_IFREG | 0644, "old" },
		{ "d/sub/deep", S_IFREG | 0644, "deep" },
		{ "d/kept/old", S_IFREG | 0644, "old2" },
		{ "tree/t/u", S_IFREG | 0644, "u" },
		{ "f", S_IFREG | 0644, "file" },
		{ "s", S_IFLNK | 0777, "a" },
	};
	const struct ent upper[] = {
		{ "a/.wh.x", S_IFREG | 0644 },
		{ "d/before", S_IFREG | 0644, "b" },    /* this layer's, before the marker */
		{ "d/kept/new", S_IFREG | 0644, "new" },
		{ "d/.wh..wh..opq", S_IFREG | 0644 },
		{ "d/after", S_IFREG | 0644, "a" },
		{ "tree", S_IFREG | 0644, "now a file" },       /* file over dir */
		{ "f/", S_IFDIR | 0700 },                       /* dir over file */
		{ "s/", S_IFDIR | 0755 },                       /* dir over a symlink */
		{ "s/in", S_IFREG | 0644, "in" },
		{ "missing/.wh.thing", S_IFREG | 0644 },
		{ "new/.wh.none", S_IFREG | 0644 },
		{ "new/mine", S_IFREG | 0644, "m" },
		{ "new/.wh.mine", S_IFREG | 0644 },     /* same layer: not removed */
		{ "a/y/.wh.z", S_IFREG | 0644 },        /* under a file: nothing to hide */
	};

	UNPACK_OK(lower, CVM_LAYER_APPLY);
	UNPACK_OK(upper, CVM_LAYER_APPLY);
	ck_assert(!exists("a/x"));
	assert_content("a/y", "y");
	ck_assert(!exists("a/.wh.x"));
	ck_assert(!exists("d/old"));
	ck_assert(!exists("d/sub"));
	ck_assert(!exists("d/kept/old"));
	assert_content("d/kept/new", "new");
	assert_content("d/before", "b");
	assert_content("d/after", "a");
	assert_content("tree", "now a file");
	ck_assert(S_ISDIR(lst("f").st_mode));
	ck_assert_int_eq(lst("f").st_mode & 07777, 0700);
	ck_assert(S_ISDIR(lst("s").st_mode));
	assert_content("s/in", "in");
	assert_content("a/y", "y");                     /* not through the old symlink */
	ck_assert(!exists("missing"));
	assert_content("new/mine", "m");
	ck_assert(!exists("new/.wh.none"));
}
END_TEST

START_TEST(test_flatten)
{
	const struct ent l1[] = { { "a", S_IFREG | 0644, "1" }, { "b", S_IFREG | 0644, "1" } };
	const struct ent l2[] = { { ".wh.a", S_IFREG | 0644 }, { "b", S_IFREG | 0644, "22" } };
	int fds[2] = { make_tar(l1, N(l1)), make_tar(l2, N(l2)) };

	ck_assert_msg(cvm_layers_flatten(fds, 2, rfd, &st, &err) == 0, "%s", err.msg);
	ck_assert(!exists("a"));
	assert_content("b", "22");
	ck_assert_uint_eq(st.files, 3);
	ck_assert_uint_eq(st.bytes, 4);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(test_truncated)
{
	char big[8192];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const struct ent ents[] = { { "big", S_IFREG | 0644, big }, { "after", S_IFREG | 0644, "a" } };
	int fd = make_tar_as(ents, N(ents), "pax", "gzip");
	struct stat s;

	OK(fstat(fd, &s));
	OK(truncate(last_tar, s.st_size / 2));
	ck_assert_int_eq(cvm_layer_unpack(fd, rfd, CVM_LAYER_APPLY, &st, &err), -1);
	assert_contains(err.msg, "layer");
	close(fd);
	ck_assert(!exists("after"));
}
END_TEST

/* ---- attacks ------------------------------------------------------------------ */

/* The breakout would have created /tmp/cvm-layer-escape-PID (or the file
 * beside the root): that must be missing before and after. */
static char escape_abs[64];

static void attack(const struct ent *ents, size_t n, const char *named, const char *why)
{
	snprintf(escape_abs, sizeof(escape_abs), "/tmp/cvm-layer-escape-%d", (int)getpid());
	ck_assert_int_eq(access(escape_abs, F_OK), -1);
	ck_assert_int_eq(unpack(ents, n, CVM_LAYER_APPLY), -1);
	assert_contains(err.msg, named);
	assert_contains(err.msg, why);
	ck_assert_int_eq(access(escape_abs, F_OK), -1);
	assert_outside_untouched();
}

START_TEST(test_attack_dotdot)
{
	const struct ent ents[] = { { "ok", S_IFREG | 0644, "x" },
				    { "a/../../escaped", S_IFREG | 0644, "x" } };

	attack(ents, N(ents), "layer entry a/../../escaped", "leaves the layer's root");
	ck_assert(exists("ok"));
}
END_TEST

START_TEST(test_attack_absolute)
{
	char name[96];

	snprintf(name, sizeof(name), "/tmp/cvm-layer-escape-%d", (int)getpid());
	const struct ent ents[] = { { name, S_IFREG | 0644, "x" } };
	attack(ents, N(ents), name, "absolute path");
}
END_TEST

START_TEST(test_attack_symlink_to_root)
{
	char name[96];

	snprintf(name, sizeof(name), "evil/tmp/cvm-layer-escape-%d", (int)getpid());
	const struct ent ents[] = { { "evil", S_IFLNK | 0777, "/" }, { name, S_IFREG | 0644, "x" } };
	attack(ents, N(ents), name, "leads out of the layer's root");
	ck_assert(!exists("tmp"));      /* not resolved "in root" either */
}
END_TEST

START_TEST(test_attack_symlink_up)
{
	const struct ent ents[] = { { "a/up", S_IFLNK | 0777, "../../.." },
				    { "a/up/root/escaped", S_IFREG | 0644, "x" } };

	attack(ents, N(ents), "layer entry a/up/root/escaped", "leads out of the layer's root");
}
END_TEST

START_TEST(test_attack_hardlink_outside)
{
	char outside[128];

	/* A file beside the root, and /etc/shadow: neither may be linked in. */
	snprintf(outside, sizeof(outside), "%s/layer-outside", base);
	FILE *f = fopen(outside, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	const struct ent abs[] = { { "shadow", S_IFREG | 0644, .hardlink = "/etc/shadow" } };
	attack(abs, N(abs), "layer entry shadow", "absolute path");
	const struct ent up[] = { { "o", S_IFREG | 0644, .hardlink = "../layer-outside" } };
	attack(up, N(up), "layer entry o", "leaves the layer's root");
	const struct ent via[] = { { "up", S_IFLNK | 0777, ".." },
				   { "o2", S_IFREG | 0644, .hardlink = "up/layer-outside" } };
	attack(via, N(via), "layer entry o2", "leads out of the layer's root");
	struct stat s;
	OK(stat(outside, &s));
	ck_assert_int_eq(s.st_nlink, 1);
	OK(stat("/etc/shadow", &s));
	ck_assert_int_eq(s.st_nlink, 1);
	ck_assert(!exists("shadow") && !exists("o") && !exists("o2"));
}
END_TEST

START_TEST(test_attack_dir_replaced_by_symlink)
{
	char name[96];

	snprintf(name, sizeof(name), "d/cvm-layer-escape-%d", (int)getpid());
	const struct ent ents[] = {
		{ "d/", S_IFDIR | 0755 },
		{ "d/inside", S_IFREG | 0644, "i" },
		{ "d", S_IFLNK | 0777, "/tmp" },        /* replaces the dir */
		{ name, S_IFREG | 0644, "x" },
	};
	attack(ents, N(ents), name, "leads out of the layer's root");
	ck_assert(S_ISLNK(lst("d").st_mode));
}
END_TEST

START_TEST(test_attack_whiteout_through_symlink)
{
	/* A whiteout must not remove anything outside either. */
	char outside[128];

	snprintf(outside, sizeof(outside), "%s/layer-victim", base);
	FILE *f = fopen(outside, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	const struct ent ents[] = { { "up", S_IFLNK | 0777, ".." },
				    { "up/.wh.layer-victim", S_IFREG | 0644 } };
	attack(ents, N(ents), "layer entry up/.wh.layer-victim", "leads out of the layer's root");
	ck_assert_int_eq(access(outside, F_OK), 0);
}
END_TEST

static Suite *layer_suite(void)
{
	Suite *s = suite_create("layer");
	TCase *tc = tcase_create("unpack");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_types_owner_mode_mtime);
	tcase_add_loop_test(tc, test_filters, 0, 3);
	tcase_add_loop_test(tc, test_long_names, 0, 2);
	tcase_add_test(tc, test_xattrs);
	tcase_add_test(tc, test_devices_skipped);
	tcase_add_test(tc, test_relative_symlink_parent);
	tcase_add_test(tc, test_whiteouts_overlay);
	tcase_add_test(tc, test_whiteouts_apply);
	tcase_add_test(tc, test_flatten);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_attack_dotdot);
	tcase_add_test(tc, test_attack_absolute);
	tcase_add_test(tc, test_attack_symlink_to_root);
	tcase_add_test(tc, test_attack_symlink_up);
	tcase_add_test(tc, test_attack_hardlink_outside);
	tcase_add_test(tc, test_attack_dir_replaced_by_symlink);
	tcase_add_test(tc, test_attack_whiteout_through_symlink);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	char cmd[64];
	int r;

	if (!mkdtemp(run_dir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	SRunner *sr = srunner_create(layer_suite());
	srunner_run_all(sr, CK_NORMAL);
	r = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
	if (system(cmd) != 0)
		r++;
	return r ? EXIT_FAILURE : EXIT_SUCCESS;
}
