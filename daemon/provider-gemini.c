/*
 * provider-gemini.c: the Google Gemini API (generativelanguage v1beta with
 * an API key). Builds generateContent requests, reads whole bodies and
 * alt=sse streams into a reply, and maps google.rpc.Status errors onto
 * llmgate's error classes.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof(a)[0])
#endif

#define GEMINI_BASE_URL "https://generativelanguage.googleapis.com/v1beta"

/*
 * jansson's default 17 digits print 0.3 as 0.29999999999999999; 15 digits
 * keep every value a person or a model writes as it was written.
 */
#define GEMINI_DUMP (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* Provider messages can be long; attempts and logs keep this much. */
#define GEMINI_MSG_MAX 300

/* Stream state: tool calls arrive whole, one per part, across chunks. */
struct gemini_state {
	int ncalls; /* functionCall parts seen: the next index */
};

struct gemini_finish_map {
	const char *name;
	enum llmgate_finish finish;
	enum llmgate_class cls;
};

/* Unknown reasons are "other" (rule zero); STOP becomes tool_calls below. */
static const struct gemini_finish_map gemini_finishes[] = {
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
};

struct gemini_status_map {
	const char *name;
	enum llmgate_class cls;
};

/* google.rpc.Code names, after the specific markers have been looked for. */
static const struct gemini_status_map gemini_statuses[] = {
	{ "INVALID_ARGUMENT", LLMGATE_BAD_REQUEST },
	{ "FAILED_PRECONDITION", LLMGATE_BAD_REQUEST },
	{ "OUT_OF_RANGE", LLMGATE_BAD_REQUEST },
	{ "UNIMPLEMENTED", LLMGATE_BAD_REQUEST },
	{ "UNAUTHENTICATED", LLMGATE_AUTH },
	{ "PERMISSION_DENIED", LLMGATE_PERMISSION },
	{ "NOT_FOUND", LLMGATE_NOT_FOUND },
	{ "RESOURCE_EXHAUSTED", LLMGATE_RATE_LIMITED },
	{ "UNAVAILABLE", LLMGATE_OVERLOADED },
	{ "INTERNAL", LLMGATE_SERVER_ERROR },
	{ "UNKNOWN", LLMGATE_SERVER_ERROR },
	{ "DATA_LOSS", LLMGATE_SERVER_ERROR },
	{ "ABORTED", LLMGATE_SERVER_ERROR },
	{ "DEADLINE_EXCEEDED", LLMGATE_TIMEOUT },
	{ "CANCELLED", LLMGATE_CANCELLED },
};

/* What the details of one google.rpc.Status told us. */
struct gemini_details {
	int key_invalid;  /* ErrorInfo reason API_KEY_INVALID */
	int per_day;      /* a QuotaFailure on a per-day quota */
	int zero_quota;   /* a quota of 0: the tier has no access */
	int64_t retry_ms; /* RetryInfo.retryDelay, -1 when none */
};

/*
 * A string member (an element: key NULL), NULL as "". Invalid UTF-8 is
 * the caller's input error.
 */
static int
gemini_str(struct jwrite *w, const char *key, const char *s, const char *what,
    char **cause)
{
	if (jwrite_utf8str(w, key, s != NULL ? s : "") != 0) {
		xasprintf(cause, "%s: not valid UTF-8", what);
		return -1;
	}
	return 0;
}

/*
 * Caller JSON that Gemini takes as a Struct (function args, parameters,
 * schema) must be an object. Blank text means an empty object only where
 * the caller says so (empty_ok), as for a call without arguments.
 */
static int
gemini_object(struct jwrite *w, const char *key, const char *text, int empty_ok,
    const char *what, char **cause)
{
	json_error_t error;
	int rc;

	if (empty_ok &&
	    (text == NULL || text[strspn(text, " \t\r\n")] == '\0')) {
		jwrite_raw(w, key, "{}");
		return 0;
	}
	rc = jwrite_loads(w, key, text != NULL ? text : "", 0, GEMINI_DUMP, 1,
	    &error);
	if (rc == -1)
		xasprintf(cause, "%s: invalid JSON: %s", what, error.text);
	else if (rc != 0)
		xasprintf(cause, "%s: not a JSON object", what);
	return rc != 0 ? -1 : 0;
}

