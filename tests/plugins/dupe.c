/* tests/plugins/dupe.c - claims echo.run, which the echo plugin serves: the
 * one loaded second must be refused with ALREADY_EXISTS. */
#include "trivial.h"

static const char *const types[] = {"echo.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.dupe", "1.0.0",
    "echo", "test plugin: duplicate message type", types, &trivial_vtable,
};
SDRT_PLUGIN_DEFINE(dupe, desc)
