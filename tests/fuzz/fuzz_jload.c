/*
 * fuzz_jload.c: jload() against json_loadb() on arbitrary bytes. Both must
 * decode to equal trees or both refuse, with the same message: the fast
 * path may only ever take on what it decodes exactly as jansson does.
 * jdoc_parse() must take just what the fast path takes (short of its
 * smaller token limit), and read the same values out of it. jwrite's
 * strings are jansson's text for what jansson takes.
 */
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "llmgated.h"
#include "fuzz.h"

/* Token i of d and its subtree equal j, as the tree holds it. */
static int
fuzz_jdoc_equal(const struct jdoc *d, int i, json_t *j)
{
	char scratch[4096];
	const char *s;
	size_t len;
	int64_t v;
	int k, m;

	switch (d->tok[i].type) {
	case JDOC_OBJECT:
		if (!json_is_object(j))
			return 0;
		/* Each member as jdoc_get() finds it (duplicates: the last). */
		for (k = i + 1, m = 0; m < d->tok[i].size;
		     m++, k = d->tok[k + 1].next) {
			s = jdoc_str(d, k, &len, scratch, sizeof scratch);
			/* jdoc_get() takes keys under 128 bytes, no '\\'. */
			if (s == NULL || len >= 128 ||
			    memchr(s, '\\', len) != NULL)
				continue;
			memmove(scratch, s, len);
			scratch[len] = '\0';
			if (strlen(scratch) != len)
				continue;
			if (!fuzz_jdoc_equal(d, jdoc_get(d, i, scratch),
			        json_object_get(j, scratch)))
				return 0;
		}
		return 1;
	case JDOC_ARRAY:
		if (!json_is_array(j) ||
		    json_array_size(j) != (size_t)d->tok[i].size)
			return 0;
		for (k = i + 1, m = 0; m < d->tok[i].size;
		     m++, k = d->tok[k].next)
			if (!fuzz_jdoc_equal(d, k,
			        json_array_get(j, (size_t)m)))
				return 0;
		return 1;
	case JDOC_STRING:
		s = jdoc_str(d, i, &len, scratch, sizeof scratch);
		return s == NULL ||
		    (json_is_string(j) && json_string_length(j) == len &&
		        memcmp(json_string_value(j), s, len) == 0);
	default:
		if (jdoc_int(d, i, &v) == 0)
			return json_is_integer(j) && json_integer_value(j) == v;
		return (jdoc_is(d, i, "null") && json_is_null(j)) ||
		    (jdoc_is(d, i, "true") && json_is_true(j)) ||
		    (jdoc_is(d, i, "false") && json_is_false(j));
	}
}

/* jdump() writes what json_dumps() writes. */
static void
fuzz_jdump(json_t *j)
{
	static const size_t flags[] = { JSON_COMPACT,
		JSON_COMPACT | JSON_ENSURE_ASCII };
	char *x, *y;
	size_t i;

	for (i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		x = jdump(j, flags[i]);
		y = json_dumps(j, flags[i]);
		if ((x == NULL) != (y == NULL) ||
		    (x != NULL && strcmp(x, y) != 0))
			fuzz_fail("jdump wrote '%s', jansson '%s'",
			    x != NULL ? x : "(failed)",
			    y != NULL ? y : "(failed)");
		free(x);
		free(y);
	}
}

/*
 * jwrite_string() on the raw bytes: where jansson takes them as a string,
 * the text json_dumps() writes, strict or not; where it does not (not
 * UTF-8), strict refuses and the lenient text is a string jansson reads.
 */
static void
fuzz_jwrite(const char *text, size_t size)
{
	static const size_t flags[] = { JSON_COMPACT | JSON_ENCODE_ANY,
		JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII };
	struct buf b = { NULL, 0, 0 };
	json_t *j = json_stringn(text, size), *back;
	char *y;
	size_t i;
	int ascii, rc;

	for (i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		ascii = (flags[i] & JSON_ENSURE_ASCII) != 0;
		buf_reset(&b);
		rc = jwrite_string(&b, text, size, ascii, 1);
		if ((rc == 0) != (j != NULL))
			fuzz_fail("jwrite strict %s, jansson %s",
			    rc == 0 ? "wrote" : "refused",
			    j != NULL ? "took it" : "refused");
		if (rc != 0 && b.len != 0)
			fuzz_fail("jwrite refused but left text");
		buf_reset(&b);
		(void)jwrite_string(&b, text, size, ascii, 0);
		if (j != NULL) {
			y = json_dumps(j, flags[i]);
			if (strcmp(buf_cstr(&b), y) != 0)
				fuzz_fail("jwrite wrote '%s', jansson '%s'",
				    buf_cstr(&b), y);
			free(y);
			continue;
		}
		back = json_loadb(b.data, b.len,
		    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		if (!json_is_string(back))
			fuzz_fail("jwrite wrote '%s', not a JSON string",
			    buf_cstr(&b));
		json_decref(back);
	}
	buf_free(&b);
	json_decref(j);
}

static void
fuzz_jdoc(const char *text, size_t size, json_t *fast)
{
	static struct jdoc d;
	jsmn_parser p;
	int need;

	if (jdoc_parse(&d, text, size) != 0) {
		if (fast == NULL)
			return;
		jsmn_init(&p);
		need = jsmn_parse(&p, text, size, NULL, 0);
		if (need <= JDOC_TOKENS)
			fuzz_fail("jdoc refused what the fast path took");
		return;
	}
	if (fast == NULL)
		fuzz_fail("jdoc took what the fast path refused");
	if (!fuzz_jdoc_equal(&d, 0, fast))
		fuzz_fail("jdoc reads other values than the tree holds");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	json_error_t e1, e2;
	json_t *a, *b, *f;

	a = jload(text, size, &e1);
	b = json_loadb(text, size, 0, &e2);
	if ((a == NULL) != (b == NULL))
		fuzz_fail("jload %s, jansson %s",
		    a == NULL ? "refused" : "decoded",
		    b == NULL ? e2.text : "decoded");
	if (a != NULL && !json_equal(a, b))
		fuzz_fail("the trees differ");
	if (a != NULL)
		fuzz_jdump(a);
	if (a == NULL && strcmp(e1.text, e2.text) != 0)
		fuzz_fail("errors differ: '%s' and '%s'", e1.text, e2.text);
	/* The fast path alone never takes what jansson refuses. */
	f = jload_fast(text, size);
	if (f != NULL && (b == NULL || !json_equal(f, b)))
		fuzz_fail("the fast path decoded what jansson did not");
	fuzz_jdoc(text, size, f);
	fuzz_jwrite(text, size);
	json_decref(f);
	json_decref(a);
	json_decref(b);
	return 0;
}
