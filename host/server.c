/* host/server.c - host start-up, routing of one request line, and the stdio
 * loop with graceful shutdown (EOF, host.shutdown, SIGTERM). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "os.h"
#include "schema.h"

int builtin_is(const char *type);

host_ctx *g_host;

static void sink_stdout(void *ctx, const char *line) {
    (void)ctx;
    output_write_line(line);
}

int host_init(host_ctx *h, const host_cli_overrides *ov, int quiet) {
    memset(h, 0, sizeof *h);
    char err[2048];
    /* config_load also loads the request schemas and checks every $ref in
     * them (schema_set_check_refs): a broken set stops the start here. */
    if (config_load(&h->cfg, ov, err, sizeof err) != 0) {
        log_msg(NULL, SDRT_LOG_ERROR, "%s", err);
        return -1;
    }
    log_set_level(quiet && h->cfg.log_level > SDRT_LOG_WARN ? SDRT_LOG_WARN : h->cfg.log_level);
    services_configure(&h->cfg);
    h->schemas = h->cfg.schemas; /* the set config_load validated the config with */
    h->cfg.schemas = NULL;
    g_host = h;
    h->sink.line = sink_stdout;
    loader_load_all(&h->plugins, &h->cfg);
    if (jobs_start(&h->cfg) != 0) {
        log_msg(NULL, SDRT_LOG_ERROR, "cannot start worker threads");
        host_fini(h);
        return -1;
    }
    h->t_ready = host_now();
    return 0;
}

void host_fini(host_ctx *h) {
    jobs_stop();
    loader_unload_all(&h->plugins);
    schema_set_free(h->schemas);
    config_free(&h->cfg);
    g_host = NULL;
}

/* Answers at once on the dispatch thread; takes ownership of result. */
static void respond_result(host_ctx *h, const proto_request *req, cJSON *result, const sdrt_error *err) {
    if (req->is_notification) { /* JSON-RPC notifications get no response */
        cJSON_Delete(result);
        return;
    }
    char *line;
    if (err) {
        cJSON_Delete(result);
        line = proto_format_error(req->proto, req->request_id, req->rpc_id, err);
    } else {
        line = proto_format_result(req->proto, req->request_id, req->rpc_id, result ? result : cJSON_CreateObject(),
                                   NULL, 0);
    }
    if (line) h->sink.line(h->sink.ctx, line);
    free(line);
}

static void respond_now(host_ctx *h, const proto_request *req, const sdrt_error *err) {
    respond_result(h, req, NULL, err);
}

static void respond_error(host_ctx *h, const proto_request *req, sdrt_status code, const char *fmt, const char *a,
                          const char *b) {
    sdrt_error *e = error_new(code, NULL, fmt, a, b);
    respond_now(h, req, e);
    error_free(e);
}

static sdrt_error *validate_data(host_ctx *h, const proto_request *req) {
    if (!h->schemas) return NULL;
    const char *sid = schema_for_message(h->schemas, req->type);
    if (!sid) return NULL;
    char msg[1024];
    int rc = schema_validate(h->schemas, sid, req->data, msg, sizeof msg);
    if (rc == 0) return NULL;
    return error_new(rc > 0 ? SDRT_INVALID_ARGUMENT : SDRT_INTERNAL, NULL, "%s", msg);
}

static void list_domain_types(const host_ctx *h, const char *type, char *out, size_t n) {
    const char *dot = strchr(type, '.');
    size_t dl = dot ? (size_t)(dot - type) : strlen(type);
    out[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < h->plugins.count; i++) {
        const sdrt_plugin_desc *d = h->plugins.items[i]->desc;
        if (strlen(d->domain) != dl || strncmp(d->domain, type, dl) != 0) continue;
        for (int j = 0; d->message_types[j] && used + 2 < n; j++)
            used += (size_t)snprintf(out + used, n - used, "%s%s", used ? ", " : "", d->message_types[j]);
    }
}

static void submit(host_ctx *h, proto_request *req, host_plugin *p) {
    sdrt_job *job = calloc(1, sizeof *job);
    job->request_id = req->request_id;
    req->request_id = NULL;
    job->rpc_id = req->rpc_id;
    req->rpc_id = NULL;
    job->type = strdup(req->type);
    job->data_json = cJSON_PrintUnformatted(req->data);
    job->proto = req->proto;
    job->priority = req->priority;
    job->plugin = p;
    job->warnings = cJSON_CreateArray();
    job->sink = &h->sink;
    double timeout = req->timeout_s > 0 ? req->timeout_s : h->cfg.default_timeout_s;
    job->deadline = timeout > 0 ? host_now() + timeout : 0;
    sdrt_status st = jobs_submit(job);
    if (st == SDRT_OK) return;
    /* Not taken: answer here with the id we moved into the job. */
    req->request_id = job->request_id;
    req->rpc_id = job->rpc_id;
    job->request_id = NULL;
    job->rpc_id = NULL;
    atomic_store(&job->refs, 1);
    job_release(job);
    if (st != SDRT_BUSY) {
        respond_error(h, req, SDRT_ALREADY_EXISTS, "request_id: '%s' is already in flight%s", req->request_id, "");
        return;
    }
    char limit[32];
    snprintf(limit, sizeof limit, "%d", h->cfg.queue_limit);
    respond_error(h, req, SDRT_BUSY, "queue full (queue_limit %s requests waiting): retry later%s", limit, "");
}

