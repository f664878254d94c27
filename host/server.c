/* host/server.c - host start-up, routing of one request line, and the stdio
 * loop with graceful shutdown (EOF, host.shutdown, SIGTERM). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "ledger.h"
#include "os.h"
#include "schema.h"

int builtin_is(const char *type);

host_ctx *g_host;

static void sink_stdout(void *ctx, const char *line, int slot) {
    (void)ctx;
    output_write_final(line, slot);
}

/* The input offset just past the line being handled (the reader sets it),
 * taken into the ledger with the request; LEDGER_NO_LINE outside the reader. */
static size_t g_line_end = LEDGER_NO_LINE;

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
    /* Answered on the dispatch thread at once: no queue wait, no run. */
    long rss = jobs_resident_kb_recent();
    int64_t dev = registry_device_allocated_bytes();
    proto_metrics m = {0, 0, rss > 0 ? (double)rss / 1024.0 : -1, dev >= 0 ? (double)dev / (1024.0 * 1024.0) : 0,
                       dev >= 0};
    if (err) {
        cJSON_Delete(result);
        line = proto_format_error(req->proto, req->request_id, req->rpc_id, err, req->warnings, &m);
    } else {
        line = proto_format_result(req->proto, req->request_id, req->rpc_id, result ? result : cJSON_CreateObject(),
                                   req->warnings, &m);
    }
    char *with = line && req->reply_extra ? legacy_reply_line(line, req->reply_extra) : NULL;
    if (with) {
        free(line);
        line = with;
    }
    if (line) h->sink.line(h->sink.ctx, line, req->slot);
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

sdrt_error *server_validate(host_ctx *h, const char *type, const cJSON *data) {
    if (!h->schemas) return NULL;
    const char *sid = schema_for_message(h->schemas, type);
    if (!sid) return NULL;
    char msg[1024];
    int rc = schema_validate(h->schemas, sid, data, msg, sizeof msg);
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

/* A duplicate in-flight id: the refusal carries request_id null and the id
 * in error_data, so a client matching answers by id sees exactly one final
 * line for it (the running job's). */
static void respond_duplicate(host_ctx *h, proto_request *req) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "duplicate_request_id", req->request_id);
    char *dj = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    sdrt_error *e = error_new(SDRT_ALREADY_EXISTS, dj, "request_id: '%s' is already in flight; this request was not run",
                              req->request_id);
    free(dj);
    char *id = req->request_id;
    cJSON *rpc = req->rpc_id;
    req->request_id = NULL;
    req->rpc_id = NULL;
    respond_now(h, req, e);
    req->request_id = id;
    req->rpc_id = rpc;
    error_free(e);
}

static void submit(host_ctx *h, proto_request *req, host_plugin *p) {
    sdrt_job *job = calloc(1, sizeof *job);
    job->request_id = req->request_id;
    req->request_id = NULL;
    job->rpc_id = req->rpc_id;
    req->rpc_id = NULL;
    job->type = strdup(req->type);
    job->data_json = cJSON_PrintUnformatted(req->data);
    char *nul = utf8_nul_json(job->data_json); /* a NUL in the data reaches the plugin as \u0000 */
    if (nul) {
        free(job->data_json);
        job->data_json = nul;
    }
    job->slot = req->slot;
    job->reply_extra = req->reply_extra;
    req->reply_extra = NULL;
    job->proto = req->proto;
    job->priority = req->priority;
    job->plugin = p;
    job->warnings = req->warnings ? req->warnings : cJSON_CreateArray();
    req->warnings = NULL;
    job->events = req->events >= 0 ? req->events : h->cfg.events_default;
    job->sink = &h->sink;
    double timeout = req->timeout_s > 0 ? req->timeout_s : h->cfg.default_timeout_s;
    job->deadline = timeout > 0 ? host_now() + timeout : 0;
    sdrt_status st = jobs_submit(job);
    if (st == SDRT_OK) return;
    job->slot = -1;
    /* Not taken: answer here with the id we moved into the job. */
    req->request_id = job->request_id;
    req->rpc_id = job->rpc_id;
    job->request_id = NULL;
    job->rpc_id = NULL;
    atomic_store(&job->refs, 1);
    job_release(job);
    if (st != SDRT_BUSY) {
        respond_duplicate(h, req);
        return;
    }
    char limit[32];
    snprintf(limit, sizeof limit, "%d", h->cfg.queue_limit);
    respond_error(h, req, SDRT_BUSY, "queue full (queue_limit %s requests waiting): retry later%s", limit, "");
}

