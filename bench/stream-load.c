/*
 * stream-load.c: one client process of bench/stream-load.sh.
 *
 * Opens one connection to llmgated, submits all of its streamed calls at
 * once (one request id each) and serves them until every call has its
 * final answer. bench/upstream -n TOKENS streams the text "w0 w1 ... "
 * (token k is "wK "), so each call's streamed text is compared with the
 * full expected text: equal means every token arrived, exactly once and
 * in order. With -S MS the process is a deliberately slow reader: a
 * thread relays its connection to llmgated and reads what llmgated sends
 * at most -B BYTES (default 4096) every MS milliseconds, so llmgated's
 * socket and queue to it fill, as with a client too busy to read.
 *
 * Prints one line of key=value pairs: calls, ok, failed (an error
 * answer), garbled (an answer whose text is not the expected one), wall
 * seconds from the first submit to the last answer, and the slowest
 * call's seconds from submit to answer.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llmgate.h"
#include "util.h"

struct scall {
	char *text;
	size_t len, cap;
	int done;
	uint64_t done_ms;
};

static char *sl_expected;
static size_t sl_expected_len;
static long sl_ok, sl_failed, sl_garbled, sl_finished;
static char sl_first_error[256];

/* The slow reader's relay: client <-> relay <-> llmgated. */
struct relay {
	int lfd; /* listening, for the client */
	char daemon_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	long slow_ms;
	long bytes;
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: stream-load -s socket -m target -n calls "
	    "-k tokens\n"
	    "                   [-S slow_ms [-B bytes]]\n");
	exit(1);
}

static void
call_chunk(const struct llmgate_chunk *ch, void *arg)
{
	struct scall *c = arg;

	if (ch->reset)
		c->len = 0;
	if (ch->text == NULL || ch->len == 0)
		return;
	if (c->cap - c->len < ch->len) {
		while (c->cap - c->len < ch->len)
			c->cap = c->cap == 0 ? 256 : c->cap * 2;
		if ((c->text = realloc(c->text, c->cap)) == NULL)
			util_fatalx("out of memory");
	}
	memcpy(c->text + c->len, ch->text, ch->len);
	c->len += ch->len;
}

static void
call_done(struct llmgate_result *r, void *arg)
{
	struct scall *c = arg;

	c->done = 1;
	c->done_ms = util_now_ms();
	sl_finished++;
	if (r->cls != LLMGATE_OK) {
		sl_failed++;
		if (sl_first_error[0] == '\0')
			snprintf(sl_first_error, sizeof sl_first_error,
			    "%s: %s", llmgate_class_name(r->cls),
			    r->message != NULL ? r->message : "");
	} else if (c->len != sl_expected_len ||
	    memcmp(c->text, sl_expected, c->len) != 0)
		sl_garbled++;
	else
		sl_ok++;
	free(c->text);
	c->text = NULL;
	llmgate_result_free(r);
}

static int
unix_socket(const char *path, int listening)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		util_fatalx("socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		util_fatalx("socket: %s", strerror(errno));
	if (listening) {
		unlink(path);
		if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1 ||
		    listen(fd, 1) == -1)
			util_fatalx("%s: %s", path, strerror(errno));
	} else if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1)
		util_fatalx("%s: %s", path, strerror(errno));
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Forwards the client's frames at once and llmgated's at most r->bytes
 * every r->slow_ms, until either side closes.
 */
