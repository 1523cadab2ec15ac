/* The workspace's plan (supervisor/plan.c), the one value cvm run and
 * cvm check both read: which part fails first and how cvm run says it, the
 * image opened once and handed on as that fd, the init kind, the network's
 * part of the spec, the limits. No privileges needed. */
#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/exitcode.h"
#include "supervisor/plan.h"
#include "tmptree.h"

static struct cvm_config cfg;
static struct cvm_plan plan;

static void set(const char *section, const char *key, const char *value)
{
	struct cvm_error err = { 0 };
	ck_assert_msg(cvm_config_set(&cfg, section, key, value, "test", &err) == 0, "%s", err.msg);
}

/* A config that does not depend on this host's GPUs or resolv.conf. */
static void config(const char *rootfs)
{
	cvm_config_init(&cfg);
	set("workspace", "rootfs", rootfs);
	set("workspace", "state", "/tmp/cvm-plan-unit-state");
	set("workspace", "network", "host");
	set("gpu", "enable", "no");
}

static void done(void)
{
	cvm_plan_free(&plan);
	cvm_plan_free(&plan);   /* idempotent: teardown may come after a failed phase */
	ck_assert_int_eq(plan.rootfs.fd, -1);
	ck_assert_ptr_null(plan.in.envp);
	cvm_config_free(&cfg);
}

START_TEST(missing_rootfs_fails_first)
{
	struct cvm_error err = { 0 };

	config("/cvm-plan-unit-no-such-image");
	ck_assert_int_eq(cvm_plan_make(&cfg, NULL, NULL, &plan, &err), CVM_EXIT_USAGE);
	ck_assert_int_eq(plan.rootfs.fd, -1);
	/* cvm check shows the part as it is; cvm run adds how to fix it */
	ck_assert_str_eq(plan.why[CVM_PLAN_ROOTFS].msg,
			 "rootfs /cvm-plan-unit-no-such-image: No such file or directory");
	ck_assert_str_eq(err.msg, "rootfs /cvm-plan-unit-no-such-image: No such file or directory; "
			 "point --rootfs ([workspace] rootfs) at an unpacked image directory");
	/* nothing to look in for the init: only the rootfs part says why */
	ck_assert_str_eq(plan.why[CVM_PLAN_INIT].msg, "");
	done();
}
END_TEST

START_TEST(image_without_init_or_shell)
{
	struct cvm_error err = { 0 };
	char root[64];

	tmptree_make(root, "cvm-plan-unit");
	tmptree_put(root, "etc/os-release", "ID=test\n");
	config(root);
	ck_assert_int_eq(cvm_plan_make(&cfg, NULL, NULL, &plan, &err), CVM_EXIT_USAGE);
	ck_assert_str_eq(plan.why[CVM_PLAN_ROOTFS].msg, "");
	ck_assert_ptr_nonnull(strstr(plan.why[CVM_PLAN_INIT].msg, "has neither /sbin/init nor /bin/sh"));
	ck_assert_str_eq(err.msg, plan.why[CVM_PLAN_INIT].msg);
	done();
	tmptree_remove(root);
}
END_TEST

/* The image is opened once: the spec carries that fd, and the init probe
 * looked through it (systemd as /sbin/init stops on SIGRTMIN+3). */
