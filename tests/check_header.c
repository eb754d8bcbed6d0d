/*
 * check_header.c: rate-limit and retry hints from response headers, with
 * the values providers really send (OpenAI, Groq, Anthropic) and the
 * garbage proxies send instead.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/* 2025-08-21T12:40:00Z, a Thursday */
#define NOW       ((time_t)1755780000)
#define NITEMS(a) (sizeof(a) / sizeof(a)[0])

static struct header_rl
feed(const char *const *hv)
{
	struct header_rl info;

	header_rl_init(&info);
	for (; hv[0] != NULL; hv += 2)
		header_rl_add(&info, hv[0], hv[1], NOW);
	return info;
}

static void
assert_unset(const struct header_rl *info)
{
	ck_assert_int_eq(info->retry_after_ms, -1);
	ck_assert_int_eq(info->limit_requests, -1);
	ck_assert_int_eq(info->remaining_requests, -1);
	ck_assert_int_eq(info->reset_requests_ms, -1);
	ck_assert_int_eq(info->limit_tokens, -1);
	ck_assert_int_eq(info->remaining_tokens, -1);
	ck_assert_int_eq(info->reset_tokens_ms, -1);
	ck_assert_int_eq(info->should_retry, -1);
	ck_assert_str_eq(info->request_id, "");
}

START_TEST(test_init)
{
	struct header_rl info;

	memset(&info, 0x5a, sizeof info);
	header_rl_init(&info);
	assert_unset(&info);
}
END_TEST

static const struct {
	const char *in;
	int64_t ms;
} durations[] = {
	{ "1s", 1000 }, { "20ms", 20 }, { "12ms", 12 }, { "6m0s", 360000 },
	{ "2h30m", 9000000 }, { "0.5s", 500 }, { "1m30.5s", 90500 },
	{ "2m59.56s", 179560 }, { "7.66s", 7660 }, { "1h0m0s", 3600000 },
	{ "2h", 7200000 }, { ".5s", 500 }, { "1.s", 1000 }, { "0", 0 },
	{ "0s", 0 }, { "0ms", 0 }, { "1.5ms", 2 }, /* waits round up */
	{ "1.0001s", 1001 },
	{ "1.0000000001s", 1001 }, /* below a nanosecond still counts */
	{ "500us", 1 }, { "1500\xc2\xb5s", 2 }, { "2000\xce\xbcs", 2 },
	{ "100ns", 1 }, { "1m1ms", 60001 }, /* "ms" is not "m" then "s" */
	{ "1ms1m", 60001 }, { " 1s\t", 1000 }, { "1h1h", 7200000 },
	{ "2562047h", 2562047 * INT64_C(3600000) },
	/* garbage */
	{ "", -1 }, { "   ", -1 }, { "s", -1 }, { "ms", -1 }, { "5", -1 },
	{ "1m30", -1 }, { "5x", -1 }, { "-1s", -1 }, { "+1s", -1 },
	{ "1.2.3s", -1 }, { ".s", -1 }, { "1 s", -1 }, { "1S", -1 },
	{ "1sx", -1 }, { "00", -1 }, { "99999999999999999999s", -1 },
	{ "9999999999h", -1 }, { "2562048h", -1 }, /* past int64 nanoseconds */
};

START_TEST(test_duration)
{
	ck_assert_msg(header_duration_ms(durations[_i].in) == durations[_i].ms,
	    "\"%s\": %lld, want %lld", durations[_i].in,
	    (long long)header_duration_ms(durations[_i].in),
	    (long long)durations[_i].ms);
}
END_TEST

START_TEST(test_duration_null)
{
	ck_assert_int_eq(header_duration_ms(NULL), -1);
}
END_TEST

