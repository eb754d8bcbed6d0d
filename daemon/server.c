/*
 * server.c: the daemon's process-wide pieces: the listening socket (its own
 * or systemd's), signals (reload, drain), the running config and the
 * status and metrics views of the daemon's state.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "llmgated.h"

struct event_base *ev_base;
struct config *cfg;
uint64_t server_start_ms;

static struct evconnlistener *server_listener;
static char *server_path;     /* unlinked at exit when ours */
static dev_t server_path_dev; /* ... and still ours: */
static ino_t server_path_ino; /* the file we bound */
static int server_drain;
static struct event *server_sigs[4];
static struct event *server_drain_ev;
static struct event *server_resume_ev;

/* Is a daemon answering at path? Decides between "refuse" and "stale". */
static int
server_alive(const char *path)
{
	struct sockaddr_un sun;
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
	return rc == 0;
}

static void
server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int len, void *arg)
{
	evutil_make_socket_nonblocking(fd);
	conn_accept(fd);
}

static void
server_resume(evutil_socket_t fd, short events, void *arg)
{
	if (!server_drain && server_listener != NULL)
		evconnlistener_enable(server_listener);
}

/*
 * Draining: close the listening socket and remove its path, so that a new
 * client fails at once (ENOENT, ECONNREFUSED) instead of hanging in a
 * backlog nobody accepts from, and a new llmgated may start on the path
 * while we finish. Under socket activation systemd keeps its own copy and
 * queues connections for the next instance.
 */
static void
server_unlisten(void)
{
	struct stat st;

	if (server_listener != NULL) {
		evconnlistener_free(server_listener);
		server_listener = NULL;
	}
	if (server_resume_ev != NULL)
		evtimer_del(server_resume_ev);
	front_http_unlisten();
	if (server_path != NULL) {
		/* Never remove a socket someone else has bound there since. */
		if (lstat(server_path, &st) == 0 &&
		    st.st_dev == server_path_dev &&
		    st.st_ino == server_path_ino)
			unlink(server_path);
		free(server_path);
		server_path = NULL;
	}
}

/*
 * Out of descriptors: pause accepting for a moment instead of spinning on
 * a listener that stays readable (tmux server_accept does the same).
 */
static void
server_accept_error(struct evconnlistener *l, void *arg)
{
	struct timeval tv = { 1, 0 };
	int err = EVUTIL_SOCKET_ERROR();

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		log_warnx("accept: %s; pausing for a second",
		    evutil_socket_error_to_string(err));
		evconnlistener_disable(server_listener);
		evtimer_add(server_resume_ev, &tv);
		return;
	}
	log_warnx("accept: %s", evutil_socket_error_to_string(err));
}

static int
server_mkdir_parent(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	struct stat st;
	int rc = 0;

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) != 0 && mkdir(dir, 0755) != 0 &&
		    errno != EEXIST)
			rc = -1;
	}
	free(dir);
	return rc;
}

/*
 * Socket activation (sd_listen_fds(3)): the first passed descriptor, 3,
 * when $LISTEN_PID is us. The variables are cleared so that nothing we
 * start inherits them.
 */
