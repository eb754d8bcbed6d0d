/*
 * check_e2e.c: the foundation end to end: the real llmgated on a temporary
 * socket, driven through libllmgate, the llmgate CLI and raw frames, with
 * the built-in mock provider.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

static struct daemon d;

/* Quick retries so the tests spend little time waiting. */
static const char *fast_conf =
    "providers = ( { name = \"mock\"; type = \"mock\"; } );\n"
    "routes = ( { name = \"default\"; targets = [ \"mock/echo\" ]; },\n"
    "  { name = \"override\"; targets = ( { target = \"mock/flaky:1\";\n"
    "    attempts = 1; max_tokens = 50; }, \"mock/echo\" ); } );\n" H_CONF_FAST_RETRY;

static void
setup(void)
{
	h_daemon_start(&d, fast_conf);
}

static void
teardown(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
}

START_TEST(test_call_echo)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req =
	    h_request("hello there", "mock/echo", NULL);
	struct llmgate_result *res = NULL;

	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_OK);
	ck_assert_str_eq(res->text, "echo: hello there");
	ck_assert_str_eq(res->target, "mock/echo");
	ck_assert_int_eq(res->finish, LLMGATE_FINISH_STOP);
	ck_assert_uint_eq(res->input_tokens, 2);
	ck_assert_uint_eq(res->output_tokens, 3);
	ck_assert_uint_eq(res->nattempts, 1);
	ck_assert_int_eq(res->attempts[0].cls, LLMGATE_OK);
	llmgate_result_free(res);
	h_request_free(req);
	llmgate_close(g);
}
END_TEST

/* One call of a client's, checked for class invalid_request and why. */
static void
refused(struct llmgate *g, struct llmgate_request *req, const char *why)
{
	struct llmgate_result *res = NULL;

	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_INVALID_REQUEST);
	ck_assert_msg(strstr(res->message, why) != NULL, "%s", res->message);
	ck_assert_uint_eq(res->nattempts, 0);
	llmgate_result_free(res);
}

/*
 * One rule for the socket, libllmgate's and llmgated's (proto/socket.c):
 * explicit, then $LLMGATE_SOCKET, then (the daemon's) config, then the
 * built-in default; the library reads no config file.
 */
START_TEST(test_socket_resolution)
{
	char buf[256], small[8], *saved = NULL;
	const char *env = getenv("LLMGATE_SOCKET");
	struct llmgate *g;

	if (env != NULL)
		saved = strdup(env);
	unsetenv("LLMGATE_SOCKET");
	ck_assert_str_eq(llmgate_socket_path(NULL, buf, sizeof buf),
	    RUNSTATEDIR "/llmgate/llmgate.sock");
	ck_assert_str_eq(proto_socket_path(NULL, NULL, buf, sizeof buf),
	    RUNSTATEDIR "/llmgate/llmgate.sock");
	ck_assert_str_eq(proto_socket_path(NULL, "/c.sock", buf, sizeof buf),
	    "/c.sock");
	ck_assert_str_eq(llmgate_socket_path("/x.sock", buf, sizeof buf),
	    "/x.sock");
	ck_assert_ptr_null(
	    llmgate_socket_path("/a/long/path.sock", small, sizeof small));

	setenv("LLMGATE_SOCKET", d.sock, 1);
	ck_assert_str_eq(llmgate_socket_path(NULL, buf, sizeof buf), d.sock);
	ck_assert_str_eq(proto_socket_path(NULL, "/c.sock", buf, sizeof buf),
	    d.sock);
	ck_assert_str_eq(proto_socket_path("/x.sock", "/c.sock", buf,
	                     sizeof buf),
	    "/x.sock");
	/* llmgate_connect(NULL) follows it to the daemon. */
	g = llmgate_connect(NULL, "check_e2e", buf, sizeof buf);
	ck_assert_msg(g != NULL, "connect: %s", buf);
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);

	if (saved != NULL) {
		setenv("LLMGATE_SOCKET", saved, 1);
		free(saved);
	} else
		unsetenv("LLMGATE_SOCKET");
}
END_TEST

/*
 * The request's setters refuse what cannot be sent, and a request built
 * with every one of them goes through.
 */
START_TEST(test_request_setters)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req = llmgate_request_new();
	struct llmgate_result *res = NULL;
	int m;

	ck_assert_int_eq(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     NULL),
	    -1);
	ck_assert_int_eq(llmgate_request_add_message(req,
	                     (enum llmgate_role)LLMGATE_ROLE_MAX, "x"),
	    -1);
	ck_assert_int_eq(llmgate_request_add_tool_call(req, 0, "id", "f", "{}"),
	    -1);
	ck_assert_int_eq(llmgate_request_set_priority(req,
	                     (enum llmgate_priority)LLMGATE_PRIO_MAX),
	    -1);
	ck_assert_int_eq(llmgate_request_set_on_cut(req,
	                     (enum llmgate_on_cut) - 1),
	    -1);
	ck_assert_int_eq(llmgate_request_add_target(req, ""), -1);
	ck_assert_int_eq(llmgate_request_set_system(NULL, "x"), -1);

	ck_assert_int_eq(llmgate_request_set_system(req, "be brief"), 0);
	ck_assert_int_eq(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     "weather?"),
	    0);
	m = llmgate_request_add_message(req, LLMGATE_ROLE_ASSISTANT, NULL);
	ck_assert_int_eq(m, 1);
	ck_assert_int_eq(llmgate_request_add_tool_call(req, (size_t)m, "c1",
	                     "get_weather", "{\"city\":\"Oslo\"}"),
	    0);
	m = llmgate_request_add_message(req, LLMGATE_ROLE_TOOL, "sunny");
	ck_assert_int_eq(llmgate_request_set_tool_result(req, (size_t)m, "c1",
	                     "get_weather"),
	    0);
	ck_assert_int_eq(llmgate_request_set_tool_result(req, 0, "c1", "x"),
	    -1);
	ck_assert_int_eq(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     "and tomorrow?"),
	    3);
	ck_assert_int_eq(llmgate_request_add_tool(req, "get_weather", "w",
	                     "{\"type\":\"object\"}"),
	    0);
	ck_assert_int_eq(llmgate_request_add_target(req, "mock/flaky"), 0);
	ck_assert_int_eq(llmgate_request_set_max_tokens(req, 100), 0);
	ck_assert_int_eq(llmgate_request_set_temperature(req, 0.5), 0);
	ck_assert_int_eq(llmgate_request_set_top_p(req, 0.9), 0);
	ck_assert_int_eq(llmgate_request_set_seed(req, -7), 0);
	ck_assert_int_eq(llmgate_request_add_stop(req, "END"), 0);
	ck_assert_int_eq(llmgate_request_set_attempts(req, 2), 0);
	ck_assert_int_eq(llmgate_request_set_timeout_ms(req, 10000), 0);
	ck_assert_int_eq(llmgate_request_set_priority(req, LLMGATE_PRIO_HIGH),
	    0);
	ck_assert_int_eq(llmgate_request_set_on_cut(req, LLMGATE_CUT_FAIL), 0);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_msg(res->cls == LLMGATE_OK, "%s: %s",
	    llmgate_class_name(res->cls), res->message);
	ck_assert_str_eq(res->text, "echo: and tomorrow?");
	/* flaky's first attempt fails; attempts 2 allows the retry. */
	ck_assert_uint_eq(res->nattempts, 2);
	llmgate_result_free(res);

	/* A named route instead of targets. */
	llmgate_request_free(req);
	req = llmgate_request_new();
	ck_assert_int_eq(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     "hi"),
	    0);
	ck_assert_int_eq(llmgate_request_set_route(req, "default"), 0);
	ck_assert_int_eq(llmgate_call(g, req, NULL, NULL, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_OK);
	llmgate_result_free(res);
	llmgate_request_free(req);
	llmgate_request_free(NULL);
	llmgate_close(g);
}
END_TEST

