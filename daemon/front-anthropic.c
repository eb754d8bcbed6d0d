/*
 * front-anthropic.c: the Anthropic Messages dialect of the HTTP front.
 * POST /v1/messages in, a message (or its full event stream, from
 * message_start to message_stop) out, whatever provider answered. What
 * the daemon cannot honour is refused with a 400 that names it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

enum { FA_NONE, FA_TEXT, FA_TOOL };

struct front_anthropic_state {
	int started; /* message_start sent */
	int block;   /* FA_*: the open content block */
	int tool;    /* its tool index, for FA_TOOL */
	int index;   /* its index; -1 before the first */
};

/* The body's members, in the order of enum front_anthropic_key. */
enum front_anthropic_key {
	FAK_MODEL,
	FAK_MESSAGES,
	FAK_MODELS,
	FAK_SYSTEM,
	FAK_MAX_TOKENS,
	FAK_TOOLS,
	FAK_TOOL_CHOICE,
	FAK_STOP_SEQUENCES,
	FAK_TEMPERATURE,
	FAK_TOP_P,
	FAK_STREAM,
	FAK_METADATA,
	FAK_SERVICE_TIER,
	FAK_NKEYS
};
static const char *const front_anthropic_keys[FAK_NKEYS] = {
	"model",
	"messages",
	"models",
	"system",
	"max_tokens",
	"tools",
	"tool_choice",
	"stop_sequences",
	"temperature",
	"top_p",
	"stream",
	"metadata",
	"service_tier",
};

/* Text of a string or of text blocks (system, tool_result content). */
static int
front_anthropic_text(struct front_req *fr, const struct jdoc *d, int c,
    const char *what, struct buf *b)
{
	size_t i;
	int blk;

	if (!jdoc_given(d, c))
		return 0;
	if (front_http_jadd(b, d, c) == 0)
		return 0;
	if (jdoc_type(d, c) != JDOC_ARRAY) {
		front_http_bad(fr,
		    "%s must be a string or an array of "
		    "text blocks",
		    what);
		return -1;
	}
	for (i = 0, blk = c + 1; i < (size_t)jdoc_size(d, c);
	     i++, blk = jdoc_next(d, blk)) {
		if (!jdoc_streq(d, jdoc_get(d, blk, "type"), "text") ||
		    jdoc_type(d, jdoc_get(d, blk, "text")) != JDOC_STRING) {
			front_http_bad(fr,
			    "%s[%zu]: only text blocks are "
			    "supported here",
			    what, i);
			return -1;
		}
		if (b->len != 0 && strcmp(what, "system") == 0)
			buf_addstr(b, "\n\n");
		(void)front_http_jadd(b, d, jdoc_get(d, blk, "text"));
	}
	return 0;
}

static struct llmgate_message *
front_anthropic_push(msgpack_zone *z, struct llmgate_request *req, size_t *cap)
{
	struct llmgate_message *m;

	if (req->nmessages == *cap) {
		m = front_http_zalloc(z, *cap * 2 + 4, sizeof *m);
		if (req->nmessages != 0)
			memcpy(m, req->messages, req->nmessages * sizeof *m);
		req->messages = m;
		*cap = *cap * 2 + 4;
	}
	m = &req->messages[req->nmessages++];
	memset(m, 0, sizeof *m);
	return m;
}

static char *
front_anthropic_tool_name(struct llmgate_request *req, const char *id)
{
	size_t i, j;

	for (i = req->nmessages; i-- > 0;) {
		for (j = 0; j < req->messages[i].ntool_calls; j++) {
			if (strcmp(req->messages[i].tool_calls[j].id, id) == 0)
				return req->messages[i].tool_calls[j].name;
		}
	}
	return NULL;
}

