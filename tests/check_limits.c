/*
 * check_limits.c: quota domains end to end, through the real llmgated and
 * the loopback fake provider: two models of one domain held together to
 * the domain's limit (two other models outside it are not held); a 429
 * on one member holding the other with cooldown = "domain", and not with
 * the default; status showing the domains (metrics: check_metrics).
 */
#include <sys/wait.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

static struct daemon d;
static pid_t fp_pid;
static int fp_port;

/* A domain that refills slowly: one request in 10 s, bursts of 2. */
#define SLOW \
	",\n  { name = \"slow\"; rpm = 6; burst = 2; " \
	"targets = [ \"oa/slow-*\" ]; }"

/* How long any wait of these tests may take, valgrind included. */
#define WAIT_MS 30000

/* The org domain: 240 a minute (4 a second) in bursts of 2. */
#define ORG_RPM   240
#define ORG_BURST 2

/* The config, with extra top-level settings. */
static char *
config_text(const char *slow, const char *extra)
{
	return h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%d/v1\"; api_key = \"test-key\"; }\n"
	    ");\n"
	    "limits = (\n"
	    "  { name = \"org\"; rpm = %d; burst = %d;\n"
	    "    targets = [ \"oa/org-a\", \"oa/org-b\" ]; },\n"
	    "  { name = \"cool\"; rpm = 6000; cooldown = \"domain\";\n"
	    "    targets = [ \"oa/cool-*\" ]; },\n"
	    "  { name = \"own\"; rpm = 6000; targets = [ \"oa/own-*\" ]; },\n"
	    "  { name = \"lrn\"; learn = true; targets = [ \"oa/lrn-*\" ]; },\n"
	    "  { name = \"deaf\"; tpm = 1000000; targets = [ \"oa/deaf-*\" ]; }%s\n"
	    ");\n"
	    "pools = ( { name = \"pp\"; targets = [ \"oa/cool-p\", \"oa/free-p\" ]; } );\n"
	    "retry = { attempts = 3; initial_ms = 10; max_ms = 50; };\n"
	    "retry_budget = { ratio = 1.0; min_per_s = 1000; };\n%s",
	    fp_port, ORG_RPM, ORG_BURST, slow, extra);
}

static void
setup(void)
{
	char *conf;

	fp_port = h_fakeprov_start(&fp_pid);
	conf = config_text(SLOW, "");
	h_daemon_start(&d, conf);
	free(conf);
}

static void
teardown(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	h_fakeprov_stop(fp_pid);
}

struct answer {
	int done;
	int cls;
	size_t nattempts;
	uint32_t waited;
};

static void
answered(struct llmgate_result *res, void *arg)
{
	struct answer *a = arg;

	a->done = 1;
	a->cls = res->cls;
	a->nattempts = res->nattempts;
	a->waited = res->nattempts != 0 ? res->attempts[0].waited_ms : 0;
	llmgate_result_free(res);
}

enum { CALLS = 12 };

/*
 * CALLS calls at once, alternating between models a and b; while they run,
 * the provider's count of both together never passes what a budget of
 * ORG_RPM in bursts of ORG_BURST allows since the start (bounded is 1:
 * assert it). Returns how many calls waited in the daemon (100 ms or more).
 */
static int
burst(const char *a, const char *b, int bounded)
{
	struct answer ans[CALLS];
	struct llmgate_request *req;
	struct llmgate *g = h_connect(&d, "burst");
	struct pollfd pfd;
	uint64_t t0 = h_mono_ms(), t;
	long long seen, most = 0;
	int i, done, waited = 0;

	memset(ans, 0, sizeof ans);
	for (i = 0; i < CALLS; i++) {
		req = h_request("hello", i % 2 == 0 ? a : b, NULL);
		ck_assert_uint_gt(llmgate_submit(g, req, NULL, answered,
		                      &ans[i]),
		    0);
		h_request_free(req);
	}
	for (;;) {
		for (done = 0, i = 0; i < CALLS; i++)
			done += ans[i].done;
		seen = h_fakeprov_count(fp_port, a + 3, NULL) +
		    h_fakeprov_count(fp_port, b + 3, NULL);
		t = h_mono_ms();
		if (seen > most)
			most = seen;
		if (bounded)
			ck_assert_msg(seen <= ORG_BURST +
			            (long long)(t - t0) * ORG_RPM / 60000,
			    "%lld requests at the provider "
			    "%llu ms after the start",
			    seen, (unsigned long long)(t - t0));
		if (done == CALLS)
			break;
		ck_assert_msg(t - t0 < WAIT_MS, "calls not done in time");
		pfd.fd = llmgate_fd(g);
		pfd.events = POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
		if (poll(&pfd, 1, 20) > 0 || llmgate_want_write(g))
			ck_assert_int_ge(llmgate_process(g), 0);
	}
	llmgate_close(g);
	ck_assert_int_eq(most, CALLS);
	for (i = 0; i < CALLS; i++) {
		ck_assert_int_eq(ans[i].cls, LLMGATE_OK);
		ck_assert_uint_eq(ans[i].nattempts, 1);
		if (ans[i].waited >= 100)
			waited++;
	}
	return waited;
}

