/*
 * conn.c: one client connection on the Unix socket. Reads frames, hands
 * them to op.c, and queues replies with backpressure: while a client's
 * unread output passes the high-water mark we stop reading its requests,
 * and a client that lets max_output pile up is dropped, so a slow reader
 * cannot grow the daemon's memory without bound.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "llmgated.h"

struct conn_call {
	uint32_t id;
	struct call *call;
	struct lease *lease;		/* an acquire still waiting */
	struct conn *conn;
	TAILQ_ENTRY(conn_call) entry;
};

struct conn {
	int fd;
	struct bufferevent *bev;
	uid_t uid;
	pid_t pid;
	char name[96];
	struct call_client client;
	int hello;		/* handshake done */
	int closing;		/* flush what is queued, then go */
	int refused;		/* over a limit: told so, input discarded */
	int dead;		/* teardown scheduled */
	struct event *close_ev;
	msgpack_sbuffer sb;
	TAILQ_HEAD(, conn_call) calls;
	unsigned ncalls;
	TAILQ_ENTRY(conn) entry;
};

static TAILQ_HEAD(, conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static unsigned nconns;

static void conn_read(struct bufferevent *, void *);
static void conn_write(struct bufferevent *, void *);
static void conn_event(struct bufferevent *, short, void *);
static void conn_teardown(evutil_socket_t, short, void *);

static const struct call_sink conn_sink;

unsigned
conn_count(void)
{
	return nconns;
}

uid_t
conn_uid(struct conn *c)
{
	return c->uid;
}

const char *
conn_name(struct conn *c)
{
	return c->name;
}

/* Live connections of uid; one being refused or closed does not count. */
static unsigned
conn_uid_count(uid_t uid)
{
	struct conn *c;
	unsigned n = 0;

	TAILQ_FOREACH(c, &conns, entry) {
		if (c->uid == uid && !c->closing && !c->dead)
			n++;
	}
	return n;
}

void
conn_accept(int fd)
{
	struct conn *c;
	struct ucred cr;
	socklen_t len = sizeof cr;
	char msg[96];
	int over;

	if (nconns >= cfg->max_clients) {
		log_warnx("refusing a client: %u clients already connected",
		    nconns);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->uid = (uid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) {
		c->uid = cr.uid;
		c->pid = cr.pid;
	}
	snprintf(c->name, sizeof c->name, "pid %ld uid %ld", (long)c->pid,
	    (long)c->uid);
	/* Counted before this one joins the list. */
	over = cfg->max_conns_per_uid != 0 &&
	    conn_uid_count(c->uid) >= cfg->max_conns_per_uid;
	/* One process is one client for fair shares, unless it names itself. */
	c->client.id = (uint64_t)c->uid << 32 | (uint32_t)c->pid;
	c->client.name = c->name;
	TAILQ_INIT(&c->calls);
	msgpack_sbuffer_init(&c->sb);
	c->bev = bufferevent_socket_new(ev_base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->close_ev = evtimer_new(ev_base, conn_teardown, c);
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	/* Read again once the backlog drains below a quarter. */
	bufferevent_setwatermark(c->bev, EV_WRITE, cfg->max_output / 4, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	log_debug("client connected: %s", c->name);
	/*
	 * One user cannot take every connection slot: the client is told
	 * why (a bare close would look like a crashed daemon), then closed.
	 */
	if (over) {
		snprintf(msg, sizeof msg, "too many connections for uid %ld "
		    "(limit %u)", (long)c->uid, cfg->max_conns_per_uid);
		conn_fail(c, msg);
		/*
		 * The client writes its hello before it reads our answer:
		 * keep reading (and discarding) so that write does not meet
		 * EPIPE and the client gets to read why.
		 */
		c->refused = 1;
		bufferevent_enable(c->bev, EV_READ);
	}
}

/* Schedule teardown; never free a connection inside its own callbacks. */
static void
conn_drop(struct conn *c, const char *why)
{
	struct timeval tv = { 0, 0 };

	if (c->dead)
		return;
	c->dead = 1;
	if (why != NULL)
		log_info("client %s: %s", c->name, why);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	evtimer_add(c->close_ev, &tv);
}

static void
conn_teardown(evutil_socket_t fd, short events, void *arg)
{
	struct conn *c = arg;
	struct conn_call *cc;

	if (c->closing && !c->dead) {
		/* The flush timed out. */
		c->dead = 1;
	}
	while ((cc = TAILQ_FIRST(&c->calls)) != NULL) {
		TAILQ_REMOVE(&c->calls, cc, entry);
		if (cc->lease != NULL)
			lease_abandon(cc->lease);
		else
			call_detach(cc->call);
		free(cc);
	}
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	log_debug("client gone: %s", c->name);
	bufferevent_free(c->bev);
	event_free(c->close_ev);
	msgpack_sbuffer_destroy(&c->sb);
	free(c);
}

msgpack_sbuffer *
conn_buf(struct conn *c)
{
	msgpack_sbuffer_clear(&c->sb);
	return &c->sb;
}

/* Queue what was encoded into conn_buf(). */
void
conn_send(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t queued;

	if (c->dead)
		return;
	evbuffer_add(out, c->sb.data, c->sb.size);
	queued = evbuffer_get_length(out);
	if (queued > cfg->max_output) {
		conn_drop(c, "dropped: not reading its replies");
		return;
	}
	if (queued > cfg->max_output / 2)
		bufferevent_disable(c->bev, EV_READ);
}

void
conn_send_error(struct conn *c, uint32_t id, enum llmgate_class cls,
    const char *msg)
{
	proto_enc_error(conn_buf(c), id, cls, msg);
	conn_send(c);
}

/* Answer a protocol violation, then close once the answer is out. */
void
conn_fail(struct conn *c, const char *msg)
{
	struct timeval tv = { 1, 0 };

	log_info("client %s: %s", c->name, msg);
	conn_send_error(c, 0, LLMGATE_INVALID_REQUEST, msg);
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	/* A client that never reads its error is not waited for long. */
	evtimer_add(c->close_ev, &tv);
}

int
conn_hello_done(struct conn *c)
{
	return c->hello;
}

void
conn_set_hello(struct conn *c, const char *name)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	const char *p;

	c->hello = 1;
	if (name == NULL || *name == '\0')
		return;
	snprintf(c->name, sizeof c->name, "%.32s (pid %ld uid %ld)", name,
	    (long)c->pid, (long)c->uid);
	/* Processes sharing a name and a uid share one fair share. */
	for (p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	c->client.id = h ^ (uint64_t)c->uid << 32;
}

static struct conn_call *
conn_call_find(struct conn *c, uint32_t id)
{
	struct conn_call *cc;

	TAILQ_FOREACH(cc, &c->calls, entry) {
		if (cc->id == id)
			return cc;
	}
	return NULL;
}

/*
 * A call or an acquire under a new id: refused (and answered) when the id
 * is 0 or in flight, or the connection has max_inflight requests already.
 */
static struct conn_call *
conn_request_new(struct conn *c, uint32_t id)
{
	struct conn_call *cc;
	char msg[96];

	if (id == 0 || conn_call_find(c, id) != NULL) {
		snprintf(msg, sizeof msg, "request id %u is %s", id,
		    id == 0 ? "reserved" : "already in use");
		conn_send_error(c, id, LLMGATE_INVALID_REQUEST, msg);
		return NULL;
	}
	if (c->ncalls >= cfg->max_inflight) {
		snprintf(msg, sizeof msg, "too many requests in flight on "
		    "this connection (limit %u)", cfg->max_inflight);
		conn_send_error(c, id, LLMGATE_INVALID_REQUEST, msg);
		return NULL;
	}
	cc = xcalloc(1, sizeof *cc);
	cc->id = id;
	cc->conn = c;
	TAILQ_INSERT_TAIL(&c->calls, cc, entry);
	c->ncalls++;
	return cc;
}

/* Start a call for this client; the request lives in zone, which we take. */
void
conn_call_start(struct conn *c, uint32_t id, struct llmgate_request *req,
    msgpack_zone *zone)
{
	struct conn_call *cc;

	if ((cc = conn_request_new(c, id)) == NULL) {
		msgpack_zone_free(zone);
		return;
	}
	cc->call = call_start(req, zone, &conn_sink, cc, &c->client);
}

/* The answer to acquire: a lease, or why not. */
static void
conn_lease_done(void *arg, const struct llmgate_lease *l,
    enum llmgate_class cls, const char *msg)
{
	struct conn_call *cc = arg;
	struct conn *c = cc->conn;

	if (l != NULL)
		proto_enc_lease(conn_buf(c), cc->id, l);
	else
		proto_enc_error(conn_buf(c), cc->id, cls, msg);
	conn_send(c);
	TAILQ_REMOVE(&c->calls, cc, entry);
	c->ncalls--;
	free(cc);
}

void
conn_lease_acquire(struct conn *c, uint32_t id,
    const struct llmgate_acquire *req)
{
	struct conn_call *cc;
	struct lease *l;
	char *cause = NULL;

	if ((cc = conn_request_new(c, id)) == NULL)
		return;
	l = lease_acquire(req, c->client.id, conn_lease_done, cc, &cause);
	if (cause != NULL) {
		conn_lease_done(cc, NULL, LLMGATE_INVALID_REQUEST, cause);
		free(cause);
		return;
	}
	/* NULL: answered already, and cc is gone. */
	if (l != NULL)
		cc->lease = l;
}

void
conn_call_cancel(struct conn *c, uint32_t id)
{
	struct conn_call *cc = conn_call_find(c, id);

	/* A cancel that crossed the call's answer is harmless. */
	if (cc != NULL)
		call_cancel(cc->call);
}

static void
conn_sink_chunk(void *arg, const struct llmgate_chunk *ch)
{
	struct conn_call *cc = arg;

	proto_enc_chunk(conn_buf(cc->conn), cc->id, ch);
	conn_send(cc->conn);
}

static void
conn_sink_done(void *arg, const struct llmgate_result *res)
{
	struct conn_call *cc = arg;
	struct conn *c = cc->conn;

	proto_enc_result(conn_buf(c), cc->id, res);
	conn_send(c);
	TAILQ_REMOVE(&c->calls, cc, entry);
	c->ncalls--;
	free(cc);
}

static const struct call_sink conn_sink = {
	.chunk = conn_sink_chunk,
	.done = conn_sink_done,
};

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char hdr[PROTO_HDR_LEN], *p;
	struct proto_msg msg;
	char err[256], why[300];
	size_t avail;
	ssize_t len;

	if (c->refused) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (!c->dead && !c->closing) {
		avail = evbuffer_get_length(in);
		if (avail < PROTO_HDR_LEN)
			return;
		evbuffer_copyout(in, hdr, sizeof hdr);
		len = (ssize_t)((uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		    (uint32_t)hdr[2] << 8 | hdr[3]);
		if (len == 0 || (size_t)len > cfg->max_frame) {
			snprintf(err, sizeof err, "frame of %zd bytes refused: "
			    "the limit is %u bytes", len, cfg->max_frame);
			conn_fail(c, err);
			return;
		}
		if (avail < PROTO_HDR_LEN + (size_t)len)
			return;
		p = evbuffer_pullup(in, PROTO_HDR_LEN + len);
		if (proto_decode(p + PROTO_HDR_LEN, (size_t)len, &msg, err,
		    sizeof err) != 0) {
			evbuffer_drain(in, PROTO_HDR_LEN + len);
			snprintf(why, sizeof why, "malformed frame: %s", err);
			conn_fail(c, why);
			return;
		}
		evbuffer_drain(in, PROTO_HDR_LEN + len);
		op_dispatch(c, &msg);
		proto_msg_free(&msg);
	}
}

static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
			return;
		/* Refused: half-close, and go at its EOF (or the timer). */
		if (c->refused)
			shutdown(c->fd, SHUT_WR);
		else
			conn_drop(c, NULL);
		return;
	}
	/* Below the low-water mark again: take requests once more. */
	if (!c->dead)
		bufferevent_enable(bev, EV_READ);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_ERROR)
		conn_drop(c, c->ncalls != 0 ? "connection error with calls "
		    "in flight" : NULL);
	else if (what & BEV_EVENT_EOF)
		conn_drop(c, c->ncalls != 0 ? "went away with calls in flight"
		    : NULL);
}

/* Drain timeout: every call still running ends with class cancelled. */
void
conn_cancel_all(void)
{
	struct conn_call *cc;
	struct conn *c;

	TAILQ_FOREACH(c, &conns, entry) {
		while ((cc = TAILQ_FIRST(&c->calls)) != NULL) {
			if (cc->lease != NULL) {
				lease_abandon(cc->lease);
				cc->lease = NULL;
				/* Answers, and removes cc. */
				conn_lease_done(cc, NULL, LLMGATE_CANCELLED,
				    "llmgated is shutting down");
				continue;
			}
			call_cancel(cc->call);
		}
	}
}

void
conn_close_all(void)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&conns)) != NULL) {
		evtimer_del(c->close_ev);
		c->dead = 1;
		conn_teardown(-1, 0, c);
	}
}
