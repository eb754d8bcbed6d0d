/*
 * ratelimit.c: a target's rate budget, pure. Requests and tokens per
 * minute are token buckets with continuous refill; what the provider's
 * rate-limit headers say tightens them (or supplies a limit when none is
 * configured); 429s and spent quotas cool the target down for every
 * caller. Nothing here reads a clock: every entry point takes now, a
 * CLOCK_MONOTONIC reading in ms.
 *
 * Levels are kept in 1/RL_SCALE of a unit with RL_SCALE = 60000, so that
 * a bucket of `limit` per minute refills by exactly `limit` per ms and all
 * arithmetic is integer and exact.
 */
#include <stdint.h>
#include <string.h>

#include "llmgated.h"

/* Debt is honest but bounded, so that no sequence of charges overflows. */
#define BUCKET_FLOOR (-(INT64_C(1) << 62))
/* And so is a fed bucket's stock, which may pass its capacity. */
#define BUCKET_CEILING (INT64_C(1) << 62)

/* Why a target is held; a table, so that rl_restore() finds them again. */
#define RL_WHY_RETRY_AFTER  "rate_limited: retry-after"
#define RL_WHY_RATE_LIMITED "rate_limited"
#define RL_WHY_QUOTA        "quota_exhausted"
#define RL_WHY_REQUESTS     "requests exhausted until reset"
#define RL_WHY_TOKENS       "tokens exhausted until reset"
#define RL_WHY_RESTORED     "restored after a restart"
static const char *rl_reasons[] = { RL_WHY_RETRY_AFTER, RL_WHY_RATE_LIMITED,
	RL_WHY_QUOTA, RL_WHY_REQUESTS, RL_WHY_TOKENS, RL_WHY_RESTORED };

static uint64_t
bucket_default_capacity(uint64_t limit)
{
	uint64_t cap = (limit + 59) / 60;

	return cap == 0 ? 1 : cap;
}

/*
 * The level at now, refilled at limit per ms and capped at the capacity.
 * A fed bucket's is what the cluster's slices brought, as it is.
 */
static int64_t
bucket_level(const struct bucket *b, uint64_t now)
{
	int64_t full = (int64_t)(b->capacity * RL_SCALE);
	uint64_t elapsed, deficit;

	if (b->limit == 0)
		return full;
	if (b->fed)
		return b->level;
	if (b->level >= full)
		return full;
	elapsed = now > b->last ? now - b->last : 0;
	deficit = (uint64_t)(full - b->level);
	/* Compare before multiplying: elapsed * limit may not fit. */
	if (elapsed >= deficit / b->limit + 1)
		return full;
	return b->level + (int64_t)(elapsed * b->limit);
}

static void
bucket_refill(struct bucket *b, uint64_t now)
{
	if (b->limit == 0)
		return;
	b->level = bucket_level(b, now);
	if (now > b->last)
		b->last = now;
}

/*
 * Add delta units (negative: charge), within the floor and the capacity.
 * A fed bucket keeps units past its capacity: they came from the cluster
 * (a refund settled on a full stock, a grant landing after refunds filled
 * it), and dropping them would lose them to every host; the slice policy
 * gives them back at the next tick (slice_tick()).
 */
static void
bucket_adjust(struct bucket *b, int64_t delta, uint64_t now)
{
	int64_t full, d;

	if (b->limit == 0)
		return;
	bucket_refill(b, now);
	full = (int64_t)(b->capacity * RL_SCALE);
	if (delta > UINT32_MAX)
		delta = UINT32_MAX;
	if (delta < -(int64_t)UINT32_MAX)
		delta = -(int64_t)UINT32_MAX;
	d = delta * RL_SCALE;
	if (d < 0 && b->level < BUCKET_FLOOR - d)
		b->level = BUCKET_FLOOR;
	else if (d > 0 && b->level > BUCKET_CEILING - d)
		b->level = BUCKET_CEILING;
	else
		b->level += d;
	if (b->level > full && !b->fed)
		b->level = full;
}

/* Never more than max units available (a provider's remaining count). */
static void
bucket_clamp(struct bucket *b, uint64_t max, uint64_t now)
{
	if (b->limit == 0)
		return;
	bucket_refill(b, now);
	if (max < b->capacity && b->level > (int64_t)(max * RL_SCALE))
		b->level = (int64_t)(max * RL_SCALE);
}

