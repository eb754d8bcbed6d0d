/*
 * names.c: the wire names of llmgate's enums, as designated-initializer
 * tables, and their reverse lookups.
 */
#include <string.h>

#include "proto.h"

static const char *class_names[LLMGATE_CLASS_MAX] = {
	[LLMGATE_OK] = "ok",
	[LLMGATE_RATE_LIMITED] = "rate_limited",
	[LLMGATE_OVERLOADED] = "overloaded",
	[LLMGATE_SERVER_ERROR] = "server_error",
	[LLMGATE_TIMEOUT] = "timeout",
	[LLMGATE_CONNECTION] = "connection",
	[LLMGATE_PARSE_ERROR] = "parse_error",
	[LLMGATE_QUOTA_EXHAUSTED] = "quota_exhausted",
	[LLMGATE_AUTH] = "auth",
	[LLMGATE_PERMISSION] = "permission",
	[LLMGATE_NOT_FOUND] = "not_found",
	[LLMGATE_CONTEXT_LENGTH] = "context_length",
	[LLMGATE_CONTENT_FILTER] = "content_filter",
	[LLMGATE_BAD_REQUEST] = "bad_request",
	[LLMGATE_SCHEMA] = "schema",
	[LLMGATE_CIRCUIT_OPEN] = "circuit_open",
	[LLMGATE_BUDGET_EXHAUSTED] = "budget_exhausted",
	[LLMGATE_DEADLINE] = "deadline",
	[LLMGATE_CANCELLED] = "cancelled",
	[LLMGATE_INVALID_REQUEST] = "invalid_request",
	[LLMGATE_INTERNAL] = "internal",
	[LLMGATE_REJECTED] = "rejected",
};

static const char *finish_names[LLMGATE_FINISH_MAX] = {
	[LLMGATE_FINISH_NONE] = "",
	[LLMGATE_FINISH_STOP] = "stop",
	[LLMGATE_FINISH_LENGTH] = "length",
	[LLMGATE_FINISH_TOOL_CALLS] = "tool_calls",
	[LLMGATE_FINISH_CONTENT_FILTER] = "content_filter",
	[LLMGATE_FINISH_OTHER] = "other",
};

static const char *role_names[LLMGATE_ROLE_MAX] = {
	[LLMGATE_ROLE_USER] = "user",
	[LLMGATE_ROLE_ASSISTANT] = "assistant",
	[LLMGATE_ROLE_TOOL] = "tool",
};

static const char *priority_names[LLMGATE_PRIO_MAX] = {
	[LLMGATE_PRIO_NORMAL] = "normal",
	[LLMGATE_PRIO_HIGH] = "high",
	[LLMGATE_PRIO_LOW] = "low",
};

static const char *on_cut_names[LLMGATE_CUT_MAX] = {
	[LLMGATE_CUT_RESUME] = "resume",
	[LLMGATE_CUT_RESTART] = "restart",
	[LLMGATE_CUT_FAIL] = "fail",
};

static const char *tool_choice_names[LLMGATE_TOOLS_MAX] = {
	[LLMGATE_TOOLS_AUTO] = "auto",
	[LLMGATE_TOOLS_NONE] = "none",
	[LLMGATE_TOOLS_REQUIRED] = "required",
};

static const char *type_names[PROTO_TYPE_MAX] = {
	[PROTO_UNKNOWN] = "unknown",
	[PROTO_HELLO] = "hello",
	[PROTO_CALL] = "call",
	[PROTO_CHUNK] = "chunk",
	[PROTO_RESULT] = "result",
	[PROTO_ERROR] = "error",
	[PROTO_CANCEL] = "cancel",
	[PROTO_STATUS] = "status",
	[PROTO_PING] = "ping",
	[PROTO_PONG] = "pong",
	[PROTO_RELOAD] = "reload",
	[PROTO_METRICS] = "metrics",
	[PROTO_ACQUIRE] = "acquire",
	[PROTO_LEASE] = "lease",
	[PROTO_REPORT] = "report",
	[PROTO_OK] = "ok",
};

static int
name_find(const char **table, int n, const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (table[i] != NULL && *table[i] != '\0' &&
		    strcmp(table[i], name) == 0)
			return i;
	}
	return -1;
}

#define NAME_FUNCS(fn, table, max) \
	const char *llmgate_##fn##_name(int v) \
	{ \
		return (v >= 0 && v < (max)) ? table[v] : NULL; \
	} \
	int llmgate_##fn##_from_name(const char *name) \
	{ \
		return name_find(table, (max), name); \
	}

NAME_FUNCS(class, class_names, LLMGATE_CLASS_MAX)
NAME_FUNCS(finish, finish_names, LLMGATE_FINISH_MAX)
NAME_FUNCS(role, role_names, LLMGATE_ROLE_MAX)
NAME_FUNCS(priority, priority_names, LLMGATE_PRIO_MAX)
NAME_FUNCS(on_cut, on_cut_names, LLMGATE_CUT_MAX)
NAME_FUNCS(tool_choice, tool_choice_names, LLMGATE_TOOLS_MAX)

const char *
proto_type_name(enum proto_type t)
{
	return ((int)t >= 0 && t < PROTO_TYPE_MAX) ? type_names[t] : "unknown";
}

enum proto_type
proto_type_from_name(const char *name)
{
	int i = name_find(type_names, PROTO_TYPE_MAX, name);

	return i <= 0 ? PROTO_UNKNOWN : (enum proto_type)i;
}
