/*
 * check_budget.c: machine-wide coordination end to end: several client
 * processes share one target's budget through the real llmgated, against
 * the loopback fake provider enforcing its own token bucket; one caller's
 * 429 cools the target down for the others; a failing target's breaker
 * opens and lets exactly its probes through; leases taken and reported by
 * separate processes share cooldowns with calls.
 */
#include <sys/wait.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

static struct daemon d;
static pid_t fp_pid;
static int fp_port;

static void
setup(void)
{
	char *conf;

	fp_port = h_fakeprov_start(&fp_pid);
	/*
	 * The provider allows 600 requests a minute on "limited"; the
	 * daemon is told 540, so it keeps its callers under the real limit.
	 */
	conf = h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%d/v1\"; api_key = \"test-key\";\n"
	    "    models = ( { name = \"limited+rpm=600\"; rpm = 540; } ); },\n"
	    "  { name = \"mock\"; type = \"mock\";\n"
	    "    models = ( { name = \"tpm\"; tpm = 60000; } ); }\n"
	    ");\n"
	    "retry = { attempts = 3; initial_ms = 10; max_ms = 50; };\n"
	    "retry_budget = { ratio = 1.0; min_per_s = 1000; };\n"
	    "breaker = { failures = 3; min_calls = 1000; open_ms = 1000;\n"
	    "            half_open_probes = 1; };\n",
	    fp_port);
	h_daemon_start(&d, conf);
	free(conf);
}

static void
teardown(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	h_fakeprov_stop(fp_pid);
}

static json_t *
call_json(const char *target, const char *prompt)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "call", "--json", "-m", target, prompt, NULL);
	j = json_loads(r.out, 0, NULL);
	ck_assert_msg(j != NULL, "no JSON (exit %d): %s %s", r.status, r.out,
	    r.err);
	json_object_set_new(j, "exit", json_integer(r.status));
	h_run_free(&r);
	return j;
}

static long long
fp_count(const char *model, const char *status)
{
	return h_fakeprov_count(fp_port, model, status);
}

/* How long any wait of these tests may take, valgrind included. */
#define WAIT_MS 30000

/* Reap a child, failing (and killing it) if it is not done in time. */
static void
reap(pid_t pid, int *st)
{
	uint64_t deadline = h_mono_ms() + WAIT_MS;
	pid_t r;

	while ((r = waitpid(pid, st, WNOHANG)) == 0) {
		if (h_mono_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, st, 0);
			ck_abort_msg("child %d still running after %d ms",
			    (int)pid, WAIT_MS);
		}
		h_sleep_ms(10);
	}
	ck_assert_int_eq(r, pid);
}

/*
 * Six processes, eight calls each, as fast as they can, on one target the
 * provider limits: the daemon queues them inside its budget, so every call
 * succeeds and the provider sees (almost) no 429. Almost: when the machine
 * is slow (valgrind), requests granted a second apart can still reach the
 * provider together; a retry or two is allowed, where unpaced callers
 * would meet dozens of 429s.
 */
START_TEST(test_processes_share_budget)
{
	enum { PROCS = 6, CALLS = 8 };
	pid_t pids[PROCS];
	int i, st, failed = 0, retried = 0;

	for (i = 0; i < PROCS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			struct llmgate_request *req;
			struct llmgate_result *res;
			struct llmgate *g;
			char err[128];
			int k, bad = 0, again = 0;

			g = llmgate_connect(d.sock, NULL, err, sizeof err);
			if (g == NULL)
				_exit(100);
			for (k = 0; k < CALLS; k++) {
				req = h_request("hello", "oa/limited+rpm=600",
				    NULL);
				if (llmgate_call(g, req, NULL, NULL, &res) != 0)
					_exit(101);
				if (res->cls != LLMGATE_OK)
					bad++;
				else if (res->nattempts != 1)
					again++;
				/* Say what, for the test log. */
				if (res->cls != LLMGATE_OK ||
				    res->nattempts != 1)
					fprintf(stderr,
					    "call %d: %s after %zu "
					    "attempts, the first %s: %s\n",
					    k, llmgate_class_name(res->cls),
					    res->nattempts,
					    res->nattempts != 0 ?
					        llmgate_class_name(
					            res->attempts[0].cls) :
					        "-",
					    res->nattempts != 0 &&
					            res->attempts[0].message !=
					                NULL ?
					        res->attempts[0].message :
					        "");
				llmgate_result_free(res);
				h_request_free(req);
			}
			llmgate_close(g);
			_exit(bad * 16 + again);
		}
	}
	for (i = 0; i < PROCS; i++) {
		reap(pids[i], &st);
		ck_assert(WIFEXITED(st));
		failed += WEXITSTATUS(st) / 16;
		retried += WEXITSTATUS(st) % 16;
	}
	ck_assert_int_eq(failed, 0);
	ck_assert_int_le(retried, 2);
	ck_assert_int_eq(fp_count("limited+rpm=600", NULL),
	    PROCS * CALLS + retried);
	ck_assert_int_le(fp_count("limited+rpm=600", "429"), retried);
}
END_TEST

