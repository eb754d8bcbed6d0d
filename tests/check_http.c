/*
 * check_http.c: the HTTP front end to end: the real llmgated with its
 * HTTP listeners, the loopback fake provider upstream, libcurl as the
 * client, over loopback TCP and the Unix socket.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include <check.h>
#include <ctype.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "harness.h"
#include "llmgated.h"

#define TEST_KEY "test-key"

static struct daemon d;
static pid_t fp_pid;
static int fp_port;
static int http_port;
static char http_sock[160];

struct hres {
	long status;
	struct curl_slist *hdrs; /* "name: value", names lower-cased */
	char *body;
	size_t len;
	json_t *json;
	size_t abort_after; /* stop reading after this many bytes */
	CURLcode rc;
};

static size_t
h_body_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct hres *r = arg;

	r->body = realloc(r->body, r->len + sz * n + 1);
	memcpy(r->body + r->len, p, sz * n);
	r->len += sz * n;
	r->body[r->len] = '\0';
	if (r->abort_after != 0 && r->len >= r->abort_after)
		return 0;
	return sz * n;
}

static size_t
h_hdr_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct hres *r = arg;
	char *line = strndup(p, sz * n), *c;

	line[strcspn(line, "\r\n")] = '\0';
	for (c = line; *c != '\0' && *c != ':'; c++)
		*c = (char)tolower((unsigned char)*c);
	if (*line != '\0')
		r->hdrs = curl_slist_append(r->hdrs, line);
	free(line);
	return sz * n;
}

static const char *
h_hdr(const struct hres *r, const char *name)
{
	const struct curl_slist *s;
	size_t len = strlen(name);

	for (s = r->hdrs; s != NULL; s = s->next) {
		if (strncmp(s->data, name, len) == 0 && s->data[len] == ':')
			return s->data + len + 1 + (s->data[len + 1] == ' ');
	}
	return NULL;
}

static void
h_free(struct hres *r)
{
	curl_slist_free_all(r->hdrs);
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof *r);
}

/*
 * One request. path "/v1/..." over loopback TCP, or "unix:/v1/..." over
 * the HTTP socket; body NULL: GET. Extra headers NULL-terminated.
 */
static void
h_req(struct hres *r, const char *path, const char *body, ...)
{
	struct curl_slist *hl = NULL;
	va_list ap;
	const char *h;
	char *url;
	CURL *c = curl_easy_init();

	size_t abort_after = r->abort_after;

	memset(r, 0, sizeof *r);
	r->abort_after = abort_after;
	if (strncmp(path, "unix:", 5) == 0) {
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, http_sock);
		url = h_strdup_printf("http://localhost%s", path + 5);
	} else
		url = h_strdup_printf("http://127.0.0.1:%d%s", http_port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	va_start(ap, body);
	while ((h = va_arg(ap, const char *)) != NULL)
		hl = curl_slist_append(hl, h);
	va_end(ap);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, h_hdr_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body != NULL)
		r->json = json_loads(r->body, 0, NULL);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	free(url);
}

static char *
chat_body(const char *model, const char *extra)
{
	return h_strdup_printf("{\"model\": \"%s\", \"messages\": [{\"role\": "
	                       "\"user\", \"content\": \"hello there\"}]%s%s}",
	    model, extra != NULL ? ", " : "", extra != NULL ? extra : "");
}

/* POST body to /v1/chat/completions, which must answer 200: the first
 * choice's text (r's until h_free). */
static const char *
chat_text(struct hres *r, const char *body)
{
	h_req(r, "/v1/chat/completions", body, NULL);
	ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
	return json_string_value(json_object_get(
	    json_object_get(json_array_get(json_object_get(r->json, "choices"),
	                        0),
	        "message"),
	    "content"));
}

/* The port the daemon logged for its TCP listener (port 0 in config). */
static int
log_port(struct daemon *dm)
{
	char *log = h_daemon_log(dm), *p;
	int port = 0;

	p = strstr(log, "HTTP front listening on 127.0.0.1:");
	if (p != NULL)
		port = atoi(p + strlen("HTTP front listening on 127.0.0.1:"));
	free(log);
	ck_assert_int_gt(port, 0);
	return port;
}

static char *
base_conf(const char *http_extra)
{
	return h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%2$s\";\n"
	    "    models = ( { name = \"gpt-x\"; } ); },\n"
	    "  { name = \"an\"; type = \"anthropic\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%2$s\";\n"
	    "    models = ( { name = \"claude-x\"; }, { name = \"both\"; } ); },\n"
	    "  { name = \"ge\"; type = \"gemini\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1beta\"; api_key = \"%2$s\";\n"
	    "    models = ( { name = \"both\"; } ); },\n"
	    "  { name = \"mock\"; type = \"mock\"; }\n"
	    ");\n"
	    "routes = ( { name = \"default\"; targets = [ \"mock/echo\" ]; },\n"
	    "  { name = \"chain\"; targets = [ \"oa/c1+status=500\", "
	    "\"an/c1\" ]; } );\n" H_CONF_FAST_RETRY
	    /* A slow reader's stream passes it soon (test_slow_reader). */
	    "max_output = 1048576;\n"
	    "http = { listen = ( \"127.0.0.1:0\", \"unix:\" ); %3$s };\n",
	    fp_port, TEST_KEY, http_extra != NULL ? http_extra : "");
}

static void
setup(void)
{
	char *conf;

	fp_port = h_fakeprov_start(&fp_pid);
	conf = base_conf(NULL);
	h_daemon_start(&d, conf);
	free(conf);
	http_port = log_port(&d);
	snprintf(http_sock, sizeof http_sock, "%s/llmgate-http.sock", d.dir);
}

static void
teardown(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	h_fakeprov_stop(fp_pid);
}

START_TEST(test_plain_tcp_and_unix)
{
	struct hres r = { 0 };
	char *body = chat_body("oa/plain1", NULL);
	json_t *last, *msg;
	const char *sock[] = { "/v1/chat/completions",
		"unix:/v1/chat/completions" };
	int i;

	for (i = 0; i < 2; i++) {
		h_req(&r, sock[i], body, "Authorization: Bearer sk-client-own",
		    NULL);
		ck_assert_int_eq(r.rc, CURLE_OK);
		ck_assert_int_eq(r.status, 200);
		ck_assert_msg(r.json != NULL, "not JSON: %s", r.body);
		ck_assert_str_eq(json_string_value(
		                     json_object_get(r.json, "object")),
		    "chat.completion");
		msg = json_object_get(json_array_get(json_object_get(r.json,
		                                         "choices"),
		                          0),
		    "message");
		ck_assert_str_eq(json_string_value(
		                     json_object_get(msg, "content")),
		    "echo: hello there");
		ck_assert_str_eq(json_string_value(json_object_get(
		                     json_array_get(json_object_get(r.json,
		                                        "choices"),
		                         0),
		                     "finish_reason")),
		    "stop");
		ck_assert_int_eq(json_integer_value(
		                     json_object_get(json_object_get(r.json,
		                                         "usage"),
		                         "prompt_tokens")),
		    2);
		ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "oa/plain1");
		ck_assert_str_eq(h_hdr(&r, "x-should-retry"), "false");
		ck_assert_ptr_nonnull(strstr(h_hdr(&r, "x-llmgate-attempts"),
		    "\"class\":\"ok\""));
		ck_assert_str_eq(json_string_value(
		                     json_object_get(json_object_get(r.json,
		                                         "llmgate"),
		                         "target")),
		    "oa/plain1");
		h_free(&r);
	}
	/* The caller's key never goes upstream: the fake saw the config's. */
	last = h_fakeprov_last(fp_port, "plain1");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(last, "headers"),
	                         "authorization")),
	    "Bearer " TEST_KEY);
	json_decref(last);
	free(body);
}
END_TEST

/* Any provider answers in OpenAI's format, tool calls included. */
START_TEST(test_other_providers_and_tools)
{
	struct hres r = { 0 };
	json_t *tc, *last;
	char *body;

	body = chat_body("an/cl1",
	    "\"max_tokens\": 50, \"temperature\": 0.5, "
	    "\"stop\": [\"zz\"]");
	ck_assert_str_eq(chat_text(&r, body), "echo: hello there");
	last = h_fakeprov_last(fp_port, "cl1");
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(last, "body"),
	                         "max_tokens")),
	    50);
	json_decref(last);
	h_free(&r);
	free(body);

	body = h_strdup_printf(
	    "{\"model\": \"ge/g1+tool=get_weather+args="
	    "%%7B%%22city%%22%%3A%%22Oslo%%22%%7D\", \"messages\": [{\"role\": "
	    "\"system\", \"content\": \"be brief\"}, {\"role\": \"user\", "
	    "\"content\": [{\"type\": \"text\", \"text\": \"weather?\"}]}], "
	    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": "
	    "\"get_weather\", \"parameters\": {\"type\": \"object\", "
	    "\"properties\": {\"city\": {\"type\": \"string\"}}}}}], "
	    "\"tool_choice\": \"auto\"}");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	tc = json_array_get(
	    json_object_get(
	        json_object_get(json_array_get(json_object_get(r.json,
	                                           "choices"),
	                            0),
	            "message"),
	        "tool_calls"),
	    0);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(tc, "function"),
	                         "name")),
	    "get_weather");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(tc, "function"),
	                         "arguments")),
	    "{\"city\":\"Oslo\"}");
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_array_get(json_object_get(r.json, "choices"),
	                         0),
	                     "finish_reason")),
	    "tool_calls");
	h_free(&r);
	free(body);

	/* A tool result goes back in, answered by the model's text. */
	body = h_strdup_printf(
	    "{\"model\": \"oa/t2\", \"messages\": ["
	    "{\"role\": \"user\", \"content\": \"weather?\"}, {\"role\": "
	    "\"assistant\", \"content\": null, \"tool_calls\": [{\"id\": "
	    "\"call_1\", \"type\": \"function\", \"function\": {\"name\": "
	    "\"get_weather\", \"arguments\": \"{}\"}}]}, {\"role\": \"tool\", "
	    "\"tool_call_id\": \"call_1\", \"content\": \"{\\\"temp_c\\\": 4}\"}"
	    "]}");
	ck_assert_str_eq(chat_text(&r, body), "echo: {\"temp_c\": 4}");
	h_free(&r);
	free(body);
}
END_TEST

/*
 * tool_choice from either front reaches each provider in its own words
 * (what the fake provider received), and a named tool must be offered.
 */
static void
tool_choice_case(const char *path, const char *model, const char *choice,
    const char *field, const char *want)
{
	struct hres r = { 0 };
	json_t *last, *v, *w;
	json_error_t jerr;
	const char *tools = strcmp(path, "/v1/messages") == 0 ?
	    "[{\"name\": \"get_weather\", \"input_schema\": {\"type\": "
	    "\"object\"}}]" :
	    "[{\"type\": \"function\", \"function\": "
	    "{\"name\": \"get_weather\", \"parameters\": {\"type\": "
	    "\"object\"}}}]";
	char *body = h_strdup_printf(
	    "{\"model\": \"%s\", \"max_tokens\": "
	    "64, \"tools\": %s, \"tool_choice\": %s, \"messages\": "
	    "[{\"role\": \"user\", \"content\": \"weather?\"}]}",
	    model, tools, choice);

	h_req(&r, path, body, NULL);
	ck_assert_msg(r.status == 200, "%s %s: %ld %s", path, choice, r.status,
	    r.body);
	last = h_fakeprov_last(fp_port, strchr(model, '/') + 1);
	ck_assert_ptr_nonnull(last);
	v = json_object_get(json_object_get(last, "body"), field);
	w = json_loads(want, JSON_DECODE_ANY, &jerr);
	ck_assert_ptr_nonnull(w);
	ck_assert_msg(json_equal(v, w), "%s %s -> %s: %s is %s", path, choice,
	    model, field, v != NULL ? json_dumps(v, JSON_COMPACT) : "absent");
	json_decref(w);
	json_decref(last);
	h_free(&r);
	free(body);
}

