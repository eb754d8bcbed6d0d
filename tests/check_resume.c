/*
 * check_resume.c: cut streams end to end, for every provider. The real
 * llmgated calls tests/fakeprov, which cuts a model's first stream
 * (fail=1+cut=N) and answers a resume as a model that follows it would:
 * only what comes after the partial reply. Each test checks what a caller
 * of libllmgate assembles from its chunks (the reply, exactly once), the
 * result and its attempt list, and, through fakeprov's /_last, what the
 * provider was asked the second time.
 *
 * One daemon and one fakeprov serve the whole suite (an unchecked
 * fixture), so every test uses model names of its own: fakeprov counts
 * per model name and the daemon keeps state per target.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

#define jtext h_jtext

#define nitems(a) (sizeof(a) / sizeof(a)[0])

#define TEST_KEY "test-key"

/* Eight words, so a cut after four pieces is in the middle. */
#define PROMPT "one two three four five six seven eight"
#define FULL   "echo: " PROMPT

/*
 * The user turn of a resume, as daemon/call.c words it. A copy on
 * purpose: fakeprov recognises exactly this text, so a change to it must
 * show here.
 */
#define CONTINUE \
	"Your previous reply was cut off. Continue exactly " \
	"where it stopped, without repeating anything you " \
	"already wrote."

/* A cut after every content piece: all but the stream's end marker. */
#define CUT_END 100

struct prov {
	const char *name; /* the provider entry in our config */
	const char *api;  /* what fakeprov's /_last calls it */
};

static const struct prov provs[] = {
	{ "oa", "openai" },
	{ "az", "azure" },
	{ "an", "anthropic" },
	{ "ge", "gemini" },
};

/* Where the first stream is cut: before any piece, early, mid, at the end. */
static const int cuts[] = { 0, 1, 4, CUT_END };

/* Set in the parent by the unchecked fixture; the tests' forks inherit. */
static struct daemon d;
static pid_t fp_pid;
static int fp_port;
/* Teardown runs in the parent, outside any test: main() reports it. */
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
	    "  { name = \"az\"; type = \"azure\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d\";\n"
	    "    api_version = \"2024-10-21\"; api_key = \"%2$s\"; },\n"
	    "  { name = \"an\"; type = \"anthropic\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\";\n"
	    "    api_key = \"%2$s\"; },\n"
	    "  { name = \"ge\"; type = \"gemini\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1beta\";\n"
	    "    api_key = \"%2$s\"; }\n"
	    ");\n" H_CONF_FAST_RETRY,
	    fp_port, TEST_KEY);
	h_daemon_start(&d, conf);
	free(conf);
}

/*
 * No ck_assert here: in the parent it would end the whole program before
 * Check prints its summary. Failures are printed and main() fails.
 */
static void
teardown(void)
{
	h_fixture_stop("check_resume", &d, &fp_pid, &fixture_failed);
}

/* Turn text as a provider carries it: a string, or text parts joined. */
static char *
turn_text(json_t *v)
{
	json_t *e, *t;
	size_t i, len = 0;
	char *s;

	if (json_is_string(v))
		return strdup(json_string_value(v));
	s = calloc(1, 1);
	json_array_foreach(v, i, e) {
		if (!json_is_string(t = json_object_get(e, "text")))
			continue;
		s = realloc(s, len + json_string_length(t) + 1);
		memcpy(s + len, json_string_value(t), json_string_length(t));
		len += json_string_length(t);
		s[len] = '\0';
	}
	return s;
}

/*
 * What a streaming caller sees. text is the screen of a terminal: a reset
 * chunk clears it. seen is every piece of text ever received, resets or
 * not, so a repeat shows even when a reset hid it.
 */
struct collect {
	char text[4096];
	size_t len;
	char seen[4096];
	size_t seen_len;
	char before_reset[4096];
	int resets;
};

static void
collect_add(char *buf, size_t *len, size_t size, const char *s, size_t n)
{
	ck_assert_msg(*len + n < size, "more output than any reply here has");
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

static void
collect_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct collect *c = arg;

	if (ch->reset) {
		if (c->resets++ == 0)
			memcpy(c->before_reset, c->text, c->len + 1);
		c->len = 0;
		c->text[0] = '\0';
		return;
	}
	ck_assert_msg(ch->tool_index < 0, "a tool-call chunk in a text reply");
	if (ch->text == NULL || ch->len == 0)
		return;
	collect_add(c->text, &c->len, sizeof c->text, ch->text, ch->len);
	collect_add(c->seen, &c->seen_len, sizeof c->seen, ch->text, ch->len);
}

