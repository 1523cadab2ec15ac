/* The /proc server's protocol side: FUSE requests, passthrough, the
 * serving loop (which also takes in sysinfo(2) notifications). What the
 * files say is view.c's. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/cleanup.h"
#include "runtime/notify.h"
#include "runtime/syscalls.h"
#include "state.h"

#define MAX_OPENS CVM_PROCFS_MAX_OPENS
#define REQ_SIZE (1 << 20)
#define N_FILES CVM_PROCFS_N_FILES

/* One open file (state.h, struct cvm_procfs_handle): the content as
 * rendered at its last read at offset 0, so that reads at any offset and of
 * any size are slices of one snapshot, and a reader that keeps the file
 * open and reads it again from the start (procps: top, vmstat and free -s
 * lseek to 0 and read) gets new numbers, as from the kernel's own seq_file. */
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

static void fill_attr(const struct cvm_procfs_server *srv, uint64_t ino, struct cvm_fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->uid = a->gid = srv->cfg->owner;   /* root inside, like the real /proc */
	a->ino = ino;
	a->mode = ino == CVM_FUSE_ROOT_ID ? (S_IFDIR | 0555) : (S_IFREG | 0444);
	a->nlink = ino == CVM_FUSE_ROOT_ID ? 2 : 1;
	a->blksize = 4096;
	/* Not 0 as in /proc: splice/sendfile (busybox cat) stop at the size
	 * without asking us. A read that comes up short makes the kernel set
	 * the size it saw, and attributes are never cached, so the next stat
	 * asks again. */
	if (ino != CVM_FUSE_ROOT_ID)
		a->size = CVM_PROCFS_MAX_FILE;
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
/* An open's fh: its slot + 1, FH_PT for passthrough, and above bit 32 the
 * low half of its OPEN's unique, so that a RELEASE the kernel resends to a
 * restarted server for an open long closed never closes the slot's next
 * open. */
#define FH_SLOT 0xffffULL
#define FH_PT (1ULL << 16)
#define MAX_PARKED CVM_PROCFS_MAX_PARKED

/* struct cvm_procfs_state: state.h. */
size_t cvm_procfs_state_size(void)
{
	return sizeof(struct cvm_procfs_state);
}

static void use_state(struct cvm_procfs_server *srv)
{
	srv->st = srv->cfg->state ? srv->cfg->state : &srv->own_state;
	/* The counts from the slots: a server killed between the two
	 * updates leaves them out of step. */
	for (size_t f = 0; f < N_FILES; f++)
		srv->st->file[f].pins = srv->st->file[f].plain = 0;
	for (size_t i = 0; i < MAX_OPENS; i++)
		if (srv->st->open[i].node > N_FILES)
			srv->st->open[i].node = 0;
		else if (srv->st->open[i].node && srv->st->open[i].pt)
			srv->st->file[srv->st->open[i].node - 1].pins++;
		else if (srv->st->open[i].node)
			srv->st->file[srv->st->open[i].node - 1].plain++;
}

static int backing_new(int fuse_fd, const struct cvm_procfs_snapshot *s)
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

static double oldest_pin(const struct cvm_procfs_server *srv, unsigned node)
{
	double oldest = 1e300;
	for (size_t i = 0; i < MAX_OPENS; i++)
		if (srv->st->open[i].node == node + 1 && srv->st->open[i].pt && srv->st->open[i].at < oldest)
			oldest = srv->st->open[i].at;
	return oldest;
}

/* A slot for this open, taken before the answer goes out; a resent OPEN
 * finds the one it had. -1: full. */
static long open_slot(struct cvm_procfs_server *srv, const struct cvm_fuse_in_header *h, bool pt,
		      double now)
{
	uint64_t u = h->unique & ~CVM_FUSE_UNIQUE_RESEND;
	unsigned node = (unsigned)(h->nodeid - 2);

	for (size_t i = 0; (h->unique & CVM_FUSE_UNIQUE_RESEND) && i < MAX_OPENS; i++)
		if (srv->st->open[i].node == node + 1 && srv->st->open[i].unique == u) {
			if (srv->st->open[i].pt == pt)
				return (long)i;
			srv->st->open[i].node = 0;   /* the dead server meant the other kind */
			*(srv->st->open[i].pt ? &srv->st->file[node].pins : &srv->st->file[node].plain) -= 1;
		}
	for (size_t i = 0; i < MAX_OPENS; i++)
		if (!srv->st->open[i].node) {
			srv->st->open[i].unique = u;
			srv->st->open[i].pid = h->pid;
			srv->st->open[i].pt = pt;
			srv->st->open[i].at = now;
			srv->st->open[i].node = node + 1;
			*(pt ? &srv->st->file[node].pins : &srv->st->file[node].plain) += 1;
			srv->handles[i].rendered = false;
			return (long)i;
		}
	return -1;
}

static uint64_t fh_of(const struct cvm_procfs_server *srv, long slot, bool pt)
{
	return (uint64_t)(uint32_t)srv->st->open[slot].unique << 32 | (pt ? FH_PT : 0) |
	       (uint64_t)(slot + 1);
}

/* The slot of the open @fh names, if it is still that open; else -1. */
static long fh_slot(const struct cvm_procfs_server *srv, const struct cvm_fuse_in_header *h,
		    uint64_t fh)
{
	uint64_t slot = (fh & FH_SLOT) - 1;

	if (slot >= MAX_OPENS || srv->st->open[slot].node != h->nodeid - 1 ||
	    (uint32_t)srv->st->open[slot].unique != (uint32_t)(fh >> 32) ||
	    srv->st->open[slot].pt != !!(fh & FH_PT))
		return -1;
	return (long)slot;
}

/* Who closed which file lately: a process that opens a file, reads it and
 * closes it, and then opens it again, is one that gets fresh numbers by
 * opening again; it can have passthrough. One that keeps a file open and
 * reads it again from the start (procps) is never seen closing it, and
 * keeps getting its reads answered here, fresh. */
#define REPEAT_WINDOW 60.0

static void note_close(struct cvm_procfs_server *srv, uint32_t pid, unsigned node, double now)
{
	size_t oldest = 0;

	for (size_t i = 0; i < CVM_PROCFS_N_CLOSED; i++) {
		if (srv->closed[i].pid == pid && srv->closed[i].node == node + 1) {
			srv->closed[i].at = now;
			return;
		}
		if (srv->closed[i].at < srv->closed[oldest].at)
			oldest = i;
	}
	srv->closed[oldest].pid = pid;
	srv->closed[oldest].node = node + 1;
	srv->closed[oldest].at = now;
}

static bool opens_again(const struct cvm_procfs_server *srv, uint32_t pid, unsigned node,
			double now)
{
	for (size_t i = 0; i < CVM_PROCFS_N_CLOSED; i++)
		if (srv->closed[i].pid == pid && srv->closed[i].node == node + 1)
			return now - srv->closed[i].at < REPEAT_WINDOW;
	return false;
}

static void close_slot(struct cvm_procfs_server *srv, uint64_t slot)
{
	unsigned node;
	uint32_t *count;

	if (slot >= MAX_OPENS || !(node = srv->st->open[slot].node))
		return;
	note_close(srv, srv->st->open[slot].pid, node - 1, cvm_procfs_now());
	srv->st->open[slot].node = 0;
	count = srv->st->open[slot].pt ? &srv->st->file[node - 1].pins : &srv->st->file[node - 1].plain;
	if (*count)
		(*count)--;
	if (srv->handles[slot].cap > 16384) {        /* a small buffer stays, for the next open */
		free(srv->handles[slot].data);
		srv->handles[slot].data = NULL;
		srv->handles[slot].cap = 0;
	}
}

/* 1: answered; 0: must wait (park it); -1: answer the plain way; -2:
 * the connection failed. */
static int pt_open(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h,
		   double now, bool waited_enough)
{
	unsigned node = (unsigned)(h->nodeid - 2);
	const struct cvm_procfs_leaf *e = cvm_procfs_reader(srv, (pid_t)h->pid, now);
	struct cvm_fuse_open_out o = { .open_flags = CVM_FOPEN_PASSTHROUGH | CVM_FOPEN_NOFLUSH };
	bool fresh = srv->st->file[node].id > 0 && srv->st->file[node].key == e->key &&
		now - srv->st->file[node].at < CVM_PROCFS_TTL;
	bool again = opens_again(srv, h->pid, node, now);

	if (srv->st->file[node].plain || (srv->st->file[node].pins == 0 && !again))
		return -1;      /* the plain way, fresh on every read from the start */
	if (!fresh && srv->st->file[node].pins == 0) {
		const struct cvm_procfs_snapshot *s = cvm_procfs_snapshot(srv, node, e, now);
		if (!s)
			return reply(fd, h->unique, EIO, NULL, 0) < 0 ? -2 : 1;
		int id = backing_new(srv->cfg->fuse_fd, s);
		if (id <= 0) {
			/* The plain way, for this open: safe, as no open of this file
			 * is passthrough now. If none ever was (no CAP_SYS_ADMIN of
			 * the initial user namespace), for good. */
			if (!srv->st->pt_worked)
				srv->st->passthrough = -1;
			return -1;
		}
		int32_t old = srv->st->file[node].id;
		srv->st->pt_worked = true;
		srv->st->file[node].key = 0;         /* a half-updated entry is never fresh */
		srv->st->file[node].id = id;
		srv->st->file[node].key = e->key;
		srv->st->file[node].at = s->at;
		/* Only now: a server killed in between leaks the old id, rather
		 * than leave the next one an id that no longer exists. */
		if (old > 0)
			ioctl(srv->cfg->fuse_fd, CVM_FUSE_DEV_IOC_BACKING_CLOSE, &old);
	} else if ((!fresh || !again) && !waited_enough && now - oldest_pin(srv, node) < PARK) {
		/* Pinned to a snapshot this reader must not get (stale, another
		 * group's, or it may keep the file open): wait for the closes. */
		return 0;
	}
	long slot = open_slot(srv, h, true, now);
	if (slot < 0)
		return reply(fd, h->unique, ENFILE, NULL, 0) < 0 ? -2 : 1;
	o.fh = fh_of(srv, slot, true);
	o.backing_id = (uint32_t)srv->st->file[node].id;
	int r = reply(fd, h->unique, 0, &o, sizeof(o));
	if (r != 0)
		close_slot(srv, (uint64_t)slot);     /* never opened: no RELEASE will come */
	return r < 0 ? -2 : 1;
}

static int plain_open(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h);

/* Answer the parked opens that can be answered now. */
static int unpark(struct cvm_procfs_server *srv, int fd)
{
	double now = cvm_procfs_now();
	size_t kept = 0;

	for (size_t i = 0; i < srv->n_parked; i++) {
		int r = pt_open(srv, fd, &srv->parked[i].h, now, now - srv->parked[i].since >= PARK);
		if (r == -1)
			r = plain_open(srv, fd, &srv->parked[i].h) < 0 ? -2 : 1;
		if (r == -2)
			return -1;
		if (r == 0)
			srv->parked[kept++] = srv->parked[i];
	}
	srv->n_parked = kept;
	return 0;
}

/* ---- requests ---------------------------------------------------------------- */

static int do_init(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h,
		   const void *arg)
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
	srv->st->passthrough = -1;
	if (srv->cfg->passthrough && (in->flags & CVM_FUSE_INIT_EXT) &&
	    (in->flags2 & CVM_FUSE_PASSTHROUGH_FLAGS2)) {
		out.flags = CVM_FUSE_INIT_EXT;
		out.flags2 = CVM_FUSE_PASSTHROUGH_FLAGS2;
		out.max_stack_depth = 1;        /* backing files: memfds, depth 0 */
		srv->st->passthrough = 1;
	}
	return reply(fd, h->unique, 0, &out, sizeof(out));
}

