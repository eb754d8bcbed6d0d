/*
 * check_proto.c: the wire codec. Every message round-trips with all of its
 * fields and with none of its optional ones; malformed frames and payloads
 * are refused with the message a peer would see; random bytes never crash.
 */
#include <sys/types.h>

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define nitems(a) (sizeof(a) / sizeof(a)[0])
/* A string literal as bytes and length, NULs included. */
#define LIT(s) (s), (sizeof(s) - 1)

/* Decode the single frame in sb, which must be well-formed. */
static void
decode_one(const msgpack_sbuffer *sb, struct proto_msg *m)
{
	char err[256];
	ssize_t len;
	size_t need = 0;

	len = proto_frame_len(sb->data, sb->size, PROTO_MAX_FRAME, &need);
	ck_assert_int_gt(len, 0);
	ck_assert_uint_eq((size_t)len + PROTO_HDR_LEN, sb->size);
	if (proto_decode(sb->data + PROTO_HDR_LEN, (size_t)len, m, err,
	        sizeof err) != 0)
		ck_abort_msg("decode failed: %s", err);
	ck_assert_ptr_nonnull(m->zone);
}

/* Decode a raw payload that must be refused with exactly this message. */
static void
expect_err(const void *p, size_t len, const char *want)
{
	struct proto_msg m;
	char err[256];

	memset(err, 'x', sizeof err);
	ck_assert_int_eq(proto_decode(p, len, &m, err, sizeof err), -1);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(m.zone);
	ck_assert_int_eq(m.type, PROTO_UNKNOWN);
}

