/*
 * check_ratelimit.c: rate budgets with fake time: bucket refill and burst
 * caps, exact waits, token reconciliation (refund and debt), what
 * rate-limit headers teach, and the cooldowns 429s and spent quotas leave.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "llmgated.h"

/* header_rl_init() lives in header.c, which this test does not link. */
static struct header_rl
info_none(void)
{
	struct header_rl ri;

	memset(&ri, 0, sizeof ri);
	ri.retry_after_ms = -1;
	ri.limit_requests = ri.remaining_requests = ri.reset_requests_ms = -1;
	ri.limit_tokens = ri.remaining_tokens = ri.reset_tokens_ms = -1;
	ri.should_retry = -1;
	return ri;
}

static struct rl_status
status(const struct ratelimit *rl, uint64_t now)
{
	struct rl_status st;

	rl_status(rl, now, &st);
	return st;
}

START_TEST(test_bucket_refill_and_cap)
{
	struct bucket b;

	memset(&b, 0, sizeof b);
	/* Unlimited: never waits. */
	ck_assert_uint_eq(bucket_wait_ms(&b, 1000000, 5), 0);

	/* 60 per minute, one second's worth of burst: 1. */
	bucket_setup(&b, 60, 0, 1000);
	ck_assert_uint_eq(b.capacity, 1);
	ck_assert_int_eq(bucket_available(&b, 1000), 1);
	bucket_take(&b, 1, 1000);
	ck_assert_int_eq(bucket_available(&b, 1000), 0);
	ck_assert_uint_eq(bucket_wait_ms(&b, 1, 1000), 1000);
	ck_assert_uint_eq(bucket_wait_ms(&b, 1, 1500), 500);
	ck_assert_uint_eq(bucket_wait_ms(&b, 1, 1999), 1);
	ck_assert_uint_eq(bucket_wait_ms(&b, 1, 2000), 0);
	/* Refill stops at the burst however long it idles. */
	ck_assert_int_eq(bucket_available(&b, 100000), 1);
	ck_assert_int_eq(bucket_available(&b, UINT64_MAX / 2), 1);

	/* 600 per minute: burst 10, one unit per 100 ms. */
	memset(&b, 0, sizeof b);
	bucket_setup(&b, 600, 0, 0);
	ck_assert_uint_eq(b.capacity, 10);
	bucket_take(&b, 10, 0);
	ck_assert_uint_eq(bucket_wait_ms(&b, 1, 0), 100);
	ck_assert_int_eq(bucket_available(&b, 250), 2); /* 2.5 */
	ck_assert_uint_eq(bucket_wait_ms(&b, 3, 250), 50);
	ck_assert_int_eq(bucket_available(&b, 5000), 10);

	/* An explicit burst, and ceil(limit / 60) for the default. */
	memset(&b, 0, sizeof b);
	bucket_setup(&b, 600, 3, 0);
	ck_assert_uint_eq(b.capacity, 3);
	ck_assert_int_eq(bucket_available(&b, 0), 3);
	memset(&b, 0, sizeof b);
	bucket_setup(&b, 61, 0, 0);
	ck_assert_uint_eq(b.capacity, 2);
	memset(&b, 0, sizeof b);
	bucket_setup(&b, 1, 0, 0);
	ck_assert_uint_eq(b.capacity, 1);
	bucket_take(&b, 1, 0);
	ck_assert_uint_eq(bucket_wait_ms(&b, 1, 0), 60000);
}
END_TEST

