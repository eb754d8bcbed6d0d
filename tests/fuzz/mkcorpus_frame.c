/*
 * mkcorpus_frame.c: writes the seed corpus of fuzz_frame, one frame of
 * every message type made by the real encoder (and one file of several
 * frames back to back, as a connection carries them). Run once by hand;
 * its output is committed under corpus/fuzz_frame:
 *
 *	clang -D_GNU_SOURCE -I proto -I client tests/fuzz/mkcorpus_frame.c \
 *	    proto/proto*.c proto/names.c proto/xmalloc.c \
 *	    $(pkg-config --cflags --libs msgpack jansson) -lm -o /tmp/mkcorpus
 *	/tmp/mkcorpus tests/fuzz/corpus/fuzz_frame
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const char *dir;

static void
put(const char *name, msgpack_sbuffer *sb)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(sb->data, 1, sb->size, f) != sb->size || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	msgpack_sbuffer_clear(sb);
}

int
main(int argc, char **argv)
{
	msgpack_sbuffer sb;
	struct proto_hello hello;
	struct llmgate_request req;
	struct llmgate_message msgs[3];
	struct llmgate_tool_call tc;
	struct llmgate_tool tool;
	struct llmgate_chunk ch;
	struct llmgate_result res;
	struct llmgate_attempt att[2];
	struct llmgate_acquire acq;
	struct llmgate_lease lease;
	struct llmgate_report rep;
	char *targets[] = { "openai/gpt-4o-mini", "anthropic/claude-haiku" };
	char *stop[] = { "\n\n", "END" };
	json_t *status;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 1;
	}
	dir = argv[1];
	msgpack_sbuffer_init(&sb);

	memset(&hello, 0, sizeof hello);
	hello.version = PROTO_VERSION;
	hello.name = "llmgate-cli";
	proto_enc_hello(&sb, &hello);
	put("hello-client", &sb);
	hello.name = NULL;
	hello.server = "llmgated 0.1.0";
	hello.max_frame = 1024 * 1024;
	proto_enc_hello(&sb, &hello);
	put("hello-server", &sb);

	memset(&req, 0, sizeof req);
	memset(msgs, 0, sizeof msgs);
	msgs[0].role = LLMGATE_ROLE_USER;
	msgs[0].content = "What is the weather in Paris? \xc3\xa9t\xc3\xa9";
	proto_enc_call(&sb, 1,
	    &(struct llmgate_request){ .messages = msgs,
	        .nmessages = 1,
	        .route = "default" });
	put("call-simple", &sb);

	memset(&tc, 0, sizeof tc);
	tc.id = "call_1";
	tc.name = "get_weather";
	tc.arguments = "{\"city\":\"Paris\"}";
	msgs[1].role = LLMGATE_ROLE_ASSISTANT;
	msgs[1].tool_calls = &tc;
	msgs[1].ntool_calls = 1;
	msgs[2].role = LLMGATE_ROLE_TOOL;
	msgs[2].content = "{\"temp\":21}";
	msgs[2].tool_call_id = "call_1";
	msgs[2].name = "get_weather";
	memset(&tool, 0, sizeof tool);
	tool.name = "get_weather";
	tool.description = "Current weather for a city";
	tool.parameters = "{\"type\":\"object\",\"properties\":{\"city\":"
	                  "{\"type\":\"string\"}},\"required\":[\"city\"]}";
	req.system = "You are terse.";
	req.messages = msgs;
	req.nmessages = 3;
	req.tools = &tool;
	req.ntools = 1;
	req.schema = "{\"type\":\"object\"}";
	req.targets = targets;
	req.ntargets = 2;
	req.has = LLMGATE_HAS_MAX_TOKENS | LLMGATE_HAS_TEMPERATURE |
	    LLMGATE_HAS_TOP_P | LLMGATE_HAS_SEED;
	req.max_tokens = 256;
	req.temperature = 0.2;
	req.top_p = 0.9;
	req.seed = -42;
	req.stop = stop;
	req.nstop = 2;
	req.attempts = 3;
	req.timeout_ms = 30000;
	req.priority = LLMGATE_PRIO_HIGH;
	req.on_cut = LLMGATE_CUT_RESTART;
	req.stream = 1;
	proto_enc_call(&sb, 2, &req);
	put("call-rich", &sb);

	memset(&ch, 0, sizeof ch);
	ch.text = "Hello";
	ch.len = 5;
	ch.tool_index = -1;
	proto_enc_chunk(&sb, 2, &ch);
	put("chunk-text", &sb);
	memset(&ch, 0, sizeof ch);
	ch.reset = 1;
	ch.tool_index = 0;
	ch.tool_id = "call_1";
	ch.tool_name = "get_weather";
	ch.tool_args = "{\"ci";
	proto_enc_chunk(&sb, 2, &ch);
	put("chunk-tool", &sb);

	memset(&res, 0, sizeof res);
	memset(att, 0, sizeof att);
	att[0].target = "openai/gpt-4o-mini";
	att[0].cls = LLMGATE_RATE_LIMITED;
	att[0].status = 429;
	att[0].message = "Rate limit reached";
	att[0].ms = 120;
	att[1].target = "anthropic/claude-haiku";
	att[1].cls = LLMGATE_OK;
	att[1].status = 200;
	att[1].ms = 800;
	att[1].waited_ms = 1000;
	res.text = "It is sunny.";
	res.target = "anthropic/claude-haiku";
	res.finish = LLMGATE_FINISH_TOOL_CALLS;
	res.input_tokens = 12;
	res.output_tokens = 5;
	res.tool_calls = &tc;
	res.ntool_calls = 1;
	res.attempts = att;
	res.nattempts = 2;
	proto_enc_result(&sb, 2, &res);
	put("result", &sb);
	res.cls = LLMGATE_CONTEXT_LENGTH;
	res.message = "prompt is too long";
	res.partial = 1;
	proto_enc_result(&sb, 2, &res);
	put("error-attempts", &sb);
	proto_enc_error(&sb, 7, LLMGATE_INVALID_REQUEST, "no targets");
	put("error-bare", &sb);

	proto_enc_simple(&sb, PROTO_CANCEL, 2);
	put("cancel", &sb);
	proto_enc_simple(&sb, PROTO_PING, 3);
	put("ping", &sb);
	proto_enc_simple(&sb, PROTO_PONG, 3);
	put("pong", &sb);
	proto_enc_simple(&sb, PROTO_RELOAD, 4);
	put("reload", &sb);
	proto_enc_simple(&sb, PROTO_OK, 4);
	put("ok", &sb);
	proto_enc_simple(&sb, PROTO_UNKNOWN, 5);
	put("unknown", &sb);

	proto_enc_simple(&sb, PROTO_STATUS, 6);
	put("status-request", &sb);
	status = json_pack("{s:s, s:i, s:f, s:b, s:n, s:[{s:s, s:i}]}",
	    "version", "0.1.0", "uptime_ms", 123456, "load", 0.25, "draining",
	    0, "socket", "targets", "target", "openai/gpt-4o", "inflight", 2);
	proto_enc_status(&sb, 6, status);
	put("status-reply", &sb);
	json_decref(status);

	proto_enc_simple(&sb, PROTO_METRICS, 8);
	put("metrics-request", &sb);
	proto_enc_metrics(&sb, 8,
	    "# TYPE llmgate_calls_total counter\n"
	    "llmgate_calls_total 3\n");
	put("metrics-reply", &sb);

	memset(&acq, 0, sizeof acq);
	acq.target = "openai/gpt-4o";
	acq.tokens = 1000;
	acq.timeout_ms = 5000;
	acq.priority = LLMGATE_PRIO_LOW;
	proto_enc_acquire(&sb, 9, &acq);
	put("acquire", &sb);
	memset(&lease, 0, sizeof lease);
	lease.id = 77;
	strcpy(lease.target, "openai/gpt-4o");
	lease.ttl_ms = 60000;
	proto_enc_lease(&sb, 9, &lease);
	put("lease", &sb);
	memset(&rep, 0, sizeof rep);
	rep.lease = 77;
	rep.status = 429;
	rep.retry_after_s = 1.5;
	rep.input_tokens = 900;
	rep.output_tokens = 50;
	proto_enc_report(&sb, 10, &rep);
	put("report", &sb);

	/* A connection's worth: hello, a call, a ping, a cancel. */
	memset(&hello, 0, sizeof hello);
	hello.version = PROTO_VERSION;
	hello.name = "app";
	proto_enc_hello(&sb, &hello);
	proto_enc_call(&sb, 1,
	    &(struct llmgate_request){ .messages = msgs,
	        .nmessages = 1,
	        .stream = 1 });
	proto_enc_simple(&sb, PROTO_PING, 2);
	proto_enc_simple(&sb, PROTO_CANCEL, 1);
	put("stream-session", &sb);

	msgpack_sbuffer_destroy(&sb);
	return 0;
}
