/* Which driver files: user-space libraries with their symlink chains,
 * binaries and vendor JSON files, found in the host lib dir and among the
 * files the NVIDIA container runtime bind-mounted into the outer container.
 *
 * Only names on the lists below are taken (envbox once matched libglib and
 * broke dnf inside), only 64-bit ELF libraries (a 32-bit copy would shadow
 * the real one), and a symlink is kept only when its whole chain stays in
 * its directory and ends at a driver library: the host lib dir is a mount
 * of the node's files, and a link that leaves it names a path that means
 * something else (or nothing) in the outer container. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "runtime/cleanup.h"

#define MAX_CHAIN 8

static const char *const lib_prefixes[] = {
	"libcuda", "libcudadebugger", "libnvcuvid", "libnvoptix", "libGLX_nvidia",
	"libEGL_nvidia", "libGLESv2_nvidia", "libGLESv1_CM_nvidia", "libvdpau_nvidia",
};

static const char *const binaries[] = {
	"nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control",
	"nvidia-cuda-mps-server",
};

/* Vendor files: where they live inside, and (relative to the driver's
 * prefix, the host lib dir's parent) where a driver bundle keeps them. */
static const struct { const char *inner, *bundle; } vendor_dirs[] = {
	{ "/usr/share/vulkan/icd.d", "share/vulkan/icd.d" },
	{ "/usr/share/vulkan/implicit_layer.d", "share/vulkan/implicit_layer.d" },
	{ "/etc/vulkan/icd.d", "vulkan/icd.d" },
	{ "/etc/vulkan/implicit_layer.d", "vulkan/implicit_layer.d" },
	{ "/usr/share/glvnd/egl_vendor.d", "share/glvnd/egl_vendor.d" },
	{ "/usr/share/egl/egl_external_platform.d", "share/egl/egl_external_platform.d" },
	{ "/etc/OpenCL/vendors", "OpenCL/vendors" },
};

/* NAME.so or NAME.so.VERSION */
static bool so_name(const char *s)
{
	return !strncmp(s, ".so", 3) && (s[3] == '\0' || s[3] == '.');
}

bool cvm_gpu_is_driver_lib(const char *name)
{
	for (size_t i = 0; i < sizeof(lib_prefixes) / sizeof(lib_prefixes[0]); i++) {
		size_t n = strlen(lib_prefixes[i]);
		if (!strncmp(name, lib_prefixes[i], n) && so_name(name + n))
			return true;
	}
	/* libnvidia-ml, -ptxjitcompiler, -glcore, -egl-wayland, ... */
	if (strncmp(name, "libnvidia-", 10))
		return false;
	const char *s = name + 10;
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
	return n > 0 && so_name(s + n);
}

static bool is_binary(const char *name)
{
	for (size_t i = 0; i < sizeof(binaries) / sizeof(binaries[0]); i++)
		if (!strcmp(name, binaries[i]))
			return true;
	return false;
}

static bool is_vendor_file(const char *name)
{
	size_t n = strlen(name);
	return strstr(name, "nvidia") && n > 5 &&
		(!strcmp(name + n - 5, ".json") || !strcmp(name + n - 4, ".icd"));
}

/* A library of this build's word size (what the workspace's programs load). */
static bool native_elf(int dirfd, const char *name)
{
	unsigned char id[EI_NIDENT];
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0 || read(fd, id, sizeof(id)) != (ssize_t)sizeof(id) ||
	    memcmp(id, ELFMAG, SELFMAG))
		return false;
	return id[EI_CLASS] == (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32);
}

/* Follow @name's symlinks inside @dirfd. On success, @hops[0..n-1] are the
 * links' targets (each a name in the same directory) and the last is a
 * regular driver library; returns n, or -1 after noting the refusal. */
