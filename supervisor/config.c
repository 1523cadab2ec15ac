/* cvm configuration: one key table, three loaders (INI, environment, flags)
 * that all end in cvm_config_set(), and the value parsers they share.
 *
 * Ownership note: string defaults point at the literals in the key table and
 * empty lists at a static empty array, so cvm_config_init() cannot fail.
 * cvm_config_set() and cvm_config_free() know this; nobody else should
 * free() or realloc() a config field directly. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../runtime/cleanup.h"
#include "../runtime/net.h"
#include "../runtime/procfs/files.h"
#include "../runtime/seccomp.h"

/* Enum fields are written through an int pointer by the generic setter. */
_Static_assert(sizeof(enum cvm_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cvm_log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cvm_signal_target) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cvm_gpu_enable) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cvm_pull_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cvm_idmap_mode) == sizeof(int), "enum size");
_Static_assert(CVM_GPU_AUTO == 0 && CVM_GPU_YES == 1 && CVM_GPU_NO == 2, "gpu_enable_names");

enum key_type {
	T_STRING,       /* any non-empty text */
	T_PATH,         /* absolute path */
	T_BOOL,
	T_U32,
	T_DURATION,     /* uint64_t milliseconds */
	T_SIZE,         /* uint64_t bytes; no key uses it yet */
	T_ENUM,         /* int index into choices[] */
	T_ENV_LIST,     /* NAME=VALUE entries, newline-separated, replace by NAME */
	T_NAME_LIST,    /* NAME or PREFIX*, separated by commas or whitespace */
	T_PATH_LIST,    /* absolute paths without "..", separated by commas or whitespace */
	T_WORD_LIST,    /* words separated by commas or whitespace; the key's check judges them */
};

/* SEC_MOUNT stays last: the named-section lookup stops at it. */
enum section_id { SEC_SUPERVISOR, SEC_WORKSPACE, SEC_DEVICES, SEC_RESOURCES, SEC_PROC,
		  SEC_GPU, SEC_BOOTSTRAP, SEC_IMAGE, SEC_MOUNT };

struct key;
typedef int (*key_check)(const struct key *k, const char *value, const char *source,
			 struct cvm_error *err);

struct key {
	enum section_id section;
	const char *name;
	enum key_type type;
	size_t off;                     /* field in cvm_config (or cvm_mount) */
	size_t count_off;               /* lists: the size_t entry count */
	const char *def;                /* default as text; NULL: none */
	const char *const *choices;     /* T_ENUM: names, NULL-terminated */
	key_check check;                /* extra constraint on the text */
	const char *doc;
	bool ini_lines;                 /* T_STRING: consecutive lines of one INI file join with
					   newlines (a script), instead of the last one winning */
};

static const char *const section_names[] = {
	[SEC_SUPERVISOR] = "supervisor",
	[SEC_WORKSPACE] = "workspace",
	[SEC_DEVICES] = "devices",
	[SEC_RESOURCES] = "resources",
	[SEC_PROC] = "proc",
	[SEC_GPU] = "gpu",
	[SEC_BOOTSTRAP] = "bootstrap",
	[SEC_IMAGE] = "image",
	[SEC_MOUNT] = "mount",
};

static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const signal_target_names[] = { "child", "group", "all", NULL };
static const char *const gpu_enable_names[] = { "auto", "yes", "no", NULL };
static const char *const image_pull_names[] = { "missing", "always", "never", NULL };
static const char *const idmap_names[] = { "auto", "off", NULL };

/* Lists start out pointing here so that consumers can always walk them. */
static char *empty_list[] = { NULL };

static int check_hostname(const struct key *k, const char *value, const char *source,
			  struct cvm_error *err);
static int check_network(const struct key *k, const char *value, const char *source,
			 struct cvm_error *err);
static int check_cidr(const struct key *k, const char *value, const char *source,
		      struct cvm_error *err);
static int check_limit(const struct key *k, const char *value, const char *source,
		       struct cvm_error *err);
static int check_proc_files(const struct key *k, const char *value, const char *source,
			    struct cvm_error *err);
static int check_syscalls(const struct key *k, const char *value, const char *source,
			  struct cvm_error *err);
static int check_gpu_devices(const struct key *k, const char *value, const char *source,
			     struct cvm_error *err);
static int check_auto_or_path(const struct key *k, const char *value, const char *source,
			      struct cvm_error *err);
static int check_image_ref(const struct key *k, const char *value, const char *source,
			   struct cvm_error *err);
static int check_registries(const struct key *k, const char *value, const char *source,
			    struct cvm_error *err);

#define CFG(f) offsetof(struct cvm_config, f)
#define MNT(f) offsetof(struct cvm_mount, f)

