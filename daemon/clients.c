/*
 * clients.c: client classes. A peer's identity comes from the kernel (its
 * uid and pid by SO_PEERCRED or sock_diag, the systemd unit from its
 * cgroup), from the HTTP front's token, or from the peer itself (the name
 * it gives); the clients block sorts identities into classes, first match
 * first. A class's counters and token budgets live here, keyed by its
 * name, so that a reload keeps them; a config's classes find theirs on
 * first use.
 *
 * Token budgets are fixed UTC windows, a minute and a day. An admission
 * holds its estimate (clients_reserve()) before it queues or goes, and
 * gives it back for what the attempt really used (clients_settle()), so
 * any number of concurrent calls cannot together pass a budget: each one
 * is checked against what is used plus what is held. A reply that uses
 * more than its estimate is still charged in full; the calls after it
 * then wait for the reset.
 *
 * With a cluster block the budgets are the cluster's: each host keeps its
 * own counts as above, and cluster.c tells Redis what it used since it
 * last did, and what it holds now, and reads back the cluster's totals
 * (clients_sync_begin() and _end()). A call is then checked against the
 * cluster's use as last seen, this host's use not yet in it, and every
 * host's holds; while Redis is away, also against this host's share of
 * the budget (1/hosts alive, as the other shared limits).
 */
#include <sys/types.h>

#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llmgated.h"

#define CLIENTS_MINUTE_MS 60000ULL
#define CLIENTS_DAY_MS    86400000ULL
/*
 * Told to Redis at most per window by one host (far past any budget, which
 * is 32-bit): its counters are signed 64-bit and INCRBY fails past that,
 * while a report may claim any count; a host whose use saturates must
 * not add 10^12 every tick until the day's total overflows, failing the
 * script and taking the cluster down with it.
 */
#define CLIENTS_SYNC_MAX 1000000000000ULL

static struct client_state *clients_states;
/* The cluster's mode for every class (clients_cluster()). */
static int clients_fed;
static unsigned clients_share;

/* Without a clients block (or a class named default), everyone's. */
static struct client_class clients_builtin = {
	.name = (char *)"default",
	.weight = 1,
	.max_priority = LLMGATE_PRIO_HIGH,
	.max_share = 1,
};

uint64_t
clients_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
clients_cond(const struct client_match *m, const struct client_ident *id)
{
	switch (m->kind) {
	case CM_UID:
		return id->uid != (uid_t)-1 &&
		    (m->uid == (uid_t)-1 || m->uid == id->uid);
	case CM_UNIT:
		return id->unit[0] != '\0' && fnmatch(m->pat, id->unit, 0) == 0;
	case CM_TOKEN:
		return id->token[0] != '\0' &&
		    fnmatch(m->pat, id->token, 0) == 0;
	case CM_NAME:
		return id->name[0] != '\0' && fnmatch(m->pat, id->name, 0) == 0;
	}
	return 0;
}

/*
 * A class takes a peer that meets one of its uid/user/unit/token
 * conditions and, when it has name conditions, one of those too. The
 * config refuses a class with name conditions only, so a name a client
 * chooses can only narrow: it picks among the classes the peer's kernel
 * identity (or its token) already admits, never into another's.
 */
static int
clients_takes(const struct client_class *k, const struct client_ident *id)
{
	int names = 0, name_ok = 0, who_ok = 0;
	size_t i;

	if (k->nmatch == 0)
		return 0;
	for (i = 0; i < k->nmatch; i++) {
		if (k->match[i].kind == CM_NAME) {
			names = 1;
			name_ok |= clients_cond(&k->match[i], id);
		} else
			who_ok |= clients_cond(&k->match[i], id);
	}
	return who_ok && (!names || name_ok);
}

const struct client_class *
clients_match(const struct config *conf, const struct client_ident *id)
{
	const struct client_class *def = &clients_builtin;
	size_t i;

	for (i = 0; i < conf->nclasses; i++) {
		if (strcmp(conf->classes[i].name, "default") == 0)
			def = &conf->classes[i];
		else if (id != NULL && clients_takes(&conf->classes[i], id))
			return &conf->classes[i];
	}
	return def;
}

