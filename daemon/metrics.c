/*
 * metrics.c: the daemon's state as Prometheus text exposition (format
 * 0.0.4), for `llmgate metrics` and the GET /metrics endpoint
 * (metrics-http.c). Gauges and totals are read from server_status(), so
 * the two views never disagree; per-(target, class) outcomes and the call
 * latency histogram are kept here, fed by call.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/*
 * Series kept by metrics_observe_*: every (target, class) cell and every
 * target's histogram counts against METRICS_MAX_SERIES; observations
 * beyond it are folded into target="other" (a name no target can have,
 * since targets are provider/model), so a flood of distinct targets
 * cannot grow the scrape without bound.
 */
#define METRICS_MAX_SERIES  4096
#define METRICS_HASH        256
#define METRICS_NBUCKETS    11
#define METRICS_HIST_SERIES (METRICS_NBUCKETS + 3) /* +Inf, sum, count */
#define METRICS_OTHER       "other"

static const uint64_t metrics_bucket_ms[METRICS_NBUCKETS] = { 10, 50, 100, 250,
	500, 1000, 2500, 5000, 10000, 30000, 60000 };
static const char *metrics_bucket_le[METRICS_NBUCKETS] = { "0.01", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60" };

static const char *metrics_breaker_states[] = { "closed", "open", "half_open" };

struct metrics_target {
	char *name;
	uint64_t calls[LLMGATE_CLASS_MAX]; /* ended here, by class */
	uint64_t attempts[LLMGATE_CLASS_MAX];
	uint64_t buckets[METRICS_NBUCKETS + 1]; /* not cumulative; +Inf */
	uint64_t count;
	uint64_t sum_ms;
	struct metrics_target *next; /* creation order */
	struct metrics_target *hnext;
};

static struct metrics_target *metrics_hash[METRICS_HASH];
static struct metrics_target *metrics_first, **metrics_last = &metrics_first;
static struct metrics_target metrics_other;
static size_t metrics_nseries;
static uint64_t metrics_folded;

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
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
	    f->type);
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
		metrics_double(b, f, NULL, labels,
		    json_number_value(v) * scale);
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
		{ "moves", "llmgate_pool_moves_total",
		    "Attempts moved to another member of a pool after a "
		    "rate limit." },
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
	f = (struct metrics_family){ "llmgate_memory_held_bytes", "gauge",
		"Bytes held for clients, as max_memory counts them.", 0 };
	metrics_json(b, &f, NULL, st, "memory_held", 1);

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

/* One column of status rows shown as a metric family. */
struct metrics_col {
	const char *key;
	const char *sub; /* a member of key's object, or NULL */
	const char *name;
	const char *type;
	const char *help;
	double scale;
};

/*
 * Each column of rows as a family, each row labelled label="its key
 * member"; the labels are returned for more families (free each).
 */
static char **
metrics_render_rows(struct buf *b, const json_t *rows, const char *label,
    const char *key, const struct metrics_col *cols, size_t ncols)
{
	struct metrics_family f;
	struct buf lb = { 0 };
	const json_t *t, *name, *obj;
	size_t i, k, n = json_array_size(rows);
	char **labels = xcalloc(n + 1, sizeof *labels);

	json_array_foreach(rows, i, t) {
		name = json_object_get(t, key);
		buf_reset(&lb);
		buf_printf(&lb, "%s=\"", label);
		metrics_escape(&lb,
		    json_is_string(name) ? json_string_value(name) : "");
		buf_addstr(&lb, "\"");
		labels[i] = xstrdup(lb.data);
	}
	buf_free(&lb);
	for (k = 0; k < ncols; k++) {
		f = (struct metrics_family){ cols[k].name, cols[k].type,
			cols[k].help, 0 };
		json_array_foreach(rows, i, t) {
			obj = cols[k].sub != NULL ?
			    json_object_get(t, cols[k].key) :
			    t;
			metrics_json(b, &f, labels[i], obj,
			    cols[k].sub != NULL ? cols[k].sub : cols[k].key,
			    cols[k].scale);
		}
	}
	return labels;
}

static void
metrics_free_labels(char **labels)
{
	size_t i;

	for (i = 0; labels[i] != NULL; i++)
		free(labels[i]);
	free(labels);
}

