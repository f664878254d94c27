/* host/redis_status.c - `sdrt pool status`: the workers of a pool (from
 * their heartbeats) and the state of its streams, on stdout. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"
#include "host.h"
#include "redis_pool.h"

static long long integer_of(rconn *rc, const char *fmt, const char *a, const char *b) {
    redisReply *r = rconn_cmd(rc, fmt, a, b);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    if (r) freeReplyObject(r);
    return v;
}

int cmd_pool(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[2], "status") != 0) {
        fprintf(stderr, "usage: sdrt pool status --redis URL [--pool NAME]\n");
        return 2;
    }
    pool_opts o;
    pool_opts_init(&o);
    host_cli_overrides ov = {0};
    int bad = 0;
    for (int i = 3; i < argc && !bad; i++) {
        int r = pool_take_option(&o, argc, argv, &i);
        if (r == 0) r = cli_take_host_option(&ov, argc, argv, &i);
        if (r == 0) fprintf(stderr, "sdrt pool status: unknown option '%s'\n", argv[i]);
        if (r <= 0) bad = 1;
    }
    if (bad || pool_opts_finish(&o, "pool status", &ov) != 0) {
        pool_opts_free(&o);
        cli_overrides_free(&ov);
        return 2;
    }
    cli_overrides_free(&ov);
    rconn rc;
    rconn_clone(&rc, &o.rc);
    pool_opts_free(&o);
    if (rconn_connect(&rc) != 0) {
        fprintf(stderr, "sdrt pool status: cannot use Redis at %s: %s\n", rconn_describe(&rc), rc.last_error);
        rconn_free(&rc);
        return 1;
    }
    FILE *out = cli_stdout();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double now_ms = (double)tv.tv_sec * 1e3 + (double)tv.tv_usec / 1e3;
    long long pending = 0;
    redisReply *p = rconn_cmd(&rc, "XPENDING %s %s", o.k_requests, POOL_GROUP);
    if (p && p->type == REDIS_REPLY_ARRAY && p->elements >= 1) pending = p->element[0]->integer;
    if (p) freeReplyObject(p);
    fprintf(out, "pool %s on %s\n", o.pool, rconn_describe(&rc));
    fprintf(out, "  requests %s: %lld entries, %lld pending (taken, not acknowledged)\n", o.k_requests,
            integer_of(&rc, "XLEN %s", o.k_requests, NULL), pending);
    fprintf(out, "  results  %s: %lld entries\n", o.k_results, integer_of(&rc, "XLEN %s", o.k_results, NULL));
    fprintf(out, "  dead     %s: %lld entries\n", o.k_dead, integer_of(&rc, "XLEN %s", o.k_dead, NULL));
    redisReply *m = rconn_cmd(&rc, "SMEMBERS %s", o.k_workers);
    int live = 0;
    for (size_t i = 0; m && m->type == REDIS_REPLY_ARRAY && i < m->elements; i++) {
        char k[300];
        pool_key(&o, k, sizeof k, "worker:", m->element[i]->str);
        redisReply *h = rconn_cmd(&rc, "HGETALL %s", k);
        if (!h || h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
            fprintf(out, "worker %s: gone (no heartbeat)\n", m->element[i]->str);
            if (h) freeReplyObject(h);
            /* A name whose heartbeat expired long ago leaves the list. */
            redisReply *x = rconn_cmd(&rc, "SREM %s %s", o.k_workers, m->element[i]->str);
            if (x) freeReplyObject(x);
            continue;
        }
        live++;
        const char *f[16] = {0};
        static const char *const names[] = {"id",        "host",  "pid",          "devices",    "models", "plugins",
                                            "queue_depth", "in_flight", "last_seen_ms", "started_ms", NULL};
        for (size_t j = 0; j + 1 < h->elements; j += 2)
            for (int n = 0; names[n]; n++)
                if (strcmp(h->element[j]->str, names[n]) == 0) f[n] = h->element[j + 1]->str;
        double seen = f[8] ? atof(f[8]) : 0;
        fprintf(out, "worker %s: host %s pid %s, queue_depth %s, in_flight %s, last seen %.1f s ago\n",
                f[0] ? f[0] : "?", f[1] ? f[1] : "?", f[2] ? f[2] : "?", f[6] ? f[6] : "?", f[7] ? f[7] : "?",
                (now_ms - seen) / 1e3);
        fprintf(out, "  plugins: %s\n  devices: %s\n  models: %s\n", f[5] ? f[5] : "[]", f[3] ? f[3] : "null",
                f[4] ? f[4] : "null");
        freeReplyObject(h);
    }
    if (m) freeReplyObject(m);
    fprintf(out, "%d live worker(s)\n", live);
    fflush(out);
    rconn_free(&rc);
    return 0;
}
