/* image/: reference parsing, docker config credentials, WWW-Authenticate
 * challenges, token answers, manifests and the platform choice. */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/auth.h"
#include "image/digest.h"
#include "image/image.h"
#include "image/manifest.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void ref_is(const char *in, const char *def, const char *reg, const char *repo,
		   const char *tag, const char *digest)
{
	struct cvm_image_ref r;
	struct cvm_error err = { 0 };

	ck_assert_msg(cvm_image_ref_parse(in, def, &r, &err) == 0, "%s: %s", in, err.msg);
	ck_assert_str_eq(r.registry, reg);
	ck_assert_str_eq(r.repository, repo);
	if (tag)
		ck_assert_str_eq(r.tag, tag);
	else
		ck_assert_ptr_null(r.tag);
	if (digest)
		ck_assert_str_eq(r.digest, digest);
	else
		ck_assert_ptr_null(r.digest);
	cvm_image_ref_free(&r);
}

static void ref_bad(const char *in, const char *why)
{
	struct cvm_image_ref r;
	struct cvm_error err = { 0 };

	ck_assert_msg(cvm_image_ref_parse(in, NULL, &r, &err) < 0, "%s parsed", in);
	ck_assert_msg(strstr(err.msg, why), "%s: '%s' lacks '%s'", in, err.msg, why);
	ck_assert_ptr_null(r.registry);
}

START_TEST(ref_docker_hub_names)
{
	ref_is("ubuntu", NULL, "docker.io", "library/ubuntu", "latest", NULL);
	ref_is("ubuntu:24.04", NULL, "docker.io", "library/ubuntu", "24.04", NULL);
	ref_is("codercom/enterprise-base:ubuntu", NULL, "docker.io", "codercom/enterprise-base",
	       "ubuntu", NULL);
	/* Coder's template writes index.docker.io/...; registry-1 is Hub too */
	ref_is("index.docker.io/codercom/enterprise-base:ubuntu", NULL, "docker.io",
	       "codercom/enterprise-base", "ubuntu", NULL);
	ref_is("registry-1.docker.io/library/debian", NULL, "docker.io", "library/debian", "latest",
	       NULL);
	ref_is("docker.io/alpine", NULL, "docker.io", "library/alpine", "latest", NULL);
	ref_is("index.docker.io/alpine:3", NULL, "docker.io", "library/alpine", "3", NULL);
}
END_TEST

START_TEST(ref_registries)
{
	ref_is("localhost:5000/foo/bar:v1", NULL, "localhost:5000", "foo/bar", "v1", NULL);
	ref_is("localhost/foo", NULL, "localhost", "foo", "latest", NULL);
	ref_is("127.0.0.1:5000/busybox", NULL, "127.0.0.1:5000", "busybox", "latest", NULL);
	ref_is("ghcr.io/coder/envbox:latest", NULL, "ghcr.io", "coder/envbox", "latest", NULL);
	ref_is("[::1]:5000/x", NULL, "[::1]:5000", "x", "latest", NULL);
	/* an upper-case first part is a host, as Docker has it */
	ref_is("Myhost/foo", NULL, "Myhost", "foo", "latest", NULL);
	/* no dot, colon or localhost: a Hub user, not a host */
	ref_is("myuser/foo", NULL, "docker.io", "myuser/foo", "latest", NULL);
	/* the configured default registry takes the short names, no library/ */
	ref_is("foo", "registry.local:443", "registry.local:443", "foo", "latest", NULL);
	ref_is("a/b", "registry.local", "registry.local", "a/b", "latest", NULL);
	ref_is("foo", "index.docker.io", "docker.io", "library/foo", "latest", NULL);
	/* a name ending in a port-like tag */
	ref_is("localhost:5000", NULL, "docker.io", "library/localhost", "5000", NULL);
}
END_TEST

START_TEST(ref_tags_and_digests)
{
	ref_is("busybox@sha256:" D64, NULL, "docker.io", "library/busybox", NULL, "sha256:" D64);
	ref_is("busybox:1.36@sha256:" D64, NULL, "docker.io", "library/busybox", "1.36",
	       "sha256:" D64);
	ref_is("h:5000/a/b:t_1.x-y@sha256:" D64, NULL, "h:5000", "a/b", "t_1.x-y", "sha256:" D64);
	ref_is("a__b/c.d-e---f", NULL, "docker.io", "a__b/c.d-e---f", "latest", NULL);
}
END_TEST

