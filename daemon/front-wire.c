/*
 * front-wire.c: the HTTP/1.1 connections of the HTTP front. http-parser
 * (the nodejs one, as Debian ships it) parses; this file reads, keeps
 * requests of a connection in order, answers and closes.
 *
 * One EV_READ event per connection stays for its whole life: reading goes
 * on while a request is answered, which is how a client that hangs up
 * mid-call is seen at once (its call is cancelled); bytes it sends meanwhile
 * (a pipelined request) wait, unparsed, until the answer is out, and only
 * past the request size limits does reading stop. Answers are written at
 * once, head and body in one write; EV_WRITE is armed only while the
 * socket does not take all of it. What waits unwritten counts in
 * max_memory (quota_output()), as native replies do. A connection must
 * bring each whole request within frame_timeout_ms from its accept or from
 * the end of the request before, and an idle kept-alive one is closed
 * after as long.
 *
 * The front (front-http.c) learns of a connection at its accept
 * (front_http_conn()), of each whole request (front_http_request()) and
 * of its end (front_http_closed()); it answers with front_wire_answer()
 * or a stream, and says the request is over with front_wire_next(). A
 * connection is freed only from its own events, never inside a caller's
 * stack: a failed write marks it dead and a deferred event ends it.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "llmgated.h"

#define FRONT_WIRE_READ      16384        /* bytes per read() */
#define FRONT_WIRE_LINGER_MS 2000         /* after our close, for the peer's */
#define FRONT_WIRE_KEEP      (256 * 1024) /* a buffer kept between requests */

/* One request as it is parsed: its line, headers and body. */
struct front_wire_msg {
	http_parser p;
	struct buf url;
	struct buf hdr; /* name\0value\0 pairs */
	struct buf body;
	uint32_t off[FRONT_WIRE_HEADERS_MAX][2]; /* name, value in hdr */
	size_t nhdr;
	int in_value; /* the last piece was a value */
	size_t head;  /* bytes of line and headers */
	size_t max_body;
	int status;   /* an error's answer: 400, 413, 431 */
	int url_done; /* the request line is whole: url is its path */
	int complete;
	int trailers; /* past the head: a chunked body's trailers */
	int expect;   /* Expect: 100-continue, body to come */
	int keep;     /* keep-alive after this one */
};

struct front_wire {
	int fd;
	struct front_conn *fc; /* NULL: lingering after our close */
	struct front_wire_msg m;
	struct buf in; /* read, not yet parsed */
	struct buf out;
	size_t out_off;   /* written of out */
	uint64_t written; /* ever: is a slow reader reading? */
	uint64_t mark;    /* written, at the deadline's last firing */
	size_t counted;   /* unwritten bytes of out in quota_output() */
	struct event *rev, *wev, *deadline, *later;
	int busy;      /* a request is being answered */
	int stopped;   /* reading stopped: too much buffered */
	int closing;   /* close once the answer is out */
	int dead;      /* the peer is gone: end it */
	int chunked;   /* the stream's answer */
	int flush_due; /* stream pieces queued: write them this round */
	int head_only; /* a HEAD request: no body in the answer */
	int drained;   /* an answer was written while draining */
	TAILQ_ENTRY(front_wire) entry;
};

static TAILQ_HEAD(, front_wire) front_wires = TAILQ_HEAD_INITIALIZER(
    front_wires);

/* Trim a value's trailing blanks once it is whole. */
static void
front_wire_value_end(struct front_wire_msg *m)
{
	if (!m->in_value || m->nhdr == 0)
		return;
	while (m->hdr.len > m->off[m->nhdr - 1][1] &&
	    (m->hdr.data[m->hdr.len - 1] == ' ' ||
	        m->hdr.data[m->hdr.len - 1] == '\t'))
		m->hdr.len--;
	buf_add(&m->hdr, "", 1);
}

static int
front_wire_grew(struct front_wire_msg *m, size_t len)
{
	m->head += len;
	if (m->head > FRONT_WIRE_HEAD_MAX) {
		m->status = 431;
		return -1;
	}
	return 0;
}

