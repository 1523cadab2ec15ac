/* The workspace's console, relayed to the terminal cvm runs on. */
#ifndef CVM_CONSOLE_H
#define CVM_CONSOLE_H

#include <sys/types.h>

#include "runtime/error.h"

/* Fork the relay: a process of the outer side, named cvm-console, with no
 * capabilities, that copies cvm's stdin to the console's pty @master and
 * the pty's output to cvm's stdout, and passes the terminal's size on at
 * each SIGWINCH. It ends once the workspace whose pidfd is @ws_pidfd has
 * ended, after copying what the workspace wrote last. The caller keeps its
 * own copies of both fds (it should close @master), and reaps the relay. */
pid_t cvm_console_start(int master, int ws_pidfd, struct cvm_error *err);

#endif