/* The number of keys in the payload map of the frame in sb. */
static uint32_t
frame_keys(const msgpack_sbuffer *sb, const char *key, int *found)
{
	msgpack_unpacked up;
	size_t off = 0;
	uint32_t i, n;
	msgpack_object_kv *kv;

	msgpack_unpacked_init(&up);
	ck_assert_int_eq(msgpack_unpack_next(&up, sb->data + PROTO_HDR_LEN,
	                     sb->size - PROTO_HDR_LEN, &off),
	    MSGPACK_UNPACK_SUCCESS);
	ck_assert_int_eq(up.data.type, MSGPACK_OBJECT_MAP);
	n = up.data.via.map.size;
	*found = 0;
	for (i = 0; i < n; i++) {
		kv = &up.data.via.map.ptr[i];
		if (key != NULL && kv->key.via.str.size == strlen(key) &&
		    memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
			*found = 1;
	}
	msgpack_unpacked_destroy(&up);
	return n;
}

/* A raw payload builder for hand-made (often broken) maps. */
static msgpack_sbuffer raw;
static msgpack_packer rpk;

static void
raw_begin(uint32_t nkeys)
{
	msgpack_sbuffer_init(&raw);
	msgpack_packer_init(&rpk, &raw, msgpack_sbuffer_write);
	msgpack_pack_map(&rpk, nkeys);
}

static void
raw_str(const char *s)
{
	msgpack_pack_str_with_body(&rpk, s, strlen(s));
}

static void
raw_kv(const char *k, const char *v)
{
	raw_str(k);
	raw_str(v);
}

static void
raw_ku(const char *k, uint64_t v)
{
	raw_str(k);
	msgpack_pack_uint64(&rpk, v);
}

static void
raw_end(void)
{
	msgpack_sbuffer_destroy(&raw);
}

static void
assert_tool_call_eq(const struct llmgate_tool_call *a,
    const struct llmgate_tool_call *b)
{
	ck_assert_pstr_eq(a->id, b->id);
	ck_assert_pstr_eq(a->name, b->name);
	ck_assert_pstr_eq(a->arguments, b->arguments);
}

static void
assert_request_eq(const struct llmgate_request *a,
    const struct llmgate_request *b)
{
	size_t i, j;

	ck_assert_pstr_eq(a->system, b->system);
	ck_assert_uint_eq(a->nmessages, b->nmessages);
	for (i = 0; i < a->nmessages; i++) {
		const struct llmgate_message *ma = &a->messages[i];
		const struct llmgate_message *mb = &b->messages[i];

		ck_assert_int_eq(ma->role, mb->role);
		ck_assert_pstr_eq(ma->content, mb->content);
		ck_assert_uint_eq(ma->ntool_calls, mb->ntool_calls);
		for (j = 0; j < ma->ntool_calls; j++)
			assert_tool_call_eq(&ma->tool_calls[j],
			    &mb->tool_calls[j]);
		ck_assert_pstr_eq(ma->tool_call_id, mb->tool_call_id);
		ck_assert_pstr_eq(ma->name, mb->name);
	}
	ck_assert_uint_eq(a->ntools, b->ntools);
	for (i = 0; i < a->ntools; i++) {
		ck_assert_pstr_eq(a->tools[i].name, b->tools[i].name);
		ck_assert_pstr_eq(a->tools[i].description,
		    b->tools[i].description);
		ck_assert_pstr_eq(a->tools[i].parameters,
		    b->tools[i].parameters);
	}
	ck_assert_pstr_eq(a->schema, b->schema);
	ck_assert_uint_eq(a->ntargets, b->ntargets);
	for (i = 0; i < a->ntargets; i++)
		ck_assert_str_eq(a->targets[i], b->targets[i]);
	ck_assert_pstr_eq(a->route, b->route);
	ck_assert_uint_eq(a->has, b->has);
	ck_assert_uint_eq(a->max_tokens, b->max_tokens);
	ck_assert(a->temperature == b->temperature);
	ck_assert(a->top_p == b->top_p);
	ck_assert(a->seed == b->seed);
	ck_assert_uint_eq(a->nstop, b->nstop);
	for (i = 0; i < a->nstop; i++)
		ck_assert_str_eq(a->stop[i], b->stop[i]);
	ck_assert_uint_eq(a->attempts, b->attempts);
	ck_assert_uint_eq(a->timeout_ms, b->timeout_ms);
	ck_assert_int_eq(a->priority, b->priority);
	ck_assert_int_eq(a->on_cut, b->on_cut);
	ck_assert_int_eq(a->stream, b->stream);
	ck_assert_uint_eq(a->nfallback_on, b->nfallback_on);
	for (i = 0; i < a->nfallback_on; i++)
		ck_assert_str_eq(a->fallback_on[i], b->fallback_on[i]);
	ck_assert_uint_eq(a->nreject, b->nreject);
	for (i = 0; i < a->nreject; i++)
		ck_assert_str_eq(a->reject[i], b->reject[i]);
	ck_assert_int_eq(a->tool_choice, b->tool_choice);
	ck_assert_pstr_eq(a->tool_name, b->tool_name);
}

static void
assert_result_eq(const struct llmgate_result *a, const struct llmgate_result *b)
{
	size_t i;

	ck_assert_int_eq(a->cls, b->cls);
	ck_assert_pstr_eq(a->message, b->message);
	ck_assert_int_eq(a->partial, b->partial);
	ck_assert_pstr_eq(a->text, b->text);
	ck_assert_pstr_eq(a->target, b->target);
	ck_assert_int_eq(a->finish, b->finish);
	ck_assert_pstr_eq(a->stop_sequence, b->stop_sequence);
	ck_assert_uint_eq(a->input_tokens, b->input_tokens);
	ck_assert_uint_eq(a->output_tokens, b->output_tokens);
	ck_assert_uint_eq(a->total_input_tokens, b->total_input_tokens);
	ck_assert_uint_eq(a->total_output_tokens, b->total_output_tokens);
	ck_assert_uint_eq(a->ntool_calls, b->ntool_calls);
	for (i = 0; i < a->ntool_calls; i++)
		assert_tool_call_eq(&a->tool_calls[i], &b->tool_calls[i]);
	ck_assert_uint_eq(a->nattempts, b->nattempts);
	for (i = 0; i < a->nattempts; i++) {
		ck_assert_pstr_eq(a->attempts[i].target, b->attempts[i].target);
		ck_assert_int_eq(a->attempts[i].cls, b->attempts[i].cls);
		ck_assert_uint_eq(a->attempts[i].status, b->attempts[i].status);
		ck_assert_pstr_eq(a->attempts[i].message,
		    b->attempts[i].message);
		ck_assert_uint_eq(a->attempts[i].ms, b->attempts[i].ms);
		ck_assert_uint_eq(a->attempts[i].waited_ms,
		    b->attempts[i].waited_ms);
		ck_assert_int_eq(a->attempts[i].skipped,
		    b->attempts[i].skipped);
	}
	ck_assert_ptr_null(b->priv);
}

/* A call with every field set. */
static struct llmgate_tool_call full_tcs[] = {
	{ "call_1", "get_weather", "{\"city\":\"Paris\"}" },
	{ "call_2", "get_time", "{}" },
};
static struct llmgate_message full_msgs[] = {
	{ LLMGATE_ROLE_USER, "What is the weather in Paris?", NULL, 0, NULL,
	    NULL },
	{ LLMGATE_ROLE_ASSISTANT, NULL, full_tcs, 2, NULL, NULL },
	{ LLMGATE_ROLE_TOOL, "{\"temp\":21}", NULL, 0, "call_1",
	    "get_weather" },
	{ LLMGATE_ROLE_USER, "", NULL, 0, NULL, NULL },
};
static struct llmgate_tool full_tools[] = {
	{ "get_weather", "Current weather",
	    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}" },
	{ "get_time", NULL, NULL },
};
static char *full_targets[] = { "openai/gpt-4o-mini",
	"anthropic/claude-3-5-haiku-latest" };
static char *full_stop[] = { "\n\n", "END", "\xc3\xa9t\xc3\xa9" };
static char *full_fallback_on[] = { "rate_limited", "overloaded" };
static char *full_reject[] = { "length", "match:(?i)^sorry" };

static void
full_request(struct llmgate_request *r)
{
	memset(r, 0, sizeof *r);
	r->system = "You are terse.";
	r->messages = full_msgs;
	r->nmessages = nitems(full_msgs);
	r->tools = full_tools;
	r->ntools = nitems(full_tools);
	r->schema = "{\"type\":\"object\"}";
	r->targets = full_targets;
	r->ntargets = nitems(full_targets);
	r->route = "default";
	r->has = LLMGATE_HAS_MAX_TOKENS | LLMGATE_HAS_TEMPERATURE |
	    LLMGATE_HAS_TOP_P | LLMGATE_HAS_SEED;
	r->max_tokens = 4096;
	r->temperature = 0.7;
	r->top_p = 0.95;
	r->seed = -1234567890123LL;
	r->stop = full_stop;
	r->nstop = nitems(full_stop);
	r->attempts = 3;
	r->timeout_ms = 120000;
	r->priority = LLMGATE_PRIO_HIGH;
	r->on_cut = LLMGATE_CUT_FAIL;
	r->stream = 1;
	r->fallback_on = full_fallback_on;
	r->nfallback_on = nitems(full_fallback_on);
	r->reject = full_reject;
	r->nreject = nitems(full_reject);
	r->tool_choice = LLMGATE_TOOLS_REQUIRED;
	r->tool_name = (char *)"get_weather";
}

START_TEST(test_frame_len)
{
	msgpack_sbuffer sb;
	size_t i, need;
	ssize_t len;
	unsigned char hdr[8];

	msgpack_sbuffer_init(&sb);
	proto_enc_simple(&sb, PROTO_PING, 7);
	len = (ssize_t)sb.size - PROTO_HDR_LEN;
	ck_assert_int_eq(proto_frame_len(sb.data, sb.size, 1024, &need), len);

	/* Every prefix of a valid frame asks for more. */
	for (i = 0; i < sb.size; i++) {
		need = 12345;
		ck_assert_int_eq(proto_frame_len(sb.data, i, 1024, &need), 0);
		if (i < PROTO_HDR_LEN)
			ck_assert_uint_eq(need, PROTO_HDR_LEN);
		else
			ck_assert_uint_eq(need, sb.size);
	}
	ck_assert_int_eq(proto_frame_len(sb.data, 2, 1024, NULL), 0);

	/* A frame and the start of the next: the first is whole. */
	proto_enc_simple(&sb, PROTO_PONG, 8);
	ck_assert_int_eq(proto_frame_len(sb.data, sb.size, 1024, &need), len);
	msgpack_sbuffer_destroy(&sb);

	/* Zero length, over max, over the hard cap whatever max says. */
	memset(hdr, 0, sizeof hdr);
	ck_assert_int_eq(proto_frame_len(hdr, sizeof hdr, 1024, &need), -1);
	hdr[2] = 0x04;
	hdr[3] = 0x01; /* 1025 */
	ck_assert_int_eq(proto_frame_len(hdr, 4, 1024, &need), -1);
	ck_assert_int_eq(proto_frame_len(hdr, 4, 1025, &need), 0);
	ck_assert_uint_eq(need, 1029);
	hdr[0] = 0x01;
	hdr[1] = 0x00;
	hdr[2] = 0x00;
	hdr[3] = 0x01; /* 16 MiB + 1 */
	ck_assert_int_eq(proto_frame_len(hdr, 4, SIZE_MAX, &need), -1);
	hdr[3] = 0x00; /* 16 MiB exactly */
	ck_assert_int_eq(proto_frame_len(hdr, 4, SIZE_MAX, &need), 0);
	ck_assert_uint_eq(need, PROTO_MAX_FRAME + PROTO_HDR_LEN);
	hdr[0] = 0xff;
	ck_assert_int_eq(proto_frame_len(hdr, 4, SIZE_MAX, &need), -1);
}
END_TEST

START_TEST(test_frames_in_a_row)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	size_t off = 0, n = 0;
	ssize_t len;
	char err[128];
	static const enum proto_type types[] = { PROTO_PING, PROTO_CANCEL,
		PROTO_RELOAD };

	msgpack_sbuffer_init(&sb);
	proto_enc_simple(&sb, PROTO_PING, 1);
	proto_enc_simple(&sb, PROTO_CANCEL, 2);
	proto_enc_simple(&sb, PROTO_RELOAD, 3);
	while ((len = proto_frame_len(sb.data + off, sb.size - off, 64, NULL)) >
	    0) {
		ck_assert_int_eq(proto_decode(sb.data + off + PROTO_HDR_LEN,
		                     (size_t)len, &m, err, sizeof err),
		    0);
		ck_assert_int_eq(m.type, types[n]);
		ck_assert_uint_eq(m.id, n + 1);
		proto_msg_free(&m);
		off += PROTO_HDR_LEN + (size_t)len;
		n++;
	}
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(off, sb.size);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_hello)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct proto_hello h;
	int found;

	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.name = "llmgate-cli";
	msgpack_sbuffer_init(&sb);
	proto_enc_hello(&sb, &h);
	ck_assert_uint_eq(frame_keys(&sb, "server", &found), 4);
	ck_assert_int_eq(found, 0);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_HELLO);
	ck_assert_str_eq(m.type_name, "hello");
	ck_assert_uint_eq(m.id, 0);
	ck_assert_uint_eq(m.u.hello.version, 1);
	ck_assert_str_eq(m.u.hello.name, "llmgate-cli");
	ck_assert_ptr_null(m.u.hello.server);
	ck_assert_uint_eq(m.u.hello.max_frame, 0);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	h.name = NULL;
	h.server = "llmgated 0.1.0";
	h.max_frame = 4u << 20;
	h.version = 7;
	msgpack_sbuffer_init(&sb);
	proto_enc_hello(&sb, &h);
	decode_one(&sb, &m);
	ck_assert_uint_eq(m.u.hello.version, 7);
	ck_assert_ptr_null(m.u.hello.name);
	ck_assert_str_eq(m.u.hello.server, "llmgated 0.1.0");
	ck_assert_uint_eq(m.u.hello.max_frame, 4u << 20);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_call_full)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_request r;

	full_request(&r);
	msgpack_sbuffer_init(&sb);
	proto_enc_call(&sb, 42, &r);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_CALL);
	ck_assert_uint_eq(m.id, 42);
	assert_request_eq(&r, &m.u.call);
	/* Spot checks against literals, so equality is not vacuous. */
	ck_assert_str_eq(m.u.call.messages[1].tool_calls[0].arguments,
	    "{\"city\":\"Paris\"}");
	ck_assert_ptr_null(m.u.call.messages[1].content);
	ck_assert_str_eq(m.u.call.messages[3].content, "");
	ck_assert_int_eq(m.u.call.messages[2].role, LLMGATE_ROLE_TOOL);
	ck_assert_ptr_null(m.u.call.tools[1].description);
	ck_assert(m.u.call.seed == -1234567890123LL);
	ck_assert(m.u.call.temperature == 0.7);
	ck_assert_int_eq(m.u.call.on_cut, LLMGATE_CUT_FAIL);
	ck_assert_str_eq(m.u.call.stop[2], "\xc3\xa9t\xc3\xa9");
	proto_msg_free(&m);
	ck_assert_ptr_null(m.zone);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_call_minimal)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_request r;
	struct llmgate_message msg = { LLMGATE_ROLE_USER, "hi", NULL, 0, NULL,
		NULL };
	int found;

	memset(&r, 0, sizeof r);
	msgpack_sbuffer_init(&sb);
	proto_enc_call(&sb, 1, &r);
	ck_assert_uint_eq(frame_keys(&sb, NULL, &found), 2); /* t, id */
	decode_one(&sb, &m);
	assert_request_eq(&r, &m.u.call);
	ck_assert_ptr_null(m.u.call.messages);
	ck_assert_ptr_null(m.u.call.targets);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Sampling fields travel by their has bits, zero included. */
	r.messages = &msg;
	r.nmessages = 1;
	r.has = LLMGATE_HAS_TEMPERATURE;
	r.temperature = 0;
	r.max_tokens = 99; /* not flagged: not sent */
	msgpack_sbuffer_init(&sb);
	proto_enc_call(&sb, 2, &r);
	ck_assert_uint_eq(frame_keys(&sb, "max_tokens", &found), 4);
	ck_assert_int_eq(found, 0);
	decode_one(&sb, &m);
	ck_assert_uint_eq(m.u.call.has, LLMGATE_HAS_TEMPERATURE);
	ck_assert_uint_eq(m.u.call.max_tokens, 0);
	ck_assert(m.u.call.temperature == 0);
	ck_assert_uint_eq(m.u.call.nmessages, 1);
	ck_assert_str_eq(m.u.call.messages[0].content, "hi");
	ck_assert_int_eq(m.u.call.priority, LLMGATE_PRIO_NORMAL);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_call_key_order_and_int_floats)
{
	struct proto_msg m;
	char err[128];

	/* "t" last; an integer where a float goes; unknown keys of every
	 * shape ignored. */
	raw_begin(7);
	raw_ku("id", 9);
	raw_ku("temperature", 1);
	raw_str("x-future");
	msgpack_pack_map(&rpk, 1);
	raw_str("deep");
	msgpack_pack_array(&rpk, 2);
	msgpack_pack_nil(&rpk);
	msgpack_pack_bin_with_body(&rpk, "\0\1", 2);
	raw_str("top_p");
	msgpack_pack_float(&rpk, 0.5f);
	raw_str("seed");
	msgpack_pack_int8(&rpk, 5); /* a signed encoding of 5 */
	raw_ku("max_tokens", 100);
	raw_kv("t", "call");
	ck_assert_int_eq(proto_decode(raw.data, raw.size, &m, err, sizeof err),
	    0);
	ck_assert_int_eq(m.type, PROTO_CALL);
	ck_assert_uint_eq(m.id, 9);
	ck_assert(m.u.call.temperature == 1.0);
	ck_assert(m.u.call.top_p == 0.5);
	ck_assert(m.u.call.seed == 5);
	ck_assert_uint_eq(m.u.call.max_tokens, 100);
	ck_assert_uint_eq(m.u.call.has,
	    LLMGATE_HAS_MAX_TOKENS | LLMGATE_HAS_TEMPERATURE |
	        LLMGATE_HAS_TOP_P | LLMGATE_HAS_SEED);
	proto_msg_free(&m);
	raw_end();
}
END_TEST

