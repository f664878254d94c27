/* host/redis_conn.h - one Redis connection for the pool commands (worker,
 * submit, pool status): URL and settings, AUTH on every connect, TLS
 * (redis_tls.h), and commands that survive a Redis restart (reconnect with
 * backoff, then retry). Internal to the host; built only when hiredis is
 * found (SDRT_HAVE_HIREDIS).
 *
 * Thread: a connection is used by one thread at a time (the caller locks);
 * several connections may run in parallel. Credentials come from the URL,
 * the config's "pool" section or the environment and are never logged:
 * rconn_describe gives the address without them, and error texts never
 * contain them. */
#ifndef SDRT_HOST_REDIS_CONN_H
#define SDRT_HOST_REDIS_CONN_H

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stddef.h>

#include "redis_tls.h"

typedef struct rconn {
    char host[256];
    int port;
    int db;
    int tls;            /* rediss:// */
    char *user;         /* ACL user, or NULL (the default user) */
    char *pass;         /* password, or NULL (no AUTH) */
    rtls_opts tls_opts; /* owned strings */
    double timeout_s;   /* socket timeout; must exceed any BLOCK used */
    redisContext *c;    /* NULL while disconnected (or after a failed command) */
    rtls_ctx *tls_ctx;  /* built at the first TLS connect */
    rtls *stream;       /* the TLS pump behind c, NULL for plain TCP */
    /* Asked after a failed attempt and during the backoff sleeps: non-zero
     * ends the retry loop (the command returns NULL). NULL: never. */
    int (*should_stop)(void);
    unsigned long reconnects; /* connections made after a lost one: a reply
                                 may have been lost with it */
    int connected_once;       /* a connect (with AUTH) has succeeded */
    int permanent;            /* the last connect failed for a reason that
                                 retrying cannot cure: AUTH refused, the
                                 server's certificate refused, bad TLS files */
    char last_error[320];     /* why the last connect failed (no credentials) */
    char logged_error[320];   /* the last reason logged (each is logged once) */
} rconn;

/* Parses redis://[user[:password]@]host[:port][/db] or rediss://... into
 * *rc (does not connect). Returns 0, or -1 with a message in err (the
 * message never contains the password). */
int rconn_parse(rconn *rc, const char *url, char *err, size_t errlen);
/* Completes the settings of a parsed rc: from `pool` (the config's "pool"
 * object, may be NULL) the keys user, password, tls_ca_file,
 * tls_cert_file, tls_key_file, tls_server_name, tls_verify_server_name
 * where the URL gave none; then $SDRT_REDIS_USER, $SDRT_REDIS_PASSWORD,
 * $SDRT_REDIS_CA, $SDRT_REDIS_CERT, $SDRT_REDIS_KEY override. Returns 0, or
 * -1 with a message naming the key in err. */
int rconn_settings(rconn *rc, const cJSON *pool, char *err, size_t errlen);
/* Copies the settings of `from` (address, credentials, TLS) into a fresh,
 * disconnected rc. */
void rconn_clone(rconn *rc, const rconn *from);
/* "host:port/db" (static storage per thread; no credentials). */
const char *rconn_describe(const rconn *rc);
/* One attempt to connect (TLS handshake, AUTH, SELECT). 0, or -1 with the
 * reason in rc->last_error and rc->permanent set when retrying cannot help
 * (not logged here: rconn_cmd logs each new reason once). */
int rconn_connect(rconn *rc);
/* Runs one command (printf-style, hiredis %s/%b), reconnecting with backoff
 * (50 ms doubling to 2 s) while Redis cannot be reached or is loading its
 * data, and retrying the command. The caller owns the reply
 * (freeReplyObject). Returns NULL only when should_stop says so, which is
 * asked after a failure only (a command to a live Redis always runs) and
 * every 50 ms of the backoff. A reply of type REDIS_REPLY_ERROR (other
 * than LOADING/BUSY) is returned as is. Commands are retried after a lost
 * connection, so they must be safe to run twice (the pool's are: XADD of
 * an event may repeat, finals go through a script guarded by a marker). */
redisReply *rconn_cmd(rconn *rc, const char *fmt, ...);
/* The same with an argument vector. */
redisReply *rconn_argv(rconn *rc, int argc, const char **argv, const size_t *lens);
void rconn_close(rconn *rc);
/* Frees the credentials and TLS settings too. */
void rconn_free(rconn *rc);

#endif
