/*
 * upstream.c: a fast loopback OpenAI Chat Completions server for benchmarks.
 *
 * POST /v1/chat/completions (any path ending in /chat/completions) gets a
 * canned reply: one JSON object, or, when the body asks for "stream": true,
 * a few SSE content chunks, a finish chunk, a usage chunk and [DONE]. The
 * replies are built once at startup so the server costs as little as
 * possible per request; it checks the bearer key and nothing else.
 *
 * -d DELAY_MS holds each reply: a plain reply is sent after the delay, a
 * stream sends its headers and first content chunk at once and the rest
 * after the delay, so held streams are live at every hop (used to measure
 * the daemon's memory per streamed call in flight).
 *
 * -n TOKENS -i INTERVAL_MS makes a stream slow instead: its first token at
 * once, then one every INTERVAL_MS, TOKENS in all, then the finish chunk,
 * usage and [DONE]. Token k (from 0) is the text "wK " (w0 w1 w2 ...), so
 * a client can check it got all of the text exactly once
 * (bench/stream-load). Plain calls are answered at once.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "util.h"
#include <event2/util.h>

#define UP_DEFAULT_KEY     "bench"
#define UP_DEFAULT_TIMEOUT 120
#define UP_MAX_BODY        (1024 * 1024)
#define UP_PATH_SUFFIX     "/chat/completions"
/*
 * The kernel caps it at net.core.somaxconn. libevent's 128 drops SYNs when
 * a thousand held calls connect at once, and the retransmits (1 s, 3 s, 7 s)
 * would show up as latency that is not the daemon's.
 */
#define UP_BACKLOG 4096

#define UP_ID \
	"\"id\":\"chatcmpl-bench\",\"created\":1700000000," \
	"\"model\":\"bench-model\","

static const char up_plain[] =
    "{" UP_ID "\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"Hello from the "
    "bench upstream, a canned reply.\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":8,"
    "\"total_tokens\":17}}";

#define UP_CHUNK(delta, finish) \
	"data: {" UP_ID "\"object\":\"chat.completion.chunk\",\"choices\":" \
	"[{\"index\":0,\"delta\":" delta ",\"finish_reason\":" finish \
	"}]}\n\n"

/* The first chunk carries text, so a client sees output before any delay. */
static const char up_stream_head[] =
    UP_CHUNK("{\"role\":\"assistant\",\"content\":\"Hello\"}", "null");
static const char up_stream_tail[] = UP_CHUNK("{\"content\":\" from the\"}",
    "null") UP_CHUNK("{\"content\":\" bench upstream,\"}", "null")
    UP_CHUNK("{\"content\":\" a canned reply.\"}", "null") UP_CHUNK("{}",
        "\"stop\"") "data: {" UP_ID
                    "\"object\":\"chat.completion.chunk\",\"choices\":[],"
                    "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":8,"
                    "\"total_tokens\":17}}\n\n"
                    "data: [DONE]\n\n";

static const char up_unauthorized[] =
    "{\"error\":{\"message\":\"Incorrect API key provided.\","
    "\"type\":\"invalid_request_error\",\"param\":null,"
    "\"code\":\"invalid_api_key\"}}";
static const char up_not_found[] =
    "{\"error\":{\"message\":\"Unknown path.\",\"type\":"
    "\"invalid_request_error\",\"param\":null,\"code\":null}}";

/* A reply held by -d. */
struct held {
	struct evhttp_request *req;
	struct event *timer;
	int stream;
	int gone;  /* the client went away */
	long sent; /* -n: tokens sent so far */
	TAILQ_ENTRY(held) entry;
};
TAILQ_HEAD(held_list, held);

static struct event_base *up_base;
static struct evhttp *up_http;
static struct held_list up_held = TAILQ_HEAD_INITIALIZER(up_held);
static const char *up_key = UP_DEFAULT_KEY;
static char up_auth[256];
static struct timeval up_delay;
static int up_delayed;
static long up_tokens;                    /* -n */
static const struct timeval *up_interval; /* -i, a common timeout */
static unsigned long long up_served;

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: upstream [-d delay_ms | -n tokens -i interval_ms] "
	    "[-k key] [-p port] [-t seconds]\n");
	exit(1);
}

