/* plugins/inference/batch.c - inference.batch: the items of one request run
 * in order through infer_run, on the batch's job, with one final response.
 *
 * Progress: infer_run reports through the infer_plugin's host table, so each
 * item runs with a copy of that table whose progress and warn know the
 * batch (found through the job's user pointer, sdrt_host_api.job_user: a
 * host function receives only the job). Step progress then goes out as `progress` events carrying
 * `item` and `items`, and warnings are prefixed "requests[i]: ". Everything
 * else (cancellation, pause, errors, memory) is the host's own function, so
 * the other plugins, which get the real job, see nothing different. */
#define _POSIX_C_SOURCE 200809L
#include "batch.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "request.h"

typedef enum batch_state {
    BATCH_PENDING = 0,
    BATCH_SUCCEEDED,
    BATCH_FAILED,
    BATCH_CANCELLED,
    BATCH_SKIPPED,
} batch_state;

static const char *const batch_state_names[] = {"pending", "succeeded", "failed", "cancelled", "skipped"};

typedef struct batch_item {
    char *data_json;     /* the item's inference.run data, malloc'd */
    batch_state state;
    sdrt_status code;    /* failed / cancelled / skipped */
    char *error;         /* malloc'd, names the item */
    char *error_data;    /* the item error's JSON object, malloc'd, or NULL */
    char *result_json;   /* infer_run's result (api->alloc), or NULL */
} batch_item;

typedef struct batch_ctx {
    const infer_plugin *p;
    const sdrt_host_api *api;  /* the host's table */
    sdrt_host_api wrapped;     /* the host's, with progress and warn via the batch */
    const sdrt_request *req;
    batch_item *items;
    int n, current;
    int continue_on_error;
    double t0;
} batch_ctx;

/* The host's table, for the wrapped functions (which get only the job):
 * set once, by the first batch, to the one table every batch shares. */
static const sdrt_host_api *_Atomic g_batch_api;

static double batch_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The batch running on `job`: the job's user pointer (sdrt_host_api
 * job_user), set by infer_batch for as long as its items run. */
static batch_ctx *batch_find(sdrt_job *job) {
    const sdrt_host_api *api = g_batch_api;
    return api ? api->job_user(job) : NULL;
}

/* ---- the wrapped host functions ------------------------------------------ */

static char *batch_progress_json(const batch_ctx *b, const sdrt_progress *p) {
    double item_progress = p->progress >= 0 && p->progress <= 1 ? p->progress : 0;
    double overall = (b->current + item_progress) / b->n, elapsed = batch_now() - b->t0;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "progress", overall);
    cJSON_AddStringToObject(d, "stage", p->stage ? p->stage : "inference");
    if (p->steps > 0) {
        cJSON_AddNumberToObject(d, "step", p->step);
        cJSON_AddNumberToObject(d, "steps", p->steps);
    }
    cJSON_AddNumberToObject(d, "item", b->current);
    cJSON_AddNumberToObject(d, "items", b->n);
    if (p->progress >= 0) cJSON_AddNumberToObject(d, "item_progress", item_progress);
    cJSON_AddNumberToObject(d, "elapsed", elapsed);
    if (overall > 0) cJSON_AddNumberToObject(d, "eta", elapsed * (1 - overall) / overall);
    if (SDRT_HAS_MEMBER(p, sdrt_progress, message) && p->message) cJSON_AddStringToObject(d, "message", p->message);
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    return s;
}

/* The host's sdrt_progress has no item fields, so step progress goes out as
 * a `progress` event of the same shape plus item/items (and the overall
 * fraction of the batch in `progress`). */
static void batch_progress(sdrt_job *job, const sdrt_progress *p) {
    batch_ctx *b = job && p ? batch_find(job) : NULL;
    if (!b) return;
    char *data = batch_progress_json(b, p);
    if (data) b->api->event(job, "progress", data);
    free(data);
}

static void batch_warn(sdrt_job *job, const char *message) {
    batch_ctx *b = job && message ? batch_find(job) : NULL;
    if (!b) return;
    size_t len = strlen(message) + 32;
    char *text = malloc(len);
    if (!text) return;
    snprintf(text, len, "requests[%d]: %s", b->current, message);
    b->api->warn(job, text);
    free(text);
}

