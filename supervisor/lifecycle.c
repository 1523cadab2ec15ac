/* A workspace's life, phase by phase: cvm_workspace_run() reads top to
 * bottom. ws_plan() decides everything that can be decided before anything
 * starts (and fails with 2 on bad input); ws_start() builds it (the
 * cgroups, the /proc server, the namespaces and mounts, the console);
 * ws_attach() hands it to PID 1's loop (signals, the control socket, the
 * bootstrap, the dropped capabilities); ws_wait() runs the loop until the
 * workspace and everything of it has ended; ws_teardown(), the one exit
 * path, undoes whatever the phases got to, in any state. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bootstrap.h"
#include "config.h"
#include "console.h"
#include "control.h"
#include "env.h"
#include "inner.h"
#include "lifecycle.h"
#include "log.h"
#include "pid1.h"
#include "procserver.h"
#include "resources.h"
#include "tty.h"
#include "runtime/caps.h"
#include "runtime/cgroup.h"
#include "runtime/cleanup.h"
#include "runtime/dnsrelay.h"
#include "runtime/exitcode.h"
#include "runtime/fdio.h"
#include "runtime/idmap.h"
#include "runtime/join.h"
#include "runtime/net.h"
#include "runtime/syscalls.h"
#include "runtime/workspace.h"
#include "gpu/gpu.h"

static void ws_note(const char *line, void *arg)
{
	(void)arg;
	log_info("workspace", "%s", line);
}

/* The plan as the runtime takes it (it knows nothing of gpu/), and its
 * variables in the workspace's environment unless [workspace] env set them. */
struct ws_gpu {
	struct cvm_gpu_plan plan;
	struct cvm_ws_extras x;
	struct cvm_ws_node *nodes;
	struct cvm_ws_file *files;
	struct cvm_ws_link *links;
};

/* Stopping a workspace goes through its init, which stops what runs under
 * it; SIGKILL to the init ends the whole pid namespace. Processes outside
 * it (cvm exec helpers) only get the final SIGKILL. */
struct ws_run {
	struct cvm_ws ws;
	struct cvm_cgroup cg;
	bool has_cgroup;
	struct cvm_procserver procfs;
	bool has_procfs;
	struct cvm_bootstrap boot;
	struct cvm_ws_handle handle;    /* what cvm exec and the bootstrap join */
	int stop_signal;        /* what the inner init stops on, for SIGTERM */
	struct cvm_net net;
	struct cvm_resolv resolv;
	struct cvm_dnsrelay dns;        /* when the outer resolver is on loopback */
	char hosts[1024];
	struct cvm_ws_write writes[2];
	struct cvm_tty_raw tty;         /* cvm's terminal, raw while the console relays */

	/* the plan (ws_plan): what to start, fixed before anything starts */
	const struct cvm_config *c;
	const struct timespec *started;         /* when cvm run began */
	struct cvm_inner in;                    /* the inner init's job; in.envp is ours */
	struct cvm_ws_spec spec;
	struct cvm_ws_mount *mounts;
	struct ws_gpu gpu;

	/* running (ws_start, ws_attach) */
	struct cvm_pid1 p;
	bool has_pid1;
	bool attached;                          /* PID 1's loop owns the workspace */
	struct cvm_control_ctx ctl;
	int ctl_fd;
};

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - t0->tv_nsec) / 1000000);
}

static int ws_signal_all(int sig, void *data)
{
	struct ws_run *w = data;
	int n = sys_pidfd_send_signal(w->ws.pidfd, sig == SIGTERM ? w->stop_signal : sig,
				      NULL, 0) == 0;

	/* The /proc server goes with the workspace (TERM is enough for it). */
	if (w->has_procfs && sig != SIGCONT)
		cvm_procserver_signal(&w->procfs, sig);

	if (sig == SIGKILL) {
		/* Whatever escaped the pid namespace's end is still in the group. */
		if (w->has_cgroup)
			cvm_cgroup_kill(&w->cg);
		n += cvm_signal_descendants(sig, NULL);
	}
	return n;
}

/* A line of news from the cgroup setup (a controller missing, ...). */
static void cgroup_note(const char *line, void *arg)
{
	(void)arg;
	log_warn("cgroup", "%s", line);
}

