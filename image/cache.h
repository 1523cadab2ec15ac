/* The image cache (cache_dir, default STATE/images, or a node-wide dir
 * shared by pods):
 *
 *   layers/sha256/<hex>/         one unpacked layer, the dir the overlay stacks;
 *                                made as <hex>.tmp.<pid>/ and renamed into place
 *                                only once the blob verified and unpacked whole
 *   manifests/sha256/<hex>       image manifest JSON (verified against <hex> on read)
 *   configs/sha256/<hex>         image config JSON (idem)
 *   refs/<escaped ref>           "<top digest> <image manifest digest>\n": what the
 *                                ref resolved to last (offline starts, pull=missing)
 *   lock                         flock(2): shared while a pull or a workspace uses
 *                                layers, exclusive for GC
 *
 * No credential is ever written here. */
#ifndef CVM_IMAGE_CACHE_H
#define CVM_IMAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/error.h"

struct cvm_cache {
	char *path;
	int dirfd;
	int lock_fd;    /* held shared from open to close */
};

/* Make the layout under @path (absolute) and take the lock shared. */
int cvm_cache_open(const char *path, struct cvm_cache *c, struct cvm_error *err);
void cvm_cache_close(struct cvm_cache *c);

/* "manifests" or "configs": the verified bytes of @digest. 0, 1 when it is
 * not there (or does not hash to @digest: removed), -1 on an error. */
int cvm_cache_get_blob(struct cvm_cache *c, const char *kind, const char *digest, char **body,
		       size_t *len, struct cvm_error *err);
int cvm_cache_put_blob(struct cvm_cache *c, const char *kind, const char *digest, const char *body,
		       size_t len, struct cvm_error *err);

/* refs/: what @ref (a canonical reference string) resolved to. */
int cvm_cache_get_ref(struct cvm_cache *c, const char *ref, char top[72], char image[72]);
int cvm_cache_put_ref(struct cvm_cache *c, const char *ref, const char *top, const char *image,
		      struct cvm_error *err);

bool cvm_cache_has_layer(struct cvm_cache *c, const char *digest);
/* Absolute path of a layer dir (malloc'd). */
char *cvm_cache_layer_path(struct cvm_cache *c, const char *digest);
/* A fresh <hex>.tmp.<pid> dir to unpack into: its name in @tmp, an fd. */
int cvm_cache_layer_begin(struct cvm_cache *c, const char *digest, char *tmp, size_t len,
			  struct cvm_error *err);
/* Rename @tmp into place (another pull that got there first wins: @tmp is removed). */
int cvm_cache_layer_commit(struct cvm_cache *c, const char *digest, const char *tmp,
			   struct cvm_error *err);
void cvm_cache_layer_abort(struct cvm_cache *c, const char *tmp);
/* An unlinked file in the cache's filesystem for a blob download. */
int cvm_cache_blob_tmpfile(struct cvm_cache *c, struct cvm_error *err);

/* Remove layers, manifests and configs no refs/ entry leads to, and
 * leftovers of dead pulls. Only when no one else holds the lock (a
 * workspace or pull of another pod): else nothing, and 0. @removed counts
 * layers removed; -1 on an error. */
int cvm_cache_gc(struct cvm_cache *c, unsigned *removed, bool *skipped, struct cvm_error *err);

#endif
