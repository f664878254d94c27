/* tests/inference/test_inference.c - inference.run end to end against
 * diffusers, on the tiny reference pipelines (SD1.5 and SDXL), for the four
 * reference schedulers. infer_run is driven directly with a fake host that
 * loads the real device, model, scheduler, conditioning and postprocess
 * plugins from the build tree.
 *
 * Tolerance: final latents relative L2 <= 1e-3 (the reference README's bar:
 * eight steps of float32 rounding differences through the UNet and the
 * solver). */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "sdrt/half.h"
#include "infer_fixture.h"
#include "sdrt/postprocess.h"
#include "strict_hook.h"

#define LATENT_TOL 1e-3

/* metrics.weight_bytes_uploaded: the CPU reads weights where they lie (the
 * mmap): always 0. On a device (the *-strict and *-vulkan tests) the first
 * request on a model in a precision uploads its weights (in that
 * precision's form: another precision's copies are not used) and every
 * later one finds them resident: 0. */
static void check_uploads(const cJSON *data, const char *model_path) {
    static char seen[8][300];
    static int n_seen;
    const char *prec = getenv("SDRT_TEST_PRECISION");
    char model[300];
    snprintf(model, sizeof model, "%s [%s]", model_path, prec ? prec : "auto");
    const cJSON *up = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(data, "metrics"),
                                                       "weight_bytes_uploaded");
    REQUIRE(cJSON_IsNumber(up), "metrics.weight_bytes_uploaded missing");
    int first = 1;
    for (int i = 0; i < n_seen; i++) first &= strcmp(seen[i], model) != 0;
    if (first && n_seen < 8) snprintf(seen[n_seen++], sizeof seen[0], "%s", model);
    if (!getenv("SDRT_TEST_DEVICE_CONFIG")) {
        CHECK(up->valuedouble == 0, "%s: weight bytes uploaded on the CPU: %.0f", model, up->valuedouble);
        return;
    }
    printf("# %s: weight bytes uploaded %.0f (%s request)\n", model, up->valuedouble, first ? "first" : "later");
    if (first) CHECK(up->valuedouble > 0, "%s: the first request uploaded no weights", model);
    else CHECK(up->valuedouble == 0, "%s: a later request uploaded %.0f weight bytes", model, up->valuedouble);
}

/* Runs the reference case `name` (scheduler `cls`) of `model` ("tiny-sd15",
 * "tiny-sdxl") on the weights at `path`; checks the final latents against
 * diffusers' within `tol` and returns them (n_out floats, caller frees). */
static float *run_case(const char *model, const char *path, const char *name, const char *cls,
                       const char *overrides, double tol, size_t *n_out) {
    *n_out = 0;
    if (!ifx_start()) {
        CHECK(0, "plugins did not load (see stderr)");
        return NULL;
    }
    char data[4096], rel[256];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\","
             "\"width\":64,\"height\":64,\"num_inference_steps\":8,\"guidance_scale\":7.5,\"seed\":42,"
             "\"scheduler\":\"%s\",\"scheduler_config\":%s,\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             path, cls, overrides, ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    if (r.status != SDRT_OK) {
        CHECK(0, "%s %s: status %d: %s", path, name, r.status, r.message);
        cJSON_Delete(r.data);
        return NULL;
    }
    CHECK(job.last_step == 8 && job.last_steps == 8, "progress %d/%d", job.last_step, job.last_steps);
    CHECK(ifx_file_exists(ifx_json_string_at(r.data, "images", 0)), "no PNG");
    check_uploads(r.data, path);
    const char *lat = ifx_json_string_at(r.data, "latents", 0);
    snprintf(rel, sizeof rel, "%s/t2i/%s_64x64.latents.npy", model, name);
    size_t n_got = 0, n_want = 0;
    float *got = lat ? ifx_load_npy(lat, &n_got) : NULL, *want = ifx_load_npy(test_path("SDRT_REFERENCE", rel), &n_want);
    /* The key names model, case and layout (the base name of `path`). */
    const char *base = strrchr(path, '/');
    char key[512];
    snprintf(key, sizeof key, "t2i-%s-%s-%s", model, name, base ? base + 1 : path);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(r.data, "processing_time");
    double e = ifx_check_latents(key, got, n_got, want, n_want, tol);
    printf("# %s %s: final latents rel L2 %.3g, processing_time %.3f s\n", path, name, e,
           cJSON_IsNumber(pt) ? pt->valuedouble : -1.0);
    if (got && n_got == n_want) {
        *n_out = n_got;
    } else {
        free(got);
        got = NULL;
    }
    free(want);
    cJSON_Delete(r.data);
    return got;
}

/* One reference case: model "tiny-sd15"/"tiny-sdxl", case name "euler";
 * `layout` "diffusers" (folder) or e.g. "tiny-sd15.safetensors" (the same
 * weights as one A1111-style checkpoint, mapped by the model plugin). */
