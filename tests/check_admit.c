/*
 * check_admit.c: the admission decision with fake time: granted now,
 * queued with a predicted wait (the head's own wait counted), refused for
 * max_wait_ms, the deadline, an open breaker or a full queue; the queue
 * served as budget refills and slots free; and every decision taken under
 * the owner's config snapshot, not the daemon's current config.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "llmgated.h"

#define T0 100000 /* a fake CLOCK_MONOTONIC reading, ms */

static struct provider_state ps;
static struct target t;
static struct config conf;

/* A target allowed rpm a minute in bursts of one; max_wait_ms 60 s. */
static void
target_setup(uint32_t rpm, unsigned capacity)
{
	memset(&ps, 0, sizeof ps);
	memset(&t, 0, sizeof t);
	t.name = (char *)(uintptr_t) "p/m";
	t.model = "m";
	t.provider = &ps;
	rl_setup(&t.rl, rpm, 0, 1, 0, T0);
	breaker_init(&t.br);
	waitq_init(&t.queue, capacity);
	memset(&conf, 0, sizeof conf);
	conf.max_wait_ms = 60000;
	conf.breaker.failures = 5;
	conf.breaker.failure_rate = 0.5;
	conf.breaker.min_calls = 1000;
	conf.breaker.window_ms = 60000;
	conf.breaker.open_ms = 30000;
	conf.breaker.half_open_probes = 1;
}

static void
target_teardown(void)
{
	waitq_free(&t.queue);
}

static void
adm(struct admission *a, uint64_t client, uint32_t concurrency)
{
	admission_init(a, &t, &conf, concurrency, 10, client,
	    LLMGATE_PRIO_NORMAL);
}

/* Nothing held: not queued, no ticket, no slot. */
static void
holds_nothing(const struct admission *a)
{
	ck_assert_int_eq(a->queued, 0);
	ck_assert_int_eq(a->ticket, 0);
	ck_assert_int_eq(a->granted, 0);
}

/*
 * A target at one call a second (queue capacity cap, max_wait_ms
 * max_wait) and the admissions of clients 1, 2 and 3 under it: a goes,
 * b waits. b's wait.
 */
static uint64_t
three_callers(struct admission *a, struct admission *b, struct admission *c,
    unsigned cap, uint32_t max_wait)
{
	uint64_t wait;

	target_setup(60, cap);
	conf.max_wait_ms = max_wait;
	adm(a, 1, 0);
	adm(b, 2, 0);
	adm(c, 3, 0);
	ck_assert_int_eq(admission_request(a, 0, T0, &wait), ADMIT_GO);
	ck_assert_int_eq(admission_request(b, 0, T0, &wait), ADMIT_WAIT);
	return wait;
}

