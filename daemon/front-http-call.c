/*
 * front-http-call.c: one HTTP request from its dialect's translation to
 * a running call and its end: the chain of targets from the model names,
 * the x-llmgate-* options headers, who asked, the call started with the
 * front's sink, and the request's release once answered (a client that
 * hangs up is seen by its connection, front-wire.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static const struct call_sink front_http_sink;

void
front_http_drop(evutil_socket_t fd, short events, void *arg)
{
	struct front_req *fr = arg;

	if (fr->call != NULL)
		call_cancel(fr->call, "the client does not read its stream");
}

/*
 * One budget per user with the native socket (quota.c): the request's
 * body, or what it decoded to when that is more (the call keeps that),
 * counts from here until the request is freed, its call answered.
 * Over the user's share: 429 (rate_limited); over max_memory: 503
 * (overloaded). A caller known only by a token counts as nobody.
 */
int
front_http_quota(struct front_req *fr, size_t bytes)
{
	struct quota_user *u = quota_user(fr->client.uid);
	char msg[200];

	switch (quota_request(u, bytes, msg, sizeof msg)) {
	case QUOTA_OK:
		fr->quota = u;
		fr->quota_bytes = bytes;
		return 0;
	case QUOTA_MEMORY:
		front_http_refusal(fr, LLMGATE_OVERLOADED, 503, msg);
		break;
	default:
		front_http_refusal(fr, LLMGATE_RATE_LIMITED, 429, msg);
		break;
	}
	return -1;
}

void
front_http_req_free(struct front_req *fr)
{
	if (fr->quota != NULL)
		quota_request_end(fr->quota, fr->quota_bytes);
	if (fr->stall_ev != NULL)
		event_free(fr->stall_ev);
	event_free(fr->cancel_ev);
	if (fr->fc != NULL) {
		if (fr->fc->cur == fr)
			fr->fc->cur = NULL;
		/* Its connection goes on to its next request. */
		front_wire_next(fr->fc->w);
	}
	free(fr->model);
	free(fr->dstate);
	free(fr->err_msg);
	free(fr);
}

static void
front_http_sink_chunk(void *arg, const struct llmgate_chunk *ch)
{
	struct front_req *fr = arg;

	if (fr->gone || fr->dropped || !fr->stream)
		return;
	fr->d->chunk(fr, ch);
}

static void
front_http_sink_done(void *arg, const struct llmgate_result *res)
{
	struct front_req *fr = arg;

	fr->call = NULL;
	if (fr->fc != NULL)
		fr->fc->tokens = rl_tokens_sum(fr->fc->tokens,
		    rl_tokens_sum(res->total_input_tokens,
		        res->total_output_tokens));
	if (res->cls == LLMGATE_OK)
		fr->d->done(fr, res);
	else
		front_http_fail(fr, res->cls, 0, NULL, res->message, res);
	if (fr->w != NULL) {
		/* A dialect that did not answer: never leave it hanging. */
		front_http_fail(fr, LLMGATE_INTERNAL, 0, NULL,
		    "no answer was produced", res);
	}
	front_http_req_free(fr);
}

static const struct call_sink front_http_sink = {
	.chunk = front_http_sink_chunk,
	.done = front_http_sink_done,
};

/*
 * What the zone helpers below have handed out since front_http_request()
 * set it to 0: the size the request's body decoded to, which its call
 * keeps and which may pass the body's own (front_http_quota()).
 */
size_t front_http_zbytes;

