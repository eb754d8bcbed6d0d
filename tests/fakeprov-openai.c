/*
 * fakeprov-openai.c: the fake provider's OpenAI Chat Completions
 * and Azure OpenAI dialect. tests/fakeprov.md is the manual.
 */

#include "fakeprov.h"

/*
 * OpenAI Chat Completions and Azure OpenAI (same bodies, Azure's own
 * errors, URL and content-filter annotations).
 */
static const struct err_entry oa_errors[] = {
	{ 400, "invalid_request_error", NULL, "Invalid request." },
	{ 401, "invalid_request_error", "invalid_api_key",
	    "Incorrect API key provided." },
	{ 402, "invalid_request_error", "payment_required",
	    "Payment required." },
	{ 403, "request_forbidden", "unsupported_country_region_territory",
	    "Country, region, or territory not supported" },
	{ 404, "invalid_request_error", "model_not_found",
	    "The model does not exist or you do not have access to it." },
	{ 408, "server_error", "timeout", "Request timed out." },
	{ 409, "invalid_request_error", "conflict", "Conflict." },
	{ 413, "invalid_request_error", "request_too_large",
	    "Request too large." },
	{ 422, "invalid_request_error", "unprocessable_entity",
	    "Unprocessable entity." },
	{ 429, "requests", "rate_limit_exceeded", NULL },
	{ 500, "server_error", NULL,
	    "The server had an error while "
	    "processing your request. Sorry about that!" },
	{ 502, "server_error", NULL, "Bad gateway." },
	{ 503, "server_error", NULL,
	    "The engine is currently overloaded, please try again later" },
	{ 504, "server_error", NULL, "Gateway timeout." },
	{ 529, "server_error", NULL,
	    "The engine is currently overloaded, please try again later" },
	{ 0, "invalid_request_error", NULL, "The request failed." },
	{ 0, "server_error", NULL, "The server had an error." },
};

static const struct code_entry oa_codes[] = {
	{ "context_length_exceeded", 400, "invalid_request_error", "messages",
	    "This model's maximum context length is 128000 tokens. However, "
	    "your messages resulted in 200000 tokens. Please reduce the length "
	    "of the messages." },
	{ "insufficient_quota", 429, "insufficient_quota", NULL,
	    "You exceeded your current quota, please check your plan and "
	    "billing details. For more information on this error, read the "
	    "docs: https://platform.openai.com/docs/guides/error-codes/"
	    "api-errors." },
	{ "credit_balance_exhausted", 429, "insufficient_quota", NULL,
	    "Your credit balance is exhausted." },
	{ "rate_limit_exceeded", 429, "requests", NULL, NULL },
	{ "content_filter", 400, NULL, "prompt",
	    "The response was filtered due to the prompt triggering Azure "
	    "OpenAI's content management policy. Please modify your prompt "
	    "and retry." },
	{ "invalid_prompt", 400, "invalid_request_error", NULL,
	    "Invalid prompt: your prompt was flagged as potentially violating "
	    "our usage policy. Please try again with a different prompt." },
	{ "unsupported_parameter", 400, "invalid_request_error", "max_tokens",
	    "Unsupported parameter: 'max_tokens' is not supported with this "
	    "model. Use 'max_completion_tokens' instead." },
	{ "invalid_api_key", 401, "invalid_request_error", NULL, NULL },
	{ "model_not_found", 404, "invalid_request_error", "model", NULL },
	{ "server_error", 500, "server_error", NULL, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};

static int
oa_is_azure(struct call *c)
{
	return c->prov == &prov_azure;
}

static enum auth_result
oa_auth(struct call *c)
{
	const char *key = bearer(req_header(c, "Authorization"));
	const char *azkey = req_header(c, "api-key");

	if (oa_is_azure(c) && azkey != NULL)
		return strcmp(azkey, fp_key) == 0 ? AUTH_OK : AUTH_WRONG;
	if (req_header(c, "Authorization") == NULL)
		return AUTH_MISSING;
	return key != NULL && strcmp(key, fp_key) == 0 ? AUTH_OK : AUTH_WRONG;
}

static void
oa_auth_error(struct call *c, enum auth_result r)
{
	const char *key = bearer(req_header(c, "Authorization"));
	char *msg;
	size_t n;

	c->ans->status = 401;
	req_set_header(c, "Content-Type", c->prov->json_type);
	if (oa_is_azure(c)) {
		call_json(c,
		    jpack("{s:{s:s, s:s}}", "error", "code", "401", "message",
		        "Access denied due to invalid subscription key "
		        "or wrong API endpoint. Make sure to provide a valid key for "
		        "an active subscription and use a correct regional API "
		        "endpoint for your resource."));
		return;
	}
	if (r == AUTH_MISSING) {
		call_json(c,
		    jpack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
		        "You didn't provide an API key. You need to "
		        "provide your API key in an Authorization header using "
		        "Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can "
		        "obtain an API key from https://platform.openai.com/account/"
		        "api-keys.",
		        "type", "invalid_request_error", "param", "code"));
		return;
	}
	/* Like OpenAI, show only the ends of the key. */
	if (key == NULL)
		key = "";
	n = strlen(key);
	if (n > 8)
		msg = xasprintf(
		    "Incorrect API key provided: %.3s****%s. You "
		    "can find your API key at https://platform.openai.com/"
		    "account/api-keys.",
		    key, key + n - 4);
	else
		msg = xstrdup(
		    "Incorrect API key provided. You can find your "
		    "API key at https://platform.openai.com/account/api-keys.");
	utf8_sanitize(msg);
	call_json(c,
	    jpack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type",
	        "invalid_request_error", "param", "code", "invalid_api_key"));
	free(msg);
}

