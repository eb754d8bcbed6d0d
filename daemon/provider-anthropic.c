/*
 * provider-anthropic.c: the Anthropic Messages API adapter. Builds
 * POST {base_url}/messages from an llmgate request, reads the reply as one
 * JSON body or as its SSE stream, and maps Anthropic's error bodies onto
 * llmgate's error classes.
 *
 * Structured output (req->schema) uses the portable tool trick: the schema
 * becomes the input_schema of one reserved tool that tool_choice forces,
 * and that tool's input comes back to the caller as reply text, never as a
 * tool call. parse() and event() do not see the request, so the reserved
 * tool names below are the whole convention:
 *   llmgate_json		the schema is an object schema; the tool's input
 *				is the reply.
 *   llmgate_json_value	Anthropic only accepts object input schemas, so
 *				any other schema is wrapped as the property
 *				"value" of an object; its value is the reply.
 * A caller's tool may not use either name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define ANTHROPIC_URL     "https://api.anthropic.com/v1"
#define ANTHROPIC_VERSION "2023-06-01"

/*
 * Anthropic requires max_tokens and has no "model maximum" default. 4096 is
 * the largest value every current Claude model accepts (Claude 3 Haiku
 * caps output there), so a request without one never fails for it.
 */
#define ANTHROPIC_MAX_TOKENS 4096

#define ANTHROPIC_JSON_TOOL  "llmgate_json"
#define ANTHROPIC_VALUE_TOOL "llmgate_json_value"

/* Whitespace, as Anthropic's blank-text checks see it. */
#define ANTHROPIC_SPACE " \t\r\n\f\v"

/* Content blocks tracked per streamed message; more is a parse error. */
#define ANTHROPIC_MAX_BLOCKS 256
/* Cap on the assembled input of a wrapped (llmgate_json_value) reply. */
#define ANTHROPIC_MAX_VALUE (16u * 1024 * 1024)
/* Error messages handed to the caller are cut here (bytes). */
#define ANTHROPIC_MAX_MESSAGE 300

/* What a content block index of the stream turned out to be. */
enum anthropic_kind {
	ANTHROPIC_SKIP = 0, /* unknown, thinking, server tools, stopped */
	ANTHROPIC_TEXT,
	ANTHROPIC_TOOL,
	ANTHROPIC_JSON, /* llmgate_json: fragments are reply text */
	ANTHROPIC_VALUE /* llmgate_json_value: assembled, unwrapped */
};

struct anthropic_block {
	enum anthropic_kind kind;
	int tool;   /* ANTHROPIC_TOOL: the reply's tool index */
	size_t off; /* ANTHROPIC_JSON: its start in reply->text */
};

/*
 * Stream state in reply->pstate. reply_free() releases it with one free(),
 * so it is a single allocation: the value buffer is a flexible array that
 * grows by reallocating the whole state.
 */
struct anthropic_stream {
	int ntools;
	int json_seen;
	struct anthropic_block blocks[ANTHROPIC_MAX_BLOCKS];
	size_t vlen;
	size_t vcap;
	char value[];
};

static const struct {
	const char *reason;
	enum llmgate_finish finish;
} anthropic_finishes[] = {
	{ "end_turn", LLMGATE_FINISH_STOP },
	{ "stop_sequence", LLMGATE_FINISH_STOP },
	{ "max_tokens", LLMGATE_FINISH_LENGTH },
	{ "model_context_window_exceeded", LLMGATE_FINISH_LENGTH },
	{ "tool_use", LLMGATE_FINISH_TOOL_CALLS },
	{ "refusal", LLMGATE_FINISH_CONTENT_FILTER },
	{ "pause_turn", LLMGATE_FINISH_OTHER },
};

static const struct {
	const char *type;
	enum llmgate_class cls;
} anthropic_errors[] = {
	{ "invalid_request_error", LLMGATE_BAD_REQUEST },
	{ "authentication_error", LLMGATE_AUTH },
	{ "permission_error", LLMGATE_PERMISSION },
	{ "not_found_error", LLMGATE_NOT_FOUND },
	{ "request_too_large", LLMGATE_CONTEXT_LENGTH },
	{ "rate_limit_error", LLMGATE_RATE_LIMITED },
	{ "billing_error", LLMGATE_QUOTA_EXHAUSTED },
	{ "conflict_error", LLMGATE_SERVER_ERROR },
	{ "api_error", LLMGATE_SERVER_ERROR },
	{ "overloaded_error", LLMGATE_OVERLOADED },
	{ "timeout_error", LLMGATE_TIMEOUT },
};

/*
 * Messages of a 400 that mean the prompt does not fit, beyond the ones
 * every adapter knows (provider_err_context()).
 */
static const char *anthropic_context_markers[] = {
	"too many tokens",
};

/* Billing and spend caps: no retry helps, a fallback does. */
static const char *anthropic_quota_markers[] = {
	"credit balance is too low",
	"spend limit",
	"usage limit",
};

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof(a)[0])
#endif

static int anthropic_build(struct http_req *, const struct provider_conf *,
    const char *, const struct llmgate_request *, char **);
static int anthropic_parse(struct reply *, const char *, size_t);
static int anthropic_event(struct reply *, const struct sse_event *);
static void anthropic_classify(struct reply *, uint32_t, const char *, size_t);

