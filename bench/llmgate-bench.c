/*
 * llmgate-bench.c: load and memory benchmarks for llmgated.
 *
 * It prints numbers and asserts nothing. The load modes keep CONCURRENCY
 * calls in flight until CALLS have finished and report throughput and the
 * latency distribution, either through llmgated (libllmgate's asynchronous
 * API over one or several connections) or, with --direct, straight at the
 * upstream with libcurl multi and the request body the daemon would send,
 * so that one pair of runs gives the daemon's overhead. Other modes time
 * lease acquire+report pairs, and measure the daemon's resident memory
 * per idle client and per streamed call in flight. --pid names the
 * daemon (or any process) whose /proc/PID/status VmRSS the memory modes
 * read and whose CPU time per call the load modes report.
 *
 * Exit status: 0; 1 when a call failed or the run could not be made; 2
 * when llmgated refused leases (then nothing was timed).
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "llmgate.h"
#include "util.h"

#define BENCH_PROMPT       "Say hello."
#define BENCH_KEY          "bench"
#define BENCH_TIMEOUT_S    60
#define BENCH_SETTLE_MS    200
#define BENCH_HOLD_WAIT_MS 5000 /* keep under the upstream's -d */
#define BENCH_NOFILE_SPARE 256

enum bench_mode { MODE_DAEMON, MODE_DIRECT, MODE_LEASES, MODE_IDLE, MODE_HOLD };

static const char *bench_mode_names[] = { [MODE_DAEMON] = "daemon",
	[MODE_DIRECT] = "direct",
	[MODE_LEASES] = "leases",
	[MODE_IDLE] = "idle",
	[MODE_HOLD] = "hold" };

struct bench {
	enum bench_mode mode;
	char *socket; /* NULL: the library's default */
	char *target;
	char *model; /* target's part after the '/' */
	char *url;   /* --direct: the chat completions URL */
	char *prompt;
	char *key;
	int stream;
	int json;
	int pipewait; /* --direct: CURLOPT_PIPEWAIT, as llmgated */
	long calls;
	long concurrency;
	long conns;
	long warmup;
	long count; /* --idle and --hold: how many */
	long timeout_s;
	pid_t pid; /* whose VmRSS to read, 0: none */
};

/* What one load run measured. */
struct stats {
	uint64_t *lat; /* µs, submit to final answer */
	size_t nlat;
	uint64_t *ttfb; /* µs, submit to first streamed text */
	size_t nttfb;
	long failed;
	uint64_t elapsed_us;
	long long cpu_us; /* --pid: its CPU time over the run, -1 */
	char error[256];  /* the first failure */
};

static void usage(void) __attribute__((noreturn));
static void stats_fail(struct stats *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: llmgate-bench [-s socket] -m target -n calls -c concurrency "
	    "[-C connections]\n"
	    "                     [-w warmup] [-p prompt] [-T timeout_s] "
	    "[--stream] [--json] [--pid pid]\n"
	    "                     [--direct url [-k key] [--no-pipewait]] "
	    "[--leases]\n"
	    "       llmgate-bench [-s socket] --idle N [--pid pid] [--json]\n"
	    "       llmgate-bench [-s socket] -m target --hold N [-C connections] "
	    "[--stream]\n"
	    "                     [--pid pid] [--json]\n");
	exit(1);
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size)) == NULL)
		util_fatalx("out of memory");
	return p;
}

/* The resident set of pid in KiB, from /proc/PID/status; -1 if unknown. */
static long
rss_kib(pid_t pid)
{
	FILE *f;
	char path[64], line[256];
	long kib = -1;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

/*
 * CPU time pid used so far (user + system) in µs, from /proc/PID/stat;
 * -1 if unknown. Clock ticks are coarse (10 ms): runs must be long enough.
 */
static long long
cpu_us(pid_t pid)
{
	FILE *f;
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long hz;
	size_t n;

	if (pid <= 0 || (hz = sysconf(_SC_CLK_TCK)) <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces: fields count from its ')'. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1,
	        " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	        "%llu %llu",
	        &ut, &st) != 2)
		return -1;
	return (long long)((ut + st) * 1000000ULL / (unsigned long long)hz);
}

