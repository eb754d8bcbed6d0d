/*
 * config.c: llmgated's configuration as a whole: load a libconfig file or
 * the embedded default (config-default.c), its @include files checked
 * first, every problem collected with its line so that one run of
 * --check-config shows them all; then the loaded config's lookups, its
 * reference count across reloads and its release.
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

#define CONFIG_MAX_FILE (16 * 1024 * 1024)

#define CONFIG_DEFAULT_FILE "<default>"

static void config_errorv(struct config_ctx *, const char *, unsigned,
    const char *, va_list) __attribute__((format(printf, 4, 0)));
static void config_error_at(struct config_ctx *, const char *, unsigned,
    const char *, ...) __attribute__((format(printf, 4, 5)));

/*
 * Record one problem. file is an @include'd file (as written, so relative
 * to the config's directory) or NULL for the config itself.
 */
static void
config_errorv(struct config_ctx *ctx, const char *file, unsigned line,
    const char *fmt, va_list ap)
{
	struct config_err *e;
	char msg[1024], *where;

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (file == NULL)
		where = xstrdup(ctx->file);
	else if (*file != '/' && ctx->dir != NULL)
		xasprintf(&where, "%s/%s", ctx->dir, file);
	else
		where = xstrdup(file);

	ctx->errs = xreallocarray(ctx->errs, ctx->nerrs + 1, sizeof *ctx->errs);
	e = &ctx->errs[ctx->nerrs];
	e->rank = file != NULL;
	e->line = line;
	e->seq = ctx->nerrs++;
	/* Line 0: the file as a whole (it cannot be read). */
	if (line == 0)
		xasprintf(&e->text, "%s: %s", where, msg);
	else
		xasprintf(&e->text, "%s:%u: %s", where, line, msg);
	free(where);
}

/* A problem with setting s (NULL: with the file as a whole). */
void
config_error(struct config_ctx *ctx, const config_setting_t *s, const char *fmt,
    ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (s == NULL)
		config_errorv(ctx, NULL, 0, fmt, ap);
	else
		config_errorv(ctx, config_setting_source_file(s),
		    config_setting_source_line(s), fmt, ap);
	va_end(ap);
}

/* A problem at a file and line (a syntax error: libconfig stops there). */
static void
config_error_at(struct config_ctx *ctx, const char *file, unsigned line,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_errorv(ctx, file, line, fmt, ap);
	va_end(ap);
}

static int
config_err_cmp(const void *a, const void *b)
{
	const struct config_err *ea = a, *eb = b;

	if (ea->rank != eb->rank)
		return ea->rank < eb->rank ? -1 : 1;
	if (ea->line != eb->line)
		return ea->line < eb->line ? -1 : 1;
	return ea->seq < eb->seq ? -1 : ea->seq > eb->seq;
}

/* All problems, in file order, one per line; then the list is emptied. */
static char *
config_errors_join(struct config_ctx *ctx)
{
	struct buf b = { NULL, 0, 0 };
	size_t i;

	qsort(ctx->errs, ctx->nerrs, sizeof *ctx->errs, config_err_cmp);
	for (i = 0; i < ctx->nerrs; i++) {
		buf_printf(&b, "%s\n", ctx->errs[i].text);
		free(ctx->errs[i].text);
	}
	free(ctx->errs);
	ctx->errs = NULL;
	ctx->nerrs = 0;
	return b.data;
}

static struct config *
config_new(void)
{
	struct config *conf = xcalloc(1, sizeof *conf);

	conf->socket_mode = 0660;
	conf->log_level = -1;
	conf->max_frame = 1024 * 1024;
	conf->max_inflight = 1024;
	conf->max_clients = 4096;
	conf->max_output = 8 * 1024 * 1024;
	conf->drain_ms = 10000;
	conf->max_wait_ms = 60000;
	conf->lease_ttl_ms = 60000;
	conf->state_save_ms = 30000;
	conf->max_conns_per_uid = 256;
	conf->max_calls_per_uid = 4096;
	conf->max_bytes_per_uid = 256u * 1024 * 1024;
	conf->max_memory = 1024u * 1024 * 1024;
	conf->frame_timeout_ms = 10000;

	conf->retry.attempts = 3;
	conf->retry.repairs = 2;
	conf->retry.initial_ms = 500;
	conf->retry.max_ms = 20000;
	conf->retry.multiplier = 2.0;
	conf->retry.jitter = JITTER_FULL;
	conf->retry.on = 1u << LLMGATE_RATE_LIMITED | 1u << LLMGATE_OVERLOADED |
	    1u << LLMGATE_SERVER_ERROR | 1u << LLMGATE_TIMEOUT |
	    1u << LLMGATE_CONNECTION | 1u << LLMGATE_PARSE_ERROR;

	conf->breaker.failures = 5;
	conf->breaker.failure_rate = 0.5;
	conf->breaker.min_calls = 10;
	conf->breaker.window_ms = 30000;
	conf->breaker.open_ms = 30000;
	conf->breaker.half_open_probes = 1;

	conf->retry_budget.ratio = 0.2;
	conf->retry_budget.min_per_s = 5;

	conf->cluster.slice_ms = 200;
	conf->cluster.timeout_ms = 500;
	conf->cluster.expected_hosts = 1;
	return conf;
}

