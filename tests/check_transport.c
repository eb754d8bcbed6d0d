/*
 * check_transport.c: the HTTP transport end to end, against servers that
 * behave like real ones: llama-server closing every connection after a
 * reply while it says "keep-alive", local models that think for longer
 * than a stream may stay silent, and streams that stop sending. The real
 * llmgated calls tests/fakeprov through libllmgate.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define TEST_KEY "test-key"

/* Whole-stream silences for the idle tests, in ms. */
#define IDLE_MS       1000
#define SHORT_IDLE_MS 300

static struct daemon d;
static pid_t fp_pid;
static int fp_port;
static int fixture_failed;

static void
setup(void)
{
	char *conf;

	fp_port = h_fakeprov_start(&fp_pid);
	conf = h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%2$s\"; },\n"
	    "  { name = \"idle\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%2$s\";\n"
	    "    timeout_ms = 30000; idle_ms = %3$d; },\n"
	    "  { name = \"short\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%1$d/v1\"; api_key = \"%2$s\";\n"
	    "    timeout_ms = 30000; idle_ms = %4$d; }\n"
	    ");\n" H_CONF_FAST_RETRY,
	    fp_port, TEST_KEY, IDLE_MS, SHORT_IDLE_MS);
	h_daemon_start(&d, conf);
	free(conf);
}

/* No ck_assert here: in the parent it would end the program early. */
static void
teardown(void)
{
	h_fixture_stop("check_transport", &d, &fp_pid, &fixture_failed);
}

/* Slack for timing bounds: a daemon under valgrind is many times slower. */
static uint64_t
slack_ms(void)
{
	const char *w = getenv("LLMGATE_TEST_WRAPPER");

	return w != NULL && *w != '\0' ? 4000 : 1500;
}

static struct llmgate_result *
call(struct llmgate *g, const char *target, const char *prompt, int stream,
    uint32_t attempts)
{
	struct llmgate_request *req = h_request(prompt, target, NULL);
	struct llmgate_result *res = NULL;

	llmgate_request_set_stream(req, stream);
	llmgate_request_set_attempts(req, attempts);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	h_request_free(req);
	return res;
}

static const char *
res_text(const struct llmgate_result *res)
{
	return res->cls == LLMGATE_OK ? res->text : res->message;
}

/*
 * llama-server ends every stream with the connection closed, yet its
 * replies say "Keep-Alive: timeout=5". A call that follows at once finds
 * the connection open, sends on it, and the server never reads that
 * request. The request never reached the server, so it goes out again on
 * a fresh connection, inside the same attempt: with one attempt allowed,
 * every call succeeds and the server sees each request exactly once.
 */
static void
back_to_back(int stream)
{
	struct llmgate *g = h_connect(&d, "check_transport");
	const char *model = stream ? "kaclose-stream+ka_close=400" :
	                             "kaclose-plain+ka_close=400";
	char *target = h_strdup_printf("oa/%s", model);
	struct llmgate_result *res;
	const int n = 5;
	int i;

	for (i = 0; i < n; i++) {
		res = call(g, target, "one two three", stream, 1);
		ck_assert_msg(res->cls == LLMGATE_OK, "call %d of %d: %s",
		    i + 1, n, res_text(res));
		ck_assert_str_eq(res->text, "echo: one two three");
		ck_assert_uint_eq(res->nattempts, 1);
		llmgate_result_free(res);
	}
	ck_assert_int_eq(h_fakeprov_count(fp_port, model, NULL), n);
	free(target);
	llmgate_close(g);
}

/*
 * What every request carries besides the adapter's own headers: the user
 * agent, and no "Expect: 100-continue" (a round trip before each body).
 * Several calls, so that reused transfer handles are seen too.
 */
START_TEST(test_request_headers)
{
	struct llmgate *g = h_connect(&d, "check_transport");
	struct llmgate_result *res;
	json_t *last, *hdrs;
	int i;

	for (i = 0; i < 3; i++) {
		res = call(g, "oa/headers", "one two three", i == 1, 1);
		ck_assert_msg(res->cls == LLMGATE_OK, "%s", res_text(res));
		llmgate_result_free(res);
		last = h_fakeprov_last(fp_port, "headers");
		hdrs = json_object_get(last, "headers");
		ck_assert_str_eq(json_string_value(
		                     json_object_get(hdrs, "user-agent")),
		    "llmgated/" LLMGATE_VERSION);
		ck_assert_ptr_null(json_object_get(hdrs, "expect"));
		ck_assert_str_eq(json_string_value(
		                     json_object_get(hdrs, "authorization")),
		    "Bearer " TEST_KEY);
		ck_assert_str_eq(json_string_value(
		                     json_object_get(hdrs, "content-type")),
		    "application/json");
		json_decref(last);
	}
	ck_assert_int_eq(h_fakeprov_count(fp_port, "headers", NULL), 3);
	llmgate_close(g);
}
END_TEST

