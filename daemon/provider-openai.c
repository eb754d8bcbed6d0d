/*
 * provider-openai.c: the OpenAI Chat Completions adapter.
 *
 * The same wire format serves every OpenAI-compatible server (Groq,
 * Mistral, DeepSeek, OpenRouter, Ollama, vLLM, llama.cpp), so parsing
 * is lenient about the shapes they add, and Azure OpenAI reuses the
 * body, parse, event and classify code through the openai_* functions
 * declared in llmgated.h. Errors map onto llmgate's one set of classes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/* Longest provider message kept in a reply, in bytes. */
#define OPENAI_MSG_MAX 300

/* Stream state in reply->pstate: one allocation, so free() releases it. */
struct openai_stream {
	size_t refusal_len;
	char refusal[OPENAI_MSG_MAX + 1];
};

/*
 * finish_reason values (§8). Some also say the generation failed: those
 * carry the class to record, keeping the partial output.
 */
static const struct openai_finish {
	const char *name;
	enum llmgate_finish finish;
	enum llmgate_class cls;
	const char *why;
} openai_finishes[] = {
	{ "stop", LLMGATE_FINISH_STOP, LLMGATE_OK, NULL },
	{ "length", LLMGATE_FINISH_LENGTH, LLMGATE_OK, NULL },
	{ "model_length", LLMGATE_FINISH_LENGTH, LLMGATE_OK, NULL },
	{ "tool_calls", LLMGATE_FINISH_TOOL_CALLS, LLMGATE_OK, NULL },
	{ "function_call", LLMGATE_FINISH_TOOL_CALLS, LLMGATE_OK, NULL },
	{ "content_filter", LLMGATE_FINISH_CONTENT_FILTER,
	    LLMGATE_CONTENT_FILTER, "output stopped by the content filter" },
	{ "insufficient_system_resource", LLMGATE_FINISH_OTHER,
	    LLMGATE_OVERLOADED, "generation cut short for lack of capacity" },
	{ "error", LLMGATE_FINISH_OTHER, LLMGATE_SERVER_ERROR,
	    "generation failed upstream" },
};

/*
 * Error type or code names, for errors that come without a useful HTTP
 * status (inside a 200 stream). Anything else is a server_error.
 */
static const struct openai_errname {
	const char *name;
	enum llmgate_class cls;
} openai_errnames[] = {
	{ "rate_limit_exceeded", LLMGATE_RATE_LIMITED },
	{ "rate_limit_error", LLMGATE_RATE_LIMITED },
	{ "tokens", LLMGATE_RATE_LIMITED },
	{ "requests", LLMGATE_RATE_LIMITED },
	{ "overloaded_error", LLMGATE_OVERLOADED },
	{ "unavailable_error", LLMGATE_OVERLOADED },
	{ "server_error", LLMGATE_SERVER_ERROR },
	{ "api_error", LLMGATE_SERVER_ERROR },
	{ "timeout", LLMGATE_TIMEOUT },
	{ "timeout_error", LLMGATE_TIMEOUT },
	{ "invalid_request_error", LLMGATE_BAD_REQUEST },
	{ "authentication_error", LLMGATE_AUTH },
	{ "invalid_api_key", LLMGATE_AUTH },
	{ "permission_error", LLMGATE_PERMISSION },
	{ "not_found_error", LLMGATE_NOT_FOUND },
};

/* An error body's fields, with what only these servers add. */
struct openai_err {
	struct provider_err f;
	const char *inner; /* Azure innererror.code */
	int moderation;    /* OpenRouter: refused by moderation */
};

/* curl_slist_append keeps the old list on failure; so do we. */
static int
openai_header(struct http_req *hr, const char *line)
{
	struct curl_slist *l;

	if ((l = curl_slist_append(hr->headers, line)) == NULL)
		return -1;
	hr->headers = l;
	return 0;
}

static int
openai_is(const char *s, const char *name)
{
	return s != NULL && strcmp(s, name) == 0;
}

/*
 * Copy at most OPENAI_MSG_MAX bytes of s, never splitting a UTF-8
 * sequence, and mark a cut with "...".
 */
static void
openai_trunc(const char *s, size_t len, char *out, size_t outsz)
{
	size_t n = len;

	if (n > OPENAI_MSG_MAX) {
		n = OPENAI_MSG_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	if (n + 4 > outsz)
		n = outsz - 4;
	memcpy(out, s, n);
	if (n < len)
		memcpy(out + n, "...", 4);
	else
		out[n] = '\0';
}

/* DeepSeek sends blank lines before a body while a request is queued. */
static size_t
openai_skip_space(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && isspace((unsigned char)s[i]))
		i++;
	return i;
}

