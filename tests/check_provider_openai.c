/*
 * check_provider_openai.c: the OpenAI Chat Completions adapter and Azure's
 * reuse of it, against bodies and streams recorded in the formats of
 * OpenAI, Azure OpenAI and OpenAI-compatible servers (tests/data/openai),
 * with the error class each one maps to.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"
#include "context.h"

#define DATA      TEST_DATA "/openai/"
#define NITEMS(a) (sizeof(a) / sizeof(a)[0])

/* A file of test data, NUL-terminated; the trailing newline kept. */
static char *
load(const char *name, size_t *lenp)
{
	char path[512];
	FILE *f;
	char *p;
	long n;

	snprintf(path, sizeof path, DATA "%s", name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	p = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	if (lenp != NULL)
		*lenp = (size_t)n;
	return p;
}

/*
 * What reached the emit callback, one line per chunk. An id llmgated made
 * for a call the server left unnamed (call_ and 24 hex digits) differs
 * per call: it is logged as "call_*".
 */
static void
cap_emit(void *arg, const struct llmgate_chunk *ch)
{
	struct buf *log = arg;
	const char *id = ch->tool_id;

	if (id != NULL && strlen(id) == 29 && strncmp(id, "call_", 5) == 0 &&
	    strspn(id + 5, "0123456789abcdef") == 24)
		id = "call_*";
	if (ch->tool_index < 0) {
		buf_addstr(log, "T:");
		buf_add(log, ch->text, ch->len);
	} else
		buf_printf(log, "C%d:%s:%s:%s", ch->tool_index,
		    id != NULL ? id : "-",
		    ch->tool_name != NULL ? ch->tool_name : "-",
		    ch->tool_args != NULL ? ch->tool_args : "-");
	buf_addstr(log, "\n");
}

/*
 * A tiny event-stream splitter, enough for the recorded streams: lines end
 * in \n or \r\n, a blank line dispatches, ':' starts a comment, and
 * llama.cpp's "error:" field marks an error event. Returns the first
 * non-zero return of the adapter; *nevents counts dispatched events.
 */
static int
feed(const struct provider_type *pt, struct reply *r, const char *name,
    int *nevents)
{
	struct buf data = { 0 }, event = { 0 };
	struct sse_event ev;
	char *text, *line, *next, *v;
	size_t n;
	int rc = 0, has = 0, err = 0, count = 0;

	text = load(name, NULL);
	for (line = text; *line != '\0' && rc == 0; line = next) {
		n = strcspn(line, "\n");
		next = line + n + (line[n] == '\n');
		if (n > 0 && line[n - 1] == '\r')
			n--;
		line[n] = '\0';
		if (n == 0) {
			if (has) {
				memset(&ev, 0, sizeof ev);
				ev.event = event.len != 0 ? event.data : NULL;
				ev.data = buf_cstr(&data);
				ev.len = data.len;
				ev.error_field = err;
				count++;
				rc = pt->event(r, &ev);
			}
			buf_reset(&data);
			buf_reset(&event);
			has = err = 0;
			continue;
		}
		if (*line == ':')
			continue;
		if ((v = strchr(line, ':')) == NULL)
			continue;
		*v++ = '\0';
		if (*v == ' ')
			v++;
		if (strcmp(line, "event") == 0) {
			buf_reset(&event);
			buf_addstr(&event, v);
		} else if (strcmp(line, "data") == 0 ||
		    strcmp(line, "error") == 0) {
			if (has)
				buf_addstr(&data, "\n");
			buf_addstr(&data, v);
			has = 1;
			if (strcmp(line, "error") == 0)
				err = 1;
		}
	}
	buf_free(&data);
	buf_free(&event);
	free(text);
	if (nevents != NULL)
		*nevents = count;
	return rc;
}

static void
req_free(struct http_req *hr)
{
	free(hr->url);
	curl_slist_free_all(hr->headers);
	free(hr->body);
	memset(hr, 0, sizeof *hr);
}

/* The header lines, one per line, to compare at once. */
static char *
headers(const struct http_req *hr)
{
	const struct curl_slist *l;
	struct buf b = { 0 };

	for (l = hr->headers; l != NULL; l = l->next) {
		buf_addstr(&b, l->data);
		buf_addstr(&b, "\n");
	}
	return b.data != NULL ? b.data : xstrdup("");
}

/* An expected request body from the data directory, newline dropped. */
static void
assert_body(const struct http_req *hr, const char *name)
{
	char *want;
	size_t len;

	want = load(name, &len);
	if (len > 0 && want[len - 1] == '\n')
		want[--len] = '\0';
	ck_assert_str_eq(hr->body, want);
	ck_assert_uint_eq(hr->body_len, len);
	free(want);
}

/* Our words, then jansson's reason, whose wording is jansson's own. */
static void
assert_prefix(const char *s, const char *prefix)
{
	ck_assert_ptr_nonnull(s);
	ck_assert_msg(strncmp(s, prefix, strlen(prefix)) == 0 &&
	        strlen(s) > strlen(prefix),
	    "'%s' does not start with '%s'", s, prefix);
}

/* A tool round trip, tools, a schema and every sampling field. */
static struct llmgate_tool_call rich_calls[] = {
	{ "call_7QxbNgNcxrHjmWkjx5yXoQfa", "get_weather",
	    "{\"city\":\"Oslo\"}" },
	{ "call_Vt3o0pD4n0kqcIwBzmxMeBrc", "get_weather", NULL },
};
static struct llmgate_message rich_msgs[] = {
	{ LLMGATE_ROLE_USER, "Weather in Oslo and Bergen?", NULL, 0, NULL,
	    NULL },
	{ LLMGATE_ROLE_ASSISTANT, NULL, rich_calls, 2, NULL, NULL },
	{ LLMGATE_ROLE_TOOL, "{\"temp_c\": 4}", NULL, 0,
	    "call_7QxbNgNcxrHjmWkjx5yXoQfa", "get_weather" },
	{ LLMGATE_ROLE_TOOL, "{\"temp_c\": 7}", NULL, 0,
	    "call_Vt3o0pD4n0kqcIwBzmxMeBrc", "get_weather" },
	{ LLMGATE_ROLE_ASSISTANT,
	    "Oslo 4 \xc2\xb0"
	    "C, Bergen 7 \xc2\xb0"
	    "C.",
	    NULL, 0, NULL, NULL },
	{ LLMGATE_ROLE_USER, "Which is warmer?", NULL, 0, NULL, NULL },
};
static struct llmgate_tool rich_tools[] = {
	{ "get_weather", "Current weather for a city",
	    "{\"type\": \"object\", \"properties\": {\"city\": "
	    "{\"type\": \"string\"}}, \"required\": [\"city\"]}" },
	{ "now", NULL, NULL },
};
static char *rich_stop[] = { "\n\n", "END" };

static void
rich_request(struct llmgate_request *req, int stream)
{
	memset(req, 0, sizeof *req);
	req->system = "Answer in one word.";
	req->messages = rich_msgs;
	req->nmessages = NITEMS(rich_msgs);
	req->tools = rich_tools;
	req->ntools = NITEMS(rich_tools);
	req->schema =
	    "{\"type\":\"object\",\"properties\":"
	    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}";
	req->has = LLMGATE_HAS_MAX_TOKENS | LLMGATE_HAS_TEMPERATURE |
	    LLMGATE_HAS_TOP_P | LLMGATE_HAS_SEED;
	req->max_tokens = 200;
	req->temperature = 0.3;
	req->top_p = 0.9;
	req->seed = 42;
	req->stop = rich_stop;
	req->nstop = NITEMS(rich_stop);
	req->stream = stream;
}

static struct llmgate_message one_msg[] = {
	{ LLMGATE_ROLE_USER, "Capital of Norway?", NULL, 0, NULL, NULL },
};

static void
plain_request(struct llmgate_request *req)
{
	memset(req, 0, sizeof *req);
	req->messages = one_msg;
	req->nmessages = 1;
}

