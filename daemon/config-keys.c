/*
 * config-keys.c: the keys of each block of the configuration (top level,
 * providers and their models, routes and their targets, retry, breaker,
 * retry_budget, cluster, http), as tables, and the readers and checks of
 * each block.
 */
#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "llmgated.h"

#define CONFIG_MAX_KEY_FILE	65536

/* The provider types config-keys.c accepts, for messages and default URLs. */
static const char *config_type_list =
    "openai, anthropic, gemini, azure, mock";

static const struct {
	const char	*type;
	const char	*url;
} config_base_urls[] = {
	{ "openai", "https://api.openai.com/v1" },
	{ "anthropic", "https://api.anthropic.com/v1" },
	{ "gemini", "https://generativelanguage.googleapis.com/v1beta" },
};

/* A provider while it is read: the settings that are not kept as such. */
struct config_prov {
	struct provider_conf	 pc;
	char			*type;
	char			*key_env;
	char			*key_file;
};

static void config_provider_add(struct config_ctx *, const config_setting_t *,
    void *);
static void config_route_add(struct config_ctx *, const config_setting_t *,
    void *);
static void config_model_add(struct config_ctx *, const config_setting_t *,
    void *);
static void config_targets(struct config_ctx *, const config_setting_t *,
    void *);
static void config_retry_on(struct config_ctx *, const config_setting_t *,
    void *);
static int config_top_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);
static int config_provider_check(struct config_ctx *,
    const config_setting_t *, const config_setting_t **, void *);
static int config_model_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);
static int config_route_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);
static int config_retry_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);
static void config_http_listen(struct config_ctx *, const config_setting_t *,
    void *);
static void config_http_remote(struct config_ctx *, const config_setting_t *,
    void *);
static int config_http_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

/* The key tables: indexes name the keys the checks look at. */
#define RY(f)	offsetof(struct retry_conf, f)
enum { RY_ATTEMPTS, RY_INITIAL, RY_MAX, RY_MULT, RY_JITTER, RY_ON, RY_REPAIRS };
static const struct config_key config_retry_key[] = {
	[RY_ATTEMPTS] = { .name = "attempts", .kind = CK_U32,
	    .off = RY(attempts), .min = 1, .max = CALL_MAX_ATTEMPTS },
	[RY_INITIAL] = { .name = "initial_ms", .kind = CK_U32,
	    .off = RY(initial_ms) },
	[RY_MAX] = { .name = "max_ms", .kind = CK_U32, .off = RY(max_ms) },
	[RY_MULT] = { .name = "multiplier", .kind = CK_DOUBLE,
	    .off = RY(multiplier), .min = 1, .max = 100 },
	[RY_JITTER] = { .name = "jitter", .kind = CK_JITTER,
	    .off = RY(jitter) },
	[RY_ON] = { .name = "on", .kind = CK_FUNC, .fn = config_retry_on },
	[RY_REPAIRS] = { .name = "repairs", .kind = CK_U32,
	    .off = RY(repairs), .max = 10 },
};
static const struct config_keys config_retry_keys = {
	config_retry_key, CONFIG_NITEMS(config_retry_key), config_retry_check
};

#define BR(f)	offsetof(struct breaker_conf, f)
static const struct config_key config_breaker_key[] = {
	{ .name = "failures", .kind = CK_U32, .off = BR(failures), .min = 1 },
	{ .name = "failure_rate", .kind = CK_DOUBLE, .off = BR(failure_rate),
	    .min = 0, .max = 1 },
	{ .name = "min_calls", .kind = CK_U32, .off = BR(min_calls) },
	{ .name = "window_ms", .kind = CK_U32, .off = BR(window_ms),
	    .min = 1 },
	{ .name = "open_ms", .kind = CK_U32, .off = BR(open_ms), .min = 1 },
	{ .name = "half_open_probes", .kind = CK_U32,
	    .off = BR(half_open_probes), .min = 1 },
};
static const struct config_keys config_breaker_keys = {
	config_breaker_key, CONFIG_NITEMS(config_breaker_key), NULL
};

#define RB(f)	offsetof(struct retry_budget_conf, f)
static const struct config_key config_budget_key[] = {
	{ .name = "ratio", .kind = CK_DOUBLE, .off = RB(ratio) },
	{ .name = "min_per_s", .kind = CK_DOUBLE, .off = RB(min_per_s) },
};
static const struct config_keys config_budget_keys = {
	config_budget_key, CONFIG_NITEMS(config_budget_key), NULL
};

#define MK(f)	offsetof(struct model_conf, f)
enum { MK_NAME };
static const struct config_key config_model_key[] = {
	[MK_NAME] = { .name = "name", .kind = CK_STRING, .off = MK(name) },
	{ .name = "rpm", .kind = CK_U32, .off = MK(rpm) },
	{ .name = "tpm", .kind = CK_U32, .off = MK(tpm) },
	{ .name = "burst", .kind = CK_U32, .off = MK(burst) },
	{ .name = "tpm_burst", .kind = CK_U32, .off = MK(tpm_burst) },
};
static const struct config_keys config_model_keys = {
	config_model_key, CONFIG_NITEMS(config_model_key), config_model_check
};