/*
 * A string member, NULL as "": invalid UTF-8 is refused, as jansson
 * refused it when the body was a tree, saying where rather than
 * dropping the field.
 */
static int
openai_str(struct jwrite *w, const char *key, const char *s, const char *where,
    char **cause)
{
	if (jwrite_utf8str(w, key, s != NULL ? s : "") != 0) {
		xasprintf(cause, "%s: %s is not valid UTF-8", where, key);
		return -1;
	}
	return 0;
}

/* "messages[i]" into where (32 bytes), for errors: snprintf() costs more. */
static void
openai_where(char *where, size_t i)
{
	char digits[24];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + i % 10);
	while ((i /= 10) != 0);
	memcpy(where, "messages[", 9);
	where += 9;
	while (n > 0)
		*where++ = digits[--n];
	memcpy(where, "]", 2);
}

static int
openai_message(struct jwrite *w, const struct llmgate_message *m, size_t i,
    char **cause)
{
	const struct llmgate_tool_call *tc;
	char where[32];
	size_t j;

	openai_where(where, i);
	jwrite_open(w, NULL, '{');
	switch (m->role) {
	case LLMGATE_ROLE_USER:
		jwrite_raw(w, "role", "\"user\"");
		if (openai_str(w, "content", m->content, where, cause) != 0)
			return -1;
		break;
	case LLMGATE_ROLE_ASSISTANT:
		jwrite_raw(w, "role", "\"assistant\"");
		/* A turn of only tool calls has content null, as returned. */
		if (m->content == NULL && m->ntool_calls != 0)
			jwrite_null(w, "content");
		else if (openai_str(w, "content", m->content, where, cause) !=
		    0)
			return -1;
		if (m->ntool_calls == 0)
			break;
		jwrite_open(w, "tool_calls", '[');
		for (j = 0; j < m->ntool_calls; j++) {
			tc = &m->tool_calls[j];
			jwrite_open(w, NULL, '{');
			if (openai_str(w, "id", tc->id, where, cause) != 0)
				return -1;
			jwrite_raw(w, "type", "\"function\"");
			jwrite_open(w, "function", '{');
			if (openai_str(w, "name", tc->name, where, cause) != 0)
				return -1;
			/* arguments is a string of JSON on this API. */
			if (openai_str(w, "arguments",
			        tc->arguments != NULL &&
			                *tc->arguments != '\0' ?
			            tc->arguments :
			            "{}",
			        where, cause) != 0)
				return -1;
			jwrite_close(w, '}');
			jwrite_close(w, '}');
		}
		jwrite_close(w, ']');
		break;
	case LLMGATE_ROLE_TOOL:
		/* Every compatible server rejects an unpaired result. */
		if (m->tool_call_id == NULL || *m->tool_call_id == '\0') {
			xasprintf(cause, "%s: tool result without tool_call_id",
			    where);
			return -1;
		}
		jwrite_raw(w, "role", "\"tool\"");
		if (openai_str(w, "tool_call_id", m->tool_call_id, where,
		        cause) != 0)
			return -1;
		if (openai_str(w, "content", m->content, where, cause) != 0)
			return -1;
		break;
	default:
		xasprintf(cause, "%s: unknown role %d", where, (int)m->role);
		return -1;
	}
	jwrite_close(w, '}');
	return 0;
}

/* 15 digits: temperature 0.3 goes out as 0.3, not 0.299999... */
#define OPENAI_DUMP (JSON_COMPACT | JSON_REAL_PRECISION(15))

static int
openai_tools(struct jwrite *w, const struct llmgate_request *req, char **cause)
{
	const struct llmgate_tool *t;
	json_error_t jerr;
	size_t i;
	int rc;

	jwrite_open(w, "tools", '[');
	for (i = 0; i < req->ntools; i++) {
		t = &req->tools[i];
		jwrite_open(w, NULL, '{');
		jwrite_raw(w, "type", "\"function\"");
		jwrite_open(w, "function", '{');
		if (t->name == NULL || *t->name == '\0') {
			xasprintf(cause, "tools[%zu]: no name", i);
			return -1;
		}
		if (openai_str(w, "name", t->name, "tool", cause) != 0)
			return -1;
		if (t->description != NULL &&
		    openai_str(w, "description", t->description, "tool",
		        cause) != 0)
			return -1;
		if (t->parameters != NULL &&
		    (rc = jwrite_loads(w, "parameters", t->parameters, 0,
		         OPENAI_DUMP, 1, &jerr)) != 0) {
			xasprintf(cause, "tool '%s': parameters are not %s",
			    t->name, rc == -1 ? "valid JSON" : "a JSON object");
			return -1;
		}
		jwrite_close(w, '}');
		jwrite_close(w, '}');
	}
	jwrite_close(w, ']');
	return 0;
}

