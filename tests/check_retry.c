/*
 * check_retry.c: the retry policy with fixed random draws: every jitter
 * mode, the cap, and which classes retry or fall back.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static struct retry_conf
rc_make(enum jitter j)
{
	struct retry_conf rc = { .attempts = 3,
		.initial_ms = 100,
		.max_ms = 1000,
		.multiplier = 2.0,
		.jitter = j };

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

/* fallback.c: which classes move on, and which replies are turned down. */
START_TEST(test_fallback_on)
{
	char *names[] = { "rate_limited", "bad_request" };
	char *bad[] = { "ok" }, *unknown[] = { "rate_limit" };
	char *cause = NULL;
	uint32_t on;

	/* None given: the default set. */
	ck_assert(fallback_class(0, LLMGATE_SERVER_ERROR));
	ck_assert(!fallback_class(0, LLMGATE_BAD_REQUEST));
	ck_assert_int_eq(fallback_parse_on(&on, names, 2, "fallback_on",
	                     &cause),
	    0);
	ck_assert(fallback_class(on, LLMGATE_RATE_LIMITED));
	ck_assert(fallback_class(on, LLMGATE_BAD_REQUEST));
	ck_assert(!fallback_class(on, LLMGATE_SERVER_ERROR));
	ck_assert(!fallback_class(on, LLMGATE_OK));
	/* A rejected reply always moves on. */
	ck_assert(fallback_class(on, LLMGATE_REJECTED));
	ck_assert_int_eq(fallback_parse_on(&on, bad, 1, "fallback_on", &cause),
	    -1);
	ck_assert_str_eq(cause,
	    "fallback_on: 'ok' cannot lead to the next "
	    "step");
	free(cause);
	ck_assert_int_eq(fallback_parse_on(&on, unknown, 1, "fallback_on",
	                     &cause),
	    -1);
	ck_assert_str_eq(cause,
	    "fallback_on: unknown error class "
	    "'rate_limit'");
	free(cause);
}
END_TEST

static int
rejects(const struct fallback *fb, struct reply *r, const char *want)
{
	char *why = NULL;
	int rv = fallback_rejects(fb, r, &why);

	if (want != NULL)
		ck_assert_msg(rv == 1 && strstr(why, want) != NULL,
		    "want '%s', got %d '%s'", want, rv, why ? why : "");
	free(why);
	return rv;
}

START_TEST(test_fallback_rejects)
{
	char *conds[] = { "length", "empty", "match:(?i)^sorry" };
	char *filt[] = { "content_filter" }, *badre[] = { "match:a{2,1}" };
	struct fallback fb, fb2;
	struct reply r;
	char *cause = NULL;

	memset(&fb, 0, sizeof fb);
	memset(&fb2, 0, sizeof fb2);
	ck_assert_int_eq(fallback_parse_reject(&fb, conds, 3, "reject", &cause),
	    0);
	reply_init(&r, NULL, NULL);
	reply_text(&r, "fine", 4);
	r.done = 1;
	r.finish = LLMGATE_FINISH_STOP;
	ck_assert_int_eq(rejects(&fb, &r, NULL), 0);
	r.finish = LLMGATE_FINISH_LENGTH;
	rejects(&fb, &r, "rejected (length)");
	r.finish = LLMGATE_FINISH_STOP;
	reply_free(&r);

	/* Whitespace only is empty; a tool call is not. */
	reply_init(&r, NULL, NULL);
	reply_text(&r, " \n\t", 3);
	rejects(&fb, &r, "rejected (empty)");
	reply_tool_delta(&r, 0, "id", "f", "{}", 2);
	ck_assert_int_eq(rejects(&fb, &r, NULL), 0);
	reply_free(&r);

	/* Patterns: unanchored, (?i); bytes that are not UTF-8 do not match
	 * nor break the match. */
	reply_init(&r, NULL, NULL);
	reply_text(&r, "SORRY, no", 9);
	rejects(&fb, &r, "rejected (match): the reply matches '(?i)^sorry'");
	reply_free(&r);
	reply_init(&r, NULL, NULL);
	reply_text(&r, "\xff\xfe ok", 5);
	ck_assert_int_eq(rejects(&fb, &r, NULL), 0);
	reply_free(&r);

	/* An error answer of class content_filter: filter or refusal. */
	ck_assert_int_eq(fallback_parse_reject(&fb2, filt, 1, "reject", &cause),
	    0);
	reply_init(&r, NULL, NULL);
	reply_error(&r, LLMGATE_CONTENT_FILTER, 0, "output stopped");
	rejects(&fb2, &r, "rejected (content_filter): output stopped");
	r.refused = 1;
	ck_assert_int_eq(rejects(&fb2, &r, NULL), 0);
	reply_free(&r);
	/* Other errors are never judged. */
	reply_init(&r, NULL, NULL);
	reply_error(&r, LLMGATE_SERVER_ERROR, 500, "boom");
	ck_assert_int_eq(rejects(&fb, &r, NULL), 0);
	reply_free(&r);

	ck_assert_int_eq(fallback_parse_reject(&fb2, badre, 1, "reject",
	                     &cause),
	    -1);
	ck_assert_ptr_nonnull(strstr(cause,
	    "reject: pattern 'a{2,1}' is not "
	    "a valid regular expression"));
	free(cause);
	fallback_free(&fb);
	fallback_free(&fb2);
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
	tcase_add_test(tc, test_fallback_on);
	tcase_add_test(tc, test_fallback_rejects);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
