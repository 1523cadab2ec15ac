/* The GPU planner (gpu/) on the fixture trees in tests/fixtures/gpu: which
 * nodes, driver files, links and variables a workspace would get, and the
 * errors before anything starts.
 *
 * Device nodes cannot be kept in git, so each test makes a fake /dev in a
 * scratch dir with mknod(2) (real character devices, major 195 as the
 * NVIDIA driver's): the planner checks the node type, so regular files
 * would not do. That needs CAP_MKNOD; without it those tests say so and
 * fail rather than pass vacuously. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "gpu/gpu.h"
#include "tmptree.h"

static char fx[512];            /* tests/fixtures/gpu */
static char tmp[64];            /* scratch: dev/, mountinfo, images */
static char dev[128], lib[600], drv[600], sys[600];
static struct cvm_gpu_plan plan;
static struct cvm_error err;

static void node(const char *rel, unsigned maj, unsigned min, mode_t mode)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dev, rel);
	ck_assert_msg(mknod(p, S_IFCHR | mode, makedev(maj, min)) == 0,
		      "mknod %s: %s (the GPU unit tests need CAP_MKNOD: run them as root)", p,
		      strerror(errno));
	ck_assert_int_eq(chmod(p, mode), 0);
}

static void setup(void)
{
	char p[256];

	snprintf(fx, sizeof(fx), "%s/tests/fixtures/gpu", getenv("CVM_SOURCE_ROOT"));
	snprintf(lib, sizeof(lib), "%s/driver/lib64", fx);
	snprintf(drv, sizeof(drv), "%s/proc/driver/nvidia", fx);
	snprintf(sys, sizeof(sys), "%s/sys", fx);
	tmptree_make(tmp, "cvm-gpu");
	snprintf(dev, sizeof(dev), "%s/dev", tmp);
	tmptree_put(tmp, "dev/nvidia-caps/.keep", "");
	tmptree_put(tmp, "dev/dri/.keep", "");
	node("nvidiactl", 195, 255, 0666);
	node("nvidia-uvm", 510, 0, 0666);
	node("nvidia0", 195, 0, 0666);
	node("nvidia1", 195, 1, 0666);
	node("nvidia-caps/nvidia-cap1", 238, 1, 0400);
	node("dri/renderD128", 226, 128, 0660);
	node("dri/renderD129", 226, 129, 0660);
	snprintf(p, sizeof(p), "%s/dri/renderD129", dev);
	ck_assert_int_eq(chown(p, 0, 44), 0);
	/* Not a device: must never count as a GPU. */
	tmptree_put(tmp, "dev/nvidia2", "");
	memset(&plan, 0, sizeof(plan));
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	cvm_gpu_plan_free(&plan);
	tmptree_remove(tmp);
}

static struct cvm_gpu_host host(char *const *envp)
{
	static char none[600];
	snprintf(none, sizeof(none), "%s/no-mountinfo", tmp);
	return (struct cvm_gpu_host){ .dev_dir = dev, .mountinfo = none, .driver_dir = drv,
				      .sys_dir = sys, .default_lib_dir = NULL, .envp = envp };
}

