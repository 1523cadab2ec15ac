/* image/layer.c: apply one layer blob to a directory. */
#ifndef CVM_IMAGE_LAYER_H
#define CVM_IMAGE_LAYER_H

#include <stdint.h>

#include "runtime/error.h"

enum cvm_layer_mode {
	CVM_LAYER_OVERLAY,  /* a layer dir for overlayfs: whiteouts as 0/0 char devices, opaque dirs as
	                       xattr trusted.overlay.opaque=y (the layer stacks as a lower dir) */
	CVM_LAYER_APPLY,    /* apply onto a flattened tree: whiteouts delete, opaque empties the dir */
};

struct cvm_layer_stats {
	uint64_t files, bytes;
};

/* Read the (gzip|zstd|plain, auto-detected) tar from @blob_fd and write it
 * under @root_fd. No path leaves @root_fd. Returns 0 or -1 with @err. */
int cvm_layer_unpack(int blob_fd, int root_fd, enum cvm_layer_mode mode, struct cvm_layer_stats *st,
		     struct cvm_error *err);

#endif
