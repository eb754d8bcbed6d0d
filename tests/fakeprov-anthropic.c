/*
 * fakeprov-anthropic.c: the fake provider's Anthropic Messages
 * dialect. tests/fakeprov.md is the manual.
 */

#include "fakeprov.h"

/* Anthropic Messages. */
static const struct err_entry an_errors[] = {
	{ 400, "invalid_request_error", NULL, "Invalid request." },
	{ 401, "authentication_error", NULL, "invalid x-api-key" },
	{ 402, "billing_error", NULL,
	    "Your credit balance is too low to "
	    "access the Anthropic API. Please go to Plans & Billing to upgrade "
	    "or purchase credits." },
	{ 403, "permission_error", NULL,
	    "Your API key does not have "
	    "permission to use the specified resource." },
	{ 404, "not_found_error", NULL, NULL },
	{ 408, "timeout_error", NULL, "Request timed out." },
	{ 409, "conflict_error", NULL, "Conflict." },
	{ 413, "request_too_large", NULL,
	    "Request exceeds the maximum allowed number of bytes." },
	{ 422, "invalid_request_error", NULL, "Unprocessable request." },
	{ 429, "rate_limit_error", NULL,
	    "This request would exceed the rate "
	    "limit for your organization (fakeprov) of 50 requests per "
	    "minute. For details, refer to: https://docs.claude.com/en/api/"
	    "rate-limits. You can see the response headers for current usage. "
	    "Please reduce the prompt length or the maximum tokens requested, "
	    "or try again later." },
	{ 500, "api_error", NULL, "Internal server error" },
	{ 502, "api_error", NULL, "Bad gateway" },
	{ 503, "overloaded_error", NULL, "Overloaded" },
	{ 504, "timeout_error", NULL, "Request timed out" },
	{ 529, "overloaded_error", NULL, "Overloaded" },
	{ 0, "invalid_request_error", NULL, "Invalid request." },
	{ 0, "api_error", NULL, "Internal server error" },
};

static const struct code_entry an_codes[] = {
	{ "invalid_request_error", 400, "invalid_request_error", NULL, NULL },
	{ "authentication_error", 401, "authentication_error", NULL, NULL },
	{ "billing_error", 402, "billing_error", NULL, NULL },
	{ "permission_error", 403, "permission_error", NULL, NULL },
	{ "not_found_error", 404, "not_found_error", NULL, NULL },
	{ "request_too_large", 413, "request_too_large", NULL, NULL },
	{ "rate_limit_error", 429, "rate_limit_error", NULL, NULL },
	{ "api_error", 500, "api_error", NULL, "Internal server error" },
	{ "timeout_error", 504, "timeout_error", NULL, "Request timed out" },
	{ "overloaded_error", 529, "overloaded_error", NULL, "Overloaded" },
	{ NULL, 0, NULL, NULL, NULL },
};

static enum auth_result
an_auth(struct call *c)
{
	const char *key = req_header(c, "x-api-key");

	if (key == NULL)
		key = bearer(req_header(c, "Authorization"));
	if (key == NULL)
		return AUTH_MISSING;
	return strcmp(key, fp_key) == 0 ? AUTH_OK : AUTH_WRONG;
}

static void
an_error_body(struct call *c, const char *type, const char *msg)
{
	json_t *o;

	o = jpack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type",
	    type, "message", msg, "request_id", c->reqid);
	answer_body(c->ans, jdump(o));
	json_decref(o);
}

static void
an_auth_error(struct call *c, enum auth_result r)
{
	c->ans->status = 401;
	req_set_header(c, "Content-Type", c->prov->json_type);
	an_error_body(c, "authentication_error",
	    r == AUTH_MISSING ? "x-api-key header is required" :
	                        "invalid x-api-key");
}

static int
an_check(struct call *c)
{
	const char *missing = NULL;

	if (req_header(c, "anthropic-version") == NULL) {
		call_error(c, 400, NULL,
		    "anthropic-version: header is required");
		return -1;
	}
	if (c->body == NULL) {
		call_error(c, 400, NULL,
		    "There was an issue with the formatting "
		    "or parameters of your request: the body is not valid JSON.");
		return -1;
	}
	if (c->model == NULL)
		missing = "model: Field required";
	else if (!json_is_array(json_object_get(c->body, "messages")))
		missing = "messages: Field required";
	else if (!json_is_integer(json_object_get(c->body, "max_tokens")))
		missing = "max_tokens: Field required";
	if (missing != NULL) {
		call_error(c, 400, NULL, missing);
		return -1;
	}
	return 0;
}