static struct provider_conf openai_conf = {
	.name = "openai",
	.type = &provider_openai,
	.base_url = "https://api.openai.com/v1/",
	.api_key = "sk-test-123",
};
static struct provider_conf local_conf = {
	.name = "local",
	.type = &provider_openai,
	.base_url = "http://127.0.0.1:8080/v1",
};
static struct provider_conf azure_conf = {
	.name = "azure",
	.type = &provider_azure,
	.base_url = "https://contoso.openai.azure.com/",
	.api_key = "0123456789abcdef0123456789abcdef",
	.api_version = "2024-10-21",
};

START_TEST(build_openai_rich)
{
	struct llmgate_request req;
	struct http_req hr = { 0 };
	char *cause = NULL, *h;

	rich_request(&req, 0);
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "gpt-4o-mini",
	                     &req, &cause),
	    0);
	ck_assert_ptr_null(cause);
	ck_assert_str_eq(hr.url, "https://api.openai.com/v1/chat/completions");
	h = headers(&hr);
	ck_assert_str_eq(h,
	    "Content-Type: application/json\n"
	    "Authorization: Bearer sk-test-123\n");
	free(h);
	assert_body(&hr, "request_rich.json");
	req_free(&hr);
}
END_TEST

START_TEST(build_openai_stream_no_key)
{
	struct llmgate_request req;
	struct http_req hr = { 0 };
	char *cause = NULL, *h;

	rich_request(&req, 1);
	ck_assert_int_eq(provider_openai.build(&hr, &local_conf,
	                     "qwen2.5-7b-instruct", &req, &cause),
	    0);
	ck_assert_str_eq(hr.url, "http://127.0.0.1:8080/v1/chat/completions");
	h = headers(&hr);
	ck_assert_str_eq(h,
	    "Content-Type: application/json\n"
	    "Accept: text/event-stream\n");
	free(h);
	assert_body(&hr, "request_rich_stream.json");
	req_free(&hr);
}
END_TEST

START_TEST(build_openai_minimal)
{
	struct llmgate_request req;
	struct http_req hr = { 0 };
	char *cause = NULL;

	/* Only what was set: no sampling fields, no tools, no stream. */
	plain_request(&req);
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "gpt-4o-mini",
	                     &req, &cause),
	    0);
	ck_assert_str_eq(hr.body,
	    "{\"model\":\"gpt-4o-mini\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"Capital of Norway?\"}]}");
	ck_assert_uint_eq(hr.body_len, strlen(hr.body));
	req_free(&hr);

	/* temperature 0 is a value, not "unset". */
	req.has = LLMGATE_HAS_TEMPERATURE | LLMGATE_HAS_MAX_TOKENS;
	req.temperature = 0;
	req.max_tokens = 1;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "gpt-4o-mini",
	                     &req, &cause),
	    0);
	ck_assert_str_eq(hr.body,
	    "{\"model\":\"gpt-4o-mini\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"Capital of Norway?\"}],"
	    "\"max_tokens\":1,\"temperature\":0.0}");
	req_free(&hr);
}
END_TEST

START_TEST(build_azure)
{
	struct llmgate_request req;
	struct provider_conf conf = azure_conf;
	struct http_req hr = { 0 };
	char *cause = NULL, *h;

	rich_request(&req, 1);
	ck_assert_int_eq(provider_azure.build(&hr, &azure_conf, "gpt-4o-prod",
	                     &req, &cause),
	    0);
	ck_assert_str_eq(hr.url,
	    "https://contoso.openai.azure.com/openai/"
	    "deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
	h = headers(&hr);
	ck_assert_str_eq(h,
	    "Content-Type: application/json\n"
	    "Accept: text/event-stream\n"
	    "api-key: 0123456789abcdef0123456789abcdef\n");
	ck_assert_ptr_null(strstr(h, "Authorization"));
	free(h);
	/* The deployment picks the model: the body has none. */
	assert_body(&hr, "request_rich_azure.json");
	req_free(&hr);

	/* No api_version configured: a GA version; names are escaped. */
	conf.api_version = NULL;
	conf.api_key = NULL;
	plain_request(&req);
	ck_assert_int_eq(provider_azure.build(&hr, &conf, "my dep/1", &req,
	                     &cause),
	    0);
	ck_assert_str_eq(hr.url,
	    "https://contoso.openai.azure.com/openai/"
	    "deployments/my%20dep%2F1/chat/completions?api-version=2024-10-21");
	h = headers(&hr);
	ck_assert_str_eq(h, "Content-Type: application/json\n");
	free(h);
	ck_assert_str_eq(hr.body,
	    "{\"messages\":[{\"role\":\"user\","
	    "\"content\":\"Capital of Norway?\"}]}");
	req_free(&hr);
}
END_TEST

START_TEST(build_invalid)
{
	struct llmgate_request req;
	struct llmgate_tool bad_tool[] = {
		{ "lookup", "Find a record", "{\"type\": \"object\"," },
	};
	struct llmgate_tool array_tool[] = {
		{ "lookup", NULL, "[1, 2]" },
	};
	struct llmgate_message orphan[] = {
		{ LLMGATE_ROLE_TOOL, "42", NULL, 0, NULL, "lookup" },
	};
	struct llmgate_message bad_utf8[] = {
		{ LLMGATE_ROLE_USER, "caf\xe9", NULL, 0, NULL, NULL },
	};
	struct llmgate_message many[12];
	struct http_req hr = { 0 };
	char *cause = NULL;
	size_t i;

	rich_request(&req, 0);
	req.tools = bad_tool;
	req.ntools = 1;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause, "tool 'lookup': parameters are not valid JSON");
	/* Nothing half-built is left for the caller. */
	ck_assert_ptr_null(hr.url);
	ck_assert_ptr_null(hr.body);
	ck_assert_ptr_null(hr.headers);
	free(cause);
	cause = NULL;

	ck_assert_int_eq(provider_azure.build(&hr, &azure_conf, "d", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause, "tool 'lookup': parameters are not valid JSON");
	ck_assert_ptr_null(hr.url);
	ck_assert_ptr_null(hr.body);
	free(cause);
	cause = NULL;

	req.tools = array_tool;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause,
	    "tool 'lookup': parameters are not a JSON object");
	free(cause);
	cause = NULL;

	rich_request(&req, 0);
	req.schema = "{\"type\": }";
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    -1);
	assert_prefix(cause, "schema is not valid JSON: ");
	free(cause);
	cause = NULL;

	plain_request(&req);
	req.messages = orphan;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause,
	    "messages[0]: tool result without "
	    "tool_call_id");
	free(cause);
	cause = NULL;

	req.messages = bad_utf8;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause, "messages[0]: content is not valid UTF-8");
	free(cause);
	cause = NULL;

	/* Where, with an index of two digits. */
	for (i = 0; i < 12; i++)
		many[i] = (struct llmgate_message){ LLMGATE_ROLE_USER, "hi",
			NULL, 0, NULL, NULL };
	many[11].content = "caf\xe9";
	req.messages = many;
	req.nmessages = 12;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause, "messages[11]: content is not valid UTF-8");
	free(cause);
	ck_assert_ptr_null(hr.body);
}
END_TEST

/*
 * What build_openai_rich leaves out: each tool_choice, JSON Schema text
 * that is not already compact (whitespace, escapes, a real, a key twice),
 * every sampling real as jansson writes it, and each UTF-8 refusal.
 */
static char odd_params[] =
    " { \"type\" : \"object\",\n\t\"properties\": {\"q\": {\"type\": "
    "\"string\", \"description\": \"a \\\"quoted\\\" caf\xc3\xa9 \\n "
    "\\/ A\\u00e9\"}, \"n\": {\"type\": \"number\", \"minimum\": 1.5, "
    "\"maximum\": 1E20, \"default\": 1234567890123456789}}, \"type\": \"object\", "
    "\"required\": [ ] } ";
static char plain_params[] =
    "{ \"type\": \"object\", \"properties\": { \"q\": { \"type\": "
    "\"string\", \"enum\": [\"a\\tb\", \"caf\xc3\xa9\", null, true, false, "
    "-12, 0, 123456789012345678] } }, \"additionalProperties\": false }";

