#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "manifest.h"
#include "runtime/cleanup.h"

#define BLOB_MAX (16u << 20)

static const char *const subdirs[] = {
	"layers", "layers/sha256", "manifests", "manifests/sha256", "configs", "configs/sha256",
	"refs", NULL,
};

static int mkdir_p(const char *path, struct cvm_error *err)
{
	char buf[4096];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return cvm_error_set(err, ENAMETOOLONG, "cache dir %s", path);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || !*p) {
			char saved = *p;
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return cvm_error_set(err, errno, "cache dir %s", buf);
			*p = saved;
		}
		if (!*p)
			return 0;
	}
}

int cvm_cache_open(const char *path, struct cvm_cache *c, struct cvm_error *err)
{
	memset(c, 0, sizeof(*c));
	c->dirfd = c->lock_fd = -1;
	if (!path || path[0] != '/')
		return cvm_error_set(err, 0, "cache dir '%s' is not an absolute path", path ? path : "");
	if (mkdir_p(path, err) < 0)
		return -1;
	if (!(c->path = strdup(path)))
		return cvm_error_set(err, ENOMEM, "cache");
	c->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		goto fail;
	for (int i = 0; subdirs[i]; i++)
		if (mkdirat(c->dirfd, subdirs[i], 0755) < 0 && errno != EEXIST)
			goto fail;
	c->lock_fd = openat(c->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lock_fd < 0)
		goto fail;
	while (flock(c->lock_fd, LOCK_SH) < 0)
		if (errno != EINTR)
			goto fail;
	return 0;
fail:
	cvm_error_set(err, errno, "cache dir %s", path);
	cvm_cache_close(c);
	return -1;
}

void cvm_cache_close(struct cvm_cache *c)
{
	cvm_closep(&c->dirfd);
	cvm_closep(&c->lock_fd);
	c->dirfd = c->lock_fd = -1;
	free(c->path);
	c->path = NULL;
}

static void blob_name(char *out, size_t len, const char *kind, const char *digest)
{
	snprintf(out, len, "%s/sha256/%s", kind, cvm_digest_hex(digest));
}

static int read_all(int fd, size_t max, char **body, size_t *len)
{
	struct stat st;
	char *b;
	size_t n = 0;

	if (fstat(fd, &st) < 0)
		return -1;
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		return -1;
	}
	if (!(b = malloc((size_t)st.st_size + 1)))
		return -1;
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(b);
			errno = r == 0 ? EIO : errno;
			return -1;
		}
		n += (size_t)r;
	}
	b[n] = '\0';
	*body = b;
	*len = n;
	return 0;
}

int cvm_cache_get_blob(struct cvm_cache *c, const char *kind, const char *digest, char **body,
		       size_t *len, struct cvm_error *err)
{
	char name[128], got[CVM_DIGEST_LEN + 1];
	cleanup_close int fd = -1;

	*body = NULL;
	if (!cvm_digest_valid(digest))
		return 1;
	blob_name(name, sizeof(name), kind, digest);
	fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0 || read_all(fd, BLOB_MAX, body, len) < 0)
		return cvm_error_set(err, errno, "cache %s/%s", c->path, name);
	cvm_sha256_buf(*body, *len, got);
	if (strcmp(got, digest)) {
		/* damaged: as if not there, fetched again */
		unlinkat(c->dirfd, name, 0);
		free(*body);
		*body = NULL;
		return 1;
	}
	return 0;
}

/* Write @body to @name atomically (a temp file renamed over it). */
static int put_file(struct cvm_cache *c, const char *name, const char *body, size_t len,
		    struct cvm_error *err)
{
	char tmp[256];
	cleanup_close int fd = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", name, (int)getpid());
	fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return cvm_error_set(err, errno, "cache %s/%s", c->path, tmp);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, body + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			unlinkat(c->dirfd, tmp, 0);
			return cvm_error_set(err, e, "cache %s/%s", c->path, tmp);
		}
		off += (size_t)w;
	}
	if (renameat(c->dirfd, tmp, c->dirfd, name) < 0) {
		int e = errno;
		unlinkat(c->dirfd, tmp, 0);
		return cvm_error_set(err, e, "cache %s/%s", c->path, name);
	}
	return 0;
}

