/*
 * cli-call.c: `llmgate call`. The request is built from the options and
 * files (read by cli-input.c) and checked whole before the daemon hears
 * of it; the answer is printed as text (streamed as it arrives) or as
 * one JSON object.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Tool arguments as parsed JSON, or the raw text when it is not JSON. */
static json_t *
jargs(const char *s)
{
	json_t *j;

	if (s == NULL || *s == '\0')
		return json_object();
	if ((j = json_loads(s, JSON_DECODE_ANY, NULL)) != NULL)
		return j;
	return cli_jstr(s);
}

static json_t *
jtool_call(const struct llmgate_tool_call *tc)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", cli_jstr(tc->id));
	json_object_set_new(o, "name", cli_jstr(tc->name));
	json_object_set_new(o, "arguments", jargs(tc->arguments));
	return o;
}

static json_t *
jusage(uint64_t in, uint64_t out)
{
	json_t *u = json_object();

	json_object_set_new(u, "input_tokens", json_integer((json_int_t)in));
	json_object_set_new(u, "output_tokens", json_integer((json_int_t)out));
	return u;
}

static json_t *
jattempts(const struct llmgate_result *r)
{
	const struct llmgate_attempt *a;
	json_t *arr = json_array(), *o;
	size_t i;

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
	const char *s = llmgate_finish_name(f);

	return (s != NULL && *s != '\0') ? s : "other";
}

static json_t *
result_json(const struct llmgate_result *r)
{
	json_t *o = json_object(), *tcs;
	size_t i;

	if (r->cls != LLMGATE_OK) {
		json_object_set_new(o, "error",
		    cli_jerror(cli_class_name(r->cls), r->message));
		if (r->partial) {
			json_object_set_new(o, "partial", json_true());
			json_object_set_new(o, "text", cli_jstr(r->text));
		}
		json_object_set_new(o, "usage_total",
		    jusage(r->total_input_tokens, r->total_output_tokens));
		json_object_set_new(o, "attempts", jattempts(r));
		return o;
	}
	json_object_set_new(o, "text", cli_jstr(r->text));
	json_object_set_new(o, "target", cli_jstr(r->target));
	json_object_set_new(o, "finish_reason",
	    json_string(finish_name(r->finish)));
	if (r->stop_sequence != NULL)
		json_object_set_new(o, "stop_sequence",
		    cli_jstr(r->stop_sequence));
	json_object_set_new(o, "usage",
	    jusage(r->input_tokens, r->output_tokens));
	json_object_set_new(o, "usage_total",
	    jusage(r->total_input_tokens, r->total_output_tokens));
	tcs = json_array();
	for (i = 0; i < r->ntool_calls; i++)
		json_array_append_new(tcs, jtool_call(&r->tool_calls[i]));
	json_object_set_new(o, "tool_calls", tcs);
	json_object_set_new(o, "attempts", jattempts(r));
	return o;
}

/* What --stream has put on stdout so far. */
struct call_state {
	int json;
	int printed; /* any text went out */
	int midline; /* the last byte out was not a newline */
};

static void
call_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct call_state *cs = arg;

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
	const struct llmgate_attempt *a;
	char status[16];
	size_t i;

	for (i = 0; i < r->nattempts; i++) {
		a = &r->attempts[i];
		if (a->status != 0)
			snprintf(status, sizeof status, "%u", a->status);
		else
			snprintf(status, sizeof status, "-");
		fprintf(stderr, "  %s  %s  %s  %ums",
		    a->target != NULL ? a->target : "-", cli_class_name(a->cls),
		    status, a->ms);
		if (a->message != NULL && *a->message != '\0')
			fprintf(stderr, "  %s", a->message);
		fputc('\n', stderr);
	}
}

static void
print_result(const struct llmgate_result *r, struct call_state *cs)
{
	size_t i, len;

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
	OPT_REJECT,
	OPT_TOOL_CHOICE
};

