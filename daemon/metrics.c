/*
 * metrics.c: the daemon's state as Prometheus text exposition (format
 * 0.0.4), for `llmgate metrics` and, when metrics_listen is set, an HTTP
 * endpoint on the event loop. Gauges and totals are read from
 * server_status(), so the two views never disagree; per-(target, class)
 * outcomes and the call latency histogram are kept here, fed by call.c.
 */
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "llmgated.h"

/*
 * Series kept by metrics_observe_*: every (target, class) cell and every
 * target's histogram counts against METRICS_MAX_SERIES; observations
 * beyond it are folded into target="other" (a name no target can have,
 * since targets are provider/model), so a flood of distinct targets
 * cannot grow the scrape without bound.
 */
#define METRICS_MAX_SERIES	4096
#define METRICS_HASH		256
#define METRICS_NBUCKETS	11
#define METRICS_HIST_SERIES	(METRICS_NBUCKETS + 3)	/* +Inf, sum, count */
#define METRICS_OTHER		"other"

static const uint64_t metrics_bucket_ms[METRICS_NBUCKETS] = {
	10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000
};
static const char *metrics_bucket_le[METRICS_NBUCKETS] = {
	"0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
	"60"
};

static const char *metrics_breaker_states[] = {
	"closed", "open", "half_open"
};

struct metrics_target {
	char *name;
	uint64_t calls[LLMGATE_CLASS_MAX];	/* ended here, by class */
	uint64_t attempts[LLMGATE_CLASS_MAX];
	uint64_t buckets[METRICS_NBUCKETS + 1];	/* not cumulative; +Inf */
	uint64_t count;
	uint64_t sum_ms;
	struct metrics_target *next;	/* creation order */
	struct metrics_target *hnext;
};

static struct metrics_target *metrics_hash[METRICS_HASH];
static struct metrics_target *metrics_first, **metrics_last = &metrics_first;
static struct metrics_target metrics_other;
static size_t metrics_nseries;
static uint64_t metrics_folded;

static char *metrics_addr;	/* what the endpoint is bound to */

static unsigned
metrics_hashstr(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % METRICS_HASH;
}

static struct metrics_target *
metrics_find(const char *name)
{
	struct metrics_target *t;

	for (t = metrics_hash[metrics_hashstr(name)]; t != NULL; t = t->hnext) {
		if (strcmp(t->name, name) == 0)
			return t;
	}
	return NULL;
}

/*
 * The entry an observation of target goes to, given whether it needs a
 * calls cell of cls, an attempts cell, and the histogram.
 */
static struct metrics_target *
metrics_slot(const char *name, enum llmgate_class cls, int call, int hist)
{
	struct metrics_target *t;
	size_t need = 0;
	unsigned h;

	if (metrics_other.name == NULL)
		metrics_other.name = (char *)(uintptr_t)METRICS_OTHER;
	if (name == NULL || *name == '\0')
		name = "none";
	t = metrics_find(name);
	if (call && (t == NULL || t->calls[cls] == 0))
		need++;
	if (!call && (t == NULL || t->attempts[cls] == 0))
		need++;
	if (hist && (t == NULL || t->count == 0))
		need += METRICS_HIST_SERIES;
	if (need == 0)
		return t;
	if (metrics_nseries + need > METRICS_MAX_SERIES) {
		metrics_folded++;
		return &metrics_other;
	}
	metrics_nseries += need;
	if (t == NULL) {
		t = xcalloc(1, sizeof *t);
		t->name = xstrdup(name);
		h = metrics_hashstr(name);
		t->hnext = metrics_hash[h];
		metrics_hash[h] = t;
		*metrics_last = t;
		metrics_last = &t->next;
	}
	return t;
}

static enum llmgate_class
metrics_class(enum llmgate_class cls)
{
	return (int)cls < 0 || cls >= LLMGATE_CLASS_MAX ? LLMGATE_INTERNAL :
	    cls;
}

