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

#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "pid1.h"
#include "spawn.h"
#include "control.h"
#include "env.h"
#include "procserver.h"
#include "resources.h"
#include "inner.h"
#include "runtime/cleanup.h"
#include "runtime/idmap.h"
#include "runtime/syscalls.h"
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
	{ "fuse", 0, NULL, "devices", "fuse", "yes", "give the workspace /dev/fuse" },
	{ "tun", 0, NULL, "devices", "tun", "yes", "give the workspace /dev/net/tun" },
	{ "cpus", 0, "N", "resources", "cpus", NULL,
	  "CPU limit, like 0.5 or 4; auto (default): the outer container's" },
	{ "memory", 'm', "SIZE", "resources", "memory", NULL,
	  "memory limit, like 4G; auto (default): the outer container's" },
	{ "pids", 0, "N", "resources", "pids", NULL, "most processes inside (default: no limit)" },
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
	      "(--volume is a [mount \"NAME\"] section).\n"
	      "Precedence: defaults < file < environment < flags.\n"
	      "\n"
	      "Examples:\n"
	      "  cvm run --rootfs /img --state /data  a workspace; changes kept in /data\n"
	      "  cvm run -r /img -s /data -v /home:/home -- bash -l\n"
	      "  cvm run -- /bin/sh -c 'make -j8'     reap and forward for a build\n"
	      "  cvm run -g -t 30s -- ./server         signal the whole group, 30s grace\n"
	      "  cvm run --log-format=json -- app      logs for a collector on stderr\n",
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

/* --volume SRC:DST[:ro] is a [mount "volume-N"] section. */
static int set_volume(struct cvm_config *c, const char *spec, size_t n, struct cvm_error *err)
{
	char buf[8192], section[64];
	char *src = buf, *dst, *mode;

	if (strlen(spec) >= sizeof(buf))
		return cvm_error_set(err, 0, "--volume: too long");
	strcpy(buf, spec);
	dst = strchr(src, ':');
	if (!dst)
		return cvm_error_set(err, 0, "--volume %s: expected SRC:DST or SRC:DST:ro", spec);
	*dst++ = '\0';
	mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (mode && strcmp(mode, "ro") && strcmp(mode, "rw"))
		return cvm_error_set(err, 0, "--volume %s: the mode is ro or rw, not '%s'", spec, mode);
	snprintf(section, sizeof(section), "mount volume-%zu", n + 1);
	if (cvm_config_set(c, section, "source", src, "--volume", err) < 0 ||
	    cvm_config_set(c, section, "target", dst, "--volume", err) < 0 ||
	    cvm_config_set(c, section, "readonly", mode && !strcmp(mode, "ro") ? "yes" : "no",
			   "--volume", err) < 0)
		return -1;
	return 0;
}