static const struct {
	const char *in;
	int64_t ms;
} retry_afters[] = {
	{ "2", 2000 },
	{ "0", 0 },
	{ "1.5", 1500 },
	{ "0.001", 1 },
	{ "0.0001", 1 },
	{ " 30 ", 30000 },
	{ "120", 120000 },
	{ "Thu, 21 Aug 2025 12:40:30 GMT", 30000 },
	{ "thu, 21 aug 2025 12:40:30 gmt", 30000 },
	{ "Thu, 21 Aug 2025 12:40:00 GMT", 0 },
	{ "Thu, 21 Aug 2025 12:39:00 GMT", 0 }, /* past */
	{ "Sun, 06 Nov 1994 08:49:37 GMT", 0 },
	{ "Fri, 22 Aug 2025 12:40:00 GMT", 86400000 },
	{ "Thursday, 21-Aug-25 12:41:00 GMT", 60000 }, /* RFC 850 */
	{ "Sunday, 06-Nov-94 08:49:37 GMT", 0 },
	{ "Thu Aug 21 12:42:00 2025", 120000 }, /* asctime */
	{ "Thu Aug  1 12:40:00 2025", 0 },
	{ "Mon Sep  1 12:40:00 2025", 11 * 86400000LL },
	{ "Wed, 31 Dec 2025 23:59:60 GMT", 11445600000LL }, /* leap sec */
	/* garbage */
	{ "", -1 },
	{ "soon", -1 },
	{ "-1", -1 },
	{ "1e3", -1 },
	{ "1,5", -1 },
	{ "Thu, 32 Aug 2025 12:40:30 GMT", -1 },
	{ "Thu, 31 Sep 2025 12:40:30 GMT", -1 },
	{ "Thu, 29 Feb 2025 12:40:30 GMT", -1 },
	{ "Thu, 21 Foo 2025 12:40:30 GMT", -1 },
	{ "Thu, 21 Aug 2025 24:40:30 GMT", -1 },
	{ "Thu, 21 Aug 2025 12:40:30", -1 },
	{ "Thu, 21 Aug 2025 12:40:30 GMT junk", -1 },
	{ "Thu, 21 Aug 25 12:40:30 GMT", -1 },
	{ "Xyz, 21 Aug 2025 12:40:30 GMT", -1 },
	{ "Thursday, 21-Aug-2025 12:40:30 GMT", -1 },
	{ "99999999999999999999", -1 },
};

START_TEST(test_retry_after)
{
	int64_t got = header_retry_after_ms(retry_afters[_i].in, NOW);

	ck_assert_msg(got == retry_afters[_i].ms, "\"%s\": %lld, want %lld",
	    retry_afters[_i].in, (long long)got,
	    (long long)retry_afters[_i].ms);
}
END_TEST

START_TEST(test_leap_day)
{
	/* 2024 is a leap year; 2100 is not. */
	ck_assert_int_eq(header_retry_after_ms("Thu, 29 Feb 2024 00:00:00 GMT",
	                     NOW),
	    0);
	ck_assert_int_eq(header_rfc3339("2024-02-29T00:00:00Z"), 1709164800);
	ck_assert_int_eq(header_rfc3339("2100-02-29T00:00:00Z"), -1);
	ck_assert_int_eq(header_rfc3339("2000-02-29T00:00:00Z"), 951782400);
}
END_TEST

static const struct {
	const char *in;
	int64_t t;
} rfc3339s[] = {
	{ "1970-01-01T00:00:00Z", 0 },
	{ "2025-08-21T12:40:59Z", 1755780059 },
	{ "2025-08-21t12:40:59z", 1755780059 },
	{ "2025-08-21 12:40:59Z", 1755780059 },
	{ "2025-08-21T12:40:59.999Z", 1755780059 }, /* floor */
	{ "2025-08-21T12:40:59.5+00:00", 1755780059 },
	{ "2025-08-21T14:40:59+02:00", 1755780059 },
	{ "2025-08-21T07:10:59-05:30", 1755780059 },
	{ "2025-08-22T00:10:59+11:30", 1755780059 },
	{ "2025-08-21T12:40:59-00:00", 1755780059 },
	{ "1994-11-06T08:49:37Z", 784111777 },
	{ " 2025-08-21T12:40:59Z ", 1755780059 },
	/* garbage */
	{ "", -1 },
	{ "2025-08-21", -1 },
	{ "2025-08-21T12:40:59", -1 }, /* no zone */
	{ "2025-08-21T12:40Z", -1 },
	{ "2025-13-21T12:40:59Z", -1 },
	{ "2025-02-30T12:40:59Z", -1 },
	{ "2025-08-00T12:40:59Z", -1 },
	{ "2025-08-21T12:60:59Z", -1 },
	{ "2025-08-21T12:40:59.Z", -1 },
	{ "2025-08-21T12:40:59+0200", -1 },
	{ "2025-08-21T12:40:59+24:00", -1 },
	{ "2025-08-21T12:40:59Zjunk", -1 },
	{ "2025/08/21T12:40:59Z", -1 },
	{ "Thu, 21 Aug 2025 12:40:59 GMT", -1 },
	{ "1755780059", -1 },
};

