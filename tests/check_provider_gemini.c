/*
 * check_provider_gemini.c: the Gemini adapter against exact request bodies
 * and recorded responses, streams and error bodies (tests/data/gemini).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "llmgated.h"
#include "context.h"

#ifndef TEST_DATA
#define TEST_DATA "tests/data"
#endif

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof(a)[0])
#endif

#define BASE "https://generativelanguage.googleapis.com/v1beta"

static const struct provider_type *gp = &provider_gemini;

static char *
slurp(const char *name, size_t *lenp)
{
	char path[512], *data;
	size_t len = 0, n;
	FILE *f;

	snprintf(path, sizeof path, "%s/gemini/%s", TEST_DATA, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	data = xmalloc(1);
	for (;;) {
		data = xreallocarray(data, len + 4096 + 1, 1);
		if ((n = fread(data + len, 1, 4096, f)) == 0)
			break;
		len += n;
	}
	fclose(f);
	data[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return data;
}

/* Every emitted chunk as one line, so a test can compare them exactly. */
static void
cap_emit(void *arg, const struct llmgate_chunk *ch)
{
	struct buf *b = arg;

	if (ch->tool_index < 0) {
		buf_printf(b, "text:%.*s\n", (int)ch->len, ch->text);
		return;
	}
	buf_printf(b, "tool%d:%s:%s:%s\n", ch->tool_index,
	    ch->tool_id != NULL ? ch->tool_id : "-",
	    ch->tool_name != NULL ? ch->tool_name : "-",
	    ch->tool_args != NULL ? ch->tool_args : "-");
}

static struct buf cap;
static struct reply r;

static void
setup(void)
{
	memset(&cap, 0, sizeof cap);
	reply_init(&r, cap_emit, &cap);
}

static void
teardown(void)
{
	reply_free(&r);
	buf_free(&cap);
}

static void
req_clear(struct http_req *hr)
{
	free(hr->url);
	free(hr->body);
	curl_slist_free_all(hr->headers);
	memset(hr, 0, sizeof *hr);
}

static char *
headers_str(const struct curl_slist *h)
{
	struct buf b;

	memset(&b, 0, sizeof b);
	for (; h != NULL; h = h->next)
		buf_printf(&b, "%s\n", h->data);
	return b.data != NULL ? b.data : xstrdup("");
}

/*
 * A tiny event-stream splitter: joins data lines, dispatches on a blank
 * line, at most max events (-1: all). Returns the last event() result.
 */
static int
feed(struct reply *rp, const char *name, int max)
{
	struct sse_event ev;
	struct buf data;
	char *text, *line, *next, *end;
	int rv = 0, n = 0, has = 0;

	text = slurp(name, NULL);
	memset(&data, 0, sizeof data);
	for (line = text; *line != '\0' && (max < 0 || n < max); line = next) {
		if ((end = strchr(line, '\n')) != NULL)
			next = end + 1;
		else
			next = end = line + strlen(line);
		if (end > line && end[-1] == '\r')
			end--;
		*end = '\0';
		if (strncmp(line, "data:", 5) == 0) {
			line += 5;
			if (*line == ' ')
				line++;
			if (has)
				buf_add(&data, "\n", 1);
			buf_addstr(&data, line);
			has = 1;
			continue;
		}
		if (*line != '\0' || !has)
			continue;
		memset(&ev, 0, sizeof ev);
		ev.data = buf_cstr(&data);
		ev.len = data.len;
		rv = gp->event(rp, &ev);
		buf_reset(&data);
		has = 0;
		n++;
		if (rv != 0)
			break;
	}
	buf_free(&data);
	free(text);
	return rv;
}

static int
event_str(struct reply *rp, const char *s)
{
	struct sse_event ev;

	memset(&ev, 0, sizeof ev);
	ev.data = s;
	ev.len = strlen(s);
	return gp->event(rp, &ev);
}

/* --- build --- */

static struct provider_conf prov = {
	.name = "google",
	.base_url = BASE "/",
	.api_key = "AIzaTESTKEY",
};

static struct llmgate_message one_user[] = {
	{ .role = LLMGATE_ROLE_USER, .content = "Capital of Norway?" },
};

START_TEST(test_build_minimal)
{
	struct llmgate_request req = { .messages = one_user, .nmessages = 1 };
	struct http_req hr = { 0 };
	char *cause = NULL, *h;

	ck_assert_int_eq(gp->build(&hr, &prov, "gemini-2.5-flash", &req,
	                     &cause),
	    0);
	ck_assert_ptr_null(cause);
	ck_assert_str_eq(hr.url,
	    BASE "/models/gemini-2.5-flash:generateContent");
	h = headers_str(hr.headers);
	ck_assert_str_eq(h,
	    "Content-Type: application/json\n"
	    "x-goog-api-key: AIzaTESTKEY\n");
	free(h);
	ck_assert_str_eq(hr.body,
	    "{\"contents\":[{\"role\":\"user\","
	    "\"parts\":[{\"text\":\"Capital of Norway?\"}]}]}");
	ck_assert_uint_eq(hr.body_len, strlen(hr.body));
	req_clear(&hr);
}
END_TEST

START_TEST(test_build_no_key)
{
	struct provider_conf p = { .name = "local", .base_url = BASE };
	struct llmgate_request req = { .messages = one_user, .nmessages = 1 };
	struct http_req hr = { 0 };
	char *cause = NULL, *h;

	/* "models/x" as the model list spells it, and no key configured. */
	ck_assert_int_eq(gp->build(&hr, &p, "models/gemini-2.0-flash", &req,
	                     &cause),
	    0);
	ck_assert_str_eq(hr.url,
	    BASE "/models/gemini-2.0-flash:generateContent");
	h = headers_str(hr.headers);
	ck_assert_str_eq(h, "Content-Type: application/json\n");
	free(h);
	req_clear(&hr);
}
END_TEST

