#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "runtime/cleanup.h"
#include "runtime/notify.h"
#include "runtime/syscalls.h"
#include "fuse_abi.h"
#include "render.h"
#include "server.h"

#define MAX_FILE (256 * 1024)
#define MAX_OPENS 4096
#define REQ_SIZE (1 << 20)

static const char *const names[] = { CVM_PROCFS_FILES };
#define N_FILES (sizeof(names) / sizeof(names[0]))

static const char *const targets[] = {
	"/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime", "/proc/swaps",
	"/sys/devices/system/cpu/online", "/proc/loadavg", "/proc/diskstats",
};

const char *cvm_procfs_target(const char *name)
{
	for (size_t i = 0; i < N_FILES; i++)
		if (!strcmp(names[i], name))
			return targets[i];
	return NULL;
}

/* One open file: the content as rendered at its last read at offset 0,
 * so that reads at any offset and of any size are slices of one snapshot,
 * and a reader that keeps the file open and reads it again from the start
 * (procps: top, vmstat and free -s lseek to 0 and read) gets new numbers,
 * as from the kernel's own seq_file. */
struct handle {
	bool rendered;          /* by this server (one that died took its own) */
	char *data;
	size_t len, cap;
};
static struct handle handles[MAX_OPENS];        /* by open slot (below) */
static size_t last_len[N_FILES];   /* per file: the length of the last snapshot */

static ssize_t slurp(const char *path, char *buf, size_t len);

/* ---- the workspace's load -------------------------------------------------- */

static struct cvm_loadavg load;
static unsigned load_running, load_total, load_lastpid;

static double boottime(void)
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
		cvm_loadavg_tick(&load, boottime(), active);
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
	static char host[MAX_FILE];
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
		static char io[MAX_FILE];
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

/* How long a render (and the reader -> cgroup lookup) is reused: below the
 * resolution of what the files print (uptime and CPU times in 1/100 s) and
 * far below how often the kernel folds its own per-CPU memory counters
 * (vm.stat_interval, 1 s), so no reader can tell, while a loop of opens
 * costs one render per 10 ms instead of one per open. */
#define TTL 0.010

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;        /* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h | 1;                               /* never 0: 0 is "none" */
}

/* The reader's cgroup, by the pid the request came from. */
struct leaf {
	pid_t pid;
	double at;
	uint64_t key;
	char path[4096];
};

static const struct leaf *reader_leaf(const struct cvm_procfs *p, pid_t pid, double now)
{
	static struct leaf cache[16];
	static unsigned next;

	for (size_t i = 0; i < 16; i++)
		if (cache[i].key && cache[i].pid == pid && now - cache[i].at < TTL)
			return &cache[i];
	struct leaf *e = &cache[next++ % 16];
	reader_cgroup(p, pid, e->path, sizeof(e->path));
	e->pid = pid;
	e->at = now;
	e->key = hash(e->path);
	return e;
}

struct snapshot {
	uint64_t key;           /* whose: the reader cgroup's hash */
	double at;              /* rendered then (CLOCK_BOOTTIME) */
	size_t len;
	char data[MAX_FILE];
};

/* @file as a reader in @e's cgroup sees it now (rendered at most TTL ago). */
static const struct snapshot *snapshot(const struct cvm_procfs *p, unsigned file,
				       const struct leaf *e, double now)
{
	static struct snapshot snaps[N_FILES];
	struct snapshot *s = &snaps[file];
	ssize_t n;

	if (s->key == e->key && now - s->at < TTL)
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
	double now = boottime();
	const struct snapshot *m = snapshot(p, 0, reader_leaf(p, pid, now), now);
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

/* ---- the protocol ----------------------------------------------------------- */

/* 0: answered; 1: the reader gave up meanwhile (interrupted), so nothing
 * was delivered; -1: the connection failed. */
static int reply(int fd, uint64_t unique, int error, const void *body, size_t len)
{
	struct cvm_fuse_out_header h = { (uint32_t)(sizeof(h) + (error ? 0 : len)), -error, unique };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, error ? 0 : len } };

	if (writev(fd, iov, 2) < 0)
		return errno == ENOENT ? 1 : -1;
	return 0;
}

static unsigned file_owner;

