/*
 * config-keys.c: the keys of the top level of the configuration and of
 * its small blocks (retry, breaker, retry_budget, cluster), as tables,
 * and their readers and checks. The providers, routes and http blocks
 * have files of their own (config-provider.c, config-route.c,
 * config-http.c).
 */
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "llmgated.h"

static void config_retry_on(struct config_ctx *, const config_setting_t *,
    void *);
static int config_top_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);
static int config_retry_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

/* The key tables: indexes name the keys the checks look at. */
#define RY(f) offsetof(struct retry_conf, f)
enum { RY_ATTEMPTS, RY_INITIAL, RY_MAX, RY_MULT, RY_JITTER, RY_ON, RY_REPAIRS };
static const struct config_key config_retry_key[] = {
	[RY_ATTEMPTS] = { .name = "attempts",
	    .kind = CK_U32,
	    .off = RY(attempts),
	    .min = 1,
	    .max = CALL_MAX_ATTEMPTS },
	[RY_INITIAL] = { .name = "initial_ms",
	    .kind = CK_U32,
	    .off = RY(initial_ms) },
	[RY_MAX] = { .name = "max_ms", .kind = CK_U32, .off = RY(max_ms) },
	[RY_MULT] = { .name = "multiplier",
	    .kind = CK_DOUBLE,
	    .off = RY(multiplier),
	    .min = 1,
	    .max = 100 },
	[RY_JITTER] = { .name = "jitter",
	    .kind = CK_JITTER,
	    .off = RY(jitter) },
	[RY_ON] = { .name = "on", .kind = CK_FUNC, .fn = config_retry_on },
	[RY_REPAIRS] = { .name = "repairs",
	    .kind = CK_U32,
	    .off = RY(repairs),
	    .max = 10 },
};
static const struct config_keys config_retry_keys = { config_retry_key,
	CONFIG_NITEMS(config_retry_key), config_retry_check };

#define BR(f) offsetof(struct breaker_conf, f)
static const struct config_key config_breaker_key[] = {
	{ .name = "failures", .kind = CK_U32, .off = BR(failures), .min = 1 },
	{ .name = "failure_rate",
	    .kind = CK_DOUBLE,
	    .off = BR(failure_rate),
	    .min = 0,
	    .max = 1 },
	{ .name = "min_calls", .kind = CK_U32, .off = BR(min_calls) },
	{ .name = "window_ms", .kind = CK_U32, .off = BR(window_ms), .min = 1 },
	{ .name = "open_ms", .kind = CK_U32, .off = BR(open_ms), .min = 1 },
	{ .name = "half_open_probes",
	    .kind = CK_U32,
	    .off = BR(half_open_probes),
	    .min = 1 },
};
static const struct config_keys config_breaker_keys = { config_breaker_key,
	CONFIG_NITEMS(config_breaker_key), NULL };

#define RB(f) offsetof(struct retry_budget_conf, f)
static const struct config_key config_budget_key[] = {
	{ .name = "ratio", .kind = CK_DOUBLE, .off = RB(ratio) },
	{ .name = "min_per_s", .kind = CK_DOUBLE, .off = RB(min_per_s) },
};
static const struct config_keys config_budget_keys = { config_budget_key,
	CONFIG_NITEMS(config_budget_key), NULL };

static int config_cluster_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);
#define CL(f) offsetof(struct cluster_conf, f)
enum {
	CL_REDIS,
	CL_USER,
	CL_PASSWORD_FILE,
	CL_PREFIX,
	CL_HOST,
	CL_SLICE_MS,
	CL_TIMEOUT_MS,
	CL_EXPECTED_HOSTS
};
static const struct config_key config_cluster_key[] = {
	[CL_REDIS] = { .name = "redis", .kind = CK_STRING, .off = CL(redis) },
	[CL_USER] = { .name = "user", .kind = CK_STRING, .off = CL(user) },
	[CL_PASSWORD_FILE] = { .name = "password_file",
	    .kind = CK_STRING,
	    .off = CL(password_file) },
	[CL_PREFIX] = { .name = "prefix",
	    .kind = CK_STRING,
	    .off = CL(prefix) },
	[CL_HOST] = { .name = "host", .kind = CK_STRING, .off = CL(host) },
	[CL_SLICE_MS] = { .name = "slice_ms",
	    .kind = CK_U32,
	    .off = CL(slice_ms),
	    .min = 10,
	    .max = 10000 },
	[CL_TIMEOUT_MS] = { .name = "timeout_ms",
	    .kind = CK_U32,
	    .off = CL(timeout_ms),
	    .min = 10,
	    .max = 60000 },
	[CL_EXPECTED_HOSTS] = { .name = "expected_hosts",
	    .kind = CK_U32,
	    .off = CL(expected_hosts),
	    .min = 1,
	    .max = 10000 },
};
static const struct config_keys config_cluster_keys = { config_cluster_key,
	CONFIG_NITEMS(config_cluster_key), config_cluster_check };