START_TEST(build_openai_variants)
{
	struct llmgate_tool tools[] = {
		{ "odd", "Odd \xe2\x9c\x93 schema", NULL },
		{ "plain", NULL, NULL },
		{ "empty", "", "{}" },
	};
	struct llmgate_tool_call calls[] = {
		{ "c1", "odd", "" },
	};
	struct llmgate_message msgs[] = {
		{ LLMGATE_ROLE_ASSISTANT, "thinking", calls, 1, NULL, NULL },
		{ LLMGATE_ROLE_TOOL, NULL, NULL, 0, "c1", NULL },
		{ LLMGATE_ROLE_ASSISTANT, NULL, NULL, 0, NULL, NULL },
	};
	static const double reals[] = { 0.7, 1, 2, 0.1, 1e-05, 1.5e300,
		0.12345678901234567, 123456789012345678.0, -0.0, 1e15, 1e16 };
	struct llmgate_request req;
	struct http_req hr = { 0 };
	char *cause = NULL, *want, *got, *tail;
	json_t *j;
	size_t i;

	tools[0].parameters = odd_params;
	tools[1].parameters = plain_params;
	plain_request(&req);
	req.system = "";
	req.messages = msgs;
	req.nmessages = NITEMS(msgs);
	req.tools = tools;
	req.ntools = NITEMS(tools);
	req.tool_name = "odd";
	req.schema = "[1]";
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause, "schema is not a JSON object");
	free(cause);
	cause = NULL;
	req.schema = " {\"a\" : [1 , 2.25], \"a\": {}} ";
	req.has = LLMGATE_HAS_SEED | LLMGATE_HAS_MAX_TOKENS;
	req.seed = -7;
	req.max_tokens = 0;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    0);
	ck_assert_str_eq(hr.body,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":"
	    "\"\"},{\"role\":\"assistant\",\"content\":\"thinking\","
	    "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
	    "\"function\":{\"name\":\"odd\",\"arguments\":\"{}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"\"},"
	    "{\"role\":\"assistant\",\"content\":\"\"}],\"tools\":[{\"type\":"
	    "\"function\",\"function\":{\"name\":\"odd\",\"description\":"
	    "\"Odd \xe2\x9c\x93 schema\",\"parameters\":{\"type\":\"object\","
	    "\"properties\":{\"q\":{\"type\":\"string\",\"description\":"
	    "\"a \\\"quoted\\\" caf\xc3\xa9 \\n / A\xc3\xa9\"},\"n\":{\"type\":"
	    "\"number\",\"minimum\":1.5,\"maximum\":1e20,\"default\":1234567890123456789}},"
	    "\"required\":[]}}},{\"type\":\"function\",\"function\":{\"name\":"
	    "\"plain\",\"parameters\":{\"type\":\"object\",\"properties\":{"
	    "\"q\":{\"type\":\"string\",\"enum\":[\"a\\tb\",\"caf\xc3\xa9\","
	    "null,true,false,-12,0,123456789012345678]}},\"additionalProperties\":false}}},"
	    "{\"type\":\"function\",\"function\":{\"name\":\"empty\","
	    "\"description\":\"\",\"parameters\":{}}}],\"tool_choice\":{"
	    "\"type\":\"function\",\"function\":{\"name\":\"odd\"}},"
	    "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
	    "\"name\":\"response\",\"schema\":{\"a\":{}},\"strict\":false}},"
	    "\"max_tokens\":0,\"seed\":-7}");
	ck_assert_uint_eq(hr.body_len, strlen(hr.body));
	req_free(&hr);

	/* A key twice: the last value, in the first one's place. */
	plain_request(&req);
	req.tools = tools + 2;
	req.ntools = 1;
	tools[2].parameters =
	    "{\"a\": 1, \"b\": {\"c\": true, \"c\": [ ]}, \"a\": \"x\"}";
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    0);
	ck_assert_ptr_nonnull(strstr(hr.body,
	    "\"parameters\":{\"a\":\"x\",\"b\":{\"c\":[]}}}}]}"));
	req_free(&hr);
	/* -0 is written 0, as jansson writes it. */
	tools[2].parameters = "{\"a\": -0, \"b\": [-0, 0]}";
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    0);
	ck_assert_ptr_nonnull(
	    strstr(hr.body, "\"parameters\":{\"a\":0,\"b\":[0,0]}}}]}"));
	req_free(&hr);
	tools[2].parameters = "{}";

	/* The named choices; auto is not sent. */
	plain_request(&req);
	req.tools = tools + 2;
	req.ntools = 1;
	req.tool_choice = LLMGATE_TOOLS_REQUIRED;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    0);
	ck_assert_ptr_nonnull(strstr(hr.body,
	    "\"parameters\":{}}}],\"tool_choice\":\"required\"}"));
	req_free(&hr);
	req.tool_choice = LLMGATE_TOOLS_NONE;
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m", &req,
	                     &cause),
	    0);
	ck_assert_ptr_nonnull(
	    strstr(hr.body, "\"parameters\":{}}}],\"tool_choice\":\"none\"}"));
	req_free(&hr);

	/* Reals as jansson writes them with 15 digits. */
	plain_request(&req);
	req.has = LLMGATE_HAS_TEMPERATURE | LLMGATE_HAS_TOP_P;
	for (i = 0; i < NITEMS(reals); i++) {
		req.temperature = reals[i];
		req.top_p = -reals[i];
		ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, "m",
		                     &req, &cause),
		    0);
		j = json_pack("{s:f,s:f}", "temperature", reals[i], "top_p",
		    -reals[i]);
		want = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
		json_decref(j);
		got = strstr(hr.body, "\"temperature\"");
		ck_assert_ptr_nonnull(got);
		tail = want + 1;
		ck_assert_int_eq(strncmp(got, tail, strlen(tail) - 1), 0);
		free(want);
		req_free(&hr);
	}
}
END_TEST

/* Each field that must be UTF-8 says which. */
START_TEST(build_openai_bad_utf8)
{
	static const char *const causes[] = {
		"request: model is not valid UTF-8",
		"system: content is not valid UTF-8",
		"tool: name is not valid UTF-8",
		"tool: description is not valid UTF-8",
		"messages[0]: id is not valid UTF-8",
		"messages[0]: name is not valid UTF-8",
		"messages[0]: arguments is not valid UTF-8",
		"messages[1]: tool_call_id is not valid UTF-8",
		"stop[1] is not valid UTF-8",
	};
	struct llmgate_tool tools[] = { { "t", "d", NULL } };
	struct llmgate_tool_call calls[] = { { "c1", "t", "{}" } };
	struct llmgate_message msgs[] = {
		{ LLMGATE_ROLE_ASSISTANT, NULL, calls, 1, NULL, NULL },
		{ LLMGATE_ROLE_TOOL, "r", NULL, 0, "c1", NULL },
	};
	char *stop[] = { "a", "b" };
	const char *model = "m";
	struct llmgate_request req;
	struct http_req hr = { 0 };
	char *cause = NULL;
	int k = _i;

	memset(&req, 0, sizeof req);
	req.messages = msgs;
	req.nmessages = NITEMS(msgs);
	req.tools = tools;
	req.ntools = 1;
	req.stop = stop;
	req.nstop = 2;
	switch (k) {
	case 0:
		model = "m\xff";
		break;
	case 1:
		req.system = "\xc3";
		break;
	case 2:
		tools[0].name = "t\xed\xa0\x80";
		break;
	case 3:
		tools[0].description = "\x80";
		break;
	case 4:
		calls[0].id = "\xfe";
		break;
	case 5:
		calls[0].name = "\xc0\xaf";
		break;
	case 6:
		calls[0].arguments = "{\"a\":\"\xf5\"}";
		break;
	case 7:
		msgs[1].tool_call_id = "c\xe2\x82";
		break;
	default:
		stop[1] = "\xef\xbf";
		break;
	}
	ck_assert_int_eq(provider_openai.build(&hr, &openai_conf, model, &req,
	                     &cause),
	    -1);
	ck_assert_str_eq(cause, causes[k]);
	ck_assert_ptr_null(hr.body);
	ck_assert_ptr_null(hr.url);
	ck_assert_ptr_null(hr.headers);
	free(cause);
}
END_TEST

/* Parse a recorded body into r, with chunks logged to log. */
static int
parse_file(struct reply *r, struct buf *log, const char *name)
{
	char *body;
	size_t len;
	int rc;

	reply_init(r, cap_emit, log);
	body = load(name, &len);
	rc = provider_openai.parse(r, body, len);
	free(body);
	return rc;
}

