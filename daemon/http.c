/*
 * http.c: the HTTP engine. One curl multi handle driven by the libevent loop
 * through CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION (the pattern of
 * curl's hiperfifo example). An attempt becomes one easy handle; bytes go to
 * the adapter's SSE event parser or into a capped body; when curl reports
 * the transfer done, the attempt ends with one class. curl_multi_* is never
 * called from inside a curl callback.
 */
#include <sys/socket.h>

#ifdef __linux__
#include <linux/tcp.h>
#endif
#include <netinet/in.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "llmgated.h"

#define HTTP_MAX_BODY       (8u * 1024 * 1024) /* a full reply */
#define HTTP_MAX_ERROR_BODY (64u * 1024)       /* an error body */
#define HTTP_RST_WAIT_MS    200 /* for a reset behind a peer's FIN */
#define HTTP_RST_POLL_MS    5

/* libcurl 7.87 named it; any value but the size asked for means an error. */
#ifndef CURL_WRITEFUNC_ERROR
#define CURL_WRITEFUNC_ERROR ((size_t)0xFFFFFFFF)
#endif

struct http_xfer {
	struct attempt *att;
	CURL *easy;
	struct http_req hr;
	struct curl_slist *last;   /* hr.headers' last node, linked to tail */
	struct curl_slist tail[2]; /* http_expect, http_ua */
	struct buf body;
	struct sse sse;
	int stream;         /* streaming was asked for */
	int sse_mode;       /* a 2xx event stream is being parsed */
	int started;        /* first body byte seen */
	int stopped;        /* our write callback ended the transfer */
	int sends;          /* requests curl was about to send */
	int unread;         /* the last one provably never reached the server */
	curl_socket_t sock; /* a reused connection it went out on, or BAD */
	uint64_t acked;     /* the peer's acknowledged bytes before sending */
	int dead_fd;        /* that connection, closed by curl, kept to see
				   whether a reset follows the peer's FIN */
	struct event *rst_ev; /* polls dead_fd */
	uint64_t rst_until;
	struct http_url *url; /* the parsed URL it uses, or NULL */
	int clean;  /* one request as curl sent it, no resend, no error */
	int paused; /* http_write paused the transfer (held) */
	struct event *resume_ev; /* unpauses it, outside the caller */
	long status;
	struct event *fail_ev; /* ends an attempt that never started */
	struct event *ttfb_ev; /* first-byte deadline */
	struct event *idle_ev; /* stream silence watchdog */
	uint64_t last_ms;      /* when the stream last sent a byte */
	char errbuf[CURL_ERROR_SIZE];
};

/*
 * A socket curl watches. Its readability stays watched after curl stops
 * asking (a connection going idle in curl's cache between two calls, the
 * common case), so that the next call on it costs no epoll_ctl(2); if it
 * fires meanwhile, it is dropped then. That is safe only for sockets whose
 * close we see: those curl opens and closes through http_open() and
 * http_close(). Any other (a resolver's signalling pipe) is unwatched as
 * soon as curl says so.
 */
struct http_sock {
	struct event *rev;
	struct event *wev;
	int want;            /* CURL_POLL_IN/OUT bits curl asks for */
	int rin;             /* rev is added */
	int win;             /* wev is added */
	int ours;            /* opened by http_open(), closed by http_close() */
	int lport;           /* its local port, once connected; 0: unknown */
	struct http_xfer *x; /* a transfer whose request on it is watched */
	curl_socket_t fd;
	LIST_ENTRY(http_sock) entry; /* in http_ours, when ours */
};

#define HTTP_POOL_MAX 256 /* idle easy handles kept for reuse */
#define HTTP_URLS_MAX 32  /* parsed request URLs kept for reuse */

/*
 * A request URL parsed once (CURLOPT_CURLU): libcurl otherwise parses the
 * URL text again, and writes it out again, on every transfer. Shared by
 * the transfers that use it (refs); one that no transfer uses may be
 * replaced by another URL.
 */
struct http_url {
	char *url;
	size_t len;
	CURLU *uh;
	unsigned refs;
	uint64_t used; /* http_url_tick when last taken */
};

static CURLM *http_multi;
static struct http_sock **http_socks; /* by descriptor */
static size_t http_nsocks;
/* The upstream connections, for http_watch(): a few, where the table
 * above runs up to the highest descriptor (clients' included). */
static LIST_HEAD(, http_sock) http_ours = LIST_HEAD_INITIALIZER(http_ours);
static CURL *http_pool[HTTP_POOL_MAX];
static size_t http_npool;
static struct http_url http_urls[HTTP_URLS_MAX];
static uint64_t http_url_tick;
static int http_no_proxy_env; /* none of curl's proxy variables is set */

