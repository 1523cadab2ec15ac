/* cvm check: can cvm run here, and if not, why and what to do. Every line
 * comes from trying the real thing (runtime/hostcheck.c), never from
 * guessing by version or file existence alone. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "plan.h"
#include "pull.h"
#include "resources.h"
#include "cvm-version.h"
#include "gpu/gpu.h"
#include "runtime/caps.h"
#include "runtime/cgroup.h"
#include "runtime/cleanup.h"
#include "runtime/exitcode.h"
#include "runtime/hostcheck.h"
#include "runtime/idmap.h"
#include "runtime/seccomp.h"

extern char **environ;

#define MAX_CHECKS 32

struct check {
	const char *name;               /* stable id, also the JSON "name" */
	enum cvm_check_status status;
	char why[1536];
	char fix[512];                  /* "" when nothing is to be done */
};

struct report {
	struct check items[MAX_CHECKS];
	size_t n;
	const struct cvm_config *c;
	const struct cvm_plan *plan;    /* cvm run's plan of this config (plan.h) */
	int probe_fd;                   /* what idmap_image and overlay probe: the image
					   dir, or an image's top layer dir (-1: none) */
	char *gpu_plan;                 /* gpu/'s plan, as it prints it; NULL: none */
};

static const char *const status_names[] = { "ok", "info", "warn", "missing" };

const char *cvm_check_status_name(enum cvm_check_status s)
{
	return status_names[s];
}