struct wait_one {
	int done;
	int cls;
	uint32_t waited;
	size_t nattempts;
	int skipped; /* the first attempt was a skip */
	uint64_t at; /* h_mono_ms() when answered */
};

static void
wait_done(struct llmgate_result *res, void *arg)
{
	struct wait_one *w = arg;

	w->done = 1;
	w->cls = res->cls;
	w->nattempts = res->nattempts;
	w->waited = res->nattempts != 0 ? res->attempts[0].waited_ms : 0;
	w->skipped = res->nattempts != 0 && res->attempts[0].skipped;
	w->at = h_mono_ms();
	llmgate_result_free(res);
}

/*
 * Caller A meets a 429 with Retry-After 2; caller B, another process
 * asking the same target a moment later, waits in the daemon instead of
 * stampeding into the same 429.
 */
START_TEST(test_one_429_cools_down_all)
{
	static const char *t = "oa/shared+fail=1+status=429+retry_after=2";
	struct llmgate *b;
	struct llmgate_request *req;
	struct wait_one w = { 0 };
	uint64_t deadline;
	pid_t a;
	int st;
	json_t *j;

	a = fork();
	ck_assert_int_ge(a, 0);
	if (a == 0) {
		j = call_json(t, "first");
		_exit(json_integer_value(json_object_get(j, "exit")) == 0 ? 0 :
		                                                            1);
	}
	/* Let A's first attempt meet the 429. */
	deadline = h_mono_ms() + WAIT_MS;
	while (fp_count("shared+fail=1+status=429+retry_after=2", "429") < 1) {
		ck_assert_msg(h_mono_ms() < deadline,
		    "A's call never reached "
		    "the provider");
		h_sleep_ms(10);
	}
	b = h_connect(&d, "caller-b");
	req = h_request("second", t, NULL);
	ck_assert_uint_gt(llmgate_submit(b, req, NULL, wait_done, &w), 0);
	h_request_free(req);
	h_drive(b, &w.done);
	ck_assert_int_eq(w.cls, LLMGATE_OK);
	ck_assert_uint_eq(w.nattempts, 1);
	ck_assert_msg(w.waited >= 1500, "B waited only %u ms", w.waited);
	llmgate_close(b);
	reap(a, &st);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(fp_count("shared+fail=1+status=429+retry_after=2",
	                     "429"),
	    1);
}
END_TEST

static const char *
attempt_class(json_t *j, size_t i)
{
	return json_string_value(
	    json_object_get(json_array_get(json_object_get(j, "attempts"), i),
	        "class"));
}

static const char *
breaker_of(const char *target)
{
	static char state[32];
	struct llmgate *g = h_connect(&d, "status");
	json_t *st, *ts;
	char *text;
	size_t i;

	ck_assert_int_eq(llmgate_status(g, &text), 0);
	st = json_loads(text, 0, NULL);
	ts = json_object_get(st, "targets");
	state[0] = '\0';
	for (i = 0; i < json_array_size(ts); i++) {
		if (strcmp(json_string_value(
		               json_object_get(json_array_get(ts, i),
		                   "target")),
		        target) == 0)
			snprintf(state, sizeof state, "%s",
			    json_string_value(
			        json_object_get(json_array_get(ts, i),
			            "breaker")));
	}
	json_decref(st);
	free(text);
	llmgate_close(g);
	return state;
}

/*
 * Three failures in a row open the breaker; calls then skip the target
 * without touching it; after open_ms exactly one probe goes through.
 */