START_TEST(test_chunk)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_chunk c;
	int found;

	/* Text only: no tool key. */
	memset(&c, 0, sizeof c);
	c.text = "Hel";
	c.len = 3;
	c.tool_index = -1;
	msgpack_sbuffer_init(&sb);
	proto_enc_chunk(&sb, 5, &c);
	ck_assert_uint_eq(frame_keys(&sb, "tool", &found), 3);
	ck_assert_int_eq(found, 0);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_CHUNK);
	ck_assert_uint_eq(m.id, 5);
	ck_assert_uint_eq(m.u.chunk.len, 3);
	ck_assert_str_eq(m.u.chunk.text, "Hel");
	ck_assert_int_eq(m.u.chunk.reset, 0);
	ck_assert_int_eq(m.u.chunk.tool_index, -1);
	ck_assert_ptr_null(m.u.chunk.tool_id);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Text with a NUL in it is carried whole (it has a length). */
	c.text = "a\0b";
	c.len = 3;
	c.reset = 1;
	msgpack_sbuffer_init(&sb);
	proto_enc_chunk(&sb, 5, &c);
	decode_one(&sb, &m);
	ck_assert_uint_eq(m.u.chunk.len, 3);
	ck_assert_mem_eq(m.u.chunk.text, "a\0b", 4);
	ck_assert_int_eq(m.u.chunk.reset, 1);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* A tool delta, all fields. */
	memset(&c, 0, sizeof c);
	c.tool_index = 2;
	c.tool_id = "call_9";
	c.tool_name = "lookup";
	c.tool_args = "{\"q\":";
	msgpack_sbuffer_init(&sb);
	proto_enc_chunk(&sb, 6, &c);
	ck_assert_uint_eq(frame_keys(&sb, "text", &found), 3);
	ck_assert_int_eq(found, 0);
	decode_one(&sb, &m);
	ck_assert_ptr_null(m.u.chunk.text);
	ck_assert_uint_eq(m.u.chunk.len, 0);
	ck_assert_int_eq(m.u.chunk.tool_index, 2);
	ck_assert_str_eq(m.u.chunk.tool_id, "call_9");
	ck_assert_str_eq(m.u.chunk.tool_name, "lookup");
	ck_assert_str_eq(m.u.chunk.tool_args, "{\"q\":");
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Minimal tool delta: index 0 only. */
	memset(&c, 0, sizeof c);
	c.tool_index = 0;
	msgpack_sbuffer_init(&sb);
	proto_enc_chunk(&sb, 6, &c);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.u.chunk.tool_index, 0);
	ck_assert_ptr_null(m.u.chunk.tool_id);
	ck_assert_ptr_null(m.u.chunk.tool_args);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Text as bin is accepted too. */
	raw_begin(3);
	raw_kv("t", "chunk");
	raw_ku("id", 3);
	raw_str("text");
	msgpack_pack_bin_with_body(&rpk, "\xff\xfe", 2);
	{
		char err[128];

		ck_assert_int_eq(proto_decode(raw.data, raw.size, &m, err,
		                     sizeof err),
		    0);
	}
	ck_assert_uint_eq(m.u.chunk.len, 2);
	ck_assert_mem_eq(m.u.chunk.text, "\xff\xfe", 3);
	proto_msg_free(&m);
	raw_end();
}
END_TEST