static int do_lookup(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h,
		     const char *name)
{
	struct cvm_fuse_entry_out e = { 0 };

	for (size_t i = 0; i < N_FILES; i++)
		if (h->nodeid == CVM_FUSE_ROOT_ID && !strcmp(name, cvm_procfs_files[i].name)) {
			e.nodeid = i + 2;
			e.entry_valid = 3600;
			fill_attr(srv, e.nodeid, &e.attr);
			return reply(fd, h->unique, 0, &e, sizeof(e));
		}
	return reply(fd, h->unique, ENOENT, NULL, 0);
}

/* The plain way: every read comes to us (FOPEN_DIRECT_IO), served from
 * the handle's snapshot. */
static struct cvm_procfs_handle *plain_handle(struct cvm_procfs_server *srv,
					      const struct cvm_fuse_in_header *h, uint64_t fh)
{
	long slot = fh_slot(srv, h, fh);

	return slot < 0 || srv->st->open[slot].pt ? NULL : &srv->handles[slot];
}

static int plain_open(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h)
{
	/* No FLUSH on close: one round trip less per open (FOPEN_NOFLUSH). */
	struct cvm_fuse_open_out o = { .open_flags = CVM_FOPEN_DIRECT_IO | CVM_FOPEN_NOFLUSH };
	long slot = open_slot(srv, h, false, cvm_procfs_now());

	if (slot < 0)
		return reply(fd, h->unique, ENFILE, NULL, 0);
	o.fh = fh_of(srv, slot, false);
	int r = reply(fd, h->unique, 0, &o, sizeof(o));
	if (r != 0)
		close_slot(srv, (uint64_t)slot);     /* never opened: no RELEASE will come */
	return r;
}

