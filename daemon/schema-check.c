/*
 * schema-check.c: checking a value (a model's reply) against a schema that
 * schema.c compiled. Each problem becomes a "PATH: message" line written
 * for the model to read and fix on its next attempt.
 */
#include <sys/types.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmgated.h"
#include "schema.h"

#define SCHEMA_PLURAL(n, one, many) ((n) == 1 ? (one) : (many))

/* Validation state shared by a whole run, branches included. */
struct schema_run {
	struct buf path; /* "$.a[2]" of the value being checked */
	unsigned long steps;
	int refs; /* $refs followed at this value */
	int depth;
	int aborted;      /* sticky: unwind everything */
	uint64_t re_us;   /* spent matching patterns */
	struct buf abort; /* the run's one error when aborted */
};

/* Where errors go: the caller's list or a branch being tried. */
struct schema_errs {
	struct buf *out; /* NULL: only count */
	int n;
	int max; /* 0: no cap */
};

static void schema_err(struct schema_run *, struct schema_errs *, const char *,
    ...) __attribute__((format(printf, 3, 4)));
static void schema_abort(struct schema_run *, const char *);
static void schema_check(struct schema_run *, struct schema_errs *,
    const struct schema_node *, const json_t *);

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
	    rc == PCRE2_ERROR_HEAPLIMIT ||
	    run->re_us > SCHEMA_RE_MAX_MS * 1000) {
		schema_abort(run, "pattern too costly to match");
		return 0;
	}
	/* Other errors (bad UTF-8 cannot come from jansson): no match. */
	return rc >= 0;
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
	s = json_dumps(v,
	    JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
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
schema_err(struct schema_run *run, struct schema_errs *e, const char *fmt, ...)
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
schema_try(struct schema_run *run, const struct schema_node *n, const json_t *v,
    struct buf *first)
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
		if (isfinite(q) &&
		    fabs(q - nearbyint(q)) <= 1e-9 * fmax(1, fabs(q)))
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
		    n->min_len,
		    SCHEMA_PLURAL(n->min_len, "character", "characters"),
		    chars);
	if (n->max_len >= 0 && chars > n->max_len)
		schema_err(run, e, "expected at most %lld %s, got %lld",
		    n->max_len,
		    SCHEMA_PLURAL(n->max_len, "character", "characters"),
		    chars);
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
				schema_abort(run,
				    "schema too complex to "
				    "evaluate");
				return;
			}
			if (schema_equal(json_array_get(v, i),
			        json_array_get(v, k))) {
				schema_err(run, e,
				    "items must be unique "
				    "(items %zu and %zu are equal)",
				    i, k);
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
		    n->min_props,
		    SCHEMA_PLURAL(n->min_props, "property", "properties"),
		    size);
	if (n->max_props >= 0 && (long long)size > n->max_props)
		schema_err(run, e, "expected at most %lld %s, got %zu",
		    n->max_props,
		    SCHEMA_PLURAL(n->max_props, "property", "properties"),
		    size);
	for (i = 0; n->required != NULL && i < json_array_size(n->required);
	     i++) {
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
		schema_err(run, e,
		    "must match exactly one schema in oneOf "
		    "(matched 0; %s)",
		    buf_cstr(&msg));
	else if (matched > 1)
		schema_err(run, e,
		    "must match exactly one schema in oneOf "
		    "(matched %zu)",
		    matched);
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
		for (i = 0; i <
		     (json_is_array(n->type) ? json_array_size(n->type) : 1);
		     i++) {
			if (i != 0)
				buf_addstr(&msg,
				    i + 1 == json_array_size(n->type) ? " or " :
				                                        ", ");
			buf_addstr(&msg,
			    json_string_value(json_is_array(n->type) ?
			            json_array_get(n->type, i) :
			            n->type));
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
			schema_abort(run,
			    "schema recursion too deep (cyclic "
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
schema_validate(const struct schema *s, const json_t *instance, char **errors,
    int max_errors)
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