/*
 * What a client may ask for is bounded: attempts (as in any config), the
 * length of its own chain, the length of a model name.
 */
START_TEST(test_request_limits)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req =
	    h_request("hi", "mock/rate-limited:0", NULL);
	char model[260];
	size_t i;

	ck_assert_int_eq(llmgate_request_set_attempts(req, 4000000000u), 0);
	refused(g, req, "at most 100");
	h_request_free(req);

	req = h_request("hi", NULL);
	for (i = 0; i < 33; i++)
		ck_assert_int_eq(llmgate_request_add_target(req, "mock/echo"),
		    0);
	refused(g, req, "at most 32");
	h_request_free(req);

	memset(model, 'm', sizeof model - 1);
	model[sizeof model - 1] = '\0';
	memcpy(model, "mock/", 5);
	req = h_request("hi", model, NULL);
	refused(g, req, "at most 200 bytes");
	h_request_free(req);
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
}
END_TEST

static void wait_status(const char *, const char *, json_int_t, json_int_t);

/* A client's name cannot forge log lines: its controls are replaced. */
START_TEST(test_client_name_sanitized)
{
	struct llmgate_request *req = h_request("hi", "mock/slow:60000", NULL);
	struct llmgate *g;
	char err[128], *log = NULL;
	uint64_t deadline;

	g = llmgate_connect(d.sock, "evil\n<0>forged line", err, sizeof err);
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, NULL, NULL), 0);
	/* The call must be running when the client leaves. */
	while (llmgate_want_write(g))
		ck_assert_int_ge(llmgate_process(g), 0);
	wait_status(NULL, "inflight", 1, 1);
	llmgate_close(g);
	h_request_free(req);
	for (deadline = h_mono_ms() + 20000;
	     log == NULL && h_mono_ms() < deadline;) {
		log = h_daemon_log(&d);
		if (strstr(log, "went away") == NULL) {
			free(log);
			log = NULL;
			h_sleep_ms(10);
		}
	}
	ck_assert_msg(log != NULL, "no \"went away\" in the log");
	ck_assert_ptr_nonnull(strstr(log, "evil?<0>forged line"));
	ck_assert_ptr_null(strstr(log, "\n<0>forged"));
	free(log);
}
END_TEST

struct collect {
	char text[1024];
	int chunks;
	int resets;
};

/* Like a terminal: a reset chunk clears what was shown. */
static void
reset_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct collect *c = arg;

	if (ch->reset) {
		c->text[0] = '\0';
		c->resets++;
		return;
	}
	if (ch->text != NULL)
		strncat(c->text, ch->text, ch->len);
}

static void
collect_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct collect *c = arg;

	if (ch->text != NULL) {
		strncat(c->text, ch->text, ch->len);
		c->chunks++;
	}
}

START_TEST(test_call_stream)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req =
	    h_request("one two three four", "mock/stream:5", NULL);
	struct llmgate_result *res = NULL;
	struct collect c = { "", 0 };

	llmgate_request_set_stream(req, 1);
	ck_assert_int_eq(llmgate_call(g, req, collect_chunk, &c, &res), 0);
	ck_assert_int_eq(res->cls, LLMGATE_OK);
	ck_assert_str_eq(c.text, "echo: one two three four");
	ck_assert_int_eq(c.chunks, 5);
	ck_assert_str_eq(res->text, "echo: one two three four");
	llmgate_result_free(res);
	h_request_free(req);
	llmgate_close(g);
}
END_TEST

struct many {
	int done;
	int ok;
	int last_cls;
	int wrong; /* answers with another request's text */
};

/* One request of a batch: its own expected reply. */
struct many_one {
	struct many *m;
	char want[64]; /* "": any successful reply */
};

static void
many_done(struct llmgate_result *res, void *arg)
{
	struct many_one *one = arg;
	struct many *m = one->m;

	m->done++;
	m->last_cls = res->cls;
	if (res->cls == LLMGATE_OK) {
		if (*one->want == '\0' ||
		    (res->text != NULL && strcmp(res->text, one->want) == 0))
			m->ok++;
		else
			m->wrong++;
	}
	llmgate_result_free(res);
}

static void
run_many(struct llmgate **conns, int nconns, int per)
{
	struct llmgate_request *req;
	struct pollfd pfd[64];
	struct many m = { 0 };
	struct many_one *ones;
	char prompt[32];
	int i, j, k, total = nconns * per;

	ones = calloc((size_t)total, sizeof *ones);
	ck_assert_ptr_nonnull(ones);
	for (i = 0; i < nconns; i++) {
		for (j = 0; j < per; j++) {
			k = i * per + j;
			snprintf(prompt, sizeof prompt, "call %d", k);
			ones[k].m = &m;
			snprintf(ones[k].want, sizeof ones[k].want, "echo: %s",
			    prompt);
			req = h_request(prompt, "mock/slow:20", NULL);
			ck_assert_uint_gt(llmgate_submit(conns[i], req, NULL,
			                      many_done, &ones[k]),
			    0);
			h_request_free(req);
		}
	}
	while (m.done < total) {
		for (i = 0; i < nconns; i++) {
			pfd[i].fd = llmgate_fd(conns[i]);
			pfd[i].events = POLLIN |
			    (llmgate_want_write(conns[i]) ? POLLOUT : 0);
		}
		ck_assert_int_gt(poll(pfd, (nfds_t)nconns, 10000), 0);
		for (i = 0; i < nconns; i++) {
			if (pfd[i].revents)
				ck_assert_int_ge(llmgate_process(conns[i]), 0);
		}
	}
	/* Each id got its own reply: none crossed over to another. */
	ck_assert_int_eq(m.wrong, 0);
	ck_assert_int_eq(m.ok, total);
	free(ones);
}

