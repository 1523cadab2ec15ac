/* cvm configuration: built-in defaults < INI file < environment < flags.
 *
 * Every key lives in one table in config.c (section, key, type, field, doc);
 * the INI loader, the CVM_<SECTION>_<KEY> environment loader and the command
 * line all go through cvm_config_set(), so a key is defined exactly once and
 * every error names where the bad value came from ("cvm.ini:12: ...",
 * "CVM_SUPERVISOR_STOP_TIMEOUT: ...", "--stop-timeout: ..."). */
#ifndef CVM_CONFIG_H
#define CVM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gpu/gpu.h"
#include "../image/image.h"
#include "../runtime/error.h"

#define CVM_DEFAULT_CONFIG_PATH "/etc/cvm/cvm.ini"
#define CVM_DEFAULT_CONTROL_SOCKET "/run/cvm/control.sock"
/* Out of the way of the usual pod (10.244/16, 10.42/16), service (10.96/12)
 * and Docker (172.17-31/16, 192.168/16) networks. */
#define CVM_DEFAULT_NETWORK_CIDR "10.255.255.252/30"
/* Where nested engines keep images and layers: overlay2 cannot stack its
 * upper dirs on the workspace's own overlay. */
#define CVM_DEFAULT_ENGINE_DIRS "/var/lib/docker, /var/lib/containerd, /var/lib/buildkit"

enum cvm_log_format { CVM_LOG_TEXT = 0, CVM_LOG_JSON };
enum cvm_log_level { CVM_LOG_ERROR = 0, CVM_LOG_WARN, CVM_LOG_INFO, CVM_LOG_DEBUG };

/* [workspace] idmap: how the image dir becomes the overlay's lower layer. */
enum cvm_idmap_mode {
	CVM_IDMAP_AUTO = 0,     /* an idmapped mount; a one-time copy where the fs cannot */
	CVM_IDMAP_OFF,          /* always the one-time copy into STATE/rootfs */
};

/* Which loader set a value, for keys whose later layer replaces a rival
 * key of an earlier one ([workspace] rootfs against [image] ref). */
enum cvm_config_layer {
	CVM_LAYER_DEFAULT = 0, CVM_LAYER_FILE, CVM_LAYER_ALIAS, CVM_LAYER_ENV, CVM_LAYER_FLAG,
};

/* Who gets the signals cvm forwards. */
enum cvm_signal_target {
	CVM_SIGNAL_CHILD = 0,   /* the main child only (tini default) */
	CVM_SIGNAL_GROUP,       /* the main child's process group (tini -g) */
	CVM_SIGNAL_ALL,         /* every process of the workspace */
};

struct cvm_mount {
	char *name;     /* from [mount "NAME"] */
	char *source;   /* outer path (absolute) */
	char *target;   /* path inside the workspace (absolute) */
	bool readonly;
};

struct cvm_config {
	/* [supervisor] */
	uint64_t stop_timeout_ms;       /* grace between SIGTERM and SIGKILL, default 10 s */
	enum cvm_signal_target signal_target;
	enum cvm_log_level log_level;
	enum cvm_log_format log_format;
	char *control_socket;           /* outer path of the control socket */

	/* [workspace] */
	char *rootfs;                   /* unpacked image dir; NULL: plain process mode */
	char *state;                    /* persistent dir (overlay upper/work) */
	char *init;                     /* "auto" or a command line */
	char *hostname;
	uint32_t uid_base;              /* default 100000 */
	uint32_t uid_count;             /* default 65536 */
	bool allow_small_range;         /* permit uid_count < 65536 */
	char *user;                     /* name or uid[:gid] inside */
	char *workdir;
	char **env;                     /* NAME=VALUE, NULL-terminated */
	size_t n_env;
	char **env_pass;                /* NAME or PREFIX*, NULL-terminated */
	size_t n_env_pass;
	char *network;                  /* "private" or "host" */
	char *network_cidr;             /* the private network, "A.B.C.D/N" */
	char **engine_dirs;             /* paths inside bound from STATE/engines/ */
	size_t n_engine_dirs;
	bool seccomp;                   /* the syscall profile (runtime/seccomp.c) */
	char **seccomp_deny;            /* more syscalls refused (EPERM), NULL-terminated */
	size_t n_seccomp_deny;
	enum cvm_idmap_mode idmap;

	/* [image]: a registry image as the workspace's rootfs */
	char *image_ref;                /* as written; NULL: [workspace] rootfs or plain mode */
	char *image_default_registry;   /* for short names; default docker.io */
	char **image_mirrors;           /* tried before the registry, NULL-terminated */
	size_t n_image_mirrors;
	char *image_cache_dir;          /* NULL: STATE/images */
	char *image_auth_file;          /* a docker config.json, or NULL */
	char *image_ca_dir;             /* extra CA certificates (a dir of PEM files or one file) */
	enum cvm_pull_policy image_pull;      /* image/image.h */
	/* CODER_IMAGE_PULL_SECRET's docker config JSON: a credential. No key,
	 * no flag, never logged nor echoed in an error; wiped on free. */
	char *image_auth_json;