static int
oa_check(struct call *c)
{
	char *v;
	json_t *msgs;

	if (oa_is_azure(c) &&
	    strncmp(c->path, "/openai/deployments/", 20) == 0) {
		v = query_get(c->req, "api-version");
		if (v == NULL || *v == '\0') {
			free(v);
			c->ans->status = 404;
			call_json(c,
			    jpack("{s:{s:s, s:s}}", "error", "code", "404",
			        "message", "Resource not found"));
			return -1;
		}
		free(v);
	}
	if (c->body == NULL) {
		call_error(c, 400, NULL,
		    "We could not parse the JSON body of "
		    "your request. (HINT: This likely means you aren't using "
		    "your HTTP library correctly. The OpenAI API expects a JSON "
		    "payload, but what was sent was not valid JSON.)");
		return -1;
	}
	if (c->model == NULL) {
		call_error(c, 400, NULL, "you must provide a model parameter");
		return -1;
	}
	msgs = json_object_get(c->body, "messages");
	if (!json_is_array(msgs)) {
		call_error(c, 400, "missing_required_parameter",
		    "Missing required parameter: 'messages'.");
		return -1;
	}
	if (json_array_size(msgs) == 0) {
		call_error(c, 400, "empty_array",
		    "Invalid 'messages': empty array. Expected an array with "
		    "minimum length 1, but got an empty array instead.");
		return -1;
	}
	return 0;
}

static void
oa_read(struct call *c)
{
	json_t *msgs, *m, *so, *last = NULL, *lastuser = NULL;
	const char *role;
	struct sbuf sb = { NULL, 0, 0 };
	long dummy = 0;
	size_t i, n;

	c->stream = json_is_true(json_object_get(c->body, "stream"));
	so = json_object_get(c->body, "stream_options");
	c->include_usage =
	    c->stream && json_is_true(json_object_get(so, "include_usage"));

	msgs = json_object_get(c->body, "messages");
	n = resume_turns(c, msgs, "content", "assistant");
	json_array_foreach(msgs, i, m) {
		text_of(json_object_get(m, "content"), NULL, &c->in_words);
		if (i >= n)
			continue;
		role = json_string_value(json_object_get(m, "role"));
		if (role != NULL && strcmp(role, "user") == 0)
			lastuser = m;
		last = m;
	}
	role = json_string_value(json_object_get(last, "role"));
	if (role != NULL && strcmp(role, "tool") == 0) {
		c->tool_result = 1;
		lastuser = last;
	}
	if (lastuser != NULL)
		text_of(json_object_get(lastuser, "content"), &sb, &dummy);
	c->prompt = sbuf_take(&sb);
}