static void
an_read(struct call *c)
{
	json_t *msgs, *m, *content, *e, *last = NULL;
	const char *role, *type;
	struct sbuf sb = { NULL, 0, 0 };
	long dummy = 0;
	size_t i, n;

	c->stream = json_is_true(json_object_get(c->body, "stream"));
	text_of(json_object_get(c->body, "system"), NULL, &c->in_words);
	msgs = json_object_get(c->body, "messages");
	n = resume_turns(c, msgs, "content", "assistant");
	json_array_foreach(msgs, i, m) {
		text_of(json_object_get(m, "content"), NULL, &c->in_words);
		if (i >= n)
			continue;
		role = json_string_value(json_object_get(m, "role"));
		if (role != NULL && strcmp(role, "user") == 0)
			last = m;
	}
	if (last != NULL) {
		content = json_object_get(last, "content");
		text_of(content, &sb, &dummy);
		/* A tool result turn only when it ends the conversation. */
		m = json_array_get(msgs, n - 1);
		if (m == last && json_is_array(content)) {
			json_array_foreach(content, i, e) {
				type = json_string_value(
				    json_object_get(e, "type"));
				if (type != NULL &&
				    strcmp(type, "tool_result") == 0)
					c->tool_result = 1;
			}
		}
	}
	c->prompt = sbuf_take(&sb);
}

static void
an_error(struct call *c, struct err_info *ei)
{
	char *msg;

	if (ei->msg_default && ei->status == 404)
		msg = xasprintf("model: %s", c->model != NULL ? c->model : "");
	else
		msg = xstrdup(ei->msg != NULL ? ei->msg : "Error");
	an_error_body(c, ei->type, msg);
	free(msg);
}

static const char *
an_stop(struct call *c)
{
	if (c->text != NULL && c->d.stop_seq != NULL && !c->d.filter &&
	    !c->d.length)
		return "stop_sequence";
	return finish_reason(c, "end_turn", "tool_use", "max_tokens",
	    "refusal");
}

/* The stop_sequence member: the sequence that ended the reply, or null. */
static json_t *
an_stop_seq(struct call *c)
{
	if (strcmp(an_stop(c), "stop_sequence") == 0)
		return json_string(c->d.stop_seq);
	return json_null();
}

static json_t *
an_usage(struct call *c, long out)
{
	return jpack("{s:I, s:i, s:i, s:I, s:s}", "input_tokens",
	    (json_int_t)c->in_words, "cache_creation_input_tokens", 0,
	    "cache_read_input_tokens", 0, "output_tokens", (json_int_t)out,
	    "service_tier", "standard");
}

static json_t *
an_reply(struct call *c)
{
	json_t *block;

	if (c->text != NULL)
		block = jpack("{s:s, s:s}", "type", "text", "text", c->text);
	else
		block = jpack("{s:s, s:s, s:s, s:O}", "type", "tool_use", "id",
		    c->toolid, "name", c->d.tool, "input", c->args_json);
	return jpack("{s:s, s:s, s:s, s:s, s:[o], s:s, s:o, s:o}", "id", c->id,
	    "type", "message", "role", "assistant", "model", c->model,
	    "content", block, "stop_reason", an_stop(c), "stop_sequence",
	    an_stop_seq(c), "usage", an_usage(c, c->out_words));
}

