/* cvm_image_pull: resolve a reference to an image manifest (cache first
 * when the policy allows), then make sure every layer is unpacked in the
 * cache, downloading (verified) only those missing. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "auth.h"
#include "cache.h"
#include "digest.h"
#include "layer.h"
#include "manifest.h"
#include "registry.h"
#include "runtime/cleanup.h"

#define CONFIG_MAX (16u << 20)

struct pull {
	const struct cvm_image_opts *o;
	struct cvm_image_ref ref;
	char *key;                      /* canonical ref: the refs/ name */
	char os[32], arch[32], variant[16];
	struct cvm_cache cache;
	struct cvm_registry *reg;
	char *userpass;
	char top[72], image[72];        /* what the ref resolved to */
	char *manifest;                 /* the image manifest's bytes */
	size_t manifest_len;
	struct cvm_manifest m;
	uint64_t downloaded;
	/* progress of the layer being fetched */
	unsigned index;
	const char *digest;
	uint64_t total, last;
};

static void emit(struct pull *p, int what, const char *digest, uint64_t done, uint64_t total,
		 const char *note)
{
	struct cvm_image_progress ev = {
		.what = what, .digest = digest, .index = p->index, .count = (unsigned)p->m.n,
		.done = done, .total = total, .note = note,
	};

	if (p->o->progress)
		p->o->progress(&ev, p->o->progress_arg);
}

static void note_cb(const char *line, void *arg)
{
	emit(arg, CVM_PULL_NOTE, NULL, 0, 0, line);
}

static void bytes_cb(uint64_t done, void *arg)
{
	struct pull *p = arg;

	/* every 256 KiB and at the end: the caller throttles by time */
	if (done - p->last >= (256u << 10) || done == p->total) {
		p->last = done;
		emit(p, CVM_PULL_LAYER_BYTES, p->digest, done, p->total, NULL);
	}
}

static int read_file(const char *path, char **out, struct cvm_error *err)
{
	cleanup_file FILE *f = fopen(path, "re");
	size_t n = 0, cap = 0;
	char *b = NULL;

	if (!f)
		return cvm_error_set(err, errno, "auth file %s", path);
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb = realloc(b, cap = cap * 2 + 8192);
			if (!nb) {
				cvm_auth_wipe(b);
				return cvm_error_set(err, ENOMEM, "auth file %s", path);
			}
			b = nb;
		}
		size_t r = fread(b + n, 1, 4096, f);
		n += r;
		if (r == 0)
			break;
		if (n > (1u << 20)) {
			cvm_auth_wipe(b);
			return cvm_error_set(err, EFBIG, "auth file %s", path);
		}
	}
	b[n] = '\0';
	*out = b;
	return 0;
}

/* Credentials for @host: the pull secret first, then the auth file. */
static int credentials(struct pull *p, const char *host, struct cvm_error *err)
{
	int rc = 0;

	cvm_auth_wipe(p->userpass);
	p->userpass = NULL;
	if (p->o->auth_json && *p->o->auth_json)
		rc = cvm_auth_lookup(p->o->auth_json, "the pull secret (CODER_IMAGE_PULL_SECRET)", host,
				     &p->userpass, err);
	if (rc == 0 && p->o->auth_file && *p->o->auth_file) {
		char *text = NULL;
		if (read_file(p->o->auth_file, &text, err) < 0)
			return -1;
		rc = cvm_auth_lookup(text, p->o->auth_file, host, &p->userpass, err);
		cvm_auth_wipe(text);
	}
	return rc < 0 ? -1 : 0;
}

static int open_registry(struct pull *p, const char *host, struct cvm_error *err)
{
	struct cvm_registry_opts ro = {
		.registry = host, .repository = p->ref.repository, .ca_dir = p->o->ca_dir,
		.note = note_cb, .note_arg = p,
	};

	if (credentials(p, host, err) < 0)
		return -1;
	ro.userpass = p->userpass;
	return cvm_registry_open(&ro, &p->reg, err);
}

/* The registry, or the first Docker Hub mirror that answers. */
static int connect_registry(struct pull *p, struct cvm_error *err)
{
	char line[CVM_ERROR_MSG_MAX + 64];

	if (p->reg)
		return 0;
	if (p->o->mirrors && !strcmp(p->ref.registry, "docker.io")) {
		for (char *const *m = p->o->mirrors; *m; m++) {
			struct cvm_error merr = { 0 };
			if (open_registry(p, *m, &merr) == 0)
				return 0;
			snprintf(line, sizeof(line), "mirror %s: %s; trying the next", *m, merr.msg);
			note_cb(line, p);
		}
	}
	return open_registry(p, p->ref.registry, err);
}