static void
stats_fail(struct stats *st, const char *fmt, ...)
{
	va_list ap;

	st->failed++;
	if (*st->error != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(st->error, sizeof st->error, fmt, ap);
	va_end(ap);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least p% at or below it. */
static uint64_t
percentile(const uint64_t *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank == 0)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static void
json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void
stats_print(const struct bench *b, struct stats *st)
{
	double secs = (double)st->elapsed_us / 1e6, rate;
	const char *where;

	qsort(st->lat, st->nlat, sizeof *st->lat, cmp_u64);
	qsort(st->ttfb, st->nttfb, sizeof *st->ttfb, cmp_u64);
	rate = secs > 0 ? (double)st->nlat / secs : 0;

	if (b->json) {
		printf("{\"mode\": \"%s\", \"stream\": %s, \"calls\": %ld, "
		       "\"concurrency\": %ld, \"connections\": %ld, "
		       "\"ok\": %zu, \"failed\": %ld, \"elapsed_s\": %.3f, "
		       "\"calls_per_s\": %.1f, \"p50_us\": %" PRIu64 ", "
		       "\"p90_us\": %" PRIu64 ", \"p99_us\": %" PRIu64 ", "
		       "\"max_us\": %" PRIu64,
		    bench_mode_names[b->mode], b->stream ? "true" : "false",
		    b->calls, b->concurrency,
		    b->mode == MODE_DAEMON ? b->conns : 0, st->nlat, st->failed,
		    secs, rate, percentile(st->lat, st->nlat, 50),
		    percentile(st->lat, st->nlat, 90),
		    percentile(st->lat, st->nlat, 99),
		    percentile(st->lat, st->nlat, 100));
		if (b->stream)
			printf(", \"ttfb_p50_us\": %" PRIu64
			       ", \"ttfb_p99_us\": "
			       "%" PRIu64,
			    percentile(st->ttfb, st->nttfb, 50),
			    percentile(st->ttfb, st->nttfb, 99));
		if (st->cpu_us >= 0 && st->nlat > 0)
			printf(", \"pid_cpu_us_per_call\": %.1f",
			    (double)st->cpu_us / (double)st->nlat);
		if (*st->error != '\0') {
			printf(", \"error\": ");
			json_string(stdout, st->error);
		}
		printf("}\n");
		return;
	}

	where = b->mode == MODE_DIRECT ? b->url : b->socket;
	printf("%s %s, %s, %ld calls, concurrency %ld",
	    b->mode == MODE_DIRECT ? "direct to" : "through llmgated at",
	    where != NULL ? where : "(default socket)",
	    b->stream ? "stream" : "plain", b->calls, b->concurrency);
	if (b->mode == MODE_DAEMON)
		printf(", %ld connection%s", b->conns,
		    b->conns == 1 ? "" : "s");
	printf("\n");
	printf("  calls/s %.1f  (%zu ok, %ld failed, %.3f s)\n", rate, st->nlat,
	    st->failed, secs);
	printf("  latency us  p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64
	       "  max %" PRIu64 "\n",
	    percentile(st->lat, st->nlat, 50),
	    percentile(st->lat, st->nlat, 90),
	    percentile(st->lat, st->nlat, 99),
	    percentile(st->lat, st->nlat, 100));
	if (b->stream)
		printf("  first chunk us  p50 %" PRIu64 "  p99 %" PRIu64 "\n",
		    percentile(st->ttfb, st->nttfb, 50),
		    percentile(st->ttfb, st->nttfb, 99));
	if (st->cpu_us >= 0 && st->nlat > 0)
		printf("  pid %ld CPU us per call %.1f (%.0f%% of one CPU)\n",
		    (long)b->pid, (double)st->cpu_us / (double)st->nlat,
		    secs > 0 ? (double)st->cpu_us / 1e4 / secs : 0);
	if (*st->error != '\0')
		printf("  first failure: %s\n", st->error);
}

/*
 * Through llmgated. Each connection keeps its share of the concurrency in
 * flight; calls are topped up from the main loop, never from inside the
 * library's callbacks.
 */
struct bconn {
	struct llmgate *g;
	long inflight;
	long quota;
	int dead;
};

struct drun {
	struct bench *b;
	struct bconn *conns;
	long nconns;
	long total;
	long submitted;
	long finished;
	long streaming;   /* calls that saw their first chunk */
	struct stats *st; /* NULL: warm-up, nothing recorded */
};

struct bcall {
	struct drun *run;
	struct bconn *bc;
	uint64_t start;
	uint64_t first;
};

static void
bcall_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct bcall *bk = arg;

	if (bk->first == 0 && ch->len > 0) {
		bk->first = util_now_us();
		bk->run->streaming++;
	}
}

static void
bcall_done(struct llmgate_result *r, void *arg)
{
	struct bcall *bk = arg;
	struct drun *run = bk->run;
	struct stats *st = run->st;
	uint64_t end = util_now_us();

	if (st != NULL) {
		if (r->cls != LLMGATE_OK)
			stats_fail(st, "%s: %s", llmgate_class_name(r->cls),
			    r->message != NULL ? r->message : "");
		else if (r->text == NULL || *r->text == '\0')
			stats_fail(st, "an empty reply");
		else {
			st->lat[st->nlat++] = end - bk->start;
			if (bk->first != 0)
				st->ttfb[st->nttfb++] = bk->first - bk->start;
		}
	}
	llmgate_result_free(r);
	bk->bc->inflight--;
	run->finished++;
	free(bk);
}

static struct llmgate_request *
drun_request(const struct bench *b)
{
	struct llmgate_request *req = llmgate_request_new();

	if (req == NULL ||
	    llmgate_request_add_message(req, LLMGATE_ROLE_USER, b->prompt) ==
	        -1 ||
	    llmgate_request_add_target(req, b->target) == -1 ||
	    llmgate_request_set_stream(req, b->stream) == -1)
		util_fatalx("cannot build the request");
	return req;
}

static void
drun_connect(struct drun *run, struct bench *b, long nconns, long concurrency)
{
	char err[512];
	long i;

	run->b = b;
	run->nconns = nconns;
	run->conns = xcalloc((size_t)nconns, sizeof *run->conns);
	for (i = 0; i < nconns; i++) {
		run->conns[i].g = llmgate_connect(b->socket, "llmgate-bench",
		    err, sizeof err);
		if (run->conns[i].g == NULL)
			util_fatalx("%s", err);
		run->conns[i].quota =
		    concurrency / nconns + (i < concurrency % nconns);
	}
}

static void
drun_close(struct drun *run)
{
	long i;

	for (i = 0; i < run->nconns; i++)
		llmgate_close(run->conns[i].g);
	free(run->conns);
	run->conns = NULL;
}

static void
drun_submit(struct drun *run, struct bconn *bc,
    const struct llmgate_request *req)
{
	struct bcall *bk;

	bk = xcalloc(1, sizeof *bk);
	bk->run = run;
	bk->bc = bc;
	bk->start = util_now_us();
	run->submitted++;
	if (llmgate_submit(bc->g, req, bcall_chunk, bcall_done, bk) == 0) {
		if (run->st != NULL)
			stats_fail(run->st, "submit: %s", llmgate_error(bc->g));
		run->finished++;
		free(bk);
		if (!llmgate_connected(bc->g))
			bc->dead = 1;
		return;
	}
	bc->inflight++;
}

/*
 * Serve the connections until every submitted call answered, or, with
 * until_streaming, until each has answered or sent its first chunk. With
 * topup, finished calls are replaced until total were submitted. Returns
 * -1 when the deadline passed first.
 */
static int
drun_loop(struct drun *run, const struct llmgate_request *req, int topup,
    int until_streaming, uint64_t deadline)
{
	struct pollfd *pfd;
	struct bconn *bc;
	long i, n, *which;
	int rv = 0;

	pfd = xcalloc((size_t)run->nconns, sizeof *pfd);
	which = xcalloc((size_t)run->nconns, sizeof *which);
	for (;;) {
		if (topup) {
			for (i = 0; i < run->nconns; i++) {
				bc = &run->conns[i];
				while (!bc->dead && bc->inflight < bc->quota &&
				    run->submitted < run->total)
					drun_submit(run, bc, req);
			}
		}
		if (run->finished >= run->submitted &&
		    (!topup || run->submitted >= run->total))
			break;
		if (until_streaming &&
		    run->finished + run->streaming >= run->submitted)
			break;
		if (util_now_us() >= deadline) {
			rv = -1;
			break;
		}

		n = 0;
		for (i = 0; i < run->nconns; i++) {
			bc = &run->conns[i];
			if (bc->dead || bc->inflight == 0)
				continue;
			pfd[n].fd = llmgate_fd(bc->g);
			pfd[n].events = POLLIN;
			if (llmgate_want_write(bc->g))
				pfd[n].events |= POLLOUT;
			pfd[n].revents = 0;
			which[n++] = i;
		}
		if (n == 0) {
			/* Every connection died; what is left cannot run. */
			if (run->st != NULL && run->total > run->submitted)
				stats_fail(run->st,
				    "connection to llmgated "
				    "lost");
			break;
		}
		if (poll(pfd, (nfds_t)n, 100) == -1) {
			if (errno == EINTR)
				continue;
			util_fatalx("poll: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			if (pfd[i].revents == 0)
				continue;
			bc = &run->conns[which[i]];
			if (llmgate_process(bc->g) == -1)
				bc->dead = 1;
		}
	}
	free(which);
	free(pfd);
	return rv;
}

static int
bench_daemon(struct bench *b)
{
	struct llmgate_request *req;
	struct drun run;
	struct stats st;
	uint64_t start, deadline;
	long long cpu;

	req = drun_request(b);
	memset(&run, 0, sizeof run);
	drun_connect(&run, b, b->conns, b->concurrency);
	deadline = util_now_us() + (uint64_t)b->timeout_s * 1000000;

	if (b->warmup > 0) {
		run.total = b->warmup;
		if (drun_loop(&run, req, 1, 0, deadline) != 0)
			util_fatalx("warm-up did not finish in %ld s",
			    b->timeout_s);
	}

	memset(&st, 0, sizeof st);
	st.lat = xcalloc((size_t)b->calls, sizeof *st.lat);
	st.ttfb = xcalloc((size_t)b->calls, sizeof *st.ttfb);
	run.st = &st;
	run.total = b->calls;
	run.submitted = run.finished = run.streaming = 0;
	cpu = cpu_us(b->pid);
	start = util_now_us();
	if (drun_loop(&run, req, 1, 0, deadline) != 0) {
		while (run.finished < run.submitted) {
			stats_fail(&st, "no answer within %ld s", b->timeout_s);
			run.finished++;
		}
	}
	st.elapsed_us = util_now_us() - start;
	st.cpu_us = cpu >= 0 ? cpu_us(b->pid) - cpu : -1;
	/* Calls never submitted (connections lost) count as failed. */
	st.failed += run.total - run.submitted;
	drun_close(&run);
	llmgate_request_free(req);

	stats_print(b, &st);
	free(st.lat);
	free(st.ttfb);
	return st.failed == 0 ? 0 : 1;
}

/*
 * Straight at the upstream: the same body and headers llmgated sends
 * (provider-openai.c), on libcurl multi with the same transfer options.
 */
struct dcall {
	CURL *easy;
	uint64_t start;
	uint64_t first;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t
dcall_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct dcall *dc = arg;

	if (dc->first == 0 && size * nmemb > 0)
		dc->first = util_now_us();
	return size * nmemb;
}

static void
json_escape(char *out, size_t outlen, const char *s)
{
	size_t n = 0;

	for (; *s != '\0' && n + 7 < outlen; s++) {
		if (*s == '"' || *s == '\\') {
			out[n++] = '\\';
			out[n++] = *s;
		} else if ((unsigned char)*s < 0x20)
			n += (size_t)snprintf(out + n, outlen - n, "\\u%04x",
			    (unsigned char)*s);
		else
			out[n++] = *s;
	}
	out[n] = '\0';
}

static void
dcall_setup(struct dcall *dc, const struct bench *b, const char *body,
    struct curl_slist *headers)
{
	if ((dc->easy = curl_easy_init()) == NULL)
		util_fatalx("curl_easy_init failed");
	curl_easy_setopt(dc->easy, CURLOPT_URL, b->url);
	curl_easy_setopt(dc->easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(dc->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(dc->easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)strlen(body));
	curl_easy_setopt(dc->easy, CURLOPT_WRITEFUNCTION, dcall_write);
	curl_easy_setopt(dc->easy, CURLOPT_WRITEDATA, dc);
	curl_easy_setopt(dc->easy, CURLOPT_PRIVATE, dc);
	curl_easy_setopt(dc->easy, CURLOPT_ERRORBUFFER, dc->errbuf);
	curl_easy_setopt(dc->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(dc->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(dc->easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(dc->easy, CURLOPT_PIPEWAIT, (long)b->pipewait);
	curl_easy_setopt(dc->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(dc->easy, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(dc->easy, CURLOPT_USERAGENT,
	    "llmgate-bench/" LLMGATE_VERSION);
}

static void
dcall_start(CURLM *multi, struct dcall *dc)
{
	dc->start = util_now_us();
	dc->first = 0;
	*dc->errbuf = '\0';
	if (curl_multi_add_handle(multi, dc->easy) != CURLM_OK)
		util_fatalx("curl_multi_add_handle failed");
}

/* One load of total calls on the multi handle; st NULL: warm-up. */
static int
direct_loop(CURLM *multi, struct dcall *dcs, long ndcs, long total,
    struct stats *st, uint64_t deadline)
{
	struct dcall *dc;
	CURLMsg *m;
	uint64_t end;
	long submitted = 0, finished = 0, i, status;
	int running, left;

	for (i = 0; i < ndcs && submitted < total; i++, submitted++)
		dcall_start(multi, &dcs[i]);
	while (finished < total) {
		if (util_now_us() >= deadline) {
			if (st != NULL) {
				for (; finished < submitted; finished++)
					stats_fail(st, "no answer in time");
			}
			return -1;
		}
		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			end = util_now_us();
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
			    (char **)&dc);
			status = 0;
			curl_easy_getinfo(dc->easy, CURLINFO_RESPONSE_CODE,
			    &status);
			if (st != NULL) {
				if (m->data.result != CURLE_OK)
					stats_fail(st, "curl: %s",
					    *dc->errbuf != '\0' ?
					        dc->errbuf :
					        curl_easy_strerror(
					            m->data.result));
				else if (status != 200)
					stats_fail(st, "HTTP status %ld",
					    status);
				else {
					st->lat[st->nlat++] = end - dc->start;
					if (dc->first != 0)
						st->ttfb[st->nttfb++] =
						    dc->first - dc->start;
				}
			}
			/* Not from a callback: the drain loop may do this. */
			curl_multi_remove_handle(multi, dc->easy);
			finished++;
			if (submitted < total) {
				dcall_start(multi, dc);
				submitted++;
			}
		}
		if (finished >= total)
			break;
		curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	return 0;
}

static int
bench_direct(struct bench *b)
{
	struct curl_slist *headers = NULL;
	struct dcall *dcs;
	struct stats st;
	CURLM *multi;
	char body[4096], prompt[2048], model[512];
	char auth[256];
	uint64_t start, deadline;
	long long cpu;
	long i;

	json_escape(prompt, sizeof prompt, b->prompt);
	json_escape(model, sizeof model, b->model);
	snprintf(body, sizeof body,
	    "{\"model\":\"%s\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"%s\"}]%s}",
	    model, prompt,
	    b->stream ? ",\"stream\":true,\"stream_options\":"
	                "{\"include_usage\":true}" :
	                "");
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", b->key);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	if (b->stream)
		headers =
		    curl_slist_append(headers, "Accept: text/event-stream");
	headers = curl_slist_append(headers, auth);
	headers = curl_slist_append(headers, "Expect:");
	if (headers == NULL)
		util_fatalx("out of memory");

	if ((multi = curl_multi_init()) == NULL)
		util_fatalx("curl_multi_init failed");
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	dcs = xcalloc((size_t)b->concurrency, sizeof *dcs);
	for (i = 0; i < b->concurrency; i++)
		dcall_setup(&dcs[i], b, body, headers);
	deadline = util_now_us() + (uint64_t)b->timeout_s * 1000000;

	if (b->warmup > 0 &&
	    direct_loop(multi, dcs, b->concurrency, b->warmup, NULL,
	        deadline) != 0)
		util_fatalx("warm-up did not finish in %ld s", b->timeout_s);

	memset(&st, 0, sizeof st);
	st.lat = xcalloc((size_t)b->calls, sizeof *st.lat);
	st.ttfb = xcalloc((size_t)b->calls, sizeof *st.ttfb);
	cpu = cpu_us(b->pid);
	start = util_now_us();
	direct_loop(multi, dcs, b->concurrency, b->calls, &st, deadline);
	st.elapsed_us = util_now_us() - start;
	st.cpu_us = cpu >= 0 ? cpu_us(b->pid) - cpu : -1;

	for (i = 0; i < b->concurrency; i++) {
		curl_multi_remove_handle(multi, dcs[i].easy);
		curl_easy_cleanup(dcs[i].easy);
	}
	curl_multi_cleanup(multi);
	curl_slist_free_all(headers);
	free(dcs);

	stats_print(b, &st);
	free(st.lat);
	free(st.ttfb);
	return st.failed == 0 ? 0 : 1;
}

/*
 * What one lease process did, in memory shared with the parent: its pair
 * latencies go into its own slice of one array.
 */
struct lease_share {
	size_t nlat;
	long failed;
	int refused; /* the first acquire was refused */
	enum llmgate_class cls;
	char error[640];
};

/* A failed acquire or report, counted; the first of each process told. */
static void
lease_failed(struct lease_share *sh, const char *what, enum llmgate_class cls,
    const char *msg)
{
	sh->failed++;
	if (*sh->error == '\0')
		snprintf(sh->error, sizeof sh->error, "%s: %s: %s", what,
		    llmgate_class_name(cls), msg != NULL ? msg : "");
}

/* What every pair reports: a 200 with the bench upstream's usage. */
static struct llmgate_report *
lease_report_ok(void)
{
	struct llmgate_report *rep = llmgate_report_new(0, 200);

	llmgate_report_set_tokens(rep, 9, 8);
	return rep;
}

/*
 * A lease process with -c pairs in flight through the asynchronous API
 * (llmgate_acquire_submit, llmgate_report_submit), as a program with many
 * calls of its own SDK at once would hold them.
 */
struct lease_async {
	struct llmgate *g;
	const struct llmgate_acquire *acq;
	struct llmgate_report *rep; /* reused: encoded at submit */
	struct lease_share *sh;
	uint64_t *lat;
	long left; /* pairs not started yet */
	long running;
};

struct lease_slot {
	struct lease_async *la;
	uint64_t t0;
};

static void lease_slot_start(struct lease_slot *);

static void
lease_reported(const struct llmgate_lease *l, enum llmgate_class cls,
    const char *msg, void *arg)
{
	struct lease_slot *s = arg;
	struct lease_async *la = s->la;

	if (cls == LLMGATE_OK)
		la->lat[la->sh->nlat++] = util_now_us() - s->t0;
	else
		lease_failed(la->sh, "report", cls, msg);
	la->running--;
	lease_slot_start(s);
}

static void
lease_granted(const struct llmgate_lease *l, enum llmgate_class cls,
    const char *msg, void *arg)
{
	struct lease_slot *s = arg;
	struct lease_async *la = s->la;

	if (l == NULL) {
		/* Refused before any pair went through: not measured. */
		if (la->sh->nlat == 0 && la->sh->failed == 0) {
			la->sh->refused = 1;
			la->sh->cls = cls;
			snprintf(la->sh->error, sizeof la->sh->error, "%s",
			    msg != NULL ? msg : "");
			la->left = 0;
		} else
			lease_failed(la->sh, "acquire", cls, msg);
		la->running--;
		lease_slot_start(s);
		return;
	}
	llmgate_report_set_lease(la->rep, l->id);
	if (llmgate_report_submit(la->g, la->rep, lease_reported, s) == 0)
		util_fatalx("report: %s", llmgate_error(la->g));
}

static void
lease_slot_start(struct lease_slot *s)
{
	struct lease_async *la = s->la;

	if (la->left == 0)
		return;
	la->left--;
	la->running++;
	s->t0 = util_now_us();
	if (llmgate_acquire_submit(la->g, la->acq, lease_granted, s) == 0)
		util_fatalx("acquire: %s", llmgate_error(la->g));
}

static void
lease_pipelined(struct bench *b, struct llmgate *g,
    const struct llmgate_acquire *acq, long calls, uint64_t *lat,
    struct lease_share *sh)
{
	struct lease_async la;
	struct lease_slot *slots;
	struct pollfd pfd;
	long i;

	memset(&la, 0, sizeof la);
	la.g = g;
	la.acq = acq;
	la.rep = lease_report_ok();
	la.sh = sh;
	la.lat = lat;
	la.left = calls;
	slots = xcalloc((size_t)b->concurrency, sizeof *slots);
	for (i = 0; i < b->concurrency; i++) {
		slots[i].la = &la;
		lease_slot_start(&slots[i]);
	}
	while (la.running != 0) {
		pfd.fd = llmgate_fd(g);
		pfd.events = POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			util_fatalx("poll: %s", strerror(errno));
		if (llmgate_process(g) == -1)
			util_fatalx("leases: %s", llmgate_error(g));
	}
	llmgate_report_free(la.rep);
	free(slots);
}

/*
 * One lease process: connect, say so on ready, wait for a byte on go,
 * then CALLS acquire+report pairs one after the other (both calls block),
 * or -c at a time through the asynchronous API.
 */
static void
lease_proc(struct bench *b, long calls, uint64_t *lat, struct lease_share *sh,
    int ready, int go)
{
	struct llmgate *g;
	struct llmgate_acquire *acq;
	struct llmgate_lease *lease;
	struct llmgate_report *rep;
	enum llmgate_class cls;
	char err[512], c = 0;
	uint64_t t0;
	long i;
	int rv;

	if ((g = llmgate_connect(b->socket, "llmgate-bench", err,
	         sizeof err)) == NULL)
		util_fatalx("%s", err);
	/* The parent writes a byte each to go, or closes it to call off. */
	if (write(ready, &c, 1) != 1)
		util_fatalx("lease process: lost the parent");
	close(ready);
	if (read(go, &c, 1) != 1) {
		llmgate_close(g);
		_exit(0);
	}
	if ((acq = llmgate_acquire_new(b->target)) == NULL)
		util_fatalx("no target");
	llmgate_acquire_set_tokens(acq, 100);
	llmgate_acquire_set_timeout_ms(acq, 1000);
	if (b->concurrency > 1) {
		lease_pipelined(b, g, acq, calls, lat, sh);
		llmgate_acquire_free(acq);
		llmgate_close(g);
		return;
	}
	rep = lease_report_ok();
	for (i = 0; i < calls; i++) {
		t0 = util_now_us();
		rv = llmgate_acquire(g, acq, &lease, &cls, err, sizeof err);
		if (rv == -1)
			util_fatalx("acquire: %s", err);
		if (rv == 1) {
			if (i == 0) {
				sh->refused = 1;
				sh->cls = cls;
				snprintf(sh->error, sizeof sh->error, "%s",
				    err);
				break;
			}
			lease_failed(sh, "acquire", cls, err);
			continue;
		}
		llmgate_report_set_lease(rep, lease->id);
		llmgate_lease_free(lease);
		if (llmgate_report(g, rep) != 0) {
			sh->failed++;
			if (*sh->error == '\0')
				snprintf(sh->error, sizeof sh->error,
				    "report: %s", llmgate_error(g));
			if (!llmgate_connected(g))
				break;
			continue;
		}
		lat[sh->nlat++] = util_now_us() - t0;
	}
	llmgate_report_free(rep);
	llmgate_acquire_free(acq);
	llmgate_close(g);
}

/*
 * Advisory leases: acquire+report pairs from -C processes at once (one
 * connection each, as separate programs sharing a key would), CALLS in
 * all. The clock starts once every process is connected. A daemon that
 * refuses the first acquire is reported as such, with its reason, and
 * nothing is timed.
 */
static int
bench_leases(struct bench *b)
{
	struct lease_share *sh;
	struct stats st;
	uint64_t *lat;
	size_t size;
	long i, n, k, off;
	pid_t pid;
	int ready[2], go[2], status, refused = -1;
	char c;

	size = (size_t)b->conns * sizeof *sh + (size_t)b->calls * sizeof *lat;
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		util_fatalx("mmap: %s", strerror(errno));
	lat = (uint64_t *)(sh + b->conns);
	if (pipe(ready) == -1 || pipe(go) == -1)
		util_fatalx("pipe: %s", strerror(errno));
	for (i = off = 0; i < b->conns; i++, off += n) {
		n = b->calls / b->conns + (i < b->calls % b->conns);
		if ((pid = fork()) == -1)
			util_fatalx("fork: %s", strerror(errno));
		if (pid == 0) {
			close(ready[0]);
			close(go[1]);
			lease_proc(b, n, lat + off, sh + i, ready[1], go[0]);
			_exit(0);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (i = 0; i < b->conns; i++) {
		if (read(ready[0], &c, 1) != 1)
			util_fatalx("a lease process could not connect");
	}

	memset(&st, 0, sizeof st);
	st.lat = xcalloc((size_t)b->calls, sizeof *st.lat);
	st.elapsed_us = util_now_us();
	for (i = 0; i < b->conns; i++) {
		if (write(go[1], "g", 1) != 1)
			util_fatalx("go: %s", strerror(errno));
	}
	close(go[1]);
	while (wait(&status) > 0) {
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			stats_fail(&st, "a lease process failed");
	}
	st.elapsed_us = util_now_us() - st.elapsed_us;
	close(ready[0]);

	for (i = off = 0; i < b->conns; i++, off += n) {
		n = b->calls / b->conns + (i < b->calls % b->conns);
		for (k = 0; k < (long)sh[i].nlat; k++)
			st.lat[st.nlat++] = lat[off + k];
		st.failed += sh[i].failed;
		if (*st.error == '\0' && *sh[i].error != '\0' && !sh[i].refused)
			snprintf(st.error, sizeof st.error, "%s", sh[i].error);
		if (sh[i].refused && refused == -1)
			refused = (int)i;
	}
	if (refused != -1) {
		if (b->json) {
			printf("{\"mode\": \"leases\", \"supported\": "
			       "false, \"class\": \"%s\", \"error\": ",
			    llmgate_class_name(sh[refused].cls));
			json_string(stdout, sh[refused].error);
			printf("}\n");
		} else
			printf("leases: not measured: llmgated refused "
			       "the first acquire (%s: %s)\n",
			    llmgate_class_name(sh[refused].cls),
			    sh[refused].error);
		munmap(sh, size);
		free(st.lat);
		return 2;
	}
	munmap(sh, size);

	qsort(st.lat, st.nlat, sizeof *st.lat, cmp_u64);
	if (b->json) {
		printf("{\"mode\": \"leases\", \"supported\": true, "
		       "\"connections\": %ld, \"in_flight\": %ld, "
		       "\"pairs\": %zu, \"failed\": %ld, "
		       "\"pairs_per_s\": %.1f, \"p50_us\": %" PRIu64 ", "
		       "\"p99_us\": %" PRIu64 ", \"max_us\": %" PRIu64 "}\n",
		    b->conns, b->concurrency, st.nlat, st.failed,
		    (double)st.nlat / ((double)st.elapsed_us / 1e6),
		    percentile(st.lat, st.nlat, 50),
		    percentile(st.lat, st.nlat, 99),
		    percentile(st.lat, st.nlat, 100));
	} else {
		printf("leases: %.1f acquire+report pairs/s over %ld "
		       "connection%s, %ld in flight on each (%zu ok, %ld "
		       "failed)\n",
		    (double)st.nlat / ((double)st.elapsed_us / 1e6), b->conns,
		    b->conns == 1 ? "" : "s", b->concurrency, st.nlat,
		    st.failed);
		printf("  pair latency us  p50 %" PRIu64 "  p99 %" PRIu64
		       "  max %" PRIu64 "\n",
		    percentile(st.lat, st.nlat, 50),
		    percentile(st.lat, st.nlat, 99),
		    percentile(st.lat, st.nlat, 100));
		if (*st.error != '\0')
			printf("  first failure: %s\n", st.error);
	}
	free(st.lat);
	return st.failed == 0 ? 0 : 1;
}

static void
print_memory(const struct bench *b, const char *what, long n, long want,
    long before, long after, const char *note)
{
	double per = n > 0 ? (double)(after - before) / (double)n : 0;

	if (b->json) {
		printf("{\"mode\": \"%s\", \"count\": %ld, \"wanted\": %ld, "
		       "\"rss_before_kib\": %ld, \"rss_after_kib\": %ld, "
		       "\"kib_each\": %.2f",
		    bench_mode_names[b->mode], n, want, before, after, per);
		if (note != NULL) {
			printf(", \"error\": ");
			json_string(stdout, note);
		}
		printf("}\n");
		return;
	}
	printf("%s: %ld of %ld", what, n, want);
	if (before >= 0 && after >= 0)
		printf(", llmgated VmRSS %ld -> %ld KiB, %.2f KiB each", before,
		    after, per);
	printf("\n");
	if (note != NULL)
		printf("  stopped early: %s\n", note);
}

/* N idle clients: connected, handshake done, nothing asked. */
static int
bench_idle(struct bench *b)
{
	struct llmgate **gs;
	char err[512];
	long before, after, i, n = 0;

	util_raise_nofile(b->count + BENCH_NOFILE_SPARE);
	gs = xcalloc((size_t)b->count, sizeof *gs);
	*err = '\0';
	before = rss_kib(b->pid);
	for (i = 0; i < b->count; i++) {
		gs[i] = llmgate_connect(b->socket, "llmgate-bench-idle", err,
		    sizeof err);
		if (gs[i] == NULL)
			break;
		n++;
	}
	util_sleep_ms(BENCH_SETTLE_MS);
	after = rss_kib(b->pid);
	print_memory(b, "idle clients", n, b->count, before, after,
	    n < b->count ? err : NULL);
	for (i = 0; i < n; i++)
		llmgate_close(gs[i]);
	free(gs);
	return n == b->count ? 0 : 1;
}

/*
 * Wait until the calls submitted so far are in flight: streaming, or for
 * plain calls (nothing tells when one reached the upstream) a second.
 */
static void
hold_wait(struct drun *run, const struct llmgate_request *req, int stream)
{
	uint64_t deadline;

	if (stream) {
		deadline = util_now_us() + (uint64_t)BENCH_HOLD_WAIT_MS * 1000;
		drun_loop(run, req, 0, 1, deadline);
	} else {
		deadline = util_now_us() + 1000 * 1000;
		drun_loop(run, req, 0, 0, deadline);
	}
}

/*
 * N calls in flight at once, measured once each is streaming (or, for a
 * plain call, after a settling time): the upstream must hold them (-d).
 * One call goes first and the baseline is read once it is in flight:
 * llmgated's libcurl sets CURLOPT_PIPEWAIT, which parks transfers to a
 * host whose first connection has not yet answered (it might multiplex)
 * until some transfer there ends; with held replies that is the hold.
 * Closing the connections at the end cancels the calls.
 */
static int
bench_hold(struct bench *b)
{
	struct llmgate_request *req;
	struct drun run;
	char note[160];
	long before, after, i, live, streaming, ended;
	long p_sub, p_fin, p_str;

	util_raise_nofile(b->conns + BENCH_NOFILE_SPARE);
	req = drun_request(b);
	memset(&run, 0, sizeof run);
	drun_connect(&run, b, b->conns, b->count);

	drun_submit(&run, &run.conns[0], req);
	hold_wait(&run, req, b->stream);
	p_sub = run.submitted;
	p_fin = run.finished;
	p_str = run.streaming;
	util_sleep_ms(BENCH_SETTLE_MS);
	before = rss_kib(b->pid);

	for (i = 0; i < b->count; i++)
		drun_submit(&run, &run.conns[i % run.nconns], req);
	hold_wait(&run, req, b->stream);
	util_sleep_ms(BENCH_SETTLE_MS);
	after = rss_kib(b->pid);

	ended = run.finished - p_fin;
	live = (run.submitted - p_sub) - ended;
	streaming = run.streaming - p_str;
	*note = '\0';
	if (p_fin != 0)
		snprintf(note, sizeof note,
		    "the first call ended before the "
		    "others were sent (upstream delay too short?)");
	else if (ended != 0)
		snprintf(note, sizeof note,
		    "%ld calls had already ended "
		    "(upstream delay too short?)",
		    ended);
	else if (b->stream && streaming < b->count)
		snprintf(note, sizeof note,
		    "only %ld of %ld calls were "
		    "streaming",
		    streaming, b->count);
	print_memory(b,
	    b->stream ? "streamed calls in flight" : "calls in flight", live,
	    b->count, before, after, *note != '\0' ? note : NULL);
	drun_close(&run);
	llmgate_request_free(req);
	return *note == '\0' ? 0 : 1;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "stream", no_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'J' },
		{ "direct", required_argument, NULL, 'D' },
		{ "leases", no_argument, NULL, 'L' },
		{ "idle", required_argument, NULL, 'I' },
		{ "hold", required_argument, NULL, 'H' },
		{ "pid", required_argument, NULL, 'P' },
		{ "no-pipewait", no_argument, NULL, 'W' }, { NULL, 0, NULL, 0 }
	};
	static char prompt[] = BENCH_PROMPT, key[] = BENCH_KEY;
	static char target[] = "bench/bench-model";
	struct bench b;
	const char *direct = NULL;
	char *url = NULL, *slash;
	size_t len;
	int ch, leases = 0, rv;

	memset(&b, 0, sizeof b);
	b.prompt = prompt;
	b.key = key;
	b.calls = 1000;
	b.concurrency = 1;
	b.conns = 1;
	b.warmup = -1;
	b.timeout_s = BENCH_TIMEOUT_S;
	b.pipewait = 1;
	util_setup("llmgate-bench", usage);
	while ((ch = getopt_long(argc, argv, "C:c:k:m:n:p:s:T:w:", longopts,
	            NULL)) != -1) {
		switch (ch) {
		case 'C':
			b.conns = util_parse_num(optarg, 1, 100000);
			break;
		case 'c':
			b.concurrency = util_parse_num(optarg, 1, 1000000);
			break;
		case 'k':
			b.key = optarg;
			break;
		case 'm':
			b.target = optarg;
			break;
		case 'n':
			b.calls = util_parse_num(optarg, 1, 100000000);
			break;
		case 'p':
			b.prompt = optarg;
			break;
		case 's':
			b.socket = optarg;
			break;
		case 'T':
			b.timeout_s = util_parse_num(optarg, 1, 86400);
			break;
		case 'w':
			b.warmup = util_parse_num(optarg, 0, 100000000);
			break;
		case 'S':
			b.stream = 1;
			break;
		case 'J':
			b.json = 1;
			break;
		case 'D':
			direct = optarg;
			break;
		case 'L':
			leases = 1;
			break;
		case 'I':
			b.mode = MODE_IDLE;
			b.count = util_parse_num(optarg, 1, 10000000);
			break;
		case 'H':
			b.mode = MODE_HOLD;
			b.count = util_parse_num(optarg, 1, 10000000);
			break;
		case 'P':
			b.pid = (pid_t)util_parse_num(optarg, 1, INT_MAX);
			break;
		case 'W':
			b.pipewait = 0;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (b.mode == MODE_DAEMON) {
		if (direct != NULL)
			b.mode = MODE_DIRECT;
		else if (leases)
			b.mode = MODE_LEASES;
	}
	if (b.target == NULL && b.mode != MODE_IDLE && b.mode != MODE_DIRECT)
		usage();
	if (b.target == NULL)
		b.target = target;
	slash = strchr(b.target, '/');
	b.model = slash != NULL ? slash + 1 : b.target;
	if (b.conns > b.concurrency && b.mode == MODE_DAEMON)
		b.conns = b.concurrency;
	if (b.warmup < 0)
		b.warmup = 2 * b.concurrency;

	/* A base URL like the provider's base_url, or the full endpoint. */
	if (direct != NULL) {
		len = strlen(direct);
		while (len > 0 && direct[len - 1] == '/')
			len--;
		if (len >= 17 &&
		    strncmp(direct + len - 17, "/chat/completions", 17) == 0)
			rv = asprintf(&url, "%.*s", (int)len, direct);
		else
			rv = asprintf(&url, "%.*s/chat/completions", (int)len,
			    direct);
		if (rv == -1)
			util_fatalx("out of memory");
		b.url = url;
	}

	signal(SIGPIPE, SIG_IGN);
	util_raise_nofile(b.concurrency + b.conns + BENCH_NOFILE_SPARE);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		util_fatalx("curl_global_init failed");

	switch (b.mode) {
	case MODE_DAEMON:
		rv = bench_daemon(&b);
		break;
	case MODE_DIRECT:
		rv = bench_direct(&b);
		break;
	case MODE_LEASES:
		rv = bench_leases(&b);
		break;
	case MODE_IDLE:
		rv = bench_idle(&b);
		break;
	case MODE_HOLD:
		rv = bench_hold(&b);
		break;
	default:
		rv = 1;
		break;
	}
	curl_global_cleanup();
	free(url);
	return rv;
}
