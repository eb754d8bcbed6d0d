/*
 * check_providers.c: every provider end to end. The real llmgated, driven
 * through the llmgate CLI and libllmgate, calls tests/fakeprov, which
 * speaks the OpenAI, Azure, Anthropic and Gemini wire formats and injects
 * the fault its model name asks for. Each test checks what a user sees
 * (exit status, the --json object, streamed output) and, through
 * fakeprov's /_last, what the provider was sent.
 *
 * One daemon and one fakeprov serve the whole suite (an unchecked
 * fixture), so every test uses model names of its own: fakeprov counts
 * per model name and the daemon keeps state per target.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

#define jtext h_jtext

#define nitems(a) (sizeof(a) / sizeof(a)[0])

/* fakeprov's default key, and a wrong one for the auth rows. */
#define TEST_KEY "test-key"
#define BAD_KEY  "sk-wrong-4b1d9e7c2a"

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

/* Set in the parent by the unchecked fixture; the tests' forks inherit. */
static struct daemon d;
static pid_t fp_pid;
static int fp_port;
static char *tools_path;
static char *messages_path;
/* Teardown runs in the parent, outside any test: main() reports it. */
static int fixture_failed;

static const char *tools_text =
    "[{\"name\": \"get_weather\", \"description\": \"Weather for a city\",\n"
    "  \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
    "{\"type\": \"string\"}, \"days\": {\"type\": \"integer\"}},\n"
    "  \"required\": [\"city\"]}}]\n";

static const char *messages_text =
    "[{\"role\": \"system\", \"content\": \"be brief\"},\n"
    " {\"role\": \"user\", \"content\": \"weather in Oslo\"},\n"
    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": "
    "\"call_1\", \"name\": \"get_weather\", \"arguments\": {\"city\": "
    "\"Oslo\"}}]},\n"
    " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"name\": "
    "\"get_weather\", \"content\": \"{\\\"temp_c\\\": 4}\"}]\n";

/* The arguments fakeprov is told to call get_weather with. */
#define TOOL_ARGS "{\"city\":\"Oslo\",\"days\":2}"
#define TOOL_FAULTS \
	"tool=get_weather+args=%7B%22city%22%3A%22Oslo%22%2C" \
	"%22days%22%3A2%7D"

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot write %s", path);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static void
setup(void)
{
	char *conf;

	fp_port = h_fakeprov_start(&fp_pid);
	conf = h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%2$s\"; },\n"
	    "  { name = \"az\"; type = \"azure\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d\"; api_version = \"2024-10-21\";\n"
	    "    api_key = \"%2$s\"; },\n"
	    "  { name = \"an\"; type = \"anthropic\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%2$s\"; },\n"
	    "  { name = \"ge\"; type = \"gemini\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1beta\"; api_key = \"%2$s\"; },\n"
	    "  { name = \"oa_badkey\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%3$s\"; },\n"
	    "  { name = \"az_badkey\"; type = \"azure\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d\"; api_version = \"2024-10-21\";\n"
	    "    api_key = \"%3$s\"; },\n"
	    "  { name = \"an_badkey\"; type = \"anthropic\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%3$s\"; },\n"
	    "  { name = \"ge_badkey\"; type = \"gemini\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1beta\"; api_key = \"%3$s\"; },\n"
	    /* A key source that is unset or empty: no key, no requests. */
	    "  { name = \"oa_nokey\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\";\n"
	    "    api_key_env = \"LLMGATE_TEST_UNSET_KEY\"; },\n"
	    "  { name = \"an_emptykey\"; type = \"anthropic\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\";\n"
	    "    api_key_env = \"LLMGATE_TEST_EMPTY_KEY\"; },\n"
	    /* The key from the environment; and no key source at all. */
	    "  { name = \"oa_envkey\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\";\n"
	    "    api_key_env = \"LLMGATE_TEST_SET_KEY\"; },\n"
	    "  { name = \"oa_local\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; }\n"
	    ");\n" H_CONF_FAST_RETRY,
	    fp_port, TEST_KEY, BAD_KEY);
	/* The daemon inherits these. */
	ck_assert_int_eq(unsetenv("LLMGATE_TEST_UNSET_KEY"), 0);
	ck_assert_int_eq(setenv("LLMGATE_TEST_EMPTY_KEY", "", 1), 0);
	ck_assert_int_eq(setenv("LLMGATE_TEST_SET_KEY", TEST_KEY, 1), 0);
	h_daemon_start(&d, conf);
	free(conf);
	tools_path = h_strdup_printf("%s/tools.json", d.dir);
	messages_path = h_strdup_printf("%s/messages.json", d.dir);
	write_file(tools_path, tools_text);
	write_file(messages_path, messages_text);
}

/*
 * No ck_assert here: in the parent it would end the whole program before
 * Check prints its summary. Failures are printed and main() fails.
 */
static void
teardown(void)
{
	char *log;

	log = h_daemon_log(&d);
	if (strstr(log, TEST_KEY) != NULL || strstr(log, BAD_KEY) != NULL) {
		fprintf(stderr,
		    "check_providers: an API key is in the "
		    "daemon's log\n");
		fixture_failed = 1;
	}
	free(log);
	h_fixture_stop("check_providers", &d, &fp_pid, &fixture_failed);
	free(tools_path);
	free(messages_path);
	tools_path = messages_path = NULL;
}

/* A value by a dotted path; numbers index arrays: "attempts.0.class". */
static json_t *
jpath(json_t *j, const char *path)
{
	char buf[256], *tok, *last, *end;
	unsigned long idx;

	snprintf(buf, sizeof buf, "%s", path);
	for (tok = strtok_r(buf, ".", &last); tok != NULL && j != NULL;
	     tok = strtok_r(NULL, ".", &last)) {
		if (json_is_array(j)) {
			idx = strtoul(tok, &end, 10);
			j = *end == '\0' ? json_array_get(j, idx) : NULL;
		} else
			j = json_object_get(j, tok);
	}
	return j;
}

static const char *
jstr_at(json_t *j, const char *path)
{
	return json_string_value(jpath(j, path));
}

static void
expect_str(const char *ctx, json_t *j, const char *path, const char *want)
{
	const char *got = jstr_at(j, path);

	ck_assert_msg(got != NULL && strcmp(got, want) == 0,
	    "%s: %s is '%s', want '%s' in %s", ctx, path,
	    got != NULL ? got : "(none)", want, jtext(j));
}

static void
expect_int(const char *ctx, json_t *j, const char *path, json_int_t want)
{
	json_t *v = jpath(j, path);

	ck_assert_msg(json_is_integer(v) && json_integer_value(v) == want,
	    "%s: %s is %s, want %lld in %s", ctx, path, jtext(v),
	    (long long)want, jtext(j));
}

static void
expect_size(const char *ctx, json_t *j, const char *path, size_t want)
{
	json_t *v = jpath(j, path);

	ck_assert_msg(json_is_array(v) && json_array_size(v) == want,
	    "%s: %s has %zu entries, want %zu in %s", ctx, path,
	    json_array_size(v), want, jtext(j));
}

/* The value at path equals the JSON text want (order-insensitive). */
static void
expect_json(const char *ctx, json_t *j, const char *path, const char *want)
{
	json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);

	ck_assert_ptr_nonnull(w);
	ck_assert_msg(json_equal(jpath(j, path), w), "%s: %s is %s, want %s",
	    ctx, path, jtext(jpath(j, path)), want);
	json_decref(w);
}

/* A string at path holds JSON text equal to want. */
static void
expect_json_text(const char *ctx, json_t *j, const char *path, const char *want)
{
	const char *s = jstr_at(j, path);
	json_t *got, *w;

	ck_assert_msg(s != NULL, "%s: %s is not a string in %s", ctx, path,
	    jtext(j));
	got = json_loads(s, JSON_DECODE_ANY, NULL);
	w = json_loads(want, JSON_DECODE_ANY, NULL);
	ck_assert_msg(got != NULL && json_equal(got, w),
	    "%s: %s is '%s', "
	    "want %s",
	    ctx, path, s, want);
	json_decref(got);
	json_decref(w);
}

