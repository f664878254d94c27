/* plugins/device/plugin.c - the device plugin: descriptor, init/shutdown,
 * message dispatch, and the published SDRT_BACKEND_IFACE_ID interface.
 *
 * GPUs are probed lazily and out of process (gpu_probe.h): init probes only
 * the CPU unless a GPU backend family is loaded, and the first device.*
 * message runs sdrt-gpu-probe, so an idle host maps no GPU stack at all.
 *
 * The Vulkan family maps its driver into the host when it loads (lavapipe:
 * LLVM, ~50 MB), so it is loaded only where it can serve: at init when the
 * config names a Vulkan device ("vulkan:N", "privateuseone:N"), otherwise
 * after the lazy probe (first device.* message or first use of the
 * published interface) when the probe found a Vulkan GPU, which "auto" then
 * prefers. A CPU-type Vulkan device (lavapipe) alone never loads it under
 * "auto": it would not beat the CPU family. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/backend.h"
#include "sdrt/plugin.h"

#include "backends.h"
#include "config.h"
#include "gpu_probe.h"
#include "inventory.h"
#include "messages.h"

typedef struct dev_plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    devcfg cfg;
    dev_inventory inv;
    sdrt_backend_iface iface;
    int published;
    sdrt_device *default_device; /* chosen at init, what the interface hands out */
    char helper[4096];           /* sdrt-gpu-probe beside this module, "" when unknown */
    pthread_mutex_t probe_lock;  /* serialises the one lazy GPU probe */
    atomic_int probed;           /* set once inv holds the GPU probes; inv is read-only from then on */
    _Atomic int64_t last_allocated; /* iface_device_allocated's last sum */
    int vk_deferred;             /* the Vulkan module exists but waits for the probe */
    char vk_module[4200];
} dev_plugin;

static void ensure_probed(dev_plugin *p);

/* --- the backend interface ------------------------------------------------ */

/* With the Vulkan family deferred, the family set and the default are
 * final only after the probe: every accessor settles them first. */
static size_t iface_reg_count(void *self) {
    dev_plugin *p = self;
    if (p->vk_deferred) ensure_probed(p);
    return (size_t)p->inv.backends.count;
}

static sdrt_backend_reg *iface_reg_get(void *self, size_t index) {
    dev_plugin *p = self;
    if (p->vk_deferred) ensure_probed(p);
    return index < (size_t)p->inv.backends.count ? p->inv.backends.items[index].reg : NULL;
}

static sdrt_device *iface_default_device(void *self) {
    dev_plugin *p = self;
    if (p->vk_deferred) ensure_probed(p);
    return p->default_device;
}

/* For every request's metrics (the host samples it every 10 ms while jobs
 * run): never probes, and while the one lazy probe runs (it holds the
 * lock for a while) the last figure is given instead of waiting. */
static int64_t iface_device_allocated(void *self) {
    dev_plugin *p = self;
    if (pthread_mutex_trylock(&p->probe_lock) != 0) return atomic_load(&p->last_allocated);
    int64_t sum = -1;
    for (int i = 0; i < p->inv.backends.count; i++) {
        /* Every family but the CPU one, whose buffers are the process's own
         * memory (memory_usage_mb); a Vulkan device on the CPU (lavapipe)
         * counts: its buffers are Vulkan memory objects. */
        sdrt_backend_reg *reg = p->inv.backends.items[i].reg;
        if (!reg || strcmp(p->inv.backends.items[i].family, "cpu") == 0) continue;
        size_t n = reg->iface->device_count(reg);
        for (size_t k = 0; k < n; k++) {
            sdrt_device *d = reg->iface->device_get(reg, k);
            if (!d || !SDRT_IFACE_HAS_(d->iface, sdrt_device_iface, allocated_bytes)) continue;
            sum = (sum < 0 ? 0 : sum) + (int64_t)d->iface->allocated_bytes(d);
        }
    }
    pthread_mutex_unlock(&p->probe_lock);
    atomic_store(&p->last_allocated, sum);
    return sum;
}

static void init_iface(dev_plugin *p) {
    p->iface.struct_size = SDRT_STRUCT_SIZE(sdrt_backend_iface, device_allocated_bytes);
    p->iface.self = p;
    p->iface.reg_count = iface_reg_count;
    p->iface.reg_get = iface_reg_get;
    p->iface.default_device = iface_default_device;
    p->iface.device_allocated_bytes = iface_device_allocated;
}

/* --- init / shutdown ------------------------------------------------------ */

static sdrt_error *dev_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance);

static void probe_gpus(dev_plugin *p) {
    gpuprobe_run(p->helper[0] ? p->helper : NULL, GPUPROBE_TIMEOUT_MS, &p->inv.cuda, &p->inv.vk);
    if (!p->inv.cuda.available) p->api->log(p->host, SDRT_LOG_INFO, "CUDA: %s", p->inv.cuda.reason);
    if (!p->inv.vk.available) p->api->log(p->host, SDRT_LOG_INFO, "Vulkan: %s", p->inv.vk.reason);
}