/* Copy @s into the handle: its snapshot from now on. */
static int keep(struct cvm_procfs_handle *hd, const struct cvm_procfs_snapshot *s)
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

static int do_open(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h,
		   const void *arg)
{
	const struct cvm_fuse_open_in *in = arg;

	if (h->nodeid < 2 || h->nodeid >= 2 + N_FILES)
		return reply(fd, h->unique, EISDIR, NULL, 0);
	if ((in->flags & O_ACCMODE) != O_RDONLY || (in->flags & O_TRUNC))
		return reply(fd, h->unique, EACCES, NULL, 0);
	if (srv->st->passthrough > 0) {
		double now = cvm_procfs_now();
		int r = pt_open(srv, fd, h, now, srv->n_parked == MAX_PARKED);
		if (r == 0) {
			srv->parked[srv->n_parked].h = *h;
			srv->parked[srv->n_parked++].since = now;
		}
		if (r >= 0)
			return 0;
		if (r == -2)
			return -1;
	}
	return plain_open(srv, fd, h);
}

static int do_read(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h,
		   const void *arg)
{
	const struct cvm_fuse_read_in *in = arg;
	struct cvm_procfs_handle *hd = plain_handle(srv, h, in->fh);
	const struct cvm_procfs_snapshot *s = NULL;
	const char *data;
	size_t len;

	if (h->nodeid < 2 || h->nodeid >= 2 + N_FILES)
		return reply(fd, h->unique, EIO, NULL, 0);
	if (!hd || !hd->rendered || in->offset == 0) {
		/* From the start (or opened before a restart: that snapshot
		 * died with the old server): what the reader sees now. */
		double now = cvm_procfs_now();
		s = cvm_procfs_snapshot(srv, (enum cvm_procfs_file)(h->nodeid - 2),
					cvm_procfs_reader(srv, (pid_t)h->pid, now), now);
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

static int do_release(struct cvm_procfs_server *srv, int fd, const struct cvm_fuse_in_header *h,
		      const void *arg)
{
	const struct cvm_fuse_read_in *in = arg;    /* fh comes first in release_in too */
	long slot = fh_slot(srv, h, in->fh);

	if (slot >= 0)
		close_slot(srv, (uint64_t)slot);
	if (reply(fd, h->unique, 0, NULL, 0) < 0)
		return -1;
	return srv->n_parked ? unpark(srv, fd) : 0;
}

int cvm_procfs_handle(struct cvm_procfs_server *srv, int fd, const char *req, size_t n)
{
	/* Copies, aligned and zero-padded: a request shorter than its opcode's
	 * arguments reads zeros, never past the buffer. */
	struct cvm_fuse_in_header hdr;
	const struct cvm_fuse_in_header *h = &hdr;
	const char *arg = (const char *)&srv->args;
	struct cvm_fuse_attr_out a = { .attr_valid = 1 };

	if (n < sizeof(hdr))
		return 0;       /* malformed: the kernel never sends that; ignore */
	memcpy(&hdr, req, sizeof(hdr));
	if (hdr.len != n)
		return 0;
	memset(&srv->args, 0, sizeof(srv->args));
	memcpy(&srv->args, req + sizeof(hdr), n - sizeof(hdr) < sizeof(srv->args) - 1 ?
	       n - sizeof(hdr) : sizeof(srv->args) - 1);        /* a name stays NUL-terminated */
	switch (h->opcode) {
	case CVM_FUSE_INIT: return do_init(srv, fd, h, arg);
	case CVM_FUSE_LOOKUP: return do_lookup(srv, fd, h, arg);
	case CVM_FUSE_GETATTR:
		if (h->nodeid > 1 + N_FILES)
			return reply(fd, h->unique, ENOENT, NULL, 0);
		fill_attr(srv, h->nodeid, &a.attr);
		if (h->nodeid > 1 && cvm_procfs_last_len(srv, (enum cvm_procfs_file)(h->nodeid - 2)))
			/* What the last open showed: close enough for tools that stat
			 * and seek (tail -c); see fill_attr for why not 0. */
			a.attr.size = cvm_procfs_last_len(srv, (enum cvm_procfs_file)(h->nodeid - 2));
		return reply(fd, h->unique, 0, &a, sizeof(a));
	case CVM_FUSE_OPEN: return do_open(srv, fd, h, arg);
	case CVM_FUSE_READ: return do_read(srv, fd, h, arg);
	case CVM_FUSE_RELEASE: return do_release(srv, fd, h, arg);
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

#define MAX_LISTENERS CVM_PROCFS_MAX_LISTENERS

static void add_listener(struct cvm_procfs_server *srv, int fd)
{
	if (srv->n_listeners == MAX_LISTENERS) {
		close(fd);      /* PID 1 keeps its copy: its callers are not cut off */
		return;
	}
	srv->listeners[srv->n_listeners++] = fd;
	cvm_procfs_answer_pending(srv, fd);
}

/* What the server waits on: @fd (when >= 0), PID 1's socket, then the
 * listeners, which start at *@first. Returns how many. */
static size_t watched(struct cvm_procfs_server *srv, int fd, struct pollfd pfd[MAX_LISTENERS + 2],
		      size_t *first)
{
	size_t n = 0;

	if (fd >= 0)
		pfd[n++] = (struct pollfd){ fd, POLLIN, 0 };
	if (srv->cfg->ctl_fd >= 0)
		pfd[n++] = (struct pollfd){ srv->cfg->ctl_fd, POLLIN, 0 };
	*first = n;
	for (size_t i = 0; i < srv->n_listeners; i++)
		pfd[n++] = (struct pollfd){ srv->listeners[i], POLLIN, 0 };
	return n;
}

/* New listeners from PID 1, notifications, listeners whose processes are
 * all gone (POLLHUP). @timeout_ms as poll(2); @fuse_fd too, when >= 0.
 * Returns whether @fuse_fd is readable. */
static bool side_work(struct cvm_procfs_server *srv, int fuse_fd, int timeout_ms)
{
	struct pollfd pfd[MAX_LISTENERS + 2];
	size_t first, n = watched(srv, fuse_fd, pfd, &first);
	int fd;

	if (timeout_ms)
		pthread_mutex_unlock(&srv->serving);
	int r = poll(pfd, n, timeout_ms);
	if (timeout_ms)
		pthread_mutex_lock(&srv->serving);
	if (r <= 0)
		return false;
	for (size_t i = n; i-- > first;) {
		size_t l = i - first;
		if (pfd[i].revents & POLLIN)
			cvm_procfs_answer(srv, srv->listeners[l]);
		else if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			close(srv->listeners[l]);
			srv->listeners[l] = srv->listeners[--srv->n_listeners];
		}
	}
	if (srv->cfg->ctl_fd >= 0 && (pfd[first - 1].revents & POLLIN))
		while ((fd = cvm_sysinfo_notify_recv(srv->cfg->ctl_fd)) >= 0 || errno == EBADMSG)
			if (fd >= 0)
				add_listener(srv, fd);
	return fuse_fd >= 0 && (pfd[0].revents & POLLIN);
}

/* ---- the follower ---------------------------------------------------------------
 *
 * A reader waits for every answer, and what it waits for is mostly not our
 * work but two wakeups: its request wakes a server on another CPU, the
 * answer wakes it back on its own, and on a VM each is an interrupt through
 * the hypervisor (bench/procfs prints what one round trip costs). When the
 * server runs on the reader's own CPU there are none: the reader blocks,
 * that CPU runs the server, which answers, and the reader goes on. So
 * once a reader blocks on an answer, a second thread of the server, the
 * follower, serves from the CPU that reader ran on (looked up again at most
 * every FOLLOW_EVERY: it moves with the reader), as SCHED_IDLE: it runs
 * only when that CPU has nothing else to run, which is the moment its
 * reader blocks, and never takes the CPU from anyone. It looks for
 * requests without sleeping (a sleeping thread's wakeup is what we avoid,
 * and a close would wake it too), for up to FOLLOW_SPIN after the last.
 * Meanwhile the main thread only watches, every millisecond: it answers
 * notifications between the follower's answers, and when requests or
 * notifications have waited a millisecond with the follower answering none
 * (its CPU is busy with others, or it was preempted holding the state), it
 * raises the follower to normal priority (cap_sys_nice: only a server that
 * has it follows), lets it finish what it holds and hand back, and serves
 * as before, following again only after FOLLOW_PAUSE. */
#define FOLLOW_EVERY 0.002
#define FOLLOW_SPIN 0.000200
#define FOLLOW_PAUSE 1.0

/* The reader's CPU, for a request it blocks on (RELEASE is sent in the
 * background, from wherever a close ran), looked up at most every
 * FOLLOW_EVERY; -1: none, or not now. */
static int reader_cpu(struct cvm_procfs_server *srv, const char *req, size_t n)
{
	struct cvm_fuse_in_header h;
	double now;

	if (n < sizeof(h))
		return -1;
	memcpy(&h, req, sizeof(h));
	if ((h.opcode != CVM_FUSE_OPEN && h.opcode != CVM_FUSE_READ) || !h.pid ||
	    (now = cvm_procfs_now()) - srv->reader_cpu_at < FOLLOW_EVERY)
		return -1;
	srv->reader_cpu_at = now;
	int cpu = cvm_procfs_task_cpu((pid_t)h.pid);
	return cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &srv->own_cpus) ? cpu : -1;
}

/* The scheduling policy of thread @tid (0: the caller). The syscall itself:
 * musl's sched_setscheduler() is a stub that fails with ENOSYS. */
static int set_policy(int tid, int policy)
{
	struct sched_param none = { 0 };

	return (int)syscall(SYS_sched_setscheduler, tid, policy, &none);
}

/* Move the calling thread to @cpu (one reader_cpu gave) and make that where
 * it serves, unless main took over meanwhile (follow_cpu -1: stays so). */
static void pin(struct cvm_procfs_server *srv, int cpu)
{
	int was = atomic_load(&srv->follow_cpu);
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (was >= 0 && sched_setaffinity(0, sizeof(one), &one) == 0)
		atomic_compare_exchange_strong(&srv->follow_cpu, &was, cpu);
}

/* Whether opens are parked, without the lock: only to skip taking it
 * (state.h); what the holder of the lock sees decides. */
static size_t parked_hint(const struct cvm_procfs_server *srv)
{
	return __atomic_load_n(&srv->n_parked, __ATOMIC_RELAXED);
}

static void *follower(void *arg)
{
	struct cvm_procfs_server *srv = arg;
	char *req = malloc(REQ_SIZE);
	sigset_t all;
	uint64_t v;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);    /* the load timer is main's */
	atomic_store(&srv->follower_tid, (int)syscall(SYS_gettid));
	while (req && read(srv->go_fd, &v, sizeof(v)) == sizeof(v)) {
		double last = cvm_procfs_now();

		/* After a raise by main: idle again (lowering needs nothing). */
		set_policy(0, SCHED_IDLE);
		int cpu = atomic_load(&srv->follow_cpu);    /* main set it before the go */
		if (cpu >= 0)
			pin(srv, cpu);
		/* The lock only while answering: main takes it in between for
		 * sysinfo(2) callers. */
		while (atomic_load(&srv->follow_cpu) >= 0) {        /* -1: main takes over */
			ssize_t n = read(srv->cfg->fuse_fd, req, REQ_SIZE);
			bool done = n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOENT;
			if (n > 0) {
				pthread_mutex_lock(&srv->serving);
				/* Errors: main sees the same for itself. */
				done = cvm_procfs_handle(srv, srv->cfg->fuse_fd, req, (size_t)n) < 0 &&
				       errno != ENOENT;
				if ((cpu = reader_cpu(srv, req, (size_t)n)) >= 0 &&
				    cpu != atomic_load(&srv->follow_cpu))
					pin(srv, cpu);
				pthread_mutex_unlock(&srv->serving);
				atomic_fetch_add(&srv->followed, 1);
				last = cvm_procfs_now();
			}
			if (parked_hint(srv)) {
				pthread_mutex_lock(&srv->serving);
				done |= srv->n_parked && unpark(srv, srv->cfg->fuse_fd) < 0;
				pthread_mutex_unlock(&srv->serving);
			}
			if (done || cvm_procfs_now() - last > FOLLOW_SPIN)
				atomic_store(&srv->follow_cpu, -1);
		}
		/* Asleep it is idle-class again, whether main raised it or not:
		 * a raise lasts for one hand-back, not until the next go. */
		set_policy(0, SCHED_IDLE);
		v = 1;
		if (write(srv->cold_fd, &v, sizeof(v)) < 0)
			break;
	}
	free(req);
	return NULL;
}

static bool follower_start(struct cvm_procfs_server *srv)
{
	pthread_attr_t a;
	pthread_t t;
	bool ok;

	if (sched_getaffinity(0, sizeof(srv->own_cpus), &srv->own_cpus) < 0 ||
	    CPU_COUNT(&srv->own_cpus) < 2)
		return false;   /* one CPU: server and readers share it anyway */
	srv->go_fd = eventfd(0, EFD_CLOEXEC);
	srv->cold_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->go_fd < 0 || srv->cold_fd < 0 || pthread_attr_init(&a))
		return false;
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&t, &a, follower, (void *)srv) == 0;
	pthread_attr_destroy(&a);
	return ok;
}

