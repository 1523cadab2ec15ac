/* Users inside the workspace, from the image's /etc/passwd and /etc/group
 * (untrusted input: bounded lines, resolved inside the root). */
#ifndef CVM_USER_H
#define CVM_USER_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define CVM_USER_MAX_GROUPS 64

struct cvm_user {
	uid_t uid;
	gid_t gid;
	gid_t groups[CVM_USER_MAX_GROUPS];     /* supplementary, primary included */
	size_t n_groups;
	char name[64];
	char home[4096];
	char shell[4096];
};

/* @spec: "name", "uid", "uid:gid", "name:group" or "uid:group". The files
 * are read as etc/passwd and etc/group inside @root_dirfd (AT_FDCWD: the
 * current root). A numeric uid missing from passwd is fine (gid 0 unless
 * given, home "/", shell "/bin/sh"); an unknown name is an error. */
int cvm_user_resolve(int root_dirfd, const char *spec, struct cvm_user *out,
		     struct cvm_error *err);

#endif
