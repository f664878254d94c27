/* host/redis_worker.c - `sdrt worker`: one member of a pool of sdrt hosts fed
 * from a Redis stream (docs/scale-out.md).
 *
 * The process the user starts stays small: it forks the working process and
 * starts a new one when that dies (a signal, a sanitizer report: a plugin
 * crashed), like the
 * supervisor of `sdrt serve`, but it answers nothing itself: entries the dead
 * process held are still pending in the consumer group, and the new process
 * (same consumer name) runs them again. A redelivered entry runs alone on
 * its worker, so that a crash while it runs is its own; one delivered more
 * than --max-deliveries times is dead-lettered and its client answered.
 *
 * The working process runs the host as `serve` does (host_init: router,
 * job queue, plugins, limits) with a sink that writes each request's events
 * and final response to its reply stream instead of stdout. Threads:
 *  - main: reads entries (XREADGROUP), heartbeats, claims the entries of
 *    consumers that stopped heartbeating, dispatches lines;
 *  - the job workers: their lines go through the sink, which writes with its
 *    own connection under a lock; a final goes out with its marker and the
 *    XACK in one script, so exactly one final exists per request and an
 *    entry is acknowledged only once its final is written;
 *  - control: subscribed to the pool's control channel (cancel, pause,
 *    resume by request_id). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli.h"
#include "host.h"
#include "os.h"
#include "redis_pool.h"

/* A request taken from the stream and not yet answered. */
typedef struct inflight {
    char *key;          /* pool_request_key */
    char *reply_to;
    char entry[64];     /* stream entry id */
    char dup[4][64];    /* more entries of the same request taken meanwhile */
    int n_dup;
    struct inflight *next;
} inflight;

static pool_opts g_o;
static char g_me[160];                 /* consumer name */
static char g_hostname[128];
static host_ctx g_h;
static rconn g_rd;                     /* main thread: reads, claims, heartbeats */
static rconn g_wr;                     /* the sink (job threads), under g_wr_lock */
static pthread_mutex_t g_wr_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* g_inflight, g_hb_* */
static inflight *g_inflight;
static int g_n_inflight;
static _Thread_local inflight *t_current; /* the entry being dispatched (main thread) */
static char *g_hb_devices, *g_hb_models;  /* last device.list / model.list results */
static double g_started;

#define HB_DEVICES "e:\001sdrt-pool-heartbeat-devices"
#define HB_MODELS "e:\001sdrt-pool-heartbeat-models"

/* Marker, reply and acknowledgement in one step: the first final for a
 * request is written and its entry acknowledged; a later one (a
 * redelivery that ran anyway) only acknowledges. The marker holds the
 * final line itself, so that a request repeating an answered request_id
 * gets that answer again. Returns 1 / 0. */
static const char FINAL_SCRIPT[] =
    "local first = redis.call('SET', KEYS[1], ARGV[5], 'NX', 'EX', ARGV[2])\n"
    "if first then\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'rid', ARGV[4], 'final', '1', 'line', ARGV[5])\n"
    "  if ARGV[7] == '1' then redis.call('EXPIRE', KEYS[2], ARGV[2]) end\n"
    "end\n"
    "redis.call('XACK', KEYS[3], ARGV[6], ARGV[1])\n"
    "redis.call('XDEL', KEYS[3], ARGV[1])\n"
    "if first then return 1 else return 0 end\n";

/* After a stop request, a Redis command that fails gives up at once
 * instead of retrying: the worker is leaving, and an entry whose final it
 * cannot write stays pending and runs on another worker. Every thread's
 * connection uses this, so no thread holds the write lock (or the stop)
 * in a retry loop while Redis is down. */
static atomic_int g_failed_after_stop; /* a command failed after the stop request */
static int stop_now(void) {
    if (!os_stop_requested()) return 0;
    atomic_store(&g_failed_after_stop, 1);
    return 1;
}

static double wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec * 1e3 + (double)tv.tv_usec / 1e3;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void inflight_free(inflight *f) {
    if (!f) return;
    free(f->key);
    free(f->reply_to);
    free(f);
}

/* Finds (and when `take`, unlinks) the entry of `key`. Caller holds g_lock. */
static inflight *find_locked(const char *key, int take) {
    for (inflight **pp = &g_inflight; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) != 0) continue;
        inflight *f = *pp;
        if (take) {
            *pp = f->next;
            g_n_inflight--;
        }
        return f;
    }
    return NULL;
}

static void unlink_locked(inflight *f) {
    for (inflight **pp = &g_inflight; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            g_n_inflight--;
            return;
        }
}

static int n_inflight(void) {
    pthread_mutex_lock(&g_lock);
    int n = g_n_inflight;
    pthread_mutex_unlock(&g_lock);
    return n;
}

static int is_default_reply(const char *reply_to) { return strcmp(reply_to, g_o.k_results) == 0; }

