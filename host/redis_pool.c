/* host/redis_pool.c - see redis_pool.h. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "redis_pool.h"

const char POOL_OPTIONS_HELP[] =
    "pool options:\n"
    "  --redis URL               redis://[user[:password]@]host[:port][/db] or rediss:// (TLS)\n"
    "                            (default: the config's pool.redis); credentials and TLS files also\n"
    "                            from the config's \"pool\" section and $SDRT_REDIS_USER, $SDRT_REDIS_PASSWORD,\n"
    "                            $SDRT_REDIS_CA, $SDRT_REDIS_CERT, $SDRT_REDIS_KEY (docs/scale-out.md)\n"
    "  --pool NAME               pool name (default \"default\")\n"
    "  --config FILE, --set pool.KEY=VALUE\n"
    "                            the config's \"pool\" section: redis, user, password, tls_ca_file,\n"
    "                            tls_cert_file, tls_key_file, tls_server_name, tls_verify_server_name\n"
    "  --maxlen N                approximate bound of every stream (default 100000 entries)\n"
    "  --final-ttl S             life of final markers and reply streams (default 86400 s)\n";

void pool_opts_init(pool_opts *o) {
    memset(o, 0, sizeof *o);
    o->pool = "default";
    o->maxlen = 100000;
    o->visibility_s = 30;
    o->max_deliveries = 3;
    o->heartbeat_s = 1;
    o->final_ttl_s = 86400;
}

static int number(const char *opt, const char *v, double lo, double hi, double *out) {
    char *e;
    double d = strtod(v, &e);
    if (e == v || *e || d < lo || d > hi) {
        fprintf(stderr, "sdrt: %s: '%s' is not a number in %g..%g\n", opt, v, lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

int pool_take_option(pool_opts *o, int argc, char **argv, int *i) {
    static const char *const opts[] = {"--redis",     "--pool",         "--consumer",  "--maxlen",
                                       "--visibility-timeout", "--max-deliveries", "--heartbeat", "--final-ttl", NULL};
    int which = -1;
    for (int k = 0; opts[k]; k++)
        if (strcmp(argv[*i], opts[k]) == 0) which = k;
    if (which < 0) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "sdrt: %s needs a value\n", argv[*i]);
        return -1;
    }
    const char *opt = argv[*i], *v = argv[++*i];
    double d;
    switch (which) {
    case 0: {
        char err[256];
        rconn probe;
        if (rconn_parse(&probe, v, err, sizeof err) != 0) {
            fprintf(stderr, "sdrt: %s\n", err);
            return -1;
        }
        rconn_free(&probe);
        free(o->url);
        o->url = strdup(v);
        /* The password leaves the visible command line (ps shows argv). */
        char *scheme = strstr(argv[*i], "://"), *at = scheme ? strrchr(scheme, '@') : NULL;
        char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
        if (at && !colon) colon = scheme + 2; /* redis://password@host */
        for (char *c = colon ? colon + 1 : NULL; c && c < at; c++) *c = '*';
        return 1;
    }
    case 1:
    case 2:
        if (!*v || strlen(v) > 100 || strpbrk(v, "{}: \t\r\n")) {
            fprintf(stderr, "sdrt: %s: must be 1..100 characters without braces, colons or spaces\n", opt);
            return -1;
        }
        if (which == 1) o->pool = v;
        else o->consumer = v;
        return 1;
    case 3:
        if (number(opt, v, 100, 1e12, &d)) return -1;
        o->maxlen = (long)d;
        return 1;
    case 4:
        if (number(opt, v, 0.1, 86400, &d)) return -1;
        o->visibility_s = d;
        return 1;
    case 5:
        if (number(opt, v, 1, 1000, &d)) return -1;
        o->max_deliveries = (int)d;
        return 1;
    case 6:
        if (number(opt, v, 0.05, 3600, &d)) return -1;
        o->heartbeat_s = d;
        return 1;
    default:
        if (number(opt, v, 1, 1e9, &d)) return -1;
        o->final_ttl_s = (long)d;
        return 1;
    }
}

void pool_key(const pool_opts *o, char *out, size_t n, const char *a, const char *b) {
    snprintf(out, n, "%s%s%s", o->prefix, a, b ? b : "");
}