static void
oa_error(struct call *c, struct err_info *ei)
{
	json_t *err;
	char *msg, *hint, *v;

	hint = retry_hint(c);
	if (!ei->msg_default)
		msg = xstrdup(ei->msg);
	else if (ei->status == 404)
		msg = xasprintf("The model `%s` does not exist or you do not "
		                "have access to it.",
		    c->model != NULL ? c->model : "");
	else if (ei->status == 429 && ei->msg == NULL)
		msg = xasprintf(
		    "Rate limit reached for %s in organization "
		    "org-fakeprov on requests per min (RPM): Limit 3, Used 3, "
		    "Requested 1.%s",
		    c->model != NULL ? c->model : "", hint);
	else
		msg = xstrdup(ei->msg);

	if (oa_is_azure(c) && ei->code != NULL &&
	    strcmp(ei->code, "content_filter") == 0) {
		err = jpack("{s:{s:s, s:n, s:s, s:s, s:i, s:{s:s, s:{s:{s:b, "
		            "s:s}, s:{s:b, s:b}, s:{s:b, s:s}, s:{s:b, s:s}, "
		            "s:{s:b, s:s}}}}}",
		    "error", "message", msg, "type", "param", "prompt", "code",
		    "content_filter", "status", 400, "innererror", "code",
		    "ResponsibleAIPolicyViolation", "content_filter_result",
		    "hate", "filtered", 1, "severity", "high", "jailbreak",
		    "filtered", 0, "detected", 0, "self_harm", "filtered", 0,
		    "severity", "safe", "sexual", "filtered", 0, "severity",
		    "safe", "violence", "filtered", 0, "severity", "safe");
	} else if (oa_is_azure(c) &&
	    (ei->status == 403 || ei->status == 404 || ei->status == 408 ||
	        ei->status == 429 || ei->status >= 500)) {
		/* Azure's own errors: a string code and no type. */
		if (ei->status == 404 && ei->msg_default) {
			free(msg);
			msg = xstrdup(
			    "The API deployment for this resource does "
			    "not exist. If you created the deployment within the "
			    "last 5 minutes, please wait a moment and try again.");
		} else if (ei->status == 429 && ei->msg_default &&
		    (ei->code == NULL ||
		        strcmp(ei->code, "rate_limit_exceeded") == 0)) {
			free(msg);
			v = query_get(c->req, "api-version");
			msg = xasprintf(
			    "Requests to the ChatCompletions_Create "
			    "Operation under Azure OpenAI API version %s have "
			    "exceeded token rate limit of your current OpenAI S0 "
			    "pricing tier. Please retry after %llu seconds. Please "
			    "go here: https://aka.ms/oai/quotaincrease if you "
			    "would like to further increase the default rate "
			    "limit.",
			    v != NULL ? v : "v1",
			    (unsigned long long)(call_retry_wait(c, 1000) +
			        999) /
			        1000);
			free(v);
		}
		v = NULL;
		if (ei->status == 404 && ei->msg_default)
			v = xstrdup("DeploymentNotFound");
		else if (c->d.code != NULL)
			v = xstrdup(c->d.code);
		else
			v = xasprintf("%d", ei->status);
		err =
		    jpack("{s:{s:s, s:s}}", "error", "code", v, "message", msg);
		free(v);
	} else {
		err = jpack("{s:{s:s, s:o, s:o, s:o}}", "error", "message", msg,
		    "type", jstr_or_null(ei->type), "param",
		    jstr_or_null(ei->param), "code", jstr_or_null(ei->code));
	}
	answer_body(c->ans, jdump(err));
	json_decref(err);
	free(msg);
	free(hint);
}

static json_t *
az_filter_results(void)
{
	return jpack("{s:{s:b, s:s}, s:{s:b, s:s}, s:{s:b, s:s}, s:{s:b, s:s}}",
	    "hate", "filtered", 0, "severity", "safe", "self_harm", "filtered",
	    0, "severity", "safe", "sexual", "filtered", 0, "severity", "safe",
	    "violence", "filtered", 0, "severity", "safe");
}

