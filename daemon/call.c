/*
 * call.c: the call engine. A call walks its chain of targets: it starts an
 * attempt through the target's provider, and when the attempt ends it
 * decides: done, retry the same target after a backoff, or fall back to the
 * next one. It knows nothing of the msgpack front: output goes to a
 * call_sink, so any front (the socket protocol today, an HTTP front later)
 * can drive it. Every call ends through call_finish(), exactly once.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/* A member of a pool's step. */
struct call_member {
	char *name; /* "provider/model" */
	const struct provider_conf *prov;
	struct target *state;
};

/*
 * A step of the chain. A pool's step has members; name, prov, model and
 * state are then those of the member chosen for the next attempt.
 */
struct call_target {
	char *name;                         /* "provider/model" */
	const struct target_override *over; /* from a route, or NULL */
	const struct provider_conf *prov;
	const char *model; /* the target's, as it keeps it */
	struct target *state;
	const struct pool_conf *pool; /* a pool's step, or NULL */
	struct call_member *mem;
	size_t nmem;
	size_t cur;     /* the member chosen */
	uint64_t moved; /* members moved away from this turn */
	unsigned moves; /* at this step */
};

struct call {
	struct llmgate_request *req;   /* &reqbuf */
	struct llmgate_request reqbuf; /* the caller's, contents in zone */
	msgpack_zone *zone;
	const struct call_sink *sink;
	void *arg;
	struct config *cfg; /* the config the call started under */
	uint64_t client_id;
	uid_t client_uid;
	const struct client_class *klass; /* in cfg */
	struct client_state *kstate;      /* counted in its inflight */
	int class_refused;                /* its budget: no target would do */
	char client[96];

	struct call_target *chain;
	size_t nchain;
	size_t pos;     /* current target */
	unsigned tries; /* attempts at this turn of the target */
	unsigned sent;  /* attempts at the current target */

	struct admission adm; /* budget for the next attempt */
	int repairing;        /* the next attempt is a repair */
	int moving;           /* ... moves within a pool */
	struct attempt *att;  /* in flight, or NULL */
	struct event *timer;  /* start, backoff wait, deferred end */
	struct event *deadline_ev;
	uint64_t start_ms;
	uint64_t deadline_ms;  /* 0: none */
	uint64_t wait_from_ms; /* when the current wait began */
	uint64_t prev_backoff_ms;

	struct llmgate_attempt *recs;
	size_t nrecs;

	int held;                /* the front is not reading (call_hold) */
	int text_streamed;       /* the result's text is what was relayed */
	int relayed;             /* chunks reached the client */
	uint64_t relay_in;       /* input tokens of the reply relaying */
	struct buf relayed_text; /* what the client has seen */
	int resumed;             /* the reply is relayed_text */
	uint64_t resumed_tokens; /* output of the parts before the cut */
	uint32_t cap;            /* the target's max_tokens; 0: none */
	uint64_t total_in, total_out; /* billed, every attempt */
	struct turns extra; /* turns after the caller's: resume, repair */
	struct llmgate_message *msgs; /* the caller's and extra, in order */
	struct llmgate_request eff;   /* what the current attempt sends */

	struct fallback fb; /* the call's fallback_on and reject */
	struct repair rp;   /* schema and tool checks */
	unsigned repairs;   /* made at the current target */
	int hold_text;      /* relay text only once it passed */
	int hold_tools;     /* relay tool calls only once they passed */
	int finished;

	/* A failure found before any attempt (validation), answered async. */
	enum llmgate_class early_cls;
	char *early_msg;
};

struct call_stats call_stats;

const char call_continue_prompt[] =
    "Your previous reply was cut off. "
    "Continue exactly where it stopped, without repeating anything you "
    "already wrote.";

static void call_step(evutil_socket_t, short, void *);
static void call_deadline(evutil_socket_t, short, void *);
static int call_cut(struct call *, const struct reply *);
static int call_next_target(struct call *);
static void call_attempt(struct call *);
static void call_attempt_done(struct attempt *);
static void call_admit(struct call *);
static void call_skip(struct call *, enum llmgate_class, const char *);
static void call_finish(struct call *, struct reply *, enum llmgate_class,
    const char *);

static double
call_random(void)
{
	return (double)arc4random() / 4294967296.0;
}

static void
call_arm(struct call *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
		(suseconds_t)(ms % 1000) * 1000 };

	/*
	 * Now: made active, so calls started in one round step in the order
	 * they came (timers due at the same time run in no set order).
	 */
	if (ms == 0) {
		evtimer_del(c->timer);
		event_active(c->timer, EV_TIMEOUT, 1);
		return;
	}
	evtimer_add(c->timer, &tv);
}

static void
call_pool_set(struct call_target *t, size_t i)
{
	t->cur = i;
	t->name = t->mem[i].name;
	t->prov = t->mem[i].prov;
	t->state = t->mem[i].state;
	t->model = t->state->model;
}

/* A pool's step: its members, held; the first is current until a choice. */
static int
call_pool_resolve(struct call *c, struct call_target *t,
    const struct pool_conf *pc, char **cause)
{
	const struct provider_conf *prov;
	struct target *st;
	size_t i;

	t->pool = pc;
	t->mem = xcalloc(pc->ntargets, sizeof *t->mem);
	for (i = 0; i < pc->ntargets; i++) {
		st = target_resolve(c->cfg, pc->targets[i], c->client_uid,
		    &prov, cause);
		if (st == NULL)
			return -1;
		t->mem[i].name = xstrdup(pc->targets[i]);
		t->mem[i].prov = prov;
		t->mem[i].state = st;
		t->nmem = i + 1;
	}
	call_pool_set(t, 0);
	return 0;
}

