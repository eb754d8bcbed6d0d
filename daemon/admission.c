/*
 * admission.c: the admission decision, pure. Whether an attempt (or a
 * lease) may go to a target now, must wait in its queue, or is refused:
 * the target's breaker, its rate budget, its provider's concurrency cap,
 * the fair queue and the wait it predicts, against the owner's own config
 * snapshot (struct admit_conf) and a `now` passed in. No clock, no timers,
 * no global config: admit.c is the libevent glue that arms the timers
 * these decisions ask for and answers the owners.
 */
#include <stdio.h>
#include <string.h>

#include "llmgated.h"

/* The owner's snapshot: the breaker and max_wait_ms it started under. */
void
admission_init(struct admission *a, struct target *t, const struct config *conf,
    uint32_t concurrency, uint32_t tokens, uint64_t client,
    enum llmgate_priority prio)
{
	memset(a, 0, sizeof *a);
	a->t = t;
	a->conf.breaker = conf->breaker;
	a->conf.max_wait_ms = conf->max_wait_ms;
	a->concurrency = concurrency;
	a->tokens = tokens;
	a->client = client;
	a->prio = prio;
}

/*
 * The class's: its queue class and weight (fair shares between classes),
 * its priority ceiling, and through klass its share and caps.
 */
void
admission_class(struct admission *a, const struct client_class *k)
{
	a->klass = k;
	a->node.ckey = k->key;
	a->node.weight = k->weight;
	a->prio = clients_priority(k, a->prio);
}

/* ms until the class's max_share of the target lets a go; 0: now. */
static uint64_t
admission_share_wait(const struct admission *a, uint64_t now)
{
	if (a->klass == NULL || a->klass->max_share >= 1)
		return 0;
	return share_wait_ms(&a->t->shares, &a->t->rl, a->klass, a->tokens,
	    now);
}

static int
admission_slot_free(const struct admission *a)
{
	return a->concurrency == 0 || a->t->provider->inflight < a->concurrency;
}

/*
 * The wait of every bucket the target draws from: its own and its quota
 * domains'. 0 only when all of them have the budget now.
 */
uint64_t
admission_wait_ms(const struct target *t, uint32_t tokens, uint64_t now)
{
	uint64_t wait = rl_wait_ms(&t->rl, tokens, now), w;

	if ((w = domain_wait_ms(&t->dom, tokens, now, NULL)) > wait)
		wait = w;
	return wait;
}

/* Checked with admission_wait_ms() first: take from all the buckets. */
static void
admission_take(struct admission *a, uint64_t now)
{
	rl_take(&a->t->rl, a->tokens, now);
	if (a->klass != NULL)
		share_take(&a->t->shares, &a->t->rl, a->klass, a->tokens, now);
	a->dom = a->t->dom;
	domain_take(&a->dom, a->tokens, now);
	a->t->provider->inflight++;
	a->granted = 1;
}

/*
 * How long a newcomer would wait: its own budget wait, or the queue
 * head's own wait plus one request interval per turn ahead of it,
 * whichever is longer. Ahead of it, by the queue's turns between clients:
 * not every queued request, or one client's backlog would refuse
 * everyone else's. An estimate, good enough to not queue a call that
 * cannot make its deadline or max_wait_ms.
 */
uint64_t
admission_predict(const struct admission *a, uint64_t now)
{
	const struct target *t = a->t;
	const struct admission *head;
	struct rl_status st;
	uint64_t wait = admission_wait_ms(t, a->tokens, now), turns, share;

	/* A class held to its share waits for it, whatever the queue. */
	if ((share = admission_share_wait(a, now)) > wait)
		wait = share;
	head = (const struct admission *)waitq_peek(
	    (struct waitq *)(uintptr_t)&t->queue);
	if (head == NULL)
		return wait;
	turns = admission_wait_ms(t, head->tokens, now);
	rl_status(&t->rl, now, &st);
	/* A turn takes the interval of the slowest bucket, a domain's too. */
	st.rpm_limit = domain_rpm_min(&t->dom, st.rpm_limit, now);
	if (st.rpm_limit > 0)
		turns += (uint64_t)waitq_ahead(&t->queue, a->client,
		             a->node.ckey, a->prio) *
		    60000 / (uint64_t)st.rpm_limit;
	return turns > wait ? turns : wait;
}

