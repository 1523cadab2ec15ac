#include "spawn.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/enter.h"
#include "pid1.h"
#include "runtime/syscalls.h"

static void mark_fds_cloexec(void)
{
	/* CLOEXEC rather than close: the exec-error path still needs stderr
	 * and nothing else, and an exec failure must not leave us fd-less. */
	if (sys_close_range(3, ~0U, CVM_CLOSE_RANGE_CLOEXEC) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

void cvm_child_prepare(pid_t parent_group)
{
	setpgid(0, 0);
	/* SIGTTOU is still blocked here (inherited from cvm), which is what
	 * lets a background process take the terminal's foreground. */
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == parent_group)
		tcsetpgrp(STDIN_FILENO, getpid());
	cvm_pid1_child_reset_signals();
	mark_fds_cloexec();
}

pid_t cvm_spawn_plain(char *const argv[], struct cvm_error *err)
{
	pid_t group = getpgrp();   /* before fork: the parent's setpgid below races the child */
	pid_t pid = fork();

	if (pid < 0)
		return cvm_error_set(err, errno, "fork");
	if (pid == 0) {
		cvm_child_prepare(group);
		cvm_enter_execvp(-1, argv);
	}
	/* Also set the group from the parent, so a signal to -pid right after
	 * fork cannot race the child's own setpgid. */
	setpgid(pid, pid);
	return pid;
}
