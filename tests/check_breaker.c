/*
 * check_breaker.c: the circuit breaker with fake time: every transition,
 * the consecutive and failure-rate triggers (min_calls and the sliding
 * window included), exactly half_open_probes probes, reopening for longer,
 * stale tickets, and which classes count.
 */
#include <check.h>
#include <stdint.h>

#include "llmgated.h"

static struct breaker_conf
conf(uint32_t failures, double rate, uint32_t min_calls, uint32_t probes)
{
	struct breaker_conf bc = { .failures = failures,
		.failure_rate = rate,
		.min_calls = min_calls,
		.window_ms = 10000,
		.open_ms = 1000,
		.half_open_probes = probes };

	return bc;
}

/* One whole call: admitted, then ended with cls. */
static void
call(struct breaker *b, const struct breaker_conf *bc, enum llmgate_class cls,
    uint64_t now)
{
	int t = breaker_allow(b, bc, now);

	ck_assert_int_ne(t, 0);
	breaker_record(b, bc, t, cls, now);
}

START_TEST(test_names_and_classes)
{
	ck_assert_str_eq(breaker_state_name(BREAKER_CLOSED), "closed");
	ck_assert_str_eq(breaker_state_name(BREAKER_OPEN), "open");
	ck_assert_str_eq(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
	ck_assert_ptr_null(breaker_state_name(BREAKER_STATE_MAX));

	ck_assert_int_eq(breaker_class(LLMGATE_OK), 0);
	ck_assert_int_eq(breaker_class(LLMGATE_SERVER_ERROR), 1);
	ck_assert_int_eq(breaker_class(LLMGATE_OVERLOADED), 1);
	ck_assert_int_eq(breaker_class(LLMGATE_TIMEOUT), 1);
	ck_assert_int_eq(breaker_class(LLMGATE_CONNECTION), 1);
	ck_assert_int_eq(breaker_class(LLMGATE_PARSE_ERROR), 1);
	ck_assert_int_eq(breaker_class(LLMGATE_RATE_LIMITED), -1);
	ck_assert_int_eq(breaker_class(LLMGATE_QUOTA_EXHAUSTED), -1);
	ck_assert_int_eq(breaker_class(LLMGATE_AUTH), -1);
	ck_assert_int_eq(breaker_class(LLMGATE_BAD_REQUEST), -1);
	ck_assert_int_eq(breaker_class(LLMGATE_CONTEXT_LENGTH), -1);
	ck_assert_int_eq(breaker_class(LLMGATE_CANCELLED), -1);
	ck_assert_int_eq(breaker_class(LLMGATE_DEADLINE), -1);
}
END_TEST

START_TEST(test_consecutive)
{
	struct breaker_conf bc = conf(3, 0, 0, 1);
	struct breaker b;
	int t;

	breaker_init(&b);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
	t = breaker_allow(&b, &bc, 0);
	ck_assert_int_ne(t, 0);
	ck_assert(!BREAKER_IS_PROBE(t));
	breaker_record(&b, &bc, t, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_TIMEOUT, 0);
	/* A success breaks the run. */
	call(&b, &bc, LLMGATE_OK, 0);
	call(&b, &bc, LLMGATE_CONNECTION, 0);
	call(&b, &bc, LLMGATE_OVERLOADED, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
	ck_assert_uint_eq(breaker_open_remaining(&b, 0), 0);
	call(&b, &bc, LLMGATE_PARSE_ERROR, 100);
	ck_assert_int_eq(breaker_state(&b, 100), BREAKER_OPEN);
	ck_assert_uint_eq(breaker_open_remaining(&b, 100), 1000);
	ck_assert_uint_eq(breaker_open_remaining(&b, 600), 500);
	ck_assert_int_eq(breaker_allow(&b, &bc, 100), 0);
	ck_assert_int_eq(breaker_allow(&b, &bc, 1099), 0);
	ck_assert_int_eq(breaker_state(&b, 1099), BREAKER_OPEN);
	ck_assert_int_eq(breaker_state(&b, 1100), BREAKER_HALF_OPEN);
	ck_assert_uint_eq(breaker_open_remaining(&b, 1100), 0);
}
END_TEST

START_TEST(test_not_counted)
{
	struct breaker_conf bc = conf(3, 0.5, 1, 1);
	struct breaker b;
	static const enum llmgate_class neither[] = { LLMGATE_RATE_LIMITED,
		LLMGATE_QUOTA_EXHAUSTED, LLMGATE_AUTH, LLMGATE_PERMISSION,
		LLMGATE_NOT_FOUND, LLMGATE_CONTEXT_LENGTH,
		LLMGATE_CONTENT_FILTER, LLMGATE_BAD_REQUEST, LLMGATE_SCHEMA,
		LLMGATE_DEADLINE, LLMGATE_CANCELLED, LLMGATE_INVALID_REQUEST };
	size_t i;
	int n;

	/* Hundreds of them open nothing... */
	breaker_init(&b);
	for (n = 0; n < 100; n++) {
		for (i = 0; i < sizeof neither / sizeof neither[0]; i++)
			call(&b, &bc, neither[i], 0);
	}
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);

	/* ... and do not break a run of failures either. */
	bc = conf(3, 0, 0, 1);
	breaker_init(&b);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	for (i = 0; i < sizeof neither / sizeof neither[0]; i++)
		call(&b, &bc, neither[i], 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_OPEN);
}
END_TEST

START_TEST(test_rate_min_calls)
{
	struct breaker_conf bc = conf(0, 0.5, 4, 1);
	struct breaker b;

	/* 100% failures, but fewer than min_calls calls. */
	breaker_init(&b);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_OPEN);

	/* F S F S: 2 of 4 is 0.5, which trips; but successes never do. */
	breaker_init(&b);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_OK, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_OK, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
	call(&b, &bc, LLMGATE_OK, 0);
	/* 3 of 6: trips on the failure. */
	call(&b, &bc, LLMGATE_TIMEOUT, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_OPEN);

	/* Under the rate: 2 of 5 = 0.4. */
	breaker_init(&b);
	call(&b, &bc, LLMGATE_OK, 0);
	call(&b, &bc, LLMGATE_OK, 0);
	call(&b, &bc, LLMGATE_OK, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
}
END_TEST

START_TEST(test_rate_window_slides)
{
	struct breaker_conf bc = conf(0, 0.5, 4, 1);
	struct breaker b;

	/* window 10 s in 1 s slots: calls in [now's slot - 9 s, now]. */
	breaker_init(&b);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 999);
	call(&b, &bc, LLMGATE_OK, 5000);
	call(&b, &bc, LLMGATE_OK, 5000);
	/* Slot 0 has gone: 1 failure of 3 calls, under min_calls. Had it
	 * stayed, 3 of 5 would have tripped. */
	call(&b, &bc, LLMGATE_SERVER_ERROR, 10000);
	ck_assert_int_eq(breaker_state(&b, 10000), BREAKER_CLOSED);
	/* 2 of 4. */
	call(&b, &bc, LLMGATE_SERVER_ERROR, 10500);
	ck_assert_int_eq(breaker_state(&b, 10500), BREAKER_OPEN);

	/* The same calls within one window trip at the third failure. */
	breaker_init(&b);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 999);
	call(&b, &bc, LLMGATE_OK, 5000);
	call(&b, &bc, LLMGATE_OK, 5000);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 9999);
	ck_assert_int_eq(breaker_state(&b, 9999), BREAKER_OPEN);
}
END_TEST

