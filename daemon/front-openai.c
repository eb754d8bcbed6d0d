/*
 * front-openai.c: the OpenAI Chat Completions dialect of the HTTP front.
 * POST /v1/chat/completions in, a chat.completion (or its chunk stream)
 * out, whatever provider answered. What the daemon cannot honour is
 * refused with a 400 that names it, never silently dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/* Stream state: which tool-call slots were announced. */
#define FRONT_OPENAI_TOOLS 128
struct front_openai_state {
	int role_sent;
	unsigned char tool_seen[FRONT_OPENAI_TOOLS];
};

/* The body's members: known keys, some accepted only at their neutral
 * value; in the order of enum front_openai_key. */
enum front_openai_key {
	FO_MODEL,
	FO_MESSAGES,
	FO_MODELS,
	FO_TOOLS,
	FO_TOOL_CHOICE,
	FO_RESPONSE_FORMAT,
	FO_MAX_TOKENS,
	FO_MAX_COMPLETION_TOKENS,
	FO_TEMPERATURE,
	FO_TOP_P,
	FO_STOP,
	FO_SEED,
	FO_STREAM,
	FO_STREAM_OPTIONS,
	FO_N,
	FO_USER,
	FO_METADATA,
	FO_STORE,
	FO_PARALLEL_TOOL_CALLS,
	FO_FREQUENCY_PENALTY,
	FO_PRESENCE_PENALTY,
	FO_LOGPROBS,
	FO_SERVICE_TIER,
	FO_NKEYS
};
static const char *const front_openai_keys[FO_NKEYS] = {
	"model",
	"messages",
	"models",
	"tools",
	"tool_choice",
	"response_format",
	"max_tokens",
	"max_completion_tokens",
	"temperature",
	"top_p",
	"stop",
	"seed",
	"stream",
	"stream_options",
	"n",
	"user",
	"metadata",
	"store",
	"parallel_tool_calls",
	"frequency_penalty",
	"presence_penalty",
	"logprobs",
	"service_tier",
};

/* A message's text: a string, or an array of text parts; NULL for null. */
static int
front_openai_text(struct front_req *fr, msgpack_zone *z, const struct jdoc *d,
    int c, size_t idx, char **out)
{
	struct buf b = { NULL, 0, 0 };
	size_t i;
	int part;

	*out = NULL;
	if (!jdoc_given(d, c))
		return 0;
	if ((*out = front_http_jstr(z, d, c)) != NULL)
		return 0;
	if (jdoc_type(d, c) != JDOC_ARRAY) {
		front_http_bad(fr,
		    "messages[%zu].content must be a string "
		    "or an array of parts",
		    idx);
		return -1;
	}
	for (i = 0, part = c + 1; i < (size_t)jdoc_size(d, c);
	     i++, part = jdoc_next(d, part)) {
		if (!jdoc_streq(d, jdoc_get(d, part, "type"), "text") ||
		    front_http_jadd(&b, d, jdoc_get(d, part, "text")) != 0) {
			front_http_bad(fr,
			    "messages[%zu].content[%zu]: only "
			    "text parts are supported",
			    idx, i);
			buf_free(&b);
			return -1;
		}
	}
	*out = front_http_zdup(z, buf_cstr(&b), b.len);
	buf_free(&b);
	return 0;
}

static int
front_openai_tool_calls(struct front_req *fr, msgpack_zone *z,
    const struct jdoc *d, int tc, size_t idx, struct llmgate_message *m)
{
	int t, fn, args;
	size_t i;

	if (jdoc_type(d, tc) != JDOC_ARRAY) {
		front_http_bad(fr,
		    "messages[%zu].tool_calls must be an "
		    "array",
		    idx);
		return -1;
	}
	m->ntool_calls = (size_t)jdoc_size(d, tc);
	m->tool_calls =
	    front_http_zalloc(z, m->ntool_calls, sizeof *m->tool_calls);
	for (i = 0, t = tc + 1; i < m->ntool_calls; i++, t = jdoc_next(d, t)) {
		fn = jdoc_get(d, t, "function");
		args = jdoc_get(d, fn, "arguments");
		m->tool_calls[i].id =
		    front_http_jstr(z, d, jdoc_get(d, t, "id"));
		m->tool_calls[i].name =
		    front_http_jstr(z, d, jdoc_get(d, fn, "name"));
		m->tool_calls[i].arguments = args != -1 ?
		    front_http_jstr(z, d, args) :
		    front_http_zdup(z, "{}", 2);
		if (m->tool_calls[i].id == NULL ||
		    m->tool_calls[i].name == NULL ||
		    m->tool_calls[i].arguments == NULL) {
			front_http_bad(fr,
			    "messages[%zu].tool_calls[%zu] "
			    "needs id and function.name (strings) and "
			    "function.arguments (a JSON string)",
			    idx, i);
			return -1;
		}
	}
	return 0;
}

