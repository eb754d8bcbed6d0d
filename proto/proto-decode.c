/*
 * proto-decode.c: frames into structs (proto_decode and its proto_rd_*
 * readers).
 *
 * Decoding walks the payload bytes directly instead of building a
 * msgpack_object tree first: every count a peer announces is checked
 * against the limits and against the bytes that are left before anything
 * is allocated, each field lands straight in its struct, and one zone holds
 * all of a message's copies. The fields of each message are tables.
 */
#include <sys/types.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "proto-int.h"

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof(a)[0])
#endif

/* What a msgpack header turned out to be. */
enum proto_kind {
	PK_NIL,
	PK_BOOL,
	PK_UINT, /* any integer >= 0, whatever its encoding */
	PK_INT,  /* any integer < 0 */
	PK_FLOAT,
	PK_STR,
	PK_BIN,
	PK_EXT,
	PK_ARRAY,
	PK_MAP
};

struct proto_val {
	enum proto_kind kind;
	int b;
	uint64_t u;
	int64_t i;
	double f;
	uint32_t n;    /* array or map entries */
	const char *s; /* str, bin, ext */
	uint32_t len;
};

/* Where the reader is, for error messages: "messages[2].role". */
struct proto_path {
	const char *key;
	size_t keylen;
	long idx; /* array element, or -1 */
};

#define PROTO_PATH_MAX 8

struct proto_rd {
	const uint8_t *p;
	const uint8_t *end;
	msgpack_zone *zone;
	size_t bytes; /* allocated from zone so far */
	char *err;
	size_t errlen;
	u_int npath;
	struct proto_path path[PROTO_PATH_MAX];
};

enum proto_ftype {
	PF_SKIP,   /* "t": read before the map is walked */
	PF_STR,    /* char *: a NUL-free string */
	PF_BYTES,  /* const char * and its size_t length at off2 */
	PF_STRBUF, /* char[size] */
	PF_BOOL,   /* int */
	PF_INT,    /* int, 0 to INT_MAX */
	PF_U32,
	PF_U64,
	PF_I64,
	PF_DBL,  /* integers accepted too */
	PF_ENUM, /* an int-sized enum, by name */
	PF_STRV, /* char ** at off, size_t count at off2 */
	PF_MAPV, /* array of size-byte structs at off, count at off2 */
	PF_MAP,  /* a nested map decoded into base + off */
	PF_JSON  /* json_t *: any value, converted */
};

struct proto_field {
	const char *name;
	size_t len;
	enum proto_ftype type;
	int required;
	size_t off;
	size_t off2;
	unsigned has; /* bit set in the unsigned at off2 */
	size_t size;
	int (*from_name)(const char *);
	const struct proto_field *sub;
	u_int nsub;
};

#define FIELD(n, ty, ...) \
	{ \
		.name = (n), .len = sizeof(n) - 1, .type = (ty), __VA_ARGS__ \
	}
#define SUB(t)   .sub = (t), .nsub = nitems(t)
#define MSG(m)   offsetof(struct proto_msg, m)
#define OF(s, m) offsetof(struct s, m)

static const struct proto_field proto_tool_call_fields[] = {
	FIELD("id", PF_STR, .off = OF(llmgate_tool_call, id)),
	FIELD("name", PF_STR, .off = OF(llmgate_tool_call, name)),
	FIELD("arguments", PF_STR, .off = OF(llmgate_tool_call, arguments)),
};

static const struct proto_field proto_message_fields[] = {
	FIELD("role", PF_ENUM, .required = 1, .off = OF(llmgate_message, role),
	    .from_name = llmgate_role_from_name),
	FIELD("content", PF_STR, .off = OF(llmgate_message, content)),
	FIELD("tool_calls", PF_MAPV, .off = OF(llmgate_message, tool_calls),
	    .off2 = OF(llmgate_message, ntool_calls),
	    .size = sizeof(struct llmgate_tool_call),
	    SUB(proto_tool_call_fields)),
	FIELD("tool_call_id", PF_STR, .off = OF(llmgate_message, tool_call_id)),
	FIELD("name", PF_STR, .off = OF(llmgate_message, name)),
};

static const struct proto_field proto_tool_fields[] = {
	FIELD("name", PF_STR, .off = OF(llmgate_tool, name)),
	FIELD("description", PF_STR, .off = OF(llmgate_tool, description)),
	FIELD("parameters", PF_STR, .off = OF(llmgate_tool, parameters)),
};

static const struct proto_field proto_attempt_fields[] = {
	FIELD("target", PF_STR, .off = OF(llmgate_attempt, target)),
	FIELD("class", PF_ENUM, .off = OF(llmgate_attempt, cls),
	    .from_name = llmgate_class_from_name),
	FIELD("status", PF_U32, .off = OF(llmgate_attempt, status)),
	FIELD("message", PF_STR, .off = OF(llmgate_attempt, message)),
	FIELD("ms", PF_U32, .off = OF(llmgate_attempt, ms)),
	FIELD("waited_ms", PF_U32, .off = OF(llmgate_attempt, waited_ms)),
	FIELD("skipped", PF_BOOL, .off = OF(llmgate_attempt, skipped)),
};