static struct llmgate_tool_call rich_calls[] = {
	{ .id = "call_0",
	    .name = "get_weather",
	    .arguments = "{\"city\": \"Oslo\"}" },
	{ .id = "call_1", .name = "get_time", .arguments = "" },
};

static struct llmgate_message rich_msgs[] = {
	{ .role = LLMGATE_ROLE_USER, .content = "Weather and time in Oslo?" },
	{ .role = LLMGATE_ROLE_ASSISTANT,
	    .content = "Let me check.",
	    .tool_calls = rich_calls,
	    .ntool_calls = 2 },
	/* No name: found through the call it answers. */
	{ .role = LLMGATE_ROLE_TOOL,
	    .tool_call_id = "call_0",
	    .content = "{\"temp_c\": 4.5, \"sky\": \"clear\"}" },
	/* Not an object: wrapped. */
	{ .role = LLMGATE_ROLE_TOOL,
	    .tool_call_id = "call_1",
	    .name = "get_time",
	    .content = "14:05" },
	{ .role = LLMGATE_ROLE_USER, .content = "Thanks. And tomorrow?" },
};

static struct llmgate_tool rich_tools[] = {
	{ .name = "get_weather",
	    .description = "Current weather",
	    .parameters =
	        "{\"type\": \"object\", \"properties\": "
	        "{\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}" },
	{ .name = "get_time" },
};

static char *rich_stop[] = { "END", "\n\n" };

static void
rich_request(struct llmgate_request *req)
{
	memset(req, 0, sizeof *req);
	req->system = "Answer briefly.";
	req->messages = rich_msgs;
	req->nmessages = nitems(rich_msgs);
	req->tools = rich_tools;
	req->ntools = nitems(rich_tools);
	req->schema = "{\"type\":\"object\",\"properties\":{\"temp_c\":"
	              "{\"type\":\"number\"}},\"required\":[\"temp_c\"]}";
	req->has = LLMGATE_HAS_MAX_TOKENS | LLMGATE_HAS_TEMPERATURE |
	    LLMGATE_HAS_TOP_P | LLMGATE_HAS_SEED;
	req->max_tokens = 200;
	req->temperature = 0.3;
	req->top_p = 0.95;
	req->seed = 42;
	req->stop = rich_stop;
	req->nstop = 2;
	req->stream = 1;
}

/* The rich request on copies of its arrays, for a case to break. */
static void
rich_copy(struct llmgate_request *req, struct llmgate_tool_call *calls,
    struct llmgate_message *msgs, struct llmgate_tool *tools)
{
	rich_request(req);
	memcpy(calls, rich_calls, sizeof rich_calls);
	memcpy(msgs, rich_msgs, sizeof rich_msgs);
	memcpy(tools, rich_tools, sizeof rich_tools);
	msgs[1].tool_calls = calls;
	req->messages = msgs;
	req->tools = tools;
}

START_TEST(test_build_rich)
{
	struct llmgate_request req;
	struct http_req hr = { 0 };
	char *cause = NULL, *h;

	rich_request(&req);
	ck_assert_int_eq(gp->build(&hr, &prov, "gemini-2.5-flash", &req,
	                     &cause),
	    0);
	ck_assert_str_eq(hr.url,
	    BASE "/models/gemini-2.5-flash:"
	         "streamGenerateContent?alt=sse");
	h = headers_str(hr.headers);
	ck_assert_str_eq(h,
	    "Content-Type: application/json\n"
	    "Accept: text/event-stream\n"
	    "x-goog-api-key: AIzaTESTKEY\n");
	free(h);
	ck_assert_str_eq(hr.body,
	    "{\"systemInstruction\":{\"parts\":"
	    "[{\"text\":\"Answer briefly.\"}]},"
	    "\"contents\":["
	    "{\"role\":\"user\",\"parts\":"
	    "[{\"text\":\"Weather and time in Oslo?\"}]},"
	    "{\"role\":\"model\",\"parts\":[{\"text\":\"Let me check.\"},"
	    "{\"functionCall\":{\"name\":\"get_weather\","
	    "\"args\":{\"city\":\"Oslo\"}}},"
	    "{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},"
	    "{\"role\":\"user\",\"parts\":["
	    "{\"functionResponse\":{\"name\":\"get_weather\","
	    "\"response\":{\"temp_c\":4.5,\"sky\":\"clear\"}}},"
	    "{\"functionResponse\":{\"name\":\"get_time\","
	    "\"response\":{\"result\":\"14:05\"}}},"
	    "{\"text\":\"Thanks. And tomorrow?\"}]}],"
	    "\"generationConfig\":{\"maxOutputTokens\":200,\"temperature\":0.3,"
	    "\"topP\":0.95,\"seed\":42,\"stopSequences\":[\"END\",\"\\n\\n\"],"
	    "\"responseMimeType\":\"application/json\","
	    "\"responseJsonSchema\":{\"type\":\"object\",\"properties\":"
	    "{\"temp_c\":{\"type\":\"number\"}},\"required\":[\"temp_c\"]}},"
	    "\"tools\":[{\"functionDeclarations\":["
	    "{\"name\":\"get_weather\",\"description\":\"Current weather\","
	    "\"parameters\":{\"type\":\"object\",\"properties\":"
	    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},"
	    "{\"name\":\"get_time\"}]}]}");
	req_clear(&hr);
}
END_TEST

