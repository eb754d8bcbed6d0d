/*
 * front-http.c: the HTTP front, a second front beside the native socket.
 * It owns the listeners (loopback TCP, a Unix socket, remote addresses
 * only when the config says so), decides who may call, and carries a
 * request to one dialect (front-openai.c, front-anthropic.c), which
 * translates it into the same struct llmgate_request the native front
 * hands to call_start(), and the call's chunks and result back into its
 * own format. HTTP parsing is libevent's evhttp.
 *
 * Who may call: on the Unix socket the kernel checks the socket's mode
 * and group, and SO_PEERCRED names the caller; on loopback TCP the
 * caller's uid comes from the kernel's socket table and the same mode and
 * group rules are applied to it (front-peer.c), unless a tokens_file is
 * configured, which then makes a bearer token mandatory on every TCP
 * listener. max_conns_per_uid counts HTTP and native connections together.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "llmgated.h"

#define FRONT_HTTP_TIMEOUT_S	30	/* to read a request's head and body */
#define FRONT_HTTP_CALL_S	86400	/* while a call runs: its own deadline */
#define FRONT_HTTP_HEADERS_MAX	32768
#define FRONT_HTTP_ATTEMPTS_HDR	4096	/* longest x-llmgate-attempts */
#define FRONT_HTTP_HIGH		(64 * 1024)	/* unread stream: hold upstream */

enum front_kind { FRONT_UNIX, FRONT_LOOPBACK, FRONT_REMOTE };

struct front_conn {
	struct evhttp_connection *evcon;
	enum front_kind kind;
	int uid_known;
	int allowed;			/* uid passes the socket's rules */
	uid_t uid;
	pid_t pid;
	char peer[64];
	struct front_req *cur;		/* the request being answered */
	TAILQ_ENTRY(front_conn) entry;
};

struct front_listener {
	char *addr;			/* as configured */
	char *path;			/* a Unix socket we bound: unlinked */
	struct evhttp_bound_socket *bs;
	TAILQ_ENTRY(front_listener) entry;
};

static struct evhttp *front_http;
static TAILQ_HEAD(, front_conn) front_conns =
    TAILQ_HEAD_INITIALIZER(front_conns);
static TAILQ_HEAD(, front_listener) front_listeners =
    TAILQ_HEAD_INITIALIZER(front_listeners);
static unsigned front_nconns;
static char *front_native;		/* the native socket's path */
static uint64_t front_seq;

static const struct call_sink front_sink;

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
	[LLMGATE_AUTH] = { 502, "server_error", "upstream_auth",
	    "api_error" },
	[LLMGATE_PERMISSION] = { 502, "server_error", "upstream_permission",
	    "api_error" },
	[LLMGATE_NOT_FOUND] = { 404, "invalid_request_error",
	    "model_not_found", "not_found_error" },
	[LLMGATE_CONTEXT_LENGTH] = { 400, "invalid_request_error",
	    "context_length_exceeded", "invalid_request_error" },
	[LLMGATE_CONTENT_FILTER] = { 400, "invalid_request_error",
	    "content_filter", "invalid_request_error" },
	[LLMGATE_BAD_REQUEST] = { 400, "invalid_request_error",
	    "bad_request", "invalid_request_error" },
	[LLMGATE_SCHEMA] = { 502, "server_error", "schema_validation_failed",
	    "api_error" },
	[LLMGATE_CIRCUIT_OPEN] = { 503, "server_error", "circuit_open",
	    "overloaded_error" },
	[LLMGATE_BUDGET_EXHAUSTED] = { 429, "rate_limit_error",
	    "retry_budget_exhausted", "rate_limit_error" },
	[LLMGATE_DEADLINE] = { 504, "server_error", "deadline_exceeded",
	    "timeout_error" },
	[LLMGATE_CANCELLED] = { 503, "server_error", "cancelled",
	    "api_error" },
	[LLMGATE_INVALID_REQUEST] = { 400, "invalid_request_error",
	    "invalid_request", "invalid_request_error" },
	[LLMGATE_INTERNAL] = { 500, "server_error", "internal_error",
	    "api_error" },
};

const struct front_error *
front_http_error_of(enum llmgate_class cls)
{
	if ((unsigned)cls >= LLMGATE_CLASS_MAX)
		cls = LLMGATE_INTERNAL;
	return &front_errors[cls];
}

/*
 * A listen address: "unix:PATH", "unix:" (beside the native socket),
 * "HOST:PORT" or "[V6]:PORT" (port 0: any free port, logged).
 */
int
front_http_addr(const char *s, char **host, uint16_t *port, int *loopback,
    char **cause)
{
	struct in6_addr a6;
	struct in_addr a4;
	char *h = NULL, *p;
	unsigned long v;
	const char *colon;
	int lo;

	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '\0' && s[5] != '/') {
			if (cause != NULL)
				xasprintf(cause, "'%s': a unix: path must be "
				    "absolute", s);
			return -1;
		}
		if (strlen(s + 5) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
			if (cause != NULL)
				xasprintf(cause, "'%s': path too long", s);
			return -1;
		}
		if (loopback != NULL)
			*loopback = 1;
		return 0;
	}
	if (*s == '[') {
		if ((p = strchr(s, ']')) == NULL || p[1] != ':')
			goto bad;
		h = xstrndup(s + 1, (size_t)(p - s - 1));
		colon = p + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL || colon == s ||
		    memchr(s, ':', (size_t)(colon - s)) != NULL)
			goto bad;
		h = xstrndup(s, (size_t)(colon - s));
	}
	errno = 0;
	v = strtoul(colon + 1, &p, 10);
	if (!isdigit((unsigned char)colon[1]) || *p != '\0' || errno != 0 ||
	    v > 65535)
		goto bad;
	if (inet_pton(AF_INET, h, &a4) == 1)
		lo = (ntohl(a4.s_addr) >> 24) == 127;
	else if (inet_pton(AF_INET6, h, &a6) == 1)
		lo = IN6_IS_ADDR_LOOPBACK(&a6);
	else {
		if (cause != NULL)
			xasprintf(cause, "'%s': the host must be a numeric "
			    "address (127.0.0.1, [::1])", s);
		free(h);
		return -1;
	}
	if (loopback != NULL)
		*loopback = lo;
	if (port != NULL)
		*port = (uint16_t)v;
	if (host != NULL)
		*host = h;
	else
		free(h);
	return 0;
