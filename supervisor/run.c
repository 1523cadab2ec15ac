/* cvm run: parse flags, build the config, start the workload, supervise. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <arpa/inet.h>

#include "bootstrap.h"
#include "cli.h"
#include "config.h"
#include "runtime/exitcode.h"
#include "log.h"
#include "console.h"
#include "tty.h"
#include "pid1.h"
#include "spawn.h"
#include "control.h"
#include "env.h"
#include "procserver.h"
#include "resources.h"
#include "inner.h"
#include "runtime/caps.h"
#include "runtime/cleanup.h"
#include "runtime/idmap.h"
#include "runtime/join.h"
#include "runtime/dnsrelay.h"
#include "runtime/fdio.h"
#include "runtime/net.h"
#include "runtime/syscalls.h"
#include "runtime/workspace.h"
#include "gpu/gpu.h"

extern char **environ;

/* A flag is a config key set from the command line; one table drives
 * getopt, --help and the mapping, so they cannot drift apart. */
struct run_flag {
	const char *name;
	int short_opt;
	const char *arg;        /* metavar, NULL for a switch */
	const char *section;
	const char *key;
	const char *switch_value;
	const char *help;
};

static const struct run_flag run_flags[] = {
	{ "stop-timeout", 't', "DURATION", "supervisor", "stop_timeout", NULL,
	  "grace between SIGTERM and SIGKILL on stop (default 10s)" },
	{ "kill-group", 'g', NULL, "supervisor", "signal_target", "group",
	  "forward signals to the child's whole process group" },
	{ "signal-target", 0, "WHO", "supervisor", "signal_target", NULL,
	  "child (default), group, or all: who gets forwarded signals" },
	{ "log-level", 0, "LEVEL", "supervisor", "log_level", NULL,
	  "error, warn, info (default) or debug" },
	{ "log-format", 0, "FORMAT", "supervisor", "log_format", NULL,
	  "text (default) or json, one object per line" },
	{ "rootfs", 'r', "DIR", "workspace", "rootfs", NULL,
	  "unpacked image: run a workspace (unset: a plain process)" },
	{ "state", 's', "DIR", "workspace", "state", NULL,
	  "where the workspace's changes persist (required with --rootfs)" },
	{ "init", 0, "CMD", "workspace", "init", NULL,
	  "inner init: auto (default) or a command run as PID 1 inside" },
	{ "hostname", 0, "NAME", "workspace", "hostname", NULL,
	  "hostname inside (default cvm)" },
	{ "user", 'u', "USER", "workspace", "user", NULL,
	  "user inside for CMD: name, uid or uid:gid (default root)" },
	{ "workdir", 'w', "DIR", "workspace", "workdir", NULL,
	  "working directory inside (default: the user's home)" },
	{ "env", 'e', "NAME=VALUE", "workspace", "env", NULL,
	  "set a variable inside (repeatable)" },
	{ "env-pass", 0, "NAMES", "workspace", "env_pass", NULL,
	  "pass outer variables in: NAME or PREFIX*, comma separated" },
	{ "volume", 'v', "SRC:DST[:ro]", NULL, NULL, NULL,
	  "bind SRC inside at DST, idmapped: files keep their owners" },
	{ "uid-base", 0, "N", "workspace", "uid_base", NULL,
	  "first outer uid/gid of the workspace (default 100000)" },
	{ "uid-count", 0, "N", "workspace", "uid_count", NULL,
	  "how many ids the workspace gets (default 65536)" },
	{ "network", 0, "MODE", "workspace", "network", NULL,
	  "private (default: own namespace, veth, NAT) or host" },
	{ "network-cidr", 0, "CIDR", "workspace", "network_cidr", NULL,
	  "private network's addresses (default " CVM_DEFAULT_NETWORK_CIDR ")" },
	{ "engine-dirs", 0, "DIRS", "workspace", "engine_dirs", NULL,
	  "dirs inside kept in STATE/engines, for nested engines (default /var/lib/docker, ...)" },
	{ "fuse", 0, NULL, "devices", "fuse", "yes", "give the workspace /dev/fuse" },
	{ "tun", 0, NULL, "devices", "tun", "yes", "give the workspace /dev/net/tun" },
	{ "gpu", 0, NULL, "gpu", "enable", "yes",
	  "require the NVIDIA GPUs (default: them when the outer container has them)" },
	{ "cpus", 0, "N", "resources", "cpus", NULL,
	  "CPU limit, like 0.5 or 4; auto (default): the outer container's" },
	{ "memory", 'm', "SIZE", "resources", "memory", NULL,
	  "memory limit, like 4G; auto (default): the outer container's" },
	{ "pids", 0, "N", "resources", "pids", NULL, "most processes inside (default: no limit)" },
	{ "bootstrap", 0, "SCRIPT", "bootstrap", "script", NULL,
	  "sh script run inside as --user once it is up (a Coder agent)" },
	{ "no-seccomp", 0, NULL, "workspace", "seccomp", "no",
	  "turn the syscall profile off (debugging only)" },
	{ "control-socket", 0, "PATH", "supervisor", "control_socket", NULL,
	  "where cvm exec finds this cvm (default " CVM_DEFAULT_CONTROL_SOCKET ")" },
};
#define N_RUN_FLAGS (sizeof(run_flags) / sizeof(run_flags[0]))

