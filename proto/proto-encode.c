/*
 * proto-encode.c: structs into frames (proto_enc_* and the proto_put_*
 * helpers).
 *
 * Encoding packs every map twice over the same function, once counting its
 * keys and once packing them, so that the condition for sending a key is
 * written in one place only.
 */
#include <sys/types.h>

#include <math.h>
#include <string.h>

#include "proto.h"
#include "proto-int.h"

struct proto_enc {
	msgpack_packer *pk;
	int counting;
	uint32_t n;
};

typedef void proto_enc_fn(struct proto_enc *, const void *);

struct proto_top {
	enum proto_type type;
	uint32_t id;
	proto_enc_fn *fn;
	const void *arg;
};

/* Encoders "never fail short of memory": neither does their buffer. */
static int
proto_sb_write(void *data, const char *buf, size_t len)
{
	msgpack_sbuffer *sb = data;

	if (msgpack_sbuffer_write(sb, buf, len) != 0)
		proto_nomem(sb->size + len);
	return 0;
}

static void
proto_enc_map(msgpack_packer *pk, proto_enc_fn *fn, const void *arg)
{
	struct proto_enc e = { .pk = pk, .counting = 1 };

	fn(&e, arg);
	msgpack_pack_map(pk, e.n);
	e.counting = 0;
	fn(&e, arg);
}

/* Counts the key, or packs it and says the value is to follow. */
static int
proto_key(struct proto_enc *e, const char *key)
{
	if (e->counting) {
		e->n++;
		return 0;
	}
	msgpack_pack_str_with_body(e->pk, key, strlen(key));
	return 1;
}

static void
proto_pack_cstr(msgpack_packer *pk, const char *s)
{
	if (s == NULL)
		s = "";
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
proto_put_str(struct proto_enc *e, const char *key, const char *s)
{
	if (s != NULL && proto_key(e, key))
		proto_pack_cstr(e->pk, s);
}

static void
proto_put_uint(struct proto_enc *e, const char *key, uint64_t v)
{
	if (proto_key(e, key))
		msgpack_pack_uint64(e->pk, v);
}

static void
proto_put_nonzero(struct proto_enc *e, const char *key, uint64_t v)
{
	if (v != 0)
		proto_put_uint(e, key, v);
}

static void
proto_put_true(struct proto_enc *e, const char *key, int v)
{
	if (v && proto_key(e, key))
		msgpack_pack_true(e->pk);
}

static void
proto_put_double(struct proto_enc *e, const char *key, double v)
{
	if (proto_key(e, key))
		msgpack_pack_double(e->pk, v);
}

/* A class by name; one without a name travels as internal. */
static void
proto_put_class(struct proto_enc *e, const char *key, enum llmgate_class cls)
{
	const char *s;

	if ((s = llmgate_class_name(cls)) == NULL)
		s = llmgate_class_name(LLMGATE_INTERNAL);
	proto_put_str(e, key, s);
}

/* An enum by name; zero, its default, is left out unless keep0. */
static void
proto_put_enum(struct proto_enc *e, const char *key, int v, int keep0,
    const char *(*name)(int))
{
	const char *s;

	if ((v != 0 || keep0) && (s = name(v)) != NULL && *s != '\0')
		proto_put_str(e, key, s);
}

static void
proto_put_strv(struct proto_enc *e, const char *key, char *const *v, size_t n)
{
	size_t i;

	if (n == 0 || v == NULL || !proto_key(e, key))
		return;
	msgpack_pack_array(e->pk, n);
	for (i = 0; i < n; i++)
		proto_pack_cstr(e->pk, v[i]);
}

static void
proto_put_maps(struct proto_enc *e, const char *key, const void *v, size_t n,
    size_t size, proto_enc_fn *fn)
{
	size_t i;

	if (n == 0 || v == NULL || !proto_key(e, key))
		return;
	msgpack_pack_array(e->pk, n);
	for (i = 0; i < n; i++)
		proto_enc_map(e->pk, fn, (const char *)v + i * size);
}

static void
proto_put_map(struct proto_enc *e, const char *key, proto_enc_fn *fn,
    const void *arg)
{
	if (proto_key(e, key))
		proto_enc_map(e->pk, fn, arg);
}

static void
proto_enc_top(struct proto_enc *e, const void *arg)
{
	const struct proto_top *top = arg;

	proto_put_str(e, "t", proto_type_name(top->type));
	proto_put_uint(e, "id", top->id);
	if (top->fn != NULL)
		top->fn(e, top->arg);
}

/* One frame: a header reserved, the map packed, the length patched. */
static void
proto_frame(msgpack_sbuffer *sb, enum proto_type type, uint32_t id,
    proto_enc_fn *fn, const void *arg)
{
	struct proto_top top = { type, id, fn, arg };
	msgpack_packer pk;
	size_t start = sb->size, len;
	unsigned char *p;

	proto_sb_write(sb, "\0\0\0\0", PROTO_HDR_LEN);
	msgpack_packer_init(&pk, sb, proto_sb_write);
	proto_enc_map(&pk, proto_enc_top, &top);
	len = sb->size - start - PROTO_HDR_LEN;
	p = (unsigned char *)sb->data + start;
	p[0] = (len >> 24) & 0xff;
	p[1] = (len >> 16) & 0xff;
	p[2] = (len >> 8) & 0xff;
	p[3] = len & 0xff;
}

static void
proto_enc_hello_fields(struct proto_enc *e, const void *arg)
{
	const struct proto_hello *h = arg;

	proto_put_uint(e, "v", h->version);
	proto_put_str(e, "name", h->name);
	proto_put_str(e, "server", h->server);
	proto_put_nonzero(e, "max_frame", h->max_frame);
}

void
proto_enc_hello(msgpack_sbuffer *sb, const struct proto_hello *h)
{
	proto_frame(sb, PROTO_HELLO, 0, proto_enc_hello_fields, h);
}

static void
proto_enc_tool_call_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_tool_call *tc = arg;

	proto_put_str(e, "id", tc->id);
	proto_put_str(e, "name", tc->name);
	proto_put_str(e, "arguments", tc->arguments);
}

