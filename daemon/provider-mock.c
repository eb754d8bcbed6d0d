/*
 * provider-mock.c: the `mock` provider type, answered inside the daemon with
 * no network, so a fresh machine and the tests can watch retries, fallback
 * and streaming happen. Models (a ":N" suffix sets the parameter):
 *
 *   echo              "echo: <last user text>", streamed a word per chunk
 *   stream[:MS]       like echo, MS milliseconds between words (default 50)
 *   slow[:MS]         like echo, answers after MS milliseconds (default 1000)
 *   rate-limited[:S]  always 429 rate_limited with Retry-After S (default 1)
 *   flaky[:N]         the first N attempts of a call fail with 503
 *                     server_error, later ones answer like echo (default 1)
 *   error:CLASS       always fails with that error class
 *   json-fix[:N]      the first N attempts reply {"bad": true}; later ones
 *                     reply with the first user message verbatim (give it
 *                     the JSON a schema wants) (default 1)
 *   json-flaky[:N]    the first attempt replies {"bad": true}, the next N
 *                     fail with 503 server_error (a repair that meets a
 *                     transient failure), later ones reply like json-fix
 *                     (default 1)
 *   tool-fix[:N]      calls the request's first tool: the first N attempts
 *                     with arguments {"bad": true}, later ones with the
 *                     first user message as arguments (default 1)
 *   cut[:N]           the first attempt at the target streams N words
 *                     (default 2), then the stream is cut; later attempts
 *                     answer in full
 *
 * Like a real model, the mock honours a continuation: asked to continue a
 * cut reply (call.c's resume), it answers with the rest of its text.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

enum mock_kind {
	MOCK_ECHO,
	MOCK_RATE_LIMITED,
	MOCK_FLAKY,
	MOCK_ERROR,
	MOCK_CUT,
	MOCK_JSON_FIX,
	MOCK_JSON_FLAKY,
	MOCK_TOOL_FIX,
};

struct mock {
	struct attempt *att;
	struct event *ev;
	enum mock_kind kind;
	long param;
	uint32_t word_ms; /* between streamed words */
	char *text;       /* the full reply */
	size_t pos;       /* how much of it was sent */
	int words_sent;
};

static const struct {
	const char *name;
	enum mock_kind kind;
	long def;
} mock_models[] = {
	{ "echo", MOCK_ECHO, 0 },
	{ "stream", MOCK_ECHO, 50 },
	{ "slow", MOCK_ECHO, 1000 },
	{ "rate-limited", MOCK_RATE_LIMITED, 1 },
	{ "flaky", MOCK_FLAKY, 1 },
	{ "error", MOCK_ERROR, 0 },
	{ "cut", MOCK_CUT, 2 },
	{ "json-fix", MOCK_JSON_FIX, 1 },
	{ "json-flaky", MOCK_JSON_FLAKY, 1 },
	{ "tool-fix", MOCK_TOOL_FIX, 1 },
};

/* The status a real provider would send with each class. */
static const uint32_t mock_status[LLMGATE_CLASS_MAX] = {
	[LLMGATE_RATE_LIMITED] = 429,
	[LLMGATE_OVERLOADED] = 529,
	[LLMGATE_SERVER_ERROR] = 500,
	[LLMGATE_TIMEOUT] = 408,
	[LLMGATE_QUOTA_EXHAUSTED] = 402,
	[LLMGATE_AUTH] = 401,
	[LLMGATE_PERMISSION] = 403,
	[LLMGATE_NOT_FOUND] = 404,
	[LLMGATE_CONTEXT_LENGTH] = 400,
	[LLMGATE_CONTENT_FILTER] = 400,
	[LLMGATE_BAD_REQUEST] = 400,
};

static void mock_step(evutil_socket_t, short, void *);

const struct provider_type provider_mock = {
	.name = "mock",
	.start = mock_start,
	.stop = mock_stop,
};

static uint64_t
mock_words(const char *s)
{
	uint64_t n = 0;
	int in = 0;

	for (; s != NULL && *s != '\0'; s++) {
		if (isspace((unsigned char)*s))
			in = 0;
		else if (!in) {
			in = 1;
			n++;
		}
	}
	return n;
}