START_TEST(test_rfc3339)
{
	ck_assert_msg(header_rfc3339(rfc3339s[_i].in) == rfc3339s[_i].t,
	    "\"%s\": %lld, want %lld", rfc3339s[_i].in,
	    (long long)header_rfc3339(rfc3339s[_i].in),
	    (long long)rfc3339s[_i].t);
}
END_TEST

START_TEST(test_openai)
{
	static const char *const hv[] = { "x-ratelimit-limit-requests", "5000",
		"x-ratelimit-limit-tokens", "160000",
		"x-ratelimit-remaining-requests", "4999",
		"x-ratelimit-remaining-tokens", "159976",
		"x-ratelimit-reset-requests", "12ms",
		"x-ratelimit-reset-tokens", "6m0s", "x-request-id",
		"req_7b1c0d0e", "openai-processing-ms", "321",
		"x-ratelimit-limit-tokens_usage_based", "1",
		"x-ratelimit-remaining-tokens_usage_based", "0", NULL };
	struct header_rl info = feed(hv);

	ck_assert_int_eq(info.limit_requests, 5000);
	ck_assert_int_eq(info.remaining_requests, 4999);
	ck_assert_int_eq(info.reset_requests_ms, 12);
	ck_assert_int_eq(info.limit_tokens, 160000);
	ck_assert_int_eq(info.remaining_tokens, 159976);
	ck_assert_int_eq(info.reset_tokens_ms, 360000);
	ck_assert_int_eq(info.retry_after_ms, -1);
	ck_assert_int_eq(info.should_retry, -1);
	ck_assert_str_eq(info.request_id, "req_7b1c0d0e");
}
END_TEST

START_TEST(test_groq_429)
{
	static const char *const hv[] = { "X-RateLimit-Limit-Requests", "14400",
		"X-RateLimit-Remaining-Requests", "0",
		"X-RateLimit-Reset-Requests", "2m59.56s",
		"X-RateLimit-Limit-Tokens", "18000",
		"X-RateLimit-Remaining-Tokens", "17995",
		"X-RateLimit-Reset-Tokens", "7.66s", "Retry-After", "7", NULL };
	struct header_rl info = feed(hv);

	ck_assert_int_eq(info.limit_requests, 14400);
	ck_assert_int_eq(info.remaining_requests, 0);
	ck_assert_int_eq(info.reset_requests_ms, 179560);
	ck_assert_int_eq(info.limit_tokens, 18000);
	ck_assert_int_eq(info.remaining_tokens, 17995);
	ck_assert_int_eq(info.reset_tokens_ms, 7660);
	ck_assert_int_eq(info.retry_after_ms, 7000);
}
END_TEST

START_TEST(test_anthropic)
{
	static const char *const hv[] = { "anthropic-ratelimit-requests-limit",
		"50", "anthropic-ratelimit-requests-remaining", "49",
		"anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z",
		"anthropic-ratelimit-tokens-limit", "90000",
		"anthropic-ratelimit-tokens-remaining", "89000",
		"anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:01Z",
		"request-id", "req_011CSHo4", NULL };
	struct header_rl info = feed(hv);

	ck_assert_int_eq(info.limit_requests, 50);
	ck_assert_int_eq(info.remaining_requests, 49);
	ck_assert_int_eq(info.reset_requests_ms, 59000);
	ck_assert_int_eq(info.limit_tokens, 90000);
	ck_assert_int_eq(info.remaining_tokens, 89000);
	ck_assert_int_eq(info.reset_tokens_ms, 1000);
	ck_assert_str_eq(info.request_id, "req_011CSHo4");
}
END_TEST