/* A copy of the host's table as far as the host filled it, then the two
 * functions that need to know the item. A host without job_user (before
 * ABI 1.1) gets the items' own progress and warnings unwrapped. */
static int batch_can_wrap(const sdrt_host_api *api) {
    return SDRT_HAS_MEMBER(api, sdrt_host_api, job_user) && api->job_user && api->job_set_user;
}

static void batch_wrap_api(batch_ctx *b) {
    size_t size = b->api->struct_size < sizeof b->wrapped ? b->api->struct_size : sizeof b->wrapped;
    memset(&b->wrapped, 0, sizeof b->wrapped);
    memcpy(&b->wrapped, b->api, size);
    b->wrapped.struct_size = (uint32_t)size;
    if (!batch_can_wrap(b->api)) return;
    g_batch_api = b->api;
    b->wrapped.progress = batch_progress;
    b->wrapped.warn = batch_warn;
}

/* ---- the envelope --------------------------------------------------------- */

/* "requests[i]" joined to an item's message: ".width: ..." when the
 * message starts with a field name, else ": ...". */
static char *batch_item_message(int i, const char *message) {
    size_t k = strspn(message, "abcdefghijklmnopqrstuvwxyz_0123456789");
    int field = k > 0 && (message[k] == ':' || message[k] == '.' || message[k] == '[') &&
                strncmp(message, "inference:", 10) != 0;
    size_t len = strlen(message) + 40;
    char *out = malloc(len);
    if (out) snprintf(out, len, "requests[%d]%s%s", i, field ? "." : ": ", message);
    return out;
}

static sdrt_error *batch_oom(const batch_ctx *b) {
    return b->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "inference.batch: out of memory");
}

static sdrt_error *batch_parse_options(batch_ctx *b, const cJSON *root) {
    const cJSON *coe = cJSON_GetObjectItemCaseSensitive(root, "continue_on_error");
    b->continue_on_error = 1;
    if (!coe) return NULL;
    if (!cJSON_IsBool(coe))
        return b->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "continue_on_error: must be a boolean");
    b->continue_on_error = cJSON_IsTrue(coe);
    return NULL;
}

static sdrt_error *batch_parse_requests(batch_ctx *b, const cJSON *root) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "requests");
    if (!list) return b->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "requests: is required");
    if (!cJSON_IsArray(list))
        return b->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "requests: must be an array of inference.run data objects");
    int n = cJSON_GetArraySize(list);
    if (n == 0) return b->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "requests: must not be empty");
    if (n > INFER_BATCH_MAX_ITEMS)
        return b->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "requests: %d items exceed the maximum of %d", n,
                                 INFER_BATCH_MAX_ITEMS);
    b->items = calloc((size_t)n, sizeof *b->items);
    if (!b->items) return batch_oom(b);
    b->n = n;
    int i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        if (!cJSON_IsObject(it))
            return b->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "requests[%d]: must be an object (inference.run data)",
                                     i);
        b->items[i].data_json = cJSON_PrintUnformatted(it);
        if (!b->items[i].data_json) return batch_oom(b);
    }
    return NULL;
}

static sdrt_error *batch_parse(batch_ctx *b, const char *data_json) {
    cJSON *root = cJSON_Parse(data_json ? data_json : "{}");
    sdrt_error *e = cJSON_IsObject(root) ? NULL
                                         : b->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: must be a JSON object");
    if (!e) e = batch_parse_options(b, root);
    if (!e) e = batch_parse_requests(b, root);
    cJSON_Delete(root);
    return e;
}

static void batch_mark(batch_item *item, batch_state state, sdrt_status code, char *error) {
    item->state = state;
    item->code = code;
    free(item->error);
    item->error = error;
}

/* Checks every item's fields before anything runs. With continue_on_error
 * a bad item is failed on its own (the others run); without it the whole
 * batch is refused, since it would stop there anyway after spending the
 * earlier items' time. */
static sdrt_error *batch_validate(batch_ctx *b) {
    for (int i = 0; i < b->n; i++) {
        infer_request r;
        char err[512];
        sdrt_status st = infer_request_parse(b->items[i].data_json, &r, err, sizeof err);
        if (st == SDRT_OK) {
            infer_request_free(&r);
            continue;
        }
        char *msg = batch_item_message(i, err);
        if (!msg) return batch_oom(b);
        if (!b->continue_on_error) {
            sdrt_error *e = b->api->error_new(st, NULL, "%s", msg);
            free(msg);
            return e;
        }
        batch_mark(&b->items[i], BATCH_FAILED, st, msg);
    }
    return NULL;
}