START_TEST(ref_errors_say_what)
{
	ref_bad("", "empty");
	ref_bad("/srv/rootfs", "is a path");
	ref_bad("Ubuntu", "lowercase");
	ref_bad("docker.io/Library/ubuntu", "lowercase");
	ref_bad("ubuntu:", "tag '' is not valid");
	ref_bad("ubuntu:.x", "tag '.x' is not valid");
	ref_bad("ubuntu:-x", "tag '-x' is not valid");
	ref_bad("ubuntu:a/b", "not a valid registry"); /* a ':' makes the first part a host */
	ref_bad("ubuntu@sha256:abc", "64 hex digits");
	ref_bad("ubuntu@md5:" D64, "only sha256");
	ref_bad("ubuntu@sha256:" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"lower-case hex");
	ref_bad("ubuntu@" D64, "ALGORITHM:HEX");
	ref_bad("foo//bar", "empty path component");
	ref_bad("foo/", "empty path component");
	ref_bad("-foo", "start and end");
	ref_bad("foo-", "end with");
	ref_bad("foo..bar", "start and end");
	ref_bad("foo bar", "blank");
	ref_bad("bad_host.io:x/foo", "not a valid registry");
	ref_bad("-bad.io/foo", "not a valid registry");
	ref_bad("h.io:/foo", "not a valid registry");
}
END_TEST

START_TEST(ref_string_round_trip)
{
	struct cvm_image_ref r;
	struct cvm_error err;
	char *s;

	ck_assert_int_eq(cvm_image_ref_parse("alpine:3@sha256:" D64, NULL, &r, &err), 0);
	s = cvm_image_ref_string(&r);
	ck_assert_str_eq(s, "docker.io/library/alpine:3@sha256:" D64);
	free(s);
	cvm_image_ref_free(&r);
	ck_assert(cvm_image_ref_is_path("/x"));
	ck_assert(!cvm_image_ref_is_path("x/y"));
	ck_assert(!cvm_image_ref_is_path(NULL));
}
END_TEST

/* --- credentials ---------------------------------------------------- */

static char *token(const char *s)
{
	return cvm_auth_token_parse(s, strlen(s));
}

static char *creds(const char *json, const char *reg)
{
	struct cvm_error err = { 0 };
	char *up = NULL;
	int rc = cvm_auth_lookup(json, "test", reg, &up, &err);

	ck_assert_msg(rc >= 0, "%s", err.msg);
	ck_assert_int_eq(rc == 1, up != NULL);
	return up;
}

START_TEST(auth_config_matches_hosts)
{
	/* "alice:s3cret" and "bob:pw" in base64 */
	const char *j = "{\"auths\":{"
			"\"https://index.docker.io/v1/\":{\"auth\":\"YWxpY2U6czNjcmV0\"},"
			"\"registry.example.com:5000\":{\"username\":\"bob\",\"password\":\"pw\"},"
			"\"http://other.io/v2/\":{\"auth\":\"Ym9iOnB3\"}}}";
	char *up;

	ck_assert_str_eq(up = creds(j, "docker.io"), "alice:s3cret");
	cvm_auth_wipe(up);
	ck_assert_str_eq(up = creds(j, "registry-1.docker.io"), "alice:s3cret");
	cvm_auth_wipe(up);
	ck_assert_str_eq(up = creds(j, "registry.example.com:5000"), "bob:pw");
	cvm_auth_wipe(up);
	ck_assert_str_eq(up = creds(j, "other.io"), "bob:pw");
	cvm_auth_wipe(up);
	/* host:port is part of the key: no port, no match; nor a prefix */
	ck_assert_ptr_null(creds(j, "registry.example.com"));
	ck_assert_ptr_null(creds(j, "other.iox"));
	ck_assert_ptr_null(creds("{\"auths\":{}}", "docker.io"));
	ck_assert_ptr_null(creds("{}", "docker.io"));
	/* a "docker.io" key is Hub, as "index.docker.io" is */
	ck_assert_str_eq(up = creds("{\"auths\":{\"docker.io\":{\"auth\":\"Ym9iOnB3\"}}}",
				    "docker.io"), "bob:pw");
	cvm_auth_wipe(up);
	/* a password with ':' in it */
	ck_assert_str_eq(up = creds("{\"auths\":{\"h\":{\"auth\":\"dTpwOnc6eA==\"}}}", "h"), "u:p:w:x");
	cvm_auth_wipe(up);
}
END_TEST

