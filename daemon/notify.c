/*
 * notify.c: telling the service manager how the daemon is doing: READY,
 * RELOADING, STOPPING, STATUS and the watchdog keepalive. Through
 * libsystemd's sd_notify when it is there, else the NOTIFY_SOCKET datagram
 * protocol spoken directly (a line-based message to an AF_UNIX socket).
 * Without $NOTIFY_SOCKET every call is a no-op.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "llmgated.h"

static struct event *notify_wd_ev;

#ifdef HAVE_LIBSYSTEMD
static int
notify_send(const char *msg)
{
	return sd_notify(0, msg);
}

/* The watchdog interval in µs, 0 when not asked for this process. */
static uint64_t
notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}
#else
/*
 * sd_notify(3)'s protocol: one datagram to $NOTIFY_SOCKET, a filesystem
 * path or, with a leading '@', an abstract socket. 1 sent, 0 when no
 * manager listens, -1 on error.
 */
static int
notify_send(const char *msg)
{
	struct sockaddr_un sun;
	const char *path = getenv("NOTIFY_SOCKET");
	socklen_t len;
	size_t plen;
	ssize_t n;
	int fd;

	if (path == NULL || *path == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof sun.sun_path)
		return -1;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen +
	    (path[0] == '@' ? 0 : 1));

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	do
		n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
		    (struct sockaddr *)&sun, len);
	while (n == -1 && errno == EINTR);
	close(fd);
	return n == -1 ? -1 : 1;
}

static uint64_t
notify_watchdog_usec(void)
{
	const char *s;
	char *end;
	unsigned long long v;

	if ((s = getenv("WATCHDOG_PID")) != NULL && *s != '\0') {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno != 0 || *end != '\0' ||
		    v != (unsigned long long)getpid())
			return 0;
	}
	if ((s = getenv("WATCHDOG_USEC")) == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	return v;
}
#endif

static void
notify(const char *msg)
{
	if (notify_send(msg) < 0)
		log_debug("notify '%s': %s", msg, strerror(errno));
}

void
notify_ready(void)
{
	notify("READY=1");
}

/*
 * MONOTONIC_USEC lets a Type=notify-reload manager (systemd 253 and later)
 * tell this reload from a stale one; older managers ignore it.
 */
void
notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000 +
	        (unsigned long long)ts.tv_nsec / 1000);
	notify(msg);
}

void
notify_stopping(void)
{
	notify("STOPPING=1");
}

void
notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof msg, "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	/* One line: a newline would start another assignment. */
	msg[strcspn(msg, "\n")] = '\0';
	notify(msg);
}

static void
notify_watchdog(evutil_socket_t fd, short events, void *arg)
{
	notify("WATCHDOG=1");
}

/*
 * With WatchdogSec= the manager sets $WATCHDOG_USEC; ping at half of it,
 * from the event loop, so that a wedged loop is what the watchdog sees.
 */
int
notify_watchdog_start(struct event_base *base)
{
	struct timeval tv;
	uint64_t usec, half;

	if (notify_wd_ev != NULL || (usec = notify_watchdog_usec()) == 0)
		return 0;
	half = usec / 2;
	if (half == 0)
		half = 1;
	tv.tv_sec = (time_t)(half / 1000000);
	tv.tv_usec = (suseconds_t)(half % 1000000);
	notify_wd_ev = event_new(base, -1, EV_PERSIST, notify_watchdog, NULL);
	if (notify_wd_ev == NULL || event_add(notify_wd_ev, &tv) != 0) {
		log_warnx("cannot arm the watchdog timer");
		return -1;
	}
	log_info("watchdog: keepalive every %llu ms",
	    (unsigned long long)(half / 1000));
	notify("WATCHDOG=1");
	return 1;
}

void
notify_watchdog_stop(void)
{
	if (notify_wd_ev == NULL)
		return;
	event_free(notify_wd_ev);
	notify_wd_ev = NULL;
}
