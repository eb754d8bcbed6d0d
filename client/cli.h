/*
 * cli.h: the llmgate command's internal header, a section per file.
 *
 * Exit status (llmgate(1)): 0 success, 2 usage error or invalid input
 * (checked before anything is sent; also the daemon's invalid_request),
 * 3 the daemon is unreachable or went away, 4 the call failed.
 */
#ifndef CLI_H
#define CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "llmgate.h"

#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 3
#define EXIT_FAILED      4

/* Input we read whole (prompts, JSON files) is capped at a frame's size. */
#define CLI_MAX_INPUT (16u * 1024 * 1024)

/* Every command takes -s and --help; its option table ends with these. */
#define CLI_OPTIONS_END \
	{ "socket", required_argument, NULL, 's' }, \
	    { "help", no_argument, NULL, 'h' }, \
	{ \
		NULL, 0, NULL, 0 \
	}

struct cmd {
	const char *name;
	int (*fn)(const struct cmd *, int, char **);
	const char *usage;
};

/* cli.c */
extern const char *cli_socket; /* -s, NULL: the default resolution */
extern int cli_stdin_used;
void cli_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void cli_oom(void) __attribute__((noreturn));
void *cli_reallocarray(void *, size_t, size_t);
char *cli_strdup(const char *);
void cli_usage(FILE *, const struct cmd *);
int cli_usage_error(const struct cmd *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
int cli_option(const struct cmd *, int, char **);
int cli_parse_u64(const char *, const char *, uint64_t, uint64_t, uint64_t *);
int cli_parse_u32(const char *, const char *, uint32_t, uint32_t *);
int cli_parse_i64(const char *, const char *, int64_t *);
int cli_parse_double(const char *, const char *, double, double, double *);
int cli_parse_priority(const char *, enum llmgate_priority *);
const char *cli_class_name(enum llmgate_class);
int cli_class_exit(enum llmgate_class);
json_t *cli_jstr(const char *);
json_t *cli_jerror(const char *, const char *);
void cli_print_json(json_t *);
void cli_print_error(const char *, const char *, int);
struct llmgate *cli_connect(const char *, int);

/* cli-call.c */
int cmd_call(const struct cmd *, int, char **);
/* cli-input.c: the request's files and prompt; -1 after saying why. */
int cli_input_messages(const char *, struct llmgate_request *, char **);
int cli_input_tools(const char *, struct llmgate_request *);
int cli_input_schema(const char *, struct llmgate_request *);
int cli_input_prompt(const char *, struct llmgate_request *);

/* cli-admin.c */
int cmd_status(const struct cmd *, int, char **);
int cmd_ping(const struct cmd *, int, char **);
int cmd_reload(const struct cmd *, int, char **);
int cmd_metrics(const struct cmd *, int, char **);
int cmd_acquire(const struct cmd *, int, char **);
int cmd_report(const struct cmd *, int, char **);

#endif
