#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/exitcode.h"

/* Real wait statuses from real children: no hand-built bit patterns. */
static int status_of_exit(int code)
{
	int st;
	pid_t pid = fork();
	if (pid == 0)
		_exit(code);
	waitpid(pid, &st, 0);
	return st;
}

static int status_of_signal(int sig)
{
	int st;
	pid_t pid = fork();
	if (pid == 0) {
		signal(sig, SIG_DFL);
		raise(sig);
		_exit(99);
	}
	waitpid(pid, &st, 0);
	return st;
}

START_TEST(exit_codes_pass_through)
{
	for (int code = 0; code < 256; code++)
		ck_assert_int_eq(cvm_exit_status(status_of_exit(code)), code);
}
END_TEST

START_TEST(signals_are_128_plus)
{
	const int sigs[] = { SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGUSR1, SIGSEGV, SIGABRT };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		ck_assert_int_eq(cvm_exit_status(status_of_signal(sigs[i])), 128 + sigs[i]);
}
END_TEST

START_TEST(exec_failures)
{
	ck_assert_int_eq(cvm_exec_failure_status(ENOENT), 127);
	ck_assert_int_eq(cvm_exec_failure_status(ENOTDIR), 127);
	ck_assert_int_eq(cvm_exec_failure_status(EACCES), 126);
	ck_assert_int_eq(cvm_exec_failure_status(ENOEXEC), 126);
	ck_assert_int_eq(cvm_exec_failure_status(EPERM), 126);
	ck_assert_int_eq(cvm_exec_failure_status(EISDIR), 126);
	ck_assert_str_eq(cvm_exec_failure_reason(ENOENT), "command not found");
}
END_TEST

static Suite *exitcode_suite(void)
{
	Suite *s = suite_create("exitcode");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, exit_codes_pass_through);
	tcase_add_test(tc, signals_are_128_plus);
	tcase_add_test(tc, exec_failures);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(exitcode_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
