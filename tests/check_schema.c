/*
 * check_schema.c: JSON Schema validation of structured replies: every
 * keyword valid and invalid with the exact text a model would read, paths
 * into nested values, $ref (recursive and cyclic), replies as text, and
 * schemas that must not compile.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static struct schema *
compile_ok(const char *text)
{
	struct schema *s;
	char *cause = NULL;

	s = schema_compile(text, &cause);
	ck_assert_msg(s != NULL, "%s: %s", text, cause ? cause : "?");
	ck_assert_ptr_null(cause);
	return s;
}

/* The compile error for text, which must not compile (free()). */
static char *
compile_fail(const char *text)
{
	struct schema *s;
	char *cause = NULL;

	s = schema_compile(text, &cause);
	ck_assert_msg(s == NULL, "compiled: %s", text);
	ck_assert_ptr_nonnull(cause);
	return cause;
}

/* Validate instance text; returns the error list, "" when valid. */
static char *
run(const char *schema, const char *instance, int max, int *n)
{
	struct schema *s = compile_ok(schema);
	json_error_t jerr;
	json_t *v;
	char *errors = (char *)1; /* must be set, even when valid */

	v = json_loads(instance, JSON_DECODE_ANY, &jerr);
	ck_assert_msg(v != NULL, "test instance %s: %s", instance, jerr.text);
	*n = schema_validate(s, v, &errors, max);
	json_decref(v);
	schema_free(s);
	if (*n == 0) {
		ck_assert_ptr_null(errors);
		return strdup("");
	}
	ck_assert_ptr_nonnull(errors);
	return errors;
}

static int
lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

#define VALID(schema, inst) \
	do { \
		int n_; \
		char *e_ = run(schema, inst, 0, &n_); \
		ck_assert_msg(n_ == 0, "%s against %s: %s", inst, schema, e_); \
		free(e_); \
	} while (0)

/* Invalid with exactly these error lines (each ending in "\n"). */
#define INVALID(schema, inst, want) \
	do { \
		int n_; \
		char *e_ = run(schema, inst, 0, &n_); \
		ck_assert_str_eq(e_, want); \
		ck_assert_int_eq(n_, lines(want)); \
		free(e_); \
	} while (0)

START_TEST(test_type)
{
	VALID("{\"type\":\"string\"}", "\"x\"");
	VALID("{\"type\":\"number\"}", "1.5");
	VALID("{\"type\":\"number\"}", "2");
	VALID("{\"type\":\"integer\"}", "2");
	VALID("{\"type\":\"integer\"}", "2.0"); /* zero fraction */
	VALID("{\"type\":\"boolean\"}", "false");
	VALID("{\"type\":\"null\"}", "null");
	VALID("{\"type\":\"object\"}", "{}");
	VALID("{\"type\":\"array\"}", "[]");
	VALID("{\"type\":[\"string\",\"null\"]}", "null");
	INVALID("{\"type\":\"integer\"}", "2.5",
	    "$: expected integer, got number\n");
	INVALID("{\"type\":\"string\"}", "7",
	    "$: expected string, got integer\n");
	INVALID("{\"type\":\"object\"}", "[1]",
	    "$: expected object, got array\n");
	INVALID("{\"type\":\"array\"}", "true",
	    "$: expected array, got boolean\n");
	INVALID("{\"type\":\"boolean\"}", "null",
	    "$: expected boolean, got null\n");
	INVALID("{\"type\":\"number\"}", "\"1\"",
	    "$: expected number, got string\n");
	INVALID("{\"type\":[\"string\",\"null\"]}", "1",
	    "$: expected string or null, got integer\n");
	INVALID("{\"type\":[\"string\",\"number\",\"null\"]}", "{}",
	    "$: expected string, number or null, got object\n");
	/* The type error alone: the other keywords cannot apply. */
	INVALID("{\"type\":\"string\",\"minLength\":3,\"enum\":[\"abc\"]}", "1",
	    "$: expected string, got integer\n");
}
END_TEST