/* A daemon with one provider "oa" at base, started with http_proxy set. */
static void
start_proxied(struct daemon *dd, const char *base, const char *proxy)
{
	char *conf;

	conf = h_strdup_printf("providers = (\n"
	                       "  { name = \"oa\"; type = \"openai\";\n"
	                       "    base_url = \"%s\"; api_key = \"%s\"; }\n"
	                       ");\n" H_CONF_FAST_RETRY,
	    base, TEST_KEY);
	setenv("http_proxy", proxy, 1);
	h_daemon_start(dd, conf);
	unsetenv("http_proxy");
	free(conf);
}

/* One plain call to oa/proxied through dd, on a connection of its own. */
static struct llmgate_result *
call_proxied(struct daemon *dd)
{
	struct llmgate *g = h_connect(dd, "check_transport");
	struct llmgate_result *res;

	res = call(g, "oa/proxied", "one two three", 0, 1);
	llmgate_close(g);
	return res;
}

/*
 * libcurl's proxy variables still apply (llmgated tells libcurl there
 * are none only when none is set): with http_proxy naming a closed port,
 * a call cannot reach the provider, which sees nothing.
 */
START_TEST(test_proxy_variable)
{
	struct daemon d2;
	struct llmgate_result *res;
	char *base = h_strdup_printf("http://127.0.0.1:%d/v1", fp_port);

	start_proxied(&d2, base, "http://127.0.0.1:1");
	free(base);
	res = call_proxied(&d2);
	ck_assert_msg(res->cls == LLMGATE_CONNECTION, "%s", res_text(res));
	llmgate_result_free(res);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "proxied", NULL), 0);
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
	/* The fixture's daemon, started without it, goes straight there. */
	res = call_proxied(&d);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s", res_text(res));
	llmgate_result_free(res);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "proxied", NULL), 1);
}
END_TEST

/*
 * An HTTP proxy for one request, in a child process: it answers with a
 * canned reply and writes the request's head (up to the blank line) to
 * fd out. Its port in *port.
 */