START_TEST(test_go_wait_and_predict)
{
	struct admission a, b, c;
	uint64_t wait;

	/* One a second: b waits a second, its own budget wait. */
	ck_assert_uint_eq(three_callers(&a, &b, &c, 0, 60000), 1000);
	ck_assert_int_eq(a.granted, 1);
	ck_assert_uint_eq(ps.inflight, 1);
	ck_assert_int_eq(b.queued, 1);
	/*
	 * c goes after b: b's own wait, then one interval. (The prediction
	 * once left b's wait out, and said 1000.)
	 */
	ck_assert_uint_eq(admission_predict(&c, T0), 2000);
	ck_assert_int_eq(admission_request(&c, 0, T0, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(wait, 2000);
	/* Half a second on: b's wait is half gone, and so is c's. */
	admission_release(&c, T0);
	ck_assert_uint_eq(admission_predict(&c, T0 + 500), 1500);
	admission_release(&a, T0);
	admission_release(&b, T0);
	target_teardown();
}
END_TEST

/* A wait past max_wait_ms or the deadline is refused up front. */
START_TEST(test_refused_up_front)
{
	struct admission a, b, c;
	uint64_t wait;

	three_callers(&a, &b, &c, 0, 1500);
	ck_assert_int_eq(admission_request(&c, 0, T0, &wait), ADMIT_LONG);
	ck_assert_uint_eq(wait, 2000);
	holds_nothing(&c);
	ck_assert_uint_eq(waitq_len(&t.queue), 1);
	/* The deadline: 2 s of wait do not fit in 1.9 s. */
	conf.max_wait_ms = 0;
	adm(&c, 3, 0);
	ck_assert_int_eq(admission_request(&c, T0 + 1900, T0, &wait),
	    ADMIT_LATE);
	holds_nothing(&c);
	adm(&c, 3, 0);
	ck_assert_int_eq(admission_request(&c, T0 + 2100, T0, &wait),
	    ADMIT_WAIT);
	admission_release(&c, T0);
	admission_release(&b, T0);
	admission_release(&a, T0);
	target_teardown();
}
END_TEST

/* The queue is served as the budget refills, head first. */
START_TEST(test_served_in_time)
{
	struct admission a, b, c;
	uint64_t wait;

	three_callers(&a, &b, &c, 0, 60000);
	ck_assert_int_eq(admission_request(&c, 0, T0, &wait), ADMIT_WAIT);
	ck_assert_ptr_null(admission_next(&t, T0 + 999, &wait));
	ck_assert_uint_eq(wait, 1);
	ck_assert_ptr_eq(admission_next(&t, T0 + 1000, &wait), &b);
	ck_assert_int_eq(b.granted, 1);
	ck_assert_int_eq(b.queued, 0);
	ck_assert_ptr_null(admission_next(&t, T0 + 1000, &wait));
	ck_assert_uint_eq(wait, 1000);
	ck_assert_ptr_eq(admission_next(&t, T0 + 2000, &wait), &c);
	ck_assert_ptr_null(admission_next(&t, T0 + 2000, &wait));
	ck_assert_uint_eq(wait, 0);
	ck_assert_uint_eq(ps.inflight, 3);
	ck_assert_uint_eq(admission_release(&a, T0 + 2000), ADMISSION_SLOT);
	ck_assert_uint_eq(admission_release(&a, T0 + 2000), 0);
	admission_release(&b, T0 + 2000);
	admission_release(&c, T0 + 2000);
	ck_assert_uint_eq(ps.inflight, 0);
	target_teardown();
}
END_TEST

/* Held back by the concurrency cap: no time to wait for, a slot to free. */
START_TEST(test_concurrency_slot)
{
	struct admission a, b;
	uint64_t wait;

	target_setup(0, 0);
	adm(&a, 1, 1);
	adm(&b, 2, 1);
	ck_assert_int_eq(admission_request(&a, 0, T0, &wait), ADMIT_GO);
	ck_assert_int_eq(admission_request(&b, 0, T0, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(wait, 0);
	ck_assert_ptr_null(admission_next(&t, T0 + 60000, &wait));
	ck_assert_uint_eq(wait, 0);
	ck_assert_uint_eq(admission_release(&a, T0 + 60000), ADMISSION_SLOT);
	ck_assert_ptr_eq(admission_next(&t, T0 + 60000, &wait), &b);
	/* Cancelled while queued: out of the queue, the slot never taken. */
	adm(&a, 1, 1);
	ck_assert_int_eq(admission_request(&a, 0, T0, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(admission_release(&a, T0), ADMISSION_DEQUEUED);
	holds_nothing(&a);
	ck_assert_uint_eq(waitq_len(&t.queue), 0);
	admission_release(&b, T0);
	target_teardown();
}
END_TEST

/* One client's backlog counts as turns, not as its length. */
START_TEST(test_fair_turns)
{
	struct admission a[4], b;
	uint64_t wait;
	int i;

	target_setup(60, 0);
	for (i = 0; i < 4; i++) {
		adm(&a[i], 1, 0);
		ck_assert_int_eq(admission_request(&a[i], 0, T0, &wait),
		    i == 0 ? ADMIT_GO : ADMIT_WAIT);
	}
	/* Three of client 1's queued; client 2 goes after the first. */
	adm(&b, 2, 0);
	ck_assert_uint_eq(admission_predict(&b, T0), 2000);
	ck_assert_int_eq(admission_request(&b, 0, T0, &wait), ADMIT_WAIT);
	ck_assert_ptr_eq(admission_next(&t, T0 + 1000, &wait), &a[1]);
	ck_assert_ptr_eq(admission_next(&t, T0 + 2000, &wait), &b);
	for (i = 0; i < 4; i++)
		admission_release(&a[i], T0);
	admission_release(&b, T0);
	target_teardown();
}
END_TEST

START_TEST(test_queue_full)
{
	struct admission a, b, c;
	uint64_t wait;

	three_callers(&a, &b, &c, 1, 60000);
	ck_assert_int_eq(admission_request(&c, 0, T0, &wait), ADMIT_FULL);
	holds_nothing(&c);
	admission_release(&a, T0);
	admission_release(&b, T0);
	target_teardown();
}
END_TEST

/*
 * Each admission keeps the breaker settings of the config it started
 * under: a reload in between changes later admissions, not this one.
 */
START_TEST(test_config_snapshot)
{
	struct admission old, cur;
	uint64_t wait;

	target_setup(0, 0);
	/* Started under a config that opens on the first failure. */
	conf.breaker.failures = 1;
	conf.breaker.open_ms = 1000;
	adm(&old, 1, 0);
	/* The reload: five failures, 30 s. */
	conf.breaker.failures = 5;
	conf.breaker.open_ms = 30000;
	ck_assert_int_eq(admission_request(&old, 0, T0, &wait), ADMIT_GO);
	admission_done(&old, LLMGATE_SERVER_ERROR, NULL, 0, T0 + 10);
	admission_release(&old, T0 + 10);
	ck_assert_int_eq(breaker_state(&t.br, T0 + 10), BREAKER_OPEN);
	adm(&cur, 2, 0);
	ck_assert_int_eq(admission_request(&cur, 0, T0 + 510, &wait),
	    ADMIT_OPEN);
	ck_assert_uint_eq(wait, 500);
	holds_nothing(&cur);
	/* Open for the old config's 1 s, not the new one's 30. */
	adm(&cur, 2, 0);
	ck_assert_int_eq(admission_request(&cur, 0, T0 + 1010, &wait),
	    ADMIT_GO);
	admission_release(&cur, T0 + 1010);
	target_teardown();

	/* max_wait_ms too: the same wait, two snapshots, two answers. */
	target_setup(60, 0);
	adm(&old, 1, 0);
	ck_assert_int_eq(admission_request(&old, 0, T0, &wait), ADMIT_GO);
	conf.max_wait_ms = 500;
	adm(&cur, 2, 0);
	conf.max_wait_ms = 5000;
	ck_assert_int_eq(admission_request(&cur, 0, T0, &wait), ADMIT_LONG);
	adm(&cur, 2, 0);
	ck_assert_int_eq(admission_request(&cur, 0, T0, &wait), ADMIT_WAIT);
	admission_release(&cur, T0);
	admission_release(&old, T0);
	target_teardown();
}
END_TEST

START_TEST(test_refusal_classes)
{
	static const struct {
		enum admit_verdict v;
		uint64_t wait;
		const char *limit;
		enum llmgate_class cls;
		const char *says; /* in the message; NULL: anything */
	} cases[] = {
		{ ADMIT_OPEN, 5, "deadline", LLMGATE_CIRCUIT_OPEN, NULL },
		{ ADMIT_LATE, 5, "deadline", LLMGATE_DEADLINE, "deadline" },
		{ ADMIT_LATE, 5, "timeout", LLMGATE_DEADLINE, "timeout" },
		{ ADMIT_LONG, 5, "deadline", LLMGATE_RATE_LIMITED, NULL },
		{ ADMIT_FULL, 5, "deadline", LLMGATE_RATE_LIMITED, NULL },
		{ ADMIT_EXPIRED, 60000, "deadline", LLMGATE_RATE_LIMITED,
		    "max_wait_ms" },
	};
	struct admission a;
	char msg[160];
	size_t i;

	target_setup(60, 0);
	adm(&a, 1, 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_int_eq(admission_refusal(&a, cases[i].v,
		                     cases[i].wait, T0, cases[i].limit, msg,
		                     sizeof msg),
		    cases[i].cls);
		if (cases[i].says != NULL)
			ck_assert_msg(strstr(msg, cases[i].says) != NULL,
			    "case %zu: '%s' does not say %s", i, msg,
			    cases[i].says);
	}
	target_teardown();
}
END_TEST

static Suite *
admit_suite(void)
{
	Suite *s = suite_create("admit");
	TCase *tc = tcase_create("decision");

	tcase_add_test(tc, test_go_wait_and_predict);
	tcase_add_test(tc, test_refused_up_front);
	tcase_add_test(tc, test_served_in_time);
	tcase_add_test(tc, test_concurrency_slot);
	tcase_add_test(tc, test_fair_turns);
	tcase_add_test(tc, test_queue_full);
	tcase_add_test(tc, test_config_snapshot);
	tcase_add_test(tc, test_refusal_classes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(admit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
