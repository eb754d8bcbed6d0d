/*
 * check_provider_anthropic.c: the Anthropic Messages adapter, checked
 * against exact request bodies and against recorded response bodies,
 * streams and error bodies in tests/data/anthropic.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"
#include "context.h"

#define DATA TEST_DATA "/anthropic/"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

static const struct provider_type *pt = &provider_anthropic;

/* Every relayed chunk as one line, so tests assert the exact sequence. */
static void
capture(void *arg, const struct llmgate_chunk *ch)
{
	struct buf *b = arg;

	if (ch->tool_index < 0) {
		buf_printf(b, "text[%.*s]\n", (int)ch->len, ch->text);
		return;
	}
	buf_printf(b, "tool%d[%s|%s|%s]\n", ch->tool_index,
	    ch->tool_id != NULL ? ch->tool_id : "-",
	    ch->tool_name != NULL ? ch->tool_name : "-",
	    ch->tool_args != NULL ? ch->tool_args : "-");
}

static struct buf chunks;
static struct reply r;

static void
setup(void)
{
	memset(&chunks, 0, sizeof chunks);
	reply_init(&r, capture, &chunks);
	r.status = 200;
}

static void
teardown(void)
{
	reply_free(&r);
	buf_free(&chunks);
}

static char *
load(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *data;
	long n;

	snprintf(path, sizeof path, DATA "%s", name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = xmalloc((size_t)n + 1);
	ck_assert_int_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return data;
}

/*
 * A tiny SSE splitter for recorded streams (LF line ends, one data line per
 * event): hands each event to the adapter until it returns non-zero, or
 * stops before the first event named stop_at. Returns the last result.
 */
static int
feed(const char *name, const char *stop_at)
{
	struct sse_event ev;
	struct buf event = { 0 }, data = { 0 };
	char *text, *line, *eol, *end;
	size_t len;
	int rc = 0, has_data = 0;

	text = load(name, &len);
	end = text + len;
	for (line = text; line < end; line = eol + 1) {
		if ((eol = memchr(line, '\n', (size_t)(end - line))) == NULL)
			eol = end;
		*eol = '\0';
		if (*line == '\0') {
			if (!has_data)
				continue;
			if (stop_at != NULL &&
			    strcmp(buf_cstr(&event), stop_at) == 0)
				break;
			memset(&ev, 0, sizeof ev);
			ev.event = event.len != 0 ? event.data : NULL;
			ev.data = buf_cstr(&data);
			ev.len = data.len;
			rc = pt->event(&r, &ev);
			buf_reset(&event);
			buf_reset(&data);
			has_data = 0;
			if (rc != 0)
				break;
		} else if (strncmp(line, "event: ", 7) == 0)
			buf_addstr(&event, line + 7);
		else if (strncmp(line, "data: ", 6) == 0) {
			buf_addstr(&data, line + 6);
			has_data = 1;
		}
	}
	buf_free(&event);
	buf_free(&data);
	free(text);
	return rc;
}

static int
event(const char *name, const char *data)
{
	struct sse_event ev;

	memset(&ev, 0, sizeof ev);
	ev.event = name;
	ev.data = data;
	ev.len = strlen(data);
	return pt->event(&r, &ev);
}

static int
parse_file(const char *name)
{
	size_t len;
	char *body = load(name, &len);
	int rc;

	rc = pt->parse(&r, body, len);
	free(body);
	return rc;
}

static char *
headers(const struct http_req *hr)
{
	struct buf b = { 0 };
	const struct curl_slist *h;

	for (h = hr->headers; h != NULL; h = h->next)
		buf_printf(&b, "%s\n", h->data);
	return b.data;
}

/* Build with provider defaults; returns the result, body in *hr. */
static int
build(const struct llmgate_request *req, struct http_req *hr, char **cause)
{
	struct provider_conf prov;

	memset(&prov, 0, sizeof prov);
	prov.name = "anthropic";
	prov.type = pt;
	prov.base_url = "https://api.anthropic.com/v1/";
	prov.api_key = "sk-ant-test";
	memset(hr, 0, sizeof *hr);
	*cause = NULL;
	return pt->build(hr, &prov, "claude-sonnet-4-5", req, cause);
}

static void
check_body(const struct llmgate_request *req, const char *want)
{
	struct http_req hr;
	char *cause;

	ck_assert_int_eq(build(req, &hr, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert_str_eq(hr.body, want);
	ck_assert_uint_eq(hr.body_len, strlen(want));
	http_req_free(&hr);
}

static void
check_fails(const struct llmgate_request *req, const char *why)
{
	struct http_req hr;
	char *cause;

	ck_assert_int_eq(build(req, &hr, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	ck_assert_msg(strstr(cause, why) != NULL, "cause \"%s\" lacks \"%s\"",
	    cause, why);
	ck_assert_ptr_null(hr.url);
	ck_assert_ptr_null(hr.body);
	ck_assert_ptr_null(hr.headers);
	free(cause);
}

static struct llmgate_message user_hi[] = {
	{ .role = LLMGATE_ROLE_USER, .content = "Hi" },
};

START_TEST(build_minimal)
{
	struct llmgate_request req = { .messages = user_hi, .nmessages = 1 };
	struct provider_conf prov;
	struct http_req hr;
	char *cause = NULL, *h;

	memset(&prov, 0, sizeof prov);
	prov.base_url = "http://127.0.0.1:8080/v1//";
	ck_assert_int_eq(pt->build(&hr, &prov, "claude-3-5-haiku-latest", &req,
	                     &cause),
	    0);
	ck_assert_str_eq(hr.url, "http://127.0.0.1:8080/v1/messages");
	/* max_tokens is required by Anthropic: the default fills in. */
	ck_assert_str_eq(hr.body,
	    "{\"model\":\"claude-3-5-haiku-latest\","
	    "\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
	h = headers(&hr);
	ck_assert_str_eq(h,
	    "Content-Type: application/json\n"
	    "anthropic-version: 2023-06-01\n");
	free(h);
	http_req_free(&hr);
}
END_TEST

static struct llmgate_tool_call rich_calls[] = {
	{ "toolu_01A", "get_weather", "{\"city\": \"Oslo\"}" },
	{ "toolu_01B", "get_time", "" },
};

static struct llmgate_message rich_msgs[] = {
	{ .role = LLMGATE_ROLE_USER,
	    .content = "Weather in Oslo and the time?" },
	{ .role = LLMGATE_ROLE_ASSISTANT,
	    .content = "Checking.",
	    .tool_calls = rich_calls,
	    .ntool_calls = 2 },
	{ .role = LLMGATE_ROLE_TOOL,
	    .tool_call_id = "toolu_01A",
	    .name = "get_weather",
	    .content = "{\"temp_c\": 4}" },
	{ .role = LLMGATE_ROLE_TOOL,
	    .tool_call_id = "toolu_01B",
	    .name = "get_time",
	    .content = "12:00" },
	{ .role = LLMGATE_ROLE_USER, .content = "Thanks. And tomorrow?" },
};

static struct llmgate_tool rich_tools[] = {
	{ "get_weather", "Current weather for a city",
	    "{\"type\":\"object\",\"properties\":"
	    "{\"city\":{\"type\":\"string\"}},"
	    "\"required\":[\"city\"]}" },
	{ "get_time", NULL, NULL },
};

static char *rich_stop[] = { "END", "###" };

START_TEST(build_rich)
{
	struct llmgate_request req = {
		.system = "You are terse.",
		.messages = rich_msgs,
		.nmessages = 5,
		.tools = rich_tools,
		.ntools = 2,
		.has = LLMGATE_HAS_MAX_TOKENS | LLMGATE_HAS_TEMPERATURE |
		    LLMGATE_HAS_TOP_P | LLMGATE_HAS_SEED,
		.max_tokens = 1000,
		.temperature = 0.5,
		.top_p = 0.25,
		.seed = 42,
		.stop = rich_stop,
		.nstop = 2,
		.stream = 1,
	};
	struct http_req hr;
	char *cause, *h;

	/* Tool results and the next user text merge into one user turn;
	 * the seed is dropped (Anthropic has none). */
	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1000,"
	    "\"system\":\"You are terse.\",\"messages\":["
	    "{\"role\":\"user\",\"content\":\"Weather in Oslo and the time?\"},"
	    "{\"role\":\"assistant\",\"content\":["
	    "{\"type\":\"text\",\"text\":\"Checking.\"},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_01A\","
	    "\"name\":\"get_weather\","
	    "\"input\":{\"city\":\"Oslo\"}},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_01B\",\"name\":\"get_time\","
	    "\"input\":{}}]},"
	    "{\"role\":\"user\",\"content\":["
	    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01A\","
	    "\"content\":\"{\\\"temp_c\\\": 4}\"},"
	    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01B\","
	    "\"content\":\"12:00\"},"
	    "{\"type\":\"text\",\"text\":\"Thanks. And tomorrow?\"}]}],"
	    "\"tools\":[{\"name\":\"get_weather\","
	    "\"description\":\"Current weather for a city\","
	    "\"input_schema\":{\"type\":\"object\",\"properties\":"
	    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},"
	    "{\"name\":\"get_time\",\"input_schema\":{\"type\":\"object\"}}],"
	    "\"temperature\":0.5,\"top_p\":0.25,"
	    "\"stop_sequences\":[\"END\",\"###\"],\"stream\":true}");

	ck_assert_int_eq(build(&req, &hr, &cause), 0);
	ck_assert_str_eq(hr.url, "https://api.anthropic.com/v1/messages");
	h = headers(&hr);
	ck_assert_str_eq(h,
	    "Content-Type: application/json\n"
	    "x-api-key: sk-ant-test\n"
	    "anthropic-version: 2023-06-01\n"
	    "Accept: text/event-stream\n");
	free(h);
	http_req_free(&hr);
}
END_TEST

static struct llmgate_message merge_msgs[] = {
	{ .role = LLMGATE_ROLE_USER, .content = "Part one." },
	{ .role = LLMGATE_ROLE_USER, .content = "Part two." },
	{ .role = LLMGATE_ROLE_ASSISTANT, .content = "Sure." },
	{ .role = LLMGATE_ROLE_ASSISTANT, .content = "The answer is \n" },
};

START_TEST(build_merge_and_prefill)
{
	struct llmgate_request req = {
		.messages = merge_msgs,
		.nmessages = 4,
		.has = LLMGATE_HAS_TEMPERATURE,
		.temperature = 1.5,
	};

	/* Same-role turns merge; the final assistant turn is a prefill,
	 * which Anthropic refuses with trailing whitespace; temperature is
	 * clamped to Anthropic's 0-1. */
	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":["
	    "{\"type\":\"text\",\"text\":\"Part one.\"},"
	    "{\"type\":\"text\",\"text\":\"Part two.\"}]},"
	    "{\"role\":\"assistant\",\"content\":["
	    "{\"type\":\"text\",\"text\":\"Sure.\"},"
	    "{\"type\":\"text\",\"text\":\"The answer is\"}]}],"
	    "\"temperature\":1.0}");
}
END_TEST

static struct llmgate_message blank_prefill[] = {
	{ .role = LLMGATE_ROLE_USER, .content = "\t" },
	{ .role = LLMGATE_ROLE_USER, .content = "Hi" },
	{ .role = LLMGATE_ROLE_ASSISTANT, .content = " \n" },
	{ .role = LLMGATE_ROLE_ASSISTANT, .content = NULL },
};

START_TEST(build_blank_prefill)
{
	struct llmgate_request req = {
		.messages = blank_prefill,
		.nmessages = 4,
	};

	/* Anthropic refuses blank text blocks: they are left out. */
	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
}
END_TEST

START_TEST(build_schema_object)
{
	struct llmgate_request req = {
		.messages = user_hi,
		.nmessages = 1,
		.tools = rich_tools,
		.ntools = 1,
		.schema =
		    "{\"type\":\"object\",\"properties\":"
		    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}",
		.has = LLMGATE_HAS_MAX_TOKENS,
		.max_tokens = 200,
	};

	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":200,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	    "\"tools\":[{\"name\":\"get_weather\","
	    "\"description\":\"Current weather for a city\","
	    "\"input_schema\":{\"type\":\"object\",\"properties\":"
	    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},"
	    "{\"name\":\"llmgate_json\",\"description\":\"Reply by calling "
	    "this tool once; its input is the complete answer.\","
	    "\"input_schema\":{\"type\":\"object\",\"properties\":"
	    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}],"
	    "\"tool_choice\":{\"type\":\"tool\",\"name\":\"llmgate_json\"}}");
}
END_TEST