static void add(struct report *r, const char *name, enum cvm_check_status st, const char *fix,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(struct report *r, const char *name, enum cvm_check_status st, const char *fix,
		const char *fmt, ...)
{
	struct check *c;
	va_list ap;

	if (r->n == MAX_CHECKS)
		return;
	c = &r->items[r->n++];
	c->name = name;
	c->status = st;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
}

/* ---- kernel ----------------------------------------------------------------- */

static const struct {
	unsigned major, minor;
	enum cvm_check_status if_older;
	const char *feature;
	const char *fix;
} kernel_needs[] = {
	{ 5, 12, CVM_CHECK_MISSING, "idmapped mounts (mount_setattr)",
	  "run on a node with Linux 5.19 or later (6.9 or later for everything)" },
	{ 5, 19, CVM_CHECK_MISSING, "overlay over idmapped layers",
	  "run on a node with Linux 5.19 or later (6.9 or later for everything)" },
	{ 6, 3, CVM_CHECK_WARN, "idmapped tmpfs (a state dir on tmpfs)",
	  "keep the state dir on ext4, xfs or btrfs, or run on Linux 6.3 or later" },
	{ 6, 9, CVM_CHECK_WARN, "FUSE_NOTIFY_RESEND (reads survive a /proc server restart)",
	  "run on Linux 6.9 or later; until then a read of /proc/meminfo etc. in flight when "
	  "the /proc server restarts fails" },
};
#define N_KERNEL_NEEDS (sizeof(kernel_needs) / sizeof(kernel_needs[0]))

enum cvm_check_status cvm_check_kernel(const char *release, char *why, size_t len,
				       const char **fix)
{
	enum cvm_check_status st = CVM_CHECK_OK;
	struct cvm_kver v;
	size_t o;

	*fix = NULL;
	if (cvm_kver_parse(release, &v) < 0) {
		snprintf(why, len, "cannot read a version from '%s'; the probes below tell", release);
		return CVM_CHECK_WARN;
	}
	o = (size_t)snprintf(why, len, "Linux %u.%u.%u", v.major, v.minor, v.patch);
	for (size_t i = 0; i < N_KERNEL_NEEDS && o < len; i++) {
		if (cvm_kver_at_least(&v, kernel_needs[i].major, kernel_needs[i].minor))
			continue;
		o += (size_t)snprintf(why + o, len - o, "%s %s (%u.%u)",
				      st == CVM_CHECK_OK ? " lacks" : ",", kernel_needs[i].feature,
				      kernel_needs[i].major, kernel_needs[i].minor);
		if (kernel_needs[i].if_older > st) {
			st = kernel_needs[i].if_older;
			*fix = kernel_needs[i].fix;
		}
	}
	if (st == CVM_CHECK_OK && o < len)
		snprintf(why + o, len - o, ": has idmapped mounts, overlay over idmapped layers, "
			 "idmapped tmpfs and FUSE_NOTIFY_RESEND");
	return st;
}

static void check_kernel(struct report *r)
{
	struct utsname u;
	char why[512];
	const char *fix;
	enum cvm_check_status st;

	if (uname(&u) < 0) {
		add(r, "kernel", CVM_CHECK_WARN, NULL, "uname: %s", strerror(errno));
		return;
	}
	st = cvm_check_kernel(u.release, why, sizeof(why), &fix);
	add(r, "kernel", st, fix, "%s", why);
}

/* ---- namespaces and privileges ------------------------------------------ */

#define FIX_PRIVILEGED "run the outer container privileged (docker run --privileged; " \
	"Kubernetes securityContext.privileged: true)"

static void check_userns(struct report *r)
{
	struct cvm_error err = { 0 };
	long max = cvm_hc_max_userns();

	if (max == 0) {
		add(r, "userns", CVM_CHECK_MISSING, "set it above 0 on the node: sysctl -w "
		    "user.max_user_namespaces=15000", "user.max_user_namespaces is 0: no user "
		    "namespace can be made, and the workspace is one");
		return;
	}
	if (cvm_hc_userns(&err) < 0) {
		add(r, "userns", CVM_CHECK_MISSING, "allow user namespaces for this container: "
		    "no seccomp or AppArmor profile that blocks unshare(CLONE_NEWUSER) (" FIX_PRIVILEGED
		    ")", "%s", err.msg);
		return;
	}
	if (max < 0)
		add(r, "userns", CVM_CHECK_OK, NULL, "made one (no /proc/sys/user/max_user_namespaces "
		    "to read)");
	else
		add(r, "userns", CVM_CHECK_OK, NULL, "made one (max_user_namespaces %ld)", max);
}

static void check_id_range(struct report *r)
{
	const struct cvm_plan *p = r->plan;

	if (p->why[CVM_PLAN_IDS].msg[0])
		add(r, "id_range", CVM_CHECK_MISSING, NULL, "%s", p->why[CVM_PLAN_IDS].msg);
	else
		add(r, "id_range", CVM_CHECK_OK, NULL, "ids %u-%llu are mapped here and belong to no "
		    "account of /etc/passwd or /etc/group", p->uid_base,
		    (unsigned long long)p->uid_base + p->uid_count - 1);
}

static const struct {
	int cap;
	const char *name;
	const char *use;
} caps_needed[] = {
	{ 21, "sys_admin", "mounts and idmapped layers" },
	{ 7, "setuid", "the workspace's uid_map" },
	{ 6, "setgid", "its gid_map" },
	{ 0, "chown", "handing it its cgroup" },
	{ 1, "dac_override", "building its rootfs as its root" },
	{ 27, "mknod", "its /dev nodes" },
};
#define CAP_SYS_RESOURCE_BIT 24

static void check_privileged(struct report *r)
{
	struct cvm_error err = { 0 };
	char lacking[512] = "";
	uint64_t caps;

	if (cvm_hc_effective_caps(&caps, &err) < 0) {
		add(r, "privileged", CVM_CHECK_MISSING, NULL, "%s", err.msg);
		return;
	}
	for (size_t i = 0; i < sizeof(caps_needed) / sizeof(caps_needed[0]); i++)
		if (!(caps & (1ULL << caps_needed[i].cap)))
			snprintf(lacking + strlen(lacking), sizeof(lacking) - strlen(lacking),
				 "%scap_%s (%s)", lacking[0] ? ", " : "", caps_needed[i].name,
				 caps_needed[i].use);
	if (lacking[0])
		add(r, "privileged", CVM_CHECK_MISSING, FIX_PRIVILEGED, "not effective for this "
		    "process (uid %d): %s", (int)geteuid(), lacking);
	else if (!cvm_hc_init_userns())
		add(r, "privileged", CVM_CHECK_WARN, "run the outer container privileged, without "
		    "user namespace remapping (docker userns-remap, sysbox, rootless runtimes)",
		    "the capabilities are there, but in a user namespace, not the host's: the "
		    "kernel refuses to idmap most host filesystems from one (see idmap_*)");
	else if (!(caps & (1ULL << CAP_SYS_RESOURCE_BIT)))
		add(r, "privileged", CVM_CHECK_WARN, "give the container cap_sys_resource "
		    "(privileged has it)", "the capabilities cvm needs are effective in the host's "
		    "user namespace, but not cap_sys_resource: cvm cannot set its oom_score_adj to "
		    "-1000, so an OOM inside could pick cvm");
	else
		add(r, "privileged", CVM_CHECK_OK, NULL, "cap_sys_admin and the rest cvm needs are "
		    "effective, in the host's user namespace");
}

static void check_mount(struct report *r)
{
	struct cvm_error err = { 0 };

	if (cvm_hc_mount(&err) < 0)
		add(r, "mount", CVM_CHECK_MISSING, FIX_PRIVILEGED ", with no seccomp or AppArmor "
		    "profile that blocks mount", "a tmpfs in a new mount namespace: %s", err.msg);
	else
		add(r, "mount", CVM_CHECK_OK, NULL, "mounted a tmpfs in a new, private mount "
		    "namespace (fsopen, fsmount, move_mount)");
}

/* ---- the image and state filesystems ------------------------------------ */

#define FIX_STATE_FS "put the state dir on a volume on ext4, xfs, btrfs or tmpfs (Linux >= " \
	"6.3): a Docker volume or a Kubernetes emptyDir"
#define NOT_GIVEN "not checked: give --rootfs DIR --state DIR (or [workspace] rootfs and state)"

/* [image] ref: its layers as the cache has them, without a registry. */
static bool check_cached_image(struct report *r, struct cvm_image *img)
{
	struct cvm_image_opts o = { 0 };
	struct cvm_error err = { 0 };
	char cache[4096];

	if (cvm_pull_config(r->c, &o, cache, sizeof(cache)) < 0) {
		add(r, "image", CVM_CHECK_MISSING, "set [workspace] state or [image] cache_dir",
		    "%s: no image cache to look in", r->c->image_ref);
		return false;
	}
	o.policy = CVM_PULL_NEVER;
	if (cvm_image_pull(&o, img, &err) < 0) {
		add(r, "image", CVM_CHECK_INFO, NULL, "%s is not in the cache %s yet: cvm run "
		    "pulls it (or run cvm pull %s first)", r->c->image_ref, cache, r->c->image_ref);
		return false;
	}
	add(r, "image", CVM_CHECK_OK, NULL, "%s is cached in %s: %s, %zu layers",
	    r->c->image_ref, cache, img->digest, img->n_layers);
	return true;
}

/* The image as the plan opened it, idmapped through that fd as cvm run
 * makes its layer. */
static void check_image(struct report *r, int userns_fd, bool *image_ok)
{
	const struct cvm_plan_rootfs *img = &r->plan->rootfs;
	const char *rootfs = img->path;
	struct cvm_error err = { 0 };

	*image_ok = false;
	if (!rootfs) {
		add(r, "idmap_image", CVM_CHECK_INFO, NULL, NOT_GIVEN);
		return;
	}
	if (img->fd < 0) {
		add(r, "idmap_image", CVM_CHECK_MISSING, "point --rootfs ([workspace] rootfs) at an "
		    "unpacked image directory", "%s", r->plan->why[CVM_PLAN_ROOTFS].msg);
		return;
	}
	if (img->n_layers) {    /* each layer is idmapped on its own: probe one */
		const char *top = img->layers[img->n_layers - 1];
		r->probe_fd = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (r->probe_fd < 0) {
			add(r, "idmap_image", CVM_CHECK_MISSING, "cvm pull the image again",
			    "image layer %s: %s", top, strerror(errno));
			return;
		}
	} else
		r->probe_fd = img->fd;
	if (cvm_hc_idmap(r->probe_fd, rootfs, userns_fd, &err) == 0) {
		*image_ok = true;
		add(r, "idmap_image", CVM_CHECK_OK, NULL, "%s can be idmapped: the image is used "
		    "in place, no copy, no chown", rootfs);
	} else if (err.err == EINVAL)
		add(r, "idmap_image", CVM_CHECK_WARN, "unpack the image on ext4, xfs, btrfs or "
		    "tmpfs to skip the copy", "%s; cvm falls back to a one-time shifted copy into "
		    "%s/rootfs (time and disk once, reused by later starts)", err.msg, r->c->state);
	else
		add(r, "idmap_image", CVM_CHECK_MISSING, FIX_PRIVILEGED, "%s", err.msg);
}

static void check_state(struct report *r, int userns_fd, const char *existing, bool *state_ok)
{
	const char *state = r->c->state;
	struct cvm_error err = { 0 };
	char note[4200] = "";
	cleanup_close int fd = -1;

	*state_ok = false;
	if (!state) {
		add(r, "idmap_state", CVM_CHECK_INFO, NULL, NOT_GIVEN);
		return;
	}
	if (strcmp(existing, state))
		snprintf(note, sizeof(note), " (%s does not exist yet; cvm makes it; checked %s)",
			 state, existing);
	fd = open(existing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		cvm_error_set(&err, errno, "%s", existing);
	if (fd >= 0 && cvm_hc_idmap(fd, existing, userns_fd, &err) == 0) {
		*state_ok = true;
		add(r, "idmap_state", CVM_CHECK_OK, NULL, "%s can be idmapped%s", state, note);
	} else
		add(r, "idmap_state", CVM_CHECK_MISSING, err.err == EINVAL ? FIX_STATE_FS :
		    FIX_PRIVILEGED, "%s%s", err.msg, note);
}

static void check_overlay(struct report *r, bool state_ok, bool image_ok, const char *existing)
{
	const struct cvm_config *c = r->c;
	struct cvm_error err = { 0 };

	if (!c->state) {
		add(r, "overlay", CVM_CHECK_INFO, NULL, NOT_GIVEN);
		return;
	}
	if (!state_ok) {
		add(r, "overlay", CVM_CHECK_INFO, NULL, "not tried: it needs an idmapped state dir "
		    "(see idmap_state)");
		return;
	}
	if (cvm_hc_overlay(image_ok ? r->probe_fd : -1, r->plan->rootfs.path, existing,
			   r->plan->uid_base, r->plan->uid_count, &err) < 0)
		add(r, "overlay", CVM_CHECK_MISSING, "run on Linux 5.19 or later with a state dir "
		    "that can hold an overlay upper layer (ext4, xfs, btrfs, tmpfs)",
		    "the workspace's overlay over idmapped layers: %s", err.msg);
	else
		add(r, "overlay", CVM_CHECK_OK, NULL, "mounted over the idmapped %s and state "
		    "layers in a private mount namespace, writable: a file written as the "
		    "workspace's root is uid 0 on disk (scratch dir in %s, removed)",
		    image_ok ? "image" : "stand-in image", existing);
}

static void check_layers(struct report *r)
{
	const struct cvm_config *c = r->c;
	struct cvm_error err = { 0 };
	char existing[4096] = "";
	bool image_ok, state_ok;
	cleanup_close int userns_fd = -1;

	if (r->plan->rootfs.path || c->state) {
		userns_fd = cvm_userns_open(r->plan->uid_base, r->plan->uid_count, &err);
		if (userns_fd < 0) {
			static const char *const names[] = { "idmap_image", "idmap_state", "overlay" };
			for (size_t i = 0; i < 3; i++)
				add(r, names[i], CVM_CHECK_MISSING, FIX_PRIVILEGED, "the workspace's "
				    "user namespace (ids %u+%u): %s", c->uid_base, c->uid_count, err.msg);
			return;
		}
	}
	if (c->state && cvm_hc_existing(c->state, existing, sizeof(existing)) < 0)
		snprintf(existing, sizeof(existing), "%s", c->state);
	check_image(r, userns_fd, &image_ok);
	check_state(r, userns_fd, existing, &state_ok);
	check_overlay(r, state_ok, image_ok, existing);
}

/* ---- cgroups ---------------------------------------------------------------- */

static const struct {
	const char *name;
	const char *without;    /* what the workspace loses */
} controllers[] = {
	{ "cpu", "cpus limits (and cpus = auto, the pod's CPU limit) cannot be applied" },
	{ "memory", "memory, memory_high and swap limits cannot be applied; /proc/meminfo "
	  "shows the host's memory" },
	{ "pids", "the pids limit cannot be applied" },
	{ "io", "io_weight cannot be applied; /proc/diskstats shows no numbers of the workspace" },
	{ "cpuset", "the cpuset cannot be applied; /proc/cpuinfo shows every CPU of the host" },
};

#define FIX_V2 "run on a node with a pure cgroup v2 hierarchy: " CVM_CGROUP_FIX_V2

/* The explicit [resources] limit of the plan that needs @controller, if any. */
static const char *explicit_limit(const struct report *r, const char *ctl)
{
	const struct cvm_cg_limit *limits = r->plan->limits;

	for (size_t i = 0; i < r->plan->n_limits; i++)
		if (limits[i].explicit_ && strlen(limits[i].file) > strlen(ctl) &&
		    !strncmp(limits[i].file, ctl, strlen(ctl)) && limits[i].file[strlen(ctl)] == '.')
			return limits[i].key;
	return NULL;
}

static void check_controllers(struct report *r, const char *group, bool hybrid)
{
	char have[512] = "", list[520];

	if (cvm_cgroup_read_at(group, "cgroup.controllers", have, sizeof(have)) < 0)
		have[0] = '\0';
	have[strcspn(have, "\n")] = '\0';
	snprintf(list, sizeof(list), " %s ", have);
	for (size_t i = 0; i < sizeof(controllers) / sizeof(controllers[0]); i++) {
		static const char *const names[] = { "cgroup_cpu", "cgroup_memory", "cgroup_pids",
						     "cgroup_io", "cgroup_cpuset" };
		char want[40], v1[4096], why[1024];
		const char *key;

		snprintf(want, sizeof(want), " %s ", controllers[i].name);
		if (strstr(list, want)) {
			add(r, names[i], CVM_CHECK_OK, NULL, "available in %s/cgroup.controllers", group);
			continue;
		}
		if (cvm_hc_v1_mount("/proc/self/mountinfo", controllers[i].name, v1, sizeof(v1)) == 0)
			snprintf(why, sizeof(why), "not in %.400s/cgroup.controllers: the cgroup v1 "
				 "hierarchy at %.400s holds it (hybrid host)", group, v1);
		else
			snprintf(why, sizeof(why), "not in %.400s/cgroup.controllers ('%.200s'): the "
				 "parent group does not delegate it", group, have);
		key = explicit_limit(r, controllers[i].name);
		if (key)
			add(r, names[i], CVM_CHECK_MISSING, "remove the limit, or " FIX_V2, "%s; the "
			    "configured %s limit needs it, so cvm run refuses to start", why, key);
		else
			add(r, names[i], CVM_CHECK_WARN, hybrid ? "see cgroup_layout" : "enable it in the parent's "
			    "cgroup.subtree_control (the container runtime's job)", "%s; %s; cvm still "
			    "runs", why, controllers[i].without);
	}
}

static void check_delegation(struct report *r, const char *group)
{
	struct cvm_hc_delegation d;
	struct cvm_error err = { 0 };
	uid_t id = r->c->uid_base;

	if (cvm_hc_delegation(group, id, id, &d, &err) < 0) {
		add(r, "cgroup_delegation", CVM_CHECK_MISSING, FIX_PRIVILEGED " with its own cgroup "
		    "namespace (docker --cgroupns=private), so that its cgroup is writable",
		    "%s", err.msg);
		return;
	}
	if (!d.clone_into || !d.has_kill) {
		add(r, "cgroup_delegation", CVM_CHECK_WARN, "run on Linux 5.14 or later",
		    "made %s and handed it to uid %u, but %s%s%s; removed it", d.group, id,
		    d.clone_into ? "" : "clone3(CLONE_INTO_CGROUP) failed (",
		    d.clone_into ? "" : strerror(d.clone_errno),
		    d.clone_into ? "no cgroup.kill: stop relies on signals" :
		    "): cvm moves the workspace after clone");
		return;
	}
	add(r, "cgroup_delegation", CVM_CHECK_OK, NULL, "made %s, handed it to uid %u (the "
	    "workspace's root), started a process straight into it (CLONE_INTO_CGROUP), removed it",
	    d.group, id);
}

/* cgroup_layout: what the host is, whatever the mount says. */
static void check_layout(struct report *r, const struct cvm_cg_host *h)
{
	struct cvm_error err = { 0 };
	char why[700];
	size_t n;

	cvm_cgroup_host_why(h, why, sizeof(why));
	switch (h->layout) {
	case CVM_CG_UNIFIED:
		add(r, "cgroup_layout", CVM_CHECK_OK, NULL, "unified: cgroup v2 only");
		break;
	case CVM_CG_HYBRID:
		if (cvm_cgroup_v1_probe("/proc/self/cgroup", &n, &err) < 0) {
			add(r, "cgroup_layout", CVM_CHECK_MISSING, FIX_PRIVILEGED, "hybrid: %.900s; "
			    "cvm run refuses to start without it", err.msg);
			break;
		}
		add(r, "cgroup_layout", CVM_CHECK_WARN, FIX_V2, "hybrid: cgroup v1 hierarchies "
		    "(%.200s) next to cgroup2 at %.300s; a controller bound to v1 is not available "
		    "in cgroup2, so its limits cannot be applied; the workspace gets a group of its "
		    "own in each v1 hierarchy, so a v1 mount inside shows only that (made and "
		    "removed a cvm-check.* group in each of the %zu)",
		    h->v1[0] ? h->v1 : h->v1_mount, h->mount, n);
		break;
	case CVM_CG_V1_ONLY:
	case CVM_CG_NONE:
		add(r, "cgroup_layout", CVM_CHECK_MISSING, CVM_CGROUP_FIX_V2, "%s; cvm needs "
		    CVM_CGROUP_NEEDS, why);
	}
}

static void check_cgroups(struct report *r)
{
	static const char *const later[] = { "cgroup_cpu", "cgroup_memory", "cgroup_pids",
					      "cgroup_io", "cgroup_cpuset", "cgroup_delegation" };
	struct cvm_error err = { 0 };
	struct cvm_cg_host h;
	char group[4096];

	cvm_cgroup_host("/proc/self/mountinfo", "/proc/self/cgroup", true, &h);
	if (cvm_cgroup_self(group, sizeof(group), &err) < 0) {
		char why[700];
		cvm_cgroup_host_why(&h, why, sizeof(why));
		if (h.mount[0])
			add(r, "cgroup2", CVM_CHECK_MISSING, CVM_CGROUP_FIX_BIND, "%s; cvm needs "
			    CVM_CGROUP_NEEDS, why);
		else
			add(r, "cgroup2", CVM_CHECK_MISSING, CVM_CGROUP_FIX_V2, "no cgroup2 hierarchy "
			    "is mounted here: cvm needs " CVM_CGROUP_NEEDS);
		check_layout(r, &h);
		for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
			add(r, later[i], CVM_CHECK_INFO, NULL, "not checked: no cgroup2 with cvm's group");
		return;
	}
	add(r, "cgroup2", CVM_CHECK_OK, NULL, "mounted at %s; cvm's group: %s%s", h.mount, group,
	    cvm_cgroup_in_host_root() ? " (the host's root cgroup: as PID 1 of a container cvm "
	    "uses the container's own group; run like this, from a host shell, cvm run leaves "
	    "cgroups alone)" : "");
	check_layout(r, &h);
	check_controllers(r, group, h.layout == CVM_CG_HYBRID);
	check_delegation(r, group);
}

/* ---- devices, seccomp ------------------------------------------------------- */

static void check_fuse(struct report *r)
{
	struct cvm_error err = { 0 };
	const char *fix = "give the container /dev/fuse (docker --device /dev/fuse, or "
			  "privileged; modprobe fuse on the node)";

	if (cvm_hc_fuse(&err) == 0)
		add(r, "fuse", CVM_CHECK_OK, NULL, "/dev/fuse opens: the /proc server can run");
	else if (r->c->dev_fuse)
		add(r, "fuse", CVM_CHECK_MISSING, fix, "%s; [devices] fuse = yes needs it", err.msg);
	else
		add(r, "fuse", CVM_CHECK_WARN, fix, "%s; the workspace gets the host's /proc numbers "
		    "(no /proc server); cvm still runs", err.msg);
}

static void check_seccomp(struct report *r)
{
	struct cvm_error err = { 0 };
	int mode;

	if (cvm_hc_seccomp(&mode, &err) < 0)
		add(r, "seccomp", r->c->seccomp ? CVM_CHECK_MISSING : CVM_CHECK_WARN,
		    "run on a kernel with CONFIG_SECCOMP_FILTER, or turn the profile off with "
		    "--no-seccomp (debugging only)", "%s: the workspace's syscall profile cannot be "
		    "loaded", err.msg);
	else
		add(r, "seccomp", CVM_CHECK_OK, NULL, "filters with SECCOMP_RET_ERRNO available%s",
		    mode == 2 ? "; cvm itself already runs under a filter (the outer container's), "
		    "which the workspace's stacks on" : "");
}

/* What a GPU workspace would get here: cvm run's plan of it (with the image
 * when one is given). */
static void check_gpu(struct report *r)
{
	const struct cvm_config *c = r->c;
	const struct cvm_gpu_plan *plan = &r->plan->gpu.plan;
	const struct cvm_error *why = &r->plan->why[CVM_PLAN_GPU];
	size_t len = 0;

	if (why->msg[0]) {
		add(r, "gpu", c->gpu_enable == CVM_GPU_YES ? CVM_CHECK_MISSING : CVM_CHECK_WARN,
		    "see the message; or set [gpu] enable = no", "%s", why->msg);
	} else if (!plan->enabled) {
		add(r, "gpu", CVM_CHECK_INFO, NULL, "off: %s", plan->why);
	} else {
		FILE *f = open_memstream(&r->gpu_plan, &len);
		if (f) {
			cvm_gpu_plan_print(f, plan);
			fclose(f);
		}
		add(r, "gpu", CVM_CHECK_OK, NULL, "%s: %zu device nodes, %zu driver files into %s",
		    plan->why, plan->n_nodes, plan->n_files, plan->inner_lib_dir);
	}
}

/* ---- output ------------------------------------------------------------------ */

static enum cvm_check_status worst(const struct report *r)
{
	enum cvm_check_status w = CVM_CHECK_OK;

	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].status > w)
			w = r->items[i].status;
	return w;
}