START_TEST(test_half_open_one_probe)
{
	struct breaker_conf bc = conf(1, 0, 0, 1);
	struct breaker b;
	int t;

	breaker_init(&b);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_OPEN);
	ck_assert_int_eq(breaker_allow(&b, &bc, 999), 0);

	/* Open time over: exactly one probe; the rest keep skipping. */
	t = breaker_allow(&b, &bc, 1000);
	ck_assert_int_ne(t, 0);
	ck_assert(BREAKER_IS_PROBE(t));
	ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_HALF_OPEN);
	ck_assert_int_eq(breaker_allow(&b, &bc, 1000), 0);
	ck_assert_int_eq(breaker_allow(&b, &bc, 5000), 0);
	/* The probe succeeds: closed, everything goes. */
	breaker_record(&b, &bc, t, LLMGATE_OK, 5000);
	ck_assert_int_eq(breaker_state(&b, 5000), BREAKER_CLOSED);
	t = breaker_allow(&b, &bc, 5000);
	ck_assert_int_ne(t, 0);
	ck_assert(!BREAKER_IS_PROBE(t));
	ck_assert_int_ne(breaker_allow(&b, &bc, 5000), 0);
}
END_TEST

START_TEST(test_half_open_probes)
{
	struct breaker_conf bc = conf(1, 0, 0, 2);
	struct breaker b;
	int t1, t2, t3;

	breaker_init(&b);
	call(&b, &bc, LLMGATE_TIMEOUT, 0);
	t1 = breaker_allow(&b, &bc, 1000);
	t2 = breaker_allow(&b, &bc, 1000);
	ck_assert(BREAKER_IS_PROBE(t1));
	ck_assert(BREAKER_IS_PROBE(t2));
	ck_assert_int_eq(breaker_allow(&b, &bc, 1000), 0);
	/* A probe ending with a class that says nothing frees its slot
	 * without deciding. */
	breaker_record(&b, &bc, t1, LLMGATE_RATE_LIMITED, 1100);
	ck_assert_int_eq(breaker_state(&b, 1100), BREAKER_HALF_OPEN);
	t3 = breaker_allow(&b, &bc, 1100);
	ck_assert(BREAKER_IS_PROBE(t3));
	ck_assert_int_eq(breaker_allow(&b, &bc, 1100), 0);
	/* The first verdict decides; a later probe's answer is stale. */
	breaker_record(&b, &bc, t3, LLMGATE_OK, 1200);
	ck_assert_int_eq(breaker_state(&b, 1200), BREAKER_CLOSED);
	breaker_record(&b, &bc, t2, LLMGATE_SERVER_ERROR, 1300);
	ck_assert_int_eq(breaker_state(&b, 1300), BREAKER_CLOSED);
}
END_TEST

