/* host/legacy_shapes.c - request shapes of the older C# service and Python
 * workers that differ from the seed envelope at the top level, rewritten
 * into it before parsing:
 *   - the versioned envelope of the communication design
 *     {"version","message_id","timestamp","type":"request","source",
 *      "destination","operation","worker_type","data"}, routed by operation
 *     and worker_type; its answer echoes version and message_id and gives a
 *     timestamp;
 *   - the C# MessageProtocol {"Id","Type","Data":"<JSON text>"};
 *   - the workers README {"worker_type","method","parameters"} and
 *     {"worker_type":"processing","action",...};
 *   - the old processing operation names (get_workflows, ...).
 * Field renames inside data stay in legacy.c. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "os.h"

static cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static void set_string(cJSON *o, const char *k, const char *v) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddStringToObject(o, k, v);
}

/* The C# ServiceProcessing operations and the processing domain's types. */
static const struct {
    const char *old;
    const char *type;
} PROCESSING_NAMES[] = {
    {"get_workflows", "processing.workflows"},
    {"get_workflow", "processing.workflow"},
    {"execute_workflow", "processing.execute"},
    {"get_session_status", "processing.session"},
    {"get_sessions", "processing.sessions"},
    {"control_session", "processing.control"},
    {"delete_session", "processing.delete"},
    {"create_batch", "processing.batch_create"},
    {"execute_batch", "processing.batch_execute"},
    {"get_batch_status", "processing.batch"},
    {"get_batches", "processing.batches"},
    {"delete_batch", "processing.batch_delete"},
    {"get_status", "processing.status"},
    {NULL, NULL},
};

const char *legacy_processing_type(const char *old) {
    for (int i = 0; PROCESSING_NAMES[i].old; i++)
        if (strcmp(PROCESSING_NAMES[i].old, old) == 0) return PROCESSING_NAMES[i].type;
    return NULL;
}

/* operation + worker_type (+ data.type for pipeline_manager) -> type. */
static sdrt_status envelope_type(cJSON *root, const char **type, char *err, size_t errlen) {
    const cJSON *op = get(root, "operation"), *wt = get(root, "worker_type");
    const char *o = cJSON_GetStringValue(op), *w = cJSON_GetStringValue(wt);
    if (wt && !w) {
        snprintf(err, errlen, "worker_type: expected a string");
        return SDRT_INVALID_REQUEST;
    }
    if (!o) {
        snprintf(err, errlen, "operation: %s (one of inference, model_load, health_check, capability_query)",
                 op ? "expected a string" : "missing");
        return SDRT_INVALID_REQUEST;
    }
    if (w && strcmp(w, "sdxl_worker") != 0 && strcmp(w, "pipeline_manager") != 0 &&
        strcmp(w, "upscaler_worker") != 0 && strcmp(w, "processing") != 0) {
        snprintf(err, errlen, "worker_type: '%s' is not one of sdxl_worker, pipeline_manager, upscaler_worker, processing",
                 w);
        return SDRT_INVALID_REQUEST;
    }
    if (strcmp(o, "health_check") == 0) *type = "host.health";
    else if (strcmp(o, "capability_query") == 0) *type = "host.info";
    else if (strcmp(o, "model_load") == 0) *type = "model.load";
    else if (strcmp(o, "inference") == 0) {
        *type = "inference.run";
        if (w && strcmp(w, "upscaler_worker") == 0) *type = "postprocess.upscale";
        if (w && strcmp(w, "pipeline_manager") == 0) {
            /* pipeline_manager's data.type: a multi-stage run is a workflow,
             * a batch is a batch; a plain one is one inference. */
            cJSON *data = get(root, "data");
            const char *dt = cJSON_GetStringValue(get(data, "type"));
            if (dt && strcmp(dt, "multi_stage") == 0) *type = "processing.execute";
            else if (dt && strcmp(dt, "batch") == 0) {
                *type = "processing.batch_create";
                cJSON_DeleteItemFromObjectCaseSensitive(data, "execute");
                cJSON_AddTrueToObject(data, "execute"); /* the old batch ran at once */
            }
            if (dt) cJSON_DeleteItemFromObjectCaseSensitive(data, "type");
        }
    } else {
        snprintf(err, errlen, "operation: '%s' is not one of inference, model_load, health_check, capability_query", o);
        return SDRT_INVALID_REQUEST;
    }
    return SDRT_OK;
}

