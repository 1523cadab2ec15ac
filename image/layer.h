/* Unpack one OCI / Docker image layer (a tar, gzip- or zstd-compressed or
 * plain) into a directory, without any path ever leaving that directory. */
#ifndef CVM_IMAGE_LAYER_H
#define CVM_IMAGE_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

enum cvm_layer_mode {
	CVM_LAYER_OVERLAY,  /* a layer dir for overlayfs: whiteouts as 0/0 char devices, opaque dirs as
	                       xattr trusted.overlay.opaque=y (the layer stacks as a lower dir) */
	CVM_LAYER_APPLY,    /* apply onto a flattened tree: whiteouts delete, opaque empties the dir */
};

struct cvm_layer_stats {
	uint64_t files, bytes;          /* entries made (whiteouts not counted), file data */
	uint64_t xattrs_dropped;        /* trusted.*, security.* but capability, system.*... */
	uint64_t devices_skipped;       /* char and block devices of the tar (never made) */
};

/* Read the (gzip|zstd|plain, auto-detected) tar from @blob_fd and write it
 * under the directory @root_fd (any fd of it, O_PATH too).
 *
 * Confinement: an entry's path is cleaned ("./a//b" -> "a/b"); an absolute
 * path, or ".." climbing above the root, is refused. Its parents are opened
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): a relative symlink
 * that stays inside is followed (as Docker and umoci do), an absolute
 * symlink or one that climbs out is refused by the kernel (EXDEV). The last
 * component is never followed: an entry replaces a symlink, it does not
 * write through it. A hard link's target is resolved the same way, so it
 * can only name a file inside the root. Every refusal is an error naming
 * the entry, and nothing is written outside the root.
 *
 * Kept: regular files (sparse ones filled), dirs (mode and mtime set once
 * the layer is done, so a read-only dir can be filled), symlinks (target
 * as stored, never followed), hard links, fifos; owner and group exactly as
 * in the tar (unshifted: the idmapped mount shifts them), the mode with
 * setuid, setgid and sticky, mtime and atime (symlinks too), and the xattrs
 * of pax headers (SCHILY.xattr.* / LIBARCHIVE.xattr.*) in the user.*
 * namespace and security.capability. Dropped and counted: every other xattr
 * (trusted.* would let a layer fake overlayfs' own attributes; other
 * security.* labels and system.* ACLs are the node's business) and char and
 * block devices: the workspace gets its own /dev, and a disk's node in an
 * image pulled from a registry must not be a way around the ban on mknod
 * inside. Sockets are skipped too. A skipped entry's name then holds
 * nothing, as if the layer had whited it out: APPLY removes what was there,
 * OVERLAY puts a whiteout there.
 *
 * An entry where another of a different kind exists (a file over a dir, a
 * dir over a symlink...) replaces it, a dir over a dir merges, as the OCI
 * image spec says. Whiteouts: see enum cvm_layer_mode; in APPLY mode they
 * act only on what earlier layers left (a whiteout never hides an entry of
 * its own layer).
 *
 * The root dir's own owner, mode and times change only with a "./" entry
 * (most layers have none): make it root's and 0755, as the top layer's root
 * becomes the workspace's "/". Dirs made on the way for an entry whose
 * parents the tar does not list are root's and 0755, whatever the umask.
 *
 * Returns 0, or -1 with @err ("layer entry usr/bin/x: ..."). On failure
 * the root holds a partial tree for the caller to remove. @st may be NULL;
 * it is zeroed first. */
int cvm_layer_unpack(int blob_fd, int root_fd, enum cvm_layer_mode mode, struct cvm_layer_stats *st,
		     struct cvm_error *err);

/* Apply the layer blobs @blob_fds[0..n) (bottom first) in APPLY mode onto
 * @root_fd, one flattened tree: for the copy path, and past the overlay's
 * limit on lower dirs. @st sums them all. The error names the layer's
 * index. */
int cvm_layers_flatten(const int *blob_fds, size_t n, int root_fd, struct cvm_layer_stats *st,
		       struct cvm_error *err);

#endif