static void fill_attr(uint64_t ino, struct cvm_fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->uid = a->gid = file_owner;   /* root inside, like the real /proc */
	a->ino = ino;
	a->mode = ino == CVM_FUSE_ROOT_ID ? (S_IFDIR | 0555) : (S_IFREG | 0444);
	a->nlink = ino == CVM_FUSE_ROOT_ID ? 2 : 1;
	a->blksize = 4096;
	/* Not 0 as in /proc: splice/sendfile (busybox cat) stop at the size
	 * without asking us. A read that comes up short makes the kernel set
	 * the size it saw, and attributes are never cached, so the next stat
	 * asks again. */
	if (ino != CVM_FUSE_ROOT_ID)
		a->size = MAX_FILE;
}

/* ---- passthrough: reads that never reach us ---------------------------------
 *
 * At OPEN the snapshot goes into a sealed memfd that the kernel registers
 * as the open file's backing file (FUSE_DEV_IOC_BACKING_OPEN, Linux >= 6.9,
 * CONFIG_FUSE_PASSTHROUGH, CAP_SYS_ADMIN of the initial user namespace,
 * which outer root has): read, read-to-EOF, lseek and mmap then run in the
 * kernel, and an open+read+close costs one round trip to us instead of
 * three. But the server then never sees those reads, so a reader that
 * keeps the file open and reads it again from the start would see its
 * open's numbers forever: passthrough is only for a process that has
 * opened and closed that file before (opens_again); a first open is
 * plain, fresh on every read from offset 0. The kernel's rules
 * (fs/fuse/iomode.c): all opens of one inode at the same time share one
 * backing file, and no plain open may overlap them (EIO; splice reads of
 * a plain open come back empty). So a new snapshot, or a plain open, can
 * only be given while no passthrough open of that file is still open
 * (and passthrough only while no plain one is, else the open is plain); an
 * open that needs one meanwhile waits until they are closed (microseconds,
 * for open-read-close readers), at most PARK; past that, or when the file is held open longer
 * than PARK by someone, it shares the current snapshot: consistent, but
 * older, and possibly another cgroup's. The state lives in memory PID 1
 * shares with every server it starts, so a restarted one knows the
 * backing ids and every open. */
#define PARK 0.020
#define PT_FH (1ULL << 62)      /* fh: PT_FH | slot, or slot + 1 for a plain open */
#define MAX_PARKED 64

struct cvm_procfs_state {
	int passthrough;                /* 1: agreed at INIT; 0/-1: not (or it cannot work) */
	bool pt_worked;                 /* a backing file was registered once */
	struct cvm_procfs_inflight inflight;    /* sysinfo(2) being answered */
	struct {
		int32_t id;             /* backing id new opens get; 0: none */
		uint32_t pins;          /* passthrough opens not released yet */
		uint32_t plain;         /* plain opens not released yet */
		uint64_t key;           /* whose snapshot (reader cgroup hash) */
		double at;              /* when it was rendered */
	} file[N_FILES];
	/* Every open until its RELEASE, passthrough or not: the kernel lets
	 * no plain open of an inode overlap a passthrough one (EIO, or empty
	 * splice reads), and a restarted server must know both kinds. */
	struct {
		uint64_t unique;        /* the OPEN, to know it again when resent */
		uint32_t node;          /* file + 1; 0: free */
		uint32_t pid;           /* who opened it */
		bool pt;
		double at;
	} open[MAX_OPENS];
};

size_t cvm_procfs_state_size(void)
{
	return sizeof(struct cvm_procfs_state);
}

static struct cvm_procfs_state *st;

struct cvm_procfs_inflight *cvm_procfs_inflight(void)
{
	return &st->inflight;
}

static struct {
	struct cvm_fuse_in_header h;
	double since;
} parked[MAX_PARKED];
static size_t n_parked;

static void use_state(const struct cvm_procfs *p)
{
	static struct cvm_procfs_state own;        /* no shared page: tests, fuzzer */

	st = p->state ? p->state : &own;
	/* The counts from the slots: a server killed between the two
	 * updates leaves them out of step. */
	for (size_t f = 0; f < N_FILES; f++)
		st->file[f].pins = st->file[f].plain = 0;
	for (size_t i = 0; i < MAX_OPENS; i++)
		if (st->open[i].node > N_FILES)
			st->open[i].node = 0;
		else if (st->open[i].node && st->open[i].pt)
			st->file[st->open[i].node - 1].pins++;
		else if (st->open[i].node)
			st->file[st->open[i].node - 1].plain++;
}