/* Resolve the chain: -m targets, else the named route, else "default". */
static int
call_resolve(struct call *c, char **cause)
{
	const struct llmgate_request *req = c->req;
	const struct route_conf *route = NULL;
	const struct provider_conf *prov;
	const struct pool_conf *pc;
	struct target *t;
	char *const *names, *q;
	size_t i, n;

	if (req->ntargets != 0) {
		names = req->targets;
		n = req->ntargets;
	} else {
		route = config_route(c->cfg,
		    req->route != NULL ? req->route : "default");
		if (route == NULL) {
			q = log_quote(req->route != NULL ? req->route :
			                                   "default",
			    200);
			xasprintf(cause, "unknown route '%s'", q);
			free(q);
			return -1;
		}
		names = route->targets;
		n = route->ntargets;
	}
	if (n == 0) {
		xasprintf(cause, "no targets to call");
		return -1;
	}
	/* A client names its own chain; a config's route is the operator's. */
	if (route == NULL && n > CALL_MAX_TARGETS) {
		xasprintf(cause, "%zu targets: a chain has at most %d", n,
		    CALL_MAX_TARGETS);
		return -1;
	}
	c->chain = xcalloc(n, sizeof *c->chain);
	for (i = 0; i < n; i++) {
		if (route != NULL)
			c->chain[i].over = &route->over[i];
		if (strchr(names[i], '/') == NULL &&
		    (pc = config_pool(c->cfg, names[i])) != NULL) {
			c->nchain = i + 1;
			if (call_pool_resolve(c, &c->chain[i], pc, cause) != 0)
				return -1;
			continue;
		}
		if (strchr(names[i], '/') == NULL) {
			q = log_quote(names[i], 200);
			xasprintf(cause,
			    "target '%s' is neither provider/model "
			    "nor a pool's name",
			    q);
			free(q);
			return -1;
		}
		t = target_resolve(c->cfg, names[i], c->client_uid, &prov,
		    cause);
		if (t == NULL)
			return -1;
		c->chain[i].name = xstrdup(names[i]);
		c->chain[i].prov = prov;
		c->chain[i].model = t->model;
		c->chain[i].state = t;
		c->nchain = i + 1;
	}
	return 0;
}

/* When a step moves on: its route options, else the call's. */
static uint32_t
call_fallback_on(const struct call *c)
{
	const struct target_override *o = c->chain[c->pos].over;

	if (o != NULL && (o->has & TARGET_HAS_FALLBACK_ON))
		return o->fb.on;
	return c->fb.on;
}

static const struct fallback *
call_reject(const struct call *c)
{
	const struct target_override *o = c->chain[c->pos].over;

	if (o != NULL && (o->has & TARGET_HAS_REJECT))
		return &o->fb;
	return &c->fb;
}

/* Whether any step of the chain has reply conditions. */
static int
call_rejects_any(const struct call *c)
{
	const struct target_override *o;
	size_t i;

	for (i = 0; i < c->nchain; i++) {
		o = c->chain[i].over;
		if (o != NULL && (o->has & TARGET_HAS_REJECT)) {
			if (o->fb.reject != 0 || o->fb.nre != 0)
				return 1;
		} else if (c->fb.reject != 0 || c->fb.nre != 0)
			return 1;
	}
	return 0;
}

static int
call_validate(const struct llmgate_request *req, char **cause)
{
	size_t i;

	if (req->nmessages == 0) {
		xasprintf(cause, "no messages: give a prompt or messages");
		return -1;
	}
	/* The config's own ceiling: more would run past any sane budget. */
	if (req->attempts > CALL_MAX_ATTEMPTS) {
		xasprintf(cause, "attempts %u: at most %u per target",
		    req->attempts, CALL_MAX_ATTEMPTS);
		return -1;
	}
	if (req->tool_choice != LLMGATE_TOOLS_AUTO && req->ntools == 0) {
		xasprintf(cause, "tool_choice %s: the request has no tools",
		    llmgate_tool_choice_name(req->tool_choice));
		return -1;
	}
	if (req->tool_name != NULL) {
		if (req->tool_choice != LLMGATE_TOOLS_REQUIRED) {
			xasprintf(cause,
			    "a tool name goes with tool_choice "
			    "required");
			return -1;
		}
		for (i = 0; i < req->ntools; i++) {
			if (req->tools[i].name != NULL &&
			    strcmp(req->tools[i].name, req->tool_name) == 0)
				break;
		}
		if (i == req->ntools) {
			xasprintf(cause,
			    "tool_choice names '%.64s', which is "
			    "not one of the request's tools",
			    req->tool_name);
			return -1;
		}
	}
	for (i = 0; i < req->nmessages; i++) {
		if (req->messages[i].role == LLMGATE_ROLE_TOOL &&
		    req->messages[i].tool_call_id == NULL) {
			xasprintf(cause,
			    "message %zu: a tool message needs "
			    "tool_call_id",
			    i);
			return -1;
		}
	}
	return 0;
}