/* A forced tool: {"type":"function","function":{"name":...}}. */
static void
openai_tool_choice(struct jwrite *w, const char *name)
{
	size_t len = w->b->len;
	int more = w->more;

	jwrite_open(w, "tool_choice", '{');
	jwrite_raw(w, "type", "\"function\"");
	jwrite_open(w, "function", '{');
	if (jwrite_utf8str(w, "name", name) != 0) {
		/* As the tree had it: no tool_choice, not an error. */
		jwrite_undo(w, len, more);
		return;
	}
	jwrite_close(w, '}');
	jwrite_close(w, '}');
}

/*
 * The Chat Completions body, written straight as text. model NULL
 * leaves it out (Azure: the deployment in the URL picks the model).
 *
 * The token cap goes out as max_tokens, not max_completion_tokens: it is
 * what vLLM, Ollama, Mistral, DeepSeek, OpenRouter and llama.cpp read and
 * OpenAI still accepts for non-reasoning models (§2.2, §6).
 */
static int
openai_body(struct jwrite *w, const char *model,
    const struct llmgate_request *req, char **cause)
{
	json_error_t jerr;
	size_t i;
	int rc;

	jwrite_open(w, NULL, '{');
	if (model != NULL &&
	    openai_str(w, "model", model, "request", cause) != 0)
		return -1;

	jwrite_open(w, "messages", '[');
	if (req->system != NULL) {
		jwrite_open(w, NULL, '{');
		jwrite_raw(w, "role", "\"system\"");
		if (openai_str(w, "content", req->system, "system", cause) != 0)
			return -1;
		jwrite_close(w, '}');
	}
	for (i = 0; i < req->nmessages; i++) {
		if (openai_message(w, &req->messages[i], i, cause) != 0)
			return -1;
	}
	jwrite_close(w, ']');

	if (req->ntools != 0 && openai_tools(w, req, cause) != 0)
		return -1;
	/* auto is the API's default with tools: not sent. */
	if (req->tool_name != NULL)
		openai_tool_choice(w, req->tool_name);
	else if (req->tool_choice != LLMGATE_TOOLS_AUTO)
		jwrite_str(w, "tool_choice",
		    llmgate_tool_choice_name(req->tool_choice));

	if (req->schema != NULL) {
		/*
		 * strict false: strict mode rejects common schemas (optional
		 * properties, no additionalProperties:false); llmgate checks
		 * the reply against the schema itself.
		 */
		jwrite_open(w, "response_format", '{');
		jwrite_raw(w, "type", "\"json_schema\"");
		jwrite_open(w, "json_schema", '{');
		jwrite_raw(w, "name", "\"response\"");
		if ((rc = jwrite_loads(w, "schema", req->schema, 0, OPENAI_DUMP,
		         1, &jerr)) == -1) {
			xasprintf(cause, "schema is not valid JSON: %s",
			    jerr.text);
			return -1;
		}
		if (rc != 0) {
			xasprintf(cause, "schema is not a JSON object");
			return -1;
		}
		jwrite_bool(w, "strict", 0);
		jwrite_close(w, '}');
		jwrite_close(w, '}');
	}

	if (req->has & LLMGATE_HAS_MAX_TOKENS)
		jwrite_int(w, "max_tokens", (long long)req->max_tokens);
	if (req->has & LLMGATE_HAS_TEMPERATURE)
		(void)jwrite_real(w, "temperature", req->temperature, 15);
	if (req->has & LLMGATE_HAS_TOP_P)
		(void)jwrite_real(w, "top_p", req->top_p, 15);
	if (req->has & LLMGATE_HAS_SEED)
		jwrite_int(w, "seed", (long long)req->seed);
	if (req->nstop != 0) {
		jwrite_open(w, "stop", '[');
		for (i = 0; i < req->nstop; i++) {
			if (jwrite_utf8str(w, NULL, req->stop[i]) != 0) {
				xasprintf(cause, "stop[%zu] is not valid UTF-8",
				    i);
				return -1;
			}
		}
		jwrite_close(w, ']');
	}
	if (req->stream) {
		jwrite_bool(w, "stream", 1);
		/* The usage chunk comes only when asked for (§2.4). */
		jwrite_raw(w, "stream_options", "{\"include_usage\":true}");
	}
	jwrite_close(w, '}');
	return 0;
}

/*
 * The body and the headers every flavour sends. The caller hands a zeroed
 * http_req and adds the URL and its own authentication header; on failure
 * hr->body and hr->headers are freed and NULL again.
 */
