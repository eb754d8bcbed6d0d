/*
 * harness.c: end-to-end test support. Everything here drives real
 * processes: the llmgated binary, the llmgate CLI and tests/fakeprov, over
 * a real Unix socket and loopback TCP.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
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

char *
h_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

void
h_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

uint64_t
h_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct llmgate *
h_connect(struct daemon *d, const char *name)
{
	char err[256];
	struct llmgate *g = llmgate_connect(d->sock, name, err, sizeof err);

	ck_assert_msg(g != NULL, "connect: %s", err);
	return g;
}

void
h_drive(struct llmgate *g, int *done)
{
	struct pollfd pfd;

	while (!*done) {
		pfd.fd = llmgate_fd(g);
		pfd.events = POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
		ck_assert_int_gt(poll(&pfd, 1, 10000), 0);
		ck_assert_int_ge(llmgate_process(g), 0);
	}
}

void
h_lease_cb(const struct llmgate_lease *l, enum llmgate_class cls,
    const char *message, void *arg)
{
	struct h_lease *a = arg;

	a->done++;
	a->cls = cls;
	if (l != NULL) {
		a->lease = l->id;
		snprintf(a->target, sizeof a->target, "%s", l->target);
	}
	snprintf(a->message, sizeof a->message, "%s",
	    message != NULL ? message : "");
}

static int
h_unix_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Start llmgated. $LLMGATE_TEST_WRAPPER (words split on spaces, e.g.
 * "valgrind --quiet --error-exitcode=99") goes in front of its argv; a
 * daemon under a wrapper is given longer to start listening.
 */
void
h_daemon_start(struct daemon *d, const char *conf_text)
{
	h_daemon_start_as(d, conf_text, NULL);
}

void
h_daemon_start_as(struct daemon *d, const char *conf_text, const char *user)
{
	char *argv[40], *wrap = NULL, *word, *last, *log;
	struct passwd *pw = NULL;
	const char *env;
	FILE *f;
	int i, fd, ready, tries = 500, argc = 0;

	memset(d, 0, sizeof *d);
	snprintf(d->dir, sizeof d->dir, "/tmp/llmgate-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	if (user != NULL) {
		/* Its directory is its own, for the socket. */
		ck_assert_ptr_nonnull(pw = getpwnam(user));
		ck_assert_int_eq(chown(d->dir, pw->pw_uid, pw->pw_gid), 0);
	}
	snprintf(d->sock, sizeof d->sock, "%s/llmgate.sock", d->dir);
	snprintf(d->conf, sizeof d->conf, "%s/llmgated.conf", d->dir);
	snprintf(d->log, sizeof d->log, "%s/llmgated.log", d->dir);
	if ((env = getenv("LLMGATE_TEST_WRAPPER")) != NULL && *env != '\0') {
		wrap = strdup(env);
		for (word = strtok_r(wrap, " ", &last);
		     word != NULL && argc < 30;
		     word = strtok_r(NULL, " ", &last))
			argv[argc++] = word;
		tries = 6000;
	}
	argv[argc++] = BUILD_DIR "/llmgated";
	argv[argc++] = "-v";
	argv[argc++] = "-s";
	argv[argc++] = d->sock;
	if (conf_text != NULL) {
		f = fopen(d->conf, "w");
		ck_assert_ptr_nonnull(f);
		fputs(conf_text, f);
		fclose(f);
		argv[argc++] = "-c";
		argv[argc++] = d->conf;
	}
	argv[argc] = NULL;

	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		dup2(open("/dev/null", O_RDONLY), 0);
		unsetenv("LLMGATE_SOCKET");
		if (pw != NULL &&
		    (setgroups(0, NULL) != 0 ||
		        setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
		        setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0))
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	free(wrap);
	/*
	 * Listening is not enough: llmgated installs its signal handlers
	 * after it listens, then logs "ready"; a SIGTERM in between kills
	 * it, a window that is wide under valgrind.
	 */
	for (i = 0; i < tries; i++) {
		if ((fd = h_unix_connect(d->sock)) != -1) {
			close(fd);
			log = h_daemon_log(d);
			ready = strstr(log, " ready (") != NULL;
			free(log);
			if (ready)
				return;
		}
		ck_assert_msg(h_daemon_alive(d), "llmgated exited at start");
		h_sleep_ms(10);
	}
	ck_abort_msg("llmgated did not get ready");
}