static struct llmgate_attempt full_attempts[] = {
	{ "openai/gpt-4o-mini", LLMGATE_RATE_LIMITED, 429, "Rate limit reached",
	    12, 0, 0 },
	{ "google/gemini-2.0-flash", LLMGATE_CIRCUIT_OPEN, 0, NULL, 0, 0, 1 },
	{ "anthropic/claude-3-5-haiku-latest", LLMGATE_OK, 200, NULL, 310, 1500,
	    0 },
};

START_TEST(test_result)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_result r;
	int found;

	memset(&r, 0, sizeof r);
	r.cls = LLMGATE_OK;
	r.text = "It is 21 degrees.";
	r.target = "anthropic/claude-3-5-haiku-latest";
	r.finish = LLMGATE_FINISH_TOOL_CALLS;
	r.input_tokens = 12;
	r.output_tokens = 40;
	r.total_input_tokens = 30;
	r.total_output_tokens = 95;
	r.tool_calls = full_tcs;
	r.ntool_calls = nitems(full_tcs);
	r.attempts = full_attempts;
	r.nattempts = nitems(full_attempts);
	r.priv = &r; /* never sent */
	msgpack_sbuffer_init(&sb);
	proto_enc_result(&sb, 77, &r);
	ck_assert_uint_eq(frame_keys(&sb, "class", &found), 9);
	ck_assert_int_eq(found, 0);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_RESULT);
	ck_assert_uint_eq(m.id, 77);
	assert_result_eq(&r, &m.u.result);
	ck_assert_int_eq(m.u.result.attempts[0].cls, LLMGATE_RATE_LIMITED);
	ck_assert_uint_eq(m.u.result.attempts[2].waited_ms, 1500);
	ck_assert_int_eq(m.u.result.attempts[1].skipped, 1);
	ck_assert_uint_eq(m.u.result.output_tokens, 40);
	ck_assert_uint_eq(m.u.result.total_output_tokens, 95);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* A stop sequence rides beside finish_reason stop. */
	r.finish = LLMGATE_FINISH_STOP;
	r.stop_sequence = "\n\nHuman:";
	msgpack_sbuffer_init(&sb);
	proto_enc_result(&sb, 76, &r);
	ck_assert_uint_eq(frame_keys(&sb, "stop_sequence", &found), 10);
	ck_assert_int_eq(found, 1);
	decode_one(&sb, &m);
	assert_result_eq(&r, &m.u.result);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Minimal result. */
	memset(&r, 0, sizeof r);
	msgpack_sbuffer_init(&sb);
	proto_enc_result(&sb, 78, &r);
	ck_assert_uint_eq(frame_keys(&sb, NULL, &found), 2);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_RESULT);
	assert_result_eq(&r, &m.u.result);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Usage with one side zero still round-trips. */
	r.output_tokens = 5;
	r.total_input_tokens = 7;
	msgpack_sbuffer_init(&sb);
	proto_enc_result(&sb, 79, &r);
	decode_one(&sb, &m);
	assert_result_eq(&r, &m.u.result);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_error)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_result r;

	memset(&r, 0, sizeof r);
	r.cls = LLMGATE_RATE_LIMITED;
	r.message = "every target is rate limited";
	r.partial = 1;
	r.text = "partial te";
	r.attempts = full_attempts;
	r.nattempts = 2;
	msgpack_sbuffer_init(&sb);
	proto_enc_result(&sb, 3, &r);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_str_eq(m.type_name, "error");
	assert_result_eq(&r, &m.u.result);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	msgpack_sbuffer_init(&sb);
	proto_enc_error(&sb, 0, LLMGATE_INVALID_REQUEST,
	    "protocol version 2 not supported; this daemon speaks 1");
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_uint_eq(m.id, 0);
	ck_assert_int_eq(m.u.result.cls, LLMGATE_INVALID_REQUEST);
	ck_assert_str_eq(m.u.result.message,
	    "protocol version 2 not supported; this daemon speaks 1");
	ck_assert_uint_eq(m.u.result.nattempts, 0);
	ck_assert_ptr_null(m.u.result.attempts);
	ck_assert_ptr_null(m.u.result.text);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* An error is never ok, and a NULL message is left out. */
	msgpack_sbuffer_init(&sb);
	proto_enc_error(&sb, 4, LLMGATE_OK, NULL);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_int_eq(m.u.result.cls, LLMGATE_INTERNAL);
	ck_assert_ptr_null(m.u.result.message);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_simple)
{
	static const enum proto_type types[] = { PROTO_CANCEL, PROTO_PING,
		PROTO_PONG, PROTO_RELOAD, PROTO_OK, PROTO_STATUS,
		PROTO_METRICS };
	static const char *names[] = { "cancel", "ping", "pong", "reload", "ok",
		"status", "metrics" };
	msgpack_sbuffer sb;
	struct proto_msg m;
	size_t i;
	int found;

	for (i = 0; i < nitems(types); i++) {
		msgpack_sbuffer_init(&sb);
		proto_enc_simple(&sb, types[i], 1000 + (uint32_t)i);
		ck_assert_uint_eq(frame_keys(&sb, NULL, &found), 2);
		decode_one(&sb, &m);
		ck_assert_int_eq(m.type, types[i]);
		ck_assert_str_eq(m.type_name, names[i]);
		ck_assert_uint_eq(m.id, 1000 + i);
		ck_assert_int_eq(m.has_body, 0);
		proto_msg_free(&m);
		msgpack_sbuffer_destroy(&sb);
	}
	/* Ids use the whole 32 bits. */
	msgpack_sbuffer_init(&sb);
	proto_enc_simple(&sb, PROTO_CANCEL, UINT32_MAX);
	decode_one(&sb, &m);
	ck_assert_uint_eq(m.id, UINT32_MAX);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_status_body)
{
	static const char *doc =
	    "{\"version\": \"0.1.0\", \"uptime_s\": 12, \"clients\": 0,"
	    " \"ratio\": 0.25, \"neg\": -9223372036854775807, \"one\": 1.0,"
	    " \"ok\": true, \"bad\": false, \"none\": null, \"empty\": {},"
	    " \"list\": [], \"s\": \"caf\\u00e9 \\u0000 nul\", \"\": \"\","
	    " \"targets\": [{\"target\": \"openai/gpt-4o-mini\","
	    "   \"breaker\": \"closed\", \"rpm\": {\"limit\": 500,"
	    "   \"available\": 7.5}, \"nested\": [[1, [2, [3, {\"x\": [] }]]]]}]}";
	msgpack_sbuffer sb;
	struct proto_msg m;
	json_t *j, *v;
	json_error_t jerr;

	j = json_loads(doc, JSON_ALLOW_NUL, &jerr);
	ck_assert_msg(j != NULL, "json: %s", jerr.text);
	msgpack_sbuffer_init(&sb);
	proto_enc_status(&sb, 11, j);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_STATUS);
	ck_assert_int_eq(m.has_body, 1);
	ck_assert_ptr_nonnull(m.u.status);
	ck_assert(json_equal(j, m.u.status));
	v = json_object_get(m.u.status, "one");
	ck_assert(json_is_real(v));
	v = json_object_get(m.u.status, "s");
	ck_assert_uint_eq(json_string_length(v), 11);
	v = json_object_get(m.u.status, "");
	ck_assert_str_eq(json_string_value(v), "");
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
	json_decref(j);

	/* A body that is null is still a reply. */
	msgpack_sbuffer_init(&sb);
	proto_enc_status(&sb, 12, NULL);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.has_body, 1);
	ck_assert(json_is_null(m.u.status));
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_metrics)
{
	static const char *text =
	    "# TYPE llmgate_calls_total counter\nllmgate_calls_total 3\n";
	msgpack_sbuffer sb;
	struct proto_msg m;

	msgpack_sbuffer_init(&sb);
	proto_enc_metrics(&sb, 13, text);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_METRICS);
	ck_assert_int_eq(m.has_body, 1);
	ck_assert_str_eq(m.u.metrics, text);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	msgpack_sbuffer_init(&sb);
	proto_enc_metrics(&sb, 14, NULL);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.has_body, 1);
	ck_assert_str_eq(m.u.metrics, "");
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_acquire)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_acquire a;

	memset(&a, 0, sizeof a);
	a.target = "openai/gpt-4o-mini";
	a.tokens = 2000;
	a.timeout_ms = 30000;
	a.priority = LLMGATE_PRIO_LOW;
	msgpack_sbuffer_init(&sb);
	proto_enc_acquire(&sb, 21, &a);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_ACQUIRE);
	ck_assert_uint_eq(m.id, 21);
	ck_assert_str_eq(m.u.acquire.target, "openai/gpt-4o-mini");
	ck_assert_uint_eq(m.u.acquire.tokens, 2000);
	ck_assert_uint_eq(m.u.acquire.timeout_ms, 30000);
	ck_assert_int_eq(m.u.acquire.priority, LLMGATE_PRIO_LOW);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	memset(&a, 0, sizeof a);
	msgpack_sbuffer_init(&sb);
	proto_enc_acquire(&sb, 22, &a);
	decode_one(&sb, &m);
	ck_assert_ptr_null(m.u.acquire.target);
	ck_assert_uint_eq(m.u.acquire.tokens, 0);
	ck_assert_uint_eq(m.u.acquire.timeout_ms, 0);
	ck_assert_int_eq(m.u.acquire.priority, LLMGATE_PRIO_NORMAL);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_lease)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_lease l;

	memset(&l, 0, sizeof l);
	l.id = 0x123456789abcdefULL;
	memset(l.target, 'a', sizeof l.target - 1); /* longest fitting */
	l.ttl_ms = 60000;
	msgpack_sbuffer_init(&sb);
	proto_enc_lease(&sb, 21, &l);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_LEASE);
	ck_assert(m.u.lease.id == 0x123456789abcdefULL);
	ck_assert_str_eq(m.u.lease.target, l.target);
	ck_assert_uint_eq(m.u.lease.ttl_ms, 60000);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	memset(&l, 0, sizeof l);
	msgpack_sbuffer_init(&sb);
	proto_enc_lease(&sb, 22, &l);
	decode_one(&sb, &m);
	ck_assert(m.u.lease.id == 0);
	ck_assert_str_eq(m.u.lease.target, "");
	ck_assert_uint_eq(m.u.lease.ttl_ms, 0);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_report)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_report r;
	int found;

	memset(&r, 0, sizeof r);
	r.lease = UINT64_MAX;
	r.status = 429;
	r.retry_after_s = 2.5;
	r.input_tokens = 1000;
	r.output_tokens = 1;
	msgpack_sbuffer_init(&sb);
	proto_enc_report(&sb, 31, &r);
	decode_one(&sb, &m);
	ck_assert_int_eq(m.type, PROTO_REPORT);
	ck_assert(m.u.report.lease == UINT64_MAX);
	ck_assert_uint_eq(m.u.report.status, 429);
	ck_assert(m.u.report.retry_after_s == 2.5);
	ck_assert_uint_eq(m.u.report.input_tokens, 1000);
	ck_assert_uint_eq(m.u.report.output_tokens, 1);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* No retry-after travels as its absence and comes back < 0. */
	memset(&r, 0, sizeof r);
	r.lease = 5;
	r.retry_after_s = -1;
	msgpack_sbuffer_init(&sb);
	proto_enc_report(&sb, 32, &r);
	ck_assert_uint_eq(frame_keys(&sb, "retry_after_s", &found), 3);
	ck_assert_int_eq(found, 0);
	decode_one(&sb, &m);
	ck_assert(m.u.report.lease == 5);
	ck_assert(m.u.report.retry_after_s < 0);
	ck_assert_uint_eq(m.u.report.status, 0);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Zero is a retry-after too. */
	r.retry_after_s = 0;
	msgpack_sbuffer_init(&sb);
	proto_enc_report(&sb, 33, &r);
	decode_one(&sb, &m);
	ck_assert(m.u.report.retry_after_s == 0);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_take_zone)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	struct llmgate_request r, *kept;
	msgpack_zone *z;

	full_request(&r);
	msgpack_sbuffer_init(&sb);
	proto_enc_call(&sb, 1, &r);
	decode_one(&sb, &m);
	msgpack_sbuffer_destroy(&sb); /* nothing points into the input */
	kept = malloc(sizeof *kept);
	ck_assert_ptr_nonnull(kept);
	*kept = m.u.call;
	z = proto_msg_take_zone(&m);
	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_null(m.zone);
	proto_msg_free(&m);
	assert_request_eq(&r, kept);
	msgpack_zone_free(z);
	free(kept);
}
END_TEST

