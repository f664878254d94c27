/* tests/plugins/crashy.c - crashes on every request. Only for
 * validate-plugin, which must report the signal instead of crashing itself;
 * never load it into a serving host. */
#include "trivial.h"

static sdrt_error *crashy_handle(void *instance, const sdrt_request *req, char **result_json) {
    volatile int *nowhere = NULL;
    *result_json = NULL;
    *nowhere = 42; /* SIGSEGV on purpose */
    return NULL;
}

static const sdrt_plugin_vtable vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), trivial_init, trivial_shutdown, crashy_handle, NULL,
};
static const char *const types[] = {"crashy.segv", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.crashy", "1.0.0",
    "crashy", "test plugin: dereferences NULL", types, &vtable,
};
SDRT_PLUGIN_DEFINE(crashy, desc)