static void check_case_layout(const char *model, const char *layout, const char *name, const char *cls,
                              const char *overrides) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s", model, layout);
    size_t n;
    free(run_case(model, test_path("SDRT_REFERENCE", rel), name, cls, overrides, LATENT_TOL, &n));
}

static void check_reference_case(const char *model, const char *name, const char *cls, const char *overrides) {
    check_case_layout(model, "diffusers", name, cls, overrides);
}

/* A negative textual-inversion embedding (multi-vector) end to end:
 * diffusers with load_textual_inversion, tests/conditioning/gen_embeddings.py. */
static void test_sd15_negative_embedding(void) {
    REQUIRE(ifx_start(), "plugins did not load (see stderr)");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"tinyemb3, blurry\","
             "\"width\":64,\"height\":64,\"num_inference_steps\":8,\"guidance_scale\":7.5,\"seed\":42,"
             "\"scheduler\":\"EulerDiscreteScheduler\",\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    REQUIRE(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    const char *lat = ifx_json_string_at(r.data, "latents", 0);
    size_t n_got = 0, n_want = 0;
    float *got = lat ? ifx_load_npy(lat, &n_got) : NULL;
    float *want = ifx_load_npy(test_path("SDRT_SOURCE_DIR", "tests/conditioning/data/emb/t2i_negemb.latents.npy"), &n_want);
    CHECK(got && want && n_got == n_want, "latents missing or wrong size (%zu vs %zu)", n_got, n_want);
    if (got && want && n_got == n_want) {
        double e = test_rel_l2(got, want, n_want);
        printf("# negative embedding txt2img: final latents rel L2 %.3g\n", e);
        CHECK(e <= LATENT_TOL, "negative embedding: rel L2 %.3g > %.0e", e, LATENT_TOL);
    }
    free(got);
    free(want);
    cJSON_Delete(r.data);
}

static void test_sd15_single_file(void) {
    check_case_layout("tiny-sd15", "tiny-sd15.safetensors", "euler", "EulerDiscreteScheduler", "{}");
}

static void test_sdxl_single_file(void) {
    check_case_layout("tiny-sdxl", "tiny-sdxl.safetensors", "euler", "EulerDiscreteScheduler", "{}");
}

/* `src` (a safetensors file) copied to `dst` with every F32 tensor -
 * matrices, biases and norm parameters alike - rounded to F16, as a
 * half-precision checkpoint stores them. 0 on success. */
static int write_f16_copy(const char *src, const char *dst) {
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *in = malloc((size_t)size);
    int ok = in && fread(in, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; ok && i >= 0; i--) hlen = hlen << 8 | in[i];
    ok = ok && hlen < (uint64_t)size - 8;
    cJSON *h = ok ? cJSON_ParseWithLength((const char *)in + 8, (size_t)hlen) : NULL;
    const unsigned char *body = in + 8 + hlen;
    /* New offsets in header order; data written in the same order. */
    uint64_t pos = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, h) {
        if (!strcmp(t->string, "__metadata__")) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype"), *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        uint64_t a = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble, b = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        int f32 = !strcmp(dt->valuestring, "F32");
        uint64_t bytes = f32 ? (b - a) / 2 : b - a;
        if (f32) cJSON_SetValuestring(dt, "F16");
        cJSON_AddBoolToObject(t, "src_f32", f32); /* dropped below */
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 0), (double)pos);
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 1), (double)(pos + bytes));
        cJSON_AddItemToObject(t, "src_offset", cJSON_CreateNumber((double)a)); /* dropped below */
        pos += bytes;
    }
    FILE *o = h ? fopen(dst, "wb") : NULL;
    ok = o != NULL;
    /* Header without the helper fields, padded with spaces to 8 bytes. */
    cJSON *clean = h ? cJSON_Duplicate(h, 1) : NULL;
    cJSON_ArrayForEach(t, clean) {
        cJSON_DeleteItemFromObject(t, "src_offset");
        cJSON_DeleteItemFromObject(t, "src_f32");
    }
    char *text = clean ? cJSON_PrintUnformatted(clean) : NULL;
    size_t tl = text ? strlen(text) : 0, padded = (tl + 7) & ~(size_t)7;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    ok = ok && text && fwrite(len8, 1, 8, o) == 8 && fwrite(text, 1, tl, o) == tl;
    for (size_t i = tl; ok && i < padded; i++) ok = fputc(' ', o) != EOF;
    cJSON_ArrayForEach(t, h) {
        if (!ok || !strcmp(t->string, "__metadata__")) continue;
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        uint64_t a = (uint64_t)cJSON_GetObjectItemCaseSensitive(t, "src_offset")->valuedouble;
        uint64_t bytes = (uint64_t)(cJSON_GetArrayItem(off, 1)->valuedouble - cJSON_GetArrayItem(off, 0)->valuedouble);
        int f32 = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "src_f32"));
        if (a + (f32 ? 2 : 1) * bytes > (uint64_t)size - 8 - hlen) {
            ok = 0;
            break;
        }
        if (f32) {
            for (uint64_t i = 0; ok && i < bytes / 2; i++) {
                float v;
                memcpy(&v, body + a + 4 * i, 4); /* little-endian host, as the loader assumes */
                uint16_t hv = sdrt_f32_to_f16(v);
                ok = fwrite(&hv, 2, 1, o) == 1;
            }
        } else {
            ok = fwrite(body + a, 1, (size_t)bytes, o) == bytes;
        }
    }
    if (o && fclose(o) != 0) ok = 0;
    free(text);
    cJSON_Delete(clean);
    cJSON_Delete(h);
    free(in);
    return ok ? 0 : -1;
}