static int build_config(struct cvm_config *c, const struct run_args *a, struct cvm_error *err)
{
	const char *path = a->config_path ? a->config_path : getenv("CVM_CONFIG");

	cvm_config_init(c);
	if (cvm_config_load_file(c, path ? path : CVM_DEFAULT_CONFIG_PATH, path != NULL, err) < 0)
		return -1;
	if (cvm_config_load_env(c, environ, err) < 0)
		return -1;
	for (size_t i = 0, volumes = 0; i < a->n_values; i++) {
		char source[64];
		snprintf(source, sizeof(source), "--%s", a->values[i].flag->name);
		if (!a->values[i].flag->section) {
			if (set_volume(c, a->values[i].value, volumes++, err) < 0)
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
		log_error("%s", err.msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	pid = cvm_spawn_plain(argv, &err);
	if (pid < 0) {
		log_error("%s", err.msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	/* From here on PID 1 must not die on an error it can survive. */
	if (cvm_pid1_set_main(&p, pid, &err) < 0)
		log_warn("%s (relying on SIGCHLD alone)", err.msg);
	log_debug("started '%s' as pid %d", argv[0], (int)pid);
	status = cvm_pid1_run(&p);
	cvm_pid1_close(&p);
	return status;
}

/* ---- workspace mode ------------------------------------------------------- */

static void ws_note(const char *line, void *arg)
{
	(void)arg;
	log_info("%s", line);
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
};

static int ws_signal_all(int sig, void *data)
{
	struct ws_run *w = data;
	int n = sys_pidfd_send_signal(w->ws.pidfd, sig, NULL, 0) == 0;

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
	log_warn("%s", line);
}

/* In the initial cgroup namespace (fixed inode number), "0::/" is the
 * host's root cgroup: every process of the machine is there, and cvm must
 * not rearrange it (unshare --pid from a shell on a host). A container's
 * own group, with or without its own cgroup namespace, is cvm's to use. */
static bool in_host_root_cgroup(void)
{
	struct stat st;
	char line[256] = "";
	cleanup_file FILE *f = fopen("/proc/self/cgroup", "re");

	if (stat("/proc/self/ns/cgroup", &st) < 0 || st.st_ino != 0xEFFFFFFBu)
		return false;
	while (f && fgets(line, sizeof(line), f))
		if (!strcmp(line, "0::/\n"))
			return true;
	return false;
}

/* As PID 1 of the outer container, cvm owns its cgroup: a leaf for itself,
 * a delegated group with the limits for the workspace. Run any other way
 * (a shell, a test) it leaves the cgroups it was started in alone. */
static int ws_cgroup(const struct cvm_config *c, struct ws_run *w, struct cvm_error *err)
{
	struct cvm_cg_limit limits[CVM_MAX_LIMITS];
	size_t n;
	int fd;

	if (getpid() != 1 || in_host_root_cgroup()) {
		log_debug("not PID 1 of a container (or in the host's root cgroup): the workspace "
			  "stays in cvm's cgroup, without limits");
		return 0;
	}
	/* An OOM or a fork bomb inside must never take PID 1 down. */
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "-1000", 5) != 5)
		log_warn("cannot set cvm's oom_score_adj to -1000 (%s; it needs CAP_SYS_RESOURCE): "
			 "an OOM inside could pick cvm", strerror(errno));
	if (fd >= 0)
		close(fd);
	if (cvm_cgroup_setup(&w->cg, note_once, NULL, err) < 0)
		return -1;
	w->has_cgroup = true;
	n = cvm_resources_plan(c, w->cg.root, limits);
	if (cvm_cgroup_limits(&w->cg, limits, n, note_once, NULL, err) < 0 ||
	    cvm_cgroup_delegate(&w->cg, c->uid_base, c->uid_base, err) < 0)
		return -1;
	return 0;
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
	struct cvm_ws_spec spec = {
		.rootfs = c->rootfs, .state = c->state, .uid_base = c->uid_base,
		.uid_count = c->uid_count, .hostname = c->hostname, .dev_fuse = c->dev_fuse,
		.dev_tun = c->dev_tun, .console_fd = isatty(STDIN_FILENO) ? STDIN_FILENO : -1,
		.mounts = mounts, .n_mounts = c->n_mounts, .note = ws_note,
	};
	struct ws_run w = { .ws = { -1, -1 }, .cg = { .ws_fd = -1 } };
	struct cvm_control_ctx ctl;
	struct cvm_pid1 p;
	int status, ctl_fd = -1;

	if (!in.envp || ws_precheck(c, &in, &err) < 0) {
		log_error("%s", in.envp ? err.msg : "out of memory");
		cvm_env_free(in.envp);
		return 2;
	}
	for (size_t i = 0; i < c->n_mounts; i++)
		mounts[i] = (struct cvm_ws_mount){ c->mounts[i].name, c->mounts[i].source,
						   c->mounts[i].target, c->mounts[i].readonly };
	if (ws_cgroup(c, &w, &err) < 0) {
		log_error("cgroup: %s", err.msg);
		cvm_cgroup_remove(&w.cg);
		cvm_env_free(in.envp);
		return err.err ? CVM_EXIT_SETUP_FAILED : 2;
	}
	if (!c->seccomp)
		log_warn("seccomp is off ([workspace] seccomp = no): root inside may call kexec, "
			 "module and clock syscalls, stopped only by the kernel's own checks");
	spec.cgroup_fd = w.has_cgroup ? w.cg.ws_fd : -1;
	spec.procfs_fd = spec.init_fd = -1;
	if (c->proc_virtualize) {
		if (cvm_procserver_start(&w.procfs, w.has_cgroup ? w.cg.ws : NULL, c->uid_base,
					 c->proc_passthrough, &err) < 0)
			log_warn("the workspace gets the host's /proc numbers: %s", err.msg);
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
		log_error("%s", err.msg);
		if (w.has_procfs) {
			cvm_procserver_signal(&w.procfs, SIGKILL);
			cvm_procserver_close(&w.procfs);
		}
		cvm_cgroup_remove(&w.cg);
		cvm_env_free(in.envp);
		return CVM_EXIT_SETUP_FAILED;
	}
	/* From here on PID 1 must not die on an error it can survive. */
	p.signal_all = ws_signal_all;
	p.signal_all_data = &w;
	if (w.has_procfs)
		cvm_procserver_watch(&w.procfs, &p);
	if (cvm_pid1_set_main(&p, w.ws.pid, &err) < 0)
		log_warn("%s (relying on SIGCHLD alone)", err.msg);
	log_info("workspace started: rootfs %s, changes in %s, ids %u-%u outside", c->rootfs,
		 c->state, c->uid_base, c->uid_base + c->uid_count - 1);
	ctl = (struct cvm_control_ctx){ w.ws.pidfd, w.ws.pid, in.envp, c->user, c->workdir,
					w.has_cgroup ? &w.cg : NULL, c->seccomp,
					w.has_procfs ? w.procfs.notify_send : -1 };
	ctl_fd = cvm_control_listen(c->control_socket, &err);
	if (ctl_fd < 0 || cvm_pid1_watch(&p, ctl_fd, cvm_control_on_ready, &ctl) < 0)
		log_warn("cvm exec will not work: %s", ctl_fd < 0 ? err.msg : strerror(errno));
	status = cvm_pid1_run(&p);
	cvm_pid1_close(&p);
	if (ctl_fd >= 0) {
		close(ctl_fd);
		unlink(c->control_socket);
	}
	close(w.ws.pidfd);
	if (w.has_procfs)
		cvm_procserver_close(&w.procfs);
	cvm_cgroup_remove(&w.cg);
	cvm_env_free(in.envp);
	return status;
}

int cvm_cmd_run(int argc, char *argv[])
{
	struct run_args args = { 0 };
	struct cvm_error err = { 0 };
	struct cvm_config c;
	int r, status;

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
		log_error("nothing to run: give a command after '--' (cvm run -- /bin/sh), "
			  "or a workspace image with --rootfs DIR");
		status = 2;
	} else
		status = supervise_plain(&c, args.argv);
	cvm_config_free(&c);
	return status;
}
