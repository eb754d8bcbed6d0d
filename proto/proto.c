/*
 * proto.c: the wire codec. A frame is a 4-byte big-endian length and one
 * msgpack map; PROTOCOL.md lists every message and field.
 *
 * Decoding walks the payload bytes directly instead of building a
 * msgpack_object tree first: every count a peer announces is checked
 * against the limits and against the bytes that are left before anything
 * is allocated, each field lands straight in its struct, and one zone holds
 * all of a message's copies. The fields of each message are tables.
 *
 * Encoding packs every map twice over the same function, once counting its
 * keys and once packing them, so that the condition for sending a key is
 * written in one place only.
 */
#include <sys/types.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#ifndef nitems
#define nitems(a) (sizeof (a) / sizeof (a)[0])
#endif

/* What a msgpack header turned out to be. */
enum proto_kind {
	PK_NIL,
	PK_BOOL,
	PK_UINT,	/* any integer >= 0, whatever its encoding */
	PK_INT,		/* any integer < 0 */
	PK_FLOAT,
	PK_STR,
	PK_BIN,
	PK_EXT,
	PK_ARRAY,
	PK_MAP
};

struct proto_val {
	enum proto_kind	 kind;
	int		 b;
	uint64_t	 u;
	int64_t		 i;
	double		 f;
	uint32_t	 n;	/* array or map entries */
	const char	*s;	/* str, bin, ext */
	uint32_t	 len;
};

/* Where the reader is, for error messages: "messages[2].role". */
struct proto_path {
	const char	*key;
	size_t		 keylen;
	long		 idx;	/* array element, or -1 */
};

#define PROTO_PATH_MAX 8

struct proto_rd {
	const uint8_t	*p;
	const uint8_t	*end;
	msgpack_zone	*zone;
	char		*err;
	size_t		 errlen;
	u_int		 npath;
	struct proto_path path[PROTO_PATH_MAX];
};

enum proto_ftype {
	PF_SKIP,	/* "t": read before the map is walked */
	PF_STR,		/* char *: a NUL-free string */
	PF_BYTES,	/* const char * and its size_t length at off2 */
	PF_STRBUF,	/* char[size] */
	PF_BOOL,	/* int */
	PF_INT,		/* int, 0 to INT_MAX */
	PF_U32,
	PF_U64,
	PF_I64,
	PF_DBL,		/* integers accepted too */
	PF_ENUM,	/* an int-sized enum, by name */
	PF_STRV,	/* char ** at off, size_t count at off2 */
	PF_MAPV,	/* array of size-byte structs at off, count at off2 */
	PF_MAP,		/* a nested map decoded into base + off */
	PF_JSON		/* json_t *: any value, converted */
};

struct proto_field {
	const char	*name;
	size_t		 len;
	enum proto_ftype type;
	int		 required;
	size_t		 off;
	size_t		 off2;
	unsigned	 has;	/* bit set in the unsigned at off2 */
	size_t		 size;
	int		(*from_name)(const char *);
	const struct proto_field *sub;
	u_int		 nsub;
};

#define FIELD(n, ty, ...) \
	{ .name = (n), .len = sizeof (n) - 1, .type = (ty), __VA_ARGS__ }
#define SUB(t) .sub = (t), .nsub = nitems(t)
#define MSG(m) offsetof(struct proto_msg, m)
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
	    .size = sizeof (struct llmgate_tool_call),
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
	FIELD("output_tokens", PF_U64, .off = OF(llmgate_result, output_tokens)),
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
	    .size = sizeof (struct llmgate_message),
	    SUB(proto_message_fields)),
	FIELD("tools", PF_MAPV, .off = MSG(u.call.tools),
	    .off2 = MSG(u.call.ntools), .size = sizeof (struct llmgate_tool),
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
	FIELD("seed", PF_I64, .off = MSG(u.call.seed),
	    .off2 = MSG(u.call.has), .has = LLMGATE_HAS_SEED),
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
	FIELD("usage", PF_MAP, .off = MSG(u.result), SUB(proto_usage_fields)),
	FIELD("usage_total", PF_MAP, .off = MSG(u.result),
	    SUB(proto_usage_total_fields)),
	FIELD("tool_calls", PF_MAPV, .off = MSG(u.result.tool_calls),
	    .off2 = MSG(u.result.ntool_calls),
	    .size = sizeof (struct llmgate_tool_call),
	    SUB(proto_tool_call_fields)),
	FIELD("attempts", PF_MAPV, .off = MSG(u.result.attempts),
	    .off2 = MSG(u.result.nattempts),
	    .size = sizeof (struct llmgate_attempt),
	    SUB(proto_attempt_fields)),
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
	    .size = sizeof ((struct llmgate_lease *)NULL)->target),
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
_Static_assert(sizeof (enum llmgate_class) == sizeof (int) &&
    sizeof (enum llmgate_priority) == sizeof (int), "enums are int-sized");