static int image_fd(const char *name)
{
	char p[600];
	int fd;
	snprintf(p, sizeof(p), "%s/%s", fx, name);
	fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Plan with the Debian image and the fixture driver bundle. */
static int make(const struct cvm_gpu_config *c, const struct cvm_gpu_host *h)
{
	int fd = image_fd("debian");
	int r = cvm_gpu_plan_make(c, h, fd, &plan, &err);
	close(fd);
	return r;
}

static const struct cvm_gpu_file *file_at(const char *inner)
{
	for (size_t i = 0; i < plan.n_files; i++)
		if (!strcmp(plan.files[i].inner, inner))
			return &plan.files[i];
	return NULL;
}

static const char *link_at(const char *inner)
{
	for (size_t i = 0; i < plan.n_links; i++)
		if (!strcmp(plan.links[i].inner, inner))
			return plan.links[i].target;
	return NULL;
}

static const struct cvm_gpu_node *node_at(const char *inner)
{
	for (size_t i = 0; i < plan.n_nodes; i++)
		if (!strcmp(plan.nodes[i].inner, inner))
			return &plan.nodes[i];
	return NULL;
}

static bool refused(const char *what)
{
	for (size_t i = 0; i < plan.n_refused; i++)
		if (strstr(plan.refused[i], what))
			return true;
	return false;
}

/* Nothing anywhere in the plan names @s. */
static bool mentions(const char *s)
{
	for (size_t i = 0; i < plan.n_files; i++)
		if (strstr(plan.files[i].inner, s) || strstr(plan.files[i].outer, s))
			return true;
	for (size_t i = 0; i < plan.n_links; i++)
		if (strstr(plan.links[i].inner, s) || strstr(plan.links[i].target, s))
			return true;
	return false;
}

#define ML "/usr/lib/x86_64-linux-gnu/"

START_TEST(debian_image_gets_the_driver_in_its_multiarch_dir)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);
	char want[700];

	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert(plan.enabled);
	ck_assert_str_eq(plan.inner_lib_dir, "/usr/lib/x86_64-linux-gnu");
	const struct cvm_gpu_file *f = file_at(ML "libcuda.so.535.104.05");
	ck_assert_ptr_nonnull(f);
	snprintf(want, sizeof(want), "%s/libcuda.so.535.104.05", lib);
	ck_assert_str_eq(f->outer, want);
	ck_assert_int_eq(f->kind, CVM_GPU_LIB);
	/* The chain, hop by hop, as in the lib dir; "./x" is kept as "x". */
	ck_assert_str_eq(link_at(ML "libcuda.so.1"), "libcuda.so.535.104.05");
	ck_assert_str_eq(link_at(ML "libcuda.so"), "libcuda.so.1");
	ck_assert_str_eq(link_at(ML "libnvidia-ml.so.1"), "libnvidia-ml.so.535.104.05");
	ck_assert_ptr_nonnull(file_at(ML "libnvidia-ml.so.535.104.05"));
	ck_assert_ptr_nonnull(file_at(ML "libnvidia-glcore.so.535.104.05"));
	ck_assert_ptr_nonnull(file_at(ML "libGLX_nvidia.so.535.104.05"));
	ck_assert_str_eq(link_at(ML "libEGL_nvidia.so.0"), "libEGL_nvidia.so.535.104.05");
	ck_assert_str_eq(link_at(ML "libnvcuvid.so.1"), "libnvcuvid.so.535.104.05");
	ck_assert_ptr_nonnull(file_at(ML "libnvoptix.so.1"));
	/* A link is never also bound as a file. */
	ck_assert_ptr_null(file_at(ML "libcuda.so.1"));
}
END_TEST

START_TEST(unrelated_libraries_never_match)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);

	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert(!mentions("libglib"));
	ck_assert(!mentions("libEGL.so"));
	ck_assert(!mentions("libOpenCL"));
	ck_assert(!mentions("libcudart"));
	ck_assert(!mentions("libnvidia-ml-extra.txt"));
	ck_assert(!mentions("other-tool"));
	ck_assert(!mentions("intel_icd"));
	ck_assert(cvm_gpu_is_driver_lib("libcuda.so.1"));
	ck_assert(cvm_gpu_is_driver_lib("libnvidia-egl-wayland.so.1.1.11"));
	ck_assert(!cvm_gpu_is_driver_lib("libcudart.so.12"));
	ck_assert(!cvm_gpu_is_driver_lib("libcuda.sox"));
	ck_assert(!cvm_gpu_is_driver_lib("libnvidia-.so.1"));
	ck_assert(!cvm_gpu_is_driver_lib("libGL.so.1"));
	ck_assert(!cvm_gpu_is_driver_lib("libglib-2.0.so.0"));
}
END_TEST

START_TEST(chains_that_leave_the_dir_are_refused)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);

	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert(!mentions("ptxjitcompiler"));
	ck_assert(refused("libnvidia-ptxjitcompiler.so.1: its link to "
			  "../../outside/libnvidia-ptxjitcompiler.so.535.104.05 leaves the directory"));
	ck_assert(!mentions("evil") && !mentions("passwd"));
	ck_assert(refused("libnvidia-evil.so.1: its link to /etc/passwd leaves the directory"));
	/* A driver name that links to an unrelated library, a loop, 32-bit. */
	ck_assert(!mentions("libnvidia-fake") && refused("libnvidia-fake.so.1: its link to "
							"libglib-2.0.so.0 is not a driver library"));
	ck_assert(!mentions("libnvidia-loop") && refused("libnvidia-loop.so.1"));
	ck_assert(!mentions("libnvidia-tls") && refused("libnvidia-tls.so.535.104.05: not a 64-bit"));
}
END_TEST

