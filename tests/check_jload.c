/*
 * check_jload.c: the fast JSON decoder must give exactly what json_loadb()
 * gives (the same tree, or the same error), and must take on the replies
 * and stream events the providers really send, or it saves nothing.
 */
#include <sys/types.h>

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#ifndef TEST_DATA
#error "build with -DTEST_DATA='\"/path/to/tests/data\"'"
#endif

/* jdump() writes what json_dumps() writes, with each flag it takes. */
static void
same_dump(json_t *j)
{
	static const size_t flags[] = { JSON_COMPACT,
		JSON_COMPACT | JSON_ENSURE_ASCII,
		JSON_COMPACT | JSON_ENCODE_ANY,
		JSON_COMPACT | JSON_REAL_PRECISION(15), JSON_INDENT(1),
		JSON_COMPACT | JSON_SORT_KEYS };
	char *a, *b;
	size_t i;

	for (i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		a = jdump(j, flags[i]);
		b = json_dumps(j, flags[i]);
		ck_assert_msg((a == NULL) == (b == NULL),
		    "flags %zx: jdump "
		    "%s, jansson %s",
		    flags[i], a == NULL ? "failed" : a,
		    b == NULL ? "failed" : b);
		if (a != NULL)
			ck_assert_str_eq(a, b);
		free(a);
		free(b);
	}
}

/* jload() and json_loadb() agree on text: same tree, or same error. */
static void
same_as_jansson(const char *text, size_t len)
{
	json_error_t e1, e2;
	json_t *a, *b;

	a = jload(text, len, &e1);
	b = json_loadb(text, len, 0, &e2);
	ck_assert_msg((a == NULL) == (b == NULL),
	    "'%.*s': jload %s, "
	    "jansson %s",
	    (int)len, text, a == NULL ? "failed" : "decoded",
	    b == NULL ? "failed" : "decoded");
	if (a != NULL) {
		ck_assert_msg(json_equal(a, b), "'%.*s': trees differ",
		    (int)len, text);
		same_dump(a);
	} else
		ck_assert_str_eq(e1.text, e2.text);
	json_decref(a);
	json_decref(b);
}

START_TEST(test_agrees_with_jansson)
{
	/* Taken on by the fast path. */
	static const char *fast[] = {
		"{}",
		"[]",
		" {\"a\":1} ",
		"\n[1,-2,0,true,false,null]\r\n",
		"{\"a\":{\"b\":[{\"c\":\"d\"}]},\"e\":[]}",
		"{\"a\":1,\"a\":2}", /* the later one wins */
		"{\"s\":\"tab\\there \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\"}",
		"{\"\\n\":\"escaped key\"}",
		"{\"u\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}",
		"[123456789012345678,-123456789012345678]",
		"[ 1 , 2 ]",
		"{ \"a\" : 1 , \"b\" : [ ] }",
	};
	static const char *cases[] = {
		/* Strings longer than a word, each kind of byte anywhere. */
		"{\"a key longer than eight\":\"and a value \\\" quoted\"}",
		"[\"12345678\\n2345678\",\"1234567\\\\\",\"\xc3\xa9"
		"234567890\"]",
		"[\"12345678\x01\"]",
		"[\"1234567812345678\xc3\"]",
		"[\"1234567812345678\\u0041\"]",
		"[\"1234567812345678",
		"[\"12345678\\",
		"{\"abcdefghij\" : \"klmnopqrstu\" , \"v\":[ -0 ]}",
		"{\"abcdefghij\":tRue}",
		"[ true , false , null , -1 , 0 , 9 ]",
		"[1-2]",
		"[1 ]",
		"[1\t,\n2\r]",
		"[\"\x7f\"]",
		"[\"\xed\xa0\x80\"]",
		"[\"\xf4\x90\x80\x80\"]",
		"[\"\xe0\x80\xaf\"]",
		/* Handed to jansson, which decodes them. */
		"[\"\\u00e9\\ud83d\\ude00\"]",
		"[1.5,2e3,-0.0]",
		"[1234567890123456789]",
		"[-0]",
		/* Malformed: both refuse, with jansson's message. */
		"",
		"   ",
		"{",
		"}",
		"[1,]",
		"[,1]",
		"{\"a\":1,}",
		"{,\"a\":1}",
		"[1 2]",
		"{\"a\" 1}",
		"{\"a\":1 \"b\":2}",
		"{\"a\"}",
		"{1:2}",
		"[\"a\":1]",
		"[01]",
		"[1.]",
		"[+1]",
		"[--1]",
		"[tru]",
		"[truex]",
		"[nul]",
		"[1\"a\"]",
		"{} {}",
		"{}x",
		"[] ]",
		"[\"unterminated]",
		"[\"bad \\x escape\"]",
		"[\"raw \x01 control\"]",
		"[\"bad utf8 \xc3\x28\"]",
		"[\"\\u0000\"]",
		"[\"\\ud800\"]",
		"\"just a string\"",
		"42",
		"null",
		"[1][2]",
		"{\"a\":[}",
		"[{]}",
		"[\"a\\\"]",
	};
	json_t *j;
	size_t i;

	for (i = 0; i < sizeof fast / sizeof fast[0]; i++) {
		j = jload_fast(fast[i], strlen(fast[i]));
		ck_assert_msg(j != NULL, "'%s' went past the fast path",
		    fast[i]);
		json_decref(j);
		same_as_jansson(fast[i], strlen(fast[i]));
	}
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		same_as_jansson(cases[i], strlen(cases[i]));
	/* A NUL byte inside the text. */
	same_as_jansson("[1,\0 2]", 7);
	same_as_jansson("[\"a\0b\"]", 7);
}
END_TEST

