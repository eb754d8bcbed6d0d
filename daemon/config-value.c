/*
 * config-value.c: reading a group of settings against its table of known
 * keys (config-keys.c and the other config-*.c), each value by its kind,
 * so that a typo is an error rather than a silent default; "did you mean"
 * hints for unknown names; secrets read from files (API keys, the Redis
 * password).
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

#define CONFIG_MAX_KEYS 32 /* keys in one group's table */

static const char *config_jitter_names[] = {
	[JITTER_FULL] = "full",
	[JITTER_EQUAL] = "equal",
	[JITTER_DECORRELATED] = "decorrelated",
	[JITTER_NONE] = "none",
};

static const char *config_log_names[] = {
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

/* Optimal string alignment distance, for "did you mean" hints. */
static size_t
config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, d[3][65], c, best;

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		size_t *cur = d[i % 3], *prev = d[(i - 1) % 3];
		size_t *prev2 = d[(i + 1) % 3];

		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			c = a[i - 1] != b[j - 1];
			best = prev[j - 1] + c;
			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < best)
				best = prev2[j - 2] + 1;
			cur[j] = best;
		}
	}
	return d[la % 3][lb];
}

/* The closest of names to what, when close enough to be a typo. */
const char *
config_suggest(const char *what, const char **names, size_t n)
{
	const char *found = NULL;
	size_t i, d, best = SIZE_MAX, limit;

	limit = strlen(what) < 4 ? 1 : 2;
	for (i = 0; i < n; i++) {
		if (names[i] == NULL || *names[i] == '\0')
			continue;
		d = config_distance(what, names[i]);
		if (d <= limit && d < best) {
			best = d;
			found = names[i];
		}
	}
	return found;
}

/* "unknown WHAT 'v'", with the closest of names when it looks a typo. */
void
config_unknown(struct config_ctx *ctx, const config_setting_t *s,
    const char *what, const char *v, const char **names, size_t n)
{
	const char *hint = config_suggest(v, names, n);

	if (hint != NULL)
		config_error(ctx, s, "unknown %s '%s' (did you mean '%s'?)",
		    what, v, hint);
	else
		config_error(ctx, s, "unknown %s '%s'", what, v);
}

/*
 * libconfig before 1.7 reads an integer literal beyond 32 bits without an
 * L suffix as its truncated value, silently. Find the literal on the
 * setting's line to tell.
 */
static int
config_int_truncated(struct config_ctx *ctx, const config_setting_t *s)
{
	const char *name = config_setting_name(s), *p, *q;
	unsigned n, line = config_setting_source_line(s);
	long long v;
	size_t len;
	char *end;

	if (ctx->text == NULL || name == NULL ||
	    config_setting_source_file(s) != NULL)
		return 0;
	for (p = ctx->text, n = 1; n < line; n++) {
		if ((p = strchr(p, '\n')) == NULL)
			return 0;
		p++;
	}
	len = strlen(name);
	for (q = p; *q != '\0' && *q != '\n'; q++) {
		if (strncmp(q, name, len) != 0 ||
		    (q > p && (isalnum((u_char)q[-1]) || q[-1] == '_')))
			continue;
		for (q += len; *q == ' ' || *q == '\t'; q++)
			;
		if (*q != '=' && *q != ':')
			continue;
		for (q++; *q == ' ' || *q == '\t'; q++)
			;
		v = strtoll(q, &end, 0);
		if (end != q && (v > INT_MAX || v < INT_MIN) &&
		    (int)v == config_setting_get_int(s))
			return 1;
	}
	return 0;
}

