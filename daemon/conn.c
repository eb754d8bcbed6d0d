/*
 * conn.c: one client connection on the Unix socket. Reads frames, hands
 * them to op.c, and queues replies with backpressure: while a client's
 * unread output passes the high-water mark we stop reading its requests
 * and hold its streams' upstreams. A client whose unread output stays past
 * max_output while it reads none of it for frame_timeout_ms is dropped (at
 * once while the daemon holds more than max_memory for its clients), so a
 * client that does not read cannot grow the daemon's memory without bound;
 * a client that reads is not dropped for a burst of replies that the
 * daemon queued at once.
 *
 * The socket is driven with plain events rather than a bufferevent, for
 * fewer system calls per message: one read(2) into a buffer shared by all
 * connections (only the unfinished tail of a frame is kept per
 * connection), and replies written once per loop round from an event made
 * active, not by asking epoll whether the socket is writable; the socket
 * is watched for writability only while it refuses output.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "llmgated.h"

/*
 * What a connection's clients may make the daemon hold is counted by
 * quota.c (request frames of calls in flight, unfinished frames, replies
 * queued), in one budget per user with the HTTP front. Past a limit new
 * work is refused with overloaded; an unfinished frame that would pass
 * one closes its connection. A connection must say hello within
 * frame_timeout_ms, and finish each frame it began within as long,
 * however slowly it trickles.
 */

struct conn_call {
	uint32_t id;
	size_t bytes; /* its request frame, accounted */
	struct call *call;
	struct lease *lease; /* an acquire still waiting */
	int held;            /* call_hold()ed while we are paused */
	struct conn *conn;
	TAILQ_ENTRY(conn_call) entry;
};

struct conn {
	int fd;
	struct event *rev;      /* readable */
	struct event *wev;      /* writable: watched while output is refused */
	struct event *flush_ev; /* made active to write at the round's end */
	struct evbuffer *out;
	unsigned char *ibuf; /* the unfinished tail of a frame */
	size_t ilen;
	size_t icap;
	int reading;            /* rev is added */
	int flushing;           /* flush_ev is active or wev added */
	int waiting;            /* wev is added */
	int paused;             /* output above the high-water mark */
	uint64_t written;       /* bytes of output written, ever */
	uint64_t stall_mark;    /* written when stall_ev was armed */
	struct event *stall_ev; /* over max_output: does it read at all? */
	uid_t uid;
	pid_t pid;
	struct quota_user *user;
	size_t frame_len;      /* the frame being dispatched, accounted */
	struct event *slow_ev; /* hello, then unfinished-frame deadline */
	char name[96];
	struct call_client client;
	struct client_ident ident; /* its class's (clients.c) */
	struct client_state *cls;  /* its class's connection count */
	uint64_t tokens;           /* its calls used, for status */
	int hello;                 /* handshake done */
	int closing;               /* flush what is queued, then go */
	int refused;               /* over a limit: told so, input discarded */
	int dead;                  /* teardown scheduled */
	struct event *close_ev;
	msgpack_sbuffer sb;
	TAILQ_HEAD(, conn_call) calls;
	unsigned ncalls;
	TAILQ_ENTRY(conn) entry;
};

