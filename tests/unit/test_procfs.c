/* The virtual /proc files rendered from fixture cgroup trees (written here
 * into a temp dir) and fixture host files (tests/fixtures/proc/). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/procfs/fuse_abi.h"
#include "runtime/procfs/render.h"
#include "runtime/procfs/server.h"
#include "tmptree.h"

static char top[64], host_meminfo[16384], host_cpuinfo[65536], host_stat[16384];
static char buf[65536];
static struct cvm_error err;

static void slurp(const char *name, char *out, size_t len)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/tests/fixtures/proc/%s", getenv("CVM_SOURCE_ROOT"), name);
	FILE *f = fopen(p, "r");
	ck_assert_msg(f != NULL, "%s", p);
	size_t n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* put("a/b", "memory.max", "1G"): a file of the fixture tree */
static void put(const char *group, const char *file, const char *text)
{
	char rel[256];
	snprintf(rel, sizeof(rel), "%s%s%s", group, *group ? "/" : "", file);
	tmptree_put(top, rel, text);
}

static void load(const char *group, struct cvm_cg_view *v)
{
	char leaf[512];
	snprintf(leaf, sizeof(leaf), "%s%s%s", top, *group ? "/" : "", group);
	ck_assert_int_eq(cvm_cg_view_load(top, leaf, CVM_VIEW_ALL, v, &err), 0);
}

/* The kB value of @key in the rendered meminfo. */
static unsigned long long kb(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	ck_assert_msg(p != NULL, "%s missing", key);
	return strtoull(p + strlen(key), NULL, 10);
}

static void setup(void)
{
	tmptree_make(top, "cvm-procfs");
	slurp("meminfo", host_meminfo, sizeof(host_meminfo));
	slurp("cpuinfo", host_cpuinfo, sizeof(host_cpuinfo));
	slurp("stat", host_stat, sizeof(host_stat));
	put("", "memory.current", "16777216\n");
	put("", "memory.stat", "anon 8388608\nfile 4194304\nshmem 1048576\nfile_mapped 2097152\n"
	    "active_file 3145728\ninactive_file 1048576\nactive_anon 6291456\ninactive_anon 2097152\n"
	    "slab 524288\nslab_reclaimable 262144\nslab_unreclaimable 262144\n");
}

static void teardown(void)
{
	tmptree_remove(top);
}

START_TEST(cpuset_lists)
{
	struct cvm_cpuset c;
	char s[64];
	ck_assert_int_eq(cvm_cpuset_parse("0-3,8,10-11\n", &c), 0);
	ck_assert_uint_eq(cvm_cpuset_count(&c), 7);
	ck_assert(cvm_cpuset_has(&c, 8) && !cvm_cpuset_has(&c, 9) && cvm_cpuset_has(&c, 11));
	cvm_cpuset_format(&c, s, sizeof(s));
	ck_assert_str_eq(s, "0-3,8,10-11");
	cvm_cpuset_limit(&c, 5);
	cvm_cpuset_format(&c, s, sizeof(s));
	ck_assert_str_eq(s, "0-3,8");
	ck_assert_int_eq(cvm_cpuset_parse("3-1", &c), -1);
	ck_assert_int_eq(cvm_cpuset_parse("1,x", &c), -1);
	ck_assert_int_eq(cvm_cpuset_parse("5000", &c), -1);
}
END_TEST

