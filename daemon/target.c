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
static unsigned target_count; /* not configured: clients' and restored */
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
	domain_match(t->name, &t->dom);
}

/* The config names provider/model: as a model of its provider, in a
 * route or in a pool. Such a target always has room and is never evicted. */
static int
target_configured(const struct config *conf, const char *provider,
    const char *model)
{
	const struct provider_conf *pc;
	const struct route_conf *r;
	size_t i, j, plen = strlen(provider);
	const char *n;

	if (conf == NULL)
		return 0;
	if ((pc = config_provider(conf, provider)) != NULL &&
	    config_model(pc, model) != NULL)
		return 1;
	for (i = 0; i < conf->nroutes; i++) {
		r = &conf->routes[i];
		for (j = 0; j < r->ntargets; j++) {
			n = r->targets[j];
			if (strncmp(n, provider, plen) == 0 && n[plen] == '/' &&
			    strcmp(n + plen + 1, model) == 0)
				return 1;
		}
	}
	for (i = 0; i < conf->npools; i++) {
		for (j = 0; j < conf->pools[i].ntargets; j++) {
			n = conf->pools[i].targets[j];
			if (strncmp(n, provider, plen) == 0 && n[plen] == '/' &&
			    strcmp(n + plen + 1, model) == 0)
				return 1;
		}
	}
	return 0;
}

/*
 * Nothing worth keeping: a fresh target would be the same. Not
 * configured, not held by a call or lease, nothing in flight or queued,
 * no cooldown, learned limit or spent budget, the breaker closed and
 * without failures.
 */
static int
target_idle(const struct target *t, uint64_t now)
{
	struct rl_saved rs;

	/* Nor a cluster slice still asked for: its answer points here. */
	return !t->configured && t->holds == 0 && t->inflight == 0 &&
	    t->slice[0].asking == 0 && t->slice[1].asking == 0 &&
	    waitq_len(&t->queue) == 0 && t->br.state == BREAKER_CLOSED &&
	    t->br.consecutive == 0 && t->br.probes == 0 &&
	    !rl_save(&t->rl, now, &rs);
}

static void
target_unhash(struct target *t)
{
	struct target **pp;

	for (pp = &target_table[target_hash(t->provider->name, t->model)];
	     *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == t) {
			*pp = t->hnext;
			break;
		}
	}
	for (pp = &t->provider->targets; *pp != NULL; pp = &(*pp)->pnext) {
		if (*pp == t) {
			*pp = t->pnext;
			break;
		}
	}
}

static void
target_destroy(struct target *t)
{
	if (t->wake != NULL)
		event_free(t->wake);
	waitq_free(&t->queue);
	share_free(&t->shares);
	free(t->name);
	free(t);
}

/*
 * Free the idle targets clients made (only uid's, unless uid is
 * TARGET_UNOWNED); returns how many went. O(targets), and only run when
 * a limit is reached, so a client inventing names pays for the sweeps.
 */
static unsigned
target_sweep(uid_t uid)
{
	struct target **pp, *t;
	uint64_t now = now_ms();
	unsigned n = 0;

	target_tail = &target_list;
	for (pp = &target_list; (t = *pp) != NULL;) {
		if ((uid == TARGET_UNOWNED || t->owner == uid) &&
		    target_idle(t, now)) {
			*pp = t->next;
			target_unhash(t);
			target_destroy(t);
			target_count--;
			n++;
			continue;
		}
		pp = &t->next;
		target_tail = &t->next;
	}
	return n;
}

static unsigned
target_owned(uid_t uid)
{
	struct target *t;
	unsigned n = 0;

	for (t = target_list; t != NULL; t = t->next) {
		if (!t->configured && t->owner == uid)
			n++;
	}
	return n;
}

/*
 * Room for one more target clients made: idle ones are evicted when the
 * table, or uid's share of it, is full. 0, or -1 with *cause.
 */
static int
target_room(uid_t uid, char **cause)
{
	if (uid != TARGET_UNOWNED && target_owned(uid) >= TARGET_PER_UID &&
	    (target_sweep(uid) == 0 || target_owned(uid) >= TARGET_PER_UID)) {
		xasprintf(cause,
		    "uid %ld has %d targets with state (calls, "
		    "leases, cooldowns) already, the most one user may "
		    "create",
		    (long)uid, TARGET_PER_UID);
		return -1;
	}
	if (target_count >= TARGET_MAX && target_sweep(TARGET_UNOWNED) == 0) {
		xasprintf(cause,
		    "too many distinct targets with state "
		    "(limit %d)",
		    TARGET_MAX);
		return -1;
	}
	return 0;
}

static struct target *
target_find(const struct provider_conf *pc, const char *model)
{
	size_t plen = strlen(pc->name);
	struct target *t;

	for (t = target_table[target_hash(pc->name, model)]; t != NULL;
	     t = t->hnext) {
		if (strncmp(t->name, pc->name, plen) == 0 &&
		    t->name[plen] == '/' && strcmp(t->model, model) == 0)
			return t;
	}
	return NULL;
}

/* The target "provider/model" names if it exists; never makes one. */
struct target *
target_lookup(const char *name)
{
	const char *slash = name != NULL ? strchr(name, '/') : NULL;
	struct target *t;
	char *prov;
	size_t plen;

	if (slash == NULL)
		return NULL;
	plen = (size_t)(slash - name);
	prov = xstrndup(name, plen);
	for (t = target_table[target_hash(prov, slash + 1)]; t != NULL;
	     t = t->hnext) {
		if (strcmp(t->name, name) == 0)
			break;
	}
	free(prov);
	return t;
}