static bool layers_cached(struct pull *p)
{
	for (size_t i = 0; i < p->m.n; i++)
		if (!cvm_cache_has_layer(&p->cache, p->m.items[i].digest))
			return false;
	return true;
}

/* The image manifest @digest from the cache: parsed into p->m. 0, 1 when
 * it is not there, -1. */
static int cached_manifest(struct pull *p, const char *digest, struct cvm_error *err)
{
	char d[72];

	int rc;

	snprintf(d, sizeof(d), "%s", digest);
	rc = cvm_cache_get_blob(&p->cache, "manifests", d, &p->manifest, &p->manifest_len, err);
	if (rc != 0)
		return rc;
	if (cvm_manifest_parse(p->manifest, p->manifest_len, NULL, &p->m, err) < 0 || p->m.index) {
		free(p->manifest);
		p->manifest = NULL;
		return 1;
	}
	snprintf(p->image, sizeof(p->image), "%s", d);
	return 0;
}

/* refs/ says what the ref was: usable when its manifest and layers are here. */
static bool from_refs(struct pull *p)
{
	struct cvm_error ignored;

	cvm_manifest_free(&p->m);
	free(p->manifest);
	p->manifest = NULL;
	if (cvm_cache_get_ref(&p->cache, p->key, p->top, p->image) < 0)
		return false;
	if (cached_manifest(p, p->image, &ignored) != 0)
		return false;
	if (layers_cached(p))
		return true;
	cvm_manifest_free(&p->m);
	free(p->manifest);
	p->manifest = NULL;
	return false;
}

/* Ask the registry: the top manifest; for an index, the platform's. */
static int from_registry(struct pull *p, struct cvm_error *err)
{
	const char *want = p->ref.digest ? p->ref.digest : p->ref.tag;
	cleanup_free char *body = NULL, *mt = NULL;
	struct cvm_manifest idx;
	size_t len;
	int pick, rc;

	if (connect_registry(p, err) < 0 ||
	    cvm_registry_manifest(p->reg, want, &body, &len, p->top, &mt, err) < 0 ||
	    cvm_manifest_parse(body, len, mt, &idx, err) < 0)
		return -1;
	if (!idx.index) {
		cvm_manifest_free(&idx);
		snprintf(p->image, sizeof(p->image), "%s", p->top);
		p->manifest = steal_ptr(&body);
		p->manifest_len = len;
		goto parse;
	}
	pick = cvm_manifest_pick(&idx, p->os, p->arch, p->variant, err);
	if (pick >= 0)
		snprintf(p->image, sizeof(p->image), "%s", idx.items[pick].digest);
	cvm_manifest_free(&idx);
	if (pick < 0)
		return -1;
	rc = cvm_cache_get_blob(&p->cache, "manifests", p->image, &p->manifest, &p->manifest_len, err);
	if (rc < 0)
		return -1;
	free(mt);
	mt = NULL;
	if (rc == 1 && cvm_registry_manifest(p->reg, p->image, &p->manifest, &p->manifest_len,
					     (char[72]){ 0 }, &mt, err) < 0)
		return -1;
parse:
	if (cvm_manifest_parse(p->manifest, p->manifest_len, mt, &p->m, err) < 0)
		return -1;
	if (p->m.index)
		return cvm_error_set(err, 0, "an index inside an index, which cvm does not follow");
	return cvm_cache_put_blob(&p->cache, "manifests", p->image, p->manifest, p->manifest_len, err);
}

/* A tag whose registry digest (a HEAD) is what refs/ has, with all of it
 * cached: no manifest GET (Docker Hub counts those as pulls). 1 when so,
 * 0 when the tag must be fetched, -1 when the registry cannot be reached. */
static int unchanged_tag(struct pull *p, struct cvm_error *err)
{
	char top[72], image[72], now[72];
	struct cvm_error ignored;

	if (cvm_cache_get_ref(&p->cache, p->key, top, image) < 0)
		return 0;
	if (connect_registry(p, err) < 0)
		return -1;
	if (cvm_registry_manifest_digest(p->reg, p->ref.tag, now, &ignored) < 0 || strcmp(now, top))
		return 0;
	return from_refs(p) ? 1 : 0;
}