/* One turn: text blocks, tool_use (assistant), tool_result (user). */
static int
front_anthropic_turn(struct front_req *fr, msgpack_zone *z,
    const struct jdoc *d, int jm, size_t idx, struct llmgate_request *req,
    size_t *cap)
{
	struct buf text = { NULL, 0, 0 }, res = { NULL, 0, 0 };
	struct llmgate_message *m;
	struct llmgate_tool_call *tcs = NULL;
	size_t i, ntc = 0, n;
	const char *t;
	char what[96], *s, *id;
	int assistant, c, blk;

	assistant = jdoc_streq(d, jdoc_get(d, jm, "role"), "assistant");
	if (!assistant && !jdoc_streq(d, jdoc_get(d, jm, "role"), "user")) {
		front_http_bad(fr,
		    "messages[%zu]: role must be user or "
		    "assistant",
		    idx);
		return -1;
	}
	c = jdoc_get(d, jm, "content");
	if (jdoc_type(d, c) == JDOC_STRING) {
		m = front_anthropic_push(z, req, cap);
		m->role =
		    assistant ? LLMGATE_ROLE_ASSISTANT : LLMGATE_ROLE_USER;
		m->content = front_http_jstr(z, d, c);
		return 0;
	}
	if (jdoc_type(d, c) != JDOC_ARRAY) {
		front_http_bad(fr,
		    "messages[%zu].content must be a string "
		    "or an array of content blocks",
		    idx);
		return -1;
	}
	n = (size_t)jdoc_size(d, c);
	if (assistant && n != 0)
		tcs = front_http_zalloc(z, n, sizeof *tcs);
	for (i = 0, blk = c + 1; i < n; i++, blk = jdoc_next(d, blk)) {
		t = front_http_jstr(z, d, jdoc_get(d, blk, "type"));
		if (t == NULL)
			t = "";
		if (strcmp(t, "text") == 0 &&
		    front_http_jadd(&text, d, jdoc_get(d, blk, "text")) == 0) {
			/* appended */
		} else if (assistant && strcmp(t, "tool_use") == 0) {
			tcs[ntc].id =
			    front_http_jstr(z, d, jdoc_get(d, blk, "id"));
			tcs[ntc].name =
			    front_http_jstr(z, d, jdoc_get(d, blk, "name"));
			if (tcs[ntc].id == NULL || tcs[ntc].name == NULL) {
				front_http_bad(fr,
				    "messages[%zu].content"
				    "[%zu]: tool_use needs id and name",
				    idx, i);
				goto fail;
			}
			tcs[ntc].arguments = jdoc_get(d, blk, "input") != -1 ?
			    front_http_jdump(z, d, jdoc_get(d, blk, "input")) :
			    front_http_zdup(z, "{}", 2);
			ntc++;
		} else if (!assistant && strcmp(t, "tool_result") == 0) {
			id = front_http_jstr(z, d,
			    jdoc_get(d, blk, "tool_use_id"));
			if (id == NULL) {
				front_http_bad(fr,
				    "messages[%zu].content"
				    "[%zu]: tool_result needs tool_use_id",
				    idx, i);
				goto fail;
			}
			buf_reset(&res);
			snprintf(what, sizeof what,
			    "messages[%zu].content[%zu]"
			    ".content",
			    idx, i);
			if (front_anthropic_text(fr, d,
			        jdoc_get(d, blk, "content"), what, &res) != 0)
				goto fail;
			m = front_anthropic_push(z, req, cap);
			m->role = LLMGATE_ROLE_TOOL;
			m->tool_call_id = id;
			m->name =
			    front_anthropic_tool_name(req, m->tool_call_id);
			xasprintf(&s, "%s%s",
			    jdoc_is(d, jdoc_get(d, blk, "is_error"), "true") ?
			        "Error: " :
			        "",
			    buf_cstr(&res));
			m->content = front_http_zdup(z, s, strlen(s));
			free(s);
		} else {
			front_http_bad(fr,
			    "messages[%zu].content[%zu]: "
			    "block type '%s' is not supported here (text, "
			    "tool_use from the assistant, tool_result from the "
			    "user)",
			    idx, i, t);
			goto fail;
		}
	}
	if (text.len != 0 || ntc != 0 || n == 0) {
		m = front_anthropic_push(z, req, cap);
		m->role =
		    assistant ? LLMGATE_ROLE_ASSISTANT : LLMGATE_ROLE_USER;
		m->content = text.len != 0 || ntc == 0 ?
		    front_http_zdup(z, buf_cstr(&text), text.len) :
		    NULL;
		m->tool_calls = tcs;
		m->ntool_calls = ntc;
	}
	buf_free(&text);
	buf_free(&res);
	return 0;
fail:
	buf_free(&text);
	buf_free(&res);
	return -1;
}

