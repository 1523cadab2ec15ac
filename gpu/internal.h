/* Shared between the planner's parts: growing the plan's lists. */
#ifndef CVM_GPU_INTERNAL_H
#define CVM_GPU_INTERNAL_H

#include <sys/stat.h>

#include "gpu.h"

/* Each returns 0, or -1 with @err filled (ENOMEM). An entry whose inner
 * path is already planned is skipped: the first source wins. */
int gpu_add_node(struct cvm_gpu_plan *p, const char *outer, const char *inner,
		 const struct stat *st, struct cvm_error *err);
int gpu_add_file(struct cvm_gpu_plan *p, const char *outer, const char *inner,
		 enum cvm_gpu_file_kind kind, struct cvm_error *err);
int gpu_add_link(struct cvm_gpu_plan *p, const char *inner, const char *target,
		 struct cvm_error *err);
/* Note what was left out, and why (shown by cvm_gpu_plan_print). */
int gpu_refuse(struct cvm_gpu_plan *p, struct cvm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* devices.c: the device nodes for the selection in @visible. Returns how
 * many GPUs were selected, or -1 with @err filled. */
int gpu_plan_devices(struct cvm_gpu_plan *p, const struct cvm_gpu_host *h,
		     const char *visible, struct cvm_error *err);

/* files.c: driver libraries, binaries and vendor files from @lib_dir (may be
 * NULL) and from the mounts in @mountinfo. */
int gpu_plan_files(struct cvm_gpu_plan *p, const char *lib_dir, const char *mountinfo,
		   struct cvm_error *err);

#endif