START_TEST(binaries_and_vendor_files_of_the_bundle)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);

	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	const struct cvm_gpu_file *smi = file_at("/usr/bin/nvidia-smi");
	ck_assert_ptr_nonnull(smi);
	ck_assert_int_eq(smi->kind, CVM_GPU_BIN);
	ck_assert_ptr_nonnull(strstr(smi->outer, "/driver/bin/nvidia-smi"));
	ck_assert_ptr_nonnull(file_at("/usr/share/vulkan/icd.d/nvidia_icd.json"));
	ck_assert_int_eq(file_at("/usr/share/glvnd/egl_vendor.d/10_nvidia.json")->kind, CVM_GPU_JSON);
}
END_TEST

START_TEST(rhel_and_other_images_pick_their_lib_dir)
{
	int fd = image_fd("rhel");
	ck_assert_str_eq(cvm_gpu_inner_lib_dir(fd), "/usr/lib64");
	close(fd);
	fd = image_fd("plain");
	ck_assert_str_eq(cvm_gpu_inner_lib_dir(fd), "/usr/lib");
	close(fd);
	/* No os-release at all. */
	fd = image_fd("driver");
	ck_assert_str_eq(cvm_gpu_inner_lib_dir(fd), "/usr/lib");
	close(fd);

	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);
	fd = image_fd("rhel");
	ck_assert_msg(cvm_gpu_plan_make(&c, &h, fd, &plan, &err) == 0, "%s", err.msg);
	close(fd);
	ck_assert_ptr_nonnull(file_at("/usr/lib64/libcuda.so.535.104.05"));
	ck_assert_str_eq(link_at("/usr/lib64/libcuda.so.1"), "libcuda.so.535.104.05");
	/* An explicit inner_lib_dir wins over os-release. */
	cvm_gpu_plan_free(&plan);
	c.inner_lib_dir = "/opt/nvidia/lib";
	fd = image_fd("debian");
	ck_assert_msg(cvm_gpu_plan_make(&c, &h, fd, &plan, &err) == 0, "%s", err.msg);
	close(fd);
	ck_assert_ptr_nonnull(file_at("/opt/nvidia/lib/libcuda.so.535.104.05"));
}
END_TEST

START_TEST(all_devices_with_their_render_nodes)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);

	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert_str_eq(plan.devices, "0,1");
	const struct cvm_gpu_node *n = node_at("nvidiactl");
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(major(n->rdev), 195);
	ck_assert_int_eq(minor(n->rdev), 255);
	ck_assert_int_eq(n->mode, 0666);
	ck_assert_ptr_nonnull(node_at("nvidia-uvm"));
	ck_assert_ptr_null(node_at("nvidia-uvm-tools"));        /* not there: optional */
	ck_assert_ptr_nonnull(node_at("nvidia0"));
	ck_assert_ptr_nonnull(node_at("nvidia1"));
	ck_assert_ptr_null(node_at("nvidia2"));                 /* a regular file */
	ck_assert_int_eq(node_at("nvidia-caps/nvidia-cap1")->mode, 0400);
	n = node_at("dri/renderD129");
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(n->gid, 44);
	ck_assert_ptr_nonnull(node_at("dri/renderD128"));
}
END_TEST