static TAILQ_HEAD(, conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static unsigned nconns;

/* Reads land here; a frame's unfinished tail moves to its connection. */
static unsigned char conn_rbuf[64 * 1024];

static void conn_readable(evutil_socket_t, short, void *);
static void conn_writable(evutil_socket_t, short, void *);
static void conn_teardown(evutil_socket_t, short, void *);
static void conn_reading(struct conn *);
static void conn_slow(evutil_socket_t, short, void *);
static void conn_stalled(evutil_socket_t, short, void *);
static void conn_request_end(struct conn *, struct conn_call *);
static void conn_fail_class(struct conn *, enum llmgate_class, const char *);

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
unsigned
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
conn_peers(json_t *peers, uid_t uid)
{
	struct conn *c;

	TAILQ_FOREACH(c, &conns, entry) {
		if (json_array_size(peers) >= CLIENTS_PEERS_MAX)
			break;
		if ((uid == (uid_t)-1 || c->uid == uid) && !c->dead)
			json_array_append_new(peers,
			    clients_peer_json(cfg, "native", &c->ident,
			        c->ncalls, c->tokens));
	}
}

/* c's unfinished-frame buffer is now cap bytes. */
static void
conn_in_account(struct conn *c, size_t cap)
{
	quota_input(c->user, c->icap, cap);
	c->icap = cap;
}

void
conn_accept(int fd)
{
	struct conn *c;
	struct ucred cr;
	struct timeval tv;
	socklen_t len = sizeof cr;
	char msg[160];
	int over;

	if (nconns + front_http_count() >= cfg->max_clients) {
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
	    conn_uid_count(c->uid) + front_http_uid_count(c->uid) >=
	        cfg->max_conns_per_uid;
	/* One process is one client for fair shares, unless it names itself. */
	c->client.id = (uint64_t)c->uid << 32 | (uint32_t)c->pid;
	c->client.name = c->name;
	c->client.uid = c->uid;
	/* Who it is for client classes, read once: the unit of its cgroup. */
	c->ident.uid = c->uid;
	c->ident.pid = c->pid;
	clients_unit_of_pid(c->pid, c->ident.unit, sizeof c->ident.unit);
	c->client.ident = &c->ident;
	if (over)
		snprintf(msg, sizeof msg,
		    "too many connections for uid %ld "
		    "(limit %u)",
		    (long)c->uid, cfg->max_conns_per_uid);
	/* Its class's cap too, by who it is now (it has no name yet). */
	else
		over = clients_conn_enter(clients_match(cfg, &c->ident),
		           &c->cls, msg, sizeof msg) != 0;
	c->user = quota_user(c->uid);
	TAILQ_INIT(&c->calls);
	msgpack_sbuffer_init(&c->sb);
	evutil_make_socket_nonblocking(fd);
	c->rev = event_new(ev_base, fd, EV_READ | EV_PERSIST, conn_readable, c);
	c->wev =
	    event_new(ev_base, fd, EV_WRITE | EV_PERSIST, conn_writable, c);
	c->flush_ev = event_new(ev_base, -1, 0, conn_writable, c);
	c->out = evbuffer_new();
	c->close_ev = evtimer_new(ev_base, conn_teardown, c);
	c->slow_ev = evtimer_new(ev_base, conn_slow, c);
	c->stall_ev = evtimer_new(ev_base, conn_stalled, c);
	tv.tv_sec = cfg->frame_timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(cfg->frame_timeout_ms % 1000) * 1000;
	evtimer_add(c->slow_ev, &tv);
	conn_reading(c);
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	log_debug("client connected: %s", c->name);
	/*
	 * One user cannot take every connection slot: the client is told
	 * why (a bare close would look like a crashed daemon), then closed.
	 */
	if (over) {
		conn_fail(c, msg);
		/*
		 * The client writes its hello before it reads our answer:
		 * keep reading (and discarding) so that write does not meet
		 * EPIPE and the client gets to read why.
		 */
		c->refused = 1;
		conn_reading(c);
	}
}

/*
 * Watch for requests while we take them: not once teardown is scheduled,
 * nor while closing or while the client's unread output is above the
 * high-water mark; a refused client is read (and discarded) to its EOF.
 */
static void
conn_reading(struct conn *c)
{
	int want = !c->dead && (c->refused || (!c->closing && !c->paused));

	if (want == c->reading)
		return;
	c->reading = want;
	if (want)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
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
	conn_reading(c);
	if (c->waiting)
		event_del(c->wev);
	c->waiting = 0;
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
		if (cc->lease != NULL)
			lease_detach(cc->lease);
		else
			call_detach(cc->call);
		conn_request_end(c, cc);
	}
	quota_output(0, evbuffer_get_length(c->out));
	conn_in_account(c, 0);
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	clients_conn_leave(&c->cls);
	log_debug("client gone: %s", c->name);
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->flush_ev);
	event_free(c->close_ev);
	event_free(c->slow_ev);
	event_free(c->stall_ev);
	evbuffer_free(c->out);
	close(c->fd);
	free(c->ibuf);
	msgpack_sbuffer_destroy(&c->sb);
	free(c);
}

