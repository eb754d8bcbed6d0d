/*
 * front-http.c: the HTTP front, a second front beside the native socket.
 * It owns the listeners (loopback TCP, a Unix socket, remote addresses
 * only when the config says so), decides who may call, and carries a
 * request to one dialect (front-openai.c, front-anthropic.c), which
 * translates it into the same struct llmgate_request the native front
 * hands to call_start(), and the call's chunks and result back into its
 * own format. The connections (HTTP/1.1, parsed by http-parser) are
 * front-wire.c's.
 *
 * Who may call: on the Unix socket the kernel checks the socket's mode
 * and group, and SO_PEERCRED names the caller; on loopback TCP the
 * caller's uid comes from the kernel's socket table and the same mode and
 * group rules are applied to it (front-peer.c), unless a tokens_file is
 * configured, which then makes a bearer token mandatory on every TCP
 * listener. max_conns_per_uid counts HTTP and native connections together,
 * and a request counts against its user's calls and bytes (quota.c) as a
 * native call does.
 *
 * Answers are written by front-http-reply.c; a request's way from the
 * dialect's translation to a running call and its end, by
 * front-http-call.c.
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

#include <event2/listener.h>

#include "llmgated.h"

struct front_listener {
	char *addr; /* as configured */
	char *path; /* a Unix socket we bound: unlinked */
	struct evconnlistener *lev;
	struct event *resume; /* accepting again after running out */
	TAILQ_ENTRY(front_listener) entry;
};

static int front_http_on;
static TAILQ_HEAD(, front_conn) front_conns = TAILQ_HEAD_INITIALIZER(
    front_conns);
static TAILQ_HEAD(, front_listener) front_listeners = TAILQ_HEAD_INITIALIZER(
    front_listeners);
static unsigned front_nconns;
static char *front_native; /* the native socket's path */
static uint64_t front_seq;

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
				xasprintf(cause,
				    "'%s': a unix: path must be "
				    "absolute",
				    s);
			return -1;
		}
		if (strlen(s + 5) >=
		    sizeof((struct sockaddr_un *)0)->sun_path) {
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
			xasprintf(cause,
			    "'%s': the host must be a numeric "
			    "address (127.0.0.1, [::1])",
			    s);
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
		xasprintf(cause,
		    "'%s' is not HOST:PORT, [V6]:PORT or "
		    "unix:PATH",
		    s);
	return -1;
}

/* "unix:" is the native socket's path with -http before its .sock. */
static char *
front_http_beside(void)
{
	const char *n =
	    front_native != NULL ? front_native : "/run/llmgate/llmgate.sock";
	size_t len = strlen(n);
	char *p;

	if (len > 5 && strcmp(n + len - 5, ".sock") == 0)
		xasprintf(&p, "%.*s-http.sock", (int)(len - 5), n);
	else
		xasprintf(&p, "%s-http", n);
	return p;
}

static void front_http_accept(struct evconnlistener *, evutil_socket_t,
    struct sockaddr *, int, void *);

static void
front_http_resume(evutil_socket_t fd, short events, void *arg)
{
	struct front_listener *fl = arg;

	if (fl->lev != NULL && !server_draining())
		evconnlistener_enable(fl->lev);
}

/* Out of descriptors: pause for a second rather than spin (as server.c). */
static void
front_http_accept_error(struct evconnlistener *lev, void *arg)
{
	struct front_listener *fl = arg;
	struct timeval tv = { 1, 0 };
	int err = EVUTIL_SOCKET_ERROR();

	log_warnx("HTTP front: accept: %s%s",
	    evutil_socket_error_to_string(err),
	    err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM ?
	        "; pausing for a second" :
	        "");
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(lev);
		if (fl->resume == NULL)
			fl->resume =
			    evtimer_new(ev_base, front_http_resume, fl);
		evtimer_add(fl->resume, &tv);
	}
}

/* A new listener's callbacks: fl is its argument. */
static int
front_http_listening(struct front_listener *fl)
{
	if (fl->lev == NULL)
		return -1;
	evconnlistener_set_error_cb(fl->lev, front_http_accept_error);
	return 0;
}

