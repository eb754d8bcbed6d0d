/*
 * check_domain.c: quota domains with fake time: which targets a domain's
 * patterns take in, and across reloads; admission taking from a target's
 * own buckets and every domain's at once, or from none; the wait for the
 * bucket that frees last; token estimates settled on every bucket; a 429
 * and rate-limit headers held to the member or spread to the domain; and
 * a randomised run of admissions against a reference model of token
 * buckets.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmgated.h"

#define T0 100000 /* a fake CLOCK_MONOTONIC reading, ms */
#define NT 4

static struct provider_state ps;
static struct target tg[NT];
static struct config conf;
static struct domain_conf dcs[4];
static char *pats[4][4];

static const char *names[NT] = { "oa/gpt-4o", "oa/gpt-4o-mini", "az/gpt-4o-eu",
	"an/claude" };

/* A domain of the fake config: patterns NULL-terminated. */
static void
dom_conf(size_t i, const char *name, uint32_t rpm, uint32_t burst, uint32_t tpm,
    int learn, int cooldown, const char *p0, const char *p1)
{
	struct domain_conf *dc = &dcs[i];

	memset(dc, 0, sizeof *dc);
	dc->name = (char *)(uintptr_t)name;
	dc->rpm = rpm;
	dc->burst = burst;
	dc->tpm = tpm;
	dc->tpm_burst = tpm;
	dc->learn = learn;
	dc->cooldown = cooldown;
	pats[i][0] = (char *)(uintptr_t)p0;
	pats[i][1] = (char *)(uintptr_t)p1;
	dc->targets = pats[i];
	dc->ntargets = p1 != NULL ? 2 : 1;
	if (i + 1 > conf.ndomains)
		conf.ndomains = i + 1;
}

static void
setup(void)
{
	size_t i;

	memset(&ps, 0, sizeof ps);
	memset(&conf, 0, sizeof conf);
	memset(dcs, 0, sizeof dcs);
	conf.domains = dcs;
	conf.max_wait_ms = 0;
	conf.breaker.failures = 1000;
	conf.breaker.failure_rate = 1;
	conf.breaker.min_calls = 100000;
	conf.breaker.window_ms = 60000;
	conf.breaker.open_ms = 30000;
	conf.breaker.half_open_probes = 1;
	for (i = 0; i < NT; i++) {
		memset(&tg[i], 0, sizeof tg[i]);
		tg[i].name = (char *)(uintptr_t)names[i];
		tg[i].model = strchr(names[i], '/') + 1;
		tg[i].provider = &ps;
		breaker_init(&tg[i].br);
		waitq_init(&tg[i].queue, 0);
	}
}

static void
teardown(void)
{
	size_t i;

	for (i = 0; i < NT; i++)
		waitq_free(&tg[i].queue);
	domain_free_all();
}

/* The config's domains applied, and each target's matched. */
static void
apply(uint64_t now)
{
	size_t i;

	domain_reconfigure(&conf, now);
	for (i = 0; i < NT; i++)
		domain_match(tg[i].name, &tg[i].dom);
}

static enum admit_verdict
ask(struct admission *a, size_t t, uint32_t tokens, uint64_t now,
    uint64_t *wait)
{
	admission_init(a, &tg[t], &conf, 0, tokens, t + 1, LLMGATE_PRIO_NORMAL);
	return admission_request(a, 0, now, wait);
}