static void
done_reply(struct reply *r, struct buf *log)
{
	reply_free(r);
	buf_free(log);
}

START_TEST(parse_text)
{
	struct reply r;
	struct buf log = { 0 };

	ck_assert_int_eq(parse_file(&r, &log, "text.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Oslo.");
	/* A plain body still reaches a streaming caller, as one chunk. */
	ck_assert_str_eq(buf_cstr(&log), "T:Oslo.\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(r.input_tokens, 21);
	ck_assert_uint_eq(r.output_tokens, 3);
	ck_assert_uint_eq(r.ntools, 0);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_ptr_null(r.message);
	done_reply(&r, &log);
}
END_TEST

START_TEST(parse_tool_calls)
{
	struct reply r;
	struct buf log = { 0 };

	ck_assert_int_eq(parse_file(&r, &log, "tool_calls.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "");
	ck_assert_uint_eq(r.ntools, 2);
	ck_assert_str_eq(r.tools[0].id, "call_7QxbNgNcxrHjmWkjx5yXoQfa");
	ck_assert_str_eq(r.tools[0].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args), "{\"city\":\"Oslo\"}");
	ck_assert_str_eq(r.tools[1].id, "call_Vt3o0pD4n0kqcIwBzmxMeBrc");
	ck_assert_str_eq(r.tools[1].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[1].args), "{\"city\":\"Bergen\"}");
	ck_assert_str_eq(buf_cstr(&log),
	    "C0:call_7QxbNgNcxrHjmWkjx5yXoQfa:get_weather:{\"city\":\"Oslo\"}\n"
	    "C1:call_Vt3o0pD4n0kqcIwBzmxMeBrc:get_weather:"
	    "{\"city\":\"Bergen\"}\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_uint_eq(r.input_tokens, 44);
	ck_assert_uint_eq(r.output_tokens, 46);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_int_eq(r.done, 1);
	done_reply(&r, &log);
}
END_TEST

START_TEST(parse_length)
{
	struct reply r;
	struct buf log = { 0 };

	ck_assert_int_eq(parse_file(&r, &log, "length.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text),
	    "The capital of Norway is Oslo, which is");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_LENGTH);
	ck_assert_uint_eq(r.input_tokens, 14);
	ck_assert_uint_eq(r.output_tokens, 10);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	done_reply(&r, &log);
}
END_TEST

START_TEST(parse_refusal)
{
	struct reply r;
	struct buf log = { 0 };

	ck_assert_int_eq(parse_file(&r, &log, "refusal.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_str_eq(r.message,
	    "refused: I'm sorry, I can't assist with that request.");
	ck_assert_uint_eq(r.input_tokens, 81);
	ck_assert_int_eq(r.done, 1);
	done_reply(&r, &log);
}
END_TEST

START_TEST(parse_azure_content_filter)
{
	struct reply r;
	struct buf log = { 0 };

	/* The partial output stays; the class says why it stopped. */
	ck_assert_int_eq(parse_file(&r, &log, "azure_content_filter.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "The duel began at dawn, and");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_str_eq(r.message,
	    "finish_reason content_filter: output "
	    "stopped by the content filter");
	ck_assert_uint_eq(r.input_tokens, 33);
	ck_assert_uint_eq(r.output_tokens, 7);
	ck_assert_int_eq(r.done, 1);
	done_reply(&r, &log);
}
END_TEST

START_TEST(parse_deepseek_blank_lines)
{
	struct reply r;
	struct buf log = { 0 };

	ck_assert_int_eq(parse_file(&r, &log, "deepseek_queued.json"), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "Hello! How can I help you today?");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(r.input_tokens, 11);
	ck_assert_uint_eq(r.output_tokens, 9);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	done_reply(&r, &log);
}
END_TEST

START_TEST(parse_ollama_tool_stop)
{
	struct reply r;
	struct buf log = { 0 };

	/* Stopped for a tool call but said "stop": it is tool_calls. */
	ck_assert_int_eq(parse_file(&r, &log, "ollama_tool_stop.json"), 0);
	ck_assert_uint_eq(r.ntools, 1);
	ck_assert_str_eq(r.tools[0].id, "call_zp5mnb9x");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args), "{\"city\":\"Oslo\"}");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	done_reply(&r, &log);
}
END_TEST

START_TEST(parse_garbage)
{
	struct reply r;
	struct buf log = { 0 };
	const char *body;

	ck_assert_int_eq(parse_file(&r, &log, "garbage.html"), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	assert_prefix(r.message, "response body is not JSON: ");
	ck_assert_int_eq(r.done, 0);
	ck_assert_str_eq(buf_cstr(&r.text), "");
	done_reply(&r, &log);

	ck_assert_int_eq(parse_file(&r, &log, "no_choices.json"), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_str_eq(r.message, "response has no choices[0].message");
	ck_assert_int_eq(r.done, 0);
	done_reply(&r, &log);

	reply_init(&r, NULL, NULL);
	ck_assert_int_eq(provider_openai.parse(&r, "\r\n\n", 3), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_str_eq(r.message, "empty response body");
	reply_free(&r);

	/* A 200 carrying an error object (OpenRouter) is that error. */
	reply_init(&r, NULL, NULL);
	body = "{\"error\":{\"code\":429,\"message\":\"Rate limit exceeded: "
	       "free-models-per-min.\"}}";
	ck_assert_int_eq(provider_openai.parse(&r, body, strlen(body)), -1);
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_str_eq(r.message,
	    "Rate limit exceeded: free-models-per-min.");
	reply_free(&r);
}
END_TEST

/* Every finish_reason of §8, in an otherwise identical body. */
static const struct {
	const char *reason;
	enum llmgate_finish finish;
	enum llmgate_class cls;
	const char *message;
} finishes[] = {
	{ "\"stop\"", LLMGATE_FINISH_STOP, LLMGATE_OK, NULL },
	{ "\"length\"", LLMGATE_FINISH_LENGTH, LLMGATE_OK, NULL },
	{ "\"model_length\"", LLMGATE_FINISH_LENGTH, LLMGATE_OK, NULL },
	{ "\"tool_calls\"", LLMGATE_FINISH_TOOL_CALLS, LLMGATE_OK, NULL },
	{ "\"function_call\"", LLMGATE_FINISH_TOOL_CALLS, LLMGATE_OK, NULL },
	{ "\"content_filter\"", LLMGATE_FINISH_CONTENT_FILTER,
	    LLMGATE_CONTENT_FILTER,
	    "finish_reason content_filter: output stopped by the content "
	    "filter" },
	{ "\"insufficient_system_resource\"", LLMGATE_FINISH_OTHER,
	    LLMGATE_OVERLOADED,
	    "finish_reason insufficient_system_resource: generation cut "
	    "short for lack of capacity" },
	{ "\"error\"", LLMGATE_FINISH_OTHER, LLMGATE_SERVER_ERROR,
	    "finish_reason error: generation failed upstream" },
	{ "\"eos_token\"", LLMGATE_FINISH_OTHER, LLMGATE_OK, NULL },
	{ "null", LLMGATE_FINISH_OTHER, LLMGATE_OK, NULL },
};

START_TEST(parse_finish_reasons)
{
	struct reply r;
	char body[512];
	int n;

	n = snprintf(body, sizeof body,
	    "{\"id\":\"chatcmpl-1\",\"object\":"
	    "\"chat.completion\",\"created\":1735134251,\"model\":\"m\","
	    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"partial\"},\"finish_reason\":%s}],\"usage\":"
	    "{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}",
	    finishes[_i].reason);
	ck_assert(n > 0 && (size_t)n < sizeof body);
	reply_init(&r, NULL, NULL);
	ck_assert_int_eq(provider_openai.parse(&r, body, (size_t)n), 0);
	ck_assert_int_eq(r.finish, finishes[_i].finish);
	ck_assert_int_eq(r.cls, finishes[_i].cls);
	if (finishes[_i].message == NULL)
		ck_assert_ptr_null(r.message);
	else
		ck_assert_str_eq(r.message, finishes[_i].message);
	ck_assert_str_eq(buf_cstr(&r.text), "partial");
	ck_assert_int_eq(r.done, 1);
	reply_free(&r);
}
END_TEST

START_TEST(event_text)
{
	struct reply r;
	struct buf log = { 0 };
	struct sse_event ev;
	int n;

	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_text.sse", &n), 0);
	ck_assert_int_eq(n, 9);
	ck_assert_str_eq(buf_cstr(&r.text),
	    "The capital is Oslo \xe2\x80\x94 \xc3\xa6\xc3\xb8\xc3\xa5.");
	/* Each fragment reached the caller as it came, empty ones not. */
	ck_assert_str_eq(buf_cstr(&log),
	    "T:The\nT: capital\nT: is\nT: Oslo\n"
	    "T: \xe2\x80\x94 \xc3\xa6\xc3\xb8\xc3\xa5.\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(r.input_tokens, 17);
	ck_assert_uint_eq(r.output_tokens, 7);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.cls, LLMGATE_OK);

	/* Nothing after [DONE] counts. */
	memset(&ev, 0, sizeof ev);
	ev.data = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
	          "\"finish_reason\":\"length\"}]}";
	ev.len = strlen(ev.data);
	ck_assert_int_eq(provider_openai.event(&r, &ev), 0);
	ck_assert_str_eq(buf_cstr(&r.text),
	    "The capital is Oslo \xe2\x80\x94 \xc3\xa6\xc3\xb8\xc3\xa5.");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	done_reply(&r, &log);
}
END_TEST

/*
 * The events openai_event() reads straight off their tokens, and ones
 * that look like them but are not for it, read both ways: the same text
 * relayed, the same finish, usage, class and message.
 */
static const char *const fast_events[] = {
	"{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
	"\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
	"\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":"
	"null,\"finish_reason\":null}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a \\\"quoted\\\""
	"\\n\\ttab \\/ \\\\ \xc3\xa6\"},\"finish_reason\":null}]}",
	"{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
	"\"usage\":null}",
	"{\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
	"\"completion_tokens\":34,\"total_tokens\":46}}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
	"\"finish_reason\":\"content_filter\"}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
	"\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":-1,"
	"\"completion_tokens\":\"7\"}}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":null},"
	"\"finish_reason\":\"something_new\"}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],"
	"\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}",
	"{\"error\":null,\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}",
	"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":"
	"[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
	"\"Hi\",\"refusal\":null,\"annotations\":[],\"tool_calls\":[]},"
	"\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{"
	"\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10,"
	"\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
	"{\"choices\":[{\"delta\":{\"content\":\"no finish\"}}]}",
	"{\"choices\":[{\"finish_reason\":\"stop\"}]}",
	"{\"choices\":[{\"delta\":{\"content\":\"x\",\"function_call\":"
	"{\"name\":\"f\",\"arguments\":\"{}\"}}}]}",
	/* For the tree: */
	"{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"not 0\"}}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"no\"}}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
	"\"id\":\"t1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}"
	"]}}]}",
	"{\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\","
	"\"text\":\"part\"}]}}]}",
	"{\"choices\":[{\"delta\":{\"content\":\"\\u00e6\"}}]}",
	"{\"choices\":[],\"x_groq\":{\"usage\":{\"prompt_tokens\":3}}}",
	"{\"error\":{\"message\":\"boom\",\"code\":\"server_error\"}}",
	"{\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":"
	"\"a_finish_reason_far_too_long_to_be_real\"}]}",
	"{\"choices\":[{\"delta\":{\"content\":1.5}}]}",
	"[1,2]",
	"{\"choices\":[{\"delta\":{\"content\":\"bad \xff\"}}]}",
	"{\"choices\":[{\"delta\":{\"content\":\"x\"}}],}",
};

/* Both replies alike: relayed chunks, text, finish, usage, class. */
static void
same_reply(struct reply *r1, struct buf *log1, struct reply *r2,
    struct buf *log2)
{
	ck_assert_str_eq(buf_cstr(log1), buf_cstr(log2));
	ck_assert_str_eq(buf_cstr(&r1->text), buf_cstr(&r2->text));
	ck_assert_int_eq(r1->finish, r2->finish);
	ck_assert_uint_eq(r1->input_tokens, r2->input_tokens);
	ck_assert_uint_eq(r1->output_tokens, r2->output_tokens);
	ck_assert_uint_eq(r1->ntools, r2->ntools);
	ck_assert_int_eq(r1->cls, r2->cls);
	ck_assert_int_eq(r1->done, r2->done);
	ck_assert_str_eq(r1->message != NULL ? r1->message : "-",
	    r2->message != NULL ? r2->message : "-");
	done_reply(r1, log1);
	done_reply(r2, log2);
}

/* One tool-call delta chunk with the given upstream index. */
static int
tool_chunk(struct reply *r, const char *index, const char *id, const char *name,
    const char *args)
{
	struct sse_event ev;
	char *js;
	int rc;

	if (id != NULL)
		xasprintf(&js,
		    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
		    "[{\"index\":%s,\"id\":\"%s\",\"type\":\"function\","
		    "\"function\":{\"name\":\"%s\",\"arguments\":\"%s\"}}]}}]}",
		    index, id, name, args);
	else
		xasprintf(&js,
		    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
		    "[{\"index\":%s,\"function\":{\"arguments\":\"%s\"}}]}}]}",
		    index, args);
	memset(&ev, 0, sizeof ev);
	ev.data = js;
	ev.len = strlen(js);
	rc = provider_openai.event(r, &ev);
	free(js);
	return rc;
}

/*
 * Upstream tool-call indexes are keys, not positions: -1 must not be
 * relayed as text (tool_index -1 is text to clients) and 5000 must not
 * leave thousands or 128 empty calls before it. Each takes the next slot,
 * and later fragments with the same index join it.
 */
START_TEST(event_tool_index_out_of_range)
{
	struct buf log = { 0 };
	struct reply r;

	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(tool_chunk(&r, "0", "t0", "f", "{\\\"a\\\":"), 0);
	ck_assert_int_eq(tool_chunk(&r, "-1", "tneg", "g", "{"), 0);
	ck_assert_int_eq(tool_chunk(&r, "5000", "tbig", "h", "{}"), 0);
	ck_assert_int_eq(tool_chunk(&r, "4294967296", "thuge", "k", "{}"), 0);
	ck_assert_int_eq(tool_chunk(&r, "0", NULL, NULL, "1}"), 0);
	ck_assert_int_eq(tool_chunk(&r, "-1", NULL, NULL, "}"), 0);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_str_eq(buf_cstr(&log),
	    "C0:t0:f:{\"a\":\n"
	    "C1:tneg:g:{\n"
	    "C2:tbig:h:{}\n"
	    "C3:thuge:k:{}\n"
	    "C0:-:-:1}\n"
	    "C1:-:-:}\n");
	ck_assert_uint_eq(r.ntools, 4);
	ck_assert_str_eq(r.tools[0].id, "t0");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args), "{\"a\":1}");
	ck_assert_str_eq(r.tools[1].id, "tneg");
	ck_assert_str_eq(buf_cstr(&r.tools[1].args), "{}");
	ck_assert_str_eq(r.tools[2].id, "tbig");
	ck_assert_str_eq(r.tools[3].id, "thuge");
	ck_assert_uint_eq(r.text.len, 0);
	done_reply(&r, &log);
}
END_TEST

/* More distinct calls than a reply holds is a parse error, not a merge. */
START_TEST(event_tool_too_many)
{
	struct buf log = { 0 };
	struct reply r;
	char idx[16];
	int i;

	reply_init(&r, cap_emit, &log);
	for (i = 0; i < 128; i++) {
		snprintf(idx, sizeof idx, "%d", i * 7);
		ck_assert_int_eq(tool_chunk(&r, idx, "t", "f", "{}"), 0);
	}
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	ck_assert_uint_eq(r.ntools, 128);
	tool_chunk(&r, "1000000", "t", "f", "{}");
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_str_eq(r.message, "more than 128 tool calls in one reply");
	ck_assert_uint_eq(r.ntools, 128);
	done_reply(&r, &log);
}
END_TEST

START_TEST(event_fast_matches_tree)
{
	const char *js = fast_events[_i];
	struct buf log1 = { 0 }, log2 = { 0 };
	struct reply r1, r2;
	struct sse_event ev;
	char *body, *p;

	reply_init(&r1, cap_emit, &log1);
	reply_init(&r2, cap_emit, &log2);
	memset(&ev, 0, sizeof ev);
	ev.data = js;
	ev.len = strlen(js);
	ck_assert_int_eq(provider_openai.event(&r1, &ev),
	    openai_event_tree(&r2, js, strlen(js)));
	same_reply(&r1, &log1, &r2, &log2);

	/* The same as a whole reply, its deltas made messages. */
	body = malloc(2 * strlen(js) + 1);
	ck_assert_ptr_nonnull(body);
	body[0] = '\0';
	for (p = strstr(js, "delta"); p != NULL; p = strstr(js, "delta")) {
		strncat(body, js, (size_t)(p - js));
		strcat(body, "message");
		js = p + 5;
	}
	strcat(body, js);
	reply_init(&r1, cap_emit, &log1);
	reply_init(&r2, cap_emit, &log2);
	ck_assert_int_eq(provider_openai.parse(&r1, body, strlen(body)),
	    openai_parse_tree(&r2, body, strlen(body)));
	same_reply(&r1, &log1, &r2, &log2);
	free(body);
}
END_TEST

START_TEST(event_fast_values)
{
	struct buf log = { 0 };
	struct reply r;
	struct sse_event ev;
	char *big, *want;
	size_t i;

	reply_init(&r, cap_emit, &log);
	memset(&ev, 0, sizeof ev);
	for (i = 1; i <= 3; i++) {
		ev.data = fast_events[i];
		ev.len = strlen(ev.data);
		ck_assert_int_eq(provider_openai.event(&r, &ev), 0);
	}
	ck_assert_str_eq(buf_cstr(&log),
	    "T:a \"quoted\"\n\ttab / \\ \xc3\xa6\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(r.input_tokens, 12);
	ck_assert_uint_eq(r.output_tokens, 34);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	done_reply(&r, &log);

	/* A long reply with escapes: unescaped whole, not cut at a buffer. */
	big = malloc(40000);
	want = malloc(20000);
	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_nonnull(want);
	strcpy(big, "{\"choices\":[{\"message\":{\"content\":\"");
	want[0] = '\0';
	for (i = 0; i < 1500; i++) {
		strcat(big, "line\\n\\\"q\\\" ");
		strcat(want, "line\n\"q\" ");
	}
	strcat(big, "\"},\"finish_reason\":\"length\"}]}");
	reply_init(&r, NULL, NULL);
	ck_assert_int_eq(provider_openai.parse(&r, big, strlen(big)), 0);
	ck_assert_str_eq(buf_cstr(&r.text), want);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_LENGTH);
	ck_assert_int_eq(r.done, 1);
	reply_free(&r);
	free(big);
	free(want);
}
END_TEST

START_TEST(event_cut)
{
	struct reply r;
	struct buf log = { 0 };

	/* No [DONE]: not done, so the caller sees a cut stream. */
	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_cut.sse", NULL), 0);
	ck_assert_str_eq(buf_cstr(&r.text), "The capital is");
	ck_assert_int_eq(r.done, 0);
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_NONE);
	ck_assert_uint_eq(r.input_tokens, 0);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	done_reply(&r, &log);
}
END_TEST

START_TEST(event_tools)
{
	struct reply r;
	struct buf log = { 0 };

	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_tools.sse", NULL),
	    0);
	ck_assert_uint_eq(r.ntools, 2);
	ck_assert_str_eq(r.tools[0].id, "call_7QxbNgNcxrHjmWkjx5yXoQfa");
	ck_assert_str_eq(r.tools[0].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[0].args), "{\"city\": \"Oslo\"}");
	ck_assert_str_eq(r.tools[1].id, "call_Vt3o0pD4n0kqcIwBzmxMeBrc");
	ck_assert_str_eq(r.tools[1].name, "get_weather");
	ck_assert_str_eq(buf_cstr(&r.tools[1].args), "{\"city\": \"Bergen\"}");
	ck_assert_str_eq(buf_cstr(&log),
	    "C0:call_7QxbNgNcxrHjmWkjx5yXoQfa:get_weather:-\n"
	    "C0:-:-:{\"ci\n"
	    "C1:call_Vt3o0pD4n0kqcIwBzmxMeBrc:get_weather:-\n"
	    "C0:-:-:ty\": \"Oslo\"}\n"
	    "C1:-:-:{\"city\"\n"
	    "C1:-:-:: \"Bergen\"}\n");
	ck_assert_str_eq(buf_cstr(&r.text), "");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_TOOL_CALLS);
	ck_assert_uint_eq(r.input_tokens, 80);
	ck_assert_uint_eq(r.output_tokens, 52);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	done_reply(&r, &log);
}
END_TEST

