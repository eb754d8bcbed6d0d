/*
 * sse.c: one incremental event-stream parser for every provider, following
 * the WHATWG HTML event-stream rules. libcurl hands over fragments cut
 * anywhere, even inside a CRLF or a UTF-8 sequence, so the parser keeps
 * the unfinished line and event between feeds and dispatches only complete
 * events. Each input byte is looked at once: feeding a stream whole, byte
 * by byte or in any other pieces gives the same events in linear time.
 *
 * At EOF nothing is flushed: a half-built event is dropped, as the spec
 * says, and the caller decides from the end marker whether the stream was
 * cut. sse_free() releases what was buffered.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

void
sse_init(struct sse *sse, sse_cb *cb, void *arg)
{
	memset(sse, 0, sizeof *sse);
	sse->cb = cb;
	sse->arg = arg;
}

void
sse_free(struct sse *sse)
{
	buf_free(&sse->line);
	buf_free(&sse->data);
	buf_free(&sse->event);
	sse->has_data = 0;
	sse->last_cr = 0;
}

static void
sse_clear_event(struct sse *sse)
{
	buf_reset(&sse->data);
	buf_reset(&sse->event);
	sse->has_data = 0;
}

/* A blank line: hand over the pending event if any data line built it. */
static int
sse_dispatch(struct sse *sse)
{
	struct sse_event ev;
	int rc;

	if (!sse->has_data) {
		sse_clear_event(sse);
		return 0;
	}
	memset(&ev, 0, sizeof ev);
	ev.event = sse->event.len != 0 ? sse->event.data : NULL;
	ev.data = buf_cstr(&sse->data);
	ev.len = sse->data.len;
	sse->events++;
	rc = sse->cb(&ev, sse->arg);
	sse_clear_event(sse);
	return rc;
}

/*
 * llama.cpp reports a failure mid-stream as "error: {json}" rather than as
 * a data line, so it is passed on at once without waiting for a blank line
 * and without touching the event being built.
 */
static int
sse_dispatch_error(struct sse *sse, const char *value, size_t vlen)
{
	struct sse_event ev;
	struct buf tmp = { NULL, 0, 0 };
	int rc;

	/* The value points into a line that is not NUL-terminated. */
	buf_add(&tmp, value, vlen);
	memset(&ev, 0, sizeof ev);
	ev.event = NULL;
	ev.data = tmp.data;
	ev.len = tmp.len;
	ev.error_field = 1;
	sse->events++;
	rc = sse->cb(&ev, sse->arg);
	buf_free(&tmp);
	return rc;
}

/* One complete line, without its terminator. */
static int
sse_line(struct sse *sse, const char *line, size_t len)
{
	const char *colon, *value;
	size_t nlen, vlen;

	sse->activity++;

	/* The spec allows one byte order mark at the start of the stream. */
	if (sse->activity == 1 && len >= 3 &&
	    memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}

	if (len == 0)
		return sse_dispatch(sse);
	if (line[0] == ':')
		return 0; /* comment: keep-alive, only activity */

	if ((colon = memchr(line, ':', len)) != NULL) {
		nlen = colon - line;
		value = colon + 1;
		vlen = len - nlen - 1;
		if (vlen != 0 && *value == ' ') {
			value++;
			vlen--;
		}
	} else {
		nlen = len;
		value = "";
		vlen = 0;
	}

	if (nlen == 4 && memcmp(line, "data", 4) == 0) {
		if (sse->data.len + vlen + 1 > SSE_MAX_EVENT)
			return SSE_TOO_LONG;
		if (sse->has_data)
			buf_add(&sse->data, "\n", 1);
		buf_add(&sse->data, value, vlen);
		sse->has_data = 1;
	} else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
		buf_reset(&sse->event);
		buf_add(&sse->event, value, vlen);
	} else if (nlen == 5 && memcmp(line, "error", 5) == 0)
		return sse_dispatch_error(sse, value, vlen);
	/* id, retry and anything unknown are ignored. */
	return 0;
}

/*
 * Lines end at "\n", "\r\n" or a lone "\r". A "\r" ends its line at once;
 * last_cr remembers it so that a "\n" right after, in this feed or the
 * next, is taken as the second half of the same break.
 */
int
sse_feed(struct sse *sse, const char *p, size_t len)
{
	size_t i;
	int rc;

	while (len > 0) {
		if (sse->last_cr) {
			sse->last_cr = 0;
			if (*p == '\n') {
				p++;
				len--;
				continue;
			}
		}

		for (i = 0; i < len; i++) {
			if (p[i] == '\n' || p[i] == '\r')
				break;
		}
		if (sse->line.len + i > SSE_MAX_EVENT)
			return SSE_TOO_LONG;
		if (i == len) {
			/* Unfinished: keep it, copying only the new bytes. */
			buf_add(&sse->line, p, len);
			return 0;
		}

		sse->last_cr = (p[i] == '\r');
		if (sse->line.len == 0)
			rc = sse_line(sse, p, i);
		else {
			buf_add(&sse->line, p, i);
			rc = sse_line(sse, sse->line.data, sse->line.len);
			buf_reset(&sse->line);
		}
		p += i + 1;
		len -= i + 1;
		if (rc != 0)
			return rc;
	}
	return 0;
}
