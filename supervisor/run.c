/* cvm run: parse flags, build the config, start the workload, supervise. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "pid1.h"
#include "spawn.h"

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
};
#define N_RUN_FLAGS (sizeof(run_flags) / sizeof(run_flags[0]))

static void run_usage(FILE *out)
{
	fputs("Usage: cvm run [OPTIONS] [--] [CMD [ARG...]]\n"
	      "\n"
	      "Start CMD and supervise it as PID 1: reap every process, forward\n"
	      "signals, and on stop send SIGTERM to everything, wait the grace\n"
	      "period, then SIGKILL what is left. Exits with CMD's exit code, or\n"
	      "128+N when a signal N killed it; 127 if CMD is not found, 126 if\n"
	      "it cannot be executed, 2 for a bad config or usage.\n"
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
	      "the INI file, or CVM_SUPERVISOR_STOP_TIMEOUT=30s in the environment.\n"
	      "Precedence: defaults < file < environment < flags.\n"
	      "\n"
	      "Examples:\n"
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

static int build_config(struct cvm_config *c, const struct run_args *a, struct cvm_error *err)
{
	const char *path = a->config_path ? a->config_path : getenv("CVM_CONFIG");

	cvm_config_init(c);
	if (cvm_config_load_file(c, path ? path : CVM_DEFAULT_CONFIG_PATH, path != NULL, err) < 0)
		return -1;
	if (cvm_config_load_env(c, environ, err) < 0)
		return -1;
	for (size_t i = 0; i < a->n_values; i++) {
		char source[64];
		snprintf(source, sizeof(source), "--%s", a->values[i].flag->name);
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
	if (!args.argv[0]) {
		log_error("nothing to run: give a command after '--' (cvm run -- /bin/sh)");
		cvm_config_free(&c);
		return 2;
	}
	status = supervise_plain(&c, args.argv);
	cvm_config_free(&c);
	return status;
}