static void
send_json(struct evhttp_request *req, int status, const char *reason,
    const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evhttp_request_get_output_buffer(req);

	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add_reference(buf, body, len, NULL, NULL);
	evhttp_send_reply(req, status, reason, NULL);
}

/*
 * Whether the JSON body has "stream": true at any level: the bench sends
 * flat bodies, and a false positive would only stream a plain call.
 */
static int
body_streams(struct evbuffer *in)
{
	const char *p, *end;
	size_t len = evbuffer_get_length(in);

	if (len == 0 || (p = (const char *)evbuffer_pullup(in, -1)) == NULL)
		return 0;
	end = p + len;
	while ((p = memmem(p, (size_t)(end - p), "\"stream\"", 8)) != NULL) {
		p += 8;
		while (p < end &&
		    (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
		        *p == ':'))
			p++;
		if ((size_t)(end - p) >= 4 && memcmp(p, "true", 4) == 0)
			return 1;
	}
	return 0;
}

static void
stream_start(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *buf;

	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_send_reply_start(req, 200, "OK");
	if ((buf = evbuffer_new()) == NULL)
		util_fatalx("evbuffer_new failed");
	evbuffer_add_reference(buf, up_stream_head, sizeof up_stream_head - 1,
	    NULL, NULL);
	evhttp_send_reply_chunk(req, buf);
	evbuffer_free(buf);
}

static void
stream_finish(struct evhttp_request *req)
{
	struct evbuffer *buf;

	if ((buf = evbuffer_new()) == NULL)
		util_fatalx("evbuffer_new failed");
	evbuffer_add_reference(buf, up_stream_tail, sizeof up_stream_tail - 1,
	    NULL, NULL);
	evhttp_send_reply_chunk(req, buf);
	evbuffer_free(buf);
	evhttp_send_reply_end(req);
}

static void
held_free(struct held *hd)
{
	TAILQ_REMOVE(&up_held, hd, entry);
	event_free(hd->timer);
	free(hd);
}

/*
 * The connection under a held reply is closing (the daemon cancelled the
 * call). If libevent detached the request it is ours to free; if not, the
 * connection frees it. Either way finish outside libevent's stack.
 */
static void
held_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct held *hd = arg;
	struct timeval tv = { 0, 0 };

	if (evhttp_request_get_connection(hd->req) != NULL)
		hd->req = NULL;
	hd->gone = 1;
	evtimer_add(hd->timer, &tv);
}

static void
held_watch(struct held *hd, int on)
{
	struct evhttp_connection *evcon;

	if ((evcon = evhttp_request_get_connection(hd->req)) == NULL)
		return;
	if (on)
		evhttp_connection_set_closecb(evcon, held_closed_cb, hd);
	else
		evhttp_connection_set_closecb(evcon, NULL, NULL);
}

static void
held_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct held *hd = arg;

	if (hd->gone) {
		if (hd->req != NULL)
			evhttp_request_free(hd->req);
		held_free(hd);
		return;
	}
	/* Unhook first: the reply may free the connection at once. */
	held_watch(hd, 0);
	if (hd->stream)
		stream_finish(hd->req);
	else
		send_json(hd->req, 200, "OK", up_plain, sizeof up_plain - 1);
	held_free(hd);
}

static void
hold(struct evhttp_request *req, int stream)
{
	struct held *hd;

	if ((hd = calloc(1, sizeof *hd)) == NULL)
		util_fatalx("out of memory");
	hd->req = req;
	hd->stream = stream;
	if ((hd->timer = evtimer_new(up_base, held_timer_cb, hd)) == NULL)
		util_fatalx("evtimer_new failed");
	TAILQ_INSERT_TAIL(&up_held, hd, entry);
	if (stream)
		stream_start(req);
	held_watch(hd, 1);
	evtimer_add(hd->timer, &up_delay);
}