/* The tool's name for a tool result: from the call it answers. */
static char *
front_openai_tool_name(struct llmgate_request *req, const char *id)
{
	size_t i, j;
	struct llmgate_message *m;

	for (i = req->nmessages; i-- > 0;) {
		m = &req->messages[i];
		for (j = 0; j < m->ntool_calls; j++) {
			if (strcmp(m->tool_calls[j].id, id) == 0)
				return m->tool_calls[j].name;
		}
	}
	return NULL;
}

static int
front_openai_messages(struct front_req *fr, msgpack_zone *z,
    const struct jdoc *d, int msgs, struct llmgate_request *req)
{
	struct buf sys = { NULL, 0, 0 };
	struct llmgate_message *m;
	const char *r;
	char *text;
	size_t i;
	int jm, tc;

	if (jdoc_type(d, msgs) != JDOC_ARRAY || jdoc_size(d, msgs) == 0) {
		front_http_bad(fr, "messages must be a non-empty array");
		return -1;
	}
	req->messages = front_http_zalloc(z, (size_t)jdoc_size(d, msgs),
	    sizeof *req->messages);
	for (i = 0, jm = msgs + 1; i < (size_t)jdoc_size(d, msgs);
	     i++, jm = jdoc_next(d, jm)) {
		if ((r = front_http_jstr(z, d, jdoc_get(d, jm, "role"))) ==
		    NULL) {
			front_http_bad(fr, "messages[%zu] needs a role", i);
			goto fail;
		}
		if (front_openai_text(fr, z, d, jdoc_get(d, jm, "content"), i,
		        &text) != 0)
			goto fail;
		if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
			if (req->nmessages != 0) {
				front_http_bad(fr,
				    "messages[%zu]: system "
				    "messages must come first",
				    i);
				goto fail;
			}
			if (text != NULL)
				buf_printf(&sys, "%s%s",
				    sys.len != 0 ? "\n\n" : "", text);
			continue;
		}
		m = &req->messages[req->nmessages];
		m->content = text;
		if (strcmp(r, "user") == 0)
			m->role = LLMGATE_ROLE_USER;
		else if (strcmp(r, "assistant") == 0) {
			m->role = LLMGATE_ROLE_ASSISTANT;
			tc = jdoc_get(d, jm, "tool_calls");
			if (jdoc_given(d, tc) &&
			    front_openai_tool_calls(fr, z, d, tc, i, m) != 0)
				goto fail;
		} else if (strcmp(r, "tool") == 0) {
			m->role = LLMGATE_ROLE_TOOL;
			m->tool_call_id = front_http_jstr(z, d,
			    jdoc_get(d, jm, "tool_call_id"));
			if (m->tool_call_id == NULL) {
				front_http_bad(fr,
				    "messages[%zu]: a tool "
				    "message needs tool_call_id",
				    i);
				goto fail;
			}
			m->name = front_openai_tool_name(req, m->tool_call_id);
			if (m->content == NULL)
				m->content = front_http_zdup(z, "", 0);
		} else {
			front_http_bad(fr,
			    "messages[%zu]: role '%s' is not "
			    "supported (system, developer, user, assistant, "
			    "tool)",
			    i, r);
			goto fail;
		}
		req->nmessages++;
	}
	if (sys.len != 0)
		req->system = front_http_zdup(z, sys.data, sys.len);
	buf_free(&sys);
	return 0;
fail:
	buf_free(&sys);
	return -1;
}