/* A call ended; target is the last one it tried (NULL: none). */
void
metrics_observe_call(const char *target, enum llmgate_class cls,
    uint64_t latency_ms)
{
	struct metrics_target *t;
	size_t i;

	cls = metrics_class(cls);
	t = metrics_slot(target, cls, 1, 1);
	t->calls[cls]++;
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		if (latency_ms <= metrics_bucket_ms[i])
			break;
	}
	t->buckets[i]++;
	t->count++;
	t->sum_ms += latency_ms;
}

/* An upstream attempt ended (or a target was skipped) with cls. */
void
metrics_observe_attempt(const char *target, enum llmgate_class cls)
{
	struct metrics_target *t;

	cls = metrics_class(cls);
	t = metrics_slot(target, cls, 0, 0);
	t->attempts[cls]++;
}

/* Rendering: a family's HELP and TYPE come with its first sample. */
struct metrics_family {
	const char *name;
	const char *type;
	const char *help;
	int shown;
};

static void
metrics_head(struct buf *b, struct metrics_family *f)
{
	if (f->shown)
		return;
	f->shown = 1;
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
	    f->name, f->type);
}

/* A label value: backslash, double quote and newline escaped; any other
 * control character (a carriage return would end the line for some
 * parsers) becomes '?'. */
static void
metrics_escape(struct buf *b, const char *s)
{
	const char *p;

	for (p = s; *p != '\0'; p++) {
		switch (*p) {
		case '\\':
			buf_addstr(b, "\\\\");
			break;
		case '"':
			buf_addstr(b, "\\\"");
			break;
		case '\n':
			buf_addstr(b, "\\n");
			break;
		default:
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				buf_addstr(b, "?");
			else
				buf_add(b, p, 1);
			break;
		}
	}
}

/* name{labels} and a space; labels is NULL or already escaped. */
static void
metrics_name(struct buf *b, const char *name, const char *suffix,
    const char *labels)
{
	buf_printf(b, "%s%s", name, suffix != NULL ? suffix : "");
	if (labels != NULL && *labels != '\0')
		buf_printf(b, "{%s}", labels);
	buf_addstr(b, " ");
}

static void
metrics_u64(struct buf *b, struct metrics_family *f, const char *labels,
    uint64_t v)
{
	metrics_head(b, f);
	metrics_name(b, f->name, NULL, labels);
	buf_printf(b, "%llu\n", (unsigned long long)v);
}

static void
metrics_double(struct buf *b, struct metrics_family *f, const char *suffix,
    const char *labels, double v)
{
	metrics_head(b, f);
	metrics_name(b, f->name, suffix, labels);
	if (v == (double)(int64_t)v && v > -9007199254740992.0 &&
	    v < 9007199254740992.0)
		buf_printf(b, "%lld\n", (long long)v);
	else
		buf_printf(b, "%.17g\n", v);
}

/* A JSON number member as a sample; null or absent gives none. */
static void
metrics_json(struct buf *b, struct metrics_family *f, const char *labels,
    const json_t *obj, const char *key, double scale)
{
	const json_t *v = json_object_get(obj, key);

	if (json_is_number(v))
		metrics_double(b, f, NULL, labels, json_number_value(v) * scale);
}

/* A status key as a metric name part: [a-zA-Z0-9_] only. */
static char *
metrics_sanitize(const char *key)
{
	char *s = xstrdup(key), *p;

	for (p = s; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && *p != '_')
			*p = '_';
	}
	return s;
}