struct client_state *
clients_state(const struct client_class *k)
{
	struct client_state *st;

	if (k->st != NULL)
		return k->st;
	for (st = clients_states; st != NULL; st = st->next) {
		if (strcmp(st->name, k->name) == 0)
			break;
	}
	if (st == NULL) {
		st = xcalloc(1, sizeof *st);
		st->name = xstrdup(k->name);
		st->next = clients_states;
		clients_states = st;
	}
	/* The config is the loop's and outlives no state: a cache. */
	((struct client_class *)(uintptr_t)k)->st = st;
	return st;
}

/*
 * One more call or lease of class k: counted, then refused with a message
 * in msg (-1) when the class has max_inflight in flight already; else it
 * is in flight and *stp is the class's state, to count it out again.
 */
int
clients_enter(const struct client_class *k, struct client_state **stp,
    char *msg, size_t len)
{
	struct client_state *st = clients_state(k);

	st->calls++;
	if (k->max_inflight != 0 && st->inflight >= k->max_inflight) {
		st->refused_caps++;
		snprintf(msg, len,
		    "client class '%s' has %u calls and leases in flight, its "
		    "most (max_inflight)",
		    k->name, k->max_inflight);
		return -1;
	}
	st->inflight++;
	*stp = st;
	return 0;
}

int
clients_conn_enter(const struct client_class *k, struct client_state **stp,
    char *msg, size_t len)
{
	struct client_state *st = clients_state(k);

	if (k->max_conns != 0 && st->conns >= k->max_conns) {
		st->refused_caps++;
		snprintf(msg, len,
		    "too many connections for client class '%s' (limit %u)",
		    k->name, k->max_conns);
		return -1;
	}
	st->conns++;
	*stp = st;
	return 0;
}

/* The connection counted in *stp (if any) is gone. */
void
clients_conn_leave(struct client_state **stp)
{
	if (*stp != NULL && (*stp)->conns > 0)
		(*stp)->conns--;
	*stp = NULL;
}

struct client_state *
clients_state_first(void)
{
	return clients_states;
}

void
clients_free_all(void)
{
	struct client_state *st;

	while ((st = clients_states) != NULL) {
		clients_states = st->next;
		free(st->name);
		free(st);
	}
	clients_builtin.st = NULL;
}

/* Does element p (n bytes) end in suffix? */
static int
clients_ends(const char *p, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);

	return n > m && memcmp(p + n - m, suffix, m) == 0;
}

/*
 * The unit in the text of a /proc/PID/cgroup (changed in place): the
 * last path element ending in .service or .scope of the first line that
 * has one ("0::/system.slice/web.service" in cgroup v2,
 * "1:name=systemd:/..." in v1).
 */
void
clients_unit_parse(char *text, char *unit, size_t len)
{
	char *line, *save, *el, *esave, *p;
	size_t m;

	unit[0] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if ((p = strchr(line, ':')) == NULL ||
		    (p = strchr(p + 1, ':')) == NULL)
			continue;
		for (el = strtok_r(p + 1, "/", &esave); el != NULL;
		     el = strtok_r(NULL, "/", &esave)) {
			m = strlen(el);
			if ((clients_ends(el, m, ".service") ||
			        clients_ends(el, m, ".scope")) &&
			    m < len)
				memcpy(unit, el, m + 1);
		}
		if (unit[0] != '\0')
			return;
	}
}

void
clients_unit_of_pid(pid_t pid, char *unit, size_t len)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd;

	unit[0] = '\0';
	if (pid <= 0)
		return;
	snprintf(path, sizeof path, "/proc/%ld/cgroup", (long)pid);
	/* procfs: answered from memory, never waits on a device. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	clients_unit_parse(buf, unit, len);
}

/* high, normal, low as 0, 1, 2. */
static int
clients_level(int prio)
{
	return prio == LLMGATE_PRIO_HIGH ? 0 : prio == LLMGATE_PRIO_LOW ? 2 : 1;
}

