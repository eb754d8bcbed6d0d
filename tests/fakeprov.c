/*
 * fakeprov.c: a loopback fake LLM provider for llmgate's end-to-end tests.
 *
 * It answers OpenAI Chat Completions, Azure OpenAI, Anthropic Messages and
 * Gemini v1beta requests in their real wire formats
 * and injects faults chosen by directives in the model name, so that tests
 * running in parallel need no setup calls. Like a real model, it answers
 * llmgated's resume of a cut stream with only the rest of the reply.
 * tests/fakeprov.md is the manual.
 * This file is the server core: listening, routing, the directives, the
 * control endpoints and the answer machinery; fakeprov-openai.c,
 * fakeprov-anthropic.c and fakeprov-gemini.c speak the dialects.
 *
 * Every answer is built in full first (status, headers, body or a list of
 * SSE events) and then handed to the answer machinery, which owns the
 * libevent side: delays, pacing, abrupt closes and clients that go away.
 */

#include "fakeprov.h"

static const struct dir_entry {
	const char *name;
	enum dir_type type;
	size_t off;
	long min;
	long max;
} dir_table[] = {
	{ "status", DIR_INT, offsetof(struct dirs, status), 400, 599 },
	{ "code", DIR_STR, offsetof(struct dirs, code), 0, 0 },
	{ "msg", DIR_STR, offsetof(struct dirs, msg), 0, 0 },
	{ "retry_after", DIR_INT, offsetof(struct dirs, retry_after), 0,
	    86400 },
	{ "retry_after_ms", DIR_INT, offsetof(struct dirs, retry_after_ms), 0,
	    86400000 },
	{ "ratelimit", DIR_FLAG, offsetof(struct dirs, ratelimit), 0, 0 },
	{ "fail", DIR_INT, offsetof(struct dirs, fail), 0, 1000000 },
	{ "delay", DIR_INT, offsetof(struct dirs, delay), 0, FP_MAX_DELAY_MS },
	{ "word_delay", DIR_INT, offsetof(struct dirs, word_delay), 0, 60000 },
	{ "cut", DIR_INT, offsetof(struct dirs, cut), 0, 100000000 },
	{ "drop", DIR_FLAG, offsetof(struct dirs, drop), 0, 0 },
	{ "garbage", DIR_FLAG, offsetof(struct dirs, garbage), 0, 0 },
	{ "stream_error", DIR_FLAG, offsetof(struct dirs, stream_error), 0, 0 },
	{ "tool", DIR_STR, offsetof(struct dirs, tool), 0, 0 },
	{ "args", DIR_STR, offsetof(struct dirs, args), 0, 0 },
	{ "text", DIR_STR, offsetof(struct dirs, text), 0, 0 },
	{ "length", DIR_FLAG, offsetof(struct dirs, length), 0, 0 },
	{ "filter", DIR_FLAG, offsetof(struct dirs, filter), 0, 0 },
	{ "rpm", DIR_INT, offsetof(struct dirs, rpm), 1, 1000000 },
	{ "tpm", DIR_INT, offsetof(struct dirs, tpm), 1, 100000000 },
	{ "quota", DIR_STR, offsetof(struct dirs, quota), 0, 0 },
	{ "ka_close", DIR_INT, offsetof(struct dirs, ka_close), 0, 60000 },
	{ "tool_again", DIR_FLAG, offsetof(struct dirs, tool_again), 0, 0 },
	{ "shape", DIR_STR, offsetof(struct dirs, shape), 0, 0 },
	{ "tool_index", DIR_INT, offsetof(struct dirs, tool_index), -1000000,
	    1000000 },
	{ "echo_headers", DIR_FLAG, offsetof(struct dirs, echo_headers), 0, 0 },
	{ "repeat", DIR_INT, offsetof(struct dirs, repeat), 1, 1000 },
	{ "stop_seq", DIR_STR, offsetof(struct dirs, stop_seq), 0, 0 },
	{ "tool_noid", DIR_FLAG, offsetof(struct dirs, tool_noid), 0, 0 },
};

static struct event_base *fp_base;
static struct evhttp *fp_http;
const char *fp_key = FP_DEFAULT_KEY;
static int fp_verbose;
static long fp_total;
static long fp_gone; /* clients gone before the answer */
static unsigned long fp_seq;
static json_t *fp_last;
static struct models fp_models = TAILQ_HEAD_INITIALIZER(fp_models);
static struct answers fp_answers = TAILQ_HEAD_INITIALIZER(fp_answers);

static void answer_go(struct answer *);
static void answer_timer_cb(evutil_socket_t, short, void *);
static void answer_closed_cb(struct evhttp_connection *, void *);

static void __attribute__((noreturn, format(printf, 1, 2)))
fatalx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fakeprov: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((format(printf, 1, 2)))
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!fp_verbose)
		return;
	fprintf(stderr, "fakeprov: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void *
xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if ((p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size)) == NULL)
		fatalx("out of memory");
	return p;
}

static void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		fatalx("allocation overflow");
	if ((p = realloc(p, nmemb * size == 0 ? 1 : nmemb * size)) == NULL)
		fatalx("out of memory");
	return p;
}

char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		fatalx("out of memory");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;

	if ((p = strndup(s, n)) == NULL)
		fatalx("out of memory");
	return p;
}

char *__attribute__((format(printf, 1, 2))) xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("out of memory");
	return s;
}

