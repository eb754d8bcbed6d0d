/*
 * util.c: what the bench programs share (util.h).
 */
#include <sys/types.h>
#include <sys/resource.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

static const char *util_prog = "bench";
static void (*util_usage)(void);

void
util_setup(const char *prog, void (*usage)(void))
{
	util_prog = prog;
	util_usage = usage;
}

void
util_fatalx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", util_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

long
util_parse_num(const char *s, long min, long max)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || l < min || l > max) {
		if (util_usage != NULL)
			util_usage();
		util_fatalx("bad number: %s", s);
	}
	return l;
}

uint64_t
util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
util_now_ms(void)
{
	return util_now_us() / 1000;
}

void
util_sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void
util_raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (want < 0 || (rlim_t)want > rl.rlim_max)
		rl.rlim_cur = rl.rlim_max;
	else if ((rlim_t)want > rl.rlim_cur)
		rl.rlim_cur = (rlim_t)want;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}
