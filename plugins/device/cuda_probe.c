/* plugins/device/cuda_probe.c - see cuda_probe.h. Declares the few driver
 * API entry points it needs so no CUDA header is required to build. */
#include "cuda_probe.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dynlib.h"

typedef int cu_result; /* CUresult: 0 = CUDA_SUCCESS */
typedef int cu_device;
typedef void *cu_context;

enum {
    CU_ATTR_MULTIPROCESSOR_COUNT = 16,
    CU_ATTR_CC_MAJOR = 75,
    CU_ATTR_CC_MINOR = 76
};

typedef struct cu_api {
    cu_result (*init)(unsigned);
    cu_result (*driver_version)(int *);
    cu_result (*count)(int *);
    cu_result (*get)(cu_device *, int);
    cu_result (*name)(char *, int, cu_device);
    cu_result (*total_mem)(size_t *, cu_device);
    cu_result (*attribute)(int *, int, cu_device);
    cu_result (*pci_bus_id)(char *, int, cu_device);
    cu_result (*error_name)(cu_result, const char **);
    cu_result (*ctx_retain)(cu_context *, cu_device);
    cu_result (*ctx_release)(cu_device);
    cu_result (*ctx_push)(cu_context);
    cu_result (*ctx_pop)(cu_context *);
    cu_result (*mem_info)(size_t *, size_t *);
} cu_api;

