/*
 * check_config.c: the config loader against the embedded default, the
 * shipped example, and files with known errors at known lines.
 */
#include <sys/stat.h>

#include <check.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmgated.h"

#ifndef TEST_DATA
#error "build with -DTEST_DATA='\"/path/to/tests/data\"'"
#endif

#define CONF(name) TEST_DATA "/config/" name
#define EXAMPLE    TEST_DATA "/../../llmgated.conf.example"

#define DEFAULT_ON \
	(1u << LLMGATE_RATE_LIMITED | 1u << LLMGATE_OVERLOADED | \
	    1u << LLMGATE_SERVER_ERROR | 1u << LLMGATE_TIMEOUT | \
	    1u << LLMGATE_CONNECTION | 1u << LLMGATE_PARSE_ERROR)

static char tmpdir[] = "/tmp/check_config.XXXXXX";

/* Load a file that must load; its errors fail the test. */
static struct config *
load_ok(const char *path)
{
	struct config *conf;
	char *errors = NULL;

	conf = config_load(path, &errors);
	ck_assert_msg(conf != NULL, "%s: %s", path ? path : "<default>",
	    errors ? errors : "(no errors)");
	ck_assert_ptr_null(errors);
	return conf;
}

/* Load a file that must fail; returns its errors (free()). */
static char *
load_fail(const char *path)
{
	struct config *conf;
	char *errors = NULL;

	conf = config_load(path, &errors);
	ck_assert_ptr_null(conf);
	ck_assert_ptr_nonnull(errors);
	return errors;
}

/* Write text to a file in the test's directory; returns the path. */
static char *
write_file(const char *name, const char *text)
{
	char *path;
	FILE *f;

	xasprintf(&path, "%s/%s", tmpdir, name);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("OPENAI_API_KEY");
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("GEMINI_API_KEY");
	unsetenv("LLMGATE_TEST_KEY");
	unsetenv("LLMGATE_TEST_UNSET");
}