/* -n/-i: one content chunk carrying token k. */
static void
drip_send(struct evhttp_request *req, long k, int role)
{
	struct evbuffer *buf;

	if ((buf = evbuffer_new()) == NULL)
		util_fatalx("evbuffer_new failed");
	evbuffer_add_printf(buf,
	    "data: {" UP_ID "\"object\":"
	    "\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
	    "\"delta\":{%s\"content\":\"w%ld \"},"
	    "\"finish_reason\":null}]}\n\n",
	    role ? "\"role\":\"assistant\"," : "", k);
	if (k == up_tokens - 1)
		evbuffer_add_printf(buf,
		    "data: {" UP_ID "\"object\":"
		    "\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
		    "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
		    "data: {" UP_ID "\"object\":\"chat.completion.chunk\","
		    "\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
		    "\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\n"
		    "data: [DONE]\n\n",
		    up_tokens, up_tokens + 9);
	evhttp_send_reply_chunk(req, buf);
	evbuffer_free(buf);
}

static void
drip_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct held *hd = arg;

	if (hd->gone) {
		if (hd->req != NULL)
			evhttp_request_free(hd->req);
		held_free(hd);
		return;
	}
	if (hd->sent == up_tokens - 1) {
		/* Unhook first: the reply may free the connection at once. */
		held_watch(hd, 0);
		drip_send(hd->req, hd->sent, 0);
		evhttp_send_reply_end(hd->req);
		held_free(hd);
		return;
	}
	drip_send(hd->req, hd->sent++, 0);
}

static void
drip(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct held *hd;

	if ((hd = calloc(1, sizeof *hd)) == NULL)
		util_fatalx("out of memory");
	hd->req = req;
	hd->stream = 1;
	if ((hd->timer = event_new(up_base, -1, EV_PERSIST, drip_timer_cb,
	         hd)) == NULL)
		util_fatalx("event_new failed");
	TAILQ_INSERT_TAIL(&up_held, hd, entry);
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_send_reply_start(req, 200, "OK");
	if (up_tokens == 1) {
		hd->sent = 0;
		drip_timer_cb(-1, 0, hd);
		return;
	}
	drip_send(req, 0, 1);
	hd->sent = 1;
	held_watch(hd, 1);
	evtimer_add(hd->timer, up_interval);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req), *auth, *q;
	size_t len;
	int stream;

	if ((q = strchr(uri, '?')) == NULL)
		q = uri + strlen(uri);
	len = (size_t)(q - uri);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST ||
	    len < sizeof UP_PATH_SUFFIX - 1 ||
	    memcmp(q - (sizeof UP_PATH_SUFFIX - 1), UP_PATH_SUFFIX,
	        sizeof UP_PATH_SUFFIX - 1) != 0) {
		send_json(req, 404, "Not Found", up_not_found,
		    sizeof up_not_found - 1);
		return;
	}
	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (*up_key != '\0' && (auth == NULL || strcmp(auth, up_auth) != 0)) {
		send_json(req, 401, "Unauthorized", up_unauthorized,
		    sizeof up_unauthorized - 1);
		return;
	}
	up_served++;

	stream = body_streams(evhttp_request_get_input_buffer(req));
	if (stream && up_tokens > 0) {
		drip(req);
		return;
	}
	if (up_delayed) {
		hold(req, stream);
		return;
	}
	if (stream) {
		stream_start(req);
		stream_finish(req);
	} else
		send_json(req, 200, "OK", up_plain, sizeof up_plain - 1);
}

static void
stop_cb(evutil_socket_t fd, short events, void *arg)
{
	event_base_loopbreak(up_base);
}

