/*
 * scrub.c: secrets out of upstream text. An upstream's error message goes
 * to the caller (attempts[].message, the result) and into the log; some
 * servers echo the request's headers in it, and real ones quote the key
 * they refused (OpenAI: "Incorrect API key provided: sk-proj-****abcd").
 * Before such text leaves reply.c it loses every configured API key and
 * anything shaped like one: an Authorization, api-key or x-api-key value, a
 * Bearer token, an OpenAI/Anthropic "sk-..." key, a Google "AIza..." key,
 * a ?key= query value, and partly masked keys (a run of '*' inside a
 * token). Each becomes SCRUB_MARK.
 */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "llmgated.h"

#define SCRUB_MARK "[redacted]"

/*
 * Group 1 is what introduces a secret and is kept (a header name, "Bearer
 * "); the secret after it goes. The other alternatives are secrets by
 * their shape alone.
 */
static const char scrub_pattern[] =
    "((?:\\b(?:x-goog-api-key|x-api-key|api[-_]?key|authorization|"
    "access[-_]?token|client[-_]?secret)\\b[\"']?\\s*[:=]\\s*[\"']?"
    "(?:bearer\\s+)?)|\\bbearer\\s+|[?&]key=)"
    "[A-Za-z0-9._~+/=*-]{3,}"
    "|\\bsk-[A-Za-z0-9_*-]{4,}"
    "|\\bAIza[0-9A-Za-z_-]{10,}"
    "|[A-Za-z0-9_-]*\\*{4,}[A-Za-z0-9_*-]*";

static pcre2_code *scrub_re;
static int scrub_broken;

static pcre2_code *
scrub_compile(void)
{
	PCRE2_SIZE off;
	int err;

	if (scrub_re == NULL && !scrub_broken) {
		scrub_re = pcre2_compile((PCRE2_SPTR)scrub_pattern,
		    PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &err, &off, NULL);
		if (scrub_re == NULL) {
			scrub_broken = 1;
			log_warnx("scrub: the pattern does not compile at %zu",
			    (size_t)off);
		}
	}
	return scrub_re;
}

/* Every occurrence of key in b replaced by the mark. */
static void
scrub_literal(struct buf *b, const char *key)
{
	size_t klen = strlen(key), mlen = strlen(SCRUB_MARK), off;
	struct buf out = { 0 };
	const char *p, *hit;

	/* A key this short would match ordinary words: patterns do those. */
	if (klen < 8 || b->len == 0 || strstr(b->data, key) == NULL)
		return;
	for (p = b->data; (hit = strstr(p, key)) != NULL; p = hit + klen) {
		buf_add(&out, p, (size_t)(hit - p));
		buf_add(&out, SCRUB_MARK, mlen);
	}
	off = (size_t)(p - b->data);
	buf_add(&out, p, b->len - off);
	buf_free(b);
	*b = out;
}

/* The pattern's matches replaced: group 1 kept, the rest marked. */
static void
scrub_patterns(struct buf *b)
{
	pcre2_code *re = scrub_compile();
	pcre2_match_data *md;
	PCRE2_SIZE *ov, at = 0;
	struct buf out = { 0 };
	int rc;

	if (re == NULL || b->len == 0)
		return;
	md = pcre2_match_data_create_from_pattern(re, NULL);
	while (at <= b->len &&
	    (rc = pcre2_match(re, (PCRE2_SPTR)b->data, b->len, at, 0, md,
	         NULL)) > 0) {
		ov = pcre2_get_ovector_pointer(md);
		buf_add(&out, b->data + at, ov[0] - at);
		/* Group 1 set: keep what introduces the secret. */
		if (rc > 1 && ov[2] != PCRE2_UNSET)
			buf_add(&out, b->data + ov[2], ov[3] - ov[2]);
		buf_addstr(&out, SCRUB_MARK);
		at = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
		if (ov[1] == ov[0] && ov[0] < b->len)
			buf_add(&out, b->data + ov[0], 1);
	}
	pcre2_match_data_free(md);
	if (out.len == 0 && at == 0)
		return;
	if (at < b->len)
		buf_add(&out, b->data + at, b->len - at);
	buf_free(b);
	*b = out;
}

/* A copy of text without secrets (free()); NULL for NULL. */
char *
scrub(const char *text)
{
	struct buf b = { 0 };
	size_t i;

	if (text == NULL)
		return NULL;
	buf_addstr(&b, text);
	if (cfg != NULL) {
		for (i = 0; i < cfg->nproviders; i++) {
			if (cfg->providers[i].api_key != NULL)
				scrub_literal(&b, cfg->providers[i].api_key);
		}
	}
	scrub_patterns(&b);
	return b.data != NULL ? b.data : xstrdup("");
}

void
scrub_free(void)
{
	pcre2_code_free(scrub_re);
	scrub_re = NULL;
}