/*
 * Sent with every request, after the adapter's own headers, from nodes of
 * the transfer's (no allocation per call). The user agent goes this way
 * rather than through CURLOPT_USERAGENT, which libcurl formats again on
 * every transfer; a proxy's CONNECT (for https) gets it through
 * CURLOPT_PROXYHEADER. Not for http through a proxy: libcurl sends the
 * request's headers and the proxy's both, the user agent twice.
 */
static char http_expect[] = "Expect:"; /* no "100-continue" round trip */
static char http_ua[] = "User-Agent: llmgated/" LLMGATE_VERSION;
static struct curl_slist http_proxy_headers = { http_ua, NULL };
static struct event *http_timer;
/* A timeout of 0 runs from the loop's current pass, not the next one. */
static struct event *http_kick;
static int http_kicking; /* inside http_kick_cb()'s socket action */
static struct event_base *http_base;

static void http_drain(void);
static void http_fail_cb(evutil_socket_t, short, void *);
static void http_ttfb_cb(evutil_socket_t, short, void *);
static void http_idle_cb(evutil_socket_t, short, void *);
static void http_rst_cb(evutil_socket_t, short, void *);

static void
http_sock_cb(evutil_socket_t fd, short events, void *arg)
{
	struct http_sock *hs = arg;
	int running;

	if ((events & EV_READ) && !(hs->want & CURL_POLL_IN)) {
		/* Readable while curl does not ask: stop watching now. */
		event_del(hs->rev);
		hs->rin = 0;
		return;
	}
	curl_multi_socket_action(http_multi, fd,
	    (events & EV_READ) ? CURL_CSELECT_IN : CURL_CSELECT_OUT, &running);
	http_drain();
}

static void
http_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	int running;

	curl_multi_socket_action(http_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_drain();
}

/*
 * curl's "act now" (a timeout of 0, after every curl_multi_add_handle()):
 * an active event runs in the loop's current pass, where a timer would
 * wait for the next one, one more epoll_wait() before the request goes
 * out. Once per chain: a 0 asked for from inside it takes the timer, so
 * the loop polls its descriptors in between.
 */
static void
http_kick_cb(evutil_socket_t fd, short events, void *arg)
{
	http_kicking = 1;
	http_timer_cb(fd, events, arg);
	http_kicking = 0;
}