START_TEST(event_azure)
{
	struct reply r;
	struct buf log = { 0 };

	/* CRLF lines and a first chunk with only prompt_filter_results. */
	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_azure, &r, "stream_azure.sse", NULL),
	    0);
	ck_assert_str_eq(buf_cstr(&r.text), "Hei verden");
	ck_assert_str_eq(buf_cstr(&log), "T:Hei\nT: verden\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(r.input_tokens, 12);
	ck_assert_uint_eq(r.output_tokens, 3);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.cls, LLMGATE_OK);
	done_reply(&r, &log);

	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_azure, &r, "stream_azure_filtered.sse",
	                     NULL),
	    0);
	ck_assert_str_eq(buf_cstr(&r.text), "The duel began at dawn");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_str_eq(r.message,
	    "finish_reason content_filter: output "
	    "stopped by the content filter");
	ck_assert_int_eq(r.done, 1);
	done_reply(&r, &log);
}
END_TEST

START_TEST(event_error_object)
{
	struct reply r;
	struct buf log = { 0 };
	int n;

	/* The error stops the stream: the [DONE] after it is never read. */
	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_error.sse", &n),
	    -1);
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message,
	    "The server had an error while processing "
	    "your request. Sorry about that!");
	ck_assert_uint_eq(r.status, 0);
	ck_assert_str_eq(buf_cstr(&r.text), "The capital");
	ck_assert_int_eq(r.done, 0);
	done_reply(&r, &log);

	/* OpenRouter: an integer code that is an HTTP status. */
	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r,
	                     "stream_openrouter_error.sse", &n),
	    -1);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message, "Provider returned error");
	ck_assert_str_eq(buf_cstr(&r.text), "Sure");
	ck_assert_int_eq(r.done, 0);
	done_reply(&r, &log);
}
END_TEST

