/* cuda_backend.c - the "cuda" backend family: one sdrt_device per CUDA
 * device ("cuda:N"), a VRAM buffer type over the pool of cuda_pool.c, a
 * pinned host buffer type for staging, reset after sticky faults, and the
 * exported entry, which returns NULL (after one log line) where there is no
 * driver or no device. cudart is linked statically and cuBLAS opened only
 * once a device was found (cuda_blas.h), so this module loads fast on
 * machines without the NVIDIA driver and only cudaGetDeviceCount finds out.
 */
#define _POSIX_C_SOURCE 200809L
#include "cuda_internal.h"

#include "cuda_blas.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_BUFFER_ALIGN 256
#define CUDA_POOL_GRANULARITY ((size_t)64 << 20)

struct cuda_device_ctx {
    int ordinal;
    char label[16];      /* "cuda:N" */
    char name[16];       /* "CUDA0" */
    char description[256];
    char info[1024];
    int sm;
    size_t smem_optin;
    size_t total_mem;
    cuda_precision precision;
    pthread_mutex_t lock; /* pool, generation */
    cuda_pool pool;
    uint64_t generation;
    int resetting;       /* pool segments died with the context: do not cudaFree them */
    int faulted;         /* a sticky error was seen: reset() needed */
    sdrt_device dev;
    sdrt_buffer_type vram, pinned;
};

typedef struct cuda_buf {
    cuda_device_ctx *d;
    uintptr_t addr;
    size_t size;
    uint64_t generation;
    int usage;
    int pinned;
} cuda_buf;

static const sdrt_host_api *g_api;
static cuda_device_ctx *g_devs;
static int g_ndev;
static sdrt_backend_reg g_reg;

void cuda_log(int level, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_api && g_api->log) g_api->log(NULL, (sdrt_log_level)level, "%s", msg);
    else fprintf(stderr, "%s\n", msg);
}

static int cuda_is_sticky(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorECCUncorrectable:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorDevicesUnavailable:
    case cudaErrorUnknown:
        return 1;
    default:
        return 0;
    }
}

sdrt_status cuda_check(cuda_device_ctx *d, cudaError_t err, const char *what) {
    if (err == cudaSuccess) return SDRT_OK;
    if (err == cudaErrorMemoryAllocation) {
        cuda_log(SDRT_LOG_WARN, "%s: out of memory in %s", d->label, what);
        cudaGetLastError(); /* not sticky: clear it */
        return SDRT_RESOURCE_EXHAUSTED;
    }
    if (cuda_is_sticky(err)) {
        d->faulted = 1;
        cuda_log(SDRT_LOG_ERROR, "%s: device fault in %s: %s (%s); the device must be reset", d->label, what,
                 cudaGetErrorString(err), cudaGetErrorName(err));
        return SDRT_UNAVAILABLE;
    }
    cudaGetLastError();
    cuda_log(SDRT_LOG_ERROR, "%s: %s failed: %s (%s)", d->label, what, cudaGetErrorString(err), cudaGetErrorName(err));
    return SDRT_INTERNAL;
}

int cuda_device_ordinal(const cuda_device_ctx *d) { return d->ordinal; }
const char *cuda_device_label(const cuda_device_ctx *d) { return d->label; }
cuda_precision cuda_device_precision(const cuda_device_ctx *d) { return d->precision; }
int cuda_device_sm(const cuda_device_ctx *d) { return d->sm; }
size_t cuda_device_smem_optin(const cuda_device_ctx *d) { return d->smem_optin; }
uint64_t cuda_device_generation(const cuda_device_ctx *d) { return d->generation; }
int cuda_device_faulted(const cuda_device_ctx *d) { return d->faulted; }
sdrt_buffer_type *cuda_device_vram_type(cuda_device_ctx *d) { return &d->vram; }
sdrt_buffer_type *cuda_device_pinned_type(cuda_device_ctx *d) { return &d->pinned; }

