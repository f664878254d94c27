/* tests/plugins/newminor.c - needs a newer host minor than this one: must be
 * refused with ABI_MISMATCH naming both versions. */
#include "trivial.h"

static const char *const types[] = {"newminor.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR + 1, "org.sdrt.test.newminor", "1.0.0",
    "newminor", "test plugin: needs a newer ABI minor", types, &trivial_vtable,
};
SDRT_PLUGIN_DEFINE(newminor, desc)
