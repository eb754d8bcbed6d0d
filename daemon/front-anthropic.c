/*
 * front-anthropic.c: the Anthropic Messages dialect of the HTTP front.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static void
front_anthropic_request(struct front_req *fr, json_t *body)
{
	front_http_fail(fr, LLMGATE_INVALID_REQUEST, 400, NULL,
	    "not yet", NULL);
}

static void
front_anthropic_chunk(struct front_req *fr, const struct llmgate_chunk *ch)
{
}

static void
front_anthropic_done(struct front_req *fr, const struct llmgate_result *res)
{
}

static json_t *
front_anthropic_error_body(struct front_req *fr, int status,
    const struct front_error *fe, const char *code, const char *msg)
{
	return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error",
	    "type", status == 401 ? "authentication_error" :
	    status == 403 ? "permission_error" : fe->anthropic_type,
	    "message", msg != NULL ? msg : "error");
}

static void
front_anthropic_stream_error(struct front_req *fr, json_t *body)
{
	front_http_sse(fr, "error", body);
}

const struct front_dialect front_anthropic = {
	.name = "anthropic",
	.id_prefix = "msg_",
	.attach_attempts = 1,
	.request = front_anthropic_request,
	.chunk = front_anthropic_chunk,
	.done = front_anthropic_done,
	.error_body = front_anthropic_error_body,
	.stream_error = front_anthropic_stream_error,
};
