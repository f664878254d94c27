/* vk_family.c - the "vulkan" backend family: opens the loader at run time,
 * makes one instance, lists every physical device (loader order, so
 * "vulkan:N" is the Nth device the device plugin's probe saw) and exports
 * the entry. Config (the device plugin's "backends": {"vulkan": {...}}):
 *   cache_dir     pipeline cache folder (default $XDG_CACHE_HOME/sdrt, else
 *                 ~/.cache/sdrt)
 *   memory_limit  bytes a device may allocate (0 = its memory); allocations
 *                 past it fail as out of memory (tests force OOM with it)
 *   enabled       false: the entry returns NULL without opening the loader
 *                 (keeps the driver stack out of the host process)
 *   gemm          "auto" (shared-memory tiles on GPUs, direct loads on
 *                 CPU-type devices), "tiled" or "direct"; the environment
 *                 variable SDRT_VULKAN_GEMM overrides it (tests run the
 *                 GPU path on lavapipe that way)
 *   subgroups     "auto" (the subgroup variants of the GEMM and attention
 *                 kernels wherever the device's subgroup properties allow
 *                 them, vk_select.h), "on" (forced: a device that cannot run
 *                 them fails to initialise, naming what it lacks) or "off";
 *                 the environment variable SDRT_VULKAN_SUBGROUPS overrides it
 *   precision     what a stream's "precision": "auto" means: "f16"
 *                 (default), "f32" or "bf16" (vk_precision.c)
 */
#define _POSIX_C_SOURCE 200809L
#include "vk_internal.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vk_family g_fam;
static int g_loaded;
/* The instance outlives an unload: destroying it makes the loader unload
 * the drivers, which leaves their never-freed start-up allocations with no
 * module to name (LeakSanitizer reports them as ours) and buys nothing,
 * since Mesa and the loader stay mapped anyway. A later entry reuses it. */
static VkInstance g_inst;
static vkl_table g_fn;
static int g_api13;

void vk_log(vk_family *f, sdrt_log_level lvl, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (f && f->host && f->host->log) f->host->log(NULL, lvl, "%s", msg);
    else fprintf(stderr, "vulkan: %s\n", msg);
}

static int vk_parse_fields(vk_family *f, const char *json, char *why, size_t whylen);

/* "auto" / "on" / "off" -> VK_SG_*, -1 for anything else. */
static int vk_sg_mode(const char *v) {
    return strcmp(v, "auto") == 0 ? VK_SG_AUTO : strcmp(v, "on") == 0 ? VK_SG_ON : strcmp(v, "off") == 0 ? VK_SG_OFF : -1;
}

/* Returns 0, -1 on a bad config, 1 when the config disables the family. */
static int vk_parse_config(vk_family *f, const char *json, char *why, size_t whylen) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(f->cache_dir, sizeof f->cache_dir, "%s/sdrt", xdg);
    else if (home && *home) snprintf(f->cache_dir, sizeof f->cache_dir, "%s/.cache/sdrt", home);
    else f->cache_dir[0] = 0;
    f->limit = 0;
    f->gemm = 0;
    f->subgroups = VK_SG_AUTO;
    f->precision = SDRT_PRECISION_F16;
    const char *env = getenv("SDRT_VULKAN_GEMM");
    int env_gemm = !env ? -1 : strcmp(env, "tiled") == 0 ? 1 : strcmp(env, "direct") == 0 ? 2 : 0;
    const char *esg = getenv("SDRT_VULKAN_SUBGROUPS");
    int env_sg = !esg || !*esg ? -1 : vk_sg_mode(esg);
    int rc = vk_parse_fields(f, json, why, whylen);
    if (env_gemm >= 0) f->gemm = env_gemm;
    if (esg && *esg && env_sg < 0) {
        snprintf(why, whylen, "SDRT_VULKAN_SUBGROUPS: expected \"auto\", \"on\" or \"off\", not \"%s\"", esg);
        return -1;
    }
    if (env_sg >= 0) f->subgroups = env_sg;
    return rc;
}