const struct provider_type provider_anthropic = {
	.name = "anthropic",
	.start = http_start,
	.stop = http_stop,
	.build = anthropic_build,
	.parse = anthropic_parse,
	.event = anthropic_event,
	.classify = anthropic_classify,
};

/* Reals with jansson's default 17 digits, as when the body was a tree. */
#define ANTHROPIC_DUMP JSON_COMPACT

/*
 * A string member (an element: key NULL) of n bytes; -1 with a cause
 * where it is NULL or not UTF-8, which jansson refused in the tree.
 */
static int
anthropic_strn(struct jwrite *w, const char *key, const char *s, size_t n,
    const char *what, char **cause)
{
	if (s == NULL || jwrite_utf8strn(w, key, s, n) != 0) {
		xasprintf(cause, "%s is not valid UTF-8", what);
		return -1;
	}
	return 0;
}

static int
anthropic_str(struct jwrite *w, const char *key, const char *s,
    const char *what, char **cause)
{
	return anthropic_strn(w, key, s, s != NULL ? strlen(s) : 0, what,
	    cause);
}

/*
 * JSON text the caller gave us; it must be an object. typed: a tool's
 * input schema, given "type": "object" where it has no type (tool inputs
 * are always objects; a schema that says nothing says so).
 */
static int
anthropic_object(struct jwrite *w, const char *key, const char *text, int typed,
    const char *what, char **cause)
{
	json_error_t jerr;
	int rc;

	rc = jwrite_loads_member(w, key, text, 0, ANTHROPIC_DUMP, 1,
	    typed ? "type" : NULL, "object", &jerr);
	if (rc == -1)
		xasprintf(cause, "%s is not valid JSON: %s (line %d)", what,
		    jerr.text, jerr.line);
	else if (rc != 0)
		xasprintf(cause, "%s is not a JSON object", what);
	return rc != 0 ? -1 : 0;
}

/*
 * After a name written earlier in the same object failed (bad, its cause
 * in *cause), the JSON written after it: its error wins, as it was
 * checked first when the body was a tree.
 */
static int
anthropic_first(int bad, int rc, char **cause, char *json_cause)
{
	if (rc != 0) {
		if (bad)
			free(*cause);
		*cause = json_cause;
		return -1;
	}
	return bad ? -1 : 0;
}

/* Anthropic refuses text blocks that are empty or only whitespace. */
static int
anthropic_blank(const char *text)
{
	return text == NULL || text[strspn(text, ANTHROPIC_SPACE)] == '\0';
}

/* Blocks of a message: Anthropic gets none for blank text. */
static size_t
anthropic_nblocks(const struct llmgate_message *m)
{
	switch (m->role) {
	case LLMGATE_ROLE_USER:
		return !anthropic_blank(m->content);
	case LLMGATE_ROLE_ASSISTANT:
		return !anthropic_blank(m->content) + m->ntool_calls;
	default:
		return 1; /* a tool result, or an error */
	}
}

/* The turn a message goes into; NULL for an unknown role. */
static const char *
anthropic_role(const struct llmgate_message *m)
{
	switch (m->role) {
	case LLMGATE_ROLE_USER:
	case LLMGATE_ROLE_TOOL:
		return "user";
	case LLMGATE_ROLE_ASSISTANT:
		return "assistant";
	default:
		return NULL;
	}
}

/*
 * A text block, or (plain) the bare string of a turn of one text block.
 * A final assistant turn is a prefill (how a cut stream is resumed), and
 * Anthropic refuses one ending in whitespace with a 400: trim drops it.
 */
static int
anthropic_text(struct jwrite *w, const char *text, int trim, int plain,
    char **cause)
{
	size_t len = strlen(text);

	if (trim) {
		/* Text blocks are never blank, so something is left. */
		while (
		    len > 0 && strchr(ANTHROPIC_SPACE, text[len - 1]) != NULL)
			len--;
	}
	if (plain)
		return anthropic_strn(w, "content", text, len,
		    "message content", cause);
	jwrite_open(w, NULL, '{');
	jwrite_raw(w, "type", "\"text\"");
	if (anthropic_strn(w, "text", text, len, "message content", cause) != 0)
		return -1;
	jwrite_close(w, '}');
	return 0;
}

/* Tool arguments are JSON text; Anthropic wants the parsed object back. */
static int
anthropic_tool_use(struct jwrite *w, const struct llmgate_tool_call *tc,
    char **cause)
{
	const char *p = tc->arguments;
	char *json_cause = NULL;
	int bad, rc = 0;

	if (tc->id == NULL || tc->name == NULL) {
		xasprintf(cause, "assistant tool call without id or name");
		return -1;
	}
	jwrite_open(w, NULL, '{');
	jwrite_raw(w, "type", "\"tool_use\"");
	bad = anthropic_str(w, "id", tc->id, "tool call id", cause) != 0 ||
	    anthropic_str(w, "name", tc->name, "tool call name", cause) != 0;
	if (p == NULL || p[strspn(p, " \t\r\n")] == '\0')
		jwrite_raw(w, "input", "{}");
	else
		rc = anthropic_object(w, "input", p, 0, "tool call arguments",
		    &json_cause);
	jwrite_close(w, '}');
	return anthropic_first(bad, rc, cause, json_cause);
}