int
openai_build_body(struct http_req *hr, const char *model,
    const struct llmgate_request *req, char **cause)
{
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	jwrite_init(&w, &b, 0);
	if (openai_body(&w, model, req, cause) != 0) {
		buf_free(&b);
		goto fail;
	}
	hr->body = b.data;
	hr->body_len = b.len;

	if (openai_header(hr, "Content-Type: application/json") != 0)
		goto nomem;
	if (req->stream && openai_header(hr, "Accept: text/event-stream") != 0)
		goto nomem;
	return 0;

nomem:
	xasprintf(cause, "cannot allocate request headers");
fail:
	http_req_free(hr);
	return -1;
}

/* a (alen bytes) then b (blen), NUL-terminated: cheaper than xasprintf(). */
static char *
openai_join(const char *a, size_t alen, const char *b, size_t blen)
{
	char *s = xmalloc(alen + blen + 1);

	memcpy(s, a, alen);
	memcpy(s + alen, b, blen);
	s[alen + blen] = '\0';
	return s;
}

#define OPENAI_PATH "/chat/completions"
#define OPENAI_AUTH "Authorization: Bearer "

static int
openai_build(struct http_req *hr, const struct provider_conf *prov,
    const char *model, const struct llmgate_request *req, char **cause)
{
	char *auth;
	size_t n;
	int rc;

	if (prov->base_url == NULL) {
		xasprintf(cause, "provider '%s': no base_url", prov->name);
		return -1;
	}
	if (openai_build_body(hr, model, req, cause) != 0)
		return -1;

	n = strlen(prov->base_url);
	while (n > 0 && prov->base_url[n - 1] == '/')
		n--;
	hr->url =
	    openai_join(prov->base_url, n, OPENAI_PATH, sizeof OPENAI_PATH - 1);

	/* Local servers (Ollama, llama.cpp without --api-key) take no key. */
	if (prov->api_key != NULL) {
		auth = openai_join(OPENAI_AUTH, sizeof OPENAI_AUTH - 1,
		    prov->api_key, strlen(prov->api_key));
		rc = openai_header(hr, auth);
		free(auth);
		if (rc != 0) {
			xasprintf(cause, "cannot allocate request headers");
			goto fail;
		}
	}
	return 0;

fail:
	http_req_free(hr);
	return -1;
}

/*
 * Pick the fields out of an error body (provider_err_fields() reads every
 * shape) and what only these servers add: Azure's innererror.code and
 * OpenRouter's moderation metadata.
 */
static void
openai_err_fields(json_t *root, struct openai_err *e)
{
	json_t *meta;

	provider_err_fields(root, &e->f);
	e->inner = json_string_value(
	    json_object_get(json_object_get(e->f.obj, "innererror"), "code"));
	meta = json_object_get(e->f.obj, "metadata");
	e->moderation = json_object_get(meta, "reasons") != NULL ||
	    json_object_get(meta, "flagged_input") != NULL;
}

/*
 * §8: markers first, because one status means different things (a 429 is
 * a rate limit, spent quota or a request bigger than the whole TPM
 * bucket); then the status; inside a stream, the type or code names.
 */
static enum llmgate_class
openai_err_class(const struct openai_err *e, uint32_t status)
{
	const struct provider_err *f = &e->f;
	const char *msg = f->message != NULL ? f->message : "";
	size_t i;

	if (provider_err_context(f))
		return LLMGATE_CONTEXT_LENGTH;
	/*
	 * Not a bare "billing": Groq's rate-limit text links its billing
	 * page ("Need more tokens? Upgrade ... /settings/billing").
	 */
	if (openai_is(f->code, "insufficient_quota") ||
	    openai_is(f->type, "insufficient_quota") ||
	    openai_is(f->code, "credit_balance_exhausted") ||
	    openai_is(f->code, "billing_hard_limit_reached") ||
	    strcasestr(msg, "exceeded your current quota") != NULL ||
	    strcasestr(msg, "plan and billing details") != NULL ||
	    strcasestr(msg, "insufficient balance") != NULL ||
	    strcasestr(msg, "insufficient credits") != NULL)
		return LLMGATE_QUOTA_EXHAUSTED;
	if (openai_is(f->code, "content_filter") ||
	    openai_is(e->inner, "ResponsibleAIPolicyViolation") ||
	    openai_is(f->code, "invalid_prompt") ||
	    (status == 403 && e->moderation))
		return LLMGATE_CONTENT_FILTER;
	if (openai_is(f->code, "DeploymentNotFound") ||
	    openai_is(f->code, "model_not_found"))
		return LLMGATE_NOT_FOUND;

	if (status == 0)
		status = (uint32_t)f->http;
	if (status == 503 || status == 498) {
		/* Groq 498 is its flex tier being full. */
		if (status == 498 || strcasestr(msg, "overload") != NULL ||
		    strcasestr(msg, "slow down") != NULL ||
		    openai_is(f->type, "unavailable_error") ||
		    openai_is(f->type, "overloaded_error"))
			return LLMGATE_OVERLOADED;
		return LLMGATE_SERVER_ERROR;
	}
	if (status != 0)
		return reply_class_for_status(status);

	for (i = 0; i < sizeof openai_errnames / sizeof openai_errnames[0];
	     i++) {
		if (openai_is(f->code, openai_errnames[i].name))
			return openai_errnames[i].cls;
	}
	for (i = 0; i < sizeof openai_errnames / sizeof openai_errnames[0];
	     i++) {
		if (openai_is(f->type, openai_errnames[i].name))
			return openai_errnames[i].cls;
	}
	return LLMGATE_SERVER_ERROR;
}

