/* cvm: one binary, PID 1 of a privileged outer container, that builds and
 * supervises a VM-like workspace. This file is the command line only. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <curl/curl.h>
#include <json-c/json_c_version.h>
#include <mbedtls/version.h>

#include "cvm-version.h"
#include "supervisor/cli.h"
#include "supervisor/config.h"
#include "supervisor/inner.h"

/* The readers image/ unpacks layers with. ARCHIVE_WARN is libarchive falling
 * back to an external program: the library itself lacks the format. */
static const char *archive_readers(void)
{
	struct archive *a = archive_read_new();
	bool ok = a && archive_read_support_format_tar(a) == ARCHIVE_OK &&
		  archive_read_support_filter_gzip(a) == ARCHIVE_OK &&
		  archive_read_support_filter_zstd(a) == ARCHIVE_OK;

	archive_read_free(a);
	return ok ? "tar, gzip, zstd" : "tar, gzip or zstd MISSING";
}

/* cvm's version, then the image puller's libraries as linked (in the static
 * binary, the ones built in). */
static void print_version(void)
{
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
	char tls[18]; /* the size mbedtls/version.h asks for */

	mbedtls_version_get_string(tls);
	printf("cvm %s\n", CVM_VERSION);
	printf("libcurl %s (%s), %s (%s), json-c %s, mbedtls %s\n", curl->version,
	       curl->ssl_version ? curl->ssl_version : "no TLS", archive_version_details(),
	       archive_readers(), json_c_version(), tls);
}

static void usage(FILE *out)
{
	fputs("Usage: cvm [COMMAND] [OPTIONS] [-- CMD [ARG...]]\n"
	      "\n"
	      "cvm runs as PID 1 of a privileged container and builds a VM-like\n"
	      "workspace in it (user namespace, idmapped rootfs, its own /proc, /sys\n"
	      "and /dev); it reaps every process, forwards signals, and stops\n"
	      "everything cleanly.\n"
	      "\n"
	      "Commands:\n"
	      "  run        start and supervise the workspace (the default)\n"
	      "  exec       run a command inside the running workspace\n"
	      "  status     the running workspace's limits and use\n"
	      "  check      can cvm run here? one line per requirement, why, what to do\n"
	      "  pull       fetch an image from a registry into the image cache\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help      show this help (cvm run --help: every run option)\n"
	      "  -V, --version   print the version and the libraries' versions\n"
	      "\n"
	      "Examples:\n"
	      "  cvm run --rootfs /img --state /data  a workspace from an image\n"
	      "  cvm exec -t -- /bin/sh               a shell inside it, from outside\n"
	      "  cvm run -- /bin/sh                   supervise a shell, tini-style\n"
	      "  cvm --stop-timeout 30s -- myapp      same as 'cvm run ...'\n"
	      "  cvm run --config ./cvm.ini           everything from a config file\n"
	      "  cvm check -r /img -s /data           preflight: what this host supports\n"
	      "  cvm pull --cache-dir /c ubuntu:24.04 fetch an image into a cache\n"
	      "\n"
	      "Config: " CVM_DEFAULT_CONFIG_PATH " (INI), envbox's CODER_* variables,\n"
	      "CVM_<SECTION>_<KEY> variables, then flags; see examples/cvm.ini for\n"
	      "every key.\n", out);
}

int main(int argc, char *argv[])
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	cvm_inner_save_argv(argc, argv);

	if (cmd && (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))) {
		usage(stdout);
		return 0;
	}
	if (cmd && (!strcmp(cmd, "-V") || !strcmp(cmd, "--version"))) {
		print_version();
		return 0;
	}
	/* "cvm" alone, or "cvm --flag ..." / "cvm -- CMD": as an image entrypoint
	 * the subcommand is optional and means run. */
	if (!cmd || cmd[0] == '-')
		return cvm_cmd_run(argc, argv);
	if (!strcmp(cmd, "run"))
		return cvm_cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "exec"))
		return cvm_cmd_exec(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cvm_cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return cvm_cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "pull"))
		return cvm_cmd_pull(argc - 1, argv + 1);
	fprintf(stderr, "cvm: unknown command '%s'; try 'cvm --help'\n", cmd);
	return 2;
}