START_TEST(test_wait_and_take)
{
	struct ratelimit rl;

	memset(&rl, 0, sizeof rl);
	/* Requests roomy; tokens: 12000/min = 200 per second, burst 200. */
	rl_setup(&rl, 600, 12000, 10, 200, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 100, 0), 0);
	rl_take(&rl, 100, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 100, 0), 0);
	rl_take(&rl, 100, 0);
	ck_assert_int_eq(status(&rl, 0).tpm_available, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_available, 8);
	ck_assert_uint_eq(rl_wait_ms(&rl, 100, 0), 500);
	ck_assert_uint_eq(rl_wait_ms(&rl, 50, 0), 250);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 5);
	ck_assert_uint_eq(rl_wait_ms(&rl, 100, 250), 250);
	ck_assert_uint_eq(rl_wait_ms(&rl, 100, 500), 0);

	/* Larger than the burst: goes when full, into debt. */
	ck_assert_uint_eq(rl_wait_ms(&rl, 1000, 0), 1000);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1000, 999), 1);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1000, 1000), 0);
	rl_take(&rl, 1000, 1000);
	ck_assert_int_eq(status(&rl, 1000).tpm_available, -800);
	/* The debt is paid before the next token: 801 tokens at 200/s. */
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 1000), 4005);

	/* The requests bucket alone: the eleventh request in a burst waits. */
	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 600, 0, 0, 0, 0);
	for (int i = 0; i < 10; i++) {
		ck_assert_uint_eq(rl_wait_ms(&rl, 5000, 0), 0);
		rl_take(&rl, 5000, 0);
	}
	ck_assert_uint_eq(rl_wait_ms(&rl, 5000, 0), 100);
	ck_assert_int_eq(status(&rl, 0).tpm_limit, -1);
	ck_assert_int_eq(status(&rl, 0).rpm_limit, 600);
}
END_TEST

/*
 * Absurd counts (a client's tokens or usage of 4 billion) cost at most a
 * minute's budget: the target is free again within about a minute, not
 * after the days the debt would take to pay.
 */
START_TEST(test_absurd_counts_bounded)
{
	struct ratelimit rl;

	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 0, 12000, 0, 0, 0);
	rl_take(&rl, UINT32_MAX, 0);
	ck_assert_uint_le(rl_wait_ms(&rl, 1, 0), 61000);
	ck_assert_uint_gt(rl_wait_ms(&rl, 1, 0), 50000);
	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 0, 12000, 0, 0, 0);
	rl_take(&rl, 100, 0);
	rl_reconcile(&rl, 100, UINT64_MAX, 0);
	ck_assert_uint_le(rl_wait_ms(&rl, 1, 0), 61000);
}
END_TEST

/* A report's input + output saturates instead of wrapping. */
START_TEST(test_tokens_sum)
{
	ck_assert_uint_eq(rl_tokens_sum(0, 0), 0);
	ck_assert_uint_eq(rl_tokens_sum(100, 23), 123);
	ck_assert_uint_eq(rl_tokens_sum(UINT64_MAX - 2, 2), UINT64_MAX);
	ck_assert_uint_eq(rl_tokens_sum(UINT64_MAX, 2), UINT64_MAX);
	ck_assert_uint_eq(rl_tokens_sum(2, UINT64_MAX), UINT64_MAX);
	ck_assert_uint_eq(rl_tokens_sum(UINT64_MAX, UINT64_MAX), UINT64_MAX);
}
END_TEST

START_TEST(test_reconcile)
{
	struct ratelimit rl;

	memset(&rl, 0, sizeof rl);
	/* 6000/min = 100 tokens per second; burst 1000. */
	rl_setup(&rl, 0, 6000, 0, 1000, 0);
	rl_take(&rl, 600, 0);
	ck_assert_int_eq(status(&rl, 0).tpm_available, 400);
	/* Estimated 600, used 100: refund 500. */
	rl_reconcile(&rl, 600, 100, 0);
	ck_assert_int_eq(status(&rl, 0).tpm_available, 900);
	/* Estimated 100, used 1500: charge 1400, into debt. */
	rl_reconcile(&rl, 100, 1500, 0);
	ck_assert_int_eq(status(&rl, 0).tpm_available, -500);
	ck_assert_uint_eq(rl_wait_ms(&rl, 0, 0), 5000);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 5010);
	ck_assert_int_eq(status(&rl, 2500).tpm_available, -250);
	/* A refund never lifts the level above the burst. */
	rl_reconcile(&rl, 1000000, 0, 2500);
	ck_assert_int_eq(status(&rl, 2500).tpm_available, 1000);
	/* Exact estimate: nothing changes. */
	rl_reconcile(&rl, 300, 300, 2500);
	ck_assert_int_eq(status(&rl, 2500).tpm_available, 1000);

	/* No token limit: reconciling is harmless. */
	memset(&rl, 0, sizeof rl);
	rl_reconcile(&rl, 10, 100000, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 100000, 0), 0);
	ck_assert_int_eq(status(&rl, 0).tpm_limit, -1);
}
END_TEST