static void
proto_enc_message_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_message *m = arg;

	proto_put_enum(e, "role", m->role, 1, llmgate_role_name);
	proto_put_str(e, "content", m->content);
	proto_put_maps(e, "tool_calls", m->tool_calls, m->ntool_calls,
	    sizeof *m->tool_calls, proto_enc_tool_call_fields);
	proto_put_str(e, "tool_call_id", m->tool_call_id);
	proto_put_str(e, "name", m->name);
}

static void
proto_enc_tool_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_tool *t = arg;

	proto_put_str(e, "name", t->name);
	proto_put_str(e, "description", t->description);
	proto_put_str(e, "parameters", t->parameters);
}

static void
proto_enc_call_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_request *r = arg;

	proto_put_str(e, "system", r->system);
	proto_put_maps(e, "messages", r->messages, r->nmessages,
	    sizeof *r->messages, proto_enc_message_fields);
	proto_put_maps(e, "tools", r->tools, r->ntools, sizeof *r->tools,
	    proto_enc_tool_fields);
	proto_put_str(e, "schema", r->schema);
	proto_put_strv(e, "targets", r->targets, r->ntargets);
	proto_put_str(e, "route", r->route);
	if (r->has & LLMGATE_HAS_MAX_TOKENS)
		proto_put_uint(e, "max_tokens", r->max_tokens);
	if (r->has & LLMGATE_HAS_TEMPERATURE)
		proto_put_double(e, "temperature", r->temperature);
	if (r->has & LLMGATE_HAS_TOP_P)
		proto_put_double(e, "top_p", r->top_p);
	if ((r->has & LLMGATE_HAS_SEED) && proto_key(e, "seed"))
		msgpack_pack_int64(e->pk, r->seed);
	proto_put_strv(e, "stop", r->stop, r->nstop);
	proto_put_nonzero(e, "attempts", r->attempts);
	proto_put_nonzero(e, "timeout_ms", r->timeout_ms);
	proto_put_enum(e, "priority", r->priority, 0, llmgate_priority_name);
	proto_put_enum(e, "on_cut", r->on_cut, 0, llmgate_on_cut_name);
	proto_put_true(e, "stream", r->stream);
	proto_put_strv(e, "fallback_on", r->fallback_on, r->nfallback_on);
	proto_put_strv(e, "reject", r->reject, r->nreject);
	proto_put_enum(e, "tool_choice", r->tool_choice, 0,
	    llmgate_tool_choice_name);
	proto_put_str(e, "tool_name", r->tool_name);
}

