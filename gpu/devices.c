/* Which device nodes: the control nodes, the selected /dev/nvidiaN, the
 * capability nodes, and the DRM render nodes of the same GPUs.
 *
 * GPUs are numbered as nvidia-smi and CUDA number them, by PCI bus order,
 * from /proc/driver/nvidia/gpus/BUS/information (which also has each GPU's
 * UUID and device minor). Without that directory, the /dev/nvidiaN nodes
 * present, in minor order, are the GPUs. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "internal.h"
#include "runtime/cleanup.h"

#define MAX_GPUS 64

struct gpu_dev {
	unsigned minor;
	char uuid[80];
	char bus[64];           /* PCI address, "" when unknown */
	bool selected;
};

struct gpu_list {
	struct gpu_dev g[MAX_GPUS];
	size_t n;
	bool have_info;         /* from the driver's /proc files */
};

static bool is_char_node(const char *path, struct stat *st)
{
	return stat(path, st) == 0 && S_ISCHR(st->st_mode);
}

/* "Key:   value" lines of a driver information file. */
static void info_value(const char *line, const char *key, char *out, size_t size)
{
	size_t n = strlen(key);

	if (strncmp(line, key, n) || line[n] != ':')
		return;
	line += n + 1;
	line += strspn(line, " \t");
	snprintf(out, size, "%.*s", (int)strcspn(line, " \t\n"), line);
}

static void read_info(const char *driver_dir, const char *bus, struct gpu_dev *g)
{
	char path[512], line[256], minor[16] = "";
	cleanup_file FILE *f = NULL;

	snprintf(path, sizeof(path), "%s/gpus/%s/information", driver_dir, bus);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		info_value(line, "GPU UUID", g->uuid, sizeof(g->uuid));
		info_value(line, "Device Minor", minor, sizeof(minor));
	}
	snprintf(g->bus, sizeof(g->bus), "%.63s", bus);
	g->minor = minor[0] ? (unsigned)strtoul(minor, NULL, 10) : ~0U;
}

static int from_driver_info(const char *driver_dir, struct gpu_list *l)
{
	char path[512];
	struct dirent **names = NULL;
	int n;

	snprintf(path, sizeof(path), "%s/gpus", driver_dir);
	n = scandir(path, &names, NULL, alphasort);    /* bus order */
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && l->n < MAX_GPUS)
			read_info(driver_dir, names[i]->d_name, &l->g[l->n++]);
		free(names[i]);
	}
	free(names);
	l->have_info = true;
	return 0;
}

static int by_minor(const void *a, const void *b)
{
	const struct gpu_dev *x = a, *y = b;
	return (x->minor > y->minor) - (x->minor < y->minor);
}

static void from_dev_nodes(const char *dev_dir, struct gpu_list *l)
{
	cleanup_dir DIR *d = opendir(dev_dir);
	struct dirent *e;

	while (d && (e = readdir(d)) && l->n < MAX_GPUS) {
		const char *num = e->d_name + 6;
		if (strncmp(e->d_name, "nvidia", 6) || !*num ||
		    strspn(num, "0123456789") != strlen(num))
			continue;
		l->g[l->n++] = (struct gpu_dev){ .minor = (unsigned)strtoul(num, NULL, 10) };
	}
	qsort(l->g, l->n, sizeof(l->g[0]), by_minor);
}

/* One entry of visible_devices: an index or a UUID (GPU-...). */
static int select_one(struct gpu_list *l, const char *tok, struct cvm_error *err)
{
	if (!strncasecmp(tok, "MIG-", 4))
		return cvm_error_set(err, 0, "visible_devices: %s is a MIG instance; cvm gives whole "
				     "GPUs only: name the GPU's index or UUID", tok);
	if (strspn(tok, "0123456789") == strlen(tok)) {
		unsigned long i = strtoul(tok, NULL, 10);
		if (i >= l->n)
			return cvm_error_set(err, 0, "visible_devices: there is no GPU %s (%zu found); "
					     "GPUs are numbered from 0 as nvidia-smi shows them", tok, l->n);
		l->g[i].selected = true;
		return 0;
	}
	if (!l->have_info)
		return cvm_error_set(err, 0, "visible_devices: cannot find GPU %s: the driver's "
				     "/proc/driver/nvidia/gpus is not readable; select GPUs by index", tok);
	for (size_t i = 0; i < l->n; i++)
		if (!strcasecmp(l->g[i].uuid, tok)) {
			l->g[i].selected = true;
			return 0;
		}
	return cvm_error_set(err, 0, "visible_devices: no GPU has the UUID %s (see nvidia-smi -L)",
			     tok);
}