START_TEST(test_properties_nested)
{
	const char *sch =
	    "{\"type\":\"object\",\"properties\":{"
	    "\"name\":{\"type\":\"string\"},"
	    "\"age\":{\"type\":\"integer\"},"
	    "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
	    "\"properties\":{\"name\":{\"type\":\"string\"}},"
	    "\"required\":[\"name\"]}},"
	    "\"odd key\":{\"type\":\"string\"}},"
	    "\"required\":[\"name\"]}";

	VALID(sch, "{\"name\":\"a\",\"age\":3,\"items\":[{\"name\":\"x\"}]}");
	VALID(sch, "{\"name\":\"a\",\"unlisted\":1}");
	INVALID(sch, "{\"age\":\"3\"}",
	    "$: missing required property 'name'\n"
	    "$.age: expected integer, got string\n");
	INVALID(sch,
	    "{\"name\":\"a\",\"items\":[{\"name\":\"x\"},{\"name\":1},"
	    "{\"name\":2},{}]}",
	    "$.items[1].name: expected string, got integer\n"
	    "$.items[2].name: expected string, got integer\n"
	    "$.items[3]: missing required property 'name'\n");
	INVALID(sch, "{\"name\":\"a\",\"odd key\":1}",
	    "$[\"odd key\"]: expected string, got integer\n");
	/* required and properties say nothing about non-objects. */
	VALID("{\"required\":[\"a\"],\"properties\":{\"a\":false}}", "[1]");
}
END_TEST

START_TEST(test_additional_properties)
{
	const char *closed = "{\"properties\":{\"a\":{}},"
	                     "\"additionalProperties\":false}";
	const char *typed = "{\"properties\":{\"a\":{}},"
	                    "\"additionalProperties\":{\"type\":\"integer\"}}";
	const char *pat =
	    "{\"properties\":{\"a\":{}},\"patternProperties\":"
	    "{\"^x-\":{\"type\":\"string\"}},\"additionalProperties\":false}";

	VALID(closed, "{\"a\":1}");
	INVALID(closed, "{\"a\":1,\"extra\":2,\"more\":3}",
	    "$.extra: additional property not allowed\n"
	    "$.more: additional property not allowed\n");
	VALID(typed, "{\"a\":\"s\",\"b\":2}");
	INVALID(typed, "{\"a\":1,\"extra\":\"s\"}",
	    "$.extra: expected integer, got string\n");
	VALID(pat, "{\"a\":1,\"x-one\":\"s\"}");
	INVALID(pat, "{\"x-one\":1,\"y\":1}",
	    "$[\"x-one\"]: expected string, got integer\n"
	    "$.y: additional property not allowed\n");
	VALID("{\"additionalProperties\":true}", "{\"q\":1}");
}
END_TEST

START_TEST(test_items)
{
	const char *tuple = "{\"prefixItems\":[{\"type\":\"string\"},"
	                    "{\"type\":\"integer\"}],\"items\":false}";
	const char *tuple_old = "{\"items\":[{\"type\":\"string\"}],"
	                        "\"additionalItems\":{\"type\":\"boolean\"}}";

	VALID("{\"items\":{\"type\":\"integer\"}}", "[1,2,3]");
	INVALID("{\"items\":{\"type\":\"integer\"}}", "[1,\"2\",3.5]",
	    "$[1]: expected integer, got string\n"
	    "$[2]: expected integer, got number\n");
	VALID(tuple, "[\"a\",1]");
	VALID(tuple, "[\"a\"]");
	INVALID(tuple, "[1,1,true]",
	    "$[0]: expected string, got integer\n"
	    "$[2]: additional item not allowed\n");
	VALID(tuple_old, "[\"a\",true,false]");
	INVALID(tuple_old, "[\"a\",1]",
	    "$[1]: expected boolean, got integer\n");
	INVALID("{\"items\":false}", "[1]",
	    "$[0]: not allowed by the schema\n");
}
END_TEST