START_TEST(auth_config_errors_hide_secrets)
{
	struct cvm_error err = { 0 };
	char *up = NULL;

	ck_assert_int_lt(cvm_auth_lookup("{\"auths\": {\"h\": {\"auth\": \"c2VjcmV0cGFzcw\" ", "the secret",
					 "h", &up, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "not JSON"));
	ck_assert_ptr_null(strstr(err.msg, "c2VjcmV0cGFzcw"));
	/* base64 that is not USER:PASSWORD ("secretpass") */
	ck_assert_int_lt(cvm_auth_lookup("{\"auths\":{\"h\":{\"auth\":\"c2VjcmV0cGFzcw==\"}}}", "s", "h",
					 &up, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "not base64 of USER:PASSWORD"));
	ck_assert_ptr_null(strstr(err.msg, "secretpass"));
	ck_assert_ptr_null(strstr(err.msg, "c2VjcmV0cGFzcw"));
	ck_assert_int_lt(cvm_auth_lookup("[1]", "s", "h", &up, &err), 0);
	ck_assert_int_lt(cvm_auth_lookup("{\"auths\":{\"h\":{\"identitytoken\":\"x\"}}}", "s", "h", &up,
					 &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "identitytoken"));
	ck_assert_ptr_null(up);
}
END_TEST

START_TEST(auth_key_hosts)
{
	char h[64];

	cvm_auth_key_host("https://index.docker.io/v1/", h, sizeof(h));
	ck_assert_str_eq(h, "docker.io");
	cvm_auth_key_host("HTTP://Reg.Example.COM:443/path", h, sizeof(h));
	ck_assert_str_eq(h, "reg.example.com:443");
	cvm_auth_key_host("ghcr.io", h, sizeof(h));
	ck_assert_str_eq(h, "ghcr.io");
}
END_TEST

START_TEST(auth_challenges)
{
	struct cvm_auth_challenge c;

	ck_assert_int_eq(cvm_auth_challenge_parse(
		"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
		"scope=\"repository:library/ubuntu:pull\"", &c), 0);
	ck_assert_int_eq(c.scheme, CVM_AUTH_BEARER);
	ck_assert_str_eq(c.realm, "https://auth.docker.io/token");
	ck_assert_str_eq(c.service, "registry.docker.io");
	ck_assert_str_eq(c.scope, "repository:library/ubuntu:pull");
	cvm_auth_challenge_free(&c);

	/* case, blanks, tokens without quotes, escapes, unknown params */
	ck_assert_int_eq(cvm_auth_challenge_parse(
		"  bearer  Realm = \"http://127.0.0.1:1/t?a=b\" , error=\"invalid_token\", "
		"service=reg\\x,scope=\"a\\\"b\"", &c), 0);
	ck_assert_int_eq(c.scheme, CVM_AUTH_BEARER);
	ck_assert_str_eq(c.realm, "http://127.0.0.1:1/t?a=b");
	ck_assert_str_eq(c.service, "reg\\x");
	ck_assert_str_eq(c.scope, "a\"b");
	cvm_auth_challenge_free(&c);

	ck_assert_int_eq(cvm_auth_challenge_parse("Basic realm=\"basic-realm\"", &c), 0);
	ck_assert_int_eq(c.scheme, CVM_AUTH_BASIC);
	ck_assert_str_eq(c.realm, "basic-realm");
	ck_assert_ptr_null(c.service);
	cvm_auth_challenge_free(&c);

	ck_assert_int_eq(cvm_auth_challenge_parse("Basic", &c), 0);
	ck_assert_int_eq(c.scheme, CVM_AUTH_BASIC);
	cvm_auth_challenge_free(&c);

	ck_assert_int_lt(cvm_auth_challenge_parse("Negotiate abc", &c), 0);
	ck_assert_int_eq(c.scheme, CVM_AUTH_NONE);
	ck_assert_int_lt(cvm_auth_challenge_parse("Bearerx realm=a", &c), 0);
	ck_assert_int_lt(cvm_auth_challenge_parse("", &c), 0);
}
END_TEST

START_TEST(auth_tokens)
{
	char *t;

	ck_assert_str_eq(t = token("{\"token\":\"abc\",\"expires_in\":300}"), "abc");
	free(t);
	t = token("{\"access_token\":\"xyz\"}");
	ck_assert_str_eq(t, "xyz");
	free(t);
	t = token("{\"token\":\"\",\"access_token\":\"q\"}");
	ck_assert_str_eq(t, "q");
	free(t);
	ck_assert_ptr_null(token("{\"token\":1}"));
	ck_assert_ptr_null(token("<html>"));
}
END_TEST

