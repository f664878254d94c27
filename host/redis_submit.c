/* host/redis_submit.c - `sdrt submit`: the stdio protocol in front of a pool.
 * Request lines from stdin go to the pool's request stream with this
 * client's reply stream as reply_to; events and final responses from that
 * stream go to stdout. host.cancel, host.pause and host.resume are sent on
 * the control channel, which reaches whichever worker runs the request, and
 * answered here. At the end of the input it waits for the final response
 * of every request it sent, then exits (0; 1 when Redis could not be used).
 *
 * Threads: main reads stdin and writes requests; a reader thread follows
 * the reply stream and prints. Each has its own connection; both reconnect
 * with backoff and resume where they were (the reader from its last id). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "host.h"
#include "os.h"
#include "redis_pool.h"

/* Keys of the requests sent whose final has not come (a chained set). */
#define SET_BUCKETS 4096
typedef struct key_node {
    char *key;
    struct key_node *next;
} key_node;

static pool_opts g_o;
static char g_reply[300];
static key_node *g_set[SET_BUCKETS];
static long g_waiting;                 /* keys in g_set */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t g_out_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_input_done;

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % SET_BUCKETS;
}

/* Adds key; 0 when it was already waiting. Caller holds g_lock. */
static int set_add(const char *key) {
    unsigned b = hash(key);
    for (key_node *n = g_set[b]; n; n = n->next)
        if (strcmp(n->key, key) == 0) return 0;
    key_node *n = malloc(sizeof *n);
    n->key = strdup(key);
    n->next = g_set[b];
    g_set[b] = n;
    g_waiting++;
    return 1;
}

/* Removes key; 1 when it was waiting. Caller holds g_lock. */
static int set_take(const char *key) {
    for (key_node **pp = &g_set[hash(key)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) != 0) continue;
        key_node *n = *pp;
        *pp = n->next;
        free(n->key);
        free(n);
        g_waiting--;
        return 1;
    }
    return 0;
}

static void print_line(const char *line) {
    FILE *out = cli_stdout();
    pthread_mutex_lock(&g_out_lock);
    fputs(line, out);
    fputc('\n', out);
    int gone = fflush(out) != 0 && errno == EPIPE;
    pthread_mutex_unlock(&g_out_lock);
    /* SIGPIPE is blocked in the pool commands: a reader that went away is
     * seen here, and ends this client as the signal would have. */
    if (gone) _exit(1);
}

/* Follows the reply stream from the start; a final whose request is not
 * waiting (a duplicate) is not printed. */
static void *reader(void *arg) {
    (void)arg;
    rconn rc;
    rconn_clone(&rc, &g_o.rc);
    char last[64] = "0";
    for (;;) {
        pthread_mutex_lock(&g_lock);
        int done = g_input_done && g_waiting == 0;
        pthread_mutex_unlock(&g_lock);
        if (done) break;
        redisReply *r = rconn_cmd(&rc, "XREAD COUNT 512 BLOCK 200 STREAMS %s %s", g_reply, last);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            const redisReply *es = r->element[0]->element[1];
            for (size_t i = 0; i < es->elements; i++) {
                const redisReply *e = es->element[i];
                snprintf(last, sizeof last, "%s", e->element[0]->str);
                const redisReply *f = e->element[1];
                const char *rid = "", *line = NULL;
                int final = 0;
                for (size_t j = 0; f && j + 1 < f->elements; j += 2) {
                    const char *k = f->element[j]->str, *v = f->element[j + 1]->str;
                    if (strcmp(k, "rid") == 0) rid = v;
                    else if (strcmp(k, "final") == 0) final = strcmp(v, "1") == 0;
                    else if (strcmp(k, "line") == 0) line = v;
                }
                if (!line) continue;
                int show = 1;
                if (final) {
                    pthread_mutex_lock(&g_lock);
                    show = set_take(rid);
                    pthread_cond_broadcast(&g_cond);
                    pthread_mutex_unlock(&g_lock);
                }
                if (show) print_line(line);
            }
        } else if (r && r->type == REDIS_REPLY_ERROR) {
            log_msg("submit", SDRT_LOG_ERROR, "XREAD %s: %s", g_reply, r->str);
        }
        if (r) freeReplyObject(r);
    }
    redisReply *r = rconn_cmd(&rc, "DEL %s", g_reply);
    if (r) freeReplyObject(r);
    rconn_free(&rc);
    return NULL;
}

