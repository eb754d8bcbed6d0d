/*
 * schema.c: JSON Schema for structured output, the subset that callers'
 * response schemas use: a schema is compiled once into a graph of nodes
 * (regexes compiled in place, $ref resolved to pointers, so cycles are
 * edges, not copies), which schema-check.c checks every reply against.
 * Keywords this file does not know are ignored, as JSON Schema says.
 */
#include <sys/types.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"
#include "schema.h"

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof(a)[0])
#endif

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

/* Compile state: the JSON pointer being compiled, for error messages. */
struct schema_cc {
	struct schema *s;
	struct buf loc;
	char *cause;
};

struct schema_kw {
	const char *name;
	int (*compile)(struct schema_cc *, struct schema_node *,
	    const struct schema_kw *, const json_t *);
	size_t off;  /* the node's field this keyword fills */
	size_t off2; /* exclusive*: the inclusive bound */
};

static void schema_cc_error(struct schema_cc *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static struct schema_node *schema_node(struct schema_cc *, const json_t *);

/* jansson's iterators take json_t * but do not modify the value. */
json_t *
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
		*c = *c * 16 +
		    (isdigit((unsigned char)p[i]) ?
		            p[i] - '0' :
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
pcre2_match_context *schema_re_mc;
pcre2_match_data *schema_re_md;

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
	        PCRE2_DOLLAR_ENDONLY | PCRE2_NO_AUTO_CAPTURE,
	    &err, &off, schema_re_cc);
	if (re->code == NULL) {
		pcre2_get_error_message(err, msg, sizeof msg);
		schema_cc_error(cc,
		    "pattern '%s' is not a valid regular "
		    "expression: %s at offset %zu",
		    src, (const char *)msg, (size_t)off);
		return -1;
	}
	return 0;
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

#define SCHEMA_FIELD(n, kw, t) ((t *)(void *)((char *)(n) + (kw)->off))

static int
schema_kw_type(struct schema_cc *cc, struct schema_node *n,
    const struct schema_kw *kw, const json_t *v)
{
	const json_t *t;
	size_t i, k;

	if (!json_is_string(v) &&
	    (!json_is_array(v) || json_array_size(v) == 0)) {
		schema_cc_error(cc,
		    "type must be a type name or a non-empty "
		    "array of them");
		return -1;
	}
	for (i = 0; i < (json_is_array(v) ? json_array_size(v) : 1); i++) {
		t = json_is_array(v) ? json_array_get(v, i) : v;
		for (k = 0; k < nitems(schema_types); k++) {
			if (json_is_string(t) &&
			    strcmp(json_string_value(t),
			        schema_types[k].name) == 0)
				break;
		}
		if (k == nitems(schema_types)) {
			schema_cc_error(cc, "unknown type %s%s%s",
			    json_is_string(t) ? "'" : "",
			    json_is_string(t) ? json_string_value(t) :
			                        "(not a string)",
			    json_is_string(t) ? "'" : "");
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
	if (!json_is_number(v) ||
	    (strcmp(kw->name, "multipleOf") == 0 &&
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
		schema_cc_error(cc,
		    "items must be a schema when prefixItems "
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
		schema_cc_error(cc,
		    "$ref must be a local reference such as "
		    "'#/$defs/name'%s%s%s",
		    ref ? ", not '" : "", ref ? ref : "", ref ? "'" : "");
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

#define SCHEMA_OFF(f) offsetof(struct schema_node, f)

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
	{ "not", schema_kw_schema, SCHEMA_OFF(not ), 0 },
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
		xasprintf(&cc.cause,
		    "schema is not valid JSON: %s (line %d, "
		    "column %d)",
		    jerr.text, jerr.line, jerr.column);
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
