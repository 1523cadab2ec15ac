/* NVIDIA GPUs in the workspace: what to give it. This folder only *plans*:
 * from the config, the outer container's /dev, its mount table (what the
 * NVIDIA container runtime mounted in) and the image's /etc/os-release it
 * works out which device nodes, driver files, symlinks and variables the
 * workspace gets. supervisor/ asks for the plan, runtime/ carries it out;
 * nothing here mounts or creates anything. */
#ifndef CVM_GPU_H
#define CVM_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "runtime/error.h"

enum cvm_gpu_enable { CVM_GPU_AUTO = 0, CVM_GPU_YES, CVM_GPU_NO };

struct cvm_gpu_config {
	enum cvm_gpu_enable enable;
	const char *visible_devices;    /* all, none, void, indices, UUIDs; NULL:
					   NVIDIA_VISIBLE_DEVICES, else all */
	const char *host_lib_dir;       /* NULL: /usr/local/nvidia/lib64 when present */
	const char *inner_lib_dir;      /* NULL or "auto": from the image's os-release */
};

/* Where the planner looks. cvm_gpu_host_default() gives the real places;
 * the unit tests point them at fixture trees. */
struct cvm_gpu_host {
	const char *dev_dir;            /* /dev */
	const char *mountinfo;          /* /proc/self/mountinfo */
	const char *driver_dir;         /* /proc/driver/nvidia (GPU UUIDs and bus ids) */
	const char *sys_dir;            /* /sys (which render node is which GPU) */
	const char *default_lib_dir;    /* /usr/local/nvidia/lib64 */
	char *const *envp;              /* NVIDIA_* and CUDA_* come from here */
};

void cvm_gpu_host_default(struct cvm_gpu_host *h, char *const *envp);

enum cvm_gpu_file_kind { CVM_GPU_LIB, CVM_GPU_BIN, CVM_GPU_JSON };

/* A character device node of the outer container to recreate inside. */
struct cvm_gpu_node {
	char *outer;                    /* e.g. /dev/nvidia0 */
	char *inner;                    /* relative to the workspace's /dev: nvidia0,
					   nvidia-caps/nvidia-cap1, dri/renderD128 */
	dev_t rdev;
	mode_t mode;                    /* permission bits as outside */
	uid_t uid;                      /* owner and group as outside */
	gid_t gid;
};

/* A regular file bound read-only at @inner. */
struct cvm_gpu_file {
	char *outer;
	char *inner;
	enum cvm_gpu_file_kind kind;
};

/* A symlink made inside: @inner -> @target (a name in the same directory). */
struct cvm_gpu_link {
	char *inner;
	char *target;
};

struct cvm_gpu_plan {
	bool enabled;
	char why[256];                  /* why the GPU is on or off, one line */
	char *lib_dir;                  /* where the libraries come from (host side) */
	char *inner_lib_dir;            /* where they go inside */
	char *devices;                  /* the selection as resolved ("0,1" or "all") */
	struct cvm_gpu_node *nodes;
	size_t n_nodes;
	struct cvm_gpu_file *files;
	size_t n_files;
	struct cvm_gpu_link *links;
	size_t n_links;
	char **env;                     /* NAME=VALUE, NULL-terminated */
	size_t n_env;
	char **refused;                 /* what was left out and why, NULL-terminated */
	size_t n_refused;
};

/* Plan the GPU setup for the image at @rootfs_fd (its /etc/os-release picks
 * the library dir; its files are checked for clashes). @rootfs_fd < 0: no
 * image (cvm check without one): /usr/lib unless inner_lib_dir says else,
 * no clash checks. A disabled plan
 * (enable = no, or auto without devices) is a success with enabled false.
 * Returns 0, or -1 with @err saying what is wrong and what to do; the plan
 * is then empty. Free with cvm_gpu_plan_free() either way. */
int cvm_gpu_plan_make(const struct cvm_gpu_config *c, const struct cvm_gpu_host *h,
		      int rootfs_fd, struct cvm_gpu_plan *out, struct cvm_error *err);

void cvm_gpu_plan_free(struct cvm_gpu_plan *p);

/* The plan for people (cvm check, logs): one item per line. */
void cvm_gpu_plan_print(FILE *f, const struct cvm_gpu_plan *p);

/* The image's library dir from its os-release: Debian/Ubuntu the multiarch
 * dir, Fedora/RHEL/SUSE /usr/lib64, else /usr/lib. Static string. */
const char *cvm_gpu_inner_lib_dir(int rootfs_fd);

/* Is @name a user-space driver library (libcuda.so.1, libnvidia-ml.so.535.1,
 * libGLX_nvidia.so.0, ...)? Exposed for the unit tests. */
bool cvm_gpu_is_driver_lib(const char *name);

#endif