START_TEST(test_unknown_type)
{
	struct proto_msg m;
	char err[128];

	raw_begin(3);
	raw_kv("t", "frobnicate");
	raw_ku("id", 17);
	raw_ku("max_tokens", 5); /* another type's field: ignored */
	ck_assert_int_eq(proto_decode(raw.data, raw.size, &m, err, sizeof err),
	    0);
	ck_assert_int_eq(m.type, PROTO_UNKNOWN);
	ck_assert_str_eq(m.type_name, "frobnicate");
	ck_assert_uint_eq(m.id, 17);
	proto_msg_free(&m);
	raw_end();

	/* "unknown" is not a type one can send either. */
	raw_begin(2);
	raw_kv("t", "unknown");
	raw_ku("id", 1);
	ck_assert_int_eq(proto_decode(raw.data, raw.size, &m, err, sizeof err),
	    0);
	ck_assert_int_eq(m.type, PROTO_UNKNOWN);
	ck_assert_str_eq(m.type_name, "unknown");
	proto_msg_free(&m);
	raw_end();
}
END_TEST

START_TEST(test_bad_shape)
{
	msgpack_sbuffer sb;
	char buf[64], want[128];
	size_t i, plen;

	expect_err("", 0, "empty payload");
	expect_err("\x93\x01\x02\x03", 4, "payload is not a map (got array)");
	expect_err("\x05", 1, "payload is not a map (got integer)");
	expect_err("\xc1", 1, "invalid msgpack byte 0xc1");
	expect_err("\x80", 1, "field 't': missing");

	raw_begin(2);
	raw_ku("t", 3);
	raw_ku("id", 1);
	expect_err(raw.data, raw.size,
	    "field 't': expected string, got integer");
	raw_end();

	raw_begin(2);
	raw_kv("t", "ping");
	raw_kv("id", "1");
	expect_err(raw.data, raw.size,
	    "field 'id': expected unsigned integer, got string");
	raw_end();

	raw_begin(1);
	raw_kv("t", "ping");
	expect_err(raw.data, raw.size, "field 'id': missing");
	raw_end();

	raw_begin(3);
	raw_kv("t", "ping");
	raw_ku("id", 1);
	raw_ku("id", 2);
	expect_err(raw.data, raw.size, "field 'id': given twice");
	raw_end();

	raw_begin(2);
	msgpack_pack_int(&rpk, 1);
	raw_str("t");
	raw_kv("t", "ping");
	expect_err(raw.data, raw.size, "map key is not a string");
	raw_end();

	/* A map with fewer entries than it announces. */
	expect_err(LIT("\x83\xa1t\xa4ping"), "payload truncated");
	expect_err(LIT("\x83\xa1t\xa4pin"), "field 't': payload truncated");

	/* Trailing garbage after a valid payload. */
	msgpack_sbuffer_init(&sb);
	proto_enc_simple(&sb, PROTO_PING, 1);
	plen = sb.size - PROTO_HDR_LEN;
	ck_assert_uint_lt(plen + 2, sizeof buf);
	memcpy(buf, sb.data + PROTO_HDR_LEN, plen);
	buf[plen] = '\x00';
	buf[plen + 1] = '\xc0';
	expect_err(buf, plen + 2,
	    "trailing garbage: 2 bytes after the payload map");
	/* Two maps is trailing garbage too. */
	memcpy(buf + plen, buf, plen);
	snprintf(want, sizeof want,
	    "trailing garbage: %zu bytes after the payload map", plen);
	expect_err(buf, 2 * plen, want);
	msgpack_sbuffer_destroy(&sb);

	/* Every truncation of a rich payload is refused. */
	{
		struct llmgate_request r;
		struct proto_msg m;
		char err[128];

		full_request(&r);
		msgpack_sbuffer_init(&sb);
		proto_enc_call(&sb, 1, &r);
		plen = sb.size - PROTO_HDR_LEN;
		for (i = 1; i < plen; i++) {
			ck_assert_int_eq(proto_decode(sb.data + PROTO_HDR_LEN,
			                     i, &m, err, sizeof err),
			    -1);
			ck_assert_ptr_nonnull(strstr(err, "truncated"));
		}
		msgpack_sbuffer_destroy(&sb);
	}
}
END_TEST