START_TEST(test_learn_tightens)
{
	struct ratelimit rl;
	struct header_rl ri;
	struct rl_status st;

	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 600, 0, 10, 0, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_available, 10);

	/* The provider has 3 left: we never believe we have more. */
	ri = info_none();
	ri.remaining_requests = 3;
	ri.reset_requests_ms = 5000;
	rl_learn(&rl, &ri, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_available, 3);
	ck_assert_uint_eq(status(&rl, 0).cooldown_ms, 0);
	/* A larger remaining never raises the level. */
	ri.remaining_requests = 20;
	rl_learn(&rl, &ri, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_available, 3);
	/* The configured limit stays; the header limit is no stronger. */
	ri.limit_requests = 120;
	rl_learn(&rl, &ri, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_limit, 600);

	/* Nothing left: the target is held until the reset. */
	ri = info_none();
	ri.remaining_requests = 0;
	ri.reset_requests_ms = 5000;
	rl_learn(&rl, &ri, 100);
	st = status(&rl, 100);
	ck_assert_uint_eq(st.cooldown_ms, 5000);
	ck_assert_str_eq(st.cooldown_reason, "requests exhausted until reset");
	ck_assert_int_eq(st.rpm_available, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 100), 5000);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 5099), 1);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 5100), 0);
	st = status(&rl, 5100);
	ck_assert_uint_eq(st.cooldown_ms, 0);
	ck_assert_ptr_null(st.cooldown_reason);
	ck_assert_int_eq(st.rpm_available, 10);

	/* Tokens the same way, with their own reason. */
	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 0, 60000, 0, 0, 0);
	ri = info_none();
	ri.remaining_tokens = 250;
	rl_learn(&rl, &ri, 0);
	ck_assert_int_eq(status(&rl, 0).tpm_available, 250);
	ck_assert_uint_eq(rl_wait_ms(&rl, 300, 0), 50);
	ri.remaining_tokens = 0;
	ri.reset_tokens_ms = 2000;
	rl_learn(&rl, &ri, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 2000);
	ck_assert_str_eq(status(&rl, 0).cooldown_reason,
	    "tokens exhausted until reset");
}
END_TEST

START_TEST(test_learn_adopts)
{
	struct ratelimit rl;
	struct header_rl ri;
	struct rl_status st;

	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 0, 0, 0, 0, 0);
	st = status(&rl, 0);
	ck_assert_int_eq(st.rpm_limit, -1);
	ck_assert_int_eq(st.tpm_limit, -1);
	ck_assert_uint_eq(rl_wait_ms(&rl, UINT32_MAX, 0), 0);

	/* No limit configured: the headers' limits are adopted, with one
	 * second's worth of burst, and remaining applies at once. */
	ri = info_none();
	ri.limit_requests = 120;
	ri.remaining_requests = 119;
	ri.limit_tokens = 60000;
	ri.remaining_tokens = 500;
	rl_learn(&rl, &ri, 0);
	st = status(&rl, 0);
	ck_assert_int_eq(st.rpm_limit, 120);
	ck_assert_int_eq(st.rpm_available, 2);
	ck_assert_int_eq(st.tpm_limit, 60000);
	ck_assert_int_eq(st.tpm_available, 500);
	ck_assert_uint_eq(rl_wait_ms(&rl, 600, 0), 100);
	rl_take(&rl, 1, 0);
	rl_take(&rl, 1, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 500);

	/* A reload that configures rpm wins over the learned one... */
	rl_setup(&rl, 300, 0, 0, 0, 0);
	st = status(&rl, 0);
	ck_assert_int_eq(st.rpm_limit, 300);
	ck_assert_int_eq(st.rpm_available, 0);
	ck_assert_int_eq(st.tpm_limit, 60000);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 200);
	/* ... and dropping it again falls back to what was learned. */
	rl_setup(&rl, 0, 0, 0, 0, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_limit, 120);

	/* A provider that changes its limit is followed. */
	ri = info_none();
	ri.limit_requests = 6000;
	rl_learn(&rl, &ri, 60000);
	st = status(&rl, 60000);
	ck_assert_int_eq(st.rpm_limit, 6000);
	ck_assert_int_eq(st.rpm_available, 2); /* was full at 2 */
	ck_assert_int_eq(status(&rl, 61000).rpm_available, 100);
}
END_TEST

