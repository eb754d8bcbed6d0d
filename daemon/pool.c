/*
 * pool.c: deployment pools, pure. A pool is one logical model served by
 * several targets (keys, regions, servers); before each attempt at a
 * pool's step, the call asks which member takes it. The answer comes from
 * what the daemon knows of each member now (its rate budget, cooldown,
 * breaker, calls in flight and queued), seen through struct pool_member,
 * and from the pool's own state (weighted turns, which member went last).
 * No clock, no libevent, no globals: `now` is passed in.
 */
#include <stdint.h>
#include <string.h>

#include "llmgated.h"

static const char *pool_strategy_names[POOL_STRATEGY_MAX] = {
	[POOL_HEADROOM] = "headroom",
	[POOL_LEAST_INFLIGHT] = "least-inflight",
	[POOL_WEIGHTED] = "weighted",
};

const char *
pool_strategy_name(enum pool_strategy s)
{
	if ((unsigned)s >= POOL_STRATEGY_MAX)
		return NULL;
	return pool_strategy_names[s];
}

int
pool_strategy_index(const char *name)
{
	int i;

	for (i = 0; i < POOL_STRATEGY_MAX; i++) {
		if (strcmp(name, pool_strategy_names[i]) == 0)
			return i;
	}
	return -1;
}

void
pool_init(struct pool *p, enum pool_strategy strategy, const uint32_t *weights,
    size_t n)
{
	size_t i;

	memset(p, 0, sizeof *p);
	p->strategy = strategy;
	p->n = n < POOL_MAX_MEMBERS ? n : POOL_MAX_MEMBERS;
	for (i = 0; i < p->n; i++)
		p->weight[i] =
		    weights != NULL && weights[i] != 0 ? weights[i] : 1;
}

/* Whole units there of a bucket, as a fraction of what it holds full. */
static double
pool_fill(const struct bucket *b, uint64_t now)
{
	int64_t avail;

	if (b->limit == 0 || b->capacity == 0)
		return 1.0;
	avail = bucket_available(b, now);
	if (avail <= 0)
		return 0.0;
	if ((uint64_t)avail >= b->capacity)
		return 1.0;
	return (double)avail / (double)b->capacity;
}

/*
 * What the chooser needs of target t for an attempt of tokens: ready (it
 * could go now without waiting: breaker not open, budget there, nobody
 * queued, a concurrency slot free), else the ms until it could; its
 * headroom, the smallest fill of its buckets (1: unlimited). Its quota
 * domains' buckets count as its own.
 * concurrency is its provider's cap (0: none).
 */
void
pool_member_view(struct pool_member *m, const struct target *t,
    uint32_t concurrency, uint32_t tokens, uint64_t now)
{
	uint64_t open, wait;
	double req, tok;
	unsigned i;

	memset(m, 0, sizeof *m);
	m->inflight = t->inflight;
	m->queued = waitq_len(&t->queue);
	req = pool_fill(&t->rl.req, now);
	tok = pool_fill(&t->rl.tok, now);
	m->headroom = req < tok ? req : tok;
	for (i = 0; i < t->dom.n; i++) {
		req = pool_fill(&t->dom.d[i]->rl.req, now);
		tok = pool_fill(&t->dom.d[i]->rl.tok, now);
		if (req < m->headroom)
			m->headroom = req;
		if (tok < m->headroom)
			m->headroom = tok;
	}
	wait = admission_wait_ms(t, tokens, now);
	if (breaker_state(&t->br, now) == BREAKER_OPEN) {
		open = breaker_open_remaining(&t->br, now);
		if (open > wait)
			wait = open;
		if (wait == 0)
			wait = 1;
	}
	m->wait_ms = wait;
	m->ready = wait == 0 && m->queued == 0 &&
	    (concurrency == 0 || t->provider->inflight < concurrency);
	m->usable = 1;
}

/* a goes before b for the strategy; members both eligible. */
static int
pool_better(const struct pool *p, const struct pool_member *v, size_t a,
    size_t b)
{
	if (p->strategy == POOL_HEADROOM && v[a].headroom != v[b].headroom)
		return v[a].headroom > v[b].headroom;
	if (v[a].inflight != v[b].inflight)
		return v[a].inflight < v[b].inflight;
	/* The one that went longest ago, so equals take turns. */
	if (p->last[a] != p->last[b])
		return p->last[a] < p->last[b];
	return a < b;
}

static int
pool_eligible(const struct pool_member *v, size_t i, uint64_t avoid)
{
	return v[i].usable && v[i].ready && (avoid & POOL_BIT(i)) == 0;
}

/* How many members may take an attempt now, those in avoid left out. */
size_t
pool_ready(const struct pool *p, const struct pool_member *v, uint64_t avoid)
{
	size_t i, n = 0;

	for (i = 0; i < p->n; i++)
		n += pool_eligible(v, i, avoid);
	return n;
}

/*
 * The member that takes the next attempt, among those ready now and not
 * in avoid, by the pool's strategy; -1 when none is. The choice counts as
 * a turn taken (weighted turns, recency).
 */
int
pool_choose(struct pool *p, const struct pool_member *v, uint64_t avoid)
{
	int64_t total = 0;
	size_t i;
	int best = -1;

	for (i = 0; i < p->n; i++) {
		if (!pool_eligible(v, i, avoid))
			continue;
		if (p->strategy == POOL_WEIGHTED) {
			/* Smooth weighted round robin (as nginx's upstreams). */
			p->current[i] += p->weight[i];
			total += p->weight[i];
			if (best < 0 || p->current[i] > p->current[best])
				best = (int)i;
		} else if (best < 0 || pool_better(p, v, i, (size_t)best))
			best = (int)i;
	}
	if (best < 0)
		return -1;
	if (p->strategy == POOL_WEIGHTED)
		p->current[best] -= total;
	p->last[best] = ++p->seq;
	p->picks[best]++;
	return best;
}

/*
 * When no member is ready: the one that frees first (the shortest wait,
 * then the shortest queue, then fewest in flight), among the usable ones
 * not in exclude; -1 when there is none. Not a turn taken.
 */
int
pool_soonest(const struct pool *p, const struct pool_member *v,
    uint64_t exclude)
{
	size_t i;
	int best = -1;
	const struct pool_member *b;

	for (i = 0; i < p->n; i++) {
		if (!v[i].usable || (exclude & POOL_BIT(i)) != 0)
			continue;
		if (best < 0) {
			best = (int)i;
			continue;
		}
		b = &v[best];
		if (v[i].wait_ms != b->wait_ms   ? v[i].wait_ms < b->wait_ms :
		        v[i].queued != b->queued ? v[i].queued < b->queued :
		                                   v[i].inflight < b->inflight)
			best = (int)i;
	}
	return best;
}

/*
 * The member for the next request: the strategy's choice among those
 * ready now and in neither avoid nor refused, else the usable one not in
 * refused that frees first, to wait for; -1 when there is none. A call's
 * attempts and leases choose alike.
 */
int
pool_pick(struct pool *p, const struct pool_member *v, uint64_t avoid,
    uint64_t refused)
{
	int i;

	if ((i = pool_choose(p, v, avoid | refused)) < 0)
		i = pool_soonest(p, v, refused);
	return i;
}