/*
 * Set the limit and capacity (0: one second's worth). On a reload the
 * level carries over under the old rate, then is clamped to the new
 * capacity, so that a reload neither grants a fresh burst nor forgets debt.
 * A bucket that was unlimited has no meaningful level and starts full. A
 * fed bucket's stock is the cluster's: what is past a smaller capacity is
 * given back by the slice policy, not dropped.
 */
void
bucket_setup(struct bucket *b, uint64_t limit, uint64_t capacity, uint64_t now)
{
	int64_t full;

	if (limit > UINT32_MAX)
		limit = UINT32_MAX;
	if (limit == 0) {
		memset(b, 0, sizeof *b);
		return;
	}
	if (capacity == 0)
		capacity = bucket_default_capacity(limit);
	if (capacity > UINT32_MAX)
		capacity = UINT32_MAX;
	full = (int64_t)(capacity * RL_SCALE);
	if (b->limit == 0) {
		b->level = full;
		b->last = now;
	} else if (b->fed) {
		b->last = now;
	} else {
		bucket_refill(b, now);
		if (b->level > full)
			b->level = full;
	}
	b->limit = limit;
	b->capacity = capacity;
}

/*
 * How long until n units are there. A request larger than the whole
 * capacity could never fit; it goes when the bucket is full and leaves it
 * in debt, which later requests pay back. Always finite.
 */
uint64_t
bucket_wait_ms(const struct bucket *b, uint64_t n, uint64_t now)
{
	int64_t level, need;

	if (b->limit == 0)
		return 0;
	if (n > b->capacity)
		n = b->capacity;
	need = (int64_t)(n * RL_SCALE);
	level = bucket_level(b, now);
	if (level >= need)
		return 0;
	if (b->fed)
		return BUCKET_FED_WAIT_MS;
	return ((uint64_t)(need - level) + b->limit - 1) / b->limit;
}

/*
 * A charge of n units, at most a minute's worth: a request larger than
 * that could never have been served, and a client's absurd count must not
 * put a target in debt for days.
 */
static uint64_t
bucket_charge(const struct bucket *b, uint64_t n)
{
	return b->limit != 0 && n > b->limit ? b->limit : n;
}

void
bucket_take(struct bucket *b, uint64_t n, uint64_t now)
{
	n = bucket_charge(b, n);
	bucket_adjust(b, -(int64_t)(n > UINT32_MAX ? UINT32_MAX : n), now);
}

/* Whole units available, rounded towards minus infinity. */
int64_t
bucket_available(const struct bucket *b, uint64_t now)
{
	int64_t level;

	if (b->limit == 0)
		return 0;
	level = bucket_level(b, now);
	if (level >= 0)
		return level / RL_SCALE;
	return -((-level + RL_SCALE - 1) / RL_SCALE);
}

/*
 * Feed a fed bucket: add n units the cluster granted (negative: take them
 * out, given back), within the capacity. No-op on any other bucket.
 */
void
bucket_feed(struct bucket *b, int64_t n, uint64_t now)
{
	if (b->limit == 0 || !b->fed)
		return;
	bucket_adjust(b, n, now);
}

/*
 * Switch between refilling by the clock (fed 0) and being fed by the
 * cluster's slices (fed 1). A bucket that starts being fed starts empty:
 * what it had came from the clock, and the cluster now decides. One that
 * stops keeps what it holds and refills from now.
 */
static void
bucket_set_fed(struct bucket *b, int fed, uint64_t now)
{
	if (b->limit == 0 || b->fed == fed) {
		b->fed = b->limit != 0 ? fed : 0;
		return;
	}
	if (fed) {
		b->level = 0;
		b->fed = 1;
	} else {
		b->fed = 0;
		if (b->level > (int64_t)(b->capacity * RL_SCALE))
			b->level = (int64_t)(b->capacity * RL_SCALE);
	}
	b->last = now;
}

/* limit / share, rounded up and at least 1 (0: none). */
static uint64_t
rl_share_of(uint64_t v, uint32_t share)
{
	if (v == 0 || share <= 1)
		return v;
	v = (v + share - 1) / share;
	return v == 0 ? 1 : v;
}

/*
 * The configured limit wins; a learned one fills in when there is none.
 * A cluster host without the shared budget keeps to its share of it.
 */
