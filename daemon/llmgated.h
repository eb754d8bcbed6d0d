/*
 * llmgated.h: the daemon's one internal header, a section per .c file.
 */
#ifndef LLMGATED_H
#define LLMGATED_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "proto.h"

struct attempt;
struct target;
struct call;
struct client_class;
struct conn;
struct reply;

/* CLOCK_MONOTONIC in milliseconds: the only clock the daemon reads for policy. */
static inline uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* src copied into dst[cap], cut to fit, as snprintf("%s") would, without
 * its cost (it is on every call's path). */
static inline void
str_fit(char *dst, size_t cap, const char *src)
{
	size_t n;

	for (n = 0; n + 1 < cap && src[n] != '\0'; n++)
		dst[n] = src[n];
	dst[n] = '\0';
}

/* buf.c: a growable byte buffer, always NUL-terminated. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
void buf_add(struct buf *, const void *, size_t);
char *buf_reserve(struct buf *, size_t); /* room for n more bytes */
void buf_addstr(struct buf *, const char *);
void buf_printf(struct buf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *);
void buf_free(struct buf *);
const char *buf_cstr(const struct buf *); /* "" for an empty buffer */

/* log.c */
enum log_level { LOG_LVL_WARN = 0, LOG_LVL_INFO, LOG_LVL_DEBUG };
void log_init(int verbose);
void log_set_level(int);
/* Whether messages of that level are written: to skip preparing them. */
int log_enabled(enum log_level);
/* Client text made safe to print: controls (and non-UTF-8) as \xHH, at
 * most max bytes of it. free() it. */
char *log_quote(const char *, size_t max);
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* config*.c */
enum jitter { JITTER_FULL = 0, JITTER_EQUAL, JITTER_DECORRELATED, JITTER_NONE };

struct model_conf {
	char *name;
	uint32_t rpm, tpm, burst, tpm_burst; /* 0: the provider's value */
};

struct provider_conf {
	char *name;
	const struct provider_type *type;
	char *base_url;
	char *api_key; /* resolved at load; never logged or sent */
	/*
	 * The api_key_env variable that was unset or empty at load: the
	 * provider needs a key and has none, so its attempts fail with
	 * auth before any request (call.c). NULL when a key was found or
	 * no key source is configured (local servers, mock).
	 */
	char *key_env_unset;
	char *api_version; /* azure */
	uint32_t rpm, tpm, burst, tpm_burst;
	uint32_t concurrency; /* 0: unlimited */
	uint32_t timeout_ms;  /* per attempt */
	uint32_t connect_timeout_ms;
	uint32_t first_byte_ms; /* 0: bounded by timeout_ms only */
	uint32_t idle_ms;       /* a stream silent this long is dead */
	struct model_conf *models;
	size_t nmodels;
};

/* What one target of a route changes in the request (LLMGATE_HAS_*). */
#define TARGET_HAS_ATTEMPTS    0x100
#define TARGET_HAS_FALLBACK_ON 0x200
#define TARGET_HAS_REJECT      0x400

/* Reply conditions (fallback.c). */
#define FALLBACK_REJECT_LENGTH         0x01
#define FALLBACK_REJECT_CONTENT_FILTER 0x02
#define FALLBACK_REJECT_REFUSAL        0x04
#define FALLBACK_REJECT_EMPTY          0x08

/* When a call or a route step moves on to the next step. */
struct fallback {
	uint32_t on;     /* bit (1 << class); 0: the default set */
	unsigned reject; /* FALLBACK_REJECT_* */
	void **re;       /* compiled match: patterns (pcre2_code *) */
	char **pat;
	size_t nre;
};
struct target_override {
	unsigned has;
	uint32_t max_tokens;
	double temperature;
	double top_p;
	uint32_t attempts;
	struct fallback fb; /* fallback_on and reject, per has */
};

struct route_conf {
	char *name;
	char **targets;
	struct target_override *over; /* one per target */
	size_t ntargets;
};

/* A deployment pool: one logical model, several targets (pool.c). */
struct pool;
struct pool_conf {
	char *name;        /* no '/': a target name never clashes */
	char **targets;    /* "provider/model", each once */
	uint32_t *weights; /* one per target; strategy weighted */
	size_t ntargets;
	int strategy;       /* enum pool_strategy */
	uint32_t max_moves; /* moves to another member, per call step */
	uint32_t move_on;   /* bit (1 << class): classes that move */
	struct pool *state; /* the choice's own state, per config */
};

struct retry_conf {
	uint32_t attempts; /* per target, first included */
	uint32_t initial_ms;
	uint32_t max_ms;
	double multiplier;
	enum jitter jitter;
	uint32_t on;      /* bit (1 << class) per retried class */
	uint32_t repairs; /* invalid replies fed back, per target */
};

struct breaker_conf {
	uint32_t failures;
	double failure_rate;
	uint32_t min_calls;
	uint32_t window_ms;
	uint32_t open_ms;
	uint32_t half_open_probes;
};

struct retry_budget_conf {
	double ratio;
	double min_per_s;
};

/* The cluster block: several hosts share budgets through Redis. */
struct cluster_conf {
	int enabled; /* the block is there */
	char *redis; /* "unix:PATH" or "host:port" */
	char *user;  /* ACL user; NULL: the default user */
	char *password_file;
	char *password;          /* resolved at load; never logged */
	char *prefix;            /* of every key and channel */
	char *host;              /* this host's name; default the hostname */
	uint32_t slice_ms;       /* a slice lasts about this at our own rate */
	uint32_t timeout_ms;     /* a reply later than this: Redis is down */
	uint32_t expected_hosts; /* hosts assumed, at least, without Redis */
};

/* The HTTP front (front-http*.c). */
struct http_conf {
	char **listen; /* "host:port", "unix:PATH", "unix:" */
	size_t nlisten;
	char *tokens_file;
	int allow_remote; /* non-loopback addresses may be listed */
	char **names;     /* from tokens_file: client name ... */
	char **tokens;    /* ... and its bearer token */
	size_t ntokens;
};

/* A quota domain of the limits block (domain.c, config-domains.c). */
#define DOMAIN_COOLDOWN_TARGET 0 /* a 429 holds the member only */
#define DOMAIN_COOLDOWN_DOMAIN 1 /* ... every member */
struct domain_conf {
	char *name;
	uint32_t rpm, tpm, burst, tpm_burst; /* 0: none */
	char **targets; /* fnmatch(3) patterns over provider/model */
	size_t ntargets;
	int learn;    /* members' rate-limit headers are its own */
	int cooldown; /* DOMAIN_COOLDOWN_* */
};

struct config {
	int refs;     /* config_ref(): calls keep theirs across reloads */
	char *path;   /* NULL: the embedded default */
	char *socket; /* NULL: resolved like the client does */
	mode_t socket_mode;
	char *socket_group;         /* chown the socket to it; NULL: leave it */
	gid_t socket_gid;           /* resolved at load */
	char *admin_group;          /* members may use admin ops; NULL: none */
	gid_t admin_gid;            /* resolved at load */
	uint32_t max_conns_per_uid; /* 0: unlimited */
	int strict_models;          /* only models the config names */
	uint32_t max_calls_per_uid; /* calls and acquires in flight; 0: any */
	uint32_t max_bytes_per_uid; /* request bytes held for one user */
	uint32_t max_memory;        /* bytes held for all clients; 0: any */
	uint32_t frame_timeout_ms;  /* to say hello; to finish a frame */
	int log_level;              /* -1: unset */
	uint32_t max_frame;
	uint32_t max_inflight; /* calls per connection */
	uint32_t max_clients;
	uint32_t
	    max_output; /* bytes queued to one client before it is dropped */
	uint32_t drain_ms;
	uint32_t max_wait_ms;   /* longest wait for budget before a skip */
	uint32_t lease_ttl_ms;  /* an unreported lease is released then */
	char *metrics_listen;   /* "host:port" of GET /metrics; NULL: none */
	char *state_file;       /* NULL: $STATE_DIRECTORY/state.json or none */
	uint32_t state_save_ms; /* between periodic saves */
	struct provider_conf *providers;
	size_t nproviders;
	struct route_conf *routes;
	size_t nroutes;
	struct pool_conf *pools;
	size_t npools;
	struct domain_conf *domains; /* the limits block */
	size_t ndomains;
	struct retry_conf retry;
	struct breaker_conf breaker;
	struct retry_budget_conf retry_budget;
	struct cluster_conf cluster;
	struct http_conf http;
	struct client_class *classes; /* the clients block, in order */
	size_t nclasses;
};

/* config-default.c: what runs without a config file. */
extern const char config_default_text[];

/*
 * Load path (NULL: the embedded default). On failure NULL, and *errors
 * holds every problem, one "FILE:LINE: message" per line (free()).
 */
struct config *config_load(const char *path, char **errors);
void config_free(struct config *);
const struct provider_conf *config_provider(const struct config *,
    const char *name);
const struct route_conf *config_route(const struct config *, const char *);
const struct model_conf *config_model(const struct provider_conf *,
    const char *model);
/* Effective limits of provider/model: the model's, else the provider's;
 * burst and tpm_burst default to one second's worth (name is NULL). */
void config_limits(const struct provider_conf *, const char *model,
    struct model_conf *);
struct config *config_ref(struct config *);
void config_unref(struct config *);

/*
 * Private to config*.c: reading a config (config.c), its blocks
 * (config-keys.c, config-provider.c, config-route.c, config-http.c) and
 * their values (config-value.c) share these.
 * config_setting_t is libconfig's; only those files include libconfig.h.
 */
typedef struct config_setting_t config_setting_t;

/* Most providers, routes, models of a provider, targets of a route. */
#define CONFIG_MAX_ITEMS 1024

#define CONFIG_NITEMS(a) (sizeof(a) / sizeof(a)[0])

/* One problem; kept until all are known, then sorted by file and line. */
struct config_err {
	char *text;
	int rank; /* 0: the main file, 1: included */
	unsigned line;
	size_t seq;
};

struct config_ctx {
	const char *file; /* the path, or "<default>" */
	const char *text; /* the main file's bytes */
	char *dir;        /* api_key_file base; NULL: cwd */
	struct config *conf;
	struct config_err *errs;
	size_t nerrs;
};

enum config_kind {
	CK_U32,    /* integer in [min, max] */
	CK_DOUBLE, /* any number in [min, max] */
	CK_STRING, /* non-empty string, copied */
	CK_BOOL,   /* true or false, into an int */
	CK_MODE,   /* octal string like "0660" */
	CK_LOGLEVEL,
	CK_JITTER,
	CK_GROUP, /* { ... } with its own keys (sub) */
	CK_LIST,  /* ( { ... }, ... ): fn is called for each group */
	CK_FUNC,  /* fn does it all */
};

typedef void config_fn(struct config_ctx *, const config_setting_t *, void *);
typedef int config_check_fn(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

struct config_key {
	const char *name;
	enum config_kind kind;
	size_t off; /* into the object filled */
	double min;
	double max; /* 0: no upper bound */
	const struct config_keys *sub;
	config_fn *fn;
};

struct config_keys {
	const struct config_key *keys;
	size_t nkeys;
	config_check_fn *check; /* last; -1 drops obj */
};

/* config-pools.c: the pools block. */
void config_pool_add(struct config_ctx *, const config_setting_t *, void *);
void config_pool_free(struct pool_conf *);
const struct pool_conf *config_pool(const struct config *, const char *);

/* config.c */
void config_error(struct config_ctx *, const config_setting_t *, const char *,
    ...) __attribute__((format(printf, 3, 4)));
char *config_read_all(struct config_ctx *, const char *);
/* config-keys.c */
extern const struct config_keys config_top_keys;
/* config-provider.c */
void config_provider_add(struct config_ctx *, const config_setting_t *, void *);
void config_provider_free(struct provider_conf *);
/* config-route.c */
void config_route_add(struct config_ctx *, const config_setting_t *, void *);
void config_route_free(struct route_conf *);
/* config-http.c */
extern const struct config_keys config_http_keys;
/* config-domains.c: the limits block */
void config_domain_add(struct config_ctx *, const config_setting_t *, void *);
void config_domain_free(struct domain_conf *);
/* config-value.c */
int config_group(struct config_ctx *, const config_setting_t *,
    const struct config_keys *, void *);
const char *config_suggest(const char *, const char **, size_t);
void config_unknown(struct config_ctx *, const config_setting_t *, const char *,
    const char *, const char **, size_t);
int config_strings(struct config_ctx *, const config_setting_t *, const char *);
#define CONFIG_MAX_KEY_FILE 65536
int config_has_ctl(const char *);
char *config_secret_file(struct config_ctx *, const config_setting_t *,
    const char *who, const char *setting, const char *file);

/* config-clients.c: the clients block. */
void config_clients_add(struct config_ctx *, const config_setting_t *, void *);
void config_clients_free(struct config *);

/* jload.c: json_loadb(buf, len, 0, err), several times faster on the
 * replies and stream events providers send; same tree, same errors. */
json_t *jload(const char *buf, size_t len, json_error_t *err);
/* The fast path alone: NULL where jload() hands the text to jansson. */
json_t *jload_fast(const char *buf, size_t len);
/* jload() with json_loadb()'s JSON_REJECT_DUPLICATES (the only flag). */
json_t *jload_flags(const char *buf, size_t len, size_t flags,
    json_error_t *err);

/* jdump.c: json_dumps(j, flags), the same text, several times faster
 * for JSON_COMPACT; jdump_buf() appends it to a buffer. */
char *jdump(json_t *j, size_t flags);
int jdump_buf(struct buf *, json_t *j, size_t flags);
/*
 * jwrite.c: JSON text written straight into a buffer, without a tree:
 * compact, commas placed by the writer. key is the member's name inside
 * an object, NULL for an array's element or the top value; it is written
 * as it is (a name in the code: printable ASCII, no '"' or '\\'). ascii
 * writes every non-ASCII character as \uXXXX. A string that is not valid
 * UTF-8 gets U+FFFD for each byte that starts no valid sequence.
 */
struct jwrite {
	struct buf *b;
	int ascii;
	int more; /* a value came before: the next needs a comma */
};
void jwrite_init(struct jwrite *, struct buf *, int ascii);
void jwrite_open(struct jwrite *, const char *key, char c); /* '{', '[' */
void jwrite_close(struct jwrite *, char c);                 /* '}', ']' */
void jwrite_str(struct jwrite *, const char *key, const char *s);
void jwrite_strn(struct jwrite *, const char *key, const char *s, size_t);
void jwrite_int(struct jwrite *, const char *key, long long);
void jwrite_bool(struct jwrite *, const char *key, int);
void jwrite_null(struct jwrite *, const char *key);
void jwrite_raw(struct jwrite *, const char *key, const char *json);
void jwrite_json(struct jwrite *, const char *key, json_t *);
/* Back to what was written when w->b->len was len and w->more more. */
void jwrite_undo(struct jwrite *, size_t len, int more);
/* A string value; -1, nothing written, if s is not valid UTF-8. */
int jwrite_utf8str(struct jwrite *, const char *key, const char *s);
int jwrite_utf8strn(struct jwrite *, const char *key, const char *s, size_t);
/* A real as jansson writes it with JSON_REAL_PRECISION(precision) (0:
 * its default); -1, nothing written, for infinity and NaN. */
int jwrite_real(struct jwrite *, const char *key, double, int precision);
/* JSON text as the value jdump_buf(json_loads(text, load_flags),
 * dump_flags) writes, without a tree when the text allows; -1 not JSON
 * (*err), -2 not an object (when object is set), nothing written. */
int jwrite_loads(struct jwrite *, const char *key, const char *text,
    size_t load_flags, size_t dump_flags, int object, json_error_t *err);
/* The same, adding the string member mkey: mval at the object's end where
 * it has no mkey, as json_object_set() would. */
int jwrite_loads_member(struct jwrite *, const char *key, const char *text,
    size_t load_flags, size_t dump_flags, int object, const char *mkey,
    const char *mval, json_error_t *err);
/* The string's JSON text appended to b; strict: -1 for invalid UTF-8. */
int jwrite_string(struct buf *b, const char *, size_t, int ascii, int strict);
void jwrite_digits(struct buf *b, long long);
/*
 * A document read in place, without a tree: for the few events read
 * often enough that building one costs more than the rest of their work,
 * and for the HTTP front's requests. jdoc_parse() takes exactly what
 * jload_fast() takes (valid JSON, its strings valid UTF-8 without \u
 * escapes, its numbers small integers), up to JDOC_TOKENS tokens; -1
 * otherwise. jdoc_load() with JDOC_FULL takes exactly what json_loadb()
 * takes (an object or array root), of any size (then jdoc_free() it),
 * short of jansson's depth: no value deeper than JDOC_DEPTH (jsmn's
 * tokens of a deep text cost the depth times its size); JDOC_NODUP
 * refuses a key twice in an object, as JSON_REJECT_DUPLICATES.
 * Tokens are indexed from 0, the root; an object's keys and values
 * alternate after it. Readers take -1 (no value) as jansson takes NULL.
 */
#define JDOC_TOKENS 128
#define JDOC_DEPTH  128 /* the root 1 */
#define JDOC_FULL   1
#define JDOC_NODUP  2
enum jdoc_type { JDOC_OBJECT = 1, JDOC_ARRAY, JDOC_STRING, JDOC_PRIMITIVE };
struct jdoc_tok {
	enum jdoc_type type;
	int start; /* byte offsets; a string's exclude its quotes */
	int end;
	int size; /* members of an object or array */
	int next; /* the token after this one and all it holds */
};
struct jdoc {
	const char *buf;
	int n;
	struct jdoc_tok *tok; /* small, or allocated */
	char *own;            /* buf, when it is jansson's text of it */
	struct jdoc_tok small[JDOC_TOKENS];
};
int jdoc_parse(struct jdoc *, const char *buf, size_t len);
int jdoc_load(struct jdoc *, const char *buf, size_t len, int flags);
void jdoc_free(struct jdoc *);
/* Some object of the document has a key twice (compared unescaped). */
int jdoc_dups(const struct jdoc *);
/* Object obj's value for key (the last one, as in jansson), or -1; keys
 * are under 128 bytes, without a backslash. */
int jdoc_get(const struct jdoc *, int obj, const char *key);
/* Object obj's members by name (none empty): vals[k] the value of
 * names[k], -1 when absent; 0, or the key token of the first member
 * named otherwise (the known ones are all taken even so). One pass, for
 * objects read whole. */
int jdoc_members(const struct jdoc *, int obj, const char *const *names,
    size_t n, int *vals);
/* Token i's enum jdoc_type; 0 for -1. */
int jdoc_type(const struct jdoc *, int i);
/* Members of object or array i (0 for others); the first is i + 1, an
 * object's value is its key + 1, jdoc_next() skips one with all it holds
 * (an object's member: jdoc_next(d, key + 1)). */
int jdoc_size(const struct jdoc *, int i);
int jdoc_next(const struct jdoc *, int i);
/* Token i is the literal null, true or false given. */
int jdoc_is(const struct jdoc *, int i, const char *literal);
/* Value i is there and not null (a member given as null is not given). */
int jdoc_given(const struct jdoc *, int i);
/* Token i is a string equal to s (under 128 bytes, no backslash). */
int jdoc_streq(const struct jdoc *, int i, const char *s);
/* String i's value (not NUL-terminated): in place, or unescaped into
 * scratch; NULL if i is no string or scratch is too small (its text's
 * length is always enough). */
const char *jdoc_str(const struct jdoc *, int i, size_t *len, char *scratch,
    size_t cap);
/* Integer i's value: 0, or -1 if i is no integer. */
int jdoc_int(const struct jdoc *, int i, int64_t *);
/* Number i's value (an integer's too, as json_number_value()): 0 or -1. */
int jdoc_num(const struct jdoc *, int i, double *);
/* Value i's text as json_dumps(flags | JSON_ENCODE_ANY) writes it
 * (malloc'd; NULL on failure). */
char *jdoc_dump(const struct jdoc *, int i, size_t flags);

/* sse.c: incremental WHATWG event-stream parser, any split of the bytes. */
struct sse_event {
	const char *event; /* NULL when no event: field was given */
	const char *data;  /* data lines joined with '\n', NUL-terminated */
	size_t len;
	int error_field; /* llama.cpp's non-standard "error: {json}" line */
};
/* Return non-zero to stop parsing; sse_feed then returns that value. */
typedef int sse_cb(const struct sse_event *, void *arg);
#define SSE_MAX_EVENT (8 * 1024 * 1024) /* bytes in one line or event */
#define SSE_TOO_LONG  (-2)              /* over SSE_MAX_EVENT: a parse error */
struct sse {
	sse_cb *cb;
	void *arg;
	struct buf line;
	struct buf data;
	struct buf event;
	int has_data;
	int last_cr;       /* previous chunk ended on '\r' */
	uint64_t events;   /* dispatched */
	uint64_t activity; /* lines seen, comments included */
};
void sse_init(struct sse *, sse_cb *, void *);
/* 0, the callback's non-zero value, or SSE_TOO_LONG. Stop feeding after
 * a non-zero return. At EOF a half-built event is dropped. */
int sse_feed(struct sse *, const char *, size_t);
void sse_free(struct sse *);

/* header.c: rate-limit and retry hints from response headers, all providers. */
struct header_rl {
	int64_t retry_after_ms; /* -1 when none */
	int64_t limit_requests; /* -1 when unknown, for all below */
	int64_t remaining_requests;
	int64_t reset_requests_ms; /* from now */
	int64_t limit_tokens;
	int64_t remaining_tokens;
	int64_t reset_tokens_ms;
	int should_retry; /* x-should-retry: -1 unset, 0, 1 */
	char request_id[96];
	/* header.c's own: retry-after-ms was seen and beats retry-after;
	 * Anthropic's tokens, input-tokens and output-tokens families
	 * (limit, remaining, reset_ms), the tightest copied to *_tokens. */
	int retry_after_exact;
	int64_t anthropic_tokens[3][3];
};
void header_rl_init(struct header_rl *);
/* Feed one header; now is the wall clock (seconds) for dates. */
void header_rl_add(struct header_rl *, const char *name, const char *value,
    time_t now);
/* "6m0s", "20ms", "1.5s", "2h" -> ms; -1 when unparsable. */
int64_t header_duration_ms(const char *);
/* Retry-After: delta seconds (may be fractional) or HTTP date -> ms. */
int64_t header_retry_after_ms(const char *, time_t now);
/* RFC 3339 timestamp -> epoch seconds (fractions dropped); -1 on error. */
int64_t header_rfc3339(const char *);

/* buf-backed reply: what one attempt produced, filled by adapters. */
struct reply_tool {
	char *id;
	char *name;
	struct buf args;
	int64_t key; /* the upstream number of this call */
};

typedef void reply_emit_cb(void *arg, const struct llmgate_chunk *);

struct reply {
	reply_emit_cb *emit; /* streamed deltas go here; may be NULL */
	void *emit_arg;
	struct buf text;
	struct reply_tool *tools;
	size_t ntools;
	size_t args_len; /* the tool calls' arguments, all together */
	enum llmgate_finish finish;
	char *stop_sequence; /* which one ended it, if the upstream said */
	uint64_t input_tokens;
	uint64_t output_tokens;
	int done;    /* terminal event seen, or full body parsed */
	int refused; /* a content_filter answer is the model's refusal */
	enum llmgate_class cls; /* LLMGATE_OK unless an error was found */
	uint32_t status;        /* HTTP status */
	char *message;
	struct header_rl rl;
	void *pstate; /* adapter's stream state, freed with free() */
	int too_long; /* text and arguments passed REPLY_MAX_TEXT: stop */
};
/*
 * The most text and tool-call arguments one reply (streamed or not) may
 * carry together: a full body's.
 */
#define REPLY_MAX_TEXT (8u * 1024 * 1024)

/* reply.c */
void reply_init(struct reply *, reply_emit_cb *, void *);
void reply_free(struct reply *);
/* Append text; relays it as a chunk. */
void reply_text(struct reply *, const char *, size_t);
/*
 * The tool call a provider numbers key, created on first use: calls are
 * numbered in the order their keys first appear, whatever the keys are.
 * NULL (after a parse error) past REPLY_MAX_TOOLS calls.
 */
struct reply_tool *reply_tool(struct reply *, int64_t key);
/* Set id/name (if not NULL) and append an arguments fragment; relays it
 * under the call's number. -1 (a parse error) past REPLY_MAX_TOOLS. */
int reply_tool_delta(struct reply *, int64_t key, const char *id,
    const char *name, const char *args, size_t len);
/* Record the attempt's error class (first one wins). */
void reply_error(struct reply *, enum llmgate_class, uint32_t status,
    const char *, ...) __attribute__((format(printf, 4, 5)));
/* Generic HTTP-status mapping, for adapters to fall back on. */
enum llmgate_class reply_class_for_status(uint32_t status);

/* scrub.c: upstream text without the configured API keys or anything
 * shaped like a key (Bearer, api-key values, sk-..., masked keys). */
char *scrub(const char *); /* free(); NULL for NULL */
void scrub_free(void);

/* provider.c: provider types and the HTTP request they build. */
struct http_req {
	char *url;
	struct curl_slist *headers;
	char *body;
	size_t body_len;
};
void http_req_free(struct http_req *);

struct provider_type {
	const char *name;
	/* Start/stop an attempt's transport: http_start/http_stop or own. */
	void (*start)(struct attempt *);
	void (*stop)(struct attempt *);
	/* HTTP adapters. build: -1 with *cause (class invalid_request). */
	int (*build)(struct http_req *, const struct provider_conf *,
	    const char *model, const struct llmgate_request *, char **cause);
	/* A complete 2xx body. -1 on a body that is not what the format says
	 * (after reply_error(PARSE_ERROR)). */
	int (*parse)(struct reply *, const char *body, size_t len);
	/* One SSE event of a 2xx stream; sets reply->done on the terminal
	 * event, reply_error() for error events. -1 stops the stream. */
	int (*event)(struct reply *, const struct sse_event *);
	/* A non-2xx response: set the class from status and error body. */
	void (*classify)(struct reply *, uint32_t status, const char *body,
	    size_t len);
};

const struct provider_type *provider_type_find(const char *name);

/* An upstream error body's fields, whichever provider's shape it has. */
struct provider_err {
	const char *message; /* message, detail or a bare error string */
	const char *type;    /* error.type */
	const char *code;    /* error.code; an integer one printed */
	const char *status;  /* error.status: Gemini's status name */
	long http;           /* an integer code that is an HTTP status */
	json_t *obj;         /* the error object; NULL for a bare string */
	char codebuf[24];
};
void provider_err_fields(json_t *root, struct provider_err *);
/* 1 if the error says the prompt exceeds the context window. */
int provider_err_context(const struct provider_err *);

/* provider-openai.c: Chat Completions, shared with provider-azure.c. */
/* Body plus Content-Type/Accept headers; model NULL leaves it out. */
int openai_build_body(struct http_req *, const char *model,
    const struct llmgate_request *, char **cause);
int openai_parse(struct reply *, const char *, size_t);
int openai_event(struct reply *, const struct sse_event *);
/* The general way, without openai_parse()'s and openai_event()'s fast
 * path: a reply's or an event's JSON (no leading whitespace). */
int openai_parse_tree(struct reply *, const char *json, size_t len);
int openai_event_tree(struct reply *, const char *json, size_t len);
void openai_classify(struct reply *, uint32_t status, const char *, size_t);

/* provider-anthropic.c */
/* (owned by the anthropic adapter; prototypes go here if any) */

/* provider-gemini.c */
/* (owned by the gemini adapter; prototypes go here if any) */

extern const struct provider_type provider_mock;
extern const struct provider_type provider_openai;
extern const struct provider_type provider_azure;
extern const struct provider_type provider_anthropic;
extern const struct provider_type provider_gemini;

/*
 * One upstream attempt: what an engine (call.c) hands to a transport. The
 * transport knows nothing of who asked: it fills reply and reports once,
 * through attempt_done(), to the engine's done callback.
 */
struct attempt {
	void (*done)(struct attempt *); /* the engine's; exactly once */
	void *arg;                      /* the engine's */
	const struct provider_conf *prov;
	const char *model;
	const struct llmgate_request *req; /* effective request */
	char *target;                      /* "provider/model" */
	unsigned index; /* attempt number at this target, from 0 */
	uint64_t start_ms;
	struct reply reply;
	void *priv; /* the transport's state */
	/* Backpressure: while held, a transport that can stops reading the
	 * upstream; resume (set by the transport, may be NULL) restarts it. */
	int held;
	void (*resume)(struct attempt *);
};
/* The transport is done with the attempt (reply filled). */
static inline void
attempt_done(struct attempt *att)
{
	att->done(att);
}

/* repair.c: checks a reply must pass, and turns fed back to the model. */
struct turns {
	struct llmgate_message *m;
	size_t n;
	char **owned; /* strings the turns point to */
	size_t nowned;
};
struct repair {
	struct schema *schema; /* the caller's, or NULL */
	struct schema **tools; /* per request tool; NULL: no parameters */
	size_t ntools;
};
int repair_init(struct repair *, const struct llmgate_request *, char **cause);
void repair_free(struct repair *);
int repair_check(const struct repair *, const struct llmgate_request *,
    const struct reply *, struct turns *, char **summary);
struct llmgate_message *repair_turn_add(struct turns *, enum llmgate_role,
    const char *content);
void repair_turns_reset(struct turns *);

/* call.c: the call engine, independent of any front. */
#define CALL_MAX_ATTEMPTS 100 /* per target: config, route or call */
#define CALL_MAX_TARGETS  32  /* a client's own fallback chain */
struct call_sink {
	void (*chunk)(void *arg, const struct llmgate_chunk *);
	/* Exactly once per call, unless the front detached. */
	void (*done)(void *arg, const struct llmgate_result *);
};

/* The user turn that asks a model to continue a cut reply. */
extern const char call_continue_prompt[];

struct call_stats {
	uint64_t calls;
	uint64_t attempts;
	uint64_t retries;
	uint64_t fallbacks;
	uint64_t failed;
	uint64_t repairs;
	uint64_t moves; /* within pools, after a rate limit */
	uint64_t inflight;
};
extern struct call_stats call_stats;

/*
 * Start a call. The call copies *req; everything req points to must live
 * in zone, which the call takes. May answer (sink->done) before it returns, for a request
 * that fails validation.
 */
/* Who asked: fair shares go by id; the name is for logs. */
struct call_client {
	uint64_t id;
	const char *name;
	uid_t uid; /* whose targets it makes (target.c) */
	const struct client_ident *ident; /* its class; NULL: default */
};
struct call *call_start(const struct llmgate_request *req, msgpack_zone *zone,
    const struct call_sink *, void *arg, const struct call_client *);
/* Cancel: the front still gets done() with class cancelled and why. */
void call_cancel(struct call *, const char *why);
/* The front went away: no more callbacks; the call is freed. */
void call_detach(struct call *);
/* The front's client is not reading (1) or is again (0): a streamed
 * call's upstream transfer pauses meanwhile instead of piling up. */
void call_hold(struct call *, int);
/* In done(): the result's text is exactly what the chunks carried, so a
 * front need not send it again. */
int call_text_streamed(const struct call *);
/* In chunk(): the input tokens the relaying reply's upstream has reported
 * so far (Anthropic's message_start, a Gemini chunk's usage), else 0. */
uint64_t call_input_tokens(const struct call *);

/* retry.c: backoff, pure. rnd is a uniform draw in [0, 1). */
uint64_t retry_backoff_ms(const struct retry_conf *, unsigned retry,
    uint64_t prev_ms, double rnd);
int retry_class_retries(const struct retry_conf *, enum llmgate_class);
int retry_class_falls_back(enum llmgate_class);

/*
 * fallback.c: when a call moves on to the next step, pure. Parsers return
 * -1 with *cause (free()); fallback_rejects() 1 with *why when reply r
 * meets one of the conditions.
 */
int fallback_parse_on(uint32_t *on, char *const *names, size_t n,
    const char *what, char **cause);
int fallback_parse_reject(struct fallback *, char *const *conds, size_t n,
    const char *what, char **cause);
void fallback_free(struct fallback *);
int fallback_class(uint32_t on, enum llmgate_class);
int fallback_rejects(const struct fallback *, const struct reply *, char **why);

/*
 * ratelimit.c: a target's rate budget, pure (now: CLOCK_MONOTONIC ms).
 * Token buckets with continuous refill; levels in 1/RL_SCALE of a unit, so
 * a per-minute limit refills by exactly `limit` per ms. A zeroed struct
 * bucket or struct ratelimit is unlimited and valid before any setup.
 */
#define RL_SCALE            60000
#define RL_DEFAULT_TOKENS   1024    /* output estimate without max_tokens */
#define RL_COOLDOWN_MS      1000    /* a 429 without Retry-After ... */
#define RL_COOLDOWN_MAX_MS  30000   /* ... doubling up to this */
#define RL_QUOTA_MS         600000  /* quota_exhausted, at least */
#define RL_RESET_DEFAULT_MS 1000    /* remaining 0, no reset, no limit */
#define RL_HOLD_MAX_MS      3600000 /* no hint holds a target longer */
struct bucket {
	uint64_t limit;    /* units per minute; 0: unlimited */
	uint64_t capacity; /* whole units that may go at once */
	int64_t level;     /* 1/RL_SCALE units; below 0: debt */
	uint64_t last;     /* ms of the last refill */
	int fed;           /* refilled by cluster slices, not the clock */
};
/* A fed bucket short of units: when to look again (a slice is coming). */
#define BUCKET_FED_WAIT_MS 20
/* capacity 0: one second's worth. Keeps the level (clamped); a bucket
 * that was unlimited starts full. */
void bucket_setup(struct bucket *, uint64_t limit, uint64_t capacity,
    uint64_t now);
/* ms until n units are there; n over the capacity waits for a full bucket
 * and then goes into debt. 0 when unlimited. Always finite. */
uint64_t bucket_wait_ms(const struct bucket *, uint64_t n, uint64_t now);
void bucket_take(struct bucket *, uint64_t n, uint64_t now);
/* Whole units there at now, rounded down; negative in debt; 0 unlimited. */
int64_t bucket_available(const struct bucket *, uint64_t now);
/* A fed bucket: n units granted (negative: given back). */
void bucket_feed(struct bucket *, int64_t n, uint64_t now);

struct ratelimit {
	struct bucket req;                   /* requests per minute */
	struct bucket tok;                   /* tokens per minute */
	uint32_t rpm, tpm, burst, tpm_burst; /* configured; 0: none */
	uint32_t learned_rpm, learned_tpm;   /* from headers; 0: none */
	uint64_t cooldown_until;             /* ms; nothing goes before */
	const char *cooldown_reason;         /* static string */
	uint32_t backoff_ms; /* last default 429 cooldown; 0 after ok */
	int fed;             /* the cluster's slices feed the buckets */
	uint32_t share;      /* > 1: limits divided (cluster down) */
};
struct rl_status {
	int64_t rpm_limit;     /* -1: no limit (null) */
	int64_t rpm_available; /* when rpm_limit >= 0; < 0: debt */
	int64_t tpm_limit;
	int64_t tpm_available;
	uint64_t cooldown_ms;        /* 0: none */
	const char *cooldown_reason; /* NULL when cooldown_ms is 0 */
};
/* From config_limits(); also on reload: levels, learned limits and
 * cooldowns carry over, levels clamped to the new capacities. */
void rl_setup(struct ratelimit *, uint32_t rpm, uint32_t tpm, uint32_t burst,
    uint32_t tpm_burst, uint64_t now);
/* 0: a call estimated at tokens may go now (then rl_take()); else the ms
 * to wait. Always finite: a call over tpm_burst goes when the token
 * bucket is full, into debt. */
uint64_t rl_wait_ms(const struct ratelimit *, uint32_t tokens, uint64_t now);
void rl_take(struct ratelimit *, uint32_t tokens, uint64_t now);
/* Usage reported (input + output): refund or charge the difference. */
void rl_reconcile(struct ratelimit *, uint32_t estimated, uint64_t actual,
    uint64_t now);
/* input + output tokens of a report, saturating: an absurd report must
 * not wrap around into a refund. */
uint64_t rl_tokens_sum(uint64_t input, uint64_t output);
/* Any response's rate-limit headers: adopt limits when none is
 * configured, clamp to remaining, hold the target on remaining 0. */
void rl_learn(struct ratelimit *, const struct header_rl *, uint64_t now);
/* Cooldowns: rate_limited (Retry-After, else 1 s doubling to 30 s, reset
 * by ok), quota_exhausted (10 min at least). retry_after_ms: -1 none. */
void rl_on_result(struct ratelimit *, enum llmgate_class,
    int64_t retry_after_ms, uint64_t now);
void rl_status(const struct ratelimit *, uint64_t now, struct rl_status *);
/* The cluster: fed buckets, or limits / share (see cluster.c). */
void rl_cluster(struct ratelimit *, int fed, uint32_t share, uint64_t now);
uint64_t rl_cluster_limit(const struct ratelimit *, int tokens);
uint64_t rl_cluster_capacity(const struct ratelimit *, int tokens);
/* Hold for ms (another host's 429); never shortens a longer hold. */
void rl_cooldown(struct ratelimit *, uint64_t ms, const char *reason,
    uint64_t now);
/* The reason string of index i, or NULL; and the index of one (-1). */
const char *rl_reason(int i);
int rl_reason_index(const char *);
/* ceil(prompt_bytes / 4) + (max_tokens, or RL_DEFAULT_TOKENS when 0). */
uint32_t rl_estimate_tokens(size_t prompt_bytes, uint32_t max_tokens);
/* What outlives a restart (state.c); levels only of limited buckets. */
struct rl_saved {
	uint32_t learned_rpm, learned_tpm; /* 0: none */
	uint64_t cooldown_ms;              /* left; 0: none */
	const char *cooldown_reason;       /* NULL when cooldown_ms is 0 */
	int has_req, has_tok;              /* the bucket has a limit */
	int64_t req_level, tok_level;      /* whole units; < 0: debt */
};
/* Non-zero when anything differs from a fresh target's. */
int rl_save(const struct ratelimit *, uint64_t now, struct rl_saved *);
/* Saved elapsed ms ago: learned limits, what is left of the hold, levels
 * refilled since and never above what the config allows now. */
void rl_restore(struct ratelimit *, const struct rl_saved *, uint64_t elapsed,
    uint64_t now);

/* breaker.c: a target's circuit breaker, pure. */
enum breaker_state {
	BREAKER_CLOSED = 0,
	BREAKER_OPEN,
	BREAKER_HALF_OPEN,
	BREAKER_STATE_MAX
};
#define BREAKER_SLOTS    10 /* the failure-rate window, in tenths */
#define BREAKER_MAX_MULT 8  /* reopening waits at most 8 x open_ms */
struct breaker_slot {
	uint64_t start; /* ms */
	uint32_t calls; /* counted: successes and failures */
	uint32_t failures;
};
struct breaker {
	enum breaker_state state;
	uint32_t epoch;       /* changes on every transition */
	uint32_t consecutive; /* failures in a row, closed */
	uint32_t probes;      /* half-open probes out, undecided */
	uint32_t mult;        /* open for open_ms x mult */
	uint32_t slot_ms;     /* width the slots were kept in */
	uint64_t open_until;  /* ms */
	struct breaker_slot slot[BREAKER_SLOTS];
};
const char *breaker_state_name(enum breaker_state); /* NULL: out of range */
/* 1 an upstream failure, 0 a success, -1 not counted (rate_limited,
 * caller errors, cancelled, deadline, ...). */
int breaker_class(enum llmgate_class);
void breaker_init(struct breaker *);
/* 0: skip the target (circuit_open). Else a ticket, for breaker_record()
 * when the call ends; odd (BREAKER_IS_PROBE) when it is a half-open probe.
 * A ticket from before a transition is stale and ignored. */
int breaker_allow(struct breaker *, const struct breaker_conf *, uint64_t now);
#define BREAKER_IS_PROBE(ticket) (((ticket)&1) != 0)
/* A probe ending not counted frees its slot; ticket 0 is ignored. */
void breaker_record(struct breaker *, const struct breaker_conf *, int ticket,
    enum llmgate_class, uint64_t now);
enum breaker_state breaker_state(const struct breaker *, uint64_t now);
uint64_t breaker_open_remaining(const struct breaker *, uint64_t now);
/* After a restart: open or half-open comes back open until open_until
 * (half-open on next use once passed); closed keeps consecutive. */
void breaker_restore(struct breaker *, enum breaker_state, uint64_t open_until,
    uint32_t mult, uint32_t consecutive);

/*
 * pool.c: which member of a deployment pool takes the next attempt,
 * pure (now passed in): headroom (most budget left, then fewest in
 * flight), least-inflight, or weighted (smooth weighted round robin).
 * Members are numbered as the pool's targets; masks have bit POOL_BIT(i).
 */
enum pool_strategy {
	POOL_HEADROOM = 0,
	POOL_LEAST_INFLIGHT,
	POOL_WEIGHTED,
	POOL_STRATEGY_MAX
};
#define POOL_MAX_MEMBERS 32
#define POOL_BIT(i)      ((uint64_t)1 << (i))
#define POOL_WEIGHT_MAX  1000
/* What the chooser sees of one member now. */
struct pool_member {
	int usable;       /* 0: never (e.g. its provider has no key) */
	int ready;        /* may take an attempt now, without waiting */
	uint64_t wait_ms; /* not ready: about when it could */
	double headroom;  /* fill of its fuller-spent bucket; 1: none */
	uint32_t inflight;
	uint32_t queued;
};
struct pool {
	enum pool_strategy strategy;
	size_t n;
	uint32_t weight[POOL_MAX_MEMBERS];
	int64_t current[POOL_MAX_MEMBERS]; /* weighted turns */
	uint64_t last[POOL_MAX_MEMBERS];   /* seq of its last turn; 0 */
	uint64_t seq;
	uint64_t picks[POOL_MAX_MEMBERS]; /* turns taken */
	uint64_t moves[POOL_MAX_MEMBERS]; /* moves away from it */
};
const char *pool_strategy_name(enum pool_strategy); /* NULL: none */
int pool_strategy_index(const char *);              /* -1: none */
/* n members (at most POOL_MAX_MEMBERS); weights NULL: all 1. */
void pool_init(struct pool *, enum pool_strategy, const uint32_t *weights,
    size_t n);
/* Target t as a member, for an attempt estimated at tokens; concurrency
 * is its provider's cap (0: none). Sets usable. */
void pool_member_view(struct pool_member *, const struct target *,
    uint32_t concurrency, uint32_t tokens, uint64_t now);
size_t pool_ready(const struct pool *, const struct pool_member *,
    uint64_t avoid);
/* The member for the next attempt among the ready ones not in avoid,
 * counted as its turn; -1 when none is ready. */
int pool_choose(struct pool *, const struct pool_member *, uint64_t avoid);
/* No member ready: the usable one not in exclude that frees first; -1. */
int pool_soonest(const struct pool *, const struct pool_member *,
    uint64_t exclude);
/* pool_choose() without avoid and refused, else pool_soonest() without
 * refused: the member a call's attempt or a lease goes to; -1: none. */
int pool_pick(struct pool *, const struct pool_member *, uint64_t avoid,
    uint64_t refused);

/* rbudget.c: the machine-wide retry budget, pure. Zeroed: empty. */
#define RBUDGET_SLOTS   10   /* the window: 10 s ... */
#define RBUDGET_SLOT_MS 1000 /* ... in 1 s slots */
struct rbudget_slot {
	uint64_t sec; /* now / RBUDGET_SLOT_MS */
	uint32_t first;
	uint32_t retries;
};
struct rbudget {
	struct rbudget_slot slot[RBUDGET_SLOTS];
};
/* Count a first attempt; never refused. */
void rbudget_first(struct rbudget *, uint64_t now);
/* 1: allowed and counted, while retries + 1 <= ratio x first attempts +
 * min_per_s x 10 over the window; 0: budget_exhausted. */
int rbudget_try_retry(struct rbudget *, const struct retry_budget_conf *,
    uint64_t now);
double rbudget_available(const struct rbudget *,
    const struct retry_budget_conf *, uint64_t now);

/*
 * waitq.c: a target's admission wait queue: priority (high, normal, low),
 * then weighted fair shares between client classes, then round-robin
 * between clients, then arrival. Intrusive: embed a zeroed struct
 * waitq_node; push allocates only for a class new at the target.
 */
#define WAITQ_LEVELS      3
#define WAITQ_VSCALE      (1u << 20) /* a weight-1 class's tag per serve */
#define WAITQ_MAX_CLASSES 128        /* slots kept before idle ones go */
struct waitq_node {
	uint64_t client;
	uint64_t ckey;                    /* its class (set before push); 0 */
	uint32_t weight;                  /* its class's weight; 0: 1 */
	unsigned ci;                      /* the class's slot */
	unsigned level;                   /* 0 high, 1 normal, 2 low */
	int state;                        /* 0: not queued */
	unsigned count;                   /* heads: the client's entries here */
	struct waitq_node *cnext, *cprev; /* the client's, circular */
	struct waitq_node *rnext, *rprev; /* heads: turn order */
	struct waitq_node *hnext, **hprevp; /* heads: hash chain */
};
struct waitq_class {
	uint64_t key;
	uint32_t weight;
	unsigned len[WAITQ_LEVELS];   /* its entries at each level */
	uint64_t start[WAITQ_LEVELS]; /* tags, while queued */
	uint64_t finish[WAITQ_LEVELS];
	struct waitq_node *first[WAITQ_LEVELS]; /* its heads' turn order */
	struct waitq_node *last[WAITQ_LEVELS];
};
struct waitq {
	struct waitq_class *cls;
	unsigned ncls;
	uint64_t vtime[WAITQ_LEVELS]; /* the start tag last served */
	struct waitq_node **hash;     /* heads by (client, class, level) */
	unsigned hmask;
	unsigned llen[WAITQ_LEVELS];  /* entries at each level */
	unsigned heads[WAITQ_LEVELS]; /* clients at each level */
	unsigned capacity;            /* 0: unbounded */
};
void waitq_init(struct waitq *, unsigned capacity);
void waitq_free(struct waitq *);
/* 0, or -1 when full or n is queued already. */
int waitq_push(struct waitq *, struct waitq_node *, uint64_t client,
    enum llmgate_priority);
struct waitq_node *waitq_peek(struct waitq *); /* NULL: empty */
struct waitq_node *waitq_pop(struct waitq *);
/* The best head whose class skip() does not pass over; NULL: none. */
struct waitq_node *waitq_peek_if(struct waitq *,
    int (*skip)(struct waitq_node *, void *), void *);
/* Serve n (from waitq_peek_if()): out, its class's turn taken. */
void waitq_take(struct waitq *, struct waitq_node *);
/* Cancel, O(1), keeping the client's turn; no-op when not queued. */
void waitq_remove(struct waitq *, struct waitq_node *);
unsigned waitq_len(const struct waitq *);
/* About how many entries a new one of client's (of class ckey) at prio
 * would follow. */
unsigned waitq_ahead(const struct waitq *, uint64_t client, uint64_t ckey,
    enum llmgate_priority);

/*
 * slice.c: a host's slices of a budget the cluster shares, pure: when to
 * ask the cluster for more units, or give some back, sized to the host's
 * own recent rate. The stock lives in a fed bucket (ratelimit.c).
 */
#define SLICE_RETRY_MAX_MS 50 /* an empty shared bucket: ask again */
struct slice {
	double rate;        /* units per second spent here, smoothed */
	int64_t last_stock; /* the bucket's units at the last tick */
	uint64_t last;      /* ms of the last tick; 0: none yet */
	uint64_t asking;    /* units asked for, unanswered; 0: none */
	uint64_t asked_at;
	uint64_t not_before; /* no ask before (the cluster was empty) */
	uint64_t granted, returned, spent; /* totals */
	int64_t cluster_level;             /* the shared bucket, as last seen */
};
void slice_init(struct slice *);
int64_t slice_tick(struct slice *, int64_t stock, uint64_t queued,
    uint64_t capacity, uint32_t slice_ms, uint64_t now);
void slice_granted(struct slice *, uint64_t n, uint64_t retry_ms, uint64_t now);
void slice_returned(struct slice *, uint64_t n);
void slice_failed(struct slice *);
int slice_late(const struct slice *, uint32_t timeout_ms, uint64_t now);

/* schema.c: JSON Schema (the subset structured output needs), compiled. */
struct schema;
/* Compile schema_text; NULL with *cause on invalid JSON or schema. */
struct schema *schema_compile(const char *schema_text, char **cause);
void schema_free(struct schema *);

/* schema-check.c: a value checked against a compiled schema. */
/* Validate instance; 0 when valid, else the number of errors, each appended to *errors as "PATH: message\n" (PATH a JSON path like $.items[2].name; caller frees *errors). max_errors caps the list. */
int schema_validate(const struct schema *, const json_t *instance,
    char **errors, int max_errors);
/* Convenience: parse text (a model reply) then validate; a reply that is not JSON is one error "$: not valid JSON: <jansson message>". Leading/trailing whitespace and a ```json fenced block are tolerated. */
int schema_validate_text(const struct schema *, const char *text, char **errors,
    int max_errors);

/*
 * share.c: max_share, pure: per target and class, buckets holding a
 * class to its fraction of the target's request and token budgets.
 */
struct share_slot {
	uint64_t key;
	struct ratelimit rl; /* the share of the target's */
};
struct share_tab {
	struct share_slot *slot;
	unsigned n;
};
/* 0: a call of tokens may go within the class's share; else ms to wait. */
uint64_t share_wait_ms(struct share_tab *, const struct ratelimit *,
    const struct client_class *, uint32_t tokens, uint64_t now);
void share_take(struct share_tab *, const struct ratelimit *,
    const struct client_class *, uint32_t tokens, uint64_t now);
void share_reconcile(struct share_tab *, const struct client_class *,
    uint32_t estimated, uint64_t actual, uint64_t now);
void share_free(struct share_tab *);

/*
 * domain.c: quota domains, budgets several targets share (a provider's
 * organisation, project or model family), pure (now passed in). A target
 * draws from the buckets of every domain its name matches, in addition to
 * its own; admission checks them all, then takes from all.
 */
#define DOMAIN_PER_TARGET 8 /* domains one target draws from, at most */
struct target;
struct domain {
	char *name;
	struct ratelimit rl;
	char **pat; /* copies of the config's patterns */
	size_t npat;
	int learn;             /* members' rate-limit headers feed rl */
	int cooldown;          /* DOMAIN_COOLDOWN_* */
	int live;              /* in the running config; else kept, unmatched */
	struct slice slice[2]; /* cluster: requests, tokens */
	struct domain *next;
};
/* The domains a target draws from (and an admission took from). */
struct domset {
	struct domain *d[DOMAIN_PER_TARGET];
	unsigned n;
};
/* The running config's domains: new ones made, kept ones keep their
 * levels, cooldowns and learned limits, removed ones stop matching. */
void domain_reconfigure(const struct config *, uint64_t now);
/* The live domains whose patterns match "provider/model", in config
 * order, at most DOMAIN_PER_TARGET. */
void domain_match(const char *target, struct domset *);
/* The longest wait of the set's buckets (0: all may take now); *why, when
 * not NULL, the domain that waits longest (NULL: none waits). */
uint64_t domain_wait_ms(const struct domset *, uint32_t tokens, uint64_t now,
    const struct domain **why);
void domain_take(const struct domset *, uint32_t tokens, uint64_t now);
/* The least of rpm (a target's; <= 0: none) and the set's rpm limits. */
int64_t domain_rpm_min(const struct domset *, int64_t rpm, uint64_t now);
/* An attempt that took estimated tokens ended: settle usage on every
 * domain; its headers and 429 too where the domain says so. */
void domain_done(const struct domset *, enum llmgate_class,
    const struct header_rl *, uint32_t estimated, uint64_t used_tokens,
    uint64_t now);
int domain_has(const struct domset *, const struct domain *);
struct domain *domain_first(void); /* every domain, live or not */
/* status's "domains": levels, hold, patterns, members among first's list. */
json_t *domain_status(const struct target *first, uint64_t now);
struct domain *domain_find(const char *name);
void domain_free_all(void);

/* target.c: per-target state, the one place budgets and breakers live. */
struct provider_state {
	char *name;
	uint32_t inflight;      /* granted and not yet done */
	struct target *targets; /* its targets, by pnext */
	struct provider_state *next;
};
struct target {
	char *name;        /* "provider/model" */
	const char *model; /* points into name */
	struct provider_state *provider;
	struct ratelimit rl;
	struct domset dom; /* the quota domains it draws from too */
	struct breaker br;
	struct waitq queue;      /* admissions waiting for budget */
	struct event *wake;      /* when the queue's head may go */
	struct slice slice[2];   /* cluster: requests, tokens */
	struct share_tab shares; /* client classes' max_share */
	uint32_t inflight;
	uint32_t holds; /* calls and leases that point here */
	uid_t owner;    /* who made it; TARGET_UNOWNED: restored */
	int configured; /* named by the config: never evicted */
	uint64_t calls;
	uint64_t failures;
	struct target *next;  /* in creation order */
	struct target *hnext; /* hash chain */
	struct target *pnext; /* the provider's */
};
/*
 * Targets the config does not name are made on a client's first use and
 * evicted when the table (TARGET_MAX of them) or their creator's share
 * (TARGET_PER_UID) is full and they hold nothing worth keeping (idle, no
 * cooldown, no learned limit, breaker closed, not held). Configured ones
 * always have room.
 */
#define TARGET_MAX     4096
#define TARGET_PER_UID 256
#define TARGET_UNOWNED ((uid_t)-1)
/* Longest model name a client may name (the state file keeps 1024). */
#define TARGET_MODEL_MAX 200
#define TARGET_QUEUE_MAX 10000 /* admissions waiting at one target */
/* The target, made if new (as uid's; TARGET_UNOWNED: not capped per uid);
 * NULL when there is no room, with *cause when cause is not NULL. */
struct target *target_create(const struct provider_conf *, const char *model,
    uid_t, char **cause);
struct target *target_get(const struct provider_conf *, const char *model);
/* The target named "provider/model" if there is one: only reads the table,
 * never makes a target (nor holds it: use it before the loop goes on). */
struct target *target_lookup(const char *name);
/* UTF-8, no controls, no "."/".." segment, no '/' where the provider puts
 * the name in a URL path: 0, or -1 with *cause. */
int target_model_check(const struct provider_conf *, const char *model,
    char **cause);
/* The target a client's "provider/model" names, its provider's config in
 * *pc, held (target_release() when done) so it is not evicted; NULL with
 * *cause when the name is not that, the model name fails
 * target_model_check(), the provider is unknown, strict_models refuses
 * the model or there is no room. */
struct target *target_resolve(const struct config *, const char *name, uid_t,
    const struct provider_conf **pc, char **cause);
void target_hold(struct target *);
void target_release(struct target *); /* NULL: no-op */
struct target *target_first(void);
void target_reconfigure(const struct config *);
void target_free_all(void);

/*
 * clients.c: client classes. Who a peer is (from the kernel: uid, pid,
 * the systemd unit of its cgroup; an HTTP token's name; the name it gives
 * itself), the class that makes it (the clients block, first match), and
 * each class's counters and token budgets, which live outside the config
 * so that a reload keeps them. Pure (times passed in) but for reading a
 * peer's unit from /proc.
 */
#define CLIENTS_MAX       64 /* classes in one config */
#define CLIENT_UNIT_MAX   128
#define CLIENT_NAME_MAX   64
#define CLIENT_WEIGHT_MAX 1000
struct client_ident {
	uid_t uid;                   /* (uid_t)-1: unknown */
	pid_t pid;                   /* 0: unknown */
	char unit[CLIENT_UNIT_MAX];  /* "": none known */
	char token[CLIENT_NAME_MAX]; /* the HTTP token's name; "": none */
	char name[CLIENT_NAME_MAX];  /* its own; "": none */
};
enum client_match_kind { CM_UID, CM_UNIT, CM_TOKEN, CM_NAME };
struct client_match {
	enum client_match_kind kind;
	uid_t uid; /* CM_UID; (uid_t)-1: any */
	char *pat; /* CM_UNIT, CM_TOKEN, CM_NAME: a glob */
};
struct client_state;
struct client_class {
	char *name;
	uint64_t key; /* of the name: the queues' class */
	struct client_match *match;
	size_t nmatch;
	uint32_t weight;
	int max_priority;           /* enum llmgate_priority */
	double max_share;           /* of a target's budget; 1: any */
	uint32_t max_inflight;      /* calls and leases; 0: any */
	uint32_t max_queued;        /* admissions waiting; 0: any */
	uint32_t max_conns;         /* native and HTTP connections; 0: any */
	uint32_t tokens_per_minute; /* 0: no budget */
	uint32_t tokens_per_day;
	struct client_state *st; /* bound on first use */
};
/* Budgets: UTC minutes and days, used and held by admissions. */
struct client_state {
	char *name;
	uint32_t inflight;            /* calls and leases now */
	uint32_t queued;              /* admissions waiting now */
	uint32_t conns;               /* connections counted in now */
	uint64_t reserved;            /* tokens held by admissions */
	uint64_t minute, minute_used; /* the UTC minute and its tokens */
	uint64_t day, day_used;       /* the UTC day and its tokens */
	uint64_t over_until;          /* the last refusal's reset (wall) */
	uint64_t calls, tokens;       /* totals */
	uint64_t refused_budget, refused_caps;
	int gone; /* its class left the config: its use is not kept */
	/*
	 * With a cluster (cluster.c), per window: this host's use sent to
	 * Redis, the part of it the cluster's total last seen includes, and
	 * that total; the other hosts' holds as last seen; the hold last
	 * told; the last sync (monotonic ms) and the one unanswered (0:
	 * none, else when it was sent), numbered.
	 */
	uint64_t minute_sent, minute_acked, minute_seen;
	uint64_t day_sent, day_acked, day_seen;
	uint64_t others_held, held_sent;
	uint64_t sync_ms, sync_pending;
	uint32_t sync_seq;
	struct client_state *next;
};
/* The class ident falls in under conf: the first whose conditions it
 * meets, else the one named "default", else a built-in default. */
const struct client_class *clients_match(const struct config *,
    const struct client_ident *);
/* The class's runtime state (made on first use; kept across reloads). */
struct client_state *clients_state(const struct client_class *);
struct client_state *clients_state_first(void);
int clients_enter(const struct client_class *, struct client_state **, char *,
    size_t);
/*
 * One more connection of class k (matched by who the peer is when it
 * connects): refused with a message in msg (-1) when the class has
 * max_conns already; else counted and *stp is the class's state, for
 * clients_conn_leave() when the connection closes.
 */
int clients_conn_enter(const struct client_class *, struct client_state **,
    char *, size_t);
void clients_conn_leave(struct client_state **);
void clients_free_all(void);
/* A new config: a class it removed loses its token use (not saved). */
void clients_reconfigure(const struct config *);
/* The systemd unit in /proc/PID/cgroup (the last *.service or *.scope
 * element) into unit; "" when none. */
void clients_unit_of_pid(pid_t, char *unit, size_t len);
/* The same from the file's text, which it changes. */
void clients_unit_parse(char *text, char *unit, size_t len);
/* prio, no higher than the class allows. */
enum llmgate_priority clients_priority(const struct client_class *,
    enum llmgate_priority);
/*
 * Hold tokens of the class's budgets at wall_ms (ms since the epoch): 0,
 * or which budget (CLIENTS_OVER_*) its used and held tokens would pass,
 * with *retry_ms until that budget resets; nothing is held then.
 */
#define CLIENTS_OVER_MINUTE 1
#define CLIENTS_OVER_DAY    2
int clients_reserve(const struct client_class *, uint64_t tokens,
    uint64_t wall_ms, uint64_t *retry_ms);
/* Why clients_reserve() refused, for the caller. */
void clients_budget_msg(const struct client_class *, int over, uint64_t tokens,
    uint64_t retry_ms, char *msg, size_t len);
/* An admission's held tokens go; used ones are charged. */
void clients_settle(const struct client_class *, uint64_t held, uint64_t used,
    uint64_t wall_ms);
/* ms until the class's spent budget resets (or the one that last refused
 * a call); 0 when neither. */
uint64_t clients_budget_wait(const struct client_class *, uint64_t wall_ms);
#define CLIENTS_PEERS_MAX 1000 /* peers status lists */
/* A peer's row for status: who, its class, what it has in flight, the
 * tokens its calls used since it connected. */
json_t *clients_peer_json(const struct config *, const char *kind,
    const struct client_ident *, unsigned inflight, uint64_t tokens);
/* The class's figures for status and metrics. */
json_t *clients_status_json(const struct config *, uint64_t wall_ms);
uint64_t clients_wall_ms(void); /* the wall clock, for the glue */
/* The budgets' use for the state file, and back. */
json_t *clients_save_json(uint64_t wall_ms);
void clients_load_json(const struct config *, const json_t *, uint64_t wall_ms);
/*
 * The cluster's part (cluster.c): fed, the class budgets count the
 * cluster's use and holds as last seen; else share > 1 holds this host to
 * 1/share of each budget besides (Redis away); 0, 0: no cluster.
 */
void clients_cluster(int fed, unsigned share);
/* One class's exchange with the cluster: what this host tells, what for. */
struct clients_sync {
	struct client_state *st;
	uint32_t seq;
	uint64_t minute, day;             /* the windows */
	uint64_t minute_delta, day_delta; /* use not sent before */
	uint64_t minute_sent, day_sent;   /* sent, these included */
	uint64_t held;                    /* held here now */
};
/* Whether k's budgets are due to be told and read (none unanswered, and
 * something changed or poll_ms passed); if so *s is what to send, and it
 * counts as sent. now is monotonic, wall_ms since the epoch. */
int clients_sync_begin(const struct client_class *, uint64_t wall_ms,
    uint64_t now, uint64_t poll_ms, struct clients_sync *);
/* The cluster's answer (ok: its totals of the windows and the other
 * hosts' holds), or none (!ok: Redis away). */
void clients_sync_end(const struct clients_sync *, int ok,
    uint64_t minute_total, uint64_t day_total, uint64_t others_held);
/* Whether a sync has waited longer than timeout_ms. */
int clients_sync_late(uint64_t now, uint64_t timeout_ms);

/*
 * admission.c: the admission decision, pure (now passed in): the target's
 * breaker, its rate budget, its provider's concurrency cap, the fair queue
 * and the wait it predicts, under the owner's config snapshot.
 */
enum admit_verdict {
	ADMIT_GO,         /* granted now */
	ADMIT_WAIT,       /* queued; answer() will be called */
	ADMIT_OPEN,       /* the breaker is open: skip the target */
	ADMIT_LATE,       /* the predicted wait passes the deadline */
	ADMIT_LONG,       /* the predicted wait passes max_wait_ms */
	ADMIT_FULL,       /* the target's queue is full */
	ADMIT_EXPIRED,    /* queued, and max_wait_ms passed */
	ADMIT_BUDGET,     /* the client class's token budget is spent */
	ADMIT_CLASS_FULL, /* the client class has max_queued waiting */
};
/* What the owner's config said when it started (a reload changes it for
 * later calls and leases only). */
struct admit_conf {
	struct breaker_conf breaker;
	uint32_t max_wait_ms; /* 0: no bound */
};
struct admission {
	struct waitq_node node;
	struct target *t;
	struct admit_conf conf;
	uint32_t concurrency; /* the provider's cap; 0: none */
	uint32_t tokens;      /* estimated; taken when granted */
	uint64_t client;
	enum llmgate_priority prio;
	const struct client_class *klass; /* NULL: none (tests) */
	uint32_t held;                    /* tokens held of its budgets */
	int over;                         /* ADMIT_BUDGET: CLIENTS_OVER_* */
	int ticket;                       /* the breaker's, 0: none held */
	int granted;                      /* holds a slot and took tokens */
	struct domset dom;                /* the domains it took from */
	int queued;
	uint64_t queued_ms;
	/* admit.c's: */
	struct event *expire; /* max_wait_ms while queued */
	/* A queued one's answer: ADMIT_GO (granted) or ADMIT_EXPIRED, after
	 * waited ms; never from inside admit_request(). */
	void (*answer)(struct admission *, enum admit_verdict, uint64_t waited);
	void *arg;
};
void admission_init(struct admission *, struct target *, const struct config *,
    uint32_t concurrency, uint32_t tokens, uint64_t client,
    enum llmgate_priority);
/* The admission is the class's (after admission_init()): its queue
 * class, weight, priority ceiling, share and caps. */
void admission_class(struct admission *, const struct client_class *);
enum admit_verdict admission_request(struct admission *, uint64_t deadline_ms,
    uint64_t now, uint64_t *wait_ms);
uint64_t admission_predict(const struct admission *, uint64_t now);
/* ms until the target's own budget and its domains' admit tokens. */
uint64_t admission_wait_ms(const struct target *, uint32_t tokens,
    uint64_t now);
struct admission *admission_next(struct target *, uint64_t now,
    uint64_t *wait_ms);
void admission_done(struct admission *, enum llmgate_class,
    const struct header_rl *, uint64_t used_tokens, uint64_t now);
#define ADMISSION_DEQUEUED 0x1 /* left the queue */
#define ADMISSION_SLOT     0x2 /* gave back a concurrency slot */
unsigned admission_release(struct admission *, uint64_t now);
/* A refusal (OPEN, LATE, LONG, FULL, EXPIRED) as class and message. */
enum llmgate_class admission_refusal(const struct admission *,
    enum admit_verdict, uint64_t wait_ms, uint64_t now, const char *limit,
    char *msg, size_t len);

/*
 * admit.c: admission on the event loop, between the call engine (or a
 * lease) and upstream: admission.c's decisions, the timers they ask for
 * (the queue's wake-up, max_wait_ms), the answers; plus the retry budget.
 */
enum admit_verdict admit_request(struct admission *, uint64_t deadline_ms,
    uint64_t now, uint64_t *wait_ms);
/* The attempt ended: feed the outcome to the budgets and the breaker. */
void admit_done(struct admission *, enum llmgate_class,
    const struct header_rl *, uint64_t used_tokens, uint64_t now);
/* Give back whatever the admission holds; safe to call at any time. */
void admit_cancel(struct admission *);
void admit_first(uint64_t now);
int admit_retry(const struct retry_budget_conf *, uint64_t now);
double admit_retry_available(const struct retry_budget_conf *, uint64_t now);
unsigned admit_queued(void);

/* Budget came for t (a cluster slice): serve its queue. */
void admit_target_ready(struct target *);
/* The cluster granted d budget: its members' queues may move. */
void admit_domain_ready(struct domain *);

/*
 * cluster.c: several hosts share budgets and holds through Redis (hiredis
 * on the loop). Without a cluster block every entry point is a no-op.
 */
/* Redis's address: "unix:PATH", or a host (a name, an IPv4 address, or an
 * IPv6 one in brackets) and a port. */
struct cluster_addr {
	char *path; /* unix:PATH; else NULL */
	char *host; /* without the brackets */
	int port;
};
int cluster_addr_parse(const char *, struct cluster_addr *, char **cause);
void cluster_addr_free(struct cluster_addr *);
int cluster_start(struct event_base *);
void cluster_stop(void);
int cluster_active(void); /* Redis is up and feeding */
void cluster_target_new(struct target *);
/* What an outcome may change that the other hosts must hear of: seen
 * before it, told after (a hold, a learned limit, a breaker opening). */
struct cluster_seen {
	uint64_t held;
	uint32_t learned_rpm, learned_tpm;
	uint32_t epoch;
	/* The same of the quota domains the attempt took from. */
	uint64_t dom_held[DOMAIN_PER_TARGET];
	uint32_t dom_rpm[DOMAIN_PER_TARGET], dom_tpm[DOMAIN_PER_TARGET];
};
void cluster_before(const struct target *, const struct domset *,
    struct cluster_seen *);
void cluster_after(struct target *, const struct domset *,
    const struct cluster_seen *, uint64_t now);
json_t *cluster_status(void); /* NULL: no cluster block */
/* The hosts last seen alive, for the state file (0: no cluster); and the
 * count a restart read from it (before cluster_start()). */
unsigned cluster_hosts_seen(void);
void cluster_hosts_restore(unsigned);

/* lease.c: advisory leases for processes that keep their own SDK. */
struct lease;
typedef void lease_cb(void *arg, const struct llmgate_lease *,
    enum llmgate_class, const char *msg);
/* The same contract as a call's: cb answers exactly once, never from
 * inside lease_acquire(), unless detached. */
struct lease *lease_acquire(const struct llmgate_acquire *,
    const struct call_client *, lease_cb *, void *arg);
/* Before the answer: cb answers now, with cls and why. */
void lease_cancel(struct lease *, enum llmgate_class, const char *why);
/* Before the answer, the asker went away: no callback; the lease goes. */
void lease_detach(struct lease *);
/* Only uid, who took the lease, may report it. */
int lease_report(const struct llmgate_report *, uid_t, char **cause);
unsigned lease_active(void);
void lease_free_all(void);

/* http.c: libcurl multi on the libevent loop. */
int http_init(struct event_base *);
void http_shutdown(void);
void http_start(struct attempt *);
void http_stop(struct attempt *);

/* provider-mock.c */
void mock_start(struct attempt *);
void mock_stop(struct attempt *);

/*
 * quota.c: what clients may make the daemon hold, one budget per user for
 * both fronts: requests in flight, request bytes, and all of it for
 * everyone (max_calls_per_uid, max_bytes_per_uid, max_memory).
 */
enum quota_verdict {
	QUOTA_OK = 0,
	QUOTA_CALLS,  /* the user's calls in flight */
	QUOTA_BYTES,  /* the user's request bytes */
	QUOTA_MEMORY, /* everything held, for everyone */
};
struct quota_user;
/* uid's budget, made on first use, kept until quota_free_all(). */
struct quota_user *quota_user(uid_t);
/* Could u hold add more bytes? QUOTA_OK, else which limit (why in msg). */
enum quota_verdict quota_room(const struct quota_user *, size_t add, char *msg,
    size_t len);
/* A request of bytes begins (QUOTA_OK: counted until quota_request_end),
 * else which limit refuses it (why in msg). */
enum quota_verdict quota_request(struct quota_user *, size_t bytes, char *msg,
    size_t len);
void quota_request_end(struct quota_user *, size_t bytes);
/* u's unfinished input buffer went from was to now bytes. */
void quota_input(struct quota_user *, size_t was, size_t now);
/* Replies: queued bytes added, written ones gone. */
void quota_output(size_t queued, size_t written);
size_t quota_held(void);
void quota_free_all(void);

/* conn.c: one client connection. */
void conn_accept(int fd);
void conn_close_all(void);
void conn_cancel_all(void);
void conn_cancel_leases(void);
unsigned conn_count(void);
unsigned conn_uid_count(uid_t);
/* Append each connection of uid's ((uid_t)-1: all) to peers, for status;
 * at most CLIENTS_PEERS_MAX in all. */
void conn_peers(json_t *peers, uid_t);
uid_t conn_uid(struct conn *);
const char *conn_name(struct conn *);
msgpack_sbuffer *conn_buf(struct conn *);
void conn_send(struct conn *);
void conn_send_error(struct conn *, uint32_t id, enum llmgate_class,
    const char *);
void conn_fail(struct conn *, const char *);
int conn_hello_done(struct conn *);
void conn_set_hello(struct conn *, const char *name);
void conn_call_start(struct conn *, uint32_t id, const struct llmgate_request *,
    msgpack_zone *);
void conn_call_cancel(struct conn *, uint32_t id);
void conn_lease_acquire(struct conn *, uint32_t id,
    const struct llmgate_acquire *);

/*
 * front-http.c: the HTTP front: listeners, who may call, one request's
 * way to a dialect and back (answers in front-http-reply.c, the call in
 * front-http-call.c). Dialects (front-openai.c, front-anthropic.c)
 * translate; the engine never sees HTTP.
 */
struct front_error {
	int status; /* HTTP */
	const char *openai_type;
	const char *code;
	const char *anthropic_type;
};
struct front_req;
struct front_dialect {
	const char *name;
	const char *id_prefix; /* "chatcmpl-", "msg_" */
	int attach_attempts;   /* errors carry an llmgate field */
	int overloaded;        /* its status for overloaded (0: 503) */
	/* Translate body into req, its strings in z; -1 after
	 * front_http_refusal(). Sets fr->model, stream options, dstate. */
	int (*parse)(struct front_req *, const struct jdoc *body,
	    msgpack_zone *z, struct llmgate_request *req);
	void (*chunk)(struct front_req *, const struct llmgate_chunk *);
	void (*done)(struct front_req *, const struct llmgate_result *);
	/* An error answer's members, into the open object w. */
	void (*error_body)(struct front_req *, struct jwrite *w, int status,
	    const struct front_error *, const char *code, const char *msg);
	/* The event: name of the error that ends a stream (NULL: none). */
	const char *error_event;
};
enum front_kind { FRONT_UNIX, FRONT_LOOPBACK, FRONT_REMOTE };
struct front_wire;
struct front_conn {
	struct front_wire *w; /* its HTTP connection */
	enum front_kind kind;
	int uid_known;
	int allowed; /* uid passes the socket's rules */
	uid_t uid;
	pid_t pid;
	/* "http HOST uid N": an IPv6 address (INET6_ADDRSTRLEN, 46) and
	 * a 64-bit number fit. */
	char peer[80];
	char unit[CLIENT_UNIT_MAX]; /* of its cgroup; "": none known */
	uint64_t tokens;            /* its calls used, for status */
	struct client_state *cls;   /* its class's connection count */
	struct front_req *cur;      /* the request whose call runs */
	TAILQ_ENTRY(front_conn) entry;
};
struct front_req {
	struct front_wire *w;  /* its connection; NULL once answered */
	struct front_conn *fc; /* NULL once the peer is gone */
	const struct front_dialect *d;
	struct call *call; /* NULL when none runs */
	struct event *cancel_ev;
	struct call_client client;
	struct client_ident ident; /* for its client class */
	char client_name[128];     /* "NAME (peer)", NAME cut at 32 */
	char id[48];
	char *model; /* as the client named it */
	int64_t created;
	int stream;
	int include_usage;
	int started;                /* the event stream began */
	int gone;                   /* the client went away */
	int dropped;                /* it let its stream pile up */
	int paused;                 /* upstream held: the client is slow */
	uint64_t queued;            /* bytes of the stream queued, ever */
	uint64_t stall_mark;        /* written when stall_ev was armed */
	struct event *stall_ev;     /* past max_output: does it read? */
	enum llmgate_class err_cls; /* a refusal, before any call */
	int err_status;
	char *err_msg;
	const char *allow;        /* a 405's Allow: the path's methods */
	void *dstate;             /* the dialect's; free()d */
	struct quota_user *quota; /* counted against, until freed */
	size_t quota_bytes;
};
extern const struct front_dialect front_openai;
extern const struct front_dialect front_anthropic;
int front_http_addr(const char *, char **host, uint16_t *port, int *loopback,
    char **cause);
int front_http_start(const char *native_path, int strict, char **cause);
int front_http_listen(int strict, char **cause);
int front_http_reload(void);
void front_http_unlisten(void);
void front_http_cancel_all(void);
void front_http_shutdown(void);
unsigned front_http_count(void);
unsigned front_http_uid_count(uid_t);
void front_http_peers(json_t *peers, uid_t);
/* From front-wire.c: a whole request of fc's, to answer; fc's end. */
void front_http_request(struct front_conn *);
void front_http_closed(struct front_conn *);
/* front-http-reply.c: the answers, whole or as an event stream. */
const struct front_error *front_http_error_of(enum llmgate_class);
void front_http_attempts_text(struct jwrite *, const char *key,
    const struct llmgate_result *, int with_messages);
void front_http_llmgate_text(struct jwrite *, const struct llmgate_result *);
/* A whole answer: its JSON text (taken), or a tree (taken). */
void front_http_text(struct front_req *, int status, struct buf *body,
    const struct llmgate_result *);
void front_http_json(struct front_req *, int status, json_t *body,
    const struct llmgate_result *);
/* An error answer: status 0 and code NULL take the class's. */
void front_http_fail(struct front_req *, enum llmgate_class, int status,
    const char *code, const char *msg, const struct llmgate_result *);
void front_http_sse_raw(struct front_req *, const char *text);
/* An event as text: begin it in a buf, write its data, send it. */
void front_http_sse_begin(struct buf *, const char *event);
void front_http_sse_text(struct front_req *, struct buf *);
void front_http_end(struct front_req *);
/* fc's output is all written: a held upstream may go on. */
void front_http_drained(struct front_conn *);
/* Times a stream's upstream was held for a slow reader, ever. */
uint64_t front_http_stream_holds(void);
/* front-http-call.c: from the dialect's translation to a running call. */
char *front_http_zdup(msgpack_zone *, const char *, size_t);
void *front_http_zalloc(msgpack_zone *, size_t n, size_t size);
/* The chain for model and the body's models (and x-llmgate-models);
 * -1 after front_http_refusal(). */
int front_http_targets(struct front_req *, struct llmgate_request *,
    msgpack_zone *, const char *model, const struct jdoc *, int models);
/* String i of d, NUL-terminated, in z; NULL if i is no string. */
char *front_http_jstr(msgpack_zone *, const struct jdoc *, int i);
/* Array v of d, of at most max strings, into *out (in z) and *n: 0; -1
 * if v is no such array, -2 with *bad the first member that is no string. */
int front_http_jstrs(msgpack_zone *, const struct jdoc *, int v, size_t max,
    char ***out, size_t *n, size_t *bad);
/* String i of d appended to b; -1 if i is no string. */
int front_http_jadd(struct buf *, const struct jdoc *, int i);
/* Value i's compact JSON text (as json_dumps() writes it), in z. */
char *front_http_jdump(msgpack_zone *, const struct jdoc *, int i);
/* Number i within [lo, hi], into *out: 0, or -1. */
int front_http_jrange(const struct jdoc *, int i, double lo, double hi,
    double *out);
/* Refuse the request (the first refusal wins): answered by the front. */
void front_http_refusal(struct front_req *, enum llmgate_class, int status,
    const char *msg);
/* The caller's mistake: front_http_refusal() with invalid_request, 400. */
void front_http_bad(struct front_req *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
int front_http_options(struct front_req *, struct llmgate_request *,
    msgpack_zone *);
void front_http_client(struct front_req *, const char *token_name);
/* The request counts against its user's budget (quota.c) until freed;
 * -1 after front_http_refusal() when over. */
int front_http_quota(struct front_req *, size_t bytes);
extern size_t front_http_zbytes;
void front_http_call(struct front_req *, struct llmgate_request *,
    msgpack_zone *);
void front_http_drop(evutil_socket_t, short, void *);
void front_http_req_free(struct front_req *);

/*
 * front-wire.c: the HTTP/1.1 connections of the front (http-parser
 * parses): requests one at a time in order, answers written at once.
 */
#define FRONT_WIRE_HEAD_MAX    32768 /* a request's line and headers */
#define FRONT_WIRE_HEADERS_MAX 128   /* headers of a request */
struct front_wire *front_wire_new(int fd, struct front_conn *);
const char *front_wire_method(const struct front_wire *);
const char *front_wire_path(const struct front_wire *);
/* The request's first header of that name (any case), or NULL. */
const char *front_wire_header(const struct front_wire *, const char *);
/* Whether a request target's path (what comes before its '?') is want. */
static inline int
front_path_is(const char *path, const char *want)
{
	size_t q = strcspn(path, "?");

	return q == strlen(want) && strncmp(path, want, q) == 0;
}
const char *front_wire_body(const struct front_wire *, size_t *len);
/* A whole answer; extra: more header lines, each ending in CRLF. */
void front_wire_answer(struct front_wire *, int status, const char *ctype,
    const char *extra, const char *body, size_t len);
void front_wire_stream_start(struct front_wire *, int status, const char *ctype,
    const char *extra);
void front_wire_stream_write(struct front_wire *, const char *, size_t);
void front_wire_stream_end(struct front_wire *);
/* Bytes answered but not yet taken by the client. */
size_t front_wire_unread(const struct front_wire *);
/* Past max_output unread while the daemon holds more than max_memory. */
int front_wire_over_memory(const struct front_wire *);
void front_wire_abort(struct front_wire *);
/* The request is over (answered, its state freed): on to the next. */
void front_wire_next(struct front_wire *);
void front_wire_reload(void);
void front_wire_drain(void);
void front_wire_shutdown(void);
/* The parser alone (the fuzzer): 1 a whole request (*used bytes of it),
 * 0 more needed, -1 refused with *status (400, 413, 431). */
struct front_wire_msg;
struct front_wire_msg *front_wire_msg_new(size_t max_body);
void front_wire_msg_free(struct front_wire_msg *);
int front_wire_msg_parse(struct front_wire_msg *, const char *, size_t,
    size_t *used, int *status);
/* A header (name not NULL), the path and the body of the last request. */
const char *front_wire_msg_get(const struct front_wire_msg *, const char *name,
    const char **path, const char **body, size_t *len);

/* front-peer.c: who calls the HTTP front, and may they. */
/* The uid owning the client end of an accepted loopback TCP socket. */
int front_peer_tcp_uid(int fd, uid_t *);
/* Would uid pass the native socket's mode and group? No name service
 * lookup: front_peer_load() reads the group's members at config load. */
int front_peer_uid_allowed(uid_t);
void front_peer_load(const struct config *);
void front_peer_free(void);
/* The name of the valid token the headers carry, or NULL. */
const char *front_peer_token(const struct front_wire *);

/* op.c: the protocol front's op table. */
void op_dispatch(struct conn *, struct proto_msg *);

/* notify.c: sd_notify(3) to the service manager; no-ops without one. */
void notify_ready(void);
void notify_reloading(void); /* with MONOTONIC_USEC, for notify-reload */
void notify_stopping(void);
void notify_status(const char *, ...) __attribute__((format(printf, 1, 2)));
/* With $WATCHDOG_USEC for this process: WATCHDOG=1 every half interval.
 * 1 armed, 0 not asked for, -1 on error. */
int notify_watchdog_start(struct event_base *);
void notify_watchdog_stop(void);

/* metrics.c: Prometheus text exposition. */
/* A call ended at target (NULL: before any) with cls after latency_ms. */
void metrics_observe_call(const char *target, enum llmgate_class,
    uint64_t latency_ms);
/* An attempt at target ended, or the target was skipped, with cls. */
void metrics_observe_attempt(const char *target, enum llmgate_class);
char *metrics_render(void); /* free() */
void metrics_shutdown(void);
/* metrics-http.c: GET /metrics. */
/* "host:port" or "[v6]:port"; host and port may be NULL. */
int metrics_hostport(const char *, char **host, uint16_t *port, char **cause);
/* Serve hostport (NULL: stop); same address: no-op; on failure the old
 * endpoint keeps serving. */
int metrics_listen(struct event_base *, const char *hostport, char **cause);
void metrics_http_stop(void);

/* state.c: cooldowns, breakers and learned limits across restarts. */
#define STATE_VERSION 1
/* cfg's state_file, else $STATE_DIRECTORY/state.json; NULL: none. */
const char *state_path(void);
int state_save(const char *path, char **cause);
/* -1 with *cause when the file is unusable; bad entries are skipped. */
int state_load(const char *path, char **cause);
/* Load state_path() at start; a bad file is logged, never fatal. */
void state_restore(void);
/* Save every state_save_ms; state_stop() ends that and saves once more. */
void state_start(struct event_base *);
void state_stop(void);

/* server.c */
extern struct event_base *ev_base;
extern struct config *cfg;
extern uint64_t server_start_ms;
int server_listen(const char *path, mode_t mode, char **cause);
/* A listening unix socket born with mode and the socket group; -1. */
int server_unix_listen(const char *path, mode_t mode, char **cause);
void server_signals(void);
int server_run(void);
json_t *server_status(void);
int server_reload(char **cause);
void server_call_ended(void);
/* 1 once SIGTERM started the drain: no new calls or leases. */
int server_draining(void);

#endif
