/* tests/inference/test_request.c - inference.run field validation: every
 * bad field is refused with its name and the reason; defaults and the
 * legacy nesting are applied. No plugins needed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "work_limits.h"
#include "request.h"
#include "response.h"

static sdrt_status parse(const char *json, infer_request *r, char *err, size_t n) {
    err[0] = 0;
    return infer_request_parse(json, r, err, n);
}

static void expect_error(const char *json, sdrt_status want, const char *text) {
    infer_request r;
    char err[512];
    sdrt_status st = parse(json, &r, err, sizeof err);
    CHECK(st == want && strstr(err, text), "%s -> %d \"%s\", want %d with \"%s\"", json, st, err, want, text);
    if (st == SDRT_OK) infer_request_free(&r);
}

static void test_defaults(void) {
    infer_request r;
    char err[512];
    REQUIRE(parse("{\"model_id\":\"m\"}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(r.width == 0 && r.height == 0 && r.steps == 50 && r.guidance_scale < 0, "size/steps/guidance defaults");
    CHECK(r.batch_size == 1 && !r.seed_given && r.clip_skip == 0, "batch/seed/clip_skip defaults");
    CHECK(strcmp(r.prompt, "") == 0 && !r.has_negative_prompt, "prompt defaults");
    CHECK(strcmp(r.output_dir, "outputs") == 0 && !r.save_latents, "output defaults");
    CHECK(strcmp(r.scheduler_config_json, "{}") == 0 && !r.scheduler, "scheduler defaults");
    infer_request_free(&r);
}

static void test_canonical(void) {
    infer_request r;
    char err[512];
    const char *json =
        "{\"model_id\":\"stabilityai/sdxl\",\"prompt\":\"p\",\"negative_prompt\":\"n\",\"width\":1024,"
        "\"height\":768,\"num_inference_steps\":30,\"guidance_scale\":7.5,\"scheduler\":\"DPMSolverMultistepScheduler\","
        "\"scheduler_config\":{\"use_karras_sigmas\":true},\"seed\":42,\"batch_size\":2,\"clip_skip\":2,"
        "\"lora\":{\"enabled\":false,\"adapters\":[{\"model_id\":\"x\",\"weight\":0.8}]},"
        "\"output\":{\"dir\":\"out\",\"save_latents\":true}}";
    REQUIRE(parse(json, &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(r.width == 1024 && r.height == 768 && r.steps == 30 && r.guidance_scale == 7.5, "numbers");
    CHECK(r.seed_given && r.seed == 42 && r.batch_size == 2 && r.clip_skip == 2, "seed/batch/clip");
    CHECK(strcmp(r.negative_prompt, "n") == 0 && r.has_negative_prompt, "negative");
    CHECK(strstr(r.scheduler_config_json, "use_karras_sigmas") != NULL, "scheduler_config");
    CHECK(strcmp(r.output_dir, "out") == 0 && r.save_latents, "output");
    infer_request_free(&r);
}

static void test_legacy_nesting(void) {
    infer_request r;
    char err[512];
    const char *json = "{\"model_name\":\"m\",\"hyperparameters\":{\"num_inference_steps\":12,\"guidance_scale\":3,"
                       "\"seed\":\"18446744073709551615\"},\"dimensions\":{\"width\":640,\"height\":384}}";
    REQUIRE(parse(json, &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(strcmp(r.model_id, "m") == 0 && r.steps == 12 && r.guidance_scale == 3.0, "hyperparameters");
    CHECK(r.seed == UINT64_MAX && r.width == 640 && r.height == 384, "seed string / dimensions");
    infer_request_free(&r);
}

static void test_errors(void) {
    expect_error("[]", SDRT_INVALID_ARGUMENT, "data: must be a JSON object");
    expect_error("{}", SDRT_INVALID_ARGUMENT, "model_id: is required");
    expect_error("{\"model_id\":3}", SDRT_INVALID_ARGUMENT, "model_id: must be a string");
    expect_error("{\"model_id\":\"m\",\"width\":1004}", SDRT_INVALID_ARGUMENT, "width: 1004 is not a multiple of 8");
    expect_error("{\"model_id\":\"m\",\"height\":0}", SDRT_INVALID_ARGUMENT, "height: 0 is out of range");
    expect_error("{\"model_id\":\"m\",\"width\":\"512\"}", SDRT_INVALID_ARGUMENT, "width: must be an integer");
    expect_error("{\"model_id\":\"m\",\"width\":512.5}", SDRT_INVALID_ARGUMENT, "width: must be an integer");
    expect_error("{\"model_id\":\"m\",\"num_inference_steps\":0}", SDRT_INVALID_ARGUMENT,
                 "num_inference_steps: 0 is out of range [1, 1000]");
    expect_error("{\"model_id\":\"m\",\"guidance_scale\":\"high\"}", SDRT_INVALID_ARGUMENT,
                 "guidance_scale: must be a number");
    expect_error("{\"model_id\":\"m\",\"guidance_scale\":-1}", SDRT_INVALID_ARGUMENT, "guidance_scale: -1 is out of range");
    expect_error("{\"model_id\":\"m\",\"seed\":1.5}", SDRT_INVALID_ARGUMENT, "seed: must be an integer");
    expect_error("{\"model_id\":\"m\",\"seed\":\"-3\"}", SDRT_INVALID_ARGUMENT, "seed: as a string must be a decimal integer");
    expect_error("{\"model_id\":\"m\",\"seed\":\"18446744073709551616\"}", SDRT_INVALID_ARGUMENT,
                 "seed: as a string must be a decimal integer in [0, 18446744073709551615]");
    expect_error("{\"model_id\":\"m\",\"seed\":\"+1\"}", SDRT_INVALID_ARGUMENT, "seed: as a string");
    expect_error("{\"model_id\":\"m\",\"output\":{\"prefix\":\"../../x\"}}", SDRT_INVALID_ARGUMENT,
                 "output.prefix: must be a plain file name");
    expect_error("{\"model_id\":\"m\",\"output\":{\"prefix\":\"a/b\"}}", SDRT_INVALID_ARGUMENT, "output.prefix");
    expect_error("{\"model_id\":\"m\",\"output\":{\"prefix\":\"\"}}", SDRT_INVALID_ARGUMENT, "output.prefix");
    expect_error("{\"model_id\":\"m\",\"device\":3}", SDRT_INVALID_ARGUMENT, "device: must be a string");
    expect_error("{\"model_id\":\"m\",\"prompt\":\"a\",\"prompt_2\":\"b\"}", SDRT_UNSUPPORTED, "prompt_2: a separate prompt");
    expect_error("{\"model_id\":\"m\",\"negative_prompt_2\":\"b\"}", SDRT_UNSUPPORTED, "negative_prompt_2");
    expect_error("{\"model_id\":\"m\",\"guidance_rescale\":0.7}", SDRT_UNSUPPORTED, "guidance_rescale: not supported");
    expect_error("{\"model_id\":\"m\",\"batch_size\":0}", SDRT_INVALID_ARGUMENT, "batch_size: 0 is out of range");
    expect_error("{\"model_id\":\"m\",\"clip_skip\":40}", SDRT_INVALID_ARGUMENT, "clip_skip: 40 is out of range");
    expect_error("{\"model_id\":\"m\",\"prompt\":[\"a\"]}", SDRT_INVALID_ARGUMENT, "prompt: must be a string");
    expect_error("{\"model_id\":\"m\",\"scheduler_config\":[]}", SDRT_INVALID_ARGUMENT,
                 "scheduler_config: must be an object");
    expect_error("{\"model_id\":\"m\",\"output\":{\"save_latents\":1}}", SDRT_INVALID_ARGUMENT,
                 "output.save_latents: must be true or false");
    expect_error("{\"model_id\":\"m\",\"output\":{\"dir\":\"\"}}", SDRT_INVALID_ARGUMENT, "output.dir: must not be empty");
    expect_error("{\"model_id\":\"m\",\"lora\":{\"adapters\":[{\"model_id\":\"\"}]}}", SDRT_INVALID_ARGUMENT,
                 "lora.adapters[0].model_id: must be a non-empty string");
    expect_error("{\"model_id\":\"m\",\"lora\":{\"adapters\":[{\"model_id\":\"a\"},{\"model_id\":\"b\",\"weight\":\"x\"}]}}",
                 SDRT_INVALID_ARGUMENT, "lora.adapters[1].weight: must be a finite number");
    expect_error("{\"model_id\":\"m\",\"lora\":{\"adapters\":{}}}", SDRT_INVALID_ARGUMENT,
                 "lora.adapters: must be an array");
    expect_error("{\"model_id\":\"m\",\"lora\":{\"enabled\":1}}", SDRT_INVALID_ARGUMENT,
                 "lora.enabled: must be true or false");
}

/* lora.adapters: weights default to 1; enabled false drops them. */
static void test_lora_fields(void) {
    infer_request r;
    char err[512];
    REQUIRE(parse("{\"model_id\":\"m\",\"lora\":{\"adapters\":[{\"model_id\":\"a\",\"weight\":-0.5},"
                  "{\"model_id\":\"b\"}]}}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(r.lora_enabled && r.n_loras == 2, "two adapters");
    CHECK(r.n_loras == 2 && strcmp(r.loras[0].model_id, "a") == 0 && r.loras[0].weight == -0.5f &&
              strcmp(r.loras[1].model_id, "b") == 0 && r.loras[1].weight == 1.0f, "names and weights");
    infer_request_free(&r);
    REQUIRE(parse("{\"model_id\":\"m\",\"lora\":{\"enabled\":false,\"adapters\":[{\"model_id\":\"a\"}]}}", &r, err,
                  sizeof err) == SDRT_OK, "%s", err);
    CHECK(!r.lora_enabled && r.n_loras == 0, "disabled");
    infer_request_free(&r);
}

/* img2img, inpainting and model suite fields. */
static void test_image_fields(void) {
    infer_request r;
    char err[512];
    const char *json = "{\"model_id\":{\"base\":\"b\",\"refiner\":\"r\",\"vae\":\"v\"},\"init_image\":\"i.png\","
                       "\"mask_image\":\"m.png\",\"strength\":0.6,\"mask_blur\":4,\"aesthetic_score\":7,"
                       "\"negative_aesthetic_score\":2,\"denoising_end\":0.75}";
    REQUIRE(parse(json, &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(!strcmp(r.model_id, "b") && !strcmp(r.refiner_id, "r") && !strcmp(r.vae_id, "v"), "suite");
    CHECK(!strcmp(r.init_image, "i.png") && !strcmp(r.mask_image, "m.png") && r.strength == 0.6, "images");
    CHECK(r.mask_blur == 4 && r.aesthetic_score == 7 && r.negative_aesthetic_score == 2, "scores");
    CHECK(r.denoising_end == 0.75 && r.denoising_start < 0 && r.padding_mask_crop < 0, "split");
    infer_request_free(&r);
    REQUIRE(parse("{\"model_id\":\"m\"}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(!r.refiner_id && !r.vae_id && !r.init_image && r.strength < 0 && r.aesthetic_score == 6.0 &&
              r.negative_aesthetic_score == 2.5,
          "image defaults");
    infer_request_free(&r);
    expect_error("{\"model_id\":{\"vae\":\"v\"}}", SDRT_INVALID_ARGUMENT, "model_id.base: is required");
    expect_error("{\"model_id\":{\"base\":\"b\",\"refiner\":1}}", SDRT_INVALID_ARGUMENT,
                 "model_id.refiner: must be a string");
    expect_error("{\"model_id\":\"m\",\"init_image\":\"\"}", SDRT_INVALID_ARGUMENT, "init_image: must not be empty");
    expect_error("{\"model_id\":\"m\",\"init_image\":\"i\",\"strength\":-0.5}", SDRT_INVALID_ARGUMENT,
                 "strength: -0.5 is out of range (0, 1]");
    expect_error("{\"model_id\":\"m\",\"init_image\":\"i\",\"denoising_start\":1}", SDRT_INVALID_ARGUMENT,
                 "denoising_start: 1 is out of range [0, 1)");
    expect_error("{\"model_id\":\"m\",\"denoising_start\":0.5}", SDRT_INVALID_ARGUMENT, "denoising_start: needs init_image");
    expect_error("{\"model_id\":\"m\",\"init_image\":\"i\",\"denoising_start\":0.5,\"denoising_end\":0.4}",
                 SDRT_INVALID_ARGUMENT, "denoising_end: must be greater than denoising_start (0.5)");
    expect_error("{\"model_id\":\"m\",\"init_image\":\"i\",\"mask_blur\":4}", SDRT_INVALID_ARGUMENT,
                 "mask_blur: needs mask_image");
    expect_error("{\"model_id\":\"m\",\"init_image\":\"i\",\"mask_image\":\"k\",\"padding_mask_crop\":-2}",
                 SDRT_INVALID_ARGUMENT, "padding_mask_crop: -2 is out of range");
    expect_error("{\"model_id\":\"m\",\"aesthetic_score\":\"6\"}", SDRT_INVALID_ARGUMENT, "aesthetic_score: must be a number");
}

static cJSON_bool seed_is(const cJSON *obj, const char *text, double number) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, "seed");
    return text ? cJSON_IsString(s) && strcmp(s->valuestring, text) == 0 : cJSON_IsNumber(s) && s->valuedouble == number;
}

static void *plain_alloc(size_t n) {
    return malloc(n);
}

/* The response shape, and 64-bit seeds kept exact (as strings). */
static void test_response(void) {
    sdrt_host_api api = {.struct_size = sizeof api, .alloc = plain_alloc};
    infer_output outs[2] = {{.image_path = "/o/a.png", .latents_path = "/o/a.latents.npy"},
                            {.image_path = "/o/b.png", .latents_path = "/o/b.latents.npy"}};
    char *text = infer_response_json(&api, outs, 2, 42, 512, 768, 1.5, 0, 12345);
    cJSON *r = cJSON_Parse(text);
    const cJSON *info = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "images_info"), 1);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "images")) == 2, "images");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "latents")) == 2, "latents");
    CHECK(seed_is(r, NULL, 42) && seed_is(info, NULL, 42), "seed");
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(info, "path")->valuestring, "/o/b.png") == 0, "path");
    CHECK(cJSON_GetObjectItemCaseSensitive(info, "height")->valuedouble == 768, "height");
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(r, "metrics");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(metrics, "weight_bytes_uploaded")) == 12345,
          "metrics.weight_bytes_uploaded");
    cJSON_Delete(r);
    free(text);
    outs[0].latents_path = outs[1].latents_path = NULL;
    text = infer_response_json(&api, outs, 2, UINT64_MAX, 512, 512, 1.0, 0, 0);
    r = cJSON_Parse(text);
    CHECK(seed_is(r, "18446744073709551615", 0), "64-bit seed: %s", text);
    CHECK(!cJSON_GetObjectItemCaseSensitive(r, "latents"), "no latents without save_latents");
    CHECK(!cJSON_GetObjectItemCaseSensitive(r, "nsfw_content_detected"), "no flags without the safety checker");
    cJSON_Delete(r);
    free(text);
    /* The safety checker's verdicts: per image and in images_info. */
    outs[0].safety_checked = outs[1].safety_checked = 1;
    outs[1].nsfw = 1;
    text = infer_response_json(&api, outs, 2, 7, 512, 512, 1.0, 0, 0);
    r = cJSON_Parse(text);
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(r, "nsfw_content_detected");
    CHECK(cJSON_GetArraySize(flags) == 2 && cJSON_IsFalse(cJSON_GetArrayItem(flags, 0)) &&
              cJSON_IsTrue(cJSON_GetArrayItem(flags, 1)), "nsfw_content_detected: %s", text);
    info = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "images_info"), 1);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "nsfw_content_detected")), "images_info[1]: %s", text);
    cJSON_Delete(r);
    free(text);
}

