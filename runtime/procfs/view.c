/* What a reader sees: the virtual files rendered for one reader's cgroup,
 * reused for a moment, the workspace's load, and sysinfo(2)'s values from
 * the same renders. The protocol side (server.c) serves these. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "runtime/cleanup.h"
#include "render.h"
#include "server.h"
#include "view.h"

#define N_FILES CVM_PROCFS_N_FILES

static ssize_t slurp(const char *path, char *buf, size_t len);

/* ---- the workspace's load -------------------------------------------------- */

static struct cvm_loadavg load;
static unsigned load_running, load_total, load_lastpid;

double cvm_procfs_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_BOOTTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Tasks of the group and every group below: running (R) and in
 * uninterruptible sleep (D) count as load, as in the kernel. */
static void count_tasks(const char *dir, unsigned *active, unsigned *running, unsigned *total,
			unsigned *newest)
{
	char path[4400], stat[512], line[32];
	cleanup_file FILE *f = NULL;
	cleanup_dir DIR *d = opendir(dir);
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/cgroup.threads", dir);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned tid = (unsigned)strtoul(line, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%u/stat", tid);
		if (slurp(path, stat, sizeof(stat)) < 0 || !strrchr(stat, ')'))
			continue;
		char state = strrchr(stat, ')')[2];
		(*total)++;
		*running += state == 'R';
		*active += state == 'R' || state == 'D';
		if (tid > *newest)
			*newest = tid;
	}
	while (d && (de = readdir(d)))
		if (de->d_type == DT_DIR && de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			count_tasks(path, active, running, total, newest);
		}
}

/* The newest task's pid as the workspace numbers it (last of NSpid). */
static unsigned inner_pid(unsigned pid)
{
	char path[64], status[4096];
	const char *ns;

	snprintf(path, sizeof(path), "/proc/%u/status", pid);
	if (!pid || slurp(path, status, sizeof(status)) < 0 || !(ns = strstr(status, "NSpid:")))
		return pid;
	const char *end = strchr(ns, '\n'), *last = ns + 6;
	for (const char *c = ns + 6; c < end; c++)
		if (*c == '\t' || *c == ' ')
			last = c + 1;
	return (unsigned)strtoul(last, NULL, 10);
}

/* Count now; with @tick, also apply the 5 s ticks that are due. */
static void sample_load(const struct cvm_procfs *p, bool tick)
{
	unsigned active = 0, newest = 0;

	if (!p->cg_top[0])
		return;
	load_running = load_total = 0;
	count_tasks(p->cg_top, &active, &load_running, &load_total, &newest);
	load_lastpid = inner_pid(newest);
	if (tick)
		cvm_loadavg_tick(&load, cvm_procfs_now(), active);
}

void cvm_procfs_load_start(void)
{
	load.last = cvm_procfs_now();
}

void cvm_procfs_load_due(const struct cvm_procfs *p)
{
	if (cvm_procfs_now() - load.last >= 5.0)
		sample_load(p, true);
}

static ssize_t slurp(const char *path, char *buf, size_t len)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t used = 0;
	ssize_t n = 0;

	if (fd < 0)
		return -1;
	while (used + 1 < len && (n = read(fd, buf + used, len - 1 - used)) > 0)
		used += (size_t)n;
	buf[used] = '\0';
	return n < 0 ? -1 : (ssize_t)used;
}

int cvm_procfs_task_cpu(pid_t pid)
{
	char path[32], stat[1024], *s;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (slurp(path, stat, sizeof(stat)) < 0 || !(s = strrchr(stat, ')')))
		return -1;      /* comm may hold spaces and parentheses: after the last ')' */
	for (int field = 2; field < 39; field++)
		if (!(s = strchr(s + 1, ' ')))
			return -1;
	return atoi(s + 1);
}

/* The reader's own group, if it is inside the workspace's. */
static void reader_cgroup(const struct cvm_procfs *p, pid_t pid, char *out, size_t len)
{
	static char mnt[4096];        /* found once: mountinfo is long */
	char path[64], line[4096];
	cleanup_file FILE *f = NULL;

	snprintf(out, len, "%s", p->cg_top);
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (!p->cg_top[0] || (!mnt[0] && cvm_cgroup_mount(mnt, sizeof(mnt)) < 0) ||
	    !(f = fopen(path, "re")))
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			char full[8300];
			line[strcspn(line, "\n")] = '\0';
			snprintf(full, sizeof(full), "%s%s", mnt, line + 3);
			size_t tl = strlen(p->cg_top);
			if (!strncmp(full, p->cg_top, tl) && (!full[tl] || full[tl] == '/') &&
			    strlen(full) < len)
				memcpy(out, full, strlen(full) + 1);
		}
}

