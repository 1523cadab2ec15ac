/* The GPU plan: whether the workspace gets the GPU, and the pieces
 * (devices.c: nodes, files.c: driver files) checked against the image. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"
#include "runtime/cleanup.h"
#include "runtime/rootpath.h"

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MULTIARCH "powerpc64le-linux-gnu"
#else
#define MULTIARCH NULL
#endif

void cvm_gpu_host_default(struct cvm_gpu_host *h, char *const *envp)
{
	*h = (struct cvm_gpu_host){
		.dev_dir = "/dev", .mountinfo = "/proc/self/mountinfo",
		.driver_dir = "/proc/driver/nvidia", .sys_dir = "/sys",
		.default_lib_dir = "/usr/local/nvidia/lib64", .envp = envp,
	};
}

/* ---- growing the lists ---------------------------------------------------- */

static void *grow(void *array, size_t n, size_t size)
{
	return realloc(array, (n + 1) * size);
}

static bool planned(const struct cvm_gpu_plan *p, const char *inner)
{
	for (size_t i = 0; i < p->n_files; i++)
		if (!strcmp(p->files[i].inner, inner))
			return true;
	for (size_t i = 0; i < p->n_links; i++)
		if (!strcmp(p->links[i].inner, inner))
			return true;
	return false;
}

/* Both copies or neither. */
static int dup_pair(char **a, const char *x, char **b, const char *y, struct cvm_error *err)
{
	*a = strdup(x);
	*b = strdup(y);
	if (*a && *b)
		return 0;
	free(*a);
	free(*b);
	return cvm_error_set(err, ENOMEM, "gpu");
}

int gpu_add_node(struct cvm_gpu_plan *p, const char *outer, const char *inner,
		 const struct stat *st, struct cvm_error *err)
{
	struct cvm_gpu_node *g;

	for (size_t i = 0; i < p->n_nodes; i++)
		if (!strcmp(p->nodes[i].inner, inner))
			return 0;
	if (!(g = grow(p->nodes, p->n_nodes, sizeof(*g))))
		return cvm_error_set(err, ENOMEM, "gpu");
	p->nodes = g;
	g = &p->nodes[p->n_nodes];
	*g = (struct cvm_gpu_node){ .rdev = st->st_rdev, .mode = st->st_mode & 07777,
				    .uid = st->st_uid, .gid = st->st_gid };
	if (dup_pair(&g->outer, outer, &g->inner, inner, err) < 0)
		return -1;
	p->n_nodes++;
	return 0;
}

int gpu_add_file(struct cvm_gpu_plan *p, const char *outer, const char *inner,
		 enum cvm_gpu_file_kind kind, struct cvm_error *err)
{
	struct cvm_gpu_file *f;

	if (planned(p, inner))
		return 0;
	if (!(f = grow(p->files, p->n_files, sizeof(*f))))
		return cvm_error_set(err, ENOMEM, "gpu");
	p->files = f;
	f = &p->files[p->n_files];
	f->kind = kind;
	if (dup_pair(&f->outer, outer, &f->inner, inner, err) < 0)
		return -1;
	p->n_files++;
	return 0;
}

int gpu_add_link(struct cvm_gpu_plan *p, const char *inner, const char *target,
		 struct cvm_error *err)
{
	struct cvm_gpu_link *l;

	if (planned(p, inner))
		return 0;
	if (!(l = grow(p->links, p->n_links, sizeof(*l))))
		return cvm_error_set(err, ENOMEM, "gpu");
	p->links = l;
	l = &p->links[p->n_links];
	if (dup_pair(&l->inner, inner, &l->target, target, err) < 0)
		return -1;
	p->n_links++;
	return 0;
}

/* A NULL-terminated list of strings; @s is taken over. */
static int list_add(char ***list, size_t *n, char *s, struct cvm_error *err)
{
	char **l = s ? realloc(*list, (*n + 2) * sizeof(*l)) : NULL;

	if (!l) {
		free(s);
		return cvm_error_set(err, ENOMEM, "gpu");
	}
	l[(*n)++] = s;
	l[*n] = NULL;
	*list = l;
	return 0;
}

