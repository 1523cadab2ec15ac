/* libFuzzer target: the /proc server. The first byte picks what the rest
 * is: a raw FUSE request (as the kernel would hand it over), a host file
 * for the renderers, or a cpuset list. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/procfs/render.h"
#include "runtime/procfs/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char out[1 << 18];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1;
	/* one server for every input, as one serves every request */
	static const struct cvm_procfs p = { .fuse_fd = -1, .ctl_fd = -1, .passthrough = true };
	static struct cvm_procfs_server *srv;
	struct cvm_cg_view v;
	struct cvm_cpuset c;
	char *text;

	if (size < 1)
		return 0;
	if (devnull < 0)
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (!srv && !(srv = cvm_procfs_server_new(&p)))
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	memset(&v, 0, sizeof(v));
	v.mem_max = v.swap_max = CVM_NO_LIMIT;
	cvm_cpuset_parse("0-3", &c);
	switch (data[0] % 6) {
	case 0: cvm_procfs_handle(srv, devnull, (const char *)data + 1, size - 1); break;
	case 1: cvm_render_meminfo(text, &v, out, sizeof(out)); break;
	case 2: cvm_render_cpuinfo(text, &c, out, sizeof(out)); break;
	case 3: cvm_render_stat(text, &c, out, sizeof(out)); break;
	case 4: cvm_render_diskstats(text, text, out, sizeof(out)); break;
	default:
		if (cvm_cpuset_parse(text, &c) == 0)
			cvm_cpuset_format(&c, out, 256);
		break;
	}
	free(text);
	return 0;
}
