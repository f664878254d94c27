/* tests/unet/test_unet_precision.c - whole sampling runs of the tiny
 * reference models in each CPU stream precision.
 *
 * The reference's euler_64x64 case is replayed through the UNet: its
 * initial latents, per-call text context (and SDXL's added embeddings) and
 * timesteps, the Euler sigmas from schedulers.json, CFG 7.5, 8 steps. In
 * f32 the final latents must match diffusers' (relative L2 <= 1e-3, the
 * README's bar), which shows the loop is the pipeline's; then the same run
 * on int8 and bf16 streams (bf16 only where the CPU has AVX-512 BF16) must
 * stay within the bounds below of the f32 run. The bounds are the measured
 * values (docs/precision.md; the inputs are fixed, so the runs are
 * deterministic) with about 2x headroom: tiny-sd15 int8 3.3e-2, bf16
 * 9.4e-3; tiny-sdxl int8 2.6e-2, bf16 6.4e-3 (AVX-512 kernels). Random
 * tiny weights and CFG 7.5 amplify every difference: the full-size
 * figures are in docs/precision.md. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "harness.h"
#include "unet.h"

#define STEPS 8
#define CFG 7.5f

static const char *ref(const char *model, const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", model, rel);
    return test_path("SDRT_REFERENCE", p);
}

static const char *call_file(const char *model, int i, const char *what) {
    char p[256];
    snprintf(p, sizeof p, "t2i/euler_64x64.intermediates/unet_call%02d_%s.npy", i, what);
    return ref(model, p);
}

/* The Euler sigmas (STEPS + 1) from schedulers.json. 0 on success. */
static int euler_sigmas(const char *model, double *sigmas) {
    char *text = fx_read_text(ref(model, "schedulers.json"));
    /* Python's json writes NaN / Infinity (in other schedulers' fields),
     * which is not JSON: blank them to 0 before parsing. */
    static const char *const bad[2] = {"Infinity", "NaN"};
    for (int b = 0; text && b < 2; b++)
        for (char *p = strstr(text, bad[b]); p; p = strstr(p, bad[b])) {
            memset(p, ' ', strlen(bad[b]));
            *p = '0';
        }
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
                                                          cJSON_GetObjectItemCaseSensitive(root, "schedulers"), "euler"),
                                                      "sigmas");
    int n = cJSON_IsArray(s) ? cJSON_GetArraySize(s) : 0;
    for (int i = 0; i < n && i <= STEPS; i++) sigmas[i] = cJSON_GetArrayItem(s, i)->valuedouble;
    cJSON_Delete(root);
    free(text);
    return n == STEPS + 1 ? 0 : -1;
}

/* Final latents of the replayed run on a stream of `precision` (malloc'd,
 * n elements), or NULL. */