static int
metrics_endswith(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void
metrics_render_globals(struct buf *b, const json_t *st)
{
	static const struct {
		const char *key;
		const char *name;
		const char *help;
	} counters[] = {
		{ "calls", "llmgate_calls_total", "Calls received." },
		{ "attempts", "llmgate_attempts_total",
		    "Upstream attempts made." },
		{ "retries", "llmgate_retries_total",
		    "Attempts that retried the same target after a backoff." },
		{ "fallbacks", "llmgate_fallbacks_total",
		    "Moves from one target of a chain to the next." },
		{ "failed", "llmgate_failed_calls_total",
		    "Calls that ended in an error." },
		{ "repairs", "llmgate_repairs_total",
		    "Invalid replies fed back to the model for a repair." },
	};
	struct metrics_family f;
	struct buf lb = { 0 };
	const json_t *v, *obj;
	const char *key;
	char *name, *help, *san;
	size_t i;
	int known;

	if ((v = json_object_get(st, "version")) != NULL && json_is_string(v)) {
		f = (struct metrics_family){ "llmgate_info", "gauge",
		    "llmgated's version, as a label.", 0 };
		buf_addstr(&lb, "version=\"");
		metrics_escape(&lb, json_string_value(v));
		buf_addstr(&lb, "\"");
		metrics_u64(b, &f, lb.data, 1);
		buf_free(&lb);
	}
	f = (struct metrics_family){ "llmgate_uptime_seconds", "gauge",
	    "Seconds since llmgated started.", 0 };
	metrics_json(b, &f, NULL, st, "uptime_s", 1);
	f = (struct metrics_family){ "llmgate_clients", "gauge",
	    "Connected clients.", 0 };
	metrics_json(b, &f, NULL, st, "clients", 1);
	f = (struct metrics_family){ "llmgate_inflight_calls", "gauge",
	    "Calls in flight.", 0 };
	metrics_json(b, &f, NULL, st, "inflight", 1);
	f = (struct metrics_family){ "llmgate_queued_calls", "gauge",
	    "Calls waiting for budget.", 0 };
	metrics_json(b, &f, NULL, st, "queued", 1);

	obj = json_object_get(st, "counters");
	for (i = 0; i < sizeof counters / sizeof counters[0]; i++) {
		f = (struct metrics_family){ counters[i].name, "counter",
		    counters[i].help, 0 };
		metrics_json(b, &f, NULL, obj, counters[i].key, 1);
	}
	/*
	 * Counters status gains later still show, under a derived name; a
	 * key of the table above is shown once, by the table (two HELP/TYPE
	 * blocks for one family make the whole scrape invalid).
	 */
	json_object_foreach((json_t *)(uintptr_t)obj, key, v) {
		known = 0;
		for (i = 0; i < sizeof counters / sizeof counters[0]; i++)
			known |= strcmp(key, counters[i].key) == 0;
		if (known || !json_is_number(v))
			continue;
		san = metrics_sanitize(key);
		xasprintf(&name, "llmgate_%s_total", san);
		xasprintf(&help, "The status counter %s.", san);
		f = (struct metrics_family){ name, "counter", help, 0 };
		metrics_double(b, &f, NULL, NULL, json_number_value(v));
		free(name);
		free(help);
		free(san);
	}
	obj = json_object_get(st, "retry_budget");
	json_object_foreach((json_t *)(uintptr_t)obj, key, v) {
		if (!json_is_number(v))
			continue;
		san = metrics_sanitize(key);
		/* Prometheus names spell units out: min_per_s, per second. */
		xasprintf(&name, "llmgate_retry_budget_%s%s", san,
		    metrics_endswith(san, "_per_s") ? "econd" : "");
		xasprintf(&help, "The machine-wide retry budget: %s.", san);
		f = (struct metrics_family){ name, "gauge", help, 0 };
		metrics_double(b, &f, NULL, NULL, json_number_value(v));
		free(name);
		free(help);
		free(san);
	}
}

/* Per-target families from status; labels[i] is target i's label set. */
static void
metrics_render_targets(struct buf *b, const json_t *targets)
{
	static const struct {
		const char *key;
		const char *sub;
		const char *name;
		const char *type;
		const char *help;
		double scale;
	} fams[] = {
		{ "inflight", NULL, "llmgate_target_inflight", "gauge",
		    "Attempts in flight at the target.", 1 },
		{ "queued", NULL, "llmgate_target_queued", "gauge",
		    "Calls waiting for the target's budget.", 1 },
		{ "rpm", "limit", "llmgate_target_rpm_limit", "gauge",
		    "Requests per minute the target allows.", 1 },
		{ "rpm", "available", "llmgate_target_rpm_available", "gauge",
		    "Requests the target's budget admits now.", 1 },
		{ "tpm", "limit", "llmgate_target_tpm_limit", "gauge",
		    "Tokens per minute the target allows.", 1 },
		{ "tpm", "available", "llmgate_target_tpm_available", "gauge",
		    "Tokens the target's budget admits now.", 1 },
		{ "cooldown_ms", NULL, "llmgate_target_cooldown_seconds",
		    "gauge", "Seconds until the target's cooldown ends.",
		    0.001 },
		{ "calls", NULL, "llmgate_target_requests_total", "counter",
		    "Upstream attempts started at the target.", 1 },
		{ "failures", NULL, "llmgate_target_failures_total", "counter",
		    "Attempts at the target that failed.", 1 },
	};
	struct metrics_family f;
	struct buf lb = { 0 };
	const json_t *t, *name, *obj, *br;
	size_t i, j, k, n = json_array_size(targets);
	char **labels = xcalloc(n + 1, sizeof *labels);

	json_array_foreach(targets, i, t) {
		name = json_object_get(t, "target");
		buf_reset(&lb);
		buf_addstr(&lb, "target=\"");
		metrics_escape(&lb, json_is_string(name) ?
		    json_string_value(name) : "");
		buf_addstr(&lb, "\"");
		labels[i] = xstrdup(lb.data);
	}
	for (k = 0; k < sizeof fams / sizeof fams[0]; k++) {
		f = (struct metrics_family){ fams[k].name, fams[k].type,
		    fams[k].help, 0 };
		json_array_foreach(targets, i, t) {
			obj = fams[k].sub != NULL ?
			    json_object_get(t, fams[k].key) : t;
			metrics_json(b, &f, labels[i], obj,
			    fams[k].sub != NULL ? fams[k].sub : fams[k].key,
			    fams[k].scale);
		}
	}

	f = (struct metrics_family){ "llmgate_breaker_state", "gauge",
	    "1 for the state the target's circuit breaker is in.", 0 };
	json_array_foreach(targets, i, t) {
		br = json_object_get(t, "breaker");
		if (!json_is_string(br))
			continue;
		for (j = 0; j < sizeof metrics_breaker_states /
		    sizeof metrics_breaker_states[0]; j++) {
			buf_reset(&lb);
			buf_printf(&lb, "%s,state=\"%s\"", labels[i],
			    metrics_breaker_states[j]);
			metrics_u64(b, &f, lb.data, strcmp(json_string_value(br),
			    metrics_breaker_states[j]) == 0);
		}
	}

	for (i = 0; i < n; i++)
		free(labels[i]);
	free(labels);
	buf_free(&lb);
}

/* The cluster, from status's "cluster": nothing without a cluster block. */
static void
metrics_render_cluster(struct buf *b, const json_t *c)
{
	static const char *budgets[] = { "requests", "tokens" };
	struct metrics_family f;
	struct buf lb = { 0 };
	const json_t *t, *r, *state;
	size_t i, k;

	if (!json_is_object(c))
		return;
	state = json_object_get(c, "state");
	f = (struct metrics_family){ "llmgate_cluster_up", "gauge",
	    "1 while Redis feeds this host's shared budgets; 0 while it keeps "
	    "to its share of each limit.", 0 };
	metrics_u64(b, &f, NULL, json_is_string(state) &&
	    strcmp(json_string_value(state), "up") == 0);
	f = (struct metrics_family){ "llmgate_cluster_hosts", "gauge",
	    "Hosts alive in the cluster, at the last heartbeat.", 0 };
	metrics_json(b, &f, NULL, c, "hosts_alive", 1);
	f = (struct metrics_family){ "llmgate_cluster_outages_total",
	    "counter", "Times Redis became unavailable.", 0 };
	metrics_json(b, &f, NULL, c, "outages", 1);
	f = (struct metrics_family){ "llmgate_cluster_signals_sent_total",
	    "counter", "Holds, learned limits and open breakers this host "
	    "told the others.", 0 };
	metrics_json(b, &f, NULL, c, "signals_sent", 1);
	f = (struct metrics_family){ "llmgate_cluster_signals_received_total",
	    "counter", "Holds, learned limits and open breakers other hosts "
	    "told this one.", 0 };
	metrics_json(b, &f, NULL, c, "signals_received", 1);
	f = (struct metrics_family){ "llmgate_cluster_slice", "gauge",
	    "Units of a shared budget this host holds now.", 0 };
	for (k = 0; k < 2; k++) {
		json_array_foreach(json_object_get(c, "targets"), i, t) {
			r = json_object_get(t, budgets[k]);
			buf_reset(&lb);
			buf_addstr(&lb, "target=\"");
			metrics_escape(&lb, json_string_value(json_object_get(t,
			    "target")));
			buf_printf(&lb, "\",budget=\"%s\"", budgets[k]);
			metrics_json(b, &f, lb.data, r, "slice", 1);
		}
	}
	f = (struct metrics_family){ "llmgate_cluster_level", "gauge",
	    "The shared budget's level in Redis, as last seen.", 0 };
	for (k = 0; k < 2; k++) {
		json_array_foreach(json_object_get(c, "targets"), i, t) {
			r = json_object_get(t, budgets[k]);
			buf_reset(&lb);
			buf_addstr(&lb, "target=\"");
			metrics_escape(&lb, json_string_value(json_object_get(t,
			    "target")));
			buf_printf(&lb, "\",budget=\"%s\"", budgets[k]);
			metrics_json(b, &f, lb.data, r, "cluster_level", 1);
		}
	}
	buf_free(&lb);
}

static void
metrics_target_label(struct buf *lb, const struct metrics_target *t)
{
	buf_reset(lb);
	buf_addstr(lb, "target=\"");
	metrics_escape(lb, t->name);
	buf_addstr(lb, "\"");
}

/* The observed series: the table, then "other" when it was used. */
static const struct metrics_target *
metrics_next(const struct metrics_target *t)
{
	if (t == NULL)
		t = metrics_first;
	else if (t == &metrics_other)
		return NULL;
	else
		t = t->next;
	if (t == NULL && metrics_folded != 0)
		t = &metrics_other;
	return t;
}

static void
metrics_render_observed(struct buf *b)
{
	struct metrics_family calls = { "llmgate_target_calls_total",
	    "counter", "Calls that ended at the target (the last one they "
	    "tried), by class.", 0 };
	struct metrics_family atts = { "llmgate_target_attempts_total",
	    "counter", "Upstream attempts by target and class.", 0 };
	struct metrics_family hist = { "llmgate_call_duration_seconds",
	    "histogram", "Call latency, first attempt to answer, waits "
	    "included, by the target that ended the call.", 0 };
	struct metrics_family folded = { "llmgate_metrics_folded_total",
	    "counter", "Observations counted under target=\"other\" because "
	    "the series limit was reached.", 0 };
	const struct metrics_target *t;
	struct buf lb = { 0 }, cl = { 0 };
	uint64_t cum;
	int c;
	size_t i;

	for (t = metrics_next(NULL); t != NULL; t = metrics_next(t)) {
		metrics_target_label(&lb, t);
		for (c = 0; c < LLMGATE_CLASS_MAX; c++) {
			if (t->calls[c] == 0)
				continue;
			buf_reset(&cl);
			buf_printf(&cl, "%s,class=\"%s\"", lb.data,
			    llmgate_class_name(c));
			metrics_u64(b, &calls, cl.data, t->calls[c]);
		}
	}
	for (t = metrics_next(NULL); t != NULL; t = metrics_next(t)) {
		metrics_target_label(&lb, t);
		for (c = 0; c < LLMGATE_CLASS_MAX; c++) {
			if (t->attempts[c] == 0)
				continue;
			buf_reset(&cl);
			buf_printf(&cl, "%s,class=\"%s\"", lb.data,
			    llmgate_class_name(c));
			metrics_u64(b, &atts, cl.data, t->attempts[c]);
		}
	}
	for (t = metrics_next(NULL); t != NULL; t = metrics_next(t)) {
		if (t->count == 0)
			continue;
		metrics_target_label(&lb, t);
		metrics_head(b, &hist);
		for (i = 0, cum = 0; i <= METRICS_NBUCKETS; i++) {
			cum += t->buckets[i];
			buf_printf(b, "%s_bucket{%s,le=\"%s\"} %llu\n",
			    hist.name, lb.data, i < METRICS_NBUCKETS ?
			    metrics_bucket_le[i] : "+Inf",
			    (unsigned long long)cum);
		}
		buf_printf(b, "%s_sum{%s} %llu.%03llu\n", hist.name, lb.data,
		    (unsigned long long)(t->sum_ms / 1000),
		    (unsigned long long)(t->sum_ms % 1000));
		buf_printf(b, "%s_count{%s} %llu\n", hist.name, lb.data,
		    (unsigned long long)t->count);
	}
	metrics_u64(b, &folded, NULL, metrics_folded);
	buf_free(&lb);
	buf_free(&cl);
}

/* The whole exposition; the caller frees it. */
char *
metrics_render(void)
{
	struct buf b = { 0 };
	json_t *st = server_status();

	metrics_render_globals(&b, st);
	metrics_render_targets(&b, json_object_get(st, "targets"));
	metrics_render_cluster(&b, json_object_get(st, "cluster"));
	metrics_render_observed(&b);
	json_decref(st);
	return b.data != NULL ? b.data : xstrdup("");
}

/*
 * "host:port" or "[v6addr]:port" -> host (allocated) and port. 0, or -1
 * with *cause; config-keys.c checks metrics_listen with it.
 */
int
metrics_hostport(const char *s, char **host, uint16_t *port, char **cause)
{
	const char *colon, *end;
	char *p;
	unsigned long v;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':') {
			xasprintf(cause, "'%s' is not [ADDRESS]:PORT", s);
			return -1;
		}
		colon = end + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s))) {
			xasprintf(cause, "'%s' is not HOST:PORT (an IPv6 "
			    "address goes in brackets: [::1]:9464)", s);
			return -1;
		}
		end = colon;
	}
	if (end == s) {
		xasprintf(cause, "'%s' has no host (use 127.0.0.1 for "
		    "loopback only)", s);
		return -1;
	}
	errno = 0;
	v = strtoul(colon + 1, &p, 10);
	if (!isdigit((unsigned char)colon[1]) || *p != '\0' || errno != 0 ||
	    v == 0 || v > 65535) {
		xasprintf(cause, "'%s': the port must be 1 to 65535",
		    colon + 1);
		return -1;
	}
	if (host != NULL)
		*host = xstrndup(s, (size_t)(end - s));
	if (port != NULL)
		*port = (uint16_t)v;
	return 0;
}

