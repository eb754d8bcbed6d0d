/*
 * check_sse.c: the event-stream parser. Every recorded stream must give
 * the same events whether libcurl hands it over whole, a byte at a time or
 * cut in two anywhere, since real fragment boundaries fall anywhere.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

struct rec_event {
	char *event; /* NULL when the stream gave none */
	char *data;
	size_t len;
	int error_field;
};

struct rec {
	struct rec_event *ev;
	size_t n;
	int stop_at; /* return stop_rc on this event (1-based) */
	int stop_rc;
};

struct want {
	const char *event;
	const char *data;
	size_t len;
	int error_field;
};

struct stream {
	const char *name;
	const char *bytes;
	size_t len;
	const struct want *want;
	size_t nwant;
	uint64_t lines;
};

#define W(ev, d) \
	{ \
		ev, d, sizeof(d) - 1, 0 \
	}
#define WERR(d) \
	{ \
		NULL, d, sizeof(d) - 1, 1 \
	}
#define NITEMS(a) (sizeof(a) / sizeof(a)[0])
#define STREAM(name, s, w, lines) \
	{ \
		name, s, sizeof(s) - 1, w, NITEMS(w), lines \
	}

static int
rec_cb(const struct sse_event *ev, void *arg)
{
	struct rec *r = arg;
	struct rec_event *re;

	/* The data is NUL-terminated at len, whatever it holds. */
	ck_assert_int_eq(ev->data[ev->len], '\0');
	r->ev = realloc(r->ev, (r->n + 1) * sizeof *r->ev);
	ck_assert_ptr_nonnull(r->ev);
	re = &r->ev[r->n++];
	re->event = ev->event != NULL ? strdup(ev->event) : NULL;
	re->data = malloc(ev->len + 1);
	ck_assert_ptr_nonnull(re->data);
	memcpy(re->data, ev->data, ev->len + 1);
	re->len = ev->len;
	re->error_field = ev->error_field;
	if (r->stop_at != 0 && (int)r->n == r->stop_at)
		return r->stop_rc;
	return 0;
}

static void
rec_free(struct rec *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->ev[i].event);
		free(r->ev[i].data);
	}
	free(r->ev);
	memset(r, 0, sizeof *r);
}

/* Feed s in pieces cut at the given offsets (ascending, may be empty). */
static void
feed_cuts(struct rec *r, const char *s, size_t len, const size_t *cuts,
    size_t ncuts, uint64_t *lines)
{
	struct sse sse;
	size_t i, at = 0, to;

	memset(r, 0, sizeof *r);
	sse_init(&sse, rec_cb, r);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		ck_assert_int_eq(sse_feed(&sse, s + at, to - at), 0);
		at = to;
	}
	ck_assert_uint_eq(sse.events, r->n);
	*lines = sse.activity;
	sse_free(&sse);
}

static void
feed_bytes(struct rec *r, const char *s, size_t len, uint64_t *lines)
{
	struct sse sse;
	size_t i;

	memset(r, 0, sizeof *r);
	sse_init(&sse, rec_cb, r);
	for (i = 0; i < len; i++)
		ck_assert_int_eq(sse_feed(&sse, s + i, 1), 0);
	*lines = sse.activity;
	sse_free(&sse);
}

static void
assert_want(const struct rec *r, const struct stream *st)
{
	size_t i;

	ck_assert_msg(r->n == st->nwant, "%s: %zu events, want %zu", st->name,
	    r->n, st->nwant);
	for (i = 0; i < r->n; i++) {
		if (st->want[i].event == NULL)
			ck_assert_msg(r->ev[i].event == NULL,
			    "%s: event %zu named %s", st->name, i,
			    r->ev[i].event);
		else
			ck_assert_msg(r->ev[i].event != NULL &&
			        strcmp(r->ev[i].event, st->want[i].event) == 0,
			    "%s: event %zu name %s, want %s", st->name, i,
			    r->ev[i].event ? r->ev[i].event : "(null)",
			    st->want[i].event);
		ck_assert_msg(r->ev[i].len == st->want[i].len &&
		        memcmp(r->ev[i].data, st->want[i].data, r->ev[i].len) ==
		            0,
		    "%s: event %zu data \"%s\", want \"%s\"", st->name, i,
		    r->ev[i].data, st->want[i].data);
		ck_assert_msg(r->ev[i].error_field == st->want[i].error_field,
		    "%s: event %zu error_field %d", st->name, i,
		    r->ev[i].error_field);
	}
}

