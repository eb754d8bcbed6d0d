/*
 * fuzz_gemini.c: the Gemini generateContent adapter: parse, classify and
 * stream events on arbitrary bytes, driven by fuzz_provider.c.
 */
#include "llmgated.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_provider(&provider_gemini, data, size);
}