/* A text part; -1 (with cause) when the text is not UTF-8. */
static int
gemini_text_part(struct jwrite *w, const char *s, const char *what,
    char **cause)
{
	jwrite_open(w, NULL, '{');
	if (gemini_str(w, "text", s, what, cause) != 0)
		return -1;
	jwrite_close(w, '}');
	return 0;
}

/*
 * A functionResponse needs the function's name. The tool message may
 * carry it; otherwise it is the name of the earlier call it answers.
 */
static const char *
gemini_tool_name(const struct llmgate_request *req, size_t at)
{
	const struct llmgate_message *m = &req->messages[at], *am;
	size_t i, j;

	if (m->name != NULL && *m->name != '\0')
		return m->name;
	if (m->tool_call_id == NULL)
		return NULL;
	for (i = at; i-- > 0;) {
		am = &req->messages[i];
		if (am->role != LLMGATE_ROLE_ASSISTANT)
			continue;
		for (j = 0; j < am->ntool_calls; j++) {
			if (am->tool_calls[j].id != NULL &&
			    strcmp(am->tool_calls[j].id, m->tool_call_id) == 0)
				return am->tool_calls[j].name;
		}
	}
	return NULL;
}

/* functionResponse.response must be an object: wrap anything else. */
static int
gemini_tool_result(struct jwrite *w, const char *content, char **cause)
{
	json_error_t error;

	if (content != NULL &&
	    jwrite_loads(w, "response", content, 0, GEMINI_DUMP, 1, &error) ==
	        0)
		return 0;
	jwrite_open(w, "response", '{');
	if (gemini_str(w, "result", content, "tool result", cause) != 0)
		return -1;
	jwrite_close(w, '}');
	return 0;
}

/* Whether a message has any part: Gemini rejects empty turns. */
static int
gemini_has_parts(const struct llmgate_message *m)
{
	return m->role == LLMGATE_ROLE_TOOL ||
	    (m->content != NULL && *m->content != '\0') ||
	    (m->role == LLMGATE_ROLE_ASSISTANT && m->ntool_calls != 0);
}

/* The parts of one message, in Gemini's shape; -1 with cause. */
static int
gemini_parts(struct jwrite *w, const struct llmgate_request *req, size_t at,
    char **cause)
{
	const struct llmgate_message *m = &req->messages[at];
	const struct llmgate_tool_call *tc;
	const char *fname;
	size_t i;

	if (m->role == LLMGATE_ROLE_TOOL) {
		if ((fname = gemini_tool_name(req, at)) == NULL) {
			xasprintf(cause,
			    "message %zu: tool result without a "
			    "function name",
			    at);
			return -1;
		}
		jwrite_open(w, NULL, '{');
		jwrite_open(w, "functionResponse", '{');
		if (gemini_str(w, "name", fname, "tool name", cause) != 0 ||
		    gemini_tool_result(w, m->content, cause) != 0)
			return -1;
		jwrite_close(w, '}');
		jwrite_close(w, '}');
		return 0;
	}

	if (m->content != NULL && *m->content != '\0' &&
	    gemini_text_part(w, m->content, "message text", cause) != 0)
		return -1;
	if (m->role != LLMGATE_ROLE_ASSISTANT)
		return 0;
	for (i = 0; i < m->ntool_calls; i++) {
		tc = &m->tool_calls[i];
		jwrite_open(w, NULL, '{');
		jwrite_open(w, "functionCall", '{');
		if (gemini_str(w, "name", tc->name, "tool call name", cause) !=
		        0 ||
		    gemini_object(w, "args", tc->arguments, 1,
		        "tool call arguments", cause) != 0)
			return -1;
		jwrite_close(w, '}');
		jwrite_close(w, '}');
	}
	return 0;
}

/*
 * Gemini wants user and model turns to alternate, and tool results travel
 * as user turns, so a message with the same role as the turn before goes
 * into that turn. A message without parts is dropped.
 */