/* ---- pool callbacks: one cudaMalloc / cudaFree per segment ----------------- */

static int cuda_pool_grow_cb(void *ctx, size_t size, uintptr_t *base) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    *base = (uintptr_t)p;
    return 0;
}

static void cuda_pool_release_cb(void *ctx, uintptr_t base, size_t size) {
    cuda_device_ctx *d = ctx;
    if (!d->resetting) cudaFree((void *)base);
}

/* ---- buffers ------------------------------------------------------------------ */

static void cuda_buffer_free(sdrt_buffer *buf);
static void *cuda_buffer_base(sdrt_buffer *buf) { return (void *)((cuda_buf *)buf->context)->addr; }

static void cuda_buffer_write(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    cuda_buf *b = buf->context;
    if (!size) return;
    if (b->pinned) {
        memcpy(dst, src, size);
        return;
    }
    cudaSetDevice(b->d->ordinal);
    cuda_check(b->d, cudaMemcpy(dst, src, size, cudaMemcpyHostToDevice), "buffer write");
}

static void cuda_buffer_read(sdrt_buffer *buf, void *dst, const void *src, size_t size) {
    cuda_buf *b = buf->context;
    if (!size) return;
    if (b->pinned) {
        memcpy(dst, src, size);
        return;
    }
    cudaSetDevice(b->d->ordinal);
    cuda_check(b->d, cudaMemcpy(dst, src, size, cudaMemcpyDeviceToHost), "buffer read");
}

static void cuda_buffer_memset(sdrt_buffer *buf, void *dst, int value, size_t size) {
    cuda_buf *b = buf->context;
    if (!size) return;
    if (b->pinned) {
        memset(dst, value, size);
        return;
    }
    cudaSetDevice(b->d->ordinal);
    cuda_check(b->d, cudaMemset(dst, value, size), "buffer memset");
}

static int cuda_buffer_copy_from(sdrt_buffer *buf, void *dst, sdrt_buffer *src_buf, const void *src, size_t size) {
    if (!cuda_buffer_is_ours(src_buf)) return 0;
    cuda_buf *b = buf->context;
    if (!size) return 1;
    cudaSetDevice(b->d->ordinal);
    /* Unified addressing: Default covers VRAM, pinned memory and peers. */
    return cuda_check(b->d, cudaMemcpy(dst, src, size, cudaMemcpyDefault), "buffer copy") == SDRT_OK;
}

static void cuda_buffer_set_usage(sdrt_buffer *buf, int usage) { ((cuda_buf *)buf->context)->usage = usage; }

static const sdrt_buffer_iface g_cuda_buffer_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_iface, set_usage),
    .free = cuda_buffer_free,
    .base = cuda_buffer_base,
    .write = cuda_buffer_write,
    .read = cuda_buffer_read,
    .memset = cuda_buffer_memset,
    .copy_from = cuda_buffer_copy_from,
    .set_usage = cuda_buffer_set_usage,
};

int cuda_buffer_is_ours(const sdrt_buffer *buf) { return buf && buf->iface == &g_cuda_buffer_iface; }

static void cuda_buffer_free(sdrt_buffer *buf) {
    if (!buf) return;
    cuda_buf *b = buf->context;
    cuda_device_ctx *d = b->d;
    pthread_mutex_lock(&d->lock);
    if (b->generation == d->generation) {
        cudaSetDevice(d->ordinal);
        if (b->pinned) {
            cudaFreeHost((void *)b->addr);
        } else {
            /* As cudaFree would: work still queued may read the range, so
             * wait for it before the range can be handed out again. */
            cudaDeviceSynchronize();
            cuda_pool_free(&d->pool, b->addr, b->size);
        }
    }
    pthread_mutex_unlock(&d->lock);
    free(b);
    free(buf);
}

