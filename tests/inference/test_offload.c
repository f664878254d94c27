/* tests/inference/test_offload.c - the memory modes end to end: offload
 * "none" / "model" / "sequential" and the VAE's tiling and slicing fields
 * of inference.run, on the tiny SD1.5 pipeline (64x64, Euler, 8 steps,
 * the diffusers reference case of test_inference.c).
 *
 * Runs as
 *  - inference-offload (CPU): the modes are no-ops there (weights are read
 *    where they lie): same latents, 0 bytes uploaded;
 *  - inference-offload-strict / -vulkan (no device budget): every mode gives
 *    the all-resident run's latents bit for bit, and the uploads each mode
 *    reports are what it promises (below); on the strict device the peak
 *    device bytes of each mode are measured and ordered;
 *  - inference-offload-budget-* (SDRT_TEST_OFFLOAD_LEAST=model|sequential,
 *    the device's memory set in the config between two modes' peaks): the
 *    modes weaker than LEAST fail with RESOURCE_EXHAUSTED, the others
 *    succeed with the same latents, within 1e-3 of diffusers; in the
 *    sequential budget a 128x128 decode fits only tiled (vae_tiling_budget). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "infer_fixture.h"
#include "strict_hook.h"

#define LATENT_TOL 1e-3
#define STEPS 8

static const char *const MODES[3] = {"none", "model", "sequential"};

typedef struct run_out {
    sdrt_status status;
    char message[1024];
    float *latents; /* final latents, or NULL */
    size_t n;
    double uploaded; /* metrics.weight_bytes_uploaded */
    double seconds;  /* processing_time */
    double per_step; /* seconds per step after the first (the first may upload) */
    uint64_t peak;   /* strict device: the most device bytes the request added to what
                      * was allocated when it started (0 elsewhere) */
} run_out;

/* The strict device's counter hooks (see test_inference.c), or 0. */
static int strict_hooks(sdrt_strict_get_counters_fn *get, sdrt_strict_reset_counters_fn *reset) {
    cJSON *cfg = getenv("SDRT_TEST_DEVICE_CONFIG") ? cJSON_Parse(getenv("SDRT_TEST_DEVICE_CONFIG")) : NULL;
    const cJSON *path = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cfg, "extra_backends"), 0);
    void *so = cJSON_IsString(path) ? dlopen(path->valuestring, RTLD_NOW | RTLD_NOLOAD) : NULL;
    cJSON_Delete(cfg);
    *get = so ? (sdrt_strict_get_counters_fn)dlsym(so, SDRT_STRICT_COUNTERS_SYMBOL) : NULL;
    *reset = so ? (sdrt_strict_reset_counters_fn)dlsym(so, SDRT_STRICT_RESET_SYMBOL) : NULL;
    if (so) dlclose(so);
    return *get && *reset;
}

static int on_device(void) {
    return getenv("SDRT_TEST_DEVICE_CONFIG") != NULL;
}

/* One txt2img request of the reference case with `extra` fields (JSON
 * members, "" for none) and `steps` steps. */
static run_out run(const char *extra, int steps) {
    run_out o = {0};
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\","
             "\"width\":64,\"height\":64,\"num_inference_steps\":%d,\"guidance_scale\":7.5,\"seed\":42,"
             "\"scheduler\":\"EulerDiscreteScheduler\",\"output\":{\"dir\":\"%s\",\"save_latents\":true}%s%s}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), steps, ifx_out_dir(), *extra ? "," : "", extra);
    sdrt_strict_get_counters_fn get;
    sdrt_strict_reset_counters_fn reset;
    int strict = strict_hooks(&get, &reset);
    uint64_t start = 0;
    if (strict) {
        /* Copies earlier requests left resident stay allocated (nothing
         * needed their room): the request's own peak is above them. */
        sdrt_strict_counters c;
        reset();
        get(&c);
        start = c.live_bytes;
    }
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    if (strict) {
        sdrt_strict_counters c;
        get(&c);
        o.peak = c.peak_bytes - start;
    }
    o.status = r.status;
    snprintf(o.message, sizeof o.message, "%s", r.message);
    if (r.status == SDRT_OK) {
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.data, "metrics"),
                                                           "weight_bytes_uploaded");
        o.uploaded = cJSON_IsNumber(up) ? up->valuedouble : -1;
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(r.data, "processing_time");
        o.seconds = cJSON_IsNumber(pt) ? pt->valuedouble : -1;
        o.per_step = steps > 1 ? (job.t_last_step - job.t_first_step) / (steps - 1) : -1;
        o.latents = ifx_load_npy(ifx_json_string_at(r.data, "latents", 0), &o.n);
        CHECK(ifx_file_exists(ifx_json_string_at(r.data, "images", 0)), "%s: no PNG", extra);
    }
    cJSON_Delete(r.data);
    return o;
}

