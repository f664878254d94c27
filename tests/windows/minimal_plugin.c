/* tests/windows/minimal_plugin.c - the smallest plugin, with no dependency
 * beyond the SDK headers, used to prove the Windows DLL path cross-compiles:
 * "min.ping" answers {"pong":true}. */
#include <string.h>

#include "sdrt/plugin.h"

static const sdrt_host_api *g_api;

static sdrt_error *min_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    g_api = api;
    *instance = NULL;
    return NULL;
}

static void min_shutdown(void *instance) {}

static sdrt_error *min_handle(void *instance, const sdrt_request *req, char **result_json) {
    static const char PONG[] = "{\"pong\":true}";
    char *out = g_api->alloc(sizeof PONG);
    if (!out) return g_api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "min.ping: out of memory");
    memcpy(out, PONG, sizeof PONG);
    *result_json = out;
    return NULL;
}

static const sdrt_plugin_vtable VTABLE = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), min_init, min_shutdown, min_handle, NULL,
};
static const char *const TYPES[] = {"min.ping", NULL};
static const sdrt_plugin_desc DESC = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, 0, "org.sdrt.test.min", "0.1.0", "min",
    "minimal plugin", TYPES, &VTABLE,
};

SDRT_PLUGIN_DEFINE(min, DESC)