/*
 * The wait hinted in a 429 message (§7 step 4): OpenAI and Groq say
 * "Please try again in 1.146s" or "in 84ms" or "in 7m54.336s" (Go
 * durations), Azure "Please retry after 7 seconds".
 */
static int64_t
openai_hint_ms(const char *msg)
{
	const char *p;
	char tok[32], *end;
	size_t n;
	long long v;

	if ((p = strcasestr(msg, "try again in ")) != NULL) {
		p += strlen("try again in ");
		n = strspn(p, "0123456789.hms");
		while (n > 0 && p[n - 1] == '.') /* the sentence's */
			n--;
		if (n == 0 || n >= sizeof tok)
			return -1;
		memcpy(tok, p, n);
		tok[n] = '\0';
		return header_duration_ms(tok);
	}
	if ((p = strcasestr(msg, "retry after ")) != NULL) {
		p += strlen("retry after ");
		if (!isdigit((unsigned char)*p))
			return -1;
		v = strtoll(p, &end, 10);
		if (strncmp(end, " second", 7) != 0 || v > 86400)
			return -1;
		return (int64_t)v * 1000;
	}
	return -1;
}

/*
 * Record an error from a parsed body (root may be NULL: not JSON). raw is
 * what to quote when there is no message field (llama.cpp's error line);
 * otherwise "HTTP N".
 */
static void
openai_error(struct reply *r, uint32_t status, json_t *root, const char *raw,
    size_t rawlen)
{
	struct openai_err e;
	char msg[OPENAI_MSG_MAX + 4];
	int64_t hint;

	openai_err_fields(root, &e);
	if (e.f.message != NULL && *e.f.message != '\0')
		openai_trunc(e.f.message, strlen(e.f.message), msg, sizeof msg);
	else if (raw != NULL && rawlen != 0)
		openai_trunc(raw, rawlen, msg, sizeof msg);
	else if (status != 0 && e.f.code != NULL)
		snprintf(msg, sizeof msg, "HTTP %u: %.64s", status, e.f.code);
	else if (status != 0)
		snprintf(msg, sizeof msg, "HTTP %u", status);
	else
		snprintf(msg, sizeof msg, "error event in the stream");
	reply_error(r, openai_err_class(&e, status), status, "%s", msg);

	if (r->rl.retry_after_ms < 0 && e.f.message != NULL &&
	    (hint = openai_hint_ms(e.f.message)) >= 0)
		r->rl.retry_after_ms = hint;
}

/*
 * Normalise a finish_reason (§8; unknown values are "other"). A server
 * that stops with tool calls but says "stop" (older Ollama, llama.cpp)
 * still finished for the tools.
 */
static void
openai_set_finish(struct reply *r, const char *reason)
{
	const struct openai_finish *f;
	size_t i;

	for (i = 0; i < sizeof openai_finishes / sizeof openai_finishes[0];
	     i++) {
		f = &openai_finishes[i];
		if (strcmp(f->name, reason) != 0)
			continue;
		r->finish = f->finish;
		if (r->finish == LLMGATE_FINISH_STOP && r->ntools != 0)
			r->finish = LLMGATE_FINISH_TOOL_CALLS;
		if (f->cls != LLMGATE_OK)
			reply_error(r, f->cls, 0, "finish_reason %s: %s",
			    f->name, f->why);
		return;
	}
	r->finish = LLMGATE_FINISH_OTHER;
}

/* A strict schema lets the model refuse instead of answering (§2.2). */
static void
openai_refusal(struct reply *r, const char *text)
{
	char msg[OPENAI_MSG_MAX + 4];

	openai_trunc(text, strlen(text), msg, sizeof msg);
	r->finish = LLMGATE_FINISH_CONTENT_FILTER;
	r->refused = 1;
	reply_error(r, LLMGATE_CONTENT_FILTER, 0, "refused: %s", msg);
}

