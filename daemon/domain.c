/*
 * domain.c: quota domains, pure. Providers count many limits per
 * organisation, project or model family rather than per provider/model:
 * two keys of one organisation share its limits, Gemini counts per
 * project, Anthropic pools some limits across a model family. A domain is
 * such a budget (a struct ratelimit, as a target's), with the fnmatch(3)
 * patterns over "provider/model" that name its members. A member draws
 * from its own buckets and from every domain's; admission.c checks all of
 * them and takes from all of them at once.
 *
 * Optionally a domain learns from its members' answers: their rate-limit
 * headers describe the shared budget (learn), and a 429 from one member
 * holds every member (cooldown = "domain").
 *
 * Domains outlive reloads by name. One a reload removes is kept, matching
 * nothing, until exit: an attempt in flight still settles with the domain
 * it took from, and a reload that brings it back finds its levels.
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static struct domain *domain_list;

struct domain *
domain_first(void)
{
	return domain_list;
}

struct domain *
domain_find(const char *name)
{
	struct domain *d;

	for (d = domain_list; d != NULL; d = d->next) {
		if (strcmp(d->name, name) == 0)
			return d;
	}
	return NULL;
}

static void
domain_unpattern(struct domain *d)
{
	size_t i;

	for (i = 0; i < d->npat; i++)
		free(d->pat[i]);
	free(d->pat);
	d->pat = NULL;
	d->npat = 0;
}

/* Kept in config order: a target's first DOMAIN_PER_TARGET matches. */
static struct domain *
domain_get(const char *name)
{
	struct domain *d, **pp;

	if ((d = domain_find(name)) != NULL)
		return d;
	d = xcalloc(1, sizeof *d);
	d->name = xstrdup(name);
	for (pp = &domain_list; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = d;
	return d;
}

/* Move d to the end of the list: the config's order, one at a time. */
static void
domain_to_end(struct domain *d)
{
	struct domain **pp;

	for (pp = &domain_list; *pp != d; pp = &(*pp)->next)
		;
	*pp = d->next;
	d->next = NULL;
	for (pp = &domain_list; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = d;
}

void
domain_reconfigure(const struct config *conf, uint64_t now)
{
	const struct domain_conf *dc;
	struct domain *d;
	size_t i, j;

	for (d = domain_list; d != NULL; d = d->next) {
		d->live = 0;
		domain_unpattern(d);
	}
	for (i = 0; i < conf->ndomains; i++) {
		dc = &conf->domains[i];
		d = domain_get(dc->name);
		domain_to_end(d);
		d->live = 1;
		d->learn = dc->learn;
		d->cooldown = dc->cooldown;
		d->pat = xcalloc(dc->ntargets + 1, sizeof *d->pat);
		for (j = 0; j < dc->ntargets; j++)
			d->pat[j] = xstrdup(dc->targets[j]);
		d->npat = dc->ntargets;
		/* As a target's: levels, learned limits and holds stay. */
		rl_setup(&d->rl, dc->rpm, dc->tpm, dc->burst, dc->tpm_burst,
		    now);
	}
}

static int
domain_matches(const struct domain *d, const char *target)
{
	size_t i;

	for (i = 0; i < d->npat; i++) {
		if (fnmatch(d->pat[i], target, 0) == 0)
			return 1;
	}
	return 0;
}

void
domain_match(const char *target, struct domset *ds)
{
	struct domain *d;

	memset(ds, 0, sizeof *ds);
	for (d = domain_list; d != NULL && ds->n < DOMAIN_PER_TARGET;
	     d = d->next) {
		if (d->live && domain_matches(d, target))
			ds->d[ds->n++] = d;
	}
}

int
domain_has(const struct domset *ds, const struct domain *d)
{
	unsigned i;

	for (i = 0; i < ds->n; i++) {
		if (ds->d[i] == d)
			return 1;
	}
	return 0;
}

uint64_t
domain_wait_ms(const struct domset *ds, uint32_t tokens, uint64_t now,
    const struct domain **why)
{
	uint64_t wait = 0, w;
	unsigned i;

	if (why != NULL)
		*why = NULL;
	for (i = 0; i < ds->n; i++) {
		if ((w = rl_wait_ms(&ds->d[i]->rl, tokens, now)) > wait) {
			wait = w;
			if (why != NULL)
				*why = ds->d[i];
		}
	}
	return wait;
}

int64_t
domain_rpm_min(const struct domset *ds, int64_t rpm, uint64_t now)
{
	struct rl_status st;
	unsigned i;

	for (i = 0; i < ds->n; i++) {
		rl_status(&ds->d[i]->rl, now, &st);
		if (st.rpm_limit > 0 && (rpm <= 0 || st.rpm_limit < rpm))
			rpm = st.rpm_limit;
	}
	return rpm;
}

void
domain_take(const struct domset *ds, uint32_t tokens, uint64_t now)
{
	unsigned i;

	for (i = 0; i < ds->n; i++)
		rl_take(&ds->d[i]->rl, tokens, now);
}

void
domain_done(const struct domset *ds, enum llmgate_class cls,
    const struct header_rl *ri, uint32_t estimated, uint64_t used_tokens,
    uint64_t now)
{
	struct domain *d;
	unsigned i;

	for (i = 0; i < ds->n; i++) {
		d = ds->d[i];
		if (d->learn && ri != NULL)
			rl_learn(&d->rl, ri, now);
		if (used_tokens != 0)
			rl_reconcile(&d->rl, estimated, used_tokens, now);
		if (d->cooldown == DOMAIN_COOLDOWN_DOMAIN)
			rl_on_result(&d->rl, cls,
			    ri != NULL ? ri->retry_after_ms : -1, now);
	}
}

/* A bucket's limit and what it admits now; null when it has no limit. */
static json_t *
domain_rate(int64_t limit, int64_t available)
{
	if (limit < 0)
		return json_null();
	return json_pack("{s:I, s:I}", "limit", (json_int_t)limit, "available",
	    (json_int_t)available);
}

/*
 * For status: the live domains, their levels and hold, their patterns
 * and the targets that draw from them now (first is target_first()).
 */
json_t *
domain_status(const struct target *first, uint64_t now)
{
	const struct target *t;
	struct rl_status rs;
	struct domain *d;
	json_t *all, *o, *pat, *mem;
	size_t i;

	all = json_array();
	for (d = domain_list; d != NULL; d = d->next) {
		if (!d->live)
			continue;
		rl_status(&d->rl, now, &rs);
		pat = json_array();
		for (i = 0; i < d->npat; i++)
			json_array_append_new(pat, json_string(d->pat[i]));
		mem = json_array();
		for (t = first; t != NULL; t = t->next) {
			if (domain_has(&t->dom, d))
				json_array_append_new(mem,
				    json_string(t->name));
		}
		o = json_pack("{s:s, s:o, s:o, s:I, s:s?, s:b, s:s, s:o, "
		              "s:o}",
		    "name", d->name, "rpm",
		    domain_rate(rs.rpm_limit, rs.rpm_available), "tpm",
		    domain_rate(rs.tpm_limit, rs.tpm_available), "cooldown_ms",
		    (json_int_t)rs.cooldown_ms, "cooldown_reason",
		    rs.cooldown_reason, "learn", d->learn, "cooldown",
		    d->cooldown == DOMAIN_COOLDOWN_DOMAIN ? "domain" : "target",
		    "targets", pat, "members", mem);
		if (o != NULL)
			json_array_append_new(all, o);
	}
	return all;
}

void
domain_free_all(void)
{
	struct domain *d, *next;

	for (d = domain_list; d != NULL; d = next) {
		next = d->next;
		domain_unpattern(d);
		free(d->name);
		free(d);
	}
	domain_list = NULL;
}