void
proto_enc_call(msgpack_sbuffer *sb, uint32_t id,
    const struct llmgate_request *r)
{
	proto_frame(sb, PROTO_CALL, id, proto_enc_call_fields, r);
}

static void
proto_enc_chunk_tool_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_chunk *c = arg;

	proto_put_uint(e, "index", (uint64_t)c->tool_index);
	proto_put_str(e, "id", c->tool_id);
	proto_put_str(e, "name", c->tool_name);
	proto_put_str(e, "args", c->tool_args);
}

static void
proto_enc_chunk_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_chunk *c = arg;

	if (c->text != NULL && c->len != 0 && proto_key(e, "text"))
		msgpack_pack_str_with_body(e->pk, c->text, c->len);
	proto_put_true(e, "reset", c->reset);
	if (c->tool_index >= 0)
		proto_put_map(e, "tool", proto_enc_chunk_tool_fields, c);
}

void
proto_enc_chunk(msgpack_sbuffer *sb, uint32_t id, const struct llmgate_chunk *c)
{
	proto_frame(sb, PROTO_CHUNK, id, proto_enc_chunk_fields, c);
}

static void
proto_enc_attempt_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_attempt *a = arg;

	proto_put_str(e, "target", a->target);
	proto_put_class(e, "class", a->cls);
	proto_put_nonzero(e, "status", a->status);
	proto_put_str(e, "message", a->message);
	proto_put_nonzero(e, "ms", a->ms);
	proto_put_nonzero(e, "waited_ms", a->waited_ms);
	proto_put_true(e, "skipped", a->skipped);
}

static void
proto_enc_usage_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_result *r = arg;

	proto_put_uint(e, "input_tokens", r->input_tokens);
	proto_put_uint(e, "output_tokens", r->output_tokens);
}

static void
proto_enc_usage_total_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_result *r = arg;

	proto_put_uint(e, "input_tokens", r->total_input_tokens);
	proto_put_uint(e, "output_tokens", r->total_output_tokens);
}

static void
proto_enc_result_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_result *r = arg;

	/* A result's class is implicitly ok; an error's always travels. */
	if (r->cls != LLMGATE_OK)
		proto_put_class(e, "class", r->cls);
	proto_put_str(e, "message", r->message);
	proto_put_true(e, "partial", r->partial);
	proto_put_str(e, "text", r->text);
	proto_put_str(e, "target", r->target);
	proto_put_enum(e, "finish_reason", r->finish, 0, llmgate_finish_name);
	proto_put_str(e, "stop_sequence", r->stop_sequence);
	if (r->input_tokens != 0 || r->output_tokens != 0)
		proto_put_map(e, "usage", proto_enc_usage_fields, r);
	if (r->total_input_tokens != 0 || r->total_output_tokens != 0)
		proto_put_map(e, "usage_total", proto_enc_usage_total_fields,
		    r);
	proto_put_maps(e, "tool_calls", r->tool_calls, r->ntool_calls,
	    sizeof *r->tool_calls, proto_enc_tool_call_fields);
	proto_put_maps(e, "attempts", r->attempts, r->nattempts,
	    sizeof *r->attempts, proto_enc_attempt_fields);
}

void
proto_enc_result(msgpack_sbuffer *sb, uint32_t id,
    const struct llmgate_result *r)
{
	proto_frame(sb, r->cls == LLMGATE_OK ? PROTO_RESULT : PROTO_ERROR, id,
	    proto_enc_result_fields, r);
}

