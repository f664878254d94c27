/* host/builtin.c - the host's own messages, answered on the dispatch thread
 * at once, also while workers are busy. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "os.h"

static const char *const BUILTIN_TYPES[] = {"host.health", "host.info",  "host.plugins", "host.jobs",
                                            "host.cancel", "host.pause", "host.resume",  "host.shutdown", NULL};

static cJSON *plugin_ids(const host_ctx *h) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < h->plugins.count; i++) cJSON_AddItemToArray(a, cJSON_CreateString(h->plugins.items[i]->desc->id));
    return a;
}

/* host.health is the message clients poll: its result is written as text
 * (a cJSON raw item), with the plugin list printed once (it is fixed after
 * start-up), instead of a tree of items made, printed and freed each time. */
static cJSON *health(host_ctx *h) {
    static char *plugin_list; /* dispatch thread only */
    if (!plugin_list) {
        cJSON *ids = plugin_ids(h);
        plugin_list = cJSON_PrintUnformatted(ids);
        cJSON_Delete(ids);
        if (!plugin_list) return NULL;
    }
    char up[48], q[24], f[24], w[24];
    if (proto_fixed_text(up, host_now(), 6) != 0) snprintf(up, sizeof up, "0");
    proto_uint_text(q, (unsigned long long)jobs_queue_depth());
    proto_uint_text(f, (unsigned long long)jobs_in_flight());
    proto_uint_text(w, (unsigned long long)h->cfg.workers);
    size_t n = strlen(plugin_list) + 192;
    char *text = malloc(n);
    if (!text) return NULL;
    snprintf(text, n, "{\"status\":\"%s\",\"uptime_s\":%s,\"plugins\":%s,\"queue_depth\":%s,\"in_flight\":%s,\"workers\":%s}",
             atomic_load(&h->shutting_down) ? "shutting_down" : "ok", up, plugin_list, q, f, w);
    cJSON *r = cJSON_CreateRaw(text);
    free(text);
    return r;
}

static cJSON *refusals(const host_ctx *h) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < h->plugins.n_refused; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "path", h->plugins.refused[i].path);
        cJSON_AddStringToObject(r, "error_code", status_name(h->plugins.refused[i].code));
        cJSON_AddStringToObject(r, "reason", h->plugins.refused[i].reason);
        cJSON *data = h->plugins.refused[i].data_json ? cJSON_Parse(h->plugins.refused[i].data_json) : NULL;
        if (data) cJSON_AddItemToObject(r, "error_data", data); /* as in a failure response */
        cJSON_AddItemToArray(a, r);
    }
    return a;
}

static cJSON *plugins(const host_ctx *h) {
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "plugins");
    for (int i = 0; i < h->plugins.count; i++) cJSON_AddItemToArray(a, loader_describe(h->plugins.items[i]));
    cJSON_AddItemToObject(o, "refused", refusals(h));
    return o;
}

static cJSON *info(host_ctx *h) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "sdrt");
    cJSON_AddStringToObject(o, "version", SDRT_HOST_VERSION);
    char abi[32];
    snprintf(abi, sizeof abi, "%d.%d", SDRT_ABI_MAJOR, SDRT_ABI_MINOR);
    cJSON_AddStringToObject(o, "abi", abi);
    char plat[300];
    if (os_platform(plat, sizeof plat) == 0) cJSON_AddStringToObject(o, "platform", plat);
    cJSON_AddStringToObject(o, "config", h->cfg.path);
    proto_add_fixed(o, "uptime_s", host_now(), 6);
    proto_add_fixed(o, "ready_ms", h->t_ready * 1e3, 3);
    proto_add_int(o, "resident_kb", os_resident_kb());
    proto_add_int(o, "max_line_bytes", (long long)h->cfg.max_line_bytes);
    proto_add_int(o, "queue_limit", h->cfg.queue_limit);
    proto_add_int(o, "workers", h->cfg.workers);
    cJSON *types = cJSON_AddArrayToObject(o, "message_types");
    for (int i = 0; BUILTIN_TYPES[i]; i++) cJSON_AddItemToArray(types, cJSON_CreateString(BUILTIN_TYPES[i]));
    for (int i = 0; i < h->plugins.count; i++)
        for (int j = 0; h->plugins.items[i]->desc->message_types[j]; j++)
            cJSON_AddItemToArray(types, cJSON_CreateString(h->plugins.items[i]->desc->message_types[j]));
    cJSON *protocols = cJSON_AddArrayToObject(o, "protocols");
    cJSON_AddItemToArray(protocols, cJSON_CreateString("envelope"));
    cJSON_AddItemToArray(protocols, cJSON_CreateString("jsonrpc-2.0"));
    return o;
}