static const struct key keys[] = {
	{ SEC_SUPERVISOR, "stop_timeout", T_DURATION, CFG(stop_timeout_ms), 0, "10s", NULL, NULL,
	  "grace between SIGTERM and SIGKILL on stop" },
	{ SEC_SUPERVISOR, "signal_target", T_ENUM, CFG(signal_target), 0, "child",
	  signal_target_names, NULL, "who gets forwarded signals: the child, its group, or every process" },
	{ SEC_SUPERVISOR, "log_level", T_ENUM, CFG(log_level), 0, "info", log_level_names, NULL,
	  "least severe message that is logged" },
	{ SEC_SUPERVISOR, "log_format", T_ENUM, CFG(log_format), 0, "text", log_format_names, NULL,
	  "text or one JSON object per line" },
	{ SEC_SUPERVISOR, "control_socket", T_PATH, CFG(control_socket), 0,
	  CVM_DEFAULT_CONTROL_SOCKET, NULL, NULL, "outer path of the control socket" },

	{ SEC_WORKSPACE, "rootfs", T_PATH, CFG(rootfs), 0, NULL, NULL, NULL,
	  "unpacked image directory; unset: plain process mode" },
	{ SEC_WORKSPACE, "state", T_PATH, CFG(state), 0, NULL, NULL, NULL,
	  "persistent directory for the workspace's changes" },
	{ SEC_WORKSPACE, "init", T_STRING, CFG(init), 0, "auto", NULL, NULL,
	  "inner init: auto or a command line" },
	{ SEC_WORKSPACE, "hostname", T_STRING, CFG(hostname), 0, "cvm", NULL, check_hostname,
	  "hostname inside the workspace" },
	{ SEC_WORKSPACE, "uid_base", T_U32, CFG(uid_base), 0, "100000", NULL, NULL,
	  "first outer uid/gid of the workspace's id range" },
	{ SEC_WORKSPACE, "uid_count", T_U32, CFG(uid_count), 0, "65536", NULL, NULL,
	  "size of the id range" },
	{ SEC_WORKSPACE, "allow_small_range", T_BOOL, CFG(allow_small_range), 0, "no", NULL, NULL,
	  "permit uid_count below 65536" },
	{ SEC_WORKSPACE, "user", T_STRING, CFG(user), 0, "root", NULL, NULL,
	  "user inside: name or uid[:gid]" },
	{ SEC_WORKSPACE, "workdir", T_PATH, CFG(workdir), 0, NULL, NULL, NULL,
	  "working directory inside; unset: the user's home or /" },
	{ SEC_WORKSPACE, "env", T_ENV_LIST, CFG(env), CFG(n_env), NULL, NULL, NULL,
	  "NAME=VALUE set inside the workspace" },
	{ SEC_WORKSPACE, "env_pass", T_NAME_LIST, CFG(env_pass), CFG(n_env_pass), NULL, NULL,
	  NULL, "outer variables passed in: NAME or PREFIX*" },
	{ SEC_WORKSPACE, "network", T_STRING, CFG(network), 0, "private", NULL, check_network,
	  "private (own network namespace, veth, NAT) or host (the outer container's)" },
	{ SEC_WORKSPACE, "network_cidr", T_STRING, CFG(network_cidr), 0, CVM_DEFAULT_NETWORK_CIDR,
	  NULL, check_cidr, "addresses of the private network: outer end .1, workspace .2" },
	{ SEC_WORKSPACE, "engine_dirs", T_PATH_LIST, CFG(engine_dirs), CFG(n_engine_dirs),
	  CVM_DEFAULT_ENGINE_DIRS, NULL, NULL,
	  "dirs inside kept on the state dir's filesystem, for nested container engines" },
	{ SEC_WORKSPACE, "seccomp", T_BOOL, CFG(seccomp), 0, "yes", NULL, NULL,
	  "refuse the syscalls that reach the node (kexec, modules, the clock, ...)" },
	{ SEC_WORKSPACE, "seccomp_deny", T_NAME_LIST, CFG(seccomp_deny), CFG(n_seccomp_deny), NULL,
	  NULL, check_syscalls, "more syscalls to refuse with EPERM, by name" },
	{ SEC_WORKSPACE, "idmap", T_ENUM, CFG(idmap), 0, "auto", idmap_names, NULL,
	  "auto: the image dir is an idmapped mount (a one-time copy into STATE/rootfs where "
	  "its filesystem cannot be idmapped); off: always that copy" },

	{ SEC_DEVICES, "fuse", T_BOOL, CFG(dev_fuse), 0, "no", NULL, NULL, "provide /dev/fuse" },
	{ SEC_DEVICES, "tun", T_BOOL, CFG(dev_tun), 0, "no", NULL, NULL, "provide /dev/net/tun" },

	{ SEC_RESOURCES, "cpus", T_STRING, CFG(res_cpus), 0, "auto", NULL, check_limit,
	  "CPUs (cpu.max): a number like 0.5 or 4, auto (the outer container's), or none" },
	{ SEC_RESOURCES, "memory", T_STRING, CFG(res_memory), 0, "auto", NULL, check_limit,
	  "memory.max: a size, auto (the outer container's), or none" },
	{ SEC_RESOURCES, "memory_high", T_STRING, CFG(res_memory_high), 0, NULL, NULL, check_limit,
	  "memory.high: a size where reclaim starts" },
	{ SEC_RESOURCES, "swap", T_STRING, CFG(res_swap), 0, NULL, NULL, check_limit,
	  "memory.swap.max: a size (0: no swap)" },
	{ SEC_RESOURCES, "pids", T_STRING, CFG(res_pids), 0, NULL, NULL, check_limit,
	  "pids.max: most processes and threads" },
	{ SEC_RESOURCES, "cpuset", T_STRING, CFG(res_cpuset), 0, NULL, NULL, check_limit,
	  "cpuset.cpus: CPUs the workspace may use, like 0-3,6" },
	{ SEC_RESOURCES, "io_weight", T_STRING, CFG(res_io_weight), 0, NULL, NULL, check_limit,
	  "io.weight: 1 to 10000 (default 100)" },

	{ SEC_PROC, "virtualize", T_BOOL, CFG(proc_virtualize), 0, "yes", NULL, NULL,
	  "serve /proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats and the CPU "
	  "list from the workspace's cgroup" },
	{ SEC_PROC, "files", T_NAME_LIST, CFG(proc_files), CFG(n_proc_files), NULL, NULL,
	  check_proc_files, "which of them (unset: all)" },
	{ SEC_PROC, "passthrough", T_BOOL, CFG(proc_passthrough), 0, "yes", NULL, NULL,
	  "FUSE passthrough (Linux >= 6.9) for processes that open a file again after "
	  "closing it: one round trip per open instead of three" },
	{ SEC_PROC, "follow", T_BOOL, CFG(proc_follow), 0, "yes", NULL, NULL,
	  "while a process reads in a loop, answer it from its own CPU (a SCHED_IDLE thread "
	  "of the server): no cross-CPU wakeups" },

	{ SEC_GPU, "enable", T_ENUM, CFG(gpu_enable), 0, "auto", gpu_enable_names, NULL,
	  "NVIDIA GPUs inside: auto (when the outer container has them), yes, or no" },
	{ SEC_GPU, "visible_devices", T_STRING, CFG(gpu_visible_devices), 0, NULL, NULL,
	  check_gpu_devices, "all, none, or GPU indices / UUIDs, comma separated "
	  "(unset: NVIDIA_VISIBLE_DEVICES, else all)" },
	{ SEC_GPU, "host_lib_dir", T_PATH, CFG(gpu_host_lib_dir), 0, NULL, NULL, NULL,
	  "outer dir holding the node's driver libraries (unset: /usr/local/nvidia/lib64 when "
	  "present, plus what the NVIDIA runtime mounted)" },
	{ SEC_GPU, "inner_lib_dir", T_STRING, CFG(gpu_inner_lib_dir), 0, "auto", NULL,
	  check_auto_or_path, "where the libraries go inside: auto (from the image's "
	  "os-release) or an absolute path" },
	{ SEC_BOOTSTRAP, "script", T_STRING, CFG(bootstrap_script), 0, NULL, NULL, NULL,
	  "shell script run inside as the user once the workspace is up", true },

	{ SEC_IMAGE, "ref", T_STRING, CFG(image_ref), 0, NULL, NULL, check_image_ref,
	  "registry image as the rootfs: [REGISTRY/]REPO[:TAG][@DIGEST] (instead of "
	  "[workspace] rootfs)" },
	{ SEC_IMAGE, "default_registry", T_STRING, CFG(image_default_registry), 0, "docker.io",
	  NULL, check_registries, "registry of short names (ubuntu, codercom/enterprise-base)" },
	{ SEC_IMAGE, "mirrors", T_WORD_LIST, CFG(image_mirrors), CFG(n_image_mirrors), NULL, NULL,
	  check_registries, "registry mirrors tried first, HOST[:PORT][/PATH] or a URL, comma "
	  "separated" },
	{ SEC_IMAGE, "cache_dir", T_PATH, CFG(image_cache_dir), 0, NULL, NULL, NULL,
	  "unpacked layers by digest (unset: STATE/images); a node-wide dir may be shared by pods" },
	{ SEC_IMAGE, "auth_file", T_PATH, CFG(image_auth_file), 0, NULL, NULL, NULL,
	  "docker config.json with the registries' credentials" },
	{ SEC_IMAGE, "ca_dir", T_PATH, CFG(image_ca_dir), 0, NULL, NULL, NULL,
	  "extra CA certificates for the registries: a dir of PEM files, or one PEM file" },
	{ SEC_IMAGE, "pull", T_ENUM, CFG(image_pull), 0, "missing", image_pull_names, NULL,
	  "missing (the cache when it has the ref's digest), always (ask the registry), or "
	  "never (the cache only)" },

	{ SEC_MOUNT, "source", T_PATH, MNT(source), 0, NULL, NULL, NULL, "outer path" },
	{ SEC_MOUNT, "target", T_PATH, MNT(target), 0, NULL, NULL, NULL, "path inside" },
	{ SEC_MOUNT, "readonly", T_BOOL, MNT(readonly), 0, "no", NULL, NULL, "mount read-only" },
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* ---- value parsers ---------------------------------------------------- */

/* Fractions keep this many digits; more are read and dropped (truncation),
 * which keeps frac * multiplier (at most 2^40) far below 2^64. */
#define FRAC_DIGITS 6
#define FRAC_SCALE 1000000ULL

struct decimal {
	uint64_t whole;
	uint64_t frac;          /* fraction in units of 1/FRAC_SCALE */
	bool has_frac;
	bool overflow;
};

/* Reads [0-9]+ at *p. Overflow is only recorded, so that trailing junk is
 * still reported as EINVAL rather than ERANGE. */
static bool read_digits(const char **p, uint64_t *out, bool *overflow)
{
	const char *s = *p;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return false;
	for (; isdigit((unsigned char)*s); s++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			*overflow = true;
	}
	*p = s;
	*out = v;
	return true;
}

/* DIGITS[.DIGITS]; no sign, no blanks, both sides of the dot required. */
static bool read_decimal(const char **p, struct decimal *d)
{
	const char *s = *p;
	uint64_t scale = FRAC_SCALE;

	*d = (struct decimal){ 0 };
	if (!read_digits(&s, &d->whole, &d->overflow))
		return false;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return false;
		d->has_frac = true;
		for (; isdigit((unsigned char)*s); s++) {
			scale /= 10;
			d->frac += (uint64_t)(*s - '0') * scale;
		}
	}
	*p = s;
	return true;
}