static void run_usage(FILE *out)
{
	fputs("Usage: cvm run [OPTIONS] [--] [CMD [ARG...]]\n"
	      "\n"
	      "With --rootfs, build a workspace from an unpacked image: new user,\n"
	      "mount, pid, uts, ipc and cgroup namespaces, root inside mapped to\n"
	      "uid_base outside, an overlay whose changes persist in --state, and\n"
	      "its own /proc, /sys, /dev, /run and /tmp. It runs the image's\n"
	      "/sbin/init, or CMD (default /bin/sh) under cvm's own reaping init.\n"
	      "Without --rootfs, run CMD as a plain supervised process.\n"
	      "\n"
	      "Either way cvm reaps every process, forwards signals, and on stop\n"
	      "sends SIGTERM, waits the grace period, then SIGKILLs what is left.\n"
	      "Exits with CMD's exit code, or 128+N when a signal N killed it; 127\n"
	      "if CMD is not found, 126 if it cannot be executed, 2 for a bad\n"
	      "config or usage, 125 if the workspace could not be built.\n"
	      "\n"
	      "Options:\n"
	      "  -c, --config FILE            INI config (default " CVM_DEFAULT_CONFIG_PATH
	      ", if present)\n", out);
	for (size_t i = 0; i < N_RUN_FLAGS; i++) {
		char lhs[64];
		const struct run_flag *f = &run_flags[i];
		if (f->short_opt)
			snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", f->short_opt, f->name,
				 f->arg ? " " : "", f->arg ? f->arg : "");
		else
			snprintf(lhs, sizeof(lhs), "    --%s%s%s", f->name,
				 f->arg ? " " : "", f->arg ? f->arg : "");
		fprintf(out, "  %-28s %s\n", lhs, f->help);
	}
	fputs("  -h, --help                   show this help\n"
	      "\n"
	      "Every option is also a config key: [supervisor] stop_timeout = 30s in\n"
	      "the INI file, or CVM_SUPERVISOR_STOP_TIMEOUT=30s in the environment\n"
	      "(--volume is a [mount \"NAME\"] section; [gpu] has visible_devices,\n"
	      "host_lib_dir and inner_lib_dir, see examples/cvm.ini).\n"
	      "Precedence: defaults < file < environment < flags.\n"
	      "envbox's variables are accepted as aliases (CODER_INNER_IMAGE,\n"
	      "CODER_INNER_USERNAME, CODER_MOUNTS, CODER_CPUS, CODER_BOOTSTRAP_SCRIPT,\n"
	      "CODER_AGENT_TOKEN, ...; see the README); CVM_* wins over CODER_*.\n"
	      "\n"
	      "Examples:\n"
	      "  cvm run --rootfs /img --state /data  a workspace; changes kept in /data\n"
	      "  cvm run -r /img -s /data -v /home:/home -- bash -l\n"
	      "  cvm run -r /img -s /data --gpu        with the outer container's NVIDIA GPUs\n"
	      "  cvm run -- /bin/sh -c 'make -j8'     reap and forward for a build\n"
	      "  cvm run -g -t 30s -- ./server         signal the whole group, 30s grace\n"
	      "  cvm run --log-format=json -- app      logs for a collector on stderr\n"
	      "  cvm run -r /img -s /data -u coder --bootstrap 'exec /opt/agent'\n",
	      out);
}

