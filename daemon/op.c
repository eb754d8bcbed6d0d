/*
 * op.c: the protocol front's op table. Each message type the daemon accepts
 * has one handler; conn.c decodes, this file decides what a message means.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmgated.h"

struct op_entry {
	void (*fn)(struct conn *, struct proto_msg *);
	int admin; /* root, the daemon's uid, admin_group */
};

static void
op_hello(struct conn *c, struct proto_msg *m)
{
	struct proto_hello h;
	char msg[128];

	if (conn_hello_done(c)) {
		conn_send_error(c, m->id, LLMGATE_INVALID_REQUEST,
		    "hello was already exchanged");
		return;
	}
	if (m->u.hello.version != PROTO_VERSION) {
		snprintf(msg, sizeof msg,
		    "protocol version %u not supported; "
		    "this daemon speaks %u",
		    m->u.hello.version, PROTO_VERSION);
		conn_fail(c, msg);
		return;
	}
	conn_set_hello(c, m->u.hello.name);
	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.server = "llmgated " LLMGATE_VERSION;
	h.max_frame = cfg->max_frame;
	proto_enc_hello(conn_buf(c), &h);
	conn_send(c);
}

/*
 * A drain lets the calls in flight finish; a client that was connected
 * before it hears that no new work starts here (overloaded: worth trying
 * again, on the daemon that replaces this one).
 */
static int
op_refused_draining(struct conn *c, struct proto_msg *m)
{
	if (!server_draining())
		return 0;
	conn_send_error(c, m->id, LLMGATE_OVERLOADED,
	    "llmgated is shutting down: no new calls or leases");
	return 1;
}

static void
op_call(struct conn *c, struct proto_msg *m)
{
	if (op_refused_draining(c, m))
		return;
	/* The request's contents live in the zone; the call copies its
	 * head and keeps the zone. */
	conn_call_start(c, m->id, &m->u.call, proto_msg_take_zone(m));
}

static void
op_cancel(struct conn *c, struct proto_msg *m)
{
	conn_call_cancel(c, m->id);
}

static void
op_ping(struct conn *c, struct proto_msg *m)
{
	proto_enc_simple(conn_buf(c), PROTO_PONG, m->id);
	conn_send(c);
}

static int op_admin(struct conn *);

/*
 * Status; with the peers connected now and their classes: all of them for
 * an admin, else the asker's own user's.
 */
static void
op_status(struct conn *c, struct proto_msg *m)
{
	json_t *st = server_status(), *peers = json_array();
	uid_t only = op_admin(c) ? (uid_t)-1 : conn_uid(c);

	conn_peers(peers, only);
	front_http_peers(peers, only);
	json_object_set_new(st, "peers", peers);

	proto_enc_status(conn_buf(c), m->id, st);
	json_decref(st);
	conn_send(c);
}

static void
op_metrics(struct conn *c, struct proto_msg *m)
{
	char *text = metrics_render();

	proto_enc_metrics(conn_buf(c), m->id, text);
	free(text);
	conn_send(c);
}

static void
op_reload(struct conn *c, struct proto_msg *m)
{
	char *cause = NULL;

	if (server_reload(&cause) != 0) {
		conn_send_error(c, m->id, LLMGATE_INVALID_REQUEST, cause);
		free(cause);
		return;
	}
	proto_enc_simple(conn_buf(c), PROTO_OK, m->id);
	conn_send(c);
}

static void
op_acquire(struct conn *c, struct proto_msg *m)
{
	if (op_refused_draining(c, m))
		return;
	conn_lease_acquire(c, m->id, &m->u.acquire);
}

static void
op_report(struct conn *c, struct proto_msg *m)
{
	char *cause = NULL;

	if (lease_report(&m->u.report, conn_uid(c), &cause) != 0) {
		conn_send_error(c, m->id, LLMGATE_INVALID_REQUEST, cause);
		free(cause);
		return;
	}
	proto_enc_simple(conn_buf(c), PROTO_OK, m->id);
	conn_send(c);
}

static const struct op_entry op_table[PROTO_TYPE_MAX] = {
	[PROTO_HELLO] = { op_hello, 0 },
	[PROTO_CALL] = { op_call, 0 },
	[PROTO_CANCEL] = { op_cancel, 0 },
	[PROTO_PING] = { op_ping, 0 },
	[PROTO_STATUS] = { op_status, 0 },
	[PROTO_METRICS] = { op_metrics, 0 },
	[PROTO_RELOAD] = { op_reload, 1 },
	[PROTO_ACQUIRE] = { op_acquire, 0 },
	[PROTO_REPORT] = { op_report, 0 },
};

/*
 * May this client use admin ops? Root, the daemon's own uid, or a member
 * of admin_group. Membership comes from the user database at the time of
 * the op (the peer's user, getgrouplist), so adding a user to the group
 * needs no restart; admin ops are rare, so an NSS lookup here is fine.
 */
static int
op_admin(struct conn *c)
{
	uid_t uid = conn_uid(c);
	struct passwd *pw;
	gid_t *groups;
	int i, n = 32, found = 0;

	if (uid == 0 || uid == geteuid())
		return 1;
	if (cfg->admin_group == NULL || uid == (uid_t)-1 ||
	    (pw = getpwuid(uid)) == NULL)
		return 0;
	if (pw->pw_gid == cfg->admin_gid)
		return 1;
	groups = xreallocarray(NULL, (size_t)n, sizeof *groups);
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) == -1) {
		/* n is now the number there is. */
		groups = xreallocarray(groups, (size_t)n, sizeof *groups);
		if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) == -1)
			n = 0;
	}
	for (i = 0; i < n && !found; i++)
		found = groups[i] == cfg->admin_gid;
	free(groups);
	return found;
}

void
op_dispatch(struct conn *c, struct proto_msg *m)
{
	const struct op_entry *op = NULL;
	char msg[160];

	if (m->type > PROTO_UNKNOWN && m->type < PROTO_TYPE_MAX)
		op = &op_table[m->type];
	if (!conn_hello_done(c) && m->type != PROTO_HELLO) {
		conn_fail(c, "the first message must be hello");
		return;
	}
	if (op == NULL || op->fn == NULL) {
		snprintf(msg, sizeof msg, "unknown message type '%.64s'",
		    m->type == PROTO_UNKNOWN && m->type_name != NULL ?
		        m->type_name :
		        proto_type_name(m->type));
		conn_send_error(c, m->id, LLMGATE_INVALID_REQUEST, msg);
		return;
	}
	if (op->admin && !op_admin(c)) {
		if (cfg->admin_group != NULL)
			snprintf(msg, sizeof msg,
			    "%s is for root, uid %ld and "
			    "group '%.64s' only",
			    proto_type_name(m->type), (long)geteuid(),
			    cfg->admin_group);
		else
			snprintf(msg, sizeof msg,
			    "%s is for root or uid %ld "
			    "only",
			    proto_type_name(m->type), (long)geteuid());
		conn_send_error(c, m->id, LLMGATE_PERMISSION, msg);
		return;
	}
	op->fn(c, m);
}
