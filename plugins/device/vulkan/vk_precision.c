/* vk_precision.c - what a stream's "precision" means on Vulkan.
 *
 * The kernels read every parameter operand (MATMUL/CONV2D weights and
 * biases, norm scales, the ADD/MUL src1) as F32, F16 or BF16 through one
 * load path and accumulate in f32; activations are f32 throughout. So a
 * precision is only the form parameters take on the device, chosen per
 * stream (weight_dtype; sdrt_nn converts at upload and the weight stores
 * key their copies by that form):
 *   f16   F32 checkpoint tensors become F16, F16 and BF16 ones are kept
 *         (half the memory and bandwidth of f32; the default for "auto");
 *   bf16  F32 ones become BF16 (f32's range, 8 mantissa bits), F16 and
 *         BF16 ones are kept;
 *   f32   everything is widened to F32 (parity checks against the CPU).
 * "int8" has no kernels here: the stream is refused with UNSUPPORTED.
 * The family config's "precision" ("f16" default, "f32", "bf16") sets
 * what "auto" means for every device of the family. */
#include "vk_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define VK_PRECISIONS "\"auto\", \"f32\", \"f16\" or \"bf16\""

static int vk_precision_runs(sdrt_precision p) {
    return p == SDRT_PRECISION_F32 || p == SDRT_PRECISION_F16 || p == SDRT_PRECISION_BF16;
}

int vk_precision_config(vk_family *f, const cJSON *root, char *why, size_t whylen) {
    f->precision = SDRT_PRECISION_F16;
    const cJSON *p = root ? cJSON_GetObjectItemCaseSensitive(root, "precision") : NULL;
    if (!p) return 0;
    sdrt_precision v = SDRT_PRECISION_AUTO;
    if (!cJSON_IsString(p) || sdrt_precision_parse(p->valuestring, NULL, &v, NULL, 0) != SDRT_OK ||
        !(v == SDRT_PRECISION_AUTO || vk_precision_runs(v))) {
        snprintf(why, whylen, "precision: expected \"auto\" (= f16), \"f16\", \"f32\" or \"bf16\"");
        return -1;
    }
    if (v != SDRT_PRECISION_AUTO) f->precision = v;
    return 0;
}

sdrt_status vk_precision_resolve(const vk_device *d, const char *params_json, sdrt_precision *out, char *msg,
                                 size_t msg_size) {
    *out = d->fam->precision;
    if (!params_json || !*params_json) return SDRT_OK;
    cJSON *root = cJSON_Parse(params_json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        if (msg) snprintf(msg, msg_size, "stream params: not a JSON object");
        return SDRT_INVALID_ARGUMENT;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "precision");
    sdrt_precision v = SDRT_PRECISION_AUTO;
    sdrt_status st = SDRT_OK;
    if (p && !cJSON_IsString(p)) {
        if (msg) snprintf(msg, msg_size, "precision: must be a string, one of " SDRT_PRECISION_CHOICES);
        st = SDRT_INVALID_ARGUMENT;
    } else if (p) {
        st = sdrt_precision_parse(p->valuestring, NULL, &v, msg, msg_size);
    }
    cJSON_Delete(root);
    if (st != SDRT_OK) return st;
    if (v != SDRT_PRECISION_AUTO && !vk_precision_runs(v)) {
        if (msg) sdrt_precision_refusal(msg, msg_size, v, d->name, VK_PRECISIONS);
        return SDRT_UNSUPPORTED;
    }
    if (v != SDRT_PRECISION_AUTO) *out = v;
    return SDRT_OK;
}

sdrt_dtype vk_stream_weight_dtype(sdrt_stream *ss, sdrt_dtype stored) {
    const vk_stream *s = ss->context;
    if (stored != SDRT_DTYPE_F32 && stored != SDRT_DTYPE_F16 && stored != SDRT_DTYPE_BF16) return stored;
    switch (s->precision) {
    case SDRT_PRECISION_F32: return SDRT_DTYPE_F32;
    case SDRT_PRECISION_F16: return stored == SDRT_DTYPE_F32 ? SDRT_DTYPE_F16 : stored;
    case SDRT_PRECISION_BF16: return stored == SDRT_DTYPE_F32 ? SDRT_DTYPE_BF16 : stored;
    default: return stored;
    }
}
