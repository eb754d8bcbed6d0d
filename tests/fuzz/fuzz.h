/*
 * fuzz.h: what the libFuzzer targets in tests/fuzz share. Each target is
 * deterministic for a given input: where a target needs choices (how to cut
 * a stream into feeds), they come from a generator seeded by the input.
 *
 * A broken invariant calls fuzz_fail(), which aborts, so that libFuzzer
 * records the input as a crash.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

struct provider_type;

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int LLVMFuzzerInitialize(int *, char ***);

#define fuzz_fail(...) \
	do { \
		fprintf(stderr, "%s:%d: invariant broken: ", __FILE__, \
		    __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} while (0)

#define fuzz_assert(e) \
	do { \
		if (!(e)) \
			fuzz_fail("%s", #e); \
	} while (0)

/* How deep j's values nest (a scalar 1): what jdoc_load() limits. */
static inline int
fuzz_json_depth(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;
	int d = 0, e;

	if (json_is_object(j)) {
		json_object_foreach(j, k, v) {
			if ((e = fuzz_json_depth(v)) > d)
				d = e;
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			if ((e = fuzz_json_depth(v)) > d)
				d = e;
		}
	}
	return d + 1;
}

/* xorshift64*, seeded with the FNV-1a hash of the input. */
struct fuzz_rng {
	uint64_t s;
};

static inline void
fuzz_rng_init(struct fuzz_rng *r, const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < size; i++) {
		h ^= data[i];
		h *= 0x100000001b3ULL;
	}
	r->s = h != 0 ? h : 1;
}

static inline uint64_t
fuzz_rng_next(struct fuzz_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

/*
 * The size of the next feed, 1 to left: single bytes often (they split
 * every CRLF and UTF-8 sequence), small pieces, and now and then the rest.
 */
static inline size_t
fuzz_rng_chunk(struct fuzz_rng *r, size_t left)
{
	uint64_t x = fuzz_rng_next(r);
	size_t n;

	switch (x & 7) {
	case 0:
	case 1:
		n = 1;
		break;
	case 2:
	case 3:
		n = 1 + (size_t)((x >> 8) % 8);
		break;
	case 4:
	case 5:
	case 6:
		n = 1 + (size_t)((x >> 8) % 256);
		break;
	default:
		n = left;
		break;
	}
	return n > left ? left : n;
}

/* fuzz_provider.c: parse, classify and stream one provider's input. */
int fuzz_provider(const struct provider_type *, const uint8_t *, size_t);

#endif