struct call *
call_start(const struct llmgate_request *creq, msgpack_zone *zone,
    const struct call_sink *sink, void *arg, const struct call_client *cl)
{
	struct call *c = xcalloc(1, sizeof *c);
	struct llmgate_request *req = &c->reqbuf;
	struct timeval tv;
	char *cause = NULL, msg[256];

	*req = *creq;
	c->req = req;
	c->zone = zone;
	c->sink = sink;
	c->arg = arg;
	c->client_id = cl->id;
	c->client_uid = cl->uid;
	str_fit(c->client, sizeof c->client, cl->name);
	c->cfg = config_ref(cfg);
	c->start_ms = now_ms();
	c->wait_from_ms = c->start_ms;
	c->timer = evtimer_new(ev_base, call_step, c);
	call_stats.calls++;
	call_stats.inflight++;

	/* Its class, from who it is; the class's cap on calls in flight. */
	c->klass = clients_match(c->cfg, cl->ident);
	if (clients_enter(c->klass, &c->kstate, msg, sizeof msg) != 0) {
		c->early_cls = LLMGATE_OVERLOADED;
		c->early_msg = xstrdup(msg);
	} else if (call_validate(req, &cause) != 0 ||
	    fallback_parse_on(&c->fb.on, req->fallback_on, req->nfallback_on,
	        "fallback_on", &cause) != 0 ||
	    fallback_parse_reject(&c->fb, req->reject, req->nreject, "reject",
	        &cause) != 0 ||
	    call_resolve(c, &cause) != 0 ||
	    repair_init(&c->rp, req, &cause) != 0) {
		c->early_cls = LLMGATE_INVALID_REQUEST;
		c->early_msg = cause;
	} else if (req->timeout_ms != 0) {
		c->deadline_ms = c->start_ms + req->timeout_ms;
		c->deadline_ev = evtimer_new(ev_base, call_deadline, c);
		tv.tv_sec = req->timeout_ms / 1000;
		tv.tv_usec = (suseconds_t)(req->timeout_ms % 1000) * 1000;
		evtimer_add(c->deadline_ev, &tv);
	}
	/* What must pass a check is relayed once it has. */
	c->hold_text = req->schema != NULL ||
	    (c->early_msg == NULL && call_rejects_any(c));
	c->hold_tools = req->ntools != 0;
	/* Never answer from inside the front's own call into us. */
	call_arm(c, 0);
	return c;
}

static struct llmgate_attempt *
call_record(struct call *c, const char *target, enum llmgate_class cls,
    uint32_t status, const char *msg, uint32_t ms, uint32_t waited)
{
	struct llmgate_attempt *a;

	c->recs = xreallocarray(c->recs, c->nrecs + 1, sizeof *c->recs);
	a = &c->recs[c->nrecs++];
	memset(a, 0, sizeof *a);
	a->target = xstrdup(target);
	a->cls = cls;
	a->status = status;
	a->message = msg != NULL ? xstrdup(msg) : NULL;
	a->ms = ms;
	a->waited_ms = waited;
	metrics_observe_attempt(target, cls);
	return a;
}

static void
call_emit(void *arg, const struct llmgate_chunk *ch)
{
	struct attempt *att = arg;
	struct call *c = att->arg;

	if (c->finished || c->sink == NULL)
		return;
	if (ch->tool_index >= 0 ? c->hold_tools : c->hold_text)
		return;
	/* Across resumed attempts too, a reply has REPLY_MAX_TEXT at most. */
	if (ch->text != NULL &&
	    c->relayed_text.len + ch->len > REPLY_MAX_TEXT) {
		reply_error(&att->reply, LLMGATE_PARSE_ERROR, 0,
		    "reply text "
		    "over %u bytes",
		    REPLY_MAX_TEXT);
		att->reply.too_long = 1;
		return;
	}
	c->relayed = 1;
	c->relay_in = att->reply.input_tokens;
	if (ch->text != NULL)
		buf_add(&c->relayed_text, ch->text, ch->len);
	c->sink->chunk(c->arg, ch);
}

int
call_text_streamed(const struct call *c)
{
	return c->text_streamed;
}

uint64_t
call_input_tokens(const struct call *c)
{
	return c->relay_in;
}

void
call_hold(struct call *c, int on)
{
	struct attempt *att = c->att;

	c->held = on;
	if (att == NULL || att->held == on)
		return;
	att->held = on;
	if (!on && att->resume != NULL)
		att->resume(att);
}

/* A streamed call's held output, relayed once the reply passed. */
static void
call_release(struct call *c, const struct reply *r)
{
	struct llmgate_chunk ch;
	size_t i;

	if (!c->req->stream || c->sink == NULL)
		return;
	c->relay_in = r->input_tokens;
	if (c->hold_text && r->text.len != 0) {
		memset(&ch, 0, sizeof ch);
		ch.tool_index = -1;
		ch.text = r->text.data;
		ch.len = r->text.len;
		buf_add(&c->relayed_text, ch.text, ch.len);
		c->sink->chunk(c->arg, &ch);
	}
	for (i = 0; c->hold_tools && i < r->ntools; i++) {
		memset(&ch, 0, sizeof ch);
		ch.tool_index = (int)i;
		ch.tool_id = r->tools[i].id;
		ch.tool_name = r->tools[i].name;
		ch.tool_args = buf_cstr(&r->tools[i].args);
		c->sink->chunk(c->arg, &ch);
	}
}

/*
 * The request as this target gets it: the caller's turns and ours (a
 * resume's continuation, a repair's feedback), then the route's per-target
 * overrides, which win because they are specific.
 */
static const struct llmgate_request *
call_effective(struct call *c, const struct call_target *t)
{
	const struct target_override *o = t->over;

	c->eff = *c->req;
	if (c->extra.n != 0) {
		free(c->msgs);
		c->msgs =
		    xcalloc(c->req->nmessages + c->extra.n, sizeof *c->msgs);
		memcpy(c->msgs, c->req->messages,
		    c->req->nmessages * sizeof *c->msgs);
		memcpy(c->msgs + c->req->nmessages, c->extra.m,
		    c->extra.n * sizeof *c->msgs);
		c->eff.messages = c->msgs;
		c->eff.nmessages = c->req->nmessages + c->extra.n;
	}
	if (o == NULL)
		return &c->eff;
	if (o->has & LLMGATE_HAS_MAX_TOKENS)
		c->eff.max_tokens = o->max_tokens;
	if (o->has & LLMGATE_HAS_TEMPERATURE)
		c->eff.temperature = o->temperature;
	if (o->has & LLMGATE_HAS_TOP_P)
		c->eff.top_p = o->top_p;
	c->eff.has |= o->has &
	    (LLMGATE_HAS_MAX_TOKENS | LLMGATE_HAS_TEMPERATURE |
	        LLMGATE_HAS_TOP_P);
	return &c->eff;
}

