/*
 * client-ops.c: the requests a libllmgate user makes: calls (submitted
 * or blocking) and their cancel, leases (acquire and report, submitted or
 * blocking), and the small ones (ping, reload, status, metrics).
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgate.h"
#include "proto.h"
#include "client-int.h"

uint32_t
llmgate_submit(struct llmgate *g, const struct llmgate_request *req,
    llmgate_chunk_cb *on_chunk, llmgate_done_cb *on_done, void *arg)
{
	struct client_pend *p;

	if ((p = client_pend_queue(g, PEND_CALL, PROTO_CALL, req)) == NULL)
		return 0;
	p->on_chunk = on_chunk;
	p->on_done = on_done;
	p->arg = arg;
	return p->id;
}

/* An asynchronous acquire or report: type is sent, want answers it. */
static uint32_t
client_ops_lease_submit(struct llmgate *g, enum proto_type type,
    const void *body, enum proto_type want, llmgate_lease_cb *on_lease,
    void *arg)
{
	struct client_pend *p;

	if (body == NULL) {
		client_seterr(g, "no %s",
		    type == PROTO_ACQUIRE ? "acquire" : "report");
		return 0;
	}
	if ((p = client_pend_queue(g, PEND_LEASE, type, body)) == NULL)
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
	return client_ops_lease_submit(g, PROTO_ACQUIRE, acq, PROTO_LEASE,
	    on_lease, arg);
}

uint32_t
llmgate_report_submit(struct llmgate *g, const struct llmgate_report *rep,
    llmgate_lease_cb *on_lease, void *arg)
{
	return client_ops_lease_submit(g, PROTO_REPORT, rep, PROTO_OK, on_lease,
	    arg);
}

int
llmgate_call(struct llmgate *g, const struct llmgate_request *req,
    llmgate_chunk_cb *on_chunk, void *arg, struct llmgate_result **out)
{
	struct client_waiter w;
	struct client_pend *p;
	int rv = -1;

	*out = NULL;
	memset(&w, 0, sizeof w);
	client_enter(g);
	if ((p = client_pend_queue(g, PEND_SYNC, PROTO_CALL, req)) == NULL) {
		/* Too large is the request's fault, not the link's: answer
		 * it the way the daemon would have. */
		if (g->toobig) {
			*out = client_pend_result_new(LLMGATE_INVALID_REQUEST,
			    g->error);
			rv = 0;
		}
		goto out;
	}
	p->on_chunk = on_chunk;
	p->arg = arg;
	p->waiter = &w;
	client_wait(g, &w);
	if (w.result != NULL) {
		*out = w.result;
		rv = 0;
	}
out:
	client_leave(g);
	return rv;
}

int
llmgate_cancel(struct llmgate *g, uint32_t id)
{
	struct client_pend *p;
	size_t before;

	if (g->dead || g->closing)
		return -1;
	if ((p = client_pend_find(g, id)) == NULL || p->kind == PEND_REQ) {
		client_seterr(g, "no pending call %u", id);
		return -1;
	}
	if (p->cancelled)
		return 0;
	before = g->ob.size;
	proto_enc_simple(&g->ob, PROTO_CANCEL, id);
	if (client_check_frame(g, before) == -1)
		return -1;
	p->cancelled = 1;
	(void)client_flush(g);
	return 0;
}

/*
 * Small request/response operations (ping, status, metrics, reload,
 * acquire, report): one frame (see client_pend_queue), then a wait for the
 * reply. Returns 0 with the
 * reply in w->msg (the caller frees it) when it has type want, 1 when the
 * daemon answered with an error (class in *cls, message in the error), -1
 * when the connection failed or the reply made no sense. The caller holds
 * the connection busy, so that g outlives the reply.
 */
