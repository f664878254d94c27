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
    snprintf(data, sizeof data, "{\"model_id\":\"%s\",\"prompt\":\"x\",\"width\":64,\"height\":64,\"weight_type\":\"q6_K\"}",
             test_path("SDRT_REFERENCE", "tiny-sd15/tiny-sd15.safetensors"));
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_INVALID_ARGUMENT && strstr(r.message, "weight_type"), "q6_K on load: %d %s", r.status,
          r.message);
    cJSON_Delete(r.data);
    ifx_stop();
}

/* Opt-in measurement (docs/PERFORMANCE.md, "Quantized weights"): one run
 * of SDRT_GGUF_FULL (a full-size checkpoint, .safetensors or .gguf) with
 * weight_type SDRT_GGUF_WT (optional), SDRT_GGUF_SIZE (256) square,
 * SDRT_GGUF_STEPS (3) Euler steps, CFG 7; prints the time per guided step
 * (between the first and last step reports), the whole run, and the final
 * latents' relative L2 against SDRT_GGUF_REF (a latents .npy of another
 * run, e.g. the f16 one; the path of this run's is printed). Peak RSS:
 * run it under /usr/bin/time -v, one variant per process. */
static void test_full_size_measure(void) {
    const char *ckpt = getenv("SDRT_GGUF_FULL"), *wt = getenv("SDRT_GGUF_WT"), *ref = getenv("SDRT_GGUF_REF");
    if (!ckpt || !*ckpt) {
        printf("# skipped: set SDRT_GGUF_FULL to a full-size checkpoint\n");
        return;
    }
    int size = getenv("SDRT_GGUF_SIZE") ? atoi(getenv("SDRT_GGUF_SIZE")) : 256;
    int steps = getenv("SDRT_GGUF_STEPS") ? atoi(getenv("SDRT_GGUF_STEPS")) : 3;
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096], extra[128] = "";
    if (wt && *wt) snprintf(extra, sizeof extra, ",\"weight_type\":\"%s\"", wt);
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\",\"width\":%d,"
             "\"height\":%d,\"num_inference_steps\":%d,\"guidance_scale\":7,\"seed\":3,\"scheduler\":\"euler\","
             "\"output\":{\"dir\":\"%s\",\"save_latents\":true}%s}",
             ckpt, size, size, steps, ifx_out_dir(), extra);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    REQUIRE(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    const char *lat = ifx_json_string_at(r.data, "latents", 0);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(r.data, "processing_time");
    double step = steps > 1 ? (job.t_last_step - job.t_first_step) / (steps - 1) : 0.0;
    printf("# %s weight_type=%s %dx%d: %.2f s per guided step, whole run %.2f s, latents %s\n", ckpt,
           wt && *wt ? wt : "(stored)", size, size, step, cJSON_IsNumber(pt) ? pt->valuedouble : -1.0,
           lat ? lat : "?");
    if (ref && *ref && lat) {
        size_t n = 0, m = 0;
        float *a = ifx_load_npy(lat, &n), *b = ifx_load_npy(ref, &m);
        CHECK(a && b && n == m, "latents of different sizes");
        if (a && b && n == m) printf("# final latents rel L2 vs %s: %.3g\n", ref, test_rel_l2(a, b, n));
        free(a);
        free(b);
    }
    cJSON_Delete(r.data);
}

const test_entry TESTS[] = {
    {"full_size_measure", test_full_size_measure},
    {"sd15_gguf_q8_0", test_sd15_gguf_q8_0},
    {"sd15_gguf_q4_0", test_sd15_gguf_q4_0},
    {"sd15_gguf_f16", test_sd15_gguf_f16},
    {"sdxl_gguf_q8_0", test_sdxl_gguf_q8_0},
    {"sd15_weight_type", test_sd15_weight_type},
    {0},
};