static void
teardown(void)
{
	char *cmd;

	xasprintf(&cmd, "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	strcpy(tmpdir, "/tmp/check_config.XXXXXX");
}

START_TEST(test_default)
{
	const struct provider_conf *p;
	const struct route_conf *r;
	struct config *conf;

	setenv("ANTHROPIC_API_KEY", "sk-ant-from-env", 1);
	conf = load_ok(NULL);
	ck_assert_ptr_null(conf->path);
	ck_assert_uint_eq(conf->nproviders, 4);

	p = &conf->providers[0];
	ck_assert_str_eq(p->name, "openai");
	ck_assert_str_eq(p->type->name, "openai");
	ck_assert_str_eq(p->base_url, "https://api.openai.com/v1");
	ck_assert_ptr_null(p->api_key); /* OPENAI_API_KEY unset */
	p = &conf->providers[1];
	ck_assert_str_eq(p->name, "anthropic");
	ck_assert_str_eq(p->type->name, "anthropic");
	ck_assert_str_eq(p->base_url, "https://api.anthropic.com/v1");
	ck_assert_str_eq(p->api_key, "sk-ant-from-env");
	p = &conf->providers[2];
	ck_assert_str_eq(p->name, "google");
	ck_assert_str_eq(p->type->name, "gemini");
	ck_assert_str_eq(p->base_url,
	    "https://generativelanguage.googleapis.com/v1beta");
	p = &conf->providers[3];
	ck_assert_str_eq(p->name, "mock");
	ck_assert_str_eq(p->type->name, "mock");
	ck_assert_ptr_null(p->base_url);
	ck_assert_ptr_eq(config_provider(conf, "mock"), p);
	ck_assert_ptr_null(config_provider(conf, "azure"));

	ck_assert_uint_eq(conf->nroutes, 1);
	ck_assert_ptr_nonnull(r = config_route(conf, "default"));
	ck_assert_uint_eq(r->ntargets, 1);
	ck_assert_str_eq(r->targets[0], "mock/echo");
	ck_assert_ptr_null(config_route(conf, "other"));

	/* Quick backoff for the quick start; the rest as documented. */
	ck_assert_uint_eq(conf->retry.attempts, 3);
	ck_assert_uint_eq(conf->retry.initial_ms, 200);
	ck_assert_uint_eq(conf->retry.max_ms, 5000);
	ck_assert_uint_eq(conf->retry.on, DEFAULT_ON);
	ck_assert_uint_eq(conf->breaker.failures, 5);
	config_free(conf);
}
END_TEST

START_TEST(test_example)
{
	const struct provider_conf *p;
	const struct model_conf *m;
	const struct route_conf *r;
	struct config *conf;

	setenv("OPENAI_API_KEY", "sk-openai-env", 1);
	conf = load_ok(EXAMPLE);
	ck_assert_str_eq(conf->path, EXAMPLE);
	ck_assert_str_eq(conf->socket, "/run/llmgate/llmgate.sock");
	ck_assert_uint_eq(conf->socket_mode, 0660);
	ck_assert_int_eq(conf->log_level, -1);
	ck_assert_uint_eq(conf->nproviders, 6);
	ck_assert_ptr_nonnull(p = config_provider(conf, "openai"));
	ck_assert_str_eq(p->api_key, "sk-openai-env");
	ck_assert_uint_eq(p->rpm, 500);
	ck_assert_uint_eq(p->concurrency, 64);
	ck_assert_uint_eq(p->nmodels, 2);
	ck_assert_ptr_nonnull(m = config_model(p, "gpt-4o-mini"));
	ck_assert_uint_eq(m->tpm, 2000000);
	ck_assert_ptr_nonnull(p = config_provider(conf, "azure"));
	ck_assert_str_eq(p->type->name, "azure");
	ck_assert_str_eq(p->api_version, "2024-10-21");
	ck_assert_ptr_null(p->api_key);
	ck_assert_ptr_nonnull(p = config_provider(conf, "local"));
	ck_assert_uint_eq(p->timeout_ms, 300000);
	ck_assert_ptr_nonnull(r = config_route(conf, "default"));
	ck_assert_uint_eq(r->ntargets, 3);
	ck_assert_str_eq(r->targets[2], "google/gemini-2.0-flash");

	/* The example shows the defaults: same values as an empty file. */
	ck_assert_uint_eq(conf->max_frame, 1048576);
	ck_assert_uint_eq(conf->max_output, 8388608);
	ck_assert_uint_eq(conf->retry.initial_ms, 500);
	ck_assert_uint_eq(conf->retry.on, DEFAULT_ON);
	ck_assert_double_eq(conf->breaker.failure_rate, 0.5);
	ck_assert_double_eq(conf->retry_budget.ratio, 0.2);
	config_free(conf);
}
END_TEST

START_TEST(test_defaults)
{
	const struct provider_conf *p;
	struct config *conf;

	conf = load_ok(CONF("defaults.conf"));
	ck_assert_ptr_null(conf->socket);
	ck_assert_uint_eq(conf->socket_mode, 0660);
	ck_assert_int_eq(conf->log_level, -1);
	ck_assert_uint_eq(conf->max_frame, 1024 * 1024);
	ck_assert_uint_eq(conf->max_inflight, 1024);
	ck_assert_uint_eq(conf->max_clients, 4096);
	ck_assert_uint_eq(conf->max_output, 8 * 1024 * 1024);
	ck_assert_uint_eq(conf->drain_ms, 10000);
	ck_assert_uint_eq(conf->nroutes, 0);

	ck_assert_uint_eq(conf->nproviders, 1);
	p = &conf->providers[0];
	ck_assert_str_eq(p->base_url, "https://api.openai.com/v1");
	ck_assert_ptr_null(p->api_key);
	ck_assert_ptr_null(p->api_version);
	ck_assert_uint_eq(p->rpm, 0);
	ck_assert_uint_eq(p->tpm, 0);
	ck_assert_uint_eq(p->burst, 0);
	ck_assert_uint_eq(p->concurrency, 0);
	ck_assert_uint_eq(p->timeout_ms, 60000);
	ck_assert_uint_eq(p->connect_timeout_ms, 5000);
	ck_assert_uint_eq(p->nmodels, 0);

	ck_assert_uint_eq(conf->retry.attempts, 3);
	ck_assert_uint_eq(conf->retry.initial_ms, 500);
	ck_assert_uint_eq(conf->retry.max_ms, 20000);
	ck_assert_double_eq(conf->retry.multiplier, 2.0);
	ck_assert_int_eq(conf->retry.jitter, JITTER_FULL);
	ck_assert_uint_eq(conf->retry.on, DEFAULT_ON);
	ck_assert_uint_eq(conf->breaker.failures, 5);
	ck_assert_double_eq(conf->breaker.failure_rate, 0.5);
	ck_assert_uint_eq(conf->breaker.min_calls, 10);
	ck_assert_uint_eq(conf->breaker.window_ms, 30000);
	ck_assert_uint_eq(conf->breaker.open_ms, 30000);
	ck_assert_uint_eq(conf->breaker.half_open_probes, 1);
	ck_assert_double_eq(conf->retry_budget.ratio, 0.2);
	ck_assert_double_eq(conf->retry_budget.min_per_s, 5);
	config_free(conf);
}
END_TEST

START_TEST(test_full)
{
	const struct provider_conf *p;
	const struct route_conf *r;
	struct config *conf;

	conf = load_ok(CONF("full.conf"));
	ck_assert_str_eq(conf->socket, "/tmp/llmgate-test.sock");
	ck_assert_uint_eq(conf->socket_mode, 0600);
	ck_assert_int_eq(conf->log_level, LOG_LVL_DEBUG);
	ck_assert_uint_eq(conf->max_frame, 65536);
	ck_assert_uint_eq(conf->max_inflight, 16);
	ck_assert_uint_eq(conf->max_clients, 8);
	ck_assert_uint_eq(conf->max_output, 131072);
	ck_assert_uint_eq(conf->drain_ms, 0);

	ck_assert_ptr_nonnull(p = config_provider(conf, "az"));
	ck_assert_str_eq(p->type->name, "azure");
	ck_assert_str_eq(p->base_url, "https://x.openai.azure.com");
	ck_assert_str_eq(p->api_version, "2024-10-21");
	ck_assert_str_eq(p->api_key, "k-inline");
	ck_assert_uint_eq(p->concurrency, 4);
	ck_assert_uint_eq(p->timeout_ms, 1000);
	ck_assert_uint_eq(p->connect_timeout_ms, 200);
	ck_assert_ptr_nonnull(r = config_route(conf, "default"));
	ck_assert_uint_eq(r->ntargets, 2);
	ck_assert_str_eq(r->targets[0], "az/gpt-4o");
	ck_assert_str_eq(r->targets[1], "m/echo");

	ck_assert_uint_eq(conf->retry.attempts, 5);
	ck_assert_uint_eq(conf->retry.initial_ms, 100);
	ck_assert_uint_eq(conf->retry.max_ms, 1000);
	ck_assert_double_eq(conf->retry.multiplier, 3.0);
	ck_assert_int_eq(conf->retry.jitter, JITTER_DECORRELATED);
	ck_assert_uint_eq(conf->retry.on,
	    1u << LLMGATE_AUTH | 1u << LLMGATE_TIMEOUT);
	ck_assert_uint_eq(conf->breaker.failures, 3);
	ck_assert_double_eq(conf->breaker.failure_rate, 1.0);
	ck_assert_uint_eq(conf->breaker.min_calls, 0);
	ck_assert_uint_eq(conf->breaker.window_ms, 1000);
	ck_assert_uint_eq(conf->breaker.open_ms, 2000);
	ck_assert_uint_eq(conf->breaker.half_open_probes, 2);
	ck_assert_double_eq(conf->retry_budget.ratio, 0.5);
	ck_assert_double_eq(conf->retry_budget.min_per_s, 0.5);
	config_free(conf);
}
END_TEST

START_TEST(test_models)
{
	const struct provider_conf *p;
	const struct model_conf *m;
	struct model_conf lim;
	struct config *conf;

	conf = load_ok(CONF("models.conf"));
	/* on = [] retries nothing. */
	ck_assert_uint_eq(conf->retry.on, 0);
	ck_assert_ptr_nonnull(p = config_provider(conf, "openai"));
	ck_assert_uint_eq(p->nmodels, 3);
	ck_assert_ptr_nonnull(m = config_model(p, "gpt-4o-mini"));
	ck_assert_str_eq(m->name, "gpt-4o-mini");
	ck_assert_uint_eq(m->rpm, 5000);
	ck_assert_uint_eq(m->tpm, 2000000);
	ck_assert_uint_eq(m->burst, 0);
	ck_assert_ptr_nonnull(m = config_model(p, "org/model"));
	ck_assert_uint_eq(m->rpm, 120);
	ck_assert_ptr_null(config_model(p, "gpt-4"));
	ck_assert_ptr_null(config_model(p, NULL));

	/* The model's values, else the provider's; bursts one second's. */
	config_limits(p, "gpt-4o-mini", &lim);
	ck_assert_uint_eq(lim.rpm, 5000);
	ck_assert_uint_eq(lim.tpm, 2000000);
	ck_assert_uint_eq(lim.burst, 8);
	ck_assert_uint_eq(lim.tpm_burst, 33334);
	config_limits(p, "gpt-4o", &lim);
	ck_assert_uint_eq(lim.rpm, 500);
	ck_assert_uint_eq(lim.tpm, 200000);
	ck_assert_uint_eq(lim.burst, 8);
	ck_assert_uint_eq(lim.tpm_burst, 1000);
	config_limits(p, "unlisted", &lim);
	ck_assert_uint_eq(lim.rpm, 500);
	ck_assert_uint_eq(lim.tpm_burst, 3334);

	ck_assert_ptr_nonnull(p = config_provider(conf, "local"));
	ck_assert_str_eq(p->base_url, "http://127.0.0.1:8080/v1");
	ck_assert_uint_eq(p->tpm, 3000000000u);
	config_limits(p, "any", &lim);
	ck_assert_uint_eq(lim.burst, 2);
	ck_assert_uint_eq(lim.tpm_burst, 50000000);
	config_free(conf);

	/* No limits configured: no bursts either. */
	conf = load_ok(CONF("defaults.conf"));
	config_limits(&conf->providers[0], "x", &lim);
	ck_assert_uint_eq(lim.rpm, 0);
	ck_assert_uint_eq(lim.burst, 0);
	ck_assert_uint_eq(lim.tpm_burst, 0);
	config_free(conf);
}
END_TEST

START_TEST(test_syntax_error)
{
	char *errors = load_fail(CONF("syntax.conf"));

	ck_assert_str_eq(errors, CONF("syntax.conf") ":3: syntax error\n");
	free(errors);
}
END_TEST

START_TEST(test_missing_file)
{
	char *errors = load_fail(CONF("nonexistent.conf"));

	ck_assert_str_eq(errors,
	    CONF(
	        "nonexistent.conf") ": cannot read: No such file or directory\n");
	free(errors);
	errors = load_fail(CONF("keys"));
	ck_assert_str_eq(errors, CONF("keys") ": not a regular file\n");
	free(errors);
}
END_TEST

#define EP CONF("errors-provider.conf")
START_TEST(test_errors_provider)
{
	char *errors = load_fail(EP);

	ck_assert_str_eq(errors,
	    EP
	    ":3: unknown provider type 'openia' (valid: openai, anthropic, "
	    "gemini, azure, mock)\n" EP
	    ":4: unknown setting 'rmp' (did you mean 'rpm'?)\n" EP
	    ":5: duplicate provider 'a'\n" EP
	    ":6: provider name 'c/d' must not contain '/'\n" EP
	    ":7: provider has no name\n" EP
	    ":8: provider 'e' has no type (one of openai, anthropic, "
	    "gemini, azure, mock)\n" EP
	    ":9: provider 'az' has no base_url (type azure has no default)\n" EP
	    ":9: provider 'az' has no api_version (type azure needs one)\n" EP
	    ":10: api_version is only used by type azure\n" EP
	    ":12: only one of api_key, api_key_env and api_key_file may be "
	    "given\n" EP
	    ":13: cannot read api_key_file '/nonexistent/llmgate.key': "
	    "No such file or directory\n" EP
	    ":14: base_url must start with http:// or https://\n" EP
	    ":15: rpm must be an integer\n" EP
	    ":15: tpm must not be negative\n" EP
	    ":15: burst must be an integer\n" EP ":16: duplicate model 'm'\n" EP
	    ":16: model has no name\n");
	free(errors);
}
END_TEST

#define EM CONF("errors-misc.conf")
START_TEST(test_errors_misc)
{
	char *errors = load_fail(EM);

	ck_assert_str_eq(errors,
	    EM
	    ":2: socket must be an absolute path\n" EM
	    ":3: socket_mode must be an octal string like \"0660\"\n" EM
	    ":4: unknown log_level 'verbose' (valid: warn, info, debug)\n" EM
	    ":5: max_frame must be at most 16777216\n" EM
	    ":6: max_clients must be at least 1\n" EM
	    ":7: unknown setting 'verbose'\n" EM
	    ":12: target 'nope/x': unknown provider 'nope'\n" EM
	    ":12: target 'p' must be provider/model or a pool's "
	    "name\n" EM ":13: duplicate route 'r1'\n" EM
	    ":14: route has no name\n" EM ":15: route 'r2' has no targets\n" EM
	    ":16: route 'r3' has no targets\n" EM
	    ":17: unknown setting 'target' (did you mean 'targets'?)\n" EM
	    ":17: route 'r4' has no targets\n" EM
	    ":20: attempts must be at least 1\n" EM
	    ":22: max_ms (100) is less than initial_ms (1000)\n" EM
	    ":23: unknown jitter 'fuzzy' (valid: full, equal, decorrelated, "
	    "none)\n" EM ":24: unknown error class 'rate_limit' (did you mean "
	    "'rate_limited'?)\n" EM ":24: unknown error class 'bogus'\n" EM
	    ":25: multiplier must be at least 1\n" EM
	    ":27: failure_rate must be at most 1\n" EM
	    ":27: half_open_probes must be at least 1\n" EM
	    ":28: ratio must not be negative\n" EM
	    ":28: min_per_s must be a number\n" EM
	    ":29: unknown setting 'retry_budgets' (did you mean "
	    "'retry_budget'?)\n");
	free(errors);
}
END_TEST

#define ET CONF("errors-types.conf")
START_TEST(test_errors_types)
{
	char *errors = load_fail(ET);
	const char *head =
	    ET ":2: providers must be a list: ( { ... }, ... )\n" ET
	       ":3: each entry of routes must be a group { ... }\n" ET
	       ":4: retry must be a group { ... }\n" ET
	       ":5: failures must be an integer\n" ET
	       ":5: window_ms must be an integer\n";
	const char *tail = ET ":7: drain_ms must not be negative\n" ET
	                      ":9: max_inflight must be at most 4294967295\n";
	/* libconfig < 1.7 truncates 5000000000 to 32 bits; later ones
	 * promote it to 64 bits. Both must be refused. */
	const char *big_old = ET ":6: max_output is beyond 32 bits: write "
	                         "the number with an L suffix (libconfig)\n";
	const char *big_new = ET ":6: max_output must be at most "
	                         "4294967295\n";
	char *want_old, *want_new;

	xasprintf(&want_old, "%s%s%s", head, big_old, tail);
	xasprintf(&want_new, "%s%s%s", head, big_new, tail);
	ck_assert_msg(strcmp(errors, want_old) == 0 ||
	        strcmp(errors, want_new) == 0,
	    "got:\n%s", errors);
	free(want_old);
	free(want_new);
	free(errors);
}
END_TEST

#define EK CONF("errors-keys.conf")
START_TEST(test_errors_keys)
{
	char *errors = load_fail(EK);

	ck_assert_str_eq(errors,
	    EK ":3: the API key contains spaces or control characters\n" EK
	       ":4: api_key_file '" CONF(
	           "keys/empty.key") "' is empty\n" EK
	                             ":5: api_key_env must not be empty\n");
	free(errors);
}
END_TEST

START_TEST(test_frame_output)
{
	char *path, *errors, *want;

	/* One reply frame must fit in what a client may have queued. */
	path = write_file("a.conf",
	    "max_frame = 1048576;\n"
	    "max_output = 65536;\n");
	errors = load_fail(path);
	xasprintf(&want,
	    "%s:2: max_output (65536) must be at least max_frame "
	    "(1048576)\n",
	    path);
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);
	free(path);

	path = write_file("b.conf", "max_frame = 16777216;\n");
	errors = load_fail(path);
	xasprintf(&want,
	    "%s:1: max_output (8388608) must be at least "
	    "max_frame (16777216)\n",
	    path);
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);
	free(path);
}
END_TEST

