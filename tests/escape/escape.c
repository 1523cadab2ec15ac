/* escape: run as root inside a workspace, tries to reach the outer
 * container (and so the node) in every way we know, and reports each try
 * on one line:
 *
 *     NAME<TAB>blocked<TAB>HOW            the attempt failed; HOW says what stopped it
 *     NAME<TAB>ESCAPED<TAB>WHAT           it worked: a bug in cvm (or the kernel)
 *
 * Every attempt is harmless when it works: a file is opened for writing
 * and closed, or written back with the value it holds; a syscall gets
 * arguments that change nothing (or that the kernel rejects once past its
 * permission checks). The outer side plants what to look for and passes it
 * in the environment or in /escape/env:
 *
 *   ESC_MARKER      an outer file that must stay out of reach
 *   ESC_TAG         a word in the command line of an outer process, and the
 *                   name of a group the outer side makes in the outer
 *                   container's cgroup v1 groups (hybrid hosts)
 *   ESC_OUTER_PID   that process's pid in the outer pid namespace
 *   ESC_NS_<type>   inode of the outer container's namespaces (user, mnt, pid,
 *                   uts, ipc, cgroup, net)
 *   ESC_KEY         serial of a key in outer root's user keyring
 *   ESC_KEY_DESC    its description
 *   ESC_CVM_INO     dev:ino of the cvm binary
 *
 * usage: escape all            every attempt below, once
 *        escape watch SECONDS  meanwhile `cvm exec` runs from outside: try
 *                              to ptrace each new process, open its exe
 *        escape key DESC       (outer side) add a user key, print its serial
 *        escape unkey SERIAL   (outer side) unlink it again */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../probe/errname.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int escaped_count;

static void report(const char *name, bool escaped, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report(const char *name, bool escaped, const char *fmt, ...)
{
	char how[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(how, sizeof(how), fmt, ap);
	va_end(ap);
	for (char *p = how; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	printf("%s\t%s\t%s\n", name, escaped ? "ESCAPED" : "blocked", how);
	fflush(stdout);
	escaped_count += escaped;
}

/* A syscall that must fail: blocked with its errno, else escaped. */
static void expect_fail(const char *name, long r, const char *what)
{
	if (r < 0)
		report(name, false, "%s", errno_name(errno));
	else
		report(name, true, "%s", what);
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

static bool marker_reachable_at(int dirfd, const char *prefix)
{
	const char *m = env_or("ESC_MARKER", "/nonexistent-marker");
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s", prefix, m + (prefix[0] ? 1 : 0));
	return fstatat(dirfd, path, &st, 0) == 0;
}

static bool read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Numeric entries of /proc, in order. */
static int list_pids(pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) && n < max)
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
			pids[n++] = atoi(de->d_name);
	if (d)
		closedir(d);
	return n;
}

/* ---- processes and namespaces ------------------------------------------- */

static void a_outer_processes_invisible(void)
{
	const char *tag = env_or("ESC_TAG", "cvm-escape-tag-unset");
	pid_t pids[4096];
	int n = list_pids(pids, 4096);

	for (int i = 0; i < n; i++) {
		char path[64], cmd[4096];
		snprintf(path, sizeof(path), "/proc/%d/cmdline", pids[i]);
		if (!read_file(path, cmd, sizeof(cmd)))
			continue;
		for (size_t j = 0; j + 1 < sizeof(cmd) && (cmd[j] || cmd[j + 1]); j++)
			if (!cmd[j])
				cmd[j] = ' ';
		if (strstr(cmd, tag)) {
			report("see_outer_processes", true, "pid %d runs the outer marker", pids[i]);
			return;
		}
	}
	report("see_outer_processes", false, "pid namespace: %d processes, none outer", n);
}

/* A pid number of the outer side names, at most, a workspace process. */
static bool is_outer_marker(pid_t pid)
{
	char path[64], cmd[4096];

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if (!read_file(path, cmd, sizeof(cmd)))
		return false;
	return strstr(cmd, env_or("ESC_TAG", "cvm-escape-tag-unset")) != NULL;
}

static void a_signal_outer_pid(void)
{
	pid_t pid = atoi(env_or("ESC_OUTER_PID", "0"));

	if (pid <= 0)
		return report("signal_outer_process", true, "ESC_OUTER_PID not given");
	if (kill(pid, 0) < 0)
		return report("signal_outer_process", false, "pid namespace: %s",
			      errno_name(errno));
	report("signal_outer_process", is_outer_marker(pid),
	       "pid namespace: pid %d here is a workspace process", pid);
}

static void a_pidfd_outer_pid(void)
{
	pid_t pid = atoi(env_or("ESC_OUTER_PID", "0"));
	long fd = syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return report("pidfd_of_outer_process", false, "pid namespace: %s",
			      errno_name(errno));
	close((int)fd);
	report("pidfd_of_outer_process", is_outer_marker(pid),
	       "pid namespace: pid %d here is a workspace process", pid);
}

static void a_ptrace_outer_pid(void)
{
	pid_t pid = atoi(env_or("ESC_OUTER_PID", "0"));

	if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0)
		return report("ptrace_outer_process", false, "pid namespace: %s",
			      errno_name(errno));
	ptrace(PTRACE_DETACH, pid, 0, 0);
	report("ptrace_outer_process", is_outer_marker(pid),
	       "pid namespace: pid %d here is a workspace process", pid);
}

static unsigned long ns_ino(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* Every namespace this process is in, and every one any visible process is
 * in, differs from the outer container's (the network too, unless the
 * workspace shares it by configuration: network = host). */
static void a_namespaces_are_own(void)
{
	static const char *const types[] = { "user", "mnt", "pid", "uts", "ipc", "cgroup" };
	pid_t pids[4096];
	int n = list_pids(pids, 4096);

	for (size_t t = 0; t < ARRAY_LEN(types); t++) {
		char var[32];
		snprintf(var, sizeof(var), "ESC_NS_%s", types[t]);
		unsigned long outer = strtoul(env_or(var, "0"), NULL, 10);
		if (!outer)
			return report("outer_namespaces_reachable", true, "%s not given", var);
		for (int i = 0; i < n; i++) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/ns/%s", pids[i], types[t]);
			if (ns_ino(path) == outer)
				return report("outer_namespaces_reachable", true,
					      "pid %d is in the outer %s namespace", pids[i], types[t]);
		}
	}
	report("outer_namespaces_reachable", false,
	       "no visible process is in an outer namespace (user mnt pid uts ipc cgroup)");
}

