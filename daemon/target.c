/*
 * target.c: per-target state, keyed by "provider/model": the one place
 * that holds what the daemon knows about a target (its rate budget with
 * what it learned from the provider, its breaker, its admission queue) and
 * about a provider (requests in flight, for the concurrency cap). Everything
 * else reaches this state through admit.c, so a shared store (budgets
 * across hosts) can replace it behind the same calls.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define TARGET_HASH 256

static struct target *target_table[TARGET_HASH];
static struct target *target_list;
static struct target **target_tail = &target_list;
static unsigned target_count;
static struct provider_state *provider_states;

static unsigned
target_hash(const char *provider, const char *model)
{
	unsigned h = 5381;
	const char *p;

	for (p = provider; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	h = h * 33 + '/';
	for (p = model; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	return h % TARGET_HASH;
}

static struct provider_state *
target_provider(const char *name)
{
	struct provider_state *ps;

	for (ps = provider_states; ps != NULL; ps = ps->next) {
		if (strcmp(ps->name, name) == 0)
			return ps;
	}
	ps = xcalloc(1, sizeof *ps);
	ps->name = xstrdup(name);
	ps->next = provider_states;
	provider_states = ps;
	return ps;
}

/* Limits from the config: the model's, else the provider's. */
static void
target_setup(struct target *t, const struct provider_conf *pc, uint64_t now)
{
	struct model_conf mc;

	config_limits(pc, t->model, &mc);
	rl_setup(&t->rl, mc.rpm, mc.tpm, mc.burst, mc.tpm_burst, now);
}

struct target *
target_get(const struct provider_conf *pc, const char *model)
{
	unsigned h = target_hash(pc->name, model);
	size_t plen = strlen(pc->name);
	struct target *t;

	for (t = target_table[h]; t != NULL; t = t->hnext) {
		if (strncmp(t->name, pc->name, plen) == 0 &&
		    t->name[plen] == '/' && strcmp(t->model, model) == 0)
			return t;
	}
	/* Model names come from clients: bound what they can make us keep. */
	if (target_count >= TARGET_MAX)
		return NULL;
	target_count++;
	t = xcalloc(1, sizeof *t);
	xasprintf(&t->name, "%s/%s", pc->name, model);
	t->model = t->name + plen + 1;
	t->provider = target_provider(pc->name);
	breaker_init(&t->br);
	waitq_init(&t->queue, TARGET_QUEUE_MAX);
	target_setup(t, pc, now_ms());
	cluster_target_new(t);
	t->hnext = target_table[h];
	target_table[h] = t;
	t->pnext = t->provider->targets;
	t->provider->targets = t;
	*target_tail = t;
	target_tail = &t->next;
	return t;
}

struct target *
target_resolve(const struct config *conf, const char *name,
    const struct provider_conf **pc, char **cause)
{
	const char *slash = name != NULL ? strchr(name, '/') : NULL;
	struct target *t;
	char *prov;

	if (slash == NULL || slash == name || slash[1] == '\0') {
		xasprintf(cause, "target '%s' is not provider/model",
		    name != NULL ? name : "");
		return NULL;
	}
	if (strlen(slash + 1) > TARGET_MODEL_MAX) {
		xasprintf(cause, "target '%.40s...': model names have at most "
		    "%d bytes", name, TARGET_MODEL_MAX);
		return NULL;
	}
	prov = xstrndup(name, (size_t)(slash - name));
	if ((*pc = config_provider(conf, prov)) == NULL) {
		xasprintf(cause, "unknown provider '%s' in target '%s'", prov,
		    name);
		free(prov);
		return NULL;
	}
	free(prov);
	if ((t = target_get(*pc, slash + 1)) == NULL)
		xasprintf(cause, "too many distinct targets (limit %d)",
		    TARGET_MAX);
	return t;
}

struct target *
target_first(void)
{
	return target_list;
}

/*
 * A new config: targets whose provider remains take its limits, keeping
 * their levels, cooldowns, learned limits and breakers.
 */
void
target_reconfigure(const struct config *conf)
{
	const struct provider_conf *pc;
	uint64_t now = now_ms();
	struct target *t;

	for (t = target_list; t != NULL; t = t->next) {
		if ((pc = config_provider(conf, t->provider->name)) != NULL)
			target_setup(t, pc, now);
	}
}

void
target_free_all(void)
{
	struct provider_state *ps, *pnext;
	struct target *t, *next;

	for (t = target_list; t != NULL; t = next) {
		next = t->next;
		if (t->wake != NULL)
			event_free(t->wake);
		waitq_free(&t->queue);
		free(t->name);
		free(t);
	}
	for (ps = provider_states; ps != NULL; ps = pnext) {
		pnext = ps->next;
		free(ps->name);
		free(ps);
	}
	provider_states = NULL;
	memset(target_table, 0, sizeof target_table);
	target_list = NULL;
	target_tail = &target_list;
	target_count = 0;
}