static pid_t
proxy_once(int *port, int out)
{
	static const char body[] =
	    "{\"id\":\"p\",\"object\":\"chat.completion\",\"choices\":"
	    "[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"via proxy\"},\"finish_reason\":\"stop\"}]}";
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	char buf[8192], *end, *cl, reply[512];
	size_t n = 0, want;
	ssize_t r;
	pid_t pid;
	int s, c;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ne(s = socket(AF_INET, SOCK_STREAM, 0), -1);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(s, 4), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid != 0) {
		close(s);
		return pid;
	}
	alarm(30);
	if ((c = accept(s, NULL, NULL)) == -1)
		_exit(1);
	/* The head, then as much body as it announces. */
	while ((end = memmem(buf, n, "\r\n\r\n", 4)) == NULL) {
		if (n == sizeof buf - 1 ||
		    (r = read(c, buf + n, sizeof buf - 1 - n)) <= 0)
			_exit(1);
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (write(out, buf, (size_t)(end - buf)) != end - buf)
		_exit(1);
	cl = strcasestr(buf, "\ncontent-length:");
	want = (size_t)(end + 4 - buf) +
	    (cl != NULL ? strtoul(cl + 16, NULL, 10) : 0);
	while (n < want && n < sizeof buf - 1 &&
	    (r = read(c, buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	snprintf(reply, sizeof reply,
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
	    strlen(body), body);
	if (write(c, reply, strlen(reply)) != (ssize_t)strlen(reply))
		_exit(1);
	close(c);
	_exit(0);
}

/*
 * Through a proxy (http_proxy), a plain-http request carries the user
 * agent once: libcurl would send both the request's headers and the
 * proxy's (CURLOPT_PROXYHEADER, for https tunnels only).
 */
START_TEST(test_proxy_user_agent_once)
{
	struct daemon d2;
	struct llmgate_result *res;
	char *proxy, head[8192], *ua;
	int port, fds[2], status;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = proxy_once(&port, fds[1]);
	close(fds[1]);
	/* The provider's port is closed: only the proxy can answer. */
	proxy = h_strdup_printf("http://127.0.0.1:%d", port);
	start_proxied(&d2, "http://127.0.0.1:1/v1", proxy);
	free(proxy);
	res = call_proxied(&d2);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s", res_text(res));
	ck_assert_str_eq(res->text, "via proxy");
	llmgate_result_free(res);
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	n = read(fds[0], head, sizeof head - 1);
	close(fds[0]);
	ck_assert_int_gt(n, 0);
	head[n] = '\0';
	ck_assert_msg(strncmp(head, "POST http://127.0.0.1:1/v1/", 27) == 0,
	    "%s", head);
	ua = strcasestr(head, "\nUser-Agent: llmgated/" LLMGATE_VERSION "\r");
	ck_assert_msg(ua != NULL, "%s", head);
	ck_assert_msg(strcasestr(ua + 1, "\nUser-Agent:") == NULL, "%s", head);
}
END_TEST

START_TEST(test_dead_keepalive_stream)
{
	back_to_back(1);
}
END_TEST

START_TEST(test_dead_keepalive_plain)
{
	back_to_back(0);
}
END_TEST

/*
 * The other side of it: a server that read the request and then closed
 * the connection without an answer may have acted on it. That request is
 * not sent again behind the caller's back: the attempt fails as
 * "connection", and the server saw it once.
 */
START_TEST(test_read_then_closed_not_resent)
{
	struct llmgate *g = h_connect(&d, "check_transport");
	struct llmgate_result *res;

	/* Leave an idle connection in the pool to be reused. */
	res = call(g, "oa/warm-up", "hello", 0, 1);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s", res_text(res));
	llmgate_result_free(res);

	res = call(g, "oa/readclose+drop", "hello", 0, 1);
	ck_assert_msg(res->cls == LLMGATE_CONNECTION, "class %d: %s", res->cls,
	    res_text(res));
	ck_assert_uint_eq(res->nattempts, 1);
	llmgate_result_free(res);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "readclose+drop", NULL), 1);
	llmgate_close(g);
}
END_TEST

/*
 * idle_ms is about streams. A whole (non-streamed) reply sends nothing
 * until it is complete; one that takes several times idle_ms is fine.
 */
START_TEST(test_idle_spares_whole_reply)
{
	struct llmgate *g = h_connect(&d, "check_transport");
	struct llmgate_result *res;

	res = call(g, "short/slow-plain+delay=8000", "hello", 0, 1);
	ck_assert_msg(res->cls == LLMGATE_OK, "class %d: %s", res->cls,
	    res_text(res));
	ck_assert_str_eq(res->text, "echo: hello");
	llmgate_result_free(res);
	ck_assert_int_eq(h_fakeprov_count(fp_port, "slow-plain+delay=8000",
	                     NULL),
	    1);
	llmgate_close(g);
}
END_TEST

/* A stream whose pauses are each shorter than idle_ms runs to its end. */
START_TEST(test_idle_resets_on_bytes)
{
	struct llmgate *g = h_connect(&d, "check_transport");
	struct llmgate_result *res;

	/* Nine events 200 ms apart: 1.6 s in all, longer than idle_ms. */
	res = call(g, "short/paced+word_delay=200", "a b c d e", 1, 1);
	ck_assert_msg(res->cls == LLMGATE_OK, "class %d: %s", res->cls,
	    res_text(res));
	ck_assert_str_eq(res->text, "echo: a b c d e");
	llmgate_result_free(res);
	llmgate_close(g);
}
END_TEST

/*
 * A stream that goes silent is cut idle_ms after its last byte, as a
 * timeout; not seconds later.
 */
START_TEST(test_idle_cuts_silent_stream)
{
	struct llmgate *g = h_connect(&d, "check_transport");
	struct llmgate_result *res;
	uint64_t t0, took;

	t0 = h_mono_ms();
	res = call(g, "idle/silent+word_delay=20000", "one two", 1, 1);
	took = h_mono_ms() - t0;
	ck_assert_msg(res->cls == LLMGATE_TIMEOUT, "class %d: %s", res->cls,
	    res_text(res));
	ck_assert_uint_eq(res->nattempts, 1);
	ck_assert_msg(took >= IDLE_MS && took < IDLE_MS + slack_ms(),
	    "cut after %llu ms; idle_ms is %d", (unsigned long long)took,
	    IDLE_MS);
	llmgate_result_free(res);
	llmgate_close(g);
}
END_TEST

static Suite *
transport_suite(void)
{
	Suite *s = suite_create("transport");
	TCase *tc = tcase_create("transport");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_request_headers);
	tcase_add_test(tc, test_proxy_variable);
	tcase_add_test(tc, test_proxy_user_agent_once);
	tcase_add_test(tc, test_dead_keepalive_stream);
	tcase_add_test(tc, test_dead_keepalive_plain);
	tcase_add_test(tc, test_read_then_closed_not_resent);
	tcase_add_test(tc, test_idle_spares_whole_reply);
	tcase_add_test(tc, test_idle_resets_on_bytes);
	tcase_add_test(tc, test_idle_cuts_silent_stream);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return h_fixture_main("check_transport", transport_suite(), &d, &fp_pid,
	    &fixture_failed);
}