static int decimal_scale(const struct decimal *d, uint64_t mult, uint64_t *out)
{
	uint64_t v;

	if (d->overflow || __builtin_mul_overflow(d->whole, mult, &v) ||
	    __builtin_add_overflow(v, d->frac * mult / FRAC_SCALE, &v)) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

/* "", B, K, KB, KiB, ... T: all binary, case-insensitive. 0 if unknown. */
static uint64_t size_multiplier(const char *s)
{
	static const char units[] = "kmgt";
	const char *u;
	uint64_t mult = 1;

	if (*s == '\0' || strcasecmp(s, "b") == 0)
		return 1;
	u = strchr(units, tolower((unsigned char)*s));
	if (!u)
		return 0;
	mult <<= 10 * (u - units + 1);
	s++;
	if (*s == '\0' || strcasecmp(s, "b") == 0 || strcasecmp(s, "ib") == 0)
		return mult;
	return 0;
}

int cvm_parse_size(const char *s, uint64_t *out)
{
	struct decimal d;
	uint64_t mult;

	if (!s || !read_decimal(&s, &d))
		goto inval;
	mult = size_multiplier(s);
	/* A fraction of a byte means a typo, not a value to round. */
	if (mult == 0 || (mult == 1 && d.has_frac))
		goto inval;
	return decimal_scale(&d, mult, out);
inval:
	errno = EINVAL;
	return -1;
}

int cvm_parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct { const char *suffix; uint64_t ms; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	struct decimal d;

	if (!s || !read_decimal(&s, &d))
		goto inval;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].suffix) == 0)
			return decimal_scale(&d, units[i].ms, out);
	}
inval:
	errno = EINVAL;
	return -1;
}

int cvm_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; s && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	errno = EINVAL;
	return -1;
}

int cvm_parse_u32(const char *s, uint32_t *out)
{
	bool overflow = false;
	uint64_t v;

	if (!s || !read_digits(&s, &v, &overflow) || *s != '\0') {
		errno = EINVAL;
		return -1;
	}
	if (overflow || v > UINT32_MAX) {
		errno = ERANGE;
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

const char *cvm_log_level_name(enum cvm_log_level l)
{
	if ((unsigned)l < sizeof(log_level_names) / sizeof(log_level_names[0]) - 1)
		return log_level_names[l];
	return "unknown";
}

/* ---- key table helpers ----------------------------------------------- */

static void *field_of(void *base, const struct key *k)
{
	return (char *)base + k->off;
}

static const struct key *find_key(enum section_id sec, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].section == sec && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

static int find_choice(const char *const *choices, const char *value)
{
	for (int i = 0; choices[i]; i++) {
		if (strcmp(choices[i], value) == 0)
			return i;
	}
	return -1;
}

/* What a key expects, for "bad value" and "empty value" messages. */
static const char *expected(const struct key *k, char *buf, size_t size)
{
	size_t len = 0;

	switch (k->type) {
	case T_STRING: return "expected some text";
	case T_PATH: return "must be an absolute path";
	case T_BOOL: return "expected yes or no (also true/false, on/off, 1/0)";
	case T_U32: return "expected a whole number from 0 to 4294967295";
	case T_DURATION: return "expected a duration like 30s, 500ms, 2m";
	case T_SIZE: return "expected a size like 512M, 4G, 1.5G";
	case T_ENV_LIST: return "expected NAME=VALUE";
	case T_NAME_LIST: return "expected variable names or PREFIX*, separated by commas";
	case T_PATH_LIST: return "expected absolute paths, separated by commas";
	case T_WORD_LIST: return "expected words separated by commas";
	case T_ENUM:
		break;
	}
	len = (size_t)snprintf(buf, size, "expected one of");
	for (size_t i = 0; k->choices[i] && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s %s", i ? "," : "",
					k->choices[i]);
	return buf;
}

static int bad_value(const struct key *k, const char *value, const char *source,
		     struct cvm_error *err)
{
	char buf[128];

	if (errno == ERANGE)
		return cvm_error_set(err, 0, "%s: bad value '%s' for %s: too large; %s",
				     source, value, k->name, expected(k, buf, sizeof(buf)));
	return cvm_error_set(err, 0, "%s: bad value '%s' for %s: %s", source, value, k->name,
			     expected(k, buf, sizeof(buf)));
}

/* Scalars, shared by the defaults and cvm_config_set(); errno on failure. */
static int parse_scalar(const struct key *k, const char *value, void *field)
{
	int i;

	switch (k->type) {
	case T_BOOL: return cvm_parse_bool(value, field);
	case T_U32: return cvm_parse_u32(value, field);
	case T_DURATION: return cvm_parse_duration_ms(value, field);
	case T_SIZE: return cvm_parse_size(value, field);
	case T_ENUM:
		i = find_choice(k->choices, value);
		if (i < 0) {
			errno = EINVAL;
			return -1;
		}
		*(int *)field = i;
		return 0;
	case T_STRING:
	case T_PATH:
	case T_ENV_LIST:
	case T_NAME_LIST:
	case T_PATH_LIST:
	case T_WORD_LIST:
		break;
	}
	errno = EINVAL;
	return -1;
}

/* ---- strings and lists ------------------------------------------------ */

static void free_string(const struct key *k, char **field)
{
	if (*field != k->def)
		free(*field);
	*field = NULL;
}

static int set_string(const struct key *k, void *base, const char *value,
		      const char *source, struct cvm_error *err)
{
	char **field = field_of(base, k);
	char *copy;

	if (k->type == T_PATH && value[0] != '/')
		return bad_value(k, value, source, err);
	if (k->check && k->check(k, value, source, err) < 0)
		return -1;
	copy = strdup(value);
	if (!copy)
		return cvm_error_set(err, ENOMEM, "%s: %s", source, k->name);
	free_string(k, field);
	*field = copy;
	return 0;
}

static void list_clear(char ***list, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*list)[i]);
	if (*list != empty_list)
		free(*list);
	*list = empty_list;
	*n = 0;
}

/* Takes ownership of @entry. */
static int list_append(char ***list, size_t *n, char *entry)
{
	char **old = *list == empty_list ? NULL : *list;
	char **grown = realloc(old, (*n + 2) * sizeof(*grown));

	if (!grown) {
		free(entry);
		return -1;
	}
	grown[(*n)++] = entry;
	grown[*n] = NULL;
	*list = grown;
	return 0;
}

static bool is_name_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static bool is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Length of a [A-Za-z_][A-Za-z0-9_]* variable name at @s, 0 if none. */
static size_t name_len(const char *s, size_t max)
{
	size_t i = 0;

	if (max == 0 || !is_name_start(s[0]))
		return 0;
	while (i < max && is_name_char(s[i]))
		i++;
	return i;
}

/* Next token of @s delimited by any of @seps; NULL at the end. */
static const char *next_token(const char **s, const char *seps, size_t *len)
{
	const char *t = *s + strspn(*s, seps);

	if (*t == '\0')
		return NULL;
	*len = strcspn(t, seps);
	*s = t + *len;
	return t;
}

static bool valid_env_entry(const char *t, size_t len)
{
	size_t n = name_len(t, len);

	return n > 0 && n < len && t[n] == '=';
}

static bool valid_pass_name(const char *t, size_t len)
{
	size_t n = name_len(t, len);

	/* A bare "*" would pass the whole outer environment: name a prefix. */
	return n == len || (n > 0 && n + 1 == len && t[n] == '*');
}