static sdrt_buffer *cuda_buffer_wrap(sdrt_buffer_type *bt, cuda_device_ctx *d, uintptr_t addr, size_t size, int pinned) {
    sdrt_buffer *buf = calloc(1, sizeof *buf);
    cuda_buf *b = calloc(1, sizeof *b);
    if (!buf || !b) {
        free(buf);
        free(b);
        return NULL;
    }
    *b = (cuda_buf){.d = d, .addr = addr, .size = size, .generation = d->generation, .pinned = pinned};
    *buf = (sdrt_buffer){.iface = &g_cuda_buffer_iface, .context = b, .type = bt, .size = size};
    return buf;
}

/* ---- VRAM buffer type ------------------------------------------------------------ */

static const char *cuda_vram_name(sdrt_buffer_type *bt) { return ((cuda_device_ctx *)bt->context)->name; }

static sdrt_buffer *cuda_vram_alloc(sdrt_buffer_type *bt, size_t size) {
    cuda_device_ctx *d = bt->context;
    uintptr_t addr = 0;
    pthread_mutex_lock(&d->lock);
    cudaSetDevice(d->ordinal);
    int rc = d->faulted ? -1 : cuda_pool_alloc(&d->pool, size, &addr);
    size_t reserved = d->pool.reserved, in_use = d->pool.in_use;
    pthread_mutex_unlock(&d->lock);
    if (rc != 0) {
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        cudaGetLastError();
        cuda_log(SDRT_LOG_WARN,
                 "%s: out of memory: cannot allocate %zu bytes (%.1f MiB); device free %zu of %zu bytes, "
                 "pool holds %zu (%zu in use)%s",
                 d->label, size, (double)size / 1048576.0, fr, tot, reserved, in_use,
                 d->faulted ? "; the device faulted and needs a reset" : "");
        return NULL;
    }
    sdrt_buffer *buf = cuda_buffer_wrap(bt, d, addr, size, 0);
    if (!buf) {
        pthread_mutex_lock(&d->lock);
        cuda_pool_free(&d->pool, addr, size);
        pthread_mutex_unlock(&d->lock);
    }
    return buf;
}

static size_t cuda_vram_alignment(sdrt_buffer_type *bt) { return CUDA_BUFFER_ALIGN; }
static int cuda_vram_is_host(sdrt_buffer_type *bt) { return 0; }
static size_t cuda_vram_max_size(sdrt_buffer_type *bt) { return 0; }

static const sdrt_buffer_type_iface g_cuda_vram_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_type_iface, max_size),
    .name = cuda_vram_name,
    .alloc = cuda_vram_alloc,
    .alignment = cuda_vram_alignment,
    .is_host = cuda_vram_is_host,
    .max_size = cuda_vram_max_size,
};

/* ---- pinned host buffer type ----------------------------------------------------- */

static const char *cuda_pinned_name(sdrt_buffer_type *bt) { return "CUDA_Host"; }

static sdrt_buffer *cuda_pinned_alloc(sdrt_buffer_type *bt, size_t size) {
    cuda_device_ctx *d = bt->context;
    void *p = NULL;
    cudaSetDevice(d->ordinal);
    cudaError_t e = cudaHostAlloc(&p, size ? size : 1, cudaHostAllocPortable | cudaHostAllocMapped);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cuda_log(SDRT_LOG_WARN, "%s: cannot pin %zu bytes of host memory: %s", d->label, size, cudaGetErrorString(e));
        return NULL;
    }
    sdrt_buffer *buf = cuda_buffer_wrap(bt, d, (uintptr_t)p, size, 1);
    if (!buf) cudaFreeHost(p);
    return buf;
}

static int cuda_pinned_is_host(sdrt_buffer_type *bt) { return 1; }

static const sdrt_buffer_type_iface g_cuda_pinned_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_buffer_type_iface, max_size),
    .name = cuda_pinned_name,
    .alloc = cuda_pinned_alloc,
    .alignment = cuda_vram_alignment,
    .is_host = cuda_pinned_is_host,
    .max_size = cuda_vram_max_size,
};

