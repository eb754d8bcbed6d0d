/*
 * client.c: libllmgate, the client side of llmgated's socket protocol.
 *
 * One connection carries any number of calls at once, each tagged with an
 * id. The library keeps an input and an output buffer and a list of
 * pending requests; it never blocks except inside the functions documented
 * as blocking, and never writes to stdout or stderr.
 *
 * This file: the connection, its I/O and the handshake; the pending
 * requests are client-pend.c's, the requests a user makes client-ops.c's.
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
#include "client-int.h"

void
client_seterr(struct llmgate *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->error, sizeof g->error, fmt, ap);
	va_end(ap);
}

/* CLOCK_MONOTONIC in ms, for the handshake deadline only. */
static uint64_t
client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The one rule the daemon follows too: proto/socket.c. */
const char *
llmgate_socket_path(const char *explicit_path, char *buf, size_t len)
{
	return proto_socket_path(explicit_path, NULL, buf, len);
}

static void
client_free(struct llmgate *g)
{
	client_pend_free_all(g);
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
void
client_enter(struct llmgate *g)
{
	g->busy++;
}

int
client_leave(struct llmgate *g)
{
	if (--g->busy == 0 && g->closing) {
		client_free(g);
		return 1;
	}
	return 0;
}

/*
 * The connection is gone: every pending request ends, asynchronous calls
 * through on_done with class connection. A callback may submit (which now
 * fails) or close (which stops the loop); the list is re-read each time.
 */
void
client_lost(struct llmgate *g, const char *fmt, ...)
{
	struct client_pend *p;
	struct llmgate_result *r;
	char detail[256];
	va_list ap;

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
		client_seterr(g, "%s: %s", CLIENT_LOST, g->notice);
	else if (*detail != '\0')
		client_seterr(g, "%s: %s", CLIENT_LOST, detail);
	else
		client_seterr(g, "%s", CLIENT_LOST);

	while (!g->closing && (p = TAILQ_FIRST(&g->pending)) != NULL) {
		client_pend_remove(g, p);
		if (p->kind == PEND_CALL) {
			r = client_pend_result_new(LLMGATE_CONNECTION,
			    CLIENT_LOST);
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
		client_pend_free(p);
	}
}

/* Write what the socket takes now. -1 on a dead socket (errno set). */
int
client_flush(struct llmgate *g)
{
	ssize_t n;

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
int
client_check_frame(struct llmgate *g, size_t before)
{
	size_t len = g->ob.size - before;

	g->toobig = 0;
	if (len > g->max_frame) {
		g->ob.size = before;
		g->toobig = 1;
		client_seterr(g,
		    "request too large: %zu bytes, llmgated takes "
		    "at most %u",
		    len, g->max_frame);
		return -1;
	}
	return 0;
}

/*
 * One non-blocking read into the input buffer. Returns bytes read, 0 at
 * EOF, -1 on error and -2 when nothing is available.
 */
static ssize_t
client_read(struct llmgate *g)
{
	struct client_inbuf *ib = &g->ib;
	size_t cap;
	ssize_t n;

	if (ib->off == ib->len)
		ib->off = ib->len = 0;
	if (ib->cap - ib->len < CLIENT_READ_SIZE && ib->off != 0) {
		memmove(ib->data, ib->data + ib->off, ib->len - ib->off);
		ib->len -= ib->off;
		ib->off = 0;
	}
	if (ib->cap - ib->len < CLIENT_READ_SIZE) {
		cap = ib->cap == 0 ? 2 * CLIENT_READ_SIZE : ib->cap * 2;
		while (cap - ib->len < CLIENT_READ_SIZE)
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
client_next(struct llmgate *g, struct proto_msg *msg, char *err, size_t errlen)
{
	struct client_inbuf *ib = &g->ib;
	const char *p = ib->data + ib->off;
	ssize_t n;
	size_t need;

	if (ib->len == ib->off)
		return 0;
	n = proto_frame_len(p, ib->len - ib->off, PROTO_MAX_FRAME, &need);
	if (n == 0)
		return 0;
	if (n < 0) {
		snprintf(err, errlen, "bad frame length");
		return -1;
	}
	if (proto_decode(p + PROTO_HDR_LEN, (size_t)n, msg, err, errlen) != 0)
		return -1;
	ib->off += PROTO_HDR_LEN + (size_t)n;
	return 1;
}

/* A message's type as received, for saying it was not what we expected. */
const char *
client_msg_type_name(const struct proto_msg *msg)
{
	if (msg->type == PROTO_UNKNOWN && msg->type_name != NULL)
		return msg->type_name;
	return proto_type_name(msg->type);
}

/* Decode and dispatch every complete frame buffered. -1 if the link died. */
static int
client_parse(struct llmgate *g)
{
	struct proto_msg msg;
	char err[256];
	int rv;

	for (;;) {
		if (g->dead || g->closing)
			return -1;
		memset(&msg, 0, sizeof msg);
		if ((rv = client_next(g, &msg, err, sizeof err)) == 0)
			return 0;
		if (rv == -1) {
			client_lost(g, "protocol error: %s", err);
			return -1;
		}
		client_pend_dispatch(g, &msg);
	}
}

int
llmgate_process(struct llmgate *g)
{
	ssize_t n;
	int rv;

	if (g->dead || g->closing)
		return -1;
	client_enter(g);

	if (client_flush(g) == -1) {
		client_lost(g, "%s", strerror(errno));
		goto out;
	}
	/* Frames may already be buffered (read along with the hello). */
	if (client_parse(g) == -1)
		goto out;
	for (;;) {
		n = client_read(g);
		if (n == -2)
			break;
		if (n == 0) {
			client_lost(g, NULL);
			break;
		}
		if (n == -1) {
			client_lost(g, "%s", strerror(errno));
			break;
		}
		if (client_parse(g) == -1)
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
	if (!g->dead && !g->closing && client_flush(g) == -1)
		client_lost(g, "%s", strerror(errno));

out:
	rv = (g->dead || g->closing) ? -1 : g->npending;
	if (client_leave(g))
		return -1;
	return rv;
}

/* Serve the connection until w is answered. -1 if the connection ends. */
int
client_wait(struct llmgate *g, struct client_waiter *w)
{
	struct pollfd pfd;

	while (!w->done && !g->dead && !g->closing) {
		/* Send first: a small request usually goes out at once. */
		if (client_flush(g) == -1) {
			client_lost(g, "%s", strerror(errno));
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
			client_lost(g, "poll: %s", strerror(errno));
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
client_hello(struct llmgate *g, const char *name)
{
	struct proto_hello hello;
	struct proto_msg msg;
	struct pollfd pfd;
	uint64_t deadline;
	int64_t left;
	ssize_t n;
	char err[256];
	int rv;

	memset(&hello, 0, sizeof hello);
	hello.version = PROTO_VERSION;
	hello.name = name;
	proto_enc_hello(&g->ob, &hello);

	deadline = client_now_ms() + CLIENT_HELLO_TIMEOUT_MS;
	for (;;) {
		if (client_flush(g) == -1) {
			client_seterr(g, "cannot talk to llmgated at %s: %s",
			    g->path, strerror(errno));
			return -1;
		}
		memset(&msg, 0, sizeof msg);
		rv = client_next(g, &msg, err, sizeof err);
		if (rv == -1) {
			client_seterr(g,
			    "protocol error from llmgated at %s: "
			    "%s",
			    g->path, err);
			return -1;
		}
		if (rv == 1)
			break;

		left = (int64_t)deadline - (int64_t)client_now_ms();
		if (left <= 0) {
			client_seterr(g,
			    "no answer from llmgated at %s within "
			    "%d s",
			    g->path, CLIENT_HELLO_TIMEOUT_MS / 1000);
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
			client_seterr(g, "poll: %s", strerror(errno));
			return -1;
		}
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
			continue;
		n = client_read(g);
		if (n == 0) {
			client_seterr(g,
			    "llmgated at %s closed the connection "
			    "during the handshake",
			    g->path);
			return -1;
		}
		if (n == -1) {
			client_seterr(g, "cannot talk to llmgated at %s: %s",
			    g->path, strerror(errno));
			return -1;
		}
	}

	rv = -1;
	switch (msg.type) {
	case PROTO_HELLO:
		if (msg.u.hello.version != PROTO_VERSION) {
			client_seterr(g,
			    "llmgated at %s speaks protocol "
			    "version %u, this client %u",
			    g->path, msg.u.hello.version, PROTO_VERSION);
			break;
		}
		g->max_frame = msg.u.hello.max_frame;
		if (g->max_frame == 0 || g->max_frame > PROTO_MAX_FRAME)
			g->max_frame = PROTO_MAX_FRAME;
		rv = 0;
		break;
	case PROTO_ERROR:
		client_seterr(g, "llmgated at %s refused the connection: %s",
		    g->path,
		    msg.u.result.message != NULL ? msg.u.result.message :
		                                   "no reason given");
		break;
	default:
		client_seterr(g,
		    "unexpected '%s' from llmgated at %s during "
		    "the handshake",
		    client_msg_type_name(&msg), g->path);
		break;
	}
	proto_msg_free(&msg);
	return rv;
}

struct llmgate *
llmgate_connect(const char *path, const char *client_name, char *err,
    size_t errlen)
{
	struct llmgate *g;
	struct sockaddr_un sun;
	char buf[sizeof sun.sun_path + 64];
	int flags;

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
		snprintf(err, errlen,
		    "cannot connect to llmgated at %s: "
		    "socket path too long",
		    path);
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
		snprintf(err, errlen,
		    "cannot connect to llmgated at %s: "
		    "socket: %s",
		    path, strerror(errno));
		goto fail;
	}
	while (connect(g->fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		if (errno == EINTR)
			continue;
		snprintf(err, errlen, "cannot connect to llmgated at %s: %s",
		    path, strerror(errno));
		goto fail;
	}
	if (client_hello(g, client_name) == -1) {
		snprintf(err, errlen, "%s", g->error);
		goto fail;
	}
	if ((flags = fcntl(g->fd, F_GETFL)) == -1 ||
	    fcntl(g->fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		snprintf(err, errlen,
		    "cannot connect to llmgated at %s: "
		    "fcntl: %s",
		    path, strerror(errno));
		goto fail;
	}
	return g;

fail:
	client_free(g);
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
		client_pend_free_all(g);
		return;
	}
	client_free(g);
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
