/*
 * check_state.c: state across restarts. In process, the state file's round
 * trip and its checks (state.c against the targets of a loaded config);
 * end to end, the real llmgated stopped with SIGTERM and started again on
 * the same state file: a cooldown and an open breaker survive, a corrupt
 * or unreadable file is logged and ignored, the file is saved
 * periodically, and $STATE_DIRECTORY gives the default path.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "llmgated.h"
#include "harness.h"

static char sdir[64]; /* outlives a daemon's own directory */
static char spath[128];

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sdir_setup(void)
{
	snprintf(sdir, sizeof sdir, "/tmp/llmgate-state.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(sdir));
	snprintf(spath, sizeof spath, "%s/state.json", sdir);
}

static void
sdir_teardown(void)
{
	char *cmd = h_strdup_printf("rm -rf '%s'", sdir);

	if (system(cmd) != 0)
		perror("rm");
	free(cmd);
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

/* --- in process: state.c on the targets of the embedded default config */

static void
unit_setup(void)
{
	char *errors = NULL;

	sdir_setup();
	log_init(0);
	log_set_level(LOG_LVL_WARN);
	cfg = config_load(NULL, &errors);
	ck_assert_msg(cfg != NULL, "%s", errors);
	config_ref(cfg);
}

static void
unit_teardown(void)
{
	target_free_all();
	config_unref(cfg);
	cfg = NULL;
	sdir_teardown();
}

static struct target *
mock_target(const char *model)
{
	const struct provider_conf *pc = config_provider(cfg, "mock");
	struct target *t;

	ck_assert_ptr_nonnull(pc);
	t = target_get(pc, model);
	ck_assert_ptr_nonnull(t);
	return t;
}

/* Whether a target exists, without creating it. */
static struct target *
find_target(const char *name)
{
	struct target *t;

	for (t = target_first(); t != NULL; t = t->next) {
		if (strcmp(t->name, name) == 0)
			return t;
	}
	return NULL;
}

START_TEST(test_round_trip)
{
	struct breaker_conf bc = { .failures = 2, .open_ms = 30000 };
	struct rl_status rs;
	struct header_rl ri;
	struct target *t;
	char *cause = NULL;
	uint64_t now = now_ms();
	int ticket;

	/* A 429 with Retry-After 30 s. */
	t = mock_target("cool");
	rl_on_result(&t->rl, LLMGATE_RATE_LIMITED, 30000, now);
	/* Two failures open the breaker; reopened once, so mult 2. */
	t = mock_target("down");
	ticket = breaker_allow(&t->br, &bc, now);
	breaker_record(&t->br, &bc, ticket, LLMGATE_SERVER_ERROR, now);
	ticket = breaker_allow(&t->br, &bc, now);
	breaker_record(&t->br, &bc, ticket, LLMGATE_SERVER_ERROR, now);
	ck_assert_int_eq(breaker_state(&t->br, now), BREAKER_OPEN);
	t->br.mult = 2;
	/* Limits learned from headers, one request left. */
	t = mock_target("learned");
	header_rl_init(&ri);
	ri.limit_requests = 120;
	ri.remaining_requests = 1;
	rl_learn(&t->rl, &ri, now);
	/* Nothing to keep: left out of the file. */
	(void)mock_target("plain");

	ck_assert_msg(state_save(spath, &cause) == 0, "%s", cause);
	target_free_all();
	ck_assert_msg(state_load(spath, &cause) == 0, "%s", cause);
	now = now_ms();

	ck_assert_ptr_null(find_target("mock/plain"));
	ck_assert_ptr_nonnull(t = find_target("mock/cool"));
	rl_status(&t->rl, now, &rs);
	ck_assert_uint_gt(rs.cooldown_ms, 28000);
	ck_assert_uint_le(rs.cooldown_ms, 30000);
	ck_assert_str_eq(rs.cooldown_reason, "rate_limited: retry-after");
	ck_assert_int_eq(breaker_state(&t->br, now), BREAKER_CLOSED);

	ck_assert_ptr_nonnull(t = find_target("mock/down"));
	ck_assert_int_eq(breaker_state(&t->br, now), BREAKER_OPEN);
	ck_assert_uint_gt(breaker_open_remaining(&t->br, now), 28000);
	ck_assert_uint_eq(t->br.mult, 2);
	/* Open means skipped, still. */
	ck_assert_int_eq(breaker_allow(&t->br, &bc, now), 0);

	ck_assert_ptr_nonnull(t = find_target("mock/learned"));
	ck_assert_uint_eq(t->rl.learned_rpm, 120);
	rl_status(&t->rl, now, &rs);
	ck_assert_int_eq(rs.rpm_limit, 120);
	ck_assert_int_eq(rs.rpm_available, 1);
}
END_TEST

/* target_lookup() finds what exists and never makes a target. */
START_TEST(test_lookup_does_not_create)
{
	struct target *t = mock_target("here");

	ck_assert_ptr_eq(target_lookup("mock/here"), t);
	ck_assert_ptr_null(target_lookup("mock/absent"));
	ck_assert_ptr_null(find_target("mock/absent"));
	ck_assert_ptr_null(target_lookup("nosuch/here"));
	ck_assert_ptr_null(target_lookup("no-slash"));
	ck_assert_ptr_null(target_lookup(NULL));
	ck_assert_ptr_null(find_target("nosuch/here"));
}
END_TEST

/* Time spent down counts; levels never exceed what the config allows. */
START_TEST(test_elapsed_and_clamps)
{
	struct rl_status rs;
	struct target *t;
	char *text, *cause = NULL;
	uint64_t now;

	text = h_strdup_printf(
	    "{\"version\": 1, \"saved_at\": %llu, "
	    "\"future\": true, \"targets\": ["
	    "{\"target\": \"mock/a\", \"cooldown_ms_left\": 15000,"
	    " \"cooldown_reason\": \"rate_limited\", \"unknown\": [1]},"
	    "{\"target\": \"mock/b\", \"cooldown_ms_left\": 5000,"
	    " \"breaker\": {\"state\": \"open\", \"open_ms_left\": 5000,"
	    " \"mult\": 4}},"
	    "{\"target\": \"mock/c\", \"learned_rpm\": 600,"
	    " \"req_level\": 1000000,"
	    " \"breaker\": {\"state\": \"half_open\", \"mult\": 2}},"
	    "{\"target\": \"mock/d\", \"learned_rpm\": 600,"
	    " \"req_level\": -300,"
	    " \"cooldown_reason\": \"made up\", \"cooldown_ms_left\": 60000},"
	    "{\"target\": \"gone/x\", \"cooldown_ms_left\": 60000}"
	    "]}",
	    (unsigned long long)(wall_ms() - 10000));
	write_file(spath, text, strlen(text));
	free(text);
	ck_assert_msg(state_load(spath, &cause) == 0, "%s", cause);
	now = now_ms();

	/* 15 s left 10 s ago: about 5 s now. */
	ck_assert_ptr_nonnull(t = find_target("mock/a"));
	rl_status(&t->rl, now, &rs);
	ck_assert_uint_gt(rs.cooldown_ms, 3000);
	ck_assert_uint_le(rs.cooldown_ms, 5000);
	ck_assert_str_eq(rs.cooldown_reason, "rate_limited");
	/* 5 s left 10 s ago: over; the breaker goes half-open on next use. */
	ck_assert_ptr_nonnull(t = find_target("mock/b"));
	rl_status(&t->rl, now, &rs);
	ck_assert_uint_eq(rs.cooldown_ms, 0);
	ck_assert_int_eq(breaker_state(&t->br, now), BREAKER_HALF_OPEN);
	ck_assert_uint_eq(t->br.mult, 4);
	/* Half-open: its probes died with the process; probe again. */
	ck_assert_ptr_nonnull(t = find_target("mock/c"));
	ck_assert_int_eq(breaker_state(&t->br, now), BREAKER_HALF_OPEN);
	rl_status(&t->rl, now, &rs);
	ck_assert_int_eq(rs.rpm_limit, 600);
	ck_assert_int_eq(rs.rpm_available, 10); /* one second's worth */
	/* Debt is kept, less what 10 s at 600 rpm paid back (100). */
	ck_assert_ptr_nonnull(t = find_target("mock/d"));
	rl_status(&t->rl, now, &rs);
	ck_assert_int_ge(rs.rpm_available, -200);
	ck_assert_int_le(rs.rpm_available, -190);
	ck_assert_str_eq(rs.cooldown_reason, "restored after a restart");
	ck_assert_ptr_null(find_target("gone/x"));
}
END_TEST

/* A bad entry is skipped, the rest applies; a bad file is refused. */
START_TEST(test_bad_input)
{
	static const char *bad_files[] = {
		"",
		"\x01\x02garbage\xff",
		"[]",
		"{\"version\": 2, \"saved_at\": 1, \"targets\": []}",
		"{\"version\": \"1\", \"saved_at\": 1, \"targets\": []}",
		"{\"version\": 1, \"targets\": []}",
		"{\"version\": 1, \"saved_at\": -5, \"targets\": []}",
		"{\"version\": 1, \"saved_at\": 1, \"targets\": {}}",
		"{\"version\": 1, \"version\": 1, \"saved_at\": 1, "
		"\"targets\": []}",
	};
	static const char *bad_entries[] = {
		"5",
		"{}",
		"{\"target\": 5}",
		"{\"target\": \"noslash\"}",
		"{\"target\": \"/model\"}",
		"{\"target\": \"mock/\"}",
		"{\"target\": \"mock/e\", \"cooldown_ms_left\": \"30\"}",
		"{\"target\": \"mock/e\", \"cooldown_ms_left\": -1}",
		"{\"target\": \"mock/e\", \"cooldown_ms_left\": 1.5}",
		"{\"target\": \"mock/e\", \"cooldown_ms_left\": 99999999999}",
		"{\"target\": \"mock/e\", \"learned_rpm\": 4294967296}",
		"{\"target\": \"mock/e\", \"req_level\": true}",
		"{\"target\": \"mock/e\", \"cooldown_reason\": 7,"
		" \"cooldown_ms_left\": 9000}",
		"{\"target\": \"mock/e\", \"breaker\": 1}",
		"{\"target\": \"mock/e\", \"breaker\": {}}",
		"{\"target\": \"mock/e\", \"breaker\": {\"state\": \"ajar\"}}",
		"{\"target\": \"mock/e\", \"breaker\": {\"state\": \"open\","
		" \"mult\": 9}}",
		"{\"target\": \"mock/e\", \"breaker\": {\"state\": \"open\","
		" \"mult\": 0}}",
		"{\"target\": \"mock/e\", \"breaker\": {\"state\": \"open\","
		" \"open_ms_left\": -1}}",
	};
	struct rl_status rs;
	struct target *t;
	char *text, *cause;
	size_t i;

	for (i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
		write_file(spath, bad_files[i], strlen(bad_files[i]));
		cause = NULL;
		ck_assert_msg(state_load(spath, &cause) == -1, "file %zu", i);
		ck_assert_ptr_nonnull(cause);
		ck_assert_ptr_nonnull(strstr(cause, spath));
		free(cause);
	}
	/* A directory: unreadable. */
	unlink(spath);
	ck_assert_int_eq(mkdir(spath, 0700), 0);
	cause = NULL;
	ck_assert_int_eq(state_load(spath, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "not a regular file"));
	free(cause);
	/* Saving over it fails too, with a cause, and leaves no litter. */
	cause = NULL;
	ck_assert_int_eq(state_save(spath, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	text = h_strdup_printf("%s.tmp", spath);
	ck_assert_int_ne(access(text, F_OK), 0);
	free(text);
	rmdir(spath);
	/* Missing: a first start, nothing to do. */
	cause = NULL;
	ck_assert_int_eq(state_load(spath, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert_ptr_null(target_first());

	for (i = 0; i < sizeof bad_entries / sizeof bad_entries[0]; i++) {
		text = h_strdup_printf(
		    "{\"version\": 1, \"saved_at\": %llu, "
		    "\"targets\": [%s, {\"target\": \"mock/ok\", "
		    "\"cooldown_ms_left\": 20000}]}",
		    (unsigned long long)wall_ms(), bad_entries[i]);
		write_file(spath, text, strlen(text));
		free(text);
		cause = NULL;
		ck_assert_msg(state_load(spath, &cause) == 0, "entry %zu: %s",
		    i, cause);
		ck_assert_msg(find_target("mock/e") == NULL, "entry %zu", i);
		ck_assert_ptr_nonnull(t = find_target("mock/ok"));
		rl_status(&t->rl, now_ms(), &rs);
		ck_assert_uint_gt(rs.cooldown_ms, 15000);
		target_free_all();
	}
}
END_TEST

/* The file: mode 0600, replaced whole (no .tmp left behind). */
START_TEST(test_file)
{
	struct stat st;
	char *cause = NULL, *tmp;
	json_t *j;

	rl_on_result(&mock_target("x")->rl, LLMGATE_QUOTA_EXHAUSTED, -1,
	    now_ms());
	write_file(spath, "old", 3);
	chmod(spath, 0644);
	ck_assert_msg(state_save(spath, &cause) == 0, "%s", cause);
	ck_assert_int_eq(stat(spath, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	tmp = h_strdup_printf("%s.tmp", spath);
	ck_assert_int_ne(access(tmp, F_OK), 0);
	free(tmp);
	j = json_load_file(spath, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
	ck_assert_str_eq(json_string_value(
	                     json_object_get(json_array_get(json_object_get(j,
	                                                        "targets"),
	                                         0),
	                         "cooldown_reason")),
	    "quota_exhausted");
	json_decref(j);
}
END_TEST

/* state_file is absolute; state_save_ms has a floor and a default. */
START_TEST(test_config)
{
	static const struct {
		const char *text;
		const char *error; /* NULL: loads */
	} cases[] = {
		{ "state_file = \"state.json\";", "must be an absolute path" },
		{ "state_save_ms = 50;", "state_save_ms" },
		{ "state_file = \"/var/lib/x/s.json\"; state_save_ms = 100;",
		    NULL },
	};
	struct config *c;
	char *path, *errors;
	size_t i;

	path = h_strdup_printf("%s/t.conf", sdir);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_file(path, cases[i].text, strlen(cases[i].text));
		errors = NULL;
		c = config_load(path, &errors);
		if (cases[i].error == NULL) {
			ck_assert_msg(c != NULL, "%s", errors);
			ck_assert_str_eq(c->state_file, "/var/lib/x/s.json");
			ck_assert_uint_eq(c->state_save_ms, 100);
			config_free(c);
			continue;
		}
		ck_assert_ptr_null(c);
		ck_assert_msg(strstr(errors, cases[i].error) != NULL, "%s",
		    errors);
		free(errors);
	}
	free(path);
	ck_assert_ptr_null(cfg->state_file);
	ck_assert_uint_eq(cfg->state_save_ms, 30000);
}
END_TEST

/* --- end to end: the real daemon, stopped and started again */

static struct daemon d;

static void
e2e_setup(void)
{
	sdir_setup();
}

static void
e2e_teardown(void)
{
	if (d.pid > 0)
		h_daemon_stop(&d);
	sdir_teardown();
}

static void
start(void)
{
	char *conf;

	conf = h_strdup_printf(
	    "providers = ( { name = \"mock\"; type = \"mock\"; } );\n"
	    "breaker = { failures = 2; open_ms = 30000; };\n"
	    "state_file = \"%s\";\n"
	    "state_save_ms = 200;\n",
	    spath);
	h_daemon_start(&d, conf);
	free(conf);
}

static void
stop(void)
{
	ck_assert_int_eq(h_daemon_stop(&d), 0);
}

/* One target of `llmgate status --json`; NULL when not there (decref st). */
static json_t *
status_target(json_t **st, const char *name)
{
	struct run r;
	json_t *ts;
	size_t i;

	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_int_eq(r.status, 0);
	*st = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(*st);
	h_run_free(&r);
	ts = json_object_get(*st, "targets");
	for (i = 0; i < json_array_size(ts); i++) {
		if (strcmp(json_string_value(
		               json_object_get(json_array_get(ts, i),
		                   "target")),
		        name) == 0)
			return json_array_get(ts, i);
	}
	return NULL;
}

static long long
cooldown_of(const char *name)
{
	json_t *st, *t = status_target(&st, name);
	long long ms;

	ck_assert_msg(t != NULL, "no target %s", name);
	ms = json_integer_value(json_object_get(t, "cooldown_ms"));
	json_decref(st);
	return ms;
}

static int
log_count(const char *needle)
{
	char *log = h_daemon_log(&d), *p;
	int n = 0;

	for (p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(log);
	return n;
}

static void
lease_429(const char *target, const char *retry_after)
{
	struct run r;
	char *lease;

	h_cli(&r, &d, NULL, "acquire", "-m", target, NULL);
	ck_assert_int_eq(r.status, 0);
	lease = strdup(r.out);
	lease[strcspn(lease, "\n")] = '\0';
	h_run_free(&r);
	h_cli(&r, &d, NULL, "report", lease, "--status", "429", "--retry-after",
	    retry_after, NULL);
	ck_assert_msg(r.status == 0, "report: %s", r.err);
	h_run_free(&r);
	free(lease);
}

/*
 * A target cooling down (a lease reported 429, and a call that met one)
 * is still cooling down after SIGTERM and a restart: nothing may go.
 */
START_TEST(test_cooldown_survives)
{
	struct run r;

	start();
	lease_429("mock/echo", "30");
	h_cli(&r, &d, NULL, "call", "--attempts", "1", "-m",
	    "mock/rate-limited:30", "x", NULL);
	ck_assert_int_ne(r.status, 0);
	h_run_free(&r);
	ck_assert_int_gt(cooldown_of("mock/echo"), 25000);
	ck_assert_int_gt(cooldown_of("mock/rate-limited:30"), 25000);
	stop();

	start();
	ck_assert_int_gt(log_count("restored 2 targets"), 0);
	ck_assert_int_gt(cooldown_of("mock/echo"), 20000);
	ck_assert_int_gt(cooldown_of("mock/rate-limited:30"), 20000);
	h_cli(&r, &d, NULL, "acquire", "-m", "mock/echo", "--timeout", "300",
	    NULL);
	ck_assert_int_eq(r.status, 4);
	ck_assert_ptr_nonnull(strstr(r.err, "deadline"));
	h_run_free(&r);
	stop();
}
END_TEST

/* An open breaker is still open after a restart: calls skip the target. */
START_TEST(test_breaker_survives)
{
	json_t *st, *t, *j, *a0;
	struct run r;
	int i;

	start();
	for (i = 0; i < 2; i++) {
		h_cli(&r, &d, NULL, "call", "--attempts", "1", "-m",
		    "mock/error:server_error", "x", NULL);
		ck_assert_int_ne(r.status, 0);
		h_run_free(&r);
	}
	t = status_target(&st, "mock/error:server_error");
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(json_string_value(json_object_get(t, "breaker")),
	    "open");
	json_decref(st);
	stop();

	start();
	t = status_target(&st, "mock/error:server_error");
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(json_string_value(json_object_get(t, "breaker")),
	    "open");
	ck_assert_int_gt(json_integer_value(
	                     json_object_get(t, "breaker_open_ms")),
	    20000);
	json_decref(st);

	h_cli(&r, &d, NULL, "call", "--json", "-m", "mock/error:server_error",
	    "-m", "mock/echo", "x", NULL);
	ck_assert_msg(r.status == 0, "call: %s %s", r.out, r.err);
	j = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	a0 = json_array_get(json_object_get(j, "attempts"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(a0, "class")),
	    "circuit_open");
	ck_assert(json_is_true(json_object_get(a0, "skipped")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "target")),
	    "mock/echo");
	json_decref(j);
	h_run_free(&r);
	stop();
}
END_TEST

static void
call_ok(void)
{
	struct run r;

	h_cli(&r, &d, NULL, "call", "-m", "mock/echo", "hello", NULL);
	ck_assert_msg(r.status == 0, "call: %s", r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "echo: hello"));
	h_run_free(&r);
}

/* Garbage in the file: logged, ignored, and replaced at the next save. */
START_TEST(test_corrupt_ignored)
{
	static const char garbage[] = "\x7f\x45\x4c\x46\x00\x01{\"version\"";
	json_t *j;

	write_file(spath, garbage, sizeof garbage - 1);
	start();
	call_ok();
	ck_assert_int_eq(log_count("state file ignored"), 1);
	ck_assert_int_gt(log_count(spath), 0);
	stop();
	j = json_load_file(spath, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
	json_decref(j);
}
END_TEST

/*
 * A directory where the file should be: unreadable and unwritable. The
 * daemon serves, says so once rather than at every periodic save, and
 * still exits cleanly.
 */
START_TEST(test_unreadable_ignored)
{
	ck_assert_int_eq(mkdir(spath, 0700), 0);
	start();
	call_ok();
	ck_assert_int_eq(log_count("state file ignored"), 1);
	ck_assert_int_gt(log_count("not a regular file"), 0);
	usleep(700000); /* a few periodic saves */
	ck_assert_int_eq(log_count("cannot save the state file"), 1);
	ck_assert(h_daemon_alive(&d));
	stop();
}
END_TEST

/* Saved every state_save_ms, not only at shutdown. */
START_TEST(test_periodic_save)
{
	struct stat st;
	json_t *j = NULL, *t;
	int i;

	start();
	lease_429("mock/echo", "30");
	for (i = 0; i < 100; i++) {
		if ((j = json_load_file(spath, 0, NULL)) != NULL &&
		    json_array_size(json_object_get(j, "targets")) == 1)
			break;
		json_decref(j);
		j = NULL;
		usleep(20000);
	}
	ck_assert_msg(j != NULL, "no state file with the target after 2 s");
	ck_assert(h_daemon_alive(&d));
	t = json_array_get(json_object_get(j, "targets"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(t, "target")),
	    "mock/echo");
	ck_assert_int_gt(json_integer_value(
	                     json_object_get(t, "cooldown_ms_left")),
	    25000);
	ck_assert_int_gt(json_integer_value(json_object_get(j, "saved_at")),
	    (json_int_t)(wall_ms() - 60000));
	json_decref(j);
	ck_assert_int_eq(stat(spath, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	stop();
}
END_TEST

/*
 * A periodic save does not stall the daemon: with the temporary file a
 * FIFO nobody reads yet, the save's write blocks, and calls must still be
 * answered at once. A reader (a child) opens the FIFO after 3 s, so code
 * that writes on the event loop ends its stall and the test fails on the
 * slow answers instead of hanging; what it read must be a state file.
 */
START_TEST(test_save_off_loop)
{
	char *tmp = h_strdup_printf("%s.tmp", spath);
	char *got = h_strdup_printf("%s/fifo-read.json", sdir);
	uint64_t t0, t1, worst = 0;
	struct run r;
	json_t *j;
	pid_t pid;
	int st;

	ck_assert_int_eq(mkfifo(tmp, 0600), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[4096];
		ssize_t len;
		FILE *in, *out;

		sleep(3);
		in = fopen(tmp, "r");
		out = fopen(got, "w");
		if (in == NULL || out == NULL)
			_exit(1);
		while ((len = (ssize_t)fread(buf, 1, sizeof buf, in)) > 0)
			fwrite(buf, 1, (size_t)len, out);
		_exit(fclose(out) == 0 ? 0 : 1);
	}
	start();
	lease_429("mock/echo", "30");
	/* 2 s of pings: ten periods, the first save stuck from the first. */
	t0 = h_mono_ms();
	while (h_mono_ms() - t0 < 2000) {
		t1 = h_mono_ms();
		h_cli(&r, &d, NULL, "ping", NULL);
		ck_assert_int_eq(r.status, 0);
		h_run_free(&r);
		if (h_mono_ms() - t1 > worst)
			worst = h_mono_ms() - t1;
	}
	ck_assert_msg(worst < 1000,
	    "a ping took %llu ms while the state "
	    "file was being written",
	    (unsigned long long)worst);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* A whole state file (taken maybe before the 429: no targets yet). */
	j = json_load_file(got, 0, NULL);
	ck_assert_msg(j != NULL, "the stuck save wrote no state");
	ck_assert(json_is_integer(json_object_get(j, "version")));
	ck_assert(json_is_array(json_object_get(j, "targets")));
	json_decref(j);
	/* Saves go on once the disk is back; a restart restores them. */
	stop();
	start();
	ck_assert_int_gt(cooldown_of("mock/echo"), 20000);
	stop();
	free(tmp);
	free(got);
}
END_TEST

/* No state_file: $STATE_DIRECTORY (systemd's StateDirectory=) decides. */
START_TEST(test_state_directory)
{
	struct run r;

	setenv("STATE_DIRECTORY", sdir, 1);
	h_daemon_start(&d,
	    "providers = ( { name = \"mock\"; "
	    "type = \"mock\"; } );\n");
	unsetenv("STATE_DIRECTORY");
	lease_429("mock/echo", "30");
	stop();
	ck_assert_int_eq(access(spath, F_OK), 0);

	setenv("STATE_DIRECTORY", sdir, 1);
	h_daemon_start(&d,
	    "providers = ( { name = \"mock\"; "
	    "type = \"mock\"; } );\n");
	unsetenv("STATE_DIRECTORY");
	ck_assert_int_gt(cooldown_of("mock/echo"), 20000);
	stop();

	/* Neither: nothing is kept. */
	h_daemon_start(&d,
	    "providers = ( { name = \"mock\"; "
	    "type = \"mock\"; } );\n");
	h_cli(&r, &d, NULL, "status", "--json", NULL);
	ck_assert_ptr_null(strstr(r.out, "mock/echo"));
	h_run_free(&r);
	stop();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("state");
	TCase *unit = tcase_create("file"), *e2e = tcase_create("restart");
	SRunner *sr;
	int failed;

	unsetenv("STATE_DIRECTORY");
	tcase_add_checked_fixture(unit, unit_setup, unit_teardown);
	tcase_add_test(unit, test_round_trip);
	tcase_add_test(unit, test_lookup_does_not_create);
	tcase_add_test(unit, test_elapsed_and_clamps);
	tcase_add_test(unit, test_bad_input);
	tcase_add_test(unit, test_file);
	tcase_add_test(unit, test_config);
	suite_add_tcase(s, unit);

	tcase_add_checked_fixture(e2e, e2e_setup, e2e_teardown);
	tcase_set_timeout(e2e, 60);
	tcase_add_test(e2e, test_cooldown_survives);
	tcase_add_test(e2e, test_breaker_survives);
	tcase_add_test(e2e, test_corrupt_ignored);
	tcase_add_test(e2e, test_unreadable_ignored);
	tcase_add_test(e2e, test_periodic_save);
	tcase_add_test(e2e, test_save_off_loop);
	tcase_add_test(e2e, test_state_directory);
	suite_add_tcase(s, e2e);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
