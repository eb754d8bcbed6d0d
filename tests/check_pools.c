/*
 * check_pools.c: deployment pools end to end. The real llmgated calls
 * tests/fakeprov through several providers that stand for keys of one
 * account (each its own name, its own budget and state); fakeprov's
 * model-name directives make one of them answer 429. Calls go through
 * libllmgate, the CLI, a route and the HTTP front; the pure choice is
 * check_pool.c's.
 *
 * One daemon and one fakeprov serve the whole suite; every test uses
 * pools and model names of its own (fakeprov counts per model name).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <curl/curl.h>

#include "harness.h"

#define TEST_KEY "test-key"

static struct daemon d;
static pid_t fp_pid;
static int fp_port;
static int fixture_failed;

/* A provider of the openai type at fakeprov, with extra settings. */
#define PROV(name, extra) \
	"  { name = \"" name "\"; type = \"openai\";\n" \
	"    base_url = \"http://127.0.0.1:%1$d/v1\";\n" \
	"    api_key = \"%2$s\"; " extra " },\n"

static char *
pools_conf(const char *extra_pools)
{
	return h_strdup_printf(
	    "providers = (\n" PROV("ka", "") PROV("kb", "") PROV("kc",
	        "") PROV("ha", "rpm = 6; burst = 10;") PROV("hb",
	        "rpm = 6; burst = 2;") PROV("la",
	        "rpm = 6; burst = 10;") PROV("lb",
	        "rpm = 6; burst = 2;") PROV("wa", "") PROV("wb",
	        "") "  { name = \"mock\"; type = \"mock\"; }\n"
	            ");\n"
	            "pools = (\n"
	            /* One key of three answers 429. */
	            "  { name = \"p429\"; targets = [ \"ka/p1+status=429\",\n"
	            "      \"kb/p1b\", \"kc/p1c\" ]; },\n"
	            "  { name = \"head\"; targets = [ \"ha/h1\", \"hb/h2\" ]; },\n"
	            "  { name = \"least\"; strategy = \"least-inflight\";\n"
	            "    targets = [ \"la/l1\", \"lb/l2\" ]; },\n"
	            "  { name = \"weigh\"; strategy = \"weighted\"; weights = [ 3, 1 ];\n"
	            "    targets = [ \"wa/w1\", \"wb/w2\" ]; },\n"
	            /* Every member cools down for 5 s: past max_wait_ms. */
	            "  { name = \"cool\"; targets = [\n"
	            "      \"ka/c1+status=429+retry_after=5\",\n"
	            "      \"kb/c2+status=429+retry_after=5\" ]; },\n"
	            /* Every member cools down 400 ms, then answers. */
	            "  { name = \"brief\"; targets = [\n"
	            "      \"ka/q1+fail=1+status=429+retry_after_ms=400\",\n"
	            "      \"kb/q2+fail=1+status=429+retry_after_ms=400\" ]; },\n"
	            "  { name = \"inroute\"; targets = [ \"ka/r1+status=429\",\n"
	            "      \"kb/r2\" ]; },\n"
	            "  { name = \"overhttp\"; targets = [ \"ka/x1+status=429\",\n"
	            "      \"kb/x2\" ]; },\n"
	            "  { name = \"busy\"; strategy = \"least-inflight\"; targets = [\n"
	            "      \"ka/b1+delay=6000\", \"kb/b2\" ]; },\n"
	            /* Overloaded: an answer that brings no cooldown. */
	            "  { name = \"over\"; targets = [ \"ka/o1+status=503\",\n"
	            "      \"kb/o2+status=503\" ]; },\n"
	            "  { name = \"retr\"; targets = [ \"ka/t1+status=429\",\n"
	            "      \"kb/t2+fail=1+status=500\" ]; },\n"
	            "  { name = \"leasep\"; targets = [ \"ka/e1\", \"kb/e2\" ]; },\n"
	            "  { name = \"nomove\"; max_moves = 0;\n"
	            "    targets = [ \"ka/n1+status=429\", \"kb/n2\" ]; }\n"
	            "%3$s"
	            ");\n"
	            "routes = (\n"
	            "  { name = \"default\"; targets = [ \"mock/echo\" ]; },\n"
	            "  { name = \"viapool\"; targets = [ \"inroute\", \"kc/r-next\" ]; }\n"
	            ");\n"
	            /* No retries at all, and no retry budget: a move spends none. */
	            "retry = { attempts = 1; initial_ms = 10; max_ms = 50; };\n"
	            "retry_budget = { ratio = 0.0; min_per_s = 0.0; };\n"
	            "max_wait_ms = 2000;\n"
	            "http = { listen = ( \"unix:\" ); };\n",
	    fp_port, TEST_KEY, extra_pools != NULL ? extra_pools : "");
}