static int
front_openai_tools(struct front_req *fr, msgpack_zone *z, const struct jdoc *d,
    int tools, int choice, struct llmgate_request *req)
{
	int t, fn, name, params;
	const char *c = "auto";
	char *s;
	size_t i;

	if (jdoc_given(d, choice)) {
		fn = jdoc_get(d, choice, "function");
		name = jdoc_get(d, fn, "name");
		if ((s = front_http_jstr(z, d, choice)) != NULL &&
		    llmgate_tool_choice_from_name(s) >= 0)
			c = s;
		else if (jdoc_streq(d, jdoc_get(d, choice, "type"),
		             "function") &&
		    (req->tool_name = front_http_jstr(z, d, name)) != NULL)
			c = "required";
		else {
			front_http_bad(fr,
			    "tool_choice must be \"auto\", "
			    "\"none\", \"required\" or {\"type\": "
			    "\"function\", \"function\": {\"name\": ...}}");
			return -1;
		}
		/* "none" goes with the tools, below; auto is the default. */
		if (strcmp(c, "required") == 0)
			req->tool_choice = LLMGATE_TOOLS_REQUIRED;
	}
	if (!jdoc_given(d, tools))
		return 0;
	if (jdoc_type(d, tools) != JDOC_ARRAY) {
		front_http_bad(fr, "tools must be an array");
		return -1;
	}
	/*
	 * "none": the tools are still sent, with a choice of none, since a
	 * conversation that holds tool calls needs them (Anthropic refuses
	 * tool_use blocks in a request without tools).
	 */
	if (strcmp(c, "none") == 0 && jdoc_size(d, tools) != 0)
		req->tool_choice = LLMGATE_TOOLS_NONE;
	req->ntools = (size_t)jdoc_size(d, tools);
	req->tools = front_http_zalloc(z, req->ntools, sizeof *req->tools);
	for (i = 0, t = tools + 1; i < req->ntools; i++, t = jdoc_next(d, t)) {
		fn = jdoc_get(d, t, "function");
		params = jdoc_get(d, fn, "parameters");
		if (!jdoc_streq(d, jdoc_get(d, t, "type"), "function") ||
		    (req->tools[i].name = front_http_jstr(z, d,
		         jdoc_get(d, fn, "name"))) == NULL) {
			front_http_bad(fr,
			    "tools[%zu] must be {\"type\": "
			    "\"function\", \"function\": {\"name\": ...}}",
			    i);
			return -1;
		}
		if (params != -1 && jdoc_type(d, params) != JDOC_OBJECT) {
			front_http_bad(fr,
			    "tools[%zu].function.parameters "
			    "must be a JSON Schema object",
			    i);
			return -1;
		}
		req->tools[i].description =
		    front_http_jstr(z, d, jdoc_get(d, fn, "description"));
		if (params != -1)
			req->tools[i].parameters =
			    front_http_jdump(z, d, params);
	}
	return 0;
}

static int
front_openai_format(struct front_req *fr, msgpack_zone *z, const struct jdoc *d,
    int rf, struct llmgate_request *req)
{
	const char *t;
	int schema;

	if (!jdoc_given(d, rf))
		return 0;
	if ((t = front_http_jstr(z, d, jdoc_get(d, rf, "type"))) == NULL) {
		front_http_bad(fr, "response_format needs a type");
		return -1;
	}
	if (strcmp(t, "text") == 0)
		return 0;
	if (strcmp(t, "json_object") == 0) {
		req->schema = front_http_zdup(z, "{\"type\":\"object\"}", 17);
		return 0;
	}
	if (strcmp(t, "json_schema") != 0) {
		front_http_bad(fr,
		    "response_format type '%s' is not "
		    "supported (text, json_object, json_schema)",
		    t);
		return -1;
	}
	schema = jdoc_get(d, jdoc_get(d, rf, "json_schema"), "schema");
	if (jdoc_type(d, schema) != JDOC_OBJECT) {
		front_http_bad(fr,
		    "response_format.json_schema.schema must "
		    "be a JSON Schema object");
		return -1;
	}
	req->schema = front_http_jdump(z, d, schema);
	return 0;
}

/* Neutral values only for what the daemon cannot do; m: the body's
 * members (enum front_openai_key). */
