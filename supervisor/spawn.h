#ifndef CVM_SPAWN_H
#define CVM_SPAWN_H

#include <sys/types.h>

#include "runtime/error.h"

/* Make the calling (freshly forked) process a clean child: its own process
 * group, the terminal's foreground group when cvm had the terminal, default
 * signal dispositions, an empty mask, and every fd >= 3 closed on exec.
 * @parent_group is cvm's process group, read before the fork. */
void cvm_child_prepare(pid_t parent_group);

/* Fork a plain child process running @argv. Returns its pid or -1. */
pid_t cvm_spawn_plain(char *const argv[], struct cvm_error *err);

#endif
