/* One line for the operator from runtime/ or gpu/, which cannot call
 * supervisor/log.c (the arrows go one way): the supervisor installs its
 * logger once at start (cvm_log_setup), so that the line comes out in the
 * configured format (--log-format=json stays one JSON object per line);
 * before that, or in a program without a logger (the unit tests), it is a
 * plain line on stderr. A process forked or cloned from cvm keeps the
 * logger, as it keeps cvm's stderr. */
#ifndef CVM_REPORT_H
#define CVM_REPORT_H

/* The same order as supervisor/log.h's levels. */
enum cvm_report_level { CVM_REPORT_ERROR = 0, CVM_REPORT_WARN, CVM_REPORT_INFO };

typedef void cvm_report_fn(enum cvm_report_level level, const char *component, const char *line);

/* Where cvm_report() lines go from now on; NULL: stderr, plain. */
void cvm_report_install(cvm_report_fn *fn);

/* @component as log.h names them ("workspace", "cgroup", ...). */
void cvm_report(enum cvm_report_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
