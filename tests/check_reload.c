/*
 * check_reload.c: reload, drain and the socket's security end to end,
 * with the real llmgated and CLI and the built-in mock provider. A reload
 * adds and removes providers under calls in flight and keeps what the
 * daemon learned about targets; an invalid config is refused with its
 * line; SIGTERM drains (new clients fail at once) and cancels what is left
 * at drain_ms; admin ops, per-uid connection limits and the socket's group
 * are enforced. Some checks need root (setuid to nobody, chown to another
 * group) and are skipped without it.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"

#ifndef BUILD_DIR
#define BUILD_DIR "."
#endif

#define MOCK "  { name = \"mock\"; type = \"mock\"; }"

static struct daemon d;

/* Each test starts its own daemon; one that ended itself is not stopped. */
static void
teardown(void)
{
	char *cmd;

	if (d.pid > 0)
		ck_assert_int_eq(h_daemon_stop(&d), 0);
	else if (d.dir[0] != '\0') {
		cmd = h_strdup_printf("rm -rf '%s'", d.dir);
		if (system(cmd) != 0)
			perror("rm");
		free(cmd);
	}
	memset(&d, 0, sizeof d);
}

/* Replace the config file whole, as an editor that renames would. */
static void
write_conf(const char *text)
{
	char *tmp = h_strdup_printf("%s.new", d.conf);
	FILE *f = fopen(tmp, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, d.conf), 0);
	free(tmp);
}

static int
count_in_log(const char *needle)
{
	char *log = h_daemon_log(&d), *p;
	int n = 0;

	for (p = log; (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(log);
	return n;
}

/* Wait for the log to name needle at least n times. */
static void
wait_log(const char *needle, int n)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (count_in_log(needle) >= n)
			return;
		h_sleep_ms(10);
	}
	ck_abort_msg("the log never said '%s'", needle);
}

/* SIGHUP, then wait until the daemon has taken or refused the config. */
static void
sighup(void)
{
	int ok = count_in_log("configuration reloaded");
	int refused = count_in_log("reload refused");
	int i;

	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	for (i = 0; i < 500; i++) {
		if (count_in_log("configuration reloaded") > ok ||
		    count_in_log("reload refused") > refused)
			return;
		h_sleep_ms(10);
	}
	ck_abort_msg("no reload in the log after SIGHUP");
}

static json_t *
status(void)
{
	struct llmgate *g = h_connect(&d, "status");
	char *text;
	json_t *st;

	ck_assert_int_eq(llmgate_status(g, &text), 0);
	st = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(st);
	free(text);
	llmgate_close(g);
	return st;
}

/* The status entry of target, or NULL (borrowed from st). */
static json_t *
status_target(json_t *st, const char *target)
{
	json_t *ts = json_object_get(st, "targets"), *t;
	size_t i;

	json_array_foreach(ts, i, t) {
		if (strcmp(json_string_value(json_object_get(t, "target")),
		        target) == 0)
			return t;
	}
	return NULL;
}

static void
wait_inflight(int n)
{
	json_t *st;
	int i, now;

	for (i = 0; i < 500; i++) {
		st = status();
		now = (int)json_integer_value(json_object_get(st, "inflight"));
		json_decref(st);
		if (now >= n)
			return;
		h_sleep_ms(10);
	}
	ck_abort_msg("never %d calls in flight", n);
}

struct pending {
	int done;
	enum llmgate_class cls;
	char text[256];
	uint64_t at; /* h_mono_ms() when it ended */
};

static void
pending_done(struct llmgate_result *res, void *arg)
{
	struct pending *p = arg;

	p->done = 1;
	p->cls = res->cls;
	snprintf(p->text, sizeof p->text, "%s",
	    res->text != NULL        ? res->text :
	        res->message != NULL ? res->message :
	                               "");
	p->at = h_mono_ms();
	llmgate_result_free(res);
}

/* Submit a call and make sure the daemon has it (the request is sent). */
static void
submit(struct llmgate *g, const char *target, const char *prompt,
    struct pending *p)
{
	struct llmgate_request *req = h_request(prompt, target, NULL);
	struct pollfd pfd;