static int
gemini_contents(struct jwrite *w, const struct llmgate_request *req,
    char **cause)
{
	const char *role, *open = NULL;
	size_t i;

	jwrite_open(w, "contents", '[');
	for (i = 0; i < req->nmessages; i++) {
		if (!gemini_has_parts(&req->messages[i]))
			continue;
		role = req->messages[i].role == LLMGATE_ROLE_ASSISTANT ?
		    "model" :
		    "user";
		if (open == NULL || strcmp(open, role) != 0) {
			if (open != NULL) {
				jwrite_close(w, ']');
				jwrite_close(w, '}');
			}
			jwrite_open(w, NULL, '{');
			jwrite_str(w, "role", role);
			jwrite_open(w, "parts", '[');
			open = role;
		}
		if (gemini_parts(w, req, i, cause) != 0)
			return -1;
	}
	if (open == NULL) {
		xasprintf(cause, "no message to send");
		return -1;
	}
	jwrite_close(w, ']');
	jwrite_close(w, '}');
	jwrite_close(w, ']');
	return 0;
}

static int
gemini_tools(struct jwrite *w, const struct llmgate_request *req, char **cause)
{
	const struct llmgate_tool *t;
	size_t i;

	jwrite_open(w, "tools", '[');
	jwrite_open(w, NULL, '{');
	jwrite_open(w, "functionDeclarations", '[');
	for (i = 0; i < req->ntools; i++) {
		t = &req->tools[i];
		jwrite_open(w, NULL, '{');
		if (gemini_str(w, "name", t->name, "tool name", cause) != 0)
			return -1;
		if (t->description != NULL &&
		    gemini_str(w, "description", t->description,
		        "tool description", cause) != 0)
			return -1;
		if (t->parameters != NULL &&
		    gemini_object(w, "parameters", t->parameters, 0,
		        "tool parameters", cause) != 0)
			return -1;
		jwrite_close(w, '}');
	}
	jwrite_close(w, ']');
	jwrite_close(w, '}');
	jwrite_close(w, ']');
	return 0;
}

/* generationConfig; left out when nothing is set. */
static int
gemini_config(struct jwrite *w, const struct llmgate_request *req, char **cause)
{
	size_t len = w->b->len, start, i;
	int more = w->more;

	jwrite_open(w, "generationConfig", '{');
	start = w->b->len;
	if (req->has & LLMGATE_HAS_MAX_TOKENS)
		jwrite_int(w, "maxOutputTokens", (long long)req->max_tokens);
	if (req->has & LLMGATE_HAS_TEMPERATURE)
		(void)jwrite_real(w, "temperature", req->temperature, 15);
	if (req->has & LLMGATE_HAS_TOP_P)
		(void)jwrite_real(w, "topP", req->top_p, 15);
	if (req->has & LLMGATE_HAS_SEED)
		jwrite_int(w, "seed", (long long)req->seed);
	if (req->nstop != 0) {
		jwrite_open(w, "stopSequences", '[');
		for (i = 0; i < req->nstop; i++) {
			if (gemini_str(w, NULL, req->stop[i], "stop sequence",
			        cause) != 0)
				return -1;
		}
		jwrite_close(w, ']');
	}
	if (req->schema != NULL) {
		/*
		 * responseJsonSchema takes plain JSON Schema; responseSchema
		 * is an OpenAPI subset that rejects much of what callers
		 * write.
		 */
		jwrite_raw(w, "responseMimeType", "\"application/json\"");
		if (gemini_object(w, "responseJsonSchema", req->schema, 0,
		        "schema", cause) != 0)
			return -1;
	}
	if (w->b->len == start)
		jwrite_undo(w, len, more);
	else
		jwrite_close(w, '}');
	return 0;
}

/* toolConfig, for any choice but auto. */
static void
gemini_tool_config(struct jwrite *w, const struct llmgate_request *req)
{
	size_t len;
	int more;

	jwrite_open(w, "toolConfig", '{');
	jwrite_open(w, "functionCallingConfig", '{');
	jwrite_raw(w, "mode",
	    req->tool_choice == LLMGATE_TOOLS_NONE ? "\"NONE\"" : "\"ANY\"");
	if (req->tool_name != NULL) {
		len = w->b->len;
		more = w->more;
		jwrite_open(w, "allowedFunctionNames", '[');
		/* Not UTF-8: left out, as the tree had it. */
		if (jwrite_utf8str(w, NULL, req->tool_name) != 0)
			jwrite_undo(w, len, more);
		else
			jwrite_close(w, ']');
	}
	jwrite_close(w, '}');
	jwrite_close(w, '}');
}