#define PK(f)	offsetof(struct config_prov, f)
enum {
	PK_NAME, PK_TYPE, PK_BASE_URL, PK_API_KEY, PK_API_KEY_ENV,
	PK_API_KEY_FILE, PK_API_VERSION
};
static const struct config_key config_provider_key[] = {
	[PK_NAME] = { .name = "name", .kind = CK_STRING, .off = PK(pc.name) },
	[PK_TYPE] = { .name = "type", .kind = CK_STRING, .off = PK(type) },
	[PK_BASE_URL] = { .name = "base_url", .kind = CK_STRING,
	    .off = PK(pc.base_url) },
	[PK_API_KEY] = { .name = "api_key", .kind = CK_STRING,
	    .off = PK(pc.api_key) },
	[PK_API_KEY_ENV] = { .name = "api_key_env", .kind = CK_STRING,
	    .off = PK(key_env) },
	[PK_API_KEY_FILE] = { .name = "api_key_file", .kind = CK_STRING,
	    .off = PK(key_file) },
	[PK_API_VERSION] = { .name = "api_version", .kind = CK_STRING,
	    .off = PK(pc.api_version) },
	{ .name = "rpm", .kind = CK_U32, .off = PK(pc.rpm) },
	{ .name = "tpm", .kind = CK_U32, .off = PK(pc.tpm) },
	{ .name = "burst", .kind = CK_U32, .off = PK(pc.burst) },
	{ .name = "tpm_burst", .kind = CK_U32, .off = PK(pc.tpm_burst) },
	{ .name = "concurrency", .kind = CK_U32, .off = PK(pc.concurrency) },
	{ .name = "timeout_ms", .kind = CK_U32, .off = PK(pc.timeout_ms) },
	{ .name = "connect_timeout_ms", .kind = CK_U32,
	    .off = PK(pc.connect_timeout_ms) },
	{ .name = "first_byte_ms", .kind = CK_U32,
	    .off = PK(pc.first_byte_ms) },
	{ .name = "idle_ms", .kind = CK_U32, .off = PK(pc.idle_ms) },
	{ .name = "models", .kind = CK_LIST, .fn = config_model_add },
};
static const struct config_keys config_provider_keys = {
	config_provider_key, CONFIG_NITEMS(config_provider_key),
	config_provider_check
};

#define RK(f)	offsetof(struct route_conf, f)
enum { RK_NAME, RK_TARGETS };
static const struct config_key config_route_key[] = {
	[RK_NAME] = { .name = "name", .kind = CK_STRING, .off = RK(name) },
	[RK_TARGETS] = { .name = "targets", .kind = CK_FUNC,
	    .fn = config_targets },
};
static const struct config_keys config_route_keys = {
	config_route_key, CONFIG_NITEMS(config_route_key), config_route_check
};

static int config_cluster_check(struct config_ctx *,
    const config_setting_t *, const config_setting_t **, void *);
#define CL(f)	offsetof(struct cluster_conf, f)
enum { CL_REDIS, CL_USER, CL_PASSWORD_FILE, CL_PREFIX, CL_HOST, CL_SLICE_MS,
    CL_TIMEOUT_MS };
static const struct config_key config_cluster_key[] = {
	[CL_REDIS] = { .name = "redis", .kind = CK_STRING, .off = CL(redis) },
	[CL_USER] = { .name = "user", .kind = CK_STRING, .off = CL(user) },
	[CL_PASSWORD_FILE] = { .name = "password_file", .kind = CK_STRING,
	    .off = CL(password_file) },
	[CL_PREFIX] = { .name = "prefix", .kind = CK_STRING,
	    .off = CL(prefix) },
	[CL_HOST] = { .name = "host", .kind = CK_STRING, .off = CL(host) },
	[CL_SLICE_MS] = { .name = "slice_ms", .kind = CK_U32,
	    .off = CL(slice_ms), .min = 10, .max = 10000 },
	[CL_TIMEOUT_MS] = { .name = "timeout_ms", .kind = CK_U32,
	    .off = CL(timeout_ms), .min = 10, .max = 60000 },
};
static const struct config_keys config_cluster_keys = {
	config_cluster_key, CONFIG_NITEMS(config_cluster_key),
	config_cluster_check
};
/* strict_models = true: clients may name only the models the config does. */
static void
config_strict_models(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config *conf = obj;

	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		config_error(ctx, s, "strict_models must be true or false");
		return;
	}
	conf->strict_models = config_setting_get_bool(s);
}

#define HK(f)	offsetof(struct http_conf, f)
enum { HK_LISTEN, HK_TOKENS_FILE, HK_ALLOW_REMOTE };
static const struct config_key config_http_key[] = {
	[HK_LISTEN] = { .name = "listen", .kind = CK_FUNC,
	    .fn = config_http_listen },
	[HK_TOKENS_FILE] = { .name = "tokens_file", .kind = CK_STRING,
	    .off = HK(tokens_file) },
	[HK_ALLOW_REMOTE] = { .name = "allow_remote", .kind = CK_FUNC,
	    .fn = config_http_remote },
};
static const struct config_keys config_http_keys = {
	config_http_key, CONFIG_NITEMS(config_http_key), config_http_check
};