/* CURLMOPT_TIMERFUNCTION: one-shot, re-armed on every call; -1 stops it. */
static int
http_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
	struct timeval tv;

	if (timeout_ms == 0 && !http_kicking) {
		evtimer_del(http_timer);
		event_active(http_kick, EV_TIMEOUT, 0);
		return 0;
	}
	event_del(http_kick);
	if (timeout_ms < 0) {
		evtimer_del(http_timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(http_timer, &tv);
	return 0;
}

static struct http_sock *
http_sock_get(curl_socket_t s)
{
	struct http_sock *hs;
	size_t n;

	if ((size_t)s >= http_nsocks) {
		n = http_nsocks != 0 ? http_nsocks : 64;
		while (n <= (size_t)s)
			n *= 2;
		http_socks = xreallocarray(http_socks, n, sizeof *http_socks);
		memset(http_socks + http_nsocks, 0,
		    (n - http_nsocks) * sizeof *http_socks);
		http_nsocks = n;
	}
	if ((hs = http_socks[s]) == NULL) {
		hs = xcalloc(1, sizeof *hs);
		hs->fd = s;
		hs->rev = event_new(http_base, s, EV_READ | EV_PERSIST,
		    http_sock_cb, hs);
		hs->wev = event_new(http_base, s, EV_WRITE | EV_PERSIST,
		    http_sock_cb, hs);
		http_socks[s] = hs;
	}
	return hs;
}

static void
http_sock_forget(curl_socket_t s)
{
	struct http_sock *hs;

	if ((size_t)s >= http_nsocks || (hs = http_socks[s]) == NULL)
		return;
	if (hs->ours)
		LIST_REMOVE(hs, entry);
	event_free(hs->rev);
	event_free(hs->wev);
	free(hs);
	http_socks[s] = NULL;
}

/* A connected socket's local port; -1 if it has none. */
static int
http_local_port(curl_socket_t s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(s, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

/* CURLMOPT_SOCKETFUNCTION: add or drop the events curl's wish differs by. */
static int
http_sock_set(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_sock *hs;

	if (what == CURL_POLL_REMOVE) {
		if ((size_t)s >= http_nsocks || (hs = http_socks[s]) == NULL)
			return 0;
		if (!hs->ours) {
			http_sock_forget(s);
			return 0;
		}
		what = 0;
	} else {
		hs = http_sock_get(s);
		if (hs->ours && hs->lport == 0)
			hs->lport = http_local_port(s);
	}
	hs->want = what;
	if ((what & CURL_POLL_IN) && !hs->rin) {
		event_add(hs->rev, NULL);
		hs->rin = 1;
	}
	if (!!(what & CURL_POLL_OUT) != hs->win) {
		if (hs->win)
			event_del(hs->wev);
		else
			event_add(hs->wev, NULL);
		hs->win = !hs->win;
	}
	return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: a socket whose close http_close() sees. */
static curl_socket_t
http_open(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct http_sock *hs;
	curl_socket_t s;

	s = socket(a->family, a->socktype, a->protocol);
	if (s != CURL_SOCKET_BAD && !(hs = http_sock_get(s))->ours) {
		hs->ours = 1;
		LIST_INSERT_HEAD(&http_ours, hs, entry);
	}
	return s;
}

#ifdef __linux__
/* The kernel's numbering of tcpi_state. */
#define HTTP_TCP_CLOSE      7
#define HTTP_TCP_CLOSE_WAIT 8

/* The socket's TCP state, with the peer's acknowledged byte count. */
static int
http_tcp_info(curl_socket_t s, struct tcp_info *ti)
{
	socklen_t len = sizeof *ti;

	memset(ti, 0, sizeof *ti);
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, ti, &len) != 0)
		return -1;
	/* Kernels before 4.1 do not count acknowledged bytes. */
	if (len < offsetof(struct tcp_info, tcpi_bytes_acked) +
	        sizeof ti->tcpi_bytes_acked)
		return -1;
	return 0;
}
#endif

/*
 * A request went out on a connection that had served others before, and
 * the connection died before any byte of the reply: curl wants to send it
 * again (http_prereq()). Did the server get it? Certainly not when
 * - the peer had acknowledged none of it when its FIN came (the FIN
 *   carries the acknowledgement: the peer closed before it arrived), or
 * - the peer reset the connection: a TCP stack resets a connection its
 *   application closes only for data that application never read (or
 *   when the application aborts it on purpose, which a server does not
 *   do to a request it is going to answer).
 * That is the way of a server that closes a connection after a reply
 * while its headers said "keep-alive" (llama-server does so after every
 * stream): the next request finds the connection still open, goes out,
 * and is never read. Such a server shuts its side (FIN) and then closes
 * (the reset): between the two, the request may be acknowledged and the
 * answer not known yet. 1: never read, 0: may have been read, -1: a FIN
 * after the request was acknowledged, no reset yet.
 */
static int
http_unread(curl_socket_t s, uint64_t acked)
{
#ifdef __linux__
	struct tcp_info ti;

	if (http_tcp_info(s, &ti) != 0)
		return 0;
	if (ti.tcpi_state == HTTP_TCP_CLOSE || ti.tcpi_bytes_acked == acked)
		return 1;
	return ti.tcpi_state == HTTP_TCP_CLOSE_WAIT ? -1 : 0;
#else
	return 0;
#endif
}

/* CURLOPT_CLOSESOCKETFUNCTION: unwatch before the descriptor is reused. */
static int
http_close(void *arg, curl_socket_t s)
{
	struct http_sock *hs;
	struct http_xfer *x;
	int unread;

	if ((size_t)s < http_nsocks && (hs = http_socks[s]) != NULL &&
	    (x = hs->x) != NULL) {
		x->sock = CURL_SOCKET_BAD;
		unread = http_unread(s, x->acked);
		x->unread = unread == 1;
		/* Not known yet: keep it open to see whether a reset comes. */
		if (unread == -1 && !x->started && x->dead_fd == -1) {
			x->dead_fd = s;
			http_sock_forget(s);
			return 0;
		}
	}
	http_sock_forget(s);
	return close(s);
}

/*
 * Before a request goes out on a reused connection: note how much the
 * peer has acknowledged so far, for http_unread(). Only over plain http,
 * which is HTTP/1.1 here, one request at a time on a connection; on a
 * multiplexed one the other streams' bytes would blur the count. curl
 * names the connection by its local port only.
 */
static void
http_watch(struct http_xfer *x, int lport)
{
#ifdef __linux__
	struct http_sock *hs, *found = NULL;
	struct tcp_info ti;
	long fresh;

	if (strncasecmp(x->hr.url, "http:", 5) != 0 || lport <= 0)
		return;
	if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &fresh) !=
	        CURLE_OK ||
	    fresh != 0)
		return;
	LIST_FOREACH(hs, &http_ours, entry)
	{
		if (hs->lport != lport)
			continue;
		if (found != NULL)
			return; /* the same port twice: not sure which */
		found = hs;
	}
	if (found == NULL || found->x != NULL ||
	    http_tcp_info(found->fd, &ti) != 0)
		return;
	x->acked = ti.tcpi_bytes_acked;
	x->sock = found->fd;
	found->x = x;
#endif
}