static int
front_anthropic_tools(struct front_req *fr, msgpack_zone *z,
    const struct jdoc *d, int tools, int choice, struct llmgate_request *req)
{
	const char *c = "auto";
	int t, name, schema, ty;
	size_t i;

	if (jdoc_given(d, choice)) {
		ty = jdoc_get(d, choice, "type");
		name = jdoc_get(d, choice, "name");
		if (!jdoc_streq(d, ty, "auto") && !jdoc_streq(d, ty, "none") &&
		    !jdoc_streq(d, ty, "any") &&
		    (!jdoc_streq(d, ty, "tool") ||
		        jdoc_type(d, name) != JDOC_STRING)) {
			front_http_bad(fr,
			    "tool_choice must be {\"type\": "
			    "\"auto\"}, {\"type\": \"any\"}, {\"type\": "
			    "\"tool\", \"name\": ...} or {\"type\": \"none\"}");
			return -1;
		}
		/* "none" goes with the tools, below; auto is the default. */
		if (jdoc_streq(d, ty, "any"))
			req->tool_choice = LLMGATE_TOOLS_REQUIRED;
		else if (jdoc_streq(d, ty, "tool")) {
			req->tool_choice = LLMGATE_TOOLS_REQUIRED;
			req->tool_name = front_http_jstr(z, d, name);
		}
		if (jdoc_is(d, jdoc_get(d, choice, "disable_parallel_tool_use"),
		        "true")) {
			front_http_bad(fr,
			    "disable_parallel_tool_use is "
			    "not supported");
			return -1;
		}
		c = front_http_jstr(z, d, ty);
	}
	if (!jdoc_given(d, tools))
		return 0;
	if (jdoc_type(d, tools) != JDOC_ARRAY) {
		front_http_bad(fr, "tools must be an array");
		return -1;
	}
	/* "none": the tools are still sent, with a choice of none, since a
	 * conversation that holds tool_use blocks needs them. */
	if (strcmp(c, "none") == 0 && jdoc_size(d, tools) != 0)
		req->tool_choice = LLMGATE_TOOLS_NONE;
	req->ntools = (size_t)jdoc_size(d, tools);
	req->tools = front_http_zalloc(z, req->ntools, sizeof *req->tools);
	for (i = 0, t = tools + 1; i < req->ntools; i++, t = jdoc_next(d, t)) {
		name = jdoc_get(d, t, "name");
		schema = jdoc_get(d, t, "input_schema");
		ty = jdoc_get(d, t, "type");
		if (jdoc_type(d, name) != JDOC_STRING ||
		    jdoc_type(d, schema) != JDOC_OBJECT ||
		    (ty != -1 && !jdoc_streq(d, ty, "custom"))) {
			front_http_bad(fr,
			    "tools[%zu] needs name and "
			    "input_schema (client tools only)",
			    i);
			return -1;
		}
		req->tools[i].name = front_http_jstr(z, d, name);
		req->tools[i].description =
		    front_http_jstr(z, d, jdoc_get(d, t, "description"));
		req->tools[i].parameters = front_http_jdump(z, d, schema);
	}
	return 0;
}

/* m: the body's members (enum front_anthropic_key); unknown: the key
 * token of the first unknown one, or 0. */
static int
front_anthropic_params(struct front_req *fr, msgpack_zone *z,
    const struct jdoc *d, const int *m, int unknown,
    struct llmgate_request *req)
{
	int64_t n;
	size_t i;
	int v, rc;

	if (unknown != 0) {
		front_http_bad(fr,
		    "%s: parameter not supported "
		    "by llmgated",
		    front_http_jstr(z, d, unknown));
		return -1;
	}
	v = m[FAK_MAX_TOKENS];
	if (jdoc_int(d, v, &n) != 0 || n < 1 || n > UINT32_MAX) {
		front_http_bad(fr,
		    "max_tokens: a positive integer is "
		    "required");
		return -1;
	}
	req->has |= LLMGATE_HAS_MAX_TOKENS;
	req->max_tokens = (uint32_t)n;
	v = m[FAK_TEMPERATURE];
	if (jdoc_given(d, v)) {
		if (front_http_jrange(d, v, 0, 1, &req->temperature) != 0) {
			front_http_bad(fr,
			    "temperature: a number from 0 "
			    "to 1");
			return -1;
		}
		req->has |= LLMGATE_HAS_TEMPERATURE;
	}
	v = m[FAK_TOP_P];
	if (jdoc_given(d, v)) {
		if (front_http_jrange(d, v, 0, 1, &req->top_p) != 0) {
			front_http_bad(fr, "top_p: a number from 0 to 1");
			return -1;
		}
		req->has |= LLMGATE_HAS_TOP_P;
	}
	v = m[FAK_STOP_SEQUENCES];
	if (jdoc_given(d, v) &&
	    (rc = front_http_jstrs(z, d, v, 16, &req->stop, &req->nstop, &i)) !=
	        0) {
		if (rc == -2)
			front_http_bad(fr, "stop_sequences[%zu]: a string", i);
		else
			front_http_bad(fr,
			    "stop_sequences: an array of "
			    "at most 16 strings");
		return -1;
	}
	v = m[FAK_STREAM];
	if (jdoc_given(d, v) && !jdoc_is(d, v, "true") &&
	    !jdoc_is(d, v, "false")) {
		front_http_bad(fr, "stream: true or false");
		return -1;
	}
	fr->stream = jdoc_is(d, v, "true");
	return 0;
}

