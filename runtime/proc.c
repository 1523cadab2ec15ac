#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "proc.h"

pid_t cvm_proc_ppid(int dirfd, const char *name)
{
	char path[4200], buf[512], *paren;
	cleanup_close int fd = -1;
	ssize_t n;
	long ppid;

	snprintf(path, sizeof(path), "%s/stat", name);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm may contain spaces and parens: parse after the last ')' */
	paren = strrchr(buf, ')');
	if (!paren || sscanf(paren + 1, " %*c %ld", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}
