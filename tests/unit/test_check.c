/* cvm check's pure logic: kernel versions and what they lack, finding the
 * cgroup v1 hierarchy of a controller in mountinfo, what the host's cgroups
 * are (and the words cvm run and cvm check use when it cannot run there),
 * the nearest existing ancestor of a state dir. The probes themselves: tests/integration/test_check.sh. */
#include <check.h>
#include <string.h>

#include "runtime/cgroup.h"
#include "runtime/hostcheck.h"
#include "supervisor/check.h"
#include "tmptree.h"

static struct cvm_kver parse_ok(const char *release)
{
	struct cvm_kver v;
	ck_assert_msg(cvm_kver_parse(release, &v) == 0, "parse '%s'", release);
	return v;
}

START_TEST(kver_parse)
{
	struct cvm_kver v = parse_ok("6.18.44-fc-v657");
	ck_assert_uint_eq(v.major, 6);
	ck_assert_uint_eq(v.minor, 18);
	ck_assert_uint_eq(v.patch, 44);
	v = parse_ok("5.15.0-91-generic");
	ck_assert_uint_eq(v.major, 5);
	ck_assert_uint_eq(v.minor, 15);
	ck_assert_uint_eq(v.patch, 0);
	v = parse_ok("6.9");
	ck_assert_uint_eq(v.minor, 9);
	ck_assert_uint_eq(v.patch, 0);
	v = parse_ok("6.10-rc1");
	ck_assert_uint_eq(v.minor, 10);
	ck_assert_uint_eq(v.patch, 0);
	v = parse_ok("4.19.0+");
	ck_assert_uint_eq(v.major, 4);

	const char *bad[] = { "", "6", "6.", "x.1", "6.x", ".9", "-6.9", "99999999999999999999.1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(cvm_kver_parse(bad[i], &v) < 0, "'%s' parsed", bad[i]);
}
END_TEST

START_TEST(kver_compare)
{
	struct cvm_kver v = { 6, 3, 0 };
	ck_assert(cvm_kver_at_least(&v, 6, 3));
	ck_assert(cvm_kver_at_least(&v, 5, 19));
	ck_assert(cvm_kver_at_least(&v, 5, 99));
	ck_assert(!cvm_kver_at_least(&v, 6, 4));
	ck_assert(!cvm_kver_at_least(&v, 7, 0));
	v = (struct cvm_kver){ 6, 10, 1 };
	ck_assert(cvm_kver_at_least(&v, 6, 9));     /* 6.10 > 6.9: numbers, not text */
}
END_TEST

static enum cvm_check_status kernel(const char *release, char *why, const char **fix)
{
	return cvm_check_kernel(release, why, 512, fix);
}

START_TEST(kernel_verdicts)
{
	char why[512];
	const char *fix;

	ck_assert_int_eq(kernel("6.18.44-fc-v657", why, &fix), CVM_CHECK_OK);
	ck_assert_ptr_null(fix);
	ck_assert_int_eq(kernel("6.9.0", why, &fix), CVM_CHECK_OK);

	/* 6.3 .. 6.8: only the /proc server's resend is missing */
	ck_assert_int_eq(kernel("6.8.12", why, &fix), CVM_CHECK_WARN);
	ck_assert_ptr_nonnull(strstr(why, "FUSE_NOTIFY_RESEND"));
	ck_assert_ptr_null(strstr(why, "tmpfs"));
	ck_assert_ptr_nonnull(fix);

	/* 5.19 .. 6.2: no idmapped tmpfs either, still only a warning */
	ck_assert_int_eq(kernel("6.1.0-13-amd64", why, &fix), CVM_CHECK_WARN);
	ck_assert_ptr_nonnull(strstr(why, "idmapped tmpfs"));
	ck_assert_ptr_nonnull(strstr(why, "FUSE_NOTIFY_RESEND"));
	ck_assert_ptr_nonnull(strstr(fix, "6.3"));

	/* before 5.19 the overlay cannot use idmapped layers: cvm cannot run */
	ck_assert_int_eq(kernel("5.15.0-91-generic", why, &fix), CVM_CHECK_MISSING);
	ck_assert_ptr_nonnull(strstr(why, "overlay over idmapped layers"));
	ck_assert_ptr_null(strstr(why, "mount_setattr"));
	ck_assert_ptr_nonnull(strstr(fix, "5.19"));
	ck_assert_int_eq(kernel("5.4.0", why, &fix), CVM_CHECK_MISSING);
	ck_assert_ptr_nonnull(strstr(why, "idmapped mounts (mount_setattr)"));

	ck_assert_int_eq(kernel("not-a-version", why, &fix), CVM_CHECK_WARN);
	ck_assert_ptr_nonnull(strstr(why, "not-a-version"));
}
END_TEST

/* This machine's hybrid layout, and the combined cpu,cpuacct of systemd's. */
static const char hybrid_mountinfo[] =
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n";

static const char unified_mountinfo[] =
	"25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
	"rw,nsdelegate,memory_recursiveprot\n";

START_TEST(v1_mounts)
{
	char root[64], path[128], out[256];

	tmptree_make(root, "cvm-check-unit");
	tmptree_put(root, "hybrid", hybrid_mountinfo);
	tmptree_put(root, "unified", unified_mountinfo);
	snprintf(path, sizeof(path), "%s/hybrid", root);
	ck_assert_int_eq(cvm_hc_v1_mount(path, "cpu", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/sys/fs/cgroup/cpu,cpuacct");
	ck_assert_int_eq(cvm_hc_v1_mount(path, "cpuset", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/sys/fs/cgroup/cpuset");
	ck_assert_int_eq(cvm_hc_v1_mount(path, "io", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/sys/fs/cgroup/blkio");
	ck_assert_int_eq(cvm_hc_v1_mount(path, "memory", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/sys/fs/cgroup/memory");
	ck_assert_int_eq(cvm_hc_v1_mount(path, "pids", out, sizeof(out)), -1);
	ck_assert_int_eq(cvm_hc_v1_mount(path, NULL, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/sys/fs/cgroup/cpu,cpuacct");

	snprintf(path, sizeof(path), "%s/unified", root);
	ck_assert_int_eq(cvm_hc_v1_mount(path, "memory", out, sizeof(out)), -1);
	ck_assert_int_eq(cvm_hc_v1_mount(path, NULL, out, sizeof(out)), -1);
	snprintf(path, sizeof(path), "%s/none", root);
	ck_assert_int_eq(cvm_hc_v1_mount(path, NULL, out, sizeof(out)), -1);
	tmptree_remove(root);
}
END_TEST

/* A Docker container on a cgroup v1 host (Amazon Linux 2, Docker Engine
 * with cgroup v1): v1 hierarchies only, no cgroup2 mount. */
START_TEST(host_v1_only)
{
	char fx[512], mi[600], cg[600], why[1024];
	struct cvm_cg_host h;

	snprintf(fx, sizeof(fx), "%s/tests/fixtures/cgroup", getenv("CVM_SOURCE_ROOT"));
	snprintf(mi, sizeof(mi), "%s/docker-v1.mountinfo", fx);
	snprintf(cg, sizeof(cg), "%s/docker-v1.cgroup", fx);
	cvm_cgroup_host(mi, cg, false, &h);
	ck_assert_int_eq(h.layout, CVM_CG_V1_ONLY);
	ck_assert_str_eq(h.mount, "");
	ck_assert(!h.self_found);
	ck_assert_str_eq(h.v1, "cpuset blkio pids memory cpu,cpuacct name=systemd");
	ck_assert_str_eq(h.v1_mount, "/sys/fs/cgroup/systemd");
	cvm_cgroup_host_why(&h, why, sizeof(why));
	ck_assert_msg(strstr(why, "cgroup v1 only here: v1 hierarchies (cpuset blkio pids memory "
			  "cpu,cpuacct name=systemd; one at /sys/fs/cgroup/systemd) and no cgroup2 "
			  "mount"), "%s", why);
	/* what cvm run says comes from the same words */
	ck_assert_ptr_nonnull(strstr(CVM_CGROUP_FIX_V2, "systemd.unified_cgroup_hierarchy=1"));
	ck_assert_ptr_nonnull(strstr(CVM_CGROUP_FIX_V2, "--cgroupns=private"));
	ck_assert_ptr_nonnull(strstr(CVM_CGROUP_NEEDS, "mounted at /sys/fs/cgroup and containing "
				     "cvm's own cgroup"));
}
END_TEST

/* mountinfo with cgroup2 at ROOT/cg, plus a v1 line when @hybrid. */
static void put_host(const char *root, bool hybrid, const char *self)
{
	char mi[1024], cg[512];

	snprintf(mi, sizeof(mi), "%s"
		 "40 31 0:37 / %s/cg rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n",
		 hybrid ? "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
		 : "", root);
	snprintf(cg, sizeof(cg), "%s0::%s\n", hybrid ? "4:memory:/pod1\n" : "", self);
	tmptree_put(root, "mountinfo", mi);
	tmptree_put(root, "cgroup", cg);
}

static void host_at(const char *root, struct cvm_cg_host *h)
{
	char mi[128], cg[128];

	snprintf(mi, sizeof(mi), "%s/mountinfo", root);
	snprintf(cg, sizeof(cg), "%s/cgroup", root);
	cvm_cgroup_host(mi, cg, false, h);
}

START_TEST(host_v2_and_hybrid)
{
	char root[64], mnt[128], why[1024];
	struct cvm_cg_host h;

	tmptree_make(root, "cvm-check-unit");
	tmptree_put(root, "cg/a/cgroup.procs", "");
	snprintf(mnt, sizeof(mnt), "%s/cg", root);

	put_host(root, false, "/a");
	host_at(root, &h);
	ck_assert_int_eq(h.layout, CVM_CG_UNIFIED);
	ck_assert_str_eq(h.mount, mnt);
	ck_assert_str_eq(h.self, "/a");
	ck_assert(h.self_found);
	cvm_cgroup_host_why(&h, why, sizeof(why));
	ck_assert_msg(!strncmp(why, "unified: cgroup v2 only", 23), "%s", why);

	put_host(root, true, "/a");
	host_at(root, &h);
	ck_assert_int_eq(h.layout, CVM_CG_HYBRID);
	ck_assert(h.self_found);
	ck_assert_str_eq(h.v1, "memory");
	cvm_cgroup_host_why(&h, why, sizeof(why));
	ck_assert_msg(!strncmp(why, "hybrid: cgroup v1 hierarchies (memory) next to cgroup2", 54),
		      "%s", why);
	tmptree_remove(root);
}
END_TEST

/* cgroup2 at /sys/fs/cgroup, but a bind of another group's subtree: the
 * path of /proc/self/cgroup is not under it. */
START_TEST(host_foreign_subtree)
{
	char root[64], want[512], why[1024];
	struct cvm_cg_host h;

	tmptree_make(root, "cvm-check-unit");
	tmptree_put(root, "cg/b/cgroup.procs", "");
	put_host(root, false, "/a");
	host_at(root, &h);
	ck_assert_int_eq(h.layout, CVM_CG_UNIFIED);
	ck_assert(h.has_self);
	ck_assert(!h.self_found);
	cvm_cgroup_host_why(&h, why, sizeof(why));
	snprintf(want, sizeof(want), "the cgroup2 mount at %s/cg does not contain cvm's own cgroup "
		 "/a (the 0:: line of /proc/self/cgroup; %s/cg/a is missing): a bind of another "
		 "group's subtree", root, root);
	ck_assert_str_eq(why, want);

	/* outside the cgroup namespace's root the path climbs: never ours,
	 * even where the climb happens to resolve */
	put_host(root, false, "/../cg/b");
	host_at(root, &h);
	ck_assert(!h.self_found);

	/* no 0:: line at all */
	tmptree_put(root, "cgroup", "4:memory:/\n");
	host_at(root, &h);
	ck_assert(!h.has_self);
	ck_assert(!h.self_found);
	cvm_cgroup_host_why(&h, why, sizeof(why));
	ck_assert_ptr_nonnull(strstr(why, "no 0:: line"));
	tmptree_remove(root);
}
END_TEST

START_TEST(host_none)
{
	char root[64], why[1024];
	struct cvm_cg_host h;

	tmptree_make(root, "cvm-check-unit");
	tmptree_put(root, "mountinfo", "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n");
	tmptree_put(root, "cgroup", "0::/\n");
	host_at(root, &h);
	ck_assert_int_eq(h.layout, CVM_CG_NONE);
	ck_assert(!h.self_found);
	cvm_cgroup_host_why(&h, why, sizeof(why));
	ck_assert_msg(!strncmp(why, "no cgroup filesystem here", 25), "%s", why);
	tmptree_remove(root);
}
END_TEST

START_TEST(existing_ancestor)
{
	char root[64], path[256], out[256];

	tmptree_make(root, "cvm-check-unit");
	tmptree_put(root, "a/b/file", "x");
	snprintf(path, sizeof(path), "%s/a/b", root);
	ck_assert_int_eq(cvm_hc_existing(path, out, sizeof(out)), 0);
	ck_assert_str_eq(out, path);
	snprintf(path, sizeof(path), "%s/a/new/deeper", root);
	ck_assert_int_eq(cvm_hc_existing(path, out, sizeof(out)), 0);
	snprintf(path, sizeof(path), "%s/a", root);
	ck_assert_str_eq(out, path);
	ck_assert_int_eq(cvm_hc_existing("/cvm-check-no-such-dir/x", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/");
	tmptree_remove(root);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("check");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, kver_parse);
	tcase_add_test(tc, kver_compare);
	tcase_add_test(tc, kernel_verdicts);
	tcase_add_test(tc, v1_mounts);
	tcase_add_test(tc, host_v1_only);
	tcase_add_test(tc, host_v2_and_hybrid);
	tcase_add_test(tc, host_foreign_subtree);
	tcase_add_test(tc, host_none);
	tcase_add_test(tc, existing_ancestor);
	suite_add_tcase(s, tc);
	return tmptree_run(s);
}