static void
rl_apply(struct ratelimit *rl, uint64_t now)
{
	uint64_t rpm = rl->rpm != 0 ? rl->rpm : rl->learned_rpm;
	uint64_t tpm = rl->tpm != 0 ? rl->tpm : rl->learned_tpm;

	bucket_setup(&rl->req, rl_share_of(rpm, rl->share),
	    rl_share_of(rl->burst, rl->share), now);
	bucket_setup(&rl->tok, rl_share_of(tpm, rl->share),
	    rl_share_of(rl->tpm_burst, rl->share), now);
	bucket_set_fed(&rl->req, rl->fed, now);
	bucket_set_fed(&rl->tok, rl->fed, now);
}

/*
 * The cluster's view: fed, the buckets take only what the cluster's
 * slices bring; else share > 1 divides the limits (Redis is away and this
 * host keeps to limit / live hosts). fed 0, share 0: a single host.
 */
void
rl_cluster(struct ratelimit *rl, int fed, uint32_t share, uint64_t now)
{
	rl->fed = fed;
	rl->share = fed ? 0 : share;
	rl_apply(rl, now);
}

/* The limit the cluster shares (configured, else learned); 0: none. */
uint64_t
rl_cluster_limit(const struct ratelimit *rl, int tokens)
{
	if (tokens)
		return rl->tpm != 0 ? rl->tpm : rl->learned_tpm;
	return rl->rpm != 0 ? rl->rpm : rl->learned_rpm;
}

/* Its capacity: the configured burst, else one second's worth. */
uint64_t
rl_cluster_capacity(const struct ratelimit *rl, int tokens)
{
	uint64_t limit = rl_cluster_limit(rl, tokens);
	uint32_t burst = tokens ? rl->tpm_burst : rl->burst;

	if (limit == 0)
		return 0;
	return burst != 0 ? burst : bucket_default_capacity(limit);
}

/*
 * Configure from config_limits() (0: none). Also the reload path: levels,
 * learned limits and cooldowns survive. A zeroed struct ratelimit is an
 * unlimited one, so this may come any time after creation.
 */
void
rl_setup(struct ratelimit *rl, uint32_t rpm, uint32_t tpm, uint32_t burst,
    uint32_t tpm_burst, uint64_t now)
{
	rl->rpm = rpm;
	rl->tpm = tpm;
	rl->burst = burst;
	rl->tpm_burst = tpm_burst;
	rl_apply(rl, now);
}

/* Hold the target until until; an earlier hold never shortens a later one. */
static void
rl_hold(struct ratelimit *rl, uint64_t ms, const char *reason, uint64_t now)
{
	if (ms > RL_HOLD_MAX_MS)
		ms = RL_HOLD_MAX_MS;
	if (ms == 0 || now + ms <= rl->cooldown_until)
		return;
	rl->cooldown_until = now + ms;
	rl->cooldown_reason = reason;
}

/*
 * ms until a call estimated at tokens may go: the longest of the
 * cooldown, one request and the tokens (see bucket_wait_ms() for calls
 * larger than the token capacity). 0: go now, then rl_take().
 */
uint64_t
rl_wait_ms(const struct ratelimit *rl, uint32_t tokens, uint64_t now)
{
	uint64_t wait = 0, w;

	if (rl->cooldown_until > now)
		wait = rl->cooldown_until - now;
	if ((w = bucket_wait_ms(&rl->req, 1, now)) > wait)
		wait = w;
	if ((w = bucket_wait_ms(&rl->tok, tokens, now)) > wait)
		wait = w;
	return wait;
}

/* A call goes out: one request and its estimated tokens. */
void
rl_take(struct ratelimit *rl, uint32_t tokens, uint64_t now)
{
	bucket_take(&rl->req, 1, now);
	bucket_take(&rl->tok, tokens, now);
}

uint64_t
rl_tokens_sum(uint64_t input, uint64_t output)
{
	return input > UINT64_MAX - output ? UINT64_MAX : input + output;
}

/*
 * The provider reported actual tokens (input plus output) for a call
 * taken at estimated: refund the difference, or charge it into debt.
 */
void
rl_reconcile(struct ratelimit *rl, uint32_t estimated, uint64_t actual,
    uint64_t now)
{
	/* Both as bucket_take() charged them. */
	actual = bucket_charge(&rl->tok, actual);
	if (actual > UINT32_MAX)
		actual = UINT32_MAX;
	bucket_adjust(&rl->tok,
	    (int64_t)bucket_charge(&rl->tok, estimated) - (int64_t)actual, now);
}

