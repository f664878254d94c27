/* host/redis_pool.c - see redis_pool.h. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "redis_pool.h"

const char POOL_OPTIONS_HELP[] =
    "pool options:\n"
    "  --redis URL               redis://[user[:password]@]host[:port][/db] or rediss:// (TLS);\n"
    "                            $SDRT_REDIS_USER / $SDRT_REDIS_PASSWORD override the URL's credentials\n"
    "  --pool NAME               pool name (default \"default\")\n"
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
        if (o->have_url) rconn_free(&o->rc);
        if (rconn_parse(&o->rc, v, err, sizeof err) != 0) {
            fprintf(stderr, "sdrt: %s\n", err);
            return -1;
        }
        o->have_url = 1;
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

int pool_opts_finish(pool_opts *o, const char *cmd) {
    if (!o->have_url) {
        fprintf(stderr, "sdrt %s: --redis URL is required\n", cmd);
        return -1;
    }
    snprintf(o->prefix, sizeof o->prefix, "sdrt:{%s}:", o->pool);
    pool_key(o, o->k_requests, sizeof o->k_requests, "requests", NULL);
    pool_key(o, o->k_results, sizeof o->k_results, "results", NULL);
    pool_key(o, o->k_dead, sizeof o->k_dead, "dead", NULL);
    pool_key(o, o->k_control, sizeof o->k_control, "control", NULL);
    pool_key(o, o->k_workers, sizeof o->k_workers, "workers", NULL);
    return 0;
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
