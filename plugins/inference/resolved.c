/* plugins/inference/resolved.c - the request as it actually ran.
 *
 * Image metadata (the A1111 "parameters" text and the "sdrt" request chunk)
 * is written from this, not from the raw request: a request that names no
 * steps, guidance or scheduler ran the model's defaults (50 steps, 5.0 for
 * SDXL, the model's scheduler class and config), and the file must say so.
 * One place resolves it; postprocess only formats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "run_internal.h"

static void set_item(cJSON *o, const char *key, cJSON *v) {
    if (!v) return;
    if (cJSON_GetObjectItemCaseSensitive(o, key)) cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else cJSON_AddItemToObject(o, key, v);
}

char *run_resolved_request_json(const run_ctx *c) {
    /* The hires fix adds its A1111 infotext entries to a copy (params_json). */
    cJSON *o = cJSON_Parse(c->params_json ? c->params_json : c->data_json ? c->data_json : "{}");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    if (!o) return NULL;
    /* The legacy nesting was mapped by request.c; drop it so that one set
     * of canonical fields describes the run. */
    cJSON_DeleteItemFromObjectCaseSensitive(o, "hyperparameters");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "dimensions");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "model_name");
    if (c->m && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "model_id")))
        set_item(o, "model_id", cJSON_CreateString(c->r.model_id));
    /* After a hires fix the size is the first pass's, as A1111 writes it
     * (the hires entries in infotext_extra give the target). */
    set_item(o, "width", cJSON_CreateNumber(c->first_w ? c->first_w : c->r.width));
    set_item(o, "height", cJSON_CreateNumber(c->first_h ? c->first_h : c->r.height));
    set_item(o, "num_inference_steps", cJSON_CreateNumber(c->r.steps));
    set_item(o, "guidance_scale", cJSON_CreateNumber(c->r.guidance_scale));
    set_item(o, "batch_size", cJSON_CreateNumber(c->r.batch_size));
    /* Seeds above 2^53 do not survive a JSON double: a string then, as the
     * request schema accepts them. */
    if (c->seed <= (1ull << 53)) {
        set_item(o, "seed", cJSON_CreateNumber((double)c->seed));
    } else {
        char s[24];
        snprintf(s, sizeof s, "%llu", (unsigned long long)c->seed);
        set_item(o, "seed", cJSON_CreateString(s));
    }
    if (c->state && c->sched) {
        set_item(o, "scheduler", cJSON_CreateString(c->sched->class_name(c->state)));
        cJSON *cfg = cJSON_Parse(c->sched->config_json(c->state));
        if (cJSON_IsObject(cfg)) set_item(o, "scheduler_config", cfg);
        else cJSON_Delete(cfg);
    }
    if (c->r.init_image && c->r.denoising_start < 0) set_item(o, "strength", cJSON_CreateNumber(run_strength(c)));
    if (c->r.clip_skip) set_item(o, "clip_skip", cJSON_CreateNumber(c->r.clip_skip));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = text ? strdup(text) : NULL; /* one deallocator (free) */
    cJSON_free(text);
    return out;
}

sdrt_error *run_check_finite(run_ctx *c, const float *data, size_t n, const char *what) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        /* x - x is 0 for every finite x, NaN for NaN and +-Inf, and stays
         * exact under -ffast-math-free builds (isfinite is the same test). */
        float d = data[i] - data[i];
        if (d != 0.0f) {
            if (!bad) first = i;
            bad++;
        }
    }
    if (!bad) return NULL;
    return c->api->error_new(SDRT_FAILED_PRECONDITION, NULL,
                             "%s: %zu of %zu values are NaN or infinite (first at %zu): the model's weights (model_id "
                             "'%s') or the scheduler configuration produce non-finite numbers; no image was written",
                             what, bad, n, first, c->r.model_id ? c->r.model_id : "?");
}