/* The records from the probes so far, and the default device among them. */
static void build_inventory(dev_plugin *p, int warn) {
    char err[512] = "";
    devinv_build(&p->inv);
    devinv_choose_default(&p->inv, p->cfg.device, err, sizeof err);
    if (warn && err[0]) p->api->log(p->host, SDRT_LOG_WARN, "%s", err);
}

/* A loaded GPU family pairs its devices with probe records, and "auto" may
 * choose one of them, so the probe cannot wait; with only the CPU family
 * the default is the same with or without it. */
static int gpu_family_loaded(const devbackends *b) {
    for (int i = 0; i < b->count; i++)
        if (strcmp(b->items[i].family, "cpu") != 0) return 1;
    return 0;
}

static int vulkan_named(const devcfg *cfg) {
    return strncmp(cfg->device, "vulkan:", 7) == 0 || strncmp(cfg->device, "privateuseone:", 14) == 0;
}

static int probe_found_vulkan_gpu(const vkprobe_report *vk) {
    for (int i = 0; vk->available && i < vk->count; i++)
        if (strcmp(vk->dev[i].type, "discrete") == 0 || strcmp(vk->dev[i].type, "integrated") == 0) return 1;
    return 0;
}

/* Probes the GPUs once, on the first device.* message; every later call
 * returns at once and reads an inventory nobody writes any more. */
static void ensure_probed(dev_plugin *p) {
    if (atomic_load_explicit(&p->probed, memory_order_acquire)) return;
    pthread_mutex_lock(&p->probe_lock);
    if (!atomic_load_explicit(&p->probed, memory_order_relaxed)) {
        probe_gpus(p);
        int vk_loaded = p->vk_deferred && probe_found_vulkan_gpu(&p->inv.vk) &&
                        devbackends_load_file(&p->inv.backends, p->vk_module, p->api, p->host, &p->cfg) == 0;
        build_inventory(p, 0); /* the default, and its warning, are init's */
        if (vk_loaded) p->default_device = p->inv.default_device; /* "auto" may now pick a Vulkan GPU */
        atomic_store_explicit(&p->probed, 1, memory_order_release);
    }
    pthread_mutex_unlock(&p->probe_lock);
}

static void publish(dev_plugin *p) {
    sdrt_error *e = p->api->publish(p->host, SDRT_BACKEND_IFACE_ID, &p->iface);
    if (e) {
        /* device.* messages still work; only native compute sharing is lost */
        p->api->log(p->host, SDRT_LOG_WARN, "cannot publish %s: %s", SDRT_BACKEND_IFACE_ID, e->message);
        p->api->error_free(e);
        return;
    }
    p->published = 1;
}

/* The host config's top-level "device" (settings), into buf; NULL when none. */
static const char *host_device(const sdrt_host_api *api, sdrt_host *host, char *buf, size_t n) {
    const char *settings = SDRT_HAS_MEMBER(api, sdrt_host_api, settings_json) && api->settings_json
                               ? api->settings_json(host) : NULL;
    cJSON *root = settings ? cJSON_Parse(settings) : NULL;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "device");
    const char *out = NULL;
    if (cJSON_IsString(d)) {
        snprintf(buf, n, "%s", d->valuestring);
        out = buf;
    }
    cJSON_Delete(root);
    return out;
}

static sdrt_error *dev_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    char self_dir[4096] = ".", err[512] = "", hdev[64];
    const void *self = (const void *)(uintptr_t)&dev_init;
    devlib_dir_of(self, self_dir, sizeof self_dir);
    dev_plugin *p = calloc(1, sizeof *p);
    if (!p) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "device plugin: out of memory");
    p->api = api;
    p->host = host;
    if (devcfg_parse(&p->cfg, config_json, self_dir, err, sizeof err) != 0 ||
        devcfg_host_device(&p->cfg, host_device(api, host, hdev, sizeof hdev), err, sizeof err) != 0) {
        devcfg_free(&p->cfg);
        free(p);
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "device config: %s", err);
    }
    if (p->cfg.host_device[0] && strcmp(p->cfg.device_source, "config") == 0 &&
        strcmp(p->cfg.host_device, p->cfg.device) != 0)
        api->log(host, SDRT_LOG_WARN,
                 "device: plugins.device.config.device '%s' overrides the top-level device '%s' (the plugin's key wins)",
                 p->cfg.device, p->cfg.host_device);
    if (gpuprobe_helper_beside(self, p->helper, sizeof p->helper) != 0) p->helper[0] = 0;
    pthread_mutex_init(&p->probe_lock, NULL);
    atomic_init(&p->probed, 0);
    atomic_init(&p->last_allocated, -1);
    cpuprobe_run(&p->inv.cpu);
    p->vk_deferred = !vulkan_named(&p->cfg) && devbackends_module_path(p->cfg.backends_dir, "vulkan", p->vk_module,
                                                                        sizeof p->vk_module) == 0;
    devbackends_load_except(&p->inv.backends, p->cfg.backends_dir, api, host, &p->cfg,
                            p->vk_deferred ? "vulkan" : NULL);
    for (int i = 0; i < p->cfg.extra_count; i++)
        devbackends_load_file(&p->inv.backends, p->cfg.extra_backends[i], api, host, &p->cfg);
    if (gpu_family_loaded(&p->inv.backends)) {
        probe_gpus(p);
        atomic_store(&p->probed, 1);
    }
    build_inventory(p, 1);
    p->default_device = p->inv.default_device;
    init_iface(p);
    publish(p);
    *instance = p;
    return NULL;
}