/* ---- device iface ------------------------------------------------------------------ */

static cuda_device_ctx *cuda_dev(sdrt_device *dev) { return dev->context; }
static const char *cuda_dev_name(sdrt_device *dev) { return cuda_dev(dev)->name; }
static const char *cuda_dev_description(sdrt_device *dev) { return cuda_dev(dev)->description; }
static sdrt_device_type cuda_dev_type(sdrt_device *dev) { return SDRT_DEVICE_GPU; }

/* The driver's free memory plus what the pool holds but has not handed out. */
static void cuda_dev_memory(sdrt_device *dev, size_t *free_bytes, size_t *total_bytes) {
    cuda_device_ctx *d = cuda_dev(dev);
    size_t fr = 0, tot = d->total_mem;
    pthread_mutex_lock(&d->lock);
    cudaSetDevice(d->ordinal);
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        cudaGetLastError();
        fr = 0;
        tot = d->total_mem;
    }
    fr += d->pool.reserved - d->pool.in_use;
    pthread_mutex_unlock(&d->lock);
    if (free_bytes) *free_bytes = fr;
    if (total_bytes) *total_bytes = tot;
}

static sdrt_buffer_type *cuda_dev_buffer_type(sdrt_device *dev) { return &cuda_dev(dev)->vram; }
static sdrt_buffer_type *cuda_dev_host_buffer_type(sdrt_device *dev) { return &cuda_dev(dev)->pinned; }

static sdrt_stream *cuda_dev_stream_new(sdrt_device *dev, const char *params_json) {
    return cuda_stream_new(dev, cuda_dev(dev), params_json);
}

static sdrt_status cuda_dev_stream_open(sdrt_device *dev, const char *params_json, sdrt_stream **out, char *msg,
                                        size_t msg_size) {
    return cuda_stream_open(dev, cuda_dev(dev), params_json, out, msg, msg_size);
}

static int cuda_dev_supports_op(sdrt_device *dev, const sdrt_op *op) {
    return cuda_supports_op(op, &cuda_dev(dev)->vram, &cuda_dev(dev)->pinned);
}

static const char *cuda_dev_info_json(sdrt_device *dev) { return cuda_dev(dev)->info; }

/* cudaDeviceReset destroys the context and every allocation in it: the pool
 * forgets its segments, and buffers and streams of the old generation only
 * free their host memory from then on. */
static sdrt_status cuda_dev_reset(sdrt_device *dev) {
    cuda_device_ctx *d = cuda_dev(dev);
    pthread_mutex_lock(&d->lock);
    cudaSetDevice(d->ordinal);
    cudaError_t e = cudaDeviceReset();
    d->resetting = 1;
    cuda_pool_destroy(&d->pool);
    d->resetting = 0;
    cuda_pool_init(&d->pool, CUDA_BUFFER_ALIGN, CUDA_POOL_GRANULARITY, cuda_pool_grow_cb, cuda_pool_release_cb, d);
    d->generation++;
    if (e == cudaSuccess) {
        cudaSetDevice(d->ordinal);
        e = cudaFree(NULL); /* re-create the primary context now, not at the next call */
    }
    if (e == cudaSuccess) cuda_kernels_init(d->ordinal);
    d->faulted = e != cudaSuccess;
    pthread_mutex_unlock(&d->lock);
    if (e != cudaSuccess) {
        cuda_log(SDRT_LOG_ERROR, "%s: reset failed: %s", d->label, cudaGetErrorString(e));
        return SDRT_UNAVAILABLE;
    }
    cuda_log(SDRT_LOG_WARN, "%s: reset; every buffer and stream made before is invalid", d->label);
    return SDRT_OK;
}

/* The pool's bytes in use (changed under d->lock; a racy read of one word
 * is what a metric needs). */