/* A string the request keeps: copied into its zone. */
char *
front_http_zdup(msgpack_zone *z, const char *s, size_t len)
{
	char *p = msgpack_zone_malloc(z, len + 1);

	if (p == NULL)
		fatalx("%s: out of memory", __func__);
	front_http_zbytes += len + 1;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
front_http_jstr(msgpack_zone *z, const struct jdoc *d, int i)
{
	const char *s;
	char *p;
	size_t len, raw;

	if (jdoc_type(d, i) != JDOC_STRING)
		return NULL;
	raw = (size_t)(d->tok[i].end - d->tok[i].start);
	if ((p = msgpack_zone_malloc(z, raw + 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	front_http_zbytes += raw + 1;
	/* Unescaped straight into p, or copied from the text. */
	if ((s = jdoc_str(d, i, &len, p, raw)) != p)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

int
front_http_jstrs(msgpack_zone *z, const struct jdoc *d, int v, size_t max,
    char ***out, size_t *n, size_t *bad)
{
	size_t i, size = (size_t)jdoc_size(d, v);
	char **a;
	int s;

	if (jdoc_type(d, v) != JDOC_ARRAY || size > max)
		return -1;
	a = front_http_zalloc(z, size, sizeof *a);
	for (i = 0, s = v + 1; i < size; i++, s = jdoc_next(d, s)) {
		if ((a[i] = front_http_jstr(z, d, s)) == NULL) {
			*bad = i;
			return -2;
		}
	}
	*out = a;
	*n = size;
	return 0;
}

int
front_http_jadd(struct buf *b, const struct jdoc *d, int i)
{
	const char *s;
	size_t len, raw;
	char *p;

	if (jdoc_type(d, i) != JDOC_STRING)
		return -1;
	raw = (size_t)(d->tok[i].end - d->tok[i].start);
	p = buf_reserve(b, raw);
	if ((s = jdoc_str(d, i, &len, p, raw)) != p)
		memcpy(p, s, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

char *
front_http_jdump(msgpack_zone *z, const struct jdoc *d, int i)
{
	char *s = jdoc_dump(d, i, JSON_COMPACT), *p;

	/* Its text was read whole already: only memory can fail. */
	if (s == NULL)
		fatalx("%s: out of memory", __func__);
	p = front_http_zdup(z, s, strlen(s));
	free(s);
	return p;
}

int
front_http_jrange(const struct jdoc *d, int i, double lo, double hi,
    double *out)
{
	return jdoc_num(d, i, out) == 0 && *out >= lo && *out <= hi ? 0 : -1;
}

void *
front_http_zalloc(msgpack_zone *z, size_t n, size_t size)
{
	void *p;

	if (n != 0 && size > SIZE_MAX / n)
		fatalx("%s: overflow", __func__);
	if ((p = msgpack_zone_malloc(z, n * size != 0 ? n * size : 1)) == NULL)
		fatalx("%s: out of memory", __func__);
	front_http_zbytes += n * size != 0 ? n * size : 1;
	memset(p, 0, n * size != 0 ? n * size : 1);
	return p;
}

/* Does a provider name model in its models list? */
static int
front_http_declares(const struct provider_conf *pc, const char *model)
{
	return config_model(pc, model) != NULL;
}

/*
 * A client's model name to targets: "provider/model", a route (its
 * targets), or a bare model exactly one provider declares. Appended to
 * req->targets; -1 with *cause (and *status) when it names nothing.
 */
static int
front_http_add_model(struct llmgate_request *req, size_t *cap, msgpack_zone *z,
    const char *model, int *status, char **cause)
{
	const struct route_conf *rc;
	const struct provider_conf *found = NULL;
	const char *slash = strchr(model, '/');
	char prov[128];
	size_t i, n = 0;
	const char *names[CALL_MAX_TARGETS];
	char *owned = NULL;

	if (*model == '\0') {
		*status = 400;
		xasprintf(cause, "model must not be empty");
		return -1;
	}
	if (slash != NULL && (size_t)(slash - model) < sizeof prov) {
		memcpy(prov, model, (size_t)(slash - model));
		prov[slash - model] = '\0';
		if (config_provider(cfg, prov) != NULL) {
			names[n++] = model;
			goto add;
		}
	}
	/* A pool is one step: the engine picks its member per attempt. */
	if (slash == NULL && config_pool(cfg, model) != NULL) {
		names[n++] = model;
		goto add;
	}
	if ((rc = config_route(cfg, model)) != NULL) {
		for (i = 0; i < rc->ntargets && n < CALL_MAX_TARGETS; i++)
			names[n++] = rc->targets[i];
		goto add;
	}
	for (i = 0; i < cfg->nproviders; i++) {
		if (!front_http_declares(&cfg->providers[i], model))
			continue;
		if (found != NULL) {
			*status = 400;
			xasprintf(cause,
			    "model '%s' is declared by providers "
			    "'%s' and '%s': name it as provider/model",
			    model, found->name, cfg->providers[i].name);
			return -1;
		}
		found = &cfg->providers[i];
	}
	if (found == NULL) {
		*status = 404;
		xasprintf(cause,
		    "the model '%s' does not exist: name a route, "
		    "a pool, provider/model, or a model a provider declares "
		    "(GET /v1/models lists them)",
		    model);
		return -1;
	}
	xasprintf(&owned, "%s/%s", found->name, model);
	names[n++] = owned;
add:
	for (i = 0; i < n; i++) {
		if (req->ntargets >= CALL_MAX_TARGETS) {
			*status = 400;
			xasprintf(cause,
			    "a fallback chain has at most %d "
			    "targets",
			    CALL_MAX_TARGETS);
			free(owned);
			return -1;
		}
		if (req->ntargets == *cap) {
			char **t =
			    front_http_zalloc(z, *cap * 2 + 4, sizeof *t);

			if (req->ntargets != 0)
				memcpy(t, req->targets,
				    req->ntargets * sizeof *t);
			req->targets = t;
			*cap = *cap * 2 + 4;
		}
		req->targets[req->ntargets++] =
		    front_http_zdup(z, names[i], strlen(names[i]));
	}
	free(owned);
	return 0;
}

/*
 * The chain: model, then the body's models array (OpenRouter's
 * convention), or the x-llmgate-models header (comma-separated).
 */
int
front_http_targets(struct front_req *fr, struct llmgate_request *req,
    msgpack_zone *z, const char *model, const struct jdoc *d, int models)
{
	const char *hdr;
	char *list, *p, *last, *s, *cause = NULL;
	size_t cap = 0, i;
	int status = 400, v;

	if (front_http_add_model(req, &cap, z, model, &status, &cause) != 0)
		goto fail;
	if (models != -1) {
		if (jdoc_type(d, models) != JDOC_ARRAY) {
			xasprintf(&cause,
			    "models must be an array of model "
			    "names");
			goto fail;
		}
		for (i = 0, v = models + 1; i < (size_t)jdoc_size(d, models);
		     i++, v = jdoc_next(d, v)) {
			if ((s = front_http_jstr(z, d, v)) == NULL) {
				xasprintf(&cause,
				    "models[%zu] must be a "
				    "string",
				    i);
				goto fail;
			}
			if (i == 0 && strcmp(s, model) == 0)
				continue;
			if (front_http_add_model(req, &cap, z, s, &status,
			        &cause) != 0)
				goto fail;
		}
	}
	hdr = front_wire_header(fr->w, "x-llmgate-models");
	if (hdr != NULL) {
		list = xstrdup(hdr);
		for (p = strtok_r(list, ", ", &last); p != NULL;
		     p = strtok_r(NULL, ", ", &last)) {
			if (front_http_add_model(req, &cap, z, p, &status,
			        &cause) != 0) {
				free(list);
				goto fail;
			}
		}
		free(list);
	}
	return 0;
fail:
	front_http_refusal(fr,
	    status == 404 ? LLMGATE_NOT_FOUND : LLMGATE_INVALID_REQUEST, status,
	    cause);
	free(cause);
	return -1;
}

void
front_http_refusal(struct front_req *fr, enum llmgate_class cls, int status,
    const char *msg)
{
	if (fr->err_msg != NULL)
		return;
	fr->err_cls = cls;
	fr->err_status = status;
	fr->err_msg = xstrdup(msg);
}

void
front_http_bad(struct front_req *fr, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("vasprintf");
	va_end(ap);
	front_http_refusal(fr, LLMGATE_INVALID_REQUEST, 400, msg);
	free(msg);
}

/*
 * A comma-separated header value as a list of strings in the zone. With
 * rest set, an item that starts with it takes the rest of the value as
 * written, commas included (x-llmgate-reject's match:REGEX).
 */
static void
front_http_list(msgpack_zone *z, const char *v, const char *rest, char ***out,
    size_t *n)
{
	size_t cap = 0, len;
	const char *end;

	*out = NULL;
	*n = 0;
	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (*v == '\0')
			break;
		if (rest != NULL && strncmp(v, rest, strlen(rest)) == 0)
			end = v + strlen(v);
		else if ((end = strchr(v, ',')) == NULL)
			end = v + strlen(v);
		len = (size_t)(end - v);
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (*n == cap) {
			char **grown;

			cap = cap * 2 + 4;
			grown = front_http_zalloc(z, cap, sizeof *grown);
			if (*n != 0)
				memcpy(grown, *out, *n * sizeof *grown);
			*out = grown;
		}
		(*out)[(*n)++] = front_http_zdup(z, v, len);
		v = end;
	}
}

/* The per-call options headers. -1 after answering a bad one. */
int
front_http_options(struct front_req *fr, struct llmgate_request *req,
    msgpack_zone *z)
{
	const struct front_wire *in = fr->w;
	struct fallback fb;
	const char *v;
	char *end, *cause = NULL, msg[160];
	unsigned long ms;
	uint32_t on;
	int i, rc;

	if ((v = front_wire_header(in, "x-llmgate-priority")) != NULL) {
		if ((i = llmgate_priority_from_name(v)) < 0) {
			snprintf(msg, sizeof msg,
			    "x-llmgate-priority must be "
			    "high, normal or low");
			goto bad;
		}
		req->priority = (enum llmgate_priority)i;
	}
	if ((v = front_wire_header(in, "x-llmgate-on-cut")) != NULL) {
		if ((i = llmgate_on_cut_from_name(v)) < 0) {
			snprintf(msg, sizeof msg,
			    "x-llmgate-on-cut must be "
			    "resume, restart or fail");
			goto bad;
		}
		req->on_cut = (enum llmgate_on_cut)i;
		/* An event stream cannot take back what it sent. */
		if (fr->stream && req->on_cut == LLMGATE_CUT_RESTART) {
			snprintf(msg, sizeof msg,
			    "x-llmgate-on-cut: restart "
			    "cannot be streamed over HTTP (use resume or fail)");
			goto bad;
		}
	}
	if ((v = front_wire_header(in, "x-llmgate-timeout-ms")) != NULL) {
		errno = 0;
		ms = strtoul(v, &end, 10);
		if (!isdigit((unsigned char)*v) || *end != '\0' || errno != 0 ||
		    ms == 0 || ms > UINT32_MAX) {
			snprintf(msg, sizeof msg,
			    "x-llmgate-timeout-ms must "
			    "be a number of milliseconds, 1 or more");
			goto bad;
		}
		req->timeout_ms = (uint32_t)ms;
	}
	/*
	 * The call checks these again, but its refusal would name them as
	 * the native protocol does (fallback_on, reject): checked here
	 * first, a refusal names the header.
	 */
	if ((v = front_wire_header(in, "x-llmgate-fallback-on")) != NULL) {
		front_http_list(z, v, NULL, &req->fallback_on,
		    &req->nfallback_on);
		if (fallback_parse_on(&on, req->fallback_on, req->nfallback_on,
		        "x-llmgate-fallback-on", &cause) != 0)
			goto bad_cause;
	}
	if ((v = front_wire_header(in, "x-llmgate-reject")) != NULL) {
		front_http_list(z, v, "match:", &req->reject, &req->nreject);
		memset(&fb, 0, sizeof fb);
		rc = fallback_parse_reject(&fb, req->reject, req->nreject,
		    "x-llmgate-reject", &cause);
		fallback_free(&fb);
		if (rc != 0)
			goto bad_cause;
	}
	return 0;
bad:
	front_http_refusal(fr, LLMGATE_INVALID_REQUEST, 400, msg);
	return -1;
bad_cause:
	front_http_refusal(fr, LLMGATE_INVALID_REQUEST, 400, cause);
	free(cause);
	return -1;
}

/* Who asked, for fair shares and logs: x-llmgate-client, else the peer. */
void
front_http_client(struct front_req *fr, const char *token_name)
{
	struct front_conn *fc = fr->fc;
	const char *hdr = front_wire_header(fr->w, "x-llmgate-client"), *name;
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	const char *p;
	char *q;

	name = hdr;
	if (name == NULL || *name == '\0')
		name = token_name;
	if (name != NULL && *name != '\0')
		snprintf(fr->client_name, sizeof fr->client_name, "%.32s (%s)",
		    name, fc->peer);
	else {
		str_fit(fr->client_name, sizeof fr->client_name, fc->peer);
		name = fr->client_name;
	}
	for (q = fr->client_name; *q != '\0'; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	}
	for (p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	fr->client.id = h ^ (uint64_t)(fc->uid_known ? fc->uid : 0xffff) << 32;
	fr->client.name = fr->client_name;
	/* Targets a caller makes count against its uid's share; a caller
	 * known only by a token shares nobody's. */
	fr->client.uid = fc->uid_known ? fc->uid : (uid_t)65534;
	/* Its class: the kernel's word, the token's, then its own name. */
	fr->ident.uid = fc->uid_known ? fc->uid : (uid_t)-1;
	fr->ident.pid = fc->pid;
	str_fit(fr->ident.unit, sizeof fr->ident.unit, fc->unit);
	str_fit(fr->ident.token, sizeof fr->ident.token,
	    token_name != NULL ? token_name : "");
	str_fit(fr->ident.name, sizeof fr->ident.name, hdr != NULL ? hdr : "");
	fr->client.ident = &fr->ident;
}

/* Start the call the dialect translated; it answers through the sink. */
void
front_http_call(struct front_req *fr, struct llmgate_request *req,
    msgpack_zone *z)
{
	req->stream = fr->stream;
	fr->fc->cur = fr;
	fr->call = call_start(req, z, &front_http_sink, fr, &fr->client);
}
