/*
 * admit.c: admission, the stage between the call engine (or an advisory
 * lease) and the upstream: the libevent side of it. Whether an attempt may
 * go is admission.c's pure decision (breaker, rate budget, concurrency
 * cap, fair queue, predicted wait); here the decisions meet the clock and
 * the loop. What cannot go now waits in the target's queue, inside the
 * daemon rather than at the provider; the queue wakes on a timer set for
 * when its head's budget will be there, or when a slot is released, never
 * by polling; and a queued admission is answered when its max_wait_ms
 * passes. Retries also need the machine-wide retry budget, so that a
 * failing provider does not turn into a retry storm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static struct rbudget admit_rbudget;
static unsigned admit_nqueued;

static void admit_wake(evutil_socket_t, short, void *);
static void admit_expire(evutil_socket_t, short, void *);

static void
admit_arm(struct target *t, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
		(suseconds_t)(ms % 1000) * 1000 };

	if (t->wake == NULL)
		t->wake = evtimer_new(ev_base, admit_wake, t);
	evtimer_add(t->wake, &tv);
}

/* Out of the queue: its max_wait_ms timer goes too. */
static void
admit_unqueued(struct admission *a)
{
	admit_nqueued--;
	if (a->expire != NULL) {
		event_free(a->expire);
		a->expire = NULL;
	}
}

/* Grant heads while they may go; else sleep until the head's budget. */
static void
admit_serve(struct target *t)
{
	struct admission *a;
	uint64_t now = now_ms(), wait;

	while ((a = admission_next(t, now, &wait)) != NULL) {
		admit_unqueued(a);
		a->answer(a, ADMIT_GO, now - a->queued_ms);
	}
	if (wait != 0)
		admit_arm(t, wait);
}

static void
admit_wake(evutil_socket_t fd, short events, void *arg)
{
	admit_serve(arg);
}

void
admit_target_ready(struct target *t)
{
	if (waitq_len(&t->queue) != 0)
		admit_arm(t, 0);
}

/* A slot of this provider came free: its targets' queues may move. */
static void
admit_kick(struct provider_state *ps)
{
	struct target *t;

	for (t = ps->targets; t != NULL; t = t->pnext) {
		if (waitq_len(&t->queue) != 0)
			admit_arm(t, 0);
	}
}

/* The class's token budgets give back what a held, charging used. */
static void
admit_settle(struct admission *a, uint64_t used)
{
	if (a->held == 0 && used == 0)
		return;
	clients_settle(a->klass, a->held, used, clients_wall_ms());
	a->held = 0;
}

/*
 * Budget a domain gave back (a refund) or a hold it took changes when the
 * queues of all its members may move, not only the one that settled.
 */
static void
admit_kick_domains(const struct domset *ds)
{
	struct target *t;
	unsigned i;

	if (ds->n == 0)
		return;
	for (t = target_first(); t != NULL; t = t->next) {
		if (waitq_len(&t->queue) == 0)
			continue;
		for (i = 0; i < ds->n; i++) {
			if (domain_has(&t->dom, ds->d[i])) {
				admit_arm(t, 0);
				break;
			}
		}
	}
}

void
admit_domain_ready(struct domain *d)
{
	struct domset ds;

	memset(&ds, 0, sizeof ds);
	ds.d[ds.n++] = d;
	admit_kick_domains(&ds);
}

enum admit_verdict
admit_request(struct admission *a, uint64_t deadline_ms, uint64_t now,
    uint64_t *wait_ms)
{
	struct target *t = a->t;
	enum admit_verdict v;
	struct timeval tv;

	/* The class's budgets first: held from here, so calls in flight
	 * together cannot pass them (clients.c). */
	if (a->klass != NULL &&
	    (a->klass->tokens_per_minute != 0 ||
	        a->klass->tokens_per_day != 0)) {
		a->over = clients_reserve(a->klass, a->tokens,
		    clients_wall_ms(), wait_ms);
		if (a->over != 0)
			return ADMIT_BUDGET;
		a->held = a->tokens;
	}
	if ((v = admission_request(a, deadline_ms, now, wait_ms)) !=
	    ADMIT_WAIT) {
		if (v != ADMIT_GO && a->klass != NULL)
			admit_settle(a, 0);
		return v;
	}
	admit_nqueued++;
	/* A wait the prediction got wrong still ends at max_wait_ms. */
	if (a->conf.max_wait_ms != 0) {
		a->expire = evtimer_new(ev_base, admit_expire, a);
		tv.tv_sec = a->conf.max_wait_ms / 1000;
		tv.tv_usec = (suseconds_t)(a->conf.max_wait_ms % 1000) * 1000;
		evtimer_add(a->expire, &tv);
	}
	if (waitq_peek(&t->queue) == &a->node)
		admit_arm(t, *wait_ms);
	else if (t->shares.n != 0)
		/* Behind a class held to its share it may still go first. */
		admit_arm(t, 0);
	return ADMIT_WAIT;
}

/* A queued admission reached max_wait_ms: out, and its owner is told. */
static void
admit_expire(evutil_socket_t fd, short events, void *arg)
{
	struct admission *a = arg;
	uint64_t waited = now_ms() - a->queued_ms;

	admit_cancel(a);
	a->answer(a, ADMIT_EXPIRED, waited);
}

void
admit_done(struct admission *a, enum llmgate_class cls,
    const struct header_rl *rl, uint64_t used_tokens, uint64_t now)
{
	struct cluster_seen seen;
	struct domset ds = a->dom;
	int shared;

	if (a->t == NULL)
		return;
	/* A hold, a learned limit, an open breaker: the cluster's too. */
	if ((shared = cluster_active()) != 0)
		cluster_before(a->t, &ds, &seen);
	admission_done(a, cls, rl, used_tokens, now);
	if (shared)
		cluster_after(a->t, &ds, &seen, now);
	if (a->klass != NULL)
		admit_settle(a, used_tokens);
	admit_cancel(a);
	admit_kick_domains(&ds);
	/* A cooldown or a refund changes when the head may go. */
	if (waitq_len(&a->t->queue) != 0)
		admit_arm(a->t, 0);
}

void
admit_cancel(struct admission *a)
{
	unsigned changed;

	if (a->klass != NULL)
		admit_settle(a, 0);
	if (a->t == NULL)
		return;
	changed = admission_release(a, now_ms());
	if (changed & ADMISSION_DEQUEUED) {
		admit_unqueued(a);
		if (waitq_len(&a->t->queue) != 0)
			admit_arm(a->t, 0);
	}
	if (changed & ADMISSION_SLOT)
		admit_kick(a->t->provider);
}

void
admit_first(uint64_t now)
{
	rbudget_first(&admit_rbudget, now);
}

int
admit_retry(const struct retry_budget_conf *rb, uint64_t now)
{
	return rbudget_try_retry(&admit_rbudget, rb, now);
}

double
admit_retry_available(const struct retry_budget_conf *rb, uint64_t now)
{
	return rbudget_available(&admit_rbudget, rb, now);
}

unsigned
admit_queued(void)
{
	return admit_nqueued;
}
