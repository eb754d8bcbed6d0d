/*
 * header.c: rate-limit and retry hints from response headers, for every
 * provider: OpenAI/Groq x-ratelimit-* with
 * Go-style durations, Anthropic anthropic-ratelimit-* with RFC 3339 reset
 * times, Retry-After (seconds or an HTTP-date), retry-after-ms,
 * x-should-retry and the request id. Pure: the wall clock comes in as now.
 *
 * Providers and the proxies in front of them send whatever they like, so
 * a value that does not parse is ignored and its field keeps what it had.
 * Waits are rounded up to the millisecond so that they never come out
 * short.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "llmgated.h"

/* Indexes into header_rl.anthropic_tokens. */
enum { HDR_FAM_TOKENS, HDR_FAM_INPUT, HDR_FAM_OUTPUT, HDR_NFAM };
enum { HDR_LIMIT, HDR_REMAINING, HDR_RESET };

enum header_kind {
	HDR_COUNT,           /* a non-negative integer */
	HDR_DURATION,        /* Go duration -> ms */
	HDR_TIMESTAMP,       /* RFC 3339 -> ms from now */
	HDR_ANTHROPIC_COUNT, /* like HDR_COUNT, one token family's */
	HDR_ANTHROPIC_TIMESTAMP,
	HDR_RETRY_AFTER,
	HDR_RETRY_AFTER_MS,
	HDR_SHOULD_RETRY,
	HDR_REQUEST_ID,
	HDR_GENERATION_ID /* a request id only when there is no other */
};

struct header_field {
	const char *name;
	size_t len; /* strlen(name), looked at first */
	enum header_kind kind;
	size_t off; /* of the int64_t it sets in header_rl */
};

#define HF(name, kind, off) \
	{ \
		name, sizeof name - 1, kind, off \
	}
#define RL(f)      offsetof(struct header_rl, f)
#define AT(fam, i) RL(anthropic_tokens[fam][i])

static const struct header_field header_fields[] = {
	HF("retry-after", HDR_RETRY_AFTER, RL(retry_after_ms)),
	HF("retry-after-ms", HDR_RETRY_AFTER_MS, RL(retry_after_ms)),
	HF("x-should-retry", HDR_SHOULD_RETRY, 0),
	HF("x-request-id", HDR_REQUEST_ID, 0),
	HF("request-id", HDR_REQUEST_ID, 0),
	HF("x-generation-id", HDR_GENERATION_ID, 0),

	HF("x-ratelimit-limit-requests", HDR_COUNT, RL(limit_requests)),
	HF("x-ratelimit-remaining-requests", HDR_COUNT, RL(remaining_requests)),
	HF("x-ratelimit-reset-requests", HDR_DURATION, RL(reset_requests_ms)),
	HF("x-ratelimit-limit-tokens", HDR_COUNT, RL(limit_tokens)),
	HF("x-ratelimit-remaining-tokens", HDR_COUNT, RL(remaining_tokens)),
	HF("x-ratelimit-reset-tokens", HDR_DURATION, RL(reset_tokens_ms)),

	HF("anthropic-ratelimit-requests-limit", HDR_COUNT, RL(limit_requests)),
	HF("anthropic-ratelimit-requests-remaining", HDR_COUNT,
	    RL(remaining_requests)),
	HF("anthropic-ratelimit-requests-reset", HDR_TIMESTAMP,
	    RL(reset_requests_ms)),
	HF("anthropic-ratelimit-tokens-limit", HDR_ANTHROPIC_COUNT,
	    AT(HDR_FAM_TOKENS, HDR_LIMIT)),
	HF("anthropic-ratelimit-tokens-remaining", HDR_ANTHROPIC_COUNT,
	    AT(HDR_FAM_TOKENS, HDR_REMAINING)),
	HF("anthropic-ratelimit-tokens-reset", HDR_ANTHROPIC_TIMESTAMP,
	    AT(HDR_FAM_TOKENS, HDR_RESET)),
	HF("anthropic-ratelimit-input-tokens-limit", HDR_ANTHROPIC_COUNT,
	    AT(HDR_FAM_INPUT, HDR_LIMIT)),
	HF("anthropic-ratelimit-input-tokens-remaining", HDR_ANTHROPIC_COUNT,
	    AT(HDR_FAM_INPUT, HDR_REMAINING)),
	HF("anthropic-ratelimit-input-tokens-reset", HDR_ANTHROPIC_TIMESTAMP,
	    AT(HDR_FAM_INPUT, HDR_RESET)),
	HF("anthropic-ratelimit-output-tokens-limit", HDR_ANTHROPIC_COUNT,
	    AT(HDR_FAM_OUTPUT, HDR_LIMIT)),
	HF("anthropic-ratelimit-output-tokens-remaining", HDR_ANTHROPIC_COUNT,
	    AT(HDR_FAM_OUTPUT, HDR_REMAINING)),
	HF("anthropic-ratelimit-output-tokens-reset", HDR_ANTHROPIC_TIMESTAMP,
	    AT(HDR_FAM_OUTPUT, HDR_RESET)),
};

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S  INT64_C(1000000000)

