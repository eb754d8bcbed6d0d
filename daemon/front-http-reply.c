/*
 * front-http-reply.c: the HTTP front's answers: the one table from error
 * class to HTTP status and the dialects' error names, a whole JSON
 * answer with its x-llmgate-* and Retry-After headers, and the event
 * stream, held upstream while a slow client reads and dropped when it
 * does not: when its unread output stays past max_output and it reads
 * none of it for frame_timeout_ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define FRONT_HTTP_ATTEMPTS_HDR 4096        /* longest x-llmgate-attempts */
#define FRONT_HTTP_HIGH         (64 * 1024) /* unread stream: hold upstream */

static uint64_t front_http_holds; /* streams' upstreams held, ever */

/* Times a stream's upstream was held for a slow reader (status). */
uint64_t
front_http_stream_holds(void)
{
	return front_http_holds;
}

/*
 * The one table from error class to HTTP status and the dialects' error
 * names. Every answer says x-should-retry: false: the daemon already
 * retried what could be retried.
 */
static const struct front_error front_errors[LLMGATE_CLASS_MAX] = {
	[LLMGATE_OK] = { 200, "", "", "" },
	[LLMGATE_RATE_LIMITED] = { 429, "rate_limit_error",
	    "rate_limit_exceeded", "rate_limit_error" },
	[LLMGATE_OVERLOADED] = { 503, "server_error", "overloaded",
	    "overloaded_error" },
	[LLMGATE_SERVER_ERROR] = { 502, "server_error", "upstream_error",
	    "api_error" },
	[LLMGATE_TIMEOUT] = { 504, "server_error", "upstream_timeout",
	    "timeout_error" },
	[LLMGATE_CONNECTION] = { 502, "server_error", "upstream_connection",
	    "api_error" },
	[LLMGATE_PARSE_ERROR] = { 502, "server_error", "upstream_parse_error",
	    "api_error" },
	[LLMGATE_QUOTA_EXHAUSTED] = { 429, "insufficient_quota",
	    "insufficient_quota", "rate_limit_error" },
	[LLMGATE_AUTH] = { 502, "server_error", "upstream_auth", "api_error" },
	[LLMGATE_PERMISSION] = { 502, "server_error", "upstream_permission",
	    "api_error" },
	[LLMGATE_NOT_FOUND] = { 404, "invalid_request_error", "model_not_found",
	    "not_found_error" },
	[LLMGATE_CONTEXT_LENGTH] = { 400, "invalid_request_error",
	    "context_length_exceeded", "invalid_request_error" },
	[LLMGATE_CONTENT_FILTER] = { 400, "invalid_request_error",
	    "content_filter", "invalid_request_error" },
	[LLMGATE_BAD_REQUEST] = { 400, "invalid_request_error", "bad_request",
	    "invalid_request_error" },
	[LLMGATE_SCHEMA] = { 502, "server_error", "schema_validation_failed",
	    "api_error" },
	[LLMGATE_CIRCUIT_OPEN] = { 503, "server_error", "circuit_open",
	    "overloaded_error" },
	[LLMGATE_BUDGET_EXHAUSTED] = { 429, "rate_limit_error",
	    "retry_budget_exhausted", "rate_limit_error" },
	[LLMGATE_DEADLINE] = { 504, "server_error", "deadline_exceeded",
	    "timeout_error" },
	[LLMGATE_CANCELLED] = { 503, "server_error", "cancelled", "api_error" },
	[LLMGATE_INVALID_REQUEST] = { 400, "invalid_request_error",
	    "invalid_request", "invalid_request_error" },
	[LLMGATE_INTERNAL] = { 500, "server_error", "internal_error",
	    "api_error" },
	/* Every target's reply turned down by the caller's conditions. */
	[LLMGATE_REJECTED] = { 502, "server_error", "reply_rejected",
	    "api_error" },
};

const struct front_error *
front_http_error_of(enum llmgate_class cls)
{
	/* A class the table lacks must not answer with a status of 0. */
	if ((unsigned)cls >= LLMGATE_CLASS_MAX || front_errors[cls].status == 0)
		cls = LLMGATE_INTERNAL;
	return &front_errors[cls];
}