/* Message content as text: a string, or the text of its blocks. */
static int
content_is(json_t *c, const char *want)
{
	const char *t;
	json_t *b;
	size_t i, off = 0, n;

	if (json_is_string(c))
		return strcmp(json_string_value(c), want) == 0;
	if (!json_is_array(c))
		return 0;
	json_array_foreach(c, i, b) {
		if ((t = json_string_value(json_object_get(b, "text"))) == NULL)
			return 0;
		n = strlen(t);
		if (strncmp(want + off, t, n) != 0)
			return 0;
		off += n;
	}
	return want[off] == '\0';
}

static void
no_key(const char *where, const char *s)
{
	ck_assert_msg(strstr(s, TEST_KEY) == NULL && strstr(s, BAD_KEY) == NULL,
	    "an API key reached the client's %s: %s", where, s);
}

/* The CLI with -s and args; anything it prints must hold no key. */
static void
cli_argv(struct run *r, const char *const *args)
{
	char *argv[64];
	int argc = 0;

	argv[argc++] = "llmgate";
	argv[argc++] = "-s";
	argv[argc++] = d.sock;
	while (*args != NULL && argc < 63)
		argv[argc++] = (char *)(uintptr_t)*args++;
	argv[argc] = NULL;
	h_run(r, NULL, argv);
	no_key("stdout", r->out);
	no_key("stderr", r->err);
}

#define CLI(r, ...) cli_argv((r), (const char *const[]){ __VA_ARGS__, NULL })

/* `llmgate call --json ARGS`: exactly one JSON object on stdout. */
static json_t *
cli_json(int *status, const char *const *args)
{
	struct run r;
	json_error_t err;
	json_t *j;

	cli_argv(&r, args);
	j = json_loads(r.out, 0, &err);
	ck_assert_msg(j != NULL && json_is_object(j),
	    "exit %d: stdout is "
	    "not one JSON object (%s): '%s'; stderr: '%s'",
	    r.status, err.text, r.out, r.err);
	*status = r.status;
	h_run_free(&r);
	return j;
}

#define CALL_JSON(st, ...) \
	cli_json((st), \
	    (const char *const[]){ "call", "--json", __VA_ARGS__, NULL })

static void
result_no_key(const struct llmgate_result *res)
{
	size_t i;

	if (res->message != NULL)
		no_key("result message", res->message);
	if (res->text != NULL)
		no_key("result text", res->text);
	for (i = 0; i < res->nattempts; i++) {
		if (res->attempts[i].message != NULL)
			no_key("attempt message", res->attempts[i].message);
	}
}

/* What a streaming caller assembles from its chunks. */
struct collect {
	char text[4096];
	size_t len;
	int chunks; /* chunks with text */
	int resets;
	int tool_chunks;
	int tool_index_bad; /* a tool delta for a call other than 0 */
	char tool_name[64];
	char tool_id[64]; /* the first delta's */
	char args[1024];
	size_t args_len;
};

static void
collect_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct collect *c = arg;
	size_t n;

	if (ch->reset) {
		c->resets++;
		c->len = 0;
		c->text[0] = '\0';
	}
	if (ch->tool_index >= 0) {
		c->tool_chunks++;
		if (ch->tool_index != 0)
			c->tool_index_bad = 1;
		if (ch->tool_name != NULL)
			snprintf(c->tool_name, sizeof c->tool_name, "%s",
			    ch->tool_name);
		if (ch->tool_id != NULL && c->tool_id[0] == '\0')
			snprintf(c->tool_id, sizeof c->tool_id, "%s",
			    ch->tool_id);
		if (ch->tool_args != NULL) {
			n = strlen(ch->tool_args);
			ck_assert_uint_lt(c->args_len + n, sizeof c->args);
			memcpy(c->args + c->args_len, ch->tool_args, n + 1);
			c->args_len += n;
		}
		return;
	}
	if (ch->text == NULL || ch->len == 0)
		return;
	ck_assert_uint_lt(c->len + ch->len, sizeof c->text);
	memcpy(c->text + c->len, ch->text, ch->len);
	c->len += ch->len;
	c->text[c->len] = '\0';
	c->chunks++;
}

/* A streamed library call; the result is the caller's to free. */
static struct llmgate_result *
lib_stream(struct llmgate_request *req, struct collect *c)
{
	struct llmgate *g = h_connect(&d, "check_providers");
	struct llmgate_result *res = NULL;

	memset(c, 0, sizeof *c);
	llmgate_request_set_stream(req, 1);
	ck_assert_int_eq(llmgate_call(g, req, collect_chunk, c, &res), 0);
	llmgate_close(g);
	result_no_key(res);
	return res;
}

static int
is_openai(const struct prov *p)
{
	return strcmp(p->api, "openai") == 0 || strcmp(p->api, "azure") == 0;
}

/* A plain call: the reply, its target, finish reason and exact usage. */
START_TEST(test_plain)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "plain", NULL);
	json_t *j;
	int st;

	j = CALL_JSON(&st, "-m", t, "say hello to the world");
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "text", "echo: say hello to the world");
	expect_str(t, j, "target", t);
	expect_str(t, j, "finish_reason", "stop");
	/* fakeprov counts words; "echo:" is one. */
	expect_int(t, j, "usage.input_tokens", 5);
	expect_int(t, j, "usage.output_tokens", 6);
	expect_size(t, j, "tool_calls", 0);
	expect_size(t, j, "attempts", 1);
	expect_str(t, j, "attempts.0.target", t);
	expect_str(t, j, "attempts.0.class", "ok");
	expect_int(t, j, "attempts.0.status", 200);
	json_decref(j);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 1);
	free(t);
}
END_TEST

/* finish_reason length comes through from each provider's own word. */
START_TEST(test_finish_length)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "len", "length");
	json_t *j;
	int st;

	j = CALL_JSON(&st, "-m", t, "one two");
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "text", "echo: one two");
	expect_str(t, j, "finish_reason", "length");
	json_decref(j);
	free(t);
}
END_TEST

/*
 * The request each provider got: system prompt placement, the token cap,
 * the model and the key where that API wants them. fakeprov counts the
 * system prompt's words only where it found it, so usage agrees too.
 */
