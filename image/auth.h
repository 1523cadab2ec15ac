/* Registry credentials and challenges: docker config JSON ("auths"), the
 * WWW-Authenticate header, the token endpoint's answer. Credentials are
 * never put in an error message or a log line. */
#ifndef CVM_IMAGE_AUTH_H
#define CVM_IMAGE_AUTH_H

#include <stddef.h>

#include "runtime/error.h"

/* From docker config JSON @json (envbox's CODER_IMAGE_PULL_SECRET format,
 * or a config.json): the "user:password" for @registry (a reference's
 * registry, e.g. "docker.io", "ghcr.io", "127.0.0.1:5000"), from "auth"
 * (base64 user:password) or "username"/"password". Keys match by host[:port]
 * with any scheme and path ("https://index.docker.io/v1/" is Docker Hub).
 * 1 and *@userpass (malloc'd; free with cvm_auth_wipe), 0 when none matches,
 * -1 with @err when @json is not a docker config (@what names it). */
int cvm_auth_lookup(const char *json, const char *what, const char *registry, char **userpass,
		    struct cvm_error *err);
/* Zero and free a secret. */
void cvm_auth_wipe(char *secret);

enum cvm_auth_scheme { CVM_AUTH_NONE = 0, CVM_AUTH_BASIC, CVM_AUTH_BEARER };

struct cvm_auth_challenge {
	enum cvm_auth_scheme scheme;
	char *realm, *service, *scope;  /* malloc'd, NULL when absent */
};

/* The first Basic or Bearer challenge of a WWW-Authenticate value
 * (RFC 7235: auth-params, quoted strings with backslash escapes). 0, or -1
 * when there is none to use (@c->scheme CVM_AUTH_NONE). */
int cvm_auth_challenge_parse(const char *value, struct cvm_auth_challenge *c);
void cvm_auth_challenge_free(struct cvm_auth_challenge *c);

/* The token of a token endpoint's JSON answer ("token", else
 * "access_token"), malloc'd, or NULL. */
char *cvm_auth_token_parse(const char *body, size_t len);

/* "host[:port]" of a config key: scheme and path removed, lower-cased;
 * Docker Hub's names all become "docker.io". @out has @len bytes. */
void cvm_auth_key_host(const char *key, char *out, size_t len);

#endif
