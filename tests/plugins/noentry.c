/* tests/plugins/noentry.c - exports a misspelt entry point and no
 * sdrt_plugin_entry: the loader must refuse it, naming the symbol. */
#include "trivial.h"

static const char *const types[] = {"noentry.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.noentry", "1.0.0",
    "noentry", "test plugin: no entry symbol", types, &trivial_vtable,
};

SDRT_EXPORT const sdrt_plugin_desc *sdrt_plugin_entri(void) { return &desc; }