static json_t *
oa_usage(struct call *c)
{
	return jpack("{s:I, s:I, s:I, s:{s:i, s:i}, s:{s:i, s:i, s:i, s:i}}",
	    "prompt_tokens", (json_int_t)c->in_words, "completion_tokens",
	    (json_int_t)c->out_words, "total_tokens",
	    (json_int_t)(c->in_words + c->out_words), "prompt_tokens_details",
	    "cached_tokens", 0, "audio_tokens", 0, "completion_tokens_details",
	    "reasoning_tokens", 0, "audio_tokens", 0,
	    "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0);
}

static const char *
oa_finish(struct call *c)
{
	return finish_reason(c, "stop", "tool_calls", "length",
	    "content_filter");
}

/* A call's tool_calls[] item; tool_noid leaves its id out. */
static json_t *
oa_tool_call(struct call *c, const char *arguments)
{
	json_t *o = jpack("{s:s, s:s, s:{s:s, s:s}}", "id", c->toolid, "type",
	    "function", "function", "name", c->d.tool, "arguments", arguments);

	if (c->d.tool_noid)
		json_object_del(o, "id");
	return o;
}

static json_t *
oa_reply(struct call *c)
{
	json_t *msg, *choice, *o;

	msg = jpack("{s:s, s:o, s:n, s:[]}", "role", "assistant", "content",
	    jstr_or_null(c->text), "refusal", "annotations");
	if (c->text == NULL)
		json_object_set_new(msg, "tool_calls",
		    jpack("[o]", oa_tool_call(c, c->args)));
	choice = jpack("{s:i, s:o, s:n, s:s}", "index", 0, "message", msg,
	    "logprobs", "finish_reason", oa_finish(c));
	if (oa_is_azure(c))
		json_object_set_new(choice, "content_filter_results",
		    az_filter_results());
	o = jpack("{s:s, s:s, s:I, s:s, s:s, s:s, s:[o], s:o}", "id", c->id,
	    "object", "chat.completion", "created", (json_int_t)c->created,
	    "model", c->model, "system_fingerprint", "fp_fakeprov",
	    "service_tier", "default", "choices", choice, "usage", oa_usage(c));
	if (oa_is_azure(c))
		json_object_set_new(o, "prompt_filter_results",
		    jpack("[{s:i, s:o}]", "prompt_index", 0,
		        "content_filter_results", az_filter_results()));
	return o;
}

static json_t *
oa_chunk(struct call *c, json_t *delta, const char *finish)
{
	json_t *choice, *o;

	choice = jpack("{s:i, s:o, s:n, s:o}", "index", 0, "delta", delta,
	    "logprobs", "finish_reason", jstr_or_null(finish));
	if (oa_is_azure(c))
		json_object_set_new(choice, "content_filter_results",
		    json_object());
	o = jpack("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", c->id, "object",
	    "chat.completion.chunk", "created", (json_int_t)c->created, "model",
	    c->model, "system_fingerprint", "fp_fakeprov", "choices", choice);
	if (c->include_usage)
		json_object_set_new(o, "usage", json_null());
	return o;
}

static void
oa_stream(struct call *c)
{
	struct answer *a = c->ans;
	json_t *delta, *o, *tc;
	const char *p;
	char *piece;
	size_t n;

	if (oa_is_azure(c))
		answer_event(a, EV_PRE, NULL,
		    jpack("{s:[], s:i, s:s, s:s, "
		          "s:s, s:[{s:i, s:o}]}",
		        "choices", "created", 0, "id", "", "model", "",
		        "object", "", "prompt_filter_results", "prompt_index",
		        0, "content_filter_results", az_filter_results()));
	if (c->text != NULL) {
		delta = jpack("{s:s, s:s, s:n}", "role", "assistant", "content",
		    "", "refusal");
		answer_event(a, EV_PRE, NULL, oa_chunk(c, delta, NULL));
		for (p = c->text; *p != '\0'; p += n) {
			n = piece_len(p);
			piece = xstrndup(p, n);
			delta = jpack("{s:s}", "content", piece);
			answer_event(a, EV_CONTENT, NULL,
			    oa_chunk(c, delta, NULL));
			free(piece);
		}
	} else {
		tc = oa_tool_call(c, "");
		json_object_set_new(tc, "index", json_integer(c->d.tool_index));
		delta = jpack("{s:s, s:n, s:[o]}", "role", "assistant",
		    "content", "tool_calls", tc);
		answer_event(a, EV_PRE, NULL, oa_chunk(c, delta, NULL));
		for (p = c->args; *p != '\0'; p += n) {
			n = frag_len(p);
			piece = xstrndup(p, n);
			delta = jpack("{s:[{s:i, s:{s:s}}]}", "tool_calls",
			    "index", c->d.tool_index, "function", "arguments",
			    piece);
			answer_event(a, EV_CONTENT, NULL,
			    oa_chunk(c, delta, NULL));
			free(piece);
		}
	}
	answer_event(a, EV_POST, NULL,
	    oa_chunk(c, json_object(), oa_finish(c)));
	if (c->include_usage) {
		o = oa_chunk(c, json_object(), NULL);
		json_object_set_new(o, "choices", json_array());
		json_object_set_new(o, "usage", oa_usage(c));
		answer_event(a, EV_POST, NULL, o);
	}
	answer_event_raw(a, EV_TERM, NULL, "[DONE]");
}

/* The message in Latin-1: U+0080 to U+00FF as one byte each (free it). */
static char *
oa_latin1(const char *msg)
{
	const unsigned char *p = (const unsigned char *)msg;
	char *out = xstrdup(msg), *q = out;

	while (*p != '\0') {
		if ((p[0] == 0xc2 || p[0] == 0xc3) && (p[1] & 0xc0) == 0x80) {
			*q++ = (char)(((p[0] & 0x03) << 6) | (p[1] & 0x3f));
			p += 2;
		} else
			*q++ = (char)*p++;
	}
	*q = '\0';
	return out;
}

static void
oa_stream_error(struct call *c)
{
	const char *msg = c->d.msg != NULL ? c->d.msg :
	                                     "The server had an error while "
	                                     "processing your request. Sorry "
	                                     "about that!";
	char *plain;

	/* shape=latin1: a plain-text error event, not UTF-8. */
	if (c->d.shape != NULL && strcmp(c->d.shape, "latin1") == 0) {
		plain = oa_latin1(msg);
		answer_event_raw(c->ans, EV_POST, "error", plain);
		free(plain);
		answer_event_raw(c->ans, EV_POST, NULL, "[DONE]");
		return;
	}
	answer_event(c->ans, EV_POST, NULL,
	    jpack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", msg, "type",
	        "server_error", "param", "code", jstr_or_null(c->d.code)));
	answer_event_raw(c->ans, EV_POST, NULL, "[DONE]");
}

