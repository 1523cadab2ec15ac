/* The workspace's plan (plan.h): each part a function that reads the config
 * and the outer container, and records either what it decided or why it
 * cannot be. No logging here: cvm run logs the plan, cvm check prints it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env.h"
#include "image/manifest.h"
#include "plan.h"
#include "runtime/cgroup.h"
#include "runtime/cleanup.h"
#include "runtime/exitcode.h"
#include "runtime/idmap.h"

extern char **environ;

/* What cvm run adds to a part's failure: the context before it, the way to
 * fix it after (cvm check has a fix column of its own). */
static const struct {
	const char *prefix, *hint;
} run_words[CVM_PLAN_N_PARTS] = {
	[CVM_PLAN_ROOTFS] = { NULL, "point --rootfs ([workspace] rootfs) at an unpacked image "
			      "directory" },
	[CVM_PLAN_GPU] = { "gpu", NULL },
};

static void plan_rootfs(struct cvm_plan *p, const struct cvm_image *image)
{
	const char *path = p->c->rootfs;

	if (image) {
		p->rootfs = (struct cvm_plan_rootfs){ p->c->image_ref, -1, image->layers,
						      image->n_layers };
		p->rootfs.fd = cvm_ws_layers_view(image->layers, image->n_layers,
						  &p->why[CVM_PLAN_ROOTFS]);
		return;
	}
	p->rootfs = (struct cvm_plan_rootfs){ path, -1 };
	if (!path) {
		cvm_error_set(&p->why[CVM_PLAN_ROOTFS], 0, "no rootfs given");
		return;
	}
	p->rootfs.fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (p->rootfs.fd < 0)
		cvm_error_set(&p->why[CVM_PLAN_ROOTFS], errno, "rootfs %s", path);
}

/* What the inner init runs, and whether it is systemd. */
static void plan_init(struct cvm_plan *p)
{
	p->stop_signal = SIGTERM;
	if (p->rootfs.fd < 0)
		return;         /* nothing to look in: the rootfs part says why */
	cvm_inner_check(&p->in, p->rootfs.fd, &p->why[CVM_PLAN_INIT]);
	p->systemd = cvm_inner_is_systemd(&p->in, p->rootfs.fd);
	if (p->systemd)
		p->stop_signal = SIGRTMIN + 3;
}

static int plan_mounts(struct cvm_plan *p)
{
	const struct cvm_config *c = p->c;
	struct stat st;

	p->mounts = calloc(c->n_mounts + 1, sizeof(*p->mounts));
	if (!p->mounts)
		return -1;
	for (size_t i = 0; i < c->n_mounts; i++) {
		p->mounts[i] = (struct cvm_ws_mount){ c->mounts[i].name, c->mounts[i].source,
						      c->mounts[i].target, c->mounts[i].readonly };
		if (stat(c->mounts[i].source, &st) < 0 && !p->why[CVM_PLAN_MOUNTS].msg[0])
			cvm_error_set(&p->why[CVM_PLAN_MOUNTS], 0, "mount \"%s\": source %s: %s; "
				      "create it or fix the path", c->mounts[i].name,
				      c->mounts[i].source, strerror(errno));
	}
	return 0;
}

static void plan_ids(struct cvm_plan *p)
{
	p->uid_base = p->c->uid_base;
	p->uid_count = p->c->uid_count;
	cvm_idrange_check(p->uid_base, p->uid_count, "/proc/self/uid_map", "/proc/self/gid_map",
			  "/etc/passwd", "/etc/group", &p->why[CVM_PLAN_IDS]);
}

/* gpu/'s plan as runtime/ takes it, and its variables in the workspace's
 * environment unless [workspace] env set them. */
