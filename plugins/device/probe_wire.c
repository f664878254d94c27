/* plugins/device/probe_wire.c - see probe_wire.h. */
#include "probe_wire.h"

#include <stdio.h>
#include <string.h>

/* The names vkprobe_device.type takes; the index is the wire code. */
static const char *const VK_TYPES[] = {"other", "integrated", "discrete", "virtual", "cpu"};
#define VK_TYPE_COUNT (sizeof VK_TYPES / sizeof VK_TYPES[0])

probewire_family probewire_family_named(const char *name) {
    if (name && strcmp(name, "cuda") == 0) return PROBEWIRE_CUDA;
    if (name && strcmp(name, "vulkan") == 0) return PROBEWIRE_VULKAN;
    return 0;
}

const char *probewire_family_title(probewire_family f) { return f == PROBEWIRE_CUDA ? "CUDA" : "Vulkan"; }

size_t probewire_size(probewire_family f) {
    if (f == PROBEWIRE_CUDA) return sizeof(probewire_cuda);
    if (f == PROBEWIRE_VULKAN) return sizeof(probewire_vulkan);
    return 0;
}

static void header(probewire_header *h, probewire_family f) {
    h->magic = PROBEWIRE_MAGIC;
    h->version = PROBEWIRE_VERSION;
    h->family = (uint32_t)f;
    h->size = (uint32_t)probewire_size(f);
}

static uint8_t vk_type_code(const char *type) {
    for (size_t i = 0; type && i < VK_TYPE_COUNT; i++)
        if (strcmp(type, VK_TYPES[i]) == 0) return (uint8_t)i;
    return 0;
}

void probewire_pack_cuda(const cudaprobe_report *r, probewire_cuda *out) {
    memset(out, 0, sizeof *out);
    header(&out->h, PROBEWIRE_CUDA);
    out->report = *r;
}

void probewire_pack_vulkan(const vkprobe_report *r, probewire_vulkan *out) {
    memset(out, 0, sizeof *out);
    header(&out->h, PROBEWIRE_VULKAN);
    out->report = *r;
    for (int i = 0; i < VKPROBE_MAX_DEVICES; i++) {
        out->types[i] = vk_type_code(r->dev[i].type);
        out->report.dev[i].type = NULL; /* an address in the helper means nothing here */
    }
}

static int header_ok(const probewire_header *h, probewire_family f, char *why, size_t whylen) {
    if (h->magic == PROBEWIRE_MAGIC && h->version == PROBEWIRE_VERSION && h->family == (uint32_t)f &&
        h->size == probewire_size(f))
        return 1;
    snprintf(why, whylen, "the probe helper wrote a report this plugin does not read (magic %08x, version %u, "
             "family %u, %u bytes; expected version %u, %u bytes): reinstall sdrt-gpu-probe with the plugin",
             (unsigned)h->magic, (unsigned)h->version, (unsigned)h->family, (unsigned)h->size, PROBEWIRE_VERSION,
             (unsigned)probewire_size(f));
    return 0;
}

static int clamp(int v, int max) { return v < 0 ? 0 : v > max ? max : v; }

#define TERMINATE(s) ((s)[sizeof(s) - 1] = 0)

int probewire_unpack_cuda(const probewire_cuda *in, cudaprobe_report *out, char *why, size_t whylen) {
    if (!header_ok(&in->h, PROBEWIRE_CUDA, why, whylen)) return -1;
    *out = in->report;
    TERMINATE(out->reason);
    TERMINATE(out->driver_lib);
    out->count = clamp(out->count, CUDAPROBE_MAX_DEVICES);
    for (int i = 0; i < CUDAPROBE_MAX_DEVICES; i++) {
        TERMINATE(out->dev[i].name);
        TERMINATE(out->dev[i].pci_bus_id);
    }
    return 0;
}

int probewire_unpack_vulkan(const probewire_vulkan *in, vkprobe_report *out, char *why, size_t whylen) {
    if (!header_ok(&in->h, PROBEWIRE_VULKAN, why, whylen)) return -1;
    *out = in->report;
    TERMINATE(out->reason);
    TERMINATE(out->loader_lib);
    out->count = clamp(out->count, VKPROBE_MAX_DEVICES);
    for (int i = 0; i < VKPROBE_MAX_DEVICES; i++) {
        vkprobe_device *d = &out->dev[i];
        TERMINATE(d->name);
        d->nheaps = clamp(d->nheaps, VKPROBE_MAX_HEAPS);
        d->type = VK_TYPES[in->types[i] < VK_TYPE_COUNT ? in->types[i] : 0];
    }
    return 0;
}
