/* tests/plugins/trivial.h - the do-nothing vtable shared by the test plugins
 * that misbehave only in their descriptor, manifest or exports. Each plugin
 * is one translation unit, so these statics are private to it. */
#ifndef SDRT_TEST_TRIVIAL_H
#define SDRT_TEST_TRIVIAL_H

#include "sdrt/plugin.h"

/* Not every plugin uses every member here. */
#if defined(__GNUC__)
#define TRIVIAL_MAYBE_UNUSED __attribute__((unused))
#else
#define TRIVIAL_MAYBE_UNUSED
#endif

TRIVIAL_MAYBE_UNUSED static sdrt_error *trivial_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json,
                                void **instance) {
    *instance = NULL;
    return NULL;
}

TRIVIAL_MAYBE_UNUSED static void trivial_shutdown(void *instance) {}

/* NULL result means "{}". */
TRIVIAL_MAYBE_UNUSED static sdrt_error *trivial_handle(void *instance, const sdrt_request *req, char **result_json) {
    *result_json = NULL;
    return NULL;
}

TRIVIAL_MAYBE_UNUSED static const sdrt_plugin_vtable trivial_vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), trivial_init, trivial_shutdown, trivial_handle, NULL,
};

#endif