void
sbuf_addn(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		sb->cap = (sb->len + n + 1) * 2;
		sb->s = xreallocarray(sb->s, sb->cap, 1);
	}
	memcpy(sb->s + sb->len, s, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

char *
sbuf_take(struct sbuf *sb)
{
	char *s = sb->s;

	if (s == NULL)
		s = xstrdup("");
	sb->s = NULL;
	sb->len = sb->cap = 0;
	return s;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Replace bytes that are not valid UTF-8 with '?', so jansson takes it. */
void
utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	unsigned int cp;
	size_t i, n;

	while (*p != '\0') {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else {
			*p++ = '?';
			continue;
		}
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				break;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (i <= n || (n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			*p++ = '?';
			continue;
		}
		p += n + 1;
	}
}

/* Percent-decode a URL piece; '+' stays '+', it separates directives. */
static char *
url_decode(const char *s)
{
	char *d, *r;

	if ((d = evhttp_uridecode(s, 0, NULL)) == NULL)
		fatalx("out of memory");
	r = xstrdup(d);
	free(d);
	utf8_sanitize(r);
	return r;
}

static long
words(const char *s)
{
	long n = 0;
	int in = 0;

	for (; *s != '\0'; s++) {
		if (isspace((unsigned char)*s))
			in = 0;
		else if (!in) {
			in = 1;
			n++;
		}
	}
	return n;
}

/* Length of the next stream piece: a word and the space after it. */
size_t
piece_len(const char *p)
{
	const char *q = p;

	while (*q != '\0' && isspace((unsigned char)*q))
		q++;
	while (*q != '\0' && !isspace((unsigned char)*q))
		q++;
	while (*q != '\0' && isspace((unsigned char)*q))
		q++;
	return q - p;
}

/* Length of the next tool-argument fragment, never splitting UTF-8. */
size_t
frag_len(const char *p)
{
	size_t n = 0;

	while (p[n] != '\0' && n < FP_ARGS_PIECE)
		n++;
	while (p[n] != '\0' && ((unsigned char)p[n] & 0xc0) == 0x80)
		n++;
	return n;
}

/* A Go-style duration as OpenAI's x-ratelimit-reset-* use: 12ms, 1.5s, 6m0s. */
void
go_duration(char *buf, size_t len, uint64_t ms)
{
	unsigned long long m, s, f;
	char frac[8];
	size_t n;

	if (ms < 1000) {
		snprintf(buf, len, "%llums", (unsigned long long)ms);
		return;
	}
	m = ms / 60000;
	s = (ms / 1000) % 60;
	f = ms % 1000;
	frac[0] = '\0';
	if (f != 0) {
		snprintf(frac, sizeof frac, ".%03llu", f);
		for (n = strlen(frac); frac[n - 1] == '0'; n--)
			frac[n - 1] = '\0';
	}
	if (m > 0)
		snprintf(buf, len, "%llum%llu%ss", m, s, frac);
	else
		snprintf(buf, len, "%llu%ss", s, frac);
}

/* An RFC 3339 UTC time "secs" from now, as Anthropic's resets use. */
void
rfc3339(char *buf, size_t len, long secs)
{
	time_t t = time(NULL) + secs;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *
jpack(const char *fmt, ...)
{
	json_error_t err;
	json_t *o;
	va_list ap;

	va_start(ap, fmt);
	o = json_vpack_ex(&err, 0, fmt, ap);
	va_end(ap);
	if (o == NULL)
		fatalx("json_pack \"%s\": %s", fmt, err.text);
	return o;
}

char *
jdump(json_t *o)
{
	char *s;

	if ((s = json_dumps(o, JSON_COMPACT)) == NULL)
		fatalx("json_dumps failed");
	return s;
}

json_t *
jstr_or_null(const char *s)
{
	return s == NULL ? json_null() : json_string(s);
}

/* Gather the text in a content value: a string, or blocks with "text"
 * (recursing into tool_result "content"). Counts words per fragment. */
void
text_of(json_t *v, struct sbuf *sb, long *nwords)
{
	const char *s;
	json_t *e, *t;
	size_t i;

	if (json_is_string(v)) {
		s = json_string_value(v);
		if (sb != NULL)
			sbuf_addn(sb, s, strlen(s));
		*nwords += words(s);
		return;
	}
	if (!json_is_array(v))
		return;
	json_array_foreach(v, i, e) {
		if (!json_is_object(e))
			continue;
		if (json_is_string(t = json_object_get(e, "text")))
			text_of(t, sb, nwords);
		else if ((t = json_object_get(e, "content")) != NULL)
			text_of(t, sb, nwords);
	}
}

/*
 * A resume ends the conversation with [assistant turn P, user turn that is
 * exactly FP_CONTINUE]. The reply is then the one the conversation before
 * that pair would get, less P (resume_rest()). Returns how many turns make
 * that conversation and keeps P in c->partial. key names the turns' text
 * ("content" or Gemini's "parts"), assistant the assistant's role.
 */
size_t
resume_turns(struct call *c, json_t *turns, const char *key,
    const char *assistant)
{
	json_t *user, *asst;
	const char *role;
	struct sbuf sb = { NULL, 0, 0 };
	long dummy = 0;
	char *s;
	size_t n = json_array_size(turns);
	int match;

	if (n < 2)
		return n;
	user = json_array_get(turns, n - 1);
	asst = json_array_get(turns, n - 2);
	/* Gemini allows a role-less content; it counts as the user's. */
	role = json_string_value(json_object_get(user, "role"));
	if (role != NULL && strcmp(role, "user") != 0)
		return n;
	role = json_string_value(json_object_get(asst, "role"));
	if (role == NULL || strcmp(role, assistant) != 0)
		return n;
	text_of(json_object_get(user, key), &sb, &dummy);
	s = sbuf_take(&sb);
	match = strcmp(s, FP_CONTINUE) == 0;
	free(s);
	if (!match)
		return n;
	text_of(json_object_get(asst, key), &sb, &dummy);
	c->partial = sbuf_take(&sb);
	return n - 2;
}

/* Parse the directives in a model name: tokens separated by '+'. */
static void
dirs_parse(struct dirs *d, const char *model)
{
	const struct dir_entry *de;
	char *copy, *tok, *next, *val, *end, **sp;
	size_t i, n;
	long l;

	memset(d, 0, sizeof *d);
	d->retry_after = d->retry_after_ms = d->fail = d->cut = -1;
	d->ka_close = -1;

	copy = xstrdup(model);
	for (tok = copy; tok != NULL; tok = next) {
		if ((next = strchr(tok, '+')) != NULL)
			*next++ = '\0';
		val = strchr(tok, '=');
		n = val != NULL ? (size_t)(val - tok) : strlen(tok);
		for (i = 0; i < sizeof dir_table / sizeof dir_table[0]; i++) {
			de = &dir_table[i];
			if (strlen(de->name) == n &&
			    strncmp(de->name, tok, n) == 0)
				break;
		}
		if (i == sizeof dir_table / sizeof dir_table[0])
			continue;
		switch (de->type) {
		case DIR_FLAG:
			if (val == NULL)
				*(int *)((char *)d + de->off) = 1;
			break;
		case DIR_INT:
			if (val == NULL || val[1] == '\0')
				break;
			errno = 0;
			l = strtol(val + 1, &end, 10);
			if (errno != 0 || *end != '\0' || l < de->min ||
			    l > de->max)
				break;
			*(int *)((char *)d + de->off) = (int)l;
			break;
		case DIR_STR:
			if (val == NULL)
				break;
			sp = (char **)((char *)d + de->off);
			free(*sp);
			*sp = url_decode(val + 1);
			break;
		}
	}
	free(copy);
}

static void
dirs_free(struct dirs *d)
{
	free(d->code);
	free(d->msg);
	free(d->shape);
	free(d->tool);
	free(d->args);
	free(d->text);
	free(d->quota);
	free(d->stop_seq);
}

/*
 * Take n tokens from a bucket refilled at "rate" tokens per ms up to
 * "burst". Returns 1 on success, else 0 with the wait until there are n
 * (never, for n over the burst: then the wait until it is full).
 */
static int
bucket_take(struct bucket *b, double rate, double burst, double n, uint64_t now,
    uint64_t *wait)
{
	double need, w;
	uint64_t wi;

	if (!b->primed) {
		b->tokens = burst;
		b->last_ms = now;
		b->primed = 1;
	}
	if (now > b->last_ms) {
		b->tokens += (double)(now - b->last_ms) * rate;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last_ms = now;
	}
	if (b->tokens >= n) {
		b->tokens -= n;
		*wait = 0;
		return 1;
	}
	need = (n < burst ? n : burst) - b->tokens;
	w = need / rate;
	wi = (uint64_t)w;
	if ((double)wi < w)
		wi++;
	*wait = wi > 0 ? wi : 1;
	return 0;
}

/* rpm=N: N requests a minute, bursts of N/60 but at least one. */
double
rpm_rate(int rpm)
{
	return rpm / 60000.0;
}

double
rpm_burst(int rpm)
{
	return rpm / 60 > 1 ? rpm / 60 : 1;
}

/* Time until a bucket is full again, in ms. */
uint64_t
bucket_refill_ms(const struct bucket *b, double rate, double burst)
{
	if (!b->primed || b->tokens >= burst)
		return 0;
	return (uint64_t)((burst - b->tokens) / rate);
}

static struct model *
model_get(const char *name)
{
	struct model *m;

	TAILQ_FOREACH(m, &fp_models, entry) {
		if (strcmp(m->name, name) == 0)
			return m;
	}
	m = xcalloc(1, sizeof *m);
	m->name = xstrdup(name);
	m->status = json_object();
	TAILQ_INSERT_TAIL(&fp_models, m, entry);
	return m;
}

static void
model_count(struct model *m, int status)
{
	char key[16];
	json_t *n;

	snprintf(key, sizeof key, "%d", status);
	n = json_object_get(m->status, key);
	json_object_set_new(m->status, key,
	    json_integer(n != NULL ? json_integer_value(n) + 1 : 1));
}

static void
models_clear(void)
{
	struct model *m;

	while ((m = TAILQ_FIRST(&fp_models)) != NULL) {
		TAILQ_REMOVE(&fp_models, m, entry);
		json_decref(m->status);
		json_decref(m->last);
		free(m->name);
		free(m);
	}
	json_decref(fp_last);
	fp_last = NULL;
	fp_total = 0;
	fp_gone = 0;
}

static const char *
reason(int status)
{
	static const struct {
		int status;
		const char *text;
	} reasons[] = {
		{ 200, "OK" },
		{ 400, "Bad Request" },
		{ 401, "Unauthorized" },
		{ 402, "Payment Required" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 409, "Conflict" },
		{ 413, "Payload Too Large" },
		{ 422, "Unprocessable Entity" },
		{ 429, "Too Many Requests" },
		{ 499, "Client Closed Request" },
		{ 500, "Internal Server Error" },
		{ 501, "Not Implemented" },
		{ 502, "Bad Gateway" },
		{ 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
		{ 529, "Overloaded" },
	};
	size_t i;

	for (i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
		if (reasons[i].status == status)
			return reasons[i].text;
	}
	return status < 500 ? "Client Error" : "Server Error";
}

/*
 * Answers. Everything that touches the connection after the request
 * callback returns lives here: the delay and pacing timer, the abrupt
 * close, and the close callback for a client that leaves first.
 */
static struct answer *
answer_new(struct evhttp_request *req)
{
	struct answer *a;

	a = xcalloc(1, sizeof *a);
	a->req = req;
	a->status = 200;
	if ((a->timer = evtimer_new(fp_base, answer_timer_cb, a)) == NULL)
		fatalx("evtimer_new failed");
	TAILQ_INSERT_TAIL(&fp_answers, a, entry);
	return a;
}

static void
answer_free(struct answer *a)
{
	size_t i;

	TAILQ_REMOVE(&fp_answers, a, entry);
	event_free(a->timer);
	for (i = 0; i < a->nevents; i++) {
		free(a->events[i].name);
		free(a->events[i].data);
	}
	free(a->events);
	free(a->body);
	free(a);
}

void
answer_body(struct answer *a, char *body)
{
	free(a->body);
	a->body = body;
	a->bodylen = strlen(body);
}

void
answer_event_raw(struct answer *a, enum ev_kind kind, const char *name,
    const char *data)
{
	struct sse_event *ev;

	/* Room doubles at each power of two: long streams stay linear. */
	if ((a->nevents & (a->nevents - 1)) == 0)
		a->events = xreallocarray(a->events,
		    a->nevents != 0 ? 2 * a->nevents : 1, sizeof *a->events);
	ev = &a->events[a->nevents++];
	ev->kind = kind;
	ev->name = name != NULL ? xstrdup(name) : NULL;
	ev->data = xstrdup(data);
}

void
answer_event(struct answer *a, enum ev_kind kind, const char *name, json_t *o)
{
	char *s;

	s = jdump(o);
	answer_event_raw(a, kind, name, s);
	free(s);
	json_decref(o);
}

static void
answer_truncate(struct answer *a, size_t n)
{
	while (a->nevents > n) {
		a->nevents--;
		free(a->events[a->nevents].name);
		free(a->events[a->nevents].data);
	}
}

/*
 * Where a stream stops: before the content piece after "ncontent" pieces,
 * and never later than the terminal event (or the first POST event when
 * "before_post" is set, for in-stream errors).
 */
static size_t
answer_stop_at(struct answer *a, long ncontent, int before_post)
{
	size_t i;
	long seen = 0;

	for (i = 0; i < a->nevents; i++) {
		switch (a->events[i].kind) {
		case EV_TERM:
			return i;
		case EV_POST:
			if (before_post)
				return i;
			break;
		case EV_CONTENT:
			if (seen == ncontent)
				return i;
			seen++;
			break;
		case EV_PRE:
			break;
		}
	}
	return i;
}

static void
answer_watch(struct answer *a, int on)
{
	struct evhttp_connection *evcon;

	if (a->req == NULL)
		return;
	if ((evcon = evhttp_request_get_connection(a->req)) == NULL)
		return;
	if (on)
		evhttp_connection_set_closecb(evcon, answer_closed_cb, a);
	else
		evhttp_connection_set_closecb(evcon, NULL, NULL);
}

static void
answer_arm(struct answer *a, int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(a->timer, &tv);
}

static void
answer_start(struct answer *a)
{
	if (a->delay_ms > 0) {
		a->state = ANS_WAIT;
		answer_watch(a, 1);
		answer_arm(a, a->delay_ms);
		return;
	}
	answer_go(a);
}

/* Close abruptly, but only once what was queued has reached the socket. */
static void
answer_close(struct answer *a)
{
	a->state = ANS_CLOSING;
	a->close_deadline = now_ms() + FP_CLOSE_WAIT_MS;
	answer_watch(a, 1);
	answer_arm(a, 0);
}

static void
answer_send_event(struct answer *a, struct sse_event *ev)
{
	struct evbuffer *buf;

	if ((buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	if (a->array)
		evbuffer_add_printf(buf, "%s%s", a->sent_any ? ",\r\n" : "[",
		    ev->data);
	else if (ev->name != NULL)
		evbuffer_add_printf(buf, "event: %s\ndata: %s\n\n", ev->name,
		    ev->data);
	else
		evbuffer_add_printf(buf, "data: %s\n\n", ev->data);
	evhttp_send_reply_chunk(a->req, buf);
	evbuffer_free(buf);
	a->sent_any = 1;
}

/*
 * ka_close=MS: the reply ends whole and says "keep-alive", but the server
 * reads nothing more and closes the connection MS ms later, as llama-server
 * does after every stream. A request that arrives meanwhile is never read:
 * the close resets the connection under it.
 */
static void
answer_ka_close(struct answer *a)
{
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	const char *te;

	evcon = evhttp_request_get_connection(a->req);
	bev = evhttp_connection_get_bufferevent(evcon);
	bufferevent_disable(bev, EV_READ);
	te = evhttp_find_header(evhttp_request_get_output_headers(a->req),
	    "Transfer-Encoding");
	if (te != NULL && strcasecmp(te, "chunked") == 0)
		bufferevent_write(bev, "0\r\n\r\n", 5);
	a->state = ANS_CLOSING;
	a->close_deadline =
	    now_ms() + (uint64_t)a->ka_close_ms + FP_CLOSE_WAIT_MS;
	answer_watch(a, 1);
	answer_arm(a, a->ka_close_ms);
}

static void
answer_pump(struct answer *a)
{
	struct evbuffer *buf;

	while (a->next < a->nevents) {
		answer_send_event(a, &a->events[a->next++]);
		if (a->word_delay_ms > 0 && a->next < a->nevents) {
			answer_watch(a, 1);
			answer_arm(a, a->word_delay_ms);
			return;
		}
	}
	if (a->end == END_CUT) {
		answer_close(a);
		return;
	}
	if (a->array) {
		if ((buf = evbuffer_new()) == NULL)
			fatalx("evbuffer_new failed");
		evbuffer_add_printf(buf, "%s]", a->sent_any ? "" : "[");
		evhttp_send_reply_chunk(a->req, buf);
		evbuffer_free(buf);
	}
	if (a->end == END_KA_CLOSE) {
		answer_ka_close(a);
		return;
	}
	/* Unhook first: the reply may free the connection at once. */
	answer_watch(a, 0);
	evhttp_send_reply_end(a->req);
	answer_free(a);
}

static void
answer_go(struct answer *a)
{
	struct evbuffer *buf;
	size_t n;
	char clen[32];

	if (a->end == END_DROP) {
		answer_close(a);
		return;
	}
	if (a->streaming) {
		a->state = ANS_STREAM;
		evhttp_send_reply_start(a->req, a->status, reason(a->status));
		answer_pump(a);
		return;
	}
	if ((buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	if (a->end == END_CUT) {
		/* A non-stream body cut after cut_bytes bytes. */
		evhttp_send_reply_start(a->req, a->status, reason(a->status));
		n = a->bodylen;
		if ((size_t)a->cut_bytes < n)
			n = a->cut_bytes;
		if (n > 0) {
			evbuffer_add(buf, a->body, n);
			evhttp_send_reply_chunk(a->req, buf);
		}
		evbuffer_free(buf);
		answer_close(a);
		return;
	}
	if (a->end == END_KA_CLOSE) {
		snprintf(clen, sizeof clen, "%zu", a->bodylen);
		evhttp_add_header(evhttp_request_get_output_headers(a->req),
		    "Content-Length", clen);
		evhttp_send_reply_start(a->req, a->status, reason(a->status));
		evbuffer_add(buf, a->body, a->bodylen);
		evhttp_send_reply_chunk(a->req, buf);
		evbuffer_free(buf);
		answer_ka_close(a);
		return;
	}
	evbuffer_add(buf, a->body, a->bodylen);
	answer_watch(a, 0);
	evhttp_send_reply(a->req, a->status, reason(a->status), buf);
	evbuffer_free(buf);
	answer_free(a);
}

static void
answer_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct answer *a = arg;
	struct evhttp_connection *evcon;
	struct bufferevent *bev;

	switch (a->state) {
	case ANS_NEW:
	case ANS_WAIT:
		answer_go(a);
		break;
	case ANS_STREAM:
		answer_pump(a);
		break;
	case ANS_CLOSING:
		evcon = evhttp_request_get_connection(a->req);
		if (evcon == NULL) {
			/* Detached without a close callback: ours to free. */
			evhttp_request_free(a->req);
			answer_free(a);
			break;
		}
		bev = evhttp_connection_get_bufferevent(evcon);
		if (evbuffer_get_length(bufferevent_get_output(bev)) != 0 &&
		    now_ms() < a->close_deadline) {
			answer_arm(a, FP_CLOSE_POLL_MS);
			break;
		}
		/* Freeing the connection frees the request with it. */
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		evhttp_connection_free(evcon);
		a->req = NULL;
		answer_free(a);
		break;
	case ANS_GONE:
		if (a->req != NULL)
			evhttp_request_free(a->req);
		answer_free(a);
		break;
	}
}

/*
 * The connection is going down under a pending answer: the client left,
 * or a timeout hit. libevent has detached the request from the connection
 * and left it to us; if it has not, the connection frees it. Finish later,
 * outside libevent's stack.
 */
static void
answer_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct answer *a = arg;

	if (a->req != NULL && evhttp_request_get_connection(a->req) != NULL)
		a->req = NULL;
	log_debug("client went away during a pending answer");
	fp_gone++;
	a->state = ANS_GONE;
	answer_arm(a, 0);
}

static void
answers_shutdown(void)
{
	struct answer *a;

	while ((a = TAILQ_FIRST(&fp_answers)) != NULL) {
		if (a->state == ANS_GONE && a->req != NULL)
			evhttp_request_free(a->req);
		else
			answer_watch(a, 0);
		answer_free(a);
	}
}

/* Request helpers. */
const char *
req_header(struct call *c, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(c->req),
	    name);
}

void
req_set_header(struct call *c, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);

	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

/* A raw query parameter, percent-decoded with '+' kept, or NULL. */
char *
query_get(struct evhttp_request *req, const char *name)
{
	const char *q, *p, *e;
	size_t n = strlen(name);
	char *raw, *v;

	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (q == NULL)
		return NULL;
	for (p = q; p != NULL && *p != '\0'; p = e != NULL ? e + 1 : NULL) {
		e = strchr(p, '&');
		if (strncmp(p, name, n) != 0 || p[n] != '=')
			continue;
		p += n + 1;
		raw = e != NULL ? xstrndup(p, e - p) : xstrdup(p);
		if (raw == NULL)
			fatalx("out of memory");
		v = url_decode(raw);
		free(raw);
		return v;
	}
	return NULL;
}

const char *
bearer(const char *auth)
{
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	return auth + 7;
}

static json_t *
request_record(struct call *c, const char *raw, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(c->req);
	struct evkeyval *kv;
	json_t *hdrs, *body;
	struct sbuf sb = { NULL, 0, 0 };
	char *name, *p, *s;

	hdrs = json_object();
	TAILQ_FOREACH(kv, h, next) {
		name = xstrdup(kv->key);
		for (p = name; *p != '\0'; p++)
			*p = tolower((unsigned char)*p);
		utf8_sanitize(name);
		s = xstrdup(kv->value);
		utf8_sanitize(s);
		json_object_set_new(hdrs, name, json_string(s));
		free(s);
		free(name);
	}
	if (c->body != NULL)
		body = json_incref(c->body);
	else {
		sbuf_addn(&sb, raw, len);
		s = sbuf_take(&sb);
		utf8_sanitize(s);
		body = json_string(s);
		free(s);
	}
	return jpack("{s:s, s:s, s:s, s:o, s:o}", "provider", c->prov->name,
	    "method", "POST", "path", c->path, "headers", hdrs, "body", body);
}

/*
 * shape=: another server's error body on any endpoint, as compatible
 * servers send it. 0 for a shape it doesn't know.
 */
static int
call_error_shape(struct call *c, struct err_info *ei)
{
	const char *msg = ei->msg != NULL ? ei->msg : "Error";
	json_t *o;

	if (strcmp(c->d.shape, "llamacpp") == 0)
		o = jpack("{s:{s:i, s:s, s:s}}", "error", "code", ei->status,
		    "message", msg, "type",
		    ei->code != NULL     ? ei->code :
		        ei->type != NULL ? ei->type :
		                           "server_error");
	else if (strcmp(c->d.shape, "plain") == 0)
		o = jpack("{s:s}", "error", msg);
	else
		return 0;
	answer_body(c->ans, jdump(o));
	json_decref(o);
	return 1;
}

/* "request headers: name: value; ..." (echo_headers), for error messages. */
static char *
call_headers_text(struct call *c)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(c->req);
	struct evkeyval *kv;
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *out;

	evbuffer_add_printf(b, "request headers:");
	TAILQ_FOREACH(kv, h, next)
		evbuffer_add_printf(b, " %s: %s;", kv->key, kv->value);
	len = evbuffer_get_length(b);
	out = malloc(len + 1);
	if (out == NULL)
		abort();
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	return out;
}

/* Put an error body in the call's answer, with Retry-After if wanted. */
void
call_error(struct call *c, int status, const char *code, const char *msg)
{
	const struct provider *p = c->prov;
	const struct err_entry *se;
	const struct code_entry *ce = NULL;
	struct err_info ei;
	char v[32];

	for (se = p->errors; se->status != 0; se++) {
		if (se->status == status)
			break;
	}
	if (se->status == 0 && status >= 500)
		se++; /* the 5xx fallback follows the 4xx one */
	if (code != NULL) {
		for (ce = p->codes; ce->code != NULL; ce++) {
			if (strcmp(ce->code, code) == 0)
				break;
		}
		if (ce->code == NULL)
			ce = NULL;
	}
	memset(&ei, 0, sizeof ei);
	ei.status = status;
	ei.type = se->type;
	ei.code = se->code;
	ei.msg = se->msg;
	if (code != NULL) {
		ei.code = code;
		if (ce != NULL) {
			ei.type = ce->type;
			ei.param = ce->param;
			if (ce->msg != NULL)
				ei.msg = ce->msg;
		} else if (p->code_is_type)
			ei.type = code;
	}
	if (msg != NULL)
		ei.msg = msg;
	else
		ei.msg_default = 1;

	c->ans->status = status;
	if (status == 429)
		c->limited = 1;
	req_set_header(c, "Content-Type", p->json_type);
	if (c->d.shape == NULL || !call_error_shape(c, &ei))
		p->error(c, &ei);

	if (!p->retry_header)
		return;
	if (c->retry_s >= 0) {
		snprintf(v, sizeof v, "%d", c->retry_s);
		req_set_header(c, "Retry-After", v);
	}
	if (c->retry_ms >= 0) {
		snprintf(v, sizeof v, "%d", c->retry_ms);
		req_set_header(c, "retry-after-ms", v);
	}
}

void
call_json(struct call *c, json_t *o)
{
	req_set_header(c, "Content-Type", c->prov->json_type);
	answer_body(c->ans, jdump(o));
	json_decref(o);
}

/* Status that a bare code= implies, from the provider's code table. */
int
call_code_status(struct call *c, const char *code)
{
	const struct code_entry *ce;

	for (ce = c->prov->codes; ce->code != NULL; ce++) {
		if (strcmp(ce->code, code) == 0)
			return ce->status;
	}
	return 400;
}

/* The retry wait a test asked for, in ms, or "dflt". */
uint64_t
call_retry_wait(struct call *c, uint64_t dflt)
{
	if (c->retry_ms >= 0)
		return c->retry_ms;
	if (c->retry_s >= 0)
		return (uint64_t)c->retry_s * 1000;
	return dflt;
}

char *
retry_hint(struct call *c)
{
	if (c->retry_ms >= 0 && c->retry_ms < 1000)
		return xasprintf(" Please try again in %dms.", c->retry_ms);
	if (c->retry_ms >= 0)
		return xasprintf(" Please try again in %d.%03ds.",
		    c->retry_ms / 1000, c->retry_ms % 1000);
	if (c->retry_s >= 0)
		return xasprintf(" Please try again in %ds.", c->retry_s);
	return xstrdup("");
}

const char *
finish_reason(struct call *c, const char *stop, const char *tool,
    const char *length, const char *filter)
{
	if (c->text == NULL)
		return tool;
	if (c->d.filter)
		return filter;
	if (c->d.length)
		return length;
	return stop;
}

/* A 200 whose body (or every SSE payload) is not JSON. */
static void
call_garbage(struct call *c)
{
	struct answer *a = c->ans;

	a->status = 200;
	if (!c->stream) {
		req_set_header(c, "Content-Type", c->prov->json_type);
		answer_body(a, xstrdup("this is not JSON {\"choices\": [\n"));
		return;
	}
	a->streaming = 1;
	req_set_header(c, "Content-Type",
	    a->array ? c->prov->json_type : c->prov->sse_type);
	answer_event_raw(a, EV_CONTENT, c->prov->garbage_event,
	    "this is not JSON");
	answer_event_raw(a, EV_CONTENT, c->prov->garbage_event,
	    "{\"truncated\": [");
}

/*
 * A resume: the reply is what follows the partial reply P in the full
 * text T, so that the client, which saw P, ends up with T exactly once.
 *
 * P is normally a prefix of T, ending where a stream piece ended (after a
 * whitespace run). Anthropic refuses an assistant turn ending in
 * whitespace as the last turn, so its clients trim it; there, a P that
 * ends in a non-space where T goes on with whitespace was trimmed, and
 * the rest starts after that whitespace: the client holds P and the
 * whitespace, so P + whitespace + rest == T. Other providers take P as
 * it is, since their clients send what the user saw (a cut can end
 * before a space there, with tokens that start with one).
 *
 * A P that matches T only once its own trailing whitespace is dropped
 * continues after T's whitespace at that point. A P that is not T's
 * beginning at all is not this reply's: the whole reply goes out, as a
 * model that ignored the request would send it.
 */
static void
resume_rest(struct call *c)
{
	const char *t = c->text, *p = c->partial;
	size_t plen = strlen(p), k = plen;
	char *rest;

	if (strncmp(t, p, plen) == 0) {
		if (c->prov->trims_prefill && plen > 0 &&
		    !isspace((unsigned char)p[plen - 1])) {
			while (isspace((unsigned char)t[k]))
				k++;
		}
	} else {
		while (k > 0 && isspace((unsigned char)p[k - 1]))
			k--;
		if (strncmp(t, p, k) != 0)
			return;
		while (isspace((unsigned char)t[k]))
			k++;
	}
	rest = xstrdup(t + k);
	free(c->text);
	c->text = rest;
}

/* text n times over, space-separated (taken). */
static char *
repeated(char *text, size_t n)
{
	size_t len = strlen(text), i;
	char *r = xreallocarray(NULL, n, len + 1);

	for (i = 0; i < n; i++) {
		memcpy(r + i * (len + 1), text, len);
		r[i * (len + 1) + len] = i + 1 < n ? ' ' : '\0';
	}
	free(text);
	return r;
}

/* The reply content: echo, text=, or a tool call (unless answering one). */
static void
call_content(struct call *c)
{
	json_error_t err;

	if (c->content_done)
		return;
	c->content_done = 1;
	if (c->d.tool != NULL && *c->d.tool != '\0' &&
	    (!c->tool_result ||
	        (c->d.tool_again && c->prompt != NULL &&
	            strncmp(c->prompt, "error", 5) == 0))) {
		c->args = xstrdup(c->d.args != NULL ? c->d.args : "{}");
		c->args_json = json_loads(c->args, JSON_DECODE_ANY, &err);
		if (c->args_json != NULL && json_is_object(c->args_json)) {
			/* Re-encode valid arguments the way providers send them. */
			free(c->args);
			c->args = json_dumps(c->args_json,
			    JSON_COMPACT | JSON_ENSURE_ASCII);
			if (c->args == NULL)
				fatalx("json_dumps failed");
		} else {
			json_decref(c->args_json);
			c->args_json = json_object();
		}
		c->out_words = 1 + words(c->args);
		return;
	}
	if (c->d.text != NULL)
		c->text = xstrdup(c->d.text);
	else
		c->text = xasprintf("echo: %s", c->prompt);
	if (c->d.repeat > 1)
		c->text = repeated(c->text, (size_t)c->d.repeat);
	if (c->partial != NULL)
		resume_rest(c);
	c->out_words = words(c->text);
}

static void
call_success(struct call *c, int cut, int stream_error)
{
	struct answer *a = c->ans;

	call_content(c);
	c->m->billed += c->in_words + c->out_words;
	a->status = 200;
	if (!c->stream) {
		call_json(c, c->prov->reply(c));
		if (cut >= 0) {
			a->end = END_CUT;
			a->cut_bytes = cut;
		}
		return;
	}
	a->streaming = 1;
	req_set_header(c, "Content-Type",
	    a->array ? c->prov->json_type : c->prov->sse_type);
	req_set_header(c, "Cache-Control", "no-cache");
	c->prov->stream(c);
	if (stream_error) {
		answer_truncate(a, answer_stop_at(a, FP_ERROR_AFTER, 1));
		c->prov->stream_error(c);
	} else if (cut >= 0) {
		answer_truncate(a, cut == 0 ? 0 : answer_stop_at(a, cut, 0));
		a->end = END_CUT;
	}
}

/*
 * rpm=N: a real token bucket of requests per model name; tpm=N: one of
 * tokens, charged what the answer bills (input + output words) before it
 * is given. 0 if the call was refused (429).
 */
static int
call_admit(struct call *c)
{
	uint64_t wait, now = now_ms();
	double bill;

	if (c->d.rpm > 0 &&
	    !bucket_take(&c->m->bucket, rpm_rate(c->d.rpm), rpm_burst(c->d.rpm),
	        1, now, &wait))
		goto limited;
	if (c->d.tpm > 0) {
		call_content(c);
		bill = (double)(c->in_words + c->out_words);
		if (!bucket_take(&c->m->tbucket, rpm_rate(c->d.tpm),
		        rpm_burst(c->d.tpm), bill, now, &wait))
			goto limited;
	}
	return 1;
limited:
	c->retry_s = (int)((wait + 999) / 1000);
	if (c->retry_s < 1)
		c->retry_s = 1;
	c->retry_ms = -1;
	c->limit_wait_ms = wait;
	call_error(c, 429, NULL, NULL);
	return 0;
}

/*
 * Answer an admitted call. Faults apply unless fail=N has run out; then
 * drop, status (or one implied by code=), garbage, and last cut= or
 * stream_error=, which shape an otherwise good answer.
 */
static void
call_respond(struct call *c)
{
	struct dirs *d = &c->d;
	int status = d->status, any, cut = -1, serr = 0;

	if (status == 0 && d->code != NULL && !d->stream_error)
		status = call_code_status(c, d->code);
	any = d->drop || status != 0 || d->garbage || d->cut >= 0 ||
	    d->stream_error;
	if (d->fail >= 0) {
		if (c->m->attempts++ >= d->fail) {
			call_success(c, -1, 0);
			return;
		}
		if (!any)
			status = 500;
	}
	if (d->drop) {
		c->ans->end = END_DROP;
		c->ans->status = 0;
		return;
	}
	if (status != 0) {
		c->limit_wait_ms = call_retry_wait(c, 1000);
		if (d->echo_headers) {
			char *hdrs = call_headers_text(c);

			call_error(c, status, d->code, hdrs);
			free(hdrs);
			return;
		}
		call_error(c, status, d->code, d->msg);
		return;
	}
	if (d->garbage) {
		call_garbage(c);
		return;
	}
	if (d->cut >= 0)
		cut = d->cut;
	if (d->stream_error)
		serr = 1;
	call_success(c, cut, serr);
}

/*
 * The request's path: record it, check auth and shape, admit, apply
 * faults or answer, count, and hand the answer over.
 */
static void
provider_handle(struct evhttp_request *req, const struct provider *p,
    char *path, char *path_model, int stream, int array)
{
	struct call c;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	json_error_t err;
	json_t *mv, *rec;
	size_t len;
	const char *raw;
	enum auth_result r;

	memset(&c, 0, sizeof c);
	c.prov = p;
	c.req = req;
	c.path = path;
	c.ans = answer_new(req);
	c.created = (long)time(NULL);
	fp_seq++;
	snprintf(c.reqid, sizeof c.reqid, "req_fake%08lx", fp_seq);
	snprintf(c.id, sizeof c.id, "%s%lu",
	    p == &prov_anthropic  ? "msg_fake" :
	        p == &prov_gemini ? "resp-fake-" :
	                            "chatcmpl-fake",
	    fp_seq);
	snprintf(c.toolid, sizeof c.toolid, "%s%lu",
	    p == &prov_anthropic ? "toolu_fake" : "call_fake", fp_seq);

	len = evbuffer_get_length(in);
	raw = (const char *)evbuffer_pullup(in, -1);
	if (raw == NULL)
		raw = "";
	c.body = json_loadb(raw, len, 0, &err);
	if (c.body != NULL && !json_is_object(c.body)) {
		json_decref(c.body);
		c.body = NULL;
	}
	if (path_model != NULL)
		c.model = xstrdup(path_model);
	else if (json_is_string(mv = json_object_get(c.body, "model")) &&
	    *json_string_value(mv) != '\0')
		c.model = xstrdup(json_string_value(mv));
	c.m = model_get(c.model != NULL ? c.model : FP_NO_MODEL);
	dirs_parse(&c.d, c.model != NULL ? c.model : "");
	c.retry_s = c.d.retry_after;
	c.retry_ms = c.d.retry_after_ms;
	c.stream = stream;
	c.ans->array = array;

	rec = request_record(&c, raw, len);
	json_decref(c.m->last);
	c.m->last = json_incref(rec);
	json_decref(fp_last);
	fp_last = rec;
	fp_total++;
	c.m->requests++;

	if (p->reqid_header != NULL)
		req_set_header(&c, p->reqid_header, c.reqid);
	if ((r = p->auth(&c)) != AUTH_OK)
		p->auth_error(&c, r);
	else if (p->check(&c) == 0) {
		p->read(&c);
		if (stream)
			c.stream = 1;
		if (call_admit(&c))
			call_respond(&c);
	}
	if (c.d.ratelimit && p->ratelimit != NULL)
		p->ratelimit(&c);

	if (c.d.ka_close >= 0 && c.ans->end == END_CLEAN) {
		req_set_header(&c, "Keep-Alive", "timeout=5, max=100");
		c.ans->end = END_KA_CLOSE;
		c.ans->ka_close_ms = c.d.ka_close;
	}
	model_count(c.m, c.ans->status);
	c.ans->delay_ms = c.d.delay;
	c.ans->word_delay_ms = c.d.word_delay;
	log_debug("%s %s model=%s -> %d%s%s", p->name, path,
	    c.model != NULL ? c.model : FP_NO_MODEL, c.ans->status,
	    c.ans->streaming ? " stream" : "",
	    c.ans->end == END_DROP    ? " drop" :
	        c.ans->end == END_CUT ? " cut" :
	                                "");
	answer_start(c.ans);

	dirs_free(&c.d);
	json_decref(c.body);
	json_decref(c.args_json);
	free(c.model);
	free(c.prompt);
	free(c.partial);
	free(c.text);
	free(c.args);
}

/* Control endpoints for tests. */
static void
send_json(struct evhttp_request *req, int status, json_t *o)
{
	struct evbuffer *buf;
	char *s;

	if ((buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	s = jdump(o);
	evbuffer_add_printf(buf, "%s\n", s);
	free(s);
	json_decref(o);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, status, reason(status), buf);
	evbuffer_free(buf);
}

static void
control_stats(struct evhttp_request *req)
{
	struct model *m;
	json_t *by;

	by = json_object();
	TAILQ_FOREACH(m, &fp_models, entry) {
		json_object_set_new(by, m->name,
		    jpack("{s:I, s:I, s:O}", "requests",
		        (json_int_t)m->requests, "tokens",
		        (json_int_t)m->billed, "status", m->status));
	}
	send_json(req, 200,
	    jpack("{s:I, s:I, s:o}", "requests", (json_int_t)fp_total, "gone",
	        (json_int_t)fp_gone, "by_model", by));
}

static void
control_last(struct evhttp_request *req)
{
	struct model *m;
	char *name;
	json_t *last = fp_last;

	if ((name = query_get(req, "model")) != NULL) {
		last = NULL;
		TAILQ_FOREACH(m, &fp_models, entry) {
			if (strcmp(m->name, name) == 0) {
				last = m->last;
				break;
			}
		}
	}
	if (last == NULL)
		send_json(req, 404,
		    jpack("{s:s, s:s}", "error", "no request recorded", "model",
		        name != NULL ? name : ""));
	else
		send_json(req, 200, json_incref(last));
	free(name);
}

static void
control_reset(struct evhttp_request *req)
{
	models_clear();
	send_json(req, 200, jpack("{s:b}", "ok", 1));
}

/* Routes: exact paths, or prefix + model + suffix. */
static const struct route {
	const char *prefix;
	const char *suffix;
	const struct provider *prov;
	int stream;
} routes[] = {
	{ "/v1/chat/completions", NULL, &prov_openai, 0 },
	{ "/openai/v1/chat/completions", NULL, &prov_azure, 0 },
	{ "/openai/deployments/", "/chat/completions", &prov_azure, 0 },
	{ "/v1/messages", NULL, &prov_anthropic, 0 },
	{ "/v1beta/models/", ":generateContent", &prov_gemini, 0 },
	{ "/v1beta/models/", ":streamGenerateContent", &prov_gemini, 1 },
};

static void
dispatch_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct route *rt;
	const char *rawpath;
	char *path, *full, *model = NULL, *alt;
	size_t i, lp, ls, n;
	int array = 0;

	rawpath = evhttp_uri_get_path(uri);
	if (rawpath == NULL || *rawpath == '\0')
		rawpath = "/";
	path = url_decode(rawpath);

	if (strcmp(path, "/_stats") == 0 && cmd == EVHTTP_REQ_GET) {
		control_stats(req);
		goto out;
	}
	if (strcmp(path, "/_last") == 0 && cmd == EVHTTP_REQ_GET) {
		control_last(req);
		goto out;
	}
	if (strcmp(path, "/_reset") == 0 && cmd == EVHTTP_REQ_POST) {
		control_reset(req);
		goto out;
	}

	n = strlen(path);
	for (i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		rt = &routes[i];
		lp = strlen(rt->prefix);
		if (rt->suffix == NULL) {
			if (strcmp(path, rt->prefix) == 0)
				break;
			continue;
		}
		ls = strlen(rt->suffix);
		if (n > lp + ls && strncmp(path, rt->prefix, lp) == 0 &&
		    strcmp(path + n - ls, rt->suffix) == 0) {
			model = xstrndup(path + lp, n - lp - ls);
			if (model == NULL)
				fatalx("out of memory");
			break;
		}
	}
	if (i == sizeof routes / sizeof routes[0]) {
		send_json(req, 404,
		    jpack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
		        "fakeprov: unknown URL", "type",
		        "invalid_request_error", "param", "code"));
		goto out;
	}
	if (cmd != EVHTTP_REQ_POST) {
		send_json(req, 405,
		    jpack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
		        "fakeprov: use POST", "type", "invalid_request_error",
		        "param", "code"));
		goto out;
	}
	if (rt->prov == &prov_gemini && rt->stream) {
		alt = query_get(req, "alt");
		array = alt == NULL || strcmp(alt, "sse") != 0;
		free(alt);
	}
	full = evhttp_uri_get_query(uri) != NULL ?
	    xasprintf("%s?%s", path, evhttp_uri_get_query(uri)) :
	    xstrdup(path);
	utf8_sanitize(full);
	provider_handle(req, rt->prov, full, model, rt->stream, array);
	free(full);
out:
	free(model);
	free(path);
}

static void
stop_cb(evutil_socket_t fd, short events, void *arg)
{
	event_base_loopexit(fp_base, NULL);
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	    "usage: fakeprov [-v] [-k key] [-p port] "
	    "[-t seconds]\n");
	exit(1);
}

static long
parse_num(const char *s, long min, long max)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || l < min || l > max)
		usage();
	return l;
}

