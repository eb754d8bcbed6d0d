/*
 * fakeprov-gemini.c: the fake provider's Gemini v1beta
 * generateContent dialect. tests/fakeprov.md is the manual.
 */

#include "fakeprov.h"

/* Gemini v1beta generateContent and streamGenerateContent. */
static const struct err_entry gm_errors[] = {
	{ 400, "INVALID_ARGUMENT", NULL,
	    "Request contains an invalid "
	    "argument." },
	{ 401, "UNAUTHENTICATED", NULL,
	    "Request had invalid authentication "
	    "credentials." },
	{ 402, "FAILED_PRECONDITION", NULL, "Billing must be enabled." },
	{ 403, "PERMISSION_DENIED", NULL,
	    "The caller does not have "
	    "permission" },
	{ 404, "NOT_FOUND", NULL, NULL },
	{ 408, "DEADLINE_EXCEEDED", NULL, "Deadline exceeded." },
	{ 409, "ABORTED", NULL, "Aborted." },
	{ 413, "INVALID_ARGUMENT", NULL,
	    "Request payload size exceeds the "
	    "limit: 20971520 bytes." },
	{ 429, "RESOURCE_EXHAUSTED", NULL,
	    "You exceeded your current quota, "
	    "please check your plan and billing details. For more information "
	    "on this error, head to: https://ai.google.dev/gemini-api/docs/"
	    "rate-limits." },
	{ 499, "CANCELLED", NULL, "The operation was cancelled." },
	{ 500, "INTERNAL", NULL,
	    "An internal error has occurred. Please "
	    "retry or report in https://developers.generativeai.google/guide/"
	    "troubleshooting" },
	{ 501, "UNIMPLEMENTED", NULL, "Not implemented." },
	{ 503, "UNAVAILABLE", NULL,
	    "The model is overloaded. Please try "
	    "again later." },
	{ 504, "DEADLINE_EXCEEDED", NULL,
	    "Deadline expired before operation "
	    "could complete." },
	{ 529, "UNAVAILABLE", NULL,
	    "The model is overloaded. Please try "
	    "again later." },
	{ 0, "INVALID_ARGUMENT", NULL,
	    "Request contains an invalid "
	    "argument." },
	{ 0, "INTERNAL", NULL, "An internal error has occurred." },
};