msgpack_sbuffer *
conn_buf(struct conn *c)
{
	msgpack_sbuffer_clear(&c->sb);
	return &c->sb;
}

/* frame_timeout_ms from now: a client over max_output must read by then. */
static void
conn_stall_arm(struct conn *c)
{
	struct timeval tv = { cfg->frame_timeout_ms / 1000,
		(suseconds_t)(cfg->frame_timeout_ms % 1000) * 1000 };

	c->stall_mark = c->written;
	evtimer_add(c->stall_ev, &tv);
}

/*
 * Queue what was encoded into conn_buf(); it is written when this loop
 * round's other events have run, together with whatever they queue. Past
 * max_output the client is not dropped yet: replies finishing together
 * can pass it in one round before the first write. It must read some of
 * them within frame_timeout_ms (conn_stalled).
 */
void
conn_send(struct conn *c)
{
	size_t queued;

	if (c->dead)
		return;
	evbuffer_add(c->out, c->sb.data, c->sb.size);
	quota_output(c->sb.size, 0);
	queued = evbuffer_get_length(c->out);
	if (queued > cfg->max_output && cfg->max_memory != 0 &&
	    quota_held() > cfg->max_memory) {
		conn_drop(c,
		    "dropped: not reading its replies, and llmgated "
		    "holds more than max_memory");
		return;
	}
	if (queued > cfg->max_output && !evtimer_pending(c->stall_ev, NULL))
		conn_stall_arm(c);
	if (queued > cfg->max_output / 2 && !c->paused) {
		c->paused = 1;
		conn_reading(c);
	}
	if (!c->flushing) {
		c->flushing = 1;
		event_active(c->flush_ev, EV_WRITE, 1);
	}
}

/* All output written: a closing connection goes now. */
static void
conn_drained(struct conn *c)
{
	if (c->closing) {
		/* Refused: half-close, and go at its EOF (or the timer). */
		if (c->refused)
			shutdown(c->fd, SHUT_WR);
		else
			conn_drop(c, NULL);
	}
}

/* Write what the socket takes; watch for writability if it takes less. */
static void
conn_writable(evutil_socket_t fd, short events, void *arg)
{
	struct conn *c = arg;
	struct conn_call *cc;
	size_t before;
	int n;

	if (c->dead)
		return;
	before = evbuffer_get_length(c->out);
	while ((n = evbuffer_write(c->out, c->fd)) == -1 && errno == EINTR)
		;
	quota_output(0, before - evbuffer_get_length(c->out));
	c->written += before - evbuffer_get_length(c->out);
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
		conn_drop(c,
		    c->ncalls != 0 ? "connection error with calls "
		                     "in flight" :
		                     NULL);
		return;
	}
	/*
	 * Below a quarter of the limit again: take requests once more, and
	 * let the streams we held read their upstreams again.
	 */
	if (c->paused && evbuffer_get_length(c->out) <= cfg->max_output / 4) {
		c->paused = 0;
		conn_reading(c);
		TAILQ_FOREACH(cc, &c->calls, entry) {
			if (cc->held) {
				cc->held = 0;
				call_hold(cc->call, 0);
			}
		}
	}
	if (evbuffer_get_length(c->out) != 0) {
		if (!c->waiting)
			event_add(c->wev, NULL);
		c->waiting = 1;
		return;
	}
	if (c->waiting)
		event_del(c->wev);
	c->waiting = 0;
	c->flushing = 0;
	conn_drained(c);
}

/*
 * Over max_output for frame_timeout_ms: a client that read none of it in
 * that time is dropped; one that read some is given as long again.
 */
static void
conn_stalled(evutil_socket_t fd, short events, void *arg)
{
	struct conn *c = arg;

	if (c->dead || evbuffer_get_length(c->out) <= cfg->max_output)
		return;
	if (c->written == c->stall_mark) {
		conn_drop(c, "dropped: not reading its replies");
		return;
	}
	conn_stall_arm(c);
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
	conn_fail_class(c, LLMGATE_INVALID_REQUEST, msg);
}

