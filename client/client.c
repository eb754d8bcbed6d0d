/*
 * client.c: libllmgate, the client side of llmgated's socket protocol.
 *
 * One connection carries any number of calls at once, each tagged with an
 * id. The library keeps an input and an output buffer and a list of
 * pending requests; it never blocks except inside the functions documented
 * as blocking, and never writes to stdout or stderr.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llmgate.h"
#include "proto.h"

#define GATE_HELLO_TIMEOUT_MS	5000
#define GATE_READ_SIZE		65536
#define GATE_LOST		"connection to llmgated lost"

/*
 * What a pending id is waiting for. CALL: an asynchronous call whose
 * on_done owns the result. SYNC: a call made by llmgate_call(), answered
 * into a waiter on its stack. REQ: a small request (ping, status...)
 * whose reply message is handed to a waiter as it is. LEASE: an
 * asynchronous acquire or report, answered through on_lease.
 */
enum pend_kind {
	PEND_CALL,
	PEND_SYNC,
	PEND_REQ,
	PEND_LEASE
};

/* A blocking function's view of its one request. */
struct gate_waiter {
	int			 done;
	int			 lost;		/* connection died first */
	struct llmgate_result	*result;	/* SYNC */
	struct proto_msg	 msg;		/* REQ: the reply */
};

struct pend {
	uint32_t		 id;
	enum pend_kind		 kind;
	int			 cancelled;
	llmgate_chunk_cb	*on_chunk;
	llmgate_done_cb		*on_done;
	llmgate_lease_cb	*on_lease;
	enum proto_type		 want;		/* LEASE: the answer's type */
	void			*arg;
	struct gate_waiter	*waiter;
	char			*text;	/* a call's streamed text so far */
	size_t			 tlen;
	size_t			 tcap;
	TAILQ_ENTRY(pend)	 entry;
};
TAILQ_HEAD(pend_list, pend);

struct gate_inbuf {
	char			*data;
	size_t			 off;	/* first unparsed byte */
	size_t			 len;	/* bytes held */
	size_t			 cap;
	int			 drained;	/* the last read took all */
};

struct llmgate {
	int			 fd;
	char			*path;
	uint32_t		 max_frame;	/* the daemon's, for our frames */
	uint32_t		 next_id;

	struct gate_inbuf	 ib;
	msgpack_sbuffer		 ob;
	size_t			 ob_off;	/* first unsent byte */

	struct pend_list	 pending;
	int			 npending;

	int			 dead;		/* connection lost */
	int			 toobig;	/* last encode was over max_frame */
	unsigned		 busy;		/* nesting of process/blocking */
	int			 closing;	/* closed from inside a callback */
	int			 polling;	/* inside gate_wait's own poll loop */

	char			 notice[256];	/* the daemon's last id-0 error */
	char			 error[512];
};