START_TEST(test_enum_const)
{
	const char *kind = "{\"properties\":{\"kind\":"
	                   "{\"enum\":[\"a\",\"b\"]}}}";

	VALID(kind, "{\"kind\":\"b\"}");
	INVALID(kind, "{\"kind\":\"c\"}",
	    "$.kind: must be one of \"a\", \"b\"\n");
	VALID("{\"enum\":[1,null,{\"x\":[1]}]}", "null");
	VALID("{\"enum\":[1,null,{\"x\":[1]}]}", "{\"x\":[1.0]}");
	INVALID("{\"enum\":[0.1,2,true]}", "3",
	    "$: must be one of 0.1, 2, true\n");
	VALID("{\"const\":1}", "1.0"); /* 1 and 1.0 are equal */
	VALID("{\"const\":1.0}", "1");
	VALID("{\"const\":{\"a\":[1,\"x\"],\"b\":null}}",
	    "{\"b\":null,\"a\":[1.0,\"x\"]}");
	VALID("{\"const\":null}", "null");
	INVALID("{\"const\":null}", "0", "$: must be null\n");
	INVALID("{\"const\":\"circle\"}", "\"square\"",
	    "$: must be \"circle\"\n");
	INVALID("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":2}",
	    "$: must be {\"a\":1}\n");
	INVALID("{\"const\":[1,2]}", "[2,1]", "$: must be [1,2]\n");
	INVALID("{\"const\":1}", "true", "$: must be 1\n");
}
END_TEST

START_TEST(test_numbers)
{
	const char *range = "{\"minimum\":0,\"maximum\":10}";
	const char *open = "{\"exclusiveMinimum\":0,\"exclusiveMaximum\":1.5}";

	VALID(range, "0");
	VALID(range, "10.0");
	VALID(range, "\"not a number\""); /* applies to numbers only */
	INVALID(range, "-1", "$: must be >= 0, got -1\n");
	INVALID(range, "10.5", "$: must be <= 10, got 10.5\n");
	VALID(open, "0.1");
	INVALID(open, "0", "$: must be > 0, got 0\n");
	INVALID(open, "1.5", "$: must be < 1.5, got 1.5\n");
	/* Draft 4's boolean form. */
	INVALID("{\"minimum\":5,\"exclusiveMinimum\":true}", "5",
	    "$: must be > 5, got 5\n");
	VALID("{\"minimum\":5,\"exclusiveMinimum\":false}", "5");
	VALID("{\"multipleOf\":5}", "25");
	VALID("{\"multipleOf\":0.01}", "19.99");
	INVALID("{\"multipleOf\":5}", "7",
	    "$: must be a multiple of 5, got 7\n");
	INVALID("{\"multipleOf\":0.5}", "0.3",
	    "$: must be a multiple of 0.5, got 0.3\n");
	VALID("{\"maximum\":9007199254740993}", "9007199254740993");
	INVALID("{\"maximum\":9007199254740992}", "9007199254740993",
	    "$: must be <= 9007199254740992, got 9007199254740993\n");
}
END_TEST

START_TEST(test_string_length)
{
	const char *sch = "{\"minLength\":2,\"maxLength\":4}";

	VALID(sch, "\"ab\"");
	/* 4 code points in 7 bytes. */
	VALID(sch, "\"h\xc3\xa9\xc3\xa9\xc3\xa9\"");
	VALID(sch, "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\""); /* 2 emoji */
	VALID(sch, "\"\\u00e9\\u00e9\"");
	INVALID(sch, "\"a\"", "$: expected at least 2 characters, got 1\n");
	INVALID(sch, "\"h\xc3\xa9llo\"",
	    "$: expected at most 4 characters, got 5\n");
	INVALID("{\"minLength\":1}", "\"\"",
	    "$: expected at least 1 character, got 0\n");
}
END_TEST

START_TEST(test_array_counts)
{
	const char *tags = "{\"properties\":{\"tags\":{\"type\":\"array\","
	                   "\"minItems\":1,\"maxItems\":3}}}";

	VALID(tags, "{\"tags\":[1]}");
	VALID(tags, "{\"tags\":[1,2,3]}");
	INVALID(tags, "{\"tags\":[1,2,3,4,5]}",
	    "$.tags: expected at most 3 items, got 5\n");
	INVALID(tags, "{\"tags\":[]}",
	    "$.tags: expected at least 1 item, got 0\n");
	VALID("{\"uniqueItems\":true}", "[1,\"1\",[1],{\"a\":1}]");
	INVALID("{\"uniqueItems\":true}", "[1,2,1.0]",
	    "$: items must be unique (items 0 and 2 are equal)\n");
	VALID("{\"uniqueItems\":false}", "[1,1]");
	VALID("{\"minProperties\":1,\"maxProperties\":2}", "{\"a\":1}");
	INVALID("{\"minProperties\":1}", "{}",
	    "$: expected at least 1 property, got 0\n");
	INVALID("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}",
	    "$: expected at most 1 property, got 2\n");
}
END_TEST

