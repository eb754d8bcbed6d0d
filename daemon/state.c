/*
 * state.c: what the daemon learned about its targets, kept across
 * restarts: cooldowns, breakers, learned limits and bucket levels. Without
 * it a restart (an upgrade, a crash, systemd's Restart=) would forget that
 * a provider asked us to back off, and the daemon would send a burst at a
 * provider that was cooling down.
 *
 * The file is JSON, written atomically (a temporary file, fsync, rename)
 * every state_save_ms and at shutdown. A periodic save encodes the state
 * on the event loop (cheap: a few hundred bytes a target) and leaves the
 * write, whose fsync can take seconds on a busy disk, to a thread of its
 * own, so calls never wait for the disk; the thread tells the loop it is
 * done through a pipe. At shutdown the save is made in place. The monotonic clock does not
 * survive a restart (nor a reboot), so times are kept as "ms left" at
 * saved_at, a wall-clock time; at load the time spent down is subtracted.
 * A file that cannot be read or parsed is logged and ignored: losing this
 * state is a burst at worst, never a reason not to start.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmgated.h"

#define STATE_MAX_BYTES  (16 * 1024 * 1024)
#define STATE_TARGET_MAX 1024 /* bytes in a "provider/model" */
#define STATE_REASON_MAX 256
/* Targets the config does not name restored at most: a file filled with
 * invented names must not fill the table again at every start. */
#define STATE_RESTORE_MAX (TARGET_MAX / 4)
/* No hold, breaker or level in ratelimit.c and breaker.c goes past these. */
#define STATE_OPEN_MAX  ((json_int_t)UINT32_MAX * BREAKER_MAX_MULT)
#define STATE_LEVEL_MAX ((json_int_t)UINT32_MAX)

static struct event *state_ev;
static char *state_error; /* the last save's failure, logged once */

/* A periodic save being written off the loop; at most one at a time. */
struct state_job {
	pthread_t thread;
	char *path;
	char *text;
	char *cause; /* the thread's: set when rv is -1 */
	int rv;
};
static struct state_job *state_job;
static int state_pipe[2] = { -1, -1 }; /* the thread's "done" */
static struct event *state_done_ev;

/* One entry of the file, checked whole before any of it is applied. */
struct state_entry {
	const char *target;
	struct rl_saved rs;
	int has_breaker;
	enum breaker_state bstate;
	uint64_t open_left;
	uint32_t mult;
	uint32_t consecutive;
};

static uint64_t
state_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The config's state_file; else, under systemd's StateDirectory=, a file
 * in it ($STATE_DIRECTORY lists the directories, colon-separated: the
 * first is ours); else none, so a plain foreground run keeps nothing.
 */
const char *
state_path(void)
{
	static char buf[PATH_MAX];
	const char *dir;
	size_t len;

	if (cfg != NULL && cfg->state_file != NULL)
		return cfg->state_file;
	if ((dir = getenv("STATE_DIRECTORY")) == NULL || *dir == '\0')
		return NULL;
	len = strcspn(dir, ":");
	if (snprintf(buf, sizeof buf, "%.*s/state.json", (int)len, dir) >=
	    (int)sizeof buf)
		return NULL;
	return buf;
}

/* A budget's saved part (a target's or a quota domain's) into o. */
static json_t *
state_rl_put(json_t *o, const struct rl_saved *rs)
{
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "cooldown_ms_left",
	    json_integer((json_int_t)rs->cooldown_ms));
	json_object_set_new(o, "learned_rpm",
	    json_integer((json_int_t)rs->learned_rpm));
	json_object_set_new(o, "learned_tpm",
	    json_integer((json_int_t)rs->learned_tpm));
	if (rs->cooldown_ms != 0 && rs->cooldown_reason != NULL)
		json_object_set_new(o, "cooldown_reason",
		    json_string(rs->cooldown_reason));
	if (rs->has_req)
		json_object_set_new(o, "req_level",
		    json_integer(rs->req_level));
	if (rs->has_tok)
		json_object_set_new(o, "tok_level",
		    json_integer(rs->tok_level));
	return o;
}