START_TEST(visible_devices_by_index_and_uuid)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib, .visible_devices = "0" };
	struct cvm_gpu_host h = host(NULL);

	/* Index 0 is the first GPU in bus order (0000:3b), whose minor is 1. */
	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(node_at("nvidia1"));
	ck_assert_ptr_null(node_at("nvidia0"));
	ck_assert_ptr_nonnull(node_at("dri/renderD129"));
	ck_assert_ptr_null(node_at("dri/renderD128"));
	ck_assert_ptr_nonnull(node_at("nvidiactl"));
	cvm_gpu_plan_free(&plan);

	c.visible_devices = "GPU-BBBBBBBB-1111-2222-3333-444444444444";
	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(node_at("nvidia0"));
	ck_assert_ptr_null(node_at("nvidia1"));
	ck_assert_ptr_nonnull(node_at("dri/renderD128"));
	ck_assert_str_eq(plan.devices, "1");
	cvm_gpu_plan_free(&plan);

	/* none: the driver and control nodes, no GPU. */
	c.visible_devices = "none";
	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert(plan.enabled);
	ck_assert_ptr_nonnull(node_at("nvidiactl"));
	ck_assert_ptr_null(node_at("nvidia0"));
	ck_assert_ptr_null(node_at("nvidia1"));
	ck_assert_ptr_nonnull(file_at(ML "libcuda.so.535.104.05"));
}
END_TEST

/* Without the driver's /proc files (or with an empty gpus dir), the nodes
 * present are the GPUs, in minor order, and UUIDs cannot be resolved. */
START_TEST(without_driver_info_the_nodes_count)
{
	char empty[128];
	struct cvm_gpu_config c = { .host_lib_dir = lib, .visible_devices = "1" };
	struct cvm_gpu_host h = host(NULL);

	snprintf(empty, sizeof(empty), "%s/driver", tmp);
	tmptree_put(tmp, "driver/gpus/.keep", "");
	h.driver_dir = empty;
	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(node_at("nvidia1"));
	ck_assert_ptr_null(node_at("nvidia0"));
	ck_assert_ptr_null(node_at("dri/renderD129"));          /* bus unknown */
	cvm_gpu_plan_free(&plan);
	h.driver_dir = NULL;
	c.visible_devices = "GPU-aaaaaaaa-1111-2222-3333-444444444444";
	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "select GPUs by index"));
}
END_TEST

START_TEST(visible_devices_errors)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib, .visible_devices = "0,5" };
	struct cvm_gpu_host h = host(NULL);

	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "there is no GPU 5 (2 found)"));
	ck_assert(!plan.enabled && plan.n_nodes == 0);
	c.visible_devices = "GPU-cccc";
	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "no GPU has the UUID GPU-cccc"));
	c.visible_devices = "MIG-1234";
	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "MIG"));
	/* The driver says GPU 0 has minor 1; without its node, say which is missing. */
	char p[256];
	snprintf(p, sizeof(p), "%s/nvidia1", dev);
	ck_assert_int_eq(unlink(p), 0);
	c.visible_devices = "0";
	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nvidia1 is missing"));
}
END_TEST

START_TEST(nvidia_visible_devices_is_honoured)
{
	char *envp[] = { "NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
			 "CUDA_VERSION=12.2", "PATH=/bin", "NVIDIA_", NULL };
	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(envp);

	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(node_at("nvidia0"));
	ck_assert_ptr_null(node_at("nvidia1"));
	ck_assert_int_eq(plan.n_env, 3);
	ck_assert_str_eq(plan.env[0], "NVIDIA_VISIBLE_DEVICES=1");
	ck_assert_str_eq(plan.env[1], "NVIDIA_DRIVER_CAPABILITIES=compute,utility");
	ck_assert_str_eq(plan.env[2], "CUDA_VERSION=12.2");
	cvm_gpu_plan_free(&plan);
	/* The config wins over the variable. */
	c.visible_devices = "all";
	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(node_at("nvidia1"));
	cvm_gpu_plan_free(&plan);
	/* void: no GPU at all; an error only when the GPU was required. */
	char *void_env[] = { "NVIDIA_VISIBLE_DEVICES=void", NULL };
	h = host(void_env);
	c.visible_devices = NULL;
	ck_assert_int_eq(make(&c, &h), 0);
	ck_assert(!plan.enabled);
	c.enable = CVM_GPU_YES;
	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "enable = yes"));
}
END_TEST

