/*
 * cli.c: the `llmgate` command: its table of commands, main, and what
 * every command shares (messages and usage, option parsing, JSON output,
 * the connection). Calls live in cli-call.c, the rest in cli-admin.c.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *cli_socket;
int cli_stdin_used;

static int cmd_help(const struct cmd *, int, char **);

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
	    "  --tool-choice auto|none|required|function:NAME\n"
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
	{ "status", cmd_status, "status [--clients] [--json]" },
	{ "ping", cmd_ping,
	    "ping [--wait SECONDS]\n"
	    "  --wait SECONDS              until the daemon answers, at most "
	    "SECONDS" },
	{ "reload", cmd_reload, "reload" },
	{ "metrics", cmd_metrics, "metrics" },
	{ "acquire", cmd_acquire,
	    "acquire -m PROVIDER/MODEL|POOL [--tokens N] [--timeout MS] "
	    "[--priority P] [--json]" },
	{ "report", cmd_report,
	    "report LEASE --status HTTP_STATUS [--retry-after S] "
	    "[--input-tokens N] [--output-tokens N]" },
	{ "help", cmd_help, "help [COMMAND]" },
};
#define NCMDS (sizeof cmds / sizeof cmds[0])
static void
cli_vwarnx(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("llmgate: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
cli_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vwarnx(fmt, ap);
	va_end(ap);
}

void
cli_oom(void)
{
	fputs("llmgate: out of memory\n", stderr);
	exit(1);
}

void *
cli_reallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		cli_oom();
	if ((p = realloc(p, n * size == 0 ? 1 : n * size)) == NULL)
		cli_oom();
	return p;
}

char *
cli_strdup(const char *s)
{
	char *p;

	if (s == NULL)
		return NULL;
	if ((p = strdup(s)) == NULL)
		cli_oom();
	return p;
}

/* A command's whole usage, or without one the list of commands. */
void
cli_usage(FILE *f, const struct cmd *c)
{
	size_t i;

	if (c != NULL) {
		fprintf(f, "usage: llmgate [-s SOCKET] %s\n", c->usage);
		return;
	}
	fputs("usage: llmgate [-s SOCKET] COMMAND [options]\n"
	      "       llmgate --version | --help\n\ncommands:\n",
	    f);
	for (i = 0; i < NCMDS; i++)
		fprintf(f, "  %.*s\n", (int)strcspn(cmds[i].usage, "\n"),
		    cmds[i].usage);
	fputs("\n'llmgate help COMMAND' shows a command's options.\n"
	      "SOCKET: -s, else $LLMGATE_SOCKET, else " RUNSTATEDIR
	      "/llmgate/llmgate.sock.\n",
	    f);
}

/* Say what is wrong and how the command is used; the usage exit status. */
int
cli_usage_error(const struct cmd *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vwarnx(fmt, ap);
	va_end(ap);
	if (c != NULL)
		fprintf(stderr, "usage: llmgate [-s SOCKET] %.*s\n",
		    (int)strcspn(c->usage, "\n"), c->usage);
	else
		cli_usage(stderr, NULL);
	return EXIT_USAGE;
}

/*
 * What getopt returned that no command handles itself: -s, --help, and
 * its '?' and ':' answers, in our words. -1 to go on, or an exit status.
 * A long option without a letter is named as given: its optopt is our
 * OPT_* value, not a character.
 */
int
cli_option(const struct cmd *c, int ch, char **argv)
{
	char opt[3] = { '-', (char)optopt, '\0' };
	const char *name;

	name = (optopt > 0 && optopt <= UCHAR_MAX) ? opt : argv[optind - 1];
	switch (ch) {
	case 's':
		cli_socket = optarg;
		return -1;
	case 'h':
		cli_usage(stdout, c);
		return 0;
	case ':':
		return cli_usage_error(c, "option %s requires an argument",
		    name);
	default:
		return cli_usage_error(c, "unknown option %s", name);
	}
}