/* Whether a request or a notification waits now. */
static bool work_waits(struct cvm_procfs_server *srv)
{
	struct pollfd pfd[MAX_LISTENERS + 2];
	size_t first, n = watched(srv, srv->cfg->fuse_fd, pfd, &first);

	return poll(pfd, n, 0) > 0;
}

/* After @req was answered: hand the serving to the follower if a reader
 * blocked on it, and watch until the follower hands it back. Called and
 * returns with the lock held. */
static void follow(struct cvm_procfs_server *srv, const char *req, size_t n)
{
	unsigned long seen;
	bool waited = false;
	int raised = 0;         /* milliseconds since it was raised */
	uint64_t v;
	int cpu;

	if (srv->go_fd < 0 || cvm_procfs_now() < srv->paused_until || (cpu = reader_cpu(srv, req, n)) < 0)
		return;
	while (read(srv->cold_fd, &v, sizeof(v)) > 0)
		;
	v = 1;
	atomic_store(&srv->follow_cpu, cpu);
	if (write(srv->go_fd, &v, sizeof(v)) < 0) {
		atomic_store(&srv->follow_cpu, -1);
		return;
	}
	pthread_mutex_unlock(&srv->serving);
	seen = atomic_load(&srv->followed);
	for (;;) {
		struct pollfd f = { srv->cold_fd, POLLIN, 0 };
		if (poll(&f, 1, 1) == 1 && read(srv->cold_fd, &v, sizeof(v)) > 0 &&
		    atomic_load(&srv->follow_cpu) < 0)
			break;          /* it stopped, done with what it had */
		if (raised && raised++ < 5)
			continue;       /* it finishes what it has at normal priority */
		if (raised)
			break;          /* it cannot even run (a realtime hog?): go on */
		if (pthread_mutex_trylock(&srv->serving) == 0) {
			side_work(srv, -1, 0);    /* sysinfo(2) callers */
			cvm_procfs_load_due(srv);
			pthread_mutex_unlock(&srv->serving);
		}
		bool waiting = atomic_load(&srv->followed) == seen && work_waits(srv);
		if (waiting && waited) {
			/* A millisecond and nothing answered: raise it so that it
			 * finishes what it holds and stops, then serve without it. */
			atomic_store(&srv->follow_cpu, -1);
			set_policy(atomic_load(&srv->follower_tid), SCHED_OTHER);
			srv->paused_until = cvm_procfs_now() + FOLLOW_PAUSE;
			raised = 1;
		}
		waited = waiting;
		seen = atomic_load(&srv->followed);
	}
	pthread_mutex_lock(&srv->serving);     /* a late hand-back is drained next time */
}

