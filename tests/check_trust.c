/*
 * check_trust.c: what one local client does cannot exhaust or poison what
 * the real llmgated holds for everyone. Each test runs the attack through
 * the daemon (as the unprivileged user nobody where a second uid
 * matters), then checks that another client is still served.
 */
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <grp.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>

#include "harness.h"
#include "llmgated.h"

static struct daemon d;
static pid_t fp_pid;
static int fp_port;

static const char *base_conf =
    "socket_mode = \"0666\";\n"
    "providers = ( { name = \"mock\"; type = \"mock\";\n"
    "    models = ( { name = \"declared\"; } ); },\n"
    "  { name = \"az\"; type = \"azure\"; base_url = \"http://127.0.0.1:9\";\n"
    "    api_version = \"2024-06-01\";\n"
    "    api_key = \"az-key\"; },\n"
    "  { name = \"gem\"; type = \"gemini\"; base_url = \"http://127.0.0.1:9\";\n"
    "    api_key = \"gem-key\"; } );\n"
    "routes = ( { name = \"default\"; targets = [ \"mock/echo\" ]; } );\n"
    "retry = { attempts = 1; };\n";

static void
start(const char *extra)
{
	char *conf =
	    h_strdup_printf("%s%s", base_conf, extra != NULL ? extra : "");

	h_daemon_start(&d, conf);
	free(conf);
	/* The socket's directory, for a client that is not root. */
	ck_assert_int_eq(chmod(d.dir, 0755), 0);
}

static void
setup(void)
{
	start(NULL);
}

static void
teardown(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
}

/* A lease on target, or -1 (class in *cls, why in err). */
static int
lease(struct llmgate *g, const char *target, uint64_t *id,
    enum llmgate_class *cls, char *err, size_t errlen)
{
	struct llmgate_acquire *acq = llmgate_acquire_new(target);
	struct llmgate_lease *l = NULL;
	int rv;

	*cls = LLMGATE_OK;
	err[0] = '\0';
	rv = llmgate_acquire(g, acq, &l, cls, err, errlen);
	llmgate_acquire_free(acq);
	if (rv != 0)
		return rv < 0 ? -2 : -1;
	*id = l->id;
	llmgate_lease_free(l);
	return 0;
}

/* Report lease with status (and a Retry-After when >= 0): 0 if taken. */
static int
report(struct llmgate *g, uint64_t id, uint32_t status, double retry_after)
{
	struct llmgate_report *rep = llmgate_report_new(id, status);
	int rv;

	if (retry_after >= 0)
		llmgate_report_set_retry_after(rep, retry_after);
	rv = llmgate_report(g, rep);
	llmgate_report_free(rep);
	return rv;
}

/* A call anyone else makes: the default route, answered ok. */
static void
served(const char *target)
{
	struct llmgate *g = h_connect(&d, "bystander");
	struct llmgate_request *req = h_request("still there?", target, NULL);
	struct llmgate_result *res = NULL;

	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s: %s",
	    target != NULL ? target : "default route",
	    llmgate_class_name(res->cls),
	    res->message != NULL ? res->message : "");
	llmgate_result_free(res);
	h_request_free(req);
	llmgate_close(g);
}

/* A lease anyone else takes on a target never seen before. */
static void
new_target_served(const char *target)
{
	struct llmgate *g = h_connect(&d, "newcomer");
	enum llmgate_class cls;
	uint64_t id;
	char err[256];

	ck_assert_msg(lease(g, target, &id, &cls, err, sizeof err) == 0,
	    "%s: %s: %s", target, llmgate_class_name(cls), err);
	llmgate_close(g);
}

/* Leases on invented model names, each reported at once. */
static int
invent_names(void *arg)
{
	enum llmgate_class cls;
	struct llmgate *g;
	uint64_t id;
	char name[64], err[256];
	int i, n = *(int *)arg;

	if ((g = llmgate_connect(d.sock, "inventor", err, sizeof err)) ==
	    NULL) {
		fprintf(stderr, "connect: %s\n", err);
		return 101;
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof name, "mock/junk-%d", i);
		if (lease(g, name, &id, &cls, err, sizeof err) != 0) {
			fprintf(stderr, "lease %d on %s: %s: %s\n", i, name,
			    llmgate_class_name(cls), err);
			return 102;
		}
		if (report(g, id, 200, -1) != 0)
			return 103;
	}
	llmgate_close(g);
	return 0;
}

/*
 * Issue 15, item 1: leases on thousands of invented names used to fill the
 * target table for good. Now idle targets are evicted: the inventor gets
 * every lease it asks for, and everyone else still gets new targets.
 */
START_TEST(test_invented_names_do_not_fill_the_table)
{
	int n = TARGET_MAX + 200;

	ck_assert_int_eq(h_as_nobody(invent_names, &n), 0);
	served(NULL);
	served("mock/echo");
	new_target_served("mock/after-the-flood");
	ck_assert(h_daemon_alive(&d));
}
END_TEST

/* Leases held (not reported) on distinct names: how many were granted. */
static int
hoard_names(void *arg)
{
	enum llmgate_class cls;
	struct llmgate *g;
	uint64_t id;
	char name[64], err[256];
	int i, ok = 0, n = *(int *)arg;

	if ((g = llmgate_connect(d.sock, "hoarder", err, sizeof err)) == NULL)
		return 101;
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof name, "mock/held-%d", i);
		if (lease(g, name, &id, &cls, err, sizeof err) == 0) {
			ok++;
			continue;
		}
		if (cls != LLMGATE_INVALID_REQUEST ||
		    strstr(err, "targets") == NULL) {
			fprintf(stderr, "lease %d: %s: %s\n", i,
			    llmgate_class_name(cls), err);
			return 102;
		}
	}
	/* Hold them while the parent checks. */
	return ok == TARGET_PER_UID ? 0 : 103;
}

/*
 * Targets one uid keeps alive (leased, cooling down, ...) are capped per
 * uid: past TARGET_PER_UID a new one is refused with a reason, and the
 * configured targets and other users' new ones are unaffected.
 */
START_TEST(test_targets_capped_per_uid)
{
	int n = TARGET_PER_UID + 20;

	ck_assert_int_eq(h_as_nobody(hoard_names, &n), 0);
	served(NULL);
	new_target_served("mock/root-new");
}
END_TEST

/* strict_models: only the models the config names, as models or in routes. */
START_TEST(test_strict_models)
{
	struct llmgate *g;
	enum llmgate_class cls;
	uint64_t id;
	char err[256];

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("strict_models = true;\n");
	g = h_connect(&d, "strict");
	ck_assert_int_eq(lease(g, "mock/invented", &id, &cls, err, sizeof err),
	    -1);
	ck_assert_int_eq(cls, LLMGATE_INVALID_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "strict_models"));
	ck_assert_int_eq(lease(g, "mock/declared", &id, &cls, err, sizeof err),
	    0);
	llmgate_close(g);
	served(NULL);
	served("mock/echo");
}
END_TEST

/*
 * Issue 15, item 7: model names are checked once at the door (UTF-8, no
 * control characters, no "." or ".." segment, no '/' where the provider
 * puts the name in its URL path), and client text that is printed is
 * escaped: a name or route cannot forge a log line.
 */
