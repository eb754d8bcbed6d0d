/*
 * fakeprov.h: what the parts of the fake provider share: limits, the
 * model-name directives, the answer machinery, the call and the
 * provider table. fakeprov.c is the server core, fakeprov-openai.c,
 * fakeprov-anthropic.c and fakeprov-gemini.c the dialects.
 */

#ifndef FAKEPROV_H
#define FAKEPROV_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#define FP_DEFAULT_KEY     "test-key"
#define FP_DEFAULT_TIMEOUT 120
#define FP_MAX_BODY        (8 * 1024 * 1024)
#define FP_MAX_HEADERS     (64 * 1024)
#define FP_MAX_DELAY_MS    (10 * 60 * 1000)
#define FP_CLOSE_POLL_MS   2
#define FP_CLOSE_WAIT_MS   5000
#define FP_ARGS_PIECE      8
#define FP_ERROR_AFTER     2
#define FP_NO_MODEL        "(none)"

/*
 * How llmgated resumes a cut stream (daemon/call.c, call_continue_prompt):
 * the partial reply as an assistant turn, then this user turn, verbatim.
 */
#define FP_CONTINUE \
	"Your previous reply was cut off. " \
	"Continue exactly where it stopped, without " \
	"repeating anything you already wrote."

/* Model-name directives; tests/fakeprov.md has the reference. */
struct dirs {
	int status;
	char *code;
	char *msg;
	int retry_after;
	int retry_after_ms;
	int ratelimit;
	int fail;
	int delay;
	int word_delay;
	int cut;
	int drop;
	int garbage;
	int stream_error;
	char *tool;
	char *args;
	char *text;
	int length;
	int filter;
	int rpm;
	int tpm;
	char *quota;
	int ka_close;
	int tool_again;
	char *shape;
	int tool_index;
	int echo_headers;
	int repeat;
	char *stop_seq;
	int tool_noid;
};

enum dir_type { DIR_FLAG, DIR_INT, DIR_STR };

/* A token bucket; bucket_take() is pure and takes the time as "now". */
struct bucket {
	double tokens;
	uint64_t last_ms;
	int primed;
};

/* What the server remembers per model name, until POST /_reset. */
struct model {
	char *name;
	long requests;
	long attempts;  /* for fail=N */
	json_t *status; /* {"200": n, ...} */
	json_t *last;
	struct bucket bucket;
	struct bucket tbucket; /* tpm=N */
	long billed;           /* tokens of the answers given */
	TAILQ_ENTRY(model) entry;
};
TAILQ_HEAD(models, model);

/*
 * One SSE event of a stream. The kinds let cut= and stream_error= find
 * their place the same way for every provider: PRE before the content,
 * CONTENT the text or argument pieces, POST after them, TERM the end marker.
 */
enum ev_kind { EV_PRE, EV_CONTENT, EV_POST, EV_TERM };

struct sse_event {
	enum ev_kind kind;
	char *name;
	char *data;
};

enum ans_state {
	ANS_NEW,
	ANS_WAIT,    /* delay= timer running */
	ANS_STREAM,  /* headers sent, pacing events */
	ANS_CLOSING, /* waiting for output to drain, then close */
	ANS_GONE     /* the client went away */
};

enum ans_end {
	END_CLEAN,
	END_CUT,     /* close the connection after what was sent */
	END_DROP,    /* close without any response */
	END_KA_CLOSE /* a whole reply, then a close despite keep-alive */
};

/* A reply on its way out. It owns the request until it is done. */
struct answer {
	struct evhttp_request *req;
	struct event *timer;
	enum ans_state state;
	enum ans_end end;
	int status;
	char *body;
	size_t bodylen;
	long cut_bytes;
	int streaming;
	int array; /* Gemini stream without alt=sse */
	int sent_any;
	struct sse_event *events;
	size_t nevents;
	size_t next;
	int delay_ms;
	int word_delay_ms;
	int ka_close_ms;
	uint64_t close_deadline;
	TAILQ_ENTRY(answer) entry;
};
TAILQ_HEAD(answers, answer);