/* Translate the body into req (its strings in z); -1 when refused. */
static int
front_anthropic_parse(struct front_req *fr, const struct jdoc *d,
    msgpack_zone *z, struct llmgate_request *req)
{
	struct buf sys = { NULL, 0, 0 };
	size_t cap = 0, i;
	int m[FAK_NKEYS], unknown, msgs, jm;
	char *model;

	unknown = jdoc_members(d, 0, front_anthropic_keys, FAK_NKEYS, m);
	if ((model = front_http_jstr(z, d, m[FAK_MODEL])) == NULL) {
		front_http_bad(fr, "model: a string is required");
		return -1;
	}
	fr->model = xstrdup(model);
	fr->dstate = xcalloc(1, sizeof(struct front_anthropic_state));
	((struct front_anthropic_state *)fr->dstate)->index = -1;
	msgs = m[FAK_MESSAGES];
	if (jdoc_type(d, msgs) != JDOC_ARRAY || jdoc_size(d, msgs) == 0) {
		front_http_bad(fr,
		    "messages: a non-empty array is "
		    "required");
		return -1;
	}
	if (front_anthropic_params(fr, z, d, m, unknown, req) != 0)
		goto fail;
	if (front_anthropic_text(fr, d, m[FAK_SYSTEM], "system", &sys) != 0)
		goto fail;
	if (sys.len != 0)
		req->system = front_http_zdup(z, sys.data, sys.len);
	for (i = 0, jm = msgs + 1; i < (size_t)jdoc_size(d, msgs);
	     i++, jm = jdoc_next(d, jm)) {
		if (front_anthropic_turn(fr, z, d, jm, i, req, &cap) != 0)
			goto fail;
	}
	if (front_anthropic_tools(fr, z, d, m[FAK_TOOLS], m[FAK_TOOL_CHOICE],
	        req) != 0)
		goto fail;
	buf_free(&sys);
	return 0;
fail:
	buf_free(&sys);
	return -1;
}

static const char *
front_anthropic_stop_reason(enum llmgate_finish f)
{
	switch (f) {
	case LLMGATE_FINISH_LENGTH:
		return "max_tokens";
	case LLMGATE_FINISH_TOOL_CALLS:
		return "tool_use";
	case LLMGATE_FINISH_CONTENT_FILTER:
		return "refusal";
	default:
		return "end_turn";
	}
}

/*
 * stop_reason and stop_sequence. A stop is stop_sequence only when the
 * upstream said which sequence ended it (an Anthropic target); OpenAI's
 * and Gemini's stop does not tell a sequence from the natural end.
 */
static void
front_anthropic_stop(struct jwrite *w, const struct llmgate_result *res)
{
	if (res->finish == LLMGATE_FINISH_STOP && res->stop_sequence != NULL) {
		jwrite_str(w, "stop_reason", "stop_sequence");
		jwrite_str(w, "stop_sequence", res->stop_sequence);
		return;
	}
	jwrite_str(w, "stop_reason", front_anthropic_stop_reason(res->finish));
	jwrite_null(w, "stop_sequence");
}

/* A tool call's input: its arguments when they are a JSON object. */
static void
front_anthropic_input(struct jwrite *w, const char *args)
{
	json_t *j = args != NULL ? jload(args, strlen(args), NULL) : NULL;

	if (json_is_object(j))
		jwrite_json(w, "input", j);
	else
		jwrite_raw(w, "input", "{}");
	json_decref(j);
}