START_TEST(test_names_checked_at_the_door)
{
	static const char *bad[] = {
		"mock/echo\r\n2099-01-01T00:00:00 llmgated warning: forged",
		"mock/bell\a",
		"mock/nel\xc2\x85",
		"mock/\xff\xfe",
		"az/\xff",
		"gem/\xc3",
		"az/.",
		"az/..",
		"az/a/b",
		"gem/..",
		"gem/a/b",
		"gem/models/",
		"mock/a/../b",
		"mock/./x",
	};
	static const char *good[] = {
		"mock/\xc3\xbc"
		"nic\xc3\xb6"
		"de",
		"gem/models/gemini-pro",
		"gem/gemini-pro",
		"az/my-deployment.v2",
		"mock/org/model",
	};
	struct llmgate *g = h_connect(&d, "names");
	struct llmgate_request *req;
	struct llmgate_result *res = NULL;
	enum llmgate_class cls;
	json_t *st;
	uint64_t id;
	char err[256], *text, *log;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(lease(g, bad[i], &id, &cls, err, sizeof err) ==
		        -1,
		    "accepted: %s", bad[i]);
		ck_assert_int_eq(cls, LLMGATE_INVALID_REQUEST);
		/* The refusal itself is printable, one line. */
		ck_assert_ptr_null(strpbrk(err, "\r\n\a"));
	}
	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(lease(g, good[i], &id, &cls, err, sizeof err) ==
		        0,
		    "%s: %s: %s", good[i], llmgate_class_name(cls), err);

	/* A call naming a bad model, and an unknown route with a break. */
	req = h_request("x", bad[0], NULL);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_INVALID_REQUEST);
	llmgate_result_free(res);
	h_request_free(req);
	req = h_request("x", NULL);
	ck_assert_int_eq(llmgate_request_set_route(req,
	                     "r\n2099-01-01T00:00:00 llmgated warning: forged"),
	    0);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_INVALID_REQUEST);
	ck_assert_ptr_null(strpbrk(res->message, "\r\n"));
	llmgate_result_free(res);
	h_request_free(req);

	/* Every target is in the status, which is valid JSON. */
	ck_assert_int_eq(llmgate_status(g, &text), 0);
	st = json_loads(text, 0, NULL);
	ck_assert_msg(st != NULL, "status: %s", text);
	ck_assert_ptr_nonnull(strstr(text, "gem/models/gemini-pro"));
	json_decref(st);
	free(text);
	llmgate_close(g);
	served(NULL);

	log = h_daemon_log(&d);
	ck_assert_msg(strstr(log, "\n2099-01-01") == NULL &&
	        strchr(log, '\r') == NULL,
	    "a forged line: %s", log);
	free(log);
}
END_TEST

/*
 * Issue 15, item 6: an upstream that echoes the request headers in its
 * error body, and OpenAI's 401 that quotes the ends of a wrong key: no
 * key reaches attempts[].message, the result or the log, for any of the
 * four providers.
 */
START_TEST(test_upstream_text_scrubbed)
{
	static const char *targets[] = {
		"oa/m+status=500+echo_headers",
		"az/m+status=500+echo_headers",
		"an/m+status=500+echo_headers",
		"gem/m+status=500+echo_headers",
		"oabad/m",
	};
	static const char *keys[] = {
		"test-key",
		"sk-proj-WrongKey0123456789abcdefXYZ9",
		"XYZ9",
	};
	struct llmgate *g;
	struct llmgate_request *req;
	struct llmgate_result *res;
	char *conf, *log;
	size_t i, k;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	fp_port = h_fakeprov_start(&fp_pid);
	conf = h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"test-key\"; },\n"
	    "  { name = \"az\"; type = \"azure\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d\"; api_version = \"2024-10-21\";\n"
	    "    api_key = \"test-key\"; },\n"
	    "  { name = \"an\"; type = \"anthropic\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"test-key\"; },\n"
	    "  { name = \"gem\"; type = \"gemini\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1beta\"; api_key = \"test-key\"; },\n"
	    "  { name = \"oabad\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\";\n"
	    "    api_key = \"sk-proj-WrongKey0123456789abcdefXYZ9\"; }\n"
	    ");\n"
	    "retry = { attempts = 1; };\n",
	    fp_port);
	h_daemon_start(&d, conf);
	free(conf);

	g = h_connect(&d, "scrub");
	for (i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		req = h_request("x", targets[i], NULL);
		ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
		ck_assert_int_ne(res->cls, LLMGATE_OK);
		ck_assert_uint_eq(res->nattempts, 1);
		ck_assert_ptr_nonnull(res->attempts[0].message);
		/* The upstream's text is there, less the secrets. */
		ck_assert_msg(strstr(res->attempts[0].message,
		                  i < 4 ? "request headers" :
		                          "Incorrect API key") != NULL,
		    "%s: %s", targets[i], res->attempts[0].message);
		ck_assert_msg(strstr(res->attempts[0].message, "[redacted]") !=
		        NULL,
		    "%s: %s", targets[i], res->attempts[0].message);
		for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			ck_assert_msg(strstr(res->attempts[0].message,
			                  keys[k]) == NULL,
			    "%s: a key in: %s", targets[i],
			    res->attempts[0].message);
			ck_assert_msg(res->message == NULL ||
			        strstr(res->message, keys[k]) == NULL,
			    "%s: a key in: %s", targets[i], res->message);
		}
		llmgate_result_free(res);
		h_request_free(req);
	}
	llmgate_close(g);
	log = h_daemon_log(&d);
	ck_assert_ptr_nonnull(strstr(log, "request headers"));
	for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
		ck_assert_msg(strstr(log, keys[k]) == NULL,
		    "a key in the "
		    "log: %s",
		    log);
	free(log);
	h_fakeprov_stop(fp_pid);
	start(NULL);
}
END_TEST

/* The shapes of secrets scrub() knows, and text it leaves alone. */
START_TEST(test_scrub_shapes)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "Authorization: Bearer abc.def-123",
		    "Authorization: Bearer "
		    "[redacted]" },
		{ "authorization=bearer tok_XYZ",
		    "authorization=bearer "
		    "[redacted]" },
		{ "{\"api-key\": \"0123456789abcdef\"}",
		    "{\"api-key\": "
		    "\"[redacted]\"}" },
		{ "x-api-key: sk-ant-api03-abc", "x-api-key: [redacted]" },
		{ "x-goog-api-key:AIzaSyA-123456789012345",
		    "x-goog-api-key:[redacted]" },
		{ "key AIzaSyA-123456789012345 bad", "key [redacted] bad" },
		{ "Incorrect API key provided: sk-proj-****abcd.",
		    "Incorrect API key provided: [redacted]." },
		{ "provided: abc1********************wxyz, retry",
		    "provided: [redacted], retry" },
		{ "GET /v1/models?key=secret123&x=1",
		    "GET /v1/models?key=[redacted]&x=1" },
		{ "see https://platform.openai.com/account/api-keys.",
		    "see https://platform.openai.com/account/api-keys." },
		{ "Missing api_key parameter", "Missing api_key parameter" },
		{ "Rate limit reached for gpt-4o in organization org-abc",
		    "Rate limit reached for gpt-4o in organization org-abc" },
	};
	char *out;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		out = scrub(cases[i].in);
		ck_assert_msg(strcmp(out, cases[i].out) == 0, "%s -> %s",
		    cases[i].in, out);
		free(out);
	}
	ck_assert_ptr_null(scrub(NULL));
	scrub_free();
}
END_TEST

