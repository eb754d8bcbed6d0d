/*
 * proto-int.h: internal to the codec (proto.c, proto-decode.c,
 * proto-encode.c, proto-json.c): the helpers they share, defined in
 * proto.c. Not for the daemon or the client, which include proto.h only.
 */
#ifndef PROTO_INT_H
#define PROTO_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Aborts: the codec's allocations never fail short of memory. */
void proto_nomem(size_t) __attribute__((noreturn));

/* The n-byte big-endian unsigned integer at p. */
uint64_t proto_be(const uint8_t *, u_int);

#endif