/* Values no decoded text holds, and the duplicate-key refusal. */
START_TEST(test_dump_and_duplicates)
{
	const char *dup = "{\"a\":{\"b\":1,\"b\":2}}";
	const char *nodup = "{\"a\":{\"b\":1,\"c\":2}}";
	json_error_t e1, e2;
	json_t *j, *k;
	char *s;

	j = json_pack("{s:s%, s:I, s:I, s:f, s:o, s:[s,s]}", "nul",
	    "a\0b\x1f\x7f", (size_t)5, "min", (json_int_t)INT64_MIN, "max",
	    (json_int_t)INT64_MAX, "real", 0.1, "empty", json_object(), "s",
	    "\xf0\x9f\x98\x80 \xe2\x80\xa8 \xc3\xa9", "/\"\\\b\f\n\r\t");
	ck_assert_ptr_nonnull(j);
	json_object_setn_new(j, "k\0ey", 4, json_string("v"));
	same_dump(j);
	/* A string jansson would refuse to write (not UTF-8). */
	json_object_set_new(j, "bad", json_stringn_nocheck("\xc3\x28", 2));
	same_dump(j);
	json_decref(j);
	k = json_string("only a string");
	same_dump(k);
	s = jdump(k, JSON_COMPACT);
	ck_assert_ptr_null(s);
	json_decref(k);

	/* jload_flags(JSON_REJECT_DUPLICATES) refuses as jansson does. */
	j = jload_flags(dup, strlen(dup), JSON_REJECT_DUPLICATES, &e1);
	k = json_loadb(dup, strlen(dup), JSON_REJECT_DUPLICATES, &e2);
	ck_assert_ptr_null(j);
	ck_assert_ptr_null(k);
	ck_assert_str_eq(e1.text, e2.text);
	j = jload_flags(nodup, strlen(nodup), JSON_REJECT_DUPLICATES, &e1);
	ck_assert_ptr_nonnull(j);
	json_decref(j);
}
END_TEST

/* Past the token array: jansson takes it, with the same result. */
/* Long strings that grow six and three times: as jansson writes them. */
static void
jwrite_long_strings(void)
{
	static const char *units[] = { "\x01", "\xf0\x9f\x98\x80", "a" };
	struct buf b = { NULL, 0, 0 };
	char long_s[4001], *y;
	size_t u, i, k, ulen;
	json_t *js;

	for (u = 0; u < 3; u++) {
		ulen = strlen(units[u]);
		for (i = 0; i + ulen < sizeof long_s; i += ulen)
			memcpy(long_s + i, units[u], ulen);
		long_s[i] = '\0';
		js = json_string(long_s);
		for (k = 0; k < 2; k++) {
			buf_reset(&b);
			ck_assert_int_eq(jwrite_string(&b, long_s, i, (int)k,
			                     1),
			    0);
			y = json_dumps(js,
			    JSON_ENCODE_ANY | (k ? JSON_ENSURE_ASCII : 0));
			ck_assert_str_eq(buf_cstr(&b), y);
			free(y);
		}
		json_decref(js);
	}
	buf_free(&b);
}

