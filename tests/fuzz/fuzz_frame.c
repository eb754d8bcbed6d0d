/*
 * fuzz_frame.c: the wire codec on arbitrary bytes. The input is read as a
 * connection's byte stream: proto_frame_len finds each frame and
 * proto_decode decodes its payload, in a buffer of exactly its size, as
 * conn.c and client.c do. When the input does not start with a usable
 * header, the whole of it is decoded as one payload instead, so that the
 * decoder sees arbitrary payloads either way.
 *
 * A message that decodes is encoded again with the encoder of its type
 * (every type but an unknown one); that frame must decode to the same type,
 * and encoding what it decoded to must give the same bytes again.
 */
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

#define FUZZ_MAX_FRAME (1024 * 1024) /* config.c's default max_frame */

/* proto_frame_len's promises about what it returns and asks for. */
static ssize_t
fuzz_frame_len(const uint8_t *p, size_t avail)
{
	ssize_t n;
	size_t need = 0;

	n = proto_frame_len(p, avail, FUZZ_MAX_FRAME, &need);
	fuzz_assert(n == proto_frame_len(p, avail, FUZZ_MAX_FRAME, NULL));
	if (n > 0) {
		fuzz_assert((size_t)n <= FUZZ_MAX_FRAME);
		fuzz_assert(avail >= PROTO_HDR_LEN + (size_t)n);
	} else if (n == 0) {
		fuzz_assert(need > avail);
		fuzz_assert(need <= PROTO_HDR_LEN + FUZZ_MAX_FRAME);
	} else
		fuzz_assert(n == -1 && avail >= PROTO_HDR_LEN);
	return n;
}

/* One frame for msg into sb; 0 for a type that has no encoder. */
static int
fuzz_encode(msgpack_sbuffer *sb, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO:
		proto_enc_hello(sb, &m->u.hello);
		break;
	case PROTO_CALL:
		proto_enc_call(sb, m->id, &m->u.call);
		break;
	case PROTO_CHUNK:
		proto_enc_chunk(sb, m->id, &m->u.chunk);
		break;
	case PROTO_RESULT:
	case PROTO_ERROR:
		proto_enc_result(sb, m->id, &m->u.result);
		break;
	case PROTO_STATUS:
		if (m->has_body)
			proto_enc_status(sb, m->id, m->u.status);
		else
			proto_enc_simple(sb, m->type, m->id);
		break;
	case PROTO_METRICS:
		if (m->has_body)
			proto_enc_metrics(sb, m->id, m->u.metrics);
		else
			proto_enc_simple(sb, m->type, m->id);
		break;
	case PROTO_ACQUIRE:
		proto_enc_acquire(sb, m->id, &m->u.acquire);
		break;
	case PROTO_LEASE:
		proto_enc_lease(sb, m->id, &m->u.lease);
		break;
	case PROTO_REPORT:
		proto_enc_report(sb, m->id, &m->u.report);
		break;
	case PROTO_CANCEL:
	case PROTO_PING:
	case PROTO_PONG:
	case PROTO_RELOAD:
	case PROTO_OK:
		proto_enc_simple(sb, m->type, m->id);
		break;
	default:
		return 0;
	}
	return 1;
}

/* Decode a frame our own encoder made: it must decode, as type. */
static void
fuzz_redecode(const msgpack_sbuffer *sb, enum proto_type type,
    struct proto_msg *m)
{
	char err[256];
	ssize_t n;

	n = proto_frame_len(sb->data, sb->size, PROTO_MAX_FRAME, NULL);
	fuzz_assert(n > 0 && (size_t)n + PROTO_HDR_LEN == sb->size);
	if (proto_decode(sb->data + PROTO_HDR_LEN, (size_t)n, m, err,
	        sizeof err) != 0)
		fuzz_fail("re-encoded %s does not decode: %s",
		    proto_type_name(type), err);
	if (m->type != type)
		fuzz_fail("%s re-decoded as %s", proto_type_name(type),
		    proto_type_name(m->type));
}

static void
fuzz_roundtrip(const struct proto_msg *m)
{
	msgpack_sbuffer sb1, sb2;
	struct proto_msg m2;

	msgpack_sbuffer_init(&sb1);
	msgpack_sbuffer_init(&sb2);
	if (!fuzz_encode(&sb1, m))
		goto out;
	fuzz_redecode(&sb1, m->type, &m2);
	fuzz_assert(fuzz_encode(&sb2, &m2));
	proto_msg_free(&m2);
	if (sb1.size != sb2.size || memcmp(sb1.data, sb2.data, sb1.size) != 0)
		fuzz_fail("%s: encode(decode(frame)) changed the frame "
		          "(%zu to %zu bytes)",
		    proto_type_name(m->type), sb1.size, sb2.size);
out:
	msgpack_sbuffer_destroy(&sb1);
	msgpack_sbuffer_destroy(&sb2);
}

static void
fuzz_payload(const uint8_t *p, size_t len)
{
	struct proto_msg m;
	char err[256];
	uint8_t *copy;

	/* An exact-size copy: ASan sees any read past the payload. */
	if ((copy = malloc(len != 0 ? len : 1)) == NULL)
		return;
	if (len != 0)
		memcpy(copy, p, len);
	if (proto_decode(copy, len, &m, err, sizeof err) != 0) {
		fuzz_assert(memchr(err, '\0', sizeof err) != NULL);
		fuzz_assert(*err != '\0');
		free(copy);
		return;
	}
	fuzz_assert(m.type < PROTO_TYPE_MAX);
	fuzz_assert(m.type_name != NULL);
	/* Nothing in the message may point into the payload. */
	memset(copy, 0xa5, len);
	free(copy);
	fuzz_roundtrip(&m);
	proto_msg_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, i;
	ssize_t n;

	for (i = 0; i < size && i <= PROTO_HDR_LEN; i++)
		(void)fuzz_frame_len(data, i);

	if (fuzz_frame_len(data, size) <= 0) {
		fuzz_payload(data, size);
		return 0;
	}
	while ((n = fuzz_frame_len(data + off, size - off)) > 0) {
		fuzz_payload(data + off + PROTO_HDR_LEN, (size_t)n);
		off += PROTO_HDR_LEN + (size_t)n;
	}
	return 0;
}