static void
conn_fail_class(struct conn *c, enum llmgate_class cls, const char *msg)
{
	struct timeval tv = { 1, 0 };

	log_info("client %s: %s", c->name, msg);
	evtimer_del(c->slow_ev);
	conn_send_error(c, 0, cls, msg);
	c->closing = 1;
	conn_reading(c);
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
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	const char *p;
	char *q;

	c->hello = 1;
	if (c->ilen == 0)
		evtimer_del(c->slow_ev);
	if (name == NULL || *name == '\0')
		return;
	snprintf(c->ident.name, sizeof c->ident.name, "%s", name);
	snprintf(c->name, sizeof c->name, "%.32s (pid %ld uid %ld)", name,
	    (long)c->pid, (long)c->uid);
	/* It goes into log lines: no line breaks or controls of its own. */
	for (q = c->name; *q != '\0'; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	}
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
	char msg[96], big[160];

	if (id == 0 || conn_call_find(c, id) != NULL) {
		snprintf(msg, sizeof msg, "request id %u is %s", id,
		    id == 0 ? "reserved" : "already in use");
		conn_send_error(c, id, LLMGATE_INVALID_REQUEST, msg);
		return NULL;
	}
	if (c->ncalls >= cfg->max_inflight) {
		snprintf(msg, sizeof msg,
		    "too many requests in flight on "
		    "this connection (limit %u)",
		    cfg->max_inflight);
		conn_send_error(c, id, LLMGATE_INVALID_REQUEST, msg);
		return NULL;
	}
	if (quota_request(c->user, c->frame_len, big, sizeof big) != QUOTA_OK) {
		conn_send_error(c, id, LLMGATE_OVERLOADED, big);
		return NULL;
	}
	cc = xcalloc(1, sizeof *cc);
	cc->id = id;
	cc->conn = c;
	cc->bytes = c->frame_len;
	TAILQ_INSERT_TAIL(&c->calls, cc, entry);
	c->ncalls++;
	return cc;
}

/* A request is over: its accounting goes, and cc. */
static void
conn_request_end(struct conn *c, struct conn_call *cc)
{
	TAILQ_REMOVE(&c->calls, cc, entry);
	c->ncalls--;
	quota_request_end(c->user, cc->bytes);
	free(cc);
}

/* Start a call for this client; the request lives in zone, which we take. */
void
conn_call_start(struct conn *c, uint32_t id, const struct llmgate_request *req,
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
	conn_request_end(c, cc);
}

void
conn_lease_acquire(struct conn *c, uint32_t id,
    const struct llmgate_acquire *req)
{
	struct conn_call *cc;

	if ((cc = conn_request_new(c, id)) == NULL)
		return;
	/* Answered later through conn_lease_done(), as a call is. */
	cc->lease = lease_acquire(req, &c->client, conn_lease_done, cc);
}

/* An acquire still unanswered ends with cls; cc goes with the answer. */
static void
conn_lease_cancel(struct conn_call *cc, enum llmgate_class cls, const char *why)
{
	lease_cancel(cc->lease, cls, why);
}

/* A call, or an acquire still waiting, ends as cancelled. */
void
conn_call_cancel(struct conn *c, uint32_t id)
{
	struct conn_call *cc = conn_call_find(c, id);

	/* A cancel that crossed the answer is harmless. */
	if (cc == NULL)
		return;
	if (cc->lease != NULL)
		conn_lease_cancel(cc, LLMGATE_CANCELLED,
		    "cancelled by the client");
	else
		call_cancel(cc->call, "cancelled by the client");
}

static void
conn_sink_chunk(void *arg, const struct llmgate_chunk *ch)
{
	struct conn_call *cc = arg;

	proto_enc_chunk(conn_buf(cc->conn), cc->id, ch);
	conn_send(cc->conn);
	/*
	 * Output above the high-water mark: hold this stream's upstream
	 * (backpressure) rather than queue more for a client that would
	 * then be dropped with every call on the connection.
	 */
	if (cc->conn->paused && !cc->held && cc->call != NULL) {
		cc->held = 1;
		call_hold(cc->call, 1);
	}
}