START_TEST(test_anthropic_reset_forms)
{
	struct header_rl info;

	header_rl_init(&info);
	header_rl_add(&info, "anthropic-ratelimit-requests-reset",
	    "2025-08-21T14:40:59+02:00", NOW);
	ck_assert_int_eq(info.reset_requests_ms, 59000);
	header_rl_add(&info, "anthropic-ratelimit-requests-reset",
	    "2025-08-21T12:40:01.250Z", NOW);
	ck_assert_int_eq(info.reset_requests_ms, 1250);
	header_rl_add(&info, "anthropic-ratelimit-requests-reset",
	    "2025-08-21T12:40:00.0001Z", NOW);
	ck_assert_int_eq(info.reset_requests_ms, 1);
	/* Already past (clock skew): no wait rather than a negative one. */
	header_rl_add(&info, "anthropic-ratelimit-requests-reset",
	    "2025-08-21T12:39:00Z", NOW);
	ck_assert_int_eq(info.reset_requests_ms, 0);
	/* Garbage keeps the last good value. */
	header_rl_add(&info, "anthropic-ratelimit-requests-reset",
	    "in a minute", NOW);
	ck_assert_int_eq(info.reset_requests_ms, 0);
	/* A Go duration is OpenAI's form, not Anthropic's. */
	header_rl_init(&info);
	header_rl_add(&info, "anthropic-ratelimit-requests-reset", "6m0s", NOW);
	ck_assert_int_eq(info.reset_requests_ms, -1);
}
END_TEST

/* The tightest family, whatever order its three headers come in. */
static const char *const anthropic_families[][2] = {
	{ "anthropic-ratelimit-tokens-limit", "100000" },
	{ "anthropic-ratelimit-tokens-remaining", "1000" },
	{ "anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:10Z" },
	{ "anthropic-ratelimit-input-tokens-limit", "80000" },
	{ "anthropic-ratelimit-input-tokens-remaining", "5000" },
	{ "anthropic-ratelimit-input-tokens-reset", "2025-08-21T12:40:20Z" },
	{ "anthropic-ratelimit-output-tokens-limit", "16000" },
	{ "anthropic-ratelimit-output-tokens-remaining", "200" },
	{ "anthropic-ratelimit-output-tokens-reset", "2025-08-21T12:40:30Z" },
};

START_TEST(test_anthropic_tightest)
{
	struct header_rl info;
	size_t i, j, k, n = NITEMS(anthropic_families);

	/* Forward, backward and a stride through the nine headers. */
	for (k = 0; k < 3; k++) {
		header_rl_init(&info);
		for (i = 0; i < n; i++) {
			j = k == 0 ? i : k == 1 ? n - 1 - i : (i * 4) % n;
			header_rl_add(&info, anthropic_families[j][0],
			    anthropic_families[j][1], NOW);
		}
		ck_assert_int_eq(info.limit_tokens, 16000);
		ck_assert_int_eq(info.remaining_tokens, 200);
		ck_assert_int_eq(info.reset_tokens_ms, 30000);
	}
}
END_TEST

START_TEST(test_anthropic_exhausted)
{
	static const char *const hv[] = {
		"anthropic-ratelimit-input-tokens-remaining", "0",
		"anthropic-ratelimit-input-tokens-reset",
		"2025-08-21T12:40:20Z",
		"anthropic-ratelimit-output-tokens-remaining", "0",
		"anthropic-ratelimit-output-tokens-reset",
		"2025-08-21T12:40:45Z", "anthropic-ratelimit-tokens-remaining",
		"0", "anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:05Z",
		NULL
	};
	struct header_rl info = feed(hv);

	/* All empty: room again only when the last of them refills. */
	ck_assert_int_eq(info.remaining_tokens, 0);
	ck_assert_int_eq(info.reset_tokens_ms, 45000);
	ck_assert_int_eq(info.limit_tokens, -1);
}
END_TEST

START_TEST(test_anthropic_partial)
{
	struct header_rl info;

	/* A limit with no remaining count yet still shows. */
	header_rl_init(&info);
	header_rl_add(&info, "anthropic-ratelimit-output-tokens-limit", "16000",
	    NOW);
	ck_assert_int_eq(info.limit_tokens, 16000);
	ck_assert_int_eq(info.remaining_tokens, -1);
	header_rl_add(&info, "anthropic-ratelimit-input-tokens-remaining", "7",
	    NOW);
	ck_assert_int_eq(info.remaining_tokens, 7);
	ck_assert_int_eq(info.limit_tokens, -1);
	/* Garbage does not unseat a family. */
	header_rl_add(&info, "anthropic-ratelimit-output-tokens-remaining",
	    "lots", NOW);
	ck_assert_int_eq(info.remaining_tokens, 7);
}
END_TEST