/* jwrite: the commas, the escapes, U+FFFD for bytes that are not UTF-8. */
START_TEST(test_jwrite)
{
	struct buf b = { NULL, 0, 0 };
	struct jwrite w;
	json_t *j;

	jwrite_init(&w, &b, 0);
	jwrite_open(&w, NULL, '{');
	jwrite_str(&w, "s", "a\"b\\c/d\n\x01\x7f caf\xc3\xa9 \xf0\x9f\x98\x80");
	jwrite_strn(&w, "nul", "a\0b", 3);
	jwrite_str(&w, "none", NULL);
	jwrite_open(&w, "list", '[');
	jwrite_int(&w, NULL, -9223372036854775807LL - 1);
	jwrite_int(&w, NULL, 0);
	jwrite_bool(&w, NULL, 1);
	jwrite_open(&w, NULL, '{');
	jwrite_close(&w, '}');
	jwrite_open(&w, NULL, '[');
	jwrite_close(&w, ']');
	jwrite_raw(&w, NULL, "{\"r\":1}");
	jwrite_close(&w, ']');
	j = json_pack("{s:i}", "t", 2);
	jwrite_json(&w, "tree", j);
	jwrite_close(&w, '}');
	ck_assert_str_eq(buf_cstr(&b),
	    "{\"s\":\"a\\\"b\\\\c/d\\n\\u0001\x7f caf\xc3\xa9 \xf0\x9f\x98\x80\","
	    "\"nul\":\"a\\u0000b\",\"none\":null,"
	    "\"list\":[-9223372036854775808,0,true,{},[],{\"r\":1}],"
	    "\"tree\":{\"t\":2}}");
	json_decref(j);

	/* Not UTF-8: a lone continuation, a cut sequence, an overlong form,
	 * a surrogate, 0xff: U+FFFD for each byte that starts nothing. */
	buf_reset(&b);
	jwrite_init(&w, &b, 0);
	jwrite_str(&w, NULL,
	    "a\x80"
	    "b\xe2\x82"
	    "c\xc0\xaf"
	    "d\xed\xa0\x80"
	    "e\xff");
	ck_assert_str_eq(buf_cstr(&b),
	    "\"a\xef\xbf\xbd"
	    "b\xef\xbf\xbd\xef\xbf\xbd"
	    "c\xef\xbf\xbd\xef\xbf\xbd"
	    "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    "e\xef\xbf\xbd\"");
	buf_reset(&b);
	jwrite_init(&w, &b, 1);
	jwrite_str(&w, NULL, "\x80\xc3\xa9\xf0\x9f\x98\x80");
	ck_assert_str_eq(buf_cstr(&b), "\"\\uFFFD\\u00E9\\uD83D\\uDE00\"");
	jwrite_long_strings();
	/* Strict (jdump): refused, the buffer as it was. */
	buf_reset(&b);
	buf_addstr(&b, "x");
	ck_assert_int_eq(jwrite_string(&b, "a\xff", 2, 0, 1), -1);
	ck_assert_str_eq(buf_cstr(&b), "x");
	ck_assert_uint_eq(b.len, 1);
	buf_free(&b);
}
END_TEST

START_TEST(test_large_document)
{
	char *text;
	size_t n = 0, cap = 64 * 1024;
	int i;

	text = malloc(cap);
	n += (size_t)snprintf(text + n, cap - n, "[");
	for (i = 0; i < 2000; i++)
		n += (size_t)snprintf(text + n, cap - n, "%s{\"i\":%d}",
		    i == 0 ? "" : ",", i);
	n += (size_t)snprintf(text + n, cap - n, "]");
	ck_assert_ptr_null(jload_fast(text, n));
	same_as_jansson(text, n);
	free(text);
}
END_TEST

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/*
 * The recorded OpenAI stream events and plain replies (the hot path) are
 * decoded by the fast path, and all recorded bodies and events of every
 * provider agree with jansson.
 */