static void	gate_seterr(struct llmgate *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	gate_lost(struct llmgate *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static const char *msg_type_name(const struct proto_msg *);

static void
gate_seterr(struct llmgate *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->error, sizeof g->error, fmt, ap);
	va_end(ap);
}

/* CLOCK_MONOTONIC in ms, for the handshake deadline only. */
static uint64_t
gate_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * A result the library makes up itself (connection lost, request too
 * large): the message lives in the same allocation, so priv stays NULL
 * and llmgate_result_free() needs no second case.
 */
static struct llmgate_result *
result_new(enum llmgate_class cls, const char *message)
{
	struct llmgate_result	*r;
	size_t			 len = strlen(message) + 1;

	r = xcalloc(1, sizeof *r + len);
	r->cls = cls;
	r->message = (char *)(r + 1);
	memcpy(r->message, message, len);
	r->finish = LLMGATE_FINISH_NONE;
	return r;
}

/* Move a decoded result or error into a heap result that owns its zone. */
static struct llmgate_result *
result_from_msg(struct proto_msg *msg)
{
	struct llmgate_result	*r;
	const char		*name;
	size_t			 len;

	r = xmalloc(sizeof *r);
	*r = msg->u.result;
	r->priv = proto_msg_take_zone(msg);
	if (msg->type == PROTO_ERROR && r->cls == LLMGATE_OK)
		r->cls = LLMGATE_INTERNAL;
	/* An error always says something, if only its class. */
	if (r->cls != LLMGATE_OK && r->message == NULL && r->priv != NULL) {
		if ((name = llmgate_class_name(r->cls)) == NULL)
			name = "unknown error";
		len = strlen(name) + 1;
		if ((r->message = msgpack_zone_malloc(r->priv, len)) != NULL)
			memcpy(r->message, name, len);
	}
	return r;
}

void
llmgate_result_free(struct llmgate_result *r)
{
	if (r == NULL)
		return;
	if (r->priv != NULL)
		msgpack_zone_free(r->priv);
	free(r);
}

/* The one rule the daemon follows too: proto/socket.c. */
const char *
llmgate_socket_path(const char *explicit_path, char *buf, size_t len)
{
	return proto_socket_path(explicit_path, NULL, buf, len);
}

static struct pend *
pend_find(struct llmgate *g, uint32_t id)
{
	struct pend	*p;

	TAILQ_FOREACH(p, &g->pending, entry) {
		if (p->id == id)
			return p;
	}
	return NULL;
}

/* Ids count up from 1 and wrap past 0, never reusing one still pending. */
static struct pend *
pend_new(struct llmgate *g, enum pend_kind kind)
{
	struct pend	*p;
	uint32_t	 id;

	do {
		id = g->next_id++;
		if (g->next_id == 0)
			g->next_id = 1;
	} while (id == 0 || pend_find(g, id) != NULL);

	p = xcalloc(1, sizeof *p);
	p->id = id;
	p->kind = kind;
	TAILQ_INSERT_TAIL(&g->pending, p, entry);
	g->npending++;
	return p;
}

static void
pend_free(struct pend *p)
{
	free(p->text);
	free(p);
}

static void
pend_remove(struct llmgate *g, struct pend *p)
{
	TAILQ_REMOVE(&g->pending, p, entry);
	g->npending--;
}

static void
pend_free_all(struct llmgate *g)
{
	struct pend	*p;

	while ((p = TAILQ_FIRST(&g->pending)) != NULL) {
		pend_remove(g, p);
		pend_free(p);
	}
}

static void
gate_free(struct llmgate *g)
{
	pend_free_all(g);
	if (g->fd != -1)
		close(g->fd);
	free(g->ib.data);
	msgpack_sbuffer_destroy(&g->ob);
	free(g->path);
	free(g);
}

/*
 * Every blocking entry point and llmgate_process() hold the connection
 * busy, so a caller's llmgate_close() from inside a callback only marks
 * it; the outermost frame frees it on the way out.
 */
static void
gate_enter(struct llmgate *g)
{
	g->busy++;
}

static int
gate_leave(struct llmgate *g)
{
	if (--g->busy == 0 && g->closing) {
		gate_free(g);
		return 1;
	}
	return 0;
}

/*
 * The connection is gone: every pending request ends, asynchronous calls
 * through on_done with class connection. A callback may submit (which now
 * fails) or close (which stops the loop); the list is re-read each time.
 */
static void
gate_lost(struct llmgate *g, const char *fmt, ...)
{
	struct pend		*p;
	struct llmgate_result	*r;
	char			 detail[256];
	va_list			 ap;

	if (g->dead)
		return;
	g->dead = 1;

	*detail = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof detail, fmt, ap);
		va_end(ap);
	}
	if (*g->notice != '\0')
		gate_seterr(g, "%s: %s", GATE_LOST, g->notice);
	else if (*detail != '\0')
		gate_seterr(g, "%s: %s", GATE_LOST, detail);
	else
		gate_seterr(g, "%s", GATE_LOST);

	while (!g->closing && (p = TAILQ_FIRST(&g->pending)) != NULL) {
		pend_remove(g, p);
		if (p->kind == PEND_CALL) {
			r = result_new(LLMGATE_CONNECTION, GATE_LOST);
			if (p->on_done != NULL)
				p->on_done(r, p->arg);
			else
				llmgate_result_free(r);
		} else if (p->kind == PEND_LEASE) {
			if (p->on_lease != NULL)
				p->on_lease(NULL, LLMGATE_CONNECTION, g->error,
				    p->arg);
		} else {
			p->waiter->done = 1;
			p->waiter->lost = 1;
		}
		pend_free(p);
	}
}