int gpu_refuse(struct cvm_gpu_plan *p, struct cvm_error *err, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	for (size_t i = 0; s && i < p->n_refused; i++)
		if (!strcmp(p->refused[i], s)) {
			free(s);
			return 0;
		}
	return list_add(&p->refused, &p->n_refused, s, err);
}

void cvm_gpu_plan_free(struct cvm_gpu_plan *p)
{
	for (size_t i = 0; i < p->n_nodes; i++) {
		free(p->nodes[i].outer);
		free(p->nodes[i].inner);
	}
	for (size_t i = 0; i < p->n_files; i++) {
		free(p->files[i].outer);
		free(p->files[i].inner);
	}
	for (size_t i = 0; i < p->n_links; i++) {
		free(p->links[i].inner);
		free(p->links[i].target);
	}
	for (size_t i = 0; i < p->n_env; i++)
		free(p->env[i]);
	for (size_t i = 0; i < p->n_refused; i++)
		free(p->refused[i]);
	free(p->nodes);
	free(p->files);
	free(p->links);
	free(p->env);
	free(p->refused);
	free(p->lib_dir);
	free(p->inner_lib_dir);
	free(p->devices);
	memset(p, 0, sizeof(*p));
}

/* ---- the image ------------------------------------------------------------ */

/* Does the space-separated list @words hold one of @names? */
static bool has_word(const char *words, const char *const *names)
{
	char copy[256], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", words);
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
		for (size_t i = 0; names[i]; i++)
			if (!strcmp(w, names[i]))
				return true;
	return false;
}

/* KEY=value, KEY="value" or KEY='value' from an os-release file. */
static void os_release_value(const char *text, const char *key, char *out, size_t size)
{
	size_t n = strlen(key);

	out[0] = '\0';
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, n) || l[n] != '=')
			continue;
		const char *v = l + n + 1;
		size_t len = strcspn(v, "\n");
		if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
			v++;
			len -= 2;
		}
		snprintf(out, size, "%.*s", (int)len, v);
		return;
	}
}

const char *cvm_gpu_inner_lib_dir(int rootfs_fd)
{
	static const char *const debian[] = { "debian", "ubuntu", NULL };
	static const char *const lib64[] = { "fedora", "rhel", "centos", "rocky", "almalinux",
					     "amzn", "ol", "suse", "opensuse", "sles", NULL };
	struct cvm_error e = { 0 };
	char text[4096], id[128], like[256];
	cleanup_close int fd = cvm_root_open_read(rootfs_fd, "/etc/os-release", &e);
	ssize_t n;

	if (fd < 0)
		fd = cvm_root_open_read(rootfs_fd, "/usr/lib/os-release", &e);
	n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	text[n > 0 ? n : 0] = '\0';
	os_release_value(text, "ID", id, sizeof(id));
	os_release_value(text, "ID_LIKE", like, sizeof(like));
	if (MULTIARCH && (has_word(id, debian) || has_word(like, debian)))
		return "/usr/lib/" MULTIARCH;
	if (has_word(id, lib64) || has_word(like, lib64))
		return "/usr/lib64";
	return "/usr/lib";
}

/* What is at @inner in the image must not be something cvm would hide: an
 * empty file is a mount point a previous start left, absence is fine. */
static int check_clash(int rootfs_fd, const char *inner, struct cvm_error *err)
{
	struct stat st;
	const char *what;

	if (cvm_root_lstat(rootfs_fd, inner, &st) < 0)
		return errno == ENOENT ? 0 : cvm_error_set(err, errno, "image: %s", inner);
	if (S_ISREG(st.st_mode) && st.st_size == 0)
		return 0;
	what = S_ISLNK(st.st_mode) ? "a symlink" : S_ISDIR(st.st_mode) ? "a directory" : "a file";
	return cvm_error_set(err, 0, "the image has %s at %s, where cvm would put the node's "
			     "driver: remove the NVIDIA driver files from the image (they must match "
			     "the node's kernel module), set [gpu] inner_lib_dir to another directory "
			     "its linker searches, or set [gpu] enable = no", what, inner);
}

