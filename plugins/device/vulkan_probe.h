/* plugins/device/vulkan_probe.h - Vulkan physical devices through the
 * loader (libvulkan.so.1 / vulkan-1.dll) opened at run time: name, type,
 * API version, memory heaps. Mesa's lavapipe shows up as a "cpu" device.
 * No loader or no driver is a normal outcome: available = 0 and a reason.
 * Needs no Vulkan headers. Independent of the Vulkan compute backend. */
#ifndef SDRT_DEVICE_VULKAN_PROBE_H
#define SDRT_DEVICE_VULKAN_PROBE_H

#include <stdint.h>

#define VKPROBE_MAX_DEVICES 16
#define VKPROBE_MAX_HEAPS 16

typedef struct vkprobe_heap {
    uint64_t size;
    int device_local;
} vkprobe_heap;

typedef struct vkprobe_device {
    char name[256];
    const char *type;         /* "discrete", "integrated", "virtual", "cpu", "other" */
    uint32_t api_version;     /* VK_MAKE_API_VERSION packing */
    uint32_t driver_version;  /* vendor-specific packing */
    uint32_t vendor_id, device_id;
    int nheaps;
    vkprobe_heap heaps[VKPROBE_MAX_HEAPS];
    uint64_t device_local_bytes; /* sum of device-local heaps */
} vkprobe_device;

typedef struct vkprobe_report {
    int available;
    char reason[256];
    char loader_lib[64];
    uint32_t instance_version;
    int count;
    vkprobe_device dev[VKPROBE_MAX_DEVICES];
} vkprobe_report;

/* Probes with the loader names in `loader_names` (NULL-terminated; NULL =
 * platform defaults). Never fails: see report->available. The loader stays
 * loaded for the process lifetime (drivers may keep threads). */
void vkprobe_run(const char *const *loader_names, vkprobe_report *report);

/* "1.3.239" from a packed Vulkan version. */
void vkprobe_version_text(uint32_t v, char *out, unsigned outlen);

#endif
