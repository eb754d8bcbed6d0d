/*
 * waitq.c: a target's admission wait queue. Calls that the budget cannot
 * admit yet park here and leave in order of priority (high, normal, low),
 * then by turns between clients, then by arrival: one client that queued
 * a thousand calls must not hold back another's single call, so each
 * priority level serves its clients round-robin and FIFO within each.
 *
 * Nodes are the callers' own, embedded in whatever they queue, so a push
 * never allocates. Within a level, a client's entries form a circular
 * list, oldest first; only its oldest, the head, sits in the level's turn
 * order and in a hash keyed by (client, level) that push uses to find the
 * client's list. Popping a head passes its role to the client's next
 * entry, which joins the back of the turn order; cancelling a head hands
 * the role over in place, so a cancel does not cost the client its turn.
 * Every operation is O(1) (push: expected, through the hash).
 *
 * Above the clients, client classes (clients.c) share each level by
 * weight, with start-time fair queueing: each class queued at a level has
 * a start tag; the class with the lowest one is served, and its tag then
 * moves on by WAITQ_VSCALE / weight, so a class of weight 3 is served
 * three times as often as one of weight 1 while both wait. A class that
 * comes back after being idle starts at the level's virtual time (the
 * tag last served), not earlier: idle time is no credit. Choosing the
 * class costs a scan of the classes queued at the target (a few); without
 * a clients block every node is in one class and the order is as before.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

enum { WAITQ_IDLE = 0, WAITQ_QUEUED, WAITQ_HEAD };

/* high, normal, low: the order levels are served in. */
static unsigned
waitq_level(enum llmgate_priority prio)
{
	switch (prio) {
	case LLMGATE_PRIO_HIGH:
		return 0;
	case LLMGATE_PRIO_LOW:
		return 2;
	case LLMGATE_PRIO_NORMAL:
	default:
		return 1;
	}
}

static unsigned
waitq_hash(const struct waitq *wq, uint64_t client, uint64_t ckey,
    unsigned level)
{
	uint64_t h = (client ^ ((uint64_t)level << 61) ^
	                 (ckey * 0xff51afd7ed558ccdULL)) *
	    0x9e3779b97f4a7c15ULL;

	return (unsigned)(h >> 32) & wq->hmask;
}

/* capacity: entries it may hold; 0: unbounded. */
void
waitq_init(struct waitq *wq, unsigned capacity)
{
	unsigned n = 16, want = capacity != 0 ? capacity : 256;

	memset(wq, 0, sizeof *wq);
	/* About one bucket per entry, bounded: chains stay short. */
	if (want > 65536)
		want = 65536;
	while (n < want)
		n <<= 1;
	wq->hash = xcalloc(n, sizeof *wq->hash);
	wq->hmask = n - 1;
	wq->capacity = capacity;
}

/* Queued nodes are the caller's and are left alone. */
void
waitq_free(struct waitq *wq)
{
	free(wq->hash);
	free(wq->cls);
	memset(wq, 0, sizeof *wq);
}

unsigned
waitq_len(const struct waitq *wq)
{
	unsigned l, n = 0;

	for (l = 0; l < WAITQ_LEVELS; l++)
		n += wq->llen[l];
	return n;
}

static struct waitq_node *
waitq_find_head(const struct waitq *wq, uint64_t client, uint64_t ckey,
    unsigned level)
{
	struct waitq_node *n;

	n = wq->hash[waitq_hash(wq, client, ckey, level)];
	for (; n != NULL; n = n->hnext) {
		if (n->client == client && n->level == level && n->ckey == ckey)
			return n;
	}
	return NULL;
}

static int
waitq_class_idle(const struct waitq_class *k)
{
	unsigned l;

	for (l = 0; l < WAITQ_LEVELS; l++) {
		if (k->len[l] != 0)
			return 0;
	}
	return 1;
}

/*
 * The slot of class key, made on its first use here. Slots stay (their
 * tags are the class's history) up to WAITQ_MAX_CLASSES; past that an
 * idle one is taken over, so keys a reload retired do not pile up.
 */
