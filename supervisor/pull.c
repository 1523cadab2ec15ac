/* cvm pull REF: fetch an image into the cache the way `cvm run` will, and
 * show it: one log line per layer (size, short digest), a progress bar on
 * a terminal, bytes done/total per layer in JSON logs, and how long it
 * took. The digest of the image manifest goes to stdout. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "supervisor/cli.h"
#include "supervisor/config.h"
#include "supervisor/log.h"
#include "supervisor/pull.h"

#define BAR_WIDTH 30

struct ui {
	bool tty;               /* text logs on a terminal: a progress bar */
	bool bar;               /* a bar is on screen (no newline yet) */
	bool json;
	struct timespec last;   /* the last bytes line / bar drawn */
	char ref[512];
};

static void pull_usage(FILE *out)
{
	fputs("Usage: cvm pull [OPTIONS] REF\n"
	      "\n"
	      "Fetch the image REF (REGISTRY/REPO[:TAG|@DIGEST]; short names are Docker\n"
	      "Hub's: ubuntu = docker.io/library/ubuntu:latest) into the image cache, each\n"
	      "layer verified against its digest and unpacked; what is cached already is\n"
	      "not fetched again. Prints the image manifest's digest.\n"
	      "\n"
	      "Options:\n"
	      "  --cache-dir DIR     the image cache (default: STATE/images of the config)\n"
	      "  --auth-file FILE    docker config.json with credentials (\"auths\")\n"
	      "  --ca-dir DIR        extra CA certificates (PEM files) for the registry\n"
	      "  --platform OS/ARCH[/VARIANT]  from an index (default: this node's)\n"
	      "  --pull POLICY       missing (default), always, or never (cache only)\n"
	      "  --default-registry HOST  for short names (default docker.io)\n"
	      "  --mirror HOST       a Docker Hub mirror, tried first (repeatable)\n"
	      "  --offline-ok        registry unreachable: use what the cache has for REF\n"
	      "  -c, --config FILE   read [image], the log settings and state from FILE\n"
	      "  -h, --help          show this help\n"
	      "\n"
	      "The [image] keys of the config (and CVM_IMAGE_*) are the defaults the flags\n"
	      "override. Environment: CODER_IMAGE_PULL_SECRET (docker config JSON text),\n"
	      "CODER_DOCKER_CONFIG (a config.json), CODER_EXTRA_CERTS_PATH (CA dir or file),\n"
	      "HTTPS_PROXY / NO_PROXY.\n", out);
}

