/* Test hooks: CVM_DEBUG_* variables that let the tests force a rare state
 * (a kernel without CLONE_INTO_CGROUP, a command held before exec). Only a
 * build configured with -Dtest_hooks=true (scripts/build, the tree the tests
 * use) reads them; in a release build the call is NULL and the variable's
 * name is not even in the binary (scripts/test checks build-musl/cvm). */
#ifndef CVM_TESTHOOK_H
#define CVM_TESTHOOK_H

#include <stdlib.h>

#ifdef CVM_TEST_HOOKS
#define cvm_test_hook(name) getenv(name)
#else
#define cvm_test_hook(name) ((void)sizeof(name), (const char *)NULL)
#endif

#endif
