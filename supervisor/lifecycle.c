/* A workspace's life, phase by phase: cvm_workspace_run() reads top to
 * bottom. ws_image() pulls the image when [image] ref names one (image/,
 * through the layer cache); ws_plan() decides everything that can be decided before anything
 * starts (supervisor/plan.c, the plan cvm check reports on too; fails with
 * 2 on bad input); ws_create() starts what the workspace goes into (the
 * cgroups, the /proc server, PID 1's loop) and clones it into its
 * namespaces, where it waits; ws_network() sets up its private network;
 * ws_go() builds its root and lets its init run, with the console;
 * ws_attach() hands it to PID 1's loop (signals, the control socket, the
 * bootstrap, the dropped capabilities); ws_wait() runs the loop until the
 * workspace and everything of it has ended; ws_teardown(), the one exit
 * path, undoes whatever the phases got to, in any state (a workspace that
 * never got its go is killed there). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bootstrap.h"
#include "config.h"
#include "console.h"
#include "control.h"
#include "inner.h"
#include "lifecycle.h"
#include "log.h"
#include "pid1.h"
#include "plan.h"
#include "procserver.h"
#include "pull.h"
#include "tty.h"
#include "runtime/caps.h"
#include "runtime/cgroup.h"
#include "runtime/cleanup.h"
#include "runtime/dnsrelay.h"
#include "runtime/exitcode.h"
#include "runtime/fdio.h"
#include "runtime/join.h"
#include "runtime/net.h"
#include "runtime/syscalls.h"
#include "runtime/workspace.h"

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
	struct cvm_net net;             /* the plan's addresses, and what cvm_net_up made */
	struct cvm_dnsrelay dns;        /* when the outer resolver is on loopback */
	struct cvm_tty_raw tty;         /* cvm's terminal, raw while the console relays */

	/* the image (ws_image), when [image] ref names one */
	struct cvm_image image;
	bool has_image;
	uint64_t pull_ms;                       /* how long it took */

	/* the plan (ws_plan): what to start, fixed before anything starts */
	const struct cvm_config *c;
	const struct timespec *started;         /* when cvm run began */
	struct cvm_plan plan;

	/* running (ws_create .. ws_attach): the plan's spec and init job, with
	 * the fds of what ws_create started */
	struct cvm_ws_spec spec;
	struct cvm_inner in;
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
	int n = sys_pidfd_send_signal(w->ws.pidfd, sig == SIGTERM ? w->plan.stop_signal : sig,
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

/* As PID 1 of the outer container, cvm owns its cgroup: a leaf for itself,
 * a delegated group with the limits for the workspace. So it does as the
 * child of the container's init (docker run --init, a shell entrypoint that
 * does not exec) when the group holds only cvm and its ancestors. Run any
 * other way (a shell, a test) it leaves the cgroups it was started in alone,
 * and says so when in a container: without a group of its own the
 * workspace has no limits, and systemd as its init exits at once. */
static int ws_cgroup(const struct cvm_config *c, struct ws_run *w, struct cvm_error *err)
{
	char why[512] = "";
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
	if (cvm_cgroup_setup(&w->cg, err) < 0)
		return -1;
	w->has_cgroup = true;
	if (cvm_cgroup_limits(&w->cg, w->plan.limits, w->plan.n_limits, err) < 0 ||
	    cvm_cgroup_delegate(&w->cg, c->uid_base, c->uid_base, err) < 0)
		return -1;
	return 0;
}

/* The workspace runs and cvm exec can reach it: start the bootstrap, then
 * say so in one line, with how long it took since cvm run began. */
static void ws_ready(const struct cvm_config *c, struct ws_run *w, struct cvm_pid1 *p)
{
	struct cvm_error err = { 0 };
	char ms[32], pid[16], pull[32];

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
	snprintf(pull, sizeof(pull), "%llu", (unsigned long long)w->pull_ms);
	const struct cvm_log_field fields[] = {
		{ "startup_ms", ms, true }, { "init_pid", pid, true },
		{ c->image_ref ? "image" : "rootfs", c->image_ref ? c->image_ref : c->rootfs, false },
		{ "pull_ms", pull, true },
	};
	if (c->image_ref)
		cvm_log_fields(CVM_LOG_INFO, "supervisor", fields, 4,
			       "workspace ready in %s ms (the image took %s ms)", ms, pull);
	else
		cvm_log_fields(CVM_LOG_INFO, "supervisor", fields, 3, "workspace ready in %s ms", ms);
}

/* The private network, as outer root, into the namespace of the workspace
 * cvm_ws_create() made: the veth, the NAT, and a DNS relay when the outer
 * resolver is on loopback. */
static int ws_net_setup(struct ws_run *w, int netns_fd, struct cvm_error *err)
{
	const struct cvm_resolv *resolv = &w->plan.net.resolv;
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
	if (!resolv->loopback[0])
		return 0;
	/* The workspace can do without DNS; it is not worth failing the start. */
	if (cvm_dnsrelay_open(&w->dns, w->net.outer_ip, w->net.net, w->net.prefix,
			      resolv->loopback, &dns_err) < 0)
		log_warn("network", "the workspace has no DNS: %s", dns_err.msg);
	else
		log_info("network", "DNS: the outer resolver %s is on loopback; relaying from %s:53",
			 resolv->loopback, out);
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

/* ---- the phases ---------------------------------------------------------- */

/* The image, when [image] ref names one: pulled into the cache (or found
 * there, as the pull policy says), its layers held (the cache's shared
 * lock) until teardown. 0, or the exit status: a pull that fails is the
 * setup failing (125), with the reason and what to do in the log. */
static int ws_image(struct ws_run *w, struct cvm_error *err)
{
	struct cvm_image_opts o = { 0 };
	struct timespec t0;
	char cache[4096];

	if (!w->c->image_ref)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (cvm_pull_config(w->c, &o, cache, sizeof(cache)) < 0) {
		log_error("image", "no image cache: set [workspace] state or [image] cache_dir");
		return CVM_EXIT_USAGE;
	}
	/* A registry that cannot be reached must not keep a workspace from
	 * starting again from what it ran before. */
	o.offline_ok = true;
	if (cvm_pull_logged(&o, &w->image, err) < 0) {
		log_error("image", "%s", err->msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	w->has_image = true;
	w->pull_ms = ms_since(&t0);
	return 0;
}

/* Everything that can be decided before anything starts (supervisor/plan.c,
 * which cvm check reports on too), and what it found said once. No side
 * effect on the outer container. 0, or the exit status (2: bad input; 125:
 * cvm itself failed). */
static int ws_plan(struct ws_run *w, char **argv, struct cvm_error *err)
{
	const struct cvm_plan *p = &w->plan;
	const struct cvm_gpu_plan *gpu = &p->gpu.plan;
	int status;

	status = cvm_plan_make(w->c, argv, w->has_image ? &w->image : NULL, &w->plan, err);
	if (status) {
		log_error("workspace", "%s", err->msg);
		return status;
	}
	if (!gpu->enabled)
		log_debug("gpu", "off: %s", gpu->why);
	else
		log_info("gpu", "%s: %zu device nodes, %zu driver files, %zu links into %s", gpu->why,
			 gpu->n_nodes, gpu->n_files, gpu->n_links, gpu->inner_lib_dir);
	for (size_t i = 0; gpu->enabled && i < gpu->n_refused; i++)
		log_warn("gpu", "left out %s", gpu->refused[i]);
	if (p->systemd)
		log_debug("workspace", "the inner init is systemd: stop is SIGRTMIN+3");
	if (p->net.resolv.dropped)
		log_warn("network", "/etc/resolv.conf: %u more nameserver(s) on loopback left out of the "
			 "workspace's copy (the relay serves the first)", p->net.resolv.dropped);
	w->spec = p->spec;
	w->in = p->in;
	w->net = p->net.addr;
	return 0;
}

/* What the workspace is started into (its cgroup, the /proc server, PID 1's
 * loop), then the workspace itself, cloned and waiting (cvm_ws_create).
 * 0, or the exit status. */
static int ws_create(struct ws_run *w, struct cvm_error *err)
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
	if (cvm_ws_create(&w->spec, cvm_inner_init, &w->in, &w->ws, err) < 0) {
		log_error("workspace", "%s", err->msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	return 0;
}

/* Its private network, as outer root, before anything inside runs. */
static int ws_network(struct ws_run *w, struct cvm_error *err)
{
	if (w->ws.netns_fd >= 0 && ws_net_setup(w, w->ws.netns_fd, err) < 0) {
		log_error("workspace", "%s", err->msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	return 0;
}

/* Build its root and let its init run; its console on cvm's terminal. */
static int ws_go(struct ws_run *w, struct cvm_error *err)
{
	if (cvm_ws_go(&w->spec, &w->ws, err) < 0) {
		log_error("workspace", "%s", err->msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	cvm_plan_close_rootfs(&w->plan);        /* the layers are made */
	w->spec.rootfs_fd = -1;
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
	if (w->has_image)
		log_info("workspace", "workspace started: image %s (%zu layers), changes in %s, ids "
			 "%u-%u outside", c->image_ref, w->image.n_layers, c->state, c->uid_base,
			 c->uid_base + c->uid_count - 1);
	else
		log_info("workspace", "workspace started: rootfs %s, changes in %s, ids %u-%u outside",
			 c->rootfs, c->state, c->uid_base, c->uid_base + c->uid_count - 1);
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
	cvm_ws_close(&w->ws);   /* kills the workspace if it never got its go */
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
	w->boot.out_fd = -1;
	cvm_plan_free(&w->plan);
	if (w->has_image)
		cvm_image_free(&w->image);      /* and the cache's lock: GC may take them now */
	w->has_image = false;
	cvm_tty_restore(&w->tty);
	cvm_log_crlf(false);
}

int cvm_workspace_run(const struct cvm_config *c, char **argv, const struct timespec *started)
{
	struct cvm_error err = { 0 };
	struct ws_run w = {
		.c = c, .started = started, .ws = CVM_WS_NONE, .tty = { .fd = -1 },
		.cg = { .ws_fd = -1 }, .net = { .forward_was = -1 },
		.dns = { .listen_fd = -1, .upstream_fd = -1 }, .boot = { .pid = -1, .out_fd = -1 },
		.ctl_fd = -1, .image = { .lock_fd = -1 },
	};
	int status = ws_image(&w, &err);

	if (status == 0)
		status = ws_plan(&w, argv, &err);
	if (status == 0)
		status = ws_create(&w, &err);
	if (status == 0)
		status = ws_network(&w, &err);
	if (status == 0)
		status = ws_go(&w, &err);
	if (status == 0) {
		ws_attach(&w);
		status = ws_wait(&w);
	}
	ws_teardown(&w);
	return status;
}