START_TEST(test_100_calls_one_connection)
{
	struct llmgate *g = h_connect(&d, "check_e2e");

	run_many(&g, 1, 100);
	llmgate_close(g);
}
END_TEST

START_TEST(test_100_calls_20_connections)
{
	struct llmgate *g[20];
	int i;

	for (i = 0; i < 20; i++)
		g[i] = h_connect(&d, "check_e2e");
	run_many(g, 20, 5);
	for (i = 0; i < 20; i++)
		llmgate_close(g[i]);
}
END_TEST

static json_t *
status_json(void)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	char *text = NULL;
	json_t *j;

	ck_assert_int_eq(llmgate_status(g, &text), 0);
	j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	free(text);
	llmgate_close(g);
	return j;
}

/* A number in the status: top level, or in target's entry. */
static json_int_t
status_int(const char *target, const char *key)
{
	json_t *st = status_json(), *o = st, *t;
	json_int_t v = -1;
	size_t i;

	if (target != NULL) {
		o = NULL;
		json_array_foreach(json_object_get(st, "targets"), i, t) {
			if (strcmp(json_string_value(
			               json_object_get(t, "target")),
			        target) == 0)
				o = t;
		}
	}
	if (json_is_integer(json_object_get(o, key)))
		v = json_integer_value(json_object_get(o, key));
	json_decref(st);
	return v;
}

/* Wait until that number is in [min, max]; fail after 20 s. */
static void
wait_status(const char *target, const char *key, json_int_t min, json_int_t max)
{
	uint64_t deadline = h_mono_ms() + 20000;
	json_int_t v;

	while ((v = status_int(target, key)) < min || v > max) {
		ck_assert_msg(h_mono_ms() < deadline,
		    "status %s%s%s is %lld, "
		    "want %lld to %lld",
		    target != NULL ? target : "", target != NULL ? " " : "",
		    key, (long long)v, (long long)min, (long long)max);
		h_sleep_ms(10);
	}
}

START_TEST(test_disconnect_mid_call)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req = h_request("bye", "mock/slow:60000", NULL);
	int i;

	ck_assert_uint_gt(llmgate_submit(g, req, NULL, NULL, NULL), 0);
	h_request_free(req);
	/* Let the daemon receive it, then vanish. */
	for (i = 0; i < 20 && llmgate_want_write(g); i++)
		llmgate_process(g);
	wait_status(NULL, "inflight", 1, 1);
	llmgate_close(g);
	/* Its 60 s are not waited out: the call ends with the client. */
	wait_status(NULL, "inflight", 0, 0);
	ck_assert(h_daemon_alive(&d));
}
END_TEST

/* The daemon answers garbage with an error, closes, and keeps serving. */
START_TEST(test_garbage_bytes)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct proto_msg m;
	struct llmgate *g;
	int fd = h_raw_connect(&d, 0);

	ck_assert_int_eq(write(fd, junk, sizeof junk - 1),
	    (ssize_t)sizeof junk - 1);
	ck_assert_int_eq(h_raw_recv(fd, &m, 3000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_int_eq(m.u.result.cls, LLMGATE_INVALID_REQUEST);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "frame"));
	proto_msg_free(&m);
	ck_assert(h_raw_closed(fd, 3000));
	close(fd);
	g = h_connect(&d, "check_e2e");
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
}
END_TEST

START_TEST(test_oversized_frame)
{
	unsigned char hdr[4] = { 0x10, 0, 0, 0 }; /* 256 MiB */
	struct proto_msg m;
	struct llmgate *g;
	int fd = h_raw_connect(&d, 1);

	ck_assert_int_eq(write(fd, hdr, 4), 4);
	ck_assert_int_eq(h_raw_recv(fd, &m, 3000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "limit"));
	proto_msg_free(&m);
	ck_assert(h_raw_closed(fd, 3000));
	close(fd);
	g = h_connect(&d, "check_e2e");
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
}
END_TEST