START_TEST(test_translation)
{
	const struct prov *p = &provs[_i];
	static const char *sys = "answer in one short line";
	char *t = h_target(p->name, "xlate", NULL), *path;
	const char *role;
	json_t *j, *req, *body, *m, *turn;
	size_t k;
	int st;

	j = CALL_JSON(&st, "--system", sys, "--max-tokens", "64", "-m", t,
	    "what is the time");
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "text", "echo: what is the time");
	expect_int(t, j, "usage.input_tokens", 5 + 4);
	expect_int(t, j, "usage.output_tokens", 5);
	json_decref(j);

	req = h_fakeprov_last_of(fp_port, t);
	body = json_object_get(req, "body");
	expect_str(t, req, "provider", p->api);
	expect_str(t, req, "method", "POST");
	if (is_openai(p)) {
		expect_str(t, body, "messages.0.role", "system");
		ck_assert_msg(content_is(jpath(body, "messages.0.content"),
		                  sys),
		    "%s: system message: %s", t, jtext(body));
		expect_str(t, body, "messages.1.role", "user");
		ck_assert_msg(content_is(jpath(body, "messages.1.content"),
		                  "what is the time"),
		    "%s: %s", t, jtext(body));
		expect_size(t, body, "messages", 2);
		expect_int(t, body, "max_tokens", 64);
	}
	if (strcmp(p->api, "openai") == 0) {
		expect_str(t, req, "path", "/v1/chat/completions");
		expect_str(t, body, "model", h_model_of(t));
		expect_str(t, req, "headers.authorization", "Bearer " TEST_KEY);
	} else if (strcmp(p->api, "azure") == 0) {
		/* The deployment is in the URL; Azure takes no body model. */
		path = h_strdup_printf("/openai/deployments/%s/chat/"
		                       "completions?api-version=2024-10-21",
		    h_model_of(t));
		expect_str(t, req, "path", path);
		free(path);
		ck_assert_msg(json_object_get(body, "model") == NULL,
		    "%s: azure body has a model: %s", t, jtext(body));
		expect_str(t, req, "headers.api-key", TEST_KEY);
		ck_assert_msg(jpath(req, "headers.authorization") == NULL,
		    "%s: azure got an authorization header too", t);
	} else if (strcmp(p->api, "anthropic") == 0) {
		expect_str(t, req, "path", "/v1/messages");
		expect_str(t, body, "model", h_model_of(t));
		/* Anthropic has no system role: a top-level field. */
		ck_assert_msg(content_is(json_object_get(body, "system"), sys),
		    "%s: system: %s", t, jtext(body));
		expect_size(t, body, "messages", 1);
		expect_str(t, body, "messages.0.role", "user");
		ck_assert_msg(content_is(jpath(body, "messages.0.content"),
		                  "what is the time"),
		    "%s: %s", t, jtext(body));
		expect_int(t, body, "max_tokens", 64);
		expect_str(t, req, "headers.x-api-key", TEST_KEY);
		ck_assert_ptr_nonnull(
		    jstr_at(req, "headers.anthropic-version"));
	} else {
		path = h_strdup_printf("/v1beta/models/%s:generateContent",
		    h_model_of(t));
		expect_str(t, req, "path", path);
		free(path);
		expect_str(t, body, "systemInstruction.parts.0.text", sys);
		expect_size(t, body, "contents", 1);
		expect_str(t, body, "contents.0.role", "user");
		expect_str(t, body, "contents.0.parts.0.text",
		    "what is the time");
		expect_int(t, body, "generationConfig.maxOutputTokens", 64);
		/* In a header, not ?key=, where URLs get logged. */
		expect_str(t, req, "headers.x-goog-api-key", TEST_KEY);
	}
	/* Whatever the API, the key never rides in the URL. */
	ck_assert_msg(strstr(jstr_at(req, "path"), TEST_KEY) == NULL,
	    "%s: the key is in the URL: %s", t, jstr_at(req, "path"));
	/* Only OpenAI's shape has a system role among the turns. */
	if (!is_openai(p)) {
		m = jpath(body,
		    strcmp(p->api, "gemini") == 0 ? "contents" : "messages");
		json_array_foreach(m, k, turn) {
			role = jstr_at(turn, "role");
			ck_assert_msg(role == NULL ||
			        strcmp(role, "system") != 0,
			    "%s: a system turn: %s", t, jtext(body));
		}
	}
	json_decref(req);
	free(t);
}
END_TEST

/* --stream prints exactly the reply; --stream --json has exact usage. */
START_TEST(test_stream_cli)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "stream", NULL), *path;
	struct run r;
	json_t *j, *req, *body;
	int st;

	CLI(&r, "call", "--stream", "-m", t, "one two three four");
	ck_assert_msg(r.status == 0, "%s: exit %d: %s", t, r.status, r.err);
	ck_assert_str_eq(r.out, "echo: one two three four\n");
	h_run_free(&r);

	j = CALL_JSON(&st, "--stream", "-m", t, "one two three four");
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "text", "echo: one two three four");
	expect_str(t, j, "target", t);
	expect_str(t, j, "finish_reason", "stop");
	expect_int(t, j, "usage.input_tokens", 4);
	expect_int(t, j, "usage.output_tokens", 5);
	expect_size(t, j, "attempts", 1);
	json_decref(j);

	/* It was a stream upstream too, with usage asked for. */
	req = h_fakeprov_last_of(fp_port, t);
	body = json_object_get(req, "body");
	if (is_openai(p)) {
		ck_assert(json_is_true(json_object_get(body, "stream")));
		ck_assert(
		    json_is_true(jpath(body, "stream_options.include_usage")));
	} else if (strcmp(p->api, "anthropic") == 0)
		ck_assert(json_is_true(json_object_get(body, "stream")));
	else {
		path = h_strdup_printf("/v1beta/models/%s:"
		                       "streamGenerateContent?alt=sse",
		    h_model_of(t));
		expect_str(t, req, "path", path);
		free(path);
	}
	json_decref(req);
	free(t);
}
END_TEST

/* Through libllmgate: several chunks that add up to the final text. */
START_TEST(test_stream_lib)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "slib", NULL);
	struct llmgate_request *req =
	    h_request("one two three four five", t, NULL);
	struct llmgate_result *res;
	struct collect c;

	res = lib_stream(req, &c);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_str_eq(res->text, "echo: one two three four five");
	/* fakeprov sends a piece per word: six, not one blob. */
	ck_assert_int_gt(c.chunks, 1);
	ck_assert_str_eq(c.text, res->text);
	ck_assert_int_eq(c.resets, 0);
	ck_assert_int_eq(c.tool_chunks, 0);
	ck_assert_str_eq(res->target, t);
	ck_assert_int_eq(res->finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(res->input_tokens, 5);
	ck_assert_uint_eq(res->output_tokens, 6);
	llmgate_result_free(res);
	h_request_free(req);
	free(t);
}
END_TEST

/* The tools a request carried, in the provider's shape. */
static void
expect_tools_sent(const char *ctx, const struct prov *p, json_t *body)
{
	static const char *params =
	    "{\"type\": \"object\", \"properties\": "
	    "{\"city\": {\"type\": \"string\"}, \"days\": {\"type\": "
	    "\"integer\"}}, \"required\": [\"city\"]}";

	if (is_openai(p)) {
		expect_str(ctx, body, "tools.0.type", "function");
		expect_str(ctx, body, "tools.0.function.name", "get_weather");
		expect_str(ctx, body, "tools.0.function.description",
		    "Weather for a city");
		expect_json(ctx, body, "tools.0.function.parameters", params);
	} else if (strcmp(p->api, "anthropic") == 0) {
		expect_str(ctx, body, "tools.0.name", "get_weather");
		expect_str(ctx, body, "tools.0.description",
		    "Weather for a city");
		expect_json(ctx, body, "tools.0.input_schema", params);
	} else {
		expect_str(ctx, body, "tools.0.functionDeclarations.0.name",
		    "get_weather");
		expect_json(ctx, body,
		    "tools.0.functionDeclarations.0.parameters", params);
	}
}

/* A reply that is one call of get_weather with TOOL_ARGS. */
static void
expect_tool_reply(const char *ctx, json_t *j)
{
	const char *id;

	expect_str(ctx, j, "finish_reason", "tool_calls");
	expect_str(ctx, j, "text", "");
	expect_size(ctx, j, "tool_calls", 1);
	expect_str(ctx, j, "tool_calls.0.name", "get_weather");
	expect_json(ctx, j, "tool_calls.0.arguments", TOOL_ARGS);
	id = jstr_at(j, "tool_calls.0.id");
	ck_assert_msg(id != NULL && *id != '\0', "%s: no tool call id: %s", ctx,
	    jtext(j));
	/* 1 + the words of the arguments JSON, as fakeprov counts. */
	expect_int(ctx, j, "usage.input_tokens", 3);
	expect_int(ctx, j, "usage.output_tokens", 2);
}

START_TEST(test_tool_call)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "tool", TOOL_FAULTS);
	json_t *j, *req;
	int st;

	j = CALL_JSON(&st, "--tools", tools_path, "-m", t, "weather in Oslo");
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_tool_reply(t, j);
	json_decref(j);
	req = h_fakeprov_last_of(fp_port, t);
	expect_tools_sent(t, p, json_object_get(req, "body"));
	json_decref(req);
	free(t);
}
END_TEST