/* Client classes, from status's "client_classes". */
static void
metrics_render_classes(struct buf *b, const json_t *classes)
{
	static const struct metrics_col cols[] = {
		{ "inflight", NULL, "llmgate_class_inflight", "gauge",
		    "Calls and leases of the client class in flight.", 1 },
		{ "queued", NULL, "llmgate_class_queued", "gauge",
		    "Admissions of the client class waiting for budget.", 1 },
		{ "tokens_minute", NULL, "llmgate_class_tokens_minute", "gauge",
		    "Tokens the client class used this UTC minute (with "
		    "a cluster, on every host, as last seen).",
		    1 },
		{ "tokens_day", NULL, "llmgate_class_tokens_day", "gauge",
		    "Tokens the client class used this UTC day (with a "
		    "cluster, on every host, as last seen).",
		    1 },
		{ "tokens_held", NULL, "llmgate_class_tokens_held", "gauge",
		    "Tokens held by the client class's calls in flight "
		    "(with a cluster, on every host).",
		    1 },
		{ "calls", NULL, "llmgate_class_calls_total", "counter",
		    "Calls and leases the client class started.", 1 },
		{ "tokens", NULL, "llmgate_class_tokens_total", "counter",
		    "Tokens the client class used.", 1 },
		{ "refused_budget", NULL, "llmgate_class_budget_refusals_total",
		    "counter",
		    "Admissions refused for the class's token "
		    "budget (budget_exhausted).",
		    1 },
		{ "refused_caps", NULL, "llmgate_class_cap_refusals_total",
		    "counter",
		    "Calls and connections refused for the class's "
		    "max_inflight, max_queued or max_conns.",
		    1 },
	};

	if (json_is_array(classes))
		metrics_free_labels(metrics_render_rows(b, classes, "class",
		    "name", cols, sizeof cols / sizeof cols[0]));
}

/* Per-domain families from status's "domains". */
static void
metrics_render_domains(struct buf *b, const json_t *domains)
{
	static const struct metrics_col cols[] = {
		{ "rpm", "limit", "llmgate_domain_rpm_limit", "gauge",
		    "Requests per minute the quota domain allows.", 1 },
		{ "rpm", "available", "llmgate_domain_requests_available",
		    "gauge", "Requests the quota domain's budget admits now.",
		    1 },
		{ "tpm", "limit", "llmgate_domain_tpm_limit", "gauge",
		    "Tokens per minute the quota domain allows.", 1 },
		{ "tpm", "available", "llmgate_domain_tokens_available",
		    "gauge", "Tokens the quota domain's budget admits now.",
		    1 },
		{ "cooldown_ms", NULL, "llmgate_domain_cooldown_seconds",
		    "gauge", "Seconds until the quota domain's cooldown ends.",
		    0.001 },
	};
	struct metrics_family f;
	const json_t *d;
	char **labels;
	size_t i;

	if (!json_is_array(domains))
		return;
	labels = metrics_render_rows(b, domains, "domain", "name", cols,
	    sizeof cols / sizeof cols[0]);
	f = (struct metrics_family){ "llmgate_domain_members", "gauge",
		"Targets drawing from the quota domain now.", 0 };
	json_array_foreach(domains, i, d)
		metrics_u64(b, &f, labels[i],
		    json_array_size(json_object_get(d, "members")));
	metrics_free_labels(labels);
}

/* lb becomes the label set target="name". */
static void
metrics_target_label(struct buf *lb, const char *name)
{
	buf_reset(lb);
	buf_addstr(lb, "target=\"");
	metrics_escape(lb, name);
	buf_addstr(lb, "\"");
}

