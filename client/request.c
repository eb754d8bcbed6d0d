/*
 * request.c: libllmgate's requests (a call's, an acquire, a report),
 * opaque to callers. The layouts are proto.h's (what the codec encodes and
 * the daemon executes); callers reach them only through these functions,
 * so they can gain fields without breaking programs linked against an
 * older libllmgate. Every string is the request's own copy.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgate.h"
#include "proto.h"

struct llmgate_request *
llmgate_request_new(void)
{
	return xcalloc(1, sizeof(struct llmgate_request));
}

static void
request_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
llmgate_request_free(struct llmgate_request *req)
{
	struct llmgate_message *m;
	size_t i, j;

	if (req == NULL)
		return;
	free(req->system);
	for (i = 0; i < req->nmessages; i++) {
		m = &req->messages[i];
		free(m->content);
		for (j = 0; j < m->ntool_calls; j++) {
			free(m->tool_calls[j].id);
			free(m->tool_calls[j].name);
			free(m->tool_calls[j].arguments);
		}
		free(m->tool_calls);
		free(m->tool_call_id);
		free(m->name);
	}
	free(req->messages);
	for (i = 0; i < req->ntools; i++) {
		free(req->tools[i].name);
		free(req->tools[i].description);
		free(req->tools[i].parameters);
	}
	free(req->tools);
	free(req->tool_name);
	free(req->schema);
	request_strv_free(req->targets, req->ntargets);
	free(req->route);
	request_strv_free(req->stop, req->nstop);
	request_strv_free(req->fallback_on, req->nfallback_on);
	request_strv_free(req->reject, req->nreject);
	free(req);
}

/* *slot = a copy of s (NULL stays NULL). */
static void
request_set_str(char **slot, const char *s)
{
	free(*slot);
	*slot = s != NULL ? xstrdup(s) : NULL;
}

static int
request_strv_add(char ***v, size_t *n, const char *s)
{
	if (s == NULL || *s == '\0')
		return -1;
	*v = xreallocarray(*v, *n + 1, sizeof **v);
	(*v)[(*n)++] = xstrdup(s);
	return 0;
}

int
llmgate_request_set_system(struct llmgate_request *req, const char *text)
{
	if (req == NULL || text == NULL)
		return -1;
	request_set_str(&req->system, text);
	return 0;
}

int
llmgate_request_add_message(struct llmgate_request *req, enum llmgate_role role,
    const char *content)
{
	struct llmgate_message *m;

	if (req == NULL || (int)role < 0 || role >= LLMGATE_ROLE_MAX ||
	    (content == NULL && role != LLMGATE_ROLE_ASSISTANT) ||
	    req->nmessages >= PROTO_MAX_ITEMS)
		return -1;
	req->messages = xreallocarray(req->messages, req->nmessages + 1,
	    sizeof *req->messages);
	m = &req->messages[req->nmessages];
	memset(m, 0, sizeof *m);
	m->role = role;
	request_set_str(&m->content, content);
	return (int)req->nmessages++;
}

int
llmgate_request_add_tool_call(struct llmgate_request *req, size_t msg,
    const char *id, const char *name, const char *arguments_json)
{
	struct llmgate_message *m;
	struct llmgate_tool_call *tc;

	if (req == NULL || msg >= req->nmessages || name == NULL)
		return -1;
	m = &req->messages[msg];
	if (m->role != LLMGATE_ROLE_ASSISTANT)
		return -1;
	m->tool_calls = xreallocarray(m->tool_calls, m->ntool_calls + 1,
	    sizeof *m->tool_calls);
	tc = &m->tool_calls[m->ntool_calls++];
	memset(tc, 0, sizeof *tc);
	request_set_str(&tc->id, id);
	request_set_str(&tc->name, name);
	request_set_str(&tc->arguments, arguments_json);
	return 0;
}

int
llmgate_request_set_tool_result(struct llmgate_request *req, size_t msg,
    const char *tool_call_id, const char *name)
{
	struct llmgate_message *m;

	if (req == NULL || msg >= req->nmessages)
		return -1;
	m = &req->messages[msg];
	if (m->role != LLMGATE_ROLE_TOOL)
		return -1;
	request_set_str(&m->tool_call_id, tool_call_id);
	request_set_str(&m->name, name);
	return 0;
}

int
llmgate_request_add_tool(struct llmgate_request *req, const char *name,
    const char *description, const char *parameters_json)
{
	struct llmgate_tool *t;

	if (req == NULL || name == NULL || *name == '\0' ||
	    req->ntools >= PROTO_MAX_ITEMS)
		return -1;
	req->tools =
	    xreallocarray(req->tools, req->ntools + 1, sizeof *req->tools);
	t = &req->tools[req->ntools++];
	memset(t, 0, sizeof *t);
	request_set_str(&t->name, name);
	request_set_str(&t->description, description);
	request_set_str(&t->parameters, parameters_json);
	return 0;
}

int
llmgate_request_set_tool_choice(struct llmgate_request *req,
    enum llmgate_tool_choice choice, const char *function)
{
	if (req == NULL || (int)choice < 0 || choice >= LLMGATE_TOOLS_MAX ||
	    (function != NULL &&
	        (*function == '\0' || choice != LLMGATE_TOOLS_REQUIRED)))
		return -1;
	req->tool_choice = choice;
	request_set_str(&req->tool_name, function);
	return 0;
}

int
llmgate_request_set_schema(struct llmgate_request *req, const char *schema_json)
{
	if (req == NULL || schema_json == NULL)
		return -1;
	request_set_str(&req->schema, schema_json);
	return 0;
}