static void list_names(const struct report *r, enum cvm_check_status st, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].status == st)
			snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? ", " : "",
				 r->items[i].name);
}

/* The errnos of the seccomp table by name (musl has no strerrorname_np). */
static const char *errno_name(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOSYS: return "ENOSYS";
	default: return "errno";
	}
}

static void print_json_string(const char *s);

/* What cvm itself will hold once a workspace runs, and what the workspace
 * can never get back, from the same tables runtime/ applies. */
static void print_caps_text(const struct cvm_config *c)
{
	size_t n;
	const struct cvm_cap_note *k = cvm_caps_supervisor_kept(!strcmp(c->network, "private"), &n);

	printf("\ncapabilities (cvm after setup / workspace bounding set):\n");
	printf("  cvm keeps only, in every set (bounding set too):\n");
	for (size_t i = 0; i < n; i++)
		printf("    %-16s %s\n", k[i].name, k[i].why);
	k = cvm_caps_server_kept(&n);
	printf("  the /proc server keeps only:\n");
	for (size_t i = 0; i < n; i++)
		printf("    %-16s %s\n", k[i].name, k[i].why);
	k = cvm_caps_bound_dropped(&n);
	printf("  the workspace's bounding set lacks:\n");
	for (size_t i = 0; i < n; i++)
		printf("    %-16s %s\n", k[i].name, k[i].why);
}

