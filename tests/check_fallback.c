/*
 * check_fallback.c: fallback conditions end to end. The real llmgated
 * calls tests/fakeprov; the calls go through the real CLI (--fallback-on,
 * --reject, --json) or libllmgate (streams). Each reply condition turns a
 * reply down and moves on to the next step, reported as an attempt of
 * class rejected; fallback_on narrows which errors move on; a route's
 * steps carry their own.
 *
 * One daemon and one fakeprov serve the whole suite, so every test uses
 * model names of its own (fakeprov counts per model name).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "harness.h"

#define TEST_KEY "test-key"

static struct daemon d;
static pid_t fp_pid;
static int fp_port;
static int fixture_failed;

static void
setup(void)
{
	char *conf;

	fp_port = h_fakeprov_start(&fp_pid);
	conf = h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\";\n"
	    "    api_key = \"%2$s\"; },\n"
	    "  { name = \"an\"; type = \"anthropic\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\";\n"
	    "    api_key = \"%2$s\"; }\n"
	    ");\n"
	    "routes = (\n"
	    "  { name = \"default\"; targets = [ \"oa/plain\" ]; },\n"
	    /* Step 1 moves on only on rate_limited, step 2 on anything. */
	    "  { name = \"narrow\"; targets = (\n"
	    "      { target = \"oa/route-narrow+status=500\";\n"
	    "        fallback_on = [ \"rate_limited\" ]; },\n"
	    "      \"oa/route-narrow-next\" ); },\n"
	    /* Step 1 turns down a reply cut at max_tokens. */
	    "  { name = \"strict\"; targets = (\n"
	    "      { target = \"oa/route-strict+length\";\n"
	    "        reject = [ \"length\", \"match:^nothing$\" ]; },\n"
	    "      \"oa/route-strict-next\" ); }\n"
	    ");\n" H_CONF_FAST_RETRY,
	    fp_port, TEST_KEY);
	h_daemon_start(&d, conf);
	free(conf);
}

static void
teardown(void)
{
	h_fixture_stop("check_fallback", &d, &fp_pid, &fixture_failed);
}

static const char *
jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "(none)";
}

static const json_t *
attempt(const json_t *j, size_t i)
{
	return json_array_get(json_object_get(j, "attempts"), i);
}

static size_t
nattempts(const json_t *j)
{
	return json_array_size(json_object_get(j, "attempts"));
}

static json_t *
out_json(const struct run *r)
{
	json_t *j = json_loads(r->out, 0, NULL);

	ck_assert_msg(j != NULL, "no JSON on stdout: %s / %s", r->out, r->err);
	return j;
}

/*
 * A call to first then second with one --reject: the first reply is
 * turned down (class rejected, message naming cond), the second answers.
 */
static void
reject_moves_on(const char *first, const char *second, const char *cond,
    const char *want_msg)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "call", "--json", "--reject", cond, "-m", first,
	    "-m", second, "hello there", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s %s", r.status, r.out, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "text"), "echo: hello there");
	ck_assert_str_eq(jstr(j, "target"), second);
	/* Not retried at the first target: one attempt there, then on. */
	ck_assert_uint_eq(nattempts(j), 2);
	ck_assert_str_eq(jstr(attempt(j, 0), "target"), first);
	ck_assert_str_eq(jstr(attempt(j, 0), "class"), "rejected");
	ck_assert_msg(strstr(jstr(attempt(j, 0), "message"), want_msg) != NULL,
	    "message '%s' lacks '%s'", jstr(attempt(j, 0), "message"),
	    want_msg);
	ck_assert_str_eq(jstr(attempt(j, 1), "class"), "ok");
	ck_assert_int_eq(h_fakeprov_count(fp_port, strchr(first, '/') + 1,
	                     NULL),
	    1);
	json_decref(j);
	h_run_free(&r);
}