/* A target's entry in the status, or NULL (decref the status). */
static json_t *
status_target(json_t **st, const char *name)
{
	struct llmgate *g = h_connect(&d, "status");
	json_t *ts;
	char *text;
	size_t i;

	ck_assert_int_eq(llmgate_status(g, &text), 0);
	llmgate_close(g);
	*st = json_loads(text, 0, NULL);
	free(text);
	ck_assert_ptr_nonnull(*st);
	ts = json_object_get(*st, "targets");
	for (i = 0; i < json_array_size(ts); i++) {
		if (strcmp(json_string_value(
		               json_object_get(json_array_get(ts, i),
		                   "target")),
		        name) == 0)
			return json_array_get(ts, i);
	}
	return NULL;
}

/* Leases taken until refused, never reported: 0 when the cap held. */
static int
hoard_leases(void *arg)
{
	enum llmgate_class cls = LLMGATE_OK;
	struct llmgate *g;
	uint64_t id;
	char err[256];
	int i, ok = 0;

	(void)arg;
	if ((g = llmgate_connect(d.sock, "hoarder", err, sizeof err)) == NULL)
		return 101;
	for (i = 0; i < 5000; i++) {
		if (lease(g, "mock/echo", &id, &cls, err, sizeof err) != 0)
			break;
		ok++;
	}
	if (ok != 4096 || cls != LLMGATE_OVERLOADED ||
	    strstr(err, "uid") == NULL) {
		fprintf(stderr, "%d leases, then %s: %s\n", ok,
		    llmgate_class_name(cls), err);
		return 102;
	}
	return 0;
}

/*
 * Issue 15, item 4: one user's leases are capped (4,096 outstanding);
 * everyone else still gets theirs.
 */
START_TEST(test_leases_capped_per_uid)
{
	ck_assert_int_eq(h_as_nobody(hoard_leases, NULL), 0);
	new_target_served("mock/echo");
	served(NULL);
}
END_TEST

/* Report someone else's lease (its id is in *arg): refused. */
static int
report_foreign(void *arg)
{
	struct llmgate *g;
	char err[256];

	if ((g = llmgate_connect(d.sock, "poisoner", err, sizeof err)) == NULL)
		return 101;
	return report(g, *(uint64_t *)arg, 429, 1e12) == 0 ? 102 : 0;
}

/* Own leases reported as failures, as fast as can be. */
static int
report_failures(void *arg)
{
	enum llmgate_class cls;
	struct llmgate *g;
	uint64_t id;
	char err[256];
	int i;

	(void)arg;
	if ((g = llmgate_connect(d.sock, "poisoner", err, sizeof err)) == NULL)
		return 101;
	/* An absurd Retry-After on a popular target. */
	if (lease(g, "mock/echo", &id, &cls, err, sizeof err) != 0)
		return 102;
	if (report(g, id, 429, 1e12) != 0)
		return 103;
	/* Twenty 503s at another: enough to open any breaker. */
	for (i = 0; i < 20; i++) {
		if (lease(g, "mock/brk", &id, &cls, err, sizeof err) != 0)
			return 104;
		if (report(g, id, 503, -1) != 0)
			return 105;
	}
	return 0;
}

/*
 * Issue 15, item 4: only the user that took a lease may report it; a
 * report cools a target down for a minute at most; one user's failure
 * reports move cooldowns and breakers a little, then are logged and not
 * applied.
 */
START_TEST(test_reports_bounded)
{
	struct llmgate *g = h_connect(&d, "owner");
	enum llmgate_class cls;
	json_t *st, *t;
	uint64_t id;
	char err[256], *log;

	ck_assert_int_eq(lease(g, "mock/echo", &id, &cls, err, sizeof err), 0);
	ck_assert_int_eq(h_as_nobody(report_foreign, &id), 0);
	/* Still the owner's to report, and the target is not cooling. */
	ck_assert_int_eq(report(g, id, 200, -1), 0);
	t = status_target(&st, "mock/echo");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(json_integer_value(json_object_get(t, "cooldown_ms")),
	    0);
	json_decref(st);
	llmgate_close(g);

	ck_assert_int_eq(h_as_nobody(report_failures, NULL), 0);
	t = status_target(&st, "mock/echo");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_le(json_integer_value(json_object_get(t, "cooldown_ms")),
	    60000);
	json_decref(st);
	t = status_target(&st, "mock/brk");
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(json_string_value(json_object_get(t, "breaker")),
	    "closed");
	json_decref(st);
	log = h_daemon_log(&d);
	ck_assert_msg(strstr(log, "not applied to cooldowns or breakers") !=
	        NULL,
	    "%s", log);
	free(log);
}
END_TEST

static int
tcp_connect(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd == -1)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* GET /metrics: the HTTP status, or -1 with no answer within 5 s. */
static int
metrics_get(int port)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	char buf[65536];
	struct pollfd pfd;
	size_t len = 0;
	ssize_t n;
	int fd, status = -1;

	if ((fd = tcp_connect(port)) == -1)
		return -1;
	if (write(fd, req, sizeof req - 1) != (ssize_t)sizeof req - 1) {
		close(fd);
		return -1;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (len < sizeof buf - 1 && poll(&pfd, 1, 5000) > 0 &&
	    (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	return status;
}

/*
 * Issue 15, item 5: a user who may not use the socket opens connection
 * after connection to metrics_listen and trickles bytes. The daemon runs
 * with few descriptors, as one at its limit would: without a cap the
 * flood takes them all and nobody gets an answer. Now the endpoint keeps
 * a few connections, the oldest unfinished one giving way to a new one,
 * and a scraper is still answered; the log does not fill up.
 */
START_TEST(test_metrics_flood)
{
	struct rlimit low, high;
	struct passwd *pw = getpwnam("nobody");
	char *extra, *log, *p, ch;
	int port = h_free_port(), ready[2], hold[2], i, n, st, lines = 0;
	pid_t pid;

	ck_assert_ptr_nonnull(pw);
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &high), 0);
	low = high;
	low.rlim_cur = 256;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	extra = h_strdup_printf("metrics_listen = \"127.0.0.1:%d\";\n", port);
	start(extra);
	free(extra);
	/* The daemon keeps the low one. */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &high), 0);
	ck_assert_int_eq(metrics_get(port), 200);

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(hold), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		if (setgroups(0, NULL) != 0 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
			_exit(120);
		for (i = n = 0; i < 600; i++) {
			int fd = tcp_connect(port);

			if (fd != -1 && write(fd, "G", 1) == 1)
				n++;
		}
		/* Connections open and trickling: the parent checks now. */
		if (write(ready[1], "x", 1) != 1)
			_exit(121);
		(void)read(hold[0], &ch, 1);
		_exit(n > 0 ? 0 : 122);
	}
	close(ready[1]);
	close(hold[0]);
	ck_assert_int_eq(read(ready[0], &ch, 1), 1);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(metrics_get(port), 200);
	served(NULL);
	close(hold[1]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	close(ready[0]);

	log = h_daemon_log(&d);
	for (p = log; (p = strstr(p, "metrics: ")) != NULL; p++)
		lines++;
	ck_assert_msg(lines < 10, "%d metrics lines: %s", lines, log);
	free(log);
}
END_TEST

/*
 * A state file that is a FIFO does not block the start; one that is a
 * link to another file does not get a word of it printed.
 */