static int
front_openai_unsupported(struct front_req *fr, msgpack_zone *z,
    const struct jdoc *d, int *m)
{
	int64_t n;
	double x;
	int key;

	if ((key = jdoc_members(d, 0, front_openai_keys, FO_NKEYS, m)) != 0) {
		front_http_bad(fr,
		    "parameter '%s' is not supported "
		    "by llmgated",
		    front_http_jstr(z, d, key));
		return -1;
	}
	if (jdoc_given(d, m[FO_N]) &&
	    (jdoc_int(d, m[FO_N], &n) != 0 || n != 1)) {
		front_http_bad(fr, "n: only 1 choice is supported");
		return -1;
	}
	if (jdoc_is(d, m[FO_LOGPROBS], "true")) {
		front_http_bad(fr, "logprobs are not supported");
		return -1;
	}
	if (jdoc_is(d, m[FO_PARALLEL_TOOL_CALLS], "false")) {
		front_http_bad(fr,
		    "parallel_tool_calls = false is not "
		    "supported");
		return -1;
	}
	if (jdoc_is(d, m[FO_STORE], "true")) {
		front_http_bad(fr, "store = true is not supported");
		return -1;
	}
	/* Only the neutral 0; what is no number (a string) is no 0. */
	if (jdoc_given(d, m[FO_FREQUENCY_PENALTY]) &&
	    (jdoc_num(d, m[FO_FREQUENCY_PENALTY], &x) != 0 || x != 0)) {
		front_http_bad(fr, "frequency_penalty is not supported");
		return -1;
	}
	if (jdoc_given(d, m[FO_PRESENCE_PENALTY]) &&
	    (jdoc_num(d, m[FO_PRESENCE_PENALTY], &x) != 0 || x != 0)) {
		front_http_bad(fr, "presence_penalty is not supported");
		return -1;
	}
	return 0;
}

static int
front_openai_sampling(struct front_req *fr, msgpack_zone *z,
    const struct jdoc *d, const int *m, struct llmgate_request *req)
{
	int64_t n;
	size_t i;
	int v, rc;

	v = m[FO_MAX_COMPLETION_TOKENS];
	if (!jdoc_given(d, v))
		v = m[FO_MAX_TOKENS];
	if (jdoc_given(d, v)) {
		if (jdoc_int(d, v, &n) != 0 || n < 1 || n > UINT32_MAX) {
			front_http_bad(fr,
			    "max_tokens must be a positive "
			    "integer");
			return -1;
		}
		req->has |= LLMGATE_HAS_MAX_TOKENS;
		req->max_tokens = (uint32_t)n;
	}
	v = m[FO_TEMPERATURE];
	if (jdoc_given(d, v)) {
		if (front_http_jrange(d, v, 0, 2, &req->temperature) != 0) {
			front_http_bad(fr,
			    "temperature must be a number "
			    "from 0 to 2");
			return -1;
		}
		req->has |= LLMGATE_HAS_TEMPERATURE;
	}
	v = m[FO_TOP_P];
	if (jdoc_given(d, v)) {
		if (front_http_jrange(d, v, 0, 1, &req->top_p) != 0) {
			front_http_bad(fr,
			    "top_p must be a number from 0 "
			    "to 1");
			return -1;
		}
		req->has |= LLMGATE_HAS_TOP_P;
	}
	v = m[FO_SEED];
	if (jdoc_given(d, v)) {
		if (jdoc_int(d, v, &n) != 0) {
			front_http_bad(fr, "seed must be an integer");
			return -1;
		}
		req->has |= LLMGATE_HAS_SEED;
		req->seed = n;
	}
	v = m[FO_STOP];
	if (jdoc_given(d, v)) {
		if (jdoc_type(d, v) == JDOC_STRING) {
			req->stop = front_http_zalloc(z, 1, sizeof *req->stop);
			req->stop[0] = front_http_jstr(z, d, v);
			req->nstop = 1;
		} else if ((rc = front_http_jstrs(z, d, v, 16, &req->stop,
		                &req->nstop, &i)) != 0) {
			if (rc == -2)
				front_http_bad(fr, "stop[%zu] must be a string",
				    i);
			else
				front_http_bad(fr,
				    "stop must be a string or an "
				    "array of at most 16 strings");
			return -1;
		}
	}
	v = m[FO_STREAM];
	if (jdoc_given(d, v)) {
		if (!jdoc_is(d, v, "true") && !jdoc_is(d, v, "false")) {
			front_http_bad(fr, "stream must be true or false");
			return -1;
		}
		fr->stream = jdoc_is(d, v, "true");
	}
	v = m[FO_STREAM_OPTIONS];
	if (jdoc_given(d, v)) {
		if (jdoc_type(d, v) != JDOC_OBJECT) {
			front_http_bad(fr,
			    "stream_options must be an "
			    "object");
			return -1;
		}
		fr->include_usage =
		    jdoc_is(d, jdoc_get(d, v, "include_usage"), "true");
	}
	return 0;
}

/* Translate the body into req (its strings in z); -1 when refused. */
static int
front_openai_parse(struct front_req *fr, const struct jdoc *d, msgpack_zone *z,
    struct llmgate_request *req)
{
	int m[FO_NKEYS];
	char *model;