/* A zero-length frame gets its own message, not "over the limit". */
START_TEST(test_empty_frame)
{
	unsigned char hdr[4] = { 0, 0, 0, 0 };
	struct proto_msg m;
	struct llmgate *g;
	int fd = h_raw_connect(&d, 1);

	ck_assert_int_eq(write(fd, hdr, 4), 4);
	ck_assert_int_eq(h_raw_recv(fd, &m, 3000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_int_eq(m.u.result.cls, LLMGATE_INVALID_REQUEST);
	ck_assert_str_eq(m.u.result.message,
	    "empty frame refused: a frame's "
	    "length must be at least 1 (each frame holds one message)");
	proto_msg_free(&m);
	ck_assert(h_raw_closed(fd, 3000));
	close(fd);
	g = h_connect(&d, "check_e2e");
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
}
END_TEST

START_TEST(test_malformed_payload)
{
	/* A valid frame whose payload is an array, not a map. */
	unsigned char frame[] = { 0, 0, 0, 3, 0x92, 0x01, 0x02 };
	struct proto_msg m;
	int fd = h_raw_connect(&d, 1);

	ck_assert_int_eq(write(fd, frame, sizeof frame), (ssize_t)sizeof frame);
	ck_assert_int_eq(h_raw_recv(fd, &m, 3000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "malformed"));
	proto_msg_free(&m);
	ck_assert(h_raw_closed(fd, 3000));
	close(fd);
}
END_TEST

START_TEST(test_unknown_type_keeps_connection)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct proto_msg m;
	int fd = h_raw_connect(&d, 1);

	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_write(&sb, "\0\0\0\0", 4);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_str_with_body(&pk, "frobnicate", 10);
	msgpack_pack_str_with_body(&pk, "id", 2);
	msgpack_pack_uint32(&pk, 77);
	h_raw_send_framed(fd, &sb);
	ck_assert_int_eq(h_raw_recv(fd, &m, 3000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_uint_eq(m.id, 77);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "frobnicate"));
	proto_msg_free(&m);
	/* Still open: a ping is answered. */
	proto_enc_simple(&sb, PROTO_PING, 78);
	h_raw_send(fd, &sb);
	ck_assert_int_eq(h_raw_recv(fd, &m, 3000), 0);
	ck_assert_int_eq(m.type, PROTO_PONG);
	ck_assert_uint_eq(m.id, 78);
	proto_msg_free(&m);
	msgpack_sbuffer_destroy(&sb);
	close(fd);
}
END_TEST

/*
 * Frames arrive however the socket splits them: a header cut in two, a
 * call of 300 KiB (over what llmgated reads at once) in small pieces, and
 * frames that share a write. Each is answered once, whole.
 */
START_TEST(test_frames_in_pieces)
{
	struct llmgate_request *req;
	msgpack_sbuffer sb;
	struct proto_msg m;
	size_t plen = 300 * 1024, off = 0, n;
	char *prompt = malloc(plen + 1);
	int fd = h_raw_connect(&d, 1), i, got[3] = { 0, 0, 0 };

	ck_assert_ptr_nonnull(prompt);
	for (n = 0; n < plen; n++)
		prompt[n] = "abcdefgh "[n % 9];
	prompt[plen] = '\0';
	msgpack_sbuffer_init(&sb);
	proto_enc_simple(&sb, PROTO_PING, 5);
	req = h_request(prompt, "mock/echo", NULL);
	proto_enc_call(&sb, 6, req);
	h_request_free(req);
	proto_enc_simple(&sb, PROTO_PING, 7);
	while (off < sb.size) {
		n = off == 0 ? 3 : sb.size - off < 7001 ? sb.size - off : 7001;
		ck_assert_int_eq(write(fd, sb.data + off, n), (ssize_t)n);
		off += n;
		h_sleep_ms(off < 20000 ? 5 : 1);
	}
	msgpack_sbuffer_destroy(&sb);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(h_raw_recv(fd, &m, 5000), 0);
		ck_assert_msg(m.id >= 5 && m.id <= 7, "answer to id %u", m.id);
		got[m.id - 5]++;
		if (m.id == 6) {
			ck_assert_int_eq(m.type, PROTO_RESULT);
			ck_assert_int_eq(m.u.result.cls, LLMGATE_OK);
			ck_assert_uint_eq(strlen(m.u.result.text), plen + 6);
			ck_assert_int_eq(strncmp(m.u.result.text, "echo: ", 6),
			    0);
			ck_assert_str_eq(m.u.result.text + 6, prompt);
		} else
			ck_assert_int_eq(m.type, PROTO_PONG);
		proto_msg_free(&m);
	}
	ck_assert_int_eq(got[0] + got[1] * 10 + got[2] * 100, 111);
	free(prompt);
	close(fd);
}
END_TEST

START_TEST(test_version_mismatch)
{
	struct proto_hello h = { .version = 99, .name = "future" };
	struct proto_msg m;
	msgpack_sbuffer sb;
	int fd = h_raw_connect(&d, 0);

	msgpack_sbuffer_init(&sb);
	proto_enc_hello(&sb, &h);
	h_raw_send(fd, &sb);
	msgpack_sbuffer_destroy(&sb);
	ck_assert_int_eq(h_raw_recv(fd, &m, 3000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_ptr_nonnull(strstr(m.u.result.message, "version 99"));
	proto_msg_free(&m);
	ck_assert(h_raw_closed(fd, 3000));
	close(fd);
}
END_TEST

START_TEST(test_cancel)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req = h_request("x", "mock/slow:5000", NULL);
	struct many m = { 0 };
	struct many_one one = { &m, "" };
	struct pollfd pfd;
	uint32_t id;

	id = llmgate_submit(g, req, NULL, many_done, &one);
	h_request_free(req);
	ck_assert_int_eq(llmgate_cancel(g, id), 0);
	while (m.done == 0) {
		pfd.fd = llmgate_fd(g);
		pfd.events = POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
		ck_assert_int_gt(poll(&pfd, 1, 3000), 0);
		ck_assert_int_ge(llmgate_process(g), 0);
	}
	ck_assert_int_eq(m.ok, 0);
	llmgate_close(g);
}
END_TEST

START_TEST(test_cli_fallback_json)
{
	struct run r;
	json_t *j, *att;

	h_cli(&r, &d, NULL, "call", "--json", "-m", "mock/flaky:5", "-m",
	    "mock/echo", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
	    "echo: hi");
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/echo");
	ck_assert_str_eq(json_string_value(json_object_get(j, "finish_reason")),
	    "stop");
	att = json_object_get(j, "attempts");
	/* Two attempts at the flaky target (attempts = 2), then echo. */
	ck_assert_int_eq(json_array_size(att), 3);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 0), "class")),
	    "server_error");
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_array_get(att, 0), "status")),
	    503);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 1), "target")),
	    "mock/flaky:5");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 2), "class")),
	    "ok");
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(j, "usage"),
	                         "input_tokens")),
	    1);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_cli_retry_after_honoured)
{
	struct run r;
	json_t *j, *att;

	h_cli(&r, &d, NULL, "call", "--json", "-m", "mock/rate-limited:1", "-m",
	    "mock/echo", "hi", NULL);
	ck_assert_int_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	att = json_object_get(j, "attempts");
	ck_assert_int_eq(json_array_size(att), 3);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 0), "class")),
	    "rate_limited");
	ck_assert_int_ge(json_integer_value(
	                     json_object_get(json_array_get(att, 1),
	                         "waited_ms")),
	    950);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_cli_failure_exit_4)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "call", "--json", "-m", "mock/error:auth", "-m",
	    "mock/error:bad_request", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(j, "error"),
	                         "class")),
	    "bad_request");
	ck_assert_int_eq(json_array_size(json_object_get(j, "attempts")), 2);
	json_decref(j);
	h_run_free(&r);

	/* bad_request neither retries nor falls back. */
	h_cli(&r, &d, NULL, "call", "--json", "-m", "mock/error:bad_request",
	    "-m", "mock/echo", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = json_loads(r.out, 0, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(j, "attempts")), 1);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_cli_deadline)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "call", "--json", "--timeout", "100", "-m",
	    "mock/slow:3000", "hi", NULL);
	ck_assert_int_eq(r.status, 4);
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(j, "error"),
	                         "class")),
	    "deadline");
	json_decref(j);
	h_run_free(&r);
}
END_TEST