static void a_setns_outer_by_path(void)
{
	static const char *const types[] = { "mnt", "pid", "user", "cgroup", "ipc", "uts" };
	pid_t pid = atoi(env_or("ESC_OUTER_PID", "0"));

	for (size_t t = 0; t < ARRAY_LEN(types); t++) {
		char path[64], var[32];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, types[t]);
		snprintf(var, sizeof(var), "ESC_NS_%s", types[t]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		bool outer = fstat(fd, &st) == 0 &&
			     (unsigned long)st.st_ino == strtoul(env_or(var, "0"), NULL, 10);
		if (outer && setns(fd, 0) == 0) {
			close(fd);
			return report("setns_outer_by_path", true, "entered the outer %s namespace",
				      types[t]);
		}
		close(fd);
	}
	report("setns_outer_by_path", false,
	       "pid namespace: /proc/%d/ns/* is not the outer process's", pid);
}

/* ---- files of the outer side --------------------------------------------- */

static void a_proc_root_and_cwd(void)
{
	pid_t pids[4096];
	int n = list_pids(pids, 4096), denied = 0;

	for (int i = 0; i < n; i++) {
		static const char *const links[] = { "root", "cwd" };
		for (size_t l = 0; l < 2; l++) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/%s", pids[i], links[l]);
			int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				denied++;
				continue;
			}
			bool hit = marker_reachable_at(fd, "") ||
				   marker_reachable_at(fd, "../../../../../../../../");
			close(fd);
			if (hit)
				return report("outer_files_via_proc_root_cwd", true,
					      "marker reached through %s", path);
		}
	}
	report("outer_files_via_proc_root_cwd", false,
	       "mount namespace + pivot_root: %d processes' root/cwd are the workspace's (%d "
	       "not dumpable)", n, denied);
}

/* fds 0..1024 of this process, and of every visible process. */
static void a_leaked_fds(void)
{
	int open_fds = 0;

	for (int fd = 0; fd <= 1024; fd++) {
		struct stat st;
		char path[64];
		if (fstat(fd, &st) < 0)
			continue;
		open_fds++;
		if (S_ISDIR(st.st_mode) && (marker_reachable_at(fd, "") ||
					    marker_reachable_at(fd, "../../../../../../../../")))
			return report("outer_files_via_leaked_fd", true, "fd %d reaches the marker", fd);
		snprintf(path, sizeof(path), "/proc/self/fd/%d/../../../..", fd);
		int d = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (d >= 0) {
			bool hit = marker_reachable_at(d, "");
			close(d);
			if (hit)
				return report("outer_files_via_leaked_fd", true,
					      "%s reaches the marker", path);
		}
	}
	report("outer_files_via_leaked_fd", false,
	       "cvm closes its fds before exec: %d open here, none reaching out", open_fds);
}

static void a_other_processes_fds(void)
{
	pid_t pids[4096];
	int n = list_pids(pids, 4096), seen = 0, denied = 0;

	for (int i = 0; i < n; i++) {
		char dir[64];
		snprintf(dir, sizeof(dir), "/proc/%d/fd", pids[i]);
		DIR *d = opendir(dir);
		struct dirent *de;
		if (!d) {
			denied++;
			continue;
		}
		while ((de = readdir(d))) {
			char path[400];
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			int fd = open(path, O_PATH | O_CLOEXEC);
			if (fd < 0)
				continue;
			seen++;
			struct stat st;
			bool hit = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
				   (marker_reachable_at(fd, "") ||
				    marker_reachable_at(fd, "../../../../../../../../"));
			close(fd);
			if (hit) {
				closedir(d);
				return report("outer_files_via_other_fds", true, "%s reaches the marker",
					      path);
			}
		}
		closedir(d);
	}
	report("outer_files_via_other_fds", false,
	       "%d fds of workspace processes, none reaching out; %d processes not dumpable",
	       seen, denied);
}

struct handle_ino32 {
	unsigned int handle_bytes;
	int handle_type;
	uint32_t ino, gen;
};

/* shocker (2014): open a file by handle, past every mount; the root inode
 * of an ext4/xfs filesystem is 2 (FILEID_INO32_GEN). */
