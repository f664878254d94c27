/* plugin.c - the postprocess plugin: descriptor, lifecycle, the
 * sdrt.postprocess/1 interface and message dispatch. */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

static const sdrt_postprocess_iface iface_template = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_postprocess_iface, safety_check),
    .decode = pp_decode,
    .encode = pp_encode,
    .write_png = pp_write_png,
    .preview_png = pp_preview_png,
    .read_image = pp_read_image,
    .format_parameters = pp_format_parameters_iface,
    .free = pp_free,
    .decode_tensor = pp_decode_tensor,
    .upscale = pp_upscale,
    .safety_check = pp_safety_check,
};

static sdrt_error *pp_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    sdrt_error *ce = pp_upscale_check_config(api, config_json);
    if (ce) return ce;
    pp_plugin *p = calloc(1, sizeof *p);
    if (!p) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "postprocess: out of memory");
    if (config_json && !(p->config_json = strdup(config_json))) {
        free(p);
        return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "postprocess: out of memory");
    }
    p->api = api;
    p->host = host;
    pthread_mutex_init(&p->lock, NULL);
    p->iface = iface_template;
    p->iface.self = p;
    sdrt_error *e = pp_default_precision(p, config_json);
    if (!e) e = api->publish(host, SDRT_POSTPROCESS_IFACE_ID, &p->iface);
    if (e) {
        pthread_mutex_destroy(&p->lock);
        free(p->config_json);
        free(p);
        return e;
    }
    *instance = p;
    return NULL;
}

static void pp_shutdown(void *instance) {
    pp_plugin *p = instance;
    if (!p) return;
    if (p->backend) p->api->release(p->host, SDRT_BACKEND_IFACE_ID);
    if (p->model) p->api->release(p->host, SDRT_MODEL_IFACE_ID);
    pp_safety_free_cache(p);
    pthread_mutex_destroy(&p->lock);
    free(p->config_json);
    free(p);
}

static sdrt_error *pp_handle(void *instance, const sdrt_request *req, char **result_json) {
    pp_plugin *p = instance;
    *result_json = NULL;
    if (strcmp(req->type, "postprocess.decode") == 0) return pp_handle_decode(p, req, result_json);
    if (strcmp(req->type, "postprocess.upscale") == 0) return pp_handle_upscale(p, req, result_json);
    if (strcmp(req->type, "postprocess.safety_check") == 0) return pp_handle_safety_check(p, req, result_json);
    return p->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "postprocess: unknown message type %s", req->type);
}

static const void *pp_get_interface(void *instance, const char *id) {
    pp_plugin *p = instance;
    if (!p || !id || strcmp(id, SDRT_POSTPROCESS_IFACE_ID) != 0) return NULL;
    return &p->iface;
}

static const sdrt_plugin_vtable vtable = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = pp_init,
    .shutdown = pp_shutdown,
    .handle = pp_handle,
    .get_interface = pp_get_interface,
};

static const char *const message_types[] = {"postprocess.decode", "postprocess.upscale", "postprocess.safety_check",
                                            NULL};

static const sdrt_plugin_desc desc = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 0,
    .id = "org.sdrt.postprocess",
    .version = "0.1.0",
    .domain = "postprocess",
    .description = "VAE decode/encode, PNG output with metadata, previews, image input, upscaling, safety checker",
    .message_types = message_types,
    .vtable = &vtable,
};

SDRT_PLUGIN_DEFINE(postprocess, desc)
