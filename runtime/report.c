#include <stdarg.h>
#include <stdio.h>

#include "report.h"

/* Set once at start, before any thread or child: read-only after. */
static cvm_report_fn *report_fn;

void cvm_report_install(cvm_report_fn *fn)
{
	report_fn = fn;
}

void cvm_report(enum cvm_report_level level, const char *component, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info" };
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (report_fn)
		report_fn(level, component, line);
	else
		fprintf(stderr, "cvm[%s] %s: %s\n", component, names[level], line);
}