/* An absolute path inside, not "/" itself, without "." or ".." parts. */
static bool valid_list_path(const char *t, size_t len)
{
	if (len < 2 || t[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		size_t part = i + 1;
		if (t[i] != '/')
			continue;
		while (part < len && t[part] != '/')
			part++;
		if ((part - i == 2 && t[i + 1] == '.') ||
		    (part - i == 3 && t[i + 1] == '.' && t[i + 2] == '.'))
			return false;
	}
	return true;
}

static bool valid_list_entry(const struct key *k, const char *t, size_t len)
{
	if (k->type == T_ENV_LIST)
		return valid_env_entry(t, len);
	if (k->type == T_PATH_LIST)
		return valid_list_path(t, len);
	if (k->type == T_WORD_LIST)
		return true;
	return valid_pass_name(t, len);
}

/* A later NAME=VALUE replaces an earlier one, so that layers override per
 * variable instead of piling up duplicates. */
static int env_put(char ***list, size_t *n, const char *t, size_t len)
{
	size_t name = strcspn(t, "=") + 1;
	char *entry = strndup(t, len);

	if (!entry)
		return -1;
	for (size_t i = 0; i < *n; i++) {
		if (strncmp((*list)[i], entry, name) == 0) {
			free((*list)[i]);
			(*list)[i] = entry;
			return 0;
		}
	}
	return list_append(list, n, entry);
}

static int pass_put(char ***list, size_t *n, const char *t, size_t len)
{
	char *entry;

	for (size_t i = 0; i < *n; i++) {
		if (strlen((*list)[i]) == len && strncmp((*list)[i], t, len) == 0)
			return 0;
	}
	entry = strndup(t, len);
	if (!entry)
		return -1;
	return list_append(list, n, entry);
}

/* Empty clears the list; otherwise every entry is checked before any is
 * added, so a bad value leaves the list as it was. */
static int set_list(const struct key *k, void *base, const char *value, const char *source,
		    struct cvm_error *err)
{
	bool env = k->type == T_ENV_LIST;
	const char *seps = env ? "\n" : ", \t\n";
	char ***list = field_of(base, k);
	size_t *n = (size_t *)((char *)base + k->count_off);
	const char *p = value, *t;
	size_t len;

	if (value[0] == '\0') {
		list_clear(list, n);
		return 0;
	}
	if (k->check && k->check(k, value, source, err) < 0)
		return -1;
	while ((t = next_token(&p, seps, &len))) {
		if (!valid_list_entry(k, t, len))
			return cvm_error_set(err, 0, "%s: bad entry '%.*s' for %s: %s", source,
					     (int)len, t, k->name,
					     env ? "expected NAME=VALUE, one per line" :
					     k->type == T_PATH_LIST ? "expected an absolute path "
					     "without . or .. parts" : "expected a variable name or PREFIX*");
	}
	for (p = value; (t = next_token(&p, seps, &len));) {
		if ((env ? env_put : pass_put)(list, n, t, len) < 0)
			return cvm_error_set(err, ENOMEM, "%s: %s", source, k->name);
	}
	return 0;
}

/* ---- extra checks ----------------------------------------------------- */

/* sethostname() takes at most 64 bytes; RFC 1123 characters catch typos. */
static int check_hostname(const struct key *k, const char *value, const char *source,
			  struct cvm_error *err)
{
	size_t len = strlen(value);

	if (len <= 64 && value[0] != '-' && value[0] != '.' &&
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == len)
		return 0;
	return cvm_error_set(err, 0,
			     "%s: bad value '%s' for %s: expected at most 64 letters, digits, "
			     "'-' and '.'", source, value, k->name);
}

static int check_network(const struct key *k, const char *value, const char *source,
			 struct cvm_error *err)
{
	if (strcmp(value, "host") == 0 || strcmp(value, "private") == 0)
		return 0;
	return cvm_error_set(err, 0, "%s: bad value '%s' for %s: expected private or host", source,
			     value, k->name);
}

static int check_cidr(const struct key *k, const char *value, const char *source,
		      struct cvm_error *err)
{
	uint32_t net;
	unsigned prefix;

	if (cvm_net_parse_cidr(value, &net, &prefix) == 0)
		return 0;
	return cvm_error_set(err, 0, "%s: bad value '%s' for %s: expected an IPv4 network like "
			     "%s (host bits zero, prefix /8 to /30)", source, value, k->name,
			     CVM_DEFAULT_NETWORK_CIDR);
}

/* Values of [resources]; turned into cgroup files in supervisor/resources.c. */
static int check_limit(const struct key *k, const char *value, const char *source,
		       struct cvm_error *err)
{
	const char *name = k->name;
	uint64_t size;
	uint32_t n;
	char *end;

	if (!strcmp(name, "cpus")) {
		double d = strtod(value, &end);
		if (!strcmp(value, "auto") || !strcmp(value, "none") ||
		    (!*end && end != value && isdigit((unsigned char)value[0]) && d > 0 && d <= 4096))
			return 0;
		return cvm_error_set(err, 0, "%s: bad value '%s' for cpus: expected a number of CPUs "
				     "like 0.5 or 4, auto, or none", source, value);
	}
	if (!strcmp(name, "memory") && (!strcmp(value, "auto") || !strcmp(value, "none")))
		return 0;
	if (!strcmp(name, "memory") || !strcmp(name, "memory_high") || !strcmp(name, "swap")) {
		if (cvm_parse_size(value, &size) == 0)
			return 0;
		return cvm_error_set(err, 0, "%s: bad value '%s' for %s: expected a size like 512M, "
				     "4G%s", source, value, name,
				     !strcmp(name, "memory") ? ", auto, or none" : "");
	}
	if (!strcmp(name, "pids"))
		return cvm_parse_u32(value, &n) == 0 && n > 0 ? 0 :
			cvm_error_set(err, 0, "%s: bad value '%s' for pids: expected a whole number "
				      "above 0", source, value);
	if (!strcmp(name, "io_weight"))
		return cvm_parse_u32(value, &n) == 0 && n >= 1 && n <= 10000 ? 0 :
			cvm_error_set(err, 0, "%s: bad value '%s' for io_weight: expected 1 to 10000",
				      source, value);
	/* cpuset */
	if (strspn(value, "0123456789,-") == strlen(value) && isdigit((unsigned char)value[0]))
		return 0;
	return cvm_error_set(err, 0, "%s: bad value '%s' for cpuset: expected a CPU list like "
			     "0-3,6", source, value);
}

/* The first word of @value (split at any of @seps) that @ok refuses, in
 * @bad; false when every word passes. It walks @value itself, so a long
 * list is checked whole, and a word too long for @bad is refused. */
static bool find_bad_word(const char *value, const char *seps, bool (*ok)(const char *w),
			  char *bad, size_t size)
{
	const char *p = value, *t;
	size_t len;

	while ((t = next_token(&p, seps, &len))) {
		snprintf(bad, size, "%.*s", (int)len, t);
		if (len >= size || !ok(bad))
			return true;
	}
	return false;
}

static bool proc_file_known(const char *w)
{
	return cvm_procfs_file_by_name(w) >= 0;
}

static int check_proc_files(const struct key *k, const char *value, const char *source,
			    struct cvm_error *err)
{
	char w[256];

	if (find_bad_word(value, ", \t\n", proc_file_known, w, sizeof(w)))
		return cvm_error_set(err, 0, "%s: unknown file '%s' for %s: expected some of %s",
				     source, w, k->name, cvm_procfs_file_names());
	return 0;
}

static bool syscall_name_ok(const char *w)
{
	return !strchr(w, '*') && cvm_seccomp_known_syscall(w);
}

static int check_syscalls(const struct key *k, const char *value, const char *source,
			  struct cvm_error *err)
{
	char w[256];

	if (find_bad_word(value, ", \t\n", syscall_name_ok, w, sizeof(w)))
		return cvm_error_set(err, 0, "%s: unknown syscall '%s' for %s: expected syscall "
				     "names of this architecture, like ptrace, bpf, unshare",
				     source, w, k->name);
	return 0;
}

static bool gpu_entry_ok(const char *w)
{
	return strspn(w, "0123456789") == strlen(w) || !strncasecmp(w, "GPU-", 4) ||
	       !strncasecmp(w, "MIG-", 4);
}

/* NVIDIA_VISIBLE_DEVICES syntax: all, none, void, or a list of indices and
 * GPU-/MIG- UUIDs (which ones exist is checked when planning). */
static int check_gpu_devices(const struct key *k, const char *value, const char *source,
			     struct cvm_error *err)
{
	char w[256];

	if (!strcmp(value, "all") || !strcmp(value, "none") || !strcmp(value, "void"))
		return 0;
	if (find_bad_word(value, ", \t", gpu_entry_ok, w, sizeof(w)))
		return cvm_error_set(err, 0, "%s: bad entry '%s' for %s: expected all, none, void, "
				     "or GPU indices and UUIDs (GPU-...) separated by commas", source,
				     w, k->name);
	return 0;
}

static int check_auto_or_path(const struct key *k, const char *value, const char *source,
			      struct cvm_error *err)
{
	if (!strcmp(value, "auto") || value[0] == '/')
		return 0;
	return cvm_error_set(err, 0, "%s: bad value '%s' for %s: expected auto or an absolute path",
			     source, value, k->name);
}

/* A registry reference as [image] ref: its full grammar is image/ref.c's;
 * here only what is surely not one, and a path, which is rootfs's. */
static int check_image_ref(const struct key *k, const char *value, const char *source,
			   struct cvm_error *err)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				 "._-/:@";

	if (value[0] == '/')
		return cvm_error_set(err, 0, "%s: '%s' is a path: an unpacked image directory is "
				     "[workspace] rootfs (--rootfs); %s is a registry reference like "
				     "ubuntu:24.04 or registry.example.com/team/image:tag", source,
				     value, k->name);
	if (strspn(value, ok) == strlen(value) && isalnum((unsigned char)value[0]))
		return 0;
	return cvm_error_set(err, 0, "%s: bad value '%s' for %s: expected an image reference "
			     "like ubuntu:24.04 or registry.example.com/team/image@sha256:...",
			     source, value, k->name);
}