/* Usage, where include_usage puts it or, on older Groq, in x_groq. */
static void
openai_usage(struct reply *r, json_t *root)
{
	json_t *u, *v;

	u = json_object_get(root, "usage");
	if (!json_is_object(u))
		u = json_object_get(json_object_get(root, "x_groq"), "usage");
	if (!json_is_object(u))
		return;
	v = json_object_get(u, "prompt_tokens");
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		r->input_tokens = (uint64_t)json_integer_value(v);
	v = json_object_get(u, "completion_tokens");
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		r->output_tokens = (uint64_t)json_integer_value(v);
}

/* A string, or (Mistral's reasoning models) an array of typed parts. */
static void
openai_content(struct reply *r, json_t *v)
{
	json_t *part, *text;
	size_t i;

	if (json_is_string(v)) {
		reply_text(r, json_string_value(v), json_string_length(v));
		return;
	}
	json_array_foreach(v, i, part) {
		if (!openai_is(json_string_value(json_object_get(part, "type")),
		        "text"))
			continue;
		text = json_object_get(part, "text");
		if (json_is_string(text))
			reply_text(r, json_string_value(text),
			    json_string_length(text));
	}
}

/*
 * One tool_calls[] item, whole or a stream fragment. Stream fragments are
 * matched by their index; a server that leaves it out gets the position.
 */
static void
openai_tool_call(struct reply *r, int pos, json_t *tc)
{
	json_t *fn, *v;
	const char *args = NULL;
	char *dumped = NULL;
	size_t len = 0;
	int64_t index = pos;

	/* Any number is only a key (reply_tool_delta). */
	v = json_object_get(tc, "index");
	if (json_is_integer(v))
		index = json_integer_value(v);
	fn = json_object_get(tc, "function");
	v = json_object_get(fn, "arguments");
	if (json_is_string(v)) {
		args = json_string_value(v);
		len = json_string_length(v);
	} else if (json_is_object(v)) {
		/* Some servers send arguments as an object, not a string. */
		dumped = json_dumps(v, JSON_COMPACT);
		args = dumped;
		len = dumped != NULL ? strlen(dumped) : 0;
	}
	reply_tool_delta(r, index, json_string_value(json_object_get(tc, "id")),
	    json_string_value(json_object_get(fn, "name")), args, len);
	free(dumped);
}

/* llmgate asks for one choice (n = 1); take the choice with index 0. */
static json_t *
openai_choice0(json_t *root)
{
	json_t *choices, *c, *idx;
	size_t i;

	choices = json_object_get(root, "choices");
	json_array_foreach(choices, i, c) {
		idx = json_object_get(c, "index");
		if (idx == NULL ||
		    (json_is_integer(idx) && json_integer_value(idx) == 0))
			return c;
	}
	return NULL;
}

/* A whole reply as a tree: whatever openai_fast() leaves. */
int
openai_parse_tree(struct reply *r, const char *js, size_t len)
{
	json_t *root, *choice, *msg, *calls, *call, *v, *tc;
	json_error_t jerr;
	const char *s;
	size_t i;
	int rv = -1;

	root = jload(js, len, &jerr);
	if (root == NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "response body is not JSON: %s", jerr.text);
		return -1;
	}
	/* Some gateways (OpenRouter) answer 200 with an error object. */
	v = json_object_get(root, "error");
	if (v != NULL && !json_is_null(v) &&
	    json_array_size(json_object_get(root, "choices")) == 0) {
		openai_error(r, 0, root, NULL, 0);
		goto fail;
	}
	choice = openai_choice0(root);
	msg = json_object_get(choice, "message");
	if (!json_is_object(msg)) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "response has no choices[0].message");
		goto fail;
	}

	openai_content(r, json_object_get(msg, "content"));
	calls = json_object_get(msg, "tool_calls");
	json_array_foreach(calls, i, tc)
		openai_tool_call(r, (int)i, tc);
	/* The legacy functions API: one call, no id. */
	v = json_object_get(msg, "function_call");
	if (r->ntools == 0 && json_is_object(v)) {
		call = json_pack("{sO}", "function", v);
		openai_tool_call(r, 0, call);
		json_decref(call);
	}

	v = json_object_get(choice, "finish_reason");
	if (json_is_string(v))
		openai_set_finish(r, json_string_value(v));
	else
		r->finish = r->ntools != 0 ? LLMGATE_FINISH_TOOL_CALLS :
		                             LLMGATE_FINISH_OTHER;
	s = json_string_value(json_object_get(msg, "refusal"));
	if (s != NULL && *s != '\0')
		openai_refusal(r, s);
	openai_usage(r, root);
	r->done = 1;
	rv = 0;
fail:
	json_decref(root);
	return rv;
}

