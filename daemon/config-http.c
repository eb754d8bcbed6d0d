/*
 * config-http.c: the http block of the configuration (the HTTP front):
 * its key table, the listen addresses, allow_remote, the tokens file and
 * the check that a remote listener needs both.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "llmgated.h"

static void config_http_listen(struct config_ctx *, const config_setting_t *,
    void *);
static void config_http_remote(struct config_ctx *, const config_setting_t *,
    void *);
static int config_http_check(struct config_ctx *, const config_setting_t *,
    const config_setting_t **, void *);

#define HK(f) offsetof(struct http_conf, f)
enum { HK_LISTEN, HK_TOKENS_FILE, HK_ALLOW_REMOTE };
static const struct config_key config_http_key[] = {
	[HK_LISTEN] = { .name = "listen",
	    .kind = CK_FUNC,
	    .fn = config_http_listen },
	[HK_TOKENS_FILE] = { .name = "tokens_file",
	    .kind = CK_STRING,
	    .off = HK(tokens_file) },
	[HK_ALLOW_REMOTE] = { .name = "allow_remote",
	    .kind = CK_FUNC,
	    .fn = config_http_remote },
};
const struct config_keys config_http_keys = { config_http_key,
	CONFIG_NITEMS(config_http_key), config_http_check };

/* http.listen: "HOST:PORT", "[V6]:PORT" or "unix:PATH" ("unix:" alone:
 * beside the native socket). */
static void
config_http_listen(struct config_ctx *ctx, const config_setting_t *s, void *obj)
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
config_http_remote(struct config_ctx *ctx, const config_setting_t *s, void *obj)
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
		config_error(ctx, s,
		    "tokens_file '%s' is not a regular file "
		    "of at most %d bytes",
		    path, CONFIG_MAX_KEY_FILE);
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) {
		config_error(ctx, s,
		    "tokens_file '%s' has mode %04o: others "
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
			config_error(ctx, s,
			    "tokens_file '%s': a line is "
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
		        NULL) != 0 ||
		    loopback)
			continue;
		if (!hc->allow_remote)
			config_error(ctx, seen[HK_LISTEN],
			    "http listen '%s' is "
			    "not a loopback address: set allow_remote = true "
			    "(and a tokens_file) to serve it",
			    hc->listen[i]);
		else if (hc->tokens_file == NULL)
			config_error(ctx, seen[HK_LISTEN],
			    "http listen '%s' "
			    "is not a loopback address: it needs a tokens_file",
			    hc->listen[i]);
	}
	return 0;
}
