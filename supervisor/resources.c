#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources.h"
#include "runtime/cleanup.h"

/* The outer container's own limit, as Kubernetes set it on its cgroup:
 * "auto" copies it down so that it shows inside as well (envbox had to be
 * told to copy cpu.max by hand). "max" or no file: nothing to copy. */
static bool outer_limit(const char *dir, const char *file, char *buf, size_t len)
{
	char path[4400];
	cleanup_file FILE *f = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f || !fgets(buf, (int)len, f))
		return false;
	buf[strcspn(buf, "\n")] = '\0';
	return strncmp(buf, "max", 3) != 0;
}

static void add(struct cvm_cg_limit *out, size_t *n, const char *key, const char *file,
		bool explicit_, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(struct cvm_cg_limit *out, size_t *n, const char *key, const char *file,
		bool explicit_, const char *fmt, ...)
{
	va_list ap;

	if (*n >= CVM_MAX_LIMITS)
		return;
	out[*n] = (struct cvm_cg_limit){ .key = key, .file = file, .explicit_ = explicit_ };
	va_start(ap, fmt);
	vsnprintf(out[*n].value, sizeof(out[*n].value), fmt, ap);
	va_end(ap);
	(*n)++;
}

size_t cvm_resources_plan(const struct cvm_config *c, const char *outer_dir,
			  struct cvm_cg_limit out[CVM_MAX_LIMITS])
{
	char buf[64];
	uint64_t size;
	size_t n = 0;

	if (!strcmp(c->res_cpus, "auto")) {
		if (outer_limit(outer_dir, "cpu.max", buf, sizeof(buf)))
			add(out, &n, "cpus", "cpu.max", false, "%s", buf);
	} else if (strcmp(c->res_cpus, "none") != 0)
		add(out, &n, "cpus", "cpu.max", true, "%.0f 100000", strtod(c->res_cpus, NULL) * 100000);
	if (!strcmp(c->res_memory, "auto")) {
		if (outer_limit(outer_dir, "memory.max", buf, sizeof(buf)))
			add(out, &n, "memory", "memory.max", false, "%s", buf);
	} else if (strcmp(c->res_memory, "none") != 0 && cvm_parse_size(c->res_memory, &size) == 0)
		add(out, &n, "memory", "memory.max", true, "%llu", (unsigned long long)size);
	if (c->res_memory_high && cvm_parse_size(c->res_memory_high, &size) == 0)
		add(out, &n, "memory_high", "memory.high", true, "%llu", (unsigned long long)size);
	if (c->res_swap && cvm_parse_size(c->res_swap, &size) == 0)
		add(out, &n, "swap", "memory.swap.max", true, "%llu", (unsigned long long)size);
	if (c->res_pids)
		add(out, &n, "pids", "pids.max", true, "%s", c->res_pids);
	if (c->res_cpuset)
		add(out, &n, "cpuset", "cpuset.cpus", true, "%s", c->res_cpuset);
	if (c->res_io_weight)
		add(out, &n, "io_weight", "io.weight", true, "default %s", c->res_io_weight);
	return n;
}
