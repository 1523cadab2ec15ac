#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum cvm_log_level log_level = CVM_LOG_INFO;
static enum cvm_log_format log_format = CVM_LOG_TEXT;

void cvm_log_setup(enum cvm_log_level level, enum cvm_log_format format)
{
	log_level = level;
	log_format = format;
}

bool cvm_log_enabled(enum cvm_log_level level)
{
	return level <= log_level;
}

static size_t format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	return n + (size_t)snprintf(buf + n, len - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* JSON string escaping for the message: quotes, backslashes, control chars. */
size_t cvm_json_escape(char *out, size_t len, const char *in)
{
	size_t o = 0;

	for (; *in && o + 7 < len; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (ch < 0x20) {
			o += snprintf(out + o, len - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return o;
}

void cvm_log(enum cvm_log_level level, const char *component, const char *fmt, ...)
{
	char msg[2048], line[4608], ts[40];
	int saved = errno;
	va_list ap;
	int n;

	if (!cvm_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	format_time(ts, sizeof(ts));

	if (log_format == CVM_LOG_JSON) {
		char esc[sizeof(msg) * 2];
		cvm_json_escape(esc, sizeof(esc), msg);
		n = snprintf(line, sizeof(line),
			     "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"pid\":%d,\"msg\":\"%s\"}\n",
			     ts, cvm_log_level_name(level), component, (int)getpid(), esc);
	} else {
		n = snprintf(line, sizeof(line), "%s cvm[%s] %s: %s\n", ts, component,
			     cvm_log_level_name(level), msg);
	}
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	/* One write(2) per line so lines from cvm and its helpers never interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
