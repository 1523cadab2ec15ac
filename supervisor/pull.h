/* Pulling an image the way cvm pull and cvm run both do: the options from
 * the config's [image] section, and the progress in the log. */
#ifndef CVM_PULL_H
#define CVM_PULL_H

#include <stddef.h>

#include "config.h"
#include "image/image.h"

/* [image] of @c as pull options (envbox's CODER_* for it already mapped by
 * the config); the cache dir, [image] cache_dir else STATE/images, goes
 * into @cache. 0, or -1 when there is no cache dir (neither is set). */
int cvm_pull_config(const struct cvm_config *c, struct cvm_image_opts *o, char *cache,
		    size_t len);

/* Pull @o->ref (cvm_image_pull) with a log line per layer (size, short
 * digest), a progress bar on a terminal or bytes done/total in JSON logs,
 * and a last line saying how long it took. 0, or -1 with @err. */
int cvm_pull_logged(struct cvm_image_opts *o, struct cvm_image *img, struct cvm_error *err);

#endif
