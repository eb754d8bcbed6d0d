/*
 * config-domains.c: the limits block, quota domains (domain.c):
 *
 *	limits = ( { name = "openai-org"; rpm = 500; tpm = 200000;
 *	    targets = [ "openai-a/gpt-4o*", "azure-eu/gpt-4o*" ];
 *	    learn = true; cooldown = "domain"; } );
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "llmgated.h"

static void config_domain_targets(struct config_ctx *, const config_setting_t *,
    void *);
static void config_domain_cooldown(struct config_ctx *,
    const config_setting_t *, void *);
static int config_domain_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

#define DK(f) offsetof(struct domain_conf, f)
enum {
	DK_NAME,
	DK_RPM,
	DK_TPM,
	DK_BURST,
	DK_TPM_BURST,
	DK_TARGETS,
	DK_LEARN,
	DK_COOLDOWN
};
static const struct config_key config_domain_key[] = {
	[DK_NAME] = { .name = "name", .kind = CK_STRING, .off = DK(name) },
	[DK_RPM] = { .name = "rpm", .kind = CK_U32, .off = DK(rpm) },
	[DK_TPM] = { .name = "tpm", .kind = CK_U32, .off = DK(tpm) },
	[DK_BURST] = { .name = "burst", .kind = CK_U32, .off = DK(burst) },
	[DK_TPM_BURST] = { .name = "tpm_burst",
	    .kind = CK_U32,
	    .off = DK(tpm_burst) },
	[DK_TARGETS] = { .name = "targets",
	    .kind = CK_FUNC,
	    .fn = config_domain_targets },
	[DK_LEARN] = { .name = "learn", .kind = CK_BOOL, .off = DK(learn) },
	[DK_COOLDOWN] = { .name = "cooldown",
	    .kind = CK_FUNC,
	    .fn = config_domain_cooldown },
};
static const struct config_keys config_domain_keys = { config_domain_key,
	CONFIG_NITEMS(config_domain_key), config_domain_check };

/*
 * One pattern: "provider/model" where either part may hold fnmatch(3)
 * wildcards. A provider part without wildcards must name a provider, so
 * that a typo is an error rather than a domain nobody draws from.
 */
static int
config_domain_pattern(struct config_ctx *ctx, const config_setting_t *e,
    const char *v)
{
	const char *slash = strchr(v, '/');
	char *prov;
	int rc = 0;

	if (slash == NULL || slash == v || slash[1] == '\0') {
		config_error(ctx, e,
		    "limits target '%s' must be "
		    "provider/model (each part may use * ? [...])",
		    v);
		return -1;
	}
	prov = xstrndup(v, (size_t)(slash - v));
	if (strpbrk(prov, "*?[\\") == NULL &&
	    config_provider(ctx->conf, prov) == NULL) {
		config_error(ctx, e,
		    "limits target '%s': unknown provider "
		    "'%s'",
		    v, prov);
		rc = -1;
	}
	free(prov);
	return rc;
}

static void
config_domain_targets(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct domain_conf *dc = obj;
	const config_setting_t *e;
	const char *v;
	int i, n;

	if (config_strings(ctx, s, "targets") != 0)
		return;
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		v = config_setting_get_string(e);
		if (config_domain_pattern(ctx, e, v) != 0)
			continue;
		dc->targets = xreallocarray(dc->targets, dc->ntargets + 1,
		    sizeof *dc->targets);
		dc->targets[dc->ntargets++] = xstrdup(v);
	}
}

static void
config_domain_cooldown(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct domain_conf *dc = obj;
	const char *v = config_setting_get_string(s);

	if (v != NULL && strcmp(v, "target") == 0)
		dc->cooldown = DOMAIN_COOLDOWN_TARGET;
	else if (v != NULL && strcmp(v, "domain") == 0)
		dc->cooldown = DOMAIN_COOLDOWN_DOMAIN;
	else
		config_error(ctx, s,
		    "cooldown must be \"target\" (a 429 "
		    "holds the member that got it) or \"domain\" (it holds "
		    "every member)");
}

void
config_domain_free(struct domain_conf *dc)
{
	size_t i;

	free(dc->name);
	for (i = 0; i < dc->ntargets; i++)
		free(dc->targets[i]);
	free(dc->targets);
}

static int
config_domain_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct domain_conf *dc = obj;
	size_t i;

	if (seen[DK_NAME] == NULL) {
		config_error(ctx, group, "limits entry has no name");
		return -1;
	}
	if (dc->name == NULL)
		return -1;
	for (i = 0; i < ctx->conf->ndomains; i++) {
		if (strcmp(ctx->conf->domains[i].name, dc->name) == 0) {
			config_error(ctx, seen[DK_NAME],
			    "duplicate limits "
			    "entry '%s'",
			    dc->name);
			return -1;
		}
	}
	if (seen[DK_TARGETS] == NULL ||
	    config_setting_length(seen[DK_TARGETS]) == 0)
		config_error(ctx,
		    seen[DK_TARGETS] != NULL ? seen[DK_TARGETS] : group,
		    "limits entry '%s' has no "
		    "targets",
		    dc->name);
	if (dc->rpm == 0 && dc->tpm == 0 && !dc->learn)
		config_error(ctx, group,
		    "limits entry '%s' limits nothing: "
		    "set rpm, tpm or learn = true",
		    dc->name);
	if (seen[DK_BURST] != NULL && dc->rpm == 0 && !dc->learn)
		config_error(ctx, seen[DK_BURST],
		    "limits entry '%s': burst "
		    "without rpm",
		    dc->name);
	if (seen[DK_TPM_BURST] != NULL && dc->tpm == 0 && !dc->learn)
		config_error(ctx, seen[DK_TPM_BURST],
		    "limits entry '%s': "
		    "tpm_burst without tpm",
		    dc->name);
	return 0;
}

/* One entry of limits = ( { ... }, ... ). */
void
config_domain_add(struct config_ctx *ctx, const config_setting_t *s, void *obj)
{
	struct config *conf = obj;
	struct domain_conf dc;

	memset(&dc, 0, sizeof dc);
	if (config_group(ctx, s, &config_domain_keys, &dc) != 0) {
		config_domain_free(&dc);
		return;
	}
	conf->domains = xreallocarray(conf->domains, conf->ndomains + 1,
	    sizeof *conf->domains);
	conf->domains[conf->ndomains++] = dc;
}
