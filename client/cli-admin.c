/*
 * cli-admin.c: the commands around calls: status, ping, reload and
 * metrics of the daemon, and advisory leases (acquire, report) for
 * processes that call providers with their own SDK.
 */
#include <sys/types.h>

#include <limits.h>

#include <math.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Status values may be missing or null: "-" in the table. */
static void
jfmt(const json_t *v, char *buf, size_t len)
{
	double d;

	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v)) {
		d = json_real_value(v);
		if (d == floor(d) && fabs(d) < 1e15)
			snprintf(buf, len, "%.0f", d);
		else
			snprintf(buf, len, "%.1f", d);
	} else if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_true(v))
		snprintf(buf, len, "yes");
	else if (json_is_false(v))
		snprintf(buf, len, "no");
	else
		snprintf(buf, len, "-");
}

/* "available/limit" of a rate object. */
static void
jrate(const json_t *o, char *buf, size_t len)
{
	char a[31], l[32]; /* "a/l" fits a 64-byte cell */

	if (o == NULL || json_is_null(o)) {
		snprintf(buf, len, "-");
		return;
	}
	jfmt(json_object_get(o, "available"), a, sizeof a);
	jfmt(json_object_get(o, "limit"), l, sizeof l);
	snprintf(buf, len, "%s/%s", a, l);
}

static void
fmt_uptime(const json_t *v, char *buf, size_t len)
{
	unsigned long long s, d, h, m;

	if (!json_is_number(v) || json_number_value(v) < 0) {
		snprintf(buf, len, "-");
		return;
	}
	s = (unsigned long long)json_number_value(v);
	d = s / 86400;
	h = s / 3600 % 24;
	m = s / 60 % 60;
	s %= 60;
	if (d != 0)
		snprintf(buf, len, "%llud %02lluh%02llum%02llus", d, h, m, s);
	else if (h != 0)
		snprintf(buf, len, "%lluh%02llum%02llus", h, m, s);
	else if (m != 0)
		snprintf(buf, len, "%llum%02llus", m, s);
	else
		snprintf(buf, len, "%llus", s);
}

/* "key value, key value" for a flat object (counters, retry budget). */
static void
print_flat(const char *title, json_t *o)
{
	const char *key;
	json_t *v;
	char buf[64];
	int first = 1;

	if (!json_is_object(o))
		return;
	printf("%-14s", title);
	json_object_foreach(o, key, v) {
		jfmt(v, buf, sizeof buf);
		printf("%s%s %s", first ? "" : ", ", key, buf);
		first = 0;
	}
	fputc('\n', stdout);
}

/* Each shared budget of list (key names it): this host's slice, the level. */
static void
print_cluster_budgets(const json_t *list, const char *key, const char *prefix)
{
	const json_t *t, *r, *k;
	char b[3][256];
	size_t i, j;
	int shown;

	for (i = 0; i < json_array_size(list); i++) {
		t = json_array_get(list, i);
		jfmt(json_object_get(t, key), b[0], sizeof b[0]);
		printf("%-14s%s%s:", "", prefix, b[0]);
		shown = 0;
		for (j = 0; j < 2; j++) {
			r = json_object_get(t, j == 0 ? "requests" : "tokens");
			if ((k = json_object_get(r, "granted")) == NULL ||
			    json_integer_value(k) == 0)
				continue;
			jfmt(json_object_get(r, "slice"), b[1], sizeof b[1]);
			jfmt(json_object_get(r, "cluster_level"), b[2],
			    sizeof b[2]);
			printf("%s %s slice %s, cluster %s", shown ? ";" : "",
			    j == 0 ? "requests" : "tokens", b[1], b[2]);
			shown = 1;
		}
		fputc('\n', stdout);
	}
}

/*
 * The cluster, when llmgated has one: Redis's state, the hosts alive, and
 * per shared target and quota domain this host's slice next to the
 * cluster-wide level.
 */