START_TEST(test_build_merge_turns)
{
	struct llmgate_message m[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "one" },
		{ .role = LLMGATE_ROLE_USER, .content = "two" },
		/* Empty: dropped, so "two" and "2b" share a turn. */
		{ .role = LLMGATE_ROLE_ASSISTANT, .content = "" },
		{ .role = LLMGATE_ROLE_USER, .content = "2b" },
		{ .role = LLMGATE_ROLE_ASSISTANT, .content = "three" },
		{ .role = LLMGATE_ROLE_USER, .content = "four" },
	};
	struct llmgate_request req = { .messages = m, .nmessages = nitems(m) };
	struct http_req hr = { 0 };
	char *cause = NULL;

	ck_assert_int_eq(gp->build(&hr, &prov, "gemini-2.5-flash", &req,
	                     &cause),
	    0);
	ck_assert_str_eq(hr.body,
	    "{\"contents\":["
	    "{\"role\":\"user\",\"parts\":"
	    "[{\"text\":\"one\"},{\"text\":\"two\"},"
	    "{\"text\":\"2b\"}]},"
	    "{\"role\":\"model\",\"parts\":[{\"text\":\"three\"}]},"
	    "{\"role\":\"user\",\"parts\":[{\"text\":\"four\"}]}]}");
	req_clear(&hr);
}
END_TEST

START_TEST(test_build_tool_name)
{
	struct llmgate_message m[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "Look it up." },
		/* A name and no call id; a scalar result is wrapped as text. */
		{ .role = LLMGATE_ROLE_TOOL,
		    .name = "lookup",
		    .content = "42" },
		{ .role = LLMGATE_ROLE_TOOL, .name = "lookup" },
	};
	struct llmgate_request req = { .messages = m, .nmessages = nitems(m) };
	struct http_req hr = { 0 };
	char *cause = NULL;

	ck_assert_int_eq(gp->build(&hr, &prov, "gemini-2.5-flash", &req,
	                     &cause),
	    0);
	ck_assert_str_eq(hr.body,
	    "{\"contents\":[{\"role\":\"user\",\"parts\":["
	    "{\"text\":\"Look it up.\"},"
	    "{\"functionResponse\":{\"name\":\"lookup\","
	    "\"response\":{\"result\":\"42\"}}},"
	    "{\"functionResponse\":{\"name\":\"lookup\","
	    "\"response\":{\"result\":\"\"}}}]}]}");
	req_clear(&hr);
}
END_TEST

/*
 * What the cases above leave out: each tool choice, a result that is an
 * array (wrapped), an object result written compact, and which field a
 * UTF-8 refusal names.
 */
START_TEST(test_build_tool_config)
{
	struct llmgate_tool tools[] = { { .name = "f", .parameters = "{}" } };
	struct llmgate_message m[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "go" },
		{ .role = LLMGATE_ROLE_TOOL, .name = "f", .content = "[1, 2]" },
		{ .role = LLMGATE_ROLE_TOOL,
		    .name = "f",
		    .content = " { \"a\" : [ true , null ] } " },
	};
	struct llmgate_request req = { .messages = m,
		.nmessages = nitems(m),
		.tools = tools,
		.ntools = 1 };
	static const char *const want[] = {
		"",
		",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"NONE\"}}",
		",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\"}}",
		",\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\","
		"\"allowedFunctionNames\":[\"f\"]}}",
	};
	struct http_req hr = { 0 };
	char *cause = NULL;
	size_t i;
	char body[1024];

	for (i = 0; i < nitems(want); i++) {
		req.tool_choice = i == 0 ? LLMGATE_TOOLS_AUTO :
		    i == 1               ? LLMGATE_TOOLS_NONE :
		                           LLMGATE_TOOLS_REQUIRED;
		req.tool_name = i == 3 ? "f" : NULL;
		ck_assert_int_eq(gp->build(&hr, &prov, "gemini-2.5-flash", &req,
		                     &cause),
		    0);
		snprintf(body, sizeof body,
		    "{\"contents\":[{\"role\":\"user\",\"parts\":["
		    "{\"text\":\"go\"},"
		    "{\"functionResponse\":{\"name\":\"f\","
		    "\"response\":{\"result\":\"[1, 2]\"}}},"
		    "{\"functionResponse\":{\"name\":\"f\","
		    "\"response\":{\"a\":[true,null]}}}]}],"
		    "\"tools\":[{\"functionDeclarations\":[{\"name\":\"f\","
		    "\"parameters\":{}}]}]%s}",
		    want[i]);
		ck_assert_str_eq(hr.body, body);
		req_clear(&hr);
	}
}
END_TEST

static const char *const bad_utf8_causes[] = {
	"system prompt: not valid UTF-8",
	"tool call name: not valid UTF-8",
	"tool name: not valid UTF-8",
	"tool result: not valid UTF-8",
	"stop sequence: not valid UTF-8",
	"tool name: not valid UTF-8",
	"tool description: not valid UTF-8",
	"message text: not valid UTF-8",
};

