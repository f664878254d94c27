/* host/redis_conn.c - see redis_conn.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "redis_conn.h"

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int rconn_parse(rconn *rc, const char *url, char *err, size_t errlen) {
    memset(rc, 0, sizeof *rc);
    rc->port = 6379;
    rc->timeout_s = 10;
    rc->tls_opts.verify_server_name = 1;
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0) p += 8;
    else if (strncmp(p, "rediss://", 9) == 0) {
        p += 9;
        rc->tls = 1;
    } else {
        snprintf(err, errlen, "--redis: '%s' must start with redis:// or rediss://", strchr(url, '@') ? "<url>" : url);
        return -1;
    }
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p) rc->user = dup_n(p, (size_t)(colon - p));
            if (at > colon + 1) rc->pass = dup_n(colon + 1, (size_t)(at - colon - 1));
        } else if (at > p) {
            rc->pass = dup_n(p, (size_t)(at - p)); /* redis://password@host */
        }
        p = at + 1;
    }
    const char *end = p + strcspn(p, ":/");
    if (end == p || (size_t)(end - p) >= sizeof rc->host) {
        snprintf(err, errlen, "--redis: no host in the URL");
        rconn_free(rc);
        return -1;
    }
    memcpy(rc->host, p, (size_t)(end - p));
    rc->host[end - p] = '\0';
    p = end;
    if (*p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e == p + 1 || port <= 0 || port > 65535) {
            snprintf(err, errlen, "--redis: the port must be 1..65535");
            rconn_free(rc);
            return -1;
        }
        rc->port = (int)port;
        p = e;
    }
    if (*p == '/' && p[1]) {
        char *e;
        long db = strtol(p + 1, &e, 10);
        if (*e || db < 0) {
            snprintf(err, errlen, "--redis: the database after '/' must be a number");
            rconn_free(rc);
            return -1;
        }
        rc->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        snprintf(err, errlen, "--redis: unexpected text after the host and port");
        rconn_free(rc);
        return -1;
    }
    return 0;
}

/* Sets *dst from the string key `k` of `pool` when *dst is unset. */
static int take_str(char **dst, const cJSON *pool, const char *k, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(pool, k);
    if (!v) return 0;
    if (!cJSON_IsString(v) || !*v->valuestring) {
        snprintf(err, errlen, "pool.%s: expected a non-empty string", k);
        return -1;
    }
    if (!*dst) *dst = strdup(v->valuestring);
    return 0;
}

/* The environment overrides: variables set and non-empty win. */
static void take_env(char **dst, const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return;
    if (*dst) memset(*dst, 0, strlen(*dst));
    free(*dst);
    *dst = strdup(v);
}

int rconn_settings(rconn *rc, const cJSON *pool, char *err, size_t errlen) {
    if (pool && !cJSON_IsObject(pool)) {
        snprintf(err, errlen, "pool: expected an object");
        return -1;
    }
    rtls_opts *t = &rc->tls_opts;
    if (take_str(&rc->user, pool, "user", err, errlen) || take_str(&rc->pass, pool, "password", err, errlen) ||
        take_str(&t->ca_file, pool, "tls_ca_file", err, errlen) ||
        take_str(&t->cert_file, pool, "tls_cert_file", err, errlen) ||
        take_str(&t->key_file, pool, "tls_key_file", err, errlen) ||
        take_str(&t->server_name, pool, "tls_server_name", err, errlen))
        return -1;
    const cJSON *vn = cJSON_GetObjectItemCaseSensitive(pool, "tls_verify_server_name");
    if (vn && !cJSON_IsBool(vn)) {
        snprintf(err, errlen, "pool.tls_verify_server_name: expected true or false");
        return -1;
    }
    if (vn) t->verify_server_name = cJSON_IsTrue(vn);
    take_env(&rc->user, "SDRT_REDIS_USER");
    take_env(&rc->pass, "SDRT_REDIS_PASSWORD");
    take_env(&t->ca_file, "SDRT_REDIS_CA");
    take_env(&t->cert_file, "SDRT_REDIS_CERT");
    take_env(&t->key_file, "SDRT_REDIS_KEY");
    return 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

void rconn_clone(rconn *rc, const rconn *from) {
    *rc = *from;
    rc->c = NULL;
    rc->tls_ctx = NULL;
    rc->stream = NULL;
    rc->user = dup_or_null(from->user);
    rc->pass = dup_or_null(from->pass);
    rc->tls_opts.ca_file = dup_or_null(from->tls_opts.ca_file);
    rc->tls_opts.cert_file = dup_or_null(from->tls_opts.cert_file);
    rc->tls_opts.key_file = dup_or_null(from->tls_opts.key_file);
    rc->tls_opts.server_name = dup_or_null(from->tls_opts.server_name);
    rc->connected_once = rc->permanent = 0;
    rc->last_error[0] = rc->logged_error[0] = '\0';
}

const char *rconn_describe(const rconn *rc) {
    static _Thread_local char text[300];
    snprintf(text, sizeof text, "%s:%d/%d%s", rc->host, rc->port, rc->db, rc->tls ? " (TLS)" : "");
    return text;
}

void rconn_close(rconn *rc) {
    if (rc->c) redisFree(rc->c); /* closes the app end: a TLS pump then ends */
    rc->c = NULL;
#ifdef SDRT_HAVE_REDIS_TLS
    rtls_stop(rc->stream);
#endif
    rc->stream = NULL;
}

void rconn_free(rconn *rc) {
    rconn_close(rc);
#ifdef SDRT_HAVE_REDIS_TLS
    rtls_ctx_free(rc->tls_ctx);
#endif
    rc->tls_ctx = NULL;
    if (rc->pass) memset(rc->pass, 0, strlen(rc->pass));
    free(rc->user);
    free(rc->pass);
    rc->user = rc->pass = NULL;
    free(rc->tls_opts.ca_file);
    free(rc->tls_opts.cert_file);
    free(rc->tls_opts.key_file);
    free(rc->tls_opts.server_name);
    memset(&rc->tls_opts, 0, sizeof rc->tls_opts);
}

/* A failed connect: the reason (never a credential) and whether retrying
 * can help. Returns -1 for the caller to pass on. */
static int fail(rconn *rc, int permanent, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rc->last_error, sizeof rc->last_error, fmt, ap);
    va_end(ap);
    rc->permanent = permanent;
    rconn_close(rc);
    return -1;
}