/*
 * The attempt list as JSON text: the body's llmgate.attempts, the
 * x-llmgate-attempts header (with_messages 0 when it would be long).
 */
void
front_http_attempts_text(struct jwrite *w, const char *key,
    const struct llmgate_result *res, int with_messages)
{
	const struct llmgate_attempt *at;
	const char *cls;
	size_t i;

	jwrite_open(w, key, '[');
	for (i = 0; res != NULL && i < res->nattempts; i++) {
		at = &res->attempts[i];
		cls = llmgate_class_name(at->cls);
		jwrite_open(w, NULL, '{');
		jwrite_str(w, "target", at->target != NULL ? at->target : "");
		jwrite_str(w, "class", cls != NULL ? cls : "?");
		jwrite_int(w, "status", at->status);
		jwrite_int(w, "ms", (int)at->ms);
		jwrite_int(w, "waited_ms", (int)at->waited_ms);
		if (with_messages && at->message != NULL &&
		    at->cls != LLMGATE_OK)
			jwrite_str(w, "message", at->message);
		if (at->skipped)
			jwrite_bool(w, "skipped", 1);
		jwrite_close(w, '}');
	}
	jwrite_close(w, ']');
}

/* A success's llmgate field: {"target", "attempts"}. */
void
front_http_llmgate_text(struct jwrite *w, const struct llmgate_result *res)
{
	jwrite_open(w, "llmgate", '{');
	jwrite_str(w, "target", res->target);
	front_http_attempts_text(w, "attempts", res, 1);
	jwrite_close(w, '}');
}

/*
 * One header line. Bytes that would end the line (a model name is the
 * caller's) become spaces.
 */
static void
front_http_header(struct buf *out, const char *name, const char *value)
{
	size_t at;

	buf_addstr(out, name);
	buf_add(out, ": ", 2);
	at = out->len;
	buf_addstr(out, value);
	for (; at < out->len; at++) {
		/* No line breaks, nor other controls a strict client
		 * refuses a response for. */
		if ((unsigned char)out->data[at] < 0x20 ||
		    out->data[at] == 0x7f)
			out->data[at] = ' ';
	}
	buf_add(out, "\r\n", 2);
}

/* x-llmgate-target and x-llmgate-attempts (messages left out if long). */
static void
front_http_result_headers(struct buf *out, const struct llmgate_result *res)
{
	struct buf a = { NULL, 0, 0 };
	struct jwrite w;

	if (res == NULL)
		return;
	if (res->target != NULL)
		front_http_header(out, "x-llmgate-target", res->target);
	jwrite_init(&w, &a, 1);
	front_http_attempts_text(&w, NULL, res, 1);
	if (a.len > FRONT_HTTP_ATTEMPTS_HDR) {
		buf_reset(&a);
		jwrite_init(&w, &a, 1);
		front_http_attempts_text(&w, NULL, res, 0);
	}
	if (a.len <= FRONT_HTTP_ATTEMPTS_HDR)
		front_http_header(out, "x-llmgate-attempts", a.data);
	buf_free(&a);
}

/* ms until the caller's class budget resets, when that refused res. */
static uint64_t
front_http_budget_wait(const struct front_req *fr,
    const struct llmgate_result *res)
{
	if (res == NULL || res->cls != LLMGATE_BUDGET_EXHAUSTED ||
	    fr->client.ident == NULL)
		return 0;
	return clients_budget_wait(clients_match(cfg, &fr->ident),
	    clients_wall_ms());
}

/*
 * Seconds until a refused call could go, from the daemon's own state of
 * the target that refused: its rate budget and its quota domains', a
 * cooldown or an open breaker.
 */
static unsigned
front_http_retry_after(const struct front_req *fr,
    const struct llmgate_result *res)
{
	const struct llmgate_attempt *at;
	struct target *t;
	uint64_t now = now_ms(), ms = 1000, w;

	/* The caller's client class spent its tokens: until they reset. */
	if ((w = front_http_budget_wait(fr, res)) != 0)
		return (unsigned)((w + 999) / 1000);
	if (res == NULL || res->nattempts == 0)
		return 1;
	at = &res->attempts[res->nattempts - 1];
	/* Only read: a refusal must not make a target (nor keep one). */
	if ((t = target_lookup(at->target)) == NULL)
		return 1;
	w = admission_wait_ms(t, 1, now);
	if (breaker_open_remaining(&t->br, now) > w)
		w = breaker_open_remaining(&t->br, now);
	if (w > ms)
		ms = w;
	return (unsigned)((ms + 999) / 1000);
}

