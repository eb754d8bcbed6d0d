/*
 * cli-input.c: `llmgate call`'s request from its files and prompt: the
 * --messages, --tools and --schema JSON files and the prompt (an argument
 * or standard input), read whole and checked before anything is sent.
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
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

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
	json_error_t jerr;
	json_t *j;
	FILE *f;
	char *buf;
	size_t len;
	int saved;

	if (strcmp(path, "-") == 0) {
		if (cli_stdin_used++) {
			cli_warnx("%s: standard input is already used", opt);
			return NULL;
		}
		f = stdin;
	} else if ((f = fopen(path, "r")) == NULL) {
		cli_warnx("%s: cannot read %s: %s", opt, path, strerror(errno));
		return NULL;
	}
	errno = 0;
	buf = read_all(f, &len);
	saved = errno;
	if (f != stdin)
		fclose(f);
	if (buf == NULL) {
		cli_warnx("%s: cannot read %s: %s", opt, path, strerror(saved));
		return NULL;
	}
	j = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (j == NULL)
		cli_warnx("%s: %s:%d:%d: %s", opt, path, jerr.line, jerr.column,
		    jerr.text);
	return j;
}

/* Compact JSON text of a value, our own copy. */
static char *
json_text(const json_t *j)
{
	char *s, *t;

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
	const json_t *part, *t;
	size_t i, len = 0, n;
	char *s = NULL;

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
	const json_t *v = json_object_get(o, key);

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
	const json_t *fn;
	char *id = NULL, *name = NULL, *args = NULL;
	int bad = 0, rv = -1;

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
	char *s;
	size_t a, b;

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
int
cli_input_messages(const char *path, struct llmgate_request *req, char **system)
{
	json_t *arr, *j, *tcs, *tc;
	const char *role;
	char *content, *call_id, *name;
	size_t i, k, n = 0;
	int r, m, bad = 0, rv = -1;

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
			          "with a role",
			    path, i + 1);
			goto out;
		}
		if (content_text(json_object_get(j, "content"), &content) ==
		    -1) {
			cli_warnx("--messages: %s: message %zu: content is not "
			          "text",
			    path, i + 1);
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
			          "'%s' (user, assistant, tool or system)",
			    path, i + 1, role);
			goto out;
		}
		if (content == NULL && r != LLMGATE_ROLE_ASSISTANT) {
			cli_warnx("--messages: %s: message %zu: a %s message "
			          "needs content",
			    path, i + 1, role);
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
			          "not an array",
			    path, i + 1);
			goto out;
		}
		json_array_foreach(tcs, k, tc) {
			if (tool_call_from_json(tc, req, m) == -1) {
				cli_warnx("--messages: %s: message %zu: tool "
				          "call %zu needs a name (id, name, "
				          "arguments)",
				    path, i + 1, k + 1);
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
int
cli_input_tools(const char *path, struct llmgate_request *req)
{
	json_t *arr, *j, *fn, *params;
	char *name = NULL, *desc = NULL, *ptext = NULL;
	size_t i;
	int bad = 0, rv = -1;

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
			          "string description)",
			    path, i + 1);
			goto out;
		}
		if ((params = json_object_get(j, "parameters")) == NULL)
			params = json_object_get(j, "input_schema");
		if (params != NULL && !json_is_null(params)) {
			if (!json_is_object(params)) {
				cli_warnx("--tools: %s: tool %zu: parameters "
				          "is not a JSON Schema object",
				    path, i + 1);
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

int
cli_input_schema(const char *path, struct llmgate_request *req)
{
	json_t *j;
	char *text;

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
int
cli_input_prompt(const char *prompt, struct llmgate_request *req)
{
	char *text;
	size_t len;

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
		while (
		    len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
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
