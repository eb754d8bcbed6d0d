/*
 * check_ops.c: llmgated under a service manager, end to end: socket
 * activation through systemd-socket-activate, sd_notify messages on a
 * NOTIFY_SOCKET of our own, and the metrics_listen setting. The
 * exposition itself is checked by check_metrics.c.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "harness.h"
#include "llmgated.h"

static const char *mock_conf =
    "providers = ( { name = \"mock\"; type = \"mock\"; } );\n"
    "routes = ( { name = \"default\"; targets = [ \"mock/echo\" ]; } );\n" H_CONF_FAST_RETRY;

static int
ops_unix_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_uint_lt(strlen(path), sizeof sun.sun_path);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static char *
ops_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t len = 0;

	if (f == NULL)
		return strdup("");
	if (getdelim(&s, &len, '\0', f) < 0) {
		free(s);
		s = strdup("");
	}
	fclose(f);
	return s;
}

static void
ops_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static char ops_fallback[160];

/*
 * Start llmgated like h_daemon_start, but with extra environment (each
 * "NAME=VALUE") and, with activate, behind systemd-socket-activate, which
 * binds d->sock and execs llmgated with LISTEN_FDS=1 in its own process.
 */
static void
ops_start(struct daemon *d, const char *conf_text, char **env, int activate)
{
	char *argv[32], *val;
	int argc = 0, fd, i;
	static const char *pass[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
		"LSAN_OPTIONS" };

	memset(d, 0, sizeof *d);
	snprintf(d->dir, sizeof d->dir, "/tmp/llmgate-ops.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->sock, sizeof d->sock, "%s/llmgate.sock", d->dir);
	snprintf(d->conf, sizeof d->conf, "%s/llmgated.conf", d->dir);
	snprintf(d->log, sizeof d->log, "%s/llmgated.log", d->dir);
	snprintf(ops_fallback, sizeof ops_fallback, "%s/not-activated.sock",
	    d->dir);
	ops_write(d->conf, conf_text);

	if (activate) {
		argv[argc++] = "systemd-socket-activate";
		argv[argc++] = "-l";
		argv[argc++] = d->sock;
		/* It hands the child a minimal environment. */
		for (i = 0; i < (int)(sizeof pass / sizeof pass[0]); i++) {
			if (getenv(pass[i]) != NULL) {
				argv[argc++] = "-E";
				argv[argc++] = (char *)(uintptr_t)pass[i];
			}
		}
		for (i = 0; env != NULL && env[i] != NULL; i++) {
			argv[argc++] = "-E";
			argv[argc++] = env[i];
		}
	}
	argv[argc++] = BUILD_DIR "/llmgated";
	argv[argc++] = "-v";
	argv[argc++] = "-s";
	/* Activated, -s must lose to the passed socket; it is given so that
	 * a daemon that ignores it stays out of /run. */
	argv[argc++] = activate ? ops_fallback : d->sock;
	argv[argc++] = "-c";
	argv[argc++] = d->conf;
	argv[argc] = NULL;

	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		dup2(open("/dev/null", O_RDONLY), 0);
		unsetenv("LLMGATE_SOCKET");
		unsetenv("NOTIFY_SOCKET");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		for (i = 0; env != NULL && env[i] != NULL; i++) {
			if ((val = strchr(env[i], '=')) == NULL)
				continue;
			*val = '\0';
			setenv(env[i], val + 1, 1);
			*val = '=';
		}
		if (activate)
			execvp(argv[0], argv);
		else
			execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s%s\n", argv[0], strerror(errno),
		    activate ? " (install the Debian package systemd)" : "");
		_exit(127);
	}
	for (i = 0; i < 500; i++) {
		if ((fd = ops_unix_connect(d->sock)) != -1) {
			close(fd);
			return;
		}
		if (!h_daemon_alive(d)) {
			char *log = ops_slurp(d->log);

			ck_abort_msg("llmgated exited at start:\n%s", log);
		}
		h_sleep_ms(10);
	}
	ck_abort_msg("llmgated did not start listening");
}

/* Socket activation: the daemon serves on the socket it was passed. */
START_TEST(test_socket_activation)
{
	struct daemon d;
	struct run r;
	char *log, path[64], comm[64] = "";
	FILE *f;

	ops_start(&d, mock_conf, NULL, 1);
	h_cli(&r, &d, NULL, "ping", NULL);
	ck_assert_msg(r.status == 0, "ping: %d %s", r.status, r.err);
	h_run_free(&r);
	h_cli(&r, &d, NULL, "call", "-m", "mock/echo", "activated", NULL);
	ck_assert_msg(r.status == 0, "call: %d %s", r.status, r.err);
	ck_assert_str_eq(r.out, "echo: activated\n");
	h_run_free(&r);

	/* systemd-socket-activate execs llmgated in its own process. */
	snprintf(path, sizeof path, "/proc/%d/comm", (int)d.pid);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(comm, sizeof comm, f) == NULL)
			comm[0] = '\0';
		fclose(f);
	}
	ck_assert_str_eq(comm, "llmgated\n");
	log = h_daemon_log(&d);
	ck_assert_msg(access(ops_fallback, F_OK) != 0,
	    "llmgated made its "
	    "own socket:\n%s",
	    log);
	ck_assert_msg(strstr(log, "socket systemd passed") != NULL,
	    "llmgated did not take the passed socket:\n%s", log);
	free(log);
	ck_assert_int_eq(h_daemon_stop(&d), 0);
}
END_TEST

/* A datagram socket standing in for systemd's notify socket. */
static int
ops_notify_socket(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof sun.sun_path);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	return fd;
}

static int
ops_has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);
	const char *p = msg;

	for (;;) {
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
		if ((p = strchr(p, '\n')) == NULL)
			return 0;
		p++;
	}
}