/* A half-precision checkpoint: every parameter, biases and norm scales
 * included, reaches the ops as stored (f16), so on a device the second
 * request finds all of them resident and uploads 0 bytes (check_uploads),
 * and gives the same latents as the first. Against diffusers' f32 result
 * the f16 rounding of the weights stays within LATENT_TOL (2.3e-4 seen). */
static void test_sd15_f16_checkpoint(void) {
    REQUIRE(ifx_start(), "plugins did not load (see stderr)");
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny-sd15-f16.safetensors", ifx_out_dir());
    REQUIRE(write_f16_copy(test_path("SDRT_REFERENCE", "tiny-sd15/tiny-sd15.safetensors"), path) == 0,
            "could not write %s", path);
    size_t n1, n2;
    float *a = run_case("tiny-sd15", path, "euler", "EulerDiscreteScheduler", "{}", LATENT_TOL, &n1);
    float *b = run_case("tiny-sd15", path, "euler", "EulerDiscreteScheduler", "{}", LATENT_TOL, &n2);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0, "the second request gave other latents");
    free(a);
    free(b);
}

/* The strict device's counter hooks, from the module the device plugin
 * loaded (the first extra_backends entry of SDRT_TEST_DEVICE_CONFIG), or
 * 0 when the tests do not run on it. */
static int strict_hooks(sdrt_strict_get_counters_fn *get, sdrt_strict_reset_counters_fn *reset) {
    cJSON *cfg = getenv("SDRT_TEST_DEVICE_CONFIG") ? cJSON_Parse(getenv("SDRT_TEST_DEVICE_CONFIG")) : NULL;
    const cJSON *path = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cfg, "extra_backends"), 0);
    void *so = cJSON_IsString(path) ? dlopen(path->valuestring, RTLD_NOW | RTLD_NOLOAD) : NULL;
    cJSON_Delete(cfg);
    *get = so ? (sdrt_strict_get_counters_fn)dlsym(so, SDRT_STRICT_COUNTERS_SYMBOL) : NULL;
    *reset = so ? (sdrt_strict_reset_counters_fn)dlsym(so, SDRT_STRICT_RESET_SYMBOL) : NULL;
    if (so) dlclose(so); /* the device plugin keeps it loaded */
    return *get && *reset;
}

/* What crosses from the device to the host in a txt2img request, on the
 * strict device (elsewhere it checks nothing): the UNet prediction once per
 * step (the latents stay on the host, docs/architecture.md) and the decoded
 * pixels, nothing else. The prompt embeddings reach the UNet as device
 * tensors of the conditioning plugin (sdrt_cond_result's *_dev members);
 * before, they came back to the host first (2 x [1, 77, 32] floats here). */
