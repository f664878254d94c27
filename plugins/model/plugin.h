/* plugins/model/plugin.h - the model plugin's instance, shared by the
 * entry point and the tests (which drive it through a fake host). */
#ifndef SDRT_MODEL_PLUGIN_H
#define SDRT_MODEL_PLUGIN_H

#include "cache.h"
#include "lookup.h"
#include "sdrt/model.h"
#include "sdrt/plugin.h"

#define MODEL_DEFAULT_CACHE_BYTES ((uint64_t)16 << 30)

typedef struct model_plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    model_cache cache;
    lookup_cfg lookup;
    sdrt_file_scope scope; /* model files: the model roots, and the HF caches lookup trusts */
    sdrt_model_iface iface;
} model_plugin;

sdrt_error *model_plugin_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance);
void model_plugin_shutdown(void *instance);
sdrt_error *model_plugin_handle(void *instance, const sdrt_request *req, char **result_json);
const void *model_plugin_get_interface(void *instance, const char *id);

#endif
