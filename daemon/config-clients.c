/*
 * config-clients.c: the clients block, a list of client classes:
 *
 *	clients = ( { name = "web"; match = [ "unit:web-*.service" ];
 *	    weight = 3; max_priority = "high"; max_share = 0.7;
 *	    max_inflight = 64; max_queued = 256; max_conns = 0;
 *	    tokens_per_minute = 0; tokens_per_day = 0; }, ... );
 *
 * match holds conditions on who the peer is: "uid:N" (or "uid:*"),
 * "user:NAME" (looked up here, at load), "unit:GLOB", "token:GLOB" (the
 * HTTP front's token names, which the tokens file assigns) and
 * "name:GLOB" (the name a client gives itself). A name is the client's
 * own claim, so a class that has name: conditions must also have one of
 * the others: a name only picks among the classes a peer's kernel
 * identity (or token) already allows.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "llmgated.h"

#define CCK(f) offsetof(struct client_class, f)

static void config_clients_match(struct config_ctx *, const config_setting_t *,
    void *);
static void config_clients_prio(struct config_ctx *, const config_setting_t *,
    void *);
static int config_clients_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

enum {
	CCK_NAME,
	CCK_MATCH,
	CCK_WEIGHT,
	CCK_MAX_PRIORITY,
	CCK_MAX_SHARE,
	CCK_MAX_INFLIGHT,
	CCK_MAX_QUEUED,
	CCK_MAX_CONNS,
	CCK_TPM,
	CCK_TPD
};
static const struct config_key config_clients_key[] = {
	[CCK_NAME] = { .name = "name", .kind = CK_STRING, .off = CCK(name) },
	[CCK_MATCH] = { .name = "match",
	    .kind = CK_FUNC,
	    .fn = config_clients_match },
	[CCK_WEIGHT] = { .name = "weight",
	    .kind = CK_U32,
	    .off = CCK(weight),
	    .min = 1,
	    .max = CLIENT_WEIGHT_MAX },
	[CCK_MAX_PRIORITY] = { .name = "max_priority",
	    .kind = CK_FUNC,
	    .fn = config_clients_prio },
	[CCK_MAX_SHARE] = { .name = "max_share",
	    .kind = CK_DOUBLE,
	    .off = CCK(max_share),
	    .min = 0.001,
	    .max = 1 },
	[CCK_MAX_INFLIGHT] = { .name = "max_inflight",
	    .kind = CK_U32,
	    .off = CCK(max_inflight) },
	[CCK_MAX_QUEUED] = { .name = "max_queued",
	    .kind = CK_U32,
	    .off = CCK(max_queued) },
	[CCK_MAX_CONNS] = { .name = "max_conns",
	    .kind = CK_U32,
	    .off = CCK(max_conns) },
	[CCK_TPM] = { .name = "tokens_per_minute",
	    .kind = CK_U32,
	    .off = CCK(tokens_per_minute) },
	[CCK_TPD] = { .name = "tokens_per_day",
	    .kind = CK_U32,
	    .off = CCK(tokens_per_day) },
};
static const struct config_keys config_clients_keys = { config_clients_key,
	CONFIG_NITEMS(config_clients_key), config_clients_check };

static void
config_clients_class_free(struct client_class *k)
{
	size_t i;

	free(k->name);
	for (i = 0; i < k->nmatch; i++)
		free(k->match[i].pat);
	free(k->match);
}

void
config_clients_free(struct config *conf)
{
	size_t i;

	for (i = 0; i < conf->nclasses; i++)
		config_clients_class_free(&conf->classes[i]);
	free(conf->classes);
	conf->classes = NULL;
	conf->nclasses = 0;
}

/* A user name (or a number) to its uid, at load like socket_group. */
static int
config_clients_uid(struct config_ctx *ctx, const config_setting_t *e,
    const char *name, uid_t *out)
{
	struct passwd *pw;
	unsigned long v;
	char *end;

	errno = 0;
	if ((pw = getpwnam(name)) != NULL) {
		*out = pw->pw_uid;
		return 0;
	}
	if (isdigit((u_char)*name)) {
		errno = 0;
		v = strtoul(name, &end, 10);
		if (*end == '\0' && errno == 0 && v < (uid_t)-1) {
			*out = (uid_t)v;
			return 0;
		}
	}
	config_error(ctx, e, "client match 'user:%s': unknown user", name);
	return -1;
}