/* What one header family says about one bucket. */
static void
rl_learn_one(struct ratelimit *rl, struct bucket *b, int64_t limit,
    uint32_t *learned, int64_t remaining, int64_t reset_ms, const char *reason,
    uint64_t now)
{
	if (limit > 0) {
		*learned = limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit;
		rl_apply(rl, now);
	}
	if (remaining < 0)
		return;
	bucket_clamp(b, (uint64_t)remaining, now);
	/*
	 * Nothing left: hold until the provider's reset. Without a reset,
	 * a bucket with a limit refills from zero on its own; an unlimited
	 * one has nothing to refill, so it waits a default moment.
	 */
	if (remaining == 0) {
		if (reset_ms >= 0)
			rl_hold(rl, (uint64_t)reset_ms, reason, now);
		else if (b->limit == 0)
			rl_hold(rl, RL_RESET_DEFAULT_MS, reason, now);
	}
}

/* Rate-limit headers of any response, 2xx or not. */
void
rl_learn(struct ratelimit *rl, const struct header_rl *ri, uint64_t now)
{
	rl_learn_one(rl, &rl->req, ri->limit_requests, &rl->learned_rpm,
	    ri->remaining_requests, ri->reset_requests_ms, RL_WHY_REQUESTS,
	    now);
	rl_learn_one(rl, &rl->tok, ri->limit_tokens, &rl->learned_tpm,
	    ri->remaining_tokens, ri->reset_tokens_ms, RL_WHY_TOKENS, now);
}

/*
 * An attempt's outcome. A 429 holds the target for every caller: until
 * its Retry-After, or for a default that doubles on each 429 without one
 * and starts over after a success. A spent quota does not come back in
 * seconds whatever the provider hints, so it holds for RL_QUOTA_MS at
 * least. retry_after_ms: -1 when none.
 */
void
rl_on_result(struct ratelimit *rl, enum llmgate_class cls,
    int64_t retry_after_ms, uint64_t now)
{
	uint64_t ms;

	switch (cls) {
	case LLMGATE_OK:
		rl->backoff_ms = 0;
		break;
	case LLMGATE_RATE_LIMITED:
		if (retry_after_ms >= 0) {
			rl_hold(rl, (uint64_t)retry_after_ms,
			    RL_WHY_RETRY_AFTER, now);
			break;
		}
		if (rl->backoff_ms == 0)
			rl->backoff_ms = RL_COOLDOWN_MS;
		else if (rl->backoff_ms < RL_COOLDOWN_MAX_MS / 2)
			rl->backoff_ms *= 2;
		else
			rl->backoff_ms = RL_COOLDOWN_MAX_MS;
		rl_hold(rl, rl->backoff_ms, RL_WHY_RATE_LIMITED, now);
		break;
	case LLMGATE_QUOTA_EXHAUSTED:
		ms = RL_QUOTA_MS;
		if (retry_after_ms > (int64_t)ms)
			ms = (uint64_t)retry_after_ms;
		rl_hold(rl, ms, RL_WHY_QUOTA, now);
		break;
	default:
		break;
	}
}

/* For status: limits and availability (null when no limit) and the hold. */
void
rl_status(const struct ratelimit *rl, uint64_t now, struct rl_status *st)
{
	memset(st, 0, sizeof *st);
	st->rpm_limit = rl->req.limit != 0 ? (int64_t)rl->req.limit : -1;
	st->rpm_available = bucket_available(&rl->req, now);
	st->tpm_limit = rl->tok.limit != 0 ? (int64_t)rl->tok.limit : -1;
	st->tpm_available = bucket_available(&rl->tok, now);
	if (rl->cooldown_until > now) {
		st->cooldown_ms = rl->cooldown_until - now;
		st->cooldown_reason = rl->cooldown_reason;
	}
}

/*
 * A level saved elapsed ms ago, in whole units (negative: debt), refilled
 * since at today's rate. Never above the level the bucket has now, so that
 * a restart neither forgets debt nor grants more than the config allows.
 */
