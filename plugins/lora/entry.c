/* plugins/lora/entry.c - the plugin descriptor and exported entry point. */
#include "plugin.h"

static const char *const MESSAGE_TYPES[] = {"lora.list", "lora.inspect", NULL};

static const sdrt_plugin_vtable VTABLE = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = lora_plugin_init,
    .shutdown = lora_plugin_shutdown,
    .handle = lora_plugin_handle,
    .get_interface = lora_plugin_get_interface,
};

static const sdrt_plugin_desc DESC = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 0,
    .id = "org.sdrt.lora",
    .version = "0.1.0",
    .domain = "lora",
    .description = "LoRA adapters (kohya/A1111, diffusers/PEFT, LoCon, LoHa, LoKr) merged per request",
    .message_types = MESSAGE_TYPES,
    .vtable = &VTABLE,
};

SDRT_PLUGIN_DEFINE(lora, DESC)
