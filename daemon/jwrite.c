/*
 * jwrite.c: JSON text written straight into a buffer, for the HTTP
 * front's answers and events and the request bodies sent to providers:
 * building a jansson tree, dumping it and freeing it cost more than the
 * rest of that work per call.
 * Separators are compact and the writer places the commas. Strings are
 * escaped as jansson escapes them (\uXXXX upper case, '/' left alone;
 * with ascii, every character past U+007F as \uXXXX), runs that need no
 * escape copied whole. Where jansson refuses a string that is not valid
 * UTF-8, the writer puts U+FFFD in place of each byte that does not
 * start a valid sequence, so a field is never lost (jdump.c, which must
 * write what jansson writes, asks for the refusal instead).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "llmgated.h"

static const char jwrite_hex[] = "0123456789ABCDEF";

/* Bytes written as they are: printable ASCII but '"' and '\\'. */
#define JWRITE_PLAIN(c) ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\')

static char *
jwrite_u(char *p, unsigned cp)
{
	*p++ = '\\';
	*p++ = 'u';
	*p++ = jwrite_hex[(cp >> 12) & 0xf];
	*p++ = jwrite_hex[(cp >> 8) & 0xf];
	*p++ = jwrite_hex[(cp >> 4) & 0xf];
	*p++ = jwrite_hex[cp & 0xf];
	return p;
}

/* One UTF-8 sequence at s (n bytes left): its code point and length. */
static int
jwrite_utf8(const unsigned char *s, size_t n, unsigned *cp)
{
	unsigned c = s[0];
	int len, i;

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

/* The escape of an ASCII byte that is not plain. */
static char *
jwrite_escape_ascii(char *p, unsigned c)
{
	*p++ = '\\';
	switch (c) {
	case '"':
	case '\\':
		*p++ = (char)c;
		break;
	case '\b':
		*p++ = 'b';
		break;
	case '\f':
		*p++ = 'f';
		break;
	case '\n':
		*p++ = 'n';
		break;
	case '\r':
		*p++ = 'r';
		break;
	case '\t':
		*p++ = 't';
		break;
	default:
		p = jwrite_u(p - 1, c);
	}
	return p;
}

/*
 * Room at p for the rest of the input (left bytes) as it is and one more
 * escape or sequence (12: a surrogate pair), growing b as needed; p moves
 * with the buffer. Most text is plain: a buffer for six times the input,
 * what its worst case needs, would be mostly unused.
 */
static inline char *
jwrite_room(struct buf *b, char *p, size_t left)
{
	size_t used = (size_t)(p - b->data);

	if (b->cap - used > left + 13)
		return p;
	b->len = used;
	(void)buf_reserve(b, left + left / 2 + 16);
	return b->data + used;
}

/*
 * Append str (n bytes) as a JSON string. Invalid UTF-8: -1 (b as it was)
 * when strict, else U+FFFD for each byte that starts no valid sequence.
 */
int
jwrite_string(struct buf *b, const char *str, size_t n, int ascii, int strict)
{
	const unsigned char *s = (const unsigned char *)str, *run;
	const unsigned char *end = s + n;
	size_t len0 = b->len;
	uint64_t x;
	unsigned cp;
	char *p;
	int len;

	if (n > (SIZE_MAX - 64 - b->len) / 2)
		return -1;
	p = buf_reserve(b, n + 16);
	*p++ = '"';
	while (s < end) {
		p = jwrite_room(b, p, (size_t)(end - s));
		/* Eight plain bytes at a time: a byte under 0x20, past
		 * 0x7f, '"' or '\\' sets a high bit below. */
		run = s;
		while (end - s >= 8) {
			memcpy(&x, s, 8);
			if (((x - 0x2020202020202020ULL) | x |
			        ((x ^ 0x2222222222222222ULL) -
			            0x0101010101010101ULL) |
			        ((x ^ 0x5c5c5c5c5c5c5c5cULL) -
			            0x0101010101010101ULL)) &
			    0x8080808080808080ULL)
				break;
			s += 8;
		}
		while (s < end && JWRITE_PLAIN(*s))
			s++;
		if (s != run) {
			memcpy(p, run, (size_t)(s - run));
			p += s - run;
		}
		if (s == end)
			break;
		if (*s < 0x80) {
			p = jwrite_escape_ascii(p, *s++);
			continue;
		}
		if ((len = jwrite_utf8(s, (size_t)(end - s), &cp)) < 0) {
			if (strict) {
				b->len = len0;
				b->data[b->len] = '\0';
				return -1;
			}
			if (ascii)
				p = jwrite_u(p, 0xfffd);
			else {
				memcpy(p, "\xef\xbf\xbd", 3);
				p += 3;
			}
			s++;
			continue;
		}
		if (!ascii)
			memcpy(p, s, (size_t)len);
		else if (cp < 0x10000)
			p = jwrite_u(p, cp);
		else {
			cp -= 0x10000;
			p = jwrite_u(p, 0xd800 | ((cp & 0xffc00) >> 10));
			p = jwrite_u(p, 0xdc00 | (cp & 0x003ff));
		}
		if (!ascii)
			p += len;
		s += len;
	}
	p = jwrite_room(b, p, 0);
	*p++ = '"';
	b->len = (size_t)(p - b->data);
	b->data[b->len] = '\0';
	return 0;
}

/* Append v in decimal. */
void
jwrite_digits(struct buf *b, long long v)
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
	buf_add(b, p, (size_t)(d + sizeof d - p));
}