START_TEST(test_tool_choice)
{
	struct hres r = { 0 };
	json_t *last;
	char *body;

	tool_choice_case("/v1/chat/completions", "oa/tc1", "\"required\"",
	    "tool_choice", "\"required\"");
	tool_choice_case("/v1/chat/completions", "oa/tc2",
	    "{\"type\": "
	    "\"function\", \"function\": {\"name\": \"get_weather\"}}",
	    "tool_choice",
	    "{\"type\": \"function\", \"function\": "
	    "{\"name\": \"get_weather\"}}");
	tool_choice_case("/v1/chat/completions", "an/tc3",
	    "{\"type\": "
	    "\"function\", \"function\": {\"name\": \"get_weather\"}}",
	    "tool_choice",
	    "{\"type\": \"tool\", \"name\": "
	    "\"get_weather\"}");
	tool_choice_case("/v1/chat/completions", "an/tc4", "\"required\"",
	    "tool_choice", "{\"type\": \"any\"}");
	tool_choice_case("/v1/messages", "ge/tc5", "{\"type\": \"any\"}",
	    "toolConfig", "{\"functionCallingConfig\": {\"mode\": \"ANY\"}}");
	tool_choice_case("/v1/messages", "ge/tc6",
	    "{\"type\": \"tool\", "
	    "\"name\": \"get_weather\"}",
	    "toolConfig",
	    "{\"functionCallingConfig\": {\"mode\": \"ANY\", "
	    "\"allowedFunctionNames\": [\"get_weather\"]}}");
	tool_choice_case("/v1/messages", "oa/tc7",
	    "{\"type\": \"tool\", "
	    "\"name\": \"get_weather\"}",
	    "tool_choice",
	    "{\"type\": "
	    "\"function\", \"function\": {\"name\": \"get_weather\"}}");
	tool_choice_case("/v1/messages", "an/tc8", "{\"type\": \"any\"}",
	    "tool_choice", "{\"type\": \"any\"}");
	/* none: the tools still go, with a choice of none (Anthropic
	 * refuses a conversation with tool blocks and no tools). */
	tool_choice_case("/v1/chat/completions", "an/tc10", "\"none\"",
	    "tool_choice", "{\"type\": \"none\"}");
	tool_choice_case("/v1/messages", "oa/tc11", "{\"type\": \"none\"}",
	    "tool_choice", "\"none\"");
	tool_choice_case("/v1/messages", "ge/tc12", "{\"type\": \"none\"}",
	    "toolConfig", "{\"functionCallingConfig\": {\"mode\": \"NONE\"}}");
	/* A round trip's next turn: the call, its result, then none. */
	body = h_strdup_printf(
	    "{\"model\": \"an/tc13\", \"tool_choice\": \"none\", \"tools\": "
	    "[{\"type\": \"function\", \"function\": {\"name\": \"a\"}}], "
	    "\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, "
	    "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": "
	    "[{\"id\": \"call_1\", \"type\": \"function\", \"function\": "
	    "{\"name\": \"a\", \"arguments\": \"{}\"}}]}, {\"role\": "
	    "\"tool\", \"tool_call_id\": \"call_1\", \"content\": \"4\"}]}");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	h_free(&r);
	free(body);
	last = h_fakeprov_last(fp_port, "tc13");
	ck_assert_ptr_nonnull(last);
	ck_assert_int_eq(json_array_size(
	                     json_object_get(json_object_get(last, "body"),
	                         "tools")),
	    1);
	json_decref(last);

	/* A tool that is not offered, and a choice that means nothing. */
	body = chat_body("oa/tc9",
	    "\"tools\": [{\"type\": \"function\", "
	    "\"function\": {\"name\": \"a\"}}], \"tool_choice\": {\"type\": "
	    "\"function\", \"function\": {\"name\": \"b\"}}");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_msg(r.status == 400, "%ld %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "not one of the request's tools"));
	h_free(&r);
	free(body);
	body = chat_body("oa/tc9",
	    "\"tools\": [{\"type\": \"function\", "
	    "\"function\": {\"name\": \"a\"}}], \"tool_choice\": \"always\"");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 400);
	h_free(&r);
	free(body);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "tc9", NULL), 0);
}
END_TEST

START_TEST(test_schema_repair)
{
	struct hres r = { 0 };
	char *body;

	/* json-fix replies {"bad": true} first, then the user's text. */
	body = h_strdup_printf(
	    "{\"model\": \"mock/json-fix\", \"messages\": "
	    "[{\"role\": \"user\", \"content\": \"{\\\"n\\\": 3}\"}], "
	    "\"response_format\": {\"type\": \"json_schema\", \"json_schema\": "
	    "{\"name\": \"n\", \"schema\": {\"type\": \"object\", \"required\": "
	    "[\"n\"], \"properties\": {\"n\": {\"type\": \"integer\"}}}}}}");
	ck_assert_str_eq(chat_text(&r, body), "{\"n\": 3}");
	h_free(&r);
	free(body);
}
END_TEST

START_TEST(test_error_table)
{
	static const struct {
		const char *model;
		long status;
		const char *code;
	} cases[] = {
		{ "oa/e1+status=400", 400, "bad_request" },
		{ "oa/e2+status=400+code=context_length_exceeded", 400,
		    "context_length_exceeded" },
		{ "oa/e3+status=500", 502, "upstream_error" },
		{ "oa/e4+status=429", 429, "rate_limit_exceeded" },
		{ "oa/e5+status=404", 404, "model_not_found" },
		{ "oa/e6+status=401", 502, "upstream_auth" },
		{ "an/e7+status=529", 503, "overloaded" },
		{ "nosuchmodel", 404, "model_not_found" },
	};
	struct hres r = { 0 };
	json_t *err;
	char *body;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		body = chat_body(cases[i].model, NULL);
		h_req(&r, "/v1/chat/completions", body, NULL);
		ck_assert_msg(r.status == cases[i].status, "%s: %ld %s",
		    cases[i].model, r.status, r.body);
		err = json_object_get(r.json, "error");
		ck_assert_msg(json_is_string(json_object_get(err, "message")),
		    "%s", r.body);
		ck_assert_str_eq(json_string_value(
		                     json_object_get(err, "code")),
		    cases[i].code);
		ck_assert_str_eq(h_hdr(&r, "x-should-retry"), "false");
		if (cases[i].status == 429 || cases[i].status == 503)
			ck_assert_int_ge(atoi(h_hdr(&r, "retry-after")), 1);
		/* A call's error carries its attempts. */
		if (strchr(cases[i].model, '/') != NULL)
			ck_assert_int_ge(json_array_size(json_object_get(
			                     json_object_get(r.json, "llmgate"),
			                     "attempts")),
			    1);
		h_free(&r);
		free(body);
	}
	/* A reply every target's was turned down (x-llmgate-reject): 502
	 * reply_rejected in either dialect, not a status line of 0. */
	body = chat_body("oa/e8", NULL);
	h_req(&r, "/v1/chat/completions", body, "x-llmgate-reject: match:echo",
	    NULL);
	ck_assert_msg(r.status == 502, "%ld %s", r.status, r.body);
	err = json_object_get(r.json, "error");
	ck_assert_str_eq(json_string_value(json_object_get(err, "code")),
	    "reply_rejected");
	ck_assert_str_eq(json_string_value(json_object_get(err, "type")),
	    "server_error");
	h_free(&r);
	free(body);
	h_req(&r, "/v1/messages",
	    "{\"model\": \"oa/e9\", \"max_tokens\": 50, \"stream\": true, "
	    "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
	    "x-llmgate-reject: match:echo", NULL);
	ck_assert_msg(r.status == 502, "%ld %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(r.json, "error"),
	                         "type")),
	    "api_error");
	h_free(&r);
}
END_TEST

/* An upstream 429 is handled inside: the client sees one success. */
START_TEST(test_upstream_429_retried_inside)
{
	struct hres r = { 0 };
	char *body = chat_body("oa/r429+status=429+fail=1", NULL);

	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_int_eq(json_array_size(
	                     json_object_get(json_object_get(r.json, "llmgate"),
	                         "attempts")),
	    2);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "r429+status=429+fail=1",
	                     NULL),
	    2);
	h_free(&r);
	free(body);
}
END_TEST

START_TEST(test_targets)
{
	struct hres r = { 0 };
	char *body;

	/* A route. */
	body = chat_body("chain", NULL);
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "an/c1");
	h_free(&r);
	free(body);
	/* A bare model one provider declares. */
	body = chat_body("gpt-x", NULL);
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "oa/gpt-x");
	h_free(&r);
	free(body);
	/* ... two declare it: ambiguous. */
	body = chat_body("both", NULL);
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 400);
	h_free(&r);
	free(body);
	/* A fallback chain in the body, and in a header. */
	body = chat_body("oa/f1+status=500",
	    "\"models\": [\"oa/f1+status=500\", "
	    "\"an/f2\"]");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "an/f2");
	h_free(&r);
	free(body);
	body = chat_body("oa/f3+status=500", NULL);
	h_req(&r, "/v1/chat/completions", body, "x-llmgate-models: ge/f4",
	    "x-llmgate-client: batch-job", "x-llmgate-priority: low", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "ge/f4");
	h_free(&r);
	free(body);
	/* A deadline, waits included. */
	body = chat_body("oa/f5+delay=3000", NULL);
	h_req(&r, "/v1/chat/completions", body, "x-llmgate-timeout-ms: 200",
	    NULL);
	ck_assert_int_eq(r.status, 504);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(r.json, "error"),
	                         "code")),
	    "deadline_exceeded");
	h_free(&r);
	free(body);
}
END_TEST

/* Bad option headers are the caller's mistake: 400, nothing called. */
START_TEST(test_bad_option_headers)
{
	static const struct {
		const char *model;
		const char *extra;
		const char *header;
	} cases[] = {
		{ "oa/f6", NULL, "x-llmgate-priority: urgent" },
		{ "oa/f7", "\"stream\": true", "x-llmgate-on-cut: restart" },
		{ "oa/f8", NULL, "x-llmgate-timeout-ms: soon" },
		{ "oa/rj4", NULL, "x-llmgate-reject: boring" },
		{ "oa/rj5", NULL, "x-llmgate-fallback-on: sometimes" },
		{ "oa/rj6", NULL, "x-llmgate-fallback-on: ok" },
		{ "oa/rj7", NULL, "x-llmgate-reject: length, match:(" },
	};
	struct hres r = { 0 };
	const char *msg;
	char *body;
	size_t i, n;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		body = chat_body(cases[i].model, cases[i].extra);
		h_req(&r, "/v1/chat/completions", body, cases[i].header, NULL);
		ck_assert_msg(r.status == 400, "%s: %ld %s", cases[i].header,
		    r.status, r.body);
		/* The message names the header sent, not an internal key. */
		msg = json_string_value(
		    json_object_get(json_object_get(r.json, "error"),
		        "message"));
		n = strcspn(cases[i].header, ":");
		ck_assert_msg(msg != NULL &&
		        strncmp(msg, cases[i].header, n) == 0 &&
		        (msg[n] == ':' || msg[n] == ' '),
		    "%s: %s", cases[i].header, r.body);
		h_free(&r);
		free(body);
		ck_assert_int_eq(h_fakeprov_count(fp_port, cases[i].model + 3,
		                     NULL),
		    0);
	}
}
END_TEST

/* x-llmgate-fallback-on and x-llmgate-reject reach the chain. */
START_TEST(test_fallback_headers)
{
	struct hres r = { 0 };
	char *body;

	/* A reply cut at max_tokens, or matching a pattern (commas in it
	 * kept), is turned down and the next model answers. */
	body = chat_body("oa/rj1+length",
	    "\"models\": [\"oa/rj1+length\", "
	    "\"an/rj1-next\"]");
	h_req(&r, "/v1/chat/completions", body, "x-llmgate-reject: length",
	    NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "an/rj1-next");
	ck_assert_msg(strstr(h_hdr(&r, "x-llmgate-attempts"), "\"rejected\"") !=
	        NULL,
	    "%s", h_hdr(&r, "x-llmgate-attempts"));
	h_free(&r);
	free(body);
	body = chat_body("oa/rj2+text=sorry,%20no",
	    "\"models\": "
	    "[\"oa/rj2+text=sorry,%20no\", \"an/rj2-next\"]");
	h_req(&r, "/v1/chat/completions", body,
	    "x-llmgate-reject: empty, match:^sorry, no$", NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "an/rj2-next");
	h_free(&r);
	free(body);
	/* Narrowed to rate_limited: a 500 ends the call, the next model is
	 * never asked. */
	body = chat_body("oa/rj3+status=500",
	    "\"models\": "
	    "[\"oa/rj3+status=500\", \"an/rj3-next\"]");
	h_req(&r, "/v1/chat/completions", body,
	    "x-llmgate-fallback-on: rate_limited", NULL);
	ck_assert_msg(r.status >= 500, "%ld %s", r.status, r.body);
	h_free(&r);
	free(body);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "rj3-next", NULL), 0);
}
END_TEST

