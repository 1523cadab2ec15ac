#include "registry.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <mbedtls/base64.h>

#include "auth.h"
#include "digest.h"
#include "runtime/cleanup.h"
#include "runtime/testhook.h"

#define MAX_ATTEMPTS 4
#define MAX_REDIRECTS 8
#define MANIFEST_MAX (4u << 20)
#define TOKEN_MAX (1u << 20)
#define ERRBODY_MAX 4096

/* Where distributions keep the system's CA bundle (Debian/Ubuntu/Alpine,
 * Fedora/RHEL, openSUSE, Alpine's cert.pem). */
static const char *const ca_bundles[] = {
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/ssl/cert.pem",
	NULL,
};

struct cvm_registry {
	CURL *curl;
	char *registry;         /* as in the reference, for messages */
	char *repository;
	char *base;             /* "https://host[:port]" */
	char *userpass;         /* never logged */
	char *auth_header;      /* "Authorization: ..." for the registry's host only */
	char *ca_blob;
	size_t ca_len;
	CURLcode last;          /* the last transfer's libcurl result */
	char errbuf[CURL_ERROR_SIZE];
	void (*note)(const char *line, void *arg);
	void *note_arg;
};

/* What a response's body goes into. Non-2xx bodies go to @errbody only. */
struct sink {
	int fd;                         /* >= 0: a file */
	char *buf;                      /* else memory */
	size_t len, cap, max;
	bool hash;
	bool head;                      /* HEAD: headers only */
	struct cvm_sha256 h;
	uint64_t done;
	uint64_t expect;                /* 0: unknown */
	int fail;                       /* errno-like reason the write callback stopped */
	char errbody[ERRBODY_MAX];
	size_t errlen;
	long status;
	char *www_auth, *content_type, *docker_digest;
	void (*bytes)(uint64_t done, void *arg);
	void *bytes_arg;
	uint64_t fetched;
	CURL *curl;
};

static void note(struct cvm_registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct cvm_registry *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!r->note)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->note(line, r->note_arg);
}

const char *cvm_registry_api_host(const char *registry)
{
	if (!strcmp(registry, "docker.io") || !strcmp(registry, "index.docker.io"))
		return "registry-1.docker.io";
	return registry;
}

/* Docker's default insecure registries: loopback, tried with TLS first. */
static bool loopback(const char *host)
{
	return !strncmp(host, "localhost", 9) || !strncmp(host, "127.", 4) || !strncmp(host, "[::1]", 5);
}

static void sink_reset(struct sink *s)
{
	if (s->hash)
		mbedtls_sha256_free(&s->h.ctx);
	s->hash = true;
	cvm_sha256_start(&s->h);
	s->done = 0;
	s->len = 0;
	s->fail = 0;
	s->errlen = 0;
	s->status = 0;
	if (s->fd >= 0 && (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0))
		s->fail = errno;
	free(s->www_auth);
	free(s->content_type);
	free(s->docker_digest);
	s->www_auth = s->content_type = s->docker_digest = NULL;
}

static void sink_free(struct sink *s)
{
	if (s->hash)
		mbedtls_sha256_free(&s->h.ctx);
	s->hash = false;
	free(s->buf);
	free(s->www_auth);
	free(s->content_type);
	free(s->docker_digest);
	s->buf = s->www_auth = s->content_type = s->docker_digest = NULL;
}

static int sink_body(struct sink *s, const char *p, size_t n)
{
	if (s->expect && s->done + n > s->expect)
		return EFBIG;
	if (s->fd >= 0) {
		for (size_t off = 0; off < n;) {
			ssize_t w = write(s->fd, p + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return errno;
			off += (size_t)w;
		}
	} else {
		if (s->len + n > s->max)
			return EFBIG;
		if (s->len + n + 1 > s->cap) {
			size_t cap = (s->len + n + 1) * 2;
			char *b = realloc(s->buf, cap > s->max + 1 ? s->max + 1 : cap);
			if (!b)
				return ENOMEM;
			s->buf = b;
			s->cap = cap > s->max + 1 ? s->max + 1 : cap;
		}
		memcpy(s->buf + s->len, p, n);
		s->len += n;
		s->buf[s->len] = '\0';
	}
	cvm_sha256_update(&s->h, p, n);
	s->done += n;
	if (s->bytes)
		s->bytes(s->done, s->bytes_arg);
	return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	s->fetched += n;
	if (!s->status)
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status < 200 || s->status >= 300) {
		size_t room = sizeof(s->errbody) - 1 - s->errlen, k = n < room ? n : room;
		memcpy(s->errbody + s->errlen, p, k);
		s->errlen += k;
		s->errbody[s->errlen] = '\0';
		return n;
	}
	s->fail = sink_body(s, p, n);
	return s->fail ? 0 : n;
}