static void
oa_ratelimit(struct call *c)
{
	struct bucket *b = &c->m->bucket;
	uint64_t reset;
	char v[32];
	long limit, remaining;

	limit = c->d.rpm > 0 ? c->d.rpm : 5000;
	remaining = limit - 1;
	reset = 12;
	if (c->d.rpm > 0) {
		remaining = (long)b->tokens;
		reset = bucket_refill_ms(b, rpm_rate(c->d.rpm),
		    rpm_burst(c->d.rpm));
	}
	if (c->limited) {
		remaining = 0;
		reset = c->limit_wait_ms;
	}
	if (!oa_is_azure(c)) {
		snprintf(v, sizeof v, "%ld", limit);
		req_set_header(c, "x-ratelimit-limit-requests", v);
		req_set_header(c, "x-ratelimit-limit-tokens", "160000");
		go_duration(v, sizeof v, reset);
		req_set_header(c, "x-ratelimit-reset-requests", v);
		go_duration(v, sizeof v,
		    c->limited ? c->limit_wait_ms :
		                 (uint64_t)c->in_words * 3 + 1);
		req_set_header(c, "x-ratelimit-reset-tokens", v);
	}
	snprintf(v, sizeof v, "%ld", remaining);
	req_set_header(c, "x-ratelimit-remaining-requests", v);
	snprintf(v, sizeof v, "%ld", 160000 - c->in_words);
	req_set_header(c, "x-ratelimit-remaining-tokens", v);
}

const struct provider prov_openai = {
	.name = "openai",
	.errors = oa_errors,
	.codes = oa_codes,
	.retry_header = 1,
	.reqid_header = "x-request-id",
	.json_type = "application/json",
	.sse_type = "text/event-stream; charset=utf-8",
	.auth = oa_auth,
	.auth_error = oa_auth_error,
	.check = oa_check,
	.read = oa_read,
	.error = oa_error,
	.reply = oa_reply,
	.stream = oa_stream,
	.stream_error = oa_stream_error,
	.ratelimit = oa_ratelimit,
};

const struct provider prov_azure = {
	.name = "azure",
	.errors = oa_errors,
	.codes = oa_codes,
	.retry_header = 1,
	.reqid_header = "apim-request-id",
	.json_type = "application/json",
	.sse_type = "text/event-stream; charset=utf-8",
	.auth = oa_auth,
	.auth_error = oa_auth_error,
	.check = oa_check,
	.read = oa_read,
	.error = oa_error,
	.reply = oa_reply,
	.stream = oa_stream,
	.stream_error = oa_stream_error,
	.ratelimit = oa_ratelimit,
};