enum llmgate_priority
clients_priority(const struct client_class *k, enum llmgate_priority prio)
{
	if (clients_level((int)prio) < clients_level(k->max_priority))
		return (enum llmgate_priority)k->max_priority;
	return prio;
}

static void
clients_minute_reset(struct client_state *st)
{
	st->minute_used = st->minute_sent = st->minute_acked = 0;
	st->minute_seen = 0;
}

static void
clients_day_reset(struct client_state *st)
{
	st->day_used = st->day_sent = st->day_acked = st->day_seen = 0;
}

/* A new minute or day starts from nothing used (held tokens stay held). */
static void
clients_roll(struct client_state *st, uint64_t wall_ms)
{
	if (wall_ms / CLIENTS_MINUTE_MS != st->minute) {
		st->minute = wall_ms / CLIENTS_MINUTE_MS;
		clients_minute_reset(st);
	}
	if (wall_ms / CLIENTS_DAY_MS != st->day) {
		st->day = wall_ms / CLIENTS_DAY_MS;
		clients_day_reset(st);
	}
}

/*
 * A window's use as this host sees it: the cluster's total last seen
 * (which has acked of this host's use in it) plus this host's use since;
 * never less than this host's own (Redis may have lost its keys). Without
 * a cluster, acked and seen are 0: the host's own use.
 */
static uint64_t
clients_view(uint64_t used, uint64_t acked, uint64_t seen)
{
	uint64_t v = rl_tokens_sum(seen, used > acked ? used - acked : 0);

	return v > used ? v : used;
}

/* Tokens held against the class's budgets: here, and fed, elsewhere. */
static uint64_t
clients_held(const struct client_state *st)
{
	return clients_fed ? rl_tokens_sum(st->reserved, st->others_held) :
	                     st->reserved;
}

/*
 * Whether used + held + tokens passes limit, without the sum wrapping:
 * used saturates at UINT64_MAX (a report may claim any count).
 */
static int
clients_over(uint64_t used, uint64_t held, uint64_t tokens, uint64_t limit)
{
	return used > limit || held > limit - used ||
	    tokens > limit - used - held;
}

/* The share of limit one of clients_share hosts keeps to (rounded up). */
static uint64_t
clients_share_of(uint64_t limit)
{
	return (limit + clients_share - 1) / clients_share;
}

/*
 * Whether tokens more pass a window's limit: its use as seen and what is
 * held, and while Redis is away (share > 1), this host's own use against
 * its share too. *share_over says it was the share.
 */
static int
clients_window_over(const struct client_state *st, uint64_t used,
    uint64_t acked, uint64_t seen, uint64_t tokens, uint64_t limit,
    int *share_over)
{
	*share_over = 0;
	if (!clients_fed && clients_share > 1 &&
	    clients_over(used, st->reserved, tokens, clients_share_of(limit))) {
		*share_over = 1;
		return 1;
	}
	return clients_over(clients_view(used, acked, seen), clients_held(st),
	    tokens, limit);
}

/* Which budget of k (CLIENTS_OVER_*, or 0) tokens more would pass. */
static int
clients_which_over(const struct client_class *k, struct client_state *st,
    uint64_t tokens, int *share_over)
{
	if (k->tokens_per_day != 0 &&
	    clients_window_over(st, st->day_used, st->day_acked, st->day_seen,
	        tokens, k->tokens_per_day, share_over))
		return CLIENTS_OVER_DAY;
	if (k->tokens_per_minute != 0 &&
	    clients_window_over(st, st->minute_used, st->minute_acked,
	        st->minute_seen, tokens, k->tokens_per_minute, share_over))
		return CLIENTS_OVER_MINUTE;
	return 0;
}

