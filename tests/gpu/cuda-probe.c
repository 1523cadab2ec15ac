/* cuda-probe: what a CUDA program sees of the GPU, with nothing but the
 * driver. It dlopen()s libcuda.so.1 by its SONAME, as the CUDA runtime,
 * PyTorch and nvidia-smi do, so the workspace's dynamic linker must find
 * the driver on its own (no LD_LIBRARY_PATH, no ldconfig run), then asks
 * the driver API for the GPUs. Dynamically linked on purpose: it runs in
 * glibc images (tests/integration/test_gpu.sh, tests/gpu/device-check.sh).
 *
 * Prints one "key: value" line per fact; exits 0 when libcuda loaded and
 * cuInit succeeded, 1 otherwise. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

typedef int (*init_fn)(unsigned);
typedef int (*int_fn)(int *);
typedef int (*get_fn)(int *, int);
typedef int (*name_fn)(char *, int, int);
typedef int (*mem_fn)(size_t *, int);

int main(void)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW);
	Dl_info info;
	int version = 0, count = 0, r;

	if (!h) {
		printf("libcuda: not loaded: %s\n", dlerror());
		return 1;
	}
	init_fn cu_init = (init_fn)dlsym(h, "cuInit");
	int_fn driver_version = (int_fn)dlsym(h, "cuDriverGetVersion");
	int_fn device_count = (int_fn)dlsym(h, "cuDeviceGetCount");
	get_fn device_get = (get_fn)dlsym(h, "cuDeviceGet");
	name_fn device_name = (name_fn)dlsym(h, "cuDeviceGetName");
	mem_fn total_mem = (mem_fn)dlsym(h, "cuDeviceTotalMem_v2");
	if (!cu_init || !driver_version || !device_count || !device_get || !device_name) {
		printf("libcuda: loaded, but without the driver API\n");
		return 1;
	}
	printf("libcuda: %s\n", dladdr((void *)cu_init, &info) && info.dli_fname ?
	       info.dli_fname : "?");
	r = cu_init(0);
	printf("cuInit: %d\n", r);
	if (r != 0)
		return 1;
	driver_version(&version);
	printf("driver: %d.%d\n", version / 1000, version % 1000 / 10);
	r = device_count(&count);
	printf("devices: %d (status %d)\n", count, r);
	for (int i = 0; i < count; i++) {
		char name[256] = "?";
		size_t mem = 0;
		int dev = 0;
		device_get(&dev, i);
		device_name(name, sizeof(name), dev);
		if (total_mem)
			total_mem(&mem, dev);
		printf("device %d: %s, %zu MiB\n", i, name, mem >> 20);
	}
	return 0;
}
