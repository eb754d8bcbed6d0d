/*
 * check_waitq.c: the admission wait queue: priority order, FIFO within a
 * client, turns between clients (one client's thousand entries do not
 * starve another's one), cancelling anywhere, capacity, and a randomized
 * run checked against those rules.
 */
#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

struct item {
	int id;
	uint64_t client;
	unsigned level;
	struct waitq_node node;
};

#define ITEM(n) ((struct item *)((char *)(n)-offsetof(struct item, node)))

static struct item *
items(size_t n)
{
	struct item *it = calloc(n, sizeof *it);
	size_t i;

	ck_assert_ptr_nonnull(it);
	for (i = 0; i < n; i++)
		it[i].id = (int)i;
	return it;
}

static int
pop_id(struct waitq *wq)
{
	struct waitq_node *n = waitq_pop(wq);

	return n == NULL ? -1 : ITEM(n)->id;
}

static void
push(struct waitq *wq, struct item *it, uint64_t client,
    enum llmgate_priority prio)
{
	ck_assert_int_eq(waitq_push(wq, &it->node, client, prio), 0);
}

START_TEST(test_priority_order)
{
	struct waitq wq;
	struct item *it = items(4);

	waitq_init(&wq, 16);
	ck_assert_ptr_null(waitq_peek(&wq));
	ck_assert_int_eq(pop_id(&wq), -1);
	push(&wq, &it[0], 1, LLMGATE_PRIO_LOW);
	push(&wq, &it[1], 1, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[2], 1, LLMGATE_PRIO_HIGH);
	push(&wq, &it[3], 2, LLMGATE_PRIO_NORMAL);
	ck_assert_uint_eq(waitq_len(&wq), 4);
	ck_assert_ptr_eq(waitq_peek(&wq), &it[2].node);
	ck_assert_int_eq(pop_id(&wq), 2);
	ck_assert_int_eq(pop_id(&wq), 1);
	ck_assert_int_eq(pop_id(&wq), 3);
	ck_assert_int_eq(pop_id(&wq), 0);
	ck_assert_int_eq(pop_id(&wq), -1);
	ck_assert_uint_eq(waitq_len(&wq), 0);
	waitq_free(&wq);
	free(it);
}
END_TEST

START_TEST(test_fifo_within_client)
{
	struct waitq wq;
	struct item *it = items(5);
	int i;

	waitq_init(&wq, 0);
	for (i = 0; i < 5; i++)
		push(&wq, &it[i], 7, LLMGATE_PRIO_NORMAL);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(pop_id(&wq), i);
	/* Popped nodes may be queued again. */
	push(&wq, &it[3], 7, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[1], 7, LLMGATE_PRIO_NORMAL);
	ck_assert_int_eq(pop_id(&wq), 3);
	ck_assert_int_eq(pop_id(&wq), 1);
	waitq_free(&wq);
	free(it);
}
END_TEST

START_TEST(test_fairness)
{
	struct waitq wq;
	struct item *it = items(1001);
	int i;

	/* A queues 1000, then B queues 1: B is served second. */
	waitq_init(&wq, 2000);
	for (i = 0; i < 1000; i++)
		push(&wq, &it[i], 0xa, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[1000], 0xb, LLMGATE_PRIO_NORMAL);
	ck_assert_int_eq(pop_id(&wq), 0);
	ck_assert_int_eq(pop_id(&wq), 1000);
	for (i = 1; i < 1000; i++)
		ck_assert_int_eq(pop_id(&wq), i);
	ck_assert_int_eq(pop_id(&wq), -1);
	waitq_free(&wq);
	free(it);
}
END_TEST