START_TEST(test_too_many)
{
	struct buf b = { NULL, 0, 0 };
	char *path, *errors, *want;
	int i;

	buf_addstr(&b, "providers = (\n");
	for (i = 0; i < 1025; i++)
		buf_printf(&b, "%s{ name = \"p%d\"; type = \"mock\"; }\n",
		    i == 0 ? "" : ",", i);
	buf_addstr(&b, ");\n");
	path = write_file("many.conf", buf_cstr(&b));
	errors = load_fail(path);
	xasprintf(&want, "%s:1: too many providers (1025, at most 1024)\n",
	    path);
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);
	free(path);

	/* 1024 is fine, and so is a route with 1024 targets. */
	buf_reset(&b);
	buf_addstr(&b, "providers = (\n");
	for (i = 0; i < 1024; i++)
		buf_printf(&b, "%s{ name = \"p%d\"; type = \"mock\"; }\n",
		    i == 0 ? "" : ",", i);
	buf_addstr(&b, ");\nroutes = ( { name = \"all\"; targets = [");
	for (i = 0; i < 1024; i++)
		buf_printf(&b, "%s\"p%d/m\"", i == 0 ? "" : ",", i);
	buf_addstr(&b, "]; } );\n");
	path = write_file("max.conf", buf_cstr(&b));
	{
		struct config *conf = load_ok(path);

		ck_assert_uint_eq(conf->nproviders, 1024);
		ck_assert_uint_eq(conf->routes[0].ntargets, 1024);
		ck_assert_str_eq(conf->routes[0].targets[1023], "p1023/m");
		config_free(conf);
	}
	free(path);
	buf_free(&b);
}
END_TEST