/* The members echoed in the versioned envelope's answer (JSON text without
 * braces). */
static char *envelope_reply(const cJSON *root) {
    cJSON *o = cJSON_CreateObject();
    const cJSON *v = get(root, "version");
    cJSON_AddItemToObject(o, "version", v ? cJSON_Duplicate(v, 1) : cJSON_CreateString("1.0"));
    const cJSON *mid = get(root, "message_id");
    if (mid) cJSON_AddItemToObject(o, "message_id", cJSON_Duplicate(mid, 1));
    /* The answer goes back: its source is the request's destination. */
    const cJSON *src = get(root, "destination"), *dst = get(root, "source");
    if (cJSON_IsString(src)) cJSON_AddStringToObject(o, "source", src->valuestring);
    if (cJSON_IsString(dst)) cJSON_AddStringToObject(o, "destination", dst->valuestring);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return NULL;
    size_t n = strlen(s);
    memmove(s, s + 1, n - 2); /* drop the braces */
    s[n - 2] = '\0';
    return s;
}

static sdrt_status reshape_envelope(cJSON *root, char **reply_extra, char *err, size_t errlen) {
    const char *type = NULL;
    *reply_extra = envelope_reply(root); /* a refusal echoes them too */
    sdrt_status st = envelope_type(root, &type, err, errlen);
    if (st) return st;
    set_string(root, "type", type);
    const char *drop[] = {"version", "timestamp", "source", "destination", "operation", "worker_type", NULL};
    for (int i = 0; drop[i]; i++) cJSON_DeleteItemFromObjectCaseSensitive(root, drop[i]);
    return SDRT_OK;
}

/* {"Id","Type","Data":"<JSON text>"}: Data is a serialised object. */
static sdrt_status reshape_csharp(cJSON *root, char *err, size_t errlen) {
    cJSON *t = get(root, "Type");
    if (!cJSON_IsString(t)) {
        snprintf(err, errlen, "Type: expected a string");
        return SDRT_INVALID_REQUEST;
    }
    const char *pt = legacy_processing_type(t->valuestring);
    set_string(root, "type", pt ? pt : t->valuestring);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "Type");
    cJSON *id = cJSON_DetachItemFromObjectCaseSensitive(root, "Id");
    if (id && !get(root, "request_id")) cJSON_AddItemToObject(root, "request_id", id);
    else cJSON_Delete(id);
    cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(root, "Data");
    if (cJSON_IsString(d)) {
        const char *end = NULL;
        cJSON *parsed = cJSON_ParseWithOpts(d->valuestring, &end, 1);
        if (!cJSON_IsObject(parsed)) {
            long at = end ? (long)(end - d->valuestring) : 0L;
            cJSON_Delete(parsed);
            cJSON_Delete(d);
            if (parsed) snprintf(err, errlen, "Data: the serialised text is not a JSON object");
            else snprintf(err, errlen, "Data: the serialised text is not valid JSON (at byte %ld)", at);
            return SDRT_INVALID_ARGUMENT;
        }
        cJSON_Delete(d);
        d = parsed;
    } else if (d && !cJSON_IsObject(d) && !cJSON_IsNull(d)) {
        cJSON_Delete(d);
        snprintf(err, errlen, "Data: expected a JSON object or its serialised text");
        return SDRT_INVALID_ARGUMENT;
    }
    if (!d || cJSON_IsNull(d)) {
        cJSON_Delete(d);
        d = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "data");
    cJSON_AddItemToObject(root, "data", d);
    const char *lower[][2] = {{"Priority", "priority"}, {"Timeout", "timeout"}, {NULL, NULL}};
    for (int i = 0; lower[i][0]; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(root, lower[i][0]);
        if (v && !get(root, lower[i][1])) cJSON_AddItemToObject(root, lower[i][1], v);
        else cJSON_Delete(v);
    }
    return SDRT_OK;
}