/* Streamed: the CLI's result, and the deltas a library caller gets. */
START_TEST(test_tool_call_stream)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "stool", TOOL_FAULTS);
	struct llmgate_request *lreq;
	struct llmgate_result *res;
	struct collect c;
	json_t *j, *req, *got, *want;
	int st;

	j = CALL_JSON(&st, "--stream", "--tools", tools_path, "-m", t,
	    "weather in Oslo");
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_tool_reply(t, j);
	json_decref(j);
	req = h_fakeprov_last_of(fp_port, t);
	expect_tools_sent(t, p, json_object_get(req, "body"));
	json_decref(req);

	lreq = h_request("weather in Oslo", t, NULL);
	ck_assert_int_eq(llmgate_request_add_tool(lreq, "get_weather",
	                     "Weather for a city",
	                     "{\"type\":\"object\",\"properties\":"
	                     "{\"city\":{\"type\":\"string\"}}}"),
	    0);
	res = lib_stream(lreq, &c);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_int_eq(res->finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_uint_eq(res->ntool_calls, 1);
	ck_assert_str_eq(res->tool_calls[0].name, "get_weather");
	/* The deltas name the call and add up to its arguments. */
	ck_assert_int_ge(c.tool_chunks, 1);
	ck_assert_int_eq(c.tool_index_bad, 0);
	ck_assert_str_eq(c.tool_name, "get_weather");
	ck_assert_int_eq(c.chunks, 0);
	got = json_loads(c.args, 0, NULL);
	want = json_loads(TOOL_ARGS, 0, NULL);
	ck_assert_msg(json_equal(got, want), "%s: deltas add up to '%s'", t,
	    c.args);
	json_decref(got);
	got = json_loads(res->tool_calls[0].arguments, 0, NULL);
	ck_assert_msg(json_equal(got, want), "%s: arguments '%s'", t,
	    res->tool_calls[0].arguments);
	json_decref(got);
	json_decref(want);
	llmgate_result_free(res);
	h_request_free(lreq);
	free(t);
}
END_TEST

/*
 * A tool round trip through --messages: the assistant's call and the
 * tool's result reach the provider in its own shape, and the provider's
 * answer (fakeprov echoes the result) is plain text.
 */
START_TEST(test_tool_round_trip)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "round", "tool=get_weather");
	const char *text;
	json_t *j, *req, *body, *echo, *want;
	int st;

	j = CALL_JSON(&st, "--tools", tools_path, "--messages", messages_path,
	    "-m", t);
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "finish_reason", "stop");
	expect_size(t, j, "tool_calls", 0);
	text = jstr_at(j, "text");
	ck_assert_msg(text != NULL && strncmp(text, "echo: ", 6) == 0,
	    "%s: text %s", t, jtext(j));
	/* fakeprov echoes the result it found, however it was spaced. */
	echo = json_loads(text + 6, 0, NULL);
	want = json_pack("{s:i}", "temp_c", 4);
	ck_assert_msg(echo != NULL && json_equal(echo, want),
	    "%s: the tool "
	    "result came back as '%s'",
	    t, text);
	json_decref(want);
	json_decref(echo);
	json_decref(j);

	req = h_fakeprov_last_of(fp_port, t);
	body = json_object_get(req, "body");
	if (is_openai(p)) {
		expect_str(t, body, "messages.0.role", "system");
		expect_str(t, body, "messages.1.role", "user");
		expect_str(t, body, "messages.2.role", "assistant");
		expect_str(t, body, "messages.2.tool_calls.0.id", "call_1");
		expect_str(t, body, "messages.2.tool_calls.0.type", "function");
		expect_str(t, body, "messages.2.tool_calls.0.function.name",
		    "get_weather");
		/* OpenAI carries arguments as a JSON string. */
		expect_json_text(t, body,
		    "messages.2.tool_calls.0.function.arguments",
		    "{\"city\":\"Oslo\"}");
		expect_str(t, body, "messages.3.role", "tool");
		expect_str(t, body, "messages.3.tool_call_id", "call_1");
		ck_assert_msg(content_is(jpath(body, "messages.3.content"),
		                  "{\"temp_c\": 4}"),
		    "%s: %s", t, jtext(body));
	} else if (strcmp(p->api, "anthropic") == 0) {
		ck_assert(
		    content_is(json_object_get(body, "system"), "be brief"));
		expect_str(t, body, "messages.0.role", "user");
		expect_str(t, body, "messages.1.role", "assistant");
		expect_str(t, body, "messages.1.content.0.type", "tool_use");
		expect_str(t, body, "messages.1.content.0.id", "call_1");
		expect_str(t, body, "messages.1.content.0.name", "get_weather");
		expect_json(t, body, "messages.1.content.0.input",
		    "{\"city\":\"Oslo\"}");
		/* Tool results are user turns in the Messages API. */
		expect_str(t, body, "messages.2.role", "user");
		expect_str(t, body, "messages.2.content.0.type", "tool_result");
		expect_str(t, body, "messages.2.content.0.tool_use_id",
		    "call_1");
		ck_assert_msg(content_is(jpath(body,
		                             "messages.2.content.0.content"),
		                  "{\"temp_c\": 4}"),
		    "%s: %s", t, jtext(body));
	} else {
		expect_str(t, body, "systemInstruction.parts.0.text",
		    "be brief");
		expect_str(t, body, "contents.0.role", "user");
		expect_str(t, body, "contents.1.role", "model");
		expect_str(t, body, "contents.1.parts.0.functionCall.name",
		    "get_weather");
		expect_json(t, body, "contents.1.parts.0.functionCall.args",
		    "{\"city\":\"Oslo\"}");
		/* Gemini matches a response to its call by name. */
		expect_str(t, body, "contents.2.parts.0.functionResponse.name",
		    "get_weather");
	}
	json_decref(req);
	free(t);
}
END_TEST

/* A result that a stop sequence ended; says: the provider said which. */
static void
expect_stopped(const char *t, struct llmgate_result *res, int says)
{
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_int_eq(res->finish, LLMGATE_FINISH_STOP);
	if (says)
		ck_assert_pstr_eq(res->stop_sequence, "END");
	else
		ck_assert_ptr_null(res->stop_sequence);
	llmgate_result_free(res);
}

/*
 * A reply ended by a stop sequence: Anthropic says which, and the result
 * carries it, plain, streamed and through the CLI's --json; the others'
 * stop does not say, so theirs carries none.
 */
START_TEST(test_stop_sequence)
{
	const struct prov *p = &provs[_i];
	int says = strcmp(p->api, "anthropic") == 0;
	char *t = h_target(p->name, "stopseq", "stop_seq=END");
	struct llmgate_request *req = h_request("count to five", t, NULL);
	struct llmgate_result *res = NULL;
	struct llmgate *g;
	struct collect c;
	json_t *j;
	int st;

	ck_assert_int_eq(llmgate_request_add_stop(req, "END"), 0);
	g = h_connect(&d, "check_providers");
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	llmgate_close(g);
	expect_stopped(t, res, says);

	res = lib_stream(req, &c);
	expect_stopped(t, res, says);
	h_request_free(req);

	j = CALL_JSON(&st, "--stop", "END", "-m", t, "count to five");
	ck_assert_msg(st == 0, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "finish_reason", "stop");
	if (says)
		expect_str(t, j, "stop_sequence", "END");
	else
		ck_assert_ptr_null(json_object_get(j, "stop_sequence"));
	json_decref(j);
	free(t);
}
END_TEST

/* One Gemini turn of a conversation: its one call's id, copied. */
static char *
gemini_turn(struct llmgate_request *req, const char *t)
{
	struct llmgate *g = h_connect(&d, "check_providers");
	struct llmgate_result *res = NULL;
	char *id;

	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	llmgate_close(g);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_uint_eq(res->ntool_calls, 1);
	ck_assert_ptr_nonnull(res->tool_calls[0].id);
	id = strdup(res->tool_calls[0].id);
	llmgate_result_free(res);
	return id;
}