START_TEST(test_recorded_replies)
{
	static const char *dirs[] = { "openai", "anthropic", "gemini" };
	char path[1024], *buf, *line, *end;
	struct dirent *de;
	size_t len, i;
	unsigned fast = 0, events = 0;
	json_t *j;
	DIR *d;

	for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", TEST_DATA, dirs[i]);
		ck_assert_ptr_nonnull(d = opendir(path));
		while ((de = readdir(d)) != NULL) {
			if (*de->d_name == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s/%s", TEST_DATA,
			    dirs[i], de->d_name);
			buf = slurp(path, &len);
			if (strstr(de->d_name, ".json") != NULL)
				same_as_jansson(buf, len);
			/* Each "data: " line of a stream is one event. */
			for (line = buf; strstr(de->d_name, ".sse") != NULL &&
			     (line = strstr(line, "data: ")) != NULL;
			     line = end) {
				line += 6;
				end = line + strcspn(line, "\r\n");
				if (*line != '{')
					continue;
				same_as_jansson(line, (size_t)(end - line));
				if (i == 0) {
					events++;
					j = jload_fast(line,
					    (size_t)(end - line));
					fast += j != NULL;
					json_decref(j);
				}
			}
			free(buf);
		}
		closedir(d);
	}
	/* Nearly every OpenAI event: only \u escapes and reals go past. */
	ck_assert_uint_gt(events, 20);
	ck_assert_msg(fast * 10 >= events * 9,
	    "fast path took %u of %u "
	    "OpenAI events",
	    fast, events);
}
END_TEST

/* jdoc_load() takes what json_loadb() takes; 1 if it did. */
static int
jdoc_as_jansson(const char *text, size_t len, int nodup)
{
	struct jdoc d;
	json_error_t e;
	json_t *j;
	char *x, *y;
	int rc;

	j = json_loadb(text, len, nodup ? JSON_REJECT_DUPLICATES : 0, &e);
	rc = jdoc_load(&d, text, len, JDOC_FULL | (nodup ? JDOC_NODUP : 0));
	ck_assert_msg((rc == 0) == (j != NULL), "'%.*s': jdoc %s, jansson %s",
	    (int)(len < 80 ? len : 80), text, rc == 0 ? "took it" : "refused",
	    j != NULL ? "took it" : e.text);
	if (j != NULL) {
		x = jdoc_dump(&d, 0, JSON_COMPACT);
		y = json_dumps(j, JSON_COMPACT);
		ck_assert_str_eq(x, y);
		free(x);
		free(y);
	}
	jdoc_free(&d);
	json_decref(j);
	return rc == 0;
}