static run_out run_mode(int mode, int steps) {
    char extra[64];
    snprintf(extra, sizeof extra, "\"offload\":\"%s\"", MODES[mode]);
    return run(extra, steps);
}

/* Latents within LATENT_TOL of diffusers' (the reference case's file). */
static void check_reference(const run_out *o, const char *what) {
    size_t n = 0;
    float *want = ifx_load_npy(test_path("SDRT_REFERENCE", "tiny-sd15/t2i/euler_64x64.latents.npy"), &n);
    REQUIRE(want && o->latents && o->n == n, "%s: latents missing (%zu vs %zu)", what, o->n, n);
    double e = test_rel_l2(o->latents, want, n);
    printf("# %s: rel L2 %.3g against diffusers\n", what, e);
    CHECK(e <= LATENT_TOL, "%s: rel L2 %.3g > %g", what, e, LATENT_TOL);
    free(want);
}

/* Bit for bit (the modes move weights, never change the arithmetic). */
static void check_same(const run_out *a, const run_out *b, const char *what) {
    CHECK(a->latents && b->latents && a->n == b->n, "%s: latents missing", what);
    if (!a->latents || !b->latents || a->n != b->n) return;
    double e = test_rel_l2(b->latents, a->latents, a->n);
    CHECK(memcmp(a->latents, b->latents, a->n * sizeof(float)) == 0, "%s: latents differ (rel L2 %.3g)", what, e);
}

/* Without a device budget every mode runs and gives the all-resident
 * latents. Uploads (on a device): the first "none" request uploads every
 * weight the pipeline reads once (W: text encoder, UNet, VAE decoder) and
 * a second one nothing (resident); "model" uploads W on every request (each
 * component once, freed after it ran); "sequential" uploads the UNet's
 * weights at every step, so two runs of 8 and 4 steps differ by 4 x U, U
 * the UNet's bytes, and 8 steps upload W + 7U + T: T the text encoder's
 * weights once more (the prompt and the negative prompt are two encoder
 * passes, and each pass uploads every layer again), at most W - U. */
static void test_offload_modes_equal(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    if (getenv("SDRT_TEST_OFFLOAD_LEAST")) {
        printf("# skipped: runs without a device budget\n");
        return;
    }
    run_out none1 = run_mode(0, STEPS), none2 = run_mode(0, STEPS);
    run_out model1 = run_mode(1, STEPS), model2 = run_mode(1, STEPS);
    run_out seq8 = run_mode(2, STEPS), seq4 = run_mode(2, 4);
    run_out *all[] = {&none1, &none2, &model1, &model2, &seq8, &seq4};
    const char *names[] = {"none (first)", "none (second)", "model", "model (again)", "sequential", "sequential, 4 steps"};
    for (int i = 0; i < 6; i++) {
        CHECK(all[i]->status == SDRT_OK, "%s: status %d: %s", names[i], all[i]->status, all[i]->message);
        printf("# offload %-20s weight bytes uploaded %12.0f, peak device bytes %9llu, %.3f s, %.4f s/step\n",
               names[i], all[i]->uploaded, (unsigned long long)all[i]->peak, all[i]->seconds, all[i]->per_step);
    }
    check_reference(&none1, "offload none");
    check_same(&none1, &none2, "none, second request");
    check_same(&none1, &model1, "offload model");
    check_same(&none1, &model2, "offload model, second request");
    check_same(&none1, &seq8, "offload sequential");
    if (!on_device()) {
        for (int i = 0; i < 6; i++) CHECK(all[i]->uploaded == 0, "%s: %.0f bytes uploaded on the CPU", names[i], all[i]->uploaded);
    } else {
        double W = none1.uploaded, U = (seq8.uploaded - seq4.uploaded) / 4;
        CHECK(W > 0, "the first request uploaded nothing");
        CHECK(none2.uploaded == 0, "resident weights were uploaded again: %.0f", none2.uploaded);
        CHECK(model1.uploaded == W && model2.uploaded == W, "model offload uploaded %.0f and %.0f, want %.0f each",
              model1.uploaded, model2.uploaded, W);
        CHECK(U > 0 && U < W, "sequential: %.0f bytes per step (W %.0f)", U, W);
        double T = seq8.uploaded - W - (STEPS - 1) * U;
        CHECK(T >= 0 && T < W - U, "sequential: %.0f bytes, want W + 7U + T = %.0f + T with 0 <= T < W - U",
              seq8.uploaded, W + (STEPS - 1) * U);
        CHECK(seq4.uploaded == W + 3 * U + T, "sequential, 4 steps: %.0f bytes, want W + 3U + T = %.0f", seq4.uploaded,
              W + 3 * U + T);
        printf("# W (all weights read) %.0f, U (UNet, per step) %.0f, T (text encoder, second pass) %.0f\n", W, U, T);
    }
    sdrt_strict_get_counters_fn get;
    sdrt_strict_reset_counters_fn reset;
    if (strict_hooks(&get, &reset)) {
        /* none1 starts with nothing resident (this test runs first) and
         * makes every weight resident; model and sequential add their own
         * copies above those. */
        CHECK(model1.peak < none1.peak, "model offload peak %llu not below all-resident %llu",
              (unsigned long long)model1.peak, (unsigned long long)none1.peak);
        CHECK(seq8.peak < model1.peak, "sequential peak %llu not below model offload %llu",
              (unsigned long long)seq8.peak, (unsigned long long)model1.peak);
    }
    for (int i = 0; i < 6; i++) free(all[i]->latents);
}

