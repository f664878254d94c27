/* plugins/device/cpu_probe.h - what the host CPU is and has: model, vendor,
 * cores and threads, SIMD features the OS has enabled, RAM. Independent of
 * the CPU compute backend (which picks kernels on its own). */
#ifndef SDRT_DEVICE_CPU_PROBE_H
#define SDRT_DEVICE_CPU_PROBE_H

#include <stdint.h>

#define CPUPROBE_MAX_FEATURES 16

typedef struct cpuprobe_info {
    char arch[16];          /* "x86_64", "aarch64", ... */
    char vendor[16];        /* "GenuineIntel", "AuthenticAMD", "" when unknown */
    char model[128];        /* brand string, trimmed */
    int cores;              /* physical cores (threads when unknown) */
    int threads;            /* online logical CPUs */
    int threads_available;  /* CPUs this process may run on (affinity, cgroups) */
    const char *features[CPUPROBE_MAX_FEATURES]; /* static names, e.g. "avx2" */
    int nfeatures;
    uint64_t mem_total;     /* bytes */
    uint64_t mem_available; /* bytes */
} cpuprobe_info;

/* Fills *info. Never fails: unknown fields stay empty / zero. */
void cpuprobe_run(cpuprobe_info *info);

/* Parses /proc/meminfo text: MemTotal and MemAvailable (or, on kernels
 * without it, MemFree + Buffers + Cached) in bytes. Returns 0, or -1 when
 * MemTotal is missing. */
int cpuprobe_parse_meminfo(const char *text, uint64_t *total, uint64_t *available);

/* Current RAM total / available. Returns 0 or -1. */
int cpuprobe_memory(uint64_t *total, uint64_t *available);

/* Non-zero if `name` is in info's feature list. */
int cpuprobe_has(const cpuprobe_info *info, const char *name);

#endif
