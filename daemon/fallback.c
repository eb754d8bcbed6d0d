/*
 * fallback.c: when a call moves on to the next step of its chain, pure.
 * fallback_on names the error classes that lead to the next step; reply
 * conditions ("reject") turn a reply down and move on as well: a reply cut
 * at max_tokens, one stopped by the content filter, a refusal, an empty
 * reply, or one whose text matches a pattern (PCRE2, unanchored).
 */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "llmgated.h"

#define nitems(a) (sizeof(a) / sizeof(a)[0])

/* Bounds on what a hostile pattern can cost, as schema.c sets them. */
#define FALLBACK_RE_MAX_NEST    64
#define FALLBACK_RE_MATCH_LIMIT 100000
#define FALLBACK_RE_HEAP_KIB    4096

static const struct {
	const char *name;
	unsigned flag;
} fallback_conds[] = {
	{ "length", FALLBACK_REJECT_LENGTH },
	{ "content_filter", FALLBACK_REJECT_CONTENT_FILTER },
	{ "refusal", FALLBACK_REJECT_REFUSAL },
	{ "empty", FALLBACK_REJECT_EMPTY },
};

static pcre2_compile_context *fallback_cc;
static pcre2_match_context *fallback_mc;

static void
fallback_re_init(void)
{
	if (fallback_mc != NULL)
		return;
	fallback_cc = pcre2_compile_context_create(NULL);
	fallback_mc = pcre2_match_context_create(NULL);
	if (fallback_cc == NULL || fallback_mc == NULL)
		fatalx("out of memory");
	pcre2_set_parens_nest_limit(fallback_cc, FALLBACK_RE_MAX_NEST);
	pcre2_set_match_limit(fallback_mc, FALLBACK_RE_MATCH_LIMIT);
	pcre2_set_depth_limit(fallback_mc, FALLBACK_RE_MATCH_LIMIT);
	pcre2_set_heap_limit(fallback_mc, FALLBACK_RE_HEAP_KIB);
}

/*
 * The class set of fallback_on: names, "ok" and "cancelled" refused. what
 * names the option in a refusal, as its caller spelt it ("fallback_on",
 * the HTTP front's "x-llmgate-fallback-on").
 */
int
fallback_parse_on(uint32_t *on, char *const *names, size_t n, const char *what,
    char **cause)
{
	size_t i;
	int cls;

	*on = 0;
	for (i = 0; i < n; i++) {
		cls = llmgate_class_from_name(names[i]);
		if (cls < 0) {
			xasprintf(cause,
			    "%s: unknown error class "
			    "'%s'",
			    what, names[i]);
			return -1;
		}
		if (cls == LLMGATE_OK || cls == LLMGATE_CANCELLED) {
			xasprintf(cause,
			    "%s: '%s' cannot lead to "
			    "the next step",
			    what, names[i]);
			return -1;
		}
		*on |= 1u << cls;
	}
	return 0;
}

/* Reply conditions: the names above, or "match:PATTERN"; what as above. */
int
fallback_parse_reject(struct fallback *fb, char *const *conds, size_t n,
    const char *what, char **cause)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE off;
	pcre2_code *re;
	const char *pat;
	size_t i, j;
	int err;

	for (i = 0; i < n; i++) {
		for (j = 0; j < nitems(fallback_conds); j++) {
			if (strcmp(conds[i], fallback_conds[j].name) == 0)
				break;
		}
		if (j < nitems(fallback_conds)) {
			fb->reject |= fallback_conds[j].flag;
			continue;
		}
		if (strncmp(conds[i], "match:", 6) != 0) {
			xasprintf(cause,
			    "%s: unknown condition '%s' "
			    "(length, content_filter, refusal, empty or "
			    "match:PATTERN)",
			    what, conds[i]);
			return -1;
		}
		pat = conds[i] + 6;
		fallback_re_init();
		re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
		    PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NO_AUTO_CAPTURE,
		    &err, &off, fallback_cc);
		if (re == NULL) {
			pcre2_get_error_message(err, msg, sizeof msg);
			xasprintf(cause,
			    "%s: pattern '%s' is not a valid "
			    "regular expression: %s at offset %zu",
			    what, pat, (const char *)msg, (size_t)off);
			return -1;
		}
		fb->re = xreallocarray(fb->re, fb->nre + 1, sizeof *fb->re);
		fb->pat = xreallocarray(fb->pat, fb->nre + 1, sizeof *fb->pat);
		fb->re[fb->nre] = re;
		fb->pat[fb->nre++] = xstrdup(pat);
	}
	return 0;
}

