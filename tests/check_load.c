/*
 * check_load.c: load and faults end to end. Fifty client processes make
 * ten thousand calls through one llmgated, a few in flight each, half of
 * them streamed, against the loopback fake provider injecting every fault
 * it knows: 429 with retry-after-ms, 500, 503, slow answers, slow, cut and
 * broken streams, dropped connections, garbage. Every call must get exactly
 * one final answer with a class from the taxonomy (never internal, never a
 * lost connection), a success must carry the whole text exactly once, the
 * daemon must stay up with bounded memory and end with nothing in flight.
 * Twice: with breakers that never open, so every fault reaches the
 * provider, and with breakers that keep opening and closing.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

#define LOAD_PROCS    50
#define LOAD_CALLS    200    /* per process */
#define LOAD_WINDOW   4      /* calls in flight per process */
#define LOAD_STALL_MS 30000  /* a process waiting this long is stuck */
#define LOAD_LIMIT_MS 100000 /* the whole run */
#if defined(__SANITIZE_ADDRESS__)
/* ASan's shadow memory and quarantine triple what the daemon holds. */
#define LOAD_RSS_KB (768 * 1024)
#else
#define LOAD_RSS_KB (200 * 1024)
#endif
#define LOAD_SAMPLE_MS 200

/*
 * What a call may pick from. own: the target is the process's own (its
 * index rides along as a token fakeprov ignores), so a 429's cooldown
 * holds back one process's calls rather than everyone's.
 */
static const struct load_target {
	const char *name;
	int own;
} load_targets[] = {
	{ "oa/ok", 0 },
	{ "oa/rl+status=429+retry_after_ms=50", 1 },
	{ "oa/e500+status=500", 0 },
	{ "oa/e503+status=503", 0 },
	{ "oa/slow+delay=50", 0 },
	{ "oa/words+word_delay=5", 0 },
	{ "oa/cut+cut=2", 0 },
	{ "oa/drop+drop", 0 },
	{ "oa/garbage+garbage", 0 },
	{ "oa/serr+stream_error", 0 },
	{ "mock/echo", 0 },
};
#define LOAD_NTARGETS (sizeof load_targets / sizeof load_targets[0])

/* What one process saw, sent whole to the parent (< PIPE_BUF: atomic). */
struct load_report {
	int proc;
	uint32_t cls[LLMGATE_CLASS_MAX];
	uint32_t bad_class;  /* outside the taxonomy */
	uint32_t transport;  /* connection to the daemon lost */
	uint32_t twice;      /* a second final answer */
	uint32_t unanswered; /* no answer at all */
	uint32_t wrong_text; /* success with the wrong text */
	uint32_t streamed;
	uint32_t chunks;
	uint32_t resets;
};

struct load_call {
	struct load_child *lc;
	char expect[80];
	char got[512];
	size_t gotlen;
	int overflow;
	int stream;
	int answers;
};

struct load_child {
	struct llmgate *g;
	struct load_report rep;
	struct load_call calls[LOAD_CALLS];
	int done;
};

static struct daemon d;
static pid_t fp_pid;
static int fp_port;

static int load_breakers;

/*
 * Short backoff so faults cost little time, and a retry budget that never
 * runs out. Breakers: either never open, so every fault reaches the
 * provider, or open after a short run of failures and close soon after,
 * so open and half-open states see load too.
 */
static void
setup_with(int breakers)
{
	char *conf;

	load_breakers = breakers;
	fp_port = h_fakeprov_start(&fp_pid);
	conf = h_strdup_printf(
	    "providers = (\n"
	    "  { name = \"oa\"; type = \"openai\";\n"
	    "    base_url = \"http://127.0.0.1:%d/v1\"; api_key = \"test-key\"; },\n"
	    "  { name = \"mock\"; type = \"mock\"; }\n"
	    ");\n"
	    "retry = { attempts = 3; initial_ms = 10; max_ms = 100; };\n"
	    "retry_budget = { ratio = 10.0; min_per_s = 100000; };\n"
	    "breaker = { failures = %d; min_calls = 1000000; open_ms = 100;\n"
	    "            half_open_probes = 2; };\n",
	    fp_port, breakers ? 20 : 1000000);
	h_daemon_start(&d, conf);
	free(conf);
}

static void
setup_faults(void)
{
	setup_with(0);
}

