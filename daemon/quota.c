/*
 * quota.c: what clients may make the daemon hold, whichever front they
 * came through: one budget per user for the native socket and the HTTP
 * front together. Per user, requests in flight (max_calls_per_uid: calls
 * and acquires) and request bytes held (max_bytes_per_uid: the requests of
 * those, and frames still arriving); for all clients, max_memory (those
 * plus replies queued). A front asks before it takes work on and says
 * when the work is over; what it does with a refusal is its own (the
 * native socket answers overloaded, the HTTP front 429 or 503).
 */
#include <stdio.h>
#include <stdlib.h>

#include "llmgated.h"

struct quota_user {
	uid_t uid;
	unsigned requests; /* calls and acquires in flight */
	size_t bytes;      /* their requests, unfinished frames */
	struct quota_user *next;
};

static struct quota_user *quota_users;
static size_t quota_req_total; /* requests in flight */
static size_t quota_in_total;  /* unfinished frames' buffers */
static size_t quota_out_total; /* replies queued */

/* uid's budget, made on first use; it lives until quota_free_all(). */
struct quota_user *
quota_user(uid_t uid)
{
	struct quota_user *u;

	for (u = quota_users; u != NULL; u = u->next) {
		if (u->uid == uid)
			return u;
	}
	u = xcalloc(1, sizeof *u);
	u->uid = uid;
	u->next = quota_users;
	quota_users = u;
	return u;
}

size_t
quota_held(void)
{
	return quota_req_total + quota_in_total + quota_out_total;
}

enum quota_verdict
quota_room(const struct quota_user *u, size_t add, char *msg, size_t len)
{
	if (cfg->max_bytes_per_uid != 0 &&
	    u->bytes + add > cfg->max_bytes_per_uid) {
		snprintf(msg, len,
		    "uid %ld has %zu request bytes held, the "
		    "most for one user is %u (max_bytes_per_uid)",
		    (long)u->uid, u->bytes, cfg->max_bytes_per_uid);
		return QUOTA_BYTES;
	}
	if (cfg->max_memory != 0 && quota_held() + add > cfg->max_memory) {
		snprintf(msg, len,
		    "llmgated holds %zu bytes for its clients, "
		    "the most is %u (max_memory): try again later",
		    quota_held(), cfg->max_memory);
		return QUOTA_MEMORY;
	}
	return QUOTA_OK;
}

enum quota_verdict
quota_request(struct quota_user *u, size_t bytes, char *msg, size_t len)
{
	enum quota_verdict v;

	if (cfg->max_calls_per_uid != 0 &&
	    u->requests >= cfg->max_calls_per_uid) {
		snprintf(msg, len,
		    "uid %ld has %u calls and acquires in "
		    "flight, the most for one user (max_calls_per_uid)",
		    (long)u->uid, u->requests);
		return QUOTA_CALLS;
	}
	if ((v = quota_room(u, bytes, msg, len)) != QUOTA_OK)
		return v;
	u->requests++;
	u->bytes += bytes;
	quota_req_total += bytes;
	return QUOTA_OK;
}

void
quota_request_end(struct quota_user *u, size_t bytes)
{
	u->requests--;
	u->bytes -= bytes;
	quota_req_total -= bytes;
}

void
quota_input(struct quota_user *u, size_t was, size_t now)
{
	u->bytes = u->bytes - was + now;
	quota_in_total = quota_in_total - was + now;
}

void
quota_output(size_t queued, size_t written)
{
	quota_out_total = quota_out_total + queued - written;
}

void
quota_free_all(void)
{
	struct quota_user *u;

	while ((u = quota_users) != NULL) {
		quota_users = u->next;
		free(u);
	}
}
