/* Image manifests and indexes (OCI and Docker schema 2), and the platform
 * choice in an index. */
#ifndef CVM_IMAGE_MANIFEST_H
#define CVM_IMAGE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

struct cvm_descriptor {
	char *media_type;
	char digest[72];
	uint64_t size;
	char *os, *arch, *variant;      /* index entries only */
};

struct cvm_manifest {
	bool index;                     /* an OCI index / Docker manifest list */
	struct cvm_descriptor config;   /* image manifests */
	struct cvm_descriptor *items;   /* layers, or the index's manifests */
	size_t n;
};

/* Parse @body; @media_type (Content-Type, may be NULL) when the body has no
 * "mediaType". Schema 1 and unknown types are refused with a message. */
int cvm_manifest_parse(const char *body, size_t len, const char *media_type, struct cvm_manifest *m,
		       struct cvm_error *err);
void cvm_manifest_free(struct cvm_manifest *m);

/* The node's platform as OCI names it: "linux", uname -m as GOARCH
 * ("amd64", "arm64", ...), and the variant ("v7" for armv7l, "" else). */
void cvm_platform_node(char *arch, size_t alen, char *variant, size_t vlen);

/* The index entry for @os/@arch[/@variant] (@variant NULL or "": any, the
 * first; arm64 also takes "v8" or none). Its position, or -1 with @err
 * listing the platforms there are. */
int cvm_manifest_pick(const struct cvm_manifest *idx, const char *os, const char *arch,
		      const char *variant, struct cvm_error *err);

/* The image config blob's "config": {"Env": [...]}: NAME=VALUE strings,
 * malloc'd and NULL-terminated (empty when the image sets none, or @json is
 * NULL). NULL with @err when it is not JSON or memory ran out. */
char **cvm_image_config_env(const char *json, struct cvm_error *err);

#endif
