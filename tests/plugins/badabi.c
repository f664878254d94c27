/* tests/plugins/badabi.c - built for a future major ABI: must be refused
 * with ABI_MISMATCH naming both versions. */
#include "trivial.h"

static const char *const types[] = {"badabi.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR + 1, 0, "org.sdrt.test.badabi", "1.0.0",
    "badabi", "test plugin: wrong ABI major", types, &trivial_vtable,
};
SDRT_PLUGIN_DEFINE(badabi, desc)