static uint64_t cuda_dev_allocated(sdrt_device *dev) {
    return (uint64_t)__atomic_load_n(&cuda_dev(dev)->pool.in_use, __ATOMIC_RELAXED);
}

static const sdrt_device_iface g_cuda_device_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_device_iface, stream_open),
    .name = cuda_dev_name,
    .description = cuda_dev_description,
    .type = cuda_dev_type,
    .memory = cuda_dev_memory,
    .buffer_type = cuda_dev_buffer_type,
    .stream_new = cuda_dev_stream_new,
    .supports_op = cuda_dev_supports_op,
    .info_json = cuda_dev_info_json,
    .host_buffer_type = cuda_dev_host_buffer_type,
    .reset = cuda_dev_reset,
    .allocated_bytes = cuda_dev_allocated,
    .stream_open = cuda_dev_stream_open,
};

/* ---- family -------------------------------------------------------------------------- */

static const char *cuda_reg_name(sdrt_backend_reg *reg) { return "cuda"; }
static size_t cuda_reg_device_count(sdrt_backend_reg *reg) { return (size_t)g_ndev; }
static sdrt_device *cuda_reg_device_get(sdrt_backend_reg *reg, size_t i) {
    return i < (size_t)g_ndev ? &g_devs[i].dev : NULL;
}

static void cuda_reg_unload(sdrt_backend_reg *reg) {
    for (int i = 0; i < g_ndev; i++) {
        cuda_device_ctx *d = &g_devs[i];
        cudaSetDevice(d->ordinal);
        cuda_pool_destroy(&d->pool);
        pthread_mutex_destroy(&d->lock);
    }
    free(g_devs);
    g_devs = NULL;
    g_ndev = 0;
}

static const sdrt_backend_reg_iface g_cuda_reg_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_backend_reg_iface, unload),
    .name = cuda_reg_name,
    .device_count = cuda_reg_device_count,
    .device_get = cuda_reg_device_get,
    .unload = cuda_reg_unload,
};

/* "precision": "f32" (default; also "auto") or "f16" (= "mixed") from the family config; the
 * environment's SDRT_CUDA_PRECISION wins (tests, benchmarks). F32 is the
 * default because it meets the conformance tolerances (2e-5 relative for
 * MATMUL/CONV2D); mixed rounds activations to F16/BF16 (~1e-3) and is the
 * speed mode a deployment opts into. */
static cuda_precision cuda_config_precision(const char *config_json) {
    const char *env = getenv("SDRT_CUDA_PRECISION");
    const char *v = env && *env ? env : NULL;
    cJSON *root = config_json ? cJSON_Parse(config_json) : NULL;
    const cJSON *p = root ? cJSON_GetObjectItemCaseSensitive(root, "precision") : NULL;
    if (!v && cJSON_IsString(p)) v = p->valuestring;
    cuda_precision out = CUDA_PRECISION_F32;
    if (v && (strcmp(v, "mixed") == 0 || strcmp(v, "f16") == 0)) out = CUDA_PRECISION_MIXED;
    else if (v && strcmp(v, "f32") != 0 && strcmp(v, "auto") != 0)
        cuda_log(SDRT_LOG_WARN, "cuda backend: precision \"%s\" unknown (use \"f32\", \"f16\" or \"mixed\"): using f32",
                 v);
    cJSON_Delete(root);
    return out;
}