/* Send a whole answer, body's JSON text (taken), and let the request go. */
void
front_http_text(struct front_req *fr, int status, struct buf *body,
    const struct llmgate_result *res)
{
	struct front_wire *w = fr->w;
	struct buf hdrs = { NULL, 0, 0 };
	char ra[16];

	fr->w = NULL;
	if (w == NULL || fr->gone) {
		buf_free(body);
		return;
	}
	front_http_result_headers(&hdrs, res);
	/* A 405 must say which methods the path takes (RFC 9110 15.5.6). */
	if (status == 405 && fr->allow != NULL)
		front_http_header(&hdrs, "Allow", fr->allow);
	if (status == 429 || status == 503 || status == 529) {
		snprintf(ra, sizeof ra, "%u", front_http_retry_after(fr, res));
		front_http_header(&hdrs, "Retry-After", ra);
	}
	buf_add(body, "\n", 1);
	front_wire_answer(w, status, "application/json", buf_cstr(&hdrs),
	    body->data, body->len);
	buf_free(body);
	buf_free(&hdrs);
}

/* A whole answer from a tree (taken). */
void
front_http_json(struct front_req *fr, int status, json_t *body,
    const struct llmgate_result *res)
{
	struct buf text = { NULL, 0, 0 };

	if (jdump_buf(&text, body, JSON_COMPACT) != 0) {
		status = 500;
		buf_addstr(&text,
		    "{\"error\":{\"message\":\"the answer "
		    "could not be encoded\"}}");
	}
	json_decref(body);
	front_http_text(fr, status, &text, res);
}

/*
 * An error answer in the dialect's format: a whole response before the
 * stream began, else an error event that ends it (never a clean end).
 */
void
front_http_fail(struct front_req *fr, enum llmgate_class cls, int status,
    const char *code, const char *msg, const struct llmgate_result *res)
{
	const struct front_error *fe = front_http_error_of(cls);
	struct buf text = { NULL, 0, 0 };
	struct jwrite w;

	if (status == 0)
		status = fe->status;
	if (status == 503 && fr->d->overloaded != 0 &&
	    (cls == LLMGATE_OVERLOADED || cls == LLMGATE_CIRCUIT_OPEN))
		status = fr->d->overloaded;
	if (code == NULL)
		code = front_http_budget_wait(fr, res) != 0 ?
		    "client_budget_exhausted" :
		    fe->code;
	if (fr->started)
		front_http_sse_begin(&text, fr->d->error_event);
	jwrite_init(&w, &text, 0);
	jwrite_open(&w, NULL, '{');
	fr->d->error_body(fr, &w, status, fe, code,
	    msg != NULL ? msg : "error");
	if (res != NULL && fr->d->attach_attempts) {
		jwrite_open(&w, "llmgate", '{');
		front_http_attempts_text(&w, "attempts", res, 1);
		jwrite_close(&w, '}');
	}
	jwrite_close(&w, '}');
	if (fr->started) {
		front_http_sse_text(fr, &text);
		front_http_end(fr);
		return;
	}
	front_http_text(fr, status, &text, res);
}

/* Open the event stream: 200 and its headers, once. */
static void
front_http_sse_start(struct front_req *fr)
{
	if (fr->started || fr->w == NULL)
		return;
	fr->started = 1;
	if (fr->gone)
		return;
	front_wire_stream_start(fr->w, 200, "text/event-stream",
	    "Cache-Control: no-cache\r\n");
}

/* All written: a held upstream transfer may go on. */
void
front_http_drained(struct front_conn *fc)
{
	struct front_req *fr = fc->cur;

	if (fr != NULL && fr->paused && fr->call != NULL) {
		fr->paused = 0;
		call_hold(fr->call, 0);
	}
}

/* Bytes of the request's connection not yet written to the client. */
static size_t
front_http_unread(struct front_req *fr)
{
	if (fr->w == NULL || fr->gone)
		return 0;
	return front_wire_unread(fr->w);
}