/* Providers come before routes: a route's targets name providers. */
#define TK(f)	offsetof(struct config, f)
enum {
	TK_SOCKET, TK_SOCKET_MODE, TK_LOG_LEVEL, TK_MAX_FRAME,
	TK_MAX_INFLIGHT, TK_MAX_CLIENTS, TK_MAX_OUTPUT, TK_DRAIN_MS,
	TK_METRICS_LISTEN, TK_MAX_WAIT_MS, TK_LEASE_TTL_MS,
	TK_SOCKET_GROUP, TK_ADMIN_GROUP, TK_MAX_CONNS_PER_UID,
	TK_STATE_FILE, TK_STATE_SAVE_MS, TK_STRICT_MODELS,
	TK_MAX_CALLS_PER_UID, TK_MAX_BYTES_PER_UID, TK_MAX_MEMORY,
	TK_FRAME_TIMEOUT_MS
};
static const struct config_key config_top_key[] = {
	[TK_SOCKET] = { .name = "socket", .kind = CK_STRING,
	    .off = TK(socket) },
	[TK_SOCKET_MODE] = { .name = "socket_mode", .kind = CK_MODE,
	    .off = TK(socket_mode) },
	[TK_LOG_LEVEL] = { .name = "log_level", .kind = CK_LOGLEVEL,
	    .off = TK(log_level) },
	[TK_MAX_FRAME] = { .name = "max_frame", .kind = CK_U32,
	    .off = TK(max_frame), .min = 4096, .max = PROTO_MAX_FRAME },
	[TK_MAX_INFLIGHT] = { .name = "max_inflight", .kind = CK_U32,
	    .off = TK(max_inflight), .min = 1 },
	[TK_MAX_CLIENTS] = { .name = "max_clients", .kind = CK_U32,
	    .off = TK(max_clients), .min = 1 },
	[TK_MAX_OUTPUT] = { .name = "max_output", .kind = CK_U32,
	    .off = TK(max_output), .min = 4096 },
	[TK_DRAIN_MS] = { .name = "drain_ms", .kind = CK_U32,
	    .off = TK(drain_ms) },
	[TK_METRICS_LISTEN] = { .name = "metrics_listen", .kind = CK_STRING,
	    .off = TK(metrics_listen) },
	[TK_MAX_WAIT_MS] = { .name = "max_wait_ms", .kind = CK_U32,
	    .off = TK(max_wait_ms) },
	[TK_LEASE_TTL_MS] = { .name = "lease_ttl_ms", .kind = CK_U32,
	    .off = TK(lease_ttl_ms), .min = 100 },
	[TK_SOCKET_GROUP] = { .name = "socket_group", .kind = CK_STRING,
	    .off = TK(socket_group) },
	[TK_ADMIN_GROUP] = { .name = "admin_group", .kind = CK_STRING,
	    .off = TK(admin_group) },
	[TK_MAX_CONNS_PER_UID] = { .name = "max_conns_per_uid",
	    .kind = CK_U32, .off = TK(max_conns_per_uid) },
	[TK_STATE_FILE] = { .name = "state_file", .kind = CK_STRING,
	    .off = TK(state_file) },
	[TK_STATE_SAVE_MS] = { .name = "state_save_ms", .kind = CK_U32,
	    .off = TK(state_save_ms), .min = 100 },
	[TK_STRICT_MODELS] = { .name = "strict_models", .kind = CK_FUNC,
	    .fn = config_strict_models },
	[TK_MAX_CALLS_PER_UID] = { .name = "max_calls_per_uid",
	    .kind = CK_U32, .off = TK(max_calls_per_uid) },
	[TK_MAX_BYTES_PER_UID] = { .name = "max_bytes_per_uid",
	    .kind = CK_U32, .off = TK(max_bytes_per_uid) },
	[TK_MAX_MEMORY] = { .name = "max_memory", .kind = CK_U32,
	    .off = TK(max_memory) },
	[TK_FRAME_TIMEOUT_MS] = { .name = "frame_timeout_ms", .kind = CK_U32,
	    .off = TK(frame_timeout_ms), .min = 100 },
	{ .name = "providers", .kind = CK_LIST, .fn = config_provider_add },
	{ .name = "routes", .kind = CK_LIST, .fn = config_route_add },
	{ .name = "retry", .kind = CK_GROUP, .off = TK(retry),
	    .sub = &config_retry_keys },
	{ .name = "breaker", .kind = CK_GROUP, .off = TK(breaker),
	    .sub = &config_breaker_keys },
	{ .name = "retry_budget", .kind = CK_GROUP, .off = TK(retry_budget),
	    .sub = &config_budget_keys },
	{ .name = "cluster", .kind = CK_GROUP, .off = TK(cluster),
	    .sub = &config_cluster_keys },
	{ .name = "http", .kind = CK_GROUP, .off = TK(http),
	    .sub = &config_http_keys },
};
const struct config_keys config_top_keys = {
	config_top_key, CONFIG_NITEMS(config_top_key), config_top_check
};

/* Non-zero when s holds a byte that would break an HTTP header or URL. */
static int
config_has_ctl(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((u_char)*s <= 0x20 || (u_char)*s == 0x7f)
			return 1;
	}
	return 0;
}

