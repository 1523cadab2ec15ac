/* A workspace's plan: everything cvm run decides from its config before
 * anything starts (supervisor/plan.c). One function makes it, and both
 * cvm run (supervisor/lifecycle.c) and cvm check (supervisor/check.c) call
 * it, so the two cannot disagree. It has no side effect on the outer
 * container (it only reads: the image, the id maps, the GPUs, resolv.conf,
 * the outer cgroup's limits), and nothing in it changes once it is made:
 * the lifecycle copies what it fills in at start (the spec's fds, the
 * network's state). */
#ifndef CVM_PLAN_H
#define CVM_PLAN_H

#include <stdbool.h>

#include "config.h"
#include "inner.h"
#include "resources.h"
#include "gpu/gpu.h"
#include "image/image.h"
#include "runtime/error.h"
#include "runtime/net.h"
#include "runtime/workspace.h"

/* The parts of a plan, in the order cvm run reports the first that fails. */
enum cvm_plan_part {
	CVM_PLAN_ROOTFS,        /* the image dir opens */
	CVM_PLAN_INIT,          /* it has what the inner init is to run */
	CVM_PLAN_MOUNTS,        /* every [mount.*] source exists */
	CVM_PLAN_IDS,           /* the id range is mapped here and nobody's */
	CVM_PLAN_GPU,           /* gpu/'s plan */
	CVM_PLAN_NET,           /* the private network's addresses and DNS */
	CVM_PLAN_N_PARTS
};

/* The image the workspace's root is made of, opened once: every user (the
 * init probe, gpu/, the idmapped layer or the fallback copy, cvm check's
 * probes) goes through @fd, never the path again. An image pull would make
 * this a list of layer dirs, each the same pair. */
struct cvm_plan_rootfs {
	const char *path;       /* for messages and the fallback copy's marker; the
				   image reference when it comes from a registry */
	int fd;                 /* O_PATH | O_DIRECTORY, or -1 (see why[CVM_PLAN_ROOTFS]);
				   for an image, a detached read-only overlay of its
				   layers (cvm_ws_layers_view): what the workspace sees */
	char *const *layers;    /* the image's layer dirs, bottom first, or NULL */
	size_t n_layers;
};

/* gpu/'s plan, and the same as runtime/ takes it (it knows nothing of gpu/). */
struct cvm_plan_gpu {
	struct cvm_gpu_plan plan;
	struct cvm_ws_extras x;
	struct cvm_ws_node *nodes;
	struct cvm_ws_file *files;
	struct cvm_ws_link *links;
};

/* [workspace] network = private: the addresses and the files inside. */
struct cvm_plan_net {
	bool private_;
	struct cvm_net addr;            /* cvm_net_init()'s; the lifecycle brings a copy up */
	struct cvm_resolv resolv;
	char hosts[1024];
	struct cvm_ws_write writes[2];  /* /etc/resolv.conf, /etc/hosts */
};

struct cvm_plan {
	const struct cvm_config *c;
	struct cvm_plan_rootfs rootfs;
	uint32_t uid_base, uid_count;   /* the id range (checked: why[CVM_PLAN_IDS]) */
	struct cvm_inner in;            /* the inner init's job; owns in.envp */
	bool systemd;                   /* the init kind: systemd stops on SIGRTMIN+3 */
	int stop_signal;                /* what the inner init stops on, for SIGTERM */
	struct cvm_plan_gpu gpu;
	struct cvm_plan_net net;
	struct cvm_cg_limit limits[CVM_MAX_LIMITS];     /* [resources] as cgroup files */
	size_t n_limits;
	struct cvm_ws_mount *mounts;
	/* runtime/'s recipe; the fds (cgroup, /proc server, init) are -1 here */
	struct cvm_ws_spec spec;
	/* Each part's failure (msg "" when it is fine): cvm check words them,
	 * cvm run stops at the first. */
	struct cvm_error why[CVM_PLAN_N_PARTS];
};

/* Plan the workspace of @c running @argv (may be empty: the image's init),
 * from the pulled @image when [image] ref names one (else NULL: [workspace]
 * rootfs), whose layers and Env it uses and which must outlive the plan.
 * Every part is tried, whatever an earlier one found. Returns 0; or
 * CVM_EXIT_USAGE with @err the first part that failed (bad input), or
 * CVM_EXIT_SETUP_FAILED (out of memory). Free with cvm_plan_free() either
 * way. */
int cvm_plan_make(const struct cvm_config *c, char **argv, const struct cvm_image *image,
		  struct cvm_plan *p, struct cvm_error *err);

/* The one part let go of early: once the layers are made the image's fd
 * has done its work, and an fd of an outer dir is better not around when
 * cvm exec forks into the workspace. */
void cvm_plan_close_rootfs(struct cvm_plan *p);

/* Idempotent. */
void cvm_plan_free(struct cvm_plan *p);

#endif