START_TEST(test_pattern)
{
	const char *email = "{\"properties\":{\"email\":{\"type\":\"string\","
	                    "\"pattern\":\"^[^@]+@[^@]+$\"}}}";

	VALID(email, "{\"email\":\"a@b.c\"}");
	INVALID(email, "{\"email\":\"a@b@c\"}",
	    "$.email: does not match pattern '^[^@]+@[^@]+$'\n");
	/* Unanchored, as JSON Schema searches. */
	VALID("{\"pattern\":\"b+\"}", "\"abbbc\"");
	INVALID("{\"pattern\":\"^b\"}", "\"abc\"",
	    "$: does not match pattern '^b'\n");
	VALID("{\"pattern\":\"x\"}", "5"); /* strings only */
	/* ECMA-262 escapes that POSIX spells differently. */
	VALID("{\"pattern\":\"^\\\\d{4}-\\\\d{2}-\\\\d{2}$\"}",
	    "\"2024-01-31\"");
	INVALID("{\"pattern\":\"^\\\\d+$\"}", "\"12d\"",
	    "$: does not match pattern '^\\d+$'\n");
	VALID("{\"pattern\":\"^[\\\\w.-]+$\"}", "\"a_b.c-d\"");
	INVALID("{\"pattern\":\"^[\\\\w.-]+$\"}", "\"a b\"",
	    "$: does not match pattern '^[\\w.-]+$'\n");
	VALID("{\"pattern\":\"^\\\\S+\\\\s\\\\S+$\"}", "\"a b\"");
	VALID("{\"pattern\":\"^(?:ab)+$\"}", "\"abab\"");
	VALID("{\"pattern\":\"^[\\\\]\\\\-]+$\"}", "\"]-]\"");
	VALID("{\"pattern\":\"^a\\\\.b$\"}", "\"a.b\"");
	INVALID("{\"pattern\":\"^a\\\\.b$\"}", "\"axb\"",
	    "$: does not match pattern '^a\\.b$'\n");
	/* "." is one code point, not one byte. */
	VALID("{\"pattern\":\"^.{2}$\"}", "\"\xc3\xa9\xe2\x82\xac\"");
	VALID("{\"pattern\":\"^\\\\u00e9$\"}", "\"\xc3\xa9\"");
	VALID("{\"pattern\":\"^a+?$\"}", "\"aaa\"");
	INVALID("{\"pattern\":\"^a+?$\"}", "\"\"",
	    "$: does not match pattern '^a+?$'\n");
	VALID("{\"pattern\":\"^[^]b$\"}", "\"xb\"");
	/* ECMA-262 lookahead and classes inside brackets. */
	VALID("{\"pattern\":\"^(?=.*\\\\d)[a-z\\\\d]+$\"}", "\"abc1\"");
	INVALID("{\"pattern\":\"^(?=.*\\\\d)[a-z\\\\d]+$\"}", "\"abc\"",
	    "$: does not match pattern '^(?=.*\\d)[a-z\\d]+$'\n");
	VALID("{\"pattern\":\"^[\\\\D]+$\"}", "\"ab\"");
	/* "$" is the end, not the end or before a final newline. */
	INVALID("{\"pattern\":\"^a$\"}", "\"a\\n\"",
	    "$: does not match pattern '^a$'\n");
	/* Catastrophic backtracking stops the run instead of the daemon. */
	INVALID("{\"items\":{\"pattern\":\"^(a|a)*$\"}}",
	    "[\"ok\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"]",
	    "$[1]: pattern too costly to match\n");
}
END_TEST