/* The next request: a reader that opened one file usually closes it (a
 * RELEASE) and opens the next within microseconds, and waking a sleeping
 * server costs a reader more than the answer itself (an idle CPU of a VM
 * wakes slowly). So look again for up to SPIN before sleeping; with opens
 * parked, sleep at most 1 ms. -1 and errno EAGAIN: nothing yet. */
#define SPIN 0.000020
static ssize_t next_request(struct cvm_procfs_server *srv, char *req)
{
	int fd = srv->cfg->fuse_fd;
	ssize_t n = read(fd, req, REQ_SIZE);
	double now = cvm_procfs_now(), until = now + SPIN;

	if (now - srv->last_side > 0.001) {
		/* Busy with files: sysinfo(2) callers must not starve. */
		srv->last_side = now;
		side_work(srv, -1, 0);
	}
	while (n < 0 && errno == EAGAIN && cvm_procfs_now() < until)
		n = read(fd, req, REQ_SIZE);
	if (n >= 0 || errno != EAGAIN)
		return n;
	if (!side_work(srv, fd, srv->n_parked ? 1 : -1)) {
		errno = EAGAIN;
		return -1;
	}
	return read(fd, req, REQ_SIZE);
}

struct cvm_procfs_server *cvm_procfs_server_new(const struct cvm_procfs *p)
{
	struct cvm_procfs_server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return NULL;
	srv->cfg = p;
	srv->go_fd = srv->cold_fd = -1;
	atomic_init(&srv->follow_cpu, -1);
	pthread_mutex_init(&srv->serving, NULL);
	use_state(srv);
	return srv;
}

