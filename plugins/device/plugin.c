/* plugins/device/plugin.c - the device plugin: descriptor, init/shutdown,
 * message dispatch, and the published SDRT_BACKEND_IFACE_ID interface. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/backend.h"
#include "sdrt/plugin.h"

#include "backends.h"
#include "config.h"
#include "inventory.h"
#include "messages.h"

typedef struct dev_plugin {
    const sdrt_host_api *api;
    sdrt_host *host;
    devcfg cfg;
    dev_inventory inv;
    sdrt_backend_iface iface;
    int published;
} dev_plugin;

/* --- the backend interface ------------------------------------------------ */

static size_t iface_reg_count(void *self) { return (size_t)((dev_plugin *)self)->inv.backends.count; }

static sdrt_backend_reg *iface_reg_get(void *self, size_t index) {
    dev_plugin *p = self;
    return index < (size_t)p->inv.backends.count ? p->inv.backends.items[index].reg : NULL;
}

static sdrt_device *iface_default_device(void *self) { return ((dev_plugin *)self)->inv.default_device; }

static void init_iface(dev_plugin *p) {
    p->iface.struct_size = SDRT_STRUCT_SIZE(sdrt_backend_iface, default_device);
    p->iface.self = p;
    p->iface.reg_count = iface_reg_count;
    p->iface.reg_get = iface_reg_get;
    p->iface.default_device = iface_default_device;
}

/* --- init / shutdown ------------------------------------------------------ */

static sdrt_error *dev_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance);

static void probe_all(dev_plugin *p) {
    cpuprobe_run(&p->inv.cpu);
    cudaprobe_run(NULL, &p->inv.cuda);
    vkprobe_run(NULL, &p->inv.vk);
    if (!p->inv.cuda.available) p->api->log(p->host, SDRT_LOG_INFO, "CUDA: %s", p->inv.cuda.reason);
    if (!p->inv.vk.available) p->api->log(p->host, SDRT_LOG_INFO, "Vulkan: %s", p->inv.vk.reason);
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

static sdrt_error *dev_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    char self_dir[4096] = ".", err[512] = "";
    devlib_dir_of((const void *)(uintptr_t)&dev_init, self_dir, sizeof self_dir);
    dev_plugin *p = calloc(1, sizeof *p);
    if (!p) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "device plugin: out of memory");
    p->api = api;
    p->host = host;
    if (devcfg_parse(&p->cfg, config_json, self_dir, err, sizeof err) != 0) {
        free(p);
        return api->error_new(SDRT_INVALID_ARGUMENT, NULL, "device config: %s", err);
    }
    probe_all(p);
    devbackends_load(&p->inv.backends, p->cfg.backends_dir, api, host, &p->cfg);
    devinv_build(&p->inv);
    devinv_choose_default(&p->inv, p->cfg.device, err, sizeof err);
    if (err[0]) api->log(host, SDRT_LOG_WARN, "%s", err);
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

static sdrt_error *dispatch(dev_plugin *p, const char *type, const cJSON *data, char **result_json) {
    sdrt_error *err = NULL;
    if (strcmp(type, "device.list") == 0) return answer(p, devmsg_list(&p->inv), result_json);
    if (strcmp(type, "device.info") == 0) {
        const dev_record *r = requested(p, data, 1, &err);
        return r ? answer(p, devmsg_info(&p->inv, r), result_json) : err;
    }
    if (strcmp(type, "device.memory") == 0) {
        const dev_record *r = requested(p, data, 0, &err);
        return err ? err : answer(p, devmsg_memory(&p->inv, r), result_json);
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