START_TEST(test_cli_usage_errors)
{
	struct run r;

	h_cli(&r, &d, NULL, "call", "--no-such-flag", "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "--max-tokens", "lots", "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	h_run_free(&r);
	/* The daemon refuses an unknown provider: invalid input, exit 2. */
	h_cli(&r, &d, NULL, "call", "-m", "nosuch/model", "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "nosuch"));
	h_run_free(&r);
}
END_TEST

START_TEST(test_cli_stdin_and_stream)
{
	struct run r;

	h_cli(&r, &d, "from stdin\n", "call", "--stream", "-m", "mock/stream:1",
	    NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "echo: from stdin\n");
	h_run_free(&r);
}
END_TEST

START_TEST(test_cli_status_ping)
{
	struct run r;
	json_t *j;

	h_cli(&r, &d, NULL, "ping", NULL);
	ck_assert_int_eq(r.status, 0);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "-m", "mock/echo", "hi", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "echo: hi\n");
	h_run_free(&r);
	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "version")),
	    LLMGATE_VERSION);
	ck_assert_int_ge(json_integer_value(
	                     json_object_get(json_object_get(j, "counters"),
	                         "calls")),
	    1);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(json_object_get(j,
	                                                        "targets"),
	                                         0),
	                         "target")),
	    "mock/echo");
	json_decref(j);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "status", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "mock/echo"));
	h_run_free(&r);
}
END_TEST

START_TEST(test_cli_unreachable)
{
	char *argv[] = { "llmgate", "-s", "/tmp/llmgate-nonexistent.sock",
		"ping", NULL };
	struct run r;

	h_run(&r, NULL, argv);
	ck_assert_int_eq(r.status, 3);
	ck_assert_ptr_nonnull(strstr(r.err, "llmgate-nonexistent.sock"));
	h_run_free(&r);
}
END_TEST

/*
 * ping --wait: started before any daemon, it keeps trying (through a
 * listener that drops it during the handshake, then no socket at all)
 * and answers once llmgated is up.
 */
START_TEST(test_cli_ping_wait)
{
	struct sockaddr_un sun;
	struct pollfd pfd;
	char path[100], out[100], text[256];
	int lfd, cfd, fd, st, dst;
	ssize_t n;
	pid_t ping, daemon;
	uint64_t deadline;

	snprintf(path, sizeof path, "%s/late.sock", d.dir);
	snprintf(out, sizeof out, "%s/ping.out", d.dir);
	ping = fork();
	ck_assert_int_ge(ping, 0);
	if (ping == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		execl(BUILD_DIR "/llmgate", "llmgate", "-s", path, "ping",
		    "--wait", "60", (char *)NULL);
		_exit(127);
	}

	/* The ping connects to a listener that never answers: it began. */
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	pfd.fd = lfd;
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 20000), 1);
	cfd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(cfd, 0);
	close(cfd);
	close(lfd);
	unlink(path);
	ck_assert_int_eq(waitpid(ping, &st, WNOHANG), 0);

	daemon = fork();
	ck_assert_int_ge(daemon, 0);
	if (daemon == 0) {
		fd = open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		execl(BUILD_DIR "/llmgated", "llmgated", "-c", d.conf, "-s",
		    path, (char *)NULL);
		_exit(127);
	}
	for (deadline = h_mono_ms() + 30000; waitpid(ping, &st, WNOHANG) == 0;
	     h_sleep_ms(10))
		ck_assert_msg(h_mono_ms() < deadline, "ping --wait hangs");
	kill(daemon, SIGTERM);
	waitpid(daemon, &dst, 0);
	fd = open(out, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, text, sizeof text - 1);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "ping --wait: status %d: %s", st, text);
	ck_assert_str_eq(text, "pong\n");
}
END_TEST

/* No daemon: ping --wait gives up after its time, unreachable. */
START_TEST(test_cli_ping_wait_unreachable)
{
	char *argv[] = { "llmgate", "-s", "/tmp/llmgate-nonexistent.sock",
		"ping", "--wait", "1.5", NULL };
	char *bad[] = { "llmgate", "ping", "--wait", "-1", NULL };
	struct run r;
	uint64_t t0, ms;

	t0 = h_mono_ms();
	h_run(&r, NULL, argv);
	ms = h_mono_ms() - t0;
	ck_assert_int_eq(r.status, 3);
	ck_assert_uint_ge(ms, 1400);
	ck_assert_uint_lt(ms, 15000);
	ck_assert_ptr_nonnull(strstr(r.err, "llmgate-nonexistent.sock"));
	ck_assert_ptr_nonnull(strstr(r.err, "no answer within 1.5 s"));
	h_run_free(&r);

	h_run(&r, NULL, bad);
	ck_assert_int_eq(r.status, 2);
	h_run_free(&r);
}
END_TEST

START_TEST(test_second_daemon_refused)
{
	char *argv[] = { "llmgated", "-s", d.sock, NULL };
	struct run r;

	h_run(&r, NULL, argv);
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "already listening"));
	h_run_free(&r);
}
END_TEST

/* A socket file nobody listens on is replaced. */
START_TEST(test_stale_socket_replaced)
{
	struct sockaddr_un sun;
	char path[100];
	int fd, st, cfd = -1;
	uint64_t deadline;
	pid_t pid;

	snprintf(path, sizeof path, "%s/stale.sock", d.dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);

	pid = fork();
	if (pid == 0) {
		execl(BUILD_DIR "/llmgated", "llmgated", "-c", d.conf, "-s",
		    path, (char *)NULL);
		_exit(127);
	}
	/* Slow under valgrind: wait for its socket up to a deadline. */
	for (deadline = h_mono_ms() + 20000;
	     cfd == -1 && h_mono_ms() < deadline;) {
		h_sleep_ms(10);
		cfd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(cfd, (struct sockaddr *)&sun, sizeof sun) != 0) {
			close(cfd);
			cfd = -1;
		}
	}
	ck_assert_int_ge(cfd, 0);
	close(cfd);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

