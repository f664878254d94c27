/* plugins/inference/memory_mode.h - the memory modes of one request: where
 * the weights live while each component runs (offload) and how the VAE
 * bounds its activations (tiling, slicing). Defaults come from the
 * inference plugin's config, a request's fields override them field by
 * field (docs/devices.md "Memory modes", docs/protocol.md). */
#ifndef SDRT_INFERENCE_MEMORY_MODE_H
#define SDRT_INFERENCE_MEMORY_MODE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "sdrt/postprocess.h"
#include "sdrt/status.h"

/* A zeroed struct is the defaults: offload none, tiling auto, the
 * postprocess plugin's tile size and overlap (512, 128), no slicing. In a
 * request's copy (infer_request.memory) -1 marks a field not given. */
typedef struct infer_memory {
    int offload;          /* sdrt_offload (sdrt/model.h) */
    int vae_tiling;       /* sdrt_vae_tiling */
    int vae_tile_size;    /* image pixels; 0 = the plugin's default */
    int vae_tile_overlap; /* image pixels; 0 = the plugin's default */
    int vae_slicing;      /* 0 / 1 */
} infer_memory;

/* The inference plugin's config keys offload, vae_tiling, vae_tile_size,
 * vae_tile_overlap, vae_slicing (config_json borrowed; NULL = none) over
 * the defaults. SDRT_OK, or INVALID_ARGUMENT with err naming the key. */
sdrt_status infer_memory_parse_config(const char *config_json, infer_memory *m, char *err, size_t errlen);

/* The same fields of a request's data object (borrowed): each given one
 * checked, absent ones -1. SDRT_OK, or INVALID_ARGUMENT naming the field. */
sdrt_status infer_memory_parse_request(const cJSON *data, infer_memory *m, char *err, size_t errlen);

/* The request's fields over the config's (-1 = take the config's). The
 * tile overlap is checked against the resulting tile size: INVALID_ARGUMENT
 * naming vae_tile_overlap when it exceeds half of it. */
sdrt_status infer_memory_resolve(const infer_memory *config, const infer_memory *request, infer_memory *out,
                                 char *err, size_t errlen);

/* The decode/encode options of a resolved mode. */
void infer_memory_vae_options(const infer_memory *m, sdrt_vae_options *o);

/* "none", "model", "sequential". */
const char *infer_offload_name(int offload);

#endif