void
fallback_free(struct fallback *fb)
{
	size_t i;

	for (i = 0; i < fb->nre; i++) {
		pcre2_code_free(fb->re[i]);
		free(fb->pat[i]);
	}
	free(fb->re);
	free(fb->pat);
	memset(fb, 0, sizeof *fb);
}

/*
 * Whether a failure of class cls leads to the next step: the classes of
 * on, or without any the default set (retry_class_falls_back()). A
 * rejected reply always does: that is what a reply condition asks for.
 */
int
fallback_class(uint32_t on, enum llmgate_class cls)
{
	if (cls == LLMGATE_REJECTED)
		return 1;
	if (on == 0)
		return retry_class_falls_back(cls);
	if (cls <= LLMGATE_OK || cls >= LLMGATE_CLASS_MAX)
		return 0;
	return (on >> cls) & 1;
}

static int
fallback_match(pcre2_code *re, const char *s, size_t len)
{
	pcre2_match_data *md;
	int rc;

	md = pcre2_match_data_create_from_pattern(re, NULL);
	if (md == NULL)
		fatalx("out of memory");
	rc = pcre2_match(re, (PCRE2_SPTR)(s != NULL ? s : ""), len, 0, 0, md,
	    fallback_mc);
	pcre2_match_data_free(md);
	/* A match past the limits counts as none. */
	return rc >= 0;
}

/*
 * Whether reply r meets one of fb's conditions: 1 with *why (free())
 * naming it. r is a whole reply: a success, or a content_filter answer
 * (the filter, or a refusal when r->refused).
 */
int
fallback_rejects(const struct fallback *fb, const struct reply *r, char **why)
{
	const char *orig = r->message != NULL ? r->message : "";
	size_t i;

	if (r->cls == LLMGATE_CONTENT_FILTER) {
		if (r->refused && (fb->reject & FALLBACK_REJECT_REFUSAL)) {
			xasprintf(why, "rejected (refusal): %s", orig);
			return 1;
		}
		if (!r->refused &&
		    (fb->reject & FALLBACK_REJECT_CONTENT_FILTER)) {
			xasprintf(why, "rejected (content_filter): %s", orig);
			return 1;
		}
		return 0;
	}
	if (r->cls != LLMGATE_OK)
		return 0;
	if ((fb->reject & FALLBACK_REJECT_LENGTH) &&
	    r->finish == LLMGATE_FINISH_LENGTH) {
		xasprintf(why,
		    "rejected (length): the reply was cut at "
		    "max_tokens");
		return 1;
	}
	if ((fb->reject & FALLBACK_REJECT_CONTENT_FILTER) &&
	    r->finish == LLMGATE_FINISH_CONTENT_FILTER) {
		xasprintf(why,
		    "rejected (content_filter): finish reason "
		    "content_filter");
		return 1;
	}
	if ((fb->reject & FALLBACK_REJECT_EMPTY) && r->ntools == 0) {
		for (i = 0; i < r->text.len; i++) {
			if (strchr(" \t\r\n", r->text.data[i]) == NULL)
				break;
		}
		if (i == r->text.len) {
			xasprintf(why,
			    "rejected (empty): the reply has no "
			    "text");
			return 1;
		}
	}
	for (i = 0; i < fb->nre; i++) {
		if (fallback_match(fb->re[i], r->text.data, r->text.len)) {
			xasprintf(why,
			    "rejected (match): the reply matches "
			    "'%s'",
			    fb->pat[i]);
			return 1;
		}
	}
	return 0;
}
