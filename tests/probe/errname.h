/* errno names for the probes' output. strerrorname_np() is glibc-only, and
 * the probes are built with musl too. */
#ifndef CVM_TESTS_ERRNAME_H
#define CVM_TESTS_ERRNAME_H

#include <errno.h>
#include <stdio.h>

static inline const char *errno_name(int e)
{
	static const struct { int e; const char *name; } names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" }, { EBADF, "EBADF" },
		{ EFAULT, "EFAULT" }, { EACCES, "EACCES" }, { EBUSY, "EBUSY" }, { EINVAL, "EINVAL" },
		{ ENOSYS, "ENOSYS" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { ENOMEM, "ENOMEM" },
		{ EROFS, "EROFS" }, { ENOTDIR, "ENOTDIR" }, { EEXIST, "EEXIST" }, { ETXTBSY, "ETXTBSY" },
		{ EXDEV, "EXDEV" }, { ENODEV, "ENODEV" }, { ENXIO, "ENXIO" }, { ENOTTY, "ENOTTY" },
		{ ECONNREFUSED, "ECONNREFUSED" }, { EISDIR, "EISDIR" }, { ENOKEY, "ENOKEY" },
		{ EKEYREJECTED, "EKEYREJECTED" }, { ENOEXEC, "ENOEXEC" }, { E2BIG, "E2BIG" },
		{ EAGAIN, "EAGAIN" }, { ENOTCONN, "ENOTCONN" }, { EPROTONOSUPPORT, "EPROTONOSUPPORT" },
		{ EAFNOSUPPORT, "EAFNOSUPPORT" }, { ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT" },
	};
	static char other[16];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	snprintf(other, sizeof(other), "E%d", e);
	return other;
}

#endif