/*
 * The org domain holds its two models together: the provider never sees
 * more of them than the domain allows, and all but the burst wait in the
 * daemon. Two models outside any domain, the same calls: none waits.
 */
START_TEST(test_domain_holds_two_models)
{
	ck_assert_int_ge(burst("oa/org-a", "oa/org-b", 1), CALLS - ORG_BURST);
	ck_assert_int_eq(burst("oa/free-a", "oa/free-b", 0), 0);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "org-a", NULL), CALLS / 2);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "org-b", NULL), CALLS / 2);
}
END_TEST

/*
 * A member's 429 (Retry-After: 2) holds the other member of a domain with
 * cooldown = "domain" for those 2 s; with the default, only the member
 * that got it.
 */
static uint32_t
after_429(const char *failing, const char *other)
{
	struct llmgate_request *req;
	struct answer first = { 0 }, second = { 0 };
	struct llmgate *g = h_connect(&d, "cool");
	uint64_t deadline = h_mono_ms() + WAIT_MS;

	req = h_request("first", failing, NULL);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, answered, &first), 0);
	h_request_free(req);
	while (h_fakeprov_count(fp_port, failing + 3, "429") < 1) {
		ck_assert_msg(h_mono_ms() < deadline, "no 429 yet");
		if (llmgate_want_write(g))
			ck_assert_int_ge(llmgate_process(g), 0);
		h_sleep_ms(10);
	}
	req = h_request("second", other, NULL);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, answered, &second), 0);
	h_request_free(req);
	h_drive(g, &second.done);
	h_drive(g, &first.done);
	llmgate_close(g);
	ck_assert_int_eq(first.cls, LLMGATE_OK);
	ck_assert_int_eq(second.cls, LLMGATE_OK);
	ck_assert_uint_eq(second.nattempts, 1);
	ck_assert_int_eq(h_fakeprov_count(fp_port, other + 3, NULL), 1);
	return second.waited;
}

START_TEST(test_429_cools_domain)
{
	uint32_t w;

	w = after_429("oa/cool-a+fail=1+status=429+retry_after=2", "oa/cool-b");
	ck_assert_msg(w >= 1000, "the other member waited only %u ms", w);
	w = after_429("oa/own-a+fail=1+status=429+retry_after=2", "oa/own-b");
	ck_assert_msg(w < 1000, "the other member waited %u ms", w);
}
END_TEST

static const json_t *
domain_of(const json_t *st, const char *name)
{
	const json_t *ds = json_object_get(st, "domains"), *e;
	size_t i;

	json_array_foreach(ds, i, e) {
		if (json_is_string(json_object_get(e, "name")) &&
		    strcmp(json_string_value(json_object_get(e, "name")),
		        name) == 0)
			return e;
	}
	return NULL;
}

/* status --json and status show the domains and their members. */
START_TEST(test_status)
{
	struct run r;
	json_t *st;
	const json_t *dj, *mem;

	h_cli(&r, &d, NULL, "call", "-m", "oa/slow-a", "hi", NULL);
	ck_assert_int_eq(r.status, 0);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	st = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(st);
	h_run_free(&r);
	/* The slow domain: one of its burst of 2 spent, 10 s to refill. */
	dj = domain_of(st, "slow");
	ck_assert_ptr_nonnull(dj);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(dj, "rpm"),
	                         "limit")),
	    6);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(dj, "rpm"),
	                         "available")),
	    1);
	ck_assert(json_is_null(json_object_get(dj, "tpm")));
	mem = json_object_get(dj, "members");
	ck_assert_uint_eq(json_array_size(mem), 1);
	ck_assert_str_eq(json_string_value(json_array_get(mem, 0)),
	    "oa/slow-a");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(domain_of(st, "cool"),
	                         "cooldown")),
	    "domain");
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(domain_of(st,
	                                                         "org"),
	                                         "rpm"),
	                         "limit")),
	    ORG_RPM);
	json_decref(st);

	h_cli(&r, &d, NULL, "status", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out,
	                  "slow: rpm 1/6, tpm -, cooldown_ms 0, "
	                  "members oa/slow-a\n") != NULL,
	    "%s", r.out);
	ck_assert_msg(strstr(r.out, "no member yet; targets oa/own-*") != NULL,
	    "%s", r.out);
	h_run_free(&r);
}
END_TEST