/* As PID 1 of the outer container, cvm owns its cgroup: a leaf for itself,
 * a delegated group with the limits for the workspace. So it does as the
 * child of the container's init (docker run --init, a shell entrypoint that
 * does not exec) when the group holds only cvm and its ancestors. Run any
 * other way (a shell, a test) it leaves the cgroups it was started in alone,
 * and says so when in a container: without a group of its own the
 * workspace has no limits, and systemd as its init exits at once. */
static int ws_cgroup(const struct cvm_config *c, struct ws_run *w, struct cvm_error *err)
{
	struct cvm_cg_limit limits[CVM_MAX_LIMITS];
	char why[512] = "";
	size_t n;
	int own = getpid() == 1 ? 1 : cvm_cgroup_only_ancestors(why, sizeof(why));

	if (own == 0)
		log_warn("cgroup", "cvm is not the container's PID 1 and its cgroup is shared (%s): the "
			 "workspace stays in cvm's cgroup, without limits or a delegated group (systemd "
			 "cannot boot there); make cvm the entrypoint (exec it) or the only child of "
			 "the container's init", why);
	if (own != 1 || cvm_cgroup_in_host_root()) {
		log_debug("cgroup", "not PID 1 of a container (or in the host's root cgroup): the workspace "
			  "stays in cvm's cgroup, without limits");
		return 0;
	}
	/* An OOM or a fork bomb inside must never take PID 1 down. */
	if (cvm_write_file(AT_FDCWD, "/proc/self/oom_score_adj", "-1000", NULL) < 0)
		log_warn("cgroup", "cannot set cvm's oom_score_adj to -1000 (%s; it needs CAP_SYS_RESOURCE): "
			 "an OOM inside could pick cvm", strerror(errno));
	if (cvm_cgroup_setup(&w->cg, cgroup_note, NULL, err) < 0)
		return -1;
	w->has_cgroup = true;
	n = cvm_resources_plan(c, w->cg.root, limits);
	if (cvm_cgroup_limits(&w->cg, limits, n, cgroup_note, NULL, err) < 0 ||
	    cvm_cgroup_delegate(&w->cg, c->uid_base, c->uid_base, err) < 0)
		return -1;
	return 0;
}

/* The workspace runs and cvm exec can reach it: start the bootstrap, then
 * say so in one line, with how long it took since cvm run began. */
static void ws_ready(const struct cvm_config *c, struct ws_run *w, struct cvm_pid1 *p)
{
	struct cvm_error err = { 0 };
	char ms[32], pid[16];

	if (c->bootstrap_script) {
		if (cvm_bootstrap_start(&w->boot, c->bootstrap_script, &w->handle, &err) < 0)
			log_error("bootstrap", "did not start: %s", err.msg);
		else {
			log_info("bootstrap", "started as pid %d, user %s", (int)w->boot.pid, c->user);
			if (cvm_bootstrap_watch(&w->boot, p) < 0)
				log_warn("bootstrap", "its output will not be logged: %s",
					 strerror(errno));
		}
	}
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)ms_since(w->started));
	snprintf(pid, sizeof(pid), "%d", (int)w->ws.pid);
	const struct cvm_log_field fields[] = {
		{ "startup_ms", ms, true }, { "init_pid", pid, true }, { "rootfs", c->rootfs, false },
	};
	cvm_log_fields(CVM_LOG_INFO, "supervisor", fields, 3, "workspace ready in %s ms", ms);
}

/* The GPU plan (gpu/), made before anything starts: a GPU asked for but
 * missing, or an image that would lose its own files, stops cvm here. */
static int ws_gpu_plan(const struct cvm_config *c, struct cvm_gpu_plan *plan,
		       struct cvm_error *err)
{
	struct cvm_gpu_config gc = { c->gpu_enable, c->gpu_visible_devices, c->gpu_host_lib_dir,
				     c->gpu_inner_lib_dir };
	cleanup_close int root_fd = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct cvm_gpu_host h;