START_TEST(test_state_file_odd)
{
	char dir[] = "/tmp/llmgate-trust.XXXXXX", *fifo, *link, *secret;
	char *extra, *log;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	fifo = h_strdup_printf("%s/fifo.json", dir);
	link = h_strdup_printf("%s/link.json", dir);
	secret = h_strdup_printf("%s/secret", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_ptr_nonnull(f = fopen(secret, "w"));
	fputs("hunter2-topsecret:x:19000:0:99999:7:::\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(symlink(secret, link), 0);

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	extra = h_strdup_printf("state_file = \"%s\";\n", fifo);
	start(extra); /* fails the test if the daemon never gets ready */
	free(extra);
	served(NULL);
	log = h_daemon_log(&d);
	ck_assert_msg(strstr(log, "not a regular file") != NULL, "%s", log);
	free(log);
	ck_assert_int_eq(h_daemon_stop(&d), 0);

	extra = h_strdup_printf("state_file = \"%s\";\n", link);
	start(extra);
	free(extra);
	served(NULL);
	log = h_daemon_log(&d);
	ck_assert_msg(strstr(log, "state file ignored") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "hunter2") == NULL, "%s", log);
	free(log);
	ck_assert_int_eq(h_daemon_stop(&d), 0);

	unlink(fifo);
	unlink(link);
	unlink(secret);
	extra = h_strdup_printf("%s.tmp", fifo);
	unlink(extra);
	free(extra);
	extra = h_strdup_printf("%s.tmp", link);
	unlink(extra);
	free(extra);
	rmdir(dir);
	free(fifo);
	free(link);
	free(secret);
	start(NULL);
}
END_TEST

/* dm's log does not say what. */
static void
log_lacks(struct daemon *dm, const char *what)
{
	char *log = h_daemon_log(dm);

	ck_assert_msg(strstr(log, what) == NULL, "%s", log);
	free(log);
}

/* The daemon again, with extra, on fakeprov as provider oa (openai). */
static void
start_upstream(const char *extra)
{
	char *conf;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	fp_port = h_fakeprov_start(&fp_pid);
	conf = h_strdup_printf(
	    "%s"
	    "providers = ( { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%d/v1\"; api_key = \"test-key\"; } );\n"
	    "retry = { attempts = 1; };\n",
	    extra, fp_port);
	h_daemon_start(&d, conf);
	free(conf);
}

/* Back to the daemon of the other tests. */
static void
stop_upstream(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	h_fakeprov_stop(fp_pid);
	start(NULL);
}

/* "w w ... w", n words (free()). */
static char *
words(size_t n)
{
	char *p = malloc(2 * n);
	size_t i;

	for (i = 0; i < n; i++)
		memcpy(p + 2 * i, "w ", 2);
	p[2 * n - 1] = '\0';
	return p;
}

struct stream_tally {
	int done;
	size_t chunks;
	size_t bytes;
	struct llmgate_result *res;
};

static void
stream_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct stream_tally *t = arg;

	t->chunks++;
	t->bytes += ch->text != NULL ? ch->len : 0;
}

static void
stream_done(struct llmgate_result *res, void *arg)
{
	struct stream_tally *t = arg;

	t->res = res;
	t->done = 1;
}

/*
 * Issue 15, item 3: an upstream that streams faster than its client reads
 * used to get the client dropped ("not reading its replies") with every
 * call on its connection; and the final result repeated the whole text.
 * Now the upstream transfer is paused while the client's queue is high,
 * and the result does not resend the text (the library rebuilds it).
 */
START_TEST(test_fast_stream_slow_reader)
{
	enum { WORDS = 20000 };
	struct llmgate *g;
	struct llmgate_request *req;
	struct llmgate_result *res = NULL;
	struct stream_tally t = { 0 };
	char *prompt, *want;

	start_upstream("max_frame = 65536; max_output = 65536;\n");
	prompt = words(WORDS);
	g = h_connect(&d, "slow reader");
	req = h_request(prompt, "oa/fast", NULL);
	ck_assert_int_eq(llmgate_request_set_stream(req, 1), 0);
	ck_assert_uint_gt(llmgate_submit(g, req, stream_chunk, stream_done, &t),
	    0);
	/* Not reading for a while, as a busy client would. */
	h_sleep_ms(1500);
	h_drive(g, &t.done);
	ck_assert_msg(t.res->cls == LLMGATE_OK, "%s: %s",
	    llmgate_class_name(t.res->cls), t.res->message);
	want = h_strdup_printf("echo: %s", prompt);
	ck_assert_uint_eq(t.bytes, strlen(want));
	ck_assert_uint_gt(t.chunks, WORDS / 2);
	ck_assert_ptr_nonnull(t.res->text);
	ck_assert_msg(strcmp(t.res->text, want) == 0, "the result's text");
	llmgate_result_free(t.res);
	h_request_free(req);

	/* The same connection still serves. */
	req = h_request("again", "oa/fast", NULL);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_OK);
	ck_assert_str_eq(res->text, "echo: again");
	llmgate_result_free(res);
	h_request_free(req);
	llmgate_close(g);

	log_lacks(&d, "not reading its replies");
	free(want);
	free(prompt);
	stop_upstream();
}
END_TEST

/*
 * Issue 15, item 3: replies that finish together can pass max_output in
 * one loop round, before the daemon writes any of them. A client that
 * reads them all the while used to be dropped for it ("not reading its
 * replies") with every call on its connection; now only one that reads
 * none of its output for frame_timeout_ms is.
 */
START_TEST(test_reply_burst_reader_kept)
{
	enum { N = 80, PROMPT = 6000 };
	struct stream_tally t[N];
	struct llmgate_request *req;
	struct llmgate *g;
	char *conf, *prompt, *want;
	int i;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	conf = h_strdup_printf("%smax_frame = 8192;\nmax_output = 65536;\n",
	    base_conf);
	h_daemon_start(&d, conf);
	free(conf);
	prompt = malloc(PROMPT + 1);
	memset(prompt, 'b', PROMPT);
	prompt[PROMPT] = '\0';
	want = h_strdup_printf("echo: %s", prompt);
	memset(t, 0, sizeof t);
	g = h_connect(&d, "burst");
	/* All answered together, after the same wait. */
	req = h_request(prompt, "mock/slow:700", NULL);
	for (i = 0; i < N; i++)
		ck_assert_uint_gt(llmgate_submit(g, req, NULL, stream_done,
		                      &t[i]),
		    0);
	for (i = 0; i < N; i++) {
		h_drive(g, &t[i].done);
		ck_assert_msg(t[i].res->cls == LLMGATE_OK, "call %d: %s: %s", i,
		    llmgate_class_name(t[i].res->cls), t[i].res->message);
		ck_assert_str_eq(t[i].res->text, want);
		llmgate_result_free(t[i].res);
	}
	h_request_free(req);
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
	log_lacks(&d, "not reading its replies");
	free(want);
	free(prompt);
}
END_TEST

/*
 * A streamed reply over REPLY_MAX_TEXT (8 MiB) ends as parse_error, with
 * the client still connected, rather than dropping it while the log says
 * ok.
 */
START_TEST(test_stream_text_capped)
{
	size_t n = REPLY_MAX_TEXT + 4096, i;
	struct llmgate_request *req;
	struct llmgate_result *res = NULL;
	struct llmgate *g;
	char *conf, *prompt;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	conf = h_strdup_printf("%smax_frame = 16777216;\n"
	                       "max_output = 16777216;\n",
	    base_conf);
	h_daemon_start(&d, conf);
	free(conf);
	prompt = malloc(n + 1);
	for (i = 0; i < n; i++)
		prompt[i] = i % 64 == 63 ? ' ' : 'x';
	prompt[n] = '\0';
	g = h_connect(&d, "big");
	req = h_request(prompt, "mock/echo", NULL);
	ck_assert_int_eq(llmgate_request_set_stream(req, 1), 0);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_PARSE_ERROR);
	ck_assert_ptr_nonnull(strstr(res->message, "over"));
	llmgate_result_free(res);
	h_request_free(req);
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
	free(prompt);
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start(NULL);
}
END_TEST