int
cli_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
    uint64_t *out)
{
	unsigned long long v;
	char *end;

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

int
cli_parse_u32(const char *opt, const char *s, uint32_t min, uint32_t *out)
{
	uint64_t v;

	if (cli_parse_u64(opt, s, min, UINT32_MAX, &v) == -1)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int
cli_parse_i64(const char *opt, const char *s, int64_t *out)
{
	long long v;
	char *end;

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

int
cli_parse_double(const char *opt, const char *s, double min, double max,
    double *out)
{
	double v;
	char *end;

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

int
cli_parse_priority(const char *s, enum llmgate_priority *out)
{
	int v;

	if ((v = llmgate_priority_from_name(s)) == -1) {
		cli_warnx("--priority: '%s' is not high, normal or low", s);
		return -1;
	}
	*out = (enum llmgate_priority)v;
	return 0;
}

const char *
cli_class_name(enum llmgate_class cls)
{
	const char *s = llmgate_class_name(cls);

	return s != NULL ? s : "internal";
}

/* The exit status a daemon's answer of class cls maps to. */
int
cli_class_exit(enum llmgate_class cls)
{
	if (cls == LLMGATE_OK)
		return 0;
	if (cls == LLMGATE_INVALID_REQUEST)
		return EXIT_USAGE;
	return EXIT_FAILED;
}

/*
 * A string for JSON output. The daemon relays what providers sent; should
 * that not be UTF-8, bad bytes become U+FFFD rather than losing the field.
 */
json_t *
cli_jstr(const char *s)
{
	json_t *j;
	const unsigned char *p;
	char *t;
	size_t len, i, n, k;
	unsigned c;

	if (s == NULL)
		s = "";
	if ((j = json_string(s)) != NULL)
		return j;
	len = strlen(s);
	t = cli_reallocarray(NULL, 3, len + 1);
	p = (const unsigned char *)s;
	for (i = n = 0; i < len;) {
		c = p[i];
		k = c < 0x80         ? 1 :
		    (c >> 5) == 0x6  ? 2 :
		    (c >> 4) == 0xe  ? 3 :
		    (c >> 3) == 0x1e ? 4 :
		                       0;
		if (k > 1 && i + k <= len) {
			size_t x;

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

/* {"class": cls, "message": message} */
json_t *
cli_jerror(const char *cls, const char *message)
{
	json_t *e = json_object();

	json_object_set_new(e, "class", json_string(cls));
	json_object_set_new(e, "message", cli_jstr(message));
	return e;
}

/* The one JSON object of --json, on a line of its own; o is consumed. */
void
cli_print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(o);
}

/*
 * --json's answer when there is no result: the error, and for a call's
 * shape (attempts) an empty list of attempts.
 */
void
cli_print_error(const char *cls, const char *message, int attempts)
{
	json_t *o = json_object();

	json_object_set_new(o, "error", cli_jerror(cls, message));
	if (attempts)
		json_object_set_new(o, "attempts", json_array());
	cli_print_json(o);
}

/*
 * Connect, saying why not on failure. With json, scripts also get the
 * reason as the one object on stdout.
 */
struct llmgate *
cli_connect(const char *name, int json)
{
	struct llmgate *g;
	char path[PATH_MAX], err[1024];

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
	if (json)
		cli_print_error("connection", err, 1);
	return NULL;
}

static const struct cmd *
cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++) {
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	}
	return NULL;
}

static int
cmd_help(const struct cmd *c, int argc, char **argv)
{
	const struct cmd *topic;

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
	{ "version", no_argument, NULL, 'V' }, CLI_OPTIONS_END
};

int
main(int argc, char **argv)
{
	const struct cmd *c;
	int ch, rv;

	while ((ch = getopt_long(argc, argv, "+:s:hV", main_options, NULL)) !=
	    -1) {
		if (ch == 'V') {
			printf("llmgate %s\n", LLMGATE_VERSION);
			return 0;
		}
		if ((rv = cli_option(NULL, ch, argv)) != -1)
			return rv;
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