/*
 * Decide. GO: granted (budget taken, a slot held, a breaker ticket).
 * WAIT: queued, *wait_ms the predicted wait. Otherwise refused, holding
 * nothing; *wait_ms says how long it would have been.
 */
enum admit_verdict
admission_request(struct admission *a, uint64_t deadline_ms, uint64_t now,
    uint64_t *wait_ms)
{
	struct target *t = a->t;
	uint64_t wait;

	*wait_ms = 0;
	a->ticket = breaker_allow(&t->br, &a->conf.breaker, now);
	if (a->ticket == 0) {
		*wait_ms = breaker_open_remaining(&t->br, now);
		return ADMIT_OPEN;
	}
	if (waitq_len(&t->queue) == 0 && admission_slot_free(a) &&
	    admission_wait_ms(t, a->tokens, now) == 0 &&
	    admission_share_wait(a, now) == 0) {
		admission_take(a, now);
		return ADMIT_GO;
	}
	wait = admission_predict(a, now);
	*wait_ms = wait;
	if (deadline_ms != 0 && now + wait >= deadline_ms) {
		admission_release(a, now);
		return ADMIT_LATE;
	}
	/* A long cooldown (a spent quota) is no reason to wait here. */
	if (a->conf.max_wait_ms != 0 && wait > a->conf.max_wait_ms) {
		admission_release(a, now);
		return ADMIT_LONG;
	}
	if (a->klass != NULL && a->klass->max_queued != 0 &&
	    clients_state(a->klass)->queued >= a->klass->max_queued) {
		clients_state(a->klass)->refused_caps++;
		admission_release(a, now);
		return ADMIT_CLASS_FULL;
	}
	if (waitq_push(&t->queue, &a->node, a->client, a->prio) != 0) {
		admission_release(a, now);
		return ADMIT_FULL;
	}
	a->queued = 1;
	a->queued_ms = now;
	if (a->klass != NULL)
		clients_state(a->klass)->queued++;
	return ADMIT_WAIT;
}

/* The classes the queue passes over while their share is spent. */
struct admission_skip {
	uint64_t now;
	uint64_t wait; /* the soonest a passed-over one may go */
};

static int
admission_skip_share(struct waitq_node *n, void *arg)
{
	struct admission *a = (struct admission *)n;
	struct admission_skip *sk = arg;
	uint64_t w = admission_share_wait(a, sk->now);

	if (w == 0)
		return 0;
	if (sk->wait == 0 || w < sk->wait)
		sk->wait = w;
	return 1;
}

/*
 * Serve the queue: its head, granted and out of the queue, when it may go
 * now. NULL when nothing may: *wait_ms is then when the head's budget
 * (or a class held to its share) will be there, or 0 when there is no
 * head or it waits for a slot (a released slot is the event to wait for).
 */
struct admission *
admission_next(struct target *t, uint64_t now, uint64_t *wait_ms)
{
	struct admission_skip sk = { now, 0 };
	struct admission *a;

	*wait_ms = 0;
	a = (struct admission *)waitq_peek_if(&t->queue,
	    t->shares.n != 0 ? admission_skip_share : NULL, &sk);
	if (a == NULL) {
		*wait_ms = sk.wait;
		return NULL;
	}
	if ((*wait_ms = admission_wait_ms(t, a->tokens, now)) != 0) {
		if (sk.wait != 0 && sk.wait < *wait_ms)
			*wait_ms = sk.wait;
		return NULL;
	}
	if (!admission_slot_free(a))
		return NULL;
	waitq_take(&t->queue, &a->node);
	a->queued = 0;
	if (a->klass != NULL)
		clients_state(a->klass)->queued--;
	admission_take(a, now);
	return a;
}

