/*
 * provider-azure.c: Azure OpenAI (the deployments API with api-version).
 *
 * Bodies, streams, finish reasons and error bodies are OpenAI's, so only
 * the request line and the key differ: the deployment (llmgate's model
 * name) and api-version go in the URL, the key in an api-key header, and
 * the body carries no model.
 */
#include <stdlib.h>
#include <string.h>

#include "llmgated.h"

/* A GA version (§5.1), for a provider configured without api_version. */
#define AZURE_API_VERSION "2024-10-21"

static int
azure_build(struct http_req *hr, const struct provider_conf *prov,
    const char *model, const struct llmgate_request *req, char **cause)
{
	struct curl_slist *l;
	const char *version;
	char *dep = NULL, *ver = NULL, *key;
	size_t n;

	if (prov->base_url == NULL) {
		xasprintf(cause, "provider '%s': no base_url", prov->name);
		return -1;
	}
	version =
	    prov->api_version != NULL ? prov->api_version : AZURE_API_VERSION;
	/* Both end up in the URL; a stray '/' or '&' must not reshape it. */
	dep = curl_easy_escape(NULL, model, 0);
	ver = curl_easy_escape(NULL, version, 0);
	if (dep == NULL || ver == NULL) {
		xasprintf(cause, "cannot escape the deployment name");
		goto fail;
	}
	if (openai_build_body(hr, NULL, req, cause) != 0)
		goto fail;

	n = strlen(prov->base_url);
	while (n > 0 && prov->base_url[n - 1] == '/')
		n--;
	xasprintf(&hr->url,
	    "%.*s/openai/deployments/%s/chat/completions?api-version=%s",
	    (int)n, prov->base_url, dep, ver);

	/* Exactly one of api-key or an Entra ID bearer token (§5.1). */
	if (prov->api_key != NULL) {
		xasprintf(&key, "api-key: %s", prov->api_key);
		l = curl_slist_append(hr->headers, key);
		free(key);
		if (l == NULL) {
			xasprintf(cause, "cannot allocate request headers");
			goto fail;
		}
		hr->headers = l;
	}
	curl_free(dep);
	curl_free(ver);
	return 0;

fail:
	curl_free(dep);
	curl_free(ver);
	http_req_free(hr);
	return -1;
}

const struct provider_type provider_azure = {
	.name = "azure",
	.start = http_start,
	.stop = http_stop,
	.build = azure_build,
	.parse = openai_parse,
	.event = openai_event,
	.classify = openai_classify,
};