int
clients_reserve(const struct client_class *k, uint64_t tokens, uint64_t wall_ms,
    uint64_t *retry_ms)
{
	struct client_state *st = clients_state(k);
	int over, share_over;

	*retry_ms = 0;
	clients_roll(st, wall_ms);
	switch ((over = clients_which_over(k, st, tokens, &share_over))) {
	case CLIENTS_OVER_DAY:
		*retry_ms = CLIENTS_DAY_MS - wall_ms % CLIENTS_DAY_MS;
		st->refused_budget++;
		st->over_until = wall_ms + *retry_ms;
		return over;
	case CLIENTS_OVER_MINUTE:
		*retry_ms = CLIENTS_MINUTE_MS - wall_ms % CLIENTS_MINUTE_MS;
		st->refused_budget++;
		if (st->over_until < wall_ms + *retry_ms)
			st->over_until = wall_ms + *retry_ms;
		return over;
	}
	st->reserved += tokens;
	return 0;
}

void
clients_budget_msg(const struct client_class *k, int over, uint64_t tokens,
    uint64_t retry_ms, char *msg, size_t len)
{
	struct client_state *st = clients_state(k);
	uint64_t limit, used, acked, seen, held;
	const char *where = "";
	char share[80];
	int day = over == CLIENTS_OVER_DAY, share_over;

	limit = day ? k->tokens_per_day : k->tokens_per_minute;
	used = day ? st->day_used : st->minute_used;
	acked = day ? st->day_acked : st->minute_acked;
	seen = day ? st->day_seen : st->minute_seen;
	held = clients_held(st);
	share[0] = '\0';
	clients_window_over(st, used, acked, seen, tokens, limit, &share_over);
	if (share_over) {
		/* Redis away: this host's own use against its share. */
		snprintf(share, sizeof share,
		    " this host's share (1/%u while the cluster's Redis is "
		    "unavailable) of",
		    clients_share);
		held = st->reserved;
	} else {
		used = clients_view(used, acked, seen);
		if (clients_fed)
			where = " across the cluster";
	}
	snprintf(msg, len,
	    "client class '%s' has used %llu of%s its %s of "
	    "%llu%s (%llu more held by calls in flight) and this call needs "
	    "about %llu%s; it resets in %llu s (retry_after)",
	    k->name, (unsigned long long)used, share,
	    day ? "tokens_per_day" : "tokens_per_minute",
	    (unsigned long long)limit, where, (unsigned long long)held,
	    (unsigned long long)tokens,
	    tokens > limit ? ", more than all of it" : "",
	    (unsigned long long)((retry_ms + 999) / 1000));
}

void
clients_settle(const struct client_class *k, uint64_t held, uint64_t used,
    uint64_t wall_ms)
{
	struct client_state *st = clients_state(k);

	clients_roll(st, wall_ms);
	st->reserved -= held < st->reserved ? held : st->reserved;
	st->minute_used = rl_tokens_sum(st->minute_used, used);
	st->day_used = rl_tokens_sum(st->day_used, used);
	st->tokens = rl_tokens_sum(st->tokens, used);
}

uint64_t
clients_budget_wait(const struct client_class *k, uint64_t wall_ms)
{
	struct client_state *st = clients_state(k);
	uint64_t w = st->over_until > wall_ms ? st->over_until - wall_ms : 0;
	int share_over;

	clients_roll(st, wall_ms);
	if (k->tokens_per_minute != 0 &&
	    clients_window_over(st, st->minute_used, st->minute_acked,
	        st->minute_seen, 1, k->tokens_per_minute, &share_over) &&
	    w < CLIENTS_MINUTE_MS - wall_ms % CLIENTS_MINUTE_MS)
		w = CLIENTS_MINUTE_MS - wall_ms % CLIENTS_MINUTE_MS;
	if (k->tokens_per_day != 0 &&
	    clients_window_over(st, st->day_used, st->day_acked, st->day_seen,
	        1, k->tokens_per_day, &share_over))
		w = CLIENTS_DAY_MS - wall_ms % CLIENTS_DAY_MS;
	return w;
}