/* A target's entry; NULL when it holds nothing a fresh target lacks. */
static json_t *
state_target(const struct target *t, uint64_t now)
{
	const struct breaker *b = &t->br;
	struct rl_saved rs;
	int worth;

	worth = rl_save(&t->rl, now, &rs);
	if (b->state != BREAKER_CLOSED || b->consecutive != 0)
		worth = 1;
	if (!worth)
		return NULL;
	return state_rl_put(json_pack("{s:s, s:{s:s, s:I, s:I, s:I}}", "target",
	                        t->name, "breaker", "state",
	                        breaker_state_name(b->state), "open_ms_left",
	                        (json_int_t)breaker_open_remaining(b, now),
	                        "mult", (json_int_t)b->mult, "consecutive",
	                        (json_int_t)b->consecutive),
	    &rs);
}

/* The quota domains' holds, learned limits and levels, worth keeping. */
static json_t *
state_domains(uint64_t now)
{
	const struct domain *d;
	struct rl_saved rs;
	json_t *a = json_array(), *o;

	for (d = domain_first(); d != NULL; d = d->next) {
		if (d->live && rl_save(&d->rl, now, &rs) &&
		    (o = state_rl_put(json_pack("{s:s}", "domain", d->name),
		         &rs)) != NULL)
			json_array_append_new(a, o);
	}
	return a;
}

static int
state_write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The rename is only durable once the directory is on disk too. */
static void
state_sync_dir(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int fd;

	if (slash != NULL) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd != -1) {
			fsync(fd);
			close(fd);
		}
	}
	free(dir);
}

/* The state as the file's text (free()); NULL with *cause. */
static char *
state_encode(const char *path, char **cause)
{
	json_t *root, *targets, *o;
	struct target *t;
	uint64_t now = now_ms();
	char *text = NULL;

	targets = json_array();
	for (t = target_first(); t != NULL; t = t->next) {
		if ((o = state_target(t, now)) != NULL)
			json_array_append_new(targets, o);
	}
	root = json_pack("{s:i, s:I, s:o, s:o, s:o}", "version", STATE_VERSION,
	    "saved_at", (json_int_t)state_wall_ms(), "targets", targets,
	    "client_classes", clients_save_json(state_wall_ms()), "domains",
	    state_domains(now));
	if (root != NULL && cluster_hosts_seen() != 0)
		json_object_set_new(root, "cluster_hosts",
		    json_integer((json_int_t)cluster_hosts_seen()));
	if (root == NULL || (text = json_dumps(root, JSON_INDENT(1))) == NULL)
		xasprintf(cause, "%s: cannot encode the state", path);
	json_decref(root);
	return text;
}

/*
 * Write text to path, atomically: a reader (or the next start after a
 * crash mid-write) sees the old file or the new one. Touches nothing but
 * its arguments, so it may run on a thread of its own.
 */