static int select_gpus(struct gpu_list *l, const char *dev_dir, const char *visible,
		       struct cvm_error *err)
{
	char copy[1024], *save = NULL;
	struct stat st;

	if (!strcmp(visible, "none"))
		return 0;
	if (!strcmp(visible, "all")) {
		/* The GPUs this container was given: their nodes are here. */
		for (size_t i = 0; i < l->n; i++) {
			char path[512];
			snprintf(path, sizeof(path), "%s/nvidia%u", dev_dir, l->g[i].minor);
			l->g[i].selected = is_char_node(path, &st);
		}
		return 0;
	}
	snprintf(copy, sizeof(copy), "%s", visible);
	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
		if (select_one(l, t, err) < 0)
			return -1;
	return 0;
}

static int add_node(struct cvm_gpu_plan *p, const char *dev_dir, const char *name,
		    bool required, struct cvm_error *err)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dev_dir, name);
	if (is_char_node(path, &st))
		return gpu_add_node(p, path, name, &st, err);
	if (required)
		return cvm_error_set(err, 0, "%s is missing or not a character device in the outer "
				     "container; give it the GPU (docker --gpus, the NVIDIA device "
				     "plugin) or fix visible_devices", path);
	return 0;
}

/* Every node in a subdirectory whose names start with @prefix. */
static int add_node_dir(struct cvm_gpu_plan *p, const char *dev_dir, const char *sub,
			const char *prefix, struct cvm_error *err)
{
	char path[512];
	struct dirent **names = NULL;
	int n, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dev_dir, sub);
	n = scandir(path, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char rel[512];
		snprintf(rel, sizeof(rel), "%s/%s", sub, names[i]->d_name);
		if (r == 0 && !strncmp(names[i]->d_name, prefix, strlen(prefix)))
			r = add_node(p, dev_dir, rel, false, err);
		free(names[i]);
	}
	free(names);
	return r;
}

/* /sys/bus/pci/devices/BUS/drm/renderD128 names the GPU's render node. */
static int add_render_nodes(struct cvm_gpu_plan *p, const struct cvm_gpu_host *h,
			    const struct gpu_dev *g, struct cvm_error *err)
{
	char path[512];
	cleanup_dir DIR *d = NULL;
	struct dirent *e;

	if (!g->bus[0] || !h->sys_dir)
		return 0;
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/drm", h->sys_dir, g->bus);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		char rel[300];
		if (strncmp(e->d_name, "renderD", 7))
			continue;
		snprintf(rel, sizeof(rel), "dri/%s", e->d_name);
		if (add_node(p, h->dev_dir, rel, false, err) < 0)
			return -1;
	}
	return 0;
}

static int selection_text(struct cvm_gpu_plan *p, const struct gpu_list *l,
			  struct cvm_error *err)
{
	char buf[1024] = "";
	size_t len = 0;

	for (size_t i = 0; i < l->n && len < sizeof(buf); i++)
		if (l->g[i].selected)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%zu", len ? "," : "", i);
	p->devices = strdup(len ? buf : "none");
	return p->devices ? 0 : cvm_error_set(err, ENOMEM, "gpu");
}

int gpu_plan_devices(struct cvm_gpu_plan *p, const struct cvm_gpu_host *h,
		     const char *visible, struct cvm_error *err)
{
	static const char *const control[] = { "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset" };
	cleanup_free struct gpu_list *l = calloc(1, sizeof(*l));
	size_t n_selected = 0;

	if (!l)
		return cvm_error_set(err, ENOMEM, "gpu");
	/* An empty gpus dir (masked, or a driver without the files): the nodes. */
	if (!h->driver_dir || from_driver_info(h->driver_dir, l) < 0 || l->n == 0) {
		*l = (struct gpu_list){ .n = 0 };
		from_dev_nodes(h->dev_dir, l);
	}
	if (select_gpus(l, h->dev_dir, visible, err) < 0 ||
	    add_node(p, h->dev_dir, "nvidiactl", true, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++)
		if (add_node(p, h->dev_dir, control[i], false, err) < 0)
			return -1;
	for (size_t i = 0; i < l->n; i++) {
		char name[32];
		if (!l->g[i].selected)
			continue;
		n_selected++;
		snprintf(name, sizeof(name), "nvidia%u", l->g[i].minor);
		if (add_node(p, h->dev_dir, name, true, err) < 0 ||
		    add_render_nodes(p, h, &l->g[i], err) < 0)
			return -1;
	}
	if (add_node_dir(p, h->dev_dir, "nvidia-caps", "nvidia-cap", err) < 0 ||
	    selection_text(p, l, err) < 0)
		return -1;
	return (int)n_selected;
}
