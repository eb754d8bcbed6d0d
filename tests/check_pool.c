/*
 * check_pool.c: deployment pools, pure, with fake time: what a member
 * looks like to the choice (budget, cooldown, breaker, queue, slots),
 * each strategy's choice, the member that frees first, a randomised
 * test of headroom and least-inflight against a simple reference and of
 * weighted against its shares; and the pools block of the config, with
 * its errors at their lines.
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

static struct provider_state ps[NT];
static struct target t[NT];
static struct breaker_conf bc = { 1, 0.5, 1000, 60000, 30000, 1 };

/* Target i allowed rpm a minute in bursts of burst (0 rpm: unlimited). */
static void
member_setup(int i, uint32_t rpm, uint32_t burst)
{
	if (t[i].queue.hash != NULL)
		waitq_free(&t[i].queue);
	memset(&ps[i], 0, sizeof ps[i]);
	memset(&t[i], 0, sizeof t[i]);
	t[i].name = (char *)(uintptr_t) "p/m";
	t[i].model = "m";
	t[i].provider = &ps[i];
	rl_setup(&t[i].rl, rpm, 0, burst, 0, T0);
	breaker_init(&t[i].br);
	waitq_init(&t[i].queue, 0);
}

static void
members_free(void)
{
	int i;

	for (i = 0; i < NT; i++)
		waitq_free(&t[i].queue);
}

static void
views(struct pool_member *v, int n, uint32_t concurrency, uint64_t now)
{
	int i;

	for (i = 0; i < n; i++)
		pool_member_view(&v[i], &t[i], concurrency, 10, now);
}

START_TEST(test_strategy_names)
{
	int i;

	for (i = 0; i < POOL_STRATEGY_MAX; i++)
		ck_assert_int_eq(pool_strategy_index(
		                     pool_strategy_name((enum pool_strategy)i)),
		    i);
	ck_assert_str_eq(pool_strategy_name(POOL_HEADROOM), "headroom");
	ck_assert_str_eq(pool_strategy_name(POOL_LEAST_INFLIGHT),
	    "least-inflight");
	ck_assert_int_eq(pool_strategy_index("round-robin"), -1);
	ck_assert_ptr_null(pool_strategy_name(POOL_STRATEGY_MAX));
}
END_TEST

/* A member's view: budget, cooldown, breaker, queue and slots. */
START_TEST(test_member_view)
{
	struct pool_member v;
	struct admission a;
	struct config conf;
	uint64_t wait;
	int i, ticket;

	member_setup(0, 60, 4); /* 4 at once, one a second */
	pool_member_view(&v, &t[0], 0, 10, T0);
	ck_assert_int_eq(v.usable, 1);
	ck_assert_int_eq(v.ready, 1);
	ck_assert_uint_eq(v.wait_ms, 0);
	ck_assert(v.headroom == 1.0);
	rl_take(&t[0].rl, 10, T0);
	pool_member_view(&v, &t[0], 0, 10, T0);
	ck_assert(v.headroom == 0.75);
	for (i = 0; i < 3; i++)
		rl_take(&t[0].rl, 10, T0);
	/* Over budget: not ready, ready again when a request refilled. */
	pool_member_view(&v, &t[0], 0, 10, T0);
	ck_assert_int_eq(v.ready, 0);
	ck_assert_uint_eq(v.wait_ms, 1000);
	ck_assert(v.headroom == 0.0);
	pool_member_view(&v, &t[0], 0, 10, T0 + 1000);
	ck_assert_int_eq(v.ready, 1);

	/* A 429 cools it down: 1 s without Retry-After. */
	rl_on_result(&t[0].rl, LLMGATE_RATE_LIMITED, -1, T0 + 1000);
	pool_member_view(&v, &t[0], 0, 10, T0 + 1500);
	ck_assert_int_eq(v.ready, 0);
	ck_assert_uint_eq(v.wait_ms, 500);
	pool_member_view(&v, &t[0], 0, 10, T0 + 2000);
	ck_assert_int_eq(v.ready, 1);

	/* The provider's concurrency cap: a slot must be free. */
	ps[0].inflight = 2;
	t[0].inflight = 2;
	pool_member_view(&v, &t[0], 2, 10, T0 + 2000);
	ck_assert_int_eq(v.ready, 0);
	ck_assert_uint_eq(v.inflight, 2);
	pool_member_view(&v, &t[0], 3, 10, T0 + 2000);
	ck_assert_int_eq(v.ready, 1);
	ps[0].inflight = 0;
	t[0].inflight = 0;

	/* Someone queued there: a newcomer would wait behind them. */
	memset(&conf, 0, sizeof conf);
	conf.breaker = bc;
	admission_init(&a, &t[0], &conf, 0, 10, 1, LLMGATE_PRIO_NORMAL);
	for (i = 0; i < 4; i++)
		rl_take(&t[0].rl, 10, T0 + 2000);
	ck_assert_int_eq(admission_request(&a, 0, T0 + 2000, &wait),
	    ADMIT_WAIT);
	pool_member_view(&v, &t[0], 0, 10, T0 + 10000);
	ck_assert_uint_eq(v.queued, 1);
	ck_assert_int_eq(v.ready, 0);
	admission_release(&a, T0 + 10000);
	pool_member_view(&v, &t[0], 0, 10, T0 + 10000);
	ck_assert_int_eq(v.ready, 1);

	/* An open breaker: not ready until it half-opens. */
	ticket = breaker_allow(&t[0].br, &bc, T0 + 10000);
	breaker_record(&t[0].br, &bc, ticket, LLMGATE_SERVER_ERROR, T0 + 10000);
	ck_assert_int_eq(breaker_state(&t[0].br, T0 + 10000), BREAKER_OPEN);
	pool_member_view(&v, &t[0], 0, 10, T0 + 10000);
	ck_assert_int_eq(v.ready, 0);
	ck_assert_uint_eq(v.wait_ms, 30000);
	pool_member_view(&v, &t[0], 0, 10, T0 + 40000);
	ck_assert_int_eq(v.ready, 1);
	members_free();
}
END_TEST

