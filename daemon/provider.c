/*
 * provider.c: the table of provider types. Each type is a const struct of
 * function pointers in its own provider-*.c file; config.c looks types up
 * here by the name a config's `type` setting gives.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

static const struct provider_type *provider_types[] = {
	&provider_openai,
	&provider_azure,
	&provider_anthropic,
	&provider_gemini,
	&provider_mock,
};

const struct provider_type *
provider_type_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof provider_types / sizeof provider_types[0]; i++) {
		if (strcmp(provider_types[i]->name, name) == 0)
			return provider_types[i];
	}
	return NULL;
}

void
http_req_free(struct http_req *hr)
{
	free(hr->url);
	free(hr->body);
	if (hr->headers != NULL)
		curl_slist_free_all(hr->headers);
	memset(hr, 0, sizeof *hr);
}