static int gpu_extras(struct cvm_plan_gpu *g, char ***envp)
{
	const struct cvm_gpu_plan *p = &g->plan;

	g->nodes = calloc(p->n_nodes + 1, sizeof(*g->nodes));
	g->files = calloc(p->n_files + 1, sizeof(*g->files));
	g->links = calloc(p->n_links + 1, sizeof(*g->links));
	if (!g->nodes || !g->files || !g->links)
		return -1;
	for (size_t i = 0; i < p->n_nodes; i++)
		g->nodes[i] = (struct cvm_ws_node){ p->nodes[i].outer, p->nodes[i].inner,
						    p->nodes[i].rdev, p->nodes[i].mode,
						    p->nodes[i].uid, p->nodes[i].gid };
	for (size_t i = 0; i < p->n_files; i++)
		g->files[i] = (struct cvm_ws_file){ p->files[i].outer, p->files[i].inner };
	for (size_t i = 0; i < p->n_links; i++)
		g->links[i] = (struct cvm_ws_link){ p->links[i].inner, p->links[i].target };
	g->x = (struct cvm_ws_extras){ g->nodes, p->n_nodes, g->files, p->n_files, g->links,
				       p->n_links };
	for (size_t i = 0; i < p->n_env; i++) {
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(p->env[i], "="), p->env[i]);
		if (!cvm_env_get(*envp, name) &&
		    cvm_env_set(envp, name, p->env[i] + strlen(name) + 1) < 0)
			return -1;
	}
	return 0;
}

/* With the image when there is one: its os-release picks the library dir,
 * and a GPU file that would hide one of its own stops the plan. */
static int plan_gpu(struct cvm_plan *p)
{
	const struct cvm_config *c = p->c;
	struct cvm_gpu_config gc = { c->gpu_enable, c->gpu_visible_devices, c->gpu_host_lib_dir,
				     c->gpu_inner_lib_dir };
	struct cvm_gpu_host h;

	cvm_gpu_host_default(&h, environ);
	if (cvm_gpu_plan_make(&gc, &h, p->rootfs.fd, &p->gpu.plan, &p->why[CVM_PLAN_GPU]) < 0 ||
	    !p->gpu.plan.enabled)
		return 0;
	if (gpu_extras(&p->gpu, &p->in.envp) < 0)
		return -1;
	p->spec.extras = &p->gpu.x;
	return 0;
}

/* The private network's addresses, and /etc/resolv.conf and /etc/hosts to
 * go with them. */
static void plan_net(struct cvm_plan *p)
{
	const struct cvm_config *c = p->c;
	struct cvm_plan_net *n = &p->net;
	struct cvm_error *why = &p->why[CVM_PLAN_NET];
	uint32_t net;
	unsigned prefix;

	n->addr.forward_was = -1;
	if (strcmp(c->network, "private") != 0)
		return;
	n->private_ = true;
	if (cvm_net_parse_cidr(c->network_cidr, &net, &prefix) < 0) {
		cvm_error_set(why, 0, "network_cidr %s", c->network_cidr);
		return;
	}
	cvm_net_init(&n->addr, net, prefix);
	if (cvm_net_resolv_conf("/etc/resolv.conf", n->addr.outer_ip, &n->resolv, why) < 0) {
		cvm_error_prefix(why, "DNS for the workspace");
		return;
	}
	cvm_net_hosts(&n->addr, c->hostname, n->hosts, sizeof(n->hosts));
	n->writes[0] = (struct cvm_ws_write){ "/etc/resolv.conf", n->resolv.text };
	n->writes[1] = (struct cvm_ws_write){ "/etc/hosts", n->hosts };
	p->spec.writes = n->writes;
	p->spec.n_writes = 2;
	p->spec.netns = true;
}

/* [resources] as cgroup files; "auto" copies the outer group's own limit
 * (the group cvm is in now: its workspace group goes below it). */
static void plan_limits(struct cvm_plan *p)
{
	struct cvm_error e = { 0 };
	char self[4096] = "";

	if (cvm_cgroup_self(self, sizeof(self), &e) < 0)
		self[0] = '\0';         /* no cgroup2: only the explicit limits */
	p->n_limits = cvm_resources_plan(p->c, self, p->limits);
}