	memset(p, 0, sizeof *p);
	llmgate_request_set_attempts(req, 1);
	ck_assert_uint_gt(llmgate_submit(g, req, NULL, pending_done, p), 0);
	h_request_free(req);
	while (llmgate_want_write(g)) {
		pfd.fd = llmgate_fd(g);
		pfd.events = POLLOUT;
		ck_assert_int_gt(poll(&pfd, 1, 5000), 0);
		ck_assert_int_ge(llmgate_process(g), 0);
	}
}

/* The daemon ended on its own: its exit status, within timeout_ms. */
static int
daemon_exit(int timeout_ms)
{
	int i, st;

	for (i = 0; i < timeout_ms / 10; i++) {
		if (waitpid(d.pid, &st, WNOHANG) == d.pid) {
			d.pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) :
			                       128 + WTERMSIG(st);
		}
		h_sleep_ms(10);
	}
	ck_abort_msg("llmgated did not exit");
	return -1;
}

static int
unix_connect(const char *path, int *err)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		abort();
	memcpy(sun.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A reload adds a provider while a call is in flight: the call finishes
 * normally, and the new provider answers at once.
 */
START_TEST(test_reload_adds_provider)
{
	struct llmgate *g;
	struct pending p;
	struct run r;
	json_t *st;

	h_daemon_start(&d, "providers = (\n" MOCK "\n);\n");
	g = h_connect(&d, "inflight");
	submit(g, "mock/slow:800", "before", &p);
	wait_inflight(1);

	write_conf("providers = (\n" MOCK ",\n"
	           "  { name = \"mock2\"; type = \"mock\"; }\n);\n");
	sighup();
	ck_assert_int_eq(count_in_log("reload refused"), 0);
	/* The reload did not wait for, nor end, the call. */
	st = status();
	ck_assert_int_eq(json_integer_value(json_object_get(st, "inflight")),
	    1);
	json_decref(st);

	h_drive(g, &p.done);
	ck_assert_int_eq(p.cls, LLMGATE_OK);
	ck_assert_str_eq(p.text, "echo: before");
	llmgate_close(g);

	h_cli(&r, &d, NULL, "call", "-m", "mock2/echo", "after", NULL);
	ck_assert_msg(r.status == 0, "mock2/echo: exit %d: %s", r.status,
	    r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "echo: after"));
	h_run_free(&r);
}
END_TEST

/*
 * An invalid config is refused, by SIGHUP and by `llmgate reload` alike:
 * the daemon keeps serving on the running one and says why, with the line.
 */
START_TEST(test_reload_invalid_keeps_running)
{
	char *log, *where;
	struct run r;

	h_daemon_start(&d, "providers = (\n" MOCK "\n);\n");
	write_conf("providers = (\n" MOCK "\n);\nbroken = ;\n");
	sighup();
	log = h_daemon_log(&d);
	where = h_strdup_printf("%s:4: syntax error", d.conf);
	ck_assert_msg(strstr(log,
	                  "reload refused, keeping the running config") !=
	            NULL &&
	        strstr(log, where) != NULL,
	    "log: %s", log);
	free(log);
	ck_assert(h_daemon_alive(&d));

	h_cli(&r, &d, NULL, "call", "-m", "mock/echo", "still here", NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "echo: still here"));
	h_run_free(&r);

	h_cli(&r, &d, NULL, "reload", NULL);
	ck_assert_int_ne(r.status, 0);
	ck_assert_msg(strstr(r.err, where) != NULL, "stderr: %s", r.err);
	ck_assert_ptr_nonnull(strstr(r.err, "keeping the running config"));
	h_run_free(&r);
	free(where);

	/* Fixed: the same command succeeds. */
	write_conf("providers = (\n" MOCK "\n);\n");
	h_cli(&r, &d, NULL, "reload", NULL);
	ck_assert_msg(r.status == 0, "reload: %s", r.err);
	h_run_free(&r);
}
END_TEST

/*
 * A provider removed under a call: the call finishes on the config it
 * started with; a new call to the provider is refused as unknown, and the
 * provider's targets leave status once idle.
 */
