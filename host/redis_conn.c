/* host/redis_conn.c - see redis_conn.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "host.h"
#include "redis_conn.h"
#ifdef SDRT_HAVE_HIREDIS_SSL
#include <hiredis/hiredis_ssl.h>
#endif

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
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0) p += 8;
    else if (strncmp(p, "rediss://", 9) == 0) {
        p += 9;
        rc->tls = 1;
    } else {
        snprintf(err, errlen, "--redis: '%s' must start with redis:// or rediss://", strchr(url, '@') ? "<url>" : url);
        return -1;
    }
#ifndef SDRT_HAVE_HIREDIS_SSL
    if (rc->tls) {
        snprintf(err, errlen, "--redis: rediss:// (TLS) needs hiredis_ssl, which this sdrt was built without");
        return -1;
    }
#endif
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p) rc->user = dup_n(p, (size_t)(colon - p));
            rc->pass = dup_n(colon + 1, (size_t)(at - colon - 1));
        } else {
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
    const char *eu = getenv("SDRT_REDIS_USER"), *ep = getenv("SDRT_REDIS_PASSWORD");
    if (eu && *eu) {
        free(rc->user);
        rc->user = strdup(eu);
    }
    if (ep && *ep) {
        free(rc->pass);
        rc->pass = strdup(ep);
    }
    return 0;
}

void rconn_clone(rconn *rc, const rconn *from) {
    *rc = *from;
    rc->c = NULL;
    rc->ssl = NULL;
    rc->user = from->user ? strdup(from->user) : NULL;
    rc->pass = from->pass ? strdup(from->pass) : NULL;
}

const char *rconn_describe(const rconn *rc) {
    static _Thread_local char text[300];
    snprintf(text, sizeof text, "%s:%d/%d%s", rc->host, rc->port, rc->db, rc->tls ? " (TLS)" : "");
    return text;
}

void rconn_close(rconn *rc) {
    if (rc->c) redisFree(rc->c);
    rc->c = NULL;
}

void rconn_free(rconn *rc) {
    rconn_close(rc);
#ifdef SDRT_HAVE_HIREDIS_SSL
    if (rc->ssl) redisFreeSSLContext(rc->ssl);
#endif
    rc->ssl = NULL;
    if (rc->pass) memset(rc->pass, 0, strlen(rc->pass));
    free(rc->user);
    free(rc->pass);
    rc->user = rc->pass = NULL;
}

/* Runs a setup command on a fresh connection; 0 when it succeeded. The
 * command text is not logged: AUTH carries the password. */
static int setup_ok(rconn *rc, redisReply *r, const char *what) {
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        log_msg("redis", SDRT_LOG_WARN, "%s: %s failed: %s", rconn_describe(rc), what,
                r ? (strstr(r->str, "WRONGPASS") || strstr(r->str, "NOAUTH") ? "authentication refused" : r->str)
                  : rc->c->errstr);
    if (r) freeReplyObject(r);
    return ok;
}

int rconn_connect(rconn *rc) {
    rconn_close(rc);
    struct timeval tv = {1, 0};
    rc->c = redisConnectWithTimeout(rc->host, rc->port, tv);
    if (!rc->c || rc->c->err) {
        if (rc->c) {
            log_msg("redis", SDRT_LOG_DEBUG, "%s: cannot connect: %s", rconn_describe(rc), rc->c->errstr);
            redisFree(rc->c);
        }
        rc->c = NULL;
        return -1;
    }
#ifdef SDRT_HAVE_HIREDIS_SSL
    if (rc->tls) {
        redisSSLContextError e = REDIS_SSL_CTX_NONE;
        if (!rc->ssl)
            rc->ssl = redisCreateSSLContext(getenv("SDRT_REDIS_CA"), NULL, getenv("SDRT_REDIS_CERT"),
                                            getenv("SDRT_REDIS_KEY"), rc->host, &e);
        if (!rc->ssl || redisInitiateSSLWithContext(rc->c, rc->ssl) != REDIS_OK) {
            log_msg("redis", SDRT_LOG_WARN, "%s: TLS handshake failed: %s", rconn_describe(rc),
                    rc->ssl ? rc->c->errstr : redisSSLContextGetError(e));
            rconn_close(rc);
            return -1;
        }
    }
#endif
    double t = rc->timeout_s > 0 ? rc->timeout_s : 10;
    struct timeval st = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    redisSetTimeout(rc->c, st);
    if (rc->pass) {
        redisReply *r = rc->user ? redisCommand(rc->c, "AUTH %s %s", rc->user, rc->pass)
                                 : redisCommand(rc->c, "AUTH %s", rc->pass);
        if (!setup_ok(rc, r, "AUTH")) {
            rconn_close(rc);
            return -1;
        }
    }
    if (rc->db && !setup_ok(rc, redisCommand(rc->c, "SELECT %d", rc->db), "SELECT")) {
        rconn_close(rc);
        return -1;
    }
    return 0;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
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
    int logged = 0, lost = 0;
    for (;;) {
        if (rc->should_stop && rc->should_stop()) return NULL;
        if (!rc->c && rconn_connect(rc) != 0) {
            if (!logged++) log_msg("redis", SDRT_LOG_WARN, "%s: unreachable; retrying with backoff", rconn_describe(rc));
            sleep_s(backoff);
            backoff = backoff * 2 > 2 ? 2 : backoff * 2;
            continue;
        }
        redisReply *r = issue(rc->c, arg);
        if (r && !transient(r)) {
            if (logged) log_msg("redis", SDRT_LOG_INFO, "%s: reconnected", rconn_describe(rc));
            if (lost) rc->reconnects++;
            return r;
        }
        if (r) freeReplyObject(r);
        else {
            rconn_close(rc); /* I/O error or timeout: the context is unusable */
            lost = 1;
        }
        sleep_s(backoff);
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