/* The cluster block: defaults, the password from its file, and errors. */
START_TEST(test_cluster)
{
	char *pw, *path, *text, *errors;
	struct config *conf;

	/* Without the block: no cluster. */
	conf = load_ok(NULL);
	ck_assert_int_eq(conf->cluster.enabled, 0);
	config_free(conf);

	pw = write_file("redis.pw", "s3cret\n");
	xasprintf(&text,
	    "cluster = { redis = \"unix:/run/redis.sock\";\n"
	    "  password_file = \"%s\"; user = \"llm\"; };\n",
	    pw);
	path = write_file("cluster.conf", text);
	free(text);
	conf = load_ok(path);
	ck_assert_int_eq(conf->cluster.enabled, 1);
	ck_assert_str_eq(conf->cluster.redis, "unix:/run/redis.sock");
	ck_assert_str_eq(conf->cluster.password, "s3cret");
	ck_assert_str_eq(conf->cluster.user, "llm");
	ck_assert_str_eq(conf->cluster.prefix, "llmgate");
	ck_assert_ptr_nonnull(conf->cluster.host);
	ck_assert_uint_gt(strlen(conf->cluster.host), 0);
	ck_assert_uint_eq(conf->cluster.slice_ms, 200);
	ck_assert_uint_eq(conf->cluster.timeout_ms, 500);
	config_free(conf);
	free(path);

	path = write_file("cluster-tcp.conf",
	    "cluster = { redis = "
	    "\"10.0.0.5:6379\"; host = \"web-1\"; prefix = \"team-a\";\n"
	    "  slice_ms = 50; };\n");
	conf = load_ok(path);
	ck_assert_str_eq(conf->cluster.host, "web-1");
	ck_assert_str_eq(conf->cluster.prefix, "team-a");
	ck_assert_uint_eq(conf->cluster.slice_ms, 50);
	ck_assert_uint_eq(conf->cluster.expected_hosts, 1);
	config_free(conf);
	free(path);

	path = write_file("cluster-v6.conf",
	    "cluster = { redis = "
	    "\"[::1]:6379\"; expected_hosts = 3; };\n");
	conf = load_ok(path);
	ck_assert_str_eq(conf->cluster.redis, "[::1]:6379");
	ck_assert_uint_eq(conf->cluster.expected_hosts, 3);
	config_free(conf);
	free(path);
	path = write_file("cluster-v6-bare.conf",
	    "cluster = { redis = "
	    "\"::1:6379\"; expected_hosts = 0; };\n");
	errors = load_fail(path);
	ck_assert_msg(strstr(errors,
	                  "cluster: redis '::1:6379': write an "
	                  "IPv6 address in brackets") != NULL,
	    "%s", errors);
	ck_assert_msg(strstr(errors, "expected_hosts") != NULL, "%s", errors);
	free(errors);
	free(path);

	/* Each problem with its line; the password never in an error. */
	xasprintf(&text,
	    "cluster = {\n"
	    "  redis = \"redis.example\";\n"
	    "  user = \"llm\";\n"
	    "  slice_ms = 5;\n"
	    "  hosts = \"x\";\n"
	    "};\n");
	path = write_file("cluster-bad.conf", text);
	free(text);
	errors = load_fail(path);
	ck_assert_msg(strstr(errors,
	                  ":2: cluster: redis 'redis.example' is "
	                  "neither") != NULL,
	    "%s", errors);
	ck_assert_msg(strstr(errors, ":3: cluster: user needs password_file") !=
	        NULL,
	    "%s", errors);
	ck_assert_msg(strstr(errors, ":4:") != NULL, "%s", errors);
	ck_assert_msg(strstr(errors,
	                  ":5: unknown setting 'hosts' (did you "
	                  "mean 'host'?)") != NULL,
	    "%s", errors);
	free(errors);
	free(path);

	path =
	    write_file("cluster-none.conf", "cluster = { prefix = \"p\"; };\n");
	errors = load_fail(path);
	ck_assert_msg(strstr(errors, "cluster: redis is required") != NULL,
	    "%s", errors);
	free(errors);
	free(path);

	path = write_file("cluster-rel.conf",
	    "cluster = { redis = "
	    "\"unix:redis.sock\"; password_file = \"missing.pw\"; };\n");
	errors = load_fail(path);
	ck_assert_msg(strstr(errors, "absolute path") != NULL, "%s", errors);
	ck_assert_msg(strstr(errors, "cannot read password_file") != NULL, "%s",
	    errors);
	free(errors);
	free(path);
	free(pw);
}
END_TEST