START_TEST(event_llamacpp_error)
{
	struct reply r;
	struct buf log = { 0 };
	struct sse_event ev;

	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_llamacpp_error.sse",
	                     NULL),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message,
	    "Input prompt is too big compared to KV "
	    "size. Please try increasing KV size.");
	ck_assert_int_eq(r.done, 0);
	done_reply(&r, &log);

	/* Typed errors keep their class; text that is not JSON is quoted. */
	reply_init(&r, NULL, NULL);
	memset(&ev, 0, sizeof ev);
	ev.data = "{\"code\":503,\"message\":\"Loading model\","
	          "\"type\":\"unavailable_error\"}";
	ev.len = strlen(ev.data);
	ev.error_field = 1;
	ck_assert_int_eq(provider_openai.event(&r, &ev), -1);
	ck_assert_int_eq(r.cls, LLMGATE_OVERLOADED);
	ck_assert_str_eq(r.message, "Loading model");
	reply_free(&r);

	reply_init(&r, NULL, NULL);
	ev.data = "{\"error\":{\"message\":\"Rate limit reached for "
	          "requests\",\"type\":\"requests\","
	          "\"code\":\"rate_limit_exceeded\"}}";
	ev.len = strlen(ev.data);
	ev.error_field = 0;
	ck_assert_int_eq(provider_openai.event(&r, &ev), -1);
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	reply_free(&r);

	reply_init(&r, NULL, NULL);
	ev.data = "slot unavailable";
	ev.len = strlen(ev.data);
	ev.error_field = 1;
	ck_assert_int_eq(provider_openai.event(&r, &ev), -1);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message, "slot unavailable");
	reply_free(&r);
}
END_TEST