static void
setup_breakers(void)
{
	setup_with(1);
}

static void
teardown(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
	h_fakeprov_stop(fp_pid);
}

/* xorshift32: each process its own reproducible sequence. */
static uint32_t
load_rand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void
load_target_name(char *buf, size_t len, int proc, uint32_t *seed)
{
	const struct load_target *lt;

	lt = &load_targets[load_rand(seed) % LOAD_NTARGETS];
	if (lt->own)
		snprintf(buf, len, "%s+p%d", lt->name, proc);
	else
		snprintf(buf, len, "%s", lt->name);
}

static void
load_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct load_call *c = arg;

	c->lc->rep.chunks++;
	if (ch->reset) {
		c->lc->rep.resets++;
		c->gotlen = 0;
	}
	if (ch->tool_index >= 0 || ch->len == 0)
		return;
	if (c->gotlen + ch->len >= sizeof c->got) {
		c->overflow = 1;
		return;
	}
	memcpy(c->got + c->gotlen, ch->text, ch->len);
	c->gotlen += ch->len;
	c->got[c->gotlen] = '\0';
}

static void
load_done(struct llmgate_result *res, void *arg)
{
	struct load_call *c = arg;
	struct load_report *rep = &c->lc->rep;
	int wrong = 0;

	if (c->answers++ != 0) {
		rep->twice++;
		llmgate_result_free(res);
		return;
	}
	c->lc->done++;
	if (!llmgate_connected(c->lc->g))
		rep->transport++;
	else if ((unsigned)res->cls >= LLMGATE_CLASS_MAX)
		rep->bad_class++;
	else
		rep->cls[res->cls]++;
	if (res->cls == LLMGATE_OK) {
		if (res->text != NULL && strcmp(res->text, c->expect) != 0)
			wrong = 1;
		if (c->stream &&
		    (c->overflow || strcmp(c->got, c->expect) != 0))
			wrong = 1;
	}
	if (wrong) {
		if (rep->wrong_text++ == 0) {
			fprintf(stderr,
			    "load %d: target %s: expected '%s', "
			    "result '%s', streamed '%s'\n",
			    rep->proc, res->target != NULL ? res->target : "?",
			    c->expect, res->text != NULL ? res->text : "(null)",
			    c->stream ? c->got : "-");
		}
	}
	llmgate_result_free(res);
}

/* One process: LOAD_CALLS calls, LOAD_WINDOW at a time; then report. */
static void
load_child(int proc, int out)
{
	struct load_report rep;
	struct load_child *lc;
	struct llmgate_request *req;
	struct load_call *c;
	struct pollfd pfd;
	char prompt[64], t1[128], t2[128], err[256];
	uint32_t id, seed = 0x9e3779b9U ^ (uint32_t)(proc + 1) * 2654435761U;
	int sent = 0, n;

	if ((lc = calloc(1, sizeof *lc)) == NULL)
		_exit(2);
	lc->rep.proc = proc;
	if ((lc->g = llmgate_connect(d.sock, "load", err, sizeof err)) ==
	    NULL) {
		fprintf(stderr, "load %d: %s\n", proc, err);
		lc->rep.transport = LOAD_CALLS;
		goto out;
	}
	while (lc->done < LOAD_CALLS) {
		while (sent < LOAD_CALLS && sent - lc->done < LOAD_WINDOW) {
			c = &lc->calls[sent];
			c->lc = lc;
			snprintf(prompt, sizeof prompt, "call %d of %d", sent,
			    proc);
			snprintf(c->expect, sizeof c->expect, "echo: %s",
			    prompt);
			load_target_name(t1, sizeof t1, proc, &seed);
			/* Most calls have a second target to fall back to. */
			if (load_rand(&seed) % 10 < 7) {
				load_target_name(t2, sizeof t2, proc, &seed);
				req = h_request(prompt, t1, t2, NULL);
			} else
				req = h_request(prompt, t1, NULL);
			c->stream = load_rand(&seed) & 1;
			llmgate_request_set_stream(req, c->stream);
			if (c->stream)
				lc->rep.streamed++;
			id = llmgate_submit(lc->g, req,
			    c->stream ? load_chunk : NULL, load_done, c);
			h_request_free(req);
			if (id == 0) {
				fprintf(stderr, "load %d: submit: %s\n", proc,
				    llmgate_error(lc->g));
				goto out;
			}
			sent++;
		}
		pfd.fd = llmgate_fd(lc->g);
		pfd.events = POLLIN | (llmgate_want_write(lc->g) ? POLLOUT : 0);
		n = poll(&pfd, 1, LOAD_STALL_MS);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "load %d: no answer for %d ms\n", proc,
			    LOAD_STALL_MS);
			break;
		}
		if (llmgate_process(lc->g) < 0) {
			fprintf(stderr, "load %d: %s\n", proc,
			    llmgate_error(lc->g));
			break;
		}
	}
	llmgate_close(lc->g);
