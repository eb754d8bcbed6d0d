/*
 * llmgate.h: the C client library for llmgated.
 *
 * Results, attempts and error classes are the ones the wire codec
 * serialises and the daemon reports, so a caller sees exactly what the
 * daemon did. A request is opaque (llmgate_request_new() and setters), so
 * the library can grow without an ABI break. libllmgate.so.1: .so.0
 * exposed the request's layout.
 */
#ifndef LLMGATE_H
#define LLMGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLMGATE_VERSION "0.1.0"

/* One taxonomy across providers (proto/PROTOCOL.md). Order is ABI. */
enum llmgate_class {
	LLMGATE_OK = 0,
	LLMGATE_RATE_LIMITED,
	LLMGATE_OVERLOADED,
	LLMGATE_SERVER_ERROR,
	LLMGATE_TIMEOUT,
	LLMGATE_CONNECTION,
	LLMGATE_PARSE_ERROR,
	LLMGATE_QUOTA_EXHAUSTED,
	LLMGATE_AUTH,
	LLMGATE_PERMISSION,
	LLMGATE_NOT_FOUND,
	LLMGATE_CONTEXT_LENGTH,
	LLMGATE_CONTENT_FILTER,
	LLMGATE_BAD_REQUEST,
	LLMGATE_SCHEMA,
	LLMGATE_CIRCUIT_OPEN,
	LLMGATE_BUDGET_EXHAUSTED, /* retry budget, or the client class's tokens */
	LLMGATE_DEADLINE,
	LLMGATE_CANCELLED,
	LLMGATE_INVALID_REQUEST,
	LLMGATE_INTERNAL,
	LLMGATE_REJECTED, /* a reply turned down by a reply condition */
	LLMGATE_CLASS_MAX
};

enum llmgate_finish {
	LLMGATE_FINISH_NONE = 0,
	LLMGATE_FINISH_STOP,
	LLMGATE_FINISH_LENGTH,
	LLMGATE_FINISH_TOOL_CALLS,
	LLMGATE_FINISH_CONTENT_FILTER,
	LLMGATE_FINISH_OTHER,
	LLMGATE_FINISH_MAX
};

enum llmgate_role {
	LLMGATE_ROLE_USER = 0,
	LLMGATE_ROLE_ASSISTANT,
	LLMGATE_ROLE_TOOL,
	LLMGATE_ROLE_MAX
};

enum llmgate_priority {
	LLMGATE_PRIO_NORMAL = 0,
	LLMGATE_PRIO_HIGH,
	LLMGATE_PRIO_LOW,
	LLMGATE_PRIO_MAX
};

enum llmgate_on_cut {
	LLMGATE_CUT_RESUME = 0,
	LLMGATE_CUT_RESTART,
	LLMGATE_CUT_FAIL,
	LLMGATE_CUT_MAX
};

/* Whether the model must call a tool: its choice (the default), never,
 * or some tool (or the one named with llmgate_request_set_tool_choice). */
enum llmgate_tool_choice {
	LLMGATE_TOOLS_AUTO = 0,
	LLMGATE_TOOLS_NONE,
	LLMGATE_TOOLS_REQUIRED,
	LLMGATE_TOOLS_MAX
};

/* Names as they appear on the wire and in JSON; NULL when out of range. */
const char *llmgate_class_name(int);
const char *llmgate_finish_name(int);
const char *llmgate_role_name(int);
const char *llmgate_priority_name(int);
const char *llmgate_on_cut_name(int);
const char *llmgate_tool_choice_name(int);
/* Reverse lookups; -1 when the name is unknown. */
int llmgate_class_from_name(const char *);
int llmgate_finish_from_name(const char *);
int llmgate_role_from_name(const char *);
int llmgate_priority_from_name(const char *);
int llmgate_on_cut_from_name(const char *);
int llmgate_tool_choice_from_name(const char *);

struct llmgate_tool_call {
	char *id;
	char *name;
	char *arguments; /* JSON text */
};

/*
 * A request is opaque: built with llmgate_request_new() and the setters
 * below, so that new settings can be added without breaking programs
 * built against an older libllmgate. Strings are copied. Setters return 0,
 * or -1 when an argument is invalid (NULL text, a role, priority or
 * on_cut out of range, a message index that does not exist).
 */
struct llmgate_request;

struct llmgate_request *llmgate_request_new(void);
void llmgate_request_free(struct llmgate_request *);

/* The system prompt (replaces an earlier one). */
int llmgate_request_set_system(struct llmgate_request *, const char *text);
/*
 * Append a turn; returns its index (>= 0) or -1. content may be NULL only
 * for an assistant turn that carries tool calls.
 */
int llmgate_request_add_message(struct llmgate_request *,
    enum llmgate_role role, const char *content);
/* A tool call made by the assistant turn at index msg. */
int llmgate_request_add_tool_call(struct llmgate_request *, size_t msg,
    const char *id, const char *name, const char *arguments_json);
/* For a tool turn at index msg: the call it answers and the tool's name. */
int llmgate_request_set_tool_result(struct llmgate_request *, size_t msg,
    const char *tool_call_id, const char *name);
