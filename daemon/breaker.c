/*
 * breaker.c: a target's circuit breaker, pure. Closed, it counts upstream
 * failures: a run of them, or too high a failure rate over a sliding
 * window, opens it; open, every call skips the target for open_ms; then
 * half-open lets a few probes through and the first probe to come back
 * with a verdict closes it again or reopens it for longer.
 *
 * Only the upstream's health counts. A 429 is the rate limiter's business
 * (ratelimit.c cools the target down), and a caller's own mistakes or a
 * cancelled call say nothing about the upstream, so those count as
 * neither success nor failure.
 *
 * Every call that breaker_allow() admits carries a ticket naming the
 * breaker's epoch, which changes on every transition. An answer from an
 * earlier epoch (a call that went out before the breaker opened, a probe
 * of a half-open period already decided) is stale and ignored, so a late
 * reply cannot decide a state it was never admitted under.
 */
#include <string.h>

#include "llmgated.h"

static const char *breaker_state_names[BREAKER_STATE_MAX] = {
	[BREAKER_CLOSED] = "closed",
	[BREAKER_OPEN] = "open",
	[BREAKER_HALF_OPEN] = "half_open",
};

const char *
breaker_state_name(enum breaker_state state)
{
	if ((unsigned)state >= BREAKER_STATE_MAX)
		return NULL;
	return breaker_state_names[state];
}

/* 1 an upstream failure, 0 a success, -1 not counted. */
int
breaker_class(enum llmgate_class cls)
{
	switch (cls) {
	case LLMGATE_OK:
		return 0;
	case LLMGATE_SERVER_ERROR:
	case LLMGATE_OVERLOADED:
	case LLMGATE_TIMEOUT:
	case LLMGATE_CONNECTION:
	case LLMGATE_PARSE_ERROR:
		return 1;
	default:
		return -1;
	}
}

void
breaker_init(struct breaker *b)
{
	memset(b, 0, sizeof *b);
	b->state = BREAKER_CLOSED;
	b->mult = 1;
}

/* Tickets: odd for a probe, never 0, the epoch in the upper bits. */
static int
breaker_ticket(const struct breaker *b, int probe)
{
	return (int)(((b->epoch % 0x3fffffffU) + 1) << 1 | (probe ? 1 : 0));
}

static void
breaker_window_clear(struct breaker *b)
{
	memset(b->slot, 0, sizeof b->slot);
}

/* Count one call in the window of window_ms, kept as BREAKER_SLOTS slots. */
static void
breaker_window_add(struct breaker *b, const struct breaker_conf *bc,
    int failure, uint64_t now, uint32_t *calls, uint32_t *failures)
{
	uint32_t slot_ms = bc->window_ms / BREAKER_SLOTS;
	uint64_t start, oldest;
	unsigned i;

	if (slot_ms == 0)
		slot_ms = 1;
	/* A reload changed the window: slots of another width mean nothing. */
	if (b->slot_ms != slot_ms) {
		breaker_window_clear(b);
		b->slot_ms = slot_ms;
	}
	start = now - now % slot_ms;
	i = (unsigned)((now / slot_ms) % BREAKER_SLOTS);
	if (b->slot[i].start != start || b->slot[i].calls == 0) {
		b->slot[i].start = start;
		b->slot[i].calls = 0;
		b->slot[i].failures = 0;
	}
	b->slot[i].calls++;
	if (failure)
		b->slot[i].failures++;

	/* The current slot and the BREAKER_SLOTS - 1 before it. */
	oldest = start >= (uint64_t)(BREAKER_SLOTS - 1) * slot_ms ?
	    start - (uint64_t)(BREAKER_SLOTS - 1) * slot_ms :
	    0;
	*calls = *failures = 0;
	for (i = 0; i < BREAKER_SLOTS; i++) {
		if (b->slot[i].calls == 0 || b->slot[i].start < oldest ||
		    b->slot[i].start > start)
			continue;
		*calls += b->slot[i].calls;
		*failures += b->slot[i].failures;
	}
}

static void
breaker_open(struct breaker *b, const struct breaker_conf *bc, uint64_t now)
{
	if (b->mult == 0)
		b->mult = 1;
	b->state = BREAKER_OPEN;
	b->epoch++;
	b->open_until = now + (uint64_t)bc->open_ms * b->mult;
	b->probes = 0;
	b->consecutive = 0;
	breaker_window_clear(b);
}

