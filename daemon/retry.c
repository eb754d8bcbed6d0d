/*
 * retry.c: the retry policy, pure: how long to back off before the next
 * attempt, and which classes retry or fall back. No clock, no randomness of
 * its own: the caller passes the draw, so tests can fix it.
 */
#include <math.h>

#include "llmgated.h"

/*
 * Backoff before retry number `retry` (0 for the first retry). prev_ms is
 * the previous backoff, used by decorrelated jitter (AWS's "sleep = min(cap,
 * random_between(base, sleep * 3))").
 */
uint64_t
retry_backoff_ms(const struct retry_conf *rc, unsigned retry, uint64_t prev_ms,
    double rnd)
{
	double base, cap = rc->max_ms, lo, hi, d;

	if (rnd < 0)
		rnd = 0;
	if (rnd >= 1)
		rnd = 0.999999;
	base = rc->initial_ms *
	    pow(rc->multiplier > 0 ? rc->multiplier : 1,
	        retry > 64 ? 64 : retry);
	if (base > cap)
		base = cap;
	switch (rc->jitter) {
	case JITTER_NONE:
		d = base;
		break;
	case JITTER_EQUAL:
		d = base / 2 + rnd * base / 2;
		break;
	case JITTER_DECORRELATED:
		lo = rc->initial_ms;
		hi = (prev_ms == 0 ? rc->initial_ms : (double)prev_ms) * 3;
		if (hi < lo)
			hi = lo;
		d = lo + rnd * (hi - lo);
		if (d > cap)
			d = cap;
		break;
	case JITTER_FULL:
	default:
		d = rnd * base;
		break;
	}
	return d < 0 ? 0 : (uint64_t)d;
}

int
retry_class_retries(const struct retry_conf *rc, enum llmgate_class cls)
{
	if (cls <= LLMGATE_OK || cls >= LLMGATE_CLASS_MAX)
		return 0;
	return (rc->on >> cls) & 1;
}

/* Whether a class falls back to the next target (see PROTOCOL.md). */
int
retry_class_falls_back(enum llmgate_class cls)
{
	switch (cls) {
	case LLMGATE_OK:
	case LLMGATE_BAD_REQUEST:
	case LLMGATE_DEADLINE:
	case LLMGATE_CANCELLED:
	case LLMGATE_INVALID_REQUEST:
	case LLMGATE_INTERNAL:
		return 0;
	default:
		return cls < LLMGATE_CLASS_MAX;
	}
}
