/*
 * check_attempt.c: a transport reports to whoever started the attempt,
 * through the attempt's done callback, and to nothing else: here the
 * mock transport runs an attempt with no call engine at all.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "llmgated.h"

static int reports;

static void
test_done(struct attempt *att)
{
	int *seen = att->arg;

	(*seen)++;
	reports++;
}

START_TEST(test_mock_reports_to_callback)
{
	struct llmgate_message msg = { .role = LLMGATE_ROLE_USER,
		.content = (char *)(uintptr_t) "hello there" };
	struct llmgate_request req;
	struct provider_conf prov;
	struct attempt att;
	int seen = 0;

	ev_base = event_base_new();
	memset(&req, 0, sizeof req);
	req.messages = &msg;
	req.nmessages = 1;
	memset(&prov, 0, sizeof prov);
	prov.name = (char *)(uintptr_t) "mock";
	prov.type = &provider_mock;
	memset(&att, 0, sizeof att);
	att.done = test_done;
	att.arg = &seen;
	att.prov = &prov;
	att.model = "echo";
	att.req = &req;
	att.target = (char *)(uintptr_t) "mock/echo";
	reply_init(&att.reply, NULL, NULL);
	prov.type->start(&att);
	ck_assert_int_eq(seen, 0);
	while (seen == 0 && event_base_loop(ev_base, EVLOOP_ONCE) == 0)
		;
	ck_assert_int_eq(seen, 1);
	ck_assert_int_eq(reports, 1);
	ck_assert_int_eq(att.reply.cls, LLMGATE_OK);
	ck_assert_str_eq(att.reply.text.data, "echo: hello there");
	prov.type->stop(&att);
	reply_free(&att.reply);
	event_base_free(ev_base);
	ev_base = NULL;
}
END_TEST

static Suite *
attempt_suite(void)
{
	Suite *s = suite_create("attempt");
	TCase *tc = tcase_create("transport");

	tcase_add_test(tc, test_mock_reports_to_callback);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(attempt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
