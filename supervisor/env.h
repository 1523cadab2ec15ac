/* The workspace's environment: defaults < passed-through outer variables
 * (env_pass: NAME or PREFIX*) < [workspace] env. */
#ifndef CVM_ENV_H
#define CVM_ENV_H

#include "config.h"

#define CVM_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* A new NULL-terminated NAME=VALUE array (free with cvm_env_free), or NULL
 * on allocation failure. */
char **cvm_env_build(const struct cvm_config *c, char *const *outer);
void cvm_env_free(char **env);

/* Set NAME=VALUE in *@env (replacing NAME); 0 or -1 (ENOMEM). */
int cvm_env_set(char ***env, const char *name, const char *value);
const char *cvm_env_get(char *const *env, const char *name);

#endif