/* A call of PROMPT with a --max-tokens (0: none) and a schema (NULL:
 * none), streamed or not, through libllmgate; the caller frees. */
static struct llmgate_result *
lib_call(const char *const *targets, size_t ntargets,
    enum llmgate_on_cut on_cut, uint32_t attempts, uint32_t max_tokens,
    const char *schema, int stream, struct collect *c)
{
	struct llmgate_request *req = llmgate_request_new();
	struct llmgate_result *res = NULL;
	struct llmgate *g;
	char err[256];
	size_t i;

	ck_assert_int_eq(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     PROMPT),
	    0);
	for (i = 0; i < ntargets; i++)
		ck_assert_int_eq(llmgate_request_add_target(req, targets[i]),
		    0);
	ck_assert_int_eq(llmgate_request_set_on_cut(req, on_cut), 0);
	ck_assert_int_eq(llmgate_request_set_attempts(req, attempts), 0);
	ck_assert_int_eq(llmgate_request_set_stream(req, stream), 0);
	if (schema != NULL)
		ck_assert_int_eq(llmgate_request_set_schema(req, schema), 0);
	if (max_tokens != 0)
		ck_assert_int_eq(llmgate_request_set_max_tokens(req,
		                     max_tokens),
		    0);
	memset(c, 0, sizeof *c);
	g = llmgate_connect(d.sock, "check_resume", err, sizeof err);
	ck_assert_msg(g != NULL, "connect: %s", err);
	ck_assert_int_eq(llmgate_call(g, req, collect_chunk, c, &res), 0);
	ck_assert_ptr_nonnull(res);
	llmgate_close(g);
	llmgate_request_free(req);
	return res;
}

static struct llmgate_result *
lib_stream(const char *const *targets, size_t ntargets,
    enum llmgate_on_cut on_cut, uint32_t attempts, struct collect *c)
{
	return lib_call(targets, ntargets, on_cut, attempts, 0, NULL, 1, c);
}

/*
 * The first n pieces of FULL, as fakeprov streams them: a word and the
 * whitespace after it.
 */
static char *
pieces(size_t n)
{
	const char *p = FULL;

	for (; n > 0 && *p != '\0'; n--) {
		while (*p != '\0' && !isspace((unsigned char)*p))
			p++;
		while (*p != '\0' && isspace((unsigned char)*p))
			p++;
	}
	return strndup(FULL, (size_t)(p - FULL));
}

/* What a cut=N stream of provider p got to the client. */
static char *
partial_at(const struct prov *p, int cut)
{
	/* Gemini's last piece rides on the finishReason chunk: never sent. */
	if (cut == CUT_END)
		return strcmp(p->api, "gemini") == 0 ? pieces(8) : strdup(FULL);
	return pieces((size_t)cut);
}

/* The class an in-stream error event of provider p is given. */
static enum llmgate_class
stream_error_class(const struct prov *p)
{
	if (strcmp(p->api, "openai") == 0 || strcmp(p->api, "azure") == 0)
		return LLMGATE_SERVER_ERROR;
	return LLMGATE_OVERLOADED;
}

/* The attempt list: the targets and classes in order. */
static void
expect_attempts(const char *ctx, const struct llmgate_result *res, size_t n,
    const char *const *tgts, const enum llmgate_class *cls)
{
	size_t i;

	ck_assert_msg(res->nattempts == n, "%s: %zu attempts, want %zu", ctx,
	    res->nattempts, n);
	for (i = 0; i < n; i++) {
		ck_assert_msg(res->attempts[i].cls == cls[i],
		    "%s: attempt %zu is %s (%s), want %s", ctx, i + 1,
		    llmgate_class_name(res->attempts[i].cls),
		    res->attempts[i].message != NULL ?
		        res->attempts[i].message :
		        "",
		    llmgate_class_name(cls[i]));
		ck_assert_msg(res->attempts[i].target != NULL &&
		        strcmp(res->attempts[i].target, tgts[i]) == 0,
		    "%s: attempt %zu at %s, want %s", ctx, i + 1,
		    res->attempts[i].target, tgts[i]);
	}
	/* The answering attempt got a whole 200 reply. */
	if (n != 0 && cls[n - 1] == LLMGATE_OK)
		ck_assert_uint_eq(res->attempts[n - 1].status, 200);
}

