/* plugins/inference/run.h - inference.run: request to images.
 *
 * The plugin instance and the one entry the descriptor's handle calls. Kept
 * apart from plugin.c so tests drive a run with a fake host and the real
 * model/scheduler/conditioning/postprocess interfaces. */
#ifndef SDRT_INFERENCE_RUN_H
#define SDRT_INFERENCE_RUN_H

#include "memory_mode.h"
#include "work_limits.h"
#include "sdrt/plugin.h"
#include "sdrt/precision.h"

typedef struct infer_plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    /* Passed to sdrt_nn_new for the UNet's stream, e.g. {"threads":8};
     * NULL = the backend's default. Owned. */
    char *stream_params;
    infer_limits limits; /* work one request may ask for (work_limits.h) */
    /* Config "safety_checker" / "safety_action": what a request that does
     * not say gets (run_safety.c). Zero (a zeroed struct too): off, and
     * "black" as diffusers. */
    int safety_default;
    int safety_flag_default; /* 1: "flag" */
    /* "precision" of a request that names none: the plugin config's, else
     * the host's top-level key; AUTO (0) when neither. */
    sdrt_precision precision;
    infer_memory memory; /* memory modes' defaults (memory_mode.h); zero = none, auto */
} infer_plugin;

/* Reads "safety_checker" (boolean) and "safety_action" ("black" | "flag")
 * from the plugin config (borrowed; NULL = none) into p. SDRT_OK, or
 * INVALID_ARGUMENT naming the key. */
sdrt_status infer_safety_config(const char *config_json, infer_plugin *p, char *err, size_t errlen);

/* Worker thread. Runs one inference.run request (`req` borrowed). On
 * success returns NULL and sets *result_json (allocated with api->alloc) to
 * {images, processing_time, seed, images_info, [latents]}. Failures:
 * INVALID_ARGUMENT / UNSUPPORTED (a field, named), NOT_FOUND (model),
 * UNAVAILABLE (a required interface is not published), CANCELLED,
 * RESOURCE_EXHAUSTED, or the failing component's status. */
sdrt_error *infer_run(const infer_plugin *p, const sdrt_request *req, char **result_json);

#endif /* SDRT_INFERENCE_RUN_H */