static void
print_cluster(const json_t *c)
{
	char b[4][256];

	if (!json_is_object(c))
		return;
	jfmt(json_object_get(c, "redis"), b[0], sizeof b[0]);
	jfmt(json_object_get(c, "state"), b[1], sizeof b[1]);
	jfmt(json_object_get(c, "host"), b[2], sizeof b[2]);
	jfmt(json_object_get(c, "hosts_alive"), b[3], sizeof b[3]);
	printf("%-14sredis %s %s, this host %s, %s alive", "cluster", b[0],
	    b[1], b[2], b[3]);
	jfmt(json_object_get(c, "why"), b[0], sizeof b[0]);
	jfmt(json_object_get(c, "share_of"), b[2], sizeof b[2]);
	if (strcmp(b[1], "up") != 0 && *b[0] != '\0' && strcmp(b[0], "-"))
		printf(" (%s: each host on its share, this one 1/%s)", b[0],
		    b[2]);
	else if (strcmp(b[1], "up") != 0)
		printf(" (this host on 1/%s of the limits)", b[2]);
	fputc('\n', stdout);
	print_cluster_budgets(json_object_get(c, "targets"), "target", "");
	print_cluster_budgets(json_object_get(c, "domains"), "domain",
	    "domain ");
}

/*
 * The quota domains: their levels, a hold, and the targets drawing from
 * them now (the patterns when none has been used yet).
 */
static void
print_domains(const json_t *domains)
{
	const json_t *d, *list;
	char b[4][256];
	size_t i, j;

	for (i = 0; i < json_array_size(domains); i++) {
		d = json_array_get(domains, i);
		jfmt(json_object_get(d, "name"), b[0], sizeof b[0]);
		jrate(json_object_get(d, "rpm"), b[1], sizeof b[1]);
		jrate(json_object_get(d, "tpm"), b[2], sizeof b[2]);
		jfmt(json_object_get(d, "cooldown_ms"), b[3], sizeof b[3]);
		printf("%-14s%s: rpm %s, tpm %s, cooldown_ms %s", "domain",
		    b[0], b[1], b[2], b[3]);
		list = json_object_get(d, "members");
		if (json_array_size(list) == 0) {
			list = json_object_get(d, "targets");
			printf(", no member yet; targets");
		} else
			printf(", members");
		for (j = 0; j < json_array_size(list); j++) {
			jfmt(json_array_get(list, j), b[0], sizeof b[0]);
			printf("%s %s", j == 0 ? "" : ",", b[0]);
		}
		fputc('\n', stdout);
	}
}

#define STATUS_COLS 7

static void
print_cell(const char *s, size_t width, int last)
{
	if (last)
		printf("%s\n", s);
	else
		printf("%-*s  ", (int)width, s);
}

#define POOL_COLS 9

/*
 * The pools: per member, what the choice sees now (ready, or the wait
 * until it could take an attempt), the turns it took and the moves away
 * from it after a rate limit.
 */
static void
print_pools(const json_t *pools)
{
	static const char *heads[POOL_COLS] = { "POOL", "STRATEGY", "MEMBER",
		"WEIGHT", "READY", "WAIT_MS", "INFLIGHT", "PICKS", "MOVES" };
	static const char *keys[POOL_COLS] = { NULL, NULL, "target", "weight",
		"ready", "wait_ms", "inflight", "picks", "moves" };
	const json_t *p, *m, *members;
	char(*cells)[POOL_COLS][64] = NULL;
	size_t n = 0, i, j, k, row, w[POOL_COLS];

	for (i = 0; i < json_array_size(pools); i++)
		n += json_array_size(
		    json_object_get(json_array_get(pools, i), "members"));
	if (n == 0)
		return;
	cells = cli_reallocarray(NULL, n, sizeof *cells);
	for (k = 0; k < POOL_COLS; k++)
		w[k] = strlen(heads[k]);
	for (i = 0, row = 0; i < json_array_size(pools); i++) {
		p = json_array_get(pools, i);
		members = json_object_get(p, "members");
		for (j = 0; j < json_array_size(members); j++, row++) {
			m = json_array_get(members, j);
			for (k = 0; k < POOL_COLS; k++) {
				if (k < 2 && j != 0)
					snprintf(cells[row][k], 64, "%s", "");
				else if (k < 2)
					jfmt(json_object_get(p,
					         k == 0 ? "name" : "strategy"),
					    cells[row][k], 64);
				else
					jfmt(json_object_get(m, keys[k]),
					    cells[row][k], 64);
				if (strlen(cells[row][k]) > w[k])
					w[k] = strlen(cells[row][k]);
			}
		}
	}
	fputc('\n', stdout);
	for (k = 0; k < POOL_COLS; k++)
		print_cell(heads[k], w[k], k + 1 == POOL_COLS);
	for (row = 0; row < n; row++)
		for (k = 0; k < POOL_COLS; k++)
			print_cell(cells[row][k], w[k], k + 1 == POOL_COLS);
	free(cells);
}

