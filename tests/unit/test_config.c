/* Unit tests for supervisor/config.c: parsers, the INI / environment / flag
 * layers and their precedence, error messages, validation, and the shipped
 * examples/cvm.ini. INI files are written to a fresh mkdtemp directory. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/config.h"

#define assert_contains(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "'%s' does not contain '%s'", (hay), \
		      (needle))

static char tmpdir[] = "/tmp/cvm-test-config-XXXXXX";
static char ini_path[sizeof(tmpdir) + 16];
static struct cvm_config cfg;
static struct cvm_error err;

/* The scratch dir is made and removed in the parent (an unchecked
 * fixture): a test that fails in its forked child skips its own teardown,
 * and used to leave the dir behind. */
static void make_tmpdir(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(ini_path, sizeof(ini_path), "%s/cvm.ini", tmpdir);
}

static void remove_tmpdir(void)
{
	unlink(ini_path);
	rmdir(tmpdir);
	strcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX");
}

static void setup(void)
{
	cvm_config_init(&cfg);
	cvm_error_clear(&err);
}

static void teardown(void)
{
	cvm_config_free(&cfg);
	unlink(ini_path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static int load_ini(const char *text)
{
	write_file(ini_path, text);
	return cvm_config_load_file(&cfg, ini_path, true, &err);
}

static void assert_mount(size_t i, const char *name, const char *source, const char *target,
			 bool readonly)
{
	ck_assert_str_eq(cfg.mounts[i].name, name);
	ck_assert_str_eq(cfg.mounts[i].source, source);
	ck_assert_str_eq(cfg.mounts[i].target, target);
	ck_assert_int_eq(cfg.mounts[i].readonly, readonly);
}

/* ---- value parsers ---------------------------------------------------- */

static const struct { const char *in; uint64_t out; } good_sizes[] = {
	{ "0", 0 }, { "1", 1 }, { "1024", 1024 }, { "1B", 1 }, { "1K", 1024 },
	{ "1k", 1024 }, { "1KB", 1024 }, { "1kib", 1024 }, { "1KiB", 1024 },
	{ "512M", 512ULL << 20 }, { "4G", 4ULL << 30 }, { "1.5G", 3ULL << 29 },
	{ "0.5K", 512 }, { "1T", 1ULL << 40 }, { "2tib", 2ULL << 40 },
	{ "1.0000001K", 1024 }, /* digits past the 6th are dropped */
	{ "18446744073709551615", UINT64_MAX }, { "16777215T", 16777215ULL << 40 },
};

START_TEST(test_size_good)
{
	uint64_t v = 42;

	ck_assert_msg(cvm_parse_size(good_sizes[_i].in, &v) == 0, "'%s' rejected",
		      good_sizes[_i].in);
	ck_assert_uint_eq(v, good_sizes[_i].out);
}
END_TEST

static const struct { const char *in; int err; } bad_sizes[] = {
	{ "", EINVAL }, { "-1", EINVAL }, { "+1", EINVAL }, { "1X", EINVAL },
	{ " 4G", EINVAL }, { "4G ", EINVAL }, { "4 G", EINVAL }, { "1.5", EINVAL },
	{ "1.", EINVAL }, { ".5G", EINVAL }, { "1KiBB", EINVAL }, { "1iB", EINVAL },
	{ "G", EINVAL }, { "1.5.5G", EINVAL }, { "0x10", EINVAL },
	{ "18446744073709551616", ERANGE }, { "16777216T", ERANGE },
	{ "99999999999999999999999G", ERANGE }, { "17179869184G", ERANGE },
};

START_TEST(test_size_bad)
{
	uint64_t v = 42;

	errno = 0;
	ck_assert_msg(cvm_parse_size(bad_sizes[_i].in, &v) == -1, "'%s' accepted",
		      bad_sizes[_i].in);
	ck_assert_int_eq(errno, bad_sizes[_i].err);
	ck_assert_uint_eq(v, 42);
}
END_TEST

static const struct { const char *in; uint64_t ms; } good_durations[] = {
	{ "0", 0 }, { "10", 10000 }, { "30s", 30000 }, { "500ms", 500 },
	{ "2m", 120000 }, { "1h", 3600000 }, { "1.5s", 1500 }, { "0.5m", 30000 },
	{ "1.5ms", 1 }, { "10S", 10000 }, { "0ms", 0 }, { "1.25h", 4500000 },
	{ "5124095576030h", 5124095576030ULL * 3600000 },
};

START_TEST(test_duration_good)
{
	uint64_t v = 42;

	ck_assert_msg(cvm_parse_duration_ms(good_durations[_i].in, &v) == 0, "'%s' rejected",
		      good_durations[_i].in);
	ck_assert_uint_eq(v, good_durations[_i].ms);
}
END_TEST

static const struct { const char *in; int err; } bad_durations[] = {
	{ "", EINVAL }, { "-1", EINVAL }, { "-1s", EINVAL }, { "10s5", EINVAL },
	{ "1d", EINVAL }, { " 5s", EINVAL }, { "5s ", EINVAL }, { "5 s", EINVAL },
	{ "s", EINVAL }, { "1.s", EINVAL }, { "1X", EINVAL }, { "5mss", EINVAL },
	{ "5124095576031h", ERANGE }, { "99999999999999999999", ERANGE },
	{ "18446744073709551615s", ERANGE },
};

START_TEST(test_duration_bad)
{
	uint64_t v = 42;

	errno = 0;
	ck_assert_msg(cvm_parse_duration_ms(bad_durations[_i].in, &v) == -1, "'%s' accepted",
		      bad_durations[_i].in);
	ck_assert_int_eq(errno, bad_durations[_i].err);
	ck_assert_uint_eq(v, 42);
}
END_TEST

START_TEST(test_bool)
{
	static const char *const yes[] = { "yes", "YES", "True", "on", "1", "On" };
	static const char *const no[] = { "no", "False", "OFF", "0", "nO" };
	static const char *const bad[] = { "", "y", "n", "2", "yes ", " no", "enable", "01" };
	bool b;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		ck_assert_int_eq(cvm_parse_bool(yes[i], &b), 0);
		ck_assert_msg(b, "%s", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = true;
		ck_assert_int_eq(cvm_parse_bool(no[i], &b), 0);
		ck_assert_msg(!b, "%s", no[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(cvm_parse_bool(bad[i], &b) == -1, "'%s' accepted", bad[i]);
		ck_assert_int_eq(errno, EINVAL);
	}
}
END_TEST

START_TEST(test_u32)
{
	static const struct { const char *in; int err; } bad[] = {
		{ "", EINVAL }, { "-1", EINVAL }, { "+1", EINVAL }, { "0x10", EINVAL },
		{ " 1", EINVAL }, { "1 ", EINVAL }, { "12a", EINVAL }, { "1.0", EINVAL },
		{ "4294967296", ERANGE }, { "99999999999999999999999", ERANGE },
	};
	uint32_t v = 7;

	ck_assert_int_eq(cvm_parse_u32("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(cvm_parse_u32("4294967295", &v), 0);
	ck_assert_uint_eq(v, UINT32_MAX);
	ck_assert_int_eq(cvm_parse_u32("000100000", &v), 0);
	ck_assert_uint_eq(v, 100000);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_msg(cvm_parse_u32(bad[i].in, &v) == -1, "'%s' accepted", bad[i].in);
		ck_assert_int_eq(errno, bad[i].err);
	}
}
END_TEST

START_TEST(test_log_level_name)
{
	ck_assert_str_eq(cvm_log_level_name(CVM_LOG_ERROR), "error");
	ck_assert_str_eq(cvm_log_level_name(CVM_LOG_WARN), "warn");
	ck_assert_str_eq(cvm_log_level_name(CVM_LOG_INFO), "info");
	ck_assert_str_eq(cvm_log_level_name(CVM_LOG_DEBUG), "debug");
	ck_assert_str_eq(cvm_log_level_name((enum cvm_log_level)17), "unknown");
}
END_TEST

/* ---- defaults and precedence ------------------------------------------ */

START_TEST(test_defaults)
{
	ck_assert_uint_eq(cfg.stop_timeout_ms, 10000);
	ck_assert_int_eq(cfg.signal_target, CVM_SIGNAL_CHILD);
	ck_assert_int_eq(cfg.log_level, CVM_LOG_INFO);
	ck_assert_int_eq(cfg.log_format, CVM_LOG_TEXT);
	ck_assert_str_eq(cfg.control_socket, CVM_DEFAULT_CONTROL_SOCKET);
	ck_assert_ptr_null(cfg.rootfs);
	ck_assert_ptr_null(cfg.state);
	ck_assert_str_eq(cfg.init, "auto");
	ck_assert_str_eq(cfg.hostname, "cvm");
	ck_assert_uint_eq(cfg.uid_base, 100000);
	ck_assert_uint_eq(cfg.uid_count, 65536);
	ck_assert(!cfg.allow_small_range);
	ck_assert_str_eq(cfg.user, "root");
	ck_assert_ptr_null(cfg.workdir);
	/* Empty lists are still NULL-terminated arrays. */
	ck_assert_uint_eq(cfg.n_env, 0);
	ck_assert_ptr_null(cfg.env[0]);
	ck_assert_uint_eq(cfg.n_env_pass, 0);
	ck_assert_ptr_null(cfg.env_pass[0]);
	ck_assert_str_eq(cfg.network, "private");
	ck_assert_str_eq(cfg.network_cidr, "10.255.255.252/30");
	ck_assert_uint_eq(cfg.n_engine_dirs, 3);
	ck_assert_str_eq(cfg.engine_dirs[0], "/var/lib/docker");
	ck_assert_str_eq(cfg.engine_dirs[2], "/var/lib/buildkit");
	ck_assert_ptr_null(cfg.engine_dirs[3]);
	ck_assert(!cfg.dev_fuse && !cfg.dev_tun);
	ck_assert_uint_eq(cfg.n_mounts, 0);
	ck_assert_ptr_null(cfg.config_path);
	ck_assert_int_eq(cfg.gpu_enable, CVM_GPU_AUTO);
	ck_assert_ptr_null(cfg.gpu_host_lib_dir);
	ck_assert_str_eq(cfg.gpu_inner_lib_dir, "auto");
	ck_assert_ptr_null(cfg.bootstrap_script);
	ck_assert_int_eq(cfg.idmap, CVM_IDMAP_AUTO);
	ck_assert_ptr_null(cfg.image_ref);
	ck_assert_str_eq(cfg.image_default_registry, "docker.io");
	ck_assert_uint_eq(cfg.n_image_mirrors, 0);
	ck_assert_ptr_null(cfg.image_mirrors[0]);
	ck_assert_ptr_null(cfg.image_cache_dir);
	ck_assert_ptr_null(cfg.image_auth_file);
	ck_assert_ptr_null(cfg.image_ca_dir);
	ck_assert_int_eq(cfg.image_pull, CVM_PULL_MISSING);
	ck_assert_ptr_null(cfg.image_auth_json);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
}
END_TEST

START_TEST(test_precedence)
{
	char *const envp[] = {
		"CVM_SUPERVISOR_STOP_TIMEOUT=30s",
		"CVM_WORKSPACE_HOSTNAME=envhost",
		"CVM_WORKSPACE_ENV=B=3\nC=4",
		"CVM_DEVICES_TUN=yes",
		NULL,
	};

	ck_assert_int_eq(load_ini("[supervisor]\n"
				  "stop_timeout = 20s\n"
				  "log_level = debug\n"
				  "[workspace]\n"
				  "hostname = filehost\n"
				  "uid_base = 200000\n"
				  "env = A=1\n"
				  "env = B=2\n"
				  "[devices]\n"
				  "tun = no\n"
				  "fuse = yes\n"), 0);
	ck_assert_str_eq(cfg.config_path, ini_path);
	ck_assert_uint_eq(cfg.stop_timeout_ms, 20000);
	ck_assert_str_eq(cfg.hostname, "filehost");
	ck_assert_str_eq(cfg.user, "root");        /* untouched: default */

	ck_assert_int_eq(cvm_config_load_env(&cfg, envp, &err), 0);
	ck_assert_uint_eq(cfg.stop_timeout_ms, 30000);
	ck_assert_str_eq(cfg.hostname, "envhost");
	ck_assert(cfg.dev_tun);
	ck_assert(cfg.dev_fuse);                   /* untouched: file */
	ck_assert_int_eq(cfg.log_level, CVM_LOG_DEBUG);
	ck_assert_uint_eq(cfg.uid_base, 200000);
	/* env overrides per variable: B replaced, C added, A kept. */
	ck_assert_uint_eq(cfg.n_env, 3);
	ck_assert_str_eq(cfg.env[0], "A=1");
	ck_assert_str_eq(cfg.env[1], "B=3");
	ck_assert_str_eq(cfg.env[2], "C=4");
	ck_assert_ptr_null(cfg.env[3]);

	ck_assert_int_eq(cvm_config_set(&cfg, "supervisor", "stop_timeout", "40s",
					"--stop-timeout", &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "hostname", "flaghost", "--hostname",
					&err), 0);
	ck_assert_uint_eq(cfg.stop_timeout_ms, 40000);
	ck_assert_str_eq(cfg.hostname, "flaghost");
	ck_assert_uint_eq(cfg.uid_base, 200000);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
}
END_TEST

START_TEST(test_flag_error)
{
	ck_assert_int_eq(cvm_config_set(&cfg, "supervisor", "stop_timeout", "abc",
					"--stop-timeout", &err), -1);
	ck_assert_str_eq(err.msg, "--stop-timeout: bad value 'abc' for stop_timeout: "
				  "expected a duration like 30s, 500ms, 2m");
	ck_assert_int_eq(err.err, 0);
	ck_assert_uint_eq(cfg.stop_timeout_ms, 10000);
}
END_TEST

/* A failed set leaves the old value in place. */
START_TEST(test_failed_set_keeps_value)
{
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "rootfs", "/img", "t", &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "rootfs", "img", "t", &err), -1);
	ck_assert_str_eq(cfg.rootfs, "/img");
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "env_pass", "A, B", "t", &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "env_pass", "C bad-name", "t", &err),
			 -1);
	ck_assert_uint_eq(cfg.n_env_pass, 2);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "hostname", "h", "t", &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "hostname", "", "t", &err), -1);
	ck_assert_str_eq(cfg.hostname, "h");
}
END_TEST

