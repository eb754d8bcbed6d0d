/*
 * config-provider.c: the providers block of the configuration and each
 * provider's models: their key tables, readers and checks, the provider
 * types with their default URLs, and where each provider's API key comes
 * from (api_key, api_key_env or api_key_file).
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "llmgated.h"

/* The provider types config-provider.c accepts, for messages and default URLs. */
static const char *config_type_list = "openai, anthropic, gemini, azure, mock";

static const struct {
	const char *type;
	const char *url;
} config_base_urls[] = {
	{ "openai", "https://api.openai.com/v1" },
	{ "anthropic", "https://api.anthropic.com/v1" },
	{ "gemini", "https://generativelanguage.googleapis.com/v1beta" },
};

/* A provider while it is read: the settings that are not kept as such. */
struct config_prov {
	struct provider_conf pc;
	char *type;
	char *key_env;
	char *key_file;
};

static void config_model_add(struct config_ctx *, const config_setting_t *,
    void *);
static int config_provider_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);
static int config_model_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

/* The key tables: indexes name the keys the checks look at. */
#define MK(f) offsetof(struct model_conf, f)
enum { MK_NAME };
static const struct config_key config_model_key[] = {
	[MK_NAME] = { .name = "name", .kind = CK_STRING, .off = MK(name) },
	{ .name = "rpm", .kind = CK_U32, .off = MK(rpm) },
	{ .name = "tpm", .kind = CK_U32, .off = MK(tpm) },
	{ .name = "burst", .kind = CK_U32, .off = MK(burst) },
	{ .name = "tpm_burst", .kind = CK_U32, .off = MK(tpm_burst) },
};
static const struct config_keys config_model_keys = { config_model_key,
	CONFIG_NITEMS(config_model_key), config_model_check };

#define PK(f) offsetof(struct config_prov, f)
enum {
	PK_NAME,
	PK_TYPE,
	PK_BASE_URL,
	PK_API_KEY,
	PK_API_KEY_ENV,
	PK_API_KEY_FILE,
	PK_API_VERSION
};
static const struct config_key config_provider_key[] = {
	[PK_NAME] = { .name = "name", .kind = CK_STRING, .off = PK(pc.name) },
	[PK_TYPE] = { .name = "type", .kind = CK_STRING, .off = PK(type) },
	[PK_BASE_URL] = { .name = "base_url",
	    .kind = CK_STRING,
	    .off = PK(pc.base_url) },
	[PK_API_KEY] = { .name = "api_key",
	    .kind = CK_STRING,
	    .off = PK(pc.api_key) },
	[PK_API_KEY_ENV] = { .name = "api_key_env",
	    .kind = CK_STRING,
	    .off = PK(key_env) },
	[PK_API_KEY_FILE] = { .name = "api_key_file",
	    .kind = CK_STRING,
	    .off = PK(key_file) },
	[PK_API_VERSION] = { .name = "api_version",
	    .kind = CK_STRING,
	    .off = PK(pc.api_version) },
	{ .name = "rpm", .kind = CK_U32, .off = PK(pc.rpm) },
	{ .name = "tpm", .kind = CK_U32, .off = PK(pc.tpm) },
	{ .name = "burst", .kind = CK_U32, .off = PK(pc.burst) },
	{ .name = "tpm_burst", .kind = CK_U32, .off = PK(pc.tpm_burst) },
	{ .name = "concurrency", .kind = CK_U32, .off = PK(pc.concurrency) },
	{ .name = "timeout_ms", .kind = CK_U32, .off = PK(pc.timeout_ms) },
	{ .name = "connect_timeout_ms",
	    .kind = CK_U32,
	    .off = PK(pc.connect_timeout_ms) },
	{ .name = "first_byte_ms",
	    .kind = CK_U32,
	    .off = PK(pc.first_byte_ms) },
	{ .name = "idle_ms", .kind = CK_U32, .off = PK(pc.idle_ms) },
	{ .name = "models", .kind = CK_LIST, .fn = config_model_add },
};
static const struct config_keys config_provider_keys = { config_provider_key,
	CONFIG_NITEMS(config_provider_key), config_provider_check };

static void
config_model_free(struct model_conf *mc)
{
	free(mc->name);
}

static int
config_model_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct model_conf *mc = obj;

	if (seen[MK_NAME] == NULL) {
		config_error(ctx, group, "model has no name");
		return -1;
	}
	return mc->name != NULL ? 0 : -1;
}

static void
config_model_add(struct config_ctx *ctx, const config_setting_t *s, void *obj)
{
	struct provider_conf *pc = &((struct config_prov *)obj)->pc;
	struct model_conf mc;

	memset(&mc, 0, sizeof mc);
	if (config_group(ctx, s, &config_model_keys, &mc) != 0) {
		config_model_free(&mc);
		return;
	}
	if (config_model(pc, mc.name) != NULL) {
		config_error(ctx, config_setting_get_member(s, "name"),
		    "duplicate model '%s'", mc.name);
		config_model_free(&mc);
		return;
	}
	pc->models =
	    xreallocarray(pc->models, pc->nmodels + 1, sizeof *pc->models);
	pc->models[pc->nmodels++] = mc;
}