static const char *header_months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char *header_days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
	"Sat" };
static const char *header_long_days[] = { "Sunday", "Monday", "Tuesday",
	"Wednesday", "Thursday", "Friday", "Saturday" };

static int
header_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Header values may carry optional whitespace around them. */
static void
header_trim(const char **sp, const char **ep)
{
	const char *s = *sp, *e = s + strlen(s);

	while (s < e && header_is_space(*s))
		s++;
	while (e > s && header_is_space(e[-1]))
		e--;
	*sp = s;
	*ep = e;
}

static int64_t
header_gcd(int64_t a, int64_t b)
{
	int64_t t;

	while (b != 0) {
		t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/*
 * A decimal number with an optional fraction, times unit nanoseconds,
 * added to *ns. Integer arithmetic only, so "7.66s" is exactly 7660 ms;
 * *inexact is set when something below a nanosecond was cut off.
 */
static int
header_decimal_ns(const char **sp, const char *e, int64_t unit, int64_t *ns,
    int *inexact)
{
	const char *s = *sp;
	int64_t ip = 0, num = 0, den = 1, g, f, v;
	int digits = 0;

	while (s < e && isdigit((unsigned char)*s)) {
		if (ip > (INT64_MAX - (*s - '0')) / 10)
			return -1;
		ip = ip * 10 + (*s++ - '0');
		digits++;
	}
	if (s < e && *s == '.') {
		s++;
		while (s < e && isdigit((unsigned char)*s)) {
			/* Nine are plenty; later ones can only round up. */
			if (den < NS_PER_S) {
				num = num * 10 + (*s - '0');
				den *= 10;
			} else if (*s != '0')
				*inexact = 1;
			s++;
			digits++;
		}
	}
	if (digits == 0)
		return -1;

	if (ip > INT64_MAX / unit)
		return -1;
	v = ip * unit;
	/* num * unit / den without overflow: reduce unit/den first. */
	g = header_gcd(unit, den);
	if (num != 0) {
		if (num > INT64_MAX / (unit / g))
			return -1;
		f = num * (unit / g);
		if (f % (den / g) != 0)
			*inexact = 1;
		if (v > INT64_MAX - f / (den / g))
			return -1;
		v += f / (den / g);
	}
	if (*ns > INT64_MAX - v)
		return -1;
	*ns += v;
	*sp = s;
	return 0;
}

static int64_t
header_ns_to_ms(int64_t ns, int inexact)
{
	return ns / NS_PER_MS + (ns % NS_PER_MS != 0 || inexact);
}

/* One plain number in the given unit, the whole value; -1 if garbage. */
static int64_t
header_number_ms(const char *value, int64_t unit)
{
	const char *s = value, *e;
	int64_t ns = 0;
	int inexact = 0;

	header_trim(&s, &e);
	if (header_decimal_ns(&s, e, unit, &ns, &inexact) != 0 || s != e)
		return -1;
	return header_ns_to_ms(ns, inexact);
}

static int64_t
header_count(const char *value)
{
	const char *s = value, *e;
	int64_t v = 0;

	header_trim(&s, &e);
	if (s == e)
		return -1;
	for (; s < e; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v > (INT64_MAX - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/*
 * Go's time.Duration.String() form: one or more <number><unit> with unit
 * h, m, s, ms, us/µs or ns, e.g. "6m0s" or "2m59.56s"; a bare "0" too.
 */
int64_t
header_duration_ms(const char *value)
{
	static const struct {
		const char *name;
		size_t len;
		int64_t ns;
	} units[] = {
		/* Longest first, so "ms" is not read as "m" then "s". */
		{ "ms", 2, NS_PER_MS },
		{ "us", 2, 1000 },
		{ "\xc2\xb5s", 3, 1000 }, /* U+00B5 micro sign */
		{ "\xce\xbcs", 3, 1000 }, /* U+03BC mu */
		{ "ns", 2, 1 },
		{ "h", 1, 3600 * NS_PER_S },
		{ "m", 1, 60 * NS_PER_S },
		{ "s", 1, NS_PER_S },
	};
	const char *s, *e, *num;
	int64_t ns = 0;
	int inexact = 0;
	size_t i;

	if (value == NULL)
		return -1;
	s = value;
	header_trim(&s, &e);
	if (e - s == 1 && *s == '0')
		return 0;
	if (s == e)
		return -1;
	while (s < e) {
		/* The unit decides the scale, so find it before the number. */
		num = s;
		while (s < e && (isdigit((unsigned char)*s) || *s == '.'))
			s++;
		for (i = 0; i < sizeof units / sizeof units[0]; i++) {
			if ((size_t)(e - s) >= units[i].len &&
			    memcmp(s, units[i].name, units[i].len) == 0)
				break;
		}
		if (i == sizeof units / sizeof units[0])
			return -1;
		if (header_decimal_ns(&num, s, units[i].ns, &ns, &inexact) !=
		        0 ||
		    num != s)
			return -1;
		s += units[i].len;
	}
	return header_ns_to_ms(ns, inexact);
}

/* Exactly n digits. */
static int
header_digits(const char **sp, const char *e, int n, int *out)
{
	const char *s = *sp;
	int v = 0;

	if (e - s < n)
		return -1;
	for (; n > 0; n--, s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (*s - '0');
	}
	*sp = s;
	*out = v;
	return 0;
}

static int
header_expect(const char **sp, const char *e, char c)
{
	if (*sp >= e || **sp != c)
		return -1;
	(*sp)++;
	return 0;
}

static int
header_word(const char **sp, const char *e, const char **words, int n)
{
	size_t len;
	int i;

	for (i = 0; i < n; i++) {
		len = strlen(words[i]);
		if ((size_t)(e - *sp) >= len &&
		    strncasecmp(*sp, words[i], len) == 0) {
			*sp += len;
			return i;
		}
	}
	return -1;
}

static int
header_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* timegm normalises 31 April to 1 May; a date like that is garbage here. */
static int
header_mktime(int year, int mon, int day, int hour, int min, int sec,
    int64_t *out)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
		31 };
	struct tm tm;
	time_t t;

	if (mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59 || sec > 60)
		return -1;
	if (day > mdays[mon - 1] + (mon == 2 && header_leap(year)))
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec; /* a leap second rolls into the next minute */
	t = timegm(&tm);
	if (t == (time_t)-1 && !(year == 1969 && mon == 12 && day == 31))
		return -1;
	*out = (int64_t)t;
	return 0;
}

static int
header_clock(const char **sp, const char *e, int *hour, int *min, int *sec)
{
	if (header_digits(sp, e, 2, hour) != 0 ||
	    header_expect(sp, e, ':') != 0 ||
	    header_digits(sp, e, 2, min) != 0 ||
	    header_expect(sp, e, ':') != 0 || header_digits(sp, e, 2, sec) != 0)
		return -1;
	return 0;
}

/* One or two digits: asctime pads the day with a space, some send "6". */
static int
header_day(const char **sp, const char *e, int *day)
{
	if (header_digits(sp, e, 2, day) == 0)
		return 0;
	return header_digits(sp, e, 1, day);
}

static int
header_gmt(const char **sp, const char *e)
{
	static const char *zones[] = { "GMT", "UTC" };

	return header_word(sp, e, zones, 2) < 0 ? -1 : 0;
}

/*
 * HTTP-date (RFC 9110 5.6.7): IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT",
 * and the obsolete RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime
 * "Sun Nov  6 08:49:37 1994" that recipients must still accept.
 */
static int
header_http_date(const char *s, const char *e, time_t now, int64_t *out)
{
	struct tm tm;
	int year, mon, day, hour, min, sec, yy;

	if (header_word(&s, e, header_long_days, 7) >= 0) {
		/* RFC 850, two-digit year. */
		if (header_expect(&s, e, ',') != 0 ||
		    header_expect(&s, e, ' ') != 0 ||
		    header_digits(&s, e, 2, &day) != 0 ||
		    header_expect(&s, e, '-') != 0 ||
		    (mon = header_word(&s, e, header_months, 12)) < 0 ||
		    header_expect(&s, e, '-') != 0 ||
		    header_digits(&s, e, 2, &yy) != 0 ||
		    header_expect(&s, e, ' ') != 0 ||
		    header_clock(&s, e, &hour, &min, &sec) != 0 ||
		    header_expect(&s, e, ' ') != 0 || header_gmt(&s, e) != 0)
			return -1;
		/* RFC 9110: a year more than 50 years ahead is in the past. */
		if (gmtime_r(&now, &tm) == NULL)
			return -1;
		year = (tm.tm_year + 1900) / 100 * 100 + yy;
		if (year > tm.tm_year + 1900 + 50)
			year -= 100;
	} else if (header_word(&s, e, header_days, 7) >= 0) {
		if (s < e && *s == ',') {
			s++;
			if (header_expect(&s, e, ' ') != 0 ||
			    header_day(&s, e, &day) != 0 ||
			    header_expect(&s, e, ' ') != 0 ||
			    (mon = header_word(&s, e, header_months, 12)) < 0 ||
			    header_expect(&s, e, ' ') != 0 ||
			    header_digits(&s, e, 4, &year) != 0 ||
			    header_expect(&s, e, ' ') != 0 ||
			    header_clock(&s, e, &hour, &min, &sec) != 0 ||
			    header_expect(&s, e, ' ') != 0 ||
			    header_gmt(&s, e) != 0)
				return -1;
		} else {
			/* asctime */
			if (header_expect(&s, e, ' ') != 0 ||
			    (mon = header_word(&s, e, header_months, 12)) < 0 ||
			    header_expect(&s, e, ' ') != 0)
				return -1;
			if (s < e && *s == ' ')
				s++;
			if (header_day(&s, e, &day) != 0 ||
			    header_expect(&s, e, ' ') != 0 ||
			    header_clock(&s, e, &hour, &min, &sec) != 0 ||
			    header_expect(&s, e, ' ') != 0 ||
			    header_digits(&s, e, 4, &year) != 0)
				return -1;
		}
	} else
		return -1;
	if (s != e)
		return -1;
	return header_mktime(year, mon + 1, day, hour, min, sec, out);
}

int64_t
header_retry_after_ms(const char *value, time_t now)
{
	const char *s, *e;
	int64_t t;

	if (value == NULL)
		return -1;
	s = value;
	header_trim(&s, &e);
	if (s < e && (isdigit((unsigned char)*s) || *s == '.'))
		return header_number_ms(value, NS_PER_S);
	if (header_http_date(s, e, now, &t) != 0)
		return -1;
	if (t <= (int64_t)now)
		return 0;
	return (t - (int64_t)now) * 1000;
}

/*
 * "2025-08-21T12:40:59Z", with optional fraction and a Z or +hh:mm/-hh:mm
 * offset, to epoch milliseconds; a fraction beyond the millisecond rounds
 * up, since these are times to wait for.
 */
static int
header_rfc3339_ms(const char *value, int64_t *out)
{
	const char *s, *e;
	int year, mon, day, hour, min, sec, oh, om, sign, n;
	int64_t t, ms = 0, scale = 100;
	int more = 0;

	if (value == NULL)
		return -1;
	s = value;
	header_trim(&s, &e);
	if (header_digits(&s, e, 4, &year) != 0 ||
	    header_expect(&s, e, '-') != 0 ||
	    header_digits(&s, e, 2, &mon) != 0 ||
	    header_expect(&s, e, '-') != 0 ||
	    header_digits(&s, e, 2, &day) != 0)
		return -1;
	if (s >= e || (*s != 'T' && *s != 't' && *s != ' '))
		return -1;
	s++;
	if (header_clock(&s, e, &hour, &min, &sec) != 0)
		return -1;
	if (s < e && *s == '.') {
		s++;
		for (n = 0; s < e && isdigit((unsigned char)*s); s++, n++) {
			if (scale > 0) {
				ms += (*s - '0') * scale;
				scale /= 10;
			} else if (*s != '0')
				more = 1;
		}
		if (n == 0)
			return -1;
	}
	if (s < e && (*s == 'Z' || *s == 'z')) {
		s++;
		sign = oh = om = 0;
	} else if (s < e && (*s == '+' || *s == '-')) {
		sign = *s++ == '-' ? -1 : 1;
		if (header_digits(&s, e, 2, &oh) != 0 ||
		    header_expect(&s, e, ':') != 0 ||
		    header_digits(&s, e, 2, &om) != 0 || oh > 23 || om > 59)
			return -1;
	} else
		return -1;
	if (s != e)
		return -1;
	if (header_mktime(year, mon, day, hour, min, sec, &t) != 0)
		return -1;
	/* The local time is ahead of UTC by the offset. */
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*out = t * 1000 + ms + more;
	return 0;
}

int64_t
header_rfc3339(const char *value)
{
	int64_t ms;

	if (header_rfc3339_ms(value, &ms) != 0)
		return -1;
	/* Floor, also for the rare date before 1970. */
	return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

static int64_t
header_reset_ms(const char *value, time_t now)
{
	int64_t ms;

	if (header_rfc3339_ms(value, &ms) != 0)
		return -1;
	ms -= (int64_t)now * 1000;
	return ms < 0 ? 0 : ms;
}

/* Request ids go to the logs: keep them short and printable. */
static void
header_request_id(struct header_rl *info, const char *value)
{
	const char *s = value, *e;
	size_t i;

	header_trim(&s, &e);
	if (s == e)
		return;
	for (i = 0; s < e && i < sizeof info->request_id - 1; i++, s++) {
		if (*s > ' ' && *s < 0x7f)
			info->request_id[i] = *s;
		else
			info->request_id[i] = '_';
	}
	info->request_id[i] = '\0';
}

/*
 * A request needs room in every token family, so the tightest is the one
 * with the least remaining; on a tie the later reset, which is when both
 * have room again. Recomputed on each header so their order is moot.
 */
static void
header_merge_anthropic(struct header_rl *info)
{
	int64_t(*fam)[3] = info->anthropic_tokens;
	int f, best = -1;

	for (f = 0; f < HDR_NFAM; f++) {
		if (fam[f][HDR_REMAINING] == -1)
			continue;
		if (best == -1 ||
		    fam[f][HDR_REMAINING] < fam[best][HDR_REMAINING] ||
		    (fam[f][HDR_REMAINING] == fam[best][HDR_REMAINING] &&
		        fam[f][HDR_RESET] > fam[best][HDR_RESET]))
			best = f;
	}
	if (best == -1) {
		/* No remaining count yet: the first family with anything. */
		for (f = 0; f < HDR_NFAM && best == -1; f++) {
			if (fam[f][HDR_LIMIT] != -1 || fam[f][HDR_RESET] != -1)
				best = f;
		}
	}
	if (best == -1)
		return;
	info->limit_tokens = fam[best][HDR_LIMIT];
	info->remaining_tokens = fam[best][HDR_REMAINING];
	info->reset_tokens_ms = fam[best][HDR_RESET];
}

void
header_rl_init(struct header_rl *info)
{
	int f, i;

	memset(info, 0, sizeof *info);
	info->retry_after_ms = -1;
	info->limit_requests = -1;
	info->remaining_requests = -1;
	info->reset_requests_ms = -1;
	info->limit_tokens = -1;
	info->remaining_tokens = -1;
	info->reset_tokens_ms = -1;
	info->should_retry = -1;
	info->request_id[0] = '\0';
	info->retry_after_exact = 0;
	for (f = 0; f < HDR_NFAM; f++) {
		for (i = 0; i < 3; i++)
			info->anthropic_tokens[f][i] = -1;
	}
}

void
header_rl_add(struct header_rl *info, const char *name, const char *value,
    time_t now)
{
	const struct header_field *hf = NULL;
	const char *s, *e;
	int64_t v = -1;
	size_t i, len;

	if (name == NULL || value == NULL)
		return;
	/* Most of a reply's headers are none of these: a length tells. */
	len = strlen(name);
	for (i = 0; i < sizeof header_fields / sizeof header_fields[0]; i++) {
		if (header_fields[i].len == len &&
		    strcasecmp(name, header_fields[i].name) == 0) {
			hf = &header_fields[i];
			break;
		}
	}
	if (hf == NULL)
		return;

	switch (hf->kind) {
	case HDR_COUNT:
	case HDR_ANTHROPIC_COUNT:
		v = header_count(value);
		break;
	case HDR_DURATION:
		v = header_duration_ms(value);
		break;
	case HDR_TIMESTAMP:
	case HDR_ANTHROPIC_TIMESTAMP:
		v = header_reset_ms(value, now);
		break;
	case HDR_RETRY_AFTER:
		/* The SDKs prefer retry-after-ms, in whatever order. */
		if (info->retry_after_exact)
			return;
		v = header_retry_after_ms(value, now);
		break;
	case HDR_RETRY_AFTER_MS:
		if ((v = header_number_ms(value, NS_PER_MS)) != -1)
			info->retry_after_exact = 1;
		break;
	case HDR_SHOULD_RETRY:
		s = value;
		header_trim(&s, &e);
		if (e - s == 4 && strncasecmp(s, "true", 4) == 0)
			info->should_retry = 1;
		else if (e - s == 5 && strncasecmp(s, "false", 5) == 0)
			info->should_retry = 0;
		return;
	case HDR_GENERATION_ID:
		if (info->request_id[0] != '\0')
			return;
		/* FALLTHROUGH */
	case HDR_REQUEST_ID:
		header_request_id(info, value);
		return;
	}
	if (v == -1)
		return;
	*(int64_t *)((char *)info + hf->off) = v;
	if (hf->kind == HDR_ANTHROPIC_COUNT ||
	    hf->kind == HDR_ANTHROPIC_TIMESTAMP)
		header_merge_anthropic(info);
}
