/* probe: a static helper the tests run under cvm (and, later, inside the
 * workspace) to observe behaviour from the inside. One subcommand per check;
 * output is plain "key value" lines for the shell tests to match. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <unistd.h>

#include "errname.h"

static int cmd_zombies(pid_t ppid);

/* With @count, also count zombies left after a moment: the control case,
 * where the probe itself is a PID 1 that never reaps. */
static int cmd_orphans(int n, bool count)
{
	/* Each child forks a grandchild and exits at once; the grandchild lives
	 * a moment and exits, so it becomes a zombie whose parent is gone. */
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return perror("fork"), 1;
		if (pid == 0) {
			if (fork() == 0) {
				usleep(20000);
				_exit(0);
			}
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	}
	printf("orphans %d\n", n);
	if (!count)
		return 0;
	usleep(500000);
	return cmd_zombies(getpid());
}

/* Count processes in state Z (optionally only children of @ppid). */
static int cmd_zombies(pid_t ppid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int count = 0;

	if (!d)
		return perror("/proc"), 1;
	while ((de = readdir(d))) {
		char path[300], buf[512], state;
		long pp;
		FILE *f;
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			char *p = strrchr(buf, ')');
			if (p && sscanf(p + 1, " %c %ld", &state, &pp) == 2 && state == 'Z' &&
			    (ppid <= 0 || pp == ppid))
				count++;
		}
		fclose(f);
	}
	closedir(d);
	printf("zombies %d\n", count);
	return 0;
}

/* Print every open fd >= 3 other than the one used to list them. */
static int cmd_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return perror("/proc/self/fd"), 1;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		char target[256] = "";
		char path[64];
		if (!isdigit((unsigned char)de->d_name[0]) || fd < 3 || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		target[len > 0 ? len : 0] = '\0';
		printf("fd %d %s\n", fd, target);
		n++;
	}
	closedir(d);
	printf("fds %d\n", n);
	return 0;
}

static volatile sig_atomic_t last_sig;

static void on_signal(int sig)
{
	last_sig = sig;
}

/* Report each of HUP/USR1/USR2/TERM/TSTP... received; exit 0 after TERM. */
static int cmd_sigwait(void)
{
	const int sigs[] = { SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGWINCH, SIGQUIT };
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, old;

	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&block, sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &block, &old);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		sigsuspend(&old);
		printf("got %s\n", strsignal(last_sig));
		fflush(stdout);
		if (last_sig == SIGTERM)
			return 0;
	}
}

/* Ignore SIGTERM and sleep: the grace-period test's stubborn child. */
static int cmd_stubborn(int seconds)
{
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	printf("ready\n");
	fflush(stdout);
	sleep((unsigned)seconds);
	return 0;
}

/* Touch @mib MiB page by page: under memory.max the OOM killer ends us. */
static int cmd_alloc(int mib)
{
	for (int i = 0; i < mib; i++) {
		char *p = malloc(1 << 20);
		if (!p)
			return perror("malloc"), 1;
		for (int off = 0; off < (1 << 20); off += 4096)
			p[off] = 1;
	}
	printf("allocated %d\n", mib);
	return 0;
}

/* Burn CPU for @secs seconds of wall time. */
static int cmd_spin(int secs)
{
	time_t end = time(NULL) + secs;
	volatile unsigned long x = 0;

	while (time(NULL) < end)
		for (int i = 0; i < 1000000; i++)
			x++;
	return 0;
}

/* open+read+close @path @n times; print the mean in nanoseconds. */
static int cmd_readloop(const char *path, int n)
{
	static char buf[1 << 16];
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);
		ssize_t got, total = 0;
		if (fd < 0)
			return fprintf(stderr, "open %s: %s\n", path, strerror(errno)), 1;
		while ((got = read(fd, buf, sizeof(buf))) > 0)
			total += got;
		close(fd);
		if (got < 0 || total == 0)
			return fprintf(stderr, "read %s: %s\n", path, got < 0 ? strerror(errno) : "empty"), 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.0f\n", ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}

/* A round trip between two processes over pipes, @n times: the caller
 * writes a byte and waits for it to come back, as a reader waits for a
 * FUSE server's answer. With @spin the echoing process polls its pipe
 * without sleeping (as cvm's /proc server does between requests), else it
 * sleeps in read. bench/procfs prints it as the machine's floor for one
 * FUSE round trip. ns per round trip. */
static int cmd_pingpong(int n, bool spin)
{
	int to[2], from[2];
	struct timespec a, b;
	char c = 0;
	pid_t pid;

	if (pipe(to) < 0 || pipe(from) < 0)
		return perror("pipe"), 1;
	if ((pid = fork()) < 0)
		return perror("fork"), 1;
	if (pid == 0) {
		close(to[1]);
		close(from[0]);
		if (spin)
			fcntl(to[0], F_SETFL, O_NONBLOCK);
		for (;;) {
			ssize_t got = read(to[0], &c, 1);
			if (got < 0 && errno == EAGAIN)
				continue;
			if (got <= 0 || write(from[1], &c, 1) != 1)
				_exit(0);
		}
	}
	close(to[0]);
	close(from[1]);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++)
		if (write(to[1], &c, 1) != 1 || read(from[0], &c, 1) != 1)
			return perror("pingpong"), 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	close(to[1]);
	waitpid(pid, NULL, 0);
	printf("%.0f\n", ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}

/* Open once, then read from the start @n times, @ms apart (what procps'
 * top and vmstat do): the first line of each read. Before that, open, read
 * and close it @before times (what most readers do). */
