#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "cgview.h"

int cvm_cpuset_parse(const char *s, struct cvm_cpuset *out)
{
	memset(out, 0, sizeof(*out));
	while (*s && *s != '\n') {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;
		if (end == s)
			return -1;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s)
				return -1;
		}
		if (a > b || b >= CVM_MAX_CPUS)
			return -1;
		for (unsigned long i = a; i <= b; i++)
			out->bits[i / 64] |= 1ULL << (i % 64);
		s = end;
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -1;
	}
	return 0;
}

bool cvm_cpuset_has(const struct cvm_cpuset *c, unsigned cpu)
{
	return cpu < CVM_MAX_CPUS && (c->bits[cpu / 64] >> (cpu % 64)) & 1;
}

unsigned cvm_cpuset_count(const struct cvm_cpuset *c)
{
	unsigned n = 0;
	for (size_t i = 0; i < CVM_MAX_CPUS / 64; i++)
		n += (unsigned)__builtin_popcountll(c->bits[i]);
	return n;
}

void cvm_cpuset_limit(struct cvm_cpuset *c, unsigned n)
{
	unsigned seen = 0;
	for (unsigned i = 0; i < CVM_MAX_CPUS; i++)
		if (cvm_cpuset_has(c, i) && ++seen > n)
			c->bits[i / 64] &= ~(1ULL << (i % 64));
}

void cvm_cpuset_format(const struct cvm_cpuset *c, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < CVM_MAX_CPUS && used < len; i++) {
		if (!cvm_cpuset_has(c, i))
			continue;
		unsigned j = i;
		while (j + 1 < CVM_MAX_CPUS && cvm_cpuset_has(c, j + 1))
			j++;
		used += (size_t)snprintf(buf + used, len - used, j > i ? "%s%u-%u" : "%s%u",
					 used ? "," : "", i, j);
		i = j;
	}
}

/* "max" or a number; CVM_NO_LIMIT when missing or "max". */
static uint64_t read_limit(const char *dir, const char *file)
{
	char buf[64];
	if (cvm_cgroup_read_at(dir, file, buf, sizeof(buf)) < 0 || !strncmp(buf, "max", 3))
		return CVM_NO_LIMIT;
	return strtoull(buf, NULL, 10);
}

static uint64_t read_u64(const char *dir, const char *file)
{
	char buf[64];
	return cvm_cgroup_read_at(dir, file, buf, sizeof(buf)) < 0 ? 0 : strtoull(buf, NULL, 10);
}

/* "quota period" -> CPUs, 0 for "max" or a missing file */
static double read_cpu_max(const char *dir)
{
	char buf[64];
	unsigned long long quota, period;
	if (cvm_cgroup_read_at(dir, "cpu.max", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%llu %llu", &quota, &period) != 2 || period == 0)
		return 0;
	return (double)quota / (double)period;
}

static void read_keyed(const char *dir, const char *file, const char *const *keys,
		       uint64_t *const *vals, size_t n)
{
	char buf[8192], *save = NULL;

	if (cvm_cgroup_read_at(dir, file, buf, sizeof(buf)) < 0)
		return;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		for (size_t i = 0; i < n; i++)
			if (!strcmp(line, keys[i]))
				*vals[i] = strtoull(sp + 1, NULL, 10);
	}
}

static void load_stats(const char *leaf, unsigned what, struct cvm_cg_view *v)
{
	static const char *const mkeys[] = {
		"anon", "file", "shmem", "file_mapped", "slab", "slab_reclaimable",
		"slab_unreclaimable", "active_anon", "inactive_anon", "active_file",
		"inactive_file", "kernel_stack", "pagetables",
	};
	uint64_t *const mvals[] = {
		&v->anon, &v->file, &v->shmem, &v->file_mapped, &v->slab, &v->slab_reclaimable,
		&v->slab_unreclaimable, &v->active_anon, &v->inactive_anon, &v->active_file,
		&v->inactive_file, &v->kernel_stack, &v->pagetables,
	};
	static const char *const ckeys[] = { "usage_usec", "user_usec", "system_usec" };
	uint64_t *const cvals[] = { &v->usage_usec, &v->user_usec, &v->system_usec };
	char buf[4096];

	if (what & CVM_VIEW_MEM) {
		read_keyed(leaf, "memory.stat", mkeys, mvals, sizeof(mkeys) / sizeof(mkeys[0]));
		v->mem_current = read_u64(leaf, "memory.current");
		v->swap_current = read_u64(leaf, "memory.swap.current");
	}
	if (!(what & CVM_VIEW_CPU))
		return;
	read_keyed(leaf, "cpu.stat", ckeys, cvals, 3);
	if (cvm_cgroup_read_at(leaf, "cpuset.cpus.effective", buf, sizeof(buf)) == 0 &&
	    cvm_cpuset_parse(buf, &v->cpus) == 0 && cvm_cpuset_count(&v->cpus) > 0)
		v->has_cpuset = true;
}

int cvm_cg_view_load(const char *top, const char *leaf, unsigned what, struct cvm_cg_view *v,
		     struct cvm_error *err)
{
	char dir[4096];
	size_t top_len = strlen(top);

	memset(v, 0, sizeof(*v));
	v->mem_max = v->swap_max = CVM_NO_LIMIT;
	if (strncmp(leaf, top, top_len) || (leaf[top_len] && leaf[top_len] != '/') ||
	    strlen(leaf) >= sizeof(dir))
		return cvm_error_set(err, EINVAL, "cgroup %s is not inside %s", leaf, top);
	load_stats(leaf, what, v);
	/* The tightest limit on the way up counts: a group inside the
	 * workspace can only narrow what the workspace has. */
	strcpy(dir, leaf);
	for (;;) {
		uint64_t m = CVM_NO_LIMIT, s = CVM_NO_LIMIT;
		double c = 0;
		if (what & CVM_VIEW_MEM) {
			m = read_limit(dir, "memory.max");
			s = read_limit(dir, "memory.swap.max");
		}
		if (what & CVM_VIEW_CPU)
			c = read_cpu_max(dir);
		if (m < v->mem_max)
			v->mem_max = m;
		if (s < v->swap_max)
			v->swap_max = s;
		if (c > 0 && (v->cpu_limit == 0 || c < v->cpu_limit))
			v->cpu_limit = c;
		if (strlen(dir) <= top_len)
			break;
		*strrchr(dir, '/') = '\0';
	}
	return 0;
}