/* The generateContent body, written straight as text. */
static int
gemini_body(struct jwrite *w, const struct llmgate_request *req, char **cause)
{
	jwrite_open(w, NULL, '{');
	if (req->system != NULL && *req->system != '\0') {
		jwrite_open(w, "systemInstruction", '{');
		jwrite_open(w, "parts", '[');
		if (gemini_text_part(w, req->system, "system prompt", cause) !=
		    0)
			return -1;
		jwrite_close(w, ']');
		jwrite_close(w, '}');
	}
	if (gemini_contents(w, req, cause) != 0 ||
	    gemini_config(w, req, cause) != 0)
		return -1;
	if (req->ntools != 0 && gemini_tools(w, req, cause) != 0)
		return -1;
	if (req->tool_choice != LLMGATE_TOOLS_AUTO)
		gemini_tool_config(w, req);
	jwrite_close(w, '}');
	return 0;
}

/* curl_slist_append() fails only for memory, which xmalloc aborts on too. */
static struct curl_slist *
gemini_header(struct curl_slist *list, const char *header)
{
	struct curl_slist *l;

	if ((l = curl_slist_append(list, header)) == NULL)
		fatalx("%s: out of memory", __func__);
	return l;
}

static int
gemini_build(struct http_req *hr, const struct provider_conf *prov,
    const char *model, const struct llmgate_request *req, char **cause)
{
	struct curl_slist *headers = NULL;
	struct buf body = { NULL, 0, 0 };
	struct jwrite w;
	const char *base;
	char *esc, *url, *key;
	size_t blen;

	*cause = NULL;
	jwrite_init(&w, &body, 0);
	if (gemini_body(&w, req, cause) != 0)
		goto fail;

	/* The Gemini model list names models "models/x"; accept either. */
	if (strncmp(model, "models/", 7) == 0)
		model += 7;
	if ((esc = curl_easy_escape(NULL, model, 0)) == NULL)
		fatalx("%s: curl_easy_escape", __func__);
	base = prov->base_url != NULL ? prov->base_url : GEMINI_BASE_URL;
	blen = strlen(base);
	while (blen != 0 && base[blen - 1] == '/')
		blen--;
	xasprintf(&url, "%.*s/models/%s:%s", (int)blen, base, esc,
	    req->stream ? "streamGenerateContent?alt=sse" : "generateContent");
	curl_free(esc);

	headers = gemini_header(headers, "Content-Type: application/json");
	if (req->stream)
		headers = gemini_header(headers, "Accept: text/event-stream");
	if (prov->api_key != NULL && *prov->api_key != '\0') {
		/* The header, not ?key=, so the key stays out of URL logs. */
		xasprintf(&key, "x-goog-api-key: %s", prov->api_key);
		headers = gemini_header(headers, key);
		free(key);
	}

	hr->url = url;
	hr->headers = headers;
	hr->body = body.data;
	hr->body_len = body.len;
	return 0;

fail:
	buf_free(&body);
	if (*cause == NULL)
		xasprintf(cause, "cannot build the request");
	return -1;
}

static struct gemini_state *
gemini_state(struct reply *r)
{
	if (r->pstate == NULL)
		r->pstate = xcalloc(1, sizeof(struct gemini_state));
	return r->pstate;
}

