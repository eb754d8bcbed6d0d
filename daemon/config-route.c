/*
 * config-route.c: the routes block of the configuration: each route's
 * key table, its targets (a "provider/model" string, or a group with the
 * step's own overrides), their readers and checks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "llmgated.h"

static void config_targets(struct config_ctx *, const config_setting_t *,
    void *);
static int config_route_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

/* The key tables: indexes name the keys the checks look at. */
#define RK(f) offsetof(struct route_conf, f)
enum { RK_NAME, RK_TARGETS };
static const struct config_key config_route_key[] = {
	[RK_NAME] = { .name = "name", .kind = CK_STRING, .off = RK(name) },
	[RK_TARGETS] = { .name = "targets",
	    .kind = CK_FUNC,
	    .fn = config_targets },
};
static const struct config_keys config_route_keys = { config_route_key,
	CONFIG_NITEMS(config_route_key), config_route_check };

/* A target given as a group: { target = "p/m"; max_tokens = 100; ... } */
struct config_tgt {
	char *target;
	struct target_override o;
};

/* A list of strings as a NULL-free array for the fallback parsers. */
static char **
config_strv(const config_setting_t *s, size_t *n)
{
	char **v;
	int i, len = config_setting_length(s);

	v = xcalloc((size_t)len + 1, sizeof *v);
	for (i = 0; i < len; i++)
		v[i] = (char *)(uintptr_t)config_setting_get_string(
		    config_setting_get_elem(s, (u_int)i));
	*n = (size_t)len;
	return v;
}

/* A step's fallback_on = [ "class", ... ]. */
static void
config_target_fallback_on(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config_tgt *t = obj;
	char **v, *cause = NULL;
	size_t n;

	if (config_strings(ctx, s, "fallback_on") != 0)
		return;
	v = config_strv(s, &n);
	if (fallback_parse_on(&t->o.fb.on, v, n, "fallback_on", &cause) != 0) {
		config_error(ctx, s, "%s", cause);
		free(cause);
	}
	free(v);
}

/* A step's reject = [ "length", "match:...", ... ]. */
static void
config_target_reject(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config_tgt *t = obj;
	char **v, *cause = NULL;
	size_t n;

	if (config_strings(ctx, s, "reject") != 0)
		return;
	v = config_strv(s, &n);
	if (fallback_parse_reject(&t->o.fb, v, n, "reject", &cause) != 0) {
		config_error(ctx, s, "%s", cause);
		free(cause);
	}
	free(v);
}

#define TGK(f) offsetof(struct config_tgt, f)
enum {
	TK_TARGET,
	TK_MAX_TOKENS,
	TK_TEMPERATURE,
	TK_TOP_P,
	TK_ATTEMPTS,
	TK_FALLBACK_ON,
	TK_REJECT
};
static const struct config_key config_target_key[] = {
	[TK_TARGET] = { .name = "target",
	    .kind = CK_STRING,
	    .off = TGK(target) },
	[TK_MAX_TOKENS] = { .name = "max_tokens",
	    .kind = CK_U32,
	    .off = TGK(o.max_tokens),
	    .min = 1 },
	[TK_TEMPERATURE] = { .name = "temperature",
	    .kind = CK_DOUBLE,
	    .off = TGK(o.temperature),
	    .min = 0,
	    .max = 2 },
	[TK_TOP_P] = { .name = "top_p",
	    .kind = CK_DOUBLE,
	    .off = TGK(o.top_p),
	    .min = 0,
	    .max = 1 },
	[TK_ATTEMPTS] = { .name = "attempts",
	    .kind = CK_U32,
	    .off = TGK(o.attempts),
	    .min = 1,
	    .max = CALL_MAX_ATTEMPTS },
	[TK_FALLBACK_ON] = { .name = "fallback_on",
	    .kind = CK_FUNC,
	    .fn = config_target_fallback_on },
	[TK_REJECT] = { .name = "reject",
	    .kind = CK_FUNC,
	    .fn = config_target_reject },
};

static int
config_target_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct config_tgt *t = obj;

	if (seen[TK_TARGET] == NULL || t->target == NULL) {
		config_error(ctx, group,
		    "a target group needs target = "
		    "\"provider/model\"");
		return -1;
	}
	if (seen[TK_MAX_TOKENS] != NULL)
		t->o.has |= LLMGATE_HAS_MAX_TOKENS;
	if (seen[TK_TEMPERATURE] != NULL)
		t->o.has |= LLMGATE_HAS_TEMPERATURE;
	if (seen[TK_TOP_P] != NULL)
		t->o.has |= LLMGATE_HAS_TOP_P;
	if (seen[TK_ATTEMPTS] != NULL)
		t->o.has |= TARGET_HAS_ATTEMPTS;
	if (seen[TK_FALLBACK_ON] != NULL)
		t->o.has |= TARGET_HAS_FALLBACK_ON;
	if (seen[TK_REJECT] != NULL)
		t->o.has |= TARGET_HAS_REJECT;
	return 0;
}

