/* tests/plugins/badmanifest.c - a sound descriptor whose plugin.json names
 * another id: the loader must refuse it for the disagreement. */
#include "trivial.h"

static const char *const types[] = {"badmanifest.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.badmanifest", "1.0.0",
    "badmanifest", "test plugin: manifest disagrees", types, &trivial_vtable,
};
SDRT_PLUGIN_DEFINE(badmanifest, desc)