/* Providers come before pools, pools before routes: a route's targets
 * name providers and pools, a pool's providers. */
#define TK(f) offsetof(struct config, f)
enum {
	TK_SOCKET,
	TK_SOCKET_MODE,
	TK_LOG_LEVEL,
	TK_MAX_FRAME,
	TK_MAX_INFLIGHT,
	TK_MAX_CLIENTS,
	TK_MAX_OUTPUT,
	TK_DRAIN_MS,
	TK_METRICS_LISTEN,
	TK_MAX_WAIT_MS,
	TK_LEASE_TTL_MS,
	TK_SOCKET_GROUP,
	TK_ADMIN_GROUP,
	TK_MAX_CONNS_PER_UID,
	TK_STATE_FILE,
	TK_STATE_SAVE_MS,
	TK_STRICT_MODELS,
	TK_MAX_CALLS_PER_UID,
	TK_MAX_BYTES_PER_UID,
	TK_MAX_MEMORY,
	TK_FRAME_TIMEOUT_MS
};
static const struct config_key config_top_key[] = {
	[TK_SOCKET] = { .name = "socket",
	    .kind = CK_STRING,
	    .off = TK(socket) },
	[TK_SOCKET_MODE] = { .name = "socket_mode",
	    .kind = CK_MODE,
	    .off = TK(socket_mode) },
	[TK_LOG_LEVEL] = { .name = "log_level",
	    .kind = CK_LOGLEVEL,
	    .off = TK(log_level) },
	[TK_MAX_FRAME] = { .name = "max_frame",
	    .kind = CK_U32,
	    .off = TK(max_frame),
	    .min = 4096,
	    .max = PROTO_MAX_FRAME },
	[TK_MAX_INFLIGHT] = { .name = "max_inflight",
	    .kind = CK_U32,
	    .off = TK(max_inflight),
	    .min = 1 },
	[TK_MAX_CLIENTS] = { .name = "max_clients",
	    .kind = CK_U32,
	    .off = TK(max_clients),
	    .min = 1 },
	[TK_MAX_OUTPUT] = { .name = "max_output",
	    .kind = CK_U32,
	    .off = TK(max_output),
	    .min = 4096 },
	[TK_DRAIN_MS] = { .name = "drain_ms",
	    .kind = CK_U32,
	    .off = TK(drain_ms) },
	[TK_METRICS_LISTEN] = { .name = "metrics_listen",
	    .kind = CK_STRING,
	    .off = TK(metrics_listen) },
	[TK_MAX_WAIT_MS] = { .name = "max_wait_ms",
	    .kind = CK_U32,
	    .off = TK(max_wait_ms) },
	[TK_LEASE_TTL_MS] = { .name = "lease_ttl_ms",
	    .kind = CK_U32,
	    .off = TK(lease_ttl_ms),
	    .min = 100 },
	[TK_SOCKET_GROUP] = { .name = "socket_group",
	    .kind = CK_STRING,
	    .off = TK(socket_group) },
	[TK_ADMIN_GROUP] = { .name = "admin_group",
	    .kind = CK_STRING,
	    .off = TK(admin_group) },
	[TK_MAX_CONNS_PER_UID] = { .name = "max_conns_per_uid",
	    .kind = CK_U32,
	    .off = TK(max_conns_per_uid) },
	[TK_STATE_FILE] = { .name = "state_file",
	    .kind = CK_STRING,
	    .off = TK(state_file) },
	[TK_STATE_SAVE_MS] = { .name = "state_save_ms",
	    .kind = CK_U32,
	    .off = TK(state_save_ms),
	    .min = 100 },
	[TK_STRICT_MODELS] = { .name = "strict_models",
	    .kind = CK_BOOL,
	    .off = TK(strict_models) },
	[TK_MAX_CALLS_PER_UID] = { .name = "max_calls_per_uid",
	    .kind = CK_U32,
	    .off = TK(max_calls_per_uid) },
	[TK_MAX_BYTES_PER_UID] = { .name = "max_bytes_per_uid",
	    .kind = CK_U32,
	    .off = TK(max_bytes_per_uid) },
	[TK_MAX_MEMORY] = { .name = "max_memory",
	    .kind = CK_U32,
	    .off = TK(max_memory) },
	[TK_FRAME_TIMEOUT_MS] = { .name = "frame_timeout_ms",
	    .kind = CK_U32,
	    .off = TK(frame_timeout_ms),
	    .min = 100 },
	{ .name = "providers", .kind = CK_LIST, .fn = config_provider_add },
	{ .name = "pools", .kind = CK_LIST, .fn = config_pool_add },
	{ .name = "routes", .kind = CK_LIST, .fn = config_route_add },
	{ .name = "clients", .kind = CK_LIST, .fn = config_clients_add },
	{ .name = "limits", .kind = CK_LIST, .fn = config_domain_add },
	{ .name = "retry",
	    .kind = CK_GROUP,
	    .off = TK(retry),
	    .sub = &config_retry_keys },
	{ .name = "breaker",
	    .kind = CK_GROUP,
	    .off = TK(breaker),
	    .sub = &config_breaker_keys },
	{ .name = "retry_budget",
	    .kind = CK_GROUP,
	    .off = TK(retry_budget),
	    .sub = &config_budget_keys },
	{ .name = "cluster",
	    .kind = CK_GROUP,
	    .off = TK(cluster),
	    .sub = &config_cluster_keys },
	{ .name = "http",
	    .kind = CK_GROUP,
	    .off = TK(http),
	    .sub = &config_http_keys },
};
const struct config_keys config_top_keys = { config_top_key,
	CONFIG_NITEMS(config_top_key), config_top_check };