/*
 * Issue 15, item 2: a client that never says hello, or begins a frame and
 * trickles it, is told why and closed after frame_timeout_ms; others are
 * served meanwhile.
 */
START_TEST(test_hello_and_frame_deadlines)
{
	struct proto_msg m;
	msgpack_sbuffer sb;
	struct llmgate_request *req;
	uint64_t t0;
	int silent, trickler, i;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("frame_timeout_ms = 1000;\n");
	silent = h_raw_connect(&d, 0);
	trickler = h_raw_connect(&d, 1);
	/* A call frame, all but its last byte, a byte every 200 ms. */
	msgpack_sbuffer_init(&sb);
	req = h_request("never finished", "mock/echo", NULL);
	proto_enc_call(&sb, 1, req);
	h_request_free(req);
	t0 = h_mono_ms();
	for (i = 0; i < (int)sb.size - 1 && i < 40; i++) {
		if (send(trickler, sb.data + i, 1, MSG_NOSIGNAL) != 1)
			break;
		served(NULL);
		h_sleep_ms(100);
	}
	ck_assert_int_eq(h_raw_recv(silent, &m, 5000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "hello"));
	proto_msg_free(&m);
	ck_assert(h_raw_closed(silent, 5000));
	ck_assert_int_eq(h_raw_recv(trickler, &m, 5000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "not finished"));
	proto_msg_free(&m);
	ck_assert(h_raw_closed(trickler, 5000));
	ck_assert_uint_lt(h_mono_ms() - t0, 20000);
	close(silent);
	close(trickler);
	msgpack_sbuffer_destroy(&sb);
	served(NULL);
}
END_TEST

/* h_drive() for a child: 0 once *done, -1 on a stall of 10 s or a lost
 * connection. */
static int
drive(struct llmgate *g, int *done)
{
	while (!*done) {
		struct pollfd pfd = { .fd = llmgate_fd(g) };

		pfd.events = POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
		if (poll(&pfd, 1, 10000) <= 0 || llmgate_process(g) < 0)
			return -1;
	}
	return 0;
}

struct flood {
	int n;            /* calls to submit */
	size_t prompt;    /* bytes of each prompt */
	const char *want; /* in the refusals' message */
};

/* Slow calls from one user until refused: 0 when some were refused as
 * overloaded, saying want, and the rest went. */
static int
flood_calls(void *arg)
{
	const struct flood *f = arg;
	struct stream_tally *t = calloc((size_t)f->n, sizeof *t);
	struct llmgate_request *req;
	struct llmgate *g;
	char err[256], *prompt = malloc(f->prompt + 1);
	int i, refused = 0, ok = 0, bad = 0;

	memset(prompt, 'p', f->prompt);
	prompt[f->prompt] = '\0';
	if ((g = llmgate_connect(d.sock, "flood", err, sizeof err)) == NULL)
		return 101;
	req = h_request(prompt, "mock/slow:1500", NULL);
	for (i = 0; i < f->n; i++) {
		if (llmgate_submit(g, req, NULL, stream_done, &t[i]) == 0)
			return 102;
	}
	for (i = 0; i < f->n; i++) {
		if (drive(g, &t[i].done) != 0)
			return 103;
		if (t[i].res->cls == LLMGATE_OK)
			ok++;
		else if (t[i].res->cls == LLMGATE_OVERLOADED &&
		    strstr(t[i].res->message, f->want) != NULL)
			refused++;
		else {
			fprintf(stderr, "call %d: %s: %s\n", i,
			    llmgate_class_name(t[i].res->cls),
			    t[i].res->message);
			bad++;
		}
		llmgate_result_free(t[i].res);
	}
	fprintf(stderr, "%d ok, %d refused\n", ok, refused);
	return bad == 0 && refused > 0 && ok > 0 ? 0 : 104;
}

/*
 * Per-user caps on calls in flight and request bytes held: one user's
 * flood is refused as overloaded past them; another user is served.
 */
START_TEST(test_calls_and_bytes_per_uid)
{
	struct flood calls = { 20, 10, "max_calls_per_uid" };
	struct flood bytes = { 10, 30000, "max_bytes_per_uid" };

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("max_calls_per_uid = 8;\nmax_bytes_per_uid = 100000;\n");
	ck_assert_int_eq(h_as_nobody(flood_calls, &calls), 0);
	served(NULL);
	ck_assert_int_eq(h_as_nobody(flood_calls, &bytes), 0);
	served(NULL);

	/* The machine-wide ceiling refuses new work from anyone meanwhile,
	 * and serves again once the flood is over. */
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("max_bytes_per_uid = 0;\nmax_memory = 100000;\n");
	bytes.want = "max_memory";
	ck_assert_int_eq(h_as_nobody(flood_calls, &bytes), 0);
	served(NULL);
}
END_TEST

/*
 * A frame is accounted as what its decoding holds, not only its bytes:
 * one byte of an empty map in a message's tool_calls decodes to a
 * 24-byte struct, so a call of 60 KB that holds 1.4 MB is refused past
 * max_bytes_per_uid (1 MB), as a 1.4 MB prompt is; a frame that does not
 * amplify is served.
 */
START_TEST(test_bytes_per_uid_decoded)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct proto_msg m;
	uint32_t len;
	int fd, i, n = 60000;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("max_bytes_per_uid = 1000000;\n");
	fd = h_raw_connect(&d, 1);
	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_write(&sb, "\0\0\0\0", 4);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_str_with_body(&pk, "call", 4);
	msgpack_pack_str_with_body(&pk, "id", 2);
	msgpack_pack_uint32(&pk, 5);
	msgpack_pack_str_with_body(&pk, "targets", 7);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_str_with_body(&pk, "mock/echo", 9);
	msgpack_pack_str_with_body(&pk, "messages", 8);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "role", 4);
	msgpack_pack_str_with_body(&pk, "user", 4);
	msgpack_pack_str_with_body(&pk, "content", 7);
	msgpack_pack_str_with_body(&pk, "hi", 2);
	msgpack_pack_str_with_body(&pk, "tool_calls", 10);
	msgpack_pack_array(&pk, (size_t)n);
	for (i = 0; i < n; i++)
		msgpack_pack_map(&pk, 0);
	len = (uint32_t)sb.size - 4;
	ck_assert_uint_lt(len, 100000);
	h_raw_send_framed(fd, &sb);
	ck_assert_int_eq(h_raw_recv(fd, &m, 5000), 0);
	ck_assert_uint_eq(m.id, 5);
	ck_assert_msg(m.type == PROTO_ERROR,
	    "a %u-byte call that decodes to "
	    "%zu bytes was taken",
	    len, (size_t)n * 24);
	ck_assert_int_eq(m.u.result.cls, LLMGATE_OVERLOADED);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "max_bytes_per_uid"));
	proto_msg_free(&m);
	close(fd);
	msgpack_sbuffer_destroy(&sb);
	served(NULL);
}
END_TEST

