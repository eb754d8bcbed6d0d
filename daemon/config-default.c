/*
 * config-default.c: the configuration llmgated runs with when there is no
 * config file, parsed by the same code as a file.
 */
#include "llmgated.h"

/*
 * With no config file: the three public providers with keys from the
 * environment, and the mock provider so that a fresh machine answers
 * without any key. Short backoff, so the quick start stays quick.
 */
const char config_default_text[] =
    "# llmgated's embedded default configuration.\n"
    "providers = (\n"
    "  { name = \"openai\"; type = \"openai\";\n"
    "    base_url = \"https://api.openai.com/v1\";\n"
    "    api_key_env = \"OPENAI_API_KEY\"; },\n"
    "  { name = \"anthropic\"; type = \"anthropic\";\n"
    "    base_url = \"https://api.anthropic.com/v1\";\n"
    "    api_key_env = \"ANTHROPIC_API_KEY\"; },\n"
    "  { name = \"google\"; type = \"gemini\";\n"
    "    base_url = \"https://generativelanguage.googleapis.com/v1beta\";\n"
    "    api_key_env = \"GEMINI_API_KEY\"; },\n"
    "  { name = \"mock\"; type = \"mock\"; }\n"
    ");\n"
    "routes = ( { name = \"default\"; targets = [ \"mock/echo\" ]; } );\n"
    "http = { listen = ( \"127.0.0.1:8750\", \"unix:\" ); };\n"
    "retry = { attempts = 3; initial_ms = 200; max_ms = 5000;"
    " multiplier = 2.0; jitter = \"full\"; };\n";