/* Writes a request's final response (see FINAL_SCRIPT). */
static void write_final(const char *entry, const char *key, const char *reply_to, const char *line) {
    char marker[600], ttl[24], maxlen[24];
    pool_key(&g_o, marker, sizeof marker, "final:", key);
    snprintf(ttl, sizeof ttl, "%ld", g_o.final_ttl_s);
    snprintf(maxlen, sizeof maxlen, "%ld", g_o.maxlen);
    const char *argv[] = {"EVAL", FINAL_SCRIPT, "3", marker, reply_to, g_o.k_requests, entry, ttl, maxlen,
                          key,    line,         POOL_GROUP, is_default_reply(reply_to) ? "0" : "1"};
    pthread_mutex_lock(&g_wr_lock);
    redisReply *r = rconn_argv(&g_wr, 13, argv, NULL);
    pthread_mutex_unlock(&g_wr_lock);
    if (!r) {
        log_msg("worker", SDRT_LOG_WARN, "stopping before the final of entry %s was written: it stays pending", entry);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR)
        log_msg("worker", SDRT_LOG_ERROR, "writing the final of entry %s: %s", entry, r->str);
    else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        log_msg("worker", SDRT_LOG_INFO, "entry %s: its request was already answered; this run's final dropped", entry);
    freeReplyObject(r);
}

static void write_event(const char *key, const char *reply_to, const char *line) {
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%ld", g_o.maxlen);
    const char *argv[] = {"XADD", reply_to, "MAXLEN", "~", maxlen, "*", "rid", key ? key : "", "final", "0", "line", line};
    pthread_mutex_lock(&g_wr_lock);
    redisReply *r = rconn_argv(&g_wr, 12, argv, NULL);
    pthread_mutex_unlock(&g_wr_lock);
    if (r) freeReplyObject(r);
}

/* A stored final written again (handle_entry). */
static void write_event_final(const char *key, const char *reply_to, const char *line, size_t len) {
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%ld", g_o.maxlen);
    const char *argv[] = {"XADD", reply_to, "MAXLEN", "~", maxlen, "*", "rid", key, "final", "1", "line", line};
    size_t lens[12];
    for (int i = 0; i < 12; i++) lens[i] = i == 11 ? len : strlen(argv[i]);
    pthread_mutex_lock(&g_wr_lock);
    redisReply *r = rconn_argv(&g_wr, 12, argv, lens);
    pthread_mutex_unlock(&g_wr_lock);
    if (r) freeReplyObject(r);
}

/* The answers of the heartbeat's own device.list / model.list requests. */
static int take_heartbeat_answer(const char *key, const char *line) {
    char **slot = strcmp(key, HB_DEVICES) == 0 ? &g_hb_devices : strcmp(key, HB_MODELS) == 0 ? &g_hb_models : NULL;
    if (!slot) return 0;
    cJSON *o = cJSON_Parse(line);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "result");
    if (!res) res = cJSON_GetObjectItemCaseSensitive(o, "data");
    char *text = res ? cJSON_PrintUnformatted(res) : NULL;
    pthread_mutex_lock(&g_lock);
    if (text) {
        free(*slot);
        *slot = strdup(text);
    }
    pthread_mutex_unlock(&g_lock);
    cJSON_free(text);
    cJSON_Delete(o);
    return 1;
}

/* host_sink.line: every event and final response of the host. */
static void pool_sink(void *ctx, const char *line, int slot) {
    (void)ctx;
    (void)slot;
    int is_final;
    char *key = pool_response_key(line, &is_final);
    if (key && is_final && take_heartbeat_answer(key, line)) {
        free(key);
        return;
    }
    pthread_mutex_lock(&g_lock);
    /* Lines made while the main thread dispatches an entry are that entry's
     * (a parse error names no request; a duplicate names a running one). */
    inflight *f = t_current ? t_current : key ? find_locked(key, 0) : NULL;
    if (f && is_final) unlink_locked(f);
    pthread_mutex_unlock(&g_lock);
    if (!f) {
        /* A request no entry carried: a plugin's request of its own
         * (sdrt_host_api.start, e.g. processing.execute "wait": false).
         * Its lines go to the pool's results stream, its final marked as
         * one; one log line per request (at its final), not one per event.
         * The heartbeat's own requests ("e:\001...") go nowhere. */
        int internal = key && strncmp(key, "e:\001", 3) == 0;
        if (!internal && is_final) {
            log_msg("worker", SDRT_LOG_INFO, "the answers of %s (no entry of this worker) went to %s",
                    key ? key + 2 : "a request without an id", g_o.k_results);
            write_event_final(key ? key : "", g_o.k_results, line, strlen(line));
        } else if (!internal) {
            write_event(key, g_o.k_results, line);
        }
        free(key);
        return;
    }
    if (is_final) {
        write_final(f->entry, f->key, f->reply_to, line);
        for (int i = 0; i < f->n_dup; i++) {
            const char *argv[] = {"XACK", g_o.k_requests, POOL_GROUP, f->dup[i]};
            pthread_mutex_lock(&g_wr_lock);
            redisReply *r = rconn_argv(&g_wr, 4, argv, NULL);
            if (r) freeReplyObject(r);
            const char *dv[] = {"XDEL", g_o.k_requests, f->dup[i]};
            r = rconn_argv(&g_wr, 3, dv, NULL);
            pthread_mutex_unlock(&g_wr_lock);
            if (r) freeReplyObject(r);
        }
        if (f == t_current) t_current = NULL;
        inflight_free(f);
    } else {
        write_event(f->key, f->reply_to, line);
    }
    free(key);
}

