/* tests/unet/test_controlnet.c - ControlNetModel parity with diffusers on
 * the tiny reference UNets (tests/unet/gen_controlnet.py): the residuals
 * for conditioning_scale 0.8 and for guess mode (scale 0.5), and the UNet
 * output with the residuals added. The ControlNet's encoder weights are the
 * reference UNet's tensors (ControlNetModel.from_unet), its own layers come
 * from data/controlnet/<model>/controlnet_own.safetensors.
 * Tolerance: relative L2 <= 1e-4 (the UNet tolerance of the reference). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controlnet.h"
#include "fixture.h"
#include "harness.h"
#include "sdrt/nn.h"

#define TOL 1e-4

typedef struct two_files {
    fx_weights *own, *unet;
} two_files;

static const sdrt_tensor *lookup(void *ctx, const char *name) {
    two_files *t = ctx;
    const sdrt_tensor *w = fx_weights_get(t->own, name);
    return w ? w : fx_weights_get(t->unet, name);
}

static const char *data(const char *model, const char *what) { /* 8 rotating buffers */
    static char rel[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(rel[k], sizeof rel[k], "tests/unet/data/controlnet/%s.%s.npy", model, what);
    return test_path("SDRT_SOURCE_DIR", rel[k]);
}

static sdrt_tensor *upload(sdrt_nn *nn, const char *path) {
    int64_t shape[8];
    int nd;
    size_t n;
    float *v = fx_npy(path, shape, &nd, &n);
    sdrt_tensor *t = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, nd, shape, v);
    free(v);
    return t;
}

static double rel_to(sdrt_nn *nn, const sdrt_tensor *t, const char *path) {
    int64_t shape[8];
    int nd;
    size_t n;
    float *want = fx_npy(path, shape, &nd, &n);
    double rel = 1e9;
    if (t && sdrt_nn_numel(t) == (int64_t)n) {
        float *got = malloc(n * sizeof *got);
        if (sdrt_nn_to_host_f32(nn, t, got) == SDRT_OK) rel = test_rel_l2(got, want, n);
        free(got);
    }
    free(want);
    return rel;
}

static void run_model(const char *model) {
    char rel[256], err[512] = "";
    two_files files;
    snprintf(rel, sizeof rel, "tests/unet/data/controlnet/%s/controlnet_own.safetensors", model);
    files.own = fx_weights_open(test_path("SDRT_SOURCE_DIR", rel), 0);
    snprintf(rel, sizeof rel, "%s/diffusers/unet/diffusion_pytorch_model.safetensors", model);
    files.unet = fx_weights_open(test_path("SDRT_REFERENCE", rel), 0);
    snprintf(rel, sizeof rel, "tests/unet/data/controlnet/%s/config.json", model);
    char *cfg = fx_read_text(test_path("SDRT_SOURCE_DIR", rel));
    snprintf(rel, sizeof rel, "%s/diffusers/unet/config.json", model);
    char *ucfg = fx_read_text(test_path("SDRT_REFERENCE", rel));
    controlnet *cn = NULL;
    unet *u = NULL;
    sdrt_status st = controlnet_new(cfg, lookup, &files, &cn, err, sizeof err);
    CHECK(st == SDRT_OK, "%s: controlnet_new: %d %s", model, st, err);
    if (st == SDRT_OK) st = unet_new(ucfg, fx_weights_get, files.unet, &u, err, sizeof err);
    CHECK(st == SDRT_OK, "%s: unet_new: %s", model, err);
    sdrt_nn *nn = st == SDRT_OK ? sdrt_nn_new(fx_cpu_device(), "{\"threads\":2}", NULL, NULL) : NULL;
    if (nn) {
        int sdxl = strcmp(model, "tiny-sdxl") == 0;
        sdrt_tensor *sample = upload(nn, data(model, "sample")), *ctx = upload(nn, data(model, "context"));
        sdrt_tensor *cond = upload(nn, data(model, "cond"));
        sdrt_tensor *text = sdxl ? upload(nn, data(model, "text_embeds")) : NULL;
        size_t n;
        float *ts = fx_npy(data(model, "timesteps"), NULL, NULL, &n);
        float *ids = sdxl ? fx_npy(data(model, "time_ids"), NULL, NULL, &n) : NULL;
        unet_inputs in = {.sample = sample, .timesteps = ts, .context = ctx, .text_embeds = text, .time_ids = ids};
        int nd = controlnet_n_down(cn);
        CHECK(nd == unet_n_skips_of(u), "%s: %d residuals for %d skips", model, nd, unet_n_skips_of(u));
        sdrt_tensor *down[64], *mid = NULL;
        const char *cases[2] = {"plain", "guess"};
        for (int c = 0; c < 2; c++) {
            st = controlnet_forward(cn, nn, &in, cond, c ? 0.5f : 0.8f, c, down, &mid, err, sizeof err);
            CHECK(st == SDRT_OK, "%s %s: controlnet_forward: %s", model, cases[c], err);
            if (st != SDRT_OK) break;
            double worst = 0;
            for (int i = 0; i < nd; i++) {
                char w[32];
                snprintf(w, sizeof w, "%s.down%d", cases[c], i);
                double r = rel_to(nn, down[i], data(model, w));
                if (r > worst) worst = r;
            }
            snprintf(rel, sizeof rel, "%s.mid", cases[c]);
            double rm = rel_to(nn, mid, data(model, rel));
            printf("# %s %s: %d down residuals worst rel L2 %.3g, mid %.3g\n", model, cases[c], nd, worst, rm);
            CHECK(worst <= TOL && rm <= TOL, "%s %s: residuals rel L2 %.3g / %.3g", model, cases[c], worst, rm);
            if (c == 0) {
                unet_inputs with = in;
                with.down_residuals = down;
                with.n_down_residuals = nd;
                with.mid_residual = mid;
                sdrt_tensor *out = NULL;
                st = unet_forward(u, nn, &with, &out, err, sizeof err);
                CHECK(st == SDRT_OK, "%s: unet_forward with residuals: %s", model, err);
                double ro = rel_to(nn, out, data(model, "plain.unet_out"));
                printf("# %s: UNet with ControlNet residuals rel L2 %.3g\n", model, ro);
                CHECK(ro <= TOL, "%s: UNet with residuals rel L2 %.3g", model, ro);
                sdrt_nn_drop(nn, out);
                /* a residual count that does not fit is refused */
                with.n_down_residuals = nd - 1;
                st = unet_forward(u, nn, &with, &out, err, sizeof err);
                CHECK(st == SDRT_INVALID_ARGUMENT, "short residual list: %d", st);
            }
            for (int i = 0; i < nd; i++) sdrt_nn_drop(nn, down[i]);
            sdrt_nn_drop(nn, mid);
        }
        /* a control image of the wrong size names the expected shape */
        st = controlnet_forward(cn, nn, &in, sample, 1.0f, 0, down, &mid, err, sizeof err);
        CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "control image"), "wrong cond size: %d %s", st, err);
        free(ts);
        free(ids);
        sdrt_nn_free(nn);
    }
    controlnet_free(cn);
    unet_free(u);
    free(cfg);
    free(ucfg);
    fx_weights_close(files.own);
    fx_weights_close(files.unet);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* docs/PERFORMANCE.md: one denoising step's UNet call and ControlNet call
 * (CFG batch 2) at a latent size; median of SDRT_CN_ITERS calls (default
 * 3; the best is printed too). Paths: the ControlNet's weights (own layers,
 * or all), the UNet's weights, both configs. `sdxl`: SDXL's added
 * conditioning (pooled text [2, 1280], time ids of a square image). */