/*
 * What goes out: a resumed reply asks only for the tokens left of the
 * caller's max_tokens, so the parts together stay within it. call_cut()
 * made sure some are left.
 */
static const struct llmgate_request *
call_request(struct call *c, const struct call_target *t)
{
	call_effective(c, t);
	c->cap = c->eff.has & LLMGATE_HAS_MAX_TOKENS ? c->eff.max_tokens : 0;
	if (c->resumed && (c->eff.has & LLMGATE_HAS_MAX_TOKENS) &&
	    c->eff.max_tokens > c->resumed_tokens)
		c->eff.max_tokens -= (uint32_t)c->resumed_tokens;
	return &c->eff;
}

/* About how many tokens text of len bytes is: 4 bytes a token. */
static uint64_t
call_tokens_of(size_t len)
{
	return (len + 3) / 4;
}

static size_t
call_reply_bytes(const struct reply *r)
{
	size_t i, n = r->text.len;

	for (i = 0; i < r->ntools; i++)
		n += r->tools[i].args.len;
	return n;
}

/*
 * The output tokens a reply cost: as reported once it is whole; before
 * that (a cut), at least what its text makes, since a stream's usage so
 * far (Anthropic's message_start) is a placeholder.
 */
static uint64_t
call_output_tokens(const struct reply *r)
{
	uint64_t est = call_tokens_of(call_reply_bytes(r));

	if (r->done && r->output_tokens != 0)
		return r->output_tokens;
	return r->output_tokens > est ? r->output_tokens : est;
}

/* Attempts at a target: its route override, the call's, the config's. */
static uint32_t
call_attempts(const struct call *c, const struct call_target *t)
{
	uint32_t n;

	if (t->over != NULL && (t->over->has & TARGET_HAS_ATTEMPTS))
		n = t->over->attempts;
	else if (c->req->attempts != 0)
		n = c->req->attempts;
	else
		n = c->cfg->retry.attempts;
	return n != 0 ? n : 1;
}

static void
call_attempt(struct call *c)
{
	struct call_target *t = &c->chain[c->pos];
	struct attempt *att = xcalloc(1, sizeof *att);
	uint64_t now = now_ms();

	att->done = call_attempt_done;
	att->arg = c;
	att->prov = t->prov;
	att->model = t->model;
	att->req = call_request(c, t);
	att->target = t->name;
	att->index = c->sent;
	att->start_ms = now;
	att->held = c->held;
	reply_init(&att->reply, c->req->stream ? call_emit : NULL, att);
	c->att = att;
	c->tries++;
	c->sent++;
	t->state->inflight++;
	t->state->calls++;
	call_stats.attempts++;
	log_debug("call %p: attempt %u at %s", (void *)c, att->index + 1,
	    t->name);
	t->prov->type->start(att);
}

/* End the in-flight attempt's transport and forget it. */
static void
call_drop_attempt(struct call *c)
{
	struct attempt *att = c->att;

	admit_cancel(&c->adm);
	if (att == NULL)
		return;
	c->att = NULL;
	c->chain[c->pos].state->inflight--;
	att->prov->type->stop(att);
	reply_free(&att->reply);
	free(att);
}

/*
 * Skip the current target without an upstream attempt: on to the next
 * target, or the call ends with this class. A skip for lack of time goes
 * on as well: another target may answer sooner.
 */
static void
call_skip(struct call *c, enum llmgate_class cls, const char *msg)
{
	struct llmgate_attempt *a;

	a = call_record(c, c->chain[c->pos].name, cls, 0, msg, 0,
	    (uint32_t)(now_ms() - c->wait_from_ms));
	a->skipped = 1;
	if (!c->class_refused &&
	    (fallback_class(call_fallback_on(c), cls) ||
	        cls == LLMGATE_DEADLINE) &&
	    call_next_target(c)) {
		c->wait_from_ms = now_ms();
		call_arm(c, 0);
		return;
	}
	call_finish(c, NULL, cls, msg);
}

static void
call_step(evutil_socket_t fd, short events, void *arg)
{
	struct call *c = arg;

	if (c->finished) {
		call_finish(c, NULL, LLMGATE_OK, NULL);
		return;
	}
	if (c->early_msg != NULL) {
		call_finish(c, NULL, c->early_cls, c->early_msg);
		return;
	}
	call_admit(c);
}

/* A queued admission's answer: the attempt goes now, or the target is
 * skipped. */
static void
call_admitted(struct admission *a, enum admit_verdict v, uint64_t waited)
{
	struct call *c = a->arg;
	enum llmgate_class cls;
	char msg[320];

	if (v == ADMIT_GO) {
		call_attempt(c);
		return;
	}
	cls = admission_refusal(a, v, waited, now_ms(), "deadline", msg,
	    sizeof msg);
	call_skip(c, cls, msg);
}

static size_t
call_prompt_bytes(const struct llmgate_request *req)
{
	size_t i, n = req->system != NULL ? strlen(req->system) : 0;

	for (i = 0; i < req->nmessages; i++) {
		if (req->messages[i].content != NULL)
			n += strlen(req->messages[i].content);
	}
	return n;
}