START_TEST(test_bad_input)
{
	static const char *bodies[] = {
		"{\"model\": \"oa/b\", ",
		"[1, 2]",
		"{\"model\": 3, \"messages\": []}",
		"{\"model\": \"oa/b\", \"messages\": \"hi\"}",
		"{\"model\": \"oa/b\", \"messages\": [{\"role\": \"wizard\", "
		"\"content\": \"x\"}]}",
		"{\"model\": \"oa/b\", \"n\": 2, \"messages\": [{\"role\": "
		"\"user\", \"content\": \"x\"}]}",
		"{\"model\": \"oa/b\", \"audio\": {}, \"messages\": [{\"role\": "
		"\"user\", \"content\": \"x\"}]}",
		"{\"model\": \"oa/b\", \"tool_choice\": \"required\", "
		"\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
		"{\"model\": \"oa/b\", \"temperature\": \"hot\", \"messages\": "
		"[{\"role\": \"user\", \"content\": \"x\"}]}",
		/* Penalties: 0 only, and a string is no 0. */
		"{\"model\": \"oa/b\", \"frequency_penalty\": \"1\", "
		"\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
		"{\"model\": \"oa/b\", \"presence_penalty\": \"high\", "
		"\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
		"{\"model\": \"oa/b\", \"messages\": [{\"role\": \"user\", "
		"\"content\": [{\"type\": \"image_url\"}]}]}",
	};
	struct hres r = { 0 };
	char *big;
	size_t i;

	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		h_req(&r, "/v1/chat/completions", bodies[i], NULL);
		ck_assert_msg(r.status == 400, "%s: %ld", bodies[i], r.status);
		ck_assert_ptr_nonnull(json_object_get(r.json, "error"));
		h_free(&r);
	}
	/* Over max_frame (1 MiB by default). */
	big = malloc(2 * 1024 * 1024);
	memset(big, 'a', 2 * 1024 * 1024 - 1);
	big[2 * 1024 * 1024 - 1] = '\0';
	h_req(&r, "/v1/chat/completions", big, NULL);
	ck_assert_int_eq(r.status, 413);
	h_free(&r);
	free(big);
	h_req(&r, "/v1/nothing", "{}", NULL);
	ck_assert_int_eq(r.status, 404);
	h_free(&r);
	/* A 405 names the methods the path takes (Allow). */
	h_req(&r, "/v1/chat/completions", NULL, NULL);
	ck_assert_int_eq(r.status, 405);
	ck_assert_msg(h_hdr(&r, "allow") != NULL &&
	        strcmp(h_hdr(&r, "allow"), "POST") == 0,
	    "Allow: %s", h_hdr(&r, "allow") ? h_hdr(&r, "allow") : "(none)");
	h_free(&r);
	h_req(&r, "/v1/models", "{}", NULL);
	ck_assert_int_eq(r.status, 405);
	ck_assert_msg(h_hdr(&r, "allow") != NULL &&
	        strcmp(h_hdr(&r, "allow"), "GET, HEAD") == 0,
	    "Allow: %s", h_hdr(&r, "allow") ? h_hdr(&r, "allow") : "(none)");
	h_free(&r);
	/* Bytes that are not UTF-8 in a header the error message quotes:
	 * U+FFFD for each. */
	big = chat_body("default", NULL);
	h_req(&r, "/v1/chat/completions", big, "x-llmgate-models: caf\xe9",
	    NULL);
	ck_assert_int_eq(r.status, 404);
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(
	               json_object_get(json_object_get(r.json, "error"),
	                   "message")),
	        "caf\xef\xbf\xbd"));
	h_free(&r);
	h_req(&r, "/v1/chat/completions", big,
	    "x-llmgate-fallback-on: \xff\xfe", NULL);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(json_object_get(r.json, "error"));
	h_free(&r);
	free(big);
	ck_assert(h_daemon_alive(&d));
	/* Still serving. */
	big = chat_body("oa/after-bad", NULL);
	h_req(&r, "/v1/chat/completions", big, NULL);
	ck_assert_int_eq(r.status, 200);
	h_free(&r);
	free(big);
}
END_TEST

/* r's error message (r's until h_free). */
static const char *
err_msg(struct hres *r)
{
	return json_string_value(
	    json_object_get(json_object_get(r->json, "error"), "message"));
}

/*
 * Bodies read as JSON is: escapes decoded, reals, any size; what jansson
 * refuses (a key twice, a number out of range) refused with its reason;
 * integers and reals told apart as before.
 */
START_TEST(test_body_reading)
{
	static const struct {
		const char *extra;
		const char *msg; /* its start */
	} bad[] = {
		{ "\"temperature\": 2.5",
		    "temperature must be a number from 0 "
		    "to 2" },
		{ "\"top_p\": 1e400",
		    "the body is not a JSON object: real "
		    "number overflow" },
		{ "\"seed\": 9223372036854775808",
		    "the body is not a JSON "
		    "object: too big integer" },
		{ "\"n\": 1.0", "n: only 1 choice is supported" },
		{ "\"max_tokens\": 10.5",
		    "max_tokens must be a positive "
		    "integer" },
		{ "\"model\": \"oa/b\"",
		    "the body is not a JSON object: "
		    "duplicate object key" },
		{ "\"\\u006dodel\": \"oa/b\"",
		    "the body is not a JSON object: "
		    "duplicate object key" },
		{ "\"x\": \"\\ud800\"",
		    "the body is not a JSON object: invalid "
		    "Unicode" },
		{ "\"\\u0061udio\": {}", "parameter 'audio' is not supported" },
		/* Valid JSON, which a C string cannot hold: our words, not
		 * jansson's (its option's name, JSON_ALLOW_NUL). */
		{ "\"user\": \"a\\u0000b\"",
		    "a string holds \\u0000, which llmgated does not "
		    "accept" },
		{ "\"stop\": [\"a\", 1]", "stop[1] must be a string" },
		{ "\"stop\": 5",
		    "stop must be a string or an array of at most 16 "
		    "strings" },
	};
	struct hres r = { 0 };
	char *body, *conv;
	size_t i, n = 0;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		body = chat_body("oa/read", bad[i].extra);
		h_req(&r, "/v1/chat/completions", body, NULL);
		ck_assert_msg(r.status == 400, "%s: %ld", bad[i].extra,
		    r.status);
		ck_assert_msg(err_msg(&r) != NULL &&
		        strncmp(err_msg(&r), bad[i].msg, strlen(bad[i].msg)) ==
		            0,
		    "%s: %s", bad[i].extra, r.body);
		h_free(&r);
		free(body);
	}
	/* Nesting deeper than the front reads, though JSON. */
	conv = malloc(1024);
	ck_assert_ptr_nonnull(conv);
	for (i = 0; i < 200; i++)
		conv[i] = '[';
	for (; i < 400; i++)
		conv[i] = ']';
	conv[i] = '\0';
	body = h_strdup_printf("{\"model\": \"oa/read\", \"messages\": "
	                       "[{\"role\": \"user\", \"content\": \"x\"}], "
	                       "\"metadata\": %s}",
	    conv);
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(err_msg(&r), "the body nests deeper than 128 levels");
	h_free(&r);
	free(body);
	free(conv);
	/* An unsupported member is named, wherever it stands among the
	 * members the Messages reader takes before it looks at the rest. */
	for (i = 0; i < 2; i++) {
		h_req(&r, "/v1/messages",
		    i == 0 ? "{\"bogus\": 1, \"model\": \"oa/read\", "
		             "\"max_tokens\": 5, \"messages\": [{\"role\": "
		             "\"user\", \"content\": \"hi\"}]}" :
		             "{\"model\": \"oa/read\", \"max_tokens\": 5, "
		             "\"messages\": [{\"role\": \"user\", "
		             "\"content\": \"hi\"}], \"bogus\": 1}",
		    NULL);
		ck_assert_int_eq(r.status, 400);
		ck_assert_msg(err_msg(&r) != NULL &&
		        strstr(err_msg(&r), "bogus") != NULL,
		    "%s", r.body);
		h_free(&r);
	}
	h_req(&r, "/v1/messages",
	    "{\"model\": \"oa/read\", \"max_tokens\": 5, \"messages\": "
	    "[{\"role\": \"user\", \"content\": \"hi\"}], "
	    "\"stop_sequences\": [\"a\", 2]}",
	    NULL);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(err_msg(&r), "stop_sequences[1]: a string");
	h_free(&r);
	ck_assert_str_eq(chat_text(&r,
	                     "{\"model\": \"oa/read\", \"temperature\": 0.25, "
	                     "\"top_p\": 1e-1, \"messages\": [{\"role\": "
	                     "\"user\", \"content\": \"caf\\u00e9 "
	                     "\\ud83d\\ude00 \\\"q\\\"\\/\"}]}"),
	    "echo: caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"/");
	h_free(&r);
	/* A conversation of far more tokens than a small document has. */
	conv = malloc(16384);
	ck_assert_ptr_nonnull(conv);
	n += (size_t)snprintf(conv + n, 16384 - n,
	    "{\"model\": \"oa/read\", \"messages\": [");
	for (i = 0; i < 200; i++)
		n += (size_t)snprintf(conv + n, 16384 - n,
		    "{\"role\": \"%s\", \"content\": \"turn %zu\"},",
		    i % 2 == 0 ? "user" : "assistant", i);
	snprintf(conv + n, 16384 - n,
	    "{\"role\": \"user\", \"content\": \"the last\"}]}");
	ck_assert_str_eq(chat_text(&r, conv), "echo: the last");
	h_free(&r);
	free(conv);
}
END_TEST

/* The daemon runs under a wrapper (valgrind): slower, not wrong. */
static int
wrapped(void)
{
	const char *w = getenv("LLMGATE_TEST_WRAPPER");

	return w != NULL && *w != '\0';
}

/* Count SSE events of a body; 1 when it ends with data: [DONE]. */
static int
sse_done(const char *body)
{
	size_t len = strlen(body);

	return len >= 14 && strcmp(body + len - 14, "data: [DONE]\n\n") == 0;
}

START_TEST(test_stream)
{
	struct hres r = { 0 };
	char *body, *p;
	int events = 0;

	body = chat_body("oa/s1",
	    "\"stream\": true, \"stream_options\": "
	    "{\"include_usage\": true}");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(h_hdr(&r, "content-type"), "text/event-stream");
	ck_assert_msg(sse_done(r.body), "%s", r.body);
	for (p = r.body; (p = strstr(p, "data: ")) != NULL; p++)
		events++;
	/* role, 3 pieces, finish, usage, [DONE] */
	ck_assert_int_eq(events, 7);
	ck_assert_ptr_nonnull(strstr(r.body,
	    "\"delta\":{\"content\":\"hello "
	    "\"}"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "\"usage\":{\"prompt_tokens\":2,"
	    "\"completion_tokens\":3,\"total_tokens\":5}"));
	ck_assert_ptr_nonnull(strstr(r.body, "\"finish_reason\":\"stop\""));
	h_free(&r);
	free(body);

	/* A failure mid-stream, after the daemon's resume gave up too. */
	body = chat_body("oa/s2+stream_error", "\"stream\": true");
	h_req(&r, "/v1/chat/completions", body, "x-llmgate-on-cut: fail", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(!sse_done(r.body), "%s", r.body);
	ck_assert_msg(strstr(r.body, "data: {\"error\":") != NULL, "%s",
	    r.body);
	h_free(&r);
	free(body);

	/* A failure before any output: a plain HTTP error. */
	body = chat_body("oa/s3+status=400", "\"stream\": true");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 400);
	h_free(&r);
	free(body);
}
END_TEST

/* The JSON of the first event in body whose data has needle (or NULL). */
static json_t *
sse_event_with(const char *body, const char *needle)
{
	const char *p, *end;

	for (p = body; (p = strstr(p, "data: ")) != NULL; p = end) {
		p += 6;
		if ((end = strchr(p, '\n')) == NULL)
			return NULL;
		if (memmem(p, (size_t)(end - p), needle, strlen(needle)) !=
		    NULL)
			return json_loadb(p, (size_t)(end - p), 0, NULL);
	}
	return NULL;
}

