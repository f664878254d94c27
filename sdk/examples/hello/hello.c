/* hello.c - a complete third-party sdrt plugin, built out of tree against
 * the installed SDK (find_package(sdrt)). It serves one message,
 * "hello.greet" {"name": "Ada"} -> {"greeting": "Hello, Ada!"}, reads an
 * optional config {"greeting": "Hi"}, and publishes the interface
 * "org.example.hello/1" (hello.h) so that other plugins can greet natively.
 * docs/plugin-guide.md walks through this file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sdrt/plugin.h>

#include "hello.h"
#include "json_scan.h"

#define HELLO_NAME_MAX 256

/* One per loaded plugin: the instance init hands back to the host. */
typedef struct hello {
    const sdrt_host_api *api; /* valid until shutdown returns */
    sdrt_host *host;
    char greeting[64];
    hello_iface_v1 iface; /* published; lives as long as the instance */
} hello;

/* ---- the native interface ------------------------------------------------ */

static size_t hello_greet(void *self, const char *name, char *out, size_t outlen) {
    const hello *h = self;
    int n = snprintf(out, outlen, "%s, %s!", h->greeting, name);
    return n < 0 ? 0 : (size_t)n;
}

/* ---- init / shutdown ------------------------------------------------------ */

/* config: {"greeting": "Hi"}; absent means "Hello". */
static sdrt_error *read_config(hello *h, const char *config_json) {
    switch (json_scan_string(config_json, "greeting", h->greeting, sizeof h->greeting)) {
    case JSON_SCAN_FOUND: return NULL;
    case JSON_SCAN_MISSING: snprintf(h->greeting, sizeof h->greeting, "Hello"); return NULL;
    case JSON_SCAN_TOO_LONG:
        return h->api->error_new(SDRT_INVALID_ARGUMENT, "{\"field\":\"config.greeting\"}",
                                 "config.greeting: longer than %zu bytes", sizeof h->greeting - 1);
    default:
        return h->api->error_new(SDRT_INVALID_ARGUMENT, "{\"field\":\"config.greeting\"}",
                                 "config.greeting: expected a string");
    }
}

static sdrt_error *hello_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    hello *h = calloc(1, sizeof *h);
    if (!h) return api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "hello: out of memory");
    h->api = api;
    h->host = host;
    sdrt_error *err = read_config(h, config_json);
    if (!err) {
        h->iface = (hello_iface_v1){SDRT_STRUCT_SIZE(hello_iface_v1, greet), h, hello_greet};
        /* ALREADY_EXISTS here means another plugin owns the id: refuse to
         * load rather than serve a half-working plugin. */
        err = api->publish(host, HELLO_IFACE_V1, &h->iface);
    }
    if (err) {
        free(h);
        return err;
    }
    api->log(host, SDRT_LOG_DEBUG, "ready, greeting '%s'", h->greeting);
    *instance = h;
    return NULL;
}

/* The host calls this after every handle returned and drops what we
 * published, so freeing the interface with the instance is safe. */
static void hello_shutdown(void *instance) { free(instance); }

static const void *hello_get_interface(void *instance, const char *id) {
    hello *h = instance;
    return h && strcmp(id, HELLO_IFACE_V1) == 0 ? &h->iface : NULL;
}

/* ---- requests ----------------------------------------------------------- */

static sdrt_error *name_error(const hello *h, json_scan_result r) {
    const char *why = r == JSON_SCAN_MISSING    ? "missing (expected a string, e.g. \"Ada\")"
                      : r == JSON_SCAN_TOO_LONG ? "longer than 255 bytes"
                      : r == JSON_SCAN_NOT_OBJECT ? "not readable: data is not a JSON object"
                                                  : "expected a string";
    return h->api->error_new(SDRT_INVALID_ARGUMENT, "{\"field\":\"data.name\"}", "data.name: %s", why);
}

/* {"greeting":"<text>"} in memory from the host's allocator, which the host
 * frees after sending it. */
static char *greeting_json(const hello *h, const char *text) {
    size_t need = json_scan_quote(text, NULL, 0) + sizeof "{\"greeting\":}";
    char *out = h->api->alloc(need);
    if (!out) return NULL;
    size_t n = (size_t)snprintf(out, need, "{\"greeting\":");
    n += json_scan_quote(text, out + n, need - n);
    snprintf(out + n, need - n, "}");
    return out;
}

static sdrt_error *hello_handle(void *instance, const sdrt_request *req, char **result_json) {
    const hello *h = instance;
    char name[HELLO_NAME_MAX];
    char text[HELLO_NAME_MAX + sizeof h->greeting + 4];
    *result_json = NULL;
    /* Nothing here is long, but honouring an early cancel costs one call. */
    if (h->api->is_cancelled(req->job))
        return h->api->error_new(SDRT_CANCELLED, NULL, "%s cancelled before it started", req->type);
    json_scan_result r = json_scan_string(req->data_json, "name", name, sizeof name);
    if (r != JSON_SCAN_FOUND) return name_error(h, r);
    if (name[0] == '\0') h->api->warn(req->job, "data.name is empty");
    hello_greet((void *)h, name, text, sizeof text);
    *result_json = greeting_json(h, text);
    return *result_json ? NULL : h->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "hello: out of memory");
}

/* ---- descriptor ------------------------------------------------------------ */

static const char *const hello_types[] = {"hello.greet", NULL};

static const sdrt_plugin_vtable hello_vtable = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface),
    .init = hello_init,
    .shutdown = hello_shutdown,
    .handle = hello_handle,
    .get_interface = hello_get_interface,
};

static const sdrt_plugin_desc hello_desc = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable),
    .abi_major = SDRT_ABI_MAJOR,
    .abi_minor = 0, /* uses nothing newer than ABI 1.0 */
    .id = "org.example.hello",
    .version = "1.0.0",
    .domain = "hello",
    .description = "Greets people: the sdrt SDK example plugin",
    .message_types = hello_types,
    .vtable = &hello_vtable,
};

SDRT_PLUGIN_DEFINE(hello, hello_desc)
