/*
 * fuzz_jload.c: jload() against json_loadb() on arbitrary bytes. Both must
 * decode to equal trees or both refuse, with the same message: the fast
 * path may only ever take on what it decodes exactly as jansson does.
 * jdoc_parse() must take just what the fast path takes (short of its
 * smaller token limit), jdoc_load() just what jansson takes (duplicate
 * keys refused or not; short of its depth), and read the same values.
 * jwrite's strings are jansson's text for what jansson takes;
 * jwrite_loads writes what jdump writes for json_loads()'s tree, or
 * refuses as it does; and jwrite_real writes a real as json_dumps() does.
 */
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "llmgated.h"
#include "fuzz.h"

/* String token i of d holds the n bytes at v. */
static int
fuzz_jdoc_str_is(const struct jdoc *d, int i, const char *v, size_t n)
{
	size_t raw = (size_t)(d->tok[i].end - d->tok[i].start), len;
	char *scratch = xmalloc(raw + 1);
	const char *s;
	int eq;

	s = jdoc_str(d, i, &len, scratch, raw);
	eq = s != NULL && len == n && memcmp(s, v, n) == 0;
	free(scratch);
	return eq;
}

/*
 * Token i of d and its subtree equal j, as the tree holds it. ordered:
 * no key came twice, so an object's members come in the tree's order.
 */
static int
fuzz_jdoc_equal(const struct jdoc *d, int i, json_t *j, int ordered)
{
	char scratch[4096];
	const char *s;
	size_t len;
	int64_t v;
	double x;
	void *it;
	int k, m;

	switch (jdoc_type(d, i)) {
	case JDOC_OBJECT:
		if (!json_is_object(j))
			return 0;
		if (ordered && json_object_size(j) != (size_t)jdoc_size(d, i))
			return 0;
		it = json_object_iter(j);
		/* Each member as jdoc_get() finds it (duplicates: the last). */
		for (k = i + 1, m = 0; m < jdoc_size(d, i);
		     m++, k = jdoc_next(d, k + 1)) {
			if (ordered) {
				if (it == NULL ||
				    !fuzz_jdoc_str_is(d, k,
				        json_object_iter_key(it),
				        json_object_iter_key_len(it)) ||
				    !fuzz_jdoc_equal(d, k + 1,
				        json_object_iter_value(it), 1))
					return 0;
				it = json_object_iter_next(j, it);
			}
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
			        json_object_get(j, scratch), ordered))
				return 0;
		}
		return 1;
	case JDOC_ARRAY:
		if (!json_is_array(j) ||
		    json_array_size(j) != (size_t)jdoc_size(d, i))
			return 0;
		for (k = i + 1, m = 0; m < jdoc_size(d, i);
		     m++, k = jdoc_next(d, k))
			if (!fuzz_jdoc_equal(d, k, json_array_get(j, (size_t)m),
			        ordered))
				return 0;
		return 1;
	case JDOC_STRING:
		return json_is_string(j) &&
		    fuzz_jdoc_str_is(d, i, json_string_value(j),
		        json_string_length(j));
	default:
		if (jdoc_int(d, i, &v) == 0)
			return json_is_integer(j) && json_integer_value(j) == v;
		if (jdoc_num(d, i, &x) == 0)
			return json_is_real(j) && json_real_value(j) == x;
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

/*
 * jwrite_loads(_member) on text: jdump_buf(json_loads(text)) with the
 * member added where missing, or the same refusal, nothing written.
 */
static void
fuzz_jwrite_loads(const char *data, size_t size)
{
	static const size_t dump[] = { JSON_COMPACT,
		JSON_COMPACT | JSON_REAL_PRECISION(15) };
	struct buf got = { NULL, 0, 0 }, want = { NULL, 0, 0 };
	struct jwrite w;
	json_error_t e1, e2;
	char *text;
	json_t *j;
	size_t i;
	int rc, member;

	text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	for (i = 0; i < 2 * sizeof dump / sizeof dump[0]; i++) {
		member = (int)(i & 1);
		buf_reset(&got);
		buf_reset(&want);
		jwrite_init(&w, &got, 0);
		jwrite_open(&w, NULL, '[');
		rc = jwrite_loads_member(&w, NULL, text, 0, dump[i / 2], 1,
		    member ? "type" : NULL, "object", &e1);
		j = json_loads(text, 0, &e2);
		if (j == NULL) {
			if (rc != -1 || strcmp(e1.text, e2.text) != 0)
				fuzz_fail("jwrite_loads %d (%s), jansson '%s'",
				    rc, e1.text, e2.text);
		} else if (!json_is_object(j)) {
			if (rc != -2)
				fuzz_fail("jwrite_loads %d for no object", rc);
		} else {
			if (member && json_object_get(j, "type") == NULL)
				json_object_set_new(j, "type",
				    json_string("object"));
			buf_addstr(&want, "[");
			if (rc != 0 || jdump_buf(&want, j, dump[i / 2]) != 0 ||
			    strcmp(buf_cstr(&got), buf_cstr(&want)) != 0)
				fuzz_fail("jwrite_loads wrote '%s', jdump '%s'",
				    buf_cstr(&got), buf_cstr(&want));
		}
		if (rc != 0 && strcmp(buf_cstr(&got), "[") != 0)
			fuzz_fail("jwrite_loads refused but left text");
		json_decref(j);
	}
	free(text);
	buf_free(&got);
	buf_free(&want);
}