	cvm_gpu_host_default(&h, environ);
	if (root_fd < 0)
		return cvm_error_set(err, errno, "rootfs %s", c->rootfs);
	if (cvm_gpu_plan_make(&gc, &h, root_fd, plan, err) < 0)
		return cvm_error_prefix(err, "gpu");
	if (!plan->enabled) {
		log_debug("gpu", "off: %s", plan->why);
		return 0;
	}
	log_info("gpu", "%s: %zu device nodes, %zu driver files, %zu links into %s", plan->why,
		 plan->n_nodes, plan->n_files, plan->n_links, plan->inner_lib_dir);
	for (size_t i = 0; i < plan->n_refused; i++)
		log_warn("gpu", "left out %s", plan->refused[i]);
	return 0;
}

static int ws_gpu_extras(struct ws_gpu *g, char ***envp)
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

/* Idempotent: ws_start frees the plan once the workspace is built, and
 * ws_teardown frees whatever is left. */
static void ws_gpu_free(struct ws_gpu *g)
{
	free(g->nodes);
	free(g->files);
	free(g->links);
	cvm_gpu_plan_free(&g->plan);    /* zeroes the plan */
	g->nodes = NULL;
	g->files = NULL;
	g->links = NULL;
}

static int ws_net_setup(int netns_fd, void *arg, struct cvm_error *err)
{
	struct ws_run *w = arg;
	struct cvm_error dns_err = { 0 };
	char in[16], out[16];
	struct in_addr a;

	if (cvm_net_up(&w->net, netns_fd, err) < 0) {
		char msg[CVM_ERROR_MSG_MAX];
		snprintf(msg, sizeof(msg), "%s", err->msg);
		return cvm_error_set(err, 0, "%s; %sor set [workspace] network = host (--network "
				     "host) to share its network", msg, err->err == EPERM ?
				     "the outer container needs CAP_NET_ADMIN (docker run "
				     "--privileged) for a private network, " : "");
	}
	a.s_addr = htonl(w->net.inner_ip);
	inet_ntop(AF_INET, &a, in, sizeof(in));
	a.s_addr = htonl(w->net.outer_ip);
	inet_ntop(AF_INET, &a, out, sizeof(out));
	log_info("network", "private network: %s/%u inside (%s), %s outside (%s), MTU %u, NAT",
		 in, w->net.prefix, CVM_NET_INNER_IF, out, CVM_NET_OUTER_IF, w->net.mtu);
	if (!w->resolv.loopback[0])
		return 0;
	/* The workspace can do without DNS; it is not worth failing the start. */
	if (cvm_dnsrelay_open(&w->dns, w->net.outer_ip, w->net.net, w->net.prefix,
			      w->resolv.loopback, &dns_err) < 0)
		log_warn("network", "the workspace has no DNS: %s", dns_err.msg);
	else
		log_info("network", "DNS: the outer resolver %s is on loopback; relaying from %s:53",
			 w->resolv.loopback, out);
	return 0;
}

static void ws_dns_query(struct cvm_pid1 *p, int fd, uint32_t events, void *data)
{
	(void)p; (void)fd; (void)events;
	cvm_dnsrelay_on_query(data);
}

static void ws_dns_answer(struct cvm_pid1 *p, int fd, uint32_t events, void *data)
{
	(void)p; (void)fd; (void)events;
	cvm_dnsrelay_on_answer(data);
}

/* The private network's part of the spec, and /etc/resolv.conf and
 * /etc/hosts to go with it. */
static int ws_net_plan(const struct cvm_config *c, struct ws_run *w, struct cvm_ws_spec *spec,
		       struct cvm_error *err)
{
	uint32_t net;
	unsigned prefix;

	if (strcmp(c->network, "private") != 0)
		return 0;
	if (cvm_net_parse_cidr(c->network_cidr, &net, &prefix) < 0)
		return cvm_error_set(err, 0, "network_cidr %s", c->network_cidr);
	cvm_net_init(&w->net, net, prefix);
	if (cvm_net_resolv_conf("/etc/resolv.conf", w->net.outer_ip, &w->resolv, err) < 0)
		return cvm_error_prefix(err, "DNS for the workspace");
	if (w->resolv.dropped)
		log_warn("network", "/etc/resolv.conf: %u more nameserver(s) on loopback left out of the "
			 "workspace's copy (the relay serves the first)", w->resolv.dropped);
	cvm_net_hosts(&w->net, c->hostname, w->hosts, sizeof(w->hosts));
	w->writes[0] = (struct cvm_ws_write){ "/etc/resolv.conf", w->resolv.text };
	w->writes[1] = (struct cvm_ws_write){ "/etc/hosts", w->hosts };
	spec->writes = w->writes;
	spec->n_writes = 2;
	spec->net_setup = ws_net_setup;
	spec->net_arg = w;
	return 0;
}