/*
 * Read notify messages until one has the line want (copied to msg);
 * count the WATCHDOG=1 keepalives seen meanwhile. 0, or -1 on timeout.
 */
static int
ops_expect(int fd, const char *want, int timeout_ms, char *msg, size_t len,
    int *watchdogs)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t end = h_mono_ms() + (uint64_t)timeout_ms;
	uint64_t now;
	ssize_t n;

	while ((now = h_mono_ms()) < end) {
		if (poll(&pfd, 1, (int)(end - now)) <= 0)
			continue;
		n = recv(fd, msg, len - 1, 0);
		if (n < 0)
			continue;
		msg[n] = '\0';
		if (watchdogs != NULL && ops_has_line(msg, "WATCHDOG=1"))
			(*watchdogs)++;
		if (want != NULL && ops_has_line(msg, want))
			return 0;
	}
	return -1;
}

START_TEST(test_notify)
{
	struct daemon d;
	char dir[] = "/tmp/llmgate-notify.XXXXXX", path[128], msg[4096];
	char env_sock[160], env_wd[] = "WATCHDOG_USEC=200000";
	char *env[] = { env_sock, env_wd, NULL }, *p, *cmd;
	struct timespec ts;
	unsigned long long before, after, mono;
	int fd, wd = 0, st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/notify", dir);
	snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", path);
	fd = ops_notify_socket(path);
	ops_start(&d, mock_conf, env, 0);

	ck_assert_msg(ops_expect(fd, "READY=1", 10000, msg, sizeof msg, &wd) ==
	        0,
	    "no READY=1");

	/* WatchdogSec=200ms: a keepalive every 100ms. */
	wd = 0;
	ops_expect(fd, NULL, 1000, msg, sizeof msg, &wd);
	ck_assert_msg(wd >= 3, "%d WATCHDOG=1 in a second (want >= 3)", wd);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	before = (unsigned long long)ts.tv_sec * 1000000 +
	    (unsigned long long)ts.tv_nsec / 1000;
	kill(d.pid, SIGHUP);
	ck_assert_msg(ops_expect(fd, "RELOADING=1", 5000, msg, sizeof msg,
	                  NULL) == 0,
	    "no RELOADING=1 after SIGHUP");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	after = (unsigned long long)ts.tv_sec * 1000000 +
	    (unsigned long long)ts.tv_nsec / 1000;
	/* Type=notify-reload wants the reload's CLOCK_MONOTONIC with it. */
	p = strstr(msg, "MONOTONIC_USEC=");
	ck_assert_msg(p != NULL, "RELOADING=1 without MONOTONIC_USEC: '%s'",
	    msg);
	mono = strtoull(p + 15, NULL, 10);
	ck_assert_msg(mono >= before && mono <= after,
	    "MONOTONIC_USEC=%llu "
	    "not within [%llu, %llu]",
	    mono, before, after);
	ck_assert_msg(ops_expect(fd, "READY=1", 5000, msg, sizeof msg, NULL) ==
	        0,
	    "no READY=1 after the reload");

	kill(d.pid, SIGTERM);
	ck_assert_msg(ops_expect(fd, "STOPPING=1", 5000, msg, sizeof msg,
	                  NULL) == 0,
	    "no STOPPING=1 after SIGTERM");
	waitpid(d.pid, &st, 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	d.pid = 0;
	close(fd);
	cmd = h_strdup_printf("rm -rf '%s' '%s'", dir, d.dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}
END_TEST

START_TEST(test_metrics_listen_config)
{
	static const char *bad[] = { "9464", "127.0.0.1", "127.0.0.1:0",
		"127.0.0.1:65536", ":9464", "::1:9464", "127.0.0.1:94x4" };
	char dir[] = "/tmp/llmgate-ops.XXXXXX", *file, *text, *errors;
	char line[32];
	const char *p;
	struct config *c;
	size_t i;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	file = h_strdup_printf("%s/c.conf", dir);
	/* The setting goes on the line after mock_conf's. */
	for (i = 0, p = mock_conf; *p != '\0'; p++)
		i += *p == '\n';
	snprintf(line, sizeof line, ":%zu: metrics_listen", i + 1);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		text = h_strdup_printf("%smetrics_listen = \"%s\";\n",
		    mock_conf, bad[i]);
		ops_write(file, text);
		c = config_load(file, &errors);
		ck_assert_msg(c == NULL, "metrics_listen '%s' accepted",
		    bad[i]);
		ck_assert_msg(strstr(errors, line) != NULL, "%s", errors);
		free(errors);
		free(text);
	}
	text =
	    h_strdup_printf("%smetrics_listen = \"[::1]:9464\";\n", mock_conf);
	ops_write(file, text);
	c = config_load(file, &errors);
	ck_assert_msg(c != NULL, "%s", errors);
	ck_assert_str_eq(c->metrics_listen, "[::1]:9464");
	config_free(c);
	free(text);
	unlink(file);
	rmdir(dir);
	free(file);
}
END_TEST

static Suite *
ops_suite(int activate)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("ops");

	tcase_set_timeout(tc, 30);
	if (activate)
		tcase_add_test(tc, test_socket_activation);
	tcase_add_test(tc, test_notify);
	tcase_add_test(tc, test_metrics_listen_config);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	char path[512];
	int failed, activate;

	activate = h_which("systemd-socket-activate", path, sizeof path) == 0;
	sr = srunner_create(ops_suite(activate));
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed == 0 && !activate) {
		/* The rest passed; say what did not run (77: skipped). */
		fprintf(stderr,
		    "SKIP test_socket_activation: "
		    "systemd-socket-activate not found on PATH (Debian "
		    "package systemd)\n");
		return 77;
	}
	return failed == 0 ? 0 : 1;
}