/* A tool the model may call; parameters is JSON Schema text. */
int llmgate_request_add_tool(struct llmgate_request *, const char *name,
    const char *description, const char *parameters_json);
/* JSON Schema text the reply must satisfy (structured output). */
int llmgate_request_set_schema(struct llmgate_request *,
    const char *schema_json);

/* The fallback chain, "provider/model", in order; or a named route. */
int llmgate_request_add_target(struct llmgate_request *, const char *);
int llmgate_request_set_route(struct llmgate_request *, const char *name);

int llmgate_request_set_max_tokens(struct llmgate_request *, uint32_t);
int llmgate_request_set_temperature(struct llmgate_request *, double);
int llmgate_request_set_top_p(struct llmgate_request *, double);
int llmgate_request_set_seed(struct llmgate_request *, int64_t);
int llmgate_request_add_stop(struct llmgate_request *, const char *);
/*
 * Tool choice: LLMGATE_TOOLS_AUTO (the default), _NONE, or _REQUIRED; with
 * a function name (only with _REQUIRED), the model must call that tool.
 * The daemon refuses a choice other than auto without tools, and a name
 * that is not one of the request's tools.
 */
int llmgate_request_set_tool_choice(struct llmgate_request *,
    enum llmgate_tool_choice, const char *function);

/* Attempts per target, the first included (0: the daemon's default). */
int llmgate_request_set_attempts(struct llmgate_request *, uint32_t);
/* A deadline for the whole call, waits included (0: none). */
int llmgate_request_set_timeout_ms(struct llmgate_request *, uint32_t);
int llmgate_request_set_priority(struct llmgate_request *,
    enum llmgate_priority);
int llmgate_request_set_on_cut(struct llmgate_request *, enum llmgate_on_cut);
/* Ask for the reply streamed (chunks to llmgate_call's on_chunk). */
int llmgate_request_set_stream(struct llmgate_request *, int on);
/*
 * When to move on to the next target. add_fallback_on: an error class
 * whose failure does (by name, as llmgate_class_name(); none added: the
 * daemon's default set; any other class then ends the call). add_reject:
 * a reply condition that turns a reply down and moves on, reported as an
 * attempt of class LLMGATE_REJECTED: "length", "content_filter",
 * "refusal", "empty" or "match:PATTERN" (PROTOCOL.md). The daemon checks
 * both: an unknown one fails the call with LLMGATE_INVALID_REQUEST.
 */
int llmgate_request_add_fallback_on(struct llmgate_request *, const char *cls);
int llmgate_request_add_reject(struct llmgate_request *, const char *condition);

struct llmgate_attempt {
	char *target;
	enum llmgate_class cls;
	uint32_t status; /* HTTP status, 0 when none */
	char *message;
	uint32_t ms;        /* duration of the attempt */
	uint32_t waited_ms; /* wait before it */
	int skipped;        /* target skipped without an upstream attempt */
};

struct llmgate_result {
	enum llmgate_class cls; /* LLMGATE_OK on success */
	char *message;          /* error message when cls != OK */
	int partial; /* output reached the client before the failure */

	char *text;
	char *target; /* the target that answered */
	enum llmgate_finish finish;
	uint64_t input_tokens; /* usage of the reply that answered */
	uint64_t output_tokens;
	/* Usage billed for the whole call: every attempt, repair and
	 * resumed part, failed ones included (estimated for a stream cut
	 * before its usage arrived). Errors carry it too. */
	uint64_t total_input_tokens;
	uint64_t total_output_tokens;
	struct llmgate_tool_call *tool_calls;
	size_t ntool_calls;
	struct llmgate_attempt *attempts;
	size_t nattempts;

	void *priv; /* owned storage; llmgate_result_free() */
	/* With finish stop: the stop sequence that ended the reply, when the
	 * provider said which (Anthropic does; OpenAI and Gemini do not);
	 * else NULL. Last, as the library alone allocates results. */
	char *stop_sequence;
};

/*
 * A streamed piece of the reply. reset: discard what was printed so far
 * (on_cut restart). A tool-call delta has tool_index >= 0.
 */
struct llmgate_chunk {
	const char *text;
	size_t len;
	int reset;
	int tool_index;
	const char *tool_id;
	const char *tool_name;
	const char *tool_args;
};

/*
 * A granted lease. Only the library allocates one (fields may be added at
 * the end); callers read it.
 */
struct llmgate_lease {
	uint64_t id;
	char target[256];
	uint32_t ttl_ms;
};

/*
 * What an advisory lease asks for, and the outcome reported for it:
 * opaque, like a request, built with these functions (0, or -1 for an
 * invalid argument). llmgate_acquire_new() returns NULL for a NULL or
 * empty target.
 */
struct llmgate_acquire;
struct llmgate_acquire *llmgate_acquire_new(const char *target);
int llmgate_acquire_set_tokens(struct llmgate_acquire *, uint32_t tokens);
int llmgate_acquire_set_timeout_ms(struct llmgate_acquire *, uint32_t ms);
int llmgate_acquire_set_priority(struct llmgate_acquire *,
    enum llmgate_priority);
