/* tests/inference/test_safety_run.c - inference.run with the safety checker,
 * end to end on the tiny SD1.5 model with a small random-weight checker
 * (tests/postprocess/data/safety/tiny-sd15-safety, make_safety_ref.py
 * --trip images/t2i.png: the checker has a concept made from this
 * request's own image, so it trips): safety_action "black" writes an
 * all-zero image and reports nsfw_content_detected true; "flag" keeps the
 * image (identical to the run without the checker); the flag equals
 * diffusers' verdict on that image (ref.json); the request fields are
 * checked; safety_checker true on a model without safety_checker/ is
 * NOT_FOUND naming the folder; the plugin keeps serving. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "infer_fixture.h"
#include "request.h"
#include "sdrt/file.h"
#include "sdrt/postprocess.h"

static char g_data[4096];

static const char *req(const char *model, const char *extra) {
    snprintf(g_data, sizeof g_data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"num_inference_steps\":6,\"guidance_scale\":7.5,"
             "\"seed\":1234,\"scheduler\":\"EulerDiscreteScheduler\",\"width\":64,\"height\":64,"
             "\"output\":{\"dir\":\"%s\"}%s}",
             model, ifx_out_dir(), extra);
    return g_data;
}

static const char *fixture(void) { return test_path("SDRT_SOURCE_DIR", "tests/postprocess/data/safety/tiny-sd15-safety"); }

/* The written PNG's pixels as floats (post->read_image), or NULL. */
static float *pixels(const char *png, int *n) {
    sdrt_error *e = NULL;
    const sdrt_postprocess_iface *post = ifx_plugin()->api->acquire(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID, &e);
    float *rgb = NULL, *copy = NULL;
    int h = 0, w = 0;
    if (post && png && !post->read_image(post->self, png, &rgb, &h, &w)) {
        *n = h * w * 3;
        copy = malloc((size_t)*n * sizeof *copy);
        memcpy(copy, rgb, (size_t)*n * sizeof *copy);
        post->free(post->self, rgb);
    }
    if (post) ifx_plugin()->api->release(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID);
    return copy;
}

static int flag_of(const cJSON *data) {
    const cJSON *f = cJSON_GetObjectItem(data, "nsfw_content_detected");
    return cJSON_GetArraySize(f) == 1 && cJSON_IsBool(cJSON_GetArrayItem(f, 0)) ? cJSON_IsTrue(cJSON_GetArrayItem(f, 0)) : -1;
}