/* With the device's memory set between two modes' peaks (the test's
 * config), the modes weaker than SDRT_TEST_OFFLOAD_LEAST fail with
 * RESOURCE_EXHAUSTED naming the device, and the others succeed with the
 * same latents, within the reference tolerance. The failed requests leave
 * nothing behind that stops the next one. */
static void test_offload_budget(void) {
    const char *least = getenv("SDRT_TEST_OFFLOAD_LEAST");
    if (!least) {
        printf("# skipped: runs with a device budget (inference-offload-budget-*)\n");
        return;
    }
    REQUIRE(ifx_start(), "plugins did not load");
    int from = strcmp(least, "sequential") == 0 ? 2 : 1;
    run_out ok[3] = {{0}};
    for (int m = 0; m < 3; m++) {
        run_out o = run_mode(m, STEPS);
        printf("# budget, offload %s: status %d%s%s, uploaded %.0f\n", MODES[m], o.status, o.status ? ": " : "",
               o.status ? o.message : "", o.uploaded);
        if (m < from) {
            CHECK(o.status == SDRT_RESOURCE_EXHAUSTED, "offload %s fits the budget (status %d: %s)", MODES[m],
                  o.status, o.message);
            free(o.latents);
        } else {
            CHECK(o.status == SDRT_OK, "offload %s: status %d: %s", MODES[m], o.status, o.message);
            ok[m] = o;
        }
    }
    for (int m = from; m < 3; m++)
        if (ok[m].latents) check_reference(&ok[m], MODES[m]);
    if (from == 1) check_same(&ok[1], &ok[2], "sequential against model");
    for (int m = 0; m < 3; m++) free(ok[m].latents);
}

/* The VAE fields of inference.run: tiling on with small tiles and slicing
 * run (the decode's own accuracy is tests/vae's), tiling "off" equals the
 * default at this size, and bad values are refused naming the field. */
