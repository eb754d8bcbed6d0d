/*
 * reply.c: what one upstream attempt produced. Adapters and the mock fill
 * it; streamed deltas are relayed through the emit callback as they come.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define REPLY_MAX_TOOLS 128

void
reply_init(struct reply *r, reply_emit_cb *emit, void *arg)
{
	memset(r, 0, sizeof *r);
	r->emit = emit;
	r->emit_arg = arg;
	r->cls = LLMGATE_OK;
	header_rl_init(&r->rl);
}

void
reply_free(struct reply *r)
{
	size_t i;

	buf_free(&r->text);
	for (i = 0; i < r->ntools; i++) {
		free(r->tools[i].id);
		free(r->tools[i].name);
		buf_free(&r->tools[i].args);
	}
	free(r->tools);
	free(r->message);
	free(r->stop_sequence);
	free(r->pstate);
	r->stop_sequence = NULL;
	r->tools = NULL;
	r->ntools = 0;
	r->args_len = 0;
	r->message = NULL;
	r->pstate = NULL;
}

void
reply_text(struct reply *r, const char *s, size_t n)
{
	struct llmgate_chunk ch;

	if (n == 0 || r->too_long)
		return;
	/* A stream has no body cap of its own: the same as a whole reply. */
	if (r->text.len + r->args_len + n > REPLY_MAX_TEXT) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "reply text over %u "
		    "bytes",
		    REPLY_MAX_TEXT);
		r->too_long = 1;
		return;
	}
	buf_add(&r->text, s, n);
	if (r->emit == NULL)
		return;
	memset(&ch, 0, sizeof ch);
	ch.text = s;
	ch.len = n;
	ch.tool_index = -1;
	r->emit(r->emit_arg, &ch);
}

/*
 * The slot for an upstream tool-call number. Upstream numbers its calls
 * (OpenAI's tool_calls[].index) only to say which fragments belong
 * together, so a number is a key, not a position: slots are made in the
 * order numbers first appear, and 0, 1, 2 stay 0, 1, 2. A negative or huge
 * number takes the next free slot, rather than being relayed as text (-1
 * means text to clients) or leaving empty calls before it. More than
 * REPLY_MAX_TOOLS calls in one reply is a parse error: -1.
 */
static int
reply_tool_slot(struct reply *r, int64_t key)
{
	size_t i;

	if (key >= 0 && (uint64_t)key < r->ntools && r->tools[key].key == key)
		return (int)key;
	for (i = 0; i < r->ntools; i++) {
		if (r->tools[i].key == key)
			return (int)i;
	}
	if (r->ntools >= REPLY_MAX_TOOLS) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "more than %d tool "
		    "calls in one reply",
		    REPLY_MAX_TOOLS);
		return -1;
	}
	r->tools = xreallocarray(r->tools, r->ntools + 1, sizeof *r->tools);
	memset(&r->tools[r->ntools], 0, sizeof r->tools[r->ntools]);
	r->tools[r->ntools].key = key;
	return (int)r->ntools++;
}

struct reply_tool *
reply_tool(struct reply *r, int64_t key)
{
	int slot;

	if ((slot = reply_tool_slot(r, key)) < 0)
		return NULL;
	return &r->tools[slot];
}

/* "call_", 8 and 16 hex digits, NUL. */
#define REPLY_CALL_ID_SIZE 32

/*
 * Gemini names no tool call (nor do some OpenAI-compatible servers), and a
 * conversation carries every turn's calls:
 * Anthropic refuses a tool_use id that repeats in one request, and OpenAI
 * clients match results to calls by id. So ids are a random tag and a
 * counter's splitmix64 mix (a bijection: none repeats in one daemon), the
 * tag and the counter's random start drawn once, so that restarts differ
 * too. The per-call cost is a few multiplies and one snprintf.
 */
static void
reply_call_id(char *buf, size_t size)
{
	static uint64_t start, n;
	static uint32_t tag;
	static int seeded;
	uint64_t x;

	if (!seeded) {
		arc4random_buf(&start, sizeof start);
		tag = arc4random();
		seeded = 1;
	}
	x = start + n++ * 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	snprintf(buf, size, "call_%08x%016llx", (unsigned)tag,
	    (unsigned long long)x);
}

int
reply_tool_delta(struct reply *r, int64_t key, const char *id, const char *name,
    const char *args, size_t len)
{
	struct reply_tool *t;
	struct llmgate_chunk ch;
	char idbuf[REPLY_CALL_ID_SIZE];
	int slot;

	if (r->too_long || (slot = reply_tool_slot(r, key)) < 0)
		return -1;
	/*
	 * Arguments count with the text: a stream's are not bounded by a
	 * body cap, and the result carries them whole.
	 */
	if (args != NULL && r->text.len + r->args_len + len > REPLY_MAX_TEXT) {
		reply_error(r, LLMGATE_PARSE_ERROR, 0,
		    "reply text and tool-call arguments over %u bytes",
		    REPLY_MAX_TEXT);
		r->too_long = 1;
		return -1;
	}
	t = &r->tools[slot];
	if (id != NULL && *id != '\0' && t->id == NULL) {
		t->id = xstrdup(id);
	} else if (t->id == NULL && t->name == NULL && t->args.len == 0) {
		/*
		 * A call whose first delta names no id (Gemini never does,
		 * nor do some OpenAI-compatible servers): one of ours, since
		 * clients match results to calls by id.
		 */
		reply_call_id(idbuf, sizeof idbuf);
		t->id = xstrdup(idbuf);
		id = t->id;
	}
	if (name != NULL && *name != '\0' && t->name == NULL)
		t->name = xstrdup(name);
	if (args != NULL && len != 0) {
		buf_add(&t->args, args, len);
		r->args_len += len;
	}
	if (r->emit == NULL)
		return 0;
	memset(&ch, 0, sizeof ch);
	ch.tool_index = slot;
	ch.tool_id = id;
	ch.tool_name = name;
	ch.tool_args = args != NULL && len != 0 ? args : NULL;
	r->emit(r->emit_arg, &ch);
	return 0;
}

void
reply_error(struct reply *r, enum llmgate_class cls, uint32_t status,
    const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (r->cls != LLMGATE_OK)
		return;
	r->cls = cls;
	if (status != 0)
		r->status = status;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(r->message);
	/* Upstream text: no key goes on to a client or a log line. */
	r->message = scrub(msg);
	free(msg);
}

enum llmgate_class
reply_class_for_status(uint32_t status)
{
	if (status >= 200 && status < 300)
		return LLMGATE_OK;
	switch (status) {
	case 400:
	case 422:
		return LLMGATE_BAD_REQUEST;
	case 401:
		return LLMGATE_AUTH;
	case 402:
		return LLMGATE_QUOTA_EXHAUSTED;
	case 403:
		return LLMGATE_PERMISSION;
	case 404:
		return LLMGATE_NOT_FOUND;
	case 408:
		return LLMGATE_TIMEOUT;
	case 409:
		return LLMGATE_SERVER_ERROR;
	case 413:
		return LLMGATE_CONTEXT_LENGTH;
	case 429:
		return LLMGATE_RATE_LIMITED;
	case 499:
		return LLMGATE_CANCELLED;
	case 529:
		return LLMGATE_OVERLOADED;
	case 504:
		return LLMGATE_TIMEOUT;
	}
	if (status >= 500)
		return LLMGATE_SERVER_ERROR;
	return LLMGATE_BAD_REQUEST;
}
