/*
 * schema.c: JSON Schema validation for structured output, the subset that
 * callers' response schemas use. A schema is compiled once into a graph of
 * nodes (regexes compiled in place, $ref resolved to pointers, so cycles
 * are edges, not copies); every reply is then checked against it, and each
 * problem becomes a "PATH: message" line written for the model to read and
 * fix on its next attempt. Keywords this file does not know are ignored,
 * as JSON Schema says.
 */
#include <sys/types.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "llmgated.h"

#ifndef nitems
#define nitems(a) (sizeof (a) / sizeof (a)[0])
#endif

#define SCHEMA_MAX_REFS		64	/* $refs in a row, one value */
#define SCHEMA_MAX_DEPTH	4096	/* nested checks (the stack) */
#define SCHEMA_MAX_STEPS	(1024 * 1024)	/* checks per validation */
#define SCHEMA_MAX_QUOTE	240	/* bytes quoted of a branch */
#define SCHEMA_RE_MAX_NEST	64	/* parentheses in a pattern */
#define SCHEMA_RE_MATCH_LIMIT	100000	/* PCRE2 backtracks per match */
#define SCHEMA_RE_HEAP_KIB	8192	/* PCRE2 memory per match */
#define SCHEMA_RE_MAX_MS	250	/* matching, per validation */

#define SCHEMA_PLURAL(n, one, many)	((n) == 1 ? (one) : (many))

enum {
	SCHEMA_T_NULL = 0x01,
	SCHEMA_T_BOOLEAN = 0x02,
	SCHEMA_T_OBJECT = 0x04,
	SCHEMA_T_ARRAY = 0x08,
	SCHEMA_T_NUMBER = 0x10,
	SCHEMA_T_INTEGER = 0x20,
	SCHEMA_T_STRING = 0x40,
};

static const struct {
	const char *name;
	unsigned bit;
} schema_types[] = {
	{ "null", SCHEMA_T_NULL },
	{ "boolean", SCHEMA_T_BOOLEAN },
	{ "object", SCHEMA_T_OBJECT },
	{ "array", SCHEMA_T_ARRAY },
	{ "number", SCHEMA_T_NUMBER },
	{ "integer", SCHEMA_T_INTEGER },
	{ "string", SCHEMA_T_STRING },
};

struct schema_re {
	const char *src;	/* as the schema wrote it, for messages */
	pcre2_code *code;	/* NULL until compiled */
};

struct schema_list {
	struct schema_node **v;
	size_t n;
};

struct schema_prop {
	const char *name;
	struct schema_node *node;
};

struct schema_patprop {
	struct schema_re re;
	struct schema_node *node;
};

struct schema_node {
	const json_t *json;	/* borrowed from schema->root */
	int boolean;		/* 0 false, 1 true, -1 an object schema */

	unsigned types;		/* 0: any */
	const json_t *type;	/* for "expected ..." */
	const json_t *enumv;
	const json_t *constv;

	const json_t *minimum, *maximum, *xminimum, *xmaximum, *multiple;
	long long min_len, max_len;	/* -1: unset, for all counts */
	long long min_items, max_items;
	long long min_props, max_props;
	int unique;
	struct schema_re *pattern;

	const json_t *props_json;	/* "properties", for membership */
	struct schema_prop *props;
	size_t nprops;
	struct schema_patprop *patprops;
	size_t npatprops;
	struct schema_node *additional;
	const json_t *required;

	struct schema_list prefix;
	struct schema_node *items;	/* items after the prefix */

	struct schema_list all, any, one;
	struct schema_node *not;

	const char *ref;	/* as written */
	const json_t *ref_json;	/* what it points at */
	struct schema_node *target;
};

struct schema {
	json_t *root;
	struct schema_node *top;
	struct schema_node **nodes;	/* every node, to resolve and free */
	size_t nnodes;
	size_t cap;
};

/* Compile state: the JSON pointer being compiled, for error messages. */
struct schema_cc {
	struct schema *s;
	struct buf loc;
	char *cause;
};

/* Validation state shared by a whole run, branches included. */
struct schema_run {
	struct buf path;	/* "$.a[2]" of the value being checked */
	unsigned long steps;
	int refs;		/* $refs followed at this value */
	int depth;
	int aborted;		/* sticky: unwind everything */
	uint64_t re_us;		/* spent matching patterns */
	struct buf abort;	/* the run's one error when aborted */
};

/* Where errors go: the caller's list or a branch being tried. */
struct schema_errs {
	struct buf *out;	/* NULL: only count */
	int n;
	int max;		/* 0: no cap */
};

struct schema_kw {
	const char *name;
	int (*compile)(struct schema_cc *, struct schema_node *,
	    const struct schema_kw *, const json_t *);
	size_t off;		/* the node's field this keyword fills */
	size_t off2;		/* exclusive*: the inclusive bound */
};