static unsigned
waitq_class(struct waitq *wq, uint64_t key, uint32_t weight)
{
	struct waitq_class *k;
	unsigned i, idle = wq->ncls;

	for (i = 0; i < wq->ncls; i++) {
		if (wq->cls[i].key == key)
			break;
		if (idle == wq->ncls && waitq_class_idle(&wq->cls[i]))
			idle = i;
	}
	if (i == wq->ncls) {
		if (wq->ncls >= WAITQ_MAX_CLASSES && idle < wq->ncls)
			i = idle;
		else {
			wq->cls = xreallocarray(wq->cls, wq->ncls + 1,
			    sizeof *wq->cls);
			i = wq->ncls++;
		}
		k = &wq->cls[i];
		memset(k, 0, sizeof *k);
		k->key = key;
		/* Idle: its tags start at the levels' virtual time. */
		memcpy(k->finish, wq->vtime, sizeof k->finish);
	}
	/* The newest push says what the class weighs (a reload changes it). */
	wq->cls[i].weight = weight != 0 ? weight : 1;
	return i;
}

static void
waitq_hash_insert(struct waitq *wq, struct waitq_node *n)
{
	struct waitq_node **bucket;

	bucket = &wq->hash[waitq_hash(wq, n->client, n->ckey, n->level)];
	n->hnext = *bucket;
	if (n->hnext != NULL)
		n->hnext->hprevp = &n->hnext;
	n->hprevp = bucket;
	*bucket = n;
}

static void
waitq_hash_remove(struct waitq_node *n)
{
	if (n->hnext != NULL)
		n->hnext->hprevp = n->hprevp;
	*n->hprevp = n->hnext;
	n->hnext = NULL;
	n->hprevp = NULL;
}

/* Append a head to its class's turn order at its level. */
static void
waitq_turn_append(struct waitq *wq, struct waitq_node *n)
{
	struct waitq_class *k = &wq->cls[n->ci];
	unsigned l = n->level;

	n->rnext = NULL;
	n->rprev = k->last[l];
	if (k->last[l] != NULL)
		k->last[l]->rnext = n;
	else
		k->first[l] = n;
	k->last[l] = n;
}

static void
waitq_turn_remove(struct waitq *wq, struct waitq_node *n)
{
	struct waitq_class *k = &wq->cls[n->ci];
	unsigned l = n->level;

	if (n->rprev != NULL)
		n->rprev->rnext = n->rnext;
	else
		k->first[l] = n->rnext;
	if (n->rnext != NULL)
		n->rnext->rprev = n->rprev;
	else
		k->last[l] = n->rprev;
	n->rnext = n->rprev = NULL;
}

/* Put next where head was in the turn order. */
static void
waitq_turn_replace(struct waitq *wq, struct waitq_node *head,
    struct waitq_node *next)
{
	struct waitq_class *k = &wq->cls[head->ci];
	unsigned l = head->level;

	next->rprev = head->rprev;
	next->rnext = head->rnext;
	if (next->rprev != NULL)
		next->rprev->rnext = next;
	else
		k->first[l] = next;
	if (next->rnext != NULL)
		next->rnext->rprev = next;
	else
		k->last[l] = next;
	head->rnext = head->rprev = NULL;
}

/*
 * Queue n for client at prio, in the class n->ckey names with weight
 * n->weight (both 0: the one default class). -1 when the queue is full
 * (or n is queued already); the caller then refuses the call instead of
 * parking it.
 */
int
waitq_push(struct waitq *wq, struct waitq_node *n, uint64_t client,
    enum llmgate_priority prio)
{
	struct waitq_node *head;
	struct waitq_class *k;

	if (n->state != WAITQ_IDLE)
		return -1;
	if (wq->capacity != 0 && waitq_len(wq) >= wq->capacity)
		return -1;
	n->client = client;
	n->level = waitq_level(prio);
	n->rnext = n->rprev = n->hnext = NULL;
	n->hprevp = NULL;
	n->ci = waitq_class(wq, n->ckey, n->weight);
	k = &wq->cls[n->ci];
	/* Backlogged again: no earlier than the level's virtual time. */
	if (k->len[n->level] == 0)
		k->start[n->level] = k->finish[n->level] > wq->vtime[n->level] ?
		    k->finish[n->level] :
		    wq->vtime[n->level];
	k->len[n->level]++;

	if ((head = waitq_find_head(wq, client, n->ckey, n->level)) != NULL) {
		/* The newest goes last: just before the head in the circle. */
		n->cnext = head;
		n->cprev = head->cprev;
		head->cprev->cnext = n;
		head->cprev = n;
		n->state = WAITQ_QUEUED;
		head->count++;
	} else {
		n->cnext = n->cprev = n;
		n->state = WAITQ_HEAD;
		n->count = 1;
		waitq_hash_insert(wq, n);
		waitq_turn_append(wq, n);
		wq->heads[n->level]++;
	}
	wq->llen[n->level]++;
	return 0;
}