/* The workspace's console on cvm's terminal: raw here, so that ^C, ^Z and
 * the rest reach the console's own line discipline as bytes, and a relay
 * process between the two. */
static void ws_console(struct ws_run *w)
{
	struct cvm_error err = { 0 };

	if (cvm_tty_make_raw(&w->tty, STDIN_FILENO) == 0)
		cvm_log_crlf(true);
	if (cvm_console_start(w->ws.console, w->ws.pidfd, &err) < 0) {
		cvm_tty_restore(&w->tty);
		cvm_log_crlf(false);
		log_warn("console", "%s: the workspace's console is not shown here", err.msg);
	}
	cvm_closep(&w->ws.console);
}

/* Everything that can be checked before anything starts. */
static int ws_precheck(const struct cvm_config *c, const struct cvm_inner *in,
		       struct cvm_error *err)
{
	cleanup_close int root_fd = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	if (root_fd < 0)
		return cvm_error_set(err, 0, "rootfs %s: %s; point --rootfs ([workspace] rootfs) "
				     "at an unpacked image directory", c->rootfs, strerror(errno));
	if (cvm_inner_check(in, root_fd, err) < 0)
		return -1;
	for (size_t i = 0; i < c->n_mounts; i++)
		if (stat(c->mounts[i].source, &st) < 0)
			return cvm_error_set(err, 0, "mount \"%s\": source %s: %s; create it or fix "
					     "the path", c->mounts[i].name, c->mounts[i].source,
					     strerror(errno));
	return cvm_idrange_check(c->uid_base, c->uid_count, "/proc/self/uid_map",
				 "/proc/self/gid_map", "/etc/passwd", "/etc/group", err);
}

/* ---- the phases ---------------------------------------------------------- */

/* Everything that can be decided before anything starts: the inner init's
 * environment, the checks, the GPU plan, the mounts, how the init stops,
 * the network. No side effect on the outer container. 0, or the exit
 * status (2: bad input; 125: cvm itself failed). */
static int ws_plan(struct ws_run *w, char **argv, struct cvm_error *err)
{
	const struct cvm_config *c = w->c;

	if (!c->rootfs) {       /* [image] ref: until the puller is wired in here */
		log_error("image", "image %s: pulling is not yet part of cvm run; unpack the "
			  "image and use --rootfs DIR", c->image_ref);
		return CVM_EXIT_SETUP_FAILED;
	}
	w->in = (struct cvm_inner){ .config = c, .argv = argv, .envp = cvm_env_build(c, environ),
				    .notify_sock = -1 };
	w->mounts = calloc(c->n_mounts + 1, sizeof(*w->mounts));
	if (!w->in.envp || !w->mounts) {
		log_error("workspace", "out of memory");
		return CVM_EXIT_SETUP_FAILED;
	}
	if (ws_precheck(c, &w->in, err) < 0 || ws_gpu_plan(c, &w->gpu.plan, err) < 0) {
		log_error("workspace", "%s", err->msg);
		return CVM_EXIT_USAGE;
	}
	w->spec = (struct cvm_ws_spec){
		.rootfs = c->rootfs, .state = c->state, .uid_base = c->uid_base,
		.uid_count = c->uid_count, .hostname = c->hostname, .dev_fuse = c->dev_fuse,
		.dev_tun = c->dev_tun, .console = isatty(STDIN_FILENO),
		.mounts = w->mounts, .n_mounts = c->n_mounts, .note = ws_note,
		.engine_dirs = c->engine_dirs, .n_engine_dirs = c->n_engine_dirs,
		.copy_rootfs = c->idmap == CVM_IDMAP_OFF,
		.cgroup_fd = -1, .procfs_fd = -1, .init_fd = -1,
	};
	if (w->gpu.plan.enabled) {
		if (ws_gpu_extras(&w->gpu, &w->in.envp) < 0) {
			log_error("gpu", "out of memory");
			return CVM_EXIT_SETUP_FAILED;
		}
		w->spec.extras = &w->gpu.x;
	}
	for (size_t i = 0; i < c->n_mounts; i++)
		w->mounts[i] = (struct cvm_ws_mount){ c->mounts[i].name, c->mounts[i].source,
						      c->mounts[i].target, c->mounts[i].readonly };
	w->stop_signal = SIGTERM;
	{
		cleanup_close int root_fd = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root_fd >= 0 && cvm_inner_is_systemd(&w->in, root_fd)) {
			w->stop_signal = SIGRTMIN + 3;
			log_debug("workspace", "the inner init is systemd: stop is SIGRTMIN+3");
		}
	}
	/* systemd and other inits look here to learn they run in a container. */
	if (!cvm_env_get(w->in.envp, "container") &&
	    cvm_env_set(&w->in.envp, "container", "cvm") < 0) {
		log_error("workspace", "out of memory");
		return CVM_EXIT_SETUP_FAILED;
	}
	if (w->spec.console) {
		struct winsize ws;
		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
			w->spec.console_rows = ws.ws_row;
			w->spec.console_cols = ws.ws_col;
		}
	}
	if (ws_net_plan(c, w, &w->spec, err) < 0) {
		log_error("workspace", "%s", err->msg);
		return CVM_EXIT_USAGE;
	}
	return 0;
}