/* A call payload with one extra field of the given raw value. */
static void
call_with(const char *key, void (*pack)(void))
{
	raw_begin(3);
	raw_kv("t", "call");
	raw_ku("id", 1);
	raw_str(key);
	pack();
}

static void
pk_str(void)
{
	raw_str("ten");
}
static void
pk_uint(void)
{
	msgpack_pack_uint64(&rpk, 1);
}
static void
pk_neg(void)
{
	msgpack_pack_int64(&rpk, -3);
}
static void
pk_big(void)
{
	msgpack_pack_uint64(&rpk, 1ULL << 32);
}
static void
pk_huge(void)
{
	msgpack_pack_uint64(&rpk, UINT64_MAX);
}
static void
pk_map(void)
{
	msgpack_pack_map(&rpk, 0);
}
static void
pk_true(void)
{
	msgpack_pack_true(&rpk);
}
static void
pk_nan(void)
{
	msgpack_pack_double(&rpk, NAN);
}
static void
pk_bin(void)
{
	msgpack_pack_bin_with_body(&rpk, "x", 1);
}
static void
pk_nul(void)
{
	msgpack_pack_str_with_body(&rpk, "a\0b", 3);
}
static void
pk_urgent(void)
{
	raw_str("urgent");
}
static void
pk_ext(void)
{
	msgpack_pack_ext_with_body(&rpk, "ab", 2, 5);
}
static void
pk_strs(void)
{
	msgpack_pack_array(&rpk, 2);
	raw_str("ok");
	msgpack_pack_uint8(&rpk, 5);
}
static void
pk_msgs_badrole(void)
{
	msgpack_pack_array(&rpk, 2);
	msgpack_pack_map(&rpk, 2);
	raw_kv("role", "user");
	raw_kv("content", "hi");
	msgpack_pack_map(&rpk, 1);
	raw_kv("role", "robot");
}
static void
pk_msgs_norole(void)
{
	msgpack_pack_array(&rpk, 1);
	msgpack_pack_map(&rpk, 1);
	raw_kv("content", "hi");
}
static void
pk_msgs_badtc(void)
{
	msgpack_pack_array(&rpk, 1);
	msgpack_pack_map(&rpk, 2);
	raw_kv("role", "assistant");
	raw_str("tool_calls");
	msgpack_pack_array(&rpk, 1);
	msgpack_pack_map(&rpk, 1);
	raw_ku("name", 5);
}