/* The reason of a refused AUTH in words that name no credential. */
static const char *auth_reason(const char *reply) {
    if (strstr(reply, "without any password configured") || strstr(reply, "no password is set"))
        return "authentication refused: the server has no password for that user (drop the password, or set one "
               "on the server)";
    return "authentication refused: wrong user or password, or the user is disabled";
}

/* The TCP connection, then TLS when rediss:// : hiredis connects (its
 * timeout, TCP_NODELAY), and for TLS the socket is taken from it and the
 * context rebuilt on the socketpair end of the pump. */
static int connect_transport(rconn *rc) {
    struct timeval tv = {1, 0};
    rc->c = redisConnectWithTimeout(rc->host, rc->port, tv);
    if (!rc->c) return fail(rc, 0, "cannot connect: out of memory");
    if (rc->c->err) return fail(rc, 0, "cannot connect: %s", rc->c->errstr);
    if (!rc->tls) return 0;
#ifndef SDRT_HAVE_REDIS_TLS
    return fail(rc, 1, "rediss:// (TLS) needs OpenSSL, which this sdrt was built without");
#else
    char err[320];
    if (!rc->tls_ctx) {
        rc->tls_ctx = rtls_ctx_new(&rc->tls_opts, err, sizeof err);
        if (!rc->tls_ctx) return fail(rc, 1, "%s", err);
    }
    int fd = rc->c->fd;
    redisFreeKeepFd(rc->c);
    rc->c = NULL;
    int app = -1, permanent = 0;
    rc->stream = rtls_start(rc->tls_ctx, &rc->tls_opts, fd, rc->host, rc->timeout_s < 5 ? rc->timeout_s : 5, &app,
                            &permanent, err, sizeof err);
    if (!rc->stream) return fail(rc, permanent, "%s", err);
    rc->c = redisConnectFd(app);
    if (!rc->c || rc->c->err) {
        if (!rc->c) close(app);
        return fail(rc, 0, "TLS: cannot set up hiredis on the stream");
    }
    return 0;
#endif
}