/* The assistant turn that made call id, and the tool's answer to it. */
static void
add_call_and_result(struct llmgate_request *req, const char *id)
{
	int at;

	at = llmgate_request_add_message(req, LLMGATE_ROLE_ASSISTANT, NULL);
	ck_assert_int_ge(at, 0);
	ck_assert_int_eq(llmgate_request_add_tool_call(req, (size_t)at, id,
	                     "get_weather", "{\"city\":\"Oslo\"}"),
	    0);
	at = llmgate_request_add_message(req, LLMGATE_ROLE_TOOL,
	    "{\"temp_c\": 4}");
	ck_assert_int_ge(at, 0);
	ck_assert_int_eq(llmgate_request_set_tool_result(req, (size_t)at, id,
	                     NULL),
	    0);
}

/*
 * Gemini names no call, so llmgated does, and each turn's ids must be new:
 * two Gemini turns of one conversation, then a fallback to Anthropic,
 * which refuses a request whose tool_use ids repeat. The ids reach it
 * distinct, each tool_result names its own call, and Gemini got the
 * results back by function name.
 */
START_TEST(test_gemini_call_ids_unique)
{
	char *tg = h_target("ge", "ids", "tool=get_weather");
	char *tdown = h_target("ge", "idsdown", "status=503");
	char *ta = h_target("an", "ids", NULL);
	const char *params = "{\"type\":\"object\",\"properties\":"
	                     "{\"city\":{\"type\":\"string\"}}}";
	struct llmgate_request *req;
	struct llmgate_result *res = NULL;
	struct llmgate *g;
	json_t *last, *body;
	char *id1, *id2;

	req = h_request("weather in Oslo", tg, NULL);
	ck_assert_int_eq(llmgate_request_add_tool(req, "get_weather",
	                     "Weather for a city", params),
	    0);
	id1 = gemini_turn(req, tg);
	add_call_and_result(req, id1);
	ck_assert_int_ge(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     "and tomorrow?"),
	    0);
	id2 = gemini_turn(req, tg);
	ck_assert_msg(strcmp(id1, id2) != 0, "two turns' calls are both %s",
	    id1);
	/* Gemini matches a functionResponse by name: it got the name. */
	last = h_fakeprov_last_of(fp_port, tg);
	body = json_object_get(last, "body");
	expect_str(tg, body, "contents.2.parts.0.functionResponse.name",
	    "get_weather");
	json_decref(last);
	h_request_free(req);

	/* The third turn: Gemini is down, Anthropic answers. */
	req = h_request("weather in Oslo", tdown, ta, NULL);
	ck_assert_int_eq(llmgate_request_set_attempts(req, 1), 0);
	ck_assert_int_eq(llmgate_request_add_tool(req, "get_weather",
	                     "Weather for a city", params),
	    0);
	add_call_and_result(req, id1);
	ck_assert_int_ge(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     "and tomorrow?"),
	    0);
	add_call_and_result(req, id2);
	g = h_connect(&d, "check_providers");
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	llmgate_close(g);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", ta,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_str_eq(res->target, ta);
	last = h_fakeprov_last_of(fp_port, ta);
	body = json_object_get(last, "body");
	expect_str(ta, body, "messages.1.content.0.type", "tool_use");
	expect_str(ta, body, "messages.1.content.0.id", id1);
	expect_str(ta, body, "messages.2.content.0.tool_use_id", id1);
	expect_str(ta, body, "messages.3.content.0.id", id2);
	expect_str(ta, body, "messages.4.content.0.tool_use_id", id2);
	json_decref(last);
	llmgate_result_free(res);
	h_request_free(req);
	free(id1);
	free(id2);
	free(tg);
	free(tdown);
	free(ta);
}
END_TEST

/*
 * One row of the error table: a fault, the class it must get, whether it
 * is retried (tries 2: attempts = 2 in our config) and whether the chain
 * goes on to the next target.
 */
struct erow {
	const char *prov;   /* tried first; "x_badkey" falls back to x */
	const char *faults; /* fakeprov directives; NULL: none */
	int stream;
	const char *cls;
	int status;     /* the HTTP status every attempt records */
	int tries;      /* attempts at the failing target */
	int fallback;   /* the next target is tried */
	int waited_min; /* the retry waited at least this long */
};

#define ROW(p, f, s, c, st, n, fb, w) \
	{ \
		p, f, s, c, st, n, fb, w \
	}
#define ALL(f, s, c, st, n, fb, w) \
	ROW("oa", f, s, c, st, n, fb, w), ROW("az", f, s, c, st, n, fb, w), \
	    ROW("an", f, s, c, st, n, fb, w), ROW("ge", f, s, c, st, n, fb, w)

static const struct erow erows[] = {
	/* rate_limited: retried after the provider's Retry-After. */
	ALL("status=429+retry_after=1", 0, "rate_limited", 429, 2, 1, 990),
	ALL("status=429+retry_after_ms=300", 0, "rate_limited", 429, 2, 1, 290),
	/* Refused before the stream began: no output, a plain retry. */
	ALL("status=429", 1, "rate_limited", 429, 2, 1, 0),

	/* overloaded: 529, overloaded_error, and 503s that say so. */
	ROW("an", "status=529", 0, "overloaded", 529, 2, 1, 0),
	ROW("an", "code=overloaded_error", 0, "overloaded", 529, 2, 1, 0),
	ROW("an", "status=529", 1, "overloaded", 529, 2, 1, 0),
	/* fakeprov's 503 bodies all say "overloaded" (UNAVAILABLE). */
	ALL("status=503", 0, "overloaded", 503, 2, 1, 0),

	/* server_error */
	ALL("status=500", 0, "server_error", 500, 2, 1, 0),
	ALL("status=502", 0, "server_error", 502, 2, 1, 0),

	/* timeout: a gateway timeout is an upstream timeout. */
	ALL("status=504", 0, "timeout", 504, 2, 1, 0),
	ALL("status=408", 0, "timeout", 408, 2, 1, 0),

	/* connection: no answer, a body cut short, a stream cut at once. */
	ALL("drop", 0, "connection", 0, 2, 1, 0),
	ALL("drop", 1, "connection", 0, 2, 1, 0),
	ALL("cut=20", 0, "connection", 200, 2, 1, 0),
	ALL("cut=0", 1, "connection", 200, 2, 1, 0),

	/* parse_error: a 200 that is not the format. */
	ALL("garbage", 0, "parse_error", 200, 2, 1, 0),
	ALL("garbage", 1, "parse_error", 200, 2, 1, 0),

	/* quota_exhausted: waiting won't help; not retried, falls back. */
	ROW("oa", "code=insufficient_quota", 0, "quota_exhausted", 429, 1, 1,
	    0),
	ROW("az", "code=insufficient_quota", 0, "quota_exhausted", 429, 1, 1,
	    0),
	ALL("status=402", 0, "quota_exhausted", 402, 1, 1, 0),
	ROW("ge",
	    "code=RESOURCE_EXHAUSTED+"
	    "quota=GenerateRequestsPerDayPerProjectPerModel-FreeTier",
	    0, "quota_exhausted", 429, 1, 1, 0),
	ROW("an",
	    "status=400+msg=Your%20credit%20balance%20is%20too%20low"
	    "%20to%20access%20the%20Anthropic%20API.",
	    0, "quota_exhausted", 400, 1, 1, 0),

	/* auth: a wrong key, as each provider really answers it. */
	ROW("oa_badkey", NULL, 0, "auth", 401, 1, 1, 0),
	ROW("az_badkey", NULL, 0, "auth", 401, 1, 1, 0),
	ROW("an_badkey", NULL, 0, "auth", 401, 1, 1, 0),
	/* Gemini says 400 INVALID_ARGUMENT, reason API_KEY_INVALID. */
	ROW("ge_badkey", NULL, 0, "auth", 400, 1, 1, 0),
	ALL("status=401", 0, "auth", 401, 1, 1, 0),

	/* permission, not_found */
	ALL("status=403", 0, "permission", 403, 1, 1, 0),
	ALL("status=404", 0, "not_found", 404, 1, 1, 0),

	/* context_length, in each provider's words, and 413. */
	ROW("oa", "code=context_length_exceeded+status=400", 0,
	    "context_length", 400, 1, 1, 0),
	ROW("az", "code=context_length_exceeded+status=400", 0,
	    "context_length", 400, 1, 1, 0),
	ROW("an",
	    "status=400+msg=prompt%20is%20too%20long%3A%20210000"
	    "%20tokens%20%3E%20200000%20maximum",
	    0, "context_length", 400, 1, 1, 0),
	ROW("ge",
	    "status=400+msg=The%20input%20token%20count%20%281200000"
	    "%29%20exceeds%20the%20maximum%20number%20of%20tokens%20allowed"
	    "%20%281048576%29.",
	    0, "context_length", 400, 1, 1, 0),
	/*
	 * Compatible servers answer in each other's shapes: llama.cpp's
	 * Anthropic endpoint in OpenAI's, Ollama's native API with a plain
	 * string. Every adapter reads every shape.
	 */
	ALL("shape=llamacpp+code=exceed_context_size_error+status=400+"
	    "msg=request%20%281500%20tokens%29%20exceeds%20the%20available"
	    "%20context%20size%20%28256%20tokens%29",
	    0, "context_length", 400, 1, 1, 0),
	ALL("shape=plain+status=400+msg=the%20input%20length%20exceeds%20the"
	    "%20context%20length",
	    0, "context_length", 400, 1, 1, 0),
	ALL("shape=plain+status=400+msg=prompt%20is%20too%20long%3A%2090000"
	    "%20tokens%20%3E%2065536%20maximum",
	    1, "context_length", 400, 1, 1, 0),
	/*
	 * context_length also covers a 413 (request too large).
	 * Known bug: Gemini's 413 (INVALID_ARGUMENT "Request payload size
	 * exceeds the limit") comes out bad_request and does not fall back.
	 */
	ALL("status=413", 0, "context_length", 413, 1, 1, 0),

	/* content_filter: a filtered reply, or a prompt refused. */
	ALL("filter", 0, "content_filter", 200, 1, 1, 0),
	ROW("oa", "code=content_filter", 0, "content_filter", 400, 1, 1, 0),
	ROW("az", "code=content_filter", 0, "content_filter", 400, 1, 1, 0),

	/* bad_request: our request is wrong; no retry, no fallback. */
	ALL("status=400", 0, "bad_request", 400, 1, 0, 0),
	ALL("status=422", 0, "bad_request", 422, 1, 0, 0),
	ALL("status=400", 1, "bad_request", 400, 1, 0, 0),
};