START_TEST(build_schema_untyped)
{
	struct llmgate_request req = {
		.messages = user_hi,
		.nmessages = 1,
		.schema = "{\"properties\":{\"n\":{\"type\":\"integer\"}}}",
	};

	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	    "\"tools\":[{\"name\":\"llmgate_json\",\"description\":\"Reply by "
	    "calling this tool once; its input is the complete answer.\","
	    "\"input_schema\":{\"properties\":{\"n\":{\"type\":\"integer\"}},"
	    "\"type\":\"object\"}}],"
	    "\"tool_choice\":{\"type\":\"tool\",\"name\":\"llmgate_json\"}}");
}
END_TEST

START_TEST(build_schema_wrapped)
{
	struct llmgate_request req = {
		.messages = user_hi,
		.nmessages = 1,
		.schema = "{\"type\":\"array\","
		          "\"items\":{\"type\":\"string\"}}",
	};

	/* input_schema must be an object: other schemas become "value". */
	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	    "\"tools\":[{\"name\":\"llmgate_json_value\",\"description\":"
	    "\"Reply by calling this tool once, with the complete answer as "
	    "\\\"value\\\".\",\"input_schema\":{\"type\":\"object\","
	    "\"properties\":{\"value\":{\"type\":\"array\",\"items\":"
	    "{\"type\":\"string\"}}},\"required\":[\"value\"]}}],"
	    "\"tool_choice\":{\"type\":\"tool\","
	    "\"name\":\"llmgate_json_value\"}}");
}
END_TEST