static void schema_cc_error(struct schema_cc *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static void schema_err(struct schema_run *, struct schema_errs *,
    const char *, ...) __attribute__((format(printf, 3, 4)));
static struct schema_node *schema_node(struct schema_cc *, const json_t *);
static void schema_abort(struct schema_run *, const char *);
static void schema_check(struct schema_run *, struct schema_errs *,
    const struct schema_node *, const json_t *);

/* jansson's iterators take json_t * but do not modify the value. */
static json_t *
schema_unconst(const json_t *j)
{
	return (json_t *)(uintptr_t)j;
}

static int
schema_hex(const char *p, int digits, unsigned long *c)
{
	int i;

	*c = 0;
	for (i = 0; i < digits; i++) {
		if (!isxdigit((unsigned char)p[i]))
			return -1;
		*c = *c * 16 + (isdigit((unsigned char)p[i]) ? p[i] - '0' :
		    (tolower((unsigned char)p[i]) - 'a' + 10));
	}
	return 0;
}

/*
 * Patterns are ECMA-262 regular expressions, compiled with PCRE2 set as
 * close to ECMAScript as it goes: UTF-8, \uXXXX escapes, "[^]" for any
 * character, "$" only at the very end, ASCII \d \w \s. PCRE2 bounds what
 * a hostile pattern can cost: the compiled size, nesting, and the work and
 * memory of each match; a whole validation also stops matching after
 * SCHEMA_RE_MAX_MS of it.
 */
static pcre2_compile_context *schema_re_cc;
static pcre2_match_context *schema_re_mc;
static pcre2_match_data *schema_re_md;

static void
schema_re_init(void)
{
	if (schema_re_md != NULL)
		return;
	schema_re_cc = pcre2_compile_context_create(NULL);
	schema_re_mc = pcre2_match_context_create(NULL);
	schema_re_md = pcre2_match_data_create(1, NULL);
	if (schema_re_cc == NULL || schema_re_mc == NULL ||
	    schema_re_md == NULL)
		fatalx("out of memory");
	pcre2_set_parens_nest_limit(schema_re_cc, SCHEMA_RE_MAX_NEST);
	pcre2_set_match_limit(schema_re_mc, SCHEMA_RE_MATCH_LIMIT);
	pcre2_set_depth_limit(schema_re_mc, SCHEMA_RE_MATCH_LIMIT);
	pcre2_set_heap_limit(schema_re_mc, SCHEMA_RE_HEAP_KIB);
}

static int
schema_re_compile(struct schema_cc *cc, struct schema_re *re, const char *src)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE off;
	int err;

	re->src = src;
	re->code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS |
	    PCRE2_DOLLAR_ENDONLY | PCRE2_NO_AUTO_CAPTURE, &err, &off,
	    schema_re_cc);
	if (re->code == NULL) {
		pcre2_get_error_message(err, msg, sizeof msg);
		schema_cc_error(cc, "pattern '%s' is not a valid regular "
		    "expression: %s at offset %zu", src, (const char *)msg,
		    (size_t)off);
		return -1;
	}
	return 0;
}

static uint64_t
schema_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * An unanchored search, as JSON Schema's pattern is: 1 on a match, 0 on
 * none. A match that runs into PCRE2's limits, or past the run's time for
 * patterns, aborts the run (the schema, not the reply, is the problem).
 */
static int
schema_re_match(struct schema_run *run, const struct schema_re *re,
    const char *s, size_t len)
{
	uint64_t t0;
	int rc;

	if (run->aborted)
		return 0;
	t0 = schema_now_us();
	rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, schema_re_md,
	    schema_re_mc);
	run->re_us += schema_now_us() - t0;
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT || run->re_us > SCHEMA_RE_MAX_MS * 1000) {
		schema_abort(run, "pattern too costly to match");
		return 0;
	}
	/* Other errors (bad UTF-8 cannot come from jansson): no match. */
	return rc >= 0;
}