#ifdef _WIN32
static const char *const DRIVER_NAMES[] = {"nvcuda.dll", NULL};
static const char *const RUNTIME_NAMES[] = {"cudart64_12.dll", "cudart64_110.dll", NULL};
static const char *const NVML_NAMES[] = {"nvml.dll", NULL};
#else
static const char *const DRIVER_NAMES[] = {"libcuda.so.1", "libcuda.so", NULL};
static const char *const RUNTIME_NAMES[] = {"libcudart.so", "libcudart.so.12", "libcudart.so.11.0", NULL};
static const char *const NVML_NAMES[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", NULL};
#endif

#define CU_SYM(api, lib, field, symbol) ((api)->field = (void *)devlib_sym((lib), (symbol)))

static int load_driver(devlib *lib, cu_api *api) {
    memset(api, 0, sizeof *api);
    int ok = CU_SYM(api, lib, init, "cuInit") && CU_SYM(api, lib, driver_version, "cuDriverGetVersion") &&
             CU_SYM(api, lib, count, "cuDeviceGetCount") && CU_SYM(api, lib, get, "cuDeviceGet") &&
             CU_SYM(api, lib, name, "cuDeviceGetName") && CU_SYM(api, lib, total_mem, "cuDeviceTotalMem_v2") &&
             CU_SYM(api, lib, attribute, "cuDeviceGetAttribute");
    /* optional: PCI matching for NVML, error names, free memory */
    CU_SYM(api, lib, pci_bus_id, "cuDeviceGetPCIBusId");
    CU_SYM(api, lib, error_name, "cuGetErrorName");
    CU_SYM(api, lib, ctx_retain, "cuDevicePrimaryCtxRetain");
    CU_SYM(api, lib, ctx_release, "cuDevicePrimaryCtxRelease_v2");
    CU_SYM(api, lib, ctx_push, "cuCtxPushCurrent_v2");
    CU_SYM(api, lib, ctx_pop, "cuCtxPopCurrent_v2");
    CU_SYM(api, lib, mem_info, "cuMemGetInfo_v2");
    return ok;
}

static const char *cu_error(const cu_api *api, cu_result r) {
    const char *name = NULL;
    if (api->error_name && api->error_name(r, &name) == 0 && name) return name;
    return "CUDA error";
}

static void probe_device(const cu_api *api, int ordinal, cudaprobe_device *d) {
    memset(d, 0, sizeof *d);
    cu_device dev = 0;
    if (api->get(&dev, ordinal) != 0) return;
    api->name(d->name, (int)sizeof d->name - 1, dev);
    size_t total = 0;
    if (api->total_mem(&total, dev) == 0) d->mem_total = total;
    api->attribute(&d->cc_major, CU_ATTR_CC_MAJOR, dev);
    api->attribute(&d->cc_minor, CU_ATTR_CC_MINOR, dev);
    api->attribute(&d->multiprocessors, CU_ATTR_MULTIPROCESSOR_COUNT, dev);
    if (api->pci_bus_id) api->pci_bus_id(d->pci_bus_id, (int)sizeof d->pci_bus_id - 1, dev);
}

static void probe_runtime(const cudaprobe_libs *libs, cudaprobe_report *r) {
    devlib *rt = devlib_open(libs && libs->runtime ? libs->runtime : RUNTIME_NAMES, NULL, NULL, 0);
    if (!rt) return;
    int (*version)(int *) = (int (*)(int *))devlib_sym(rt, "cudaRuntimeGetVersion");
    if (!version || version(&r->runtime_version) != 0) r->runtime_version = 0;
    /* cudaRuntimeGetVersion creates no context; the runtime stays loaded
     * like the driver (the CUDA backend will want it anyway). */
}

/* NVML reads free memory without creating a CUDA context. */
typedef struct nvml_memory {
    unsigned long long total, free, used;
} nvml_memory;

static int memory_by_nvml(const cudaprobe_libs *libs, cudaprobe_report *r) {
    devlib *lib = devlib_open(libs && libs->nvml ? libs->nvml : NVML_NAMES, NULL, NULL, 0);
    if (!lib) return -1;
    int (*init)(void) = (int (*)(void))devlib_sym(lib, "nvmlInit_v2");
    int (*shutdown)(void) = (int (*)(void))devlib_sym(lib, "nvmlShutdown");
    int (*by_pci)(const char *, void **) = (int (*)(const char *, void **))devlib_sym(lib, "nvmlDeviceGetHandleByPciBusId_v2");
    int (*meminfo)(void *, nvml_memory *) = (int (*)(void *, nvml_memory *))devlib_sym(lib, "nvmlDeviceGetMemoryInfo");
    if (!init || !shutdown || !by_pci || !meminfo || init() != 0) return -1;
    int found = 0;
    for (int i = 0; i < r->count; i++) {
        void *h = NULL;
        nvml_memory m;
        if (!r->dev[i].pci_bus_id[0] || by_pci(r->dev[i].pci_bus_id, &h) != 0 || meminfo(h, &m) != 0) continue;
        r->dev[i].mem_free = m.free;
        r->dev[i].mem_free_known = 1;
        found++;
    }
    shutdown();
    return found == r->count ? 0 : -1;
}

/* Without NVML: briefly retain the primary context (the one the CUDA
 * backend shares) and ask it; releasing it frees it again if unused. */
static void memory_by_context(const cu_api *api, cudaprobe_report *r) {
    if (!api->ctx_retain || !api->ctx_release || !api->ctx_push || !api->ctx_pop || !api->mem_info) return;
    for (int i = 0; i < r->count; i++) {
        cu_device dev;
        cu_context ctx = NULL, popped = NULL;
        if (r->dev[i].mem_free_known || api->get(&dev, i) != 0 || api->ctx_retain(&ctx, dev) != 0) continue;
        size_t fre = 0, total = 0;
        if (api->ctx_push(ctx) == 0) {
            if (api->mem_info(&fre, &total) == 0) {
                r->dev[i].mem_free = fre;
                r->dev[i].mem_free_known = 1;
            }
            api->ctx_pop(&popped);
        }
        api->ctx_release(dev);
    }
}

static int open_driver(const cudaprobe_libs *libs, cudaprobe_report *r, cu_api *api) {
    const char *which = NULL;
    char why[200] = "";
    devlib *lib = devlib_open(libs && libs->driver ? libs->driver : DRIVER_NAMES, &which, why, sizeof why);
    if (!lib) {
        snprintf(r->reason, sizeof r->reason, "CUDA driver library not found (no NVIDIA driver): %s", why);
        return -1;
    }
    snprintf(r->driver_lib, sizeof r->driver_lib, "%s", which);
    if (!load_driver(lib, api)) {
        snprintf(r->reason, sizeof r->reason, "%s lacks driver API entry points (driver too old?)", which);
        devlib_close(lib);
        return -1;
    }
    cu_result rc = api->init(0);
    if (rc != 0) {
        snprintf(r->reason, sizeof r->reason, "cuInit failed: %s (%d)", cu_error(api, rc), rc);
        return -1;
    }
    return 0;
}

void cudaprobe_run(const cudaprobe_libs *libs, cudaprobe_report *r) {
    memset(r, 0, sizeof *r);
    cu_api api;
    if (open_driver(libs, r, &api) != 0) return;
    api.driver_version(&r->driver_version);
    int n = 0;
    if (api.count(&n) != 0 || n <= 0) {
        snprintf(r->reason, sizeof r->reason, "the CUDA driver reports no devices");
        return;
    }
    r->count = n > CUDAPROBE_MAX_DEVICES ? CUDAPROBE_MAX_DEVICES : n;
    for (int i = 0; i < r->count; i++) probe_device(&api, i, &r->dev[i]);
    r->available = 1;
    probe_runtime(libs, r);
    cudaprobe_refresh_memory(libs, r);
}

void cudaprobe_refresh_memory(const cudaprobe_libs *libs, cudaprobe_report *r) {
    if (!r->available) return;
    for (int i = 0; i < r->count; i++) r->dev[i].mem_free_known = 0;
    if (memory_by_nvml(libs, r) == 0) return;
    cu_api api;
    cudaprobe_report tmp;
    memset(&tmp, 0, sizeof tmp);
    if (open_driver(libs, &tmp, &api) == 0) memory_by_context(&api, r);
}