static void
http_dead_close(struct http_xfer *x)
{
	if (x->dead_fd != -1) {
		close(x->dead_fd);
		x->dead_fd = -1;
	}
}

static void
http_unwatch(struct http_xfer *x)
{
	struct http_sock *hs;

	if (x->sock != CURL_SOCKET_BAD && (size_t)x->sock < http_nsocks &&
	    (hs = http_socks[x->sock]) != NULL && hs->x == x)
		hs->x = NULL;
	x->sock = CURL_SOCKET_BAD;
}

static void
http_url_clear(struct http_url *u)
{
	free(u->url);
	curl_url_cleanup(u->uh);
	memset(u, 0, sizeof *u);
}

/*
 * The parsed form of a request URL, parsed as libcurl would; NULL when it
 * cannot be kept (libcurl then parses the text itself, and reports what
 * is wrong with it). Given back with http_url_drop().
 */
static struct http_url *
http_url_take(const char *url)
{
	struct http_url *u, *slot = NULL;
	size_t i, len = strlen(url);
	CURLU *uh;

	for (i = 0; i < HTTP_URLS_MAX; i++) {
		u = &http_urls[i];
		if (u->url != NULL && u->len == len &&
		    memcmp(u->url, url, len) == 0)
			goto found;
		/* An empty slot, else the one unused for longest. */
		if (u->refs == 0 &&
		    (slot == NULL ||
		        (slot->url != NULL &&
		            (u->url == NULL || u->used < slot->used))))
			slot = u;
	}
	if ((u = slot) == NULL || (uh = curl_url()) == NULL)
		return NULL;
	if (curl_url_set(uh, CURLUPART_URL, url,
	        CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		curl_url_cleanup(uh);
		return NULL;
	}
	http_url_clear(u);
	u->url = xstrdup(url);
	u->len = len;
	u->uh = uh;
found:
	u->refs++;
	u->used = ++http_url_tick;
	return u;
}

static void
http_url_drop(struct http_url *u)
{
	if (u != NULL)
		u->refs--;
}

int
http_init(struct event_base *base)
{
	/* What libcurl reads for http and https URLs. */
	static const char *const env[] = { "http_proxy", "https_proxy",
		"HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
		"NO_PROXY" };
	size_t i;

	http_no_proxy_env = 1;
	for (i = 0; i < sizeof env / sizeof env[0]; i++) {
		if (getenv(env[i]) != NULL)
			http_no_proxy_env = 0;
	}
	http_base = base;
	if ((http_multi = curl_multi_init()) == NULL)
		return -1;
	http_timer = evtimer_new(base, http_timer_cb, NULL);
	http_kick = event_new(base, -1, 0, http_kick_cb, NULL);
	curl_multi_setopt(http_multi, CURLMOPT_SOCKETFUNCTION, http_sock_set);
	curl_multi_setopt(http_multi, CURLMOPT_TIMERFUNCTION, http_timer_set);
	curl_multi_setopt(http_multi, CURLMOPT_PIPELINING,
	    (long)CURLPIPE_MULTIPLEX);
	/*
	 * Keep idle upstream connections: by default libcurl keeps a few per
	 * running transfer and closes the rest whenever load dips.
	 */
	curl_multi_setopt(http_multi, CURLMOPT_MAXCONNECTS, 1024L);
	return 0;
}

void
http_shutdown(void)
{
	size_t i;

	while (http_npool != 0)
		curl_easy_cleanup(http_pool[--http_npool]);
	for (i = 0; i < HTTP_URLS_MAX; i++)
		http_url_clear(&http_urls[i]);
	if (http_multi != NULL)
		curl_multi_cleanup(http_multi);
	for (i = 0; i < http_nsocks; i++)
		http_sock_forget((curl_socket_t)i);
	free(http_socks);
	http_socks = NULL;
	http_nsocks = 0;
	if (http_timer != NULL)
		event_free(http_timer);
	if (http_kick != NULL)
		event_free(http_kick);
	http_multi = NULL;
	http_timer = NULL;
	http_kick = NULL;
}

/* A stream is alive: it sent a byte. */
static void
http_alive(struct http_xfer *x)
{
	if (x->idle_ev != NULL)
		x->last_ms = now_ms();
}

/* (Re)start the idle watchdog for the silence since x->last_ms. */
static void
http_idle_arm(struct http_xfer *x, uint64_t now)
{
	uint64_t left = x->last_ms + x->att->prov->idle_ms - now;
	struct timeval tv;

	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	evtimer_add(x->idle_ev, &tv);
}

static int
http_sse_event(const struct sse_event *ev, void *arg)
{
	struct http_xfer *x = arg;
	struct attempt *att = x->att;

	return att->prov->type->event(&att->reply, ev) != 0 ? 1 : 0;
}

/* The first body byte: decide between event stream and plain body. */
static void
http_first_byte(struct http_xfer *x)
{
	char *ctype = NULL;

	x->started = 1;
	if (x->ttfb_ev != NULL)
		evtimer_del(x->ttfb_ev);
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
	if (x->stream && x->status >= 200 && x->status < 300 && ctype != NULL &&
	    strcasestr(ctype, "text/event-stream") != NULL) {
		x->sse_mode = 1;
		sse_init(&x->sse, http_sse_event, x);
	}
}

static size_t
http_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	struct reply *r = &x->att->reply;
	size_t n = size * nmemb, cap;
	int rc;

	if (!x->started)
		http_first_byte(x);
	http_alive(x);
	/*
	 * The client is not reading its stream: leave the data with curl,
	 * which stops reading the upstream until http_resume(), rather than
	 * queue it for a client that would then be dropped.
	 */
	if (x->sse_mode && x->att->held) {
		x->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (x->sse_mode) {
		if ((rc = sse_feed(&x->sse, data, n)) == 0 && !r->too_long)
			return n;
		if (rc < 0)
			reply_error(r, LLMGATE_PARSE_ERROR, (uint32_t)x->status,
			    "stream event too large");
		x->stopped = 1;
		return CURL_WRITEFUNC_ERROR;
	}
	cap = x->status >= 200 && x->status < 300 ? HTTP_MAX_BODY :
	                                            HTTP_MAX_ERROR_BODY;
	if (x->body.len + n > cap) {
		if (x->status >= 200 && x->status < 300) {
			reply_error(r, LLMGATE_PARSE_ERROR, (uint32_t)x->status,
			    "response body over %zu bytes", cap);
			x->stopped = 1;
			return CURL_WRITEFUNC_ERROR;
		}
		/* The head of an error body is enough to classify it. */
		n = cap - x->body.len;
		buf_add(&x->body, data, n);
		x->stopped = 1;
		return CURL_WRITEFUNC_ERROR;
	}
	buf_add(&x->body, data, n);
	return n;
}

static size_t
http_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	size_t n = size * nmemb, nl, vl;
	char name[128], value[512];
	const char *colon, *v;

	http_alive(x);
	colon = memchr(data, ':', n);
	if (colon == NULL || (size_t)(colon - data) >= sizeof name)
		return n;
	nl = (size_t)(colon - data);
	memcpy(name, data, nl);
	name[nl] = '\0';
	v = colon + 1;
	while (v < data + n && (*v == ' ' || *v == '\t'))
		v++;
	vl = (size_t)(data + n - v);
	while (vl > 0 && isspace((unsigned char)v[vl - 1]))
		vl--;
	if (vl >= sizeof value)
		vl = sizeof value - 1;
	memcpy(value, v, vl);
	value[vl] = '\0';
	header_rl_add(&x->att->reply.rl, name, value, time(NULL));
	return n;
}