static void a_open_by_handle(void)
{
	struct handle_ino32 h = { 8, 1, 2, 0 };
	int mnt = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long fd = syscall(SYS_open_by_handle_at, mnt, &h, O_RDONLY | O_DIRECTORY);

	close(mnt);
	if (fd >= 0) {
		bool hit = marker_reachable_at((int)fd, "");
		close((int)fd);
		return report("open_by_handle_at", true, "opened a filesystem root by handle%s",
			      hit ? " and reached the marker" : "");
	}
	report("open_by_handle_at", false, "%s", errno_name(errno));
}

static void a_name_to_handle(void)
{
	struct { unsigned int bytes; int type; unsigned char h[128]; } fh = { 128, 0, { 0 } };
	int mount_id;

	expect_fail("name_to_handle_at",
		    syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &fh, &mount_id, 0),
		    "made a file handle (input for open_by_handle_at)");
}

static void a_chroot_double(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		mkdir("/tmp/.esc-chroot", 0700);
		if (chroot("/tmp/.esc-chroot") < 0)
			_exit(2);
		for (int i = 0; i < 32; i++)
			if (chdir("..") < 0)
				break;
		if (chroot(".") < 0)
			_exit(3);
		_exit(marker_reachable_at(AT_FDCWD, "") ? 1 : 0);
	}
	int st;
	waitpid(pid, &st, 0);
	rmdir("/tmp/.esc-chroot");
	if (WEXITSTATUS(st) == 1)
		return report("chroot_double_escape", true, "reached the marker");
	report("chroot_double_escape", false,
	       "pivot_root + detached old root: '..' from any chroot ends at the workspace's /");
}

static void a_pivot_root_out(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(2);
		if (chdir("/") < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
			_exit(10 + errno);
		umount2(".", MNT_DETACH);
		if (chdir("/") < 0)
			_exit(2);
		_exit(marker_reachable_at(AT_FDCWD, "") ||
		      marker_reachable_at(AT_FDCWD, "../../../../") ? 1 : 0);
	}
	int st;
	waitpid(pid, &st, 0);
	if (WEXITSTATUS(st) == 1)
		return report("pivot_root_out", true, "reached the marker");
	if (WEXITSTATUS(st) >= 10)
		return report("pivot_root_out", false, "mount lock: pivot_root over the locked root: %s",
			      errno_name(WEXITSTATUS(st) - 10));
	report("pivot_root_out", false, "%s",
	       WEXITSTATUS(st) == 0 ? "pivoted; the mount namespace holds nothing of the outer side"
				    : "could not set up a mount namespace");
}

/* ---- /proc/sys, sysrq, /sys ---------------------------------------------- */

static unsigned long ns_ino(const char *path);

/* Whether this process has a network namespace of its own (not the outer
 * container's): then the net sysctls and sockets here are the workspace's. */
static bool own_netns(void)
{
	return ns_ino("/proc/self/ns/net") != strtoul(env_or("ESC_NS_net", "0"), NULL, 10);
}

/* Open for writing; when that works, write back what the file holds. */
static void write_back(const char *name, const char *path, bool open_only)
{
	char old[4096] = "";
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0 && !strncmp(path, "/proc/sys/net/", 14) && own_netns()) {
		close(fd);
		return report(name, false, "network namespace: %s is the workspace's own", path);
	}
	if (fd < 0 && errno == ENOENT)
		return report(name, false, "absent on this kernel: %s", path);
	if (fd < 0)
		return report(name, false, "%s on %s", errno_name(errno), path);
	if (!open_only && read_file(path, old, sizeof(old)) && write(fd, old, strlen(old)) < 0) {
		int e = errno;
		close(fd);
		return report(name, true, "opened %s for writing (write back: %s)", path,
			      errno_name(e));
	}
	close(fd);
	report(name, true, "%s %s", open_only ? "opened for writing" : "wrote back", path);
}

static void a_proc_sys(void)
{
	write_back("write_core_pattern", "/proc/sys/kernel/core_pattern", false);
	write_back("write_modprobe_path", "/proc/sys/kernel/modprobe", false);
	write_back("write_vm_overcommit", "/proc/sys/vm/overcommit_memory", false);
	write_back("open_vm_drop_caches", "/proc/sys/vm/drop_caches", true);
	write_back("write_kernel_sysrq", "/proc/sys/kernel/sysrq", false);
	write_back("write_net_sysctl", "/proc/sys/net/ipv4/ip_forward", false);
	write_back("open_binfmt_misc_register", "/proc/sys/fs/binfmt_misc/register", true);
	write_back("open_sysrq_trigger", "/proc/sysrq-trigger", true);
	write_back("write_sys_uevent_helper", "/sys/kernel/uevent_helper", false);
	write_back("open_sys_kernel_mm", "/sys/kernel/mm/transparent_hugepage/enabled", true);
	write_back("open_sys_module_param", "/sys/module/printk/parameters/time", true);
}

/* The workspace's own cgroup limits belong to the outer side. */
static void a_cgroup_limits(void)
{
	static const char *const files[] = { "cgroup.max.descendants", "cgroup.max.depth",
					     "memory.max", "pids.max", "cpu.max", "cgroup.kill" };
	char path[128];

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", files[i]);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			return report("write_own_cgroup_limits", true, "opened %s for writing", path);
		}
	}
	report("write_own_cgroup_limits", false,
	       "the group's limit files are outer root's (EACCES), only the subtree is delegated");
}