/* HOST[:PORT] (default_registry), and for mirrors also a path and an
 * http:// or https:// scheme. */
static bool registry_word_ok(const char *w, bool url)
{
	static const char host[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				   ".-:[]";
	size_t len;

	if (url && !strncmp(w, "https://", 8))
		w += 8;
	else if (url && !strncmp(w, "http://", 7))
		w += 7;
	len = strspn(w, host);
	if (len == 0 || (!isalnum((unsigned char)w[0]) && w[0] != '[') || w[len - 1] == ':')
		return false;
	if (w[len] == '\0')
		return true;
	return url && w[len] == '/' &&
	       strspn(w + len, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			       ".-_/") == strlen(w + len);
}

static bool mirror_ok(const char *w)
{
	return registry_word_ok(w, true);
}

static int check_registries(const struct key *k, const char *value, const char *source,
			    struct cvm_error *err)
{
	char w[256];

	if (k->type == T_STRING) {
		if (registry_word_ok(value, false))
			return 0;
		return cvm_error_set(err, 0, "%s: bad value '%s' for %s: expected a registry host "
				     "like docker.io or registry.example.com:5000", source, value,
				     k->name);
	}
	if (find_bad_word(value, ", \t\n", mirror_ok, w, sizeof(w)))
		return cvm_error_set(err, 0, "%s: bad entry '%s' for %s: expected HOST[:PORT][/PATH] "
				     "or an http:// or https:// URL, separated by commas", source, w,
				     k->name);
	return 0;
}

/* ---- init / free ------------------------------------------------------ */

/* Replaces a credential, wiping the old text; @value NULL clears it. */
static int set_secret(char **field, const char *value)
{
	char *copy = value ? strdup(value) : NULL;

	if (value && !copy)
		return -1;
	if (*field) {
		explicit_bzero(*field, strlen(*field));
		free(*field);
	}
	*field = copy;
	return 0;
}

static void init_key(const struct key *k, void *base)
{
	void *field = field_of(base, k);

	switch (k->type) {
	case T_STRING:
	case T_PATH:
		/* Not a copy: see the ownership note at the top. */
		*(char **)field = (char *)k->def;
		return;
	case T_ENV_LIST:
	case T_NAME_LIST:
	case T_PATH_LIST:
	case T_WORD_LIST:
		*(char ***)field = empty_list;
		*(size_t *)((char *)base + k->count_off) = 0;
		/* A list's default is a value like any other; a bad one is a build bug. */
		if (k->def && set_list(k, base, k->def, "default", &(struct cvm_error){ 0 }) < 0)
			abort();
		return;
	case T_BOOL:
	case T_U32:
	case T_DURATION:
	case T_SIZE:
	case T_ENUM:
		break;
	}
	/* Defaults are written in the table above; a bad one is a build bug. */
	if (k->def && parse_scalar(k, k->def, field) < 0)
		abort();
}

static void init_section(void *base, enum section_id sec)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].section == sec)
			init_key(&keys[i], base);
	}
}

static void free_section(void *base, enum section_id sec)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];

		if (k->section != sec)
			continue;
		if (k->type == T_STRING || k->type == T_PATH)
			free_string(k, field_of(base, k));
		else if (k->type == T_ENV_LIST || k->type == T_NAME_LIST || k->type == T_PATH_LIST ||
			 k->type == T_WORD_LIST)
			list_clear(field_of(base, k), (size_t *)((char *)base + k->count_off));
	}
}

void cvm_config_init(struct cvm_config *c)
{
	memset(c, 0, sizeof(*c));
	for (int sec = SEC_SUPERVISOR; sec < SEC_MOUNT; sec++)
		init_section(c, (enum section_id)sec);
}

void cvm_config_free(struct cvm_config *c)
{
	if (!c)
		return;
	for (int sec = SEC_SUPERVISOR; sec < SEC_MOUNT; sec++)
		free_section(c, (enum section_id)sec);
	for (size_t i = 0; i < c->n_mounts; i++) {
		free_section(&c->mounts[i], SEC_MOUNT);
		free(c->mounts[i].name);
	}
	free(c->mounts);
	free(c->config_path);
	set_secret(&c->image_auth_json, NULL);
	memset(c, 0, sizeof(*c));
}

/* ---- sections --------------------------------------------------------- */

#define MOUNT_NAME_MAX 64

/* "mount NAME" or "mount \"NAME\"" -> NAME in @name. Returns 0, 1 if the
 * section is not a mount section at all, or -1 with @err filled. */
static int parse_mount_section(const char *section, char *name, const char *source,
			       struct cvm_error *err)
{
	const char *s;
	size_t len;

	if (strncmp(section, "mount", 5) != 0)
		return 1;
	s = section + 5;
	if (*s && !isspace((unsigned char)*s))
		return 1;
	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
		s++;
		len -= 2;
	}
	if (len == 0)
		return cvm_error_set(err, 0, "%s: [%s] needs a name, like [mount \"data\"]",
				     source, section);
	if (len > MOUNT_NAME_MAX ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") < len)
		return cvm_error_set(err, 0,
				     "%s: bad mount name in [%s]: expected up to %d letters, "
				     "digits, '_', '.' and '-'", source, section, MOUNT_NAME_MAX);
	memcpy(name, s, len);
	name[len] = '\0';
	return 0;
}

static struct cvm_mount *find_or_add_mount(struct cvm_config *c, const char *name)
{
	struct cvm_mount *grown;
	char *copy;

	for (size_t i = 0; i < c->n_mounts; i++) {
		if (strcmp(c->mounts[i].name, name) == 0)
			return &c->mounts[i];
	}
	copy = strdup(name);
	grown = copy ? realloc(c->mounts, (c->n_mounts + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(copy);
		return NULL;
	}
	c->mounts = grown;
	grown = &c->mounts[c->n_mounts++];
	memset(grown, 0, sizeof(*grown));
	init_section(grown, SEC_MOUNT);
	grown->name = copy;
	return grown;
}

static int unknown_section(const char *section, const char *key, const char *source,
			   struct cvm_error *err)
{
	static const char known[] = "[supervisor], [workspace], [devices], [resources], [proc], "
				    "[gpu], [bootstrap], [image] or [mount \"NAME\"]";