static void
setup(void)
{
	char *conf;

	fp_port = h_fakeprov_start(&fp_pid);
	conf = pools_conf(NULL);
	h_daemon_start(&d, conf);
	free(conf);
}

static void
teardown(void)
{
	int st;

	if ((st = h_daemon_stop(&d)) != 0) {
		fprintf(stderr,
		    "check_pools: llmgated exited %d on SIGTERM, "
		    "not 0\n",
		    st);
		fixture_failed = 1;
	}
	h_fakeprov_stop(fp_pid);
	fp_pid = 0;
}

static const char *
jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "(none)";
}

/* A CLI call's --json answer; it must have exited with status. */
static json_t *
cli_json(struct run *r, int status)
{
	json_t *j;

	ck_assert_msg(r->status == status, "exit %d: %s %s", r->status, r->out,
	    r->err);
	j = json_loads(r->out, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %s / %s", r->out, r->err);
	h_run_free(r);
	return j;
}

static json_t *
status_json(void)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_msg(r.status == 0, "status: %s", r.err);
	j = json_loads(r.out, 0, NULL);
	ck_assert_msg(j != NULL, "status is not JSON: %s", r.out);
	h_run_free(&r);
	return j;
}

static long long
counter(const char *name)
{
	json_t *st = status_json();
	long long n;

	n = json_integer_value(
	    json_object_get(json_object_get(st, "counters"), name));
	json_decref(st);
	return n;
}

/* The status of pool name's member target. */
static json_t *
member_status(json_t *st, const char *pool, const char *target)
{
	json_t *p, *m;
	size_t i, j;

	json_array_foreach(json_object_get(st, "pools"), i, p) {
		if (strcmp(jstr(p, "name"), pool) != 0)
			continue;
		json_array_foreach(json_object_get(p, "members"), j, m) {
			if (strcmp(jstr(m, "target"), target) == 0)
				return m;
		}
	}
	ck_abort_msg("no member %s of pool %s in status: %s", target, pool,
	    h_jtext(st));
	return NULL;
}

/* One blocking call through libllmgate; the result (free it). */
static struct llmgate_result *
call(struct llmgate *g, const char *prompt, const char *target)
{
	struct llmgate_request *req = h_request(prompt, target, NULL);
	struct llmgate_result *res = NULL;

	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_ptr_nonnull(res);
	h_request_free(req);
	return res;
}

/*
 * A pool of three keys, one answering 429: every call succeeds, traffic
 * moves to the other two, and no call spends a retry (there are none to
 * spend: attempts = 1 and an empty retry budget).
 */
