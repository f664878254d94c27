/* plugins/lora/plugin.h - the lora plugin's instance, shared by the entry
 * point and the tests (which drive it through a fake host). */
#ifndef SDRT_LORA_PLUGIN_H
#define SDRT_LORA_PLUGIN_H

#include "lookup.h"
#include "sdrt/lora.h"
#include "sdrt/file.h"
#include "sdrt/plugin.h"

typedef struct lora_plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    /* Where names are looked up, in order: every "<model root>/<subdir>",
     * then the model roots themselves (lookup.roots holds them all; the
     * first n_lora_dirs are the LoRA folders, listed recursively). */
    lookup_cfg lookup;
    size_t n_lora_dirs;
    sdrt_file_scope scope; /* adapter files: the model roots (and the HF caches lookup trusts) */
    int threads;
    sdrt_lora_iface iface;
} lora_plugin;

sdrt_error *lora_plugin_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance);
void lora_plugin_shutdown(void *instance);
sdrt_error *lora_plugin_handle(void *instance, const sdrt_request *req, char **result_json);
const void *lora_plugin_get_interface(void *instance, const char *id);

/* model_id of an adapter -> canonical path of its .safetensors file
 * (malloc'd). NOT_FOUND / PERMISSION_DENIED / INVALID_ARGUMENT with err. */
sdrt_status lora_resolve(const lora_plugin *p, const char *id, char **path, char *err, size_t errlen);

#endif