/* What each member of a pool's step is now, for an attempt of tokens. */
static void
call_pool_views(const struct call_target *t, uint32_t tokens, uint64_t now,
    struct pool_member *v)
{
	size_t i;

	for (i = 0; i < t->nmem; i++) {
		if (t->mem[i].prov->key_env_unset != NULL) {
			memset(&v[i], 0, sizeof v[i]);
			continue;
		}
		pool_member_view(&v[i], t->mem[i].state,
		    t->mem[i].prov->concurrency, tokens, now);
	}
}

/*
 * The member of a pool's step for the next attempt: the strategy's
 * choice among the members ready now (not moved away from this turn, not
 * refused by admission), else the one that frees first, to wait for.
 * -1 when every member was refused or has no key (the current one stays).
 */
static int
call_pool_pick(struct call *c, struct call_target *t, uint32_t tokens,
    uint64_t refused, uint64_t now)
{
	struct pool_member v[POOL_MAX_MEMBERS];
	int i;

	call_pool_views(t, tokens, now, v);
	if ((i = pool_pick(t->pool->state, v, t->moved, refused)) < 0)
		return -1;
	call_pool_set(t, (size_t)i);
	log_debug("call %p: pool %s: %s", (void *)c, t->pool->name, t->name);
	return 0;
}

static uint32_t
call_tokens_estimate(const struct llmgate_request *req)
{
	return rl_estimate_tokens(call_prompt_bytes(req),
	    req->has & LLMGATE_HAS_MAX_TOKENS ? req->max_tokens : 0);
}

/*
 * Ask for budget at the current target. A target that cannot take the
 * attempt (breaker open, retry budget spent, a wait past the deadline, a
 * full queue) is skipped without an upstream attempt, and the skip is
 * reported like an attempt. At a pool's step, a member is chosen first;
 * one that admission refuses gives way to the next, and the step is
 * skipped only when no member is left.
 */
static void
call_admit(struct call *c)
{
	struct call_target *t = &c->chain[c->pos];
	const struct llmgate_request *req = c->req;
	uint64_t now = now_ms(), wait, refused = 0;
	uint32_t tokens = call_tokens_estimate(req);
	enum admit_verdict v;
	enum llmgate_class cls;
	char msg[320];

	if (t->pool != NULL)
		(void)call_pool_pick(c, t, tokens, 0, now);
	/* A provider that needs a key and has none never gets a request. */
	if (t->prov->key_env_unset != NULL) {
		snprintf(msg, sizeof msg,
		    "no API key for provider %s: set %s "
		    "or api_key_file",
		    t->prov->name, t->prov->key_env_unset);
		call_skip(c, LLMGATE_AUTH, msg);
		return;
	}
	/* A repair is a new question to the model, neither first nor
	 * retry; a move within a pool is the same attempt elsewhere. */
	if (c->repairing || c->moving)
		;
	else if (c->tries == 0)
		admit_first(now);
	else if (!admit_retry(&c->cfg->retry_budget, now)) {
		call_skip(c, LLMGATE_BUDGET_EXHAUSTED,
		    "the machine-wide retry budget is spent");
		return;
	}
	c->repairing = 0;
	c->moving = 0;
	for (;;) {
		/* The breaker and max_wait_ms of the call's config. */
		admission_init(&c->adm, t->state, c->cfg, t->prov->concurrency,
		    tokens, c->client_id, req->priority);
		admission_class(&c->adm, c->klass);
		c->adm.answer = call_admitted;
		c->adm.arg = c;
		v = admit_request(&c->adm, c->deadline_ms, now, &wait);
		if (v == ADMIT_GO) {
			call_attempt(c);
			return;
		}
		if (v == ADMIT_WAIT) {
			log_debug("call %p: queued at %s, about %llu ms",
			    (void *)c, t->name, (unsigned long long)wait);
			return;
		}
		cls = admission_refusal(&c->adm, v, wait, now, "deadline", msg,
		    sizeof msg);
		/* The client's budget is the same at any other target. */
		if (v == ADMIT_BUDGET) {
			c->class_refused = 1;
			break;
		}
		if (t->pool == NULL)
			break;
		refused |= POOL_BIT(t->cur);
		if (call_pool_pick(c, t, tokens, refused, now) != 0)
			break;
	}
	call_skip(c, cls, msg);
}

/*
 * A pool member answered cls: 1 when the next attempt moves to another
 * member at once, spending none of the call's attempts or retry budget.
 * It does when cls is one of the pool's move_on classes, the step has
 * moves left, and another member is ready now, or every member is held
 * (cooling down, over budget, breaker open), so that the call waits in
 * the queue of the one that frees first. A member moved away from that
 * could go again at once (overloaded, no cooldown) is no place to move
 * to: the call retries after a backoff as usual. One whose cooldown has
 * ended since is.
 */
static int
call_pool_move(struct call *c, struct call_target *t, enum llmgate_class cls,
    uint64_t now)
{
	struct pool_member v[POOL_MAX_MEMBERS];
	const struct pool_conf *pc = t->pool;
	struct llmgate_attempt *a = &c->recs[c->nrecs - 1];
	char *note;

	if (((pc->move_on >> cls) & 1) == 0 || t->moves >= pc->max_moves)
		return 0;
	call_pool_views(t, call_tokens_estimate(c->req), now, v);
	/* One the answer did not hold (no cooldown) is avoided this turn;
	 * a cooldown holds one by itself, until it ends. */
	if (v[t->cur].ready)
		t->moved |= POOL_BIT(t->cur);
	if (pool_ready(pc->state, v, t->moved) == 0 &&
	    (pool_ready(pc->state, v, 0) != 0 ||
	        pool_soonest(pc->state, v, 0) < 0))
		return 0;
	t->moves++;
	pc->state->moves[t->cur]++;
	call_stats.moves++;
	c->tries--;
	c->moving = 1;
	xasprintf(&note, "%s%spool %s: moved to another member (%u of %u)",
	    a->message != NULL ? a->message : "",
	    a->message != NULL ? "; " : "", pc->name, t->moves, pc->max_moves);
	free(a->message);
	a->message = note;
	log_debug("call %p: pool %s: %s answered %s, moving", (void *)c,
	    pc->name, t->name, llmgate_class_name(cls));
	return 1;
}

