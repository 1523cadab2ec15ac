/* Logging for operators: one line per event on stderr, never stdout (stdout
 * belongs to the workload). Text for people, JSON for log collectors.
 *
 * Every line names its component (what part of cvm speaks: "supervisor",
 * "workspace", "cgroup", "procfs", "control", "init", "bootstrap", ...),
 * given at each call site. A line may carry fields, key/value pairs a
 * collector can index without parsing the message:
 *
 *   text: 2026-11-30T19:40:00.123Z cvm[supervisor] info: workspace ready startup_ms=41
 *   json: {"time":"...","level":"info","component":"supervisor","pid":1,
 *          "message":"workspace ready","fields":{"startup_ms":41}}
 *
 * "fields" is always present in JSON (empty when there are none). */
#ifndef CVM_LOG_H
#define CVM_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct cvm_log_field {
	const char *key;        /* [a-z_]+ */
	const char *value;
	bool number;            /* value is a JSON number: written unquoted */
};

void cvm_log_setup(enum cvm_log_level level, enum cvm_log_format format);
bool cvm_log_enabled(enum cvm_log_level level);
enum cvm_log_format cvm_log_get_format(void);   /* as cvm_log_setup set it */
/* End lines with CR LF: stderr is a terminal in raw mode. */
void cvm_log_crlf(bool on);

void cvm_log(enum cvm_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cvm_log_fields(enum cvm_log_level level, const char *component,
		    const struct cvm_log_field *fields, size_t n_fields, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* JSON string escaping (quotes, backslashes, control chars; bytes that are
 * not UTF-8 become U+FFFD) of @in into @out; returns the length written. */
size_t cvm_json_escape(char *out, size_t len, const char *in);
/* @in as a JSON value in @out: "escaped", or null for NULL. Returns @out. */
const char *cvm_json_string(char *out, size_t len, const char *in);

#define log_error(component, ...) cvm_log(CVM_LOG_ERROR, component, __VA_ARGS__)
#define log_warn(component, ...) cvm_log(CVM_LOG_WARN, component, __VA_ARGS__)
#define log_info(component, ...) cvm_log(CVM_LOG_INFO, component, __VA_ARGS__)
#define log_debug(component, ...) cvm_log(CVM_LOG_DEBUG, component, __VA_ARGS__)

#endif