	if (section[0] == '\0')
		return cvm_error_set(err, 0, "%s: key '%s' is outside any section; put it under %s",
				     source, key, known);
	return cvm_error_set(err, 0, "%s: unknown section [%s]; expected %s", source, section,
			     known);
}

/* Resolves @section to a section id and the struct its keys live in. */
static int resolve_section(struct cvm_config *c, const char *section, const char *key,
			   const char *source, enum section_id *sec, void **base,
			   struct cvm_error *err)
{
	char name[MOUNT_NAME_MAX + 1];
	int r;

	for (int i = SEC_SUPERVISOR; i < SEC_MOUNT; i++) {
		if (strcmp(section, section_names[i]) == 0) {
			*sec = (enum section_id)i;
			*base = c;
			return 0;
		}
	}
	r = parse_mount_section(section, name, source, err);
	if (r < 0)
		return -1;
	if (r > 0)
		return unknown_section(section, key, source, err);
	*sec = SEC_MOUNT;
	*base = find_or_add_mount(c, name);
	if (!*base)
		return cvm_error_set(err, ENOMEM, "%s: [%s]", source, section);
	return 0;
}

static int unknown_key(enum section_id sec, const char *section, const char *key,
		       const char *source, struct cvm_error *err)
{
	char known[256];
	size_t len = 0;

	known[0] = '\0';
	for (size_t i = 0; i < N_KEYS && len < sizeof(known); i++) {
		if (keys[i].section == sec)
			len += (size_t)snprintf(known + len, sizeof(known) - len, "%s%s",
						len ? ", " : "", keys[i].name);
	}
	return cvm_error_set(err, 0, "%s: unknown key '%s' in [%s]; expected one of %s", source,
			     key, section, known);
}

static int apply(const struct key *k, void *base, const char *value, const char *source,
		 struct cvm_error *err)
{
	char buf[128];

	switch (k->type) {
	case T_ENV_LIST:
	case T_NAME_LIST:
	case T_PATH_LIST:
	case T_WORD_LIST:
		return set_list(k, base, value, source, err);
	case T_STRING:
	case T_PATH:
	case T_BOOL:
	case T_U32:
	case T_DURATION:
	case T_SIZE:
	case T_ENUM:
		break;
	}
	if (value[0] == '\0')
		return cvm_error_set(err, 0, "%s: empty value for %s: %s", source, k->name,
				     expected(k, buf, sizeof(buf)));
	if (k->type == T_STRING || k->type == T_PATH)
		return set_string(k, base, value, source, err);
	if (parse_scalar(k, value, field_of(base, k)) < 0)
		return bad_value(k, value, source, err);
	return 0;
}

int cvm_config_set(struct cvm_config *c, const char *section, const char *key,
		   const char *value, const char *source, struct cvm_error *err)
{
	const struct key *k;
	enum section_id sec;
	void *base;

	if (resolve_section(c, section, key, source, &sec, &base, err) < 0)
		return -1;
	k = find_key(sec, key);
	if (!k)
		return unknown_key(sec, section, key, source, err);
	if (apply(k, base, value ? value : "", source, err) < 0)
		return -1;
	if (sec == SEC_WORKSPACE && !strcmp(k->name, "rootfs"))
		c->rootfs_layer = c->layer;
	else if (sec == SEC_IMAGE && !strcmp(k->name, "ref"))
		c->image_ref_layer = c->layer;
	return 0;
}

/* ---- INI file --------------------------------------------------------- */

struct ini_ctx {
	struct cvm_config *c;
	const char *path;
	FILE *f;
	struct cvm_error *err;
	int line;               /* line the reader returned last */
	int err_line;           /* line of the first handler error, 0: none */
	const struct key *lines_key;    /* an ini_lines key set by the line before */
};

/* The key @section/@name of one of the plain (non-mount) sections, if any. */
static const struct key *plain_key(const char *section, const char *name)
{
	for (int i = SEC_SUPERVISOR; i < SEC_MOUNT; i++) {
		if (strcmp(section, section_names[i]) == 0)
			return find_key((enum section_id)i, name);
	}
	return NULL;
}

/* inih splits a line longer than its buffer into pieces and parses each as
 * a line of its own, so a long value would be cut silently: refuse instead. */
static bool line_truncated(const char *buf, FILE *f)
{
	size_t len = strlen(buf);
	int ch;

	if (len > 0 && buf[len - 1] == '\n')
		return false;
	ch = getc(f);
	if (ch == EOF)
		return false;
	ungetc(ch, f);
	return true;
}

/* fgets() that counts lines (inih 55 only passes line numbers to handlers
 * when built with INI_HANDLER_LINENO) and ends the parse at the first error. */
static char *ini_read_line(char *buf, int size, void *stream)
{
	struct ini_ctx *ctx = stream;

	if (ctx->err_line || !fgets(buf, size, ctx->f))
		return NULL;
	ctx->line++;
	if (line_truncated(buf, ctx->f)) {
		ctx->err_line = ctx->line;
		cvm_error_set(ctx->err, 0, "%s:%d: line too long (at most %d characters)",
			      ctx->path, ctx->line, size - 3);
		return NULL;
	}
	return buf;
}

static int ini_handle(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;
	char source[PATH_MAX + 32];

	const struct key *k = plain_key(section, name);
	cleanup_free char *joined = NULL;

	if (ctx->err_line)
		return 0;
	snprintf(source, sizeof(source), "%s:%d", ctx->path, ctx->line);
	/* inih hands over a continuation line (or the key repeated) as a
	 * value of its own: for a script, these are its next lines. */
	if (k && k->ini_lines && ctx->lines_key == k && value[0] &&
	    asprintf(&joined, "%s\n%s", *(char **)field_of(ctx->c, k), value) < 0) {
		ctx->err_line = ctx->line;
		cvm_error_set(ctx->err, ENOMEM, "%s: %s", source, name);
		return 0;
	}
	if (cvm_config_set(ctx->c, section, name, joined ? joined : value, source, ctx->err) < 0) {
		ctx->err_line = ctx->line;
		return 0;
	}
	ctx->lines_key = k && k->ini_lines && value[0] ? k : NULL;
	return 1;
}

static int ini_result(struct ini_ctx *ctx, int r)
{
	/* inih keeps going after a syntax error, so a handler error may come
	 * from a later line: report whichever came first. */
	if (ctx->err_line && (r <= 0 || r >= ctx->err_line))
		return -1;
	if (r > 0)
		return cvm_error_set(ctx->err, 0,
				     "%s:%d: syntax error: expected [section], key = value or "
				     "a comment", ctx->path, r);
	if (r == -2)
		return cvm_error_set(ctx->err, ENOMEM, "%s", ctx->path);
	if (ferror(ctx->f))
		return cvm_error_set(ctx->err, EIO, "%s: read error", ctx->path);
	return 0;
}

int cvm_config_load_file(struct cvm_config *c, const char *path, bool must_exist,
			 struct cvm_error *err)
{
	cleanup_file FILE *f = fopen(path, "re");
	struct ini_ctx ctx = { .c = c, .path = path, .f = f, .err = err };
	char *copy;

	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return cvm_error_set(err, errno, "%s: cannot open config file", path);
	}
	c->layer = CVM_LAYER_FILE;
	if (ini_result(&ctx, ini_parse_stream(ini_read_line, &ctx, ini_handle, &ctx)) < 0)
		return -1;
	copy = strdup(path);
	if (!copy)
		return cvm_error_set(err, ENOMEM, "%s", path);
	free(c->config_path);
	c->config_path = copy;
	return 0;
}

/* ---- environment ------------------------------------------------------ */