/* Move to the next target; 0 when there is none. */
static int
call_next_target(struct call *c)
{
	if (c->pos + 1 >= c->nchain)
		return 0;
	c->pos++;
	c->tries = 0;
	c->sent = 0;
	c->moving = 0;
	c->repairs = 0;
	c->prev_backoff_ms = 0;
	/* A new target starts from the caller's turns (or a resume). */
	if (!c->resumed)
		repair_turns_reset(&c->extra);
	call_stats.fallbacks++;
	return 1;
}

/*
 * The attempt is over and not retried: on to the next target now when
 * next says so and there is one, else the call ends with cls.
 */
static void
call_move_on(struct call *c, struct reply *r, enum llmgate_class cls, int next,
    uint64_t now)
{
	if (next && c->pos + 1 < c->nchain) {
		call_drop_attempt(c);
		call_next_target(c);
		c->wait_from_ms = now;
		call_arm(c, 0);
		return;
	}
	call_finish(c, r, cls, r->message);
	call_drop_attempt(c);
}

/*
 * What an attempt cost: its reported usage, or for one cut before its
 * usage arrived, an estimate from what it produced and was sent. Sums
 * saturate: a provider's absurd count must not wrap them.
 */
static void
call_bill(struct call *c, const struct attempt *att)
{
	const struct reply *r = &att->reply;
	uint64_t out = call_output_tokens(r);

	/* An error answer that produced nothing is not billed. */
	if (out == 0 && !r->done)
		return;
	c->total_out = rl_tokens_sum(c->total_out, out);
	if (r->input_tokens != 0)
		c->total_in = rl_tokens_sum(c->total_in, r->input_tokens);
	else if (out != 0)
		c->total_in = rl_tokens_sum(c->total_in,
		    call_tokens_of(call_prompt_bytes(att->req)));
}

/* The attempt's reply is the answer; held output is released if it passed. */
static void
call_answer(struct call *c, struct attempt *att, int passed)
{
	struct reply *r = &att->reply;

	c->att = NULL;
	c->chain[c->pos].state->inflight--;
	att->prov->type->stop(att);
	if (passed)
		call_release(c, r);
	call_finish(c, r, LLMGATE_OK, NULL);
	reply_free(r);
	free(att);
}

/* The transport's report: done, retry, repair, resume or fall back. */
static void
call_attempt_done(struct attempt *att)
{
	struct call *c = att->arg;
	struct reply *r = &att->reply;
	struct call_target *t = &c->chain[c->pos];
	enum llmgate_class cls = r->cls, upcls;
	uint64_t now = now_ms(), wait;
	const struct retry_conf *rc = &c->cfg->retry;
	int retry, cut_short = 0, rv;

	char *summary = NULL;
	struct turns fix = { 0 };

	if (cls == LLMGATE_OK && !r->done) {
		/* A reply that ended before its terminal event is cut. */
		cls = LLMGATE_CONNECTION;
		reply_error(r, cls, r->status, "stream ended before its end");
	}
	/* Upstream's own answer, for its breaker and counters. */
	upcls = cls;
	if ((cls == LLMGATE_OK || cls == LLMGATE_CONTENT_FILTER) &&
	    fallback_rejects(call_reject(c), r, &summary)) {
		/* Turned down: reported as such, and on to the next step. */
		cls = LLMGATE_REJECTED;
		free(r->message);
		r->message = summary;
		r->cls = cls;
		summary = NULL;
	}
	if (cls == LLMGATE_OK &&
	    repair_check(&c->rp, att->req, r, &fix, &summary) != 0) {
		cls = LLMGATE_SCHEMA;
		/*
		 * Cut at max_tokens, the reply is unfinished, not wrong: fed
		 * back under the same cap it would be cut again.
		 */
		if (r->finish == LLMGATE_FINISH_LENGTH) {
			cut_short = 1;
			reply_error(r, cls, r->status,
			    "the reply was cut at "
			    "max_tokens (finish reason length) before it was "
			    "complete: %s",
			    summary);
		} else
			reply_error(r, cls, r->status, "%s", summary);
		free(summary);
	}
	call_bill(c, att);
	call_record(c, t->name, cls, r->status, r->message,
	    (uint32_t)(now - att->start_ms),
	    (uint32_t)(att->start_ms - c->wait_from_ms));
	admit_done(&c->adm, cls == LLMGATE_REJECTED ? upcls : cls, &r->rl,
	    rl_tokens_sum(r->input_tokens, r->output_tokens), now);
	if (cls != LLMGATE_OK && cls != LLMGATE_REJECTED)
		t->state->failures++;

	if (cls == LLMGATE_OK) {
		call_answer(c, att, 1);
		return;
	}

	/*
	 * Feed what was wrong back to the model, a few times per target. A
	 * repair is a new turn: it has its own attempts, so a transient
	 * failure while repairing is retried like any other.
	 */
	if (cls == LLMGATE_SCHEMA && !cut_short &&
	    c->repairs < c->cfg->retry.repairs) {
		c->repairs++;
		c->repairing = 1;
		c->tries = 0;
		c->prev_backoff_ms = 0;
		call_stats.repairs++;
		repair_turns_reset(&c->extra);
		c->extra = fix;
		c->resumed = 0;
		call_drop_attempt(c);
		c->wait_from_ms = now;
		call_arm(c, 0);
		return;
	}
	repair_turns_reset(&fix);

	/* A reply turned down is not retried here: the next step, or the end. */
	if (cls == LLMGATE_REJECTED && !c->relayed) {
		call_move_on(c, r, cls, 1, now);
		return;
	}

	/* Text already reached the client: resume, restart or fail. */
	if (c->relayed && (rv = call_cut(c, r)) != 0) {
		if (rv > 0) {
			/* The parts reached max_tokens: that is the reply. */
			r->finish = LLMGATE_FINISH_LENGTH;
			call_answer(c, att, 0);
			return;
		}
		call_move_on(c, r, cls, 0, now);
		return;
	}

	/* At a pool's step, a rate limit moves to another member. */
	if (t->pool != NULL && call_pool_move(c, t, cls, now)) {
		call_drop_attempt(c);
		c->wait_from_ms = now;
		call_arm(c, 0);
		return;
	}

	retry = retry_class_retries(rc, cls) && r->rl.should_retry != 0;
	if (r->rl.should_retry == 1 && cls != LLMGATE_CANCELLED)
		retry = 1;
	if (retry && c->tries < call_attempts(c, t)) {
		wait = retry_backoff_ms(rc, c->tries - 1, c->prev_backoff_ms,
		    call_random());
		c->prev_backoff_ms = wait;
		if (r->rl.retry_after_ms >= 0 &&
		    (uint64_t)r->rl.retry_after_ms > wait)
			wait = (uint64_t)r->rl.retry_after_ms;
		/*
		 * A wait past the deadline is pointless, and a provider's
		 * Retry-After past max_wait_ms is longer than a call waits in
		 * a target's queue: fall back now (the target cools down for
		 * every caller all the same).
		 */
		if ((c->deadline_ms == 0 || now + wait < c->deadline_ms) &&
		    (c->cfg->max_wait_ms == 0 || r->rl.retry_after_ms < 0 ||
		        (uint64_t)r->rl.retry_after_ms <=
		            c->cfg->max_wait_ms)) {
			call_drop_attempt(c);
			call_stats.retries++;
			/* After the backoff, every member may take it again. */
			t->moved = 0;
			c->wait_from_ms = now;
			call_arm(c, wait);
			return;
		}
	}
	call_move_on(c, r, cls, fallback_class(call_fallback_on(c), cls), now);
}