struct flag_value {
	const struct run_flag *flag;
	const char *value;
};

struct run_args {
	const char *config_path;
	struct flag_value values[32];
	size_t n_values;
	char **argv;             /* CMD..., NULL-terminated (may be empty) */
};

static int parse_run_args(int argc, char *argv[], struct run_args *a)
{
	struct option longopts[N_RUN_FLAGS + 3];
	char shortopts[64] = "+hc:";
	size_t s = strlen(shortopts);
	int opt, idx;

	memset(longopts, 0, sizeof(longopts));
	for (size_t i = 0; i < N_RUN_FLAGS; i++) {
		longopts[i] = (struct option){ run_flags[i].name,
			run_flags[i].arg ? required_argument : no_argument, NULL, 1000 + (int)i };
		if (run_flags[i].short_opt) {
			shortopts[s++] = (char)run_flags[i].short_opt;
			if (run_flags[i].arg)
				shortopts[s++] = ':';
		}
	}
	longopts[N_RUN_FLAGS] = (struct option){ "config", required_argument, NULL, 'c' };
	longopts[N_RUN_FLAGS + 1] = (struct option){ "help", no_argument, NULL, 'h' };
	shortopts[s] = '\0';

	optind = 1;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, &idx)) != -1) {
		const struct run_flag *f = NULL;
		if (opt == 'h') {
			run_usage(stdout);
			return 1;
		}
		if (opt == 'c') {
			a->config_path = optarg;
			continue;
		}
		if (opt == '?')
			return -1;
		for (size_t i = 0; i < N_RUN_FLAGS; i++)
			if (opt == 1000 + (int)i || (run_flags[i].short_opt && opt == run_flags[i].short_opt))
				f = &run_flags[i];
		if (!f || a->n_values == sizeof(a->values) / sizeof(a->values[0]))
			return -1;
		a->values[a->n_values++] = (struct flag_value){ f, f->arg ? optarg : f->switch_value };
	}
	a->argv = argv + optind;
	return 0;
}

static int build_config(struct cvm_config *c, const struct run_args *a, struct cvm_error *err)
{
	if (cvm_config_load_layers(c, a->config_path, environ, err) < 0)
		return -1;
	for (size_t i = 0, volumes = 0; i < a->n_values; i++) {
		char source[64];
		snprintf(source, sizeof(source), "--%s", a->values[i].flag->name);
		if (!a->values[i].flag->section) {
			/* --volume SRC:DST[:ro] is a [mount "volume-N"] section. */
			char name[32];
			snprintf(name, sizeof(name), "volume-%zu", ++volumes);
			if (cvm_config_add_volume(c, name, a->values[i].value, "--volume", err) < 0)
				return -1;
			continue;
		}
		if (cvm_config_set(c, a->values[i].flag->section, a->values[i].flag->key,
				   a->values[i].value, source, err) < 0)
			return -1;
	}
	return cvm_config_validate(c, err);
}