/* The attempts at the failing target: class, status, Retry-After. */
static void
expect_failed_attempts(const char *ctx, json_t *j, const char *t,
    const struct erow *e)
{
	char path[64];
	json_t *a;
	int k;

	for (k = 0; k < e->tries; k++) {
		snprintf(path, sizeof path, "attempts.%d", k);
		a = jpath(j, path);
		expect_str(ctx, a, "target", t);
		expect_str(ctx, a, "class", e->cls);
		expect_int(ctx, a, "status", e->status);
		/*
		 * The backoff alone is at most 50 ms (max_ms); 10 ms of
		 * slack covers libevent's cached clock and ms rounding.
		 */
		if (k > 0 && e->waited_min > 0) {
			ck_assert_msg(json_integer_value(json_object_get(a,
			                  "waited_ms")) >= e->waited_min,
			    "%s: retried "
			    "after %s ms, Retry-After says %d",
			    ctx, jtext(json_object_get(a, "waited_ms")),
			    e->waited_min);
		}
	}
}

START_TEST(test_error_row)
{
	const struct erow *e = &erows[_i];
	char tag[16], fbprov[16], *t, *fb, *warm, *ctx;
	json_t *j;
	int st;

	snprintf(tag, sizeof tag, "e%d", _i);
	snprintf(fbprov, sizeof fbprov, "%.*s", (int)strcspn(e->prov, "_"),
	    e->prov);
	t = h_target(e->prov, tag, e->faults);
	snprintf(tag, sizeof tag, "e%dfb", _i);
	fb = h_target(fbprov, tag, NULL);
	ctx = h_strdup_printf("row %d (%s%s)", _i, t,
	    e->stream ? ", streamed" : "");

	/*
	 * A daemon in service has connections to its providers open; make
	 * sure one is, so every row meets that state rather than whatever
	 * the previous test left behind.
	 */
	snprintf(tag, sizeof tag, "e%dwarm", _i);
	warm = h_target(fbprov, tag, NULL);
	j = CALL_JSON(&st, "-m", warm, "warm up");
	ck_assert_msg(st == 0, "%s: warm-up exit %d: %s", ctx, st, jtext(j));
	json_decref(j);
	free(warm);

	/* Alone: the call fails with the row's class, nothing partial. */
	if (e->stream)
		j = CALL_JSON(&st, "--stream", "-m", t, "one two three");
	else
		j = CALL_JSON(&st, "-m", t, "one two three");
	ck_assert_msg(st == 4, "%s: exit %d: %s", ctx, st, jtext(j));
	expect_str(ctx, j, "error.class", e->cls);
	ck_assert_msg(json_object_get(j, "partial") == NULL &&
	        json_object_get(j, "text") == NULL,
	    "%s: output reported: %s", ctx, jtext(j));
	expect_size(ctx, j, "attempts", (size_t)e->tries);
	expect_failed_attempts(ctx, j, t, e);
	json_decref(j);
	/*
	 * The attempts listed are the requests the provider really got
	 * (libcurl's silent re-send on a dead reused connection is refused
	 * in http.c).
	 */
	ck_assert_msg(h_fakeprov_seen(fp_port, t) == e->tries,
	    "%s: fakeprov "
	    "saw %lld requests",
	    ctx, h_fakeprov_seen(fp_port, t));

	/*
	 * In a chain of two: the second target answers, or is never tried.
	 * A fresh first target: the one above may be cooling down now.
	 */
	free(t);
	snprintf(tag, sizeof tag, "e%dc", _i);
	t = h_target(e->prov, tag, e->faults);
	if (e->stream)
		j = CALL_JSON(&st, "--stream", "-m", t, "-m", fb,
		    "one two three");
	else
		j = CALL_JSON(&st, "-m", t, "-m", fb, "one two three");
	expect_failed_attempts(ctx, j, t, e);
	if (e->fallback) {
		ck_assert_msg(st == 0, "%s: no fallback, exit %d: %s", ctx, st,
		    jtext(j));
		expect_str(ctx, j, "text", "echo: one two three");
		expect_str(ctx, j, "target", fb);
		expect_size(ctx, j, "attempts", (size_t)e->tries + 1);
		expect_str(ctx,
		    json_array_get(json_object_get(j, "attempts"),
		        (size_t)e->tries),
		    "target", fb);
		expect_str(ctx,
		    json_array_get(json_object_get(j, "attempts"),
		        (size_t)e->tries),
		    "class", "ok");
		ck_assert_int_eq(h_fakeprov_seen(fp_port, fb), 1);
	} else {
		ck_assert_msg(st == 4, "%s: exit %d: %s", ctx, st, jtext(j));
		expect_str(ctx, j, "error.class", e->cls);
		expect_size(ctx, j, "attempts", (size_t)e->tries);
		ck_assert_msg(h_fakeprov_seen(fp_port, fb) == 0,
		    "%s: fell back", ctx);
	}
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), e->tries);
	json_decref(j);
	free(ctx);
	free(fb);
	free(t);
}
END_TEST