/*
 * The GET /metrics endpoint: a listener of our own rather than evhttp's,
 * since it may face users the Unix socket's permissions keep out, and
 * libevent 2.1's evhttp can neither cap its connections nor bound how
 * long one may take. Here METRICS_MAX_CONNS connections at most are open:
 * a new one then closes the oldest that has not sent its whole request
 * yet (or is itself refused when all are being answered), so clients that
 * connect and trickle cannot keep a scraper out. Each must send its
 * request and read the answer within METRICS_CONN_MS of being accepted,
 * however slowly it trickles; a request is one line plus headers within
 * METRICS_MAX_REQUEST bytes; the answer is HTTP/1.1 with Connection:
 * close. Out of descriptors, accepting pauses for a second, as on the
 * Unix socket; repeated errors and refusals are logged once per 10 s.
 */
#define METRICS_MAX_CONNS	32
#define METRICS_CONN_MS		5000
#define METRICS_MAX_REQUEST	8192
#define METRICS_LOG_EVERY_MS	10000

struct metrics_conn {
	struct bufferevent *bev;
	struct event *deadline;
	int answered;
	struct metrics_conn *next, **prevp;
};

static struct evconnlistener *metrics_listener;
static struct event *metrics_resume_ev;
static struct metrics_conn *metrics_conns;
static unsigned metrics_nconns;
static uint64_t metrics_refused;	/* over the cap, since last logged */
static uint64_t metrics_refused_logged;	/* ms */

