/* [resources] -> cgroup v2 files of the workspace group. */
#ifndef CVM_RESOURCES_H
#define CVM_RESOURCES_H

#include "config.h"
#include "runtime/cgroup.h"

#define CVM_MAX_LIMITS 8

/* Fill @out with the limit files to write; "auto" reads the outer
 * container's own cpu.max / memory.max in @outer_dir (our cgroup). */
size_t cvm_resources_plan(const struct cvm_config *c, const char *outer_dir,
			  struct cvm_cg_limit out[CVM_MAX_LIMITS]);

#endif