static void
an_stream(struct call *c)
{
	struct answer *a = c->ans;
	json_t *block, *msg;
	const char *p;
	char *piece;
	size_t n;

	msg = jpack("{s:s, s:s, s:s, s:[], s:s, s:n, s:n, s:o}", "id", c->id,
	    "type", "message", "role", "assistant", "content", "model",
	    c->model, "stop_reason", "stop_sequence", "usage", an_usage(c, 1));
	answer_event(a, EV_PRE, "message_start",
	    jpack("{s:s, s:o}", "type", "message_start", "message", msg));
	if (c->text != NULL)
		block = jpack("{s:s, s:s}", "type", "text", "text", "");
	else
		block = jpack("{s:s, s:s, s:s, s:{}}", "type", "tool_use", "id",
		    c->toolid, "name", c->d.tool, "input");
	answer_event(a, EV_PRE, "content_block_start",
	    jpack("{s:s, s:i, s:o}", "type", "content_block_start", "index", 0,
	        "content_block", block));
	answer_event_raw(a, EV_PRE, "ping", "{\"type\": \"ping\"}");
	if (c->text != NULL) {
		for (p = c->text; *p != '\0'; p += n) {
			n = piece_len(p);
			piece = xstrndup(p, n);
			answer_event(a, EV_CONTENT, "content_block_delta",
			    jpack("{s:s, s:i, s:{s:s, s:s}}", "type",
			        "content_block_delta", "index", 0, "delta",
			        "type", "text_delta", "text", piece));
			free(piece);
		}
	} else {
		answer_event(a, EV_PRE, "content_block_delta",
		    jpack("{s:s, s:i, s:{s:s, s:s}}", "type",
		        "content_block_delta", "index", 0, "delta", "type",
		        "input_json_delta", "partial_json", ""));
		for (p = c->args; *p != '\0'; p += n) {
			n = frag_len(p);
			piece = xstrndup(p, n);
			answer_event(a, EV_CONTENT, "content_block_delta",
			    jpack("{s:s, s:i, s:{s:s, s:s}}", "type",
			        "content_block_delta", "index", 0, "delta",
			        "type", "input_json_delta", "partial_json",
			        piece));
			free(piece);
		}
	}
	answer_event(a, EV_POST, "content_block_stop",
	    jpack("{s:s, s:i}", "type", "content_block_stop", "index", 0));
	answer_event(a, EV_POST, "message_delta",
	    jpack("{s:s, s:{s:s, s:o}, "
	          "s:{s:I}}",
	        "type", "message_delta", "delta", "stop_reason", an_stop(c),
	        "stop_sequence", an_stop_seq(c), "usage", "output_tokens",
	        (json_int_t)c->out_words));
	answer_event(a, EV_TERM, "message_stop",
	    jpack("{s:s}", "type", "message_stop"));
}

static void
an_stream_error(struct call *c)
{
	answer_event(c->ans, EV_POST, "error",
	    jpack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
	        c->d.code != NULL ? c->d.code : "overloaded_error", "message",
	        c->d.msg != NULL ? c->d.msg : "Overloaded"));
}

static void
an_ratelimit(struct call *c)
{
	struct bucket *b = &c->m->bucket;
	static const struct {
		const char *name;
		long limit;
	} kinds[] = {
		{ "tokens", 100000 },
		{ "input-tokens", 40000 },
		{ "output-tokens", 8000 },
	};
	char name[64], v[40];
	long limit, remaining, reset, used;
	size_t i;

	limit = c->d.rpm > 0 ? c->d.rpm : 50;
	remaining = limit - 1;
	reset = 1;
	if (c->d.rpm > 0) {
		remaining = (long)b->tokens;
		reset = (long)((bucket_refill_ms(b, rpm_rate(c->d.rpm),
		                    rpm_burst(c->d.rpm)) +
		                   999) /
		    1000);
	}
	if (c->limited) {
		remaining = 0;
		reset = (long)((c->limit_wait_ms + 999) / 1000);
	}
	snprintf(v, sizeof v, "%ld", limit);
	req_set_header(c, "anthropic-ratelimit-requests-limit", v);
	snprintf(v, sizeof v, "%ld", remaining);
	req_set_header(c, "anthropic-ratelimit-requests-remaining", v);
	rfc3339(v, sizeof v, reset);
	req_set_header(c, "anthropic-ratelimit-requests-reset", v);

	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		used = i == 2 ? c->out_words :
		                c->in_words + (i == 0 ? c->out_words : 0);
		snprintf(name, sizeof name, "anthropic-ratelimit-%s-limit",
		    kinds[i].name);
		snprintf(v, sizeof v, "%ld", kinds[i].limit);
		req_set_header(c, name, v);
		snprintf(name, sizeof name, "anthropic-ratelimit-%s-remaining",
		    kinds[i].name);
		snprintf(v, sizeof v, "%ld", kinds[i].limit - used);
		req_set_header(c, name, v);
		snprintf(name, sizeof name, "anthropic-ratelimit-%s-reset",
		    kinds[i].name);
		rfc3339(v, sizeof v, 1);
		req_set_header(c, name, v);
	}
}

const struct provider prov_anthropic = {
	.name = "anthropic",
	.errors = an_errors,
	.codes = an_codes,
	.code_is_type = 1,
	.retry_header = 1,
	.reqid_header = "request-id",
	.json_type = "application/json",
	.sse_type = "text/event-stream; charset=utf-8",
	.garbage_event = "message_start",
	.trims_prefill = 1,
	.auth = an_auth,
	.auth_error = an_auth_error,
	.check = an_check,
	.read = an_read,
	.error = an_error,
	.reply = an_reply,
	.stream = an_stream,
	.stream_error = an_stream_error,
	.ratelimit = an_ratelimit,
};