START_TEST(test_round_robin)
{
	struct waitq wq;
	struct item *it = items(8);
	static const int want[] = { 0, 3, 5, 1, 4, 2, 7, 6 };
	size_t i;

	/* a0 a1 a2, b3 b4, c5, then c6 and a7 later. */
	waitq_init(&wq, 0);
	push(&wq, &it[0], 'a', LLMGATE_PRIO_NORMAL);
	push(&wq, &it[1], 'a', LLMGATE_PRIO_NORMAL);
	push(&wq, &it[2], 'a', LLMGATE_PRIO_NORMAL);
	push(&wq, &it[3], 'b', LLMGATE_PRIO_NORMAL);
	push(&wq, &it[4], 'b', LLMGATE_PRIO_NORMAL);
	push(&wq, &it[5], 'c', LLMGATE_PRIO_NORMAL);
	/* The same client at another priority is another line. */
	push(&wq, &it[6], 'c', LLMGATE_PRIO_LOW);
	ck_assert_int_eq(pop_id(&wq), 0);
	ck_assert_int_eq(pop_id(&wq), 3);
	/* a7 joins a's line, served in a's turns. */
	push(&wq, &it[7], 'a', LLMGATE_PRIO_NORMAL);
	for (i = 2; i < sizeof want / sizeof want[0]; i++)
		ck_assert_int_eq(pop_id(&wq), want[i]);
	waitq_free(&wq);
	free(it);
}
END_TEST

START_TEST(test_remove)
{
	struct waitq wq;
	struct item *it = items(8);

	waitq_init(&wq, 0);
	/* From the middle of a client's line. */
	push(&wq, &it[0], 1, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[1], 1, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[2], 1, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[3], 1, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[4], 2, LLMGATE_PRIO_NORMAL);
	waitq_remove(&wq, &it[2].node);
	ck_assert_uint_eq(waitq_len(&wq), 4);
	/* Twice, or a node never queued: nothing happens. */
	waitq_remove(&wq, &it[2].node);
	waitq_remove(&wq, &it[7].node);
	ck_assert_uint_eq(waitq_len(&wq), 4);
	/* The head: its client keeps its turn, before client 2. */
	waitq_remove(&wq, &it[0].node);
	ck_assert_ptr_eq(waitq_peek(&wq), &it[1].node);
	/* The last: the line goes. */
	waitq_remove(&wq, &it[3].node);
	ck_assert_int_eq(pop_id(&wq), 1);
	ck_assert_int_eq(pop_id(&wq), 4);
	ck_assert_int_eq(pop_id(&wq), -1);

	/* A client's only entry, between two others' in the turn order. */
	push(&wq, &it[0], 1, LLMGATE_PRIO_HIGH);
	push(&wq, &it[1], 2, LLMGATE_PRIO_HIGH);
	push(&wq, &it[2], 3, LLMGATE_PRIO_HIGH);
	push(&wq, &it[3], 2, LLMGATE_PRIO_LOW);
	waitq_remove(&wq, &it[1].node);
	ck_assert_int_eq(pop_id(&wq), 0);
	ck_assert_int_eq(pop_id(&wq), 2);
	ck_assert_int_eq(pop_id(&wq), 3);
	ck_assert_uint_eq(waitq_len(&wq), 0);
	/* Client 2 starts a new line. */
	push(&wq, &it[1], 2, LLMGATE_PRIO_HIGH);
	ck_assert_int_eq(pop_id(&wq), 1);
	waitq_free(&wq);
	free(it);
}
END_TEST

START_TEST(test_capacity)
{
	struct waitq wq;
	struct item *it = items(4);

	waitq_init(&wq, 3);
	push(&wq, &it[0], 1, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[1], 2, LLMGATE_PRIO_NORMAL);
	push(&wq, &it[2], 3, LLMGATE_PRIO_HIGH);
	ck_assert_int_eq(waitq_push(&wq, &it[3].node, 4, LLMGATE_PRIO_HIGH),
	    -1);
	ck_assert_uint_eq(waitq_len(&wq), 3);
	/* A node already queued is refused too. */
	ck_assert_int_eq(pop_id(&wq), 2);
	ck_assert_int_eq(waitq_push(&wq, &it[0].node, 9, LLMGATE_PRIO_LOW), -1);
	ck_assert_uint_eq(waitq_len(&wq), 2);
	push(&wq, &it[3], 4, LLMGATE_PRIO_HIGH);
	ck_assert_int_eq(waitq_push(&wq, &it[2].node, 5, LLMGATE_PRIO_LOW), -1);
	ck_assert_int_eq(pop_id(&wq), 3);
	ck_assert_int_eq(pop_id(&wq), 0);
	ck_assert_int_eq(pop_id(&wq), 1);
	waitq_free(&wq);
	free(it);
}
END_TEST

