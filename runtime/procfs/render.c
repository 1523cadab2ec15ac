#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

struct out {
	char *buf;
	size_t len, used;
	bool overflow;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used)
		o->overflow = true;
	else
		o->used += (size_t)n;
}

static ssize_t done(const struct out *o)
{
	return o->overflow ? -1 : (ssize_t)o->used;
}

void cvm_visible_cpus(const struct cvm_cg_view *v, const struct cvm_cpuset *host_online,
		      struct cvm_cpuset *out)
{
	*out = v->has_cpuset ? v->cpus : *host_online;
	if (v->cpu_limit > 0)
		cvm_cpuset_limit(out, (unsigned)ceil(v->cpu_limit - 1e-9));
}

/* ---- /proc/meminfo --------------------------------------------------------- */

static uint64_t host_kb(const char *host, const char *key)
{
	const char *p = strstr(host, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* The value of one meminfo key in kB, or false to pass the host's through. */
static bool mem_value(const char *key, const char *host, const struct cvm_cg_view *v,
		      uint64_t *kb)
{
	uint64_t total = min_u64(host_kb(host, "MemTotal:"), v->mem_max / 1024);
	uint64_t used = min_u64(v->mem_current / 1024, total);
	uint64_t swap_total = min_u64(host_kb(host, "SwapTotal:"), v->swap_max / 1024);
	/* Page cache can be dropped, so like the kernel count it as available. */
	uint64_t avail = min_u64(total, total - used + (v->active_file + v->inactive_file) / 1024);
	const struct { const char *k; uint64_t v; } tab[] = {
		{ "MemTotal", total }, { "MemFree", total - used }, { "MemAvailable", avail },
		{ "Buffers", 0 }, { "Cached", v->file / 1024 }, { "SwapCached", 0 },
		{ "Active", (v->active_anon + v->active_file) / 1024 },
		{ "Inactive", (v->inactive_anon + v->inactive_file) / 1024 },
		{ "Active(anon)", v->active_anon / 1024 }, { "Inactive(anon)", v->inactive_anon / 1024 },
		{ "Active(file)", v->active_file / 1024 }, { "Inactive(file)", v->inactive_file / 1024 },
		{ "SwapTotal", swap_total },
		{ "SwapFree", swap_total - min_u64(v->swap_current / 1024, swap_total) },
		{ "AnonPages", v->anon / 1024 }, { "Mapped", v->file_mapped / 1024 },
		{ "Shmem", v->shmem / 1024 }, { "Slab", v->slab / 1024 },
		{ "SReclaimable", v->slab_reclaimable / 1024 },
		{ "SUnreclaim", v->slab_unreclaimable / 1024 },
		{ "KernelStack", v->kernel_stack / 1024 }, { "PageTables", v->pagetables / 1024 },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcmp(key, tab[i].k)) {
			*kb = tab[i].v;
			return true;
		}
	return false;
}

ssize_t cvm_render_meminfo(const char *host, const struct cvm_cg_view *v, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	const char *line = host;

	/* The host's lines in the host's order; the ones a cgroup knows about
	 * get the workspace's numbers, in the kernel's layout. */
	while (*line) {
		const char *nl = strchr(line, '\n'), *colon = strchr(line, ':');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		char key[64];
		uint64_t kb;

		if (colon && colon < line + n && (size_t)(colon - line) < sizeof(key)) {
			snprintf(key, sizeof(key), "%.*s", (int)(colon - line), line);
			if (mem_value(key, host, v, &kb)) {
				char label[80];
				snprintf(label, sizeof(label), "%s:", key);
				put(&o, "%-16s%8llu kB\n", label, (unsigned long long)kb);
			} else
				put(&o, "%.*s\n", (int)n, line);
		}
		line += n + (nl ? 1 : 0);
	}
	return done(&o);
}

/* ---- /proc/cpuinfo and /proc/stat ------------------------------------------ */

/* The block of host processor @cpu in /proc/cpuinfo ("processor\t: N"). */
static const char *cpu_block(const char *host, unsigned cpu, size_t *n)
{
	for (const char *p = host; (p = strstr(p, "processor")); p++) {
		if (p != host && p[-1] != '\n')
			continue;
		const char *colon = strchr(p, ':');
		if (!colon || strtoul(colon + 1, NULL, 10) != cpu)
			continue;
		const char *end = strstr(p, "\n\n");
		*n = end ? (size_t)(end - p) + 2 : strlen(p);
		return p;
	}
	return NULL;
}

ssize_t cvm_render_cpuinfo(const char *host, const struct cvm_cpuset *cpus, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	unsigned shown = 0;

	/* Renumbered from 0: tools count "processor" lines and index by them. */
	for (unsigned cpu = 0; cpu < CVM_MAX_CPUS; cpu++) {
		size_t n;
		const char *b;
		if (!cvm_cpuset_has(cpus, cpu) || !(b = cpu_block(host, cpu, &n)))
			continue;
		const char *rest = strchr(b, '\n');
		if (!rest || rest >= b + n)     /* a host file cut after "processor" */
			rest = b + n - 1;
		put(&o, "processor\t: %u\n%.*s", shown++, (int)(n - (size_t)(rest + 1 - b)), rest + 1);
	}
	return done(&o);
}

ssize_t cvm_render_stat(const char *host, const struct cvm_cpuset *cpus, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	unsigned long long sum[10] = { 0 };
	unsigned shown = 0;
	const char *line;

	/* Per-CPU lines of the visible CPUs, renumbered; the aggregate line is
	 * their sum, so that tools computing shares stay consistent. */
	for (line = host; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		unsigned cpu;
		unsigned long long f[10] = { 0 };
		if (sscanf(line, "cpu%u %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &cpu,
			   &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9]) < 5 ||
		    !cvm_cpuset_has(cpus, cpu))
			continue;
		for (int i = 0; i < 10; i++)
			sum[i] += f[i];
	}
	put(&o, "cpu  %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu\n", sum[0], sum[1], sum[2],
	    sum[3], sum[4], sum[5], sum[6], sum[7], sum[8], sum[9]);
	for (line = host; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		unsigned cpu;
		const char *nl = strchr(line, '\n');
		int n = nl ? (int)(nl - line) : (int)strlen(line);
		if (!strncmp(line, "cpu ", 4))
			continue;
		if (sscanf(line, "cpu%u", &cpu) == 1) {
			if (cvm_cpuset_has(cpus, cpu)) {
				const char *sp = strchr(line, ' ');
				put(&o, "cpu%u%.*s\n", shown++, (int)(n - (sp - line)), sp);
			}
			continue;
		}
		put(&o, "%.*s\n", n, line);
	}
	return done(&o);
}

ssize_t cvm_render_cpulist(const struct cvm_cpuset *cpus, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	unsigned n = cvm_cpuset_count(cpus);

	/* Renumbered like cpuinfo: the workspace's CPUs are 0..n-1. */
	put(&o, n > 1 ? "0-%u\n" : "0\n", n - 1);
	return done(&o);
}

ssize_t cvm_render_swaps(const struct cvm_cg_view *v, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };

	put(&o, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
	if (v->swap_max != CVM_NO_LIMIT && v->swap_max > 0)
		put(&o, "%-40s%-16s%-16llu%-16llu%d\n", "none", "virtual",
		    (unsigned long long)(v->swap_max / 1024),
		    (unsigned long long)(v->swap_current / 1024), 0);
	return done(&o);
}

ssize_t cvm_render_uptime(double up, unsigned ncpus, double busy, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	double idle = up * (ncpus ? ncpus : 1) - busy;

	/* As on a machine of the workspace's size: idle + busy = uptime * CPUs. */
	put(&o, "%.2f %.2f\n", up, idle > 0 ? idle : 0);
	return done(&o);
}

/* ---- /proc/diskstats --------------------------------------------------------- */

static unsigned long long io_field(const char *line, const char *key)
{
	const char *p = strstr(line, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

ssize_t cvm_render_diskstats(const char *host, const char *io_stat, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };

	for (const char *line = host; line && *line;) {
		unsigned maj, min;
		char name[64], key[32];
		const char *nl = strchr(line, '\n');
		if (sscanf(line, "%u %u %63s", &maj, &min, name) == 3) {
			/* this device's line of io.stat, if the workspace did I/O on it */
			snprintf(key, sizeof(key), "%u:%u ", maj, min);
			const char *io = io_stat;
			while (io && *io && strncmp(io, key, strlen(key))) {
				io = strchr(io, '\n');
				io = io ? io + 1 : NULL;
			}
			char one[512] = "";
			if (io && *io)
				snprintf(one, sizeof(one), "%.*s", (int)strcspn(io, "\n"), io);
			put(&o, "%4u %7u %s %llu 0 %llu 0 %llu 0 %llu 0 0 0 0 %llu 0 %llu 0 0 0\n", maj, min,
			    name, io_field(one, "rios="), io_field(one, "rbytes=") / 512,
			    io_field(one, "wios="), io_field(one, "wbytes=") / 512,
			    io_field(one, "dios="), io_field(one, "dbytes=") / 512);
		}
		line = nl ? nl + 1 : NULL;
	}
	return done(&o);
}

/* ---- /proc/loadavg -------------------------------------------------------------- */

#define LOAD_FIXED_1 2048UL
static const unsigned long load_exp[3] = { 1884, 2014, 2037 };     /* 1, 5, 15 min */

void cvm_loadavg_tick(struct cvm_loadavg *l, double now, unsigned active)
{
	/* The kernel's calc_load(), once per 5 s that passed; a long quiet gap
	 * is decayed tick by tick, as it would have been. */
	while (now - l->last >= 5.0) {
		for (int i = 0; i < 3; i++) {
			unsigned long a = l->avg[i] * load_exp[i] +
					  active * LOAD_FIXED_1 * (LOAD_FIXED_1 - load_exp[i]);
			if (active * LOAD_FIXED_1 >= l->avg[i])
				a += LOAD_FIXED_1 - 1;
			l->avg[i] = a / LOAD_FIXED_1;
		}
		l->last += 5.0;
	}
}

ssize_t cvm_render_loadavg(const struct cvm_loadavg *l, unsigned running, unsigned total,
			   unsigned lastpid, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	unsigned long v[3];

	for (int i = 0; i < 3; i++)
		v[i] = l->avg[i] + LOAD_FIXED_1 / 200;  /* rounding, like the kernel's */
	put(&o, "%lu.%02lu %lu.%02lu %lu.%02lu %u/%u %u\n",
	    v[0] >> 11, ((v[0] & (LOAD_FIXED_1 - 1)) * 100) >> 11,
	    v[1] >> 11, ((v[1] & (LOAD_FIXED_1 - 1)) * 100) >> 11,
	    v[2] >> 11, ((v[2] & (LOAD_FIXED_1 - 1)) * 100) >> 11, running, total, lastpid);
	return done(&o);
}