START_TEST(test_reload_removes_provider)
{
	struct llmgate *g;
	struct pending p;
	struct run r;
	json_t *j, *st;

	h_daemon_start(&d,
	    "providers = (\n" MOCK ",\n"
	    "  { name = \"gone\"; type = \"mock\"; }\n);\n");
	g = h_connect(&d, "inflight");
	submit(g, "gone/slow:800", "last words", &p);
	wait_inflight(1);
	st = status();
	ck_assert_ptr_nonnull(status_target(st, "gone/slow:800"));
	json_decref(st);

	write_conf("providers = (\n" MOCK "\n);\n");
	sighup();
	ck_assert_int_eq(count_in_log("reload refused"), 0);
	h_drive(g, &p.done);
	ck_assert_int_eq(p.cls, LLMGATE_OK);
	ck_assert_str_eq(p.text, "echo: last words");
	llmgate_close(g);

	h_cli(&r, &d, NULL, "call", "--json", "-m", "gone/echo", "hi", NULL);
	ck_assert_int_eq(r.status, 2);
	j = json_loads(r.out, 0, NULL);
	ck_assert_msg(j != NULL, "no JSON: %s %s", r.out, r.err);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_object_get(j, "error"),
	                         "class")),
	    "invalid_request");
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(
	               json_object_get(json_object_get(j, "error"), "message")),
	        "unknown provider"));
	json_decref(j);
	h_run_free(&r);

	st = status();
	ck_assert_ptr_null(status_target(st, "gone/slow:800"));
	json_decref(st);
	h_cli(&r, &d, NULL, "call", "-m", "mock/echo", "ok", NULL);
	ck_assert_int_eq(r.status, 0);
	h_run_free(&r);
}
END_TEST

/* What the daemon learned about a target survives a reload. */
START_TEST(test_reload_keeps_cooldown)
{
	struct run r;
	char *lease;
	json_t *st, *t;

	h_daemon_start(&d, "providers = (\n" MOCK "\n);\n");
	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", NULL);
	ck_assert_int_eq(r.status, 0);
	lease = strdup(r.out);
	lease[strcspn(lease, "\n")] = '\0';
	h_run_free(&r);
	h_cli(&r, &d, NULL, "report", lease, "--status", "429", "--retry-after",
	    "30", NULL);
	ck_assert_msg(r.status == 0, "report: %s", r.err);
	h_run_free(&r);
	free(lease);

	/* A real change, through the CLI. */
	write_conf("providers = (\n" MOCK ",\n"
	           "  { name = \"other\"; type = \"mock\"; }\n);\n");
	h_cli(&r, &d, NULL, "reload", NULL);
	ck_assert_msg(r.status == 0, "reload: %s", r.err);
	h_run_free(&r);
	ck_assert_int_eq(count_in_log("configuration reloaded"), 1);

	st = status();
	t = status_target(st, "mock/echo");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_gt(json_integer_value(json_object_get(t, "cooldown_ms")),
	    20000);
	json_decref(st);
}
END_TEST

/* A lease on mock/echo, reported with an HTTP status, through the CLI. */
static char *
cli_acquire(void)
{
	struct run r;
	char *lease;

	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", NULL);
	ck_assert_msg(r.status == 0, "acquire: %s", r.err);
	lease = strdup(r.out);
	lease[strcspn(lease, "\n")] = '\0';
	h_run_free(&r);
	return lease;
}

static void
cli_report(char *lease, const char *status)
{
	struct run r;

	h_cli(&r, &d, NULL, "report", lease, "--status", status, NULL);
	ck_assert_msg(r.status == 0, "report: %s", r.err);
	h_run_free(&r);
	free(lease);
}

static const char *
breaker_of(const char *target)
{
	static char state[32];
	json_t *st = status(), *t = status_target(st, target);

	ck_assert_ptr_nonnull(t);
	snprintf(state, sizeof state, "%s",
	    json_string_value(json_object_get(t, "breaker")));
	json_decref(st);
	return state;
}

