#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

static size_t env_len(char *const *env)
{
	size_t n = 0;
	while (env && env[n])
		n++;
	return n;
}

static ssize_t env_find(char *const *env, const char *name, size_t name_len)
{
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, name_len) && env[i][name_len] == '=')
			return (ssize_t)i;
	return -1;
}

/* Put the NAME=VALUE string @entry (taken over) into *@env. */
static int env_put(char ***env, char *entry)
{
	size_t name_len = strcspn(entry, "=");
	ssize_t i = env_find(*env, entry, name_len);
	size_t n = env_len(*env);
	char **grown;

	if (i >= 0) {
		free((*env)[i]);
		(*env)[i] = entry;
		return 0;
	}
	grown = realloc(*env, (n + 2) * sizeof(char *));
	if (!grown) {
		free(entry);
		return -1;
	}
	grown[n] = entry;
	grown[n + 1] = NULL;
	*env = grown;
	return 0;
}

int cvm_env_set(char ***env, const char *name, const char *value)
{
	char *entry;

	if (asprintf(&entry, "%s=%s", name, value) < 0)
		return -1;
	return env_put(env, entry);
}

const char *cvm_env_get(char *const *env, const char *name)
{
	ssize_t i = env_find(env, name, strlen(name));
	return i < 0 ? NULL : env[i] + strlen(name) + 1;
}

static bool passed(const struct cvm_config *c, const char *entry)
{
	char name[256];
	size_t len = strcspn(entry, "=");

	if (len >= sizeof(name) || !entry[len])
		return false;
	memcpy(name, entry, len);
	name[len] = '\0';
	for (size_t i = 0; i < c->n_env_pass; i++)
		if (fnmatch(c->env_pass[i], name, 0) == 0)
			return true;
	return false;
}

char **cvm_env_build(const struct cvm_config *c, char *const *outer)
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
	for (size_t i = 0; outer && outer[i]; i++)
		if (passed(c, outer[i]) && (!(dup = strdup(outer[i])) || env_put(&env, dup) < 0))
			goto fail;
	for (size_t i = 0; i < c->n_env; i++)
		if (!(dup = strdup(c->env[i])) || env_put(&env, dup) < 0)
			goto fail;
	return env;
fail:
	cvm_env_free(env);
	return NULL;
}

void cvm_env_free(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}
