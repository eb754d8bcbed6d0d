/*
 * jload.c: decoding JSON on the hot path. Every provider reply, and every
 * event of every stream, is decoded once; jansson's decoder reads a
 * character at a time through a stream with UTF-8 checks, which costs
 * about 2.4 µs for a 180-byte OpenAI chunk, the largest part of llmgated's
 * CPU per streamed call. jsmn (libjsmn-dev) tokenizes the same text in
 * 0.2 µs without allocating; the tokens then become the jansson tree that
 * json_loadb() would have built, in 0.4 µs.
 *
 * jsmn is lenient (separators are not all checked, escapes are not
 * decoded, numbers are not parsed), so this file checks what lies between
 * tokens and takes on only what it decodes exactly: objects, arrays,
 * strings without \u escapes, integers up to 18 digits, true, false, null.
 * Anything else (a \u escape, a real number, a larger document, malformed
 * text) goes to json_loadb() itself, so the tree and every error message
 * are jansson's. tests/fuzz/fuzz_jload checks the two agree on any input.
 *
 * The same walk, building nothing, checks a document for jdoc_parse(),
 * whose readers then pick values straight out of the tokens.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Parent links: closing a container or ending a member goes up the
 * parents, not back over every token before (quadratic in a deep text). */
#define JSMN_PARENT_LINKS
#define JSMN_STRICT
#define JSMN_STATIC
#include <jsmn.h>

#include "llmgated.h"

#define JLOAD_MAX_TOKENS 512
#define JLOAD_STACK_STR  256 /* unescaped strings up to this */

struct jwalk {
	const char *buf;
	const jsmntok_t *tok;
	int ntok;
	int next;   /* the next token to take */
	size_t pos; /* the end of what was taken */
	int check;  /* only check: build nothing, answer json_null() */
	int nodup;  /* a key twice in an object: not taken */
	int full;   /* check all jansson takes: \\u, reals, any integer */
};

static int
jload_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Only whitespace, one sep (unless 0), whitespace from pos up to to. */
static int
jload_gap(struct jwalk *w, size_t to, char sep)
{
	size_t p = w->pos;

	while (p < to && jload_ws(w->buf[p]))
		p++;
	if (sep != 0) {
		if (p >= to || w->buf[p] != sep)
			return -1;
		p++;
		while (p < to && jload_ws(w->buf[p]))
			p++;
	}
	return p == to ? 0 : -1;
}

