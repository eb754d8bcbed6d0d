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
 */
#include <stdlib.h>
#include <string.h>

#define JSMN_STRICT
#define JSMN_STATIC
#include <jsmn.h>

#include "llmgated.h"

#define JLOAD_MAX_TOKENS	512
#define JLOAD_STACK_STR		256	/* unescaped strings up to this */

struct jwalk {
	const char *buf;
	const jsmntok_t *tok;
	int ntok;
	int next;		/* the next token to take */
	size_t pos;		/* the end of what was taken */
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

/* A string's bytes (between the quotes) unescaped into out, n or -1. */
static long
jload_unescape(const char *s, size_t len, char *out)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20)
			return -1;	/* jansson refuses raw controls */
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
		default:
			return -1;	/* \u and anything else: jansson */
		}
	}
	return (long)n;
}

/*
 * A string token's value; json_stringn() checks the UTF-8 (as
 * json_object_setn_new() does for keys). NULL: leave it to jansson.
 */
static json_t *
jload_string(const char *s, size_t len)
{
	char stack[JLOAD_STACK_STR], *out;
	json_t *j;
	long n;

	if (memchr(s, '\\', len) == NULL) {
		for (n = 0; n < (long)len; n++) {
			if ((unsigned char)s[n] < 0x20)
				return NULL;
		}
		return json_stringn(s, len);
	}
	out = len <= sizeof stack ? stack : xmalloc(len);
	n = jload_unescape(s, len, out);
	j = n < 0 ? NULL : json_stringn(out, (size_t)n);
	if (out != stack)
		free(out);
	return j;
}

static json_t *
jload_primitive(const char *s, size_t len)
{
	size_t i = 0, digits;

	if (len == 4 && memcmp(s, "true", 4) == 0)
		return json_true();
	if (len == 5 && memcmp(s, "false", 5) == 0)
		return json_false();
	if (len == 4 && memcmp(s, "null", 4) == 0)
		return json_null();
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

	o = json_object();
	w->pos = (size_t)t->start + 1;
	for (i = 0; i < t->size; i++) {
		if (w->next >= w->ntok)
			goto fail;
		k = &w->tok[w->next++];
		if (k->type != JSMN_STRING || k->size != 1 ||
		    jload_gap(w, (size_t)k->start - 1, i == 0 ? 0 : ',') != 0)
			goto fail;
		w->pos = (size_t)k->end + 1;
		key = (size_t)(k->end - k->start) <= sizeof stack ? stack :
		    xmalloc((size_t)(k->end - k->start));
		n = jload_unescape(w->buf + k->start,
		    (size_t)(k->end - k->start), key);
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

	a = json_array();
	w->pos = (size_t)t->start + 1;
	for (i = 0; i < t->size; i++) {
		if ((v = jload_value(w, i == 0 ? 0 : ',')) == NULL ||
		    json_array_append_new(a, v) != 0)
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
		return jload_string(w->buf + t->start,
		    (size_t)(t->end - t->start));
	case JSMN_PRIMITIVE:
		if (t->size != 0 || jload_gap(w, (size_t)t->start, sep) != 0)
			return NULL;
		w->pos = (size_t)t->end;
		return jload_primitive(w->buf + t->start,
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

/* Only what jsmn and the walk above decode exactly; NULL otherwise. */
json_t *
jload_fast(const char *buf, size_t len)
{
	jsmntok_t tok[JLOAD_MAX_TOKENS];
	struct jwalk w;
	jsmn_parser p;
	json_t *root;
	int n;

	/* jsmn stops at a NUL byte; its offsets are ints. */
	if (len == 0 || len > INT32_MAX / 2 || memchr(buf, '\0', len) != NULL)
		return NULL;
	jsmn_init(&p);
	n = jsmn_parse(&p, buf, len, tok, JLOAD_MAX_TOKENS);
	if (n < 1 || (tok[0].type != JSMN_OBJECT && tok[0].type != JSMN_ARRAY))
		return NULL;
	memset(&w, 0, sizeof w);
	w.buf = buf;
	w.tok = tok;
	w.ntok = n;
	if ((root = jload_value(&w, 0)) == NULL)
		return NULL;
	/* All tokens taken, and nothing but whitespace after the root. */
	if (w.next != n) {
		json_decref(root);
		return NULL;
	}
	while (w.pos < len && jload_ws(buf[w.pos]))
		w.pos++;
	if (w.pos != len) {
		json_decref(root);
		return NULL;
	}
	return root;
}

json_t *
jload(const char *buf, size_t len, json_error_t *err)
{
	json_t *j;

	if ((j = jload_fast(buf, len)) != NULL)
		return j;
	return json_loadb(buf, len, 0, err);
}