static void test_txt2img_device_to_host_bytes(void) {
    sdrt_strict_get_counters_fn get;
    sdrt_strict_reset_counters_fn reset;
    REQUIRE(ifx_start(), "plugins did not load");
    if (!strict_hooks(&get, &reset)) {
        printf("# skipped: runs on the strict device (inference-strict)\n");
        return;
    }
    const int steps = 4, side = 64, rows = 2 /* CFG */, latent_c = 4;
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\","
             "\"width\":%d,\"height\":%d,\"num_inference_steps\":%d,\"guidance_scale\":7.5,\"seed\":5,"
             "\"scheduler\":\"euler\",\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), side, side, steps, ifx_out_dir());
    reset();
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    sdrt_strict_counters c;
    get(&c);
    REQUIRE(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    cJSON_Delete(r.data);
    uint64_t pred = (uint64_t)steps * rows * latent_c * (side / 8) * (side / 8) * sizeof(float);
    uint64_t pixels = (uint64_t)3 * side * side * sizeof(float);
    printf("# txt2img %dx%d, %d steps: device->host %llu bytes (predictions %llu + pixels %llu), host->device %llu\n",
           side, side, steps, (unsigned long long)c.d2h_bytes, (unsigned long long)pred, (unsigned long long)pixels,
           (unsigned long long)c.h2d_bytes);
    CHECK(c.d2h_bytes == pred + pixels, "device->host %llu bytes, want %llu (UNet predictions + pixels)",
          (unsigned long long)c.d2h_bytes, (unsigned long long)(pred + pixels));
}

#define CASE(fn, model, name, cls, overrides) \
    static void fn(void) { check_reference_case(model, name, cls, overrides); }

CASE(test_sd15_euler, "tiny-sd15", "euler", "EulerDiscreteScheduler", "{}")
CASE(test_sd15_euler_a, "tiny-sd15", "euler_a", "EulerAncestralDiscreteScheduler", "{}")
CASE(test_sd15_dpmpp_2m_karras, "tiny-sd15", "dpmpp_2m_karras", "DPMSolverMultistepScheduler",
     "{\"use_karras_sigmas\":true}")
CASE(test_sd15_ddim, "tiny-sd15", "ddim", "DDIMScheduler", "{}")
CASE(test_sdxl_euler, "tiny-sdxl", "euler", "EulerDiscreteScheduler", "{}")
CASE(test_sdxl_euler_a, "tiny-sdxl", "euler_a", "EulerAncestralDiscreteScheduler", "{}")
CASE(test_sdxl_dpmpp_2m_karras, "tiny-sdxl", "dpmpp_2m_karras", "DPMSolverMultistepScheduler",
     "{\"use_karras_sigmas\":true}")
CASE(test_sdxl_ddim, "tiny-sdxl", "ddim", "DDIMScheduler", "{}")

/* Cancellation reported at step 3 stops the run with CANCELLED. */
static void test_cancel(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"width\":64,\"height\":64,\"num_inference_steps\":8,"
             "\"seed\":1,\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), ifx_out_dir());
    struct sdrt_job job = {.cancel_at_step = 3};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_CANCELLED, "status %d (%s), want CANCELLED", r.status, r.message);
    CHECK(job.last_step == 3, "ran to step %d", job.last_step);
    cJSON_Delete(r.data);
}

/* A device out of memory fails that request with RESOURCE_EXHAUSTED and the
 * next request succeeds. Runs as inference-strict-oom (the strict device
 * with 48 MB of memory: a 1536x1536 UNet step does not fit, 64x64 does);
 * elsewhere it checks nothing. */
static void test_device_oom_recovers(void) {
    if (!getenv("SDRT_TEST_EXPECT_OOM")) {
        printf("# skipped: runs in inference-strict-oom\n");
        return;
    }
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096];
    const char *model = test_path("SDRT_REFERENCE", "tiny-sd15/diffusers");
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"width\":1536,\"height\":1536,\"num_inference_steps\":1,"
             "\"seed\":1,\"output\":{\"dir\":\"%s\"}}", model, ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_RESOURCE_EXHAUSTED, "large request: status %d (%s), want RESOURCE_EXHAUSTED", r.status,
          r.message);
    printf("# large request: %s\n", r.message);
    cJSON_Delete(r.data);
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"width\":64,\"height\":64,\"num_inference_steps\":2,"
             "\"seed\":1,\"output\":{\"dir\":\"%s\"}}", model, ifx_out_dir());
    struct sdrt_job job2 = {0};
    r = ifx_call("inference.run", data, &job2);
    CHECK(r.status == SDRT_OK, "the next request: status %d (%s)", r.status, r.message);
    cJSON_Delete(r.data);
}

/* A batch of two without guidance (single UNet rows), and the response's
 * per-image details. */
static void test_batch_no_cfg(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"width\":72,\"height\":48,\"num_inference_steps\":3,"
             "\"guidance_scale\":1.0,\"seed\":7,\"batch_size\":2,\"scheduler\":\"euler\","
             "\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"), ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    REQUIRE(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.data, "images")) == 2, "want 2 images");
    CHECK(ifx_file_exists(ifx_json_string_at(r.data, "images", 1)) && ifx_file_exists(ifx_json_string_at(r.data, "latents", 1)),
          "second image or latents missing");
    const cJSON *info = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.data, "images_info"), 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(info, "width")->valuedouble == 72 &&
              cJSON_GetObjectItemCaseSensitive(info, "height")->valuedouble == 48 &&
              cJSON_GetObjectItemCaseSensitive(info, "seed")->valuedouble == 7,
          "images_info");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r.data, "processing_time")), "processing_time");
    cJSON_Delete(r.data);
}

static void test_missing_model(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", "{\"model_id\":\"/nonexistent/model\",\"prompt\":\"x\"}", &job);
    CHECK(r.status == SDRT_NOT_FOUND, "status %d: %s", r.status, r.message);
}

