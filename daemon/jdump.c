/*
 * jdump.c: a jansson tree's JSON text, for what the provider adapters
 * and the HTTP front do not write with jwrite.c.
 * json_dumps() guards each object and array against loops by printing its
 * address into a hash table, which made the dump the largest part of the
 * HTTP front's CPU per call (about 30,000 instructions for a 600-byte
 * answer). A tree llmgated builds has no loops, so this writes the same
 * text directly, byte for byte: compact separators, keys in the object's
 * order, jansson's escapes (jwrite_string(), refusing invalid UTF-8 as
 * jansson does). What it does not write itself (indentation, sorted keys,
 * escaped slashes, a real number's digits) goes to jansson.
 * tests/fuzz/fuzz_jload checks the two agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define JDUMP_MAX_DEPTH 2048 /* as jansson's JSON_PARSER_MAX_DEPTH */
#define JDUMP_OWN_FLAGS \
	(JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY | \
	    JSON_REAL_PRECISION(31))

/*
 * Output goes straight into the buffer after buf_reserve(); the NUL is
 * put back once, at the end (jdump_buf).
 */
static inline void
jdump_ch(struct buf *b, char c)
{
	if (b->len + 2 > b->cap)
		(void)buf_reserve(b, 1);
	b->data[b->len++] = c;
}

static void
jdump_add(struct buf *b, const char *s, size_t n)
{
	memcpy(buf_reserve(b, n), s, n);
	b->len += n;
}

static int
jdump_value(struct buf *b, json_t *j, size_t flags, int depth)
{
	const char *key;
	void *it;
	char *s;
	size_t i, n;

	if (depth > JDUMP_MAX_DEPTH)
		return -1;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		jdump_ch(b, '{');
		for (it = json_object_iter(j), i = 0; it != NULL;
		     it = json_object_iter_next(j, it), i++) {
			key = json_object_iter_key(it);
			if (i != 0)
				jdump_ch(b, ',');
			if (jwrite_string(b, key, json_object_iter_key_len(it),
			        (flags & JSON_ENSURE_ASCII) != 0, 1) != 0)
				return -1;
			jdump_ch(b, ':');
			if (jdump_value(b, json_object_iter_value(it), flags,
			        depth + 1) != 0)
				return -1;
		}
		jdump_ch(b, '}');
		return 0;
	case JSON_ARRAY:
		jdump_ch(b, '[');
		n = json_array_size(j);
		for (i = 0; i < n; i++) {
			if (i != 0)
				jdump_ch(b, ',');
			if (jdump_value(b, json_array_get(j, i), flags,
			        depth + 1) != 0)
				return -1;
		}
		jdump_ch(b, ']');
		return 0;
	case JSON_STRING:
		return jwrite_string(b, json_string_value(j),
		    json_string_length(j), (flags & JSON_ENSURE_ASCII) != 0, 1);
	case JSON_INTEGER:
		jwrite_digits(b, json_integer_value(j));
		return 0;
	case JSON_REAL:
		/* jansson's shortest round-trip digits, not printf's. */
		if ((s = json_dumps(j, flags | JSON_ENCODE_ANY)) == NULL)
			return -1;
		jdump_add(b, s, strlen(s));
		free(s);
		return 0;
	case JSON_TRUE:
		jdump_add(b, "true", 4);
		return 0;
	case JSON_FALSE:
		jdump_add(b, "false", 5);
		return 0;
	case JSON_NULL:
		jdump_add(b, "null", 4);
		return 0;
	}
	return -1;
}

/* Append j's text to b; -1 (b as it was) where jansson would fail. */
int
jdump_buf(struct buf *b, json_t *j, size_t flags)
{
	size_t len = b->len;
	char *s;

	if (j == NULL ||
	    (!(flags & JSON_ENCODE_ANY) && !json_is_object(j) &&
	        !json_is_array(j)))
		return -1;
	if ((flags & ~(size_t)JDUMP_OWN_FLAGS) != 0 ||
	    !(flags & JSON_COMPACT)) {
		if ((s = json_dumps(j, flags)) == NULL)
			return -1;
		buf_addstr(b, s);
		free(s);
		return 0;
	}
	/* Most answers fit: no reallocation on the way. */
	(void)buf_reserve(b, 1024);
	if (jdump_value(b, j, flags, 0) != 0) {
		b->len = len;
		if (b->data != NULL)
			b->data[len] = '\0';
		return -1;
	}
	b->data[b->len] = '\0';
	return 0;
}

/* json_dumps(j, flags): the same text, in a string the caller frees. */
char *
jdump(json_t *j, size_t flags)
{
	struct buf b = { NULL, 0, 0 };

	if (jdump_buf(&b, j, flags) != 0) {
		buf_free(&b);
		return NULL;
	}
	if (b.data == NULL)
		return xstrdup("");
	return b.data;
}
