/* plugin.c - a copyable sdrt plugin. Rename "myplugin" everywhere (this
 * file, plugin.json, CMakeLists.txt), list your message types, and fill in
 * handle(). docs/plugin-guide.md explains each part. */
#include <stdlib.h>
#include <string.h>

#include <sdrt/plugin.h>

/* Per-load state; init creates it, shutdown frees it. */
typedef struct myplugin {
    const sdrt_host_api *api; /* valid until shutdown returns */
    sdrt_host *host;
} myplugin;

/* Dispatch thread, once. config_json is this plugin's "config" object from
 * the deployment (plugins.myplugin.config), "{}" when none: check its
 * fields here and fail with INVALID_ARGUMENT naming the field. */
static sdrt_error *myplugin_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json,
                                 void **instance) {
    myplugin *p = calloc(1, sizeof *p);
    if (!p) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "myplugin: out of memory");
    p->api = api;
    p->host = host;
    *instance = p;
    return NULL;
}

/* Dispatch thread, once, after the last handle returned. */
static void myplugin_shutdown(void *instance) { free(instance); }

static char *copy_for_host(const sdrt_host_api *api, const char *json) {
    size_t n = strlen(json) + 1;
    char *out = api->alloc(n);
    if (out) memcpy(out, json, n);
    return out;
}

/* Worker threads, possibly several at once. req and its strings are
 * borrowed for the call. Success: NULL, *result_json from api->alloc (or
 * NULL for "{}"). Failure: an error from api->error_new, *result_json NULL. */
static sdrt_error *myplugin_handle(void *instance, const sdrt_request *req, char **result_json) {
    myplugin *p = instance;
    *result_json = NULL;
    /* Long work checks this between steps and returns CANCELLED. */
    if (p->api->is_cancelled(req->job))
        return p->api->error_new(SDRT_CANCELLED, NULL, "%s cancelled", req->type);
    if (strcmp(req->type, "myplugin.run") == 0) {
        *result_json = copy_for_host(p->api, "{\"ok\":true}");
        return *result_json ? NULL : p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "myplugin: out of memory");
    }
    return p->api->error_new(SDRT_UNKNOWN_TYPE, NULL, "type: myplugin does not serve '%s'", req->type);
}

static const char *const myplugin_types[] = {"myplugin.run", NULL};

static const sdrt_plugin_vtable myplugin_vtable = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = myplugin_init,
    .shutdown = myplugin_shutdown,
    .handle = myplugin_handle,
    .get_interface = NULL, /* publishes no native interface */
};

static const sdrt_plugin_desc myplugin_desc = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 0, /* the lowest host minor whose features you use */
    .id = "org.example.myplugin",
    .version = "0.1.0",
    .domain = "myplugin",
    .description = "What this plugin does, in one line",
    .message_types = myplugin_types,
    .vtable = &myplugin_vtable,
};

SDRT_PLUGIN_DEFINE(myplugin, myplugin_desc)