static int
anthropic_tool_result(struct jwrite *w, const struct llmgate_message *m,
    char **cause)
{
	if (m->tool_call_id == NULL) {
		xasprintf(cause, "tool message without tool_call_id");
		return -1;
	}
	jwrite_open(w, NULL, '{');
	jwrite_raw(w, "type", "\"tool_result\"");
	if (anthropic_str(w, "tool_use_id", m->tool_call_id, "tool_call_id",
	        cause) != 0 ||
	    (m->content != NULL &&
	        anthropic_str(w, "content", m->content, "tool message content",
	            cause) != 0))
		return -1;
	jwrite_close(w, '}');
	return 0;
}

/* The blocks of message i; trim: its text ends the final turn. */
static int
anthropic_blocks(struct jwrite *w, const struct llmgate_message *m, size_t i,
    int trim, char **cause)
{
	size_t j;

	switch (m->role) {
	case LLMGATE_ROLE_USER:
	case LLMGATE_ROLE_ASSISTANT:
		if (!anthropic_blank(m->content) &&
		    anthropic_text(w, m->content, trim, 0, cause) != 0)
			return -1;
		for (j = 0;
		     m->role == LLMGATE_ROLE_ASSISTANT && j < m->ntool_calls;
		     j++) {
			if (anthropic_tool_use(w, &m->tool_calls[j], cause) !=
			    0)
				return -1;
		}
		return 0;
	case LLMGATE_ROLE_TOOL:
		return anthropic_tool_result(w, m, cause);
	default:
		xasprintf(cause, "message %zu has an unknown role", i);
		return -1;
	}
}

/*
 * The messages. Anthropic wants user and assistant to alternate, so
 * messages of one role in a row make one turn (consecutive tool results
 * become one user turn); a message without blocks is left out. A turn of
 * one text block is sent as the plain string form.
 */
static int
anthropic_messages(struct jwrite *w, const struct llmgate_request *req,
    char **cause)
{
	const struct llmgate_message *m = req->messages;
	size_t i, j, k, last, nblocks, n = req->nmessages;
	const char *role;
	int trim, turns = 0;

	jwrite_open(w, "messages", '[');
	for (i = 0; i < n; i = j) {
		j = i + 1;
		if (anthropic_nblocks(&m[i]) == 0)
			continue;
		if ((role = anthropic_role(&m[i])) == NULL)
			return anthropic_blocks(w, &m[i], i, 0, cause);
		/* The turn: messages i to last, nblocks blocks in all. */
		last = i;
		nblocks = anthropic_nblocks(&m[i]);
		for (; j < n; j++) {
			if (anthropic_nblocks(&m[j]) == 0)
				continue;
			if (anthropic_role(&m[j]) != role)
				break;
			last = j;
			nblocks += anthropic_nblocks(&m[j]);
		}
		/* The final turn, ending in assistant text: a prefill. */
		trim = j == n && m[last].role == LLMGATE_ROLE_ASSISTANT &&
		    m[last].ntool_calls == 0;
		turns++;
		jwrite_open(w, NULL, '{');
		jwrite_str(w, "role", role);
		/* One block, and text: the plain string form. */
		if (nblocks == 1 &&
		    (m[i].role == LLMGATE_ROLE_USER ||
		        (m[i].role == LLMGATE_ROLE_ASSISTANT &&
		            m[i].ntool_calls == 0))) {
			if (anthropic_text(w, m[i].content, trim, 1, cause) !=
			    0)
				return -1;
		} else {
			jwrite_open(w, "content", '[');
			for (k = i; k <= last; k++) {
				if (anthropic_blocks(w, &m[k], k,
				        trim && k == last, cause) != 0)
					return -1;
			}
			jwrite_close(w, ']');
		}
		jwrite_close(w, '}');
	}
	if (turns == 0) {
		xasprintf(cause, "no message with content to send");
		return -1;
	}
	jwrite_close(w, ']');
	return 0;
}

/* An object schema of type "object", told without a tree. */
static int
anthropic_object_schema(const char *text)
{
	struct jdoc d;

	return jdoc_parse(&d, text, strlen(text)) == 0 &&
	    d.tok[0].type == JDOC_OBJECT &&
	    jdoc_streq(&d, jdoc_get(&d, 0, "type"), "object");
}

/*
 * The forced tool for req->schema; *name is its name. An object schema
 * (or one without type but with properties) is used as it is; anything
 * else is wrapped as the "value" property, since input_schema must have
 * type "object".
 */