START_TEST(test_429_moves)
{
	struct llmgate *g = h_connect(&d, "pools-429");
	struct llmgate_result *res;
	long long retries = counter("retries"), moves = counter("moves");
	int i, moved = 0, b = 0, c = 0;
	json_t *st;

	for (i = 0; i < 8; i++) {
		res = call(g, "hello there", "p429");
		ck_assert_msg(res->cls == LLMGATE_OK, "call %d: %s: %s", i,
		    llmgate_class_name(res->cls), res->message);
		ck_assert_str_eq(res->text, "echo: hello there");
		ck_assert_msg(strcmp(res->target, "kb/p1b") == 0 ||
		        strcmp(res->target, "kc/p1c") == 0,
		    "answered by %s", res->target);
		b += strcmp(res->target, "kb/p1b") == 0;
		c += strcmp(res->target, "kc/p1c") == 0;
		if (res->nattempts == 2) {
			/* The move, shown: the member tried, its 429. */
			ck_assert_str_eq(res->attempts[0].target,
			    "ka/p1+status=429");
			ck_assert_int_eq(res->attempts[0].cls,
			    LLMGATE_RATE_LIMITED);
			ck_assert_uint_eq(res->attempts[0].status, 429);
			ck_assert_ptr_nonnull(strstr(res->attempts[0].message,
			    "pool p429: moved to another member (1 of 3)"));
			ck_assert_str_eq(res->attempts[1].target, res->target);
			moved++;
		} else
			ck_assert_uint_eq(res->nattempts, 1);
		ck_assert_int_eq(res->attempts[res->nattempts - 1].cls,
		    LLMGATE_OK);
		llmgate_result_free(res);
	}
	/* The first call met the 429; the key then cooled down, skipped. */
	ck_assert_int_ge(moved, 1);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "p1+status=429", NULL),
	    moved);
	/* The healthy keys shared the traffic. */
	ck_assert_int_gt(b, 0);
	ck_assert_int_gt(c, 0);
	ck_assert_int_eq(b + c, 8);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "p1b", NULL), b);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "p1c", NULL), c);
	ck_assert_int_eq(counter("retries"), retries);
	ck_assert_int_eq(counter("moves"), moves + moved);
	st = status_json();
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(member_status(st, "p429",
	                                         "ka/p1+status=429"),
	                         "moves")),
	    moved);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(member_status(st, "p429",
	                                         "kb/p1b"),
	                         "picks")),
	    b);
	json_decref(st);
	llmgate_close(g);
}
END_TEST

/*
 * A move leaves the call its attempts: with two, a 429 at one member and
 * a 500 at the next still leave one retry. It is the retry, not the move,
 * that asks the machine-wide retry budget, empty in this suite, and is
 * refused.
 */
START_TEST(test_move_keeps_attempts)
{
	struct run r;
	json_t *j, *a;

	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "2", "-m", "retr",
	    "hi", NULL);
	j = cli_json(&r, 4);
	ck_assert_str_eq(jstr(json_object_get(j, "error"), "class"),
	    "budget_exhausted");
	a = json_object_get(j, "attempts");
	ck_assert_msg(json_array_size(a) == 3, "attempts: %s", h_jtext(a));
	ck_assert_str_eq(jstr(json_array_get(a, 0), "class"), "rate_limited");
	ck_assert_str_eq(jstr(json_array_get(a, 1), "class"), "server_error");
	ck_assert_str_eq(jstr(json_array_get(a, 2), "class"),
	    "budget_exhausted");
	ck_assert(
	    json_is_true(json_object_get(json_array_get(a, 2), "skipped")));
	json_decref(j);
}
END_TEST

/* max_moves = 0: the 429 is the call's answer, as without a pool. */
START_TEST(test_max_moves_zero)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "call", "--json", "-m", "nomove", "hi", NULL);
	ck_assert_msg(r.status != 0, "exit 0: %s", r.out);
	j = json_loads(r.out, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %s / %s", r.out, r.err);
	ck_assert_str_eq(jstr(json_object_get(j, "error"), "class"),
	    "rate_limited");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "attempts")), 1);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "n2", NULL), 0);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

/* The member each of n calls went to, in order, as one letter each. */
static void
sequence(const char *pool, const char *first, int n, char *out)
{
	struct llmgate *g = h_connect(&d, pool);
	struct llmgate_result *res;
	int i;

	for (i = 0; i < n; i++) {
		res = call(g, "hi", pool);
		ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s",
		    llmgate_class_name(res->cls), res->message);
		ck_assert_uint_eq(res->nattempts, 1);
		out[i] = strcmp(res->target, first) == 0 ? 'A' : 'B';
		llmgate_result_free(res);
	}
	out[n] = '\0';
	llmgate_close(g);
}