START_TEST(test_combinators)
{
	const char *nullable = "{\"anyOf\":[{\"type\":\"string\"},"
	                       "{\"type\":\"null\"}]}";
	const char *one = "{\"oneOf\":[{\"type\":\"integer\"},"
	                  "{\"minimum\":2}]}";

	VALID(nullable, "null");
	VALID(nullable, "\"s\"");
	INVALID(nullable, "1",
	    "$: must match at least one schema in anyOf (anyOf[0]: expected "
	    "string, got integer; anyOf[1]: expected null, got integer)\n");
	INVALID("{\"properties\":{\"p\":{\"anyOf\":[{\"required\":[\"a\"]},"
	        "{\"properties\":{\"b\":{\"type\":\"string\"}}}]}}}",
	    "{\"p\":{\"b\":1}}",
	    "$.p: must match at least one schema in anyOf (anyOf[0]: missing "
	    "required property 'a'; anyOf[1]: $.p.b: expected string, got "
	    "integer)\n");
	VALID(one, "1");
	VALID(one, "2.5");
	INVALID(one, "3",
	    "$: must match exactly one schema in oneOf "
	    "(matched 2)\n");
	INVALID(one, "1.5",
	    "$: must match exactly one schema in oneOf "
	    "(matched 0; oneOf[0]: expected integer, got number; oneOf[1]: "
	    "must be >= 2, got 1.5)\n");
	VALID("{\"allOf\":[{\"minimum\":1},{\"maximum\":3}]}", "2");
	INVALID("{\"allOf\":[{\"minimum\":5},{\"multipleOf\":2}]}", "3",
	    "$: must be >= 5, got 3\n"
	    "$: must be a multiple of 2, got 3\n");
	VALID("{\"not\":{\"type\":\"null\"}}", "0");
	INVALID("{\"not\":{\"type\":\"null\"}}", "null",
	    "$: must not match the schema in 'not'\n");
}
END_TEST

START_TEST(test_ref)
{
	const char *defs = "{\"$defs\":{\"pos\":{\"type\":\"integer\","
	                   "\"minimum\":1}},\"properties\":{\"n\":{\"$ref\":"
	                   "\"#/$defs/pos\"}}}";
	const char *old = "{\"definitions\":{\"s\":{\"type\":\"string\"}},"
	                  "\"items\":{\"$ref\":\"#/definitions/s\"}}";
	const char *esc =
	    "{\"$defs\":{\"a/b\":{\"type\":\"string\"},"
	    "\"c~d\":{\"type\":\"null\"},\"e f\":{\"const\":1}},"
	    "\"prefixItems\":[{\"$ref\":\"#/$defs/a~1b\"},"
	    "{\"$ref\":\"#/$defs/c~0d\"},{\"$ref\":\"#/$defs/e%20f\"}]}";
	const char *sib = "{\"$defs\":{\"i\":{\"type\":\"integer\"}},"
	                  "\"$ref\":\"#/$defs/i\",\"maximum\":3}";

	VALID(defs, "{\"n\":1}");
	INVALID(defs, "{\"n\":0}", "$.n: must be >= 1, got 0\n");
	INVALID(defs, "{\"n\":\"x\"}", "$.n: expected integer, got string\n");
	VALID(old, "[\"a\"]");
	INVALID(old, "[\"a\",2]", "$[1]: expected string, got integer\n");
	VALID(esc, "[\"s\",null,1]");
	INVALID(esc, "[1,1,2]",
	    "$[0]: expected string, got integer\n"
	    "$[1]: expected null, got integer\n"
	    "$[2]: must be 1\n");
	/* $ref beside other keywords: both apply. */
	INVALID(sib, "4", "$: must be <= 3, got 4\n");
	INVALID(sib, "\"x\"", "$: expected integer, got string\n");
	/* A schema kept under a keyword this file does not know. */
	VALID("{\"x-lib\":{\"t\":{\"type\":\"string\"}},"
	      "\"$ref\":\"#/x-lib/t\"}",
	    "\"s\"");
	INVALID("{\"x-lib\":{\"t\":{\"type\":\"string\"}},"
	        "\"$ref\":\"#/x-lib/t\"}",
	    "1", "$: expected string, got integer\n");
	/* Into an array. */
	INVALID("{\"prefixItems\":[{\"type\":\"null\"}],\"items\":"
	        "{\"$ref\":\"#/prefixItems/0\"}}",
	    "[null,1]", "$[1]: expected null, got integer\n");
}
END_TEST