static void *
relay_run(void *arg)
{
	struct relay *r = arg;
	struct pollfd pfd[2];
	char *buf;
	uint64_t next = 0;
	ssize_t n;
	int cfd, dfd, wait;

	if ((buf = malloc(65536)) == NULL)
		util_fatalx("out of memory");
	if ((cfd = accept(r->lfd, NULL, NULL)) == -1)
		util_fatalx("accept: %s", strerror(errno));
	dfd = unix_socket(r->daemon_path, 0);
	for (;;) {
		wait = (int)(next > util_now_ms() ? next - util_now_ms() : 0);
		pfd[0].fd = cfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = dfd;
		pfd[1].events = wait == 0 ? POLLIN : 0;
		if (poll(pfd, 2, wait == 0 ? -1 : wait) == -1) {
			if (errno == EINTR)
				continue;
			util_fatalx("poll: %s", strerror(errno));
		}
		if (pfd[0].revents != 0) {
			if ((n = read(cfd, buf, 65536)) <= 0 ||
			    write_all(dfd, buf, (size_t)n) == -1)
				break;
		}
		if (pfd[1].revents != 0) {
			if ((n = read(dfd, buf, (size_t)r->bytes)) <= 0 ||
			    write_all(cfd, buf, (size_t)n) == -1)
				break;
			next = util_now_ms() + (uint64_t)r->slow_ms;
		}
	}
	close(cfd);
	close(dfd);
	free(buf);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct llmgate *g;
	struct llmgate_request *req;
	struct scall *calls;
	struct pollfd pfd;
	struct relay relay;
	pthread_t thread;
	char relay_path[108];
	const char *sock = NULL, *target = NULL;
	char err[512], *p;
	long n = 0, tokens = 0, slow = 0, bytes = 4096, i;
	uint64_t start, slowest = 0;
	int ch, pending;

	util_setup("stream-load", NULL);
	while ((ch = getopt(argc, argv, "B:k:m:n:s:S:")) != -1) {
		switch (ch) {
		case 'B':
			bytes = util_parse_num(optarg, 1, 65536);
			break;
		case 'k':
			tokens = util_parse_num(optarg, 1, 1000000);
			break;
		case 'm':
			target = optarg;
			break;
		case 'n':
			n = util_parse_num(optarg, 1, 10000000);
			break;
		case 's':
			sock = optarg;
			break;
		case 'S':
			slow = util_parse_num(optarg, 0, 60000);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || sock == NULL || target == NULL || n == 0 ||
	    tokens == 0)
		usage();
	util_raise_nofile(-1);

	/* "w0 w1 ... w(tokens-1) " */
	if ((sl_expected = malloc((size_t)tokens * 10 + 1)) == NULL)
		util_fatalx("out of memory");
	for (p = sl_expected, i = 0; i < tokens; i++)
		p += sprintf(p, "w%ld ", i);
	sl_expected_len = (size_t)(p - sl_expected);

	if ((calls = calloc((size_t)n, sizeof *calls)) == NULL)
		util_fatalx("out of memory");
	if (slow > 0) {
		memset(&relay, 0, sizeof relay);
		if (snprintf(relay.daemon_path, sizeof relay.daemon_path, "%s",
		        sock) >= (int)sizeof relay.daemon_path ||
		    snprintf(relay_path, sizeof relay_path, "%s.slow%ld", sock,
		        (long)getpid()) >= (int)sizeof relay_path)
			util_fatalx("socket path too long: %s", sock);
		relay.slow_ms = slow;
		relay.bytes = bytes;
		relay.lfd = unix_socket(relay_path, 1);
		if (pthread_create(&thread, NULL, relay_run, &relay) != 0)
			util_fatalx("pthread_create failed");
		sock = relay_path;
	}
	if ((g = llmgate_connect(sock,
	         slow ? "stream-load-slow" : "stream-load", err, sizeof err)) ==
	    NULL)
		util_fatalx("%s", err);
	if ((req = llmgate_request_new()) == NULL ||
	    llmgate_request_add_message(req, LLMGATE_ROLE_USER, "go") == -1 ||
	    llmgate_request_add_target(req, target) == -1 ||
	    llmgate_request_set_stream(req, 1) == -1)
		util_fatalx("cannot build the request");

	start = util_now_ms();
	for (i = 0; i < n; i++)
		if (llmgate_submit(g, req, call_chunk, call_done, &calls[i]) ==
		    0)
			util_fatalx("submit: %s", llmgate_error(g));
	llmgate_request_free(req);

	for (;;) {
		pfd.fd = llmgate_fd(g);
		pfd.events = POLLIN | (llmgate_want_write(g) ? POLLOUT : 0);
		pfd.revents = 0;
		if (poll(&pfd, 1, 1000) == -1 && errno != EINTR)
			util_fatalx("poll: %s", strerror(errno));
		if ((pending = llmgate_process(g)) <= 0)
			break;
	}
	/* A lost connection answered the rest with class connection. */
	for (i = 0; i < n; i++)
		if (calls[i].done && calls[i].done_ms - start > slowest)
			slowest = calls[i].done_ms - start;
	printf("calls=%ld ok=%ld failed=%ld garbled=%ld unanswered=%ld "
	       "wall_s=%.2f slowest_s=%.2f%s%s\n",
	    n, sl_ok, sl_failed, sl_garbled, n - sl_finished,
	    (double)(util_now_ms() - start) / 1000, (double)slowest / 1000,
	    sl_first_error[0] != '\0' ? " first_error=" : "", sl_first_error);
	llmgate_close(g);
	if (slow > 0) {
		pthread_join(thread, NULL);
		close(relay.lfd);
		unlink(relay_path);
	}
	free(calls);
	free(sl_expected);
	return sl_ok == n ? 0 : 1;
}