/* Redis's address: a socket, a name or IPv4 address, IPv6 in brackets. */
START_TEST(test_cluster_addr)
{
	static const struct {
		const char *in, *path, *host;
		int port;
		const char *err; /* part of the error; NULL: parses */
	} cases[] = {
		{ "unix:/run/redis.sock", "/run/redis.sock", NULL, 0, NULL },
		{ "unix:run.sock", NULL, NULL, 0, "absolute path" },
		{ "127.0.0.1:6379", NULL, "127.0.0.1", 6379, NULL },
		{ "redis.internal:6380", NULL, "redis.internal", 6380, NULL },
		{ "[::1]:6379", NULL, "::1", 6379, NULL },
		{ "[fe80::1%eth0]:1", NULL, NULL, 0, "not an IPv6 address" },
		{ "[2001:db8::7]:65535", NULL, "2001:db8::7", 65535, NULL },
		{ "::1:6379", NULL, NULL, 0, "in brackets" },
		{ "[::1]6379", NULL, NULL, 0, "[ADDRESS]:PORT" },
		{ "[::1", NULL, NULL, 0, "[ADDRESS]:PORT" },
		{ "[]:6379", NULL, NULL, 0, "a host and a port" },
		{ "[::1]:", NULL, NULL, 0, "a host and a port" },
		{ "[::1]:65536", NULL, NULL, 0, "a host and a port" },
		{ "[1.2.3.4]:6379", NULL, NULL, 0, "not an IPv6 address" },
		{ "host:0", NULL, NULL, 0, "a host and a port" },
		{ ":6379", NULL, NULL, 0, "a host and a port" },
		{ "host:63x", NULL, NULL, 0, "a host and a port" },
		{ "redis.example", NULL, NULL, 0, "neither" },
		{ "a b:1", NULL, NULL, 0, "spaces" },
	};
	struct cluster_addr a;
	char *cause;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cause = NULL;
		if (cases[i].err != NULL) {
			ck_assert_msg(cluster_addr_parse(cases[i].in, &a,
			                  &cause) == -1,
			    "%s parsed", cases[i].in);
			ck_assert_msg(strstr(cause, cases[i].err) != NULL,
			    "%s: %s", cases[i].in, cause);
			free(cause);
			continue;
		}
		ck_assert_msg(cluster_addr_parse(cases[i].in, &a, &cause) == 0,
		    "%s: %s", cases[i].in, cause);
		if (cases[i].path != NULL)
			ck_assert_str_eq(a.path, cases[i].path);
		else
			ck_assert_ptr_null(a.path);
		if (cases[i].host != NULL)
			ck_assert_str_eq(a.host, cases[i].host);
		else
			ck_assert_ptr_null(a.host);
		ck_assert_int_eq(a.port, cases[i].port);
		cluster_addr_free(&a);
	}
}
END_TEST

