#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <mbedtls/base64.h>

#include "runtime/cleanup.h"

void cvm_auth_wipe(char *secret)
{
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

static bool hub_host(const char *h)
{
	return !strcmp(h, "docker.io") || !strcmp(h, "index.docker.io") ||
	       !strcmp(h, "registry-1.docker.io");
}

void cvm_auth_key_host(const char *key, char *out, size_t len)
{
	const char *p = strstr(key, "://");
	size_t n;

	p = p ? p + 3 : key;
	n = strcspn(p, "/");
	if (n >= len)
		n = len - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[n] = '\0';
	if (hub_host(out))
		snprintf(out, len, "docker.io");
}

static char *decode_auth(const char *b64)
{
	size_t n = strlen(b64), olen = 0;
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	if (mbedtls_base64_decode((unsigned char *)out, n, &olen, (const unsigned char *)b64, n) != 0 ||
	    !memchr(out, ':', olen)) {
		explicit_bzero(out, n + 1);
		free(out);
		return NULL;
	}
	out[olen] = '\0';
	return out;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* One "auths" entry: "auth", else "username" + "password". */
static int entry_creds(json_object *e, const char *what, const char *key, char **userpass,
		       struct cvm_error *err)
{
	const char *auth = str_field(e, "auth"), *user = str_field(e, "username"),
		   *pass = str_field(e, "password");

	if (auth && *auth) {
		if (!(*userpass = decode_auth(auth)))
			return cvm_error_set(err, 0,
					     "%s: auths[\"%s\"].auth is not base64 of USER:PASSWORD", what, key);
		return 1;
	}
	if (user && pass) {
		size_t n = strlen(user) + strlen(pass) + 2;
		if (!(*userpass = malloc(n)))
			return cvm_error_set(err, ENOMEM, "%s", what);
		snprintf(*userpass, n, "%s:%s", user, pass);
		return 1;
	}
	if (str_field(e, "identitytoken"))
		return cvm_error_set(err, 0,
				     "%s: auths[\"%s\"] has only an identitytoken (a credential helper's "
				     "OAuth token), which cvm cannot use: give auth or username/password",
				     what, key);
	return 0;
}

int cvm_auth_lookup(const char *json, const char *what, const char *registry, char **userpass,
		    struct cvm_error *err)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *root, *auths;
	char want[256];
	int rc = 0;

	*userpass = NULL;
	if (!tok)
		return cvm_error_set(err, ENOMEM, "%s", what);
	root = json_tokener_parse_ex(tok, json, (int)strlen(json));
	if (!root || json_tokener_get_error(tok) != json_tokener_success) {
		/* the position only: the text holds secrets */
		cvm_error_set(err, 0, "%s is not JSON (at byte %zu): expected a docker config "
			      "{\"auths\": {\"HOST\": {\"auth\": \"BASE64(USER:PASSWORD)\"}}}",
			      what, json_tokener_get_parse_end(tok));
		json_object_put(root);
		json_tokener_free(tok);
		return -1;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return cvm_error_set(err, 0, "%s: not a JSON object with \"auths\"", what);
	}
	cvm_auth_key_host(registry, want, sizeof(want));
	if (json_object_object_get_ex(root, "auths", &auths) &&
	    json_object_is_type(auths, json_type_object)) {
		json_object_object_foreach(auths, key, val) {
			char host[256];
			cvm_auth_key_host(key, host, sizeof(host));
			if (strcmp(host, want) || !json_object_is_type(val, json_type_object))
				continue;
			rc = entry_creds(val, what, key, userpass, err);
			if (rc != 0)
				break;
		}
	}
	json_object_put(root);
	return rc;
}

void cvm_auth_challenge_free(struct cvm_auth_challenge *c)
{
	free(c->realm);
	free(c->service);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}

/* token or quoted-string at *@p; malloc'd, *@p moved past it. */
static char *param_value(const char **p)
{
	const char *s = *p;
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	if (*s == '"') {
		for (s++; *s && *s != '"'; s++) {
			if (*s == '\\' && s[1])
				s++;
			*o++ = *s;
		}
		if (*s == '"')
			s++;
	} else {
		while (*s && *s != ',' && !isspace((unsigned char)*s))
			*o++ = *s++;
	}
	*o = '\0';
	*p = s;
	return out;
}

static enum cvm_auth_scheme scheme_at(const char *p, size_t *n)
{
	if (!strncasecmp(p, "Bearer", 6) && (isspace((unsigned char)p[6]) || !p[6])) {
		*n = 6;
		return CVM_AUTH_BEARER;
	}
	if (!strncasecmp(p, "Basic", 5) && (isspace((unsigned char)p[5]) || !p[5])) {
		*n = 5;
		return CVM_AUTH_BASIC;
	}
	*n = 0;
	return CVM_AUTH_NONE;
}

int cvm_auth_challenge_parse(const char *value, struct cvm_auth_challenge *c)
{
	const char *p = value;
	size_t n;

	memset(c, 0, sizeof(*c));
	while (isspace((unsigned char)*p))
		p++;
	c->scheme = scheme_at(p, &n);
	if (c->scheme == CVM_AUTH_NONE)
		return -1;
	p += n;
	for (;;) {
		const char *name;
		size_t nlen;
		char *v;

		while (isspace((unsigned char)*p) || *p == ',')
			p++;
		if (!*p)
			break;
		name = p;
		while (*p && *p != '=' && *p != ',' && !isspace((unsigned char)*p))
			p++;
		nlen = (size_t)(p - name);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=') /* a new challenge begins: stop at the first one */
			break;
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (!(v = param_value(&p)))
			break;
		if (nlen == 5 && !strncasecmp(name, "realm", 5) && !c->realm)
			c->realm = v;
		else if (nlen == 7 && !strncasecmp(name, "service", 7) && !c->service)
			c->service = v;
		else if (nlen == 5 && !strncasecmp(name, "scope", 5) && !c->scope)
			c->scope = v;
		else
			free(v);
	}
	return 0;
}

char *cvm_auth_token_parse(const char *body, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *root;
	const char *t;
	char *out = NULL;

	if (!tok)
		return NULL;
	root = json_tokener_parse_ex(tok, body, (int)len);
	json_tokener_free(tok);
	if (!root)
		return NULL;
	t = str_field(root, "token");
	if (!t || !*t)
		t = str_field(root, "access_token");
	if (t && *t)
		out = strdup(t);
	json_object_put(root);
	return out;
}