/*
 * The same two keys (a bucket of 10, one of 2, both refilling by one in
 * 10 s) under each strategy. headroom sends each call to the key with
 * the larger share of its budget left; least-inflight takes turns while
 * both have budget; weighted follows the weights, smoothly.
 */
START_TEST(test_strategies)
{
	char seq[16];

	sequence("head", "ha/h1", 6, seq);
	ck_assert_str_eq(seq, "ABAAAA");
	sequence("least", "la/l1", 6, seq);
	ck_assert_str_eq(seq, "ABABAA");
	sequence("weigh", "wa/w1", 8, seq);
	ck_assert_str_eq(seq, "AABAAABA");
}
END_TEST

struct pending {
	int done;
	struct llmgate_result *res;
};

static void
on_done(struct llmgate_result *res, void *arg)
{
	struct pending *p = arg;

	p->res = res;
	p->done = 1;
}

/*
 * least-inflight sends calls past a member that is busy with a slow call
 * (headroom too, between members with equal budgets).
 */
START_TEST(test_inflight_skipped)
{
	struct llmgate *slow = h_connect(&d, "pools-slow");
	struct llmgate *g = h_connect(&d, "pools-fast");
	struct llmgate_request *req;
	struct llmgate_result *res;
	struct pending sp = { 0, NULL };
	uint64_t until = h_mono_ms() + 10000;
	int i;
	json_t *st;

	/* A fresh pool: its first call goes to its first member. */
	req = h_request("slow one", "busy", NULL);
	ck_assert_uint_ne(llmgate_submit(slow, req, NULL, on_done, &sp), 0);
	h_request_free(req);
	for (;;) {
		ck_assert_int_ge(llmgate_process(slow), 0);
		st = status_json();
		i = (int)json_integer_value(
		    json_object_get(member_status(st, "busy",
		                        "ka/b1+delay=6000"),
		        "inflight"));
		json_decref(st);
		if (i == 1)
			break;
		ck_assert_msg(h_mono_ms() < until,
		    "the slow call never "
		    "started at ka/b1");
		h_sleep_ms(20);
	}
	for (i = 0; i < 3; i++) {
		res = call(g, "fast", "busy");
		ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s",
		    llmgate_class_name(res->cls), res->message);
		ck_assert_str_eq(res->target, "kb/b2");
		llmgate_result_free(res);
	}
	h_drive(slow, &sp.done);
	ck_assert_int_eq(sp.res->cls, LLMGATE_OK);
	ck_assert_str_eq(sp.res->target, "ka/b1+delay=6000");
	llmgate_result_free(sp.res);
	llmgate_close(slow);
	llmgate_close(g);
}
END_TEST

/*
 * Every member cooling down past max_wait_ms: the call falls back to the
 * chain's next entry, having tried each member once.
 */
START_TEST(test_all_cooling_falls_back)
{
	struct run r;
	json_t *j, *a;
	size_t n;

	h_cli(&r, &d, NULL, "call", "--json", "-m", "cool", "-m", "kc/c-next",
	    "hi", NULL);
	j = cli_json(&r, 0);
	ck_assert_str_eq(jstr(j, "target"), "kc/c-next");
	a = json_object_get(j, "attempts");
	n = json_array_size(a);
	ck_assert_msg(n == 4, "attempts: %s", h_jtext(a));
	ck_assert_str_eq(jstr(json_array_get(a, 0), "class"), "rate_limited");
	ck_assert_str_eq(jstr(json_array_get(a, 1), "class"), "rate_limited");
	ck_assert_str_ne(jstr(json_array_get(a, 0), "target"),
	    jstr(json_array_get(a, 1), "target"));
	/* Then the pool's step is skipped without a third request. */
	ck_assert(
	    json_is_true(json_object_get(json_array_get(a, 2), "skipped")));
	ck_assert_str_eq(jstr(json_array_get(a, 3), "class"), "ok");
	ck_assert_int_eq(h_fakeprov_count(fp_port,
	                     "c1+status=429+retry_after=5", NULL),
	    1);
	ck_assert_int_eq(h_fakeprov_count(fp_port,
	                     "c2+status=429+retry_after=5", NULL),
	    1);
	json_decref(j);
}
END_TEST