/* A new connection to the HTTP front's unix socket (beside the native one), or -1. */
static int
http_connect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(d.sock);
	int fd;

	snprintf(sun.sun_path, sizeof sun.sun_path, "%.*s-http.sock",
	    (int)(len - strlen(".sock")), d.sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A Chat Completions request (body) sent on a new connection to the HTTP
 * front; the descriptor to read the answer from, or -1.
 */
static int
http_send_body(const char *body)
{
	size_t len, off = 0;
	ssize_t w;
	char *msg;
	int fd;

	if ((fd = http_connect()) == -1)
		return -1;
	msg = h_strdup_printf(
	    "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: llmgate\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    strlen(body), body);
	len = strlen(msg);
	while (
	    off < len && (w = send(fd, msg + off, len - off, MSG_NOSIGNAL)) > 0)
		off += (size_t)w;
	free(msg);
	if (off < len) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A request for model with a prompt of n bytes and extra members. */
static int
http_send_prompt(const char *model, const char *prompt, const char *extra)
{
	char *body;
	int fd;

	body = h_strdup_printf("{\"model\":\"%s\",\"messages\":[{\"role\":"
	                       "\"user\",\"content\":\"%s\"}]%s}",
	    model, prompt, extra);
	fd = http_send_body(body);
	free(body);
	return fd;
}

static int
http_send(const char *model, size_t n)
{
	char *prompt = malloc(n + 1);
	int fd;

	memset(prompt, 'h', n);
	prompt[n] = '\0';
	fd = http_send_prompt(model, prompt, "");
	free(prompt);
	return fd;
}

/* The answer on fd (closed): its status, and all of it in *out (free()),
 * or -1 when none came within 20 s. */
static int
http_answer(int fd, char **out)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t len = 0, cap = 4096;
	uint64_t t0 = h_mono_ms();
	char *buf = malloc(cap);
	ssize_t n;
	int status = -1;

	for (;;) {
		if (poll(&pfd, 1, 1000) < 0 || h_mono_ms() - t0 > 20000)
			break;
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		if (len + 1024 > cap)
			buf = realloc(buf, cap *= 2);
		if ((n = read(fd, buf + len, cap - len - 1)) <= 0) {
			if (n == 0 && len != 0)
				status = 0;
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	if (status == 0 && sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		status = -1;
	*out = buf;
	return status;
}

/* Calls in flight in the daemon, from status; -1 on error. */
static long
status_inflight(struct llmgate *g)
{
	json_t *st;
	char *text = NULL;
	long n = -1;

	if (llmgate_status(g, &text) != 0)
		return -1;
	if ((st = json_loads(text, 0, NULL)) != NULL)
		n = (long)json_integer_value(json_object_get(st, "inflight"));
	json_decref(st);
	free(text);
	return n;
}

/* Wait until at least n calls are in flight: 0, or -1 after 10 s. */
static int
wait_inflight(struct llmgate *g, long n)
{
	uint64_t t0 = h_mono_ms();

	while (status_inflight(g) < n) {
		if (h_mono_ms() - t0 > 10000)
			return -1;
		h_sleep_ms(20);
	}
	return 0;
}

struct hflood {
	int n;            /* requests at once */
	size_t prompt;    /* bytes of each prompt */
	int status;       /* of the refusals */
	const char *want; /* in the refusals */
};

/*
 * Slow HTTP requests from one user, each on its own connection, all at
 * once: 0 when some were refused with status, saying want, with a
 * Retry-After, and the others answered 200.
 */
static int
flood_http(void *arg)
{
	const struct hflood *f = arg;
	int fds[64], i, st, ok = 0, refused = 0, bad = 0;
	char *out;

	if (f->n > 64)
		return 110;
	for (i = 0; i < f->n; i++) {
		if ((fds[i] = http_send("mock/slow:1500", f->prompt)) == -1)
			return 111;
	}
	for (i = 0; i < f->n; i++) {
		st = http_answer(fds[i], &out);
		if (st == 200)
			ok++;
		else if (st == f->status && strstr(out, f->want) != NULL &&
		    strstr(out, "\r\nRetry-After: ") != NULL)
			refused++;
		else {
			fprintf(stderr, "request %d: %d: %.600s\n", i, st, out);
			bad++;
		}
		free(out);
	}
	fprintf(stderr, "http: %d ok, %d refused\n", ok, refused);
	return bad == 0 && refused > 0 && ok > 0 ? 0 : 112;
}

/* A plain HTTP request of ours is answered 200. */
static void
http_served(void)
{
	char *out;
	int fd = http_send("mock/echo", 10);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(http_answer(fd, &out), 200);
	ck_assert_ptr_nonnull(strstr(out, "echo: hhhhhhhhhh"));
	free(out);
}

/*
 * The HTTP front counts a request as what its body decoded to when that
 * is more, as the native socket does: 30,000 one-letter messages are
 * 900 KB of JSON, under a 1 MB max_bytes_per_uid, and decode to 1.7 MB.
 */
START_TEST(test_http_bytes_per_uid_decoded)
{
	struct buf b = { 0 };
	char *ans = NULL;
	int fd, i, st;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("max_bytes_per_uid = 1000000;\n"
	      "http = { listen = ( \"unix:\" ); };\n");
	buf_addstr(&b, "{\"model\":\"mock/echo\",\"messages\":[");
	for (i = 0; i < 30000; i++)
		buf_addstr(&b,
		    i == 0 ? "{\"role\":\"user\",\"content\":\"a\"}" :
		             ",{\"role\":\"user\",\"content\":\"a\"}");
	buf_addstr(&b, "]}");
	ck_assert_uint_lt(b.len, 1000000);
	ck_assert_int_ge(fd = http_send_body(buf_cstr(&b)), 0);
	st = http_answer(fd, &ans);
	ck_assert_msg(st == 429 && strstr(ans, "max_bytes_per_uid") != NULL,
	    "a %zu-byte body that decodes to more than 1 MB: %d %.300s", b.len,
	    st, ans != NULL ? ans : "");
	free(ans);
	buf_free(&b);
	served(NULL);
}
END_TEST

/*
 * The per-user caps bind the HTTP front too: one user's flood of
 * requests, or of large bodies, is refused (429, with Retry-After) past
 * max_calls_per_uid or max_bytes_per_uid, and past max_memory everyone's
 * new work is (503) until it ends; another user is served meanwhile and
 * after, natively and over HTTP.
 */
START_TEST(test_http_calls_and_bytes_per_uid)
{
	struct hflood calls = { 20, 10, 429, "max_calls_per_uid" };
	struct hflood bytes = { 10, 30000, 429, "max_bytes_per_uid" };

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("max_calls_per_uid = 8;\nmax_bytes_per_uid = 100000;\n"
	      "http = { listen = ( \"unix:\" ); };\n");
	ck_assert_int_eq(h_as_nobody(flood_http, &calls), 0);
	served(NULL);
	http_served();
	ck_assert_int_eq(h_as_nobody(flood_http, &bytes), 0);
	served(NULL);
	http_served();

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("max_bytes_per_uid = 0;\nmax_memory = 100000;\n"
	      "http = { listen = ( \"unix:\" ); };\n");
	bytes.status = 503;
	bytes.want = "max_memory";
	ck_assert_int_eq(h_as_nobody(flood_http, &bytes), 0);
	served(NULL);
	http_served();
}
END_TEST

/*
 * Issue 15, item 3, over HTTP: an upstream faster than its client, with a
 * low max_output. The client does not read for a while; the upstream is
 * held meanwhile, and it then gets its whole stream, not dropped.
 */
START_TEST(test_http_fast_stream_slow_reader)
{
	enum { WORDS = 20000 };
	char *prompt, *out;
	size_t got = 0;
	const char *p;
	int fd;

	start_upstream("max_frame = 65536; max_output = 65536;\n"
	               "http = { listen = ( \"unix:\" ); };\n");
	prompt = words(WORDS);
	fd = http_send_prompt("oa/fast", prompt, ",\"stream\":true");
	ck_assert_int_ge(fd, 0);
	/* Not reading for a while, as a busy client would. */
	h_sleep_ms(1500);
	ck_assert_int_eq(http_answer(fd, &out), 200);
	ck_assert_msg(strstr(out, "data: [DONE]") != NULL, "no end: %.300s",
	    out + (strlen(out) > 300 ? strlen(out) - 300 : 0));
	for (p = out; (p = strstr(p, "\"content\":\"")) != NULL; p++) {
		if (strncmp(p + strlen("\"content\":\""), "w", 1) == 0)
			got++;
	}
	ck_assert_uint_ge(got, WORDS / 2);
	free(out);
	free(prompt);
	log_lacks(&d, "not reading its stream");
	stop_upstream();
}
END_TEST

/*
 * Send text a byte every 200 ms: the ms until the daemon closed the
 * connection, or -1 when it did not (all sent, or 8 s passed).
 */
static long
trickle(int fd, const char *text)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t t0 = h_mono_ms();
	char c;
	size_t i;

	for (i = 0; text[i] != '\0' && h_mono_ms() - t0 < 8000; i++) {
		if (send(fd, text + i, 1, MSG_NOSIGNAL) != 1)
			return (long)(h_mono_ms() - t0);
		if (poll(&pfd, 1, 200) == 1 && recv(fd, &c, 1, 0) <= 0)
			return (long)(h_mono_ms() - t0);
	}
	return -1;
}

/*
 * Issue 15, item 2, over HTTP: a connection must bring each whole request
 * within frame_timeout_ms, from its accept and from the end of the one
 * before, however slowly its bytes trickle (a timeout that started again
 * with every byte would never strike). Others are served meanwhile.
 */
START_TEST(test_http_trickle_closed)
{
	static const char head[] =
	    "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: llmgate\r\nContent-Type: application/json\r\n"
	    "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
	static const char req[] =
	    "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: llmgate\r\nContent-Type: application/json\r\n"
	    "Content-Length: 64\r\n\r\n"
	    "{\"model\":\"mock/echo\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"k\"}]}";
	char buf[4096], *hdr_end, *cl;
	size_t len = 0;
	ssize_t n;
	long ms;
	int fd;

	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("frame_timeout_ms = 1000;\n"
	      "http = { listen = ( \"unix:\" ); };\n");
	ck_assert_uint_eq(strlen(strstr(req, "{")), 64);

	/* A first request's head, trickled. */
	ck_assert_int_ge(fd = http_connect(), 0);
	ms = trickle(fd, head);
	close(fd);
	ck_assert_msg(ms >= 800 && ms < 5000, "closed after %ld ms", ms);
	http_served();

	/* A whole request, answered, then the next one trickled. */
	ck_assert_int_ge(fd = http_connect(), 0);
	ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL),
	    (ssize_t)strlen(req));
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
		ck_assert_int_gt(n = read(fd, buf + len, sizeof buf - len - 1),
		    0);
		len += (size_t)n;
		buf[len] = '\0';
		if ((hdr_end = strstr(buf, "\r\n\r\n")) != NULL &&
		    (cl = strcasestr(buf, "Content-Length: ")) != NULL &&
		    len >= (size_t)(hdr_end + 4 - buf) +
		            strtoul(cl + 16, NULL, 10))
			break;
	}
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 200"));
	ck_assert_ptr_nonnull(strstr(buf, "echo: k"));
	ms = trickle(fd, head);
	close(fd);
	ck_assert_msg(ms >= 0 && ms < 5000, "closed after %ld ms", ms);
	http_served();
	served(NULL);
}
END_TEST

/*
 * One budget per user across both fronts: with 6 native calls of a user
 * in flight, 2 of its 4 HTTP requests go and 2 are refused
 * (max_calls_per_uid = 8); with 8 HTTP requests of its in flight, its
 * native call is refused. Returns 0 when so.
 */
static int
mixed_fronts(void *arg)
{
	struct stream_tally t[6];
	struct llmgate_request *req;
	struct llmgate_result *res = NULL;
	struct llmgate *g;
	char err[256], *out;
	int fds[8], i, st, ok = 0, refused = 0;

	(void)arg;
	memset(t, 0, sizeof t);
	if ((g = llmgate_connect(d.sock, "mixed", err, sizeof err)) == NULL)
		return 120;
	req = h_request("native", "mock/slow:3000", NULL);
	for (i = 0; i < 6; i++) {
		if (llmgate_submit(g, req, NULL, stream_done, &t[i]) == 0)
			return 121;
	}
	if (wait_inflight(g, 6) != 0)
		return 122;
	for (i = 0; i < 4; i++) {
		if ((fds[i] = http_send("mock/slow:1000", 10)) == -1)
			return 123;
	}
	for (i = 0; i < 4; i++) {
		st = http_answer(fds[i], &out);
		if (st == 200)
			ok++;
		else if (st == 429 && strstr(out, "max_calls_per_uid") != NULL)
			refused++;
		else
			fprintf(stderr, "http %d: %d: %.400s\n", i, st, out);
		free(out);
	}
	fprintf(stderr, "mixed: %d ok, %d refused over HTTP\n", ok, refused);
	if (ok != 2 || refused != 2)
		return 124;
	for (i = 0; i < 6; i++) {
		if (drive(g, &t[i].done) != 0)
			return 125;
		if (t[i].res->cls != LLMGATE_OK)
			return 126;
		llmgate_result_free(t[i].res);
	}
	h_request_free(req);

	/* The other way round: HTTP requests hold the user's budget. */
	for (i = 0; i < 8; i++) {
		if ((fds[i] = http_send("mock/slow:2000", 10)) == -1)
			return 127;
	}
	if (wait_inflight(g, 8) != 0)
		return 128;
	req = h_request("native", "mock/echo", NULL);
	if (llmgate_call(g, req, NULL, NULL, &res) != 0)
		return 129;
	st = res->cls == LLMGATE_OVERLOADED &&
	    strstr(res->message, "max_calls_per_uid") != NULL;
	if (!st)
		fprintf(stderr, "native: %s: %s\n",
		    llmgate_class_name(res->cls), res->message);
	llmgate_result_free(res);
	for (i = 0; i < 8; i++) {
		if (http_answer(fds[i], &out) != 200)
			st = 0;
		free(out);
	}
	/* All ended: the budget is whole again. */
	if (llmgate_call(g, req, NULL, NULL, &res) != 0 ||
	    res->cls != LLMGATE_OK)
		st = 0;
	llmgate_result_free(res);
	h_request_free(req);
	llmgate_close(g);
	return st ? 0 : 130;
}

START_TEST(test_calls_per_uid_across_fronts)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	start("max_calls_per_uid = 8;\n"
	      "http = { listen = ( \"unix:\" ); };\n");
	ck_assert_int_eq(h_as_nobody(mixed_fronts, NULL), 0);
	served(NULL);
	http_served();
}
END_TEST

