/*
 * client-pend.c: libllmgate's pending requests: ids, the frame queued
 * under one, and how an answer reaches it (a call's chunks and result, a
 * lease's answer, a small request's reply to its waiter); the results the
 * library makes up itself.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgate.h"
#include "proto.h"
#include "client-int.h"

/*
 * A result the library makes up itself (connection lost, request too
 * large): the message lives in the same allocation, so priv stays NULL
 * and llmgate_result_free() needs no second case.
 */
struct llmgate_result *
client_pend_result_new(enum llmgate_class cls, const char *message)
{
	struct llmgate_result *r;
	size_t len = strlen(message) + 1;

	r = xcalloc(1, sizeof *r + len);
	r->cls = cls;
	r->message = (char *)(r + 1);
	memcpy(r->message, message, len);
	r->finish = LLMGATE_FINISH_NONE;
	return r;
}

/* Move a decoded result or error into a heap result that owns its zone. */
static struct llmgate_result *
client_pend_result_msg(struct proto_msg *msg)
{
	struct llmgate_result *r;
	const char *name;
	size_t len;

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

struct client_pend *
client_pend_find(struct llmgate *g, uint32_t id)
{
	struct client_pend *p;

	TAILQ_FOREACH(p, &g->pending, entry) {
		if (p->id == id)
			return p;
	}
	return NULL;
}

/* Ids count up from 1 and wrap past 0, never reusing one still pending. */
static struct client_pend *
client_pend_new(struct llmgate *g, enum client_pend_kind kind)
{
	struct client_pend *p;
	uint32_t id;

	do {
		id = g->next_id++;
		if (g->next_id == 0)
			g->next_id = 1;
	} while (id == 0 || client_pend_find(g, id) != NULL);

	p = xcalloc(1, sizeof *p);
	p->id = id;
	p->kind = kind;
	TAILQ_INSERT_TAIL(&g->pending, p, entry);
	g->npending++;
	return p;
}

void
client_pend_free(struct client_pend *p)
{
	free(p->text);
	free(p);
}

void
client_pend_remove(struct llmgate *g, struct client_pend *p)
{
	TAILQ_REMOVE(&g->pending, p, entry);
	g->npending--;
}

void
client_pend_free_all(struct llmgate *g)
{
	struct client_pend *p;

	while ((p = TAILQ_FIRST(&g->pending)) != NULL) {
		client_pend_remove(g, p);
		client_pend_free(p);
	}
}

/* An asynchronous acquire's or report's answer, to its callback. */
static void
client_pend_lease(struct llmgate *g, struct client_pend *p,
    struct proto_msg *msg)
{
	char why[128];

	if (p->on_lease == NULL)
		return;
	if (msg->type == PROTO_ERROR) {
		p->on_lease(NULL, msg->u.result.cls,
		    msg->u.result.message != NULL ?
		        msg->u.result.message :
		        llmgate_class_name(msg->u.result.cls),
		    p->arg);
		return;
	}
	if (msg->type != p->want) {
		snprintf(why, sizeof why,
		    "unexpected '%s' reply from "
		    "llmgated",
		    client_msg_type_name(msg));
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
client_pend_chunk(struct client_pend *p, const struct llmgate_chunk *ch)
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
client_pend_text(struct client_pend *p, struct llmgate_result *r)
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

void
client_pend_dispatch(struct llmgate *g, struct proto_msg *msg)
{
	struct client_pend *p;
	struct llmgate_result *r;

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
	if ((p = client_pend_find(g, msg->id)) == NULL) {
		proto_msg_free(msg);
		return;
	}

	if (p->kind == PEND_REQ) {
		client_pend_remove(g, p);
		p->waiter->msg = *msg;
		p->waiter->done = 1;
		client_pend_free(p);
		return;
	}
	if (p->kind == PEND_LEASE) {
		client_pend_remove(g, p);
		client_pend_lease(g, p, msg);
		client_pend_free(p);
		proto_msg_free(msg);
		return;
	}

	switch (msg->type) {
	case PROTO_CHUNK:
		client_pend_chunk(p, &msg->u.chunk);
		if (p->on_chunk != NULL)
			p->on_chunk(&msg->u.chunk, p->arg);
		break;
	case PROTO_RESULT:
	case PROTO_ERROR:
		client_pend_remove(g, p);
		r = client_pend_result_msg(msg);
		/* A streamed result leaves out the text its chunks carried. */
		if (msg->streamed && r->text == NULL)
			r->text = client_pend_text(p, r);
		if (p->kind == PEND_SYNC) {
			p->waiter->result = r;
			p->waiter->done = 1;
		} else if (p->on_done != NULL)
			p->on_done(r, p->arg);
		else
			llmgate_result_free(r);
		client_pend_free(p);
		break;
	default:
		break;
	}
	proto_msg_free(msg);
}

/*
 * Queue a frame under a new pending id: a call's request, an acquire or a
 * report as body, or a bare frame of type. NULL when it cannot go, the
 * reason in the error (g->toobig when it was over the daemon's limit).
 */
struct client_pend *
client_pend_queue(struct llmgate *g, enum client_pend_kind kind,
    enum proto_type type, const void *body)
{
	struct client_pend *p;
	size_t before;

	g->toobig = 0;
	if (g->dead || g->closing) {
		if (!g->dead)
			client_seterr(g, "connection closed");
		return NULL;
	}
	if ((type == PROTO_CALL || type == PROTO_ACQUIRE ||
	        type == PROTO_REPORT) &&
	    body == NULL) {
		client_seterr(g, "no request");
		return NULL;
	}
	p = client_pend_new(g, kind);
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
	if (client_check_frame(g, before) == -1) {
		client_pend_remove(g, p);
		client_pend_free(p);
		return NULL;
	}
	/* A failed write surfaces in the next llmgate_process(). */
	(void)client_flush(g);
	return p;
}