/*
 * What the cases above leave out: tool choices, parameters without a
 * type or not compact, a final assistant turn that ends in a tool call,
 * a result without content, reals with jansson's 17 digits, and which
 * field each UTF-8 refusal names (parameters and arguments first).
 */
START_TEST(build_variants)
{
	struct llmgate_tool_call calls[] = {
		{ "t1", "f", " { \"b\" : 0.1 , \"a\": [ ] } " },
	};
	struct llmgate_message msgs[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "Q" },
		{ .role = LLMGATE_ROLE_ASSISTANT,
		    .content = "  ",
		    .tool_calls = calls,
		    .ntool_calls = 1 },
		{ .role = LLMGATE_ROLE_TOOL, .tool_call_id = "t1" },
		{ .role = LLMGATE_ROLE_USER },
		{ .role = LLMGATE_ROLE_ASSISTANT,
		    .content = "done \xc3\xa9 \n\t" },
	};
	struct llmgate_tool tools[] = {
		{ "f", "d",
		    " {\"properties\": {\"x\": {\"type\": \"number\", "
		    "\"minimum\": 0.1}}} " },
		{ "g", NULL, "{\"type\":\"object\",\"a\":1,\"a\":2}" },
		{ "h", NULL, "{}" },
		{ "k", NULL, "{\"a\": [1, {\"type\": 2}], \"b\": \"\\/\"}" },
	};
	char *stop[] = { "x" };
	struct llmgate_request req = {
		.messages = msgs,
		.nmessages = nitems(msgs),
		.tools = tools,
		.ntools = nitems(tools),
		.tool_name = "g",
		.has = LLMGATE_HAS_TEMPERATURE | LLMGATE_HAS_TOP_P,
		.temperature = -0.5,
		.top_p = 0.1,
		.stop = stop,
		.nstop = 1,
	};

	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Q\"},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
	    "\"id\":\"t1\",\"name\":\"f\",\"input\":{\"b\":0.10000000000000001,"
	    "\"a\":[]}}]},{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"tool_result\",\"tool_use_id\":\"t1\"}]},{\"role\":"
	    "\"assistant\",\"content\":\"done \xc3\xa9\"}],\"tools\":["
	    "{\"name\":\"f\",\"description\":\"d\",\"input_schema\":{"
	    "\"properties\":{\"x\":{\"type\":\"number\",\"minimum\":"
	    "0.10000000000000001}},\"type\":\"object\"}},{\"name\":\"g\","
	    "\"input_schema\":{\"type\":\"object\",\"a\":2}},{\"name\":\"h\","
	    "\"input_schema\":{\"type\":\"object\"}},{\"name\":\"k\","
	    "\"input_schema\":{\"a\":[1,{\"type\":2}],\"b\":\"/\","
	    "\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"tool\","
	    "\"name\":\"g\"},\"temperature\":0.0,\"top_p\":"
	    "0.10000000000000001,\"stop_sequences\":[\"x\"]}");

	/* Ending in a tool call, the final turn's text is not trimmed. */
	req.nmessages = 2;
	req.ntools = 0;
	req.tool_name = NULL;
	req.has = 0;
	req.nstop = 0;
	msgs[1].content = "So \n";
	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Q\"},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"So \\n\"},{\"type\":\"tool_use\",\"id\":\"t1\","
	    "\"name\":\"f\",\"input\":{\"b\":0.10000000000000001,"
	    "\"a\":[]}}]}]}");
}
END_TEST