/*
 * rows (JSON objects) as a table: one column per key, headed by heads;
 * a key's object value { used, limit } shows as used/limit.
 */
static void
print_table(const json_t *rows, const char *const *heads,
    const char *const *keys, size_t ncols)
{
	char(*cells)[10][64];
	size_t n = json_array_size(rows), i, k, w[10];

	if (ncols > 10)
		ncols = 10;
	cells = cli_reallocarray(NULL, n + 1, sizeof *cells);
	for (k = 0; k < ncols; k++)
		w[k] = strlen(heads[k]);
	for (i = 0; i < n; i++)
		for (k = 0; k < ncols; k++) {
			jfmt(json_object_get(json_array_get(rows, i), keys[k]),
			    cells[i][k], 64);
			if (strlen(cells[i][k]) > w[k])
				w[k] = strlen(cells[i][k]);
		}
	for (k = 0; k < ncols; k++)
		print_cell(heads[k], w[k], k + 1 == ncols);
	for (i = 0; i < n; i++)
		for (k = 0; k < ncols; k++)
			print_cell(cells[i][k], w[k], k + 1 == ncols);
	free(cells);
}

/* Client classes: what each has in flight, waiting, and spent. */
static void
print_classes(const json_t *classes)
{
	static const char *const heads[] = { "CLASS", "WEIGHT", "INFLIGHT",
		"QUEUED", "TOKENS_MINUTE", "TOKENS_DAY", "CALLS", "REFUSED" };
	static const char *const keys[] = { "name", "weight", "inflight",
		"queued", "minute", "day", "calls", "refused" };
	json_t *rows = json_array(), *r;
	const json_t *k;
	size_t i;
	char a[32], b[32];

	json_array_foreach(classes, i, k) {
		r = json_deep_copy(k);
		/* used/limit, the limit "-" when none */
		jfmt(json_object_get(k, "tokens_minute"), a, sizeof a);
		jfmt(json_object_get(k, "tokens_per_minute"), b, sizeof b);
		json_object_set_new(r, "minute", json_sprintf("%s/%s", a, b));
		jfmt(json_object_get(k, "tokens_day"), a, sizeof a);
		jfmt(json_object_get(k, "tokens_per_day"), b, sizeof b);
		json_object_set_new(r, "day", json_sprintf("%s/%s", a, b));
		json_object_set_new(r, "refused",
		    json_integer(json_integer_value(
		                     json_object_get(k, "refused_budget")) +
		        json_integer_value(
		            json_object_get(k, "refused_caps"))));
		json_array_append_new(rows, r);
	}
	print_table(rows, heads, keys, 8);
	json_decref(rows);
}

/* Who is connected now, with the user name of each uid (looked up here,
 * not in the daemon). */
static void
print_peers(const json_t *peers)
{
	static const char *const heads[] = { "KIND", "UID", "USER", "PID",
		"UNIT", "NAME", "CLASS", "INFLIGHT", "TOKENS" };
	static const char *const keys[] = { "kind", "uid", "user", "pid",
		"unit", "name", "class", "inflight", "tokens" };
	json_t *rows = json_array(), *r;
	const json_t *p, *uid;
	struct passwd *pw;
	size_t i;

	json_array_foreach(peers, i, p) {
		r = json_deep_copy(p);
		uid = json_object_get(p, "uid");
		if (json_is_integer(uid) &&
		    (pw = getpwuid((uid_t)json_integer_value(uid))) != NULL)
			json_object_set_new(r, "user",
			    json_string(pw->pw_name));
		json_array_append_new(rows, r);
	}
	if (json_array_size(rows) == 0)
		printf("no peers connected that you may see\n");
	else
		print_table(rows, heads, keys, 9);
	json_decref(rows);
}