/* llmgate.attempts[i].message of an answer or event, NULL if none. */
static const char *
attempt_message(json_t *j, size_t i)
{
	return json_string_value(
	    json_object_get(json_array_get(json_object_get(json_object_get(j,
	                                                       "llmgate"),
	                                       "attempts"),
	                        i),
	        "message"));
}

/*
 * An upstream error message that is not UTF-8 (a plain-text error event
 * in Latin-1): the answers quote it with U+FFFD for the byte, in both
 * dialects, and leave no field out.
 */
START_TEST(test_not_utf8)
{
	static const char *paths[] = { "/v1/chat/completions", "/v1/messages" };
	struct hres r = { 0 };
	char *body, model[96];
	json_t *ev;
	size_t i;

	for (i = 0; i < 2; i++) {
		/* The first attempt fails with it, the second answers. */
		snprintf(model, sizeof model,
		    "oa/u%zu+fail=1+stream_error+shape=latin1+msg=caf%%C3%%A9",
		    i);
		body = chat_body(model, "\"stream\": true, \"max_tokens\": 50");
		h_req(&r, paths[i], body, NULL);
		ck_assert_int_eq(r.status, 200);
		ev = sse_event_with(r.body, "\"llmgate\":");
		ck_assert_msg(ev != NULL, "%s", r.body);
		ck_assert_pstr_eq(attempt_message(ev, 0), "caf\xef\xbf\xbd");
		json_decref(ev);
		h_free(&r);
		free(body);
	}

	/* It fails the call after output: the error event quotes it. */
	body = chat_body("oa/u2+stream_error+shape=latin1+msg=caf%C3%A9",
	    "\"stream\": true");
	h_req(&r, "/v1/chat/completions", body, "x-llmgate-on-cut: fail", NULL);
	ck_assert_int_eq(r.status, 200);
	ev = sse_event_with(r.body, "\"error\":");
	ck_assert_msg(ev != NULL, "%s", r.body);
	ck_assert_pstr_eq(json_string_value(
	                      json_object_get(json_object_get(ev, "error"),
	                          "message")),
	    "caf\xef\xbf\xbd");
	ck_assert_pstr_eq(attempt_message(ev, 0), "caf\xef\xbf\xbd");
	json_decref(ev);
	h_free(&r);
	free(body);
}
END_TEST

/* A client that goes away cancels its call and the upstream transfer. */
START_TEST(test_disconnect_cancels)
{
	struct hres r = { 0 };
	char *body, *log;
	uint64_t t0;
	int found = 0;

	body = chat_body("oa/dc1+word_delay=300", "\"stream\": true");
	r.abort_after = 1;
	t0 = h_mono_ms();
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.rc, CURLE_WRITE_ERROR);
	h_free(&r);
	free(body);
	while (!found && h_mono_ms() - t0 < 5000) {
		log = h_daemon_log(&d);
		found = strstr(log,
		            "cancelled, 1 attempts [oa/dc1+word_delay=300="
		            "cancelled]") != NULL;
		free(log);
		if (!found)
			h_sleep_ms(20);
	}
	ck_assert_msg(found, "the call was not cancelled");
	/* Well before the stream's own end (3 pieces x 300 ms). */
	ck_assert_uint_lt(h_mono_ms() - t0, wrapped() ? 10000 : 800);

	/* Non-streamed, hanging up while the upstream is slow. */
	body = chat_body("oa/dc2+delay=3000", NULL);
	{
		CURL *c = curl_easy_init();
		char *url = h_strdup_printf("http://127.0.0.1:%d/v1/chat/"
		                            "completions",
		    http_port);

		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
		t0 = h_mono_ms();
		ck_assert_int_eq(curl_easy_perform(c),
		    CURLE_OPERATION_TIMEDOUT);
		curl_easy_cleanup(c);
		free(url);
	}
	found = 0;
	while (!found && h_mono_ms() - t0 < 5000) {
		log = h_daemon_log(&d);
		found = strstr(log, "[oa/dc2+delay=3000=cancelled]") != NULL;
		free(log);
		if (!found)
			h_sleep_ms(20);
	}
	ck_assert_msg(found, "the call was not cancelled");
	ck_assert_uint_lt(h_mono_ms() - t0, wrapped() ? 10000 : 2000);
	free(body);
}
END_TEST

START_TEST(test_models)
{
	struct hres r = { 0 };
	json_t *data, *m;
	size_t i;
	int route = 0, model = 0;

	h_req(&r, "/v1/models", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "object")),
	    "list");
	data = json_object_get(r.json, "data");
	json_array_foreach(data, i, m) {
		if (strcmp(json_string_value(json_object_get(m, "id")),
		        "chain") == 0)
			route = 1;
		if (strcmp(json_string_value(json_object_get(m, "id")),
		        "oa/gpt-x") == 0)
			model = 1;
	}
	ck_assert(route && model);
	h_free(&r);
}
END_TEST

/*
 * GET /v1/models/ID: the list's entry, the id raw (the Python SDK) or
 * percent-encoded (the Node SDK); an unknown one OpenAI's 404.
 */
START_TEST(test_model_retrieve)
{
	static const char *paths[] = { "/v1/models/oa/gpt-x",
		"/v1/models/oa%2Fgpt-x", "/v1/models/oa%2fgpt-x?x=1" };
	struct hres r = { 0 };
	json_t *e;
	size_t i;

	for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		h_req(&r, paths[i], NULL, NULL);
		ck_assert_msg(r.status == 200, "%s: %ld %s", paths[i], r.status,
		    r.body);
		ck_assert_str_eq(json_string_value(
		                     json_object_get(r.json, "id")),
		    "oa/gpt-x");
		ck_assert_str_eq(json_string_value(
		                     json_object_get(r.json, "object")),
		    "model");
		ck_assert_str_eq(json_string_value(
		                     json_object_get(r.json, "owned_by")),
		    "oa");
		h_free(&r);
	}
	h_req(&r, "/v1/models/chain", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(json_object_get(r.json, "targets"));
	h_free(&r);
	h_req(&r, "/v1/models/oa%2Fnope", NULL, NULL);
	ck_assert_int_eq(r.status, 404);
	e = json_object_get(r.json, "error");
	ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
	    "model_not_found");
	ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
	    "invalid_request_error");
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(e, "message")),
	        "oa/nope"));
	h_free(&r);
	h_req(&r, "/v1/models/oa/gpt-x", "{}", NULL);
	ck_assert_int_eq(r.status, 405);
	h_free(&r);
}
END_TEST

/* With anthropic-version (the Anthropic SDKs): Anthropic's format. */
START_TEST(test_models_anthropic)
{
	struct hres r = { 0 };
	json_t *data, *m;
	size_t n;

	h_req(&r, "/v1/models?limit=20", NULL, "anthropic-version: 2023-06-01",
	    NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_null(json_object_get(r.json, "object"));
	ck_assert(json_is_false(json_object_get(r.json, "has_more")));
	data = json_object_get(r.json, "data");
	ck_assert_int_gt(n = json_array_size(data), 2);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "first_id")),
	    json_string_value(json_object_get(json_array_get(data, 0), "id")));
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "last_id")),
	    json_string_value(
	        json_object_get(json_array_get(data, n - 1), "id")));
	m = json_array_get(data, n - 1);
	ck_assert_str_eq(json_string_value(json_object_get(m, "type")),
	    "model");
	ck_assert_str_eq(json_string_value(json_object_get(m, "display_name")),
	    json_string_value(json_object_get(m, "id")));
	ck_assert_str_eq(json_string_value(json_object_get(m, "created_at")),
	    "1970-01-01T00:00:00Z");
	h_free(&r);
	h_req(&r, "/v1/models/an%2Fclaude-x", NULL,
	    "anthropic-version: 2023-06-01", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")),
	    "model");
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")),
	    "an/claude-x");
	h_free(&r);
	h_req(&r, "/v1/models/an/nope", NULL, "anthropic-version: 2023-06-01",
	    NULL);
	ck_assert_int_eq(r.status, 404);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")),
	    "error");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(r.json, "error"),
	                         "type")),
	    "not_found_error");
	h_free(&r);
}
END_TEST

/*
 * A uid outside the socket's owner and group is refused on both
 * listeners (the socket is 0660 root:root). Needs root to switch users.
 */
START_TEST(test_other_uid_refused)
{
	pid_t pid;
	int st;

	if (geteuid() != 0)
		return;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct hres r = { 0 };
		char *body = chat_body("oa/uid1", NULL);

		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
		    setuid(65534) != 0)
			_exit(10);
		h_req(&r, "/v1/chat/completions", body, NULL);
		if (r.status != 403)
			_exit(11);
		h_free(&r);
		h_req(&r, "unix:/v1/chat/completions", body, NULL);
		if (r.rc != CURLE_COULDNT_CONNECT)
			_exit(12);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d",
	    WEXITSTATUS(st));
	/* root (the owner) is let in. */
	{
		struct hres r = { 0 };
		char *body = chat_body("oa/uid2", NULL);

		h_req(&r, "/v1/chat/completions", body, NULL);
		ck_assert_int_eq(r.status, 200);
		h_free(&r);
		free(body);
	}
}
END_TEST

/* As uid/gid (groups dropped): the status a TCP call gets. */
static int
status_as(uid_t uid, gid_t gid, const char *model)
{
	pid_t pid;
	int st;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct hres r = { 0 };
		char *body = chat_body(model, NULL);

		if (setgroups(0, NULL) != 0 || setgid(gid) != 0 ||
		    setuid(uid) != 0)
			_exit(1);
		h_req(&r, "/v1/chat/completions", body, NULL);
		_exit(r.status == 200 ? 2 : r.status == 403 ? 3 : 4);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st) == 2 ? 200 :
	    WEXITSTATUS(st) == 3    ? 403 :
	                              -WEXITSTATUS(st);
}

/*
 * socket_group: a member of the group (here by its primary group) is let
 * in over loopback TCP, others are not; the members are read when the
 * config is loaded. Needs root and a "nogroup" that is nobody's group.
 */
START_TEST(test_group_member_allowed)
{
	struct daemon d2;
	struct group *gr;
	struct passwd *pw;
	char *conf, *base;
	int saved = http_port;
	uid_t other;

	if (geteuid() != 0 || (gr = getgrnam("nogroup")) == NULL ||
	    (pw = getpwuid(65534)) == NULL || pw->pw_gid != gr->gr_gid)
		return;
	/* A user outside nogroup: daemon (1), else bin (2). */
	if ((pw = getpwuid(1)) == NULL || pw->pw_gid == gr->gr_gid)
		pw = getpwuid(2);
	if (pw == NULL || pw->pw_gid == gr->gr_gid)
		return;
	other = pw->pw_uid;
	base = base_conf(NULL);
	conf = h_strdup_printf("socket_group = \"nogroup\";\n%s", base);
	h_daemon_start(&d2, conf);
	http_port = log_port(&d2);
	ck_assert_int_eq(status_as(65534, gr->gr_gid, "oa/grp1"), 200);
	ck_assert_int_eq(status_as(other, pw->pw_gid, "oa/grp2"), 403);
	http_port = saved;
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
	free(conf);
	free(base);
}
END_TEST

START_TEST(test_tokens)
{
	struct daemon d2;
	struct hres r = { 0 };
	char *conf, *path, *body, *extra;
	FILE *f;
	int saved = http_port;

	path = h_strdup_printf("%s/tokens", d.dir);
	f = fopen(path, "w");
	fputs("# clients\nalice sk-alice-0123456789abcdef\n", f);
	fclose(f);
	chmod(path, 0644);
	extra = h_strdup_printf("tokens_file = \"%s\";", path);
	conf = base_conf(extra);
	/* A tokens file others may read is refused. */
	{
		struct run rr;
		char *cpath = h_strdup_printf("%s/t.conf", d.dir);
		char *argv[] = { BUILD_DIR "/llmgated", "--check-config", "-c",
			cpath, NULL };

		f = fopen(cpath, "w");
		fputs(conf, f);
		fclose(f);
		h_run(&rr, NULL, argv);
		ck_assert_int_eq(rr.status, 1);
		ck_assert_ptr_nonnull(strstr(rr.err, "tokens_file"));
		h_run_free(&rr);
		free(cpath);
	}
	chmod(path, 0600);
	h_daemon_start(&d2, conf);
	http_port = log_port(&d2);
	body = chat_body("oa/tok1", NULL);
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 401);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(r.json, "error"),
	                         "type")),
	    "authentication_error");
	h_free(&r);
	h_req(&r, "/v1/chat/completions", body,
	    "Authorization: Bearer sk-alice-0123456789abcdeX", NULL);
	ck_assert_int_eq(r.status, 401);
	h_free(&r);
	h_req(&r, "/v1/chat/completions", body,
	    "Authorization: Bearer sk-alice-0123456789abcdef", NULL);
	ck_assert_int_eq(r.status, 200);
	h_free(&r);
	h_req(&r, "/v1/chat/completions", body,
	    "x-api-key: sk-alice-0123456789abcdef", NULL);
	ck_assert_int_eq(r.status, 200);
	h_free(&r);
	http_port = saved;
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
	free(body);
	free(conf);
	free(extra);
	free(path);
}
END_TEST