START_TEST(event_compat)
{
	struct reply r;
	struct buf log = { 0 };

	/* DeepSeek: keep-alive comments, reasoning ignored, usage inline. */
	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_deepseek.sse",
	                     NULL),
	    0);
	ck_assert_str_eq(buf_cstr(&r.text), "Hi!");
	ck_assert_str_eq(buf_cstr(&log), "T:Hi\nT:!\n");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(r.input_tokens, 6);
	ck_assert_uint_eq(r.output_tokens, 12);
	ck_assert_int_eq(r.done, 1);
	done_reply(&r, &log);

	/* Older Groq: usage in x_groq of the last chunk. */
	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_groq.sse", NULL),
	    0);
	ck_assert_str_eq(buf_cstr(&r.text), "Hello there");
	ck_assert_uint_eq(r.input_tokens, 13);
	ck_assert_uint_eq(r.output_tokens, 2);
	ck_assert_int_eq(r.done, 1);
	done_reply(&r, &log);
}
END_TEST

START_TEST(event_refusal)
{
	struct reply r;
	struct buf log = { 0 };

	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_refusal.sse", NULL),
	    0);
	/* The refusal is the reason, not the answer. */
	ck_assert_str_eq(buf_cstr(&r.text), "");
	ck_assert_str_eq(buf_cstr(&log), "");
	ck_assert_int_eq(r.finish, LLMGATE_FINISH_CONTENT_FILTER);
	ck_assert_int_eq(r.cls, LLMGATE_CONTENT_FILTER);
	ck_assert_str_eq(r.message,
	    "refused: I'm sorry, I can't help with that.");
	ck_assert_uint_eq(r.input_tokens, 81);
	ck_assert_int_eq(r.done, 1);
	done_reply(&r, &log);
}
END_TEST

