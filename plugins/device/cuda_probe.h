/* plugins/device/cuda_probe.h - NVIDIA GPUs through the CUDA driver API,
 * loaded at run time (libcuda.so.1 / nvcuda.dll), plus the CUDA runtime's
 * version (libcudart) and free memory through NVML when present. No GPU,
 * no driver or no runtime is a normal outcome: available = 0 and a reason.
 * Independent of the CUDA compute backend. */
#ifndef SDRT_DEVICE_CUDA_PROBE_H
#define SDRT_DEVICE_CUDA_PROBE_H

#include <stdint.h>

#define CUDAPROBE_MAX_DEVICES 16

typedef struct cudaprobe_device {
    char name[256];
    char pci_bus_id[32];
    int cc_major, cc_minor;
    int multiprocessors;
    uint64_t mem_total;
    uint64_t mem_free;
    int mem_free_known;
} cudaprobe_device;

typedef struct cudaprobe_report {
    int available;
    char reason[256];        /* why not available ("" when available) */
    char driver_lib[64];     /* the library that loaded */
    int driver_version;      /* e.g. 12040 = 12.4; 0 unknown */
    int runtime_version;     /* libcudart's, 0 when no runtime was found */
    int count;
    cudaprobe_device dev[CUDAPROBE_MAX_DEVICES];
} cudaprobe_report;

/* Library names to try, each NULL-terminated; NULL members mean the
 * platform defaults. Tests pass names that do not exist. */
typedef struct cudaprobe_libs {
    const char *const *driver;
    const char *const *runtime;
    const char *const *nvml;
} cudaprobe_libs;

/* Probes. `libs` may be NULL (defaults). Never fails: see report->available.
 * Loaded driver libraries stay loaded for the process lifetime (unloading
 * libcuda after cuInit is not supported by the driver). */
void cudaprobe_run(const cudaprobe_libs *libs, cudaprobe_report *report);

/* Refreshes mem_free of every device in `report` (NVML, or the primary
 * context when NVML is missing). */
void cudaprobe_refresh_memory(const cudaprobe_libs *libs, cudaprobe_report *report);

#endif