/* jwrite_real: json_dumps()'s text for a double made of the bytes. */
static void
fuzz_jwrite_real(const char *data, size_t size)
{
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;
	double v;
	json_t *j;
	char *y;
	int prec;

	if (size < sizeof v)
		return;
	memcpy(&v, data, sizeof v);
	for (prec = 0; prec <= 17; prec += 15) {
		buf_reset(&b);
		jwrite_init(&w, &b, 0);
		j = json_real(v);
		y = j != NULL ? json_dumps(j,
		                    JSON_COMPACT | JSON_ENCODE_ANY |
		                        JSON_REAL_PRECISION(prec)) :
		                NULL;
		if ((jwrite_real(&w, NULL, v, prec) == 0) != (y != NULL) ||
		    (y != NULL && strcmp(buf_cstr(&b), y) != 0))
			fuzz_fail("jwrite_real wrote '%s', jansson '%s'",
			    buf_cstr(&b), y != NULL ? y : "(none)");
		free(y);
		json_decref(j);
	}
	buf_free(&b);
}

/*
 * jdoc_parse() takes just what the fast path takes (short of its token
 * limit); jdoc_load() with JDOC_FULL just what json_loadb() takes (b),
 * with JDOC_NODUP too just what it takes refusing duplicates.
 */
static void
fuzz_jdoc(const char *text, size_t size, json_t *fast, json_t *b)
{
	static struct jdoc d;
	jsmn_parser p;
	json_t *nodup;
	char *x, *y;
	int need, deep;

	if (jdoc_parse(&d, text, size) != 0) {
		if (fast != NULL) {
			jsmn_init(&p);
			need = jsmn_parse(&p, text, size, NULL, 0);
			if (need <= JDOC_TOKENS)
				fuzz_fail("jdoc refused what the fast path "
				          "took");
		}
	} else if (fast == NULL)
		fuzz_fail("jdoc took what the fast path refused");
	else if (!fuzz_jdoc_equal(&d, 0, fast, 0))
		fuzz_fail("jdoc reads other values than the tree holds");
	jdoc_free(&d);

	/* Short of jansson's depth: what nests deeper is refused. */
	deep = b != NULL && fuzz_json_depth(b) > JDOC_DEPTH;
	if ((jdoc_load(&d, text, size, JDOC_FULL) == 0) != (b != NULL && !deep))
		fuzz_fail("jdoc_load %s what jansson %s",
		    b != NULL ? "refused" : "took",
		    b != NULL ? "took" : "refused");
	if (b != NULL && !deep && !fuzz_jdoc_equal(&d, 0, b, 0))
		fuzz_fail("jdoc_load reads other values than the tree holds");
	jdoc_free(&d);

	nodup = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	if (deep) {
		json_decref(nodup);
		nodup = NULL;
	}
	if ((jdoc_load(&d, text, size, JDOC_FULL | JDOC_NODUP) == 0) !=
	    (nodup != NULL))
		fuzz_fail("jdoc_load (no duplicates) %s what jansson %s",
		    nodup != NULL ? "refused" : "took",
		    nodup != NULL ? "took" : "refused");
	if (nodup != NULL) {
		if (!fuzz_jdoc_equal(&d, 0, nodup, 1))
			fuzz_fail("jdoc_load reads other members than the "
			          "tree holds");
		x = jdoc_dump(&d, 0, JSON_COMPACT);
		y = json_dumps(nodup, JSON_COMPACT);
		if (x == NULL || y == NULL || strcmp(x, y) != 0)
			fuzz_fail("jdoc_dump wrote '%s', jansson '%s'",
			    x != NULL ? x : "(failed)",
			    y != NULL ? y : "(failed)");
		free(x);
		free(y);
	}
	jdoc_free(&d);
	json_decref(nodup);
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
	fuzz_jdoc(text, size, f, b);
	fuzz_jwrite(text, size);
	if (memchr(text, '\0', size) == NULL)
		fuzz_jwrite_loads(text, size);
	fuzz_jwrite_real(text, size);
	json_decref(f);
	json_decref(a);
	json_decref(b);
	return 0;
}