START_TEST(test_breaker_opens_and_probes)
{
	static const char *bad = "oa/down+status=500+delay=300";
	static const char *model = "down+status=500+delay=300";
	struct llmgate_request *req;
	struct wait_one w[3];
	struct llmgate *g;
	uint64_t deadline;
	struct run r;
	json_t *j;
	int i;

	/* One call, three attempts, three server errors. */
	h_cli(&r, &d, NULL, "call", "--json", "-m", bad, "x", NULL);
	ck_assert_int_eq(r.status, 4);
	h_run_free(&r);
	ck_assert_int_eq(fp_count(model, NULL), 3);
	ck_assert_str_eq(breaker_of(bad), "open");

	/* Open: skipped with circuit_open, the chain falls back at once. */
	h_cli(&r, &d, NULL, "call", "--json", "-m", bad, "-m", "mock/echo", "x",
	    NULL);
	ck_assert_int_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(attempt_class(j, 0), "circuit_open");
	ck_assert(json_is_true(
	    json_object_get(json_array_get(json_object_get(j, "attempts"), 0),
	        "skipped")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/echo");
	json_decref(j);
	h_run_free(&r);
	ck_assert_int_eq(fp_count(model, NULL), 3);

	/* After open_ms: three calls at once, one probe goes upstream. */
	deadline = h_mono_ms() + WAIT_MS;
	while (strcmp(breaker_of(bad), "half_open") != 0) {
		ck_assert_msg(h_mono_ms() < deadline,
		    "the breaker is %s, "
		    "not half_open, after %d ms",
		    breaker_of(bad), WAIT_MS);
		h_sleep_ms(10);
	}
	g = h_connect(&d, "probes");
	memset(w, 0, sizeof w);
	for (i = 0; i < 3; i++) {
		req = h_request("probe", bad, "mock/echo", NULL);
		llmgate_request_set_attempts(req, 1);
		ck_assert_uint_gt(llmgate_submit(g, req, NULL, wait_done,
		                      &w[i]),
		    0);
		h_request_free(req);
	}
	for (i = 0; i < 3; i++)
		h_drive(g, &w[i].done);
	llmgate_close(g);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(w[i].cls, LLMGATE_OK);
	ck_assert_int_eq(fp_count(model, NULL), 4);
	/* The probe failed: open again. */
	ck_assert_str_eq(breaker_of(bad), "open");
}
END_TEST

/*
 * `acquire --json` gives the lease id in a form that survives JSON tools:
 * read as jq and JavaScript read JSON (numbers as doubles), written back,
 * it still names the lease, and `report` takes it. Three leases, since a
 * random 63-bit id rarely fits a double exactly.
 */
START_TEST(test_lease_id_survives_json)
{
	char jq[512], *id, *out, *text;
	char *jqargv[] = { jq, "-r", ".lease", NULL };
	json_t *j, *v;
	struct run r;
	int i;

	for (i = 0; i < 3; i++) {
		h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", "--json",
		    NULL);
		ck_assert_msg(r.status == 0, "acquire: %s", r.err);
		out = r.out;
		free(r.err);
		j = json_loads(out, JSON_DECODE_INT_AS_REAL, NULL);
		ck_assert_ptr_nonnull(j);
		v = json_object_get(j, "lease");
		if (json_is_string(v))
			id = strdup(json_string_value(v));
		else
			id = h_strdup_printf("%.0f", json_number_value(v));
		text = json_dumps(j, JSON_ENCODE_ANY);
		json_decref(j);
		/* The same through jq, when it is installed. */
		if (h_which("jq", jq, sizeof jq) == 0) {
			h_run(&r, out, jqargv);
			ck_assert_int_eq(r.status, 0);
			r.out[strcspn(r.out, "\n")] = '\0';
			ck_assert_msg(strcmp(r.out, id) == 0,
			    "jq read %s as %s", text, r.out);
			h_run_free(&r);
		}
		h_cli(&r, &d, NULL, "report", id, "--status", "200", NULL);
		ck_assert_msg(r.status == 0, "report of %s (from %s): %s", id,
		    out, r.err);
		h_run_free(&r);
		free(text);
		free(id);
		free(out);
	}
	/* The text form is the same digits. */
	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(strspn(r.out, "0123456789"), strlen(r.out) - 1);
	r.out[strlen(r.out) - 1] = '\0';
	id = strdup(r.out);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "report", id, "--status", "200", NULL);
	ck_assert_int_eq(r.status, 0);
	h_run_free(&r);
	/* Reported twice: the error names it the same way. */
	h_cli(&r, &d, NULL, "report", id, "--status", "200", NULL);
	ck_assert_int_ne(r.status, 0);
	text = h_strdup_printf("lease %s is unknown", id);
	ck_assert_msg(strstr(r.err, text) != NULL, "%s", r.err);
	free(text);
	h_run_free(&r);
	free(id);
}
END_TEST