bad:
	free(h);
	if (cause != NULL)
		xasprintf(cause, "'%s' is not HOST:PORT, [V6]:PORT or "
		    "unix:PATH", s);
	return -1;
}

/* "unix:" is the native socket's path with -http before its .sock. */
static char *
front_http_beside(void)
{
	const char *n = front_native != NULL ? front_native :
	    "/run/llmgate/llmgate.sock";
	size_t len = strlen(n);
	char *p;

	if (len > 5 && strcmp(n + len - 5, ".sock") == 0)
		xasprintf(&p, "%.*s-http.sock", (int)(len - 5), n);
	else
		xasprintf(&p, "%s-http", n);
	return p;
}

static int
front_http_bind_unix(struct front_listener *fl, const char *path,
    char **cause)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path) {
		xasprintf(cause, "socket path too long: %s", path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			xasprintf(cause, "%s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	/* The native socket's mode and group, before anyone can connect. */
	if ((fd = server_unix_listen(path, cfg->socket_mode, cause)) == -1)
		return -1;
	if ((fl->bs = evhttp_accept_socket_with_handle(front_http, fd)) ==
	    NULL) {
		xasprintf(cause, "cannot accept on %s", path);
		unlink(path);
		close(fd);
		return -1;
	}
	fl->path = xstrdup(path);
	log_info("HTTP front listening on unix:%s", path);
	return 0;
}

static int
front_http_bind(struct front_listener *fl, char **cause)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char *host = NULL, *path, name[INET6_ADDRSTRLEN];
	uint16_t port;
	int rc;

	if (strncmp(fl->addr, "unix:", 5) == 0) {
		path = fl->addr[5] == '\0' ? front_http_beside() :
		    xstrdup(fl->addr + 5);
		rc = front_http_bind_unix(fl, path, cause);
		free(path);
		return rc;
	}
	if (front_http_addr(fl->addr, &host, &port, NULL, cause) != 0)
		return -1;
	errno = 0;
	fl->bs = evhttp_bind_socket_with_handle(front_http, host, port);
	free(host);
	if (fl->bs == NULL) {
		xasprintf(cause, "HTTP front: cannot listen on %s: %s",
		    fl->addr, errno != 0 ? strerror(errno) : "bind failed");
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(fl->bs),
	    (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->
			    sin_addr, name, sizeof name);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->
			    sin6_addr, name, sizeof name);
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		log_info("HTTP front listening on %s%s%s:%u",
		    ss.ss_family == AF_INET6 ? "[" : "", name,
		    ss.ss_family == AF_INET6 ? "]" : "", port);
	}
	return 0;
}

static void
front_http_unbind(struct front_listener *fl)
{
	if (fl->bs != NULL)
		evhttp_del_accept_socket(front_http, fl->bs);
	if (fl->path != NULL)
		unlink(fl->path);
	TAILQ_REMOVE(&front_listeners, fl, entry);
	free(fl->path);
	free(fl->addr);
	free(fl);
}

static int
front_http_listed(const struct http_conf *hc, const char *addr)
{
	size_t i;

	for (i = 0; i < hc->nlisten; i++) {
		if (strcmp(hc->listen[i], addr) == 0)
			return 1;
	}
	return 0;
}

/*
 * Bring the listeners in line with cfg: close what is gone, open what is
 * new, keep the rest (and their connections). strict: a listener that
 * cannot open is an error (start with a config file); else a warning.
 */
int
front_http_listen(int strict, char **cause)
{
	struct front_listener *fl, *next;
	const struct http_conf *hc = &cfg->http;
	char *why = NULL;
	size_t i;

	for (fl = TAILQ_FIRST(&front_listeners); fl != NULL; fl = next) {
		next = TAILQ_NEXT(fl, entry);
		if (!front_http_listed(hc, fl->addr))
			front_http_unbind(fl);
	}
	for (i = 0; i < hc->nlisten; i++) {
		TAILQ_FOREACH(fl, &front_listeners, entry) {
			if (strcmp(fl->addr, hc->listen[i]) == 0)
				break;
		}
		if (fl != NULL)
			continue;
		fl = xcalloc(1, sizeof *fl);
		fl->addr = xstrdup(hc->listen[i]);
		TAILQ_INSERT_TAIL(&front_listeners, fl, entry);
		if (front_http_bind(fl, &why) != 0) {
			TAILQ_REMOVE(&front_listeners, fl, entry);
			free(fl->addr);
			free(fl);
			if (strict) {
				*cause = why;
				return -1;
			}
			log_warnx("%s", why);
			free(why);
			why = NULL;
		}
	}
	/* A changed socket_mode or socket_group applies here too. */
	TAILQ_FOREACH(fl, &front_listeners, entry) {
		if (fl->path != NULL && (chmod(fl->path, cfg->socket_mode) != 0 ||
		    (cfg->socket_group != NULL && chown(fl->path, (uid_t)-1,
		    cfg->socket_gid) != 0)))
			log_warn("HTTP front: %s", fl->path);
	}
	return 0;
}

static void front_http_request(struct evhttp_request *, void *);