/*
 * The node to serve next: the highest level's class with the lowest start
 * tag (ties: the older slot), its turn's client, that client's oldest.
 * skip (may be NULL) passes over a class whose head it returns 1 for
 * (a class held to its share of the target). NULL: none may go.
 */
struct waitq_node *
waitq_peek_if(struct waitq *wq, int (*skip)(struct waitq_node *, void *),
    void *arg)
{
	struct waitq_class *k, *best;
	unsigned l, i;

	for (l = 0; l < WAITQ_LEVELS; l++) {
		if (wq->llen[l] == 0)
			continue;
		best = NULL;
		for (i = 0; i < wq->ncls; i++) {
			k = &wq->cls[i];
			if (k->first[l] == NULL ||
			    (best != NULL && k->start[l] >= best->start[l]))
				continue;
			if (skip != NULL && skip(k->first[l], arg))
				continue;
			best = k;
		}
		if (best != NULL)
			return best->first[l];
	}
	return NULL;
}

/* What waitq_pop() would return; NULL when empty. */
struct waitq_node *
waitq_peek(struct waitq *wq)
{
	return waitq_peek_if(wq, NULL, NULL);
}

/*
 * Take n out. rotate: its client's next entry goes to the back of the
 * turn order (n was served); otherwise it keeps n's place (n was
 * cancelled).
 */
static void
waitq_unlink(struct waitq *wq, struct waitq_node *n, int rotate)
{
	struct waitq_node *next = n->cnext, *head;
	struct waitq_class *k = &wq->cls[n->ci];
	unsigned l = n->level;

	/* Served: the level's virtual time and the class's tags move on. */
	if (rotate) {
		wq->vtime[l] = k->start[l];
		k->finish[l] = k->start[l] + WAITQ_VSCALE / k->weight;
		k->start[l] = k->finish[l];
	}
	k->len[l]--;
	if (n->state == WAITQ_HEAD) {
		waitq_hash_remove(n);
		if (next == n) {
			waitq_turn_remove(wq, n);
			wq->heads[n->level]--;
		} else {
			next->state = WAITQ_HEAD;
			next->count = n->count - 1;
			waitq_hash_insert(wq, next);
			if (rotate) {
				waitq_turn_remove(wq, n);
				waitq_turn_append(wq, next);
			} else
				waitq_turn_replace(wq, n, next);
		}
	} else if ((head = waitq_find_head(wq, n->client, n->ckey, n->level)) !=
	    NULL)
		head->count--;
	n->cprev->cnext = n->cnext;
	n->cnext->cprev = n->cprev;
	n->cnext = n->cprev = NULL;
	n->state = WAITQ_IDLE;
	wq->llen[n->level]--;
}

/*
 * About how many entries a new one of client's at prio would wait behind:
 * all at higher levels; at its own, the client's own queued ones and, for
 * each of those and the new one, a turn of every other client there. An
 * upper bound at most as large as the level, O(1).
 */
unsigned
waitq_ahead(const struct waitq *wq, uint64_t client, uint64_t ckey,
    enum llmgate_priority prio)
{
	const struct waitq_node *head;
	unsigned l = waitq_level(prio), i, n = 0, own = 0, others;
	uint64_t turns;

	for (i = 0; i < l; i++)
		n += wq->llen[i];
	if ((head = waitq_find_head(wq, client, ckey, l)) != NULL)
		own = head->count;
	others = wq->heads[l] - (head != NULL);
	turns = (uint64_t)others * (own + 1) + own;
	return n + (turns < wq->llen[l] ? (unsigned)turns : wq->llen[l]);
}

struct waitq_node *
waitq_pop(struct waitq *wq)
{
	struct waitq_node *n;

	if ((n = waitq_peek(wq)) != NULL)
		waitq_unlink(wq, n, 1);
	return n;
}

/* Serve n, which waitq_peek_if() returned. */
void
waitq_take(struct waitq *wq, struct waitq_node *n)
{
	if (n->state != WAITQ_IDLE)
		waitq_unlink(wq, n, 1);
}

/* Cancel: take n out wherever it is; a node not queued is left alone. */
void
waitq_remove(struct waitq *wq, struct waitq_node *n)
{
	if (n->state != WAITQ_IDLE)
		waitq_unlink(wq, n, 0);
}
