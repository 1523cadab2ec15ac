#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "report.h"
#include "cleanup.h"
#include "fdio.h"
#include "proc.h"

#define CGROUP2_MAGIC 0x63677270
#define CGROUP_SUPER_MAGIC 0x27e0eb

static int write_at(const char *dir, const char *file, const char *value)
{
	char path[4400];

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return cvm_write_file(AT_FDCWD, path, value, NULL);
}

int cvm_cgroup_read_at(const char *dir, const char *file, char *buf, size_t len)
{
	char path[4400];
	cleanup_close int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, len - 1)) < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* The first line, without its newline. */
static int read_at(const char *dir, const char *file, char *buf, size_t len)
{
	if (cvm_cgroup_read_at(dir, file, buf, len) < 0)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static void append(char *out, size_t len, const char *sep, const char *item)
{
	size_t o = strlen(out);

	if (o < len)
		snprintf(out + o, len - o, "%s%s", o ? sep : "", item);
}

/* The mounts: the visible cgroup2 one (a later mount over /sys/fs/cgroup
 * hides an earlier one, the host's .../unified under a container's own, so
 * the last cgroup2 line whose mount point still is cgroup2 wins when @live),
 * and the first cgroup v1 one (still visible, when @live). */
static void scan_mounts(const char *mountinfo, bool live, struct cvm_cg_host *h)
{
	cleanup_file FILE *mi = fopen(mountinfo, "re");
	char line[4096], point[4096], type[64], opts[1024];
	struct statfs sf;

	while (mi && fgets(line, sizeof(line), mi)) {
		/* ... MOUNTPOINT ... - TYPE SOURCE SUPER_OPTIONS */
		if (sscanf(line, "%*s %*s %*s %*s %4095s %*[^-]- %63s %*s %1023s", point, type,
			   opts) < 2)
			continue;
		if (!strcmp(type, "cgroup2") &&
		    (!live || (statfs(point, &sf) == 0 && sf.f_type == CGROUP2_MAGIC)))
			snprintf(h->mount, sizeof(h->mount), "%s", point);
		else if (!strcmp(type, "cgroup") && !h->v1_mount[0] &&
			 (!live || (statfs(point, &sf) == 0 && sf.f_type == CGROUP_SUPER_MAGIC)))
			snprintf(h->v1_mount, sizeof(h->v1_mount), "%s", point);
	}
}

/* "ID:CONTROLLERS:PATH" lines: 0:: is cgroup2, the rest v1 hierarchies. */
static void scan_self(const char *proc_cgroup, struct cvm_cg_host *h)
{
	cleanup_file FILE *f = fopen(proc_cgroup, "re");
	char line[4096];

	while (f && fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *path;
		if (!ctl || !(path = strchr(ctl + 1, ':')))
			continue;
		*ctl = *path++ = '\0';
		path[strcspn(path, "\n")] = '\0';
		if (!strcmp(line, "0") && !ctl[1]) {
			snprintf(h->self, sizeof(h->self), "%s", path);
			h->has_self = true;
		} else if (ctl[1])
			append(h->v1, sizeof(h->v1), " ", ctl + 1);
	}
}

void cvm_cgroup_host(const char *mountinfo, const char *proc_cgroup, bool live,
		     struct cvm_cg_host *h)
{
	char dir[8300];
	struct stat st;

	memset(h, 0, sizeof(*h));
	scan_mounts(mountinfo, live, h);
	scan_self(proc_cgroup, h);
	if (h->mount[0])
		h->layout = h->v1[0] || h->v1_mount[0] ? CVM_CG_HYBRID : CVM_CG_UNIFIED;
	else
		h->layout = h->v1[0] || h->v1_mount[0] ? CVM_CG_V1_ONLY : CVM_CG_NONE;
	/* Outside the namespace's root the path climbs ("/../.."): not ours. */
	snprintf(dir, sizeof(dir), "%s%s", h->mount, h->self);
	h->self_found = h->mount[0] && h->has_self && h->self[0] == '/' &&
			!strstr(h->self, "/..") && stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

void cvm_cgroup_host_why(const struct cvm_cg_host *h, char *out, size_t len)
{
	switch (h->layout) {
	case CVM_CG_NONE:
		snprintf(out, len, "no cgroup filesystem here (neither cgroup2 nor cgroup in "
			 "mountinfo)");
		return;
	case CVM_CG_V1_ONLY:
		snprintf(out, len, "cgroup v1 only here: v1 hierarchies (%.200s%s%.300s) and no "
			 "cgroup2 mount: a cgroup v1 host, or a hybrid one whose container runtime "
			 "hands out only the v1 hierarchies", h->v1[0] ? h->v1 : "mounted",
			 h->v1_mount[0] ? "; one at " : "", h->v1_mount);
		return;
	case CVM_CG_UNIFIED:
	case CVM_CG_HYBRID:
		break;
	}
	if (!h->has_self)
		snprintf(out, len, "cgroup2 is mounted at %.300s, but /proc/self/cgroup has no "
			 "0:: line (a kernel without cgroup v2?)", h->mount);
	else if (!h->self_found)
		snprintf(out, len, "the cgroup2 mount at %.300s does not contain cvm's own cgroup "
			 "%.300s (the 0:: line of /proc/self/cgroup; %.300s%.300s is missing): a bind "
			 "of another group's subtree", h->mount, h->self, h->mount, h->self);
	else if (h->layout == CVM_CG_HYBRID)
		snprintf(out, len, "hybrid: cgroup v1 hierarchies (%.200s) next to cgroup2 at %.300s",
			 h->v1[0] ? h->v1 : h->v1_mount, h->mount);
	else
		snprintf(out, len, "unified: cgroup v2 only, at %.300s", h->mount);
}

int cvm_cgroup_mount(char *out, size_t len)
{
	struct cvm_cg_host h;

	cvm_cgroup_host("/proc/self/mountinfo", "/proc/self/cgroup", true, &h);
	snprintf(out, len, "%s", h.mount);
	return out[0] ? 0 : -1;
}

int cvm_cgroup_self(char *out, size_t len, struct cvm_error *err)
{
	struct cvm_cg_host h;
	char why[700];

	cvm_cgroup_host("/proc/self/mountinfo", "/proc/self/cgroup", true, &h);
	if (!h.self_found) {
		cvm_cgroup_host_why(&h, why, sizeof(why));
		return cvm_error_set(err, 0, "%s. cvm needs " CVM_CGROUP_NEEDS ". To get it: %s",
				     why, h.layout == CVM_CG_HYBRID || h.layout == CVM_CG_UNIFIED ?
				     CVM_CGROUP_FIX_BIND : CVM_CGROUP_FIX_V2);
	}
	if ((size_t)snprintf(out, len, "%s%s", h.mount, strcmp(h.self, "/") ? h.self : "") >= len)
		return cvm_error_set(err, ENAMETOOLONG, "cgroup path");
	return 0;
}

/* The initial cgroup namespace has a fixed inode number; there "0::/" is
 * the host's root cgroup. A container's own group, with or without its own
 * cgroup namespace, is cvm's to use. */
bool cvm_cgroup_in_host_root(void)
{
	struct stat st;
	char line[256] = "";
	cleanup_file FILE *f = fopen("/proc/self/cgroup", "re");

	if (stat("/proc/self/ns/cgroup", &st) < 0 || st.st_ino != 0xEFFFFFFBu)
		return false;
	while (f && fgets(line, sizeof(line), f))
		if (!strcmp(line, "0::/\n"))
			return true;
	return false;
}

int cvm_cgroup_only_ancestors(char *why, size_t len)
{
	pid_t chain[64];
	size_t n = 0;
	struct stat st;
	char self[4096], path[4200], line[32];
	struct cvm_error err = { 0 };
	cleanup_file FILE *f = NULL;

	/* The initial pid namespace's inode number: a shell on a host, whose
	 * session's cgroup cvm must leave alone. */
	if (stat("/proc/self/ns/pid", &st) < 0 || st.st_ino == 0xEFFFFFFCu)
		return -1;
	for (pid_t p = getpid(); p > 0 && n < sizeof(chain) / sizeof(chain[0]); ) {
		char name[32];
		chain[n++] = p;
		snprintf(name, sizeof(name), "/proc/%d", (int)p);
		p = cvm_proc_ppid(AT_FDCWD, name);
	}
	if (cvm_cgroup_self(self, sizeof(self), &err) < 0) {
		snprintf(why, len, "%s", err.msg);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", self);
	if (!(f = fopen(path, "re"))) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		pid_t pid = (pid_t)atoi(line);
		size_t i = 0;
		while (i < n && chain[i] != pid)
			i++;
		if (i == n) {   /* 0: a process of another pid namespace */
			snprintf(why, len, "pid %d in %s is not an ancestor of cvm", (int)pid, self);
			return 0;
		}
	}
	return 1;
}

static bool populated(const char *dir)
{
	char events[512];
	if (read_at(dir, "cgroup.events", events, sizeof(events)) < 0)
		return false;
	return strstr(events, "populated 1") != NULL;
}

/* rmdir @dir and everything below it, children first. */
static void remove_tree(const char *dir)
{
	cleanup_dir DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char sub[4400];
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		remove_tree(sub);
	}
	rmdir(dir);
}

static void wait_empty(const char *dir)
{
	for (int i = 0; i < 200 && populated(dir); i++)
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
}

static void move_all(const char *from, const char *to)
{
	char path[4400], line[32];
	cleanup_file FILE *f = NULL;

	snprintf(path, sizeof(path), "%s/cgroup.procs", from);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		write_at(to, "cgroup.procs", line);     /* one that just exited: fine */
	}
}