static void
metrics_conn_free(struct metrics_conn *mc)
{
	*mc->prevp = mc->next;
	if (mc->next != NULL)
		mc->next->prevp = mc->prevp;
	metrics_nconns--;
	bufferevent_free(mc->bev);
	event_free(mc->deadline);
	free(mc);
}

static void
metrics_conn_deadline(evutil_socket_t fd, short events, void *arg)
{
	metrics_conn_free(arg);
}

/* The whole answer queued; the connection goes once it is written. */
static void
metrics_conn_answer(struct metrics_conn *mc, int code, const char *reason,
    const char *ctype, const char *body, int head)
{
	struct evbuffer *out = bufferevent_get_output(mc->bev);
	size_t len = body != NULL ? strlen(body) : 0;

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n", code,
	    reason, ctype, len, code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head && len != 0)
		evbuffer_add(out, body, len);
	mc->answered = 1;
	bufferevent_disable(mc->bev, EV_READ);
	bufferevent_enable(mc->bev, EV_WRITE);
}

/* A complete request head is in: answer it. */
static void
metrics_conn_request(struct metrics_conn *mc, const char *line)
{
	char method[8], target[256], version[16], *q;
	const char *text_plain = "text/plain; charset=utf-8";
	char *text;
	int head;

	if (sscanf(line, "%7s %255s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0) {
		metrics_conn_answer(mc, 400, "Bad Request", text_plain,
		    "bad request\n", 0);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		metrics_conn_answer(mc, 405, "Method Not Allowed", text_plain,
		    "only GET and HEAD\n", 0);
		return;
	}
	if ((q = strchr(target, '?')) != NULL)
		*q = '\0';
	if (strcmp(target, "/metrics") != 0) {
		metrics_conn_answer(mc, 404, "Not Found", text_plain,
		    "not found: the metrics are at /metrics\n", head);
		return;
	}
	text = metrics_render();
	metrics_conn_answer(mc, 200, "OK",
	    "text/plain; version=0.0.4; charset=utf-8", text, head);
	free(text);
}

static void
metrics_conn_read(struct bufferevent *bev, void *arg)
{
	struct metrics_conn *mc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	size_t len = evbuffer_get_length(in);
	char *line;

	if (mc->answered)
		return;
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos == -1) {
		if (len > METRICS_MAX_REQUEST)
			metrics_conn_answer(mc, 431, "Request Header Fields "
			    "Too Large", "text/plain; charset=utf-8",
			    "request too large\n", 0);
		return;
	}
	line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
	metrics_conn_request(mc, line != NULL ? line : "");
	free(line);
}