void cvm_procfs_server_free(struct cvm_procfs_server *srv)
{
	if (!srv)
		return;
	for (size_t i = 0; i < MAX_OPENS; i++)
		free(srv->handles[i].data);
	pthread_mutex_destroy(&srv->serving);
	free(srv);
}

/* Answer requests until the mount goes away (0) or the connection fails. */
static int serve_loop(struct cvm_procfs_server *srv, char *req, struct cvm_error *err)
{
	int fd = srv->cfg->fuse_fd;
	ssize_t n;

	for (;;) {
		if (srv->n_parked && unpark(srv, fd) < 0)
			return 0;
		n = next_request(srv, req);
		cvm_procfs_load_due(srv);        /* the 5 s samples: between requests too */
		if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == ENOENT))
			continue;
		if (n < 0 && errno == EPERM) {
			/* Not mounted yet: the builder mounts it once we run. */
			pthread_mutex_unlock(&srv->serving);
			nanosleep(&(struct timespec){ 0, 1000 * 1000 }, NULL);
			pthread_mutex_lock(&srv->serving);
			continue;
		}
		if (n < 0 && errno == ENODEV)
			return 0;       /* unmounted: the workspace is gone */
		if (n < 0)
			return cvm_error_set(err, errno, "procfs: read /dev/fuse");
		if (cvm_procfs_handle(srv, fd, req, (size_t)n) < 0 && errno != ENOENT)
			return cvm_error_set(err, errno, "procfs: reply");
		follow(srv, req, (size_t)n);
	}
}

