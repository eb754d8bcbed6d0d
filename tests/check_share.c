/*
 * check_share.c: client classes, pure, with fake time: the wait queue's
 * weighted fair shares between classes (exact ratios, idle time is no
 * credit, and a randomised run against a simple reference), max_share
 * buckets, token budgets held and settled (no overspending however many
 * are in flight, resets at the UTC minute and day), the class a peer
 * falls in and the rule that a name only narrows, and the clients
 * block's errors.
 */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmgated.h"

struct item {
	int id;
	uint64_t client;
	unsigned cls;
	unsigned level;
	struct waitq_node node;
};

#define ITEM(n) ((struct item *)((char *)(n)-offsetof(struct item, node)))

static const enum llmgate_priority prios[] = { LLMGATE_PRIO_HIGH,
	LLMGATE_PRIO_NORMAL, LLMGATE_PRIO_LOW };

static void
push(struct waitq *wq, struct item *it, uint64_t client, uint64_t ckey,
    uint32_t weight, unsigned level)
{
	it->client = client;
	it->cls = (unsigned)ckey;
	it->level = level;
	it->node.ckey = ckey;
	it->node.weight = weight;
	ck_assert_int_eq(waitq_push(wq, &it->node, client, prios[level]), 0);
}

/* Two classes always queued, weights 3 and 1: 3 of every 4 serves. */
START_TEST(test_weights_exact)
{
	struct waitq wq;
	struct item *it = calloc(2000, sizeof *it);
	int i, served[3] = { 0, 0, 0 };
	struct waitq_node *n;

	waitq_init(&wq, 0);
	for (i = 0; i < 1000; i++) {
		push(&wq, &it[i], 10 + (uint64_t)(i % 4), 1, 3, 1);
		push(&wq, &it[1000 + i], 20, 2, 1, 1);
	}
	for (i = 0; i < 400; i++) {
		ck_assert_ptr_nonnull(n = waitq_pop(&wq));
		served[ITEM(n)->cls]++;
		/* Never more than a serve ahead of the exact ratio. */
		ck_assert_int_le(abs(served[1] - 3 * served[2]), 3);
	}
	ck_assert_int_eq(served[1], 300);
	ck_assert_int_eq(served[2], 100);
	waitq_free(&wq);
	free(it);
}
END_TEST

/* A class that was idle rejoins at the virtual time: no burst owed. */
START_TEST(test_idle_no_credit)
{
	struct waitq wq;
	struct item *it = calloc(300, sizeof *it);
	int i, b = 0;
	struct waitq_node *n;

	waitq_init(&wq, 0);
	for (i = 0; i < 200; i++)
		push(&wq, &it[i], 1, 1, 1, 1);
	for (i = 0; i < 100; i++)
		ck_assert_ptr_nonnull(waitq_pop(&wq));
	/* Class 2 arrives late with 50: it alternates, it does not take 50
	 * in a row for the time it was away. */
	for (i = 0; i < 50; i++)
		push(&wq, &it[200 + i], 2, 2, 1, 1);
	for (i = 0; i < 20; i++) {
		n = waitq_pop(&wq);
		b += ITEM(n)->cls == 2;
	}
	ck_assert_int_ge(b, 9);
	ck_assert_int_le(b, 11);
	waitq_free(&wq);
	free(it);
}
END_TEST

/* Priorities stay strict above the classes; skip passes over a class. */
START_TEST(test_priority_and_skip)
{
	struct waitq wq;
	struct item it[4];
	struct waitq_node *n;

	memset(it, 0, sizeof it);
	waitq_init(&wq, 0);
	push(&wq, &it[0], 1, 1, 1000, 2); /* heavy but low */
	push(&wq, &it[1], 2, 2, 1, 1);
	push(&wq, &it[2], 3, 3, 1, 1);
	ck_assert_ptr_eq(waitq_peek(&wq), &it[1].node);
	n = waitq_peek_if(&wq, NULL, NULL);
	ck_assert_ptr_eq(n, &it[1].node);
	waitq_take(&wq, n);
	ck_assert_ptr_eq(waitq_pop(&wq), &it[2].node);
	ck_assert_ptr_eq(waitq_pop(&wq), &it[0].node);
	ck_assert_ptr_null(waitq_pop(&wq));
	waitq_free(&wq);
}
END_TEST

static int
skip_class2(struct waitq_node *n, void *arg)
{
	(void)arg;
	return n->ckey == 2;
}

