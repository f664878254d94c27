/* plugins/device/gpu_probe.h - CUDA and Vulkan probes run out of process.
 *
 * The device plugin never probes a GPU stack in the serving process: the
 * Vulkan loader with Mesa's lavapipe maps LLVM and friends (~50 MB
 * resident) that can never be unloaded, and a broken driver could crash or
 * hang the host. Instead it runs the helper executable sdrt-gpu-probe
 * (gpu_probe_helper.c, installed beside the plugin) once per family and
 * reads back the same report the in-process probe would have filled.
 * POSIX: posix_spawn, which is safe from a multi-threaded process (the
 * child only execs). Windows: the probes run in process (no helper yet). */
#ifndef SDRT_DEVICE_GPU_PROBE_H
#define SDRT_DEVICE_GPU_PROBE_H

#include <stddef.h>

#include "cuda_probe.h"
#include "vulkan_probe.h"

#ifdef _WIN32
#define GPUPROBE_HELPER_NAME "sdrt-gpu-probe.exe"
#else
#define GPUPROBE_HELPER_NAME "sdrt-gpu-probe"
#endif

/* Long enough for cuInit on a many-GPU machine without persistence mode;
 * a probe past it is killed and reported as hung. */
#define GPUPROBE_TIMEOUT_MS 10000

/* Writes "<folder of the module containing addr>/sdrt-gpu-probe" into out.
 * Returns 0, or -1 when the folder is unknown or the path does not fit. */
int gpuprobe_helper_beside(const void *addr, char *out, size_t outlen);

/* Probes CUDA into *cuda and Vulkan into *vk (either may be NULL: that
 * family is not probed) by running `helper`, both families concurrently,
 * waiting at most timeout_ms in all. Never fails: a family whose helper is
 * missing, crashes, hangs (it is then killed), exits without a report or
 * writes a foreign one comes back with available = 0 and a reason naming
 * what happened, exactly like a machine without that runtime. Any thread;
 * blocks for the probe's duration. Leaves no child behind. */
void gpuprobe_run(const char *helper, int timeout_ms, cudaprobe_report *cuda, vkprobe_report *vk);

/* Re-reads the free memory of every device in `r` (a report from
 * gpuprobe_run) with `helper` ("sdrt-gpu-probe cuda-memory BUS-ID...":
 * NVML, else a brief primary context, without a full re-probe). A device
 * whose figure cannot be had gets mem_free_known = 0. Same threads, limits
 * and guarantees as gpuprobe_run. */
void gpuprobe_cuda_memory(const char *helper, int timeout_ms, cudaprobe_report *r);

#endif