/* An id llmgated made for a call: call_ and 24 hex digits. */
static void
expect_our_call_id(const char *ctx, const char *id)
{
	ck_assert_msg(id != NULL && strlen(id) == 29 &&
	        strncmp(id, "call_", 5) == 0 &&
	        strspn(id + 5, "0123456789abcdef") == 24,
	    "%s: tool call id '%s'", ctx, id != NULL ? id : "(none)");
}

/*
 * An OpenAI-compatible server that names no tool call (no id, plain or
 * streamed): the call gets an id of llmgated's, the same in the stream's
 * first delta and in the result, and the next call another one.
 */
START_TEST(test_tool_call_unnamed)
{
	char *t = h_target("oa", "noid", TOOL_FAULTS "+tool_noid");
	struct llmgate_request *lreq;
	struct llmgate_result *res, *res2 = NULL;
	struct collect c;
	struct llmgate *g;

	lreq = h_request("weather in Oslo", t, NULL);
	res = lib_stream(lreq, &c);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_uint_eq(res->ntool_calls, 1);
	expect_our_call_id(t, res->tool_calls[0].id);
	ck_assert_str_eq(c.tool_id, res->tool_calls[0].id);
	llmgate_request_set_stream(lreq, 0);
	g = h_connect(&d, "check_providers");
	ck_assert_int_eq(llmgate_call(g, lreq, NULL, NULL, &res2), 0);
	llmgate_close(g);
	ck_assert_msg(res2->cls == LLMGATE_OK, "%s: %s: %s", t,
	    llmgate_class_name(res2->cls), res2->message);
	ck_assert_uint_eq(res2->ntool_calls, 1);
	expect_our_call_id(t, res2->tool_calls[0].id);
	ck_assert_str_ne(res2->tool_calls[0].id, res->tool_calls[0].id);
	llmgate_result_free(res);
	llmgate_result_free(res2);
	h_request_free(lreq);
	free(t);
}
END_TEST

/*
 * A stream whose tool call an OpenAI-compatible server numbers -1 or 5000:
 * the client gets one call, numbered 0, and no text chunks (tool_index -1
 * is text), nor empty calls before it. Without declared tools, so the
 * deltas are relayed as they come.
 */
START_TEST(test_tool_index_odd)
{
	static const char *indexes[] = { "-1", "5000" };
	struct llmgate_request *lreq;
	struct llmgate_result *res;
	struct collect c;
	json_t *got, *want;
	char *t, *f;
	size_t i;

	for (i = 0; i < nitems(indexes); i++) {
		f = h_strdup_printf("%s+tool_index=%s", TOOL_FAULTS,
		    indexes[i]);
		t = h_target("oa", "toolidx", f);
		lreq = h_request("weather in Oslo", t, NULL);
		res = lib_stream(lreq, &c);
		ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", t,
		    llmgate_class_name(res->cls), res->message);
		ck_assert_uint_eq(res->ntool_calls, 1);
		ck_assert_str_eq(res->tool_calls[0].name, "get_weather");
		ck_assert_int_ge(c.tool_chunks, 1);
		ck_assert_msg(c.tool_index_bad == 0,
		    "%s: a delta for a call "
		    "other than 0",
		    t);
		ck_assert_msg(c.chunks == 0, "%s: %d text chunks", t, c.chunks);
		ck_assert_str_eq(c.tool_name, "get_weather");
		want = json_loads(TOOL_ARGS, 0, NULL);
		got = json_loads(c.args, 0, NULL);
		ck_assert_msg(json_equal(got, want),
		    "%s: deltas add up to "
		    "'%s'",
		    t, c.args);
		json_decref(got);
		got = json_loads(res->tool_calls[0].arguments, 0, NULL);
		ck_assert_msg(json_equal(got, want), "%s: arguments '%s'", t,
		    res->tool_calls[0].arguments);
		json_decref(got);
		json_decref(want);
		llmgate_result_free(res);
		h_request_free(lreq);
		free(t);
		free(f);
	}
}
END_TEST

static int
starts_with(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Every attempt's stream is cut after two pieces ("echo: ", "one "): the
 * call can never complete, so it must fail, marked partial, with the
 * text the client saw; never success.
 */
START_TEST(test_stream_cut)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "cut", "cut=2");
	char *t2 = h_target(p->name, "cutfail", "cut=2");
	char *fb = h_target(p->name, "cutfb", NULL);
	struct run r;
	json_t *j;
	size_t k;
	int st;

	/* Default --on-cut resume: the resumed attempt is cut as well. */
	j = CALL_JSON(&st, "--stream", "-m", t, "one two three four five");
	ck_assert_msg(st == 4, "%s: a cut stream reported as exit %d: %s", t,
	    st, jtext(j));
	expect_str(t, j, "error.class", "connection");
	ck_assert_msg(json_is_true(json_object_get(j, "partial")),
	    "%s: not partial: %s", t, jtext(j));
	ck_assert_msg(starts_with(jstr_at(j, "text"), "echo: one "),
	    "%s: partial text: %s", t, jtext(j));
	/* connection is retried: the second attempt is the resume. */
	expect_size(t, j, "attempts", 2);
	for (k = 0; k < 2; k++) {
		expect_str(t, json_array_get(json_object_get(j, "attempts"), k),
		    "class", "connection");
	}
	json_decref(j);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 2);

	/* Without --json: what was printed stays, and exit 4 says failed. */
	CLI(&r, "call", "--stream", "-m", t, "one two three four five");
	ck_assert_msg(r.status == 4, "%s: exit %d", t, r.status);
	ck_assert_msg(starts_with(r.out, "echo: one "), "%s: stdout '%s'", t,
	    r.out);
	ck_assert_msg(strstr(r.err, "connection") != NULL, "%s: stderr '%s'", t,
	    r.err);
	h_run_free(&r);

	/* --on-cut fail: the cut ends the call; the chain stops there. */
	j = CALL_JSON(&st, "--stream", "--on-cut", "fail", "-m", t2, "-m", fb,
	    "one two three four five");
	ck_assert_msg(st == 4, "%s: exit %d: %s", t2, st, jtext(j));
	expect_str(t2, j, "error.class", "connection");
	ck_assert(json_is_true(json_object_get(j, "partial")));
	expect_str(t2, j, "text", "echo: one ");
	expect_size(t2, j, "attempts", 1);
	json_decref(j);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, fb), 0);
	free(fb);
	free(t2);
	free(t);
}
END_TEST

/*
 * The stream loses only its terminal event ([DONE], message_stop; for
 * Gemini the finishReason chunk): the text may be all there, but the
 * reply was not finished, so it is no success.
 */
START_TEST(test_stream_cut_at_end)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "cutend", "cut=100");
	json_t *j;
	int st;

	j = CALL_JSON(&st, "--stream", "--on-cut", "fail", "-m", t, "one two");
	ck_assert_msg(st == 4, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "error.class", "connection");
	ck_assert(json_is_true(json_object_get(j, "partial")));
	/* Gemini's last piece rides on the finishReason chunk. */
	expect_str(t, j, "text",
	    strcmp(p->api, "gemini") == 0 ? "echo: one " : "echo: one two");
	json_decref(j);
	free(t);
}
END_TEST

/*
 * A cut once, then a clean stream: resume sends the partial reply back
 * as the assistant's turn and relays only what follows, so the caller's
 * chunks are the final text, with nothing repeated or reset.
 */