void
jwrite_init(struct jwrite *w, struct buf *b, int ascii)
{
	w->b = b;
	w->ascii = ascii;
	w->more = 0;
	/* An answer or event fits: no reallocation on the way. */
	(void)buf_reserve(b, 1024);
}

static inline void
jwrite_ch(struct buf *b, char c)
{
	if (b->len + 2 > b->cap)
		(void)buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

/*
 * The comma before a value and its key, in an object (key not NULL). Keys
 * are names the code spells out, printable ASCII without '"' or '\\':
 * written as they are.
 */
static void
jwrite_sep(struct jwrite *w, const char *key)
{
	struct buf *b = w->b;
	size_t n = key != NULL ? strlen(key) : 0;
	char *p = buf_reserve(b, n + 4);

	if (w->more)
		*p++ = ',';
	w->more = 1;
	if (key != NULL) {
		*p++ = '"';
		memcpy(p, key, n);
		p += n;
		*p++ = '"';
		*p++ = ':';
	}
	*p = '\0';
	b->len = (size_t)(p - b->data);
}

/* Open an object ('{') or an array ('['). */
void
jwrite_open(struct jwrite *w, const char *key, char c)
{
	jwrite_sep(w, key);
	jwrite_ch(w->b, c);
	w->more = 0;
}

void
jwrite_close(struct jwrite *w, char c)
{
	jwrite_ch(w->b, c);
	w->more = 1;
}

/* A string value; null for NULL. */
void
jwrite_str(struct jwrite *w, const char *key, const char *s)
{
	if (s == NULL)
		jwrite_null(w, key);
	else
		jwrite_strn(w, key, s, strlen(s));
}

void
jwrite_strn(struct jwrite *w, const char *key, const char *s, size_t n)
{
	jwrite_sep(w, key);
	(void)jwrite_string(w->b, s, n, w->ascii, 0);
}

void
jwrite_int(struct jwrite *w, const char *key, long long v)
{
	jwrite_sep(w, key);
	jwrite_digits(w->b, v);
}

void
jwrite_bool(struct jwrite *w, const char *key, int v)
{
	jwrite_raw(w, key, v ? "true" : "false");
}

void
jwrite_null(struct jwrite *w, const char *key)
{
	jwrite_raw(w, key, "null");
}

/* A value given as JSON text. */
void
jwrite_raw(struct jwrite *w, const char *key, const char *json)
{
	jwrite_sep(w, key);
	buf_addstr(w->b, json);
}

/* A tree's text; null for NULL (and for what jansson cannot write). */
void
jwrite_json(struct jwrite *w, const char *key, json_t *j)
{
	jwrite_sep(w, key);
	if (jdump_buf(w->b, j,
	        JSON_COMPACT | JSON_ENCODE_ANY |
	            (w->ascii ? JSON_ENSURE_ASCII : 0)) != 0)
		buf_addstr(w->b, "null");
}

/*
 * Undo what was written since b's length was len and the comma state
 * more: a value that could not be written whole.
 */
void
jwrite_undo(struct jwrite *w, size_t len, int more)
{
	w->b->len = len;
	if (w->b->data != NULL)
		w->b->data[len] = '\0';
	w->more = more;
}

/* A string value; -1, nothing written, where it is not valid UTF-8. */
int
jwrite_utf8str(struct jwrite *w, const char *key, const char *s)
{
	return jwrite_utf8strn(w, key, s, strlen(s));
}

int
jwrite_utf8strn(struct jwrite *w, const char *key, const char *s, size_t n)
{
	size_t len = w->b->len;
	int more = w->more;

	jwrite_sep(w, key);
	if (jwrite_string(w->b, s, n, w->ascii, 1) != 0) {
		jwrite_undo(w, len, more);
		return -1;
	}
	return 0;
}

/*
 * A real as jansson writes it with JSON_REAL_PRECISION(precision), 0
 * for its default of 17 digits: "%.*g", ".0" after an integral value,
 * no '+' or leading zeros in the exponent. -1, nothing written, for
 * infinity and NaN, which jansson has no value for.
 */
int
jwrite_real(struct jwrite *w, const char *key, double v, int precision)
{
	char d[40], *e, *p, *q;
	int n;

	if (v != v || v - v != 0)
		return -1;
	n = snprintf(d, sizeof d - 2, "%.*g", precision != 0 ? precision : 17,
	    v);
	if (n < 0 || (size_t)n >= sizeof d - 2)
		return -1;
	if ((e = strchr(d, 'e')) == NULL && strchr(d, '.') == NULL)
		memcpy(d + n, ".0", 3);
	else if (e != NULL) {
		p = e + 1;
		if (*p == '+')
			memmove(p, p + 1, strlen(p));
		if (*p == '-')
			p++;
		for (q = p; *q == '0' && q[1] != '\0'; q++)
			;
		memmove(p, q, strlen(q) + 1);
	}
	jwrite_raw(w, key, d);
	return 0;
}

/*
 * Copy the text of a document jdoc_parse() took, without whitespace
 * between tokens: what jdump writes for its tree, unless a string has
 * "\/" (jansson writes '/'), an object has a key twice (jansson keeps
 * the last value in the first one's place) or a number is -0 (jansson
 * writes 0). -1 then, nothing written.
 */
static int
jwrite_compact(struct buf *b, const struct jdoc *d)
{
	const char *s = d->buf + d->tok[0].start;
	size_t n = (size_t)(d->tok[0].end - d->tok[0].start), i;
	int t, in = 0;
	char *p, *p0;

	for (t = 0; t < d->n; t++) {
		if (d->tok[t].type == JDOC_PRIMITIVE &&
		    d->tok[t].end - d->tok[t].start == 2 &&
		    memcmp(d->buf + d->tok[t].start, "-0", 2) == 0)
			return -1;
	}
	if (jdoc_dups(d))
		return -1;
	p = p0 = buf_reserve(b, n);
	for (i = 0; i < n; i++) {
		if (in) {
			if (s[i] == '\\') {
				if (s[i + 1] == '/')
					return -1;
				*p++ = s[i++];
			} else if (s[i] == '"')
				in = 0;
			*p++ = s[i];
		} else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
		    s[i] != '\r') {
			in = s[i] == '"';
			*p++ = s[i];
		}
	}
	*p = '\0';
	b->len += (size_t)(p - p0);
	return 0;
}