START_TEST(event_garbage)
{
	struct reply r;
	struct buf log = { 0 };
	struct sse_event ev;

	reply_init(&r, cap_emit, &log);
	ck_assert_int_eq(feed(&provider_openai, &r, "stream_garbage.sse", NULL),
	    -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	assert_prefix(r.message, "stream event is not a JSON object: ");
	ck_assert_str_eq(buf_cstr(&r.text), "The");
	ck_assert_int_eq(r.done, 0);
	done_reply(&r, &log);

	reply_init(&r, NULL, NULL);
	memset(&ev, 0, sizeof ev);
	ev.data = "[1,2]";
	ev.len = 5;
	ck_assert_int_eq(provider_openai.event(&r, &ev), -1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_str_eq(r.message,
	    "stream event is not a JSON object: wrong type");
	reply_free(&r);
}
END_TEST

/* One row per line of §8 that a non-2xx OpenAI-style answer can hit. */
static const struct {
	const char *file;
	uint32_t status;
	enum llmgate_class cls;
	const char *message;
	int64_t retry_after_ms;
} errors[] = {
	{ "error_429_rate.json", 429, LLMGATE_RATE_LIMITED,
	    "Rate limit reached for gpt-4o-mini in organization "
	    "org-Vq3kT0bX9mYl2WcRr8uNpE5s on tokens per min (TPM): Limit "
	    "200000, Used 199412, Requested 1734. Please try again in 343ms. "
	    "Visit https://platform.openai.com/account/rate-limits to learn "
	    "more.",
	    343 },
	{ "error_429_groq.json", 429, LLMGATE_RATE_LIMITED,
	    "Rate limit reached for model `llama-3.3-70b-versatile` in "
	    "organization `org_01hzr8w4c5f6g7h8j9k0m1n2p3` service tier "
	    "`on_demand` on tokens per day (TPD): Limit 100000, Used 99687, "
	    "Requested 1032. Please try again in 10m35.616s. Need more tokens? "
	    "Upgrade to Dev Tier today at https://console.groq.com/...",
	    635616 },
	{ "error_429_azure.json", 429, LLMGATE_RATE_LIMITED,
	    "Requests to the ChatCompletions_Create Operation under Azure "
	    "OpenAI API version 2024-10-21 have exceeded token rate limit of "
	    "your current OpenAI S0 pricing tier. Please retry after 7 "
	    "seconds. "
	    "Please go here: https://aka.ms/oai/quotaincrease if you would "
	    "like to further increase the default rate limi...",
	    7000 },
	{ "error_429_quota.json", 429, LLMGATE_QUOTA_EXHAUSTED,
	    "You exceeded your current quota, please check your plan and "
	    "billing details. For more information on this error, read the "
	    "docs: https://platform.openai.com/docs/guides/error-codes/"
	    "api-errors.",
	    -1 },
	{ "error_429_tpm.json", 429, LLMGATE_CONTEXT_LENGTH,
	    "Request too large for gpt-4o in organization "
	    "org-Vq3kT0bX9mYl2WcRr8uNpE5s on tokens per min (TPM): Limit "
	    "30000, "
	    "Requested 41872. The input or output tokens must be reduced in "
	    "order to run successfully. Visit https://platform.openai.com/"
	    "account/rate-limits to learn more.",
	    -1 },
	{ "error_400_context.json", 400, LLMGATE_CONTEXT_LENGTH,
	    "This model's maximum context length is 128000 tokens. However, "
	    "your messages resulted in 131586 tokens. Please reduce the length "
	    "of the messages.",
	    -1 },
	{ "error_400_vllm_context.json", 400, LLMGATE_CONTEXT_LENGTH,
	    "This model's maximum context length is 32768 tokens. However, you "
	    "requested 33120 tokens (32096 in the messages, 1024 in the "
	    "completion). Please reduce the length of the messages or "
	    "completion.",
	    -1 },
	{ "error_400_azure_filter.json", 400, LLMGATE_CONTENT_FILTER,
	    "The response was filtered due to the prompt triggering Azure "
	    "OpenAI's content management policy. Please modify your prompt and "
	    "retry. To learn more about our content filtering policies please "
	    "read our documentation: https://go.microsoft.com/fwlink/"
	    "?linkid=2198766",
	    -1 },
	{ "error_400_mistral.json", 400, LLMGATE_BAD_REQUEST,
	    "Tool call id was call_7QxbNgNcxrHjmWkjx5yXoQfa but must be a-z, "
	    "A-Z, 0-9, with a length of 9.",
	    -1 },
	{ "error_401.json", 401, LLMGATE_AUTH,
	    /* The masked key is scrubbed (scrub.c). */
	    "Incorrect API key provided: [redacted]. You can "
	    "find your API key at https://platform.openai.com/account/"
	    "api-keys.",
	    -1 },
	{ "error_plain_string.json", 401, LLMGATE_AUTH, "Unauthorized", -1 },
	{ "error_402_deepseek.json", 402, LLMGATE_QUOTA_EXHAUSTED,
	    "Insufficient Balance", -1 },
	{ "error_403.json", 403, LLMGATE_PERMISSION,
	    "Country, region, or territory not supported", -1 },
	{ "error_403_openrouter_moderation.json", 403, LLMGATE_CONTENT_FILTER,
	    "meta-llama/llama-guard-3-8b flagged your input as violent "
	    "crimes.",
	    -1 },
	{ "error_404_deployment.json", 404, LLMGATE_NOT_FOUND,
	    "The API deployment for this resource does not exist. If you "
	    "created the deployment within the last 5 minutes, please wait a "
	    "moment and try again.",
	    -1 },
	{ "error_404_model.json", 404, LLMGATE_NOT_FOUND,
	    "The model `gpt-5-turbo` does not exist or you do not have access "
	    "to it.",
	    -1 },
	{ "error_ollama_404.json", 404, LLMGATE_NOT_FOUND,
	    "model \"llama3.2\" not found, try pulling it first", -1 },
	{ "error_408_openrouter.json", 408, LLMGATE_TIMEOUT,
	    "Request timed out. Please try again.", -1 },
	{ "error_413.html", 413, LLMGATE_CONTEXT_LENGTH, "HTTP 413", -1 },
	{ "error_422_deepseek.json", 422, LLMGATE_BAD_REQUEST,
	    "Failed to deserialize the JSON body into the target type: "
	    "messages[0].role: unknown variant `sytem`, expected one of "
	    "`system`, `user`, `assistant`, `tool` at line 1 column 40",
	    -1 },
	{ "error_500.json", 500, LLMGATE_SERVER_ERROR,
	    "The server had an error while processing your request. Sorry "
	    "about that!",
	    -1 },
	{ "error_502.html", 502, LLMGATE_SERVER_ERROR, "HTTP 502", -1 },
	{ "error_503.json", 503, LLMGATE_OVERLOADED,
	    "The engine is currently overloaded, please try again later.", -1 },
	{ "error_503_llamacpp.json", 503, LLMGATE_OVERLOADED, "Loading model",
	    -1 },
	{ "error_503.html", 503, LLMGATE_SERVER_ERROR, "HTTP 503", -1 },
	{ "error_504.html", 504, LLMGATE_TIMEOUT, "HTTP 504", -1 },
};

START_TEST(classify_errors)
{
	struct reply r;
	char *body;
	size_t len;

	reply_init(&r, NULL, NULL);
	body = load(errors[_i].file, &len);
	provider_openai.classify(&r, errors[_i].status, body, len);
	ck_assert_msg(r.cls == errors[_i].cls, "%s: class %s, want %s",
	    errors[_i].file, llmgate_class_name(r.cls),
	    llmgate_class_name(errors[_i].cls));
	ck_assert_uint_eq(r.status, errors[_i].status);
	ck_assert_str_eq(r.message, errors[_i].message);
	ck_assert_int_eq(r.rl.retry_after_ms, errors[_i].retry_after_ms);
	ck_assert_int_eq(r.done, 0);
	free(body);
	reply_free(&r);
}
END_TEST

/* Every server's context overflow, through both OpenAI-shaped APIs. */
START_TEST(classify_context_any_shape)
{
	context_check(&provider_openai, (size_t)_i);
	context_check(&provider_azure, (size_t)_i);
}
END_TEST

START_TEST(classify_edges)
{
	struct reply r;
	const char *body;

	/* A Retry-After header already seen beats the hint in the text. */
	reply_init(&r, NULL, NULL);
	r.rl.retry_after_ms = 2000;
	body = "{\"error\":{\"message\":\"Rate limit reached. Please try again "
	       "in 1.146s.\",\"type\":\"requests\","
	       "\"code\":\"rate_limit_exceeded\"}}";
	provider_openai.classify(&r, 429, body, strlen(body));
	ck_assert_int_eq(r.cls, LLMGATE_RATE_LIMITED);
	ck_assert_int_eq(r.rl.retry_after_ms, 2000);
	reply_free(&r);

	reply_init(&r, NULL, NULL);
	provider_openai.classify(&r, 429, body, strlen(body));
	ck_assert_int_eq(r.rl.retry_after_ms, 1146);
	reply_free(&r);

	/* An empty body, and a JSON body with only a code. */
	reply_init(&r, NULL, NULL);
	provider_openai.classify(&r, 500, "", 0);
	ck_assert_int_eq(r.cls, LLMGATE_SERVER_ERROR);
	ck_assert_str_eq(r.message, "HTTP 500");
	reply_free(&r);

	reply_init(&r, NULL, NULL);
	body = "{\"error\":{\"code\":\"DeploymentNotFound\"}}";
	provider_azure.classify(&r, 404, body, strlen(body));
	ck_assert_int_eq(r.cls, LLMGATE_NOT_FOUND);
	ck_assert_str_eq(r.message, "HTTP 404: DeploymentNotFound");
	reply_free(&r);

	/* A long message is cut at 300 bytes, never inside a character. */
	reply_init(&r, NULL, NULL);
	{
		char big[400], want[400];

		memset(big, 0, sizeof big);
		strcpy(big, "{\"error\":{\"message\":\"");
		memset(big + strlen(big), 'a', 299);
		strcat(big, "\xc3\xa6\xc3\xa6\"}}");
		provider_openai.classify(&r, 400, big, strlen(big));
		memset(want, 0, sizeof want);
		memset(want, 'a', 299);
		strcat(want, "...");
		ck_assert_str_eq(r.message, want);
	}
	reply_free(&r);

	/* Groq 498: its flex tier is full. */
	reply_init(&r, NULL, NULL);
	body = "{\"error\":{\"message\":\"Capacity exceeded for flex tier\","
	       "\"type\":\"capacity_exceeded\"}}";
	provider_openai.classify(&r, 498, body, strlen(body));
	ck_assert_int_eq(r.cls, LLMGATE_OVERLOADED);
	reply_free(&r);
}
END_TEST

/*
 * A stream's tool-call arguments count toward the reply's cap as its text
 * does: an upstream that streams arguments without end is cut at
 * REPLY_MAX_TEXT (text and arguments together) as parse_error, rather
 * than growing the daemon and the result frame past what a client takes.
 */
START_TEST(event_tool_args_capped)
{
	static const char head[] =
	    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
	    "\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"f\","
	    "\"arguments\":\"";
	static const char tail[] = "\"}}]}}]}";
	size_t piece = 1024 * 1024, i, n;
	struct sse_event ev;
	struct reply r;
	char *data;

	data = malloc(sizeof head + piece + sizeof tail);
	memcpy(data, head, sizeof head - 1);
	memset(data + sizeof head - 1, 'a', piece);
	memcpy(data + sizeof head - 1 + piece, tail, sizeof tail);
	reply_init(&r, NULL, NULL);
	reply_text(&r, "some text", 9);
	memset(&ev, 0, sizeof ev);
	ev.data = data;
	ev.len = strlen(data);
	for (i = 0; i < REPLY_MAX_TEXT / piece + 2 && !r.too_long; i++)
		(void)provider_openai.event(&r, &ev);
	ck_assert_int_eq(r.too_long, 1);
	ck_assert_int_eq(r.cls, LLMGATE_PARSE_ERROR);
	ck_assert_ptr_nonnull(strstr(r.message, "over"));
	n = r.text.len;
	for (i = 0; i < r.ntools; i++)
		n += r.tools[i].args.len;
	ck_assert_uint_le(n, REPLY_MAX_TEXT);
	reply_free(&r);
	free(data);
}
END_TEST

static Suite *
openai_suite(void)
{
	Suite *s = suite_create("provider_openai");
	TCase *tc;

	tc = tcase_create("build");
	tcase_add_test(tc, build_openai_rich);
	tcase_add_test(tc, build_openai_stream_no_key);
	tcase_add_test(tc, build_openai_minimal);
	tcase_add_test(tc, build_azure);
	tcase_add_test(tc, build_invalid);
	tcase_add_test(tc, build_openai_variants);
	tcase_add_loop_test(tc, build_openai_bad_utf8, 0, 9);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, parse_text);
	tcase_add_test(tc, parse_tool_calls);
	tcase_add_test(tc, parse_length);
	tcase_add_test(tc, parse_refusal);
	tcase_add_test(tc, parse_azure_content_filter);
	tcase_add_test(tc, parse_deepseek_blank_lines);
	tcase_add_test(tc, parse_ollama_tool_stop);
	tcase_add_test(tc, parse_garbage);
	tcase_add_loop_test(tc, parse_finish_reasons, 0, NITEMS(finishes));
	suite_add_tcase(s, tc);

	tc = tcase_create("event");
	tcase_add_test(tc, event_text);
	tcase_add_test(tc, event_tool_index_out_of_range);
	tcase_add_test(tc, event_tool_too_many);
	tcase_add_loop_test(tc, event_fast_matches_tree, 0,
	    NITEMS(fast_events));
	tcase_add_test(tc, event_fast_values);
	tcase_add_test(tc, event_cut);
	tcase_add_test(tc, event_tools);
	tcase_add_test(tc, event_azure);
	tcase_add_test(tc, event_error_object);
	tcase_add_test(tc, event_llamacpp_error);
	tcase_add_test(tc, event_compat);
	tcase_add_test(tc, event_refusal);
	tcase_add_test(tc, event_garbage);
	tcase_add_test(tc, event_tool_args_capped);
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_loop_test(tc, classify_errors, 0, NITEMS(errors));
	tcase_add_test(tc, classify_edges);
	tcase_add_loop_test(tc, classify_context_any_shape, 0,
	    (int)(sizeof context_files / sizeof context_files[0]));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(openai_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