/*
 * The socket is born with socket_mode: bind() runs under a umask that
 * leaves exactly that mode. Watched from before it exists: when it
 * appears its mode is the configured one, and nothing changes its mode
 * afterwards, as a chmod() after bind() would (IN_ATTRIB), so it never
 * had a wider mode, not for a moment. A daemon started with umask 022
 * would otherwise make it 0755 first. Several starts, the HTTP front's
 * unix socket beside the native one too.
 */
START_TEST(test_socket_born_with_its_mode)
{
	char dir[] = "/tmp/llmgate-mode.XXXXXX", sock[96], conf[128];
	char evbuf[4096] __attribute__((aligned(8)));
	const struct inotify_event *ev;
	struct pollfd pfd;
	struct stat st;
	uint64_t t0;
	pid_t pid;
	FILE *f;
	int in, fd, round, created, ready, st_exit;
	ssize_t n;
	char *p;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof sock, "%s/llmgate.sock", dir);
	snprintf(conf, sizeof conf, "%s/llmgated.conf", dir);
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fputs("socket_mode = \"0600\";\n"
	      "http = { listen = ( \"unix:\" ); };\n",
	    f);
	fclose(f);
	for (round = 0; round < 3; round++) {
		ck_assert_int_ge(in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC),
		    0);
		ck_assert_int_ge(inotify_add_watch(in, dir,
		                     IN_CREATE | IN_ATTRIB),
		    0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			umask(022);
			fd = open("/dev/null", O_RDWR);
			dup2(fd, 0);
			dup2(fd, 2);
			execl(BUILD_DIR "/llmgated", "llmgated", "-s", sock,
			    "-c", conf, (char *)NULL);
			_exit(127);
		}
		created = ready = 0;
		t0 = h_mono_ms();
		while (h_mono_ms() - t0 < 20000 && (created < 2 || !ready)) {
			pfd.fd = in;
			pfd.events = POLLIN;
			(void)poll(&pfd, 1, 50);
			while ((n = read(in, evbuf, sizeof evbuf)) > 0) {
				for (p = evbuf; p < evbuf + n;
				     p += sizeof *ev + ev->len) {
					ev = (const struct inotify_event *)p;
					if (ev->len == 0 ||
					    strstr(ev->name, ".sock") == NULL)
						continue;
					ck_assert_msg(!(ev->mask & IN_ATTRIB),
					    "%s changed mode or owner after "
					    "it appeared",
					    ev->name);
					if (!(ev->mask & IN_CREATE))
						continue;
					created++;
					snprintf(conf, sizeof conf, "%s/%s",
					    dir, ev->name);
					ck_assert_int_eq(lstat(conf, &st), 0);
					ck_assert_msg((st.st_mode & 07777) ==
					        0600,
					    "%s appeared with mode %04o",
					    ev->name,
					    (unsigned)(st.st_mode & 07777));
				}
			}
			if (!ready &&
			    (fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0) {
				struct sockaddr_un sun = { .sun_family =
					                       AF_UNIX };

				snprintf(sun.sun_path, sizeof sun.sun_path,
				    "%s", sock);
				ready = connect(fd, (struct sockaddr *)&sun,
				            sizeof sun) == 0;
				close(fd);
			}
		}
		ck_assert_int_eq(created, 2);
		ck_assert(ready);
		/* Whatever came after the listeners were up. */
		h_sleep_ms(100);
		while ((n = read(in, evbuf, sizeof evbuf)) > 0) {
			for (p = evbuf; p < evbuf + n;
			     p += sizeof *ev + ev->len) {
				ev = (const struct inotify_event *)p;
				ck_assert_msg(ev->len == 0 ||
				        strstr(ev->name, ".sock") == NULL ||
				        !(ev->mask & IN_ATTRIB),
				    "%s changed mode "
				    "after it appeared",
				    ev->name);
			}
		}
		close(in);
		ck_assert_int_eq(kill(pid, SIGTERM), 0);
		ck_assert_int_eq(waitpid(pid, &st_exit, 0), pid);
		ck_assert(WIFEXITED(st_exit) && WEXITSTATUS(st_exit) == 0);
		snprintf(conf, sizeof conf, "%s/llmgated.conf", dir);
	}
	unlink(conf);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Reading the daemon's environment through /proc, as its own user: 0
 * when refused (EACCES), 1 when it could, 2 when it could not tell. */