static int
front_http_bind_unix(struct front_listener *fl, const char *path, char **cause)
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
	fl->lev = evconnlistener_new(ev_base, front_http_accept, fl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (front_http_listening(fl) != 0) {
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
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
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
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		len = sizeof *sin;
	} else {
		(void)inet_pton(AF_INET6, host, &sin6->sin6_addr);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		len = sizeof *sin6;
	}
	free(host);
	errno = 0;
	fl->lev = evconnlistener_new_bind(ev_base, front_http_accept, fl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    -1, (struct sockaddr *)&ss, (int)len);
	if (front_http_listening(fl) != 0) {
		xasprintf(cause, "HTTP front: cannot listen on %s: %s",
		    fl->addr, errno != 0 ? strerror(errno) : "bind failed");
		return -1;
	}
	len = sizeof ss;
	if (getsockname(evconnlistener_get_fd(fl->lev), (struct sockaddr *)&ss,
	        &len) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET,
			    &((struct sockaddr_in *)&ss)->sin_addr, name,
			    sizeof name);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else {
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)&ss)->sin6_addr, name,
			    sizeof name);
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
	if (fl->lev != NULL)
		evconnlistener_free(fl->lev);
	if (fl->resume != NULL)
		event_free(fl->resume);
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
	/*
	 * A changed socket_mode or socket_group applies to the unix sockets
	 * kept; new ones are born with them (server_unix_listen()).
	 */
	TAILQ_FOREACH(fl, &front_listeners, entry) {
		if (fl->path != NULL &&
		    (chmod(fl->path, cfg->socket_mode) != 0 ||
		        (cfg->socket_group != NULL &&
		            chown(fl->path, (uid_t)-1, cfg->socket_gid) != 0)))
			log_warn("HTTP front: %s", fl->path);
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
	return 0;
}

int
front_http_start(const char *native_path, int strict, char **cause)
{
	front_native = xstrdup(native_path);
	front_http_on = 1;
	front_peer_load(cfg);
	return front_http_listen(strict, cause);
}

int
front_http_reload(void)
{
	char *cause = NULL;

	if (!front_http_on)
		return 0;
	front_wire_reload();
	front_peer_load(cfg);
	return front_http_listen(0, &cause);
}

/*
 * Draining: no new connections; idle ones close, the calls in flight
 * finish and their connections close after the answer.
 */
void
front_http_unlisten(void)
{
	struct front_listener *fl;

	while ((fl = TAILQ_FIRST(&front_listeners)) != NULL)
		front_http_unbind(fl);
	front_wire_drain();
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

void
front_http_peers(json_t *peers, uid_t uid)
{
	struct front_conn *fc;
	struct client_ident id;

	TAILQ_FOREACH(fc, &front_conns, entry) {
		if (json_array_size(peers) >= CLIENTS_PEERS_MAX)
			break;
		if (uid != (uid_t)-1 && (!fc->uid_known || fc->uid != uid))
			continue;
		/* Between requests: who the kernel says it is. */
		if (fc->cur != NULL && fc->cur->client.ident != NULL)
			id = fc->cur->ident;
		else {
			memset(&id, 0, sizeof id);
			id.uid = fc->uid_known ? fc->uid : (uid_t)-1;
			id.pid = fc->pid;
			snprintf(id.unit, sizeof id.unit, "%s", fc->unit);
		}
		json_array_append_new(peers,
		    clients_peer_json(cfg, "http", &id,
		        fc->cur != NULL && fc->cur->call != NULL, fc->tokens));
	}
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
	if (!front_http_on)
		return;
	front_http_cancel_all();
	front_http_unlisten();
	front_wire_shutdown();
	front_http_on = 0;
	front_peer_free();
	free(front_native);
	front_native = NULL;
}

/*
 * The connection ends. A request whose call runs is detached from it
 * (its answer goes nowhere) and its call cancelled.
 */
void
front_http_closed(struct front_conn *fc)
{
	struct front_req *fr = fc->cur;

	TAILQ_REMOVE(&front_conns, fc, entry);
	if (fr != NULL) {
		fc->cur = NULL;
		fr->w = NULL;
		fr->gone = 1;
		fr->fc = NULL;
		if (fr->call != NULL)
			call_cancel(fr->call, "the client went away");
	}
	front_nconns--;
	clients_conn_leave(&fc->cls);
	free(fc);
}

/*
 * A new connection: who it is, counted (max_conns_per_uid, max_clients)
 * from now until it closes.
 */
static void
front_http_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct front_conn *fc;
	struct ucred cr;
	socklen_t crlen = sizeof cr;
	char host[INET6_ADDRSTRLEN];
	int lo, one = 1;

	fc = xcalloc(1, sizeof *fc);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_UNIX) {
		fc->kind = FRONT_UNIX;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0) {
			fc->uid_known = 1;
			fc->uid = cr.uid;
			fc->pid = cr.pid;
			clients_unit_of_pid(fc->pid, fc->unit, sizeof fc->unit);
		}
		snprintf(fc->peer, sizeof fc->peer, "http pid %ld uid %ld",
		    (long)fc->pid, (long)fc->uid);
	} else {
		if (ss.ss_family == AF_INET) {
			lo = (ntohl(((struct sockaddr_in *)&ss)
			                ->sin_addr.s_addr) >>
			         24) == 127;
		} else
			lo = IN6_IS_ADDR_LOOPBACK(
			    &((struct sockaddr_in6 *)&ss)->sin6_addr);
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
				inet_ntop(AF_INET,
				    &((struct sockaddr_in *)&ss)->sin_addr,
				    host, sizeof host);
			else
				inet_ntop(AF_INET6,
				    &((struct sockaddr_in6 *)&ss)->sin6_addr,
				    host, sizeof host);
		}
		if (fc->uid_known)
			snprintf(fc->peer, sizeof fc->peer, "http %s uid %ld",
			    host, (long)fc->uid);
		else
			snprintf(fc->peer, sizeof fc->peer, "http %s", host);
	}
	/* Once per connection, as the kernel checks a socket at connect. */
	fc->allowed = fc->uid_known && front_peer_uid_allowed(fc->uid);
	TAILQ_INSERT_TAIL(&front_conns, fc, entry);
	front_nconns++;
	fc->w = front_wire_new(fd, fc);
}