static int
state_write(const char *path, const char *text, char **cause)
{
	char *tmp = NULL;
	int fd = -1;

	xasprintf(&tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1) {
		xasprintf(cause, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	/* A leftover temporary file keeps its old mode through O_CREAT. */
	if (fchmod(fd, 0600) != 0 ||
	    state_write_all(fd, text, strlen(text)) != 0 ||
	    state_write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
		xasprintf(cause, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		xasprintf(cause, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto fail;
	}
	state_sync_dir(path);
	free(tmp);
	return 0;

fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

/* Every target worth keeping, to path, now (blocking). */
int
state_save(const char *path, char **cause)
{
	char *text;
	int rv;

	if ((text = state_encode(path, cause)) == NULL)
		return -1;
	rv = state_write(path, text, cause);
	free(text);
	return rv;
}

/*
 * An optional integer member in [min, max]: 0 when absent or null, 1 when
 * set (*out), -1 when it is something else (*why).
 */
static int
state_int(const json_t *o, const char *key, json_int_t min, json_int_t max,
    json_int_t *out, const char **why)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v)) {
		*why = "not an integer";
		return -1;
	}
	*out = json_integer_value(v);
	if (*out < min || *out > max) {
		*why = "out of range";
		return -1;
	}
	return 1;
}

static int
state_breaker(const json_t *o, struct state_entry *e, char **cause)
{
	const char *name, *why = NULL;
	json_int_t v;
	int rc;

	if (!json_is_object(o)) {
		xasprintf(cause, "breaker is not an object");
		return -1;
	}
	name = json_string_value(json_object_get(o, "state"));
	if (name == NULL) {
		xasprintf(cause, "breaker.state is not a string");
		return -1;
	}
	for (e->bstate = 0; e->bstate < BREAKER_STATE_MAX; e->bstate++) {
		if (strcmp(name, breaker_state_name(e->bstate)) == 0)
			break;
	}
	if (e->bstate == BREAKER_STATE_MAX) {
		xasprintf(cause, "breaker.state '%.32s' is unknown", name);
		return -1;
	}
	e->mult = 1;
	if ((rc = state_int(o, "open_ms_left", 0, STATE_OPEN_MAX, &v, &why)) ==
	    -1) {
		xasprintf(cause, "breaker.open_ms_left: %s", why);
		return -1;
	}
	e->open_left = rc == 1 ? (uint64_t)v : 0;
	if ((rc = state_int(o, "mult", 1, BREAKER_MAX_MULT, &v, &why)) == -1) {
		xasprintf(cause, "breaker.mult: %s", why);
		return -1;
	}
	if (rc == 1)
		e->mult = (uint32_t)v;
	if ((rc = state_int(o, "consecutive", 0, UINT32_MAX, &v, &why)) == -1) {
		xasprintf(cause, "breaker.consecutive: %s", why);
		return -1;
	}
	e->consecutive = rc == 1 ? (uint32_t)v : 0;
	e->has_breaker = 1;
	return 0;
}

/* A budget's saved part (a target's or a quota domain's) from o. */
static int
state_rl_get(const json_t *o, struct rl_saved *rs, char **cause)
{
	static const struct {
		const char *key;
		json_int_t min, max;
	} ints[] = {
		{ "cooldown_ms_left", 0, RL_HOLD_MAX_MS },
		{ "learned_rpm", 0, UINT32_MAX },
		{ "learned_tpm", 0, UINT32_MAX },
		{ "req_level", -STATE_LEVEL_MAX, STATE_LEVEL_MAX },
		{ "tok_level", -STATE_LEVEL_MAX, STATE_LEVEL_MAX },
	};
	const char *why = NULL;
	json_int_t v[sizeof ints / sizeof ints[0]];
	int set[sizeof ints / sizeof ints[0]];
	json_t *r;
	size_t i;

	for (i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		v[i] = 0;
		set[i] = state_int(o, ints[i].key, ints[i].min, ints[i].max,
		    &v[i], &why);
		if (set[i] == -1) {
			xasprintf(cause, "%s: %s", ints[i].key, why);
			return -1;
		}
	}
	rs->cooldown_ms = (uint64_t)v[0];
	rs->learned_rpm = (uint32_t)v[1];
	rs->learned_tpm = (uint32_t)v[2];
	rs->has_req = set[3] == 1;
	rs->req_level = v[3];
	rs->has_tok = set[4] == 1;
	rs->tok_level = v[4];
	if ((r = json_object_get(o, "cooldown_reason")) != NULL &&
	    !json_is_null(r)) {
		if (!json_is_string(r) ||
		    json_string_length(r) > STATE_REASON_MAX) {
			xasprintf(cause,
			    "cooldown_reason is not a short "
			    "string");
			return -1;
		}
		rs->cooldown_reason = json_string_value(r);
	}
	return 0;
}

/* Check one entry of the file; unknown members are ignored. */
static int
state_entry(const json_t *o, struct state_entry *e, char **cause)
{
	const char *slash;
	json_t *b;

	memset(e, 0, sizeof *e);
	if (!json_is_object(o)) {
		xasprintf(cause, "not an object");
		return -1;
	}
	e->target = json_string_value(json_object_get(o, "target"));
	if (e->target == NULL) {
		xasprintf(cause, "target is not a string");
		return -1;
	}
	slash = strchr(e->target, '/');
	if (slash == NULL || slash == e->target || slash[1] == '\0' ||
	    strlen(e->target) > STATE_TARGET_MAX) {
		xasprintf(cause, "target '%.64s' is not provider/model",
		    e->target);
		return -1;
	}
	if (state_rl_get(o, &e->rs, cause) != 0)
		return -1;
	if ((b = json_object_get(o, "breaker")) != NULL && !json_is_null(b))
		return state_breaker(b, e, cause);
	return 0;
}

/* Put one checked entry back, elapsed ms after it was saved. */
static int
state_apply(const struct state_entry *e, uint64_t elapsed, uint64_t now,
    size_t *unconfigured)
{
	const struct provider_conf *pc;
	struct target *t;
	const char *slash = strchr(e->target, '/');
	char *prov;
	uint64_t left;

	prov = xstrndup(e->target, (size_t)(slash - e->target));
	pc = config_provider(cfg, prov);
	free(prov);
	if (pc == NULL) {
		log_debug("state: %s: no such provider now; dropped",
		    e->target);
		return 0;
	}
	if ((t = target_get(pc, slash + 1)) == NULL)
		return -1;
	if (!t->configured && ++*unconfigured > STATE_RESTORE_MAX)
		return 0; /* left idle: evicted when room is needed */
	rl_restore(&t->rl, &e->rs, elapsed, now);
	if (e->has_breaker) {
		left = e->open_left > elapsed ? e->open_left - elapsed : 0;
		breaker_restore(&t->br, e->bstate, now + left, e->mult,
		    e->consecutive);
	}
	return 1;
}

/*
 * The quota domains' entries (none in a file from before them): each put
 * back into the domain of that name, when the config still has it.
 */
static void
state_load_domains(const char *path, const json_t *domains, uint64_t elapsed,
    uint64_t now)
{
	struct rl_saved rs;
	struct domain *d;
	const json_t *o;
	const char *name;
	char *cause = NULL;
	size_t i;

	json_array_foreach(domains, i, o) {
		memset(&rs, 0, sizeof rs);
		name = json_string_value(json_object_get(o, "domain"));
		if (name == NULL) {
			log_warnx("state file %s: domain %zu: domain is not "
			          "a string; skipped",
			    path, i);
			continue;
		}
		if (state_rl_get(o, &rs, &cause) != 0) {
			log_warnx("state file %s: domain %zu: %s; skipped",
			    path, i, cause);
			free(cause);
			cause = NULL;
			continue;
		}
		if ((d = domain_find(name)) != NULL && d->live)
			rl_restore(&d->rl, &rs, elapsed, now);
	}
}

/* The whole file, NUL-terminated; NULL with *cause. ENOENT is left in errno. */
static char *
state_read(const char *path, size_t *lenp, char **cause)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, error;

	/* O_NONBLOCK: a FIFO put there must not block the start. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		error = errno;
		xasprintf(cause, "%s: %s", path, strerror(error));
		errno = error;
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		xasprintf(cause, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size > STATE_MAX_BYTES) {
		xasprintf(cause, "%s: larger than %d bytes", path,
		    STATE_MAX_BYTES);
		goto fail;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		n = read(fd, text + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			xasprintf(cause, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	close(fd);
	*lenp = len;
	errno = 0;
	return text;

fail:
	free(text);
	close(fd);
	errno = 0;
	return NULL;
}

/*
 * Restore what path holds into the targets of the running config: at
 * start, before any call. A file that is not there is a first start (0).
 * A file that cannot be read or is not a state file: -1 with *cause; an
 * entry that does not check is skipped with a warning, the rest applies.
 */
int
state_load(const char *path, char **cause)
{
	json_t *root = NULL, *targets;
	json_error_t jerr;
	struct state_entry e;
	json_int_t version, saved_at, hosts;
	uint64_t now = now_ms(), wall = state_wall_ms(), elapsed;
	const char *why = NULL;
	char *text, *ecause = NULL, *near;
	size_t len, i, restored = 0, unconfigured = 0;
	int rc;

	if ((text = state_read(path, &len, cause)) == NULL) {
		if (errno == ENOENT) {
			free(*cause);
			*cause = NULL;
			log_info("state file %s: none yet", path);
			return 0;
		}
		return -1;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (root == NULL) {
		/*
		 * Not jansson's whole text: its "near '...'" quotes the
		 * file, and state_file may be a link to a file we should
		 * not print a word of.
		 */
		if ((near = strstr(jerr.text, " near ")) != NULL)
			*near = '\0';
		xasprintf(cause, "%s:%d:%d: not a JSON state file (%s)", path,
		    jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		xasprintf(cause, "%s: not a JSON object", path);
		goto fail;
	}
	if (state_int(root, "version", 0, INT32_MAX, &version, &why) != 1 ||
	    version != STATE_VERSION) {
		xasprintf(cause, "%s: not a version %d state file", path,
		    STATE_VERSION);
		goto fail;
	}
	if (state_int(root, "saved_at", 1, INT64_MAX, &saved_at, &why) != 1) {
		xasprintf(cause, "%s: saved_at: %s", path,
		    why != NULL ? why : "missing");
		goto fail;
	}
	if (!json_is_array(targets = json_object_get(root, "targets"))) {
		xasprintf(cause, "%s: targets is not an array", path);
		goto fail;
	}
	/* The cluster's hosts, last seen: a start without Redis shares. */
	if ((rc = state_int(root, "cluster_hosts", 1, 10000, &hosts, &why)) ==
	    1)
		cluster_hosts_restore((unsigned)hosts);
	else if (rc == -1)
		log_warnx("state file %s: cluster_hosts: %s; ignored", path,
		    why);
	/* A clock set back: count no time as passed, which holds longest. */
	elapsed = wall > (uint64_t)saved_at ? wall - (uint64_t)saved_at : 0;

	for (i = 0; i < json_array_size(targets); i++) {
		if (state_entry(json_array_get(targets, i), &e, &ecause) != 0) {
			log_warnx("state file %s: target %zu: %s; skipped",
			    path, i, ecause);
			free(ecause);
			ecause = NULL;
			continue;
		}
		if ((rc = state_apply(&e, elapsed, now, &unconfigured)) == -1) {
			log_warnx("state file %s: too many targets (limit "
			          "%d); the rest is dropped",
			    path, TARGET_MAX);
			break;
		}
		restored += (size_t)rc;
	}
	/* Client classes' token use (absent in older files). */
	clients_load_json(cfg, json_object_get(root, "client_classes"), wall);
	state_load_domains(path, json_object_get(root, "domains"), elapsed,
	    now);
	if (unconfigured > STATE_RESTORE_MAX)
		log_warnx("state file %s: %zu targets the config does not "
		          "name; the first %d restored",
		    path, unconfigured, STATE_RESTORE_MAX);
	log_info("state file %s: restored %zu targets, saved %llu s ago", path,
	    restored, (unsigned long long)(elapsed / 1000));
	json_decref(root);
	return 0;

fail:
	json_decref(root);
	return -1;
}

void
state_restore(void)
{
	const char *path = state_path();
	char *cause = NULL;

	if (path == NULL) {
		log_debug("no state file (state_file or StateDirectory=): "
		          "cooldowns and breakers start afresh");
		return;
	}
	if (state_load(path, &cause) != 0) {
		log_warnx("state file ignored: %s", cause);
		free(cause);
	}
}

/* A save's outcome (cause NULL: saved), a failure logged once. */
static void
state_result(const char *path, char *cause)
{
	if (cause != NULL) {
		if (state_error == NULL || strcmp(state_error, cause) != 0)
			log_warnx("cannot save the state file: %s", cause);
		free(state_error);
		state_error = cause;
		return;
	}
	if (state_error != NULL) {
		log_info("state file %s saved again", path);
		free(state_error);
		state_error = NULL;
	}
	log_debug("state file %s saved", path);
}

/* Save in place, on the caller's stack (shutdown). */
static void
state_flush(void)
{
	const char *path = state_path();
	char *cause = NULL;

	if (path == NULL)
		return;
	state_result(path, state_save(path, &cause) == 0 ? NULL : cause);
}

static void *
state_thread(void *arg)
{
	struct state_job *job = arg;
	char c = 0;
	ssize_t n;

	job->rv = state_write(job->path, job->text, &job->cause);
	do
		n = write(state_pipe[1], &c, 1);
	while (n == -1 && errno == EINTR);
	return NULL;
}

/* Wait for the job in flight (it is done, or shutting down) and log. */
static void
state_reap(void)
{
	struct state_job *job = state_job;

	if (job == NULL)
		return;
	pthread_join(job->thread, NULL);
	state_job = NULL;
	state_result(job->path, job->rv == 0 ? NULL : job->cause);
	free(job->path);
	free(job->text);
	free(job);
}

static void
state_done(evutil_socket_t fd, short events, void *arg)
{
	char buf[16];

	while (read(fd, buf, sizeof buf) > 0)
		continue;
	state_reap();
}

/*
 * A periodic save: encode here, write on a thread. While the previous
 * one is still writing (a disk that slow), this period is skipped.
 */
static void
state_flush_async(void)
{
	const char *path = state_path();
	struct state_job *job;
	char *cause = NULL, *text;
	sigset_t all, old;
	int err;

	if (path == NULL)
		return;
	if (state_job != NULL) {
		log_debug("state file %s: the last save is still being "
		          "written",
		    path);
		return;
	}
	if ((text = state_encode(path, &cause)) == NULL) {
		state_result(path, cause);
		return;
	}
	job = xcalloc(1, sizeof *job);
	job->path = xstrdup(path);
	job->text = text;
	/* The thread takes no signals: the loop handles them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = state_pipe[1] == -1 ?
	    -1 :
	    pthread_create(&job->thread, NULL, state_thread, job);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		/* No thread to be had: write it here rather than not. */
		job->rv = state_write(job->path, job->text, &job->cause);
		state_result(job->path, job->rv == 0 ? NULL : job->cause);
		free(job->path);
		free(job->text);
		free(job);
		return;
	}
	state_job = job;
}

/* One-shot and re-armed, so a reload's state_save_ms takes effect. */
static void
state_arm(void)
{
	struct timeval tv = { (time_t)(cfg->state_save_ms / 1000),
		(suseconds_t)(cfg->state_save_ms % 1000) * 1000 };

	evtimer_add(state_ev, &tv);
}

static void
state_tick(evutil_socket_t fd, short events, void *arg)
{
	state_flush_async();
	state_arm();
}

/* Runs even without a path: a reload may set state_file. */
void
state_start(struct event_base *base)
{
	if (state_ev == NULL)
		state_ev = evtimer_new(base, state_tick, NULL);
	if (state_done_ev == NULL &&
	    pipe2(state_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
		state_done_ev = event_new(base, state_pipe[0],
		    EV_READ | EV_PERSIST, state_done, NULL);
		event_add(state_done_ev, NULL);
	} else if (state_done_ev == NULL)
		log_warn("pipe: state files are saved on the event loop");
	state_arm();
}

void
state_stop(void)
{
	if (state_ev != NULL) {
		event_free(state_ev);
		state_ev = NULL;
	}
	/* A periodic save still writing finishes first, then the last one. */
	state_reap();
	if (state_done_ev != NULL) {
		event_free(state_done_ev);
		state_done_ev = NULL;
	}
	if (state_pipe[0] != -1) {
		close(state_pipe[0]);
		close(state_pipe[1]);
		state_pipe[0] = state_pipe[1] = -1;
	}
	state_flush();
	free(state_error);
	state_error = NULL;
}