static void
breaker_close(struct breaker *b)
{
	b->state = BREAKER_CLOSED;
	b->epoch++;
	b->mult = 1;
	b->probes = 0;
	b->consecutive = 0;
	breaker_window_clear(b);
}

/*
 * May a call go to the target now? 0: skip it (class circuit_open).
 * Otherwise a ticket to hand to breaker_record() when the call ends;
 * BREAKER_IS_PROBE(ticket) when it went as a half-open probe.
 */
int
breaker_allow(struct breaker *b, const struct breaker_conf *bc, uint64_t now)
{
	uint32_t probes = bc->half_open_probes != 0 ? bc->half_open_probes : 1;

	switch (b->state) {
	case BREAKER_CLOSED:
		return breaker_ticket(b, 0);
	case BREAKER_OPEN:
		if (now < b->open_until)
			return 0;
		b->state = BREAKER_HALF_OPEN;
		b->epoch++;
		b->probes = 0;
		/* FALLTHROUGH */
	case BREAKER_HALF_OPEN:
	default:
		if (b->probes >= probes)
			return 0;
		b->probes++;
		return breaker_ticket(b, 1);
	}
}

/*
 * A call admitted with ticket ended with cls. A ticket of 0 (never
 * admitted) is ignored, so callers may pass whatever they hold.
 */
void
breaker_record(struct breaker *b, const struct breaker_conf *bc, int ticket,
    enum llmgate_class cls, uint64_t now)
{
	int kind = breaker_class(cls);
	uint32_t calls, failures, min_calls;

	if (ticket == 0 ||
	    ticket != breaker_ticket(b, BREAKER_IS_PROBE(ticket)))
		return;

	if (b->state == BREAKER_HALF_OPEN) {
		/* Only probes hold tickets of a half-open epoch. */
		if (b->probes > 0)
			b->probes--;
		if (kind == 0)
			breaker_close(b);
		else if (kind == 1) {
			/* Still failing: each reopening waits twice as long. */
			if (b->mult == 0)
				b->mult = 1;
			b->mult = b->mult <= BREAKER_MAX_MULT / 2 ?
			    b->mult * 2 :
			    BREAKER_MAX_MULT;
			breaker_open(b, bc, now);
		}
		return;
	}
	if (b->state != BREAKER_CLOSED || kind == -1)
		return;

	breaker_window_add(b, bc, kind, now, &calls, &failures);
	if (kind == 0) {
		b->consecutive = 0;
		return;
	}
	b->consecutive++;
	if (bc->failures != 0 && b->consecutive >= bc->failures) {
		breaker_open(b, bc, now);
		return;
	}
	min_calls = bc->min_calls != 0 ? bc->min_calls : 1;
	if (bc->failure_rate > 0 && bc->window_ms != 0 && calls >= min_calls &&
	    (double)failures / calls >= bc->failure_rate)
		breaker_open(b, bc, now);
}

/*
 * A state saved before a restart (state.c). An open or half-open breaker
 * comes back open until open_until, with its reopening multiplier; at or
 * before now that means half-open on its next use, which is also right for
 * a half-open one, whose probes died with the process. A closed one keeps
 * its run of failures. The window is not kept: its slots are in a clock
 * that did not survive.
 */
void
breaker_restore(struct breaker *b, enum breaker_state state,
    uint64_t open_until, uint32_t mult, uint32_t consecutive)
{
	uint32_t epoch = b->epoch;

	/* A new epoch: no ticket handed out before may decide this state. */
	breaker_init(b);
	b->epoch = epoch + 1;
	if (state == BREAKER_CLOSED) {
		b->consecutive = consecutive;
		return;
	}
	b->state = BREAKER_OPEN;
	b->open_until = open_until;
	if (mult == 0)
		mult = 1;
	b->mult = mult > BREAKER_MAX_MULT ? BREAKER_MAX_MULT : mult;
}

/* The state as breaker_allow() would find it at now. */
enum breaker_state
breaker_state(const struct breaker *b, uint64_t now)
{
	if (b->state == BREAKER_OPEN && now >= b->open_until)
		return BREAKER_HALF_OPEN;
	return b->state;
}

/* ms until an open breaker lets probes through; 0 when not open. */
uint64_t
breaker_open_remaining(const struct breaker *b, uint64_t now)
{
	if (b->state != BREAKER_OPEN || now >= b->open_until)
		return 0;
	return b->open_until - now;
}