void
clients_cluster(int fed, unsigned share)
{
	clients_fed = fed;
	clients_share = share;
}

/* A window's use not told yet, of the most one host tells in one. */
static uint64_t
clients_unsent(uint64_t used, uint64_t sent)
{
	if (used > CLIENTS_SYNC_MAX)
		used = CLIENTS_SYNC_MAX;
	return used > sent ? used - sent : 0;
}

int
clients_sync_begin(const struct client_class *k, uint64_t wall_ms, uint64_t now,
    uint64_t poll_ms, struct clients_sync *s)
{
	struct client_state *st = clients_state(k);
	uint64_t dm, dd;

	if (st->sync_pending != 0)
		return 0;
	clients_roll(st, wall_ms);
	dm = clients_unsent(st->minute_used, st->minute_sent);
	dd = clients_unsent(st->day_used, st->day_sent);
	/* While another host holds tokens, every tick: they may go soon. */
	if (dm == 0 && dd == 0 && st->reserved == st->held_sent &&
	    st->others_held == 0 && now - st->sync_ms < poll_ms)
		return 0;
	memset(s, 0, sizeof *s);
	s->st = st;
	s->seq = ++st->sync_seq;
	s->minute = st->minute;
	s->day = st->day;
	s->minute_delta = dm;
	s->day_delta = dd;
	st->minute_sent += s->minute_delta;
	st->day_sent += s->day_delta;
	s->minute_sent = st->minute_sent;
	s->day_sent = st->day_sent;
	s->held =
	    st->reserved < CLIENTS_SYNC_MAX ? st->reserved : CLIENTS_SYNC_MAX;
	st->held_sent = st->reserved;
	st->sync_ms = now;
	st->sync_pending = now != 0 ? now : 1;
	return 1;
}

/*
 * A sync Redis did not answer may or may not have counted: its use stays
 * sent, so that none is counted twice (the cluster may see a little less
 * than was used, never more).
 */
void
clients_sync_end(const struct clients_sync *s, int ok, uint64_t minute_total,
    uint64_t day_total, uint64_t others_held)
{
	struct client_state *st = s->st;

	if (s->seq == st->sync_seq)
		st->sync_pending = 0;
	if (!ok)
		return;
	/* A window that has passed meanwhile is not this one. */
	if (s->minute == st->minute) {
		st->minute_seen = minute_total;
		st->minute_acked = s->minute_sent;
	}
	if (s->day == st->day) {
		st->day_seen = day_total;
		st->day_acked = s->day_sent;
	}
	st->others_held = others_held;
}

int
clients_sync_late(uint64_t now, uint64_t timeout_ms)
{
	struct client_state *st;

	for (st = clients_states; st != NULL; st = st->next) {
		if (st->sync_pending != 0 &&
		    now - st->sync_pending > timeout_ms)
			return 1;
	}
	return 0;
}

/* A string for status; null when empty or not UTF-8 (a client's bytes). */
static json_t *
clients_str(const char *s)
{
	json_t *v = s[0] != '\0' ? json_string(s) : NULL;

	return v != NULL ? v : json_null();
}

/*
 * A count as JSON: counts saturate at UINT64_MAX (a lease report may claim
 * any), which a signed JSON integer would show as -1 and the state file
 * would not read back: INT64_MAX stands for any count past it.
 */
static json_t *
clients_count(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

json_t *
clients_peer_json(const struct config *conf, const char *kind,
    const struct client_ident *id, unsigned inflight, uint64_t tokens)
{
	json_t *o = json_object();

	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "uid",
	    id->uid != (uid_t)-1 ? json_integer((json_int_t)id->uid) :
	                           json_null());
	json_object_set_new(o, "pid",
	    id->pid > 0 ? json_integer((json_int_t)id->pid) : json_null());
	json_object_set_new(o, "unit", clients_str(id->unit));
	json_object_set_new(o, "token", clients_str(id->token));
	json_object_set_new(o, "name", clients_str(id->name));
	json_object_set_new(o, "class",
	    json_string(clients_match(conf, id)->name));
	json_object_set_new(o, "inflight", json_integer(inflight));
	json_object_set_new(o, "tokens", clients_count(tokens));
	return o;
}