/*
 * CURLOPT_PREREQFUNCTION: a request is about to go out. libcurl quietly
 * sends a request again, on a fresh connection, when a reused connection
 * dies before any byte of the reply. The server may have read the first
 * one though: the second would be an upstream attempt nobody reported
 * (and billed, and counted against the rate limit), so it is refused, and
 * the attempt ends as a connection failure for the call engine to decide
 * on. Unless the first one provably never reached the server (see
 * http_unread()): then sending it again is still the same attempt.
 */
static int
http_prereq(void *arg, char *conn_primary_ip, char *conn_local_ip,
    int conn_primary_port, int conn_local_port)
{
	struct http_xfer *x = arg;
	struct timeval tv;

	if (x->sends++ > 0) {
		/* The dead connection may not be closed yet, */
		if (x->sock != CURL_SOCKET_BAD)
			x->unread = http_unread(x->sock, x->acked) == 1;
		/* or kept open to see how it ends. */
		if (!x->unread && x->dead_fd != -1)
			x->unread = http_unread(x->dead_fd, x->acked) == 1;
		/* Undecided: http_complete() waits for the reset. */
		if (!x->unread)
			return CURL_PREREQFUNC_ABORT;
		http_dead_close(x);
		log_debug("%s: the server had closed a reused connection; the "
		          "request went out again on a new one",
		    x->att->prov->name);
	}
	x->unread = 0;
	http_unwatch(x);
	http_watch(x, conn_local_port);
	/* The wait for the reply, and a stream's silence, count from here. */
	if (x->ttfb_ev != NULL) {
		tv.tv_sec = x->att->prov->first_byte_ms / 1000;
		tv.tv_usec =
		    (suseconds_t)(x->att->prov->first_byte_ms % 1000) * 1000;
		evtimer_add(x->ttfb_ev, &tv);
	}
	if (x->idle_ev != NULL) {
		x->last_ms = now_ms();
		http_idle_arm(x, x->last_ms);
	}
	return CURL_PREREQFUNC_OK;
}

