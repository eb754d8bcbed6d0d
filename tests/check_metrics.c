/*
 * check_metrics.c: the Prometheus exposition (the metrics endpoint and
 * `llmgate metrics`, and the renderer in-process) checked by real parsers:
 * promtool's `check metrics` (Debian's prometheus package), which refuses
 * what Prometheus would refuse, including a family shown twice, and lints
 * the names; then prometheus_client's parser (python3-prometheus-client),
 * whose samples the tests read, with a check that no family comes twice
 * (that parser alone accepts it). Without either tool the suite is skipped
 * (exit 77) and says which is missing.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "llmgated.h"

#define CM_PYTHON "/usr/bin/python3"

static const char *mock_conf =
    "providers = ( { name = \"mock\"; type = \"mock\"; } );\n"
    "routes = ( { name = \"default\"; targets = [ \"mock/echo\" ]; } );\n" H_CONF_FAST_RETRY
    "limits = ( { name = \"mock-org\"; tpm = 100000; targets = [ \"mock/*\" ]; } );\n";

static char cm_promtool[512]; /* found on PATH by main() */

static void
cm_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/*
 * Parse with prometheus_client: one line per sample, "name{k="v",...}
 * value" with the labels sorted, and "# name type" per family. The parser
 * raising, or a family coming twice, fails.
 */
static const char *cm_parse_py =
    "import json, sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "text = open(sys.argv[1], encoding='utf-8').read()\n"
    "seen = set()\n"
    "for f in text_string_to_metric_families(text):\n"
    "    if f.name in seen:\n"
    "        sys.exit('family %s appears twice' % f.name)\n"
    "    seen.add(f.name)\n"
    "    print('# %s %s' % (f.name, f.type))\n"
    "    for s in f.samples:\n"
    "        l = ','.join('%s=%s' % (k, json.dumps(v))\n"
    "                     for k, v in sorted(s.labels.items()))\n"
    "        print('%s{%s} %r' % (s.name, l, float(s.value)))\n";

/* The length of s's first line, at most 200 bytes. */
static int
cm_line(const char *s)
{
	size_t n = strcspn(s, "\n");

	return n > 200 ? 200 : (int)n;
}

/* A refusal in full, to stderr (the test's log); the text's first 16 KiB. */
static void
cm_explain(const char *tool, const struct run *r, const char *text)
{
	fprintf(stderr,
	    "%s: status %d\n%s%s\n--- the exposition (%zu "
	    "bytes) ---\n%.16384s\n--- end ---\n",
	    tool, r->status, r->out, r->err, strlen(text), text);
}

/*
 * text must pass `promtool check metrics` (no error, no lint problem) and
 * prometheus_client's parser; returns the latter's listing. On failure
 * the details (tool output, the text) go to stderr, the test's log, so the
 * assertion message stays within Check's limit.
 */
static char *
cm_check(const char *dir, const char *text)
{
	char *file = h_strdup_printf("%s/metrics.txt", dir);
	char *pt[] = { "/bin/sh", "-c", "exec \"$0\" check metrics <\"$1\"",
		cm_promtool, file, NULL };
	char *py[] = { CM_PYTHON, "-c", (char *)(uintptr_t)cm_parse_py, file,
		NULL };
	struct run r;
	char *out;

	cm_write(file, text);
	h_run(&r, NULL, pt);
	if (r.status != 0)
		cm_explain("promtool check metrics", &r, text);
	ck_assert_msg(r.status == 0,
	    "promtool check metrics refused the "
	    "exposition (status %d): %.*s (details in the log)",
	    r.status, cm_line(r.err), r.err);
	h_run_free(&r);
	h_run(&r, NULL, py);
	if (r.status != 0)
		cm_explain("prometheus_client", &r, text);
	ck_assert_msg(r.status == 0,
	    "prometheus_client refused the "
	    "exposition (status %d): %.*s (details in the log)",
	    r.status, cm_line(r.err), r.err);
	out = r.out;
	free(r.err);
	free(file);
	return out;
}

/* The value of the sample key ("name{labels}"), or -1 when absent. */
static double
cm_sample(const char *parsed, const char *key)
{
	size_t n = strlen(key);
	const char *p = parsed;

	for (;;) {
		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		if ((p = strchr(p, '\n')) == NULL)
			return -1;
		p++;
	}
}