int cvm_cache_put_blob(struct cvm_cache *c, const char *kind, const char *digest, const char *body,
		       size_t len, struct cvm_error *err)
{
	char name[128];

	blob_name(name, sizeof(name), kind, digest);
	return put_file(c, name, body, len, err);
}

static bool ref_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* refs/ names: the canonical reference with every byte outside
 * [A-Za-z0-9._-] as %XX ("docker.io%2Flibrary%2Fubuntu%3Alatest"); one too
 * long for a file name (NAME_MAX) is "sha256-" and the hash of the ref. */
static void ref_name(char *out, size_t len, const char *ref)
{
	size_t o = (size_t)snprintf(out, len, "refs/"), n = 0;
	char d[CVM_DIGEST_LEN + 1];

	for (const unsigned char *p = (const unsigned char *)ref; *p; p++)
		n += ref_char_ok(*p) ? 1 : 3;
	if (n > 200) {
		cvm_sha256_buf(ref, strlen(ref), d);
		snprintf(out, len, "refs/sha256-%s", cvm_digest_hex(d));
		return;
	}
	for (const unsigned char *p = (const unsigned char *)ref; *p && o + 4 < len; p++) {
		if (ref_char_ok(*p))
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%02X", *p);
	}
	out[o] = '\0';
}

static int parse_ref_file(int dirfd, const char *name, char top[72], char image[72])
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char buf[200];
	ssize_t n;

	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%71s %71s", top, image) != 2 || !cvm_digest_valid(top) ||
	    !cvm_digest_valid(image))
		return -1;
	return 0;
}

int cvm_cache_get_ref(struct cvm_cache *c, const char *ref, char top[72], char image[72])
{
	char name[1024];

	ref_name(name, sizeof(name), ref);
	return parse_ref_file(c->dirfd, name, top, image);
}

int cvm_cache_put_ref(struct cvm_cache *c, const char *ref, const char *top, const char *image,
		      struct cvm_error *err)
{
	char name[1024], line[160];

	ref_name(name, sizeof(name), ref);
	snprintf(line, sizeof(line), "%s %s\n", top, image);
	return put_file(c, name, line, strlen(line), err);
}