static int
anthropic_schema_tool(struct jwrite *w, const char **name, const char *text,
    char **cause)
{
	json_error_t jerr;
	json_t *schema = NULL, *props, *type;
	const char *desc;
	int wrapped = 0;

	/* Most schemas: an object schema, written without a tree. */
	if (!anthropic_object_schema(text)) {
		if ((schema = json_loads(text, JSON_DECODE_ANY, &jerr)) ==
		    NULL) {
			xasprintf(cause,
			    "schema is not valid JSON: %s (line %d)", jerr.text,
			    jerr.line);
			return -1;
		}
		type = json_object_get(schema, "type");
		if (json_is_string(type) &&
		    strcmp(json_string_value(type), "object") == 0)
			wrapped = 0;
		else if (type == NULL &&
		    json_object_get(schema, "properties") != NULL) {
			json_object_set_new(schema, "type",
			    json_string("object"));
			wrapped = 0;
		} else {
			props = json_object();
			json_object_set_new(props, "value", schema);
			schema = json_object();
			json_object_set_new(schema, "type",
			    json_string("object"));
			json_object_set_new(schema, "properties", props);
			json_object_set_new(schema, "required",
			    json_pack("[s]", "value"));
			wrapped = 1;
		}
	}
	if (wrapped) {
		*name = ANTHROPIC_VALUE_TOOL;
		desc = "Reply by calling this tool once, with the complete "
		       "answer as \"value\".";
	} else {
		*name = ANTHROPIC_JSON_TOOL;
		desc = "Reply by calling this tool once; its input is the "
		       "complete answer.";
	}
	jwrite_open(w, NULL, '{');
	jwrite_str(w, "name", *name);
	jwrite_str(w, "description", desc);
	if (schema != NULL) {
		jwrite_json(w, "input_schema", schema);
		json_decref(schema);
	} else if (jwrite_loads(w, "input_schema", text, JSON_DECODE_ANY,
	               ANTHROPIC_DUMP, 1, &jerr) != 0) {
		/* Not reached: jdoc_parse took it as an object. */
		xasprintf(cause, "schema is not valid JSON: %s (line %d)",
		    jerr.text, jerr.line);
		return -1;
	}
	jwrite_close(w, '}');
	return 0;
}

static int
anthropic_tool(struct jwrite *w, const struct llmgate_tool *t, size_t i,
    char **cause)
{
	char *json_cause = NULL;
	int bad, rc = 0;

	if (t->name == NULL) {
		xasprintf(cause, "tool %zu has no name", i);
		return -1;
	}
	if (strcmp(t->name, ANTHROPIC_JSON_TOOL) == 0 ||
	    strcmp(t->name, ANTHROPIC_VALUE_TOOL) == 0) {
		xasprintf(cause, "tool name %s is reserved", t->name);
		return -1;
	}
	jwrite_open(w, NULL, '{');
	bad = anthropic_str(w, "name", t->name, "tool name", cause) != 0 ||
	    (t->description != NULL &&
	        anthropic_str(w, "description", t->description,
	            "tool description", cause) != 0);
	if (t->parameters == NULL)
		jwrite_raw(w, "input_schema", "{\"type\":\"object\"}");
	else
		rc = anthropic_object(w, "input_schema", t->parameters, 1,
		    "tool parameters", &json_cause);
	jwrite_close(w, '}');
	return anthropic_first(bad, rc, cause, json_cause);
}

/* tool_choice {"type": type, "name": name}, or {"type": type}. */
static void
anthropic_choice(struct jwrite *w, const char *type, const char *name)
{
	size_t len = w->b->len;
	int more = w->more;

	jwrite_open(w, "tool_choice", '{');
	jwrite_str(w, "type", type);
	/* A name that is not UTF-8: none, as the tree had it. */
	if (name != NULL && jwrite_utf8str(w, "name", name) != 0) {
		jwrite_undo(w, len, more);
		return;
	}
	jwrite_close(w, '}');
}

static int
anthropic_tools(struct jwrite *w, const struct llmgate_request *req,
    char **cause)
{
	const char *schema_tool = NULL;
	size_t i;

	if (req->ntools == 0 && req->schema == NULL)
		return 0;
	jwrite_open(w, "tools", '[');
	for (i = 0; i < req->ntools; i++) {
		if (anthropic_tool(w, &req->tools[i], i, cause) != 0)
			return -1;
	}
	if (req->schema != NULL && req->tool_choice != LLMGATE_TOOLS_AUTO) {
		/* The schema is itself a tool the reply is forced to. */
		xasprintf(cause,
		    "tool_choice %s cannot be combined with a "
		    "schema on an Anthropic target",
		    llmgate_tool_choice_name(req->tool_choice));
		return -1;
	}
	if (req->schema != NULL &&
	    anthropic_schema_tool(w, &schema_tool, req->schema, cause) != 0)
		return -1;
	jwrite_close(w, ']');
	if (req->tool_name != NULL)
		anthropic_choice(w, "tool", req->tool_name);
	else if (req->tool_choice == LLMGATE_TOOLS_REQUIRED)
		anthropic_choice(w, "any", NULL);
	else if (req->tool_choice == LLMGATE_TOOLS_NONE)
		anthropic_choice(w, "none", NULL);
	else if (schema_tool != NULL)
		anthropic_choice(w, "tool", schema_tool);
	return 0;
}