/* Answers a line here (errors of the line itself, job control). */
static void answer_error(const proto_request *req, sdrt_status code, const char *msg) {
    sdrt_error *e = error_new(code, NULL, "%s", msg);
    char *line = proto_format_error(req->proto, req->request_id, req->rpc_id, e, NULL, NULL);
    if (line) print_line(line);
    free(line);
    error_free(e);
}

/* host.cancel / pause / resume: to every worker, and a cancel marker for a
 * job not yet taken. The answer says the request was passed on. */
static void job_control(rconn *rc, const proto_request *req) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req->data, "request_id");
    if (!cJSON_IsString(id)) {
        answer_error(req, SDRT_INVALID_ARGUMENT, "data.request_id: expected a string");
        return;
    }
    const cJSON *when = cJSON_GetObjectItemCaseSensitive(req->data, "when");
    int after = cJSON_IsString(when) && strcmp(when->valuestring, "after_image") == 0;
    if (when && !(cJSON_IsString(when) && (after || strcmp(when->valuestring, "now") == 0))) {
        answer_error(req, SDRT_INVALID_ARGUMENT, "data.when: must be \"now\" or \"after_image\"");
        return;
    }
    int is_cancel = strcmp(req->type, "host.cancel") == 0;
    if (is_cancel && !after) {
        char k[700];
        pool_key(&g_o, k, sizeof k, "cancel:", id->valuestring);
        redisReply *r = rconn_cmd(rc, "SET %s 1 EX 3600", k);
        if (r) freeReplyObject(r);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", req->type);
    cJSON_AddStringToObject(m, "request_id", id->valuestring);
    if (is_cancel) cJSON_AddStringToObject(m, "when", after ? "after_image" : "now");
    char *msg = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    redisReply *r = rconn_cmd(rc, "PUBLISH %s %s", g_o.k_control, msg);
    long reached = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
    if (r) freeReplyObject(r);
    cJSON_free(msg);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "request_id", id->valuestring);
    cJSON_AddTrueToObject(o, is_cancel ? "cancel_requested" : strcmp(req->type, "host.pause") == 0 ? "paused" : "resumed");
    if (is_cancel) cJSON_AddStringToObject(o, "when", after ? "after_image" : "now");
    proto_add_int(o, "workers_reached", reached);
    char *line = proto_format_result(req->proto, req->request_id, req->rpc_id, o, NULL, 0);
    if (line) print_line(line);
    free(line);
}

/* One input line: answered here, or sent to the pool. Returns 1 after
 * host.shutdown (the client's session ends; the pool stays). */