/* Success, and the client holds the reply exactly once. */
static void
expect_full(const char *ctx, const struct llmgate_result *res,
    const struct collect *c, int resets)
{
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", ctx,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_msg(strcmp(c->text, FULL) == 0,
	    "%s: the client shows '%s', "
	    "want '%s'",
	    ctx, c->text, FULL);
	ck_assert_msg(res->text != NULL && strcmp(res->text, FULL) == 0,
	    "%s: the result text is '%s', want '%s'", ctx, res->text, FULL);
	ck_assert_msg(res->partial == 0, "%s: a success marked partial", ctx);
	ck_assert_msg(c->resets == resets, "%s: %d resets, want %d", ctx,
	    c->resets, resets);
}

/* The turns of a request body and the assistant's role, per provider. */
static json_t *
turns_of(const struct prov *p, json_t *last, const char **assistant,
    const char **key)
{
	json_t *body = json_object_get(last, "body");

	if (strcmp(p->api, "gemini") == 0) {
		*assistant = "model";
		*key = "parts";
		return json_object_get(body, "contents");
	}
	*assistant = "assistant";
	*key = "content";
	return json_object_get(body, "messages");
}

static void
expect_turn(const char *ctx, json_t *turns, size_t i, const char *role,
    const char *key, const char *want, int may_trim)
{
	json_t *turn = json_array_get(turns, i);
	const char *r = json_string_value(json_object_get(turn, "role"));
	char *text = turn_text(json_object_get(turn, key));
	size_t n = strlen(want);

	ck_assert_msg(r != NULL && strcmp(r, role) == 0,
	    "%s: turn %zu has role %s, want %s: %s", ctx, i, r, role,
	    jtext(turns));
	/* Anthropic may trim a partial reply's trailing whitespace. */
	while (may_trim && n > 0 && isspace((unsigned char)want[n - 1]) &&
	    strlen(text) < n)
		n--;
	ck_assert_msg(strlen(text) == n && strncmp(text, want, n) == 0,
	    "%s: turn %zu says '%s', want '%s': %s", ctx, i, text, want,
	    jtext(turns));
	free(text);
}

/*
 * What the provider was asked last: the caller's turn, then (for a
 * resume) the partial reply as the assistant's turn and the request to
 * continue; for a plain retry, the caller's turn alone.
 */
static void
expect_asked(const char *ctx, const struct prov *p, const char *tgt,
    const char *partial)
{
	const char *assistant, *key;
	json_t *last = h_fakeprov_last_of(fp_port, tgt), *turns;
	size_t want = partial != NULL ? 3 : 1;

	turns = turns_of(p, last, &assistant, &key);
	ck_assert_msg(json_array_size(turns) == want,
	    "%s: %zu turns sent, "
	    "want %zu: %s",
	    ctx, json_array_size(turns), want, jtext(turns));
	expect_turn(ctx, turns, 0, "user", key, PROMPT, 0);
	if (partial != NULL) {
		expect_turn(ctx, turns, 1, assistant, key, partial,
		    strcmp(p->api, "anthropic") == 0);
		expect_turn(ctx, turns, 2, "user", key, CONTINUE, 0);
	}
	json_decref(last);
}

/*
 * Each provider, each cut point: the first stream is cut, the second
 * answers. With nothing relayed (cut=0) that is a plain retry; otherwise
 * a resume, and the client gets only the continuation.
 */
START_TEST(test_resume)
{
	const struct prov *p = &provs[_i / (int)nitems(cuts)];
	int cut = cuts[_i % (int)nitems(cuts)];
	char *tag = h_strdup_printf("res%d", cut);
	char *faults = h_strdup_printf("fail=1+cut=%d", cut);
	char *t = h_target(p->name, tag, faults);
	char *partial = partial_at(p, cut);
	const char *tgts[] = { t, t };
	const enum llmgate_class cls[] = { LLMGATE_CONNECTION, LLMGATE_OK };
	struct llmgate_result *res;
	struct collect c;

	res = lib_stream(tgts, 1, LLMGATE_CUT_RESUME, 0, &c);
	expect_full(t, res, &c, 0);
	ck_assert_msg(strcmp(c.seen, FULL) == 0, "%s: received '%s'", t,
	    c.seen);
	ck_assert_str_eq(res->target, t);
	expect_attempts(t, res, 2, tgts, cls);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 2);
	expect_asked(t, p, t, *partial != '\0' ? partial : NULL);
	llmgate_result_free(res);
	free(partial);
	free(t);
	free(faults);
	free(tag);
}
END_TEST