static int key_exists(rconn *rc, const char *a, const char *b) {
    char k[700];
    pool_key(&g_o, k, sizeof k, a, b);
    redisReply *r = rconn_cmd(rc, "EXISTS %s", k);
    int yes = r && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    if (r) freeReplyObject(r);
    return yes;
}

/* Acknowledged entries leave the stream, so that its length is the backlog
 * and MAXLEN bounds only that. */
static void ack(rconn *rc, const char *entry) {
    redisReply *r = rconn_cmd(rc, "XACK %s %s %s", g_o.k_requests, POOL_GROUP, entry);
    if (r) freeReplyObject(r);
    r = rconn_cmd(rc, "XDEL %s %s", g_o.k_requests, entry);
    if (r) freeReplyObject(r);
}

/* After too many deliveries: the entry goes to the dead-letter stream with
 * who took it, and its client gets a final failure naming that. */
static void dead_letter(const char *entry, const char *line, size_t len, const char *key, const char *reply_to,
                        long deliveries) {
    char k[300], maxlen[24], d[24];
    pool_key(&g_o, k, sizeof k, "attempts:", entry);
    redisReply *r = rconn_cmd(&g_rd, "LRANGE %s 0 -1", k);
    cJSON *attempts = cJSON_CreateArray();
    if (r && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++) cJSON_AddItemToArray(attempts, cJSON_CreateString(r->element[i]->str));
    if (r) freeReplyObject(r);
    char *attempts_json = cJSON_PrintUnformatted(attempts);
    cJSON_Delete(attempts);
    char reason[512];
    snprintf(reason, sizeof reason,
             "delivered %ld times (max_deliveries %d) without a final response: each worker that took it stopped "
             "(crashed, was killed or lost Redis) before answering",
             deliveries, g_o.max_deliveries);
    snprintf(maxlen, sizeof maxlen, "%ld", g_o.maxlen);
    snprintf(d, sizeof d, "%ld", deliveries);
    const char *argv[] = {"XADD",     g_o.k_dead, "MAXLEN",  "~",    maxlen,  "*",      "entry",  entry,
                          "line",     line,       "reply_to", reply_to, "deliveries", d, "reason", reason,
                          "attempts", attempts_json ? attempts_json : "[]"};
    size_t lens[18];
    for (int i = 0; i < 18; i++) lens[i] = strlen(argv[i]);
    lens[9] = len;
    r = rconn_argv(&g_rd, 18, argv, lens);
    if (r) freeReplyObject(r);
    log_msg("worker", SDRT_LOG_WARN, "entry %s dead-lettered to %s: %s", entry, g_o.k_dead, reason);
    proto_request req;
    char perr[256];
    proto_parse(line, len, &req, perr, sizeof perr);
    cJSON *data = cJSON_CreateObject();
    cJSON *dl = cJSON_AddObjectToObject(data, "dead_letter");
    cJSON_AddStringToObject(dl, "stream", g_o.k_dead);
    cJSON_AddStringToObject(dl, "entry", entry);
    proto_add_int(dl, "deliveries", deliveries);
    cJSON_AddItemToObject(dl, "attempts", cJSON_Parse(attempts_json ? attempts_json : "[]"));
    char *data_json = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    sdrt_error *err = error_new(SDRT_INTERNAL, data_json, "dead-lettered: %s", reason);
    char *answer = proto_format_error(req.proto, req.request_id, req.rpc_id, err, NULL, NULL);
    write_final(entry, key, reply_to, answer);
    free(answer);
    error_free(err);
    cJSON_free(data_json);
    cJSON_free(attempts_json);
    proto_request_free(&req);
}

static int g_isolating; /* a redelivered entry runs alone (main thread) */