static char *header_value(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);
	const char *v, *end = line + n;

	if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
		return NULL;
	for (v = line + k + 1; v < end && isspace((unsigned char)*v); v++)
		;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	return strndup(v, (size_t)(end - v));
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	char *v;

	if (n > 5 && !strncmp(p, "HTTP/", 5)) {
		free(s->www_auth);
		free(s->content_type);
		free(s->docker_digest);
		s->www_auth = s->content_type = s->docker_digest = NULL;
	} else if ((v = header_value(p, n, "WWW-Authenticate"))) {
		/* the first usable challenge wins */
		struct cvm_auth_challenge c;
		if (!s->www_auth && cvm_auth_challenge_parse(v, &c) == 0)
			s->www_auth = steal_ptr(&v);
		cvm_auth_challenge_free(&c);
		free(v);
	} else if ((v = header_value(p, n, "Content-Type"))) {
		free(s->content_type);
		s->content_type = v;
	} else if ((v = header_value(p, n, "Docker-Content-Digest"))) {
		free(s->docker_digest);
		s->docker_digest = v;
	}
	return n;
}

static long backoff_ms(int attempt)
{
	const char *t = cvm_test_hook("CVM_DEBUG_PULL_BACKOFF_MS");
	long base = t ? atol(t) : 500;

	return base << attempt;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool retriable(CURLcode c)
{
	return c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST ||
	       c == CURLE_OPERATION_TIMEDOUT || c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR ||
	       c == CURLE_PARTIAL_FILE || c == CURLE_GOT_NOTHING || c == CURLE_HTTP2 ||
	       c == CURLE_HTTP2_STREAM;
}

static bool unreachable(CURLcode c)
{
	return c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST ||
	       c == CURLE_COULDNT_RESOLVE_PROXY || c == CURLE_OPERATION_TIMEDOUT;
}

static const char *tls_hint(CURLcode c)
{
	return c == CURLE_PEER_FAILED_VERIFICATION || c == CURLE_SSL_CACERT_BADFILE ?
		": give the registry's CA certificate with CODER_EXTRA_CERTS_PATH or [image] ca_dir" : "";
}

/* True when @url is on the registry's own scheme://host:port. */
static bool same_origin(const struct cvm_registry *r, const char *url)
{
	size_t n = strlen(r->base);

	return !strncmp(url, r->base, n) && (url[n] == '/' || url[n] == '\0');
}

/* One GET of @url, no redirect followed. */
static CURLcode perform(struct cvm_registry *r, const char *url, const char *accept,
			const char *auth, struct sink *s)
{
	struct curl_slist *h = NULL, *t;
	CURLcode c;

	if (accept && (t = curl_slist_append(h, accept)))
		h = t;
	if (auth && (t = curl_slist_append(h, auth)))
		h = t;
	curl_easy_setopt(r->curl, CURLOPT_URL, url);
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(r->curl, CURLOPT_HEADERDATA, s);
	if (s->head)
		curl_easy_setopt(r->curl, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(r->curl, CURLOPT_HTTPGET, 1L);
	s->curl = r->curl;
	r->errbuf[0] = '\0';
	c = curl_easy_perform(r->curl);
	r->last = c;
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (c == CURLE_OK)
		curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &s->status);
	return c;
}

/* GET @url following redirects (Authorization @auth only to the registry's
 * own origin, or only to @url's when @auth_any), retrying 5xx/429 and
 * connection errors with backoff. The final status in s->status; -1 with
 * @err on a transport error. */
static int transfer(struct cvm_registry *r, const char *url0, const char *accept, const char *auth,
		    bool auth_any, struct sink *s, const char *what, struct cvm_error *err)
{
	for (int attempt = 0;; attempt++) {
		cleanup_free char *url = strdup(url0);
		CURLcode c = CURLE_OK;

		if (!url)
			return cvm_error_set(err, ENOMEM, "%s", what);
		for (int hop = 0;; hop++) {
			const char *loc = NULL;
			bool send = auth && (auth_any ? !strcmp(url, url0) : same_origin(r, url));
			sink_reset(s);
			c = perform(r, url, accept, send ? auth : NULL, s);
			if (c != CURLE_OK || s->status < 300 || s->status >= 400 || s->status == 304)
				break;
			curl_easy_getinfo(r->curl, CURLINFO_REDIRECT_URL, &loc);
			if (!loc || hop >= MAX_REDIRECTS)
				return cvm_error_set(err, 0, "%s: %s after %d redirects", what,
						     loc ? "still redirected" : "a redirect without Location", hop);
			free(url);
			if (!(url = strdup(loc)))
				return cvm_error_set(err, ENOMEM, "%s", what);
		}
		if (s->fail == EFBIG)
			return cvm_error_set(err, 0, "%s: more bytes than %s", what,
					     s->expect ? "the manifest's size for it" : "cvm accepts for it");
		if (s->fail)
			return cvm_error_set(err, s->fail, "%s: writing what came", what);
		if (c == CURLE_OK && s->status != 429 && s->status < 500)
			return 0;
		if (attempt + 1 >= MAX_ATTEMPTS || (c != CURLE_OK && !retriable(c))) {
			if (c == CURLE_OK)
				return 0;   /* the caller words the status */
			cvm_error_set(err, 0, "%s: %s (%d attempt%s)%s", what,
				      r->errbuf[0] ? r->errbuf : curl_easy_strerror(c), attempt + 1,
				      attempt ? "s" : "", tls_hint(c));
			if (unreachable(c))
				err->err = CVM_REGISTRY_UNREACHABLE;
			return -1;
		}
		if (c != CURLE_OK)
			note(r, "%s: %s; retrying in %ld ms", what, curl_easy_strerror(c), backoff_ms(attempt));
		else
			note(r, "%s: HTTP %ld; retrying in %ld ms", what, s->status, backoff_ms(attempt));
		sleep_ms(backoff_ms(attempt));
	}
}

/* The registry's own words for an error: {"errors":[{"code","message"}]}. */
static void registry_words(const struct sink *s, char *out, size_t len)
{
	json_object *root = json_tokener_parse(s->errbody), *errs, *e, *v;

	out[0] = '\0';
	if (root && json_object_object_get_ex(root, "errors", &errs) &&
	    json_object_is_type(errs, json_type_array) && json_object_array_length(errs) > 0) {
		e = json_object_array_get_idx(errs, 0);
		const char *code = json_object_object_get_ex(e, "code", &v) ? json_object_get_string(v) : "";
		const char *msg = json_object_object_get_ex(e, "message", &v) ? json_object_get_string(v) : "";
		snprintf(out, len, " (%s: %s)", code, msg);
	}
	json_object_put(root);
}

static int set_basic(struct cvm_registry *r, struct cvm_error *err)
{
	size_t n = strlen(r->userpass), olen = 0, cap = 4 * (n / 3 + 2) + 32;
	char *h = malloc(cap);

	if (!h)
		return cvm_error_set(err, ENOMEM, "credentials");
	memcpy(h, "Authorization: Basic ", 21);
	if (mbedtls_base64_encode((unsigned char *)h + 21, cap - 21, &olen,
				  (const unsigned char *)r->userpass, n) != 0) {
		cvm_auth_wipe(h);
		return cvm_error_set(err, 0, "credentials: base64");
	}
	cvm_auth_wipe(r->auth_header);
	r->auth_header = h;
	return 0;
}

static char *basic_header(const char *userpass)
{
	struct cvm_registry tmp = { .userpass = (char *)userpass };

	return set_basic(&tmp, NULL) < 0 ? NULL : tmp.auth_header;
}

static const char *secret_hint(void)
{
	return "set CODER_IMAGE_PULL_SECRET (a docker config JSON with \"auths\"), "
	       "CODER_DOCKER_CONFIG or [image] auth_file";
}

/* The Bearer token dance: GET realm?service=..&scope=.. (Basic credentials
 * when there are, anonymous otherwise), then "Authorization: Bearer". */
static int bearer(struct cvm_registry *r, const struct cvm_auth_challenge *c, struct cvm_error *err)
{
	struct sink s = { .fd = -1, .max = TOKEN_MAX };
	cleanup_free char *url = NULL, *scope_buf = NULL;
	char *svc = NULL, *scope = NULL, *basic = NULL, *token;
	const char *sc = c->scope;
	int rc;

	if (!c->realm || strncmp(c->realm, "http", 4))
		return cvm_error_set(err, 0, "registry %s asks for a Bearer token without a usable realm",
				     r->registry);
	if (r->userpass && !strncmp(c->realm, "http://", 7) && !loopback(c->realm + 7))
		return cvm_error_set(err, 0, "registry %s sends cvm to the token endpoint %s, plain HTTP: "
				     "cvm does not send credentials over it", r->registry, c->realm);
	if (!sc) {
		if (asprintf(&scope_buf, "repository:%s:pull", r->repository) < 0)
			return cvm_error_set(err, ENOMEM, "token");
		sc = scope_buf;
	}
	svc = c->service ? curl_easy_escape(r->curl, c->service, 0) : NULL;
	scope = curl_easy_escape(r->curl, sc, 0);
	rc = asprintf(&url, "%s%sscope=%s%s%s", c->realm, strchr(c->realm, '?') ? "&" : "?",
		      scope ? scope : "", svc ? "&service=" : "", svc ? svc : "");
	curl_free(svc);
	curl_free(scope);
	if (rc < 0)
		return cvm_error_set(err, ENOMEM, "token");
	if (r->userpass && !(basic = basic_header(r->userpass)))
		return cvm_error_set(err, ENOMEM, "token");
	rc = transfer(r, url, "Accept: application/json", basic, true, &s, "token endpoint", err);
	cvm_auth_wipe(basic);
	if (rc < 0) {
		sink_free(&s);
		return cvm_error_prefix(err, "registry %s, repo %s", r->registry, r->repository);
	}
	if (s.status != 200) {
		long st = s.status;
		sink_free(&s);
		if (st == 401 || st == 403)
			return cvm_error_set(err, 0,
					     "%ld from the token endpoint %s for registry %s, repo %s: %s",
					     st, c->realm, r->registry, r->repository,
					     r->userpass ? "the credentials were refused" : secret_hint());
		return cvm_error_set(err, 0, "HTTP %ld from the token endpoint %s for registry %s",
				     st, c->realm, r->registry);
	}
	token = cvm_auth_token_parse(s.buf, s.len);
	if (s.buf)
		explicit_bzero(s.buf, s.len);
	sink_free(&s);
	if (!token)
		return cvm_error_set(err, 0, "the token endpoint %s sent no token", c->realm);
	cvm_auth_wipe(r->auth_header);
	rc = asprintf(&r->auth_header, "Authorization: Bearer %s", token);
	cvm_auth_wipe(token);
	if (rc < 0) {
		r->auth_header = NULL;
		return cvm_error_set(err, ENOMEM, "token");
	}
	return 0;
}

static int authenticate(struct cvm_registry *r, const struct sink *s, struct cvm_error *err)
{
	struct cvm_auth_challenge c;
	int rc;

	if (!s->www_auth || cvm_auth_challenge_parse(s->www_auth, &c) < 0)
		return cvm_error_set(err, 0, "401 Unauthorized from registry %s for repo %s without a "
				     "Basic or Bearer challenge", r->registry, r->repository);
	if (c.scheme == CVM_AUTH_BASIC) {
		rc = r->userpass ? set_basic(r, err)
				 : cvm_error_set(err, 0, "401 Unauthorized from registry %s for repo %s: %s",
						 r->registry, r->repository, secret_hint());
	} else {
		rc = bearer(r, &c, err);
	}
	cvm_auth_challenge_free(&c);
	return rc;
}

/* GET @path on the registry, authenticating on a 401 (once). */
static int get(struct cvm_registry *r, const char *path, const char *accept, struct sink *s,
	       const char *what, struct cvm_error *err)
{
	cleanup_free char *url = NULL;
	bool authed = false;

	if (asprintf(&url, "%s%s", r->base, path) < 0)
		return cvm_error_set(err, ENOMEM, "%s", what);
	for (;;) {
		if (transfer(r, url, accept, r->auth_header, false, s, what, err) < 0)
			return -1;
		if (s->status != 401)
			return 0;
		if (authed)
			return cvm_error_set(err, 0, "401 Unauthorized from registry %s for repo %s: %s",
					     r->registry, r->repository,
					     r->userpass ? "the credentials were refused" : secret_hint());
		if (authenticate(r, s, err) < 0)
			return -1;
		authed = true;
	}
}

static int status_error(struct cvm_registry *r, const struct sink *s, const char *what,
			struct cvm_error *err)
{
	char words[512];

	registry_words(s, words, sizeof(words));
	if (s->status == 403)
		return cvm_error_set(err, 0, "403 Forbidden from registry %s for repo %s%s: %s", r->registry,
				     r->repository, words,
				     r->userpass ? "these credentials may not pull it" : secret_hint());
	return cvm_error_set(err, 0, "%s: HTTP %ld from registry %s for repo %s%s", what, s->status,
			     r->registry, r->repository, words);
}

/* Append @path to @mem; true when it holds a PEM certificate. */
static bool append_file(FILE *mem, const char *path)
{
	cleanup_file FILE *f = fopen(path, "re");
	char line[8192];
	bool pem = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		pem = pem || strstr(line, "-----BEGIN CERTIFICATE-----");
		fputs(line, mem);
	}
	fputc('\n', mem);
	return pem;
}

