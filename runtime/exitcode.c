#include "exitcode.h"

#include <errno.h>
#include <sys/wait.h>

int cvm_exit_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	/* stopped/continued are not terminal states; callers never pass them */
	return CVM_EXIT_SETUP_FAILED;
}

int cvm_exec_failure_status(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ELOOP:
	case ENAMETOOLONG:
		return CVM_EXIT_NOT_FOUND;
	default:
		/* EACCES, ENOEXEC, EPERM, ETXTBSY, EISDIR...: it is there, it will not run */
		return CVM_EXIT_CANNOT_EXEC;
	}
}

const char *cvm_exec_failure_reason(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
		return "command not found";
	case EACCES:
	case EPERM:
		return "permission denied (is it executable?)";
	case ENOEXEC:
		return "not an executable format (missing #! line?)";
	case EISDIR:
		return "is a directory";
	case ETXTBSY:
		return "text file busy";
	default:
		return "cannot execute";
	}
}