static int resolve(struct pull *p, struct cvm_error *err)
{
	enum cvm_pull_policy pol = p->o->policy;

	if (pol == CVM_PULL_NEVER) {
		if (from_refs(p))
			return 0;
		return cvm_error_set(err, 0, "not in the cache %s (pull = never): pull it once, "
				     "or set pull = missing", p->cache.path);
	}
	if (pol == CVM_PULL_MISSING && p->ref.digest && from_refs(p))
		return 0;
	if (pol == CVM_PULL_MISSING && !p->ref.digest) {
		int rc = unchanged_tag(p, err);
		if (rc > 0)
			return 0;
		if (rc == 0 && from_registry(p, err) == 0)
			return 0;
	} else if (from_registry(p, err) == 0) {
		return 0;
	}
	if (err->err == CVM_REGISTRY_UNREACHABLE && p->o->offline_ok && pol != CVM_PULL_ALWAYS &&
	    from_refs(p)) {
		char line[CVM_ERROR_MSG_MAX + 128];
		snprintf(line, sizeof(line), "%s; using the cached %s (%.19s)", err->msg, p->key, p->image);
		note_cb(line, p);
		cvm_error_clear(err);
		return 0;
	}
	return -1;
}

static int fetch_config(struct pull *p, char **config, struct cvm_error *err)
{
	const struct cvm_descriptor *d = &p->m.config;
	size_t len;
	int rc = cvm_cache_get_blob(&p->cache, "configs", d->digest, config, &len, err);

	if (rc <= 0)
		return rc;
	if (d->size > CONFIG_MAX)
		return cvm_error_set(err, 0, "image config of %llu bytes: more than cvm reads",
				     (unsigned long long)d->size);
	if (connect_registry(p, err) < 0 ||
	    cvm_registry_blob(p->reg, d->digest, d->size, -1, config, NULL, NULL, &p->downloaded, err) < 0)
		return cvm_error_prefix(err, "image config");
	return cvm_cache_put_blob(&p->cache, "configs", d->digest, *config, (size_t)d->size, err);
}

static int fetch_layer(struct pull *p, const struct cvm_descriptor *d, struct cvm_error *err)
{
	cleanup_close int blob = -1, dir = -1;
	struct cvm_layer_stats st;
	char tmp[256];

	p->digest = d->digest;
	p->total = d->size;
	p->last = 0;
	emit(p, CVM_PULL_LAYER_START, d->digest, 0, d->size, NULL);
	if (connect_registry(p, err) < 0 || (blob = cvm_cache_blob_tmpfile(&p->cache, err)) < 0 ||
	    cvm_registry_blob(p->reg, d->digest, d->size, blob, NULL, bytes_cb, p, &p->downloaded, err) < 0)
		return cvm_error_prefix(err, "layer %u/%zu", p->index + 1, p->m.n);
	if (lseek(blob, 0, SEEK_SET) < 0)
		return cvm_error_set(err, errno, "layer %.19s", d->digest);
	if ((dir = cvm_cache_layer_begin(&p->cache, d->digest, tmp, sizeof(tmp), err)) < 0)
		return -1;
	if (cvm_layer_unpack(blob, dir, CVM_LAYER_OVERLAY, &st, err) < 0) {
		cvm_cache_layer_abort(&p->cache, tmp);
		return cvm_error_prefix(err, "layer %u/%zu (%.19s)", p->index + 1, p->m.n, d->digest);
	}
	if (cvm_cache_layer_commit(&p->cache, d->digest, tmp, err) < 0) {
		cvm_cache_layer_abort(&p->cache, tmp);
		return -1;
	}
	emit(p, CVM_PULL_LAYER_DONE, d->digest, d->size, d->size, NULL);
	return 0;
}

static int fetch_layers(struct pull *p, struct cvm_error *err)
{
	for (p->index = 0; p->index < p->m.n; p->index++) {
		const struct cvm_descriptor *d = &p->m.items[p->index];
		if (cvm_cache_has_layer(&p->cache, d->digest))
			emit(p, CVM_PULL_LAYER_CACHED, d->digest, d->size, d->size, NULL);
		else if (fetch_layer(p, d, err) < 0)
			return -1;
	}
	return 0;
}