/* Drain: a call in flight finishes, new connections are refused. */
START_TEST(test_drain_and_reload)
{
	struct hres r = { 0 };
	char *body;
	pid_t pid;
	int st;

	/* Reload keeps serving (the listener is kept). */
	kill(d.pid, SIGHUP);
	body = chat_body("oa/rl1", NULL);
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 200);
	h_free(&r);
	free(body);

	body = chat_body("oa/dr1+delay=500", NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		h_req(&r, "/v1/chat/completions", body, NULL);
		_exit(r.status == 200 ? 0 : 1);
	}
	/* The request is in flight once fakeprov has it. */
	{
		uint64_t t0 = h_mono_ms();

		while (h_fakeprov_count(fp_port, "dr1+delay=500", NULL) == 0 &&
		    h_mono_ms() - t0 < 5000)
			h_sleep_ms(10);
	}
	kill(d.pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "the call in flight did not finish");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.rc, CURLE_COULDNT_CONNECT);
	h_free(&r);
	free(body);
}
END_TEST

START_TEST(test_anthropic)
{
	struct hres r = { 0 };
	json_t *c, *last;
	char *body;
	const char *order[] = { "event: message_start",
		"event: "
		"content_block_start",
		"event: content_block_delta",
		"event: "
		"content_block_stop",
		"event: message_delta", "event: message_stop" };
	const char *p;
	size_t i;

	/* An optional parameter given as null is not given, as system and
	 * tools are: no 400 for temperature, top_p, stop_sequences, stream. */
	h_req(&r, "/v1/messages",
	    "{\"model\": \"an/a0\", \"max_tokens\": 64, \"temperature\": "
	    "null, \"top_p\": null, \"stop_sequences\": null, \"stream\": "
	    "null, \"system\": null, \"messages\": [{\"role\": \"user\", "
	    "\"content\": \"hi\"}]}",
	    NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	h_free(&r);

	/* Gemini answers an Anthropic client. */
	body = h_strdup_printf(
	    "{\"model\": \"ge/a1\", \"max_tokens\": 64, "
	    "\"system\": [{\"type\": \"text\", \"text\": \"be brief\"}], "
	    "\"stop_sequences\": [\"zz\"], \"messages\": [{\"role\": "
	    "\"user\", \"content\": [{\"type\": \"text\", \"text\": "
	    "\"hello there\"}]}]}");
	h_req(&r, "/v1/messages", body, "x-api-key: sk-client-own",
	    "anthropic-version: 2023-06-01", NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")),
	    "message");
	c = json_array_get(json_object_get(r.json, "content"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "text")),
	    "echo: hello there");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(r.json, "stop_reason")),
	    "end_turn");
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(r.json, "usage"),
	                         "output_tokens")),
	    3);
	ck_assert_str_eq(h_hdr(&r, "x-llmgate-target"), "ge/a1");
	last = h_fakeprov_last(fp_port, "a1");
	ck_assert_ptr_null(
	    json_object_get(json_object_get(last, "headers"), "x-api-key"));
	json_decref(last);
	h_free(&r);
	free(body);

	/* The full event sequence, in order. */
	body = h_strdup_printf(
	    "{\"model\": \"oa/a2\", \"max_tokens\": 64, "
	    "\"stream\": true, \"messages\": [{\"role\": \"user\", "
	    "\"content\": \"hello there\"}]}");
	h_req(&r, "/v1/messages", body, NULL);
	ck_assert_int_eq(r.status, 200);
	for (p = r.body, i = 0; i < sizeof order / sizeof order[0]; i++) {
		ck_assert_msg((p = strstr(p, order[i])) != NULL, "no %s: %s",
		    order[i], r.body);
	}
	ck_assert_ptr_nonnull(strstr(r.body,
	    "\"text_delta\",\"text\":"
	    "\"hello \""));
	h_free(&r);
	free(body);

	/* Tool use and a tool result round trip. */
	body = h_strdup_printf(
	    "{\"model\": \"an/a3+tool=get_weather+args="
	    "%%7B%%22city%%22%%3A%%22Oslo%%22%%7D\", \"max_tokens\": 64, "
	    "\"tools\": [{\"name\": \"get_weather\", \"input_schema\": "
	    "{\"type\": \"object\"}}], \"messages\": [{\"role\": \"user\", "
	    "\"content\": \"weather?\"}]}");
	h_req(&r, "/v1/messages", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	c = json_array_get(json_object_get(r.json, "content"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "type")),
	    "tool_use");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(c, "input"),
	                         "city")),
	    "Oslo");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(r.json, "stop_reason")),
	    "tool_use");
	h_free(&r);
	free(body);
	body = h_strdup_printf(
	    "{\"model\": \"oa/a4\", \"max_tokens\": 64, "
	    "\"messages\": [{\"role\": \"user\", \"content\": \"weather?\"}, "
	    "{\"role\": \"assistant\", \"content\": [{\"type\": \"tool_use\", "
	    "\"id\": \"tu_1\", \"name\": \"get_weather\", \"input\": {}}]}, "
	    "{\"role\": \"user\", \"content\": [{\"type\": \"tool_result\", "
	    "\"tool_use_id\": \"tu_1\", \"content\": \"{\\\"temp_c\\\": 4}\"}]}"
	    "]}");
	h_req(&r, "/v1/messages", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	c = json_array_get(json_object_get(r.json, "content"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "text")),
	    "echo: {\"temp_c\": 4}");
	h_free(&r);
	free(body);

	/* Errors in Anthropic's shape: overloaded is 529 here. */
	body = h_strdup_printf(
	    "{\"model\": \"an/a5+status=529\", "
	    "\"max_tokens\": 64, \"messages\": [{\"role\": \"user\", "
	    "\"content\": \"x\"}]}");
	h_req(&r, "/v1/messages", body, NULL);
	ck_assert_int_eq(r.status, 529);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")),
	    "error");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(r.json, "error"),
	                         "type")),
	    "overloaded_error");
	h_free(&r);
	free(body);
	h_req(&r, "/v1/messages",
	    "{\"model\": \"an/a6\", \"messages\": "
	    "[{\"role\": \"user\", \"content\": \"x\"}]}",
	    NULL);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(r.json, "error"),
	                         "type")),
	    "invalid_request_error");
	h_free(&r);

	/* A stream that fails mid-way ends with an error event. */
	body = h_strdup_printf(
	    "{\"model\": \"an/a7+stream_error\", "
	    "\"max_tokens\": 64, \"stream\": true, \"messages\": [{\"role\": "
	    "\"user\", \"content\": \"a b c d e\"}]}");
	h_req(&r, "/v1/messages", body, "x-llmgate-on-cut: fail", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "event: error\n"));
	ck_assert_ptr_null(strstr(r.body, "message_stop"));
	h_free(&r);
	free(body);
}
END_TEST

/*
 * Which stop sequence ended a reply: an Anthropic upstream says, and the
 * Anthropic front passes it on, plain and streamed; OpenAI's stop does
 * not say, so its reply stays end_turn; the OpenAI front's finish is stop.
 */
START_TEST(test_stop_sequence)
{
	struct hres r = { 0 };
	const char *ask = "\"max_tokens\": 64, \"stop_sequences\": [\"END\"], "
	                  "\"messages\": [{\"role\": \"user\", \"content\": "
	                  "\"count\"}]}";
	char *body;

	body = h_strdup_printf("{\"model\": \"an/ss1+stop_seq=END\", %s", ask);
	h_req(&r, "/v1/messages", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(r.json, "stop_reason")),
	    "stop_sequence");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(r.json, "stop_sequence")),
	    "END");
	h_free(&r);
	free(body);

	body = h_strdup_printf("{\"model\": \"an/ss2+stop_seq=END\", "
	                       "\"stream\": true, %s",
	    ask);
	h_req(&r, "/v1/messages", body, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body,
	                  "\"delta\":{\"stop_reason\":\"stop_sequence\","
	                  "\"stop_sequence\":\"END\"}") != NULL,
	    "%s", r.body);
	h_free(&r);
	free(body);

	/* An OpenAI upstream cannot tell: end_turn, no sequence. */
	body = h_strdup_printf("{\"model\": \"oa/ss3+stop_seq=END\", %s", ask);
	h_req(&r, "/v1/messages", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(r.json, "stop_reason")),
	    "end_turn");
	ck_assert(json_is_null(json_object_get(r.json, "stop_sequence")));
	h_free(&r);
	free(body);

	/* The OpenAI front: an ordinary stop. */
	body = chat_body("an/ss4+stop_seq=END", "\"stop\": [\"END\"]");
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_array_get(json_object_get(r.json, "choices"),
	                         0),
	                     "finish_reason")),
	    "stop");
	h_free(&r);
	free(body);
}
END_TEST

/* The JSON of the first event named name in an SSE body, or NULL. */
static json_t *
sse_event_json(const char *body, const char *name)
{
	char *key = h_strdup_printf("event: %s\ndata: ", name);
	const char *p = strstr(body, key);
	json_t *j = NULL;

	if (p != NULL) {
		p += strlen(key);
		j = json_loadb(p, strcspn(p, "\n"), 0, NULL);
	}
	free(key);
	return j;
}

/*
 * An Anthropic-front stream's message_start carries the input tokens when
 * the upstream told them before the text (Anthropic's own message_start,
 * Gemini's first chunk); an OpenAI stream tells them only at its end, so
 * there it is 0 and message_delta's usage has the count.
 */
START_TEST(test_anthropic_stream_input_tokens)
{
	static const struct {
		const char *model;
		long long early;
	} cases[] = { { "an/it1", 3 }, { "ge/it2", 3 }, { "oa/it3", 0 } };
	struct hres r = { 0 };
	json_t *start, *delta;
	char *body;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		body = h_strdup_printf(
		    "{\"model\": \"%s\", \"max_tokens\": 64, \"stream\": "
		    "true, \"messages\": [{\"role\": \"user\", \"content\": "
		    "\"one two three\"}]}",
		    cases[i].model);
		h_req(&r, "/v1/messages", body, NULL);
		ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
		start = sse_event_json(r.body, "message_start");
		delta = sse_event_json(r.body, "message_delta");
		ck_assert_msg(start != NULL && delta != NULL, "%s", r.body);
		ck_assert_msg(json_integer_value(json_object_get(
		                  json_object_get(json_object_get(start,
		                                      "message"),
		                      "usage"),
		                  "input_tokens")) == cases[i].early,
		    "%s: message_start %s", cases[i].model, r.body);
		ck_assert_int_eq(json_integer_value(
		                     json_object_get(json_object_get(delta,
		                                         "usage"),
		                         "input_tokens")),
		    3);
		json_decref(start);
		json_decref(delta);
		h_free(&r);
		free(body);
	}
}
END_TEST

static long
rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	}
	fclose(f);
	return kb;
}

/*
 * A client that does not read its stream for a while: the upstream is
 * held rather than buffered (the daemon stays small), and once it reads
 * it gets the whole stream, to its end.
 */