out:
	lc->rep.unanswered = LOAD_CALLS - lc->done;
	/* Written from a copy: GCC at -O1 takes &lc->rep for its first
	 * member and warns that write() reads past it. */
	rep = lc->rep;
	if (write(out, &rep, sizeof rep) != sizeof rep)
		_exit(2);
	_exit(0);
}

/* The daemon's resident set in KiB, from /proc; 0 if unreadable. */
static long
load_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static void
load_add(struct load_report *sum, const struct load_report *r)
{
	int i;

	for (i = 0; i < LLMGATE_CLASS_MAX; i++)
		sum->cls[i] += r->cls[i];
	sum->bad_class += r->bad_class;
	sum->transport += r->transport;
	sum->twice += r->twice;
	sum->unanswered += r->unanswered;
	sum->wrong_text += r->wrong_text;
	sum->streamed += r->streamed;
	sum->chunks += r->chunks;
	sum->resets += r->resets;
}

static long long
status_field(json_t *st, const char *name)
{
	json_t *v = json_object_get(st, name);

	ck_assert_msg(json_is_integer(v), "status has no integer '%s'", name);
	return json_integer_value(v);
}

/*
 * The whole run: fork the processes, collect their reports while sampling
 * the daemon's memory, then check every call was answered once, with a
 * class it could have, and that the daemon is idle, alive and small.
 */