static int
cm_nsamples(const char *parsed, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p = parsed;
	int count = 0;

	for (;;) {
		if (strncmp(p, prefix, n) == 0)
			count++;
		if ((p = strchr(p, '\n')) == NULL)
			return count;
		p++;
	}
}

/* GET path over HTTP/1.0; the status, the Content-Type and the body. */
static int
cm_http_get(int port, const char *path, char **ctype, char **body)
{
	struct sockaddr_in sin;
	struct pollfd pfd;
	char *req, *resp = NULL, *p, *eol, *val;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, status = -1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
	    "connect to the metrics endpoint on port %d: %s", port,
	    strerror(errno));
	req =
	    h_strdup_printf("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	free(req);
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (len + 4097 > cap)
			resp = realloc(resp, cap = cap * 2 + 8192);
		ck_assert_int_gt(poll(&pfd, 1, 10000), 0);
		if ((n = read(fd, resp + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
	}
	resp[len] = '\0';
	close(fd);

	sscanf(resp, "HTTP/1.%*d %d", &status);
	*ctype = NULL;
	for (p = strstr(resp, "\r\n"); p != NULL && strncmp(p, "\r\n\r\n", 4);
	     p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, "Content-Type:", 13) == 0) {
			eol = strstr(p + 2, "\r\n");
			val = p + 15 + strspn(p + 15, " \t");
			*ctype = strndup(val, (size_t)(eol - val));
		}
	}
	p = strstr(resp, "\r\n\r\n");
	ck_assert_ptr_nonnull(p);
	*body = strdup(p + 4);
	free(resp);
	return status;
}