/*
 * A lease (like a call) keeps the breaker settings of the config it was
 * granted under: its failure, reported after a reload to a breaker that
 * opens on the first failure, is judged by the old settings (ten in a
 * row); a lease granted after the reload opens it.
 */
START_TEST(test_reload_breaker_snapshot)
{
	char *before;

	h_daemon_start(&d,
	    "providers = (\n" MOCK "\n);\n"
	    "breaker = { failures = 10; min_calls = 1000; };\n");
	before = cli_acquire();
	write_conf("providers = (\n" MOCK "\n);\n"
	           "breaker = { failures = 1; min_calls = 1000; };\n");
	sighup();
	ck_assert_int_eq(count_in_log("reload refused"), 0);
	cli_report(before, "500");
	ck_assert_str_eq(breaker_of("mock/echo"), "closed");
	cli_report(cli_acquire(), "500");
	ck_assert_str_eq(breaker_of("mock/echo"), "open");
}
END_TEST

/*
 * SIGTERM: calls in flight finish and are answered, a new client fails
 * at once (the socket is gone), a client already connected gets
 * overloaded for a new call or an acquire (one already waiting is
 * answered so at once), and the daemon exits 0.
 */
START_TEST(test_drain_finishes_calls)
{
	struct llmgate_acquire *acq = llmgate_acquire_new("mock/echo");
	struct llmgate_report *rep;
	struct llmgate_lease *lease;
	struct h_lease waiting = { 0 };
	struct llmgate *g;
	struct pending p[3], late;
	int i, fd, err = 0;

	h_daemon_start(&d, "providers = (\n" MOCK "\n);\n");
	g = h_connect(&d, "drain");
	for (i = 0; i < 3; i++)
		submit(g, "mock/slow:300", "drained", &p[i]);
	wait_inflight(3);
	/* An acquire waiting on a cooled-down target. */
	ck_assert_int_eq(llmgate_acquire(g, acq, &lease, NULL, NULL, 0), 0);
	rep = llmgate_report_new(lease->id, 429);
	llmgate_lease_free(lease);
	llmgate_report_set_retry_after(rep, 30);
	ck_assert_int_eq(llmgate_report(g, rep), 0);
	llmgate_report_free(rep);
	ck_assert_uint_gt(llmgate_acquire_submit(g, acq, h_lease_cb, &waiting),
	    0);
	llmgate_acquire_free(acq);
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	wait_log("draining", 1);
	/* It is answered at once, not left to the drain's end. */
	h_drive(g, &waiting.done);
	ck_assert_int_eq(waiting.cls, LLMGATE_OVERLOADED);
	ck_assert_ptr_nonnull(strstr(waiting.message, "shutting down"));

	fd = unix_connect(d.sock, &err);
	ck_assert_int_eq(fd, -1);
	ck_assert_msg(err == ENOENT || err == ECONNREFUSED,
	    "connect during drain: %s", strerror(err));
	submit(g, "mock/echo", "too late", &late);
	h_drive(g, &late.done);
	ck_assert_int_eq(late.cls, LLMGATE_OVERLOADED);
	ck_assert_ptr_nonnull(strstr(late.text, "shutting down"));

	for (i = 0; i < 3; i++) {
		h_drive(g, &p[i].done);
		ck_assert_int_eq(p[i].cls, LLMGATE_OK);
		ck_assert_str_eq(p[i].text, "echo: drained");
	}
	llmgate_close(g);
	ck_assert_int_eq(daemon_exit(10000), 0);
}
END_TEST

/* Past drain_ms what is left is cancelled, answered, and the daemon exits 0. */
START_TEST(test_drain_timeout_cancels)
{
	struct llmgate *g;
	struct pending p;
	uint64_t t0;

	h_daemon_start(&d, "drain_ms = 300;\nproviders = (\n" MOCK "\n);\n");
	g = h_connect(&d, "drain");
	submit(g, "mock/slow:5000", "too slow", &p);
	wait_inflight(1);
	t0 = h_mono_ms();
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	h_drive(g, &p.done);
	ck_assert_int_eq(p.cls, LLMGATE_CANCELLED);
	ck_assert_ptr_nonnull(strstr(p.text, "shutting down"));
	/* Not the 5 s the call would have taken: the drain ended it. */
	ck_assert_msg(p.at - t0 < 3000, "cancelled after %llu ms",
	    (unsigned long long)(p.at - t0));
	llmgate_close(g);
	ck_assert_int_eq(daemon_exit(10000), 0);
	ck_assert_int_ge(count_in_log("drain timeout"), 1);
}
END_TEST

