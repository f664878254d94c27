/* host/call.c - sdrt_host_api.call: a plugin's internal request, run
 * synchronously on the caller's worker thread as a child job of the
 * caller's (progress, events and warnings go to the caller's request; the
 * caller's cancel, deadline and pause reach the callee). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "host.h"

int builtin_is(const char *type);

/* host.* messages an inner request may send: read-only ones and the job
 * controls (thread-safe: they take the jobs lock). */
static int callable_builtin(const char *type) {
    const char *ok[] = {"host.health", "host.info", "host.plugins", "host.jobs",
                        "host.cancel", "host.pause", "host.resume", NULL};
    for (int i = 0; ok[i]; i++)
        if (strcmp(ok[i], type) == 0) return 1;
    return 0;
}

static char *dup_result(const char *text) {
    size_t n = strlen(text) + 1;
    char *r = services_api()->alloc(n);
    if (r) memcpy(r, text, n);
    return r;
}

static sdrt_error *call_builtin(host_ctx *h, const char *type, cJSON *data, char **result_json) {
    if (!result_json) return NULL;
    proto_request req = {0};
    req.proto = PROTO_ENVELOPE;
    req.type = (char *)type;
    req.data = data;
    req.slot = -1;
    cJSON *result = NULL;
    sdrt_error *err = NULL;
    builtin_handle(h, &req, &result, &err);
    if (!err) {
        char *s = result ? cJSON_PrintUnformatted(result) : NULL;
        *result_json = dup_result(s ? s : "{}");
        free(s);
    }
    cJSON_Delete(result);
    return err;
}

sdrt_error *call_internal(sdrt_job *parent, const char *type, const char *data_json, char **result_json) {
    if (result_json) *result_json = NULL;
    host_ctx *h = g_host;
    if (!h || !type) return error_new(SDRT_INVALID_ARGUMENT, NULL, "call: no type");
    cJSON *data = data_json ? cJSON_Parse(data_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: data is not a JSON object", type);
    }
    if (builtin_is(type) || strncmp(type, "host.", 5) == 0) {
        sdrt_error *e = callable_builtin(type)
                            ? call_builtin(h, type, data, result_json)
                            : error_new(SDRT_UNSUPPORTED, NULL, "type: '%s' cannot be sent as an internal request", type);
        cJSON_Delete(data);
        return e;
    }
    int domain_known = 0;
    host_plugin *p = loader_find(&h->plugins, type, &domain_known);
    if (!p) {
        cJSON_Delete(data);
        return error_new(SDRT_UNKNOWN_TYPE, NULL, "type: no plugin serves '%s'", type);
    }
    /* Check mode without data: whether a plugin serves the type, only. */
    sdrt_error *verr = data_json || result_json ? server_validate(h, type, data) : NULL;
    if (verr || !result_json) {
        cJSON_Delete(data);
        return verr;
    }
    if (!parent) {
        cJSON_Delete(data);
        return error_new(SDRT_INVALID_ARGUMENT, NULL, "call: '%s' needs the caller's job", type);
    }
    sdrt_job *root = job_root(parent);
    sdrt_job child = {0};
    child.parent = parent;
    child.request_id = root->request_id;
    child.track_id = root->track_id;
    child.type = (char *)type;
    child.rpc_id = root->rpc_id;
    child.proto = root->proto;
    child.events = root->events;
    child.sink = root->sink;
    child.deadline = root->deadline;
    child.t_submit = child.t_start = host_now();
    child.slot = -1;
    child.warnings = cJSON_CreateArray();
    atomic_store(&child.state, JOB_RUNNING);
    char *text = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    sdrt_request req = {
        .struct_size = SDRT_STRUCT_SIZE(sdrt_request, deadline),
        .type = type,
        .request_id = root->track_id,
        .data_json = text ? text : "{}",
        .job = &child,
        .deadline = root->deadline,
    };
    atomic_fetch_add(&p->active_calls, 1);
    sdrt_error *err = p->desc->vtable->handle(p->instance, &req, result_json);
    atomic_fetch_sub(&p->active_calls, 1);
    free(text);
    cJSON_Delete(child.warnings);
    if (err && *result_json) {
        services_api()->free(*result_json);
        *result_json = NULL;
    }
    if (!err && !*result_json) *result_json = dup_result("{}");
    return err;
}

sdrt_error *call_detached(sdrt_job *parent, const char *type, const char *data_json, const char *request_id) {
    host_ctx *h = g_host;
    if (!h || !type) return error_new(SDRT_INVALID_ARGUMENT, NULL, "start: no type");
    if (!request_id || !*request_id) return error_new(SDRT_INVALID_ARGUMENT, NULL, "start: '%s' needs a request_id", type);
    if (!parent) return error_new(SDRT_INVALID_ARGUMENT, NULL, "start: '%s' needs the caller's job", type);
    if (builtin_is(type) || strncmp(type, "host.", 5) == 0)
        return error_new(SDRT_UNSUPPORTED, NULL, "type: '%s' cannot be started as a request of its own", type);
    cJSON *data = data_json ? cJSON_Parse(data_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: data is not a JSON object", type);
    }
    int domain_known = 0;
    host_plugin *p = loader_find(&h->plugins, type, &domain_known);
    sdrt_error *e = p ? server_validate(h, type, data) : error_new(SDRT_UNKNOWN_TYPE, NULL, "type: no plugin serves '%s'", type);
    if (!e && atomic_load(&h->shutting_down))
        e = error_new(SDRT_UNAVAILABLE, NULL, "%s: the host is shutting down and accepts no new work", type);
    if (e) {
        cJSON_Delete(data);
        return e;
    }
    /* As server.c's submit makes a client's job, answered to the client of
     * the caller's outermost request. */
    sdrt_job *root = job_root(parent);
    sdrt_job *job = calloc(1, sizeof *job);
    if (!job) {
        cJSON_Delete(data);
        return error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "start: out of memory");
    }
    job->request_id = strdup(request_id);
    job->rpc_id = root->proto == PROTO_JSONRPC ? cJSON_CreateString(request_id) : NULL;
    job->type = strdup(type);
    job->data_json = cJSON_PrintUnformatted(data);
    cJSON_Delete(data);
    job->slot = -1; /* not in the crash ledger: its client did not send it */
    job->proto = root->proto;
    job->priority = root->priority;
    job->plugin = p;
    job->warnings = cJSON_CreateArray();
    job->events = root->events;
    job->sink = root->sink;
    /* Queued once the caller's request has answered: that answer names this
     * one, so a client sees it before any line of this request. */
    sdrt_status st = jobs_submit_after(root, job);
    if (st == SDRT_OK) return NULL;
    atomic_store(&job->refs, 1);
    job_release(job);
    if (st == SDRT_BUSY)
        return error_new(SDRT_BUSY, NULL, "queue full (queue_limit %d requests waiting): retry later", h->cfg.queue_limit);
    return error_new(SDRT_ALREADY_EXISTS, NULL, "request_id: '%s' is already in flight", request_id);
}