/* Begin an event in b: its event: line and data with "type" first, as
 * Anthropic writes it. */
static void
front_anthropic_begin(struct buf *b, struct jwrite *w, const char *type)
{
	front_http_sse_begin(b, type);
	jwrite_init(w, b, 0);
	jwrite_open(w, NULL, '{');
	jwrite_str(w, "type", type);
}

static void
front_anthropic_end(struct front_req *fr, struct buf *b, struct jwrite *w)
{
	jwrite_close(w, '}');
	front_http_sse_text(fr, b);
}

/* An event of just its type and the content block's index (or none). */
static void
front_anthropic_event(struct front_req *fr, const char *type, int index)
{
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	front_anthropic_begin(&b, &w, type);
	if (index >= 0)
		jwrite_int(&w, "index", index);
	front_anthropic_end(fr, &b, &w);
}

/*
 * message_start. Its usage is what the upstream has told so far: an
 * Anthropic upstream's own message_start and Gemini's first chunk give the
 * input tokens, OpenAI's stream only its end (0 here); message_delta's
 * usage has the final counts.
 */
static void
front_anthropic_start(struct front_req *fr, uint64_t input_tokens)
{
	struct front_anthropic_state *st = fr->dstate;
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	if (st->started)
		return;
	st->started = 1;
	front_anthropic_begin(&b, &w, "message_start");
	jwrite_open(&w, "message", '{');
	jwrite_str(&w, "id", fr->id);
	jwrite_str(&w, "type", "message");
	jwrite_str(&w, "role", "assistant");
	jwrite_str(&w, "model", fr->model);
	jwrite_open(&w, "content", '[');
	jwrite_close(&w, ']');
	jwrite_null(&w, "stop_reason");
	jwrite_null(&w, "stop_sequence");
	jwrite_open(&w, "usage", '{');
	jwrite_int(&w, "input_tokens", (long long)input_tokens);
	jwrite_int(&w, "output_tokens", 0);
	jwrite_close(&w, '}');
	jwrite_close(&w, '}');
	front_anthropic_end(fr, &b, &w);
}

static void
front_anthropic_close(struct front_req *fr)
{
	struct front_anthropic_state *st = fr->dstate;

	if (st->block == FA_NONE)
		return;
	front_anthropic_event(fr, "content_block_stop", st->index);
	st->block = FA_NONE;
}

/* Open content block st->index + 1 of kind block, its start event sent. */
static void
front_anthropic_block(struct front_req *fr, int block,
    const struct llmgate_chunk *ch)
{
	struct front_anthropic_state *st = fr->dstate;
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	front_anthropic_close(fr);
	st->block = block;
	st->tool = ch->tool_index;
	st->index++;
	front_anthropic_begin(&b, &w, "content_block_start");
	jwrite_int(&w, "index", st->index);
	jwrite_open(&w, "content_block", '{');
	if (block == FA_TOOL) {
		jwrite_str(&w, "type", "tool_use");
		jwrite_str(&w, "id", ch->tool_id != NULL ? ch->tool_id : "");
		jwrite_str(&w, "name",
		    ch->tool_name != NULL ? ch->tool_name : "");
		jwrite_raw(&w, "input", "{}");
	} else {
		jwrite_str(&w, "type", "text");
		jwrite_str(&w, "text", "");
	}
	jwrite_close(&w, '}');
	front_anthropic_end(fr, &b, &w);
}

/* A content_block_delta of the open block: its kind and its text. */
static void
front_anthropic_delta(struct front_req *fr, const char *type, const char *key,
    const char *text, size_t len)
{
	struct front_anthropic_state *st = fr->dstate;
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	front_anthropic_begin(&b, &w, "content_block_delta");
	jwrite_int(&w, "index", st->index);
	jwrite_open(&w, "delta", '{');
	jwrite_str(&w, "type", type);
	jwrite_strn(&w, key, text, len);
	jwrite_close(&w, '}');
	front_anthropic_end(fr, &b, &w);
}