START_TEST(build_odd_shapes)
{
	struct llmgate_tool_call calls[] = { { "t1", "f", "{}" } };
	/* Tool calls on a user message are not sent. */
	struct llmgate_message msgs[] = {
		{ .role = LLMGATE_ROLE_USER,
		    .content = "Q ",
		    .tool_calls = calls,
		    .ntool_calls = 1 },
	};
	struct llmgate_request req = {
		.messages = msgs,
		.nmessages = 1,
		/* A key twice: the last one counts, in the first's place. */
		.schema = "{\"type\": \"array\", \"required\": [], "
		          "\"type\": \"object\"}",
	};

	check_body(&req,
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Q \"}],"
	    "\"tools\":[{\"name\":\"llmgate_json\",\"description\":\"Reply by "
	    "calling this tool once; its input is the complete answer.\","
	    "\"input_schema\":{\"type\":\"object\",\"required\":[]}}],"
	    "\"tool_choice\":{\"type\":\"tool\",\"name\":\"llmgate_json\"}}");
}
END_TEST

START_TEST(build_tool_choice)
{
	struct llmgate_request req = {
		.messages = user_hi,
		.nmessages = 1,
		.tools = rich_tools + 1,
		.ntools = 1,
	};
	const char *head =
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
	    "\"tools\":[{\"name\":\"get_time\",\"input_schema\":"
	    "{\"type\":\"object\"}}";
	char want[1024];

	req.tool_choice = LLMGATE_TOOLS_REQUIRED;
	snprintf(want, sizeof want, "%s],\"tool_choice\":{\"type\":\"any\"}}",
	    head);
	check_body(&req, want);
	req.tool_choice = LLMGATE_TOOLS_NONE;
	snprintf(want, sizeof want, "%s],\"tool_choice\":{\"type\":\"none\"}}",
	    head);
	check_body(&req, want);

	/* A named tool wins over the schema's; not UTF-8, neither is sent. */
	req.tool_choice = LLMGATE_TOOLS_AUTO;
	req.tool_name = "get_time";
	req.schema = "true";
	snprintf(want, sizeof want,
	    "%s,{\"name\":\"llmgate_json_value\",\"description\":"
	    "\"Reply by calling this tool once, with the complete answer as "
	    "\\\"value\\\".\",\"input_schema\":{\"type\":\"object\","
	    "\"properties\":{\"value\":true},\"required\":[\"value\"]}}],"
	    "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_time\"}}",
	    head);
	check_body(&req, want);
	req.tool_name = "get\xff";
	snprintf(want, sizeof want,
	    "%s,{\"name\":\"llmgate_json_value\",\"description\":"
	    "\"Reply by calling this tool once, with the complete answer as "
	    "\\\"value\\\".\",\"input_schema\":{\"type\":\"object\","
	    "\"properties\":{\"value\":true},\"required\":[\"value\"]}}]}",
	    head);
	check_body(&req, want);
}
END_TEST

static const char *const bad_utf8_causes[] = {
	"model is not valid UTF-8",
	"system prompt is not valid UTF-8",
	"message content is not valid UTF-8",
	"tool call id is not valid UTF-8",
	"tool call name is not valid UTF-8",
	"tool call arguments is not valid JSON",
	"tool_call_id is not valid UTF-8",
	"tool message content is not valid UTF-8",
	"tool name is not valid UTF-8",
	"tool description is not valid UTF-8",
	"tool parameters is not a JSON object",
	"stop sequence is not valid UTF-8",
};

START_TEST(build_bad_utf8)
{
	struct llmgate_tool_call calls[] = { { "t1", "f", "{}" } };
	struct llmgate_message msgs[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "Q" },
		{ .role = LLMGATE_ROLE_ASSISTANT,
		    .tool_calls = calls,
		    .ntool_calls = 1 },
		{ .role = LLMGATE_ROLE_TOOL,
		    .tool_call_id = "t1",
		    .content = "r" },
	};
	struct llmgate_tool tools[] = { { "f", "d", "{}" } };
	char *stop[] = { "a", "b" };
	struct llmgate_request req = {
		.system = "s",
		.messages = msgs,
		.nmessages = nitems(msgs),
		.tools = tools,
		.ntools = 1,
		.stop = stop,
		.nstop = 2,
	};
	struct provider_conf prov;
	struct http_req hr;
	const char *model = "m";
	char *cause = NULL;

	switch (_i) {
	case 0:
		model = "m\xff";
		break;
	case 1:
		req.system = "\xc3";
		break;
	case 2:
		msgs[0].content = "\x80";
		break;
	case 3:
		calls[0].id = "t\xed\xa0\x80";
		break;
	case 4:
		calls[0].name = "\xc0\xaf";
		break;
	case 5:
		/* Arguments are checked before the id and name. */
		calls[0].name = "\xc0\xaf";
		calls[0].arguments = "{";
		break;
	case 6:
		msgs[2].tool_call_id = "\xfe";
		break;
	case 7:
		msgs[2].content = "\xf5";
		break;
	case 8:
		tools[0].name = "\xe2\x82";
		break;
	case 9:
		tools[0].description = "\xe2\x82";
		break;
	case 10:
		/* Parameters are checked before the name. */
		tools[0].name = "\xe2\x82";
		tools[0].parameters = "[]";
		break;
	default:
		stop[1] = "\xef\xbf";
		break;
	}
	memset(&prov, 0, sizeof prov);
	memset(&hr, 0, sizeof hr);
	ck_assert_int_eq(pt->build(&hr, &prov, model, &req, &cause), -1);
	/* Then jansson's reason, for JSON. */
	ck_assert_msg(strncmp(cause, bad_utf8_causes[_i],
	                  strlen(bad_utf8_causes[_i])) == 0,
	    "cause \"%s\"", cause);
	ck_assert_ptr_null(hr.url);
	ck_assert_ptr_null(hr.body);
	ck_assert_ptr_null(hr.headers);
	free(cause);
}
END_TEST