/*
 * POST a chat completion for model to the HTTP front beside the socket
 * (curl): it must be refused with 429; its Retry-After in seconds.
 */
static int
http_retry_after(const char *model)
{
	char *sock, *body, *p, curl[512];
	struct run r;
	int ra;

	ck_assert_msg(h_which("curl", curl, sizeof curl) == 0,
	    "no curl on "
	    "PATH (.ci/packages has it)");
	sock = h_strdup_printf("%s/llmgate-http.sock", d.dir);
	body = h_strdup_printf("{\"model\": \"%s\", \"messages\": "
	                       "[{\"role\": \"user\", \"content\": \"hi\"}]}",
	    model);
	{
		char *argv[] = { curl, "-s", "-i", "--unix-socket", sock, "-H",
			"Content-Type: application/json", "--data-binary", body,
			"http://localhost/v1/chat/completions", NULL };

		h_run(&r, NULL, argv);
	}
	ck_assert_msg(r.status == 0, "curl: %s", r.err);
	ck_assert_msg(strncmp(r.out, "HTTP/1.1 429", 12) == 0, "%s", r.out);
	p = strcasestr(r.out, "\nretry-after: ");
	ck_assert_msg(p != NULL, "%s", r.out);
	ra = atoi(p + strlen("\nretry-after: "));
	h_run_free(&r);
	free(sock);
	free(body);
	return ra;
}

/*
 * A domain's hold outlives a restart with a state file: a member's 429
 * (Retry-After: 30) holds the domain; after the restart the other member
 * is still refused for it, naming the domain.
 */
START_TEST(test_state_keeps_domain_hold)
{
	char *state, *extra, *conf;
	struct run r;

	state = h_strdup_printf("/tmp/check_limits.%d.state", (int)getpid());
	unlink(state);
	extra = h_strdup_printf("state_file = \"%s\";\nmax_wait_ms = 1000;\n"
	                        "http = { listen = [ \"unix:\" ]; };\n",
	    state);
	conf = config_text(SLOW, extra);
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	h_daemon_start(&d, conf);
	h_cli(&r, &d, NULL, "call", "--attempts", "1", "-m",
	    "oa/cool-a+fail=1+status=429+retry_after=30", "hi", NULL);
	ck_assert_int_ne(r.status, 0);
	h_run_free(&r);
	ck_assert_int_eq(h_fakeprov_count(fp_port,
	                     "cool-a+fail=1+status=429+retry_after=30", "429"),
	    1);
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	h_daemon_start(&d, conf);
	h_cli(&r, &d, NULL, "call", "-m", "oa/cool-b", "hi", NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_msg(strstr(r.err, "quota domain 'cool'") != NULL, "%s",
	    r.err);
	h_run_free(&r);
	/* The HTTP front's 429 tells when the domain lets it go. */
	ck_assert_int_ge(http_retry_after("oa/cool-b"), 20);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "cool-b", NULL), 0);
	unlink(state);
	free(state);
	free(extra);
	free(conf);
}
END_TEST

/*
 * A pool passes over a member its quota domain holds: the domain "cool"
 * is held for 30 s by another member's 429, and the pool's call goes to
 * the other member at once, in one attempt.
 */
START_TEST(test_pool_skips_held_member)
{
	struct run r;
	json_t *j;
	uint64_t t0;

	h_cli(&r, &d, NULL, "call", "--attempts", "1", "-m",
	    "oa/cool-a+fail=1+status=429+retry_after=30", "hi", NULL);
	h_run_free(&r);
	ck_assert_int_eq(h_fakeprov_count(fp_port,
	                     "cool-a+fail=1+status=429+retry_after=30", "429"),
	    1);
	t0 = h_mono_ms();
	h_cli(&r, &d, NULL, "call", "--json", "-m", "pp", "hi", NULL);
	ck_assert_msg(r.status == 0, "%s %s", r.out, r.err);
	ck_assert_ptr_nonnull(j = json_loads(r.out, 0, NULL));
	h_run_free(&r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "oa/free-p");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "attempts")), 1);
	json_decref(j);
	ck_assert_uint_lt(h_mono_ms() - t0, 10000);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "cool-p", NULL), 0);
}
END_TEST