static const struct proto_field proto_usage_fields[] = {
	FIELD("input_tokens", PF_U64, .off = OF(llmgate_result, input_tokens)),
	FIELD("output_tokens", PF_U64,
	    .off = OF(llmgate_result, output_tokens)),
};

static const struct proto_field proto_usage_total_fields[] = {
	FIELD("input_tokens", PF_U64,
	    .off = OF(llmgate_result, total_input_tokens)),
	FIELD("output_tokens", PF_U64,
	    .off = OF(llmgate_result, total_output_tokens)),
};

static const struct proto_field proto_chunk_tool_fields[] = {
	FIELD("index", PF_INT, .required = 1,
	    .off = OF(llmgate_chunk, tool_index)),
	FIELD("id", PF_STR, .off = OF(llmgate_chunk, tool_id)),
	FIELD("name", PF_STR, .off = OF(llmgate_chunk, tool_name)),
	FIELD("args", PF_STR, .off = OF(llmgate_chunk, tool_args)),
};

/* Every top-level table starts with these two. */
#define FIELDS_TOP \
	FIELD("t", PF_SKIP, .required = 1), \
	    FIELD("id", PF_U32, .required = 1, .off = MSG(id))

static const struct proto_field proto_bare_fields[] = {
	FIELDS_TOP,
};

static const struct proto_field proto_hello_fields[] = {
	FIELDS_TOP,
	FIELD("v", PF_U32, .off = MSG(u.hello.version)),
	FIELD("name", PF_STR, .off = MSG(u.hello.name)),
	FIELD("server", PF_STR, .off = MSG(u.hello.server)),
	FIELD("max_frame", PF_U32, .off = MSG(u.hello.max_frame)),
};

static const struct proto_field proto_call_fields[] = {
	FIELDS_TOP,
	FIELD("system", PF_STR, .off = MSG(u.call.system)),
	FIELD("messages", PF_MAPV, .off = MSG(u.call.messages),
	    .off2 = MSG(u.call.nmessages),
	    .size = sizeof(struct llmgate_message), SUB(proto_message_fields)),
	FIELD("tools", PF_MAPV, .off = MSG(u.call.tools),
	    .off2 = MSG(u.call.ntools), .size = sizeof(struct llmgate_tool),
	    SUB(proto_tool_fields)),
	FIELD("schema", PF_STR, .off = MSG(u.call.schema)),
	FIELD("targets", PF_STRV, .off = MSG(u.call.targets),
	    .off2 = MSG(u.call.ntargets)),
	FIELD("route", PF_STR, .off = MSG(u.call.route)),
	FIELD("max_tokens", PF_U32, .off = MSG(u.call.max_tokens),
	    .off2 = MSG(u.call.has), .has = LLMGATE_HAS_MAX_TOKENS),
	FIELD("temperature", PF_DBL, .off = MSG(u.call.temperature),
	    .off2 = MSG(u.call.has), .has = LLMGATE_HAS_TEMPERATURE),
	FIELD("top_p", PF_DBL, .off = MSG(u.call.top_p),
	    .off2 = MSG(u.call.has), .has = LLMGATE_HAS_TOP_P),
	FIELD("seed", PF_I64, .off = MSG(u.call.seed), .off2 = MSG(u.call.has),
	    .has = LLMGATE_HAS_SEED),
	FIELD("stop", PF_STRV, .off = MSG(u.call.stop),
	    .off2 = MSG(u.call.nstop)),
	FIELD("attempts", PF_U32, .off = MSG(u.call.attempts)),
	FIELD("timeout_ms", PF_U32, .off = MSG(u.call.timeout_ms)),
	FIELD("priority", PF_ENUM, .off = MSG(u.call.priority),
	    .from_name = llmgate_priority_from_name),
	FIELD("on_cut", PF_ENUM, .off = MSG(u.call.on_cut),
	    .from_name = llmgate_on_cut_from_name),
	FIELD("stream", PF_BOOL, .off = MSG(u.call.stream)),
	FIELD("fallback_on", PF_STRV, .off = MSG(u.call.fallback_on),
	    .off2 = MSG(u.call.nfallback_on)),
	FIELD("reject", PF_STRV, .off = MSG(u.call.reject),
	    .off2 = MSG(u.call.nreject)),
	FIELD("tool_choice", PF_ENUM, .off = MSG(u.call.tool_choice),
	    .from_name = llmgate_tool_choice_from_name),
	FIELD("tool_name", PF_STR, .off = MSG(u.call.tool_name)),
};