/* A fresh cgroup2 mount shows the cgroup namespace's root, never above it. */
static void a_cgroup_dotdot(void)
{
	char cg[512] = "";

	read_file("/proc/self/cgroup", cg, sizeof(cg));
	if (strstr(cg, ".."))
		return report("cgroup_namespace_dotdot", true, "/proc/self/cgroup: %s", cg);
	mkdir("/tmp/.esc-cg", 0700);
	if (mount("none", "/tmp/.esc-cg", "cgroup2", 0, NULL) == 0) {
		struct stat st;
		bool above = stat("/tmp/.esc-cg/cvm.supervisor", &st) == 0 ||
			     stat("/tmp/.esc-cg/../cvm.supervisor", &st) == 0;
		umount2("/tmp/.esc-cg", MNT_DETACH);
		rmdir("/tmp/.esc-cg");
		if (above)
			return report("cgroup_namespace_dotdot", true, "a new cgroup2 mount shows outer groups");
	}
	rmdir("/tmp/.esc-cg");
	report("cgroup_namespace_dotdot", false,
	       "cgroup namespace: /proc/self/cgroup is '0::/', a new mount is rooted at the workspace");
}

/* CVE-2022-0492: a v1 hierarchy's release_agent runs as the node's root. */
static void a_release_agent(void)
{
	mkdir("/tmp/.esc-cg1", 0700);
	if (mount("cgroup", "/tmp/.esc-cg1", "cgroup", 0, "none,name=cvmescape") < 0 &&
	    mount("cgroup", "/tmp/.esc-cg1", "cgroup", 0, "rdma") < 0) {
		int e = errno;
		rmdir("/tmp/.esc-cg1");
		return report("cgroup_v1_release_agent", false, "mounting a v1 hierarchy: %s",
			      errno_name(e));
	}
	int fd = open("/tmp/.esc-cg1/release_agent", O_WRONLY | O_CLOEXEC);
	int e = errno;
	if (fd >= 0)
		close(fd);
	umount2("/tmp/.esc-cg1", MNT_DETACH);
	rmdir("/tmp/.esc-cg1");
	if (fd >= 0)
		return report("cgroup_v1_release_agent", true, "release_agent opened for writing");
	report("cgroup_v1_release_agent", false, "mounted, but release_agent: %s", errno_name(e));
}

/* Does the tree at @dir (depth <= 8) hold a directory named @name? */
static bool has_group(const char *dir, const char *name, int depth, int *groups)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;

	while (d && !found && (de = readdir(d))) {
		char sub[4096];
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		(*groups)++;
		found = !strcmp(de->d_name, name);
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		if (!found && depth < 8)
			found = has_group(sub, name, depth + 1, groups);
	}
	if (d)
		closedir(d);
	return found;
}

/* One v1 hierarchy (@ctl as /proc/self/cgroup names it; @path our group in
 * it), mounted read-only here: where is its root? Only looks, writes
 * nothing. */
static void v1_mount_one(const char *ctl, const char *path)
{
	char name[96], opts[160], where[] = "/tmp/.esc-cgv1";
	struct stat st;
	int groups = 0;

	snprintf(name, sizeof(name), "cgroup_v1_mount_%s", ctl);
	for (char *p = name; *p; p++)
		if (*p == ',' || *p == '=')
			*p = '_';
	snprintf(opts, sizeof(opts), "%s%s", strncmp(ctl, "name=", 5) ? "" : "none,", ctl);
	mkdir(where, 0700);
	if (mount("cgroup", where, "cgroup", MS_RDONLY, opts) < 0) {
		int e = errno;
		rmdir(where);
		return report(name, false, "mount -t cgroup -o %s: %s", opts, errno_name(e));
	}
	bool root = stat("/tmp/.esc-cgv1/release_agent", &st) == 0;
	bool outer = has_group(where, env_or("ESC_TAG", "cvm-escape-tag-unset"), 0, &groups);
	umount2(where, MNT_DETACH);
	rmdir(where);
	if (root || outer || strstr(path, ".."))
		return report(name, true, "a v1 mount (-o %s) shows %s", opts, root ?
			      "the hierarchy's root (release_agent)" : outer ?
			      "the outer container's group (its marker group)" : "groups above ours");
	report(name, false, "mounted, but rooted at the workspace's own group (cgroup namespace; "
	       "no release_agent, no outer group, %d groups below)", groups);
}

/* A hybrid host: root inside may mount an existing v1 hierarchy. It must
 * show the workspace's own group in it, never the outer container's. */
static void a_cgroup_v1_mounts(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096];
	int n = 0;

	while (f && fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *path;
		if (!ctl || !(path = strchr(ctl + 1, ':')) || path == ctl + 1)
			continue;
		*path++ = '\0';
		path[strcspn(path, "\n")] = '\0';
		v1_mount_one(ctl + 1, path);
		n++;
	}
	if (f)
		fclose(f);
	if (!n)
		report("cgroup_v1_mount", false, "absent on this kernel: no cgroup v1 hierarchy");
}

/* ---- masks and read-only paths --------------------------------------------- */

