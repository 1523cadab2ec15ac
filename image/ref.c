/* Image references, read as Docker reads them (distribution/reference's
 * grammar and ParseNormalizedNamed): "ubuntu" is docker.io/library/ubuntu:latest,
 * the first path part is a registry only when it has a '.' or a ':', is
 * "localhost" or has an upper-case letter; index.docker.io and
 * registry-1.docker.io are Docker Hub. */
#include "image.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cleanup.h"

#define NAME_MAX_TOTAL 255
#define TAG_MAX 128

static bool is_hub(const char *host)
{
	return !strcmp(host, "docker.io") || !strcmp(host, "index.docker.io") ||
	       !strcmp(host, "registry-1.docker.io");
}

/* [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9], dot-separated, then
 * an optional :port; or an IPv6 literal in brackets with an optional port. */
static bool valid_domain(const char *d, size_t n)
{
	size_t i = 0;

	if (n > 0 && d[0] == '[') {
		const char *close = memchr(d, ']', n);
		if (!close || close == d + 1)
			return false;
		for (const char *p = d + 1; p < close; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return false;
		i = (size_t)(close - d) + 1;
		goto port;
	}
	for (;;) {
		size_t start = i;
		while (i < n && (isalnum((unsigned char)d[i]) || d[i] == '-'))
			i++;
		if (i == start || d[start] == '-' || d[i - 1] == '-')
			return false;
		if (i < n && d[i] == '.') {
			i++;
			continue;
		}
		break;
	}
port:
	if (i == n)
		return true;
	if (d[i] != ':' || i + 1 == n)
		return false;
	for (i++; i < n; i++)
		if (!isdigit((unsigned char)d[i]))
			return false;
	return true;
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*. Returns NULL when
 * good, else what is wrong. */
static const char *check_component(const char *c, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return "an empty path component (a '//' or a '/' at an end)";
	for (size_t k = 0; k < n; k++)
		if (isupper((unsigned char)c[k]))
			return "repository name must be lowercase";
	while (i < n) {
		size_t start = i;
		while (i < n && (islower((unsigned char)c[i]) || isdigit((unsigned char)c[i])))
			i++;
		if (i == start)
			return "a path component must start and end with a letter or digit, and "
			       "only '.', '_', '__' or '-' may separate them";
		if (i == n)
			return NULL;
		if (c[i] == '.')
			i++;
		else if (c[i] == '_')
			i += (i + 1 < n && c[i + 1] == '_') ? 2 : 1;
		else if (c[i] == '-')
			while (i < n && c[i] == '-')
				i++;
		else
			return "only [a-z0-9], '.', '_' and '-' may appear in a repository name";
		if (i == n)
			return "a path component must end with a letter or digit";
	}
	return NULL;
}

static const char *check_path(const char *p)
{
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		const char *why = check_component(p, n);
		if (why || !slash)
			return why;
		p = slash + 1;
	}
}

static bool valid_tag(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > TAG_MAX || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
			return false;
	return true;
}

static int check_digest(const char *d, const char *ref, struct cvm_error *err)
{
	const char *colon = strchr(d, ':');

	if (!colon)
		return cvm_error_set(err, 0, "image reference '%s': digest '%s' is not ALGORITHM:HEX",
				     ref, d);
	if ((size_t)(colon - d) != 6 || strncmp(d, "sha256", 6))
		return cvm_error_set(err, 0,
				     "image reference '%s': digest algorithm '%.*s' is not supported "
				     "(only sha256)", ref, (int)(colon - d), d);
	if (strlen(colon + 1) != 64)
		return cvm_error_set(err, 0,
				     "image reference '%s': a sha256 digest has 64 hex digits, this one %zu",
				     ref, strlen(colon + 1));
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
			return cvm_error_set(err, 0,
					     "image reference '%s': digest has '%c', not a lower-case hex digit",
					     ref, *p);
	return 0;
}

bool cvm_image_ref_is_path(const char *s)
{
	return s && s[0] == '/';
}

void cvm_image_ref_free(struct cvm_image_ref *r)
{
	free(r->registry);
	free(r->repository);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

/* Split "NAME[:TAG][@DIGEST]" in place; the tag's ':' is the last one after the last '/'. */
static void split_ref(char *s, char **tag, char **digest)
{
	char *at = strchr(s, '@'), *slash, *colon;

	*tag = *digest = NULL;
	if (at) {
		*at = '\0';
		*digest = at + 1;
	}
	slash = strrchr(s, '/');
	colon = strrchr(slash ? slash : s, ':');
	if (colon) {
		*colon = '\0';
		*tag = colon + 1;
	}
}

static int parse_name(char *name, const char *def, const char *ref, struct cvm_image_ref *out,
		      struct cvm_error *err)
{
	char *slash = strchr(name, '/'), *repo = name;
	const char *domain = def, *why;
	bool lower = true;

	if (slash) {
		for (char *p = name; p < slash; p++)
			lower = lower && !isupper((unsigned char)*p);
		if (memchr(name, '.', (size_t)(slash - name)) || memchr(name, ':', (size_t)(slash - name)) ||
		    (slash - name == 9 && !strncmp(name, "localhost", 9)) || !lower) {
			if (!valid_domain(name, (size_t)(slash - name)))
				return cvm_error_set(err, 0,
						     "image reference '%s': '%.*s' is not a valid registry host[:port]",
						     ref, (int)(slash - name), name);
			*slash = '\0';
			domain = name;
			repo = slash + 1;
		}
	}
	if (is_hub(domain))
		domain = "docker.io";
	why = check_path(repo);
	if (why)
		return cvm_error_set(err, 0, "image reference '%s': %s", ref, why);
	if (!strcmp(domain, "docker.io") && !strchr(repo, '/')) {
		if (asprintf(&out->repository, "library/%s", repo) < 0)
			return cvm_error_set(err, ENOMEM, "image reference");
	} else if (!(out->repository = strdup(repo))) {
		return cvm_error_set(err, ENOMEM, "image reference");
	}
	if (strlen(domain) + 1 + strlen(out->repository) > NAME_MAX_TOTAL)
		return cvm_error_set(err, 0, "image reference '%s': name longer than %d characters",
				     ref, NAME_MAX_TOTAL);
	if (!(out->registry = strdup(domain)))
		return cvm_error_set(err, ENOMEM, "image reference");
	return 0;
}

int cvm_image_ref_parse(const char *s, const char *default_registry, struct cvm_image_ref *out,
			struct cvm_error *err)
{
	cleanup_free char *copy = NULL;
	char *tag, *digest;
	struct cvm_image_ref r = { 0 };

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return cvm_error_set(err, 0, "image reference is empty");
	if (cvm_image_ref_is_path(s))
		return cvm_error_set(err, 0, "image reference '%s' is a path, not a reference", s);
	for (const char *p = s; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return cvm_error_set(err, 0, "image reference '%s': has a blank or control character", s);
	if (!default_registry || !*default_registry)
		default_registry = "docker.io";
	if (!(copy = strdup(s)))
		return cvm_error_set(err, ENOMEM, "image reference");
	split_ref(copy, &tag, &digest);
	if (tag && !valid_tag(tag))
		return cvm_error_set(err, 0,
				     "image reference '%s': tag '%s' is not valid (1 to 128 of [A-Za-z0-9_.-], "
				     "not starting with '.' or '-')", s, tag);
	if (digest && check_digest(digest, s, err) < 0)
		return -1;
	if (parse_name(copy, default_registry, s, &r, err) < 0) {
		cvm_image_ref_free(&r);
		return -1;
	}
	if ((digest && !(r.digest = strdup(digest))) ||
	    !(r.tag = strdup(tag ? tag : "latest")) ) {
		cvm_image_ref_free(&r);
		return cvm_error_set(err, ENOMEM, "image reference");
	}
	if (digest && !tag) {
		free(r.tag);
		r.tag = NULL;
	}
	*out = r;
	return 0;
}

char *cvm_image_ref_string(const struct cvm_image_ref *r)
{
	char *s;

	if (asprintf(&s, "%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
		     r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "") < 0)
		return NULL;
	return s;
}
