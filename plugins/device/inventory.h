/* plugins/device/inventory.h - every device the plugin knows: what the
 * probes found (CPU, CUDA, Vulkan) joined with the compute backends'
 * devices, and the default compute device. Built at init (CPU only, unless
 * a GPU backend family is loaded) and rebuilt once, under the plugin's probe
 * lock, when the first device.* message runs the out-of-process GPU probes
 * (gpu_probe.h); read-only after that, so handlers may read it from any
 * thread. */
#ifndef SDRT_DEVICE_INVENTORY_H
#define SDRT_DEVICE_INVENTORY_H

#include "sdrt/backend.h"

#include "backends.h"
#include "cpu_probe.h"
#include "cuda_probe.h"
#include "vulkan_probe.h"

#define DEVINV_MAX 48

typedef struct dev_record {
    char id[32];        /* "cpu:0", "cuda:1", "vulkan:0" */
    char backend[16];   /* "cpu", "cuda", "vulkan" */
    int index;          /* ordinal inside the backend */
    char name[256];
    const char *type;   /* "cpu", "gpu", "igpu", "virtual", "other" */
    int probe;          /* index into the probe report, -1 when only a backend knows it */
    sdrt_device *compute; /* the backend device, NULL when no backend serves it */
} dev_record;

typedef struct dev_inventory {
    cpuprobe_info cpu;
    cudaprobe_report cuda;
    vkprobe_report vk;
    devbackends backends;
    dev_record rec[DEVINV_MAX];
    int count;
    int default_rec;          /* index in rec, -1 when no compute device */
    sdrt_device *default_device;
} dev_inventory;

/* Builds the records from inv->cpu, inv->cuda, inv->vk and inv->backends
 * (filled by the caller). */
void devinv_build(dev_inventory *inv);

/* Chooses the default compute device for `choice` ("auto", "cpu",
 * "cuda:0", ...). A choice that is not available falls back to the CPU
 * (then to any compute device) and writes why into warn (else ""). */
void devinv_choose_default(dev_inventory *inv, const char *choice, char *warn, size_t warnlen);

/* The record with id `id` ("cpu" = "cpu:0"), or NULL. */
const dev_record *devinv_find(const dev_inventory *inv, const char *id);

#endif