static void test_vae_fields(void) {
    if (getenv("SDRT_TEST_OFFLOAD_LEAST")) {
        printf("# skipped: runs without a device budget\n");
        return;
    }
    REQUIRE(ifx_start(), "plugins did not load");
    run_out tiled = run("\"vae_tiling\":true,\"vae_tile_size\":64,\"vae_tile_overlap\":16,\"vae_slicing\":true,"
                        "\"offload\":\"model\"", 2);
    CHECK(tiled.status == SDRT_OK, "tiled: %s", tiled.message);
    run_out off = run("\"vae_tiling\":\"off\"", 2);
    CHECK(off.status == SDRT_OK, "untiled: %s", off.message);
    free(tiled.latents), free(off.latents);
    static const struct {
        const char *extra, *field;
    } bad[] = {
        {"\"offload\":\"cpu\"", "offload"},
        {"\"vae_tiling\":\"sometimes\"", "vae_tiling"},
        {"\"vae_tile_size\":100", "vae_tile_size"},
        {"\"vae_tile_size\":64,\"vae_tile_overlap\":40", "vae_tile_overlap"},
        {"\"vae_slicing\":1", "vae_slicing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_out o = run(bad[i].extra, 1);
        CHECK(o.status == SDRT_INVALID_ARGUMENT && strncmp(o.message, bad[i].field, strlen(bad[i].field)) == 0,
              "%s: status %d: %s", bad[i].extra, o.status, o.message);
        free(o.latents);
    }
}

/* A run of the reference prompt at `side` x `side` with `extra` fields. */
static run_out run_sized(int side, const char *extra) {
    run_out o = {0};
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"width\":%d,\"height\":%d,"
             "\"num_inference_steps\":2,\"seed\":3,\"output\":{\"dir\":\"%s\"},%s}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), side, side, ifx_out_dir(), extra);
    sdrt_strict_get_counters_fn get;
    sdrt_strict_reset_counters_fn reset;
    int strict = strict_hooks(&get, &reset);
    uint64_t start = 0;
    sdrt_strict_counters c;
    if (strict) reset(), get(&c), start = c.live_bytes;
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    if (strict) get(&c), o.peak = c.peak_bytes - start;
    o.status = r.status;
    snprintf(o.message, sizeof o.message, "%s", r.message);
    cJSON_Delete(r.data);
    return o;
}

/* VAE tiling on the device makes a decode fit a budget the untiled one
 * does not. 128x128 with sequential offload (the UNet's activations are
 * small there): the untiled decode's activations (about 6 MB by
 * vae_activation_bytes) exceed the 3 MiB device of
 * inference-offload-budget-sequential-*, so "off" answers
 * RESOURCE_EXHAUSTED and "auto" with 64 px tiles decides to tile and
 * succeeds. Without a budget (strict device) it measures both peaks. */
static void test_vae_tiling_budget(void) {
    const char *least = getenv("SDRT_TEST_OFFLOAD_LEAST");
    if (least && strcmp(least, "sequential") != 0) {
        printf("# skipped: runs in the sequential budget and without a budget\n");
        return;
    }
    REQUIRE(ifx_start(), "plugins did not load");
    const char *tiles = "\"offload\":\"sequential\",\"vae_tiling\":\"auto\",\"vae_tile_size\":64,\"vae_tile_overlap\":16";
    run_out off = run_sized(128, "\"offload\":\"sequential\",\"vae_tiling\":false");
    run_out autot = run_sized(128, tiles);
    printf("# 128x128, sequential: untiled status %d, peak %llu; auto (64 px tiles) status %d, peak %llu\n", off.status,
           (unsigned long long)off.peak, autot.status, (unsigned long long)autot.peak);
    CHECK(autot.status == SDRT_OK, "auto tiling: status %d: %s", autot.status, autot.message);
    if (least) {
        CHECK(off.status == SDRT_RESOURCE_EXHAUSTED, "untiled decode fits 3 MiB? status %d: %s", off.status,
              off.message);
    } else {
        CHECK(off.status == SDRT_OK, "untiled: status %d: %s", off.status, off.message);
        /* tiles only where the budget asks: unbudgeted, auto does not tile */
        run_out on = run_sized(128, "\"offload\":\"sequential\",\"vae_tiling\":true,\"vae_tile_size\":64,"
                                    "\"vae_tile_overlap\":16");
        CHECK(on.status == SDRT_OK, "tiled: status %d: %s", on.status, on.message);
        sdrt_strict_get_counters_fn get;
        sdrt_strict_reset_counters_fn reset;
        if (strict_hooks(&get, &reset)) {
            printf("# 128x128, sequential, tiled: peak %llu\n", (unsigned long long)on.peak);
            CHECK(on.peak < off.peak, "tiled decode peak %llu not below untiled %llu", (unsigned long long)on.peak,
                  (unsigned long long)off.peak);
        }
    }
}

static void test_shutdown(void) {
    ifx_stop();
}

const test_entry TESTS[] = {
    {"offload_modes_equal", test_offload_modes_equal},
    {"offload_budget", test_offload_budget},
    {"vae_fields", test_vae_fields},
    {"vae_tiling_budget", test_vae_tiling_budget},
    {"shutdown", test_shutdown},
    {0},
};