static void route(host_ctx *h, proto_request *req) {
    if (builtin_is(req->type) || strncmp(req->type, "host.", 5) == 0) {
        cJSON *result = NULL;
        sdrt_error *err = NULL;
        builtin_handle(h, req, &result, &err);
        respond_result(h, req, result, err);
        error_free(err);
        return;
    }
    if (atomic_load(&h->shutting_down)) {
        respond_error(h, req, SDRT_UNAVAILABLE, "%s: the host is shutting down and accepts no new work%s", req->type, "");
        return;
    }
    int domain_known = 0;
    host_plugin *p = loader_find(&h->plugins, req->type, &domain_known);
    if (!p) {
        char known[1024];
        list_domain_types(h, req->type, known, sizeof known);
        if (domain_known)
            respond_error(h, req, SDRT_UNKNOWN_TYPE, "type: '%s' is not a message of its domain (known: %s)", req->type,
                          known);
        else
            respond_error(h, req, SDRT_UNKNOWN_TYPE, "type: no plugin serves '%s'%s", req->type, "");
        return;
    }
    sdrt_error *verr = validate_data(h, req);
    if (verr) {
        respond_now(h, req, verr);
        error_free(verr);
        return;
    }
    submit(h, req, p);
}

void server_handle_line(host_ctx *h, const char *line, size_t len) {
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    size_t start = 0;
    while (start < len && (line[start] == ' ' || line[start] == '\t')) start++;
    if (start == len) return; /* empty lines are ignored */
    proto_request req;
    char err[1024];
    sdrt_status st = proto_parse(line + start, len - start, &req, err, sizeof err);
    if (st != SDRT_OK) {
        req.is_notification = 0; /* a broken line always gets an answer */
        respond_error(h, &req, st, "%s%s", err, "");
    } else {
        route(h, &req);
    }
    proto_request_free(&req);
}

/* Reads stdin, splitting lines; a line over the limit is answered with
 * INVALID_REQUEST and skipped up to its newline. */
typedef struct line_reader {
    char *buf;
    size_t len, cap, limit;
    int skipping;
} line_reader;

static void reader_feed(host_ctx *h, line_reader *r, const char *data, size_t n) {
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t chunk = nl ? (size_t)(nl - (data + i)) : n - i;
        if (!r->skipping) {
            if (r->len + chunk > r->limit) {
                char msg[160];
                snprintf(msg, sizeof msg, "line exceeds max_line_bytes (%zu bytes)", r->limit);
                proto_request req = {0};
                sdrt_error *e = error_new(SDRT_INVALID_REQUEST, NULL, "%s", msg);
                respond_now(h, &req, e);
                error_free(e);
                r->skipping = 1;
                r->len = 0;
            } else {
                if (r->len + chunk + 1 > r->cap) {
                    r->cap = (r->len + chunk + 1) * 2;
                    r->buf = realloc(r->buf, r->cap);
                }
                memcpy(r->buf + r->len, data + i, chunk);
                r->len += chunk;
            }
        }
        i += chunk;
        if (nl) {
            if (!r->skipping) {
                r->buf[r->len] = '\0';
                server_handle_line(h, r->buf, r->len);
            }
            r->len = 0;
            r->skipping = 0;
            i++;
        }
    }
}

static void shutdown_sequence(host_ctx *h) {
    atomic_store(&h->shutting_down, 1);
    double until = host_now() + h->cfg.shutdown_grace_s;
    if (jobs_wait_idle(until) > 0) {
        log_msg(NULL, SDRT_LOG_WARN, "shutdown: grace period over, cancelling %d request(s)", jobs_in_flight());
        jobs_cancel_all(3);
        /* Cooperative plugins stop within cancel_grace_s; others are answered for. */
        jobs_wait_idle(host_now() + h->cfg.cancel_grace_s + 0.5);
    }
}

int server_run(host_ctx *h, int in_fd, int out_fd) {
    (void)out_fd;
    os_catch_stop_requests();
    os_input *in = os_input_open(in_fd);
    if (!in) {
        log_msg(NULL, SDRT_LOG_ERROR, "cannot read the input (out of memory or threads)");
        shutdown_sequence(h);
        return 1;
    }
    line_reader r = {.limit = h->cfg.max_line_bytes};
    char buf[65536];
    double shutdown_deadline = 0;
    while (!os_stop_requested()) {
        int stopping = atomic_load(&h->shutting_down);
        if (stopping && shutdown_deadline == 0) shutdown_deadline = host_now() + h->cfg.shutdown_grace_s;
        /* After host.shutdown keep answering (new work gets UNAVAILABLE) until
         * in-flight work is done and the input has gone quiet. */
        /* A stop request wakes the wait (SIGTERM interrupts poll, the
         * Windows control handler signals the reader's condition); the idle
         * timeout only covers one that lands between the loop test and the
         * wait, so it can be long and an idle host stays asleep. */
        long n = os_input_read(in, buf, sizeof buf, stopping ? 50 : 1000);
        if (n == OS_INPUT_END) break; /* EOF */
        if (n == OS_INPUT_RETRY) continue;
        if (n == OS_INPUT_IDLE) {
            if (stopping && (jobs_in_flight() == 0 || host_now() > shutdown_deadline)) break;
            continue;
        }
        /* Answers to the lines of this chunk leave in one write, once the
         * chunk is handled and before the loop waits for input again. */
        output_batch_begin();
        reader_feed(h, &r, buf, (size_t)n);
        output_batch_end();
    }
    if (r.len > 0 && !r.skipping && !os_stop_requested()) server_handle_line(h, r.buf, r.len); /* last line without \n */
    free(r.buf);
    os_input_close(in);
    shutdown_sequence(h);
    return 0;
}
