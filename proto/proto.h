/*
 * proto.h: llmgate's wire format, shared by llmgated and libllmgate.
 *
 * A frame is a 4-byte big-endian payload length followed by that many bytes
 * of msgpack: one map with "t" (message type) and "id" (request id, 0 for
 * connection-level messages) plus the type's fields. See PROTOCOL.md.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <msgpack.h>

#include "llmgate.h"

/*
 * A call's request as the codec and the daemon see it. Public callers only
 * see it opaque (llmgate.h's setters, client/request.c), so fields can be
 * added without breaking libllmgate's ABI: this layout is not part of it.
 */
struct llmgate_message {
	enum llmgate_role role;
	char *content; /* may be NULL for an assistant turn of tool calls */
	struct llmgate_tool_call *tool_calls;
	size_t ntool_calls;
	char *tool_call_id; /* role tool: the call this answers */
	char *name;         /* role tool: the tool's name */
};

struct llmgate_tool {
	char *name;
	char *description;
	char *parameters; /* JSON Schema text */
};

/* Which optional sampling fields are set. */
#define LLMGATE_HAS_MAX_TOKENS  0x01
#define LLMGATE_HAS_TEMPERATURE 0x02
#define LLMGATE_HAS_TOP_P       0x04
#define LLMGATE_HAS_SEED        0x08

struct llmgate_request {
	char *system;
	struct llmgate_message *messages;
	size_t nmessages;
	struct llmgate_tool *tools;
	size_t ntools;
	char *schema; /* JSON Schema text the reply must satisfy */

	char **targets; /* fallback chain, "provider/model" */
	size_t ntargets;
	char *route; /* a named chain; used when ntargets == 0 */

	unsigned has; /* LLMGATE_HAS_* */
	uint32_t max_tokens;
	double temperature;
	double top_p;
	int64_t seed;
	char **stop;
	size_t nstop;

	uint32_t attempts;   /* per target, the first included; 0: default */
	uint32_t timeout_ms; /* whole call; 0: none */
	enum llmgate_priority priority;
	enum llmgate_on_cut on_cut;
	int stream;

	/* When to move on: class names, and reply conditions. */
	char **fallback_on;
	size_t nfallback_on;
	char **reject;
	size_t nreject;

	enum llmgate_tool_choice tool_choice;
	char *tool_name; /* the one tool the model must call, or NULL */
};

/* An acquire and a report, opaque to callers likewise (request.c). */
struct llmgate_acquire {
	const char *target;
	uint32_t tokens;
	uint32_t timeout_ms;
	enum llmgate_priority priority;
};

struct llmgate_report {
	uint64_t lease;
	uint32_t status;
	double retry_after_s; /* < 0: none */
	uint64_t input_tokens;
	uint64_t output_tokens;
};

#define PROTO_VERSION   1
#define PROTO_HDR_LEN   4
#define PROTO_MAX_FRAME (16u * 1024 * 1024) /* hard cap, both sides */
#define PROTO_MAX_ITEMS 65536               /* array/map entries in one field */
#define PROTO_MAX_DEPTH 32 /* nesting of free-form JSON values */

enum proto_type {
	PROTO_UNKNOWN = 0,
	PROTO_HELLO,
	PROTO_CALL,
	PROTO_CHUNK,
	PROTO_RESULT,
	PROTO_ERROR,
	PROTO_CANCEL,
	PROTO_STATUS,
	PROTO_PING,
	PROTO_PONG,
	PROTO_RELOAD,
	PROTO_METRICS,
	PROTO_ACQUIRE,
	PROTO_LEASE,
	PROTO_REPORT,
	PROTO_OK,
	PROTO_TYPE_MAX
};

const char *proto_type_name(enum proto_type);
enum proto_type proto_type_from_name(const char *);

/* hello both ways: the client's carries name, the daemon's server/max_frame. */
struct proto_hello {
	uint32_t version;
	const char *name;
	const char *server;
	uint32_t max_frame;
};

/*
 * A decoded message. Everything it points to lives in zone; free with
 * proto_msg_free(). A receiver that keeps part of it (the daemon keeps a
 * call's request) takes the zone with proto_msg_take_zone().
 */
