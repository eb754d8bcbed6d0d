/*
 * config-pools.c: the pools block. A pool names one logical model served
 * by several targets; its name is usable wherever a target is (a call's
 * chain, a route's step, the HTTP front's model). Read after the
 * providers (members name them) and before the routes (steps name pools).
 *
 *	pools = ( { name = "gpt-4o";
 *	    targets = [ "openai-a/gpt-4o", "openai-b/gpt-4o", "azure-eu/gpt4o" ];
 *	    strategy = "weighted"; weights = [ 2, 1, 1 ];
 *	    max_moves = 3; move_on = [ "rate_limited", "overloaded" ]; } );
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "llmgated.h"

/* The classes that move an attempt to another member by default. */
#define POOL_MOVE_DEFAULT \
	((1u << LLMGATE_RATE_LIMITED) | (1u << LLMGATE_OVERLOADED) | \
	    (1u << LLMGATE_QUOTA_EXHAUSTED))

/* A pool while it is read. */
struct config_poolr {
	struct pool_conf pc;
	char *strategy;
	size_t nweights;
};

static void config_pool_targets(struct config_ctx *, const config_setting_t *,
    void *);
static void config_pool_weights(struct config_ctx *, const config_setting_t *,
    void *);
static void config_pool_move_on(struct config_ctx *, const config_setting_t *,
    void *);
static int config_pool_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

#define PO(f) offsetof(struct config_poolr, f)
enum { PO_NAME, PO_TARGETS, PO_STRATEGY, PO_WEIGHTS, PO_MAX_MOVES, PO_MOVE_ON };
static const struct config_key config_pool_key[] = {
	[PO_NAME] = { .name = "name", .kind = CK_STRING, .off = PO(pc.name) },
	[PO_TARGETS] = { .name = "targets",
	    .kind = CK_FUNC,
	    .fn = config_pool_targets },
	[PO_STRATEGY] = { .name = "strategy",
	    .kind = CK_STRING,
	    .off = PO(strategy) },
	[PO_WEIGHTS] = { .name = "weights",
	    .kind = CK_FUNC,
	    .fn = config_pool_weights },
	[PO_MAX_MOVES] = { .name = "max_moves",
	    .kind = CK_U32,
	    .off = PO(pc.max_moves),
	    .max = CALL_MAX_ATTEMPTS },
	[PO_MOVE_ON] = { .name = "move_on",
	    .kind = CK_FUNC,
	    .fn = config_pool_move_on },
};
static const struct config_keys config_pool_keys = { config_pool_key,
	CONFIG_NITEMS(config_pool_key), config_pool_check };

/* targets = [ "provider/model", ... ]: known providers, each once. */
static void
config_pool_targets(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct pool_conf *pc = &((struct config_poolr *)obj)->pc;
	const config_setting_t *e;
	const char *v, *slash;
	char *prov;
	int i, n;
	size_t j;

	if (config_strings(ctx, s, "targets") != 0)
		return;
	if ((n = config_setting_length(s)) > POOL_MAX_MEMBERS) {
		config_error(ctx, s, "a pool has at most %d targets (%d given)",
		    POOL_MAX_MEMBERS, n);
		return;
	}
	pc->targets = xcalloc((size_t)n + 1, sizeof *pc->targets);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		v = config_setting_get_string(e);
		slash = strchr(v, '/');
		if (slash == NULL || slash == v || slash[1] == '\0') {
			config_error(ctx, e,
			    "pool target '%s' must be "
			    "provider/model (a pool holds no pools)",
			    v);
			continue;
		}
		prov = xstrndup(v, (size_t)(slash - v));
		if (config_provider(ctx->conf, prov) == NULL) {
			config_error(ctx, e,
			    "pool target '%s': unknown "
			    "provider '%s'",
			    v, prov);
			free(prov);
			continue;
		}
		free(prov);
		for (j = 0; j < pc->ntargets; j++) {
			if (strcmp(pc->targets[j], v) == 0)
				break;
		}
		if (j < pc->ntargets) {
			config_error(ctx, e, "pool target '%s' is listed twice",
			    v);
			continue;
		}
		pc->targets[pc->ntargets++] = xstrdup(v);
	}
}

/* weights = [ 2, 1, 1 ]: one whole number per target, 1 to 1000. */
static void
config_pool_weights(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config_poolr *r = obj;
	const config_setting_t *e;
	long long v;
	int i, n = config_setting_length(s), type;

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		config_error(ctx, s,
		    "weights must be a list of whole numbers: "
		    "[ 2, 1, 1 ]");
		return;
	}
	if (n > POOL_MAX_MEMBERS) {
		config_error(ctx, s, "too many weights (%d, at most %d)", n,
		    POOL_MAX_MEMBERS);
		return;
	}
	r->pc.weights = xcalloc((size_t)n + 1, sizeof *r->pc.weights);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		type = config_setting_type(e);
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			config_error(ctx, e, "weights must be whole numbers");
			return;
		}
		v = config_setting_get_int64(e);
		if (v < 1 || v > POOL_WEIGHT_MAX) {
			config_error(ctx, e, "weight %lld: a weight is 1 to %d",
			    v, POOL_WEIGHT_MAX);
			return;
		}
		r->pc.weights[i] = (uint32_t)v;
	}
	r->nweights = (size_t)n;
}

