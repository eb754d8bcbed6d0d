/*
 * llmgate-cli.c: the `llmgate` command. Calls, status, metrics and
 * advisory leases from the shell, through libllmgate.
 *
 * Exit status (CONTRACT.md): 0 success, 2 usage error or invalid input
 * (checked before anything is sent; also the daemon's invalid_request),
 * 3 the daemon is unreachable or went away, 4 the call failed.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmgate.h"

#define EXIT_USAGE		2
#define EXIT_UNREACHABLE	3
#define EXIT_FAILED		4

/* Input we read whole (prompts, JSON files) is capped at a frame's size. */
#define CLI_MAX_INPUT		(16u * 1024 * 1024)

struct cmd {
	const char	*name;
	int		(*fn)(const struct cmd *, int, char **);
	const char	*usage;
};

static const char	*cli_socket;	/* -s, NULL: the default resolution */
static int		 cli_stdin_used;

static void	 cli_warnx(const char *, ...)
		     __attribute__((format(printf, 1, 2)));
static int	 cli_usage_error(const struct cmd *, const char *, ...)
		     __attribute__((format(printf, 2, 3)));

static int	 cmd_call(const struct cmd *, int, char **);
static int	 cmd_status(const struct cmd *, int, char **);
static int	 cmd_ping(const struct cmd *, int, char **);
static int	 cmd_reload(const struct cmd *, int, char **);
static int	 cmd_metrics(const struct cmd *, int, char **);
static int	 cmd_acquire(const struct cmd *, int, char **);
static int	 cmd_report(const struct cmd *, int, char **);
static int	 cmd_help(const struct cmd *, int, char **);

