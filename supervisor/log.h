/* Logging for operators: one line per event on stderr, never stdout (stdout
 * belongs to the workload). Text for people, JSON for log collectors. */
#ifndef CVM_LOG_H
#define CVM_LOG_H

#include "config.h"

void cvm_log_setup(enum cvm_log_level level, enum cvm_log_format format);
bool cvm_log_enabled(enum cvm_log_level level);

void cvm_log(enum cvm_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* JSON string escaping (quotes, backslashes, control chars) of @in into
 * @out; returns the length written. */
size_t cvm_json_escape(char *out, size_t len, const char *in);

#define log_error(...) cvm_log(CVM_LOG_ERROR, "supervisor", __VA_ARGS__)
#define log_warn(...) cvm_log(CVM_LOG_WARN, "supervisor", __VA_ARGS__)
#define log_info(...) cvm_log(CVM_LOG_INFO, "supervisor", __VA_ARGS__)
#define log_debug(...) cvm_log(CVM_LOG_DEBUG, "supervisor", __VA_ARGS__)

#endif