static int vk_parse_fields(vk_family *f, const char *json, char *why, size_t whylen) {
    if (!json || !*json) return 0;
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        snprintf(why, whylen, "config: expected a JSON object");
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(root, "cache_dir");
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(root, "memory_limit");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(root, "enabled");
    const cJSON *gemm = cJSON_GetObjectItemCaseSensitive(root, "gemm");
    if (gemm && (!cJSON_IsString(gemm) || (strcmp(gemm->valuestring, "auto") != 0 &&
                                           strcmp(gemm->valuestring, "tiled") != 0 &&
                                           strcmp(gemm->valuestring, "direct") != 0))) {
        snprintf(why, whylen, "gemm: expected \"auto\", \"tiled\" or \"direct\"");
        cJSON_Delete(root);
        return -1;
    }
    if (gemm) f->gemm = gemm->valuestring[0] == 't' ? 1 : gemm->valuestring[0] == 'd' ? 2 : 0;
    const cJSON *sg = cJSON_GetObjectItemCaseSensitive(root, "subgroups");
    if (sg && (!cJSON_IsString(sg) || vk_sg_mode(sg->valuestring) < 0)) {
        snprintf(why, whylen, "subgroups: expected \"auto\", \"on\" or \"off\"");
        cJSON_Delete(root);
        return -1;
    }
    if (sg) f->subgroups = vk_sg_mode(sg->valuestring);
    int rc = vk_precision_config(f, root, why, whylen);
    if (en && !cJSON_IsBool(en)) {
        snprintf(why, whylen, "enabled: expected true or false");
        rc = -1;
    } else if (cJSON_IsFalse(en)) {
        snprintf(why, whylen, "disabled by its config (\"enabled\": false)");
        rc = 1;
    }
    if (dir && !cJSON_IsString(dir)) {
        snprintf(why, whylen, "cache_dir: expected a string (\"\" disables the pipeline cache)");
        rc = -1;
    } else if (dir) {
        snprintf(f->cache_dir, sizeof f->cache_dir, "%s", dir->valuestring);
    }
    if (lim && (!cJSON_IsNumber(lim) || lim->valuedouble < 0)) {
        snprintf(why, whylen, "memory_limit: expected a byte count >= 0");
        rc = -1;
    } else if (lim) {
        f->limit = (uint64_t)lim->valuedouble;
    }
    cJSON_Delete(root);
    return rc;
}

static int vk_make_instance(vk_family *f, char *why, size_t whylen) {
    if (g_inst) {
        f->inst = g_inst;
        f->fn = g_fn;
        f->api13 = g_api13;
        return 0;
    }
    uint32_t ver = VK_API_VERSION_1_0;
    if (f->fn.vkEnumerateInstanceVersion) f->fn.vkEnumerateInstanceVersion(&ver);
    if (ver < VK_API_VERSION_1_1) {
        snprintf(why, whylen, "the Vulkan loader is 1.0; 1.1 is needed");
        return -1;
    }
    uint32_t want = ver >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_1;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "sdrt",
                             .pEngineName = "sdrt", .apiVersion = want};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult r = f->fn.vkCreateInstance(&ci, NULL, &f->inst);
    if (r != VK_SUCCESS) {
        snprintf(why, whylen, "vkCreateInstance failed (VkResult %d)", (int)r);
        return -1;
    }
    f->api13 = want >= VK_API_VERSION_1_3;
    if (vkl_load_instance(&f->fn, f->inst, why, whylen) != 0) {
        PFN_vkDestroyInstance destroy =
            (PFN_vkDestroyInstance)f->fn.vkGetInstanceProcAddr(f->inst, "vkDestroyInstance");
        if (destroy) destroy(f->inst, NULL);
        f->inst = NULL;
        return -1;
    }
    g_inst = f->inst;
    g_fn = f->fn;
    g_api13 = f->api13;
    return 0;
}

/* ---- family iface ---------------------------------------------------------- */

static const char *vk_reg_name(sdrt_backend_reg *reg) { return "vulkan"; }

static size_t vk_reg_device_count(sdrt_backend_reg *reg) { return (size_t)((vk_family *)reg->context)->ndev; }

static sdrt_device *vk_reg_device_get(sdrt_backend_reg *reg, size_t i) {
    vk_family *f = reg->context;
    return i < (size_t)f->ndev ? &f->devs[i].sd : NULL;
}