static void
config_retry_on(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct retry_conf *rc = obj;
	const char *names[LLMGATE_CLASS_MAX], *v, *hint;
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
		hint = config_suggest(v, names, LLMGATE_CLASS_MAX);
		if (hint != NULL)
			config_error(ctx, e, "unknown error class '%s' (did "
			    "you mean '%s'?)", v, hint);
		else
			config_error(ctx, e, "unknown error class '%s'", v);
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
		config_error(ctx, seen[RY_MAX] != NULL ? seen[RY_MAX] :
		    seen[RY_INITIAL], "max_ms (%u) is less than initial_ms "
		    "(%u)", rc->max_ms, rc->initial_ms);
	}
	return 0;
}

static void
config_model_free(struct model_conf *mc)
{
	free(mc->name);
}

static int
config_model_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct model_conf *mc = obj;

	if (seen[MK_NAME] == NULL) {
		config_error(ctx, group, "model has no name");
		return -1;
	}
	return mc->name != NULL ? 0 : -1;
}

static void
config_model_add(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct provider_conf *pc = &((struct config_prov *)obj)->pc;
	struct model_conf mc;

	memset(&mc, 0, sizeof mc);
	if (config_group(ctx, s, &config_model_keys, &mc) != 0) {
		config_model_free(&mc);
		return;
	}
	if (config_model(pc, mc.name) != NULL) {
		config_error(ctx, config_setting_get_member(s, "name"),
		    "duplicate model '%s'", mc.name);
		config_model_free(&mc);
		return;
	}
	pc->models = xreallocarray(pc->models, pc->nmodels + 1,
	    sizeof *pc->models);
	pc->models[pc->nmodels++] = mc;
}