/* An OpenAI stream: a text answer with the usage chunk. */
#define OA_HEAD \
	"{\"id\":\"c1\",\"object\":\"chat.completion.chunk\"," \
	"\"created\":1,\"model\":\"m\","
#define OA1 \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":" \
	        "\"assistant\",\"content\":\"\",\"refusal\":null}," \
	        "\"finish_reason\":null}]}"
#define OA2 \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":" \
	        "\"Os\"},\"finish_reason\":null}]}"
#define OA3 \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":" \
	        "\"lo\"},\"finish_reason\":null}]}"
#define OA4 \
	OA_HEAD "\"choices\":[{\"index\":0,\"delta\":{}," \
	        "\"finish_reason\":\"stop\"}]}"
#define OA5 \
	OA_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":9," \
	        "\"completion_tokens\":2,\"total_tokens\":11}}"
static const struct want want_openai[] = { W(NULL, OA1), W(NULL, OA2),
	W(NULL, OA3), W(NULL, OA4), W(NULL, OA5), W(NULL, "[DONE]") };

/* An Anthropic stream, with pings where the API puts them. */
#define AN1 \
	"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01X\"," \
	"\"type\":\"message\",\"role\":\"assistant\",\"content\":[]," \
	"\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null," \
	"\"stop_sequence\":null,\"usage\":{\"input_tokens\":25," \
	"\"output_tokens\":1}}}"
#define AN2 \
	"{\"type\":\"content_block_start\",\"index\":0," \
	"\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"