int cvm_procfs_serve(const struct cvm_procfs *p, struct cvm_error *err)
{
	cleanup_free char *req = malloc(REQ_SIZE);
	/* Never freed: the follower may still be reading it when this
	 * returns, and the server process ends then. */
	struct cvm_procfs_server *srv = cvm_procfs_server_new(p);

	if (!req || !srv)
		return cvm_error_set(err, ENOMEM, "procfs");
	for (size_t i = 0; i < p->n_listeners; i++)
		add_listener(srv, p->listeners[i]);
	if (p->restarted) {
		/* Requests the dead server had read but not answered: the kernel
		 * puts them back in the queue (Linux >= 6.9). Older kernels answer
		 * ENOSYS here; their readers of that moment get EIO once. */
		struct cvm_fuse_out_header r = { sizeof(r), CVM_FUSE_NOTIFY_RESEND, 0 };
		if (write(p->fuse_fd, &r, sizeof(r)) < 0 && errno != ENOSYS && errno != EINVAL)
			cvm_error_set(err, errno, "procfs: resend");
	}
	cvm_procfs_load_start(srv);
	fcntl(p->fuse_fd, F_SETFL, fcntl(p->fuse_fd, F_GETFL) | O_NONBLOCK);
	start_load_timer();
	pthread_mutex_lock(&srv->serving);
	if (p->follow && !follower_start(srv))
		srv->go_fd = -1;
	return serve_loop(srv, req, err);
}