static void
metrics_conn_write(struct bufferevent *bev, void *arg)
{
	struct metrics_conn *mc = arg;

	if (mc->answered &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		metrics_conn_free(mc);
}

static void
metrics_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct metrics_conn *mc = arg;

	/* An error, or EOF before the request: nothing more to do. An EOF
	 * after it (a half-close) still gets the answer written. */
	if ((what & BEV_EVENT_ERROR) ||
	    ((what & BEV_EVENT_EOF) && !mc->answered))
		metrics_conn_free(mc);
}

static void
metrics_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct timeval tv = { METRICS_CONN_MS / 1000,
	    (METRICS_CONN_MS % 1000) * 1000 };
	struct metrics_conn *mc, *oldest = NULL;
	uint64_t now;

	if (metrics_nconns >= METRICS_MAX_CONNS) {
		for (mc = metrics_conns; mc != NULL; mc = mc->next) {
			if (!mc->answered)
				oldest = mc;
		}
		metrics_refused++;
		now = now_ms();
		if (now - metrics_refused_logged >= METRICS_LOG_EVERY_MS) {
			log_warnx("metrics: %llu connection(s) closed or "
			    "refused: %d open at once at most",
			    (unsigned long long)metrics_refused,
			    METRICS_MAX_CONNS);
			metrics_refused = 0;
			metrics_refused_logged = now;
		}
		if (oldest == NULL) {
			evutil_closesocket(fd);
			return;
		}
		metrics_conn_free(oldest);
	}
	mc = xcalloc(1, sizeof *mc);
	mc->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (mc->bev == NULL) {
		evutil_closesocket(fd);
		free(mc);
		return;
	}
	mc->deadline = evtimer_new(evconnlistener_get_base(l),
	    metrics_conn_deadline, mc);
	evtimer_add(mc->deadline, &tv);
	bufferevent_setcb(mc->bev, metrics_conn_read, metrics_conn_write,
	    metrics_conn_event, mc);
	bufferevent_setwatermark(mc->bev, EV_READ, 0, METRICS_MAX_REQUEST + 1);
	bufferevent_enable(mc->bev, EV_READ);
	mc->next = metrics_conns;
	if (mc->next != NULL)
		mc->next->prevp = &mc->next;
	mc->prevp = &metrics_conns;
	metrics_conns = mc;
	metrics_nconns++;
}