START_TEST(test_retry_after_ms_wins)
{
	static const char *const ms_first[] = { "retry-after-ms", "1500",
		"retry-after", "2", NULL };
	static const char *const ms_last[] = { "Retry-After", "2",
		"Retry-After-Ms", "1500", NULL };
	static const char *const ms_garbage[] = { "retry-after-ms", "soon",
		"retry-after", "2", NULL };
	static const char *const ms_fraction[] = { "retry-after-ms", "250.25",
		NULL };
	static const char *const ms_zero[] = { "retry-after", "9",
		"retry-after-ms", "0", NULL };
	static const char *const date[] = { "retry-after",
		"Thu, 21 Aug 2025 12:40:30 GMT", NULL };
	struct header_rl info;

	info = feed(ms_first);
	ck_assert_int_eq(info.retry_after_ms, 1500);
	info = feed(ms_last);
	ck_assert_int_eq(info.retry_after_ms, 1500);
	info = feed(ms_garbage);
	ck_assert_int_eq(info.retry_after_ms, 2000);
	info = feed(ms_fraction);
	ck_assert_int_eq(info.retry_after_ms, 251);
	info = feed(ms_zero);
	ck_assert_int_eq(info.retry_after_ms, 0);
	info = feed(date);
	ck_assert_int_eq(info.retry_after_ms, 30000);
}
END_TEST

START_TEST(test_should_retry)
{
	struct header_rl info;

	header_rl_init(&info);
	header_rl_add(&info, "x-should-retry", "true", NOW);
	ck_assert_int_eq(info.should_retry, 1);
	header_rl_add(&info, "X-Should-Retry", "false", NOW);
	ck_assert_int_eq(info.should_retry, 0);
	header_rl_add(&info, "x-should-retry", " TRUE ", NOW);
	ck_assert_int_eq(info.should_retry, 1);
	header_rl_add(&info, "x-should-retry", "yes", NOW);
	ck_assert_int_eq(info.should_retry, 1);
	header_rl_init(&info);
	header_rl_add(&info, "x-should-retry", "1", NOW);
	ck_assert_int_eq(info.should_retry, -1);
	header_rl_add(&info, "x-should-retry", "truex", NOW);
	ck_assert_int_eq(info.should_retry, -1);
	header_rl_add(&info, "x-should-retry", "", NOW);
	ck_assert_int_eq(info.should_retry, -1);
}
END_TEST

START_TEST(test_request_id)
{
	struct header_rl info;
	char longid[300];

	header_rl_init(&info);
	header_rl_add(&info, "X-Request-ID", " req_abc ", NOW);
	ck_assert_str_eq(info.request_id, "req_abc");
	header_rl_add(&info, "REQUEST-ID", "req_def", NOW);
	ck_assert_str_eq(info.request_id, "req_def");

	/* Truncated to fit, and nothing unprintable reaches the log. */
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	header_rl_add(&info, "x-request-id", longid, NOW);
	ck_assert_uint_eq(strlen(info.request_id), sizeof info.request_id - 1);
	header_rl_add(&info, "x-request-id", "a\x1b[31mb\nc d\xff", NOW);
	ck_assert_str_eq(info.request_id, "a_[31mb_c_d_");
	/* An empty value does not wipe what was there. */
	header_rl_add(&info, "x-request-id", "  ", NOW);
	ck_assert_str_eq(info.request_id, "a_[31mb_c_d_");

	/* OpenRouter's generation id only when nothing better came. */
	header_rl_init(&info);
	header_rl_add(&info, "X-Generation-Id", "gen-1", NOW);
	ck_assert_str_eq(info.request_id, "gen-1");
	header_rl_add(&info, "x-request-id", "req_1", NOW);
	header_rl_add(&info, "x-generation-id", "gen-2", NOW);
	ck_assert_str_eq(info.request_id, "req_1");
}
END_TEST