static void cuda_device_describe(cuda_device_ctx *d, const struct cudaDeviceProp *p, int driver, int runtime) {
    snprintf(d->label, sizeof d->label, "cuda:%d", d->ordinal);
    snprintf(d->name, sizeof d->name, "CUDA%d", d->ordinal);
    snprintf(d->description, sizeof d->description, "%s", p->name);
    d->sm = p->major * 10 + p->minor;
    d->smem_optin = p->sharedMemPerBlockOptin;
    d->total_mem = p->totalGlobalMem;
    snprintf(d->info, sizeof d->info,
             "{\"id\":\"%s\",\"name\":\"%s\",\"compute_capability\":\"%d.%d\",\"multiprocessors\":%d,"
             "\"memory_total_bytes\":%zu,\"driver_version\":%d,\"runtime_version\":%d,\"precision\":\"%s\","
             "\"kernels\":[\"sm_80\",\"sm_90\"],\"graphs\":true}",
             d->label, p->name, p->major, p->minor, p->multiProcessorCount, p->totalGlobalMem, driver, runtime,
             d->precision == CUDA_PRECISION_F32 ? "f32" : "mixed");
}

SDRT_EXPORT sdrt_backend_reg *sdrt_backend_entry(const sdrt_host_api *host_api, const char *config_json) {
    g_api = host_api;
    if (g_devs) return &g_reg; /* repeated entry: the same family */
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver); /* 0 when no driver library is found */
    cudaRuntimeGetVersion(&runtime);
    if (e != cudaSuccess || n <= 0) {
        cudaGetLastError();
        if (driver == 0)
            cuda_log(SDRT_LOG_INFO, "cuda backend: no NVIDIA driver found (%s)", cudaGetErrorString(e));
        else if (e == cudaErrorInsufficientDriver)
            cuda_log(SDRT_LOG_INFO, "cuda backend: the NVIDIA driver supports CUDA %d.%d, the family needs %d.%d",
                     driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        else
            cuda_log(SDRT_LOG_INFO, "cuda backend: no usable CUDA device (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
        return NULL;
    }
    cuda_precision prec = cuda_config_precision(config_json);
    cuda_device_ctx *devs = calloc((size_t)n, sizeof *devs);
    if (!devs) return NULL;
    int used = 0;
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        if (p.major < 8) {
            cuda_log(SDRT_LOG_INFO, "cuda backend: device %d (%s, sm_%d%d) skipped: kernels are built for sm_80+", i,
                     p.name, p.major, p.minor);
            continue;
        }
        cuda_device_ctx *d = &devs[used];
        d->ordinal = i;
        d->precision = prec;
        pthread_mutex_init(&d->lock, NULL);
        cuda_device_describe(d, &p, driver, runtime);
        cuda_pool_init(&d->pool, CUDA_BUFFER_ALIGN, CUDA_POOL_GRANULARITY, cuda_pool_grow_cb, cuda_pool_release_cb, d);
        d->dev = (sdrt_device){.iface = &g_cuda_device_iface, .context = d, .reg = &g_reg};
        d->vram = (sdrt_buffer_type){.iface = &g_cuda_vram_iface, .context = d, .device = &d->dev};
        d->pinned = (sdrt_buffer_type){.iface = &g_cuda_pinned_iface, .context = d, .device = &d->dev};
        cudaSetDevice(i);
        cuda_kernels_init(i);
        used++;
    }
    if (!used) {
        free(devs);
        cuda_log(SDRT_LOG_INFO, "cuda backend: no CUDA device of compute capability 8.0 or newer");
        return NULL;
    }
    char why[512] = "";
    if (!cuda_blas_open(why, sizeof why))
        cuda_log(SDRT_LOG_WARN, "cuda backend: cuBLAS unavailable (%s): F32 MATMUL runs on the family's own kernels",
                 why);
    g_devs = devs;
    g_ndev = used;
    g_reg = (sdrt_backend_reg){.iface = &g_cuda_reg_iface, .context = NULL, .abi_major = SDRT_ABI_MAJOR,
                               .abi_minor = SDRT_ABI_MINOR};
    cuda_log(SDRT_LOG_INFO, "cuda backend: %d device(s), %s (sm_%d), driver %d, runtime %d, precision %s", used,
             devs[0].description, devs[0].sm, driver, runtime, prec == CUDA_PRECISION_F32 ? "f32" : "mixed");
    return &g_reg;
}