START_TEST(test_key_file)
{
	const struct provider_conf *p;
	struct config *conf;

	/* Relative to the config's directory; the newline stripped. */
	conf = load_ok(CONF("keyfile.conf"));
	ck_assert_ptr_nonnull(p = config_provider(conf, "openai"));
	ck_assert_str_eq(p->api_key, "sk-test-file");
	config_free(conf);
}
END_TEST

START_TEST(test_key_file_absolute)
{
	char *key, *path, *text, *errors;
	struct config *conf;

	key = write_file("abs.key", "sk-absolute\n\n");
	xasprintf(&text,
	    "providers = ( { name = \"x\"; type = \"openai\";\n"
	    "  api_key_file = \"%s\"; } );\n",
	    key);
	path = write_file("abs.conf", text);
	free(text);
	/* An absolute path ignores CREDENTIALS_DIRECTORY. */
	setenv("CREDENTIALS_DIRECTORY", "/nonexistent", 1);
	conf = load_ok(path);
	ck_assert_str_eq(conf->providers[0].api_key, "sk-absolute");
	config_free(conf);

	/* Unreadable: the error names the file and the line. */
	ck_assert_int_eq(chmod(key, 0), 0);
	if (geteuid() != 0) { /* root reads it anyway */
		errors = load_fail(path);
		xasprintf(&text,
		    "%s:2: cannot read api_key_file '%s': "
		    "Permission denied\n",
		    path, key);
		ck_assert_str_eq(errors, text);
		free(errors);
		free(text);
	}
	ck_assert_int_eq(unlink(key), 0);
	errors = load_fail(path);
	xasprintf(&text,
	    "%s:2: cannot read api_key_file '%s': No such file "
	    "or directory\n",
	    path, key);
	ck_assert_str_eq(errors, text);
	free(errors);
	free(text);
	free(path);
	free(key);
}
END_TEST