/*
 * A value given as JSON text, written as jdump_buf(json_loads(text,
 * load_flags), dump_flags) would write it; object: it must be an object.
 * Text jdoc_parse() takes is checked and copied compact without a tree
 * (the common case: a schema has no real number or \u escape); the rest
 * goes through jansson. 0; else nothing written and -1 (not JSON, *err
 * as jansson says) or -2 (not an object).
 */
int
jwrite_loads(struct jwrite *w, const char *key, const char *text,
    size_t load_flags, size_t dump_flags, int object, json_error_t *err)
{
	return jwrite_loads_member(w, key, text, load_flags, dump_flags, object,
	    NULL, NULL, err);
}

/*
 * jwrite_loads(), and where the object has no member mkey (not NULL), the
 * string member mkey: mval added at its end, as json_object_set() adds it
 * to the tree.
 */
int
jwrite_loads_member(struct jwrite *w, const char *key, const char *text,
    size_t load_flags, size_t dump_flags, int object, const char *mkey,
    const char *mval, json_error_t *err)
{
	size_t len = w->b->len;
	int more = w->more, rc = 0;
	struct jdoc d;
	json_t *j;

	if (jdoc_parse(&d, text, strlen(text)) == 0) {
		if (object && d.tok[0].type != JDOC_OBJECT)
			return -2;
		jwrite_sep(w, key);
		if (jwrite_compact(w->b, &d) == 0) {
			if (mkey == NULL || d.tok[0].type != JDOC_OBJECT ||
			    jdoc_get(&d, 0, mkey) != -1)
				return 0;
			/* Reopen the object for one more member. */
			w->b->len--;
			w->more = d.tok[0].size != 0;
			jwrite_str(w, mkey, mval);
			jwrite_close(w, '}');
			return 0;
		}
		jwrite_undo(w, len, more);
	}
	if ((j = json_loads(text, load_flags, err)) == NULL)
		return -1;
	if (object && !json_is_object(j))
		rc = -2;
	else {
		if (mkey != NULL && json_is_object(j) &&
		    json_object_get(j, mkey) == NULL)
			json_object_set_new(j, mkey, json_string(mval));
		jwrite_sep(w, key);
		if (jdump_buf(w->b, j, dump_flags) != 0) {
			jwrite_undo(w, len, more);
			snprintf(err->text, sizeof err->text,
			    "cannot encode the value");
			rc = -1;
		}
	}
	json_decref(j);
	return rc;
}