START_TEST(meminfo_with_limit)
{
	struct cvm_cg_view v;
	put("", "memory.max", "67108864\n");
	load("", &v);
	ssize_t n = cvm_render_meminfo(host_meminfo, &v, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(kb(buf, "MemTotal:"), 65536);
	ck_assert_uint_eq(kb(buf, "MemFree:"), 65536 - 16384);
	/* free + reclaimable page cache (active_file + inactive_file) */
	ck_assert_uint_eq(kb(buf, "MemAvailable:"), 65536 - 16384 + 4096);
	ck_assert_uint_eq(kb(buf, "Cached:"), 4096);
	ck_assert_uint_eq(kb(buf, "Shmem:"), 1024);
	ck_assert_uint_eq(kb(buf, "AnonPages:"), 8192);
	ck_assert_uint_eq(kb(buf, "Active(file):"), 3072);
	/* The kernel's layout: "MemTotal:" padded to 16, value right-aligned. */
	ck_assert(strncmp(buf, "MemTotal:          65536 kB\n", 28) == 0);
	/* Lines cvm does not know stay the host's (Hugepagesize is one). */
	ck_assert_ptr_nonnull(strstr(buf, "Hugepagesize:"));
}
END_TEST

START_TEST(meminfo_without_limit_is_the_hosts_total)
{
	struct cvm_cg_view v;
	put("", "memory.max", "max\n");
	load("", &v);
	ck_assert_int_gt(cvm_render_meminfo(host_meminfo, &v, buf, sizeof(buf)), 0);
	ck_assert_uint_eq(kb(buf, "MemTotal:"), kb(host_meminfo, "MemTotal:"));
}
END_TEST

START_TEST(nested_group_sees_the_tighter_limit)
{
	struct cvm_cg_view v;
	put("", "memory.max", "1073741824\n");
	put("", "cpu.max", "400000 100000\n");
	put("docker", "memory.max", "max\n");
	put("docker/c1", "memory.max", "268435456\n");
	put("docker/c1", "cpu.max", "max 100000\n");
	put("docker/c1", "memory.current", "0\n");
	load("docker/c1", &v);
	ck_assert_uint_eq(v.mem_max, 268435456);
	ck_assert(v.cpu_limit > 3.99 && v.cpu_limit < 4.01);
	load("docker", &v);
	ck_assert_uint_eq(v.mem_max, 1073741824);
	/* Outside the workspace's tree is refused. */
	ck_assert_int_eq(cvm_cg_view_load(top, "/sys/fs/cgroup", CVM_VIEW_ALL, &v, &err), -1);
}
END_TEST

START_TEST(cpus_from_cpuset_and_quota)
{
	struct cvm_cg_view v;
	struct cvm_cpuset host, vis;
	cvm_cpuset_parse("0-11", &host);
	put("", "cpuset.cpus.effective", "0-3,8,10-11\n");
	put("", "cpu.max", "250000 100000\n");
	load("", &v);
	cvm_visible_cpus(&v, &host, &vis);
	/* 2.5 CPUs of quota: three processors, the first three of the set */
	ck_assert_uint_eq(cvm_cpuset_count(&vis), 3);
	ck_assert_int_gt(cvm_render_cpuinfo(host_cpuinfo, &vis, buf, sizeof(buf)), 0);
	int procs = 0;
	for (const char *p = buf; (p = strstr(p, "processor\t: ")); p++)
		procs++;
	ck_assert_int_eq(procs, 3);
	ck_assert_ptr_nonnull(strstr(buf, "processor\t: 2\n"));
	ck_assert_ptr_null(strstr(buf, "processor\t: 3\n"));
	ck_assert_ptr_nonnull(strstr(buf, "core id\t\t: 2\n"));     /* host cpu 2's block */
	ck_assert_int_gt(cvm_render_cpulist(&vis, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "0-2\n");
}
END_TEST

START_TEST(stat_lines_follow_the_cpus)
{
	struct cvm_cpuset c;
	cvm_cpuset_parse("8,10", &c);
	ck_assert_int_gt(cvm_render_stat(host_stat, &c, buf, sizeof(buf)), 0);
	/* cpu8 (108 ...) and cpu10 (110 ...) renumbered 0 and 1, summed on top */
	ck_assert(strncmp(buf, "cpu  218 0 100 2000 0 0 0 0 0 0\ncpu0 108 0 50 1000", 48) == 0);
	ck_assert_ptr_nonnull(strstr(buf, "\ncpu1 110 0 50 1000"));
	ck_assert_ptr_null(strstr(buf, "\ncpu2 "));
	ck_assert_ptr_nonnull(strstr(buf, "\nbtime 1764000000\n"));
}
END_TEST

START_TEST(swaps_and_uptime)
{
	struct cvm_cg_view v;
	put("", "memory.swap.max", "0\n");
	load("", &v);
	ck_assert_int_gt(cvm_render_swaps(&v, buf, sizeof(buf)), 0);
	ck_assert_int_eq((int)strlen(buf), (int)strcspn(buf, "\n") + 1);    /* header only */
	put("", "memory.swap.max", "1048576\n");
	put("", "memory.swap.current", "524288\n");
	load("", &v);
	cvm_render_swaps(&v, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "1024"));
	ck_assert_int_gt(cvm_render_uptime(10.0, 2, 5.0, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "10.00 15.00\n");
}
END_TEST

START_TEST(loadavg_decays_like_the_kernel)
{
	struct cvm_loadavg l = { { 0, 0, 0 }, 0 };
	cvm_loadavg_tick(&l, 60.0, 1);          /* a minute of one busy task */
	ck_assert_int_gt(cvm_render_loadavg(&l, 1, 7, 42, buf, sizeof(buf)), 0);
	/* 1 - e^-1 = 0.63 after one minute; 5 and 15 min averages far behind */
	ck_assert_str_eq(buf, "0.63 0.18 0.06 1/7 42\n");
	cvm_loadavg_tick(&l, 120.0, 0);         /* a quiet minute */
	cvm_render_loadavg(&l, 0, 7, 42, buf, sizeof(buf));
	ck_assert(strncmp(buf, "0.23 ", 5) == 0);
	ck_assert_uint_eq((unsigned)l.last, 120);
}
END_TEST

START_TEST(diskstats_from_io_stat)
{
	const char *host = "   8       0 sda 100 5 2000 40 50 6 800 30 0 70 70 0 0 0 0 0 0\n"
			   "   8      16 sdb 1 0 8 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
	const char *io = "8:0 rbytes=1048576 wbytes=4096 rios=12 wios=1 dbytes=0 dios=0\n";
	ck_assert_int_gt(cvm_render_diskstats(host, io, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "   8       0 sda 12 0 2048 0 1 0 8 0 0 0 0 0 0 0 0 0 0\n"
			      "   8      16 sdb 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
}
END_TEST

START_TEST(small_buffer_is_an_error_not_a_torn_file)
{
	struct cvm_cg_view v;
	load("", &v);
	ck_assert_int_eq(cvm_render_meminfo(host_meminfo, &v, buf, 64), -1);
}
END_TEST

/* The protocol side: requests as the kernel sends them, answers read back
 * from the other end of a socket pair (one message per answer). */
static uint64_t request(struct cvm_procfs_server *srv, int fd, int peer, uint32_t opcode,
			uint64_t unique, const void *arg, size_t len)
{
	char req[256], ans[256];
	struct cvm_fuse_in_header h = { (uint32_t)(sizeof(h) + len), opcode, unique, 2 /* meminfo */,
					0, 0, (uint32_t)getpid(), 0, 0 };
	struct cvm_fuse_out_header o;
	struct cvm_fuse_open_out open_out = { 0 };

	memcpy(req, &h, sizeof(h));
	memcpy(req + sizeof(h), arg, len);
	ck_assert_int_ge(cvm_procfs_handle(srv, fd, req, sizeof(h) + len), 0);
	ssize_t n = read(peer, ans, sizeof(ans));
	ck_assert_int_ge(n, (ssize_t)sizeof(o));
	memcpy(&o, ans, sizeof(o));
	ck_assert_int_eq(o.error, 0);
	ck_assert_uint_eq(o.unique, unique);
	if (opcode == CVM_FUSE_OPEN) {
		ck_assert_int_eq(n, (ssize_t)(sizeof(o) + sizeof(open_out)));
		memcpy(&open_out, ans + sizeof(o), sizeof(open_out));
	}
	return open_out.fh;
}

/* A RELEASE the kernel resends to a restarted server, for an open that the
 * dead server had closed but not answered, must not close the open that
 * took its place since. */
START_TEST(resent_release_closes_only_its_own_open)
{
	int sv[2];
	struct cvm_fuse_open_in open_in = { O_RDONLY, 0 };
	struct cvm_fuse_read_in release_in = { 0 };
	struct cvm_procfs p = { .fuse_fd = -1, .ctl_fd = -1 };
	struct cvm_procfs_server *srv = cvm_procfs_server_new(&p);

	ck_assert_ptr_nonnull(srv);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	uint64_t first = request(srv, sv[0], sv[1], CVM_FUSE_OPEN, 10, &open_in, sizeof(open_in));
	release_in.fh = first;
	request(srv, sv[0], sv[1], CVM_FUSE_RELEASE, 12, &release_in, sizeof(release_in));
	uint64_t second = request(srv, sv[0], sv[1], CVM_FUSE_OPEN, 14, &open_in, sizeof(open_in));
	/* the same slot, told apart */
	ck_assert_uint_eq(second & 0xffff, first & 0xffff);
	ck_assert_uint_ne(second, first);
	request(srv, sv[0], sv[1], CVM_FUSE_RELEASE, 12 | CVM_FUSE_UNIQUE_RESEND, &release_in,
		sizeof(release_in));
	/* still open: a third open takes another slot */
	uint64_t third = request(srv, sv[0], sv[1], CVM_FUSE_OPEN, 16, &open_in, sizeof(open_in));
	ck_assert_uint_ne(third & 0xffff, second & 0xffff);
	close(sv[0]);
	close(sv[1]);
	cvm_procfs_server_free(srv);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("procfs");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, cpuset_lists);
	tcase_add_test(tc, meminfo_with_limit);
	tcase_add_test(tc, meminfo_without_limit_is_the_hosts_total);
	tcase_add_test(tc, nested_group_sees_the_tighter_limit);
	tcase_add_test(tc, cpus_from_cpuset_and_quota);
	tcase_add_test(tc, stat_lines_follow_the_cpus);
	tcase_add_test(tc, swaps_and_uptime);
	tcase_add_test(tc, loadavg_decays_like_the_kernel);
	tcase_add_test(tc, diskstats_from_io_stat);
	tcase_add_test(tc, small_buffer_is_an_error_not_a_torn_file);
	tcase_add_test(tc, resent_release_closes_only_its_own_open);
	suite_add_tcase(s, tc);
	return tmptree_run(s);
}