static void
config_retry_on(struct config_ctx *ctx, const config_setting_t *s, void *obj)
{
	struct retry_conf *rc = obj;
	const char *names[LLMGATE_CLASS_MAX], *v;
	const config_setting_t *e;
	uint32_t on = 0;
	int i, cls, bad = 0;

	if (config_strings(ctx, s, "on") != 0)
		return;
	for (i = 0; i < LLMGATE_CLASS_MAX; i++)
		names[i] = i == LLMGATE_OK ? NULL : llmgate_class_name(i);
	for (i = 0; i < config_setting_length(s); i++) {
		e = config_setting_get_elem(s, (u_int)i);
		v = config_setting_get_string(e);
		cls = llmgate_class_from_name(v);
		if (cls > LLMGATE_OK) {
			on |= 1u << cls;
			continue;
		}
		bad = 1;
		config_unknown(ctx, e, "error class", v, names,
		    LLMGATE_CLASS_MAX);
	}
	if (!bad)
		rc->on = on;
}

static int
config_retry_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct retry_conf *rc = obj;

	if ((seen[RY_MAX] != NULL || seen[RY_INITIAL] != NULL) &&
	    rc->max_ms < rc->initial_ms) {
		config_error(ctx,
		    seen[RY_MAX] != NULL ? seen[RY_MAX] : seen[RY_INITIAL],
		    "max_ms (%u) is less than initial_ms "
		    "(%u)",
		    rc->max_ms, rc->initial_ms);
	}
	return 0;
}

/*
 * A group name (or a numeric gid) to its gid. Looked up at load, so that
 * --check-config and a reload catch a group that does not exist.
 */
