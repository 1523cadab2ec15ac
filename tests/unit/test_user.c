/* Users and the environment of the workspace: /etc/passwd and /etc/group
 * from an untrusted image, and the env layering. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/user.h"
#include "tmptree.h"
#include "supervisor/env.h"

static char root[64];
static int root_fd = -1;
static struct cvm_error err;
static struct cvm_user u;

static void put(const char *rel, const char *text)
{
	tmptree_put(root, rel, text);
}

static void setup(void)
{
	tmptree_make(root, "cvm-user");
	put("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
			  "broken line without fields\n"
			  "coder:x:1000:1000:Coder:/home/coder:/bin/bash\n"
			  "neg:x:-1:5::/:/bin/sh\n"
			  "nohome:x:1001:1001:::\n");
	put("etc/group", "root:x:0:\ndocker:x:999:coder,other\nwheel:x:10:root,coder\n"
			 "coder:x:1000:\n");
	root_fd = open(root, O_PATH | O_DIRECTORY);
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	close(root_fd);
	tmptree_remove(root);
}

static bool in_groups(gid_t g)
{
	for (size_t i = 0; i < u.n_groups; i++)
		if (u.groups[i] == g)
			return true;
	return false;
}

START_TEST(by_name)
{
	ck_assert_int_eq(cvm_user_resolve(root_fd, "coder", &u, &err), 0);
	ck_assert_int_eq(u.uid, 1000);
	ck_assert_int_eq(u.gid, 1000);
	ck_assert_str_eq(u.home, "/home/coder");
	ck_assert_str_eq(u.shell, "/bin/bash");
	ck_assert(in_groups(999) && in_groups(10) && in_groups(1000));
	ck_assert_uint_eq(u.n_groups, 3);
}
END_TEST

START_TEST(numeric_and_pairs)
{
	ck_assert_int_eq(cvm_user_resolve(root_fd, "4242", &u, &err), 0);
	ck_assert_int_eq(u.uid, 4242);
	ck_assert_int_eq(u.gid, 0);
	ck_assert_str_eq(u.home, "/");
	ck_assert_int_eq(cvm_user_resolve(root_fd, "1000:5", &u, &err), 0);
	ck_assert_str_eq(u.name, "coder");
	ck_assert_int_eq(u.gid, 5);
	ck_assert_int_eq(cvm_user_resolve(root_fd, "coder:docker", &u, &err), 0);
	ck_assert_int_eq(u.gid, 999);
	ck_assert_int_eq(cvm_user_resolve(root_fd, "nohome", &u, &err), 0);
	ck_assert_str_eq(u.home, "/");
	ck_assert_str_eq(u.shell, "/bin/sh");
}
END_TEST

START_TEST(bad_input)
{
	ck_assert_int_eq(cvm_user_resolve(root_fd, "nosuch", &u, &err), -1);
	ck_assert_str_eq(err.msg, "user nosuch: not in /etc/passwd of the workspace");
	ck_assert_int_eq(cvm_user_resolve(root_fd, "coder:nogroup", &u, &err), -1);
	ck_assert_str_eq(err.msg, "group nogroup: not in /etc/group of the workspace");
	ck_assert_int_eq(cvm_user_resolve(root_fd, "neg", &u, &err), -1);
	ck_assert_int_eq(cvm_user_resolve(root_fd, "", &u, &err), -1);
}
END_TEST

START_TEST(overlong_lines_are_skipped)
{
	char line[4096 + 64];
	/* 4095 bytes fill the reader's buffer exactly: were the rest of the
	 * line read as a line of its own, "evil" would be an entry. */
	memset(line, 'a', 4095);
	strcpy(line + 4095, "evil:x:0:0::/:/bin/sh\nok:x:7:7::/:/bin/sh\n");
	put("etc/passwd", line);
	ck_assert_int_eq(cvm_user_resolve(root_fd, "evil", &u, &err), -1);
	ck_assert_int_eq(cvm_user_resolve(root_fd, "ok", &u, &err), 0);
	ck_assert_int_eq(u.uid, 7);
}
END_TEST

START_TEST(passwd_symlinked_outside_stays_inside)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/etc/passwd", root);
	unlink(p);
	/* The host has a root entry in /etc/passwd; the image must not. */
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
	ck_assert_int_eq(cvm_user_resolve(root_fd, "root", &u, &err), -1);
	ck_assert_msg(strstr(err.msg, "has no /etc/passwd"), "%s", err.msg);
}
END_TEST

START_TEST(env_layers)
{
	struct cvm_config c;
	char *outer[] = { "FOO_A=1", "FOO_B=2", "BAR=3", "PATH=/outer", NULL };
	cvm_config_init(&c);
	ck_assert_int_eq(cvm_config_set(&c, "workspace", "env_pass", "FOO_*, PATH", "t", &err), 0);
	ck_assert_int_eq(cvm_config_set(&c, "workspace", "env", "FOO_B=mine", "t", &err), 0);
	char **env = cvm_env_build(&c, NULL, outer);
	ck_assert_ptr_nonnull(env);
	ck_assert_str_eq(cvm_env_get(env, "FOO_A"), "1");
	ck_assert_str_eq(cvm_env_get(env, "FOO_B"), "mine");
	ck_assert_ptr_null(cvm_env_get(env, "BAR"));
	ck_assert_str_eq(cvm_env_get(env, "PATH"), "/outer");
	ck_assert_str_eq(cvm_env_get(env, "HOSTNAME"), "cvm");
	ck_assert_str_eq(cvm_env_get(env, "container"), "cvm");
	cvm_env_free(env);
	cvm_config_free(&c);
	cvm_config_init(&c);
	env = cvm_env_build(&c, NULL, outer);
	ck_assert_str_eq(cvm_env_get(env, "PATH"), CVM_DEFAULT_PATH);
	cvm_env_free(env);
	cvm_config_free(&c);
}
END_TEST

/* CODER_INNER_ENVS=CODER_* passes envbox's variables, but not the registry
 * credential: that takes its full name. */
START_TEST(env_pull_secret)
{
	struct cvm_config c;
	char *outer[] = { "CODER_AGENT_URL=https://c", "CODER_IMAGE_PULL_SECRET={}", NULL };
	char **env;

	cvm_config_init(&c);
	ck_assert_int_eq(cvm_config_set(&c, "workspace", "env_pass", "CODER_*", "t", &err), 0);
	env = cvm_env_build(&c, NULL, outer);
	ck_assert_str_eq(cvm_env_get(env, "CODER_AGENT_URL"), "https://c");
	ck_assert_ptr_null(cvm_env_get(env, "CODER_IMAGE_PULL_SECRET"));
	cvm_env_free(env);
	ck_assert_int_eq(cvm_config_set(&c, "workspace", "env_pass", "CODER_IMAGE_PULL_SECRET",
					"t", &err), 0);
	env = cvm_env_build(&c, NULL, outer);
	ck_assert_str_eq(cvm_env_get(env, "CODER_IMAGE_PULL_SECRET"), "{}");
	cvm_env_free(env);
	cvm_config_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("user");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, by_name);
	tcase_add_test(tc, numeric_and_pairs);
	tcase_add_test(tc, env_pull_secret);
	tcase_add_test(tc, bad_input);
	tcase_add_test(tc, overlong_lines_are_skipped);
	tcase_add_test(tc, passwd_symlinked_outside_stays_inside);
	tcase_add_test(tc, env_layers);
	suite_add_tcase(s, tc);
	return tmptree_run(s);
}
