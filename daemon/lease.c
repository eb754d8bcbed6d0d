/*
 * lease.c: advisory leases, for processes that keep calling a provider
 * with their own SDK. A lease goes through the same admission as a call
 * (breaker, rate budget, concurrency cap, fair queue); its report feeds the
 * same cooldowns, learned limits and breaker, so one process's 429 cools
 * the target down for every process. An unreported lease is released after
 * its TTL, counted as neither failure nor success.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define LEASE_HASH 1024
/*
 * Leases granted and not yet reported, at most: each holds memory and a
 * timer until its TTL, so a client that takes leases and never reports
 * them must not grow the daemon without bound. (Acquires still waiting
 * are bounded by max_inflight on each connection.)
 */
#define LEASE_MAX 65536

/*
 * What one user may do, since leases and reports come from any local
 * client: hold LEASE_MAX_PER_UID leases (granted or waiting), make a
 * target cool down for LEASE_HOLD_MAX_MS at most per report (an upstream's
 * own Retry-After may hold it for an hour), and have LEASE_BAD_BURST
 * failure reports at one target, then one per LEASE_BAD_EVERY_MS, count
 * toward its cooldown and breaker; past that a failure report releases
 * the lease but moves nothing (logged).
 */
#define LEASE_MAX_PER_UID  4096
#define LEASE_HOLD_MAX_MS  60000
#define LEASE_BAD_BURST    3
#define LEASE_BAD_EVERY_MS 10000
#define LEASE_LOG_EVERY_MS 10000 /* one "not applied" line per user */

struct lease_user {
	uid_t uid;
	unsigned leases; /* granted or waiting */
	uint64_t logged_at;
	uint64_t unlogged; /* reports not applied since */
	struct lease_user *next;
};

/* One user's failure-report budget at one target; gone once full again. */
#define LEASE_BAD_HASH 256
struct lease_bad {
	uid_t uid;
	const struct target *t;
	uint64_t at;    /* refills counted from */
	uint32_t level; /* full at LEASE_BAD_BURST */
	struct lease_bad *next;
};

enum lease_state {
	LEASE_ASKED,   /* acquire not yet looked at */
	LEASE_WAITING, /* queued for budget */
	LEASE_GRANTED, /* answered; until report or TTL */
};

struct lease {
	uint64_t id;
	struct lease_user *user;
	enum lease_state state;
	struct admission adm;
	char *target;    /* as asked, then as the target's */
	uint32_t tokens; /* the acquire's, until admitted */
	uint32_t timeout_ms;
	enum llmgate_priority prio;
	uint64_t client;
	uid_t uid;          /* whose targets it makes (target.c) */
	struct config *cfg; /* its class's */
	const struct client_class *klass;
	struct client_state *kstate; /* counted in its inflight */
	struct event *timer;         /* the first step, the deadline
					   while queued, then the TTL */
	lease_cb *cb;                /* the answer to acquire */
	void *arg;
	struct lease *hnext;
};

static struct lease *lease_table[LEASE_HASH];
static unsigned lease_count;
static struct lease_user *lease_users;
static struct lease_bad *lease_bad_table[LEASE_BAD_HASH];

/* uid's record, made on first use; users are few, a list will do. */
static struct lease_user *
lease_user(uid_t uid)
{
	struct lease_user *u;

	for (u = lease_users; u != NULL; u = u->next) {
		if (u->uid == uid)
			return u;
	}
	u = xcalloc(1, sizeof *u);
	u->uid = uid;
	u->next = lease_users;
	lease_users = u;
	return u;
}

/*
 * May one more failure report of uid's move t's shared state? Takes it if
 * so: a token bucket, LEASE_BAD_BURST deep, one back per
 * LEASE_BAD_EVERY_MS. Buckets full again are dropped on the way.
 */
static int
lease_bad_allowed(uid_t uid, const struct target *t, uint64_t now)
{
	struct lease_bad **pp, *b, *found = NULL;
	uint64_t n;

	pp = &lease_bad_table[((uintptr_t)t / sizeof(void *) ^ uid) %
	    LEASE_BAD_HASH];
	while ((b = *pp) != NULL) {
		n = now > b->at ? (now - b->at) / LEASE_BAD_EVERY_MS : 0;
		if (n >= LEASE_BAD_BURST - b->level) {
			b->level = LEASE_BAD_BURST;
			b->at = now;
		} else {
			b->level += (uint32_t)n;
			b->at += n * LEASE_BAD_EVERY_MS;
		}
		if (b->uid == uid && b->t == t)
			found = b;
		else if (b->level == LEASE_BAD_BURST) {
			*pp = b->next;
			free(b);
			continue;
		}
		pp = &b->next;
	}
	if ((b = found) == NULL) {
		b = xcalloc(1, sizeof *b);
		b->uid = uid;
		b->t = t;
		b->at = now;
		b->level = LEASE_BAD_BURST;
		b->next = *pp;
		*pp = b;
	}
	if (b->level == 0)
		return 0;
	if (b->level == LEASE_BAD_BURST)
		b->at = now; /* refills count from the first use */
	b->level--;
	return 1;
}

