/*
 * check_slice.c: a host's slices of a shared budget, with fake time: asks
 * sized to the host's own rate and its queue, one ask at a time, the stock
 * never asked above the capacity (what a refund or a late grant puts past
 * it is given back, not lost), what is not needed given back, a waiting
 * host not asking an empty cluster again at once; fed buckets that refill only
 * from slices; and token estimates reconciled with real usage over
 * thousands of calls without drift between the host and the cluster.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/* The cluster's side, as the Lua script keeps it: a plain bucket. */
struct fake_cluster {
	struct bucket b;
	uint64_t given, back;
};

/* One tick of the glue: ask the cluster, or give back, as told. */
static int64_t
tick(struct slice *s, struct bucket *fed, struct fake_cluster *c,
    unsigned queued, uint64_t cap, uint64_t now)
{
	int64_t n, g;

	n = slice_tick(s, bucket_available(fed, now), queued, cap, 200, now);
	if (n > 0) {
		g = bucket_available(&c->b, now);
		if (g > n)
			g = n;
		if (g < 0)
			g = 0;
		bucket_take(&c->b, (uint64_t)g, now);
		c->given += (uint64_t)g;
		bucket_feed(fed, g, now);
		slice_granted(s, (uint64_t)g, g == 0 ? 30 : 0, now);
	} else if (n < 0) {
		bucket_feed(fed, n, now);
		slice_returned(s, (uint64_t)-n);
		c->back += (uint64_t)-n;
	}
	return n;
}

/* A fed bucket: no refill by the clock, a short wait when empty. */
START_TEST(test_fed_bucket)
{
	struct ratelimit rl;

	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 600, 0, 0, 0, 0);
	ck_assert_int_eq(bucket_available(&rl.req, 0), 10);
	rl_cluster(&rl, 1, 0, 0);
	/* What the clock gave is dropped: the cluster decides now. */
	ck_assert_int_eq(bucket_available(&rl.req, 0), 0);
	ck_assert_int_eq(bucket_available(&rl.req, 60000), 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 0, 60000), BUCKET_FED_WAIT_MS);
	bucket_feed(&rl.req, 3, 60000);
	ck_assert_uint_eq(rl_wait_ms(&rl, 0, 60000), 0);
	rl_take(&rl, 0, 60000);
	ck_assert_int_eq(bucket_available(&rl.req, 60000), 2);
	/*
	 * Past the capacity, what the cluster gave is kept, for the slice
	 * policy to give back (test_full_stock_keeps_units).
	 */
	bucket_feed(&rl.req, 50, 60000);
	ck_assert_int_eq(bucket_available(&rl.req, 60000), 52);
	ck_assert_uint_eq(rl_wait_ms(&rl, 0, 60000), 0);
	bucket_feed(&rl.req, -42, 60000);
	ck_assert_int_eq(bucket_available(&rl.req, 60000), 10);
	/* A reload keeps it fed. */
	rl_setup(&rl, 1200, 0, 0, 0, 60000);
	ck_assert_int_eq(rl.req.fed, 1);
	ck_assert_int_eq(bucket_available(&rl.req, 120000), 10);
	/* Redis away: a third of the limit each, refilled by the clock. */
	rl_cluster(&rl, 0, 3, 120000);
	ck_assert_uint_eq(rl.req.limit, 400);
	ck_assert_int_eq(rl.req.fed, 0);
	bucket_take(&rl.req, 10, 120000);
	ck_assert_int_le(bucket_available(&rl.req, 120000), 0);
	ck_assert_int_eq(bucket_available(&rl.req, 130000), 7);
	/* A single host again. */
	rl_cluster(&rl, 0, 0, 130000);
	ck_assert_uint_eq(rl.req.limit, 1200);
	/* Unlimited buckets are never fed. */
	rl_cluster(&rl, 1, 0, 130000);
	ck_assert_int_eq(rl.tok.fed, 0);
	ck_assert_uint_eq(bucket_wait_ms(&rl.tok, 1000000, 130000), 0);
}
END_TEST