/* The client is dropped and its call cancelled (not from here: that
 * frees fr). */
static void
front_http_dropped(struct front_req *fr, const char *why)
{
	log_info("client %s: dropped: %s", fr->fc != NULL ? fr->fc->peer : "?",
	    why);
	fr->dropped = 1;
	event_active(fr->cancel_ev, EV_TIMEOUT, 1);
}

static void front_http_stalled(evutil_socket_t, short, void *);

/* frame_timeout_ms from now: a client past max_output must read by then. */
static void
front_http_stall_arm(struct front_req *fr, size_t unread)
{
	struct timeval tv = { cfg->frame_timeout_ms / 1000,
		(suseconds_t)(cfg->frame_timeout_ms % 1000) * 1000 };

	if (fr->stall_ev == NULL)
		fr->stall_ev = evtimer_new(ev_base, front_http_stalled, fr);
	fr->stall_mark = fr->queued - unread;
	evtimer_add(fr->stall_ev, &tv);
}

/*
 * Past max_output for frame_timeout_ms: a client that read none of its
 * stream meanwhile is dropped, and its call cancelled (not from here:
 * that frees fr); one that read some is given as long again.
 */
static void
front_http_stalled(evutil_socket_t fd, short events, void *arg)
{
	struct front_req *fr = arg;
	size_t unread = front_http_unread(fr);

	if (fr->dropped || unread <= cfg->max_output)
		return;
	if (fr->queued - unread != fr->stall_mark) {
		front_http_stall_arm(fr, unread);
		return;
	}
	front_http_dropped(fr, "not reading its stream");
}

/*
 * Queue one piece of the stream. Past FRONT_HTTP_HIGH unwritten bytes (or
 * half of max_output, if lower) the upstream transfer is held until the
 * client has read it all. Past max_output the client must read some of it
 * within frame_timeout_ms, or it is dropped; at once while the daemon
 * holds more than max_memory.
 */
static void
front_http_chunk(struct front_req *fr, const char *text, size_t len)
{
	size_t before = front_http_unread(fr), unread, high;

	front_wire_stream_write(fr->w, text, len);
	unread = front_http_unread(fr);
	fr->queued += unread - before;
	if (front_wire_over_memory(fr->w)) {
		front_http_dropped(fr,
		    "not reading its stream, and llmgated holds more than "
		    "max_memory");
		return;
	}
	if (unread > cfg->max_output &&
	    (fr->stall_ev == NULL || !evtimer_pending(fr->stall_ev, NULL)))
		front_http_stall_arm(fr, unread);
	high = cfg->max_output / 2 < FRONT_HTTP_HIGH ? cfg->max_output / 2 :
	                                               FRONT_HTTP_HIGH;
	if (fr->call != NULL && !fr->paused && unread > high) {
		fr->paused = 1;
		front_http_holds++;
		call_hold(fr->call, 1);
	}
}

/* Begin an event's text in b: its event: line (event not NULL), "data: ". */
void
front_http_sse_begin(struct buf *b, const char *event)
{
	if (event != NULL) {
		buf_addstr(b, "event: ");
		buf_addstr(b, event);
		buf_add(b, "\n", 1);
	}
	buf_addstr(b, "data: ");
}

/* End the event begun in b and write it now (b's text is taken). */
void
front_http_sse_text(struct front_req *fr, struct buf *b)
{
	buf_add(b, "\n\n", 2);
	front_http_sse_start(fr);
	if (!fr->gone && fr->w != NULL && !fr->dropped)
		front_http_chunk(fr, b->data, b->len);
	buf_free(b);
}

void
front_http_sse_raw(struct front_req *fr, const char *text)
{
	front_http_sse_start(fr);
	if (fr->gone || fr->w == NULL || fr->dropped)
		return;
	front_http_chunk(fr, text, strlen(text));
}

void
front_http_end(struct front_req *fr)
{
	struct front_wire *w = fr->w;

	front_http_sse_start(fr);
	fr->w = NULL;
	if (w == NULL || fr->gone)
		return;
	if (fr->dropped) {
		/* Ending would wait for the unread output: close it now. */
		front_wire_abort(w);
		return;
	}
	front_wire_stream_end(w);
}