static const struct proto_field proto_chunk_fields[] = {
	FIELDS_TOP,
	FIELD("text", PF_BYTES, .off = MSG(u.chunk.text),
	    .off2 = MSG(u.chunk.len)),
	FIELD("reset", PF_BOOL, .off = MSG(u.chunk.reset)),
	FIELD("tool", PF_MAP, .off = MSG(u.chunk),
	    SUB(proto_chunk_tool_fields)),
};

/* result and error. */
static const struct proto_field proto_result_fields[] = {
	FIELDS_TOP,
	FIELD("class", PF_ENUM, .off = MSG(u.result.cls),
	    .from_name = llmgate_class_from_name),
	FIELD("message", PF_STR, .off = MSG(u.result.message)),
	FIELD("partial", PF_BOOL, .off = MSG(u.result.partial)),
	FIELD("streamed", PF_BOOL, .off = MSG(streamed)),
	FIELD("text", PF_STR, .off = MSG(u.result.text)),
	FIELD("target", PF_STR, .off = MSG(u.result.target)),
	FIELD("finish_reason", PF_ENUM, .off = MSG(u.result.finish),
	    .from_name = llmgate_finish_from_name),
	FIELD("stop_sequence", PF_STR, .off = MSG(u.result.stop_sequence)),
	FIELD("usage", PF_MAP, .off = MSG(u.result), SUB(proto_usage_fields)),
	FIELD("usage_total", PF_MAP, .off = MSG(u.result),
	    SUB(proto_usage_total_fields)),
	FIELD("tool_calls", PF_MAPV, .off = MSG(u.result.tool_calls),
	    .off2 = MSG(u.result.ntool_calls),
	    .size = sizeof(struct llmgate_tool_call),
	    SUB(proto_tool_call_fields)),
	FIELD("attempts", PF_MAPV, .off = MSG(u.result.attempts),
	    .off2 = MSG(u.result.nattempts),
	    .size = sizeof(struct llmgate_attempt), SUB(proto_attempt_fields)),
};

static const struct proto_field proto_status_fields[] = {
	FIELDS_TOP,
	FIELD("body", PF_JSON, .off = MSG(u.status)),
};

static const struct proto_field proto_metrics_fields[] = {
	FIELDS_TOP,
	FIELD("text", PF_STR, .off = MSG(u.metrics)),
};

static const struct proto_field proto_acquire_fields[] = {
	FIELDS_TOP,
	FIELD("target", PF_STR, .off = MSG(u.acquire.target)),
	FIELD("tokens", PF_U32, .off = MSG(u.acquire.tokens)),
	FIELD("timeout_ms", PF_U32, .off = MSG(u.acquire.timeout_ms)),
	FIELD("priority", PF_ENUM, .off = MSG(u.acquire.priority),
	    .from_name = llmgate_priority_from_name),
};

static const struct proto_field proto_lease_fields[] = {
	FIELDS_TOP,
	FIELD("lease", PF_U64, .off = MSG(u.lease.id)),
	FIELD("target", PF_STRBUF, .off = MSG(u.lease.target),
	    .size = sizeof((struct llmgate_lease *)NULL)->target),
	FIELD("ttl_ms", PF_U32, .off = MSG(u.lease.ttl_ms)),
};

static const struct proto_field proto_report_fields[] = {
	FIELDS_TOP,
	FIELD("lease", PF_U64, .off = MSG(u.report.lease)),
	FIELD("status", PF_U32, .off = MSG(u.report.status)),
	FIELD("retry_after_s", PF_DBL, .off = MSG(u.report.retry_after_s)),
	FIELD("input_tokens", PF_U64, .off = MSG(u.report.input_tokens)),
	FIELD("output_tokens", PF_U64, .off = MSG(u.report.output_tokens)),
};

/* The seen-fields mask of a map is 32 bits. */
_Static_assert(nitems(proto_call_fields) <= 32, "call has too many fields");
_Static_assert(sizeof(enum llmgate_class) == sizeof(int) &&
        sizeof(enum llmgate_priority) == sizeof(int),
    "enums are int-sized");