/* One entry of the request stream, delivered `deliveries` times. */
static void handle_entry(const char *entry, const char *line, size_t len, const char *reply_to, long deliveries) {
    if (!reply_to || !*reply_to) reply_to = g_o.k_results;
    int notification = 0, proto = 0;
    char *request_id = NULL;
    char *key = pool_request_key(line, len, &notification, &proto, &request_id);
    if (notification) {
        /* No answer will come to tell when it is done: at most once. */
        ack(&g_rd, entry);
        server_handle_line(&g_h, line, len);
        free(request_id);
        return;
    }
    if (!key) {
        key = malloc(strlen(entry) + 3);
        sprintf(key, "x:%s", entry);
    }
    char mk[700];
    pool_key(&g_o, mk, sizeof mk, "final:", key);
    redisReply *done = rconn_cmd(&g_rd, "GET %s", mk);
    if (done && done->type == REDIS_REPLY_STRING) {
        /* Answered already. A redelivery: its final is in its reply stream.
         * A first delivery (the request sent again with the same id, or a
         * client's XADD repeated after a lost reply): the stored answer. */
        log_msg("worker", SDRT_LOG_INFO, "entry %s: its request was answered already; %s", entry,
                deliveries > 1 ? "acknowledged" : "the stored answer sent again");
        if (deliveries == 1) write_event_final(key, reply_to, done->str, done->len);
        freeReplyObject(done);
        ack(&g_rd, entry);
        free(key);
        free(request_id);
        return;
    }
    if (done) freeReplyObject(done);
    /* The same request twice (a client's XADD repeated after a lost reply):
     * the running one answers for both. */
    pthread_mutex_lock(&g_lock);
    inflight *same = find_locked(key, 0);
    if (same && same->n_dup < 4) snprintf(same->dup[same->n_dup++], 64, "%s", entry);
    pthread_mutex_unlock(&g_lock);
    if (same) {
        log_msg("worker", SDRT_LOG_INFO, "entry %s repeats a request running here; answered with it", entry);
        free(key);
        free(request_id);
        return;
    }
    if (deliveries > g_o.max_deliveries) {
        dead_letter(entry, line, len, key, reply_to, deliveries);
        free(key);
        free(request_id);
        return;
    }
    char k[300], note[400];
    pool_key(&g_o, k, sizeof k, "attempts:", entry);
    snprintf(note, sizeof note, "%s (host %s, pid %d) took it at %.0f ms, delivery %ld", g_me, g_hostname, (int)getpid(),
             wall_ms(), deliveries);
    redisReply *r = rconn_cmd(&g_rd, "RPUSH %s %s", k, note);
    if (r) freeReplyObject(r);
    r = rconn_cmd(&g_rd, "EXPIRE %s %ld", k, g_o.final_ttl_s);
    if (r) freeReplyObject(r);
    if (deliveries > 1) g_isolating = 1;
    inflight *f = calloc(1, sizeof *f);
    f->key = key;
    f->reply_to = strdup(reply_to);
    snprintf(f->entry, sizeof f->entry, "%s", entry);
    if (key[0] == 'x') {
        /* Answers to a request without an id could not be told apart. */
        pthread_mutex_lock(&g_lock);
        g_n_inflight++;
        f->next = g_inflight;
        g_inflight = f;
        pthread_mutex_unlock(&g_lock);
        proto_request req;
        char perr[256];
        sdrt_status st = proto_parse(line, len, &req, perr, sizeof perr);
        if (st == SDRT_OK) {
            sdrt_error *e = error_new(SDRT_INVALID_REQUEST, NULL, "request_id: required for requests through a pool");
            char *answer = proto_format_error(req.proto, NULL, req.rpc_id, e, NULL, NULL);
            t_current = f;
            pool_sink(NULL, answer, -1);
            t_current = NULL;
            free(answer);
            error_free(e);
            proto_request_free(&req);
            free(request_id);
            return;
        }
        proto_request_free(&req);
    } else {
        pthread_mutex_lock(&g_lock);
        g_n_inflight++;
        f->next = g_inflight;
        g_inflight = f;
        pthread_mutex_unlock(&g_lock);
    }
    t_current = f;
    server_handle_line(&g_h, line, len);
    t_current = NULL;
    /* A cancel sent before this worker took the job. */
    if (request_id && key_exists(&g_rd, "cancel:", request_id)) jobs_cancel(request_id);
    free(request_id);
}

/* Fields of a stream entry: `line` and `reply_to`. */
static void entry_fields(const redisReply *fields, const char **line, size_t *len, const char **reply_to) {
    *line = NULL;
    *len = 0;
    *reply_to = NULL;
    if (!fields || fields->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const char *f = fields->element[i]->str;
        if (strcmp(f, "line") == 0) {
            *line = fields->element[i + 1]->str;
            *len = fields->element[i + 1]->len;
        } else if (strcmp(f, "reply_to") == 0) {
            *reply_to = fields->element[i + 1]->str;
        }
    }
}

static void handle_entry_reply(const redisReply *e, long deliveries) {
    const char *id = e->element[0]->str;
    const char *line, *reply_to;
    size_t len;
    if (e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY) {
        /* Trimmed away by MAXLEN while pending: nothing left to run. */
        log_msg("worker", SDRT_LOG_WARN, "entry %s was trimmed from %s (MAXLEN) before it ran; acknowledged", id,
                g_o.k_requests);
        ack(&g_rd, id);
        return;
    }
    entry_fields(e->element[1], &line, &len, &reply_to);
    if (!line) {
        log_msg("worker", SDRT_LOG_WARN, "entry %s has no 'line' field; acknowledged and skipped", id);
        ack(&g_rd, id);
        return;
    }
    handle_entry(id, line, len, reply_to, deliveries);
}