/* The system bundle and every PEM file of @dir, as one blob: libcurl takes
 * it the same way with OpenSSL and mbedtls (CURLOPT_CAPATH would need
 * OpenSSL's hashed names). */
/* @dir: a dir of PEM files, or one PEM file (envbox's CODER_EXTRA_CERTS_PATH
 * takes either), added to @bundle. */
static int load_ca(struct cvm_registry *r, const char *bundle, const char *dir, struct cvm_error *err)
{
	cleanup_dir DIR *d = NULL;
	FILE *mem;
	struct dirent *e;
	struct stat st;
	int found = 0;

	if (stat(dir, &st) < 0)
		return cvm_error_set(err, errno, "CA certificates %s", dir);
	if (S_ISDIR(st.st_mode) && !(d = opendir(dir)))
		return cvm_error_set(err, errno, "CA dir %s", dir);
	if (!(mem = open_memstream(&r->ca_blob, &r->ca_len)))
		return cvm_error_set(err, errno, "CA dir %s", dir);
	if (bundle)
		append_file(mem, bundle);
	if (!d)
		found += append_file(mem, dir);
	while (d && (e = readdir(d))) {
		char path[4096];
		if (e->d_name[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path) ||
		    stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		found += append_file(mem, path);
	}
	if (fclose(mem) != 0)
		return cvm_error_set(err, errno, "CA dir %s", dir);
	if (!found)
		return cvm_error_set(err, 0, "CA certificates %s: no PEM certificate "
				     "(-----BEGIN CERTIFICATE-----)", dir);
	return 0;
}

static int setup_tls(struct cvm_registry *r, const char *ca_dir, struct cvm_error *err)
{
	const char *bundle = NULL;

	for (int i = 0; ca_bundles[i]; i++)
		if (access(ca_bundles[i], R_OK) == 0) {
			bundle = ca_bundles[i];
			break;
		}
	if (bundle)
		curl_easy_setopt(r->curl, CURLOPT_CAINFO, bundle);
	if (ca_dir) {
		struct curl_blob blob;
		if (load_ca(r, bundle, ca_dir, err) < 0)
			return -1;
		blob.data = r->ca_blob;
		blob.len = r->ca_len;
		blob.flags = CURL_BLOB_NOCOPY;
		if (curl_easy_setopt(r->curl, CURLOPT_CAINFO_BLOB, &blob) != CURLE_OK)
			return cvm_error_set(err, 0, "this libcurl cannot take CA certificates from memory");
	}
	return 0;
}

/* GET /v2/: which scheme (loopback registries may be plain HTTP, as Docker
 * allows) and, when it challenges, the credentials up front. */
static int ping(struct cvm_registry *r, const char *host, struct cvm_error *err)
{
	struct sink s = { .fd = -1, .max = MANIFEST_MAX };
	struct cvm_error first = { 0 };
	int rc;

	rc = get(r, "/v2/", NULL, &s, "GET /v2/", &first);
	/* Docker's rule for loopback registries: TLS first, plain HTTP when
	 * the server does not speak TLS at all (not when its certificate is
	 * refused: that stays an error). */
	if (rc < 0 && loopback(host) && (r->last == CURLE_SSL_CONNECT_ERROR ||
					 r->last == CURLE_WEIRD_SERVER_REPLY)) {
		free(r->base);
		if (asprintf(&r->base, "http://%s", host) < 0) {
			r->base = NULL;
			sink_free(&s);
			return cvm_error_set(err, ENOMEM, "registry");
		}
		rc = get(r, "/v2/", NULL, &s, "GET /v2/", err);
		if (rc == 0)
			note(r, "registry %s speaks plain HTTP (allowed for loopback registries)", host);
	} else if (rc < 0) {
		*err = first;
	}
	if (rc == 0 && s.status != 200)
		rc = status_error(r, &s, "GET /v2/", err);
	sink_free(&s);
	if (rc < 0)
		return cvm_error_prefix(err, "registry %s", r->registry);
	return 0;
}

int cvm_registry_open(const struct cvm_registry_opts *o, struct cvm_registry **out,
		      struct cvm_error *err)
{
	struct cvm_registry *r = calloc(1, sizeof(*r));
	const char *host = cvm_registry_api_host(o->registry);

	*out = NULL;
	if (!r)
		return cvm_error_set(err, ENOMEM, "registry");
	r->note = o->note;
	r->note_arg = o->note_arg;
	if (!(r->curl = curl_easy_init()) || !(r->registry = strdup(o->registry)) ||
	    !(r->repository = strdup(o->repository)) || asprintf(&r->base, "https://%s", host) < 0 ||
	    (o->userpass && !(r->userpass = strdup(o->userpass)))) {
		cvm_registry_close(r);
		return cvm_error_set(err, ENOMEM, "registry %s", o->registry);
	}
	curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(r->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(r->curl, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(r->curl, CURLOPT_USERAGENT, "cvm/" "image-puller");
	curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(r->curl, CURLOPT_HEADERFUNCTION, header_cb);
	/* proxies: libcurl reads https_proxy/HTTPS_PROXY/no_proxy itself, as
	 * long as CURLOPT_PROXY stays unset */
	if (setup_tls(r, o->ca_dir, err) < 0 || ping(r, host, err) < 0) {
		cvm_registry_close(r);
		return -1;
	}
	*out = r;
	return 0;
}

void cvm_registry_close(struct cvm_registry *r)
{
	if (!r)
		return;
	if (r->curl)
		curl_easy_cleanup(r->curl);
	free(r->registry);
	free(r->repository);
	free(r->base);
	cvm_auth_wipe(r->userpass);
	cvm_auth_wipe(r->auth_header);
	free(r->ca_blob);
	free(r);
}

static const char manifest_accept[] = "Accept: " CVM_MT_OCI_INDEX ", " CVM_MT_OCI_MANIFEST ", "
				     CVM_MT_DOCKER_LIST ", " CVM_MT_DOCKER_MANIFEST;

int cvm_registry_manifest_digest(struct cvm_registry *r, const char *tag, char digest[72],
				 struct cvm_error *err)
{
	struct sink s = { .fd = -1, .max = MANIFEST_MAX, .head = true };
	cleanup_free char *path = NULL;
	int rc = 0;

	digest[0] = '\0';
	if (asprintf(&path, "/v2/%s/manifests/%s", r->repository, tag) < 0)
		return cvm_error_set(err, ENOMEM, "manifest %s", tag);
	if (get(r, path, manifest_accept, &s, "HEAD manifest", err) < 0)
		rc = -1;
	else if (s.status == 200 && s.docker_digest && cvm_digest_valid(s.docker_digest))
		snprintf(digest, 72, "%s", s.docker_digest);
	sink_free(&s);
	return rc;
}

int cvm_registry_manifest(struct cvm_registry *r, const char *ref, char **body, size_t *len,
			  char digest[72], char **media_type, struct cvm_error *err)
{
	const char *accept = manifest_accept;
	struct sink s = { .fd = -1, .max = MANIFEST_MAX };
	cleanup_free char *path = NULL;
	char what[300];

	snprintf(what, sizeof(what), "manifest %s", ref);
	if (asprintf(&path, "/v2/%s/manifests/%s", r->repository, ref) < 0)
		return cvm_error_set(err, ENOMEM, "%s", what);
	if (get(r, path, accept, &s, what, err) < 0)
		goto fail;
	if (s.status == 404) {
		char words[512];
		registry_words(&s, words, sizeof(words));
		cvm_error_set(err, 0, "%s %s not found in repo %s of registry %s%s: check the name and tag",
			      strchr(ref, ':') ? "digest" : "tag", ref, r->repository, r->registry, words);
		goto fail;
	}
	if (s.status != 200) {
		status_error(r, &s, what, err);
		goto fail;
	}
	cvm_sha256_finish(&s.h, digest);
	s.hash = false;
	if (cvm_digest_valid(ref) && strcmp(ref, digest)) {
		cvm_error_set(err, 0, "manifest %s from registry %s, repo %s hashes to %s: not used",
			      ref, r->registry, r->repository, digest);
		goto fail;
	}
	if (s.docker_digest && cvm_digest_valid(s.docker_digest) && strcmp(s.docker_digest, digest)) {
		cvm_error_set(err, 0, "manifest %s from registry %s, repo %s hashes to %s, not to the "
			      "Docker-Content-Digest %s it came with: not used", ref, r->registry,
			      r->repository, digest, s.docker_digest);
		goto fail;
	}
	*media_type = s.content_type ? strndup(s.content_type, strcspn(s.content_type, "; ")) : NULL;
	*body = steal_ptr(&s.buf);
	*len = s.len;
	if (!*body)
		*body = strdup("");
	sink_free(&s);
	return 0;
fail:
	sink_free(&s);
	return -1;
}

int cvm_registry_blob(struct cvm_registry *r, const char *digest, uint64_t size, int fd, char **mem,
		      void (*bytes)(uint64_t done, void *arg), void *arg, uint64_t *fetched,
		      struct cvm_error *err)
{
	struct sink s = { .fd = fd, .max = size, .expect = size, .bytes = bytes, .bytes_arg = arg };
	cleanup_free char *path = NULL;
	char what[300], got[CVM_DIGEST_LEN + 1];
	int rc = -1;

	snprintf(what, sizeof(what), "blob %.19s", digest);
	if (asprintf(&path, "/v2/%s/blobs/%s", r->repository, digest) < 0)
		return cvm_error_set(err, ENOMEM, "%s", what);
	if (get(r, path, NULL, &s, what, err) < 0)
		goto out;
	if (s.status != 200) {
		status_error(r, &s, what, err);
		goto out;
	}
	cvm_sha256_finish(&s.h, got);
	s.hash = false;
	if (s.done != size) {
		cvm_error_set(err, 0, "blob %s from registry %s, repo %s: %llu bytes, the manifest says "
			      "%llu (truncated or changed): not used", digest, r->registry, r->repository,
			      (unsigned long long)s.done, (unsigned long long)size);
		goto out;
	}
	if (strcmp(got, digest)) {
		cvm_error_set(err, 0, "blob %s from registry %s, repo %s hashes to %s (corrupt in the "
			      "registry or in transit): not used", digest, r->registry, r->repository, got);
		goto out;
	}
	if (mem) {
		*mem = steal_ptr(&s.buf);
		if (!*mem)
			*mem = strdup("");
	}
	rc = 0;
out:
	if (fetched)
		*fetched += s.fetched;
	sink_free(&s);
	return rc;
}
