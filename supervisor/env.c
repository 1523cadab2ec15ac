#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

static bool passed(const struct cvm_config *c, const char *entry)
{
	char name[256];
	size_t len = strcspn(entry, "=");

	if (len >= sizeof(name) || !entry[len])
		return false;
	memcpy(name, entry, len);
	name[len] = '\0';
	for (size_t i = 0; i < c->n_env_pass; i++) {
		/* The registry credential enters only when named in full, never
		 * through a prefix like CODER_* (envbox's CODER_INNER_ENVS). */
		if (!strcmp(name, "CODER_IMAGE_PULL_SECRET") && strcmp(c->env_pass[i], name))
			continue;
		if (fnmatch(c->env_pass[i], name, 0) == 0)
			return true;
	}
	return false;
}

char **cvm_env_build(const struct cvm_config *c, char *const *image, char *const *outer)
{
	char **env = calloc(1, sizeof(char *));
	char *dup;

	if (!env)
		return NULL;
	/* container= tells systemd and friends where they run. */
	if (cvm_env_set(&env, "PATH", CVM_DEFAULT_PATH) < 0 ||
	    cvm_env_set(&env, "container", "cvm") < 0 ||
	    cvm_env_set(&env, "HOSTNAME", c->hostname) < 0)
		goto fail;
	/* The image's own Env (its PATH too), as Docker starts it; what the
	 * config passes or sets wins. */
	for (size_t i = 0; image && image[i]; i++)
		if (!(dup = strdup(image[i])) || cvm_env_put(&env, dup) < 0)
			goto fail;
	for (size_t i = 0; outer && outer[i]; i++)
		if (passed(c, outer[i]) && (!(dup = strdup(outer[i])) || cvm_env_put(&env, dup) < 0))
			goto fail;
	for (size_t i = 0; i < c->n_env; i++)
		if (!(dup = strdup(c->env[i])) || cvm_env_put(&env, dup) < 0)
			goto fail;
	return env;
fail:
	cvm_env_free(env);
	return NULL;
}
