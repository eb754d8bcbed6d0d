/*
 * share.c: a client class's max_share of a target, pure. A class with a
 * max_share below 1 gets, at each target it uses, a rate budget
 * (ratelimit.c's buckets) sized to that fraction of the target's own request and
 * token budgets, limits and bursts alike, configured or learned: so over
 * the bucket's window (a minute, and its burst) the class never takes
 * more than its fraction, contended or not. A target without a limit
 * has nothing to share and holds nobody.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/* The fraction of n, at least 1 when n is not 0. */
static uint64_t
share_of(uint64_t n, double frac)
{
	uint64_t v = (uint64_t)((double)n * frac);

	return n != 0 && v == 0 ? 1 : v;
}

static uint32_t
share_of32(uint64_t n, double frac)
{
	uint64_t v = share_of(n, frac);

	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* k's slot at this target, its buckets sized to the target's limits
 * now; NULL when k has no max_share. */
static struct share_slot *
share_slot(struct share_tab *tab, const struct ratelimit *rl,
    const struct client_class *k, uint64_t now)
{
	struct share_slot *s;
	unsigned i;

	if (k == NULL || k->max_share >= 1)
		return NULL;
	for (i = 0; i < tab->n; i++) {
		if (tab->slot[i].key == k->key)
			break;
	}
	if (i == tab->n) {
		tab->slot =
		    xreallocarray(tab->slot, tab->n + 1, sizeof *tab->slot);
		s = &tab->slot[tab->n++];
		memset(s, 0, sizeof *s);
		s->key = k->key;
	}
	s = &tab->slot[i];
	rl_setup(&s->rl, share_of32(rl->req.limit, k->max_share),
	    share_of32(rl->tok.limit, k->max_share),
	    share_of32(rl->req.capacity, k->max_share),
	    share_of32(rl->tok.capacity, k->max_share), now);
	return s;
}

uint64_t
share_wait_ms(struct share_tab *tab, const struct ratelimit *rl,
    const struct client_class *k, uint32_t tokens, uint64_t now)
{
	struct share_slot *s;

	if ((s = share_slot(tab, rl, k, now)) == NULL)
		return 0;
	return rl_wait_ms(&s->rl, tokens, now);
}

void
share_take(struct share_tab *tab, const struct ratelimit *rl,
    const struct client_class *k, uint32_t tokens, uint64_t now)
{
	struct share_slot *s;

	if ((s = share_slot(tab, rl, k, now)) == NULL)
		return;
	rl_take(&s->rl, tokens, now);
}

/* Usage reported: the class's token bucket gets back (or pays) the
 * difference from the estimate, as the target's does. */
void
share_reconcile(struct share_tab *tab, const struct client_class *k,
    uint32_t estimated, uint64_t actual, uint64_t now)
{
	unsigned i;

	if (k == NULL || k->max_share >= 1)
		return;
	for (i = 0; i < tab->n; i++) {
		if (tab->slot[i].key == k->key) {
			rl_reconcile(&tab->slot[i].rl, estimated, actual, now);
			return;
		}
	}
}

void
share_free(struct share_tab *tab)
{
	free(tab->slot);
	memset(tab, 0, sizeof *tab);
}