static const char *
mock_last_user(const struct llmgate_request *req)
{
	size_t i = req->nmessages;

	/* Skip a resume's [partial reply, "continue"] pair. */
	if (i >= 2 && req->messages[i - 1].content != NULL &&
	    strcmp(req->messages[i - 1].content, call_continue_prompt) == 0)
		i -= 2;
	for (; i > 0; i--) {
		if (req->messages[i - 1].role == LLMGATE_ROLE_USER &&
		    req->messages[i - 1].content != NULL)
			return req->messages[i - 1].content;
	}
	return "";
}

static void
mock_arm(struct mock *m, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
		(suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(m->ev, &tv);
}

/* Parse "name" or "name:param"; -1 for a model this provider lacks. */
static int
mock_parse(struct mock *m, const char *model, char **cause)
{
	const char *colon = strchr(model, ':');
	size_t len = colon != NULL ? (size_t)(colon - model) : strlen(model);
	size_t i;
	char *end;
	int cls;

	for (i = 0; i < sizeof mock_models / sizeof mock_models[0]; i++) {
		if (strlen(mock_models[i].name) == len &&
		    strncmp(mock_models[i].name, model, len) == 0)
			break;
	}
	if (i == sizeof mock_models / sizeof mock_models[0])
		goto unknown;
	m->kind = mock_models[i].kind;
	m->param = mock_models[i].def;
	if (strcmp(mock_models[i].name, "stream") == 0)
		m->word_ms = (uint32_t)m->param;
	if (colon == NULL) {
		if (m->kind == MOCK_ERROR)
			goto unknown;
		return 0;
	}
	if (m->kind == MOCK_ERROR) {
		cls = llmgate_class_from_name(colon + 1);
		if (cls <= LLMGATE_OK)
			goto unknown;
		m->param = cls;
		return 0;
	}
	m->param = strtol(colon + 1, &end, 10);
	if (*end != '\0' || m->param < 0 || m->param > 3600000)
		goto unknown;
	if (strcmp(mock_models[i].name, "stream") == 0)
		m->word_ms = (uint32_t)m->param;
	return 0;
unknown:
	xasprintf(cause,
	    "mock model '%s' does not exist (models: echo, "
	    "stream[:MS], slow[:MS], rate-limited[:S], flaky[:N], "
	    "error:CLASS, cut[:N], json-fix[:N], tool-fix[:N])",
	    model);
	return -1;
}

/* Asked to continue: answer only what follows the partial reply. */
static void
mock_continue(struct mock *m, const struct llmgate_request *req)
{
	const struct llmgate_message *part;
	size_t n = req->nmessages, len;
	char *rest;

	if (n < 2 || req->messages[n - 1].content == NULL ||
	    strcmp(req->messages[n - 1].content, call_continue_prompt) != 0)
		return;
	part = &req->messages[n - 2];
	if (part->role != LLMGATE_ROLE_ASSISTANT || part->content == NULL)
		return;
	len = strlen(part->content);
	if (strncmp(m->text, part->content, len) != 0)
		return;
	rest = xstrdup(m->text + len);
	free(m->text);
	m->text = rest;
}

void
mock_start(struct attempt *att)
{
	struct mock *m = xcalloc(1, sizeof *m);
	const struct llmgate_request *req = att->req;
	uint64_t first = 0;
	char *cause = NULL;

	m->att = att;
	att->priv = m;
	m->ev = evtimer_new(ev_base, mock_step, m);
	if (mock_parse(m, att->model, &cause) != 0) {
		reply_error(&att->reply, LLMGATE_NOT_FOUND, 404, "%s", cause);
		free(cause);
		mock_arm(m, 0);
		return;
	}
	xasprintf(&m->text, "echo: %s", mock_last_user(req));
	mock_continue(m, req);
	att->reply.input_tokens =
	    mock_words(req->system) + mock_words(mock_last_user(req));
	if (strncmp(att->model, "slow", 4) == 0)
		first = (uint64_t)m->param;
	mock_arm(m, first);
}

static const char *
mock_first_user(const struct llmgate_request *req)
{
	size_t i;

	for (i = 0; i < req->nmessages; i++) {
		if (req->messages[i].role == LLMGATE_ROLE_USER &&
		    req->messages[i].content != NULL)
			return req->messages[i].content;
	}
	return "";
}

/* A reply that is one call of the request's first tool. */
static void
mock_tool_call(struct mock *m)
{
	struct attempt *att = m->att;
	struct reply *r = &att->reply;
	const char *args = att->index < (unsigned)m->param ?
	    "{\"bad\": true}" :
	    mock_first_user(att->req);
	char id[32];

	snprintf(id, sizeof id, "call_mock_%u", att->index);
	reply_tool_delta(r, 0, id, att->req->tools[0].name, args, strlen(args));
	r->output_tokens = mock_words(args);
	r->finish = LLMGATE_FINISH_TOOL_CALLS;
	r->status = 200;
	r->done = 1;
}

/* Send the next word of a streamed reply; 1 when the text is all out. */
static int
mock_next_word(struct mock *m)
{
	const char *p = m->text + m->pos, *q = p;

	while (*q != '\0' && *q != ' ')
		q++;
	while (*q == ' ')
		q++;
	reply_text(&m->att->reply, p, (size_t)(q - p));
	m->pos = (size_t)(q - m->text);
	m->words_sent++;
	return m->text[m->pos] == '\0';
}

static void
mock_step(evutil_socket_t fd, short events, void *arg)
{
	struct mock *m = arg;
	struct attempt *att = m->att;
	struct reply *r = &att->reply;

	if (r->cls != LLMGATE_OK) {
		attempt_done(att);
		return;
	}
	switch (m->kind) {
	case MOCK_RATE_LIMITED:
		r->rl.retry_after_ms = m->param * 1000;
		reply_error(r, LLMGATE_RATE_LIMITED, 429,
		    "mock: rate limit reached, retry after %lds", m->param);
		attempt_done(att);
		return;
	case MOCK_FLAKY:
		if (att->index < (unsigned)m->param) {
			reply_error(r, LLMGATE_SERVER_ERROR, 503,
			    "mock: failing attempt %u of the first %ld",
			    att->index + 1, m->param);
			attempt_done(att);
			return;
		}
		break;
	case MOCK_ERROR:
		reply_error(r, (enum llmgate_class)m->param,
		    mock_status[m->param], "mock: failing with %s as asked",
		    llmgate_class_name((int)m->param));
		attempt_done(att);
		return;
	case MOCK_CUT:
		if (att->index != 0)
			break;
		if (m->words_sent >= m->param || m->text[m->pos] == '\0') {
			reply_error(r, LLMGATE_CONNECTION, 200,
			    "mock: stream cut after %d chunks", m->words_sent);
			attempt_done(att);
			return;
		}
		mock_next_word(m);
		mock_arm(m, m->word_ms);
		return;
	case MOCK_JSON_FIX:
		free(m->text);
		m->text = xstrdup(att->index < (unsigned)m->param ?
		        "{\"bad\": true}" :
		        mock_first_user(att->req));
		break;
	case MOCK_JSON_FLAKY:
		if (att->index >= 1 && att->index <= (unsigned)m->param) {
			reply_error(r, LLMGATE_SERVER_ERROR, 503,
			    "mock: failing attempt %u", att->index + 1);
			attempt_done(att);
			return;
		}
		free(m->text);
		m->text = xstrdup(att->index == 0 ? "{\"bad\": true}" :
		                                    mock_first_user(att->req));
		break;
	case MOCK_TOOL_FIX:
		if (att->req->ntools == 0) {
			reply_error(r, LLMGATE_BAD_REQUEST, 400,
			    "mock: tool-fix needs tools");
			attempt_done(att);
			return;
		}
		mock_tool_call(m);
		attempt_done(att);
		return;
	case MOCK_ECHO:
		break;
	}

	/* Streams go out a word per step; a plain reply in one piece. */
	if (att->req->stream) {
		if (!mock_next_word(m)) {
			mock_arm(m, m->word_ms);
			return;
		}
	} else
		reply_text(r, m->text, strlen(m->text));
	r->output_tokens = mock_words(m->text);
	r->finish = LLMGATE_FINISH_STOP;
	r->status = 200;
	r->done = 1;
	attempt_done(att);
}

void
mock_stop(struct attempt *att)
{
	struct mock *m = att->priv;

	if (m == NULL)
		return;
	event_free(m->ev);
	free(m->text);
	free(m);
	att->priv = NULL;
}