int
h_daemon_alive(struct daemon *d)
{
	int st;

	return waitpid(d->pid, &st, WNOHANG) == 0;
}

int
h_daemon_stop(struct daemon *d)
{
	char *cmd;
	int st = 0;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	waitpid(d->pid, &st, 0);
	d->pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *log = h_daemon_log(d);
		fprintf(stderr, "llmgated log:\n%s\n", log);
		free(log);
	}
	cmd = h_strdup_printf("rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		perror("rm");
	free(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *
h_slurp_fd(int fd)
{
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	ssize_t n;

	for (;;) {
		if (len + 1024 > cap)
			s = realloc(s, cap *= 2);
		n = read(fd, s + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	s[len] = '\0';
	return s;
}

char *
h_daemon_log(struct daemon *d)
{
	int fd = open(d->log, O_RDONLY);
	char *s;

	if (fd == -1)
		return strdup("");
	s = h_slurp_fd(fd);
	close(fd);
	return s;
}

void
h_run(struct run *r, const char *stdin_text, char *const argv[])
{
	int in[2], out[2], err[2], st;
	char *path;
	pid_t pid;
	struct pollfd pfd[2];
	size_t olen = 0, elen = 0, ocap = 4096, ecap = 4096;
	ssize_t n;

	memset(r, 0, sizeof *r);
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	ck_assert_int_eq(pipe(err), 0);
	path = strchr(argv[0], '/') != NULL ?
	    strdup(argv[0]) :
	    h_strdup_printf("%s/%s", BUILD_DIR, argv[0]);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(in[1]);
		close(out[0]);
		close(err[0]);
		execv(path, argv);
		_exit(127);
	}
	free(path);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (stdin_text != NULL &&
	    write(in[1], stdin_text, strlen(stdin_text)) < 0)
		perror("write");
	close(in[1]);
	r->out = malloc(ocap);
	r->err = malloc(ecap);
	pfd[0].fd = out[0];
	pfd[1].fd = err[0];
	pfd[0].events = pfd[1].events = POLLIN;
	while (pfd[0].fd != -1 || pfd[1].fd != -1) {
		if (poll(pfd, 2, 30000) <= 0)
			break;
		if (pfd[0].revents) {
			if (olen + 4096 > ocap)
				r->out = realloc(r->out, ocap *= 2);
			n = read(out[0], r->out + olen, ocap - olen - 1);
			if (n <= 0)
				pfd[0].fd = -1;
			else
				olen += (size_t)n;
		}
		if (pfd[1].revents) {
			if (elen + 4096 > ecap)
				r->err = realloc(r->err, ecap *= 2);
			n = read(err[0], r->err + elen, ecap - elen - 1);
			if (n <= 0)
				pfd[1].fd = -1;
			else
				elen += (size_t)n;
		}
	}
	r->out[olen] = '\0';
	r->err[elen] = '\0';
	close(out[0]);
	close(err[0]);
	waitpid(pid, &st, 0);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void
h_cli(struct run *r, struct daemon *d, const char *stdin_text, ...)
{
	char *argv[64];
	va_list ap;
	int argc = 0;

	argv[argc++] = "llmgate";
	argv[argc++] = "-s";
	argv[argc++] = d->sock;
	va_start(ap, stdin_text);
	while (argc < 63 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	h_run(r, stdin_text, argv);
}

void
h_run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

int
h_fakeprov_start(pid_t *pidp)
{
	int out[2], port = 0;
	char buf[64];
	ssize_t n;
	size_t len = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(out), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		execl(BUILD_DIR "/tests/fakeprov", "fakeprov", "-p", "0", "-t",
		    "300", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	while (len < sizeof buf - 1) {
		n = read(out[0], buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strchr(buf, '\n') != NULL)
			break;
	}
	buf[len] = '\0';
	close(out[0]);
	ck_assert_msg(sscanf(buf, "PORT %d", &port) == 1,
	    "fakeprov did not report its port: '%s'", buf);
	*pidp = pid;
	return port;
}

void
h_fakeprov_stop(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}

int
h_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

json_t *
h_fakeprov_get(int port, const char *path)
{
	struct sockaddr_in sin;
	char *req, *resp, *body;
	json_t *j;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	req =
	    h_strdup_printf("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	free(req);
	resp = h_slurp_fd(fd);
	close(fd);
	body = strstr(resp, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	j = json_loads(body + 4, 0, NULL);
	free(resp);
	return j;
}

int
h_raw_connect(struct daemon *d, int hello)
{
	struct proto_hello h = { .version = PROTO_VERSION, .name = "test" };
	struct proto_msg m;
	msgpack_sbuffer sb;
	int fd;

	fd = h_unix_connect(d->sock);
	ck_assert_int_ge(fd, 0);
	if (!hello)
		return fd;
	msgpack_sbuffer_init(&sb);
	proto_enc_hello(&sb, &h);
	h_raw_send(fd, &sb);
	msgpack_sbuffer_destroy(&sb);
	ck_assert_int_eq(h_raw_recv(fd, &m, 5000), 0);
	ck_assert_int_eq(m.type, PROTO_HELLO);
	proto_msg_free(&m);
	return fd;
}

void
h_raw_send(int fd, msgpack_sbuffer *sb)
{
	ck_assert_int_eq(write(fd, sb->data, sb->size), (ssize_t)sb->size);
	msgpack_sbuffer_clear(sb);
}

void
h_raw_send_framed(int fd, msgpack_sbuffer *sb)
{
	unsigned char *p = (unsigned char *)sb->data;
	uint32_t len = (uint32_t)sb->size - 4;

	p[0] = len >> 24;
	p[1] = len >> 16;
	p[2] = len >> 8;
	p[3] = len;
	h_raw_send(fd, sb);
}

static int
h_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

int
h_raw_recv(int fd, struct proto_msg *m, int timeout_ms)
{
	unsigned char hdr[4];
	char *payload, err[256];
	uint32_t len;
	int rc;

	if (h_read_full(fd, hdr, 4, timeout_ms) != 0)
		return -1;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > PROTO_MAX_FRAME)
		return -1;
	payload = malloc(len);
	if (h_read_full(fd, payload, len, timeout_ms) != 0) {
		free(payload);
		return -1;
	}
	rc = proto_decode(payload, len, m, err, sizeof err);
	free(payload);
	return rc;
}

int
h_raw_closed(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[4096];
	ssize_t n;

	for (;;) {
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return 0;
		n = read(fd, buf, sizeof buf);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
		if (n < 0)
			return 0;
	}
}

/* Built the way a library caller builds one: the public setters. */
struct llmgate_request *
h_request(const char *prompt, ...)
{
	struct llmgate_request *req = llmgate_request_new();
	const char *t;
	va_list ap;

	ck_assert_ptr_nonnull(req);
	ck_assert_int_eq(llmgate_request_add_message(req, LLMGATE_ROLE_USER,
	                     prompt),
	    0);
	va_start(ap, prompt);
	while ((t = va_arg(ap, const char *)) != NULL)
		ck_assert_int_eq(llmgate_request_add_target(req, t), 0);
	va_end(ap);
	return req;
}

void
h_request_free(struct llmgate_request *req)
{
	llmgate_request_free(req);
}

/* JSON text for a failure message (leaks, but only on the failure path). */
const char *
h_jtext(const json_t *j)
{
	char *s;

	if (j == NULL)
		return "(null)";
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	return s != NULL ? s : "(unprintable)";
}

/* fakeprov percent-decodes model=, so escape what its names carry. */
static char *
h_query_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *p = out;

	for (; *s != '\0'; s++) {
		if (isalnum((unsigned char)*s) || strchr("-_.~", *s) != NULL)
			*p++ = *s;
		else {
			*p++ = '%';
			*p++ = hex[(unsigned char)*s >> 4];
			*p++ = hex[(unsigned char)*s & 0xf];
		}
	}
	*p = '\0';
	return out;
}

json_t *
h_fakeprov_last(int port, const char *model)
{
	char *q = h_query_escape(model), *path;
	json_t *j;

	path = h_strdup_printf("/_last?model=%s", q);
	j = h_fakeprov_get(port, path);
	ck_assert_msg(j != NULL && json_object_get(j, "body") != NULL,
	    "fakeprov has no request for '%s': %s", model, h_jtext(j));
	free(path);
	free(q);
	return j;
}

long long
h_fakeprov_count(int port, const char *model, const char *status)
{
	json_t *j = h_fakeprov_get(port, "/_stats"), *m, *v;
	long long n;

	ck_assert_ptr_nonnull(j);
	m = json_object_get(json_object_get(j, "by_model"), model);
	v = status == NULL ?
	    json_object_get(m, "requests") :
	    json_object_get(json_object_get(m, "status"), status);
	n = json_integer_value(v);
	json_decref(j);
	return n;
}

/* The path of name on $PATH into buf; -1 when it is not there. */
int
h_which(const char *name, char *buf, size_t size)
{
	const char *path = getenv("PATH"), *p, *end;
	int n;

	for (p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0'; p = end) {
		end = p + strcspn(p, ":");
		n = snprintf(buf, size, "%.*s/%s", (int)(end - p), p, name);
		if (n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
			return 0;
		if (*end == ':')
			end++;
	}
	return -1;
}

/*
 * Run fn in a child as nobody; its exit status (fn's return value). Only
 * for tests run as root.
 */
int
h_as_nobody(int (*fn)(void *), void *arg)
{
	struct passwd *pw = getpwnam("nobody");
	pid_t pid;
	int st;

	ck_assert_ptr_nonnull(pw);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
			_exit(120);
		_exit(fn(arg));
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st), "the child died of signal %d",
	    WTERMSIG(st));
	return WEXITSTATUS(st);
}

void
h_fixture_stop(const char *suite, struct daemon *d, pid_t *fp_pid, int *failed)
{
	int st;

	if ((st = h_daemon_stop(d)) != 0) {
		fprintf(stderr, "%s: llmgated exited %d on SIGTERM, not 0\n",
		    suite, st);
		*failed = 1;
	}
	h_fakeprov_stop(*fp_pid);
	*fp_pid = 0;
}

int
h_fixture_main(const char *suite, Suite *s, struct daemon *d, pid_t *fp_pid,
    const int *failed)
{
	SRunner *sr = srunner_create(s);
	int nfailed;

	srunner_run_all(sr, CK_NORMAL);
	nfailed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (d->pid > 0)
		h_daemon_stop(d);
	if (*fp_pid > 0)
		h_fakeprov_stop(*fp_pid);
	if (*failed)
		fprintf(stderr, "%s: the fixture failed\n", suite);
	return nfailed == 0 && !*failed ? 0 : 1;
}

char *
h_target(const char *prov, const char *tag, const char *faults)
{
	return h_strdup_printf("%s/%s-%s%s%s", prov, tag, prov,
	    faults != NULL ? "+" : "", faults != NULL ? faults : "");
}

const char *
h_model_of(const char *target)
{
	return strchr(target, '/') + 1;
}

json_t *
h_fakeprov_last_of(int port, const char *target)
{
	return h_fakeprov_last(port, h_model_of(target));
}

long long
h_fakeprov_seen(int port, const char *target)
{
	return h_fakeprov_count(port, h_model_of(target), NULL);
}