/* The attempt ended: the budgets and the breaker learn its outcome. */
void
admission_done(struct admission *a, enum llmgate_class cls,
    const struct header_rl *rl, uint64_t used_tokens, uint64_t now)
{
	struct target *t = a->t;

	if (t == NULL)
		return;
	if (rl != NULL)
		rl_learn(&t->rl, rl, now);
	if (used_tokens != 0) {
		rl_reconcile(&t->rl, a->tokens, used_tokens, now);
		if (a->klass != NULL)
			share_reconcile(&t->shares, a->klass, a->tokens,
			    used_tokens, now);
	}
	rl_on_result(&t->rl, cls, rl != NULL ? rl->retry_after_ms : -1, now);
	domain_done(&a->dom, cls, rl, a->tokens, used_tokens, now);
	a->dom.n = 0;
	if (a->ticket != 0)
		breaker_record(&t->br, &a->conf.breaker, a->ticket, cls, now);
	a->ticket = 0;
}

/*
 * Give back whatever a holds: its place in the queue, its breaker ticket
 * (not counted: a probe frees its slot), its concurrency slot. Which of
 * these changed, as ADMISSION_* bits, so the glue knows what may move.
 */
unsigned
admission_release(struct admission *a, uint64_t now)
{
	struct target *t = a->t;
	unsigned changed = 0;

	if (t == NULL)
		return 0;
	if (a->queued) {
		waitq_remove(&t->queue, &a->node);
		a->queued = 0;
		if (a->klass != NULL)
			clients_state(a->klass)->queued--;
		changed |= ADMISSION_DEQUEUED;
	}
	if (a->ticket != 0) {
		breaker_record(&t->br, &a->conf.breaker, a->ticket,
		    LLMGATE_CANCELLED, now);
		a->ticket = 0;
	}
	if (a->granted) {
		a->granted = 0;
		t->provider->inflight--;
		changed |= ADMISSION_SLOT;
	}
	return changed;
}

/*
 * What a refusal (any verdict but GO and WAIT) answers: its class, and a
 * message for the caller into msg. limit names the caller's bound
 * ("deadline" for a call, "timeout" for a lease).
 */
enum llmgate_class
admission_refusal(const struct admission *a, enum admit_verdict v,
    uint64_t wait, uint64_t now, const char *limit, char *msg, size_t len)
{
	const struct domain *d;
	struct rl_status rs;

	switch (v) {
	case ADMIT_OPEN:
		snprintf(msg, len, "circuit open for %llu ms more",
		    (unsigned long long)wait);
		return LLMGATE_CIRCUIT_OPEN;
	case ADMIT_LATE:
		snprintf(msg, len,
		    "waiting %llu ms for budget would pass the "
		    "%s",
		    (unsigned long long)wait, limit);
		return LLMGATE_DEADLINE;
	case ADMIT_LONG:
		/* The quota domain that holds the call, when one does. */
		if (domain_wait_ms(&a->t->dom, a->tokens, now, &d) <=
		    rl_wait_ms(&a->t->rl, a->tokens, now))
			d = NULL;
		rl_status(d != NULL ? &d->rl : &a->t->rl, now, &rs);
		snprintf(msg, len, "no budget for %llu ms%s%s%s%s%s",
		    (unsigned long long)wait,
		    d != NULL ? " in quota domain '" : "",
		    d != NULL ? d->name : "", d != NULL ? "'" : "",
		    rs.cooldown_reason != NULL ? ": " : "",
		    rs.cooldown_reason != NULL ? rs.cooldown_reason : "");
		return LLMGATE_RATE_LIMITED;
	case ADMIT_FULL:
		snprintf(msg, len, "the target's queue is full");
		return LLMGATE_RATE_LIMITED;
	case ADMIT_EXPIRED:
		snprintf(msg, len,
		    "no budget or free slot after waiting %llu "
		    "ms (max_wait_ms)",
		    (unsigned long long)wait);
		return LLMGATE_RATE_LIMITED;
	case ADMIT_BUDGET:
		clients_budget_msg(a->klass, a->over, a->tokens, wait, msg,
		    len);
		return LLMGATE_BUDGET_EXHAUSTED;
	case ADMIT_CLASS_FULL:
		/* Waiting for budget, like a full queue: later may do. */
		snprintf(msg, len,
		    "client class '%s' has %u calls waiting "
		    "for budget, its most (max_queued)",
		    a->klass->name, a->klass->max_queued);
		return LLMGATE_RATE_LIMITED;
	default:
		snprintf(msg, len, "admitted");
		return LLMGATE_OK;
	}
}