START_TEST(test_check_config_line)
{
	char *path = h_strdup_printf("%s/bad.conf", d.dir);
	char *argv[] = { "llmgated", "--check-config", "-c", path, NULL };
	FILE *f = fopen(path, "w");
	struct run r;

	fputs("providers = (\n  { name = \"m\"; type = \"mock\"; },\n"
	      "  { name = \"x\"; type = \"nosuchtype\"; }\n);\n",
	    f);
	fclose(f);
	h_run(&r, NULL, argv);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "bad.conf:3:") != NULL, "got: %s", r.err);
	ck_assert_ptr_nonnull(strstr(r.err, "nosuchtype"));
	h_run_free(&r);

	f = fopen(path, "w");
	fputs(
	    "providers = (\n  { name = \"m\"; type = \"mock\" }\n  oops\n);\n",
	    f);
	fclose(f);
	h_run(&r, NULL, argv);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "bad.conf:3:") != NULL, "got: %s", r.err);
	h_run_free(&r);
	free(path);
}
END_TEST

/* A stream cut after some chunks: the client sees the text exactly once. */
static void
cut_call(const char *on_cut, const char *model, struct collect *c,
    struct llmgate_result **res)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req =
	    h_request("one two three four five", model, NULL);

	llmgate_request_set_stream(req, 1);
	ck_assert_int_eq(llmgate_request_set_on_cut(req,
	                     (enum llmgate_on_cut)llmgate_on_cut_from_name(
	                         on_cut)),
	    0);
	memset(c, 0, sizeof *c);
	ck_assert_int_eq(llmgate_call(g, req, reset_chunk, c, res), 0);
	h_request_free(req);
	llmgate_close(g);
}

START_TEST(test_stream_cut_resume)
{
	static const char *models[] = { "mock/cut:1", "mock/cut:3",
		"mock/cut:5" };
	struct llmgate_result *res;
	struct collect c;
	size_t i;

	for (i = 0; i < 3; i++) {
		cut_call("resume", models[i], &c, &res);
		ck_assert_int_eq(res->cls, LLMGATE_OK);
		ck_assert_str_eq(c.text, "echo: one two three four five");
		ck_assert_str_eq(res->text, "echo: one two three four five");
		ck_assert_int_eq(c.resets, 0);
		ck_assert_uint_eq(res->nattempts, 2);
		ck_assert_int_eq(res->attempts[0].cls, LLMGATE_CONNECTION);
		llmgate_result_free(res);
	}
}
END_TEST

START_TEST(test_stream_cut_before_any_chunk)
{
	struct llmgate_result *res;
	struct collect c;

	/* Nothing reached the client: a plain transparent retry. */
	cut_call("fail", "mock/cut:0", &c, &res);
	ck_assert_int_eq(res->cls, LLMGATE_OK);
	ck_assert_str_eq(c.text, "echo: one two three four five");
	ck_assert_uint_eq(res->nattempts, 2);
	llmgate_result_free(res);
}
END_TEST

START_TEST(test_stream_cut_restart)
{
	struct llmgate_result *res;
	struct collect c;

	cut_call("restart", "mock/cut:2", &c, &res);
	ck_assert_int_eq(res->cls, LLMGATE_OK);
	ck_assert_int_eq(c.resets, 1);
	/* After the reset marker the whole reply comes again, once. */
	ck_assert_str_eq(c.text, "echo: one two three four five");
	llmgate_result_free(res);
}
END_TEST

START_TEST(test_stream_cut_fail)
{
	struct llmgate_result *res;
	struct collect c;

	cut_call("fail", "mock/cut:2", &c, &res);
	ck_assert_int_eq(res->cls, LLMGATE_CONNECTION);
	ck_assert_int_eq(res->partial, 1);
	ck_assert_str_eq(res->text, "echo: one ");
	ck_assert_str_eq(c.text, "echo: one ");
	ck_assert_uint_eq(res->nattempts, 1);
	llmgate_result_free(res);
}
END_TEST

START_TEST(test_cancel_during_backoff)
{
	struct llmgate *g = h_connect(&d, "check_e2e");
	struct llmgate_request *req =
	    h_request("x", "mock/rate-limited:30", NULL);
	struct many m = { 0 };
	struct many_one one = { &m, "" };
	struct pollfd pfd;
	uint32_t id;
	json_t *st;

	id = llmgate_submit(g, req, NULL, many_done, &one);
	h_request_free(req);
	/* Let the first attempt fail and the 30 s wait begin. */
	while (llmgate_want_write(g))
		llmgate_process(g);
	wait_status("mock/rate-limited:30", "failures", 1, 1);
	wait_status("mock/rate-limited:30", "inflight", 0, 0);
	ck_assert_int_eq(llmgate_cancel(g, id), 0);
	while (m.done == 0) {
		pfd.fd = llmgate_fd(g);
		pfd.events = POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
		ck_assert_int_gt(poll(&pfd, 1, 3000), 0);
		ck_assert_int_ge(llmgate_process(g), 0);
	}
	ck_assert_int_eq(m.ok, 0);
	ck_assert_int_eq(m.last_cls, LLMGATE_CANCELLED);
	llmgate_close(g);
	st = status_json();
	ck_assert_int_eq(json_integer_value(json_object_get(st, "inflight")),
	    0);
	json_decref(st);
}
END_TEST