/* Read a key file: a systemd credential, or a file only llmgated reads. */
static char *
config_secret_file(struct config_ctx *ctx, const config_setting_t *s,
    const char *who, const char *setting, const char *file)
{
	const char *base;
	char *path, *key = NULL;
	struct stat st;
	ssize_t n;
	size_t len;
	int fd;

	base = getenv("CREDENTIALS_DIRECTORY");
	if (base == NULL || *base == '\0')
		base = ctx->dir;
	if (*file == '/' || base == NULL)
		path = xstrdup(file);
	else
		xasprintf(&path, "%s/%s", base, file);

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 ||
	    fstat(fd, &st) != 0) {
		config_error(ctx, s, "cannot read %s '%s': %s", setting, path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_KEY_FILE) {
		config_error(ctx, s, "%s '%s' is not a key file "
		    "(a regular file of at most %d bytes)", setting, path,
		    CONFIG_MAX_KEY_FILE);
		goto out;
	}
	if (st.st_mode & S_IROTH)
		log_warnx("%s: %s %s is readable by others", who, setting,
		    path);
	key = xmalloc((size_t)st.st_size + 1);
	len = 0;
	while (len <= (size_t)st.st_size) {
		n = read(fd, key + len, (size_t)st.st_size + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			config_error(ctx, s, "cannot read %s '%s': "
			    "%s", setting, path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > (size_t)st.st_size) {
		config_error(ctx, s, "%s '%s' changed while it was "
		    "read", setting, path);
		goto fail;
	}
	while (len > 0 && isspace((u_char)key[len - 1]))
		len--;
	key[len] = '\0';
	if (len == 0) {
		config_error(ctx, s, "%s '%s' is empty", setting, path);
		goto fail;
	}
	goto out;

fail:
	explicit_bzero(key, (size_t)st.st_size + 1);
	free(key);
	key = NULL;
out:
	if (fd != -1)
		close(fd);
	free(path);
	return key;
}

/* The key from exactly one of api_key, api_key_env, api_key_file. */
static void
config_provider_key_resolve(struct config_ctx *ctx,
    const config_setting_t **seen, struct config_prov *p)
{
	struct provider_conf *pc = &p->pc;
	const config_setting_t *s, *last = NULL;
	const char *v, *name = pc->name != NULL ? pc->name : "?";
	char *who;
	int i, n = 0;

	for (i = PK_API_KEY; i <= PK_API_KEY_FILE; i++) {
		if ((s = seen[i]) == NULL)
			continue;
		n++;
		if (last == NULL || config_setting_source_line(s) >=
		    config_setting_source_line(last))
			last = s;
	}
	if (n > 1) {
		config_error(ctx, last, "only one of api_key, api_key_env and "
		    "api_key_file may be given");
		goto fail;
	}
	if (p->key_env != NULL) {
		v = getenv(p->key_env);
		if (v == NULL || *v == '\0') {
			log_info("provider %s: %s is not set; its calls fail "
			    "with auth until it is", name, p->key_env);
			pc->key_env_unset = xstrdup(p->key_env);
			return;
		}
		pc->api_key = xstrdup(v);
	} else if (p->key_file != NULL) {
		xasprintf(&who, "provider %s", name);
		pc->api_key = config_secret_file(ctx, seen[PK_API_KEY_FILE],
		    who, "api_key_file", p->key_file);
		free(who);
	}
	if (pc->api_key != NULL && config_has_ctl(pc->api_key)) {
		config_error(ctx, seen[PK_API_KEY] != NULL ? seen[PK_API_KEY] :
		    seen[PK_API_KEY_ENV] != NULL ? seen[PK_API_KEY_ENV] :
		    seen[PK_API_KEY_FILE], "the API key contains spaces or "
		    "control characters");
		goto fail;
	}
	return;

fail:
	if (pc->api_key != NULL) {
		explicit_bzero(pc->api_key, strlen(pc->api_key));
		free(pc->api_key);
		pc->api_key = NULL;
	}
}

void
config_provider_free(struct provider_conf *pc)
{
	size_t i;

	free(pc->name);
	free(pc->base_url);
	if (pc->api_key != NULL) {
		explicit_bzero(pc->api_key, strlen(pc->api_key));
		free(pc->api_key);
	}
	free(pc->api_version);
	free(pc->key_env_unset);
	for (i = 0; i < pc->nmodels; i++)
		config_model_free(&pc->models[i]);
	free(pc->models);
}

static int
config_provider_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct config_prov *p = obj;
	struct provider_conf *pc = &p->pc;
	char what[128];
	size_t i, len;
	int keep = 0, azure = 0;

	if (pc->name != NULL)
		snprintf(what, sizeof what, "provider '%s'", pc->name);
	else
		snprintf(what, sizeof what, "provider");

	if (seen[PK_NAME] == NULL) {
		config_error(ctx, group, "provider has no name");
		keep = -1;
	} else if (pc->name == NULL)
		keep = -1;
	else if (strchr(pc->name, '/') != NULL) {
		config_error(ctx, seen[PK_NAME], "provider name '%s' must not "
		    "contain '/'", pc->name);
		keep = -1;
	} else if (config_provider(ctx->conf, pc->name) != NULL) {
		config_error(ctx, seen[PK_NAME], "duplicate provider '%s'",
		    pc->name);
		keep = -1;
	}

	if (seen[PK_TYPE] == NULL)
		config_error(ctx, group, "%s has no type (one of %s)", what,
		    config_type_list);
	else if (p->type != NULL &&
	    (pc->type = provider_type_find(p->type)) == NULL)
		config_error(ctx, seen[PK_TYPE], "unknown provider type '%s' "
		    "(valid: %s)", p->type, config_type_list);
	if (pc->type != NULL)
		azure = strcmp(p->type, "azure") == 0;

	if (seen[PK_BASE_URL] == NULL && pc->type != NULL) {
		for (i = 0; i < CONFIG_NITEMS(config_base_urls); i++) {
			if (strcmp(p->type, config_base_urls[i].type) == 0)
				pc->base_url = xstrdup(config_base_urls[i].url);
		}
		if (pc->base_url == NULL && strcmp(p->type, "mock") != 0)
			config_error(ctx, group, "%s has no base_url (type %s "
			    "has no default)", what, p->type);
	}
	if (pc->base_url != NULL) {
		if (strncmp(pc->base_url, "http://", 7) != 0 &&
		    strncmp(pc->base_url, "https://", 8) != 0)
			config_error(ctx, seen[PK_BASE_URL], "base_url must "
			    "start with http:// or https://");
		else if (config_has_ctl(pc->base_url))
			config_error(ctx, seen[PK_BASE_URL], "base_url must "
			    "not contain spaces or control characters");
		/* Adapters append "/chat/completions" and the like. */
		len = strlen(pc->base_url);
		while (len > 0 && pc->base_url[len - 1] == '/')
			pc->base_url[--len] = '\0';
	}

	if (azure && seen[PK_API_VERSION] == NULL)
		config_error(ctx, group, "%s has no api_version (type azure "
		    "needs one)", what);
	if (!azure && pc->type != NULL && seen[PK_API_VERSION] != NULL)
		config_error(ctx, seen[PK_API_VERSION], "api_version is only "
		    "used by type azure");

	config_provider_key_resolve(ctx, seen, p);
	return keep;
}

static void
config_provider_add(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config *conf = obj;
	struct config_prov p;

	memset(&p, 0, sizeof p);
	p.pc.timeout_ms = 60000;
	p.pc.connect_timeout_ms = 5000;
	p.pc.idle_ms = 30000;
	if (config_group(ctx, s, &config_provider_keys, &p) == 0) {
		conf->providers = xreallocarray(conf->providers,
		    conf->nproviders + 1, sizeof *conf->providers);
		conf->providers[conf->nproviders++] = p.pc;
	} else
		config_provider_free(&p.pc);
	free(p.type);
	free(p.key_env);
	free(p.key_file);
}

/* A target given as a group: { target = "p/m"; max_tokens = 100; ... } */
struct config_tgt {
	char			*target;
	struct target_override	 o;
};

/* A list of strings as a NULL-free array for the fallback parsers. */
static char **
config_strv(const config_setting_t *s, size_t *n)
{
	char **v;
	int i, len = config_setting_length(s);

	v = xcalloc((size_t)len + 1, sizeof *v);
	for (i = 0; i < len; i++)
		v[i] = (char *)(uintptr_t)config_setting_get_string(
		    config_setting_get_elem(s, (u_int)i));
	*n = (size_t)len;
	return v;
}

/* A step's fallback_on = [ "class", ... ]. */
static void
config_target_fallback_on(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config_tgt *t = obj;
	char **v, *cause = NULL;
	size_t n;

	if (config_strings(ctx, s, "fallback_on") != 0)
		return;
	v = config_strv(s, &n);
	if (fallback_parse_on(&t->o.fb.on, v, n, &cause) != 0) {
		config_error(ctx, s, "%s", cause);
		free(cause);
	}
	free(v);
}

/* A step's reject = [ "length", "match:...", ... ]. */
static void
config_target_reject(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config_tgt *t = obj;
	char **v, *cause = NULL;
	size_t n;

	if (config_strings(ctx, s, "reject") != 0)
		return;
	v = config_strv(s, &n);
	if (fallback_parse_reject(&t->o.fb, v, n, &cause) != 0) {
		config_error(ctx, s, "%s", cause);
		free(cause);
	}
	free(v);
}

#define TGK(f)	offsetof(struct config_tgt, f)
enum { TK_TARGET, TK_MAX_TOKENS, TK_TEMPERATURE, TK_TOP_P, TK_ATTEMPTS,
	TK_FALLBACK_ON, TK_REJECT };
static const struct config_key config_target_key[] = {
	[TK_TARGET] = { .name = "target", .kind = CK_STRING,
	    .off = TGK(target) },
	[TK_MAX_TOKENS] = { .name = "max_tokens", .kind = CK_U32,
	    .off = TGK(o.max_tokens), .min = 1 },
	[TK_TEMPERATURE] = { .name = "temperature", .kind = CK_DOUBLE,
	    .off = TGK(o.temperature), .min = 0, .max = 2 },
	[TK_TOP_P] = { .name = "top_p", .kind = CK_DOUBLE, .off = TGK(o.top_p),
	    .min = 0, .max = 1 },
	[TK_ATTEMPTS] = { .name = "attempts", .kind = CK_U32,
	    .off = TGK(o.attempts), .min = 1, .max = CALL_MAX_ATTEMPTS },
	[TK_FALLBACK_ON] = { .name = "fallback_on", .kind = CK_FUNC,
	    .fn = config_target_fallback_on },
	[TK_REJECT] = { .name = "reject", .kind = CK_FUNC,
	    .fn = config_target_reject },
};

static int
config_target_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct config_tgt *t = obj;

	if (seen[TK_TARGET] == NULL || t->target == NULL) {
		config_error(ctx, group, "a target group needs target = "
		    "\"provider/model\"");
		return -1;
	}
	if (seen[TK_MAX_TOKENS] != NULL)
		t->o.has |= LLMGATE_HAS_MAX_TOKENS;
	if (seen[TK_TEMPERATURE] != NULL)
		t->o.has |= LLMGATE_HAS_TEMPERATURE;
	if (seen[TK_TOP_P] != NULL)
		t->o.has |= LLMGATE_HAS_TOP_P;
	if (seen[TK_ATTEMPTS] != NULL)
		t->o.has |= TARGET_HAS_ATTEMPTS;
	if (seen[TK_FALLBACK_ON] != NULL)
		t->o.has |= TARGET_HAS_FALLBACK_ON;
	if (seen[TK_REJECT] != NULL)
		t->o.has |= TARGET_HAS_REJECT;
	return 0;
}