static const struct {
	const struct proto_field *f;
	u_int n;
} proto_tables[PROTO_TYPE_MAX] = {
	[PROTO_UNKNOWN] = { proto_bare_fields, nitems(proto_bare_fields) },
	[PROTO_HELLO] = { proto_hello_fields, nitems(proto_hello_fields) },
	[PROTO_CALL] = { proto_call_fields, nitems(proto_call_fields) },
	[PROTO_CHUNK] = { proto_chunk_fields, nitems(proto_chunk_fields) },
	[PROTO_RESULT] = { proto_result_fields, nitems(proto_result_fields) },
	[PROTO_ERROR] = { proto_result_fields, nitems(proto_result_fields) },
	[PROTO_CANCEL] = { proto_bare_fields, nitems(proto_bare_fields) },
	[PROTO_STATUS] = { proto_status_fields, nitems(proto_status_fields) },
	[PROTO_PING] = { proto_bare_fields, nitems(proto_bare_fields) },
	[PROTO_PONG] = { proto_bare_fields, nitems(proto_bare_fields) },
	[PROTO_RELOAD] = { proto_bare_fields, nitems(proto_bare_fields) },
	[PROTO_METRICS] = { proto_metrics_fields,
	    nitems(proto_metrics_fields) },
	[PROTO_ACQUIRE] = { proto_acquire_fields,
	    nitems(proto_acquire_fields) },
	[PROTO_LEASE] = { proto_lease_fields, nitems(proto_lease_fields) },
	[PROTO_REPORT] = { proto_report_fields, nitems(proto_report_fields) },
	[PROTO_OK] = { proto_bare_fields, nitems(proto_bare_fields) },
};

/* Pointers are stored through memcpy: the fields' types differ (const). */
static void
proto_set_ptr(void *at, const void *p)
{
	memcpy(at, &p, sizeof p);
}

/* Wire text put into a message: printable ASCII only, bounded. */
static void
proto_printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t i, n = 0;
	unsigned char c;

	for (i = 0; i < len && n + 4 < dstlen; i++) {
		c = (unsigned char)src[i];
		dst[n++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
	}
	if (i < len) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
}

