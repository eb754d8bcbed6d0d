/*
 * slice.c: a host's slices of a budget the cluster shares, pure. A target's
 * fed bucket (ratelimit.c) holds this host's stock: units the cluster
 * granted and admission has not spent yet. At every tick the policy looks
 * at the stock, learns the host's own rate from what was spent since, and
 * says whether to ask the cluster for more (enough for about slice_ms at
 * that rate, plus what is queued) or to give back what the host will not
 * need. A token estimate that the provider's real usage corrects moves
 * the stock too (rl_reconcile()), so the next ask or give-back settles it
 * with the cluster: nothing drifts. No clock, no Redis: cluster.c asks.
 */
#include <string.h>

#include "llmgated.h"

/* The rate learnt is smoothed over about this long. */
#define SLICE_RATE_MS 1000

void
slice_init(struct slice *s)
{
	memset(s, 0, sizeof *s);
}

/* What was spent since the last tick teaches the rate. */
static void
slice_learn(struct slice *s, int64_t stock, uint64_t now)
{
	double dt, spent, a;

	if (s->last == 0 || now <= s->last) {
		if (s->last == 0) {
			s->last = now;
			s->last_stock = stock;
		}
		return;
	}
	dt = (double)(now - s->last);
	spent = (double)(s->last_stock - stock);
	if (spent < 0)
		spent = 0; /* a refund, not negative spending */
	a = dt / (dt + SLICE_RATE_MS);
	s->rate = s->rate * (1 - a) + spent * 1000 / dt * a;
	s->spent += (uint64_t)spent;
	s->last = now;
	s->last_stock = stock;
}

/*
 * One tick: stock is the fed bucket's whole units (negative: in debt; past
 * the capacity when refunds or a grant landed on a full stock),
 * queued the units admissions wait for (requests: how many are queued;
 * tokens: the head's estimate), capacity the shared bucket's. > 0:
 * ask the cluster for that many (then slice_granted()); < 0: give that
 * many back (then slice_returned()); 0: nothing to do.
 */
int64_t
slice_tick(struct slice *s, int64_t stock, uint64_t queued, uint64_t capacity,
    uint32_t slice_ms, uint64_t now)
{
	uint64_t want;
	int64_t ask;

	slice_learn(s, stock, now);
	/*
	 * Past the capacity (a refund or a grant landed on a full stock):
	 * the excess goes back, whatever is queued, rather than be lost.
	 */
	if (!s->asking && capacity != 0 && stock > (int64_t)capacity)
		return -(stock - (int64_t)capacity);
	if (s->asking || now < s->not_before || capacity == 0)
		return 0;
	want = (uint64_t)(s->rate * slice_ms / 1000 + 0.999) + queued;
	if (want == 0)
		want = 1;
	if (want > capacity)
		want = capacity;
	if (stock < (int64_t)want) {
		ask = (int64_t)want - stock;
		/* Debt is paid first; the stock never passes the capacity. */
		if (stock >= 0 && ask > (int64_t)capacity - stock)
			ask = (int64_t)capacity - stock;
		if (ask <= 0)
			return 0;
		s->asking = (uint64_t)ask;
		s->asked_at = now;
		return ask;
	}
	if (queued == 0 && stock > 2 * (int64_t)want)
		return -(stock - (int64_t)want);
	return 0;
}

/*
 * The cluster answered an ask: n units granted (to feed the bucket), and
 * when there were none, retry_ms until the shared bucket has some.
 */
void
slice_granted(struct slice *s, uint64_t n, uint64_t retry_ms, uint64_t now)
{
	s->asking = 0;
	s->granted += n;
	s->last_stock += (int64_t)n;
	s->not_before = n == 0 ? now +
	        (retry_ms < SLICE_RETRY_MAX_MS ? retry_ms :
	                                         SLICE_RETRY_MAX_MS) :
	                         0;
}

/* n units went back to the cluster (taken out of the bucket). */
void
slice_returned(struct slice *s, uint64_t n)
{
	s->returned += n;
	s->last_stock -= (int64_t)n;
}

/* The ask got no answer (Redis went away): forget it. */
void
slice_failed(struct slice *s)
{
	s->asking = 0;
}

/* Whether an ask has waited longer than timeout_ms. */
int
slice_late(const struct slice *s, uint32_t timeout_ms, uint64_t now)
{
	return s->asking != 0 && now > s->asked_at + timeout_ms;
}