static long deliveries_of(const char *id) {
    redisReply *r = rconn_cmd(&g_rd, "XPENDING %s %s %s %s 1", g_o.k_requests, POOL_GROUP, id, id);
    long n = 1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements >= 4)
        n = (long)r->element[0]->element[3]->integer;
    if (r) freeReplyObject(r);
    return n;
}

/* The group may be missing (a new pool, or a Redis that lost its data). */
static void ensure_group(void) {
    redisReply *r = rconn_cmd(&g_rd, "XGROUP CREATE %s %s 0 MKSTREAM", g_o.k_requests, POOL_GROUP);
    if (r && r->type == REDIS_REPLY_ERROR && !strstr(r->str, "BUSYGROUP"))
        log_msg("worker", SDRT_LOG_ERROR, "XGROUP CREATE: %s", r->str);
    if (r) freeReplyObject(r);
}

/* Reads entries; `from` is ">" (new ones) or an id (this consumer's own
 * pending entries after it). Returns the reply or NULL. */
static redisReply *read_group(const char *from, int count, int block_ms) {
    char c[16], b[16];
    snprintf(c, sizeof c, "%d", count);
    snprintf(b, sizeof b, "%d", block_ms);
    const char *argv[] = {"XREADGROUP", "GROUP", POOL_GROUP, g_me, "COUNT", c, "BLOCK", b, "STREAMS", g_o.k_requests, from};
    int argc = block_ms >= 0 ? 11 : 9;
    if (block_ms < 0) {
        argv[6] = "STREAMS";
        argv[7] = g_o.k_requests;
        argv[8] = from;
    }
    redisReply *r = rconn_argv(&g_rd, argc, argv, NULL);
    if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOGROUP")) {
        freeReplyObject(r);
        ensure_group();
        return NULL;
    }
    return r;
}

static const redisReply *entries_of(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements < 2 || s->element[1]->type != REDIS_REPLY_ARRAY) return NULL;
    return s->element[1];
}

/* This consumer's own pending entries (left by a process of the same name
 * that died), one at a time. Returns 1 when one was run, 0 when none left. */
static int replay_own(char *cursor, size_t n) {
    redisReply *r = read_group(cursor, 1, -1);
    const redisReply *es = entries_of(r);
    int ran = 0;
    if (es && es->elements > 0) {
        const redisReply *e = es->element[0];
        snprintf(cursor, n, "%s", e->element[0]->str);
        handle_entry_reply(e, deliveries_of(cursor));
        ran = 1;
    }
    if (r) freeReplyObject(r);
    return ran;
}

/* Claims one entry pending longer than the visibility timeout on a consumer
 * whose heartbeat expired. Returns 1 when one was claimed and run. */
static int claim_abandoned(void) {
    char idle[24];
    snprintf(idle, sizeof idle, "%.0f", g_o.visibility_s * 1e3);
    redisReply *p = rconn_cmd(&g_rd, "XPENDING %s %s IDLE %s - + 16", g_o.k_requests, POOL_GROUP, idle);
    int ran = 0;
    for (size_t i = 0; p && p->type == REDIS_REPLY_ARRAY && i < p->elements && !ran; i++) {
        const redisReply *x = p->element[i];
        if (x->elements < 4) continue;
        const char *id = x->element[0]->str, *consumer = x->element[1]->str;
        if (strcmp(consumer, g_me) == 0 || key_exists(&g_rd, "worker:", consumer)) continue;
        long count = (long)x->element[3]->integer;
        redisReply *c = rconn_cmd(&g_rd, "XCLAIM %s %s %s %s %s", g_o.k_requests, POOL_GROUP, g_me, idle, id);
        if (c && c->type == REDIS_REPLY_ARRAY && c->elements == 1) {
            const redisReply *e = c->element[0];
            if (e->type == REDIS_REPLY_ARRAY) {
                log_msg("worker", SDRT_LOG_INFO, "claimed entry %s from %s (heartbeat expired)", id, consumer);
                handle_entry_reply(e, count + 1);
                ran = 1;
            } else {
                ack(&g_rd, id); /* claimed, but trimmed away: nothing to run */
            }
        }
        if (c) freeReplyObject(c);
    }
    if (p) freeReplyObject(p);
    return ran;
}

/* Asks this host for its devices and models; the answers land in the sink
 * (take_heartbeat_answer). Only when some plugin serves the type. */
static void refresh_inventory(void) {
    static const char *const asks[][2] = {{"device.list", HB_DEVICES}, {"model.list", HB_MODELS}};
    for (int i = 0; i < 2; i++) {
        int known = 0;
        if (!loader_find(&g_h.plugins, asks[i][0], &known)) continue;
        char line[200];
        snprintf(line, sizeof line, "{\"type\":\"%s\",\"request_id\":\"\\u0001%s\",\"data\":{}}", asks[i][0],
                 asks[i][1] + 3);
        server_handle_line(&g_h, line, strlen(line));
    }
}