static void a_masks(void)
{
	static const char *const masked[] = { "/proc/kcore", "/proc/timer_list", "/proc/keys",
					      "/proc/sched_debug" };
	for (size_t i = 0; i < ARRAY_LEN(masked); i++) {
		struct stat st;
		char buf[64];
		if (stat(masked[i], &st) < 0)
			continue;
		if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
			return report("masks_are_the_null_device", true, "%s is not /dev/null", masked[i]);
		int fd = open(masked[i], O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && read(fd, buf, sizeof(buf)) > 0) {
			close(fd);
			return report("masks_are_the_null_device", true, "%s has content", masked[i]);
		}
		if (fd >= 0)
			close(fd);
	}
	report("masks_are_the_null_device", false, "masked files are the real /dev/null, empty");
}

static void try_umount(const char *name, const char *path)
{
	if (umount2(path, MNT_DETACH) == 0)
		return report(name, true, "unmounted %s", path);
	report(name, false, "mount lock (MNT_LOCKED): %s on %s", errno_name(errno), path);
}

static void a_unmount_masks(void)
{
	static const char *const masks[] = { "/proc/kcore", "/proc/keys", "/proc/timer_list",
					     "/proc/sched_debug" };
	size_t i = 0;
	struct stat st;

	while (i + 1 < ARRAY_LEN(masks) && stat(masks[i], &st) < 0)
		i++;
	try_umount("unmount_mask", masks[i]);
	try_umount("unmount_mask_sys_firmware", "/sys/firmware");
	try_umount("unmount_proc_sys", "/proc/sys");
	try_umount("unmount_dev_to_reveal", "/dev");
}

static void a_remount_rw(void)
{
	if (mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL) == 0) {
		mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
		return report("remount_proc_sys_rw", true, "/proc/sys is writable");
	}
	int e = errno;
	if (mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND, NULL) == 0) {
		mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
		return report("remount_proc_sys_rw", true, "/sys is writable");
	}
	report("remount_proc_sys_rw", false, "mount lock (read-only flag locked): %s, %s",
	       errno_name(e), errno_name(errno));
}

/* A new proc or sysfs is the workspace's to mount; what is the node's in it
 * still asks for capabilities over the node. */
static void a_new_proc_and_sysfs(void)
{
	const char *hit = NULL;

	mkdir("/tmp/.esc-proc", 0700);
	if (mount("proc", "/tmp/.esc-proc", "proc", 0, NULL) == 0) {
		static const char *const w[] = { "/tmp/.esc-proc/sysrq-trigger",
						 "/tmp/.esc-proc/sys/kernel/core_pattern",
						 "/tmp/.esc-proc/sys/vm/drop_caches" };
		for (size_t i = 0; i < ARRAY_LEN(w) && !hit; i++) {
			int fd = open(w[i], O_WRONLY | O_CLOEXEC);
			if (fd >= 0) {
				close(fd);
				hit = w[i];
			}
		}
		int fd = open("/tmp/.esc-proc/kcore", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			hit = hit ? hit : "/tmp/.esc-proc/kcore";
		}
		umount2("/tmp/.esc-proc", MNT_DETACH);
	}
	rmdir("/tmp/.esc-proc");
	if (hit)
		return report("new_proc_mount_reveals", true, "%s opened", hit);
	report("new_proc_mount_reveals", false,
	       "its node files are outer root's: sysrq-trigger, core_pattern, kcore refused");

	mkdir("/tmp/.esc-sys", 0700);
	if (mount("sysfs", "/tmp/.esc-sys", "sysfs", 0, NULL) < 0) {
		int e = errno;
		rmdir("/tmp/.esc-sys");
		return report("new_sysfs_mount_reveals", false, "mounting sysfs: %s", errno_name(e));
	}
	int fd = open("/tmp/.esc-sys/kernel/uevent_helper", O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	umount2("/tmp/.esc-sys", MNT_DETACH);
	rmdir("/tmp/.esc-sys");
	if (fd >= 0)
		return report("new_sysfs_mount_reveals", true, "uevent_helper opened for writing");
	report("new_sysfs_mount_reveals", false, "mounted (own network namespace); uevent_helper refused");
}

static void a_debugfs(void)
{
	mkdir("/tmp/.esc-dbg", 0700);
	long r = mount("debugfs", "/tmp/.esc-dbg", "debugfs", 0, NULL);
	if (r == 0)
		umount2("/tmp/.esc-dbg", MNT_DETACH);
	expect_fail("mount_debugfs", r, "debugfs mounted");
	rmdir("/tmp/.esc-dbg");
}

/* ---- devices ----------------------------------------------------------- */

static void try_mknod(const char *name, mode_t type, unsigned maj, unsigned min)
{
	long r = mknod("/tmp/.esc-node", type | 0600, makedev(maj, min));
	if (r == 0)
		unlink("/tmp/.esc-node");
	expect_fail(name, r, "made a device node of the node");
}

static void a_devices(void)
{
	try_mknod("mknod_disk", S_IFBLK, 8, 0);
	try_mknod("mknod_dev_mem", S_IFCHR, 1, 1);
	try_mknod("mknod_dev_kmsg", S_IFCHR, 1, 11);
}

/* The node's disks are listed in the (read-only) sysfs: try to mount one. */
static void a_mount_node_disk(void)
{
	char dev[300] = "/dev/vda";
	DIR *d = opendir("/sys/block");
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && strncmp(de->d_name, "loop", 4)) {
			snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
			break;
		}
	if (d)
		closedir(d);
	long fs = syscall(SYS_fsopen, "ext4", 0);
	if (fs < 0)
		return report("mount_node_block_device", false, "fsopen ext4: %s (%s)",
			      errno_name(errno), dev);
	long r = syscall(SYS_fsconfig, fs, 1 /* SET_STRING */, "source", dev, 0);
	if (r == 0)
		r = syscall(SYS_fsconfig, fs, 6 /* CMD_CREATE */, NULL, NULL, 0);
	int e = errno;
	close((int)fs);
	if (r == 0)
		return report("mount_node_block_device", true, "mounted %s", dev);
	report("mount_node_block_device", false, "%s: %s", dev, errno_name(e));
}

