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
#include "state.h"

static ssize_t slurp(const char *path, char *buf, size_t len);

/* ---- the workspace's load -------------------------------------------------- */

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
static void sample_load(struct cvm_procfs_server *s, bool tick)
{
	unsigned active = 0, newest = 0;

	if (!s->cfg->cg_top[0])
		return;
	s->load_running = s->load_total = 0;
	count_tasks(s->cfg->cg_top, &active, &s->load_running, &s->load_total, &newest);
	s->load_lastpid = inner_pid(newest);
	if (tick)
		cvm_loadavg_tick(&s->load, cvm_procfs_now(), active);
}

void cvm_procfs_load_start(struct cvm_procfs_server *s)
{
	s->load.last = cvm_procfs_now();
}

void cvm_procfs_load_due(struct cvm_procfs_server *s)
{
	if (cvm_procfs_now() - s->load.last >= 5.0)
		sample_load(s, true);
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
static void reader_cgroup(struct cvm_procfs_server *s, pid_t pid, char *out, size_t len)
{
	const struct cvm_procfs *p = s->cfg;
	char *mnt = s->cg_mount, path[64], line[4096];
	cleanup_file FILE *f = NULL;

	snprintf(out, len, "%s", p->cg_top);
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (!p->cg_top[0] || (!mnt[0] && cvm_cgroup_mount(mnt, sizeof(s->cg_mount)) < 0) ||
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

/* ---- the renderers: one per file, by files.h's list ------------------------ */

/* What a renderer gets: the reader's view and the CPUs it sees (each as
 * the file's flags ask), and the server for the rest. */
struct render_in {
	struct cvm_procfs_server *s;
	enum cvm_procfs_file file;
	const struct cvm_cg_view *v;
	const struct cvm_cpuset *cpus;
};
typedef ssize_t render_fn(const struct render_in *in, char *out, size_t len);

/* The host's own file of the same path, into the server's scratch buffer. */
static const char *host_file(const struct render_in *in)
{
	struct cvm_procfs_server *s = in->s;

	return slurp(cvm_procfs_files[in->file].path, s->host, sizeof(s->host)) < 0 ? NULL : s->host;
}

static ssize_t render_meminfo(const struct render_in *in, char *out, size_t len)
{
	const char *host = host_file(in);

	return host ? cvm_render_meminfo(host, in->v, out, len) : -1;
}

static ssize_t render_cpuinfo(const struct render_in *in, char *out, size_t len)
{
	const char *host = host_file(in);

	return host ? cvm_render_cpuinfo(host, in->cpus, out, len) : -1;
}

static ssize_t render_stat(const struct render_in *in, char *out, size_t len)
{
	const char *host = host_file(in);

	return host ? cvm_render_stat(host, in->cpus, out, len) : -1;
}

static ssize_t render_uptime(const struct render_in *in, char *out, size_t len)
{
	const struct timespec *start = &in->s->cfg->start;
	struct timespec now;

	clock_gettime(CLOCK_BOOTTIME, &now);
	return cvm_render_uptime((double)(now.tv_sec - start->tv_sec) +
				 (double)(now.tv_nsec - start->tv_nsec) / 1e9,
				 cvm_cpuset_count(in->cpus), (double)in->v->usage_usec / 1e6, out, len);
}

static ssize_t render_swaps(const struct render_in *in, char *out, size_t len)
{
	return cvm_render_swaps(in->v, out, len);
}

static ssize_t render_cpulist(const struct render_in *in, char *out, size_t len)
{
	return cvm_render_cpulist(in->cpus, out, len);
}

static ssize_t render_loadavg(const struct render_in *in, char *out, size_t len)
{
	struct cvm_procfs_server *s = in->s;

	sample_load(s, false);  /* running/total are of this moment */
	return cvm_render_loadavg(&s->load, s->load_running, s->load_total, s->load_lastpid, out, len);
}

static ssize_t render_diskstats(const struct render_in *in, char *out, size_t len)
{
	struct cvm_procfs_server *s = in->s;
	const char *host;

	if (cvm_cgroup_read_at(s->cfg->cg_top, "io.stat", s->io, sizeof(s->io)) < 0)
		s->io[0] = '\0';
	host = host_file(in);
	return host ? cvm_render_diskstats(host, s->io, out, len) : -1;
}

#define RENDERER(type, name, path, flags, render) [CVM_PROCFS_##type] = render_##render,
static render_fn *const renderers[CVM_PROCFS_N_FILES] = { CVM_PROCFS_FILE_LIST(RENDERER) };
#undef RENDERER

/* The reader's view and CPUs, as much of them as @flags ask for. */
static void view_for(const struct cvm_procfs *p, unsigned flags, const char *leaf,
		     struct cvm_cg_view *v, struct cvm_cpuset *cpus)
{
	char online_text[4096] = "0";
	struct cvm_cpuset online;
	struct cvm_error err = { 0 };
	unsigned what = flags & CVM_PROCFS_MEM_VIEW ? CVM_VIEW_MEM : CVM_VIEW_CPU;

	if (!p->cg_top[0] || cvm_cg_view_load(p->cg_top, leaf, what, v, &err) < 0) {
		memset(v, 0, sizeof(*v));
		v->mem_max = v->swap_max = CVM_NO_LIMIT;
	}
	if (flags & CVM_PROCFS_CPU_VIEW) {
		slurp("/sys/devices/system/cpu/online", online_text, sizeof(online_text));
		if (cvm_cpuset_parse(online_text, &online) < 0)
			cvm_cpuset_parse("0", &online);
		cvm_visible_cpus(v, &online, cpus);
	}
}

static ssize_t render(struct cvm_procfs_server *s, enum cvm_procfs_file file, const char *leaf,
		      char *out, size_t len)
{
	const struct cvm_procfs_file_info *f = &cvm_procfs_files[file];
	struct cvm_cg_view v;
	struct cvm_cpuset cpus;
	struct render_in in = { s, file, &v, &cpus };

	if (!s->cfg->cg_top[0] && (f->flags & CVM_PROCFS_HOST_FILE))
		/* No cgroup of its own (cvm not PID 1): the host's numbers. */
		return slurp(f->path, out, len);
	if (f->flags & (CVM_PROCFS_MEM_VIEW | CVM_PROCFS_CPU_VIEW))
		view_for(s->cfg, f->flags, leaf, &v, &cpus);
	return renderers[file](&in, out, len);
}

/* ---- snapshots ------------------------------------------------------------- */

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;        /* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h | 1;                               /* never 0: 0 is "none" */
}

const struct cvm_procfs_leaf *cvm_procfs_reader(struct cvm_procfs_server *s, pid_t pid, double now)
{
	struct cvm_procfs_leaf *cache = s->leaves;

	for (size_t i = 0; i < CVM_PROCFS_N_LEAVES; i++)
		if (cache[i].key && cache[i].pid == pid && now - cache[i].at < CVM_PROCFS_TTL)
			return &cache[i];
	struct cvm_procfs_leaf *e = &cache[s->next_leaf++ % CVM_PROCFS_N_LEAVES];
	reader_cgroup(s, pid, e->path, sizeof(e->path));
	e->pid = pid;
	e->at = now;
	e->key = hash(e->path);
	return e;
}

size_t cvm_procfs_last_len(const struct cvm_procfs_server *s, enum cvm_procfs_file file)
{
	/* a failed render leaves the last good one's length */
	return (unsigned)file < CVM_PROCFS_N_FILES ? s->snaps[file].len : 0;
}

const struct cvm_procfs_snapshot *cvm_procfs_snapshot(struct cvm_procfs_server *s,
						      enum cvm_procfs_file file,
						      const struct cvm_procfs_leaf *e, double now)
{
	struct cvm_procfs_snapshot *snap = &s->snaps[file];
	ssize_t n;

	if (snap->key == e->key && now - snap->at < CVM_PROCFS_TTL)
		return snap;
	snap->key = 0;
	n = render(s, file, e->path, snap->data, sizeof(snap->data) - 1);
	if (n < 0)
		return NULL;
	snap->data[n] = '\0';         /* for cvm_procfs_sysinfo's parsing */
	snap->len = (size_t)n;
	snap->key = e->key;
	snap->at = now;
	return snap;
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

int cvm_procfs_sysinfo(struct cvm_procfs_server *s, pid_t pid, struct sysinfo *si)
{
	const struct cvm_procfs *p = s->cfg;
	double now = cvm_procfs_now();
	const struct cvm_procfs_snapshot *m =
		cvm_procfs_snapshot(s, CVM_PROCFS_MEMINFO, cvm_procfs_reader(s, pid, now), now);
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
		if (!s->load_total)
			sample_load(s, false);
		for (int i = 0; i < 3; i++)
			si->loads[i] = s->load.avg[i] << 5;    /* FSHIFT 11 -> SI_LOAD_SHIFT 16 */
		si->procs = (unsigned short)(s->load_total > 0xffff ? 0xffff : s->load_total);
	}
	return 0;
}