/*
 * A lease reported 429 by one process cools the target down for a lease
 * taken by another process and for a call through the daemon alike.
 */
START_TEST(test_leases_share_cooldowns)
{
	struct run r;
	uint64_t t0;
	char *lease;
	json_t *j;

	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", NULL);
	ck_assert_int_eq(r.status, 0);
	lease = strdup(r.out);
	lease[strcspn(lease, "\n")] = '\0';
	h_run_free(&r);
	h_cli(&r, &d, NULL, "report", lease, "--status", "429", "--retry-after",
	    "2", NULL);
	ck_assert_msg(r.status == 0, "report: %s", r.err);
	h_run_free(&r);
	/* Reporting twice: the lease is gone. */
	h_cli(&r, &d, NULL, "report", lease, "--status", "200", NULL);
	ck_assert_int_ne(r.status, 0);
	h_run_free(&r);
	free(lease);

	t0 = h_mono_ms();
	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(h_mono_ms() - t0 >= 1500, "acquire did not wait");
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/echo");
	json_decref(j);
	h_run_free(&r);

	/* A lease that cannot get budget before its timeout: deadline. */
	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", NULL);
	lease = strdup(r.out);
	lease[strcspn(lease, "\n")] = '\0';
	h_run_free(&r);
	h_cli(&r, &d, NULL, "report", lease, "--status", "429", "--retry-after",
	    "5", NULL);
	h_run_free(&r);
	free(lease);
	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", "--timeout", "300",
	    NULL);
	ck_assert_int_eq(r.status, 4);
	ck_assert_ptr_nonnull(strstr(r.err, "deadline"));
	h_run_free(&r);

	/* Calls wait for the same cooldown (or skip it past a deadline). */
	h_cli(&r, &d, NULL, "call", "--json", "--timeout", "300", "-m",
	    "mock/echo", "-m", "mock/stream:1", "hi", NULL);
	ck_assert_int_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(attempt_class(j, 0), "deadline");
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/stream:1");
	json_decref(j);
	h_run_free(&r);
}
END_TEST

/*
 * Leases from the caller's own event loop, several in flight on one
 * connection: one is granted and reported at once; on a cooled-down target
 * one waits until it is cancelled and one until its timeout; a second
 * report of the same lease is refused. Each is answered exactly once, and
 * the daemon serves on.
 */