START_TEST(test_metrics_endpoint)
{
	struct daemon d;
	struct run r;
	char *conf, *ctype, *body, *parsed;
	int port = h_free_port(), i;

	conf = h_strdup_printf("%smetrics_listen = \"127.0.0.1:%d\";\n",
	    mock_conf, port);
	h_daemon_start(&d, conf);
	free(conf);
	for (i = 0; i < 3; i++) {
		h_cli(&r, &d, NULL, "call", "-m", "mock/echo", "count me",
		    NULL);
		ck_assert_msg(r.status == 0, "call: %s", r.err);
		h_run_free(&r);
	}
	h_cli(&r, &d, NULL, "call", "-m", "mock/error:auth", "fail", NULL);
	ck_assert_int_eq(r.status, 4);
	h_run_free(&r);

	ck_assert_int_eq(cm_http_get(port, "/metrics", &ctype, &body), 200);
	ck_assert_ptr_nonnull(ctype);
	ck_assert_msg(strncmp(ctype, "text/plain; version=0.0.4", 25) == 0,
	    "Content-Type: %s", ctype);
	free(ctype);
	parsed = cm_check(d.dir, body);
	ck_assert(strstr(parsed, "# llmgate_calls counter\n") != NULL);
	ck_assert(strstr(parsed,
	              "# llmgate_call_duration_seconds histogram\n") != NULL);
	ck_assert(cm_sample(parsed, "llmgate_calls_total{}") == 4);
	ck_assert(cm_sample(parsed, "llmgate_failed_calls_total{}") == 1);
	ck_assert(cm_sample(parsed, "llmgate_attempts_total{}") == 4);
	ck_assert(cm_sample(parsed,
	              "llmgate_target_calls_total{"
	              "class=\"ok\",target=\"mock/echo\"}") == 3);
	ck_assert(cm_sample(parsed,
	              "llmgate_target_calls_total{"
	              "class=\"auth\",target=\"mock/error:auth\"}") == 1);
	ck_assert(cm_sample(parsed,
	              "llmgate_target_attempts_total{"
	              "class=\"ok\",target=\"mock/echo\"}") == 3);
	ck_assert(cm_sample(parsed,
	              "llmgate_call_duration_seconds_count{"
	              "target=\"mock/echo\"}") == 3);
	ck_assert(cm_sample(parsed,
	              "llmgate_call_duration_seconds_bucket{"
	              "le=\"+Inf\",target=\"mock/echo\"}") == 3);
	ck_assert(cm_sample(parsed,
	              "llmgate_breaker_state{"
	              "state=\"closed\",target=\"mock/echo\"}") == 1);
	ck_assert(cm_sample(parsed,
	              "llmgate_breaker_state{"
	              "state=\"open\",target=\"mock/echo\"}") == 0);
	/* The quota domain both targets drew from. */
	ck_assert(cm_sample(parsed,
	              "llmgate_domain_tpm_limit{"
	              "domain=\"mock-org\"}") == 100000);
	ck_assert(cm_sample(parsed,
	              "llmgate_domain_tokens_available{"
	              "domain=\"mock-org\"}") < 100000);
	ck_assert(cm_sample(parsed,
	              "llmgate_domain_members{"
	              "domain=\"mock-org\"}") == 2);
	free(parsed);
	free(body);

	ck_assert_int_eq(cm_http_get(port, "/", &ctype, &body), 404);
	free(ctype);
	free(body);

	/* `llmgate metrics` prints the same exposition. */
	h_cli(&r, &d, NULL, "metrics", NULL);
	ck_assert_int_eq(r.status, 0);
	parsed = cm_check(d.dir, r.out);
	ck_assert(cm_sample(parsed, "llmgate_calls_total{}") == 4);
	ck_assert(cm_sample(parsed,
	              "llmgate_call_duration_seconds_count{"
	              "target=\"mock/echo\"}") == 3);
	free(parsed);
	h_run_free(&r);
	ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* The same family twice is refused by cm_check (the checker can fail). */
START_TEST(test_duplicate_family_refused)
{
	static const char *dup =
	    "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
	    "# HELP b B.\n# TYPE b gauge\nb 2\n"
	    "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
	char dir[] = "/tmp/llmgate-metrics.XXXXXX", *file, *cmd;
	char *pt[] = { "/bin/sh", "-c", "exec \"$0\" check metrics <\"$1\"",
		cm_promtool, NULL, NULL };
	char *py[] = { CM_PYTHON, "-c", (char *)(uintptr_t)cm_parse_py, NULL,
		NULL };
	struct run r;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	file = h_strdup_printf("%s/metrics.txt", dir);
	cm_write(file, dup);
	pt[4] = py[3] = file;
	h_run(&r, NULL, pt);
	ck_assert_msg(r.status != 0, "promtool accepted a family twice");
	h_run_free(&r);
	h_run(&r, NULL, py);
	ck_assert_msg(r.status != 0 &&
	        strstr(r.err, "family a appears twice") != NULL,
	    "the parser check accepted a family twice: %.200s", r.err);
	h_run_free(&r);
	free(file);
	cmd = h_strdup_printf("rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}
END_TEST

/*
 * Every counter the daemon keeps, non-zero, in one scrape: a repair
 * (mock/json-fix with a schema), a retry, a fallback, a failed call.
 */
START_TEST(test_metrics_every_counter)
{
	struct daemon d;
	struct run r;
	char *schema, *parsed;

	h_daemon_start(&d, mock_conf);
	schema = h_strdup_printf("%s/schema.json", d.dir);
	cm_write(schema, "{\"type\": \"object\", \"required\": [\"a\"]}");
	h_cli(&r, &d, NULL, "call", "-m", "mock/json-fix:1", "--schema", schema,
	    "{\"a\": 1}", NULL);
	ck_assert_msg(r.status == 0, "call: %.200s", r.err);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "-m", "mock/flaky", "hi", NULL);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "-m", "mock/error:overloaded", "-m",
	    "mock/error:auth", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	h_run_free(&r);

	h_cli(&r, &d, NULL, "metrics", NULL);
	ck_assert_int_eq(r.status, 0);
	parsed = cm_check(d.dir, r.out);
	ck_assert(strstr(parsed, "# llmgate_repairs counter\n") != NULL);
	ck_assert(cm_sample(parsed, "llmgate_repairs_total{}") == 1);
	ck_assert(cm_sample(parsed, "llmgate_retries_total{}") >= 1);
	ck_assert(cm_sample(parsed, "llmgate_fallbacks_total{}") >= 1);
	ck_assert(cm_sample(parsed, "llmgate_failed_calls_total{}") == 1);
	ck_assert(
	    cm_sample(parsed, "llmgate_retry_budget_min_per_second{}") == 1000);
	free(parsed);
	h_run_free(&r);
	free(schema);
	ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* In-process: label values that need escaping survive the parser. */
START_TEST(test_metrics_escaping)
{
	char dir[] = "/tmp/llmgate-metrics.XXXXXX", *text, *parsed, *cmd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	cfg = config_load(NULL, NULL);
	metrics_observe_call("p/we\"ird\\mo\ndel", LLMGATE_RATE_LIMITED, 5);
	metrics_observe_call("p/we\"ird\\mo\ndel", LLMGATE_OK, 70000);
	metrics_observe_attempt("p/we\"ird\\mo\ndel", LLMGATE_OK);
	metrics_observe_call(NULL, LLMGATE_INVALID_REQUEST, 0);
	text = metrics_render();
	parsed = cm_check(dir, text);
	ck_assert_msg(
	    cm_sample(parsed,
	        "llmgate_target_calls_total{"
	        "class=\"rate_limited\",target=\"p/we\\\"ird\\\\mo\\ndel\"}") ==
	        1,
	    "%s", parsed);
	ck_assert(cm_sample(parsed,
	              "llmgate_call_duration_seconds_bucket{"
	              "le=\"0.01\",target=\"p/we\\\"ird\\\\mo\\ndel\"}") == 1);
	ck_assert(cm_sample(parsed,
	              "llmgate_call_duration_seconds_bucket{"
	              "le=\"60\",target=\"p/we\\\"ird\\\\mo\\ndel\"}") == 1);
	ck_assert(cm_sample(parsed,
	              "llmgate_call_duration_seconds_bucket{"
	              "le=\"+Inf\",target=\"p/we\\\"ird\\\\mo\\ndel\"}") == 2);
	ck_assert(cm_sample(parsed,
	              "llmgate_call_duration_seconds_sum{"
	              "target=\"p/we\\\"ird\\\\mo\\ndel\"}") == 70.005);
	ck_assert(cm_sample(parsed,
	              "llmgate_target_calls_total{"
	              "class=\"invalid_request\",target=\"none\"}") == 1);
	ck_assert(cm_sample(parsed,
	              "llmgate_info{version=\"" LLMGATE_VERSION "\"}") == 1);
	free(parsed);
	free(text);
	metrics_shutdown();
	config_free(cfg);
	cfg = NULL;
	cmd = h_strdup_printf("rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}
END_TEST

/* In-process: a flood of distinct targets folds into target="other". */
START_TEST(test_metrics_series_cap)
{
	char dir[] = "/tmp/llmgate-metrics.XXXXXX", *text, *parsed, *cmd;
	char name[64];
	int i, n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	cfg = config_load(NULL, NULL);
	for (i = 0; i < 6000; i++) {
		snprintf(name, sizeof name, "p/model-%d", i);
		metrics_observe_attempt(name, LLMGATE_SERVER_ERROR);
	}
	metrics_observe_attempt("p/model-1", LLMGATE_SERVER_ERROR);
	text = metrics_render();
	parsed = cm_check(dir, text);
	n = cm_nsamples(parsed, "llmgate_target_attempts_total{");
	ck_assert_int_eq(n, 4096 + 1);
	ck_assert(cm_sample(parsed,
	              "llmgate_target_attempts_total{"
	              "class=\"server_error\",target=\"p/model-1\"}") == 2);
	ck_assert(
	    cm_sample(parsed,
	        "llmgate_target_attempts_total{"
	        "class=\"server_error\",target=\"other\"}") == 6000 - 4096);
	ck_assert(
	    cm_sample(parsed, "llmgate_metrics_folded_total{}") == 6000 - 4096);
	free(parsed);
	free(text);
	metrics_shutdown();
	config_free(cfg);
	cfg = NULL;
	cmd = h_strdup_printf("rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_duplicate_family_refused);
	tcase_add_test(tc, test_metrics_endpoint);
	tcase_add_test(tc, test_metrics_every_counter);
	tcase_add_test(tc, test_metrics_escaping);
	tcase_add_test(tc, test_metrics_series_cap);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (h_which("promtool", cm_promtool, sizeof cm_promtool) != 0) {
		fprintf(stderr,
		    "SKIP check_metrics: promtool not found on "
		    "PATH (Debian package prometheus)\n");
		return 77;
	}
	if (system(CM_PYTHON " -c 'import prometheus_client.parser' "
	                     "2>/dev/null") != 0) {
		fprintf(stderr,
		    "SKIP check_metrics: " CM_PYTHON " cannot "
		    "import prometheus_client (Debian package "
		    "python3-prometheus-client)\n");
		return 77;
	}
	sr = srunner_create(metrics_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