static void
config_u32(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, uint32_t *out)
{
	double max = k->max != 0 ? k->max : UINT32_MAX;
	int type = config_setting_type(s);
	long long v;

	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
		config_error(ctx, s, "%s must be an integer", k->name);
		return;
	}
	if (type == CONFIG_TYPE_INT && config_int_truncated(ctx, s)) {
		config_error(ctx, s,
		    "%s is beyond 32 bits: write the number "
		    "with an L suffix (libconfig)",
		    k->name);
		return;
	}
	v = config_setting_get_int64(s);
	if (v < 0)
		config_error(ctx, s, "%s must not be negative", k->name);
	else if ((double)v < k->min)
		config_error(ctx, s, "%s must be at least %.0f", k->name,
		    k->min);
	else if ((double)v > max)
		config_error(ctx, s, "%s must be at most %.0f", k->name, max);
	else
		*out = (uint32_t)v;
}

static void
config_double(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, double *out)
{
	int type = config_setting_type(s);
	double v;

	if (type == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
		v = (double)config_setting_get_int64(s);
	else {
		config_error(ctx, s, "%s must be a number", k->name);
		return;
	}
	if (v < 0)
		config_error(ctx, s, "%s must not be negative", k->name);
	else if (!(v >= k->min))
		config_error(ctx, s, "%s must be at least %g", k->name, k->min);
	else if (k->max != 0 && v > k->max)
		config_error(ctx, s, "%s must be at most %g", k->name, k->max);
	else
		*out = v;
}

/* A non-empty string setting, or NULL after an error. */
static const char *
config_string(struct config_ctx *ctx, const config_setting_t *s,
    const char *name)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_error(ctx, s, "%s must be a string", name);
		return NULL;
	}
	v = config_setting_get_string(s);
	if (*v == '\0') {
		config_error(ctx, s, "%s must not be empty", name);
		return NULL;
	}
	return v;
}

/* Index of v in a name table, else an error listing the valid names. */
static int
config_enum(struct config_ctx *ctx, const config_setting_t *s, const char *what,
    const char **names, size_t n)
{
	struct buf b = { NULL, 0, 0 };
	const char *v;
	size_t i;

	if ((v = config_string(ctx, s, what)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0)
			return (int)i;
	}
	for (i = 0; i < n; i++)
		buf_printf(&b, "%s%s", i == 0 ? "" : ", ", names[i]);
	config_error(ctx, s, "unknown %s '%s' (valid: %s)", what, v,
	    buf_cstr(&b));
	buf_free(&b);
	return -1;
}

static void
config_mode(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, mode_t *out)
{
	const char *v;
	unsigned long m;
	char *end;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_error(ctx, s, "%s must be an octal string like \"0660\"",
		    k->name);
		return;
	}
	v = config_setting_get_string(s);
	errno = 0;
	m = strtoul(v, &end, 8);
	if (*v < '0' || *v > '7' || *end != '\0' || errno != 0 || m > 07777) {
		config_error(ctx, s, "%s must be an octal string like \"0660\"",
		    k->name);
		return;
	}
	*out = (mode_t)m;
}

/* A list of groups; fn gets each. An empty [] is an empty list too. */
static void
config_list(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, void *obj)
{
	const config_setting_t *e;
	int i, n = config_setting_length(s);

	if (!config_setting_is_list(s) &&
	    !(config_setting_is_array(s) && n == 0)) {
		config_error(ctx, s, "%s must be a list: ( { ... }, ... )",
		    k->name);
		return;
	}
	if (n > CONFIG_MAX_ITEMS) {
		config_error(ctx, s, "too many %s (%d, at most %d)", k->name, n,
		    CONFIG_MAX_ITEMS);
		return;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		if (!config_setting_is_group(e)) {
			config_error(ctx, e,
			    "each entry of %s must be a group "
			    "{ ... }",
			    k->name);
			continue;
		}
		k->fn(ctx, e, obj);
	}
}

/* A list of strings: [ "a", "b" ] or ( "a", "b" ); 0 when usable. */
int
config_strings(struct config_ctx *ctx, const config_setting_t *s,
    const char *what)
{
	const config_setting_t *e;
	int i, n = config_setting_length(s), rc = 0;

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		config_error(ctx, s, "%s must be a list of strings: [ ... ]",
		    what);
		return -1;
	}
	if (n > CONFIG_MAX_ITEMS) {
		config_error(ctx, s, "too many %s (%d, at most %d)", what, n,
		    CONFIG_MAX_ITEMS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (u_int)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			config_error(ctx, e,
			    "%s must be a list of strings: "
			    "[ ... ]",
			    what);
			rc = -1;
		}
	}
	return rc;
}