/*
 * What nearly every reply and stream chunk is: one choice whose message
 * (or delta) holds text and no tool call or refusal; finish_reason; usage.
 * Read straight off the tokens, since building a tree for each of a
 * stream's hundreds of events cost more than everything else llmgated
 * does per event. Anything else (tool calls, a refusal, an error, content
 * parts, several choices, x_groq) is left to the tree, which reads all;
 * tests/fuzz/fuzz_openai checks the two read alike.
 */
struct openai_fast {
	struct jdoc d;
	int choice;       /* token of choices[0], or -1 */
	int body;         /* its message or delta object, or -1 */
	const char *text; /* content, not NUL-terminated; or NULL */
	size_t tlen;
	char *heap; /* unescaped content too long for scratch */
	char scratch[1024];
	int has_finish; /* finish_reason was a string */
	char finish[32];
	int64_t in; /* usage, -1 where not given */
	int64_t out;
};

/* 1 when js is the common kind, read into f; 0 for the tree. */
static int
openai_fast_read(struct openai_fast *f, const char *js, size_t len,
    const char *body)
{
	struct jdoc *d = &f->d;
	const char *s;
	size_t n;
	int64_t i64;
	int v, u;

	f->choice = f->body = -1;
	f->text = f->heap = NULL;
	f->has_finish = 0;
	f->in = f->out = -1;
	if (jdoc_parse(d, js, len) != 0 || d->tok[0].type != JDOC_OBJECT)
		return 0;
	v = jdoc_get(d, 0, "error");
	if ((v != -1 && !jdoc_is(d, v, "null")) ||
	    jdoc_get(d, 0, "x_groq") != -1)
		return 0;
	if ((v = jdoc_get(d, 0, "choices")) != -1) {
		if (d->tok[v].type != JDOC_ARRAY || d->tok[v].size > 1)
			return 0;
		if (d->tok[v].size == 1)
			f->choice = v + 1;
	}
	if (f->choice != -1) {
		if (d->tok[f->choice].type != JDOC_OBJECT)
			return 0;
		v = jdoc_get(d, f->choice, "index");
		if (v != -1 && (jdoc_int(d, v, &i64) != 0 || i64 != 0))
			return 0;
		f->body = jdoc_get(d, f->choice, body);
		if (f->body != -1 && d->tok[f->body].type != JDOC_OBJECT)
			return 0;
		v = jdoc_get(d, f->choice, "finish_reason");
		if (v != -1 && d->tok[v].type == JDOC_STRING) {
			s = jdoc_str(d, v, &n, f->finish, sizeof f->finish);
			if (s == NULL || n >= sizeof f->finish)
				return 0;
			memmove(f->finish, s, n);
			f->finish[n] = '\0';
			f->has_finish = 1;
		}
	}
	if (f->body != -1) {
		/* Tool calls (any form) and refusals: the tree. */
		v = jdoc_get(d, f->body, "tool_calls");
		if (v != -1 && !jdoc_is(d, v, "null") &&
		    !(d->tok[v].type == JDOC_ARRAY && d->tok[v].size == 0))
			return 0;
		v = jdoc_get(d, f->body, "function_call");
		if (v != -1 && !jdoc_is(d, v, "null"))
			return 0;
		v = jdoc_get(d, f->body, "refusal");
		if (v != -1 && !jdoc_is(d, v, "null"))
			return 0;
		v = jdoc_get(d, f->body, "content");
		if (v != -1 && !jdoc_is(d, v, "null")) {
			if (d->tok[v].type != JDOC_STRING)
				return 0;
			f->text = jdoc_str(d, v, &f->tlen, f->scratch,
			    sizeof f->scratch);
			if (f->text == NULL) {
				n = (size_t)(d->tok[v].end - d->tok[v].start);
				f->heap = xmalloc(n);
				f->text = jdoc_str(d, v, &f->tlen, f->heap, n);
			}
		}
	}
	if ((u = jdoc_get(d, 0, "usage")) != -1) {
		v = jdoc_get(d, u, "prompt_tokens");
		if (v != -1 && jdoc_int(d, v, &i64) == 0 && i64 >= 0)
			f->in = i64;
		v = jdoc_get(d, u, "completion_tokens");
		if (v != -1 && jdoc_int(d, v, &i64) == 0 && i64 >= 0)
			f->out = i64;
	}
	return 1;
}

/*
 * A whole reply (its "message"; done after it) or a stream chunk (its
 * "delta") the fast way, in the tree's order. 0, the reply untouched,
 * leaves it to openai_parse_tree() or openai_event_tree().
 */