static void heartbeat(void) {
    char k[300], ms[32], up[32], q[16], n[16], pid[16], ttl[24];
    pool_key(&g_o, k, sizeof k, "worker:", g_me);
    snprintf(ms, sizeof ms, "%.0f", wall_ms());
    snprintf(up, sizeof up, "%.0f", g_started);
    snprintf(q, sizeof q, "%d", jobs_queue_depth());
    snprintf(n, sizeof n, "%d", n_inflight());
    snprintf(pid, sizeof pid, "%d", (int)getppid());
    double t = g_o.heartbeat_s * 3 < 1 ? 1 : g_o.heartbeat_s * 3;
    snprintf(ttl, sizeof ttl, "%.0f", t * 1e3);
    cJSON *plugins = cJSON_CreateArray();
    for (int i = 0; i < g_h.plugins.count; i++)
        cJSON_AddItemToArray(plugins, cJSON_CreateString(g_h.plugins.items[i]->desc->id));
    char *plugins_json = cJSON_PrintUnformatted(plugins);
    cJSON_Delete(plugins);
    pthread_mutex_lock(&g_lock);
    char *devices = strdup(g_hb_devices ? g_hb_devices : "null");
    char *models = strdup(g_hb_models ? g_hb_models : "null");
    /* In-flight entries: their idle time is reset so that no live worker's
     * job looks abandoned, however long it runs. */
    int ids_n = 0;
    const char **argv = malloc(sizeof(char *) * (size_t)(g_n_inflight + 8));
    char (*ids)[64] = malloc(64 * (size_t)(g_n_inflight + 1));
    for (inflight *f = g_inflight; f; f = f->next) snprintf(ids[ids_n++], 64, "%s", f->entry);
    pthread_mutex_unlock(&g_lock);
    const char *hv[] = {"HSET",        k,  "id",        g_me,  "host",      g_hostname, "pid",     pid,
                        "devices",     devices, "models", models, "plugins", plugins_json ? plugins_json : "[]",
                        "queue_depth", q,  "in_flight", n,     "last_seen_ms", ms,      "started_ms", up,
                        "pool",        g_o.pool};
    redisReply *r = rconn_argv(&g_rd, 24, hv, NULL);
    if (r) freeReplyObject(r);
    r = rconn_cmd(&g_rd, "PEXPIRE %s %s", k, ttl);
    if (r) freeReplyObject(r);
    r = rconn_cmd(&g_rd, "SADD %s %s", g_o.k_workers, g_me);
    if (r) freeReplyObject(r);
    if (ids_n > 0) {
        int a = 0;
        argv[a++] = "XCLAIM";
        argv[a++] = g_o.k_requests;
        argv[a++] = POOL_GROUP;
        argv[a++] = g_me;
        argv[a++] = "0";
        for (int i = 0; i < ids_n; i++) argv[a++] = ids[i];
        argv[a++] = "JUSTID"; /* JUSTID: the delivery count stays */
        r = rconn_argv(&g_rd, a, argv, NULL);
        if (r) freeReplyObject(r);
    }
    free(argv);
    free(ids);
    free(devices);
    free(models);
    cJSON_free(plugins_json);
}

/* The control channel: {"type":"host.cancel"|"host.pause"|"host.resume",
 * "request_id":..., "when":"now"|"after_image"} reaches every worker; the one
 * running the request acts on it, the others find nothing. */
static void *control_thread(void *arg) {
    (void)arg;
    rconn sub;
    rconn_clone(&sub, &g_rd);
    sub.timeout_s = 0; /* set below: a subscriber waits without a bound */
    for (;;) {
        if (!sub.c) {
            sub.timeout_s = 86400 * 365.0;
            redisReply *r = rconn_cmd(&sub, "SUBSCRIBE %s", g_o.k_control);
            if (r) freeReplyObject(r);
            if (!r) return NULL;
        }
        void *reply = NULL;
        if (redisGetReply(sub.c, &reply) != REDIS_OK) {
            rconn_close(&sub);
            sleep_ms(100);
            continue;
        }
        redisReply *m = reply;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 && strcmp(m->element[0]->str, "message") == 0) {
            cJSON *o = cJSON_Parse(m->element[2]->str);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "request_id");
            const cJSON *when = cJSON_GetObjectItemCaseSensitive(o, "when");
            if (cJSON_IsString(t) && cJSON_IsString(id)) {
                sdrt_status st = SDRT_NOT_FOUND;
                if (strcmp(t->valuestring, "host.cancel") == 0)
                    st = cJSON_IsString(when) && strcmp(when->valuestring, "after_image") == 0
                             ? jobs_stop_after_item(id->valuestring)
                             : jobs_cancel(id->valuestring);
                else if (strcmp(t->valuestring, "host.pause") == 0) st = jobs_pause(id->valuestring, 1);
                else if (strcmp(t->valuestring, "host.resume") == 0) st = jobs_pause(id->valuestring, 0);
                if (st == SDRT_OK)
                    log_msg("worker", SDRT_LOG_INFO, "%s of '%s' applied here", t->valuestring, id->valuestring);
            }
            cJSON_Delete(o);
        }
        freeReplyObject(m);
    }
}