static int follow_chain(struct cvm_gpu_plan *p, int dirfd, const char *dir, const char *name,
			char hops[MAX_CHAIN][256], struct cvm_error *err)
{
	const char *cur = name;
	struct stat st;
	int n = 0;

	for (;;) {
		if (fstatat(dirfd, cur, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return gpu_refuse(p, err, "%s/%s: %s is missing", dir, name, cur) ? -2 : -1;
		if (S_ISREG(st.st_mode))
			return n;
		if (!S_ISLNK(st.st_mode) || n == MAX_CHAIN)
			return gpu_refuse(p, err, "%s/%s: not a file or a short symlink chain", dir,
					  name) ? -2 : -1;
		ssize_t len = readlinkat(dirfd, cur, hops[n], sizeof(hops[n]) - 1);
		if (len <= 0)
			return gpu_refuse(p, err, "%s/%s: unreadable link", dir, name) ? -2 : -1;
		hops[n][len] = '\0';
		if (!strncmp(hops[n], "./", 2))
			memmove(hops[n], hops[n] + 2, strlen(hops[n] + 2) + 1);
		if (strchr(hops[n], '/') || !strcmp(hops[n], "..") || !strcmp(hops[n], "."))
			return gpu_refuse(p, err, "%s/%s: its link to %s leaves the directory", dir,
					  name, hops[n]) ? -2 : -1;
		if (!cvm_gpu_is_driver_lib(hops[n]))
			return gpu_refuse(p, err, "%s/%s: its link to %s is not a driver library",
					  dir, name, hops[n]) ? -2 : -1;
		cur = hops[n++];
	}
}

/* @name in @dir (an entry of the host lib dir, or one the runtime mounted)
 * with its chain: links made inside, the file at its end bound. With
 * @only_file set, a chain counts only if it ends at that file. */
static int add_lib(struct cvm_gpu_plan *p, int dirfd, const char *dir, const char *name,
		   const char *only_file, struct cvm_error *err)
{
	char hops[MAX_CHAIN][256], outer[4096], inner[4096];
	int n = follow_chain(p, dirfd, dir, name, hops, err);
	const char *file = n > 0 ? hops[n - 1] : name;

	if (n < 0)
		return n == -2 ? -1 : 0;
	if (only_file && strcmp(file, only_file))
		return 0;
	if (!native_elf(dirfd, file))
		return gpu_refuse(p, err, "%s/%s: not a %d-bit ELF library", dir, file,
				  (int)sizeof(void *) * 8);
	snprintf(outer, sizeof(outer), "%s/%s", dir, file);
	snprintf(inner, sizeof(inner), "%s/%s", p->inner_lib_dir, file);
	if (gpu_add_file(p, outer, inner, CVM_GPU_LIB, err) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		snprintf(inner, sizeof(inner), "%s/%s", p->inner_lib_dir, i ? hops[i - 1] : name);
		if (gpu_add_link(p, inner, hops[i], err) < 0)
			return -1;
	}
	return 0;
}

/* Every driver library in @dir; with @only_file, just the chains to it. */
static int scan_lib_dir(struct cvm_gpu_plan *p, const char *dir, const char *only_file,
			struct cvm_error *err)
{
	struct dirent **names = NULL;
	cleanup_close int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int n = dirfd < 0 ? -1 : scandir(dir, &names, NULL, alphasort);
	int r = 0;

	if (n < 0)
		return cvm_error_set(err, errno, "%s", dir);
	for (int i = 0; i < n; i++) {
		if (r == 0 && cvm_gpu_is_driver_lib(names[i]->d_name))
			r = add_lib(p, dirfd, dir, names[i]->d_name, only_file, err);
		free(names[i]);
	}
	free(names);
	return r;
}

static int add_plain_file(struct cvm_gpu_plan *p, const char *outer, const char *inner,
			  enum cvm_gpu_file_kind kind, struct cvm_error *err)
{
	struct stat st;

	if (stat(outer, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return gpu_add_file(p, outer, inner, kind, err);
}

/* A driver bundle (/usr/local/nvidia: lib64/, bin/, share/...): its
 * binaries and vendor files sit next to the lib dir. */
static int scan_bundle(struct cvm_gpu_plan *p, const char *lib_dir, struct cvm_error *err)
{
	char copy[4096], prefix[4096], outer[8192], inner[4096];

	snprintf(copy, sizeof(copy), "%s", lib_dir);
	snprintf(prefix, sizeof(prefix), "%s", dirname(copy));
	for (size_t i = 0; i < sizeof(binaries) / sizeof(binaries[0]); i++) {
		snprintf(outer, sizeof(outer), "%s/bin/%s", prefix, binaries[i]);
		snprintf(inner, sizeof(inner), "/usr/bin/%s", binaries[i]);
		if (add_plain_file(p, outer, inner, CVM_GPU_BIN, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < sizeof(vendor_dirs) / sizeof(vendor_dirs[0]); i++) {
		char dir[4096 + 64];
		cleanup_dir DIR *d = NULL;
		struct dirent *e;
		snprintf(dir, sizeof(dir), "%s/%s", prefix, vendor_dirs[i].bundle);
		d = opendir(dir);
		while (d && (e = readdir(d))) {
			if (!is_vendor_file(e->d_name))
				continue;
			snprintf(outer, sizeof(outer), "%s/%s", dir, e->d_name);
			snprintf(inner, sizeof(inner), "%s/%s", vendor_dirs[i].inner, e->d_name);
			if (add_plain_file(p, outer, inner, CVM_GPU_JSON, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* mountinfo escapes blanks and backslashes as \NNN (octal). */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

static bool in_vendor_dir(const char *path)
{
	for (size_t i = 0; i < sizeof(vendor_dirs) / sizeof(vendor_dirs[0]); i++) {
		size_t n = strlen(vendor_dirs[i].inner);
		if (!strncmp(path, vendor_dirs[i].inner, n) && path[n] == '/' &&
		    !strchr(path + n + 1, '/'))
			return true;
	}
	return false;
}

/* One mount point of the outer container. */
static int add_mounted(struct cvm_gpu_plan *p, char *path, struct cvm_error *err)
{
	char copy[4096], inner[4096];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	struct stat st;

	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (is_binary(base)) {
		snprintf(inner, sizeof(inner), "/usr/bin/%s", base);
		return gpu_add_file(p, path, inner, CVM_GPU_BIN, err);
	}
	if (is_vendor_file(base) && in_vendor_dir(path))
		return gpu_add_file(p, path, path, CVM_GPU_JSON, err);
	if (!cvm_gpu_is_driver_lib(base))
		return 0;
	/* The runtime mounts the file; its links (libcuda.so.1) were made next
	 * to it by its ldconfig hook: take the chains that end at it. */
	snprintf(copy, sizeof(copy), "%s", path);
	return scan_lib_dir(p, dirname(copy), base, err);
}

static int scan_mountinfo(struct cvm_gpu_plan *p, const char *mountinfo, struct cvm_error *err)
{
	cleanup_file FILE *f = fopen(mountinfo, "re");
	char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f)
		return 0;       /* no mount table: the lib dir alone */
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char *save = NULL, *field = strtok_r(line, " ", &save);
		for (int i = 0; field && i < 4; i++)
			field = strtok_r(NULL, " ", &save);
		if (!field)
			continue;
		unescape(field);
		r = add_mounted(p, field, err);
	}
	free(line);
	return r;
}

int gpu_plan_files(struct cvm_gpu_plan *p, const char *lib_dir, const char *mountinfo,
		   struct cvm_error *err)
{
	if (lib_dir && (scan_lib_dir(p, lib_dir, NULL, err) < 0 || scan_bundle(p, lib_dir, err) < 0))
		return -1;
	if (mountinfo && scan_mountinfo(p, mountinfo, err) < 0)
		return -1;
	return 0;
}