START_TEST(test_key_credentials)
{
	struct config *conf;
	char *errors;

	/* systemd LoadCredential=: relative paths are taken there. */
	setenv("CREDENTIALS_DIRECTORY", CONF("creds"), 1);
	conf = load_ok(CONF("creds.conf"));
	ck_assert_str_eq(conf->providers[0].api_key, "sk-ant-cred");
	config_free(conf);

	/* ...and only there, not next to the config. */
	errors = load_fail(CONF("keyfile.conf"));
	ck_assert_str_eq(errors,
	    CONF(
	        "keyfile.conf") ":3: cannot read "
	                        "api_key_file '" CONF(
	                            "creds") "/keys/openai.key': No such file or "
	                                     "directory\n");
	free(errors);
}
END_TEST

START_TEST(test_key_env)
{
	struct config *conf;

	setenv("LLMGATE_TEST_KEY", "sk-from-env", 1);
	conf = load_ok(CONF("env.conf"));
	ck_assert_str_eq(config_provider(conf, "set")->api_key, "sk-from-env");
	/* An unset variable is no error: the provider has no key. */
	ck_assert_ptr_null(config_provider(conf, "unset")->api_key);
	ck_assert_str_eq(config_provider(conf, "inline")->api_key, "sk-inline");
	config_free(conf);

	/* Set but empty counts as unset. */
	setenv("LLMGATE_TEST_KEY", "", 1);
	conf = load_ok(CONF("env.conf"));
	ck_assert_ptr_null(config_provider(conf, "set")->api_key);
	config_free(conf);
}
END_TEST

