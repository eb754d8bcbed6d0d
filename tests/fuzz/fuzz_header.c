/*
 * fuzz_header.c: rate-limit and retry headers on arbitrary bytes. The
 * first four bytes move the wall clock around the present; the rest is
 * header lines, "name: value" split at the first colon, fed in order into
 * one struct header_rl as a response's headers would be. Each value, and
 * the whole text, also goes to header_duration_ms, header_retry_after_ms
 * and header_rfc3339 raw, untrimmed.
 *
 * What header.c promises is checked after every step: -1 or a wait of zero
 * or more, never a negative one, and a printable request id.
 */
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

#define FUZZ_NOW 1767225600 /* 2026-01-01T00:00:00Z */

static void
fuzz_header_raw(const char *s, time_t now)
{
	int64_t v;

	v = header_duration_ms(s);
	fuzz_assert(v >= -1);
	v = header_retry_after_ms(s, now);
	fuzz_assert(v >= -1);
	(void)header_rfc3339(s);
}

static void
fuzz_header_check(const struct header_rl *rl)
{
	const int64_t *v[] = {
		&rl->retry_after_ms,
		&rl->limit_requests,
		&rl->remaining_requests,
		&rl->reset_requests_ms,
		&rl->limit_tokens,
		&rl->remaining_tokens,
		&rl->reset_tokens_ms,
	};
	size_t i, n;
	int f, k;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		if (*v[i] < -1)
			fuzz_fail("field %zu is %jd", i, (intmax_t)*v[i]);
	}
	for (f = 0; f < 3; f++) {
		for (k = 0; k < 3; k++)
			fuzz_assert(rl->anthropic_tokens[f][k] >= -1);
	}
	fuzz_assert(rl->should_retry >= -1 && rl->should_retry <= 1);
	n = strnlen(rl->request_id, sizeof rl->request_id);
	fuzz_assert(n < sizeof rl->request_id);
	for (i = 0; i < n; i++) {
		fuzz_assert(
		    rl->request_id[i] > ' ' && rl->request_id[i] < 0x7f);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct header_rl rl;
	time_t now = FUZZ_NOW;
	char *text, *line, *next, *colon, *value;
	int32_t skew;

	if (size >= 4) {
		memcpy(&skew, data, sizeof skew);
		now += skew;
		data += 4;
		size -= 4;
	}
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	if (size != 0)
		memcpy(text, data, size);
	text[size] = '\0';

	fuzz_header_raw(text, now);

	header_rl_init(&rl);
	for (line = text; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		fuzz_header_raw(line, now);
		if ((colon = strchr(line, ':')) == NULL)
			continue;
		*colon = '\0';
		value = colon + 1;
		fuzz_header_raw(value, now);
		header_rl_add(&rl, line, value, now);
		fuzz_header_check(&rl);
	}

	free(text);
	return 0;
}
