/* tests/gguf/test_generate.c - generating from GGUF: the tiny reference
 * SD1.5 and SDXL checkpoints converted by model.convert (q8_0, q4_0, f16)
 * and quantised on load (weight_type), run through inference.run with
 * the real plugins, final latents against diffusers' f32 reference.
 *
 * Bounds (relative L2 of the final latents after 8 Euler steps, CFG 7.5;
 * measured 2026-12-07: f16 4.4e-5, q8_0 6.3e-4 (SDXL 1.8e-3), q4_0 1.8e-2,
 * weight_type q8_0 2.5e-3): f16 1e-3, q8_0 1e-2, q4_0 0.1 - the tiny
 * models' 32-wide layers have one or two blocks per row, the worst case
 * for block scales; the full-size figures are in docs/PERFORMANCE.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convert.h"
#include "harness.h"
#include "infer_fixture.h"
#include "sdrt/quant.h"

static double run_case(const char *model_id, const char *extra, const char *model, const char *what) {
    char data[4096], rel[256];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\","
             "\"width\":64,\"height\":64,\"num_inference_steps\":8,\"guidance_scale\":7.5,\"seed\":42,"
             "\"scheduler\":\"EulerDiscreteScheduler\",\"output\":{\"dir\":\"%s\",\"save_latents\":true}%s}",
             model_id, ifx_out_dir(), extra);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_OK, "%s: status %d: %s", what, r.status, r.message);
    if (r.status != SDRT_OK) return 1e9;
    const char *lat = ifx_json_string_at(r.data, "latents", 0);
    snprintf(rel, sizeof rel, "%s/t2i/euler_64x64.latents.npy", model);
    size_t n_got = 0, n_want = 0;
    float *got = lat ? ifx_load_npy(lat, &n_got) : NULL, *want = ifx_load_npy(test_path("SDRT_REFERENCE", rel), &n_want);
    double e = 1e9;
    if (got && want && n_got == n_want) e = test_rel_l2(got, want, n_want);
    CHECK(e < 1e8, "%s: latents missing", what);
    printf("# %s: final latents rel L2 vs diffusers f32 %.3g\n", what, e);
    free(got);
    free(want);
    cJSON_Delete(r.data);
    return e;
}

static void convert_and_run(const char *model, sdrt_dtype wt, double bound) {
    REQUIRE(ifx_start(), "plugins did not load (see stderr)");
    char rel[256], out[4096], err[1024], what[256];
    snprintf(rel, sizeof rel, "%s/%s.safetensors", model, model);
    snprintf(out, sizeof out, "%s/%s-%s.gguf", test_tmpdir(), model, sdrt_dtype_ggml_name(wt));
    convert_stats cs;
    REQUIRE(model_convert(test_path("SDRT_REFERENCE", rel), out, wt, &cs, err, sizeof err) == SDRT_OK, "%s", err);
    snprintf(what, sizeof what, "%s GGUF %s", model, sdrt_dtype_ggml_name(wt));
    double e = run_case(out, "", model, what);
    CHECK(e <= bound, "%s: rel L2 %.3g > %.3g", what, e, bound);
}

static void test_sd15_gguf_q8_0(void) { convert_and_run("tiny-sd15", SDRT_DTYPE_Q8_0, 1e-2); }
static void test_sd15_gguf_q4_0(void) { convert_and_run("tiny-sd15", SDRT_DTYPE_Q4_0, 0.1); }
static void test_sd15_gguf_f16(void) { convert_and_run("tiny-sd15", SDRT_DTYPE_F16, 1e-3); }
static void test_sdxl_gguf_q8_0(void) { convert_and_run("tiny-sdxl", SDRT_DTYPE_Q8_0, 1e-2); }

/* weight_type on inference.run: the safetensors file quantised on load. */
static void test_sd15_weight_type(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    double e = run_case(test_path("SDRT_REFERENCE", "tiny-sd15/tiny-sd15.safetensors"), ",\"weight_type\":\"q8_0\"",
                        "tiny-sd15", "tiny-sd15 weight_type q8_0");
    CHECK(e <= 1e-2, "weight_type q8_0: rel L2 %.3g", e);
    char data[1024];
    snprintf(data, sizeof data, "{\"model_id\":\"%s\",\"prompt\":\"x\",\"width\":64,\"height\":64,\"weight_type\":\"q4_K\"}",
             test_path("SDRT_REFERENCE", "tiny-sd15/tiny-sd15.safetensors"));
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_INVALID_ARGUMENT && strstr(r.message, "weight_type"), "q4_K on load: %d %s", r.status,
          r.message);
    cJSON_Delete(r.data);
    ifx_stop();
}

const test_entry TESTS[] = {
    {"sd15_gguf_q8_0", test_sd15_gguf_q8_0},
    {"sd15_gguf_q4_0", test_sd15_gguf_q4_0},
    {"sd15_gguf_f16", test_sd15_gguf_f16},
    {"sdxl_gguf_q8_0", test_sdxl_gguf_q8_0},
    {"sd15_weight_type", test_sd15_weight_type},
    {0},
};