int
front_http_start(const char *native_path, int strict, char **cause)
{
	front_native = xstrdup(native_path);
	if ((front_http = evhttp_new(ev_base)) == NULL) {
		xasprintf(cause, "HTTP front: evhttp_new failed");
		return -1;
	}
	evhttp_set_allowed_methods(front_http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(front_http, FRONT_HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(front_http, FRONT_HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(front_http, cfg->max_frame);
	evhttp_set_gencb(front_http, front_http_request, NULL);
	return front_http_listen(strict, cause);
}

int
front_http_reload(void)
{
	char *cause = NULL;

	if (front_http == NULL)
		return 0;
	evhttp_set_max_body_size(front_http, cfg->max_frame);
	return front_http_listen(0, &cause);
}

/* Draining: no new connections; the calls in flight finish. */
void
front_http_unlisten(void)
{
	struct front_listener *fl;

	while ((fl = TAILQ_FIRST(&front_listeners)) != NULL)
		front_http_unbind(fl);
}

unsigned
front_http_count(void)
{
	return front_nconns;
}

unsigned
front_http_uid_count(uid_t uid)
{
	struct front_conn *fc;
	unsigned n = 0;

	TAILQ_FOREACH(fc, &front_conns, entry) {
		if (fc->uid_known && fc->uid == uid)
			n++;
	}
	return n;
}

/* Drain timeout or exit: every call in flight ends with cancelled. */
void
front_http_cancel_all(void)
{
	struct front_conn *fc, *next;

	/* A cancelled call answers and its request goes, not the conn. */
	for (fc = TAILQ_FIRST(&front_conns); fc != NULL; fc = next) {
		next = TAILQ_NEXT(fc, entry);
		if (fc->cur != NULL && fc->cur->call != NULL)
			call_cancel(fc->cur->call, "llmgated is shutting down");
	}
}

void
front_http_shutdown(void)
{
	if (front_http == NULL)
		return;
	front_http_cancel_all();
	front_http_unlisten();
	evhttp_free(front_http);
	front_http = NULL;
	free(front_native);
	front_native = NULL;
}

static void
front_http_closed(struct evhttp_connection *evcon, void *arg)
{
	struct front_conn *fc = arg;
	struct front_req *fr = fc->cur;

	if (fr != NULL) {
		/*
		 * Detached (the peer went away): the request is ours to
		 * free; else evhttp frees it with the connection.
		 */
		if (fr->ev != NULL && evhttp_request_get_connection(fr->ev) !=
		    NULL)
			fr->ev = NULL;
		fr->gone = 1;
		fr->fc = NULL;
		if (fr->call != NULL)
			call_cancel(fr->call, "the client went away");
	}
	TAILQ_REMOVE(&front_conns, fc, entry);
	front_nconns--;
	free(fc);
}

/* The connection's state, created at its first request. */
static struct front_conn *
front_http_conn(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct front_conn *fc;
	struct ucred cr;
	socklen_t crlen = sizeof cr;
	char host[INET6_ADDRSTRLEN];
	int fd, lo, one = 1;

	TAILQ_FOREACH(fc, &front_conns, entry) {
		if (fc->evcon == evcon)
			return fc;
	}
	fc = xcalloc(1, sizeof *fc);
	fc->evcon = evcon;
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_UNIX) {
		fc->kind = FRONT_UNIX;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0) {
			fc->uid_known = 1;
			fc->uid = cr.uid;
			fc->pid = cr.pid;
		}
		snprintf(fc->peer, sizeof fc->peer, "http pid %ld uid %ld",
		    (long)fc->pid, (long)fc->uid);
	} else {
		if (ss.ss_family == AF_INET) {
			lo = (ntohl(((struct sockaddr_in *)&ss)->sin_addr.
			    s_addr) >> 24) == 127;
		} else
			lo = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)
			    &ss)->sin6_addr);
		fc->kind = lo ? FRONT_LOOPBACK : FRONT_REMOTE;
		/* Answers and stream events go out whole, at once. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof one);
		if (lo && front_peer_tcp_uid(fd, &fc->uid) == 0)
			fc->uid_known = 1;
		len = sizeof ss;
		host[0] = '\0';
		if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
			if (ss.ss_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->
				    sin_addr, host, sizeof host);
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)
				    &ss)->sin6_addr, host, sizeof host);
		}
		if (fc->uid_known)
			snprintf(fc->peer, sizeof fc->peer, "http %s uid %ld",
			    host, (long)fc->uid);
		else
			snprintf(fc->peer, sizeof fc->peer, "http %s", host);
	}
	/* Once per connection, as the kernel checks a socket at connect. */
	fc->allowed = fc->uid_known && front_peer_uid_allowed(fc->uid);
	evhttp_connection_set_closecb(evcon, front_http_closed, fc);
	TAILQ_INSERT_TAIL(&front_conns, fc, entry);
	front_nconns++;
	return fc;
}

/* Common answer headers: no SDK retries on top of the daemon's. */
static void
front_http_headers(struct evhttp_request *req, const char *ctype)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	evhttp_add_header(out, "Content-Type", ctype);
	evhttp_add_header(out, "x-should-retry", "false");
}

/* The attempt list as JSON (the body's llmgate field, the header). */
json_t *
front_http_attempts(const struct llmgate_result *res)
{
	json_t *a = json_array(), *o;
	const struct llmgate_attempt *at;
	size_t i;

	for (i = 0; res != NULL && i < res->nattempts; i++) {
		at = &res->attempts[i];
		o = json_pack("{s:s, s:s, s:i, s:i, s:i}",
		    "target", at->target != NULL ? at->target : "",
		    "class", llmgate_class_name(at->cls) != NULL ?
		    llmgate_class_name(at->cls) : "?",
		    "status", (int)at->status, "ms", (int)at->ms,
		    "waited_ms", (int)at->waited_ms);
		if (at->message != NULL && at->cls != LLMGATE_OK)
			json_object_set_new(o, "message",
			    json_string(at->message));
		if (at->skipped)
			json_object_set_new(o, "skipped", json_true());
		json_array_append_new(a, o);
	}
	return a;
}

