/*
 * fuzz_openai.c: the Chat Completions adapter (OpenAI and the servers
 * that speak its API): parse, classify and stream events on arbitrary
 * bytes, driven by fuzz_provider.c. Then the input as one stream event
 * and as a whole reply, read by openai_event() and openai_parse() (whose
 * fast paths take the common ones) and by openai_event_tree() and
 * openai_parse_tree() alone: each pair must leave the same reply.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

static void
fuzz_text(void *arg, const struct llmgate_chunk *ch)
{
	struct buf *log = arg;

	buf_printf(log, "%d:", ch->tool_index);
	if (ch->text != NULL)
		buf_add(log, ch->text, ch->len);
	buf_addstr(log, "\n");
}

static void
fuzz_same(struct reply *r1, struct buf *log1, struct reply *r2,
    struct buf *log2)
{
	fuzz_assert(log1->len == log2->len &&
	    memcmp(buf_cstr(log1), buf_cstr(log2), log1->len) == 0);
	fuzz_assert(r1->text.len == r2->text.len &&
	    memcmp(buf_cstr(&r1->text), buf_cstr(&r2->text), r1->text.len) ==
	        0);
	fuzz_assert(r1->finish == r2->finish && r1->cls == r2->cls &&
	    r1->done == r2->done);
	fuzz_assert(r1->input_tokens == r2->input_tokens &&
	    r1->output_tokens == r2->output_tokens && r1->ntools == r2->ntools);
	fuzz_assert((r1->message == NULL) == (r2->message == NULL));
	fuzz_assert(
	    r1->message == NULL || strcmp(r1->message, r2->message) == 0);
	reply_free(r1);
	reply_free(r2);
	buf_free(log1);
	buf_free(log2);
}

static void
fuzz_both_ways(const uint8_t *data, size_t size)
{
	struct buf log1 = { 0 }, log2 = { 0 };
	struct reply r1, r2;
	struct sse_event ev;
	char *text;
	size_t off = 0, n = size;
	int rc1, rc2;

	/* What openai_event() and openai_parse() hand on: trimmed. */
	while (off < n && isspace(data[off]))
		off++;
	while (n > off && isspace(data[n - 1]))
		n--;
	if (n == off)
		return;
	if ((text = malloc(size + 1)) == NULL)
		return;
	memcpy(text, data, size);
	text[size] = '\0';

	reply_init(&r1, fuzz_text, &log1);
	reply_init(&r2, fuzz_text, &log2);
	rc1 = provider_openai.parse(&r1, text, size);
	rc2 = openai_parse_tree(&r2, text + off, size - off);
	fuzz_assert(rc1 == rc2);
	fuzz_same(&r1, &log1, &r2, &log2);

	if (n - off != 6 || memcmp(data + off, "[DONE]", 6) != 0) {
		memset(&ev, 0, sizeof ev);
		ev.data = text;
		ev.len = size;
		reply_init(&r1, fuzz_text, &log1);
		reply_init(&r2, fuzz_text, &log2);
		rc1 = provider_openai.event(&r1, &ev);
		rc2 = openai_event_tree(&r2, text + off, n - off);
		fuzz_assert(rc1 == rc2);
		fuzz_same(&r1, &log1, &r2, &log2);
	}
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_provider(&provider_openai, data, size);
	fuzz_both_ways(data, size);
	return 0;
}