/* The working process's exit status when it could not start (a bad config,
 * no threads): the parent gives up instead of starting it again. */
#define WORKER_START_FAILED 3

/* Waits until no job is in flight or `until` (host clock) passes, and
 * gives up early once a Redis command failed after the stop request: the
 * finals of what still runs could not be written anyway. Returns the jobs
 * still in flight. */
static int wait_jobs(double until) {
    for (;;) {
        double step = host_now() + 0.05;
        int n = jobs_wait_idle(step < until ? step : until);
        if (n == 0 || host_now() >= until || atomic_load(&g_failed_after_stop)) return n;
    }
}

/* One PING with a 1 s bound (a stopping worker must not wait for a silent
 * network); the main connection is closed when it fails. */
static int redis_reachable(void) {
    if (!g_rd.c) return 0; /* its last command failed */
    struct timeval tv = {1, 0};
    redisSetTimeout(g_rd.c, tv);
    redisReply *r = redisCommand(g_rd.c, "PING");
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r) freeReplyObject(r);
    if (!ok) rconn_close(&g_rd);
    return ok;
}

static int worker_process(host_cli_overrides *ov) {
    rconn_clone(&g_rd, &g_o.rc);
    rconn_clone(&g_wr, &g_o.rc);
    /* A password or certificate Redis refuses is a configuration error:
     * said once, and the worker does not start (nor restart). A Redis that
     * is not up yet is waited for. */
    if (rconn_connect(&g_rd) != 0) {
        if (g_rd.permanent) {
            log_msg("worker", SDRT_LOG_ERROR, "cannot use Redis at %s: %s", rconn_describe(&g_rd), g_rd.last_error);
            return WORKER_START_FAILED;
        }
        log_msg("worker", SDRT_LOG_WARN, "Redis at %s: %s; waiting for it", rconn_describe(&g_rd), g_rd.last_error);
        snprintf(g_rd.logged_error, sizeof g_rd.logged_error, "%s", g_rd.last_error);
    }
    if (host_init(&g_h, ov, 0) != 0) return WORKER_START_FAILED;
    g_h.sink.line = pool_sink;
    g_h.sink.ctx = NULL;
    os_catch_stop_requests();
    g_started = wall_ms();
    g_rd.should_stop = stop_now;
    g_wr.should_stop = stop_now;
    ensure_group();
    pthread_t ctl;
    if (pthread_create(&ctl, NULL, control_thread, NULL) == 0) pthread_detach(ctl);
    log_msg("worker", SDRT_LOG_INFO, "%s joined pool '%s' on %s: %d plugin(s), %d job worker(s)", g_me, g_o.pool,
            rconn_describe(&g_rd), g_h.plugins.count, g_h.cfg.workers);
    int capacity = g_h.cfg.workers + 1;
    char cursor[64] = "0";
    int own_done = 0;
    double next_hb = 0, next_scan = 0, next_inventory = 0;
    unsigned long seen_reconnects = 0;
    while (!os_stop_requested()) {
        if (g_rd.reconnects != seen_reconnects) {
            /* A read whose reply was lost left entries pending on this
             * consumer that it never saw: replay its own pending ones. */
            seen_reconnects = g_rd.reconnects;
            own_done = 0;
            snprintf(cursor, sizeof cursor, "0");
        }
        jobs_tick();
        double now = host_now();
        if (now >= next_inventory) {
            refresh_inventory();
            next_inventory = now + 10;
        }
        if (now >= next_hb) {
            heartbeat();
            next_hb = now + g_o.heartbeat_s;
        }
        int n = n_inflight();
        if (g_isolating && n > 0) {
            sleep_ms(5);
            continue;
        }
        g_isolating = 0;
        if (!own_done) {
            if (n > 0) {
                sleep_ms(5);
                continue;
            }
            if (!replay_own(cursor, sizeof cursor)) own_done = 1;
            continue;
        }
        if (n == 0 && now >= next_scan) {
            next_scan = now + (g_o.visibility_s / 4 < 0.5 ? g_o.visibility_s / 4 : 0.5);
            if (claim_abandoned()) continue;
        }
        if (n >= capacity) {
            sleep_ms(2);
            continue;
        }
        /* A short block: heartbeats, claims and deadlines go on while idle. */
        double left = next_hb - host_now();
        int block = left < 0.01 ? 10 : left > 0.25 ? 250 : (int)(left * 1e3);
        redisReply *r = read_group(">", capacity - n, block);
        const redisReply *es = entries_of(r);
        for (size_t i = 0; es && i < es->elements; i++) handle_entry_reply(es->element[i], 1);
        if (r) freeReplyObject(r);
    }
    /* Stop: take nothing more; what runs may finish within the grace, what
     * does not stays pending and is claimed by another worker. With Redis
     * unreachable there is no grace: no final could be written, so the
     * jobs are cancelled at once and the worker leaves within about 1 s. */
    log_msg("worker", SDRT_LOG_INFO, "%s stopping: %d request(s) in flight", g_me, n_inflight());
    atomic_store(&g_h.shutting_down, 1);
    int up = redis_reachable();
    if (!up) {
        atomic_store(&g_failed_after_stop, 1);
        log_msg("worker", SDRT_LOG_WARN,
                "Redis at %s is unreachable: the %d request(s) in flight are cancelled; their entries stay pending "
                "and run on another worker",
                rconn_describe(&g_rd), n_inflight());
    }
    int left = up ? wait_jobs(host_now() + g_h.cfg.shutdown_grace_s) : jobs_in_flight();
    if (left == 0 && n_inflight() == 0 && g_rd.c && !atomic_load(&g_failed_after_stop)) {
        /* Gone for good: its name leaves the pool at once (one try each,
         * bounded by the 1 s timeout set above; the heartbeat expires anyway). */
        char k[300];
        pool_key(&g_o, k, sizeof k, "worker:", g_me);
        redisReply *r = redisCommand(g_rd.c, "DEL %s", k);
        if (r) freeReplyObject(r);
        r = g_rd.c->err ? NULL : redisCommand(g_rd.c, "SREM %s %s", g_o.k_workers, g_me);
        if (r) freeReplyObject(r);
    }
    jobs_cancel_all(3);
    double grace = g_h.cfg.cancel_grace_s + 0.5;
    if (atomic_load(&g_failed_after_stop) && grace > 1) grace = 1;
    left = jobs_wait_idle(host_now() + grace);
    if (left > 0) {
        /* Plugins still inside a step that ignores cancel: unloading them
         * under their threads is unsafe, and nothing they produce could be
         * delivered. Their entries stay pending. */
        log_msg("worker", SDRT_LOG_WARN, "%d job(s) did not end within %.1f s of their cancel; leaving without them",
                left, grace);
        _exit(0);
    }
    host_fini(&g_h);
    rconn_free(&g_rd);
    _exit(0); /* the control thread blocks in a read: no orderly join */
}