static int
openai_fast(struct reply *r, const char *js, size_t len, int whole)
{
	struct openai_fast f;
	int ok;

	ok = openai_fast_read(&f, js, len, whole ? "message" : "delta") &&
	    (!whole || f.body != -1);
	if (ok) {
		if (f.text != NULL)
			reply_text(r, f.text, f.tlen);
		if (f.has_finish)
			openai_set_finish(r, f.finish);
		else if (whole)
			r->finish = LLMGATE_FINISH_OTHER;
		if (f.in != -1)
			r->input_tokens = (uint64_t)f.in;
		if (f.out != -1)
			r->output_tokens = (uint64_t)f.out;
		if (whole)
			r->done = 1;
	}
	free(f.heap);
	return ok;
}

/* An event as a tree: whatever openai_fast() leaves. */
int
openai_event_tree(struct reply *r, const char *js, size_t n)
{
	struct openai_stream *st;
	json_t *root, *choice, *delta, *calls, *v, *tc;
	json_error_t jerr;
	size_t i;

	root = jload(js, n, &jerr);
	if (root == NULL || !json_is_object(root)) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "stream event is not a JSON object: %s",
		    root == NULL ? jerr.text : "wrong type");
		json_decref(root);
		return -1;
	}
	/* An error chunk, maybe with a finish_reason "error" choice. */
	v = json_object_get(root, "error");
	if (v != NULL && !json_is_null(v)) {
		openai_error(r, 0, root, NULL, 0);
		json_decref(root);
		return -1;
	}

	/* Azure's first chunk has no choices, only prompt_filter_results. */
	choice = openai_choice0(root);
	delta = json_object_get(choice, "delta");
	openai_content(r, json_object_get(delta, "content"));
	calls = json_object_get(delta, "tool_calls");
	json_array_foreach(calls, i, tc)
		openai_tool_call(r, (int)i, tc);
	v = json_object_get(delta, "refusal");
	if (json_is_string(v) && json_string_length(v) != 0) {
		/* Kept for the error message only, so a bounded copy. */
		if ((st = r->pstate) == NULL)
			st = r->pstate = xcalloc(1, sizeof *st);
		n = json_string_length(v);
		if (n > OPENAI_MSG_MAX - st->refusal_len) {
			n = OPENAI_MSG_MAX - st->refusal_len;
			while (n > 0 &&
			    ((unsigned char)json_string_value(v)[n] & 0xc0) ==
			        0x80)
				n--;
		}
		memcpy(st->refusal + st->refusal_len, json_string_value(v), n);
		st->refusal_len += n;
		st->refusal[st->refusal_len] = '\0';
	}
	v = json_object_get(choice, "finish_reason");
	if (json_is_string(v))
		openai_set_finish(r, json_string_value(v));

	/* The usage chunk (choices []), or usage on every chunk (vLLM). */
	openai_usage(r, root);
	json_decref(root);
	return 0;
}

int
openai_event(struct reply *r, const struct sse_event *ev)
{
	struct openai_stream *st;
	json_t *root;
	size_t off, n;

	if (r->done || ev->data == NULL)
		return 0;
	off = openai_skip_space(ev->data, ev->len);
	n = ev->len - off;
	while (n > 0 && isspace((unsigned char)ev->data[off + n - 1]))
		n--;

	/* llama.cpp: "error: {json}"; others may name the event "error". */
	if (ev->error_field ||
	    (ev->event != NULL && strcmp(ev->event, "error") == 0)) {
		root = jload(ev->data + off, n, NULL);
		openai_error(r, 0, root, ev->data + off, n);
		json_decref(root);
		return -1;
	}
	if (n == 0)
		return 0;
	if (n == 6 && memcmp(ev->data + off, "[DONE]", 6) == 0) {
		st = r->pstate;
		if (st != NULL && st->refusal_len != 0)
			openai_refusal(r, st->refusal);
		r->done = 1;
		return 0;
	}

	if (openai_fast(r, ev->data + off, n, 0))
		return 0;
	return openai_event_tree(r, ev->data + off, n);
}

int
openai_parse(struct reply *r, const char *body, size_t len)
{
	size_t off;

	off = openai_skip_space(body, len);
	if (off == len) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0, "empty response body");
		return -1;
	}
	if (openai_fast(r, body + off, len - off, 1))
		return 0;
	return openai_parse_tree(r, body + off, len - off);
}

void
openai_classify(struct reply *r, uint32_t status, const char *body, size_t len)
{
	json_t *root = NULL;
	size_t off;

	/* Gateways answer with HTML or nothing: then the status decides. */
	off = body != NULL ? openai_skip_space(body, len) : len;
	if (off < len)
		root = jload(body + off, len - off, NULL);
	openai_error(r, status, root, NULL, 0);
	json_decref(root);
}

const struct provider_type provider_openai = {
	.name = "openai",
	.start = http_start,
	.stop = http_stop,
	.build = openai_build,
	.parse = openai_parse,
	.event = openai_event,
	.classify = openai_classify,
};