/*
 * A model of GET /v1/models: OpenAI's {"id", "object", "created",
 * "owned_by"}, or Anthropic's {"type", "id", "display_name", "created_at"}
 * for a caller that sends anthropic-version (the Anthropic SDKs do).
 */
static json_t *
front_http_model(const char *id, const char *owner, int anthropic)
{
	if (anthropic)
		return json_pack("{s:s, s:s, s:s, s:s}", "type", "model", "id",
		    id, "display_name", id, "created_at",
		    "1970-01-01T00:00:00Z");
	return json_pack("{s:s, s:s, s:i, s:s}", "id", id, "object", "model",
	    "created", 0, "owned_by", owner);
}

static json_t *
front_http_model_list(json_t *o, const char *key, char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	json_object_set_new(o, key, a);
	return o;
}

/*
 * The id of /v1/models/ID, percent-decoded: the Node SDKs send
 * "oa%2Fgpt-x", the Python SDK "oa/gpt-x". NULL if it cannot be an id.
 */
static char *
front_http_model_id(const char *s, size_t len)
{
	char *id = xmalloc(len + 1), *o = id, hex[3] = { 0, 0, 0 };
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (len - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
		    !isxdigit((unsigned char)s[i + 2]) ||
		    (s[i + 1] == '0' && s[i + 2] == '0')) {
			free(id);
			return NULL;
		}
		hex[0] = s[i + 1];
		hex[1] = s[i + 2];
		*o++ = (char)strtoul(hex, NULL, 16);
		i += 2;
	}
	*o = '\0';
	return id;
}

/*
 * GET /v1/models: the routes (with their targets), pools and the models
 * providers declare, in the dialect's list format; with want (an id from
 * /v1/models/ID, NULL for the list) that one model, or 404.
 */
static void
front_http_models(struct front_req *fr, const char *want)
{
	int anth = fr->d == &front_anthropic;
	json_t *data = json_array(), *o, *body;
	const struct provider_conf *pc;
	char *id, msg[200];
	size_t i, j, n;

	for (i = 0; i < cfg->nroutes; i++)
		json_array_append_new(data,
		    front_http_model_list(front_http_model(cfg->routes[i].name,
		                              "llmgate", anth),
		        "targets", cfg->routes[i].targets,
		        cfg->routes[i].ntargets));
	for (i = 0; i < cfg->npools; i++)
		json_array_append_new(data,
		    front_http_model_list(front_http_model(cfg->pools[i].name,
		                              "llmgate", anth),
		        "pool", cfg->pools[i].targets, cfg->pools[i].ntargets));
	for (i = 0; i < cfg->nproviders; i++) {
		pc = &cfg->providers[i];
		for (j = 0; j < pc->nmodels; j++) {
			xasprintf(&id, "%s/%s", pc->name, pc->models[j].name);
			json_array_append_new(data,
			    front_http_model(id, pc->name, anth));
			free(id);
		}
	}
	if (want != NULL) {
		json_array_foreach(data, i, o) {
			if (strcmp(json_string_value(json_object_get(o, "id")),
			        want) == 0)
				break;
		}
		if (i == json_array_size(data)) {
			json_decref(data);
			snprintf(msg, sizeof msg,
			    "the model '%.100s' does not exist here "
			    "(GET /v1/models lists them)",
			    want);
			front_http_fail(fr, LLMGATE_NOT_FOUND, 404,
			    "model_not_found", msg, NULL);
			return;
		}
		body = json_incref(o);
		json_decref(data);
		front_http_json(fr, 200, body, NULL);
		return;
	}
	if (anth) {
		n = json_array_size(data);
		body = json_pack("{s:o, s:b, s:O, s:O}", "data", data,
		    "has_more", 0, "first_id",
		    n != 0 ? json_object_get(json_array_get(data, 0), "id") :
		             json_null(),
		    "last_id",
		    n != 0 ?
		        json_object_get(json_array_get(data, n - 1), "id") :
		        json_null());
	} else
		body = json_pack("{s:s, s:o}", "object", "list", "data", data);
	front_http_json(fr, 200, body, NULL);
}