START_TEST(build_invalid)
{
	struct llmgate_tool bad_tool[] = {
		{ "get_weather", NULL, "{\"type\": \"object\"," },
	};
	struct llmgate_tool reserved_tool[] = {
		{ "llmgate_json", NULL, NULL },
	};
	struct llmgate_tool_call bad_args[] = {
		{ "toolu_01A", "get_weather", "{\"city\": " },
	};
	struct llmgate_tool_call array_args[] = {
		{ "toolu_01A", "get_weather", "[1, 2]" },
	};
	struct llmgate_message with_args[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "Hi" },
		{ .role = LLMGATE_ROLE_ASSISTANT,
		    .tool_calls = bad_args,
		    .ntool_calls = 1 },
	};
	struct llmgate_message with_array[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "Hi" },
		{ .role = LLMGATE_ROLE_ASSISTANT,
		    .tool_calls = array_args,
		    .ntool_calls = 1 },
	};
	struct llmgate_message no_id[] = {
		{ .role = LLMGATE_ROLE_TOOL, .content = "4" },
	};
	struct llmgate_message empty[] = {
		{ .role = LLMGATE_ROLE_USER, .content = "" },
	};
	struct llmgate_request req;

	memset(&req, 0, sizeof req);
	req.messages = user_hi;
	req.nmessages = 1;
	req.tools = bad_tool;
	req.ntools = 1;
	check_fails(&req, "tool parameters is not valid JSON");

	req.tools = reserved_tool;
	check_fails(&req, "reserved");

	req.ntools = 0;
	req.schema = "{\"type\": oops}";
	check_fails(&req, "schema is not valid JSON");

	req.schema = NULL;
	req.messages = with_args;
	req.nmessages = 2;
	check_fails(&req, "tool call arguments is not valid JSON");

	req.messages = with_array;
	check_fails(&req, "tool call arguments is not a JSON object");

	req.messages = no_id;
	req.nmessages = 1;
	check_fails(&req, "without tool_call_id");

	req.messages = empty;
	check_fails(&req, "no message");
}
END_TEST