static enum llmgate_class
http_curl_class(CURLcode code)
{
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		return LLMGATE_TIMEOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		return LLMGATE_CANCELLED;
	default:
		return LLMGATE_CONNECTION;
	}
}

/* What is the same for every transfer: set once on a handle. */
static void
http_easy_setup(CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, http_prereq);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, http_open);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, http_close);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	/*
	 * libcurl looks for proxy variables in the environment on every
	 * transfer; where there is none (it does not change while llmgated
	 * runs), it is told so once.
	 */
	if (http_no_proxy_env) {
		curl_easy_setopt(easy, CURLOPT_PROXY, "");
		curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
	}
}

/*
 * Easy handles are reused, and keep their options: http_easy_setup()'s
 * are set when the handle is made, and http_start() sets all the others
 * on every transfer. curl_easy_reset() and setting everything again cost
 * more than the transfer's own setup.
 */
static CURL *
http_easy_get(void)
{
	CURL *easy;

	if (http_npool != 0)
		return http_pool[--http_npool];
	if ((easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	http_easy_setup(easy);
	return easy;
}

/*
 * Back to the pool. A handle whose transfer did not end cleanly (see
 * http_complete()) is reset first: libcurl counts the requests it sent
 * again on a new connection per handle, not per transfer, until a reset,
 * and fails a transfer past five of them.
 */
static void
http_easy_put(CURL *easy, int clean)
{
	if (http_npool == HTTP_POOL_MAX) {
		curl_easy_cleanup(easy);
		return;
	}
	if (clean) {
		/* Nothing of the finished transfer's is written to any more. */
		curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
	} else {
		curl_easy_reset(easy);
		http_easy_setup(easy);
	}
	http_pool[http_npool++] = easy;
}

static void
http_resume_cb(evutil_socket_t fd, short events, void *arg)
{
	struct http_xfer *x = arg;

	if (!x->paused || x->att->held)
		return;
	x->paused = 0;
	http_alive(x);
	/* curl may call http_write from here, with what it kept. */
	curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

/* The client reads again: unpause, from the loop (not the caller's stack). */
static void
http_resume(struct attempt *att)
{
	struct http_xfer *x = att->priv;
	struct timeval now = { 0, 0 };

	if (x == NULL || !x->paused)
		return;
	if (x->resume_ev == NULL)
		x->resume_ev = evtimer_new(http_base, http_resume_cb, x);
	evtimer_add(x->resume_ev, &now);
}

void
http_start(struct attempt *att)
{
	struct http_xfer *x = xcalloc(1, sizeof *x);
	const struct provider_conf *p = att->prov;
	struct reply *r = &att->reply;
	struct timeval now = { 0, 0 };
	char *cause = NULL;
	int https;

	x->att = att;
	att->priv = x;
	x->sock = CURL_SOCKET_BAD;
	x->dead_fd = -1;
	att->resume = http_resume;
	x->stream = att->req->stream;
	if (p->type->build(&x->hr, p, att->model, att->req, &cause) != 0) {
		reply_error(r, LLMGATE_INVALID_REQUEST, 0, "%s",
		    cause != NULL ? cause : "cannot build the request");
		free(cause);
		goto fail_now;
	}
	x->tail[0].data = http_expect;
	x->tail[0].next = &x->tail[1];
	x->tail[1].data = http_ua;
	x->tail[1].next = NULL;
	if (x->hr.headers == NULL)
		x->hr.headers = x->tail;
	else {
		for (x->last = x->hr.headers; x->last->next != NULL;
		     x->last = x->last->next)
			;
		x->last->next = x->tail;
	}
	x->easy = http_easy_get();
	/* Both: the parsed one is used, the text is for curl's messages. */
	x->url = http_url_take(x->hr.url);
	curl_easy_setopt(x->easy, CURLOPT_URL, x->hr.url);
	curl_easy_setopt(x->easy, CURLOPT_CURLU,
	    x->url != NULL ? x->url->uh : NULL);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hr.headers);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->hr.body);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)x->hr.body_len);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_PREREQDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	/*
	 * Wait for a connection that may multiplex (HTTP/2) only where one
	 * can: over plain http a call would otherwise sit until another
	 * call to that host ended.
	 */
	https = strncasecmp(x->hr.url, "https:", 6) == 0;
	curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, https ? 1L : 0L);
	if (!http_no_proxy_env)
		curl_easy_setopt(x->easy, CURLOPT_PROXYHEADER,
		    https ? &http_proxy_headers : NULL);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(p->connect_timeout_ms != 0 ? p->connect_timeout_ms : 5000));
	/* 0: none. */
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
	/*
	 * The idle watchdog, for streams only: a whole reply sends nothing
	 * until it is complete, and first_byte_ms and timeout_ms bound it.
	 * It is a timer of ours, not curl's low-speed limit, which averages
	 * over seconds and counts the request's own bytes.
	 */
	if (x->stream && p->idle_ms != 0)
		x->idle_ev = evtimer_new(http_base, http_idle_cb, x);
	/* Armed when the request goes out (http_prereq()). */
	if (p->first_byte_ms != 0)
		x->ttfb_ev = evtimer_new(http_base, http_ttfb_cb, x);
	if (curl_multi_add_handle(http_multi, x->easy) != CURLM_OK) {
		reply_error(r, LLMGATE_INTERNAL, 0,
		    "curl_multi_add_handle "
		    "failed");
		goto fail_now;
	}
	return;