/* Become uid/gid (no supplementary groups) in a child; root only. */
static void
drop_to(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
		_exit(120);
}

/* Run `llmgate -s SOCK reload` as uid/gid; stderr into err. */
static int
reload_as(uid_t uid, gid_t gid, char *err, size_t len)
{
	char *path = h_strdup_printf("%s/llmgate", BUILD_DIR);
	int fds[2], st;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 2);
		dup2(open("/dev/null", O_WRONLY), 1);
		close(fds[0]);
		drop_to(uid, gid);
		execl(path, "llmgate", "-s", d.sock, "reload", (char *)NULL);
		_exit(127);
	}
	free(path);
	close(fds[1]);
	while (
	    got + 1 < len && (n = read(fds[0], err + got, len - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(fds[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The class of a raw reload frame's answer, sent as uid/gid. */
static int
raw_reload_class_as(uid_t uid, gid_t gid)
{
	struct proto_hello h = { .version = PROTO_VERSION, .name = "raw" };
	struct proto_msg m;
	msgpack_sbuffer sb;
	int fd, st, err;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		drop_to(uid, gid);
		if ((fd = unix_connect(d.sock, &err)) == -1)
			_exit(121);
		msgpack_sbuffer_init(&sb);
		proto_enc_hello(&sb, &h);
		proto_enc_simple(&sb, PROTO_RELOAD, 7);
		if (write(fd, sb.data, sb.size) != (ssize_t)sb.size)
			_exit(122);
		if (h_raw_recv(fd, &m, 5000) != 0 || m.type != PROTO_HELLO)
			_exit(123);
		proto_msg_free(&m);
		if (h_raw_recv(fd, &m, 5000) != 0 || m.id != 7)
			_exit(124);
		_exit(m.type == PROTO_OK      ? LLMGATE_OK :
		        m.type == PROTO_ERROR ? (int)m.u.result.cls :
		                                125);
	}
	waitpid(pid, &st, 0);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/*
 * reload is an admin op: another user who can reach the socket is
 * refused with class permission; root may; so may admin_group's members.
 */
START_TEST(test_reload_needs_admin)
{
	struct passwd *pw;
	struct group *gr;
	char err[1024], *conf;
	struct run r;
	int rc;

	if (geteuid() != 0) {
		fprintf(stderr,
		    "check_reload: not root, admin checks "
		    "skipped\n");
		return;
	}
	ck_assert_ptr_nonnull(pw = getpwnam("nobody"));
	ck_assert_ptr_nonnull(gr = getgrgid(pw->pw_gid));
	h_daemon_start(&d,
	    "socket_mode = \"0666\";\n"
	    "providers = (\n" MOCK "\n);\n");
	/* mkdtemp made the directory 0700: let nobody reach the socket. */
	ck_assert_int_eq(chmod(d.dir, 0755), 0);

	rc = reload_as(pw->pw_uid, pw->pw_gid, err, sizeof err);
	ck_assert_msg(rc != 0, "nobody could reload");
	ck_assert_msg(strstr(err, "reload is for root") != NULL, "stderr: %s",
	    err);
	ck_assert_int_eq(raw_reload_class_as(pw->pw_uid, pw->pw_gid),
	    LLMGATE_PERMISSION);
	ck_assert_int_eq(count_in_log("configuration reloaded"), 0);

	h_cli(&r, &d, NULL, "reload", NULL);
	ck_assert_msg(r.status == 0, "root's reload: %s", r.err);
	h_run_free(&r);
	ck_assert_int_eq(count_in_log("configuration reloaded"), 1);

	/* nobody's group is the admin group now: nobody may. */
	conf = h_strdup_printf("socket_mode = \"0666\";\n"
	                       "admin_group = \"%s\";\nproviders = (\n" MOCK
	                       "\n);\n",
	    gr->gr_name);
	write_conf(conf);
	free(conf);
	h_cli(&r, &d, NULL, "reload", NULL);
	ck_assert_msg(r.status == 0, "reload: %s", r.err);
	h_run_free(&r);
	rc = reload_as(pw->pw_uid, pw->pw_gid, err, sizeof err);
	ck_assert_msg(rc == 0, "nobody in admin_group: exit %d: %s", rc, err);
	ck_assert_int_eq(count_in_log("configuration reloaded"), 3);
	/* A uid without a user entry is in no group. */
	ck_assert_int_eq(raw_reload_class_as(54321, pw->pw_gid),
	    LLMGATE_PERMISSION);
}
END_TEST

/*
 * A connection with the handshake done, once the daemon has room for it:
 * connections closed just before (the harness's readiness probes) count
 * until the daemon has seen them go, which a slow daemon (valgrind) may
 * take a while to do.
 */
static int
conn_welcome(struct daemon *dm, uint64_t deadline)
{
	struct proto_hello h = { .version = PROTO_VERSION, .name = "test" };
	struct proto_msg m;
	msgpack_sbuffer sb;
	int fd;

	for (;;) {
		fd = h_raw_connect(dm, 0);
		msgpack_sbuffer_init(&sb);
		proto_enc_hello(&sb, &h);
		h_raw_send(fd, &sb);
		msgpack_sbuffer_destroy(&sb);
		ck_assert_int_eq(h_raw_recv(fd, &m, 20000), 0);
		if (m.type == PROTO_HELLO) {
			proto_msg_free(&m);
			return fd;
		}
		ck_assert_int_eq(m.type, PROTO_ERROR);
		ck_assert_msg(strstr(m.u.result.message,
		                  "too many "
		                  "connections") != NULL,
		    "refused: %s", m.u.result.message);
		proto_msg_free(&m);
		close(fd);
		ck_assert_msg(h_mono_ms() < deadline,
		    "no room for a "
		    "connection within the deadline");
		h_sleep_ms(20);
	}
}

/*
 * max_conns_per_uid: the connection over the limit is told why and
 * closed; once one closes, a new one is welcome.
 */
START_TEST(test_conns_per_uid)
{
	struct proto_msg m;
	struct llmgate *g;
	char want[96], err[256];
	uint64_t deadline;
	int fds[3], fd, i, ok = 0;

	h_daemon_start(&d,
	    "max_conns_per_uid = 3;\n"
	    "providers = (\n" MOCK "\n);\n");
	deadline = h_mono_ms() + 30000;
	for (i = 0; i < 3; i++)
		fds[i] = conn_welcome(&d, deadline);

	fd = h_raw_connect(&d, 0);
	ck_assert_int_eq(h_raw_recv(fd, &m, 5000), 0);
	ck_assert_int_eq(m.type, PROTO_ERROR);
	ck_assert_int_eq(m.u.result.cls, LLMGATE_INVALID_REQUEST);
	snprintf(want, sizeof want,
	    "too many connections for uid %ld "
	    "(limit 3)",
	    (long)geteuid());
	ck_assert_str_eq(m.u.result.message, want);
	proto_msg_free(&m);
	ck_assert(h_raw_closed(fd, 3000));
	close(fd);

	/* The library says why too. */
	g = llmgate_connect(d.sock, "fourth", err, sizeof err);
	ck_assert_ptr_null(g);
	ck_assert_msg(strstr(err, "limit 3") != NULL, "error: %s", err);

	/* The first three still work. */
	for (i = 0; i < 3; i++) {
		msgpack_sbuffer sb;

		msgpack_sbuffer_init(&sb);
		proto_enc_simple(&sb, PROTO_PING, 1);
		h_raw_send(fds[i], &sb);
		msgpack_sbuffer_destroy(&sb);
		ck_assert_int_eq(h_raw_recv(fds[i], &m, 5000), 0);
		ck_assert_int_eq(m.type, PROTO_PONG);
		proto_msg_free(&m);
	}

	close(fds[0]);
	/* The daemon sees the close in its own time. */
	for (deadline = h_mono_ms() + 30000; !ok && h_mono_ms() < deadline;) {
		h_sleep_ms(20);
		if ((g = llmgate_connect(d.sock, "again", err, sizeof err)) !=
		    NULL) {
			ok = llmgate_ping(g) == 0;
			llmgate_close(g);
		}
	}
	ck_assert_msg(ok, "no connection after one closed: %s", err);
	close(fds[1]);
	close(fds[2]);
}
END_TEST

/* A group to give the socket to: one we may chown to, not our own. */
static struct group *
other_group(void)
{
	static const char *names[] = { "daemon", "adm", "sys", "bin" };
	gid_t groups[64];
	struct group *gr;
	int i, n;

	if (geteuid() == 0) {
		for (i = 0; i < 4; i++) {
			if ((gr = getgrnam(names[i])) != NULL &&
			    gr->gr_gid != getegid())
				return gr;
		}
		return NULL;
	}
	n = getgroups(64, groups);
	for (i = 0; i < n; i++) {
		if (groups[i] != getegid() &&
		    (gr = getgrgid(groups[i])) != NULL)
			return gr;
	}
	return NULL;
}

/* socket_group: the socket's group is set at listen and on reload. */
START_TEST(test_socket_group)
{
	char *conf, *path, *argv[5], name[64];
	struct group *gr;
	struct stat st;
	struct run r;
	gid_t gid;
	FILE *f;

	/* An unknown group is a config error, with its line. */
	path =
	    h_strdup_printf("/tmp/llmgate-test-group.%ld.conf", (long)getpid());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("providers = (\n" MOCK "\n);\n"
	      "socket_group = \"llmgate-no-such-group\";\n",
	    f);
	fclose(f);
	argv[0] = "llmgated";
	argv[1] = "--check-config";
	argv[2] = "-c";
	argv[3] = path;
	argv[4] = NULL;
	h_run(&r, NULL, argv);
	unlink(path);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err,
	                  ":4: socket_group: unknown group "
	                  "'llmgate-no-such-group'") != NULL,
	    "stderr: %s", r.err);
	h_run_free(&r);
	free(path);

	if ((gr = other_group()) == NULL) {
		fprintf(stderr,
		    "check_reload: no group to chown the socket "
		    "to, socket_group skipped\n");
		return;
	}
	snprintf(name, sizeof name, "%s", gr->gr_name);
	gid = gr->gr_gid;
	conf = h_strdup_printf("socket_group = \"%s\";\n"
	                       "providers = (\n" MOCK "\n);\n",
	    name);
	h_daemon_start(&d, conf);
	free(conf);
	ck_assert_int_eq(stat(d.sock, &st), 0);
	ck_assert_int_eq(st.st_gid, gid);
	ck_assert_int_eq(st.st_mode & 07777, 0660);

	/* Reloaded without it and a new mode: the group stays, the mode moves. */
	write_conf("socket_mode = \"0600\";\nproviders = (\n" MOCK "\n);\n");
	sighup();
	ck_assert_int_eq(stat(d.sock, &st), 0);
	ck_assert_int_eq(st.st_gid, gid);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("reload");
	TCase *tc;
	SRunner *sr;
	int failed;

	tc = tcase_create("reload");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reload_adds_provider);
	tcase_add_test(tc, test_reload_invalid_keeps_running);
	tcase_add_test(tc, test_reload_removes_provider);
	tcase_add_test(tc, test_reload_breaker_snapshot);
	tcase_add_test(tc, test_reload_keeps_cooldown);
	suite_add_tcase(s, tc);

	tc = tcase_create("drain");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_drain_finishes_calls);
	tcase_add_test(tc, test_drain_timeout_cancels);
	suite_add_tcase(s, tc);

	tc = tcase_create("security");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reload_needs_admin);
	tcase_add_test(tc, test_conns_per_uid);
	tcase_add_test(tc, test_socket_group);
	suite_add_tcase(s, tc);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
