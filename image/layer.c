/* TEMPORARY, imagepull branch only: a minimal cvm_layer_unpack so that the
 * puller can be tested before layerunpack's image/layer.c lands. The lead
 * takes layerunpack's file instead of this one. It relies on libarchive's
 * ARCHIVE_EXTRACT_SECURE_* checks (with the process's cwd moved into the
 * layer for the duration), turns whiteouts into overlay whiteouts, and
 * does none of the rest the contract asks (xattr policy, device nodes...). */
#include "layer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "runtime/cleanup.h"

static int whiteout(struct archive_entry *e, enum cvm_layer_mode mode, struct cvm_error *err)
{
	const char *path = archive_entry_pathname(e), *base = strrchr(path, '/');
	char target[4096];

	base = base ? base + 1 : path;
	if (!strcmp(base, ".wh..wh..opq")) {
		snprintf(target, sizeof(target), "%.*s", (int)(base - path), path);
		if (!*target)
			snprintf(target, sizeof(target), ".");
		if (mode == CVM_LAYER_OVERLAY &&
		    setxattr(target, "trusted.overlay.opaque", "y", 1, 0) < 0)
			return cvm_error_set(err, errno, "layer: opaque dir %s", target);
		return 0;
	}
	snprintf(target, sizeof(target), "%.*s%s", (int)(base - path), path, base + 4);
	if (mode == CVM_LAYER_OVERLAY && mknod(target, S_IFCHR | 0, makedev(0, 0)) < 0 &&
	    errno != EEXIST)
		return cvm_error_set(err, errno, "layer: whiteout %s", target);
	return 0;
}

static int unpack(struct archive *a, struct archive *w, enum cvm_layer_mode mode,
		  struct cvm_layer_stats *st, struct cvm_error *err)
{
	struct archive_entry *e;
	int r;

	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *base = strrchr(archive_entry_pathname(e), '/');
		base = base ? base + 1 : archive_entry_pathname(e);
		if (!strncmp(base, ".wh.", 4)) {
			if (whiteout(e, mode, err) < 0)
				return -1;
			continue;
		}
		if (archive_write_header(w, e) < ARCHIVE_WARN)
			return cvm_error_set(err, 0, "layer: %s: %s", archive_entry_pathname(e),
					     archive_error_string(w));
		for (;;) {
			const void *buf;
			size_t len;
			la_int64_t off;
			r = archive_read_data_block(a, &buf, &len, &off);
			if (r == ARCHIVE_EOF)
				break;
			if (r < ARCHIVE_WARN)
				return cvm_error_set(err, 0, "layer: %s", archive_error_string(a));
			/* a failed write(2) (ENOSPC) is only ARCHIVE_WARN */
			if (archive_write_data_block(w, buf, len, off) != ARCHIVE_OK)
				return cvm_error_set(err, archive_errno(w), "layer: %s: %s",
						     archive_entry_pathname(e), archive_error_string(w));
			if (st)
				st->bytes += len;
		}
		if (archive_write_finish_entry(w) < ARCHIVE_WARN)
			return cvm_error_set(err, 0, "layer: %s", archive_error_string(w));
		if (st)
			st->files++;
	}
	if (r != ARCHIVE_EOF)
		return cvm_error_set(err, 0, "layer: %s", archive_error_string(a));
	return 0;
}

int cvm_layer_unpack(int blob_fd, int root_fd, enum cvm_layer_mode mode, struct cvm_layer_stats *st,
		     struct cvm_error *err)
{
	struct archive *a = archive_read_new(), *w = archive_write_disk_new();
	cleanup_close int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = -1;

	if (st)
		st->files = st->bytes = 0;
	if (!a || !w || cwd < 0) {
		cvm_error_set(err, errno ? errno : ENOMEM, "layer");
		goto out;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
					  ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
					  ARCHIVE_EXTRACT_SECURE_NODOTDOT |
					  ARCHIVE_EXTRACT_SECURE_SYMLINKS |
					  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
	if (archive_read_open_fd(a, blob_fd, 1 << 16) != ARCHIVE_OK) {
		cvm_error_set(err, 0, "layer: %s", archive_error_string(a));
		goto out;
	}
	if (fchdir(root_fd) < 0) {
		cvm_error_set(err, errno, "layer: chdir");
		goto out;
	}
	rc = unpack(a, w, mode, st, err);
	if (fchdir(cwd) < 0 && rc == 0)
		rc = cvm_error_set(err, errno, "layer: chdir back");
out:
	if (w)
		archive_write_free(w);
	if (a)
		archive_read_free(a);
	return rc;
}