static void print_seccomp_text(const struct cvm_config *c)
{
	size_t n;
	const struct cvm_seccomp_rule *rule = cvm_seccomp_rules(&n);

	printf("\nseccomp profile:\n");
	if (!c->seccomp) {
		printf("  off ([workspace] seccomp = no): the kernel's own checks only\n");
		return;
	}
	printf("  default allow; refused:\n");
	for (size_t i = 0; i < n; i++)
		printf("    %-18s %-10s %s\n", rule[i].name, errno_name(rule[i].err), rule[i].why);
	printf("    %-18s %-10s %s\n", "userfaultfd", "EPERM",
	       "unless UFFD_USER_MODE_ONLY: kernel-mode faults stretch kernel races");
	for (size_t i = 0; i < c->n_seccomp_deny; i++)
		printf("    %-18s %-10s %s\n", c->seccomp_deny[i], "EPERM", "[workspace] seccomp_deny");
}

static void print_notes_json(const char *key, const struct cvm_cap_note *k, size_t n)
{
	printf("\"%s\": [", key);
	for (size_t i = 0; i < n; i++) {
		printf("%s{\"name\": \"%s\", \"why\": ", i ? ", " : "", k[i].name);
		print_json_string(k[i].why);
		fputs("}", stdout);
	}
	fputs("]", stdout);
}