static void
bucket_restore(struct bucket *b, int64_t units, uint64_t elapsed, uint64_t now)
{
	int64_t full, level;

	if (b->limit == 0)
		return;
	bucket_refill(b, now);
	full = (int64_t)(b->capacity * RL_SCALE);
	if (units > (int64_t)b->capacity)
		units = (int64_t)b->capacity;
	if (units < -(int64_t)UINT32_MAX)
		units = -(int64_t)UINT32_MAX;
	level = units * RL_SCALE;
	/* Compare before multiplying, as bucket_level() does. */
	if (elapsed >= (uint64_t)(full - level) / b->limit + 1)
		level = full;
	else
		level += (int64_t)(elapsed * b->limit);
	if (level < b->level)
		b->level = level;
}

/*
 * What of a target's budget outlives the process (state.c): learned
 * limits, the hold and the levels of limited buckets. Non-zero when any of
 * it differs from what a fresh target would have.
 */
int
rl_save(const struct ratelimit *rl, uint64_t now, struct rl_saved *s)
{
	int worth;

	memset(s, 0, sizeof *s);
	s->learned_rpm = rl->learned_rpm;
	s->learned_tpm = rl->learned_tpm;
	if (rl->cooldown_until > now) {
		s->cooldown_ms = rl->cooldown_until - now;
		s->cooldown_reason = rl->cooldown_reason;
	}
	worth =
	    s->learned_rpm != 0 || s->learned_tpm != 0 || s->cooldown_ms != 0;
	if (rl->req.limit != 0) {
		s->has_req = 1;
		s->req_level = bucket_available(&rl->req, now);
		if (s->req_level < (int64_t)rl->req.capacity)
			worth = 1;
	}
	if (rl->tok.limit != 0) {
		s->has_tok = 1;
		s->tok_level = bucket_available(&rl->tok, now);
		if (s->tok_level < (int64_t)rl->tok.capacity)
			worth = 1;
	}
	return worth;
}

/*
 * Back after a restart, elapsed ms after rl_save(): learned limits first
 * (they may give a bucket its limit), then what is left of the hold, then
 * the levels. The reason is matched to a known one, since the struct keeps
 * static strings only.
 */
void
rl_restore(struct ratelimit *rl, const struct rl_saved *s, uint64_t elapsed,
    uint64_t now)
{
	const char *why = RL_WHY_RESTORED;
	size_t i;

	if (s->learned_rpm != 0)
		rl->learned_rpm = s->learned_rpm;
	if (s->learned_tpm != 0)
		rl->learned_tpm = s->learned_tpm;
	rl_apply(rl, now);
	if (s->cooldown_ms > elapsed) {
		for (i = 0; i < sizeof rl_reasons / sizeof rl_reasons[0]; i++) {
			if (s->cooldown_reason != NULL &&
			    strcmp(s->cooldown_reason, rl_reasons[i]) == 0)
				why = rl_reasons[i];
		}
		rl_hold(rl, s->cooldown_ms - elapsed, why, now);
	}
	if (s->has_req)
		bucket_restore(&rl->req, s->req_level, elapsed, now);
	if (s->has_tok)
		bucket_restore(&rl->tok, s->tok_level, elapsed, now);
}

/*
 * Tokens a call will count against tpm before the provider says: about
 * four bytes of prompt per token, plus the output it may produce
 * (max_tokens, or RL_DEFAULT_TOKENS when the caller left it unset, since
 * a provider's own default is unknown here). Reconciled afterwards.
 */
uint32_t
rl_estimate_tokens(size_t prompt_bytes, uint32_t max_tokens)
{
	uint64_t t = prompt_bytes / 4 + (prompt_bytes % 4 != 0);

	t += max_tokens != 0 ? max_tokens : RL_DEFAULT_TOKENS;
	return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

/* Another host's hold on a target reached us: hold it here too. */
void
rl_cooldown(struct ratelimit *rl, uint64_t ms, const char *reason, uint64_t now)
{
	rl_hold(rl, ms, reason, now);
}

const char *
rl_reason(int i)
{
	if (i < 0 || (size_t)i >= sizeof rl_reasons / sizeof rl_reasons[0])
		return NULL;
	return rl_reasons[i];
}

int
rl_reason_index(const char *why)
{
	size_t i;

	for (i = 0; why != NULL && i < sizeof rl_reasons / sizeof rl_reasons[0];
	     i++) {
		if (strcmp(why, rl_reasons[i]) == 0)
			return (int)i;
	}
	return -1;
}