static void
conn_sink_done(void *arg, const struct llmgate_result *res)
{
	struct conn_call *cc = arg;
	struct conn *c = cc->conn;

	c->tokens = rl_tokens_sum(c->tokens,
	    rl_tokens_sum(res->total_input_tokens, res->total_output_tokens));
	/* A streamed reply is not sent twice: the chunks had it all. */
	if (cc->call != NULL && call_text_streamed(cc->call))
		proto_enc_streamed_result(conn_buf(c), cc->id, res);
	else
		proto_enc_result(conn_buf(c), cc->id, res);
	conn_send(c);
	conn_request_end(c, cc);
}

static const struct call_sink conn_sink = {
	.chunk = conn_sink_chunk,
	.done = conn_sink_done,
};

/*
 * Decode and dispatch the complete frames at p; returns the bytes used. A
 * frame over the limit or one that does not decode closes the connection
 * (after saying why), and the rest of the input is then discarded.
 */
static size_t
conn_frames(struct conn *c, const unsigned char *p, size_t len)
{
	struct proto_msg msg;
	char err[256], why[300];
	size_t off = 0, need;
	ssize_t flen;

	while (!c->dead && !c->closing) {
		flen =
		    proto_frame_len(p + off, len - off, cfg->max_frame, &need);
		if (flen == 0)
			break;
		if (flen < 0 && need == PROTO_HDR_LEN) {
			conn_fail(c,
			    "empty frame refused: a frame's length "
			    "must be at least 1 (each frame holds one message)");
			return len;
		}
		if (flen < 0) {
			snprintf(err, sizeof err,
			    "frame of %zu bytes refused: "
			    "the limit is %u bytes",
			    need - PROTO_HDR_LEN, cfg->max_frame);
			conn_fail(c, err);
			return len;
		}
		if (proto_decode(p + off + PROTO_HDR_LEN, (size_t)flen, &msg,
		        err, sizeof err) != 0) {
			snprintf(why, sizeof why, "malformed frame: %s", err);
			conn_fail(c, why);
			return len;
		}
		off += PROTO_HDR_LEN + (size_t)flen;
		/* A call keeps its decoded copy: that may be the larger. */
		c->frame_len = PROTO_HDR_LEN + (size_t)flen;
		if (msg.decoded > c->frame_len)
			c->frame_len = msg.decoded;
		op_dispatch(c, &msg);
		proto_msg_free(&msg);
	}
	return off;
}

/*
 * Room in ibuf for the next read. It grows with what arrives, doubling,
 * but never past the frame begun there: a header alone does not reserve
 * the whole frame it announces.
 */
static int
conn_reserve(struct conn *c)
{
	size_t want = c->ilen + sizeof conn_rbuf, frame = SIZE_MAX, cap;
	char msg[200];

	/* The tail kept holds a header already checked, or less of one. */
	if (c->ilen >= PROTO_HDR_LEN) {
		(void)proto_frame_len(c->ibuf, c->ilen, cfg->max_frame, &frame);
		if (want > frame)
			want = frame;
	}
	if (want <= c->icap)
		return 0;
	for (cap = c->icap; cap < want; cap *= 2)
		;
	if (cap > frame)
		cap = frame;
	if (quota_room(c->user, cap - c->icap, msg, sizeof msg) != QUOTA_OK) {
		conn_fail_class(c, LLMGATE_OVERLOADED, msg);
		return -1;
	}
	c->ibuf = xreallocarray(c->ibuf, 1, cap);
	conn_in_account(c, cap);
	return 0;
}

/* Keep the unfinished frame at p (the rest of a read) for the next read. */
static void
conn_keep(struct conn *c, const unsigned char *p, size_t len)
{
	c->ibuf = xreallocarray(c->ibuf, 1, len + sizeof conn_rbuf);
	conn_in_account(c, len + sizeof conn_rbuf);
	memcpy(c->ibuf, p, len);
	c->ilen = len;
}

