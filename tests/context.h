/*
 * context.h: the context-overflow error bodies of tests/data/context, one
 * per server (OpenAI, Groq, Together, vLLM, llama.cpp, Ollama, Anthropic,
 * Gemini) in that server's own shape. Every adapter must read each as
 * context_length, whichever API the server was reached through.
 */
#ifndef CONTEXT_H
#define CONTEXT_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *context_files[] = {
	"openai.json",
	"groq.json",
	"together.json",
	"vllm.json",
	"vllm-flat.json",
	"vllm-v1.json",
	"llamacpp.json",
	"ollama.json",
	"anthropic.json",
	"gemini.json",
};

/* The file's bytes, NUL-terminated; the caller frees them. */
static char *
context_load(const char *name, size_t *lenp)
{
	char path[512], *p;
	FILE *f;
	long n;

	snprintf(path, sizeof path, "%s/context/%s", TEST_DATA, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_gt(n, 0);
	rewind(f);
	p = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	*lenp = (size_t)n;
	return p;
}

/*
 * Classify context_files[i] as a 400 answer and check the verdict: the
 * class, the status, and the server's own message rather than "HTTP 400".
 */
static void
context_check(const struct provider_type *pt, size_t i)
{
	struct reply r;
	size_t len;
	char *body;

	reply_init(&r, NULL, NULL);
	body = context_load(context_files[i], &len);
	pt->classify(&r, 400, body, len);
	ck_assert_msg(r.cls == LLMGATE_CONTEXT_LENGTH,
	    "%s through %s: "
	    "class %s",
	    context_files[i], pt->name, llmgate_class_name(r.cls));
	ck_assert_uint_eq(r.status, 400);
	ck_assert_msg(r.message != NULL && strstr(r.message, "HTTP") == NULL,
	    "%s through %s: message %s", context_files[i], pt->name,
	    r.message != NULL ? r.message : "(none)");
	free(body);
	reply_free(&r);
}

#endif