START_TEST(test_slow_reader)
{
	struct sockaddr_in sin;
	struct buf req = { NULL, 0, 0 };
	char *words, *got;
	/* Under valgrind, a stream it can carry before timeouts strike. */
	size_t i, n = wrapped() ? 5000 : 20000, len = 0, cap = 1 << 20;
	long before, during;
	ssize_t k;
	int fd;

	words = malloc(n * 2 + 1);
	for (i = 0; i < n; i++)
		memcpy(words + 2 * i, "a ", 2);
	words[n * 2 - 1] = '\0';
	buf_printf(&req,
	    "{\"model\": \"oa/slow1\", \"stream\": true, "
	    "\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}]}",
	    words);
	free(words);
	before = rss_kb(d.pid);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)http_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	got = h_strdup_printf(
	    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nConnection: close\r\n"
	    "Content-Length: %zu\r\n\r\n",
	    req.len);
	ck_assert_int_eq(write(fd, got, strlen(got)), (ssize_t)strlen(got));
	free(got);
	for (i = 0; i < req.len; i += (size_t)k)
		ck_assert_int_gt(k = write(fd, req.data + i, req.len - i), 0);
	buf_free(&req);
	/* Not reading while the upstream streams ~4 MB of events, well
	 * over max_output (1 MiB here), which would drop the client. */
	h_sleep_ms(1500);
	during = rss_kb(d.pid);
	got = malloc(cap);
	while ((k = read(fd, got + len, cap - len - 1)) > 0) {
		len += (size_t)k;
		if (len + 1 == cap)
			got = realloc(got, cap *= 2);
	}
	got[len] = '\0';
	close(fd);
	ck_assert_msg(strstr(got, "data: [DONE]") != NULL,
	    "the stream did not "
	    "end: %zu bytes",
	    len);
	ck_assert_uint_gt(len, n * 100);
	/*
	 * Had the daemon queued the stream instead of holding the upstream,
	 * the client would have been dropped past max_output and the stream
	 * would not have ended. Its size says the same, except under
	 * AddressSanitizer or valgrind's memcheck, whose quarantines keep
	 * freed memory resident (the bound measured allocation churn there:
	 * 95 MB for this stream under ASan; memcheck holds 20 MB of freed
	 * blocks by default).
	 */
#if !defined(__SANITIZE_ADDRESS__)
	if (getenv("LLMGATE_TEST_WRAPPER") == NULL)
		ck_assert_msg(during - before < 16 * 1024,
		    "the daemon grew by %ld kB", during - before);
#else
	(void)before;
	(void)during;
#endif
	free(got);
}
END_TEST

/* A TCP connection to the front; rcvbuf: its receive buffer (0: as is). */
static int
tcp_connect_rcvbuf(int rcvbuf)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (rcvbuf != 0)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		                     sizeof rcvbuf),
		    0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)http_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	return fd;
}

static int
tcp_connect(void)
{
	return tcp_connect_rcvbuf(0);
}

/* What the daemon answers on fd before it closes (up to a deadline). */
static char *
read_all(int fd, int ms)
{
	struct buf b = { NULL, 0, 0 };
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	char chunk[4096];
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_add(&b, chunk, (size_t)n);
	buf_add(&b, "", 0);
	return b.data;
}

/*
 * Header floods get a 4xx and a closed connection; half-sent requests
 * (slowloris) hold nothing others need: calls go on meanwhile.
 */
START_TEST(test_floods_and_slowloris)
{
	struct hres r = { 0 };
	struct buf req = { NULL, 0, 0 };
	int fd, slow[64], i;
	char *ans, *body;

	fd = tcp_connect();
	buf_addstr(&req, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
	for (i = 0; i < 4000; i++)
		buf_printf(&req, "x-flood-%d: %0100d\r\n", i, i);
	buf_addstr(&req, "\r\n");
	(void)!write(fd, req.data, req.len);
	ans = read_all(fd, 5000);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 4", 10) == 0 || *ans == '\0',
	    "%.80s", ans);
	free(ans);
	close(fd);
	buf_free(&req);

	for (i = 0; i < 64; i++) {
		slow[i] = tcp_connect();
		ck_assert_int_eq(write(slow[i], "POST /v1/chat/compl", 19), 19);
	}
	body = chat_body("oa/loris1", NULL);
	h_req(&r, "/v1/chat/completions", body, NULL);
	ck_assert_int_eq(r.status, 200);
	h_free(&r);
	free(body);
	for (i = 0; i < 64; i++)
		close(slow[i]);
	ck_assert(h_daemon_alive(&d));
}
END_TEST

/* Write all of s to fd. */
static void
send_all(int fd, const char *s, size_t len)
{
	ssize_t n;

	for (; len > 0; s += n, len -= (size_t)n)
		ck_assert_int_gt(n = send(fd, s, len, MSG_NOSIGNAL), 0);
}

/* Read from fd until want is in what came (or a deadline): all of it. */
static char *
read_until(int fd, const char *want, int ms)
{
	struct buf b = { NULL, 0, 0 };
	uint64_t t0 = h_mono_ms();
	char chunk[4096];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	buf_add(&b, "", 0);
	while (
	    strstr(b.data, want) == NULL && h_mono_ms() - t0 < (uint64_t)ms) {
		if (poll(&pfd, 1, 100) != 1)
			continue;
		if ((n = read(fd, chunk, sizeof chunk)) <= 0)
			break;
		buf_add(&b, chunk, (size_t)n);
	}
	return b.data;
}

static const char echo_body[] =
    "{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"user\","
    "\"content\":\"%s\"}]}";

/* A POST of the echo model's body saying what, keep-alive. */
static char *
echo_req(const char *what, const char *extra)
{
	char *body = h_strdup_printf(echo_body, what), *req;

	req = h_strdup_printf("POST /v1/chat/completions HTTP/1.1\r\n"
	                      "Host: x\r\nContent-Type: application/json\r\n"
	                      "%sContent-Length: %zu\r\n\r\n%s",
	    extra != NULL ? extra : "", strlen(body), body);
	free(body);
	return req;
}

/* Add the POST of a chat call to model (kept alive) to req. */
static void
add_chat_req(struct buf *req, const char *model)
{
	char *body = chat_body(model, NULL);

	buf_printf(req,
	    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: %zu\r\n\r\n%s",
	    strlen(body), body);
	free(body);
}

/*
 * Requests pipelined on one connection, in one write: answered in their
 * order, the slow first one before the quick ones after it; the last one
 * asks to close, and the connection closes after its answer.
 */
START_TEST(test_pipelined)
{
	struct buf req = { NULL, 0, 0 };
	char *one, *ans, *p1, *p2, *p3;
	int fd = tcp_connect();

	add_chat_req(&req, "oa/pipe1+delay=300");
	one = echo_req("second", NULL);
	buf_addstr(&req, one);
	free(one);
	one = echo_req("third", "Connection: close\r\n");
	buf_addstr(&req, one);
	free(one);
	send_all(fd, req.data, req.len);
	buf_free(&req);
	ans = read_all(fd, wrapped() ? 20000 : 5000);
	close(fd);
	p1 = strstr(ans, "x-llmgate-target: oa/pipe1+delay=300");
	p2 = strstr(ans, "echo: second");
	p3 = strstr(ans, "echo: third");
	ck_assert_msg(p1 != NULL && p2 != NULL && p3 != NULL, "%s", ans);
	ck_assert_msg(p1 < p2 && p2 < p3, "out of order: %s", ans);
	ck_assert_ptr_nonnull(strstr(p2, "Connection: close"));
	free(ans);
}
END_TEST

/*
 * req (freed) on a new connection; the answer's status line must begin
 * with status and the answer hold want (or, with a '!' before it, not).
 */
static void
expect_exchange(char *req, const char *status, const char *want)
{
	int fd = tcp_connect();
	char *ans;

	send_all(fd, req, strlen(req));
	ans = read_all(fd, 5000);
	close(fd);
	ck_assert_msg(strncmp(ans, status, strlen(status)) == 0 &&
	        (want[0] == '!' ? strstr(ans, want + 1) == NULL :
	                          strstr(ans, want) != NULL),
	    "%s: %s", req, ans);
	free(ans);
	free(req);
}

/*
 * A request line in absolute form (RFC 9112 3.2.2: a server must take
 * it) is served as its path (and query), with no path as "/"; one with
 * userinfo is refused.
 */
START_TEST(test_absolute_form)
{
	char *body = h_strdup_printf(echo_body, "absolute");
	const char *end = "HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close";

	expect_exchange(h_strdup_printf("POST http://127.0.0.1:%d/v1/chat/"
	                                "completions?x=1 %s\r\n"
	                                "Content-Length: %zu\r\n\r\n%s",
	                    http_port, end, strlen(body), body),
	    "HTTP/1.1 200", "echo: absolute");
	/* With userinfo, which hides the authority: refused (RFC 9110
	 * 4.2.4), in either place of the headers. */
	expect_exchange(h_strdup_printf("POST http://u:p@127.0.0.1:%d/v1/chat/"
	                                "completions %s\r\n"
	                                "Content-Length: %zu\r\n\r\n%s",
	                    http_port, end, strlen(body), body),
	    "HTTP/1.1 400", "!echo: absolute");
	/* No header at all, and in the dialect of its path. */
	expect_exchange(h_strdup_printf(
	                    "POST http://u@h/v1/messages HTTP/1.0\r\n\r\n"),
	    "HTTP/1.1 400",
	    "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"invalid_request_error\"");
	/* No path, with and without a query: the path is "/". */
	expect_exchange(h_strdup_printf("GET http://127.0.0.1:%d %s\r\n\r\n",
	                    http_port, end),
	    "HTTP/1.1 404", "no such endpoint: / (");
	expect_exchange(
	    h_strdup_printf("GET http://127.0.0.1:%d?a=b %s\r\n\r\n", http_port,
	        end),
	    "HTTP/1.1 404", "no such endpoint: / (");
	free(body);
}
END_TEST

/*
 * The wire layer's own refusals (413 and 431, whose path is read before
 * them) in the dialect of the path: Anthropic's on /v1/messages (also in
 * absolute form), OpenAI's elsewhere.
 */
START_TEST(test_wire_errors_in_dialect)
{
	static const struct {
		const char *target;
		int big_head; /* 431, else 413 */
		const char *want;
	} cases[] = {
		{ "/v1/messages", 0,
		    "{\"type\":\"error\",\"error\":{\"type\":"
		    "\"request_too_large\"," },
		{ "/v1/messages?beta=true", 1,
		    "{\"type\":\"error\",\"error\":{\"type\":"
		    "\"invalid_request_error\"," },
		{ "http://127.0.0.1/v1/messages", 0,
		    "{\"type\":\"error\",\"error\":{\"type\":"
		    "\"request_too_large\"," },
		{ "/v1/chat/completions", 0,
		    "{\"error\":{\"message\":\"the request body is too large\"" },
		{ "/v1/chat/completions", 1,
		    "{\"error\":{\"message\":\"the request's headers are too "
		    "large\"" },
	};
	struct buf req = { NULL, 0, 0 };
	char *ans, *b;
	json_t *j;
	size_t i;
	int fd, k;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_reset(&req);
		buf_printf(&req, "POST %s HTTP/1.1\r\nHost: x\r\n",
		    cases[i].target);
		if (cases[i].big_head) {
			for (k = 0; k < 200; k++)
				buf_printf(&req, "x-many-%d: %d\r\n", k, k);
			buf_addstr(&req, "Content-Length: 2\r\n\r\n{}");
		} else
			buf_addstr(&req, "Content-Length: 3000000\r\n\r\n{");
		fd = tcp_connect();
		send_all(fd, req.data, req.len);
		ans = read_all(fd, 5000);
		close(fd);
		ck_assert_msg(strncmp(ans,
		                  cases[i].big_head ? "HTTP/1.1 431" :
		                                      "HTTP/1.1 413",
		                  12) == 0,
		    "%s: %.200s", cases[i].target, ans);
		b = strstr(ans, "\r\n\r\n");
		ck_assert_msg(b != NULL &&
		        strncmp(b + 4, cases[i].want, strlen(cases[i].want)) ==
		            0,
		    "%s: %s", cases[i].target, ans);
		ck_assert_ptr_nonnull(j = json_loads(b + 4, 0, NULL));
		json_decref(j);
		free(ans);
	}
	buf_free(&req);
}
END_TEST

/* The echo model's 200 answer saying what, on fd (with a deadline). */
static void
expect_echo(int fd, const char *what)
{
	char *want = h_strdup_printf("echo: %s", what);
	char *ans = read_until(fd, want, 5000);

	ck_assert_msg(strncmp(ans, "HTTP/1.1 200", 12) == 0 &&
	        strstr(ans, want) != NULL,
	    "%s", ans);
	free(ans);
	free(want);
}

/*
 * A client that pipelines requests and reads none of the answers: the
 * daemon takes no more requests while an answer waits to be written, so
 * the client's sending stops within the sockets' buffers and one
 * request's room, instead of the answers piling up in the daemon's memory
 * without bound. Reading then gets the answers, in order.
 */