static evutil_socket_t
listen_loopback(long port)
{
	struct sockaddr_in sin;
	evutil_socket_t fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		util_fatalx("socket: %s", strerror(errno));
	if (evutil_make_listen_socket_reuseable(fd) != 0 ||
	    evutil_make_socket_nonblocking(fd) != 0 ||
	    evutil_make_socket_closeonexec(fd) != 0)
		util_fatalx("cannot set up the listening socket");
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
		util_fatalx("cannot bind 127.0.0.1:%ld: %s", port,
		    strerror(errno));
	if (listen(fd, UP_BACKLOG) != 0)
		util_fatalx("listen: %s", strerror(errno));
	return fd;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct event *ev_term, *ev_int, *ev_timeout = NULL;
	struct timeval tv;
	struct held *hd;
	long port = 0, timeout = UP_DEFAULT_TIMEOUT;
	long delay = 0, interval = 0;
	struct timeval itv;
	evutil_socket_t fd;
	int ch;

	util_setup("upstream", usage);
	while ((ch = getopt(argc, argv, "d:i:k:n:p:t:")) != -1) {
		switch (ch) {
		case 'd':
			delay = util_parse_num(optarg, 0, 3600 * 1000);
			break;
		case 'i':
			interval = util_parse_num(optarg, 1, 3600 * 1000);
			break;
		case 'n':
			up_tokens = util_parse_num(optarg, 1, 1000000);
			break;
		case 'k':
			up_key = optarg;
			break;
		case 'p':
			port = util_parse_num(optarg, 0, 65535);
			break;
		case 't':
			timeout = util_parse_num(optarg, 0, 86400);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || (up_tokens > 0) != (interval > 0) ||
	    (up_tokens > 0 && delay > 0))
		usage();
	if (snprintf(up_auth, sizeof up_auth, "Bearer %s", up_key) >=
	    (int)sizeof up_auth)
		util_fatalx("key too long");
	up_delayed = delay > 0;
	up_delay.tv_sec = delay / 1000;
	up_delay.tv_usec = (delay % 1000) * 1000;

	signal(SIGPIPE, SIG_IGN);
	util_raise_nofile(-1);
	if ((up_base = event_base_new()) == NULL)
		util_fatalx("event_base_new failed");
	if (up_tokens > 0) {
		/* Thousands of streams tick at the same interval. */
		itv.tv_sec = interval / 1000;
		itv.tv_usec = (interval % 1000) * 1000;
		if ((up_interval = event_base_init_common_timeout(up_base,
		         &itv)) == NULL)
			util_fatalx("event_base_init_common_timeout failed");
	}
	if ((up_http = evhttp_new(up_base)) == NULL)
		util_fatalx("evhttp_new failed");
	evhttp_set_max_body_size(up_http, UP_MAX_BODY);
	evhttp_set_allowed_methods(up_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(up_http, request_cb, NULL);
	/* Already listening: libevent then leaves the backlog alone. */
	fd = listen_loopback(port);
	if (evhttp_accept_socket_with_handle(up_http, fd) == NULL)
		util_fatalx("evhttp_accept_socket_with_handle failed");
	if (getsockname(fd, (struct sockaddr *)&sin, &slen) != 0)
		util_fatalx("getsockname: %s", strerror(errno));
	printf("PORT %d\n", ntohs(sin.sin_port));
	fflush(stdout);

	ev_term = evsignal_new(up_base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(up_base, SIGINT, stop_cb, NULL);
	if (ev_term == NULL || ev_int == NULL)
		util_fatalx("evsignal_new failed");
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	if (timeout > 0) {
		if ((ev_timeout = evtimer_new(up_base, stop_cb, NULL)) == NULL)
			util_fatalx("evtimer_new failed");
		tv.tv_sec = timeout;
		tv.tv_usec = 0;
		evtimer_add(ev_timeout, &tv);
	}

	event_base_dispatch(up_base);
	fprintf(stderr, "upstream: served %llu requests\n", up_served);

	while ((hd = TAILQ_FIRST(&up_held)) != NULL) {
		if (hd->gone && hd->req != NULL)
			evhttp_request_free(hd->req);
		else if (!hd->gone)
			held_watch(hd, 0);
		held_free(hd);
	}
	evhttp_free(up_http);
	event_free(ev_term);
	event_free(ev_int);
	if (ev_timeout != NULL)
		event_free(ev_timeout);
	event_base_free(up_base);
	return 0;
}