/* The Messages body, written straight as text. */
static int
anthropic_body(struct jwrite *w, const char *model,
    const struct llmgate_request *req, char **cause)
{
	double temp;
	size_t i;

	jwrite_open(w, NULL, '{');
	if (anthropic_str(w, "model", model, "model", cause) != 0)
		return -1;
	jwrite_int(w, "max_tokens",
	    (req->has & LLMGATE_HAS_MAX_TOKENS) ? (long long)req->max_tokens :
	                                          ANTHROPIC_MAX_TOKENS);
	if (req->system != NULL && *req->system != '\0' &&
	    anthropic_str(w, "system", req->system, "system prompt", cause) !=
	        0)
		return -1;
	if (anthropic_messages(w, req, cause) != 0 ||
	    anthropic_tools(w, req, cause) != 0)
		return -1;

	/*
	 * Anthropic's temperature range is 0-1 where OpenAI's is 0-2; clamp,
	 * so a chain that falls back here does not end in a 400.
	 */
	if (req->has & LLMGATE_HAS_TEMPERATURE) {
		temp = req->temperature;
		if (temp > 1.0)
			temp = 1.0;
		if (temp < 0.0)
			temp = 0.0;
		(void)jwrite_real(w, "temperature", temp, 0);
	}
	if (req->has & LLMGATE_HAS_TOP_P)
		(void)jwrite_real(w, "top_p", req->top_p, 0);
	/* LLMGATE_HAS_SEED: Anthropic has no seed; it is dropped. */
	if (req->nstop != 0) {
		jwrite_open(w, "stop_sequences", '[');
		for (i = 0; i < req->nstop; i++) {
			if (anthropic_str(w, NULL, req->stop[i],
			        "stop sequence", cause) != 0)
				return -1;
		}
		jwrite_close(w, ']');
	}
	if (req->stream)
		jwrite_bool(w, "stream", 1);
	jwrite_close(w, '}');
	return 0;
}

static int
anthropic_build(struct http_req *hr, const struct provider_conf *prov,
    const char *model, const struct llmgate_request *req, char **cause)
{
	struct buf body = { NULL, 0, 0 };
	struct jwrite w;
	const char *base;
	char *hdr;
	size_t len;

	jwrite_init(&w, &body, 0);
	if (anthropic_body(&w, model, req, cause) != 0) {
		buf_free(&body);
		return -1;
	}

	base = prov->base_url != NULL ? prov->base_url : ANTHROPIC_URL;
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		len--;
	xasprintf(&hr->url, "%.*s/messages", (int)len, base);
	hr->body = body.data;
	hr->body_len = body.len;
	hr->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (prov->api_key != NULL && *prov->api_key != '\0') {
		xasprintf(&hdr, "x-api-key: %s", prov->api_key);
		hr->headers = curl_slist_append(hr->headers, hdr);
		free(hdr);
	}
	hr->headers = curl_slist_append(hr->headers,
	    "anthropic-version: " ANTHROPIC_VERSION);
	if (req->stream)
		hr->headers =
		    curl_slist_append(hr->headers, "Accept: text/event-stream");
	return 0;
}

static int
anthropic_marked(const char *msg, const char **markers, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcasestr(msg, markers[i]) != NULL)
			return 1;
	}
	return 0;
}

/*
 * The class for an error object: message markers first (they say more
 * than the type), then the type, then the HTTP status. A stream error
 * arrives with status 200, so an unknown type there is a server one.
 */
static enum llmgate_class
anthropic_error_class(const struct provider_err *e, uint32_t status)
{
	const char *type, *msg;
	size_t i;

	if (provider_err_context(e))
		return LLMGATE_CONTEXT_LENGTH;
	type = e->type != NULL ? e->type : "";
	msg = e->message != NULL ? e->message : "";
	if (strcmp(type, "invalid_request_error") == 0 &&
	    anthropic_marked(msg, anthropic_context_markers,
	        nitems(anthropic_context_markers)))
		return LLMGATE_CONTEXT_LENGTH;
	if ((strcmp(type, "invalid_request_error") == 0 ||
	        strcmp(type, "rate_limit_error") == 0 ||
	        strcmp(type, "permission_error") == 0) &&
	    anthropic_marked(msg, anthropic_quota_markers,
	        nitems(anthropic_quota_markers)))
		return LLMGATE_QUOTA_EXHAUSTED;
	for (i = 0; i < nitems(anthropic_errors); i++) {
		if (strcmp(type, anthropic_errors[i].type) == 0)
			return anthropic_errors[i].cls;
	}
	/* Compatible servers put the HTTP status in an error's code. */
	if (status < 400)
		status = (uint32_t)e->http;
	if (status < 400)
		return LLMGATE_SERVER_ERROR;
	return reply_class_for_status(status);
}

/* Record an error with its message cut short, on a UTF-8 boundary. */
static void
anthropic_error(struct reply *r, enum llmgate_class cls, uint32_t status,
    const char *msg)
{
	size_t len = strlen(msg);
	int cut = 0;

	if (len > ANTHROPIC_MAX_MESSAGE) {
		len = ANTHROPIC_MAX_MESSAGE;
		while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
			len--;
		cut = 1;
	}
	reply_error(r, cls, status, "%.*s%s", (int)len, msg, cut ? "..." : "");
}

/*
 * An error body or stream event: Anthropic's
 * {"type":"error","error":{type,message}}, or another server's shape
 * (llama.cpp's Anthropic endpoint answers in OpenAI's). Gateways
 * (Cloudflare, proxies) answer with HTML or nothing: then the status
 * decides.
 */