#ifndef _WIN32
static volatile sig_atomic_t g_child, g_stop;

static void on_stop(int sig) {
    g_stop = sig;
    if (g_child > 0) kill((pid_t)g_child, sig);
}
#endif

static int run_worker(host_cli_overrides *ov);

int cmd_worker(int argc, char **argv) {
    host_cli_overrides ov = {0};
    pool_opts_init(&g_o);
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        int r = pool_take_option(&g_o, argc, argv, &i);
        if (r == 0) r = cli_take_host_option(&ov, argc, argv, &i);
        if (r == 0) fprintf(stderr, "sdrt worker: unknown option '%s'\n", argv[i]);
        if (r <= 0) rc = 2;
    }
    if (rc == 0 && pool_opts_finish(&g_o, "worker", &ov) != 0) rc = 2;
    if (rc == 0) rc = run_worker(&ov);
    cli_overrides_free(&ov);
    pool_opts_free(&g_o);
    return rc;
}

/* The process the user started: forks the working process, and a new one
 * after each crash. */
static int run_worker(host_cli_overrides *ov) {
    gethostname(g_hostname, sizeof g_hostname - 1);
    if (g_o.consumer) snprintf(g_me, sizeof g_me, "%s", g_o.consumer);
    else snprintf(g_me, sizeof g_me, "%s-%d", g_hostname, (int)getpid());
#ifdef _WIN32
    return worker_process(ov);
#else
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    double backoff = 0.2;
    for (;;) {
        if (g_stop) return 0;
        double t0 = wall_ms();
        pid_t pid = fork();
        if (pid < 0) {
            log_msg("worker", SDRT_LOG_ERROR, "fork: %s", strerror(errno));
            return 1;
        }
        if (pid == 0) {
#ifdef __linux__
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the process the user started */
#endif
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            _exit(worker_process(ov));
        }
        g_child = pid;
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        g_child = 0;
        if (g_stop) return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_START_FAILED) return 1;
        /* A signal, or an exit it did not choose (a sanitizer's report, a
         * plugin calling exit): start again. */
        char how[48];
        if (WIFSIGNALED(status)) snprintf(how, sizeof how, "signal %d", WTERMSIG(status));
        else snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(status));
        if (wall_ms() - t0 > 30e3) backoff = 0.2;
        log_msg("worker", SDRT_LOG_WARN,
                "the working process died (%s); starting a new one in %.1f s (its entries stay pending and "
                "run again)",
                how, backoff);
        sleep_ms((long)(backoff * 1e3));
        backoff = backoff * 2 > 5 ? 5 : backoff * 2;
    }
#endif
}
