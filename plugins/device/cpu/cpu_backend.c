/* cpu_backend.c - the "cpu" backend family: one device describing this
 * machine (model, cores, SIMD features, RAM) and the exported entry. */
#include "cpu_internal.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct cpu_device_ctx {
    char description[128];
    char info[1024];
    int cores;
    int default_threads;
} cpu_device_ctx;

static cpu_device_ctx g_dev_ctx;
static sdrt_device g_device;
static sdrt_buffer_type g_buffer_type;
static sdrt_backend_reg g_reg;

/* The CPU model from /proc/cpuinfo ("model name"), or a generic name. */
static void cpu_read_model(char *out, size_t len) {
    snprintf(out, len, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(out, len, "%s", v);
        out[strcspn(out, "\n")] = 0;
        break;
    }
    fclose(f);
}

/* A /proc/meminfo field in bytes, or 0. */
static size_t cpu_meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key), kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            unsigned long long v = 0;
            if (sscanf(line + klen + 1, "%llu", &v) == 1) kb = (size_t)v;
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

static void cpu_ram(size_t *free_bytes, size_t *total_bytes) {
    size_t total = cpu_meminfo("MemTotal"), avail = cpu_meminfo("MemAvailable");
    if (!total) {
        long pages = sysconf(_SC_PHYS_PAGES), avpages = sysconf(_SC_AVPHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
        total = pages > 0 && ps > 0 ? (size_t)pages * (size_t)ps : 0;
        avail = avpages > 0 && ps > 0 ? (size_t)avpages * (size_t)ps : 0;
    }
    if (free_bytes) *free_bytes = avail;
    if (total_bytes) *total_bytes = total;
}

static void cpu_build_info(cpu_device_ctx *c) {
    const cpu_features *f = cpu_features_get();
    struct { const char *name; int on; } feats[] = {
        {"sse4.2", f->sse42}, {"avx", f->avx}, {"avx2", f->avx2}, {"fma", f->fma}, {"f16c", f->f16c},
        {"avx512f", f->avx512f}, {"avx512bw", f->avx512bw}, {"avx512vl", f->avx512vl},
        {"avx512dq", f->avx512dq}, {"avx512bf16", f->avx512bf16}, {"avx512fp16", f->avx512fp16},
        {"amx-bf16", f->amx_bf16}, {"avx512vnni", f->avx512vnni}, {"avx-vnni", f->avx_vnni},
    };
    char list[384] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++) {
        if (!feats[i].on) continue;
        used += (size_t)snprintf(list + used, sizeof list - used, "%s\"%s\"", used ? "," : "", feats[i].name);
        if (used >= sizeof list) break;
    }
    size_t avail, total;
    cpu_ram(&avail, &total);
    /* The stream precisions this CPU accepts and the kernel each uses. */
    const cpu_lp_kernel *k8 = cpu_lp_kernel_best(CPU_PREC_INT8), *kb = cpu_lp_kernel_best(CPU_PREC_BF16);
    char precisions[128];
    snprintf(precisions, sizeof precisions, "\"auto\",\"f32\",\"int8\"%s", kb ? ",\"bf16\"" : "");
    snprintf(c->info, sizeof c->info,
             "{\"model\":\"%s\",\"cores\":%d,\"default_threads\":%d,\"features\":[%s],"
             "\"ram_total_bytes\":%zu,\"ram_available_bytes\":%zu,\"gemm_kernel\":\"%s\",\"precisions\":[%s],"
             "\"int8_kernel\":\"%s\",\"bf16_kernel\":%s%s%s}",
             c->description, c->cores, c->default_threads, list, total, avail, cpu_kernel_best()->name, precisions,
             k8 ? k8->name : "", kb ? "\"" : "", kb ? kb->name : "null", kb ? "\"" : "");
}

/* ---- device iface ----------------------------------------------------------- */

static const char *cpu_dev_name(sdrt_device *dev) { return "CPU"; }

static const char *cpu_dev_description(sdrt_device *dev) {
    return ((cpu_device_ctx *)dev->context)->description;
}