static int backing_new(int fuse_fd, const struct snapshot *s)
{
	cleanup_close int fd = sys_memfd_create("cvm-proc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	struct cvm_fuse_backing_map map = { .fd = fd };
	size_t done = 0;

	while (fd >= 0 && done < s->len) {
		ssize_t n = write(fd, s->data + done, s->len - done);
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	/* Readers reach this file directly: nothing may change it. */
	if (fd < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK |
			    F_SEAL_SEAL) < 0)
		return -1;
	return ioctl(fuse_fd, CVM_FUSE_DEV_IOC_BACKING_OPEN, &map);
}

static double oldest_pin(unsigned node)
{
	double oldest = 1e300;
	for (size_t i = 0; i < MAX_OPENS; i++)
		if (st->open[i].node == node + 1 && st->open[i].pt && st->open[i].at < oldest)
			oldest = st->open[i].at;
	return oldest;
}

/* A slot for this open, taken before the answer goes out; a resent OPEN
 * finds the one it had. -1: full. */
static long open_slot(const struct cvm_fuse_in_header *h, bool pt, double now)
{
	uint64_t u = h->unique & ~CVM_FUSE_UNIQUE_RESEND;
	unsigned node = (unsigned)(h->nodeid - 2);

	for (size_t i = 0; (h->unique & CVM_FUSE_UNIQUE_RESEND) && i < MAX_OPENS; i++)
		if (st->open[i].node == node + 1 && st->open[i].unique == u) {
			if (st->open[i].pt == pt)
				return (long)i;
			st->open[i].node = 0;   /* the dead server meant the other kind */
			*(st->open[i].pt ? &st->file[node].pins : &st->file[node].plain) -= 1;
		}
	for (size_t i = 0; i < MAX_OPENS; i++)
		if (!st->open[i].node) {
			st->open[i].unique = u;
			st->open[i].pid = h->pid;
			st->open[i].pt = pt;
			st->open[i].at = now;
			st->open[i].node = node + 1;
			*(pt ? &st->file[node].pins : &st->file[node].plain) += 1;
			handles[i].rendered = false;
			return (long)i;
		}
	return -1;
}

/* Who closed which file lately: a process that opens a file, reads it and
 * closes it, and then opens it again, is one that gets fresh numbers by
 * opening again; it can have passthrough. One that keeps a file open and
 * reads it again from the start (procps) is never seen closing it, and
 * keeps getting its reads answered here, fresh. */
#define REPEAT_WINDOW 60.0
static struct {
	uint32_t pid, node;
	double at;
} closed[256];

static void note_close(uint32_t pid, unsigned node, double now)
{
	size_t oldest = 0;

	for (size_t i = 0; i < 256; i++) {
		if (closed[i].pid == pid && closed[i].node == node + 1) {
			closed[i].at = now;
			return;
		}
		if (closed[i].at < closed[oldest].at)
			oldest = i;
	}
	closed[oldest].pid = pid;
	closed[oldest].node = node + 1;
	closed[oldest].at = now;
}

static bool opens_again(uint32_t pid, unsigned node, double now)
{
	for (size_t i = 0; i < 256; i++)
		if (closed[i].pid == pid && closed[i].node == node + 1)
			return now - closed[i].at < REPEAT_WINDOW;
	return false;
}

static void close_slot(uint64_t slot)
{
	unsigned node;
	uint32_t *count;

	if (slot >= MAX_OPENS || !(node = st->open[slot].node))
		return;
	note_close(st->open[slot].pid, node - 1, boottime());
	st->open[slot].node = 0;
	count = st->open[slot].pt ? &st->file[node - 1].pins : &st->file[node - 1].plain;
	if (*count)
		(*count)--;
	if (handles[slot].cap > 16384) {        /* a small buffer stays, for the next open */
		free(handles[slot].data);
		handles[slot].data = NULL;
		handles[slot].cap = 0;
	}
}

/* 1: answered; 0: must wait (park it); -1: answer the plain way; -2:
 * the connection failed. */
static int pt_open(int fd, const struct cvm_fuse_in_header *h, const struct cvm_procfs *p,
		   double now, bool waited_enough)
{
	unsigned node = (unsigned)(h->nodeid - 2);
	const struct leaf *e = reader_leaf(p, (pid_t)h->pid, now);
	struct cvm_fuse_open_out o = { .open_flags = CVM_FOPEN_PASSTHROUGH | CVM_FOPEN_NOFLUSH };
	bool fresh = st->file[node].id > 0 && st->file[node].key == e->key &&
		now - st->file[node].at < TTL;
	bool again = opens_again(h->pid, node, now);

	if (st->file[node].plain || (st->file[node].pins == 0 && !again))
		return -1;      /* the plain way, fresh on every read from the start */
	if (!fresh && st->file[node].pins == 0) {
		const struct snapshot *s = snapshot(p, node, e, now);
		if (!s)
			return reply(fd, h->unique, EIO, NULL, 0) < 0 ? -2 : 1;
		int id = backing_new(p->fuse_fd, s);
		if (id <= 0) {
			/* The plain way, for this open: safe, as no open of this file
			 * is passthrough now. If none ever was (no CAP_SYS_ADMIN of
			 * the initial user namespace), for good. */
			if (!st->pt_worked)
				st->passthrough = -1;
			return -1;
		}
		int32_t old = st->file[node].id;
		st->pt_worked = true;
		st->file[node].key = 0;         /* a half-updated entry is never fresh */
		st->file[node].id = id;
		st->file[node].key = e->key;
		st->file[node].at = s->at;
		/* Only now: a server killed in between leaks the old id, rather
		 * than leave the next one an id that no longer exists. */
		if (old > 0)
			ioctl(p->fuse_fd, CVM_FUSE_DEV_IOC_BACKING_CLOSE, &old);
	} else if ((!fresh || !again) && !waited_enough && now - oldest_pin(node) < PARK) {
		/* Pinned to a snapshot this reader must not get (stale, another
		 * group's, or it may keep the file open): wait for the closes. */
		return 0;
	}
	long slot = open_slot(h, true, now);
	if (slot < 0)
		return reply(fd, h->unique, ENFILE, NULL, 0) < 0 ? -2 : 1;
	o.fh = PT_FH | (uint64_t)slot;
	o.backing_id = (uint32_t)st->file[node].id;
	int r = reply(fd, h->unique, 0, &o, sizeof(o));
	if (r != 0)
		close_slot((uint64_t)slot);     /* never opened: no RELEASE will come */
	return r < 0 ? -2 : 1;
}

static int plain_open(int fd, const struct cvm_fuse_in_header *h);

/* Answer the parked opens that can be answered now. */
static int unpark(int fd, const struct cvm_procfs *p)
{
	double now = boottime();
	size_t kept = 0;

	for (size_t i = 0; i < n_parked; i++) {
		int r = pt_open(fd, &parked[i].h, p, now, now - parked[i].since >= PARK);
		if (r == -1)
			r = plain_open(fd, &parked[i].h) < 0 ? -2 : 1;
		if (r == -2)
			return -1;
		if (r == 0)
			parked[kept++] = parked[i];
	}
	n_parked = kept;
	return 0;
}

/* ---- requests ---------------------------------------------------------------- */

static int do_init(int fd, const struct cvm_fuse_in_header *h, const void *arg,
		   const struct cvm_procfs *p)
{
	const struct cvm_fuse_init_in *in = arg;
	struct cvm_fuse_init_out out = {
		.major = CVM_FUSE_MAJOR, .minor = CVM_FUSE_MINOR, .max_write = 4096,
		.max_pages = 1, .time_gran = 1,
	};
	if (in->major != CVM_FUSE_MAJOR)
		return reply(fd, h->unique, EPROTO, NULL, 0);
	if (in->minor < out.minor)
		out.minor = in->minor;
	st->passthrough = -1;
	if (p->passthrough && (in->flags & CVM_FUSE_INIT_EXT) &&
	    (in->flags2 & CVM_FUSE_PASSTHROUGH_FLAGS2)) {
		out.flags = CVM_FUSE_INIT_EXT;
		out.flags2 = CVM_FUSE_PASSTHROUGH_FLAGS2;
		out.max_stack_depth = 1;        /* backing files: memfds, depth 0 */
		st->passthrough = 1;
	}
	return reply(fd, h->unique, 0, &out, sizeof(out));
}

static int do_lookup(int fd, const struct cvm_fuse_in_header *h, const char *name)
{
	struct cvm_fuse_entry_out e = { 0 };

	for (size_t i = 0; i < N_FILES; i++)
		if (h->nodeid == CVM_FUSE_ROOT_ID && !strcmp(name, names[i])) {
			e.nodeid = i + 2;
			e.entry_valid = 3600;
			fill_attr(e.nodeid, &e.attr);
			return reply(fd, h->unique, 0, &e, sizeof(e));
		}
	return reply(fd, h->unique, ENOENT, NULL, 0);
}

/* The plain way: every read comes to us (FOPEN_DIRECT_IO), served from
 * the handle's snapshot. */
static struct handle *plain_handle(const struct cvm_fuse_in_header *h, uint64_t fh)
{
	uint64_t slot = fh - 1;

	if ((fh & PT_FH) || slot >= MAX_OPENS || st->open[slot].node != h->nodeid - 1 ||
	    st->open[slot].pt)
		return NULL;
	return &handles[slot];
}

static int plain_open(int fd, const struct cvm_fuse_in_header *h)
{
	/* No FLUSH on close: one round trip less per open (FOPEN_NOFLUSH). */
	struct cvm_fuse_open_out o = { .open_flags = CVM_FOPEN_DIRECT_IO | CVM_FOPEN_NOFLUSH };
	long slot = open_slot(h, false, boottime());

	if (slot < 0)
		return reply(fd, h->unique, ENFILE, NULL, 0);
	o.fh = (uint64_t)slot + 1;
	int r = reply(fd, h->unique, 0, &o, sizeof(o));
	if (r != 0)
		close_slot((uint64_t)slot);     /* never opened: no RELEASE will come */
	return r;
}

/* Copy @s into the handle: its snapshot from now on. */
static int keep(struct handle *hd, const struct snapshot *s)
{
	if (hd->cap < s->len + 1) {
		char *d = realloc(hd->data, s->len + 1);
		if (!d)
			return -1;
		hd->data = d;
		hd->cap = s->len + 1;
	}
	memcpy(hd->data, s->data, s->len);
	hd->len = s->len;
	hd->rendered = true;
	return 0;
}

static int do_open(int fd, const struct cvm_fuse_in_header *h, const void *arg,
		   const struct cvm_procfs *p)
{
	const struct cvm_fuse_open_in *in = arg;

	if (h->nodeid < 2 || h->nodeid >= 2 + N_FILES)
		return reply(fd, h->unique, EISDIR, NULL, 0);
	if ((in->flags & O_ACCMODE) != O_RDONLY || (in->flags & O_TRUNC))
		return reply(fd, h->unique, EACCES, NULL, 0);
	if (st->passthrough > 0) {
		double now = boottime();
		int r = pt_open(fd, h, p, now, n_parked == MAX_PARKED);
		if (r == 0) {
			parked[n_parked].h = *h;
			parked[n_parked++].since = now;
		}
		if (r >= 0)
			return 0;
		if (r == -2)
			return -1;
	}
	return plain_open(fd, h);
}

static int do_read(int fd, const struct cvm_fuse_in_header *h, const void *arg,
		   const struct cvm_procfs *p)
{
	const struct cvm_fuse_read_in *in = arg;
	struct handle *hd = plain_handle(h, in->fh);
	const struct snapshot *s = NULL;
	const char *data;
	size_t len;

	if (h->nodeid < 2 || h->nodeid >= 2 + N_FILES)
		return reply(fd, h->unique, EIO, NULL, 0);
	if (!hd || !hd->rendered || in->offset == 0) {
		/* From the start (or opened before a restart: that snapshot
		 * died with the old server): what the reader sees now. */
		double now = boottime();
		s = snapshot(p, (unsigned)(h->nodeid - 2), reader_leaf(p, (pid_t)h->pid, now), now);
		if (!s || (hd && keep(hd, s) < 0))
			return reply(fd, h->unique, EIO, NULL, 0);
	}
	data = hd ? hd->data : s->data;
	len = hd ? hd->len : s->len;
	if (in->offset >= len)
		return reply(fd, h->unique, 0, "", 0);
	size_t n = len - in->offset < in->size ? len - in->offset : in->size;
	return reply(fd, h->unique, 0, data + in->offset, n);
}

static int do_release(int fd, const struct cvm_fuse_in_header *h, const void *arg,
		      const struct cvm_procfs *p)
{
	const struct cvm_fuse_read_in *in = arg;    /* fh comes first in release_in too */
	uint64_t slot = (in->fh & PT_FH) ? in->fh & ~PT_FH : in->fh - 1;

	if (slot < MAX_OPENS && st->open[slot].node == h->nodeid - 1)
		close_slot(slot);
	if (reply(fd, h->unique, 0, NULL, 0) < 0)
		return -1;
	return n_parked ? unpark(fd, p) : 0;
}

int cvm_procfs_handle(int fd, const char *req, size_t n, const struct cvm_procfs *p)
{
	/* Copies, aligned and zero-padded: a request shorter than its opcode's
	 * arguments reads zeros, never past the buffer. */
	static union {
		struct cvm_fuse_init_in init;
		struct cvm_fuse_open_in open;
		struct cvm_fuse_read_in read;
		char name[256];
	} args;
	struct cvm_fuse_in_header hdr;
	const struct cvm_fuse_in_header *h = &hdr;
	const char *arg = (const char *)&args;
	struct cvm_fuse_attr_out a = { .attr_valid = 1 };

	if (!st)
		use_state(p);
	if (n < sizeof(hdr))
		return 0;       /* malformed: the kernel never sends that; ignore */
	memcpy(&hdr, req, sizeof(hdr));
	if (hdr.len != n)
		return 0;
	memset(&args, 0, sizeof(args));
	memcpy(&args, req + sizeof(hdr), n - sizeof(hdr) < sizeof(args) - 1 ?
	       n - sizeof(hdr) : sizeof(args) - 1);        /* a name stays NUL-terminated */
	switch (h->opcode) {
	case CVM_FUSE_INIT: return do_init(fd, h, arg, p);
	case CVM_FUSE_LOOKUP: return do_lookup(fd, h, arg);
	case CVM_FUSE_GETATTR:
		if (h->nodeid > 1 + N_FILES)
			return reply(fd, h->unique, ENOENT, NULL, 0);
		fill_attr(h->nodeid, &a.attr);
		if (h->nodeid > 1 && last_len[h->nodeid - 2])
			/* What the last open showed: close enough for tools that stat
			 * and seek (tail -c); see fill_attr for why not 0. */
			a.attr.size = last_len[h->nodeid - 2];
		return reply(fd, h->unique, 0, &a, sizeof(a));
	case CVM_FUSE_OPEN: return do_open(fd, h, arg, p);
	case CVM_FUSE_READ: return do_read(fd, h, arg, p);
	case CVM_FUSE_RELEASE: return do_release(fd, h, arg, p);
	case CVM_FUSE_FLUSH: case CVM_FUSE_ACCESS: case CVM_FUSE_RELEASEDIR:
		return reply(fd, h->unique, 0, NULL, 0);
	case CVM_FUSE_OPENDIR: case CVM_FUSE_READDIR:
		return reply(fd, h->unique, ENOSYS, NULL, 0);
	case CVM_FUSE_FORGET: case CVM_FUSE_BATCH_FORGET: case CVM_FUSE_INTERRUPT:
		return 0;       /* no reply expected */
	default:
		return reply(fd, h->unique, ENOSYS, NULL, 0);
	}
}

static void on_alarm(int sig)
{
	(void)sig;      /* only to interrupt the blocking read */
}

/* The 5 s load samples: a timer interrupts the read when no requests
 * come; while they do, they are taken between requests. */
static void start_load_timer(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };    /* no SA_RESTART */
	struct itimerval it = { { 5, 0 }, { 5, 0 } };

	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

/* ---- sysinfo(2) listeners ---------------------------------------------------- */

#define MAX_LISTENERS 256
static int listeners[MAX_LISTENERS];
static size_t n_listeners;

static void add_listener(const struct cvm_procfs *p, int fd)
{
	if (n_listeners == MAX_LISTENERS) {
		close(fd);      /* PID 1 keeps its copy: its callers are not cut off */
		return;
	}
	listeners[n_listeners++] = fd;
	cvm_procfs_answer_pending(p, fd);
}

/* New listeners from PID 1, notifications, listeners whose processes are
 * all gone (POLLHUP). @timeout_ms as poll(2); @fuse_fd too, when >= 0.
 * Returns whether @fuse_fd is readable. */
static bool side_work(const struct cvm_procfs *p, int fuse_fd, int timeout_ms)
{
	struct pollfd pfd[MAX_LISTENERS + 2];
	size_t n = 0, first;
	int fd;

	if (fuse_fd >= 0)
		pfd[n++] = (struct pollfd){ fuse_fd, POLLIN, 0 };
	if (p->ctl_fd >= 0)
		pfd[n++] = (struct pollfd){ p->ctl_fd, POLLIN, 0 };
	first = n;
	for (size_t i = 0; i < n_listeners; i++)
		pfd[n++] = (struct pollfd){ listeners[i], POLLIN, 0 };
	if (poll(pfd, n, timeout_ms) <= 0)
		return false;
	for (size_t i = n; i-- > first;) {
		size_t l = i - first;
		if (pfd[i].revents & POLLIN)
			cvm_procfs_answer(p, listeners[l]);
		else if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			close(listeners[l]);
			listeners[l] = listeners[--n_listeners];
		}
	}
	if (p->ctl_fd >= 0 && (pfd[first - 1].revents & POLLIN))
		while ((fd = cvm_sysinfo_notify_recv(p->ctl_fd)) >= 0 || errno == EBADMSG)
			if (fd >= 0)
				add_listener(p, fd);
	return fuse_fd >= 0 && (pfd[0].revents & POLLIN);
}

