/* What runs as PID 1 inside the workspace once it is built. */
#ifndef CVM_INNER_H
#define CVM_INNER_H

#include <stdbool.h>

#include "config.h"

struct cvm_inner {
	const struct cvm_config *config;
	char **argv;            /* `cvm run -- CMD`: run it under cvm's init; may be empty */
	char **envp;            /* the workspace's environment */
	int notify_sock;        /* where sysinfo(2)'s listener goes (runtime/notify.h), or -1 */
};

/* cvm_ws_init_fn: exec the image's init, or be a minimal reaping init for
 * the command. Returns the workspace's exit code (or never returns). */
int cvm_inner_init(void *arg);

/* Decide before anything starts what the inner init will run, so a rootfs
 * that has neither /sbin/init nor /bin/sh fails with a message up front.
 * @root_fd is the image dir. */
int cvm_inner_check(const struct cvm_inner *in, int root_fd, struct cvm_error *err);

/* Whether the inner init will be systemd (the image's /sbin/init is the
 * same file as its /lib/systemd/systemd, or init names a systemd binary):
 * it stops on SIGRTMIN+3 (SIGTERM makes systemd re-execute itself). */
bool cvm_inner_is_systemd(const struct cvm_inner *in, int root_fd);

/* Remember where main()'s argv lives, so the inner init can overwrite it. */
void cvm_inner_save_argv(int argc, char **argv);

#endif
