#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "envlist.h"

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

int cvm_env_put(char ***env, char *entry)
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
	return cvm_env_put(env, entry);
}

const char *cvm_env_get(char *const *env, const char *name)
{
	ssize_t i = env_find(env, name, strlen(name));
	return i < 0 ? NULL : env[i] + strlen(name) + 1;
}

void cvm_env_free(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}
