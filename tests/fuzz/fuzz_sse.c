/*
 * fuzz_sse.c: the event-stream parser on arbitrary bytes. The input is
 * parsed twice, in one feed and cut into pieces chosen from the input, and
 * the two must give the same events: sse.c promises that any split of the
 * bytes parses alike. Some inputs also have the callback stop the stream
 * after a few events, which must stop both runs at the same event.
 */
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

struct fuzz_sse_log {
	struct buf b; /* the events, serialised */
	uint64_t n;
	uint64_t stop_at; /* 0: never stop */
};

static void
fuzz_sse_put(struct buf *b, const char *s, size_t len)
{
	uint64_t n = len;

	buf_add(b, &n, sizeof n);
	if (len != 0)
		buf_add(b, s, len);
}

static int
fuzz_sse_cb(const struct sse_event *ev, void *arg)
{
	struct fuzz_sse_log *log = arg;
	char tag;

	fuzz_assert(ev->data != NULL);
	fuzz_assert(ev->data[ev->len] == '\0');
	fuzz_assert(ev->len <= SSE_MAX_EVENT);
	fuzz_assert(ev->error_field == 0 || ev->error_field == 1);
	fuzz_assert(!ev->error_field || ev->event == NULL);

	tag = ev->event == NULL ? 'n' : 'e';
	if (ev->error_field)
		tag = 'x';
	buf_add(&log->b, &tag, 1);
	if (ev->event != NULL)
		fuzz_sse_put(&log->b, ev->event, strlen(ev->event));
	fuzz_sse_put(&log->b, ev->data, ev->len);

	log->n++;
	if (log->stop_at != 0 && log->n == log->stop_at)
		return 7;
	return 0;
}

/* Feed in pieces from rng, or all at once without one; returns rc. */
static int
fuzz_sse_run(const char *p, size_t size, struct fuzz_rng *rng,
    struct fuzz_sse_log *log)
{
	struct sse sse;
	size_t off, n;
	int rc = 0;

	sse_init(&sse, fuzz_sse_cb, log);
	if (rng == NULL)
		rc = sse_feed(&sse, p, size);
	else {
		for (off = 0; off < size; off += n) {
			n = fuzz_rng_chunk(rng, size - off);
			if ((rc = sse_feed(&sse, p + off, n)) != 0)
				break;
		}
	}
	fuzz_assert(sse.events == log->n);
	sse_free(&sse);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_sse_log whole, split;
	struct fuzz_rng rng;
	uint64_t x;
	int rc1, rc2;

	fuzz_rng_init(&rng, data, size);
	memset(&whole, 0, sizeof whole);
	memset(&split, 0, sizeof split);
	x = fuzz_rng_next(&rng);
	if ((x & 3) == 0)
		whole.stop_at = split.stop_at = 1 + (x >> 8) % 8;

	rc1 = fuzz_sse_run((const char *)data, size, NULL, &whole);
	rc2 = fuzz_sse_run((const char *)data, size, &rng, &split);
	fuzz_assert(rc1 == 0 || rc1 == 7 || rc1 == SSE_TOO_LONG);
	if (rc1 != rc2 || whole.n != split.n || whole.b.len != split.b.len ||
	    (whole.b.len != 0 &&
	        memcmp(whole.b.data, split.b.data, whole.b.len) != 0))
		fuzz_fail("split feeds differ: rc %d/%d, %ju/%ju events", rc1,
		    rc2, (uintmax_t)whole.n, (uintmax_t)split.n);

	buf_free(&whole.b);
	buf_free(&split.b);
	return 0;
}