static int
server_activated_fd(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int fd = -1;

	if (pid != NULL && fds != NULL && strtol(pid, NULL, 10) == getpid() &&
	    strtol(fds, NULL, 10) >= 1) {
		fd = 3;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		evutil_make_socket_nonblocking(fd);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return fd;
}

/*
 * Who may connect: the socket's mode, and its group when socket_group is
 * set, so that members of that group reach a root daemon's 0660 socket.
 */
static int
server_socket_group(const char *path, char **cause)
{
	if (cfg->socket_group != NULL &&
	    chown(path, (uid_t)-1, cfg->socket_gid) != 0) {
		xasprintf(cause, "cannot give %s to group '%s': %s", path,
		    cfg->socket_group, strerror(errno));
		return -1;
	}
	return 0;
}

/* On reload: the socket exists, its mode and group change in place. */
static int
server_socket_perms(const char *path, mode_t mode, char **cause)
{
	if (chmod(path, mode) != 0) {
		xasprintf(cause, "cannot set the mode of %s to %04o: %s", path,
		    (unsigned)mode, strerror(errno));
		return -1;
	}
	return server_socket_group(path, cause);
}

/*
 * A listening unix socket at path, born with mode: bind() under a umask
 * that leaves exactly mode, rather than a chmod() after, which leaves a
 * window and follows whatever the path names by then; the socket group is
 * set before listen(), so nobody gets in too early. The caller has dealt
 * with whatever was at path. The descriptor, or -1 with *cause.
 */
int
server_unix_listen(const char *path, mode_t mode, char **cause)
{
	struct sockaddr_un sun;
	mode_t old_mask;
	int fd, rc;

	if (strlen(path) >= sizeof sun.sun_path) {
		xasprintf(cause, "socket path too long: %s", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return -1;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	old_mask = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old_mask);
	if (rc != 0) {
		xasprintf(cause, "cannot listen on %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (server_socket_group(path, cause) != 0)
		goto fail;
	if (listen(fd, 256) != 0) {
		xasprintf(cause, "cannot listen on %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	return fd;
fail:
	unlink(path);
	close(fd);
	return -1;
}

int
server_listen(const char *path, mode_t mode, char **cause)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1;

	if ((fd = server_activated_fd()) != -1)
		log_info("listening on the socket systemd passed");
	else {
		if (strlen(path) >= sizeof sun.sun_path) {
			xasprintf(cause, "socket path too long: %s", path);
			return -1;
		}
		if (lstat(path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				xasprintf(cause,
				    "%s exists and is not a "
				    "socket; refusing to replace it",
				    path);
				return -1;
			}
			if (server_alive(path)) {
				xasprintf(cause,
				    "another llmgated is already "
				    "listening on %s",
				    path);
				return -1;
			}
			log_info("replacing stale socket %s", path);
			unlink(path);
		}
		if (server_mkdir_parent(path) != 0) {
			xasprintf(cause,
			    "cannot create the directory of %s: "
			    "%s",
			    path, strerror(errno));
			return -1;
		}
		if ((fd = server_unix_listen(path, mode, cause)) == -1)
			return -1;
		server_path = xstrdup(path);
		if (lstat(path, &st) == 0) {
			server_path_dev = st.st_dev;
			server_path_ino = st.st_ino;
		}
	}
	server_listener = evconnlistener_new(ev_base, server_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (server_listener == NULL) {
		xasprintf(cause, "evconnlistener_new failed");
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(server_listener, server_accept_error);
	server_resume_ev = evtimer_new(ev_base, server_resume, NULL);
	return 0;
}

int
server_reload(char **cause)
{
	struct config *next;
	char *errors = NULL, *mcause = NULL;
	size_t len;

	notify_reloading();
	next = config_load(cfg->path, &errors);
	if (next == NULL) {
		/* One problem a line; no empty line after the last one. */
		if (errors != NULL && (len = strlen(errors)) != 0 &&
		    errors[len - 1] == '\n')
			errors[len - 1] = '\0';
		xasprintf(cause,
		    "reload refused, keeping the running "
		    "config:\n%s",
		    errors != NULL ? errors : "");
		log_warnx("%s", *cause);
		free(errors);
		notify_ready();
		return -1;
	}
	/* Calls in flight keep the config they started with. */
	config_unref(cfg);
	cfg = config_ref(next);
	target_reconfigure(cfg);
	clients_reconfigure(cfg);
	log_info("configuration reloaded from %s",
	    cfg->path != NULL ? cfg->path : "the embedded default");
	if (metrics_listen(ev_base, cfg->metrics_listen, &mcause) != 0) {
		log_warnx("%s; the metrics endpoint is unchanged", mcause);
		free(mcause);
	}
	if (!server_drain)
		front_http_reload();
	/* A changed socket_mode or socket_group applies to our own socket. */
	if (server_path != NULL &&
	    server_socket_perms(server_path, cfg->socket_mode, &mcause) != 0) {
		log_warnx("%s", mcause);
		free(mcause);
	}
	notify_ready();
	return 0;
}

static void
server_exit(void)
{
	struct timeval tv = { 0, 200000 };

	/* Let the last answers leave before the loop ends. */
	event_base_loopexit(ev_base, &tv);
}

void
server_call_ended(void)
{
	if (server_drain && call_stats.inflight == 0)
		server_exit();
}

int
server_draining(void)
{
	return server_drain;
}

static void
server_drain_timeout(evutil_socket_t fd, short events, void *arg)
{
	log_warnx("drain timeout: cancelling %llu calls",
	    (unsigned long long)call_stats.inflight);
	conn_cancel_all();
	front_http_cancel_all();
	server_exit();
}

static void
server_signal(evutil_socket_t sig, short events, void *arg)
{
	struct timeval tv;
	char *cause = NULL;

	switch (sig) {
	case SIGHUP:
		if (server_reload(&cause) != 0)
			free(cause);
		return;
	case SIGTERM:
	case SIGINT:
		if (server_drain) {
			log_info("second signal: exiting now");
			conn_cancel_all();
			front_http_cancel_all();
			server_exit();
			return;
		}
		server_drain = 1;
		notify_stopping();
		log_info("draining: %llu calls in flight",
		    (unsigned long long)call_stats.inflight);
		server_unlisten();
		conn_cancel_leases();
		if (call_stats.inflight == 0) {
			server_exit();
			return;
		}
		tv.tv_sec = cfg->drain_ms / 1000;
		tv.tv_usec = (cfg->drain_ms % 1000) * 1000;
		server_drain_ev =
		    evtimer_new(ev_base, server_drain_timeout, NULL);
		evtimer_add(server_drain_ev, &tv);
		return;
	}
}

/*
 * Signals are caught before the socket listens: a SIGTERM that comes the
 * moment a client can connect must drain, not kill the daemon and leave
 * its socket behind. It is handled once the loop runs.
 */
void
server_signals(void)
{
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT };
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		server_sigs[i] =
		    evsignal_new(ev_base, sigs[i], server_signal, NULL);
		evsignal_add(server_sigs[i], NULL);
	}
}

int
server_run(void)
{
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT };
	size_t i;

	server_start_ms = now_ms();
	notify_ready();
	notify_watchdog_start(ev_base);
	state_start(ev_base);
	cluster_start(ev_base);
	log_info("llmgated %s ready (%s)", LLMGATE_VERSION,
	    cfg->path != NULL ? cfg->path : "embedded default config");
	event_base_dispatch(ev_base);
	/* The last save keeps the cluster's hosts seen: before its stop. */
	state_stop();
	cluster_stop();
	notify_watchdog_stop();
	metrics_shutdown();

	front_http_shutdown();
	conn_close_all();
	quota_free_all();
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		event_free(server_sigs[i]);
	if (server_drain_ev != NULL)
		event_free(server_drain_ev);
	server_unlisten();
	if (server_resume_ev != NULL)
		event_free(server_resume_ev);
	log_info("llmgated stopped");
	return 0;
}

/* A number, or null for "no limit known". */
static json_t *
server_limit(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

/*
 * The pools: each member's state as the choice sees it (for a call of
 * RL_DEFAULT_TOKENS), the turns it took and the moves away from it.
 */
static json_t *
server_pools(uint64_t now)
{
	const struct pool_conf *pc;
	const struct provider_conf *prov;
	struct pool_member v;
	struct target *t;
	json_t *pools = json_array(), *members;
	const char *slash;
	char *pname;
	size_t i, j;

	for (i = 0; i < cfg->npools; i++) {
		pc = &cfg->pools[i];
		members = json_array();
		for (j = 0; j < pc->ntargets; j++) {
			slash = strchr(pc->targets[j], '/');
			pname = xstrndup(pc->targets[j],
			    (size_t)(slash - pc->targets[j]));
			prov = config_provider(cfg, pname);
			free(pname);
			t = prov != NULL ? target_get(prov, slash + 1) : NULL;
			if (t == NULL)
				continue;
			pool_member_view(&v, t, prov->concurrency,
			    RL_DEFAULT_TOKENS, now);
			json_array_append_new(members,
			    json_pack("{s:s, s:I, "
			              "s:b, s:I, s:f, s:I, s:I, s:I, s:I}",
			        "target", pc->targets[j], "weight",
			        (json_int_t)pc->state->weight[j], "ready",
			        prov->key_env_unset == NULL && v.ready,
			        "wait_ms", (json_int_t)v.wait_ms, "headroom",
			        v.headroom, "inflight", (json_int_t)v.inflight,
			        "queued", (json_int_t)v.queued, "picks",
			        (json_int_t)pc->state->picks[j], "moves",
			        (json_int_t)pc->state->moves[j]));
		}
		json_array_append_new(pools,
		    json_pack("{s:s, s:s, s:I, s:o}", "name", pc->name,
		        "strategy",
		        pool_strategy_name((enum pool_strategy)pc->strategy),
		        "max_moves", (json_int_t)pc->max_moves, "members",
		        members));
	}
	return pools;
}

json_t *
server_status(void)
{
	json_t *st, *targets, *tj, *providers, *cj;
	const struct provider_conf *p;
	struct rl_status rs;
	struct target *t;
	uint64_t now = now_ms();
	size_t i;

	targets = json_array();
	for (t = target_first(); t != NULL; t = t->next) {
		/*
		 * A provider removed by a reload leaves the view once its
		 * calls are done; its state is kept should it come back.
		 */
		if (config_provider(cfg, t->provider->name) == NULL &&
		    t->inflight == 0 && waitq_len(&t->queue) == 0)
			continue;
		rl_status(&t->rl, now, &rs);
		tj = json_pack("{s:s, s:s, s:{s:o, s:o}, s:{s:o, s:o}, s:I, "
		               "s:s?, s:I, s:I, s:I, s:I, s:I}",
		    "target", t->name, "breaker",
		    breaker_state_name(breaker_state(&t->br, now)), "rpm",
		    "limit", server_limit(rs.rpm_limit), "available",
		    rs.rpm_limit < 0 ? json_null() :
		                       json_integer(rs.rpm_available),
		    "tpm", "limit", server_limit(rs.tpm_limit), "available",
		    rs.tpm_limit < 0 ? json_null() :
		                       json_integer(rs.tpm_available),
		    "cooldown_ms", (json_int_t)rs.cooldown_ms,
		    "cooldown_reason", rs.cooldown_reason, "breaker_open_ms",
		    (json_int_t)breaker_open_remaining(&t->br, now), "inflight",
		    (json_int_t)t->inflight, "queued",
		    (json_int_t)waitq_len(&t->queue), "calls",
		    (json_int_t)t->calls, "failures", (json_int_t)t->failures);
		json_array_append_new(targets, tj);
	}
	/*
	 * The providers' endpoints (never their keys), so that a client
	 * taking leases in front of its own SDK can tell which provider a
	 * request URL belongs to. base_url null: the type's public one.
	 */
	providers = json_array();
	for (i = 0; i < cfg->nproviders; i++) {
		p = &cfg->providers[i];
		json_array_append_new(providers,
		    json_pack("{s:s, s:s, s:s?}", "name", p->name, "type",
		        p->type->name, "base_url", p->base_url));
	}
	st = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:{s:f, s:f, s:f}, "
	               "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
	    "version", LLMGATE_VERSION, "uptime_s",
	    (json_int_t)((now - server_start_ms) / 1000), "clients",
	    (json_int_t)conn_count(), "inflight",
	    (json_int_t)call_stats.inflight, "queued",
	    (json_int_t)admit_queued(), "targets", targets, "providers",
	    providers, "retry_budget", "available",
	    admit_retry_available(&cfg->retry_budget, now), "ratio",
	    cfg->retry_budget.ratio, "min_per_s", cfg->retry_budget.min_per_s,
	    "counters", "calls", (json_int_t)call_stats.calls, "attempts",
	    (json_int_t)call_stats.attempts, "retries",
	    (json_int_t)call_stats.retries, "fallbacks",
	    (json_int_t)call_stats.fallbacks, "failed",
	    (json_int_t)call_stats.failed, "repairs",
	    (json_int_t)call_stats.repairs, "moves",
	    (json_int_t)call_stats.moves);
	/* Bytes held for clients (max_memory counts them): requests,
	 * unfinished frames, replies and HTTP answers not yet written. */
	json_object_set_new(st, "memory_held",
	    json_integer((json_int_t)quota_held()));
	json_object_set_new(json_object_get(st, "counters"),
	    "http_stream_holds",
	    json_integer((json_int_t)front_http_stream_holds()));
	json_object_set_new(st, "pools", server_pools(now));
	json_object_set_new(st, "domains", domain_status(target_first(), now));
	if ((cj = cluster_status()) != NULL)
		json_object_set_new(st, "cluster", cj);
	json_object_set_new(st, "client_classes",
	    clients_status_json(cfg, clients_wall_ms()));
	return st;
}