static const struct config_keys config_target_keys = {
	config_target_key, CONFIG_NITEMS(config_target_key),
	config_target_check
};

/*
 * Targets are "provider/model" with a provider defined above. 1 when the
 * route took the target and its override (o's patterns with it).
 */
static int
config_target_add(struct config_ctx *ctx, const config_setting_t *e,
    struct route_conf *rc, const char *v, const struct target_override *o)
{
	const char *slash = strchr(v, '/');
	char *prov;
	int took = 0;

	if (slash == NULL || slash == v || slash[1] == '\0') {
		config_error(ctx, e, "target '%s' must be provider/model", v);
		return 0;
	}
	prov = xstrndup(v, (size_t)(slash - v));
	if (config_provider(ctx->conf, prov) == NULL)
		config_error(ctx, e, "target '%s': unknown provider '%s'", v,
		    prov);
	else {
		rc->targets = xreallocarray(rc->targets, rc->ntargets + 1,
		    sizeof *rc->targets);
		rc->over = xreallocarray(rc->over, rc->ntargets + 1,
		    sizeof *rc->over);
		rc->over[rc->ntargets] = *o;
		rc->targets[rc->ntargets++] = xstrdup(v);
		took = 1;
	}
	free(prov);
	return took;
}

/*
 * targets = [ "p/m", ... ], or a list mixing strings and groups that carry
 * per-target overrides: ( "p/m", { target = "q/n"; max_tokens = 200; } ).
 */
static void
config_targets(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	static const struct target_override none;
	struct route_conf *rc = obj;
	const config_setting_t *e;
	struct config_tgt t;
	int i, n = config_setting_length(s);

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		config_error(ctx, s, "targets must be a list: [ \"p/m\", ... ] "
		    "or ( \"p/m\", { target = \"p/m\"; ... } )");
		return;
	}
	if (n > CONFIG_MAX_ITEMS) {
		config_error(ctx, s, "too many targets (%d, at most %d)", n,
		    CONFIG_MAX_ITEMS);
		return;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		if (config_setting_type(e) == CONFIG_TYPE_STRING) {
			config_target_add(ctx, e, rc,
			    config_setting_get_string(e), &none);
			continue;
		}
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			config_error(ctx, e, "a target is a \"provider/model\" "
			    "string or a { target = ...; } group");
			continue;
		}
		memset(&t, 0, sizeof t);
		if (config_group(ctx, e, &config_target_keys, &t) != 0 ||
		    !config_target_add(ctx, e, rc, t.target, &t.o))
			fallback_free(&t.o.fb);
		free(t.target);
	}
}

