/*
 * proto.c: the wire codec. A frame is a 4-byte big-endian length and one
 * msgpack map; PROTOCOL.md lists every message and field.
 *
 * The codec is four files: proto-decode.c (frames into structs),
 * proto-encode.c (structs into frames), proto-json.c (free-form JSON
 * values carried as msgpack), and this one, the framing and the helpers
 * they share (proto-int.h).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>

#include "proto.h"
#include "proto-int.h"

void __attribute__((noreturn)) proto_nomem(size_t n)
{
	fprintf(stderr, "llmgate: out of memory allocating %zu bytes\n", n);
	abort();
}

uint64_t
proto_be(const uint8_t *p, u_int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = (v << 8) | *p++;
	return v;
}

ssize_t
proto_frame_len(const void *buf, size_t avail, size_t max, size_t *need)
{
	uint32_t len;

	if (avail < PROTO_HDR_LEN) {
		if (need != NULL)
			*need = PROTO_HDR_LEN;
		return 0;
	}
	len = (uint32_t)proto_be(buf, PROTO_HDR_LEN);
	if (need != NULL)
		*need = PROTO_HDR_LEN + (size_t)len;
	if (max > PROTO_MAX_FRAME)
		max = PROTO_MAX_FRAME;
	if (len == 0 || len > max)
		return -1;
	if (avail - PROTO_HDR_LEN < len)
		return 0;
	return (ssize_t)len;
}
