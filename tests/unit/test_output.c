/* What cvm writes for others to parse: cvm status's JSON, and lines that
 * runtime/ reports through the supervisor's logger (--log-format=json). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/report.h"
#include "supervisor/control.h"
#include "supervisor/log.h"
#include "tmptree.h"

/* A cgroup whose path needs escaping: a quote, a backslash, a tab. */
START_TEST(status_json_escapes_every_string)
{
	char root[64], out[8192], want[512];
	struct cvm_cgroup cg = { .ws_fd = -1 };

	tmptree_make(root, "cvm-status");
	snprintf(cg.ws, sizeof(cg.ws), "%s/ws \"q\" \\b\tt", root);
	tmptree_put(root, "ws \"q\" \\b\tt/memory.max", "max\n");
	tmptree_put(root, "ws \"q\" \\b\tt/cpuset.cpus", "0-1\n");
	tmptree_put(root, "ws \"q\" \\b\tt/cpu.stat", "usage_usec 1234\nuser_usec 1000\n");
	cvm_status_format(&cg, 42, true, out, sizeof(out));
	snprintf(want, sizeof(want), "{\"pid\": 42, \"cgroup\": \"%s/ws \\\"q\\\" \\\\b\\u0009t\", "
		 "\"memory_current\": null, \"memory_max\": \"max\"", root);
	ck_assert_str_eq(strstr(out, want) == out ? want : out, want);
	ck_assert_ptr_nonnull(strstr(out, ", \"cpuset_cpus\": \"0-1\", "));
	ck_assert_ptr_nonnull(strstr(out, ", \"cpu_usage_usec\": 1234}\n"));
	/* the text form stays as it was: the path as it is */
	cvm_status_format(&cg, 42, false, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "\\b\tt\nmemory used (bytes) n/a\n"));
	tmptree_remove(root);
}
END_TEST

START_TEST(status_without_a_cgroup)
{
	char out[8192];

	cvm_status_format(NULL, 7, true, out, sizeof(out));
	ck_assert_str_eq(out, "{\"pid\": 7, \"cgroup\": \"none (cvm is not PID 1)\", "
			 "\"memory_current\": null, \"memory_max\": null, \"memory_high\": null, "
			 "\"swap_max\": null, \"cpu_max\": null, \"cpuset_cpus\": null, "
			 "\"pids_current\": null, \"pids_max\": null, \"io_weight\": null, "
			 "\"cpu_usage_usec\": null}\n");
}
END_TEST

/* runtime/ reports (ws_die, ...) come out as the configured log format. */
START_TEST(runtime_reports_follow_the_log_format)
{
	char path[] = "/tmp/cvm-report.XXXXXX", line[1024] = "";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);

	ck_assert_int_ge(fd, 0);
	cvm_log_setup(CVM_LOG_INFO, CVM_LOG_JSON);
	dup2(fd, STDERR_FILENO);
	cvm_report(CVM_REPORT_ERROR, "workspace", "chdir \"%s\": %s", "/x", "No such file");
	dup2(saved, STDERR_FILENO);
	ck_assert_int_gt(pread(fd, line, sizeof(line) - 1, 0), 0);
	close(fd);
	unlink(path);
	ck_assert_ptr_nonnull(strstr(line, "\"level\":\"error\",\"component\":\"workspace\","));
	ck_assert_ptr_nonnull(strstr(line, "\"message\":\"chdir \\\"/x\\\": No such file\","));
	ck_assert_ptr_eq(strchr(line, '\n'), line + strlen(line) - 1);     /* one line */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("output");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, status_json_escapes_every_string);
	tcase_add_test(tc, status_without_a_cgroup);
	tcase_add_test(tc, runtime_reports_follow_the_log_format);
	suite_add_tcase(s, tc);
	return tmptree_run(s);
}