START_TEST(test_async_leases)
{
	struct llmgate *g = h_connect(&d, "check_budget");
	struct llmgate_acquire *acq = llmgate_acquire_new("mock/echo");
	struct llmgate_acquire *other = llmgate_acquire_new("mock/stream:1");
	struct llmgate_report *rep;
	struct llmgate_lease *lease;
	struct h_lease s[5];
	enum llmgate_class cls;
	char err[128];
	uint32_t waiting;
	int i;

	memset(s, 0, sizeof s);
	ck_assert_ptr_null(llmgate_acquire_new(""));
	ck_assert_int_eq(llmgate_acquire_set_priority(acq,
	                     (enum llmgate_priority)LLMGATE_PRIO_MAX),
	    -1);
	/* mock/echo cools down for 5 s. */
	ck_assert_int_eq(llmgate_acquire(g, acq, &lease, &cls, err, sizeof err),
	    0);
	rep = llmgate_report_new(lease->id, 429);
	llmgate_lease_free(lease);
	ck_assert_int_eq(llmgate_report_set_retry_after(rep, -1), -1);
	ck_assert_int_eq(llmgate_report_set_retry_after(rep, 5), 0);
	ck_assert_int_eq(llmgate_report(g, rep), 0);

	waiting = llmgate_acquire_submit(g, acq, h_lease_cb, &s[0]);
	ck_assert_uint_gt(waiting, 0);
	llmgate_acquire_set_timeout_ms(acq, 300);
	ck_assert_uint_gt(llmgate_acquire_submit(g, acq, h_lease_cb, &s[1]), 0);
	ck_assert_uint_gt(llmgate_acquire_submit(g, other, h_lease_cb, &s[2]),
	    0);
	/* A report of no lease at all. */
	llmgate_report_set_lease(rep, 12345);
	ck_assert_uint_gt(llmgate_report_submit(g, rep, h_lease_cb, &s[3]), 0);
	h_drive(g, &s[2].done);
	ck_assert_int_eq(s[2].cls, LLMGATE_OK);
	ck_assert_str_eq(s[2].target, "mock/stream:1");
	ck_assert_uint_ne(s[2].lease, 0);
	h_drive(g, &s[3].done);
	ck_assert_int_ne(s[3].cls, LLMGATE_OK);
	/* Lease ids are written in decimal, as the CLI prints them. */
	ck_assert_msg(strstr(s[3].message, "lease 12345 ") != NULL, "%s",
	    s[3].message);

	/* The granted lease reported, once. */
	llmgate_report_set_lease(rep, s[2].lease);
	llmgate_report_set_status(rep, 200);
	llmgate_report_set_tokens(rep, 10, 20);
	ck_assert_uint_gt(llmgate_report_submit(g, rep, h_lease_cb, &s[4]), 0);
	llmgate_report_free(rep);
	llmgate_acquire_free(acq);
	llmgate_acquire_free(other);
	h_drive(g, &s[4].done);
	ck_assert_int_eq(s[4].cls, LLMGATE_OK);

	h_drive(g, &s[1].done);
	ck_assert_int_eq(s[1].cls, LLMGATE_DEADLINE);
	ck_assert_int_eq(s[0].done, 0);
	ck_assert_int_eq(llmgate_cancel(g, waiting), 0);
	h_drive(g, &s[0].done);
	ck_assert_int_eq(s[0].cls, LLMGATE_CANCELLED);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(s[i].done, 1);

	ck_assert_int_eq(llmgate_ping(g), 0);
	ck_assert(h_daemon_alive(&d));
	llmgate_close(g);
}
END_TEST

/* Counts the answers to many asynchronous acquires, by class. */
struct lease_tally {
	int answered;
	int ok;
	int overloaded;
	char message[128];
};

static void
lease_tally(const struct llmgate_lease *l, enum llmgate_class cls,
    const char *message, void *arg)
{
	struct lease_tally *t = arg;

	t->answered++;
	if (cls == LLMGATE_OK)
		t->ok++;
	else if (cls == LLMGATE_OVERLOADED) {
		t->overloaded++;
		snprintf(t->message, sizeof t->message, "%s", message);
	}
}

/*
 * A client that takes leases and never reports them: past 4,096
 * outstanding for its user (65,536 for all), more are refused as
 * overloaded (and say why), and the daemon keeps serving.
 */
START_TEST(test_unreported_leases_capped)
{
	struct llmgate *g = h_connect(&d, "hoarder");
	struct llmgate_acquire *acq = llmgate_acquire_new("mock/echo");
	struct lease_tally t = { 0 };
	int i, batch, sent = 0;

	for (batch = 0; batch < 5; batch++) {
		for (i = 0; i < 1000; i++, sent++)
			ck_assert_uint_gt(llmgate_acquire_submit(g, acq,
			                      lease_tally, &t),
			    0);
		while (t.answered < sent) {
			struct pollfd pfd = { .fd = llmgate_fd(g) };

			pfd.events =
			    POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
			ck_assert_int_gt(poll(&pfd, 1, 10000), 0);
			ck_assert_int_ge(llmgate_process(g), 0);
		}
	}
	ck_assert_int_eq(t.ok, 4096);
	ck_assert_int_eq(t.overloaded, 5000 - 4096);
	ck_assert_ptr_nonnull(strstr(t.message, "report leases"));
	llmgate_acquire_free(acq);
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
}
END_TEST

/*
 * A report of absurd usage (input + output past 2^64) is charged as the
 * most a target can owe, never wrapped around into a tiny usage that
 * refunds the estimate: the next lease must wait for the budget.
 */