/* ---- running the items ---------------------------------------------------- */

/* Between items: a cancel stops the batch, and a paused job waits here (as
 * it does between the steps of an item). */
static int batch_should_stop(const batch_ctx *b) {
    sdrt_job *job = b->req->job;
    if (b->api->is_cancelled(job)) return 1;
    return SDRT_HAS_MEMBER(b->api, sdrt_host_api, wait_if_paused) && b->api->wait_if_paused &&
           b->api->wait_if_paused(job);
}

static void batch_item_failed(batch_ctx *b, int i, sdrt_error *e) {
    batch_item *item = &b->items[i];
    int cancelled = e->code == SDRT_CANCELLED || b->api->is_cancelled(b->req->job);
    batch_mark(item, cancelled ? BATCH_CANCELLED : BATCH_FAILED, cancelled ? SDRT_CANCELLED : e->code,
               batch_item_message(i, e->message));
    if (e->data_json) item->error_data = strdup(e->data_json);
}

static void batch_run_item(batch_ctx *b, int i) {
    infer_plugin item_plugin = *b->p;
    item_plugin.api = &b->wrapped;
    const sdrt_request *req = b->req;
    sdrt_request r = {
        .struct_size = SDRT_STRUCT_SIZE(sdrt_request, deadline),
        .type = "inference.run",
        .request_id = req->request_id,
        .data_json = b->items[i].data_json,
        .job = req->job,
        .deadline = SDRT_HAS_MEMBER(req, sdrt_request, deadline) ? req->deadline : 0,
    };
    b->current = i;
    char *result = NULL;
    sdrt_error *e = infer_run(&item_plugin, &r, &result);
    if (!e) {
        b->items[i].result_json = result;
        b->items[i].state = BATCH_SUCCEEDED;
        return;
    }
    batch_item_failed(b, i, e);
    b->api->error_free(e);
}

/* Items from `from` on that have not run get `state`, `code` and `why`. */
static void batch_mark_rest(batch_ctx *b, int from, batch_state state, sdrt_status code, const char *why) {
    for (int i = from; i < b->n; i++) {
        if (b->items[i].state != BATCH_PENDING) continue;
        batch_mark(&b->items[i], state, code, batch_item_message(i, why));
    }
}

/* A `batch_item` event once an item is done, so an orchestrator can act on
 * finished items before the final response. */
static void batch_item_event(const batch_ctx *b, int i) {
    const batch_item *item = &b->items[i];
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "item", i);
    cJSON_AddNumberToObject(d, "items", b->n);
    cJSON_AddStringToObject(d, "status", batch_state_names[item->state]);
    if (item->state != BATCH_SUCCEEDED) cJSON_AddStringToObject(d, "error_code", sdrt_status_name(item->code));
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (s) b->api->event(b->req->job, "batch_item", s);
    free(s);
}

/* host.cancel {"when":"after_image"}: the item in progress was let finish;
 * no further item starts. */
static int batch_stop_after_item(const batch_ctx *b) {
    return SDRT_HAS_MEMBER(b->api, sdrt_host_api, stop_requested) && b->api->stop_requested &&
           b->api->stop_requested(b->req->job);
}

/* Returns the reason the batch stopped early: NULL, "cancelled",
 * "after_image" (stopped between items on request) or "error". */
static const char *batch_run_items(batch_ctx *b) {
    for (int i = 0; i < b->n; i++) {
        if (b->items[i].state != BATCH_PENDING) { /* refused by batch_validate */
            batch_item_event(b, i);
            continue;
        }
        if (batch_should_stop(b)) {
            batch_mark_rest(b, i, BATCH_CANCELLED, SDRT_CANCELLED, "not started: the batch was cancelled");
            return "cancelled";
        }
        if (batch_stop_after_item(b)) {
            batch_mark_rest(b, i, BATCH_CANCELLED, SDRT_CANCELLED,
                            "not started: host.cancel asked the batch to stop after the item in progress");
            return "after_image";
        }
        batch_run_item(b, i);
        batch_item_event(b, i);
        if (b->items[i].state == BATCH_CANCELLED) {
            batch_mark_rest(b, i + 1, BATCH_CANCELLED, SDRT_CANCELLED, "not started: the batch was cancelled");
            return "cancelled";
        }
        if (b->items[i].state == BATCH_FAILED && !b->continue_on_error) {
            batch_mark_rest(b, i + 1, BATCH_SKIPPED, SDRT_FAILED_PRECONDITION,
                            "not started: an earlier item failed and continue_on_error is false");
            return "error";
        }
    }
    return NULL;
}