void
config_route_free(struct route_conf *rc)
{
	size_t i;

	free(rc->name);
	for (i = 0; i < rc->ntargets; i++) {
		free(rc->targets[i]);
		fallback_free(&rc->over[i].fb);
	}
	free(rc->targets);
	free(rc->over);
}

static int
config_route_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct route_conf *rc = obj;

	if (seen[RK_NAME] == NULL) {
		config_error(ctx, group, "route has no name");
		return -1;
	}
	if (rc->name == NULL)
		return -1;
	if (config_route(ctx->conf, rc->name) != NULL) {
		config_error(ctx, seen[RK_NAME], "duplicate route '%s'",
		    rc->name);
		return -1;
	}
	if (seen[RK_TARGETS] == NULL)
		config_error(ctx, group, "route '%s' has no targets", rc->name);
	else if (config_setting_length(seen[RK_TARGETS]) == 0)
		config_error(ctx, seen[RK_TARGETS], "route '%s' has no targets",
		    rc->name);
	return 0;
}

static void
config_route_add(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct config *conf = obj;
	struct route_conf rc;

	memset(&rc, 0, sizeof rc);
	if (config_group(ctx, s, &config_route_keys, &rc) != 0) {
		config_route_free(&rc);
		return;
	}
	conf->routes = xreallocarray(conf->routes, conf->nroutes + 1,
	    sizeof *conf->routes);
	conf->routes[conf->nroutes++] = rc;
}

/*
 * A group name (or a numeric gid) to its gid. Looked up at load, so that
 * --check-config and a reload catch a group that does not exist.
 */
static void
config_gid(struct config_ctx *ctx, const config_setting_t *s,
    const char *what, const char *name, gid_t *out)
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
	if (error != 0 && error != ENOENT && error != ESRCH &&
	    error != EBADF && error != EPERM)
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
	char host[256];
	const char *c;

	cc->enabled = 1;
	if (cc->redis == NULL) {
		config_error(ctx, group, "cluster: redis is required "
		    "(\"unix:PATH\" or \"host:port\")");
		return 0;
	}
	if (strncmp(cc->redis, "unix:", 5) == 0) {
		if (cc->redis[5] != '/')
			config_error(ctx, seen[CL_REDIS], "cluster: redis "
			    "\"unix:PATH\" needs an absolute path");
	} else if ((c = strrchr(cc->redis, ':')) == NULL || c == cc->redis ||
	    c[1] == '\0' || strspn(c + 1, "0123456789") != strlen(c + 1) ||
	    strtoul(c + 1, NULL, 10) == 0 || strtoul(c + 1, NULL, 10) > 65535)
		config_error(ctx, seen[CL_REDIS], "cluster: redis '%s' is "
		    "neither \"unix:PATH\" nor \"host:port\"", cc->redis);
	if (cc->password_file != NULL)
		cc->password = config_secret_file(ctx, seen[CL_PASSWORD_FILE],
		    "cluster", "password_file", cc->password_file);
	if (cc->password != NULL && config_has_ctl(cc->password))
		config_error(ctx, seen[CL_PASSWORD_FILE], "cluster: the "
		    "password contains spaces or control characters");
	if (cc->user != NULL && cc->password == NULL)
		config_error(ctx, seen[CL_USER], "cluster: user needs "
		    "password_file");
	if (cc->prefix == NULL)
		cc->prefix = xstrdup("llmgate");
	else if (config_has_ctl(cc->prefix))
		config_error(ctx, seen[CL_PREFIX], "cluster: prefix must not "
		    "hold spaces or control characters");
	if (cc->host == NULL) {
		if (gethostname(host, sizeof host) != 0 || *host == '\0')
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		cc->host = xstrdup(host);
	} else if (config_has_ctl(cc->host))
		config_error(ctx, seen[CL_HOST], "cluster: host must not hold "
		    "spaces or control characters");
	return 0;
}

/* http.listen: "HOST:PORT", "[V6]:PORT" or "unix:PATH" ("unix:" alone:
 * beside the native socket). */
static void
config_http_listen(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct http_conf *hc = obj;
	const config_setting_t *e;
	const char *v;
	char *cause = NULL;
	int i, n;

	if (config_strings(ctx, s, "listen") != 0)
		return;
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		v = config_setting_get_string(e);
		if (front_http_addr(v, NULL, NULL, NULL, &cause) != 0) {
			config_error(ctx, e, "http listen: %s", cause);
			free(cause);
			cause = NULL;
			continue;
		}
		hc->listen = xreallocarray(hc->listen, hc->nlisten + 1,
		    sizeof *hc->listen);
		hc->listen[hc->nlisten++] = xstrdup(v);
	}
}