static double secs_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void human(uint64_t n, char *out, size_t len)
{
	if (n >= (1u << 30))
		snprintf(out, len, "%.1f GiB", (double)n / (1u << 30));
	else if (n >= (1u << 20))
		snprintf(out, len, "%.1f MiB", (double)n / (1u << 20));
	else if (n >= 1024)
		snprintf(out, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(out, len, "%" PRIu64 " B", n);
}

static void clear_bar(struct ui *u)
{
	if (u->bar)
		fputs("\r\033[K", stderr);
	u->bar = false;
}

static void draw_bar(struct ui *u, const struct cvm_image_progress *p)
{
	char done[32], total[32], bar[BAR_WIDTH + 1];
	unsigned fill = p->total ? (unsigned)(p->done * BAR_WIDTH / p->total) : 0;

	for (unsigned i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : ' ';
	bar[BAR_WIDTH] = '\0';
	human(p->done, done, sizeof(done));
	human(p->total, total, sizeof(total));
	fprintf(stderr, "\r\033[K  %u/%u %.19s [%s] %3u%% %s / %s", p->index + 1, p->count, p->digest,
		bar, p->total ? (unsigned)(p->done * 100 / p->total) : 100, done, total);
	fflush(stderr);
	u->bar = true;
}

/* Layer fields: layer (1-based), layers, digest, done, total. */
static void layer_log(const struct cvm_image_progress *p, const char *fmt_what)
{
	char idx[16], cnt[16], done[24], total[24], size[32];
	struct cvm_log_field f[] = {
		{ "layer", idx, true }, { "layers", cnt, true }, { "digest", p->digest, false },
		{ "done", done, true }, { "total", total, true },
	};

	snprintf(idx, sizeof(idx), "%u", p->index + 1);
	snprintf(cnt, sizeof(cnt), "%u", p->count);
	snprintf(done, sizeof(done), "%" PRIu64, p->done);
	snprintf(total, sizeof(total), "%" PRIu64, p->total);
	human(p->total, size, sizeof(size));
	cvm_log_fields(CVM_LOG_INFO, "image", f, 5, "layer %u/%u %.19s %s %s", p->index + 1, p->count,
		       p->digest, size, fmt_what);
}

static void progress(const struct cvm_image_progress *p, void *arg)
{
	struct ui *u = arg;

	switch (p->what) {
	case CVM_PULL_RESOLVED: {
		struct cvm_log_field f[] = { { "ref", u->ref, false }, { "digest", p->digest, false } };
		cvm_log_fields(CVM_LOG_INFO, "image", f, 2, "%s is %s", u->ref, p->digest);
		break;
	}
	case CVM_PULL_LAYER_CACHED:
		layer_log(p, "cached");
		break;
	case CVM_PULL_LAYER_START:
		layer_log(p, "downloading");
		/* the first bytes draw the bar (or the first JSON line) at once */
		if (u->tty || u->json)
			u->last = (struct timespec){ 0 };
		else
			clock_gettime(CLOCK_MONOTONIC, &u->last);
		break;
	case CVM_PULL_LAYER_BYTES:
		if (u->tty && secs_since(&u->last) >= 0.1) {
			draw_bar(u, p);
			clock_gettime(CLOCK_MONOTONIC, &u->last);
		} else if (!u->tty && secs_since(&u->last) >= (u->json ? 1.0 : 5.0)) {
			layer_log(p, "in progress");
			clock_gettime(CLOCK_MONOTONIC, &u->last);
		}
		break;
	case CVM_PULL_LAYER_DONE:
		clear_bar(u);
		layer_log(p, "done");
		break;
	case CVM_PULL_NOTE:
		clear_bar(u);
		log_info("image", "%s", p->note);
		break;
	}
}

struct pull_args {
	const char *config, *cache_dir, *platform, *policy, *ref;
	const char *auth_file, *ca_dir, *default_registry;   /* flags over [image] */
	struct cvm_image_opts o;
	char *mirrors[9];
	size_t n_mirrors;
};

static int parse_args(struct pull_args *a, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "cache-dir", required_argument, NULL, 'C' }, { "auth-file", required_argument, NULL, 'A' },
		{ "ca-dir", required_argument, NULL, 'K' },    { "platform", required_argument, NULL, 'P' },
		{ "pull", required_argument, NULL, 'p' },      { "default-registry", required_argument, NULL, 'R' },
		{ "mirror", required_argument, NULL, 'M' },    { "config", required_argument, NULL, 'c' },
		{ "offline-ok", no_argument, NULL, 'O' },      { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'C': a->cache_dir = optarg; break;
		case 'A': a->auth_file = optarg; break;
		case 'K': a->ca_dir = optarg; break;
		case 'P': a->platform = optarg; break;
		case 'p': a->policy = optarg; break;
		case 'R': a->default_registry = optarg; break;
		case 'c': a->config = optarg; break;
		case 'O': a->o.offline_ok = true; break;
		case 'M':
			if (a->n_mirrors + 1 >= sizeof(a->mirrors) / sizeof(a->mirrors[0])) {
				fprintf(stderr, "cvm pull: at most 8 mirrors\n");
				return -1;
			}
			a->mirrors[a->n_mirrors++] = optarg;
			break;
		case 'h': pull_usage(stdout); return 1;
		default: return -1;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "cvm pull: give one image reference; try 'cvm pull --help'\n");
		return -1;
	}
	a->ref = argv[optind];
	return 0;
}

static int apply_policy(struct cvm_image_opts *o, const char *s)
{
	if (!s || !strcmp(s, "missing"))
		o->policy = CVM_PULL_MISSING;
	else if (!strcmp(s, "always"))
		o->policy = CVM_PULL_ALWAYS;
	else if (!strcmp(s, "never"))
		o->policy = CVM_PULL_NEVER;
	else
		return -1;
	return 0;
}

/* OS/ARCH[/VARIANT] into @buf, pointed at by o->os/arch/variant. */
static int apply_platform(struct cvm_image_opts *o, const char *s, char *buf, size_t len)
{
	char *slash, *v;

	if (!s)
		return 0;
	snprintf(buf, len, "%s", s);
	if (!(slash = strchr(buf, '/')) || slash == buf || !slash[1])
		return -1;
	*slash = '\0';
	o->os = buf;
	o->arch = slash + 1;
	if ((v = strchr(slash + 1, '/'))) {
		*v = '\0';
		o->variant = v + 1;
	}
	return 0;
}