/* Refuse before any dialect work; the request is answered and freed. */
static void
front_http_refuse(struct front_req *fr, enum llmgate_class cls, int status,
    const char *code, const char *msg)
{
	front_http_fail(fr, cls, status, code, msg, NULL);
	front_http_req_free(fr);
}

/*
 * A connection counts against its class's max_conns from its first
 * request that passes, by who it is then (kernel and token, not the name
 * it gives): refused like one over max_conns_per_uid (and checked again
 * at its next request) when the class is full.
 */
static int
front_http_class_cap(struct front_req *fr)
{
	struct client_ident id = fr->ident;
	char msg[160];

	id.name[0] = '\0';
	if (clients_conn_enter(clients_match(cfg, &id), &fr->fc->cls, msg,
	        sizeof msg) == 0)
		return 0;
	front_http_refuse(fr, LLMGATE_RATE_LIMITED, 429, "too_many_connections",
	    msg);
	return -1;
}

/* A header's value if it is a small number, for logs; else "". */
static const char *
front_http_hdr_num(const struct front_wire *w, const char *name)
{
	const char *v = front_wire_header(w, name);

	if (v == NULL || *v == '\0' || strlen(v) > 6 ||
	    strspn(v, "0123456789") != strlen(v))
		return "";
	return v;
}

/*
 * The body is no JSON object: refused with jansson's reason (its parser
 * run again, off the common way, for the message); parsed, it was JSON
 * but no object. What jansson takes and jdoc_load() does not nests too
 * deep. A \u0000 in a string is valid JSON, refused as jansson and
 * jdoc_load() refuse it, in our words rather than jansson's (which name
 * its JSON_ALLOW_NUL option).
 */
static void
front_http_not_json(struct front_req *fr, const char *text, size_t len,
    int parsed)
{
	json_error_t jerr;
	json_t *j = NULL;
	char msg[256];

	if (parsed)
		snprintf(msg, sizeof msg, "the body is not a JSON object");
	else if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) !=
	    NULL)
		snprintf(msg, sizeof msg,
		    "the body nests deeper than %d levels", JDOC_DEPTH);
	else if (json_error_code(&jerr) == json_error_null_character)
		/* Valid JSON, but a call's strings are C strings. */
		snprintf(msg, sizeof msg,
		    "a string holds \\u0000, which llmgated does not accept");
	else
		snprintf(msg, sizeof msg, "the body is not a JSON object: %s",
		    jerr.text);
	json_decref(j);
	front_http_refuse(fr, LLMGATE_INVALID_REQUEST, 400, "invalid_json",
	    msg);
}