static void
config_gid(struct config_ctx *ctx, const config_setting_t *s, const char *what,
    const char *name, gid_t *out)
{
	struct group *gr;
	unsigned long v;
	char *end;
	int error;

	errno = 0;
	if ((gr = getgrnam(name)) != NULL) {
		*out = gr->gr_gid;
		return;
	}
	error = errno;
	if (isdigit((u_char)*name)) {
		v = strtoul(name, &end, 10);
		if (*end == '\0' && v < (gid_t)-1) {
			*out = (gid_t)v;
			return;
		}
	}
	/* Not found is NULL with errno 0, or one of these (getgrnam(3)). */
	if (error != 0 && error != ENOENT && error != ESRCH && error != EBADF &&
	    error != EPERM)
		config_error(ctx, s, "%s: cannot look up group '%s': %s", what,
		    name, strerror(error));
	else
		config_error(ctx, s, "%s: unknown group '%s'", what, name);
}

/*
 * The cluster block: Redis's address is required; the password comes from
 * a file (or a systemd credential), never from the config itself.
 */
static int
config_cluster_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct cluster_conf *cc = obj;
	struct cluster_addr a;
	char host[256], *cause = NULL;

	cc->enabled = 1;
	if (cc->redis == NULL) {
		config_error(ctx, group,
		    "cluster: redis is required "
		    "(\"unix:PATH\" or \"host:port\")");
		return 0;
	}
	if (cluster_addr_parse(cc->redis, &a, &cause) != 0) {
		config_error(ctx, seen[CL_REDIS], "cluster: redis %s", cause);
		free(cause);
	}
	cluster_addr_free(&a);
	if (cc->password_file != NULL)
		cc->password = config_secret_file(ctx, seen[CL_PASSWORD_FILE],
		    "cluster", "password_file", cc->password_file);
	if (cc->password != NULL && config_has_ctl(cc->password))
		config_error(ctx, seen[CL_PASSWORD_FILE],
		    "cluster: the "
		    "password contains spaces or control characters");
	if (cc->user != NULL && cc->password == NULL)
		config_error(ctx, seen[CL_USER],
		    "cluster: user needs "
		    "password_file");
	if (cc->prefix == NULL)
		cc->prefix = xstrdup("llmgate");
	else if (config_has_ctl(cc->prefix))
		config_error(ctx, seen[CL_PREFIX],
		    "cluster: prefix must not "
		    "hold spaces or control characters");
	if (cc->host == NULL) {
		if (gethostname(host, sizeof host) != 0 || *host == '\0')
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		cc->host = xstrdup(host);
	} else if (config_has_ctl(cc->host))
		config_error(ctx, seen[CL_HOST],
		    "cluster: host must not hold "
		    "spaces or control characters");
	return 0;
}

static int
config_top_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct config *conf = obj;
	struct sockaddr_un sun;
	char *cause = NULL;

	if (conf->socket != NULL) {
		if (*conf->socket != '/')
			config_error(ctx, seen[TK_SOCKET],
			    "socket must be an "
			    "absolute path");
		else if (strlen(conf->socket) >= sizeof sun.sun_path)
			config_error(ctx, seen[TK_SOCKET],
			    "socket path is too "
			    "long (at most %zu bytes)",
			    sizeof sun.sun_path - 1);
	}
	if ((seen[TK_MAX_OUTPUT] != NULL || seen[TK_MAX_FRAME] != NULL) &&
	    conf->max_output < conf->max_frame)
		config_error(ctx,
		    seen[TK_MAX_OUTPUT] != NULL ? seen[TK_MAX_OUTPUT] :
		                                  seen[TK_MAX_FRAME],
		    "max_output (%u) "
		    "must be at least max_frame (%u)",
		    conf->max_output, conf->max_frame);
	if (conf->metrics_listen != NULL &&
	    metrics_hostport(conf->metrics_listen, NULL, NULL, &cause) != 0) {
		config_error(ctx, seen[TK_METRICS_LISTEN], "metrics_listen: %s",
		    cause);
		free(cause);
	}
	/* A service's working directory is no place to rely on. */
	if (conf->state_file != NULL && *conf->state_file != '/')
		config_error(ctx, seen[TK_STATE_FILE],
		    "state_file must be an "
		    "absolute path");
	if (conf->socket_group != NULL)
		config_gid(ctx, seen[TK_SOCKET_GROUP], "socket_group",
		    conf->socket_group, &conf->socket_gid);
	if (conf->admin_group != NULL)
		config_gid(ctx, seen[TK_ADMIN_GROUP], "admin_group",
		    conf->admin_group, &conf->admin_gid);
	return 0;
}