/* The next request: a reader that opened one file usually closes it (a
 * RELEASE) and opens the next within microseconds, and waking a sleeping
 * server costs a reader more than the answer itself (an idle CPU of a VM
 * wakes slowly). So look again for up to SPIN before sleeping; with opens
 * parked, sleep at most 1 ms. -1 and errno EAGAIN: nothing yet. */
#define SPIN 0.000020
static ssize_t next_request(const struct cvm_procfs *p, char *req)
{
	static double last_side;
	int fd = p->fuse_fd;
	ssize_t n = read(fd, req, REQ_SIZE);
	double now = boottime(), until = now + SPIN;

	if (now - last_side > 0.001) {
		/* Busy with files: sysinfo(2) callers must not starve. */
		last_side = now;
		side_work(p, -1, 0);
	}
	while (n < 0 && errno == EAGAIN && boottime() < until)
		n = read(fd, req, REQ_SIZE);
	if (n >= 0 || errno != EAGAIN)
		return n;
	if (!side_work(p, fd, n_parked ? 1 : -1)) {
		errno = EAGAIN;
		return -1;
	}
	return read(fd, req, REQ_SIZE);
}

int cvm_procfs_serve(const struct cvm_procfs *p, struct cvm_error *err)
{
	char *req = malloc(REQ_SIZE);
	ssize_t n;

	if (!req)
		return cvm_error_set(err, ENOMEM, "procfs");
	file_owner = p->owner;
	use_state(p);
	for (size_t i = 0; i < p->n_listeners; i++)
		add_listener(p, p->listeners[i]);
	if (p->restarted) {
		/* Requests the dead server had read but not answered: the kernel
		 * puts them back in the queue (Linux >= 6.9). Older kernels answer
		 * ENOSYS here; their readers of that moment get EIO once. */
		struct cvm_fuse_out_header r = { sizeof(r), CVM_FUSE_NOTIFY_RESEND, 0 };
		if (write(p->fuse_fd, &r, sizeof(r)) < 0 && errno != ENOSYS && errno != EINVAL)
			cvm_error_set(err, errno, "procfs: resend");
	}
	load.last = boottime();
	fcntl(p->fuse_fd, F_SETFL, fcntl(p->fuse_fd, F_GETFL) | O_NONBLOCK);
	start_load_timer();
	for (;;) {
		if (n_parked && unpark(p->fuse_fd, p) < 0)
			break;
		n = next_request(p, req);
		if (boottime() - load.last >= 5.0)
			sample_load(p, true);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n < 0 && (errno == EINTR || errno == ENOENT))
			continue;
		if (n < 0 && errno == EPERM) {
			/* Not mounted yet: the builder mounts it once we run. */
			nanosleep(&(struct timespec){ 0, 1000 * 1000 }, NULL);
			continue;
		}
		if (n < 0 && errno == ENODEV)
			break;  /* unmounted: the workspace is gone */
		if (n < 0) {
			free(req);
			return cvm_error_set(err, errno, "procfs: read /dev/fuse");
		}
		if (cvm_procfs_handle(p->fuse_fd, req, (size_t)n, p) < 0 && errno != ENOENT) {
			free(req);
			return cvm_error_set(err, errno, "procfs: reply");
		}
	}
	free(req);
	return 0;
}