/*
 * Every member cooling down briefly: the call waits for the one that
 * frees first, in its queue, and succeeds there; no retry is spent.
 */
START_TEST(test_all_cooling_waits)
{
	struct llmgate *g = h_connect(&d, "pools-brief");
	struct llmgate_result *res;
	struct llmgate_attempt *a;
	long long retries = counter("retries");

	res = call(g, "hi", "brief");
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s",
	    llmgate_class_name(res->cls), res->message);
	ck_assert_uint_eq(res->nattempts, 3);
	ck_assert_int_eq(res->attempts[0].cls, LLMGATE_RATE_LIMITED);
	ck_assert_int_eq(res->attempts[1].cls, LLMGATE_RATE_LIMITED);
	ck_assert_str_ne(res->attempts[0].target, res->attempts[1].target);
	ck_assert_int_eq(res->attempts[2].cls, LLMGATE_OK);
	/*
	 * It went to a member once that member's cooldown of 400 ms had
	 * passed (however slow the run: after the second 429 or while
	 * waiting in its queue), without a backoff or a retry.
	 */
	a = res->attempts;
	ck_assert_uint_ge(strcmp(a[2].target, a[0].target) == 0 ?
	        a[1].waited_ms + a[1].ms + a[2].waited_ms :
	        a[2].waited_ms,
	    390);
	ck_assert_str_eq(res->target, a[2].target);
	ck_assert_int_eq(counter("retries"), retries);
	llmgate_result_free(res);
	llmgate_close(g);
}
END_TEST

/*
 * Every member overloaded (no cooldown to wait for): each is tried once,
 * then the call moves on in its chain; a member that just failed is not
 * tried again at once.
 */
START_TEST(test_overloaded_not_hammered)
{
	struct run r;
	json_t *j, *a;

	h_cli(&r, &d, NULL, "call", "--json", "-m", "over", "-m", "kc/o-next",
	    "hi", NULL);
	j = cli_json(&r, 0);
	ck_assert_str_eq(jstr(j, "target"), "kc/o-next");
	a = json_object_get(j, "attempts");
	ck_assert_msg(json_array_size(a) == 3, "attempts: %s", h_jtext(a));
	ck_assert_str_eq(jstr(json_array_get(a, 0), "class"), "overloaded");
	ck_assert_str_eq(jstr(json_array_get(a, 1), "class"), "overloaded");
	ck_assert_int_eq(h_fakeprov_count(fp_port, "o1+status=503", NULL), 1);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "o2+status=503", NULL), 1);
	json_decref(j);
}
END_TEST

/* A route's step may be a pool. */
START_TEST(test_pool_in_route)
{
	struct run r;
	json_t *j, *a;

	h_cli(&r, &d, NULL, "call", "--json", "-r", "viapool", "hi", NULL);
	j = cli_json(&r, 0);
	ck_assert_str_eq(jstr(j, "target"), "kb/r2");
	a = json_object_get(j, "attempts");
	ck_assert_uint_eq(json_array_size(a), 2);
	ck_assert_str_eq(jstr(json_array_get(a, 0), "target"),
	    "ka/r1+status=429");
	ck_assert_int_eq(h_fakeprov_count(fp_port, "r-next", NULL), 0);
	json_decref(j);
}
END_TEST

struct body {
	char *data;
	size_t len;
};