START_TEST(test_ref_recursive)
{
	const char *tree =
	    "{\"$ref\":\"#/$defs/node\",\"$defs\":{\"node\":{"
	    "\"type\":\"object\",\"required\":[\"value\"],"
	    "\"properties\":{\"value\":{\"type\":\"integer\"},"
	    "\"children\":{\"type\":\"array\",\"items\":{\"$ref\":"
	    "\"#/$defs/node\"}}},\"additionalProperties\":false}}}";
	const char *list =
	    "{\"type\":\"object\",\"properties\":{\"next\":"
	    "{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"null\"}]}}}";
	struct schema *s = compile_ok(list);
	json_t *v, *inner;
	char *errors;
	int i;

	VALID(tree, "{\"value\":1}");
	VALID(tree,
	    "{\"value\":1,\"children\":[{\"value\":2,\"children\":"
	    "[{\"value\":3},{\"value\":4,\"children\":[]}]}]}");
	INVALID(tree,
	    "{\"value\":1,\"children\":[{\"value\":2,\"children\":"
	    "[{\"value\":3},{\"value\":\"4\",\"x\":0},{}]}]}",
	    "$.children[0].children[1].value: expected integer, got string\n"
	    "$.children[0].children[1].x: additional property not allowed\n"
	    "$.children[0].children[2]: missing required property 'value'\n");

	/* Deeper than the $ref limit: recursion that descends is fine. */
	v = json_null();
	for (i = 0; i < 200; i++) {
		inner = json_object();
		json_object_set_new(inner, "next", v);
		v = inner;
	}
	ck_assert_int_eq(schema_validate(s, v, &errors, 10), 0);
	ck_assert_ptr_null(errors);
	json_decref(v);
	schema_free(s);

	/* Nesting jansson's parser would refuse, built by hand: checked to
	 * a depth, then one error rather than a blown stack. */
	s = compile_ok("{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}");
	v = json_array();
	for (i = 0; i < 1000; i++) {
		inner = json_array();
		json_array_append_new(inner, v);
		v = inner;
	}
	ck_assert_int_eq(schema_validate(s, v, NULL, 0), 0);
	for (i = 0; i < 3000; i++) {
		inner = json_array();
		json_array_append_new(inner, v);
		v = inner;
	}
	ck_assert_int_eq(schema_validate(s, v, &errors, 0), 1);
	ck_assert_msg(strstr(errors, ": value nested too deeply to check\n") !=
	        NULL,
	    "%s", errors);
	free(errors);
	json_decref(v);
	schema_free(s);
}
END_TEST

START_TEST(test_ref_cyclic)
{
	/* Pure cycles never reach a value: they must end, with an error. */
	INVALID("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},"
	        "\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}",
	    "1", "$: schema recursion too deep (cyclic $ref?)\n");
	INVALID("{\"$ref\":\"#\"}", "{}",
	    "$: schema recursion too deep (cyclic $ref?)\n");
	INVALID("{\"properties\":{\"a\":{\"$ref\":\"#/properties/a\"}}}",
	    "{\"a\":1}", "$.a: schema recursion too deep (cyclic $ref?)\n");
	/* Branches at every level: 2^64 paths unless the first abort ends
	 * the run. */
	INVALID("{\"anyOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#\"}]}", "1",
	    "$: schema recursion too deep (cyclic $ref?)\n");
	INVALID("{\"oneOf\":[{\"$ref\":\"#\"},{\"not\":{\"$ref\":\"#\"}}]}",
	    "1", "$: schema recursion too deep (cyclic $ref?)\n");
}
END_TEST

START_TEST(test_step_budget)
{
	char sch[8192];
	size_t len;
	int i;

	/* Acyclic but exponential: 2^40 paths through 40 definitions. */
	len = (size_t)snprintf(sch, sizeof sch,
	    "{\"$ref\":\"#/$defs/d0\","
	    "\"$defs\":{");
	for (i = 0; i < 40; i++)
		len += (size_t)snprintf(sch + len, sizeof sch - len,
		    "\"d%d\":{\"anyOf\":[{\"$ref\":\"#/$defs/d%d\"},"
		    "{\"$ref\":\"#/$defs/d%d\"}]},",
		    i, i + 1, i + 1);
	snprintf(sch + len, sizeof sch - len, "\"d40\":false}}");
	INVALID(sch, "1", "$: schema too complex to evaluate\n");
}
END_TEST