static float *sample_run(const char *model, const char *precision, size_t *n_out, double *secs) {
    char rel[256], err[512] = "";
    snprintf(rel, sizeof rel, "%s/diffusers/unet/diffusion_pytorch_model.safetensors", model);
    fx_weights *w = fx_weights_open(test_path("SDRT_REFERENCE", rel), 0);
    snprintf(rel, sizeof rel, "%s/diffusers/unet/config.json", model);
    char *cfg = fx_read_text(test_path("SDRT_REFERENCE", rel));
    unet *u = NULL;
    sdrt_status st = cfg ? unet_new(cfg, fx_weights_get, w, &u, err, sizeof err) : SDRT_NOT_FOUND;
    free(cfg);
    double sigmas[STEPS + 1];
    char params[96];
    snprintf(params, sizeof params, "{\"threads\":2,\"precision\":\"%s\"}", precision);
    sdrt_nn *nn = st == SDRT_OK ? sdrt_nn_new(fx_cpu_device(), params, NULL, NULL) : NULL;
    float *x = NULL;
    if (!nn || euler_sigmas(model, sigmas) != 0) {
        CHECK(0, "%s %s: setup (unet %d, stream %s: %s)", model, precision, st, nn ? "made" : "refused", err);
        goto done;
    }
    int64_t shape[8];
    int nd;
    size_t n;
    x = fx_npy(ref(model, "t2i/euler_64x64.intermediates/initial_latents.npy"), shape, &nd, &n);
    int64_t sshape[4] = {2, shape[1], shape[2], shape[3]};
    float *in = malloc(2 * n * sizeof(float)), *out = malloc(2 * n * sizeof(float));
    int sdxl = strstr(model, "sdxl") != NULL;
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    for (int i = 0; i < STEPS && x; i++) {
        float scale = (float)(1.0 / sqrt(sigmas[i] * sigmas[i] + 1.0));
        for (size_t j = 0; j < n; j++) in[j] = in[n + j] = x[j] * scale;
        int64_t cs[8], ps[8];
        int cnd, pnd;
        size_t cn, pn, tn, idn = 0;
        float *ctxv = fx_npy(call_file(model, i, "encoder_hidden_states"), cs, &cnd, &cn);
        float *tv = fx_npy(call_file(model, i, "timestep"), NULL, NULL, &tn);
        float *pooled = sdxl ? fx_npy(call_file(model, i, "added_text_embeds"), ps, &pnd, &pn) : NULL;
        float *ids = sdxl ? fx_npy(call_file(model, i, "added_time_ids"), NULL, NULL, &idn) : NULL;
        float timesteps[2] = {tv[0], tv[tn - 1]};
        unet_inputs ui = {.sample = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, sshape, in),
                          .timesteps = timesteps,
                          .context = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, cnd, cs, ctxv),
                          .text_embeds = sdxl ? sdrt_nn_from_host(nn, SDRT_DTYPE_F32, pnd, ps, pooled) : NULL,
                          .time_ids = ids};
        sdrt_tensor *o = NULL;
        st = unet_forward(u, nn, &ui, &o, err, sizeof err);
        if (st == SDRT_OK) st = sdrt_nn_to_host_f32(nn, o, out);
        CHECK(st == SDRT_OK, "%s %s step %d: %d %s", model, precision, i, st, err);
        if (st != SDRT_OK) {
            free(x);
            x = NULL;
        } else {
            for (size_t j = 0; j < n; j++) x[j] += (float)(sigmas[i + 1] - sigmas[i]) * (out[j] + CFG * (out[n + j] - out[j]));
        }
        sdrt_nn_drop(nn, o);
        sdrt_nn_drop(nn, (sdrt_tensor *)ui.sample);
        sdrt_nn_drop(nn, (sdrt_tensor *)ui.context);
        sdrt_nn_drop(nn, (sdrt_tensor *)ui.text_embeds);
        free(ctxv), free(tv), free(pooled), free(ids);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    *secs = (double)(ts1.tv_sec - ts0.tv_sec) + 1e-9 * (double)(ts1.tv_nsec - ts0.tv_nsec);
    *n_out = n;
    free(in), free(out);
done:
    sdrt_nn_free(nn);
    unet_free(u);
    fx_weights_close(w);
    return x;
}

static void check_model(const char *model, double int8_bound, double bf16_bound) {
    size_t n = 0, nl = 0, np = 0;
    double secs;
    float *f32 = sample_run(model, "f32", &n, &secs);
    REQUIRE(f32, "%s: f32 run", model);
    int64_t shape[8];
    int nd;
    float *want = fx_npy(ref(model, "t2i/euler_64x64.latents.npy"), shape, &nd, &nl);
    double rel = nl == n ? test_rel_l2(f32, want, n) : 1e9;
    printf("# %s f32 vs diffusers: rel L2 %.3g (%.2f s)\n", model, rel, secs);
    CHECK(rel <= 1e-3, "%s: the f32 replay is not diffusers' run: rel L2 %.3g", model, rel);
    free(want);
    static const char *modes[2] = {"int8", "bf16"};
    for (int mi = 0; mi < 2; mi++) {
        sdrt_device *dev = fx_cpu_device();
        char params[64];
        snprintf(params, sizeof params, "{\"precision\":\"%s\"}", modes[mi]);
        sdrt_stream *probe = dev->iface->stream_new(dev, params);
        if (!probe) {
            printf("# %s %s: refused by this CPU (skipped)\n", model, modes[mi]);
            continue;
        }
        sdrt_stream_free(probe);
        float *got = sample_run(model, modes[mi], &np, &secs);
        if (!got) continue;
        rel = test_rel_l2(got, f32, n);
        double bound = mi == 0 ? int8_bound : bf16_bound;
        printf("# %s %s vs f32: final latents rel L2 %.3g (bound %.1g, %.2f s)\n", model, modes[mi], rel, bound, secs);
        CHECK(rel <= bound, "%s %s: final latents rel L2 vs f32 %.3g > %.1g", model, modes[mi], rel, bound);
        CHECK(rel > 0.0, "%s %s: identical to f32 (the mode did not apply)", model, modes[mi]);
        free(got);
    }
    free(f32);
}

static void test_tiny_sd15_modes(void) { check_model("tiny-sd15", 6e-2, 2e-2); }
static void test_tiny_sdxl_modes(void) { check_model("tiny-sdxl", 5e-2, 1.5e-2); }

const test_entry TESTS[] = {
    {"tiny_sd15_modes", test_tiny_sd15_modes},
    {"tiny_sdxl_modes", test_tiny_sdxl_modes},
    {0, 0},
};