/* x-llmgate-target and x-llmgate-attempts (messages left out if long). */
static void
front_http_result_headers(struct evhttp_request *req,
    const struct llmgate_result *res)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	json_t *a;
	char *s;
	size_t i;

	if (res == NULL)
		return;
	if (res->target != NULL)
		evhttp_add_header(out, "x-llmgate-target", res->target);
	a = front_http_attempts(res);
	s = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (s != NULL && strlen(s) > FRONT_HTTP_ATTEMPTS_HDR) {
		free(s);
		for (i = 0; i < json_array_size(a); i++)
			json_object_del(json_array_get(a, i), "message");
		s = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
	}
	if (s != NULL && strlen(s) <= FRONT_HTTP_ATTEMPTS_HDR)
		evhttp_add_header(out, "x-llmgate-attempts", s);
	free(s);
	json_decref(a);
}

/*
 * Seconds until a refused call could go, from the daemon's own state of
 * the target that refused: its rate budget, cooldown or open breaker.
 */
static unsigned
front_http_retry_after(const struct llmgate_result *res)
{
	const struct provider_conf *pc;
	const struct llmgate_attempt *at;
	struct target *t;
	char *cause = NULL;
	uint64_t now = now_ms(), ms = 1000, w;

	if (res == NULL || res->nattempts == 0)
		return 1;
	at = &res->attempts[res->nattempts - 1];
	/* The call just used it: found, not made (nor evicted meanwhile). */
	if ((t = target_resolve(cfg, at->target, TARGET_UNOWNED, &pc,
	    &cause)) == NULL) {
		free(cause);
		return 1;
	}
	w = rl_wait_ms(&t->rl, 1, now);
	if (breaker_open_remaining(&t->br, now) > w)
		w = breaker_open_remaining(&t->br, now);
	target_release(t);
	if (w > ms)
		ms = w;
	return (unsigned)((ms + 999) / 1000);
}

/* Send a whole JSON answer and let the request go. */
static void
front_http_send(struct front_req *fr, int status, json_t *body,
    const struct llmgate_result *res)
{
	struct evhttp_request *req = fr->ev;
	struct evbuffer *b;
	char *s, ra[16];

	fr->ev = NULL;
	if (req == NULL) {
		json_decref(body);
		return;
	}
	if (fr->gone) {
		/* Detached from its connection: this frees it. */
		evhttp_send_reply(req, status, NULL, NULL);
		json_decref(body);
		return;
	}
	front_http_headers(req, "application/json");
	front_http_result_headers(req, res);
	if (status == 429 || status == 503 || status == 529) {
		snprintf(ra, sizeof ra, "%u", front_http_retry_after(res));
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", ra);
	}
	b = evbuffer_new();
	if ((s = json_dumps(body, JSON_COMPACT)) == NULL) {
		status = 500;
		s = xstrdup("{\"error\":{\"message\":\"the answer could "
		    "not be encoded\"}}");
	}
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\n", 1);
	free(s);
	json_decref(body);
	evhttp_send_reply(req, status, NULL, b);
	evbuffer_free(b);
}

void
front_http_json(struct front_req *fr, int status, json_t *body,
    const struct llmgate_result *res)
{
	front_http_send(fr, status, body, res);
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
	json_t *body;

	if (status == 0)
		status = fe->status;
	if (status == 503 && fr->d->overloaded != 0 &&
	    (cls == LLMGATE_OVERLOADED || cls == LLMGATE_CIRCUIT_OPEN))
		status = fr->d->overloaded;
	if (code == NULL)
		code = fe->code;
	body = fr->d->error_body(fr, status, fe, code, msg);
	if (body == NULL && msg != NULL) {
		/* jansson refuses invalid UTF-8 (a header's bytes in it). */
		char *safe = xstrdup(msg), *p;

		for (p = safe; *p != '\0'; p++) {
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		}
		body = fr->d->error_body(fr, status, fe, code, safe);
		free(safe);
	}
	if (res != NULL && fr->d->attach_attempts)
		json_object_set_new(body, "llmgate", json_pack("{s:o}",
		    "attempts", front_http_attempts(res)));
	if (fr->started) {
		fr->d->stream_error(fr, body);
		front_http_end(fr);
		return;
	}
	front_http_send(fr, status, body, res);
}

/* Open the event stream: 200 and its headers, once. */
static void
front_http_sse_start(struct front_req *fr)
{
	struct evkeyvalq *out;

	if (fr->started || fr->ev == NULL)
		return;
	fr->started = 1;
	if (fr->gone)
		return;
	out = evhttp_request_get_output_headers(fr->ev);
	front_http_headers(fr->ev, "text/event-stream");
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evhttp_send_reply_start(fr->ev, 200, "OK");
}

/* All written: a held upstream transfer may go on. */
static void
front_http_written(struct evhttp_connection *evcon, void *arg)
{
	struct front_req *fr = arg;

	if (fr->paused && fr->call != NULL) {
		fr->paused = 0;
		call_hold(fr->call, 0);
	}
}

/*
 * Queue one piece of the stream. Past FRONT_HTTP_HIGH unwritten bytes
 * the upstream transfer is held until the client has read it all.
 */
static void
front_http_chunk(struct front_req *fr, struct evbuffer *b)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(fr->ev);

	evhttp_send_reply_chunk_with_cb(fr->ev, b, front_http_written, fr);
	if (evcon == NULL || fr->call == NULL || fr->paused)
		return;
	if (evbuffer_get_length(bufferevent_get_output(
	    evhttp_connection_get_bufferevent(evcon))) > FRONT_HTTP_HIGH) {
		fr->paused = 1;
		call_hold(fr->call, 1);
	}
}

/*
 * One event, written now. A client that lets max_output pile up unread
 * is dropped, and its call cancelled.
 */
