/* The workspace's environment: defaults < passed-through outer variables
 * (env_pass: NAME or PREFIX*) < [workspace] env. */
#ifndef CVM_ENV_H
#define CVM_ENV_H

#include "config.h"
#include "runtime/envlist.h"

#define CVM_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The workspace's environment: cvm's defaults (PATH, container, HOSTNAME),
 * then the image's Env (@image, NULL for none), then what the config passes
 * from @outer ([workspace] env_pass) and sets ([workspace] env), each later
 * one winning. A new NULL-terminated NAME=VALUE array (free with
 * cvm_env_free), or NULL on allocation failure. */
char **cvm_env_build(const struct cvm_config *c, char *const *image, char *const *outer);

#endif