/* ---- kernel ------------------------------------------------------------ */

static void a_kernel_calls(void)
{
	struct timespec ts;
	int bb = open("/bin/busybox", O_RDONLY | O_CLOEXEC);

	expect_fail("init_module", syscall(SYS_init_module, "\177ELF", 4, ""), "loaded a module");
	expect_fail("finit_module", syscall(SYS_finit_module, bb, "", 0), "loaded a module");
	close(bb);
	expect_fail("delete_module", syscall(SYS_delete_module, "cvm_escape_no_such_module", 0),
		    "reached module unloading");
	/* flags no kernel knows: past the permission check, EINVAL */
	expect_fail("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL),
		    "reached kexec");
	expect_fail("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0xdead0000UL),
		    "reached kexec");
	expect_fail("iopl", syscall(SYS_iopl, 3), "port I/O granted");
	expect_fail("ioperm", syscall(SYS_ioperm, 0x80, 1, 1), "port I/O granted");
	expect_fail("swapon", syscall(SYS_swapon, "/nonexistent", 0), "reached swapon");
	expect_fail("syslog_read", syscall(SYS_syslog, 3 /* READ_ALL */, (char[64]){ 0 }, 64),
		    "read the node's kernel log");
	clock_gettime(CLOCK_REALTIME, &ts);
	expect_fail("set_the_clock", syscall(SYS_clock_settime, CLOCK_REALTIME, &ts),
		    "set the node's clock (to the same time)");
	expect_fail("acct", syscall(SYS_acct, "/nonexistent/acct"), "reached process accounting");
	expect_fail("userfaultfd_kernel_faults", syscall(SYS_userfaultfd, 0),
		    "kernel-mode userfaultfd");
	int k = open("/proc/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (k >= 0)
		close(k);
	expect_fail("read_proc_kmsg", k, "opened the node's kernel log");
}

/* In a pid namespace, reboot(2) can only end that namespace. The
 * ctrl-alt-del setting is the node's: ask for the one it has. */
static void a_reboot_node(void)
{
	char cad[16] = "0";

	read_file("/proc/sys/kernel/ctrl-alt-del", cad, sizeof(cad));
	long r = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
			 atoi(cad) ? LINUX_REBOOT_CMD_CAD_ON : LINUX_REBOOT_CMD_CAD_OFF, NULL);
	if (r < 0)
		return report("reboot_node", false, "pid namespace: %s", errno_name(errno));
	report("reboot_node", true, "changed the node's ctrl-alt-del (to its value)");
}

static void a_perf(void)
{
	struct perf_event_attr attr = { .type = PERF_TYPE_SOFTWARE, .size = sizeof(attr),
					.config = PERF_COUNT_SW_CPU_CLOCK, .disabled = 1 };
	pid_t pid = atoi(env_or("ESC_OUTER_PID", "0"));
	long fd = syscall(SYS_perf_event_open, &attr, pid, -1, -1, 0);

	if (fd >= 0)
		close((int)fd);
	expect_fail("perf_event_open_outer_pid", fd, "observes an outer process");
	fd = syscall(SYS_perf_event_open, &attr, -1, 0, -1, 0);
	if (fd >= 0)
		close((int)fd);
	expect_fail("perf_event_open_whole_cpu", fd, "observes the whole node's CPU 0");
}

static void a_bpf_kprobe(void)
{
	struct bpf_insn prog[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_KPROBE;
	attr.insns = (uintptr_t)prog;
	attr.insn_cnt = 2;
	attr.license = (uintptr_t)"GPL";
	long fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (fd >= 0)
		close((int)fd);
	expect_fail("bpf_kprobe_program", fd, "loaded a tracing program into the node's kernel");
}

static void a_raw_socket(void)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);

	if (s < 0)
		return report("raw_socket_on_node_network", false, "%s", errno_name(errno));
	close(s);
	if (own_netns())
		return report("raw_socket_on_node_network", false,
			      "network namespace: allowed, on the workspace's own network");
	report("raw_socket_on_node_network", true, "packet socket on the outer network");
}

/* Abstract unix sockets belong to a network namespace, not to a path: with
 * the outer network shared, any listener outside is one connect away
 * (containerd-shim, CVE-2020-15257). The outer side listens on one. */