/* --- manifests and platforms ---------------------------------------- */

#define DESC(d, extra) "{\"mediaType\":\"x\",\"digest\":\"sha256:" d "\",\"size\":7" extra "}"
#define DA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define PLAT(os, arch, var) ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"" var "}"

static const char index_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
	"\"manifests\":["
	DESC(DA, PLAT("linux", "arm", ",\"variant\":\"v6\"")) ","
	DESC(DB, PLAT("linux", "arm", ",\"variant\":\"v7\"")) ","
	DESC(DC, PLAT("linux", "amd64", "")) ","
	DESC(DA, PLAT("unknown", "unknown", "")) ","
	DESC(DB, PLAT("linux", "arm64", ",\"variant\":\"v8\"")) "]}";

static int pick(const char *json, const char *os, const char *arch, const char *variant)
{
	struct cvm_manifest m;
	struct cvm_error err = { 0 };
	int i;

	ck_assert_msg(cvm_manifest_parse(json, strlen(json), NULL, &m, &err) == 0, "%s", err.msg);
	ck_assert(m.index);
	i = cvm_manifest_pick(&m, os, arch, variant, &err);
	if (i < 0)
		ck_assert_ptr_nonnull(strstr(err.msg, "it has: linux/arm/v6, linux/arm/v7, linux/amd64"));
	cvm_manifest_free(&m);
	return i;
}

START_TEST(platform_choice)
{
	ck_assert_int_eq(pick(index_json, "linux", "amd64", NULL), 2);
	ck_assert_int_eq(pick(index_json, "linux", "amd64", ""), 2);
	ck_assert_int_eq(pick(index_json, "linux", "arm", "v7"), 1);
	ck_assert_int_eq(pick(index_json, "linux", "arm", "v6"), 0);
	ck_assert_int_eq(pick(index_json, "linux", "arm", NULL), 0);
	ck_assert_int_eq(pick(index_json, "linux", "arm64", NULL), 4);
	ck_assert_int_eq(pick(index_json, "linux", "arm64", "v8"), 4);
	ck_assert_int_eq(pick(index_json, "linux", "s390x", NULL), -1);
	ck_assert_int_eq(pick(index_json, "windows", "amd64", NULL), -1);
	ck_assert_int_eq(pick(index_json, "linux", "arm", "v5"), -1);
}
END_TEST

START_TEST(platform_arm64_without_variant)
{
	static const char j[] = "{\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\","
				"\"manifests\":[" DESC(DA, PLAT("linux", "arm64", "")) "]}";

	ck_assert_int_eq(pick(j, "linux", "arm64", "v8"), 0);
}
END_TEST

START_TEST(platform_node_arch)
{
	char arch[32], variant[16];

	cvm_platform_node(arch, sizeof(arch), variant, sizeof(variant));
#if defined(__x86_64__)
	ck_assert_str_eq(arch, "amd64");
	ck_assert_str_eq(variant, "");
#elif defined(__aarch64__)
	ck_assert_str_eq(arch, "arm64");
#endif
}
END_TEST

START_TEST(manifest_kinds)
{
	static const char img[] = "{\"schemaVersion\":2,\"config\":" DESC(DA, "") ",\"layers\":["
				  DESC(DB, "") "," DESC(DC, "") "]}";
	struct cvm_manifest m;
	struct cvm_error err = { 0 };

	/* no mediaType in the body: the Content-Type says, or the shape */
	ck_assert_int_eq(cvm_manifest_parse(img, strlen(img), NULL, &m, &err), 0);
	ck_assert(!m.index);
	ck_assert_str_eq(m.config.digest, "sha256:" DA);
	ck_assert_uint_eq(m.n, 2);
	ck_assert_str_eq(m.items[1].digest, "sha256:" DC);
	ck_assert_uint_eq(m.items[1].size, 7);
	cvm_manifest_free(&m);
	ck_assert_int_eq(cvm_manifest_parse(img, strlen(img),
					    "application/vnd.docker.distribution.manifest.v2+json", &m,
					    &err), 0);
	cvm_manifest_free(&m);

	ck_assert_int_lt(cvm_manifest_parse("{\"schemaVersion\":1,\"fsLayers\":[]}", 33, NULL, &m,
					    &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "schema 1"));
	ck_assert_int_lt(cvm_manifest_parse("{\"mediaType\":\"text/plain\",\"layers\":[],\"config\":{}}",
					    51, NULL, &m, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "text/plain"));
	static const char bad[] = "{\"config\":" DESC(DA, "") ",\"layers\":[{\"digest\":\"sha256:xyz\","
				  "\"size\":1}]}";
	ck_assert_int_lt(cvm_manifest_parse(bad, strlen(bad), NULL, &m, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "layers 0 has no sha256 digest"));
	static const char nosize[] = "{\"config\":{\"digest\":\"sha256:" DA "\"},\"layers\":[]}";
	ck_assert_int_lt(cvm_manifest_parse(nosize, strlen(nosize), NULL, &m, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "config 0 has no size"));
}
END_TEST