static void enable_controllers(struct cvm_cgroup *cg)
{
	char list[256], *save = NULL, missing[256] = "";

	snprintf(list, sizeof(list), "%s", cg->controllers);
	for (char *c = strtok_r(list, " ", &save); c; c = strtok_r(NULL, " ", &save)) {
		char op[64];
		snprintf(op, sizeof(op), "+%s", c);
		if (write_at(cg->root, "cgroup.subtree_control", op) < 0)
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
				 " %s (%s)", c, strerror(errno));
	}
	if (missing[0])
		cvm_report(CVM_REPORT_WARN, "cgroup", "cgroup: could not enable for the workspace:%s",
			   missing);
}

static bool has_controller(const struct cvm_cgroup *cg, const char *file);

/* One line for the controllers the limits need and this host lacks. */
static void missing_note(const struct cvm_cgroup *cg)
{
	static const char *const wanted[] = { "cpu", "memory", "pids" };
	char missing[64] = "";

	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
		if (!has_controller(cg, wanted[i]))
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
				 missing[0] ? ", " : "", wanted[i]);
	if (missing[0])
		cvm_report(CVM_REPORT_WARN, "cgroup", "cgroup: no %s controller in this cgroup2 (a "
			   "hybrid host?): those limits cannot be applied; the workspace still "
			   "gets its delegated group", missing);
}