	if (front_openai_unsupported(fr, z, d, m) != 0)
		return -1;
	if ((model = front_http_jstr(z, d, m[FO_MODEL])) == NULL) {
		front_http_bad(fr, "model must be a string");
		return -1;
	}
	fr->model = xstrdup(model);
	fr->dstate = xcalloc(1, sizeof(struct front_openai_state));
	if (front_openai_messages(fr, z, d, m[FO_MESSAGES], req) != 0 ||
	    front_openai_tools(fr, z, d, m[FO_TOOLS], m[FO_TOOL_CHOICE], req) !=
	        0 ||
	    front_openai_format(fr, z, d, m[FO_RESPONSE_FORMAT], req) != 0 ||
	    front_openai_sampling(fr, z, d, m, req) != 0)
		return -1;
	/* A schema is a forced tool of its own on an Anthropic target, which
	 * a choice of none cannot go with: there, none offers no tools. */
	if (req->schema != NULL && req->tool_choice == LLMGATE_TOOLS_NONE) {
		req->tool_choice = LLMGATE_TOOLS_AUTO;
		req->ntools = 0;
	}
	return 0;
}

static const char *
front_openai_finish(enum llmgate_finish f)
{
	switch (f) {
	case LLMGATE_FINISH_LENGTH:
		return "length";
	case LLMGATE_FINISH_TOOL_CALLS:
		return "tool_calls";
	case LLMGATE_FINISH_CONTENT_FILTER:
		return "content_filter";
	default:
		return "stop";
	}
}

static void
front_openai_usage(struct jwrite *w, const struct llmgate_result *res)
{
	jwrite_open(w, "usage", '{');
	jwrite_int(w, "prompt_tokens", (long long)res->input_tokens);
	jwrite_int(w, "completion_tokens", (long long)res->output_tokens);
	jwrite_int(w, "total_tokens",
	    (long long)(res->input_tokens + res->output_tokens));
	jwrite_close(w, '}');
}

/* id, object, created, model and the choices opened: every answer's start. */
static void
front_openai_head(struct front_req *fr, struct jwrite *w, const char *object)
{
	jwrite_open(w, NULL, '{');
	jwrite_str(w, "id", fr->id);
	jwrite_str(w, "object", object);
	jwrite_int(w, "created", (long long)fr->created);
	jwrite_str(w, "model", fr->model);
	jwrite_open(w, "choices", '[');
}

/* A chunk event written into b up to its one choice's open delta. */
static void
front_openai_chunk_begin(struct front_req *fr, struct buf *b, struct jwrite *w)
{
	front_http_sse_begin(b, NULL);
	jwrite_init(w, b, 0);
	front_openai_head(fr, w, "chat.completion.chunk");
	jwrite_open(w, NULL, '{');
	jwrite_int(w, "index", 0);
	jwrite_open(w, "delta", '{');
}

/* Close the delta, the choice and the chunk (res: with the llmgate
 * field), and send it. */
static void
front_openai_chunk_end(struct front_req *fr, struct buf *b, struct jwrite *w,
    const char *finish, const struct llmgate_result *res)
{
	jwrite_close(w, '}');
	jwrite_str(w, "finish_reason", finish);
	jwrite_null(w, "logprobs");
	jwrite_close(w, '}');
	jwrite_close(w, ']');
	if (res != NULL)
		front_http_llmgate_text(w, res);
	jwrite_close(w, '}');
	front_http_sse_text(fr, b);
}

static void
front_openai_role(struct front_req *fr)
{
	struct front_openai_state *st = fr->dstate;
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	if (st->role_sent)
		return;
	st->role_sent = 1;
	front_openai_chunk_begin(fr, &b, &w);
	jwrite_str(&w, "role", "assistant");
	jwrite_str(&w, "content", "");
	front_openai_chunk_end(fr, &b, &w, NULL, NULL);
}

static void
front_openai_chunk(struct front_req *fr, const struct llmgate_chunk *ch)
{
	struct front_openai_state *st = fr->dstate;
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;
	int first;

	if (ch->reset)
		return;
	front_openai_role(fr);
	if (ch->tool_index < 0 && ch->len == 0)
		return;
	front_openai_chunk_begin(fr, &b, &w);
	if (ch->tool_index < 0) {
		jwrite_strn(&w, "content", ch->text, ch->len);
		front_openai_chunk_end(fr, &b, &w, NULL, NULL);
		return;
	}
	first = ch->tool_index < FRONT_OPENAI_TOOLS &&
	    !st->tool_seen[ch->tool_index];
	if (first)
		st->tool_seen[ch->tool_index] = 1;
	jwrite_open(&w, "tool_calls", '[');
	jwrite_open(&w, NULL, '{');
	jwrite_int(&w, "index", ch->tool_index);
	if (first) {
		jwrite_str(&w, "id", ch->tool_id != NULL ? ch->tool_id : "");
		jwrite_str(&w, "type", "function");
	}
	jwrite_open(&w, "function", '{');
	if (first)
		jwrite_str(&w, "name",
		    ch->tool_name != NULL ? ch->tool_name : "");
	jwrite_str(&w, "arguments", ch->tool_args != NULL ? ch->tool_args : "");
	jwrite_close(&w, '}');
	jwrite_close(&w, '}');
	jwrite_close(&w, ']');
	front_openai_chunk_end(fr, &b, &w, NULL, NULL);
}