/*
 * Random pushes, pops and cancels among a few clients and priorities,
 * each pop checked against the rules (nothing queued at a higher
 * priority; the oldest of its client at its priority) and the length
 * against a model; nothing is lost or served twice. Run under ASan, it
 * also checks the links. The checks inside the loop fail through
 * ck_abort_msg() only: each passing ck_assert records its place with the
 * runner (a write), which for millions of checks took minutes under load.
 */
START_TEST(test_random)
{
	enum { N = 512, CLIENTS = 5 };
	static const enum llmgate_priority prios[] = { LLMGATE_PRIO_HIGH,
		LLMGATE_PRIO_NORMAL, LLMGATE_PRIO_LOW };
	struct waitq wq;
	struct item *it = items(N);
	int queued[N], seq[N], next_seq = 0, len = 0, i, j, op, k;
	unsigned rnd = 12345;
	struct waitq_node *n;
	struct item *p;

	memset(queued, 0, sizeof queued);
	waitq_init(&wq, 300);
	for (k = 0; k < 200000; k++) {
		rnd = rnd * 1103515245 + 12345;
		op = (rnd >> 16) % 8;
		i = (int)((rnd >> 4) % N);
		if (op < 4) {
			if (queued[i])
				continue;
			it[i].client = (rnd >> 8) % CLIENTS;
			it[i].level = (rnd >> 12) % 3;
			if (waitq_push(&wq, &it[i].node, it[i].client,
			        prios[it[i].level]) != 0) {
				ck_assert_int_eq(len, 300);
				continue;
			}
			queued[i] = 1;
			seq[i] = next_seq++;
			len++;
		} else if (op < 6) {
			if ((n = waitq_pop(&wq)) == NULL) {
				ck_assert_int_eq(len, 0);
				continue;
			}
			p = ITEM(n);
			if (!queued[p->id])
				ck_abort_msg("op %d: popped %d, not queued", k,
				    p->id);
			for (j = 0; j < N; j++) {
				if (!queued[j] || j == p->id)
					continue;
				if (it[j].level < p->level)
					ck_abort_msg(
					    "op %d: popped %d at level "
					    "%u before %d at %u",
					    k, p->id, p->level, j, it[j].level);
				if (it[j].client == p->client &&
				    it[j].level == p->level &&
				    seq[j] < seq[p->id])
					ck_abort_msg("op %d: popped %d before "
					             "its client's older %d",
					    k, p->id, j);
			}
			queued[p->id] = 0;
			len--;
		} else {
			waitq_remove(&wq, &it[i].node);
			if (queued[i])
				len--;
			queued[i] = 0;
		}
		if (waitq_len(&wq) != (unsigned)len)
			ck_abort_msg("op %d: length %u, model %d", k,
			    waitq_len(&wq), len);
	}
	while ((n = waitq_pop(&wq)) != NULL) {
		ck_assert(queued[ITEM(n)->id]);
		queued[ITEM(n)->id] = 0;
		len--;
	}
	ck_assert_int_eq(len, 0);
	waitq_free(&wq);
	free(it);
}
END_TEST

/* Two clients always queued at one priority take strict turns. */
/*
 * waitq_ahead(): a newcomer's place, by turns. One client's backlog does
 * not put another's first entry behind all of it; its own next entry
 * waits behind its own backlog; higher levels go first. Checked against
 * the pops it really waits for, after random pushes, pops and cancels.
 */