static void
load_run(void)
{
	static const int ok_classes[] = { LLMGATE_OK, LLMGATE_RATE_LIMITED,
		LLMGATE_OVERLOADED, LLMGATE_SERVER_ERROR, LLMGATE_CONNECTION,
		LLMGATE_PARSE_ERROR, LLMGATE_CIRCUIT_OPEN };
	struct load_report sum, rep;
	pid_t pids[LOAD_PROCS];
	char buf[sizeof rep * 8];
	size_t have = 0;
	uint64_t t0, next, elapsed;
	long rss, rss_start, rss_peak = 0;
	int fds[2], i, j, st, nrep = 0, eof = 0, crashed = 0, answers = 0;
	int unexpected = 0;
	struct pollfd pfd;
	struct run r;
	json_t *js, *fs;
	ssize_t n;

	memset(&sum, 0, sizeof sum);
	rss_start = load_rss_kb(d.pid);
	ck_assert_int_eq(pipe(fds), 0);
	t0 = h_mono_ms();
	for (i = 0; i < LOAD_PROCS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			close(fds[0]);
			load_child(i, fds[1]);
		}
	}
	close(fds[1]);

	/* Collect the reports, sampling the daemon's memory meanwhile. */
	next = t0;
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (!eof && h_mono_ms() - t0 < LOAD_LIMIT_MS) {
		if (h_mono_ms() >= next) {
			if ((rss = load_rss_kb(d.pid)) > rss_peak)
				rss_peak = rss;
			next += LOAD_SAMPLE_MS;
		}
		if (poll(&pfd, 1, LOAD_SAMPLE_MS) <= 0)
			continue;
		n = read(fds[0], buf + have, sizeof buf - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = 1;
			break;
		}
		have += (size_t)n;
		while (have >= sizeof rep) {
			memcpy(&rep, buf, sizeof rep);
			memmove(buf, buf + sizeof rep, have - sizeof rep);
			have -= sizeof rep;
			load_add(&sum, &rep);
			nrep++;
		}
	}
	elapsed = h_mono_ms() - t0;
	close(fds[0]);
	for (i = 0; i < LOAD_PROCS; i++) {
		if (!eof)
			kill(pids[i], SIGKILL);
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			crashed++;
	}
	if ((rss = load_rss_kb(d.pid)) > rss_peak)
		rss_peak = rss;

	for (i = 0; i < LLMGATE_CLASS_MAX; i++) {
		answers += (int)sum.cls[i];
		for (j = 0; j < (int)(sizeof ok_classes / sizeof ok_classes[0]);
		     j++) {
			if (ok_classes[j] == i)
				break;
		}
		if (j == (int)(sizeof ok_classes / sizeof ok_classes[0]))
			unexpected += (int)sum.cls[i];
	}
	fs = h_fakeprov_get(fp_port, "/_stats");
	fprintf(stderr,
	    "check_load (%s): %d processes x %d calls in %llu ms "
	    "(%d reports), %u streamed, %u chunks, %u resets; "
	    "%lld upstream requests\n",
	    load_breakers ? "breakers" : "faults", LOAD_PROCS, LOAD_CALLS,
	    (unsigned long long)elapsed, nrep, sum.streamed, sum.chunks,
	    sum.resets, json_integer_value(json_object_get(fs, "requests")));
	json_decref(fs);
	fprintf(stderr,
	    "check_load: llmgated RSS %ld KiB at start, "
	    "peak %ld KiB\n",
	    rss_start, rss_peak);
	fprintf(stderr, "check_load: answers %d:", answers);
	for (i = 0; i < LLMGATE_CLASS_MAX; i++) {
		if (sum.cls[i] != 0)
			fprintf(stderr, " %s %u", llmgate_class_name(i),
			    sum.cls[i]);
	}
	fprintf(stderr,
	    "; transport %u, bad class %u, twice %u, "
	    "unanswered %u, wrong text %u\n",
	    sum.transport, sum.bad_class, sum.twice, sum.unanswered,
	    sum.wrong_text);

	ck_assert_msg(eof, "the run took over %d ms", LOAD_LIMIT_MS);
	ck_assert_int_eq(crashed, 0);
	ck_assert_int_eq(nrep, LOAD_PROCS);
	ck_assert_uint_eq(sum.transport, 0);
	ck_assert_uint_eq(sum.bad_class, 0);
	ck_assert_uint_eq(sum.twice, 0);
	ck_assert_uint_eq(sum.unanswered, 0);
	ck_assert_int_eq(answers, LOAD_PROCS * LOAD_CALLS);
	ck_assert_uint_eq(sum.cls[LLMGATE_INTERNAL], 0);
	ck_assert_msg(unexpected == 0, "%d answers with an unexpected class",
	    unexpected);
	ck_assert_uint_eq(sum.wrong_text, 0);
	/* Faults were met and survived: both outcomes are there. */
	ck_assert_uint_gt(sum.cls[LLMGATE_OK], LOAD_PROCS * LOAD_CALLS / 2);
	ck_assert_uint_lt(sum.cls[LLMGATE_OK], LOAD_PROCS * LOAD_CALLS);
	if (load_breakers)
		ck_assert_uint_gt(sum.cls[LLMGATE_CIRCUIT_OPEN], 0);
	else
		ck_assert_uint_eq(sum.cls[LLMGATE_CIRCUIT_OPEN], 0);

	ck_assert_msg(h_daemon_alive(&d), "llmgated died under load");
	ck_assert_msg(rss_peak > 0 && rss_peak < LOAD_RSS_KB,
	    "llmgated RSS peaked at %ld KiB", rss_peak);

	/* Every call is over: nothing in flight, nothing queued. */
	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_msg(r.status == 0, "status: %s", r.err);
	js = json_loads(r.out, 0, NULL);
	ck_assert_msg(js != NULL, "status is not JSON: %s", r.out);
	ck_assert_int_eq(status_field(js, "inflight"), 0);
	ck_assert_int_eq(status_field(js, "queued"), 0);
	json_decref(js);
	h_run_free(&r);
}

START_TEST(test_load_faults)
{
	load_run();
}
END_TEST

START_TEST(test_load_breakers)
{
	load_run();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("load");
	TCase *tc;
	SRunner *sr;
	int failed;

	tc = tcase_create("faults");
	tcase_add_checked_fixture(tc, setup_faults, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_load_faults);
	suite_add_tcase(s, tc);
	tc = tcase_create("breakers");
	tcase_add_checked_fixture(tc, setup_breakers, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_load_breakers);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