static int fill_out(struct pull *p, char *config, struct cvm_image *out, struct cvm_error *err)
{
	if (!(out->digest = strdup(p->image)) || !(out->layers = calloc(p->m.n + 1, sizeof(char *))))
		return cvm_error_set(err, ENOMEM, "pull");
	for (size_t i = 0; i < p->m.n; i++, out->n_layers++)
		if (!(out->layers[i] = cvm_cache_layer_path(&p->cache, p->m.items[i].digest)))
			return cvm_error_set(err, ENOMEM, "pull");
	out->config_json = config;
	out->downloaded = p->downloaded;
	out->lock_fd = steal_fd(&p->cache.lock_fd);
	return 0;
}

static void gc(struct pull *p)
{
	struct cvm_error gerr = { 0 };
	unsigned removed = 0;
	bool skipped = false;
	char line[CVM_ERROR_MSG_MAX + 64];

	if (cvm_cache_gc(&p->cache, &removed, &skipped, &gerr) < 0)
		snprintf(line, sizeof(line), "cache GC: %s", gerr.msg);
	else if (skipped)
		snprintf(line, sizeof(line), "cache GC skipped: another pull or workspace uses the cache");
	else if (removed)
		snprintf(line, sizeof(line), "cache GC: removed %u unreferenced layer%s", removed,
			 removed == 1 ? "" : "s");
	else
		return;
	note_cb(line, p);
}

static int setup(struct pull *p, struct cvm_error *err)
{
	const struct cvm_image_opts *o = p->o;

	if (!o->ref || !o->cache_dir)
		return cvm_error_set(err, EINVAL, "image pull: no ref or cache dir");
	if (cvm_image_ref_parse(o->ref, o->default_registry, &p->ref, err) < 0)
		return -1;
	if (!(p->key = cvm_image_ref_string(&p->ref)))
		return cvm_error_set(err, ENOMEM, "pull");
	cvm_platform_node(p->arch, sizeof(p->arch), p->variant, sizeof(p->variant));
	snprintf(p->os, sizeof(p->os), "%s", o->os ? o->os : "linux");
	if (o->arch) {
		snprintf(p->arch, sizeof(p->arch), "%s", o->arch);
		snprintf(p->variant, sizeof(p->variant), "%s", o->variant ? o->variant : "");
	} else if (o->variant) {
		snprintf(p->variant, sizeof(p->variant), "%s", o->variant);
	}
	return cvm_cache_open(o->cache_dir, &p->cache, err);
}

int cvm_image_pull(const struct cvm_image_opts *o, struct cvm_image *out, struct cvm_error *err)
{
	struct pull p = { .o = o };
	char *config = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->lock_fd = -1;
	p.cache.dirfd = p.cache.lock_fd = -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cvm_error_set(err, 0, "libcurl did not initialize");
	if (setup(&p, err) < 0 || resolve(&p, err) < 0)
		goto out;
	emit(&p, CVM_PULL_RESOLVED, p.image, 0, 0, NULL);
	if (fetch_config(&p, &config, err) < 0 || fetch_layers(&p, err) < 0 ||
	    cvm_cache_put_ref(&p.cache, p.key, p.top[0] ? p.top : p.image, p.image, err) < 0)
		goto out;
	gc(&p);
	/* GC drops the lock for a moment: a pull of this ref to another
	 * digest by another pod could have collected these layers meanwhile */
	if (!layers_cached(&p)) {
		cvm_error_set(err, 0, "another pull collected this image's layers from the cache %s "
			      "meanwhile: pull again", p.cache.path);
		goto out;
	}
	rc = fill_out(&p, steal_ptr(&config), out, err);
out:
	if (rc < 0) {
		cvm_image_free(out);
		cvm_error_prefix(err, "pull %s", p.key ? p.key : o->ref);
	}
	free(config);
	cvm_registry_close(p.reg);
	cvm_auth_wipe(p.userpass);
	cvm_manifest_free(&p.m);
	free(p.manifest);
	free(p.key);
	cvm_image_ref_free(&p.ref);
	cvm_cache_close(&p.cache);
	curl_global_cleanup();
	return rc;
}

void cvm_image_free(struct cvm_image *img)
{
	for (size_t i = 0; img->layers && i < img->n_layers; i++)
		free(img->layers[i]);
	free(img->layers);
	free(img->digest);
	free(img->config_json);
	cvm_closep(&img->lock_fd);
	memset(img, 0, sizeof(*img));
	img->lock_fd = -1;
}