/* Cut twice: the continuation is cut too, and resumed from all seen. */
START_TEST(test_resume_twice)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "twice", "fail=2+cut=2+word_delay=2");
	char *partial = pieces(4);
	const char *tgts[] = { t, t, t };
	const enum llmgate_class cls[] = { LLMGATE_CONNECTION,
		LLMGATE_CONNECTION, LLMGATE_OK };
	struct llmgate_result *res;
	struct collect c;

	/* "echo: one ", then "two three ", then the rest. */
	res = lib_stream(tgts, 1, LLMGATE_CUT_RESUME, 3, &c);
	expect_full(t, res, &c, 0);
	ck_assert_str_eq(c.seen, FULL);
	expect_attempts(t, res, 3, tgts, cls);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 3);
	expect_asked(t, p, t, partial);
	llmgate_result_free(res);
	free(partial);
	free(t);
}
END_TEST

/* on_cut restart: one reset, then the whole reply from the start. */
START_TEST(test_restart)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "restart", "fail=1+cut=4");
	char *partial = pieces(4), *both;
	const char *tgts[] = { t, t };
	const enum llmgate_class cls[] = { LLMGATE_CONNECTION, LLMGATE_OK };
	struct llmgate_result *res;
	struct collect c;

	res = lib_stream(tgts, 1, LLMGATE_CUT_RESTART, 0, &c);
	expect_full(t, res, &c, 1);
	ck_assert_msg(strcmp(c.before_reset, partial) == 0,
	    "%s: before the reset the client had '%s', want '%s'", t,
	    c.before_reset, partial);
	both = h_strdup_printf("%s%s", partial, FULL);
	ck_assert_str_eq(c.seen, both);
	expect_attempts(t, res, 2, tgts, cls);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 2);
	/* A restart asks the original question again. */
	expect_asked(t, p, t, NULL);
	llmgate_result_free(res);
	free(both);
	free(partial);
	free(t);
}
END_TEST

/* on_cut fail: the call ends with the cut, marked partial. */
START_TEST(test_fail)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "cutfail", "fail=1+cut=4");
	char *partial = pieces(4);
	const char *tgts[] = { t };
	const enum llmgate_class cls[] = { LLMGATE_CONNECTION };
	struct llmgate_result *res;
	struct collect c;

	res = lib_stream(tgts, 1, LLMGATE_CUT_FAIL, 0, &c);
	ck_assert_msg(res->cls == LLMGATE_CONNECTION, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_int_eq(res->partial, 1);
	ck_assert_msg(res->text != NULL && strcmp(res->text, partial) == 0,
	    "%s: result text '%s', want '%s'", t, res->text, partial);
	ck_assert_str_eq(c.text, partial);
	ck_assert_int_eq(c.resets, 0);
	expect_attempts(t, res, 1, tgts, cls);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 1);
	llmgate_result_free(res);
	free(partial);
	free(t);
}
END_TEST

/* An error event inside a 200 stream is resumed like a cut. */
START_TEST(test_stream_error)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "serr", "fail=1+stream_error");
	/* fakeprov sends the error after two pieces. */
	char *partial = pieces(2);
	const char *tgts[] = { t, t };
	const enum llmgate_class cls[] = { stream_error_class(p), LLMGATE_OK };
	struct llmgate_result *res;
	struct collect c;

	res = lib_stream(tgts, 1, LLMGATE_CUT_RESUME, 0, &c);
	expect_full(t, res, &c, 0);
	ck_assert_str_eq(c.seen, FULL);
	expect_attempts(t, res, 2, tgts, cls);
	ck_assert_uint_eq(res->attempts[0].status, 200);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 2);
	expect_asked(t, p, t, partial);
	llmgate_result_free(res);
	free(partial);
	free(t);
}
END_TEST

/*
 * A chain whose first target has one attempt: the cut falls back, and
 * the next target (another provider) continues the reply.
 */
START_TEST(test_chain)
{
	const struct prov *p = &provs[_i];
	const struct prov *q = &provs[(_i + 1) % (int)nitems(provs)];
	char *t1 = h_target(p->name, "chain1", "fail=1+cut=4");
	char *t2 = h_target(q->name, "chain2", NULL);
	char *partial = pieces(4);
	const char *tgts[] = { t1, t2 };
	const enum llmgate_class cls[] = { LLMGATE_CONNECTION, LLMGATE_OK };
	struct llmgate_result *res;
	struct collect c;

	res = lib_stream(tgts, 2, LLMGATE_CUT_RESUME, 1, &c);
	expect_full(t1, res, &c, 0);
	ck_assert_str_eq(c.seen, FULL);
	ck_assert_str_eq(res->target, t2);
	expect_attempts(t1, res, 2, tgts, cls);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t1), 1);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t2), 1);
	expect_asked(t2, q, t2, partial);
	llmgate_result_free(res);
	free(partial);
	free(t2);
	free(t1);
}
END_TEST

