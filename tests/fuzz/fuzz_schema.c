/*
 * fuzz_schema.c: the JSON Schema validator on arbitrary bytes. The input
 * is a schema, a NUL byte and a reply to check against it; without a NUL
 * the schema is checked against itself. A schema that compiles validates
 * the reply as text (fences, whitespace, not JSON at all) the way repair.c
 * does, capped at a number of errors taken from the input's length.
 */
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct schema *s;
	char *text, *inst, *cause = NULL, *errors = NULL;
	const char *nul;
	int max, n;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	if (size != 0)
		memcpy(text, data, size);
	text[size] = '\0';
	nul = memchr(text, '\0', size);
	inst = nul != NULL ? text + (nul - text) + 1 : text;

	if ((s = schema_compile(text, &cause)) == NULL) {
		fuzz_assert(cause != NULL);
		free(cause);
		free(text);
		return 0;
	}
	fuzz_assert(cause == NULL);

	max = (int)(size % 9) - 1; /* -1 and 0: no cap */
	n = schema_validate_text(s, inst, &errors, max);
	fuzz_assert(n >= 0);
	fuzz_assert((n == 0) == (errors == NULL));
	if (max > 0)
		fuzz_assert(n <= max);
	if (errors != NULL) {
		fuzz_assert(*errors != '\0');
		fuzz_assert(errors[strlen(errors) - 1] == '\n');
	}
	free(errors);

	schema_free(s);
	free(text);
	return 0;
}
