/* OCI distribution client (libcurl): one repository of one registry.
 * Authentication (anonymous, Basic, the Bearer token dance), redirects
 * (the registry's Authorization never goes to another host), retries with
 * backoff on 5xx/429 and connection errors, extra CAs, proxies from the
 * environment (HTTPS_PROXY/NO_PROXY, read by libcurl). */
#ifndef CVM_IMAGE_REGISTRY_H
#define CVM_IMAGE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

struct cvm_registry;

struct cvm_registry_opts {
	const char *registry;           /* as in the reference: "docker.io", "host:5000" */
	const char *repository;
	const char *userpass;           /* "user:password" or NULL (anonymous) */
	const char *ca_dir;             /* extra PEM certificates, or NULL */
	void (*note)(const char *line, void *arg);  /* retries, fallbacks */
	void *note_arg;
};

/* The manifest media types cvm asks for and reads. */
#define CVM_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define CVM_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define CVM_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define CVM_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

/* err->err is CVM_REGISTRY_UNREACHABLE when the registry could not be
 * reached at all (an offline start may use the cache). */
#define CVM_REGISTRY_UNREACHABLE EHOSTUNREACH

int cvm_registry_open(const struct cvm_registry_opts *o, struct cvm_registry **out,
		      struct cvm_error *err);
void cvm_registry_close(struct cvm_registry *r);

/* GET /v2/<repo>/manifests/<@ref> (a tag or a digest). *@body (malloc'd,
 * NUL-terminated), its *@len, its digest (sha256 of the bytes) in @digest,
 * and *@media_type (malloc'd, from Content-Type). When @ref is a digest the
 * bytes must hash to it; when the registry sends Docker-Content-Digest, to
 * that too. */
int cvm_registry_manifest(struct cvm_registry *r, const char *ref, char **body, size_t *len,
			  char digest[72], char **media_type, struct cvm_error *err);

/* HEAD /v2/<repo>/manifests/<@tag>: the Docker-Content-Digest the registry
 * answers with (Docker Hub does not count HEADs against its pull rate
 * limit), or "" when it sends none. The caller still verifies whatever it
 * then uses by content. */
int cvm_registry_manifest_digest(struct cvm_registry *r, const char *tag, char digest[72],
				 struct cvm_error *err);

/* GET /v2/<repo>/blobs/<@digest> into @fd (from its current offset,
 * truncated on a retry), or, with @fd < 0, into *@mem (malloc'd, at most
 * @size bytes). The bytes must be @size long and hash to @digest: anything
 * else is an error, and the caller must not use what was written. @bytes
 * is called as data comes in. *@fetched: bytes moved over the network. */
int cvm_registry_blob(struct cvm_registry *r, const char *digest, uint64_t size, int fd, char **mem,
		      void (*bytes)(uint64_t done, void *arg), void *arg, uint64_t *fetched,
		      struct cvm_error *err);

/* The host the API is on ("registry-1.docker.io" for Docker Hub). */
const char *cvm_registry_api_host(const char *registry);

#endif
