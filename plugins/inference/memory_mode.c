/* plugins/inference/memory_mode.c - see memory_mode.h. */
#include "memory_mode.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sdrt/model.h"

#define TILE_MIN 64
#define TILE_MAX 4096

static const char *const OFFLOAD_NAMES[] = {"none", "model", "sequential"};

const char *infer_offload_name(int offload) {
    return offload >= 0 && offload <= SDRT_OFFLOAD_SEQUENTIAL ? OFFLOAD_NAMES[offload] : "?";
}

static sdrt_status bad(char *err, size_t errlen, const char *prefix, const char *field, const char *why) {
    snprintf(err, errlen, "%s%s: %s", prefix, field, why);
    return SDRT_INVALID_ARGUMENT;
}

/* Each field of `obj` into *m; `absent` is what a missing field leaves
 * (-1 for a request, the current value for the config: keep = 1). */
static sdrt_status parse_fields(const cJSON *obj, infer_memory *m, int keep, const char *prefix, char *err,
                                size_t errlen) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "offload");
    if (it && !cJSON_IsNull(it)) {
        int found = -1;
        for (int i = 0; i <= SDRT_OFFLOAD_SEQUENTIAL && cJSON_IsString(it); i++)
            if (strcmp(it->valuestring, OFFLOAD_NAMES[i]) == 0) found = i;
        if (found < 0) return bad(err, errlen, prefix, "offload", "must be \"none\", \"model\" or \"sequential\"");
        m->offload = found;
    } else if (!keep) {
        m->offload = -1;
    }
    it = cJSON_GetObjectItemCaseSensitive(obj, "vae_tiling");
    if (it && !cJSON_IsNull(it)) {
        if (cJSON_IsBool(it)) m->vae_tiling = cJSON_IsTrue(it) ? SDRT_VAE_TILING_ON : SDRT_VAE_TILING_OFF;
        else if (cJSON_IsString(it) && strcmp(it->valuestring, "auto") == 0) m->vae_tiling = SDRT_VAE_TILING_AUTO;
        else if (cJSON_IsString(it) && strcmp(it->valuestring, "on") == 0) m->vae_tiling = SDRT_VAE_TILING_ON;
        else if (cJSON_IsString(it) && strcmp(it->valuestring, "off") == 0) m->vae_tiling = SDRT_VAE_TILING_OFF;
        else return bad(err, errlen, prefix, "vae_tiling", "must be true, false, \"auto\", \"on\" or \"off\"");
    } else if (!keep) {
        m->vae_tiling = -1;
    }
    static const char *const sizes[2] = {"vae_tile_size", "vae_tile_overlap"};
    for (int k = 0; k < 2; k++) {
        int *dst = k ? &m->vae_tile_overlap : &m->vae_tile_size;
        it = cJSON_GetObjectItemCaseSensitive(obj, sizes[k]);
        if (!it || cJSON_IsNull(it)) {
            if (!keep) *dst = -1;
            continue;
        }
        double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        int lo = k ? 8 : TILE_MIN, hi = k ? TILE_MAX / 2 : TILE_MAX;
        if (!(v >= lo && v <= hi) || v != floor(v) || (int)v % 8) {
            char why[96];
            snprintf(why, sizeof why, "must be a multiple of 8 in [%d, %d] (image pixels)", lo, hi);
            return bad(err, errlen, prefix, sizes[k], why);
        }
        *dst = (int)v;
    }
    it = cJSON_GetObjectItemCaseSensitive(obj, "vae_slicing");
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsBool(it)) return bad(err, errlen, prefix, "vae_slicing", "must be true or false");
        m->vae_slicing = cJSON_IsTrue(it);
    } else if (!keep) {
        m->vae_slicing = -1;
    }
    return SDRT_OK;
}

sdrt_status infer_memory_parse_config(const char *config_json, infer_memory *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    cJSON *root = config_json ? cJSON_Parse(config_json) : NULL;
    sdrt_status st = cJSON_IsObject(root) ? parse_fields(root, m, 1, "inference config: ", err, errlen) : SDRT_OK;
    cJSON_Delete(root);
    if (st == SDRT_OK && m->vae_tile_overlap && 2 * m->vae_tile_overlap > (m->vae_tile_size ? m->vae_tile_size : 512))
        st = bad(err, errlen, "inference config: ", "vae_tile_overlap", "must be at most half of vae_tile_size");
    return st;
}

sdrt_status infer_memory_parse_request(const cJSON *data, infer_memory *m, char *err, size_t errlen) {
    return parse_fields(data, m, 0, "", err, errlen);
}

sdrt_status infer_memory_resolve(const infer_memory *config, const infer_memory *request, infer_memory *out,
                                 char *err, size_t errlen) {
    *out = *config;
    if (request->offload >= 0) out->offload = request->offload;
    if (request->vae_tiling >= 0) out->vae_tiling = request->vae_tiling;
    if (request->vae_tile_size >= 0) out->vae_tile_size = request->vae_tile_size;
    if (request->vae_tile_overlap >= 0) out->vae_tile_overlap = request->vae_tile_overlap;
    if (request->vae_slicing >= 0) out->vae_slicing = request->vae_slicing;
    int tile = out->vae_tile_size ? out->vae_tile_size : 512, overlap = out->vae_tile_overlap ? out->vae_tile_overlap : 128;
    if (2 * overlap > tile) {
        snprintf(err, errlen, "vae_tile_overlap: %d is more than half of vae_tile_size %d", overlap, tile);
        return SDRT_INVALID_ARGUMENT;
    }
    return SDRT_OK;
}

void infer_memory_vae_options(const infer_memory *m, sdrt_vae_options *o) {
    sdrt_vae_options_init(o);
    o->tiling = m->vae_tiling;
    o->tile_size = m->vae_tile_size;
    o->tile_overlap = m->vae_tile_overlap;
    o->offload = m->offload;
    o->slicing = m->vae_slicing;
}
