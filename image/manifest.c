#include "manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <json-c/json.h>

#include "digest.h"
#include "registry.h"

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void desc_free(struct cvm_descriptor *d)
{
	free(d->media_type);
	free(d->os);
	free(d->arch);
	free(d->variant);
}

void cvm_manifest_free(struct cvm_manifest *m)
{
	desc_free(&m->config);
	for (size_t i = 0; i < m->n; i++)
		desc_free(&m->items[i]);
	free(m->items);
	memset(m, 0, sizeof(*m));
}

static int desc_parse(json_object *o, const char *what, size_t i, struct cvm_descriptor *d,
		      struct cvm_error *err)
{
	const char *digest = str(o, "digest");
	json_object *size, *plat;

	if (!json_object_is_type(o, json_type_object) || !cvm_digest_valid(digest))
		return cvm_error_set(err, 0, "manifest: %s %zu has no sha256 digest", what, i);
	if (!json_object_object_get_ex(o, "size", &size) || !json_object_is_type(size, json_type_int) ||
	    json_object_get_int64(size) < 0)
		return cvm_error_set(err, 0, "manifest: %s %zu has no size", what, i);
	snprintf(d->digest, sizeof(d->digest), "%s", digest);
	d->size = (uint64_t)json_object_get_int64(size);
	d->media_type = dup_or_null(str(o, "mediaType"));
	if (json_object_object_get_ex(o, "platform", &plat)) {
		d->os = dup_or_null(str(plat, "os"));
		d->arch = dup_or_null(str(plat, "architecture"));
		d->variant = dup_or_null(str(plat, "variant"));
	}
	return 0;
}

static int items_parse(json_object *arr, const char *what, struct cvm_manifest *m,
		       struct cvm_error *err)
{
	size_t n;

	if (!json_object_is_type(arr, json_type_array))
		return cvm_error_set(err, 0, "manifest: \"%s\" is not an array", what);
	n = json_object_array_length(arr);
	if (!(m->items = calloc(n ? n : 1, sizeof(*m->items))))
		return cvm_error_set(err, ENOMEM, "manifest");
	for (size_t i = 0; i < n; i++, m->n++)
		if (desc_parse(json_object_array_get_idx(arr, i), what, i, &m->items[i], err) < 0)
			return -1;
	return 0;
}

static int parse_obj(json_object *root, const char *mt, struct cvm_manifest *m, struct cvm_error *err)
{
	json_object *v, *manifests = NULL, *layers = NULL, *config = NULL;
	const char *type = str(root, "mediaType");

	if (json_object_object_get_ex(root, "schemaVersion", &v) && json_object_get_int(v) == 1)
		return cvm_error_set(err, 0, "manifest: Docker schema 1, which cvm does not read "
				     "(push the image again with a current docker or skopeo)");
	if (!type)
		type = mt;
	json_object_object_get_ex(root, "manifests", &manifests);
	json_object_object_get_ex(root, "layers", &layers);
	json_object_object_get_ex(root, "config", &config);
	if (manifests && (!type || !strcmp(type, CVM_MT_OCI_INDEX) || !strcmp(type, CVM_MT_DOCKER_LIST))) {
		m->index = true;
		return items_parse(manifests, "manifests", m, err);
	}
	if (layers && config && (!type || !strcmp(type, CVM_MT_OCI_MANIFEST) ||
				 !strcmp(type, CVM_MT_DOCKER_MANIFEST))) {
		if (desc_parse(config, "config", 0, &m->config, err) < 0)
			return -1;
		return items_parse(layers, "layers", m, err);
	}
	return cvm_error_set(err, 0, "manifest: media type %s is not an image index or manifest "
			     "cvm reads (OCI index/manifest, Docker manifest list/schema 2)",
			     type ? type : "(none)");
}