/* Write what the socket takes now. -1 on a dead socket (errno set). */
static int
gate_flush(struct llmgate *g)
{
	ssize_t	n;

	while (g->ob_off < g->ob.size) {
		n = send(g->fd, g->ob.data + g->ob_off, g->ob.size - g->ob_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		g->ob_off += (size_t)n;
	}
	if (g->ob_off == g->ob.size)
		g->ob_off = g->ob.size = 0;
	return 0;
}

/*
 * Our frames must fit the daemon's announced limit; a frame over it is
 * taken back out of the output buffer rather than sent to be refused.
 */
static int
gate_check_frame(struct llmgate *g, size_t before)
{
	size_t	len = g->ob.size - before;

	g->toobig = 0;
	if (len > g->max_frame) {
		g->ob.size = before;
		g->toobig = 1;
		gate_seterr(g, "request too large: %zu bytes, llmgated takes "
		    "at most %u", len, g->max_frame);
		return -1;
	}
	return 0;
}

/*
 * One non-blocking read into the input buffer. Returns bytes read, 0 at
 * EOF, -1 on error and -2 when nothing is available.
 */
static ssize_t
gate_read(struct llmgate *g)
{
	struct gate_inbuf	*ib = &g->ib;
	size_t			 cap;
	ssize_t			 n;

	if (ib->off == ib->len)
		ib->off = ib->len = 0;
	if (ib->cap - ib->len < GATE_READ_SIZE && ib->off != 0) {
		memmove(ib->data, ib->data + ib->off, ib->len - ib->off);
		ib->len -= ib->off;
		ib->off = 0;
	}
	if (ib->cap - ib->len < GATE_READ_SIZE) {
		cap = ib->cap == 0 ? 2 * GATE_READ_SIZE : ib->cap * 2;
		while (cap - ib->len < GATE_READ_SIZE)
			cap *= 2;
		ib->data = xreallocarray(ib->data, 1, cap);
		ib->cap = cap;
	}
	for (;;) {
		n = recv(g->fd, ib->data + ib->len, ib->cap - ib->len,
		    MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : -1;
	/* Less than asked for: the socket had no more (for now). */
	ib->drained = (size_t)n < ib->cap - ib->len;
	ib->len += (size_t)n;
	return n;
}

/*
 * Take the next complete frame out of the input buffer. 1 with msg
 * filled, 0 when more bytes are needed, -1 on a protocol error (reason
 * in err). The frame is consumed before it is dispatched, so a callback
 * that processes the connection again sees a consistent buffer.
 */
static int
gate_next(struct llmgate *g, struct proto_msg *msg, char *err, size_t errlen)
{
	struct gate_inbuf	*ib = &g->ib;
	const char		*p = ib->data + ib->off;
	ssize_t			 n;
	size_t			 need;

	if (ib->len == ib->off)
		return 0;
	n = proto_frame_len(p, ib->len - ib->off, PROTO_MAX_FRAME, &need);
	if (n == 0)
		return 0;
	if (n < 0) {
		snprintf(err, errlen, "bad frame length");
		return -1;
	}
	if (proto_decode(p + PROTO_HDR_LEN, (size_t)n, msg, err,
	    errlen) != 0)
		return -1;
	ib->off += PROTO_HDR_LEN + (size_t)n;
	return 1;
}

/* An asynchronous acquire's or report's answer, to its callback. */
static void
lease_answer(struct llmgate *g, struct pend *p, struct proto_msg *msg)
{
	char why[128];

	if (p->on_lease == NULL)
		return;
	if (msg->type == PROTO_ERROR) {
		p->on_lease(NULL, msg->u.result.cls, msg->u.result.message !=
		    NULL ? msg->u.result.message :
		    llmgate_class_name(msg->u.result.cls), p->arg);
		return;
	}
	if (msg->type != p->want) {
		snprintf(why, sizeof why, "unexpected '%s' reply from "
		    "llmgated", msg_type_name(msg));
		p->on_lease(NULL, LLMGATE_CONNECTION, why, p->arg);
		return;
	}
	if (msg->type == PROTO_LEASE) {
		msg->u.lease.target[sizeof msg->u.lease.target - 1] = '\0';
		p->on_lease(&msg->u.lease, LLMGATE_OK, NULL, p->arg);
	} else
		p->on_lease(NULL, LLMGATE_OK, NULL, p->arg);
}

/* A call's streamed text, as the chunks build it (reset starts over). */
static void
pend_chunk(struct pend *p, const struct llmgate_chunk *ch)
{
	size_t want;

	if (ch->reset)
		p->tlen = 0;
	if (ch->text == NULL || ch->len == 0)
		return;
	want = p->tlen + ch->len + 1;
	if (want > p->tcap) {
		p->tcap = want > 2 * p->tcap ? want : 2 * p->tcap;
		p->text = xreallocarray(p->text, 1, p->tcap);
	}
	memcpy(p->text + p->tlen, ch->text, ch->len);
	p->tlen += ch->len;
	p->text[p->tlen] = '\0';
}

/* The streamed text as the result's own, in its zone; NULL on failure. */
static char *
pend_text(struct pend *p, struct llmgate_result *r)
{
	char *t;

	if (r->priv == NULL ||
	    (t = msgpack_zone_malloc(r->priv, p->tlen + 1)) == NULL)
		return NULL;
	if (p->tlen != 0)
		memcpy(t, p->text, p->tlen);
	t[p->tlen] = '\0';
	return t;
}

static void
gate_dispatch(struct llmgate *g, struct proto_msg *msg)
{
	struct pend		*p;
	struct llmgate_result	*r;

	if (msg->id == 0) {
		/* A connection-level error usually comes right before the
		 * daemon closes: keep it to explain the loss. */
		if (msg->type == PROTO_ERROR && msg->u.result.message != NULL)
			snprintf(g->notice, sizeof g->notice, "%s",
			    msg->u.result.message);
		proto_msg_free(msg);
		return;
	}

	/* Frames for an id no longer pending (late chunks) are dropped. */
	if ((p = pend_find(g, msg->id)) == NULL) {
		proto_msg_free(msg);
		return;
	}

	if (p->kind == PEND_REQ) {
		pend_remove(g, p);
		p->waiter->msg = *msg;
		p->waiter->done = 1;
		pend_free(p);
		return;
	}
	if (p->kind == PEND_LEASE) {
		pend_remove(g, p);
		lease_answer(g, p, msg);
		pend_free(p);
		proto_msg_free(msg);
		return;
	}

	switch (msg->type) {
	case PROTO_CHUNK:
		pend_chunk(p, &msg->u.chunk);
		if (p->on_chunk != NULL)
			p->on_chunk(&msg->u.chunk, p->arg);
		break;
	case PROTO_RESULT:
	case PROTO_ERROR:
		pend_remove(g, p);
		r = result_from_msg(msg);
		/* A streamed result leaves out the text its chunks carried. */
		if (msg->streamed && r->text == NULL)
			r->text = pend_text(p, r);
		if (p->kind == PEND_SYNC) {
			p->waiter->result = r;
			p->waiter->done = 1;
		} else if (p->on_done != NULL)
			p->on_done(r, p->arg);
		else
			llmgate_result_free(r);
		pend_free(p);
		break;
	default:
		break;
	}
	proto_msg_free(msg);
}

/* A message's type as received, for saying it was not what we expected. */
static const char *
msg_type_name(const struct proto_msg *msg)
{
	if (msg->type == PROTO_UNKNOWN && msg->type_name != NULL)
		return msg->type_name;
	return proto_type_name(msg->type);
}

/* Decode and dispatch every complete frame buffered. -1 if the link died. */
static int
gate_parse(struct llmgate *g)
{
	struct proto_msg	msg;
	char			err[256];
	int			rv;

	for (;;) {
		if (g->dead || g->closing)
			return -1;
		memset(&msg, 0, sizeof msg);
		if ((rv = gate_next(g, &msg, err, sizeof err)) == 0)
			return 0;
		if (rv == -1) {
			gate_lost(g, "protocol error: %s", err);
			return -1;
		}
		gate_dispatch(g, &msg);
	}
}

int
llmgate_process(struct llmgate *g)
{
	ssize_t	n;
	int	rv;

	if (g->dead || g->closing)
		return -1;
	gate_enter(g);

	if (gate_flush(g) == -1) {
		gate_lost(g, "%s", strerror(errno));
		goto out;
	}
	/* Frames may already be buffered (read along with the hello). */
	if (gate_parse(g) == -1)
		goto out;
	for (;;) {
		n = gate_read(g);
		if (n == -2)
			break;
		if (n == 0) {
			gate_lost(g, NULL);
			break;
		}
		if (n == -1) {
			gate_lost(g, "%s", strerror(errno));
			break;
		}
		if (gate_parse(g) == -1)
			break;
		/*
		 * A short read emptied the socket: inside our own poll loop,
		 * asking again would only say EAGAIN (an EOF queued behind
		 * the data shows at the next poll). A caller's loop may be
		 * edge-triggered, which would not report that EOF again:
		 * there we read on to EAGAIN.
		 */
		if (g->ib.drained && g->polling)
			break;
	}
	/* Callbacks may have queued frames. */
	if (!g->dead && !g->closing && gate_flush(g) == -1)
		gate_lost(g, "%s", strerror(errno));

out:
	rv = (g->dead || g->closing) ? -1 : g->npending;
	if (gate_leave(g))
		return -1;
	return rv;
}

/* Serve the connection until w is answered. -1 if the connection ends. */
static int
gate_wait(struct llmgate *g, struct gate_waiter *w)
{
	struct pollfd	pfd;

	while (!w->done && !g->dead && !g->closing) {
		/* Send first: a small request usually goes out at once. */
		if (gate_flush(g) == -1) {
			gate_lost(g, "%s", strerror(errno));
			break;
		}
		pfd.fd = g->fd;
		pfd.events = POLLIN;
		if (g->ob_off < g->ob.size)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		if (poll(&pfd, 1, -1) == -1) {
			if (errno == EINTR)
				continue;
			gate_lost(g, "poll: %s", strerror(errno));
			break;
		}
		g->polling++;
		llmgate_process(g);
		g->polling--;
	}
	return (w->done && !w->lost) ? 0 : -1;
}

/*
 * The handshake, on a still-blocking socket: our hello out, the daemon's
 * hello (or an error frame saying why not) back within a deadline.
 */
static int
gate_hello(struct llmgate *g, const char *name)
{
	struct proto_hello	 hello;
	struct proto_msg	 msg;
	struct pollfd		 pfd;
	uint64_t		 deadline;
	int64_t			 left;
	ssize_t			 n;
	char			 err[256];
	int			 rv;

	memset(&hello, 0, sizeof hello);
	hello.version = PROTO_VERSION;
	hello.name = name;
	proto_enc_hello(&g->ob, &hello);

	deadline = gate_now_ms() + GATE_HELLO_TIMEOUT_MS;
	for (;;) {
		if (gate_flush(g) == -1) {
			gate_seterr(g, "cannot talk to llmgated at %s: %s",
			    g->path, strerror(errno));
			return -1;
		}
		memset(&msg, 0, sizeof msg);
		rv = gate_next(g, &msg, err, sizeof err);
		if (rv == -1) {
			gate_seterr(g, "protocol error from llmgated at %s: "
			    "%s", g->path, err);
			return -1;
		}
		if (rv == 1)
			break;

		left = (int64_t)deadline - (int64_t)gate_now_ms();
		if (left <= 0) {
			gate_seterr(g, "no answer from llmgated at %s within "
			    "%d s", g->path, GATE_HELLO_TIMEOUT_MS / 1000);
			return -1;
		}
		pfd.fd = g->fd;
		pfd.events = POLLIN;
		if (g->ob_off < g->ob.size)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		if (poll(&pfd, 1, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			gate_seterr(g, "poll: %s", strerror(errno));
			return -1;
		}
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
			continue;
		n = gate_read(g);
		if (n == 0) {
			gate_seterr(g, "llmgated at %s closed the connection "
			    "during the handshake", g->path);
			return -1;
		}
		if (n == -1) {
			gate_seterr(g, "cannot talk to llmgated at %s: %s",
			    g->path, strerror(errno));
			return -1;
		}
	}

	rv = -1;
	switch (msg.type) {
	case PROTO_HELLO:
		if (msg.u.hello.version != PROTO_VERSION) {
			gate_seterr(g, "llmgated at %s speaks protocol "
			    "version %u, this client %u", g->path,
			    msg.u.hello.version, PROTO_VERSION);
			break;
		}
		g->max_frame = msg.u.hello.max_frame;
		if (g->max_frame == 0 || g->max_frame > PROTO_MAX_FRAME)
			g->max_frame = PROTO_MAX_FRAME;
		rv = 0;
		break;
	case PROTO_ERROR:
		gate_seterr(g, "llmgated at %s refused the connection: %s",
		    g->path, msg.u.result.message != NULL ?
		    msg.u.result.message : "no reason given");
		break;
	default:
		gate_seterr(g, "unexpected '%s' from llmgated at %s during "
		    "the handshake", msg_type_name(&msg), g->path);
		break;
	}
	proto_msg_free(&msg);
	return rv;
}

struct llmgate *
llmgate_connect(const char *path, const char *client_name, char *err,
    size_t errlen)
{
	struct llmgate		*g;
	struct sockaddr_un	 sun;
	char			 buf[sizeof sun.sun_path + 64];
	int			 flags;

	if (path == NULL &&
	    (path = llmgate_socket_path(NULL, buf, sizeof buf)) == NULL) {
		snprintf(err, errlen, "socket path too long");
		return NULL;
	}
	if (client_name == NULL)
		client_name = "libllmgate";

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "cannot connect to llmgated at %s: "
		    "socket path too long", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);

	g = xcalloc(1, sizeof *g);
	g->path = xstrdup(path);
	g->next_id = 1;
	g->max_frame = PROTO_MAX_FRAME;
	TAILQ_INIT(&g->pending);
	msgpack_sbuffer_init(&g->ob);

	if ((g->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "cannot connect to llmgated at %s: "
		    "socket: %s", path, strerror(errno));
		goto fail;
	}
	while (connect(g->fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		if (errno == EINTR)
			continue;
		snprintf(err, errlen, "cannot connect to llmgated at %s: %s",
		    path, strerror(errno));
		goto fail;
	}
	if (gate_hello(g, client_name) == -1) {
		snprintf(err, errlen, "%s", g->error);
		goto fail;
	}
	if ((flags = fcntl(g->fd, F_GETFL)) == -1 ||
	    fcntl(g->fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "cannot connect to llmgated at %s: "
		    "fcntl: %s", path, strerror(errno));
		goto fail;
	}
	return g;

fail:
	gate_free(g);
	return NULL;
}

/*
 * Pending calls are dropped without their on_done. From inside a callback
 * the connection is only marked; it is freed when the library unwinds.
 */
void
llmgate_close(struct llmgate *g)
{
	if (g == NULL)
		return;
	if (g->busy > 0) {
		g->closing = 1;
		pend_free_all(g);
		return;
	}
	gate_free(g);
}

const char *
llmgate_error(struct llmgate *g)
{
	if (g == NULL)
		return "no connection";
	return *g->error != '\0' ? g->error : "no error";
}

int
llmgate_connected(struct llmgate *g)
{
	return g != NULL && !g->dead && !g->closing;
}

int
llmgate_fd(struct llmgate *g)
{
	return g->fd;
}

int
llmgate_want_write(struct llmgate *g)
{
	return !g->dead && g->ob_off < g->ob.size;
}

/*
 * Queue a frame under a new pending id: a call's request, an acquire or a
 * report as body, or a bare frame of type. NULL when it cannot go, the
 * reason in the error (g->toobig when it was over the daemon's limit).
 */
static struct pend *
pend_queue(struct llmgate *g, enum pend_kind kind, enum proto_type type,
    const void *body)
{
	struct pend	*p;
	size_t		 before;

	g->toobig = 0;
	if (g->dead || g->closing) {
		if (!g->dead)
			gate_seterr(g, "connection closed");
		return NULL;
	}
	if ((type == PROTO_CALL || type == PROTO_ACQUIRE ||
	    type == PROTO_REPORT) && body == NULL) {
		gate_seterr(g, "no request");
		return NULL;
	}
	p = pend_new(g, kind);
	before = g->ob.size;
	switch (type) {
	case PROTO_CALL:
		proto_enc_call(&g->ob, p->id, body);
		break;
	case PROTO_ACQUIRE:
		proto_enc_acquire(&g->ob, p->id, body);
		break;
	case PROTO_REPORT:
		proto_enc_report(&g->ob, p->id, body);
		break;
	default:
		proto_enc_simple(&g->ob, type, p->id);
		break;
	}
	if (gate_check_frame(g, before) == -1) {
		pend_remove(g, p);
		pend_free(p);
		return NULL;
	}
	/* A failed write surfaces in the next llmgate_process(). */
	(void)gate_flush(g);
	return p;
}

uint32_t
llmgate_submit(struct llmgate *g, const struct llmgate_request *req,
    llmgate_chunk_cb *on_chunk, llmgate_done_cb *on_done, void *arg)
{
	struct pend	*p;

	if ((p = pend_queue(g, PEND_CALL, PROTO_CALL, req)) == NULL)
		return 0;
	p->on_chunk = on_chunk;
	p->on_done = on_done;
	p->arg = arg;
	return p->id;
}

/* An asynchronous acquire or report: type is sent, want answers it. */
static uint32_t
lease_submit(struct llmgate *g, enum proto_type type, const void *body,
    enum proto_type want, llmgate_lease_cb *on_lease, void *arg)
{
	struct pend	*p;

	if (body == NULL) {
		gate_seterr(g, "no %s", type == PROTO_ACQUIRE ? "acquire" :
		    "report");
		return 0;
	}
	if ((p = pend_queue(g, PEND_LEASE, type, body)) == NULL)
		return 0;
	p->on_lease = on_lease;
	p->want = want;
	p->arg = arg;
	return p->id;
}

uint32_t
llmgate_acquire_submit(struct llmgate *g, const struct llmgate_acquire *acq,
    llmgate_lease_cb *on_lease, void *arg)
{
	return lease_submit(g, PROTO_ACQUIRE, acq, PROTO_LEASE, on_lease, arg);
}

uint32_t
llmgate_report_submit(struct llmgate *g, const struct llmgate_report *rep,
    llmgate_lease_cb *on_lease, void *arg)
{
	return lease_submit(g, PROTO_REPORT, rep, PROTO_OK, on_lease, arg);
}

int
llmgate_call(struct llmgate *g, const struct llmgate_request *req,
    llmgate_chunk_cb *on_chunk, void *arg, struct llmgate_result **out)
{
	struct gate_waiter	 w;
	struct pend		*p;
	int			 rv = -1;

	*out = NULL;
	memset(&w, 0, sizeof w);
	gate_enter(g);
	if ((p = pend_queue(g, PEND_SYNC, PROTO_CALL, req)) == NULL) {
		/* Too large is the request's fault, not the link's: answer
		 * it the way the daemon would have. */
		if (g->toobig) {
			*out = result_new(LLMGATE_INVALID_REQUEST, g->error);
			rv = 0;
		}
		goto out;
	}
	p->on_chunk = on_chunk;
	p->arg = arg;
	p->waiter = &w;
	gate_wait(g, &w);
	if (w.result != NULL) {
		*out = w.result;
		rv = 0;
	}
out:
	gate_leave(g);
	return rv;
}

int
llmgate_cancel(struct llmgate *g, uint32_t id)
{
	struct pend	*p;
	size_t		 before;

	if (g->dead || g->closing)
		return -1;
	if ((p = pend_find(g, id)) == NULL || p->kind == PEND_REQ) {
		gate_seterr(g, "no pending call %u", id);
		return -1;
	}
	if (p->cancelled)
		return 0;
	before = g->ob.size;
	proto_enc_simple(&g->ob, PROTO_CANCEL, id);
	if (gate_check_frame(g, before) == -1)
		return -1;
	p->cancelled = 1;
	(void)gate_flush(g);
	return 0;
}

/*
 * Small request/response operations (ping, status, metrics, reload,
 * acquire, report): one frame (see pend_queue), then a wait for the
 * reply. Returns 0 with the
 * reply in w->msg (the caller frees it) when it has type want, 1 when the
 * daemon answered with an error (class in *cls, message in the error), -1
 * when the connection failed or the reply made no sense. The caller holds
 * the connection busy, so that g outlives the reply.
 */
static int
req_run(struct llmgate *g, struct gate_waiter *w, enum proto_type type,
    const void *body, enum proto_type want, enum llmgate_class *cls)
{
	struct pend	*p;

	memset(w, 0, sizeof *w);
	if ((p = pend_queue(g, PEND_REQ, type, body)) == NULL)
		return -1;
	p->waiter = w;
	if (gate_wait(g, w) == -1)
		return -1;

	if (w->msg.type == want)
		return 0;
	if (w->msg.type == PROTO_ERROR) {
		if (cls != NULL)
			*cls = w->msg.u.result.cls;
		gate_seterr(g, "%s", w->msg.u.result.message != NULL ?
		    w->msg.u.result.message :
		    llmgate_class_name(w->msg.u.result.cls));
		proto_msg_free(&w->msg);
		return 1;
	}
	gate_seterr(g, "unexpected '%s' reply from llmgated",
	    msg_type_name(&w->msg));
	proto_msg_free(&w->msg);
	return -1;
}

/* The common shape of ping, reload and report: a frame, then ok or error. */
static int
req_simple(struct llmgate *g, enum proto_type type, const void *body,
    enum proto_type want)
{
	struct gate_waiter	w;
	int			rv;

	gate_enter(g);
	if ((rv = req_run(g, &w, type, body, want, NULL)) == 0)
		proto_msg_free(&w.msg);
	gate_leave(g);
	return rv == 0 ? 0 : -1;
}

int
llmgate_ping(struct llmgate *g)
{
	return req_simple(g, PROTO_PING, NULL, PROTO_PONG);
}

int
llmgate_reload(struct llmgate *g)
{
	return req_simple(g, PROTO_RELOAD, NULL, PROTO_OK);
}

int
llmgate_report(struct llmgate *g, const struct llmgate_report *rep)
{
	if (rep == NULL) {
		gate_seterr(g, "no report");
		return -1;
	}
	return req_simple(g, PROTO_REPORT, rep, PROTO_OK);
}

/*
 * JSON text through the caller's allocator, whatever jansson's is. Fifteen
 * digits print 0.2 as 0.2 rather than 0.20000000000000001.
 */
#define GATE_JSON_FLAGS \
	(JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

static char *
json_text(const json_t *j)
{
	size_t	 n;
	char	*s;

	n = json_dumpb(j, NULL, 0, GATE_JSON_FLAGS);
	s = xmalloc(n + 1);
	if (n != 0)
		json_dumpb(j, s, n, GATE_JSON_FLAGS);
	s[n] = '\0';
	return s;
}

int
llmgate_status(struct llmgate *g, char **json)
{
	struct gate_waiter	w;
	int			rv = -1;

	*json = NULL;
	gate_enter(g);
	if (req_run(g, &w, PROTO_STATUS, NULL, PROTO_STATUS, NULL) != 0)
		goto out;
	if (w.msg.u.status == NULL)
		gate_seterr(g, "llmgated sent an empty status");
	else {
		*json = json_text(w.msg.u.status);
		rv = 0;
	}
	proto_msg_free(&w.msg);
out:
	gate_leave(g);
	return rv;
}

int
llmgate_metrics(struct llmgate *g, char **text)
{
	struct gate_waiter	w;
	int			rv = -1;

	*text = NULL;
	gate_enter(g);
	if (req_run(g, &w, PROTO_METRICS, NULL, PROTO_METRICS, NULL) == 0) {
		*text = xstrdup(w.msg.u.metrics != NULL ? w.msg.u.metrics : "");
		proto_msg_free(&w.msg);
		rv = 0;
	}
	gate_leave(g);
	return rv;
}

int
llmgate_acquire(struct llmgate *g, const struct llmgate_acquire *acq,
    struct llmgate_lease **lease, enum llmgate_class *cls, char *err,
    size_t errlen)
{
	struct gate_waiter	w;
	enum llmgate_class	c = LLMGATE_CONNECTION;
	int			rv;

	if (err != NULL && errlen > 0)
		*err = '\0';
	*lease = NULL;
	gate_enter(g);
	/* c stays connection unless the daemon answered. */
	if ((rv = req_run(g, &w, PROTO_ACQUIRE, acq, PROTO_LEASE, &c)) == 0) {
		*lease = xmalloc(sizeof **lease);
		**lease = w.msg.u.lease;
		(*lease)->target[sizeof (*lease)->target - 1] = '\0';
		proto_msg_free(&w.msg);
		c = LLMGATE_OK;
	}
	if (cls != NULL)
		*cls = c;
	if (rv != 0 && err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", g->error);
	gate_leave(g);
	return rv;
}