/* ---- the response --------------------------------------------------------- */

static cJSON *batch_item_json(const batch_ctx *b, int i) {
    const batch_item *item = &b->items[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", i);
    cJSON_AddStringToObject(o, "status", batch_state_names[item->state]);
    cJSON_AddBoolToObject(o, "success", item->state == BATCH_SUCCEEDED);
    if (item->state == BATCH_SUCCEEDED) {
        cJSON *data = item->result_json ? cJSON_Parse(item->result_json) : cJSON_CreateObject();
        cJSON_AddItemToObject(o, "data", data ? data : cJSON_CreateObject());
        return o;
    }
    cJSON_AddStringToObject(o, "error", item->error ? item->error : "requests: out of memory");
    cJSON_AddStringToObject(o, "error_code", sdrt_status_name(item->code));
    cJSON *extra = item->error_data ? cJSON_Parse(item->error_data) : NULL;
    if (extra) cJSON_AddItemToObject(o, "error_data", extra);
    return o;
}

static char *batch_response(const batch_ctx *b, const char *stopped) {
    int counts[5] = {0};
    cJSON *root = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(root, "items");
    for (int i = 0; i < b->n; i++) {
        counts[b->items[i].state]++;
        cJSON_AddItemToArray(items, batch_item_json(b, i));
    }
    cJSON_AddNumberToObject(root, "succeeded", counts[BATCH_SUCCEEDED]);
    cJSON_AddNumberToObject(root, "failed", counts[BATCH_FAILED]);
    cJSON_AddNumberToObject(root, "cancelled", counts[BATCH_CANCELLED]);
    cJSON_AddNumberToObject(root, "skipped", counts[BATCH_SKIPPED]);
    if (stopped) cJSON_AddStringToObject(root, "stopped", stopped);
    else cJSON_AddNullToObject(root, "stopped");
    cJSON_AddNumberToObject(root, "processing_time", batch_now() - b->t0);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *out = text ? b->api->alloc(strlen(text) + 1) : NULL;
    if (out) memcpy(out, text, strlen(text) + 1);
    free(text);
    return out;
}

/* Nothing finished: a cancel leaves no result to keep, so the batch ends
 * as a cancelled request does. */
static int batch_nothing_finished(const batch_ctx *b) {
    for (int i = 0; i < b->n; i++)
        if (b->items[i].state == BATCH_SUCCEEDED || b->items[i].state == BATCH_FAILED) return 0;
    return 1;
}

static void batch_free(batch_ctx *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->items[i].data_json);
        free(b->items[i].error);
        free(b->items[i].error_data);
        if (b->items[i].result_json) b->api->free(b->items[i].result_json);
    }
    free(b->items);
}

sdrt_error *infer_batch(const infer_plugin *p, const sdrt_request *req, char **result_json) {
    batch_ctx b = {.p = p, .api = p->api, .req = req, .t0 = batch_now()};
    *result_json = NULL;
    sdrt_error *e = batch_parse(&b, req->data_json);
    if (!e) e = batch_validate(&b);
    if (e) {
        batch_free(&b);
        return e;
    }
    batch_wrap_api(&b);
    if (batch_can_wrap(p->api)) p->api->job_set_user(req->job, &b);
    const char *stopped = batch_run_items(&b);
    if (batch_can_wrap(p->api)) p->api->job_set_user(req->job, NULL);
    if (stopped && strcmp(stopped, "cancelled") == 0 && batch_nothing_finished(&b))
        e = p->api->error_new(SDRT_CANCELLED, NULL, "inference.batch: cancelled before any item finished");
    if (!e) {
        *result_json = batch_response(&b, stopped);
        if (!*result_json) e = batch_oom(&b);
    }
    batch_free(&b);
    return e;
}