/*
 * A stream failed after output reached the client. resume: ask again with
 * the partial reply as an assistant turn and a request to continue, and
 * relay only the continuation; restart: tell the client to discard what it
 * has (a reset chunk) and start over; fail: -1, the call ends partial.
 * 1: the parts relayed already reach the caller's max_tokens, so the
 * reply ends there, as a reply cut at max_tokens does.
 */
static int
call_cut(struct call *c, const struct reply *r)
{
	const struct llmgate_request *req = c->req;
	struct llmgate_chunk reset;

	if (req->on_cut == LLMGATE_CUT_FAIL)
		return -1;
	repair_turns_reset(&c->extra);
	if (req->on_cut == LLMGATE_CUT_RESTART || c->relayed_text.len == 0) {
		/* Tool-call deltas cannot be resumed, only restarted. */
		memset(&reset, 0, sizeof reset);
		reset.reset = 1;
		reset.tool_index = -1;
		if (c->sink != NULL)
			c->sink->chunk(c->arg, &reset);
		buf_reset(&c->relayed_text);
		c->relayed = 0;
		c->resumed = 0;
		c->resumed_tokens = 0;
		return 0;
	}
	/* What this part delivered, estimated if the cut took its usage. */
	c->resumed_tokens =
	    rl_tokens_sum(c->resumed_tokens, call_output_tokens(r));
	c->resumed = 1;
	if (c->cap != 0 && c->resumed_tokens >= c->cap)
		return 1;
	repair_turn_add(&c->extra, LLMGATE_ROLE_ASSISTANT,
	    c->relayed_text.data);
	repair_turn_add(&c->extra, LLMGATE_ROLE_USER, call_continue_prompt);
	return 0;
}

static void
call_deadline(evutil_socket_t fd, short events, void *arg)
{
	struct call *c = arg;
	struct llmgate_attempt *a;
	char msg[64];

	snprintf(msg, sizeof msg, "deadline of %u ms passed",
	    c->req->timeout_ms);
	if (c->att != NULL) {
		call_bill(c, c->att);
		call_record(c, c->att->target, LLMGATE_DEADLINE, 0, msg,
		    (uint32_t)(now_ms() - c->att->start_ms), 0);
	} else if (c->adm.queued) {
		/* Waiting in its queue, the target was skipped for time. */
		a = call_record(c, c->chain[c->pos].name, LLMGATE_DEADLINE, 0,
		    msg, 0, (uint32_t)(now_ms() - c->wait_from_ms));
		a->skipped = 1;
	}
	call_finish(c, c->att != NULL ? &c->att->reply : NULL, LLMGATE_DEADLINE,
	    msg);
	call_drop_attempt(c);
}

