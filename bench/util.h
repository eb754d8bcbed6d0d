/*
 * util.h: what the bench programs share: dying with a message, numbers
 * from the command line, the monotonic clock, sleeping, and the
 * descriptor limit.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>

/* The program's name for messages, and its usage() (NULL: none). */
void util_setup(const char *prog, void (*usage)(void));
void util_fatalx(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));
/* A number from min to max, else usage() (or a fatal error). */
long util_parse_num(const char *, long min, long max);
uint64_t util_now_us(void);
uint64_t util_now_ms(void);
void util_sleep_ms(long ms);
/* Raise the descriptor limit to want (< 0: as far as the hard limit). */
void util_raise_nofile(long want);

#endif