/* {"worker_type","method","parameters"} and {"worker_type":"processing",
 * "action"}. */
static sdrt_status reshape_worker(cJSON *root, char *err, size_t errlen) {
    const char *w = cJSON_GetStringValue(get(root, "worker_type"));
    const char *action = cJSON_GetStringValue(get(root, "action"));
    const char *method = cJSON_GetStringValue(get(root, "method"));
    if (w && strcmp(w, "processing") == 0) {
        if (!action) {
            snprintf(err, errlen, "action: missing (worker_type processing)");
            return SDRT_INVALID_REQUEST;
        }
        const char *t = legacy_processing_type(action);
        if (!t && strncmp(action, "processing.", 11) == 0) t = action;
        if (!t) {
            snprintf(err, errlen, "action: '%s' is not a processing operation", action);
            return SDRT_INVALID_REQUEST;
        }
        set_string(root, "type", t);
        cJSON_DeleteItemFromObjectCaseSensitive(root, "action");
    } else {
        if (!method) {
            snprintf(err, errlen, "method: missing (one of text2img, img2img, inpaint)");
            return SDRT_INVALID_REQUEST;
        }
        if (strcmp(method, "text2img") != 0 && strcmp(method, "img2img") != 0 && strcmp(method, "inpaint") != 0) {
            snprintf(err, errlen, "method: '%s' is not one of text2img, img2img, inpaint", method);
            return SDRT_INVALID_REQUEST;
        }
        set_string(root, "type", "inference.run");
        cJSON *params = cJSON_DetachItemFromObjectCaseSensitive(root, "parameters");
        if (params && !cJSON_IsObject(params)) {
            cJSON_Delete(params);
            snprintf(err, errlen, "parameters: expected an object");
            return SDRT_INVALID_ARGUMENT;
        }
        if (params) {
            cJSON_DeleteItemFromObjectCaseSensitive(root, "data");
            cJSON_AddItemToObject(root, "data", params);
        }
        /* The method must agree with the inputs: img2img needs an image,
         * inpaint an image and a mask (the plugin names them otherwise). */
        cJSON *d = get(root, "data");
        if (strcmp(method, "text2img") != 0 && d && !get(d, "init_image")) {
            snprintf(err, errlen, "parameters.init_image: is required by method %s", method);
            return SDRT_INVALID_ARGUMENT;
        }
        if (strcmp(method, "inpaint") == 0 && d && !get(d, "mask_image")) {
            snprintf(err, errlen, "parameters.mask_image: is required by method inpaint");
            return SDRT_INVALID_ARGUMENT;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(root, "method");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "worker_type");
    return SDRT_OK;
}

sdrt_status legacy_reshape(cJSON *root, char **reply_extra, char *err, size_t errlen) {
    *reply_extra = NULL;
    const cJSON *type = get(root, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "request") == 0 &&
        (get(root, "operation") || get(root, "worker_type")))
        return reshape_envelope(root, reply_extra, err, errlen);
    if (!type && !get(root, "message_type") && get(root, "Type")) return reshape_csharp(root, err, errlen);
    if (!type && !get(root, "message_type") && get(root, "worker_type")) return reshape_worker(root, err, errlen);
    if (cJSON_IsString(type)) {
        const char *t = legacy_processing_type(type->valuestring);
        if (t) set_string(root, "type", t);
    }
    return SDRT_OK;
}

char *legacy_reply_line(const char *line, const char *reply_extra) {
    size_t n = strlen(line);
    if (!reply_extra || n < 2 || line[n - 1] != '}') return NULL;
    char ts[40];
    struct tm tm;
    if (os_utc_now(&tm) != 0) memset(&tm, 0, sizeof tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    size_t cap = n + strlen(reply_extra) + 64;
    char *out = malloc(cap);
    if (!out) return NULL;
    snprintf(out, cap, "%.*s,%s%s\"timestamp\":\"%s\"}", (int)(n - 1), line, reply_extra, *reply_extra ? "," : "", ts);
    return out;
}