START_TEST(test_match)
{
	struct domain *org;

	setup();
	dom_conf(0, "org", 60, 0, 0, 0, 0, "oa/*", "az/gpt-4o*");
	dom_conf(1, "minis", 60, 0, 0, 0, 0, "*/*-mini", NULL);
	dom_conf(2, "none", 60, 0, 0, 0, 0, "xx/*", NULL);
	apply(T0);
	ck_assert_uint_eq(tg[0].dom.n, 1);
	ck_assert_str_eq(tg[0].dom.d[0]->name, "org");
	/* Two domains, in config order. */
	ck_assert_uint_eq(tg[1].dom.n, 2);
	ck_assert_str_eq(tg[1].dom.d[0]->name, "org");
	ck_assert_str_eq(tg[1].dom.d[1]->name, "minis");
	ck_assert_uint_eq(tg[2].dom.n, 1);
	ck_assert_uint_eq(tg[3].dom.n, 0);

	/* Spend org's budget, then reload without it, then with it again. */
	org = domain_find("org");
	rl_take(&org->rl, 0, T0);
	conf.ndomains = 0;
	dom_conf(0, "minis", 60, 0, 0, 0, 0, "*/*-mini", NULL);
	apply(T0);
	ck_assert_int_eq(org->live, 0);
	ck_assert_ptr_eq(domain_find("org"), org);
	ck_assert_uint_eq(tg[0].dom.n, 0);
	ck_assert_uint_eq(tg[1].dom.n, 1);
	ck_assert_str_eq(tg[1].dom.d[0]->name, "minis");
	dom_conf(1, "org", 60, 0, 0, 0, 0, "oa/*", NULL);
	apply(T0);
	ck_assert_ptr_eq(domain_find("org"), org);
	ck_assert_int_eq(org->live, 1);
	/* Its level survived: one request a second, the one taken. */
	ck_assert_uint_eq(rl_wait_ms(&org->rl, 0, T0), 1000);
	ck_assert_uint_eq(tg[0].dom.n, 1);
	teardown();
}
END_TEST