START_TEST(test_reject_length)
{
	struct run r;
	json_t *j;

	/* Without the condition, a reply cut at max_tokens is the answer. */
	h_cli(&r, &d, NULL, "call", "--json", "-m", "oa/len0+length", "-m",
	    "oa/len0-next", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/len0+length");
	ck_assert_str_eq(jstr(j, "finish_reason"), "length");
	json_decref(j);
	h_run_free(&r);

	reject_moves_on("oa/len1+length", "oa/len1-next", "length",
	    "rejected (length)");
	reject_moves_on("an/len2+length", "an/len2-next", "length",
	    "rejected (length)");
}
END_TEST

START_TEST(test_reject_content_filter)
{
	struct run r;
	json_t *j;

	/* OpenAI's finish content_filter is the filter, not a refusal. */
	reject_moves_on("oa/cf1+filter", "oa/cf1-next", "content_filter",
	    "rejected (content_filter)");
	/*
	 * Listed as a condition, it moves on even where fallback_on would
	 * not let the class content_filter do so.
	 */
	h_cli(&r, &d, NULL, "call", "--json", "--fallback-on", "rate_limited",
	    "--reject", "content_filter", "-m", "oa/cf2+filter", "-m",
	    "oa/cf2-next", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/cf2-next");
	json_decref(j);
	h_run_free(&r);
	/* A refusal is not the filter: refusal does not catch it. */
	h_cli(&r, &d, NULL, "call", "--json", "--fallback-on", "rate_limited",
	    "--reject", "refusal", "-m", "oa/cf3+filter", "-m", "oa/cf3-next",
	    "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = out_json(&r);
	ck_assert_str_eq(jstr(json_object_get(j, "error"), "class"),
	    "content_filter");
	ck_assert_int_eq(h_fakeprov_count(fp_port, "cf3-next", NULL), 0);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_reject_refusal)
{
	struct run r;
	json_t *j;

	/* Anthropic's stop_reason refusal is the model's refusal. */
	reject_moves_on("an/ref1+filter", "an/ref1-next", "refusal",
	    "rejected (refusal)");
	/* content_filter alone does not catch a refusal. */
	h_cli(&r, &d, NULL, "call", "--json", "--fallback-on", "rate_limited",
	    "--reject", "content_filter", "-m", "an/ref2+filter", "-m",
	    "an/ref2-next", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = out_json(&r);
	ck_assert_str_eq(jstr(json_object_get(j, "error"), "class"),
	    "content_filter");
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_reject_empty)
{
	struct run r;
	json_t *j;

	reject_moves_on("oa/empty1+text=", "oa/empty1-next", "empty",
	    "rejected (empty)");
	reject_moves_on("an/empty2+text=", "an/empty2-next", "empty",
	    "rejected (empty)");
	/* A reply with text passes. */
	h_cli(&r, &d, NULL, "call", "--json", "--reject", "empty", "-m",
	    "oa/empty3", "-m", "oa/empty3-next", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/empty3");
	ck_assert_uint_eq(nattempts(j), 1);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_reject_match)
{
	struct run r;
	json_t *j;

	reject_moves_on("oa/match1+text=sorry,%20no", "oa/match1-next",
	    "match:^(?i)SORRY", "rejected (match)");
	/* A pattern that does not match lets the reply through. */
	h_cli(&r, &d, NULL, "call", "--json", "--reject", "match:^sorry", "-m",
	    "oa/match2", "-m", "oa/match2-next", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "text"), "echo: hi");
	ck_assert_str_eq(jstr(j, "target"), "oa/match2");
	json_decref(j);
	h_run_free(&r);
}
END_TEST

/* The last step's reply turned down: the call fails with rejected. */
START_TEST(test_reject_last_step_fails)
{
	struct run r;
	json_t *j, *e;

	h_cli(&r, &d, NULL, "call", "--json", "--reject", "length", "-m",
	    "oa/last1+length", "-m", "an/last1+length", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = out_json(&r);
	e = json_object_get(j, "error");
	ck_assert_str_eq(jstr(e, "class"), "rejected");
	ck_assert_msg(strstr(jstr(e, "message"), "length") != NULL,
	    "message: %s", jstr(e, "message"));
	ck_assert_uint_eq(nattempts(j), 2);
	ck_assert_str_eq(jstr(attempt(j, 0), "class"), "rejected");
	ck_assert_str_eq(jstr(attempt(j, 1), "class"), "rejected");
	ck_assert_str_eq(jstr(attempt(j, 1), "target"), "an/last1+length");
	/* Both replies were produced, so both are billed. */
	ck_assert_int_gt(json_integer_value(
	                     json_object_get(json_object_get(j, "usage_total"),
	                         "output_tokens")),
	    0);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_fallback_on_narrows)
{
	struct run r;
	json_t *j;

	/* Default: a server_error falls back. */
	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "1", "-m",
	    "oa/narrow0+status=500", "-m", "oa/narrow0-next", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/narrow0-next");
	json_decref(j);
	h_run_free(&r);

	/* fallback_on rate_limited only: the server_error ends the call. */
	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "1",
	    "--fallback-on", "rate_limited", "-m", "oa/narrow1+status=500",
	    "-m", "oa/narrow1-next", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = out_json(&r);
	ck_assert_str_eq(jstr(json_object_get(j, "error"), "class"),
	    "server_error");
	ck_assert_uint_eq(nattempts(j), 1);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "narrow1-next", NULL), 0);
	json_decref(j);
	h_run_free(&r);

	/* ... and a rate_limited one moves on. */
	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "1",
	    "--fallback-on", "rate_limited,overloaded", "-m",
	    "oa/narrow2+status=429", "-m", "oa/narrow2-next", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/narrow2-next");
	ck_assert_str_eq(jstr(attempt(j, 0), "class"), "rate_limited");
	json_decref(j);
	h_run_free(&r);

	/* A class the default does not move on for, listed, does. */
	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "1",
	    "--fallback-on", "bad_request", "-m", "oa/narrow3+status=400", "-m",
	    "oa/narrow3-next", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/narrow3-next");
	json_decref(j);
	h_run_free(&r);
}
END_TEST

/*
 * A 429 whose Retry-After is longer than max_wait_ms (60 s here) is not
 * waited out at that target, as a queue wait that long is not: the call
 * falls back at once, or, at the last target, ends rate_limited.
 */
START_TEST(test_retry_after_past_max_wait)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "3", "-m",
	    "oa/ralong+status=429+retry_after=90", "-m", "oa/ralong-next", "hi",
	    NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s %s", r.status, r.out, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/ralong-next");
	ck_assert_uint_eq(nattempts(j), 2);
	ck_assert_str_eq(jstr(attempt(j, 0), "class"), "rate_limited");
	ck_assert_int_eq(h_fakeprov_count(fp_port,
	                     "ralong+status=429+retry_after=90", NULL),
	    1);
	json_decref(j);
	h_run_free(&r);

	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "3", "-m",
	    "oa/ralast+status=429+retry_after=90", "hi", NULL);
	ck_assert_int_ne(r.status, 0);
	j = out_json(&r);
	ck_assert_str_eq(jstr(json_object_get(j, "error"), "class"),
	    "rate_limited");
	ck_assert_uint_eq(nattempts(j), 1);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

/* A route's steps carry their own fallback_on and reject. */
START_TEST(test_route_steps)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "call", "--json", "-r", "narrow", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = out_json(&r);
	ck_assert_str_eq(jstr(json_object_get(j, "error"), "class"),
	    "server_error");
	/* Retried at its step (attempts = 2), never moved on. */
	ck_assert_uint_eq(nattempts(j), 2);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "route-narrow-next", NULL),
	    0);
	json_decref(j);
	h_run_free(&r);

	/* The call's own fallback_on does not override the step's. */
	h_cli(&r, &d, NULL, "call", "--json", "--fallback-on", "server_error",
	    "-r", "narrow", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	h_run_free(&r);

	h_cli(&r, &d, NULL, "call", "--json", "-r", "strict", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = out_json(&r);
	ck_assert_str_eq(jstr(j, "target"), "oa/route-strict-next");
	ck_assert_str_eq(jstr(attempt(j, 0), "class"), "rejected");
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_bad_conditions)
{
	struct run r;

	h_cli(&r, &d, NULL, "call", "--reject", "lenght", "-m", "oa/bad1", "hi",
	    NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "unknown condition 'lenght'") != NULL, "%s",
	    r.err);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "--reject", "match:(", "-m", "oa/bad1",
	    "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "not a valid regular expression") != NULL,
	    "%s", r.err);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "--fallback-on", "server_eror", "-m",
	    "oa/bad1", "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "unknown error class 'server_eror'") !=
	        NULL,
	    "%s", r.err);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "--fallback-on", "ok", "-m", "oa/bad1",
	    "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	h_run_free(&r);
	/* None of these reached the provider. */
	ck_assert_int_eq(h_fakeprov_count(fp_port, "bad1", NULL), 0);
}
END_TEST