static void
config_http_remote(struct config_ctx *ctx, const config_setting_t *s,
    void *obj)
{
	struct http_conf *hc = obj;

	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		config_error(ctx, s, "allow_remote must be true or false");
		return;
	}
	hc->allow_remote = config_setting_get_bool(s);
}

/*
 * The tokens file: "NAME TOKEN" a line, '#' comments. It holds secrets,
 * so it must be a regular file nobody but its owner and group may read.
 */
static void
config_http_tokens(struct config_ctx *ctx, const config_setting_t *s,
    struct http_conf *hc)
{
	char *path, *text = NULL, *line, *last, *name, *tok, *sp;
	struct stat st;
	unsigned lineno = 0;

	if (*hc->tokens_file == '/' || ctx->dir == NULL)
		path = xstrdup(hc->tokens_file);
	else
		xasprintf(&path, "%s/%s", ctx->dir, hc->tokens_file);
	if (stat(path, &st) != 0) {
		config_error(ctx, s, "cannot read tokens_file '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_KEY_FILE) {
		config_error(ctx, s, "tokens_file '%s' is not a regular file "
		    "of at most %d bytes", path, CONFIG_MAX_KEY_FILE);
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) {
		config_error(ctx, s, "tokens_file '%s' has mode %04o: others "
		    "must not read it, nor anyone but its owner write it",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((text = config_read_all(ctx, path)) == NULL)
		goto out;
	for (line = strtok_r(text, "\n", &last); line != NULL;
	    line = strtok_r(NULL, "\n", &last)) {
		lineno++;
		if ((sp = strchr(line, '#')) != NULL)
			*sp = '\0';
		name = strtok_r(line, " \t\r", &sp);
		if (name == NULL)
			continue;
		tok = strtok_r(NULL, " \t\r", &sp);
		if (tok == NULL || strtok_r(NULL, " \t\r", &sp) != NULL ||
		    strlen(tok) < 16) {
			config_error(ctx, s, "tokens_file '%s': a line is "
			    "\"NAME TOKEN\", the token 16 characters or more",
			    path);
			continue;
		}
		hc->names = xreallocarray(hc->names, hc->ntokens + 1,
		    sizeof *hc->names);
		hc->tokens = xreallocarray(hc->tokens, hc->ntokens + 1,
		    sizeof *hc->tokens);
		hc->names[hc->ntokens] = xstrdup(name);
		hc->tokens[hc->ntokens++] = xstrdup(tok);
	}
	if (hc->ntokens == 0)
		config_error(ctx, s, "tokens_file '%s' holds no token", path);
out:
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	free(path);
}

static int
config_http_check(struct config_ctx *ctx, const config_setting_t *group,
    const config_setting_t **seen, void *obj)
{
	struct http_conf *hc = obj;
	int loopback;
	size_t i;

	if (hc->tokens_file != NULL)
		config_http_tokens(ctx, seen[HK_TOKENS_FILE], hc);
	for (i = 0; i < hc->nlisten; i++) {
		if (front_http_addr(hc->listen[i], NULL, NULL, &loopback,
		    NULL) != 0 || loopback)
			continue;
		if (!hc->allow_remote)
			config_error(ctx, seen[HK_LISTEN], "http listen '%s' is "
			    "not a loopback address: set allow_remote = true "
			    "(and a tokens_file) to serve it", hc->listen[i]);
		else if (hc->tokens_file == NULL)
			config_error(ctx, seen[HK_LISTEN], "http listen '%s' "
			    "is not a loopback address: it needs a tokens_file",
			    hc->listen[i]);
	}
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
			config_error(ctx, seen[TK_SOCKET], "socket must be an "
			    "absolute path");
		else if (strlen(conf->socket) >= sizeof sun.sun_path)
			config_error(ctx, seen[TK_SOCKET], "socket path is too "
			    "long (at most %zu bytes)",
			    sizeof sun.sun_path - 1);
	}
	if ((seen[TK_MAX_OUTPUT] != NULL || seen[TK_MAX_FRAME] != NULL) &&
	    conf->max_output < conf->max_frame)
		config_error(ctx, seen[TK_MAX_OUTPUT] != NULL ?
		    seen[TK_MAX_OUTPUT] : seen[TK_MAX_FRAME], "max_output (%u) "
		    "must be at least max_frame (%u)", conf->max_output,
		    conf->max_frame);
	if (conf->metrics_listen != NULL &&
	    metrics_hostport(conf->metrics_listen, NULL, NULL, &cause) != 0) {
		config_error(ctx, seen[TK_METRICS_LISTEN], "metrics_listen: %s",
		    cause);
		free(cause);
	}
	/* A service's working directory is no place to rely on. */
	if (conf->state_file != NULL && *conf->state_file != '/')
		config_error(ctx, seen[TK_STATE_FILE], "state_file must be an "
		    "absolute path");
	if (conf->socket_group != NULL)
		config_gid(ctx, seen[TK_SOCKET_GROUP], "socket_group",
		    conf->socket_group, &conf->socket_gid);
	if (conf->admin_group != NULL)
		config_gid(ctx, seen[TK_ADMIN_GROUP], "admin_group",
		    conf->admin_group, &conf->admin_gid);
	return 0;
}