void
front_http_sse(struct front_req *fr, const char *event, json_t *data)
{
	struct evbuffer *b;
	struct evhttp_connection *evcon;
	char *s;

	front_http_sse_start(fr);
	if (fr->gone || fr->ev == NULL || fr->dropped) {
		json_decref(data);
		return;
	}
	s = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	if (s == NULL)
		s = xstrdup("{\"error\":{\"message\":\"an event could not "
		    "be encoded\"}}");
	b = evbuffer_new();
	if (event != NULL)
		evbuffer_add_printf(b, "event: %s\n", event);
	evbuffer_add_printf(b, "data: %s\n\n", s);
	free(s);
	front_http_chunk(fr, b);
	evbuffer_free(b);
	evcon = evhttp_request_get_connection(fr->ev);
	if (evcon != NULL && evbuffer_get_length(bufferevent_get_output(
	    evhttp_connection_get_bufferevent(evcon))) > cfg->max_output) {
		log_info("client %s: dropped: not reading its stream",
		    fr->fc != NULL ? fr->fc->peer : "?");
		fr->dropped = 1;
		/* Not from inside the dialect's own call into us. */
		event_active(fr->cancel_ev, EV_TIMEOUT, 1);
	}
}

void
front_http_sse_raw(struct front_req *fr, const char *text)
{
	struct evbuffer *b;

	front_http_sse_start(fr);
	if (fr->gone || fr->ev == NULL || fr->dropped)
		return;
	b = evbuffer_new();
	evbuffer_add(b, text, strlen(text));
	front_http_chunk(fr, b);
	evbuffer_free(b);
}

void
front_http_end(struct front_req *fr)
{
	struct evhttp_request *req = fr->ev;
	struct evhttp_connection *evcon;

	front_http_sse_start(fr);
	fr->ev = NULL;
	if (req == NULL)
		return;
	if (fr->dropped && !fr->gone &&
	    (evcon = evhttp_request_get_connection(req)) != NULL) {
		/* Ending would wait for the unread output: close it now
		 * (which frees the request too). */
		evhttp_connection_free(evcon);
		return;
	}
	evhttp_send_reply_end(req);
}

static void
front_http_drop(evutil_socket_t fd, short events, void *arg)
{
	struct front_req *fr = arg;

	if (fr->call != NULL)
		call_cancel(fr->call, "the client does not read its stream");
}

/*
 * evhttp does not read while a request waits for its answer: watch the
 * socket ourselves, so that a client that hangs up cancels its call at
 * once. Data instead (a pipelined request) means it is still there.
 */
static void
front_http_eof(evutil_socket_t fd, short events, void *arg)
{
	struct front_req *fr = arg;
	char c;
	ssize_t n;

	while ((n = recv(fd, &c, 1, MSG_PEEK)) == -1 && errno == EINTR)
		;
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	event_del(fr->eof_ev);
	if (n > 0 || fr->call == NULL)
		return;
	fr->hungup = 1;
	call_cancel(fr->call, "the client went away");
}

static void
front_req_free(struct front_req *fr)
{
	if (fr->eof_ev != NULL)
		event_free(fr->eof_ev);
	event_free(fr->cancel_ev);
	if (fr->fc != NULL && fr->fc->cur == fr)
		fr->fc->cur = NULL;
	free(fr->model);
	free(fr->dstate);
	free(fr->err_msg);
	free(fr);
}

static void
front_sink_chunk(void *arg, const struct llmgate_chunk *ch)
{
	struct front_req *fr = arg;

	if (fr->gone || fr->dropped || !fr->stream)
		return;
	fr->d->chunk(fr, ch);
}

static void
front_sink_done(void *arg, const struct llmgate_result *res)
{
	struct front_req *fr = arg;
	struct evhttp_connection *evcon;

	fr->call = NULL;
	if (fr->eof_ev != NULL)
		event_del(fr->eof_ev);
	if (fr->hungup && fr->ev != NULL && !fr->gone &&
	    (evcon = evhttp_request_get_connection(fr->ev)) != NULL) {
		/* Nobody to answer: close, which frees the request. */
		fr->ev = NULL;
		evhttp_connection_free(evcon);
		front_req_free(fr);
		return;
	}
	if (fr->ev != NULL && !fr->gone &&
	    (evcon = evhttp_request_get_connection(fr->ev)) != NULL)
		evhttp_connection_set_timeout(evcon, FRONT_HTTP_TIMEOUT_S);
	if (res->cls == LLMGATE_OK)
		fr->d->done(fr, res);
	else
		front_http_fail(fr, res->cls, 0, NULL, res->message, res);
	if (fr->ev != NULL) {
		/* A dialect that did not answer: never leave it hanging. */
		front_http_fail(fr, LLMGATE_INTERNAL, 0, NULL,
		    "no answer was produced", res);
	}
	front_req_free(fr);
}

static const struct call_sink front_sink = {
	.chunk = front_sink_chunk,
	.done = front_sink_done,
};