/* Copy a provider message for reply->message: one line, bounded. */
static void
gemini_msg(char *dst, size_t size, const char *src)
{
	size_t n, max = size - 4;

	for (n = 0; src[n] != '\0' && n < max; n++)
		dst[n] = iscntrl((unsigned char)src[n]) ? ' ' : src[n];
	if (src[n] != '\0') {
		/* Don't cut a UTF-8 sequence in half. */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
}

/*
 * google.protobuf.Duration in JSON: decimal seconds and an 's' ("13s",
 * "1.5s", "0s"). -1 for anything else.
 */
static int64_t
gemini_duration_ms(const char *s)
{
	size_t n;
	double v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	n = strspn(s, "0123456789.");
	if (strcmp(s + n, "s") != 0)
		return -1;
	v = strtod(s, NULL);
	if (!isfinite(v) || v < 0)
		return -1;
	if (v > 86400.0 * 366)
		v = 86400.0 * 366;
	return (int64_t)(v * 1000.0 + 0.5);
}

/*
 * Read the details without insisting on "@type": proxies and older
 * servers drop it, and the field names alone are unambiguous.
 */
static void
gemini_details(json_t *details, struct gemini_details *gd)
{
	json_t *d, *v, *viol;
	const char *s;
	size_t i, j;
	int64_t ms;

	memset(gd, 0, sizeof *gd);
	gd->retry_ms = -1;
	json_array_foreach(details, i, d) {
		s = json_string_value(json_object_get(d, "reason"));
		if (s != NULL && strcmp(s, "API_KEY_INVALID") == 0)
			gd->key_invalid = 1;
		s = json_string_value(json_object_get(d, "retryDelay"));
		if (s != NULL && (ms = gemini_duration_ms(s)) >= 0)
			gd->retry_ms = ms;
		json_array_foreach(json_object_get(d, "violations"), j, viol) {
			s = json_string_value(json_object_get(viol, "quotaId"));
			if (s != NULL && strcasestr(s, "PerDay") != NULL)
				gd->per_day = 1;
			v = json_object_get(viol, "quotaValue");
			if ((json_is_string(v) &&
			        strcmp(json_string_value(v), "0") == 0) ||
			    (json_is_integer(v) && json_integer_value(v) == 0))
				gd->zero_quota = 1;
		}
	}
}

/*
 * The class of a google.rpc.Status: specific markers first (key, context,
 * quota), then the status name, then the HTTP code.
 */
static enum llmgate_class
gemini_error_class(const struct provider_err *e, const char *st,
    const char *msg, uint32_t http, const struct gemini_details *gd)
{
	size_t i;

	if (gd->key_invalid || strcasestr(msg, "API key not valid") != NULL ||
	    strcasestr(msg, "API key expired") != NULL)
		return LLMGATE_AUTH;
	/* "Request payload size exceeds the limit" comes as 413. */
	if (http == 413 || provider_err_context(e))
		return LLMGATE_CONTEXT_LENGTH;
	if (strcmp(st, "RESOURCE_EXHAUSTED") == 0 || http == 429 ||
	    http == 402) {
		/*
		 * A per-day quota, a quota of zero and depleted prepaid
		 * credit don't clear by waiting. "You exceeded your current
		 * quota, please check your plan and billing details" is no
		 * such sign: Google says it for per-minute limits too.
		 */
		if (http == 402 || gd->per_day || gd->zero_quota ||
		    strcasestr(msg, "per day") != NULL ||
		    strcasestr(msg, "PerDay") != NULL ||
		    strcasestr(msg, "depleted") != NULL)
			return LLMGATE_QUOTA_EXHAUSTED;
		return LLMGATE_RATE_LIMITED;
	}
	if (strcmp(st, "FAILED_PRECONDITION") == 0 &&
	    strcasestr(msg, "billing") != NULL)
		return LLMGATE_QUOTA_EXHAUSTED;
	for (i = 0; i < nitems(gemini_statuses); i++) {
		if (strcmp(st, gemini_statuses[i].name) == 0)
			return gemini_statuses[i].cls;
	}
	if (http == 503)
		return LLMGATE_OVERLOADED;
	if (http >= 400)
		return reply_class_for_status(http);
	return LLMGATE_SERVER_ERROR; /* an error event in a 2xx stream */
}

/*
 * Record an error body: a google.rpc.Status ({"error": {"code",
 * "message", "status", "details"}}), or another server's shape
 * (provider_err_fields()). status is the HTTP status, 0 for an error
 * event inside a 2xx stream.
 */
static void
gemini_status(struct reply *r, uint32_t status, json_t *root)
{
	struct provider_err e;
	struct gemini_details gd;
	const char *st, *msg;
	char text[GEMINI_MSG_MAX + 4];
	enum llmgate_class cls;
	uint32_t http;

	provider_err_fields(root, &e);
	st = e.status != NULL ? e.status : "";
	msg = e.message != NULL ? e.message : "";
	gemini_msg(text, sizeof text, msg);
	if (status >= 300)
		http = status;
	else
		http = (uint32_t)e.http;
	gemini_details(json_object_get(e.obj, "details"), &gd);
	cls = gemini_error_class(&e, st, msg, http, &gd);

	if (gd.retry_ms >= 0 && r->rl.retry_after_ms < 0)
		r->rl.retry_after_ms = gd.retry_ms;
	if (*st != '\0')
		reply_error(r, cls, status, "%s: %s", st, text);
	else if (*text != '\0')
		reply_error(r, cls, status, "%s", text);
	else if (http != 0)
		reply_error(r, cls, status, "HTTP %u", http);
	else
		reply_error(r, cls, status, "error event without a message");
}

/*
 * One functionCall part: a whole call, with an id made up if absent (one
 * unique to the call: a later turn's calls must not repeat it). Requests
 * answer Gemini by function name, so the id never travels back to it.
 */
static int
gemini_call(struct reply *r, json_t *fc)
{
	struct gemini_state *gs = gemini_state(r);
	const char *name, *id;
	char *args;
	json_t *a;
	int idx;

	name = json_string_value(json_object_get(fc, "name"));
	if (name == NULL || *name == '\0') {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "functionCall without a name");
		return -1;
	}
	idx = gs->ncalls++;
	/* Usually none: reply_tool_delta() gives the call an id then. */
	id = json_string_value(json_object_get(fc, "id"));
	if ((a = json_object_get(fc, "args")) == NULL || json_is_null(a))
		args = xstrdup("{}");
	else if ((args = json_dumps(a, GEMINI_DUMP | JSON_ENCODE_ANY)) ==
	    NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "functionCall %s: cannot encode args", name);
		return -1;
	}
	reply_tool_delta(r, idx, id, name, args, strlen(args));
	free(args);
	return 0;
}