static sdrt_device_type cpu_dev_type(sdrt_device *dev) { return SDRT_DEVICE_CPU; }

static void cpu_dev_memory(sdrt_device *dev, size_t *free_bytes, size_t *total_bytes) {
    cpu_ram(free_bytes, total_bytes);
}

static sdrt_buffer_type *cpu_dev_buffer_type(sdrt_device *dev) { return &g_buffer_type; }

static sdrt_stream *cpu_dev_stream_new(sdrt_device *dev, const char *params_json) {
    return cpu_stream_new(dev, params_json, ((cpu_device_ctx *)dev->context)->default_threads);
}

static sdrt_status cpu_dev_stream_open(sdrt_device *dev, const char *params_json, sdrt_stream **out, char *msg,
                                       size_t msg_size) {
    return cpu_stream_open(dev, params_json, ((cpu_device_ctx *)dev->context)->default_threads, out, msg, msg_size);
}

static int cpu_dev_supports_op(sdrt_device *dev, const sdrt_op *op) { return cpu_supports_op(op); }

static const char *cpu_dev_info_json(sdrt_device *dev) { return ((cpu_device_ctx *)dev->context)->info; }

/* CPU memory is host memory: staging buffers are ordinary buffers. */
static sdrt_buffer_type *cpu_dev_host_buffer_type(sdrt_device *dev) { return &g_buffer_type; }

static const sdrt_device_iface g_cpu_device_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_device_iface, stream_open),
    .host_buffer_type = cpu_dev_host_buffer_type,
    /* reset absent: nothing on a CPU can be lost and re-initialised. */
    .name = cpu_dev_name,
    .description = cpu_dev_description,
    .type = cpu_dev_type,
    .memory = cpu_dev_memory,
    .buffer_type = cpu_dev_buffer_type,
    .stream_new = cpu_dev_stream_new,
    .supports_op = cpu_dev_supports_op,
    .info_json = cpu_dev_info_json,
    .stream_open = cpu_dev_stream_open,
};

/* ---- family ------------------------------------------------------------------ */

static const char *cpu_reg_name(sdrt_backend_reg *reg) { return "cpu"; }
static size_t cpu_reg_device_count(sdrt_backend_reg *reg) { return 1; }
static sdrt_device *cpu_reg_device_get(sdrt_backend_reg *reg, size_t i) { return i == 0 ? &g_device : NULL; }
static void cpu_reg_unload(sdrt_backend_reg *reg) {}

static const sdrt_backend_reg_iface g_cpu_reg_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_backend_reg_iface, unload),
    .name = cpu_reg_name,
    .device_count = cpu_reg_device_count,
    .device_get = cpu_reg_device_get,
    .unload = cpu_reg_unload,
};

/* Static objects, so repeated entry calls return the same family; the
 * config's "threads" (if any) sets the default stream size. */
SDRT_EXPORT sdrt_backend_reg *sdrt_backend_entry(const sdrt_host_api *host_api, const char *config_json) {
    cpu_device_ctx *c = &g_dev_ctx;
    cpu_log_set(host_api);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    c->cores = online > 0 ? (int)online : 1;
    c->default_threads = cpu_json_threads(config_json);
    if (c->default_threads <= 0) c->default_threads = c->cores;
    cpu_read_model(c->description, sizeof c->description);
    cpu_build_info(c);
    g_buffer_type = (sdrt_buffer_type){.iface = &cpu_buffer_type_iface, .context = NULL, .device = &g_device};
    g_device = (sdrt_device){.iface = &g_cpu_device_iface, .context = c, .reg = &g_reg};
    g_reg = (sdrt_backend_reg){.iface = &g_cpu_reg_iface, .context = NULL, .abi_major = SDRT_ABI_MAJOR,
                               .abi_minor = SDRT_ABI_MINOR};
    if (host_api && host_api->log)
        host_api->log(NULL, SDRT_LOG_INFO, "cpu backend: %s, %d threads, gemm %s", c->description,
                      c->default_threads, cpu_kernel_best()->name);
    return &g_reg;
}