static void
print_status(const json_t *st)
{
	static const char *heads[STATUS_COLS] = { "TARGET", "BREAKER", "RPM",
		"TPM", "COOLDOWN_MS", "INFLIGHT", "QUEUED" };
	const json_t *targets, *t;
	char(*cells)[STATUS_COLS][64] = NULL;
	char buf[64];
	size_t n, i, k, w[STATUS_COLS];

	jfmt(json_object_get(st, "version"), buf, sizeof buf);
	printf("%-14s%s\n", "version", buf);
	fmt_uptime(json_object_get(st, "uptime_s"), buf, sizeof buf);
	printf("%-14s%s\n", "uptime", buf);
	jfmt(json_object_get(st, "clients"), buf, sizeof buf);
	printf("%-14s%s\n", "clients", buf);
	jfmt(json_object_get(st, "inflight"), buf, sizeof buf);
	printf("%-14s%s\n", "inflight", buf);
	jfmt(json_object_get(st, "queued"), buf, sizeof buf);
	printf("%-14s%s\n", "queued", buf);

	targets = json_object_get(st, "targets");
	n = json_is_array(targets) ? json_array_size(targets) : 0;
	fputc('\n', stdout);
	if (n == 0)
		printf("no targets yet\n");
	else {
		cells = cli_reallocarray(NULL, n, sizeof *cells);
		for (k = 0; k < STATUS_COLS; k++)
			w[k] = strlen(heads[k]);
		for (i = 0; i < n; i++) {
			t = json_array_get(targets, i);
			jfmt(json_object_get(t, "target"), cells[i][0], 64);
			jfmt(json_object_get(t, "breaker"), cells[i][1], 64);
			jrate(json_object_get(t, "rpm"), cells[i][2], 64);
			jrate(json_object_get(t, "tpm"), cells[i][3], 64);
			jfmt(json_object_get(t, "cooldown_ms"), cells[i][4],
			    64);
			jfmt(json_object_get(t, "inflight"), cells[i][5], 64);
			jfmt(json_object_get(t, "queued"), cells[i][6], 64);
			for (k = 0; k < STATUS_COLS; k++)
				if (strlen(cells[i][k]) > w[k])
					w[k] = strlen(cells[i][k]);
		}
		for (k = 0; k < STATUS_COLS; k++)
			print_cell(heads[k], w[k], k + 1 == STATUS_COLS);
		for (i = 0; i < n; i++)
			for (k = 0; k < STATUS_COLS; k++)
				print_cell(cells[i][k], w[k],
				    k + 1 == STATUS_COLS);
		free(cells);
	}
	print_pools(json_object_get(st, "pools"));
	fputc('\n', stdout);
	print_classes(json_object_get(st, "client_classes"));
	fputc('\n', stdout);
	print_domains(json_object_get(st, "domains"));
	print_flat("retry budget", json_object_get(st, "retry_budget"));
	print_flat("counters", json_object_get(st, "counters"));
	print_cluster(json_object_get(st, "cluster"));
}

enum {
	OPT_JSON = 256,
	OPT_CLIENTS,
	OPT_TOKENS,
	OPT_TIMEOUT,
	OPT_PRIORITY,
	OPT_STATUS,
	OPT_RETRY_AFTER,
	OPT_INPUT_TOKENS,
	OPT_OUTPUT_TOKENS,
	OPT_WAIT
};

/* How often ping --wait tries again. */
#define PING_RETRY_MS 50

/* For the commands whose options are few: -s, --json, --help. */
static const struct option small_options[] = { { "json", no_argument, NULL,
	                                           OPT_JSON },
	{ "clients", no_argument, NULL, OPT_CLIENTS }, CLI_OPTIONS_END };

/*
 * Parse the options of a command that takes no operands; json is NULL
 * for one without --json. Returns -1 to go on, or an exit status.
 */
static int
small_getopt(const struct cmd *c, int argc, char **argv, int *json,
    int *clients)
{
	int ch, rv;

	while (
	    (ch = getopt_long(argc, argv, ":s:h", small_options, NULL)) != -1) {
		if (ch == OPT_CLIENTS) {
			if (clients == NULL)
				return cli_usage_error(c,
				    "unknown option "
				    "--clients");
			*clients = 1;
		} else if (ch != OPT_JSON) {
			if ((rv = cli_option(c, ch, argv)) != -1)
				return rv;
		} else if (json == NULL)
			return cli_usage_error(c, "unknown option --json");
		else
			*json = 1;
	}
	if (optind < argc)
		return cli_usage_error(c, "unexpected argument '%s'",
		    argv[optind]);
	return -1;
}