static int
read_environ(void *arg)
{
	char path[64], buf[64];
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/environ", (long)*(pid_t *)arg);
	if ((fd = open(path, O_RDONLY)) == -1)
		return errno == EACCES ? 0 : 2;
	if (read(fd, buf, sizeof buf) == -1) {
		close(fd);
		return errno == EACCES ? 0 : 2;
	}
	close(fd);
	return 1;
}

/*
 * The daemon makes itself non-dumpable before it reads a key: no core
 * dump of it, and another process of its own user cannot read its memory.
 * Run as nobody, the daemon's /proc files then belong to root, and a
 * process of nobody's is refused its environment (the kernel's ptrace
 * access check; a dumpable process of the same user passes it).
 */
START_TEST(test_not_dumpable)
{
	struct passwd *pw = getpwnam("nobody");
	struct daemon dn;
	char path[64];
	struct stat st;
	FILE *f;
	char line[256];
	long uid = -1;

	ck_assert_ptr_nonnull(pw);
	h_daemon_start_as(&dn,
	    "providers = ( { name = \"oa\"; type = "
	    "\"openai\"; api_key = \"secret-key\"; } );\n",
	    "nobody");
	/* It does run as nobody. */
	snprintf(path, sizeof path, "/proc/%ld/status", (long)dn.pid);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "Uid:", 4) == 0)
			uid = strtol(line + 4, NULL, 10);
	}
	fclose(f);
	ck_assert_int_eq(uid, (long)pw->pw_uid);
	snprintf(path, sizeof path, "/proc/%ld/environ", (long)dn.pid);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg(st.st_uid == 0,
	    "%s belongs to uid %ld: the daemon is "
	    "dumpable",
	    path, (long)st.st_uid);
	ck_assert_int_eq(h_as_nobody(read_environ, &dn.pid), 0);
	log_lacks(&dn, "PR_SET_DUMPABLE");
	ck_assert_int_eq(h_daemon_stop(&dn), 0);
}
END_TEST

static Suite *
trust_suite(int root)
{
	Suite *s = suite_create("trust");
	TCase *tc = tcase_create("daemon");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_strict_models);
	tcase_add_test(tc, test_names_checked_at_the_door);
	tcase_add_test(tc, test_upstream_text_scrubbed);
	tcase_add_test(tc, test_scrub_shapes);
	tcase_add_test(tc, test_state_file_odd);
	tcase_add_test(tc, test_fast_stream_slow_reader);
	tcase_add_test(tc, test_stream_text_capped);
	tcase_add_test(tc, test_reply_burst_reader_kept);
	tcase_add_test(tc, test_http_fast_stream_slow_reader);
	tcase_add_test(tc, test_http_trickle_closed);
	tcase_add_test(tc, test_hello_and_frame_deadlines);
	tcase_add_test(tc, test_socket_born_with_its_mode);
	tcase_add_test(tc, test_bytes_per_uid_decoded);
	tcase_add_test(tc, test_http_bytes_per_uid_decoded);
	if (root) {
		tcase_add_test(tc, test_invented_names_do_not_fill_the_table);
		tcase_add_test(tc, test_targets_capped_per_uid);
		tcase_add_test(tc, test_leases_capped_per_uid);
		tcase_add_test(tc, test_reports_bounded);
		tcase_add_test(tc, test_metrics_flood);
		tcase_add_test(tc, test_calls_and_bytes_per_uid);
		tcase_add_test(tc, test_not_dumpable);
		tcase_add_test(tc, test_http_calls_and_bytes_per_uid);
		tcase_add_test(tc, test_calls_per_uid_across_fronts);
	}
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	int root = geteuid() == 0, failed;
	SRunner *sr = srunner_create(trust_suite(root));

	(void)fp_pid;
	(void)fp_port;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed != 0)
		return 1;
	if (!root) {
		printf("check_trust: the attacks by a second uid need root "
		       "(to run a client as nobody): skipped\n");
		return 77;
	}
	return 0;
}
