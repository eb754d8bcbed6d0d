/*
 * fuzz_front.c: the HTTP front's request translation: a body as the
 * OpenAI (byte 0 even) or the Anthropic dialect (odd) reads it, then the
 * target chain it names, against the embedded default config. A body that
 * translates must carry a request the wire codec can encode and decode;
 * one that does not must have a reason. Also front_http_addr() on the
 * bytes as a listen address.
 */
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *errors = NULL;

	if ((cfg = config_load(NULL, &errors)) == NULL)
		fuzz_fail("embedded config: %s", errors);
	return 0;
}

static void
fuzz_roundtrip(const struct llmgate_request *req)
{
	msgpack_sbuffer sb;
	struct proto_msg msg;
	char err[256];

	msgpack_sbuffer_init(&sb);
	proto_enc_call(&sb, 1, req);
	fuzz_assert(sb.size > PROTO_HDR_LEN);
	if (proto_decode(sb.data + PROTO_HDR_LEN, sb.size - PROTO_HDR_LEN, &msg,
	        err, sizeof err) == 0) {
		fuzz_assert(msg.type == PROTO_CALL);
		fuzz_assert(msg.u.call.nmessages == req->nmessages);
		fuzz_assert(msg.u.call.ntools == req->ntools);
		fuzz_assert(msg.u.call.ntargets == req->ntargets);
		proto_msg_free(&msg);
	}
	msgpack_sbuffer_destroy(&sb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct llmgate_request *req;
	struct front_req fr;
	msgpack_zone *z;
	struct jdoc body;
	json_t *tree;
	char *s, *host = NULL, *cause = NULL;
	uint16_t port;
	int lo, rc;

	if (size < 1)
		return 0;
	s = xstrndup((const char *)data + 1, size - 1);
	if (front_http_addr(s, &host, &port, &lo, &cause) == 0)
		fuzz_assert(cause == NULL);
	else
		fuzz_assert(cause != NULL && host == NULL);
	free(host);
	free(cause);
	free(s);

	/* The front reads bodies as jansson would, duplicates refused,
	 * short of its depth. */
	tree = json_loadb((const char *)data + 1, size - 1,
	    JSON_REJECT_DUPLICATES, NULL);
	rc = jdoc_load(&body, (const char *)data + 1, size - 1,
	    JDOC_FULL | JDOC_NODUP);
	if ((rc == 0) != (tree != NULL && fuzz_json_depth(tree) <= JDOC_DEPTH))
		fuzz_fail("jdoc %s, jansson %s", rc == 0 ? "took" : "refused",
		    tree != NULL ? "took" : "refused");
	json_decref(tree);
	if (rc != 0 || body.tok[0].type != JDOC_OBJECT) {
		jdoc_free(&body);
		return 0;
	}
	memset(&fr, 0, sizeof fr);
	fr.d = (data[0] & 1) ? &front_anthropic : &front_openai;
	if ((z = msgpack_zone_new(8192)) == NULL)
		fuzz_fail("zone");
	req = front_http_zalloc(z, 1, sizeof *req);
	rc = fr.d->parse(&fr, &body, z, req);
	if (rc == 0)
		rc = front_http_targets(&fr, req, z, fr.model, &body,
		    jdoc_get(&body, 0, "models"));
	if (rc == 0) {
		fuzz_assert(fr.err_msg == NULL && fr.model != NULL);
		fuzz_assert(req->ntargets >= 1);
		fuzz_roundtrip(req);
	} else
		fuzz_assert(fr.err_msg != NULL && fr.err_status >= 400);
	jdoc_free(&body);
	msgpack_zone_free(z);
	free(fr.model);
	free(fr.dstate);
	free(fr.err_msg);
	return 0;
}