/* ---- INI files -------------------------------------------------------- */

START_TEST(test_file_all_keys)
{
	ck_assert_int_eq(load_ini("; comment\n"
				  "# another\n"
				  "\n"
				  "[supervisor]\n"
				  "stop_timeout = 1.5m\n"
				  "signal_target = group\n"
				  "log_level = warn ; inline comment\n"
				  "log_format = json\n"
				  "control_socket = /run/x.sock\n"
				  "[workspace]\n"
				  "rootfs = /img\n"
				  "state = /state\n"
				  "init = /sbin/init --verbose\n"
				  "hostname = dev-box.example\n"
				  "uid_base = 1\n"
				  "uid_count = 1000\n"
				  "allow_small_range = yes\n"
				  "user = 1000:1000\n"
				  "workdir = /home/u\n"
				  "env = PATH=/bin:/usr/bin\n"
				  "  EMPTY=\n"
				  "env = X=a=b, c\n"
				  "env_pass = TERM,LANG  LC_*\n"
				  "env_pass = TERM\n"
				  "network = host\n"), 0);
	ck_assert_uint_eq(cfg.stop_timeout_ms, 90000);
	ck_assert_int_eq(cfg.signal_target, CVM_SIGNAL_GROUP);
	ck_assert_int_eq(cfg.log_level, CVM_LOG_WARN);
	ck_assert_int_eq(cfg.log_format, CVM_LOG_JSON);
	ck_assert_str_eq(cfg.control_socket, "/run/x.sock");
	ck_assert_str_eq(cfg.rootfs, "/img");
	ck_assert_str_eq(cfg.state, "/state");
	ck_assert_str_eq(cfg.init, "/sbin/init --verbose");
	ck_assert_str_eq(cfg.hostname, "dev-box.example");
	ck_assert_uint_eq(cfg.uid_base, 1);
	ck_assert_uint_eq(cfg.uid_count, 1000);
	ck_assert(cfg.allow_small_range);
	ck_assert_str_eq(cfg.user, "1000:1000");
	ck_assert_str_eq(cfg.workdir, "/home/u");
	ck_assert_uint_eq(cfg.n_env, 3);
	ck_assert_str_eq(cfg.env[0], "PATH=/bin:/usr/bin");
	ck_assert_str_eq(cfg.env[1], "EMPTY=");     /* continuation line */
	ck_assert_str_eq(cfg.env[2], "X=a=b, c");
	ck_assert_uint_eq(cfg.n_env_pass, 3);       /* TERM only once */
	ck_assert_str_eq(cfg.env_pass[0], "TERM");
	ck_assert_str_eq(cfg.env_pass[1], "LANG");
	ck_assert_str_eq(cfg.env_pass[2], "LC_*");
	ck_assert_ptr_null(cfg.env_pass[3]);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
}
END_TEST

START_TEST(test_file_list_clear)
{
	ck_assert_int_eq(load_ini("[workspace]\n"
				  "env = A=1\n"
				  "env_pass = A\n"
				  "env =\n"
				  "env_pass =\n"
				  "env = B=2\n"), 0);
	ck_assert_uint_eq(cfg.n_env, 1);
	ck_assert_str_eq(cfg.env[0], "B=2");
	ck_assert_uint_eq(cfg.n_env_pass, 0);
	ck_assert_ptr_null(cfg.env_pass[0]);
}
END_TEST