static void plan_spec(struct cvm_plan *p)
{
	const struct cvm_config *c = p->c;
	struct winsize ws;

	p->spec = (struct cvm_ws_spec){
		.rootfs = p->rootfs.path, .rootfs_fd = p->rootfs.fd, .state = c->state,
		.layers = p->rootfs.layers, .n_layers = p->rootfs.n_layers,
		.uid_base = c->uid_base, .uid_count = c->uid_count, .hostname = c->hostname,
		.dev_fuse = c->dev_fuse, .dev_tun = c->dev_tun, .console = isatty(STDIN_FILENO),
		.mounts = p->mounts, .n_mounts = c->n_mounts,
		.engine_dirs = c->engine_dirs, .n_engine_dirs = c->n_engine_dirs,
		.copy_rootfs = c->idmap == CVM_IDMAP_OFF,
		.cgroup_fd = -1, .procfs_fd = -1, .init_fd = -1,
	};
	if (p->spec.console && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
		p->spec.console_rows = ws.ws_row;
		p->spec.console_cols = ws.ws_col;
	}
}

/* The first part that failed, as cvm run says it. */
static int first_failure(const struct cvm_plan *p, struct cvm_error *err)
{
	for (int i = 0; i < CVM_PLAN_N_PARTS; i++) {
		if (!p->why[i].msg[0])
			continue;
		*err = p->why[i];
		if (run_words[i].prefix)
			cvm_error_prefix(err, "%s", run_words[i].prefix);
		if (run_words[i].hint)
			snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
				 "; %s", run_words[i].hint);
		return CVM_EXIT_USAGE;
	}
	return 0;
}

int cvm_plan_make(const struct cvm_config *c, char **argv, const struct cvm_image *image,
		  struct cvm_plan *p, struct cvm_error *err)
{
	char **image_env = NULL;

	*p = (struct cvm_plan){ .c = c, .rootfs = { c->rootfs, -1 } };
	p->in = (struct cvm_inner){ .config = c, .argv = argv, .envp = NULL,
				    .notify_sock = -1 };
	if (image && !(image_env = cvm_image_config_env(image->config_json, err))) {
		cvm_error_prefix(err, "image %s", c->image_ref);
		return CVM_EXIT_SETUP_FAILED;
	}
	p->in.envp = cvm_env_build(c, image_env, environ);
	cvm_env_free(image_env);
	if (!p->in.envp)
		goto oom;
	plan_rootfs(p, image);
	plan_init(p);
	if (plan_mounts(p) < 0)
		goto oom;
	plan_ids(p);
	plan_spec(p);
	if (plan_gpu(p) < 0)
		goto oom;
	/* systemd and other inits look here to learn they run in a container. */
	if (!cvm_env_get(p->in.envp, "container") &&
	    cvm_env_set(&p->in.envp, "container", "cvm") < 0)
		goto oom;
	plan_net(p);
	plan_limits(p);
	return first_failure(p, err);
oom:
	cvm_error_set(err, ENOMEM, "plan the workspace");
	return CVM_EXIT_SETUP_FAILED;
}

void cvm_plan_close_rootfs(struct cvm_plan *p)
{
	cvm_closep(&p->rootfs.fd);
	p->rootfs.fd = -1;
}

void cvm_plan_free(struct cvm_plan *p)
{
	struct cvm_plan_gpu *g = &p->gpu;

	free(g->nodes);
	free(g->files);
	free(g->links);
	g->nodes = NULL;
	g->files = NULL;
	g->links = NULL;
	cvm_gpu_plan_free(&g->plan);    /* zeroes it */
	cvm_env_free(p->in.envp);
	p->in.envp = NULL;
	free(p->mounts);
	p->mounts = NULL;
	cvm_plan_close_rootfs(p);
}
