/*
 * admit.c: admission, the stage between the call engine (or an advisory
 * lease) and the upstream. Before an attempt goes out it must pass the
 * target's circuit breaker, then its rate budget (requests and tokens per
 * minute, cooldowns, what the provider's headers taught us) and its
 * provider's concurrency cap. What cannot go now waits here, inside the
 * daemon rather than at the provider, in the target's queue: priority
 * first, then a fair share between clients, then arrival. The queue wakes
 * on a timer set for when its head's budget will be there, or when a slot
 * is released; never by polling. Retries also need the machine-wide retry
 * budget, so that a failing provider does not turn into a retry storm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static struct rbudget admit_rbudget;
static unsigned admit_nqueued;

static void admit_wake(evutil_socket_t, short, void *);
static void admit_expire(evutil_socket_t, short, void *);

static int
admit_slot_free(const struct admission *a)
{
	return a->concurrency == 0 ||
	    a->t->provider->inflight < a->concurrency;
}

static void
admit_take(struct admission *a, uint64_t now)
{
	rl_take(&a->t->rl, a->tokens, now);
	a->t->provider->inflight++;
	a->granted = 1;
}

static void
admit_arm(struct target *t, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
	    (suseconds_t)(ms % 1000) * 1000 };

	if (t->wake == NULL)
		t->wake = evtimer_new(ev_base, admit_wake, t);
	evtimer_add(t->wake, &tv);
}

/* Out of the queue (already unlinked): its max_wait_ms timer goes too. */
static void
admit_unqueue(struct admission *a)
{
	a->queued = 0;
	admit_nqueued--;
	if (a->expire != NULL) {
		event_free(a->expire);
		a->expire = NULL;
	}
}

/*
 * Serve a target's queue: grant heads while they may go; else sleep until
 * the head's budget refills. A head held back by the concurrency cap has
 * no time to wait for: a released slot kicks the queue.
 */
static void
admit_serve(struct target *t)
{
	struct admission *a;
	uint64_t now = now_ms(), wait;

	while ((a = (struct admission *)waitq_peek(&t->queue)) != NULL) {
		wait = rl_wait_ms(&t->rl, a->tokens, now);
		if (wait != 0) {
			admit_arm(t, wait);
			return;
		}
		if (!admit_slot_free(a))
			return;
		waitq_pop(&t->queue);
		admit_unqueue(a);
		admit_take(a, now);
		a->answer(a, ADMIT_GO, 0);
	}
}