static void
schema_cc_error(struct schema_cc *cc, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	if (cc->cause != NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	msg = xmalloc(n < 0 ? 1 : (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(msg, n < 0 ? 1 : (size_t)n + 1, fmt, ap);
	va_end(ap);
	xasprintf(&cc->cause, "schema at #%s: %s", buf_cstr(&cc->loc), msg);
	free(msg);
}

/* Push a JSON pointer segment (~ and / escaped); returns the old length. */
static size_t
schema_loc_push(struct schema_cc *cc, const char *key)
{
	size_t old = cc->loc.len;

	buf_addstr(&cc->loc, "/");
	for (; *key != '\0'; key++) {
		if (*key == '~')
			buf_addstr(&cc->loc, "~0");
		else if (*key == '/')
			buf_addstr(&cc->loc, "~1");
		else
			buf_add(&cc->loc, key, 1);
	}
	return old;
}

static void
schema_loc_pop(struct schema_cc *cc, size_t old)
{
	cc->loc.len = old;
	if (cc->loc.data != NULL)
		cc->loc.data[old] = '\0';
}

/* Compile the subschema j found at key (and index i, when i >= 0). */
static struct schema_node *
schema_sub(struct schema_cc *cc, const json_t *j, const char *key, long i)
{
	struct schema_node *n;
	size_t old;
	char idx[32];

	old = schema_loc_push(cc, key);
	if (i >= 0) {
		snprintf(idx, sizeof idx, "%ld", i);
		schema_loc_push(cc, idx);
	}
	n = schema_node(cc, j);
	if (n != NULL)
		schema_loc_pop(cc, old);
	return n;
}

#define SCHEMA_FIELD(n, kw, t)	((t *)(void *)((char *)(n) + (kw)->off))

static int
schema_kw_type(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	const json_t *t;
	size_t i, k;

	if (!json_is_string(v) &&
	    (!json_is_array(v) || json_array_size(v) == 0)) {
		schema_cc_error(cc, "type must be a type name or a non-empty "
		    "array of them");
		return -1;
	}
	for (i = 0; i < (json_is_array(v) ? json_array_size(v) : 1); i++) {
		t = json_is_array(v) ? json_array_get(v, i) : v;
		for (k = 0; k < nitems(schema_types); k++) {
			if (json_is_string(t) && strcmp(json_string_value(t),
			    schema_types[k].name) == 0)
				break;
		}
		if (k == nitems(schema_types)) {
			schema_cc_error(cc, "unknown type %s%s%s",
			    json_is_string(t) ? "'" : "",
			    json_is_string(t) ? json_string_value(t) :
			    "(not a string)", json_is_string(t) ? "'" : "");
			return -1;
		}
		n->types |= schema_types[k].bit;
	}
	n->type = v;
	return 0;
}

static int
schema_kw_enum(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	if (!json_is_array(v)) {
		schema_cc_error(cc, "enum must be an array");
		return -1;
	}
	n->enumv = v;
	return 0;
}

static int
schema_kw_any(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	*SCHEMA_FIELD(n, kw, const json_t *) = v;
	return 0;
}

static int
schema_kw_number(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	if (!json_is_number(v) || (strcmp(kw->name, "multipleOf") == 0 &&
	    json_number_value(v) <= 0)) {
		schema_cc_error(cc, "%s must be a %snumber", kw->name,
		    strcmp(kw->name, "multipleOf") == 0 ? "positive " : "");
		return -1;
	}
	*SCHEMA_FIELD(n, kw, const json_t *) = v;
	return 0;
}

/* A number, or draft 4's boolean that makes minimum/maximum exclusive. */
static int
schema_kw_exclusive(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	const json_t **bound = (const json_t **)(void *)((char *)n + kw->off2);

	if (json_is_boolean(v)) {
		if (json_is_true(v)) {
			*SCHEMA_FIELD(n, kw, const json_t *) = *bound;
			*bound = NULL;
		}
		return 0;
	}
	return schema_kw_number(cc, n, kw, v);
}

static int
schema_kw_count(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	double d = json_number_value(v);

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		*SCHEMA_FIELD(n, kw, long long) = json_integer_value(v);
	else if (json_is_real(v) && d >= 0 && d < 9e15 && floor(d) == d)
		*SCHEMA_FIELD(n, kw, long long) = (long long)d;
	else {
		schema_cc_error(cc, "%s must be a non-negative integer",
		    kw->name);
		return -1;
	}
	return 0;
}

static int
schema_kw_flag(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	if (!json_is_boolean(v)) {
		schema_cc_error(cc, "%s must be true or false", kw->name);
		return -1;
	}
	*SCHEMA_FIELD(n, kw, int) = json_is_true(v);
	return 0;
}

static int
schema_kw_pattern(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	if (!json_is_string(v)) {
		schema_cc_error(cc, "pattern must be a string");
		return -1;
	}
	n->pattern = xcalloc(1, sizeof *n->pattern);
	return schema_re_compile(cc, n->pattern, json_string_value(v));
}

static int
schema_kw_properties(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	const char *key;
	json_t *sub;

	if (!json_is_object(v)) {
		schema_cc_error(cc, "properties must be an object");
		return -1;
	}
	n->props_json = v;
	n->props = xcalloc(json_object_size(v) + 1, sizeof *n->props);
	json_object_foreach(schema_unconst(v), key, sub) {
		n->props[n->nprops].name = key;
		n->props[n->nprops].node = schema_sub(cc, sub, key, -1);
		if (n->props[n->nprops++].node == NULL)
			return -1;
	}
	return 0;
}

static int
schema_kw_patprops(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	struct schema_patprop *pp;
	const char *key;
	json_t *sub;

	if (!json_is_object(v)) {
		schema_cc_error(cc, "patternProperties must be an object");
		return -1;
	}
	n->patprops = xcalloc(json_object_size(v) + 1, sizeof *n->patprops);
	json_object_foreach(schema_unconst(v), key, sub) {
		pp = &n->patprops[n->npatprops++];
		if (schema_re_compile(cc, &pp->re, key) != 0)
			return -1;
		if ((pp->node = schema_sub(cc, sub, key, -1)) == NULL)
			return -1;
	}
	return 0;
}

static int
schema_kw_schema(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	struct schema_node *sub;

	if ((sub = schema_node(cc, v)) == NULL)
		return -1;
	*SCHEMA_FIELD(n, kw, struct schema_node *) = sub;
	return 0;
}

static int
schema_kw_required(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	size_t i;

	for (i = 0; json_is_array(v) && i < json_array_size(v); i++) {
		if (!json_is_string(json_array_get(v, i)))
			break;
	}
	if (!json_is_array(v) || i != json_array_size(v)) {
		schema_cc_error(cc, "required must be an array of strings");
		return -1;
	}
	n->required = v;
	return 0;
}

/* Fill a list of subschemas from the array v (at kw's location). */
static int
schema_list(struct schema_cc *cc, struct schema_list *l, const json_t *v,
    const char *name)
{
	size_t i, old;
	char idx[32];

	if (!json_is_array(v) || json_array_size(v) == 0) {
		schema_cc_error(cc, "%s must be a non-empty array of schemas",
		    name);
		return -1;
	}
	l->v = xcalloc(json_array_size(v), sizeof *l->v);
	for (i = 0; i < json_array_size(v); i++) {
		snprintf(idx, sizeof idx, "%zu", i);
		old = schema_loc_push(cc, idx);
		if ((l->v[i] = schema_node(cc, json_array_get(v, i))) == NULL)
			return -1;
		schema_loc_pop(cc, old);
		l->n++;
	}
	return 0;
}

static int
schema_kw_list(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	return schema_list(cc, SCHEMA_FIELD(n, kw, struct schema_list), v,
	    kw->name);
}

/* items: a schema for every item after prefixItems; or, as before 2020-12,
 * an array: the prefix, with additionalItems for the rest. */
static int
schema_kw_items(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	if (!json_is_array(v))
		return schema_kw_schema(cc, n, kw, v);
	if (n->prefix.n != 0) {
		schema_cc_error(cc, "items must be a schema when prefixItems "
		    "is given");
		return -1;
	}
	return schema_list(cc, &n->prefix, v, "items");
}

static int
schema_kw_additional_items(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	if (!json_is_array(json_object_get(n->json, "items")))
		return 0;
	return schema_kw_schema(cc, n, kw, v);
}

static const json_t *schema_pointer(const json_t *, const char *);

static int
schema_kw_ref(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	const char *ref = json_string_value(v);

	if (ref == NULL || ref[0] != '#') {
		schema_cc_error(cc, "$ref must be a local reference such as "
		    "'#/$defs/name'%s%s%s", ref ? ", not '" : "",
		    ref ? ref : "", ref ? "'" : "");
		return -1;
	}
	n->ref = ref;
	if ((n->ref_json = schema_pointer(cc->s->root, ref)) == NULL) {
		schema_cc_error(cc, "$ref '%s' does not resolve", ref);
		return -1;
	}
	return 0;
}

/* $defs are compiled whether used or not, so their errors show early. */
static int
schema_kw_defs(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	const char *key;
	json_t *sub;

	if (!json_is_object(v)) {
		schema_cc_error(cc, "%s must be an object", kw->name);
		return -1;
	}
	json_object_foreach(schema_unconst(v), key, sub) {
		if (schema_sub(cc, sub, key, -1) == NULL)
			return -1;
	}
	return 0;
}

#define SCHEMA_OFF(f)	offsetof(struct schema_node, f)

/* In compile order: minimum before exclusiveMinimum, prefixItems before
 * items before additionalItems, since the later keyword of each pair
 * reads the earlier. */
static const struct schema_kw schema_kws[] = {
	{ "type", schema_kw_type, 0, 0 },
	{ "enum", schema_kw_enum, 0, 0 },
	{ "const", schema_kw_any, SCHEMA_OFF(constv), 0 },
	{ "minimum", schema_kw_number, SCHEMA_OFF(minimum), 0 },
	{ "maximum", schema_kw_number, SCHEMA_OFF(maximum), 0 },
	{ "exclusiveMinimum", schema_kw_exclusive, SCHEMA_OFF(xminimum),
	    SCHEMA_OFF(minimum) },
	{ "exclusiveMaximum", schema_kw_exclusive, SCHEMA_OFF(xmaximum),
	    SCHEMA_OFF(maximum) },
	{ "multipleOf", schema_kw_number, SCHEMA_OFF(multiple), 0 },
	{ "minLength", schema_kw_count, SCHEMA_OFF(min_len), 0 },
	{ "maxLength", schema_kw_count, SCHEMA_OFF(max_len), 0 },
	{ "pattern", schema_kw_pattern, 0, 0 },
	{ "minItems", schema_kw_count, SCHEMA_OFF(min_items), 0 },
	{ "maxItems", schema_kw_count, SCHEMA_OFF(max_items), 0 },
	{ "uniqueItems", schema_kw_flag, SCHEMA_OFF(unique), 0 },
	{ "prefixItems", schema_kw_list, SCHEMA_OFF(prefix), 0 },
	{ "items", schema_kw_items, SCHEMA_OFF(items), 0 },
	{ "additionalItems", schema_kw_additional_items, SCHEMA_OFF(items), 0 },
	{ "minProperties", schema_kw_count, SCHEMA_OFF(min_props), 0 },
	{ "maxProperties", schema_kw_count, SCHEMA_OFF(max_props), 0 },
	{ "required", schema_kw_required, 0, 0 },
	{ "properties", schema_kw_properties, 0, 0 },
	{ "patternProperties", schema_kw_patprops, 0, 0 },
	{ "additionalProperties", schema_kw_schema, SCHEMA_OFF(additional), 0 },
	{ "allOf", schema_kw_list, SCHEMA_OFF(all), 0 },
	{ "anyOf", schema_kw_list, SCHEMA_OFF(any), 0 },
	{ "oneOf", schema_kw_list, SCHEMA_OFF(one), 0 },
	{ "not", schema_kw_schema, SCHEMA_OFF(not), 0 },
	{ "$ref", schema_kw_ref, 0, 0 },
	{ "$defs", schema_kw_defs, 0, 0 },
	{ "definitions", schema_kw_defs, 0, 0 },
};

static struct schema_node *
schema_node(struct schema_cc *cc, const json_t *j)
{
	struct schema *s = cc->s;
	struct schema_node *n;
	const struct schema_kw *kw;
	const json_t *v;
	size_t old;

	n = xcalloc(1, sizeof *n);
	n->json = j;
	n->min_len = n->max_len = -1;
	n->min_items = n->max_items = -1;
	n->min_props = n->max_props = -1;
	if (s->nnodes == s->cap) {
		s->cap = s->cap == 0 ? 16 : s->cap * 2;
		s->nodes = xreallocarray(s->nodes, s->cap, sizeof *s->nodes);
	}
	s->nodes[s->nnodes++] = n;

	if (json_is_boolean(j)) {
		n->boolean = json_is_true(j);
		return n;
	}
	if (!json_is_object(j)) {
		schema_cc_error(cc, "a schema must be an object or a boolean");
		return NULL;
	}
	n->boolean = -1;
	for (kw = schema_kws; kw < schema_kws + nitems(schema_kws); kw++) {
		if ((v = json_object_get(j, kw->name)) == NULL)
			continue;
		old = schema_loc_push(cc, kw->name);
		if (kw->compile(cc, n, kw, v) != 0)
			return NULL;
		schema_loc_pop(cc, old);
	}
	return n;
}

/* Resolve a local $ref ("#", "#/a/b~1c", percent-encoded) in root. */
static const json_t *
schema_pointer(const json_t *root, const char *ref)
{
	const json_t *cur = root;
	char *frag, *seg, *end, *r, *w;
	unsigned long c;
	size_t idx;

	frag = xstrdup(ref + 1);
	for (r = w = frag; *r != '\0'; r++) {
		if (*r == '%' && schema_hex(r + 1, 2, &c) == 0 && c != 0) {
			*w++ = (char)c;
			r += 2;
		} else
			*w++ = *r;
	}
	*w = '\0';
	if (frag[0] != '\0' && frag[0] != '/')
		cur = NULL;
	for (seg = frag; cur != NULL && *seg == '/'; seg = end) {
		seg++;
		end = seg + strcspn(seg, "/");
		c = *end;
		*end = '\0';
		for (r = w = seg; *r != '\0'; r++) {
			if (*r == '~' && (r[1] == '0' || r[1] == '1'))
				*w++ = *++r == '0' ? '~' : '/';
			else
				*w++ = *r;
		}
		*w = '\0';
		if (json_is_object(cur))
			cur = json_object_get(cur, seg);
		else if (json_is_array(cur) && seg[0] != '\0' &&
		    strspn(seg, "0123456789") == strlen(seg) &&
		    (seg[0] != '0' || seg[1] == '\0') && strlen(seg) < 10) {
			idx = strtoul(seg, NULL, 10);
			cur = json_array_get(cur, idx);
		} else
			cur = NULL;
		*end = (char)c;
	}
	free(frag);
	return cur;
}

static struct schema_node *
schema_lookup(const struct schema *s, const json_t *j)
{
	size_t i;

	for (i = 0; i < s->nnodes; i++) {
		if (s->nodes[i]->json == j)
			return s->nodes[i];
	}
	return NULL;
}

struct schema *
schema_compile(const char *schema_text, char **cause)
{
	struct schema_cc cc;
	struct schema *s;
	struct schema_node *n;
	json_error_t jerr;
	size_t i;

	schema_re_init();
	memset(&cc, 0, sizeof cc);
	s = cc.s = xcalloc(1, sizeof *s);
	s->root = json_loads(schema_text, JSON_DECODE_ANY, &jerr);
	if (s->root == NULL) {
		xasprintf(&cc.cause, "schema is not valid JSON: %s (line %d, "
		    "column %d)", jerr.text, jerr.line, jerr.column);
		goto fail;
	}
	if ((s->top = schema_node(&cc, s->root)) == NULL)
		goto fail;

	/*
	 * Point each $ref at its node. A target no keyword compiled (a
	 * schema kept under an unknown keyword) is compiled now, appended
	 * to nodes, and this loop reaches its own $refs in turn.
	 */
	for (i = 0; i < s->nnodes; i++) {
		n = s->nodes[i];
		if (n->ref == NULL)
			continue;
		if ((n->target = schema_lookup(s, n->ref_json)) != NULL)
			continue;
		buf_reset(&cc.loc);
		buf_addstr(&cc.loc, n->ref + 1);
		if ((n->target = schema_node(&cc, n->ref_json)) == NULL)
			goto fail;
	}
	buf_free(&cc.loc);
	return s;

fail:
	if (cause != NULL)
		*cause = cc.cause;
	else
		free(cc.cause);
	buf_free(&cc.loc);
	schema_free(s);
	return NULL;
}

void
schema_free(struct schema *s)
{
	struct schema_node *n;
	size_t i, k;

	if (s == NULL)
		return;
	for (i = 0; i < s->nnodes; i++) {
		n = s->nodes[i];
		if (n->pattern != NULL)
			pcre2_code_free(n->pattern->code);
		free(n->pattern);
		for (k = 0; k < n->npatprops; k++)
			pcre2_code_free(n->patprops[k].re.code);
		free(n->patprops);
		free(n->props);
		free(n->prefix.v);
		free(n->all.v);
		free(n->any.v);
		free(n->one.v);
		free(n);
	}
	free(s->nodes);
	json_decref(s->root);
	free(s);
}

/* Numbers as a person writes them: 0.1, not 0.10000000000000001. */
static const char *
schema_num(char *dst, size_t len, const json_t *v)
{
	double d;

	if (json_is_integer(v)) {
		snprintf(dst, len, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return dst;
	}
	d = json_real_value(v);
	snprintf(dst, len, "%.15g", d);
	if (strtod(dst, NULL) != d)
		snprintf(dst, len, "%.17g", d);
	return dst;
}

static void
schema_dump(struct buf *b, const json_t *v)
{
	char num[64], *s;

	if (json_is_number(v)) {
		buf_addstr(b, schema_num(num, sizeof num, v));
		return;
	}
	s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
	    JSON_REAL_PRECISION(15));
	buf_addstr(b, s != NULL ? s : "?");
	free(s);
}

/* Compare numbers exactly when both are integers. */
static int
schema_numcmp(const json_t *a, const json_t *b)
{
	json_int_t x, y;
	double dx, dy;

	if (json_is_integer(a) && json_is_integer(b)) {
		x = json_integer_value(a);
		y = json_integer_value(b);
		return (x > y) - (x < y);
	}
	dx = json_number_value(a);
	dy = json_number_value(b);
	return (dx > dy) - (dx < dy);
}

/* json_equal(), except that numbers compare by value: 1 equals 1.0. */
static int
schema_equal(const json_t *a, const json_t *b)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_number(a) && json_is_number(b))
		return schema_numcmp(a, b) == 0;
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (i = 0; i < json_array_size(a); i++) {
			if (!schema_equal(json_array_get(a, i),
			    json_array_get(b, i)))
				return 0;
		}
		return 1;
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach(schema_unconst(a), key, v) {
			if (json_object_get(b, key) == NULL ||
			    !schema_equal(v, json_object_get(b, key)))
				return 0;
		}
		return 1;
	default:
		return json_equal(schema_unconst(a), schema_unconst(b));
	}
}