START_TEST(test_pipelined_unread)
{
	static const char req[] = "GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n";
	const size_t limit = 64u << 20;
	struct pollfd pfd;
	char chunk[4096];
	size_t sent = 0, got = 0;
	ssize_t n;
	char block[64 * (sizeof req - 1)];
	long before = rss_kb(d.pid), during;
	int fd = tcp_connect(), i;

	for (i = 0; i < 64; i++)
		memcpy(block + (size_t)i * (sizeof req - 1), req,
		    sizeof req - 1);
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	/* Send until the daemon has taken nothing for a second. */
	while (sent < limit) {
		n = send(fd, block, sizeof block, MSG_NOSIGNAL);
		if (n > 0) {
			sent += (size_t)n;
			continue;
		}
		ck_assert_msg(n == -1 && errno == EAGAIN, "send: %s",
		    strerror(errno));
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 1000) == 0)
			break;
	}
	ck_assert_msg(sent < limit,
	    "the daemon took %zu bytes of requests whose answers nobody read",
	    sent);
	/* What it took it did not answer into its memory (unchecked where
	 * a sanitizer's or memcheck's quarantine keeps freed memory). */
	during = rss_kb(d.pid);
#if !defined(__SANITIZE_ADDRESS__)
	if (getenv("LLMGATE_TEST_WRAPPER") == NULL)
		ck_assert_msg(during - before < 16 * 1024,
		    "the daemon grew by %ld kB for %zu bytes of requests",
		    during - before, sent);
#else
	(void)before;
	(void)during;
#endif
	/* The answers come as they are read (404s, the first one whole). */
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (got < 1u << 20 && poll(&pfd, 1, 5000) == 1 &&
	    (n = read(fd, chunk, sizeof chunk)) > 0) {
		if (got == 0)
			ck_assert_msg(strncmp(chunk, "HTTP/1.1 404", 12) == 0,
			    "%.40s", chunk);
		got += (size_t)n;
	}
	ck_assert_uint_ge(got, 1u << 20);
	close(fd);
	fd = tcp_connect();
	{
		char *one = echo_req("after", NULL);

		send_all(fd, one, strlen(one));
		free(one);
	}
	expect_echo(fd, "after");
	close(fd);
}
END_TEST

/* Expect: 100-continue is answered before the body is sent. */
START_TEST(test_expect_continue)
{
	char *body = h_strdup_printf(echo_body, "continued"), *head, *ans;
	int fd = tcp_connect();

	head = h_strdup_printf("POST /v1/chat/completions HTTP/1.1\r\n"
	                       "Host: x\r\nExpect: 100-continue\r\n"
	                       "Content-Length: %zu\r\n\r\n",
	    strlen(body));
	send_all(fd, head, strlen(head));
	ans = read_until(fd, "\r\n\r\n", 5000);
	ck_assert_str_eq(ans, "HTTP/1.1 100 Continue\r\n\r\n");
	free(ans);
	send_all(fd, body, strlen(body));
	expect_echo(fd, "continued");
	free(head);
	free(body);
	close(fd);
}
END_TEST

/* A chunked request body, in pieces, and an HTTP/1.0 request: closed after
 * its answer unless it asks to be kept. */
START_TEST(test_chunked_and_http10)
{
	char *body = h_strdup_printf(echo_body, "in chunks"), *req, *ans;
	size_t half = strlen(body) / 2;
	int fd = tcp_connect();

	req = h_strdup_printf("POST /v1/chat/completions HTTP/1.1\r\n"
	                      "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	                      "%zx\r\n%.*s\r\n",
	    half, (int)half, body);
	send_all(fd, req, strlen(req));
	free(req);
	/* A trailer is not a header: it does not choose the models. */
	req = h_strdup_printf("%zx\r\n%s\r\n0\r\n"
	                      "x-llmgate-models: nosuchprovider/x\r\n\r\n",
	    strlen(body) - half, body + half);
	send_all(fd, req, strlen(req));
	free(req);
	expect_echo(fd, "in chunks");
	close(fd);

	/* HTTP/1.0: the answer, then the end of the connection. */
	fd = tcp_connect();
	req = h_strdup_printf("POST /v1/chat/completions HTTP/1.0\r\n"
	                      "Content-Length: %zu\r\n\r\n%s",
	    strlen(body), body);
	send_all(fd, req, strlen(req));
	free(req);
	ans = read_all(fd, 5000);
	ck_assert_msg(strstr(ans, "echo: in chunks") != NULL &&
	        strstr(ans, "Connection: close") != NULL,
	    "%s", ans);
	free(ans);
	/* read_all() ended at the close, not at its deadline. */
	ck_assert_int_eq(read(fd, &half, 1), 0);
	close(fd);
	free(body);

	/* Two Content-Lengths: 400, with an error object whose four
	 * members are all there (param and code null), as the SDKs read. */
	fd = tcp_connect();
	req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
	      "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}";
	send_all(fd, req, strlen(req));
	ans = read_all(fd, 5000);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 400", 12) == 0 &&
	        strstr(ans, "\"param\":null,\"code\":null") != NULL,
	    "%s", ans);
	free(ans);
	close(fd);
}
END_TEST

static int
http_unix_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_uint_lt(strlen(http_sock), sizeof sa.sun_path);
	memcpy(sa.sun_path, http_sock, strlen(http_sock) + 1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/*
 * An HTTP connection counts against max_conns_per_uid from its accept,
 * before any request (a native connection is refused meanwhile), and one
 * that closes without a request is let go at once.
 */
START_TEST(test_idle_conns_counted)
{
	struct llmgate *g;
	char *conf, *base, err[256];
	uint64_t t0;
	int fds[3], i, refused = 0;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	base = base_conf(NULL);
	conf = h_strdup_printf("max_conns_per_uid = 3;\n%s", base);
	free(base);
	h_daemon_start(&d, conf);
	free(conf);
	http_port = log_port(&d);
	snprintf(http_sock, sizeof http_sock, "%s/llmgate-http.sock", d.dir);
	for (i = 0; i < 3; i++)
		fds[i] = http_unix_connect();
	/* Once the daemon accepted the three, a native one is refused. */
	for (t0 = h_mono_ms(); !refused && h_mono_ms() - t0 < 5000;) {
		if ((g = llmgate_connect(d.sock, "n", err, sizeof err)) !=
		        NULL &&
		    llmgate_ping(g) == 0) {
			llmgate_close(g);
			h_sleep_ms(20);
			continue;
		}
		if (g != NULL)
			llmgate_close(g);
		refused = 1;
	}
	ck_assert_msg(refused, "idle HTTP connections were not counted");
	/* One closes before its first request: room again, well before
	 * frame_timeout_ms (10 s). */
	close(fds[0]);
	t0 = h_mono_ms();
	while ((g = llmgate_connect(d.sock, "n", err, sizeof err)) == NULL &&
	    h_mono_ms() - t0 < 10000)
		h_sleep_ms(20);
	ck_assert_msg(g != NULL, "no room after a close: %s", err);
	ck_assert_uint_lt(h_mono_ms() - t0, wrapped() ? 8000 : 3000);
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
	close(fds[1]);
	close(fds[2]);
}
END_TEST

/*
 * SIGTERM: an idle kept-alive connection is closed at once, while a call
 * in flight on another one finishes and is answered.
 */
START_TEST(test_drain_closes_idle)
{
	static const char part[] = "POST /v1/chat/completions HTTP/1.1\r\n"
	                           "Host: x\r\nContent-Length: 100\r\n\r\n"
	                           "{\"mo";
	struct hres r = { 0 };
	char *req, *body, *ans;
	uint64_t t0;
	pid_t pid;
	int fd, fd2, st;

	fd = tcp_connect();
	req = echo_req("before the drain", NULL);
	send_all(fd, req, strlen(req));
	free(req);
	expect_echo(fd, "before the drain");
	/* And one whose request is only begun: not waited for either. */
	fd2 = tcp_connect();
	send_all(fd2, part, sizeof part - 1);
	body = chat_body("oa/drain2+delay=2000", NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		h_req(&r, "/v1/chat/completions", body, NULL);
		_exit(r.status == 200 ? 0 : 1);
	}
	t0 = h_mono_ms();
	while (h_fakeprov_count(fp_port, "drain2+delay=2000", NULL) == 0 &&
	    h_mono_ms() - t0 < 5000)
		h_sleep_ms(10);
	t0 = h_mono_ms();
	kill(d.pid, SIGTERM);
	ans = read_all(fd, 5000);
	ck_assert_str_eq(ans, "");
	free(ans);
	ans = read_all(fd2, 5000);
	ck_assert_str_eq(ans, "");
	/* Closed by the drain, not by the exit after the call. */
	ck_assert_uint_lt(h_mono_ms() - t0, wrapped() ? 1800 : 1000);
	free(ans);
	close(fd);
	close(fd2);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "the call in flight did not finish");
	free(body);
}
END_TEST

/*
 * SIGTERM while a slow call is answered and a second request was already
 * read in full behind it on the same connection: the first gets its
 * answer, the second a 503 in the front's error format (no new calls
 * while draining) that closes the connection; then EOF.
 */
START_TEST(test_drain_answers_pipelined)
{
	struct buf req = { NULL, 0, 0 };
	char *one, *ans, *p1, *p2, c;
	uint64_t t0;
	int fd = tcp_connect();

	add_chat_req(&req, "oa/drain3+delay=800");
	one = echo_req("behind", NULL);
	buf_addstr(&req, one);
	free(one);
	send_all(fd, req.data, req.len);
	buf_free(&req);
	t0 = h_mono_ms();
	while (h_fakeprov_count(fp_port, "drain3+delay=800", NULL) == 0 &&
	    h_mono_ms() - t0 < 5000)
		h_sleep_ms(10);
	kill(d.pid, SIGTERM);
	ans = read_all(fd, wrapped() ? 20000 : 5000);
	/* read_all() stopped at the end, not at its deadline. */
	ck_assert_int_eq(read(fd, &c, 1), 0);
	close(fd);
	p1 = strstr(ans, "x-llmgate-target: oa/drain3+delay=800");
	ck_assert_msg(strncmp(ans, "HTTP/1.1 200", 12) == 0 && p1 != NULL, "%s",
	    ans);
	p2 = strstr(p1, "HTTP/1.1 503 ");
	ck_assert_msg(p2 != NULL, "no answer to the request behind: %s", ans);
	ck_assert_msg(strstr(p2, "x-should-retry: false\r\n") != NULL &&
	        strstr(p2, "Connection: close\r\n") != NULL &&
	        strstr(p2, "Retry-After: ") != NULL &&
	        strstr(p2, "\"code\":\"overloaded\"") != NULL &&
	        strstr(p2, "shutting down") != NULL,
	    "%s", p2);
	ck_assert_ptr_null(strstr(ans, "echo: behind"));
	ck_assert_ptr_null(strstr(p2 + 1, "HTTP/1.1 "));
	free(ans);
}
END_TEST

/* status --json of the running daemon (json_decref). */
static json_t *
status_json(void)
{
	struct run r;
	json_t *st;

	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	st = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(st);
	h_run_free(&r);
	return st;
}

/* A status number: a top-level key, or one of "counters" (counter 1). */
static long long
status_num(const char *key, int counter)
{
	json_t *st = status_json(),
	       *o = counter ? json_object_get(st, "counters") : st;
	long long v;

	ck_assert_msg(json_is_integer(json_object_get(o, key)),
	    "status has no %s", key);
	v = json_integer_value(json_object_get(o, key));
	json_decref(st);
	return v;
}

/* Restart the daemon on the suite's config plus top-level extra lines. */
static void
restart_with(const char *extra)
{
	char *base = base_conf(NULL), *conf;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	conf = h_strdup_printf("%s%s", base, extra);
	h_daemon_start(&d, conf);
	free(conf);
	free(base);
	http_port = log_port(&d);
	snprintf(http_sock, sizeof http_sock, "%s/llmgate-http.sock", d.dir);
}

/*
 * HTTP answers nobody reads count in max_memory, as native replies do:
 * clients that send a large request and never read its answer hold the
 * answer in the daemon (status memory_held says how much), until the
 * next request would pass max_memory and is refused with 503 overloaded;
 * once they read, the memory is free again and calls are served.
 */