static const struct cmd cmds[] = {
	{ "call", cmd_call,
	  "call [options] [PROMPT]\n"
	  "  -m, --model PROVIDER/MODEL  repeatable: the fallback chain, "
	  "tried in order\n"
	  "  -r, --route NAME            a chain named in the config\n"
	  "  --system TEXT               system prompt\n"
	  "  --messages FILE             JSON array of messages instead of "
	  "PROMPT\n"
	  "  --tools FILE                JSON array of tools: {name, "
	  "description, parameters}\n"
	  "  --schema FILE               JSON Schema the reply must satisfy\n"
	  "  --max-tokens N  --temperature X  --top-p X  --stop S "
	  "(repeatable)  --seed N\n"
	  "  --attempts N                attempts per target, the first "
	  "included\n"
	  "  --timeout MS                deadline for the whole call\n"
	  "  --priority high|normal|low\n"
	  "  --stream                    print text as it arrives\n"
	  "  --on-cut resume|restart|fail\n"
	  "  --json                      print exactly one JSON object\n"
	  "  --name NAME                 client name shown by llmgated\n"
	  "  PROMPT \"-\" or absent: read stdin" },
	{ "status", cmd_status, "status [--json]" },
	{ "ping", cmd_ping, "ping" },
	{ "reload", cmd_reload, "reload" },
	{ "metrics", cmd_metrics, "metrics" },
	{ "acquire", cmd_acquire,
	  "acquire -m PROVIDER/MODEL [--tokens N] [--timeout MS] "
	  "[--priority P] [--json]" },
	{ "report", cmd_report,
	  "report LEASE --status HTTP_STATUS [--retry-after S] "
	  "[--input-tokens N] [--output-tokens N]" },
	{ "help", cmd_help, "help [COMMAND]" },
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void
cli_warnx(const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fputs("llmgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void __attribute__((noreturn))
cli_oom(void)
{
	fputs("llmgate: out of memory\n", stderr);
	exit(1);
}

static void *
cli_reallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		cli_oom();
	if ((p = realloc(p, n * size == 0 ? 1 : n * size)) == NULL)
		cli_oom();
	return p;
}

static char *
cli_strdup(const char *s)
{
	char	*p;

	if (s == NULL)
		return NULL;
	if ((p = strdup(s)) == NULL)
		cli_oom();
	return p;
}

static void
cli_usage(FILE *f, const struct cmd *c)
{
	size_t	i;

	if (c != NULL) {
		fprintf(f, "usage: llmgate [-s SOCKET] %s\n", c->usage);
		return;
	}
	fputs("usage: llmgate [-s SOCKET] COMMAND [options]\n"
	    "       llmgate --version | --help\n\ncommands:\n", f);
	for (i = 0; i < NCMDS; i++) {
		if (strchr(cmds[i].usage, '\n') != NULL)
			fprintf(f, "  %.*s\n", (int)strcspn(cmds[i].usage,
			    "\n"), cmds[i].usage);
		else
			fprintf(f, "  %s\n", cmds[i].usage);
	}
	fputs("\n'llmgate help COMMAND' shows a command's options.\n", f);
}

static int
cli_usage_error(const struct cmd *c, const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fputs("llmgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c != NULL)
		fprintf(stderr, "usage: llmgate [-s SOCKET] %.*s\n",
		    (int)strcspn(c->usage, "\n"), c->usage);
	else
		cli_usage(stderr, NULL);
	return EXIT_USAGE;
}

/* getopt's '?' and ':' answers, in our words. */
static int
cli_bad_option(const struct cmd *c, int ch, char **argv)
{
	char	opt[3] = { '-', (char)optopt, '\0' };

	if (ch == ':')
		return cli_usage_error(c, "option %s requires an argument",
		    optopt != 0 ? opt : argv[optind - 1]);
	return cli_usage_error(c, "unknown option %s",
	    optopt != 0 ? opt : argv[optind - 1]);
}

static int
parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
    uint64_t *out)
{
	unsigned long long	 v;
	char			*end;

	if (!isdigit((unsigned char)*s))
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	cli_warnx("%s: invalid number '%s' (expected %llu to %llu)", opt, s,
	    (unsigned long long)min, (unsigned long long)max);
	return -1;
}

static int
parse_u32(const char *opt, const char *s, uint32_t min, uint32_t *out)
{
	uint64_t	v;

	if (parse_u64(opt, s, min, UINT32_MAX, &v) == -1)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int
parse_i64(const char *opt, const char *s, int64_t *out)
{
	long long	 v;
	char		*end;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || isspace((unsigned char)*s) || errno != 0 ||
	    *end != '\0') {
		cli_warnx("%s: invalid number '%s'", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_double(const char *opt, const char *s, double min, double max,
    double *out)
{
	double	 v;
	char	*end;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || isspace((unsigned char)*s) || errno != 0 ||
	    *end != '\0' || !isfinite(v) || v < min || v > max) {
		cli_warnx("%s: invalid number '%s' (expected %g to %g)", opt, s,
		    min, max);
		return -1;
	}
	*out = v;
	return 0;
}

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

/* {id, name, arguments} or OpenAI's {id, type, function: {name, arguments}}. */
static int
tool_call_from_json(const json_t *j, struct llmgate_tool_call *tc)
{
	const json_t	*fn;
	int		 bad = 0;

	memset(tc, 0, sizeof *tc);
	if (!json_is_object(j))
		return -1;
	tc->id = opt_string(j, "id", &bad);
	if ((fn = json_object_get(j, "function")) != NULL &&
	    json_is_object(fn)) {
		tc->name = opt_string(fn, "name", &bad);
		tc->arguments = args_text(json_object_get(fn, "arguments"));
	} else {
		tc->name = opt_string(j, "name", &bad);
		tc->arguments = args_text(json_object_get(j, "arguments"));
	}
	return (bad || tc->name == NULL) ? -1 : 0;
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
load_messages(const char *path, struct llmgate_request *req)
{
	json_t			*arr, *j, *tcs, *tc;
	struct llmgate_message	*m;
	const char		*role;
	char			*content;
	size_t			 i, k;
	int			 r, bad = 0, rv = -1;

	if ((arr = load_json("--messages", path)) == NULL)
		return -1;
	if (!json_is_array(arr)) {
		cli_warnx("--messages: %s: not a JSON array", path);
		goto out;
	}
	req->messages = cli_reallocarray(NULL, json_array_size(arr) + 1,
	    sizeof *req->messages);
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
				append_system(&req->system, content);
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
		m = &req->messages[req->nmessages++];
		memset(m, 0, sizeof *m);
		m->role = (enum llmgate_role)r;
		m->content = content;
		m->tool_call_id = opt_string(j, "tool_call_id", &bad);
		m->name = opt_string(j, "name", &bad);
		if (bad) {
			cli_warnx("--messages: %s: message %zu: tool_call_id "
			    "and name must be strings", path, i + 1);
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
		m->tool_calls = cli_reallocarray(NULL, json_array_size(tcs),
		    sizeof *m->tool_calls);
		json_array_foreach(tcs, k, tc) {
			r = tool_call_from_json(tc,
			    &m->tool_calls[m->ntool_calls]);
			m->ntool_calls++;
			if (r == -1) {
				cli_warnx("--messages: %s: message %zu: tool "
				    "call %zu needs a name (id, name, "
				    "arguments)", path, i + 1, k + 1);
				goto out;
			}
		}
	}
	if (req->nmessages == 0) {
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
	struct llmgate_tool	*t;
	size_t			 i;
	int			 bad = 0, rv = -1;

	if ((arr = load_json("--tools", path)) == NULL)
		return -1;
	if (!json_is_array(arr)) {
		cli_warnx("--tools: %s: not a JSON array", path);
		goto out;
	}
	req->tools = cli_reallocarray(NULL, json_array_size(arr),
	    sizeof *req->tools);
	json_array_foreach(arr, i, j) {
		if ((fn = json_object_get(j, "function")) != NULL &&
		    json_is_object(fn))
			j = fn;
		t = &req->tools[req->ntools++];
		memset(t, 0, sizeof *t);
		if (!json_is_object(j)) {
			cli_warnx("--tools: %s: tool %zu: not an object", path,
			    i + 1);
			goto out;
		}
		t->name = opt_string(j, "name", &bad);
		t->description = opt_string(j, "description", &bad);
		if (bad || t->name == NULL || *t->name == '\0') {
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
			t->parameters = json_text(params);
		}
	}
	rv = 0;
out:
	json_decref(arr);
	return rv;
}

static int
load_schema(const char *path, struct llmgate_request *req)
{
	json_t	*j;

	if ((j = load_json("--schema", path)) == NULL)
		return -1;
	if (!json_is_object(j)) {
		cli_warnx("--schema: %s: not a JSON Schema object", path);
		json_decref(j);
		return -1;
	}
	req->schema = json_text(j);
	json_decref(j);
	return 0;
}

/* Targets, stop strings and the route are borrowed from argv. */
static void
request_free(struct llmgate_request *req)
{
	struct llmgate_message	*m;
	size_t			 i, k;

	free(req->system);
	for (i = 0; i < req->nmessages; i++) {
		m = &req->messages[i];
		free(m->content);
		for (k = 0; k < m->ntool_calls; k++) {
			free(m->tool_calls[k].id);
			free(m->tool_calls[k].name);
			free(m->tool_calls[k].arguments);
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
	free(req->schema);
	free(req->targets);
	free(req->stop);
}

/*
 * A string for JSON output. The daemon relays what providers sent; should
 * that not be UTF-8, bad bytes become U+FFFD rather than losing the field.
 */
static json_t *
jstr(const char *s)
{
	json_t			*j;
	const unsigned char	*p;
	char			*t;
	size_t			 len, i, n, k;
	unsigned		 c;

	if (s == NULL)
		s = "";
	if ((j = json_string(s)) != NULL)
		return j;
	len = strlen(s);
	t = cli_reallocarray(NULL, 3, len + 1);
	p = (const unsigned char *)s;
	for (i = n = 0; i < len;) {
		c = p[i];
		k = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 :
		    (c >> 3) == 0x1e ? 4 : 0;
		if (k > 1 && i + k <= len) {
			size_t	 x;

			for (x = 1; x < k; x++)
				if ((p[i + x] & 0xc0) != 0x80)
					break;
			if (x == k) {
				memcpy(t + n, p + i, k);
				t[n + k] = '\0';
				if ((j = json_string(t + n)) != NULL) {
					json_decref(j);
					n += k;
					i += k;
					continue;
				}
			}
		} else if (k == 1) {
			t[n++] = (char)c;
			i++;
			continue;
		}
		memcpy(t + n, "\xef\xbf\xbd", 3);
		n += 3;
		i++;
	}
	t[n] = '\0';
	j = json_string(t);
	free(t);
	return j != NULL ? j : json_string("");
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
	return jstr(s);
}

static json_t *
jtool_call(const struct llmgate_tool_call *tc)
{
	json_t	*o = json_object();

	json_object_set_new(o, "id", jstr(tc->id));
	json_object_set_new(o, "name", jstr(tc->name));
	json_object_set_new(o, "arguments", jargs(tc->arguments));
	return o;
}

static json_t *
jattempts(const struct llmgate_result *r)
{
	const struct llmgate_attempt	*a;
	json_t				*arr = json_array(), *o;
	const char			*cls;
	size_t				 i;

	for (i = 0; r != NULL && i < r->nattempts; i++) {
		a = &r->attempts[i];
		o = json_object();
		if ((cls = llmgate_class_name(a->cls)) == NULL)
			cls = "internal";
		json_object_set_new(o, "target", jstr(a->target));
		json_object_set_new(o, "class", json_string(cls));
		json_object_set_new(o, "status", json_integer(a->status));
		if (a->message != NULL && *a->message != '\0')
			json_object_set_new(o, "message", jstr(a->message));
		json_object_set_new(o, "ms", json_integer(a->ms));
		json_object_set_new(o, "waited_ms", json_integer(a->waited_ms));
		if (a->skipped)
			json_object_set_new(o, "skipped", json_true());
		json_array_append_new(arr, o);
	}
	return arr;
}

static json_t *
jerror(const char *cls, const char *message)
{
	json_t	*e = json_object();

	json_object_set_new(e, "class", json_string(cls));
	json_object_set_new(e, "message", jstr(message));
	return e;
}

static void
print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(o);
}

static const char *
class_name(enum llmgate_class cls)
{
	const char	*s = llmgate_class_name(cls);

	return s != NULL ? s : "internal";
}

/* The contract's finish reasons; a reply that gave none is "other". */
static const char *
finish_name(enum llmgate_finish f)
{
	const char	*s = llmgate_finish_name(f);

	return (s != NULL && *s != '\0') ? s : "other";
}

static json_t *
result_json(const struct llmgate_result *r)
{
	json_t	*o = json_object(), *u, *tcs;
	size_t	 i;

	if (r->cls != LLMGATE_OK) {
		json_object_set_new(o, "error", jerror(class_name(r->cls),
		    r->message));
		if (r->partial) {
			json_object_set_new(o, "partial", json_true());
			json_object_set_new(o, "text", jstr(r->text));
		}
		json_object_set_new(o, "attempts", jattempts(r));
		return o;
	}
	json_object_set_new(o, "text", jstr(r->text));
	json_object_set_new(o, "target", jstr(r->target));
	json_object_set_new(o, "finish_reason",
	    json_string(finish_name(r->finish)));
	u = json_object();
	json_object_set_new(u, "input_tokens",
	    json_integer((json_int_t)r->input_tokens));
	json_object_set_new(u, "output_tokens",
	    json_integer((json_int_t)r->output_tokens));
	json_object_set_new(o, "usage", u);
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
		    a->target : "-", class_name(a->cls), status, a->ms);
		if (a->message != NULL && *a->message != '\0')
			fprintf(stderr, "  %s", a->message);
		fputc('\n', stderr);
	}
}

static void
print_result(const struct llmgate_result *r, struct call_state *cs)
{
	json_t	*o;
	size_t	 i, len;

	if (r->cls != LLMGATE_OK) {
		if (cs->midline)
			fputc('\n', stdout);
		fflush(stdout);
		fprintf(stderr, "llmgate: call failed: %s: %s\n",
		    class_name(r->cls), r->message != NULL ? r->message : "");
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
	for (i = 0; i < r->ntool_calls; i++) {
		o = jtool_call(&r->tool_calls[i]);
		json_dumpf(o, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		json_decref(o);
	}
	fflush(stdout);
}

/*
 * Connect, saying why not on failure. With json, scripts also get the
 * reason as the one object on stdout.
 */
static struct llmgate *
cli_connect(const char *name, int json)
{
	struct llmgate	*g;
	json_t		*o;
	char		 path[PATH_MAX], err[1024];

	if (llmgate_socket_path(cli_socket, path, sizeof path) == NULL) {
		cli_warnx("socket path too long");
		return NULL;
	}
	if ((g = llmgate_connect(path, name, err, sizeof err)) != NULL)
		return g;
	if (strncmp(err, "cannot connect", 14) == 0)
		cli_warnx("%s (is llmgated running?)", err);
	else
		cli_warnx("%s", err);
	if (json) {
		o = json_object();
		json_object_set_new(o, "error", jerror("connection", err));
		json_object_set_new(o, "attempts", json_array());
		print_json(o);
	}
	return NULL;
}

/* The exit status a daemon's answer of class cls maps to. */
static int
class_exit(enum llmgate_class cls)
{
	if (cls == LLMGATE_OK)
		return 0;
	if (cls == LLMGATE_INVALID_REQUEST)
		return EXIT_USAGE;
	return EXIT_FAILED;
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
	OPT_TOKENS,
	OPT_STATUS,
	OPT_RETRY_AFTER,
	OPT_INPUT_TOKENS,
	OPT_OUTPUT_TOKENS
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
	{ "socket",	 required_argument, NULL, 's' },
	{ "help",	 no_argument,	    NULL, 'h' },
	{ NULL,		 0,		    NULL, 0 }
};

static int
parse_priority(const char *s, enum llmgate_priority *out)
{
	int	v;

	if ((v = llmgate_priority_from_name(s)) == -1) {
		cli_warnx("--priority: '%s' is not high, normal or low", s);
		return -1;
	}
	*out = (enum llmgate_priority)v;
	return 0;
}

static int
cmd_call(const struct cmd *c, int argc, char **argv)
{
	struct llmgate_request	 req;
	struct llmgate_result	*r = NULL;
	struct llmgate_message	*m;
	struct call_state	 cs;
	struct llmgate		*g = NULL;
	const char		*messages = NULL, *tools = NULL;
	const char		*schema = NULL, *prompt = NULL;
	const char		*name = "llmgate";
	char			*text = NULL;
	json_t			*o;
	size_t			 len;
	int			 ch, v, rv = EXIT_USAGE;

	memset(&req, 0, sizeof req);
	memset(&cs, 0, sizeof cs);
	while ((ch = getopt_long(argc, argv, ":m:r:s:h", call_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'm':
			req.targets = cli_reallocarray(req.targets,
			    req.ntargets + 1, sizeof *req.targets);
			req.targets[req.ntargets++] = optarg;
			break;
		case 'r':
			req.route = optarg;
			break;
		case 's':
			cli_socket = optarg;
			break;
		case OPT_SYSTEM:
			free(req.system);
			req.system = cli_strdup(optarg);
			break;
		case OPT_MESSAGES:
			messages = optarg;
			break;
		case OPT_TOOLS:
			tools = optarg;
			break;
		case OPT_SCHEMA:
			schema = optarg;
			break;
		case OPT_MAX_TOKENS:
			if (parse_u32("--max-tokens", optarg, 1,
			    &req.max_tokens) == -1)
				goto out;
			req.has |= LLMGATE_HAS_MAX_TOKENS;
			break;
		case OPT_TEMPERATURE:
			if (parse_double("--temperature", optarg, 0, 2,
			    &req.temperature) == -1)
				goto out;
			req.has |= LLMGATE_HAS_TEMPERATURE;
			break;
		case OPT_TOP_P:
			if (parse_double("--top-p", optarg, 0, 1,
			    &req.top_p) == -1)
				goto out;
			req.has |= LLMGATE_HAS_TOP_P;
			break;
		case OPT_STOP:
			req.stop = cli_reallocarray(req.stop, req.nstop + 1,
			    sizeof *req.stop);
			req.stop[req.nstop++] = optarg;
			break;
		case OPT_SEED:
			if (parse_i64("--seed", optarg, &req.seed) == -1)
				goto out;
			req.has |= LLMGATE_HAS_SEED;
			break;
		case OPT_ATTEMPTS:
			if (parse_u32("--attempts", optarg, 1,
			    &req.attempts) == -1)
				goto out;
			break;
		case OPT_TIMEOUT:
			if (parse_u32("--timeout", optarg, 1,
			    &req.timeout_ms) == -1)
				goto out;
			break;
		case OPT_PRIORITY:
			if (parse_priority(optarg, &req.priority) == -1)
				goto out;
			break;
		case OPT_STREAM:
			req.stream = 1;
			break;
		case OPT_ON_CUT:
			if ((v = llmgate_on_cut_from_name(optarg)) == -1) {
				cli_warnx("--on-cut: '%s' is not resume, "
				    "restart or fail", optarg);
				goto out;
			}
			req.on_cut = (enum llmgate_on_cut)v;
			break;
		case OPT_JSON:
			cs.json = 1;
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case 'h':
			cli_usage(stdout, c);
			rv = 0;
			goto out;
		default:
			rv = cli_bad_option(c, ch, argv);
			goto out;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1) {
		rv = cli_usage_error(c, "too many arguments (quote the "
		    "prompt)");
		goto out;
	}
	if (argc == 1)
		prompt = argv[0];
	if (req.ntargets != 0 && req.route != NULL) {
		rv = cli_usage_error(c, "-m and -r are exclusive");
		goto out;
	}
	if (messages != NULL && prompt != NULL && strcmp(prompt, "-") != 0) {
		rv = cli_usage_error(c, "--messages and PROMPT are exclusive");
		goto out;
	}

	/* Everything is read and checked before the daemon hears of it. */
	if (messages != NULL && load_messages(messages, &req) == -1)
		goto out;
	if (tools != NULL && load_tools(tools, &req) == -1)
		goto out;
	if (schema != NULL && load_schema(schema, &req) == -1)
		goto out;
	if (messages == NULL) {
		if (prompt == NULL || strcmp(prompt, "-") == 0) {
			if (cli_stdin_used++) {
				cli_warnx("the prompt and a file cannot both "
				    "come from standard input");
				goto out;
			}
			errno = 0;
			if ((text = read_all(stdin, &len)) == NULL) {
				cli_warnx("cannot read the prompt: %s",
				    strerror(errno));
				goto out;
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
			goto out;
		}
		if (memchr(text, '\0', len) != NULL) {
			cli_warnx("the prompt contains a NUL byte");
			goto out;
		}
		req.messages = cli_reallocarray(NULL, 1, sizeof *m);
		m = &req.messages[req.nmessages++];
		memset(m, 0, sizeof *m);
		m->role = LLMGATE_ROLE_USER;
		m->content = text;
		text = NULL;
	}

	if ((g = cli_connect(name, cs.json)) == NULL) {
		rv = EXIT_UNREACHABLE;
		goto out;
	}
	if (llmgate_call(g, &req, req.stream ? call_chunk : NULL, &cs,
	    &r) == -1) {
		if (cs.midline)
			fputc('\n', stdout);
		cli_warnx("%s", llmgate_error(g));
		if (cs.json) {
			o = json_object();
			json_object_set_new(o, "error", jerror("connection",
			    llmgate_error(g)));
			json_object_set_new(o, "attempts", json_array());
			print_json(o);
		}
		rv = EXIT_UNREACHABLE;
		goto out;
	}
	if (cs.json)
		print_json(result_json(r));
	else
		print_result(r, &cs);
	rv = class_exit(r->cls);

out:
	llmgate_result_free(r);
	llmgate_close(g);
	free(text);
	request_free(&req);
	return rv;
}

/* Status values may be missing or null: "-" in the table. */
static void
jfmt(const json_t *v, char *buf, size_t len)
{
	double	d;

	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v)) {
		d = json_real_value(v);
		if (d == floor(d) && fabs(d) < 1e15)
			snprintf(buf, len, "%.0f", d);
		else
			snprintf(buf, len, "%.1f", d);
	} else if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_true(v))
		snprintf(buf, len, "yes");
	else if (json_is_false(v))
		snprintf(buf, len, "no");
	else
		snprintf(buf, len, "-");
}

/* "available/limit" of a rate object. */
static void
jrate(const json_t *o, char *buf, size_t len)
{
	char	a[31], l[32];	/* "a/l" fits a 64-byte cell */

	if (o == NULL || json_is_null(o)) {
		snprintf(buf, len, "-");
		return;
	}
	jfmt(json_object_get(o, "available"), a, sizeof a);
	jfmt(json_object_get(o, "limit"), l, sizeof l);
	snprintf(buf, len, "%s/%s", a, l);
}

static void
fmt_uptime(const json_t *v, char *buf, size_t len)
{
	unsigned long long	s, d, h, m;

	if (!json_is_number(v) || json_number_value(v) < 0) {
		snprintf(buf, len, "-");
		return;
	}
	s = (unsigned long long)json_number_value(v);
	d = s / 86400;
	h = s / 3600 % 24;
	m = s / 60 % 60;
	s %= 60;
	if (d != 0)
		snprintf(buf, len, "%llud %02lluh%02llum%02llus", d, h, m, s);
	else if (h != 0)
		snprintf(buf, len, "%lluh%02llum%02llus", h, m, s);
	else if (m != 0)
		snprintf(buf, len, "%llum%02llus", m, s);
	else
		snprintf(buf, len, "%llus", s);
}

/* "key value, key value" for a flat object (counters, retry budget). */
static void
print_flat(const char *title, json_t *o)
{
	const char	*key;
	json_t		*v;
	char		 buf[64];
	int		 first = 1;

	if (!json_is_object(o))
		return;
	printf("%-14s", title);
	json_object_foreach(o, key, v) {
		jfmt(v, buf, sizeof buf);
		printf("%s%s %s", first ? "" : ", ", key, buf);
		first = 0;
	}
	fputc('\n', stdout);
}

#define STATUS_COLS 7

static void
print_cell(const char *s, size_t width, int last)
{
	if (last)
		printf("%s\n", s);
	else
		printf("%-*s  ", (int)width, s);
}

static void
print_status(const json_t *st)
{
	static const char	*heads[STATUS_COLS] = { "TARGET", "BREAKER",
	    "RPM", "TPM", "COOLDOWN_MS", "INFLIGHT", "QUEUED" };
	const json_t		*targets, *t;
	char			(*cells)[STATUS_COLS][64] = NULL;
	char			 buf[64];
	size_t			 n, i, k, w[STATUS_COLS];

	jfmt(json_object_get(st, "version"), buf, sizeof buf);
	printf("%-14s%s\n", "version", buf);
	fmt_uptime(json_object_get(st, "uptime_s"), buf, sizeof buf);
	printf("%-14s%s\n", "uptime", buf);
	jfmt(json_object_get(st, "clients"), buf, sizeof buf);
	printf("%-14s%s\n", "clients", buf);
	jfmt(json_object_get(st, "inflight"), buf, sizeof buf);
	printf("%-14s%s\n", "inflight", buf);
	jfmt(json_object_get(st, "queued"), buf, sizeof buf);
	printf("%-14s%s\n", "queued", buf);

	targets = json_object_get(st, "targets");
	n = json_is_array(targets) ? json_array_size(targets) : 0;
	fputc('\n', stdout);
	if (n == 0)
		printf("no targets yet\n");
	else {
		cells = cli_reallocarray(NULL, n, sizeof *cells);
		for (k = 0; k < STATUS_COLS; k++)
			w[k] = strlen(heads[k]);
		for (i = 0; i < n; i++) {
			t = json_array_get(targets, i);
			jfmt(json_object_get(t, "target"), cells[i][0], 64);
			jfmt(json_object_get(t, "breaker"), cells[i][1], 64);
			jrate(json_object_get(t, "rpm"), cells[i][2], 64);
			jrate(json_object_get(t, "tpm"), cells[i][3], 64);
			jfmt(json_object_get(t, "cooldown_ms"), cells[i][4],
			    64);
			jfmt(json_object_get(t, "inflight"), cells[i][5], 64);
			jfmt(json_object_get(t, "queued"), cells[i][6], 64);
			for (k = 0; k < STATUS_COLS; k++)
				if (strlen(cells[i][k]) > w[k])
					w[k] = strlen(cells[i][k]);
		}
		for (k = 0; k < STATUS_COLS; k++)
			print_cell(heads[k], w[k], k + 1 == STATUS_COLS);
		for (i = 0; i < n; i++)
			for (k = 0; k < STATUS_COLS; k++)
				print_cell(cells[i][k], w[k],
				    k + 1 == STATUS_COLS);
		free(cells);
	}
	fputc('\n', stdout);
	print_flat("retry budget", json_object_get(st, "retry_budget"));
	print_flat("counters", json_object_get(st, "counters"));
}

/* For the commands whose options are few: -s, --json, --help. */
static const struct option small_options[] = {
	{ "json",	 no_argument,	    NULL, OPT_JSON },
	{ "socket",	 required_argument, NULL, 's' },
	{ "help",	 no_argument,	    NULL, 'h' },
	{ NULL,		 0,		    NULL, 0 }
};

/*
 * Parse the options of a command that takes no operands. Returns -1 to go
 * on, or an exit status.
 */
static int
small_getopt(const struct cmd *c, int argc, char **argv, int allow_json,
    int *json)
{
	int	ch;

	while ((ch = getopt_long(argc, argv, ":s:h", small_options,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			cli_socket = optarg;
			break;
		case OPT_JSON:
			if (!allow_json)
				return cli_usage_error(c, "unknown option "
				    "--json");
			*json = 1;
			break;
		case 'h':
			cli_usage(stdout, c);
			return 0;
		default:
			return cli_bad_option(c, ch, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error(c, "unexpected argument '%s'",
		    argv[optind]);
	return -1;
}

/* A failed small operation: 3 if the connection went, else 4. */
static int
op_failed(struct llmgate *g, const char *what)
{
	cli_warnx("%s: %s", what, llmgate_error(g));
	return llmgate_connected(g) ? EXIT_FAILED : EXIT_UNREACHABLE;
}

static int
cmd_status(const struct cmd *c, int argc, char **argv)
{
	struct llmgate	*g;
	json_error_t	 jerr;
	json_t		*st;
	char		*text;
	int		 json = 0, rv;

	if ((rv = small_getopt(c, argc, argv, 1, &json)) != -1)
		return rv;
	if ((g = cli_connect("llmgate", 0)) == NULL)
		return EXIT_UNREACHABLE;
	if (llmgate_status(g, &text) == -1) {
		rv = op_failed(g, "status");
		llmgate_close(g);
		return rv;
	}
	llmgate_close(g);
	if (json) {
		fputs(text, stdout);
		fputc('\n', stdout);
		free(text);
		return 0;
	}
	st = json_loads(text, JSON_DECODE_ANY, &jerr);
	free(text);
	if (!json_is_object(st)) {
		json_decref(st);
		cli_warnx("status: llmgated sent something that is not a JSON "
		    "object");
		return EXIT_FAILED;
	}
	print_status(st);
	json_decref(st);
	return 0;
}

static int
cmd_ping(const struct cmd *c, int argc, char **argv)
{
	struct llmgate	*g;
	int		 rv, json = 0;

	if ((rv = small_getopt(c, argc, argv, 0, &json)) != -1)
		return rv;
	if ((g = cli_connect("llmgate", 0)) == NULL)
		return EXIT_UNREACHABLE;
	if (llmgate_ping(g) == -1)
		rv = op_failed(g, "ping");
	else {
		printf("pong\n");
		rv = 0;
	}
	llmgate_close(g);
	return rv;
}

static int
cmd_reload(const struct cmd *c, int argc, char **argv)
{
	struct llmgate	*g;
	int		 rv, json = 0;

	if ((rv = small_getopt(c, argc, argv, 0, &json)) != -1)
		return rv;
	if ((g = cli_connect("llmgate", 0)) == NULL)
		return EXIT_UNREACHABLE;
	rv = llmgate_reload(g) == -1 ? op_failed(g, "reload failed") : 0;
	llmgate_close(g);
	return rv;
}

static int
cmd_metrics(const struct cmd *c, int argc, char **argv)
{
	struct llmgate	*g;
	char		*text;
	size_t		 len;
	int		 rv, json = 0;

	if ((rv = small_getopt(c, argc, argv, 0, &json)) != -1)
		return rv;
	if ((g = cli_connect("llmgate", 0)) == NULL)
		return EXIT_UNREACHABLE;
	if (llmgate_metrics(g, &text) == -1) {
		rv = op_failed(g, "metrics");
		llmgate_close(g);
		return rv;
	}
	llmgate_close(g);
	fputs(text, stdout);
	if ((len = strlen(text)) != 0 && text[len - 1] != '\n')
		fputc('\n', stdout);
	free(text);
	return 0;
}

static const struct option acquire_options[] = {
	{ "model",	 required_argument, NULL, 'm' },
	{ "tokens",	 required_argument, NULL, OPT_TOKENS },
	{ "timeout",	 required_argument, NULL, OPT_TIMEOUT },
	{ "priority",	 required_argument, NULL, OPT_PRIORITY },
	{ "json",	 no_argument,	    NULL, OPT_JSON },
	{ "socket",	 required_argument, NULL, 's' },
	{ "help",	 no_argument,	    NULL, 'h' },
	{ NULL,		 0,		    NULL, 0 }
};

static int
cmd_acquire(const struct cmd *c, int argc, char **argv)
{
	struct llmgate_acquire	 acq;
	struct llmgate_lease	 lease;
	enum llmgate_class	 cls;
	struct llmgate		*g;
	json_t			*o;
	char			 err[1024];
	int			 ch, json = 0, rv;

	memset(&acq, 0, sizeof acq);
	while ((ch = getopt_long(argc, argv, ":m:s:h", acquire_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'm':
			acq.target = optarg;
			break;
		case OPT_TOKENS:
			if (parse_u32("--tokens", optarg, 0,
			    &acq.tokens) == -1)
				return EXIT_USAGE;
			break;
		case OPT_TIMEOUT:
			if (parse_u32("--timeout", optarg, 1,
			    &acq.timeout_ms) == -1)
				return EXIT_USAGE;
			break;
		case OPT_PRIORITY:
			if (parse_priority(optarg, &acq.priority) == -1)
				return EXIT_USAGE;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 's':
			cli_socket = optarg;
			break;
		case 'h':
			cli_usage(stdout, c);
			return 0;
		default:
			return cli_bad_option(c, ch, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error(c, "unexpected argument '%s'",
		    argv[optind]);
	if (acq.target == NULL || *acq.target == '\0')
		return cli_usage_error(c, "-m PROVIDER/MODEL is required");

	if ((g = cli_connect("llmgate", json)) == NULL)
		return EXIT_UNREACHABLE;
	rv = llmgate_acquire(g, &acq, &lease, &cls, err, sizeof err);
	llmgate_close(g);
	if (rv == -1) {
		cli_warnx("acquire: %s", err);
		if (json) {
			o = json_object();
			json_object_set_new(o, "error", jerror("connection",
			    err));
			print_json(o);
		}
		return EXIT_UNREACHABLE;
	}
	if (rv == 1) {
		cli_warnx("acquire failed: %s: %s", class_name(cls), err);
		if (json) {
			o = json_object();
			json_object_set_new(o, "error", jerror(class_name(cls),
			    err));
			print_json(o);
		}
		return class_exit(cls) != 0 ? class_exit(cls) : EXIT_FAILED;
	}
	if (json) {
		o = json_object();
		json_object_set_new(o, "lease",
		    json_integer((json_int_t)lease.id));
		json_object_set_new(o, "target", jstr(lease.target));
		json_object_set_new(o, "ttl_ms", json_integer(lease.ttl_ms));
		print_json(o);
	} else
		printf("%llu\n", (unsigned long long)lease.id);
	return 0;
}

static const struct option report_options[] = {
	{ "status",	   required_argument, NULL, OPT_STATUS },
	{ "retry-after",   required_argument, NULL, OPT_RETRY_AFTER },
	{ "input-tokens",  required_argument, NULL, OPT_INPUT_TOKENS },
	{ "output-tokens", required_argument, NULL, OPT_OUTPUT_TOKENS },
	{ "socket",	   required_argument, NULL, 's' },
	{ "help",	   no_argument,	      NULL, 'h' },
	{ NULL,		   0,		      NULL, 0 }
};

static int
cmd_report(const struct cmd *c, int argc, char **argv)
{
	struct llmgate_report	 rep;
	struct llmgate		*g;
	uint64_t		 v;
	int			 ch, have_status = 0, rv;

	memset(&rep, 0, sizeof rep);
	rep.retry_after_s = -1;
	while ((ch = getopt_long(argc, argv, ":s:h", report_options,
	    NULL)) != -1) {
		switch (ch) {
		case OPT_STATUS:
			if (parse_u64("--status", optarg, 100, 599, &v) == -1)
				return EXIT_USAGE;
			rep.status = (uint32_t)v;
			have_status = 1;
			break;
		case OPT_RETRY_AFTER:
			if (parse_double("--retry-after", optarg, 0, 1e9,
			    &rep.retry_after_s) == -1)
				return EXIT_USAGE;
			break;
		case OPT_INPUT_TOKENS:
			if (parse_u64("--input-tokens", optarg, 0, INT64_MAX,
			    &rep.input_tokens) == -1)
				return EXIT_USAGE;
			break;
		case OPT_OUTPUT_TOKENS:
			if (parse_u64("--output-tokens", optarg, 0, INT64_MAX,
			    &rep.output_tokens) == -1)
				return EXIT_USAGE;
			break;
		case 's':
			cli_socket = optarg;
			break;
		case 'h':
			cli_usage(stdout, c);
			return 0;
		default:
			return cli_bad_option(c, ch, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		return cli_usage_error(c, "LEASE is required");
	if (argc > 1)
		return cli_usage_error(c, "unexpected argument '%s'", argv[1]);
	if (parse_u64("LEASE", argv[0], 1, UINT64_MAX, &rep.lease) == -1)
		return EXIT_USAGE;
	if (!have_status)
		return cli_usage_error(c, "--status is required");

	if ((g = cli_connect("llmgate", 0)) == NULL)
		return EXIT_UNREACHABLE;
	rv = llmgate_report(g, &rep) == -1 ? op_failed(g, "report failed") :
	    0;
	llmgate_close(g);
	return rv;
}

static const struct cmd *
cmd_find(const char *name)
{
	size_t	i;

	for (i = 0; i < NCMDS; i++) {
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	}
	return NULL;
}

static int
cmd_help(const struct cmd *c, int argc, char **argv)
{
	const struct cmd	*topic;

	if (argc > 1) {
		if ((topic = cmd_find(argv[1])) == NULL)
			return cli_usage_error(NULL, "unknown command '%s'",
			    argv[1]);
		cli_usage(stdout, topic);
		return 0;
	}
	cli_usage(stdout, NULL);
	return 0;
}

static const struct option main_options[] = {
	{ "socket",	 required_argument, NULL, 's' },
	{ "help",	 no_argument,	    NULL, 'h' },
	{ "version",	 no_argument,	    NULL, 'V' },
	{ NULL,		 0,		    NULL, 0 }
};

int
main(int argc, char **argv)
{
	const struct cmd	*c;
	int			 ch;

	while ((ch = getopt_long(argc, argv, "+:s:hV", main_options,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			cli_socket = optarg;
			break;
		case 'h':
			cli_usage(stdout, NULL);
			return 0;
		case 'V':
			printf("llmgate %s\n", LLMGATE_VERSION);
			return 0;
		default:
			return cli_bad_option(NULL, ch, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		return cli_usage_error(NULL, "no command given");
	if ((c = cmd_find(argv[0])) == NULL)
		return cli_usage_error(NULL, "unknown command '%s'", argv[0]);

	/* Each command parses its own options from its name on. */
	optind = 0;
	return c->fn(c, argc, argv);
}
