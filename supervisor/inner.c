#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env.h"
#include "runtime/exitcode.h"
#include "inner.h"
#include "log.h"
#include "pid1.h"
#include "spawn.h"
#include "runtime/cleanup.h"
#include "runtime/enter.h"
#include "runtime/syscalls.h"

#define MAX_INIT_ARGS 64

enum inner_mode { RUN_IMAGE_INIT, RUN_INIT_COMMAND, RUN_UNDER_CVM };

static bool executable_in(int root_fd, const char *path)
{
	struct cvm_open_how how = { .flags = O_PATH | O_CLOEXEC,
				    .resolve = CVM_RESOLVE_IN_ROOT | CVM_RESOLVE_NO_MAGICLINKS };
	struct stat st;
	cleanup_close int fd = sys_openat2(root_fd, path, &how, sizeof(how));

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

static enum inner_mode inner_mode(const struct cvm_inner *in, int root_fd)
{
	if (in->argv && in->argv[0])
		return RUN_UNDER_CVM;
	if (strcmp(in->config->init, "auto") != 0)
		return RUN_INIT_COMMAND;
	return executable_in(root_fd, "/sbin/init") ? RUN_IMAGE_INIT : RUN_UNDER_CVM;
}

int cvm_inner_check(const struct cvm_inner *in, int root_fd, struct cvm_error *err)
{
	switch (inner_mode(in, root_fd)) {
	case RUN_IMAGE_INIT:
		return 0;
	case RUN_INIT_COMMAND:
		if (in->config->init[0] == '/' && !executable_in(root_fd, in->config->init) &&
		    !strchr(in->config->init, ' '))
			return cvm_error_set(err, 0, "init: %s is not an executable file in the "
					     "rootfs %s", in->config->init, in->config->rootfs);
		return 0;
	case RUN_UNDER_CVM:
		if (in->argv && in->argv[0])
			return 0;
		if (!executable_in(root_fd, "/bin/sh"))
			return cvm_error_set(err, 0, "rootfs %s has neither /sbin/init nor /bin/sh: "
					     "give a command (cvm run --rootfs DIR -- CMD) or set "
					     "[workspace] init", in->config->rootfs);
		return 0;
	}
	return 0;
}

static bool same_file_in(int root_fd, const char *a, const char *b)
{
	struct cvm_open_how how = { .flags = O_PATH | O_CLOEXEC,
				    .resolve = CVM_RESOLVE_IN_ROOT | CVM_RESOLVE_NO_MAGICLINKS };
	cleanup_close int fa = sys_openat2(root_fd, a, &how, sizeof(how));
	cleanup_close int fb = sys_openat2(root_fd, b, &how, sizeof(how));
	struct stat sa, sb;

	return fa >= 0 && fb >= 0 && fstat(fa, &sa) == 0 && fstat(fb, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool cvm_inner_is_systemd(const struct cvm_inner *in, int root_fd)
{
	const char *init = in->config->init, *end;
	size_t len;

	switch (inner_mode(in, root_fd)) {
	case RUN_IMAGE_INIT:
		return same_file_in(root_fd, "/sbin/init", "/lib/systemd/systemd") ||
		       same_file_in(root_fd, "/sbin/init", "/usr/lib/systemd/systemd");
	case RUN_INIT_COMMAND:
		len = strcspn(init, " \t");
		end = init + len;
		return len >= 7 && !strncmp(end - 7, "systemd", 7) &&
		       (len == 7 || end[-8] == '/');
	case RUN_UNDER_CVM:
		break;
	}
	return false;
}

/* Split "init" on blanks (no shell: it runs before anything else). */
static void split_words(char *s, char **argv, size_t max)
{
	size_t n = 0;
	for (char *save = NULL, *w = strtok_r(s, " \t", &save); w && n + 1 < max;
	     w = strtok_r(NULL, " \t", &save))
		argv[n++] = w;
	argv[n] = NULL;
}

__attribute__((noreturn)) static void exec_as_pid1(char **argv, char **envp)
{
	cvm_pid1_child_reset_signals();
	environ = envp;
	cvm_enter_execvp(-1, argv);
}

/* In the command's child: the configured user, workdir and environment. */
__attribute__((noreturn)) static void become_user_and_exec(struct cvm_inner *in)
{
	const struct cvm_enter e = {
		.argv = in->argv, .envp = in->envp, .user = in->config->user,
		.workdir = in->config->workdir, .tty = -1, .stdio = { -1, -1, -1 }, .report_fd = -1,
	};

	cvm_enter_exec(&e);
}

static char *argv_area;
static size_t argv_area_len;

void cvm_inner_save_argv(int argc, char **argv)
{
	if (argc < 1)
		return;
	argv_area = argv[0];
	argv_area_len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) - argv[0]);
}

/* /proc/1/cmdline is readable by anyone inside, dumpable or not: do not
 * show them the outer command line (paths of the outer container). */
static void hide_outer_cmdline(void)
{
	static const char title[] = "cvm-init";

	prctl(PR_SET_NAME, title);
	if (!argv_area || argv_area_len < sizeof(title))
		return;
	memset(argv_area, 0, argv_area_len);
	memcpy(argv_area, title, sizeof(title));
}

/* cvm's own init inside: reap everything, forward signals, end with the
 * command's status. Not dumpable: this process is the outer cvm binary,
 * and inner root must not ptrace it or read its /proc entries. */
static int minimal_init(struct cvm_inner *in)
{
	struct cvm_error err = { 0 };
	struct cvm_pid1 p;
	pid_t pid, group;
	char *sh[] = { "/bin/sh", NULL };

	prctl(PR_SET_DUMPABLE, 0);
	/* The command's words live in the argv area that is about to go. */
	for (size_t i = 0; in->argv && in->argv[i]; i++)
		if (!(in->argv[i] = strdup(in->argv[i])))
			return CVM_EXIT_SETUP_FAILED;
	hide_outer_cmdline();
	if (!in->argv || !in->argv[0])
		in->argv = sh;
	if (cvm_pid1_init(&p, in->config->stop_timeout_ms, in->config->signal_target, &err) < 0) {
		log_error("init", "%s", err.msg);
		return CVM_EXIT_SETUP_FAILED;
	}
	group = getpgrp();
	pid = fork();
	if (pid < 0) {
		log_error("init", "fork: %s", strerror(errno));
		return CVM_EXIT_SETUP_FAILED;
	}
	if (pid == 0) {
		cvm_child_prepare(group);
		become_user_and_exec(in);
	}
	setpgid(pid, pid);
	if (cvm_pid1_set_main(&p, pid, &err) < 0)
		log_warn("init", "%s", err.msg);
	return cvm_pid1_run(&p);
}

int cvm_inner_init(void *arg)
{
	struct cvm_inner *in = arg;
	char *argv[MAX_INIT_ARGS];
	char *words;
	struct cvm_error err = { 0 };

	/* Before anything of the image runs; inherited by all that follows. */
	if (cvm_enter_confine(in->config->seccomp, in->config->seccomp_deny, in->notify_sock,
			      &err) < 0) {
		log_error("init", "workspace: %s", err.msg);
		return CVM_EXIT_SETUP_FAILED;
	}

	switch (inner_mode(in, AT_FDCWD)) {
	case RUN_IMAGE_INIT:
		argv[0] = "/sbin/init";
		argv[1] = NULL;
		exec_as_pid1(argv, in->envp);
	case RUN_INIT_COMMAND:
		words = strdup(in->config->init);
		if (!words)
			return CVM_EXIT_SETUP_FAILED;
		split_words(words, argv, MAX_INIT_ARGS);
		exec_as_pid1(argv, in->envp);
	case RUN_UNDER_CVM:
		break;
	}
	return minimal_init(in);
}