START_TEST(test_garbage)
{
	static const char *const names[] = {
		"x-ratelimit-limit-requests",
		"x-ratelimit-remaining-requests",
		"x-ratelimit-reset-requests",
		"x-ratelimit-limit-tokens",
		"x-ratelimit-remaining-tokens",
		"x-ratelimit-reset-tokens",
		"anthropic-ratelimit-requests-limit",
		"anthropic-ratelimit-requests-remaining",
		"anthropic-ratelimit-requests-reset",
		"anthropic-ratelimit-tokens-limit",
		"anthropic-ratelimit-tokens-remaining",
		"anthropic-ratelimit-tokens-reset",
		"anthropic-ratelimit-input-tokens-remaining",
		"anthropic-ratelimit-output-tokens-reset",
		"retry-after",
		"retry-after-ms",
		"x-should-retry",
	};
	static const char *const values[] = {
		"",
		" ",
		"abc",
		"12abc",
		"-5",
		"1.5.",
		"0x10",
		"+3",
		"1 2",
		"99999999999999999999",
		"\xff\xfe",
		"NaN",
		"inf",
		"1e3",
		"2025-13-01T00:00:00Z",
		"Thu, 99 Aug 2025 12:40:30 GMT",
	};
	struct header_rl info;
	size_t i, j;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		for (j = 0; j < sizeof values / sizeof values[0]; j++) {
			header_rl_init(&info);
			header_rl_add(&info, names[i], values[j], NOW);
			assert_unset(&info);
		}
	}

	/* A good value is not lost to garbage after it. */
	header_rl_init(&info);
	header_rl_add(&info, "x-ratelimit-remaining-tokens", "10", NOW);
	header_rl_add(&info, "x-ratelimit-remaining-tokens", "ten", NOW);
	ck_assert_int_eq(info.remaining_tokens, 10);

	/* NULLs and unknown names are ignored. */
	header_rl_init(&info);
	header_rl_add(&info, NULL, "1", NOW);
	header_rl_add(&info, "retry-after", NULL, NOW);
	header_rl_add(&info, "x-ratelimit-limit", "5", NOW);
	header_rl_add(&info, "retry-after-seconds", "5", NOW);
	header_rl_add(&info, "", "5", NOW);
	assert_unset(&info);
	ck_assert_int_eq(header_retry_after_ms(NULL, NOW), -1);
	ck_assert_int_eq(header_rfc3339(NULL), -1);
}
END_TEST

START_TEST(test_counts)
{
	struct header_rl info;

	header_rl_init(&info);
	header_rl_add(&info, "x-ratelimit-limit-requests", " 10000 ", NOW);
	ck_assert_int_eq(info.limit_requests, 10000);
	header_rl_add(&info, "x-ratelimit-limit-requests", "0", NOW);
	ck_assert_int_eq(info.limit_requests, 0);
	header_rl_add(&info, "x-ratelimit-limit-requests",
	    "9223372036854775807", NOW);
	ck_assert_int_eq(info.limit_requests, INT64_MAX);
	/* One more overflows: garbage, so the field keeps its value. */
	header_rl_add(&info, "x-ratelimit-limit-requests",
	    "9223372036854775808", NOW);
	ck_assert_int_eq(info.limit_requests, INT64_MAX);
}
END_TEST

static Suite *
header_suite(void)
{
	Suite *s = suite_create("header");
	TCase *tc;

	tc = tcase_create("parsers");
	tcase_add_test(tc, test_init);
	tcase_add_loop_test(tc, test_duration, 0, NITEMS(durations));
	tcase_add_test(tc, test_duration_null);
	tcase_add_loop_test(tc, test_retry_after, 0, NITEMS(retry_afters));
	tcase_add_test(tc, test_leap_day);
	tcase_add_loop_test(tc, test_rfc3339, 0, NITEMS(rfc3339s));
	suite_add_tcase(s, tc);

	tc = tcase_create("header_rl");
	tcase_add_test(tc, test_openai);
	tcase_add_test(tc, test_groq_429);
	tcase_add_test(tc, test_anthropic);
	tcase_add_test(tc, test_anthropic_reset_forms);
	tcase_add_test(tc, test_anthropic_tightest);
	tcase_add_test(tc, test_anthropic_exhausted);
	tcase_add_test(tc, test_anthropic_partial);
	tcase_add_test(tc, test_retry_after_ms_wins);
	tcase_add_test(tc, test_should_retry);
	tcase_add_test(tc, test_request_id);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_counts);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(header_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
