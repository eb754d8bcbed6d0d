/*
 * check_rbudget.c: the machine-wide retry budget with fake time: the
 * ratio of first attempts, the min_per_s floor, the window sliding by
 * whole seconds, and first attempts that are never refused.
 */
#include <check.h>
#include <string.h>

#include "llmgated.h"

static struct rbudget
fresh(void)
{
	struct rbudget rb;

	memset(&rb, 0, sizeof rb);
	return rb;
}

static void
firsts(struct rbudget *rb, int n, uint64_t now)
{
	while (n-- > 0)
		rbudget_first(rb, now);
}

START_TEST(test_ratio)
{
	struct retry_budget_conf rc = { .ratio = 0.2, .min_per_s = 0 };
	struct rbudget rb = fresh();

	/* Nothing seen, no floor: no retry. */
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 0), 0);
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 0), 0, 1e-9);

	firsts(&rb, 10, 0);
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 0), 2, 1e-9);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 0), 1);
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 0), 1, 1e-9);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 100), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 200), 0);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 300), 0);
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 300), 0, 1e-9);

	/* First attempts always go (they are only counted), and make room:
	 * 15 x 0.2 = 3, 2 spent. */
	firsts(&rb, 5, 400);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 400), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 400), 0);
}
END_TEST

START_TEST(test_ratio_rounding)
{
	/* 0.57 x 100 is 56.99999999999999 in binary: still 57 retries. */
	struct retry_budget_conf rc = { .ratio = 0.57, .min_per_s = 0 };
	struct rbudget rb = fresh();
	int n = 0;

	firsts(&rb, 100, 0);
	while (rbudget_try_retry(&rb, &rc, 0))
		n++;
	ck_assert_int_eq(n, 57);
}
END_TEST

START_TEST(test_floor)
{
	struct retry_budget_conf rc = { .ratio = 0.2, .min_per_s = 0.5 };
	struct rbudget rb = fresh();
	int i;

	/* No first attempts: min_per_s x 10 s = 5 retries. */
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 0), 5, 1e-9);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 0), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 0), 0);
	/* The ratio adds to the floor: 10 x 0.2 + 5 = 7. */
	firsts(&rb, 10, 0);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 0), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 0), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 0), 0);
}
END_TEST

START_TEST(test_window_slides)
{
	struct retry_budget_conf rc = { .ratio = 0.2, .min_per_s = 0 };
	struct rbudget rb = fresh();

	firsts(&rb, 10, 0);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 5000), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 5000), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 5000), 0);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 9999), 0);
	/* Second 0 leaves the window at 10 s; the retries of second 5
	 * still count: 0 - 2, shown as 0. */
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 9999), 0, 1e-9);
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 10000), 0, 1e-9);
	firsts(&rb, 10, 10000);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 10000), 0);
	firsts(&rb, 5, 10000);
	/* 15 x 0.2 - 2 = 1. */
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 10000), 1, 1e-9);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 10000), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 14999), 0);
	/* Second 5's retries gone at 15 s: 15 x 0.2 - 1 = 2. */
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 15000), 2, 1e-9);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 15000), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 15000), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 15000), 0);
	/* Long idle: everything expired, slots reused. */
	ck_assert_double_eq_tol(rbudget_available(&rb, &rc, 1000000), 0, 1e-9);
	firsts(&rb, 5, 1000000);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 1000000), 1);
	ck_assert_int_eq(rbudget_try_retry(&rb, &rc, 1000000), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("rbudget");
	TCase *tc = tcase_create("policy");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_ratio);
	tcase_add_test(tc, test_ratio_rounding);
	tcase_add_test(tc, test_floor);
	tcase_add_test(tc, test_window_slides);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