static void vk_family_release(vk_family *f) {
    for (int i = 0; i < f->ndev; i++) {
        vk_device_fini(&f->devs[i]);
        pthread_mutex_destroy(&f->devs[i].lock);
    }
    free(f->devs);
    f->devs = NULL;
    f->ndev = 0;
    f->inst = NULL; /* g_inst stays: see there */
    vkl_close();
    g_loaded = 0;
}

static void vk_reg_unload(sdrt_backend_reg *reg) { vk_family_release(reg->context); }

static const sdrt_backend_reg_iface g_vk_reg_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_backend_reg_iface, unload),
    .name = vk_reg_name,
    .device_count = vk_reg_device_count,
    .device_get = vk_reg_device_get,
    .unload = vk_reg_unload,
};

/* Every physical device that initialises; ones that fail are logged and
 * left out only when they are the last (the index must keep matching the
 * probe's, so a failing device in the middle keeps its slot and fails). */
static int vk_open_devices(vk_family *f, char *why, size_t whylen) {
    uint32_t n = 0;
    if (f->fn.vkEnumeratePhysicalDevices(f->inst, &n, NULL) != VK_SUCCESS || n == 0) {
        snprintf(why, whylen, "no Vulkan physical device");
        return -1;
    }
    VkPhysicalDevice *pd = calloc(n, sizeof *pd);
    f->devs = calloc(n, sizeof *f->devs);
    if (!pd || !f->devs || f->fn.vkEnumeratePhysicalDevices(f->inst, &n, pd) != VK_SUCCESS) {
        free(pd);
        snprintf(why, whylen, "cannot enumerate Vulkan devices");
        return -1;
    }
    int ok = 0;
    for (uint32_t i = 0; i < n; i++) {
        vk_device *d = &f->devs[i];
        d->fam = f;
        d->index = (int)i;
        d->phys = pd[i];
        pthread_mutex_init(&d->lock, NULL);
        f->ndev = (int)i + 1;
        char dwhy[256] = "";
        if (vk_device_init(d, dwhy, sizeof dwhy) != 0) {
            vk_log(f, SDRT_LOG_WARN, "vulkan:%u (%s) unusable: %s", i, d->props.deviceName, dwhy);
            d->lost = 1;
            continue;
        }
        ok++;
        vk_log(f, SDRT_LOG_INFO, "vulkan:%u: %s (%s), block %llu MiB, gemm %s%s, attention%s, pipeline cache %s", i,
               d->desc,
               d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ? "discrete" :
               d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ? "integrated" :
               d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ? "cpu" : "other",
               (unsigned long long)(d->block_size >> 20), d->cpu_like ? "direct" : "tiled",
               d->choice.sg_gemm ? "+subgroups" : "", d->choice.sg_attn ? "+subgroups" : "",
               d->cache_path[0] ? d->cache_path : "off");
    }
    free(pd);
    /* trailing unusable devices can go without shifting anyone's index */
    while (f->ndev > 0 && f->devs[f->ndev - 1].lost) {
        pthread_mutex_destroy(&f->devs[f->ndev - 1].lock);
        f->ndev--;
    }
    if (!ok) {
        snprintf(why, whylen, "no Vulkan device could be initialised");
        return -1;
    }
    return 0;
}

SDRT_EXPORT sdrt_backend_reg *sdrt_backend_entry(const sdrt_host_api *host_api, const char *config_json) {
    vk_family *f = &g_fam;
    if (g_loaded) return &f->reg;
    memset(f, 0, sizeof *f);
    f->host = host_api;
    char why[512] = "";
    if (vk_parse_config(f, config_json, why, sizeof why) != 0 || vkl_open(&f->fn, why, sizeof why) != 0 ||
        vk_make_instance(f, why, sizeof why) != 0 || vk_open_devices(f, why, sizeof why) != 0) {
        vk_log(f, SDRT_LOG_INFO, "vulkan backend unavailable: %s", why);
        vk_family_release(f);
        return NULL;
    }
    f->reg = (sdrt_backend_reg){.iface = &g_vk_reg_iface, .context = f, .abi_major = SDRT_ABI_MAJOR,
                                .abi_minor = SDRT_ABI_MINOR};
    g_loaded = 1;
    return &f->reg;
}