static json_t *
clients_limit(uint64_t v)
{
	return v != 0 ? json_integer((json_int_t)v) : json_null();
}

static json_t *
clients_class_json(const struct client_class *k, uint64_t wall_ms)
{
	struct client_state *st = clients_state(k);
	json_t *o = json_object();

	clients_roll(st, wall_ms);
	json_object_set_new(o, "name", json_string(k->name));
	json_object_set_new(o, "weight", json_integer(k->weight));
	json_object_set_new(o, "max_priority",
	    json_string(llmgate_priority_name(k->max_priority)));
	json_object_set_new(o, "max_share", json_real(k->max_share));
	json_object_set_new(o, "max_inflight", clients_limit(k->max_inflight));
	json_object_set_new(o, "max_queued", clients_limit(k->max_queued));
	json_object_set_new(o, "max_conns", clients_limit(k->max_conns));
	json_object_set_new(o, "conns", json_integer(st->conns));
	json_object_set_new(o, "inflight", json_integer(st->inflight));
	json_object_set_new(o, "queued", json_integer(st->queued));
	json_object_set_new(o, "budget_scope",
	    json_string(clients_fed   ? "cluster" :
	            clients_share > 0 ? "share" :
	                                "host"));
	json_object_set_new(o, "tokens_held", clients_count(clients_held(st)));
	json_object_set_new(o, "tokens_minute",
	    clients_count(clients_view(st->minute_used, st->minute_acked,
	        st->minute_seen)));
	json_object_set_new(o, "tokens_minute_here",
	    clients_count(st->minute_used));
	json_object_set_new(o, "tokens_per_minute",
	    clients_limit(k->tokens_per_minute));
	json_object_set_new(o, "tokens_day",
	    clients_count(
	        clients_view(st->day_used, st->day_acked, st->day_seen)));
	json_object_set_new(o, "tokens_day_here", clients_count(st->day_used));
	json_object_set_new(o, "tokens_per_day",
	    clients_limit(k->tokens_per_day));
	json_object_set_new(o, "budget_resets_in_ms",
	    json_integer((json_int_t)clients_budget_wait(k, wall_ms)));
	json_object_set_new(o, "calls", json_integer((json_int_t)st->calls));
	json_object_set_new(o, "tokens", clients_count(st->tokens));
	json_object_set_new(o, "refused_budget",
	    json_integer((json_int_t)st->refused_budget));
	json_object_set_new(o, "refused_caps",
	    json_integer((json_int_t)st->refused_caps));
	return o;
}

/* Every class of conf, and the built-in default when conf has none. */
json_t *
clients_status_json(const struct config *conf, uint64_t wall_ms)
{
	json_t *a = json_array();
	size_t i;
	int def = 0;

	for (i = 0; i < conf->nclasses; i++) {
		def |= strcmp(conf->classes[i].name, "default") == 0;
		json_array_append_new(a,
		    clients_class_json(&conf->classes[i], wall_ms));
	}
	if (!def)
		json_array_append_new(a,
		    clients_class_json(&clients_builtin, wall_ms));
	return a;
}

/*
 * The state file's part: each class's use of this UTC minute and day, so
 * that a restart does not hand out a fresh budget. Held tokens are not
 * saved: their calls end with the daemon.
 */
