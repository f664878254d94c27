/* tests/gguf/test_messages.c - model.convert and model.load's weight_type
 * through the model plugin with the fake host of tests/model. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "harness.h"
#include "plugin.h"

static sdrt_error *call(void *inst, const char *type, const char *data, cJSON **out) {
    sdrt_request req = {sizeof req, type, "r1", data, NULL, 0};
    char *res = NULL;
    sdrt_error *e = model_plugin_handle(inst, &req, &res);
    *out = res ? cJSON_Parse(res) : NULL;
    free(res);
    return e;
}

static double num(const cJSON *o, const char *k) { return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k)); }

/* Expects an error of `code` whose message contains `needle`. */
static void expect_err(void *inst, const char *type, const char *data, sdrt_status code, const char *needle) {
    cJSON *r = NULL;
    sdrt_error *e = call(inst, type, data, &r);
    CHECK(e && e->code == code && strstr(e->message, needle), "%s %s: got %s", type, data,
          e ? e->message : "success");
    if (e) fake_host_api()->error_free(e);
    cJSON_Delete(r);
}

void test_convert_message(void) {
    const char *dir = test_tmpdir();
    char settings[8192], data[8192], out[4096];
    snprintf(settings, sizeof settings, "{\"model_roots\":[\"%s\",\"%s\"],\"allow_any_path\":true,\"hf_cache\":[]}",
             test_path("SDRT_REFERENCE", "tiny-sd15"), dir);
    fake_settings = settings;
    void *inst = NULL;
    sdrt_error *e = model_plugin_init(fake_host_api(), NULL, "{}", &inst);
    REQUIRE(!e, "init: %s", e->message);
    snprintf(out, sizeof out, "%s/sd15-q8_0.gguf", dir);
    snprintf(data, sizeof data, "{\"model_id\":\"tiny-sd15.safetensors\",\"output\":\"%s\",\"weight_type\":\"q8_0\"}", out);
    cJSON *r = NULL;
    e = call(inst, "model.convert", data, &r);
    CHECK(!e && r && num(r, "quantised") > 50 && num(r, "bytes_out") < num(r, "bytes_in"), "convert: %s",
          e ? e->message : "");
    cJSON_Delete(r);
    expect_err(inst, "model.convert", data, SDRT_ALREADY_EXISTS, "overwrite");
    /* The written file as a model, by name under a model root. */
    e = call(inst, "model.load", "{\"model_id\":\"sd15-q8_0.gguf\"}", &r);
    const cJSON *bd = r ? cJSON_GetObjectItemCaseSensitive(r, "bytes_by_dtype") : NULL;
    CHECK(!e && r && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "source")), "gguf") &&
              num(bd, "Q8_0") > 0,
          "load converted: %s", e ? e->message : "");
    cJSON_Delete(r);
    /* weight_type on load: its own cache entry, quantised matrices. */
    e = call(inst, "model.load", "{\"model_id\":\"tiny-sd15.safetensors\",\"weight_type\":\"q4_0\"}", &r);
    bd = r ? cJSON_GetObjectItemCaseSensitive(r, "bytes_by_dtype") : NULL;
    CHECK(!e && r && num(bd, "Q4_0") > 0, "weight_type q4_0: %s", e ? e->message : "");
    cJSON_Delete(r);
    e = call(inst, "model.load", "{\"model_id\":\"tiny-sd15.safetensors#q4_0\"}", &r);
    CHECK(!e && r && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "cached")), "id#q4_0 is the same entry: %s",
          e ? e->message : "");
    cJSON_Delete(r);
    expect_err(inst, "model.load", "{\"model_id\":\"tiny-sd15.safetensors\",\"weight_type\":\"q6_K\"}",
               SDRT_INVALID_ARGUMENT, "weight_type: 'q6_K'");
    expect_err(inst, "model.load", "{\"model_id\":\"tiny-sd15.safetensors#q8_0\",\"weight_type\":\"q4_0\"}",
               SDRT_INVALID_ARGUMENT, "conflicts");
    snprintf(data, sizeof data, "{\"model_id\":\"tiny-sd15.safetensors\",\"output\":\"%s/x.bin\",\"weight_type\":\"q8_0\"}", dir);
    expect_err(inst, "model.convert", data, SDRT_INVALID_ARGUMENT, "output: must be a path ending in .gguf");
    snprintf(data, sizeof data, "{\"model_id\":\"tiny-sd15.safetensors\",\"output\":\"%s/y.gguf\",\"weight_type\":\"q3_K\"}", dir);
    expect_err(inst, "model.convert", data, SDRT_INVALID_ARGUMENT, "weight_type: 'q3_K'");
    snprintf(data, sizeof data, "{\"model_id\":\"diffusers\",\"output\":\"%s/y.gguf\",\"weight_type\":\"q8_0\"}", dir);
    expect_err(inst, "model.convert", data, SDRT_INVALID_ARGUMENT, "not a single-file checkpoint");
    model_plugin_shutdown(inst);
    /* Roots enforced: writing outside them is refused. */
    snprintf(settings, sizeof settings, "{\"model_roots\":[\"%s\"],\"allow_any_path\":false,\"hf_cache\":[]}",
             test_path("SDRT_REFERENCE", "tiny-sd15"));
    e = model_plugin_init(fake_host_api(), NULL, "{}", &inst);
    REQUIRE(!e, "init");
    snprintf(data, sizeof data, "{\"model_id\":\"tiny-sd15.safetensors\",\"output\":\"%s/z.gguf\",\"weight_type\":\"q8_0\"}",
             dir);
    cJSON *rr = NULL;
    e = call(inst, "model.convert", data, &rr);
    CHECK(e && strstr(e->message, "output:"), "outside the roots: %s", e ? e->message : "written");
    if (e) fake_host_api()->error_free(e);
    cJSON_Delete(rr);
    model_plugin_shutdown(inst);
    fake_settings = "{}";
}