START_TEST(test_deadline_shorter_than_retry_after)
{
	struct run r;
	json_t *j, *att;

	/* Retry-After 30 s cannot fit a 2 s deadline: fall back at once. */
	h_cli(&r, &d, NULL, "call", "--json", "--timeout", "2000", "-m",
	    "mock/rate-limited:30", "-m", "mock/echo", "hi", NULL);
	ck_assert_int_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	att = json_object_get(j, "attempts");
	ck_assert_int_eq(json_array_size(att), 2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/echo");
	ck_assert_int_lt(json_integer_value(
	                     json_object_get(json_array_get(att, 1),
	                         "waited_ms")),
	    500);
	json_decref(j);
	h_run_free(&r);
}
END_TEST

/*
 * A client that sends streamed calls and never reads: the daemon stops
 * reading its requests, then drops it once max_output is queued and it
 * has read none of it for frame_timeout_ms, and keeps serving everyone
 * else. How much the
 * kernel buffers differs between machines, so the client keeps sending
 * calls (as far as the daemon reads them) until the drop shows.
 */
START_TEST(test_slow_reader_dropped)
{
	static const char conf[] =
	    "providers = ( { name = \"mock\"; type = \"mock\"; } );\n"
	    "max_frame = 8192; max_output = 65536; frame_timeout_ms = 1000;\n";
	struct llmgate_request *req;
	struct daemon d2;
	struct llmgate *g;
	msgpack_sbuffer sb;
	char prompt[7001], err[128], *log = NULL;
	size_t off = 0;
	uint32_t id = 0;
	ssize_t n;
	int fd, i;

	h_daemon_start(&d2, conf);
	memset(prompt, 'w', sizeof prompt - 1);
	for (i = 1; i < (int)sizeof prompt - 1; i += 2)
		prompt[i] = ' ';
	prompt[sizeof prompt - 1] = '\0';
	fd = h_raw_connect(&d2, 1);
	/* Non-blocking, so our own send buffer filling up cannot hang us. */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	msgpack_sbuffer_init(&sb);
	req = h_request(prompt, "mock/echo", NULL);
	llmgate_request_set_stream(req, 1);
	/* Busy machines (make check -j) take a while to fill the buffers. */
	for (i = 0; i < 600 && log == NULL; i++) {
		for (;;) {
			if (off == sb.size) {
				msgpack_sbuffer_clear(&sb);
				proto_enc_call(&sb, ++id, req);
				off = 0;
			}
			n = send(fd, sb.data + off, sb.size - off,
			    MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		usleep(50000);
		log = h_daemon_log(&d2);
		if (strstr(log, "not reading its replies") == NULL) {
			free(log);
			log = NULL;
		}
	}
	h_request_free(req);
	msgpack_sbuffer_destroy(&sb);
	ck_assert_msg(log != NULL,
	    "the slow reader was never dropped "
	    "(%u calls sent)",
	    id);
	free(log);
	close(fd);
	g = llmgate_connect(d2.sock, "after", err, sizeof err);
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(llmgate_ping(g), 0);
	llmgate_close(g);
	ck_assert_int_eq(h_daemon_stop(&d2), 0);
}
END_TEST

/* A route's per-target attempts override the config's retry.attempts. */
START_TEST(test_route_target_override)
{
	struct run r;
	json_t *j, *att;

	h_cli(&r, &d, NULL, "call", "--json", "-r", "override", "hi", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = json_loads(r.out, 0, NULL);
	att = json_object_get(j, "attempts");
	/* One attempt at flaky (it would succeed on a second), then echo. */
	ck_assert_int_eq(json_array_size(att), 2);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 0), "class")),
	    "server_error");
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/echo");
	json_decref(j);
	h_run_free(&r);

	/* The default route applies when the caller names none. */
	h_cli(&r, &d, NULL, "call", "--json", "hi", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\"target\":\"mock/echo\""));
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "-r", "nosuchroute", "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "nosuchroute"));
	h_run_free(&r);
}
END_TEST

static char *
write_file(const char *name, const char *text)
{
	char *path = h_strdup_printf("%s/%s", d.dir, name);
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char person_schema[] =
    "{\"type\": \"object\", "
    "\"required\": [\"name\"], \"additionalProperties\": false, "
    "\"properties\": {\"name\": {\"type\": \"string\"}}}";

/* An invalid reply is fed back, and the corrected one is returned. */
START_TEST(test_schema_repair)
{
	char *schema = write_file("person.json", person_schema);
	struct run r;
	json_t *j, *att;

	h_cli(&r, &d, NULL, "call", "--json", "--schema", schema, "-m",
	    "mock/json-fix:1", "{\"name\": \"Ada\"}", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s %s", r.status, r.out, r.err);
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
	    "{\"name\": \"Ada\"}");
	att = json_object_get(j, "attempts");
	ck_assert_int_eq(json_array_size(att), 2);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 0), "class")),
	    "schema");
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(
	               json_object_get(json_array_get(att, 0), "message")),
	        "bad"));
	json_decref(j);
	h_run_free(&r);

	/* Streamed: the invalid reply never reaches stdout. */
	h_cli(&r, &d, NULL, "call", "--stream", "--schema", schema, "-m",
	    "mock/json-fix:1", "{\"name\": \"Ada\"}", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "{\"name\": \"Ada\"}\n");
	h_run_free(&r);
	free(schema);
}
END_TEST

/* Out of repairs: class schema for that target, and the chain falls back. */
START_TEST(test_schema_repairs_run_out)
{
	char *schema = write_file("person.json", person_schema);
	struct run r;
	json_t *j, *att;
	size_t i;

	h_cli(&r, &d, NULL, "call", "--json", "--schema", schema, "-m",
	    "mock/json-fix:9", "-m", "mock/json-fix:0", "{\"name\": \"Ada\"}",
	    NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = json_loads(r.out, 0, NULL);
	att = json_object_get(j, "attempts");
	/* The first try and two repairs, then the next target. */
	ck_assert_int_eq(json_array_size(att), 4);
	for (i = 0; i < 3; i++)
		ck_assert_str_eq(json_string_value(
		                     json_object_get(json_array_get(att, i),
		                         "class")),
		    "schema");
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/json-fix:0");
	json_decref(j);
	h_run_free(&r);

	h_cli(&r, &d, NULL, "call", "--json", "--schema", schema, "-m",
	    "mock/json-fix:9", "{\"name\": \"Ada\"}", NULL);
	ck_assert_int_eq(r.status, 4);
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(j, "error"),
	                         "class")),
	    "schema");
	json_decref(j);
	h_run_free(&r);
	free(schema);
}
END_TEST

/*
 * A repair does not spend the target's attempts: with two attempts, the
 * repair's transient 503 is retried, and the repaired reply answers
 * (before, the 503 ended the call: the first try and the repair had
 * used both attempts). usage is the answer's; usage_total bills the bad
 * first reply too, but not the 503.
 */
START_TEST(test_repair_retried)
{
	char *schema = write_file("person.json", person_schema);
	struct run r;
	json_t *j, *att, *u, *ut;

	h_cli(&r, &d, NULL, "call", "--json", "--attempts", "2", "--schema",
	    schema, "-m", "mock/json-flaky:1", "{\"name\": \"Ada\"}", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s %s", r.status, r.out, r.err);
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
	    "{\"name\": \"Ada\"}");
	att = json_object_get(j, "attempts");
	ck_assert_int_eq(json_array_size(att), 3);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 0), "class")),
	    "schema");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 1), "class")),
	    "server_error");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(att, 2), "class")),
	    "ok");
	u = json_object_get(j, "usage");
	ut = json_object_get(j, "usage_total");
	/* Two words of {"bad": true}, two of the answer; 2 words asked. */
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(u, "output_tokens")),
	    2);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(ut, "output_tokens")),
	    4);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(ut, "input_tokens")),
	    json_integer_value(json_object_get(u, "input_tokens")) + 2);
	json_decref(j);
	h_run_free(&r);

	/* A failed call reports what it was billed too. */
	h_cli(&r, &d, NULL, "call", "--json", "--schema", schema, "-m",
	    "mock/json-fix:9", "{\"name\": \"Ada\"}", NULL);
	ck_assert_int_eq(r.status, 4);
	j = json_loads(r.out, 0, NULL);
	ck_assert_int_eq(json_integer_value(
	                     json_object_get(json_object_get(j, "usage_total"),
	                         "output_tokens")),
	    6);
	json_decref(j);
	h_run_free(&r);
	free(schema);
}
END_TEST

