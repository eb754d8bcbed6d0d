/*
 * check_retry.c: the retry policy with fixed random draws: every jitter
 * mode, the cap, and which classes retry or fall back.
 */
#include <check.h>
#include <stdlib.h>

#include "llmgated.h"

static struct retry_conf
rc_make(enum jitter j)
{
	struct retry_conf rc = { .attempts = 3, .initial_ms = 100,
	    .max_ms = 1000, .multiplier = 2.0, .jitter = j };

	rc.on = 1u << LLMGATE_RATE_LIMITED | 1u << LLMGATE_SERVER_ERROR;
	return rc;
}

START_TEST(test_none_exponential_capped)
{
	struct retry_conf rc = rc_make(JITTER_NONE);

	ck_assert_uint_eq(retry_backoff_ms(&rc, 0, 0, 0.5), 100);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 1, 0, 0.5), 200);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 3, 0, 0.5), 800);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 4, 0, 0.5), 1000);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 200, 0, 0.5), 1000);
}
END_TEST

START_TEST(test_full_jitter)
{
	struct retry_conf rc = rc_make(JITTER_FULL);

	ck_assert_uint_eq(retry_backoff_ms(&rc, 2, 0, 0.0), 0);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 2, 0, 0.25), 100);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 2, 0, 0.5), 200);
	ck_assert_uint_le(retry_backoff_ms(&rc, 2, 0, 0.9999), 400);
}
END_TEST

START_TEST(test_equal_jitter)
{
	struct retry_conf rc = rc_make(JITTER_EQUAL);

	ck_assert_uint_eq(retry_backoff_ms(&rc, 2, 0, 0.0), 200);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 2, 0, 0.5), 300);
}
END_TEST

START_TEST(test_decorrelated_jitter)
{
	struct retry_conf rc = rc_make(JITTER_DECORRELATED);

	/* Between initial and 3 x previous, capped. */
	ck_assert_uint_eq(retry_backoff_ms(&rc, 0, 0, 0.0), 100);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 0, 0, 0.5), 200);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 1, 200, 0.5), 350);
	ck_assert_uint_eq(retry_backoff_ms(&rc, 5, 900, 0.9), 1000);
}
END_TEST

START_TEST(test_classes)
{
	struct retry_conf rc = rc_make(JITTER_FULL);

	ck_assert(retry_class_retries(&rc, LLMGATE_RATE_LIMITED));
	ck_assert(!retry_class_retries(&rc, LLMGATE_TIMEOUT));
	ck_assert(!retry_class_retries(&rc, LLMGATE_OK));
	ck_assert(retry_class_falls_back(LLMGATE_AUTH));
	ck_assert(retry_class_falls_back(LLMGATE_SCHEMA));
	ck_assert(!retry_class_falls_back(LLMGATE_BAD_REQUEST));
	ck_assert(!retry_class_falls_back(LLMGATE_DEADLINE));
	ck_assert(!retry_class_falls_back(LLMGATE_CANCELLED));
	ck_assert(!retry_class_falls_back(LLMGATE_INVALID_REQUEST));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("retry");
	TCase *tc = tcase_create("policy");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_none_exponential_capped);
	tcase_add_test(tc, test_full_jitter);
	tcase_add_test(tc, test_equal_jitter);
	tcase_add_test(tc, test_decorrelated_jitter);
	tcase_add_test(tc, test_classes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
