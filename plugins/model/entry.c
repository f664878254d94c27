/* plugins/model/entry.c - the plugin descriptor and exported entry point. */
#include "plugin.h"

static const char *const MESSAGE_TYPES[] = {"model.load", "model.unload", "model.list", "model.scan", "model.info", "model.convert", NULL};

static const sdrt_plugin_vtable VTABLE = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = model_plugin_init,
    .shutdown = model_plugin_shutdown,
    .handle = model_plugin_handle,
    .get_interface = model_plugin_get_interface,
};

static const sdrt_plugin_desc DESC = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 0,
    .id = "org.sdrt.model",
    .version = "0.1.0",
    .domain = "model",
    .description = "Weight store: safetensors, diffusers folders, single-file checkpoints, LRU cache",
    .message_types = MESSAGE_TYPES,
    .vtable = &VTABLE,
};

SDRT_PLUGIN_DEFINE(model, DESC)