START_TEST(test_absurd_report_no_refund)
{
	struct llmgate *g = h_connect(&d, "check_budget");
	struct llmgate_acquire *acq = llmgate_acquire_new("mock/tpm");
	struct llmgate_report *rep;
	struct llmgate_lease *lease;
	enum llmgate_class cls;
	char err[128];

	/* 60000 a minute: a burst of 1000, 900 of them estimated. */
	llmgate_acquire_set_tokens(acq, 900);
	ck_assert_int_eq(llmgate_acquire(g, acq, &lease, &cls, err, sizeof err),
	    0);
	rep = llmgate_report_new(lease->id, 200);
	llmgate_lease_free(lease);
	llmgate_report_set_tokens(rep, UINT64_MAX, 2);
	ck_assert_int_eq(llmgate_report(g, rep), 0);
	llmgate_report_free(rep);

	/* Wrapped, the report said 1 token: 899 back, 500 would fit. */
	llmgate_acquire_set_tokens(acq, 500);
	llmgate_acquire_set_timeout_ms(acq, 300);
	ck_assert_int_ne(llmgate_acquire(g, acq, &lease, &cls, err, sizeof err),
	    0);
	llmgate_acquire_free(acq);
	ck_assert_msg(cls == LLMGATE_DEADLINE, "class %s: %s",
	    llmgate_class_name(cls), err);
	llmgate_close(g);
}
END_TEST

START_TEST(test_status_shows_budget)
{
	struct llmgate *g;
	json_t *st, *ts, *t = NULL;
	char *text;
	size_t i;

	json_decref(call_json("oa/limited+rpm=600", "hello"));
	g = h_connect(&d, "status");
	ck_assert_int_eq(llmgate_status(g, &text), 0);
	st = json_loads(text, 0, NULL);
	ts = json_object_get(st, "targets");
	for (i = 0; i < json_array_size(ts); i++) {
		if (strcmp(json_string_value(
		               json_object_get(json_array_get(ts, i),
		                   "target")),
		        "oa/limited+rpm=600") == 0)
			t = json_array_get(ts, i);
	}
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(t, "rpm"),
	                         "limit")),
	    540);
	/* One second's worth is the burst: 9, one of them taken. */
	ck_assert_int_le(json_integer_value(
	                     json_object_get(json_object_get(t, "rpm"),
	                         "available")),
	    9);
	ck_assert_str_eq(json_string_value(json_object_get(t, "breaker")),
	    "closed");
	ck_assert_ptr_nonnull(json_object_get(st, "retry_budget"));
	json_decref(st);
	free(text);
	llmgate_close(g);
}
END_TEST

/*
 * Three calls at once on a target allowed 60 a minute, one at a time:
 * the first goes, the second waits about a second, and the third would
 * wait about two, past max_wait_ms (1.5 s). Its prediction counts the
 * head's own wait, so it is refused at once (rate_limited, skipped, no
 * wait) instead of being queued to wait past max_wait_ms.
 */
START_TEST(test_wait_prediction_counts_head)
{
	static const char conf[] =
	    "providers = ( { name = \"mock\"; type = \"mock\";\n"
	    "  models = ( { name = \"echo\"; rpm = 60; burst = 1; } ); } );\n"
	    "max_wait_ms = 1500;\n";
	struct daemon d2;
	struct llmgate *g;
	struct llmgate_request *req;
	struct wait_one w[3];
	int i;

	h_daemon_start(&d2, conf);
	g = h_connect(&d2, "predict");
	memset(w, 0, sizeof w);
	for (i = 0; i < 3; i++) {
		req = h_request("hello", "mock/echo", NULL);
		ck_assert_uint_gt(llmgate_submit(g, req, NULL, wait_done,
		                      &w[i]),
		    0);
		h_request_free(req);
	}
	for (i = 0; i < 3; i++)
		h_drive(g, &w[i].done);
	llmgate_close(g);
	ck_assert_int_eq(w[0].cls, LLMGATE_OK);
	ck_assert_int_eq(w[1].cls, LLMGATE_OK);
	ck_assert_msg(w[1].waited <= 1500, "the second call waited %u ms",
	    w[1].waited);
	ck_assert_msg(w[2].cls == LLMGATE_RATE_LIMITED && w[2].skipped,
	    "the third call: %s, waited %u ms", llmgate_class_name(w[2].cls),
	    w[2].waited);
	ck_assert_msg(w[2].waited < 500,
	    "the third call was refused only "
	    "after %u ms",
	    w[2].waited);
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
}
END_TEST

/*
 * A call waiting for a concurrency slot that does not free (the one call
 * allowed takes 5 s) is answered when max_wait_ms passes, not when the
 * slot frees: rate_limited, the target skipped. So is a lease.
 */
