/* What the unit suites share: a scratch directory tree per test, files
 * written into it, and running one suite to an exit status. */
#ifndef CVM_TEST_TMPTREE_H
#define CVM_TEST_TMPTREE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* mkdtemp from a "/tmp/NAME.XXXXXX" template into @root (64 bytes). */
static inline void tmptree_make(char *root, const char *name)
{
	snprintf(root, 64, "/tmp/%s.XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(root));
}

/* ROOT/REL = TEXT, missing directories made on the way. */
static inline void tmptree_put(const char *root, const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	ck_assert_msg(f != NULL, "%s", p);
	fputs(text, f);
	fclose(f);
}

static inline void tmptree_remove(const char *root)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}

static inline int tmptree_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