/* The key from exactly one of api_key, api_key_env, api_key_file. */
static void
config_provider_key_resolve(struct config_ctx *ctx,
    const config_setting_t **seen, struct config_prov *p)
{
	struct provider_conf *pc = &p->pc;
	const config_setting_t *s, *last = NULL;
	const char *v, *name = pc->name != NULL ? pc->name : "?";
	char *who;
	int i, n = 0;

	for (i = PK_API_KEY; i <= PK_API_KEY_FILE; i++) {
		if ((s = seen[i]) == NULL)
			continue;
		n++;
		if (last == NULL ||
		    config_setting_source_line(s) >=
		        config_setting_source_line(last))
			last = s;
	}
	if (n > 1) {
		config_error(ctx, last,
		    "only one of api_key, api_key_env and "
		    "api_key_file may be given");
		goto fail;
	}
	if (p->key_env != NULL) {
		v = getenv(p->key_env);
		if (v == NULL || *v == '\0') {
			log_info("provider %s: %s is not set; its calls fail "
			         "with auth until it is",
			    name, p->key_env);
			pc->key_env_unset = xstrdup(p->key_env);
			return;
		}
		pc->api_key = xstrdup(v);
	} else if (p->key_file != NULL) {
		xasprintf(&who, "provider %s", name);
		pc->api_key = config_secret_file(ctx, seen[PK_API_KEY_FILE],
		    who, "api_key_file", p->key_file);
		free(who);
	}
	if (pc->api_key != NULL && config_has_ctl(pc->api_key)) {
		config_error(ctx,
		    seen[PK_API_KEY] != NULL         ? seen[PK_API_KEY] :
		        seen[PK_API_KEY_ENV] != NULL ? seen[PK_API_KEY_ENV] :
		                                       seen[PK_API_KEY_FILE],
		    "the API key contains spaces or "
		    "control characters");
		goto fail;
	}
	return;

fail:
	if (pc->api_key != NULL) {
		explicit_bzero(pc->api_key, strlen(pc->api_key));
		free(pc->api_key);
		pc->api_key = NULL;
	}
}

void
config_provider_free(struct provider_conf *pc)
{
	size_t i;

	free(pc->name);
	free(pc->base_url);
	if (pc->api_key != NULL) {
		explicit_bzero(pc->api_key, strlen(pc->api_key));
		free(pc->api_key);
	}
	free(pc->api_version);
	free(pc->key_env_unset);
	for (i = 0; i < pc->nmodels; i++)
		config_model_free(&pc->models[i]);
	free(pc->models);
}

static int
config_provider_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct config_prov *p = obj;
	struct provider_conf *pc = &p->pc;
	char what[128];
	size_t i, len;
	int keep = 0, azure = 0;

	if (pc->name != NULL)
		snprintf(what, sizeof what, "provider '%s'", pc->name);
	else
		snprintf(what, sizeof what, "provider");

	if (seen[PK_NAME] == NULL) {
		config_error(ctx, group, "provider has no name");
		keep = -1;
	} else if (pc->name == NULL)
		keep = -1;
	else if (strchr(pc->name, '/') != NULL) {
		config_error(ctx, seen[PK_NAME],
		    "provider name '%s' must not "
		    "contain '/'",
		    pc->name);
		keep = -1;
	} else if (config_provider(ctx->conf, pc->name) != NULL) {
		config_error(ctx, seen[PK_NAME], "duplicate provider '%s'",
		    pc->name);
		keep = -1;
	}

	if (seen[PK_TYPE] == NULL)
		config_error(ctx, group, "%s has no type (one of %s)", what,
		    config_type_list);
	else if (p->type != NULL &&
	    (pc->type = provider_type_find(p->type)) == NULL)
		config_error(ctx, seen[PK_TYPE],
		    "unknown provider type '%s' "
		    "(valid: %s)",
		    p->type, config_type_list);
	if (pc->type != NULL)
		azure = strcmp(p->type, "azure") == 0;

	if (seen[PK_BASE_URL] == NULL && pc->type != NULL) {
		for (i = 0; i < CONFIG_NITEMS(config_base_urls); i++) {
			if (strcmp(p->type, config_base_urls[i].type) == 0)
				pc->base_url = xstrdup(config_base_urls[i].url);
		}
		if (pc->base_url == NULL && strcmp(p->type, "mock") != 0)
			config_error(ctx, group,
			    "%s has no base_url (type %s "
			    "has no default)",
			    what, p->type);
	}
	if (pc->base_url != NULL) {
		if (strncmp(pc->base_url, "http://", 7) != 0 &&
		    strncmp(pc->base_url, "https://", 8) != 0)
			config_error(ctx, seen[PK_BASE_URL],
			    "base_url must "
			    "start with http:// or https://");
		else if (config_has_ctl(pc->base_url))
			config_error(ctx, seen[PK_BASE_URL],
			    "base_url must "
			    "not contain spaces or control characters");
		/* Adapters append "/chat/completions" and the like. */
		len = strlen(pc->base_url);
		while (len > 0 && pc->base_url[len - 1] == '/')
			pc->base_url[--len] = '\0';
	}

	if (azure && seen[PK_API_VERSION] == NULL)
		config_error(ctx, group,
		    "%s has no api_version (type azure "
		    "needs one)",
		    what);
	if (!azure && pc->type != NULL && seen[PK_API_VERSION] != NULL)
		config_error(ctx, seen[PK_API_VERSION],
		    "api_version is only "
		    "used by type azure");

	config_provider_key_resolve(ctx, seen, p);
	return keep;
}

void
config_provider_add(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config *conf = obj;
	struct config_prov p;

	memset(&p, 0, sizeof p);
	p.pc.timeout_ms = 60000;
	p.pc.connect_timeout_ms = 5000;
	p.pc.idle_ms = 30000;
	if (config_group(ctx, s, &config_provider_keys, &p) == 0) {
		conf->providers = xreallocarray(conf->providers,
		    conf->nproviders + 1, sizeof *conf->providers);
		conf->providers[conf->nproviders++] = p.pc;
	} else
		config_provider_free(&p.pc);
	free(p.type);
	free(p.key_env);
	free(p.key_file);
}