/* A failed small operation: 3 if the connection went, else 4. */
static int
op_failed(struct llmgate *g, const char *what)
{
	cli_warnx("%s: %s", what, llmgate_error(g));
	return llmgate_connected(g) ? EXIT_FAILED : EXIT_UNREACHABLE;
}

/*
 * status, reload and metrics: no operands, one blocking request of the
 * library on a connection of their own. Returns -1 with the answer's text
 * in *text (NULL for reload), or an exit status.
 */
static int
admin_request(const struct cmd *c, int argc, char **argv, int *json,
    int *clients, const char *what, int (*fn)(struct llmgate *, char **),
    char **text)
{
	struct llmgate *g;
	int rv;

	*text = NULL;
	if ((rv = small_getopt(c, argc, argv, json, clients)) != -1)
		return rv;
	if ((g = cli_connect("llmgate", 0)) == NULL)
		return EXIT_UNREACHABLE;
	if (fn(g, text) == -1)
		rv = op_failed(g, what);
	llmgate_close(g);
	return rv;
}

static int
admin_reload(struct llmgate *g, char **text)
{
	return llmgate_reload(g);
}

int
cmd_status(const struct cmd *c, int argc, char **argv)
{
	json_t *st, *part;
	char *text;
	int json = 0, clients = 0, rv;

	if ((rv = admin_request(c, argc, argv, &json, &clients, "status",
	         llmgate_status, &text)) != -1)
		return rv;
	if (clients && json) {
		st = json_loads(text, JSON_DECODE_ANY, NULL);
		free(text);
		part = json_pack("{s:O?, s:O?}", "client_classes",
		    json_object_get(st, "client_classes"), "peers",
		    json_object_get(st, "peers"));
		text = json_dumps(part, JSON_INDENT(2));
		json_decref(part);
		json_decref(st);
		if (text == NULL) {
			cli_warnx("status: llmgated sent no client classes");
			return EXIT_FAILED;
		}
	}
	if (json) {
		fputs(text, stdout);
		fputc('\n', stdout);
		free(text);
		return 0;
	}
	st = json_loads(text, JSON_DECODE_ANY, NULL);
	free(text);
	if (!json_is_object(st)) {
		json_decref(st);
		cli_warnx("status: llmgated sent something that is not a JSON "
		          "object");
		return EXIT_FAILED;
	}
	if (clients) {
		print_classes(json_object_get(st, "client_classes"));
		fputc('\n', stdout);
		print_peers(json_object_get(st, "peers"));
	} else
		print_status(st);
	json_decref(st);
	return 0;
}

static const struct option ping_options[] = {
	{ "wait", required_argument, NULL, OPT_WAIT }, CLI_OPTIONS_END
};

static uint64_t
ping_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * One ping on a connection of its own, quietly: 0 answered, EXIT_FAILED
 * when the daemon answered with an error, EXIT_UNREACHABLE when it could
 * not be reached or the connection went (why in err).
 */
static int
ping_once(const char *path, char *err, size_t errlen)
{
	struct llmgate *g;
	int rv = 0;

	if ((g = llmgate_connect(path, "llmgate", err, errlen)) == NULL)
		return EXIT_UNREACHABLE;
	if (llmgate_ping(g) == -1) {
		snprintf(err, errlen, "%s", llmgate_error(g));
		rv = llmgate_connected(g) ? EXIT_FAILED : EXIT_UNREACHABLE;
	}
	llmgate_close(g);
	return rv;
}

/*
 * ping [--wait SECONDS]: with --wait, a daemon that cannot be reached
 * yet (not started, still starting, its socket stale) is tried again
 * every 50 ms until it answers or the time is up; an answer, error or
 * not, ends the wait.
 */
