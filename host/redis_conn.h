/* host/redis_conn.h - one Redis connection for the pool commands (worker,
 * submit, pool status): URL parsing, AUTH, optional TLS, and commands that
 * survive a Redis restart (reconnect with backoff, then retry). Internal to
 * the host; built only when hiredis is found (SDRT_HAVE_HIREDIS).
 *
 * Thread: a connection is used by one thread at a time (the caller locks);
 * several connections may run in parallel. Credentials come from the URL or
 * the environment and are never logged: rconn_describe gives the address
 * without them. */
#ifndef SDRT_HOST_REDIS_CONN_H
#define SDRT_HOST_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef struct rconn {
    char host[256];
    int port;
    int db;
    int tls;            /* rediss:// */
    char *user;         /* ACL user, or NULL (the default user) */
    char *pass;         /* password, or NULL (no AUTH) */
    double timeout_s;   /* socket timeout; must exceed any BLOCK used */
    redisContext *c;    /* NULL while disconnected */
    void *ssl;          /* redisSSLContext *, when TLS is built in */
    int (*should_stop)(void); /* ends the reconnect loop (NULL: never) */
    unsigned long reconnects; /* connections made after a lost one: a reply
                                 may have been lost with it */
} rconn;

/* Parses redis://[user[:password]@]host[:port][/db] or rediss://... into
 * *rc (does not connect). $SDRT_REDIS_USER and $SDRT_REDIS_PASSWORD, when
 * set, override the URL's. Returns 0, or -1 with a message in err (the
 * message never contains the password). */
int rconn_parse(rconn *rc, const char *url, char *err, size_t errlen);
/* Copies the pool settings of `from` (address, credentials) into a fresh,
 * disconnected rc. */
void rconn_clone(rconn *rc, const rconn *from);
/* "host:port/db" (static storage per thread; no credentials). */
const char *rconn_describe(const rconn *rc);
/* One attempt to connect (and AUTH, SELECT). 0 or -1 (reason logged). */
int rconn_connect(rconn *rc);
/* Runs one command (printf-style, hiredis %s/%b), reconnecting with backoff
 * (50 ms doubling to 2 s) while Redis cannot be reached or is loading its
 * data, and retrying the command. The caller owns the reply
 * (freeReplyObject). Returns NULL only when should_stop says so. A reply of
 * type REDIS_REPLY_ERROR (other than LOADING/BUSY) is returned as is.
 * Commands are retried after a lost connection, so they must be safe to
 * run twice (the pool's are: XADD of an event may repeat, finals go through
 * a script guarded by a marker). */
redisReply *rconn_cmd(rconn *rc, const char *fmt, ...);
/* The same with an argument vector. */
redisReply *rconn_argv(rconn *rc, int argc, const char **argv, const size_t *lens);
void rconn_close(rconn *rc);
/* Frees the credentials too. */
void rconn_free(rconn *rc);

#endif