START_TEST(digests)
{
	char d[CVM_DIGEST_LEN + 1];

	cvm_sha256_buf("abc", 3, d);
	ck_assert_str_eq(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert(cvm_digest_valid(d));
	ck_assert(!cvm_digest_valid("sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	ck_assert(!cvm_digest_valid("sha256:ba78"));
	ck_assert(!cvm_digest_valid("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}
END_TEST

/* --- the pull's error paths: an error, never a crash, no fd left ------ */

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

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void pull_fails(struct cvm_image_opts *o, const char *want)
{
	struct cvm_image img;
	struct cvm_error err = { 0 };
	int before = count_fds();

	ck_assert_int_lt(cvm_image_pull(o, &img, &err), 0);
	ck_assert_msg(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
	ck_assert_int_eq(img.lock_fd, -1);
	ck_assert_ptr_null(img.layers);
	ck_assert_int_eq(count_fds(), before);
}

START_TEST(pull_errors_leave_no_fd)
{
	char dir[] = "/tmp/cvm-test-image.XXXXXX";
	struct cvm_image_opts o = { 0 };

	setenv("CVM_DEBUG_PULL_BACKOFF_MS", "1", 1);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	o.cache_dir = dir;
	o.ref = "Bad/Ref:";
	pull_fails(&o, "pull Bad/Ref:: image reference 'Bad/Ref:'");
	o.ref = "127.0.0.1:1/x/y:1";
	o.cache_dir = "relative/cache";
	pull_fails(&o, "is not an absolute path");
	o.cache_dir = dir;
	/* nothing listens on port 1: 4 attempts, then "unreachable" */
	pull_fails(&o, "pull 127.0.0.1:1/x/y:1: registry 127.0.0.1:1: GET /v2/: ");
	o.offline_ok = true;   /* and nothing cached to fall back to */
	pull_fails(&o, "(4 attempts)");
	o.policy = CVM_PULL_NEVER;
	pull_fails(&o, "not in the cache");
	o.policy = CVM_PULL_MISSING;
	o.auth_json = "{\"auths\": [";
	pull_fails(&o, "the pull secret (CODER_IMAGE_PULL_SECRET) is not JSON");
	o.auth_json = NULL;
	o.auth_file = "/nonexistent/config.json";
	pull_fails(&o, "auth file /nonexistent/config.json");
	o.auth_file = NULL;
	o.ca_dir = "/nonexistent-ca";
	pull_fails(&o, "CA certificates /nonexistent-ca");
	ck_assert_int_eq(nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
}
END_TEST

static Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *t = tcase_create("ref");

	tcase_add_test(t, ref_docker_hub_names);
	tcase_add_test(t, ref_registries);
	tcase_add_test(t, ref_tags_and_digests);
	tcase_add_test(t, ref_errors_say_what);
	tcase_add_test(t, ref_string_round_trip);
	suite_add_tcase(s, t);
	t = tcase_create("auth");
	tcase_add_test(t, auth_config_matches_hosts);
	tcase_add_test(t, auth_config_errors_hide_secrets);
	tcase_add_test(t, auth_key_hosts);
	tcase_add_test(t, auth_challenges);
	tcase_add_test(t, auth_tokens);
	suite_add_tcase(s, t);
	t = tcase_create("manifest");
	tcase_add_test(t, platform_choice);
	tcase_add_test(t, platform_arm64_without_variant);
	tcase_add_test(t, platform_node_arch);
	tcase_add_test(t, manifest_kinds);
	tcase_add_test(t, digests);
	suite_add_tcase(s, t);
	t = tcase_create("pull");
	tcase_add_test(t, pull_errors_leave_no_fd);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(image_suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