START_TEST(test_file_crlf_bom)
{
	ck_assert_int_eq(load_ini("\xef\xbb\xbf[supervisor]\r\n"
				  "log_level = debug\r\n"
				  "[workspace]\r\n"
				  "rootfs = /img\r\n"), 0);
	ck_assert_int_eq(cfg.log_level, CVM_LOG_DEBUG);
	ck_assert_str_eq(cfg.rootfs, "/img");
}
END_TEST

START_TEST(test_file_later_value_wins)
{
	ck_assert_int_eq(load_ini("[supervisor]\nlog_level = debug\n"
				  "[workspace]\nuser = a\n"
				  "[supervisor]\nlog_level = error\n"), 0);
	ck_assert_int_eq(cfg.log_level, CVM_LOG_ERROR);
	ck_assert_str_eq(cfg.user, "a");
}
END_TEST

START_TEST(test_file_missing)
{
	char path[sizeof(tmpdir) + 32];

	snprintf(path, sizeof(path), "%s/nope.ini", tmpdir);
	ck_assert_int_eq(cvm_config_load_file(&cfg, path, false, &err), 0);
	ck_assert_ptr_null(cfg.config_path);
	ck_assert_int_eq(cvm_config_load_file(&cfg, path, true, &err), -1);
	ck_assert_int_eq(err.err, ENOENT);
	assert_contains(err.msg, path);
	assert_contains(err.msg, "No such file or directory");
	ck_assert_ptr_null(cfg.config_path);
}
END_TEST

/* A directory is not a missing file: an error even when optional. */
START_TEST(test_file_unreadable)
{
	ck_assert_int_eq(cvm_config_load_file(&cfg, tmpdir, false, &err), -1);
	assert_contains(err.msg, tmpdir);
}
END_TEST

START_TEST(test_file_long_line)
{
	char text[512];

	snprintf(text, sizeof(text), "[workspace]\n\nrootfs = /%0300d\n", 0);
	ck_assert_int_eq(load_ini(text), -1);
	assert_contains(err.msg, "cvm.ini:3: line too long");
	ck_assert_ptr_null(cfg.rootfs);
}
END_TEST

/* inih keeps parsing after a syntax error; the first error must win. */
START_TEST(test_file_first_error_wins)
{
	ck_assert_int_eq(load_ini("[supervisor]\nno equals here\nlog_level = loud\n"), -1);
	assert_contains(err.msg, "cvm.ini:2: syntax error");
	ck_assert_int_eq(load_ini("[supervisor]\nlog_level = loud\nno equals here\n"), -1);
	assert_contains(err.msg, "cvm.ini:2: bad value 'loud' for log_level");
	/* Stops at the first error: line 3 is never applied. */
	cvm_config_free(&cfg);
	cvm_config_init(&cfg);
	ck_assert_int_eq(load_ini("[supervisor]\nlog_level = loud\nlog_format = json\n"), -1);
	ck_assert_int_eq(cfg.log_format, CVM_LOG_TEXT);
	ck_assert_ptr_null(cfg.config_path);
}
END_TEST

/* One bad line per entry: the message must name the file and line, the key
 * (or section), and say what was expected. */
static const struct {
	const char *ini;
	int line;
	const char *key;
	const char *hint;
} bad_files[] = {
	{ "[supervisor]\nstop_timeout = abc\n", 2, "stop_timeout", "expected a duration like 30s" },
	{ "[supervisor]\n\n# c\nstop_timeout = -1\n", 4, "stop_timeout", "expected a duration" },
	{ "[supervisor]\nstop_timeout = 10s5\n", 2, "'10s5' for stop_timeout", "500ms" },
	{ "[supervisor]\nstop_timeout = 99999999999999999999\n", 2, "stop_timeout",
	  "too large; expected a duration" },
	{ "[supervisor]\nstop_timeout =\n", 2, "empty value for stop_timeout", "expected a duration" },
	{ "[supervisor]\nsignal_target = parent\n", 2, "signal_target", "child, group" },
	{ "[supervisor]\nlog_level = verbose\n", 2, "log_level", "error, warn, info, debug" },
	{ "[supervisor]\nlog_format = xml\n", 2, "log_format", "expected one of text, json" },
	{ "[supervisor]\ncontrol_socket = run/c.sock\n", 2, "control_socket",
	  "must be an absolute path" },
	{ "[supervisor]\nstop_timout = 5s\n", 2, "unknown key 'stop_timout' in [supervisor]",
	  "stop_timeout" },
	{ "[resources]\nmemroy = 4G\n", 2, "unknown key 'memroy' in [resources]", "memory" },
	{ "[resourcs]\nmemory = 4G\n", 2, "unknown section [resourcs]", "[proc]" },
	{ "[resources]\ncpus = lots\n", 2, "bad value 'lots' for cpus", "0.5" },
	{ "[resources]\nmemory = 12Q\n", 2, "bad value '12Q' for memory", "auto" },
	{ "[resources]\nio_weight = 0\n", 2, "io_weight", "1 to 10000" },
	{ "[resources]\ncpuset = a-b\n", 2, "cpuset", "0-3,6" },
	{ "[proc]\nfiles = meminfo, kcore\n", 2, "unknown file 'kcore' for files", "loadavg" },
	{ "stop_timeout = 5s\n", 1, "'stop_timeout'", "outside any section" },
	{ "[workspace]\nrootfs = relative/img\n", 2, "rootfs", "must be an absolute path" },
	{ "[workspace]\nstate = ./state\n", 2, "state", "must be an absolute path" },
	{ "[workspace]\nworkdir = home\n", 2, "workdir", "must be an absolute path" },
	{ "[workspace]\nrootfs =\n", 2, "empty value for rootfs", "absolute path" },
	{ "[workspace]\nuid_base = -5\n", 2, "uid_base", "whole number from 0 to 4294967295" },
	{ "[workspace]\nuid_count = 4294967296\n", 2, "uid_count", "too large" },
	{ "[workspace]\nuid_count = 12abc\n", 2, "uid_count", "whole number" },
	{ "[workspace]\nallow_small_range = maybe\n", 2, "allow_small_range", "yes or no" },
	{ "[workspace]\nhostname = bad_host!\n", 2, "hostname", "letters, digits" },
	{ "[workspace]\nhostname =\n", 2, "empty value for hostname", "expected" },
	{ "[workspace]\ninit =\n", 2, "empty value for init", "expected some text" },
	{ "[workspace]\nuser =\n", 2, "empty value for user", "expected some text" },
	{ "[workspace]\nengine_dirs = var/lib/docker\n", 2, "'var/lib/docker' for engine_dirs",
	  "absolute path" },
	{ "[workspace]\nengine_dirs = /var/../etc\n", 2, "engine_dirs", "without . or .." },
	{ "[workspace]\nengine_dirs = /a/./b\n", 2, "engine_dirs", "without . or .." },
	{ "[workspace]\nengine_dirs = /\n", 2, "engine_dirs", "absolute path" },
	{ "[workspace]\nnetwork = bridge\n", 2, "network", "expected private or host" },
	{ "[workspace]\nnetwork_cidr = 10.0.0.1/30\n", 2, "network_cidr", "host bits zero" },
	{ "[workspace]\nnetwork_cidr = 10.0.0.0/31\n", 2, "network_cidr", "/8 to /30" },
	{ "[workspace]\nnetwork_cidr = 10.0.0.0\n", 2, "network_cidr", "IPv4 network" },
	{ "[workspace]\nnetwork_cidr = 10.0.0.0/+8\n", 2, "network_cidr", "IPv4 network" },
	{ "[workspace]\nnetwork_cidr = 300.0.0.0/8\n", 2, "network_cidr", "IPv4 network" },
	{ "[workspace]\nenv = NOEQUALS\n", 2, "'NOEQUALS' for env", "NAME=VALUE" },
	{ "[workspace]\nenv = 1FOO=bar\n", 2, "env", "NAME=VALUE" },
	{ "[workspace]\nenv = =bar\n", 2, "env", "NAME=VALUE" },
	{ "[workspace]\nenv_pass = FOO,BAD-NAME\n", 2, "'BAD-NAME' for env_pass",
	  "variable name or PREFIX*" },
	{ "[workspace]\nenv_pass = *\n", 2, "env_pass", "PREFIX*" },
	{ "[workspace]\nenv_pass = A*B\n", 2, "env_pass", "PREFIX*" },
	{ "[workspace]\nrootfs = /x\nmemory = 4G\n", 3, "unknown key 'memory' in [workspace]",
	  "uid_count" },
	{ "[devices]\nfuse = maybe\n", 2, "fuse", "yes or no" },
	{ "[devices]\ngpu = yes\n", 2, "unknown key 'gpu' in [devices]", "fuse, tun" },
	{ "[mount \"data\"]\nsource = data\n", 2, "source", "must be an absolute path" },
	{ "[mount \"data\"]\nreadonly = ro\n", 2, "readonly", "yes or no" },
	{ "[mount \"data\"]\nsize = 1G\n", 2, "unknown key 'size' in [mount \"data\"]",
	  "source, target, readonly" },
	{ "[mount \"bad name!\"]\nsource = /x\n", 2, "bad mount name", "letters" },
	{ "[mount \"\"]\nsource = /x\n", 2, "[mount \"\"]", "needs a name" },
	{ "[mount]\nsource = /x\n", 2, "[mount]", "needs a name" },
	{ "[mounts]\nsource = /x\n", 2, "unknown section [mounts]", "[mount \"NAME\"]" },
	{ "[supervisor\nlog_level = info\n", 1, "syntax error", "expected [section]" },
	{ "[supervisor]\nlog_level = info\njust words\n", 3, "syntax error", "key = value" },
};

