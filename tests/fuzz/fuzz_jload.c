/*
 * fuzz_jload.c: jload() against json_loadb() on arbitrary bytes. Both must
 * decode to equal trees or both refuse, with the same message: the fast
 * path may only ever take on what it decodes exactly as jansson does.
 */
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	json_error_t e1, e2;
	json_t *a, *b, *f;

	a = jload(text, size, &e1);
	b = json_loadb(text, size, 0, &e2);
	if ((a == NULL) != (b == NULL))
		fuzz_fail("jload %s, jansson %s", a == NULL ? "refused" :
		    "decoded", b == NULL ? e2.text : "decoded");
	if (a != NULL && !json_equal(a, b))
		fuzz_fail("the trees differ");
	if (a == NULL && strcmp(e1.text, e2.text) != 0)
		fuzz_fail("errors differ: '%s' and '%s'", e1.text, e2.text);
	/* The fast path alone never takes what jansson refuses. */
	f = jload_fast(text, size);
	if (f != NULL && (b == NULL || !json_equal(f, b)))
		fuzz_fail("the fast path decoded what jansson did not");
	json_decref(f);
	json_decref(a);
	json_decref(b);
	return 0;
}