static int supervise_plain(const struct cvm_config *c, char **argv)
{
	struct cvm_error err = { 0 };
	struct cvm_pid1 p;
	pid_t pid;
	int status;

	if (cvm_pid1_init(&p, c->stop_timeout_ms, c->signal_target, &err) < 0) {
		log_error("supervisor", "%s", err.msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	pid = cvm_spawn_plain(argv, &err);
	if (pid < 0) {
		log_error("supervisor", "%s", err.msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	/* From here on PID 1 must not die on an error it can survive. */
	if (cvm_pid1_set_main(&p, pid, &err) < 0)
		log_warn("supervisor", "%s (relying on SIGCHLD alone)", err.msg);
	log_debug("supervisor", "started '%s' as pid %d", argv[0], (int)pid);
	status = cvm_pid1_run(&p);
	cvm_pid1_close(&p);
	return status;
}

/* ---- workspace mode ------------------------------------------------------- */

static void ws_note(const char *line, void *arg)
{
	(void)arg;
	log_info("workspace", "%s", line);
}

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
};

/* When cvm run began, for the "workspace ready" line. */
static struct timespec run_start;

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

static void note_once(const char *line, void *arg)
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
	if (cvm_cgroup_setup(&w->cg, note_once, NULL, err) < 0)
		return -1;
	w->has_cgroup = true;
	n = cvm_resources_plan(c, w->cg.root, limits);
	if (cvm_cgroup_limits(&w->cg, limits, n, note_once, NULL, err) < 0 ||
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

	w->boot.pid = -1;
	w->boot.out_fd = -1;
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
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)ms_since(&run_start));
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

/* The plan as the runtime takes it (it knows nothing of gpu/), and its
 * variables in the workspace's environment unless [workspace] env set them. */
struct ws_gpu {
	struct cvm_gpu_plan plan;
	struct cvm_ws_extras x;
	struct cvm_ws_node *nodes;
	struct cvm_ws_file *files;
	struct cvm_ws_link *links;
};

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

static void ws_gpu_free(struct ws_gpu *g)
{
	free(g->nodes);
	free(g->files);
	free(g->links);
	cvm_gpu_plan_free(&g->plan);
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

static int supervise_workspace(const struct cvm_config *c, char **argv)
{
	struct cvm_error err = { 0 };
	struct cvm_inner in = { .config = c, .argv = argv, .envp = cvm_env_build(c, environ),
				.notify_sock = -1 };
	struct cvm_ws_mount mounts[c->n_mounts + 1];
	struct ws_gpu gpu = { 0 };
	struct cvm_ws_spec spec = {
		.rootfs = c->rootfs, .state = c->state, .uid_base = c->uid_base,
		.uid_count = c->uid_count, .hostname = c->hostname, .dev_fuse = c->dev_fuse,
		.dev_tun = c->dev_tun, .console = isatty(STDIN_FILENO),
		.mounts = mounts, .n_mounts = c->n_mounts, .note = ws_note,
		.engine_dirs = c->engine_dirs, .n_engine_dirs = c->n_engine_dirs,
	};
	struct ws_run w = { .ws = { -1, -1, -1 }, .tty = { .fd = -1 }, .cg = { .ws_fd = -1 }, .net = { .forward_was = -1 },
			    .dns = { .listen_fd = -1, .upstream_fd = -1 } };
	struct cvm_control_ctx ctl;
	struct cvm_pid1 p;
	int status, ctl_fd = -1;

	if (!in.envp || ws_precheck(c, &in, &err) < 0 || ws_gpu_plan(c, &gpu.plan, &err) < 0) {
		log_error("workspace", "%s", in.envp ? err.msg : "out of memory");
		cvm_env_free(in.envp);
		ws_gpu_free(&gpu);
		return 2;
	}
	if (gpu.plan.enabled) {
		if (ws_gpu_extras(&gpu, &in.envp) < 0) {
			log_error("gpu", "out of memory");
			cvm_env_free(in.envp);
			ws_gpu_free(&gpu);
			return CVM_EXIT_SETUP_FAILED;
		}
		spec.extras = &gpu.x;
	}
	for (size_t i = 0; i < c->n_mounts; i++)
		mounts[i] = (struct cvm_ws_mount){ c->mounts[i].name, c->mounts[i].source,
						   c->mounts[i].target, c->mounts[i].readonly };
	w.stop_signal = SIGTERM;
	{
		cleanup_close int root_fd = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root_fd >= 0 && cvm_inner_is_systemd(&in, root_fd)) {
			w.stop_signal = SIGRTMIN + 3;
			log_debug("workspace", "the inner init is systemd: stop is SIGRTMIN+3");
		}
	}
	/* systemd and other inits look here to learn they run in a container. */
	if (!cvm_env_get(in.envp, "container") && cvm_env_set(&in.envp, "container", "cvm") < 0) {
		log_error("workspace", "out of memory");
		cvm_env_free(in.envp);
		return CVM_EXIT_SETUP_FAILED;
	}
	if (ws_net_plan(c, &w, &spec, &err) < 0) {
		log_error("workspace", "%s", err.msg);
		cvm_env_free(in.envp);
		return 2;
	}
	if (ws_cgroup(c, &w, &err) < 0) {
		log_error("cgroup", "cgroup: %s", err.msg);
		cvm_cgroup_remove(&w.cg);
		cvm_env_free(in.envp);
		ws_gpu_free(&gpu);
		return err.err ? CVM_EXIT_SETUP_FAILED : 2;
	}
	if (!c->seccomp)
		log_warn("workspace", "seccomp is off ([workspace] seccomp = no): root inside may call kexec, "
			 "module and clock syscalls, stopped only by the kernel's own checks");
	spec.cgroup_fd = w.has_cgroup ? w.cg.ws_fd : -1;
	if (spec.console) {
		struct winsize ws;
		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
			spec.console_rows = ws.ws_row;
			spec.console_cols = ws.ws_col;
		}
	}
	spec.procfs_fd = spec.init_fd = -1;
	if (c->proc_virtualize) {
		if (cvm_procserver_start(&w.procfs, w.has_cgroup ? w.cg.ws : NULL, c->uid_base,
					 c->proc_passthrough, c->proc_follow, &err) < 0)
			log_warn("procfs", "the workspace gets the host's /proc numbers: %s", err.msg);
		else {
			w.has_procfs = true;
			spec.procfs_fd = w.procfs.pf.fuse_fd;
			spec.procfs_files = c->proc_files;
			/* The inner init keeps it as fd 3 to send sysinfo's listener. */
			spec.init_fd = w.procfs.notify_send;
			in.notify_sock = 3;
		}
	}
	if (cvm_pid1_init(&p, c->stop_timeout_ms, CVM_SIGNAL_CHILD, &err) < 0 ||
	    cvm_ws_start(&spec, cvm_inner_init, &in, &w.ws, &err) < 0) {
		log_error("workspace", "%s", err.msg);
		if (w.has_procfs) {
			cvm_procserver_signal(&w.procfs, SIGKILL);
			cvm_procserver_close(&w.procfs);
		}
		cvm_dnsrelay_close(&w.dns);
		cvm_net_down(&w.net);
		cvm_cgroup_remove(&w.cg);
		cvm_env_free(in.envp);
		ws_gpu_free(&gpu);
		return CVM_EXIT_SETUP_FAILED;
	}
	/* The workspace is built: the plan's strings are no longer needed. */
	ws_gpu_free(&gpu);
	if (w.ws.console >= 0)
		ws_console(&w);
	p.keep_winch = true;
	/* From here on PID 1 must not die on an error it can survive. */
	p.signal_all = ws_signal_all;
	p.signal_all_data = &w;
	if (w.has_procfs)
		cvm_procserver_watch(&w.procfs, &p);
	if (w.dns.listen_fd >= 0 &&
	    (cvm_pid1_watch(&p, w.dns.listen_fd, ws_dns_query, &w.dns) < 0 ||
	     cvm_pid1_watch(&p, w.dns.upstream_fd, ws_dns_answer, &w.dns) < 0))
		log_warn("network", "the workspace has no DNS: cannot watch the relay's sockets");
	if (cvm_pid1_set_main(&p, w.ws.pid, &err) < 0)
		log_warn("supervisor", "%s (relying on SIGCHLD alone)", err.msg);
	log_info("workspace", "workspace started: rootfs %s, changes in %s, ids %u-%u outside", c->rootfs,
		 c->state, c->uid_base, c->uid_base + c->uid_count - 1);
	w.handle = (struct cvm_ws_handle){
		.pidfd = w.ws.pidfd, .pid = w.ws.pid,
		.join_net = !cvm_join_shares_ns(w.ws.pid, "net"), .envp = in.envp, .user = c->user,
		.workdir = c->workdir, .seccomp = c->seccomp, .seccomp_deny = c->seccomp_deny,
		.notify_sock = w.has_procfs ? w.procfs.notify_send : -1,
	};
	ctl = (struct cvm_control_ctx){ &w.handle, w.has_cgroup ? &w.cg : NULL };
	ctl_fd = cvm_control_listen(c->control_socket, &err);
	if (ctl_fd < 0 || cvm_pid1_watch(&p, ctl_fd, cvm_control_on_ready, &ctl) < 0)
		log_warn("control", "cvm exec will not work: %s", ctl_fd < 0 ? err.msg : strerror(errno));
	/* Setup is over: what cvm does from here on (exec, bootstrap, stop,
	 * serve /proc) needs next to no privilege in the outer container. */
	if (cvm_caps_supervisor_drop(!strcmp(c->network, "private"), &err) < 0)
		log_warn("supervisor", "%s; cvm keeps all its capabilities", err.msg);
	ws_ready(c, &w, &p);
	status = cvm_pid1_run(&p);
	/* reboot(2) in a pid namespace (systemd's poweroff or halt, busybox
	 * poweroff) ends its init with SIGINT: the workspace shut down as asked,
	 * which is a clean exit, not "killed by SIGINT" (130). */
	if (WIFSIGNALED(p.main_status) && WTERMSIG(p.main_status) == SIGINT) {
		log_info("workspace", "the workspace powered off (its init halted the pid namespace)");
		status = 0;
	}
	cvm_pid1_close(&p);
	if (ctl_fd >= 0) {
		close(ctl_fd);
		unlink(c->control_socket);
	}
	close(w.ws.pidfd);
	if (w.has_procfs)
		cvm_procserver_close(&w.procfs);
	cvm_dnsrelay_close(&w.dns);
	cvm_net_down(&w.net);
	cvm_cgroup_remove(&w.cg);
	if (w.boot.out_fd >= 0)
		close(w.boot.out_fd);
	cvm_env_free(in.envp);
	cvm_tty_restore(&w.tty);
	cvm_log_crlf(false);
	return status;
}

int cvm_cmd_run(int argc, char *argv[])
{
	struct run_args args = { 0 };
	struct cvm_error err = { 0 };
	struct cvm_config c;
	int r, status;

	clock_gettime(CLOCK_MONOTONIC, &run_start);
	r = parse_run_args(argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 2;
	if (build_config(&c, &args, &err) < 0) {
		fprintf(stderr, "cvm: %s\n", err.msg);
		cvm_config_free(&c);
		return 2;
	}
	cvm_log_setup(c.log_level, c.log_format);
	if (c.rootfs)
		status = supervise_workspace(&c, args.argv);
	else if (!args.argv[0]) {
		log_error("supervisor", "nothing to run: give a command after '--' (cvm run -- /bin/sh), "
			  "or a workspace image with --rootfs DIR");
		status = 2;
	} else
		status = supervise_plain(&c, args.argv);
	cvm_config_free(&c);
	return status;
}