struct proto_msg {
	enum proto_type type;
	uint32_t id;
	const char *type_name; /* as received, for PROTO_UNKNOWN */
	msgpack_zone *zone;
	union {
		struct proto_hello hello;
		struct llmgate_request call;
		struct llmgate_chunk chunk;
		struct llmgate_result result; /* PROTO_RESULT and PROTO_ERROR */
		json_t *status;               /* PROTO_STATUS reply; owned */
		const char *metrics;          /* PROTO_METRICS reply */
		struct llmgate_acquire acquire;
		struct llmgate_lease lease;
		struct llmgate_report report;
	} u;
	int has_body; /* status/metrics: a reply (1) or a request (0) */
	int streamed; /* result: its text was the chunks' (not resent) */
	/*
	 * Bytes its decoding took from zone. It may be many times the
	 * payload's (an empty map, one byte, becomes a struct), so a
	 * receiver that keeps the zone accounts this too.
	 */
	size_t decoded;
};

/*
 * Frame boundary: given the bytes buffered so far, returns the payload
 * length of the next complete frame (> 0), 0 when more bytes are needed,
 * or -1 when the header announces a frame over max (or an empty one).
 * *need (if not NULL) is the whole frame's size, header included, once
 * the header is there; the header's size before.
 */
ssize_t proto_frame_len(const void *buf, size_t avail, size_t max,
    size_t *need);

/*
 * Decode one payload (without its header). 0 on success; -1 with a
 * reason in err. A well-formed map with an unknown "t" decodes with type
 * PROTO_UNKNOWN so the receiver can answer it.
 */
int proto_decode(const void *payload, size_t len, struct proto_msg *, char *err,
    size_t errlen);
void proto_msg_free(struct proto_msg *);
msgpack_zone *proto_msg_take_zone(struct proto_msg *);

/*
 * Encoders append one complete frame (header included) to sb. They never
 * fail short of memory; the sender checks sb->size against its limits.
 */
void proto_enc_hello(msgpack_sbuffer *, const struct proto_hello *);
void proto_enc_call(msgpack_sbuffer *, uint32_t id,
    const struct llmgate_request *);
void proto_enc_chunk(msgpack_sbuffer *, uint32_t id,
    const struct llmgate_chunk *);
/* result and error share one shape; r->cls picks the type. */
void proto_enc_result(msgpack_sbuffer *, uint32_t id,
    const struct llmgate_result *);
/* A streamed call's: without text, which the chunks carried, and with
 * streamed: true (the client rebuilds the text from its chunks). */
void proto_enc_streamed_result(msgpack_sbuffer *, uint32_t id,
    const struct llmgate_result *);
/* A bare error with no attempts (protocol-level refusals). */
void proto_enc_error(msgpack_sbuffer *, uint32_t id, enum llmgate_class,
    const char *message);
void proto_enc_simple(msgpack_sbuffer *, enum proto_type, uint32_t id);
void proto_enc_status(msgpack_sbuffer *, uint32_t id, const json_t *);
void proto_enc_metrics(msgpack_sbuffer *, uint32_t id, const char *text);
void proto_enc_acquire(msgpack_sbuffer *, uint32_t id,
    const struct llmgate_acquire *);
void proto_enc_lease(msgpack_sbuffer *, uint32_t id,
    const struct llmgate_lease *);
void proto_enc_report(msgpack_sbuffer *, uint32_t id,
    const struct llmgate_report *);

/*
 * socket.c: the socket path, the same rule for daemon and clients: the
 * explicit path, else $LLMGATE_SOCKET, else configured (the daemon's
 * config `socket`; clients pass NULL), else PROTO_DEFAULT_SOCKET. Into
 * buf; NULL when it does not fit.
 */
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#define PROTO_DEFAULT_SOCKET RUNSTATEDIR "/llmgate/llmgate.sock"
const char *proto_socket_path(const char *explicit_path, const char *configured,
    char *buf, size_t len);

/* Free-form JSON values carried as msgpack (status bodies). */
void proto_pack_json(msgpack_packer *, const json_t *);
json_t *proto_unpack_json(const msgpack_object *, int depth);

/* xmalloc.c: allocation that aborts on failure. */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
int xasprintf(char **, const char *, ...) __attribute__((format(printf, 2, 3)));

#endif