/*
 * The deadline (frame_timeout_ms) for what is unfinished: a hello (from
 * accept, see conn_accept), then a frame, from its first byte (or the end
 * of the frame before it, dispatched: progress) to its last.
 */
static void
conn_deadline(struct conn *c, int progress)
{
	struct timeval tv = { cfg->frame_timeout_ms / 1000,
		(suseconds_t)(cfg->frame_timeout_ms % 1000) * 1000 };

	if (!c->hello || c->closing || c->dead)
		return;
	if (c->ilen == 0)
		evtimer_del(c->slow_ev);
	else if (progress || !evtimer_pending(c->slow_ev, NULL))
		evtimer_add(c->slow_ev, &tv);
}

static void
conn_slow(evutil_socket_t fd, short events, void *arg)
{
	struct conn *c = arg;
	char msg[96];

	if (c->closing || c->dead)
		return;
	if (!c->hello)
		snprintf(msg, sizeof msg, "no hello within %u ms",
		    cfg->frame_timeout_ms);
	else
		snprintf(msg, sizeof msg,
		    "a frame begun was not finished "
		    "within %u ms",
		    cfg->frame_timeout_ms);
	conn_fail(c, msg);
}

/*
 * One read per readiness: into the shared buffer, or, when a frame is
 * already begun, onto its tail. Frames complete in a read are dispatched
 * straight from where they were read.
 */
static void
conn_readable(evutil_socket_t fd, short events, void *arg)
{
	struct conn *c = arg;
	unsigned char *p = conn_rbuf;
	size_t cap = sizeof conn_rbuf, used;
	ssize_t n;

	if (c->ilen != 0) {
		if (conn_reserve(c) != 0)
			return;
		p = c->ibuf + c->ilen;
		cap = c->icap - c->ilen;
	}
	while ((n = read(c->fd, p, cap)) == -1 && errno == EINTR)
		;
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		conn_drop(c,
		    c->ncalls != 0 ? "connection error with calls "
		                     "in flight" :
		                     NULL);
		return;
	}
	if (n == 0) {
		conn_drop(c,
		    c->ncalls != 0 ? "went away with calls in flight" : NULL);
		return;
	}
	if (c->refused || c->closing || c->dead)
		return;
	if (c->ilen == 0) {
		used = conn_frames(c, conn_rbuf, (size_t)n);
		if (used < (size_t)n && !c->dead && !c->closing)
			conn_keep(c, conn_rbuf + used, (size_t)n - used);
		conn_deadline(c, used != 0);
		return;
	}
	c->ilen += (size_t)n;
	used = conn_frames(c, c->ibuf, c->ilen);
	if (used == c->ilen || c->dead || c->closing) {
		/* Nothing unfinished: give the buffer back. */
		free(c->ibuf);
		c->ibuf = NULL;
		c->ilen = 0;
		conn_in_account(c, 0);
	} else if (used != 0) {
		memmove(c->ibuf, c->ibuf + used, c->ilen - used);
		c->ilen -= used;
	}
	conn_deadline(c, used != 0);
}

/*
 * A drain begins: acquires still waiting for budget are answered now
 * (class overloaded, as new ones are), since no call ending will wake them.
 */
void
conn_cancel_leases(void)
{
	struct conn_call *cc;
	struct conn *c;

	/*
	 * From the top after each: a cancelled lease frees its slot, and
	 * the admission it kicks may answer (and free) another.
	 */
again:
	TAILQ_FOREACH(c, &conns, entry) {
		TAILQ_FOREACH(cc, &c->calls, entry) {
			if (cc->lease != NULL) {
				conn_lease_cancel(cc, LLMGATE_OVERLOADED,
				    "llmgated is shutting down: no new calls "
				    "or leases");
				goto again;
			}
		}
	}
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
				/* Answers, and removes cc. */
				conn_lease_cancel(cc, LLMGATE_CANCELLED,
				    "llmgated is shutting down");
				continue;
			}
			call_cancel(cc->call, "llmgated is shutting down");
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
