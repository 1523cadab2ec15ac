/* __attribute__((cleanup)) helpers with explicit ownership transfer. */
#ifndef CVM_CLEANUP_H
#define CVM_CLEANUP_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

static inline void cvm_freep(void *p)
{
	free(*(void **)p);
}

static inline void cvm_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void cvm_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void cvm_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* A helper process that must not outlive its owner: killed and reaped. */
static inline void cvm_killpidp(pid_t *pid)
{
	if (*pid > 0) {
		int saved = errno;
		kill(*pid, SIGKILL);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = saved;
	}
}

#define cleanup_free __attribute__((cleanup(cvm_freep)))
#define cleanup_close __attribute__((cleanup(cvm_closep)))
#define cleanup_file __attribute__((cleanup(cvm_fclosep)))
#define cleanup_dir __attribute__((cleanup(cvm_closedirp)))
#define cleanup_pid __attribute__((cleanup(cvm_killpidp)))

static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static inline pid_t steal_pid(pid_t *pid)
{
	pid_t r = *pid;
	*pid = -1;
	return r;
}

static inline void *steal_ptr(void *pp)
{
	void **p = pp;
	void *r = *p;
	*p = NULL;
	return r;
}

#endif