START_TEST(test_remaining_zero_without_reset)
{
	struct ratelimit rl;
	struct header_rl ri;

	/* No limit known at all: a default hold. */
	memset(&rl, 0, sizeof rl);
	ri = info_none();
	ri.remaining_requests = 0;
	rl_learn(&rl, &ri, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), RL_RESET_DEFAULT_MS);

	/* With a limit, the emptied bucket refills on its own. */
	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 60, 0, 0, 0, 0);
	rl_learn(&rl, &ri, 0);
	ck_assert_uint_eq(status(&rl, 0).cooldown_ms, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 1000);
}
END_TEST

START_TEST(test_cooldown_retry_after)
{
	struct ratelimit rl;
	struct rl_status st;

	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 600, 0, 0, 0, 0);
	rl_on_result(&rl, LLMGATE_RATE_LIMITED, 2500, 1000);
	st = status(&rl, 1000);
	ck_assert_uint_eq(st.cooldown_ms, 2500);
	ck_assert_str_eq(st.cooldown_reason, "rate_limited: retry-after");
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 1000), 2500);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 3499), 1);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 3500), 0);
	ck_assert_ptr_null(status(&rl, 3500).cooldown_reason);

	/* A shorter hint never shortens a longer hold. */
	rl_on_result(&rl, LLMGATE_RATE_LIMITED, 5000, 10000);
	rl_on_result(&rl, LLMGATE_RATE_LIMITED, 1000, 10100);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 10100), 4900);
	/* Retry-After 0: no hold, and not the default either. */
	memset(&rl, 0, sizeof rl);
	rl_on_result(&rl, LLMGATE_RATE_LIMITED, 0, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 0);
	/* An absurd hint is bounded. */
	rl_on_result(&rl, LLMGATE_RATE_LIMITED, INT64_C(36000000), 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), RL_HOLD_MAX_MS);
	/* Cooldowns survive a reload. */
	rl_setup(&rl, 100, 100, 0, 0, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), RL_HOLD_MAX_MS);
}
END_TEST

START_TEST(test_cooldown_default_doubling)
{
	struct ratelimit rl;
	static const uint64_t want[] = { 1000, 2000, 4000, 8000, 16000, 30000,
		30000 };
	uint64_t now = 0;
	size_t i;

	memset(&rl, 0, sizeof rl);
	for (i = 0; i < sizeof want / sizeof want[0]; i++) {
		rl_on_result(&rl, LLMGATE_RATE_LIMITED, -1, now);
		ck_assert_uint_eq(rl_wait_ms(&rl, 1, now), want[i]);
		ck_assert_str_eq(status(&rl, now).cooldown_reason,
		    "rate_limited");
		now += want[i];
		ck_assert_uint_eq(rl_wait_ms(&rl, 1, now), 0);
	}
	/* Other failures leave the backoff alone; a success resets it. */
	rl_on_result(&rl, LLMGATE_SERVER_ERROR, -1, now);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, now), 0);
	rl_on_result(&rl, LLMGATE_RATE_LIMITED, -1, now);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, now), 30000);
	now += 30000;
	rl_on_result(&rl, LLMGATE_OK, -1, now);
	rl_on_result(&rl, LLMGATE_RATE_LIMITED, -1, now);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, now), 1000);
}
END_TEST

