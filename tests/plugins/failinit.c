/* tests/plugins/failinit.c - init fails: the host must report it, unload the
 * plugin and keep serving with the others. */
#include "trivial.h"

static sdrt_error *failinit_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json,
                                 void **instance) {
    *instance = NULL;
    return api->error_new(SDRT_FAILED_PRECONDITION, "{\"field\":\"config.device\"}",
                          "config.device: no such device 'tpu0'");
}

static const sdrt_plugin_vtable vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), failinit_init, trivial_shutdown, trivial_handle, NULL,
};
static const char *const types[] = {"failinit.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.failinit", "1.0.0",
    "failinit", "test plugin: init fails", types, &vtable,
};
SDRT_PLUGIN_DEFINE(failinit, desc)