START_TEST(test_skip)
{
	struct waitq wq;
	struct item it[3];

	memset(it, 0, sizeof it);
	waitq_init(&wq, 0);
	push(&wq, &it[0], 1, 2, 1, 1);
	push(&wq, &it[1], 2, 3, 1, 1);
	push(&wq, &it[2], 3, 2, 1, 0);
	/* Class 2's high entry is passed over, and so is its normal one. */
	ck_assert_ptr_eq(waitq_peek_if(&wq, skip_class2, NULL), &it[1].node);
	waitq_take(&wq, &it[1].node);
	ck_assert_ptr_null(waitq_peek_if(&wq, skip_class2, NULL));
	ck_assert_uint_eq(waitq_len(&wq), 2);
	waitq_remove(&wq, &it[0].node);
	waitq_remove(&wq, &it[2].node);
	ck_assert_uint_eq(waitq_len(&wq), 0);
	waitq_free(&wq);
}
END_TEST

/*
 * Random pushes, pops and cancels over 4 classes of weights 1, 2, 3, 5,
 * checked at every pop against a plain reference of start-time fair
 * queueing per level: the level is the highest queued, the class has the
 * lowest start tag (ties: the class seen first at this queue), FIFO
 * within a client; and the tags move as the reference says.
 */
#define R_CLASSES 4
#define R_N       400
START_TEST(test_random_model)
{
	static const uint32_t weight[R_CLASSES] = { 1, 2, 3, 5 };
	struct ref {
		unsigned len[WAITQ_LEVELS];
		uint64_t start[WAITQ_LEVELS], finish[WAITQ_LEVELS];
		int order; /* first seen: the tie-break */
	} ref[R_CLASSES];
	uint64_t vtime[WAITQ_LEVELS] = { 0, 0, 0 };
	struct waitq wq;
	struct item *it = calloc(R_N, sizeof *it);
	int queued[R_N], seq[R_N], next_seq = 0, seen = 0, i, j, k, op, c;
	unsigned rnd = 777, l, lv, best;
	struct waitq_node *n;
	struct item *p;

	memset(ref, 0, sizeof ref);
	for (c = 0; c < R_CLASSES; c++)
		ref[c].order = -1;
	memset(queued, 0, sizeof queued);
	waitq_init(&wq, 0);
	for (k = 0; k < 300000; k++) {
		rnd = rnd * 1103515245 + 12345;
		op = (int)((rnd >> 16) % 10);
		i = (int)((rnd >> 4) % R_N);
		if (op < 5) {
			if (queued[i])
				continue;
			c = (int)((rnd >> 8) % R_CLASSES);
			lv = (rnd >> 12) % 3;
			if (ref[c].order < 0)
				ref[c].order = seen++;
			if (ref[c].len[lv] == 0)
				ref[c].start[lv] =
				    ref[c].finish[lv] > vtime[lv] ?
				    ref[c].finish[lv] :
				    vtime[lv];
			ref[c].len[lv]++;
			push(&wq, &it[i], (uint64_t)c * 10 + (rnd >> 20) % 3,
			    (uint64_t)c + 1, weight[c], lv);
			it[i].id = i;
			queued[i] = 1;
			seq[i] = next_seq++;
		} else if (op < 8) {
			n = waitq_pop(&wq);
			for (l = 0; l < WAITQ_LEVELS; l++) {
				for (c = 0; c < R_CLASSES; c++)
					if (ref[c].len[l] != 0)
						break;
				if (c < R_CLASSES)
					break;
			}
			if (l == WAITQ_LEVELS) {
				ck_assert_ptr_null(n);
				continue;
			}
			ck_assert_ptr_nonnull(n);
			best = R_CLASSES;
			for (c = 0; c < R_CLASSES; c++) {
				if (ref[c].len[l] == 0)
					continue;
				if (best == R_CLASSES ||
				    ref[c].start[l] < ref[best].start[l] ||
				    (ref[c].start[l] == ref[best].start[l] &&
				        ref[c].order < ref[best].order))
					best = (unsigned)c;
			}
			p = ITEM(n);
			ck_assert_uint_eq(p->level, l);
			ck_assert_uint_eq(p->cls, best + 1);
			for (j = 0; j < R_N; j++) {
				if (queued[j] && j != p->id &&
				    it[j].client == p->client &&
				    it[j].level == p->level &&
				    it[j].cls == p->cls)
					ck_assert_int_gt(seq[j], seq[p->id]);
			}
			vtime[l] = ref[best].start[l];
			ref[best].finish[l] =
			    ref[best].start[l] + WAITQ_VSCALE / weight[best];
			ref[best].start[l] = ref[best].finish[l];
			ref[best].len[l]--;
			queued[p->id] = 0;
		} else {
			if (queued[i]) {
				ref[it[i].cls - 1].len[it[i].level]--;
				queued[i] = 0;
			}
			waitq_remove(&wq, &it[i].node);
		}
	}
	waitq_free(&wq);
	free(it);
}
END_TEST

