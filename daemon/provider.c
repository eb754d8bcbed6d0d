/*
 * provider.c: the table of provider types. Each type is a const struct of
 * function pointers in its own provider-*.c file; config-provider.c looks
 * types up here by the name a config's `type` setting gives. It also reads
 * the error bodies every adapter meets: compatible servers answer in each
 * other's shapes (llama.cpp's Anthropic endpoint sends OpenAI's), so any
 * adapter reads any shape and knows every server's context-overflow signs.
 */
#include <stdio.h>
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

/*
 * The fields of an error body, whichever shape it came in:
 * OpenAI's {"error":{message,type,code,param}}, Anthropic's
 * {"type":"error","error":{type,message}}, Gemini's
 * {"error":{code,status,message,details}} (the stream endpoint wraps it
 * in a one-element array), a plain {"error":"text"} (Ollama), the flat
 * {"object":"error",message,type,code} of older vLLM, {"message":...} and
 * FastAPI's {"detail":"..."}. The strings point into root.
 */
void
provider_err_fields(json_t *root, struct provider_err *e)
{
	json_t *err, *code;
	char *end;
	long v;

	memset(e, 0, sizeof *e);
	if (json_is_array(root))
		root = json_array_get(root, 0);
	if (!json_is_object(root))
		return;

	err = json_object_get(root, "error");
	if (json_is_string(err)) {
		e->message = json_string_value(err);
		return;
	}
	if (!json_is_object(err))
		err = root;
	e->obj = err;

	e->message = json_string_value(json_object_get(err, "message"));
	if (e->message == NULL)
		e->message = json_string_value(json_object_get(err, "detail"));
	e->type = json_string_value(json_object_get(err, "type"));
	/* The flat shape's "type" may be the envelope's own "error". */
	if (err == root && e->type != NULL && strcmp(e->type, "error") == 0)
		e->type = NULL;
	e->status = json_string_value(json_object_get(err, "status"));
	code = json_object_get(err, "code");
	if (json_is_string(code))
		e->code = json_string_value(code);
	else if (json_is_integer(code)) {
		snprintf(e->codebuf, sizeof e->codebuf, "%lld",
		    (long long)json_integer_value(code));
		e->code = e->codebuf;
	}
	/* vLLM, llama.cpp, OpenRouter, Azure and Gemini put the HTTP status
	 * in code. */
	if (e->code != NULL) {
		v = strtol(e->code, &end, 10);
		if (end != e->code && *end == '\0' && v >= 100 && v <= 599)
			e->http = v;
	}
}

/* Type or code names that mean the prompt does not fit. */
static const char *provider_context_names[] = {
	"context_length_exceeded",   /* OpenAI, Azure, Groq, Together */
	"exceed_context_size_error", /* llama.cpp */
	"request_too_large",         /* Anthropic 413 */
};

/* Message markers of the same, compared without case. */
static const char *provider_context_markers[] = {
	"maximum context length", /* OpenAI, vLLM, Groq, Together */
	"context length",         /* Ollama: "input length exceeds the
					   context length" */
	"exceeds the available context size",   /* llama.cpp */
	"longer than the maximum model length", /* vLLM V1 */
	"`max_new_tokens` must be <=",          /* Together (TGI) */
	"prompt is too long",                   /* Anthropic */
	"exceed context limit",                 /* Anthropic */
	"exceeds the maximum number of tokens", /* Gemini */
};

/*
 * Whether an error says the request is too long for the model's context
 * window: no retry helps, a target with a bigger window may.
 */
int
provider_err_context(const struct provider_err *e)
{
	const char *msg = e->message;
	size_t i;

	for (i = 0; i <
	     sizeof provider_context_names / sizeof provider_context_names[0];
	     i++) {
		if ((e->code != NULL &&
		        strcmp(e->code, provider_context_names[i]) == 0) ||
		    (e->type != NULL &&
		        strcmp(e->type, provider_context_names[i]) == 0))
			return 1;
	}
	if (msg == NULL)
		return 0;
	for (i = 0; i < sizeof provider_context_markers /
	         sizeof provider_context_markers[0];
	     i++) {
		if (strcasestr(msg, provider_context_markers[i]) != NULL)
			return 1;
	}
	/* Gemini's older wording: "The input token count (N) exceeds the
	 * maximum number of tokens allowed (M)" says it, newer ones "input
	 * token count ... exceeds the maximum". */
	if (strcasestr(msg, "input token count") != NULL &&
	    strcasestr(msg, "exceeds the maximum") != NULL)
		return 1;
	/* OpenAI: one request larger than the per-minute token bucket
	 * never fits. */
	if (strcasestr(msg, "request too large") != NULL &&
	    (strcasestr(msg, "(TPM)") != NULL ||
	        strcasestr(msg, "tokens per min") != NULL))
		return 1;
	return 0;
}
