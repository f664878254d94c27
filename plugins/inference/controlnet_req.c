/* plugins/inference/controlnet_req.c - see controlnet_req.h. */
#include "controlnet_req.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sdrt_status bad(char *err, size_t errlen, size_t i, const char *field, const char *why) {
    snprintf(err, errlen, "controlnet[%zu].%s: %s", i, field, why);
    return SDRT_INVALID_ARGUMENT;
}

static sdrt_status number(const cJSON *o, size_t i, const char *field, double def, double lo, double hi, double *out,
                          char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    *out = def;
    if (!v || cJSON_IsNull(v)) return SDRT_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        char why[96];
        snprintf(why, sizeof why, "must be a number in [%g, %g]", lo, hi);
        return bad(err, errlen, i, field, why);
    }
    *out = v->valuedouble;
    return SDRT_OK;
}

static sdrt_status string(const cJSON *o, size_t i, const char *field, char **out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!cJSON_IsString(v) || !v->valuestring[0]) return bad(err, errlen, i, field, "must be a non-empty string");
    *out = strdup(v->valuestring);
    if (!*out) {
        snprintf(err, errlen, "controlnet: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    return SDRT_OK;
}

static sdrt_status entry(const cJSON *o, size_t i, infer_cn_req *r, char *err, size_t errlen) {
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "controlnet[%zu]: must be an object", i);
        return SDRT_INVALID_ARGUMENT;
    }
    sdrt_status st = string(o, i, "model_id", &r->model_id, err, errlen);
    if (st == SDRT_OK) st = string(o, i, "image", &r->image, err, errlen);
    if (st == SDRT_OK) st = number(o, i, "conditioning_scale", 1.0, -100.0, 100.0, &r->scale, err, errlen);
    if (st == SDRT_OK) st = number(o, i, "guidance_start", 0.0, 0.0, 1.0, &r->start, err, errlen);
    if (st == SDRT_OK) st = number(o, i, "guidance_end", 1.0, 0.0, 1.0, &r->end, err, errlen);
    if (st == SDRT_OK && r->start >= r->end)
        st = bad(err, errlen, i, "guidance_end", "must be greater than guidance_start");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(o, "preprocess");
    if (st == SDRT_OK && pre && !cJSON_IsNull(pre)) {
        if (!cJSON_IsString(pre)) {
            st = bad(err, errlen, i, "preprocess", "must be a string");
        } else if (strcmp(pre->valuestring, "canny") == 0) {
            r->canny = 1;
        } else if (strcmp(pre->valuestring, "none") != 0) {
            snprintf(err, errlen,
                     "controlnet[%zu].preprocess: \"%.64s\" needs a detector model sdrt does not run (\"canny\" and "
                     "\"none\" are available: pass an image that is already preprocessed)",
                     i, pre->valuestring);
            st = SDRT_UNSUPPORTED;
        }
    }
    if (st == SDRT_OK) st = number(o, i, "low_threshold", 100.0, 0.0, 100000.0, &r->low, err, errlen);
    if (st == SDRT_OK) st = number(o, i, "high_threshold", 200.0, 0.0, 100000.0, &r->high, err, errlen);
    return st;
}

sdrt_status infer_cn_reqs_parse(const cJSON *root, infer_cn_reqs *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const cJSON *gm = cJSON_GetObjectItemCaseSensitive(root, "guess_mode");
    if (gm && !cJSON_IsNull(gm) && !cJSON_IsBool(gm)) {
        snprintf(err, errlen, "guess_mode: must be a boolean");
        return SDRT_INVALID_ARGUMENT;
    }
    out->guess_mode = cJSON_IsTrue(gm);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "controlnet");
    if (!a || cJSON_IsNull(a)) return SDRT_OK;
    if (cJSON_IsObject(a)) {
        /* one ControlNet may be given without the list */
    } else if (!cJSON_IsArray(a)) {
        snprintf(err, errlen, "controlnet: must be a list of {model_id, image, ...} objects");
        return SDRT_INVALID_ARGUMENT;
    }
    size_t n = cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 1;
    if (n > INFER_MAX_CONTROLNETS) {
        snprintf(err, errlen, "controlnet: more than %d ControlNets", INFER_MAX_CONTROLNETS);
        return SDRT_INVALID_ARGUMENT;
    }
    if (n == 0) return SDRT_OK;
    out->v = calloc(n, sizeof *out->v);
    if (!out->v) {
        snprintf(err, errlen, "controlnet: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    sdrt_status st = SDRT_OK;
    for (size_t i = 0; st == SDRT_OK && i < n; i++) {
        st = entry(cJSON_IsArray(a) ? cJSON_GetArrayItem(a, (int)i) : a, i, &out->v[i], err, errlen);
        out->n = i + 1;
    }
    if (st != SDRT_OK) infer_cn_reqs_free(out);
    return st;
}

void infer_cn_reqs_free(infer_cn_reqs *r) {
    for (size_t i = 0; r && i < r->n; i++) {
        free(r->v[i].model_id);
        free(r->v[i].image);
    }
    if (r) {
        free(r->v);
        memset(r, 0, sizeof *r);
    }
}
