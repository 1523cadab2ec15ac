/* cvm run: parse flags, build the config, start the workload, supervise. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "runtime/exitcode.h"
#include "log.h"
#include "pid1.h"
#include "spawn.h"
#include "inner.h"
#include "lifecycle.h"
#include "runtime/workspace.h"

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
	{ "image", 0, "REF", "image", "ref", NULL,
	  "a registry image instead of --rootfs, like ubuntu:24.04" },
	{ "pull", 0, "POLICY", "image", "pull", NULL,
	  "missing (default: what the cache lacks), always or never" },
	{ "state", 's', "DIR", "workspace", "state", NULL,
	  "where the workspace's changes persist (required with --rootfs, --image)" },
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
	      "Started from a terminal, the workspace gets a terminal of its own\n"
	      "(its /dev/console: ^C, ^Z and the window size work inside), which\n"
	      "cvm relays to yours. --image REF names a registry image instead\n"
	      "of the directory: pulled into STATE/images (each layer verified\n"
	      "and unpacked once, shared by digest; later starts download nothing\n"
	      "new, and start from the cache when the registry is unreachable),\n"
	      "its layers stacked as the overlay's lower dirs, its Env the\n"
	      "workspace's. Without either, run CMD as a plain supervised process.\n"
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
	      "host_lib_dir and inner_lib_dir; [image] has default_registry, mirrors,\n"
	      "cache_dir, auth_file and ca_dir; see examples/cvm.ini).\n"
	      "Precedence: defaults < file < environment < flags.\n"
	      "envbox's variables are accepted as aliases (CODER_INNER_IMAGE: a\n"
	      "directory or an image, CODER_INNER_USERNAME, CODER_MOUNTS, CODER_CPUS,\n"
	      "CODER_BOOTSTRAP_SCRIPT, CODER_AGENT_TOKEN, CODER_AGENT_URL,\n"
	      "CODER_IMAGE_PULL_SECRET, ...; see the README); CVM_* wins over CODER_*.\n"
	      "\n"
	      "Examples:\n"
	      "  cvm run --rootfs /img --state /data  a workspace; changes kept in /data\n"
	      "  cvm run -r /img -s /data -v /home:/home -- bash -l\n"
	      "  cvm run --image ubuntu:24.04 -s /data  pulled from Docker Hub, cached\n"
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
	c->layer = CVM_LAYER_FLAG;
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

int cvm_cmd_run(int argc, char *argv[])
{
	struct run_args args = { 0 };
	struct cvm_error err = { 0 };
	struct cvm_config c;
	struct timespec run_start;
	int r, status;

	clock_gettime(CLOCK_MONOTONIC, &run_start);
	r = parse_run_args(argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : CVM_EXIT_USAGE;
	if (build_config(&c, &args, &err) < 0) {
		fprintf(stderr, "cvm: %s\n", err.msg);
		cvm_config_free(&c);
		return CVM_EXIT_USAGE;
	}
	cvm_log_setup(c.log_level, c.log_format);
	if (c.rootfs || c.image_ref)
		status = cvm_workspace_run(&c, args.argv, &run_start);
	else if (!args.argv[0]) {
		log_error("supervisor", "nothing to run: give a command after '--' (cvm run -- /bin/sh), "
			  "or a workspace image with --rootfs DIR");
		status = CVM_EXIT_USAGE;
	} else
		status = supervise_plain(&c, args.argv);
	cvm_config_free(&c);
	return status;
}