/* headroom: the larger share of budget left, then fewest in flight,
 * then the one that went longest ago. */
START_TEST(test_headroom)
{
	struct pool p;
	struct pool_member v[3];
	char seq[8];
	int i;

	member_setup(0, 6, 10); /* refills one in 10 s */
	member_setup(1, 6, 2);
	member_setup(2, 0, 0); /* unlimited */
	pool_init(&p, POOL_HEADROOM, NULL, 2);
	for (i = 0; i < 6; i++) {
		views(v, 2, 0, T0);
		seq[i] = (char)('A' + pool_choose(&p, v, 0));
		rl_take(&t[seq[i] - 'A'].rl, 10, T0);
	}
	seq[6] = '\0';
	/* 10 left of 10 and 2 of 2 tie; then 9/10 > 1/2, and so on. */
	ck_assert_str_eq(seq, "ABAAAA");
	ck_assert_uint_eq(p.picks[0], 5);

	/* Equal budgets: fewer in flight wins; equals take turns. */
	pool_init(&p, POOL_HEADROOM, NULL, 3);
	member_setup(0, 0, 0);
	member_setup(1, 0, 0);
	t[0].inflight = 1;
	views(v, 3, 0, T0);
	ck_assert_int_eq(pool_choose(&p, v, 0), 1);
	ck_assert_int_eq(pool_choose(&p, v, 0), 2);
	ck_assert_int_eq(pool_choose(&p, v, 0), 1);
	/* Avoided members are left out; all avoided: none. */
	ck_assert_int_eq(pool_choose(&p, v, POOL_BIT(1)), 2);
	ck_assert_int_eq(pool_choose(&p, v, POOL_BIT(1) | POOL_BIT(2)), 0);
	ck_assert_int_eq(pool_choose(&p, v, 7), -1);
	ck_assert_uint_eq(pool_ready(&p, v, 0), 3);
	ck_assert_uint_eq(pool_ready(&p, v, POOL_BIT(0)), 2);
	members_free();
}
END_TEST

START_TEST(test_least_inflight)
{
	struct pool p;
	struct pool_member v[2];

	member_setup(0, 6, 10);
	member_setup(1, 6, 2);
	pool_init(&p, POOL_LEAST_INFLIGHT, NULL, 2);
	/* Budgets do not rank: equals take turns while both have some. */
	views(v, 2, 0, T0);
	ck_assert_int_eq(pool_choose(&p, v, 0), 0);
	rl_take(&t[0].rl, 10, T0);
	views(v, 2, 0, T0);
	ck_assert_int_eq(pool_choose(&p, v, 0), 1);
	rl_take(&t[1].rl, 10, T0);
	views(v, 2, 0, T0);
	ck_assert_int_eq(pool_choose(&p, v, 0), 0);
	t[0].inflight = 3;
	t[1].inflight = 1;
	views(v, 2, 0, T0);
	ck_assert_int_eq(pool_choose(&p, v, 0), 1);
	rl_take(&t[1].rl, 10, T0);
	/* Out of budget: skipped whatever its load. */
	views(v, 2, 0, T0);
	ck_assert_int_eq(v[1].ready, 0);
	ck_assert_int_eq(pool_choose(&p, v, 0), 0);
	members_free();
}
END_TEST