/* move_on = [ "rate_limited", ... ]: classes, as retry's on takes. */
static void
config_pool_move_on(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct pool_conf *pc = &((struct config_poolr *)obj)->pc;
	const config_setting_t *e;
	const char *v;
	int i, cls;

	if (config_strings(ctx, s, "move_on") != 0)
		return;
	pc->move_on = 0;
	for (i = 0; i < config_setting_length(s); i++) {
		e = config_setting_get_elem(s, (u_int)i);
		v = config_setting_get_string(e);
		cls = llmgate_class_from_name(v);
		if (cls < 0) {
			config_error(ctx, e,
			    "move_on: unknown error class "
			    "'%s'",
			    v);
			continue;
		}
		if (cls == LLMGATE_OK || cls == LLMGATE_CANCELLED ||
		    cls == LLMGATE_DEADLINE || cls == LLMGATE_INVALID_REQUEST) {
			config_error(ctx, e,
			    "move_on: '%s' cannot move a call "
			    "to another member",
			    v);
			continue;
		}
		pc->move_on |= 1u << cls;
	}
}

static int
config_pool_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct config_poolr *r = obj;
	struct pool_conf *pc = &r->pc;
	char names[128];
	int s, i;

	if (seen[PO_NAME] == NULL) {
		config_error(ctx, group, "pool has no name");
		return -1;
	}
	if (pc->name == NULL)
		return -1;
	if (strchr(pc->name, '/') != NULL) {
		config_error(ctx, seen[PO_NAME],
		    "pool name '%s' must not "
		    "contain '/' (that is how targets are named)",
		    pc->name);
		return -1;
	}
	if (config_pool(ctx->conf, pc->name) != NULL) {
		config_error(ctx, seen[PO_NAME], "duplicate pool '%s'",
		    pc->name);
		return -1;
	}
	if (seen[PO_TARGETS] == NULL) {
		config_error(ctx, group, "pool '%s' has no targets", pc->name);
		return -1;
	}
	if (config_setting_length(seen[PO_TARGETS]) == 0) {
		config_error(ctx, seen[PO_TARGETS], "pool '%s' has no targets",
		    pc->name);
		return -1;
	}
	s = r->strategy != NULL ? pool_strategy_index(r->strategy) :
	                          POOL_HEADROOM;
	if (s < 0) {
		names[0] = '\0';
		for (i = 0; i < POOL_STRATEGY_MAX; i++)
			snprintf(names + strlen(names),
			    sizeof names - strlen(names), "%s%s",
			    i != 0 ? ", " : "",
			    pool_strategy_name((enum pool_strategy)i));
		config_error(ctx, seen[PO_STRATEGY],
		    "unknown strategy '%s' "
		    "(valid: %s)",
		    r->strategy, names);
		return -1;
	}
	pc->strategy = s;
	if (seen[PO_WEIGHTS] != NULL && pc->strategy != POOL_WEIGHTED) {
		config_error(ctx, seen[PO_WEIGHTS],
		    "pool '%s': weights apply "
		    "only to strategy \"weighted\"",
		    pc->name);
		return -1;
	}
	if (seen[PO_WEIGHTS] != NULL && pc->weights != NULL &&
	    r->nweights != (size_t)config_setting_length(seen[PO_TARGETS])) {
		config_error(ctx, seen[PO_WEIGHTS],
		    "pool '%s' has %zu weights "
		    "for %d targets: give one per target",
		    pc->name, r->nweights,
		    config_setting_length(seen[PO_TARGETS]));
		return -1;
	}
	if (seen[PO_MAX_MOVES] == NULL)
		pc->max_moves = (uint32_t)pc->ntargets;
	if (seen[PO_MOVE_ON] == NULL)
		pc->move_on = POOL_MOVE_DEFAULT;
	return 0;
}

void
config_pool_free(struct pool_conf *pc)
{
	size_t i;

	free(pc->name);
	for (i = 0; i < pc->ntargets; i++)
		free(pc->targets[i]);
	free(pc->targets);
	free(pc->weights);
	free(pc->state);
}

void
config_pool_add(struct config_ctx *ctx, const config_setting_t *s, void *obj)
{
	struct config *conf = obj;
	struct config_poolr r;

	memset(&r, 0, sizeof r);
	if (config_group(ctx, s, &config_pool_keys, &r) != 0 ||
	    r.pc.ntargets == 0) {
		config_pool_free(&r.pc);
		free(r.strategy);
		return;
	}
	free(r.strategy);
	r.pc.state = xcalloc(1, sizeof *r.pc.state);
	pool_init(r.pc.state, (enum pool_strategy)r.pc.strategy, r.pc.weights,
	    r.pc.ntargets);
	conf->pools =
	    xreallocarray(conf->pools, conf->npools + 1, sizeof *conf->pools);
	conf->pools[conf->npools++] = r.pc;
}

const struct pool_conf *
config_pool(const struct config *conf, const char *name)
{
	size_t i;

	for (i = 0; i < conf->npools; i++) {
		if (strcmp(conf->pools[i].name, name) == 0)
			return &conf->pools[i];
	}
	return NULL;
}
