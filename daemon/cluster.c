/*
 * cluster.c: several llmgated hosts share one provider budget through
 * Redis, with hiredis on the daemon's own loop. Two connections: one for
 * commands (the heartbeat, slices), one subscribed to the cluster's
 * channel (holds that one host's 429 puts on a target or a quota domain,
 * limits learned from headers, breakers opening).
 *
 * Budgets: each limited target's request and token buckets exist once, in
 * Redis (PREFIX:b:TARGET:req|tok), refilled by a Lua script on the
 * server's clock; so do each quota domain's (PREFIX:d:NAME:req|tok). A host takes
 * slices of them (slice.c decides how many, from its own rate) into its
 * fed buckets, and admission spends those locally as it would its own
 * budget: a call never waits for Redis while the host has stock. What a
 * host does not need goes back.
 *
 * Client classes' token budgets (clients.c) are calendar windows whose
 * tokens are held at admission, which slices of a refilling bucket do not
 * fit: each host tells Redis, every tick that something changed (else
 * every CLUSTER_CLASS_POLL_MS), the tokens it used since it last did, per
 * window (PREFIX:c:CLASS:m:MINUTE, PREFIX:c:CLASS:d:DAY), and what it
 * holds now (a field of PREFIX:c:CLASS:h that goes stale unless told
 * again), and reads back the windows' totals and the other hosts' holds;
 * admission checks against those, as last seen.
 *
 * Failure: when Redis does not answer (connection refused or lost, or no
 * reply within timeout_ms), every host falls back to its share of each
 * limit (limit / the hosts alive at the last heartbeat), says so once in
 * the log and in status, and reconnects with backoff; back up, the buckets
 * are fed by the cluster again. Nothing here ever blocks the loop.
 *
 * Without a cluster block none of this runs and nothing else changes.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "llmgated.h"

#define CLUSTER_TICK_MS        10   /* slices asked and given back */
#define CLUSTER_BEAT_MS        500  /* heartbeat and health check */
#define CLUSTER_ALIVE_MS       3000 /* a host silent this long is gone */
#define CLUSTER_BACKOFF_MIN_MS 100
#define CLUSTER_BACKOFF_MAX_MS 5000
#define CLUSTER_CLASS_POLL_MS  100 /* a class's budgets read, at least */

enum cluster_state {
	CLUSTER_OFF = 0,
	CLUSTER_CONNECTING,
	CLUSTER_UP,
	CLUSTER_DOWN,
};
static const char *cluster_state_names[] = {
	[CLUSTER_OFF] = "off",
	[CLUSTER_CONNECTING] = "connecting",
	[CLUSTER_UP] = "up",
	[CLUSTER_DOWN] = "down",
};

/*
 * The shared bucket: refilled on Redis's clock at ARGV[1] units a minute
 * up to ARGV[2]; ARGV[3] > 0 takes up to that many, < 0 gives that many
 * back; ARGV[4] is the level of a bucket Redis does not have (full, or
 * empty when the hosts have been spending on their shares meanwhile).
 * Returns { granted, level, ms until one unit is there }.
 */
static const char cluster_lua_take[] =
    "local rate = tonumber(ARGV[1]) "
    "local cap = tonumber(ARGV[2]) "
    "local n = tonumber(ARGV[3]) "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local v = redis.call('HMGET', KEYS[1], 'l', 't') "
    "local l = tonumber(v[1]) "
    "local last = tonumber(v[2]) "
    "if l == nil or last == nil then l = math.min(cap, tonumber(ARGV[4])) "
    "last = now end "
    "if now > last then l = math.min(cap, l + (now - last) * rate / 60000) "
    "end "
    "local g = 0 "
    "if n > 0 then "
    "  g = math.min(n, math.floor(l)) "
    "  if g < 0 then g = 0 end "
    "  l = l - g "
    "else "
    "  l = math.min(cap, l - n) "
    "end "
    "redis.call('HSET', KEYS[1], 'l', tostring(l), 't', tostring(now)) "
    "redis.call('PEXPIRE', KEYS[1], math.ceil(cap * 60000 / rate) + 60000) "
    "local wait = 0 "
    "if l < 1 then wait = math.ceil((1 - l) * 60000 / rate) end "
    "return { g, math.floor(l), wait }";

/*
 * A client class's budgets: KEYS[1] the minute's total, KEYS[2] the
 * day's, KEYS[3] the hosts' holds ("TOKENS MS" by host). ARGV: this
 * host's use since it last told, for the minute and the day; their keys'
 * lives in s; the host; what it holds now; how old a hold may be before
 * it is stale (its host gone). Returns { minute, day, the others' holds }.
 */
static const char cluster_lua_class[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local m = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "local d = redis.call('INCRBY', KEYS[2], ARGV[2]) "
    "redis.call('EXPIRE', KEYS[2], ARGV[4]) "
    "local stale = tonumber(ARGV[7]) "
    "if tonumber(ARGV[6]) > 0 then "
    "  redis.call('HSET', KEYS[3], ARGV[5], ARGV[6] .. ' ' .. now) "
    "else "
    "  redis.call('HDEL', KEYS[3], ARGV[5]) "
    "end "
    "local h = redis.call('HGETALL', KEYS[3]) "
    "local others = 0 "
    "for i = 1, #h, 2 do "
    "  local n, at = string.match(h[i + 1], '^(%d+) (%d+)$') "
    "  if n == nil or tonumber(at) < now - stale then "
    "    redis.call('HDEL', KEYS[3], h[i]) "
    "  elseif h[i] ~= ARGV[5] then "
    "    others = others + tonumber(n) "
    "  end "
    "end "
    "redis.call('PEXPIRE', KEYS[3], stale * 2) "
    "return { m, d, others }";

/* This host is alive; returns how many are. ARGV: host, alive ms. */
static const char cluster_lua_beat[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('ZADD', KEYS[1], now, ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2])) "
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2) "
    "return redis.call('ZCARD', KEYS[1])";

/*
 * Signals in force, for hosts that join or come back later: KEYS[1] a
 * sorted set of "KIND TARGET" by when the signal ends (Redis's clock),
 * KEYS[2] a hash of their numbers ("A B", as published). ARGV: member,
 * ms, numbers, the longest, 1 to replace (a learned limit) or 0 (a hold or
 * a breaker: a shorter one never shortens a longer one).
 */
