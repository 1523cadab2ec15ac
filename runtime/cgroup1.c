/* cgroup v1 hierarchies next to cgroup2 (a hybrid host): keep the outer
 * side's v1 groups out of the workspace.
 *
 * Root inside may mount(2) a v1 hierarchy that already exists ("mount -t
 * cgroup -o memory cgroup /mnt": allowed in a user namespace that owns the
 * cgroup namespace). The mount shows the hierarchy from the root of the
 * caller's cgroup namespace, and a cgroup namespace is rooted, in every
 * hierarchy at once, where its creator stood: the workspace's init is
 * cloned with CLONE_NEWCGROUP, so in the v1 hierarchies that was wherever
 * cvm sat, the outer container's group, or on some nodes the root, with
 * the node's tree and its release_agent (not exploitable from here since
 * Linux 5.17, but a surface all the same).
 *
 * Two ways to close it:
 *  (a) a seccomp user notification on mount(2) and fsopen(2) that refuses
 *      the "cgroup" type. The type is a string in the caller's memory:
 *      read through /proc/PID/mem, then "refuse if cgroup, else CONTINUE"
 *      is racy, as another thread (or a shared mapping) can change the
 *      string between our read and the kernel's (seccomp_unotify(2) warns
 *      about exactly this). A refusal is safe, a CONTINUE after a check is
 *      not; a race-free version would have to do every mount for the
 *      caller (and fsconfig's source too), which is a mount emulator.
 *  (b) give the workspace groups of its own in every v1 hierarchy before
 *      its cgroup namespace is made. Then a v1 mount inside is rooted
 *      there and shows that subtree only: nothing to race, the kernel's
 *      own cgroup namespace rule does the work. Creating a new hierarchy
 *      (a controller not bound yet, or "none,name=x") needs the initial
 *      cgroup namespace, so the workspace cannot go around it.
 * cvm does (b): as PID 1 it makes CVM_CGROUP_WORKSPACE under its own group
 * in each v1 hierarchy and moves itself there before the workspace is
 * cloned, so the init, its cgroup namespace, and everything cvm starts
 * later (cvm exec, the bootstrap, the /proc server) are born in it; the
 * outer container's other processes stay in the parent, which the
 * workspace cannot see. The groups stay outer root's (not delegated): a
 * v1 mount inside is read-only to the workspace's root, which cannot make
 * groups or write limits there. No plain seccomp rule helps on top: a
 * filter sees the type only as a pointer, and refusing mount(2) or
 * fsopen(2) outright would break systemd and container engines inside.
 *
 * cvm reaches each hierarchy through a detached mount of its own
 * (fsopen/fsmount, attached nowhere), so it needs no v1 mount in the
 * outer container and leaves none. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "fdio.h"
#include "mounts.h"

int cvm_cgroup_rmdir_at(int dirfd, const char *name)
{
	for (int i = 0; i < 200; i++) {
		if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	return -1;
}

/* A new cpuset group has no CPUs and no memory nodes: nothing can join it
 * until it gets its parent's. Other hierarchies: nothing to do. */
static int cpuset_inherit(int parent_fd, int ws_fd)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };

	if (faccessat(parent_fd, "cpuset.cpus", F_OK, 0) < 0)
		return 0;
	for (size_t i = 0; i < 2; i++) {
		char v[4096];
		cleanup_close int fd = openat(parent_fd, files[i], O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, v, sizeof(v) - 1);
		if (n < 0)
			return -1;
		v[n] = '\0';
		if (cvm_write_file(ws_fd, files[i], v[0] == '\n' || !v[0] ? "\n" : v, NULL) < 0)
			return -1;
	}
	return 0;
}

/* "cpu,cpuacct" -> { "cpu", "cpuacct" }; "name=systemd" -> { "none",
 * "name=systemd" }: the options that mount this existing hierarchy. */
static void mount_options(char *opts, const char **out, size_t max)
{
	size_t n = 0;
	bool controllers = false;
	char *save = NULL;

	for (char *o = strtok_r(opts, ",", &save); o && n + 2 < max; o = strtok_r(NULL, ",", &save)) {
		controllers |= strncmp(o, "name=", 5) != 0;
		out[n++] = o;
	}
	if (!controllers)
		out[n++] = "none";
	out[n] = NULL;
}

/* cvm's own group in the hierarchy @opts at @path, through a detached
 * mount (an open directory keeps it alive). */