int pool_opts_finish(pool_opts *o, const char *cmd, const host_cli_overrides *ov) {
    /* A write to a connection whose peer is gone (Redis restarted; the TLS
     * pump's socketpair closed) must fail with EPIPE and be retried, not end
     * the process: SIGPIPE is blocked here, before any thread starts, so
     * every thread inherits it. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    host_config cfg;
    char err[1024];
    if (config_load_settings(&cfg, ov, err, sizeof err) != 0) {
        fprintf(stderr, "sdrt %s: %s\n", cmd, err);
        return -1;
    }
    const cJSON *pool = cJSON_GetObjectItemCaseSensitive(cfg.root, "pool");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(pool, "redis");
    const char *u = o->url ? o->url : cJSON_GetStringValue(url);
    int rc = -1;
    if (!u) snprintf(err, sizeof err, "--redis URL is required (or the config's pool.redis)");
    else if (rconn_parse(&o->rc, u, err, sizeof err) == 0) {
        if (rconn_settings(&o->rc, pool, err, sizeof err) == 0) rc = 0;
        else rconn_free(&o->rc);
    }
    config_free(&cfg);
    if (rc != 0) {
        fprintf(stderr, "sdrt %s: %s\n", cmd, err);
        return -1;
    }
    o->have_url = 1;
    /* Read once: the password is not handed on to the processes this one
     * starts (the worker's plugins and their helpers). */
    unsetenv("SDRT_REDIS_PASSWORD");
    snprintf(o->prefix, sizeof o->prefix, "sdrt:{%s}:", o->pool);
    pool_key(o, o->k_requests, sizeof o->k_requests, "requests", NULL);
    pool_key(o, o->k_results, sizeof o->k_results, "results", NULL);
    pool_key(o, o->k_dead, sizeof o->k_dead, "dead", NULL);
    pool_key(o, o->k_control, sizeof o->k_control, "control", NULL);
    pool_key(o, o->k_workers, sizeof o->k_workers, "workers", NULL);
    return 0;
}

void pool_opts_free(pool_opts *o) {
    if (o->have_url) rconn_free(&o->rc);
    o->have_url = 0;
    free(o->url);
    o->url = NULL;
}

static char *key_of(char tag, const char *text) {
    size_t n = strlen(text);
    char *k = malloc(n + 3);
    if (!k) return NULL;
    k[0] = tag;
    k[1] = ':';
    memcpy(k + 2, text, n + 1);
    return k;
}

static char *rpc_key(const cJSON *id) {
    char *t = cJSON_PrintUnformatted(id);
    char *k = t ? key_of('j', t) : NULL;
    cJSON_free(t);
    return k;
}

char *pool_request_key(const char *line, size_t len, int *notification, int *proto, char **request_id) {
    proto_request req;
    char err[256];
    *notification = 0;
    sdrt_status st = proto_parse(line, len, &req, err, sizeof err);
    (void)st;
    char *k = NULL;
    *proto = req.proto;
    if (req.proto == PROTO_JSONRPC && req.rpc_id) k = rpc_key(req.rpc_id);
    else if (req.proto == PROTO_ENVELOPE && req.request_id) k = key_of('e', req.request_id);
    if (st == SDRT_OK && req.is_notification) *notification = 1;
    if (request_id) {
        *request_id = req.request_id;
        req.request_id = NULL;
    }
    proto_request_free(&req);
    return k;
}

char *pool_response_key(const char *line, int *is_final) {
    cJSON *o = cJSON_Parse(line);
    char *k = NULL;
    *is_final = 0;
    if (!o) return NULL;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(o, "method");
    if (cJSON_GetObjectItemCaseSensitive(o, "jsonrpc")) {
        const cJSON *id = method ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "params"), "id")
                                 : cJSON_GetObjectItemCaseSensitive(o, "id");
        *is_final = method == NULL;
        if (id && !cJSON_IsNull(id)) k = rpc_key(id);
    } else {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "request_id");
        *is_final = !(cJSON_IsString(t) && strcmp(t->valuestring, "event") == 0);
        if (cJSON_IsString(rid)) k = key_of('e', rid->valuestring);
    }
    cJSON_Delete(o);
    return k;
}