static int
front_wire_on_begin(http_parser *p)
{
	struct front_wire_msg *m = p->data;

	buf_reset(&m->url);
	buf_reset(&m->hdr);
	/* A large body's room is not kept for the small ones after it. */
	if (m->body.cap > FRONT_WIRE_KEEP)
		buf_free(&m->body);
	buf_reset(&m->body);
	m->nhdr = 0;
	m->in_value = 0;
	m->head = 0;
	m->url_done = 0;
	m->complete = 0;
	m->trailers = 0;
	m->expect = 0;
	return 0;
}

static int
front_wire_on_url(http_parser *p, const char *at, size_t len)
{
	struct front_wire_msg *m = p->data;

	if (front_wire_grew(m, len) != 0)
		return -1;
	buf_add(&m->url, at, len);
	return 0;
}

static int
front_wire_userinfo(struct front_wire_msg *m, const struct http_parser_url *u)
{
	if (!(u->field_set & (1 << UF_USERINFO)))
		return 0;
	m->status = 400;
	return -1;
}

/*
 * The request line is whole. A target in absolute form (RFC 9112 3.2.2,
 * "http://host:port/v1/messages", which a server must take) becomes its
 * path and query, as http-parser's URL parser splits it; origin form
 * ("/...") is left as it is. One with userinfo ("http://user@host/")
 * is refused (-1, 400): no sender may write it, and RFC 9110 4.2.4 asks
 * a recipient to take it as an error (it hides the authority).
 */
static int
front_wire_url_end(struct front_wire_msg *m)
{
	struct http_parser_url u;
	size_t from, to, lead;

	m->url_done = 1;
	if (m->url.len == 0 || m->url.data[0] == '/' || m->url.data[0] == '*')
		return 0;
	http_parser_url_init(&u);
	if (http_parser_parse_url(m->url.data, m->url.len, 0, &u) != 0)
		return 0;
	/*
	 * The path, and the query after its '?' if any. No path
	 * ("http://host" or "http://host?q") is "/" (RFC 9112 3.2.1).
	 */
	lead = !(u.field_set & (1 << UF_PATH));
	if (!lead)
		from = u.field_data[UF_PATH].off;
	else if (u.field_set & (1 << UF_QUERY))
		from = (size_t)u.field_data[UF_QUERY].off - 1;
	else
		from = m->url.len;
	to = lead ? from : from + u.field_data[UF_PATH].len;
	if (u.field_set & (1 << UF_QUERY))
		to = (size_t)u.field_data[UF_QUERY].off +
		    u.field_data[UF_QUERY].len;
	/* Shorter than it was: "http://" and a host go. */
	memmove(m->url.data + lead, m->url.data + from, to - from);
	m->url.data[0] = '/';
	m->url.len = lead + to - from;
	m->url.data[m->url.len] = '\0';
	/* Refused with its path known: in the dialect of the path. */
	return front_wire_userinfo(m, &u);
}

static int
front_wire_on_field(http_parser *p, const char *at, size_t len)
{
	struct front_wire_msg *m = p->data;

	if (!m->url_done && front_wire_url_end(m) != 0)
		return -1;
	if (front_wire_grew(m, len) != 0)
		return -1;
	/* Trailers are not headers: they must not name the caller. */
	if (m->trailers)
		return 0;
	if (m->in_value || m->nhdr == 0) {
		front_wire_value_end(m);
		if (m->nhdr == FRONT_WIRE_HEADERS_MAX) {
			m->status = 431;
			return -1;
		}
		m->off[m->nhdr][0] = (uint32_t)m->hdr.len;
		m->off[m->nhdr][1] = (uint32_t)m->hdr.len;
		m->nhdr++;
		m->in_value = 0;
	}
	buf_add(&m->hdr, at, len);
	return 0;
}

static int
front_wire_on_value(http_parser *p, const char *at, size_t len)
{
	struct front_wire_msg *m = p->data;

	if (front_wire_grew(m, len) != 0)
		return -1;
	if (m->trailers)
		return 0;
	if (m->nhdr == 0)
		return -1;
	if (!m->in_value) {
		buf_add(&m->hdr, "", 1);
		m->off[m->nhdr - 1][1] = (uint32_t)m->hdr.len;
		m->in_value = 1;
	}
	buf_add(&m->hdr, at, len);
	return 0;
}

