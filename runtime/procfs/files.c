/* The table of files.h's list, and look-ups in it. */
#include <string.h>

#include "files.h"

#define INFO(type, name, path, flags, render) [CVM_PROCFS_##type] = { name, path, flags },
const struct cvm_procfs_file_info cvm_procfs_files[CVM_PROCFS_N_FILES] = {
	CVM_PROCFS_FILE_LIST(INFO)
};
#undef INFO

int cvm_procfs_file_by_name(const char *name)
{
	for (int i = 0; i < CVM_PROCFS_N_FILES; i++)
		if (!strcmp(cvm_procfs_files[i].name, name))
			return i;
	return -1;
}

const char *cvm_procfs_target(const char *name)
{
	int i = cvm_procfs_file_by_name(name);

	return i < 0 ? NULL : cvm_procfs_files[i].path;
}

const char *cvm_procfs_file_names(void)
{
#define NAME(type, name, path, flags, render) ", " name
	static const char names[] = CVM_PROCFS_FILE_LIST(NAME);
#undef NAME

	return names + 2;
}