int
cmd_ping(const struct cmd *c, int argc, char **argv)
{
	char path[PATH_MAX], err[1024];
	double wait_s = 0;
	uint64_t deadline;
	int ch, rv;

	while (
	    (ch = getopt_long(argc, argv, ":s:h", ping_options, NULL)) != -1) {
		if (ch == OPT_WAIT) {
			if (cli_parse_double("--wait", optarg, 0, 86400,
			        &wait_s) == -1)
				return EXIT_USAGE;
		} else if ((rv = cli_option(c, ch, argv)) != -1)
			return rv;
	}
	if (optind < argc)
		return cli_usage_error(c, "unexpected argument '%s'",
		    argv[optind]);
	if (llmgate_socket_path(cli_socket, path, sizeof path) == NULL) {
		cli_warnx("socket path too long");
		return EXIT_UNREACHABLE;
	}
	deadline = ping_now_ms() + (uint64_t)(wait_s * 1000);
	while ((rv = ping_once(path, err, sizeof err)) == EXIT_UNREACHABLE &&
	    ping_now_ms() + PING_RETRY_MS <= deadline)
		nanosleep(&(struct timespec){ 0, PING_RETRY_MS * 1000000L },
		    NULL);
	switch (rv) {
	case 0:
		printf("pong\n");
		break;
	case EXIT_UNREACHABLE:
		if (wait_s > 0)
			cli_warnx("%s (no answer within %g s)", err, wait_s);
		else if (strncmp(err, "cannot connect", 14) == 0)
			cli_warnx("%s (is llmgated running?)", err);
		else
			cli_warnx("ping: %s", err);
		break;
	default:
		cli_warnx("ping: %s", err);
		break;
	}
	return rv;
}

int
cmd_reload(const struct cmd *c, int argc, char **argv)
{
	char *text;
	int rv;

	if ((rv = admin_request(c, argc, argv, NULL, NULL, "reload failed",
	         admin_reload, &text)) != -1)
		return rv;
	return 0;
}

int
cmd_metrics(const struct cmd *c, int argc, char **argv)
{
	char *text;
	size_t len;
	int rv;

	if ((rv = admin_request(c, argc, argv, NULL, NULL, "metrics",
	         llmgate_metrics, &text)) != -1)
		return rv;
	fputs(text, stdout);
	if ((len = strlen(text)) != 0 && text[len - 1] != '\n')
		fputc('\n', stdout);
	free(text);
	return 0;
}

static const struct option acquire_options[] = { { "model", required_argument,
	                                             NULL, 'm' },
	{ "tokens", required_argument, NULL, OPT_TOKENS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "priority", required_argument, NULL, OPT_PRIORITY },
	{ "json", no_argument, NULL, OPT_JSON }, CLI_OPTIONS_END };

int
cmd_acquire(const struct cmd *c, int argc, char **argv)
{
	struct llmgate_acquire *acq;
	struct llmgate_lease *lease = NULL;
	enum llmgate_class cls;
	enum llmgate_priority prio = LLMGATE_PRIO_NORMAL;
	struct llmgate *g;
	json_t *o;
	const char *target = NULL;
	char err[1024], id[24];
	uint32_t tokens = 0, timeout_ms = 0;
	int ch, json = 0, rv;

	while ((ch = getopt_long(argc, argv, ":m:s:h", acquire_options,
	            NULL)) != -1) {
		switch (ch) {
		case 'm':
			target = optarg;
			break;
		case OPT_TOKENS:
			if (cli_parse_u32("--tokens", optarg, 0, &tokens) == -1)
				return EXIT_USAGE;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_u32("--timeout", optarg, 1,
			        &timeout_ms) == -1)
				return EXIT_USAGE;
			break;
		case OPT_PRIORITY:
			if (cli_parse_priority(optarg, &prio) == -1)
				return EXIT_USAGE;
			break;
		case OPT_JSON:
			json = 1;
			break;
		default:
			if ((rv = cli_option(c, ch, argv)) != -1)
				return rv;
			break;
		}
	}
	if (optind < argc)
		return cli_usage_error(c, "unexpected argument '%s'",
		    argv[optind]);
	if ((acq = llmgate_acquire_new(target)) == NULL)
		return cli_usage_error(c,
		    "-m PROVIDER/MODEL or -m POOL is "
		    "required");
	llmgate_acquire_set_tokens(acq, tokens);
	llmgate_acquire_set_timeout_ms(acq, timeout_ms);
	llmgate_acquire_set_priority(acq, prio);

	if ((g = cli_connect("llmgate", json)) == NULL) {
		llmgate_acquire_free(acq);
		return EXIT_UNREACHABLE;
	}
	rv = llmgate_acquire(g, acq, &lease, &cls, err, sizeof err);
	llmgate_close(g);
	llmgate_acquire_free(acq);
	if (rv == -1) {
		cli_warnx("acquire: %s", err);
		if (json)
			cli_print_error("connection", err, 0);
		return EXIT_UNREACHABLE;
	}
	if (rv == 1) {
		cli_warnx("acquire failed: %s: %s", cli_class_name(cls), err);
		if (json)
			cli_print_error(cli_class_name(cls), err, 0);
		rv = cli_class_exit(cls);
		return rv != 0 ? rv : EXIT_FAILED;
	}
	/*
	 * Lease ids are 63-bit: in JSON a string of the same decimal digits,
	 * since jq and JavaScript read numbers as doubles and would round it.
	 */
	snprintf(id, sizeof id, "%llu", (unsigned long long)lease->id);
	if (json) {
		o = json_object();
		json_object_set_new(o, "lease", json_string(id));
		json_object_set_new(o, "target", cli_jstr(lease->target));
		json_object_set_new(o, "ttl_ms", json_integer(lease->ttl_ms));
		cli_print_json(o);
	} else
		printf("%s\n", id);
	llmgate_lease_free(lease);
	return 0;
}