static void test_unknown_scheduler(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096];
    snprintf(data, sizeof data, "{\"model_id\":\"%s\",\"prompt\":\"x\",\"scheduler\":\"NoSuchScheduler\"}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"));
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_NOT_FOUND && strstr(r.message, "NoSuchScheduler"), "status %d: %s", r.status, r.message);
}

/* Opt-in (SDRT_FULL_SD15=path of a full-size SD1.5 single-file checkpoint,
 * e.g. from tools/mkckpt): two guided steps at 256x256 through every real
 * component, checking that the full-size name mapping, configs and shapes
 * agree with the UNet builder and that the latents stay finite. */
static void test_full_size_sd15(void) {
    const char *ckpt = getenv("SDRT_FULL_SD15");
    if (!ckpt || !*ckpt) {
        printf("# skipped: set SDRT_FULL_SD15 to a full-size SD1.5 checkpoint\n");
        return;
    }
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"width\":256,\"height\":256,"
             "\"num_inference_steps\":2,\"seed\":3,\"scheduler\":\"euler\",\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             ckpt, ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    REQUIRE(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    size_t n = 0;
    const char *lat = ifx_json_string_at(r.data, "latents", 0);
    float *x = lat ? ifx_load_npy(lat, &n) : NULL;
    int finite = x && n == 4 * 32 * 32;
    for (size_t i = 0; finite && i < n; i++) finite = x[i] == x[i] && x[i] < 1e30f && x[i] > -1e30f;
    CHECK(finite, "latents missing, wrong size (%zu) or not finite", n);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(r.data, "processing_time");
    printf("# full-size SD1.5 256x256, 2 steps: processing_time %.2f s\n", cJSON_IsNumber(pt) ? pt->valuedouble : -1.0);
    free(x);
    cJSON_Delete(r.data);
}

static void test_shutdown(void) {
    ifx_stop();
}

/* `device` is checked, not ignored: a device that does not exist is
 * NOT_FOUND naming it, a malformed id INVALID_ARGUMENT, the deployment's
 * own device (and "auto") run. */
static void test_device_field(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    static const struct { const char *dev; sdrt_status want; } CASES[] = {
        {"cuda:0", SDRT_NOT_FOUND}, {"cpu:99", SDRT_NOT_FOUND}, {"vulkan:7", SDRT_NOT_FOUND},
        {"gpu please", SDRT_INVALID_ARGUMENT}, {"cpu:", SDRT_INVALID_ARGUMENT},
    };
    char data[4096];
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        snprintf(data, sizeof data, "{\"model_id\":\"%s\",\"prompt\":\"x\",\"device\":\"%s\",\"output\":{\"dir\":\"%s\"}}",
                 test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), CASES[i].dev, ifx_out_dir());
        struct sdrt_job job = {0};
        ifx_result r = ifx_call("inference.run", data, &job);
        CHECK(r.status == CASES[i].want && strstr(r.message, "device") && strstr(r.message, CASES[i].dev),
              "device %s: status %d: %s", CASES[i].dev, r.status, r.message);
        cJSON_Delete(r.data);
    }
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"x\",\"device\":\"cpu:0\",\"width\":64,\"height\":64,"
             "\"num_inference_steps\":1,\"output\":{\"dir\":\"%s\",\"prefix\":\"devcheck\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_OK, "cpu:0: %d %s", r.status, r.message);
    const char *img = ifx_json_string_at(r.data, "images", 0);
    const char *base = img ? strrchr(img, '/') : NULL;
    CHECK(base && strncmp(base + 1, "devcheck", 8) == 0, "output.prefix not used: %s", img ? img : "(none)");
    cJSON_Delete(r.data);
}

/* The bytes of the PNG's "parameters" text chunk (tEXt: key NUL text). */
static char *png_parameters(const char *path) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return NULL;
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t i = 8; i + 12 <= n;) {
        size_t len = (size_t)buf[i] << 24 | (size_t)buf[i + 1] << 16 | (size_t)buf[i + 2] << 8 | buf[i + 3];
        if (i + 12 + len > n) break;
        if ((!memcmp(buf + i + 4, "tEXt", 4) || !memcmp(buf + i + 4, "iTXt", 4)) && len > 11 &&
            !memcmp(buf + i + 8, "parameters", 11)) {
            const unsigned char *t = buf + i + 8 + 11, *end = buf + i + 8 + len;
            if (!memcmp(buf + i + 4, "iTXt", 4)) { /* compression flag, method, language NUL, keyword NUL */
                t += 2;
                while (t < end && *t) t++;
                t++;
                while (t < end && *t) t++;
                t++;
            }
            char *out = t <= end ? strndup((const char *)t, (size_t)(end - t)) : NULL;
            return out;
        }
        i += 12 + len;
    }
    return NULL;
}

