/* tests/plugins/echo.c - a well-behaved test plugin exercising every host
 * service a request can use: results, cancellation, progress, warnings and
 * errors with data. Built outside the default plugin folder. */
#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>

#include "sdrt/plugin.h"

static const sdrt_host_api *g_api;

static const char *status_names[] = {
#define ECHO_STATUS_NAME_(name, value, rpc, msg) [value] = #name,
    SDRT_STATUS_LIST(ECHO_STATUS_NAME_)
#undef ECHO_STATUS_NAME_
};

static sdrt_error *echo_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json, void **instance) {
    g_api = api;
    *instance = NULL;
    return NULL;
}

static void echo_shutdown(void *instance) {}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double number_or(const cJSON *data, const char *key, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static char *dup_for_host(const char *s) {
    size_t n = strlen(s) + 1;
    char *out = g_api->alloc(n);
    if (out) memcpy(out, s, n);
    return out;
}

static char *print_for_host(const cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    char *out = s ? dup_for_host(s) : NULL;
    cJSON_free(s);
    return out;
}

/* Sleeps in 10 ms slices so that a cancel is seen within one slice, and
 * honours host.pause between slices. */
static sdrt_error *echo_slow(const sdrt_request *req, const cJSON *data) {
    double seconds = number_or(data, "seconds", 0);
    for (double t = 0; t < seconds; t += 0.01) {
        if (g_api->wait_if_paused(req->job) || g_api->is_cancelled(req->job))
            return g_api->error_new(SDRT_CANCELLED, NULL, "echo.slow cancelled after %.2f s", t);
        sleep_ms(10);
    }
    return NULL;
}

static void echo_progress(const sdrt_request *req, const cJSON *data) {
    int n = (int)number_or(data, "n", 3);
    for (int i = 1; i <= n; i++) {
        sdrt_progress p = {SDRT_STRUCT_SIZE(sdrt_progress, message), (double)i / n, "echo", i, n, "tick"};
        g_api->progress(req->job, &p);
    }
}

static sdrt_status status_from_name(const char *name) {
    for (int i = 0; i < SDRT_STATUS_COUNT_; i++)
        if (status_names[i] && name && strcmp(status_names[i], name) == 0) return (sdrt_status)i;
    return SDRT_INTERNAL;
}

static sdrt_error *echo_fail(const cJSON *data) {
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(data, "code");
    const cJSON *edata = cJSON_GetObjectItemCaseSensitive(data, "error_data");
    char *edata_json = cJSON_IsObject(edata) ? cJSON_PrintUnformatted(edata) : NULL;
    sdrt_error *e = g_api->error_new(status_from_name(cJSON_GetStringValue(code)), edata_json,
                                     "echo.fail: failing with %s as asked",
                                     cJSON_IsString(code) ? code->valuestring : "INTERNAL");
    cJSON_free(edata_json);
    return e;
}

static sdrt_error *echo_handle(void *instance, const sdrt_request *req, char **result_json) {
    *result_json = NULL;
    cJSON *data = cJSON_Parse(req->data_json);
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return g_api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: expected a JSON object");
    }
    sdrt_error *err = NULL;
    if (strcmp(req->type, "echo.slow") == 0) err = echo_slow(req, data);
    else if (strcmp(req->type, "echo.progress") == 0) echo_progress(req, data);
    else if (strcmp(req->type, "echo.warn") == 0) g_api->warn(req->job, "echo.warn: this is a test warning");
    else if (strcmp(req->type, "echo.fail") == 0) err = echo_fail(data);
    if (!err) *result_json = print_for_host(data);
    cJSON_Delete(data);
    return err;
}

static const char *const echo_types[] = {"echo.run", "echo.slow", "echo.progress", "echo.warn", "echo.fail", NULL};

static const sdrt_plugin_vtable echo_vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), echo_init, echo_shutdown, echo_handle, NULL,
};

static const sdrt_plugin_desc echo_desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.echo", "1.0.0",
    "echo", "test plugin: echoes, sleeps, reports progress, warns and fails on demand", echo_types, &echo_vtable,
};

SDRT_PLUGIN_DEFINE(echo, echo_desc)