static const struct config_keys config_target_keys = { config_target_key,
	CONFIG_NITEMS(config_target_key), config_target_check };

/*
 * Targets are "provider/model" with a provider defined above, or a pool's
 * name. 1 when the route took the target and its override (o's patterns
 * with it).
 */
static int
config_target_add(struct config_ctx *ctx, const config_setting_t *e,
    struct route_conf *rc, const char *v, const struct target_override *o)
{
	const char *slash = strchr(v, '/');
	char *prov;
	int took = 0;

	if (slash == NULL && config_pool(ctx->conf, v) != NULL)
		prov = NULL;
	else if (slash == NULL || slash == v || slash[1] == '\0') {
		config_error(ctx, e,
		    "target '%s' must be provider/model or "
		    "a pool's name",
		    v);
		return 0;
	} else
		prov = xstrndup(v, (size_t)(slash - v));
	if (prov != NULL && config_provider(ctx->conf, prov) == NULL)
		config_error(ctx, e, "target '%s': unknown provider '%s'", v,
		    prov);
	else {
		rc->targets = xreallocarray(rc->targets, rc->ntargets + 1,
		    sizeof *rc->targets);
		rc->over =
		    xreallocarray(rc->over, rc->ntargets + 1, sizeof *rc->over);
		rc->over[rc->ntargets] = *o;
		rc->targets[rc->ntargets++] = xstrdup(v);
		took = 1;
	}
	free(prov);
	return took;
}

/*
 * targets = [ "p/m", ... ], or a list mixing strings and groups that carry
 * per-target overrides: ( "p/m", { target = "q/n"; max_tokens = 200; } ).
 */
static void
config_targets(struct config_ctx *ctx, const config_setting_t *s, void *obj)
{
	static const struct target_override none;
	struct route_conf *rc = obj;
	const config_setting_t *e;
	struct config_tgt t;
	int i, n = config_setting_length(s);

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		config_error(ctx, s,
		    "targets must be a list: [ \"p/m\", ... ] "
		    "or ( \"p/m\", { target = \"p/m\"; ... } )");
		return;
	}
	if (n > CONFIG_MAX_ITEMS) {
		config_error(ctx, s, "too many targets (%d, at most %d)", n,
		    CONFIG_MAX_ITEMS);
		return;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		if (config_setting_type(e) == CONFIG_TYPE_STRING) {
			config_target_add(ctx, e, rc,
			    config_setting_get_string(e), &none);
			continue;
		}
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			config_error(ctx, e,
			    "a target is a \"provider/model\" "
			    "string or a { target = ...; } group");
			continue;
		}
		memset(&t, 0, sizeof t);
		if (config_group(ctx, e, &config_target_keys, &t) != 0 ||
		    !config_target_add(ctx, e, rc, t.target, &t.o))
			fallback_free(&t.o.fb);
		free(t.target);
	}
}

void
config_route_free(struct route_conf *rc)
{
	size_t i;

	free(rc->name);
	for (i = 0; i < rc->ntargets; i++) {
		free(rc->targets[i]);
		fallback_free(&rc->over[i].fb);
	}
	free(rc->targets);
	free(rc->over);
}

static int
config_route_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct route_conf *rc = obj;

	if (seen[RK_NAME] == NULL) {
		config_error(ctx, group, "route has no name");
		return -1;
	}
	if (rc->name == NULL)
		return -1;
	if (config_route(ctx->conf, rc->name) != NULL) {
		config_error(ctx, seen[RK_NAME], "duplicate route '%s'",
		    rc->name);
		return -1;
	}
	if (config_pool(ctx->conf, rc->name) != NULL) {
		config_error(ctx, seen[RK_NAME],
		    "route '%s' has the name of "
		    "a pool",
		    rc->name);
		return -1;
	}
	if (seen[RK_TARGETS] == NULL)
		config_error(ctx, group, "route '%s' has no targets", rc->name);
	else if (config_setting_length(seen[RK_TARGETS]) == 0)
		config_error(ctx, seen[RK_TARGETS], "route '%s' has no targets",
		    rc->name);
	return 0;
}

void
config_route_add(struct config_ctx *ctx, const config_setting_t *s, void *obj)
{
	struct config *conf = obj;
	struct route_conf rc;

	memset(&rc, 0, sizeof rc);
	if (config_group(ctx, s, &config_route_keys, &rc) != 0) {
		config_route_free(&rc);
		return;
	}
	conf->routes = xreallocarray(conf->routes, conf->nroutes + 1,
	    sizeof *conf->routes);
	conf->routes[conf->nroutes++] = rc;
}