START_TEST(test_build_bad_utf8)
{
	struct llmgate_tool_call calls[2];
	struct llmgate_message msgs[nitems(rich_msgs)];
	struct llmgate_tool tools[nitems(rich_tools)];
	char *stop[] = { "END", "\xff" };
	struct llmgate_request req;
	struct http_req hr = { 0 };
	char *cause = NULL;

	rich_copy(&req, calls, msgs, tools);
	switch (_i) {
	case 0:
		req.system = "\xc3";
		break;
	case 1:
		calls[1].name = "t\xed\xa0\x80";
		break;
	case 2:
		msgs[3].name = "\x80";
		break;
	case 3:
		msgs[3].content = "\xfe";
		break;
	case 4:
		req.stop = stop;
		break;
	case 5:
		tools[1].name = "\xc0\xaf";
		break;
	case 6:
		tools[1].description = "d\xe2\x82";
		break;
	default:
		msgs[4].content = "\xf5";
		break;
	}
	ck_assert_int_eq(gp->build(&hr, &prov, "gemini-2.5-flash", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause, bad_utf8_causes[_i]);
	ck_assert_ptr_null(hr.url);
	ck_assert_ptr_null(hr.body);
	free(cause);
}
END_TEST

/* Each case breaks the rich request in one way; build must refuse it. */
static const struct {
	const char *what;
	const char *cause;
} bad_cases[] = {
	{ "parameters", "tool parameters: invalid JSON" },
	{ "parameters-array", "tool parameters: not a JSON object" },
	{ "arguments", "tool call arguments: invalid JSON" },
	{ "arguments-array", "tool call arguments: not a JSON object" },
	{ "schema", "schema: invalid JSON" },
	{ "no-name", "message 2: tool result without a function name" },
	{ "utf8", "message text: not valid UTF-8" },
	{ "empty", "no message to send" },
};

START_TEST(test_build_invalid)
{
	struct llmgate_tool_call calls[2];
	struct llmgate_message msgs[nitems(rich_msgs)];
	struct llmgate_tool tools[nitems(rich_tools)];
	struct llmgate_request req;
	struct http_req hr = { 0 };
	const char *what = bad_cases[_i].what;
	char *cause = NULL;

	rich_copy(&req, calls, msgs, tools);
	if (strcmp(what, "parameters") == 0)
		tools[0].parameters = "{\"type\": \"object\",";
	else if (strcmp(what, "parameters-array") == 0)
		tools[0].parameters = "[]";
	else if (strcmp(what, "arguments") == 0)
		calls[0].arguments = "{\"city\": Oslo}";
	else if (strcmp(what, "arguments-array") == 0)
		calls[0].arguments = "[\"Oslo\"]";
	else if (strcmp(what, "schema") == 0)
		req.schema = "{\"type\": \"object\"} trailing";
	else if (strcmp(what, "no-name") == 0)
		msgs[2].tool_call_id = "call_unknown";
	else if (strcmp(what, "utf8") == 0)
		msgs[0].content = "caf\xc3";
	else if (strcmp(what, "empty") == 0)
		req.nmessages = 0;

	ck_assert_int_eq(gp->build(&hr, &prov, "gemini-2.5-flash", &req,
	                     &cause),
	    -1);
	ck_assert_ptr_nonnull(cause);
	ck_assert_msg(strncmp(cause, bad_cases[_i].cause,
	                  strlen(bad_cases[_i].cause)) == 0,
	    "%s: cause \"%s\"", what, cause);
	ck_assert_ptr_null(hr.url);
	ck_assert_ptr_null(hr.body);
	free(cause);
}
END_TEST

/* --- parse --- */

static int
parse_file(const char *name)
{
	size_t len;
	char *body;
	int rv;

	body = slurp(name, &len);
	rv = gp->parse(&r, body, len);
	free(body);
	return rv;
}

/* An id llmgated made up: "call_" and 24 lowercase hex digits. */
static void
made_up_id(const char *id)
{
	size_t i;

	ck_assert_ptr_nonnull(id);
	ck_assert_msg(strncmp(id, "call_", 5) == 0, "id %s", id);
	ck_assert_uint_eq(strlen(id), 5 + 24);
	for (i = 5; id[i] != '\0'; i++)
		ck_assert_msg(strchr("0123456789abcdef", id[i]) != NULL,
		    "id %s", id);
}

START_TEST(test_parse_text)
{
	ck_assert_int_eq(parse_file("text.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Oslo is the capital of Norway.");
	ck_assert_str_eq(buf_cstr(&cap),
	    "text:Oslo is the capital of Norway.\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_uint_eq(r.input_tokens, 9);
	/* Thinking tokens are billed as output. */
	ck_assert_uint_eq(r.output_tokens, 8 + 24);
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.ntools, 0);
}
END_TEST

START_TEST(test_parse_thought_skipped)
{
	ck_assert_int_eq(parse_file("thought.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Oslo");
	ck_assert_str_eq(buf_cstr(&cap), "text:Oslo\n");
	ck_assert_uint_eq(r.input_tokens, 14);
	ck_assert_uint_eq(r.output_tokens, 1 + 57);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
}
END_TEST

START_TEST(test_parse_function_call)
{
	char want[256];

	ck_assert_int_eq(parse_file("function_call.json"), 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_uint_eq(r.ntools, 2);
	made_up_id(r.tools[0].id);
	ck_assert_str_eq(r.tools[0].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args), "{\"city\":\"Oslo\"}");
	made_up_id(r.tools[1].id);
	ck_assert_str_ne(r.tools[0].id, r.tools[1].id);
	ck_assert_str_eq(r.tools[1].name, "get_time");
	ck_assert_str_eq(buf_cstr(&r.tools[1].args),
	    "{\"tz\":\"Europe/Oslo\",\"precise\":true,\"offset\":1.5}");
	snprintf(want, sizeof want,
	    "tool0:%s:get_weather:{\"city\":\"Oslo\"}\n"
	    "tool1:%s:get_time:"
	    "{\"tz\":\"Europe/Oslo\",\"precise\":true,\"offset\":1.5}\n",
	    r.tools[0].id, r.tools[1].id);
	ck_assert_str_eq(buf_cstr(&cap), want);
	ck_assert_str_eq(buf_cstr(&r.text), "");
	ck_assert_uint_eq(r.input_tokens, 71);
	ck_assert_uint_eq(r.output_tokens, 34 + 82);
}
END_TEST

START_TEST(test_parse_function_call_id)
{
	const char *body =
	    "{\"candidates\":[{\"content\":{\"role\":\"model\","
	    "\"parts\":[{\"text\":\"Checking.\"},{\"functionCall\":"
	    "{\"id\":\"fc-7f3a\",\"name\":\"lookup\"}}]},"
	    "\"finishReason\":\"STOP\",\"index\":0}]}";

	ck_assert_int_eq(gp->parse(&r, body, strlen(body)), 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_str_eq(buf_cstr(&cap),
	    "text:Checking.\ntool0:fc-7f3a:lookup:{}\n");
	ck_assert_uint_eq(r.input_tokens, 0);
	ck_assert_uint_eq(r.output_tokens, 0);
}
END_TEST

START_TEST(test_parse_max_tokens)
{
	ck_assert_int_eq(parse_file("max_tokens.json"), 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_LENGTH);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_uint_eq(r.output_tokens, 16);
}
END_TEST

START_TEST(test_parse_safety)
{
	ck_assert_int_eq(parse_file("safety.json"), 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_str_eq(r.message, "finishReason SAFETY");
	ck_assert_str_eq(buf_cstr(&r.text), "");
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.input_tokens, 21);
}
END_TEST

START_TEST(test_parse_malformed_call)
{
	ck_assert_int_eq(parse_file("malformed_function_call.json"), 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_OTHER);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_str_eq(r.message,
	    "finishReason MALFORMED_FUNCTION_CALL: "
	    "Malformed function call: print(default_api.get_weather("
	    "city=\"Oslo\", units=celsius))");
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(test_parse_blocked_prompt)
{
	ck_assert_int_eq(parse_file("blocked_prompt.json"), 0);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_str_eq(r.message, "prompt blocked: PROHIBITED_CONTENT");
	ck_assert_uint_eq(r.input_tokens, 17);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

static const struct {
	const char *reason;
	enum llmgate_finish finish;
	enum llmgate_class cls;
} finish_cases[] = {
	{ "STOP", LLMGATE_FINISH_STOP, LLMGATE_OK },
	{ "MAX_TOKENS", LLMGATE_FINISH_LENGTH, LLMGATE_OK },
	{ "SAFETY", LLMGATE_FINISH_CONTENT_FILTER, LLMGATE_CONTENT_FILTER },
	{ "RECITATION", LLMGATE_FINISH_CONTENT_FILTER, LLMGATE_CONTENT_FILTER },
	{ "BLOCKLIST", LLMGATE_FINISH_CONTENT_FILTER, LLMGATE_CONTENT_FILTER },
	{ "PROHIBITED_CONTENT", LLMGATE_FINISH_CONTENT_FILTER,
	    LLMGATE_CONTENT_FILTER },
	{ "SPII", LLMGATE_FINISH_CONTENT_FILTER, LLMGATE_CONTENT_FILTER },
	{ "IMAGE_SAFETY", LLMGATE_FINISH_CONTENT_FILTER,
	    LLMGATE_CONTENT_FILTER },
	{ "IMAGE_PROHIBITED_CONTENT", LLMGATE_FINISH_CONTENT_FILTER,
	    LLMGATE_CONTENT_FILTER },
	{ "IMAGE_RECITATION", LLMGATE_FINISH_CONTENT_FILTER,
	    LLMGATE_CONTENT_FILTER },
	{ "MALFORMED_FUNCTION_CALL", LLMGATE_FINISH_OTHER,
	    LLMGATE_PARSE_ERROR },
	{ "UNEXPECTED_TOOL_CALL", LLMGATE_FINISH_OTHER, LLMGATE_PARSE_ERROR },
	{ "TOO_MANY_TOOL_CALLS", LLMGATE_FINISH_OTHER, LLMGATE_OK },
	{ "LANGUAGE", LLMGATE_FINISH_OTHER, LLMGATE_OK },
	{ "OTHER", LLMGATE_FINISH_OTHER, LLMGATE_OK },
	{ "NO_IMAGE", LLMGATE_FINISH_OTHER, LLMGATE_OK },
	{ "IMAGE_OTHER", LLMGATE_FINISH_OTHER, LLMGATE_OK },
	{ "FINISH_REASON_UNSPECIFIED", LLMGATE_FINISH_OTHER, LLMGATE_OK },
	{ "A_REASON_FROM_NEXT_YEAR", LLMGATE_FINISH_OTHER, LLMGATE_OK },
};

START_TEST(test_parse_finish_reasons)
{
	char *body;

	xasprintf(&body,
	    "{\"candidates\":[{\"content\":{\"parts\":"
	    "[{\"text\":\"x\"}],\"role\":\"model\"},\"finishReason\":\"%s\","
	    "\"index\":0}]}",
	    finish_cases[_i].reason);
	ck_assert_int_eq(gp->parse(&r, body, strlen(body)), 0);
	ck_assert_msg(r.finish == finish_cases[_i].finish, "%s: finish %s",
	    finish_cases[_i].reason, llmgate_finish_name(r.finish));
	ck_assert_msg(r.cls == finish_cases[_i].cls, "%s: class %s",
	    finish_cases[_i].reason, llmgate_class_name(r.cls));
	ck_assert_str_eq(buf_cstr(&r.text), "x");
	ck_assert_int_eq(r.done, 1);
	free(body);
}
END_TEST

static const char *garbage[] = {
	"<html><body>Bad Gateway</body></html>",
	"",
	"{}",
	"{\"candidates\":[]}",
	"{\"candidates\":{}}",
	"[{\"candidates\":[]}]",
	"{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":"
	"{\"args\":{}}}]},\"finishReason\":\"STOP\"}]}",
	"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"cut",
};

START_TEST(test_parse_garbage)
{
	const char *body = garbage[_i];

	ck_assert_int_eq(gp->parse(&r, body, strlen(body)), -1);
	ck_assert_msg(r.cls == LLMGATE_PARSE_ERROR, "\"%s\": class %s", body,
	    llmgate_class_name(r.cls));
	ck_assert_ptr_nonnull(r.message);
}
END_TEST

/* --- event --- */

START_TEST(test_event_stream)
{
	ck_assert_int_eq(feed(&r, "stream_text.sse", -1), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Oslo is the capital of Norway.");
	ck_assert_str_eq(buf_cstr(&cap),
	    "text:Os\ntext:lo is the capital\ntext: of Norway.\n");
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_uint_eq(r.input_tokens, 9);
	ck_assert_uint_eq(r.output_tokens, 8 + 24);
}
END_TEST

static void
reset(void)
{
	reply_free(&r);
	buf_reset(&cap);
	reply_init(&r, cap_emit, &cap);
}

START_TEST(test_event_done_only_at_finish)
{
	ck_assert_int_eq(feed(&r, "stream_text.sse", 1), 0);
	ck_assert_int_eq(r.done, 0);
	ck_assert_uint_eq(r.input_tokens, 9);
	ck_assert_uint_eq(r.output_tokens, 24);
	reset();

	/* Cut before the finishReason chunk: not done, whatever came kept. */
	ck_assert_int_eq(feed(&r, "stream_text.sse", 2), 0);
	ck_assert_int_eq(r.done, 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_NONE);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_str_eq(buf_cstr(&r.text), "Oslo is the capital");
	ck_assert_str_eq(buf_cstr(&cap), "text:Os\ntext:lo is the capital\n");
	ck_assert_uint_eq(r.output_tokens, 5 + 24);
	reset();

	ck_assert_int_eq(feed(&r, "stream_text.sse", 3), 0);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(test_event_tool)
{
	char want[128];

	ck_assert_int_eq(feed(&r, "stream_tool.sse", -1), 0);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_uint_eq(r.ntools, 1);
	made_up_id(r.tools[0].id);
	ck_assert_str_eq(r.tools[0].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args), "{\"city\":\"Oslo\"}");
	/* The empty text part that carries a signature emits nothing. */
	snprintf(want, sizeof want,
	    "tool0:%s:get_weather:{\"city\":\"Oslo\"}\n", r.tools[0].id);
	ck_assert_str_eq(buf_cstr(&cap), want);
	ck_assert_uint_eq(r.input_tokens, 71);
	ck_assert_uint_eq(r.output_tokens, 15 + 54);
}
END_TEST

START_TEST(test_event_tool_index_across_chunks)
{
	char want[128];

	ck_assert_int_eq(
	    event_str(&r,
	        "{\"candidates\":[{\"content\":{\"parts\":"
	        "[{\"functionCall\":{\"name\":\"a\",\"args\":{\"n\":1}}}]}}]}"),
	    0);
	ck_assert_int_eq(
	    event_str(&r,
	        "{\"candidates\":[{\"content\":{\"parts\":"
	        "[{\"functionCall\":{\"name\":\"b\",\"args\":{\"n\":2}}}]},"
	        "\"finishReason\":\"STOP\"}]}"),
	    0);
	ck_assert_uint_eq(r.ntools, 2);
	made_up_id(r.tools[0].id);
	made_up_id(r.tools[1].id);
	ck_assert_str_ne(r.tools[0].id, r.tools[1].id);
	snprintf(want, sizeof want,
	    "tool0:%s:a:{\"n\":1}\ntool1:%s:b:{\"n\":2}\n", r.tools[0].id,
	    r.tools[1].id);
	ck_assert_str_eq(buf_cstr(&cap), want);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
}
END_TEST

/*
 * Each turn of a conversation gets its own ids: a reply's first call must
 * not be named as the last turn's was (Anthropic refuses a repeated
 * tool_use id, OpenAI clients match results by id).
 */
START_TEST(test_call_ids_differ_across_replies)
{
	char first[64];

	ck_assert_int_eq(parse_file("function_call.json"), 0);
	ck_assert_uint_eq(r.ntools, 2);
	snprintf(first, sizeof first, "%s", r.tools[0].id);
	reset();
	ck_assert_int_eq(parse_file("function_call.json"), 0);
	ck_assert_uint_eq(r.ntools, 2);
	made_up_id(r.tools[0].id);
	ck_assert_str_ne(r.tools[0].id, first);
	ck_assert_str_ne(r.tools[1].id, first);
	reset();
	ck_assert_int_eq(feed(&r, "stream_tool.sse", -1), 0);
	ck_assert_uint_eq(r.ntools, 1);
	ck_assert_str_ne(r.tools[0].id, first);
}
END_TEST

START_TEST(test_event_error_mid_stream)
{
	r.status = 200;
	ck_assert_int_eq(feed(&r, "stream_error.sse", -1), -1);
	ck_assert_int_eq(r.cls, LLMGATE_OVERLOADED);
	ck_assert_str_eq(r.message,
	    "UNAVAILABLE: The model is overloaded. Please try again later.");
	ck_assert_uint_eq(r.status, 200);
	ck_assert_int_eq(r.done, 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Oslo is");
	ck_assert_str_eq(buf_cstr(&cap), "text:Oslo is\n");
}
END_TEST

START_TEST(test_event_error_bare)
{
	/* No code, no status: still an upstream failure, worth a retry. */
	ck_assert_int_eq(
	    event_str(&r,
	        "{\"error\":{\"message\":\"Internal stream failure\"}}"),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message, "Internal stream failure");
}
END_TEST

START_TEST(test_event_invalid_json)
{
	ck_assert_int_eq(event_str(&r, "{\"candidates\": [{\"content\""), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_int_eq(r.done, 0);
	reset();
	ck_assert_int_eq(event_str(&r, "[DONE]"), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
}
END_TEST

START_TEST(test_event_blocked_and_finish_only)
{
	ck_assert_int_eq(
	    event_str(&r,
	        "{\"promptFeedback\": {\"blockReason\": "
	        "\"SAFETY\"},\"usageMetadata\": {\"promptTokenCount\": 12,"
	        "\"totalTokenCount\": 12}}"),
	    0);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.input_tokens, 12);
	reset();

	/* A last chunk with only a finishReason, as Gemini streams end. */
	ck_assert_int_eq(
	    event_str(&r,
	        "{\"candidates\": [{\"finishReason\": "
	        "\"MALFORMED_FUNCTION_CALL\",\"index\": 0}],\"usageMetadata\": "
	        "{\"promptTokenCount\": 88,\"totalTokenCount\": 88}}"),
	    0);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_OTHER);
	ck_assert_int_eq(r.done, 1);
	reset();

	/* An empty data field is no event worth failing on. */
	ck_assert_int_eq(event_str(&r, ""), 0);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_int_eq(r.done, 0);

	/* Usage alone is no end. */
	ck_assert_int_eq(event_str(&r,
	                     "{\"usageMetadata\": "
	                     "{\"promptTokenCount\": 3}}"),
	    0);
	ck_assert_int_eq(r.done, 0);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_uint_eq(r.input_tokens, 3);
}
END_TEST

/* --- classify --- */

static const struct {
	const char *file;
	uint32_t status;
	enum llmgate_class cls;
	int64_t retry_ms;
	const char *message; /* prefix */
} error_cases[] = {
	{ "error_429_minute.json", 429, LLMGATE_RATE_LIMITED, 13000,
	    "RESOURCE_EXHAUSTED: You exceeded your current quota, please check "
	    "your plan and billing details. For more information on this "
	    "error, head to: https://ai.google.dev/gemini-api/docs/"
	    "rate-limits." },
	{ "error_429_tokens.json", 429, LLMGATE_RATE_LIMITED, 1500,
	    "RESOURCE_EXHAUSTED: You exceeded" },
	{ "error_429_day.json", 429, LLMGATE_QUOTA_EXHAUSTED, 41000,
	    "RESOURCE_EXHAUSTED: You exceeded" },
	{ "error_429_zero.json", 429, LLMGATE_QUOTA_EXHAUSTED, 18000,
	    "RESOURCE_EXHAUSTED: " },
	{ "error_402_prepay.json", 402, LLMGATE_QUOTA_EXHAUSTED, -1,
	    "RESOURCE_EXHAUSTED: Your Prepay credit balance is depleted." },
	{ "error_400_api_key.json", 400, LLMGATE_AUTH, -1,
	    "INVALID_ARGUMENT: API key not valid. Please pass a valid API key." },
	{ "error_400_context.json", 400, LLMGATE_CONTEXT_LENGTH, -1,
	    "INVALID_ARGUMENT: The input token count (1196265) exceeds" },
	{ "error_400_billing.json", 400, LLMGATE_QUOTA_EXHAUSTED, -1,
	    "FAILED_PRECONDITION: Gemini API free tier is not available" },
	{ "error_400_location.json", 400, LLMGATE_BAD_REQUEST, -1,
	    "FAILED_PRECONDITION: User location is not supported" },
	{ "error_400_invalid.json", 400, LLMGATE_BAD_REQUEST, -1,
	    "INVALID_ARGUMENT: Invalid JSON payload received. Unknown name "
	    "\"maxTokens\"" },
	{ "error_401.json", 401, LLMGATE_AUTH, -1, "UNAUTHENTICATED: " },
	{ "error_403.json", 403, LLMGATE_PERMISSION, -1,
	    "PERMISSION_DENIED: Method doesn't allow unregistered callers" },
	{ "error_404.json", 404, LLMGATE_NOT_FOUND, -1,
	    "NOT_FOUND: models/gemini-9.9-flash is not found" },
	{ "error_499.json", 499, LLMGATE_CANCELLED, -1,
	    "CANCELLED: The operation was cancelled." },
	{ "error_500.json", 500, LLMGATE_SERVER_ERROR, -1,
	    "INTERNAL: An internal error has occurred." },
	{ "error_503.json", 503, LLMGATE_OVERLOADED, -1,
	    "UNAVAILABLE: The model is overloaded. Please try again later." },
	{ "error_504.json", 504, LLMGATE_TIMEOUT, -1,
	    "DEADLINE_EXCEEDED: The request timed out. Please try again." },
	{ "error_502.html", 502, LLMGATE_SERVER_ERROR, -1, "HTTP 502" },
};

START_TEST(test_classify_recorded)
{
	size_t len;
	char *body;

	body = slurp(error_cases[_i].file, &len);
	gp->classify(&r, error_cases[_i].status, body, len);
	ck_assert_msg(r.cls == error_cases[_i].cls, "%s: class %s",
	    error_cases[_i].file, llmgate_class_name(r.cls));
	ck_assert_uint_eq(r.status, error_cases[_i].status);
	ck_assert_msg(r.rl.retry_after_ms == error_cases[_i].retry_ms,
	    "%s: retry_after_ms %lld", error_cases[_i].file,
	    (long long)r.rl.retry_after_ms);
	ck_assert_ptr_nonnull(r.message);
	ck_assert_msg(strncmp(r.message, error_cases[_i].message,
	                  strlen(error_cases[_i].message)) == 0,
	    "%s: message \"%s\"", error_cases[_i].file, r.message);
	ck_assert_ptr_null(strchr(r.message, '\n'));
	ck_assert_uint_le(strlen(r.message),
	    strlen("RESOURCE_EXHAUSTED: ") + 300 + 3);
	free(body);
}
END_TEST

static void
classify_str(uint32_t status, const char *body)
{
	gp->classify(&r, status, body, strlen(body));
}

START_TEST(test_classify_truncated)
{
	size_t len;
	char *body;

	/* The per-day message is longer than 300 bytes and has newlines. */
	body = slurp("error_429_day.json", &len);
	gp->classify(&r, 429, body, len);
	ck_assert_uint_eq(strlen(r.message),
	    strlen("RESOURCE_EXHAUSTED: ") + 300 + 3);
	ck_assert_str_eq(r.message + strlen(r.message) - 3, "...");
	free(body);
}
END_TEST

START_TEST(test_classify_retry_header_wins)
{
	size_t len;
	char *body;

	r.rl.retry_after_ms = 7000; /* from a Retry-After header */
	body = slurp("error_429_minute.json", &len);
	gp->classify(&r, 429, body, len);
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_int_eq(r.rl.retry_after_ms, 7000);
	free(body);
}
END_TEST

/* Every server's context overflow, whatever its shape. */
START_TEST(classify_context_any_shape)
{
	context_check(gp, (size_t)_i);
}
END_TEST

START_TEST(test_classify_inline)
{
	/* The message alone marks a bad key. */
	classify_str(400,
	    "{\"error\":{\"code\":400,\"message\":\"API key not "
	    "valid. Please pass a valid API key.\",\"status\":"
	    "\"INVALID_ARGUMENT\"}}");
	ck_assert_int_eq(r.cls, LLMGATE_AUTH);
	reset();

	/* A 429 with no details is a plain rate limit, no wait known. */
	classify_str(429,
	    "{\"error\":{\"code\":429,\"message\":\"Resource has "
	    "been exhausted (e.g. check quota).\",\"status\":"
	    "\"RESOURCE_EXHAUSTED\"}}");
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_int_eq(r.rl.retry_after_ms, -1);
	reset();

	/* RetryInfo without "@type", and "0s". */
	classify_str(429,
	    "{\"error\":{\"code\":429,\"status\":"
	    "\"RESOURCE_EXHAUSTED\",\"details\":[{\"retryDelay\":\"0s\"}]}}");
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_int_eq(r.rl.retry_after_ms, 0);
	ck_assert_str_eq(r.message, "RESOURCE_EXHAUSTED: ");
	reset();

	/* Durations that are not protobuf Durations are ignored. */
	classify_str(429,
	    "{\"error\":{\"code\":429,\"status\":"
	    "\"RESOURCE_EXHAUSTED\",\"details\":[{\"retryDelay\":\"-3s\"},"
	    "{\"retryDelay\":\"5m\"},{\"retryDelay\":\"1.5s \"}]}}");
	ck_assert_int_eq(r.rl.retry_after_ms, -1);
	reset();

	/* The non-SSE stream endpoint's one-element array. */
	classify_str(503,
	    "[{\"error\":{\"code\":503,\"message\":\"The model "
	    "is overloaded. Please try again later.\",\"status\":"
	    "\"UNAVAILABLE\"}}]");
	ck_assert_int_eq(r.cls, LLMGATE_OVERLOADED);
	reset();

	/* A Status without a status name falls back on its code. */
	classify_str(503, "{\"error\":{\"code\":503,\"message\":\"busy\"}}");
	ck_assert_int_eq(r.cls, LLMGATE_OVERLOADED);
	ck_assert_str_eq(r.message, "busy");
	reset();

	/* Gateways: HTML or nothing is still the status's error. */
	classify_str(503, "<html>Service Unavailable</html>");
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message, "HTTP 503");
	reset();
	classify_str(413, "");
	ck_assert_int_eq(r.cls, LLMGATE_CONTEXT_LENGTH);
	ck_assert_str_eq(r.message, "HTTP 413");
	ck_assert_uint_eq(r.status, 413);
	reset();
	/* A flat {"message"} body (older vLLM, proxies) is still read. */
	classify_str(429, "{\"message\":\"Too Many Requests\"}");
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_str_eq(r.message, "Too Many Requests");
}
END_TEST

static Suite *
gemini_suite(void)
{
	Suite *s = suite_create("provider_gemini");
	TCase *tc;

	tc = tcase_create("build");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_build_minimal);
	tcase_add_test(tc, test_build_no_key);
	tcase_add_test(tc, test_build_rich);
	tcase_add_test(tc, test_build_merge_turns);
	tcase_add_test(tc, test_build_tool_name);
	tcase_add_loop_test(tc, test_build_invalid, 0, nitems(bad_cases));
	tcase_add_test(tc, test_build_tool_config);
	tcase_add_loop_test(tc, test_build_bad_utf8, 0,
	    nitems(bad_utf8_causes));
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_parse_text);
	tcase_add_test(tc, test_parse_thought_skipped);
	tcase_add_test(tc, test_parse_function_call);
	tcase_add_test(tc, test_parse_function_call_id);
	tcase_add_test(tc, test_parse_max_tokens);
	tcase_add_test(tc, test_parse_safety);
	tcase_add_test(tc, test_parse_malformed_call);
	tcase_add_test(tc, test_parse_blocked_prompt);
	tcase_add_loop_test(tc, test_parse_finish_reasons, 0,
	    nitems(finish_cases));
	tcase_add_loop_test(tc, test_parse_garbage, 0, nitems(garbage));
	suite_add_tcase(s, tc);

	tc = tcase_create("event");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_event_stream);
	tcase_add_test(tc, test_event_done_only_at_finish);
	tcase_add_test(tc, test_event_tool);
	tcase_add_test(tc, test_event_tool_index_across_chunks);
	tcase_add_test(tc, test_call_ids_differ_across_replies);
	tcase_add_test(tc, test_event_error_mid_stream);
	tcase_add_test(tc, test_event_error_bare);
	tcase_add_test(tc, test_event_invalid_json);
	tcase_add_test(tc, test_event_blocked_and_finish_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_classify_recorded, 0, nitems(error_cases));
	tcase_add_test(tc, test_classify_truncated);
	tcase_add_loop_test(tc, classify_context_any_shape, 0,
	    (int)nitems(context_files));
	tcase_add_test(tc, test_classify_retry_header_wins);
	tcase_add_test(tc, test_classify_inline);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(gemini_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