/* A string the request keeps: copied into its zone. */
char *
front_http_zdup(msgpack_zone *z, const char *s, size_t len)
{
	char *p = msgpack_zone_malloc(z, len + 1);

	if (p == NULL)
		fatalx("%s: out of memory", __func__);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void *
front_http_zalloc(msgpack_zone *z, size_t n, size_t size)
{
	void *p;

	if (n != 0 && size > SIZE_MAX / n)
		fatalx("%s: overflow", __func__);
	if ((p = msgpack_zone_malloc(z, n * size != 0 ? n * size : 1)) ==
	    NULL)
		fatalx("%s: out of memory", __func__);
	memset(p, 0, n * size != 0 ? n * size : 1);
	return p;
}

/* Does a provider name model in its models list? */
static int
front_http_declares(const struct provider_conf *pc, const char *model)
{
	return config_model(pc, model) != NULL;
}

/*
 * A client's model name to targets: "provider/model", a route (its
 * targets), or a bare model exactly one provider declares. Appended to
 * req->targets; -1 with *cause (and *status) when it names nothing.
 */
static int
front_http_add_model(struct llmgate_request *req, size_t *cap,
    msgpack_zone *z, const char *model, int *status, char **cause)
{
	const struct route_conf *rc;
	const struct provider_conf *found = NULL;
	const char *slash = strchr(model, '/');
	char prov[128];
	size_t i, n = 0;
	const char *names[CALL_MAX_TARGETS];
	char *owned = NULL;

	if (*model == '\0') {
		*status = 400;
		xasprintf(cause, "model must not be empty");
		return -1;
	}
	if (slash != NULL && (size_t)(slash - model) < sizeof prov) {
		memcpy(prov, model, (size_t)(slash - model));
		prov[slash - model] = '\0';
		if (config_provider(cfg, prov) != NULL) {
			names[n++] = model;
			goto add;
		}
	}
	if ((rc = config_route(cfg, model)) != NULL) {
		for (i = 0; i < rc->ntargets && n < CALL_MAX_TARGETS; i++)
			names[n++] = rc->targets[i];
		goto add;
	}
	for (i = 0; i < cfg->nproviders; i++) {
		if (!front_http_declares(&cfg->providers[i], model))
			continue;
		if (found != NULL) {
			*status = 400;
			xasprintf(cause, "model '%s' is declared by providers "
			    "'%s' and '%s': name it as provider/model", model,
			    found->name, cfg->providers[i].name);
			return -1;
		}
		found = &cfg->providers[i];
	}
	if (found == NULL) {
		*status = 404;
		xasprintf(cause, "the model '%s' does not exist: name a route, "
		    "provider/model, or a model a provider declares (GET "
		    "/v1/models lists them)", model);
		return -1;
	}
	xasprintf(&owned, "%s/%s", found->name, model);
	names[n++] = owned;
add:
	for (i = 0; i < n; i++) {
		if (req->ntargets >= CALL_MAX_TARGETS) {
			*status = 400;
			xasprintf(cause, "a fallback chain has at most %d "
			    "targets", CALL_MAX_TARGETS);
			free(owned);
			return -1;
		}
		if (req->ntargets == *cap) {
			char **t = front_http_zalloc(z, *cap * 2 + 4,
			    sizeof *t);

			if (req->ntargets != 0)
				memcpy(t, req->targets, req->ntargets *
				    sizeof *t);
			req->targets = t;
			*cap = *cap * 2 + 4;
		}
		req->targets[req->ntargets++] = front_http_zdup(z, names[i],
		    strlen(names[i]));
	}
	free(owned);
	return 0;
}

/*
 * The chain: model, then the body's models array (OpenRouter's
 * convention), or the x-llmgate-models header (comma-separated).
 */
int
front_http_targets(struct front_req *fr, struct llmgate_request *req,
    msgpack_zone *z, const char *model, json_t *models)
{
	const char *hdr;
	char *list, *p, *last, *cause = NULL;
	size_t cap = 0, i;
	int status = 400;
	json_t *v;

	if (front_http_add_model(req, &cap, z, model, &status, &cause) != 0)
		goto fail;
	if (models != NULL) {
		if (!json_is_array(models)) {
			xasprintf(&cause, "models must be an array of model "
			    "names");
			goto fail;
		}
		json_array_foreach(models, i, v) {
			if (!json_is_string(v)) {
				xasprintf(&cause, "models[%zu] must be a "
				    "string", i);
				goto fail;
			}
			if (i == 0 && strcmp(json_string_value(v), model) == 0)
				continue;
			if (front_http_add_model(req, &cap, z,
			    json_string_value(v), &status, &cause) != 0)
				goto fail;
		}
	}
	hdr = fr->ev == NULL ? NULL : evhttp_find_header(
	    evhttp_request_get_input_headers(fr->ev), "x-llmgate-models");
	if (hdr != NULL) {
		list = xstrdup(hdr);
		for (p = strtok_r(list, ", ", &last); p != NULL;
		    p = strtok_r(NULL, ", ", &last)) {
			if (front_http_add_model(req, &cap, z, p, &status,
			    &cause) != 0) {
				free(list);
				goto fail;
			}
		}
		free(list);
	}
	return 0;
fail:
	front_http_refusal(fr, status == 404 ? LLMGATE_NOT_FOUND :
	    LLMGATE_INVALID_REQUEST, status, cause);
	free(cause);
	return -1;
}

void
front_http_refusal(struct front_req *fr, enum llmgate_class cls, int status,
    const char *msg)
{
	if (fr->err_msg != NULL)
		return;
	fr->err_cls = cls;
	fr->err_status = status;
	fr->err_msg = xstrdup(msg);
}

void
front_http_bad(struct front_req *fr, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("vasprintf");
	va_end(ap);
	front_http_refusal(fr, LLMGATE_INVALID_REQUEST, 400, msg);
	free(msg);
}

/*
 * A comma-separated header value as a list of strings in the zone. With
 * rest set, an item that starts with it takes the rest of the value as
 * written, commas included (x-llmgate-reject's match:REGEX).
 */
static void
front_http_list(msgpack_zone *z, const char *v, const char *rest,
    char ***out, size_t *n)
{
	size_t cap = 0, len;
	const char *end;

	*out = NULL;
	*n = 0;
	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (*v == '\0')
			break;
		if (rest != NULL && strncmp(v, rest, strlen(rest)) == 0)
			end = v + strlen(v);
		else if ((end = strchr(v, ',')) == NULL)
			end = v + strlen(v);
		len = (size_t)(end - v);
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (*n == cap) {
			char **grown;

			cap = cap * 2 + 4;
			grown = front_http_zalloc(z, cap, sizeof *grown);
			if (*n != 0)
				memcpy(grown, *out, *n * sizeof *grown);
			*out = grown;
		}
		(*out)[(*n)++] = front_http_zdup(z, v, len);
		v = end;
	}
}

