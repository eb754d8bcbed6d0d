/*
 * fuzz_provider.c: the driver behind fuzz_openai, fuzz_anthropic and
 * fuzz_gemini. One input is used three ways, as http.c would use it:
 *
 *  - a whole 2xx body for parse();
 *  - an error body for classify(), the HTTP status taken from the first
 *    byte and the body from the rest;
 *  - an event stream, cut into feeds chosen from the input, parsed by
 *    sse.c and each event handed to event() until it asks to stop.
 *
 * Bodies are NUL-terminated as http.c's buffer is. Every chunk an adapter
 * relays is encoded as the chunk frame the daemon would send and decoded
 * again, so that adapter output the wire cannot carry is caught too.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof(a)[0])
#endif

struct fuzz_stream {
	const struct provider_type *pt;
	struct reply *r;
	int stopped;
};

/* Statuses the adapters treat specially first, then a spread of others. */
static const uint32_t fuzz_statuses[] = { 400, 401, 402, 403, 404, 408, 409,
	413, 422, 429, 498, 499, 500, 502, 503, 504, 529, 200, 204, 0, 302,
	599 };

static uint32_t
fuzz_status(uint8_t b)
{
	if (b < nitems(fuzz_statuses))
		return fuzz_statuses[b];
	return 100 + (uint32_t)b * 2;
}

/* What the connection does with a relayed chunk: frame it for a client. */
static void
fuzz_emit(void *arg, const struct llmgate_chunk *ch)
{
	msgpack_sbuffer sb;
	struct proto_msg msg;
	char err[256];
	ssize_t n;

	fuzz_assert(ch->text == NULL || ch->len != 0);
	if (ch->tool_id != NULL)
		(void)strlen(ch->tool_id);
	if (ch->tool_name != NULL)
		(void)strlen(ch->tool_name);
	if (ch->tool_args != NULL)
		(void)strlen(ch->tool_args);

	msgpack_sbuffer_init(&sb);
	proto_enc_chunk(&sb, 1, ch);
	n = proto_frame_len(sb.data, sb.size, PROTO_MAX_FRAME, NULL);
	fuzz_assert(n > 0 && (size_t)n + PROTO_HDR_LEN == sb.size);
	if (proto_decode(sb.data + PROTO_HDR_LEN, (size_t)n, &msg, err,
	        sizeof err) != 0)
		fuzz_fail("relayed chunk does not decode: %s", err);
	fuzz_assert(msg.type == PROTO_CHUNK);
	if (ch->text != NULL) {
		fuzz_assert(msg.u.chunk.len == ch->len);
		fuzz_assert(memcmp(msg.u.chunk.text, ch->text, ch->len) == 0);
	}
	proto_msg_free(&msg);
	msgpack_sbuffer_destroy(&sb);
}

/* What call.c and the client later read out of a finished reply. */
static void
fuzz_reply_check(const struct reply *r)
{
	const struct reply_tool *t;
	size_t i;

	fuzz_assert((int)r->cls >= 0 && r->cls < LLMGATE_CLASS_MAX);
	fuzz_assert((int)r->finish >= 0 && r->finish < LLMGATE_FINISH_MAX);
	fuzz_assert(r->cls == LLMGATE_OK || r->message != NULL);
	if (r->message != NULL)
		(void)strlen(r->message);
	fuzz_assert(r->text.data == NULL || r->text.data[r->text.len] == '\0');
	fuzz_assert(r->ntools <= 128);
	for (i = 0; i < r->ntools; i++) {
		t = &r->tools[i];
		if (t->id != NULL)
			(void)strlen(t->id);
		if (t->name != NULL)
			(void)strlen(t->name);
		fuzz_assert(
		    t->args.data == NULL || t->args.data[t->args.len] == '\0');
	}
	fuzz_assert(r->rl.retry_after_ms >= -1);
}

static int
fuzz_event(const struct sse_event *ev, void *arg)
{
	struct fuzz_stream *fs = arg;

	fuzz_assert(!fs->stopped);
	if (fs->pt->event(fs->r, ev) != 0) {
		fs->stopped = 1;
		return 1;
	}
	return 0;
}

int
fuzz_provider(const struct provider_type *pt, const uint8_t *data, size_t size)
{
	struct reply r;
	struct sse sse;
	struct fuzz_stream fs;
	struct fuzz_rng rng;
	char *body;
	size_t off, n;
	int rc;

	body = malloc(size + 1);
	if (body == NULL)
		return 0;
	if (size != 0)
		memcpy(body, data, size);
	body[size] = '\0';

	/* A whole 2xx body. */
	reply_init(&r, fuzz_emit, NULL);
	r.status = 200;
	(void)pt->parse(&r, body, size);
	fuzz_reply_check(&r);
	reply_free(&r);

	/* An error body under the status its first byte picks. */
	if (size != 0) {
		reply_init(&r, fuzz_emit, NULL);
		r.status = fuzz_status(data[0]);
		pt->classify(&r, r.status, body + 1, size - 1);
		fuzz_reply_check(&r);
		reply_free(&r);
	}

	/* A 2xx event stream, fed in pieces until event() stops it. */
	reply_init(&r, fuzz_emit, NULL);
	r.status = 200;
	fs.pt = pt;
	fs.r = &r;
	fs.stopped = 0;
	sse_init(&sse, fuzz_event, &fs);
	fuzz_rng_init(&rng, data, size);
	for (off = 0; off < size; off += n) {
		n = fuzz_rng_chunk(&rng, size - off);
		if ((rc = sse_feed(&sse, body + off, n)) != 0) {
			fuzz_assert(rc == 1 || rc == SSE_TOO_LONG);
			break;
		}
	}
	sse_free(&sse);
	fuzz_reply_check(&r);
	reply_free(&r);

	free(body);
	return 0;
}