static const char cluster_lua_keep[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local untl = now + tonumber(ARGV[2]) "
    "local old = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) "
    "if old == nil or untl > old or ARGV[5] == '1' then "
    "  redis.call('ZADD', KEYS[1], untl, ARGV[1]) "
    "  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) "
    "end "
    "redis.call('PEXPIRE', KEYS[1], ARGV[4]) "
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
    "return 1";

/* The signals in force: { member, ms left, numbers, ... }. */
static const char cluster_lua_kept[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now) "
    "for _, m in ipairs(gone) do redis.call('HDEL', KEYS[2], m) end "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
    "local r = {} "
    "local z = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', "
    "'WITHSCORES') "
    "for i = 1, #z, 2 do "
    "  r[#r + 1] = z[i] "
    "  r[#r + 1] = tostring(math.floor(tonumber(z[i + 1]) - now)) "
    "  r[#r + 1] = redis.call('HGET', KEYS[2], z[i]) or '0 0' "
    "end "
    "return r";

static struct {
	enum cluster_state state;
	/* Copied at start: a reload does not move a running cluster. */
	char *addr;
	struct cluster_addr a;  /* addr, parsed */
	struct evdns_base *dns; /* a host name: resolved on the loop */
	struct evdns_getaddrinfo_request *resolving;
	char ip[INET6_ADDRSTRLEN]; /* what the name resolved to */
	char *user;
	char *password;
	char *host;
	char *channel;   /* PREFIX:signal */
	char *hosts_key; /* PREFIX:hosts */
	char *kept_key;  /* PREFIX:signals, and PREFIX:signals:n */
	char *nums_key;
	char *prefix;
	uint32_t slice_ms;
	uint32_t timeout_ms;
	uint32_t expected; /* expected_hosts */

	redisAsyncContext *cmd, *sub;
	redisAsyncContext *dead_cmd, *dead_sub; /* freed off their stack */
	int cmd_ok, sub_ok;
	struct event *tick, *beat, *reap;
	uint64_t beat_sent; /* ms; 0: no heartbeat unanswered */
	uint64_t retry_at;  /* down: reconnect then */
	uint32_t backoff_ms;
	unsigned live; /* hosts alive, last seen; >= 1 */
	char why[128]; /* why down, for status */
	uint64_t downs, signals_sent, signals_received;
} cl;

/* The hosts alive as a state file says, read before cluster_start(). */
static unsigned cluster_saved_hosts;

static void cluster_tick(evutil_socket_t, short, void *);
static void cluster_beat(evutil_socket_t, short, void *);
static void cluster_reap(evutil_socket_t, short, void *);
static void cluster_connect(void);
static void cluster_message(redisAsyncContext *, void *, void *);
static redisReply *cluster_reply(redisAsyncContext *, void *);
static void cluster_resync(void);

int
cluster_active(void)
{
	return cl.state == CLUSTER_UP;
}

static void
cluster_arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
		(suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

/*
 * How many hosts this one assumes share the limits while Redis cannot
 * say: those it last saw alive (at the last heartbeat, or before a
 * restart), at least expected_hosts.
 */
static unsigned
cluster_share(void)
{
	return cl.live > cl.expected ? cl.live : cl.expected;
}

/*
 * Feed a limited budget (a target's or a quota domain's) from the
 * cluster, or give it its share.
 */
static void
cluster_apply(struct ratelimit *rl, struct slice *slice, uint64_t now)
{
	int fed = cl.state == CLUSTER_UP;
	unsigned share = fed ? 0 : cluster_share();

	if (cl.state == CLUSTER_OFF)
		return;
	if (rl->fed == fed && rl->share == share)
		return;
	rl_cluster(rl, fed, share, now);
	slice_failed(&slice[0]);
	slice_failed(&slice[1]);
}

static void
cluster_apply_all(void)
{
	struct target *t;
	struct domain *d;
	uint64_t now = now_ms();

	for (t = target_first(); t != NULL; t = t->next)
		cluster_apply(&t->rl, t->slice, now);
	for (d = domain_first(); d != NULL; d = d->next)
		cluster_apply(&d->rl, d->slice, now);
	clients_cluster(cl.state == CLUSTER_UP,
	    cl.state == CLUSTER_OFF || cl.state == CLUSTER_UP ?
	        0 :
	        cluster_share());
}

void
cluster_target_new(struct target *t)
{
	if (cl.state != CLUSTER_OFF)
		cluster_apply(&t->rl, t->slice, now_ms());
}

/*
 * Redis is away: every host on its share; the connections are freed off
 * hiredis's stack. Logged once per outage.
 */
static void
cluster_down(const char *why)
{
	if (cl.state == CLUSTER_DOWN)
		return;
	/* An outage begins (reconnects that fail are part of it). */
	if (cl.state == CLUSTER_UP || cl.downs == 0) {
		log_warnx("cluster: redis %s unavailable (%s); each host keeps "
		          "to 1/%u of the shared limits until it is back",
		    cl.addr, why, cluster_share());
		cl.downs++;
	}
	snprintf(cl.why, sizeof cl.why, "%s", why);
	cl.state = CLUSTER_DOWN;
	cl.dead_cmd = cl.cmd;
	cl.dead_sub = cl.sub;
	cl.cmd = cl.sub = NULL;
	cl.cmd_ok = cl.sub_ok = 0;
	cl.beat_sent = 0;
	if (cl.dead_cmd != NULL || cl.dead_sub != NULL)
		cluster_arm(cl.reap, 0);
	cl.retry_at = now_ms() + cl.backoff_ms;
	cl.backoff_ms = cl.backoff_ms * 2 > CLUSTER_BACKOFF_MAX_MS ?
	    CLUSTER_BACKOFF_MAX_MS :
	    cl.backoff_ms * 2;
	cluster_apply_all();
}

static void
cluster_reap(evutil_socket_t fd, short events, void *arg)
{
	redisAsyncContext *ac;

	if ((ac = cl.dead_cmd) != NULL) {
		cl.dead_cmd = NULL;
		redisAsyncFree(ac);
	}
	if ((ac = cl.dead_sub) != NULL) {
		cl.dead_sub = NULL;
		redisAsyncFree(ac);
	}
}

static void
cluster_up(void)
{
	if (cl.state == CLUSTER_UP || !cl.cmd_ok || !cl.sub_ok)
		return;
	log_info("cluster: redis %s up as host %s, %u host%s alive", cl.addr,
	    cl.host, cl.live, cl.live == 1 ? "" : "s");
	cl.state = CLUSTER_UP;
	cl.backoff_ms = CLUSTER_BACKOFF_MIN_MS;
	cl.why[0] = '\0';
	cluster_apply_all();
	cluster_resync();
}

/* hiredis freed (or is freeing) ac: forget it. */
static void
cluster_gone(const redisAsyncContext *ac)
{
	if (ac == cl.cmd)
		cl.cmd = NULL;
	if (ac == cl.sub)
		cl.sub = NULL;
	if (ac == cl.dead_cmd)
		cl.dead_cmd = NULL;
	if (ac == cl.dead_sub)
		cl.dead_sub = NULL;
}

static void
cluster_on_connect(const redisAsyncContext *ac, int status)
{
	if (status == REDIS_OK)
		return;
	/* hiredis frees ac once this returns. */
	cluster_gone(ac);
	cluster_down(ac->errstr[0] != '\0' ? ac->errstr : "cannot connect");
}

static void
cluster_on_disconnect(const redisAsyncContext *ac, int status)
{
	int ours = ac == cl.cmd || ac == cl.sub;

	cluster_gone(ac);
	if (ours)
		cluster_down(status == REDIS_OK ? "disconnected" :
		        ac->errstr[0] != '\0'   ? ac->errstr :
		                                  "connection lost");
}

/* A reply from a current connection, else NULL (an old one's, or none). */
static redisReply *
cluster_reply(redisAsyncContext *ac, void *r)
{
	redisReply *reply = r;

	if (ac != cl.cmd && ac != cl.sub)
		return NULL;
	if (reply == NULL)
		return NULL;
	if (reply->type == REDIS_REPLY_ERROR) {
		/*
		 * Never the password: Redis's own message says enough,
		 * unless it quotes the command (AUTH renamed or disabled:
		 * "unknown command 'AUTH', with args beginning with: ...").
		 */
		if (cl.password != NULL && *cl.password != '\0' &&
		    strstr(reply->str, cl.password) != NULL)
			cluster_down("redis refused AUTH (its answer quoted "
			             "the password, so it is not shown)");
		else
			cluster_down(reply->str);
		return NULL;
	}
	return reply;
}

static void
cluster_on_auth(redisAsyncContext *ac, void *r, void *priv)
{
	cluster_reply(ac, r);
}

static void
cluster_on_beat(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply;

	if ((reply = cluster_reply(ac, r)) == NULL)
		return;
	cl.beat_sent = 0;
	if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
		cl.live = (unsigned)reply->integer;
	cl.cmd_ok = 1;
	cluster_up();
}

static void
cluster_send_beat(void)
{
	if (cl.cmd == NULL || cl.beat_sent != 0)
		return;
	if (redisAsyncCommand(cl.cmd, cluster_on_beat, NULL,
	        "EVAL %s 1 %s %s %u", cluster_lua_beat, cl.hosts_key, cl.host,
	        CLUSTER_ALIVE_MS) == REDIS_OK)
		cl.beat_sent = now_ms();
}

/*
 * Parse a cluster address: "unix:PATH" (absolute), "HOST:PORT" (a name or
 * an IPv4 address) or "[V6]:PORT". 0, or -1 with *cause.
 */
int
cluster_addr_parse(const char *s, struct cluster_addr *a, char **cause)
{
	const char *colon, *host = s, *end;
	unsigned long port;
	char *p;

	memset(a, 0, sizeof *a);
	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/') {
			xasprintf(cause,
			    "\"unix:PATH\" needs an absolute "
			    "path");
			return -1;
		}
		a->path = xstrdup(s + 5);
		return 0;
	}
	if (*s == '[') {
		host = s + 1;
		if ((end = strchr(host, ']')) == NULL || end[1] != ':') {
			xasprintf(cause,
			    "'%s': an IPv6 address is written "
			    "\"[ADDRESS]:PORT\"",
			    s);
			return -1;
		}
		colon = end + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			xasprintf(cause,
			    "'%s' is neither \"unix:PATH\" nor "
			    "\"host:port\"",
			    s);
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			xasprintf(cause,
			    "'%s': write an IPv6 address in "
			    "brackets, \"[ADDRESS]:PORT\"",
			    s);
			return -1;
		}
		end = colon;
	}
	if (end == host || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    (port = strtoul(colon + 1, NULL, 10)) == 0 || port > 65535) {
		xasprintf(cause,
		    "'%s' needs a host and a port from 1 to "
		    "65535",
		    s);
		return -1;
	}
	a->host = xstrndup(host, (size_t)(end - host));
	a->port = (int)port;
	if (*s == '[') {
		struct in6_addr in6;

		if (inet_pton(AF_INET6, a->host, &in6) != 1) {
			xasprintf(cause, "'%s' is not an IPv6 address",
			    a->host);
			cluster_addr_free(a);
			return -1;
		}
	}
	for (p = a->host; *p != '\0'; p++) {
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
			xasprintf(cause,
			    "'%s': the host holds spaces or "
			    "control characters",
			    s);
			cluster_addr_free(a);
			return -1;
		}
	}
	return 0;
}

