/*
 * repair.c: what a reply must pass before the caller gets it, and the turns
 * that feed a failure back to the model. A reply must match the caller's
 * JSON Schema (structured output) and every tool call's arguments must
 * match that tool's parameter schema; if not, the bad reply goes back as an
 * assistant turn followed by the errors (a user turn, or one tool result
 * per tool call), and the model is asked again. The turns are also how a
 * cut stream is resumed, so they live here with their owned strings.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

#define REPAIR_MAX_ERRORS 10

static const char repair_schema_prompt[] =
    "Your reply does not match the "
    "required JSON Schema:\n%s\nReply again with only the corrected JSON "
    "document, nothing else.";
static const char repair_tool_prompt[] =
    "Invalid arguments for tool "
    "'%s':\n%s\nCall the tool again with corrected arguments.";
static const char repair_tool_skipped[] =
    "Not run: another tool call in "
    "this turn had invalid arguments. Call it again if still needed.";

int
repair_init(struct repair *rp, const struct llmgate_request *req, char **cause)
{
	char *why = NULL;
	size_t i;

	memset(rp, 0, sizeof *rp);
	if (req->schema != NULL) {
		rp->schema = schema_compile(req->schema, &why);
		if (rp->schema == NULL) {
			xasprintf(cause, "schema: %s", why);
			free(why);
			return -1;
		}
	}
	if (req->ntools == 0)
		return 0;
	rp->tools = xcalloc(req->ntools, sizeof *rp->tools);
	rp->ntools = req->ntools;
	for (i = 0; i < req->ntools; i++) {
		if (req->tools[i].name == NULL) {
			xasprintf(cause, "tool %zu has no name", i);
			return -1;
		}
		if (req->tools[i].parameters == NULL)
			continue;
		rp->tools[i] = schema_compile(req->tools[i].parameters, &why);
		if (rp->tools[i] == NULL) {
			xasprintf(cause, "tool '%s': parameters: %s",
			    req->tools[i].name, why);
			free(why);
			return -1;
		}
	}
	return 0;
}

void
repair_free(struct repair *rp)
{
	size_t i;

	if (rp->schema != NULL)
		schema_free(rp->schema);
	for (i = 0; i < rp->ntools; i++) {
		if (rp->tools[i] != NULL)
			schema_free(rp->tools[i]);
	}
	free(rp->tools);
	memset(rp, 0, sizeof *rp);
}

static char *
repair_own(struct turns *t, const char *s)
{
	char *p;

	if (s == NULL)
		return NULL;
	p = xstrdup(s);
	t->owned = xreallocarray(t->owned, t->nowned + 1, sizeof *t->owned);
	t->owned[t->nowned++] = p;
	return p;
}

struct llmgate_message *
repair_turn_add(struct turns *t, enum llmgate_role role, const char *content)
{
	struct llmgate_message *m;

	t->m = xreallocarray(t->m, t->n + 1, sizeof *t->m);
	m = &t->m[t->n++];
	memset(m, 0, sizeof *m);
	m->role = role;
	m->content = repair_own(t, content);
	return m;
}

void
repair_turns_reset(struct turns *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->m[i].tool_calls);
	for (i = 0; i < t->nowned; i++)
		free(t->owned[i]);
	free(t->m);
	free(t->owned);
	memset(t, 0, sizeof *t);
}

static const struct schema *
repair_tool_schema(const struct repair *rp, const struct llmgate_request *req,
    const char *name, int *known)
{
	size_t i;

	*known = 0;
	for (i = 0; name != NULL && i < req->ntools; i++) {
		if (strcmp(req->tools[i].name, name) == 0) {
			*known = 1;
			return rp->tools[i];
		}
	}
	return NULL;
}

/* Tool calls: each one's arguments against its tool; the turns if not. */
static int
repair_check_tools(const struct repair *rp, const struct llmgate_request *req,
    const struct reply *r, struct turns *t, struct buf *summary)
{
	struct llmgate_message *m;
	const struct schema *s;
	char **errs, *e, id[32], *msg;
	size_t i, ai, bad = 0;
	int known;

	errs = xcalloc(r->ntools, sizeof *errs);
	for (i = 0; i < r->ntools; i++) {
		s = repair_tool_schema(rp, req, r->tools[i].name, &known);
		e = NULL;
		if (!known)
			xasprintf(&e, "$: unknown tool '%s'",
			    r->tools[i].name != NULL ? r->tools[i].name : "");
		else if (s != NULL &&
		    schema_validate_text(s, buf_cstr(&r->tools[i].args), &e,
		        REPAIR_MAX_ERRORS) == 0) {
			free(e);
			e = NULL;
		}
		if (e != NULL) {
			errs[i] = e;
			bad++;
			buf_printf(summary, "%stool %s: %s",
			    bad > 1 ? "; " : "",
			    r->tools[i].name != NULL ? r->tools[i].name : "?",
			    e);
		}
	}
	if (bad != 0) {
		m = repair_turn_add(t, LLMGATE_ROLE_ASSISTANT,
		    r->text.len != 0 ? r->text.data : NULL);
		m->tool_calls = xcalloc(r->ntools, sizeof *m->tool_calls);
		m->ntool_calls = r->ntools;
		for (i = 0; i < r->ntools; i++) {
			snprintf(id, sizeof id, "call_%zu", i);
			m->tool_calls[i].id = repair_own(t,
			    r->tools[i].id != NULL ? r->tools[i].id : id);
			m->tool_calls[i].name = repair_own(t, r->tools[i].name);
			m->tool_calls[i].arguments = repair_own(t,
			    r->tools[i].args.len != 0 ? r->tools[i].args.data :
			                                "{}");
		}
		ai = t->n - 1;
		for (i = 0; i < r->ntools; i++) {
			if (errs[i] != NULL)
				xasprintf(&msg, repair_tool_prompt,
				    r->tools[i].name != NULL ?
				        r->tools[i].name :
				        "",
				    errs[i]);
			else
				msg = xstrdup(repair_tool_skipped);
			/* Results answer the assistant turn's calls, in order. */
			m = repair_turn_add(t, LLMGATE_ROLE_TOOL, msg);
			m->tool_call_id = t->m[ai].tool_calls[i].id;
			m->name = t->m[ai].tool_calls[i].name;
			free(msg);
		}
	}
	for (i = 0; i < r->ntools; i++)
		free(errs[i]);
	free(errs);
	return bad != 0 ? -1 : 0;
}