START_TEST(test_weighted)
{
	struct pool p;
	struct pool_member v[3];
	uint32_t w[3] = { 2, 1, 1 };
	unsigned n[3] = { 0, 0, 0 };
	char seq[9];
	int i;

	member_setup(0, 0, 0);
	member_setup(1, 0, 0);
	member_setup(2, 0, 0);
	views(v, 3, 0, T0);
	pool_init(&p, POOL_WEIGHTED, w, 3);
	for (i = 0; i < 8; i++)
		seq[i] = (char)('A' + pool_choose(&p, v, 0));
	seq[8] = '\0';
	/* Smooth: the heavy member's turns are spread, not bunched. */
	ck_assert_str_eq(seq, "ABCAABCA");
	/* A member that cannot go is skipped; the others share its turns. */
	for (i = 0; i < 30; i++)
		n[pool_choose(&p, v, POOL_BIT(0))]++;
	ck_assert_uint_eq(n[0], 0);
	ck_assert_uint_eq(n[1], 15);
	ck_assert_uint_eq(n[2], 15);
	members_free();
}
END_TEST

/* No member ready: the one that frees first. */
START_TEST(test_soonest)
{
	struct pool p;
	struct pool_member v[3];

	member_setup(0, 0, 0);
	member_setup(1, 0, 0);
	member_setup(2, 0, 0);
	pool_init(&p, POOL_HEADROOM, NULL, 3);
	rl_on_result(&t[0].rl, LLMGATE_RATE_LIMITED, 3000, T0);
	rl_on_result(&t[1].rl, LLMGATE_RATE_LIMITED, 1000, T0);
	rl_on_result(&t[2].rl, LLMGATE_QUOTA_EXHAUSTED, -1, T0);
	views(v, 3, 0, T0);
	ck_assert_uint_eq(pool_ready(&p, v, 0), 0);
	ck_assert_int_eq(pool_choose(&p, v, 0), -1);
	ck_assert_int_eq(pool_soonest(&p, v, 0), 1);
	ck_assert_int_eq(pool_soonest(&p, v, POOL_BIT(1)), 0);
	v[0].usable = 0;
	ck_assert_int_eq(pool_soonest(&p, v, POOL_BIT(1)), 2);
	ck_assert_int_eq(pool_soonest(&p, v, POOL_BIT(1) | POOL_BIT(2)), -1);
	/* Once passed, the cooldown is gone. */
	views(v, 3, 0, T0 + 1000);
	ck_assert_int_eq(pool_choose(&p, v, 0), 1);
	members_free();
}
END_TEST

/* The reference: the eligible member with the best key, by brute force. */
static int
reference(const struct pool *p, const struct pool_member *v, size_t n,
    uint64_t avoid)
{
	size_t i;
	int best = -1;
	double bh = 0, h;
	uint32_t bi = 0;
	uint64_t bl = 0;

	for (i = 0; i < n; i++) {
		if (!v[i].usable || !v[i].ready || (avoid >> i) & 1)
			continue;
		h = p->strategy == POOL_HEADROOM ? v[i].headroom : 0;
		if (best < 0 || h > bh ||
		    (h == bh &&
		        (v[i].inflight < bi ||
		            (v[i].inflight == bi && p->last[i] < bl)))) {
			best = (int)i;
			bh = h;
			bi = v[i].inflight;
			bl = p->last[i];
		}
	}
	return best;
}

