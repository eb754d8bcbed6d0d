/*
 * client-int.h: what the files of libllmgate share and nothing else sees:
 * the connection (struct llmgate), its pending requests and the waiter a
 * blocking function answers into. client.c owns the connection, its I/O
 * and the handshake; client-pend.c the pending requests and how an answer
 * reaches one; client-ops.c the requests a user makes.
 */
#ifndef CLIENT_INT_H
#define CLIENT_INT_H

#define CLIENT_HELLO_TIMEOUT_MS 5000
#define CLIENT_READ_SIZE        65536
#define CLIENT_LOST             "connection to llmgated lost"

/*
 * What a pending id is waiting for. CALL: an asynchronous call whose
 * on_done owns the result. SYNC: a call made by llmgate_call(), answered
 * into a waiter on its stack. REQ: a small request (ping, status...)
 * whose reply message is handed to a waiter as it is. LEASE: an
 * asynchronous acquire or report, answered through on_lease.
 */
enum client_pend_kind { PEND_CALL, PEND_SYNC, PEND_REQ, PEND_LEASE };

/* A blocking function's view of its one request. */
struct client_waiter {
	int done;
	int lost;                      /* connection died first */
	struct llmgate_result *result; /* SYNC */
	struct proto_msg msg;          /* REQ: the reply */
};

struct client_pend {
	uint32_t id;
	enum client_pend_kind kind;
	int cancelled;
	llmgate_chunk_cb *on_chunk;
	llmgate_done_cb *on_done;
	llmgate_lease_cb *on_lease;
	enum proto_type want; /* LEASE: the answer's type */
	void *arg;
	struct client_waiter *waiter;
	char *text; /* a call's streamed text so far */
	size_t tlen;
	size_t tcap;
	TAILQ_ENTRY(client_pend) entry;
};
TAILQ_HEAD(client_pend_list, client_pend);

struct client_inbuf {
	char *data;
	size_t off; /* first unparsed byte */
	size_t len; /* bytes held */
	size_t cap;
	int drained; /* the last read took all */
};

struct llmgate {
	int fd;
	char *path;
	uint32_t max_frame; /* the daemon's, for our frames */
	uint32_t next_id;

	struct client_inbuf ib;
	msgpack_sbuffer ob;
	size_t ob_off; /* first unsent byte */

	struct client_pend_list pending;
	int npending;

	int dead;      /* connection lost */
	int toobig;    /* last encode was over max_frame */
	unsigned busy; /* nesting of process/blocking */
	int closing;   /* closed from inside a callback */
	int polling;   /* in client_wait's own poll loop */

	char notice[256]; /* the daemon's last id-0 error */
	char error[512];
};

/* client.c */
void client_seterr(struct llmgate *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void client_lost(struct llmgate *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
const char *client_msg_type_name(const struct proto_msg *);
void client_enter(struct llmgate *);
int client_leave(struct llmgate *);
int client_flush(struct llmgate *);
int client_check_frame(struct llmgate *, size_t);
int client_wait(struct llmgate *, struct client_waiter *);

/* client-pend.c */
struct llmgate_result *client_pend_result_new(enum llmgate_class, const char *);
struct client_pend *client_pend_find(struct llmgate *, uint32_t);
void client_pend_free(struct client_pend *);
void client_pend_remove(struct llmgate *, struct client_pend *);
void client_pend_free_all(struct llmgate *);
void client_pend_dispatch(struct llmgate *, struct proto_msg *);
struct client_pend *client_pend_queue(struct llmgate *, enum client_pend_kind,
    enum proto_type, const void *);

#endif /* CLIENT_INT_H */