/* CVM_<SECTION>_<KEY>=value for the sections below. Other CVM_* names (an
 * unknown section, CVM_CONFIG, ...) are left alone so that they stay free
 * for other uses; mounts have no environment form. */
static int load_env_entry(struct cvm_config *c, const char *entry, struct cvm_error *err)
{
	const char *eq = strchr(entry, '=');

	if (!eq || strncmp(entry, "CVM_", 4) != 0)
		return 0;
	for (int i = SEC_SUPERVISOR; i < SEC_MOUNT; i++) {
		const char *sec = section_names[i];
		size_t skip = 4 + strlen(sec) + 1;
		cleanup_free char *name = NULL, *key = NULL;

		if (strncasecmp(entry + 4, sec, skip - 5) != 0 || entry[skip - 1] != '_')
			continue;
		/* The variable name is the source; its lower-cased tail is the key. */
		name = strndup(entry, (size_t)(eq - entry));
		key = name ? strdup(name + skip) : NULL;
		if (!key)
			return cvm_error_set(err, ENOMEM, "environment");
		for (char *p = key; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		return cvm_config_set(c, sec, key, eq + 1, name, err);
	}
	return 0;
}

/* envbox's variables (github.com/coder/envbox), as aliases of cvm's keys so
 * that a pod spec or Coder template written for envbox runs under cvm. */
enum alias_kind {
	A_KEY,          /* the value as it is, for section/key */
	A_IMAGE,        /* an absolute path: [workspace] rootfs; else [image] ref */
	A_BOOL,         /* envbox's true/false: if_true or if_false for section/key
			   (NULL: leave the key as the other layers set it) */
	A_MOUNTS,       /* src:dst[:ro],... as [mount "coder-N"] sections */
	A_PASS_SELF,    /* pass this variable in; its value never enters the config */
	A_CIDR,         /* envbox's bridge CIDR, host bits allowed (172.19.0.1/30) */
	A_SECRET,       /* a credential: kept apart from the keys, never echoed */
};

struct env_alias {
	const char *var;
	enum alias_kind kind;
	const char *section, *key;
	const char *if_true, *if_false;         /* A_BOOL */
};

static const struct env_alias env_aliases[] = {
	{ "CODER_INNER_IMAGE", A_IMAGE, NULL, NULL },
	{ "CODER_INNER_USERNAME", A_KEY, "workspace", "user" },
	{ "CODER_INNER_HOSTNAME", A_KEY, "workspace", "hostname" },
	{ "CODER_INNER_ENVS", A_KEY, "workspace", "env_pass" },
	{ "CODER_INNER_WORK_DIR", A_KEY, "workspace", "workdir" },
	{ "CODER_AGENT_TOKEN", A_PASS_SELF, "workspace", "env_pass" },
	{ "CODER_AGENT_URL", A_PASS_SELF, "workspace", "env_pass" },
	{ "CODER_MOUNTS", A_MOUNTS, NULL, NULL },
	{ "CODER_ADD_FUSE", A_KEY, "devices", "fuse" },
	{ "CODER_ADD_TUN", A_KEY, "devices", "tun" },
	{ "CODER_ADD_GPU", A_BOOL, "gpu", "enable", "yes", "no" },
	{ "CODER_USR_LIB_DIR", A_KEY, "gpu", "host_lib_dir" },
	{ "CODER_INNER_USR_LIB_DIR", A_KEY, "gpu", "inner_lib_dir" },
	{ "CODER_CPUS", A_KEY, "resources", "cpus" },
	{ "CODER_MEMORY", A_KEY, "resources", "memory" },
	{ "CODER_BOOTSTRAP_SCRIPT", A_KEY, "bootstrap", "script" },
	{ "CODER_IMAGE_PULL_SECRET", A_SECRET, NULL, NULL },
	{ "CODER_DOCKER_CONFIG", A_KEY, "image", "auth_file" },
	{ "CODER_EXTRA_CERTS_PATH", A_KEY, "image", "ca_dir" },
	{ "CODER_DOCKER_BRIDGE_CIDR", A_CIDR, "workspace", "network_cidr" },
	{ "CODER_DEBUG", A_BOOL, "supervisor", "log_level", "debug", NULL },
	{ "CODER_DISABLE_IDMAPPED_MOUNT", A_BOOL, "workspace", "idmap", "off", "auto" },
};

#define MAX_ALIAS_MOUNTS 64

static int alias_mounts(struct cvm_config *c, const char *var, const char *value,
			struct cvm_error *err)
{
	const char *p = value, *t;
	size_t len, n = 0;

	while ((t = next_token(&p, ",", &len))) {
		char name[16], spec[8192];

		if (len >= sizeof(spec) || ++n > MAX_ALIAS_MOUNTS)
			return cvm_error_set(err, 0, "%s: too many or too long mounts", var);
		memcpy(spec, t, len);
		spec[len] = '\0';
		snprintf(name, sizeof(name), "coder-%zu", n);
		if (cvm_config_add_volume(c, name, spec, var, err) < 0)
			return -1;
	}
	return 0;
}

/* envbox hands the CIDR to dockerd's --bip, whose address is the bridge's
 * own (172.19.0.1/30, its default): the network is what cvm wants, and
 * cvm's outer end .1 is where envbox's bridge was. */
static int alias_cidr(struct cvm_config *c, const struct env_alias *a, const char *value,
		      struct cvm_error *err)
{
	char addr[INET_ADDRSTRLEN], net[INET_ADDRSTRLEN + 4];
	const char *slash = strchr(value, '/');
	struct in_addr in;
	uint32_t ip;
	uint32_t prefix;

	if (!slash || (size_t)(slash - value) >= sizeof(addr) ||
	    cvm_parse_u32(slash + 1, &prefix) < 0 || prefix > 32)
		return cvm_error_set(err, 0, "%s: bad value '%s': expected an IPv4 network like "
				     "172.19.0.1/30", a->var, value);
	memcpy(addr, value, (size_t)(slash - value));
	addr[slash - value] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1)
		return cvm_error_set(err, 0, "%s: bad value '%s': expected an IPv4 network like "
				     "172.19.0.1/30", a->var, value);
	ip = ntohl(in.s_addr);
	in.s_addr = htonl(prefix ? ip & ~0u << (32 - prefix) : 0);
	inet_ntop(AF_INET, &in, addr, sizeof(addr));
	snprintf(net, sizeof(net), "%s/%u", addr, prefix);
	return cvm_config_set(c, a->section, a->key, net, a->var, err);
}

static int apply_alias(struct cvm_config *c, const struct env_alias *a, const char *value,
		       struct cvm_error *err)
{
	bool on;

	switch (a->kind) {
	case A_KEY:
		break;
	case A_IMAGE:
		/* A directory as today; anything else is for the image puller. */
		if (value[0] == '/')
			return cvm_config_set(c, "workspace", "rootfs", value, a->var, err);
		return cvm_config_set(c, "image", "ref", value, a->var, err);
	case A_BOOL:
		if (cvm_parse_bool(value, &on) < 0)
			return cvm_error_set(err, 0, "%s: bad value '%s': expected true or false",
					     a->var, value);
		value = on ? a->if_true : a->if_false;
		if (!value)
			return 0;
		break;
	case A_CIDR:
		return alias_cidr(c, a, value, err);
	case A_SECRET:
		/* Checked (and parsed) by the puller, which names the variable,
		 * never its text. */
		if (set_secret(&c->image_auth_json, value) < 0)
			return cvm_error_set(err, ENOMEM, "%s", a->var);
		return 0;
	case A_MOUNTS:
		return alias_mounts(c, a->var, value, err);
	case A_PASS_SELF:
		value = a->var;
		break;
	}
	return cvm_config_set(c, a->section, a->key, value, a->var, err);
}

/* An empty CODER_* variable means unset, as it does for envbox (templates
 * often pass "" for what they do not use). */
