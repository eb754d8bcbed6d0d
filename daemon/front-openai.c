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

/* Known keys that are accepted only at their neutral value. */
static const char *front_openai_keys[] = {
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
front_openai_text(struct front_req *fr, msgpack_zone *z, json_t *c, size_t idx,
    char **out)
{
	struct buf b = { NULL, 0, 0 };
	json_t *part, *t, *ty;
	size_t i;

	*out = NULL;
	if (c == NULL || json_is_null(c))
		return 0;
	if (json_is_string(c)) {
		*out = front_http_zdup(z, json_string_value(c),
		    json_string_length(c));
		return 0;
	}
	if (!json_is_array(c)) {
		front_http_bad(fr,
		    "messages[%zu].content must be a string "
		    "or an array of parts",
		    idx);
		return -1;
	}
	json_array_foreach(c, i, part) {
		ty = json_object_get(part, "type");
		t = json_object_get(part, "text");
		if (!json_is_string(ty) ||
		    strcmp(json_string_value(ty), "text") != 0 ||
		    !json_is_string(t)) {
			front_http_bad(fr,
			    "messages[%zu].content[%zu]: only "
			    "text parts are supported",
			    idx, i);
			buf_free(&b);
			return -1;
		}
		buf_add(&b, json_string_value(t), json_string_length(t));
	}
	*out = front_http_zdup(z, buf_cstr(&b), b.len);
	buf_free(&b);
	return 0;
}

static int
front_openai_tool_calls(struct front_req *fr, msgpack_zone *z, json_t *tc,
    size_t idx, struct llmgate_message *m)
{
	json_t *t, *fn, *id, *name, *args;
	size_t i;

	if (!json_is_array(tc)) {
		front_http_bad(fr,
		    "messages[%zu].tool_calls must be an "
		    "array",
		    idx);
		return -1;
	}
	m->ntool_calls = json_array_size(tc);
	m->tool_calls =
	    front_http_zalloc(z, m->ntool_calls, sizeof *m->tool_calls);
	json_array_foreach(tc, i, t) {
		fn = json_object_get(t, "function");
		id = json_object_get(t, "id");
		name = json_object_get(fn, "name");
		args = json_object_get(fn, "arguments");
		if (!json_is_string(id) || !json_is_string(name) ||
		    (args != NULL && !json_is_string(args))) {
			front_http_bad(fr,
			    "messages[%zu].tool_calls[%zu] "
			    "needs id and function.name (strings) and "
			    "function.arguments (a JSON string)",
			    idx, i);
			return -1;
		}
		m->tool_calls[i].id = front_http_zdup(z, json_string_value(id),
		    json_string_length(id));
		m->tool_calls[i].name = front_http_zdup(z,
		    json_string_value(name), json_string_length(name));
		m->tool_calls[i].arguments = args != NULL ?
		    front_http_zdup(z, json_string_value(args),
		        json_string_length(args)) :
		    front_http_zdup(z, "{}", 2);
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
front_openai_messages(struct front_req *fr, msgpack_zone *z, json_t *msgs,
    struct llmgate_request *req)
{
	struct buf sys = { NULL, 0, 0 };
	struct llmgate_message *m;
	json_t *jm, *role, *tcid;
	const char *r;
	char *text;
	size_t i;

	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		front_http_bad(fr, "messages must be a non-empty array");
		return -1;
	}
	req->messages =
	    front_http_zalloc(z, json_array_size(msgs), sizeof *req->messages);
	json_array_foreach(msgs, i, jm) {
		role = json_object_get(jm, "role");
		if (!json_is_object(jm) || !json_is_string(role)) {
			front_http_bad(fr, "messages[%zu] needs a role", i);
			goto fail;
		}
		r = json_string_value(role);
		if (front_openai_text(fr, z, json_object_get(jm, "content"), i,
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
			if (json_object_get(jm, "tool_calls") != NULL &&
			    !json_is_null(json_object_get(jm, "tool_calls")) &&
			    front_openai_tool_calls(fr, z,
			        json_object_get(jm, "tool_calls"), i, m) != 0)
				goto fail;
		} else if (strcmp(r, "tool") == 0) {
			m->role = LLMGATE_ROLE_TOOL;
			tcid = json_object_get(jm, "tool_call_id");
			if (!json_is_string(tcid)) {
				front_http_bad(fr,
				    "messages[%zu]: a tool "
				    "message needs tool_call_id",
				    i);
				goto fail;
			}
			m->tool_call_id = front_http_zdup(z,
			    json_string_value(tcid), json_string_length(tcid));
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
front_openai_tools(struct front_req *fr, msgpack_zone *z, json_t *tools,
    json_t *choice, struct llmgate_request *req)
{
	json_t *t, *fn, *name, *desc, *params;
	const char *c = "auto";
	char *s;
	size_t i;

	if (choice != NULL && !json_is_null(choice)) {
		fn = json_object_get(choice, "function");
		name = json_object_get(fn, "name");
		if (json_is_string(choice) &&
		    llmgate_tool_choice_from_name(json_string_value(choice)) >=
		        0)
			c = json_string_value(choice);
		else if (json_is_string(json_object_get(choice, "type")) &&
		    strcmp(json_string_value(json_object_get(choice, "type")),
		        "function") == 0 &&
		    json_is_string(name)) {
			c = "required";
			req->tool_name = front_http_zdup(z,
			    json_string_value(name), json_string_length(name));
		} else {
			front_http_bad(fr,
			    "tool_choice must be \"auto\", "
			    "\"none\", \"required\" or {\"type\": "
			    "\"function\", \"function\": {\"name\": ...}}");
			return -1;
		}
		/* "none" drops the tools below; auto is the default. */
		if (strcmp(c, "required") == 0)
			req->tool_choice = LLMGATE_TOOLS_REQUIRED;
	}
	if (tools == NULL || json_is_null(tools))
		return 0;
	if (!json_is_array(tools)) {
		front_http_bad(fr, "tools must be an array");
		return -1;
	}
	/* "none": the model is not offered the tools at all. */
	if (strcmp(c, "none") == 0)
		return 0;
	req->ntools = json_array_size(tools);
	req->tools = front_http_zalloc(z, req->ntools, sizeof *req->tools);
	json_array_foreach(tools, i, t) {
		fn = json_object_get(t, "function");
		name = json_object_get(fn, "name");
		desc = json_object_get(fn, "description");
		params = json_object_get(fn, "parameters");
		if (!json_is_string(json_object_get(t, "type")) ||
		    strcmp(json_string_value(json_object_get(t, "type")),
		        "function") != 0 ||
		    !json_is_string(name)) {
			front_http_bad(fr,
			    "tools[%zu] must be {\"type\": "
			    "\"function\", \"function\": {\"name\": ...}}",
			    i);
			return -1;
		}
		if (params != NULL && !json_is_object(params)) {
			front_http_bad(fr,
			    "tools[%zu].function.parameters "
			    "must be a JSON Schema object",
			    i);
			return -1;
		}
		req->tools[i].name = front_http_zdup(z, json_string_value(name),
		    json_string_length(name));
		if (json_is_string(desc))
			req->tools[i].description = front_http_zdup(z,
			    json_string_value(desc), json_string_length(desc));
		if (params != NULL) {
			s = json_dumps(params, JSON_COMPACT);
			req->tools[i].parameters =
			    front_http_zdup(z, s, strlen(s));
			free(s);
		}
	}
	return 0;
}

static int
front_openai_format(struct front_req *fr, msgpack_zone *z, json_t *rf,
    struct llmgate_request *req)
{
	json_t *type, *js, *schema;
	const char *t;
	char *s;

	if (rf == NULL || json_is_null(rf))
		return 0;
	type = json_object_get(rf, "type");
	if (!json_is_string(type)) {
		front_http_bad(fr, "response_format needs a type");
		return -1;
	}
	t = json_string_value(type);
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
	js = json_object_get(rf, "json_schema");
	schema = json_object_get(js, "schema");
	if (!json_is_object(schema)) {
		front_http_bad(fr,
		    "response_format.json_schema.schema must "
		    "be a JSON Schema object");
		return -1;
	}
	s = json_dumps(schema, JSON_COMPACT);
	req->schema = front_http_zdup(z, s, strlen(s));
	free(s);
	return 0;
}

/* Neutral values only for what the daemon cannot do. */
static int
front_openai_unsupported(struct front_req *fr, json_t *body)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(body, key, v) {
		for (i = 0;
		     i < sizeof front_openai_keys / sizeof front_openai_keys[0];
		     i++) {
			if (strcmp(key, front_openai_keys[i]) == 0)
				break;
		}
		if (i ==
		    sizeof front_openai_keys / sizeof front_openai_keys[0]) {
			front_http_bad(fr,
			    "parameter '%s' is not supported "
			    "by llmgated",
			    key);
			return -1;
		}
	}
	v = json_object_get(body, "n");
	if (v != NULL && !json_is_null(v) &&
	    (!json_is_integer(v) || json_integer_value(v) != 1)) {
		front_http_bad(fr, "n: only 1 choice is supported");
		return -1;
	}
	if (json_is_true(json_object_get(body, "logprobs"))) {
		front_http_bad(fr, "logprobs are not supported");
		return -1;
	}
	if (json_is_false(json_object_get(body, "parallel_tool_calls"))) {
		front_http_bad(fr,
		    "parallel_tool_calls = false is not "
		    "supported");
		return -1;
	}
	if (json_is_true(json_object_get(body, "store"))) {
		front_http_bad(fr, "store = true is not supported");
		return -1;
	}
	v = json_object_get(body, "frequency_penalty");
	if (v != NULL && !json_is_null(v) && json_number_value(v) != 0) {
		front_http_bad(fr, "frequency_penalty is not supported");
		return -1;
	}
	v = json_object_get(body, "presence_penalty");
	if (v != NULL && !json_is_null(v) && json_number_value(v) != 0) {
		front_http_bad(fr, "presence_penalty is not supported");
		return -1;
	}
	return 0;
}

static int
front_openai_sampling(struct front_req *fr, msgpack_zone *z, json_t *body,
    struct llmgate_request *req)
{
	json_t *v, *s;
	size_t i;

	v = json_object_get(body, "max_completion_tokens");
	if (v == NULL || json_is_null(v))
		v = json_object_get(body, "max_tokens");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > UINT32_MAX) {
			front_http_bad(fr,
			    "max_tokens must be a positive "
			    "integer");
			return -1;
		}
		req->has |= LLMGATE_HAS_MAX_TOKENS;
		req->max_tokens = (uint32_t)json_integer_value(v);
	}
	v = json_object_get(body, "temperature");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_number(v) || json_number_value(v) < 0 ||
		    json_number_value(v) > 2) {
			front_http_bad(fr,
			    "temperature must be a number "
			    "from 0 to 2");
			return -1;
		}
		req->has |= LLMGATE_HAS_TEMPERATURE;
		req->temperature = json_number_value(v);
	}
	v = json_object_get(body, "top_p");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_number(v) || json_number_value(v) < 0 ||
		    json_number_value(v) > 1) {
			front_http_bad(fr,
			    "top_p must be a number from 0 "
			    "to 1");
			return -1;
		}
		req->has |= LLMGATE_HAS_TOP_P;
		req->top_p = json_number_value(v);
	}
	v = json_object_get(body, "seed");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v)) {
			front_http_bad(fr, "seed must be an integer");
			return -1;
		}
		req->has |= LLMGATE_HAS_SEED;
		req->seed = json_integer_value(v);
	}
	v = json_object_get(body, "stop");
	if (v != NULL && !json_is_null(v)) {
		if (json_is_string(v)) {
			req->stop = front_http_zalloc(z, 1, sizeof *req->stop);
			req->stop[0] = front_http_zdup(z, json_string_value(v),
			    json_string_length(v));
			req->nstop = 1;
		} else if (json_is_array(v) && json_array_size(v) <= 16) {
			req->stop = front_http_zalloc(z, json_array_size(v),
			    sizeof *req->stop);
			json_array_foreach(v, i, s) {
				if (!json_is_string(s)) {
					front_http_bad(fr,
					    "stop[%zu] must "
					    "be a string",
					    i);
					return -1;
				}
				req->stop[i] =
				    front_http_zdup(z, json_string_value(s),
				        json_string_length(s));
			}
			req->nstop = json_array_size(v);
		} else {
			front_http_bad(fr,
			    "stop must be a string or an "
			    "array of at most 16 strings");
			return -1;
		}
	}
	v = json_object_get(body, "stream");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_boolean(v)) {
			front_http_bad(fr, "stream must be true or false");
			return -1;
		}
		fr->stream = json_is_true(v);
	}
	v = json_object_get(body, "stream_options");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_object(v)) {
			front_http_bad(fr,
			    "stream_options must be an "
			    "object");
			return -1;
		}
		fr->include_usage =
		    json_is_true(json_object_get(v, "include_usage"));
	}
	return 0;
}

/* Translate the body into req (its strings in z); -1 when refused. */
static int
front_openai_parse(struct front_req *fr, json_t *body, msgpack_zone *z,
    struct llmgate_request *req)
{
	json_t *model;

	if (front_openai_unsupported(fr, body) != 0)
		return -1;
	model = json_object_get(body, "model");
	if (!json_is_string(model)) {
		front_http_bad(fr, "model must be a string");
		return -1;
	}
	fr->model = xstrdup(json_string_value(model));
	fr->dstate = xcalloc(1, sizeof(struct front_openai_state));
	if (front_openai_messages(fr, z, json_object_get(body, "messages"),
	        req) != 0 ||
	    front_openai_tools(fr, z, json_object_get(body, "tools"),
	        json_object_get(body, "tool_choice"), req) != 0 ||
	    front_openai_format(fr, z, json_object_get(body, "response_format"),
	        req) != 0 ||
	    front_openai_sampling(fr, z, body, req) != 0)
		return -1;
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