/* Check all, then take all: a domain that says no takes nothing anywhere. */
START_TEST(test_all_or_nothing)
{
	struct admission a, b, c;
	uint64_t wait;

	setup();
	dom_conf(0, "org", 60, 2, 0, 0, 0, "oa/*", "az/*");
	apply(T0);
	rl_setup(&tg[0].rl, 600, 0, 5, 0, T0);
	ck_assert_int_eq(ask(&a, 0, 10, T0, &wait), ADMIT_GO);
	ck_assert_int_eq(ask(&b, 2, 10, T0, &wait), ADMIT_GO);
	/* The domain's burst of two is spent: the target's own is not. */
	ck_assert_int_eq(ask(&c, 0, 10, T0, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(wait, 1000);
	admission_release(&c, T0);
	ck_assert_int_eq(bucket_available(&tg[0].rl.req, T0), 4);
	ck_assert_int_eq(bucket_available(&domain_find("org")->rl.req, T0), 0);
	/* A target outside the domain is not held by it. */
	ck_assert_int_eq(ask(&c, 3, 10, T0, &wait), ADMIT_GO);
	admission_release(&a, T0);
	admission_release(&b, T0);
	admission_release(&c, T0);
	teardown();
}
END_TEST

/* The wait is for the bucket that frees last; the queue is served then. */
START_TEST(test_wait_for_last)
{
	struct admission a, b, c;
	uint64_t wait;

	setup();
	dom_conf(0, "org", 20, 1, 0, 0, 0, "oa/*", NULL); /* 3 s */
	apply(T0);
	rl_setup(&tg[0].rl, 60, 0, 1, 0, T0); /* 1 s */
	ck_assert_int_eq(ask(&a, 0, 1, T0, &wait), ADMIT_GO);
	ck_assert_int_eq(ask(&b, 0, 1, T0, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(wait, 3000);
	ck_assert_ptr_null(admission_next(&tg[0], T0 + 1000, &wait));
	ck_assert_uint_eq(wait, 2000);
	ck_assert_ptr_null(admission_next(&tg[0], T0 + 2999, &wait));
	ck_assert_uint_eq(wait, 1);
	ck_assert_ptr_eq(admission_next(&tg[0], T0 + 3000, &wait), &b);
	ck_assert_int_eq(b.granted, 1);
	admission_release(&a, T0);
	admission_release(&b, T0);
	/*
	 * A newcomer behind a queued call of another client: the head's
	 * wait plus one turn at the domain's pace (3 s), not the target's
	 * (1 s): 3 s + 3 s.
	 */
	ck_assert_int_eq(ask(&a, 0, 1, T0 + 6000, &wait), ADMIT_GO);
	ck_assert_int_eq(ask(&b, 0, 1, T0 + 6000, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(wait, 3000);
	admission_init(&c, &tg[0], &conf, 0, 1, 99, LLMGATE_PRIO_NORMAL);
	ck_assert_uint_eq(admission_predict(&c, T0 + 6000), 6000);
	admission_release(&a, T0);
	admission_release(&b, T0);
	teardown();
}
END_TEST

/* Estimates are settled with real usage on every bucket that took them. */
START_TEST(test_settle)
{
	struct admission a;
	struct domain *d1, *d2;
	uint64_t wait;

	setup();
	dom_conf(0, "org", 0, 0, 6000, 0, 0, "oa/*", NULL);
	dom_conf(1, "family", 0, 0, 60000, 0, 0, "*/gpt-4o", NULL);
	apply(T0);
	d1 = domain_find("org");
	d2 = domain_find("family");
	ck_assert_int_eq(ask(&a, 0, 1000, T0, &wait), ADMIT_GO);
	ck_assert_int_eq(bucket_available(&d1->rl.tok, T0), 5000);
	ck_assert_int_eq(bucket_available(&d2->rl.tok, T0), 59000);
	admission_done(&a, LLMGATE_OK, NULL, 400, T0);
	ck_assert_int_eq(bucket_available(&d1->rl.tok, T0), 5600);
	ck_assert_int_eq(bucket_available(&d2->rl.tok, T0), 59600);
	/* Settled once: done twice refunds nothing more. */
	admission_done(&a, LLMGATE_OK, NULL, 400, T0);
	ck_assert_int_eq(bucket_available(&d1->rl.tok, T0), 5600);
	admission_release(&a, T0);
	teardown();
}
END_TEST

/*
 * A domain fed by a cluster: its stock is only what slices brought (no
 * refill by the clock), a member waits for a slice, a token estimate
 * settles on the stock, and what the host gives back leaves it: granted
 * - returned - stock is what the members spent, at every step. A reload
 * keeps it fed; Redis away, the host keeps to its share of the limit.
 */
START_TEST(test_fed)
{
	struct admission a;
	struct rl_status st;
	struct domain *d;
	uint64_t wait, now = T0;
	int64_t n, stock;

	setup();
	dom_conf(0, "org", 0, 0, 6000, 0, 0, "oa/*", NULL);
	apply(now);
	d = domain_find("org");
	rl_cluster(&d->rl, 1, 0, now);
	slice_init(&d->slice[1]);
	ck_assert_int_eq(bucket_available(&d->rl.tok, now), 0);
	ck_assert_uint_eq(admission_wait_ms(&tg[0], 1000, now),
	    BUCKET_FED_WAIT_MS);
	ck_assert_uint_eq(admission_wait_ms(&tg[3], 1000, now), 0);
	/* Asked for what the member's queue waits for, granted. */
	n = slice_tick(&d->slice[1], bucket_available(&d->rl.tok, now), 1000,
	    6000, 100, now);
	ck_assert_int_ge(n, 1000);
	ck_assert_int_le(n, 6000);
	bucket_feed(&d->rl.tok, n, now);
	slice_granted(&d->slice[1], (uint64_t)n, 0, now);
	ck_assert_int_eq(ask(&a, 0, 1000, now, &wait), ADMIT_GO);
	now += 30000; /* no refill: the cluster's clock refills */
	ck_assert_int_eq(bucket_available(&d->rl.tok, now), n - 1000);
	admission_done(&a, LLMGATE_OK, NULL, 400, now);
	admission_release(&a, now);
	stock = bucket_available(&d->rl.tok, now);
	ck_assert_int_eq(stock, n - 400);
	ck_assert_int_eq((int64_t)d->slice[1].granted -
	        (int64_t)d->slice[1].returned - stock,
	    400);
	/* Nothing queued, the rate gone: most of it goes back. */
	for (now += 1000; now < T0 + 60000; now += 1000) {
		n = slice_tick(&d->slice[1], bucket_available(&d->rl.tok, now),
		    0, 6000, 100, now);
		ck_assert_int_le(n, 0);
		if (n < 0) {
			bucket_feed(&d->rl.tok, n, now);
			slice_returned(&d->slice[1], (uint64_t)-n);
		}
	}
	stock = bucket_available(&d->rl.tok, now);
	ck_assert_int_le(stock, 2);
	ck_assert_int_eq((int64_t)d->slice[1].granted -
	        (int64_t)d->slice[1].returned - stock,
	    400);
	/* A reload keeps the domain fed and its stock. */
	apply(now);
	ck_assert_int_eq(d->rl.fed, 1);
	ck_assert_int_eq(bucket_available(&d->rl.tok, now), stock);
	/* Redis away, three hosts: a third of the limit, by the clock. */
	rl_cluster(&d->rl, 0, 3, now);
	rl_status(&d->rl, now, &st);
	ck_assert_int_eq(st.tpm_limit, 2000);
	ck_assert_int_gt(bucket_available(&d->rl.tok, now + 60000), stock);
	teardown();
}
END_TEST

/* A 429 holds the member only, or the whole domain when it says so. */
START_TEST(test_cooldown)
{
	struct admission a, b;
	struct header_rl ri;
	uint64_t wait;
	char msg[200];

	setup();
	dom_conf(0, "shared", 6000, 100, 0, 0, DOMAIN_COOLDOWN_DOMAIN, "oa/*",
	    NULL);
	dom_conf(1, "own", 6000, 100, 0, 0, DOMAIN_COOLDOWN_TARGET, "az/*",
	    "an/*");
	apply(T0);
	header_rl_init(&ri);
	ri.retry_after_ms = 2000;
	ck_assert_int_eq(ask(&a, 0, 1, T0, &wait), ADMIT_GO);
	admission_done(&a, LLMGATE_RATE_LIMITED, &ri, 0, T0);
	admission_release(&a, T0);
	/* The other member of "shared" waits for the same 2 s. */
	ck_assert_int_eq(ask(&b, 1, 1, T0 + 500, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(wait, 1500);
	conf.max_wait_ms = 1000;
	ck_assert_int_eq(admission_refusal(&b, ADMIT_LONG, wait, T0 + 500,
	                     "deadline", msg, sizeof msg),
	    LLMGATE_RATE_LIMITED);
	ck_assert_msg(strstr(msg, "quota domain 'shared'") != NULL, "%s", msg);
	ck_assert_msg(strstr(msg, "retry-after") != NULL, "%s", msg);
	admission_release(&b, T0);
	conf.max_wait_ms = 0;

	ck_assert_int_eq(ask(&a, 2, 1, T0, &wait), ADMIT_GO);
	admission_done(&a, LLMGATE_RATE_LIMITED, &ri, 0, T0);
	admission_release(&a, T0);
	/* "own": only the member that got the 429 is held. */
	ck_assert_int_eq(ask(&b, 2, 1, T0 + 500, &wait), ADMIT_WAIT);
	admission_release(&b, T0);
	ck_assert_int_eq(ask(&b, 3, 1, T0 + 500, &wait), ADMIT_GO);
	admission_release(&b, T0);
	teardown();
}
END_TEST

/* A pool sees a member's domains as its own budget: held, or half spent. */
START_TEST(test_pool_view)
{
	struct admission a;
	struct pool_member m;
	uint64_t wait;

	setup();
	dom_conf(0, "org", 60, 2, 0, 0, 0, "oa/*", NULL);
	apply(T0);
	pool_member_view(&m, &tg[0], 0, 1, T0);
	ck_assert_int_eq(m.ready, 1);
	ck_assert(m.headroom == 1.0);
	ck_assert_int_eq(ask(&a, 1, 1, T0, &wait), ADMIT_GO);
	admission_release(&a, T0);
	pool_member_view(&m, &tg[0], 0, 1, T0);
	ck_assert_int_eq(m.ready, 1);
	ck_assert(m.headroom == 0.5);
	ck_assert_int_eq(ask(&a, 1, 1, T0, &wait), ADMIT_GO);
	admission_release(&a, T0);
	/* The other member spent the domain: this one waits for it too. */
	pool_member_view(&m, &tg[0], 0, 1, T0);
	ck_assert_int_eq(m.ready, 0);
	ck_assert_uint_eq(m.wait_ms, 1000);
	ck_assert(m.headroom == 0.0);
	/* A member outside the domain is not held. */
	pool_member_view(&m, &tg[3], 0, 1, T0);
	ck_assert_int_eq(m.ready, 1);
	teardown();
}
END_TEST

/* learn: a member's rate-limit headers are the domain's. */
START_TEST(test_learn)
{
	struct admission a, b;
	struct header_rl ri;
	struct domain *d;
	uint64_t wait;

	setup();
	dom_conf(0, "learns", 0, 0, 0, 1, 0, "oa/*", NULL);
	dom_conf(1, "deaf", 600, 0, 0, 0, 0, "az/*", "an/*");
	apply(T0);
	d = domain_find("learns");
	header_rl_init(&ri);
	ri.limit_requests = 120;
	ri.remaining_requests = 0;
	ri.reset_requests_ms = 4000;
	ck_assert_int_eq(ask(&a, 0, 1, T0, &wait), ADMIT_GO);
	admission_done(&a, LLMGATE_OK, &ri, 0, T0);
	admission_release(&a, T0);
	ck_assert_uint_eq(d->rl.learned_rpm, 120);
	ck_assert_int_eq(ask(&b, 1, 1, T0 + 1000, &wait), ADMIT_WAIT);
	ck_assert_uint_eq(wait, 3000);
	admission_release(&b, T0);

	ck_assert_int_eq(ask(&a, 2, 1, T0, &wait), ADMIT_GO);
	admission_done(&a, LLMGATE_OK, &ri, 0, T0);
	admission_release(&a, T0);
	ck_assert_uint_eq(domain_find("deaf")->rl.learned_rpm, 0);
	ck_assert_int_eq(ask(&b, 3, 1, T0 + 1000, &wait), ADMIT_GO);
	admission_release(&b, T0);
	teardown();
}
END_TEST

/*
 * The reference: a token bucket of capacity C refilled at r units a
 * minute, full at T0, holds at t the least over s of C + r (t - s) / 60000
 * minus what was taken in [s, t], s running over T0, every grant and t.
 * Kept in 1/60000 units, as ratelimit.c keeps it, so both are exact.
 */
#define RMAX 4096
struct ref {
	int64_t cap, rate; /* units; units a minute; 0: none */
	uint64_t at[RMAX];
	int64_t amount[RMAX];
	size_t n;
	uint64_t hold;   /* cooldown until */
	int64_t granted; /* units, all time */
};

static int64_t
ref_level(const struct ref *r, uint64_t t)
{
	int64_t lvl = r->cap * RL_SCALE, sum = 0, v;
	size_t k;

	for (k = r->n; k-- > 0;) {
		sum += r->amount[k] * RL_SCALE;
		v = r->cap * RL_SCALE + r->rate * (int64_t)(t - r->at[k]) - sum;
		if (v < lvl)
			lvl = v;
	}
	v = r->cap * RL_SCALE + r->rate * (int64_t)(t - T0) - sum;
	return v < lvl ? v : lvl;
}

static int
ref_ok(const struct ref *r, int64_t need, uint64_t t)
{
	return t >= r->hold &&
	    (r->rate == 0 || ref_level(r, t) >= need * RL_SCALE);
}

static void
ref_take(struct ref *r, int64_t amount, uint64_t t)
{
	if (r->rate == 0)
		return;
	ck_assert_uint_lt(r->n, RMAX);
	r->at[r->n] = t;
	r->amount[r->n++] = amount;
	r->granted += amount;
}

/*
 * Random admissions on four targets with their own request buckets and
 * three domains (one with a tokens budget, one whose 429s hold it): each
 * verdict must be GO exactly when every bucket of the reference has the
 * budget; no domain ever grants more than its capacity plus its refill.
 */
START_TEST(test_random)
{
	static const uint32_t trpm[NT] = { 120, 0, 300, 60 };
	struct ref tref[NT], dreq[3], dtok[3];
	struct admission a;
	struct domain *d[3];
	struct header_rl ri;
	uint64_t now = T0, wait;
	unsigned rnd = 4242, i, t, k, steps, go = 0;
	uint32_t tokens;
	int ok;

	setup();
	dom_conf(0, "org", 90, 3, 0, 0, DOMAIN_COOLDOWN_DOMAIN, "oa/*", "az/*");
	dom_conf(1, "family", 40, 2, 0, 0, 0, "*/gpt-4o*", NULL);
	dom_conf(2, "tokens", 0, 0, 3000, 0, 0, "*/*", NULL);
	apply(T0);
	memset(tref, 0, sizeof tref);
	memset(dreq, 0, sizeof dreq);
	memset(dtok, 0, sizeof dtok);
	for (t = 0; t < NT; t++) {
		rl_setup(&tg[t].rl, trpm[t], 0, 2, 0, T0);
		tref[t].rate = trpm[t];
		tref[t].cap = 2;
	}
	d[0] = domain_find("org");
	d[1] = domain_find("family");
	d[2] = domain_find("tokens");
	dreq[0].rate = 90;
	dreq[0].cap = 3;
	dreq[1].rate = 40;
	dreq[1].cap = 2;
	dtok[2].rate = 3000;
	dtok[2].cap = 3000;
	header_rl_init(&ri);
	for (steps = 0; steps < 3000; steps++) {
		rnd = rnd * 1103515245 + 12345;
		now += (rnd >> 16) % 700;
		t = (rnd >> 8) % NT;
		tokens = 1 + (rnd >> 4) % 400;
		ok = ref_ok(&tref[t], 1, now);
		for (k = 0; k < 3; k++) {
			if (!domain_has(&tg[t].dom, d[k]))
				continue;
			ok = ok && ref_ok(&dreq[k], 1, now) &&
			    ref_ok(&dtok[k], tokens, now);
		}
		switch (ask(&a, t, tokens, now, &wait)) {
		case ADMIT_GO:
			ck_assert_msg(ok,
			    "step %u: granted, the reference "
			    "says no",
			    steps);
			go++;
			ref_take(&tref[t], 1, now);
			for (k = 0; k < 3; k++) {
				if (!domain_has(&tg[t].dom, d[k]))
					continue;
				ref_take(&dreq[k], 1, now);
				ref_take(&dtok[k], tokens, now);
			}
			/* One in eight meets a 429 with Retry-After. */
			if ((rnd >> 20) % 8 == 0) {
				ri.retry_after_ms = (rnd >> 4) % 3000;
				admission_done(&a, LLMGATE_RATE_LIMITED, &ri, 0,
				    now);
				if (now + (uint64_t)ri.retry_after_ms >
				    tref[t].hold)
					tref[t].hold =
					    now + (uint64_t)ri.retry_after_ms;
				if (domain_has(&tg[t].dom, d[0]) &&
				    now + (uint64_t)ri.retry_after_ms >
				        dreq[0].hold)
					dreq[0].hold =
					    now + (uint64_t)ri.retry_after_ms;
			} else
				admission_done(&a, LLMGATE_OK, NULL, 0, now);
			break;
		case ADMIT_WAIT:
			ck_assert_msg(!ok,
			    "step %u: waits, the reference "
			    "says go",
			    steps);
			ck_assert_uint_gt(wait, 0);
			break;
		default:
			ck_abort_msg("step %u: refused", steps);
		}
		admission_release(&a, now);
		/* The domains' own bound, whatever the model says. */
		for (k = 0; k < 2; k++)
			ck_assert_int_le(dreq[k].granted * 60000,
			    dreq[k].cap * 60000 +
			        dreq[k].rate * (int64_t)(now - T0));
	}
	/* Enough of both verdicts to mean something. */
	ck_assert_uint_gt(go, 300);
	ck_assert_uint_lt(go, 2700);
	for (i = 0; i < NT; i++)
		ck_assert_uint_eq(waitq_len(&tg[i].queue), 0);
	teardown();
}
END_TEST

/* text as a config file, loaded: the config, or NULL and *errors. */
static struct config *
load(const char *text, char **errors)
{
	char path[] = "/tmp/check_domain.XXXXXX";
	struct config *c;
	FILE *f;
	int fd;

	ck_assert_int_ge(fd = mkstemp(path), 0);
	ck_assert_ptr_nonnull(f = fdopen(fd, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	*errors = NULL;
	c = config_load(path, errors);
	/* The messages name the file: keep them comparable. */
	if (*errors != NULL) {
		char *p, *q = *errors;

		while ((p = strstr(q, path)) != NULL) {
			memmove(p, "F", 1);
			memmove(p + 1, p + strlen(path),
			    strlen(p + strlen(path)) + 1);
			q = p + 1;
		}
	}
	unlink(path);
	return c;
}

#define PROVIDERS \
	"providers = ( { name = \"oa\"; type = \"openai\"; api_key = \"k\"; },\n" \
	"  { name = \"az\"; type = \"mock\"; } );\n"

START_TEST(test_config)
{
	struct config *c;
	char *errors;

	c = load(PROVIDERS
	    "limits = ( { name = \"org\"; rpm = 500; tpm = 200000;\n"
	    "  burst = 20; tpm_burst = 10000;\n"
	    "  targets = [ \"oa/*\", \"az/gpt-4o*\", \"*/claude-[0-9]*\" ];\n"
	    "  learn = true; cooldown = \"domain\"; },\n"
	    "  { name = \"hdr\"; learn = true; targets = [ \"az/x\" ]; } );\n",
	    &errors);
	ck_assert_msg(c != NULL, "%s", errors);
	ck_assert_uint_eq(c->ndomains, 2);
	ck_assert_str_eq(c->domains[0].name, "org");
	ck_assert_uint_eq(c->domains[0].rpm, 500);
	ck_assert_uint_eq(c->domains[0].tpm, 200000);
	ck_assert_uint_eq(c->domains[0].burst, 20);
	ck_assert_uint_eq(c->domains[0].tpm_burst, 10000);
	ck_assert_uint_eq(c->domains[0].ntargets, 3);
	ck_assert_str_eq(c->domains[0].targets[2], "*/claude-[0-9]*");
	ck_assert_int_eq(c->domains[0].learn, 1);
	ck_assert_int_eq(c->domains[0].cooldown, DOMAIN_COOLDOWN_DOMAIN);
	ck_assert_int_eq(c->domains[1].cooldown, DOMAIN_COOLDOWN_TARGET);
	config_free(c);

	c = load(PROVIDERS
	    "limits = (\n"
	    "  { rpm = 5; targets = [ \"oa/*\" ]; },\n"
	    "  { name = \"a\"; rpm = 5; targets = [ \"nope/*\", \"oa\" ]; },\n"
	    "  { name = \"b\"; targets = [ \"oa/x\" ]; },\n"
	    "  { name = \"c\"; rpm = 5; },\n"
	    "  { name = \"d\"; rpm = 5; targets = [ \"oa/*\" ]; cooldown = \"all\"; },\n"
	    "  { name = \"d\"; rpm = 5; targets = [ \"oa/*\" ]; },\n"
	    "  { name = \"e\"; tpm = 5; burst = 3; learn = 1; targets = [ \"oa/*\" ]; rmp = 4; }\n"
	    ");\n",
	    &errors);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(errors,
	    "F:4: limits entry has no name\n"
	    "F:5: limits target 'nope/*': unknown provider 'nope'\n"
	    "F:5: limits target 'oa' must be provider/model (each part may "
	    "use * ? [...])\n"
	    "F:6: limits entry 'b' limits nothing: set rpm, tpm or learn = "
	    "true\n"
	    "F:7: limits entry 'c' has no targets\n"
	    "F:8: cooldown must be \"target\" (a 429 holds the member that "
	    "got it) or \"domain\" (it holds every member)\n"
	    "F:9: duplicate limits entry 'd'\n"
	    "F:10: unknown setting 'rmp' (did you mean 'rpm'?)\n"
	    "F:10: learn must be true or false\n"
	    "F:10: limits entry 'e': burst without rpm\n");
	free(errors);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("domain");
	TCase *tc = tcase_create("domain");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_match);
	tcase_add_test(tc, test_all_or_nothing);
	tcase_add_test(tc, test_wait_for_last);
	tcase_add_test(tc, test_settle);
	tcase_add_test(tc, test_fed);
	tcase_add_test(tc, test_cooldown);
	tcase_add_test(tc, test_learn);
	tcase_add_test(tc, test_pool_view);
	tcase_add_test(tc, test_random);
	tcase_add_test(tc, test_config);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