static void
anthropic_error_root(struct reply *r, json_t *root, uint32_t status)
{
	struct provider_err e;
	enum llmgate_class cls;
	const char *msg;
	char buf[32];

	provider_err_fields(root, &e);
	if ((e.message == NULL || *e.message == '\0') && e.type == NULL &&
	    e.code == NULL) {
		if ((cls = reply_class_for_status(status)) == LLMGATE_OK)
			cls = LLMGATE_SERVER_ERROR;
		if (status != 0)
			snprintf(buf, sizeof buf, "HTTP %u", status);
		else
			snprintf(buf, sizeof buf, "stream error event");
		anthropic_error(r, cls, status, buf);
		return;
	}
	msg = e.message;
	if (msg == NULL || *msg == '\0')
		msg = e.type != NULL ? e.type : "error without a message";
	anthropic_error(r, anthropic_error_class(&e, status), status, msg);
}

static void
anthropic_classify(struct reply *r, uint32_t status, const char *body,
    size_t len)
{
	json_t *root = NULL;

	if (body != NULL && len != 0)
		root = jload(body, len, NULL);
	anthropic_error_root(r, root, status);
	json_decref(root);
}

static void
anthropic_usage(struct reply *r, json_t *usage)
{
	json_t *in, *out;
	uint64_t sum;

	/* input_tokens is only the uncached part; cache counts add to it. */
	in = json_object_get(usage, "input_tokens");
	if (json_is_integer(in) && json_integer_value(in) >= 0) {
		/* Unsigned sums: a hostile body must not overflow them. */
		sum = (uint64_t)json_integer_value(in);
		in = json_object_get(usage, "cache_creation_input_tokens");
		if (json_is_integer(in) && json_integer_value(in) > 0)
			sum += (uint64_t)json_integer_value(in);
		in = json_object_get(usage, "cache_read_input_tokens");
		if (json_is_integer(in) && json_integer_value(in) > 0)
			sum += (uint64_t)json_integer_value(in);
		r->input_tokens = sum;
	}
	out = json_object_get(usage, "output_tokens");
	if (json_is_integer(out) && json_integer_value(out) >= 0)
		r->output_tokens = (uint64_t)json_integer_value(out);
}

/*
 * Map stop_reason. A tool_use stop caused only by the forced schema tool
 * is an ordinary stop to the caller, who sees text. A refusal is an error
 * class too, with any partial text kept. A stop_sequence stop says which
 * sequence (seq), for the fronts to pass on.
 */
static void
anthropic_stop(struct reply *r, const char *reason, json_t *seq,
    json_t *details, int json_only)
{
	enum llmgate_finish finish = LLMGATE_FINISH_OTHER;
	const char *category;
	size_t i;

	if (reason == NULL)
		return;
	for (i = 0; i < nitems(anthropic_finishes); i++) {
		if (strcmp(reason, anthropic_finishes[i].reason) == 0) {
			finish = anthropic_finishes[i].finish;
			break;
		}
	}
	if (finish == LLMGATE_FINISH_TOOL_CALLS && json_only)
		finish = LLMGATE_FINISH_STOP;
	r->finish = finish;
	if (json_is_string(seq) && strcmp(reason, "stop_sequence") == 0) {
		free(r->stop_sequence);
		r->stop_sequence = xstrdup(json_string_value(seq));
	}
	if (finish != LLMGATE_FINISH_CONTENT_FILTER)
		return;
	r->refused = 1;
	category = json_string_value(json_object_get(details, "category"));
	if (category != NULL)
		reply_error(r, LLMGATE_CONTENT_FILTER, 0,
		    "refused by the model (%s)", category);
	else
		reply_error(r, LLMGATE_CONTENT_FILTER, 0,
		    "refused by the model");
}

/* The reply text a schema tool's input stands for; NULL if it has none. */
static char *
anthropic_json_text(json_t *input, int wrapped)
{
	if (wrapped && (input = json_object_get(input, "value")) == NULL)
		return NULL;
	return json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int
anthropic_parse(struct reply *r, const char *body, size_t len)
{
	json_t *root, *content, *block, *input;
	const char *type, *name, *text;
	json_error_t jerr;
	char *s;
	size_t i;
	int ntools = 0, json_seen = 0, rv = -1;

	if ((root = jload(body, len, &jerr)) == NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "response is not JSON: %s", jerr.text);
		return -1;
	}
	if (json_is_object(json_object_get(root, "error"))) {
		anthropic_error_root(r, root, r->status);
		goto fail;
	}
	content = json_object_get(root, "content");
	if (!json_is_array(content)) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "response has no content array");
		goto fail;
	}

	json_array_foreach(content, i, block) {
		type = json_string_value(json_object_get(block, "type"));
		if (type == NULL)
			continue;
		if (strcmp(type, "text") == 0) {
			text =
			    json_string_value(json_object_get(block, "text"));
			if (text != NULL)
				reply_text(r, text, strlen(text));
			continue;
		}
		/* thinking, server tools and new types are not shown. */
		if (strcmp(type, "tool_use") != 0)
			continue;

		name = json_string_value(json_object_get(block, "name"));
		if (name == NULL) {
			reply_error(r, LLMGATE_PARSE_ERROR, 0,
			    "tool_use block without a name");
			goto fail;
		}
		/* A missing input is an empty one. */
		input = json_object_get(block, "input");
		if (strcmp(name, ANTHROPIC_JSON_TOOL) == 0 ||
		    strcmp(name, ANTHROPIC_VALUE_TOOL) == 0) {
			json_seen = 1;
			if (input == NULL)
				s = xstrdup("{}");
			else
				s = anthropic_json_text(input,
				    strcmp(name, ANTHROPIC_VALUE_TOOL) == 0);
			if (s == NULL) {
				reply_error(r, LLMGATE_PARSE_ERROR, 0,
				    "%s input without a value", name);
				goto fail;
			}
			reply_text(r, s, strlen(s));
		} else {
			if (input == NULL)
				s = xstrdup("{}");
			else
				s = json_dumps(input,
				    JSON_COMPACT | JSON_ENCODE_ANY);
			reply_tool_delta(r, ntools++,
			    json_string_value(json_object_get(block, "id")),
			    name, s, strlen(s));
		}
		free(s);
	}

	anthropic_usage(r, json_object_get(root, "usage"));
	anthropic_stop(r,
	    json_string_value(json_object_get(root, "stop_reason")),
	    json_object_get(root, "stop_sequence"),
	    json_object_get(root, "stop_details"), ntools == 0 && json_seen);
	if (r->finish == LLMGATE_FINISH_NONE)
		r->finish = LLMGATE_FINISH_OTHER;
	r->done = 1;
	rv = 0;