static int cmd_reread(const char *path, int n, int ms, int before)
{
	static char buf[1 << 16];
	int fd;

	for (int i = 0; i < before; i++) {
		if ((fd = open(path, O_RDONLY)) < 0)
			return perror(path), 1;
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
	}
	fd = open(path, O_RDONLY);

	if (fd < 0)
		return perror(path), 1;
	for (int i = 0; i < n; i++) {
		ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);
		if (len < 0)
			return perror("pread"), 1;
		buf[len] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		printf("%s\n", buf);
		fflush(stdout);
		if (i + 1 < n)
			usleep((useconds_t)ms * 1000);
	}
	return 0;
}

/* sysinfo(2) as "key value" lines, sizes in kB like /proc/meminfo. */
/* sysinfo(2) must write the kernel's struct (112 bytes on 64-bit) and not a
 * byte past it: whatever answers it writes into the caller's memory. Prints
 * how many bytes after those 112 changed (0). */
static int cmd_sysinfo_bounds(void)
{
	unsigned char buf[112 + 512];

	memset(buf, 0xa5, sizeof(buf));
	if (syscall(SYS_sysinfo, buf) < 0)
		return perror("sysinfo"), 1;
	int changed = 0;
	for (size_t i = 112; i < sizeof(buf); i++)
		changed += buf[i] != 0xa5;
	printf("sysinfo-overrun %d\n", changed);
	return 0;
}

static int cmd_sysinfo(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return perror("sysinfo"), 1;
	unsigned long long u = si.mem_unit ? si.mem_unit : 1;
	printf("totalram %llu\nfreeram %llu\nsharedram %llu\nbufferram %llu\n"
	       "totalswap %llu\nfreeswap %llu\n", si.totalram * u / 1024, si.freeram * u / 1024,
	       si.sharedram * u / 1024, si.bufferram * u / 1024, si.totalswap * u / 1024,
	       si.freeswap * u / 1024);
	printf("uptime %ld\nloads %lu %lu %lu\nprocs %u\n", si.uptime, si.loads[0], si.loads[1],
	       si.loads[2], (unsigned)si.procs);
	return 0;
}

/* Keep forking sleepers forever: whenever the pid limit frees a slot, it
 * is taken again, so the group stays full. */
static int cmd_forkbomb(void)
{
	for (;;) {
		pid_t pid = fork();
		if (pid == 0) {
			sleep(60);
			_exit(0);
		}
		if (pid < 0)
			usleep(10000);
	}
}

/* Try syscalls that reach the node, each harmless if it went through (no
 * real kernel, module or time is given), and print "name OK" or "name
 * ERRNO-NAME". Run as root inside the workspace. */
static void try_one(const char *name, long r)
{
	printf("%s %s\n", name, r < 0 ? errno_name(errno) : "OK");
}

static int cmd_nodecalls(void)
{
	struct timeval tv;
	struct timespec ts;

	try_one("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
	try_one("init_module", syscall(SYS_init_module, NULL, 0, ""));
	try_one("finit_module", syscall(SYS_finit_module, -1, "", 0));
	try_one("delete_module", syscall(SYS_delete_module, "cvm_no_such_module", 0));
	try_one("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	try_one("swapon", syscall(SYS_swapon, "/nonexistent", 0));
	try_one("acct", syscall(SYS_acct, NULL));
	/* NULL, NULL changes nothing; the kernel lets anyone make the call */
	try_one("settimeofday", syscall(SYS_settimeofday, NULL, NULL));
	gettimeofday(&tv, NULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	try_one("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
	/* lowering the I/O privilege level to where it is: a no-op anyone may do */
	try_one("iopl", syscall(SYS_iopl, 0));
	try_one("userfaultfd", syscall(SYS_userfaultfd, 0));
	try_one("syslog", syscall(SYS_syslog, 10, NULL, 0));
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	int arg = argc > 2 ? atoi(argv[2]) : 0;

	if (!strcmp(cmd, "orphans"))
		return cmd_orphans(arg > 0 ? arg : 100, argc > 3 && !strcmp(argv[3], "count"));
	if (!strcmp(cmd, "zombies"))
		return cmd_zombies(arg);
	if (!strcmp(cmd, "fds"))
		return cmd_fds();
	if (!strcmp(cmd, "sigwait"))
		return cmd_sigwait();
	if (!strcmp(cmd, "stubborn"))
		return cmd_stubborn(arg > 0 ? arg : 3600);
	if (!strcmp(cmd, "alloc"))
		return cmd_alloc(arg);
	if (!strcmp(cmd, "spin"))
		return cmd_spin(arg);
	if (!strcmp(cmd, "nodecalls"))
		return cmd_nodecalls();
	if (!strcmp(cmd, "forkbomb"))
		return cmd_forkbomb();
	if (!strcmp(cmd, "readloop") && argc > 3)
		return cmd_readloop(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "reread") && argc > 4)
		return cmd_reread(argv[2], atoi(argv[3]), atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 0);
	if (!strcmp(cmd, "pingpong") && argc > 3)
		return cmd_pingpong(atoi(argv[2]), !strcmp(argv[3], "spin"));
	if (!strcmp(cmd, "sysinfo-bounds"))
		return cmd_sysinfo_bounds();
	if (!strcmp(cmd, "sysinfo"))
		return cmd_sysinfo();
	fprintf(stderr, "usage: probe orphans N | zombies [PPID] | fds | sigwait | stubborn [S] | "
		"alloc MIB | spin SECONDS | readloop PATH N | reread PATH N MS [BEFORE] | pingpong N spin|sleep | sysinfo | sysinfo-bounds | forkbomb | "
		"nodecalls\n");
	return 2;
}
