/*
 * log.c: leveled logging to stderr. When stderr is the journal
 * ($JOURNAL_STREAM names it), lines carry <N> syslog priority prefixes
 * instead of a timestamp.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "llmgated.h"

static int log_level = LOG_LVL_INFO;
static int log_journal;

static int
log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(int verbose)
{
	log_level = LOG_LVL_INFO + verbose;
	if (log_level > LOG_LVL_DEBUG)
		log_level = LOG_LVL_DEBUG;
	log_journal = log_stderr_is_journal();
}

void
log_set_level(int level)
{
	log_level = level;
}

int
log_enabled(enum log_level level)
{
	return log_level >= (int)level;
}

/*
 * One record is one line: messages carry text from clients (names, routes)
 * and upstreams (error bodies), so a line break, carriage return or other
 * control character in one is written escaped (\n, \r, \xHH), and no one
 * can forge a log line of their own.
 */
static void
log_escape(char *out, size_t cap, const char *in)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	size_t n = 0;

	for (p = (const unsigned char *)in; *p != '\0' && n + 5 < cap; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			out[n++] = (char)*p;
			continue;
		}
		out[n++] = '\\';
		if (*p == '\n')
			out[n++] = 'n';
		else if (*p == '\r')
			out[n++] = 'r';
		else if (*p == '\t')
			out[n++] = 't';
		else {
			out[n++] = 'x';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
}

/*
 * Client text quoted for a message (logged, or sent back in an error): at
 * most max bytes of it, control characters escaped, and every byte over
 * 0x7f as \xHH unless the whole text is UTF-8. free() it.
 */
char *
log_quote(const char *s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	struct buf b = { 0 };
	json_t *j;
	size_t len = strnlen(s, max);
	int utf8 = 0;
	char c[4];

	if ((j = json_stringn(s, len)) != NULL) {
		utf8 = 1;
		json_decref(j);
	}
	for (p = (const unsigned char *)s; p < (const unsigned char *)s + len;
	     p++) {
		if (*p >= 0x20 && *p != 0x7f && (*p < 0x80 || utf8)) {
			buf_add(&b, p, 1);
			continue;
		}
		c[0] = '\\';
		c[1] = 'x';
		c[2] = hex[*p >> 4];
		c[3] = hex[*p & 15];
		buf_add(&b, c, 4);
	}
	if (len == max && s[len] != '\0')
		buf_addstr(&b, "...");
	return b.data != NULL ? b.data : xstrdup("");
}

static void
log_vwrite(int prio, const char *tag, const char *fmt, va_list ap,
    const char *err)
{
	char raw[2048], msg[2048];
	char ts[32];
	struct tm tm;
	time_t t;

	vsnprintf(raw, sizeof raw, fmt, ap);
	log_escape(msg, sizeof msg, raw);
	if (log_journal) {
		if (err != NULL)
			fprintf(stderr, "<%d>%s: %s\n", prio, msg, err);
		else
			fprintf(stderr, "<%d>%s\n", prio, msg);
		return;
	}
	t = time(NULL);
	localtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	if (err != NULL)
		fprintf(stderr, "%s llmgated %s: %s: %s\n", ts, tag, msg, err);
	else
		fprintf(stderr, "%s llmgated %s: %s\n", ts, tag, msg);
}

#define LOG_FUNC(name, lvl, prio, tag, witherr) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		int saved = errno; \
\
		if (log_level < (lvl)) \
			return; \
		va_start(ap, fmt); \
		log_vwrite((prio), (tag), fmt, ap, \
		    (witherr) ? strerror(saved) : NULL); \
		va_end(ap); \
		errno = saved; \
	}

LOG_FUNC(log_warn, LOG_LVL_WARN, LOG_WARNING, "warning", 1)
LOG_FUNC(log_warnx, LOG_LVL_WARN, LOG_WARNING, "warning", 0)
LOG_FUNC(log_info, LOG_LVL_INFO, LOG_INFO, "info", 0)
LOG_FUNC(log_debug, LOG_LVL_DEBUG, LOG_DEBUG, "debug", 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, "fatal", fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, "fatal", fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