/* The CLI prints a resumed reply once and says nothing of a restart. */
START_TEST(test_cli)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "cli", "fail=1+cut=4");
	struct run r;

	h_cli(&r, &d, NULL, "call", "--stream", "-m", t, PROMPT, NULL);
	ck_assert_msg(r.status == 0, "%s: exit %d: %s", t, r.status, r.err);
	ck_assert_msg(strcmp(r.out, FULL) == 0 || strcmp(r.out, FULL "\n") == 0,
	    "%s: stdout '%s'", t, r.out);
	ck_assert_msg(strstr(r.err, "restarted") == NULL, "%s: stderr '%s'", t,
	    r.err);
	h_run_free(&r);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 2);
	free(t);
}
END_TEST

/* POST a JSON body to fakeprov; the answer's body as JSON. */
static json_t *
fp_post(const char *path, const char *headers, json_t *body)
{
	struct sockaddr_in sin;
	char *b = json_dumps(body, JSON_COMPACT), *req, buf[8192];
	size_t len = 0;
	ssize_t n;
	json_t *j;
	char *p;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)fp_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	req = h_strdup_printf(
	    "POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\n"
	    "Content-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
	    path, headers, strlen(b), b);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (len < sizeof buf - 1) {
		n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	ck_assert_msg((p = strstr(buf, "\r\n\r\n")) != NULL, "no answer: %s",
	    buf);
	j = json_loads(p + 4, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %s", p + 4);
	free(req);
	free(b);
	return j;
}

/* A continuation sent straight to fakeprov; the reply text. */
static char *
fp_continue(const char *api, const char *partial)
{
	json_t *body, *reply, *msgs;
	const char *text;
	char *s;

	msgs = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "role", "user",
	    "content", PROMPT, "role", "assistant", "content", partial, "role",
	    "user", "content", CONTINUE);
	body = json_pack("{s:s, s:i, s:o}", "model", "direct", "max_tokens",
	    100, "messages", msgs);
	if (strcmp(api, "anthropic") == 0) {
		reply = fp_post("/v1/messages",
		    "x-api-key: " TEST_KEY "\r\n"
		    "anthropic-version: 2023-06-01\r\n",
		    body);
		text = json_string_value(
		    json_object_get(json_array_get(json_object_get(reply,
		                                       "content"),
		                        0),
		        "text"));
	} else {
		reply = fp_post("/v1/chat/completions",
		    "Authorization: Bearer " TEST_KEY "\r\n", body);
		text = json_string_value(json_object_get(
		    json_object_get(json_array_get(json_object_get(reply,
		                                       "choices"),
		                        0),
		        "message"),
		    "content"));
	}
	ck_assert_msg(text != NULL, "%s: no reply text: %s", api, jtext(reply));
	s = strdup(text);
	json_decref(reply);
	json_decref(body);
	return s;
}

/*
 * fakeprov's own rules for what a partial reply leaves (tests/fakeprov.md),
 * which the tests above rely on: P + rest is the reply, also when
 * Anthropic's client trimmed P.
 */
START_TEST(test_fakeprov_continuation)
{
	char *s;

	s = fp_continue("openai", "echo: one two ");
	ck_assert_str_eq(s, "three four five six seven eight");
	free(s);
	/* Taken literally: the rest keeps its leading space. */
	s = fp_continue("openai", "echo: one two");
	ck_assert_str_eq(s, " three four five six seven eight");
	free(s);
	/* Trimmed on Anthropic: the client holds "echo: one two ". */
	s = fp_continue("anthropic", "echo: one two");
	ck_assert_str_eq(s, "three four five six seven eight");
	free(s);
	s = fp_continue("anthropic", "echo: one two ");
	ck_assert_str_eq(s, "three four five six seven eight");
	free(s);
	s = fp_continue("openai", FULL);
	ck_assert_str_eq(s, "");
	free(s);
	/* Not this reply's beginning: the whole reply. */
	s = fp_continue("openai", "something else ");
	ck_assert_str_eq(s, FULL);
	free(s);
}
END_TEST

