/* libFuzzer target: the INI config loader and the value parsers. Input is
 * an untrusted file (a ConfigMap); nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "supervisor/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cvm_config c;
	struct cvm_error err = { 0 };
	char path[64], *text;
	uint64_t u64;
	uint32_t u32;
	bool b;
	int fd = memfd_create("cvm.ini", MFD_CLOEXEC);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cvm_config_init(&c);
	if (cvm_config_load_file(&c, path, true, &err) == 0)
		cvm_config_validate(&c, &err);
	cvm_config_free(&c);
	close(fd);

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	cvm_parse_size(text, &u64);
	cvm_parse_duration_ms(text, &u64);
	cvm_parse_bool(text, &b);
	cvm_parse_u32(text, &u32);
	/* The envbox aliases that parse their values themselves. */
	{
		static const char *const vars[] = { "CODER_DOCKER_BRIDGE_CIDR=", "CODER_INNER_IMAGE=",
						    "CODER_MOUNTS=", "CODER_DEBUG=",
						    "CODER_IMAGE_PULL_SECRET=" };

		for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			char *entry = malloc(strlen(vars[i]) + size + 1);
			char *envp[] = { entry, NULL };

			if (!entry)
				break;
			strcpy(entry, vars[i]);
			strcat(entry, text);
			cvm_config_init(&c);
			if (cvm_config_load_env(&c, envp, &err) == 0)
				cvm_config_validate(&c, &err);
			cvm_config_free(&c);
			free(entry);
		}
	}
	free(text);
	return 0;
}
