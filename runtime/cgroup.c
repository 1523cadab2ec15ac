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
#include "cleanup.h"
#include "proc.h"

#define CGROUP2_MAGIC 0x63677270

static int write_at(const char *dir, const char *file, const char *value)
{
	char path[4400];
	cleanup_close int fd = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	return write(fd, value, strlen(value)) == (ssize_t)strlen(value) ? 0 : -1;
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

/* The cgroup2 mount that is visible: a later mount over /sys/fs/cgroup
 * hides an earlier one (the host's .../unified under a container's own),
 * so the last cgroup2 line of mountinfo whose mount point still is cgroup2
 * wins. */
int cvm_cgroup_mount(char *out, size_t len)
{
	cleanup_file FILE *mi = fopen("/proc/self/mountinfo", "re");
	char line[4096], point[4096];
	struct statfs sf;

	out[0] = '\0';
	while (mi && fgets(line, sizeof(line), mi)) {
		char type[64];
		if (sscanf(line, "%*s %*s %*s %*s %4095s %*[^-]- %63s", point, type) == 2 &&
		    !strcmp(type, "cgroup2") && statfs(point, &sf) == 0 &&
		    sf.f_type == CGROUP2_MAGIC)
			snprintf(out, len, "%s", point);
	}
	return out[0] ? 0 : -1;
}

int cvm_cgroup_self(char *out, size_t len, struct cvm_error *err)
{
	cleanup_file FILE *cg = fopen("/proc/self/cgroup", "re");
	char line[4096], mnt[4096], path[4096] = "";

	while (cg && fgets(line, sizeof(line), cg))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(path, sizeof(path), "%s", line + 3);
		}
	if (cvm_cgroup_mount(mnt, sizeof(mnt)) < 0 || !path[0])
		return cvm_error_set(err, 0, "no cgroup2 hierarchy here (nothing of type cgroup2 in "
				     "/proc/self/mountinfo)");
	if ((size_t)snprintf(out, len, "%s%s", mnt, strcmp(path, "/") ? path : "") >= len)
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

static void enable_controllers(struct cvm_cgroup *cg, void (*note)(const char *, void *),
			       void *arg)
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
	if (missing[0] && note) {
		char line[512];
		snprintf(line, sizeof(line), "cgroup: could not enable for the workspace:%s", missing);
		note(line, arg);
	}
}

static bool has_controller(const struct cvm_cgroup *cg, const char *file);

/* One line for the controllers the limits need and this host lacks. */
static void missing_note(const struct cvm_cgroup *cg, void (*note)(const char *, void *),
			 void *arg)
{
	static const char *const wanted[] = { "cpu", "memory", "pids" };
	char missing[64] = "", line[512];

	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
		if (!has_controller(cg, wanted[i]))
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
				 missing[0] ? ", " : "", wanted[i]);
	if (!missing[0] || !note)
		return;
	snprintf(line, sizeof(line), "cgroup: no %s controller in this cgroup2 (a hybrid host?): "
		 "those limits cannot be applied; the workspace still gets its delegated group",
		 missing);
	note(line, arg);
}

int cvm_cgroup_setup(struct cvm_cgroup *cg, void (*note)(const char *, void *), void *arg,
		     struct cvm_error *err)
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
	missing_note(cg, note, arg);
	enable_controllers(cg, note, arg);
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
	return 0;
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
		      void (*note)(const char *, void *), void *arg, struct cvm_error *err)
{
	for (size_t i = 0; i < n; i++) {
		char line[512];
		if (!has_controller(cg, l[i].file)) {
			if (l[i].explicit_)
				return cvm_error_set(err, 0, "%s: needs the %.*s controller, which this "
						     "host's cgroup2 does not offer (cgroup.controllers: "
						     "'%s'); remove the limit or run on a cgroup v2 host",
						     l[i].key, (int)strcspn(l[i].file, "."), l[i].file,
						     cg->controllers);
			snprintf(line, sizeof(line), "cgroup: %s not applied (%s = %s): no %.*s "
				 "controller", l[i].file, l[i].key, l[i].value,
				 (int)strcspn(l[i].file, "."), l[i].file);
			if (note)
				note(line, arg);
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
}
