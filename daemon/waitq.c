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
waitq_hash(const struct waitq *wq, uint64_t client, unsigned level)
{
	uint64_t h = (client ^ ((uint64_t)level << 61)) * 0x9e3779b97f4a7c15ULL;

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
waitq_find_head(const struct waitq *wq, uint64_t client, unsigned level)
{
	struct waitq_node *n;

	n = wq->hash[waitq_hash(wq, client, level)];
	for (; n != NULL; n = n->hnext) {
		if (n->client == client && n->level == level)
			return n;
	}
	return NULL;
}

static void
waitq_hash_insert(struct waitq *wq, struct waitq_node *n)
{
	struct waitq_node **bucket;

	bucket = &wq->hash[waitq_hash(wq, n->client, n->level)];
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

/* Append a head to its level's turn order. */
static void
waitq_turn_append(struct waitq *wq, struct waitq_node *n)
{
	unsigned l = n->level;

	n->rnext = NULL;
	n->rprev = wq->last[l];
	if (wq->last[l] != NULL)
		wq->last[l]->rnext = n;
	else
		wq->first[l] = n;
	wq->last[l] = n;
}

static void
waitq_turn_remove(struct waitq *wq, struct waitq_node *n)
{
	unsigned l = n->level;

	if (n->rprev != NULL)
		n->rprev->rnext = n->rnext;
	else
		wq->first[l] = n->rnext;
	if (n->rnext != NULL)
		n->rnext->rprev = n->rprev;
	else
		wq->last[l] = n->rprev;
	n->rnext = n->rprev = NULL;
}

/* Put next where head was in the turn order. */
static void
waitq_turn_replace(struct waitq *wq, struct waitq_node *head,
    struct waitq_node *next)
{
	unsigned l = head->level;

	next->rprev = head->rprev;
	next->rnext = head->rnext;
	if (next->rprev != NULL)
		next->rprev->rnext = next;
	else
		wq->first[l] = next;
	if (next->rnext != NULL)
		next->rnext->rprev = next;
	else
		wq->last[l] = next;
	head->rnext = head->rprev = NULL;
}

/*
 * Queue n for client at prio. -1 when the queue is full (or n is queued
 * already); the caller then refuses the call instead of parking it.
 */
int
waitq_push(struct waitq *wq, struct waitq_node *n, uint64_t client,
    enum llmgate_priority prio)
{
	struct waitq_node *head;

	if (n->state != WAITQ_IDLE)
		return -1;
	if (wq->capacity != 0 && waitq_len(wq) >= wq->capacity)
		return -1;
	n->client = client;
	n->level = waitq_level(prio);
	n->rnext = n->rprev = n->hnext = NULL;
	n->hprevp = NULL;

	if ((head = waitq_find_head(wq, client, n->level)) != NULL) {
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

/* What waitq_pop() would return; NULL when empty. */
struct waitq_node *
waitq_peek(struct waitq *wq)
{
	unsigned l;

	for (l = 0; l < WAITQ_LEVELS; l++) {
		if (wq->first[l] != NULL)
			return wq->first[l];
	}
	return NULL;
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
	} else if ((head = waitq_find_head(wq, n->client, n->level)) != NULL)
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
waitq_ahead(const struct waitq *wq, uint64_t client,
    enum llmgate_priority prio)
{
	const struct waitq_node *head;
	unsigned l = waitq_level(prio), i, n = 0, own = 0, others;
	uint64_t turns;

	for (i = 0; i < l; i++)
		n += wq->llen[i];
	if ((head = waitq_find_head(wq, client, l)) != NULL)
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

/* Cancel: take n out wherever it is; a node not queued is left alone. */
void
waitq_remove(struct waitq *wq, struct waitq_node *n)
{
	if (n->state != WAITQ_IDLE)
		waitq_unlink(wq, n, 0);
}