static void
metrics_resume(evutil_socket_t fd, short events, void *arg)
{
	if (metrics_listener != NULL)
		evconnlistener_enable(metrics_listener);
}

/* Out of descriptors: pause for a second rather than spin on accept. */
static void
metrics_accept_error(struct evconnlistener *l, void *arg)
{
	struct timeval tv = { 1, 0 };
	int err = EVUTIL_SOCKET_ERROR();
	static uint64_t logged;
	uint64_t now = now_ms();

	if (now - logged >= METRICS_LOG_EVERY_MS) {
		log_warnx("metrics: accept: %s%s",
		    evutil_socket_error_to_string(err), err == EMFILE ||
		    err == ENFILE || err == ENOBUFS || err == ENOMEM ?
		    "; pausing for a second" : "");
		logged = now;
	}
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(l);
		evtimer_add(metrics_resume_ev, &tv);
	}
}

static void
metrics_http_stop(void)
{
	while (metrics_conns != NULL)
		metrics_conn_free(metrics_conns);
	if (metrics_listener != NULL)
		evconnlistener_free(metrics_listener);
	metrics_listener = NULL;
	if (metrics_resume_ev != NULL)
		event_free(metrics_resume_ev);
	metrics_resume_ev = NULL;
	free(metrics_addr);
	metrics_addr = NULL;
}