static int __attribute__((format(printf, 2, 3)))
proto_rd_err(struct proto_rd *rd, const char *fmt, ...)
{
	char msg[160], path[256], key[64];
	const struct proto_path *pp;
	size_t n = 0;
	u_int i;
	va_list ap;

	if (rd->err == NULL || rd->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (rd->npath == 0) {
		snprintf(rd->err, rd->errlen, "%s", msg);
		return -1;
	}
	path[0] = '\0';
	for (i = 0; i < rd->npath && i < PROTO_PATH_MAX; i++) {
		pp = &rd->path[i];
		proto_printable(key, sizeof key, pp->key, pp->keylen);
		n += snprintf(path + n, sizeof path - n, "%s%s",
		    i == 0 ? "" : ".", key);
		if (n >= sizeof path)
			break;
		if (pp->idx >= 0)
			n += snprintf(path + n, sizeof path - n, "[%ld]",
			    pp->idx);
		if (n >= sizeof path)
			break;
	}
	snprintf(rd->err, rd->errlen, "field '%s': %s", path, msg);
	return -1;
}

static void
proto_rd_push(struct proto_rd *rd, const char *key, size_t keylen)
{
	if (rd->npath < PROTO_PATH_MAX) {
		rd->path[rd->npath].key = key;
		rd->path[rd->npath].keylen = keylen;
		rd->path[rd->npath].idx = -1;
	}
	rd->npath++;
}

static void
proto_rd_index(struct proto_rd *rd, long idx)
{
	if (rd->npath > 0 && rd->npath <= PROTO_PATH_MAX)
		rd->path[rd->npath - 1].idx = idx;
}

static void *
proto_rd_alloc(struct proto_rd *rd, size_t size)
{
	void *p;

	if ((p = msgpack_zone_malloc(rd->zone, size)) == NULL)
		proto_nomem(size);
	rd->bytes += size;
	return p;
}

/* A NUL-terminated copy of wire bytes in the message's zone. */
static char *
proto_rd_copy(struct proto_rd *rd, const char *s, size_t len)
{
	char *p;

	if ((p = msgpack_zone_malloc_no_align(rd->zone, len + 1)) == NULL)
		proto_nomem(len + 1);
	rd->bytes += len + 1;
	if (len != 0)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static int
proto_rd_need(struct proto_rd *rd, size_t n)
{
	if ((size_t)(rd->end - rd->p) < n)
		return proto_rd_err(rd, "payload truncated");
	return 0;
}

/*
 * Read one msgpack header, and for str, bin and ext their bytes too. An
 * array or map is only announced: the caller reads its n entries. Counts
 * are checked here, before any caller allocates for them.
 */
static int
proto_rd_next(struct proto_rd *rd, struct proto_val *v)
{
	uint8_t b;
	u_int w;
	uint64_t x, left;
	uint32_t f32;
	float f;

	if (proto_rd_need(rd, 1) != 0)
		return -1;
	b = *rd->p++;
	if (b <= 0x7f) {
		v->kind = PK_UINT;
		v->u = b;
		return 0;
	}
	if (b >= 0xe0) {
		v->kind = PK_INT;
		v->i = (int8_t)b;
		return 0;
	}
	if (b <= 0x8f) {
		v->kind = PK_MAP;
		v->n = b & 0x0f;
		goto container;
	}
	if (b <= 0x9f) {
		v->kind = PK_ARRAY;
		v->n = b & 0x0f;
		goto container;
	}
	if (b <= 0xbf) {
		v->kind = PK_STR;
		v->len = b & 0x1f;
		goto raw;
	}

	switch (b) {
	case 0xc0:
		v->kind = PK_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		v->kind = PK_BOOL;
		v->b = (b == 0xc3);
		return 0;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		v->kind = PK_BIN;
		w = 1u << (b - 0xc4);
		goto sized;
	case 0xc7:
	case 0xc8:
	case 0xc9:
		v->kind = PK_EXT;
		w = 1u << (b - 0xc7);
		if (proto_rd_need(rd, w + 1) != 0)
			return -1;
		v->len = (uint32_t)proto_be(rd->p, w);
		rd->p += w + 1; /* and the ext type byte */
		goto raw;
	case 0xca:
		if (proto_rd_need(rd, 4) != 0)
			return -1;
		f32 = (uint32_t)proto_be(rd->p, 4);
		memcpy(&f, &f32, sizeof f);
		rd->p += 4;
		v->kind = PK_FLOAT;
		v->f = f;
		return 0;
	case 0xcb:
		if (proto_rd_need(rd, 8) != 0)
			return -1;
		x = proto_be(rd->p, 8);
		memcpy(&v->f, &x, sizeof v->f);
		rd->p += 8;
		v->kind = PK_FLOAT;
		return 0;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		w = 1u << (b - 0xcc);
		if (proto_rd_need(rd, w) != 0)
			return -1;
		v->kind = PK_UINT;
		v->u = proto_be(rd->p, w);
		rd->p += w;
		return 0;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		w = 1u << (b - 0xd0);
		if (proto_rd_need(rd, w) != 0)
			return -1;
		x = proto_be(rd->p, w);
		rd->p += w;
		switch (w) {
		case 1:
			v->i = (int8_t)x;
			break;
		case 2:
			v->i = (int16_t)x;
			break;
		case 4:
			v->i = (int32_t)x;
			break;
		default:
			v->i = (int64_t)x;
			break;
		}
		if (v->i >= 0) {
			v->kind = PK_UINT;
			v->u = (uint64_t)v->i;
		} else
			v->kind = PK_INT;
		return 0;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		v->kind = PK_EXT;
		v->len = 1u << (b - 0xd4);
		if (proto_rd_need(rd, 1) != 0)
			return -1;
		rd->p++; /* the ext type byte */
		goto raw;
	case 0xd9:
	case 0xda:
	case 0xdb:
		v->kind = PK_STR;
		w = 1u << (b - 0xd9);
		goto sized;
	case 0xdc:
	case 0xdd:
		v->kind = PK_ARRAY;
		w = b == 0xdc ? 2 : 4;
		break;
	case 0xde:
	case 0xdf:
		v->kind = PK_MAP;
		w = b == 0xde ? 2 : 4;
		break;
	default:
		return proto_rd_err(rd, "invalid msgpack byte 0x%02x", b);
	}

	/* array16/32, map16/32 */
	if (proto_rd_need(rd, w) != 0)
		return -1;
	v->n = (uint32_t)proto_be(rd->p, w);
	rd->p += w;
container:
	if (v->n > PROTO_MAX_ITEMS) {
		return proto_rd_err(rd, "more than %u items",
		    (u_int)PROTO_MAX_ITEMS);
	}
	/* Every entry takes at least one byte: a short payload cannot
	 * make us allocate for a huge count. */
	left = (uint64_t)(rd->end - rd->p);
	if ((v->kind == PK_MAP ? 2 * (uint64_t)v->n : v->n) > left)
		return proto_rd_err(rd, "payload truncated");
	return 0;

sized:
	if (proto_rd_need(rd, w) != 0)
		return -1;
	v->len = (uint32_t)proto_be(rd->p, w);
	rd->p += w;
raw:
	if (proto_rd_need(rd, v->len) != 0)
		return -1;
	v->s = (const char *)rd->p;
	rd->p += v->len;
	return 0;
}

/* Step over one value we do not want, checking it as we go. */
static int
proto_rd_skip(struct proto_rd *rd, u_int depth)
{
	struct proto_val v;
	uint64_t i, n;

	if (proto_rd_next(rd, &v) != 0)
		return -1;
	if (v.kind != PK_ARRAY && v.kind != PK_MAP)
		return 0;
	if (depth >= PROTO_MAX_DEPTH) {
		return proto_rd_err(rd, "nested deeper than %d levels",
		    PROTO_MAX_DEPTH);
	}
	n = v.kind == PK_MAP ? 2 * (uint64_t)v.n : v.n;
	for (i = 0; i < n; i++) {
		if (proto_rd_skip(rd, depth + 1) != 0)
			return -1;
	}
	return 0;
}

static const char *
proto_kind_name(enum proto_kind k)
{
	static const char *names[] = {
		[PK_NIL] = "nil",
		[PK_BOOL] = "boolean",
		[PK_UINT] = "integer",
		[PK_INT] = "negative integer",
		[PK_FLOAT] = "float",
		[PK_STR] = "string",
		[PK_BIN] = "binary",
		[PK_EXT] = "ext",
		[PK_ARRAY] = "array",
		[PK_MAP] = "map",
	};

	return names[k];
}

static int
proto_rd_expected(struct proto_rd *rd, const char *what,
    const struct proto_val *v)
{
	return proto_rd_err(rd, "expected %s, got %s", what,
	    proto_kind_name(v->kind));
}

/* The next value, which must be of kind k. */
static int
proto_rd_want(struct proto_rd *rd, struct proto_val *v, enum proto_kind k)
{
	if (proto_rd_next(rd, v) != 0)
		return -1;
	if (v->kind != k)
		return proto_rd_expected(rd, proto_kind_name(k), v);
	return 0;
}

static int
proto_rd_str(struct proto_rd *rd, char **out)
{
	struct proto_val v;

	if (proto_rd_want(rd, &v, PK_STR) != 0)
		return -1;
	if (memchr(v.s, '\0', v.len) != NULL)
		return proto_rd_err(rd, "string contains a NUL byte");
	*out = proto_rd_copy(rd, v.s, v.len);
	return 0;
}

static int
proto_rd_uint(struct proto_rd *rd, uint64_t *out, uint64_t max)
{
	struct proto_val v;

	if (proto_rd_next(rd, &v) != 0)
		return -1;
	if (v.kind != PK_UINT)
		return proto_rd_expected(rd, "unsigned integer", &v);
	if (v.u > max)
		return proto_rd_err(rd, "%ju is out of range", (uintmax_t)v.u);
	*out = v.u;
	return 0;
}

static int proto_rd_map(struct proto_rd *, const struct proto_field *, u_int,
    void *);
static int proto_rd_json(struct proto_rd *, json_t **);

/* An array of strings or of maps, in one zone allocation. */
static int
proto_rd_array(struct proto_rd *rd, const struct proto_field *f, void *base)
{
	struct proto_val v;
	char *items = NULL;
	size_t size;
	uint32_t i;
	int rc;

	if (proto_rd_want(rd, &v, PK_ARRAY) != 0)
		return -1;
	size = f->type == PF_STRV ? sizeof(char *) : f->size;
	if (v.n != 0) {
		items = proto_rd_alloc(rd, v.n * size);
		memset(items, 0, v.n * size);
	}
	for (i = 0; i < v.n; i++) {
		proto_rd_index(rd, i);
		if (f->type == PF_STRV)
			rc = proto_rd_str(rd, (char **)(items + i * size));
		else
			rc =
			    proto_rd_map(rd, f->sub, f->nsub, items + i * size);
		if (rc != 0)
			return -1;
	}
	proto_rd_index(rd, -1);
	proto_set_ptr((char *)base + f->off, items);
	*(size_t *)((char *)base + f->off2) = v.n;
	return 0;
}

static int
proto_rd_field(struct proto_rd *rd, const struct proto_field *f, void *base)
{
	struct proto_val v;
	char *at = (char *)base + f->off, *s, name[32];
	uint64_t u;
	int i;
	json_t *j;

	switch (f->type) {
	case PF_SKIP:
		return proto_rd_skip(rd, 0);
	case PF_STR:
		if (proto_rd_str(rd, &s) != 0)
			return -1;
		proto_set_ptr(at, s);
		break;
	case PF_BYTES:
		if (proto_rd_next(rd, &v) != 0)
			return -1;
		if (v.kind != PK_STR && v.kind != PK_BIN)
			return proto_rd_expected(rd, "string or binary", &v);
		proto_set_ptr(at, proto_rd_copy(rd, v.s, v.len));
		*(size_t *)((char *)base + f->off2) = v.len;
		break;
	case PF_STRBUF:
		if (proto_rd_want(rd, &v, PK_STR) != 0)
			return -1;
		if (v.len >= f->size) {
			return proto_rd_err(rd, "longer than %zu bytes",
			    f->size - 1);
		}
		if (memchr(v.s, '\0', v.len) != NULL)
			return proto_rd_err(rd, "string contains a NUL byte");
		memcpy(at, v.s, v.len);
		at[v.len] = '\0';
		break;
	case PF_BOOL:
		if (proto_rd_want(rd, &v, PK_BOOL) != 0)
			return -1;
		*(int *)at = v.b;
		break;
	case PF_INT:
		if (proto_rd_uint(rd, &u, INT_MAX) != 0)
			return -1;
		*(int *)at = (int)u;
		break;
	case PF_U32:
		if (proto_rd_uint(rd, &u, UINT32_MAX) != 0)
			return -1;
		*(uint32_t *)at = (uint32_t)u;
		break;
	case PF_U64:
		if (proto_rd_uint(rd, &u, UINT64_MAX) != 0)
			return -1;
		*(uint64_t *)at = u;
		break;
	case PF_I64:
		if (proto_rd_next(rd, &v) != 0)
			return -1;
		if (v.kind == PK_UINT) {
			if (v.u > INT64_MAX) {
				return proto_rd_err(rd, "%ju is out of range",
				    (uintmax_t)v.u);
			}
			v.i = (int64_t)v.u;
		} else if (v.kind != PK_INT)
			return proto_rd_expected(rd, "integer", &v);
		*(int64_t *)at = v.i;
		break;
	case PF_DBL:
		if (proto_rd_next(rd, &v) != 0)
			return -1;
		if (v.kind == PK_UINT)
			v.f = (double)v.u;
		else if (v.kind == PK_INT)
			v.f = (double)v.i;
		else if (v.kind != PK_FLOAT)
			return proto_rd_expected(rd, "number", &v);
		if (!isfinite(v.f))
			return proto_rd_err(rd, "not a finite number");
		*(double *)at = v.f;
		break;
	case PF_ENUM:
		if (proto_rd_want(rd, &v, PK_STR) != 0)
			return -1;
		i = -1;
		if (v.len < sizeof name && memchr(v.s, '\0', v.len) == NULL) {
			memcpy(name, v.s, v.len);
			name[v.len] = '\0';
			i = f->from_name(name);
		}
		if (i < 0) {
			proto_printable(name, sizeof name, v.s, v.len);
			return proto_rd_err(rd, "unknown value '%s'", name);
		}
		memcpy(at, &i, sizeof i);
		break;
	case PF_STRV:
	case PF_MAPV:
		if (proto_rd_array(rd, f, base) != 0)
			return -1;
		break;
	case PF_MAP:
		if (proto_rd_map(rd, f->sub, f->nsub, at) != 0)
			return -1;
		break;
	case PF_JSON:
		if (proto_rd_json(rd, &j) != 0)
			return -1;
		proto_set_ptr(at, j);
		break;
	}
	if (f->has != 0)
		*(unsigned *)((char *)base + f->off2) |= f->has;
	return 0;
}

static const struct proto_field *
proto_field_find(const struct proto_field *tbl, u_int n, const char *key,
    size_t len)
{
	u_int i;

	for (i = 0; i < n; i++) {
		if (tbl[i].len == len && memcmp(tbl[i].name, key, len) == 0)
			return &tbl[i];
	}
	return NULL;
}

/* One map into base by its table: unknown keys skipped, known ones once. */
static int
proto_rd_map(struct proto_rd *rd, const struct proto_field *tbl, u_int ntbl,
    void *base)
{
	struct proto_val v, k;
	const struct proto_field *f;
	uint32_t i, seen = 0, bit;
	u_int j;

	if (proto_rd_want(rd, &v, PK_MAP) != 0)
		return -1;
	for (i = 0; i < v.n; i++) {
		if (proto_rd_next(rd, &k) != 0)
			return -1;
		if (k.kind != PK_STR)
			return proto_rd_err(rd, "map key is not a string");
		proto_rd_push(rd, k.s, k.len);
		if ((f = proto_field_find(tbl, ntbl, k.s, k.len)) == NULL) {
			if (proto_rd_skip(rd, 0) != 0)
				return -1;
		} else {
			bit = 1u << (f - tbl);
			if (seen & bit)
				return proto_rd_err(rd, "given twice");
			seen |= bit;
			if (proto_rd_field(rd, f, base) != 0)
				return -1;
		}
		rd->npath--;
	}
	for (j = 0; j < ntbl; j++) {
		if (tbl[j].required && (seen & (1u << j)) == 0) {
			proto_rd_push(rd, tbl[j].name, tbl[j].len);
			return proto_rd_err(rd, "missing");
		}
	}
	return 0;
}

/*
 * A free-form value: checked by skipping it (depth, counts), then
 * unpacked by msgpack-c, which cannot now allocate more than the bytes
 * allow, and converted.
 */
static int
proto_rd_json(struct proto_rd *rd, json_t **out)
{
	const uint8_t *start = rd->p;
	msgpack_unpacked up;
	msgpack_unpack_return r;
	size_t off = 0;

	if (proto_rd_skip(rd, 0) != 0)
		return -1;
	msgpack_unpacked_init(&up);
	r = msgpack_unpack_next(&up, (const char *)start,
	    (size_t)(rd->p - start), &off);
	*out = NULL;
	if (r == MSGPACK_UNPACK_SUCCESS)
		*out = proto_unpack_json(&up.data, 0);
	msgpack_unpacked_destroy(&up);
	if (*out == NULL) {
		return proto_rd_err(rd,
		    "not a JSON value (ext, float "
		    "infinity, invalid UTF-8 or non-string key)");
	}
	return 0;
}

/* Find "t" wherever it is in the top map, so that the map's table is
 * known before its fields are read. */
static int
proto_rd_type(struct proto_rd *rd, struct proto_msg *msg)
{
	struct proto_val v, k;
	char *s;
	uint32_t i;

	if (proto_rd_next(rd, &v) != 0)
		return -1;
	if (v.kind != PK_MAP) {
		return proto_rd_err(rd, "payload is not a map (got %s)",
		    proto_kind_name(v.kind));
	}
	for (i = 0; i < v.n; i++) {
		if (proto_rd_next(rd, &k) != 0)
			return -1;
		if (k.kind != PK_STR)
			return proto_rd_err(rd, "map key is not a string");
		if (k.len != 1 || k.s[0] != 't') {
			if (proto_rd_skip(rd, 0) != 0)
				return -1;
			continue;
		}
		proto_rd_push(rd, "t", 1);
		if (proto_rd_str(rd, &s) != 0)
			return -1;
		rd->npath--;
		msg->type_name = s;
		msg->type = proto_type_from_name(s);
		return 0;
	}
	proto_rd_push(rd, "t", 1);
	return proto_rd_err(rd, "missing");
}

int
proto_decode(const void *payload, size_t len, struct proto_msg *msg, char *err,
    size_t errlen)
{
	struct proto_rd rd;
	u_int t;

	memset(msg, 0, sizeof *msg);
	memset(&rd, 0, sizeof rd);
	rd.err = err;
	rd.errlen = errlen;
	if (err != NULL && errlen != 0)
		*err = '\0';
	if (len == 0)
		return proto_rd_err(&rd, "empty payload");
	if (len > PROTO_MAX_FRAME) {
		return proto_rd_err(&rd, "payload of %zu bytes is over %u", len,
		    PROTO_MAX_FRAME);
	}

	/* Copies never outgrow the payload; struct arrays mostly fit in
	 * the slack, so most messages are one chunk. */
	if ((msg->zone = msgpack_zone_new(len + len / 4 + 256)) == NULL)
		proto_nomem(len);
	rd.zone = msg->zone;
	rd.p = payload;
	rd.end = rd.p + len;

	if (proto_rd_type(&rd, msg) != 0)
		goto fail;
	switch (msg->type) {
	case PROTO_CHUNK:
		msg->u.chunk.tool_index = -1;
		break;
	case PROTO_RESULT:
	case PROTO_ERROR:
		msg->u.result.cls = LLMGATE_CLASS_MAX; /* absent */
		break;
	case PROTO_REPORT:
		msg->u.report.retry_after_s = -1;
		break;
	default:
		break;
	}

	t = msg->type;
	rd.p = payload;
	if (proto_rd_map(&rd, proto_tables[t].f, proto_tables[t].n, msg) != 0)
		goto fail;
	if (rd.p != rd.end) {
		proto_rd_err(&rd,
		    "trailing garbage: %zu bytes after the "
		    "payload map",
		    (size_t)(rd.end - rd.p));
		goto fail;
	}

	switch (msg->type) {
	case PROTO_RESULT:
		if (msg->u.result.cls == LLMGATE_CLASS_MAX)
			msg->u.result.cls = LLMGATE_OK;
		if (msg->u.result.cls != LLMGATE_OK) {
			proto_rd_push(&rd, "class", 5);
			proto_rd_err(&rd, "must be ok in a result");
			goto fail;
		}
		break;
	case PROTO_ERROR:
		proto_rd_push(&rd, "class", 5);
		if (msg->u.result.cls == LLMGATE_CLASS_MAX) {
			proto_rd_err(&rd, "missing");
			goto fail;
		}
		if (msg->u.result.cls == LLMGATE_OK) {
			proto_rd_err(&rd, "must not be ok in an error");
			goto fail;
		}
		break;
	case PROTO_STATUS:
		msg->has_body = msg->u.status != NULL;
		break;
	case PROTO_METRICS:
		msg->has_body = msg->u.metrics != NULL;
		break;
	default:
		break;
	}
	msg->decoded = rd.bytes;
	return 0;

fail:
	proto_msg_free(msg);
	return -1;
}

void
proto_msg_free(struct proto_msg *msg)
{
	if (msg->type == PROTO_STATUS && msg->u.status != NULL)
		json_decref(msg->u.status);
	if (msg->zone != NULL)
		msgpack_zone_free(msg->zone);
	memset(msg, 0, sizeof *msg);
}

msgpack_zone *
proto_msg_take_zone(struct proto_msg *msg)
{
	msgpack_zone *zone = msg->zone;

	msg->zone = NULL;
	return zone;
}