START_TEST(test_stream_cut_resumed)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "resume", "fail=1+cut=2");
	struct llmgate_request *req =
	    h_request("one two three four five", t, NULL);
	struct llmgate_result *res;
	struct collect c;
	json_t *last, *turns;
	size_t n;

	res = lib_stream(req, &c);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s", t,
	    llmgate_class_name(res->cls), res->message);
	ck_assert_uint_eq(res->nattempts, 2);
	ck_assert_int_eq(res->attempts[0].cls, LLMGATE_CONNECTION);
	ck_assert_int_eq(res->attempts[1].cls, LLMGATE_OK);
	ck_assert_int_eq(c.resets, 0);
	ck_assert_str_eq(c.text, res->text);
	ck_assert_msg(starts_with(res->text, "echo: one ") &&
	        !starts_with(res->text + 10, "echo: one "),
	    "%s: text '%s'", t, res->text);

	last = h_fakeprov_last_of(fp_port, t);
	turns = jpath(last,
	    is_openai(p) || strcmp(p->api, "anthropic") == 0 ? "body.messages" :
	                                                       "body.contents");
	n = json_array_size(turns);
	ck_assert_msg(n == 3, "%s: resume sent %s", t, jtext(turns));
	ck_assert_str_eq(jstr_at(json_array_get(turns, 1), "role"),
	    strcmp(p->api, "gemini") == 0 ? "model" : "assistant");
	ck_assert_msg(content_is(strcmp(p->api, "gemini") == 0 ?
	                      jpath(json_array_get(turns, 1), "parts") :
	                      json_object_get(json_array_get(turns, 1),
	                          "content"),
	                  "echo: one "),
	    "%s: the partial reply sent back: %s", t, jtext(turns));
	ck_assert_str_eq(jstr_at(json_array_get(turns, 2), "role"), "user");
	json_decref(last);
	llmgate_result_free(res);
	h_request_free(req);
	free(t);
}
END_TEST

/* An error event inside a 200 stream, classified by what it says. */
START_TEST(test_stream_error)
{
	const struct prov *p = &provs[_i];
	char *t = h_target(p->name, "serr", "stream_error");
	/* OpenAI's event is a server_error; the others say overloaded. */
	const char *cls = is_openai(p) ? "server_error" : "overloaded";
	json_t *j;
	int st;

	j = CALL_JSON(&st, "--stream", "-m", t, "one two three four five");
	ck_assert_msg(st == 4, "%s: exit %d: %s", t, st, jtext(j));
	expect_str(t, j, "error.class", cls);
	ck_assert(json_is_true(json_object_get(j, "partial")));
	ck_assert_msg(starts_with(jstr_at(j, "text"), "echo: one "), "%s: %s",
	    t, jtext(j));
	expect_size(t, j, "attempts", 2);
	expect_str(t, j, "attempts.0.class", cls);
	expect_int(t, j, "attempts.0.status", 200);
	expect_str(t, j, "attempts.1.class", cls);
	json_decref(j);
	free(t);
}
END_TEST

/*
 * Last: the whole suite's daemon log. It must record the calls (so this
 * is the right log) and hold neither key.
 */
/*
 * A provider whose api_key_env is unset or empty has no key: its attempts
 * fail with auth at once, never reaching the network, and the chain
 * falls back. One with no key source at all (a local server) is called.
 */
START_TEST(test_missing_key)
{
	static const struct {
		const char *prov;
		const char *msg;
	} cases[] = {
		{ "oa_nokey",
		    "no API key for provider oa_nokey: set "
		    "LLMGATE_TEST_UNSET_KEY or api_key_file" },
		{ "an_emptykey",
		    "no API key for provider an_emptykey: set "
		    "LLMGATE_TEST_EMPTY_KEY or api_key_file" },
	};
	char tag[32], *t, *fb, *ctx;
	json_t *j;
	size_t i;
	int st;

	for (i = 0; i < nitems(cases); i++) {
		snprintf(tag, sizeof tag, "nokey%zu", i);
		t = h_target(cases[i].prov, tag, NULL);
		snprintf(tag, sizeof tag, "nokey%zufb", i);
		fb = h_target("oa_envkey", tag, NULL);
		ctx = h_strdup_printf("%s", t);

		/* In a chain: the next target answers. */
		j = CALL_JSON(&st, "-m", t, "-m", fb, "one two");
		ck_assert_msg(st == 0, "%s: exit %d: %s", ctx, st, jtext(j));
		expect_str(ctx, j, "text", "echo: one two");
		expect_str(ctx, j, "target", fb);
		expect_size(ctx, j, "attempts", 2);
		expect_str(ctx, j, "attempts.0.target", t);
		expect_str(ctx, j, "attempts.0.class", "auth");
		expect_str(ctx, j, "attempts.0.message", cases[i].msg);
		expect_str(ctx, j, "attempts.1.class", "ok");
		json_decref(j);

		/* Alone, with retries allowed: one attempt, auth, at once. */
		j = CALL_JSON(&st, "--attempts", "3", "-m", t, "one two");
		ck_assert_msg(st == 4, "%s: exit %d: %s", ctx, st, jtext(j));
		expect_str(ctx, j, "error.class", "auth");
		expect_str(ctx, j, "error.message", cases[i].msg);
		expect_size(ctx, j, "attempts", 1);
		json_decref(j);

		ck_assert_msg(h_fakeprov_seen(fp_port, t) == 0,
		    "%s: fakeprov "
		    "saw %lld requests",
		    ctx, h_fakeprov_seen(fp_port, t));
		ck_assert_int_eq(h_fakeprov_seen(fp_port, fb), 1);
		free(ctx);
		free(fb);
		free(t);
	}

	/* No key source configured: the request goes, without a key. */
	t = h_target("oa_local", "nokey", NULL);
	j = CALL_JSON(&st, "-m", t, "one two");
	ck_assert_msg(st == 4, "oa_local: exit %d: %s", st, jtext(j));
	expect_str("oa_local", j, "attempts.0.class", "auth");
	expect_int("oa_local", j, "attempts.0.status", 401);
	json_decref(j);
	ck_assert_int_eq(h_fakeprov_seen(fp_port, t), 1);
	j = h_fakeprov_last_of(fp_port, t);
	ck_assert_msg(jpath(j, "headers.authorization") == NULL,
	    "oa_local sent a key: %s", jtext(j));
	json_decref(j);
	free(t);
}
END_TEST

START_TEST(test_log_has_no_key)
{
	char *log = h_daemon_log(&d);

	ck_assert_msg(strstr(log, "oa_badkey/") != NULL &&
	        strstr(log, "ge/") != NULL,
	    "the daemon's log lacks the calls");
	ck_assert_msg(strstr(log, TEST_KEY) == NULL, "the key is in the log");
	ck_assert_msg(strstr(log, BAD_KEY) == NULL,
	    "the wrong key is in the log");
	free(log);
}
END_TEST

static Suite *
providers_suite(void)
{
	Suite *s = suite_create("providers");
	TCase *tc = tcase_create("providers");
	int n = (int)nitems(provs);

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_plain, 0, n);
	tcase_add_loop_test(tc, test_finish_length, 0, n);
	tcase_add_loop_test(tc, test_translation, 0, n);
	tcase_add_loop_test(tc, test_stream_cli, 0, n);
	tcase_add_loop_test(tc, test_stream_lib, 0, n);
	tcase_add_loop_test(tc, test_tool_call, 0, n);
	tcase_add_loop_test(tc, test_tool_call_stream, 0, n);
	tcase_add_loop_test(tc, test_tool_round_trip, 0, n);
	tcase_add_loop_test(tc, test_stop_sequence, 0, n);
	tcase_add_loop_test(tc, test_error_row, 0, (int)nitems(erows));
	tcase_add_loop_test(tc, test_stream_cut, 0, n);
	tcase_add_loop_test(tc, test_stream_cut_at_end, 0, n);
	tcase_add_loop_test(tc, test_stream_cut_resumed, 0, n);
	tcase_add_loop_test(tc, test_stream_error, 0, n);
	/* After every call of the suite. */
	tcase_add_test(tc, test_missing_key);
	tcase_add_test(tc, test_tool_index_odd);
	tcase_add_test(tc, test_gemini_call_ids_unique);
	tcase_add_test(tc, test_tool_call_unnamed);
	tcase_add_test(tc, test_log_has_no_key);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return h_fixture_main("check_providers", providers_suite(), &d, &fp_pid,
	    &fixture_failed);
}