int cvm_pull_config(const struct cvm_config *c, struct cvm_image_opts *o, char *cache,
		    size_t len)
{
	o->ref = c->image_ref;
	o->default_registry = c->image_default_registry;
	o->mirrors = c->n_image_mirrors ? c->image_mirrors : NULL;
	o->auth_json = c->image_auth_json;
	o->auth_file = c->image_auth_file;
	o->ca_dir = c->image_ca_dir;
	o->policy = c->image_pull;
	if (c->image_cache_dir)
		snprintf(cache, len, "%s", c->image_cache_dir);
	else if (c->state)
		snprintf(cache, len, "%s/images", c->state);
	else
		cache[0] = '\0';
	o->cache_dir = cache;
	return cache[0] ? 0 : -1;
}

int cvm_pull_logged(struct cvm_image_opts *o, struct cvm_image *img, struct cvm_error *err)
{
	struct ui u = { .json = cvm_log_get_format() == CVM_LOG_JSON };
	char got[32], secs[32], ms[32], n[16], dl[24];
	struct timespec start;
	double took;
	int rc;

	o->progress = progress;
	o->progress_arg = &u;
	u.tty = !u.json && isatty(STDERR_FILENO);
	snprintf(u.ref, sizeof(u.ref), "%s", o->ref);
	clock_gettime(CLOCK_MONOTONIC, &start);
	rc = cvm_image_pull(o, img, err);
	clear_bar(&u);
	o->progress = NULL;
	if (rc < 0)
		return -1;
	took = secs_since(&start);
	human(img->downloaded, got, sizeof(got));
	snprintf(secs, sizeof(secs), "%.1f", took);
	snprintf(ms, sizeof(ms), "%.0f", took * 1000);
	snprintf(n, sizeof(n), "%zu", img->n_layers);
	snprintf(dl, sizeof(dl), "%" PRIu64, img->downloaded);
	struct cvm_log_field f[] = {
		{ "digest", img->digest, false }, { "layers", n, true },
		{ "downloaded", dl, true },      { "pull_ms", ms, true },
	};
	cvm_log_fields(CVM_LOG_INFO, "image", f, 4, "pulled %s in %s s: %zu layer%s, %s downloaded",
		       o->ref, secs, img->n_layers, img->n_layers == 1 ? "" : "s", got);
	return 0;
}

int cvm_cmd_pull(int argc, char *argv[])
{
	struct pull_args a = { 0 };
	struct cvm_config c = { 0 };
	struct cvm_error err = { 0 };
	struct cvm_image img = { .lock_fd = -1 };
	char platform[128], cache[4096];
	int rc;

	if ((rc = parse_args(&a, argc, argv)) != 0)
		return rc > 0 ? 0 : 2;
	/* a closed stdout is an EPIPE, not a death (libcurl's own sockets
	 * send with MSG_NOSIGNAL) */
	signal(SIGPIPE, SIG_IGN);
	if (cvm_config_load_layers(&c, a.config, environ, &err) < 0) {
		fprintf(stderr, "cvm pull: %s\n", err.msg);
		cvm_config_free(&c);
		return 2;
	}
	cvm_log_setup(c.log_level, c.log_format);
	/* [image] of the config (and envbox's CODER_* for it), then the flags */
	cvm_pull_config(&c, &a.o, cache, sizeof(cache));
	if (a.cache_dir)
		snprintf(cache, sizeof(cache), "%s", a.cache_dir);
	a.o.ref = a.ref;
	if (a.n_mirrors)
		a.o.mirrors = a.mirrors;
	if (a.auth_file)
		a.o.auth_file = a.auth_file;
	if (a.ca_dir)
		a.o.ca_dir = a.ca_dir;
	if (a.default_registry)
		a.o.default_registry = a.default_registry;
	if ((a.policy && apply_policy(&a.o, a.policy) < 0) ||
	    apply_platform(&a.o, a.platform, platform, sizeof(platform)) < 0) {
		fprintf(stderr, "cvm pull: %s\n", a.policy && apply_policy(&a.o, a.policy) < 0 ?
			"--pull: missing, always or never" : "--platform: OS/ARCH[/VARIANT], e.g. linux/arm64");
		cvm_config_free(&c);
		return 2;
	}
	if (!cache[0]) {
		fprintf(stderr, "cvm pull: no cache dir: give --cache-dir DIR (or a [workspace] state)\n");
		cvm_config_free(&c);
		return 2;
	}
	rc = cvm_pull_logged(&a.o, &img, &err);
	cvm_config_free(&c);
	if (rc < 0) {
		log_error("image", "%s", err.msg);
		return 1;
	}
	printf("%s\n", img.digest);
	cvm_image_free(&img);
	return 0;
}