/* A header's value by name; lengths first: a request is asked for about
 * a dozen names, most of them absent. */
static const char *
front_wire_msg_header(const struct front_wire_msg *m, const char *name)
{
	size_t i, n = strlen(name) + 1;

	for (i = 0; i < m->nhdr; i++) {
		if (m->off[i][1] - m->off[i][0] == n &&
		    strcasecmp(m->hdr.data + m->off[i][0], name) == 0)
			return m->hdr.data + m->off[i][1];
	}
	return NULL;
}

static int
front_wire_on_headers(http_parser *p)
{
	struct front_wire_msg *m = p->data;
	const char *v;

	if (!m->url_done && front_wire_url_end(m) != 0)
		return -1;
	if (m->nhdr != 0 && !m->in_value) {
		/* A name whose value never came: empty. */
		buf_add(&m->hdr, "", 1);
		m->off[m->nhdr - 1][1] = (uint32_t)m->hdr.len;
		m->in_value = 1;
	}
	front_wire_value_end(m);
	m->trailers = 1;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > m->max_body) {
		m->status = 413;
		return -1;
	}
	m->keep = http_should_keep_alive(p) && !p->upgrade;
	if ((v = front_wire_msg_header(m, "Expect")) != NULL &&
	    strcasecmp(v, "100-continue") == 0 && p->http_major == 1 &&
	    p->http_minor >= 1 &&
	    ((p->flags & F_CHUNKED) ||
	        ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)))
		m->expect = 1;
	return 0;
}

static int
front_wire_on_body(http_parser *p, const char *at, size_t len)
{
	struct front_wire_msg *m = p->data;

	if (m->body.len > m->max_body || len > m->max_body - m->body.len) {
		m->status = 413;
		return -1;
	}
	buf_add(&m->body, at, len);
	return 0;
}