START_TEST(image_opened_once_systemd_init)
{
	struct cvm_error err = { 0 };
	struct stat a, b;
	char root[64], init[128];

	tmptree_make(root, "cvm-plan-unit");
	tmptree_put(root, "lib/systemd/systemd", "#!/bin/sh\n");
	snprintf(init, sizeof(init), "%s/lib/systemd/systemd", root);
	ck_assert_int_eq(chmod(init, 0755), 0);
	tmptree_put(root, "sbin/.keep", "");
	snprintf(init, sizeof(init), "%s/sbin/init", root);
	ck_assert_int_eq(symlink("../lib/systemd/systemd", init), 0);
	config(root);
	cvm_plan_make(&cfg, NULL, NULL, &plan, &err);         /* the id range is this host's */
	ck_assert_str_eq(plan.why[CVM_PLAN_ROOTFS].msg, "");
	ck_assert_str_eq(plan.why[CVM_PLAN_INIT].msg, "");
	ck_assert_int_ge(plan.rootfs.fd, 0);
	ck_assert_int_eq(plan.spec.rootfs_fd, plan.rootfs.fd);
	ck_assert_int_eq(fstat(plan.rootfs.fd, &a), 0);
	ck_assert_int_eq(stat(root, &b), 0);
	ck_assert(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	ck_assert(plan.systemd);
	ck_assert_int_eq(plan.stop_signal, SIGRTMIN + 3);
	ck_assert_ptr_null(plan.spec.extras);           /* [gpu] enable = no */
	done();

	/* the same image with /sbin/init a plain program: SIGTERM */
	ck_assert_int_eq(unlink(init), 0);
	tmptree_put(root, "sbin/init", "#!/bin/sh\n");
	ck_assert_int_eq(chmod(init, 0755), 0);
	config(root);
	cvm_plan_make(&cfg, NULL, NULL, &plan, &err);
	ck_assert(!plan.systemd);
	ck_assert_int_eq(plan.stop_signal, SIGTERM);
	done();
	tmptree_remove(root);
}
END_TEST

/* The private network is a part of the spec: its own namespace and the
 * two files written into the rootfs; host: neither. */
START_TEST(network_in_the_spec)
{
	struct cvm_error err = { 0 };
	char root[64];

	tmptree_make(root, "cvm-plan-unit");
	config(root);
	cvm_plan_make(&cfg, NULL, NULL, &plan, &err);
	ck_assert(!plan.spec.netns);
	ck_assert_uint_eq(plan.spec.n_writes, 0);
	done();

	config(root);
	set("workspace", "network", "private");
	set("workspace", "network_cidr", "10.99.0.0/24");
	set("workspace", "hostname", "plantest");
	cvm_plan_make(&cfg, NULL, NULL, &plan, &err);
	ck_assert_str_eq(plan.why[CVM_PLAN_NET].msg, "");
	ck_assert(plan.spec.netns);
	ck_assert_uint_eq(plan.spec.n_writes, 2);
	ck_assert_str_eq(plan.spec.writes[0].path, "/etc/resolv.conf");
	ck_assert_str_eq(plan.spec.writes[1].path, "/etc/hosts");
	ck_assert_ptr_nonnull(strstr(plan.spec.writes[1].content, "10.99.0.2"));
	ck_assert_ptr_nonnull(strstr(plan.spec.writes[1].content, "plantest"));
	ck_assert_uint_eq(plan.net.addr.outer_ip, (10u << 24) | (99u << 16) | 1u);
	done();
	tmptree_remove(root);
}
END_TEST

START_TEST(limits_in_the_plan)
{
	struct cvm_error err = { 0 };
	bool found = false;
	char root[64];

	tmptree_make(root, "cvm-plan-unit");
	config(root);
	set("resources", "memory", "64M");
	set("resources", "pids", "321");
	cvm_plan_make(&cfg, NULL, NULL, &plan, &err);
	for (size_t i = 0; i < plan.n_limits; i++)
		if (!strcmp(plan.limits[i].file, "memory.max")) {
			ck_assert_str_eq(plan.limits[i].value, "67108864");
			ck_assert(plan.limits[i].explicit_);
			found = true;
		}
	ck_assert(found);
	found = false;
	for (size_t i = 0; i < plan.n_limits; i++)
		found |= !strcmp(plan.limits[i].file, "pids.max") &&
			 !strcmp(plan.limits[i].value, "321");
	ck_assert(found);
	done();
	tmptree_remove(root);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, missing_rootfs_fails_first);
	tcase_add_test(tc, image_without_init_or_shell);
	tcase_add_test(tc, image_opened_once_systemd_init);
	tcase_add_test(tc, network_in_the_spec);
	tcase_add_test(tc, limits_in_the_plan);
	suite_add_tcase(s, tc);
	return tmptree_run(s);
}