/* The token cap a provider was asked for, as its request body carries it. */
static json_int_t
asked_max_tokens(const struct prov *p, const char *tgt)
{
	json_t *last = h_fakeprov_last_of(fp_port, tgt), *body, *v;
	json_int_t n;

	body = json_object_get(last, "body");
	if (strcmp(p->api, "gemini") == 0)
		v = json_object_get(json_object_get(body, "generationConfig"),
		    "maxOutputTokens");
	else
		v = json_object_get(body, "max_tokens");
	ck_assert_msg(json_is_integer(v), "%s: no token cap sent: %s", tgt,
	    jtext(body));
	n = json_integer_value(v);
	json_decref(last);
	return n;
}

/*
 * A resume asks for what is left of max_tokens: the cut part delivered
 * "echo: one two three " (4 words; fakeprov's stream carried no usage
 * yet, so the daemon estimates from the text), and the continuation may
 * not ask for the whole cap again, or the parts together pass it.
 */
START_TEST(test_resume_max_tokens)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "cap", "fail=1+cut=4");
	const char *tgts[] = { t };
	struct llmgate_result *res;
	struct collect c;
	json_int_t asked;

	res = lib_call(tgts, 1, LLMGATE_CUT_RESUME, 0, 100, NULL, 1, &c);
	expect_full(t, res, &c, 0);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 2);
	asked = asked_max_tokens(p, t);
	ck_assert_msg(asked <= 100 - 4 && asked >= 100 - 20,
	    "%s: the resume asked for %lld tokens of the 100", t,
	    (long long)asked);
	llmgate_result_free(res);
	free(t);
}
END_TEST

/*
 * usage is the answering reply's; usage_total adds what the cut part
 * cost. OpenAI's usage chunk comes last, so the cut part reported none:
 * its 20 bytes of output and 39 bytes of prompt count as 5 and 10.
 */
START_TEST(test_usage_total)
{
	char *t = h_target(provs[0].name, "usage", "fail=1+cut=4");
	const char *tgts[] = { t };
	struct llmgate_result *res;
	struct collect c;

	res = lib_call(tgts, 1, LLMGATE_CUT_RESUME, 0, 0, NULL, 1, &c);
	expect_full(t, res, &c, 0);
	ck_assert_msg(res->output_tokens != 0 && res->input_tokens != 0,
	    "%s: no usage", t);
	ck_assert_uint_eq(res->total_output_tokens, res->output_tokens + 5);
	ck_assert_uint_eq(res->total_input_tokens, res->input_tokens + 10);
	llmgate_result_free(res);
	free(t);
}
END_TEST

/*
 * A JSON reply cut at max_tokens is not sent back for repair (under the
 * same cap it would be cut again): one request, class schema, and the
 * message says where it was cut.
 */
START_TEST(test_json_cut_at_length)
{
	char *t = h_target(provs[_i].name, "jlen",
	    "length+text=%7B%22name%22%3A%20%22Ad");
	const char *tgts[] = { t };
	struct llmgate_result *res;
	struct collect c;

	res = lib_call(tgts, 1, LLMGATE_CUT_RESUME, 0, 5,
	    "{\"type\": \"object\", \"required\": [\"name\"]}", 0, &c);
	ck_assert_msg(res->cls == LLMGATE_SCHEMA, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_msg(res->message != NULL &&
	        strstr(res->message, "max_tokens") != NULL,
	    "%s: message '%s'", t, res->message);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 1);
	ck_assert_uint_eq(res->nattempts, 1);
	llmgate_result_free(res);
	free(t);
}
END_TEST

static Suite *
resume_suite(void)
{
	Suite *s = suite_create("resume");
	TCase *tc = tcase_create("resume");
	int n = (int)nitems(provs);

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fakeprov_continuation);
	tcase_add_loop_test(tc, test_resume, 0, n * (int)nitems(cuts));
	tcase_add_loop_test(tc, test_resume_twice, 0, n);
	tcase_add_loop_test(tc, test_restart, 0, n);
	tcase_add_loop_test(tc, test_fail, 0, n);
	tcase_add_loop_test(tc, test_stream_error, 0, n);
	tcase_add_loop_test(tc, test_chain, 0, n);
	tcase_add_loop_test(tc, test_cli, 0, n);
	tcase_add_loop_test(tc, test_resume_max_tokens, 0, n);
	tcase_add_test(tc, test_usage_total);
	/* OpenAI and Azure (json_schema response format). */
	tcase_add_loop_test(tc, test_json_cut_at_length, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return h_fixture_main("check_resume", resume_suite(), &d, &fp_pid,
	    &fixture_failed);
}