json_t *
clients_save_json(uint64_t wall_ms)
{
	struct client_state *st;
	json_t *a = json_array();

	for (st = clients_states; st != NULL; st = st->next) {
		clients_roll(st, wall_ms);
		if (st->gone || (st->minute_used == 0 && st->day_used == 0))
			continue;
		/* What a cluster was told of it: the rest is told after a
		 * restart, as it would have been after an outage. */
		json_array_append_new(a,
		    json_pack("{s:s, s:I, s:o, s:I, s:o, s:o, s:o}", "name",
		        st->name, "minute", (json_int_t)st->minute,
		        "minute_used", clients_count(st->minute_used), "day",
		        (json_int_t)st->day, "day_used",
		        clients_count(st->day_used), "minute_sent",
		        clients_count(st->minute_sent), "day_sent",
		        clients_count(st->day_sent)));
	}
	return a;
}

/* Whether conf has a class named name (the built-in default it always has). */
static int
clients_known(const struct config *conf, const char *name)
{
	size_t i;

	if (strcmp(name, clients_builtin.name) == 0)
		return 1;
	for (i = 0; i < conf->nclasses; i++) {
		if (strcmp(conf->classes[i].name, name) == 0)
			return 1;
	}
	return 0;
}

/*
 * A reload: a class the new config does not have drops its token use, as
 * a restart would (clients_load_json()). Its state stays, as calls and
 * connections of the old config still count in it, but is not saved; a
 * reload that brings the class back starts it from nothing.
 */
void
clients_reconfigure(const struct config *conf)
{
	struct client_state *st;
	int gone;

	for (st = clients_states; st != NULL; st = st->next) {
		gone = !clients_known(conf, st->name);
		if (gone && !st->gone &&
		    (st->minute_used != 0 || st->day_used != 0))
			log_info("client class '%s' is not in the config; its "
			         "token use is dropped",
			    st->name);
		if (gone) {
			clients_minute_reset(st);
			clients_day_reset(st);
		}
		st->gone = gone;
	}
}

/* A window's use told to the cluster as saved, never more than used. */
static uint64_t
clients_saved_sent(const json_t *o, const char *key, uint64_t used)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > used)
		return used;
	return (uint64_t)json_integer_value(v);
}

/*
 * Restore what clients_save_json() wrote; a bad entry is skipped, and so
 * is a class conf does not have: nothing would use it, and it would be
 * saved again at every save.
 */
void
clients_load_json(const struct config *conf, const json_t *a, uint64_t wall_ms)
{
	struct client_class k;
	struct client_state *st;
	const json_t *o, *name;
	json_int_t v[4];
	static const char *keys[] = { "minute", "minute_used", "day",
		"day_used" };
	size_t i, j;

	json_array_foreach(a, i, o) {
		name = json_object_get(o, "name");
		for (j = 0; j < 4; j++) {
			if (!json_is_integer(json_object_get(o, keys[j])) ||
			    (v[j] = json_integer_value(
			         json_object_get(o, keys[j]))) < 0)
				break;
		}
		if (!json_is_string(name) ||
		    json_string_length(name) >= CLIENT_NAME_MAX || j < 4) {
			log_warnx("state file: client class %zu: not a name "
			          "and counts; skipped",
			    i);
			continue;
		}
		if (!clients_known(conf, json_string_value(name))) {
			log_debug("state file: client class '%s' is not in the "
			          "config; its token use is dropped",
			    json_string_value(name));
			continue;
		}
		memset(&k, 0, sizeof k);
		k.name = (char *)(uintptr_t)json_string_value(name);
		st = clients_state(&k);
		st->minute = (uint64_t)v[0];
		st->minute_used = (uint64_t)v[1];
		st->day = (uint64_t)v[2];
		st->day_used = (uint64_t)v[3];
		/*
		 * What a cluster had before the restart is not told again;
		 * the rest (used while Redis was away, or since the last
		 * tick) is. A file from before the counts were saved: all.
		 */
		st->minute_sent = st->minute_acked =
		    clients_saved_sent(o, "minute_sent", st->minute_used);
		st->day_sent = st->day_acked =
		    clients_saved_sent(o, "day_sent", st->day_used);
		/* A minute or day that has passed starts from nothing. */
		clients_roll(st, wall_ms);
	}
}
