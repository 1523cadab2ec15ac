/* cvm image puller: a registry reference to a stack of unpacked layer dirs
 * in a cache (see the cache layout in image/cache.h). image/ never logs: it
 * reports through the progress callback and returns struct cvm_error.
 * Arrows: supervisor/ -> image/ -> runtime/. */
#ifndef CVM_IMAGE_H
#define CVM_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* image/ref.c: a reference as Docker reads it. */
struct cvm_image_ref {
	char *registry;         /* "docker.io", "ghcr.io", "127.0.0.1:5000" */
	char *repository;       /* "library/ubuntu" */
	char *tag;              /* NULL when only a digest was given */
	char *digest;           /* "sha256:<64 hex>" or NULL */
};

int cvm_image_ref_parse(const char *s, const char *default_registry, struct cvm_image_ref *out,
			struct cvm_error *err);
void cvm_image_ref_free(struct cvm_image_ref *r);
/* An absolute path means a rootfs dir, not a reference. */
bool cvm_image_ref_is_path(const char *s);
/* "registry/repository:tag@digest" (the parts that are set), malloc'd. */
char *cvm_image_ref_string(const struct cvm_image_ref *r);

struct cvm_image_progress {
	enum { CVM_PULL_RESOLVED, CVM_PULL_LAYER_START, CVM_PULL_LAYER_BYTES, CVM_PULL_LAYER_DONE,
	       CVM_PULL_LAYER_CACHED, CVM_PULL_NOTE } what;
	const char *digest;     /* layer digest, or the manifest's for RESOLVED */
	unsigned index, count;  /* layer i (0-based) of n */
	uint64_t done, total;   /* bytes */
	const char *note;       /* for NOTE: one line (retry, mirror, fallback, GC) */
};

/* When to ask the registry (Kubernetes' imagePullPolicy). */
enum cvm_pull_policy {
	CVM_PULL_MISSING = 0,   /* a digest already cached: no request; a tag: ask the
	                           registry for its digest, download only what is missing */
	CVM_PULL_ALWAYS,        /* always ask the registry, even for a cached digest */
	CVM_PULL_NEVER,         /* the cache only: an error when the ref is not there */
};

struct cvm_image_opts {
	const char *ref;              /* as the user wrote it */
	const char *default_registry; /* NULL: "docker.io" */
	char *const *mirrors;         /* Docker Hub mirrors (host[:port]), tried first; may be NULL */
	const char *cache_dir;        /* absolute */
	const char *auth_json;        /* docker config JSON text (CODER_IMAGE_PULL_SECRET) or NULL */
	const char *auth_file;        /* path of a docker config.json or NULL */
	const char *ca_dir;           /* extra CA certs dir (PEM files) or NULL */
	const char *os, *arch;        /* NULL: the node's (linux, uname -m as GOARCH) */
	const char *variant;          /* NULL: any (arm: from uname -m) */
	enum cvm_pull_policy policy;
	bool offline_ok;              /* registry unreachable: use what refs/ has for this ref */
	void (*progress)(const struct cvm_image_progress *p, void *arg);
	void *progress_arg;
};

struct cvm_image {
	char *digest;           /* the image manifest's digest (after the platform choice) */
	char **layers;          /* absolute dirs of the unpacked layers, bottom first, NULL-terminated */
	size_t n_layers;
	char *config_json;      /* the image config blob (Env, User, WorkingDir, Entrypoint...) */
	uint64_t downloaded;    /* bytes fetched from the registry by this pull */
	int lock_fd;            /* the cache lock, held shared until cvm_image_free: GC by
	                           another pull cannot remove these layers meanwhile */
};

int cvm_image_pull(const struct cvm_image_opts *o, struct cvm_image *out, struct cvm_error *err);
void cvm_image_free(struct cvm_image *img);

#endif