static int open_own_group(const char *opts, const char *path, struct cvm_error *err)
{
	char buf[sizeof(((struct cvm_cg1 *)0)->opts)];
	const char *o[16];
	cleanup_close int mfd = -1;
	int fd;

	snprintf(buf, sizeof(buf), "%s", opts);
	mount_options(buf, o, sizeof(o) / sizeof(o[0]));
	mfd = cvm_fs_new("cgroup", o, 0, err);
	if (mfd < 0)
		return -1;
	fd = openat(mfd, path[1] ? path + 1 : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cvm_error_set(err, errno, "cvm's group %s", path);
	return fd;
}

static int enter_one(struct cvm_cg1 *h, const char *path, struct cvm_error *err)
{
	cleanup_close int ws = -1;

	/* Outside the namespace's root the path climbs ("/.."): not ours. */
	if (path[0] != '/' || strstr(path, "/.."))
		return cvm_error_set(err, 0, "cvm's group %s lies outside its cgroup namespace", path);
	h->parent_fd = open_own_group(h->opts, path, err);
	if (h->parent_fd < 0)
		return -1;
	if (mkdirat(h->parent_fd, CVM_CGROUP_WORKSPACE, 0755) < 0 && errno != EEXIST)
		return cvm_error_set(err, errno, "make %s/" CVM_CGROUP_WORKSPACE, path);
	h->made = true;
	ws = openat(h->parent_fd, CVM_CGROUP_WORKSPACE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ws < 0)
		return cvm_error_set(err, errno, "%s/" CVM_CGROUP_WORKSPACE, path);
	if (cpuset_inherit(h->parent_fd, ws) < 0)
		return cvm_error_set(err, errno, "%s/" CVM_CGROUP_WORKSPACE ": copy the parent's "
				     "cpuset.cpus and cpuset.mems", path);
	/* cgroup.procs: the whole thread group. */
	if (cvm_write_file(ws, "cgroup.procs", "0", NULL) < 0)
		return cvm_error_set(err, errno, "move cvm into %s/" CVM_CGROUP_WORKSPACE, path);
	return 0;
}

/* Call @fn for each v1 hierarchy of @proc_cgroup: its name and our path. */
static int each_hierarchy(const char *proc_cgroup,
			  int (*fn)(const char *ctl, const char *path, void *arg, struct cvm_error *err),
			  void *arg, struct cvm_error *err)
{
	cleanup_file FILE *f = fopen(proc_cgroup, "re");
	char line[4096];

	if (!f)
		return cvm_error_set(err, errno, "%s", proc_cgroup);
	while (fgets(line, sizeof(line), f)) {
		/* ID:CONTROLLERS:PATH; 0:: is cgroup2 */
		char *ctl = strchr(line, ':'), *path;
		if (!ctl || !(path = strchr(ctl + 1, ':')) || path == ctl + 1)
			continue;
		*ctl++ = *path++ = '\0';
		path[strcspn(path, "\n")] = '\0';
		if (strlen(ctl) >= sizeof(((struct cvm_cg1 *)0)->opts))
			return cvm_error_set(err, 0, "cgroup v1 hierarchy %.60s...: name too long", ctl);
		if (fn(ctl, path, arg, err) < 0)
			return cvm_error_prefix(err, "cgroup v1 hierarchy %s (the workspace's own "
						"group there keeps the outer groups out of a v1 mount "
						"inside)", ctl);
	}
	return 0;
}

static int enter_cb(const char *ctl, const char *path, void *arg, struct cvm_error *err)
{
	struct cvm_cgroup_v1 *v = arg;
	struct cvm_cg1 *h;

	if (v->n == CVM_CGROUP_V1_MAX)
		return cvm_error_set(err, 0, "more than %d cgroup v1 hierarchies", CVM_CGROUP_V1_MAX);
	h = &v->h[v->n++];
	*h = (struct cvm_cg1){ .parent_fd = -1 };
	snprintf(h->opts, sizeof(h->opts), "%s", ctl);
	return enter_one(h, path, err);
}

int cvm_cgroup_v1_enter(struct cvm_cgroup_v1 *v, const char *proc_cgroup, struct cvm_error *err)
{
	v->n = 0;
	return each_hierarchy(proc_cgroup, enter_cb, v, err);
}

/* What cvm_cgroup_v1_enter does, with a scratch group that nothing joins. */
static int probe_cb(const char *ctl, const char *path, void *arg, struct cvm_error *err)
{
	size_t *n = arg;
	char name[] = "cvm-check.XXXXXX";
	cleanup_close int parent = -1, ws = -1;
	int r = 0;

	if (path[0] != '/' || strstr(path, "/.."))
		return cvm_error_set(err, 0, "cvm's group %s lies outside its cgroup namespace", path);
	parent = open_own_group(ctl, path, err);
	if (parent < 0)
		return -1;
	/* mkdtemp's name, made in the hierarchy */
	for (int i = 0; i < 100; i++) {
		snprintf(name + 10, 7, "%06x", (unsigned)(rand() ^ getpid() ^ i) & 0xffffff);
		if (mkdirat(parent, name, 0755) == 0)
			break;
		if (errno != EEXIST)
			return cvm_error_set(err, errno, "make a group under %s", path);
	}
	ws = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ws < 0)
		r = cvm_error_set(err, errno, "%s/%s", path, name);
	else if (cpuset_inherit(parent, ws) < 0)
		r = cvm_error_set(err, errno, "%s/%s: copy the parent's cpuset.cpus and cpuset.mems",
				  path, name);
	if (cvm_cgroup_rmdir_at(parent, name) < 0 && r == 0)
		r = cvm_error_set(err, errno, "remove %s/%s", path, name);
	(*n)++;
	return r;
}

int cvm_cgroup_v1_probe(const char *proc_cgroup, size_t *n, struct cvm_error *err)
{
	*n = 0;
	return each_hierarchy(proc_cgroup, probe_cb, n, err);
}

void cvm_cgroup_v1_leave(struct cvm_cgroup_v1 *v)
{
	for (size_t i = 0; i < v->n; i++) {
		struct cvm_cg1 *h = &v->h[i];
		if (h->parent_fd < 0)
			continue;
		cvm_write_file(h->parent_fd, "cgroup.procs", "0", NULL);
		/* What the workspace left is gone with its cgroup2 group by now;
		 * a process still leaving keeps it busy a moment. */
		if (h->made)
			cvm_cgroup_rmdir_at(h->parent_fd, CVM_CGROUP_WORKSPACE);
		cvm_closep(&h->parent_fd);
	}
	v->n = 0;
}