START_TEST(test_random_against_reference)
{
	struct pool p, q;
	struct pool_member v[8];
	uint64_t avoid;
	size_t n = 1, i;
	int round, want, got, s;

	srandom(1234);
	for (s = POOL_HEADROOM; s <= POOL_LEAST_INFLIGHT; s++) {
		for (round = 0; round < 20000; round++) {
			if (round % 100 == 0) {
				n = 1 + (size_t)random() % 8;
				pool_init(&p, (enum pool_strategy)s, NULL, n);
			}
			for (i = 0; i < n; i++) {
				v[i].usable = random() % 10 != 0;
				v[i].ready = random() % 4 != 0;
				v[i].headroom = (double)(random() % 5) / 4;
				v[i].inflight = (uint32_t)(random() % 3);
				v[i].wait_ms = v[i].ready ?
				    0 :
				    (uint64_t)(random() % 1000);
			}
			avoid = random() % 3 == 0 ?
			    (uint64_t)random() % (1u << n) :
			    0;
			q = p;
			want = reference(&q, v, n, avoid);
			got = pool_choose(&p, v, avoid);
			ck_assert_msg(got == want,
			    "round %d: chose %d, the "
			    "reference %d",
			    round, got, want);
			if (got >= 0)
				ck_assert_uint_eq(p.last[got], p.seq);
		}
	}
}
END_TEST

/* weighted over random ready sets: every share within n turns of its
 * weight's, and exactly its weight's over whole rounds. */
START_TEST(test_random_weighted_shares)
{
	struct pool p;
	struct pool_member v[6];
	uint32_t w[6];
	uint64_t picks[6], total;
	size_t n, i;
	int round, k, got;
	double expect;

	srandom(99);
	for (round = 0; round < 200; round++) {
		n = 1 + (size_t)random() % 6;
		total = 0;
		for (i = 0; i < n; i++) {
			w[i] = 1 + (uint32_t)(random() % 10);
			total += w[i];
			memset(&v[i], 0, sizeof v[i]);
			v[i].usable = v[i].ready = 1;
			v[i].headroom = 1;
			picks[i] = 0;
		}
		pool_init(&p, POOL_WEIGHTED, w, n);
		for (k = 1; k <= (int)(3 * total); k++) {
			got = pool_choose(&p, v, 0);
			ck_assert_int_ge(got, 0);
			picks[got]++;
			for (i = 0; i < n; i++) {
				expect = (double)k * w[i] / (double)total;
				ck_assert_msg((double)picks[i] >
				            expect - (double)n &&
				        (double)picks[i] < expect + (double)n,
				    "member %zu: %llu picks after "
				    "%d, weight %u of %llu",
				    i, (unsigned long long)picks[i], k, w[i],
				    (unsigned long long)total);
			}
		}
		for (i = 0; i < n; i++)
			ck_assert_uint_eq(picks[i], 3 * w[i]);
	}
}
END_TEST

/* The pools block. */
static char tmpdir[] = "/tmp/check_pool.XXXXXX";

#define PROVIDERS \
	"providers = (\n" \
	"  { name = \"a\"; type = \"mock\"; },\n" \
	"  { name = \"b\"; type = \"mock\"; }\n" \
	");\n"