/* A whole request of fc's: answered, now or by its call. */
void
front_http_request(struct front_conn *fc)
{
	struct front_wire *w = fc->w;
	const char *path = front_wire_path(w), *token_name = NULL;
	const char *method = front_wire_method(w), *text;
	const struct front_dialect *d = &front_openai;
	struct front_req *fr;
	struct llmgate_request *lr;
	msgpack_zone *z;
	struct jdoc body;
	char msg[256], *mid;
	size_t len, q;
	int need_token, models, messages;

	q = strcspn(path, "?");
	log_debug("HTTP %.8s %.*s from connection %p%s%s", method,
	    (int)(q < 64 ? q : 64), path, (void *)w,
	    front_wire_header(w, "x-stainless-retry-count") != NULL ?
	        ", SDK retry count " :
	        "",
	    front_http_hdr_num(w, "x-stainless-retry-count"));
	/* GET /v1/models[/ID]: Anthropic's format for its SDKs. */
	models = front_path_is(path, "/v1/models") ||
	    (q > strlen("/v1/models/") &&
	        strncmp(path, "/v1/models/", strlen("/v1/models/")) == 0);
	messages = front_path_is(path, "/v1/messages");
	if (messages ||
	    (models && front_wire_header(w, "anthropic-version") != NULL))
		d = &front_anthropic;
	fr = xcalloc(1, sizeof *fr);
	fr->w = w;
	fr->d = d;
	fr->cancel_ev = event_new(ev_base, -1, 0, front_http_drop, fr);
	fr->created = (int64_t)time(NULL);
	fr->fc = fc;

	/* Who may call. */
	need_token = fc->kind == FRONT_REMOTE ||
	    (fc->kind == FRONT_LOOPBACK && cfg->http.ntokens != 0);
	if (need_token) {
		token_name = front_peer_token(w);
		if (token_name == NULL) {
			front_http_refuse(fr, LLMGATE_AUTH, 401,
			    "invalid_api_key",
			    "a valid token is needed: "
			    "Authorization: Bearer TOKEN (or x-api-key)");
			return;
		}
	} else if (fc->kind == FRONT_LOOPBACK && !fc->allowed) {
		snprintf(msg, sizeof msg,
		    "%s may not use llmgated (the socket "
		    "allows its owner%s)",
		    fc->uid_known ? "this user" :
		                    "a caller whose user cannot be told",
		    cfg->socket_group != NULL ? " and group" : "");
		front_http_refuse(fr, LLMGATE_PERMISSION, 403,
		    "permission_denied", msg);
		return;
	}
	if (fc->uid_known && cfg->max_conns_per_uid != 0 &&
	    front_http_uid_count(fc->uid) + conn_uid_count(fc->uid) >
	        cfg->max_conns_per_uid) {
		snprintf(msg, sizeof msg,
		    "too many connections for uid %ld "
		    "(limit %u)",
		    (long)fc->uid, cfg->max_conns_per_uid);
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
	if (fc->cls == NULL && front_http_class_cap(fr) != 0)
		return;

	if (models) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
			fr->allow = "GET, HEAD";
			front_http_refuse(fr, LLMGATE_INVALID_REQUEST, 405,
			    "method_not_allowed",
			    "use GET /v1/models or GET /v1/models/ID");
			return;
		}
		mid = NULL;
		if (q > strlen("/v1/models") &&
		    (mid = front_http_model_id(path + strlen("/v1/models/"),
		         q - strlen("/v1/models/"))) == NULL) {
			front_http_refuse(fr, LLMGATE_NOT_FOUND, 404,
			    "model_not_found",
			    "not a model id: a bad percent-escape");
			return;
		}
		front_http_models(fr, mid);
		free(mid);
		front_http_req_free(fr);
		return;
	}
	if (!messages && !front_path_is(path, "/v1/chat/completions")) {
		snprintf(msg, sizeof msg,
		    "no such endpoint: %.*s (llmgated "
		    "serves POST /v1/chat/completions, POST /v1/messages, "
		    "GET /v1/models and GET /v1/models/ID)",
		    (int)(q < 100 ? q : 100), path);
		front_http_refuse(fr, LLMGATE_NOT_FOUND, 404, "not_found", msg);
		return;
	}
	if (strcmp(method, "POST") != 0) {
		fr->allow = "POST";
		front_http_refuse(fr, LLMGATE_INVALID_REQUEST, 405,
		    "method_not_allowed", "use POST");
		return;
	}
	if (server_draining()) {
		front_http_refuse(fr, LLMGATE_OVERLOADED, 503, NULL,
		    "llmgated is shutting down: no new calls");
		return;
	}
	text = front_wire_body(w, &len);
	if (jdoc_load(&body, text, len, JDOC_FULL | JDOC_NODUP) != 0 ||
	    body.tok[0].type != JDOC_OBJECT) {
		front_http_not_json(fr, text, len, body.n != 0);
		jdoc_free(&body);
		return;
	}
	snprintf(fr->id, sizeof fr->id, "%s%llx%06llx", d->id_prefix,
	    (unsigned long long)fr->created,
	    (unsigned long long)(++front_seq & 0xffffff));
	/* The dialect translates; the call answers through the sink. */
	if ((z = msgpack_zone_new(8192)) == NULL)
		fatalx("msgpack_zone_new");
	front_http_zbytes = 0;
	lr = front_http_zalloc(z, 1, sizeof *lr);
	if (d->parse(fr, &body, z, lr) != 0 ||
	    front_http_targets(fr, lr, z, fr->model, &body,
	        jdoc_get(&body, 0, "models")) != 0 ||
	    front_http_options(fr, lr, z) != 0 ||
	    front_http_quota(fr,
	        front_http_zbytes > len ? front_http_zbytes : len) != 0) {
		jdoc_free(&body);
		msgpack_zone_free(z);
		front_http_refuse(fr, fr->err_cls, fr->err_status, NULL,
		    fr->err_msg);
		return;
	}
	jdoc_free(&body);
	front_http_call(fr, lr, z);
}