/*
 * Serve GET /metrics on hostport; NULL stops serving. Idempotent, so a
 * reload can call it with whatever the new config says: the same address
 * keeps its socket, a new one is bound before the old one is closed, and
 * a failure leaves the old endpoint serving.
 */
int
metrics_listen(struct event_base *base, const char *hostport, char **cause)
{
	struct evconnlistener *l;
	struct addrinfo hints, *ai = NULL;
	char *host = NULL, portstr[8];
	uint16_t port;
	int rc;

	if (hostport == NULL || *hostport == '\0') {
		if (metrics_listener != NULL)
			log_info("metrics: no longer serving %s", metrics_addr);
		metrics_http_stop();
		return 0;
	}
	if (metrics_addr != NULL && strcmp(metrics_addr, hostport) == 0)
		return 0;
	if (metrics_hostport(hostport, &host, &port, cause) != 0)
		return -1;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
	if ((rc = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		xasprintf(cause, "metrics: cannot listen on %s: %s", hostport,
		    gai_strerror(rc));
		free(host);
		return -1;
	}
	free(host);
	errno = 0;
	l = evconnlistener_new_bind(base, metrics_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    64, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (l == NULL) {
		xasprintf(cause, "metrics: cannot listen on %s: %s", hostport,
		    errno != 0 ? strerror(errno) : "bind failed");
		return -1;
	}
	metrics_http_stop();
	evconnlistener_set_error_cb(l, metrics_accept_error);
	metrics_listener = l;
	metrics_resume_ev = evtimer_new(base, metrics_resume, NULL);
	metrics_addr = xstrdup(hostport);
	log_info("metrics: serving http://%s/metrics", hostport);
	return 0;
}

/* At exit: the endpoint and the observed series. */
void
metrics_shutdown(void)
{
	struct metrics_target *t, *next;

	metrics_http_stop();
	for (t = metrics_first; t != NULL; t = next) {
		next = t->next;
		free(t->name);
		free(t);
	}
	memset(metrics_hash, 0, sizeof metrics_hash);
	metrics_first = NULL;
	metrics_last = &metrics_first;
	memset(&metrics_other, 0, sizeof metrics_other);
	metrics_nseries = 0;
	metrics_folded = 0;
}