fail_now:
	/* Answer from the loop, not from inside the caller. */
	if (x->easy != NULL) {
		http_easy_put(x->easy, 0);
		x->easy = NULL;
	}
	x->fail_ev = evtimer_new(http_base, http_fail_cb, x);
	evtimer_add(x->fail_ev, &now);
}

/* Turn a finished transfer into the attempt's class, then report it. */
static void
http_complete(struct http_xfer *x, CURLcode code)
{
	struct attempt *att = x->att;
	struct reply *r = &att->reply;
	const struct provider_type *pt = att->prov->type;

	/* A resend refused while it was not known whether it is one. */
	if (code == CURLE_ABORTED_BY_CALLBACK && x->sends > 1 &&
	    x->dead_fd != -1) {
		x->rst_until = now_ms() + HTTP_RST_WAIT_MS;
		x->rst_ev = evtimer_new(http_base, http_rst_cb, x);
		http_rst_cb(-1, 0, x);
		return;
	}
	/* One request, no resend and no FRESH_CONNECT (http_rst_cb()). */
	x->clean = code == CURLE_OK && x->sends == 1 && x->dead_fd == -1 &&
	    x->rst_ev == NULL;
	if (!x->started)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (r->status == 0)
		r->status = (uint32_t)x->status;
	if (r->cls != LLMGATE_OK)
		goto done;
	if (x->status != 0 && (x->status < 200 || x->status >= 300) &&
	    (code == CURLE_OK || x->stopped)) {
		pt->classify(r, (uint32_t)x->status, buf_cstr(&x->body),
		    x->body.len);
		if (r->cls == LLMGATE_OK)
			reply_error(r,
			    reply_class_for_status((uint32_t)x->status),
			    (uint32_t)x->status, "HTTP %ld", x->status);
		goto done;
	}
	if (code == CURLE_ABORTED_BY_CALLBACK && x->sends > 1) {
		reply_error(r, LLMGATE_CONNECTION, 0,
		    "connection closed "
		    "before the reply");
		goto done;
	}
	if (code != CURLE_OK) {
		reply_error(r, http_curl_class(code), (uint32_t)x->status, "%s",
		    x->errbuf[0] != '\0' ? x->errbuf :
		                           curl_easy_strerror(code));
		goto done;
	}
	if (x->sse_mode) {
		if (!r->done)
			reply_error(r, LLMGATE_CONNECTION, (uint32_t)x->status,
			    "stream ended before its end marker");
		goto done;
	}
	/*
	 * A whole body; also a stream the server chose to answer plainly,
	 * whose text reply_text() relays to the client as one chunk.
	 */
	if (pt->parse(r, buf_cstr(&x->body), x->body.len) != 0 &&
	    r->cls == LLMGATE_OK)
		reply_error(r, LLMGATE_PARSE_ERROR, (uint32_t)x->status,
		    "unparsable response body");
	if (r->cls == LLMGATE_OK && !r->done)
		r->done = 1;
done:
	attempt_done(att);
}

