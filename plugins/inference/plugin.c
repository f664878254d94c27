/* plugins/inference/plugin.c - the inference plugin's descriptor: init
 * reads the stream settings, handle dispatches inference.run. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "batch.h"
#include "run.h"

/* {"threads":n} from the plugin's config, else the host's "threads"
 * setting; NULL when neither says (the backend picks). */
static char *stream_params_from(const char *config_json, const char *settings_json) {
    const char *sources[2] = {config_json, settings_json};
    for (int i = 0; i < 2; i++) {
        cJSON *root = sources[i] ? cJSON_Parse(sources[i]) : NULL;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "threads");
        int threads = cJSON_IsNumber(t) && t->valuedouble >= 1 && t->valuedouble <= 1024 ? (int)t->valuedouble : 0;
        cJSON_Delete(root);
        if (threads == 0) continue;
        char *out = malloc(32);
        if (out) snprintf(out, 32, "{\"threads\":%d}", threads);
        return out;
    }
    return NULL;
}

/* "precision" from the plugin's config, else the host's top-level key
 * (settings); AUTO when neither. INVALID_ARGUMENT for a bad value. */
static sdrt_status precision_from(const char *config_json, const char *settings_json, sdrt_precision *out, char *err,
                                  size_t errlen) {
    const char *sources[2] = {config_json, settings_json};
    *out = SDRT_PRECISION_AUTO;
    sdrt_status st = SDRT_OK;
    for (int i = 0; i < 2 && st == SDRT_OK; i++) {
        cJSON *root = sources[i] ? cJSON_Parse(sources[i]) : NULL;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "precision");
        if (v && !cJSON_IsString(v)) {
            snprintf(err, errlen, "precision: must be a string: " SDRT_PRECISION_CHOICES);
            st = SDRT_INVALID_ARGUMENT;
        } else if (v) {
            st = sdrt_precision_parse(v->valuestring, "precision", out, err, errlen);
            i = 2; /* the plugin's own wins */
        }
        cJSON_Delete(root);
    }
    return st;
}

static sdrt_error *infer_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    infer_plugin *p = calloc(1, sizeof *p);
    if (!p) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "inference: out of memory");
    p->api = api;
    p->host = host;
    const char *settings = SDRT_HAS_MEMBER(api, sdrt_host_api, settings_json) && api->settings_json
                               ? api->settings_json(host) : NULL;
    p->stream_params = stream_params_from(config_json, settings);
    char err[256];
    if (infer_limits_parse(config_json, &p->limits, err, sizeof err) != SDRT_OK ||
        infer_safety_config(config_json, p, err, sizeof err) != SDRT_OK ||
        precision_from(config_json, settings, &p->precision, err, sizeof err) != SDRT_OK ||
        infer_memory_parse_config(config_json, &p->memory, err, sizeof err) != SDRT_OK) {
        free(p->stream_params);
        free(p);
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s", err);
    }
    *instance = p;
    return NULL;
}

static void infer_shutdown(void *instance) {
    infer_plugin *p = instance;
    if (!p) return;
    free(p->stream_params);
    free(p);
}

static sdrt_error *infer_handle(void *instance, const sdrt_request *req, char **result_json) {
    infer_plugin *p = instance;
    *result_json = NULL;
    if (strcmp(req->type, "inference.run") == 0) return infer_run(p, req, result_json);
    if (strcmp(req->type, "inference.batch") == 0) return infer_batch(p, req, result_json);
    return p->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "type: %s is not served by the inference plugin", req->type);
}

static const sdrt_plugin_vtable infer_vtable = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = infer_init,
    .shutdown = infer_shutdown,
    .handle = infer_handle,
    .get_interface = NULL,
};

static const char *const infer_types[] = {"inference.run", "inference.batch", NULL};

static const sdrt_plugin_desc infer_desc = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 0,
    .id = "org.sdrt.inference",
    .version = "0.1.0",
    .domain = "inference",
    .description = "UNet2DConditionModel and the txt2img denoising loop",
    .message_types = infer_types,
    .vtable = &infer_vtable,
};

SDRT_PLUGIN_DEFINE(inference, infer_desc)