static void print_security_json(const struct cvm_config *c)
{
	size_t n;
	const struct cvm_cap_note *k = cvm_caps_supervisor_kept(!strcmp(c->network, "private"), &n);
	const struct cvm_seccomp_rule *rule;

	fputs(",\n\"capabilities\": {", stdout);
	print_notes_json("cvm_keeps", k, n);
	fputs(", ", stdout);
	k = cvm_caps_server_kept(&n);
	print_notes_json("proc_server_keeps", k, n);
	fputs(", ", stdout);
	k = cvm_caps_bound_dropped(&n);
	print_notes_json("workspace_bounding_set_lacks", k, n);
	printf("},\n\"seccomp_profile\": {\"enabled\": %s, \"default\": \"allow\", \"refused\": [",
	       c->seccomp ? "true" : "false");
	rule = cvm_seccomp_rules(&n);
	for (size_t i = 0; c->seccomp && i < n; i++) {
		printf("%s{\"syscall\": \"%s\", \"errno\": \"%s\", \"why\": ", i ? ", " : "",
		       rule[i].name, errno_name(rule[i].err));
		print_json_string(rule[i].why);
		fputs("}", stdout);
	}
	for (size_t i = 0; c->seccomp && i < c->n_seccomp_deny; i++)
		printf(", {\"syscall\": \"%s\", \"errno\": \"EPERM\", \"why\": "
		       "\"[workspace] seccomp_deny\"}", c->seccomp_deny[i]);
	fputs("]}", stdout);
}