/*
 * Check a reply. 0 when it passes. Otherwise -1: t holds the turns that
 * tell the model what was wrong, and *summary the errors for the attempt
 * report (free()).
 */
int
repair_check(const struct repair *rp, const struct llmgate_request *req,
    const struct reply *r, struct turns *t, char **summary)
{
	struct buf b = { 0 };
	char *errs = NULL, *msg;
	int rc = 0;

	*summary = NULL;
	if (r->ntools != 0 && req->ntools != 0) {
		rc = repair_check_tools(rp, req, r, t, &b);
	} else if (rp->schema != NULL && r->ntools == 0) {
		if (schema_validate_text(rp->schema, buf_cstr(&r->text), &errs,
		        REPAIR_MAX_ERRORS) != 0) {
			buf_addstr(&b, errs);
			repair_turn_add(t, LLMGATE_ROLE_ASSISTANT,
			    r->text.len != 0 ? r->text.data : "");
			xasprintf(&msg, repair_schema_prompt, errs);
			repair_turn_add(t, LLMGATE_ROLE_USER, msg);
			free(msg);
			rc = -1;
		}
		free(errs);
	}
	if (rc != 0) {
		/* One line for the attempt report. */
		while (b.len > 0 && b.data[b.len - 1] == '\n')
			b.data[--b.len] = '\0';
		for (msg = b.data; msg != NULL && *msg != '\0'; msg++) {
			if (*msg == '\n')
				*msg = ';';
		}
		*summary = b.data != NULL ? b.data : xstrdup("invalid reply");
	} else
		buf_free(&b);
	return rc;
}