/* A host spending 50 a second asks for about slice_ms' worth. */
START_TEST(test_sized_to_rate)
{
	struct slice s;
	struct bucket fed;
	struct fake_cluster c;
	uint64_t now = 1000;
	int64_t n, asked = 0;
	int i;

	slice_init(&s);
	memset(&c, 0, sizeof c);
	memset(&fed, 0, sizeof fed);
	bucket_setup(&c.b, 6000, 100, now);
	bucket_setup(&fed, 6000, 100, now);
	fed.fed = 1;
	fed.level = 0;
	/* Five seconds at 50/s: one unit every 20 ms, a tick every 10. */
	for (i = 0; i < 500; i++, now += 10) {
		if (i % 2 == 0 && bucket_available(&fed, now) > 0)
			bucket_take(&fed, 1, now);
		n = tick(&s, &fed, &c, 0, 100, now);
		if (n > asked)
			asked = n;
	}
	ck_assert_double_eq_tol(s.rate, 50, 5);
	/* 200 ms at 50/s is 10: the stock stays about that. */
	ck_assert_int_le(asked, 12);
	ck_assert_int_ge(bucket_available(&fed, now), 5);
	ck_assert_int_le(bucket_available(&fed, now), 12);
	/* Idle: the rate decays and the stock goes back, but one. */
	for (i = 0; i < 500; i++, now += 10)
		tick(&s, &fed, &c, 0, 100, now);
	ck_assert_double_lt(s.rate, 1);
	ck_assert_int_le(bucket_available(&fed, now), 2);
	ck_assert_uint_gt(c.back, 0);
	ck_assert_uint_eq(s.granted - s.returned,
	    (uint64_t)bucket_available(&fed, now) + s.spent);
}
END_TEST

/* Waiting admissions are asked for too; never past the capacity. */
START_TEST(test_queue_and_capacity)
{
	struct slice s;

	slice_init(&s);
	ck_assert_int_eq(slice_tick(&s, 0, 7, 100, 200, 10), 7);
	/* One ask at a time. */
	ck_assert_int_eq(slice_tick(&s, 0, 7, 100, 200, 20), 0);
	slice_granted(&s, 7, 0, 20);
	ck_assert_int_eq(slice_tick(&s, 7, 7, 100, 200, 30), 0);
	/* A long queue: the stock never goes past the capacity. */
	ck_assert_int_eq(slice_tick(&s, 7, 500, 20, 200, 40), 13);
	slice_granted(&s, 13, 0, 40);
	/* Debt is paid first: asked for on top of what is wanted. */
	ck_assert_int_eq(slice_tick(&s, -5, 1, 20, 200, 50),
	    0 + 6 + (int64_t)(s.rate * 200 / 1000 + 0.999));
}
END_TEST

/* An empty cluster is not asked again before it can have something. */
START_TEST(test_empty_cluster_waits)
{
	struct slice s;

	slice_init(&s);
	ck_assert_int_eq(slice_tick(&s, 0, 1, 10, 200, 100), 1);
	slice_granted(&s, 0, 30, 100);
	ck_assert_int_eq(slice_tick(&s, 0, 1, 10, 200, 110), 0);
	ck_assert_int_eq(slice_tick(&s, 0, 1, 10, 200, 129), 0);
	ck_assert_int_eq(slice_tick(&s, 0, 1, 10, 200, 130), 1);
	/* Never longer than SLICE_RETRY_MAX_MS. */
	slice_granted(&s, 0, 60000, 130);
	ck_assert_int_eq(slice_tick(&s, 0, 1, 10, 200,
	                     130 + SLICE_RETRY_MAX_MS),
	    1);
	/* An ask lost with the connection is forgotten; late is late. */
	ck_assert_int_eq(slice_late(&s, 300, 130 + SLICE_RETRY_MAX_MS + 300),
	    0);
	ck_assert_int_eq(slice_late(&s, 300, 130 + SLICE_RETRY_MAX_MS + 301),
	    1);
	slice_failed(&s);
	ck_assert_int_eq(slice_late(&s, 300, 1000000), 0);
}
END_TEST