fail:
	json_decref(root);
	return rv;
}

static struct anthropic_stream *
anthropic_stream_get(struct reply *r)
{
	if (r->pstate == NULL)
		r->pstate = xcalloc(1, sizeof(struct anthropic_stream));
	return r->pstate;
}

/* The block an event's "index" names, or NULL after a parse error. */
static struct anthropic_block *
anthropic_block(struct reply *r, struct anthropic_stream *st, json_t *ev)
{
	json_t *jidx = json_object_get(ev, "index");
	json_int_t i;

	if (!json_is_integer(jidx)) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "content block event without an index");
		return NULL;
	}
	i = json_integer_value(jidx);
	if (i < 0 || i >= ANTHROPIC_MAX_BLOCKS) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "content block index %lld out of range", (long long)i);
		return NULL;
	}
	return &st->blocks[i];
}

static int
anthropic_ev_message_start(struct reply *r, json_t *ev)
{
	json_t *msg = json_object_get(ev, "message");

	anthropic_usage(r, json_object_get(msg, "usage"));
	return 0;
}

static int
anthropic_ev_block_start(struct reply *r, json_t *ev)
{
	struct anthropic_stream *st = anthropic_stream_get(r);
	struct anthropic_block *b;
	json_t *cb;
	const char *type, *name, *text;

	if ((b = anthropic_block(r, st, ev)) == NULL)
		return -1;
	cb = json_object_get(ev, "content_block");
	type = json_string_value(json_object_get(cb, "type"));
	memset(b, 0, sizeof *b);
	if (type == NULL)
		return 0;
	if (strcmp(type, "text") == 0) {
		b->kind = ANTHROPIC_TEXT;
		text = json_string_value(json_object_get(cb, "text"));
		if (text != NULL)
			reply_text(r, text, strlen(text));
		return 0;
	}
	if (strcmp(type, "tool_use") != 0)
		return 0;

	name = json_string_value(json_object_get(cb, "name"));
	if (name == NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "tool_use block without a name");
		return -1;
	}
	if (strcmp(name, ANTHROPIC_JSON_TOOL) == 0) {
		b->kind = ANTHROPIC_JSON;
		b->off = r->text.len;
		st->json_seen = 1;
	} else if (strcmp(name, ANTHROPIC_VALUE_TOOL) == 0) {
		b->kind = ANTHROPIC_VALUE;
		st->vlen = 0;
		st->json_seen = 1;
	} else {
		b->kind = ANTHROPIC_TOOL;
		b->tool = st->ntools++;
		reply_tool_delta(r, b->tool,
		    json_string_value(json_object_get(cb, "id")), name, NULL,
		    0);
	}
	return 0;
}

/* Assemble a wrapped value's input; it is only usable once complete. */
static int
anthropic_value_add(struct reply *r, const char *s, size_t len)
{
	struct anthropic_stream *st = r->pstate;
	size_t cap;

	if (len > ANTHROPIC_MAX_VALUE - st->vlen) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "structured reply larger than %u bytes",
		    ANTHROPIC_MAX_VALUE);
		return -1;
	}
	if (st->vlen + len + 1 > st->vcap) {
		cap = st->vcap != 0 ? st->vcap : 1024;
		while (cap < st->vlen + len + 1)
			cap *= 2;
		st = xreallocarray(st, 1, sizeof *st + cap);
		st->vcap = cap;
		r->pstate = st;
	}
	memcpy(st->value + st->vlen, s, len);
	st->vlen += len;
	st->value[st->vlen] = '\0';
	return 0;
}

