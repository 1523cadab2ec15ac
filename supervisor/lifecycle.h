/* cvm run --rootfs: a workspace's whole life (supervisor/lifecycle.c). */
#ifndef CVM_LIFECYCLE_H
#define CVM_LIFECYCLE_H

#include <time.h>

#include "config.h"

/* Plan, start, supervise and tear down the workspace of @c, running @argv
 * (may be empty: the image's init) under its init. @started: when cvm run
 * began (for the "ready" line). Returns cvm's exit status: the workspace
 * init's, 2 for bad input, 125 when cvm itself could not start it. */
int cvm_workspace_run(const struct cvm_config *c, char **argv, const struct timespec *started);

#endif
