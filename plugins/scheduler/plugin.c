/* plugins/scheduler/plugin.c - the plugin: descriptor, messages, interface.
 *
 * Serves scheduler.list and scheduler.sigmas, and publishes
 * "sdrt.scheduler/1" (sdrt/scheduler.h) for the inference plugin.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iface.h"
#include "sched.h"
#include "sdrt/model.h"

typedef struct plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    sdrt_scheduler_iface iface;
} plugin;

static sdrt_error *init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    plugin *pl = calloc(1, sizeof *pl);
    if (!pl) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "scheduler: out of memory");
    pl->api = api;
    pl->host = host;
    sched_iface_fill(&pl->iface, api);
    sdrt_error *e = api->publish(host, SDRT_SCHEDULER_IFACE_ID, &pl->iface);
    if (e) {
        free(pl);
        return e;
    }
    *instance = pl;
    return NULL;
}

static void shutdown(void *instance) { free(instance); }

static const void *get_interface(void *instance, const char *id) {
    plugin *pl = instance;
    return pl && id && strcmp(id, SDRT_SCHEDULER_IFACE_ID) == 0 ? &pl->iface : NULL;
}

/* Returns text in host memory (api->alloc). */
static char *to_host(const sdrt_host_api *api, char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *h = api->alloc(n);
    if (h) memcpy(h, s, n);
    free(s);
    return h;
}

typedef struct warn_ctx {
    const sdrt_host_api *api;
    sdrt_job *job;
} warn_ctx;

static void warn_cb(void *ctx, const char *msg) {
    warn_ctx *w = ctx;
    w->api->warn(w->job, msg);
}

/* The Align Your Steps family (ays_model) of a detected architecture, or
 * NULL when NVIDIA published no table for it. */
static const char *ays_model_of(const char *arch) {
    if (!arch) return NULL;
    if (strcmp(arch, "sd1") == 0) return "sd1";
    if (strcmp(arch, "sdxl") == 0 || strcmp(arch, "sdxl-refiner") == 0) return "sdxl";
    return NULL;
}

/* A scheduler_config.json does not say which model family it belongs to,
 * but the AYS tables differ per family: the model layer gets ays_model from
 * the detected architecture (classes without the field ignore it, and the
 * request can still override it). Returns a malloc'd copy of cfg. */
static char *with_ays_model(const char *cfg, const char *arch) {
    const char *fam = ays_model_of(arch);
    const char *brace = strchr(cfg, '{');
    if (!fam || !brace) return strdup(cfg);
    const char *rest = brace + 1;
    while (*rest == ' ' || *rest == '\n' || *rest == '\r' || *rest == '\t') rest++;
    size_t n = strlen(cfg) + 32;
    char *out = malloc(n);
    if (!out) return NULL;
    snprintf(out, n, "%.*s\"ays_model\":\"%s\"%s%s", (int)(brace + 1 - cfg), cfg, fam, *rest == '}' ? "" : ",",
             rest);
    return out;
}

/* Reads the model's scheduler config through sdrt.model/1; *text is a
 * malloc'd copy (NULL when the model has no scheduler component). */
static sdrt_error *model_scheduler_config(plugin *pl, const char *model_id, sdrt_job *job, char **text) {
    const sdrt_host_api *api = pl->api;
    *text = NULL;
    const sdrt_model_iface *mi = api->acquire(pl->host, SDRT_MODEL_IFACE_ID, NULL);
    if (!mi)
        return api->error_new(SDRT_UNAVAILABLE, NULL,
                              "model_id: the model plugin (sdrt.model/1) is not loaded, so model configs cannot be read");
    sdrt_model *m = NULL;
    sdrt_error *e = mi->open(mi->self, model_id, job, &m);
    if (!e) {
        const char *cfg = mi->config_json(m, "scheduler");
        if (cfg) *text = with_ays_model(cfg, mi->arch ? mi->arch(m) : NULL);
        mi->close(mi->self, m);
    }
    api->release(pl->host, SDRT_MODEL_IFACE_ID);
    return e;
}

static sdrt_error *handle_sigmas(plugin *pl, const sdrt_request *req, char **result) {
    const sdrt_host_api *api = pl->api;
    cJSON *d = cJSON_Parse(req->data_json);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: expected a JSON object");
    }
    sdrt_error *e = NULL;
    char *over = NULL, *model_cfg = NULL, *out = NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "scheduler");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(d, "num_inference_steps");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(d, "scheduler_config");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(d, "model_id");
    if (!cJSON_IsString(name)) {
        e = api->error_new(SDRT_INVALID_ARGUMENT, NULL, "scheduler: expected a string");
    } else if (!cJSON_IsNumber(steps) || steps->valuedouble != (double)(int32_t)steps->valuedouble) {
        e = api->error_new(SDRT_INVALID_ARGUMENT, NULL, "num_inference_steps: expected an integer");
    } else if (sc && !cJSON_IsNull(sc) && !cJSON_IsObject(sc)) {
        e = api->error_new(SDRT_INVALID_ARGUMENT, NULL, "scheduler_config: expected an object");
    } else if (mid && !cJSON_IsNull(mid) && !cJSON_IsString(mid)) {
        e = api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model_id: expected a string");
    }
    if (!e && cJSON_IsObject(sc)) over = cJSON_PrintUnformatted(sc);
    if (!e && cJSON_IsString(mid)) e = model_scheduler_config(pl, mid->valuestring, req->job, &model_cfg);
    if (!e) {
        char err[512] = {0};
        warn_ctx w = {api, req->job};
        sdrt_status st = sched_msg_sigmas(name->valuestring, (int32_t)steps->valuedouble, over, model_cfg, &out,
                                          warn_cb, &w, err, sizeof err);
        if (st) e = api->error_new(st, NULL, "%s", err);
    }
    if (!e) *result = to_host(api, out);
    else free(out);
    free(over);
    free(model_cfg);
    cJSON_Delete(d);
    return e;
}

static sdrt_error *handle(void *instance, const sdrt_request *req, char **result) {
    plugin *pl = instance;
    *result = NULL;
    if (strcmp(req->type, "scheduler.list") == 0) {
        *result = to_host(pl->api, sched_msg_list());
        return *result ? NULL : pl->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "scheduler: out of memory");
    }
    if (strcmp(req->type, "scheduler.sigmas") == 0) return handle_sigmas(pl, req, result);
    return pl->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "type: '%s' is not served by the scheduler plugin", req->type);
}

static const sdrt_plugin_vtable vtable = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = init,
    .shutdown = shutdown,
    .handle = handle,
    .get_interface = get_interface,
};

static const char *const message_types[] = {"scheduler.list", "scheduler.sigmas", NULL};

static const sdrt_plugin_desc desc = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 0,
    .id = "org.sdrt.scheduler",
    .version = "0.1.0",
    .domain = "scheduler",
    .description = "Noise schedulers matching diffusers (Euler, DPM-Solver++, DDIM, UniPC, ...)",
    .message_types = message_types,
    .vtable = &vtable,
};

SDRT_PLUGIN_DEFINE(scheduler, desc)