static ssize_t render(const struct cvm_procfs *p, unsigned file, const char *leaf, char *out,
		      size_t len)
{
	static char host[CVM_PROCFS_MAX_FILE];
	char online_text[4096] = "0";
	struct cvm_cg_view v;
	struct cvm_cpuset online, cpus;
	struct cvm_error err = { 0 };
	struct timespec now;

	static const char *const host_files[] = { "/proc/meminfo", "/proc/cpuinfo", "/proc/stat",
		NULL, "/proc/swaps", NULL, "/proc/loadavg", "/proc/diskstats" };

	if (!p->cg_top[0] && host_files[file])
		/* No cgroup of its own (cvm not PID 1): the host's numbers. */
		return slurp(host_files[file], out, len);
	if (file == 6) {
		sample_load(p, false);  /* running/total are of this moment */
		return cvm_render_loadavg(&load, load_running, load_total, load_lastpid, out, len);
	}
	if (file == 7) {
		static char io[CVM_PROCFS_MAX_FILE];
		if (cvm_cgroup_read_at(p->cg_top, "io.stat", io, sizeof(io)) < 0)
			io[0] = '\0';
		return slurp("/proc/diskstats", host, sizeof(host)) < 0 ? -1 :
			cvm_render_diskstats(host, io, out, len);
	}
	if (!p->cg_top[0] || cvm_cg_view_load(p->cg_top, leaf, file == 0 || file == 4 ?
					      CVM_VIEW_MEM : CVM_VIEW_CPU, &v, &err) < 0) {
		memset(&v, 0, sizeof(v));
		v.mem_max = v.swap_max = CVM_NO_LIMIT;
	}
	if (file != 0 && file != 4) {
		slurp("/sys/devices/system/cpu/online", online_text, sizeof(online_text));
		if (cvm_cpuset_parse(online_text, &online) < 0)
			cvm_cpuset_parse("0", &online);
		cvm_visible_cpus(&v, &online, &cpus);
	}
	switch (file) {
	case 0: return slurp("/proc/meminfo", host, sizeof(host)) < 0 ? -1 :
		cvm_render_meminfo(host, &v, out, len);
	case 1: return slurp("/proc/cpuinfo", host, sizeof(host)) < 0 ? -1 :
		cvm_render_cpuinfo(host, &cpus, out, len);
	case 2: return slurp("/proc/stat", host, sizeof(host)) < 0 ? -1 :
		cvm_render_stat(host, &cpus, out, len);
	case 3:
		clock_gettime(CLOCK_BOOTTIME, &now);
		return cvm_render_uptime((double)(now.tv_sec - p->start.tv_sec) +
					 (double)(now.tv_nsec - p->start.tv_nsec) / 1e9,
					 cvm_cpuset_count(&cpus), (double)v.usage_usec / 1e6, out, len);
	case 4: return cvm_render_swaps(&v, out, len);
	default: return cvm_render_cpulist(&cpus, out, len);
	}
}

/* ---- snapshots ------------------------------------------------------------- */

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;        /* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h | 1;                               /* never 0: 0 is "none" */
}

const struct cvm_procfs_leaf *cvm_procfs_reader(const struct cvm_procfs *p, pid_t pid, double now)
{
	static struct cvm_procfs_leaf cache[16];
	static unsigned next;

	for (size_t i = 0; i < 16; i++)
		if (cache[i].key && cache[i].pid == pid && now - cache[i].at < CVM_PROCFS_TTL)
			return &cache[i];
	struct cvm_procfs_leaf *e = &cache[next++ % 16];
	reader_cgroup(p, pid, e->path, sizeof(e->path));
	e->pid = pid;
	e->at = now;
	e->key = hash(e->path);
	return e;
}

static size_t last_len[N_FILES];   /* per file: the length of the last snapshot */

size_t cvm_procfs_last_len(unsigned file)
{
	return file < N_FILES ? last_len[file] : 0;
}

const struct cvm_procfs_snapshot *cvm_procfs_snapshot(const struct cvm_procfs *p, unsigned file,
						      const struct cvm_procfs_leaf *e, double now)
{
	static struct cvm_procfs_snapshot snaps[N_FILES];
	struct cvm_procfs_snapshot *s = &snaps[file];
	ssize_t n;

	if (s->key == e->key && now - s->at < CVM_PROCFS_TTL)
		return s;
	s->key = 0;
	n = render(p, file, e->path, s->data, sizeof(s->data) - 1);
	if (n < 0)
		return NULL;
	s->data[n] = '\0';            /* for cvm_procfs_sysinfo's parsing */
	s->len = (size_t)n;
	s->key = e->key;
	s->at = now;
	last_len[file] = s->len;
	return s;
}

/* ---- sysinfo(2) ---------------------------------------------------------------- */

static unsigned long meminfo_bytes(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, kl) && l[kl] == ':')
			return strtoul(l + kl + 1, NULL, 10) * 1024;
	return 0;
}

int cvm_procfs_sysinfo(const struct cvm_procfs *p, pid_t pid, struct sysinfo *si)
{
	double now = cvm_procfs_now();
	const struct cvm_procfs_snapshot *m = cvm_procfs_snapshot(p, 0, cvm_procfs_reader(p, pid, now),
								  now);
	struct timespec t;

	if (!m || sysinfo(si) < 0)      /* ours is the host's: loads and procs without a cgroup */
		return -1;
	si->mem_unit = 1;
	si->totalram = meminfo_bytes(m->data, "MemTotal");
	si->freeram = meminfo_bytes(m->data, "MemFree");
	si->sharedram = meminfo_bytes(m->data, "Shmem");
	si->bufferram = meminfo_bytes(m->data, "Buffers");
	si->totalswap = meminfo_bytes(m->data, "SwapTotal");
	si->freeswap = meminfo_bytes(m->data, "SwapFree");
	si->totalhigh = si->freehigh = 0;
	/* Whole seconds, rounded up as the kernel does. */
	clock_gettime(CLOCK_BOOTTIME, &t);
	t.tv_sec -= p->start.tv_sec;
	t.tv_nsec -= p->start.tv_nsec;
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000L;
	}
	si->uptime = t.tv_sec + (t.tv_nsec > 0);
	if (p->cg_top[0]) {
		if (!load_total)
			sample_load(p, false);
		for (int i = 0; i < 3; i++)
			si->loads[i] = load.avg[i] << 5;    /* FSHIFT 11 -> SI_LOAD_SHIFT 16 */
		si->procs = (unsigned short)(load_total > 0xffff ? 0xffff : load_total);
	}
	return 0;
}
