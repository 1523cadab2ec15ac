/* A stand-in for the NVIDIA driver's libcuda.so.1, for tests without a GPU
 * (tests/integration/test_gpu.sh builds it with gcc -shared). It answers
 * the few driver API calls cuda-probe makes; FAKE_GPU_NAME is set by the
 * test so that the output proves this very build was loaded. */
#include <stddef.h>
#include <string.h>

#ifndef FAKE_GPU_NAME
#define FAKE_GPU_NAME "cvm fake GPU"
#endif

int cuInit(unsigned flags);
int cuDriverGetVersion(int *v);
int cuDeviceGetCount(int *n);
int cuDeviceGet(int *dev, int ordinal);
int cuDeviceGetName(char *name, int len, int dev);
int cuDeviceTotalMem_v2(size_t *bytes, int dev);

int cuInit(unsigned flags) { return flags == 0 ? 0 : 1; }
int cuDriverGetVersion(int *v) { *v = 12020; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return ordinal == 0 ? 0 : 101; }
int cuDeviceGetName(char *name, int len, int dev)
{
	(void)dev;
	strncpy(name, FAKE_GPU_NAME, (size_t)len - 1);
	name[len - 1] = '\0';
	return 0;
}
int cuDeviceTotalMem_v2(size_t *bytes, int dev) { (void)dev; *bytes = (size_t)1 << 30; return 0; }
