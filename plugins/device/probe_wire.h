/* plugins/device/probe_wire.h - the report the GPU probe helper
 * (sdrt-gpu-probe) writes on its stdout and the device plugin reads back:
 * one fixed-size record per family, a header then the probe's own report
 * struct. Helper and plugin are built from one tree and installed together,
 * so a plain struct is enough; the header's magic, version and size turn a
 * stale or foreign helper into a clear error instead of garbage. No pointer
 * crosses the pipe: the Vulkan device type travels as a code. */
#ifndef SDRT_DEVICE_PROBE_WIRE_H
#define SDRT_DEVICE_PROBE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "cuda_probe.h"
#include "vulkan_probe.h"

#define PROBEWIRE_MAGIC 0x50474453u /* "SDGP" little-endian */
#define PROBEWIRE_VERSION 1u

typedef enum probewire_family { PROBEWIRE_CUDA = 1, PROBEWIRE_VULKAN = 2 } probewire_family;

typedef struct probewire_header {
    uint32_t magic;
    uint32_t version;
    uint32_t family; /* probewire_family */
    uint32_t size;   /* sizeof the whole record */
} probewire_header;

typedef struct probewire_cuda {
    probewire_header h;
    cudaprobe_report report;
} probewire_cuda;

typedef struct probewire_vulkan {
    probewire_header h;
    vkprobe_report report; /* dev[i].type is NULL on the wire */
    uint8_t types[VKPROBE_MAX_DEVICES];
} probewire_vulkan;

/* The family named `name` ("cuda", "vulkan"), or 0. */
probewire_family probewire_family_named(const char *name);

/* "CUDA" / "Vulkan", for messages. */
const char *probewire_family_title(probewire_family f);

/* The size of `f`'s record, 0 for an unknown family. */
size_t probewire_size(probewire_family f);

/* Helper side: fills the record of `f` from a finished probe report (which
 * it borrows for the call). `out` must hold probewire_size(f) bytes. */
void probewire_pack_cuda(const cudaprobe_report *r, probewire_cuda *out);
void probewire_pack_vulkan(const vkprobe_report *r, probewire_vulkan *out);

/* Plugin side: checks the record read from the helper and copies its
 * report out, with every string terminated and every count clamped, so a
 * broken helper cannot make the plugin read past an array. Returns 0, or -1
 * with the reason in why when the record is not one this build writes. */
int probewire_unpack_cuda(const probewire_cuda *in, cudaprobe_report *out, char *why, size_t whylen);
int probewire_unpack_vulkan(const probewire_vulkan *in, vkprobe_report *out, char *why, size_t whylen);

#endif