START_TEST(enable_auto_yes_no)
{
	char p[256];
	struct cvm_gpu_config c = { .enable = CVM_GPU_NO, .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);

	ck_assert_int_eq(make(&c, &h), 0);
	ck_assert(!plan.enabled && plan.n_nodes == 0 && plan.n_files == 0);
	snprintf(p, sizeof(p), "%s/nvidiactl", dev);
	ck_assert_int_eq(unlink(p), 0);
	c.enable = CVM_GPU_AUTO;
	ck_assert_int_eq(make(&c, &h), 0);
	ck_assert(!plan.enabled);
	ck_assert_ptr_nonnull(strstr(plan.why, "nvidiactl is missing"));
	c.enable = CVM_GPU_YES;
	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "GPU requested ([gpu] enable = yes) but"));
	ck_assert_ptr_nonnull(strstr(err.msg, "nvidiactl is missing: run the outer container with "
				     "the NVIDIA runtime"));
}
END_TEST

START_TEST(missing_or_empty_lib_dir)
{
	char empty[128];
	struct cvm_gpu_config c = { .host_lib_dir = "/nonexistent/nvidia/lib64" };
	struct cvm_gpu_host h = host(NULL);

	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "host_lib_dir /nonexistent/nvidia/lib64: mount the "
				     "node's NVIDIA driver libraries there"));
	/* Devices but no driver: off under auto (a privileged pod sees every
	 * node of the host), an error when asked for. */
	snprintf(empty, sizeof(empty), "%s/empty", tmp);
	ck_assert_int_eq(mkdir(empty, 0755), 0);
	c.host_lib_dir = empty;
	ck_assert_int_eq(make(&c, &h), 0);
	ck_assert(!plan.enabled);
	ck_assert_ptr_nonnull(strstr(plan.why, "no driver library (libcuda.so)"));
	c.enable = CVM_GPU_YES;
	ck_assert_int_eq(make(&c, &h), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "set [gpu] host_lib_dir"));
}
END_TEST

START_TEST(files_the_runtime_mounted)
{
	char mi[128], line[4096];
	char *o = line;
	struct cvm_gpu_config c = { 0 };
	struct cvm_gpu_host h = host(NULL);
	const char *mounted[] = {
		"usr/lib/x86_64-linux-gnu/libnvidia-encode.so.535.104.05",
		"usr/lib/x86_64-linux-gnu/libz.so.1",
		"usr/bin/nvidia-debugdump",
		"usr/lib/x86_64-linux-gnu/with\\040space/libnvidia-cfg.so.535.104.05",
	};

	for (size_t i = 0; i < sizeof(mounted) / sizeof(mounted[0]); i++)
		o += sprintf(o, "%zu 20 259:1 /x %s/outer/%s ro,nosuid,nodev,relatime master:1 - ext4 "
			     "/dev/nvme0n1p1 rw\n", 600 + i, fx, mounted[i]);
	/* libcuda: from the mounts too, else the plan is off. */
	o += sprintf(o, "700 20 259:1 /x %s/libcuda.so.535.104.05 ro - ext4 /dev/x rw\n", lib);
	tmptree_put(tmp, "mountinfo", line);
	snprintf(mi, sizeof(mi), "%s/mountinfo", tmp);
	h.mountinfo = mi;
	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	ck_assert(plan.enabled);
	ck_assert_ptr_nonnull(file_at(ML "libnvidia-encode.so.535.104.05"));
	ck_assert_str_eq(link_at(ML "libnvidia-encode.so.1"), "libnvidia-encode.so.535.104.05");
	ck_assert_ptr_nonnull(file_at(ML "libnvidia-cfg.so.535.104.05"));
	ck_assert_ptr_nonnull(strstr(file_at(ML "libnvidia-cfg.so.535.104.05")->outer, "with space"));
	ck_assert_int_eq(file_at("/usr/bin/nvidia-debugdump")->kind, CVM_GPU_BIN);
	/* Next to a mounted file, but not mounted itself: not the runtime's. */
	ck_assert(!mentions("libnvidia-opencl"));
	ck_assert(!mentions("libz"));
	/* Only the chains to the mounted libcuda, not the rest of its dir. */
	ck_assert_str_eq(link_at(ML "libcuda.so.1"), "libcuda.so.535.104.05");
	ck_assert(!mentions("libnvidia-ml"));
}
END_TEST