struct call;

/* Defaults for an error status, and what a code= value stands for. */
struct err_entry {
	int status;
	const char *type; /* OpenAI type, Anthropic type, Gemini status */
	const char *code; /* OpenAI code */
	const char *msg;
};

struct code_entry {
	const char *code;
	int status;
	const char *type;
	const char *param;
	const char *msg;
};

struct err_info {
	int status;
	const char *type;
	const char *code;
	const char *param;
	const char *msg;
	int msg_default;
};

enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_WRONG };

struct provider {
	const char *name;
	const struct err_entry *errors;
	const struct code_entry *codes;
	int code_is_type;
	int retry_header;
	const char *reqid_header;
	const char *json_type;
	const char *sse_type;
	const char *garbage_event;
	int trims_prefill; /* resume_rest() */
	enum auth_result (*auth)(struct call *);
	void (*auth_error)(struct call *, enum auth_result);
	int (*check)(struct call *);
	void (*read)(struct call *);
	void (*error)(struct call *, struct err_info *);
	json_t *(*reply)(struct call *);
	void (*stream)(struct call *);
	void (*stream_error)(struct call *);
	void (*ratelimit)(struct call *);
};

/* One provider request, from parsing to the finished answer. */
struct call {
	const struct provider *prov;
	struct evhttp_request *req;
	struct answer *ans;
	char *path;
	json_t *body;
	char *model;
	struct model *m;
	struct dirs d;
	char reqid[32];
	char id[48];
	char toolid[48];
	long created;
	int stream;
	int include_usage;
	char *prompt;
	char *partial; /* a resume's P */
	int tool_result;
	long in_words;
	long out_words;
	int content_done;  /* call_content() ran */
	char *text;        /* reply text; NULL for a tool call */
	char *args;        /* tool arguments as sent */
	json_t *args_json; /* the same parsed, or NULL */
	int retry_s;       /* effective, -1 none */
	int retry_ms;
	int limited; /* answered 429 */
	uint64_t limit_wait_ms;
};

/* Growable string, for text gathered from several JSON values. */
struct sbuf {
	char *s;
	size_t len;
	size_t cap;
};

extern const char *fp_key;

extern const struct provider prov_openai;
extern const struct provider prov_azure;
extern const struct provider prov_anthropic;
extern const struct provider prov_gemini;

char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sbuf_addn(struct sbuf *sb, const char *s, size_t n);
char *sbuf_take(struct sbuf *sb);
void utf8_sanitize(char *s);
size_t piece_len(const char *p);
size_t frag_len(const char *p);
void go_duration(char *buf, size_t len, uint64_t ms);
void rfc3339(char *buf, size_t len, long secs);
json_t *jpack(const char *fmt, ...);
char *jdump(json_t *o);
json_t *jstr_or_null(const char *s);
void text_of(json_t *v, struct sbuf *sb, long *nwords);
size_t resume_turns(struct call *c, json_t *turns, const char *key,
    const char *assistant);
double rpm_rate(int rpm);
double rpm_burst(int rpm);
uint64_t bucket_refill_ms(const struct bucket *b, double rate, double burst);
void answer_body(struct answer *a, char *body);
void answer_event_raw(struct answer *a, enum ev_kind kind, const char *name,
    const char *data);
void answer_event(struct answer *a, enum ev_kind kind, const char *name,
    json_t *o);
const char *req_header(struct call *c, const char *name);
void req_set_header(struct call *c, const char *name, const char *value);
char *query_get(struct evhttp_request *req, const char *name);
const char *bearer(const char *auth);
void call_error(struct call *c, int status, const char *code, const char *msg);
void call_json(struct call *c, json_t *o);
int call_code_status(struct call *c, const char *code);
uint64_t call_retry_wait(struct call *c, uint64_t dflt);
char *retry_hint(struct call *c);
const char *finish_reason(struct call *c, const char *stop, const char *tool,
    const char *length, const char *filter);

#endif /* FAKEPROV_H */
