#include "digest.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/version.h>

/* mbedtls 2.x (Debian 12) names the int-returning forms *_ret; 3.x drops the suffix. */
#if MBEDTLS_VERSION_MAJOR < 3
#define sha256_starts mbedtls_sha256_starts_ret
#define sha256_update mbedtls_sha256_update_ret
#define sha256_finish mbedtls_sha256_finish_ret
#else
#define sha256_starts mbedtls_sha256_starts
#define sha256_update mbedtls_sha256_update
#define sha256_finish mbedtls_sha256_finish
#endif

void cvm_sha256_start(struct cvm_sha256 *h)
{
	mbedtls_sha256_init(&h->ctx);
	sha256_starts(&h->ctx, 0);
}

void cvm_sha256_update(struct cvm_sha256 *h, const void *buf, size_t n)
{
	sha256_update(&h->ctx, buf, n);
}

void cvm_sha256_finish(struct cvm_sha256 *h, char out[CVM_DIGEST_LEN + 1])
{
	unsigned char sum[32];

	sha256_finish(&h->ctx, sum);
	mbedtls_sha256_free(&h->ctx);
	memcpy(out, "sha256:", 7);
	for (int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", sum[i]);
}

void cvm_sha256_buf(const void *buf, size_t n, char out[CVM_DIGEST_LEN + 1])
{
	struct cvm_sha256 h;

	cvm_sha256_start(&h);
	cvm_sha256_update(&h, buf, n);
	cvm_sha256_finish(&h, out);
}

bool cvm_digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) || strlen(d) != CVM_DIGEST_LEN)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}