static void print_text(const struct report *r)
{
	enum cvm_check_status w = worst(r);
	char names[1024];

	for (size_t i = 0; i < r->n; i++) {
		const struct check *c = &r->items[i];
		printf("%-8s %-18s %s%s%s\n", cvm_check_status_name(c->status), c->name, c->why,
		       c->fix[0] ? " -- to fix: " : "", c->fix);
	}
	if (r->gpu_plan)
		printf("\nGPU plan:\n%s", r->gpu_plan);
	print_caps_text(r->c);
	print_seccomp_text(r->c);
	if (w == CVM_CHECK_MISSING) {
		list_names(r, CVM_CHECK_MISSING, names, sizeof(names));
		printf("\ncvm cannot run here: missing %s\n", names);
	} else if (w == CVM_CHECK_WARN) {
		list_names(r, CVM_CHECK_WARN, names, sizeof(names));
		printf("\ncvm can run here, with less: %s\n", names);
	} else
		printf("\ncvm can run here\n");
}

static void print_json_string(const char *s)
{
	char esc[4096];

	if (!s || !s[0]) {
		fputs("null", stdout);
		return;
	}
	cvm_json_escape(esc, sizeof(esc), s);
	printf("\"%s\"", esc);
}

static void print_json(const struct report *r)
{
	printf("{\"version\": \"%s\", \"can_run\": %s, \"checks\": [", CVM_VERSION,
	       worst(r) == CVM_CHECK_MISSING ? "false" : "true");
	for (size_t i = 0; i < r->n; i++) {
		const struct check *c = &r->items[i];
		printf("%s\n  {\"name\": \"%s\", \"status\": \"%s\", \"why\": ", i ? "," : "",
		       c->name, cvm_check_status_name(c->status));
		print_json_string(c->why);
		fputs(", \"fix\": ", stdout);
		print_json_string(c->fix);
		fputs("}", stdout);
	}
	fputs("\n],\n\"gpu_plan\": ", stdout);
	print_json_string(r->gpu_plan);
	print_security_json(r->c);
	fputs("}\n", stdout);
}