START_TEST(test_bad_fields)
{
	static const struct {
		const char *key;
		void (*pack)(void);
		const char *want;
	} cases[] = {
		{ "max_tokens", pk_str,
		    "field 'max_tokens': expected unsigned integer, got string" },
		{ "max_tokens", pk_neg,
		    "field 'max_tokens': expected unsigned integer, got negative integer" },
		{ "max_tokens", pk_big,
		    "field 'max_tokens': 4294967296 is out of range" },
		{ "seed", pk_huge,
		    "field 'seed': 18446744073709551615 is out of range" },
		{ "seed", pk_str,
		    "field 'seed': expected integer, got string" },
		{ "temperature", pk_str,
		    "field 'temperature': expected number, got string" },
		{ "temperature", pk_nan,
		    "field 'temperature': not a finite number" },
		{ "stream", pk_uint,
		    "field 'stream': expected boolean, got integer" },
		{ "system", pk_uint,
		    "field 'system': expected string, got integer" },
		{ "system", pk_bin,
		    "field 'system': expected string, got binary" },
		{ "system", pk_ext,
		    "field 'system': expected string, got ext" },
		{ "system", pk_nul,
		    "field 'system': string contains a NUL byte" },
		{ "messages", pk_map,
		    "field 'messages': expected array, got map" },
		{ "messages", pk_msgs_badrole,
		    "field 'messages[1].role': unknown value 'robot'" },
		{ "messages", pk_msgs_norole,
		    "field 'messages[0].role': missing" },
		{ "messages", pk_msgs_badtc,
		    "field 'messages[0].tool_calls[0].name': expected string, got integer" },
		{ "targets", pk_strs,
		    "field 'targets[1]': expected string, got integer" },
		{ "priority", pk_urgent,
		    "field 'priority': unknown value 'urgent'" },
		{ "on_cut", pk_urgent,
		    "field 'on_cut': unknown value 'urgent'" },
		{ "priority", pk_true,
		    "field 'priority': expected string, got boolean" },
		{ "tools", pk_strs,
		    "field 'tools[0]': expected map, got string" },
	};
	size_t i;

	for (i = 0; i < nitems(cases); i++) {
		call_with(cases[i].key, cases[i].pack);
		expect_err(raw.data, raw.size, cases[i].want);
		raw_end();
	}
}
END_TEST

START_TEST(test_bad_result)
{
	raw_begin(3);
	raw_kv("t", "result");
	raw_ku("id", 1);
	raw_kv("class", "rate_limited");
	expect_err(raw.data, raw.size, "field 'class': must be ok in a result");
	raw_end();

	raw_begin(2);
	raw_kv("t", "error");
	raw_ku("id", 1);
	expect_err(raw.data, raw.size, "field 'class': missing");
	raw_end();

	raw_begin(3);
	raw_kv("t", "error");
	raw_ku("id", 1);
	raw_kv("class", "ok");
	expect_err(raw.data, raw.size,
	    "field 'class': must not be ok in an error");
	raw_end();

	raw_begin(3);
	raw_kv("t", "error");
	raw_ku("id", 1);
	raw_kv("class", "teapot");
	expect_err(raw.data, raw.size, "field 'class': unknown value 'teapot'");
	raw_end();

	raw_begin(3);
	raw_kv("t", "result");
	raw_ku("id", 1);
	raw_str("usage");
	msgpack_pack_map(&rpk, 1);
	raw_kv("input_tokens", "many");
	expect_err(raw.data, raw.size,
	    "field 'usage.input_tokens': expected unsigned integer, got string");
	raw_end();

	raw_begin(3);
	raw_kv("t", "result");
	raw_ku("id", 1);
	raw_kv("finish_reason", "");
	expect_err(raw.data, raw.size,
	    "field 'finish_reason': unknown value ''");
	raw_end();

	raw_begin(3);
	raw_kv("t", "error");
	raw_ku("id", 1);
	raw_str("attempts");
	msgpack_pack_array(&rpk, 1);
	msgpack_pack_map(&rpk, 1);
	raw_kv("class", "weird\001name");
	expect_err(raw.data, raw.size,
	    "field 'attempts[0].class': unknown value 'weird?name'");
	raw_end();

	/* A chunk's tool delta must say which tool. */
	raw_begin(3);
	raw_kv("t", "chunk");
	raw_ku("id", 1);
	raw_str("tool");
	msgpack_pack_map(&rpk, 1);
	raw_kv("args", "{");
	expect_err(raw.data, raw.size, "field 'tool.index': missing");
	raw_end();

	/* A lease target over its buffer. */
	{
		char t[257];

		memset(t, 'x', 256);
		t[256] = '\0';
		raw_begin(3);
		raw_kv("t", "lease");
		raw_ku("id", 1);
		raw_kv("target", t);
		expect_err(raw.data, raw.size,
		    "field 'target': longer than 255 bytes");
		raw_end();
	}
}
END_TEST

/* n nested arrays around a nil. */
static void
pack_nested(u_int n)
{
	u_int i;

	for (i = 0; i < n; i++)
		msgpack_pack_array(&rpk, 1);
	msgpack_pack_nil(&rpk);
}

START_TEST(test_limits)
{
	struct proto_msg m;
	char err[128];
	uint32_t i;

	/* JSON bodies: 32 levels pass, 33 do not. */
	raw_begin(3);
	raw_kv("t", "status");
	raw_ku("id", 1);
	raw_str("body");
	pack_nested(PROTO_MAX_DEPTH);
	ck_assert_int_eq(proto_decode(raw.data, raw.size, &m, err, sizeof err),
	    0);
	ck_assert(json_is_array(m.u.status));
	proto_msg_free(&m);
	raw_end();

	raw_begin(3);
	raw_kv("t", "status");
	raw_ku("id", 1);
	raw_str("body");
	pack_nested(PROTO_MAX_DEPTH + 1);
	expect_err(raw.data, raw.size,
	    "field 'body': nested deeper than 32 levels");
	raw_end();

	/* The same limit for values of unknown fields. */
	raw_begin(3);
	raw_kv("t", "ping");
	raw_ku("id", 1);
	raw_str("x-deep");
	pack_nested(1000);
	expect_err(raw.data, raw.size,
	    "field 'x-deep': nested deeper than 32 levels");
	raw_end();

	/* A body that msgpack can carry but JSON cannot. */
	raw_begin(3);
	raw_kv("t", "status");
	raw_ku("id", 1);
	raw_str("body");
	msgpack_pack_map(&rpk, 1);
	msgpack_pack_int(&rpk, 1);
	msgpack_pack_nil(&rpk);
	expect_err(raw.data, raw.size,
	    "field 'body': not a JSON value "
	    "(ext, float infinity, invalid UTF-8 or non-string key)");
	raw_end();

	/* Too many items: really present, so it is the count that is
	 * refused, not the length. */
	raw_begin(3);
	raw_kv("t", "call");
	raw_ku("id", 1);
	raw_str("stop");
	msgpack_pack_array(&rpk, PROTO_MAX_ITEMS + 1);
	for (i = 0; i < PROTO_MAX_ITEMS + 1; i++)
		raw_str("");
	expect_err(raw.data, raw.size, "field 'stop': more than 65536 items");
	raw_end();

	/* Exactly the limit is fine. */
	raw_begin(3);
	raw_kv("t", "call");
	raw_ku("id", 1);
	raw_str("stop");
	msgpack_pack_array(&rpk, PROTO_MAX_ITEMS);
	for (i = 0; i < PROTO_MAX_ITEMS; i++)
		raw_str("s");
	ck_assert_int_eq(proto_decode(raw.data, raw.size, &m, err, sizeof err),
	    0);
	ck_assert_uint_eq(m.u.call.nstop, PROTO_MAX_ITEMS);
	ck_assert_str_eq(m.u.call.stop[PROTO_MAX_ITEMS - 1], "s");
	proto_msg_free(&m);
	raw_end();

	/* A count far beyond the bytes present is refused before any
	 * allocation (ASan would report a huge one). */
	expect_err(LIT("\x83\xa1t\xa4"
	               "call\xa2id\x01\xa8messages"
	               "\xdd\x00\x00\xff\xff"),
	    "field 'messages': payload truncated");
	expect_err(LIT("\x81\xa1t\xdb\xff\xff\xff\xff"),
	    "field 't': payload truncated");
	expect_err(LIT("\xdf\xff\xff\xff\xff"), "more than 65536 items");
}
END_TEST