static void
config_value(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, void *obj)
{
	char *p = (char *)obj + k->off;
	const char *v;
	int i;

	switch (k->kind) {
	case CK_U32:
		config_u32(ctx, s, k, (uint32_t *)p);
		break;
	case CK_DOUBLE:
		config_double(ctx, s, k, (double *)p);
		break;
	case CK_STRING:
		if ((v = config_string(ctx, s, k->name)) != NULL)
			*(char **)p = xstrdup(v);
		break;
	case CK_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			config_error(ctx, s, "%s must be true or false",
			    k->name);
		else
			*(int *)p = config_setting_get_bool(s);
		break;
	case CK_MODE:
		config_mode(ctx, s, k, (mode_t *)p);
		break;
	case CK_LOGLEVEL:
		i = config_enum(ctx, s, k->name, config_log_names,
		    CONFIG_NITEMS(config_log_names));
		if (i != -1)
			*(int *)p = i;
		break;
	case CK_JITTER:
		i = config_enum(ctx, s, k->name, config_jitter_names,
		    CONFIG_NITEMS(config_jitter_names));
		if (i != -1)
			*(enum jitter *)p = (enum jitter)i;
		break;
	case CK_GROUP:
		if (!config_setting_is_group(s)) {
			config_error(ctx, s, "%s must be a group { ... }",
			    k->name);
			break;
		}
		config_group(ctx, s, k->sub, p);
		break;
	case CK_LIST:
		config_list(ctx, s, k, obj);
		break;
	case CK_FUNC:
		k->fn(ctx, s, obj);
		break;
	}
}

/*
 * Fill obj from a group: every member must be a known key; known keys are
 * converted in table order, then the table's check sees what was given.
 */
int
config_group(struct config_ctx *ctx, const config_setting_t *group,
    const struct config_keys *keys, void *obj)
{
	const config_setting_t *seen[CONFIG_MAX_KEYS], *s;
	const char *names[CONFIG_MAX_KEYS], *name;
	int i, n = config_setting_length(group);
	size_t j;

	if (keys->nkeys > CONFIG_MAX_KEYS)
		fatalx("%s: key table too large", __func__);
	for (j = 0; j < keys->nkeys; j++)
		names[j] = keys->keys[j].name;
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(group, (u_int)i);
		name = config_setting_name(s);
		for (j = 0; j < keys->nkeys; j++) {
			if (strcmp(name, names[j]) == 0)
				break;
		}
		if (j != keys->nkeys)
			continue;
		config_unknown(ctx, s, "setting", name, names, keys->nkeys);
	}
	for (j = 0; j < keys->nkeys; j++) {
		seen[j] = config_setting_get_member(group, names[j]);
		if (seen[j] != NULL)
			config_value(ctx, seen[j], &keys->keys[j], obj);
	}
	if (keys->check == NULL)
		return 0;
	return keys->check(ctx, group, seen, obj);
}

/* Non-zero when s holds a byte that would break an HTTP header or URL. */
int
config_has_ctl(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((u_char)*s <= 0x20 || (u_char)*s == 0x7f)
			return 1;
	}
	return 0;
}

/* Read a key file: a systemd credential, or a file only llmgated reads. */
char *
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
		config_error(ctx, s,
		    "%s '%s' is not a key file "
		    "(a regular file of at most %d bytes)",
		    setting, path, CONFIG_MAX_KEY_FILE);
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
			config_error(ctx, s,
			    "cannot read %s '%s': "
			    "%s",
			    setting, path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > (size_t)st.st_size) {
		config_error(ctx, s,
		    "%s '%s' changed while it was "
		    "read",
		    setting, path);
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
