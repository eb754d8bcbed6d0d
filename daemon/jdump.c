/*
 * jdump.c: encoding JSON on the hot path. Every answer of the HTTP front,
 * every event of its streams and every request body sent to a provider is
 * a jansson tree written out once. json_dumps() guards each object and
 * array against loops by printing its address into a hash table, which
 * made the dump the largest part of the HTTP front's CPU per call (about
 * 30,000 instructions for a 600-byte answer). A tree llmgated builds has
 * no loops, so this writes the same text directly, byte for byte:
 * compact separators, keys in the object's order, jansson's escapes
 * (\uXXXX upper case, '/' left alone). What it does not write itself
 * (indentation, sorted keys, escaped slashes, a real number's digits)
 * goes to jansson. tests/fuzz/fuzz_jload checks the two agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define JDUMP_MAX_DEPTH 2048 /* as jansson's JSON_PARSER_MAX_DEPTH */
#define JDUMP_OWN_FLAGS \
	(JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY | \
	    JSON_REAL_PRECISION(31))

static const char jdump_hex[] = "0123456789ABCDEF";

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

static char *
jdump_u(char *p, unsigned cp)
{
	*p++ = '\\';
	*p++ = 'u';
	*p++ = jdump_hex[(cp >> 12) & 0xf];
	*p++ = jdump_hex[(cp >> 8) & 0xf];
	*p++ = jdump_hex[(cp >> 4) & 0xf];
	*p++ = jdump_hex[cp & 0xf];
	return p;
}

/* One UTF-8 sequence at s (n bytes left): its code point and length. */
static int
jdump_utf8(const unsigned char *s, size_t n, unsigned *cp)
{
	unsigned c = s[0];
	int len, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, c &= 0x07;
	else
		return -1;
	if ((size_t)len > n)
		return -1;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, past U+10FFFF: jansson refuses. */
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return -1;
	*cp = c;
	return len;
}

/* No byte takes more than 6 (a control character as \u00XX). */
static int
jdump_string(struct buf *b, const char *str, size_t n, size_t flags)
{
	const unsigned char *s = (const unsigned char *)str;
	const unsigned char *end = s + n;
	unsigned cp;
	char *p;
	int len;

	if (n > (SIZE_MAX - 3 - b->len) / 6)
		return -1;
	p = buf_reserve(b, 6 * n + 2);
	*p++ = '"';
	while (s < end) {
		if (*s >= 0x20 && *s != '"' && *s != '\\' && *s < 0x80) {
			*p++ = (char)*s++;
			continue;
		}
		if ((len = jdump_utf8(s, (size_t)(end - s), &cp)) < 0)
			return -1;
		if (cp >= 0x80 && !(flags & JSON_ENSURE_ASCII)) {
			memcpy(p, s, (size_t)len);
			p += len;
			s += len;
			continue;
		}
		s += len;
		switch (cp) {
		case '"':
			*p++ = '\\';
			*p++ = '"';
			break;
		case '\\':
			*p++ = '\\';
			*p++ = '\\';
			break;
		case '\b':
			*p++ = '\\';
			*p++ = 'b';
			break;
		case '\f':
			*p++ = '\\';
			*p++ = 'f';
			break;
		case '\n':
			*p++ = '\\';
			*p++ = 'n';
			break;
		case '\r':
			*p++ = '\\';
			*p++ = 'r';
			break;
		case '\t':
			*p++ = '\\';
			*p++ = 't';
			break;
		default:
			if (cp < 0x10000)
				p = jdump_u(p, cp);
			else {
				cp -= 0x10000;
				p = jdump_u(p, 0xd800 | ((cp & 0xffc00) >> 10));
				p = jdump_u(p, 0xdc00 | (cp & 0x003ff));
			}
		}
	}
	*p++ = '"';
	b->len = (size_t)(p - b->data);
	return 0;
}

static void
jdump_int(struct buf *b, json_int_t v)
{
	char d[24], *p = d + sizeof d;
	/* As unsigned, so that the most negative value has a magnitude. */
	unsigned long long u =
	    v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	jdump_add(b, p, (size_t)(d + sizeof d - p));
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
			if (jdump_string(b, key, json_object_iter_key_len(it),
			        flags) != 0)
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
		return jdump_string(b, json_string_value(j),
		    json_string_length(j), flags);
	case JSON_INTEGER:
		jdump_int(b, json_integer_value(j));
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
