/*
 * metrics-http.c: the GET /metrics endpoint on the event loop, serving
 * metrics_render()'s exposition when metrics_listen is set.
 */
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "llmgated.h"

static char *metrics_addr; /* what the endpoint is bound to */

/*
 * "host:port" or "[v6addr]:port" -> host (allocated) and port. 0, or -1
 * with *cause; config-keys.c checks metrics_listen with it.
 */
int
metrics_hostport(const char *s, char **host, uint16_t *port, char **cause)
{
	const char *colon, *end;
	char *p;
	unsigned long v;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':') {
			xasprintf(cause, "'%s' is not [ADDRESS]:PORT", s);
			return -1;
		}
		colon = end + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s))) {
			xasprintf(cause,
			    "'%s' is not HOST:PORT (an IPv6 "
			    "address goes in brackets: [::1]:9464)",
			    s);
			return -1;
		}
		end = colon;
	}
	if (end == s) {
		xasprintf(cause,
		    "'%s' has no host (use 127.0.0.1 for "
		    "loopback only)",
		    s);
		return -1;
	}
	errno = 0;
	v = strtoul(colon + 1, &p, 10);
	if (!isdigit((unsigned char)colon[1]) || *p != '\0' || errno != 0 ||
	    v == 0 || v > 65535) {
		xasprintf(cause, "'%s': the port must be 1 to 65535",
		    colon + 1);
		return -1;
	}
	if (host != NULL)
		*host = xstrndup(s, (size_t)(end - s));
	if (port != NULL)
		*port = (uint16_t)v;
	return 0;
}

/*
 * The GET /metrics endpoint: a listener of our own rather than evhttp's,
 * since it may face users the Unix socket's permissions keep out, and
 * libevent 2.1's evhttp can neither cap its connections nor bound how
 * long one may take. Here METRICS_MAX_CONNS connections at most are open:
 * a new one then closes the oldest that has not sent its whole request
 * yet (or is itself refused when all are being answered), so clients that
 * connect and trickle cannot keep a scraper out. Each must send its
 * request and read the answer within METRICS_CONN_MS of being accepted,
 * however slowly it trickles; a request is one line plus headers within
 * METRICS_MAX_REQUEST bytes; the answer is HTTP/1.1 with Connection:
 * close. Out of descriptors, accepting pauses for a second, as on the
 * Unix socket; repeated errors and refusals are logged once per 10 s.
 */
#define METRICS_MAX_CONNS    32
#define METRICS_CONN_MS      5000
#define METRICS_MAX_REQUEST  8192
#define METRICS_LOG_EVERY_MS 10000

struct metrics_conn {
	struct bufferevent *bev;
	struct event *deadline;
	int answered;
	struct metrics_conn *next, **prevp;
};

static struct evconnlistener *metrics_listener;
static struct event *metrics_resume_ev;
static struct metrics_conn *metrics_conns;
static unsigned metrics_nconns;
static uint64_t metrics_refused;        /* over the cap, since last logged */
static uint64_t metrics_refused_logged; /* ms */

static void
metrics_conn_free(struct metrics_conn *mc)
{
	*mc->prevp = mc->next;
	if (mc->next != NULL)
		mc->next->prevp = mc->prevp;
	metrics_nconns--;
	bufferevent_free(mc->bev);
	event_free(mc->deadline);
	free(mc);
}

static void
metrics_conn_deadline(evutil_socket_t fd, short events, void *arg)
{
	metrics_conn_free(arg);
}

/* The whole answer queued; the connection goes once it is written. */
static void
metrics_conn_answer(struct metrics_conn *mc, int code, const char *reason,
    const char *ctype, const char *body, int head)
{
	struct evbuffer *out = bufferevent_get_output(mc->bev);
	size_t len = body != NULL ? strlen(body) : 0;

	evbuffer_add_printf(out,
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
	    code, reason, ctype, len,
	    code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head && len != 0)
		evbuffer_add(out, body, len);
	mc->answered = 1;
	bufferevent_disable(mc->bev, EV_READ);
	bufferevent_enable(mc->bev, EV_WRITE);
}

/* A complete request head is in: answer it. */
static void
metrics_conn_request(struct metrics_conn *mc, const char *line)
{
	char method[8], target[256], version[16], *q;
	const char *text_plain = "text/plain; charset=utf-8";
	char *text;
	int head;

	if (sscanf(line, "%7s %255s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0) {
		metrics_conn_answer(mc, 400, "Bad Request", text_plain,
		    "bad request\n", 0);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		metrics_conn_answer(mc, 405, "Method Not Allowed", text_plain,
		    "only GET and HEAD\n", 0);
		return;
	}
	if ((q = strchr(target, '?')) != NULL)
		*q = '\0';
	if (strcmp(target, "/metrics") != 0) {
		metrics_conn_answer(mc, 404, "Not Found", text_plain,
		    "not found: the metrics are at /metrics\n", head);
		return;
	}
	text = metrics_render();
	metrics_conn_answer(mc, 200, "OK",
	    "text/plain; version=0.0.4; charset=utf-8", text, head);
	free(text);
}

static void
metrics_conn_read(struct bufferevent *bev, void *arg)
{
	struct metrics_conn *mc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	size_t len = evbuffer_get_length(in);
	char *line;

	if (mc->answered)
		return;
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos == -1) {
		if (len > METRICS_MAX_REQUEST)
			metrics_conn_answer(mc, 431,
			    "Request Header Fields "
			    "Too Large",
			    "text/plain; charset=utf-8", "request too large\n",
			    0);
		return;
	}
	line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
	metrics_conn_request(mc, line != NULL ? line : "");
	free(line);
}