static void
gemini_finish(struct reply *r, const char *reason, json_t *cand)
{
	struct gemini_state *gs = gemini_state(r);
	const struct gemini_finish_map *fm = NULL;
	const char *fmsg;
	char text[GEMINI_MSG_MAX + 4];
	size_t i;

	for (i = 0; i < nitems(gemini_finishes); i++) {
		if (strcmp(reason, gemini_finishes[i].name) == 0) {
			fm = &gemini_finishes[i];
			break;
		}
	}
	r->done = 1;
	if (fm == NULL) {
		r->finish = LLMGATE_FINISH_OTHER;
		return;
	}
	/* There is no tool-call reason: a call turn ends with STOP. */
	if (fm->finish == LLMGATE_FINISH_STOP && gs->ncalls != 0)
		r->finish = LLMGATE_FINISH_TOOL_CALLS;
	else
		r->finish = fm->finish;
	if (fm->cls == LLMGATE_OK)
		return;
	fmsg = json_string_value(json_object_get(cand, "finishMessage"));
	if (fmsg != NULL) {
		gemini_msg(text, sizeof text, fmsg);
		reply_error(r, fm->cls, 0, "finishReason %s: %s", reason, text);
	} else
		reply_error(r, fm->cls, 0, "finishReason %s", reason);
}

static uint64_t
gemini_count(json_t *usage, const char *key)
{
	json_int_t n = json_integer_value(json_object_get(usage, key));

	return n > 0 ? (uint64_t)n : 0;
}

/* The first candidate (index 0); others only appear with candidateCount. */
static json_t *
gemini_candidate(json_t *cands)
{
	json_t *c, *n;
	size_t i;

	json_array_foreach(cands, i, c) {
		n = json_object_get(c, "index");
		if (json_is_object(c) &&
		    (n == NULL || json_integer_value(n) == 0))
			return c;
	}
	return NULL;
}

