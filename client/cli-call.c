/*
 * cli-call.c: `llmgate call`. The request is built from the options and
 * files and checked whole before the daemon hears of it; the answer is
 * printed as text (streamed as it arrives) or as one JSON object.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Read a stream whole, NUL-terminated. NULL with errno on failure. */
static char *
read_all(FILE *f, size_t *lenp)
{
	char	*buf = NULL;
	size_t	 len = 0, cap = 0, n;

	for (;;) {
		if (cap - len < 65536) {
			cap = cap == 0 ? 65536 : cap * 2;
			buf = cli_reallocarray(buf, 1, cap + 1);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len > CLI_MAX_INPUT) {
			free(buf);
			errno = EFBIG;
			return NULL;
		}
		if (n == 0) {
			if (ferror(f)) {
				free(buf);
				if (errno == 0)
					errno = EIO;
				return NULL;
			}
			break;
		}
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* A JSON file ("-": stdin) for option opt. NULL after saying why. */
static json_t *
load_json(const char *opt, const char *path)
{
	json_error_t	 jerr;
	json_t		*j;
	FILE		*f;
	char		*buf;
	size_t		 len;
	int		 saved;

	if (strcmp(path, "-") == 0) {
		if (cli_stdin_used++) {
			cli_warnx("%s: standard input is already used", opt);
			return NULL;
		}
		f = stdin;
	} else if ((f = fopen(path, "r")) == NULL) {
		cli_warnx("%s: cannot read %s: %s", opt, path,
		    strerror(errno));
		return NULL;
	}
	errno = 0;
	buf = read_all(f, &len);
	saved = errno;
	if (f != stdin)
		fclose(f);
	if (buf == NULL) {
		cli_warnx("%s: cannot read %s: %s", opt, path,
		    strerror(saved));
		return NULL;
	}
	j = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (j == NULL)
		cli_warnx("%s: %s:%d:%d: %s", opt, path, jerr.line,
		    jerr.column, jerr.text);
	return j;
}

/* Compact JSON text of a value, our own copy. */
static char *
json_text(const json_t *j)
{
	char	*s, *t;

	if ((s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		cli_oom();
	t = cli_strdup(s);
	free(s);
	return t;
}

/*
 * Message content: a string, null, or an array of parts of which the
 * text parts are joined (the OpenAI content-part shape).
 */
static int
content_text(const json_t *c, char **out)
{
	const json_t	*part, *t;
	size_t		 i, len = 0, n;
	char		*s = NULL;

	*out = NULL;
	if (c == NULL || json_is_null(c))
		return 0;
	if (json_is_string(c)) {
		*out = cli_strdup(json_string_value(c));
		return 0;
	}
	if (!json_is_array(c))
		return -1;
	json_array_foreach(c, i, part) {
		if (json_is_string(part))
			t = part;
		else if ((t = json_object_get(part, "text")) == NULL ||
		    !json_is_string(t))
			return (free(s), -1);
		n = json_string_length(t);
		s = cli_reallocarray(s, 1, len + n + 1);
		memcpy(s + len, json_string_value(t), n);
		len += n;
		s[len] = '\0';
	}
	*out = s != NULL ? s : cli_strdup("");
	return 0;
}

static char *
opt_string(const json_t *o, const char *key, int *bad)
{
	const json_t	*v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = 1;
		return NULL;
	}
	return cli_strdup(json_string_value(v));
}

/* Arguments as JSON text: an object is serialised, a string kept as is. */
static char *
args_text(const json_t *a)
{
	if (a == NULL || json_is_null(a))
		return cli_strdup("{}");
	if (json_is_string(a))
		return cli_strdup(json_string_value(a));
	return json_text(a);
}

/*
 * {id, name, arguments} or OpenAI's {id, type, function: {name,
 * arguments}}, added to the assistant turn msg of req.
 */
static int
tool_call_from_json(const json_t *j, struct llmgate_request *req, int msg)
{
	const json_t	*fn;
	char		*id = NULL, *name = NULL, *args = NULL;
	int		 bad = 0, rv = -1;

	if (!json_is_object(j))
		return -1;
	id = opt_string(j, "id", &bad);
	if ((fn = json_object_get(j, "function")) != NULL &&
	    json_is_object(fn)) {
		name = opt_string(fn, "name", &bad);
		args = args_text(json_object_get(fn, "arguments"));
	} else {
		name = opt_string(j, "name", &bad);
		args = args_text(json_object_get(j, "arguments"));
	}
	if (!bad && name != NULL)
		rv = llmgate_request_add_tool_call(req, (size_t)msg, id, name,
		    args);
	free(id);
	free(name);
	free(args);
	return rv;
}

static void
append_system(char **system, const char *text)
{
	char	*s;
	size_t	 a, b;

	if (*system == NULL) {
		*system = cli_strdup(text);
		return;
	}
	a = strlen(*system);
	b = strlen(text);
	s = cli_reallocarray(NULL, 1, a + 2 + b + 1);
	memcpy(s, *system, a);
	memcpy(s + a, "\n\n", 2);
	memcpy(s + a + 2, text, b + 1);
	free(*system);
	*system = s;
}

/*
 * --messages: a JSON array of {role, content, tool_calls, tool_call_id,
 * name}; "system" (or "developer") entries become the system prompt.
 */
static int
load_messages(const char *path, struct llmgate_request *req, char **system)
{
	json_t			*arr, *j, *tcs, *tc;
	const char		*role;
	char			*content, *call_id, *name;
	size_t			 i, k, n = 0;
	int			 r, m, bad = 0, rv = -1;

	if ((arr = load_json("--messages", path)) == NULL)
		return -1;
	if (!json_is_array(arr)) {
		cli_warnx("--messages: %s: not a JSON array", path);
		goto out;
	}
	json_array_foreach(arr, i, j) {
		if (!json_is_object(j) ||
		    (role = json_string_value(json_object_get(j, "role"))) ==
		    NULL) {
			cli_warnx("--messages: %s: message %zu: not an object "
			    "with a role", path, i + 1);
			goto out;
		}
		if (content_text(json_object_get(j, "content"),
		    &content) == -1) {
			cli_warnx("--messages: %s: message %zu: content is not "
			    "text", path, i + 1);
			goto out;
		}
		if (strcmp(role, "system") == 0 ||
		    strcmp(role, "developer") == 0) {
			if (content != NULL)
				append_system(system, content);
			free(content);
			continue;
		}
		if ((r = llmgate_role_from_name(role)) == -1) {
			free(content);
			cli_warnx("--messages: %s: message %zu: unknown role "
			    "'%s' (user, assistant, tool or system)", path,
			    i + 1, role);
			goto out;
		}
		if (content == NULL && r != LLMGATE_ROLE_ASSISTANT) {
			cli_warnx("--messages: %s: message %zu: a %s message "
			    "needs content", path, i + 1, role);
			goto out;
		}
		m = llmgate_request_add_message(req, (enum llmgate_role)r,
		    content);
		free(content);
		if (m == -1) {
			cli_warnx("--messages: %s: message %zu: refused", path,
			    i + 1);
			goto out;
		}
		n++;
		call_id = opt_string(j, "tool_call_id", &bad);
		name = opt_string(j, "name", &bad);
		if (!bad && (call_id != NULL || name != NULL) &&
		    llmgate_request_set_tool_result(req, (size_t)m, call_id,
		    name) == -1)
			bad = 1;
		free(call_id);
		free(name);
		if (bad) {
			cli_warnx("--messages: %s: message %zu: tool_call_id "
			    "and name must be strings, on a tool message",
			    path, i + 1);
			goto out;
		}
		tcs = json_object_get(j, "tool_calls");
		if (tcs == NULL || json_is_null(tcs))
			continue;
		if (!json_is_array(tcs)) {
			cli_warnx("--messages: %s: message %zu: tool_calls is "
			    "not an array", path, i + 1);
			goto out;
		}
		json_array_foreach(tcs, k, tc) {
			if (tool_call_from_json(tc, req, m) == -1) {
				cli_warnx("--messages: %s: message %zu: tool "
				    "call %zu needs a name (id, name, "
				    "arguments)", path, i + 1, k + 1);
				goto out;
			}
		}
	}
	if (n == 0) {
		cli_warnx("--messages: %s: no user or assistant messages",
		    path);
		goto out;
	}
	rv = 0;
out:
	json_decref(arr);
	return rv;
}

/* --tools: {name, description, parameters}, or OpenAI's {function: {...}}. */
static int
load_tools(const char *path, struct llmgate_request *req)
{
	json_t			*arr, *j, *fn, *params;
	char			*name = NULL, *desc = NULL, *ptext = NULL;
	size_t			 i;
	int			 bad = 0, rv = -1;

	if ((arr = load_json("--tools", path)) == NULL)
		return -1;
	if (!json_is_array(arr)) {
		cli_warnx("--tools: %s: not a JSON array", path);
		goto out;
	}
	json_array_foreach(arr, i, j) {
		if ((fn = json_object_get(j, "function")) != NULL &&
		    json_is_object(fn))
			j = fn;
		if (!json_is_object(j)) {
			cli_warnx("--tools: %s: tool %zu: not an object", path,
			    i + 1);
			goto out;
		}
		name = opt_string(j, "name", &bad);
		desc = opt_string(j, "description", &bad);
		if (bad || name == NULL || *name == '\0') {
			cli_warnx("--tools: %s: tool %zu: needs a name (and a "
			    "string description)", path, i + 1);
			goto out;
		}
		if ((params = json_object_get(j, "parameters")) == NULL)
			params = json_object_get(j, "input_schema");
		if (params != NULL && !json_is_null(params)) {
			if (!json_is_object(params)) {
				cli_warnx("--tools: %s: tool %zu: parameters "
				    "is not a JSON Schema object", path, i + 1);
				goto out;
			}
			ptext = json_text(params);
		}
		if (llmgate_request_add_tool(req, name, desc, ptext) == -1) {
			cli_warnx("--tools: %s: tool %zu: refused", path,
			    i + 1);
			goto out;
		}
		free(name);
		free(desc);
		free(ptext);
		name = desc = ptext = NULL;
	}
	rv = 0;
out:
	free(name);
	free(desc);
	free(ptext);
	json_decref(arr);
	return rv;
}

static int
load_schema(const char *path, struct llmgate_request *req)
{
	json_t	*j;
	char	*text;

	if ((j = load_json("--schema", path)) == NULL)
		return -1;
	if (!json_is_object(j)) {
		cli_warnx("--schema: %s: not a JSON Schema object", path);
		json_decref(j);
		return -1;
	}
	text = json_text(j);
	llmgate_request_set_schema(req, text);
	free(text);
	json_decref(j);
	return 0;
}

/*
 * PROMPT, or standard input when it is "-" or absent, as the one user
 * message of the request.
 */
static int
load_prompt(const char *prompt, struct llmgate_request *req)
{
	char			*text;
	size_t			 len;

	if (prompt == NULL || strcmp(prompt, "-") == 0) {
		if (cli_stdin_used++) {
			cli_warnx("the prompt and a file cannot both come "
			    "from standard input");
			return -1;
		}
		errno = 0;
		if ((text = read_all(stdin, &len)) == NULL) {
			cli_warnx("cannot read the prompt: %s",
			    strerror(errno));
			return -1;
		}
		/* `echo hi | llmgate call` asks "hi", not "hi\n". */
		while (len > 0 && (text[len - 1] == '\n' ||
		    text[len - 1] == '\r'))
			text[--len] = '\0';
	} else {
		text = cli_strdup(prompt);
		len = strlen(text);
	}
	if (len == 0) {
		cli_warnx("empty prompt");
		goto fail;
	}
	if (memchr(text, '\0', len) != NULL) {
		cli_warnx("the prompt contains a NUL byte");
		goto fail;
	}
	llmgate_request_add_message(req, LLMGATE_ROLE_USER, text);
	free(text);
	return 0;

fail:
	free(text);
	return -1;
}

/* Tool arguments as parsed JSON, or the raw text when it is not JSON. */
static json_t *
jargs(const char *s)
{
	json_t	*j;

	if (s == NULL || *s == '\0')
		return json_object();
	if ((j = json_loads(s, JSON_DECODE_ANY, NULL)) != NULL)
		return j;
	return cli_jstr(s);
}

static json_t *
jtool_call(const struct llmgate_tool_call *tc)
{
	json_t	*o = json_object();

	json_object_set_new(o, "id", cli_jstr(tc->id));
	json_object_set_new(o, "name", cli_jstr(tc->name));
	json_object_set_new(o, "arguments", jargs(tc->arguments));
	return o;
}

static json_t *
jusage(uint64_t in, uint64_t out)
{
	json_t	*u = json_object();

	json_object_set_new(u, "input_tokens", json_integer((json_int_t)in));
	json_object_set_new(u, "output_tokens", json_integer((json_int_t)out));
	return u;
}

static json_t *
jattempts(const struct llmgate_result *r)
{
	const struct llmgate_attempt	*a;
	json_t				*arr = json_array(), *o;
	size_t				 i;

	for (i = 0; r != NULL && i < r->nattempts; i++) {
		a = &r->attempts[i];
		o = json_object();
		json_object_set_new(o, "target", cli_jstr(a->target));
		json_object_set_new(o, "class",
		    json_string(cli_class_name(a->cls)));
		json_object_set_new(o, "status", json_integer(a->status));
		if (a->message != NULL && *a->message != '\0')
			json_object_set_new(o, "message", cli_jstr(a->message));
		json_object_set_new(o, "ms", json_integer(a->ms));
		json_object_set_new(o, "waited_ms", json_integer(a->waited_ms));
		if (a->skipped)
			json_object_set_new(o, "skipped", json_true());
		json_array_append_new(arr, o);
	}
	return arr;
}

/* The wire's finish reasons; a reply that gave none is "other". */
static const char *
finish_name(enum llmgate_finish f)
{
	const char	*s = llmgate_finish_name(f);

	return (s != NULL && *s != '\0') ? s : "other";
}

static json_t *
result_json(const struct llmgate_result *r)
{
	json_t	*o = json_object(), *tcs;
	size_t	 i;

	if (r->cls != LLMGATE_OK) {
		json_object_set_new(o, "error",
		    cli_jerror(cli_class_name(r->cls), r->message));
		if (r->partial) {
			json_object_set_new(o, "partial", json_true());
			json_object_set_new(o, "text", cli_jstr(r->text));
		}
		json_object_set_new(o, "usage_total", jusage(
		    r->total_input_tokens, r->total_output_tokens));
		json_object_set_new(o, "attempts", jattempts(r));
		return o;
	}
	json_object_set_new(o, "text", cli_jstr(r->text));
	json_object_set_new(o, "target", cli_jstr(r->target));
	json_object_set_new(o, "finish_reason",
	    json_string(finish_name(r->finish)));
	json_object_set_new(o, "usage", jusage(r->input_tokens,
	    r->output_tokens));
	json_object_set_new(o, "usage_total", jusage(r->total_input_tokens,
	    r->total_output_tokens));
	tcs = json_array();
	for (i = 0; i < r->ntool_calls; i++)
		json_array_append_new(tcs, jtool_call(&r->tool_calls[i]));
	json_object_set_new(o, "tool_calls", tcs);
	json_object_set_new(o, "attempts", jattempts(r));
	return o;
}

/* What --stream has put on stdout so far. */
struct call_state {
	int	json;
	int	printed;	/* any text went out */
	int	midline;	/* the last byte out was not a newline */
};

static void
call_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct call_state	*cs = arg;

	if (cs->json)
		return;
	if (ch->reset) {
		/* The daemon restarts the reply: end the line, say so. */
		if (cs->midline)
			fputc('\n', stdout);
		fflush(stdout);
		fputs("[llmgate: output restarted]\n", stderr);
		cs->midline = 0;
	}
	if (ch->tool_index >= 0 || ch->text == NULL || ch->len == 0)
		return;
	fwrite(ch->text, 1, ch->len, stdout);
	fflush(stdout);
	cs->printed = 1;
	cs->midline = ch->text[ch->len - 1] != '\n';
}

static void
print_attempts(const struct llmgate_result *r)
{
	const struct llmgate_attempt	*a;
	char				 status[16];
	size_t				 i;

	for (i = 0; i < r->nattempts; i++) {
		a = &r->attempts[i];
		if (a->status != 0)
			snprintf(status, sizeof status, "%u", a->status);
		else
			snprintf(status, sizeof status, "-");
		fprintf(stderr, "  %s  %s  %s  %ums", a->target != NULL ?
		    a->target : "-", cli_class_name(a->cls), status, a->ms);
		if (a->message != NULL && *a->message != '\0')
			fprintf(stderr, "  %s", a->message);
		fputc('\n', stderr);
	}
}

static void
print_result(const struct llmgate_result *r, struct call_state *cs)
{
	size_t	i, len;

	if (r->cls != LLMGATE_OK) {
		if (cs->midline)
			fputc('\n', stdout);
		fflush(stdout);
		fprintf(stderr, "llmgate: call failed: %s: %s\n",
		    cli_class_name(r->cls),
		    r->message != NULL ? r->message : "");
		print_attempts(r);
		return;
	}
	if (cs->printed) {
		if (cs->midline)
			fputc('\n', stdout);
	} else if (r->text != NULL && (len = strlen(r->text)) != 0) {
		fputs(r->text, stdout);
		if (r->text[len - 1] != '\n')
			fputc('\n', stdout);
	}
	for (i = 0; i < r->ntool_calls; i++)
		cli_print_json(jtool_call(&r->tool_calls[i]));
	fflush(stdout);
}

enum {
	OPT_SYSTEM = 256,
	OPT_MESSAGES,
	OPT_TOOLS,
	OPT_SCHEMA,
	OPT_MAX_TOKENS,
	OPT_TEMPERATURE,
	OPT_TOP_P,
	OPT_STOP,
	OPT_SEED,
	OPT_ATTEMPTS,
	OPT_TIMEOUT,
	OPT_PRIORITY,
	OPT_STREAM,
	OPT_ON_CUT,
	OPT_JSON,
	OPT_NAME,
	OPT_FALLBACK_ON,
	OPT_REJECT
};

static const struct option call_options[] = {
	{ "model",	 required_argument, NULL, 'm' },
	{ "route",	 required_argument, NULL, 'r' },
	{ "system",	 required_argument, NULL, OPT_SYSTEM },
	{ "messages",	 required_argument, NULL, OPT_MESSAGES },
	{ "tools",	 required_argument, NULL, OPT_TOOLS },
	{ "schema",	 required_argument, NULL, OPT_SCHEMA },
	{ "max-tokens",	 required_argument, NULL, OPT_MAX_TOKENS },
	{ "temperature", required_argument, NULL, OPT_TEMPERATURE },
	{ "top-p",	 required_argument, NULL, OPT_TOP_P },
	{ "stop",	 required_argument, NULL, OPT_STOP },
	{ "seed",	 required_argument, NULL, OPT_SEED },
	{ "attempts",	 required_argument, NULL, OPT_ATTEMPTS },
	{ "timeout",	 required_argument, NULL, OPT_TIMEOUT },
	{ "priority",	 required_argument, NULL, OPT_PRIORITY },
	{ "stream",	 no_argument,	    NULL, OPT_STREAM },
	{ "on-cut",	 required_argument, NULL, OPT_ON_CUT },
	{ "json",	 no_argument,	    NULL, OPT_JSON },
	{ "name",	 required_argument, NULL, OPT_NAME },
	{ "fallback-on", required_argument, NULL, OPT_FALLBACK_ON },
	{ "reject",	 required_argument, NULL, OPT_REJECT },
	CLI_OPTIONS_END
};

/* What the command line asks for. Strings are borrowed from argv. */
struct call_opts {
	struct llmgate_request	*req;
	char			*system;	/* --system, then --messages' */
	size_t			 ntargets;
	int			 route;		/* -r given */
	int			 stream;
	struct call_state	 cs;
	const char		*name;		/* --name */
	const char		*messages;	/* files */
	const char		*tools;
	const char		*schema;
};

/* The options into o. -1 to go on, or an exit status. */
static int
call_getopt(const struct cmd *c, int argc, char **argv, struct call_opts *o)
{
	struct llmgate_request	*req = o->req;
	enum llmgate_priority	 prio;
	double			 x;
	int64_t			 seed;
	uint32_t		 u;
	char			*p, *q;
	int			 ch, v;

	while ((ch = getopt_long(argc, argv, ":m:r:s:h", call_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'm':
			if (llmgate_request_add_target(req, optarg) == -1) {
				cli_warnx("-m: an empty target");
				return EXIT_USAGE;
			}
			o->ntargets++;
			break;
		case 'r':
			if (llmgate_request_set_route(req, optarg) == -1) {
				cli_warnx("-r: an empty route name");
				return EXIT_USAGE;
			}
			o->route = 1;
			break;
		case OPT_SYSTEM:
			free(o->system);
			o->system = cli_strdup(optarg);
			break;
		case OPT_MESSAGES:
			o->messages = optarg;
			break;
		case OPT_TOOLS:
			o->tools = optarg;
			break;
		case OPT_SCHEMA:
			o->schema = optarg;
			break;
		case OPT_MAX_TOKENS:
			if (cli_parse_u32("--max-tokens", optarg, 1, &u) == -1)
				return EXIT_USAGE;
			llmgate_request_set_max_tokens(req, u);
			break;
		case OPT_TEMPERATURE:
			if (cli_parse_double("--temperature", optarg, 0, 2,
			    &x) == -1)
				return EXIT_USAGE;
			llmgate_request_set_temperature(req, x);
			break;
		case OPT_TOP_P:
			if (cli_parse_double("--top-p", optarg, 0, 1, &x) == -1)
				return EXIT_USAGE;
			llmgate_request_set_top_p(req, x);
			break;
		case OPT_STOP:
			if (llmgate_request_add_stop(req, optarg) == -1) {
				cli_warnx("--stop: an empty stop string");
				return EXIT_USAGE;
			}
			break;
		case OPT_SEED:
			if (cli_parse_i64("--seed", optarg, &seed) == -1)
				return EXIT_USAGE;
			llmgate_request_set_seed(req, seed);
			break;
		case OPT_ATTEMPTS:
			if (cli_parse_u32("--attempts", optarg, 1, &u) == -1)
				return EXIT_USAGE;
			llmgate_request_set_attempts(req, u);
			break;
		case OPT_TIMEOUT:
			if (cli_parse_u32("--timeout", optarg, 1, &u) == -1)
				return EXIT_USAGE;
			llmgate_request_set_timeout_ms(req, u);
			break;
		case OPT_PRIORITY:
			if (cli_parse_priority(optarg, &prio) == -1)
				return EXIT_USAGE;
			llmgate_request_set_priority(req, prio);
			break;
		case OPT_STREAM:
			llmgate_request_set_stream(req, 1);
			o->stream = 1;
			break;
		case OPT_ON_CUT:
			if ((v = llmgate_on_cut_from_name(optarg)) == -1) {
				cli_warnx("--on-cut: '%s' is not resume, "
				    "restart or fail", optarg);
				return EXIT_USAGE;
			}
			llmgate_request_set_on_cut(req,
			    (enum llmgate_on_cut)v);
			break;
		case OPT_JSON:
			o->cs.json = 1;
			break;
		case OPT_NAME:
			o->name = optarg;
			break;
		case OPT_FALLBACK_ON:
			/* Classes, comma-separated; the daemon checks them. */
			for (p = optarg; (q = strsep(&p, ",")) != NULL;) {
				if (*q != '\0')
					(void)llmgate_request_add_fallback_on(
					    req, q);
			}
			break;
		case OPT_REJECT:
			if (llmgate_request_add_reject(req, optarg) == -1) {
				cli_warnx("--reject: an empty condition");
				return EXIT_USAGE;
			}
			break;
		default:
			if ((v = cli_option(c, ch, argv)) != -1)
				return v;
			break;
		}
	}
	return -1;
}

int
cmd_call(const struct cmd *c, int argc, char **argv)
{
	struct call_opts	 o;
	struct llmgate_result	*r = NULL;
	struct llmgate		*g = NULL;
	const char		*prompt = NULL;
	int			 rv;

	memset(&o, 0, sizeof o);
	o.name = "llmgate";
	o.req = llmgate_request_new();
	if ((rv = call_getopt(c, argc, argv, &o)) != -1)
		goto out;
	rv = EXIT_USAGE;
	argc -= optind;
	argv += optind;
	if (argc > 1) {
		rv = cli_usage_error(c, "too many arguments (quote the "
		    "prompt)");
		goto out;
	}
	if (argc == 1)
		prompt = argv[0];
	if (o.ntargets != 0 && o.route) {
		rv = cli_usage_error(c, "-m and -r are exclusive");
		goto out;
	}
	if (o.messages != NULL && prompt != NULL && strcmp(prompt, "-") != 0) {
		rv = cli_usage_error(c, "--messages and PROMPT are exclusive");
		goto out;
	}

	/* Everything is read and checked before the daemon hears of it. */
	if (o.messages != NULL && load_messages(o.messages, o.req,
	    &o.system) == -1)
		goto out;
	if (o.tools != NULL && load_tools(o.tools, o.req) == -1)
		goto out;
	if (o.schema != NULL && load_schema(o.schema, o.req) == -1)
		goto out;
	if (o.messages == NULL && load_prompt(prompt, o.req) == -1)
		goto out;
	if (o.system != NULL)
		llmgate_request_set_system(o.req, o.system);

	if ((g = cli_connect(o.name, o.cs.json)) == NULL) {
		rv = EXIT_UNREACHABLE;
		goto out;
	}
	if (llmgate_call(g, o.req, o.stream ? call_chunk : NULL, &o.cs,
	    &r) == -1) {
		if (o.cs.midline)
			fputc('\n', stdout);
		cli_warnx("%s", llmgate_error(g));
		if (o.cs.json)
			cli_print_error("connection", llmgate_error(g), 1);
		rv = EXIT_UNREACHABLE;
		goto out;
	}
	if (o.cs.json)
		cli_print_json(result_json(r));
	else
		print_result(r, &o.cs);
	rv = cli_class_exit(r->cls);

out:
	llmgate_result_free(r);
	llmgate_close(g);
	llmgate_request_free(o.req);
	free(o.system);
	return rv;
}