int cvm_cgroup_setup(struct cvm_cgroup *cg, struct cvm_error *err)
{
	char leaf[4400];

	cg->ws_fd = -1;
	if (cvm_cgroup_self(cg->root, sizeof(cg->root), err) < 0)
		return -1;
	snprintf(cg->ws, sizeof(cg->ws), "%s/" CVM_CGROUP_WORKSPACE, cg->root);
	snprintf(leaf, sizeof(leaf), "%s/" CVM_CGROUP_SUPERVISOR, cg->root);
	/* "No internal processes": controllers can be handed to children only
	 * once no process is left in the group itself. cvm goes first; anything
	 * else in the container's group (a runtime's shim, `unshare`) follows. */
	if ((mkdir(leaf, 0755) < 0 && errno != EEXIST) || write_at(leaf, "cgroup.procs", "0") < 0)
		return cvm_error_set(err, errno, "cgroup %s", leaf);
	move_all(cg->root, leaf);
	if (read_at(cg->root, "cgroup.controllers", cg->controllers, sizeof(cg->controllers)) < 0)
		cg->controllers[0] = '\0';
	missing_note(cg);
	enable_controllers(cg);
	if (access(cg->ws, F_OK) == 0) {
		/* Left by an earlier run in this container: start clean. */
		cvm_cgroup_kill(cg);
		wait_empty(cg->ws);
		remove_tree(cg->ws);
	}
	if (mkdir(cg->ws, 0755) < 0)
		return cvm_error_set(err, errno, "cgroup %s", cg->ws);
	cg->ws_fd = open(cg->ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg->ws_fd < 0)
		return cvm_error_set(err, errno, "cgroup %s", cg->ws);
	return cvm_cgroup_v1_enter(&cg->v1, "/proc/self/cgroup", err);
}