/* The per-call options headers. -1 after answering a bad one. */
static int
front_http_options(struct front_req *fr, struct llmgate_request *req,
    msgpack_zone *z)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(fr->ev);
	const char *v;
	char *end, msg[160];
	unsigned long ms;
	int i;

	if ((v = evhttp_find_header(in, "x-llmgate-priority")) != NULL) {
		if ((i = llmgate_priority_from_name(v)) < 0) {
			snprintf(msg, sizeof msg, "x-llmgate-priority must be "
			    "high, normal or low");
			goto bad;
		}
		req->priority = (enum llmgate_priority)i;
	}
	if ((v = evhttp_find_header(in, "x-llmgate-on-cut")) != NULL) {
		if ((i = llmgate_on_cut_from_name(v)) < 0) {
			snprintf(msg, sizeof msg, "x-llmgate-on-cut must be "
			    "resume, restart or fail");
			goto bad;
		}
		req->on_cut = (enum llmgate_on_cut)i;
		/* An event stream cannot take back what it sent. */
		if (fr->stream && req->on_cut == LLMGATE_CUT_RESTART) {
			snprintf(msg, sizeof msg, "x-llmgate-on-cut: restart "
			    "cannot be streamed over HTTP (use resume or fail)");
			goto bad;
		}
	}
	if ((v = evhttp_find_header(in, "x-llmgate-timeout-ms")) != NULL) {
		errno = 0;
		ms = strtoul(v, &end, 10);
		if (!isdigit((unsigned char)*v) || *end != '\0' || errno != 0 ||
		    ms == 0 || ms > UINT32_MAX) {
			snprintf(msg, sizeof msg, "x-llmgate-timeout-ms must "
			    "be a number of milliseconds, 1 or more");
			goto bad;
		}
		req->timeout_ms = (uint32_t)ms;
	}
	/* Checked with the rest of the request when the call starts. */
	if ((v = evhttp_find_header(in, "x-llmgate-fallback-on")) != NULL)
		front_http_list(z, v, NULL, &req->fallback_on,
		    &req->nfallback_on);
	if ((v = evhttp_find_header(in, "x-llmgate-reject")) != NULL)
		front_http_list(z, v, "match:", &req->reject, &req->nreject);
	return 0;
bad:
	front_http_refusal(fr, LLMGATE_INVALID_REQUEST, 400, msg);
	return -1;
}

/* Who asked, for fair shares and logs: x-llmgate-client, else the peer. */
static void
front_http_client(struct front_req *fr, const char *token_name)
{
	struct front_conn *fc = fr->fc;
	const char *name;
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	const char *p;
	char *q;

	name = evhttp_find_header(evhttp_request_get_input_headers(fr->ev),
	    "x-llmgate-client");
	if (name == NULL || *name == '\0')
		name = token_name;
	if (name != NULL && *name != '\0')
		snprintf(fr->client_name, sizeof fr->client_name,
		    "%.32s (%s)", name, fc->peer);
	else {
		snprintf(fr->client_name, sizeof fr->client_name, "%s",
		    fc->peer);
		name = fr->client_name;
	}
	for (q = fr->client_name; *q != '\0'; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	}
	for (p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	fr->client.id = h ^ (uint64_t)(fc->uid_known ? fc->uid : 0xffff) << 32;
	fr->client.name = fr->client_name;
	/* Targets a caller makes count against its uid's share; a caller
	 * known only by a token shares nobody's. */
	fr->client.uid = fc->uid_known ? fc->uid : (uid_t)65534;
}

/* Start the call the dialect translated; it answers through the sink. */
static void
front_http_call(struct front_req *fr, struct llmgate_request *req,
    msgpack_zone *z)
{
	struct evhttp_connection *evcon;

	req->stream = fr->stream;
	if ((evcon = evhttp_request_get_connection(fr->ev)) != NULL)
		evhttp_connection_set_timeout(evcon, FRONT_HTTP_CALL_S);
	fr->fc->cur = fr;
	fr->call = call_start(req, z, &front_sink, fr, &fr->client);
	if (evcon != NULL) {
		fr->eof_ev = event_new(ev_base, bufferevent_getfd(
		    evhttp_connection_get_bufferevent(evcon)),
		    EV_READ | EV_PERSIST, front_http_eof, fr);
		event_add(fr->eof_ev, NULL);
	}
}

static void
front_http_models(struct front_req *fr)
{
	json_t *data = json_array(), *o;
	const struct provider_conf *pc;
	size_t i, j;
	char *id;

	for (i = 0; i < cfg->nroutes; i++) {
		o = json_pack("{s:s, s:s, s:i, s:s, s:o}", "id",
		    cfg->routes[i].name, "object", "model", "created", 0,
		    "owned_by", "llmgate", "targets", json_array());
		for (j = 0; j < cfg->routes[i].ntargets; j++)
			json_array_append_new(json_object_get(o, "targets"),
			    json_string(cfg->routes[i].targets[j]));
		json_array_append_new(data, o);
	}
	for (i = 0; i < cfg->nproviders; i++) {
		pc = &cfg->providers[i];
		for (j = 0; j < pc->nmodels; j++) {
			xasprintf(&id, "%s/%s", pc->name, pc->models[j].name);
			json_array_append_new(data, json_pack("{s:s, s:s, s:i, "
			    "s:s}", "id", id, "object", "model", "created", 0,
			    "owned_by", pc->name));
			free(id);
		}
	}
	front_http_send(fr, 200, json_pack("{s:s, s:o}", "object", "list",
	    "data", data), NULL);
}

/* Refuse before any dialect work; the request is answered and freed. */
static void
front_http_refuse(struct front_req *fr, enum llmgate_class cls, int status,
    const char *code, const char *msg)
{
	front_http_fail(fr, cls, status, code, msg, NULL);
	front_req_free(fr);
}

/* A header's value if it is a small number, for logs; else "". */
static const char *
front_http_hdr_num(struct evhttp_request *req, const char *name)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(
	    req), name);

	if (v == NULL || *v == '\0' || strlen(v) > 6 ||
	    strspn(v, "0123456789") != strlen(v))
		return "";
	return v;
}