/* ---- the command --------------------------------------------------------- */

static void check_usage(FILE *out)
{
	fputs("Usage: cvm check [--rootfs DIR --state DIR] [--config FILE] [--json]\n"
	      "\n"
	      "A preflight report: can cvm run on this host, in this container? One line\n"
	      "per requirement: ok, warn (cvm runs, with less), missing (it cannot run)\n"
	      "or info, then why and what to do. Each is tried for real, without side\n"
	      "effects: user namespaces, mount rights, idmapped mounts and the overlay on\n"
	      "the image and state filesystems, cgroup2, its controllers and delegation\n"
	      "(a scratch cvm-check.* group, removed), /dev/fuse, seccomp, GPUs.\n"
	      "The config is read as cvm run reads it (INI < CVM_* < flags).\n"
	      "Exits 0 when cvm can run (warnings or not), 1 when something is missing,\n"
	      "2 for a bad config or usage.\n"
	      "\n"
	      "Options:\n"
	      "  -r, --rootfs DIR     the unpacked image to check\n"
	      "  -s, --state DIR      the state dir to check (made by cvm run if missing)\n"
	      "  -c, --config FILE    INI config (default " CVM_DEFAULT_CONFIG_PATH ", if present)\n"
	      "      --json           one JSON object: can_run, checks[{name, status, why, fix}]\n"
	      "  -h, --help           show this help\n", out);
}