START_TEST(test_boolean_schemas)
{
	VALID("true", "{\"anything\":[1]}");
	VALID("{}", "null");
	INVALID("false", "1", "$: not allowed by the schema\n");
	VALID("{\"properties\":{\"x\":false}}", "{\"y\":1}");
	INVALID("{\"properties\":{\"x\":false}}", "{\"x\":1}",
	    "$.x: not allowed by the schema\n");
	VALID("{\"anyOf\":[false,true]}", "1");
	INVALID("{\"not\":true}", "1",
	    "$: must not match the schema in 'not'\n");
}
END_TEST

START_TEST(test_unknown_keywords)
{
	VALID("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
	      "\"$id\":\"x\",\"title\":\"T\",\"description\":\"D\","
	      "\"format\":\"email\",\"examples\":[1],\"x-whatever\":{},"
	      "\"type\":\"string\"}",
	    "\"not an email\"");
}
END_TEST

START_TEST(test_text)
{
	struct schema *s = compile_ok(
	    "{\"type\":\"object\",\"required\":"
	    "[\"a\"],\"properties\":{\"a\":{\"type\":\"integer\"}}}");
	char *errors = NULL;

	ck_assert_int_eq(schema_validate_text(s, "{\"a\":1}", &errors, 5), 0);
	ck_assert_ptr_null(errors);
	ck_assert_int_eq(schema_validate_text(s, " \n\t{\"a\":1}\n\n", &errors,
	                     5),
	    0);
	ck_assert_int_eq(schema_validate_text(s, "```json\n{\"a\": 1}\n```\n",
	                     &errors, 5),
	    0);
	ck_assert_int_eq(schema_validate_text(s, "\n```\n{\"a\": 1}\n```",
	                     &errors, 5),
	    0);
	ck_assert_ptr_null(errors);

	ck_assert_int_eq(schema_validate_text(s, "```json\n{\"a\": \"1\"}\n```",
	                     &errors, 5),
	    1);
	ck_assert_str_eq(errors, "$.a: expected integer, got string\n");
	free(errors);

	ck_assert_int_eq(schema_validate_text(s, "Sure! Here it is: {\"a\":1}",
	                     &errors, 5),
	    1);
	ck_assert_msg(strncmp(errors, "$: not valid JSON: ", 19) == 0 &&
	        strchr(errors, '\n') == errors + strlen(errors) - 1,
	    "%s", errors);
	free(errors);
	ck_assert_int_eq(schema_validate_text(s, "{\"a\":1", &errors, 5), 1);
	ck_assert_msg(strncmp(errors, "$: not valid JSON: ", 19) == 0, "%s",
	    errors);
	free(errors);
	ck_assert_int_eq(schema_validate_text(s, "", &errors, 5), 1);
	ck_assert_msg(strncmp(errors, "$: not valid JSON: ", 19) == 0, "%s",
	    errors);
	free(errors);
	ck_assert_int_eq(schema_validate_text(s, "{\"a\":1} trailing", NULL, 5),
	    1);
	schema_free(s);

	/* A scalar reply is JSON too. */
	s = compile_ok("{\"type\":\"integer\"}");
	ck_assert_int_eq(schema_validate_text(s, "42", NULL, 5), 0);
	schema_free(s);
}
END_TEST

START_TEST(test_max_errors)
{
	const char *sch = "{\"items\":{\"type\":\"string\"}}";
	const char *inst = "[1,2,3,4,5]";
	int n;
	char *e;

	e = run(sch, inst, 2, &n);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(e,
	    "$[0]: expected string, got integer\n"
	    "$[1]: expected string, got integer\n");
	free(e);
	e = run(sch, inst, 1, &n);
	ck_assert_int_eq(n, 1);
	free(e);
	e = run(sch, inst, 0, &n); /* no cap */
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(lines(e), 5);
	free(e);
}
END_TEST

START_TEST(test_count_only)
{
	struct schema *s = compile_ok("{\"required\":[\"a\",\"b\"]}");
	json_t *v = json_object();

	ck_assert_int_eq(schema_validate(s, v, NULL, 0), 2);
	json_decref(v);
	schema_free(s);
}
END_TEST