START_TEST(test_cooldown_quota)
{
	struct ratelimit rl;

	memset(&rl, 0, sizeof rl);
	rl_on_result(&rl, LLMGATE_QUOTA_EXHAUSTED, -1, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 600000);
	ck_assert_str_eq(status(&rl, 0).cooldown_reason, "quota_exhausted");
	/* A short hint does not shorten it; a longer one lengthens it. */
	memset(&rl, 0, sizeof rl);
	rl_on_result(&rl, LLMGATE_QUOTA_EXHAUSTED, 20000, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 600000);
	rl_on_result(&rl, LLMGATE_QUOTA_EXHAUSTED, 900000, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 900000);
	/* Caller errors cool nothing down. */
	memset(&rl, 0, sizeof rl);
	rl_on_result(&rl, LLMGATE_BAD_REQUEST, 5000, 0);
	rl_on_result(&rl, LLMGATE_AUTH, -1, 0);
	ck_assert_uint_eq(rl_wait_ms(&rl, 1, 0), 0);
}
END_TEST

START_TEST(test_reload_keeps_levels)
{
	struct ratelimit rl;

	memset(&rl, 0, sizeof rl);
	rl_setup(&rl, 600, 0, 10, 0, 0);
	rl_take(&rl, 0, 0);
	rl_take(&rl, 0, 0);
	rl_take(&rl, 0, 0);
	rl_take(&rl, 0, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_available, 6);
	/* A smaller burst clamps; a larger one grants nothing at once. */
	rl_setup(&rl, 600, 0, 3, 0, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_available, 3);
	rl_setup(&rl, 600, 0, 20, 0, 0);
	ck_assert_int_eq(status(&rl, 0).rpm_available, 3);
	ck_assert_int_eq(status(&rl, 1000).rpm_available, 13);
	ck_assert_int_eq(status(&rl, 5000).rpm_available, 20);
	/* Debt survives a reload too. */
	rl_setup(&rl, 0, 6000, 0, 100, 0);
	rl_take(&rl, 300, 0);
	rl_setup(&rl, 0, 6000, 0, 50, 0);
	ck_assert_int_eq(status(&rl, 0).tpm_available, -200);
}
END_TEST

START_TEST(test_estimate)
{
	ck_assert_uint_eq(rl_estimate_tokens(0, 0), 1024);
	ck_assert_uint_eq(rl_estimate_tokens(400, 0), 1124);
	ck_assert_uint_eq(rl_estimate_tokens(401, 100), 201);
	ck_assert_uint_eq(rl_estimate_tokens(3, 0), 1025);
	ck_assert_uint_eq(rl_estimate_tokens(4, 7), 8);
	ck_assert_uint_eq(rl_estimate_tokens(SIZE_MAX, UINT32_MAX), UINT32_MAX);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("policy");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_bucket_refill_and_cap);
	tcase_add_test(tc, test_wait_and_take);
	tcase_add_test(tc, test_tokens_sum);
	tcase_add_test(tc, test_reconcile);
	tcase_add_test(tc, test_absurd_counts_bounded);
	tcase_add_test(tc, test_learn_tightens);
	tcase_add_test(tc, test_learn_adopts);
	tcase_add_test(tc, test_remaining_zero_without_reset);
	tcase_add_test(tc, test_cooldown_retry_after);
	tcase_add_test(tc, test_cooldown_default_doubling);
	tcase_add_test(tc, test_cooldown_quota);
	tcase_add_test(tc, test_reload_keeps_levels);
	tcase_add_test(tc, test_estimate);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