/* No first byte in time: a timeout, decided outside any curl callback. */
static void
http_ttfb_cb(evutil_socket_t fd, short events, void *arg)
{
	struct http_xfer *x = arg;

	reply_error(&x->att->reply, LLMGATE_TIMEOUT, 0, "no reply within %u ms",
	    x->att->prov->first_byte_ms);
	attempt_done(x->att);
}

/*
 * The request went out on a reused connection that the server shut after
 * acknowledging it; curl's resend was refused. If the reset that says
 * "never read" follows within HTTP_RST_WAIT_MS, send the request again on a
 * new connection, as the same attempt; if not, the attempt failed.
 */
static void
http_rst_cb(evutil_socket_t fd, short events, void *arg)
{
	struct http_xfer *x = arg;
	struct timeval tv = { 0, HTTP_RST_POLL_MS * 1000 };
	int unread = http_unread(x->dead_fd, x->acked);

	if (unread == -1 && now_ms() < x->rst_until) {
		evtimer_add(x->rst_ev, &tv);
		return;
	}
	http_dead_close(x);
	if (unread == 1) {
		log_debug("%s: the server had closed a reused connection; the "
		          "request goes out again on a new one",
		    x->att->prov->name);
		curl_multi_remove_handle(http_multi, x->easy);
		x->sends = 0;
		x->errbuf[0] = '\0';
		curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, 1L);
		if (curl_multi_add_handle(http_multi, x->easy) == CURLM_OK)
			return;
		reply_error(&x->att->reply, LLMGATE_INTERNAL, 0,
		    "curl_multi_add_handle failed");
	} else
		reply_error(&x->att->reply, LLMGATE_CONNECTION, 0,
		    "connection closed before the reply");
	attempt_done(x->att);
}

/* The idle watchdog fired: silent for idle_ms since the last byte? */
static void
http_idle_cb(evutil_socket_t fd, short events, void *arg)
{
	struct http_xfer *x = arg;
	uint64_t now = now_ms();

	/* Paused for a slow client (http_write): the silence is ours. */
	if (x->paused)
		x->last_ms = now;
	if (now - x->last_ms < x->att->prov->idle_ms) {
		http_idle_arm(x, now);
		return;
	}
	reply_error(&x->att->reply, LLMGATE_TIMEOUT, (uint32_t)x->status,
	    "stream silent for %u ms", x->att->prov->idle_ms);
	attempt_done(x->att);
}

static void
http_fail_cb(evutil_socket_t fd, short events, void *arg)
{
	struct http_xfer *x = arg;

	attempt_done(x->att);
}

/* Collect finished transfers; attempt_done() may stop and free them. */
static void
http_drain(void)
{
	struct http_xfer *x;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(http_multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &x);
		http_complete(x, msg->data.result);
	}
}

/* Remove the transfer at once: used for cancels and after completion. */
void
http_stop(struct attempt *att)
{
	struct http_xfer *x = att->priv;

	if (x == NULL)
		return;
	if (x->easy != NULL) {
		curl_multi_remove_handle(http_multi, x->easy);
		/* A paused handle is not one to hand out again. */
		if (x->paused)
			curl_easy_cleanup(x->easy);
		else
			http_easy_put(x->easy, x->clean);
	}
	http_url_drop(x->url);
	if (x->resume_ev != NULL)
		event_free(x->resume_ev);
	if (x->fail_ev != NULL)
		event_free(x->fail_ev);
	if (x->ttfb_ev != NULL)
		event_free(x->ttfb_ev);
	if (x->idle_ev != NULL)
		event_free(x->idle_ev);
	if (x->rst_ev != NULL)
		event_free(x->rst_ev);
	http_dead_close(x);
	http_unwatch(x);
	if (x->sse_mode)
		sse_free(&x->sse);
	buf_free(&x->body);
	/* The tail nodes are not the list's to free. */
	if (x->last != NULL)
		x->last->next = NULL;
	else if (x->hr.headers == x->tail)
		x->hr.headers = NULL;
	http_req_free(&x->hr);
	free(x);
	att->priv = NULL;
}