static int load_env_alias(struct cvm_config *c, const char *entry, struct cvm_error *err)
{
	const char *eq = strchr(entry, '=');

	if (!eq || eq[1] == '\0' || strncmp(entry, "CODER_", 6) != 0)
		return 0;
	for (size_t i = 0; i < sizeof(env_aliases) / sizeof(env_aliases[0]); i++) {
		const struct env_alias *a = &env_aliases[i];

		if (strlen(a->var) == (size_t)(eq - entry) && !strncmp(entry, a->var, eq - entry))
			return apply_alias(c, a, eq + 1, err);
	}
	return 0;
}

int cvm_config_load_env(struct cvm_config *c, char *const *envp, struct cvm_error *err)
{
	/* Aliases first: CVM_X is cvm's own name and wins over CODER_X. */
	c->layer = CVM_LAYER_ALIAS;
	for (size_t i = 0; envp && envp[i]; i++) {
		if (load_env_alias(c, envp[i], err) < 0)
			return -1;
	}
	c->layer = CVM_LAYER_ENV;
	for (size_t i = 0; envp && envp[i]; i++) {
		if (load_env_entry(c, envp[i], err) < 0)
			return -1;
	}
	return 0;
}

/* ---- volumes ---------------------------------------------------------- */

int cvm_config_add_volume(struct cvm_config *c, const char *name, const char *spec,
			  const char *source, struct cvm_error *err)
{
	char buf[8192], section[MOUNT_NAME_MAX + 8];
	char *src = buf, *dst, *mode;

	if (strlen(spec) >= sizeof(buf))
		return cvm_error_set(err, 0, "%s: volume too long", source);
	strcpy(buf, spec);
	dst = strchr(src, ':');
	if (!dst)
		return cvm_error_set(err, 0, "%s: bad volume '%s': expected SRC:DST or SRC:DST:ro",
				     source, spec);
	*dst++ = '\0';
	mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (mode && strcmp(mode, "ro") && strcmp(mode, "rw"))
		return cvm_error_set(err, 0, "%s: bad volume '%s': the mode is ro or rw, not '%s'",
				     source, spec, mode);
	snprintf(section, sizeof(section), "mount %s", name);
	if (cvm_config_set(c, section, "source", src, source, err) < 0 ||
	    cvm_config_set(c, section, "target", dst, source, err) < 0 ||
	    cvm_config_set(c, section, "readonly", mode && !strcmp(mode, "ro") ? "yes" : "no",
			   source, err) < 0)
		return -1;
	return 0;
}

/* ---- validation ------------------------------------------------------- */

#define MIN_UID_COUNT 65536
#define MAX_STOP_TIMEOUT_MS (3600ULL * 1000)

static int validate_ids(const struct cvm_config *c, struct cvm_error *err)
{
	if (c->uid_base == 0)
		return cvm_error_set(err, 0,
				     "uid_base: 0 would map the workspace's root to the host's "
				     "root; use a range from /etc/subuid (default 100000)");
	if (c->uid_count == 0)
		return cvm_error_set(err, 0, "uid_count: must be at least 1");
	if (c->uid_count < MIN_UID_COUNT && !c->allow_small_range)
		return cvm_error_set(err, 0,
				     "uid_count: %u is below %u; set allow_small_range = yes if "
				     "you really want that", c->uid_count, MIN_UID_COUNT);
	/* The last id must stay below 4294967295, which is (uid_t)-1. */
	if ((uint64_t)c->uid_base + c->uid_count > UINT32_MAX)
		return cvm_error_set(err, 0,
				     "uid_count: uid_base %u + uid_count %u goes past 4294967295; "
				     "lower one of them", c->uid_base, c->uid_count);
	return 0;
}

static void clear_key(struct cvm_config *c, enum section_id sec, const char *name)
{
	const struct key *k = find_key(sec, name);

	free_string(k, field_of(c, k));
}

/* rootfs and ref are two ways to name the image: a later layer's choice
 * replaces an earlier one's (CODER_INNER_IMAGE=ref under CVM_WORKSPACE_ROOTFS,
 * a file's rootfs under --image); both from one layer is a contradiction. */
static int validate_image(struct cvm_config *c, struct cvm_error *err)
{
	if (!c->rootfs || !c->image_ref)
		return 0;
	if (c->rootfs_layer > c->image_ref_layer) {
		clear_key(c, SEC_IMAGE, "ref");
		return 0;
	}
	if (c->image_ref_layer > c->rootfs_layer) {
		clear_key(c, SEC_WORKSPACE, "rootfs");
		return 0;
	}
	return cvm_error_set(err, 0, "[workspace] rootfs (%s) and [image] ref (%s) are both set: "
			     "drop [image] ref to run the unpacked directory, or drop [workspace] "
			     "rootfs to pull the image", c->rootfs, c->image_ref);
}

static int validate_rootfs(const struct cvm_config *c, struct cvm_error *err)
{
	if (c->rootfs && !c->state)
		return cvm_error_set(err, 0,
				     "state is required with rootfs: a persistent directory for "
				     "the workspace's changes");
	if (c->image_ref && !c->state)
		return cvm_error_set(err, 0,
				     "state is required with an image ref: a persistent directory "
				     "for the workspace's changes (and, unless [image] cache_dir is "
				     "set, the image's layers)");
	if (c->state && !c->rootfs && !c->image_ref)
		return cvm_error_set(err, 0,
				     "rootfs is required with state: the unpacked image that "
				     "state holds changes to (or [image] ref, an image to pull)");
	if (c->rootfs && strcmp(c->rootfs, c->state) == 0)
		return cvm_error_set(err, 0, "state: must be a different directory than rootfs");
	if (c->bootstrap_script && !c->rootfs && !c->image_ref)
		return cvm_error_set(err, 0, "bootstrap script: runs inside a workspace; set rootfs "
				     "or an image too (--rootfs, --image, CODER_INNER_IMAGE)");
	return 0;
}

static int validate_mounts(const struct cvm_config *c, struct cvm_error *err)
{
	for (size_t i = 0; i < c->n_mounts; i++) {
		const struct cvm_mount *m = &c->mounts[i];

		if (!m->source)
			return cvm_error_set(err, 0, "mount \"%s\": source is required (the outer "
					     "path to mount)", m->name);
		if (!m->target)
			return cvm_error_set(err, 0, "mount \"%s\": target is required (the path "
					     "inside the workspace)", m->name);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->mounts[j].target, m->target) == 0)
				return cvm_error_set(err, 0,
						     "mount \"%s\": target %s is also the target "
						     "of mount \"%s\"", m->name, m->target,
						     c->mounts[j].name);
		}
	}
	return 0;
}

int cvm_config_load_layers(struct cvm_config *c, const char *path, char *const *envp,
			   struct cvm_error *err)
{
	if (!path)
		path = getenv("CVM_CONFIG");
	cvm_config_init(c);
	if (cvm_config_load_file(c, path ? path : CVM_DEFAULT_CONFIG_PATH, path != NULL, err) < 0)
		return -1;
	return cvm_config_load_env(c, envp, err);
}

int cvm_config_control_socket(const char *path, const char *flag, char *out, size_t len,
			      struct cvm_error *err)
{
	struct cvm_config c;
	int r;

	if (flag) {
		snprintf(out, len, "%s", flag);
		return 0;
	}
	r = cvm_config_load_layers(&c, path, environ, err);
	if (r == 0)
		snprintf(out, len, "%s", c.control_socket ? c.control_socket :
			 CVM_DEFAULT_CONTROL_SOCKET);
	cvm_config_free(&c);
	return r;
}

int cvm_config_validate(struct cvm_config *c, struct cvm_error *err)
{
	unsigned long long ms = c->stop_timeout_ms;

	if (ms > MAX_STOP_TIMEOUT_MS)
		return cvm_error_set(err, 0, "stop_timeout: %llu%s is more than the maximum, 1h",
				     ms % 1000 ? ms : ms / 1000, ms % 1000 ? "ms" : "s");
	if (validate_ids(c, err) < 0 || validate_image(c, err) < 0 || validate_rootfs(c, err) < 0 ||
	    validate_mounts(c, err) < 0)
		return -1;
	return 0;
}