static int load_config(struct cvm_config *c, int argc, char *argv[], bool *json)
{
	static const struct option longopts[] = {
		{ "rootfs", required_argument, NULL, 'r' }, { "state", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	const char *path = NULL, *rootfs = NULL, *state = NULL;
	struct cvm_error err = { 0 };
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "r:s:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r': rootfs = optarg; break;
		case 's': state = optarg; break;
		case 'c': path = optarg; break;
		case 'j': *json = true; break;
		case 'h': check_usage(stdout); return 1;
		default: return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cvm check: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (cvm_config_load_layers(c, path, environ, &err) < 0 ||
	    (rootfs && cvm_config_set(c, "workspace", "rootfs", rootfs, "--rootfs", &err) < 0) ||
	    (state && cvm_config_set(c, "workspace", "state", state, "--state", &err) < 0) ||
	    cvm_config_validate(c, &err) < 0) {
		fprintf(stderr, "cvm check: %s\n", err.msg);
		return -1;
	}
	return 0;
}

int cvm_cmd_check(int argc, char *argv[])
{
	static struct report r;
	static struct cvm_plan plan;
	struct cvm_config c = { 0 };
	struct cvm_error err = { 0 };
	struct cvm_image img = { .lock_fd = -1 };
	bool json = false, has_image = false;
	int rc;

	rc = load_config(&c, argc, argv, &json);
	if (rc != 0) {
		cvm_config_free(&c);
		return rc > 0 ? 0 : 2;
	}
	r.c = &c;
	r.probe_fd = -1;
	/* An image reference: what the cache holds for it (cvm check asks no
	 * registry; cvm pull or cvm run fetch it). */
	if (c.image_ref)
		has_image = check_cached_image(&r, &img);
	/* cvm run's own plan of this config: the lines below report on its
	 * parts (the image, the ids, the limits, the GPU), not on a copy. */
	if (cvm_plan_make(&c, NULL, has_image ? &img : NULL, &plan, &err) == CVM_EXIT_SETUP_FAILED) {
		fprintf(stderr, "cvm check: %s\n", err.msg);
		cvm_plan_free(&plan);
		if (has_image)
			cvm_image_free(&img);
		cvm_config_free(&c);
		return CVM_EXIT_SETUP_FAILED;
	}
	r.plan = &plan;
	check_kernel(&r);
	check_userns(&r);
	check_id_range(&r);
	check_privileged(&r);
	check_mount(&r);
	check_layers(&r);
	check_cgroups(&r);
	check_fuse(&r);
	check_seccomp(&r);
	check_gpu(&r);
	if (json)
		print_json(&r);
	else
		print_text(&r);
	rc = worst(&r) == CVM_CHECK_MISSING ? 1 : 0;
	if (r.probe_fd >= 0 && r.probe_fd != plan.rootfs.fd)
		close(r.probe_fd);
	cvm_plan_free(&plan);
	if (has_image)
		cvm_image_free(&img);
	cvm_config_free(&c);
	return rc;
}