bool cvm_cache_has_layer(struct cvm_cache *c, const char *digest)
{
	char name[128];
	struct stat st;

	blob_name(name, sizeof(name), "layers", digest);
	return fstatat(c->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

char *cvm_cache_layer_path(struct cvm_cache *c, const char *digest)
{
	char *p;

	if (asprintf(&p, "%s/layers/sha256/%s", c->path, cvm_digest_hex(digest)) < 0)
		return NULL;
	return p;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int rm_tree_at(struct cvm_cache *c, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", c->path, name);
	return nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT ? -1 : 0;
}

int cvm_cache_layer_begin(struct cvm_cache *c, const char *digest, char *tmp, size_t len,
			  struct cvm_error *err)
{
	int fd;

	snprintf(tmp, len, "layers/sha256/%s.tmp.%d", cvm_digest_hex(digest), (int)getpid());
	rm_tree_at(c, tmp);   /* a leftover of a pid reused */
	if (mkdirat(c->dirfd, tmp, 0755) < 0 ||
	    (fd = openat(c->dirfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return cvm_error_set(err, errno, "cache %s/%s", c->path, tmp);
	return fd;
}

int cvm_cache_layer_commit(struct cvm_cache *c, const char *digest, const char *tmp,
			   struct cvm_error *err)
{
	char name[128];

	blob_name(name, sizeof(name), "layers", digest);
	if (renameat(c->dirfd, tmp, c->dirfd, name) == 0)
		return 0;
	if ((errno == EEXIST || errno == ENOTEMPTY) && cvm_cache_has_layer(c, digest)) {
		rm_tree_at(c, tmp);
		return 0;
	}
	return cvm_error_set(err, errno, "cache: rename %s into place", tmp);
}

void cvm_cache_layer_abort(struct cvm_cache *c, const char *tmp)
{
	rm_tree_at(c, tmp);
}

int cvm_cache_blob_tmpfile(struct cvm_cache *c, struct cvm_error *err)
{
	char name[64];
	int fd = openat(c->dirfd, "layers", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	/* no O_TMPFILE here (some filesystems): a named file, unlinked at once */
	snprintf(name, sizeof(name), "layers/blob.partial.%d", (int)getpid());
	fd = openat(c->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cvm_error_set(err, errno, "cache %s/%s", c->path, name);
	unlinkat(c->dirfd, name, 0);
	return fd;
}

/* --- GC ------------------------------------------------------------- */

struct keep {
	char (*d)[72];
	size_t n, cap;
};

static int keep_add(struct keep *k, const char *digest)
{
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 64;
		void *p = realloc(k->d, cap * sizeof(*k->d));
		if (!p)
			return -1;
		k->d = p;
		k->cap = cap;
	}
	snprintf(k->d[k->n++], 72, "%s", digest);
	return 0;
}

static bool keep_has(const struct keep *k, const char *hex)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(cvm_digest_hex(k->d[i]), hex))
			return true;
	return false;
}

/* Everything refs/ leads to: image manifests, their configs and layers.
 * A ref whose manifest is missing or unreadable keeps nothing (it needs a
 * pull anyway). */
static int collect(struct cvm_cache *c, struct keep *k, struct cvm_error *err)
{
	cleanup_close int rfd = openat(c->dirfd, "refs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_dir DIR *d = NULL;
	struct dirent *e;

	if (rfd < 0 || !(d = fdopendir(rfd)))
		return cvm_error_set(err, errno, "cache %s/refs", c->path);
	rfd = -1;
	while ((e = readdir(d))) {
		char top[72], image[72], *body = NULL;
		struct cvm_manifest m;
		struct cvm_error ignored;
		size_t len;
		if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp.") ||
		    parse_ref_file(dirfd(d), e->d_name, top, image) < 0)
			continue;
		if (cvm_cache_get_blob(c, "manifests", image, &body, &len, &ignored) != 0)
			continue;
		if (cvm_manifest_parse(body, len, NULL, &m, &ignored) == 0) {
			int rc = keep_add(k, image) | keep_add(k, m.config.digest);
			for (size_t i = 0; i < m.n; i++)
				rc |= keep_add(k, m.items[i].digest);
			cvm_manifest_free(&m);
			if (rc < 0) {
				free(body);
				return cvm_error_set(err, ENOMEM, "cache GC");
			}
		}
		free(body);
	}
	return 0;
}

/* A leftover "<hex>.tmp.<pid>" of a pull that is gone. */
static bool dead_tmp(const char *name)
{
	const char *t = strstr(name, ".tmp.");
	int pid;

	if (!t)
		return false;
	pid = atoi(t + 5);
	return pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH);
}

static int sweep(struct cvm_cache *c, const char *kind, const struct keep *k, unsigned *removed)
{
	char dir[64];
	cleanup_close int fd = -1;
	cleanup_dir DIR *d = NULL;
	struct dirent *e;

	snprintf(dir, sizeof(dir), "%s/sha256", kind);
	if ((fd = openat(c->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || !(d = fdopendir(fd)))
		return -1;
	fd = -1;
	while ((e = readdir(d))) {
		char name[512];
		bool tmp = strstr(e->d_name, ".tmp.") != NULL;
		if (e->d_name[0] == '.' || (tmp ? !dead_tmp(e->d_name) : keep_has(k, e->d_name)))
			continue;
		snprintf(name, sizeof(name), "%s/%s", dir, e->d_name);
		if (rm_tree_at(c, name) < 0)
			return -1;
		if (removed && !tmp)
			(*removed)++;
	}
	return 0;
}

int cvm_cache_gc(struct cvm_cache *c, unsigned *removed, bool *skipped, struct cvm_error *err)
{
	struct keep k = { 0 };
	int rc = 0;

	*removed = 0;
	*skipped = false;
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		*skipped = true;   /* another pod's pull or workspace holds it */
		return flock(c->lock_fd, LOCK_SH) < 0 ? cvm_error_set(err, errno, "cache lock") : 0;
	}
	if (collect(c, &k, err) < 0)
		rc = -1;
	else if (sweep(c, "layers", &k, removed) < 0 || sweep(c, "manifests", &k, NULL) < 0 ||
		 sweep(c, "configs", &k, NULL) < 0)
		rc = cvm_error_set(err, errno, "cache GC in %s", c->path);
	free(k.d);
	if (flock(c->lock_fd, LOCK_SH) < 0 && rc == 0)
		rc = cvm_error_set(err, errno, "cache lock");
	return rc;
}