static bool has_controller(const struct cvm_cgroup *cg, const char *file)
{
	char name[32], ctl[300];
	size_t n = strcspn(file, ".");

	snprintf(name, sizeof(name), "%.*s", (int)n, file);
	snprintf(ctl, sizeof(ctl), " %s ", cg->controllers);
	char want[40];
	snprintf(want, sizeof(want), " %s ", name);
	return strstr(ctl, want) != NULL;
}

int cvm_cgroup_limits(struct cvm_cgroup *cg, const struct cvm_cg_limit *l, size_t n,
		      struct cvm_error *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!has_controller(cg, l[i].file)) {
			if (l[i].explicit_)
				return cvm_error_set(err, 0, "%s: needs the %.*s controller, which this "
						     "host's cgroup2 does not offer (cgroup.controllers: "
						     "'%s'); remove the limit or run on a cgroup v2 host",
						     l[i].key, (int)strcspn(l[i].file, "."), l[i].file,
						     cg->controllers);
			cvm_report(CVM_REPORT_WARN, "cgroup", "cgroup: %s not applied (%s = %s): no "
				   "%.*s controller", l[i].file, l[i].key, l[i].value,
				   (int)strcspn(l[i].file, "."), l[i].file);
			continue;
		}
		if (write_at(cg->ws, l[i].file, l[i].value) < 0)
			return cvm_error_set(err, errno, "%s: write '%s' to %s/%s", l[i].key,
					     l[i].value, cg->ws, l[i].file);
	}
	return 0;
}

int cvm_cgroup_delegate(struct cvm_cgroup *cg, uid_t uid, gid_t gid, struct cvm_error *err)
{
	static const char *const files[] = { ".", "cgroup.procs", "cgroup.subtree_control",
					     "cgroup.threads" };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (fchownat(cg->ws_fd, files[i], uid, gid, 0) < 0 && errno != ENOENT)
			return cvm_error_set(err, errno, "delegate %s/%s", cg->ws, files[i]);
	return 0;
}

int cvm_cgroup_read(const struct cvm_cgroup *cg, const char *file, char *buf, size_t len)
{
	return read_at(cg->ws, file, buf, len);
}

int cvm_cgroup_kill(const struct cvm_cgroup *cg)
{
	return write_at(cg->ws, "cgroup.kill", "1");
}

void cvm_cgroup_remove(struct cvm_cgroup *cg)
{
	if (!cg->ws[0])
		return;
	cvm_cgroup_kill(cg);
	wait_empty(cg->ws);
	remove_tree(cg->ws);
	cvm_closep(&cg->ws_fd);
	cvm_cgroup_v1_leave(&cg->v1);
}