/* The product of the sizes is bounded before any work: batch x size x steps
 * (x 2 with guidance) against max_work_megapixel_steps, one image's pixels
 * against max_image_megapixels; hand-computed estimates. */
static void expect_limit(const infer_limits *l, const char *json, const char *text) {
    infer_request r;
    char err[512];
    REQUIRE(parse(json, &r, err, sizeof err) == SDRT_OK, "%s", err);
    sdrt_status st = infer_limits_check(l, &r, err, sizeof err);
    if (text) CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, text), "%s: %d %s", json, st, err);
    else CHECK(st == SDRT_OK, "%s: %s", json, err);
    infer_request_free(&r);
}

static void test_work_limits(void) {
    infer_limits l;
    char err[256];
    REQUIRE(infer_limits_parse(NULL, &l, err, sizeof err) == SDRT_OK, "defaults");
    CHECK(l.max_work == 20000 && l.max_batch_items == 256, "defaults %g %d", l.max_work, l.max_batch_items);
    infer_request r;
    REQUIRE(parse("{\"model_id\":\"m\",\"width\":1024,\"height\":512,\"num_inference_steps\":10,\"batch_size\":3,"
                  "\"guidance_scale\":1}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    /* 3 x 0.524288 MP x 10 steps, no guidance */
    CHECK(fabs(infer_work_estimate(&r) - 15.72864) < 1e-9, "estimate %g", infer_work_estimate(&r));
    infer_request_free(&r);
    REQUIRE(parse("{\"model_id\":\"m\"}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    /* model default size counted as 1024x1024, 50 steps, guided */
    CHECK(fabs(infer_work_estimate(&r) - 1.048576 * 50 * 2) < 1e-9, "estimate %g", infer_work_estimate(&r));
    infer_request_free(&r);
    expect_limit(&l, "{\"model_id\":\"m\",\"width\":1024,\"height\":1024,\"num_inference_steps\":50,\"batch_size\":16}",
                 NULL);
    expect_limit(&l, "{\"model_id\":\"m\",\"width\":4096,\"height\":4096,\"num_inference_steps\":1000,\"batch_size\":64}",
                 "max_work_megapixel_steps");
    expect_limit(&l, "{\"model_id\":\"m\",\"width\":8192,\"height\":8192,\"num_inference_steps\":1}",
                 "max_image_megapixels");
    REQUIRE(infer_limits_parse("{\"max_work_megapixel_steps\":100,\"max_batch_items\":4}", &l, err, sizeof err) ==
                SDRT_OK, "%s", err);
    expect_limit(&l, "{\"model_id\":\"m\",\"width\":1024,\"height\":1024,\"num_inference_steps\":50}",
                 "= 105 megapixel-steps, above the limit of 100"); /* 104.9: just above */
    CHECK(infer_limits_parse("{\"max_batch_items\":0}", &l, err, sizeof err) == SDRT_INVALID_ARGUMENT &&
              strstr(err, "max_batch_items"), "%s", err);
    CHECK(infer_limits_parse("{\"max_work_megapixel_steps\":\"lots\"}", &l, err, sizeof err) == SDRT_INVALID_ARGUMENT,
          "%s", err);
    infer_limits zero;
    memset(&zero, 0, sizeof zero);
    expect_limit(&zero, "{\"model_id\":\"m\",\"width\":4096,\"height\":4096,\"num_inference_steps\":1000,\"batch_size\":64}",
                 "above the limit of 20000"); /* zero members mean the defaults */
}

/* "rng": cpu by default; philox and A1111's NV/GPU names (any case). */
static void test_rng_field(void) {
    static const struct { const char *v; int philox; } ok[] = {
        {"cpu", 0}, {"CPU", 0}, {"philox", 1}, {"NV", 1}, {"gpu", 1}, {"Philox", 1}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[128], err[512];
        snprintf(json, sizeof json, "{\"model_id\":\"m\",\"rng\":\"%s\"}", ok[i].v);
        infer_request r;
        REQUIRE(parse(json, &r, err, sizeof err) == SDRT_OK, "%s: %s", json, err);
        CHECK(r.rng_philox == ok[i].philox, "%s -> %d", ok[i].v, r.rng_philox);
        infer_request_free(&r);
    }
    infer_request r;
    char err[512];
    REQUIRE(parse("{\"model_id\":\"m\"}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(r.rng_philox == 0, "default must be the CPU generator");
    infer_request_free(&r);
    expect_error("{\"model_id\":\"m\",\"rng\":\"mt\"}", SDRT_INVALID_ARGUMENT, "rng: must be \"cpu\" or \"philox\"");
    expect_error("{\"model_id\":\"m\",\"rng\":3}", SDRT_INVALID_ARGUMENT, "rng: must be a string");
}

const test_entry TESTS[] = {
    {"work_limits", test_work_limits},
    {"rng_field", test_rng_field},
    {"defaults", test_defaults},
    {"canonical", test_canonical},
    {"legacy_nesting", test_legacy_nesting},
    {"errors", test_errors},
    {"lora_fields", test_lora_fields},
    {"image_fields", test_image_fields},
    {"response", test_response},
    {0},
};