/* Four hex digits at s (left bytes there): their value, or -1. */
static long
jload_hex4(const char *s, size_t left)
{
	long v = 0;
	size_t i;
	char c;

	if (left < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		c = s[i];
		if (c >= '0' && c <= '9')
			v = v << 4 | (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v << 4 | (c - 'A' + 10);
		else
			return -1;
	}
	return v;
}

/*
 * The code point of the \u escape whose 'u' is s[*i], as jansson takes
 * it: a surrogate only in a high-low pair, never U+0000 (jansson wants
 * JSON_ALLOW_NUL for it); *i left on its last byte. -1 otherwise.
 */
static long
jload_uescape(const char *s, size_t len, size_t *i)
{
	long v, lo;

	if ((v = jload_hex4(s + *i + 1, len - *i - 1)) < 0 || v == 0 ||
	    (v >= 0xdc00 && v <= 0xdfff))
		return -1;
	*i += 4;
	if (v < 0xd800 || v > 0xdbff)
		return v;
	if (len - *i < 7 || s[*i + 1] != '\\' || s[*i + 2] != 'u' ||
	    (lo = jload_hex4(s + *i + 3, len - *i - 3)) < 0xdc00 || lo > 0xdfff)
		return -1;
	*i += 6;
	return 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
}

/* Code point v as UTF-8 into out: its length. */
static size_t
jload_utf8(long v, char *out)
{
	if (v < 0x80) {
		out[0] = (char)v;
		return 1;
	}
	if (v < 0x800) {
		out[0] = (char)(0xc0 | v >> 6);
		out[1] = (char)(0x80 | (v & 0x3f));
		return 2;
	}
	if (v < 0x10000) {
		out[0] = (char)(0xe0 | v >> 12);
		out[1] = (char)(0x80 | (v >> 6 & 0x3f));
		out[2] = (char)(0x80 | (v & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | v >> 18);
	out[1] = (char)(0x80 | (v >> 12 & 0x3f));
	out[2] = (char)(0x80 | (v >> 6 & 0x3f));
	out[3] = (char)(0x80 | (v & 0x3f));
	return 4;
}

/*
 * A string's bytes (between the quotes) unescaped into out, n or -1;
 * \u escapes only if u (never longer than their text).
 */
static long
jload_unescape(const char *s, size_t len, char *out, int u)
{
	size_t i, n = 0;
	long v;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20)
			return -1; /* jansson refuses raw controls */
		if (s[i] != '\\') {
			out[n++] = s[i];
			continue;
		}
		if (++i == len)
			return -1;
		switch (s[i]) {
		case '"':
		case '\\':
		case '/':
			out[n++] = s[i];
			break;
		case 'b':
			out[n++] = '\b';
			break;
		case 'f':
			out[n++] = '\f';
			break;
		case 'n':
			out[n++] = '\n';
			break;
		case 'r':
			out[n++] = '\r';
			break;
		case 't':
			out[n++] = '\t';
			break;
		case 'u':
			if (!u || (v = jload_uescape(s, len, &i)) < 0)
				return -1;
			n += jload_utf8(v, out + n);
			break;
		default:
			return -1; /* anything else: jansson */
		}
	}
	return (long)n;
}

/*
 * The length of the UTF-8 sequence at p (n bytes left) if jansson's
 * utf8_check_string() takes it: no overlong forms, no surrogates, nothing
 * over U+10FFFF; 0 otherwise.
 */
static size_t
jload_utf8_seq(const unsigned char *p, size_t left)
{
	size_t k, n;
	uint32_t v;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, v = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, v = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, v = p[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (k = 1; k < n; k++) {
		if (p[k] < 0x80 || p[k] > 0xbf)
			return 0;
		v = v << 6 | (p[k] & 0x3f);
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) ||
	    (n == 3 && v < 0x800) || (n == 4 && v < 0x10000))
		return 0;
	return n;
}

/*
 * A string as jload_string() would take it, for the check walk: no raw
 * control characters, only escapes it decodes, valid UTF-8 (an escape is
 * ASCII for ASCII, so the text is valid before unescaping just when it is
 * after). Plain ASCII goes eight bytes at a time: a byte under 0x20, over
 * 0x7f or a backslash sets some high bit below (a borrow only ever starts
 * at such a byte).
 */
static int
jload_check_string(const char *s, size_t len, int full)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;
	uint64_t x;

	while (i < len) {
		while (len - i >= 8) {
			memcpy(&x, p + i, 8);
			if (((x - 0x2020202020202020ULL) | x |
			        ((x ^ 0x5c5c5c5c5c5c5c5cULL) -
			            0x0101010101010101ULL)) &
			    0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i == len)
			break;
		if (p[i] < 0x20)
			return -1;
		if (p[i] == '\\') {
			if (++i == len)
				return -1;
			if (p[i] == 'u' && full) {
				if (jload_uescape(s, len, &i) < 0)
					return -1;
			} else if (p[i] == '\0' ||
			    strchr("\"\\/bfnrt", p[i]) == NULL)
				return -1;
			i++;
		} else if (p[i] >= 0x80) {
			if ((n = jload_utf8_seq(p + i, len - i)) == 0)
				return -1;
			i += n;
		} else
			i++;
	}
	return 0;
}

/*
 * A string token's value; json_stringn() checks the UTF-8 (as
 * json_object_setn_new() does for keys). NULL: leave it to jansson.
 */
static json_t *
jload_string(struct jwalk *w, const char *s, size_t len)
{
	char stack[JLOAD_STACK_STR], *out;
	json_t *j;
	long n;

	if (w->check)
		return jload_check_string(s, len, w->full) == 0 ? json_null() :
		                                                  NULL;
	if (memchr(s, '\\', len) == NULL) {
		for (n = 0; n < (long)len; n++) {
			if ((unsigned char)s[n] < 0x20)
				return NULL;
		}
		return json_stringn(s, len);
	}
	out = len <= sizeof stack ? stack : xmalloc(len);
	n = jload_unescape(s, len, out, 0);
	j = n < 0 ? NULL : json_stringn(out, (size_t)n);
	if (out != stack)
		free(out);
	return j;
}

/*
 * The length of the JSON number at s (len bytes): -?(0|[1-9][0-9]*),
 * then .[0-9]+ and [eE][+-]?[0-9]+ each maybe; *real when either came.
 * 0 if it is none.
 */
static size_t
jload_number(const char *s, size_t len, int *real)
{
	size_t i = 0, d;

	*real = 0;
	if (i < len && s[i] == '-')
		i++;
	for (d = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (i == d || (s[d] == '0' && i - d != 1))
		return 0;
	if (i < len && s[i] == '.') {
		*real = 1;
		for (d = ++i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		*real = 1;
		if (++i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return 0;
	}
	return i;
}

/* A number token's value as jansson reads it: -1 where it refuses one
 * (an integer out of json_int_t's range, a real overflowing a double). */
static int
jload_number_value(const char *s, int real, int64_t *iv, double *dv)
{
	char *end;

	errno = 0;
	if (real) {
		*dv = strtod(s, &end);
		return (*dv == HUGE_VAL || *dv == -HUGE_VAL) &&
		        errno == ERANGE ?
		    -1 :
		    0;
	}
	*iv = strtoll(s, &end, 10);
	*dv = (double)*iv;
	return errno == ERANGE ? -1 : 0;
}

static json_t *
jload_primitive(struct jwalk *w, const char *s, size_t len)
{
	size_t i = 0, digits;
	int64_t iv;
	double dv;
	int real;

	if (len == 4 && memcmp(s, "true", 4) == 0)
		return json_true();
	if (len == 5 && memcmp(s, "false", 5) == 0)
		return json_false();
	if (len == 4 && memcmp(s, "null", 4) == 0)
		return json_null();
	/* The check of a whole document: any number jansson takes. */
	if (w->full)
		return jload_number(s, len, &real) == len &&
		        jload_number_value(s, real, &iv, &dv) == 0 ?
		    json_null() :
		    NULL;
	/* -?(0|[1-9][0-9]*), small enough for any json_int_t. */
	if (i < len && s[i] == '-')
		i++;
	digits = len - i;
	if (digits == 0 || digits > 18 || (s[i] == '0' && digits != 1))
		return NULL;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return NULL;
	}
	if (w->check)
		return json_null();
	return json_integer((json_int_t)strtoll(s, NULL, 10));
}

static json_t *jload_value(struct jwalk *, char);

static json_t *
jload_object(struct jwalk *w, const jsmntok_t *t)
{
	char stack[JLOAD_STACK_STR], *key;
	const jsmntok_t *k;
	json_t *o, *v;
	long n;
	int i;

	o = w->check ? json_null() : json_object();
	w->pos = (size_t)t->start + 1;
	for (i = 0; i < t->size; i++) {
		if (w->next >= w->ntok)
			goto fail;
		k = &w->tok[w->next++];
		if (k->type != JSMN_STRING || k->size != 1 ||
		    jload_gap(w, (size_t)k->start - 1, i == 0 ? 0 : ',') != 0)
			goto fail;
		w->pos = (size_t)k->end + 1;
		if (w->check) {
			v = jload_check_string(w->buf + k->start,
			        (size_t)(k->end - k->start), w->full) != 0 ?
			    NULL :
			    jload_value(w, ':');
			if (v == NULL)
				goto fail;
			continue;
		}
		key = (size_t)(k->end - k->start) <= sizeof stack ?
		    stack :
		    xmalloc((size_t)(k->end - k->start));
		n = jload_unescape(w->buf + k->start,
		    (size_t)(k->end - k->start), key, 0);
		v = n < 0 ? NULL : jload_value(w, ':');
		/* Later duplicates replace earlier ones, as in jansson. */
		if (v == NULL ||
		    json_object_setn_new(o, key, (size_t)n, v) != 0) {
			if (key != stack)
				free(key);
			goto fail;
		}
		if (key != stack)
			free(key);
	}
	if (t->end < 1 || w->buf[t->end - 1] != '}' ||
	    jload_gap(w, (size_t)t->end - 1, 0) != 0)
		goto fail;
	/* Fewer members than keys: one came twice (jansson says which). */
	if (w->nodup && !w->check && json_object_size(o) != (size_t)t->size)
		goto fail;
	w->pos = (size_t)t->end;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *
jload_array(struct jwalk *w, const jsmntok_t *t)
{
	json_t *a, *v;
	int i;

	a = w->check ? json_null() : json_array();
	w->pos = (size_t)t->start + 1;
	for (i = 0; i < t->size; i++) {
		if ((v = jload_value(w, i == 0 ? 0 : ',')) == NULL ||
		    (!w->check && json_array_append_new(a, v) != 0))
			goto fail;
	}
	if (t->end < 1 || w->buf[t->end - 1] != ']' ||
	    jload_gap(w, (size_t)t->end - 1, 0) != 0)
		goto fail;
	w->pos = (size_t)t->end;
	return a;
fail:
	json_decref(a);
	return NULL;
}

/* The next token's value, after whitespace and sep (0: none). */
static json_t *
jload_value(struct jwalk *w, char sep)
{
	const jsmntok_t *t;
	json_t *j;

	if (w->next >= w->ntok)
		return NULL;
	t = &w->tok[w->next++];
	if (t->start < 0 || t->end < t->start)
		return NULL;
	switch (t->type) {
	case JSMN_STRING:
		if (t->size != 0 || t->start < 1 ||
		    jload_gap(w, (size_t)t->start - 1, sep) != 0)
			return NULL;
		w->pos = (size_t)t->end + 1;
		return jload_string(w, w->buf + t->start,
		    (size_t)(t->end - t->start));
	case JSMN_PRIMITIVE:
		if (t->size != 0 || jload_gap(w, (size_t)t->start, sep) != 0)
			return NULL;
		w->pos = (size_t)t->end;
		return jload_primitive(w, w->buf + t->start,
		    (size_t)(t->end - t->start));
	case JSMN_OBJECT:
	case JSMN_ARRAY:
		if (jload_gap(w, (size_t)t->start, sep) != 0)
			return NULL;
		j = t->type == JSMN_OBJECT ? jload_object(w, t) :
		                             jload_array(w, t);
		return j;
	default:
		return NULL;
	}
}

/*
 * Walk the n tokens of buf, building the tree or (check) only checking;
 * NULL unless the walk takes them exactly, and nothing but whitespace
 * comes after the root.
 */
static json_t *
jload_run(struct jwalk *w, size_t len)
{
	json_t *root;

	if ((root = jload_value(w, 0)) == NULL)
		return NULL;
	while (w->pos < len && jload_ws(w->buf[w->pos]))
		w->pos++;
	if (w->next != w->ntok || w->pos != len) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* jsmn's tokens of buf, up to max: their count, or -1. */
static int
jload_tokens(const char *buf, size_t len, jsmntok_t *tok, int max)
{
	jsmn_parser p;
	int n;

	/* jsmn stops at a NUL byte; its offsets are ints. */
	if (len == 0 || len > INT32_MAX / 2 || memchr(buf, '\0', len) != NULL)
		return -1;
	jsmn_init(&p);
	n = jsmn_parse(&p, buf, len, tok, (unsigned)max);
	if (n < 1 || (tok[0].type != JSMN_OBJECT && tok[0].type != JSMN_ARRAY))
		return -1;
	return n;
}

/*
 * Tokenize buf into tok (up to max) and walk it, building the tree;
 * NULL unless jsmn and the walk take it exactly.
 */
static json_t *
jload_walk(const char *buf, size_t len, jsmntok_t *tok, int max, int nodup)
{
	struct jwalk w;

	memset(&w, 0, sizeof w);
	if ((w.ntok = jload_tokens(buf, len, tok, max)) < 0)
		return NULL;
	w.buf = buf;
	w.tok = tok;
	w.nodup = nodup;
	return jload_run(&w, len);
}

/* Only what jsmn and the walk above decode exactly; NULL otherwise. */
json_t *
jload_fast(const char *buf, size_t len)
{
	jsmntok_t tok[JLOAD_MAX_TOKENS];

	return jload_walk(buf, len, tok, JLOAD_MAX_TOKENS, 0);
}

json_t *
jload(const char *buf, size_t len, json_error_t *err)
{
	json_t *j;

	if ((j = jload_fast(buf, len)) != NULL)
		return j;
	return json_loadb(buf, len, 0, err);
}

json_t *
jload_flags(const char *buf, size_t len, size_t flags, json_error_t *err)
{
	jsmntok_t tok[JLOAD_MAX_TOKENS];
	json_t *j;

	if (flags & ~(size_t)JSON_REJECT_DUPLICATES)
		return json_loadb(buf, len, flags, err);
	if ((j = jload_walk(buf, len, tok, JLOAD_MAX_TOKENS,
	         (flags & JSON_REJECT_DUPLICATES) != 0)) != NULL)
		return j;
	return json_loadb(buf, len, flags, err);
}

/* jdoc's tokens from jsmn's: the token after each one and all it holds;
 * -1 for a value deeper than JDOC_DEPTH. */
static int
jdoc_link(struct jdoc *d, const jsmntok_t *tok, int n, int *open)
{
	int i, top = 0;

	for (i = 0; i < n; i++) {
		switch (tok[i].type) {
		case JSMN_OBJECT:
			d->tok[i].type = JDOC_OBJECT;
			break;
		case JSMN_ARRAY:
			d->tok[i].type = JDOC_ARRAY;
			break;
		case JSMN_STRING:
			d->tok[i].type = JDOC_STRING;
			break;
		default:
			d->tok[i].type = JDOC_PRIMITIVE;
			break;
		}
		d->tok[i].start = tok[i].start;
		d->tok[i].end = tok[i].end;
		d->tok[i].size = tok[i].size;
		d->tok[i].next = i + 1;
		/* Containers that end before this token starts end here. */
		while (top > 0 && tok[open[top - 1]].end <= tok[i].start)
			d->tok[open[--top]].next = i;
		if (top >= JDOC_DEPTH)
			return -1;
		if (tok[i].type == JSMN_OBJECT || tok[i].type == JSMN_ARRAY)
			open[top++] = i;
	}
	while (top > 0)
		d->tok[open[--top]].next = n;
	return 0;
}

/* Key token i's text, unescaped (in place, or into a copy in *heap). */
static const char *
jdoc_key(const struct jdoc *d, int i, size_t *len, char **heap)
{
	const char *s = d->buf + d->tok[i].start;
	size_t raw = (size_t)(d->tok[i].end - d->tok[i].start);

	*heap = NULL;
	*len = raw;
	if (memchr(s, '\\', raw) == NULL)
		return s;
	*heap = xmalloc(raw + 1);
	return jdoc_str(d, i, len, *heap, raw);
}

struct jdoc_span {
	const char *s;
	size_t len;
	char *heap;
};

static int
jdoc_span_cmp(const void *a, const void *b)
{
	const struct jdoc_span *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->s, y->s, x->len);
}

/* Object obj has a key twice (compared unescaped, as jansson does). */
static int
jdoc_dup(const struct jdoc *d, int obj)
{
	struct jdoc_span stack[16], *k;
	int i, j, n = d->tok[obj].size, dup = 0;

	if (n < 2)
		return 0;
	k = n <= 16 ? stack : xcalloc((size_t)n, sizeof *k);
	for (i = 0, j = obj + 1; i < n; i++, j = d->tok[j + 1].next)
		k[i].s = jdoc_key(d, j, &k[i].len, &k[i].heap);
	if (n <= 16) {
		for (i = 0; i < n && !dup; i++)
			for (j = i + 1; j < n && !dup; j++)
				dup = jdoc_span_cmp(&k[i], &k[j]) == 0;
	} else {
		qsort(k, (size_t)n, sizeof *k, jdoc_span_cmp);
		for (i = 1; i < n && !dup; i++)
			dup = jdoc_span_cmp(&k[i - 1], &k[i]) == 0;
	}
	for (i = 0; i < n; i++) {
		if (k[i].heap != NULL)
			free(k[i].heap);
	}
	if (k != stack)
		free(k);
	return dup;
}

int
jdoc_dups(const struct jdoc *d)
{
	int i;

	for (i = 0; i < d->n; i++) {
		if (d->tok[i].type == JDOC_OBJECT && jdoc_dup(d, i))
			return 1;
	}
	return 0;
}

/*
 * jansson skips a NUL byte in some places (after a number, say), where
 * jsmn stops: such a text, rare, is read as the text jansson writes of
 * the tree it reads.
 */
static int
jdoc_nul(struct jdoc *d, const char *buf, size_t len, int flags)
{
	json_t *j;
	char *text;

	j = json_loadb(buf, len,
	    (flags & JDOC_NODUP) != 0 ? JSON_REJECT_DUPLICATES : 0, NULL);
	text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL || jdoc_load(d, text, strlen(text), flags) != 0) {
		free(text);
		return -1;
	}
	d->own = text;
	return 0;
}

/*
 * The text's brackets nest no deeper than JDOC_DEPTH (outside strings;
 * for valid JSON its containers' depth). Checked before jsmn tokenizes a
 * large text: closing a container walks back from the last token to it,
 * which costs up to the depth for each, and a megabyte nested two
 * thousand deep took over a second.
 */
static int
jdoc_shallow(const char *s, size_t len)
{
	size_t i;
	int depth = 0, str = 0;

	for (i = 0; i < len; i++) {
		if (str) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				str = 0;
		} else if (s[i] == '"')
			str = 1;
		else if (s[i] == '[' || s[i] == '{') {
			if (++depth > JDOC_DEPTH)
				return -1;
		} else if (s[i] == ']' || s[i] == '}')
			depth--;
	}
	return 0;
}

int
jdoc_load(struct jdoc *d, const char *buf, size_t len, int flags)
{
	jsmntok_t stok[JDOC_TOKENS], *tok = stok;
	int sopen[JDOC_TOKENS], *open = sopen;
	struct jwalk w;
	jsmn_parser p;
	int n;

	d->tok = d->small;
	d->own = NULL;
	d->n = 0;
	if ((flags & JDOC_FULL) && len != 0 && memchr(buf, '\0', len) != NULL)
		return jdoc_nul(d, buf, len, flags);
	n = jload_tokens(buf, len, tok, JDOC_TOKENS);
	/* (A NUL byte went to jdoc_nul() above.) */
	if (n < 0 && (flags & JDOC_FULL) && len != 0 && len <= INT32_MAX / 2) {
		/* More tokens than the array holds: as many as it takes. */
		jsmn_init(&p);
		if ((n = jsmn_parse(&p, buf, len, NULL, 0)) > JDOC_TOKENS &&
		    jdoc_shallow(buf, len) == 0) {
			tok = xcalloc((size_t)n, sizeof *tok);
			open = xcalloc((size_t)n, sizeof *open);
			d->tok = xcalloc((size_t)n, sizeof *d->tok);
			n = jload_tokens(buf, len, tok, n);
		} else
			n = -1;
	}
	if (n < 0 || jdoc_link(d, tok, n, open) != 0)
		goto fail;
	memset(&w, 0, sizeof w);
	w.buf = buf;
	w.tok = tok;
	w.ntok = n;
	w.check = 1;
	w.full = (flags & JDOC_FULL) != 0;
	if (jload_run(&w, len) == NULL)
		goto fail;
	d->buf = buf;
	d->n = n;
	if ((flags & JDOC_NODUP) && jdoc_dups(d))
		goto fail;
	if (tok != stok) {
		free(tok);
		free(open);
	}
	return 0;
fail:
	if (tok != stok) {
		free(tok);
		free(open);
	}
	jdoc_free(d);
	return -1;
}

int
jdoc_parse(struct jdoc *d, const char *buf, size_t len)
{
	return jdoc_load(d, buf, len, 0);
}

void
jdoc_free(struct jdoc *d)
{
	if (d->tok != d->small)
		free(d->tok);
	free(d->own);
	d->tok = d->small;
	d->own = NULL;
	d->n = 0;
}

/*
 * Key token i is key, of klen bytes and no backslash: mostly told by the
 * length alone. As long, it is equal only byte for byte; shorter, it is
 * another; longer, it may be escaped (up to six bytes for one).
 */
static int
jdoc_key_eq(const struct jdoc *d, int i, const char *key, size_t klen)
{
	char scratch[6 * 128];
	const char *k, *s = d->buf + d->tok[i].start;
	size_t len, raw = (size_t)(d->tok[i].end - d->tok[i].start);

	/* Most keys of the same length differ in their first byte. */
	if (raw == klen)
		return klen == 0 ||
		    (s[0] == key[0] && memcmp(s, key, klen) == 0);
	if (raw < klen || raw > 6 * klen || raw > sizeof scratch ||
	    memchr(s, '\\', raw) == NULL)
		return 0;
	k = jdoc_str(d, i, &len, scratch, sizeof scratch);
	return k != NULL && len == klen && memcmp(k, key, len) == 0;
}

int
jdoc_get(const struct jdoc *d, int obj, const char *key)
{
	size_t klen = strlen(key);
	int i, k, found = -1;

	if (obj < 0 || obj >= d->n || d->tok[obj].type != JDOC_OBJECT)
		return -1;
	for (i = obj + 1, k = 0; k < d->tok[obj].size;
	     k++, i = d->tok[i + 1].next) {
		if (jdoc_key_eq(d, i, key, klen))
			found = i + 1;
	}
	return found;
}

int
jdoc_members(const struct jdoc *d, int obj, const char *const *names, size_t n,
    int *vals)
{
	char scratch[6 * 128];
	const char *s;
	size_t len, k;
	int i, m, unknown = 0;

	for (k = 0; k < n; k++)
		vals[k] = -1;
	if (jdoc_type(d, obj) != JDOC_OBJECT)
		return 0;
	/* Every known member is taken, even past an unknown one: a caller
	 * may check some members before it refuses the unknown. */
	for (i = obj + 1, m = 0; m < d->tok[obj].size;
	     m++, i = d->tok[i + 1].next) {
		s = jdoc_str(d, i, &len, scratch, sizeof scratch);
		for (k = 0; s != NULL && len != 0 && k < n; k++) {
			if (names[k][0] == s[0] &&
			    strncmp(names[k], s, len) == 0 &&
			    names[k][len] == '\0')
				break;
		}
		if (s == NULL || len == 0 || k == n) {
			if (unknown == 0)
				unknown = i;
			continue;
		}
		vals[k] = i + 1;
	}
	return unknown;
}

int
jdoc_type(const struct jdoc *d, int i)
{
	return i < 0 || i >= d->n ? 0 : (int)d->tok[i].type;
}

int
jdoc_size(const struct jdoc *d, int i)
{
	return i < 0 || i >= d->n ? 0 : d->tok[i].size;
}

int
jdoc_next(const struct jdoc *d, int i)
{
	return d->tok[i].next;
}

int
jdoc_is(const struct jdoc *d, int i, const char *literal)
{
	const struct jdoc_tok *t;

	if (i < 0 || i >= d->n)
		return 0;
	t = &d->tok[i];
	return t->type == JDOC_PRIMITIVE &&
	    (size_t)(t->end - t->start) == strlen(literal) &&
	    memcmp(d->buf + t->start, literal, strlen(literal)) == 0;
}

int
jdoc_given(const struct jdoc *d, int i)
{
	return i != -1 && !jdoc_is(d, i, "null");
}

int
jdoc_streq(const struct jdoc *d, int i, const char *s)
{
	size_t n = strlen(s);

	return jdoc_type(d, i) == JDOC_STRING && n < 128 &&
	    jdoc_key_eq(d, i, s, n);
}

const char *
jdoc_str(const struct jdoc *d, int i, size_t *len, char *scratch, size_t cap)
{
	const struct jdoc_tok *t;
	const char *s;
	size_t n;
	long u;

	if (jdoc_type(d, i) != JDOC_STRING)
		return NULL;
	t = &d->tok[i];
	s = d->buf + t->start;
	n = (size_t)(t->end - t->start);
	if (memchr(s, '\\', n) == NULL) {
		*len = n;
		return s;
	}
	/* Unescaping never lengthens; the walk has checked the escapes. */
	if (n > cap || (u = jload_unescape(s, n, scratch, 1)) < 0)
		return NULL;
	*len = (size_t)u;
	return scratch;
}

/* Number token i: 1 integer, 2 real, 0 none; its value in *iv, *dv. */
static int
jdoc_number(const struct jdoc *d, int i, int64_t *iv, double *dv)
{
	const struct jdoc_tok *t;
	const char *s;
	int real;

	if (jdoc_type(d, i) != JDOC_PRIMITIVE)
		return 0;
	t = &d->tok[i];
	s = d->buf + t->start;
	if (*s != '-' && (*s < '0' || *s > '9'))
		return 0;
	/* The walk checked its syntax and range. */
	(void)jload_number(s, (size_t)(t->end - t->start), &real);
	(void)jload_number_value(s, real, iv, dv);
	return real ? 2 : 1;
}

int
jdoc_int(const struct jdoc *d, int i, int64_t *v)
{
	double dv;

	return jdoc_number(d, i, v, &dv) == 1 ? 0 : -1;
}

int
jdoc_num(const struct jdoc *d, int i, double *v)
{
	int64_t iv;

	return jdoc_number(d, i, &iv, v) != 0 ? 0 : -1;
}

/*
 * Value i's compact JSON text (malloc'd), json_dumps()'s of the tree
 * jansson reads from its text: rare and small values, so read by jansson.
 */
char *
jdoc_dump(const struct jdoc *d, int i, size_t flags)
{
	const struct jdoc_tok *t = &d->tok[i];
	size_t q = t->type == JDOC_STRING ? 1 : 0;
	json_t *j;
	char *s;

	j = json_loadb(d->buf + t->start - q,
	    (size_t)(t->end - t->start) + 2 * q, JSON_DECODE_ANY, NULL);
	s = j != NULL ? json_dumps(j, flags | JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	return s;
}