#define ANP "{\"type\": \"ping\"}"
#define AN3 \
	"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":" \
	"{\"type\":\"text_delta\",\"text\":\"Oslo\"}}"
#define AN4 "{\"type\":\"content_block_stop\",\"index\":0}"
#define AN5 \
	"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":" \
	"\"end_turn\",\"stop_sequence\":null},\"usage\":" \
	"{\"output_tokens\":31}}"
#define AN6 "{\"type\":\"message_stop\"}"
static const struct want want_anthropic[] = { W("message_start", AN1),
	W("content_block_start", AN2), W("ping", ANP),
	W("content_block_delta", AN3), W("content_block_stop", AN4),
	W("message_delta", AN5), W("ping", ANP), W("message_stop", AN6) };

/* Gemini's alt=sse separates events with CRLF pairs. */
#define GE1 \
	"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":" \
	"[{\"text\":\"Os\"}]}}],\"usageMetadata\":{\"promptTokenCount\":9," \
	"\"totalTokenCount\":9},\"modelVersion\":\"gemini-2.5-flash\"," \
	"\"responseId\":\"r1\"}"
#define GE2 \
	"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":" \
	"[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\"}]," \
	"\"usageMetadata\":{\"promptTokenCount\":9," \
	"\"candidatesTokenCount\":2,\"totalTokenCount\":11}," \
	"\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r1\"}"
static const struct want want_gemini[] = { W(NULL, GE1), W(NULL, GE2) };

static const struct want want_comments[] = { W(NULL, "{\"a\":1}") };

static const struct want want_newlines[] = { W(NULL, "a\nb"), W(NULL, "c"),
	W(NULL, "d"), W(NULL, "e"), W(NULL, "f"), W(NULL, "g"), W(NULL, "h") };

static const struct want want_multiline[] = { W(NULL, "line1\nline2\n\nline4"),
	W(NULL, ""), W(NULL, ""), W(NULL, "\n") };

static const struct want want_nospace[] = { W(NULL, "x"), W(NULL, " two"),
	W("e", "y"), W(NULL, "a: b") };

static const struct want want_nodata[] = { W(NULL, "y"), W("b", "z"),
	W("x", "a"), W(NULL, "b") };

#define LL_ERR "{\"code\":500,\"message\":\"boom\",\"type\":\"server_error\"}"
static const struct want want_llama[] = { W(NULL, "{\"choices\":[]}"),
	WERR(LL_ERR), W(NULL, "[DONE]"), WERR("x"), W("held", "p"), WERR("") };

static const struct want want_misc[] = { W(NULL, "bom"), W(NULL, "a\0b"),
	W(NULL, "\xc3\x98slo \xe2\x9c\x93"), W(NULL, "tail") };

static const struct want want_eof[] = { W(NULL, "done") };

static const struct stream streams[] = {
	STREAM("openai",
	    "data: " OA1 "\n\n"
	    "data: " OA2 "\n\n"
	    "data: " OA3 "\n\n"
	    "data: " OA4 "\n\n"
	    "data: " OA5 "\n\n"
	    "data: [DONE]\n\n",
	    want_openai, 12),
	STREAM("anthropic",
	    "event: message_start\ndata: " AN1 "\n\n"
	    "event: content_block_start\ndata: " AN2 "\n\n"
	    "event: ping\ndata: " ANP "\n\n"
	    "event: content_block_delta\ndata: " AN3 "\n\n"
	    "event: content_block_stop\ndata: " AN4 "\n\n"
	    "event: message_delta\ndata: " AN5 "\n\n"
	    "event: ping\ndata: " ANP "\n\n"
	    "event: message_stop\ndata: " AN6 "\n\n",
	    want_anthropic, 24),
	STREAM("gemini",
	    "data: " GE1 "\r\n\r\n"
	    "data: " GE2 "\r\n\r\n",
	    want_gemini, 4),
	STREAM("comments",
	    ": OPENROUTER PROCESSING\n\n: keep-alive\n\n"
	    "data: {\"a\":1}\n: inside an event\n\n:\n\n",
	    want_comments, 9),
	STREAM("newlines",
	    "data: a\rdata: b\r\r" /* lone CR */
	    "data: c\r\n\r\n"      /* CRLF */
	    "data: d\n\r\n"        /* LF, then CRLF */
	    "data: e\r\n\n"        /* CRLF, then LF */
	    "data: f\r\r\n"        /* CR, then CRLF */
	    "data: g\n\r\r"        /* LF, two blank lines */
	    "data: h\r\n\r\r\n",   /* CRLF, CR, CRLF */
	    want_newlines, 17),
	STREAM("multiline",
	    "data: line1\ndata: line2\ndata:\ndata: line4\n\n"
	    "data\n\n" /* no colon: empty value */
	    "data:\n\n"
	    "data\ndata\n\n",
	    want_multiline, 12),
	STREAM("nospace",
	    "data:x\n\n"
	    "data:  two\n\n" /* only one space goes */
	    "event:e\ndata:y\n\n"
	    "data: a: b\n\n",
	    want_nospace, 9),
	STREAM("nodata",
	    "event: foo\n\n" /* no data: nothing */
	    "event: bar\nid: 7\nretry: 100\n\n"
	    "data: y\n\n"
	    "event: a\nevent: b\ndata: z\n\n"
	    "data: a\nevent: x\n\n"
	    "data: b\n\n",
	    want_nodata, 17),
	STREAM("llama",
	    "data: {\"choices\":[]}\n\n"
	    "error: " LL_ERR "\n\n"
	    "data: [DONE]\n\n"
	    "event: held\ndata: p\nerror:x\n\n" /* does not wait */
	    "error\n",
	    want_llama, 11),
	STREAM("misc",
	    "\xef\xbb\xbf"
	    "data: bom\n\n"
	    "foo: bar\nDATA: upper\nData: mixed\n\n"
	    "data: a\0b\n\n"
	    "data: \xc3\x98slo \xe2\x9c\x93\n\n"
	    "data: tail\n\n",
	    want_misc, 12),
	STREAM("eof", "data: done\n\ndata: half\ndata: more", want_eof, 3),
};

START_TEST(test_stream_splits)
{
	const struct stream *st = &streams[_i];
	struct rec whole, bytes, two;
	uint64_t lines, l;
	size_t cut;

	feed_cuts(&whole, st->bytes, st->len, NULL, 0, &lines);
	assert_want(&whole, st);
	ck_assert_msg(lines == st->lines, "%s: %llu lines, want %llu", st->name,
	    (unsigned long long)lines, (unsigned long long)st->lines);

	feed_bytes(&bytes, st->bytes, st->len, &l);
	assert_want(&bytes, st);
	ck_assert_uint_eq(l, lines);
	rec_free(&bytes);

	for (cut = 0; cut <= st->len; cut++) {
		feed_cuts(&two, st->bytes, st->len, &cut, 1, &l);
		ck_assert_msg(two.n == whole.n, "%s: cut at %zu: %zu events",
		    st->name, cut, two.n);
		assert_want(&two, st);
		ck_assert_uint_eq(l, lines);
		rec_free(&two);
	}
	rec_free(&whole);
}
END_TEST

/* Three pieces too, for a CRLF split right after a piece of its own. */
START_TEST(test_stream_three_pieces)
{
	const struct stream *st = &streams[_i];
	struct rec r;
	uint64_t l;
	size_t cuts[2];

	for (cuts[0] = 0; cuts[0] <= st->len; cuts[0]++) {
		for (cuts[1] = cuts[0];
		     cuts[1] <= st->len && cuts[1] <= cuts[0] + 3; cuts[1]++) {
			feed_cuts(&r, st->bytes, st->len, cuts, 2, &l);
			assert_want(&r, st);
			ck_assert_uint_eq(l, st->lines);
			rec_free(&r);
		}
	}
}
END_TEST

START_TEST(test_activity)
{
	struct sse sse;
	struct rec r;
	const char *s = ": a\n: b\n\ndata: x\n\n: c";

	memset(&r, 0, sizeof r);
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(sse_feed(&sse, s, strlen(s)), 0);
	/* The unfinished ": c" is no line yet. */
	ck_assert_uint_eq(sse.activity, 5);
	ck_assert_uint_eq(sse.events, 1);
	ck_assert_int_eq(sse_feed(&sse, "\n", 1), 0);
	ck_assert_uint_eq(sse.activity, 6);
	ck_assert_uint_eq(sse.events, 1);
	sse_free(&sse);
	rec_free(&r);
}
END_TEST

static const char stop_stream[] = "data: one\n\ndata: two\n\ndata: three\n\n";

START_TEST(test_stop_whole)
{
	struct sse sse;
	struct rec r;

	memset(&r, 0, sizeof r);
	r.stop_at = 2;
	r.stop_rc = 7;
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(sse_feed(&sse, stop_stream, sizeof stop_stream - 1),
	    7);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_str_eq(r.ev[1].data, "two");
	sse_free(&sse);
	rec_free(&r);
}
END_TEST

START_TEST(test_stop_bytes)
{
	struct sse sse;
	struct rec r;
	size_t i;
	int rc = 0;

	memset(&r, 0, sizeof r);
	r.stop_at = 2;
	r.stop_rc = -1;
	sse_init(&sse, rec_cb, &r);
	for (i = 0; i < sizeof stop_stream - 1; i++) {
		if ((rc = sse_feed(&sse, stop_stream + i, 1)) != 0)
			break;
	}
	ck_assert_int_eq(rc, -1);
	/* Stopped by the blank line that ends "two". */
	ck_assert_uint_eq(i, strlen("data: one\n\ndata: two\n\n") - 1);
	ck_assert_uint_eq(r.n, 2);
	sse_free(&sse);
	rec_free(&r);
}
END_TEST

START_TEST(test_stop_error_field)
{
	struct sse sse;
	struct rec r;
	const char *s = "error: {}\n\ndata: [DONE]\n\n";

	memset(&r, 0, sizeof r);
	r.stop_at = 1;
	r.stop_rc = 3;
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(sse_feed(&sse, s, strlen(s)), 3);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.ev[0].error_field, 1);
	sse_free(&sse);
	rec_free(&r);
}
END_TEST

/* A line of n bytes "data: xxx…", terminated by "\n\n" if term. */
static char *
long_line(size_t n, int term, size_t *len)
{
	char *s;

	s = malloc(n + 2);
	ck_assert_ptr_nonnull(s);
	memcpy(s, "data: ", 6);
	memset(s + 6, 'x', n - 6);
	memcpy(s + n, "\n\n", 2);
	*len = n + (term ? 2 : 0);
	return s;
}

static int
feed_pieces(struct sse *sse, const char *s, size_t len, size_t piece)
{
	size_t at, n;
	int rc;

	for (at = 0; at < len; at += n) {
		n = len - at < piece ? len - at : piece;
		if ((rc = sse_feed(sse, s + at, n)) != 0)
			return rc;
	}
	return 0;
}

START_TEST(test_line_at_limit)
{
	struct sse sse;
	struct rec r;
	char *s;
	size_t len;

	s = long_line(SSE_MAX_EVENT, 1, &len);
	memset(&r, 0, sizeof r);
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(sse_feed(&sse, s, len), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_uint_eq(r.ev[0].len, SSE_MAX_EVENT - 6);
	rec_free(&r);
	ck_assert_int_eq(feed_pieces(&sse, s, len, 4096), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_uint_eq(r.ev[0].len, SSE_MAX_EVENT - 6);
	sse_free(&sse);
	rec_free(&r);
	free(s);
}
END_TEST

START_TEST(test_line_too_long)
{
	struct sse sse;
	struct rec r;
	char *s;
	size_t len;

	/* Complete in one feed. */
	s = long_line(SSE_MAX_EVENT + 1, 1, &len);
	memset(&r, 0, sizeof r);
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(sse_feed(&sse, s, len), SSE_TOO_LONG);
	ck_assert_uint_eq(r.n, 0);
	sse_free(&sse);

	/* Built up over many feeds, never terminated. */
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(feed_pieces(&sse, s, SSE_MAX_EVENT + 1, 4096),
	    SSE_TOO_LONG);
	ck_assert_uint_eq(r.n, 0);
	sse_free(&sse);
	free(s);
}
END_TEST

START_TEST(test_event_too_long)
{
	struct sse sse;
	struct rec r;
	char *s;
	size_t len;

	/* Each line fits; together they do not. */
	s = long_line(SSE_MAX_EVENT / 2 + 16, 0, &len);
	memset(&r, 0, sizeof r);
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(sse_feed(&sse, s, len + 1), 0);
	ck_assert_int_eq(sse_feed(&sse, s, len + 1), SSE_TOO_LONG);
	ck_assert_uint_eq(r.n, 0);
	sse_free(&sse);
	free(s);
}
END_TEST

/*
 * A long line a byte at a time: each byte must be appended, not the
 * buffered line rescanned (that would be quadratic and hit the timeout).
 */
START_TEST(test_long_line_bytes)
{
	struct sse sse;
	struct rec r;
	char *s;
	size_t len, i;

	s = long_line(1024 * 1024, 1, &len);
	memset(&r, 0, sizeof r);
	sse_init(&sse, rec_cb, &r);
	for (i = 0; i < len; i++)
		ck_assert_int_eq(sse_feed(&sse, s + i, 1), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_uint_eq(r.ev[0].len, 1024 * 1024 - 6);
	ck_assert_int_eq(memcmp(r.ev[0].data, s + 6, r.ev[0].len), 0);
	sse_free(&sse);
	rec_free(&r);
	free(s);
}
END_TEST

/* The parser can be freed with an unfinished line and event in it. */
START_TEST(test_free_midway)
{
	struct sse sse;
	struct rec r;
	const char *s = "event: e\ndata: a\ndata: b";

	memset(&r, 0, sizeof r);
	sse_init(&sse, rec_cb, &r);
	ck_assert_int_eq(sse_feed(&sse, s, strlen(s)), 0);
	ck_assert_uint_eq(r.n, 0);
	sse_free(&sse);
	sse_free(&sse); /* twice is harmless */
	ck_assert_int_eq(sse_feed(&sse, "", 0), 0);
	sse_free(&sse);
}
END_TEST

static Suite *
sse_suite(void)
{
	Suite *s = suite_create("sse");
	TCase *tc;

	tc = tcase_create("streams");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_stream_splits, 0, NITEMS(streams));
	tcase_add_loop_test(tc, test_stream_three_pieces, 0, NITEMS(streams));
	suite_add_tcase(s, tc);

	tc = tcase_create("parser");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_activity);
	tcase_add_test(tc, test_stop_whole);
	tcase_add_test(tc, test_stop_bytes);
	tcase_add_test(tc, test_stop_error_field);
	tcase_add_test(tc, test_line_at_limit);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_event_too_long);
	tcase_add_test(tc, test_long_line_bytes);
	tcase_add_test(tc, test_free_midway);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(sse_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