START_TEST(test_file_bad)
{
	char where[32];

	snprintf(where, sizeof(where), "cvm.ini:%d: ", bad_files[_i].line);
	ck_assert_msg(load_ini(bad_files[_i].ini) == -1, "accepted: %s", bad_files[_i].ini);
	ck_assert_int_eq(strncmp(err.msg, ini_path, strlen(ini_path)), 0);
	assert_contains(err.msg, where);
	assert_contains(err.msg, bad_files[_i].key);
	assert_contains(err.msg, bad_files[_i].hint);
	ck_assert_ptr_null(cfg.config_path);
}
END_TEST

/* ---- mounts ----------------------------------------------------------- */

START_TEST(test_mounts)
{
	ck_assert_int_eq(load_ini("[mount \"data\"]\n"
				  "source = /srv/data\n"
				  "target = /data\n"
				  "[mount logs]\n"
				  "source = /var/log/ws\n"
				  "[mount \"data\"]\n"
				  "readonly = yes\n"
				  "[mount   \"logs\"]\n"
				  "target = /logs\n"), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "mount cache", "source", "/c", "--mount", &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "mount \"cache\"", "target", "/cache", "--mount",
					&err), 0);
	ck_assert_uint_eq(cfg.n_mounts, 3);
	assert_mount(0, "data", "/srv/data", "/data", true);
	assert_mount(1, "logs", "/var/log/ws", "/logs", false);
	ck_assert_str_eq(cfg.mounts[2].name, "cache");
	ck_assert_str_eq(cfg.mounts[2].target, "/cache");
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
}
END_TEST

/* ---- environment ------------------------------------------------------ */

START_TEST(test_env_keys)
{
	char *const envp[] = {
		"HOME=/root",
		"CVM_CONFIG=/etc/other.ini",            /* not a section: free for others */
		"CVM_FOO_BAR=1",
		"CVM_MOUNT_DATA_SOURCE=relative",       /* mounts have no env form */
		"CVM_SUPERVISOR",
		"CVM_SUPERVISOR_LOG_LEVEL=debug",
		"CVM_SUPERVISOR_SIGNAL_TARGET=group",
		"CVM_WORKSPACE_ENV_PASS=TERM,LANG LC_*",
		"CVM_WORKSPACE_ENV=A=1, with comma\n\nB=two words\n",
		"CVM_WORKSPACE_UID_COUNT=131072",
		"CVM_WORKSPACE_ALLOW_SMALL_RANGE=true",
		"CVM_DEVICES_FUSE=on",
		NULL,
	};

	ck_assert_int_eq(cvm_config_load_env(&cfg, envp, &err), 0);
	ck_assert_int_eq(cfg.log_level, CVM_LOG_DEBUG);
	ck_assert_int_eq(cfg.signal_target, CVM_SIGNAL_GROUP);
	ck_assert_uint_eq(cfg.n_env_pass, 3);
	ck_assert_str_eq(cfg.env_pass[2], "LC_*");
	ck_assert_uint_eq(cfg.n_env, 2);
	ck_assert_str_eq(cfg.env[0], "A=1, with comma");
	ck_assert_str_eq(cfg.env[1], "B=two words");
	ck_assert_uint_eq(cfg.uid_count, 131072);
	ck_assert(cfg.allow_small_range);
	ck_assert(cfg.dev_fuse);
	ck_assert_uint_eq(cfg.n_mounts, 0);
	ck_assert_int_eq(cvm_config_load_env(&cfg, NULL, &err), 0);
}
END_TEST

START_TEST(test_env_unknown_key)
{
	char *const envp[] = { "CVM_SUPERVISOR_FOO=1", NULL };

	ck_assert_int_eq(cvm_config_load_env(&cfg, envp, &err), -1);
	assert_contains(err.msg, "CVM_SUPERVISOR_FOO: unknown key 'foo' in [supervisor]");
	assert_contains(err.msg, "stop_timeout");
}
END_TEST

START_TEST(test_env_bad_values)
{
	static const struct { const char *var; const char *msg; } bad[] = {
		{ "CVM_WORKSPACE_UID_COUNT=lots",
		  "CVM_WORKSPACE_UID_COUNT: bad value 'lots' for uid_count: expected a whole number" },
		{ "CVM_SUPERVISOR_STOP_TIMEOUT= 5s",
		  "CVM_SUPERVISOR_STOP_TIMEOUT: bad value ' 5s' for stop_timeout" },
		{ "CVM_DEVICES_TUN=", "CVM_DEVICES_TUN: empty value for tun: expected yes or no" },
		{ "CVM_WORKSPACE_ENV=A=1\nbroken", "CVM_WORKSPACE_ENV: bad entry 'broken' for env" },
		{ "CVM_WORKSPACE_ROOTFS=img", "CVM_WORKSPACE_ROOTFS: bad value 'img' for rootfs: "
					      "must be an absolute path" },
		{ "CVM_DEVICES_GPU=1", "CVM_DEVICES_GPU: unknown key 'gpu' in [devices]" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *envp[] = { (char *)bad[i].var, NULL };

		ck_assert_int_eq(cvm_config_load_env(&cfg, envp, &err), -1);
		assert_contains(err.msg, bad[i].msg);
	}
	ck_assert_uint_eq(cfg.n_env, 0);
}
END_TEST

/* [workspace] seccomp_deny: syscall names this architecture has, no globs. */
START_TEST(test_seccomp_deny)
{
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "seccomp_deny", "ptrace, bpf",
					 "cvm.ini:3", &err), 0);
	ck_assert_uint_eq(cfg.n_seccomp_deny, 2);
	ck_assert_str_eq(cfg.seccomp_deny[0], "ptrace");
	ck_assert_str_eq(cfg.seccomp_deny[1], "bpf");
	ck_assert_ptr_null(cfg.seccomp_deny[2]);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "seccomp_deny", "ptrace,nosuchcall",
					 "cvm.ini:4", &err), -1);
	assert_contains(err.msg, "cvm.ini:4: unknown syscall 'nosuchcall' for seccomp_deny");
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "seccomp_deny", "mount*",
					 "--seccomp-deny", &err), -1);
	assert_contains(err.msg, "unknown syscall 'mount*'");
	/* a refused value leaves the earlier one */
	ck_assert_uint_eq(cfg.n_seccomp_deny, 2);
}
END_TEST

/* ---- envbox's CODER_* variables ---------------------------------------- */

static bool has_entry(char **list, const char *want)
{
	for (size_t i = 0; list[i]; i++) {
		if (strcmp(list[i], want) == 0)
			return true;
	}
	return false;
}