START_TEST(test_invalid_schemas)
{
	static const struct {
		const char *schema;
		const char *cause;
	} cases[] = {
		{ "{\"type\":", NULL },
		{ "{\"properties\":{\"e\":{\"pattern\":\"(ab\"}}}",
		    "schema at #/properties/e/pattern: pattern '(ab' is not a "
		    "valid regular expression: " },
		{ "{\"properties\":{\"x\":{\"$ref\":\"#/$defs/missing\"}}}",
		    "schema at #/properties/x/$ref: $ref '#/$defs/missing' "
		    "does not resolve" },
		{ "{\"$ref\":\"https://example.com/s.json\"}",
		    "schema at #/$ref: $ref must be a local reference such as "
		    "'#/$defs/name', not 'https://example.com/s.json'" },
		{ "{\"$ref\":\"#anchor\"}",
		    "schema at #/$ref: $ref '#anchor' does not resolve" },
		{ "{\"type\":\"text\"}",
		    "schema at #/type: unknown type 'text'" },
		{ "{\"type\":[]}", "schema at #/type: type must be " },
		{ "{\"minLength\":-1}",
		    "schema at #/minLength: minLength must be a non-negative "
		    "integer" },
		{ "{\"maxItems\":\"3\"}", "schema at #/maxItems: maxItems " },
		{ "{\"minimum\":\"0\"}",
		    "schema at #/minimum: minimum must be a number" },
		{ "{\"multipleOf\":0}",
		    "schema at #/multipleOf: multipleOf "
		    "must be a positive number" },
		{ "{\"required\":[1]}",
		    "schema at #/required: required must "
		    "be an array of strings" },
		{ "{\"anyOf\":[]}",
		    "schema at #/anyOf: anyOf must be a "
		    "non-empty array of schemas" },
		{ "{\"allOf\":[{},3]}",
		    "schema at #/allOf/1: a schema must be an object or a "
		    "boolean" },
		{ "{\"$defs\":{\"a/b\":{\"type\":[\"string\",1]}}}",
		    "schema at #/$defs/a~1b/type: unknown type "
		    "(not a string)" },
		{ "{\"items\":{\"items\":{\"pattern\":\"[a\"}}}",
		    "schema at #/items/items/pattern: pattern '[a' is not "
		    "a valid regular expression: missing terminating ] for "
		    "character class at offset 2" },
		{ "{\"pattern\":\"a{2,1}\"}",
		    "schema at #/pattern: pattern "
		    "'a{2,1}' is not a valid regular expression: numbers out "
		    "of order" },
		{ "{\"pattern\":\"a)+++\"}",
		    "schema at #/pattern: pattern "
		    "'a)+++' is not a valid regular expression: unmatched "
		    "closing parenthesis" },
		{ "3", "schema at #: a schema must be an object or a boolean" },
	};
	size_t i;
	char *cause;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cause = compile_fail(cases[i].schema);
		if (cases[i].cause == NULL)
			ck_assert_msg(strncmp(cause,
			                  "schema is not valid JSON: ", 26) ==
			        0,
			    "%s", cause);
		else
			ck_assert_msg(strncmp(cause, cases[i].cause,
			                  strlen(cases[i].cause)) == 0,
			    "%s: got '%s'", cases[i].schema, cause);
		free(cause);
	}
	/* cause may be NULL. */
	ck_assert_ptr_null(schema_compile("{", NULL));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("schema");
	TCase *tc = tcase_create("keywords");
	TCase *tr = tcase_create("refs");
	TCase *tt = tcase_create("api");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_type);
	tcase_add_test(tc, test_properties_nested);
	tcase_add_test(tc, test_additional_properties);
	tcase_add_test(tc, test_items);
	tcase_add_test(tc, test_enum_const);
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_string_length);
	tcase_add_test(tc, test_array_counts);
	tcase_add_test(tc, test_pattern);
	tcase_add_test(tc, test_combinators);
	tcase_add_test(tc, test_boolean_schemas);
	tcase_add_test(tc, test_unknown_keywords);
	suite_add_tcase(s, tc);
	tcase_add_test(tr, test_ref);
	tcase_add_test(tr, test_ref_recursive);
	tcase_add_test(tr, test_ref_cyclic);
	tcase_add_test(tr, test_step_budget);
	tcase_set_timeout(tr, 30); /* sanitizer builds are slow */
	suite_add_tcase(s, tr);
	tcase_add_test(tt, test_text);
	tcase_add_test(tt, test_max_errors);
	tcase_add_test(tt, test_count_only);
	tcase_add_test(tt, test_invalid_schemas);
	suite_add_tcase(s, tt);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