static void time_size(const char *what, int lat, int ctx_dim, int sdxl, const char *cn_w, const char *u_w,
                      const char *cn_cfg, const char *u_cfg) {
    two_files files;
    char err[512] = "";
    files.own = fx_weights_open(cn_w, 0);
    files.unet = fx_weights_open(u_w, 0);
    char *cfg = fx_read_text(cn_cfg), *ucfg = fx_read_text(u_cfg);
    controlnet *cn = NULL;
    unet *u = NULL;
    if (controlnet_new(cfg, lookup, &files, &cn, err, sizeof err) == SDRT_OK &&
        unet_new(ucfg, fx_weights_get, files.unet, &u, err, sizeof err) == SDRT_OK) {
        sdrt_nn *nn = sdrt_nn_new(fx_cpu_device(), "{\"threads\":2}", NULL, NULL);
        int64_t ss[4] = {2, 4, lat, lat}, cs[4] = {2, 3, 8 * lat, 8 * lat}, xs[3] = {2, 77, ctx_dim};
        size_t nc = (size_t)(2 * 3 * 64 * lat * lat);
        float *buf = calloc(nc, sizeof *buf);
        for (size_t i = 0; i < nc; i++) buf[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
        sdrt_tensor *sample = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, ss, buf);
        sdrt_tensor *cond = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, cs, buf);
        sdrt_tensor *ctx = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 3, xs, buf);
        int64_t ps[2] = {2, 1280};
        sdrt_tensor *pooled = sdxl ? sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 2, ps, buf) : NULL;
        float px = (float)(8 * lat), ids[12] = {px, px, 0, 0, px, px, px, px, 0, 0, px, px};
        float ts[2] = {500, 500};
        unet_inputs in = {.sample = sample, .timesteps = ts, .context = ctx, .text_embeds = pooled,
                          .time_ids = sdxl ? ids : NULL};
        const char *iters_env = getenv("SDRT_CN_ITERS");
        int iters = iters_env && atoi(iters_env) > 0 ? atoi(iters_env) : 3;
        if (iters > 16) iters = 16;
        double tu[16], tc[16];
        for (int it = 0; it < iters; it++) {
            sdrt_tensor *down[64], *mid = NULL, *out = NULL;
            double a = now_ms();
            controlnet_forward(cn, nn, &in, cond, 1.0f, 0, down, &mid, err, sizeof err);
            if (mid) sdrt_nn_to_host_f32(nn, mid, buf); /* waits for the work */
            double b = now_ms();
            unet_forward(u, nn, &in, &out, err, sizeof err);
            if (out) sdrt_nn_to_host_f32(nn, out, buf);
            double c = now_ms();
            tc[it] = b - a;
            tu[it] = c - b;
            for (int i = 0; i < controlnet_n_down(cn); i++) sdrt_nn_drop(nn, down[i]);
            sdrt_nn_drop(nn, mid);
            sdrt_nn_drop(nn, out);
        }
        for (int i = 0; i < iters; i++)
            for (int j = i + 1; j < iters; j++) {
                if (tu[j] < tu[i]) { double t = tu[i]; tu[i] = tu[j]; tu[j] = t; }
                if (tc[j] < tc[i]) { double t = tc[i]; tc[i] = tc[j]; tc[j] = t; }
            }
        printf("# %s %dx%d px, batch 2: UNet %.1f ms, ControlNet %.1f ms per step (median of %d; best %.1f / %.1f)\n",
               what, 8 * lat, 8 * lat, tu[iters / 2], tc[iters / 2], iters, tu[0], tc[0]);
        free(buf);
        sdrt_nn_free(nn);
    }
    CHECK(cn && u, "timing setup: %s", err);
    controlnet_free(cn);
    unet_free(u);
    free(cfg);
    free(ucfg);
    fx_weights_close(files.own);
    fx_weights_close(files.unet);
}