/* Load text; NULL and *errors, or the config. */
static struct config *
load(const char *text, char **errors)
{
	struct config *conf;
	char *path;
	FILE *f;

	*errors = NULL;
	xasprintf(&path, "%s/llmgated.conf", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	conf = config_load(path, errors);
	unlink(path);
	free(path);
	return conf;
}

/* text must fail with want (after "FILE:") among its errors. */
static void
fails(const char *text, const char *want)
{
	struct config *conf;
	char *errors;

	conf = load(text, &errors);
	ck_assert_msg(conf == NULL, "loaded: %s", text);
	ck_assert_msg(errors != NULL && strstr(errors, want) != NULL,
	    "errors '%s' lack '%s'", errors ? errors : "(none)", want);
	free(errors);
}

START_TEST(test_config)
{
	struct config *conf;
	const struct pool_conf *pc;
	char *errors;

	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	conf = load(PROVIDERS
	    "pools = ( { name = \"gpt\"; targets = [ \"a/x\", \"b/y\" ]; },\n"
	    "  { name = \"w\"; strategy = \"weighted\"; weights = [ 2, 1 ];\n"
	    "    targets = [ \"a/x\", \"b/z\" ]; max_moves = 5;\n"
	    "    move_on = [ \"overloaded\" ]; } );\n"
	    "routes = ( { name = \"r\"; targets = ( \"gpt\",\n"
	    "    { target = \"w\"; attempts = 2; }, \"a/q\" ); } );\n",
	    &errors);
	ck_assert_msg(conf != NULL, "%s", errors);
	ck_assert_uint_eq(conf->npools, 2);
	pc = config_pool(conf, "gpt");
	ck_assert_ptr_nonnull(pc);
	ck_assert_int_eq(pc->strategy, POOL_HEADROOM);
	ck_assert_uint_eq(pc->ntargets, 2);
	ck_assert_uint_eq(pc->max_moves, 2);
	ck_assert_uint_eq(pc->move_on,
	    (1u << LLMGATE_RATE_LIMITED) | (1u << LLMGATE_OVERLOADED) |
	        (1u << LLMGATE_QUOTA_EXHAUSTED));
	ck_assert_uint_eq(pc->state->weight[1], 1);
	pc = config_pool(conf, "w");
	ck_assert_int_eq(pc->strategy, POOL_WEIGHTED);
	ck_assert_uint_eq(pc->state->weight[0], 2);
	ck_assert_uint_eq(pc->max_moves, 5);
	ck_assert_uint_eq(pc->move_on, 1u << LLMGATE_OVERLOADED);
	ck_assert_str_eq(conf->routes[0].targets[1], "w");
	ck_assert_uint_eq(conf->routes[0].over[1].attempts, 2);
	ck_assert_ptr_null(config_pool(conf, "r"));
	config_free(conf);

	/* Errors name the file and line. */
	fails(PROVIDERS "pools = ( { name = \"p\";\n"
	                "  targets = [ \"a/x\", \"c/y\" ]; } );\n",
	    "llmgated.conf:6: pool target 'c/y': unknown provider 'c'");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\",\n"
	                "  \"q\" ]; } );\n",
	    "llmgated.conf:6: pool target 'q' must be "
	    "provider/model (a pool holds no pools)");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\",\n"
	                "  \"a/x\" ]; } );\n",
	    ":6: pool target 'a/x' is listed twice");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ];\n"
	                "  strategy = \"random\"; } );\n",
	    ":6: unknown strategy 'random' "
	    "(valid: headroom, least-inflight, weighted)");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ];\n"
	                "  strategyy = \"weighted\"; } );\n",
	    ":6: unknown setting "
	    "'strategyy' (did you mean 'strategy'?)");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ];\n"
	                "  weights = [ 2 ]; } );\n",
	    ":6: pool 'p': weights apply only "
	    "to strategy \"weighted\"");
	fails(PROVIDERS
	    "pools = ( { name = \"p\"; targets = [ \"a/x\", "
	    "\"b/x\" ];\n  strategy = \"weighted\"; weights = [ 2 ]; } );\n",
	    ":6: pool 'p' has 1 weights for 2 targets: give one per target");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ];\n"
	                "  strategy = \"weighted\"; weights = [ 0 ]; } );\n",
	    ":6: weight 0: a weight is 1 to 1000");
	fails(PROVIDERS "pools = ( { name = \"a/p\"; targets = [ \"a/x\" ]; "
	                "} );\n",
	    ":5: pool name 'a/p' must not contain '/'");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ]; },\n"
	                "  { name = \"p\"; targets = [ \"b/x\" ]; } );\n",
	    ":6: duplicate pool 'p'");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ ]; } );\n",
	    ":5: pool 'p' has no targets");
	fails(PROVIDERS "pools = ( { targets = [ \"a/x\" ]; } );\n",
	    ":5: pool has no name");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ];\n"
	                "  move_on = [ \"rate_limitted\" ]; } );\n",
	    ":6: move_on: unknown error class 'rate_limitted'");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ];\n"
	                "  move_on = [ \"cancelled\" ]; } );\n",
	    ":6: move_on: 'cancelled' cannot move a call");
	fails(PROVIDERS "pools = ( { name = \"p\"; targets = [ \"a/x\" ];\n"
	                "  max_moves = 1000; } );\n",
	    ":6: max_moves must be at most 100");
	fails(PROVIDERS
	    "pools = ( { name = \"p\"; targets = [ \"a/x\" ]; } );\n"
	    "routes = ( { name = \"p\"; targets = [ \"a/x\" ]; } );\n",
	    ":6: route 'p' has the name of a pool");
	fails(PROVIDERS "routes = ( { name = \"r\"; targets = [ \"nopool\" ]; "
	                "} );\n",
	    ":5: target 'nopool' must be provider/model or a "
	    "pool's name");
	rmdir(tmpdir);
}
END_TEST

static Suite *
pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("pool");

	tcase_add_test(tc, test_strategy_names);
	tcase_add_test(tc, test_member_view);
	tcase_add_test(tc, test_headroom);
	tcase_add_test(tc, test_least_inflight);
	tcase_add_test(tc, test_weighted);
	tcase_add_test(tc, test_soonest);
	tcase_add_test(tc, test_random_against_reference);
	tcase_add_test(tc, test_random_weighted_shares);
	tcase_add_test(tc, test_config);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