START_TEST(test_reopen_grows)
{
	struct breaker_conf bc = conf(1, 0, 0, 1);
	struct breaker b;
	static const uint64_t want[] = { 2000, 4000, 8000, 8000 };
	uint64_t now = 0;
	size_t i;
	int t;

	breaker_init(&b);
	call(&b, &bc, LLMGATE_SERVER_ERROR, now);
	ck_assert_uint_eq(breaker_open_remaining(&b, now), 1000);
	now += 1000;
	for (i = 0; i < sizeof want / sizeof want[0]; i++) {
		t = breaker_allow(&b, &bc, now);
		ck_assert(BREAKER_IS_PROBE(t));
		breaker_record(&b, &bc, t, LLMGATE_CONNECTION, now);
		ck_assert_int_eq(breaker_state(&b, now), BREAKER_OPEN);
		ck_assert_uint_eq(breaker_open_remaining(&b, now), want[i]);
		ck_assert_int_eq(breaker_allow(&b, &bc, now + want[i] - 1), 0);
		now += want[i];
	}
	/* Closed again, the open time starts over. */
	t = breaker_allow(&b, &bc, now);
	breaker_record(&b, &bc, t, LLMGATE_OK, now);
	ck_assert_int_eq(breaker_state(&b, now), BREAKER_CLOSED);
	call(&b, &bc, LLMGATE_SERVER_ERROR, now);
	ck_assert_uint_eq(breaker_open_remaining(&b, now), 1000);
}
END_TEST

START_TEST(test_stale_tickets)
{
	struct breaker_conf bc = conf(2, 0, 0, 1);
	struct breaker b;
	int old, probe;

	breaker_init(&b);
	/* Admitted while closed, answers after the breaker opened. */
	old = breaker_allow(&b, &bc, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 0);
	ck_assert_int_eq(breaker_state(&b, 0), BREAKER_OPEN);
	breaker_record(&b, &bc, old, LLMGATE_OK, 10);
	ck_assert_int_eq(breaker_state(&b, 10), BREAKER_OPEN);
	/* ... or while half-open: the probe decides, not the old call. */
	probe = breaker_allow(&b, &bc, 1000);
	ck_assert(BREAKER_IS_PROBE(probe));
	breaker_record(&b, &bc, old, LLMGATE_OK, 1000);
	ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_HALF_OPEN);
	ck_assert_int_eq(breaker_allow(&b, &bc, 1000), 0);
	breaker_record(&b, &bc, probe, LLMGATE_OK, 1000);
	ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_CLOSED);
	/* In the new closed period old failures count for nothing. */
	breaker_record(&b, &bc, old, LLMGATE_SERVER_ERROR, 1000);
	breaker_record(&b, &bc, old, LLMGATE_SERVER_ERROR, 1000);
	breaker_record(&b, &bc, 0, LLMGATE_SERVER_ERROR, 1000);
	breaker_record(&b, &bc, probe, LLMGATE_SERVER_ERROR, 1000);
	ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_CLOSED);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 1000);
	ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_CLOSED);
	call(&b, &bc, LLMGATE_SERVER_ERROR, 1000);
	ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_OPEN);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("breaker");
	TCase *tc = tcase_create("policy");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_names_and_classes);
	tcase_add_test(tc, test_consecutive);
	tcase_add_test(tc, test_not_counted);
	tcase_add_test(tc, test_rate_min_calls);
	tcase_add_test(tc, test_rate_window_slides);
	tcase_add_test(tc, test_half_open_one_probe);
	tcase_add_test(tc, test_half_open_probes);
	tcase_add_test(tc, test_reopen_grows);
	tcase_add_test(tc, test_stale_tickets);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