/* The PNG says what ran: a request naming no steps, guidance or scheduler
 * runs the model's defaults (50 steps; CFG 5 for SDXL; its Euler
 * scheduler), and its metadata must say 50 / 5 / Euler, not postprocess's
 * own guesses (30 / 7.5). */
static void test_metadata_is_what_ran(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a fox\",\"width\":64,\"height\":64,\"seed\":5,"
             "\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"), ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    REQUIRE(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    CHECK(job.last_steps == 50, "ran %d steps, the SDXL default is 50", job.last_steps);
    char *params = png_parameters(ifx_json_string_at(r.data, "images", 0));
    CHECK(params && strstr(params, "Steps: 50,") && strstr(params, "CFG scale: 5,") && strstr(params, "Sampler: Euler,") &&
              strstr(params, "Seed: 5,") && strstr(params, "Size: 64x64"),
          "parameters: %s", params ? params : "(none)");
    free(params);
    cJSON_Delete(r.data);
}

/* Writes a copy of the single-file tiny SD1.5 checkpoint whose UNet output
 * bias is NaN into `path`. */
static void nan_checkpoint(char *path, size_t pathlen) {
    const char *src = test_path("SDRT_REFERENCE", "tiny-sd15/tiny-sd15.safetensors");
    FILE *f = fopen(src, "rb");
    REQUIRE(f, "open %s", src);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    REQUIRE(b && fread(b, 1, (size_t)n, f) == (size_t)n, "read");
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    char *hdr = strndup((const char *)b + 8, (size_t)hl);
    cJSON *h = cJSON_Parse(hdr);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(h, "model.diffusion_model.out.2.bias");
    REQUIRE(t && !strcmp(cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring, "F32"), "out.2.bias F32");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    size_t b0 = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, b1 = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    float nan = NAN;
    for (size_t k = b0; k + 4 <= b1; k += 4) memcpy(b + 8 + hl + k, &nan, 4);
    snprintf(path, pathlen, "%s/nan-weights.safetensors", ifx_out_dir());
    f = fopen(path, "wb");
    REQUIRE(f && fwrite(b, 1, (size_t)n, f) == (size_t)n, "write %s", path);
    fclose(f);
    cJSON_Delete(h);
    free(hdr);
    free(b);
}

/* NaN weights used to give an all-black PNG marked success. */
static void test_nan_weights_fail(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    char data[8192], ckpt[4300];
    nan_checkpoint(ckpt, sizeof ckpt);
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"x\",\"width\":64,\"height\":64,\"num_inference_steps\":2,"
             "\"output\":{\"dir\":\"%s\",\"prefix\":\"nan\"}}",
             ckpt, ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_FAILED_PRECONDITION && strstr(r.message, "NaN") && strstr(r.message, "nan-weights"),
          "status %d: %s", r.status, r.message);
    cJSON_Delete(r.data);
}

/* "precision": a value outside the list is INVALID_ARGUMENT naming the
 * field; a value the device cannot run is UNSUPPORTED naming the field and
 * the device, before any model loads (Vulkan: "int8"; the strict test
 * family predates the key and runs "auto" and "f32"). On the CPU (whose other
 * modes come and go with its kernels) "f32" runs. */
static void test_precision_field(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    const char *cfg = getenv("SDRT_TEST_DEVICE_CONFIG");
    const char *dev = !cfg ? "cpu:0" : strstr(cfg, "vulkan:") ? "vulkan:0" : strstr(cfg, "strict:") ? "strict:0" : NULL;
    const char *model = test_path("SDRT_REFERENCE", "tiny-sd15/diffusers");
    char data[4096];
    static const char *const bad[] = {"\"fp16\"", "\"F16\"", "16", "\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(data, sizeof data, "{\"model_id\":\"%s\",\"prompt\":\"x\",\"precision\":%s,\"output\":{\"dir\":\"%s\"}}",
                 model, bad[i], ifx_out_dir());
        struct sdrt_job job = {0};
        ifx_result r = ifx_call("inference.run", data, &job);
        CHECK(r.status == SDRT_INVALID_ARGUMENT && strncmp(r.message, "precision:", 10) == 0,
              "precision %s: status %d: %s", bad[i], r.status, r.message);
        cJSON_Delete(r.data);
    }
    const char *refused = dev && !strcmp(dev, "vulkan:0") ? "int8" : dev && !strcmp(dev, "strict:0") ? "f16" : NULL;
    if (refused) {
        snprintf(data, sizeof data,
                 "{\"model_id\":\"%s\",\"prompt\":\"x\",\"width\":64,\"height\":64,\"num_inference_steps\":2,"
                 "\"precision\":\"%s\",\"output\":{\"dir\":\"%s\"}}", model, refused, ifx_out_dir());
        struct sdrt_job job = {0};
        ifx_result r = ifx_call("inference.run", data, &job);
        printf("# precision %s on %s: %s\n", refused, dev, r.message);
        CHECK(r.status == SDRT_UNSUPPORTED && strncmp(r.message, "precision:", 10) == 0 && strstr(r.message, refused) &&
                  strstr(r.message, dev),
              "precision %s on %s: status %d: %s", refused, dev, r.status, r.message);
        CHECK(job.last_step == 0, "ran %d steps", job.last_step);
        cJSON_Delete(r.data);
    }
    if (dev && !strcmp(dev, "cpu:0")) {
        snprintf(data, sizeof data,
                 "{\"model_id\":\"%s\",\"prompt\":\"x\",\"width\":64,\"height\":64,\"num_inference_steps\":1,"
                 "\"precision\":\"f32\",\"output\":{\"dir\":\"%s\"}}", model, ifx_out_dir());
        struct sdrt_job job = {0};
        ifx_result r = ifx_call("inference.run", data, &job);
        CHECK(r.status == SDRT_OK, "precision f32 on the CPU: status %d: %s", r.status, r.message);
        cJSON_Delete(r.data);
    }
}