static void
front_anthropic_chunk(struct front_req *fr, const struct llmgate_chunk *ch)
{
	struct front_anthropic_state *st = fr->dstate;

	if (ch->reset)
		return;
	front_anthropic_start(fr,
	    fr->call != NULL ? call_input_tokens(fr->call) : 0);
	if (ch->tool_index >= 0) {
		if (st->block != FA_TOOL || st->tool != ch->tool_index)
			front_anthropic_block(fr, FA_TOOL, ch);
		if (ch->tool_args != NULL && *ch->tool_args != '\0')
			front_anthropic_delta(fr, "input_json_delta",
			    "partial_json", ch->tool_args,
			    strlen(ch->tool_args));
		return;
	}
	if (ch->len == 0)
		return;
	if (st->block != FA_TEXT)
		front_anthropic_block(fr, FA_TEXT, ch);
	front_anthropic_delta(fr, "text_delta", "text", ch->text, ch->len);
}

static void
front_anthropic_usage(struct jwrite *w, const struct llmgate_result *res)
{
	jwrite_open(w, "usage", '{');
	jwrite_int(w, "input_tokens", (long long)res->input_tokens);
	jwrite_int(w, "output_tokens", (long long)res->output_tokens);
	jwrite_close(w, '}');
}

/* The end of a stream: message_delta with the stop reason, message_stop. */
static void
front_anthropic_stream_done(struct front_req *fr,
    const struct llmgate_result *res)
{
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;

	front_anthropic_start(fr, res->input_tokens);
	front_anthropic_close(fr);
	front_anthropic_begin(&b, &w, "message_delta");
	jwrite_open(&w, "delta", '{');
	front_anthropic_stop(&w, res);
	jwrite_close(&w, '}');
	front_anthropic_usage(&w, res);
	front_http_llmgate_text(&w, res);
	front_anthropic_end(fr, &b, &w);
	front_anthropic_event(fr, "message_stop", -1);
	front_http_end(fr);
}

static void
front_anthropic_done(struct front_req *fr, const struct llmgate_result *res)
{
	const struct llmgate_tool_call *tc;
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;
	size_t i;

	if (fr->stream) {
		front_anthropic_stream_done(fr, res);
		return;
	}
	jwrite_init(&w, &b, 0);
	jwrite_open(&w, NULL, '{');
	jwrite_str(&w, "id", fr->id);
	jwrite_str(&w, "type", "message");
	jwrite_str(&w, "role", "assistant");
	jwrite_str(&w, "model", fr->model);
	jwrite_open(&w, "content", '[');
	if (res->text != NULL && *res->text != '\0') {
		jwrite_open(&w, NULL, '{');
		jwrite_str(&w, "type", "text");
		jwrite_str(&w, "text", res->text);
		jwrite_close(&w, '}');
	}
	for (i = 0; i < res->ntool_calls; i++) {
		tc = &res->tool_calls[i];
		jwrite_open(&w, NULL, '{');
		jwrite_str(&w, "type", "tool_use");
		jwrite_str(&w, "id", tc->id != NULL ? tc->id : "");
		jwrite_str(&w, "name", tc->name != NULL ? tc->name : "");
		front_anthropic_input(&w, tc->arguments);
		jwrite_close(&w, '}');
	}
	jwrite_close(&w, ']');
	front_anthropic_stop(&w, res);
	front_anthropic_usage(&w, res);
	front_http_llmgate_text(&w, res);
	jwrite_close(&w, '}');
	front_http_text(fr, 200, &b, res);
}

static void
front_anthropic_error_body(struct front_req *fr, struct jwrite *w, int status,
    const struct front_error *fe, const char *code, const char *msg)
{
	const char *type = fe->anthropic_type;

	if (status == 401)
		type = "authentication_error";
	else if (status == 403)
		type = "permission_error";
	else if (status == 404)
		type = "not_found_error";
	else if (status == 413)
		type = "request_too_large";
	else if (status == 429)
		type = "rate_limit_error";
	else if (status == 400 || status == 405)
		type = "invalid_request_error";
	jwrite_str(w, "type", "error");
	jwrite_open(w, "error", '{');
	jwrite_str(w, "type", type);
	jwrite_str(w, "message", msg);
	jwrite_str(w, "code", code);
	jwrite_close(w, '}');
}

const struct front_dialect front_anthropic = {
	.name = "anthropic",
	.id_prefix = "msg_",
	.attach_attempts = 1,
	.overloaded = 529,
	.parse = front_anthropic_parse,
	.chunk = front_anthropic_chunk,
	.done = front_anthropic_done,
	.error_body = front_anthropic_error_body,
	.error_event = "error",
};