int
llmgate_request_add_target(struct llmgate_request *req, const char *target)
{
	if (req == NULL || req->ntargets >= PROTO_MAX_ITEMS)
		return -1;
	return request_strv_add(&req->targets, &req->ntargets, target);
}

int
llmgate_request_set_route(struct llmgate_request *req, const char *name)
{
	if (req == NULL || name == NULL || *name == '\0')
		return -1;
	request_set_str(&req->route, name);
	return 0;
}

int
llmgate_request_set_max_tokens(struct llmgate_request *req, uint32_t n)
{
	if (req == NULL)
		return -1;
	req->max_tokens = n;
	req->has |= LLMGATE_HAS_MAX_TOKENS;
	return 0;
}

int
llmgate_request_set_temperature(struct llmgate_request *req, double x)
{
	if (req == NULL || x != x)
		return -1;
	req->temperature = x;
	req->has |= LLMGATE_HAS_TEMPERATURE;
	return 0;
}

int
llmgate_request_set_top_p(struct llmgate_request *req, double x)
{
	if (req == NULL || x != x)
		return -1;
	req->top_p = x;
	req->has |= LLMGATE_HAS_TOP_P;
	return 0;
}

int
llmgate_request_set_seed(struct llmgate_request *req, int64_t seed)
{
	if (req == NULL)
		return -1;
	req->seed = seed;
	req->has |= LLMGATE_HAS_SEED;
	return 0;
}

int
llmgate_request_add_stop(struct llmgate_request *req, const char *stop)
{
	if (req == NULL || req->nstop >= PROTO_MAX_ITEMS)
		return -1;
	return request_strv_add(&req->stop, &req->nstop, stop);
}

int
llmgate_request_set_attempts(struct llmgate_request *req, uint32_t n)
{
	if (req == NULL)
		return -1;
	req->attempts = n;
	return 0;
}

int
llmgate_request_set_timeout_ms(struct llmgate_request *req, uint32_t ms)
{
	if (req == NULL)
		return -1;
	req->timeout_ms = ms;
	return 0;
}

int
llmgate_request_set_priority(struct llmgate_request *req,
    enum llmgate_priority p)
{
	if (req == NULL || (int)p < 0 || p >= LLMGATE_PRIO_MAX)
		return -1;
	req->priority = p;
	return 0;
}

int
llmgate_request_set_on_cut(struct llmgate_request *req,
    enum llmgate_on_cut on_cut)
{
	if (req == NULL || (int)on_cut < 0 || on_cut >= LLMGATE_CUT_MAX)
		return -1;
	req->on_cut = on_cut;
	return 0;
}

int
llmgate_request_set_stream(struct llmgate_request *req, int on)
{
	if (req == NULL)
		return -1;
	req->stream = on != 0;
	return 0;
}

int
llmgate_request_add_fallback_on(struct llmgate_request *req, const char *cls)
{
	if (req == NULL || cls == NULL || req->nfallback_on >= PROTO_MAX_ITEMS)
		return -1;
	return request_strv_add(&req->fallback_on, &req->nfallback_on, cls);
}

int
llmgate_request_add_reject(struct llmgate_request *req, const char *cond)
{
	if (req == NULL || cond == NULL || req->nreject >= PROTO_MAX_ITEMS)
		return -1;
	return request_strv_add(&req->reject, &req->nreject, cond);
}

struct llmgate_acquire *
llmgate_acquire_new(const char *target)
{
	struct llmgate_acquire *acq;

	if (target == NULL || *target == '\0')
		return NULL;
	acq = xcalloc(1, sizeof *acq);
	acq->target = xstrdup(target);
	return acq;
}

int
llmgate_acquire_set_tokens(struct llmgate_acquire *acq, uint32_t tokens)
{
	if (acq == NULL)
		return -1;
	acq->tokens = tokens;
	return 0;
}

int
llmgate_acquire_set_timeout_ms(struct llmgate_acquire *acq, uint32_t ms)
{
	if (acq == NULL)
		return -1;
	acq->timeout_ms = ms;
	return 0;
}

int
llmgate_acquire_set_priority(struct llmgate_acquire *acq,
    enum llmgate_priority p)
{
	if (acq == NULL || (int)p < 0 || p >= LLMGATE_PRIO_MAX)
		return -1;
	acq->priority = p;
	return 0;
}

void
llmgate_acquire_free(struct llmgate_acquire *acq)
{
	if (acq == NULL)
		return;
	free((char *)(uintptr_t)acq->target);
	free(acq);
}

struct llmgate_report *
llmgate_report_new(uint64_t lease, uint32_t status)
{
	struct llmgate_report *rep = xcalloc(1, sizeof *rep);

	rep->lease = lease;
	rep->status = status;
	rep->retry_after_s = -1;
	return rep;
}

int
llmgate_report_set_lease(struct llmgate_report *rep, uint64_t lease)
{
	if (rep == NULL)
		return -1;
	rep->lease = lease;
	return 0;
}

int
llmgate_report_set_status(struct llmgate_report *rep, uint32_t status)
{
	if (rep == NULL)
		return -1;
	rep->status = status;
	return 0;
}

int
llmgate_report_set_retry_after(struct llmgate_report *rep, double seconds)
{
	if (rep == NULL || !(seconds >= 0))
		return -1;
	rep->retry_after_s = seconds;
	return 0;
}

int
llmgate_report_set_tokens(struct llmgate_report *rep, uint64_t input,
    uint64_t output)
{
	if (rep == NULL)
		return -1;
	rep->input_tokens = input;
	rep->output_tokens = output;
	return 0;
}

void
llmgate_report_free(struct llmgate_report *rep)
{
	free(rep);
}

void
llmgate_lease_free(struct llmgate_lease *lease)
{
	free(lease);
}