START_TEST(test_ahead)
{
	struct waitq wq;
	struct item *it = items(400), extra;
	int i, k, pops, id;

	waitq_init(&wq, 0);
	ck_assert_uint_eq(waitq_ahead(&wq, 1, 0, LLMGATE_PRIO_NORMAL), 0);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(waitq_push(&wq, &it[i].node, 1,
		                     LLMGATE_PRIO_NORMAL),
		    0);
	ck_assert_uint_eq(waitq_ahead(&wq, 2, 0, LLMGATE_PRIO_NORMAL), 1);
	ck_assert_uint_eq(waitq_ahead(&wq, 1, 0, LLMGATE_PRIO_NORMAL), 100);
	ck_assert_uint_eq(waitq_ahead(&wq, 2, 0, LLMGATE_PRIO_HIGH), 0);
	ck_assert_int_eq(waitq_push(&wq, &it[100].node, 3, LLMGATE_PRIO_HIGH),
	    0);
	ck_assert_uint_eq(waitq_ahead(&wq, 2, 0, LLMGATE_PRIO_NORMAL), 2);
	/* Served and cancelled entries leave the counts. */
	for (i = 0; i < 11; i++)
		ck_assert_int_ge(pop_id(&wq), 0);
	waitq_remove(&wq, &it[50].node);
	ck_assert_uint_eq(waitq_ahead(&wq, 1, 0, LLMGATE_PRIO_NORMAL), 89);
	waitq_free(&wq);

	srand(7);
	for (k = 0; k < 200; k++) {
		waitq_init(&wq, 0);
		memset(it, 0, 400 * sizeof *it);
		for (i = 0; i < 400; i++) {
			it[i].id = i;
			if (rand() % 3 == 0)
				continue;
			waitq_push(&wq, &it[i].node, (uint64_t)(rand() % 5),
			    (enum llmgate_priority)(rand() % 3));
			if (rand() % 7 == 0)
				(void)pop_id(&wq);
			if (rand() % 9 == 0)
				waitq_remove(&wq, &it[rand() % (i + 1)].node);
		}
		memset(&extra, 0, sizeof extra);
		extra.id = 1000;
		extra.client = (uint64_t)(rand() % 6);
		extra.level = (unsigned)(rand() % 3);
		i = (int)waitq_ahead(&wq, extra.client, 0,
		    (enum llmgate_priority)extra.level);
		ck_assert_int_eq(waitq_push(&wq, &extra.node, extra.client,
		                     (enum llmgate_priority)extra.level),
		    0);
		for (pops = 0; (id = pop_id(&wq)) != 1000; pops++)
			ck_assert_int_ge(id, 0);
		ck_assert_msg(pops <= i, "waited behind %d, said %d", pops, i);
		waitq_free(&wq);
	}
	free(it);
}
END_TEST

START_TEST(test_turns_alternate)
{
	struct waitq wq;
	struct item *it = items(200);
	uint64_t last = 0;
	int i;

	waitq_init(&wq, 0);
	for (i = 0; i < 100; i++)
		push(&wq, &it[i], 1, LLMGATE_PRIO_LOW);
	for (i = 100; i < 200; i++)
		push(&wq, &it[i], 2, LLMGATE_PRIO_LOW);
	for (i = 0; i < 200; i++) {
		struct item *p = ITEM(waitq_pop(&wq));

		ck_assert_int_eq(p->id, i % 2 == 0 ? i / 2 : 100 + i / 2);
		ck_assert_uint_ne(p->node.client, last);
		last = p->node.client;
	}
	waitq_free(&wq);
	free(it);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("waitq");
	TCase *tc = tcase_create("queue");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_priority_order);
	tcase_add_test(tc, test_fifo_within_client);
	tcase_add_test(tc, test_fairness);
	tcase_add_test(tc, test_round_robin);
	tcase_add_test(tc, test_remove);
	tcase_add_test(tc, test_capacity);
	tcase_add_test(tc, test_random);
	tcase_add_test(tc, test_turns_alternate);
	tcase_add_test(tc, test_ahead);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