int
main(int argc, char **argv)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	struct event *ev_term, *ev_int, *ev_timeout;
	struct timeval tv;
	long port = 0, timeout = FP_DEFAULT_TIMEOUT;
	int ch;

	while ((ch = getopt(argc, argv, "k:p:t:v")) != -1) {
		switch (ch) {
		case 'k':
			fp_key = optarg;
			break;
		case 'p':
			port = parse_num(optarg, 0, 65535);
			break;
		case 't':
			timeout = parse_num(optarg, 0, 86400 * 365);
			break;
		case 'v':
			fp_verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	signal(SIGPIPE, SIG_IGN);
	if ((fp_base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if ((fp_http = evhttp_new(fp_base)) == NULL)
		fatalx("evhttp_new failed");
	evhttp_set_max_body_size(fp_http, FP_MAX_BODY);
	evhttp_set_max_headers_size(fp_http, FP_MAX_HEADERS);
	evhttp_set_gencb(fp_http, dispatch_cb, NULL);
	bound = evhttp_bind_socket_with_handle(fp_http, "127.0.0.1",
	    (ev_uint16_t)port);
	if (bound == NULL)
		fatalx("cannot bind 127.0.0.1:%ld: %s", port, strerror(errno));
	if (getsockname(evhttp_bound_socket_get_fd(bound),
	        (struct sockaddr *)&ss, &sslen) != 0)
		fatalx("getsockname: %s", strerror(errno));
	printf("PORT %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);

	ev_term = evsignal_new(fp_base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(fp_base, SIGINT, stop_cb, NULL);
	if (ev_term == NULL || ev_int == NULL)
		fatalx("evsignal_new failed");
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	ev_timeout = NULL;
	if (timeout > 0) {
		if ((ev_timeout = evtimer_new(fp_base, stop_cb, NULL)) == NULL)
			fatalx("evtimer_new failed");
		tv.tv_sec = timeout;
		tv.tv_usec = 0;
		evtimer_add(ev_timeout, &tv);
	}

	event_base_dispatch(fp_base);

	answers_shutdown();
	evhttp_free(fp_http);
	models_clear();
	event_free(ev_term);
	event_free(ev_int);
	if (ev_timeout != NULL)
		event_free(ev_timeout);
	event_base_free(fp_base);
	return 0;
}