/* A class held to 30% of a target of 600 rpm: 180 a minute, then waits. */
START_TEST(test_max_share)
{
	struct ratelimit rl;
	struct share_tab tab;
	struct client_class k;
	uint64_t now = 1000000, t;
	int n = 0;

	memset(&rl, 0, sizeof rl);
	memset(&tab, 0, sizeof tab);
	memset(&k, 0, sizeof k);
	k.name = (char *)"batch";
	k.key = 7;
	k.max_share = 0.3;
	rl_setup(&rl, 600, 0, 60, 0, now);
	/* The burst's share first: 30% of 60. */
	while (share_wait_ms(&tab, &rl, &k, 10, now) == 0) {
		share_take(&tab, &rl, &k, 10, now);
		n++;
	}
	ck_assert_int_eq(n, 18);
	/* Then 180 a minute: one every 333 ms. */
	n = 0;
	for (t = now; t < now + 60000; t += 10) {
		if (share_wait_ms(&tab, &rl, &k, 10, t) == 0) {
			share_take(&tab, &rl, &k, 10, t);
			n++;
		}
	}
	ck_assert_int_ge(n, 179);
	ck_assert_int_le(n, 181);
	/* No share (1): never held. */
	k.max_share = 1;
	ck_assert_uint_eq(share_wait_ms(&tab, &rl, &k, 10, t), 0);
	/* A target without limits has nothing to share. */
	k.max_share = 0.3;
	memset(&rl, 0, sizeof rl);
	ck_assert_uint_eq(share_wait_ms(&tab, &rl, &k, 10, t), 0);
	share_free(&tab);
}
END_TEST

static struct client_class *
budget_class(const char *name, uint32_t tpm, uint32_t tpd)
{
	static struct client_class k;

	clients_free_all();
	memset(&k, 0, sizeof k);
	k.name = (char *)(uintptr_t)name;
	k.weight = 1;
	k.max_share = 1;
	k.tokens_per_minute = tpm;
	k.tokens_per_day = tpd;
	return &k;
}

/*
 * Many admissions in flight together hold their estimates: the one that
 * would pass the day's budget is refused while the others are still
 * unsettled (check-then-charge would let all of them through).
 */
START_TEST(test_budget_no_overspend)
{
	struct client_class *k = budget_class("b1", 0, 1000);
	uint64_t day = 86400000ULL, wall = 20000 * day + 3600000, retry;
	char msg[320];
	int i, ok = 0;

	for (i = 0; i < 50; i++) {
		if (clients_reserve(k, 100, wall, &retry) == 0)
			ok++;
		else {
			ck_assert_uint_eq(retry, day - 3600000);
		}
	}
	ck_assert_int_eq(ok, 10);
	ck_assert_int_eq(clients_reserve(k, 1, wall, &retry), CLIENTS_OVER_DAY);
	clients_budget_msg(k, CLIENTS_OVER_DAY, 1, retry, msg, sizeof msg);
	ck_assert_msg(strstr(msg, "tokens_per_day") != NULL &&
	        strstr(msg, "resets in 82800 s") != NULL,
	    "%s", msg);
	/* Settled at 30 each: room for more again. */
	for (i = 0; i < 10; i++)
		clients_settle(k, 100, 30, wall);
	ck_assert_uint_eq(clients_state(k)->day_used, 300);
	ck_assert_uint_eq(clients_state(k)->reserved, 0);
	ck_assert_int_eq(clients_reserve(k, 700, wall, &retry), 0);
	ck_assert_int_eq(clients_reserve(k, 1, wall, &retry), CLIENTS_OVER_DAY);
	/* A use past the estimate is charged in full. */
	clients_settle(k, 700, 900, wall);
	ck_assert_uint_eq(clients_state(k)->day_used, 1200);
	ck_assert_uint_ne(clients_budget_wait(k, wall), 0);
	/* The next UTC day starts from nothing. */
	ck_assert_int_eq(clients_reserve(k, 1000, wall + day, &retry), 0);
	ck_assert_int_eq(clients_reserve(k, 1, wall + day, &retry),
	    CLIENTS_OVER_DAY);
	clients_free_all();
}
END_TEST