static int
client_ops_run(struct llmgate *g, struct client_waiter *w, enum proto_type type,
    const void *body, enum proto_type want, enum llmgate_class *cls)
{
	struct client_pend *p;

	memset(w, 0, sizeof *w);
	if ((p = client_pend_queue(g, PEND_REQ, type, body)) == NULL)
		return -1;
	p->waiter = w;
	if (client_wait(g, w) == -1)
		return -1;

	if (w->msg.type == want)
		return 0;
	if (w->msg.type == PROTO_ERROR) {
		if (cls != NULL)
			*cls = w->msg.u.result.cls;
		client_seterr(g, "%s",
		    w->msg.u.result.message != NULL ?
		        w->msg.u.result.message :
		        llmgate_class_name(w->msg.u.result.cls));
		proto_msg_free(&w->msg);
		return 1;
	}
	client_seterr(g, "unexpected '%s' reply from llmgated",
	    client_msg_type_name(&w->msg));
	proto_msg_free(&w->msg);
	return -1;
}

/* The common shape of ping, reload and report: a frame, then ok or error. */
static int
client_ops_simple(struct llmgate *g, enum proto_type type, const void *body,
    enum proto_type want)
{
	struct client_waiter w;
	int rv;

	client_enter(g);
	if ((rv = client_ops_run(g, &w, type, body, want, NULL)) == 0)
		proto_msg_free(&w.msg);
	client_leave(g);
	return rv == 0 ? 0 : -1;
}

int
llmgate_ping(struct llmgate *g)
{
	return client_ops_simple(g, PROTO_PING, NULL, PROTO_PONG);
}

int
llmgate_reload(struct llmgate *g)
{
	return client_ops_simple(g, PROTO_RELOAD, NULL, PROTO_OK);
}

int
llmgate_report(struct llmgate *g, const struct llmgate_report *rep)
{
	if (rep == NULL) {
		client_seterr(g, "no report");
		return -1;
	}
	return client_ops_simple(g, PROTO_REPORT, rep, PROTO_OK);
}

/*
 * JSON text through the caller's allocator, whatever jansson's is. Fifteen
 * digits print 0.2 as 0.2 rather than 0.20000000000000001.
 */
#define CLIENT_OPS_JSON_FLAGS \
	(JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

static char *
client_ops_json_text(const json_t *j)
{
	size_t n;
	char *s;

	n = json_dumpb(j, NULL, 0, CLIENT_OPS_JSON_FLAGS);
	s = xmalloc(n + 1);
	if (n != 0)
		json_dumpb(j, s, n, CLIENT_OPS_JSON_FLAGS);
	s[n] = '\0';
	return s;
}

int
llmgate_status(struct llmgate *g, char **json)
{
	struct client_waiter w;
	int rv = -1;

	*json = NULL;
	client_enter(g);
	if (client_ops_run(g, &w, PROTO_STATUS, NULL, PROTO_STATUS, NULL) != 0)
		goto out;
	if (w.msg.u.status == NULL)
		client_seterr(g, "llmgated sent an empty status");
	else {
		*json = client_ops_json_text(w.msg.u.status);
		rv = 0;
	}
	proto_msg_free(&w.msg);
out:
	client_leave(g);
	return rv;
}

int
llmgate_metrics(struct llmgate *g, char **text)
{
	struct client_waiter w;
	int rv = -1;

	*text = NULL;
	client_enter(g);
	if (client_ops_run(g, &w, PROTO_METRICS, NULL, PROTO_METRICS, NULL) ==
	    0) {
		*text = xstrdup(w.msg.u.metrics != NULL ? w.msg.u.metrics : "");
		proto_msg_free(&w.msg);
		rv = 0;
	}
	client_leave(g);
	return rv;
}

int
llmgate_acquire(struct llmgate *g, const struct llmgate_acquire *acq,
    struct llmgate_lease **lease, enum llmgate_class *cls, char *err,
    size_t errlen)
{
	struct client_waiter w;
	enum llmgate_class c = LLMGATE_CONNECTION;
	int rv;

	if (err != NULL && errlen > 0)
		*err = '\0';
	*lease = NULL;
	client_enter(g);
	/* c stays connection unless the daemon answered. */
	if ((rv = client_ops_run(g, &w, PROTO_ACQUIRE, acq, PROTO_LEASE, &c)) ==
	    0) {
		*lease = xmalloc(sizeof **lease);
		**lease = w.msg.u.lease;
		(*lease)->target[sizeof(*lease)->target - 1] = '\0';
		proto_msg_free(&w.msg);
		c = LLMGATE_OK;
	}
	if (cls != NULL)
		*cls = c;
	if (rv != 0 && err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", g->error);
	client_leave(g);
	return rv;
}