static void
lease_link(struct lease *l)
{
	struct lease **pp = &lease_table[l->id % LEASE_HASH];

	l->hnext = *pp;
	*pp = l;
	lease_count++;
}

static struct lease *
lease_unlink(uint64_t id)
{
	struct lease **pp, *l;

	for (pp = &lease_table[id % LEASE_HASH]; (l = *pp) != NULL;
	     pp = &l->hnext) {
		if (l->id == id) {
			*pp = l->hnext;
			lease_count--;
			return l;
		}
	}
	return NULL;
}

static void
lease_free(struct lease *l)
{
	admit_cancel(&l->adm);
	target_release(l->adm.t);
	l->user->leases--;
	if (l->kstate != NULL)
		l->kstate->inflight--;
	config_unref(l->cfg);
	event_free(l->timer);
	free(l->target);
	free(l);
}

static void
lease_arm(struct lease *l, uint32_t ms)
{
	struct timeval tv = { ms / 1000, (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(l->timer, &tv);
}

/* Answer acquire once; a granted lease then lives until report or TTL. */
static void
lease_answer(struct lease *l, enum llmgate_class cls, const char *msg)
{
	struct llmgate_lease out;
	lease_cb *cb = l->cb;

	l->cb = NULL;
	if (cls != LLMGATE_OK) {
		if (cb != NULL)
			cb(l->arg, NULL, cls, msg);
		lease_free(l);
		return;
	}
	memset(&out, 0, sizeof out);
	out.id = l->id;
	snprintf(out.target, sizeof out.target, "%s", l->target);
	out.ttl_ms = cfg->lease_ttl_ms;
	l->state = LEASE_GRANTED;
	lease_link(l);
	lease_arm(l, cfg->lease_ttl_ms);
	if (cb != NULL)
		cb(l->arg, &out, LLMGATE_OK, NULL);
}

static void
lease_admitted(struct admission *a, enum admit_verdict v, uint64_t waited)
{
	struct lease *l = a->arg;
	enum llmgate_class cls;
	char msg[320];

	evtimer_del(l->timer);
	if (v == ADMIT_GO) {
		lease_answer(l, LLMGATE_OK, NULL);
		return;
	}
	cls = admission_refusal(a, v, waited, now_ms(), "timeout", msg,
	    sizeof msg);
	lease_answer(l, cls, msg);
}

static void lease_step(struct lease *);

static void
lease_timer(evutil_socket_t fd, short events, void *arg)
{
	struct lease *l = arg;
	char msg[96];

	switch (l->state) {
	case LEASE_ASKED:
		lease_step(l);
		return;
	case LEASE_WAITING:
		snprintf(msg, sizeof msg, "no budget at %s before the timeout",
		    l->target);
		lease_answer(l, LLMGATE_DEADLINE, msg);
		return;
	case LEASE_GRANTED:
		break;
	}
	log_debug("lease %llu at %s expired unreported",
	    (unsigned long long)l->id, l->target);
	lease_unlink(l->id);
	lease_free(l);
}

/*
 * A lease id: 63 random bits, unguessable, since any process may report a
 * lease it names. glibc's arc4random is one getrandom(2) per call, so ids
 * are drawn 64 at a time.
 */
static uint64_t
lease_new_id(void)
{
	static uint64_t pool[64];
	static size_t left;
	uint64_t id;

	do {
		if (left == 0) {
			arc4random_buf(pool, sizeof pool);
			left = sizeof pool / sizeof pool[0];
		}
		id = pool[--left] >> 1;
		pool[left] = 0;
	} while (id == 0);
	return id;
}

/*
 * Ask for a lease. As with a call, the answer comes through cb exactly
 * once, never from inside lease_acquire(): with the lease, or with a class
 * (invalid_request, circuit_open, deadline, rate_limited, overloaded...),
 * unless lease_cancel() or lease_detach() came first. req is copied.
 */
struct lease *
lease_acquire(const struct llmgate_acquire *req,
    const struct call_client *client, lease_cb *cb, void *arg)
{
	struct lease *l = xcalloc(1, sizeof *l);

	l->state = LEASE_ASKED;
	l->target = xstrdup(req->target != NULL ? req->target : "");
	l->tokens = req->tokens;
	l->timeout_ms = req->timeout_ms;
	l->prio = req->priority;
	l->client = client->id;
	l->uid = client->uid;
	l->cfg = config_ref(cfg);
	l->klass = clients_match(l->cfg, client->ident);
	l->user = lease_user(client->uid);
	l->user->leases++;
	l->cb = cb;
	l->arg = arg;
	l->timer = evtimer_new(ev_base, lease_timer, l);
	lease_arm(l, 0);
	return l;
}

/*
 * What an acquire names, held: one target, or each member of a pool (its
 * conf in *pool). The number held; 0 after answering invalid_request.
 */
static size_t
lease_targets(struct lease *l, struct target **mem,
    const struct provider_conf **prov, const struct pool_conf **pool)
{
	const struct pool_conf *pc = NULL;
	char *cause = NULL;
	size_t i, n = 1;

	if (strchr(l->target, '/') == NULL &&
	    (pc = config_pool(cfg, l->target)) != NULL)
		n = pc->ntargets;
	*pool = pc;
	for (i = 0; i < n; i++) {
		mem[i] =
		    target_resolve(cfg, pc != NULL ? pc->targets[i] : l->target,
		        l->uid, &prov[i], &cause);
		if (mem[i] == NULL) {
			while (i > 0)
				target_release(mem[--i]);
			lease_answer(l, LLMGATE_INVALID_REQUEST, cause);
			free(cause);
			return 0;
		}
	}
	return n;
}

/*
 * The acquire, on the loop: the target, then admission. A pool's lease
 * goes to the member a call's attempt would take (pool_pick()); one that
 * admission refuses gives way to the next, and the acquire fails only
 * when no member is left. The lease then holds that member alone.
 */
static void
lease_step(struct lease *l)
{
	const struct provider_conf *prov[POOL_MAX_MEMBERS];
	struct pool_member view[POOL_MAX_MEMBERS];
	struct target *mem[POOL_MAX_MEMBERS];
	const struct pool_conf *pool;
	char msg[320] = "no member of the pool to lease";
	uint64_t now = now_ms(), wait, refused = 0;
	uint32_t tokens = l->tokens != 0 ? l->tokens : rl_estimate_tokens(0, 0);
	enum admit_verdict v = ADMIT_GO;
	enum llmgate_class cls = LLMGATE_INTERNAL;
	size_t i, n;
	int k = 0;

	if ((n = lease_targets(l, mem, prov, &pool)) == 0)
		return;
	/* This one counted already among its user's. */
	if (lease_count >= LEASE_MAX || l->user->leases > LEASE_MAX_PER_UID) {
		for (i = 0; i < n; i++)
			target_release(mem[i]);
		if (lease_count >= LEASE_MAX)
			snprintf(msg, sizeof msg,
			    "%u leases outstanding, the "
			    "most llmgated keeps: report leases when done",
			    lease_count);
		else
			snprintf(msg, sizeof msg,
			    "uid %ld has %u leases "
			    "outstanding, the most one user may hold: report "
			    "leases when done",
			    (long)l->uid, l->user->leases - 1);
		lease_answer(l, LLMGATE_OVERLOADED, msg);
		return;
	}
	if (clients_enter(l->klass, &l->kstate, msg, sizeof msg) != 0) {
		for (i = 0; i < n; i++)
			target_release(mem[i]);
		lease_answer(l, LLMGATE_OVERLOADED, msg);
		return;
	}
	l->id = lease_new_id();
	for (;;) {
		if (pool != NULL) {
			for (i = 0; i < n; i++)
				pool_member_view(&view[i], mem[i],
				    prov[i]->concurrency, tokens, now);
			if ((k = pool_pick(pool->state, view, 0, refused)) < 0)
				break;
			log_debug("lease: pool %s: %s", pool->name,
			    mem[k]->name);
		}
		free(l->target);
		l->target = xstrdup(mem[k]->name);
		/* The breaker and max_wait_ms of the config it is asked under. */
		admission_init(&l->adm, mem[k], cfg, prov[k]->concurrency,
		    tokens, l->client, l->prio);
		admission_class(&l->adm, l->klass);
		l->adm.answer = lease_admitted;
		l->adm.arg = l;
		v = admit_request(&l->adm,
		    l->timeout_ms != 0 ? now + l->timeout_ms : 0, now, &wait);
		if (v == ADMIT_GO || v == ADMIT_WAIT) {
			cls = LLMGATE_OK;
			break;
		}
		cls = admission_refusal(&l->adm, v, wait, now, "timeout", msg,
		    sizeof msg);
		if (pool == NULL)
			break;
		refused |= POOL_BIT(k);
	}
	/* The lease holds the member admission saw last (lease_free()). */
	for (i = 0; i < n; i++) {
		if (mem[i] != l->adm.t)
			target_release(mem[i]);
	}
	if (cls != LLMGATE_OK)
		lease_answer(l, cls, msg);
	else if (v == ADMIT_GO)
		lease_answer(l, LLMGATE_OK, NULL);
	else {
		l->state = LEASE_WAITING;
		if (l->timeout_ms != 0)
			lease_arm(l, l->timeout_ms);
	}
}

/* The acquire ends unanswered by the budget: cb gets cls and why now. */
void
lease_cancel(struct lease *l, enum llmgate_class cls, const char *why)
{
	lease_answer(l, cls, why);
}

/* The asking connection went away before the answer: no callback. */
void
lease_detach(struct lease *l)
{
	l->cb = NULL;
	lease_free(l);
}

/* A failure report of u's that was not applied, logged at most so often. */
static void
lease_not_applied(struct lease_user *u, const struct lease *l,
    enum llmgate_class cls, uint64_t now)
{
	u->unlogged++;
	if (u->logged_at != 0 && now - u->logged_at < LEASE_LOG_EVERY_MS)
		return;
	log_warnx(
	    "lease reports from uid %ld: %llu failure report(s) not "
	    "applied to cooldowns or breakers, the last %s at %s (over %d "
	    "at once or one per %d s from one user at one target)",
	    (long)u->uid, (unsigned long long)u->unlogged,
	    llmgate_class_name(cls), l->target, LEASE_BAD_BURST,
	    LEASE_BAD_EVERY_MS / 1000);
	u->logged_at = now;
	u->unlogged = 0;
}

/*
 * What a lease holder saw: the same feedback an attempt gives, within what
 * one user may move (see LEASE_MAX_PER_UID). Only the user that took a
 * lease may report it; to others it is unknown.
 */
int
lease_report(const struct llmgate_report *rep, uid_t uid, char **cause)
{
	struct lease *l = lease_unlink(rep->lease);
	struct header_rl rl;
	enum llmgate_class cls;
	uint64_t now = now_ms();
	int64_t hold;

	if (l != NULL && l->user->uid != uid) {
		lease_link(l);
		l = NULL;
	}
	if (l == NULL) {
		xasprintf(cause, "lease %llu is unknown or expired",
		    (unsigned long long)rep->lease);
		return -1;
	}
	header_rl_init(&rl);
	cls = rep->status == 0 ? LLMGATE_CONNECTION :
	                         reply_class_for_status(rep->status);
	/* A report holds a target LEASE_HOLD_MAX_MS at most, a spent
	 * quota included (an upstream's own hint may hold it an hour). */
	if (rep->retry_after_s >= 0 || cls == LLMGATE_QUOTA_EXHAUSTED) {
		hold = rep->retry_after_s >= 0 &&
		        rep->retry_after_s * 1000 < LEASE_HOLD_MAX_MS ?
		    (int64_t)(rep->retry_after_s * 1000) :
		    LEASE_HOLD_MAX_MS;
		rl.retry_after_ms = hold;
		if (cls == LLMGATE_QUOTA_EXHAUSTED)
			cls = LLMGATE_RATE_LIMITED;
	}
	if ((breaker_class(cls) == 1 || cls == LLMGATE_RATE_LIMITED) &&
	    !lease_bad_allowed(uid, l->adm.t, now)) {
		lease_not_applied(l->user, l, cls, now);
		cls = LLMGATE_CANCELLED;
		header_rl_init(&rl);
	}
	admit_done(&l->adm, cls, &rl,
	    rl_tokens_sum(rep->input_tokens, rep->output_tokens), now);
	lease_free(l);
	return 0;
}

unsigned
lease_active(void)
{
	return lease_count;
}

void
lease_free_all(void)
{
	struct lease_bad *b;
	struct lease_user *u;
	struct lease *l;
	size_t i;

	for (i = 0; i < LEASE_HASH; i++) {
		while ((l = lease_table[i]) != NULL) {
			lease_table[i] = l->hnext;
			lease_free(l);
		}
	}
	lease_count = 0;
	while ((u = lease_users) != NULL) {
		lease_users = u->next;
		free(u);
	}
	for (i = 0; i < LEASE_BAD_HASH; i++) {
		while ((b = lease_bad_table[i]) != NULL) {
			lease_bad_table[i] = b->next;
			free(b);
		}
	}
}