static void
metrics_conn_write(struct bufferevent *bev, void *arg)
{
	struct metrics_conn *mc = arg;

	if (mc->answered &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		metrics_conn_free(mc);
}

static void
metrics_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct metrics_conn *mc = arg;

	/* An error, or EOF before the request: nothing more to do. An EOF
	 * after it (a half-close) still gets the answer written. */
	if ((what & BEV_EVENT_ERROR) ||
	    ((what & BEV_EVENT_EOF) && !mc->answered))
		metrics_conn_free(mc);
}

static void
metrics_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct timeval tv = { METRICS_CONN_MS / 1000,
		(METRICS_CONN_MS % 1000) * 1000 };
	struct metrics_conn *mc, *oldest = NULL;
	uint64_t now;

	if (metrics_nconns >= METRICS_MAX_CONNS) {
		for (mc = metrics_conns; mc != NULL; mc = mc->next) {
			if (!mc->answered)
				oldest = mc;
		}
		metrics_refused++;
		now = now_ms();
		if (now - metrics_refused_logged >= METRICS_LOG_EVERY_MS) {
			log_warnx("metrics: %llu connection(s) closed or "
			          "refused: %d open at once at most",
			    (unsigned long long)metrics_refused,
			    METRICS_MAX_CONNS);
			metrics_refused = 0;
			metrics_refused_logged = now;
		}
		if (oldest == NULL) {
			evutil_closesocket(fd);
			return;
		}
		metrics_conn_free(oldest);
	}
	mc = xcalloc(1, sizeof *mc);
	mc->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (mc->bev == NULL) {
		evutil_closesocket(fd);
		free(mc);
		return;
	}
	mc->deadline =
	    evtimer_new(evconnlistener_get_base(l), metrics_conn_deadline, mc);
	evtimer_add(mc->deadline, &tv);
	bufferevent_setcb(mc->bev, metrics_conn_read, metrics_conn_write,
	    metrics_conn_event, mc);
	bufferevent_setwatermark(mc->bev, EV_READ, 0, METRICS_MAX_REQUEST + 1);
	bufferevent_enable(mc->bev, EV_READ);
	mc->next = metrics_conns;
	if (mc->next != NULL)
		mc->next->prevp = &mc->next;
	mc->prevp = &metrics_conns;
	metrics_conns = mc;
	metrics_nconns++;
}

static void
metrics_resume(evutil_socket_t fd, short events, void *arg)
{
	if (metrics_listener != NULL)
		evconnlistener_enable(metrics_listener);
}

/* Out of descriptors: pause for a second rather than spin on accept. */
static void
metrics_accept_error(struct evconnlistener *l, void *arg)
{
	struct timeval tv = { 1, 0 };
	int err = EVUTIL_SOCKET_ERROR();
	static uint64_t logged;
	uint64_t now = now_ms();

	if (now - logged >= METRICS_LOG_EVERY_MS) {
		log_warnx("metrics: accept: %s%s",
		    evutil_socket_error_to_string(err),
		    err == EMFILE || err == ENFILE || err == ENOBUFS ||
		            err == ENOMEM ?
		        "; pausing for a second" :
		        "");
		logged = now;
	}
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(l);
		evtimer_add(metrics_resume_ev, &tv);
	}
}

void
metrics_http_stop(void)
{
	while (metrics_conns != NULL)
		metrics_conn_free(metrics_conns);
	if (metrics_listener != NULL)
		evconnlistener_free(metrics_listener);
	metrics_listener = NULL;
	if (metrics_resume_ev != NULL)
		event_free(metrics_resume_ev);
	metrics_resume_ev = NULL;
	free(metrics_addr);
	metrics_addr = NULL;
}

/*
 * Serve GET /metrics on hostport; NULL stops serving. Idempotent, so a
 * reload can call it with whatever the new config says: the same address
 * keeps its socket, a new one is bound before the old one is closed, and
 * a failure leaves the old endpoint serving.
 */
int
metrics_listen(struct event_base *base, const char *hostport, char **cause)
{
	struct evconnlistener *l;
	struct addrinfo hints, *ai = NULL;
	char *host = NULL, portstr[8];
	uint16_t port;
	int rc;

	if (hostport == NULL || *hostport == '\0') {
		if (metrics_listener != NULL)
			log_info("metrics: no longer serving %s", metrics_addr);
		metrics_http_stop();
		return 0;
	}
	if (metrics_addr != NULL && strcmp(metrics_addr, hostport) == 0)
		return 0;
	if (metrics_hostport(hostport, &host, &port, cause) != 0)
		return -1;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
	if ((rc = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		xasprintf(cause, "metrics: cannot listen on %s: %s", hostport,
		    gai_strerror(rc));
		free(host);
		return -1;
	}
	free(host);
	errno = 0;
	l = evconnlistener_new_bind(base, metrics_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    64, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (l == NULL) {
		xasprintf(cause, "metrics: cannot listen on %s: %s", hostport,
		    errno != 0 ? strerror(errno) : "bind failed");
		return -1;
	}
	metrics_http_stop();
	evconnlistener_set_error_cb(l, metrics_accept_error);
	metrics_listener = l;
	metrics_resume_ev = evtimer_new(base, metrics_resume, NULL);
	metrics_addr = xstrdup(hostport);
	log_info("metrics: serving http://%s/metrics", hostport);
	return 0;
}