START_TEST(test_budget_minute)
{
	struct client_class *k = budget_class("b2", 500, 0);
	uint64_t wall = 1000ULL * 60000 + 15000, retry;

	ck_assert_int_eq(clients_reserve(k, 400, wall, &retry), 0);
	ck_assert_int_eq(clients_reserve(k, 200, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	ck_assert_uint_eq(retry, 45000);
	clients_settle(k, 400, 400, wall);
	/* Next minute: used starts over. */
	ck_assert_int_eq(clients_reserve(k, 500, wall + 45000, &retry), 0);
	clients_free_all();
}
END_TEST

/*
 * A report may claim any token count (a lease's report, an upstream's
 * usage): the used count saturates, and the check does not wrap past it
 * into room again.
 */
START_TEST(test_budget_huge_report)
{
	struct client_class *k = budget_class("b3", 500, 1000);
	uint64_t wall = 1000ULL * 60000 + 15000, retry;

	ck_assert_int_eq(clients_reserve(k, 10, wall, &retry), 0);
	clients_settle(k, 10, UINT64_MAX - 5, wall);
	clients_settle(k, 0, UINT64_MAX, wall);
	ck_assert_uint_eq(clients_state(k)->day_used, UINT64_MAX);
	ck_assert_int_eq(clients_reserve(k, 1, wall, &retry), CLIENTS_OVER_DAY);
	ck_assert_int_eq(clients_reserve(k, 0, wall, &retry), CLIENTS_OVER_DAY);
	ck_assert_uint_ne(clients_budget_wait(k, wall), 0);
	clients_free_all();
}
END_TEST

/*
 * A cluster's class budget: what this host used is told once (its delta),
 * the cluster's total as read back replaces it (no double count), and a
 * call is checked against the total, this host's use since, and every
 * host's holds; the refusal says the cluster's figures.
 */
START_TEST(test_budget_cluster)
{
	struct client_class *k = budget_class("c1", 1000, 0);
	uint64_t wall = 1000ULL * 60000 + 15000, retry, now = 5000;
	struct clients_sync s;
	struct client_state *st;
	json_t *a;
	char msg[320];

	clients_cluster(1, 0);
	st = clients_state(k);
	ck_assert_int_eq(clients_reserve(k, 300, wall, &retry), 0);
	/* A hold to tell: due at once. */
	ck_assert_int_eq(clients_sync_begin(k, wall, now, 100, &s), 1);
	ck_assert_uint_eq(s.held, 300);
	ck_assert_uint_eq(s.minute_delta, 0);
	ck_assert_uint_eq(s.minute, wall / 60000);
	/* One at a time: none while that one is unanswered. */
	ck_assert_int_eq(clients_sync_begin(k, wall, now + 500, 100, &s), 0);
	ck_assert_int_eq(clients_sync_late(now + 200, 500), 0);
	ck_assert_int_eq(clients_sync_late(now + 600, 500), 1);
	/* Another host used 400 this minute and holds 200. */
	clients_sync_end(&s, 1, 400, 400, 200);
	ck_assert_int_eq(clients_sync_late(now + 600, 500), 0);
	/* 400 used + 300 held here + 200 held there: 100 left. */
	ck_assert_int_eq(clients_reserve(k, 101, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	clients_budget_msg(k, CLIENTS_OVER_MINUTE, 101, retry, msg, sizeof msg);
	ck_assert_msg(strstr(msg,
	                  "has used 400 of its tokens_per_minute of "
	                  "1000 across the cluster (500 more held") != NULL,
	    "%s", msg);
	ck_assert_int_eq(clients_reserve(k, 100, wall, &retry), 0);
	/* Settled here: 250 used, told once as a delta. */
	clients_settle(k, 300, 250, wall);
	clients_settle(k, 100, 0, wall);
	ck_assert_int_eq(clients_sync_begin(k, wall, now + 10, 100, &s), 1);
	ck_assert_uint_eq(s.minute_delta, 250);
	ck_assert_uint_eq(s.held, 0);
	/* Before the answer: the total last seen plus this host's 250. */
	a = clients_status_json(&(struct config){ .classes = k, .nclasses = 1 },
	    wall);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_array_get(a, 0),
	                         "tokens_minute")),
	    650);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0),
	                     "budget_scope")),
	    "cluster");
	json_decref(a);
	/* The answer has it in: 650, not 900. */
	clients_sync_end(&s, 1, 650, 650, 0);
	ck_assert_int_eq(clients_reserve(k, 351, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	ck_assert_int_eq(clients_reserve(k, 350, wall, &retry), 0);
	clients_settle(k, 350, 0, wall);
	/* Nothing changed: read again only after the poll interval. */
	ck_assert_int_eq(clients_sync_begin(k, wall, now + 50, 100, &s), 0);
	ck_assert_int_eq(clients_sync_begin(k, wall, now + 120, 100, &s), 1);
	ck_assert_uint_eq(s.minute_delta, 0);
	/* An answer for a minute that has passed meanwhile is not taken. */
	clients_settle(k, 0, 10, wall + 45000);
	clients_sync_end(&s, 1, 5000, 5000, 0);
	ck_assert_int_eq(clients_reserve(k, 990, wall + 45000, &retry), 0);
	/* Redis lost: an answer that never came counts nothing twice. */
	ck_assert_int_eq(clients_sync_begin(k, wall + 45000, now + 300, 100,
	                     &s),
	    1);
	ck_assert_uint_eq(s.minute_delta, 10);
	clients_sync_end(&s, 0, 0, 0, 0);
	ck_assert_int_eq(clients_sync_begin(k, wall + 45000, now + 310, 100,
	                     &s),
	    0);
	ck_assert_uint_eq(st->minute_sent, 10);
	clients_settle(k, 990, 0, wall + 45000);
	clients_cluster(0, 0);
	clients_free_all();
}
END_TEST

/*
 * A report may claim any count: a host tells the cluster 10^12 of a window
 * at most, once, not 10^12 every tick until Redis's signed 64-bit total
 * overflows (INCRBY then fails the script and takes the cluster down).
 */
START_TEST(test_budget_cluster_huge)
{
	struct client_class *k = budget_class("c4", 500, 1000);
	uint64_t wall = 1000ULL * 60000 + 15000, now = 1000, day = 0, retry;
	struct clients_sync s;
	int i;

	clients_cluster(1, 0);
	ck_assert_int_eq(clients_reserve(k, 10, wall, &retry), 0);
	clients_settle(k, 10, UINT64_MAX, wall);
	for (i = 0; i < 100; i++, now += 100) {
		if (clients_sync_begin(k, wall, now, 100, &s) == 0)
			continue;
		day += s.day_delta;
		clients_sync_end(&s, 1, 1000000000000ULL, day, 0);
	}
	ck_assert_uint_eq(day, 1000000000000ULL);
	/* Still over here. */
	ck_assert_int_eq(clients_reserve(k, 1, wall, &retry), CLIENTS_OVER_DAY);
	clients_cluster(0, 0);
	clients_free_all();
}
END_TEST

/*
 * Redis away: each host keeps to its share of a class's budget (the
 * limit / hosts, rounded up) besides the cluster's use as last seen;
 * the other hosts' holds, which may be over by now, no longer count.
 */
START_TEST(test_budget_cluster_share)
{
	struct client_class *k = budget_class("c2", 1000, 0);
	uint64_t wall = 1000ULL * 60000 + 15000, retry;
	struct clients_sync s;
	char msg[320];

	clients_cluster(1, 0);
	ck_assert_int_eq(clients_sync_begin(k, wall, 1000, 100, &s), 1);
	clients_sync_end(&s, 1, 100, 100, 900);
	ck_assert_int_eq(clients_reserve(k, 1, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	clients_cluster(0, 3);
	/* 334 of this host's own; the cluster's 100 does not stop it. */
	ck_assert_int_eq(clients_reserve(k, 335, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	clients_budget_msg(k, CLIENTS_OVER_MINUTE, 335, retry, msg, sizeof msg);
	ck_assert_msg(strstr(msg, "has used 0 of this host's share (1/3") !=
	        NULL,
	    "%s", msg);
	ck_assert_int_eq(clients_reserve(k, 334, wall, &retry), 0);
	clients_settle(k, 334, 334, wall);
	ck_assert_int_eq(clients_reserve(k, 1, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	/* The cluster's use as last seen still counts: 100 + 334 here. */
	clients_cluster(0, 1);
	ck_assert_int_eq(clients_reserve(k, 567, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	ck_assert_int_eq(clients_reserve(k, 566, wall, &retry), 0);
	clients_settle(k, 566, 0, wall);
	clients_cluster(0, 0);
	clients_free_all();
}
END_TEST

/*
 * A restart restores a class's use from the state file; with a cluster,
 * that use was told to Redis before: it is not told again (the cluster
 * would count it twice), and it still counts here until Redis answers.
 */
START_TEST(test_budget_cluster_restored)
{
	struct client_class *k = budget_class("c3", 1000, 5000);
	uint64_t wall = 1000ULL * 60000 + 15000, retry;
	struct clients_sync s;
	json_t *saved;

	saved = json_pack("[{s:s, s:I, s:I, s:I, s:I}]", "name", "c3", "minute",
	    (json_int_t)(wall / 60000), "minute_used", (json_int_t)600, "day",
	    (json_int_t)(wall / 86400000), "day_used", (json_int_t)2000);
	clients_load_json(&(struct config){ .classes = k, .nclasses = 1 },
	    saved, wall);
	json_decref(saved);
	clients_cluster(1, 0);
	ck_assert_int_eq(clients_reserve(k, 401, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	ck_assert_int_eq(clients_sync_begin(k, wall, 1000, 100, &s), 1);
	ck_assert_uint_eq(s.minute_delta, 0);
	ck_assert_uint_eq(s.day_delta, 0);
	/* The cluster has it, and another host's 100. */
	clients_sync_end(&s, 1, 700, 2100, 0);
	ck_assert_int_eq(clients_reserve(k, 301, wall, &retry),
	    CLIENTS_OVER_MINUTE);
	ck_assert_int_eq(clients_reserve(k, 300, wall, &retry), 0);
	clients_settle(k, 300, 300, wall);
	ck_assert_int_eq(clients_sync_begin(k, wall, 1010, 100, &s), 1);
	ck_assert_uint_eq(s.minute_delta, 300);
	ck_assert_uint_eq(s.day_delta, 300);
	clients_sync_end(&s, 1, 1000, 2400, 0);
	clients_cluster(0, 0);
	clients_free_all();
}
END_TEST

/*
 * A restart while Redis is away (or before the last tick told it): the use
 * the cluster was not told yet is told after the restart, as it would
 * have been when Redis came back; what it was told is not told again.
 */
START_TEST(test_budget_cluster_restart_unsent)
{
	struct client_class *k = budget_class("c5", 1000, 5000);
	struct config conf = { .classes = k, .nclasses = 1 };
	uint64_t wall = 1000ULL * 60000 + 15000, retry;
	struct clients_sync s;
	json_t *saved;

	clients_cluster(1, 0);
	ck_assert_int_eq(clients_reserve(k, 100, wall, &retry), 0);
	clients_settle(k, 100, 100, wall);
	ck_assert_int_eq(clients_sync_begin(k, wall, 1000, 100, &s), 1);
	ck_assert_uint_eq(s.minute_delta, 100);
	clients_sync_end(&s, 1, 100, 100, 0);
	/* Redis away: 250 more used here, then a restart. */
	clients_cluster(0, 2);
	ck_assert_int_eq(clients_reserve(k, 250, wall, &retry), 0);
	clients_settle(k, 250, 250, wall);
	saved = clients_save_json(wall);
	clients_free_all();
	k->st = NULL; /* the cache of the state just freed */
	clients_load_json(&conf, saved, wall);
	json_decref(saved);
	clients_cluster(1, 0);
	ck_assert_int_eq(clients_sync_begin(k, wall, 5000, 100, &s), 1);
	ck_assert_uint_eq(s.minute_delta, 250);
	ck_assert_uint_eq(s.day_delta, 250);
	clients_sync_end(&s, 1, 350, 350, 0);
	/* A state file without the counts: all of it was told. */
	saved = json_pack("[{s:s, s:I, s:I, s:I, s:I}]", "name", "c5", "minute",
	    (json_int_t)(wall / 60000), "minute_used", (json_int_t)600, "day",
	    (json_int_t)(wall / 86400000), "day_used", (json_int_t)2000);
	clients_free_all();
	k->st = NULL; /* the cache of the state just freed */
	clients_load_json(&conf, saved, wall);
	json_decref(saved);
	ck_assert_int_eq(clients_sync_begin(k, wall, 9000, 100, &s), 1);
	ck_assert_uint_eq(s.minute_delta, 0);
	ck_assert_uint_eq(s.day_delta, 0);
	clients_sync_end(&s, 1, 600, 2000, 0);
	clients_cluster(0, 0);
	clients_free_all();
}
END_TEST

/*
 * A lease report may claim any count, and counts saturate: status shows
 * such a class's use as the largest JSON integer, not -1, and the state
 * file keeps it, so that a restart does not forgive it.
 */
START_TEST(test_budget_saturated)
{
	struct client_class *k = budget_class("c6", 1000, 5000);
	struct config conf = { .classes = k, .nclasses = 1 };
	uint64_t wall = 1000ULL * 60000 + 15000, retry;
	json_t *a, *saved;

	clients_settle(k, 0, UINT64_MAX, wall);
	a = clients_status_json(&conf, wall);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_array_get(a, 0),
	                         "tokens_minute")),
	    INT64_MAX);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_array_get(a, 0),
	                         "tokens_day")),
	    INT64_MAX);
	json_decref(a);
	saved = clients_save_json(wall);
	clients_free_all();
	k->st = NULL; /* the cache of the state just freed */
	clients_load_json(&conf, saved, wall);
	json_decref(saved);
	ck_assert_int_eq(clients_reserve(k, 1, wall, &retry), CLIENTS_OVER_DAY);
	clients_free_all();
}
END_TEST

static struct config *
load(const char *text, char **errors)
{
	char path[] = "/tmp/check_share.XXXXXX";
	struct config *c;
	int fd = mkstemp(path);
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	*errors = NULL;
	c = config_load(path, errors);
	unlink(path);
	return c;
}

/* First match wins; a name picks only among what the uid allows. */
START_TEST(test_match)
{
	char *errors, conf[1024];
	struct config *c;
	struct client_ident id;
	uid_t me = getuid();

	snprintf(conf, sizeof conf,
	    "clients = (\n"
	    " { name = \"batch\"; match = [ \"uid:%ld\", \"name:batch-*\" ];"
	    "   weight = 1; max_share = 0.3; max_priority = \"low\"; },\n"
	    " { name = \"web\"; match = [ \"unit:web-*.service\" ];"
	    "   weight = 3; },\n"
	    " { name = \"mine\"; match = \"uid:%ld\"; weight = 2; },\n"
	    " { name = \"tok\"; match = \"token:ci-*\"; },\n"
	    " { name = \"default\"; weight = 1; tokens_per_day = 5000; }\n"
	    ");\n",
	    (long)me, (long)me);
	c = load(conf, &errors);
	ck_assert_msg(c != NULL, "%s", errors);
	ck_assert_uint_eq(c->nclasses, 5);
	memset(&id, 0, sizeof id);
	id.uid = me;
	ck_assert_str_eq(clients_match(c, &id)->name, "mine");
	snprintf(id.name, sizeof id.name, "batch-7");
	ck_assert_str_eq(clients_match(c, &id)->name, "batch");
	ck_assert_int_eq(clients_priority(clients_match(c, &id),
	                     LLMGATE_PRIO_HIGH),
	    LLMGATE_PRIO_LOW);
	/* Another uid naming itself batch-7 stays where its uid puts it. */
	id.uid = me + 1;
	ck_assert_str_eq(clients_match(c, &id)->name, "default");
	snprintf(id.unit, sizeof id.unit, "web-2.service");
	ck_assert_str_eq(clients_match(c, &id)->name, "web");
	memset(&id, 0, sizeof id);
	id.uid = (uid_t)-1;
	snprintf(id.token, sizeof id.token, "ci-main");
	ck_assert_str_eq(clients_match(c, &id)->name, "tok");
	ck_assert_str_eq(clients_match(c, NULL)->name, "default");
	config_free(c);
	clients_free_all();
}
END_TEST

START_TEST(test_config_errors)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "clients = ( { name = \"a\"; match = \"name:x\"; } );",
		    "a name is the client's own claim" },
		{ "clients = ( { name = \"a\"; match = \"group:x\"; } );",
		    "unknown kind 'group'" },
		{ "clients = ( { name = \"a\"; match = \"user:no-such-user-"
		  "here\"; } );",
		    "unknown user" },
		{ "clients = ( { name = \"a\"; } );", "has no match" },
		{ "clients = ( { name = \"default\"; match = \"uid:1\"; } );",
		    "it has no match" },
		{ "clients = ( { name = \"a\"; match = \"uid:1\"; },\n"
		  " { name = \"a\"; match = \"uid:2\"; } );",
		    "2: duplicate client class 'a'" },
		{ "clients = ( { name = \"a b\"; match = \"uid:1\"; } );",
		    "must be letters" },
		{ "clients = ( { name = \"a\"; match = \"uid:1\"; "
		  "max_share = 1.5; } );",
		    "max_share" },
		{ "clients = ( { name = \"a\"; match = \"uid:1\"; "
		  "weight = 0; } );",
		    "weight" },
		{ "clients = ( { name = \"a\"; match = \"uid:1\"; "
		  "max_priority = \"urgent\"; } );",
		    "max_priority must be" },
		{ "clients = ( { name = \"a\"; match = \"uid:x\"; } );",
		    "a uid is a number" },
		{ "clients = ( { name = \"a\"; match = \"uid:1\"; wieght = 2; "
		  "} );",
		    "wieght" },
	};
	struct config *c;
	char *errors;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c = load(cases[i].text, &errors);
		ck_assert_msg(c == NULL, "case %zu loaded", i);
		ck_assert_msg(errors != NULL &&
		        strstr(errors, cases[i].want) != NULL,
		    "case %zu: want '%s' in: %s", i, cases[i].want,
		    errors != NULL ? errors : "(none)");
		free(errors);
	}
}
END_TEST

/* max_conns: counted in up to the cap, refused (not counted) past it,
 * counted out once; 0 is no cap. */
START_TEST(test_conn_cap)
{
	struct client_class k = { .name = (char *)"root", .max_conns = 2 };
	struct client_state *a = NULL, *b = NULL, *c = NULL;
	char msg[160];

	ck_assert_int_eq(clients_conn_enter(&k, &a, msg, sizeof msg), 0);
	ck_assert_int_eq(clients_conn_enter(&k, &b, msg, sizeof msg), 0);
	ck_assert_int_eq(clients_conn_enter(&k, &c, msg, sizeof msg), -1);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(msg,
	    "too many connections for client class 'root' (limit 2)");
	ck_assert_uint_eq(clients_state(&k)->conns, 2);
	clients_conn_leave(&a);
	ck_assert_ptr_null(a);
	clients_conn_leave(&a); /* twice is once */
	ck_assert_uint_eq(clients_state(&k)->conns, 1);
	ck_assert_int_eq(clients_conn_enter(&k, &c, msg, sizeof msg), 0);
	k.max_conns = 0;
	ck_assert_int_eq(clients_conn_enter(&k, &a, msg, sizeof msg), 0);
	ck_assert_uint_eq(clients_state(&k)->conns, 3);
	clients_conn_leave(&a);
	clients_conn_leave(&b);
	clients_conn_leave(&c);
	ck_assert_uint_eq(clients_state(&k)->conns, 0);
	clients_free_all();
}
END_TEST

/* The unit from a cgroup file's text, v2 and v1, nested and none. */
START_TEST(test_unit_parse)
{
	static const struct {
		const char *text, *unit;
	} cases[] = {
		{ "0::/system.slice/web-1.service\n", "web-1.service" },
		{ "0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
		  "run-r1.scope\n",
		    "run-r1.scope" },
		{ "0::/system.slice/batch.service/worker\n", "batch.service" },
		{ "12:cpu:/\n1:name=systemd:/system.slice/cron.service\n",
		    "cron.service" },
		{ "0::/\n", "" },
		{ "0::/docker/0123abcd\n", "" },
		{ "garbage", "" },
		{ "0::/system.slice/.service\n", "" },
	};
	char text[256], unit[CLIENT_UNIT_MAX], small[8];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "%s", cases[i].text);
		clients_unit_parse(text, unit, sizeof unit);
		ck_assert_msg(strcmp(unit, cases[i].unit) == 0,
		    "case %zu: '%s', want '%s'", i, unit, cases[i].unit);
	}
	/* A unit longer than the room is not cut: none. */
	snprintf(text, sizeof text, "%s", cases[0].text);
	clients_unit_parse(text, small, sizeof small);
	ck_assert_str_eq(small, "");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("share");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	log_init(0);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_weights_exact);
	tcase_add_test(tc, test_idle_no_credit);
	tcase_add_test(tc, test_priority_and_skip);
	tcase_add_test(tc, test_skip);
	tcase_add_test(tc, test_random_model);
	tcase_add_test(tc, test_max_share);
	tcase_add_test(tc, test_budget_no_overspend);
	tcase_add_test(tc, test_budget_minute);
	tcase_add_test(tc, test_budget_huge_report);
	tcase_add_test(tc, test_budget_cluster);
	tcase_add_test(tc, test_budget_cluster_huge);
	tcase_add_test(tc, test_budget_cluster_share);
	tcase_add_test(tc, test_budget_cluster_restored);
	tcase_add_test(tc, test_budget_cluster_restart_unsent);
	tcase_add_test(tc, test_budget_saturated);
	tcase_add_test(tc, test_match);
	tcase_add_test(tc, test_config_errors);
	tcase_add_test(tc, test_unit_parse);
	tcase_add_test(tc, test_conn_cap);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
