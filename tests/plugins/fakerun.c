/* tests/plugins/fakerun.c - serves inference.run without inferring: answers
 * {"images": [the model_id as the host's resolve_path("model") gives it]},
 * so `sdrt generate` tests can check how the CLI names a model without a
 * real model or the inference plugins. The memory-mode fields it received
 * (offload, vae_slicing, vae_tiling) are echoed (in the result, or in
 * error_data when the model is refused), so transcripts see how the host
 * mapped the old memory switches. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "trivial.h"

static const sdrt_host_api *g_api;
static sdrt_host *g_host;

static sdrt_error *fakerun_init(const sdrt_host_api *api, sdrt_host *host, const char *config_json,
                                void **instance) {
    g_api = api;
    g_host = host;
    *instance = NULL;
    return NULL;
}

/* The memory-mode fields of data copied into obj (those present). */
static int echo_memory(const cJSON *data, cJSON *obj) {
    static const char *const echoed[] = {"offload", "vae_slicing", "vae_tiling", NULL};
    int n = 0;
    for (int i = 0; echoed[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, echoed[i]);
        if (v) cJSON_AddItemToObject(obj, echoed[i], cJSON_Duplicate(v, 1)), n++;
    }
    return n;
}

static sdrt_error *fakerun_handle(void *instance, const sdrt_request *req, char **result_json) {
    *result_json = NULL;
    cJSON *data = cJSON_Parse(req->data_json);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "model_id");
    sdrt_error *err = NULL;
    char *path = cJSON_IsString(m) ? g_api->resolve_path(g_host, "model", m->valuestring, &err) : NULL;
    if (path) {
        cJSON *out = cJSON_CreateObject();
        cJSON *images = cJSON_AddArrayToObject(out, "images");
        cJSON_AddItemToArray(images, cJSON_CreateString(path));
        echo_memory(data, out);
        char *s = cJSON_PrintUnformatted(out);
        size_t n = strlen(s) + 1;
        *result_json = g_api->alloc(n);
        if (*result_json) memcpy(*result_json, s, n);
        cJSON_free(s);
        cJSON_Delete(out);
        g_api->free(path);
    } else if (!err) {
        err = g_api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model_id: expected a string");
    }
    /* A refused model still shows what the host handed over (error_data). */
    cJSON *mem = cJSON_CreateObject();
    if (err && echo_memory(data, mem)) {
        char *d = cJSON_PrintUnformatted(mem);
        sdrt_error *e2 = g_api->error_new(err->code, d, "%s", err->message);
        cJSON_free(d);
        g_api->error_free(err);
        err = e2;
    }
    cJSON_Delete(mem);
    cJSON_Delete(data);
    return err;
}

static const sdrt_plugin_vtable vtable = {
    SDRT_STRUCT_SIZE(sdrt_plugin_vtable, get_interface), fakerun_init, trivial_shutdown, fakerun_handle, NULL,
};
static const char *const types[] = {"inference.run", NULL};
static const sdrt_plugin_desc desc = {
    SDRT_STRUCT_SIZE(sdrt_plugin_desc, vtable), SDRT_ABI_MAJOR, SDRT_ABI_MINOR, "org.sdrt.test.fakerun", "1.0.0",
    "inference", "test plugin: inference.run answers with the resolved model path", types, &vtable,
};
SDRT_PLUGIN_DEFINE(fakerun, desc)