int cvm_manifest_parse(const char *body, size_t len, const char *media_type, struct cvm_manifest *m,
		       struct cvm_error *err)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *root;
	int rc;

	memset(m, 0, sizeof(*m));
	if (!tok)
		return cvm_error_set(err, ENOMEM, "manifest");
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_tokener_free(tok);
		json_object_put(root);
		return cvm_error_set(err, 0, "manifest: not a JSON object");
	}
	json_tokener_free(tok);
	rc = parse_obj(root, media_type, m, err);
	json_object_put(root);
	if (rc < 0)
		cvm_manifest_free(m);
	return rc;
}

void cvm_platform_node(char *arch, size_t alen, char *variant, size_t vlen)
{
	static const struct { const char *uname, *arch, *variant; } map[] = {
		{ "x86_64", "amd64", "" },   { "aarch64", "arm64", "" }, { "arm64", "arm64", "" },
		{ "armv7l", "arm", "v7" },   { "armv6l", "arm", "v6" },  { "i686", "386", "" },
		{ "i386", "386", "" },       { "ppc64le", "ppc64le", "" }, { "s390x", "s390x", "" },
		{ "riscv64", "riscv64", "" }, { "loongarch64", "loong64", "" },
	};
	struct utsname u;

	snprintf(arch, alen, "unknown");
	snprintf(variant, vlen, "%s", "");
	if (uname(&u) < 0)
		return;
	snprintf(arch, alen, "%s", u.machine);
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(u.machine, map[i].uname)) {
			snprintf(arch, alen, "%s", map[i].arch);
			snprintf(variant, vlen, "%s", map[i].variant);
		}
}

static bool variant_ok(const char *want, const char *arch, const char *have)
{
	if (!want || !*want)
		return true;
	if (have && !strcmp(want, have))
		return true;
	/* arm64 images rarely name v8; Docker takes "no variant" for v8 */
	return !strcmp(arch, "arm64") && !strcmp(want, "v8") && (!have || !*have);
}

int cvm_manifest_pick(const struct cvm_manifest *idx, const char *os, const char *arch,
		      const char *variant, struct cvm_error *err)
{
	char have[512] = "";
	size_t o = 0;

	for (size_t i = 0; i < idx->n; i++) {
		const struct cvm_descriptor *d = &idx->items[i];
		if (d->os && d->arch && !strcmp(d->os, os) && !strcmp(d->arch, arch) &&
		    variant_ok(variant, arch, d->variant))
			return (int)i;
	}
	for (size_t i = 0; i < idx->n && o < sizeof(have) - 64; i++) {
		const struct cvm_descriptor *d = &idx->items[i];
		if (!d->os || !d->arch || !strcmp(d->os, "unknown"))
			continue;   /* attestations */
		o += (size_t)snprintf(have + o, sizeof(have) - o, "%s%s/%s%s%s", o ? ", " : "", d->os,
				      d->arch, d->variant ? "/" : "", d->variant ? d->variant : "");
	}
	return cvm_error_set(err, 0, "the image has no %s/%s%s%s manifest (it has: %s)", os, arch,
			     variant && *variant ? "/" : "", variant ? variant : "", o ? have : "none");
}

char **cvm_image_config_env(const char *json, struct cvm_error *err)
{
	json_object *root = json ? json_tokener_parse(json) : NULL, *cfg, *env;
	size_t n = 0, k = 0;
	char **out;

	if (json && !root) {
		cvm_error_set(err, 0, "the image config is not JSON");
		return NULL;
	}
	if (root && json_object_object_get_ex(root, "config", &cfg) &&
	    json_object_object_get_ex(cfg, "Env", &env) && json_object_is_type(env, json_type_array))
		n = json_object_array_length(env);
	else
		env = NULL;
	out = calloc(n + 1, sizeof(*out));
	for (size_t i = 0; out && i < n; i++) {
		json_object *e = json_object_array_get_idx(env, i);
		const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
		/* NAME=VALUE with a NAME; anything else is not an environment entry */
		if (!s || !strchr(s, '=') || s[0] == '=')
			continue;
		if (!(out[k++] = strdup(s))) {
			while (k-- > 0)
				free(out[k]);
			free(out);
			out = NULL;
		}
	}
	json_object_put(root);
	if (!out)
		cvm_error_set(err, ENOMEM, "the image config's Env");
	return out;
}