static void a_abstract_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *tag = env_or("ESC_TAG", "cvm-escape-tag-unset");
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(tag));

	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", tag);
	if (connect(s, (struct sockaddr *)&sa, len) == 0) {
		close(s);
		return report("abstract_socket_of_outer_network", true, "connected to @%s", tag);
	}
	int e = errno;
	close(s);
	report("abstract_socket_of_outer_network", false, "network namespace: @%s: %s", tag,
	       errno_name(e));
}

/* ---- ids, keys, oom ------------------------------------------------------ */

/* A child user namespace may only map ids the workspace has. */
static void a_userns_outer_ids(void)
{
	int go[2];
	char path[64];
	static const char *const maps[] = { "0 65536 1\n", "0 4294967294 1\n", "0 0 65537\n" };

	if (pipe(go) < 0)
		return report("userns_maps_outer_ids", true, "pipe failed");
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(go[1]);
		if (unshare(CLONE_NEWUSER) < 0)
			_exit(1);
		if (read(go[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(go[0]);
	usleep(100000);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	const char *worked = NULL;
	for (size_t i = 0; i < ARRAY_LEN(maps) && !worked; i++) {
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0 && write(fd, maps[i], strlen(maps[i])) > 0)
			worked = maps[i];
		if (fd >= 0)
			close(fd);
	}
	close(go[1]);
	waitpid(pid, NULL, 0);
	if (worked)
		return report("userns_maps_outer_ids", true, "uid_map '%.*s' accepted",
			      (int)strcspn(worked, "\n"), worked);
	report("userns_maps_outer_ids", false,
	       "user namespace: only ids of the workspace's range can be mapped (%s)",
	       errno_name(errno));
}

static void a_keys(void)
{
	long serial = strtol(env_or("ESC_KEY", "0"), NULL, 10);
	const char *desc = env_or("ESC_KEY_DESC", "cvm-escape-key-unset");
	char buf[256];

	long r = syscall(SYS_keyctl, KEYCTL_DESCRIBE, serial, buf, sizeof(buf));
	if (r >= 0)
		return report("keyctl_outer_key", true, "described outer key %ld", serial);
	int e = errno;
	r = syscall(SYS_keyctl, KEYCTL_READ, serial, buf, sizeof(buf));
	if (r >= 0)
		return report("keyctl_outer_key", true, "read outer key %ld", serial);
	r = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", desc, 0);
	if (r >= 0)
		return report("keyctl_outer_key", true, "found '%s' in a keyring", desc);
	report("keyctl_outer_key", false, "keys are per user: %s, %s", errno_name(e),
	       errno_name(errno));
}

static void a_oom_score(void)
{
	char old[32] = "0";
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

	read_file("/proc/self/oom_score_adj", old, sizeof(old));
	if (fd < 0)
		return report("oom_score_adj_below_others", false, "%s", errno_name(errno));
	long r = write(fd, "-1000", 5);
	int e = errno;
	if (r > 0 && write(fd, old, strlen(old)) < 0)
		(void)0;
	close(fd);
	if (r > 0)
		return report("oom_score_adj_below_others", true, "set -1000 (then %s again)", old);
	report("oom_score_adj_below_others", false, "lowering below %s needs the node's "
	       "CAP_SYS_RESOURCE: %s", strtok(old, "\n"), errno_name(e));
}

static void a_hostname(void)
{
	char name[256];

	gethostname(name, sizeof(name));
	if (sethostname("cvm-escape-probe", 16) < 0)
		return report("hostname_of_node", false, "%s", errno_name(errno));
	sethostname(name, strlen(name));
	report("hostname_of_node", false,
	       "uts namespace: changed the workspace's hostname only (the outer side checks)");
}

/* ---- cvm itself ---------------------------------------------------------- */

static void a_control_socket(void)
{
	FILE *f = fopen("/proc/net/unix", "re");
	char line[1024];
	int tried = 0;
	const char *why = "ENOENT";

	if (!f)
		return report("reach_control_socket", false, "/proc/net/unix unreadable");
	while (fgets(line, sizeof(line), f)) {
		char *p = strrchr(line, ' ');
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		if (!p || !strstr(p, "control.sock"))
			continue;
		p[strcspn(p, "\n")] = '\0';
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p + 1);
		int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		tried++;
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(s);
			fclose(f);
			return report("reach_control_socket", true, "connected to %s", sa.sun_path);
		}
		why = errno_name(errno);
		close(s);
	}
	fclose(f);
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/run/cvm/control.sock" };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(s);
		return report("reach_control_socket", true, "connected to /run/cvm/control.sock");
	}
	close(s);
	report("reach_control_socket", false,
	       "it lives in the outer mount namespace: %d path(s) seen in /proc/net/unix, %s",
	       tried, why);
}

static bool is_cvm_binary(const char *path)
{
	struct stat st;
	unsigned long dev = 0, ino = 0;

	sscanf(env_or("ESC_CVM_INO", "0:0"), "%lu:%lu", &dev, &ino);
	return stat(path, &st) == 0 && st.st_ino == ino && st.st_dev == dev;
}

/* The workspace's init is cvm's own (not dumpable): its exe is the cvm
 * binary of the outer side. */