/* <out>/<name>: the tiny SD1.5 VAE (weights linked in place) with its
 * config's force_upcast set to `upcast`. 0 on success. */
static int vae_folder(const char *name, int upcast, char *dir, size_t n) {
    snprintf(dir, n, "%s/%s", ifx_out_dir(), name);
    char path[2400], *text = NULL;
    FILE *f = fopen(test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/vae/config.json"), "rb");
    if (!f || mkdir(dir, 0755) != 0) {
        if (f) fclose(f);
        return -1;
    }
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    cJSON *cfg = cJSON_Parse(buf);
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "force_upcast");
    cJSON_AddBoolToObject(cfg, "force_upcast", upcast);
    text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = text ? fopen(path, "wb") : NULL;
    int ok = f && fputs(text, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    cJSON_free(text);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    ok = ok && symlink(test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/vae/diffusion_pytorch_model.safetensors"), path) == 0;
    return ok ? 0 : -1;
}

/* Decodes `lat` [1,4,8,8] with the VAE folder `dir` in `precision`; the
 * status, and the pixels in *rgb (postprocess-owned; NULL on failure). */
static sdrt_status vae_decode(const sdrt_model_iface *mi, const sdrt_postprocess_iface *post, const char *dir,
                              const float *lat, const char *precision, float **rgb, char *msg, size_t n) {
    sdrt_model *m = NULL;
    sdrt_error *e = mi->open(mi->self, dir, NULL, &m);
    *rgb = NULL;
    if (!e) {
        sdrt_vae_options opt;
        sdrt_vae_options_init(&opt);
        opt.precision = precision;
        int h = 0, w = 0;
        e = post->decode(post->self, m, lat, 1, 4, 8, 8, &opt, NULL, rgb, &h, &w);
        mi->close(mi->self, m);
    }
    sdrt_status st = e ? e->code : SDRT_OK;
    snprintf(msg, n, "%s", e ? e->message : "");
    if (e) ifx_plugin()->api->error_free(e);
    return st;
}

/* diffusers' force_upcast: a VAE whose config says so decodes in f32
 * whatever precision is asked - the same pixels as an f32 decode, bit for
 * bit (so an f16 request on the CPU, which runs no f16, still decodes);
 * one that says false follows the precision: on Vulkan f16 weights, pixels
 * within half-precision rounding of the f32 decode but not equal to it;
 * on the CPU and the strict device UNSUPPORTED naming `precision`. */
static void test_vae_force_upcast(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    char on[1200], off[1200], msg[512];
    REQUIRE(vae_folder("vae-upcast-on", 1, on, sizeof on) == 0 && vae_folder("vae-upcast-off", 0, off, sizeof off) == 0,
            "could not write the VAE folders");
    sdrt_error *e = NULL;
    const sdrt_host_api *api = ifx_plugin()->api;
    const sdrt_model_iface *mi = api->acquire(ifx_plugin()->host, SDRT_MODEL_IFACE_ID, &e);
    const sdrt_postprocess_iface *post = api->acquire(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID, &e);
    REQUIRE(mi && post, "no model or postprocess interface");
    float lat[4 * 8 * 8];
    srand((unsigned)test_seed());
    for (int i = 0; i < 4 * 8 * 8; i++) lat[i] = 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
    const size_t npx = 64 * 64 * 3;
    float *ref = NULL, *up = NULL, *f16 = NULL;
    sdrt_status st = vae_decode(mi, post, on, lat, "f32", &ref, msg, sizeof msg);
    CHECK(st == SDRT_OK, "f32 decode: %s", msg);
    st = vae_decode(mi, post, on, lat, "f16", &up, msg, sizeof msg);
    CHECK(st == SDRT_OK && ref && up && memcmp(ref, up, npx * sizeof *ref) == 0,
          "force_upcast true, precision f16: status %d (%s), not the f32 decode's pixels", st, msg);
    const char *cfg = getenv("SDRT_TEST_DEVICE_CONFIG");
    st = vae_decode(mi, post, off, lat, "f16", &f16, msg, sizeof msg);
    if (cfg && strstr(cfg, "vulkan:")) {
        double d = st == SDRT_OK && ref ? test_rel_l2(f16, ref, npx) : 1.0;
        printf("# force_upcast false, f16 weights: pixels rel L2 %.3g against the f32 decode\n", d);
        CHECK(st == SDRT_OK && d > 0 && d <= 1e-2, "force_upcast false, f16: status %d (%s), rel L2 %.3g", st, msg, d);
    } else {
        CHECK(st == SDRT_UNSUPPORTED && strncmp(msg, "precision:", 10) == 0,
              "force_upcast false, f16 on a device without f16: status %d (%s)", st, msg);
    }
    post->free(post->self, ref);
    post->free(post->self, up);
    post->free(post->self, f16);
    api->release(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID);
    api->release(ifx_plugin()->host, SDRT_MODEL_IFACE_ID);
}

/* bf16 weights on Vulkan (the one device that runs them): SD1.5 Euler
 * against the CPU backend's latents, with the f16 run's bound. Runs only in
 * the device-parity runs on vulkan:0 (inference-vulkan-f16). */
static void test_sd15_euler_bf16(void) {
    const char *cfg = getenv("SDRT_TEST_DEVICE_CONFIG"), *cpu = getenv("SDRT_TEST_CPU_LATENTS");
    if (!cfg || !strstr(cfg, "vulkan:") || !cpu) {
        printf("# skipped: runs in inference-vulkan-f16\n");
        return;
    }
    char *was = getenv("SDRT_TEST_PRECISION") ? strdup(getenv("SDRT_TEST_PRECISION")) : NULL;
    setenv("SDRT_TEST_PRECISION", "bf16", 1);
    check_reference_case("tiny-sd15", "euler", "EulerDiscreteScheduler", "{}");
    if (was) setenv("SDRT_TEST_PRECISION", was, 1);
    else unsetenv("SDRT_TEST_PRECISION");
    free(was);
}

/* A schedule with beta_start > beta_end is refused before any step. */
static void test_decreasing_betas_refused(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"x\",\"width\":64,\"height\":64,\"num_inference_steps\":2,"
             "\"scheduler_config\":{\"beta_start\":0.012,\"beta_end\":0.00085},\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), ifx_out_dir());
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_INVALID_ARGUMENT && strstr(r.message, "beta_start"), "status %d: %s", r.status, r.message);
    CHECK(job.last_step == 0, "ran %d steps", job.last_step);
    cJSON_Delete(r.data);
}

const test_entry TESTS[] = {
    {"sd15_euler", test_sd15_euler},
    {"sd15_euler_a", test_sd15_euler_a},
    {"sd15_dpmpp_2m_karras", test_sd15_dpmpp_2m_karras},
    {"sd15_ddim", test_sd15_ddim},
    {"sdxl_euler", test_sdxl_euler},
    {"sdxl_euler_a", test_sdxl_euler_a},
    {"sdxl_dpmpp_2m_karras", test_sdxl_dpmpp_2m_karras},
    {"sdxl_ddim", test_sdxl_ddim},
    {"sd15_negative_embedding", test_sd15_negative_embedding},
    {"sd15_single_file", test_sd15_single_file},
    {"sdxl_single_file", test_sdxl_single_file},
    {"sd15_f16_checkpoint", test_sd15_f16_checkpoint},
    {"txt2img_device_to_host_bytes", test_txt2img_device_to_host_bytes},
    {"cancel", test_cancel},
    {"device_oom_recovers", test_device_oom_recovers},
    {"batch_no_cfg", test_batch_no_cfg},
    {"missing_model", test_missing_model},
    {"unknown_scheduler", test_unknown_scheduler},
    {"full_size_sd15", test_full_size_sd15},
    /* after the reference cases: those count the weight uploads of each
     * model's first request (inference-strict) */
    {"device_field", test_device_field},
    {"metadata_is_what_ran", test_metadata_is_what_ran},
    {"nan_weights_fail", test_nan_weights_fail},
    {"decreasing_betas_refused", test_decreasing_betas_refused},
    {"precision_field", test_precision_field},
    {"vae_force_upcast", test_vae_force_upcast},
    {"sd15_euler_bf16", test_sd15_euler_bf16},
    {"shutdown", test_shutdown},
    {0},
};