static unsigned
schema_type_bits(const json_t *v)
{
	double d;

	switch (json_typeof(v)) {
	case JSON_NULL:
		return SCHEMA_T_NULL;
	case JSON_TRUE:
	case JSON_FALSE:
		return SCHEMA_T_BOOLEAN;
	case JSON_OBJECT:
		return SCHEMA_T_OBJECT;
	case JSON_ARRAY:
		return SCHEMA_T_ARRAY;
	case JSON_STRING:
		return SCHEMA_T_STRING;
	case JSON_INTEGER:
		return SCHEMA_T_NUMBER | SCHEMA_T_INTEGER;
	case JSON_REAL:
		d = json_real_value(v);
		if (isfinite(d) && floor(d) == d)
			return SCHEMA_T_NUMBER | SCHEMA_T_INTEGER;
		return SCHEMA_T_NUMBER;
	}
	return 0;
}

static const char *
schema_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
		return "null";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	}
	return "unknown";
}

static int
schema_full(const struct schema_run *run, const struct schema_errs *e)
{
	return run->aborted || (e->max > 0 && e->n >= e->max);
}

static void
schema_err(struct schema_run *run, struct schema_errs *e, const char *fmt,
    ...)
{
	va_list ap;
	char small[512], *msg;
	int n;

	if (schema_full(run, e))
		return;
	e->n++;
	if (e->out == NULL)
		return;
	/* Formatting is most of the cost of a failing anyOf branch: one
	 * pass into the stack when the message fits. */
	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	msg = small;
	if ((size_t)n >= sizeof small) {
		msg = xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(msg, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	buf_add(e->out, run->path.data, run->path.len);
	buf_add(e->out, ": ", 2);
	buf_add(e->out, msg, (size_t)n);
	buf_add(e->out, "\n", 1);
	if (msg != small)
		free(msg);
}

/* Give up on the whole run: the schema, not the reply, is the problem. */
static void
schema_abort(struct schema_run *run, const char *msg)
{
	if (run->aborted)
		return;
	run->aborted = 1;
	buf_printf(&run->abort, "%s: %s\n", buf_cstr(&run->path), msg);
}

static size_t
schema_path_key(struct schema_run *run, const char *key)
{
	size_t old = run->path.len, i;
	json_t *j;
	char *q;

	for (i = 0; key[i] != '\0'; i++) {
		if (!isalpha((unsigned char)key[i]) && key[i] != '_' &&
		    (i == 0 || !isdigit((unsigned char)key[i])))
			break;
	}
	if (i != 0 && key[i] == '\0') {
		buf_printf(&run->path, ".%s", key);
		return old;
	}
	j = json_string(key);
	q = j != NULL ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	buf_printf(&run->path, "[%s]", q != NULL ? q : "?");
	free(q);
	json_decref(j);
	return old;
}

static size_t
schema_path_index(struct schema_run *run, size_t i)
{
	size_t old = run->path.len;

	buf_printf(&run->path, "[%zu]", i);
	return old;
}

static void
schema_path_pop(struct schema_run *run, size_t old)
{
	run->path.len = old;
	run->path.data[old] = '\0';
}

/* Check a value inside this one: the $ref count starts over, since a
 * recursive schema that descends is not a cycle. */
static void
schema_check_child(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v, size_t old)
{
	int refs = run->refs;

	run->refs = 0;
	schema_check(run, e, n, v);
	run->refs = refs;
	schema_path_pop(run, old);
}

/* Does v match n? Its first error, if any, goes to first. */
static int
schema_try(struct schema_run *run, const struct schema_node *n,
    const json_t *v, struct buf *first)
{
	struct schema_errs sub = { first, 0, 1 };

	schema_check(run, &sub, n, v);
	return sub.n == 0 && !run->aborted;
}

/* Quote a failed branch's error: its path dropped when it is this value's
 * own, long text cut at a character boundary. */
static void
schema_quote(struct buf *msg, const struct schema_run *run, const char *kw,
    size_t i, const struct buf *first)
{
	const char *s = first->data != NULL ? first->data : "";
	size_t plen = run->path.len, len;

	buf_printf(msg, "%s%s[%zu]: ", i == 0 ? "" : "; ", kw, i);
	if (strncmp(s, run->path.data, plen) == 0 && s[plen] == ':' &&
	    s[plen + 1] == ' ')
		s += plen + 2;
	len = strcspn(s, "\n");
	if (len > SCHEMA_MAX_QUOTE) {
		len = SCHEMA_MAX_QUOTE;
		while (len > 0 && (s[len] & 0xc0) == 0x80)
			len--;
		buf_add(msg, s, len);
		buf_addstr(msg, "...");
	} else
		buf_add(msg, s, len);
}

static void
schema_check_number(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	char lim[64], got[64];
	double q;
	json_int_t m;

	schema_num(got, sizeof got, v);
	if (n->minimum != NULL && schema_numcmp(v, n->minimum) < 0)
		schema_err(run, e, "must be >= %s, got %s",
		    schema_num(lim, sizeof lim, n->minimum), got);
	if (n->xminimum != NULL && schema_numcmp(v, n->xminimum) <= 0)
		schema_err(run, e, "must be > %s, got %s",
		    schema_num(lim, sizeof lim, n->xminimum), got);
	if (n->maximum != NULL && schema_numcmp(v, n->maximum) > 0)
		schema_err(run, e, "must be <= %s, got %s",
		    schema_num(lim, sizeof lim, n->maximum), got);
	if (n->xmaximum != NULL && schema_numcmp(v, n->xmaximum) >= 0)
		schema_err(run, e, "must be < %s, got %s",
		    schema_num(lim, sizeof lim, n->xmaximum), got);
	if (n->multiple == NULL)
		return;
	if (json_is_integer(v) && json_is_integer(n->multiple)) {
		m = json_integer_value(n->multiple);
		if (json_integer_value(v) % m == 0)
			return;
	} else {
		/* Decimal multiples (0.01) are inexact in binary: allow for
		 * rounding in the quotient. */
		q = json_number_value(v) / json_number_value(n->multiple);
		if (isfinite(q) && fabs(q - nearbyint(q)) <= 1e-9 *
		    fmax(1, fabs(q)))
			return;
	}
	schema_err(run, e, "must be a multiple of %s, got %s",
	    schema_num(lim, sizeof lim, n->multiple), got);
}

static void
schema_check_string(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v), i;
	long long chars = 0;

	/* Code points: jansson holds valid UTF-8, so count lead bytes. */
	for (i = 0; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			chars++;
	}
	if (n->min_len >= 0 && chars < n->min_len)
		schema_err(run, e, "expected at least %lld %s, got %lld",
		    n->min_len, SCHEMA_PLURAL(n->min_len, "character",
		    "characters"), chars);
	if (n->max_len >= 0 && chars > n->max_len)
		schema_err(run, e, "expected at most %lld %s, got %lld",
		    n->max_len, SCHEMA_PLURAL(n->max_len, "character",
		    "characters"), chars);
	if (n->pattern != NULL && !schema_re_match(run, n->pattern, s, len) &&
	    !run->aborted)
		schema_err(run, e, "does not match pattern '%s'",
		    n->pattern->src);
}

static void
schema_check_array(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	const struct schema_node *sub;
	size_t size = json_array_size(v), i, k, old;

	if (n->min_items >= 0 && (long long)size < n->min_items)
		schema_err(run, e, "expected at least %lld %s, got %zu",
		    n->min_items, SCHEMA_PLURAL(n->min_items, "item", "items"),
		    size);
	if (n->max_items >= 0 && (long long)size > n->max_items)
		schema_err(run, e, "expected at most %lld %s, got %zu",
		    n->max_items, SCHEMA_PLURAL(n->max_items, "item", "items"),
		    size);
	for (i = 0; n->unique && i < size; i++) {
		for (k = i + 1; k < size; k++) {
			if (++run->steps > SCHEMA_MAX_STEPS) {
				schema_abort(run, "schema too complex to "
				    "evaluate");
				return;
			}
			if (schema_equal(json_array_get(v, i),
			    json_array_get(v, k))) {
				schema_err(run, e, "items must be unique "
				    "(items %zu and %zu are equal)", i, k);
				i = size;
				break;
			}
		}
	}
	for (i = 0; i < size && !schema_full(run, e); i++) {
		sub = i < n->prefix.n ? n->prefix.v[i] : n->items;
		if (sub == NULL)
			break;
		old = schema_path_index(run, i);
		if (sub == n->items && n->prefix.n != 0 && sub->boolean == 0) {
			schema_err(run, e, "additional item not allowed");
			schema_path_pop(run, old);
		} else
			schema_check_child(run, e, sub, json_array_get(v, i),
			    old);
	}
}

static void
schema_check_object(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	size_t size = json_object_size(v), i, old;
	const char *key;
	json_t *sub;
	int known;

	if (n->min_props >= 0 && (long long)size < n->min_props)
		schema_err(run, e, "expected at least %lld %s, got %zu",
		    n->min_props, SCHEMA_PLURAL(n->min_props, "property",
		    "properties"), size);
	if (n->max_props >= 0 && (long long)size > n->max_props)
		schema_err(run, e, "expected at most %lld %s, got %zu",
		    n->max_props, SCHEMA_PLURAL(n->max_props, "property",
		    "properties"), size);
	for (i = 0; n->required != NULL &&
	    i < json_array_size(n->required); i++) {
		key = json_string_value(json_array_get(n->required, i));
		if (json_object_get(v, key) == NULL)
			schema_err(run, e, "missing required property '%s'",
			    key);
	}
	for (i = 0; i < n->nprops && !schema_full(run, e); i++) {
		if ((sub = json_object_get(v, n->props[i].name)) == NULL)
			continue;
		old = schema_path_key(run, n->props[i].name);
		schema_check_child(run, e, n->props[i].node, sub, old);
	}
	if (n->npatprops == 0 && n->additional == NULL)
		return;
	json_object_foreach(schema_unconst(v), key, sub) {
		if (schema_full(run, e))
			break;
		known = n->props_json != NULL &&
		    json_object_get(n->props_json, key) != NULL;
		for (i = 0; i < n->npatprops; i++) {
			if (!schema_re_match(run, &n->patprops[i].re, key,
			    strlen(key)))
				continue;
			known = 1;
			old = schema_path_key(run, key);
			schema_check_child(run, e, n->patprops[i].node, sub,
			    old);
		}
		if (known || n->additional == NULL)
			continue;
		old = schema_path_key(run, key);
		if (n->additional->boolean == 0) {
			schema_err(run, e, "additional property not allowed");
			schema_path_pop(run, old);
		} else
			schema_check_child(run, e, n->additional, sub, old);
	}
}

static void
schema_check_anyof(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	struct buf msg = { NULL, 0, 0 }, first = { NULL, 0, 0 };
	size_t i;

	for (i = 0; i < n->any.n; i++) {
		buf_reset(&first);
		if (schema_try(run, n->any.v[i], v, e->out ? &first : NULL) ||
		    run->aborted)
			goto out;
		if (e->out != NULL)
			schema_quote(&msg, run, "anyOf", i, &first);
	}
	schema_err(run, e, "must match at least one schema in anyOf (%s)",
	    buf_cstr(&msg));
out:
	buf_free(&msg);
	buf_free(&first);
}

static void
schema_check_oneof(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	struct buf msg = { NULL, 0, 0 }, first = { NULL, 0, 0 };
	size_t i, matched = 0;

	/* Every branch, for the count a model needs to see. */
	for (i = 0; i < n->one.n && !run->aborted; i++) {
		buf_reset(&first);
		if (schema_try(run, n->one.v[i], v, e->out ? &first : NULL))
			matched++;
		else if (matched == 0 && e->out != NULL)
			schema_quote(&msg, run, "oneOf", i, &first);
	}
	if (matched == 0)
		schema_err(run, e, "must match exactly one schema in oneOf "
		    "(matched 0; %s)", buf_cstr(&msg));
	else if (matched > 1)
		schema_err(run, e, "must match exactly one schema in oneOf "
		    "(matched %zu)", matched);
	buf_free(&msg);
	buf_free(&first);
}

static void
schema_check_node(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	struct buf msg = { NULL, 0, 0 };
	size_t i;

	if (n->boolean == 1)
		return;
	if (n->boolean == 0) {
		schema_err(run, e, "not allowed by the schema");
		return;
	}
	/* A value of the wrong type fails every other keyword too: say only
	 * what is wrong with it. */
	if (n->types != 0 && (n->types & schema_type_bits(v)) == 0) {
		for (i = 0; i < (json_is_array(n->type) ?
		    json_array_size(n->type) : 1); i++) {
			if (i != 0)
				buf_addstr(&msg, i + 1 ==
				    json_array_size(n->type) ? " or " : ", ");
			buf_addstr(&msg, json_string_value(json_is_array(
			    n->type) ? json_array_get(n->type, i) : n->type));
		}
		schema_err(run, e, "expected %s, got %s", buf_cstr(&msg),
		    schema_type_name(v));
		buf_free(&msg);
		return;
	}
	if (n->enumv != NULL) {
		for (i = 0; i < json_array_size(n->enumv); i++) {
			if (schema_equal(v, json_array_get(n->enumv, i)))
				break;
		}
		if (i == json_array_size(n->enumv)) {
			for (i = 0; i < json_array_size(n->enumv); i++) {
				if (i != 0)
					buf_addstr(&msg, ", ");
				schema_dump(&msg, json_array_get(n->enumv, i));
			}
			schema_err(run, e, "must be one of %s", buf_cstr(&msg));
			buf_reset(&msg);
		}
	}
	if (n->constv != NULL && !schema_equal(v, n->constv)) {
		schema_dump(&msg, n->constv);
		schema_err(run, e, "must be %s", buf_cstr(&msg));
	}
	buf_free(&msg);

	switch (json_typeof(v)) {
	case JSON_INTEGER:
	case JSON_REAL:
		schema_check_number(run, e, n, v);
		break;
	case JSON_STRING:
		schema_check_string(run, e, n, v);
		break;
	case JSON_ARRAY:
		schema_check_array(run, e, n, v);
		break;
	case JSON_OBJECT:
		schema_check_object(run, e, n, v);
		break;
	default:
		break;
	}

	for (i = 0; i < n->all.n; i++)
		schema_check(run, e, n->all.v[i], v);
	if (n->any.n != 0 && !schema_full(run, e))
		schema_check_anyof(run, e, n, v);
	if (n->one.n != 0 && !schema_full(run, e))
		schema_check_oneof(run, e, n, v);
	if (n->not != NULL && !schema_full(run, e) &&
	    schema_try(run, n->not, v, NULL))
		schema_err(run, e, "must not match the schema in 'not'");
	if (n->target != NULL && !schema_full(run, e)) {
		if (++run->refs > SCHEMA_MAX_REFS)
			schema_abort(run, "schema recursion too deep (cyclic "
			    "$ref?)");
		else
			schema_check(run, e, n->target, v);
		run->refs--;
	}
}

static void
schema_check(struct schema_run *run, struct schema_errs *e,
    const struct schema_node *n, const json_t *v)
{
	if (schema_full(run, e))
		return;
	/* A budget, so that a schema whose anyOf branches multiply cannot
	 * stall the daemon, cyclic or not. */
	if (++run->steps > SCHEMA_MAX_STEPS) {
		schema_abort(run, "schema too complex to evaluate");
		return;
	}
	if (run->depth >= SCHEMA_MAX_DEPTH) {
		schema_abort(run, "value nested too deeply to check");
		return;
	}
	run->depth++;
	schema_check_node(run, e, n, v);
	run->depth--;
}

/*
 * *errors is set: NULL when valid, else the lines (free()); errors may be
 * NULL to only count. max_errors < 1 means no cap. A schema that cannot be
 * evaluated (cyclic $ref, too costly) is reported as one error.
 */
int
schema_validate(const struct schema *s, const json_t *instance,
    char **errors, int max_errors)
{
	struct schema_run run;
	struct buf out = { NULL, 0, 0 };
	struct schema_errs e = { &out, 0, max_errors > 0 ? max_errors : 0 };

	memset(&run, 0, sizeof run);
	buf_addstr(&run.path, "$");
	if (instance == NULL)
		schema_err(&run, &e, "no value");
	else
		schema_check(&run, &e, s->top, instance);
	if (run.aborted) {
		buf_reset(&out);
		buf_addstr(&out, buf_cstr(&run.abort));
		e.n = 1;
	}
	if (errors != NULL)
		*errors = e.n != 0 ? out.data : NULL;
	if (errors == NULL || e.n == 0)
		buf_free(&out);
	buf_free(&run.path);
	buf_free(&run.abort);
	return e.n;
}

int
schema_validate_text(const struct schema *s, const char *text, char **errors,
    int max_errors)
{
	const char *p = text, *end = text + strlen(text), *nl;
	json_error_t jerr;
	json_t *v;
	int n;

	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	/* Models often wrap JSON in a Markdown fence despite being asked
	 * not to: take what is inside ```json ... ```. */
	if (end - p >= 3 && memcmp(p, "```", 3) == 0) {
		nl = memchr(p, '\n', (size_t)(end - p));
		p = nl != NULL ? nl + 1 : end;
		if (end - p >= 3 && memcmp(end - 3, "```", 3) == 0)
			end -= 3;
	}
	v = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		if (errors != NULL)
			xasprintf(errors, "$: not valid JSON: %s\n", jerr.text);
		return 1;
	}
	n = schema_validate(s, v, errors, max_errors);
	json_decref(v);
	return n;
}