static const struct {
	const struct proto_field	*f;
	u_int				 n;
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

static void __attribute__((noreturn))
proto_nomem(size_t n)
{
	fprintf(stderr, "llmgate: out of memory allocating %zu bytes\n", n);
	abort();
}

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
	size_t		i, n = 0;
	unsigned char	c;

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
	char			 msg[160], path[256], key[64];
	const struct proto_path	*pp;
	size_t			 n = 0;
	u_int			 i;
	va_list			 ap;

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
	void	*p;

	if ((p = msgpack_zone_malloc(rd->zone, size)) == NULL)
		proto_nomem(size);
	return p;
}

/* A NUL-terminated copy of wire bytes in the message's zone. */
static char *
proto_rd_copy(struct proto_rd *rd, const char *s, size_t len)
{
	char	*p;

	if ((p = msgpack_zone_malloc_no_align(rd->zone, len + 1)) == NULL)
		proto_nomem(len + 1);
	if (len != 0)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static uint64_t
proto_be(const uint8_t *p, u_int n)
{
	uint64_t	v = 0;

	while (n-- > 0)
		v = (v << 8) | *p++;
	return v;
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
	uint8_t		b;
	u_int		w;
	uint64_t	x, left;
	uint32_t	f32;
	float		f;

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
		rd->p += w + 1;		/* and the ext type byte */
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
		rd->p++;		/* the ext type byte */
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
	struct proto_val	v;
	uint64_t		i, n;

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
	struct proto_val	v;

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
	struct proto_val	v;

	if (proto_rd_next(rd, &v) != 0)
		return -1;
	if (v.kind != PK_UINT)
		return proto_rd_expected(rd, "unsigned integer", &v);
	if (v.u > max)
		return proto_rd_err(rd, "%ju is out of range", (uintmax_t)v.u);
	*out = v.u;
	return 0;
}

static int	proto_rd_map(struct proto_rd *, const struct proto_field *,
		    u_int, void *);
static int	proto_rd_json(struct proto_rd *, json_t **);

/* An array of strings or of maps, in one zone allocation. */
static int
proto_rd_array(struct proto_rd *rd, const struct proto_field *f, void *base)
{
	struct proto_val	 v;
	char			*items = NULL;
	size_t			 size;
	uint32_t		 i;
	int			 rc;

	if (proto_rd_want(rd, &v, PK_ARRAY) != 0)
		return -1;
	size = f->type == PF_STRV ? sizeof (char *) : f->size;
	if (v.n != 0) {
		items = proto_rd_alloc(rd, v.n * size);
		memset(items, 0, v.n * size);
	}
	for (i = 0; i < v.n; i++) {
		proto_rd_index(rd, i);
		if (f->type == PF_STRV)
			rc = proto_rd_str(rd, (char **)(items + i * size));
		else
			rc = proto_rd_map(rd, f->sub, f->nsub, items + i * size);
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
	struct proto_val	 v;
	char			*at = (char *)base + f->off, *s, name[32];
	uint64_t		 u;
	int			 i;
	json_t			*j;

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
	u_int	i;

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
	struct proto_val		 v, k;
	const struct proto_field	*f;
	uint32_t			 i, seen = 0, bit;
	u_int				 j;

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
	const uint8_t		*start = rd->p;
	msgpack_unpacked	 up;
	msgpack_unpack_return	 r;
	size_t			 off = 0;

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
		return proto_rd_err(rd, "not a JSON value (ext, float "
		    "infinity, invalid UTF-8 or non-string key)");
	}
	return 0;
}

/* Find "t" wherever it is in the top map, so that the map's table is
 * known before its fields are read. */
static int
proto_rd_type(struct proto_rd *rd, struct proto_msg *msg)
{
	struct proto_val	 v, k;
	char			*s;
	uint32_t		 i;

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

ssize_t
proto_frame_len(const void *buf, size_t avail, size_t max, size_t *need)
{
	uint32_t	len;

	if (avail < PROTO_HDR_LEN) {
		if (need != NULL)
			*need = PROTO_HDR_LEN;
		return 0;
	}
	len = (uint32_t)proto_be(buf, PROTO_HDR_LEN);
	if (need != NULL)
		*need = PROTO_HDR_LEN + (size_t)len;
	if (max > PROTO_MAX_FRAME)
		max = PROTO_MAX_FRAME;
	if (len == 0 || len > max)
		return -1;
	if (avail - PROTO_HDR_LEN < len)
		return 0;
	return (ssize_t)len;
}

int
proto_decode(const void *payload, size_t len, struct proto_msg *msg,
    char *err, size_t errlen)
{
	struct proto_rd	 rd;
	u_int		 t;

	memset(msg, 0, sizeof *msg);
	memset(&rd, 0, sizeof rd);
	rd.err = err;
	rd.errlen = errlen;
	if (err != NULL && errlen != 0)
		*err = '\0';
	if (len == 0)
		return proto_rd_err(&rd, "empty payload");
	if (len > PROTO_MAX_FRAME) {
		return proto_rd_err(&rd, "payload of %zu bytes is over %u",
		    len, PROTO_MAX_FRAME);
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
		msg->u.result.cls = LLMGATE_CLASS_MAX;	/* absent */
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
		proto_rd_err(&rd, "trailing garbage: %zu bytes after the "
		    "payload map", (size_t)(rd.end - rd.p));
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
	msgpack_zone	*zone = msg->zone;

	msg->zone = NULL;
	return zone;
}

/*
 * Free-form JSON as msgpack. Integers beyond int64 become reals; strings
 * must be UTF-8 (jansson's rule); map keys must be NUL-free strings.
 */
json_t *
proto_unpack_json(const msgpack_object *o, int depth)
{
	json_t		*j, *v;
	const char	*ks;
	char		 kbuf[128], *key;
	uint32_t	 i, n, klen;
	int		 rc;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);	/* NULL when not finite */
	case MSGPACK_OBJECT_STR:
		/* msgpack-c gives empty strings a NULL pointer. */
		return json_stringn(o->via.str.size == 0 ? "" :
		    o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return json_stringn(o->via.bin.size == 0 ? "" :
		    o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		n = o->via.array.size;
		if (depth < 0 || depth >= PROTO_MAX_DEPTH || n > PROTO_MAX_ITEMS)
			return NULL;
		j = json_array();
		for (i = 0; i < n; i++) {
			v = proto_unpack_json(&o->via.array.ptr[i], depth + 1);
			if (v == NULL || json_array_append_new(j, v) != 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case MSGPACK_OBJECT_MAP:
		n = o->via.map.size;
		if (depth < 0 || depth >= PROTO_MAX_DEPTH || n > PROTO_MAX_ITEMS)
			return NULL;
		j = json_object();
		for (i = 0; i < n; i++) {
			if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
				goto fail;
			ks = o->via.map.ptr[i].key.via.str.ptr;
			klen = o->via.map.ptr[i].key.via.str.size;
			if (klen != 0 && memchr(ks, '\0', klen) != NULL)
				goto fail;
			v = proto_unpack_json(&o->via.map.ptr[i].val,
			    depth + 1);
			if (v == NULL)
				goto fail;
			if (klen < sizeof kbuf) {
				if (klen != 0)
					memcpy(kbuf, ks, klen);
				kbuf[klen] = '\0';
				key = kbuf;
			} else
				key = xstrndup(ks, klen);
			rc = json_object_set_new(j, key, v);
			if (key != kbuf)
				free(key);
			if (rc != 0)
				goto fail;
		}
		return j;
	default:
		return NULL;
	}

fail:
	json_decref(j);
	return NULL;
}

void
proto_pack_json(msgpack_packer *pk, const json_t *j)
{
	const char	*key;
	json_t		*obj, *v;
	size_t		 i, n;

	if (j == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		/* jansson iterates non-const objects only. */
		obj = (json_t *)(uintptr_t)j;
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach(obj, key, v) {
			msgpack_pack_str_with_body(pk, key, strlen(key));
			proto_pack_json(pk, v);
		}
		break;
	case JSON_ARRAY:
		n = json_array_size(j);
		msgpack_pack_array(pk, n);
		for (i = 0; i < n; i++)
			proto_pack_json(pk, json_array_get(j, i));
		break;
	case JSON_STRING:
		msgpack_pack_str_with_body(pk, json_string_value(j),
		    json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		break;
	}
}

/* Encoding. */

struct proto_enc {
	msgpack_packer	*pk;
	int		 counting;
	uint32_t	 n;
};

typedef void proto_enc_fn(struct proto_enc *, const void *);

struct proto_top {
	enum proto_type	 type;
	uint32_t	 id;
	proto_enc_fn	*fn;
	const void	*arg;
};

/* Encoders "never fail short of memory": neither does their buffer. */
static int
proto_sb_write(void *data, const char *buf, size_t len)
{
	msgpack_sbuffer	*sb = data;

	if (msgpack_sbuffer_write(sb, buf, len) != 0)
		proto_nomem(sb->size + len);
	return 0;
}

static void
proto_enc_map(msgpack_packer *pk, proto_enc_fn *fn, const void *arg)
{
	struct proto_enc	e = { .pk = pk, .counting = 1 };

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
	const char	*s;

	if ((s = llmgate_class_name(cls)) == NULL)
		s = llmgate_class_name(LLMGATE_INTERNAL);
	proto_put_str(e, key, s);
}

/* An enum by name; zero, its default, is left out unless keep0. */
static void
proto_put_enum(struct proto_enc *e, const char *key, int v, int keep0,
    const char *(*name)(int))
{
	const char	*s;

	if ((v != 0 || keep0) && (s = name(v)) != NULL && *s != '\0')
		proto_put_str(e, key, s);
}

static void
proto_put_strv(struct proto_enc *e, const char *key, char *const *v,
    size_t n)
{
	size_t	i;

	if (n == 0 || v == NULL || !proto_key(e, key))
		return;
	msgpack_pack_array(e->pk, n);
	for (i = 0; i < n; i++)
		proto_pack_cstr(e->pk, v[i]);
}

static void
proto_put_maps(struct proto_enc *e, const char *key, const void *v,
    size_t n, size_t size, proto_enc_fn *fn)
{
	size_t	i;

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
	const struct proto_top	*top = arg;

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
	struct proto_top	 top = { type, id, fn, arg };
	msgpack_packer		 pk;
	size_t			 start = sb->size, len;
	unsigned char		*p;

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
	const struct proto_hello	*h = arg;

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
	const struct llmgate_tool_call	*tc = arg;

	proto_put_str(e, "id", tc->id);
	proto_put_str(e, "name", tc->name);
	proto_put_str(e, "arguments", tc->arguments);
}

static void
proto_enc_message_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_message	*m = arg;

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
	const struct llmgate_tool	*t = arg;

	proto_put_str(e, "name", t->name);
	proto_put_str(e, "description", t->description);
	proto_put_str(e, "parameters", t->parameters);
}

static void
proto_enc_call_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_request	*r = arg;

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
	const struct llmgate_chunk	*c = arg;

	proto_put_uint(e, "index", (uint64_t)c->tool_index);
	proto_put_str(e, "id", c->tool_id);
	proto_put_str(e, "name", c->tool_name);
	proto_put_str(e, "args", c->tool_args);
}

static void
proto_enc_chunk_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_chunk	*c = arg;

	if (c->text != NULL && c->len != 0 && proto_key(e, "text"))
		msgpack_pack_str_with_body(e->pk, c->text, c->len);
	proto_put_true(e, "reset", c->reset);
	if (c->tool_index >= 0)
		proto_put_map(e, "tool", proto_enc_chunk_tool_fields, c);
}

void
proto_enc_chunk(msgpack_sbuffer *sb, uint32_t id,
    const struct llmgate_chunk *c)
{
	proto_frame(sb, PROTO_CHUNK, id, proto_enc_chunk_fields, c);
}

static void
proto_enc_attempt_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_attempt	*a = arg;

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
	const struct llmgate_result	*r = arg;

	proto_put_uint(e, "input_tokens", r->input_tokens);
	proto_put_uint(e, "output_tokens", r->output_tokens);
}

static void
proto_enc_usage_total_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_result	*r = arg;

	proto_put_uint(e, "input_tokens", r->total_input_tokens);
	proto_put_uint(e, "output_tokens", r->total_output_tokens);
}

static void
proto_enc_result_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_result	*r = arg;

	/* A result's class is implicitly ok; an error's always travels. */
	if (r->cls != LLMGATE_OK)
		proto_put_class(e, "class", r->cls);
	proto_put_str(e, "message", r->message);
	proto_put_true(e, "partial", r->partial);
	proto_put_str(e, "text", r->text);
	proto_put_str(e, "target", r->target);
	proto_put_enum(e, "finish_reason", r->finish, 0, llmgate_finish_name);
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
	struct llmgate_result	r;

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
	const struct llmgate_acquire	*a = arg;

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
	const struct llmgate_lease	*l = arg;
	size_t				 n;

	proto_put_uint(e, "lease", l->id);
	n = strnlen(l->target, sizeof l->target);
	if (n != 0 && proto_key(e, "target"))
		msgpack_pack_str_with_body(e->pk, l->target, n);
	proto_put_nonzero(e, "ttl_ms", l->ttl_ms);
}

void
proto_enc_lease(msgpack_sbuffer *sb, uint32_t id,
    const struct llmgate_lease *l)
{
	proto_frame(sb, PROTO_LEASE, id, proto_enc_lease_fields, l);
}

static void
proto_enc_report_fields(struct proto_enc *e, const void *arg)
{
	const struct llmgate_report	*r = arg;

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