static void
front_openai_tool_calls_text(struct jwrite *w, const struct llmgate_result *res)
{
	const struct llmgate_tool_call *tc;
	size_t i;

	jwrite_open(w, "tool_calls", '[');
	for (i = 0; i < res->ntool_calls; i++) {
		tc = &res->tool_calls[i];
		jwrite_open(w, NULL, '{');
		jwrite_str(w, "id", tc->id != NULL ? tc->id : "");
		jwrite_str(w, "type", "function");
		jwrite_open(w, "function", '{');
		jwrite_str(w, "name", tc->name != NULL ? tc->name : "");
		jwrite_str(w, "arguments",
		    tc->arguments != NULL ? tc->arguments : "{}");
		jwrite_close(w, '}');
		jwrite_close(w, '}');
	}
	jwrite_close(w, ']');
}

/* The end of a stream: the finish chunk, the usage chunk, [DONE]. */
static void
front_openai_stream_done(struct front_req *fr, const struct llmgate_result *res)
{
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	front_openai_role(fr);
	front_openai_chunk_begin(fr, &b, &w);
	front_openai_chunk_end(fr, &b, &w, front_openai_finish(res->finish),
	    res);
	if (fr->include_usage) {
		front_http_sse_begin(&b, NULL);
		jwrite_init(&w, &b, 0);
		front_openai_head(fr, &w, "chat.completion.chunk");
		jwrite_close(&w, ']');
		front_openai_usage(&w, res);
		jwrite_close(&w, '}');
		front_http_sse_text(fr, &b);
	}
	front_http_sse_raw(fr, "data: [DONE]\n\n");
	front_http_end(fr);
}

static void
front_openai_done(struct front_req *fr, const struct llmgate_result *res)
{
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	if (fr->stream) {
		front_openai_stream_done(fr, res);
		return;
	}
	jwrite_init(&w, &b, 0);
	front_openai_head(fr, &w, "chat.completion");
	jwrite_open(&w, NULL, '{');
	jwrite_int(&w, "index", 0);
	jwrite_open(&w, "message", '{');
	jwrite_str(&w, "role", "assistant");
	if (res->ntool_calls != 0 && (res->text == NULL || *res->text == '\0'))
		jwrite_null(&w, "content");
	else
		jwrite_str(&w, "content", res->text != NULL ? res->text : "");
	if (res->ntool_calls != 0)
		front_openai_tool_calls_text(&w, res);
	jwrite_null(&w, "refusal");
	jwrite_close(&w, '}');
	jwrite_str(&w, "finish_reason", front_openai_finish(res->finish));
	jwrite_null(&w, "logprobs");
	jwrite_close(&w, '}');
	jwrite_close(&w, ']');
	front_openai_usage(&w, res);
	front_http_llmgate_text(&w, res);
	jwrite_close(&w, '}');
	front_http_text(fr, 200, &b, res);
}

static void
front_openai_error_body(struct front_req *fr, struct jwrite *w, int status,
    const struct front_error *fe, const char *code, const char *msg)
{
	jwrite_open(w, "error", '{');
	jwrite_str(w, "message", msg);
	jwrite_str(w, "type",
	    status == 401     ? "authentication_error" :
	        status == 403 ? "permission_error" :
	                        fe->openai_type);
	jwrite_null(w, "param");
	jwrite_str(w, "code", code);
	jwrite_close(w, '}');
}

const struct front_dialect front_openai = {
	.name = "openai",
	.id_prefix = "chatcmpl-",
	.attach_attempts = 1,
	.parse = front_openai_parse,
	.chunk = front_openai_chunk,
	.done = front_openai_done,
	.error_body = front_openai_error_body,
	.error_event = NULL, /* the SDKs raise on an error object */
};
