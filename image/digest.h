/* sha256 digests ("sha256:<64 hex>") with mbedtls: streaming and one-shot. */
#ifndef CVM_IMAGE_DIGEST_H
#define CVM_IMAGE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/sha256.h>

#define CVM_DIGEST_LEN 71       /* "sha256:" + 64 hex */

struct cvm_sha256 {
	mbedtls_sha256_context ctx;
};

void cvm_sha256_start(struct cvm_sha256 *h);
void cvm_sha256_update(struct cvm_sha256 *h, const void *buf, size_t n);
/* Finish into @out ("sha256:hex", CVM_DIGEST_LEN + 1 bytes) and free the context. */
void cvm_sha256_finish(struct cvm_sha256 *h, char out[CVM_DIGEST_LEN + 1]);
void cvm_sha256_buf(const void *buf, size_t n, char out[CVM_DIGEST_LEN + 1]);

/* "sha256:<64 lower-case hex>": the only form the cache stores. */
bool cvm_digest_valid(const char *d);
/* The hex part of a valid digest. */
static inline const char *cvm_digest_hex(const char *d)
{
	return d + 7;
}

#endif