/* A route step's fallback_on and reject: parsed, and refused when bad. */
START_TEST(test_route_fallback)
{
	struct config *conf;
	const struct route_conf *rc;
	char *path, *errors;

	path = write_file("fb.conf",
	    "providers = ( { name = \"m\"; type = \"mock\"; } );\n"
	    "routes = ( { name = \"r\"; targets = (\n"
	    "  { target = \"m/a\"; fallback_on = [ \"rate_limited\", "
	    "\"bad_request\" ];\n"
	    "    reject = [ \"length\", \"empty\", \"match:^no\" ]; },\n"
	    "  \"m/b\" ); } );\n");
	conf = load_ok(path);
	rc = config_route(conf, "r");
	ck_assert_ptr_nonnull(rc);
	ck_assert_uint_eq(rc->ntargets, 2);
	ck_assert_uint_eq(rc->over[0].has,
	    TARGET_HAS_FALLBACK_ON | TARGET_HAS_REJECT);
	ck_assert_uint_eq(rc->over[0].fb.on,
	    1u << LLMGATE_RATE_LIMITED | 1u << LLMGATE_BAD_REQUEST);
	ck_assert_uint_eq(rc->over[0].fb.reject,
	    FALLBACK_REJECT_LENGTH | FALLBACK_REJECT_EMPTY);
	ck_assert_uint_eq(rc->over[0].fb.nre, 1);
	ck_assert_str_eq(rc->over[0].fb.pat[0], "^no");
	ck_assert_uint_eq(rc->over[1].has, 0);
	config_free(conf);
	free(path);

	path = write_file("fb-bad.conf",
	    "providers = ( { name = \"m\"; type = \"mock\"; } );\n"
	    "routes = ( { name = \"r\"; targets = (\n"
	    "  { target = \"m/a\"; fallback_on = [ \"rate_limit\" ]; },\n"
	    "  { target = \"m/b\"; reject = [ \"match:(\" ]; },\n"
	    "  { target = \"m/c\"; reject = [ \"short\" ]; },\n"
	    "  { target = \"nope/d\"; reject = [ \"match:x\" ]; } ); } );\n");
	errors = load_fail(path);
	ck_assert_msg(strstr(errors,
	                  ":3: fallback_on: unknown error class "
	                  "'rate_limit'") != NULL,
	    "%s", errors);
	ck_assert_msg(strstr(errors,
	                  ":4: reject: pattern '(' is not a valid "
	                  "regular expression") != NULL,
	    "%s", errors);
	ck_assert_msg(strstr(errors, ":5: reject: unknown condition 'short'") !=
	        NULL,
	    "%s", errors);
	ck_assert_msg(strstr(errors, ":6: target 'nope/d': unknown provider") !=
	        NULL,
	    "%s", errors);
	free(errors);
	free(path);
}
END_TEST

START_TEST(test_include)
{
	char *errors = load_fail(CONF("include.conf"));

	ck_assert_str_eq(errors,
	    CONF("include.inc") ":3: unknown setting "
	                        "'rmp' (did you mean 'rpm'?)\n");
	free(errors);
}
END_TEST

START_TEST(test_errors_discarded)
{
	/* errors may be NULL when the caller only wants yes or no. */
	ck_assert_ptr_null(config_load(CONF("errors-misc.conf"), NULL));
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_default);
	tcase_add_test(tc, test_example);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_models);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_errors_provider);
	tcase_add_test(tc, test_errors_misc);
	tcase_add_test(tc, test_errors_types);
	tcase_add_test(tc, test_errors_keys);
	tcase_add_test(tc, test_frame_output);
	tcase_add_test(tc, test_too_many);
	tcase_add_test(tc, test_cluster);
	tcase_add_test(tc, test_cluster_addr);
	tcase_add_test(tc, test_key_file);
	tcase_add_test(tc, test_key_file_absolute);
	tcase_add_test(tc, test_key_credentials);
	tcase_add_test(tc, test_key_env);
	tcase_add_test(tc, test_include);
	tcase_add_test(tc, test_route_fallback);
	tcase_add_test(tc, test_errors_discarded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	log_init(0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
