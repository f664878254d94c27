/* strict_backend.c - the "strict" test family: one device, its buffer
 * types, the counters hook and the exported entry. See strict.h. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "strict.h"

strict_device g_strict;
sdrt_device g_strict_dev;
static sdrt_buffer_type g_strict_bt, g_strict_host_bt;
static sdrt_backend_reg g_strict_reg;

/* ---- counters hook ------------------------------------------------------------ */

SDRT_EXPORT void sdrt_strict_get_counters(sdrt_strict_counters *out) {
    out->h2d_bytes = atomic_load(&g_strict.h2d);
    out->d2h_bytes = atomic_load(&g_strict.d2h);
    out->d2d_bytes = atomic_load(&g_strict.d2d);
    out->live_bytes = atomic_load(&g_strict.live);
    out->peak_bytes = atomic_load(&g_strict.peak);
    out->allocs = atomic_load(&g_strict.allocs);
}

SDRT_EXPORT void sdrt_strict_reset_counters(void) {
    atomic_store(&g_strict.h2d, 0);
    atomic_store(&g_strict.d2h, 0);
    atomic_store(&g_strict.d2d, 0);
    atomic_store(&g_strict.allocs, 0);
    atomic_store(&g_strict.peak, atomic_load(&g_strict.live));
}

/* ---- device -------------------------------------------------------------------- */

static const char *strict_name(sdrt_device *dev) { return "STRICT0"; }
static const char *strict_description(sdrt_device *dev) {
    return "strict test device (no host-visible memory; CPU kernels behind explicit copies)";
}
static sdrt_device_type strict_type(sdrt_device *dev) { return SDRT_DEVICE_GPU; }

static void strict_memory(sdrt_device *dev, size_t *free_bytes, size_t *total_bytes) {
    size_t total = g_strict.memory_bytes;
    if (!total) {
        long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
        total = pages > 0 && ps > 0 ? (size_t)pages * (size_t)ps : 0;
    }
    size_t live = (size_t)atomic_load(&g_strict.live);
    if (free_bytes) *free_bytes = live < total ? total - live : 0;
    if (total_bytes) *total_bytes = total;
}

static uint64_t strict_allocated(sdrt_device *dev) { return atomic_load(&g_strict.live); }

static sdrt_buffer_type *strict_buffer_type(sdrt_device *dev) { return &g_strict_bt; }

static sdrt_stream *strict_dev_stream_new(sdrt_device *dev, const char *params_json) {
    return strict_stream_new(dev, params_json);
}

/* What the CPU kernels accept, once every operand is in this device's
 * buffers (host memory and other devices' buffers are refused). */
static int strict_supports_op(sdrt_device *dev, const sdrt_op *op) {
    sdrt_op hop;
    sdrt_tensor hosts[SDRT_OP_MAX_SRC + 1];
    return strict_translate_op(op, &hop, hosts) == SDRT_OK && cpu_supports_op(&hop);
}

/* A snapshot of the counters; one of 16 rotating texts, so a pointer stays
 * valid across the next 15 calls. */
static const char *strict_info_json(sdrt_device *dev) {
    static char texts[16][320];
    static _Atomic unsigned next;
    char *t = texts[atomic_fetch_add(&next, 1) % 16];
    sdrt_strict_counters c;
    sdrt_strict_get_counters(&c);
    snprintf(t, sizeof texts[0],
             "{\"strict\":true,\"h2d_bytes\":%llu,\"d2h_bytes\":%llu,\"d2d_bytes\":%llu,\"live_bytes\":%llu,"
             "\"peak_bytes\":%llu,\"allocs\":%llu}",
             (unsigned long long)c.h2d_bytes, (unsigned long long)c.d2h_bytes, (unsigned long long)c.d2d_bytes,
             (unsigned long long)c.live_bytes, (unsigned long long)c.peak_bytes, (unsigned long long)c.allocs);
    return t;
}

/* Staging memory: the CPU backend's host buffers (is_host). */
static sdrt_buffer_type *strict_host_buffer_type(sdrt_device *dev) { return &g_strict_host_bt; }

static const sdrt_device_iface g_strict_device_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_device_iface, allocated_bytes),
    .name = strict_name,
    .description = strict_description,
    .type = strict_type,
    .memory = strict_memory,
    .buffer_type = strict_buffer_type,
    .stream_new = strict_dev_stream_new,
    .supports_op = strict_supports_op,
    .info_json = strict_info_json,
    .host_buffer_type = strict_host_buffer_type,
    .allocated_bytes = strict_allocated,
};

/* ---- family ---------------------------------------------------------------------- */

static const char *strict_reg_name(sdrt_backend_reg *reg) { return "strict"; }
static size_t strict_reg_device_count(sdrt_backend_reg *reg) { return 1; }
static sdrt_device *strict_reg_device_get(sdrt_backend_reg *reg, size_t i) { return i == 0 ? &g_strict_dev : NULL; }
static void strict_reg_unload(sdrt_backend_reg *reg) {}

static const sdrt_backend_reg_iface g_strict_reg_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_backend_reg_iface, unload),
    .name = strict_reg_name,
    .device_count = strict_reg_device_count,
    .device_get = strict_reg_device_get,
    .unload = strict_reg_unload,
};

/* A non-negative whole number of `key` in the config, else 0. */
static size_t strict_cfg_size(const cJSON *root, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (size_t)v->valuedouble : 0;
}

SDRT_EXPORT sdrt_backend_reg *sdrt_backend_entry(const sdrt_host_api *host_api, const char *config_json) {
    cJSON *root = config_json ? cJSON_Parse(config_json) : NULL;
    g_strict.threads = cpu_json_threads(config_json);
    if (g_strict.threads <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        g_strict.threads = online > 0 ? (int)online : 1;
    }
    g_strict.memory_bytes = strict_cfg_size(root, "memory_bytes");
    g_strict.max_buffer_bytes = strict_cfg_size(root, "max_buffer_bytes");
    const cJSON *poison = cJSON_GetObjectItemCaseSensitive(root, "poison");
    g_strict.poison = !cJSON_IsFalse(poison);
    cJSON_Delete(root);
    g_strict_bt = (sdrt_buffer_type){.iface = &strict_buffer_type_iface, .device = &g_strict_dev};
    g_strict_host_bt = (sdrt_buffer_type){.iface = &cpu_buffer_type_iface, .device = &g_strict_dev};
    g_strict_dev = (sdrt_device){.iface = &g_strict_device_iface, .context = &g_strict, .reg = &g_strict_reg};
    g_strict_reg = (sdrt_backend_reg){.iface = &g_strict_reg_iface, .abi_major = SDRT_ABI_MAJOR,
                                      .abi_minor = SDRT_ABI_MINOR};
    if (host_api && host_api->log)
        host_api->log(NULL, SDRT_LOG_INFO,
                      "strict backend: %d threads, memory %zu, max buffer %zu (0 = no limit), poison %s",
                      g_strict.threads, g_strict.memory_bytes, g_strict.max_buffer_bytes, g_strict.poison ? "on" : "off");
    return &g_strict_reg;
}