int rconn_connect(rconn *rc) {
    rconn_close(rc);
    rc->permanent = 0;
    if (connect_transport(rc) != 0) return -1;
    double t = rc->timeout_s > 0 ? rc->timeout_s : 10;
    struct timeval st = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    redisSetTimeout(rc->c, st);
    /* AUTH on every connect, so a reconnect after a Redis restart is
     * authenticated again. The command text is never logged. */
    redisReply *r = rc->pass ? (rc->user ? redisCommand(rc->c, "AUTH %s %s", rc->user, rc->pass)
                                         : redisCommand(rc->c, "AUTH %s", rc->pass))
                             : redisCommand(rc->c, "PING");
    if (!r) return fail(rc, 0, "%s failed: %s", rc->pass ? "AUTH" : "PING", rc->c->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        int noauth = strncmp(r->str, "NOAUTH", 6) == 0;
        char reason[256];
        snprintf(reason, sizeof reason, "%s",
                 noauth ? "authentication required: the server asks for a password (pool.password, "
                          "$SDRT_REDIS_PASSWORD or the URL's)"
                 : rc->pass ? auth_reason(r->str)
                            : r->str);
        freeReplyObject(r);
        return fail(rc, rc->pass || noauth, "%s", reason);
    }
    freeReplyObject(r);
    if (rc->db) {
        r = redisCommand(rc->c, "SELECT %d", rc->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            char reason[256];
            snprintf(reason, sizeof reason, "SELECT %d failed: %s", rc->db, r ? r->str : rc->c->errstr);
            int permanent = r != NULL;
            if (r) freeReplyObject(r);
            return fail(rc, permanent, "%s", reason);
        }
        freeReplyObject(r);
    }
    rc->connected_once = 1;
    rc->last_error[0] = '\0';
    return 0;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps `s` seconds in 50 ms slices, asking should_stop between them.
 * Returns 1 when asked to stop. */
static int backoff_sleep(rconn *rc, double s) {
    double end = mono_s() + s;
    for (;;) {
        if (rc->should_stop && rc->should_stop()) return 1;
        double left = end - mono_s();
        if (left <= 0) return 0;
        double step = left < 0.05 ? left : 0.05;
        struct timespec ts = {0, (long)(step * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* The reply is a transient error worth retrying (Redis loading its AOF). */
static int transient(const redisReply *r) {
    return r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "LOADING", 7) == 0 || strncmp(r->str, "BUSY ", 5) == 0 ||
            strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "MASTERDOWN", 10) == 0);
}

typedef redisReply *(*issue_fn)(redisContext *c, void *arg);

static redisReply *with_retry(rconn *rc, issue_fn issue, void *arg) {
    double backoff = 0.05;
    int failed = 0, lost = 0, logged = 0;
    for (;;) {
        if (failed && rc->should_stop && rc->should_stop()) return NULL;
        if (!rc->c && rconn_connect(rc) != 0) {
            /* Each new reason once (a refused password is worth a line; the
             * same line every 2 s is not). */
            if (strcmp(rc->last_error, rc->logged_error) != 0) {
                log_msg("redis", rc->permanent ? SDRT_LOG_ERROR : SDRT_LOG_WARN, "%s: %s; retrying with backoff",
                        rconn_describe(rc), rc->last_error);
                snprintf(rc->logged_error, sizeof rc->logged_error, "%s", rc->last_error);
                logged = 1;
            }
            failed = 1;
            if (backoff_sleep(rc, backoff)) return NULL;
            backoff = backoff * 2 > 2 ? 2 : backoff * 2;
            continue;
        }
        redisReply *r = issue(rc->c, arg);
        if (r && !transient(r)) {
            if (logged) log_msg("redis", SDRT_LOG_INFO, "%s: reconnected", rconn_describe(rc));
            rc->logged_error[0] = '\0';
            if (lost) rc->reconnects++;
            return r;
        }
        if (r) freeReplyObject(r);
        else {
            rconn_close(rc); /* I/O error or timeout: the context is unusable */
            lost = 1;
        }
        failed = 1;
        if (backoff_sleep(rc, backoff)) return NULL;
        backoff = backoff * 2 > 2 ? 2 : backoff * 2;
    }
}

typedef struct fmt_arg {
    const char *fmt;
    va_list ap;
} fmt_arg;

static redisReply *issue_fmt(redisContext *c, void *arg) {
    fmt_arg *a = arg;
    va_list ap;
    va_copy(ap, a->ap);
    redisReply *r = redisvCommand(c, a->fmt, ap);
    va_end(ap);
    return r;
}

redisReply *rconn_cmd(rconn *rc, const char *fmt, ...) {
    fmt_arg a;
    a.fmt = fmt;
    va_start(a.ap, fmt);
    redisReply *r = with_retry(rc, issue_fmt, &a);
    va_end(a.ap);
    return r;
}

typedef struct argv_arg {
    int argc;
    const char **argv;
    const size_t *lens;
} argv_arg;

static redisReply *issue_argv(redisContext *c, void *arg) {
    argv_arg *a = arg;
    return redisCommandArgv(c, a->argc, a->argv, a->lens);
}

redisReply *rconn_argv(rconn *rc, int argc, const char **argv, const size_t *lens) {
    argv_arg a = {argc, argv, lens};
    return with_retry(rc, issue_argv, &a);
}