static void
proto_enc_streamed_fields(struct proto_enc *e, const void *arg)
{
	struct llmgate_result r = *(const struct llmgate_result *)arg;

	r.text = NULL;
	proto_put_true(e, "streamed", 1);
	proto_enc_result_fields(e, &r);
}

void
proto_enc_streamed_result(msgpack_sbuffer *sb, uint32_t id,
    const struct llmgate_result *r)
{
	proto_frame(sb, r->cls == LLMGATE_OK ? PROTO_RESULT : PROTO_ERROR, id,
	    proto_enc_streamed_fields, r);
}

void
proto_enc_error(msgpack_sbuffer *sb, uint32_t id, enum llmgate_class cls,
    const char *message)
{
	struct llmgate_result r;

	memset(&r, 0, sizeof r);
	/* An error is never ok; a caller passing OK means a bug of ours. */
	r.cls = cls == LLMGATE_OK ? LLMGATE_INTERNAL : cls;
	r.message = (char *)(uintptr_t)message;
	proto_enc_result(sb, id, &r);
}

void
proto_enc_simple(msgpack_sbuffer *sb, enum proto_type type, uint32_t id)
{
	proto_frame(sb, type, id, NULL, NULL);
}

static void
proto_enc_status_fields(struct proto_enc *e, const void *arg)
{
	if (proto_key(e, "body"))
		proto_pack_json(e->pk, arg);
}

void
proto_enc_status(msgpack_sbuffer *sb, uint32_t id, const json_t *body)
{
	proto_frame(sb, PROTO_STATUS, id, proto_enc_status_fields, body);
}

static void
proto_enc_metrics_fields(struct proto_enc *e, const void *arg)
{
	/* Always sent, even empty: it is what makes this a reply. */
	proto_put_str(e, "text", arg != NULL ? arg : "");
}

void
proto_enc_metrics(msgpack_sbuffer *sb, uint32_t id, const char *text)
{
	proto_frame(sb, PROTO_METRICS, id, proto_enc_metrics_fields, text);
}

static void
proto_enc_acquire_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_acquire *a = arg;

	proto_put_str(e, "target", a->target);
	proto_put_nonzero(e, "tokens", a->tokens);
	proto_put_nonzero(e, "timeout_ms", a->timeout_ms);
	proto_put_enum(e, "priority", a->priority, 0, llmgate_priority_name);
}

void
proto_enc_acquire(msgpack_sbuffer *sb, uint32_t id,
    const struct llmgate_acquire *a)
{
	proto_frame(sb, PROTO_ACQUIRE, id, proto_enc_acquire_fields, a);
}

static void
proto_enc_lease_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_lease *l = arg;
	size_t n;

	proto_put_uint(e, "lease", l->id);
	n = strnlen(l->target, sizeof l->target);
	if (n != 0 && proto_key(e, "target"))
		msgpack_pack_str_with_body(e->pk, l->target, n);
	proto_put_nonzero(e, "ttl_ms", l->ttl_ms);
}

void
proto_enc_lease(msgpack_sbuffer *sb, uint32_t id, const struct llmgate_lease *l)
{
	proto_frame(sb, PROTO_LEASE, id, proto_enc_lease_fields, l);
}

static void
proto_enc_report_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_report *r = arg;

	proto_put_uint(e, "lease", r->lease);
	proto_put_nonzero(e, "status", r->status);
	if (r->retry_after_s >= 0 && isfinite(r->retry_after_s))
		proto_put_double(e, "retry_after_s", r->retry_after_s);
	proto_put_nonzero(e, "input_tokens", r->input_tokens);
	proto_put_nonzero(e, "output_tokens", r->output_tokens);
}

void
proto_enc_report(msgpack_sbuffer *sb, uint32_t id,
    const struct llmgate_report *r)
{
	proto_frame(sb, PROTO_REPORT, id, proto_enc_report_fields, r);
}