/*
 * One GenerateContentResponse: a whole body (whole) or a stream chunk,
 * which holds only the new parts. Usage rides on most chunks and the last
 * one has the full counts, so the latest wins.
 */
static int
gemini_response(struct reply *r, json_t *root, int whole)
{
	json_t *usage, *cands, *cand, *parts, *part, *j;
	const char *reason;
	size_t i;

	if (!json_is_object(root)) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "response is not a JSON object");
		return -1;
	}
	if (json_object_get(root, "error") != NULL) {
		gemini_status(r, 0, root);
		return -1;
	}
	if (json_is_object(usage = json_object_get(root, "usageMetadata"))) {
		r->input_tokens = gemini_count(usage, "promptTokenCount");
		r->output_tokens = gemini_count(usage, "candidatesTokenCount") +
		    gemini_count(usage, "thoughtsTokenCount");
	}

	cands = json_object_get(root, "candidates");
	if (cands != NULL && !json_is_array(cands)) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "candidates is not an array");
		return -1;
	}
	if ((cand = gemini_candidate(cands)) == NULL) {
		/* A blocked prompt has no candidates, only the reason. */
		j = json_object_get(root, "promptFeedback");
		reason = json_string_value(json_object_get(j, "blockReason"));
		if (reason != NULL) {
			r->finish = LLMGATE_FINISH_CONTENT_FILTER;
			r->done = 1;
			reply_error(r, LLMGATE_CONTENT_FILTER, 0,
			    "prompt blocked: %s", reason);
			return 0;
		}
		if (!whole)
			return 0;
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "response has no candidates");
		return -1;
	}

	parts = json_object_get(json_object_get(cand, "content"), "parts");
	json_array_foreach(parts, i, part) {
		/* Thought summaries are not the answer. */
		if (json_is_true(json_object_get(part, "thought")))
			continue;
		if (json_is_string(j = json_object_get(part, "text")))
			reply_text(r, json_string_value(j),
			    json_string_length(j));
		else if (json_is_object(
		             j = json_object_get(part, "functionCall"))) {
			if (gemini_call(r, j) != 0)
				return -1;
		}
	}

	reason = json_string_value(json_object_get(cand, "finishReason"));
	if (reason != NULL)
		gemini_finish(r, reason, cand);
	else if (whole) {
		r->finish = LLMGATE_FINISH_OTHER;
		r->done = 1;
	}
	return 0;
}

static int
gemini_parse(struct reply *r, const char *body, size_t len)
{
	json_error_t error;
	json_t *root;
	int rv;

	if ((root = jload(body, len, &error)) == NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "response is not JSON: %s", error.text);
		return -1;
	}
	rv = gemini_response(r, root, 1);
	json_decref(root);
	return rv;
}

/*
 * Each data line is a whole GenerateContentResponse. There is no end
 * marker: the stream is done once the chunk with finishReason arrived.
 */
static int
gemini_event(struct reply *r, const struct sse_event *ev)
{
	json_error_t error;
	json_t *root;
	int rv;

	if (ev->len == 0)
		return 0;
	if ((root = jload(ev->data, ev->len, &error)) == NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "stream event is not JSON: %s", error.text);
		return -1;
	}
	rv = gemini_response(r, root, 0);
	json_decref(root);
	return rv;
}

/*
 * A non-2xx answer. Gateways send HTML or nothing, which is still the
 * status's error. The non-SSE stream endpoint wraps the Status in a
 * one-element array.
 */
static void
gemini_classify(struct reply *r, uint32_t status, const char *body, size_t len)
{
	struct provider_err e;
	json_t *root;

	root = body != NULL ? jload(body, len, NULL) : NULL;
	provider_err_fields(root, &e);
	if (e.message != NULL || e.status != NULL || e.type != NULL ||
	    e.code != NULL)
		gemini_status(r, status, root);
	else
		reply_error(r, reply_class_for_status(status), status,
		    "HTTP %u", status);
	json_decref(root);
}

const struct provider_type provider_gemini = {
	.name = "gemini",
	.start = http_start,
	.stop = http_stop,
	.build = gemini_build,
	.parse = gemini_parse,
	.event = gemini_event,
	.classify = gemini_classify,
};
