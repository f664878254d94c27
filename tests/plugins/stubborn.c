/* tests/plugins/stubborn.c - ignores cancellation: the host must answer for
 * it after cancel_grace_s, and validate-plugin must flag it. */
#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>

#include "trivial.h"

static const sdrt_host_api *g_api;

static sdrt_error *stubborn_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json,
                                 void **instance) {
    g_api = api;
    *instance = NULL;
    return NULL;
}

/* Only {"seconds": n} is accepted, so that validate-plugin's bad inputs get
 * a quick error while its cancel check ("{}") meets the default hang, which
 * outlasts the validator's 10 s limit. */
static sdrt_error *parse_seconds(const char *data_json, double *seconds) {
    cJSON *data = cJSON_Parse(data_json);
    sdrt_error *err = NULL;
    *seconds = 15;
    const cJSON *it;
    if (!cJSON_IsObject(data)) err = g_api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data: expected an object");
    else cJSON_ArrayForEach(it, data) {
            if (strcmp(it->string, "seconds") != 0 || !cJSON_IsNumber(it)) {
                err = g_api->error_new(SDRT_INVALID_ARGUMENT, NULL, "data.%s: unexpected", it->string);
                break;
            }
            *seconds = it->valuedouble;
        }
    cJSON_Delete(data);
    return err;
}

static sdrt_error *stubborn_handle(void *instance, const sdrt_request *req, char **result_json) {
    double seconds;
    *result_json = NULL;
    sdrt_error *err = parse_seconds(req->data_json, &seconds);
    if (err) return err;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL); /* deliberately never looks at is_cancelled */
    return NULL;
}

static const sdrt_plugin_vtable vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), stubborn_init, trivial_shutdown, stubborn_handle, NULL,
};
static const char *const types[] = {"stubborn.hang", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.stubborn", "1.0.0",
    "stubborn", "test plugin: ignores cancel", types, &vtable,
};
SDRT_PLUGIN_DEFINE(stubborn, desc)