/* Every alias, as the README's table documents it. */
START_TEST(test_envbox_aliases)
{
	char *const envp[] = {
		"CODER_INNER_IMAGE=/var/lib/cvm/images/ubuntu",
		"CODER_INNER_USERNAME=coder",
		"CODER_INNER_HOSTNAME=coder-box",
		"CODER_INNER_ENVS=KUBERNETES_*, MY_ENV,OTHER",
		"CODER_INNER_WORK_DIR=/home/coder/src",
		"CODER_MOUNTS=/home/coder:/home/coder,/var/run/secret:/var/run/secret:ro",
		"CODER_ADD_FUSE=true",
		"CODER_ADD_TUN=TRUE",
		"CODER_ADD_GPU=false",
		"CODER_USR_LIB_DIR=/var/coder/usr/lib",
		"CODER_INNER_USR_LIB_DIR=/usr/lib/x86_64-linux-gnu",
		"CODER_CPUS=2",
		"CODER_MEMORY=4294967296",
		"CODER_BOOTSTRAP_SCRIPT=#!/bin/sh\nexec /opt/agent ; echo x\n",
		"CODER_AGENT_TOKEN=tok-3f9a-secret",
		"CODER_AGENT_URL=https://coder.example",
		"CODER_DOCKER_CONFIG=/var/run/secrets/docker/config.json",
		"CODER_EXTRA_CERTS_PATH=/etc/ssl/extra",
		"CODER_DOCKER_BRIDGE_CIDR=172.19.0.1/30",
		"CODER_DEBUG=true",
		"CODER_DISABLE_IDMAPPED_MOUNT=true",
		"CODER_IMAGE_PULL_SECRET={\"auths\":{\"r.example\":{\"auth\":\"dTpw\"}}}",
		"CODER_SOMETHING_ELSE=1",                    /* no alias: ignored */
		"CVM_WORKSPACE_STATE=/var/lib/cvm/state",
		NULL,
	};

	ck_assert_msg(cvm_config_load_env(&cfg, envp, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(cfg.rootfs, "/var/lib/cvm/images/ubuntu");
	ck_assert_str_eq(cfg.user, "coder");
	ck_assert_str_eq(cfg.hostname, "coder-box");
	ck_assert_str_eq(cfg.workdir, "/home/coder/src");
	ck_assert(has_entry(cfg.env_pass, "KUBERNETES_*"));
	ck_assert(has_entry(cfg.env_pass, "MY_ENV"));
	ck_assert(has_entry(cfg.env_pass, "OTHER"));
	ck_assert_uint_eq(cfg.n_mounts, 2);
	assert_mount(0, "coder-1", "/home/coder", "/home/coder", false);
	assert_mount(1, "coder-2", "/var/run/secret", "/var/run/secret", true);
	ck_assert(cfg.dev_fuse && cfg.dev_tun);
	ck_assert_int_eq(cfg.gpu_enable, CVM_GPU_NO);
	ck_assert_str_eq(cfg.gpu_host_lib_dir, "/var/coder/usr/lib");
	ck_assert_str_eq(cfg.gpu_inner_lib_dir, "/usr/lib/x86_64-linux-gnu");
	ck_assert_str_eq(cfg.res_cpus, "2");
	ck_assert_str_eq(cfg.res_memory, "4294967296");
	ck_assert_str_eq(cfg.bootstrap_script, "#!/bin/sh\nexec /opt/agent ; echo x\n");
	/* The token and the URL are passed in by name: their values are
	 * nowhere in the config. */
	ck_assert(has_entry(cfg.env_pass, "CODER_AGENT_TOKEN"));
	ck_assert(has_entry(cfg.env_pass, "CODER_AGENT_URL"));
	ck_assert_uint_eq(cfg.n_env_pass, 5);
	ck_assert_str_eq(cfg.image_auth_file, "/var/run/secrets/docker/config.json");
	ck_assert_str_eq(cfg.image_ca_dir, "/etc/ssl/extra");
	/* envbox's --bip address (the bridge's own .1) names the network */
	ck_assert_str_eq(cfg.network_cidr, "172.19.0.0/30");
	ck_assert_int_eq(cfg.log_level, CVM_LOG_DEBUG);
	ck_assert_int_eq(cfg.idmap, CVM_IDMAP_OFF);
	ck_assert_str_eq(cfg.image_auth_json, "{\"auths\":{\"r.example\":{\"auth\":\"dTpw\"}}}");
	ck_assert_ptr_null(cfg.image_ref);
	ck_assert_uint_eq(cfg.n_env, 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);

	char *const gpu_on[] = { "CODER_ADD_GPU=1", NULL };
	ck_assert_int_eq(cvm_config_load_env(&cfg, gpu_on, &err), 0);
	ck_assert_int_eq(cfg.gpu_enable, CVM_GPU_YES);
}
END_TEST

START_TEST(test_envbox_bad_values)
{
	static const struct { const char *var; const char *msg; } bad[] = {
		{ "CODER_CPUS=abc", "CODER_CPUS: bad value 'abc' for cpus: expected a number of CPUs" },
		{ "CODER_CPUS=0", "CODER_CPUS: bad value '0' for cpus" },
		{ "CODER_CPUS=-1", "CODER_CPUS: bad value '-1' for cpus" },
		{ "CODER_MEMORY=lots", "CODER_MEMORY: bad value 'lots' for memory: expected a size" },
		{ "CODER_ADD_FUSE=maybe", "CODER_ADD_FUSE: bad value 'maybe' for fuse: expected yes or no" },
		{ "CODER_ADD_TUN=t", "CODER_ADD_TUN: bad value 't' for tun" },
		{ "CODER_ADD_GPU=maybe", "CODER_ADD_GPU: bad value 'maybe': expected true or false" },
		{ "CODER_INNER_IMAGE=codercom/enterprise-base:ubuntu latest",
		  "CODER_INNER_IMAGE: bad value 'codercom/enterprise-base:ubuntu latest' for ref: "
		  "expected an image reference" },
		{ "CODER_DOCKER_CONFIG=config.json", "CODER_DOCKER_CONFIG: bad value 'config.json' "
						     "for auth_file: must be an absolute path" },
		{ "CODER_EXTRA_CERTS_PATH=certs", "CODER_EXTRA_CERTS_PATH: bad value 'certs' for "
						  "ca_dir: must be an absolute path" },
		{ "CODER_DOCKER_BRIDGE_CIDR=172.19.0.1", "CODER_DOCKER_BRIDGE_CIDR: bad value "
		  "'172.19.0.1': expected an IPv4 network like 172.19.0.1/30" },
		{ "CODER_DOCKER_BRIDGE_CIDR=172.19.0.300/30", "CODER_DOCKER_BRIDGE_CIDR: bad value" },
		{ "CODER_DOCKER_BRIDGE_CIDR=172.19.0.1/33", "CODER_DOCKER_BRIDGE_CIDR: bad value" },
		{ "CODER_DOCKER_BRIDGE_CIDR=fd00::1/64", "CODER_DOCKER_BRIDGE_CIDR: bad value" },
		/* cvm needs room for two ends: /31 and /32 are refused by the key */
		{ "CODER_DOCKER_BRIDGE_CIDR=172.19.0.1/31", "CODER_DOCKER_BRIDGE_CIDR: bad value "
		  "'172.19.0.0/31' for network_cidr" },
		{ "CODER_DEBUG=verbose", "CODER_DEBUG: bad value 'verbose': expected true or false" },
		{ "CODER_DISABLE_IDMAPPED_MOUNT=y", "CODER_DISABLE_IDMAPPED_MOUNT: bad value 'y': "
						    "expected true or false" },
		{ "CODER_INNER_HOSTNAME=bad host", "CODER_INNER_HOSTNAME: bad value 'bad host' for hostname" },
		{ "CODER_INNER_WORK_DIR=src", "CODER_INNER_WORK_DIR: bad value 'src' for workdir: must be "
					      "an absolute path" },
		{ "CODER_INNER_ENVS=A,*", "CODER_INNER_ENVS: bad entry '*' for env_pass" },
		{ "CODER_INNER_ENVS=A-B", "CODER_INNER_ENVS: bad entry 'A-B' for env_pass" },
		{ "CODER_MOUNTS=/a", "CODER_MOUNTS: bad volume '/a': expected SRC:DST or SRC:DST:ro" },
		{ "CODER_MOUNTS=/a:/b:rx", "CODER_MOUNTS: bad volume '/a:/b:rx': the mode is ro or rw, "
					   "not 'rx'" },
		{ "CODER_MOUNTS=/a:/b,home:/home", "CODER_MOUNTS: bad value 'home' for source: must be "
						   "an absolute path" },
		{ "CODER_USR_LIB_DIR=usr/lib", "CODER_USR_LIB_DIR: bad value 'usr/lib' for host_lib_dir" },
		{ "CODER_INNER_USR_LIB_DIR=lib", "CODER_INNER_USR_LIB_DIR: bad value 'lib' for "
						 "inner_lib_dir" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cvm_config c;
		char *envp[] = { (char *)bad[i].var, NULL };

		cvm_config_init(&c);
		ck_assert_msg(cvm_config_load_env(&c, envp, &err) == -1, "%s accepted", bad[i].var);
		assert_contains(err.msg, bad[i].msg);
		cvm_config_free(&c);
	}
}
END_TEST

/* INI < CODER_* < CVM_* < flags; an empty CODER_* is unset, as for envbox. */
START_TEST(test_envbox_precedence)
{
	char *const cvm_last[] = { "CODER_INNER_HOSTNAME=coder", "CVM_WORKSPACE_HOSTNAME=cvm-wins",
				   "CODER_CPUS=2", NULL };
	char *const cvm_first[] = { "CVM_WORKSPACE_HOSTNAME=cvm-wins", "CODER_INNER_HOSTNAME=coder",
				    NULL };
	char *const empty[] = { "CODER_CPUS=", "CODER_INNER_HOSTNAME=", "CODER_MOUNTS=",
				"CODER_BOOTSTRAP_SCRIPT=", "CODER_AGENT_TOKEN=", NULL };

	ck_assert_int_eq(load_ini("[workspace]\nhostname = file\n[resources]\ncpus = 1\n"), 0);
	ck_assert_int_eq(cvm_config_load_env(&cfg, empty, &err), 0);
	ck_assert_str_eq(cfg.hostname, "file");
	ck_assert_str_eq(cfg.res_cpus, "1");
	ck_assert_uint_eq(cfg.n_mounts, 0);
	ck_assert_ptr_null(cfg.bootstrap_script);
	ck_assert_uint_eq(cfg.n_env_pass, 0);
	ck_assert_int_eq(cvm_config_load_env(&cfg, cvm_last, &err), 0);
	ck_assert_str_eq(cfg.hostname, "cvm-wins");
	ck_assert_str_eq(cfg.res_cpus, "2");                  /* CODER_* over the file */
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "hostname", "other", "t", &err), 0);
	ck_assert_int_eq(cvm_config_load_env(&cfg, cvm_first, &err), 0);
	ck_assert_str_eq(cfg.hostname, "cvm-wins");
	ck_assert_int_eq(cvm_config_set(&cfg, "resources", "cpus", "3", "--cpus", &err), 0);
	ck_assert_str_eq(cfg.res_cpus, "3");
}
END_TEST

/* ---- [bootstrap] and [gpu] -------------------------------------------- */

START_TEST(test_bootstrap_script_lines)
{
	/* Continuation lines and the key repeated right after are the next
	 * lines of the script; a later, separate script replaces it. */
	ck_assert_int_eq(load_ini("[workspace]\nrootfs = /img\nstate = /st\n"
				  "[bootstrap]\nscript = echo a\n  echo b\nscript = exec agent\n"), 0);
	ck_assert_str_eq(cfg.bootstrap_script, "echo a\necho b\nexec agent");
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
	ck_assert_int_eq(load_ini("[bootstrap]\nscript = one\n[proc]\nvirtualize = no\n"
				  "[bootstrap]\nscript = two\n"), 0);
	ck_assert_str_eq(cfg.bootstrap_script, "two");
	ck_assert_int_eq(cvm_config_set(&cfg, "bootstrap", "script", "flag", "--bootstrap", &err), 0);
	ck_assert_str_eq(cfg.bootstrap_script, "flag");
	ck_assert_int_eq(load_ini("[bootstrap]\nscript =\n"), -1);
	assert_contains(err.msg, "cvm.ini:2: empty value for script");
}
END_TEST

START_TEST(test_bootstrap_needs_workspace)
{
	ck_assert_int_eq(cvm_config_set(&cfg, "bootstrap", "script", "true", "t", &err), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	ck_assert_str_eq(err.msg, "bootstrap script: runs inside a workspace; set rootfs or an "
				  "image too (--rootfs, --image, CODER_INNER_IMAGE)");
	ck_assert_int_eq(cvm_config_set(&cfg, "image", "ref", "ubuntu", "t", &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "state", "/st", "t", &err), 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
}
END_TEST

/* ---- [image] and the envbox variables that feed it --------------------- */

START_TEST(test_image_keys)
{
	char *const envp[] = { "CVM_IMAGE_PULL=never", "CVM_IMAGE_MIRRORS=",
			       "CVM_IMAGE_CA_DIR=/env/ca", NULL };

	ck_assert_msg(load_ini("[image]\n"
			       "ref = registry.example.com:5000/team/dev@sha256:0123abcd\n"
			       "default_registry = mirror.local:5000\n"
			       "mirrors = https://m1.example/v2/x, m2.example:443 [::1]:5000\n"
			       "cache_dir = /var/cache/cvm\n"
			       "auth_file = /root/.docker/config.json\n"
			       "ca_dir = /etc/cvm/ca\n"
			       "pull = always\n"
			       "[workspace]\nidmap = off\nstate = /st\n") == 0, "%s", err.msg);
	ck_assert_str_eq(cfg.image_ref, "registry.example.com:5000/team/dev@sha256:0123abcd");
	ck_assert_str_eq(cfg.image_default_registry, "mirror.local:5000");
	ck_assert_uint_eq(cfg.n_image_mirrors, 3);
	ck_assert_str_eq(cfg.image_mirrors[0], "https://m1.example/v2/x");
	ck_assert_str_eq(cfg.image_mirrors[1], "m2.example:443");
	ck_assert_str_eq(cfg.image_mirrors[2], "[::1]:5000");
	ck_assert_str_eq(cfg.image_cache_dir, "/var/cache/cvm");
	ck_assert_str_eq(cfg.image_auth_file, "/root/.docker/config.json");
	ck_assert_str_eq(cfg.image_ca_dir, "/etc/cvm/ca");
	ck_assert_int_eq(cfg.image_pull, CVM_PULL_ALWAYS);
	ck_assert_int_eq(cfg.idmap, CVM_IDMAP_OFF);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(cvm_config_load_env(&cfg, envp, &err), 0);
	ck_assert_int_eq(cfg.image_pull, CVM_PULL_NEVER);
	ck_assert_uint_eq(cfg.n_image_mirrors, 0);
	ck_assert_str_eq(cfg.image_ca_dir, "/env/ca");
	ck_assert_int_eq(cvm_config_set(&cfg, "image", "pull", "missing", "--pull", &err), 0);
	ck_assert_int_eq(cfg.image_pull, CVM_PULL_MISSING);
}
END_TEST

static const struct { const char *text; const char *msg; } bad_image_keys[] = {
	{ "ref = /var/lib/img", "cvm.ini:2: '/var/lib/img' is a path: an unpacked image directory "
				"is [workspace] rootfs (--rootfs)" },
	{ "ref = ubuntu latest", "cvm.ini:2: bad value 'ubuntu latest' for ref: expected an image "
				 "reference" },
	{ "ref = -x", "bad value '-x' for ref" },
	{ "default_registry = https://docker.io", "bad value 'https://docker.io' for "
						  "default_registry: expected a registry host" },
	{ "default_registry = a b", "bad value 'a b' for default_registry" },
	{ "mirrors = ok.example, ftp://x", "bad entry 'ftp://x' for mirrors: expected "
					   "HOST[:PORT][/PATH]" },
	{ "mirrors = http://", "bad entry 'http://' for mirrors" },
	{ "mirrors = m.example/a b/../c?", "bad entry 'b/../c?' for mirrors" },
	{ "pull = sometimes", "bad value 'sometimes' for pull: expected one of missing, always, "
			      "never" },
	{ "cache_dir = cache", "bad value 'cache' for cache_dir: must be an absolute path" },
	{ "auth_file = a.json", "bad value 'a.json' for auth_file: must be an absolute path" },
	{ "ca_dir = ca", "bad value 'ca' for ca_dir: must be an absolute path" },
	{ "registry = x", "unknown key 'registry' in [image]; expected one of ref, "
			  "default_registry, mirrors, cache_dir, auth_file, ca_dir, pull" },
};

START_TEST(test_image_bad_keys)
{
	char text[256];

	snprintf(text, sizeof(text), "[image]\n%s\n", bad_image_keys[_i].text);
	ck_assert_msg(load_ini(text) == -1, "'%s' accepted", bad_image_keys[_i].text);
	assert_contains(err.msg, bad_image_keys[_i].msg);
}
END_TEST

/* rootfs and ref name the same thing: the later layer's wins, one layer
 * with both is an error that says what to drop. */
START_TEST(test_image_or_rootfs)
{
	char *const ref_alias[] = { "CODER_INNER_IMAGE=codercom/enterprise-base:ubuntu", NULL };
	char *const dir_alias[] = { "CODER_INNER_IMAGE=/img/ubuntu", NULL };
	char *const cvm_rootfs[] = { "CODER_INNER_IMAGE=ubuntu", "CVM_WORKSPACE_ROOTFS=/cvm", NULL };
	char *const cvm_ref[] = { "CVM_IMAGE_REF=alpine", "CODER_INNER_IMAGE=/img/ubuntu", NULL };

	/* one file with both */
	ck_assert_int_eq(load_ini("[workspace]\nrootfs = /img\nstate = /st\n"
				  "[image]\nref = ubuntu\n"), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	ck_assert_str_eq(err.msg, "[workspace] rootfs (/img) and [image] ref (ubuntu) are both "
				  "set: drop [image] ref to run the unpacked directory, or drop "
				  "[workspace] rootfs to pull the image");
	/* CODER_INNER_IMAGE (a later layer) as a reference replaces the file's rootfs */
	ck_assert_int_eq(load_ini("[workspace]\nrootfs = /img\nstate = /st\n"), 0);
	ck_assert_int_eq(cvm_config_load_env(&cfg, ref_alias, &err), 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
	ck_assert_ptr_null(cfg.rootfs);
	ck_assert_str_eq(cfg.image_ref, "codercom/enterprise-base:ubuntu");
	/* ... and as a directory, the file's ref */
	teardown();
	setup();
	ck_assert_int_eq(load_ini("[workspace]\nstate = /st\n[image]\nref = ubuntu\n"), 0);
	ck_assert_int_eq(cvm_config_load_env(&cfg, dir_alias, &err), 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
	ck_assert_ptr_null(cfg.image_ref);
	ck_assert_str_eq(cfg.rootfs, "/img/ubuntu");
	/* CVM_* over CODER_*, whichever key each names */
	teardown();
	setup();
	ck_assert_int_eq(cvm_config_load_env(&cfg, cvm_rootfs, &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "state", "/st", "CVM_X", &err), 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(cfg.rootfs, "/cvm");
	ck_assert_ptr_null(cfg.image_ref);
	teardown();
	setup();
	ck_assert_int_eq(cvm_config_load_env(&cfg, cvm_ref, &err), 0);
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "state", "/st", "CVM_X", &err), 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(cfg.image_ref, "alpine");
	ck_assert_ptr_null(cfg.rootfs);
	/* a flag over the environment */
	cfg.layer = CVM_LAYER_FLAG;
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "rootfs", "/flag", "--rootfs", &err), 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(cfg.rootfs, "/flag");
	ck_assert_ptr_null(cfg.image_ref);
	/* both flags */
	ck_assert_int_eq(cvm_config_set(&cfg, "image", "ref", "busybox", "--image", &err), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	assert_contains(err.msg, "[workspace] rootfs (/flag) and [image] ref (busybox) are both set");
	/* a ref needs a state dir, as a rootfs does */
	teardown();
	setup();
	ck_assert_int_eq(cvm_config_load_env(&cfg, ref_alias, &err), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	ck_assert_str_eq(err.msg, "state is required with an image ref: a persistent directory "
				  "for the workspace's changes (and, unless [image] cache_dir is "
				  "set, the image's layers)");
}
END_TEST

START_TEST(test_envbox_switches_false)
{
	char *const off[] = { "CODER_DEBUG=false", "CODER_DISABLE_IDMAPPED_MOUNT=0", NULL };
	char *const on[] = { "CODER_DEBUG=1", "CODER_DISABLE_IDMAPPED_MOUNT=TRUE", NULL };

	/* false leaves the level the file chose; idmap goes back to auto */
	ck_assert_int_eq(load_ini("[supervisor]\nlog_level = warn\n[workspace]\nidmap = off\n"), 0);
	ck_assert_int_eq(cvm_config_load_env(&cfg, off, &err), 0);
	ck_assert_int_eq(cfg.log_level, CVM_LOG_WARN);
	ck_assert_int_eq(cfg.idmap, CVM_IDMAP_AUTO);
	ck_assert_int_eq(cvm_config_load_env(&cfg, on, &err), 0);
	ck_assert_int_eq(cfg.log_level, CVM_LOG_DEBUG);
	ck_assert_int_eq(cfg.idmap, CVM_IDMAP_OFF);
}
END_TEST

/* envbox's CIDR is dockerd's --bip: the bridge's address and prefix. */
START_TEST(test_envbox_bridge_cidr)
{
	static const struct { const char *in, *out; } cidrs[] = {
		{ "172.19.0.1/30", "172.19.0.0/30" }, { "172.19.0.0/30", "172.19.0.0/30" },
		{ "10.20.30.40/16", "10.20.0.0/16" }, { "192.168.5.77/24", "192.168.5.0/24" },
		{ "10.1.2.3/8", "10.0.0.0/8" },
	};

	for (size_t i = 0; i < sizeof(cidrs) / sizeof(cidrs[0]); i++) {
		char var[64];
		char *envp[] = { var, NULL };

		snprintf(var, sizeof(var), "CODER_DOCKER_BRIDGE_CIDR=%s", cidrs[i].in);
		ck_assert_msg(cvm_config_load_env(&cfg, envp, &err) == 0, "%s", err.msg);
		ck_assert_str_eq(cfg.network_cidr, cidrs[i].out);
	}
	/* /7 is too big a network for cvm's key (and for any pod) */
	char *const big[] = { "CODER_DOCKER_BRIDGE_CIDR=10.0.0.1/7", NULL };
	ck_assert_int_eq(cvm_config_load_env(&cfg, big, &err), -1);
	assert_contains(err.msg, "CODER_DOCKER_BRIDGE_CIDR: bad value '10.0.0.0/7' for network_cidr");
}
END_TEST

/* The pull secret is a credential: kept whole, replaced by a later value,
 * wiped on free, and never part of an error, even one about its neighbours. */
START_TEST(test_envbox_pull_secret)
{
	char *const envp[] = { "CODER_IMAGE_PULL_SECRET={\"auths\":{\"x\":{\"auth\":\"c2VjcmV0\"}}}",
			       "CODER_CPUS=lots", NULL };
	char *const again[] = { "CODER_IMAGE_PULL_SECRET=second", NULL };
	char *const empty[] = { "CODER_IMAGE_PULL_SECRET=", NULL };

	ck_assert_int_eq(cvm_config_load_env(&cfg, envp, &err), -1);
	ck_assert_ptr_null(strstr(err.msg, "c2VjcmV0"));
	ck_assert_str_eq(cfg.image_auth_json, "{\"auths\":{\"x\":{\"auth\":\"c2VjcmV0\"}}}");
	ck_assert_int_eq(cvm_config_load_env(&cfg, again, &err), 0);
	ck_assert_str_eq(cfg.image_auth_json, "second");
	ck_assert_int_eq(cvm_config_load_env(&cfg, empty, &err), 0);   /* empty: unset */
	ck_assert_str_eq(cfg.image_auth_json, "second");
	/* no key reaches it from a file or CVM_* */
	ck_assert_int_eq(load_ini("[image]\nauth_json = x\n"), -1);
	cvm_config_free(&cfg);
	ck_assert_ptr_null(cfg.image_auth_json);
	cvm_config_init(&cfg);
}
END_TEST

START_TEST(test_gpu_keys_file_and_env)
{
	char *const envp[] = { "CVM_GPU_ENABLE=yes", NULL };

	ck_assert_int_eq(load_ini("[gpu]\nenable = no\nhost_lib_dir = /host/usr/lib\n"
				  "inner_lib_dir = /usr/lib64\n"), 0);
	ck_assert_int_eq(cfg.gpu_enable, CVM_GPU_NO);
	ck_assert_str_eq(cfg.gpu_host_lib_dir, "/host/usr/lib");
	ck_assert_str_eq(cfg.gpu_inner_lib_dir, "/usr/lib64");
	ck_assert_int_eq(cvm_config_load_env(&cfg, envp, &err), 0);
	ck_assert_int_eq(cfg.gpu_enable, CVM_GPU_YES);
	ck_assert_int_eq(load_ini("[gpu]\nenable = maybe\n"), -1);
	assert_contains(err.msg, "cvm.ini:2: bad value 'maybe' for enable: expected one of auto, yes, no");
}
END_TEST

/* ---- validation ------------------------------------------------------- */

START_TEST(test_validate)
{
	static const struct {
		const char *section, *key, *value;
		const char *msg;
	} cases[] = {
		{ "workspace", "uid_base", "0", "uid_base: " },
		{ "workspace", "uid_count", "1000",
		  "uid_count: 1000 is below 65536; set allow_small_range = yes if you really "
		  "want that" },
		{ "workspace", "uid_base", "4294901760", "uid_count: " }, /* + 65536 = 2^32 */
		{ "workspace", "rootfs", "/img",
		  "state is required with rootfs: a persistent directory for the workspace's "
		  "changes" },
		{ "workspace", "state", "/st", "rootfs is required with state" },
		{ "image", "ref", "ubuntu", "state is required with an image ref" },
		{ "supervisor", "stop_timeout", "61m",
		  "stop_timeout: 3660s is more than the maximum, 1h" },
		{ "mount \"data\"", "target", "/data", "mount \"data\": source is required" },
		{ "mount \"data\"", "source", "/srv", "mount \"data\": target is required" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cvm_config c;

		cvm_config_init(&c);
		ck_assert_int_eq(cvm_config_set(&c, cases[i].section, cases[i].key, cases[i].value,
						"test", &err), 0);
		ck_assert_msg(cvm_config_validate(&c, &err) == -1, "%s accepted", cases[i].key);
		ck_assert_msg(strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) == 0,
			      "'%s' does not start with '%s'", err.msg, cases[i].msg);
		cvm_config_free(&c);
	}
}
END_TEST

START_TEST(test_validate_ok_edges)
{
	ck_assert_int_eq(load_ini("[supervisor]\nstop_timeout = 1h\n"
				  "[workspace]\nuid_base = 4294901759\nuid_count = 65536\n"), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
	ck_assert_int_eq(load_ini("[workspace]\nuid_count = 1000\nallow_small_range = yes\n"
				  "uid_base = 1\n"), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
	ck_assert_int_eq(load_ini("[workspace]\nuid_count = 0\n"), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	assert_contains(err.msg, "uid_count: ");
}
END_TEST

START_TEST(test_validate_rootfs_pairs)
{
	ck_assert_int_eq(load_ini("[workspace]\nrootfs = /img\nstate = /img\n"), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	assert_contains(err.msg, "state: ");
	ck_assert_int_eq(load_ini("[workspace]\nstate = /st\n"
				  "[mount a]\nsource = /a\ntarget = /t\n"
				  "[mount b]\nsource = /b\ntarget = /t\n"), 0);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	ck_assert_str_eq(err.msg, "mount \"b\": target /t is also the target of mount \"a\"");
}
END_TEST

/* [gpu]: defaults, file < environment, and the values refused up front. */
START_TEST(test_gpu_keys)
{
	char *env[] = { "CVM_GPU_VISIBLE_DEVICES=GPU-abc,1", "CVM_GPU_INNER_LIB_DIR=/usr/lib64", NULL };

	ck_assert_int_eq(cfg.gpu_enable, CVM_GPU_AUTO);
	ck_assert_ptr_null(cfg.gpu_visible_devices);
	ck_assert_ptr_null(cfg.gpu_host_lib_dir);
	ck_assert_str_eq(cfg.gpu_inner_lib_dir, "auto");
	ck_assert_msg(load_ini("[gpu]\nenable = yes\nvisible_devices = all\n"
			       "host_lib_dir = /var/coder/usr/lib\n") == 0, "%s", err.msg);
	ck_assert_int_eq(cvm_config_load_env(&cfg, env, &err), 0);
	ck_assert_int_eq(cfg.gpu_enable, CVM_GPU_YES);
	ck_assert_str_eq(cfg.gpu_visible_devices, "GPU-abc,1");
	ck_assert_str_eq(cfg.gpu_host_lib_dir, "/var/coder/usr/lib");
	ck_assert_str_eq(cfg.gpu_inner_lib_dir, "/usr/lib64");
	ck_assert_int_eq(cvm_config_set(&cfg, "gpu", "enable", "maybe", "--gpu", &err), -1);
	ck_assert_str_eq(err.msg, "--gpu: bad value 'maybe' for enable: expected one of auto, yes, no");
	ck_assert_int_eq(cvm_config_set(&cfg, "gpu", "visible_devices", "0,gpu0", "x", &err), -1);
	assert_contains(err.msg, "x: bad entry 'gpu0' for visible_devices");
	ck_assert_int_eq(cvm_config_set(&cfg, "gpu", "inner_lib_dir", "lib64", "x", &err), -1);
	assert_contains(err.msg, "expected auto or an absolute path");
	ck_assert_int_eq(cvm_config_set(&cfg, "gpu", "host_lib_dir", "nvidia/lib64", "x", &err), -1);
	ck_assert_str_eq(cfg.gpu_visible_devices, "GPU-abc,1");
}
END_TEST

/* ---- examples/cvm.ini ------------------------------------------------- */

static char *example_path(void)
{
	const char *root = getenv("CVM_SOURCE_ROOT");
	char *path;

	ck_assert_msg(root != NULL, "CVM_SOURCE_ROOT is not set (tests/unit/meson.build sets it)");
	ck_assert_int_ge(asprintf(&path, "%s/examples/cvm.ini", root), 0);
	return path;
}

START_TEST(test_example_parses)
{
	char *path = example_path();
	struct cvm_config def;

	ck_assert_int_eq(cvm_config_load_file(&cfg, path, true, &err), 0);
	ck_assert_str_eq(cfg.config_path, path);
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), 0);
	/* Everything is commented out: the file changes nothing. */
	cvm_config_init(&def);
	ck_assert_uint_eq(cfg.stop_timeout_ms, def.stop_timeout_ms);
	ck_assert_str_eq(cfg.hostname, def.hostname);
	ck_assert_ptr_null(cfg.rootfs);
	ck_assert_uint_eq(cfg.n_mounts, 0);
	cvm_config_free(&def);
	free(path);
}
END_TEST

/* Uncommenting every "#key = value" example (and the mount header) must give
 * a valid config, and every key must have such an example. */
START_TEST(test_example_values)
{
	static const char *const all_keys[] = {
		"stop_timeout", "signal_target", "log_level", "log_format", "control_socket",
		"rootfs", "state", "init", "hostname", "uid_base", "uid_count",
		"allow_small_range", "user", "workdir", "env", "env_pass", "network", "network_cidr",
		"engine_dirs", "fuse",
		"tun", "source", "target", "readonly", "cpus", "memory", "virtualize", "files",
		"enable", "visible_devices", "host_lib_dir", "inner_lib_dir", "script", "idmap",
		"ref", "default_registry", "mirrors", "cache_dir", "auth_file", "ca_dir", "pull",
	};
	char *path = example_path();
	FILE *in = fopen(path, "r"), *out = fopen(ini_path, "w");
	char line[512], text[65536] = "";

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	while (fgets(line, sizeof(line), in)) {
		bool example = line[0] == '#' && (line[1] == '[' || (line[1] >= 'a' &&
				line[1] <= 'z' && strstr(line, " = ")));

		fputs(example ? line + 1 : line, out);
		if (example)
			strncat(text, line, sizeof(text) - strlen(text) - 1);
	}
	fclose(in);
	fclose(out);
	for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "#%s = ", all_keys[i]);
		assert_contains(text, needle);
	}
	ck_assert_msg(cvm_config_load_file(&cfg, ini_path, true, &err) == 0, "%s", err.msg);
	/* rootfs and ref are the two ways to name the image: both examples
	 * together contradict each other (and say so); each alone is valid. */
	ck_assert_int_eq(cvm_config_validate(&cfg, &err), -1);
	assert_contains(err.msg, "are both set: drop [image] ref");
	ck_assert_ptr_nonnull(cfg.image_ref);
	cfg.layer = CVM_LAYER_FLAG;
	ck_assert_int_eq(cvm_config_set(&cfg, "workspace", "rootfs", cfg.rootfs, "t", &err), 0);
	ck_assert_msg(cvm_config_validate(&cfg, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(cfg.rootfs);
	ck_assert_ptr_null(cfg.image_ref);
	ck_assert_uint_eq(cfg.n_mounts, 1);
	free(path);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *parsers = tcase_create("parsers");
	TCase *layers = tcase_create("layers");
	TCase *validate = tcase_create("validate");

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))
	tcase_add_loop_test(parsers, test_size_good, 0, N(good_sizes));
	tcase_add_loop_test(parsers, test_size_bad, 0, N(bad_sizes));
	tcase_add_loop_test(parsers, test_duration_good, 0, N(good_durations));
	tcase_add_loop_test(parsers, test_duration_bad, 0, N(bad_durations));
	tcase_add_test(parsers, test_bool);
	tcase_add_test(parsers, test_u32);
	tcase_add_test(parsers, test_log_level_name);
	suite_add_tcase(s, parsers);

	tcase_add_unchecked_fixture(layers, make_tmpdir, remove_tmpdir);
	tcase_add_checked_fixture(layers, setup, teardown);
	tcase_add_test(layers, test_defaults);
	tcase_add_test(layers, test_precedence);
	tcase_add_test(layers, test_flag_error);
	tcase_add_test(layers, test_failed_set_keeps_value);
	tcase_add_test(layers, test_file_all_keys);
	tcase_add_test(layers, test_gpu_keys_file_and_env);
	tcase_add_test(layers, test_file_list_clear);
	tcase_add_test(layers, test_file_crlf_bom);
	tcase_add_test(layers, test_file_later_value_wins);
	tcase_add_test(layers, test_file_missing);
	tcase_add_test(layers, test_file_unreadable);
	tcase_add_test(layers, test_file_long_line);
	tcase_add_test(layers, test_file_first_error_wins);
	tcase_add_loop_test(layers, test_file_bad, 0, N(bad_files));
	tcase_add_test(layers, test_mounts);
	tcase_add_test(layers, test_env_keys);
	tcase_add_test(layers, test_env_unknown_key);
	tcase_add_test(layers, test_env_bad_values);
	tcase_add_test(layers, test_seccomp_deny);
	tcase_add_test(layers, test_envbox_aliases);
	tcase_add_test(layers, test_envbox_bad_values);
	tcase_add_test(layers, test_envbox_precedence);
	tcase_add_test(layers, test_bootstrap_script_lines);
	tcase_add_test(layers, test_bootstrap_needs_workspace);
	tcase_add_test(layers, test_gpu_keys);
	tcase_add_test(layers, test_image_keys);
	tcase_add_loop_test(layers, test_image_bad_keys, 0, N(bad_image_keys));
	tcase_add_test(layers, test_image_or_rootfs);
	tcase_add_test(layers, test_envbox_switches_false);
	tcase_add_test(layers, test_envbox_bridge_cidr);
	tcase_add_test(layers, test_envbox_pull_secret);
	tcase_add_test(layers, test_example_parses);
	tcase_add_test(layers, test_example_values);
	suite_add_tcase(s, layers);

	tcase_add_unchecked_fixture(validate, make_tmpdir, remove_tmpdir);
	tcase_add_checked_fixture(validate, setup, teardown);
	tcase_add_test(validate, test_validate);
	tcase_add_test(validate, test_validate_ok_edges);
	tcase_add_test(validate, test_validate_rootfs_pairs);
	suite_add_tcase(s, validate);
#undef N
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