/* SDRT_CN_TIMING_512: also tiny at 512x512; SDRT_CN_FULL=DIR: DIR/unet and
 * DIR/controlnet (config.json + diffusion_pytorch_model.safetensors,
 * full-size random SD1.5 weights) at 512x512; SDRT_CN_FULL_XL=DIR: the same
 * for SDXL at 1024x1024 (bench/controlnet/make_full_keys.py makes both). */
static void test_timing(void) {
    char a[4][600];
    snprintf(a[0], sizeof a[0], "%s", test_path("SDRT_SOURCE_DIR", "tests/unet/data/controlnet/tiny-sd15/controlnet_own.safetensors"));
    snprintf(a[1], sizeof a[1], "%s", test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/unet/diffusion_pytorch_model.safetensors"));
    snprintf(a[2], sizeof a[2], "%s", test_path("SDRT_SOURCE_DIR", "tests/unet/data/controlnet/tiny-sd15/config.json"));
    snprintf(a[3], sizeof a[3], "%s", test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/unet/config.json"));
    time_size("tiny-sd15", 8, 32, 0, a[0], a[1], a[2], a[3]);
    if (getenv("SDRT_CN_TIMING_512")) time_size("tiny-sd15", 64, 32, 0, a[0], a[1], a[2], a[3]);
    static const struct {
        const char *env, *what;
        int lat, ctx_dim, sdxl;
    } FULL[] = {{"SDRT_CN_FULL", "full-size SD1.5 (f16 weights)", 64, 768, 0},
                {"SDRT_CN_FULL_XL", "full-size SDXL (f16 weights)", 128, 2048, 1}};
    for (int f = 0; f < 2; f++) {
        const char *full = getenv(FULL[f].env);
        if (!full || !*full) continue;
        snprintf(a[0], sizeof a[0], "%s/controlnet/diffusion_pytorch_model.safetensors", full);
        snprintf(a[1], sizeof a[1], "%s/unet/diffusion_pytorch_model.safetensors", full);
        snprintf(a[2], sizeof a[2], "%s/controlnet/config.json", full);
        snprintf(a[3], sizeof a[3], "%s/unet/config.json", full);
        time_size(FULL[f].what, FULL[f].lat, FULL[f].ctx_dim, FULL[f].sdxl, a[0], a[1], a[2], a[3]);
    }
}

static void test_sd15(void) { run_model("tiny-sd15"); }
static void test_sdxl(void) { run_model("tiny-sdxl"); }

static void test_config_errors(void) {
    char err[512];
    controlnet *cn = NULL;
    sdrt_status st = controlnet_new("{\"controlnet_conditioning_channel_order\":\"bgr\",\"block_out_channels\":[32]}",
                                    NULL, NULL, &cn, err, sizeof err);
    CHECK(st == SDRT_UNSUPPORTED && strstr(err, "controlnet_conditioning_channel_order"), "bgr: %d %s", st, err);
    st = controlnet_new("{\"global_pool_conditions\":true}", NULL, NULL, &cn, err, sizeof err);
    CHECK(st == SDRT_UNSUPPORTED && strstr(err, "global_pool_conditions"), "pool: %d %s", st, err);
    st = controlnet_new("[1]", NULL, NULL, &cn, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT, "not an object: %d", st);
}

const test_entry TESTS[] = {
    {"sd15", test_sd15},
    {"sdxl", test_sdxl},
    {"config_errors", test_config_errors},
    {"timing", test_timing},
    {0},
};
