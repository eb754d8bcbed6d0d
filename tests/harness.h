/*
 * harness.h: end-to-end test support: start the real llmgated (and the
 * loopback fake provider) in a temporary directory, run the real CLI, and
 * speak raw frames to the daemon.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <sys/types.h>

#include <stdint.h>

#include <jansson.h>

#include "llmgate.h"
#include "proto.h"

struct daemon {
	pid_t pid;
	char dir[64];
	char sock[128];
	char conf[128];
	char log[128];
};

/* Write conf_text (NULL: embedded default) and start llmgated on it. */
void h_daemon_start(struct daemon *, const char *conf_text);
/* The same, as user (the caller is root); NULL: as ourselves. */
void h_daemon_start_as(struct daemon *, const char *conf_text,
    const char *user);
/* SIGTERM; returns the exit status (0 expected). */
int h_daemon_stop(struct daemon *);
int h_daemon_alive(struct daemon *);
/* The daemon's log so far (free()). */
char *h_daemon_log(struct daemon *);

/* Start tests/fakeprov on an ephemeral port; returns the port. */
/* The last request fakeprov got for a model, and how many (of a status). */
json_t *h_fakeprov_last(int port, const char *model);
long long h_fakeprov_count(int port, const char *model, const char *status);
const char *h_jtext(const json_t *);
/* "prov/tag-prov[+faults]": a target whose model name is the test's own
 * (fakeprov counts per model name; faults are fakeprov's, e.g. "cut=4"). */
char *h_target(const char *prov, const char *tag, const char *faults);
const char *h_model_of(const char *target);
/* h_fakeprov_last() and h_fakeprov_count() of a target's model. */
json_t *h_fakeprov_last_of(int port, const char *target);
long long h_fakeprov_seen(int port, const char *target);
int h_fakeprov_start(pid_t *);
void h_fakeprov_stop(pid_t);
/* GET a fakeprov path; the body as JSON (json_decref). */
json_t *h_fakeprov_get(int port, const char *path);
/* A TCP port free on 127.0.0.1 now (bound, read, closed). */
int h_free_port(void);

struct run {
	int status; /* exit code, or 128+signal */
	char *out;
	char *err;
};
/* Run BUILD_DIR/llmgate with -s SOCK and argv (NULL-terminated). */
void h_cli(struct run *, struct daemon *, const char *stdin_text, ...)
    __attribute__((sentinel));
/* Run any program (path relative to BUILD_DIR when it has no '/'). */
void h_run(struct run *, const char *stdin_text, char *const argv[]);
void h_run_free(struct run *);

/* A raw connection with the handshake done (or not). */
int h_raw_connect(struct daemon *, int hello);
void h_raw_send(int fd, msgpack_sbuffer *);
/* Send a frame packed after 4 placeholder bytes, its length filled in. */
void h_raw_send_framed(int fd, msgpack_sbuffer *);
/* Read one frame with a timeout; 0 ok, -1 on EOF/timeout/garbage. */
int h_raw_recv(int fd, struct proto_msg *, int timeout_ms);
/* 1 when the peer closed (EOF within timeout). */
int h_raw_closed(int fd, int timeout_ms);

/* A one-message request for prompt to the given targets. */
struct llmgate_request *h_request(const char *prompt, ...)
    __attribute__((sentinel));
void h_request_free(struct llmgate_request *);

/* A libllmgate connection to the daemon (fails the test if it cannot). */
struct llmgate *h_connect(struct daemon *, const char *client_name);
/* Process g until *done is set by a callback; fails the test on a stall
 * of 10 s or a lost connection. */
void h_drive(struct llmgate *g, int *done);
/* The answer to one asynchronous acquire or report, by h_lease_cb. */
struct h_lease {
	int done; /* times answered: exactly once, tests check */
	enum llmgate_class cls;
	uint64_t lease;
	char target[256];
	char message[128];
};
void h_lease_cb(const struct llmgate_lease *, enum llmgate_class,
    const char *message, void *arg);
uint64_t h_mono_ms(void);
void h_sleep_ms(int ms);

/* Run fn in a child as the user nobody (root only): its exit status. */
int h_as_nobody(int (*fn)(void *), void *arg);

/* The path of an optional tool on $PATH into buf; -1 when missing. */
int h_which(const char *name, char *buf, size_t size);

char *h_strdup_printf(const char *, ...) __attribute__((format(printf, 1, 2)));

/*
 * A suite's fixture: one daemon and one fakeprov for all its tests, set
 * up and torn down in the parent (unchecked fixtures), so a failure there
 * is printed and remembered in *failed rather than asserted.
 */
/* The tail of a suite's config: quick retries, a budget that never runs
 * out (the suites fail many calls on purpose, fast). */
#define H_CONF_FAST_RETRY \
	"retry = { attempts = 2; initial_ms = 10; max_ms = 50; };\n" \
	"retry_budget = { ratio = 1.0; min_per_s = 1000; };\n"
/* Stop the daemon (it must exit 0 on SIGTERM) and fakeprov. */
void h_fixture_stop(const char *suite, struct daemon *, pid_t *fp_pid,
    int *failed);
/* Run the suite; stop what a setup that failed half way left running.
 * The exit status for main(). */
struct Suite;
int h_fixture_main(const char *suite, struct Suite *, struct daemon *,
    pid_t *fp_pid, const int *failed);

#endif