static void test_request_fields(void) {
    infer_request r;
    char err[512];
    REQUIRE(infer_request_parse("{\"model_id\":\"m\"}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(r.safety_checker == -1 && r.safety_black == -1, "absent: the config decides");
    infer_request_free(&r);
    REQUIRE(infer_request_parse("{\"model_id\":\"m\",\"safety_checker\":true,\"safety_action\":\"flag\"}", &r, err,
                                sizeof err) == SDRT_OK, "%s", err);
    CHECK(r.safety_checker == 1 && r.safety_black == 0, "true / flag");
    infer_request_free(&r);
    CHECK(infer_request_parse("{\"model_id\":\"m\",\"safety_checker\":\"yes\"}", &r, err, sizeof err) == SDRT_INVALID_ARGUMENT &&
              strstr(err, "safety_checker: must be true or false"), "%s", err);
    CHECK(infer_request_parse("{\"model_id\":\"m\",\"safety_action\":\"blur\"}", &r, err, sizeof err) == SDRT_INVALID_ARGUMENT &&
              strstr(err, "safety_action: must be \"black\""), "%s", err);
    infer_plugin p;
    CHECK(infer_safety_config("{\"safety_checker\":true,\"safety_action\":\"flag\"}", &p, err, sizeof err) == SDRT_OK &&
              p.safety_default == 1 && p.safety_flag_default == 1, "config");
    CHECK(infer_safety_config("{\"safety_checker\":1}", &p, err, sizeof err) == SDRT_INVALID_ARGUMENT &&
              strstr(err, "safety_checker"), "%s", err);
}

static void test_end_to_end(void) {
    REQUIRE(ifx_start(), "plugins did not start");
    struct sdrt_job job = {0};
    ifx_result plain = ifx_call("inference.run", req(fixture(), ""), &job);
    REQUIRE(plain.status == SDRT_OK, "plain: %s", plain.message);
    CHECK(flag_of(plain.data) == -1, "no checker asked: no nsfw_content_detected");
    int n0 = 0, n1 = 0, n2 = 0;
    float *px0 = pixels(ifx_json_string_at(plain.data, "images", 0), &n0);
    REQUIRE(px0 && n0 == 64 * 64 * 3, "plain image");

    ifx_result flag = ifx_call("inference.run", req(fixture(), ",\"safety_checker\":true,\"safety_action\":\"flag\""), &job);
    REQUIRE(flag.status == SDRT_OK, "flag: %s", flag.message);
    float *px1 = pixels(ifx_json_string_at(flag.data, "images", 0), &n1);
    REQUIRE(px1 && n1 == n0, "flag image");
    CHECK(memcmp(px0, px1, (size_t)n0 * sizeof *px0) == 0, "safety_action flag changed the image");
    CHECK(flag_of(flag.data) == 1, "the checker's own concept of this image did not trip (%d)", flag_of(flag.data));
    const cJSON *info = cJSON_GetArrayItem(cJSON_GetObjectItem(flag.data, "images_info"), 0);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(info, "nsfw_content_detected")), "images_info[0].nsfw_content_detected");
    printf("# tiny-sd15 64x64 6 steps: processing_time %.3f s without, %.3f s with the checker\n",
           cJSON_GetObjectItem(plain.data, "processing_time")->valuedouble,
           cJSON_GetObjectItem(flag.data, "processing_time")->valuedouble);

    ifx_result black = ifx_call("inference.run", req(fixture(), ",\"safety_checker\":true"), &job);
    REQUIRE(black.status == SDRT_OK, "black: %s", black.message);
    CHECK(flag_of(black.data) == 1, "black: flag %d", flag_of(black.data));
    float *px2 = pixels(ifx_json_string_at(black.data, "images", 0), &n2);
    REQUIRE(px2 && n2 == n0, "black image");
    double mx = 0;
    for (int i = 0; i < n2; i++) mx = fmax(mx, px2[i]);
    CHECK(mx == 0, "flagged image is not all zero (max %g)", mx);

    /* The reference image of the generator is this request's image. */
    char err[256];
    char *ref = sdrt_file_read_all(test_path("SDRT_SOURCE_DIR", "tests/postprocess/data/safety/ref.json"), "ref.json",
                                   NULL, 1 << 24, NULL, NULL, err, sizeof err);
    cJSON *rj = ref ? cJSON_Parse(ref) : NULL;
    const cJSON *t2i = cJSON_GetObjectItem(cJSON_GetObjectItem(rj, "images"), "t2i.png");
    CHECK(t2i && cJSON_IsTrue(cJSON_GetObjectItem(t2i, "has_nsfw_concept")), "ref.json: t2i.png flagged by diffusers");
    cJSON_Delete(rj);
    free(ref);

    /* Asked for on a model without a checker: NOT_FOUND naming it. */
    ifx_result none = ifx_call("inference.run", req(test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"),
                                                    ",\"safety_checker\":true"), &job);
    CHECK(none.status == SDRT_NOT_FOUND && strstr(none.message, "has no safety_checker/ folder") &&
              strstr(none.message, "\"safety_checker\": true"), "%d %s", (int)none.status, none.message);
    /* Enabled by the plugin config only: written unchecked, no failure. */
    ifx_plugin()->safety_default = 1;
    ifx_result cfg = ifx_call("inference.run", req(test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), ""), &job);
    CHECK(cfg.status == SDRT_OK && flag_of(cfg.data) == -1, "config default on a model without checker: %s", cfg.message);
    ifx_result cfg2 = ifx_call("inference.run", req(fixture(), ",\"safety_action\":\"flag\""), &job);
    CHECK(cfg2.status == SDRT_OK && flag_of(cfg2.data) == 1, "config default on the fixture: %s", cfg2.message);
    ifx_plugin()->safety_default = 0;
    cJSON_Delete(cfg.data);
    cJSON_Delete(cfg2.data);
    free(px0);
    free(px1);
    free(px2);
    cJSON_Delete(plain.data);
    cJSON_Delete(flag.data);
    cJSON_Delete(black.data);
    ifx_stop();
}

const test_entry TESTS[] = {
    {"request_fields", test_request_fields},
    {"end_to_end", test_end_to_end},
    {0},
};