static int
anthropic_ev_block_delta(struct reply *r, json_t *ev)
{
	struct anthropic_stream *st = anthropic_stream_get(r);
	struct anthropic_block *b;
	json_t *delta, *js;
	const char *type, *s;
	size_t len;

	if ((b = anthropic_block(r, st, ev)) == NULL)
		return -1;
	delta = json_object_get(ev, "delta");
	type = json_string_value(json_object_get(delta, "type"));
	if (type == NULL)
		return 0;
	if (strcmp(type, "text_delta") == 0) {
		js = json_object_get(delta, "text");
		if (b->kind == ANTHROPIC_TEXT)
			reply_text(r, json_string_value(js),
			    json_string_length(js));
		return 0;
	}
	if (strcmp(type, "input_json_delta") != 0)
		return 0; /* thinking, signature, citations */
	js = json_object_get(delta, "partial_json");
	if ((len = json_string_length(js)) == 0)
		return 0; /* the first fragment is often "" */
	s = json_string_value(js);
	switch (b->kind) {
	case ANTHROPIC_TOOL:
		reply_tool_delta(r, b->tool, NULL, NULL, s, len);
		break;
	case ANTHROPIC_JSON:
		reply_text(r, s, len);
		break;
	case ANTHROPIC_VALUE:
		return anthropic_value_add(r, s, len);
	default:
		break;
	}
	return 0;
}

/* JSON text assembled from fragments must parse; "" stands for {}. */
static int
anthropic_check_json(struct reply *r, const char *s, size_t len,
    const char *what)
{
	json_error_t jerr;
	json_t *j;

	if ((j = json_loadb(s, len, JSON_DECODE_ANY, &jerr)) == NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "%s is not valid JSON: %s", what, jerr.text);
		return -1;
	}
	json_decref(j);
	return 0;
}

static int
anthropic_ev_block_stop(struct reply *r, json_t *ev)
{
	struct anthropic_stream *st = anthropic_stream_get(r);
	struct anthropic_block *b;
	struct reply_tool *t;
	json_t *input;
	char *s;
	int rc = 0;

	if ((b = anthropic_block(r, st, ev)) == NULL)
		return -1;
	switch (b->kind) {
	case ANTHROPIC_TOOL:
		if ((t = reply_tool(r, b->tool)) == NULL)
			return -1;
		if (t->args.len == 0)
			reply_tool_delta(r, b->tool, NULL, NULL, "{}", 2);
		else
			rc = anthropic_check_json(r, t->args.data, t->args.len,
			    "tool arguments");
		break;
	case ANTHROPIC_JSON:
		if (r->text.len == b->off)
			reply_text(r, "{}", 2);
		else
			rc = anthropic_check_json(r, r->text.data + b->off,
			    r->text.len - b->off, "structured reply");
		break;
	case ANTHROPIC_VALUE:
		input = jload(st->value, st->vlen, NULL);
		if ((s = anthropic_json_text(input, 1)) == NULL) {
			reply_error(r, LLMGATE_PARSE_ERROR, 0,
			    "structured reply is not JSON with a value");
			rc = -1;
		} else {
			reply_text(r, s, strlen(s));
			free(s);
		}
		json_decref(input);
		st->vlen = 0;
		break;
	default:
		break;
	}
	b->kind = ANTHROPIC_SKIP;
	return rc;
}

static int
anthropic_ev_message_delta(struct reply *r, json_t *ev)
{
	struct anthropic_stream *st = anthropic_stream_get(r);
	json_t *delta = json_object_get(ev, "delta");

	anthropic_stop(r,
	    json_string_value(json_object_get(delta, "stop_reason")),
	    json_object_get(delta, "stop_sequence"),
	    json_object_get(delta, "stop_details"),
	    st->ntools == 0 && st->json_seen);
	anthropic_usage(r, json_object_get(ev, "usage"));
	return 0;
}

static int
anthropic_ev_message_stop(struct reply *r, json_t *ev)
{
	r->done = 1;
	return 0;
}

/* A 200 stream that failed (an error event): classify by error.type. */
static int
anthropic_ev_error(struct reply *r, json_t *ev)
{
	anthropic_error_root(r, ev, 0);
	return -1;
}

/* Events by name; a NULL handler marks a known event that is ignored. */
static const struct {
	const char *name;
	int (*fn)(struct reply *, json_t *);
} anthropic_events[] = {
	{ "message_start", anthropic_ev_message_start },
	{ "content_block_start", anthropic_ev_block_start },
	{ "content_block_delta", anthropic_ev_block_delta },
	{ "content_block_stop", anthropic_ev_block_stop },
	{ "message_delta", anthropic_ev_message_delta },
	{ "message_stop", anthropic_ev_message_stop },
	{ "error", anthropic_ev_error },
	{ "ping", NULL },
};

static int
anthropic_event(struct reply *r, const struct sse_event *sev)
{
	json_error_t jerr;
	json_t *ev;
	const char *name;
	size_t i;
	int rc;

	/* A proxy may drop event: lines; the JSON type says the same. */
	ev = jload(sev->data, sev->len, &jerr);
	if (sev->error_field)
		name = "error";
	else if (sev->event != NULL)
		name = sev->event;
	else if ((name = json_string_value(json_object_get(ev, "type"))) ==
	    NULL) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "event without a name or a JSON type");
		json_decref(ev);
		return -1;
	}

	for (i = 0; i < nitems(anthropic_events); i++) {
		if (strcmp(name, anthropic_events[i].name) == 0)
			break;
	}
	if (i == nitems(anthropic_events) || anthropic_events[i].fn == NULL) {
		json_decref(ev);
		return 0;
	}
	if (!json_is_object(ev)) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "%s event is not a JSON object: %s", name,
		    ev == NULL ? jerr.text : "wrong type");
		json_decref(ev);
		return -1;
	}
	rc = anthropic_events[i].fn(r, ev);
	json_decref(ev);
	return rc;
}