static const struct option report_options[] = { { "status", required_argument,
	                                            NULL, OPT_STATUS },
	{ "retry-after", required_argument, NULL, OPT_RETRY_AFTER },
	{ "input-tokens", required_argument, NULL, OPT_INPUT_TOKENS },
	{ "output-tokens", required_argument, NULL, OPT_OUTPUT_TOKENS },
	CLI_OPTIONS_END };

int
cmd_report(const struct cmd *c, int argc, char **argv)
{
	struct llmgate_report *rep;
	struct llmgate *g;
	uint64_t v, lease, in = 0, out = 0;
	uint32_t status = 0;
	double retry_after = -1;
	int ch, have_status = 0, rv;

	while ((ch = getopt_long(argc, argv, ":s:h", report_options, NULL)) !=
	    -1) {
		switch (ch) {
		case OPT_STATUS:
			if (cli_parse_u64("--status", optarg, 100, 599, &v) ==
			    -1)
				return EXIT_USAGE;
			status = (uint32_t)v;
			have_status = 1;
			break;
		case OPT_RETRY_AFTER:
			if (cli_parse_double("--retry-after", optarg, 0, 1e9,
			        &retry_after) == -1)
				return EXIT_USAGE;
			break;
		case OPT_INPUT_TOKENS:
			if (cli_parse_u64("--input-tokens", optarg, 0,
			        INT64_MAX, &in) == -1)
				return EXIT_USAGE;
			break;
		case OPT_OUTPUT_TOKENS:
			if (cli_parse_u64("--output-tokens", optarg, 0,
			        INT64_MAX, &out) == -1)
				return EXIT_USAGE;
			break;
		default:
			if ((rv = cli_option(c, ch, argv)) != -1)
				return rv;
			break;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		return cli_usage_error(c, "LEASE is required");
	if (argc > 1)
		return cli_usage_error(c, "unexpected argument '%s'", argv[1]);
	if (cli_parse_u64("LEASE", argv[0], 1, UINT64_MAX, &lease) == -1)
		return EXIT_USAGE;
	if (!have_status)
		return cli_usage_error(c, "--status is required");

	rep = llmgate_report_new(lease, status);
	if (retry_after >= 0)
		llmgate_report_set_retry_after(rep, retry_after);
	llmgate_report_set_tokens(rep, in, out);
	if ((g = cli_connect("llmgate", 0)) == NULL) {
		llmgate_report_free(rep);
		return EXIT_UNREACHABLE;
	}
	rv = llmgate_report(g, rep) == -1 ? op_failed(g, "report failed") : 0;
	llmgate_close(g);
	llmgate_report_free(rep);
	return rv;
}