/* Build it: cgroups, the /proc server, PID 1's loop, the workspace itself,
 * the console. 0, or the exit status. */
static int ws_start(struct ws_run *w, struct cvm_error *err)
{
	const struct cvm_config *c = w->c;

	if (ws_cgroup(c, w, err) < 0) {
		log_error("cgroup", "cgroup: %s", err->msg);
		/* no errno: a limit this host cannot apply, the config's to fix */
		return err->err ? CVM_EXIT_SETUP_FAILED : CVM_EXIT_USAGE;
	}
	if (!c->seccomp)
		log_warn("workspace", "seccomp is off ([workspace] seccomp = no): root inside may call kexec, "
			 "module and clock syscalls, stopped only by the kernel's own checks");
	w->spec.cgroup_fd = w->has_cgroup ? w->cg.ws_fd : -1;
	if (c->proc_virtualize) {
		if (cvm_procserver_start(&w->procfs, w->has_cgroup ? w->cg.ws : NULL, c->uid_base,
					 c->proc_passthrough, c->proc_follow, err) < 0)
			log_warn("procfs", "the workspace gets the host's /proc numbers: %s", err->msg);
		else {
			w->has_procfs = true;
			w->spec.procfs_fd = w->procfs.pf.fuse_fd;
			w->spec.procfs_files = c->proc_files;
			/* The inner init keeps it to send sysinfo's listener
			 * (runtime/workspace.h: init_fd becomes fd 3). */
			w->spec.init_fd = w->procfs.notify_send;
			w->in.notify_sock = CVM_WS_INIT_FD;
		}
	}
	if (cvm_pid1_init(&w->p, c->stop_timeout_ms, CVM_SIGNAL_CHILD, err) < 0) {
		log_error("supervisor", "%s", err->msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	w->has_pid1 = true;
	if (cvm_ws_start(&w->spec, cvm_inner_init, &w->in, &w->ws, err) < 0) {
		log_error("workspace", "%s", err->msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	/* The workspace is built: the plan's strings are no longer needed. */
	ws_gpu_free(&w->gpu);
	if (w->ws.console >= 0)
		ws_console(w);
	return 0;
}

/* Hand the running workspace to PID 1's loop. From here on PID 1 must not
 * die on an error it can survive: each failure is a warning. */
static void ws_attach(struct ws_run *w)
{
	const struct cvm_config *c = w->c;
	struct cvm_error err = { 0 };
	struct cvm_pid1 *p = &w->p;

	w->attached = true;
	p->keep_winch = true;
	p->signal_all = ws_signal_all;
	p->signal_all_data = w;
	if (w->has_procfs)
		cvm_procserver_watch(&w->procfs, p);
	if (w->dns.listen_fd >= 0 &&
	    (cvm_pid1_watch(p, w->dns.listen_fd, ws_dns_query, &w->dns) < 0 ||
	     cvm_pid1_watch(p, w->dns.upstream_fd, ws_dns_answer, &w->dns) < 0))
		log_warn("network", "the workspace has no DNS: cannot watch the relay's sockets");
	if (cvm_pid1_set_main(p, w->ws.pid, &err) < 0)
		log_warn("supervisor", "%s (relying on SIGCHLD alone)", err.msg);
	log_info("workspace", "workspace started: rootfs %s, changes in %s, ids %u-%u outside", c->rootfs,
		 c->state, c->uid_base, c->uid_base + c->uid_count - 1);
	w->handle = (struct cvm_ws_handle){
		.pidfd = w->ws.pidfd, .pid = w->ws.pid,
		.join_net = !cvm_join_shares_ns(w->ws.pid, "net"), .envp = w->in.envp,
		.user = c->user, .workdir = c->workdir, .seccomp = c->seccomp,
		.seccomp_deny = c->seccomp_deny,
		.notify_sock = w->has_procfs ? w->procfs.notify_send : -1,
	};
	w->ctl = (struct cvm_control_ctx){ &w->handle, w->has_cgroup ? &w->cg : NULL };
	w->ctl_fd = cvm_control_listen(c->control_socket, &err);
	if (w->ctl_fd < 0 || cvm_pid1_watch(p, w->ctl_fd, cvm_control_on_ready, &w->ctl) < 0)
		log_warn("control", "cvm exec will not work: %s",
			 w->ctl_fd < 0 ? err.msg : strerror(errno));
	/* Setup is over: what cvm does from here on (exec, bootstrap, stop,
	 * serve /proc) needs next to no privilege in the outer container. */
	if (cvm_caps_supervisor_drop(!strcmp(c->network, "private"), &err) < 0)
		log_warn("supervisor", "%s; cvm keeps all its capabilities", err.msg);
	ws_ready(c, w, p);
}

/* PID 1's loop, until the workspace and all of it has ended: its status. */
static int ws_wait(struct ws_run *w)
{
	int status = cvm_pid1_run(&w->p);

	/* reboot(2) in a pid namespace (systemd's poweroff or halt, busybox
	 * poweroff) ends its init with SIGINT: the workspace shut down as asked,
	 * which is a clean exit, not "killed by SIGINT" (130). */
	if (WIFSIGNALED(w->p.main_status) && WTERMSIG(w->p.main_status) == SIGINT) {
		log_info("workspace", "the workspace powered off (its init halted the pid namespace)");
		status = 0;
	}
	return status;
}

/* The one way out, from any phase: each step undoes what is there and
 * marks it undone, so it is safe whatever got started. */
static void ws_teardown(struct ws_run *w)
{
	if (w->has_pid1)
		cvm_pid1_close(&w->p);
	w->has_pid1 = false;
	if (w->ctl_fd >= 0) {
		cvm_closep(&w->ctl_fd);
		unlink(w->c->control_socket);
	}
	cvm_closep(&w->ws.pidfd);
	cvm_closep(&w->ws.console);
	if (w->has_procfs) {
		/* Never attached: nothing stopped it, and nothing will reap it. */
		if (!w->attached)
			cvm_procserver_signal(&w->procfs, SIGKILL);
		cvm_procserver_close(&w->procfs);
		w->has_procfs = false;
	}
	cvm_dnsrelay_close(&w->dns);
	cvm_net_down(&w->net);
	cvm_cgroup_remove(&w->cg);
	cvm_closep(&w->boot.out_fd);
	ws_gpu_free(&w->gpu);
	cvm_env_free(w->in.envp);
	w->in.envp = NULL;
	free(w->mounts);
	w->mounts = NULL;
	cvm_tty_restore(&w->tty);
	cvm_log_crlf(false);
}

int cvm_workspace_run(const struct cvm_config *c, char **argv, const struct timespec *started)
{
	struct cvm_error err = { 0 };
	struct ws_run w = {
		.c = c, .started = started, .ws = { -1, -1, -1 }, .tty = { .fd = -1 },
		.cg = { .ws_fd = -1 }, .net = { .forward_was = -1 },
		.dns = { .listen_fd = -1, .upstream_fd = -1 }, .boot = { .pid = -1, .out_fd = -1 },
		.ctl_fd = -1,
	};
	int status = ws_plan(&w, argv, &err);

	if (status == 0)
		status = ws_start(&w, &err);
	if (status == 0) {
		ws_attach(&w);
		status = ws_wait(&w);
	}
	ws_teardown(&w);
	return status;
}