/* The whole file, NUL-terminated; NULL after an error. */
char *
config_read_all(struct config_ctx *ctx, const char *path)
{
	struct stat st;
	struct buf b = { NULL, 0, 0 };
	char chunk[8192];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 ||
	    fstat(fd, &st) != 0) {
		config_error(ctx, NULL, "cannot read: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		config_error(ctx, NULL, "not a regular file");
		goto fail;
	}
	buf_add(&b, "", 0);
	for (;;) {
		n = read(fd, chunk, sizeof chunk);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			config_error(ctx, NULL, "cannot read: %s",
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > CONFIG_MAX_FILE) {
			config_error(ctx, NULL, "larger than %d bytes",
			    CONFIG_MAX_FILE);
			goto fail;
		}
		buf_add(&b, chunk, (size_t)n);
	}
	close(fd);
	return b.data;

fail:
	if (fd != -1)
		close(fd);
	buf_free(&b);
	return NULL;
}

#define CONFIG_MAX_INCLUDE_DEPTH 10

/*
 * libconfig's scanner calls exit() when an @include names something it
 * cannot read as a file (a directory, say): check every @include, nested
 * ones too, before libconfig sees them, so a bad config is refused and a
 * reload never takes the daemon down.
 */
static int
config_includes(struct config_ctx *ctx, const char *file, const char *text,
    int depth)
{
	const char *p = text, *q, *name;
	char *inc, *path, *sub;
	unsigned line = 1;
	struct stat st;
	int rc = 0;

	for (; *p != '\0'; line++) {
		q = p + strspn(p, " \t");
		if (strncmp(q, "@include", 8) == 0) {
			q += 8;
			q += strspn(q, " \t");
			name = q + 1;
			if (*q != '"' || (q = strchr(name, '"')) == NULL) {
				config_error_at(ctx, file, line,
				    "@include "
				    "needs a quoted file name");
				return -1;
			}
			inc = xstrndup(name, (size_t)(q - name));
			if (inc[0] == '/' || ctx->dir == NULL)
				path = xstrdup(inc);
			else
				xasprintf(&path, "%s/%s", ctx->dir, inc);
			if (depth >= CONFIG_MAX_INCLUDE_DEPTH) {
				config_error_at(ctx, file, line,
				    "@include "
				    "\"%s\": nested too deep",
				    inc);
				rc = -1;
			} else if (stat(path, &st) != 0 ||
			    !S_ISREG(st.st_mode)) {
				config_error_at(ctx, file, line,
				    "@include "
				    "\"%s\": not a readable file",
				    inc);
				rc = -1;
			} else if ((sub = config_read_all(ctx, path)) == NULL)
				rc = -1;
			else {
				if (config_includes(ctx, path, sub,
				        depth + 1) != 0)
					rc = -1;
				free(sub);
			}
			free(path);
			free(inc);
			if (rc != 0)
				return rc;
		}
		if ((p = strchr(p, '\n')) == NULL)
			break;
		p++;
	}
	return 0;
}

struct config *
config_load(const char *path, char **errors)
{
	struct config_ctx ctx;
	struct config *conf;
	char *text = NULL, *slash;
	config_t lc;

	memset(&ctx, 0, sizeof ctx);
	conf = config_new();
	ctx.conf = conf;
	ctx.file = path != NULL ? path : CONFIG_DEFAULT_FILE;
	if (errors != NULL)
		*errors = NULL;

	config_init(&lc);
	if (path != NULL) {
		conf->path = xstrdup(path);
		if ((slash = strrchr(path, '/')) != NULL)
			ctx.dir = xstrndup(path,
			    slash == path ? 1 : (size_t)(slash - path));
		if ((text = config_read_all(&ctx, path)) == NULL)
			goto out;
		if (ctx.dir != NULL)
			config_set_include_dir(&lc, ctx.dir);
		ctx.text = text;
		if (config_includes(&ctx, path, text, 0) != 0)
			goto out;
	} else
		ctx.text = config_default_text;

	if (config_read_string(&lc, ctx.text) != CONFIG_TRUE) {
		config_error_at(&ctx, config_error_file(&lc),
		    (unsigned)config_error_line(&lc), "%s",
		    config_error_text(&lc));
		goto out;
	}
	config_group(&ctx, config_root_setting(&lc), &config_top_keys, conf);

out:
	config_destroy(&lc);
	if (text != NULL) {
		explicit_bzero(text, strlen(text)); /* inline api_keys */
		free(text);
	}
	free(ctx.dir);
	if (ctx.nerrs == 0)
		return conf;
	if (errors != NULL)
		*errors = config_errors_join(&ctx);
	else
		free(config_errors_join(&ctx));
	config_free(conf);
	return NULL;
}