/* One call's answer, made from a connection of its own. */
static struct answer
call_one(const char *target)
{
	struct llmgate_request *req;
	struct answer a = { 0 };
	struct llmgate *g = h_connect(&d, "one");

	req = h_request("hello", target, NULL);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, answered, &a), 0);
	h_request_free(req);
	h_drive(g, &a.done);
	llmgate_close(g);
	ck_assert_int_eq(a.cls, LLMGATE_OK);
	return a;
}

/* status's domain name, as JSON (json_decref()). */
static json_t *
domain_status(const char *name)
{
	struct run r;
	json_t *st, *dj;

	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	st = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(st);
	h_run_free(&r);
	dj = (json_t *)(uintptr_t)domain_of(st, name);
	if (dj != NULL)
		json_incref(dj);
	json_decref(st);
	return dj;
}

static json_int_t
rpm_of(const json_t *dj, const char *what)
{
	const json_t *v = json_object_get(json_object_get(dj, "rpm"), what);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/*
 * learn = true: a member's rate-limit headers (limit 20 a minute, none
 * remaining, reset in 3 s) are the domain's: it takes the limit and holds
 * the other member. Without learn they stay the member's.
 */
START_TEST(test_learn)
{
	struct answer a;
	json_t *dj;

	call_one("oa/lrn-a+ratelimit+rpm=20");
	dj = domain_status("lrn");
	ck_assert_int_eq(rpm_of(dj, "limit"), 20);
	json_decref(dj);
	a = call_one("oa/lrn-b");
	ck_assert_msg(a.waited >= 1000, "the other member waited only %u ms",
	    a.waited);

	call_one("oa/deaf-a+ratelimit+rpm=20");
	dj = domain_status("deaf");
	ck_assert_int_eq(rpm_of(dj, "limit"), -1);
	json_decref(dj);
	a = call_one("oa/deaf-b");
	ck_assert_msg(a.waited < 1000, "the other member waited %u ms",
	    a.waited);
}
END_TEST

static void
reload_with(const char *slow)
{
	char *text = config_text(slow, ""), *tmp;
	struct run r;
	FILE *f;

	tmp = h_strdup_printf("%s.new", d.conf);
	ck_assert_ptr_nonnull(f = fopen(tmp, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, d.conf), 0);
	free(tmp);
	free(text);
	h_cli(&r, &d, NULL, "reload", NULL);
	ck_assert_msg(r.status == 0, "reload: %s", r.err);
	h_run_free(&r);
}

/*
 * A reload keeps a domain's level: its spent burst is not given back, not
 * when the reload keeps it, nor when one drops it and the next brings it
 * back. A reload that adds a domain applies it to targets already known.
 */
START_TEST(test_reload_keeps_levels)
{
	json_t *dj;

	call_one("oa/slow-a");
	call_one("oa/slow-b");
	reload_with(SLOW);
	dj = domain_status("slow");
	ck_assert_ptr_nonnull(dj);
	ck_assert_int_eq(rpm_of(dj, "limit"), 6);
	ck_assert_int_eq(rpm_of(dj, "available"), 0);
	json_decref(dj);
	reload_with("");
	ck_assert_ptr_null(domain_status("slow"));
	reload_with(SLOW);
	dj = domain_status("slow");
	ck_assert_int_eq(rpm_of(dj, "available"), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(dj, "members")), 2);
	json_decref(dj);
	/* A new domain over targets that exist already. */
	reload_with(SLOW ",\n  { name = \"late\"; rpm = 60; "
	                 "targets = [ \"oa/slow-a\" ]; }");
	dj = domain_status("late");
	ck_assert_ptr_nonnull(dj);
	ck_assert_uint_eq(json_array_size(json_object_get(dj, "members")), 1);
	json_decref(dj);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_domain_holds_two_models);
	tcase_add_test(tc, test_429_cools_domain);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_state_keeps_domain_hold);
	tcase_add_test(tc, test_learn);
	tcase_add_test(tc, test_pool_skips_held_member);
	tcase_add_test(tc, test_reload_keeps_levels);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