void llmgate_acquire_free(struct llmgate_acquire *);

struct llmgate_report;
/* status: the provider's HTTP status for the leased request. */
struct llmgate_report *llmgate_report_new(uint64_t lease, uint32_t status);
int llmgate_report_set_lease(struct llmgate_report *, uint64_t lease);
int llmgate_report_set_status(struct llmgate_report *, uint32_t status);
/* The provider's Retry-After, in seconds (>= 0). */
int llmgate_report_set_retry_after(struct llmgate_report *, double seconds);
/* The usage the provider reported. */
int llmgate_report_set_tokens(struct llmgate_report *, uint64_t input,
    uint64_t output);
void llmgate_report_free(struct llmgate_report *);

struct llmgate;

/*
 * The socket path: explicit if not NULL, else $LLMGATE_SOCKET, else the
 * default fixed at build time (/run/llmgate/llmgate.sock). The daemon
 * follows the same rule (its config's `socket` comes before the default);
 * the library never reads the daemon's config. Writes into buf and
 * returns it; NULL when it does not fit.
 */
const char *llmgate_socket_path(const char *explicit_path, char *buf,
    size_t len);

/*
 * Connect and handshake (path NULL: llmgate_socket_path(NULL)). NULL on
 * failure with a reason in err.
 */
struct llmgate *llmgate_connect(const char *path, const char *client_name,
    char *err, size_t errlen);
/*
 * Pending calls are dropped without on_done. Safe from inside a callback:
 * the connection is then freed when the library unwinds.
 */
void llmgate_close(struct llmgate *);
/* The last transport error (daemon gone, protocol error). */
const char *llmgate_error(struct llmgate *);
/* 1 while the connection is usable; 0 once it was lost. */
int llmgate_connected(struct llmgate *);

/*
 * Blocking call. Returns 0 and a result (cls tells success or the call's
 * error class), or -1 when the daemon could not be reached or went away.
 * on_chunk, if set, gets each streamed piece (set req->stream).
 */
typedef void llmgate_chunk_cb(const struct llmgate_chunk *, void *arg);
typedef void llmgate_done_cb(struct llmgate_result *, void *arg);

int llmgate_call(struct llmgate *, const struct llmgate_request *,
    llmgate_chunk_cb *on_chunk, void *arg, struct llmgate_result **out);
void llmgate_result_free(struct llmgate_result *);

/*
 * Driving the connection from the caller's own event loop: submit calls,
 * wait for llmgate_fd() to be readable (and writable while
 * llmgate_want_write()), then llmgate_process(). Callbacks run from inside
 * llmgate_process(); on_done owns the result it is given. submit returns
 * the call id (> 0), or 0 on failure. The request is encoded at once: it
 * may be changed or freed when submit returns (acquires and reports too).
 */
uint32_t llmgate_submit(struct llmgate *, const struct llmgate_request *,
    llmgate_chunk_cb *on_chunk, llmgate_done_cb *on_done, void *arg);
int llmgate_cancel(struct llmgate *, uint32_t id);
int llmgate_fd(struct llmgate *);
int llmgate_want_write(struct llmgate *);
/* Returns the number of calls still pending, or -1 if the connection died
 * (pending calls then get on_done with class connection). */
int llmgate_process(struct llmgate *);

/* Small blocking operations. 0 on success, -1 with llmgate_error(). */
int llmgate_ping(struct llmgate *);
int llmgate_status(struct llmgate *, char **json);  /* JSON text, free() */
int llmgate_metrics(struct llmgate *, char **text); /* free() */
int llmgate_reload(struct llmgate *);
/*
 * Advisory leases. acquire returns 0 with a lease in *lease (free it with
 * llmgate_lease_free()), 1 when the daemon refused (class and message in
 * *cls and err), -1 on transport failure.
 */
int llmgate_acquire(struct llmgate *, const struct llmgate_acquire *,
    struct llmgate_lease **lease, enum llmgate_class *cls, char *err,
    size_t errlen);
void llmgate_lease_free(struct llmgate_lease *);
int llmgate_report(struct llmgate *, const struct llmgate_report *);
/*
 * The same from the caller's event loop (see llmgate_submit), for a
 * program with many calls of its own SDK in flight on one connection:
 * on_lease runs from llmgate_process() once, with the lease and class
 * LLMGATE_OK, or with NULL and why not (a report taken: NULL and OK).
 * An acquire still waiting for budget can be llmgate_cancel()led; it
 * then ends with class cancelled. Each returns the request id (> 0), or
 * 0 on failure (llmgate_error()).
 */
typedef void llmgate_lease_cb(const struct llmgate_lease *, enum llmgate_class,
    const char *message, void *arg);
uint32_t llmgate_acquire_submit(struct llmgate *,
    const struct llmgate_acquire *, llmgate_lease_cb *on_lease, void *arg);
uint32_t llmgate_report_submit(struct llmgate *, const struct llmgate_report *,
    llmgate_lease_cb *on_lease, void *arg);

#ifdef __cplusplus
}
#endif

#endif