static void dev_shutdown(void *instance) {
    dev_plugin *p = instance;
    if (!p) return;
    devbackends_unload(&p->inv.backends);
    devcfg_free(&p->cfg);
    pthread_mutex_destroy(&p->probe_lock);
    free(p);
}

/* --- messages ------------------------------------------------------------- */

static void known_ids(const dev_inventory *inv, char *out, size_t n) {
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < inv->count && o < n; i++) {
        int w = snprintf(out + o, n - o, "%s%s", i ? ", " : "", inv->rec[i].id);
        o += w > 0 ? (size_t)w : 0;
    }
}

/* The record named by data.device; NULL with *err set when the field is
 * malformed or names no device. */
static const dev_record *requested(dev_plugin *p, const cJSON *data, int required, sdrt_error **err) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(data, "device");
    if (!d && !required) return NULL;
    if (!d) {
        *err = p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "device: missing (e.g. \"cpu:0\")");
        return NULL;
    }
    if (!cJSON_IsString(d)) {
        *err = p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "device: expected a string such as \"cpu:0\"");
        return NULL;
    }
    const dev_record *r = devinv_find(&p->inv, d->valuestring);
    if (!r) {
        char known[512];
        known_ids(&p->inv, known, sizeof known);
        *err = p->api->error_new(SDRT_NOT_FOUND, NULL, "device: no device \"%s\" (known: %s)", d->valuestring, known);
    }
    return r;
}

static sdrt_error *answer(dev_plugin *p, cJSON *result, char **result_json) {
    char *text = result ? cJSON_PrintUnformatted(result) : NULL;
    cJSON_Delete(result);
    if (!text) return p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "device: out of memory building the answer");
    size_t n = strlen(text) + 1;
    *result_json = p->api->alloc(n);
    if (*result_json) memcpy(*result_json, text, n);
    free(text);
    return *result_json ? NULL : p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "device: out of memory");
}

/* device.memory re-reads CUDA free memory through the helper (NVML or a
 * CUDA context would load the driver into the host) into a copy: the
 * inventory stays read-only. A failed re-read reports null, not a guess. */
static sdrt_error *memory(dev_plugin *p, const dev_record *only, char **result_json) {
    cudaprobe_report cuda = p->inv.cuda;
    if (!only || strcmp(only->backend, "cuda") == 0)
        gpuprobe_cuda_memory(p->helper[0] ? p->helper : NULL, GPUPROBE_TIMEOUT_MS, &cuda);
    return answer(p, devmsg_memory(&p->inv, only, &cuda), result_json);
}

static sdrt_error *dispatch(dev_plugin *p, const char *type, const cJSON *data, char **result_json) {
    sdrt_error *err = NULL;
    if (strncmp(type, "device.", 7) == 0) ensure_probed(p);
    if (strcmp(type, "device.list") == 0) return answer(p, devmsg_list(&p->inv), result_json);
    if (strcmp(type, "device.info") == 0) {
        const dev_record *r = requested(p, data, 1, &err);
        return r ? answer(p, devmsg_info(&p->inv, r), result_json) : err;
    }
    if (strcmp(type, "device.memory") == 0) {
        const dev_record *r = requested(p, data, 0, &err);
        return err ? err : memory(p, r, result_json);
    }
    return p->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "%s: not a device message", type);
}

static sdrt_error *dev_handle(void *instance, const sdrt_request *req, char **result_json) {
    dev_plugin *p = instance;
    *result_json = NULL;
    cJSON *data = cJSON_Parse(req->data_json && *req->data_json ? req->data_json : "{}");
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return p->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: expected a JSON object");
    }
    sdrt_error *err = dispatch(p, req->type, data, result_json);
    cJSON_Delete(data);
    return err;
}

static const void *dev_get_interface(void *instance, const char *id) {
    dev_plugin *p = instance;
    return (p && strcmp(id, SDRT_BACKEND_IFACE_ID) == 0) ? &p->iface : NULL;
}

/* --- descriptor ----------------------------------------------------------- */

static const char *const DEVICE_TYPES[] = {"device.list", "device.info", "device.memory", NULL};

static const sdrt_plugin_vtable DEVICE_VTABLE = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    dev_init,
    dev_shutdown,
    dev_handle,
    dev_get_interface,
};

static const sdrt_plugin_desc DEVICE_DESC = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    SDRT_ABI_MAJOR,
    0,
    "org.sdrt.device",
    "0.1.0",
    "device",
    "Devices (CPU, CUDA, Vulkan), their memory, and the compute backends",
    DEVICE_TYPES,
    &DEVICE_VTABLE,
};

SDRT_PLUGIN_DEFINE(device, DEVICE_DESC)
