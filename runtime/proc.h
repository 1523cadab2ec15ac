/* Small readers of /proc shared by the supervisor and the runtime. */
#ifndef CVM_PROC_H
#define CVM_PROC_H

#include <sys/types.h>

/* The parent pid of process @name ("123", "self") from @dirfd's
 * NAME/stat (@dirfd: an fd of /proc, or AT_FDCWD with "/proc/123"), or -1. */
pid_t cvm_proc_ppid(int dirfd, const char *name);

#endif
