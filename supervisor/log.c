#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/report.h"

static enum cvm_log_level log_level = CVM_LOG_INFO;
static enum cvm_log_format log_format = CVM_LOG_TEXT;

/* runtime/ and gpu/ report through here (runtime/report.h). */
static void log_report(enum cvm_report_level level, const char *component, const char *line)
{
	_Static_assert(CVM_REPORT_ERROR == (int)CVM_LOG_ERROR && CVM_REPORT_WARN == (int)CVM_LOG_WARN &&
		       CVM_REPORT_INFO == (int)CVM_LOG_INFO, "runtime/report.h: levels as log.h's");
	cvm_log((enum cvm_log_level)level, component, "%s", line);
}

enum cvm_log_format cvm_log_get_format(void)
{
	return log_format;
}

void cvm_log_setup(enum cvm_log_level level, enum cvm_log_format format)
{
	log_level = level;
	log_format = format;
	cvm_report_install(log_report);
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

/* Length of the well-formed UTF-8 sequence at @s (1 to 4), 0 if it is not
 * one (a stray byte, an overlong or surrogate form, a cut sequence). */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;

	if (n == 0 || s[0] > 0xf4)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* JSON string escaping: quotes, backslashes, control chars; bytes that are
 * not UTF-8 (a bootstrap script may print anything) become U+FFFD, so that
 * every line stays valid JSON. */
size_t cvm_json_escape(char *out, size_t len, const char *in)
{
	size_t o = 0;

	for (; *in && o + 7 < len; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch >= 0x80) {
			size_t n = utf8_len((const unsigned char *)in);
			if (n == 0) {
				o += (size_t)snprintf(out + o, len - o, "\\ufffd");
			} else if (o + n + 7 < len) {
				memcpy(out + o, in, n);
				o += n;
				in += n - 1;
			} else {
				break;
			}
		} else if (ch == '"' || ch == '\\') {
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

/* Fields: ' key=value' in text (quoted and escaped when the value has
 * blanks, quotes or control characters), ',"key":value' in JSON. */
const char *cvm_json_string(char *out, size_t len, const char *in)
{
	size_t n;

	if (!in || len < 8) {
		snprintf(out, len, "null");
		return out;
	}
	out[0] = '"';
	n = 1 + cvm_json_escape(out + 1, len - 2, in);
	out[n++] = '"';
	out[n] = '\0';
	return out;
}

static size_t format_fields(char *out, size_t len, const struct cvm_log_field *f, size_t n,
			    bool json)
{
	char esc[1024];
	size_t o = 0;

	for (size_t i = 0; i < n && o < len; i++) {
		const char *v = f[i].value ? f[i].value : "";
		bool quote = json ? !f[i].number : (!*v || strpbrk(v, " \t\"\\=") ||
						    cvm_json_escape(esc, sizeof(esc), v) != strlen(v));

		cvm_json_escape(esc, sizeof(esc), v);
		o += (size_t)snprintf(out + o, len - o, json ? "%s\"%s\":%s%s%s" : "%s%s=%s%s%s",
				      json ? (i ? "," : "") : " ", f[i].key, quote ? "\"" : "",
				      quote || json ? esc : v, quote ? "\"" : "");
	}
	if (o >= len)
		o = len - 1;
	out[o] = '\0';
	return o;
}

static bool log_crlf;

void cvm_log_crlf(bool on)
{
	log_crlf = on;
}

static void log_line(enum cvm_log_level level, const char *component,
		     const struct cvm_log_field *fields, size_t n_fields, const char *fmt,
		     va_list ap)
{
	char msg[2048], line[8192], ts[40], fs[2048];
	int saved = errno;
	int n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	format_time(ts, sizeof(ts));
	format_fields(fs, sizeof(fs), fields, n_fields, log_format == CVM_LOG_JSON);

	if (log_format == CVM_LOG_JSON) {
		char esc[sizeof(msg) * 2];
		cvm_json_escape(esc, sizeof(esc), msg);
		n = snprintf(line, sizeof(line),
			     "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"pid\":%d,"
			     "\"message\":\"%s\",\"fields\":{%s}}\n",
			     ts, cvm_log_level_name(level), component, (int)getpid(), esc, fs);
	} else {
		n = snprintf(line, sizeof(line), "%s cvm[%s] %s: %s%s\n", ts, component,
			     cvm_log_level_name(level), msg, fs);
	}
	if (n > (int)sizeof(line) - 1) {
		/* Cut, but keep the line a line (and, for JSON, say so rather
		 * than emit half an object). */
		n = log_format == CVM_LOG_JSON ?
			snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"component\":"
				 "\"%s\",\"pid\":%d,\"message\":\"(line too long)\",\"fields\":{}}\n",
				 ts, cvm_log_level_name(level), component, (int)getpid()) :
			(int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* A terminal in raw mode (the console relay's) moves down without
	 * going back to the start of the line. */
	if (log_crlf && n < (int)sizeof(line) - 1) {
		line[n - 1] = '\r';
		line[n++] = '\n';
	}
	/* One write(2) per line so lines from cvm and its helpers never interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

void cvm_log(enum cvm_log_level level, const char *component, const char *fmt, ...)
{
	va_list ap;

	if (!cvm_log_enabled(level))
		return;
	va_start(ap, fmt);
	log_line(level, component, NULL, 0, fmt, ap);
	va_end(ap);
}

void cvm_log_fields(enum cvm_log_level level, const char *component,
		    const struct cvm_log_field *fields, size_t n_fields, const char *fmt, ...)
{
	va_list ap;

	if (!cvm_log_enabled(level))
		return;
	va_start(ap, fmt);
	log_line(level, component, fields, n_fields, fmt, ap);
	va_end(ap);
}
