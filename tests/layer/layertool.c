/* Test-only driver for image/layer.c and the layered workspace rootfs
 * (runtime/workspace.c), until `cvm run` takes an image's layers:
 *
 *   layertool unpack overlay|apply TAR DIR   one layer blob into DIR
 *   layertool flatten DIR TAR...              the blobs, bottom first, APPLY
 *   layertool ws STATE LAYER... -- CMD...     a workspace over the layer dirs
 *                                             (bottom first), CMD as its init
 *   layertool max-layers                      cvm_ws_max_layers()
 *
 * unpack and flatten print "files=N bytes=N xattrs_dropped=N
 * devices_skipped=N". ws maps ids 0.. to 100000.. (65536), runs CMD with
 * the caller's environment and exits with its status. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/layer.h"
#include "runtime/workspace.h"

static int die(const struct cvm_error *err)
{
	fprintf(stderr, "layertool: %s\n", err->msg);
	return 1;
}

static void print_stats(const struct cvm_layer_stats *st)
{
	printf("files=%llu bytes=%llu xattrs_dropped=%llu devices_skipped=%llu\n",
	       (unsigned long long)st->files, (unsigned long long)st->bytes,
	       (unsigned long long)st->xattrs_dropped, (unsigned long long)st->devices_skipped);
}

static int open_dir(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		perror(path);
	return fd;
}

static int unpack(int argc, char **argv)
{
	struct cvm_error err = { 0 };
	struct cvm_layer_stats st;

	if (argc != 5 || (strcmp(argv[2], "overlay") && strcmp(argv[2], "apply")))
		return 2;
	int blob = open(argv[3], O_RDONLY | O_CLOEXEC), root = open_dir(argv[4]);
	if (blob < 0 || root < 0)
		return 1;
	if (cvm_layer_unpack(blob, root, strcmp(argv[2], "apply") ? CVM_LAYER_OVERLAY : CVM_LAYER_APPLY,
			     &st, &err) < 0)
		return die(&err);
	print_stats(&st);
	return 0;
}

static int flatten(int argc, char **argv)
{
	struct cvm_error err = { 0 };
	struct cvm_layer_stats st;
	int fds[512], root;

	if (argc < 4 || argc - 3 > 512 || (root = open_dir(argv[2])) < 0)
		return 2;
	for (int i = 3; i < argc; i++)
		if ((fds[i - 3] = open(argv[i], O_RDONLY | O_CLOEXEC)) < 0) {
			perror(argv[i]);
			return 1;
		}
	if (cvm_layers_flatten(fds, (size_t)(argc - 3), root, &st, &err) < 0)
		return die(&err);
	print_stats(&st);
	return 0;
}

static int ws_init(void *arg)
{
	char **cmd = arg;

	execvp(cmd[0], cmd);
	perror(cmd[0]);
	return 127;
}

static int ws(int argc, char **argv)
{
	struct cvm_error err = { 0 };
	struct cvm_ws w = CVM_WS_NONE;
	int dash = 3, status;

	while (dash < argc && strcmp(argv[dash], "--"))
		dash++;
	if (argc < 6 || dash >= argc - 1)
		return 2;
	argv[dash] = NULL;
	struct cvm_ws_spec s = {
		.state = argv[2], .layers = argv + 3, .n_layers = (size_t)(dash - 3),
		.uid_base = 100000, .uid_count = 65536, .hostname = "cvm",
		.cgroup_fd = -1, .procfs_fd = -1, .init_fd = -1,
	};
	if (cvm_ws_create(&s, ws_init, argv + dash + 1, &w, &err) < 0 ||
	    cvm_ws_go(&s, &w, &err) < 0) {
		cvm_ws_close(&w);
		return die(&err);
	}
	while (waitpid(w.pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("waitpid");
			return 1;
		}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
	int r = 2;

	if (argc > 1 && !strcmp(argv[1], "unpack"))
		r = unpack(argc, argv);
	else if (argc > 1 && !strcmp(argv[1], "flatten"))
		r = flatten(argc, argv);
	else if (argc > 1 && !strcmp(argv[1], "ws"))
		r = ws(argc, argv);
	else if (argc == 2 && !strcmp(argv[1], "max-layers"))
		r = printf("%zu\n", cvm_ws_max_layers()) > 0 ? 0 : 1;
	if (r == 2)
		fprintf(stderr, "usage: layertool unpack overlay|apply TAR DIR | flatten DIR TAR... | "
			"ws STATE LAYER... -- CMD... | max-layers\n");
	return r;
}