START_TEST(test_tool_arguments_repaired)
{
	char *tools = write_file("tools.json",
	    "[{\"name\": \"get_weather\", "
	    "\"description\": \"Weather for a city\", \"parameters\": "
	    "{\"type\": \"object\", \"required\": [\"city\"], "
	    "\"properties\": {\"city\": {\"type\": \"string\"}}}}]");
	struct run r;
	json_t *j, *tc;

	h_cli(&r, &d, NULL, "call", "--json", "--tools", tools, "-m",
	    "mock/tool-fix:1", "{\"city\": \"Paris\"}", NULL);
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	j = json_loads(r.out, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "finish_reason")),
	    "tool_calls");
	tc = json_array_get(json_object_get(j, "tool_calls"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(tc, "name")),
	    "get_weather");
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(tc, "arguments"),
	                         "city")),
	    "Paris");
	ck_assert_int_eq(json_array_size(json_object_get(j, "attempts")), 2);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(json_object_get(j,
	                                                        "attempts"),
	                                         0),
	                         "class")),
	    "schema");
	json_decref(j);
	h_run_free(&r);
	free(tools);
}
END_TEST

START_TEST(test_invalid_schema_refused)
{
	char *schema = write_file("bad.json", "{\"type\": ");
	struct run r;

	h_cli(&r, &d, NULL, "call", "--schema", schema, "-m", "mock/echo", "hi",
	    NULL);
	ck_assert_int_eq(r.status, 2);
	h_run_free(&r);
	free(schema);
	/* Valid JSON, but not a usable schema: the daemon refuses it. */
	schema = write_file("bad.json", "{\"pattern\": \"(\"}");
	h_cli(&r, &d, NULL, "call", "--schema", schema, "-m", "mock/echo", "hi",
	    NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "schema"));
	h_run_free(&r);
	free(schema);
}
END_TEST

/* Three targets, the first two fail differently: every attempt reported. */
START_TEST(test_chain_of_three)
{
	static const char *want[][2] = {
		{ "mock/error:overloaded", "overloaded" },
		{ "mock/error:overloaded", "overloaded" },
		{ "mock/error:auth", "auth" },
		{ "mock/echo", "ok" },
	};
	struct run r;
	json_t *j, *att;
	size_t i;

	h_cli(&r, &d, NULL, "call", "--json", "-m", "mock/error:overloaded",
	    "-m", "mock/error:auth", "-m", "mock/echo", "hi", NULL);
	ck_assert_int_eq(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	att = json_object_get(j, "attempts");
	/* overloaded retries (2 attempts), auth falls back without one. */
	ck_assert_int_eq(json_array_size(att), 4);
	for (i = 0; i < 4; i++) {
		ck_assert_str_eq(json_string_value(
		                     json_object_get(json_array_get(att, i),
		                         "target")),
		    want[i][0]);
		ck_assert_str_eq(json_string_value(
		                     json_object_get(json_array_get(att, i),
		                         "class")),
		    want[i][1]);
	}
	json_decref(j);
	h_run_free(&r);
}
END_TEST

static Suite *
e2e_suite(void)
{
	Suite *s = suite_create("e2e");
	TCase *tc = tcase_create("daemon");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_call_echo);
	tcase_add_test(tc, test_call_stream);
	tcase_add_test(tc, test_100_calls_one_connection);
	tcase_add_test(tc, test_100_calls_20_connections);
	tcase_add_test(tc, test_disconnect_mid_call);
	tcase_add_test(tc, test_garbage_bytes);
	tcase_add_test(tc, test_oversized_frame);
	tcase_add_test(tc, test_empty_frame);
	tcase_add_test(tc, test_malformed_payload);
	tcase_add_test(tc, test_unknown_type_keeps_connection);
	tcase_add_test(tc, test_frames_in_pieces);
	tcase_add_test(tc, test_request_limits);
	tcase_add_test(tc, test_socket_resolution);
	tcase_add_test(tc, test_request_setters);
	tcase_add_test(tc, test_client_name_sanitized);
	tcase_add_test(tc, test_version_mismatch);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_cli_fallback_json);
	tcase_add_test(tc, test_cli_retry_after_honoured);
	tcase_add_test(tc, test_cli_failure_exit_4);
	tcase_add_test(tc, test_cli_deadline);
	tcase_add_test(tc, test_cli_usage_errors);
	tcase_add_test(tc, test_cli_stdin_and_stream);
	tcase_add_test(tc, test_cli_status_ping);
	tcase_add_test(tc, test_cli_unreachable);
	tcase_add_test(tc, test_cli_ping_wait);
	tcase_add_test(tc, test_cli_ping_wait_unreachable);
	tcase_add_test(tc, test_second_daemon_refused);
	tcase_add_test(tc, test_stale_socket_replaced);
	tcase_add_test(tc, test_check_config_line);
	tcase_add_test(tc, test_stream_cut_resume);
	tcase_add_test(tc, test_stream_cut_before_any_chunk);
	tcase_add_test(tc, test_stream_cut_restart);
	tcase_add_test(tc, test_stream_cut_fail);
	tcase_add_test(tc, test_cancel_during_backoff);
	tcase_add_test(tc, test_deadline_shorter_than_retry_after);
	tcase_add_test(tc, test_slow_reader_dropped);
	tcase_add_test(tc, test_route_target_override);
	tcase_add_test(tc, test_schema_repair);
	tcase_add_test(tc, test_schema_repairs_run_out);
	tcase_add_test(tc, test_tool_arguments_repaired);
	tcase_add_test(tc, test_repair_retried);
	tcase_add_test(tc, test_invalid_schema_refused);
	tcase_add_test(tc, test_chain_of_three);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(e2e_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
