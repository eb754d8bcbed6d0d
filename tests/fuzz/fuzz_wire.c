/*
 * fuzz_wire.c: the HTTP front's request parsing (front-wire.c on
 * http-parser): bytes, cut into feeds where the input's first byte says,
 * become whole requests in order or one refusal (400, 413, 431), never
 * more bytes used than fed, and every whole request has a path, a body
 * within the limit and headers that can be looked up.
 */
#include <string.h>

#include "llmgated.h"
#include "fuzz.h"

#define FUZZ_WIRE_BODY_MAX 4096

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct front_wire_msg *m;
	const char *p, *path, *body;
	size_t step, off = 0, end, used, len;
	int rc, status;

	if (size < 1)
		return 0;
	step = (size_t)data[0] + 1;
	p = (const char *)data + 1;
	size--;
	m = front_wire_msg_new(FUZZ_WIRE_BODY_MAX);
	while (off < size) {
		end = off + step < size ? off + step : size;
		rc =
		    front_wire_msg_parse(m, p + off, end - off, &used, &status);
		if (used > end - off)
			fuzz_fail("used %zu of %zu", used, end - off);
		if (rc == -1) {
			if (status != 400 && status != 413 && status != 431)
				fuzz_fail("refused with %d", status);
			break;
		}
		if (rc == 0 && used != end - off)
			fuzz_fail("more needed, but %zu of %zu used", used,
			    end - off);
		if (rc == 1) {
			(void)front_wire_msg_get(m, "Content-Type", &path,
			    &body, &len);
			if (path == NULL || body == NULL ||
			    len > FUZZ_WIRE_BODY_MAX || strlen(body) > len)
				fuzz_fail("a request without its parts");
		}
		off += used;
		if (rc == 1 && used == 0 && off < size) {
			/* Nothing used for a whole request: none to come. */
			break;
		}
	}
	front_wire_msg_free(m);
	return 0;
}