static void route(host_ctx *h, proto_request *req) {
    if (strncmp(req->type, "inference.", 10) == 0) fields_memory_switches(req->type, req->data, &req->warnings);
    fields_check_unknown(h->schemas, req->type, req->data, &req->warnings);
    if (builtin_is(req->type) || strncmp(req->type, "host.", 5) == 0) {
        if (req->request_id && jobs_is_live(req->request_id)) {
            respond_duplicate(h, req);
            return;
        }
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
    sdrt_error *verr = server_validate(h, req->type, req->data);
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
    /* Taken from the input and, when it will be answered, entered in the
     * ledger, in one step: a crash from here on is answered for it. */
    req.slot = ledger_commit(&req, g_line_end, st != SDRT_OK || !req.is_notification);
    if (st != SDRT_OK) {
        req.is_notification = 0; /* a broken line always gets an answer */
        respond_error(h, &req, st, "%s%s", err, "");
    } else {
        route(h, &req);
    }
    proto_request_free(&req);
}

/* Handles the complete lines in the input area, from in_start on. The area
 * is the ledger's: what is read and not yet handled survives a crash of this
 * process and is handled by the next one. A line over max_line_bytes is
 * answered with INVALID_REQUEST and skipped up to its newline. */
static void handle_input(host_ctx *h, ledger_shm *L, size_t limit) {
    char *buf = ledger_in_buf(L);
    for (;;) {
        size_t s = L->in_start, avail = L->in_len - s;
        char *nl = memchr(buf + s, '\n', avail);
        if (L->in_skipping) {
            ledger_lock();
            if (nl) L->in_skipping = 0;
            L->in_start = nl ? (size_t)(nl - buf) + 1 : L->in_len;
            ledger_unlock();
            if (!nl) return;
            continue;
        }
        if (!nl) {
            if (avail <= limit) return; /* wait for the rest of the line */
            char msg[160];
            snprintf(msg, sizeof msg, "line exceeds max_line_bytes (%zu bytes)", limit);
            proto_request req = {0};
            req.slot = ledger_commit(&req, L->in_len, 1 | LEDGER_SKIP_REST);
            sdrt_error *e = error_new(SDRT_INVALID_REQUEST, NULL, "%s", msg);
            respond_now(h, &req, e);
            error_free(e);
            continue;
        }
        size_t len = (size_t)(nl - (buf + s));
        if (len > limit) {
            proto_request req = {0};
            req.slot = ledger_commit(&req, (size_t)(nl - buf) + 1, 1);
            sdrt_error *e = error_new(SDRT_INVALID_REQUEST, NULL, "line exceeds max_line_bytes (%zu bytes)", limit);
            respond_now(h, &req, e);
            error_free(e);
            continue;
        }
        /* The line is handled by length: the buffer stays as read, so that a
         * crash from here on leaves it whole for the next serving process. */
        g_line_end = (size_t)(nl - buf) + 1;
        server_handle_line(h, buf + s, len);
        /* Empty lines and notifications were not taken by the ledger. */
        if (L->in_start < g_line_end) {
            proto_request none = {0};
            ledger_commit(&none, g_line_end, 0);
        }
        g_line_end = LEDGER_NO_LINE;
    }
}

/* Makes room for one read: drops what was handled, moving a partial line to
 * the front (under the lock: the supervisor must never see half a move). */
static void compact_input(ledger_shm *L) {
    char *buf = ledger_in_buf(L);
    if (L->in_cap - L->in_len >= LEDGER_READ_BYTES) return;
    ledger_lock();
    size_t rest = L->in_len - L->in_start;
    memmove(buf, buf + L->in_start, rest);
    L->in_start = 0;
    L->in_len = rest;
    ledger_unlock();
}

/* Reads one chunk (waiting up to timeout_ms) and answers its lines. Returns
 * what os_input_read returned. */
static long read_and_handle(host_ctx *h, os_input *in, ledger_shm *L, size_t limit, int timeout_ms) {
    compact_input(L);
    char *buf = ledger_in_buf(L);
    size_t room = L->in_cap - L->in_len - 1;
    if (room > LEDGER_READ_BYTES) room = LEDGER_READ_BYTES;
    /* Wait without the lock, then read and count the bytes in one step under
     * it: a crash between a read and its count would lose what was read. */
    if (!os_input_wait(in, timeout_ms)) return OS_INPUT_IDLE;
    ledger_lock();
    long n = os_input_read(in, buf + L->in_len, room, 0);
    if (n > 0) L->in_len += (size_t)n;
    ledger_unlock();
    if (n <= 0) return n;
    /* Answers to the lines of this chunk leave in one write, once the chunk
     * is handled and before the loop waits for input again. */
    output_batch_begin();
    handle_input(h, L, limit);
    output_batch_end();
    return n;
}

/* A last line without a newline at the end of the input. */
static void handle_last_line(host_ctx *h, ledger_shm *L) {
    if (L->in_skipping || L->in_len <= L->in_start) return;
    char *buf = ledger_in_buf(L);
    buf[L->in_len] = '\0';
    g_line_end = L->in_len;
    server_handle_line(h, buf + L->in_start, L->in_len - L->in_start);
    proto_request none = {0};
    ledger_commit(&none, g_line_end, 0);
    g_line_end = LEDGER_NO_LINE;
}

/* Waits for in-flight work until `until` (host clock), then cancels it;
 * cooperative plugins stop within cancel_grace_s, others are answered for. */
static void shutdown_sequence(host_ctx *h, double until) {
    atomic_store(&h->shutting_down, 1);
    if (jobs_wait_idle(until) > 0) {
        log_msg(NULL, SDRT_LOG_WARN, "shutdown: grace period over, cancelling %d request(s)", jobs_in_flight());
        jobs_cancel_all(3);
        jobs_wait_idle(host_now() + h->cfg.cancel_grace_s + 0.5);
    }
}

/* After a stop request: every line the client wrote before the host stops
 * reading is still answered (host.* as usual, other work UNAVAILABLE).
 * Reads until the input has been quiet for a moment, it ends, or the grace
 * period is over. Returns 1 when the input ended. */
static int drain_input(host_ctx *h, os_input *in, ledger_shm *L, size_t limit, double until) {
    atomic_store(&h->shutting_down, 1);
    while (host_now() < until) {
        long n = read_and_handle(h, in, L, limit, 20);
        if (n == OS_INPUT_END) return 1;
        if (n == OS_INPUT_IDLE) return 0;
    }
    return 0;
}

int server_run(host_ctx *h, int in_fd, int out_fd) {
    (void)out_fd;
    os_catch_stop_requests();
    output_set_grace(h->cfg.shutdown_grace_s);
    if (!ledger_get() && ledger_create(h->cfg.max_line_bytes, h->cfg.queue_limit, h->cfg.workers) != 0) {
        log_msg(NULL, SDRT_LOG_ERROR, "cannot allocate the input and output areas");
        return 1;
    }
    ledger_shm *L = ledger_get();
    os_input *in = os_input_open(in_fd);
    if (!in) {
        log_msg(NULL, SDRT_LOG_ERROR, "cannot read the input (out of memory or threads)");
        shutdown_sequence(h, host_now() + h->cfg.shutdown_grace_s);
        return 1;
    }
    size_t limit = h->cfg.max_line_bytes;
    /* Lines a crashed predecessor had read and not handled come first. */
    output_batch_begin();
    handle_input(h, L, limit);
    output_batch_end();
    double shutdown_deadline = 0;
    int ended = 0;
    while (!os_stop_requested()) {
        int stopping = atomic_load(&h->shutting_down);
        if (stopping && shutdown_deadline == 0) shutdown_deadline = host_now() + h->cfg.shutdown_grace_s;
        /* After host.shutdown keep answering (new work gets UNAVAILABLE) until
         * in-flight work is done and the input has gone quiet. */
        /* A stop request wakes the wait (SIGTERM interrupts poll, the
         * Windows control handler signals the reader's condition); the idle
         * timeout only covers one that lands between the loop test and the
         * wait, so it can be long and an idle host stays asleep. */
        long n = read_and_handle(h, in, L, limit, stopping ? 50 : 1000);
        if (n == OS_INPUT_END) {
            ended = 1;
            break;
        }
        if (n == OS_INPUT_IDLE && stopping && (jobs_in_flight() == 0 || host_now() > shutdown_deadline)) break;
    }
    double until = shutdown_deadline ? shutdown_deadline : host_now() + h->cfg.shutdown_grace_s;
    if (os_stop_requested()) {
        /* SIGTERM: the whole shutdown, writes included, ends by the grace. */
        if (!shutdown_deadline) until = host_now() + h->cfg.shutdown_grace_s;
        output_set_deadline(until);
        if (!ended) ended = drain_input(h, in, L, limit, until);
    }
    if (ended || !os_stop_requested()) handle_last_line(h, L);
    os_input_close(in);
    /* Nothing more is read: a client writing now gets EPIPE, not silence. */
    os_close_input(in_fd);
    shutdown_sequence(h, until);
    return output_lost() > 0 ? 1 : 0;
}
