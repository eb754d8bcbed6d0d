/*
 * fuzz_config.c: config_load on arbitrary file contents. The bytes are
 * written to a file in a private temporary directory, which also holds an
 * include file and key files by the names tests/data/config uses, so that
 * @include and api_key_file can succeed as well as fail. A config that
 * loads is walked the way the daemon reads it, then freed.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "llmgated.h"
#include "fuzz.h"

static char fuzz_dir[PATH_MAX];
static char fuzz_path[PATH_MAX];

static const struct {
	const char *name;
	const char *text;
} fuzz_files[] = {
	{ "include.inc",
	    "providers = ( { name = \"x\"; type = \"openai\"; } );\n" },
	{ "keys/openai.key", "sk-fuzz-key\n" },
	{ "keys/empty.key", "\n" },
	{ "anthropic.key", "sk-ant-fuzz\n" },
};

static void
fuzz_write(const char *path, const void *p, size_t len)
{
	ssize_t n;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		fuzz_fail("open %s", path);
	while (len > 0) {
		if ((n = write(fd, p, len)) <= 0)
			fuzz_fail("write %s", path);
		p = (const char *)p + n;
		len -= (size_t)n;
	}
	close(fd);
}

static void
fuzz_cleanup(void)
{
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof fuzz_files / sizeof fuzz_files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", fuzz_dir,
		    fuzz_files[i].name);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/keys", fuzz_dir);
	rmdir(path);
	unlink(fuzz_path);
	rmdir(fuzz_dir);
}

/*
 * libFuzzer does not always run atexit handlers (not after a crash, for
 * one), so run.sh also points TMPDIR into its own directory.
 */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp;
	char path[PATH_MAX];
	size_t i;

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(fuzz_dir, sizeof fuzz_dir, "%s/llmgate-fuzz-config.XXXXXX",
	    tmp);
	if (mkdtemp(fuzz_dir) == NULL)
		fuzz_fail("mkdtemp in %s", tmp);
	snprintf(path, sizeof path, "%s/keys", fuzz_dir);
	if (mkdir(path, 0700) != 0)
		fuzz_fail("mkdir %s", path);
	for (i = 0; i < sizeof fuzz_files / sizeof fuzz_files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", fuzz_dir,
		    fuzz_files[i].name);
		fuzz_write(path, fuzz_files[i].text,
		    strlen(fuzz_files[i].text));
	}
	snprintf(fuzz_path, sizeof fuzz_path, "%s/llmgated.conf", fuzz_dir);
	atexit(fuzz_cleanup);

	/* Key files are looked for next to the config, not elsewhere. */
	unsetenv("CREDENTIALS_DIRECTORY");
	setenv("LLMGATE_FUZZ_KEY", "sk-env-fuzz", 1);
	log_set_level(-1); /* no warnings about key file modes */
	return 0;
}

/* What server.c and call.c look up in a loaded config. */
static void
fuzz_config_walk(const struct config *conf)
{
	const struct provider_conf *pc;
	const struct route_conf *rc;
	struct model_conf mc;
	struct domset ds;
	size_t i, j;

	for (i = 0; i < conf->nproviders; i++) {
		pc = &conf->providers[i];
		fuzz_assert(pc->name != NULL && pc->type != NULL);
		fuzz_assert(config_provider(conf, pc->name) == pc);
		config_limits(pc, NULL, &mc);
		for (j = 0; j < pc->nmodels; j++) {
			fuzz_assert(pc->models[j].name != NULL);
			fuzz_assert(
			    config_model(pc, pc->models[j].name) != NULL);
			config_limits(pc, pc->models[j].name, &mc);
		}
	}
	for (i = 0; i < conf->nroutes; i++) {
		rc = &conf->routes[i];
		fuzz_assert(rc->name != NULL && rc->ntargets != 0);
		fuzz_assert(config_route(conf, rc->name) == rc);
		for (j = 0; j < rc->ntargets; j++)
			(void)strlen(rc->targets[j]);
	}
	/* Quota domains made and matched against every route target. */
	domain_reconfigure(conf, 1000);
	for (i = 0; i < conf->nroutes; i++) {
		for (j = 0; j < conf->routes[i].ntargets; j++) {
			domain_match(conf->routes[i].targets[j], &ds);
			fuzz_assert(ds.n <= DOMAIN_PER_TARGET);
		}
	}
	domain_free_all();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *conf;
	char *errors = NULL;

	fuzz_write(fuzz_path, data, size);
	conf = config_load(fuzz_path, &errors);
	if (conf == NULL) {
		fuzz_assert(errors != NULL && *errors != '\0');
		free(errors);
		return 0;
	}
	fuzz_assert(errors == NULL);
	fuzz_config_walk(conf);
	config_free(conf);
	return 0;
}