static void
front_http_request(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_request_get_uri(req), *token_name = NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct front_dialect *d = &front_openai;
	struct evbuffer *in;
	struct front_req *fr;
	struct front_conn *fc;
	struct llmgate_request *lr;
	msgpack_zone *z;
	json_error_t jerr;
	json_t *body;
	char msg[256];
	size_t len, q;
	int need_token;

	q = strcspn(path, "?");
	log_debug("HTTP %s %.*s from connection %p%s%s",
	    cmd == EVHTTP_REQ_POST ? "POST" : cmd == EVHTTP_REQ_GET ? "GET" :
	    "other", (int)(q < 64 ? q : 64), path,
	    (void *)evhttp_request_get_connection(req),
	    evhttp_find_header(evhttp_request_get_input_headers(req),
	    "x-stainless-retry-count") != NULL ? ", SDK retry count " : "",
	    front_http_hdr_num(req, "x-stainless-retry-count"));
	if (q == strlen("/v1/messages") && strncmp(path, "/v1/messages",
	    q) == 0)
		d = &front_anthropic;
	fr = xcalloc(1, sizeof *fr);
	fr->ev = req;
	fr->d = d;
	fr->cancel_ev = event_new(ev_base, -1, 0, front_http_drop, fr);
	fr->created = (int64_t)time(NULL);
	fr->fc = fc = front_http_conn(req);
	if (fc->cur != NULL) {
		/* evhttp answers one request of a connection at a time. */
		front_http_refuse(fr, LLMGATE_INVALID_REQUEST, 400, NULL,
		    "one request at a time on a connection");
		return;
	}

	/* Who may call. */
	need_token = fc->kind == FRONT_REMOTE ||
	    (fc->kind == FRONT_LOOPBACK && cfg->http.ntokens != 0);
	if (need_token) {
		token_name = front_peer_token(
		    evhttp_request_get_input_headers(req));
		if (token_name == NULL) {
			front_http_refuse(fr, LLMGATE_AUTH, 401,
			    "invalid_api_key", "a valid token is needed: "
			    "Authorization: Bearer TOKEN (or x-api-key)");
			return;
		}
	} else if (fc->kind == FRONT_LOOPBACK && !fc->allowed) {
		snprintf(msg, sizeof msg, "%s may not use llmgated (the socket "
		    "allows its owner%s)", fc->uid_known ? "this user" :
		    "a caller whose user cannot be told",
		    cfg->socket_group != NULL ? " and group" : "");
		front_http_refuse(fr, LLMGATE_PERMISSION, 403,
		    "permission_denied", msg);
		return;
	}
	if (fc->uid_known && cfg->max_conns_per_uid != 0 &&
	    front_http_uid_count(fc->uid) + conn_uid_count(fc->uid) >
	    cfg->max_conns_per_uid) {
		snprintf(msg, sizeof msg, "too many connections for uid %ld "
		    "(limit %u)", (long)fc->uid, cfg->max_conns_per_uid);
		front_http_refuse(fr, LLMGATE_RATE_LIMITED, 429,
		    "too_many_connections", msg);
		return;
	}
	if (front_nconns + conn_count() > cfg->max_clients) {
		front_http_refuse(fr, LLMGATE_OVERLOADED, 503, NULL,
		    "too many clients connected");
		return;
	}
	front_http_client(fr, token_name);

	if (q == strlen("/v1/models") && strncmp(path, "/v1/models", q) == 0) {
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
			front_http_refuse(fr, LLMGATE_INVALID_REQUEST, 405,
			    "method_not_allowed", "use GET /v1/models");
			return;
		}
		front_http_models(fr);
		front_req_free(fr);
		return;
	}
	if (!((q == strlen("/v1/messages") && strncmp(path, "/v1/messages",
	    q) == 0) || (q == strlen("/v1/chat/completions") &&
	    strncmp(path, "/v1/chat/completions", q) == 0))) {
		snprintf(msg, sizeof msg, "no such endpoint: %.*s (llmgated "
		    "serves POST /v1/chat/completions, POST /v1/messages and "
		    "GET /v1/models)", (int)(q < 100 ? q : 100), path);
		front_http_refuse(fr, LLMGATE_NOT_FOUND, 404, "not_found", msg);
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		front_http_refuse(fr, LLMGATE_INVALID_REQUEST, 405,
		    "method_not_allowed", "use POST");
		return;
	}
	if (server_draining()) {
		front_http_refuse(fr, LLMGATE_OVERLOADED, 503, NULL,
		    "llmgated is shutting down: no new calls");
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	body = json_loadb((const char *)evbuffer_pullup(in, -1), len,
	    JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL || !json_is_object(body)) {
		snprintf(msg, sizeof msg, "the body is not a JSON object%s%s",
		    body == NULL ? ": " : "", body == NULL ? jerr.text : "");
		json_decref(body);
		front_http_refuse(fr, LLMGATE_INVALID_REQUEST, 400,
		    "invalid_json", msg);
		return;
	}
	snprintf(fr->id, sizeof fr->id, "%s%llx%06llx", d->id_prefix,
	    (unsigned long long)fr->created,
	    (unsigned long long)(++front_seq & 0xffffff));
	/* The dialect translates; the call answers through the sink. */
	if ((z = msgpack_zone_new(8192)) == NULL)
		fatalx("msgpack_zone_new");
	lr = front_http_zalloc(z, 1, sizeof *lr);
	if (d->parse(fr, body, z, lr) != 0 || front_http_targets(fr, lr, z,
	    fr->model, json_object_get(body, "models")) != 0 ||
	    front_http_options(fr, lr, z) != 0) {
		json_decref(body);
		msgpack_zone_free(z);
		front_http_refuse(fr, fr->err_cls, fr->err_status, NULL,
		    fr->err_msg);
		return;
	}
	json_decref(body);
	front_http_call(fr, lr, z);
}
