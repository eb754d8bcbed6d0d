/*
 * rbudget.c: the machine-wide retry budget, pure. Retries are what turns
 * an upstream's bad minute into a retry storm, so across all targets and
 * callers they may only be a fraction (ratio) of the first attempts seen
 * over the last RBUDGET_SLOTS seconds, plus a floor of min_per_s per
 * second so that a quiet daemon may still retry. First attempts are never
 * refused, only counted. The window slides in whole seconds.
 */
#include <string.h>

#include "llmgated.h"

/* The slot for now's second, emptied when it last held an older second. */
static struct rbudget_slot *
rbudget_slot(struct rbudget *rb, uint64_t now)
{
	uint64_t sec = now / RBUDGET_SLOT_MS;
	struct rbudget_slot *s = &rb->slot[sec % RBUDGET_SLOTS];

	if (s->sec != sec) {
		s->sec = sec;
		s->first = 0;
		s->retries = 0;
	}
	return s;
}

/* Retries still allowed at now; negative when over (after a reload). */
static double
rbudget_left(const struct rbudget *rb, const struct retry_budget_conf *rc,
    uint64_t now)
{
	uint64_t sec = now / RBUDGET_SLOT_MS, first = 0, retries = 0;
	const struct rbudget_slot *s;
	unsigned i;

	for (i = 0; i < RBUDGET_SLOTS; i++) {
		s = &rb->slot[i];
		if (s->sec > sec || sec - s->sec >= RBUDGET_SLOTS)
			continue;
		first += s->first;
		retries += s->retries;
	}
	return rc->ratio * (double)first + rc->min_per_s * RBUDGET_SLOTS -
	    (double)retries;
}

void
rbudget_first(struct rbudget *rb, uint64_t now)
{
	struct rbudget_slot *s = rbudget_slot(rb, now);

	if (s->first < UINT32_MAX)
		s->first++;
}

/*
 * 1: a retry may go, and is counted; 0: the budget is spent (class
 * budget_exhausted). The epsilon keeps 0.1 * 30 from coming out short.
 */
int
rbudget_try_retry(struct rbudget *rb, const struct retry_budget_conf *rc,
    uint64_t now)
{
	struct rbudget_slot *s;

	if (rbudget_left(rb, rc, now) + 1e-9 < 1)
		return 0;
	s = rbudget_slot(rb, now);
	if (s->retries < UINT32_MAX)
		s->retries++;
	return 1;
}

/* For status: retries the budget would still allow now, never negative. */
double
rbudget_available(const struct rbudget *rb, const struct retry_budget_conf *rc,
    uint64_t now)
{
	double left = rbudget_left(rb, rc, now);

	return left > 0 ? left : 0;
}