struct target *
target_get(const struct provider_conf *pc, const char *model)
{
	return target_create(pc, model, TARGET_UNOWNED, NULL);
}

struct target *
target_create(const struct provider_conf *pc, const char *model, uid_t uid,
    char **cause)
{
	unsigned h = target_hash(pc->name, model);
	size_t plen = strlen(pc->name);
	struct target *t;
	char *why = NULL;
	int conf;

	if ((t = target_find(pc, model)) != NULL)
		return t;
	/* Model names come from clients: bound what they can make us keep. */
	conf = target_configured(cfg, pc->name, model);
	if (!conf && target_room(uid, &why) != 0) {
		if (cause != NULL)
			*cause = why;
		else
			free(why);
		return NULL;
	}
	if (!conf)
		target_count++;
	t = xcalloc(1, sizeof *t);
	xasprintf(&t->name, "%s/%s", pc->name, model);
	t->model = t->name + plen + 1;
	t->owner = uid;
	t->configured = conf;
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

/*
 * A model name as a client gives it, checked once at the door: it goes
 * into logs, metrics, status, the state file and upstream requests, so it
 * is UTF-8 without control characters (C0, DEL, C1), has no "." or ".."
 * segment (curl folds those out of a URL path), and no '/' where the
 * provider puts the name in the URL path (Azure's deployment; Gemini's
 * model, after an optional "models/"). 0, or -1 with *cause.
 */
int
target_model_check(const struct provider_conf *pc, const char *model,
    char **cause)
{
	const unsigned char *p;
	const char *seg, *end, *name = model;
	json_t *utf8;
	size_t len = strlen(model), slen;

	if (len > TARGET_MODEL_MAX) {
		xasprintf(cause, "model names have at most %d bytes",
		    TARGET_MODEL_MAX);
		return -1;
	}
	/* jansson checks UTF-8 as JSON needs it: the state file, status. */
	if ((utf8 = json_stringn(model, len)) == NULL) {
		xasprintf(cause, "model name is not valid UTF-8");
		return -1;
	}
	json_decref(utf8);
	for (p = (const unsigned char *)model; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f ||
		    (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) {
			xasprintf(cause,
			    "model name has a control character "
			    "(byte %zu)",
			    (size_t)(p - (const unsigned char *)model));
			return -1;
		}
	}
	for (seg = model;; seg = end + 1) {
		end = strchr(seg, '/');
		slen = end != NULL ? (size_t)(end - seg) : strlen(seg);
		if ((slen == 1 && seg[0] == '.') ||
		    (slen == 2 && seg[0] == '.' && seg[1] == '.')) {
			xasprintf(cause,
			    "model name has a '.' or '..' path "
			    "segment");
			return -1;
		}
		if (end == NULL)
			break;
	}
	if (strcmp(pc->type->name, "gemini") == 0 &&
	    strncmp(name, "models/", 7) == 0)
		name += 7;
	if ((strcmp(pc->type->name, "azure") == 0 ||
	        strcmp(pc->type->name, "gemini") == 0) &&
	    (*name == '\0' || strchr(name, '/') != NULL)) {
		xasprintf(cause,
		    "a %s model name goes into the URL path: "
		    "it cannot be empty or have a '/'",
		    pc->type->name);
		return -1;
	}
	return 0;
}

void
target_hold(struct target *t)
{
	t->holds++;
}

void
target_release(struct target *t)
{
	if (t != NULL && t->holds != 0)
		t->holds--;
}

struct target *
target_resolve(const struct config *conf, const char *name, uid_t uid,
    const struct provider_conf **pc, char **cause)
{
	const char *slash = name != NULL ? strchr(name, '/') : NULL;
	struct target *t;
	char *prov, *q, *why;

	if (slash == NULL || slash == name || slash[1] == '\0') {
		q = log_quote(name != NULL ? name : "", 2 * TARGET_MODEL_MAX);
		xasprintf(cause, "target '%s' is not provider/model", q);
		free(q);
		return NULL;
	}
	prov = xstrndup(name, (size_t)(slash - name));
	if ((*pc = config_provider(conf, prov)) == NULL) {
		why = log_quote(prov, TARGET_MODEL_MAX);
		q = log_quote(name, 2 * TARGET_MODEL_MAX);
		xasprintf(cause, "unknown provider '%s' in target '%s'", why,
		    q);
		free(why);
		free(q);
		free(prov);
		return NULL;
	}
	free(prov);
	if (target_model_check(*pc, slash + 1, &why) != 0) {
		q = log_quote(slash + 1, TARGET_MODEL_MAX);
		xasprintf(cause, "model '%s': %s", q, why);
		free(q);
		free(why);
		return NULL;
	}
	if (conf->strict_models &&
	    !target_configured(conf, (*pc)->name, slash + 1)) {
		xasprintf(cause,
		    "model '%s' of provider '%s' is not in the "
		    "configuration (strict_models is on)",
		    slash + 1, (*pc)->name);
		return NULL;
	}
	if ((t = target_create(*pc, slash + 1, uid, cause)) != NULL)
		target_hold(t);
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

	domain_reconfigure(conf, now);
	target_count = 0;
	for (t = target_list; t != NULL; t = t->next) {
		if ((pc = config_provider(conf, t->provider->name)) != NULL)
			target_setup(t, pc, now);
		else
			domain_match(t->name, &t->dom);
		t->configured =
		    target_configured(conf, t->provider->name, t->model);
		if (!t->configured)
			target_count++;
	}
}

void
target_free_all(void)
{
	struct provider_state *ps, *pnext;
	struct target *t, *next;

	for (t = target_list; t != NULL; t = next) {
		next = t->next;
		target_destroy(t);
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