START_TEST(parse_text)
{
	ck_assert_int_eq(parse_file("text.json"), 0);
	ck_assert_str_eq(buf_cstr(&chunks),
	    "text[Oslo is the capital of Norway.]\n");
	ck_assert_str_eq(buf_cstr(&r.text), "Oslo is the capital of Norway.");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	/* Cache writes and reads count as input. */
	ck_assert_uint_eq(r.input_tokens, 14 + 120 + 2048);
	ck_assert_uint_eq(r.output_tokens, 10);
	ck_assert_uint_eq(r.ntools, 0);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(parse_tool_use)
{
	ck_assert_int_eq(parse_file("tool_use.json"), 0);
	ck_assert_str_eq(buf_cstr(&chunks),
	    "text[I'll check the weather in both cities.]\n"
	    "tool0[toolu_01A09q90qw90lq917835lq9|get_weather|"
	    "{\"city\":\"Oslo\",\"unit\":\"celsius\"}]\n"
	    "tool1[toolu_01B7fPZ1gCkV3yN2c6tL4mQe|get_time|{}]\n");
	ck_assert_uint_eq(r.ntools, 2);
	ck_assert_str_eq(r.tools[0].id, "toolu_01A09q90qw90lq917835lq9");
	ck_assert_str_eq(r.tools[0].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args),
	    "{\"city\":\"Oslo\",\"unit\":\"celsius\"}");
	ck_assert_str_eq(buf_cstr(&r.tools[1].args), "{}");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_uint_eq(r.input_tokens, 472);
	ck_assert_uint_eq(r.output_tokens, 89);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

static const struct {
	const char *reason;
	enum llmgate_finish finish;
} stops[] = {
	{ "end_turn", LLMGATE_FINISH_STOP },
	{ "stop_sequence", LLMGATE_FINISH_STOP },
	{ "max_tokens", LLMGATE_FINISH_LENGTH },
	{ "model_context_window_exceeded", LLMGATE_FINISH_LENGTH },
	{ "tool_use", LLMGATE_FINISH_TOOL_CALLS },
	{ "pause_turn", LLMGATE_FINISH_OTHER },
	{ "some_new_reason", LLMGATE_FINISH_OTHER },
};

START_TEST(parse_stop_reason)
{
	char *body;
	int rc;

	xasprintf(&body,
	    "{\"id\":\"msg_01\",\"type\":\"message\","
	    "\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"Partial\"}],\"stop_reason\":\"%s\","
	    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,"
	    "\"output_tokens\":2}}",
	    stops[_i].reason);
	rc = pt->parse(&r, body, strlen(body));
	free(body);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(r.finish, stops[_i].finish);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_str_eq(buf_cstr(&r.text), "Partial");
	ck_assert_int_eq(r.done, 1);
	ck_assert_ptr_null(r.stop_sequence);
}
END_TEST

/* Which stop sequence ended the reply, kept for the fronts. */
START_TEST(parse_stop_sequence)
{
	const char *body =
	    "{\"id\":\"msg_01\",\"type\":\"message\","
	    "\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"1, 2, 3\"}],\"stop_reason\":\"stop_sequence\","
	    "\"stop_sequence\":\"\\n\\n4\",\"usage\":{\"input_tokens\":3,"
	    "\"output_tokens\":5}}";

	ck_assert_int_eq(pt->parse(&r, body, strlen(body)), 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_ptr_nonnull(r.stop_sequence);
	ck_assert_str_eq(r.stop_sequence, "\n\n4");
	ck_assert_str_eq(buf_cstr(&r.text), "1, 2, 3");
}
END_TEST

START_TEST(stream_stop_sequence)
{
	ck_assert_int_eq(event("message_delta",
	                     "{\"type\":\"message_delta\",\"delta\":"
	                     "{\"stop_reason\":\"stop_sequence\","
	                     "\"stop_sequence\":\"END\"},"
	                     "\"usage\":{\"output_tokens\":4}}"),
	    0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_ptr_nonnull(r.stop_sequence);
	ck_assert_str_eq(r.stop_sequence, "END");
	/* end_turn names none. */
	reply_free(&r);
	reply_init(&r, capture, &chunks);
	ck_assert_int_eq(event("message_delta",
	                     "{\"type\":\"message_delta\",\"delta\":"
	                     "{\"stop_reason\":\"end_turn\","
	                     "\"stop_sequence\":null},"
	                     "\"usage\":{\"output_tokens\":4}}"),
	    0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_ptr_null(r.stop_sequence);
}
END_TEST

START_TEST(parse_refusal)
{
	ck_assert_int_eq(parse_file("refusal.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Here is an overview of");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_str_eq(r.message, "refused by the model (cyber)");
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(parse_schema)
{
	ck_assert_int_eq(parse_file("schema.json"), 0);
	ck_assert_str_eq(buf_cstr(&chunks),
	    "text[{\"city\":\"Oslo\",\"population\":709037,"
	    "\"capital\":true}]\n");
	ck_assert_uint_eq(r.ntools, 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(r.input_tokens, 402);
	ck_assert_uint_eq(r.output_tokens, 58);
}
END_TEST

START_TEST(parse_schema_value)
{
	ck_assert_int_eq(parse_file("schema_value.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text),
	    "[\"Oslo\",\"Bergen\",\"Trondheim\"]");
	ck_assert_uint_eq(r.ntools, 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
}
END_TEST

START_TEST(parse_thinking)
{
	ck_assert_int_eq(parse_file("thinking.json"), 0);
	ck_assert_str_eq(buf_cstr(&chunks), "text[Oslo.]\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
}
END_TEST

START_TEST(parse_garbage)
{
	ck_assert_int_eq(parse_file("garbage.html"), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_int_eq(r.done, 0);
	ck_assert_str_eq(buf_cstr(&chunks), "");
}
END_TEST

START_TEST(parse_no_content)
{
	ck_assert_int_eq(parse_file("no_content.json"), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_int_eq(r.done, 0);
}
END_TEST

START_TEST(parse_error_body)
{
	ck_assert_int_eq(parse_file("error-overloaded.json"), -1);
	ck_assert_int_eq(r.cls, LLMGATE_OVERLOADED);
	ck_assert_str_eq(r.message, "Overloaded");
}
END_TEST

START_TEST(stream_text)
{
	ck_assert_int_eq(feed("text.sse", NULL), 0);
	ck_assert_str_eq(buf_cstr(&chunks),
	    "text[Oslo]\n"
	    "text[ is the capital]\n"
	    "text[ of Norway. \xc3\x86rlig talt: \xe2\x9c\x93]\n");
	ck_assert_str_eq(buf_cstr(&r.text),
	    "Oslo is the capital of Norway. \xc3\x86rlig talt: \xe2\x9c\x93");
	ck_assert_uint_eq(r.input_tokens, 25 + 1024);
	ck_assert_uint_eq(r.output_tokens, 15);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(stream_cut)
{
	/* Everything but message_stop: the stream is not done. */
	ck_assert_int_eq(feed("text.sse", "message_stop"), 0);
	ck_assert_str_eq(buf_cstr(&r.text),
	    "Oslo is the capital of Norway. \xc3\x86rlig talt: \xe2\x9c\x93");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_int_eq(r.done, 0);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
}
END_TEST

START_TEST(stream_cut_early)
{
	ck_assert_int_eq(feed("tool_use.sse", "content_block_stop"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Okay, let me check the weather.");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_NONE);
	ck_assert_uint_eq(r.input_tokens, 472);
	ck_assert_int_eq(r.done, 0);
}
END_TEST

START_TEST(stream_tool_use)
{
	ck_assert_int_eq(feed("tool_use.sse", NULL), 0);
	ck_assert_str_eq(buf_cstr(&chunks),
	    "text[Okay, let me check]\n"
	    "text[ the weather.]\n"
	    "tool0[toolu_01T1x1fJ34qAmk2tNTrN7Up6|get_weather|-]\n"
	    "tool0[-|-|{\"city\": \"Os]\n"
	    "tool0[-|-|lo\", \"unit\": \"cel]\n"
	    "tool0[-|-|sius\"}]\n"
	    "tool1[toolu_01VbN3mQ7xR2sT4uW6yZ8aCd|get_time|-]\n"
	    "tool1[-|-|{}]\n");
	ck_assert_uint_eq(r.ntools, 2);
	ck_assert_str_eq(r.tools[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
	ck_assert_str_eq(r.tools[0].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args),
	    "{\"city\": \"Oslo\", \"unit\": \"celsius\"}");
	ck_assert_str_eq(r.tools[1].name, "get_time");
	ck_assert_str_eq(buf_cstr(&r.tools[1].args), "{}");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_uint_eq(r.input_tokens, 472);
	ck_assert_uint_eq(r.output_tokens, 89);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(stream_overloaded)
{
	ck_assert_int_eq(feed("overloaded.sse", NULL), -1);
	ck_assert_int_eq(r.cls, LLMGATE_OVERLOADED);
	ck_assert_str_eq(r.message, "Overloaded");
	ck_assert_str_eq(buf_cstr(&chunks), "text[Once upon a]\n");
	ck_assert_int_eq(r.done, 0);
	ck_assert_uint_eq(r.status, 200);
}
END_TEST

START_TEST(stream_error_types)
{
	ck_assert_int_eq(
	    event("error",
	        "{\"type\":\"error\",\"error\":"
	        "{\"type\":\"api_error\",\"message\":\"Internal server error\"}}"),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	reply_free(&r);
	reply_init(&r, capture, &chunks);
	ck_assert_int_eq(
	    event("error",
	        "{\"type\":\"error\",\"error\":"
	        "{\"type\":\"rate_limit_error\",\"message\":\"Rate limited\"}}"),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	reply_free(&r);
	reply_init(&r, capture, &chunks);
	/* An unknown type in a 200 stream is still a failure upstream. */
	ck_assert_int_eq(
	    event("error",
	        "{\"type\":\"error\",\"error\":"
	        "{\"type\":\"brand_new_error\",\"message\":\"?\"}}"),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
}
END_TEST

START_TEST(stream_ping)
{
	ck_assert_int_eq(event("ping", "{\"type\": \"ping\"}"), 0);
	ck_assert_int_eq(event("ping", ""), 0);
	ck_assert_int_eq(event("some_future_event", "not json"), 0);
	ck_assert_str_eq(buf_cstr(&chunks), "");
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_int_eq(r.done, 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_NONE);
}
END_TEST

START_TEST(stream_schema)
{
	ck_assert_int_eq(feed("schema.sse", NULL), 0);
	ck_assert_str_eq(buf_cstr(&chunks),
	    "text[{\"city\": \"Oslo\"]\n"
	    "text[, \"population\": 709037}]\n");
	ck_assert_str_eq(buf_cstr(&r.text),
	    "{\"city\": \"Oslo\", \"population\": 709037}");
	ck_assert_uint_eq(r.ntools, 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(stream_schema_value)
{
	ck_assert_int_eq(feed("schema_value.sse", NULL), 0);
	ck_assert_str_eq(buf_cstr(&chunks), "text[[\"Oslo\",\"Bergen\"]]\n");
	ck_assert_uint_eq(r.ntools, 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(stream_refusal)
{
	ck_assert_int_eq(feed("refusal.sse", NULL), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Here is an overview of");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_str_eq(r.message, "refused by the model (cyber)");
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(stream_thinking)
{
	/* Thinking blocks and unknown events are not shown. */
	ck_assert_int_eq(feed("thinking.sse", NULL), 0);
	ck_assert_str_eq(buf_cstr(&chunks), "text[Oslo.]\n");
	ck_assert_uint_eq(r.input_tokens, 51 + 9);
	ck_assert_uint_eq(r.output_tokens, 33);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

START_TEST(stream_invalid)
{
	ck_assert_int_eq(
	    event("content_block_delta",
	        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
}
END_TEST

START_TEST(stream_bad_tool_args)
{
	ck_assert_int_eq(
	    event("content_block_start",
	        "{\"type\":"
	        "\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
	        "\"tool_use\",\"id\":\"toolu_01\",\"name\":\"f\",\"input\":{}}}"),
	    0);
	ck_assert_int_eq(
	    event("content_block_delta",
	        "{\"type\":"
	        "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
	        "\"input_json_delta\",\"partial_json\":\"{\\\"a\\\": \"}}"),
	    0);
	ck_assert_int_eq(event("content_block_stop",
	                     "{\"type\":\"content_block_stop\",\"index\":0}"),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
}
END_TEST

START_TEST(stream_bad_index)
{
	ck_assert_int_eq(
	    event("content_block_start",
	        "{\"type\":"
	        "\"content_block_start\",\"index\":100000,\"content_block\":"
	        "{\"type\":\"text\",\"text\":\"\"}}"),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
}
END_TEST

START_TEST(stream_no_event_name)
{
	/* A proxy that drops event: lines; the JSON type names the event. */
	ck_assert_int_eq(event(NULL, "{\"type\":\"message_stop\"}"), 0);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

static const struct {
	const char *file;
	uint32_t status;
	enum llmgate_class cls;
	const char *message;
} errors[] = {
	{ "error-prompt-too-long.json", 400, LLMGATE_CONTEXT_LENGTH,
	    "prompt is too long: 205014 tokens > 200000 maximum" },
	{ "error-exceed-context.json", 400, LLMGATE_CONTEXT_LENGTH,
	    "input length and `max_tokens` exceed context limit: 197682 + "
	    "8192 > 200000, decrease input length or `max_tokens` and try "
	    "again" },
	{ "error-too-many-tokens.json", 400, LLMGATE_CONTEXT_LENGTH,
	    "messages: too many tokens in the conversation for this model" },
	{ "error-credit.json", 400, LLMGATE_QUOTA_EXHAUSTED,
	    "Your credit balance is too low to access the Anthropic API. "
	    "Please go to Plans & Billing to upgrade or purchase credits." },
	{ "error-spend-limit.json", 400, LLMGATE_QUOTA_EXHAUSTED,
	    "You have reached your specified API usage limits. You will "
	    "regain access on 2025-09-01 at 00:00 UTC." },
	{ "error-bad-request.json", 400, LLMGATE_BAD_REQUEST,
	    "max_tokens: 100000 > 64000, which is the maximum allowed number "
	    "of output tokens for claude-sonnet-4-5-20250929" },
	{ "error-auth.json", 401, LLMGATE_AUTH, "invalid x-api-key" },
	{ "error-permission.json", 403, LLMGATE_PERMISSION,
	    "Your API key does not have permission to use the specified "
	    "resource." },
	{ "error-not-found.json", 404, LLMGATE_NOT_FOUND,
	    "model: claude-3-opus-2099" },
	{ "error-too-large.json", 413, LLMGATE_CONTEXT_LENGTH,
	    "Request exceeds the maximum allowed number of bytes." },
	{ "error-413.html", 413, LLMGATE_CONTEXT_LENGTH, "HTTP 413" },
	{ "error-rate-limit.json", 429, LLMGATE_RATE_LIMITED, NULL },
	{ "error-billing.json", 402, LLMGATE_QUOTA_EXHAUSTED,
	    "There is an issue with your payment method. Please update it in "
	    "Plans & Billing." },
	{ "error-api.json", 500, LLMGATE_SERVER_ERROR,
	    "Internal server error" },
	{ "error-overloaded.json", 529, LLMGATE_OVERLOADED, "Overloaded" },
	{ "error-timeout.json", 504, LLMGATE_TIMEOUT,
	    "Request timed out while processing. Please use streaming for "
	    "long requests." },
	{ "error-conflict.json", 409, LLMGATE_SERVER_ERROR, "Conflict" },
	{ "garbage.html", 502, LLMGATE_SERVER_ERROR, "HTTP 502" },
};

START_TEST(classify_body)
{
	size_t len;
	char *body = load(errors[_i].file, &len);

	pt->classify(&r, errors[_i].status, body, len);
	free(body);
	ck_assert_msg(r.cls == errors[_i].cls, "%s: class %s, want %s",
	    errors[_i].file, llmgate_class_name(r.cls),
	    llmgate_class_name(errors[_i].cls));
	ck_assert_uint_eq(r.status, errors[_i].status);
	ck_assert_ptr_nonnull(r.message);
	if (errors[_i].message != NULL)
		ck_assert_str_eq(r.message, errors[_i].message);
}
END_TEST

START_TEST(classify_long_message)
{
	const char *prefix = "This request would exceed the rate limit for "
	                     "your organization";
	size_t len;
	char *body = load("error-rate-limit.json", &len);

	pt->classify(&r, 429, body, len);
	free(body);
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_uint_eq(strlen(r.message), 300 + 3);
	ck_assert_int_eq(strncmp(r.message, prefix, strlen(prefix)), 0);
	ck_assert_str_eq(r.message + 300, "...");
}
END_TEST

START_TEST(classify_utf8_cut)
{
	struct buf b = { 0 };
	size_t i;

	/* The cut at 300 bytes must not split the two-byte e-acute. */
	buf_addstr(&b,
	    "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
	    "\"message\":\"");
	for (i = 0; i < 299; i++)
		buf_add(&b, "a", 1);
	buf_addstr(&b, "\xc3\xa9 and more\"}}");
	pt->classify(&r, 500, b.data, b.len);
	buf_free(&b);
	ck_assert_uint_eq(strlen(r.message), 299 + 3);
	ck_assert_str_eq(r.message + 299, "...");
}
END_TEST

START_TEST(classify_empty)
{
	pt->classify(&r, 503, "", 0);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message, "HTTP 503");
	ck_assert_uint_eq(r.status, 503);
}
END_TEST

/*
 * Every server's context overflow: llama.cpp's Anthropic endpoint answers
 * in OpenAI's shape, proxies in theirs.
 */
START_TEST(classify_context_any_shape)
{
	context_check(pt, (size_t)_i);
}
END_TEST

/* The same in a stream: llama.cpp's error event is OpenAI-shaped. */
START_TEST(event_context_other_shape)
{
	struct sse_event ev = { 0 };
	size_t len;
	char *body = context_load("llamacpp.json", &len);

	ev.event = "error";
	ev.data = body;
	ev.len = len;
	ck_assert_int_ne(pt->event(&r, &ev), 0);
	ck_assert_int_eq(r.cls, LLMGATE_CONTEXT_LENGTH);
	ck_assert_str_eq(r.message,
	    "request (1500 tokens) exceeds the "
	    "available context size (256 tokens), try increasing it");
	free(body);
}
END_TEST

START_TEST(classify_unknown_type)
{
	const char *body =
	    "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"brand_new_error\",\"message\":\"Something new\"}}";

	/* An unknown type falls back on the status. */
	pt->classify(&r, 429, body, strlen(body));
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_str_eq(r.message, "Something new");
}
END_TEST

static Suite *
anthropic_suite(void)
{
	Suite *s = suite_create("provider-anthropic");
	TCase *tc;

	tc = tcase_create("build");
	tcase_add_test(tc, build_minimal);
	tcase_add_test(tc, build_rich);
	tcase_add_test(tc, build_merge_and_prefill);
	tcase_add_test(tc, build_blank_prefill);
	tcase_add_test(tc, build_schema_object);
	tcase_add_test(tc, build_schema_untyped);
	tcase_add_test(tc, build_schema_wrapped);
	tcase_add_test(tc, build_invalid);
	tcase_add_test(tc, build_variants);
	tcase_add_test(tc, build_tool_choice);
	tcase_add_test(tc, build_odd_shapes);
	tcase_add_loop_test(tc, build_bad_utf8, 0, nitems(bad_utf8_causes));
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, parse_text);
	tcase_add_test(tc, parse_tool_use);
	tcase_add_loop_test(tc, parse_stop_reason, 0,
	    (int)(sizeof stops / sizeof stops[0]));
	tcase_add_test(tc, parse_stop_sequence);
	tcase_add_test(tc, parse_refusal);
	tcase_add_test(tc, parse_schema);
	tcase_add_test(tc, parse_schema_value);
	tcase_add_test(tc, parse_thinking);
	tcase_add_test(tc, parse_garbage);
	tcase_add_test(tc, parse_no_content);
	tcase_add_test(tc, parse_error_body);
	suite_add_tcase(s, tc);

	tc = tcase_create("event");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, stream_text);
	tcase_add_test(tc, stream_stop_sequence);
	tcase_add_test(tc, stream_cut);
	tcase_add_test(tc, stream_cut_early);
	tcase_add_test(tc, stream_tool_use);
	tcase_add_test(tc, stream_overloaded);
	tcase_add_test(tc, stream_error_types);
	tcase_add_test(tc, stream_ping);
	tcase_add_test(tc, stream_schema);
	tcase_add_test(tc, stream_schema_value);
	tcase_add_test(tc, stream_refusal);
	tcase_add_test(tc, stream_thinking);
	tcase_add_test(tc, stream_invalid);
	tcase_add_test(tc, stream_bad_tool_args);
	tcase_add_test(tc, stream_bad_index);
	tcase_add_test(tc, stream_no_event_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, classify_body, 0,
	    (int)(sizeof errors / sizeof errors[0]));
	tcase_add_test(tc, classify_long_message);
	tcase_add_test(tc, classify_utf8_cut);
	tcase_add_test(tc, classify_empty);
	tcase_add_loop_test(tc, classify_context_any_shape, 0,
	    (int)(sizeof context_files / sizeof context_files[0]));
	tcase_add_test(tc, event_context_other_shape);
	tcase_add_test(tc, classify_unknown_type);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(anthropic_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
