/*
 * main.c: llmgated's entry point: options, config, then the event loop.
 */
#include <sys/prctl.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "llmgated.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/llmgate/llmgated.conf"

static void __attribute__((noreturn)) usage(int rc)
{
	fprintf(rc == 0 ? stdout : stderr,
	    "usage: llmgated [-c FILE] [-s SOCKET] [-v] [--check-config] "
	    "[--version]\n"
	    "  -c, --config FILE   config file (default %s if it exists,\n"
	    "                      else the embedded default)\n"
	    "  -s, --socket PATH   listen here (overrides the config)\n"
	    "  -v, --verbose       more logging (repeat for debug)\n"
	    "  --check-config      validate the config, print problems with\n"
	    "                      their line numbers, exit 0 or 1\n"
	    "  --version           print the version\n",
	    DEFAULT_CONFIG);
	exit(rc);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = { { "config", required_argument,
		                                      NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	const char *conf = NULL, *sock = NULL, *path;
	char *errors = NULL, *cause = NULL, buf[512];
	int ch, verbose = 0, check = 0, rc;

	/*
	 * Before any key is read: no core dump holds them, and processes
	 * of our uid cannot ptrace us or read our memory through /proc.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		fprintf(stderr, "llmgated: prctl(PR_SET_DUMPABLE): %s\n",
		    strerror(errno));

	while ((ch = getopt_long(argc, argv, "c:s:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'C':
			check = 1;
			break;
		case 'V':
			printf("llmgated %s\n", LLMGATE_VERSION);
			return 0;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	log_init(verbose);

	if (conf == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
		conf = DEFAULT_CONFIG;
	cfg = config_load(conf, &errors);
	if (check) {
		if (cfg == NULL) {
			fputs(errors, stderr);
			free(errors);
			return 1;
		}
		printf("%s: configuration OK\n",
		    conf != NULL ? conf : "embedded default");
		config_free(cfg);
		return 0;
	}
	if (cfg == NULL) {
		fprintf(stderr, "%s", errors);
		fatalx("cannot start: the configuration has errors");
	}
	config_ref(cfg);
	if (cfg->log_level >= 0 && verbose == 0)
		log_set_level(cfg->log_level);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatalx("curl_global_init failed");
	if ((ev_base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (http_init(ev_base) != 0)
		fatalx("cannot start the HTTP engine");
	server_signals();
	/* The same rule as the clients' (proto/socket.c), plus the config. */
	if ((path = proto_socket_path(sock, cfg->socket, buf, sizeof buf)) ==
	    NULL)
		fatalx("socket path too long");
	if (server_listen(path, cfg->socket_mode, &cause) != 0)
		fatalx("%s", cause);
	log_info("listening on %s", path);
	/* The embedded default's port may be taken: a warning, then. */
	if (front_http_start(path, cfg->path != NULL, &cause) != 0)
		fatalx("%s", cause);
	if (metrics_listen(ev_base, cfg->metrics_listen, &cause) != 0)
		fatalx("%s", cause);
	domain_reconfigure(cfg, now_ms());
	/* Before any call: a restart must not burst at a cooling target. */
	state_restore();

	rc = server_run();

	http_shutdown();
	lease_free_all();
	target_free_all();
	domain_free_all();
	scrub_free();
	config_unref(cfg);
	clients_free_all();
	event_base_free(ev_base);
	curl_global_cleanup();
	return rc;
}
