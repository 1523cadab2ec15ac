#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "runtime/cleanup.h"
#include "fuse_abi.h"
#include "render.h"
#include "server.h"

#define MAX_FILE (256 * 1024)
#define MAX_HANDLES 4096
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

/* One open file: the content as rendered at open, so that reads at any
 * offset and of any size are slices of one snapshot. */
struct handle {
	char *data;
	size_t len;
};
static struct handle handles[MAX_HANDLES];
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

static ssize_t render(const struct cvm_procfs *p, unsigned file, pid_t pid, char *out, size_t len)
{
	static char host[MAX_FILE];
	char leaf[4096], online_text[4096] = "0";
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
	reader_cgroup(p, pid, leaf, sizeof(leaf));
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

/* ---- the protocol ----------------------------------------------------------- */

static int reply(int fd, uint64_t unique, int error, const void *body, size_t len)
{
	struct cvm_fuse_out_header h = { (uint32_t)(sizeof(h) + (error ? 0 : len)), -error, unique };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, error ? 0 : len } };

	/* ENOENT here: the reader gave up (interrupted); nothing to do. */
	if (writev(fd, iov, 2) < 0 && errno != ENOENT)
		return -1;
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

static int do_init(int fd, const struct cvm_fuse_in_header *h, const void *arg)
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

static int do_open(int fd, const struct cvm_fuse_in_header *h, const struct cvm_procfs *p)
{
	static char buf[MAX_FILE];
	/* No FLUSH on close: one round trip less per open (FOPEN_NOFLUSH). */
	struct cvm_fuse_open_out o = { .open_flags = CVM_FOPEN_DIRECT_IO | CVM_FOPEN_NOFLUSH };
	size_t slot;
	ssize_t n;

	if (h->nodeid < 2 || h->nodeid >= 2 + N_FILES)
		return reply(fd, h->unique, EISDIR, NULL, 0);
	for (slot = 0; slot < MAX_HANDLES && handles[slot].data; slot++)
		;
	if (slot == MAX_HANDLES)
		return reply(fd, h->unique, ENFILE, NULL, 0);
	n = render(p, (unsigned)(h->nodeid - 2), (pid_t)h->pid, buf, sizeof(buf));
	if (n < 0 || !(handles[slot].data = malloc((size_t)n + 1)))
		return reply(fd, h->unique, EIO, NULL, 0);
	memcpy(handles[slot].data, buf, (size_t)n);
	handles[slot].len = (size_t)n;
	last_len[h->nodeid - 2] = (size_t)n;
	o.fh = slot + 1;
	return reply(fd, h->unique, 0, &o, sizeof(o));
}

static int do_read(int fd, const struct cvm_fuse_in_header *h, const void *arg,
		   const struct cvm_procfs *p)
{
	const struct cvm_fuse_read_in *in = arg;
	static char buf[MAX_FILE];
	const char *data;
	size_t len;

	if (in->fh >= 1 && in->fh <= MAX_HANDLES && handles[in->fh - 1].data) {
		data = handles[in->fh - 1].data;
		len = handles[in->fh - 1].len;
	} else {
		/* Opened before a restart: the snapshot died with the old server. */
		ssize_t n = render(p, (unsigned)(h->nodeid - 2), (pid_t)h->pid, buf, sizeof(buf));
		if (n < 0 || h->nodeid < 2 || h->nodeid >= 2 + N_FILES)
			return reply(fd, h->unique, EIO, NULL, 0);
		data = buf;
		len = (size_t)n;
	}
	if (in->offset >= len)
		return reply(fd, h->unique, 0, "", 0);
	size_t n = len - in->offset < in->size ? len - in->offset : in->size;
	return reply(fd, h->unique, 0, data + in->offset, n);
}

static int do_release(int fd, const struct cvm_fuse_in_header *h, const void *arg)
{
	const struct cvm_fuse_read_in *in = arg;    /* fh comes first in release_in too */

	if (in->fh >= 1 && in->fh <= MAX_HANDLES) {
		free(handles[in->fh - 1].data);
		handles[in->fh - 1].data = NULL;
	}
	return reply(fd, h->unique, 0, NULL, 0);
}

int cvm_procfs_handle(int fd, const char *req, size_t n, const struct cvm_procfs *p)
{
	/* Copies, aligned and zero-padded: a request shorter than its opcode's
	 * arguments reads zeros, never past the buffer. */
	static union {
		struct cvm_fuse_init_in init;
		struct cvm_fuse_read_in read;
		char name[256];
	} args;
	struct cvm_fuse_in_header hdr;
	const struct cvm_fuse_in_header *h = &hdr;
	const char *arg = (const char *)&args;
	struct cvm_fuse_attr_out a = { .attr_valid = 1 };

	if (n < sizeof(hdr))
		return 0;       /* malformed: the kernel never sends that; ignore */
	memcpy(&hdr, req, sizeof(hdr));
	if (hdr.len != n)
		return 0;
	memset(&args, 0, sizeof(args));
	memcpy(&args, req + sizeof(hdr), n - sizeof(hdr) < sizeof(args) - 1 ?
	       n - sizeof(hdr) : sizeof(args) - 1);        /* a name stays NUL-terminated */
	switch (h->opcode) {
	case CVM_FUSE_INIT: return do_init(fd, h, arg);
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
	case CVM_FUSE_OPEN: return do_open(fd, h, p);
	case CVM_FUSE_READ: return do_read(fd, h, arg, p);
	case CVM_FUSE_RELEASE: return do_release(fd, h, arg);
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

int cvm_procfs_serve(const struct cvm_procfs *p, struct cvm_error *err)
{
	char *req = malloc(REQ_SIZE);
	ssize_t n;

	if (!req)
		return cvm_error_set(err, ENOMEM, "procfs");
	file_owner = p->owner;
	if (p->restarted) {
		/* Requests the dead server had read but not answered: the kernel
		 * puts them back in the queue (Linux >= 6.9). Older kernels answer
		 * ENOSYS here; their readers of that moment get EIO once. */
		struct cvm_fuse_out_header r = { sizeof(r), CVM_FUSE_NOTIFY_RESEND, 0 };
		if (write(p->fuse_fd, &r, sizeof(r)) < 0 && errno != ENOSYS && errno != EINVAL)
			cvm_error_set(err, errno, "procfs: resend");
	}
	load.last = boottime();
	/* Non-blocking: while requests keep coming, one read() per request; the
	 * poll (which also times the 5 s load samples) only when idle. */
	fcntl(p->fuse_fd, F_SETFL, fcntl(p->fuse_fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		n = read(p->fuse_fd, req, REQ_SIZE);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { p->fuse_fd, POLLIN, 0 };
			if (poll(&pfd, 1, 5000) == 0 || boottime() - load.last >= 5.0)
				sample_load(p, true);
			continue;
		}
		if (n >= 0 && boottime() - load.last >= 5.0)
			sample_load(p, true);   /* busy: sample between requests */
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