static const char *target_id(const proto_request *req, sdrt_error **err) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req->data, "request_id");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(req->data, "target");
    if (!cJSON_IsString(t)) {
        *err = error_new(SDRT_INVALID_ARGUMENT, NULL, "data.request_id: %s", t ? "expected a string" : "missing");
        return NULL;
    }
    return t->valuestring;
}

/* host.cancel's `when`: "now" (default) or "after_image" (finish the item
 * in progress, keep finished ones). Returns 1 for after_image, 0 for now,
 * -1 with *err for anything else. */
static int cancel_after_image(const proto_request *req, sdrt_error **err) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(req->data, "when");
    if (!w || (cJSON_IsString(w) && strcmp(w->valuestring, "now") == 0)) return 0;
    if (cJSON_IsString(w) && strcmp(w->valuestring, "after_image") == 0) return 1;
    *err = error_new(SDRT_INVALID_ARGUMENT, NULL, "data.when: must be \"now\" or \"after_image\"");
    return -1;
}

static cJSON *job_control(const proto_request *req, sdrt_error **err) {
    const char *id = target_id(req, err);
    if (!id) return NULL;
    int is_cancel = strcmp(req->type, "host.cancel") == 0;
    int after_image = is_cancel ? cancel_after_image(req, err) : 0;
    if (after_image < 0) return NULL;
    sdrt_status st;
    if (is_cancel) st = after_image ? jobs_stop_after_item(id) : jobs_cancel(id);
    else st = jobs_pause(id, strcmp(req->type, "host.pause") == 0);
    if (st != SDRT_OK) {
        *err = error_new(SDRT_NOT_FOUND, NULL, "data.request_id: no request '%s' is in flight", id);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "request_id", id);
    const char *what = strcmp(req->type, "host.cancel") == 0 ? "cancel_requested"
                       : strcmp(req->type, "host.pause") == 0 ? "paused" : "resumed";
    cJSON_AddTrueToObject(o, what);
    if (is_cancel) cJSON_AddStringToObject(o, "when", after_image ? "after_image" : "now");
    return o;
}

int builtin_is(const char *type) {
    for (int i = 0; BUILTIN_TYPES[i]; i++)
        if (strcmp(BUILTIN_TYPES[i], type) == 0) return 1;
    return 0;
}

int builtin_handle(host_ctx *h, const proto_request *req, cJSON **result, sdrt_error **err) {
    cJSON *r = NULL;
    *err = NULL;
    if (strcmp(req->type, "host.health") == 0) r = health(h);
    else if (strcmp(req->type, "host.info") == 0) r = info(h);
    else if (strcmp(req->type, "host.plugins") == 0) r = plugins(h);
    else if (strcmp(req->type, "host.jobs") == 0) {
        r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "jobs", jobs_list());
        proto_add_int(r, "queue_depth", jobs_queue_depth());
    } else if (strcmp(req->type, "host.cancel") == 0 || strcmp(req->type, "host.pause") == 0 ||
               strcmp(req->type, "host.resume") == 0) {
        r = job_control(req, err);
    } else if (strcmp(req->type, "host.shutdown") == 0) {
        atomic_store(&h->shutting_down, 1);
        r = cJSON_CreateObject();
        cJSON_AddTrueToObject(r, "shutting_down");
        proto_add_int(r, "in_flight", jobs_in_flight());
    } else {
        *err = error_new(SDRT_UNKNOWN_TYPE, NULL, "type: unknown host message '%s' (known: host.health, host.info, "
                         "host.plugins, host.jobs, host.cancel, host.pause, host.resume, host.shutdown)", req->type);
    }
    if (*err) {
        cJSON_Delete(r);
        r = NULL;
    }
    *result = r;
    return *err ? -1 : 0;
}