/* Nested msgpack_objects built by hand: the unpacker stops at 32 on its
 * own, so this reaches proto_unpack_json's own limit. */
START_TEST(test_unpack_json_depth)
{
	msgpack_object o[PROTO_MAX_DEPTH + 2];
	json_t *j;
	int i, n;

	for (n = PROTO_MAX_DEPTH; n <= PROTO_MAX_DEPTH + 1; n++) {
		for (i = 0; i < n; i++) {
			o[i].type = MSGPACK_OBJECT_ARRAY;
			o[i].via.array.size = 1;
			o[i].via.array.ptr = &o[i + 1];
		}
		o[n].type = MSGPACK_OBJECT_NIL;
		j = proto_unpack_json(&o[0], 0);
		if (n == PROTO_MAX_DEPTH) {
			ck_assert_ptr_nonnull(j);
			json_decref(j);
		} else
			ck_assert_ptr_null(j);
	}
	/* Starting deeper leaves less room. */
	ck_assert_ptr_null(proto_unpack_json(&o[0], 1));
	o[0].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	o[0].via.u64 = UINT64_MAX;
	j = proto_unpack_json(&o[0], 0);
	ck_assert(json_is_real(j));
	json_decref(j);
}
END_TEST

/* xorshift: the same bytes on every run. */
static uint64_t fuzz_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
fuzz_rand(void)
{
	fuzz_state ^= fuzz_state << 13;
	fuzz_state ^= fuzz_state >> 7;
	fuzz_state ^= fuzz_state << 17;
	return (uint32_t)(fuzz_state >> 16);
}

START_TEST(test_fuzz)
{
	msgpack_sbuffer seeds[6];
	struct llmgate_request r;
	struct llmgate_result res;
	struct llmgate_chunk c;
	struct proto_msg m;
	json_t *j;
	char err[256], buf[4096];
	size_t i, len, k, n, ok = 0;
	const msgpack_sbuffer *s;

	full_request(&r);
	memset(&res, 0, sizeof res);
	res.cls = LLMGATE_SERVER_ERROR;
	res.message = "boom";
	res.attempts = full_attempts;
	res.nattempts = nitems(full_attempts);
	res.tool_calls = full_tcs;
	res.ntool_calls = nitems(full_tcs);
	memset(&c, 0, sizeof c);
	c.text = "tok";
	c.len = 3;
	c.tool_index = 1;
	c.tool_args = "{}";
	j = json_pack("{s:i, s:[f, s, {s:b}]}", "a", 1, "b", 0.5, "c", "d",
	    true);
	for (i = 0; i < nitems(seeds); i++)
		msgpack_sbuffer_init(&seeds[i]);
	proto_enc_call(&seeds[0], 1, &r);
	proto_enc_result(&seeds[1], 2, &res);
	proto_enc_chunk(&seeds[2], 3, &c);
	proto_enc_status(&seeds[3], 4, j);
	proto_enc_simple(&seeds[4], PROTO_PING, 5);
	proto_enc_error(&seeds[5], 0, LLMGATE_INVALID_REQUEST, "no");
	json_decref(j);

	for (i = 0; i < 20000; i++) {
		if (i % 4 == 0) {
			/* Random bytes. */
			len = 1 + fuzz_rand() % 64;
			for (k = 0; k < len; k++)
				buf[k] = (char)fuzz_rand();
		} else {
			/* A valid payload with a few bytes changed, maybe
			 * cut short or extended. */
			s = &seeds[fuzz_rand() % nitems(seeds)];
			len = s->size - PROTO_HDR_LEN;
			ck_assert_uint_le(len, sizeof buf);
			memcpy(buf, s->data + PROTO_HDR_LEN, len);
			n = 1 + fuzz_rand() % 4;
			for (k = 0; k < n; k++) {
				switch (fuzz_rand() % 3) {
				case 0:
					buf[fuzz_rand() % len] =
					    (char)fuzz_rand();
					break;
				case 1:
					buf[fuzz_rand() % len] ^=
					    (char)(1u << (fuzz_rand() % 8));
					break;
				default:
					buf[fuzz_rand() % len] =
					    (char)(0xc0 + fuzz_rand() % 0x20);
					break;
				}
			}
			if (fuzz_rand() % 8 == 0)
				len = 1 + fuzz_rand() % len;
		}
		proto_frame_len(buf, len, PROTO_MAX_FRAME, NULL);
		if (proto_decode(buf, len, &m, err, sizeof err) == 0) {
			ok++;
			proto_msg_free(&m);
		} else {
			ck_assert_ptr_null(m.zone);
			ck_assert_uint_gt(strlen(err), 0);
		}
	}
	/* Some mutations leave a valid message; most do not. */
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_lt(ok, 20000);
	for (i = 0; i < nitems(seeds); i++)
		msgpack_sbuffer_destroy(&seeds[i]);
}
END_TEST

static Suite *
proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc;

	tc = tcase_create("frame");
	tcase_add_test(tc, test_frame_len);
	tcase_add_test(tc, test_frames_in_a_row);
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_add_test(tc, test_hello);
	tcase_add_test(tc, test_call_full);
	tcase_add_test(tc, test_call_minimal);
	tcase_add_test(tc, test_call_key_order_and_int_floats);
	tcase_add_test(tc, test_chunk);
	tcase_add_test(tc, test_result);
	tcase_add_test(tc, test_error);
	tcase_add_test(tc, test_simple);
	tcase_add_test(tc, test_status_body);
	tcase_add_test(tc, test_metrics);
	tcase_add_test(tc, test_acquire);
	tcase_add_test(tc, test_lease);
	tcase_add_test(tc, test_report);
	tcase_add_test(tc, test_take_zone);
	tcase_add_test(tc, test_unknown_type);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_test(tc, test_bad_shape);
	tcase_add_test(tc, test_bad_fields);
	tcase_add_test(tc, test_bad_result);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_unpack_json_depth);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fuzz);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(proto_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