static size_t
body_cb(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;

	b->data = realloc(b->data, b->len + size * n + 1);
	ck_assert_ptr_nonnull(b->data);
	memcpy(b->data + b->len, p, size * n);
	b->len += size * n;
	b->data[b->len] = '\0';
	return size * n;
}

/* A request over the HTTP front's unix socket; the body as JSON. */
static json_t *
http(const char *path, const char *post, long *status)
{
	char sock[256];
	struct curl_slist *hl = NULL;
	struct body b = { NULL, 0 };
	CURL *c = curl_easy_init();
	json_t *j;

	snprintf(sock, sizeof sock, "%s/llmgate-http.sock", d.dir);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, path);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (post != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	j = json_loads(b.data != NULL ? b.data : "", 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %s", b.data);
	free(b.data);
	return j;
}

/* The HTTP front's model may name a pool; GET /v1/models lists it. */
START_TEST(test_pool_over_http)
{
	json_t *j, *m, *att;
	long status;
	size_t i;
	int found = 0;

	j = http("http://localhost/v1/chat/completions",
	    "{\"model\": "
	    "\"overhttp\", \"messages\": [{\"role\": \"user\", \"content\": "
	    "\"hello there\"}]}",
	    &status);
	ck_assert_msg(status == 200, "%ld: %s", status, h_jtext(j));
	ck_assert_str_eq(jstr(json_object_get(j, "llmgate"), "target"),
	    "kb/x2");
	att = json_object_get(json_object_get(j, "llmgate"), "attempts");
	ck_assert_msg(json_array_size(att) == 2, "%s", h_jtext(att));
	ck_assert_str_eq(jstr(json_array_get(att, 0), "target"),
	    "ka/x1+status=429");
	json_decref(j);

	j = http("http://localhost/v1/models", NULL, &status);
	ck_assert_int_eq(status, 200);
	json_array_foreach(json_object_get(j, "data"), i, m) {
		if (strcmp(jstr(m, "id"), "overhttp") != 0)
			continue;
		found = 1;
		ck_assert_uint_eq(json_array_size(json_object_get(m, "pool")),
		    2);
		ck_assert_str_eq(json_string_value(
		                     json_array_get(json_object_get(m, "pool"),
		                         1)),
		    "kb/x2");
	}
	ck_assert_msg(found, "no pool in %s", h_jtext(j));
	json_decref(j);
}
END_TEST

/* status shows the pools, text and JSON. */
/*
 * A lease may name a pool: it goes to a member, as a call's attempt would,
 * and says which. A 429 reported for it cools that member down: the next
 * leases, and calls, go to the other one.
 */
START_TEST(test_lease_on_pool)
{
	struct llmgate *g = h_connect(&d, "pools-lease");
	struct llmgate_acquire *acq = llmgate_acquire_new("leasep");
	struct llmgate_lease *lease;
	struct llmgate_report *rep;
	struct llmgate_result *res;
	enum llmgate_class cls;
	struct run r;
	char err[256], cooled[64], other[64], *lid;
	json_t *j;
	int i;

	h_cli(&r, &d, NULL, "acquire", "-m", "leasep", "--json", NULL);
	j = cli_json(&r, 0);
	snprintf(cooled, sizeof cooled, "%s", jstr(j, "target"));
	ck_assert_msg(strcmp(cooled, "ka/e1") == 0 ||
	        strcmp(cooled, "kb/e2") == 0,
	    "lease on %s", cooled);
	snprintf(other, sizeof other, "%s",
	    strcmp(cooled, "ka/e1") == 0 ? "kb/e2" : "ka/e1");
	lid = h_strdup_printf("%s", jstr(j, "lease"));
	json_decref(j);
	h_cli(&r, &d, NULL, "report", lid, "--status", "429", "--retry-after",
	    "30", NULL);
	ck_assert_msg(r.status == 0, "report: %s", r.err);
	h_run_free(&r);
	free(lid);

	/* The member cools down: every lease goes to the other. */
	for (i = 0; i < 4; i++) {
		lease = NULL;
		ck_assert_msg(llmgate_acquire(g, acq, &lease, &cls, err,
		                  sizeof err) == 0,
		    "acquire %d: %s", i, err);
		ck_assert_str_eq(lease->target, other);
		rep = llmgate_report_new(lease->id, 200);
		ck_assert_int_eq(llmgate_report(g, rep), 0);
		llmgate_report_free(rep);
		llmgate_lease_free(lease);
	}
	/* And a call, sharing what the lease's report taught. */
	res = call(g, "hi", "leasep");
	ck_assert_msg(res->cls == LLMGATE_OK, "%s", res->message);
	ck_assert_str_eq(res->target, other);
	ck_assert_uint_eq(res->nattempts, 1);
	llmgate_result_free(res);
	ck_assert_int_eq(h_fakeprov_count(fp_port, cooled + 3, NULL), 0);

	/* A name that is neither provider/model nor a pool is refused. */
	h_cli(&r, &d, NULL, "acquire", "-m", "nopool", NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "invalid_request") != NULL, "%s", r.err);
	h_run_free(&r);
	llmgate_acquire_free(acq);
	llmgate_close(g);
}
END_TEST