/* What the HTTP front reads requests with: all of JSON, as jansson. */
START_TEST(test_jdoc_full)
{
	static const char *cases[] = {
		"{\"s\":\"caf\\u00e9 \\ud83d\\ude00 \\u20AC\"}",
		"[\"\\ud800\"]",
		"[\"\\udc00\"]",
		"[\"\\ud800\\u0041\"]",
		"[\"\\u0000\"]",
		"[\"\\u12\"]",
		"[\"\\u12G4\"]",
		"[0.7, -1.5e3, 2E+2, 1e-400, 0.0, -0]",
		"[1e400]",
		"[-1e400]",
		"[1.]",
		"[.5]",
		"[01]",
		"[1e]",
		"[-]",
		"[+1]",
		"[9223372036854775807, -9223372036854775808]",
		"[9223372036854775808]",
		"[-9223372036854775809]",
		"{\"a\":1,\"a\":2}",
		"{\"a\":1,\"\\u0061\":2}",
		"{\"a\\/\":1,\"a/\":2}",
		"{\"x\":{\"a\":1},\"y\":{\"a\":1}}",
		"{\"\\u00e9\":1,\"\xc3\xa9\":2}",
		/* U+0000, in a value or a key: refused, as jansson does
		 * without JSON_ALLOW_NUL (the front says so in its words). */
		"{\"s\":\"a\\u0000b\"}",
		"{\"a\\u0000\":1}",
	};
	struct buf b = { NULL, 0, 0 };
	struct jdoc d;
	const char *s;
	json_t *j;
	char scratch[64];
	size_t i, len;
	int64_t v;
	double x;
	int k, m[2];
	static const char *const names[] = { "t", "i" };

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		(void)jdoc_as_jansson(cases[i], strlen(cases[i]), 0);
		(void)jdoc_as_jansson(cases[i], strlen(cases[i]), 1);
	}
	/* Duplicates, also when spelt otherwise, refused only if asked. */
	ck_assert(!jdoc_as_jansson(cases[20], strlen(cases[20]), 1));
	ck_assert(jdoc_as_jansson(cases[20], strlen(cases[20]), 0));
	ck_assert(!jdoc_as_jansson(cases[23], strlen(cases[23]), 1));
	/* No U+0000: a C string cannot carry it. */
	ck_assert(!jdoc_as_jansson(cases[24], strlen(cases[24]), 0));
	ck_assert(!jdoc_as_jansson(cases[25], strlen(cases[25]), 0));
	/* Escapes decoded, numbers read as jansson reads them. */
	ck_assert_int_eq(jdoc_load(&d, cases[0], strlen(cases[0]), JDOC_FULL),
	    0);
	s = jdoc_str(&d, jdoc_get(&d, 0, "s"), &len, scratch, sizeof scratch);
	ck_assert(s != NULL &&
	    len ==
	        strlen("caf\xc3\xa9 \xf0\x9f\x98\x80 "
	               "\xe2\x82\xac"));
	ck_assert(
	    memcmp(s, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac", len) == 0);
	jdoc_free(&d);
	s = "{\"t\":0.7,\"i\":-9223372036854775808}";
	ck_assert_int_eq(jdoc_load(&d, s, strlen(s), JDOC_FULL | JDOC_NODUP),
	    0);
	ck_assert_int_eq(jdoc_members(&d, 0, names, 2, m), 0);
	ck_assert(jdoc_num(&d, m[0], &x) == 0 && x == 0.7);
	ck_assert_int_eq(jdoc_int(&d, m[0], &v), -1);
	ck_assert(jdoc_int(&d, m[1], &v) == 0 && v == INT64_MIN);
	ck_assert(jdoc_num(&d, m[1], &x) == 0 && x == (double)INT64_MIN);
	jdoc_free(&d);
	/* A NUL byte jansson skips. */
	ck_assert(jdoc_as_jansson("{\"n\":1\0}", 8, 1));
	ck_assert(!jdoc_as_jansson("{\"n\":\"a\0\"}", 10, 1));
	/* Large: tokens allocated to fit; jansson's depth limit. */
	buf_addstr(&b, "[");
	for (i = 0; i < 5000; i++)
		buf_printf(&b, "%s{\"k\":%zu}", i != 0 ? "," : "", i);
	buf_addstr(&b, "]");
	ck_assert_int_eq(jdoc_load(&d, b.data, b.len, JDOC_FULL | JDOC_NODUP),
	    0);
	ck_assert_int_eq(jdoc_size(&d, 0), 5000);
	for (i = 0, k = 1; i < 4999; i++)
		k = jdoc_next(&d, k);
	ck_assert(jdoc_int(&d, jdoc_get(&d, k, "k"), &v) == 0 && v == 4999);
	jdoc_free(&d);
	ck_assert_int_eq(jdoc_parse(&d, b.data, b.len), -1);
	/* Values up to JDOC_DEPTH deep, also in a large text; jansson goes
	 * deeper (2048), where jsmn's cost would grow with the depth. */
	for (len = JDOC_DEPTH - 2; len <= 2000; len++) {
		if (len == JDOC_DEPTH + 1)
			len = 2000;
		buf_reset(&b);
		for (i = 0; i < len; i++)
			buf_addstr(&b, "[");
		for (i = 0; i < 200; i++)
			buf_addstr(&b, "1,");
		buf_addstr(&b, "1");
		for (i = 0; i < len; i++)
			buf_addstr(&b, "]");
		j = json_loadb(b.data, b.len, 0, NULL);
		ck_assert_ptr_nonnull(j);
		json_decref(j);
		ck_assert_int_eq(jdoc_load(&d, b.data, b.len, JDOC_FULL),
		    len < JDOC_DEPTH ? 0 : -1);
		jdoc_free(&d);
	}
	buf_free(&b);
}
END_TEST

static Suite *
jload_suite(void)
{
	Suite *s = suite_create("jload");
	TCase *tc = tcase_create("decode");

	tcase_add_test(tc, test_agrees_with_jansson);
	tcase_add_test(tc, test_large_document);
	tcase_add_test(tc, test_dump_and_duplicates);
	tcase_add_test(tc, test_jwrite);
	tcase_add_test(tc, test_recorded_replies);
	tcase_add_test(tc, test_jdoc_full);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(jload_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