static int
front_wire_on_complete(http_parser *p)
{
	struct front_wire_msg *m = p->data;

	m->complete = 1;
	m->keep = http_should_keep_alive(p) && !p->upgrade;
	/* One at a time: what follows waits for this one's answer. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings front_wire_settings = {
	.on_message_begin = front_wire_on_begin,
	.on_url = front_wire_on_url,
	.on_header_field = front_wire_on_field,
	.on_header_value = front_wire_on_value,
	.on_headers_complete = front_wire_on_headers,
	.on_body = front_wire_on_body,
	.on_message_complete = front_wire_on_complete,
};

static void
front_wire_msg_init(struct front_wire_msg *m, size_t max_body)
{
	memset(m, 0, sizeof *m);
	http_parser_init(&m->p, HTTP_REQUEST);
	m->p.data = m;
	m->max_body = max_body;
}

static void
front_wire_msg_clear(struct front_wire_msg *m)
{
	buf_free(&m->url);
	buf_free(&m->hdr);
	buf_free(&m->body);
}

/*
 * Feed bytes: 1 when a whole request is there (*used: its bytes; call
 * again with the rest after front_wire_msg_next()), 0 when more are
 * needed (all used), -1 when they are not a request one can answer
 * (m->status says how: 400, 413, 431).
 */
static int
front_wire_msg_feed(struct front_wire_msg *m, const char *data, size_t len,
    size_t *used)
{
	enum http_errno e;

	*used = http_parser_execute(&m->p, &front_wire_settings, data, len);
	e = HTTP_PARSER_ERRNO(&m->p);
	if (m->complete)
		return 1;
	if (e == HPE_OK && *used == len)
		return 0;
	if (m->status == 0)
		m->status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
	return -1;
}

/* The request answered: on to the next one. */
static void
front_wire_msg_next(struct front_wire_msg *m)
{
	m->complete = 0;
	http_parser_pause(&m->p, 0);
}

struct front_wire_msg *
front_wire_msg_new(size_t max_body)
{
	struct front_wire_msg *m = xmalloc(sizeof *m);

	front_wire_msg_init(m, max_body);
	return m;
}

void
front_wire_msg_free(struct front_wire_msg *m)
{
	front_wire_msg_clear(m);
	free(m);
}

int
front_wire_msg_parse(struct front_wire_msg *m, const char *data, size_t len,
    size_t *used, int *status)
{
	int rc;

	if (m->complete)
		front_wire_msg_next(m);
	rc = front_wire_msg_feed(m, data, len, used);
	*status = m->status;
	return rc;
}

const char *
front_wire_msg_get(const struct front_wire_msg *m, const char *name,
    const char **path, const char **body, size_t *len)
{
	if (path != NULL)
		*path = buf_cstr(&m->url);
	if (body != NULL) {
		*body = buf_cstr(&m->body);
		*len = m->body.len;
	}
	return name != NULL ? front_wire_msg_header(m, name) : NULL;
}

/* The request being answered: its method, path, a header, the body. */
const char *
front_wire_method(const struct front_wire *w)
{
	return http_method_str((enum http_method)w->m.p.method);
}

const char *
front_wire_path(const struct front_wire *w)
{
	return buf_cstr(&w->m.url);
}

const char *
front_wire_header(const struct front_wire *w, const char *name)
{
	return w != NULL ? front_wire_msg_header(&w->m, name) : NULL;
}

const char *
front_wire_body(const struct front_wire *w, size_t *len)
{
	*len = w->m.body.len;
	return buf_cstr(&w->m.body);
}

/*
 * The unwritten output counts in max_memory (quota.c) as native replies
 * queued do: brought up to date after each change of out.
 */
static void
front_wire_account(struct front_wire *w)
{
	size_t now = w->out.len - w->out_off;

	quota_output(now, w->counted);
	w->counted = now;
}

/* Every fd event and the deferred one; the connection is freed here only. */
static void
front_wire_free(struct front_wire *w)
{
	TAILQ_REMOVE(&front_wires, w, entry);
	event_free(w->rev);
	event_free(w->wev);
	event_free(w->deadline);
	event_free(w->later);
	close(w->fd);
	front_wire_msg_clear(&w->m);
	buf_free(&w->in);
	buf_free(&w->out);
	w->out_off = 0;
	front_wire_account(w);
	free(w);
}

/* The front lets the connection go (its request, if any, detached). */
static void
front_wire_release(struct front_wire *w)
{
	struct front_conn *fc = w->fc;

	if (fc == NULL)
		return;
	w->fc = NULL;
	fc->w = NULL;
	front_http_closed(fc);
}

static void
front_wire_end(struct front_wire *w)
{
	front_wire_release(w);
	front_wire_free(w);
}

static void
front_wire_arm(struct front_wire *w, unsigned ms)
{
	struct timeval tv = { ms / 1000, (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(w->deadline, &tv);
}

/*
 * Our side is done: the front forgets the connection at once; the socket
 * is shut for writing and read until the peer closes it too (or a short
 * while), so that bytes it still sent do not reset the connection before
 * it read our last answer.
 */
static void
front_wire_linger(struct front_wire *w)
{
	front_wire_release(w);
	(void)shutdown(w->fd, SHUT_WR);
	event_del(w->wev);
	if (w->stopped) {
		w->stopped = 0;
		event_add(w->rev, NULL);
	}
	front_wire_arm(w,
	    cfg->frame_timeout_ms < FRONT_WIRE_LINGER_MS ?
	        cfg->frame_timeout_ms :
	        FRONT_WIRE_LINGER_MS);
}

/* Write what is queued now; EV_WRITE only for what the socket refuses. */
static void
front_wire_flush(struct front_wire *w)
{
	ssize_t n;

	front_wire_account(w);
	while (w->out_off < w->out.len) {
		n = send(w->fd, w->out.data + w->out_off,
		    w->out.len - w->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			w->out_off += (size_t)n;
			w->written += (uint64_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!event_pending(w->wev, EV_WRITE, NULL))
				event_add(w->wev, NULL);
			front_wire_account(w);
			return;
		}
		/* Gone: ended from its own event, not from the caller's. */
		w->dead = 1;
		buf_reset(&w->out);
		w->out_off = 0;
		front_wire_account(w);
		event_active(w->later, EV_TIMEOUT, 1);
		return;
	}
	if (w->out.cap > FRONT_WIRE_KEEP)
		buf_free(&w->out);
	buf_reset(&w->out);
	w->out_off = 0;
	front_wire_account(w);
	if (event_pending(w->wev, EV_WRITE, NULL)) {
		/* What waited is out: a held upstream may go on (from the
		 * loop, not from this writer's stack). */
		event_del(w->wev);
		event_active(w->later, EV_TIMEOUT, 1);
	}
}

size_t
front_wire_unread(const struct front_wire *w)
{
	return w != NULL ? w->out.len - w->out_off : 0;
}

/*
 * Past max_output unread while the daemon holds more than max_memory: a
 * client that does not read is dropped at once, as on the native socket.
 */
int
front_wire_over_memory(const struct front_wire *w)
{
	return front_wire_unread(w) > cfg->max_output && cfg->max_memory != 0 &&
	    quota_held() > cfg->max_memory;
}

static const char *
front_wire_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 529:
		return "Overloaded";
	default:
		return "Status";
	}
}

/* "Date: ...", made once a second. */
static const char *
front_wire_date(void)
{
	static char date[64];
	static time_t made;
	time_t now = time(NULL);
	struct tm tm;

	if (now != made || date[0] == '\0') {
		made = now;
		gmtime_r(&now, &tm);
		strftime(date, sizeof date,
		    "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	}
	return date;
}

/*
 * The status line and headers into the output: clen is the body's length,
 * or -1 for a stream (chunked, or up to the close for HTTP/1.0).
 */
static void
front_wire_head(struct front_wire *w, int status, const char *ctype,
    const char *extra, long long clen)
{
	int old = w->m.p.http_major == 1 && w->m.p.http_minor == 0;
	const char *reason = front_wire_reason(status);
	char num[24], *p;
	size_t n;

	/*
	 * Draining: the answer closes the connection, unless a request
	 * already read waits behind it; that one is answered too (refused
	 * as a new call, front_http_request()), and its answer closes.
	 */
	if (server_draining()) {
		if (w->drained || w->in.len == 0)
			w->m.keep = 0;
		w->drained = 1;
	}
	if (clen < 0 && old)
		w->m.keep = 0;
	w->chunked = clen < 0 && !old;
	/* Plain copies: this is every answer's cost. */
	p = num + sizeof num;
	*--p = '\0';
	do {
		*--p = (char)('0' + status % 10);
		status /= 10;
	} while (status != 0 && p > num);
	buf_add(&w->out, "HTTP/1.1 ", 9);
	buf_addstr(&w->out, p);
	buf_add(&w->out, " ", 1);
	buf_addstr(&w->out, reason);
	buf_addstr(&w->out, "\r\nContent-Type: ");
	buf_addstr(&w->out, ctype);
	buf_addstr(&w->out, "\r\nx-should-retry: false\r\n");
	buf_addstr(&w->out, extra);
	buf_addstr(&w->out, front_wire_date());
	if (clen >= 0) {
		p = num + sizeof num;
		*--p = '\0';
		n = (size_t)clen;
		do {
			*--p = (char)('0' + n % 10);
			n /= 10;
		} while (n != 0 && p > num);
		buf_addstr(&w->out, "Content-Length: ");
		buf_addstr(&w->out, p);
		buf_add(&w->out, "\r\n", 2);
	} else if (w->chunked)
		buf_addstr(&w->out, "Transfer-Encoding: chunked\r\n");
	if (!w->m.keep)
		buf_addstr(&w->out, "Connection: close\r\n");
	else if (old)
		buf_addstr(&w->out, "Connection: keep-alive\r\n");
	buf_add(&w->out, "\r\n", 2);
}

/*
 * A whole answer: status, Content-Type, extra headers (whole lines),
 * the body; written at once with its head.
 */
void
front_wire_answer(struct front_wire *w, int status, const char *ctype,
    const char *extra, const char *body, size_t len)
{
	if (w == NULL || w->dead || w->fc == NULL)
		return;
	front_wire_head(w, status, ctype, extra != NULL ? extra : "",
	    (long long)len);
	if (!w->head_only)
		buf_add(&w->out, body, len);
	front_wire_flush(w);
	if (front_wire_over_memory(w)) {
		log_info("HTTP client %s: dropped: not reading its answer, "
		         "and llmgated holds more than max_memory",
		    w->fc->peer);
		front_wire_abort(w);
	}
}

/*
 * A stream's piece, written at the end of the loop's current round: the
 * events one upstream read brings leave in one write, not one each. A
 * socket that is full takes them when EV_WRITE says so.
 */
static void
front_wire_push(struct front_wire *w)
{
	front_wire_account(w);
	if (w->flush_due || event_pending(w->wev, EV_WRITE, NULL))
		return;
	w->flush_due = 1;
	event_active(w->later, EV_TIMEOUT, 1);
}

/* A stream's head: its pieces follow with front_wire_stream_write(). */
void
front_wire_stream_start(struct front_wire *w, int status, const char *ctype,
    const char *extra)
{
	if (w == NULL || w->dead || w->fc == NULL)
		return;
	front_wire_head(w, status, ctype, extra != NULL ? extra : "", -1);
	front_wire_push(w);
}

void
front_wire_stream_write(struct front_wire *w, const char *data, size_t len)
{
	if (w == NULL || w->dead || w->fc == NULL || len == 0 || w->head_only)
		return;
	if (w->out_off != 0 && w->out_off >= w->out.len / 2) {
		memmove(w->out.data, w->out.data + w->out_off,
		    w->out.len - w->out_off);
		w->out.len -= w->out_off;
		w->out_off = 0;
	}
	if (w->chunked)
		buf_printf(&w->out, "%zx\r\n", len);
	buf_add(&w->out, data, len);
	if (w->chunked)
		buf_add(&w->out, "\r\n", 2);
	front_wire_push(w);
}

void
front_wire_stream_end(struct front_wire *w)
{
	if (w == NULL || w->dead || w->fc == NULL || w->head_only)
		return;
	if (w->chunked) {
		buf_add(&w->out, "0\r\n\r\n", 5);
		front_wire_push(w);
	}
}

/* Close now, whatever is unwritten (a client that does not read). */
void
front_wire_abort(struct front_wire *w)
{
	if (w == NULL || w->dead)
		return;
	w->dead = 1;
	buf_reset(&w->out);
	w->out_off = 0;
	front_wire_account(w);
	event_active(w->later, EV_TIMEOUT, 1);
}

/*
 * An answer the front never saw the request of, in the dialect of its
 * path when the request line was read before the error (it always is for
 * 413 and 431 past the headers): Anthropic's error format on
 * /v1/messages, else OpenAI's.
 */
static void
front_wire_refuse(struct front_wire *w, int status)
{
	const char *url = buf_cstr(&w->m.url);
	const char *msg = status == 413 ? "the request body is too large" :
	    status == 431 ? "the request's headers are too large" :
	                    "not an HTTP request llmgated understands";
	char body[200];
	int n;

	if (w->m.url_done && front_path_is(url, "/v1/messages"))
		n = snprintf(body, sizeof body,
		    "{\"type\":\"error\",\"error\":{\"type\":\"%s\","
		    "\"message\":\"%s\"}}\n",
		    status == 413 ? "request_too_large" :
		                    "invalid_request_error",
		    msg);
	else
		n = snprintf(body, sizeof body,
		    "{\"error\":{\"message\":\"%s\",\"type\":"
		    "\"invalid_request_error\",\"param\":null,\"code\":"
		    "null}}\n",
		    msg);
	w->m.keep = 0;
	w->head_only = 0;
	front_wire_answer(w, status, "application/json", NULL, body, (size_t)n);
	w->closing = 1;
	event_active(w->later, EV_TIMEOUT, 1);
}

static size_t front_wire_cap(void);

/*
 * Parse what was read, and hand each whole request to the front. Not
 * while an answer is still waiting to be written: a client that sends
 * requests and reads no answers would have them pile up in out without
 * bound; its requests wait in in, and reading stops at front_wire_cap().
 */
static void
front_wire_parse(struct front_wire *w)
{
	size_t used;
	int rc;

	while (!w->busy && !w->closing && !w->dead && w->fc != NULL &&
	    w->out_off == w->out.len && w->in.len != 0) {
		rc = front_wire_msg_feed(&w->m, w->in.data, w->in.len, &used);
		if (used != 0) {
			memmove(w->in.data, w->in.data + used,
			    w->in.len - used);
			w->in.len -= used;
			w->in.data[w->in.len] = '\0';
		}
		if (rc == -1) {
			front_wire_refuse(w, w->m.status);
			return;
		}
		if (rc == 0) {
			if (w->m.expect) {
				w->m.expect = 0;
				buf_addstr(&w->out,
				    "HTTP/1.1 100 Continue\r\n\r\n");
				front_wire_flush(w);
			}
			break; /* the rest has yet to come */
		}
		/* A whole request: its deadline is met. */
		evtimer_del(w->deadline);
		w->busy = 1;
		w->head_only = w->m.p.method == HTTP_HEAD;
		front_http_request(w->fc);
	}
	/* Draining: bytes that are no whole request are not waited for. */
	if (server_draining() && !w->busy && !w->closing && !w->dead &&
	    w->fc != NULL && w->out_off == w->out.len) {
		w->closing = 1;
		event_active(w->later, EV_TIMEOUT, 1);
		return;
	}
	/* Room again for what reading stopped for. */
	if (w->stopped && !w->busy && !w->dead && w->fc != NULL &&
	    w->in.len < front_wire_cap()) {
		w->stopped = 0;
		event_add(w->rev, NULL);
	}
}

/*
 * The request is answered (the front let it go): the next one must be
 * whole within frame_timeout_ms; one already read is parsed from the
 * loop, not from the caller's stack.
 */
void
front_wire_next(struct front_wire *w)
{
	if (w == NULL || !w->busy)
		return;
	w->busy = 0;
	front_wire_msg_next(&w->m);
	if (w->in.len == 0 && w->in.cap > FRONT_WIRE_KEEP)
		buf_free(&w->in);
	/* Nor a large body's room, on a connection that may idle now. */
	if (w->m.body.cap > FRONT_WIRE_KEEP)
		buf_free(&w->m.body);
	if (w->dead)
		return;
	if (!w->m.keep || (server_draining() && w->in.len == 0))
		w->closing = 1;
	if (w->stopped) {
		w->stopped = 0;
		event_add(w->rev, NULL);
	}
	front_wire_arm(w, cfg->frame_timeout_ms);
	if (w->closing || w->in.len != 0)
		event_active(w->later, EV_TIMEOUT, 1);
}

/* The deferred work: end, close or parse on. */
static void
front_wire_later(evutil_socket_t fd, short events, void *arg)
{
	struct front_wire *w = arg;

	if (w->dead) {
		front_wire_end(w);
		return;
	}
	if (w->fc == NULL)
		return;
	if (w->flush_due) {
		w->flush_due = 0;
		front_wire_flush(w);
		if (w->dead) {
			front_wire_end(w);
			return;
		}
	}
	if (w->out_off == w->out.len)
		front_http_drained(w->fc);
	if (w->busy || w->dead)
		return;
	if (w->closing) {
		if (w->out_off == w->out.len)
			front_wire_linger(w);
		return;
	}
	front_wire_parse(w);
}

static void
front_wire_write_ev(evutil_socket_t fd, short events, void *arg)
{
	struct front_wire *w = arg;

	/* Once all is written, the deferred event takes it from there. */
	front_wire_flush(w);
}

/* Over the limits of what a request may hold: read no more for now. */
static size_t
front_wire_cap(void)
{
	return FRONT_WIRE_HEAD_MAX + cfg->max_frame + FRONT_WIRE_READ;
}

static void
front_wire_read_ev(evutil_socket_t fd, short events, void *arg)
{
	struct front_wire *w = arg;
	char sink[4096];
	ssize_t n;

	if (w->fc == NULL) {
		/* Lingering: what comes is dropped until the peer's end. */
		while ((n = read(w->fd, sink, sizeof sink)) == -1 &&
		    errno == EINTR)
			;
		if (n == 0 || (n == -1 && errno != EAGAIN))
			front_wire_free(w);
		return;
	}
	for (;;) {
		if (w->in.len >= front_wire_cap()) {
			/* Busy, or an answer waits to be written (else
			 * the parser would have refused this much). */
			event_del(w->rev);
			w->stopped = 1;
			return;
		}
		n = read(w->fd, buf_reserve(&w->in, FRONT_WIRE_READ),
		    FRONT_WIRE_READ);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;
		w->in.len += (size_t)n;
		w->in.data[w->in.len] = '\0';
		front_wire_parse(w);
		if (w->dead || w->fc == NULL || (size_t)n < FRONT_WIRE_READ)
			return;
	}
	/*
	 * The peer's end (or an error). While a request is answered that
	 * means it went away: its call is cancelled. Between requests, an
	 * answer still being written is finished first.
	 */
	if (!w->busy && w->out_off != w->out.len && !w->dead) {
		event_del(w->rev);
		w->closing = 1;
		return;
	}
	front_wire_end(w);
}

/*
 * No whole request in time: closed. One still writing an answer to a
 * client that reads is given as long again; lingering ends here.
 */
static void
front_wire_late(evutil_socket_t fd, short events, void *arg)
{
	struct front_wire *w = arg;

	if (w->fc == NULL) {
		front_wire_free(w);
		return;
	}
	if (w->busy || w->dead)
		return;
	if (w->out_off != w->out.len) {
		if (w->written != w->mark) {
			w->mark = w->written;
			front_wire_arm(w, cfg->frame_timeout_ms);
			return;
		}
		log_info("HTTP client %s: does not read its answer: closed",
		    w->fc->peer);
		front_wire_end(w);
		return;
	}
	if (!w->closing)
		log_info("HTTP client %s: no whole request within %u ms: "
		         "closed",
		    w->fc->peer, cfg->frame_timeout_ms);
	w->closing = 1;
	front_wire_linger(w);
}

/* A connection accepted for the front's fc. */
struct front_wire *
front_wire_new(int fd, struct front_conn *fc)
{
	struct front_wire *w = xcalloc(1, sizeof *w);

	w->fd = fd;
	w->fc = fc;
	front_wire_msg_init(&w->m, cfg->max_frame);
	w->rev =
	    event_new(ev_base, fd, EV_READ | EV_PERSIST, front_wire_read_ev, w);
	w->wev = event_new(ev_base, fd, EV_WRITE | EV_PERSIST,
	    front_wire_write_ev, w);
	w->deadline = evtimer_new(ev_base, front_wire_late, w);
	w->later = event_new(ev_base, -1, 0, front_wire_later, w);
	if (w->rev == NULL || w->wev == NULL || w->deadline == NULL ||
	    w->later == NULL)
		fatalx("%s: event_new", __func__);
	event_add(w->rev, NULL);
	front_wire_arm(w, cfg->frame_timeout_ms);
	TAILQ_INSERT_TAIL(&front_wires, w, entry);
	return w;
}

/* A new body limit (a reload): for the requests to come. */
void
front_wire_reload(void)
{
	struct front_wire *w;

	TAILQ_FOREACH(w, &front_wires, entry)
		w->m.max_body = cfg->max_frame;
}

/*
 * Draining: idle connections close; busy ones close after their answer.
 * A request read in full behind an answer (pipelined) is answered before
 * the close, refused as a new call (front_wire_parse()).
 */
void
front_wire_drain(void)
{
	struct front_wire *w;

	TAILQ_FOREACH(w, &front_wires, entry) {
		if (w->fc == NULL || w->busy || w->dead)
			continue;
		if (w->in.len == 0)
			w->closing = 1;
		event_active(w->later, EV_TIMEOUT, 1);
	}
}

/* Exit: every connection goes now. */
void
front_wire_shutdown(void)
{
	while (!TAILQ_EMPTY(&front_wires))
		front_wire_end(TAILQ_FIRST(&front_wires));
}
