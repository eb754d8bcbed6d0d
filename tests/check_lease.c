/*
 * check_lease.c: a lease's completion contract, on a real event loop but
 * no socket: lease_acquire() never answers from inside itself (the front
 * keeps its request until the answer, as for a call), answers exactly
 * once through the callback, and does not answer once cancelled or
 * detached.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "llmgated.h"

/* The asker: a client id for fair shares, a uid for its caps. */
static const struct call_client test_client = { .id = 1,
	.name = "test",
	.uid = 0 };

struct answer {
	int n;
	enum llmgate_class cls;
	uint64_t id;
	char msg[160];
};

static void
answer_cb(void *arg, const struct llmgate_lease *l, enum llmgate_class cls,
    const char *msg)
{
	struct answer *a = arg;

	a->n++;
	a->cls = cls;
	a->id = l != NULL ? l->id : 0;
	snprintf(a->msg, sizeof a->msg, "%s", msg != NULL ? msg : "");
}

static void
setup(void)
{
	char *errors = NULL;

	ev_base = event_base_new();
	cfg = config_load(NULL, &errors);
	ck_assert_msg(cfg != NULL, "%s", errors);
	/* Held as the daemon holds it: leases take references too. */
	config_ref(cfg);
}

static void
teardown(void)
{
	lease_free_all();
	target_free_all();
	config_unref(cfg);
	cfg = NULL;
	event_base_free(ev_base);
	ev_base = NULL;
}

/* Run the loop until nothing is pending right now. */
static void
loop_turn(void)
{
	event_base_loop(ev_base, EVLOOP_NONBLOCK);
}

START_TEST(test_granted_later)
{
	struct llmgate_acquire req = { .target = "mock/echo" };
	struct llmgate_report rep = { .status = 200, .retry_after_s = -1 };
	struct answer a = { 0 };
	struct lease *l;
	char *cause = NULL;

	l = lease_acquire(&req, &test_client, answer_cb, &a);
	ck_assert_ptr_nonnull(l);
	/* Not from inside: the budget would grant it now, but the answer
	 * comes on the loop. */
	ck_assert_int_eq(a.n, 0);
	loop_turn();
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(a.cls, LLMGATE_OK);
	ck_assert_uint_ne(a.id, 0);
	ck_assert_uint_eq(lease_active(), 1);
	rep.lease = a.id;
	ck_assert_int_eq(lease_report(&rep, test_client.uid, &cause), 0);
	ck_assert_uint_eq(lease_active(), 0);
	loop_turn();
	ck_assert_int_eq(a.n, 1);
}
END_TEST

/* A refusal takes the same path: unknown provider, bad names. */
START_TEST(test_refused_later)
{
	struct llmgate_acquire req = { .target = "nosuch/model" };
	struct answer a = { 0 };

	ck_assert_ptr_nonnull(lease_acquire(&req, &test_client, answer_cb, &a));
	ck_assert_int_eq(a.n, 0);
	loop_turn();
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(a.cls, LLMGATE_INVALID_REQUEST);
	ck_assert_ptr_nonnull(strstr(a.msg, "nosuch"));
	req.target = "no-slash";
	memset(&a, 0, sizeof a);
	ck_assert_ptr_nonnull(lease_acquire(&req, &test_client, answer_cb, &a));
	ck_assert_int_eq(a.n, 0);
	loop_turn();
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(a.cls, LLMGATE_INVALID_REQUEST);
	ck_assert_uint_eq(lease_active(), 0);
}
END_TEST

/* Cancelled before the answer: answered once, with the cancel's class. */
START_TEST(test_cancel_and_detach)
{
	struct llmgate_acquire req = { .target = "mock/echo" };
	struct answer a = { 0 }, b = { 0 };
	struct lease *l;

	l = lease_acquire(&req, &test_client, answer_cb, &a);
	lease_cancel(l, LLMGATE_CANCELLED, "cancelled by the client");
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(a.cls, LLMGATE_CANCELLED);
	ck_assert_str_eq(a.msg, "cancelled by the client");
	l = lease_acquire(&req, &test_client, answer_cb, &b);
	lease_detach(l);
	loop_turn();
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(b.n, 0);
	ck_assert_uint_eq(lease_active(), 0);
}
END_TEST

static Suite *
lease_suite(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("contract");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_granted_later);
	tcase_add_test(tc, test_refused_later);
	tcase_add_test(tc, test_cancel_and_detach);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(lease_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
