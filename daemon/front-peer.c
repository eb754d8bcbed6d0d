/*
 * front-peer.c: who is calling the HTTP front, and may they. The uid at
 * the other end of a loopback TCP connection comes from the kernel's
 * socket table (sock_diag, as `ss -e` reads it); it must pass the rules
 * the native socket's mode and group set; or, with a tokens_file, the
 * caller shows a bearer token.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdlib.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "llmgated.h"

/* An IPv4 or IPv6 address's port and address, as sock_diag has them. */
static int
front_peer_end(const struct sockaddr_storage *ss, uint16_t *port,
    uint32_t *addr)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET) {
		*port = sin->sin_port;
		memcpy(addr, &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		*port = sin6->sin6_port;
		memcpy(addr, &sin6->sin6_addr, 16);
	} else
		return -1;
	return 0;
}

/*
 * The uid of the process at the other end of a loopback TCP connection:
 * the kernel's socket table, looked up by the four-tuple.
 */
int
front_peer_tcp_uid(int fd, uid_t *uid)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_storage local, peer;
	struct sockaddr_nl nladdr = { .nl_family = AF_NETLINK };
	socklen_t llen = sizeof local, plen = sizeof peer;
	union {
		struct nlmsghdr nlh;
		char buf[8192];
	} ans;
	struct inet_diag_msg *m;
	struct nlmsghdr *h;
	ssize_t n;
	int nl, rc = -1;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 ||
	    local.ss_family != peer.ss_family)
		return -1;
	memset(&req, 0, sizeof req);
	req.nlh.nlmsg_len = sizeof req;
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = (uint8_t)local.ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	/* The client's socket: its source is our peer. */
	if (front_peer_end(&peer, &req.r.id.idiag_sport, req.r.id.idiag_src) !=
	        0 ||
	    front_peer_end(&local, &req.r.id.idiag_dport, req.r.id.idiag_dst) !=
	        0)
		return -1;
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl == -1)
		return -1;
	if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&nladdr,
	        sizeof nladdr) != (ssize_t)sizeof req)
		goto out;
	while ((n = recv(nl, &ans, sizeof ans, 0)) == -1 && errno == EINTR)
		;
	if (n <= 0)
		goto out;
	for (h = &ans.nlh; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof *m))
			break;
		m = NLMSG_DATA(h);
		*uid = (uid_t)m->idiag_uid;
		rc = 0;
		break;
	}
out:
	close(nl);
	return rc;
}

/*
 * The socket group's members, read when the config is loaded: users
 * whose primary group it is, and those the group lists. Name service
 * lookups (files, LDAP, ...) can take seconds; done per connection they
 * would hold every call on the event loop, so none happens there.
 */
static uid_t *front_peer_members;
static size_t front_peer_nmembers;

static int
front_peer_uid_cmp(const void *a, const void *b)
{
	uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;

	return x < y ? -1 : x > y;
}

static void
front_peer_member_add(size_t *cap, uid_t uid)
{
	if (front_peer_nmembers == *cap) {
		*cap = *cap * 2 + 16;
		front_peer_members = xreallocarray(front_peer_members, *cap,
		    sizeof *front_peer_members);
	}
	front_peer_members[front_peer_nmembers++] = uid;
}

/* At start and on SIGHUP: who is in the group the socket belongs to. */
void
front_peer_load(const struct config *conf)
{
	gid_t gid = conf->socket_group != NULL ? conf->socket_gid : getegid();
	struct passwd *pw;
	struct group *gr;
	size_t cap = 0, i;

	free(front_peer_members);
	front_peer_members = NULL;
	front_peer_nmembers = 0;
	if ((gr = getgrgid(gid)) != NULL) {
		char **names = NULL;
		size_t n = 0;

		/* Copied: getpwnam() may reuse getgrgid()'s storage. */
		while (gr->gr_mem != NULL && gr->gr_mem[n] != NULL)
			n++;
		names = xcalloc(n + 1, sizeof *names);
		for (i = 0; i < n; i++)
			names[i] = xstrdup(gr->gr_mem[i]);
		for (i = 0; i < n; i++) {
			if ((pw = getpwnam(names[i])) != NULL)
				front_peer_member_add(&cap, pw->pw_uid);
			free(names[i]);
		}
		free(names);
	}
	setpwent();
	while ((pw = getpwent()) != NULL) {
		if (pw->pw_gid == gid)
			front_peer_member_add(&cap, pw->pw_uid);
	}
	endpwent();
	if (front_peer_nmembers != 0)
		qsort(front_peer_members, front_peer_nmembers,
		    sizeof *front_peer_members, front_peer_uid_cmp);
}

void
front_peer_free(void)
{
	free(front_peer_members);
	front_peer_members = NULL;
	front_peer_nmembers = 0;
}

/*
 * Would uid be let through the native socket's mode and group? The
 * socket belongs to our euid and to socket_group (else our egid). No
 * name service lookup: the members were read at config load.
 */
int
front_peer_uid_allowed(uid_t uid)
{
	mode_t mode = cfg->socket_mode;

	if (uid == 0)
		return 1;
	if (uid == geteuid())
		return (mode & S_IWUSR) != 0;
	if (front_peer_nmembers != 0 &&
	    bsearch(&uid, front_peer_members, front_peer_nmembers, sizeof uid,
	        front_peer_uid_cmp) != NULL)
		return (mode & S_IWGRP) != 0;
	return (mode & S_IWOTH) != 0;
}

/* Constant time, so a token cannot be guessed a byte at a time. */
static int
front_peer_token_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = la != lb;

	for (i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb != 0 ? lb : 1)]);
	return d == 0;
}

/* The caller's token (Authorization: Bearer, or x-api-key): its name. */
const char *
front_peer_token(const struct front_wire *w)
{
	const struct http_conf *hc = &cfg->http;
	const char *v;
	size_t i;

	if ((v = front_wire_header(w, "Authorization")) != NULL) {
		if (strncasecmp(v, "Bearer ", 7) != 0)
			return NULL;
		v += 7;
		while (*v == ' ')
			v++;
	} else if ((v = front_wire_header(w, "x-api-key")) == NULL)
		return NULL;
	for (i = 0; i < hc->ntokens; i++) {
		if (front_peer_token_eq(v, hc->tokens[i]))
			return hc->names[i];
	}
	return NULL;
}