static int send_line(rconn *rc, const char *line, size_t len) {
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    if (len == 0) return 0;
    proto_request req;
    char err[1024];
    sdrt_status st = proto_parse(line, len, &req, err, sizeof err);
    if (st != SDRT_OK) {
        answer_error(&req, st, err);
        proto_request_free(&req);
        return 0;
    }
    if (strcmp(req.type, "host.cancel") == 0 || strcmp(req.type, "host.pause") == 0 ||
        strcmp(req.type, "host.resume") == 0) {
        if (!req.is_notification) job_control(rc, &req);
        proto_request_free(&req);
        return 0;
    }
    if (strcmp(req.type, "host.shutdown") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "shutting_down");
        char *ans = proto_format_result(req.proto, req.request_id, req.rpc_id, o, NULL, 0);
        if (ans && !req.is_notification) print_line(ans);
        free(ans);
        proto_request_free(&req);
        return 1;
    }
    int notification = 0, proto = 0;
    char *key = pool_request_key(line, len, &notification, &proto, NULL);
    if (!key && !notification) {
        answer_error(&req, SDRT_INVALID_REQUEST, "request_id: required for requests through a pool");
        proto_request_free(&req);
        return 0;
    }
    if (key) {
        pthread_mutex_lock(&g_lock);
        int fresh = set_add(key);
        pthread_mutex_unlock(&g_lock);
        if (!fresh) {
            char msg[600];
            snprintf(msg, sizeof msg, "request_id: '%s' is already in flight", req.request_id ? req.request_id : key + 2);
            answer_error(&req, SDRT_ALREADY_EXISTS, msg);
            free(key);
            proto_request_free(&req);
            return 0;
        }
    }
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%ld", g_o.maxlen);
    const char *argv[] = {"XADD", g_o.k_requests, "MAXLEN", "~", maxlen, "*", "line", line, "reply_to", g_reply};
    size_t lens[10];
    for (int i = 0; i < 10; i++) lens[i] = strlen(argv[i]);
    lens[7] = len;
    redisReply *r = rconn_argv(rc, 10, argv, lens);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        answer_error(&req, SDRT_UNAVAILABLE, r ? r->str : "the pool's Redis cannot be reached");
        if (key) {
            pthread_mutex_lock(&g_lock);
            set_take(key);
            pthread_mutex_unlock(&g_lock);
        }
    }
    if (r) freeReplyObject(r);
    free(key);
    proto_request_free(&req);
    return 0;
}

int cmd_submit(int argc, char **argv) {
    pool_opts_init(&g_o);
    host_cli_overrides ov = {0};
    int bad = 0;
    for (int i = 2; i < argc && !bad; i++) {
        int r = pool_take_option(&g_o, argc, argv, &i);
        if (r == 0) r = cli_take_host_option(&ov, argc, argv, &i);
        if (r == 0) fprintf(stderr, "sdrt submit: unknown option '%s'\n", argv[i]);
        if (r <= 0) bad = 1;
    }
    if (bad || pool_opts_finish(&g_o, "submit", &ov) != 0) {
        pool_opts_free(&g_o);
        cli_overrides_free(&ov);
        return 2;
    }
    cli_overrides_free(&ov);
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char client[300];
    snprintf(client, sizeof client, "%s-%d-%lx", host, (int)getpid(), (unsigned long)(tv.tv_usec ^ tv.tv_sec));
    pool_key(&g_o, g_reply, sizeof g_reply, "reply:", client);
    rconn rc;
    rconn_clone(&rc, &g_o.rc);
    /* A refused password or certificate is an error of this client's
     * settings: said once and the client ends, instead of waiting for a
     * Redis that will never accept it. An unreachable Redis is waited for
     * (the requests go out once it is back). */
    if (rconn_connect(&rc) != 0 && rc.permanent) {
        fprintf(stderr, "sdrt submit: cannot use Redis at %s: %s\n", rconn_describe(&rc), rc.last_error);
        rconn_free(&rc);
        pool_opts_free(&g_o);
        return 1;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, reader, NULL) != 0) return 1;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int c;
    int stop = 0;
    while (!stop && (c = getchar()) != EOF) {
        if (c != '\n') {
            if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
            buf[len++] = (char)c;
            continue;
        }
        buf[len] = '\0';
        stop = send_line(&rc, buf, len);
        len = 0;
    }
    if (!stop && len > 0) {
        buf[len] = '\0';
        send_line(&rc, buf, len);
    }
    free(buf);
    pthread_mutex_lock(&g_lock);
    g_input_done = 1;
    pthread_mutex_unlock(&g_lock);
    pthread_join(th, NULL);
    rconn_free(&rc);
    pool_opts_free(&g_o);
    return 0;
}