START_TEST(test_max_wait_answers)
{
	static const char conf[] =
	    "providers = ( { name = \"mock\"; type = \"mock\";\n"
	    "  concurrency = 1; } );\n"
	    "max_wait_ms = 500;\n";
	struct daemon d2;
	struct llmgate *g;
	struct llmgate_request *req;
	struct llmgate_acquire acq = { .target = "mock/echo" };
	struct h_lease l = { 0 };
	struct wait_one w[2];
	uint64_t t0;

	h_daemon_start(&d2, conf);
	g = h_connect(&d2, "slot");
	memset(w, 0, sizeof w);
	req = h_request("hello", "mock/slow:5000", NULL);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, wait_done, &w[0]), 0);
	h_request_free(req);
	t0 = h_mono_ms();
	req = h_request("hello", "mock/echo", NULL);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, wait_done, &w[1]), 0);
	h_request_free(req);
	h_drive(g, &w[1].done);
	ck_assert_msg(w[1].cls == LLMGATE_RATE_LIMITED && w[1].skipped,
	    "the waiting call: %s", llmgate_class_name(w[1].cls));
	ck_assert_msg(w[1].at - t0 >= 400 && w[1].at - t0 < 3000,
	    "answered after %llu ms", (unsigned long long)(w[1].at - t0));
	ck_assert_int_eq(w[0].done, 0);

	/* A lease waits the same way, and is answered the same way. */
	t0 = h_mono_ms();
	ck_assert_uint_gt(llmgate_acquire_submit(g, &acq, h_lease_cb, &l), 0);
	h_drive(g, &l.done);
	ck_assert_int_eq(l.done, 1);
	ck_assert_msg(l.cls == LLMGATE_RATE_LIMITED, "the lease: %s: %s",
	    llmgate_class_name(l.cls), l.message);
	ck_assert_msg(h_mono_ms() - t0 < 3000, "the lease was answered late");
	llmgate_close(g);
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
}
END_TEST

/*
 * A call whose deadline passes while it waits in a target's queue (for a
 * concurrency slot the one call allowed holds for 3 s) ends as deadline
 * with that target in its attempts, skipped with class deadline, as one
 * refused up front for lack of time is: not with no attempt at all.
 */
START_TEST(test_deadline_while_queued)
{
	static const char conf[] =
	    "providers = ( { name = \"mock\"; type = \"mock\";\n"
	    "  concurrency = 1; } );\n";
	struct daemon d2;
	struct llmgate *g;
	struct llmgate_request *req;
	struct llmgate_result *res = NULL;
	struct wait_one w = { 0 };

	h_daemon_start(&d2, conf);
	g = h_connect(&d2, "slot");
	req = h_request("hello", "mock/slow:3000", NULL);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, wait_done, &w), 0);
	h_request_free(req);
	req = h_request("hello", "mock/echo", NULL);
	ck_assert_int_eq(llmgate_request_set_timeout_ms(req, 300), 0);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	h_request_free(req);
	ck_assert_int_eq(res->cls, LLMGATE_DEADLINE);
	ck_assert_msg(res->nattempts == 1, "%zu attempts", res->nattempts);
	ck_assert_str_eq(res->attempts[0].target, "mock/echo");
	ck_assert_int_eq(res->attempts[0].cls, LLMGATE_DEADLINE);
	ck_assert_int_eq(res->attempts[0].skipped, 1);
	ck_assert_uint_ge(res->attempts[0].waited_ms, 250);
	llmgate_result_free(res);
	h_drive(g, &w.done);
	ck_assert_int_eq(w.cls, LLMGATE_OK);
	llmgate_close(g);
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("budget");
	TCase *tc = tcase_create("coordination");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_processes_share_budget);
	tcase_add_test(tc, test_one_429_cools_down_all);
	tcase_add_test(tc, test_breaker_opens_and_probes);
	tcase_add_test(tc, test_leases_share_cooldowns);
	tcase_add_test(tc, test_lease_id_survives_json);
	tcase_add_test(tc, test_async_leases);
	tcase_add_test(tc, test_unreported_leases_capped);
	tcase_add_test(tc, test_absurd_report_no_refund);
	tcase_add_test(tc, test_status_shows_budget);
	tcase_add_test(tc, test_wait_prediction_counts_head);
	tcase_add_test(tc, test_max_wait_answers);
	tcase_add_test(tc, test_deadline_while_queued);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
