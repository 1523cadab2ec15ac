/* NAME=VALUE arrays, as execve(2) takes them: one set of helpers for the
 * supervisor (building the workspace's environment) and runtime (what
 * every command inside gets on entering). */
#ifndef CVM_ENVLIST_H
#define CVM_ENVLIST_H

/* Put the NAME=VALUE string @entry (taken over, freed on failure) into
 * *@env, replacing NAME; 0 or -1 (ENOMEM). */
int cvm_env_put(char ***env, char *entry);
/* Set NAME=VALUE in *@env (replacing NAME); 0 or -1 (ENOMEM). */
int cvm_env_set(char ***env, const char *name, const char *value);
const char *cvm_env_get(char *const *env, const char *name);
/* Free an array built with these (each entry and the array). */
void cvm_env_free(char **env);

#endif