static void
admit_wake(evutil_socket_t fd, short events, void *arg)
{
	admit_serve(arg);
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

/*
 * How long a newcomer would wait: its own budget wait, or the time the
 * requests ahead of it need at the target's request rate, whichever is
 * longer. Ahead of it, by the queue's turns between clients: not every
 * queued request, or one client's backlog would refuse everyone else's.
 * An estimate, good enough to not queue a call that cannot make its
 * deadline.
 */
static uint64_t
admit_predict(const struct admission *a, uint64_t now)
{
	const struct target *t = a->t;
	const struct admission *head;
	struct rl_status st;
	uint64_t wait = rl_wait_ms(&t->rl, a->tokens, now), turns;

	head = (const struct admission *)waitq_peek((struct waitq *)
	    (uintptr_t)&t->queue);
	if (head == NULL)
		return wait;
	/* The head goes when its own budget is there, the rest after it. */
	turns = rl_wait_ms(&t->rl, head->tokens, now);
	rl_status(&t->rl, now, &st);
	if (st.rpm_limit > 0)
		turns += (uint64_t)waitq_ahead(&t->queue, a->client, a->prio) *
		    60000 / (uint64_t)st.rpm_limit;
	return turns > wait ? turns : wait;
}

/*
 * What a refused admission (any verdict but GO and WAIT) answers: its
 * class, and a message for the caller into msg. limit names the caller's
 * bound ("deadline" for a call, "timeout" for a lease).
 */
enum llmgate_class
admit_refusal(const struct admission *a, enum admit_verdict v, uint64_t wait,
    uint64_t now, const char *limit, char *msg, size_t len)
{
	struct rl_status rs;

	switch (v) {
	case ADMIT_OPEN:
		snprintf(msg, len, "circuit open for %llu ms more",
		    (unsigned long long)wait);
		return LLMGATE_CIRCUIT_OPEN;
	case ADMIT_LATE:
		snprintf(msg, len, "waiting %llu ms for budget would pass the "
		    "%s", (unsigned long long)wait, limit);
		return LLMGATE_DEADLINE;
	case ADMIT_LONG:
		rl_status(&a->t->rl, now, &rs);
		snprintf(msg, len, "no budget for %llu ms%s%s",
		    (unsigned long long)wait,
		    rs.cooldown_reason != NULL ? ": " : "",
		    rs.cooldown_reason != NULL ? rs.cooldown_reason : "");
		return LLMGATE_RATE_LIMITED;
	case ADMIT_FULL:
		snprintf(msg, len, "the target's queue is full");
		return LLMGATE_RATE_LIMITED;
	case ADMIT_EXPIRED:
		snprintf(msg, len, "no budget or free slot after waiting %llu "
		    "ms (max_wait_ms)", (unsigned long long)wait);
		return LLMGATE_RATE_LIMITED;
	default:
		snprintf(msg, len, "admitted");
		return LLMGATE_OK;
	}
}

enum admit_verdict
admit_request(struct admission *a, uint64_t deadline_ms, uint64_t now,
    uint64_t *wait_ms)
{
	struct target *t = a->t;
	struct timeval tv;
	uint64_t wait;

	*wait_ms = 0;
	a->ticket = breaker_allow(&t->br, &cfg->breaker, now);
	if (a->ticket == 0) {
		*wait_ms = breaker_open_remaining(&t->br, now);
		return ADMIT_OPEN;
	}
	if (waitq_len(&t->queue) == 0 && admit_slot_free(a) &&
	    rl_wait_ms(&t->rl, a->tokens, now) == 0) {
		admit_take(a, now);
		return ADMIT_GO;
	}
	wait = admit_predict(a, now);
	*wait_ms = wait;
	if (deadline_ms != 0 && now + wait >= deadline_ms) {
		admit_cancel(a);
		return ADMIT_LATE;
	}
	/* A long cooldown (a spent quota) is no reason to wait here. */
	if (cfg->max_wait_ms != 0 && wait > cfg->max_wait_ms) {
		admit_cancel(a);
		return ADMIT_LONG;
	}
	if (waitq_push(&t->queue, &a->node, a->client, a->prio) != 0) {
		admit_cancel(a);
		return ADMIT_FULL;
	}
	a->queued = 1;
	a->queued_ms = now;
	admit_nqueued++;
	/* A wait the prediction got wrong still ends at max_wait_ms. */
	if (cfg->max_wait_ms != 0) {
		a->expire = evtimer_new(ev_base, admit_expire, a);
		tv.tv_sec = cfg->max_wait_ms / 1000;
		tv.tv_usec = (suseconds_t)(cfg->max_wait_ms % 1000) * 1000;
		evtimer_add(a->expire, &tv);
	}
	if (waitq_peek(&t->queue) == &a->node)
		admit_arm(t, wait);
	return ADMIT_WAIT;
}

/* A queued admission reached max_wait_ms: out, and its owner is told. */
static void
admit_expire(evutil_socket_t fd, short events, void *arg)
{
	struct admission *a = arg;

	admit_cancel(a);
	a->answer(a, ADMIT_EXPIRED, now_ms() - a->queued_ms);
}

void
admit_done(struct admission *a, enum llmgate_class cls,
    const struct rl_info *rl, uint64_t used_tokens, uint64_t now)
{
	struct target *t = a->t;

	if (t == NULL)
		return;
	if (rl != NULL)
		rl_learn(&t->rl, rl, now);
	if (used_tokens != 0)
		rl_reconcile(&t->rl, a->tokens, used_tokens, now);
	rl_on_result(&t->rl, cls, rl != NULL ? rl->retry_after_ms : -1, now);
	if (a->ticket != 0)
		breaker_record(&t->br, &cfg->breaker, a->ticket, cls, now);
	a->ticket = 0;
	admit_cancel(a);
	/* A cooldown or a refund changes when the head may go. */
	if (waitq_len(&t->queue) != 0)
		admit_arm(t, 0);
}

void
admit_cancel(struct admission *a)
{
	struct target *t = a->t;

	if (t == NULL)
		return;
	if (a->queued) {
		waitq_remove(&t->queue, &a->node);
		admit_unqueue(a);
		if (waitq_len(&t->queue) != 0)
			admit_arm(t, 0);
	}
	/* Cancelled is not counted: a probe gives its slot back. */
	if (a->ticket != 0) {
		breaker_record(&t->br, &cfg->breaker, a->ticket,
		    LLMGATE_CANCELLED, now_ms());
		a->ticket = 0;
	}
	if (a->granted) {
		a->granted = 0;
		t->provider->inflight--;
		admit_kick(t->provider);
	}
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