static const struct option call_options[] = { { "model", required_argument,
	                                          NULL, 'm' },
	{ "route", required_argument, NULL, 'r' },
	{ "system", required_argument, NULL, OPT_SYSTEM },
	{ "messages", required_argument, NULL, OPT_MESSAGES },
	{ "tools", required_argument, NULL, OPT_TOOLS },
	{ "schema", required_argument, NULL, OPT_SCHEMA },
	{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
	{ "temperature", required_argument, NULL, OPT_TEMPERATURE },
	{ "top-p", required_argument, NULL, OPT_TOP_P },
	{ "stop", required_argument, NULL, OPT_STOP },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "attempts", required_argument, NULL, OPT_ATTEMPTS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "priority", required_argument, NULL, OPT_PRIORITY },
	{ "stream", no_argument, NULL, OPT_STREAM },
	{ "on-cut", required_argument, NULL, OPT_ON_CUT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "fallback-on", required_argument, NULL, OPT_FALLBACK_ON },
	{ "reject", required_argument, NULL, OPT_REJECT },
	{ "tool-choice", required_argument, NULL, OPT_TOOL_CHOICE },
	CLI_OPTIONS_END };

/* What the command line asks for. Strings are borrowed from argv. */
struct call_opts {
	struct llmgate_request *req;
	char *system; /* --system, then --messages' */
	size_t ntargets;
	int route; /* -r given */
	int stream;
	struct call_state cs;
	const char *name;     /* --name */
	const char *messages; /* files */
	const char *tools;
	const char *schema;
};

/* The options into o. -1 to go on, or an exit status. */
static int
call_getopt(const struct cmd *c, int argc, char **argv, struct call_opts *o)
{
	struct llmgate_request *req = o->req;
	enum llmgate_priority prio;
	double x;
	int64_t seed;
	uint32_t u;
	char *p, *q;
	int ch, v;

	while ((ch = getopt_long(argc, argv, ":m:r:s:h", call_options, NULL)) !=
	    -1) {
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
				          "restart or fail",
				    optarg);
				return EXIT_USAGE;
			}
			llmgate_request_set_on_cut(req, (enum llmgate_on_cut)v);
			break;
		case OPT_TOOL_CHOICE:
			if (strncmp(optarg, "function:", 9) == 0)
				v = llmgate_request_set_tool_choice(req,
				    LLMGATE_TOOLS_REQUIRED, optarg + 9);
			else if ((v = llmgate_tool_choice_from_name(optarg)) !=
			    -1)
				v = llmgate_request_set_tool_choice(req,
				    (enum llmgate_tool_choice)v, NULL);
			if (v == -1) {
				cli_warnx("--tool-choice: '%s' is not auto, "
				          "none, required or function:NAME",
				    optarg);
				return EXIT_USAGE;
			}
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
					(void)
					    llmgate_request_add_fallback_on(req,
					        q);
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
	struct call_opts o;
	struct llmgate_result *r = NULL;
	struct llmgate *g = NULL;
	const char *prompt = NULL;
	int rv;

	memset(&o, 0, sizeof o);
	o.name = "llmgate";
	o.req = llmgate_request_new();
	if ((rv = call_getopt(c, argc, argv, &o)) != -1)
		goto out;
	rv = EXIT_USAGE;
	argc -= optind;
	argv += optind;
	if (argc > 1) {
		rv = cli_usage_error(c,
		    "too many arguments (quote the "
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
	if (o.messages != NULL &&
	    cli_input_messages(o.messages, o.req, &o.system) == -1)
		goto out;
	if (o.tools != NULL && cli_input_tools(o.tools, o.req) == -1)
		goto out;
	if (o.schema != NULL && cli_input_schema(o.schema, o.req) == -1)
		goto out;
	if (o.messages == NULL && cli_input_prompt(prompt, o.req) == -1)
		goto out;
	if (o.system != NULL)
		llmgate_request_set_system(o.req, o.system);

	if ((g = cli_connect(o.name, o.cs.json)) == NULL) {
		rv = EXIT_UNREACHABLE;
		goto out;
	}
	if (llmgate_call(g, o.req, o.stream ? call_chunk : NULL, &o.cs, &r) ==
	    -1) {
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