/*
 * Thousands of calls charged at their estimates and settled at their real
 * usage, on a fed token bucket: what the host drew from the cluster (given
 * minus given back) is exactly what the calls really used plus the stock
 * it holds at the end. No drift either way.
 */
START_TEST(test_tokens_reconcile)
{
	struct ratelimit rl;
	struct slice s;
	struct fake_cluster c;
	uint64_t now = 1, used = 0, actual;
	uint32_t est;
	int i, k, inflight = 0;
	uint32_t pend_est[8];
	uint64_t pend_act[8];

	srandom(17);
	memset(&rl, 0, sizeof rl);
	memset(&c, 0, sizeof c);
	slice_init(&s);
	rl_setup(&rl, 0, 600000, 0, 0, now); /* 10,000 tokens a second */
	rl_cluster(&rl, 1, 0, now);
	bucket_setup(&c.b, 600000, 10000, now);
	est = 0;
	for (i = 0; i < 5000; i++) {
		now += 5;
		/* The next call waits for its estimate: ask for it. */
		if (est == 0)
			est = rl_estimate_tokens((size_t)(random() % 400),
			    (uint32_t)(random() % 50));
		tick(&s, &rl.tok, &c, est, rl_cluster_capacity(&rl, 1), now);
		/* Settle the oldest call in flight at its real usage. */
		if (inflight == 8 || (inflight > 0 && random() % 2)) {
			rl_reconcile(&rl, pend_est[0], pend_act[0], now);
			used += pend_act[0];
			inflight--;
			for (k = 0; k < inflight; k++) {
				pend_est[k] = pend_est[k + 1];
				pend_act[k] = pend_act[k + 1];
			}
		}
		if (inflight == 8 || rl_wait_ms(&rl, est, now) != 0)
			continue;
		rl_take(&rl, est, now);
		/* Real usage: under or over the estimate, by up to half. */
		actual = (uint64_t)est / 2 + (uint64_t)random() % est;
		pend_est[inflight] = est;
		pend_act[inflight++] = actual;
		est = 0;
	}
	while (inflight > 0) {
		inflight--;
		rl_reconcile(&rl, pend_est[inflight], pend_act[inflight], now);
		used += pend_act[inflight];
	}
	ck_assert_uint_gt(used, 100000);
	ck_assert_int_eq((int64_t)(c.given - c.back),
	    (int64_t)used + bucket_available(&rl.tok, now));
	/* And the host gives back what it holds once it is idle. */
	for (i = 0; i < 1000; i++) {
		now += 10;
		tick(&s, &rl.tok, &c, 0, rl_cluster_capacity(&rl, 1), now);
	}
	ck_assert_int_le(bucket_available(&rl.tok, now), 2);
	ck_assert_int_eq((int64_t)(c.given - c.back),
	    (int64_t)used + bucket_available(&rl.tok, now));
}
END_TEST

/* A fed token bucket of 100 a second, its slice and its cluster. */
static void
full_setup(struct ratelimit *rl, struct slice *s, struct fake_cluster *c,
    uint64_t now)
{
	memset(rl, 0, sizeof *rl);
	memset(c, 0, sizeof *c);
	slice_init(s);
	rl_setup(rl, 0, 6000, 0, 0, now);
	rl_cluster(rl, 1, 0, now);
	bucket_setup(&c->b, 6000, 100, now);
	ck_assert_uint_eq(rl_cluster_capacity(rl, 1), 100);
}