START_TEST(test_status)
{
	struct run r;
	json_t *st, *m;

	st = status_json();
	m = member_status(st, "weigh", "wa/w1");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "weight")), 3);
	ck_assert(json_is_true(json_object_get(m, "ready")));
	json_decref(st);
	h_cli(&r, &d, NULL, "status", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "POOL") != NULL &&
	        strstr(r.out, "weigh") != NULL &&
	        strstr(r.out, "wa/w1") != NULL,
	    "no pools in: %s", r.out);
	h_run_free(&r);
}
END_TEST

/* A reload swaps the pools: a new one works, a removed one is gone. */
START_TEST(test_reload)
{
	struct run r;
	char *conf;
	FILE *f;

	conf = pools_conf(",\n  { name = \"fresh\"; targets = "
	                  "[ \"kc/f1\" ]; }\n");
	/* Drop a pool too: the last one, nomove. */
	*strstr(conf, ",\n  { name = \"nomove\"") = '\0';
	{
		char *rest = strstr(conf + strlen(conf) + 1,
		    ",\n  { name = "
		    "\"fresh\"");
		char *joined = h_strdup_printf("%s%s", conf, rest);

		free(conf);
		conf = joined;
	}
	ck_assert_ptr_nonnull(f = fopen(d.conf, "w"));
	fputs(conf, f);
	fclose(f);
	free(conf);
	h_cli(&r, &d, NULL, "reload", NULL);
	ck_assert_msg(r.status == 0, "reload: %s", r.err);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "--json", "-m", "fresh", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s %s", r.status, r.out, r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "\"kc/f1\""));
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "-m", "nomove", "hi", NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_msg(strstr(r.err, "neither provider/model nor a pool") !=
	        NULL,
	    "%s", r.err);
	h_run_free(&r);
}
END_TEST

static Suite *
pools_suite(void)
{
	Suite *s = suite_create("pools");
	TCase *tc = tcase_create("pools");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_429_moves);
	tcase_add_test(tc, test_max_moves_zero);
	tcase_add_test(tc, test_move_keeps_attempts);
	tcase_add_test(tc, test_strategies);
	tcase_add_test(tc, test_inflight_skipped);
	tcase_add_test(tc, test_all_cooling_falls_back);
	tcase_add_test(tc, test_all_cooling_waits);
	tcase_add_test(tc, test_overloaded_not_hammered);
	tcase_add_test(tc, test_pool_in_route);
	tcase_add_test(tc, test_pool_over_http);
	tcase_add_test(tc, test_lease_on_pool);
	tcase_add_test(tc, test_status);
	/* Last: it changes the config. */
	tcase_add_test(tc, test_reload);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pools_suite());
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 && !fixture_failed ? 0 : 1;
}
