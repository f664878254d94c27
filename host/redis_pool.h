/* host/redis_pool.h - what the pool commands share: their options, the
 * names of the pool's keys, and how a protocol line is matched to its
 * request. Internal to the host; built only with hiredis.
 *
 * Keys of pool P (the "{P}" hash tag keeps them in one Redis Cluster slot):
 *   sdrt:{P}:requests        stream of requests (fields line, reply_to)
 *   sdrt:{P}:results         default reply stream (fields rid, final, line)
 *   sdrt:{P}:dead            dead letters
 *   sdrt:{P}:control         pub/sub channel: cancel, pause, resume
 *   sdrt:{P}:final:<key>     "final written" marker of a request (TTL)
 *   sdrt:{P}:cancel:<key>    a cancel that may arrive before its job (TTL)
 *   sdrt:{P}:worker:<name>   heartbeat hash (TTL), names in sdrt:{P}:workers
 *   sdrt:{P}:attempts:<id>   who took an entry, for dead letters (TTL)
 *   sdrt:{P}:reply:<client>  a submit client's reply stream
 * Consumer group: "workers". */
#ifndef SDRT_HOST_REDIS_POOL_H
#define SDRT_HOST_REDIS_POOL_H

#include "host.h"
#include "redis_conn.h"

#define POOL_GROUP "workers"

typedef struct pool_opts {
    rconn rc;                 /* filled by pool_opts_finish */
    int have_url;             /* rc is filled (pool_opts_finish succeeded) */
    char *url;                /* --redis (a copy: the password is blanked in argv) */
    const char *pool;         /* --pool, default "default" */
    const char *consumer;     /* --consumer, default host-pid */
    long maxlen;              /* --maxlen: MAXLEN ~ of every stream */
    double visibility_s;      /* --visibility-timeout */
    int max_deliveries;       /* --max-deliveries */
    double heartbeat_s;       /* --heartbeat */
    long final_ttl_s;         /* --final-ttl: life of final markers and reply streams */
    char prefix[160];         /* "sdrt:{P}:" */
    char k_requests[200], k_results[200], k_dead[200], k_control[200], k_workers[200];
} pool_opts;

/* Sets the defaults (also applied from $SDRT_POOL_* where documented). */
void pool_opts_init(pool_opts *o);
/* Takes a pool option at argv[*i]: 1 taken, 0 not one, -1 bad (printed).
 * A password in --redis is overwritten in argv (the process list shows
 * the command line). */
int pool_take_option(pool_opts *o, int argc, char **argv, int *i);
/* Reads the config's "pool" section (--config / --set / $SDRT_CONFIG, as
 * in `ov`, which may be NULL), takes the URL (--redis, else pool.redis)
 * with its credentials and TLS settings (rconn_settings), and fills the
 * key names. 0 or -1 (printed). */
int pool_opts_finish(pool_opts *o, const char *cmd, const host_cli_overrides *ov);
/* Frees what pool_take_option and pool_opts_finish made. */
void pool_opts_free(pool_opts *o);
/* "sdrt:{P}:<a><b>" into out. */
void pool_key(const pool_opts *o, char *out, size_t n, const char *a, const char *b);
/* The key that matches a request to its answers: "e:<request_id>" for the
 * envelope, "j:<id as JSON>" for JSON-RPC; malloc'd, or NULL when the
 * request has no id (*notification set for a JSON-RPC notification).
 * *proto gets the request's protocol; *request_id (when not NULL) the
 * request_id as host.cancel names it (malloc'd, or NULL). */
char *pool_request_key(const char *line, size_t len, int *notification, int *proto, char **request_id);
/* The same key read from an answer line, and whether it is the final
 * response (else an event). NULL when the line names no request. */
char *pool_response_key(const char *line, int *is_final);
/* Options help text shared by the commands. */
extern const char POOL_OPTIONS_HELP[];

#endif
