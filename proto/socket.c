/*
 * socket.c: where llmgated listens and where clients connect, decided in
 * one place so the two always agree. The first that is set:
 *
 *   1. an explicit path (llmgated -s, llmgate -s, llmgate_connect()'s);
 *   2. $LLMGATE_SOCKET;
 *   3. for the daemon only, its config's `socket` (a client never reads
 *      the daemon's config: a client library must not parse a file that
 *      is not its own, nor depend on the library that reads it);
 *   4. RUNSTATEDIR/llmgate/llmgate.sock, fixed at build time
 *      (/run/llmgate/llmgate.sock unless configure's --runstatedir).
 */
#include <stdio.h>
#include <stdlib.h>

#include "proto.h"

const char *
proto_socket_path(const char *explicit_path, const char *configured, char *buf,
    size_t len)
{
	const char *s;
	int n;

	if (buf == NULL || len == 0)
		return NULL;
	if (explicit_path != NULL && *explicit_path != '\0')
		s = explicit_path;
	else if ((s = getenv("LLMGATE_SOCKET")) != NULL && *s != '\0')
		;
	else if (configured != NULL && *configured != '\0')
		s = configured;
	else
		s = PROTO_DEFAULT_SOCKET;
	n = snprintf(buf, len, "%s", s);
	if (n < 0 || (size_t)n >= len)
		return NULL;
	return buf;
}
