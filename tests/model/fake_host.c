/* tests/model/fake_host.c - host services for the plugin tests that run a
 * plugin without the host (model, lora): see fake_host.h. */
#define _GNU_SOURCE
#include "fake_host.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fake_settings = "{}";
const void *fake_published;
int fake_cancel;
int fake_n_warnings;

#define MAX_IFACES 8
static struct { char id[64]; const void *iface; } registry[MAX_IFACES];
static int n_registry;

void fake_host_reset(void) {
    n_registry = 0;
    fake_published = NULL;
    fake_cancel = 0;
    fake_n_warnings = 0;
}

static void f_log(sdrt_host *h, sdrt_log_level l, const char *fmt, ...) {
    (void)h, (void)l;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static sdrt_error *f_error_new(sdrt_status code, const char *data, const char *fmt, ...) {
    sdrt_error *e = calloc(1, sizeof *e);
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    e->struct_size = sizeof *e;
    e->code = code;
    e->message = msg ? msg : strdup("?");
    e->data_json = data ? strdup(data) : NULL;
    return e;
}

static void f_error_free(sdrt_error *e) {
    if (!e) return;
    free((char *)e->message);
    free((char *)e->data_json);
    free(e);
}

/* A plugin init'ed again (tests re-run init without a host shutdown)
 * replaces its earlier entry. */
static sdrt_error *f_publish(sdrt_host *h, const char *id, const void *iface) {
    (void)h;
    int i = 0;
    while (i < n_registry && strcmp(registry[i].id, id) != 0) i++;
    if (i == MAX_IFACES) return f_error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "registry full");
    if (i == n_registry) n_registry++;
    snprintf(registry[i].id, sizeof registry[i].id, "%s", id);
    registry[i].iface = iface;
    fake_published = iface;
    return NULL;
}

static const void *f_acquire(sdrt_host *h, const char *id, sdrt_error **err) {
    (void)h;
    for (int i = n_registry - 1; i >= 0; i--)
        if (!strcmp(registry[i].id, id)) return registry[i].iface;
    if (err) *err = f_error_new(SDRT_NOT_FOUND, NULL, "%s: not published", id);
    return NULL;
}

static void f_release(sdrt_host *h, const char *id) { (void)h, (void)id; }
static const char *f_settings(sdrt_host *h) { (void)h; return fake_settings; }
static int f_cancelled(sdrt_job *j) { (void)j; return fake_cancel; }
static void f_warn(sdrt_job *j, const char *m) {
    (void)j, (void)m;
    fake_n_warnings++;
}

/* Like the host: canonical path inside one of model_roots. */
static char *f_resolve(sdrt_host *h, const char *kind, const char *path, sdrt_error **err) {
    (void)h, (void)kind;
    char *real = realpath(path, NULL);
    if (!real) {
        *err = f_error_new(SDRT_INVALID_ARGUMENT, NULL, "%s: cannot resolve", path);
        return NULL;
    }
    cJSON *s = cJSON_Parse(fake_settings);
    const cJSON *roots = cJSON_GetObjectItemCaseSensitive(s, "model_roots");
    int ok = 0;
    for (const cJSON *r = roots ? roots->child : NULL; r && !ok; r = r->next) {
        char *rr = realpath(r->valuestring, NULL);
        size_t n = rr ? strlen(rr) : 0;
        ok = rr && strncmp(real, rr, n) == 0 && (real[n] == '/' || real[n] == 0);
        free(rr);
    }
    cJSON_Delete(s);
    if (!ok) {
        *err = f_error_new(SDRT_PERMISSION_DENIED, NULL, "%s: outside the model roots", path);
        free(real);
        return NULL;
    }
    return real;
}

const sdrt_host_api *fake_host_api(void) {
    static sdrt_host_api api;
    api.struct_size = sizeof api;
    api.abi_major = SDRT_ABI_MAJOR;
    api.abi_minor = SDRT_ABI_MINOR;
    api.log = f_log;
    api.error_new = f_error_new;
    api.error_free = f_error_free;
    api.publish = f_publish;
    api.acquire = f_acquire;
    api.release = f_release;
    api.alloc = malloc;
    api.free = free;
    api.settings_json = f_settings;
    api.resolve_path = f_resolve;
    api.is_cancelled = f_cancelled;
    api.warn = f_warn;
    return &api;
}