void
config_free(struct config *conf)
{
	size_t i;

	if (conf == NULL)
		return;
	for (i = 0; i < conf->nproviders; i++)
		config_provider_free(&conf->providers[i]);
	free(conf->providers);
	for (i = 0; i < conf->nroutes; i++)
		config_route_free(&conf->routes[i]);
	free(conf->routes);
	for (i = 0; i < conf->npools; i++)
		config_pool_free(&conf->pools[i]);
	free(conf->pools);
	config_clients_free(conf);
	for (i = 0; i < conf->ndomains; i++)
		config_domain_free(&conf->domains[i]);
	free(conf->domains);
	free(conf->socket);
	free(conf->socket_group);
	free(conf->admin_group);
	free(conf->metrics_listen);
	free(conf->state_file);
	free(conf->cluster.redis);
	free(conf->cluster.user);
	free(conf->cluster.password_file);
	if (conf->cluster.password != NULL) {
		explicit_bzero(conf->cluster.password,
		    strlen(conf->cluster.password));
		free(conf->cluster.password);
	}
	free(conf->cluster.prefix);
	free(conf->cluster.host);
	for (i = 0; i < conf->http.nlisten; i++)
		free(conf->http.listen[i]);
	free(conf->http.listen);
	for (i = 0; i < conf->http.ntokens; i++) {
		free(conf->http.names[i]);
		explicit_bzero(conf->http.tokens[i],
		    strlen(conf->http.tokens[i]));
		free(conf->http.tokens[i]);
	}
	free(conf->http.names);
	free(conf->http.tokens);
	free(conf->http.tokens_file);
	free(conf->path);
	free(conf);
}

const struct provider_conf *
config_provider(const struct config *conf, const char *name)
{
	size_t i;

	for (i = 0; i < conf->nproviders; i++) {
		if (strcmp(conf->providers[i].name, name) == 0)
			return &conf->providers[i];
	}
	return NULL;
}

const struct route_conf *
config_route(const struct config *conf, const char *name)
{
	size_t i;

	for (i = 0; i < conf->nroutes; i++) {
		if (strcmp(conf->routes[i].name, name) == 0)
			return &conf->routes[i];
	}
	return NULL;
}

const struct model_conf *
config_model(const struct provider_conf *pc, const char *model)
{
	size_t i;

	if (pc == NULL || model == NULL)
		return NULL;
	for (i = 0; i < pc->nmodels; i++) {
		if (strcmp(pc->models[i].name, model) == 0)
			return &pc->models[i];
	}
	return NULL;
}

/*
 * A target's effective limits: the model's values, else the provider's.
 * burst and tpm_burst default to one second's worth of the per-minute
 * limit, because providers enforce per-minute limits over shorter spans.
 */
void
config_limits(const struct provider_conf *pc, const char *model,
    struct model_conf *out)
{
	const struct model_conf *mc = config_model(pc, model);

	memset(out, 0, sizeof *out);
	out->rpm = mc != NULL && mc->rpm != 0 ? mc->rpm : pc->rpm;
	out->tpm = mc != NULL && mc->tpm != 0 ? mc->tpm : pc->tpm;
	out->burst = mc != NULL && mc->burst != 0 ? mc->burst : pc->burst;
	out->tpm_burst =
	    mc != NULL && mc->tpm_burst != 0 ? mc->tpm_burst : pc->tpm_burst;
	if (out->burst == 0 && out->rpm != 0)
		out->burst = (out->rpm + 59) / 60;
	if (out->tpm_burst == 0 && out->tpm != 0)
		out->tpm_burst = (out->tpm + 59) / 60;
}

struct config *
config_ref(struct config *c)
{
	c->refs++;
	return c;
}

void
config_unref(struct config *c)
{
	if (c != NULL && --c->refs == 0)
		config_free(c);
}