START_TEST(test_unread_answers_count_in_max_memory)
{
	const long long max = 2 * 1024 * 1024;
	char *words, *req, *extra, *ans;
	int fds[16], nfds = 0, refused = -1, i;
	long long held = 0, now;
	size_t n = 600 * 1000;
	uint64_t t0;
	struct pollfd pfd;
	char head[16];

	/* Clients that read nothing for a while are not closed for it. */
	extra =
	    h_strdup_printf("max_memory = %lld;\nframe_timeout_ms = 60000;\n",
	        max);
	restart_with(extra);
	free(extra);
	words = malloc(n + 1);
	memset(words, 'a', n);
	words[n] = '\0';
	req = echo_req(words, "Connection: close\r\n");
	free(words);
	ck_assert_int_eq(status_num("memory_held", 0), 0);
	for (i = 0; i < 16 && refused < 0; i++) {
		/* On the Unix socket what the daemon cannot send waits in
		 * its memory past the socket's send buffer. */
		fds[nfds++] = http_unix_connect();
		send_all(fds[i], req, strlen(req));
		/* Its answer's first bytes come at once; the rest waits. */
		pfd.fd = fds[i];
		pfd.events = POLLIN;
		ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
		ck_assert_int_eq(recv(fds[i], head, 12, MSG_PEEK | MSG_WAITALL),
		    12);
		if (memcmp(head, "HTTP/1.1 503", 12) == 0) {
			refused = i;
			break;
		}
		ck_assert_msg(memcmp(head, "HTTP/1.1 200", 12) == 0, "%.12s",
		    head);
		/* The answer the client does not read is held, counted. */
		t0 = h_mono_ms();
		while ((now = status_num("memory_held", 0)) < held + 200000 &&
		    h_mono_ms() - t0 < 10000)
			h_sleep_ms(20);
		ck_assert_msg(now >= held + 200000,
		    "memory_held %lld after %d unread answers", now, i + 1);
		held = now;
		ck_assert_msg(held <= max + 700000, "memory_held %lld", held);
	}
	ck_assert_msg(refused >= 2, "refused at %d", refused);
	/* The metrics say the same. */
	{
		struct run r;
		const char *p;

		h_cli(&r, &d, NULL, "metrics", NULL);
		ck_assert_int_eq(r.status, 0);
		p = strstr(r.out, "\nllmgate_memory_held_bytes ");
		ck_assert_msg(p != NULL, "%s", r.out);
		ck_assert_msg(strtod(p + 27, NULL) >= (double)held / 2,
		    "%.60s, status %lld", p + 1, held);
		h_run_free(&r);
	}
	ans = read_all(fds[refused], 5000);
	ck_assert_msg(strstr(ans, "\"code\":\"overloaded\"") != NULL &&
	        strstr(ans, "max_memory") != NULL &&
	        strstr(ans, "Retry-After: ") != NULL,
	    "%s", ans);
	free(ans);
	/* The readers read: all of each answer, and the memory is free. */
	for (i = 0; i < refused; i++) {
		ans = read_all(fds[i], 10000);
		ck_assert_msg(strstr(ans, "\"finish_reason\"") != NULL,
		    "answer %d cut: %zu bytes", i, strlen(ans));
		free(ans);
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	t0 = h_mono_ms();
	while ((now = status_num("memory_held", 0)) != 0 &&
	    h_mono_ms() - t0 < 10000)
		h_sleep_ms(20);
	ck_assert_int_eq(now, 0);
	i = http_unix_connect();
	send_all(i, req, strlen(req));
	ans = read_all(i, 10000);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 200", 12) == 0, "%.80s", ans);
	free(ans);
	close(i);
	free(req);
}
END_TEST

/* A POST of prompt to model (a stream if stream), closing after it. */
static char *
post_req(const char *model, const char *prompt, int stream)
{
	char *body, *req;

	body = h_strdup_printf("{\"model\":\"%s\",%s\"messages\":[{\"role\":"
	                       "\"user\",\"content\":\"%s\"}]}",
	    model, stream ? "\"stream\":true," : "", prompt);
	req = h_strdup_printf("POST /v1/chat/completions HTTP/1.1\r\n"
	                      "Host: x\r\nContent-Type: application/json\r\n"
	                      "Connection: close\r\n"
	                      "Content-Length: %zu\r\n\r\n%s",
	    strlen(body), body);
	free(body);
	return req;
}

/* A POST for model whose prompt is n letters c, closing after it. */
static char *
long_req(const char *model, size_t n, char c)
{
	char *words = malloc(n + 1), *req;

	memset(words, c, n);
	words[n] = '\0';
	req = post_req(model, words, 0);
	free(words);
	return req;
}

/*
 * A client past max_output while the daemon holds more than max_memory is
 * dropped at once, as on the native socket: two clients that do not read
 * long answers (2 MB each, max_output 1 MiB) pass max_memory (2.5 MiB); the
 * second is closed with its answer cut, the first, queued while the
 * daemon was under, gets all of its answer once it reads.
 */
START_TEST(test_unread_answer_dropped_over_max_memory)
{
	char *req, *ans, *log;
	int fd1, fd2;
	uint64_t t0;

	restart_with("max_memory = 2621440;\nframe_timeout_ms = 60000;\n");
	fd1 = http_unix_connect();
	req = long_req("oa/big1+repeat=20", 100000, 'b');
	send_all(fd1, req, strlen(req));
	free(req);
	t0 = h_mono_ms();
	while (
	    status_num("memory_held", 0) < 1500000 && h_mono_ms() - t0 < 10000)
		h_sleep_ms(20);
	ck_assert_int_ge(status_num("memory_held", 0), 1500000);
	fd2 = http_unix_connect();
	req = long_req("oa/big2+repeat=20", 100000, 'c');
	send_all(fd2, req, strlen(req));
	free(req);
	/* Not reading until the daemon says it dropped the client. */
	t0 = h_mono_ms();
	for (;;) {
		log = h_daemon_log(&d);
		if (strstr(log,
		        "dropped: not reading its answer, and llmgated "
		        "holds more than max_memory") != NULL ||
		    h_mono_ms() - t0 > 10000)
			break;
		free(log);
		h_sleep_ms(20);
	}
	ck_assert_msg(strstr(log, "holds more than max_memory") != NULL, "%s",
	    log);
	free(log);
	ans = read_all(fd2, 10000);
	ck_assert_msg(strncmp(ans, "HTTP/1.1 200", 12) == 0 &&
	        strstr(ans, "\"finish_reason\"") == NULL &&
	        strlen(ans) < 1000000,
	    "%zu bytes", strlen(ans));
	free(ans);
	close(fd2);
	ans = read_all(fd1, 10000);
	ck_assert_msg(strstr(ans, "\"finish_reason\"") != NULL &&
	        strlen(ans) > 2000000,
	    "%zu bytes", strlen(ans));
	free(ans);
	close(fd1);
}
END_TEST

/*
 * A stream whose client stops reading: once its unread events pass the
 * front's bound the upstream transfer is held (status counts the hold);
 * when the client reads again, the transfer resumes and the client gets
 * the whole stream with its clean end.
 */
START_TEST(test_held_stream_resumes)
{
	char *words, *got, *p;
	size_t i, n = wrapped() ? 5000 : 20000, count = 0;
	long long holds = status_num("http_stream_holds", 1);
	uint64_t t0;
	int fd = tcp_connect_rcvbuf(4096);

	words = malloc(n * 2 + 1);
	for (i = 0; i < n; i++)
		memcpy(words + 2 * i, "w ", 2);
	words[n * 2 - 1] = '\0';
	got = post_req("oa/held1", words, 1);
	free(words);
	send_all(fd, got, strlen(got));
	free(got);
	/* Reading nothing until the daemon says it held the upstream. */
	t0 = h_mono_ms();
	while (status_num("http_stream_holds", 1) == holds &&
	    h_mono_ms() - t0 < 20000)
		h_sleep_ms(20);
	ck_assert_int_gt(status_num("http_stream_holds", 1), holds);
	got = read_all(fd, wrapped() ? 60000 : 20000);
	close(fd);
	p = strstr(got, "\r\n\r\n");
	ck_assert_msg(p != NULL && strncmp(got, "HTTP/1.1 200", 12) == 0,
	    "%.200s", got);
	/* Every word's event came, then the finish, [DONE] and the
	 * chunked body's end. */
	for (p = got; (p = strstr(p, "\"content\":\"w")) != NULL; p++)
		count++;
	ck_assert_msg(count == n, "%zu of %zu words", count, n);
	ck_assert_ptr_nonnull(strstr(got, "\"finish_reason\":\"stop\""));
	ck_assert_msg(strlen(got) > 16 &&
	        strstr(got, "data: [DONE]\n\n\r\n0\r\n\r\n") != NULL,
	    "no clean end: ...%s", got + strlen(got) - 40);
	free(got);
}
END_TEST

/*
 * A client class's spent token budget over the HTTP front: 429 with
 * Retry-After until the UTC day's reset (not the target's one second),
 * code client_budget_exhausted, x-should-retry false; a caller of
 * another class is still served.
 */
START_TEST(test_client_budget)
{
	struct hres r = { 0 };
	char *base, *conf, *body;
	const char *ra;
	int i;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	base = base_conf(NULL);
	conf = h_strdup_printf(
	    "%sclients = ( { name = \"meter\";\n"
	    "  match = [ \"uid:*\", \"name:meter\" ]; tokens_per_day = 40; }"
	    " );\n",
	    base);
	h_daemon_start(&d, conf);
	free(conf);
	free(base);
	http_port = log_port(&d);
	snprintf(http_sock, sizeof http_sock, "%s/llmgate-http.sock", d.dir);
	body = chat_body("oa/gpt-x", "\"max_tokens\": 10");
	for (i = 0; i < 20; i++) {
		h_req(&r, "unix:/v1/chat/completions", body,
		    "x-llmgate-client: meter", NULL);
		if (r.status != 200)
			break;
		h_free(&r);
	}
	ck_assert_msg(i >= 1, "the first call: %ld %s", r.status, r.body);
	ck_assert_int_eq(r.status, 429);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(r.json, "error"),
	                         "code")),
	    "client_budget_exhausted");
	ck_assert_ptr_nonnull(ra = h_hdr(&r, "retry-after"));
	ck_assert_msg(atol(ra) > 1 && atol(ra) <= 86400, "Retry-After %s", ra);
	ck_assert_str_eq(h_hdr(&r, "x-should-retry"), "false");
	h_free(&r);
	h_req(&r, "unix:/v1/chat/completions", body, "x-llmgate-client: other",
	    NULL);
	ck_assert_int_eq(r.status, 200);
	h_free(&r);
	free(body);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("openai");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_plain_tcp_and_unix);
	tcase_add_test(tc, test_client_budget);
	tcase_add_test(tc, test_other_providers_and_tools);
	tcase_add_test(tc, test_schema_repair);
	tcase_add_test(tc, test_error_table);
	tcase_add_test(tc, test_upstream_429_retried_inside);
	tcase_add_test(tc, test_targets);
	tcase_add_test(tc, test_bad_option_headers);
	tcase_add_test(tc, test_fallback_headers);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_body_reading);
	tcase_add_test(tc, test_stream);
	tcase_add_test(tc, test_not_utf8);
	tcase_add_test(tc, test_disconnect_cancels);
	tcase_add_test(tc, test_models);
	tcase_add_test(tc, test_model_retrieve);
	tcase_add_test(tc, test_models_anthropic);
	tcase_add_test(tc, test_absolute_form);
	tcase_add_test(tc, test_wire_errors_in_dialect);
	tcase_add_test(tc, test_anthropic);
	tcase_add_test(tc, test_stop_sequence);
	tcase_add_test(tc, test_anthropic_stream_input_tokens);
	tcase_add_test(tc, test_slow_reader);
	tcase_add_test(tc, test_floods_and_slowloris);
	tcase_add_test(tc, test_other_uid_refused);
	tcase_add_test(tc, test_tokens);
	tcase_add_test(tc, test_tool_choice);
	tcase_add_test(tc, test_group_member_allowed);
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_pipelined_unread);
	tcase_add_test(tc, test_expect_continue);
	tcase_add_test(tc, test_chunked_and_http10);
	tcase_add_test(tc, test_idle_conns_counted);
	tcase_add_test(tc, test_drain_closes_idle);
	tcase_add_test(tc, test_drain_and_reload);
	tcase_add_test(tc, test_drain_answers_pipelined);
	tcase_add_test(tc, test_unread_answers_count_in_max_memory);
	tcase_add_test(tc, test_unread_answer_dropped_over_max_memory);
	tcase_add_test(tc, test_held_stream_resumes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? 0 : 1;
}