struct streamed {
	char text[1024];
	size_t len;
	int chunks;
	int done;
	struct llmgate_result *res;
};

static void
on_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct streamed *s = arg;

	ck_assert_msg(!ch->reset,
	    "a reset: text was relayed before it "
	    "passed");
	ck_assert_uint_lt(s->len + ch->len, sizeof s->text);
	memcpy(s->text + s->len, ch->text, ch->len);
	s->len += ch->len;
	s->chunks++;
}

static void
on_done(struct llmgate_result *res, void *arg)
{
	struct streamed *s = arg;

	s->res = res;
	s->done = 1;
}

/*
 * A stream with reply conditions: its text is held until the reply
 * passed them, so the caller sees only the reply that answers.
 */
START_TEST(test_stream_held)
{
	struct llmgate *g = h_connect(&d, "fallback-stream");
	struct llmgate_request *req;
	struct streamed s;

	memset(&s, 0, sizeof s);
	req = h_request("hi there", "oa/stream1+text=a%20forbidden%20word",
	    "an/stream1-next", NULL);
	ck_assert_int_eq(llmgate_request_set_stream(req, 1), 0);
	ck_assert_int_eq(llmgate_request_add_reject(req, "match:forbidden"), 0);
	ck_assert_uint_ne(llmgate_submit(g, req, on_chunk, on_done, &s), 0);
	h_drive(g, &s.done);
	ck_assert_msg(s.res->cls == LLMGATE_OK, "%s: %s",
	    llmgate_class_name(s.res->cls), s.res->message);
	ck_assert_str_eq(s.res->target, "an/stream1-next");
	s.text[s.len] = '\0';
	ck_assert_str_eq(s.text, "echo: hi there");
	ck_assert_int_ge(s.chunks, 1);
	ck_assert_uint_eq(s.res->nattempts, 2);
	ck_assert_int_eq(s.res->attempts[0].cls, LLMGATE_REJECTED);
	llmgate_result_free(s.res);
	h_request_free(req);
	llmgate_close(g);
}
END_TEST

static Suite *
fallback_suite(void)
{
	Suite *s = suite_create("fallback");
	TCase *tc = tcase_create("fallback");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reject_length);
	tcase_add_test(tc, test_reject_content_filter);
	tcase_add_test(tc, test_reject_refusal);
	tcase_add_test(tc, test_reject_empty);
	tcase_add_test(tc, test_reject_match);
	tcase_add_test(tc, test_reject_last_step_fails);
	tcase_add_test(tc, test_fallback_on_narrows);
	tcase_add_test(tc, test_retry_after_past_max_wait);
	tcase_add_test(tc, test_route_steps);
	tcase_add_test(tc, test_bad_conditions);
	tcase_add_test(tc, test_stream_held);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return h_fixture_main("check_fallback", fallback_suite(), &d, &fp_pid,
	    &fixture_failed);
}