/* One condition, "kind:value". */
static int
config_clients_cond(struct config_ctx *ctx, const config_setting_t *e,
    const char *s, struct client_match *m)
{
	static const char *kinds[] = { "uid", "user", "unit", "token", "name" };
	const char *colon = strchr(s, ':'), *v, *hint;
	char kind[16];
	size_t i;

	memset(m, 0, sizeof *m);
	if (colon == NULL || (size_t)(colon - s) >= sizeof kind) {
		config_error(ctx, e,
		    "client match '%s' must be KIND:VALUE, "
		    "KIND one of uid, user, unit, token, name",
		    s);
		return -1;
	}
	memcpy(kind, s, (size_t)(colon - s));
	kind[colon - s] = '\0';
	v = colon + 1;
	if (*v == '\0') {
		config_error(ctx, e, "client match '%s' has no value", s);
		return -1;
	}
	for (i = 0; i < CONFIG_NITEMS(kinds); i++) {
		if (strcmp(kind, kinds[i]) == 0)
			break;
	}
	switch (i) {
	case 0:
		m->kind = CM_UID;
		if (strcmp(v, "*") == 0) {
			m->uid = (uid_t)-1;
			return 0;
		}
		if (!isdigit((u_char)*v)) {
			config_error(ctx, e,
			    "client match '%s': a uid is a "
			    "number or *",
			    s);
			return -1;
		}
		return config_clients_uid(ctx, e, v, &m->uid);
	case 1:
		m->kind = CM_UID;
		return config_clients_uid(ctx, e, v, &m->uid);
	case 2:
	case 3:
	case 4:
		m->kind = i == 2 ? CM_UNIT : i == 3 ? CM_TOKEN : CM_NAME;
		m->pat = xstrdup(v);
		return 0;
	default:
		hint = config_suggest(kind, kinds, CONFIG_NITEMS(kinds));
		config_error(ctx, e,
		    "client match '%s': unknown kind '%s'%s%s%s", s, kind,
		    hint != NULL ? " (did you mean '" : "",
		    hint != NULL ? hint : "", hint != NULL ? "'?)" : "");
		return -1;
	}
}

static void
config_clients_match(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct client_class *k = obj;
	const config_setting_t *e;
	int i, n;

	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		n = 1;
	else if (config_strings(ctx, s, "match") != 0)
		return;
	else
		n = config_setting_length(s);
	k->match = xcalloc((size_t)n + 1, sizeof *k->match);
	for (i = 0; i < n; i++) {
		e = n == 1 && config_setting_type(s) == CONFIG_TYPE_STRING ?
		    s :
		    config_setting_get_elem(s, (u_int)i);
		if (config_clients_cond(ctx, e, config_setting_get_string(e),
		        &k->match[k->nmatch]) == 0)
			k->nmatch++;
	}
}

static void
config_clients_prio(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct client_class *k = obj;
	const char *v = config_setting_get_string(s);
	int p;

	if (v == NULL || (p = llmgate_priority_from_name(v)) < 0) {
		config_error(ctx, s,
		    "max_priority must be \"high\", "
		    "\"normal\" or \"low\"");
		return;
	}
	k->max_priority = p;
}

static int
config_clients_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct client_class *k = obj;
	const struct config *conf = ctx->conf;
	const char *p;
	size_t i;
	int names = 0, others = 0;

	if (seen[CCK_NAME] == NULL || k->name == NULL) {
		if (seen[CCK_NAME] == NULL)
			config_error(ctx, group, "client class has no name");
		return -1;
	}
	for (p = k->name; *p != '\0'; p++) {
		if (!isalnum((u_char)*p) && *p != '-' && *p != '_' && *p != '.')
			break;
	}
	if (*p != '\0' || strlen(k->name) >= CLIENT_NAME_MAX) {
		config_error(ctx, seen[CCK_NAME],
		    "client class name '%s' "
		    "must be letters, digits, '-', '_' or '.', under %d bytes",
		    k->name, CLIENT_NAME_MAX);
		return -1;
	}
	for (i = 0; i < conf->nclasses; i++) {
		if (strcmp(conf->classes[i].name, k->name) == 0) {
			config_error(ctx, seen[CCK_NAME],
			    "duplicate client "
			    "class '%s'",
			    k->name);
			return -1;
		}
	}
	for (i = 0; i < k->nmatch; i++) {
		if (k->match[i].kind == CM_NAME)
			names++;
		else
			others++;
	}
	if (strcmp(k->name, "default") == 0 && seen[CCK_MATCH] != NULL) {
		config_error(ctx, seen[CCK_MATCH],
		    "client class 'default' "
		    "takes whoever no other class matches: it has no match");
		return -1;
	}
	if (strcmp(k->name, "default") != 0 && seen[CCK_MATCH] == NULL) {
		config_error(ctx, group, "client class '%s' has no match",
		    k->name);
		return -1;
	}
	if (names != 0 && others == 0) {
		config_error(ctx, seen[CCK_MATCH],
		    "client class '%s': a name "
		    "is the client's own claim; add a uid:, user:, unit: or "
		    "token: condition (uid:* for anyone) it must meet too",
		    k->name);
		return -1;
	}
	if (seen[CCK_WEIGHT] == NULL)
		k->weight = 1;
	if (seen[CCK_MAX_PRIORITY] == NULL)
		k->max_priority = LLMGATE_PRIO_HIGH;
	if (seen[CCK_MAX_SHARE] == NULL)
		k->max_share = 1;
	return 0;
}

/* One class of the clients list, in the order given: first match wins. */
void
config_clients_add(struct config_ctx *ctx, const config_setting_t *s, void *obj)
{
	struct config *conf = obj;
	struct client_class k;
	const char *p;

	memset(&k, 0, sizeof k);
	if (conf->nclasses >= CLIENTS_MAX) {
		config_error(ctx, s, "too many client classes (at most %d)",
		    CLIENTS_MAX);
		return;
	}
	if (config_group(ctx, s, &config_clients_keys, &k) != 0) {
		config_clients_class_free(&k);
		return;
	}
	k.key = 1469598103934665603ULL; /* FNV-1a */
	for (p = k.name; *p != '\0'; p++)
		k.key = (k.key ^ (u_char)*p) * 1099511628211ULL;
	conf->classes = xreallocarray(conf->classes, conf->nclasses + 1,
	    sizeof *conf->classes);
	conf->classes[conf->nclasses++] = k;
}