static const struct code_entry gm_codes[] = {
	{ "INVALID_ARGUMENT", 400, "INVALID_ARGUMENT", NULL, NULL },
	{ "FAILED_PRECONDITION", 400, "FAILED_PRECONDITION", NULL,
	    "User location is not supported for the API use." },
	{ "API_KEY_INVALID", 400, "INVALID_ARGUMENT", NULL,
	    "API key not valid. Please pass a valid API key." },
	{ "UNAUTHENTICATED", 401, "UNAUTHENTICATED", NULL, NULL },
	{ "PERMISSION_DENIED", 403, "PERMISSION_DENIED", NULL, NULL },
	{ "NOT_FOUND", 404, "NOT_FOUND", NULL, NULL },
	{ "RESOURCE_EXHAUSTED", 429, "RESOURCE_EXHAUSTED", NULL, NULL },
	{ "CANCELLED", 499, "CANCELLED", NULL, NULL },
	{ "INTERNAL", 500, "INTERNAL", NULL, NULL },
	{ "UNAVAILABLE", 503, "UNAVAILABLE", NULL, NULL },
	{ "DEADLINE_EXCEEDED", 504, "DEADLINE_EXCEEDED", NULL, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};

static enum auth_result
gm_auth(struct call *c)
{
	const char *key = req_header(c, "x-goog-api-key");
	char *qkey;
	enum auth_result r;

	if (key != NULL)
		return strcmp(key, fp_key) == 0 ? AUTH_OK : AUTH_WRONG;
	if ((qkey = query_get(c->req, "key")) == NULL)
		return AUTH_MISSING;
	r = strcmp(qkey, fp_key) == 0 ? AUTH_OK : AUTH_WRONG;
	free(qkey);
	return r;
}

static json_t *
gm_error_info(void)
{
	return jpack("[{s:s, s:s, s:s, s:{s:s}}, {s:s, s:s, s:s}]", "@type",
	    "type.googleapis.com/google.rpc.ErrorInfo", "reason",
	    "API_KEY_INVALID", "domain", "googleapis.com", "metadata",
	    "service", "generativelanguage.googleapis.com", "@type",
	    "type.googleapis.com/google.rpc.LocalizedMessage", "locale",
	    "en-US", "message",
	    "API key not valid. Please pass a valid API key.");
}

static void
gm_error_body(struct call *c, int code, const char *status, const char *msg,
    json_t *details)
{
	json_t *o;

	o = jpack("{s:{s:i, s:s, s:s, s:o}}", "error", "code", code, "message",
	    msg, "status", status, "details", details);
	/* The stream endpoint without alt=sse wraps errors in an array. */
	if (c->ans->array)
		o = jpack("[o]", o);
	answer_body(c->ans, json_dumps(o, JSON_INDENT(2)));
	json_decref(o);
}

/*
 * Gemini's real answers: a wrong key is 400 INVALID_ARGUMENT with an
 * API_KEY_INVALID ErrorInfo; no key at all is 403 PERMISSION_DENIED.
 */
static void
gm_auth_error(struct call *c, enum auth_result r)
{
	req_set_header(c, "Content-Type", c->prov->json_type);
	if (r == AUTH_MISSING) {
		c->ans->status = 403;
		gm_error_body(c, 403, "PERMISSION_DENIED",
		    "Method doesn't "
		    "allow unregistered callers (callers without established "
		    "identity). Please use API Key or other form of API "
		    "consumer identity to call this API.",
		    json_array());
		return;
	}
	c->ans->status = 400;
	gm_error_body(c, 400, "INVALID_ARGUMENT",
	    "API key not valid. Please pass a valid API key.", gm_error_info());
}

static int
gm_check(struct call *c)
{
	if (c->body == NULL) {
		call_error(c, 400, NULL,
		    "Invalid JSON payload received. "
		    "Unexpected token.");
		return -1;
	}
	if (!json_is_array(json_object_get(c->body, "contents"))) {
		call_error(c, 400, NULL,
		    "* GenerateContentRequest.contents: "
		    "contents is not specified\n");
		return -1;
	}
	return 0;
}

static void
gm_read(struct call *c)
{
	json_t *contents, *ct, *parts, *part, *fr, *last = NULL;
	const char *role;
	struct sbuf sb = { NULL, 0, 0 };
	long dummy = 0;
	size_t i, n;
	char *s;

	text_of(json_object_get(json_object_get(c->body, "systemInstruction"),
	            "parts"),
	    NULL, &c->in_words);
	contents = json_object_get(c->body, "contents");
	n = resume_turns(c, contents, "parts", "model");
	json_array_foreach(contents, i, ct) {
		text_of(json_object_get(ct, "parts"), NULL, &c->in_words);
		if (i >= n)
			continue;
		role = json_string_value(json_object_get(ct, "role"));
		if (role == NULL || strcmp(role, "user") == 0)
			last = ct;
	}
	if (last == NULL) {
		c->prompt = sbuf_take(&sb);
		return;
	}
	parts = json_object_get(last, "parts");
	text_of(parts, &sb, &dummy);
	ct = json_array_get(contents, n - 1);
	json_array_foreach(parts, i, part) {
		if ((fr = json_object_get(part, "functionResponse")) == NULL)
			continue;
		/* Text after the result (merged into its turn) asks anew. */
		if (ct == last && i + 1 == json_array_size(parts))
			c->tool_result = 1;
		if ((fr = json_object_get(fr, "response")) != NULL &&
		    (s = json_dumps(fr, JSON_COMPACT | JSON_ENCODE_ANY)) !=
		        NULL) {
			sbuf_addn(&sb, s, strlen(s));
			free(s);
		}
	}
	c->prompt = sbuf_take(&sb);
}

static void
gm_error(struct call *c, struct err_info *ei)
{
	json_t *details;
	char *msg, delay[32];
	size_t n;
	int wait;

	details = json_array();
	if (ei->code != NULL && strcmp(ei->code, "API_KEY_INVALID") == 0)
		json_array_extend(details, gm_error_info());
	if (ei->status == 429) {
		json_array_append_new(details,
		    jpack("{s:s, s:[{s:s, s:s, "
		          "s:{s:s, s:s}, s:s}]}",
		        "@type", "type.googleapis.com/google.rpc.QuotaFailure",
		        "violations", "quotaMetric",
		        "generativelanguage."
		        "googleapis.com/generate_content_free_tier_requests",
		        "quotaId",
		        c->d.quota != NULL ?
		            c->d.quota :
		            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
		        "quotaDimensions", "location", "global", "model",
		        c->model != NULL ? c->model : "", "quotaValue", "15"));
		if (c->retry_s >= 0 || c->retry_ms >= 0) {
			/* A protobuf Duration: decimal seconds, then "s". */
			wait = (int)call_retry_wait(c, 0);
			snprintf(delay, sizeof delay, "%d.%03d", wait / 1000,
			    wait % 1000);
			n = strlen(delay);
			while (delay[n - 1] == '0')
				delay[--n] = '\0';
			if (delay[n - 1] == '.')
				delay[--n] = '\0';
			snprintf(delay + n, sizeof delay - n, "s");
			json_array_append_new(details,
			    jpack("{s:s, s:s}", "@type",
			        "type.googleapis.com/google.rpc.RetryInfo",
			        "retryDelay", delay));
		}
	}
	if (ei->msg_default && ei->status == 404)
		msg = xasprintf(
		    "models/%s is not found for API version "
		    "v1beta, or is not supported for generateContent. Call "
		    "ListModels to see the list of available models and their "
		    "supported methods.",
		    c->model != NULL ? c->model : "");
	else
		msg = xstrdup(ei->msg != NULL ? ei->msg : "Error");
	gm_error_body(c, ei->status, ei->type, msg, details);
	free(msg);
}

static const char *
gm_finish(struct call *c)
{
	return finish_reason(c, "STOP", "STOP", "MAX_TOKENS", "SAFETY");
}

static json_t *
gm_usage(struct call *c, int final)
{
	if (!final)
		return jpack("{s:I, s:I}", "promptTokenCount",
		    (json_int_t)c->in_words, "totalTokenCount",
		    (json_int_t)c->in_words);
	return jpack("{s:I, s:I, s:I}", "promptTokenCount",
	    (json_int_t)c->in_words, "candidatesTokenCount",
	    (json_int_t)c->out_words, "totalTokenCount",
	    (json_int_t)(c->in_words + c->out_words));
}

static json_t *
gm_response(struct call *c, json_t *parts, const char *finish)
{
	json_t *cand;

	cand = jpack("{s:{s:s, s:o}, s:i}", "content", "role", "model", "parts",
	    parts, "index", 0);
	if (finish != NULL)
		json_object_set_new(cand, "finishReason", json_string(finish));
	if (finish != NULL && c->d.filter)
		json_object_set_new(cand, "safetyRatings",
		    jpack("[{s:s, s:s, "
		          "s:b}]",
		        "category", "HARM_CATEGORY_HARASSMENT", "probability",
		        "HIGH", "blocked", 1));
	return jpack("{s:[o], s:o, s:s, s:s}", "candidates", cand,
	    "usageMetadata", gm_usage(c, finish != NULL), "modelVersion",
	    c->model, "responseId", c->id);
}

static json_t *
gm_parts(struct call *c, const char *text)
{
	if (text == NULL)
		return jpack("[{s:{s:s, s:O}}]", "functionCall", "name",
		    c->d.tool, "args", c->args_json);
	return jpack("[{s:s}]", "text", text);
}

static json_t *
gm_reply(struct call *c)
{
	return gm_response(c, gm_parts(c, c->text), gm_finish(c));
}

/* Pieces go out one per chunk; the last one carries finishReason. */
static void
gm_stream(struct call *c)
{
	struct answer *a = c->ans;
	const char *p;
	char *piece;
	size_t n;

	if (c->text == NULL || *c->text == '\0') {
		answer_event(a, EV_TERM, NULL,
		    gm_response(c, gm_parts(c, c->text), gm_finish(c)));
		return;
	}
	for (p = c->text; *p != '\0'; p += n) {
		n = piece_len(p);
		piece = xstrndup(p, n);
		if (p[n] == '\0')
			answer_event(a, EV_TERM, NULL,
			    gm_response(c, gm_parts(c, piece), gm_finish(c)));
		else
			answer_event(a, EV_CONTENT, NULL,
			    gm_response(c, gm_parts(c, piece), NULL));
		free(piece);
	}
}

static void
gm_stream_error(struct call *c)
{
	const struct err_entry *se;
	const char *status = "UNAVAILABLE", *msg;
	int code = 503;

	if (c->d.code != NULL) {
		status = c->d.code;
		code = call_code_status(c, c->d.code);
	}
	for (se = gm_errors; se->status != 0; se++) {
		if (se->status == code)
			break;
	}
	msg = se->msg != NULL ? se->msg : "Error";
	if (c->d.msg != NULL)
		msg = c->d.msg;
	answer_event(c->ans, EV_POST, NULL,
	    jpack("{s:{s:i, s:s, s:s}}", "error", "code", code, "message", msg,
	        "status", status));
}

const struct provider prov_gemini = {
	.name = "gemini",
	.errors = gm_errors,
	.codes = gm_codes,
	.code_is_type = 1,
	.json_type = "application/json; charset=UTF-8",
	.sse_type = "text/event-stream",
	.auth = gm_auth,
	.auth_error = gm_auth_error,
	.check = gm_check,
	.read = gm_read,
	.error = gm_error,
	.reply = gm_reply,
	.stream = gm_stream,
	.stream_error = gm_stream_error,
};