/* Idle, the host gives back what it holds: nothing was lost. */
static void
full_idle(struct ratelimit *rl, struct slice *s, struct fake_cluster *c,
    uint64_t used, uint64_t now)
{
	int i;

	for (i = 0; i < 1000; i++, now += 10)
		tick(s, &rl->tok, c, 0, 100, now);
	ck_assert_int_le(bucket_available(&rl->tok, now), 2);
	ck_assert_int_eq((int64_t)(c->given - c->back),
	    (int64_t)used + bucket_available(&rl->tok, now));
	ck_assert_uint_eq(s->granted, c->given);
	ck_assert_uint_eq(s->returned, c->back);
}

/*
 * Units that reach a full stock are kept, not dropped: a refund settled
 * while the stock is at the capacity (filled for a large call waiting),
 * and a grant that lands after a refund filled part of what it was asked
 * for. The cluster gave them: the next tick gives back what is past the
 * capacity, so the host never holds more for long, and the books balance
 * at every step.
 */
START_TEST(test_full_stock_keeps_units)
{
	struct ratelimit rl;
	struct slice s;
	struct fake_cluster c;
	uint64_t now = 1000;
	int64_t n;

	/* A refund on a full stock. */
	full_setup(&rl, &s, &c, now);
	/* Call A, estimated at 60, goes on a slice asked for it. */
	ck_assert_int_eq(tick(&s, &rl.tok, &c, 60, 100, now), 60);
	ck_assert_uint_eq(rl_wait_ms(&rl, 60, now), 0);
	rl_take(&rl, 60, now);
	/* Call B waits for 100, the whole capacity: the stock fills. */
	now += 2000;
	ck_assert_int_eq(tick(&s, &rl.tok, &c, 100, 100, now), 100);
	/* A used 20: its refund of 40 lands on the full stock. */
	rl_reconcile(&rl, 60, 20, now);
	ck_assert_int_eq(bucket_available(&rl.tok, now), 140);
	ck_assert_int_eq((int64_t)(c.given - c.back),
	    20 + bucket_available(&rl.tok, now));
	/* B goes; the next tick gives back what is past the capacity. */
	ck_assert_uint_eq(rl_wait_ms(&rl, 100, now), 0);
	rl_take(&rl, 100, now);
	rl_reconcile(&rl, 100, 100, now);
	full_idle(&rl, &s, &c, 20 + 100, now + 10);

	/* A grant on a stock a refund filled while it was asked for. */
	full_setup(&rl, &s, &c, now);
	ck_assert_int_eq(tick(&s, &rl.tok, &c, 60, 100, now), 60);
	rl_take(&rl, 60, now); /* call C */
	now += 2000;
	n = slice_tick(&s, bucket_available(&rl.tok, now), 100, 100, 200, now);
	ck_assert_int_eq(n, 100);
	rl_reconcile(&rl, 60, 10, now); /* C used 10, the ask still out */
	bucket_take(&c.b, (uint64_t)n, now);
	c.given += (uint64_t)n;
	bucket_feed(&rl.tok, n, now);
	slice_granted(&s, (uint64_t)n, 0, now);
	ck_assert_int_eq(bucket_available(&rl.tok, now), 150);
	ck_assert_int_eq((int64_t)(c.given - c.back),
	    10 + bucket_available(&rl.tok, now));
	/* Past the capacity, it goes back at the next tick, queue or not. */
	now += 10;
	ck_assert_int_eq(tick(&s, &rl.tok, &c, 100, 100, now), -50);
	ck_assert_int_eq(bucket_available(&rl.tok, now), 100);
	full_idle(&rl, &s, &c, 10, now + 10);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("slice");
	TCase *tc = tcase_create("policy");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_fed_bucket);
	tcase_add_test(tc, test_sized_to_rate);
	tcase_add_test(tc, test_queue_and_capacity);
	tcase_add_test(tc, test_empty_cluster_waits);
	tcase_add_test(tc, test_tokens_reconcile);
	tcase_add_test(tc, test_full_stock_keeps_units);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