static void
call_free(struct call *c)
{
	size_t i, j;

	call_drop_attempt(c);
	event_free(c->timer);
	if (c->deadline_ev != NULL)
		event_free(c->deadline_ev);
	for (i = 0; i < c->nchain; i++) {
		if (c->chain[i].pool == NULL) {
			target_release(c->chain[i].state);
			free(c->chain[i].name);
			continue;
		}
		for (j = 0; j < c->chain[i].nmem; j++) {
			target_release(c->chain[i].mem[j].state);
			free(c->chain[i].mem[j].name);
		}
		free(c->chain[i].mem);
	}
	free(c->chain);
	for (i = 0; i < c->nrecs; i++) {
		free(c->recs[i].target);
		free(c->recs[i].message);
	}
	free(c->recs);
	free(c->early_msg);
	if (c->kstate != NULL)
		c->kstate->inflight--;
	repair_turns_reset(&c->extra);
	repair_free(&c->rp);
	fallback_free(&c->fb);
	free(c->msgs);
	buf_free(&c->relayed_text);
	msgpack_zone_free(c->zone);
	config_unref(c->cfg);
	free(c);
}

/*
 * One line per finished call: who, what was tried with which outcome,
 * waits, latency and tokens. Never prompt text or keys.
 */
static void
call_log(const struct call *c, const struct llmgate_result *res)
{
	struct buf b = { 0 };
	uint64_t waited = 0;
	size_t i;

	if (!log_enabled(LOG_LVL_INFO))
		return;
	for (i = 0; i < c->nrecs; i++) {
		buf_printf(&b, "%s%s=%s", i != 0 ? " " : "", c->recs[i].target,
		    llmgate_class_name(c->recs[i].cls));
		waited += c->recs[i].waited_ms;
	}
	log_info("call from %s: %s, %zu attempts [%s], waited %llu ms, "
	         "%llu ms, tokens %llu/%llu, billed %llu/%llu%s%s",
	    c->client, llmgate_class_name(res->cls), c->nrecs, buf_cstr(&b),
	    (unsigned long long)waited,
	    (unsigned long long)(now_ms() - c->start_ms),
	    (unsigned long long)res->input_tokens,
	    (unsigned long long)res->output_tokens,
	    (unsigned long long)res->total_input_tokens,
	    (unsigned long long)res->total_output_tokens,
	    res->cls != LLMGATE_OK ? ": " : "",
	    res->cls != LLMGATE_OK ? res->message : "");
	buf_free(&b);
}

/*
 * The one way a call ends. The first caller answers the front; the call
 * itself is freed from the event loop, never inside a transport's stack.
 */
static void
call_finish(struct call *c, struct reply *r, enum llmgate_class cls,
    const char *msg)
{
	struct llmgate_result res;
	struct llmgate_tool_call *tcs = NULL;
	size_t i;

	if (c->finished) {
		if (c->att == NULL && !evtimer_pending(c->timer, NULL))
			call_free(c);
		return;
	}
	c->finished = 1;
	admit_cancel(&c->adm);
	evtimer_del(c->timer);
	if (c->deadline_ev != NULL)
		evtimer_del(c->deadline_ev);
	call_stats.inflight--;
	if (cls != LLMGATE_OK)
		call_stats.failed++;
	server_call_ended();
	metrics_observe_call(c->nchain != 0 ? c->chain[c->pos].name : NULL, cls,
	    now_ms() - c->start_ms);

	memset(&res, 0, sizeof res);
	res.cls = cls;
	/* The result only borrows these strings for the sink's call. */
	res.message = (char *)(uintptr_t)(msg != NULL ?
	        msg :
	        (cls != LLMGATE_OK ? llmgate_class_name(cls) : NULL));
	res.attempts = c->recs;
	res.nattempts = c->nrecs;
	res.total_input_tokens = c->total_in;
	res.total_output_tokens = c->total_out;
	if (cls == LLMGATE_OK && r != NULL) {
		res.text = r->text.data != NULL ? r->text.data : "";
		/* After a resume the reply is everything the client saw. */
		if (c->resumed)
			res.text = c->relayed_text.data;
		res.target = c->chain[c->pos].name;
		res.finish = r->finish;
		if (r->finish == LLMGATE_FINISH_STOP)
			res.stop_sequence = r->stop_sequence;
		res.input_tokens = r->input_tokens;
		res.output_tokens = r->output_tokens;
		if (r->ntools != 0)
			tcs = xcalloc(r->ntools, sizeof *tcs);
		for (i = 0; i < r->ntools; i++) {
			tcs[i].id = r->tools[i].id;
			tcs[i].name = r->tools[i].name;
			tcs[i].arguments =
			    (char *)(uintptr_t)buf_cstr(&r->tools[i].args);
		}
		res.tool_calls = tcs;
		res.ntool_calls = r->ntools;
	} else if (c->relayed) {
		res.partial = 1;
		res.text = c->relayed_text.data;
	}
	/* The client has the text already, as chunks: see call_text_streamed. */
	c->text_streamed = c->req->stream && res.text != NULL &&
	    strlen(res.text) == c->relayed_text.len &&
	    memcmp(res.text, buf_cstr(&c->relayed_text), c->relayed_text.len) ==
	        0;
	call_log(c, &res);
	if (c->sink != NULL)
		c->sink->done(c->arg, &res);
	c->sink = NULL;
	free(tcs);
	/* Free on the next loop turn, out of any transport's stack. */
	call_arm(c, 0);
}

void
call_cancel(struct call *c, const char *why)
{
	if (c->finished)
		return;
	if (c->att != NULL) {
		call_bill(c, c->att);
		call_record(c, c->att->target, LLMGATE_CANCELLED, 0, why,
		    (uint32_t)(now_ms() - c->att->start_ms), 0);
	}
	call_drop_attempt(c);
	call_finish(c, NULL, LLMGATE_CANCELLED, why);
}

void
call_detach(struct call *c)
{
	c->sink = NULL;
	call_cancel(c, "the client went away");
}