void
cluster_addr_free(struct cluster_addr *a)
{
	free(a->path);
	free(a->host);
	memset(a, 0, sizeof *a);
}

/* One connection to Redis at ip (NULL: the Unix socket). */
static redisAsyncContext *
cluster_open(const char *ip)
{
	redisAsyncContext *ac;

	/* An address: hiredis's own lookup of it does not block. */
	if (ip == NULL)
		ac = redisAsyncConnectUnix(cl.a.path);
	else
		ac = redisAsyncConnect(ip, cl.a.port);
	if (ac == NULL)
		return NULL;
	if (ac->err) {
		cluster_down(ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	redisLibeventAttach(ac, ev_base);
	redisAsyncSetConnectCallback(ac, cluster_on_connect);
	redisAsyncSetDisconnectCallback(ac, cluster_on_disconnect);
	if (cl.password != NULL) {
		if (cl.user != NULL)
			redisAsyncCommand(ac, cluster_on_auth, NULL,
			    "AUTH %s %s", cl.user, cl.password);
		else
			redisAsyncCommand(ac, cluster_on_auth, NULL, "AUTH %s",
			    cl.password);
	}
	return ac;
}

/* Both connections, to ip (NULL: the Unix socket). */
static void
cluster_open_both(const char *ip)
{
	if ((cl.cmd = cluster_open(ip)) == NULL)
		goto fail;
	if ((cl.sub = cluster_open(ip)) == NULL)
		goto fail;
	cluster_send_beat();
	redisAsyncCommand(cl.sub, cluster_message, NULL, "SUBSCRIBE %s",
	    cl.channel);
	return;
fail:
	if (cl.state != CLUSTER_DOWN)
		cluster_down("cannot connect");
}

/* The host name's addresses came (evdns, on the loop): the first one. */
static void
cluster_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	const void *in;
	char why[160];

	if (result == EVUTIL_EAI_CANCEL || cl.state == CLUSTER_OFF) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	cl.resolving = NULL;
	if (result != 0 || res == NULL) {
		snprintf(why, sizeof why, "cannot resolve %s: %s", cl.a.host,
		    evutil_gai_strerror(result));
		if (res != NULL)
			evutil_freeaddrinfo(res);
		cluster_down(why);
		return;
	}
	in = res->ai_family == AF_INET6 ?
	    (const void *)&((struct sockaddr_in6 *)(void *)res->ai_addr)
	        ->sin6_addr :
	    (const void *)&((struct sockaddr_in *)(void *)res->ai_addr)
	        ->sin_addr;
	if (evutil_inet_ntop(res->ai_family, in, cl.ip, sizeof cl.ip) == NULL) {
		evutil_freeaddrinfo(res);
		cluster_down("cannot use the address resolved");
		return;
	}
	evutil_freeaddrinfo(res);
	cluster_open_both(cl.ip);
}

/*
 * Connect: a Unix socket or an address at once; a host name is resolved
 * first, on the loop (hiredis would resolve it with a blocking
 * getaddrinfo()), and again at every reconnect.
 */
static void
cluster_connect(void)
{
	struct evutil_addrinfo hints;
	unsigned char buf[sizeof(struct in6_addr)];

	if (cl.cmd != NULL || cl.sub != NULL || cl.resolving != NULL)
		return;
	cl.state = CLUSTER_CONNECTING;
	if (cl.a.path != NULL || inet_pton(AF_INET, cl.a.host, buf) == 1 ||
	    inet_pton(AF_INET6, cl.a.host, buf) == 1) {
		cluster_open_both(cl.a.path != NULL ? NULL : cl.a.host);
		return;
	}
	if (cl.dns == NULL &&
	    (cl.dns = evdns_base_new(ev_base,
	         EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL) {
		cluster_down("cannot set up name resolution");
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* NULL: answered (or failed) already, the callback has run. */
	cl.resolving = evdns_getaddrinfo(cl.dns, cl.a.host, NULL, &hints,
	    cluster_on_resolved, NULL);
}

/* Whether a slice of budget has waited for Redis longer than timeout_ms. */
static int
cluster_late(const struct slice *slice, uint64_t now)
{
	return slice_late(&slice[0], cl.timeout_ms, now) ||
	    slice_late(&slice[1], cl.timeout_ms, now);
}

/* Heartbeat, health, reconnect. */
static void
cluster_beat(evutil_socket_t fd, short events, void *arg)
{
	struct target *t;
	struct domain *d;
	uint64_t now = now_ms();
	char why[64];
	int late = 0;

	cluster_arm(cl.beat, CLUSTER_BEAT_MS);
	if (cl.state == CLUSTER_DOWN) {
		if (now >= cl.retry_at)
			cluster_connect();
		return;
	}
	if (cl.beat_sent != 0 && now - cl.beat_sent > cl.timeout_ms) {
		snprintf(why, sizeof why, "no answer in %u ms", cl.timeout_ms);
		cluster_down(why);
		return;
	}
	for (t = target_first(); t != NULL && !late; t = t->next)
		late = cluster_late(t->slice, now);
	for (d = domain_first(); d != NULL && !late; d = d->next)
		late = cluster_late(d->slice, now);
	if (!late && clients_sync_late(now, cl.timeout_ms)) {
		snprintf(why, sizeof why,
		    "no answer on a client class's budget "
		    "in %u ms",
		    cl.timeout_ms);
		cluster_down(why);
		return;
	}
	if (late) {
		snprintf(why, sizeof why, "no slice in %u ms", cl.timeout_ms);
		cluster_down(why);
		return;
	}
	cluster_send_beat();
}

static struct bucket *
cluster_bucket(struct ratelimit *rl, int k)
{
	return k == 0 ? &rl->req : &rl->tok;
}

/*
 * The cluster's answer to an ask for rl's units (k: 0 requests, 1
 * tokens): fed into the bucket. Whether any came.
 */
static int
cluster_on_take(redisAsyncContext *ac, void *r, struct ratelimit *rl,
    struct slice *slice, int k)
{
	redisReply *reply;
	uint64_t now = now_ms(), g;

	if ((reply = cluster_reply(ac, r)) == NULL)
		return 0;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER) {
		cluster_down("unexpected reply to a slice");
		return 0;
	}
	g = reply->element[0]->integer > 0 ?
	    (uint64_t)reply->element[0]->integer :
	    0;
	if (rl->fed)
		bucket_feed(cluster_bucket(rl, k), (int64_t)g, now);
	slice_granted(&slice[k], g,
	    reply->element[2]->integer > 0 ?
	        (uint64_t)reply->element[2]->integer :
	        0,
	    now);
	slice[k].cluster_level = reply->element[1]->integer;
	return g != 0;
}

static void
cluster_on_take_req(redisAsyncContext *ac, void *r, void *priv)
{
	struct target *t = priv;

	if (cluster_on_take(ac, r, &t->rl, t->slice, 0))
		admit_target_ready(t);
}

static void
cluster_on_take_tok(redisAsyncContext *ac, void *r, void *priv)
{
	struct target *t = priv;

	if (cluster_on_take(ac, r, &t->rl, t->slice, 1))
		admit_target_ready(t);
}

/* A domain lives until exit: a pending answer's pointer stays good. */
static void
cluster_on_dtake_req(redisAsyncContext *ac, void *r, void *priv)
{
	struct domain *d = priv;

	if (cluster_on_take(ac, r, &d->rl, d->slice, 0))
		admit_domain_ready(d);
}

static void
cluster_on_dtake_tok(redisAsyncContext *ac, void *r, void *priv)
{
	struct domain *d = priv;

	if (cluster_on_take(ac, r, &d->rl, d->slice, 1))
		admit_domain_ready(d);
}

/* Adds the units t's queue waits for: requests, and the head's tokens. */
static void
cluster_waiting(const struct target *t, uint64_t waiting[2])
{
	const struct admission *head;

	waiting[0] += waitq_len(&t->queue);
	head = (const struct admission *)waitq_peek(
	    (struct waitq *)(uintptr_t)&t->queue);
	waiting[1] += head != NULL ? head->tokens : 0;
}

/*
 * One budget's slices (a target's, key kind "b", or a quota domain's,
 * "d"): ask for what the policy wants, give back what it does not. cb:
 * the answers' callbacks for requests and tokens, with priv.
 */
static void
cluster_slices(struct ratelimit *rl, struct slice *slice,
    const uint64_t waiting[2], const char *kind, const char *name,
    redisCallbackFn *const cb[2], void *priv, uint64_t now)
{
	struct bucket *b;
	uint64_t cap;
	int64_t n;
	int k;

	for (k = 0; k < 2; k++) {
		b = cluster_bucket(rl, k);
		if (b->limit == 0)
			continue;
		cap = rl_cluster_capacity(rl, k);
		n = slice_tick(&slice[k], bucket_available(b, now), waiting[k],
		    cap, cl.slice_ms, now);
		if (n == 0)
			continue;
		if (n < 0) {
			bucket_feed(b, n, now);
			slice_returned(&slice[k], (uint64_t)-n);
		}
		redisAsyncCommand(cl.cmd, n > 0 ? cb[k] : NULL, priv,
		    "EVAL %s 1 %s:%s:%s:%s %llu %llu %lld %llu",
		    cluster_lua_take, cl.prefix, kind, name,
		    k == 0 ? "req" : "tok",
		    (unsigned long long)rl_cluster_limit(rl, k),
		    (unsigned long long)cap, (long long)n,
		    (unsigned long long)(cl.downs == 0 ? cap : 0));
	}
}

/* The cluster's answer about a class's budgets (or none: Redis away). */
static void
cluster_on_class(redisAsyncContext *ac, void *r, void *priv)
{
	struct clients_sync *s = priv;
	redisReply *reply = cluster_reply(ac, r);
	long long v[3];
	size_t i;
	int ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
	    reply->elements == 3;

	for (i = 0; ok && i < 3; i++) {
		ok = reply->element[i]->type == REDIS_REPLY_INTEGER &&
		    (v[i] = reply->element[i]->integer) >= 0;
	}
	if (reply != NULL && !ok)
		cluster_down("unexpected reply about a client class's budget");
	clients_sync_end(s, ok, ok ? (uint64_t)v[0] : 0,
	    ok ? (uint64_t)v[1] : 0, ok ? (uint64_t)v[2] : 0);
	free(s);
}

/*
 * Tell the cluster what each budgeted class of the config used and holds
 * here, and read back its totals. A class not used here yet is read too:
 * its first call sees the others' use.
 */
static void
cluster_classes(uint64_t now)
{
	const struct client_class *k;
	struct clients_sync sync, *s;
	uint64_t wall = clients_wall_ms();
	size_t i;

	for (i = 0; i < cfg->nclasses; i++) {
		k = &cfg->classes[i];
		if ((k->tokens_per_minute == 0 && k->tokens_per_day == 0) ||
		    !clients_sync_begin(k, wall, now, CLUSTER_CLASS_POLL_MS,
		        &sync))
			continue;
		s = xmalloc(sizeof *s);
		*s = sync;
		/* Keys outlive their window a little, for late hosts. */
		if (redisAsyncCommand(cl.cmd, cluster_on_class, s,
		        "EVAL %s 3 %s:c:%s:m:%llu %s:c:%s:d:%llu %s:c:%s:h "
		        "%llu %llu %u %u %s %llu %u",
		        cluster_lua_class, cl.prefix, k->name,
		        (unsigned long long)s->minute, cl.prefix, k->name,
		        (unsigned long long)s->day, cl.prefix, k->name,
		        (unsigned long long)s->minute_delta,
		        (unsigned long long)s->day_delta, 120U, 90000U, cl.host,
		        (unsigned long long)s->held,
		        CLUSTER_ALIVE_MS) != REDIS_OK) {
			clients_sync_end(s, 0, 0, 0, 0);
			free(s);
		}
	}
}

/* Slices of every fed budget: the targets', then the quota domains'. */
static void
cluster_tick(evutil_socket_t fd, short events, void *arg)
{
	static redisCallbackFn *const tcb[2] = { cluster_on_take_req,
		cluster_on_take_tok };
	static redisCallbackFn *const dcb[2] = { cluster_on_dtake_req,
		cluster_on_dtake_tok };
	struct target *t, *m;
	struct domain *d;
	uint64_t now = now_ms(), waiting[2];

	cluster_arm(cl.tick, CLUSTER_TICK_MS);
	/* A domain a reload made joins the cluster here. */
	for (d = domain_first(); d != NULL; d = d->next)
		cluster_apply(&d->rl, d->slice, now);
	if (cl.state != CLUSTER_UP)
		return;
	for (t = target_first(); t != NULL; t = t->next) {
		if (!t->rl.fed)
			continue;
		waiting[0] = waiting[1] = 0;
		cluster_waiting(t, waiting);
		cluster_slices(&t->rl, t->slice, waiting, "b", t->name, tcb, t,
		    now);
	}
	cluster_classes(now);
	for (d = domain_first(); d != NULL; d = d->next) {
		if (!d->rl.fed)
			continue;
		/* What its members' queues wait for. */
		waiting[0] = waiting[1] = 0;
		for (m = target_first(); m != NULL; m = m->next) {
			if (domain_has(&m->dom, d))
				cluster_waiting(m, waiting);
		}
		cluster_slices(&d->rl, d->slice, waiting, "d", d->name, dcb, d,
		    now);
	}
}

enum {
	CLUSTER_HOLD = 1,  /* "hold MS REASON" */
	CLUSTER_LEARN = 2, /* "learn RPM TPM" */
	CLUSTER_OPEN = 4,  /* "open MS MULT" */
};

/*
 * Tell the other hosts a signal of name's (a target's or, kinds "dhold"
 * and "dlearn", a quota domain's) in force here for ms: published as
 * "KIND A B HOST NAME" for the hosts subscribed now, and kept in Redis
 * until it ends for those that join or come back later. replace: a
 * learned limit, which a later one replaces.
 */
static void
cluster_send(const char *kind, unsigned long long a, unsigned long long b,
    unsigned long long ms, const char *name, int replace)
{
	char *msg, *member;

	/* One argument each: hiredis splits a format at its spaces. */
	xasprintf(&msg, "%s %llu %llu %s %s", kind, a, b, cl.host, name);
	redisAsyncCommand(cl.cmd, NULL, NULL, "PUBLISH %s %s", cl.channel, msg);
	free(msg);
	xasprintf(&member, "%s %s", kind, name);
	xasprintf(&msg, "%llu %llu", a, b);
	redisAsyncCommand(cl.cmd, NULL, NULL,
	    "EVAL %s 2 %s %s %s %llu %s %d %d", cluster_lua_keep, cl.kept_key,
	    cl.nums_key, member, ms, msg, RL_HOLD_MAX_MS, replace);
	free(member);
	free(msg);
	cl.signals_sent++;
}

/* Tell the other hosts what of t is in force here (kinds, CLUSTER_*). */
static void
cluster_tell(struct target *t, unsigned kinds, uint64_t now)
{
	if (kinds & CLUSTER_HOLD)
		cluster_send("hold", t->rl.cooldown_until - now,
		    (unsigned)rl_reason_index(t->rl.cooldown_reason),
		    t->rl.cooldown_until - now, t->name, 0);
	if (kinds & CLUSTER_LEARN)
		cluster_send("learn", t->rl.learned_rpm, t->rl.learned_tpm,
		    RL_HOLD_MAX_MS, t->name, 1);
	if (kinds & CLUSTER_OPEN)
		cluster_send("open", t->br.open_until - now, t->br.mult,
		    t->br.open_until - now, t->name, 0);
}

/*
 * The same of a quota domain: its hold (cooldown = "domain") and its
 * learned limits (learn), which describe one budget for every host.
 */
static void
cluster_tell_domain(const struct domain *d, unsigned kinds, uint64_t now)
{
	if (kinds & CLUSTER_HOLD)
		cluster_send("dhold", d->rl.cooldown_until - now,
		    (unsigned)rl_reason_index(d->rl.cooldown_reason),
		    d->rl.cooldown_until - now, d->name, 0);
	if (kinds & CLUSTER_LEARN)
		cluster_send("dlearn", d->rl.learned_rpm, d->rl.learned_tpm,
		    RL_HOLD_MAX_MS, d->name, 1);
}

/* What of a domain is in force here and could be told (CLUSTER_*). */
static unsigned
cluster_domain_in_force(const struct domain *d, uint64_t now)
{
	unsigned kinds = 0;

	if (!d->live)
		return 0;
	if (d->rl.cooldown_until > now)
		kinds |= CLUSTER_HOLD;
	if (d->rl.learned_rpm != 0 || d->rl.learned_tpm != 0)
		kinds |= CLUSTER_LEARN;
	return kinds;
}

/* What of t is in force here and could be told (CLUSTER_*). */
static unsigned
cluster_in_force(const struct target *t, uint64_t now)
{
	unsigned kinds = 0;

	if (t->rl.cooldown_until > now)
		kinds |= CLUSTER_HOLD;
	if (t->rl.learned_rpm != 0 || t->rl.learned_tpm != 0)
		kinds |= CLUSTER_LEARN;
	if (t->br.state == BREAKER_OPEN && t->br.open_until > now)
		kinds |= CLUSTER_OPEN;
	return kinds;
}

void
cluster_before(const struct target *t, const struct domset *ds,
    struct cluster_seen *seen)
{
	unsigned i;

	seen->held = t->rl.cooldown_until;
	seen->learned_rpm = t->rl.learned_rpm;
	seen->learned_tpm = t->rl.learned_tpm;
	seen->epoch = t->br.epoch;
	for (i = 0; i < ds->n; i++) {
		seen->dom_held[i] = ds->d[i]->rl.cooldown_until;
		seen->dom_rpm[i] = ds->d[i]->rl.learned_rpm;
		seen->dom_tpm[i] = ds->d[i]->rl.learned_tpm;
	}
}

/*
 * An outcome here started or lengthened a hold (a 429's Retry-After, a
 * spent quota, a reset), taught a limit, or opened the breaker: tell the
 * other hosts. Redis away, nothing is sent: cluster_resync() tells what
 * is still in force once it is back.
 */
void
cluster_after(struct target *t, const struct domset *ds,
    const struct cluster_seen *seen, uint64_t now)
{
	const struct domain *d;
	unsigned kinds = 0, i;

	if (cl.state != CLUSTER_UP)
		return;
	if (t->rl.cooldown_until > seen->held)
		kinds |= CLUSTER_HOLD;
	if (t->rl.learned_rpm != seen->learned_rpm ||
	    t->rl.learned_tpm != seen->learned_tpm)
		kinds |= CLUSTER_LEARN;
	if (t->br.epoch != seen->epoch)
		kinds |= CLUSTER_OPEN;
	cluster_tell(t, kinds & cluster_in_force(t, now), now);
	for (i = 0; i < ds->n; i++) {
		d = ds->d[i];
		kinds = 0;
		if (d->rl.cooldown_until > seen->dom_held[i])
			kinds |= CLUSTER_HOLD;
		if (d->rl.learned_rpm != seen->dom_rpm[i] ||
		    d->rl.learned_tpm != seen->dom_tpm[i])
			kinds |= CLUSTER_LEARN;
		cluster_tell_domain(d, kinds & cluster_domain_in_force(d, now),
		    now);
	}
}

/*
 * Another host's news about quota domain name: a hold, taken only where
 * the domain holds its members (cooldown = "domain"), or learned limits,
 * only where it learns. Every host has the same limits block.
 */
static void
cluster_heed_domain(const char *kind, unsigned long long a,
    unsigned long long b, const char *from, const char *name)
{
	struct domain *d;
	struct header_rl ri;
	uint64_t now = now_ms();

	if ((d = domain_find(name)) == NULL || !d->live) {
		log_debug("cluster: %s from %s: no quota domain '%s' here",
		    kind, from, name);
		return;
	}
	cl.signals_received++;
	log_debug("cluster: domain %s %s %llu %llu from %s", d->name, kind, a,
	    b, from);
	if (strcmp(kind, "dhold") == 0 && d->cooldown == DOMAIN_COOLDOWN_DOMAIN)
		rl_cooldown(&d->rl, a,
		    rl_reason((int)b) != NULL ? rl_reason((int)b) :
		                                "rate_limited",
		    now);
	else if (strcmp(kind, "dlearn") == 0 && d->learn) {
		header_rl_init(&ri);
		ri.limit_requests = a > 0 && a <= UINT32_MAX ? (int64_t)a : -1;
		ri.limit_tokens = b > 0 && b <= UINT32_MAX ? (int64_t)b : -1;
		rl_learn(&d->rl, &ri, now);
	}
}

/*
 * Another host's news about a target (kind with its numbers a and b);
 * the target here is made if this host has not used it yet, so that its
 * first call already knows.
 */
static void
cluster_heed(const char *kind, unsigned long long a, unsigned long long b,
    const char *from, const char *name)
{
	const struct provider_conf *pc;
	struct target *t;
	struct header_rl ri;
	uint64_t now = now_ms();
	char *cause = NULL;

	if (kind[0] == 'd') {
		cluster_heed_domain(kind, a, b, from, name);
		return;
	}
	if ((t = target_resolve(cfg, name, TARGET_UNOWNED, &pc, &cause)) ==
	    NULL) {
		log_debug("cluster: %s from %s: %s", kind, from, cause);
		free(cause);
		return;
	}
	cl.signals_received++;
	log_debug("cluster: %s %s %llu %llu from %s", t->name, kind, a, b,
	    from);
	if (strcmp(kind, "hold") == 0)
		rl_cooldown(&t->rl, a,
		    rl_reason((int)b) != NULL ? rl_reason((int)b) :
		                                "rate_limited",
		    now);
	else if (strcmp(kind, "learn") == 0) {
		header_rl_init(&ri);
		ri.limit_requests = a > 0 && a <= UINT32_MAX ? (int64_t)a : -1;
		ri.limit_tokens = b > 0 && b <= UINT32_MAX ? (int64_t)b : -1;
		rl_learn(&t->rl, &ri, now);
	} else if (strcmp(kind, "open") == 0 && a > 0 &&
	    breaker_state(&t->br, now) != BREAKER_OPEN)
		breaker_restore(&t->br, BREAKER_OPEN,
		    now + (a < RL_HOLD_MAX_MS ? a : RL_HOLD_MAX_MS),
		    (uint32_t)(b < BREAKER_MAX_MULT ? b : BREAKER_MAX_MULT), 0);
	target_release(t);
}

/* A message on the channel: "KIND A B HOST TARGET". */
static void
cluster_on_signal(const char *msg, size_t len)
{
	unsigned long long a, b;
	char kind[8], host[256], *text;
	int off = 0;

	text = xmalloc(len + 1);
	memcpy(text, msg, len);
	text[len] = '\0';
	if (sscanf(text, "%7s %llu %llu %255s %n", kind, &a, &b, host, &off) ==
	        4 &&
	    off != 0 && strcmp(host, cl.host) != 0)
		cluster_heed(kind, a, b, host, text + off);
	free(text);
}

/* The signals in force when this host (re)joined: { member, ms, "A B" }. */
static void
cluster_on_kept(redisAsyncContext *ac, void *r, void *priv)
{
	unsigned long long a, b;
	redisReply *reply, **e;
	char kind[8];
	long long ms;
	size_t i;
	int off;

	if ((reply = cluster_reply(ac, r)) == NULL ||
	    reply->type != REDIS_REPLY_ARRAY)
		return;
	e = reply->element;
	for (i = 0; i + 2 < reply->elements; i += 3) {
		off = 0;
		if (e[i]->type != REDIS_REPLY_STRING ||
		    e[i + 1]->type != REDIS_REPLY_STRING ||
		    e[i + 2]->type != REDIS_REPLY_STRING ||
		    sscanf(e[i]->str, "%7s %n", kind, &off) != 1 || off == 0 ||
		    sscanf(e[i + 2]->str, "%llu %llu", &a, &b) != 2)
			continue;
		if ((ms = strtoll(e[i + 1]->str, NULL, 10)) <= 0)
			continue;
		/* A hold or a breaker: what is left of it. */
		if (strcmp(kind, "learn") != 0 && strcmp(kind, "dlearn") != 0)
			a = (unsigned long long)ms;
		cluster_heed(kind, a, b, "redis", e[i]->str + off);
	}
}

/*
 * Redis is back (or this host joined): take in the signals in force, and
 * tell what is in force here, some of which may have come about while
 * Redis was away and reached nobody.
 */
static void
cluster_resync(void)
{
	struct target *t;
	struct domain *d;
	uint64_t now = now_ms();

	redisAsyncCommand(cl.cmd, cluster_on_kept, NULL, "EVAL %s 2 %s %s",
	    cluster_lua_kept, cl.kept_key, cl.nums_key);
	for (t = target_first(); t != NULL; t = t->next)
		cluster_tell(t, cluster_in_force(t, now), now);
	for (d = domain_first(); d != NULL; d = d->next)
		cluster_tell_domain(d, cluster_domain_in_force(d, now), now);
}

static void
cluster_message(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply;

	if ((reply = cluster_reply(ac, r)) == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		cl.sub_ok = 1;
		cluster_up();
	} else if (strcmp(reply->element[0]->str, "message") == 0 &&
	    reply->element[2]->type == REDIS_REPLY_STRING)
		cluster_on_signal(reply->element[2]->str,
		    (size_t)reply->element[2]->len);
}

int
cluster_start(struct event_base *base)
{
	const struct cluster_conf *cc = &cfg->cluster;
	char *cause = NULL;

	if (!cc->enabled)
		return 0;
	cl.addr = xstrdup(cc->redis);
	if (cluster_addr_parse(cl.addr, &cl.a, &cause) != 0) {
		/* The config was checked: not reached. */
		log_warnx("cluster: redis %s", cause);
		free(cause);
		free(cl.addr);
		cl.addr = NULL;
		return -1;
	}
	cl.user = cc->user != NULL ? xstrdup(cc->user) : NULL;
	cl.password = cc->password != NULL ? xstrdup(cc->password) : NULL;
	cl.host = xstrdup(cc->host);
	cl.prefix = xstrdup(cc->prefix);
	xasprintf(&cl.channel, "%s:signal", cc->prefix);
	xasprintf(&cl.hosts_key, "%s:hosts", cc->prefix);
	xasprintf(&cl.kept_key, "%s:signals", cc->prefix);
	xasprintf(&cl.nums_key, "%s:signals:n", cc->prefix);
	cl.slice_ms = cc->slice_ms;
	cl.timeout_ms = cc->timeout_ms;
	cl.expected = cc->expected_hosts != 0 ? cc->expected_hosts : 1;
	/* Until Redis answers, not alone: as many as last seen. */
	cl.live = cluster_saved_hosts != 0 ? cluster_saved_hosts : 1;
	cl.backoff_ms = CLUSTER_BACKOFF_MIN_MS;
	cl.tick = evtimer_new(base, cluster_tick, NULL);
	cl.beat = evtimer_new(base, cluster_beat, NULL);
	cl.reap = evtimer_new(base, cluster_reap, NULL);
	cl.state = CLUSTER_CONNECTING;
	/* Until Redis answers, each class's budgets are this host's share. */
	clients_cluster(0, cluster_share());
	cluster_connect();
	cluster_arm(cl.tick, CLUSTER_TICK_MS);
	cluster_arm(cl.beat, CLUSTER_BEAT_MS);
	return 0;
}

void
cluster_stop(void)
{
	redisAsyncContext *ac;

	if (cl.state == CLUSTER_OFF)
		return;
	cl.state = CLUSTER_OFF;
	clients_cluster(0, 0);
	if ((ac = cl.cmd) != NULL) {
		cl.cmd = NULL;
		redisAsyncFree(ac);
	}
	if ((ac = cl.sub) != NULL) {
		cl.sub = NULL;
		redisAsyncFree(ac);
	}
	cluster_reap(-1, 0, NULL);
	if (cl.resolving != NULL) {
		evdns_getaddrinfo_cancel(cl.resolving);
		cl.resolving = NULL;
	}
	if (cl.dns != NULL)
		evdns_base_free(cl.dns, 1);
	cluster_addr_free(&cl.a);
	event_free(cl.tick);
	event_free(cl.beat);
	event_free(cl.reap);
	free(cl.addr);
	free(cl.user);
	if (cl.password != NULL) {
		explicit_bzero(cl.password, strlen(cl.password));
		free(cl.password);
	}
	free(cl.host);
	free(cl.prefix);
	free(cl.channel);
	free(cl.hosts_key);
	free(cl.kept_key);
	free(cl.nums_key);
	memset(&cl, 0, sizeof cl);
}

unsigned
cluster_hosts_seen(void)
{
	return cl.state != CLUSTER_OFF ? cl.live : 0;
}

void
cluster_hosts_restore(unsigned n)
{
	cluster_saved_hosts = n;
}

/* One shared budget's books, as status shows them, under key name. */
static json_t *
cluster_books(const char *key, const char *name, const struct ratelimit *rl,
    const struct slice *slice, uint64_t now)
{
	return json_pack("{s:s, s:{s:I, s:I, s:f, s:I, s:I}, "
	                 "s:{s:I, s:I, s:f, s:I, s:I}}",
	    key, name, "requests", "slice",
	    (json_int_t)bucket_available(&rl->req, now), "cluster_level",
	    (json_int_t)slice[0].cluster_level, "rate_per_s", slice[0].rate,
	    "granted", (json_int_t)slice[0].granted, "returned",
	    (json_int_t)slice[0].returned, "tokens", "slice",
	    (json_int_t)bucket_available(&rl->tok, now), "cluster_level",
	    (json_int_t)slice[1].cluster_level, "rate_per_s", slice[1].rate,
	    "granted", (json_int_t)slice[1].granted, "returned",
	    (json_int_t)slice[1].returned);
}

/* status's "cluster": NULL without a cluster block. */
json_t *
cluster_status(void)
{
	json_t *st, *targets, *domains;
	struct target *t;
	struct domain *d;
	uint64_t now = now_ms();

	if (cl.state == CLUSTER_OFF)
		return NULL;
	targets = json_array();
	for (t = target_first(); t != NULL; t = t->next) {
		if (t->rl.req.limit == 0 && t->rl.tok.limit == 0)
			continue;
		json_array_append_new(targets,
		    cluster_books("target", t->name, &t->rl, t->slice, now));
	}
	domains = json_array();
	for (d = domain_first(); d != NULL; d = d->next) {
		if (!d->live || (d->rl.req.limit == 0 && d->rl.tok.limit == 0))
			continue;
		json_array_append_new(domains,
		    cluster_books("domain", d->name, &d->rl, d->slice, now));
	}
	st = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, "
	               "s:o}",
	    "redis", cl.addr, "state", cluster_state_names[cl.state], "why",
	    cl.why, "host", cl.host, "hosts_alive", (json_int_t)cl.live,
	    "share_of", (json_int_t)cluster_share(), "outages",
	    (json_int_t)cl.downs, "signals_sent", (json_int_t)cl.signals_sent,
	    "signals_received", (json_int_t)cl.signals_received, "targets",
	    targets, "domains", domains);
	return st;
}