START_TEST(a_clash_with_the_image_is_an_error)
{
	char img[128], p[256];
	struct cvm_gpu_config c = { .host_lib_dir = lib };
	struct cvm_gpu_host h = host(NULL);
	int fd;

	snprintf(img, sizeof(img), "%s/img", tmp);
	tmptree_put(tmp, "img/etc/os-release", "ID=ubuntu\n");
	/* An empty file is the mount point an earlier start left: fine. */
	tmptree_put(tmp, "img" ML "libcuda.so.535.104.05", "");
	fd = open(img, O_PATH | O_DIRECTORY);
	ck_assert_msg(cvm_gpu_plan_make(&c, &h, fd, &plan, &err) == 0, "%s", err.msg);
	cvm_gpu_plan_free(&plan);
	/* The image's own driver link would be hidden. */
	snprintf(p, sizeof(p), "%s" ML "libcuda.so.1", img);
	ck_assert_int_eq(symlink("libcuda.so.470.1", p), 0);
	ck_assert_int_eq(cvm_gpu_plan_make(&c, &h, fd, &plan, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "the image has a symlink at " ML "libcuda.so.1"));
	ck_assert_ptr_nonnull(strstr(err.msg, "inner_lib_dir"));
	ck_assert(!plan.enabled);
	unlink(p);
	tmptree_put(tmp, "img/usr/bin/nvidia-smi", "#!/bin/sh\necho image's own\n");
	ck_assert_int_eq(cvm_gpu_plan_make(&c, &h, fd, &plan, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "the image has a file at /usr/bin/nvidia-smi"));
	close(fd);
}
END_TEST

START_TEST(the_plan_prints_for_people)
{
	struct cvm_gpu_config c = { .host_lib_dir = lib, .visible_devices = "1" };
	struct cvm_gpu_host h = host(NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_msg(make(&c, &h) == 0, "%s", err.msg);
	cvm_gpu_plan_print(f, &plan);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "gpu: on: GPUs 1 (visible_devices=1)\n"));
	ck_assert_ptr_nonnull(strstr(buf, "  dev   /dev/nvidia0 (195:0, mode 0666) from "));
	ck_assert_ptr_nonnull(strstr(buf, "  lib   " ML "libcuda.so.535.104.05 (read-only) from "));
	ck_assert_ptr_nonnull(strstr(buf, "  link  " ML "libcuda.so.1 -> libcuda.so.535.104.05\n"));
	ck_assert_ptr_nonnull(strstr(buf, "  bin   /usr/bin/nvidia-smi (read-only) from "));
	ck_assert_ptr_nonnull(strstr(buf, "  left out: "));
	free(buf);
	cvm_gpu_plan_free(&plan);
	c.enable = CVM_GPU_NO;
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(make(&c, &h), 0);
	cvm_gpu_plan_print(f, &plan);
	fclose(f);
	ck_assert_str_eq(buf, "gpu: off: [gpu] enable = no\n");
	free(buf);
	/* No image at all (cvm check without one): the plan still comes. */
	cvm_gpu_plan_free(&plan);
	c.enable = CVM_GPU_AUTO;
	ck_assert_msg(cvm_gpu_plan_make(&c, &h, -1, &plan, &err) == 0, "%s", err.msg);
	ck_assert(plan.enabled);
	ck_assert_ptr_nonnull(file_at("/usr/lib/libcuda.so.535.104.05"));
}
END_TEST

static Suite *gpu_suite(void)
{
	Suite *s = suite_create("gpu");
	TCase *t = tcase_create("plan");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, debian_image_gets_the_driver_in_its_multiarch_dir);
	tcase_add_test(t, unrelated_libraries_never_match);
	tcase_add_test(t, chains_that_leave_the_dir_are_refused);
	tcase_add_test(t, binaries_and_vendor_files_of_the_bundle);
	tcase_add_test(t, rhel_and_other_images_pick_their_lib_dir);
	tcase_add_test(t, all_devices_with_their_render_nodes);
	tcase_add_test(t, visible_devices_by_index_and_uuid);
	tcase_add_test(t, without_driver_info_the_nodes_count);
	tcase_add_test(t, visible_devices_errors);
	tcase_add_test(t, nvidia_visible_devices_is_honoured);
	tcase_add_test(t, enable_auto_yes_no);
	tcase_add_test(t, missing_or_empty_lib_dir);
	tcase_add_test(t, files_the_runtime_mounted);
	tcase_add_test(t, a_clash_with_the_image_is_an_error);
	tcase_add_test(t, the_plan_prints_for_people);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return tmptree_run(gpu_suite());
}