static void a_cvm_init(void)
{
	int fd = open("/proc/1/exe", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return report("write_cvm_binary_via_init_exe", true, "/proc/1/exe opened for writing");
	}
	report("write_cvm_binary_via_init_exe", false, "%s", errno_name(errno));
	fd = open("/proc/1/exe", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		if (is_cvm_binary("/proc/1/exe"))
			return report("read_cvm_binary_via_init_exe", true, "/proc/1/exe is readable cvm");
	}
	report("read_cvm_binary_via_init_exe", false, "init is not dumpable: %s",
	       fd >= 0 ? "not cvm" : errno_name(errno));
	if (ptrace(PTRACE_SEIZE, 1, 0, 0) == 0) {
		ptrace(PTRACE_DETACH, 1, 0, 0);
		char exe[64] = "/proc/1/exe";
		return report("ptrace_cvm_init", is_cvm_binary(exe), "attached to pid 1");
	}
	report("ptrace_cvm_init", false, "init is not dumpable: %s", errno_name(errno));
}

/* While the outer side runs `cvm exec` in a loop: every new process, try to
 * attach to it and to open its exe for writing before it has exec'd. A hit
 * only counts when the process is cvm (runc CVE-2019-5736). */
static int cmd_watch(int seconds)
{
	bool seen[1 << 16] = { false };
	time_t end = time(NULL) + seconds;
	int procs = 0, attached_cvm = 0, opened_cvm = 0, attached_other = 0, held = 0;
	pid_t self = getpid();

	while (time(NULL) < end) {
		pid_t pids[4096];
		int n = list_pids(pids, 4096);
		for (int i = 0; i < n; i++) {
			pid_t pid = pids[i];
			char exe[64];
			if (pid == self || pid == 1 || seen[pid & 0xffff])
				continue;
			seen[pid & 0xffff] = true;
			procs++;
			snprintf(exe, sizeof(exe), "/proc/%d/comm", pid);
			char comm[32] = "";
			read_file(exe, comm, sizeof(comm));
			snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
			/* cvm, inside the workspace, before its exec */
			held += !strcmp(comm, "cvm\n");
			int fd = open(exe, O_WRONLY | O_CLOEXEC);
			if (fd >= 0) {
				close(fd);
				opened_cvm += is_cvm_binary(exe);
			}
			if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
				if (is_cvm_binary(exe))
					attached_cvm++;
				else
					attached_other++;
				ptrace(PTRACE_DETACH, pid, 0, 0);
			}
		}
	}
	if (!held)
		report("ptrace_cvm_exec_before_entry", true,
		       "saw no cvm process before its exec (%d others): nothing was tested", procs);
	else
		report("ptrace_cvm_exec_before_entry", attached_cvm > 0,
		       "not dumpable until exec: %d cvm processes caught before exec, %d attached "
		       "(%d other new processes)", held, attached_cvm, attached_other);
	report("write_cvm_binary_via_exe", opened_cvm > 0 || !held,
	       "not dumpable until exec: cvm's exe opened for writing %d times (%d tries)",
	       opened_cvm, held);
	return escaped_count ? 1 : 0;
}

static int cmd_all(void)
{
	a_outer_processes_invisible();
	a_signal_outer_pid();
	a_pidfd_outer_pid();
	a_ptrace_outer_pid();
	a_namespaces_are_own();
	a_setns_outer_by_path();
	a_proc_root_and_cwd();
	a_leaked_fds();
	a_other_processes_fds();
	a_open_by_handle();
	a_name_to_handle();
	a_chroot_double();
	a_pivot_root_out();
	a_proc_sys();
	a_cgroup_limits();
	a_cgroup_dotdot();
	a_release_agent();
	a_cgroup_v1_mounts();
	a_masks();
	a_unmount_masks();
	a_remount_rw();
	a_new_proc_and_sysfs();
	a_debugfs();
	a_devices();
	a_mount_node_disk();
	a_kernel_calls();
	a_reboot_node();
	a_perf();
	a_bpf_kprobe();
	a_raw_socket();
	a_abstract_socket();
	a_userns_outer_ids();
	a_keys();
	a_oom_score();
	a_hostname();
	a_control_socket();
	a_cvm_init();
	return escaped_count ? 1 : 0;
}

/* Outer side: plant a key in the caller's user keyring, or take it away. */
static int cmd_key(const char *desc)
{
	long k = syscall(SYS_add_key, "user", desc, "cvm-escape-secret", 17, KEY_SPEC_USER_KEYRING);

	if (k < 0)
		return perror("add_key"), 1;
	printf("%ld\n", k);
	return 0;
}

static int cmd_unkey(long serial)
{
	return syscall(SYS_keyctl, KEYCTL_UNLINK, serial, KEY_SPEC_USER_KEYRING) < 0;
}

/* The outer side writes what to aim at once the workspace runs, next to
 * this binary: NAME=VALUE lines. */
static void load_env(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[4200];

	while (f && fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');
		line[strcspn(line, "\n")] = '\0';
		if (eq) {
			*eq = '\0';
			setenv(line, eq + 1, 1);
		}
	}
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	load_env("/escape/env");
	if (argc > 2 && !strcmp(argv[1], "key"))
		return cmd_key(argv[2]);
	if (argc > 2 && !strcmp(argv[1], "unkey"))
		return cmd_unkey(atol(argv[2]));
	if (argc > 1 && !strcmp(argv[1], "all"))
		return cmd_all();
	if (argc > 2 && !strcmp(argv[1], "watch"))
		return cmd_watch(atoi(argv[2]));
	fprintf(stderr, "usage: escape all | watch SECONDS\n");
	return 2;
}