/* Per-target families from status; labels[i] is target i's label set. */
static void
metrics_render_targets(struct buf *b, const json_t *targets)
{
	static const struct metrics_col fams[] = {
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
	const json_t *t, *br;
	size_t i, j;
	char **labels;

	labels = metrics_render_rows(b, targets, "target", "target", fams,
	    sizeof fams / sizeof fams[0]);

	f = (struct metrics_family){ "llmgate_breaker_state", "gauge",
		"1 for the state the target's circuit breaker is in.", 0 };
	json_array_foreach(targets, i, t) {
		br = json_object_get(t, "breaker");
		if (!json_is_string(br))
			continue;
		for (j = 0; j < sizeof metrics_breaker_states /
		         sizeof metrics_breaker_states[0];
		     j++) {
			buf_reset(&lb);
			buf_printf(&lb, "%s,state=\"%s\"", labels[i],
			    metrics_breaker_states[j]);
			metrics_u64(b, &f, lb.data,
			    strcmp(json_string_value(br),
			        metrics_breaker_states[j]) == 0);
		}
	}

	metrics_free_labels(labels);
	buf_free(&lb);
}

/* The cluster, from status's "cluster": nothing without a cluster block. */
static void
metrics_render_cluster(struct buf *b, const json_t *c)
{
	static const char *budgets[] = { "requests", "tokens" };
	static const char *owners[][2] = { { "targets", "target" },
		{ "domains", "domain" } };
	static const struct {
		const char *name;
		const char *help;
		const char *key;
	} per[] = {
		{ "llmgate_cluster_slice",
		    "Units of a shared budget this host holds now.", "slice" },
		{ "llmgate_cluster_level",
		    "The shared budget's level in Redis, as last seen.",
		    "cluster_level" },
	};
	struct metrics_family f;
	struct buf lb = { 0 };
	const json_t *t, *r, *state;
	size_t i, j, k;

	if (!json_is_object(c))
		return;
	state = json_object_get(c, "state");
	f = (struct metrics_family){ "llmgate_cluster_up", "gauge",
		"1 while Redis feeds this host's shared budgets; 0 while it keeps "
		"to its share of each limit.",
		0 };
	metrics_u64(b, &f, NULL,
	    json_is_string(state) &&
	        strcmp(json_string_value(state), "up") == 0);
	f = (struct metrics_family){ "llmgate_cluster_hosts", "gauge",
		"Hosts alive in the cluster, at the last heartbeat.", 0 };
	metrics_json(b, &f, NULL, c, "hosts_alive", 1);
	f = (struct metrics_family){ "llmgate_cluster_outages_total", "counter",
		"Times Redis became unavailable.", 0 };
	metrics_json(b, &f, NULL, c, "outages", 1);
	f = (struct metrics_family){ "llmgate_cluster_signals_sent_total",
		"counter",
		"Holds, learned limits and open breakers this host "
		"told the others.",
		0 };
	metrics_json(b, &f, NULL, c, "signals_sent", 1);
	f = (struct metrics_family){ "llmgate_cluster_signals_received_total",
		"counter",
		"Holds, learned limits and open breakers other hosts "
		"told this one.",
		0 };
	metrics_json(b, &f, NULL, c, "signals_received", 1);
	for (j = 0; j < sizeof per / sizeof per[0]; j++) {
		f = (struct metrics_family){ per[j].name, "gauge", per[j].help,
			0 };
		for (k = 0; k < 4; k++) {
			/* The targets' budgets, then the quota domains'. */
			json_array_foreach(json_object_get(c, owners[k / 2][0]),
			    i, t) {
				r = json_object_get(t, budgets[k % 2]);
				buf_reset(&lb);
				buf_printf(&lb, "%s=\"", owners[k / 2][1]);
				metrics_escape(&lb,
				    json_string_value(
				        json_object_get(t, owners[k / 2][1])));
				buf_printf(&lb, "\",budget=\"%s\"",
				    budgets[k % 2]);
				metrics_json(b, &f, lb.data, r, per[j].key, 1);
			}
		}
	}
	buf_free(&lb);
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

/* One family of the observed per-(target, class) counts: calls, or
 * attempts. */
static void
metrics_render_by_class(struct buf *b, struct metrics_family *f, int attempts)
{
	const struct metrics_target *t;
	const uint64_t *n;
	struct buf lb = { 0 }, cl = { 0 };
	int c;

	for (t = metrics_next(NULL); t != NULL; t = metrics_next(t)) {
		n = attempts ? t->attempts : t->calls;
		metrics_target_label(&lb, t->name);
		for (c = 0; c < LLMGATE_CLASS_MAX; c++) {
			if (n[c] == 0)
				continue;
			buf_reset(&cl);
			buf_printf(&cl, "%s,class=\"%s\"", lb.data,
			    llmgate_class_name(c));
			metrics_u64(b, f, cl.data, n[c]);
		}
	}
	buf_free(&lb);
	buf_free(&cl);
}

static void
metrics_render_observed(struct buf *b)
{
	struct metrics_family calls = { "llmgate_target_calls_total", "counter",
		"Calls that ended at the target (the last one they "
		"tried), by class.",
		0 };
	struct metrics_family atts = { "llmgate_target_attempts_total",
		"counter", "Upstream attempts by target and class.", 0 };
	struct metrics_family hist = { "llmgate_call_duration_seconds",
		"histogram",
		"Call latency, first attempt to answer, waits "
		"included, by the target that ended the call.",
		0 };
	struct metrics_family folded = { "llmgate_metrics_folded_total",
		"counter",
		"Observations counted under target=\"other\" because "
		"the series limit was reached.",
		0 };
	const struct metrics_target *t;
	struct buf lb = { 0 };
	uint64_t cum;
	size_t i;

	metrics_render_by_class(b, &calls, 0);
	metrics_render_by_class(b, &atts, 1);
	for (t = metrics_next(NULL); t != NULL; t = metrics_next(t)) {
		if (t->count == 0)
			continue;
		metrics_target_label(&lb, t->name);
		metrics_head(b, &hist);
		for (i = 0, cum = 0; i <= METRICS_NBUCKETS; i++) {
			cum += t->buckets[i];
			buf_printf(b, "%s_bucket{%s,le=\"%s\"} %llu\n",
			    hist.name, lb.data,
			    i < METRICS_NBUCKETS ? metrics_bucket_le[i] :
			                           "+Inf",
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
}

/* The whole exposition; the caller frees it. */
char *
metrics_render(void)
{
	struct buf b = { 0 };
	json_t *st = server_status();

	metrics_render_globals(&b, st);
	metrics_render_targets(&b, json_object_get(st, "targets"));
	metrics_render_domains(&b, json_object_get(st, "domains"));
	metrics_render_classes(&b, json_object_get(st, "client_classes"));
	metrics_render_cluster(&b, json_object_get(st, "cluster"));
	metrics_render_observed(&b);
	json_decref(st);
	return b.data != NULL ? b.data : xstrdup("");
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
