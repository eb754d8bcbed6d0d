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

static void
log_vwrite(int prio, const char *tag, const char *fmt, va_list ap,
    const char *err)
{
	char msg[2048];
	char ts[32];
	struct tm tm;
	time_t t;

	vsnprintf(msg, sizeof msg, fmt, ap);
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

#define LOG_FUNC(name, lvl, prio, tag, witherr)				\
void									\
name(const char *fmt, ...)						\
{									\
	va_list ap;							\
	int saved = errno;						\
									\
	if (log_level < (lvl))						\
		return;							\
	va_start(ap, fmt);						\
	log_vwrite((prio), (tag), fmt, ap,				\
	    (witherr) ? strerror(saved) : NULL);			\
	va_end(ap);							\
	errno = saved;							\
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