static int check_image(const struct cvm_gpu_plan *p, int rootfs_fd, struct cvm_error *err)
{
	if (rootfs_fd < 0)
		return 0;
	for (size_t i = 0; i < p->n_files; i++)
		if (check_clash(rootfs_fd, p->files[i].inner, err) < 0)
			return -1;
	for (size_t i = 0; i < p->n_links; i++)
		if (check_clash(rootfs_fd, p->links[i].inner, err) < 0)
			return -1;
	return 0;
}

/* ---- the decision --------------------------------------------------------- */

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], name, n) && envp[i][n] == '=')
			return envp[i] + n + 1;
	return NULL;
}

static int plan_env(struct cvm_gpu_plan *p, char *const *envp, struct cvm_error *err)
{
	for (size_t i = 0; envp && envp[i]; i++) {
		if ((strncmp(envp[i], "NVIDIA_", 7) && strncmp(envp[i], "CUDA_", 5)) ||
		    !strchr(envp[i], '='))
			continue;
		if (list_add(&p->env, &p->n_env, strdup(envp[i]), err) < 0)
			return -1;
	}
	return 0;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Off, with a reason; an error instead when the GPU was required. */
static int off(const struct cvm_gpu_config *c, struct cvm_gpu_plan *p, struct cvm_error *err,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int off(const struct cvm_gpu_config *c, struct cvm_gpu_plan *p, struct cvm_error *err,
	       const char *fmt, ...)
{
	char why[sizeof(p->why)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	cvm_gpu_plan_free(p);
	memcpy(p->why, why, sizeof(why));
	if (c->enable == CVM_GPU_YES)
		return cvm_error_set(err, 0, "GPU requested ([gpu] enable = yes) but %s", why);
	return 0;
}

static bool has_libcuda(const struct cvm_gpu_plan *p)
{
	for (size_t i = 0; i < p->n_files; i++) {
		const char *base = strrchr(p->files[i].inner, '/') + 1;
		if (p->files[i].kind == CVM_GPU_LIB && !strncmp(base, "libcuda.so", 10))
			return true;
	}
	return false;
}

static int pick_lib_dir(const struct cvm_gpu_config *c, const struct cvm_gpu_host *h,
			struct cvm_gpu_plan *p, struct cvm_error *err)
{
	const char *dir = c->host_lib_dir;

	if (dir && !is_dir(dir))
		return cvm_error_set(err, errno ? errno : ENOTDIR, "[gpu] host_lib_dir %s: mount the "
				     "node's NVIDIA driver libraries there (envbox: CODER_USR_LIB_DIR), "
				     "or unset it to use what the NVIDIA runtime mounted", dir);
	if (!dir && h->default_lib_dir && is_dir(h->default_lib_dir))
		dir = h->default_lib_dir;
	if (dir && !(p->lib_dir = strdup(dir)))
		return cvm_error_set(err, ENOMEM, "gpu");
	return 0;
}

static int plan_inner_lib_dir(const struct cvm_gpu_config *c, int rootfs_fd,
			      struct cvm_gpu_plan *p, struct cvm_error *err)
{
	const char *d = c->inner_lib_dir;

	if (!d || !strcmp(d, "auto"))
		d = cvm_gpu_inner_lib_dir(rootfs_fd);
	p->inner_lib_dir = strdup(d);
	return p->inner_lib_dir ? 0 : cvm_error_set(err, ENOMEM, "gpu");
}

static int plan_on(const struct cvm_gpu_config *c, const struct cvm_gpu_host *h, int rootfs_fd,
		   const char *visible, struct cvm_gpu_plan *p, struct cvm_error *err)
{
	int n;

	n = gpu_plan_devices(p, h, visible, err);
	if (n < 0)
		return -1;
	if (n == 0 && strcmp(visible, "none"))
		return off(c, p, err, "no GPU of visible_devices=%s has a node in %s", visible,
			   h->dev_dir);
	if (plan_inner_lib_dir(c, rootfs_fd, p, err) < 0 || pick_lib_dir(c, h, p, err) < 0 ||
	    gpu_plan_files(p, p->lib_dir, h->mountinfo, err) < 0)
		return -1;
	if (!has_libcuda(p))
		return off(c, p, err, "no driver library (libcuda.so) was found %s%s%s: mount the "
			   "node's driver libraries into the outer container and set [gpu] "
			   "host_lib_dir", p->lib_dir ? "in " : "among the NVIDIA runtime's mounts",
			   p->lib_dir ? p->lib_dir : "", p->lib_dir ? " or the NVIDIA runtime's mounts" : "");
	if (check_image(p, rootfs_fd, err) < 0 || plan_env(p, h->envp, err) < 0)
		return -1;
	p->enabled = true;
	snprintf(p->why, sizeof(p->why), "GPUs %s (visible_devices=%s)", p->devices, visible);
	return 0;
}

int cvm_gpu_plan_make(const struct cvm_gpu_config *c, const struct cvm_gpu_host *h,
		      int rootfs_fd, struct cvm_gpu_plan *out, struct cvm_error *err)
{
	char ctl[512];
	struct stat st;
	const char *visible = c->visible_devices;
	int r;

	memset(out, 0, sizeof(*out));
	if (c->enable == CVM_GPU_NO) {
		snprintf(out->why, sizeof(out->why), "[gpu] enable = no");
		return 0;
	}
	if (!visible)
		visible = env_get(h->envp, "NVIDIA_VISIBLE_DEVICES");
	if (!visible)
		visible = "all";
	if (!*visible || !strcmp(visible, "void"))
		return off(c, out, err, "visible_devices is '%s' (no GPU)", visible);
	snprintf(ctl, sizeof(ctl), "%s/nvidiactl", h->dev_dir);
	if (stat(ctl, &st) < 0 || !S_ISCHR(st.st_mode))
		return off(c, out, err, "%s is missing: run the outer container with the NVIDIA "
			   "runtime (docker --gpus all, runtimeClassName: nvidia) or the NVIDIA device "
			   "plugin", ctl);
	r = plan_on(c, h, rootfs_fd, visible, out, err);
	if (r < 0) {
		cvm_gpu_plan_free(out);
		snprintf(out->why, sizeof(out->why), "%.255s", err->msg);
	}
	return r;
}

/* ---- for people ----------------------------------------------------------- */

void cvm_gpu_plan_print(FILE *f, const struct cvm_gpu_plan *p)
{
	static const char *const kinds[] = { "lib", "bin", "json" };

	fprintf(f, "gpu: %s: %s\n", p->enabled ? "on" : "off", p->why);
	if (!p->enabled)
		return;
	fprintf(f, "  libraries from %s and the NVIDIA runtime's mounts, to %s\n",
		p->lib_dir ? p->lib_dir : "(no host_lib_dir)", p->inner_lib_dir);
	for (size_t i = 0; i < p->n_nodes; i++)
		fprintf(f, "  dev   /dev/%s (%u:%u, mode %04o) from %s\n", p->nodes[i].inner,
			major(p->nodes[i].rdev), minor(p->nodes[i].rdev), (unsigned)p->nodes[i].mode,
			p->nodes[i].outer);
	for (size_t i = 0; i < p->n_files; i++)
		fprintf(f, "  %-5s %s (read-only) from %s\n", kinds[p->files[i].kind],
			p->files[i].inner, p->files[i].outer);
	for (size_t i = 0; i < p->n_links; i++)
		fprintf(f, "  link  %s -> %s\n", p->links[i].inner, p->links[i].target);
	for (size_t i = 0; i < p->n_env; i++)
		fprintf(f, "  env   %s\n", p->env[i]);
	for (size_t i = 0; i < p->n_refused; i++)
		fprintf(f, "  left out: %s\n", p->refused[i]);
}