	/* [devices] */
	bool dev_fuse;
	bool dev_tun;

	/* [resources]: text as given; see supervisor/resources.c */
	char *res_cpus;                 /* "auto", "none" or a number of CPUs */
	char *res_memory;               /* "auto", "none" or a size */
	char *res_memory_high;
	char *res_swap;
	char *res_pids;
	char *res_cpuset;
	char *res_io_weight;

	/* [proc] */
	bool proc_virtualize;
	char **proc_files;              /* names of runtime/procfs files; empty: all */
	size_t n_proc_files;
	bool proc_passthrough;
	bool proc_follow;

	/* [gpu]: see gpu/gpu.h */
	enum cvm_gpu_enable gpu_enable;
	char *gpu_visible_devices;      /* NULL: NVIDIA_VISIBLE_DEVICES, else all */
	char *gpu_host_lib_dir;         /* NULL: /usr/local/nvidia/lib64 when present */
	char *gpu_inner_lib_dir;        /* "auto" or an absolute path */

	/* [bootstrap] */
	char *bootstrap_script;         /* shell script run inside once the workspace is up */

	/* [mount "NAME"] */
	struct cvm_mount *mounts;
	size_t n_mounts;

	/* what did the user set explicitly (for "auto" decisions later) */
	char *config_path;              /* file that was loaded, or NULL */
	enum cvm_config_layer layer;    /* the loader now running (set by the loaders; run.c
					   sets CVM_LAYER_FLAG before the flags) */
	enum cvm_config_layer rootfs_layer, image_ref_layer;   /* who set them */
};

/* Fill in the built-in defaults. */
void cvm_config_init(struct cvm_config *c);
void cvm_config_free(struct cvm_config *c);

/* Set one key. @section is "supervisor", "workspace", "devices",
 * "resources", "proc", "gpu", "bootstrap", "image" or "mount NAME"; @source names where the value came from and prefixes every
 * error. Returns 0 or -1 with @err filled. */
int cvm_config_set(struct cvm_config *c, const char *section, const char *key,
		   const char *value, const char *source, struct cvm_error *err);

/* Load an INI file. A missing file is an error only when @must_exist. */
int cvm_config_load_file(struct cvm_config *c, const char *path, bool must_exist,
			 struct cvm_error *err);

/* Apply the environment @envp (NULL-terminated): envbox's CODER_* names
 * first (see the alias table in config.c), then CVM_<SECTION>_<KEY>=value,
 * so that cvm's own name wins when both are set, whatever their order. */
int cvm_config_load_env(struct cvm_config *c, char *const *envp, struct cvm_error *err);

/* SRC:DST[:ro|:rw] as the mount section [mount "@name"] (--volume,
 * CODER_MOUNTS); @source prefixes every error. */
int cvm_config_add_volume(struct cvm_config *c, const char *name, const char *spec,
			  const char *source, struct cvm_error *err);
/* Defaults, then the INI file (@path, else $CVM_CONFIG, else the default
 * path if it exists), then CVM_* from @envp: everything but the flags. */
int cvm_config_load_layers(struct cvm_config *c, const char *path, char *const *envp,
			   struct cvm_error *err);

/* [supervisor] control_socket as `cvm run` sees it, for its clients (cvm
 * exec, cvm status): @flag (--socket) if set, else the layers as
 * cvm_config_load_layers() reads them with @path (--config) and environ.
 * Into @out; 0 or -1 with @err. */
int cvm_config_control_socket(const char *path, const char *flag, char *out, size_t len,
			      struct cvm_error *err);

/* Cross-field checks, after every layer is applied. [workspace] rootfs and
 * [image] ref name the same thing: when both are set, the one from the later
 * layer wins (the other is cleared here); from the same layer, an error. */
int cvm_config_validate(struct cvm_config *c, struct cvm_error *err);

/* Value parsers, exposed for the unit tests and the CLI. All return 0 or -1
 * (with errno EINVAL or ERANGE) and never accept trailing junk. */
int cvm_parse_size(const char *s, uint64_t *out);          /* "4G", "512M", "1024", "1.5G" */
int cvm_parse_duration_ms(const char *s, uint64_t *out);   /* "30s", "500ms", "2m", "1h", "10" (s) */
int cvm_parse_bool(const char *s, bool *out);              /* yes/no/true/false/on/off/1/0 */
int cvm_parse_u32(const char *s, uint32_t *out);

const char *cvm_log_level_name(enum cvm_log_level l);

#endif
