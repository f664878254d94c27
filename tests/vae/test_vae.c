/* tests/vae/test_vae.c - AutoencoderKL against diffusers, through the real
 * sdrt.postprocess/1 functions on the CPU backend (dlopen'ed like the device
 * plugin does) with weights loaded by the model plugin's store.
 *
 * Tolerances (reference README): raw decoder output relative L2 <= 1e-4;
 * images mean abs error <= 2/255; encoder mean / sample relative L2 <= 1e-4.
 * Tiled vs untiled: see test_tiled_decode for the measured error. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fake_host.h"
#include "harness.h"
#include "pp.h"
#include "sdrt/half.h"
#include "sdrt/npy.h"
#include "sdrt/rng.h"
#include "store.h"
#include "vae.h"

/* ---- fixtures: device, model store, plugin instance ---- */

static sdrt_device *g_dev;
static sdrt_backend_iface g_backend;
static pp_plugin g_plugin;
static const char *g_hidden; /* a weight name the fake model pretends not to have */

static sdrt_device *fx_default_device(void *self) { return self; }

static const char *fx_config(sdrt_model *m, const char *comp) {
    store_component *c = store_component_get(m, comp);
    return c ? c->config_json : NULL;
}

static const sdrt_tensor *fx_tensor(sdrt_model *m, const char *comp, const char *name) {
    if (g_hidden && strcmp(name, g_hidden) == 0) return NULL;
    return store_tensor(m, comp, name);
}

static const char *fx_id(sdrt_model *m) { return m->id; }

static const sdrt_model_iface g_model_iface = {
    .struct_size = SDRT_STRUCT_SIZE(sdrt_model_iface, id),
    .config_json = fx_config,
    .tensor = fx_tensor,
    .id = fx_id,
};

static int setup(void) {
    if (g_dev) return 0;
    /* SDRT_TEST_BACKEND_MODULE: another family's module (vae-strict). */
    const char *so = getenv("SDRT_TEST_BACKEND_MODULE") && *getenv("SDRT_TEST_BACKEND_MODULE")
                         ? getenv("SDRT_TEST_BACKEND_MODULE")
                         : test_path("SDRT_BUILD_DIR", "lib/sdrt/backends/sdrt_backend_cpu.so");
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return fprintf(stderr, "# dlopen %s: %s\n", so, dlerror()), -1;
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)dlsym(lib, SDRT_BACKEND_ENTRY_SYMBOL);
    sdrt_backend_reg *reg = entry ? entry(fake_host_api(), "{}") : NULL;
    if (!reg || reg->iface->device_count(reg) < 1) return fprintf(stderr, "# no CPU device\n"), -1;
    g_dev = reg->iface->device_get(reg, 0);
    g_backend = (sdrt_backend_iface){.struct_size = SDRT_STRUCT_SIZE(sdrt_backend_iface, default_device),
                                     .self = g_dev, .default_device = fx_default_device};
    fake_host_provide(SDRT_BACKEND_IFACE_ID, &g_backend);
    fake_host_provide(SDRT_MODEL_IFACE_ID, &g_model_iface);
    g_plugin.api = fake_host_api();
    pthread_mutex_init(&g_plugin.lock, NULL);
    return 0;
}

static sdrt_model *load(const char *rel) {
    sdrt_model *m = NULL;
    char err[512];
    if (store_load(test_path("SDRT_REFERENCE", rel), &m, err, sizeof err) != SDRT_OK) {
        fprintf(stderr, "# store_load %s: %s\n", rel, err);
        return NULL;
    }
    return m;
}

static float *npy(const char *env, const char *rel, size_t *count) {
    float *d = NULL;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    int nd = 0;
    char err[512];
    if (sdrt_npy_read_f32(test_path(env, rel), &d, shape, &nd, err, sizeof err)) {
        fprintf(stderr, "# %s\n", err);
        return NULL;
    }
    *count = 1;
    for (int i = 0; i < nd; i++) *count *= (size_t)shape[i];
    return d;
}

static double mean_abs(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] - b[i]);
    return s / (double)n;
}

/* A direct network run on the plugin's device (for raw outputs). */
typedef struct net_fx {
    vae_config cfg;
    sdrt_nn *nn;
    vae_net v;
    sdrt_model *m;
} net_fx;

static const sdrt_tensor *store_weight(void *ctx, const char *name) { return fx_tensor(ctx, "vae", name); }

static int net_open(net_fx *f, sdrt_model *m) {
    char err[256];
    if (vae_config_parse(fx_config(m, "vae"), &f->cfg, err, sizeof err)) return fprintf(stderr, "# %s\n", err), -1;
    f->nn = sdrt_nn_new(g_dev, NULL, NULL, NULL);
    if (!f->nn) return -1;
    f->m = m;
    vae_net_init(&f->v, &f->cfg, f->nn, store_weight, m);
    return 0;
}

/* ---- decode parity ---- */

static void check_decode(const char *model_rel, const char *case_dir) {
    REQUIRE(setup() == 0, "no CPU backend");
    sdrt_model *m = load(model_rel);
    REQUIRE(m, "model %s", model_rel);
    char rel[512];
    size_t nl = 0, nraw = 0, nimg = 0;
    snprintf(rel, sizeof rel, "%s/euler_64x64.latents.npy", case_dir);
    float *lat = npy("SDRT_REFERENCE", rel, &nl);
    snprintf(rel, sizeof rel, "%s/euler_64x64.intermediates/vae_decode_raw.npy", case_dir);
    float *raw_ref = npy("SDRT_REFERENCE", rel, &nraw);
    snprintf(rel, sizeof rel, "%s/euler_64x64.image.npy", case_dir);
    float *img_ref = npy("SDRT_REFERENCE", rel, &nimg);
    REQUIRE(lat && raw_ref && img_ref && nl == 4 * 8 * 8 && nraw == 3 * 64 * 64 && nimg == nraw, "reference data");

    /* raw decoder output against diffusers' vae.decode(latents / sf) */
    net_fx f;
    REQUIRE(net_open(&f, m) == 0, "net");
    float z[256], *raw = malloc(sizeof(float) * nraw);
    vae_unscale_latents(&f.cfg, lat, nl, z);
    int rc = vae_decode_host(&f.v, z, 1, 8, 8, raw);
    CHECK(rc == 0, "decode: %s", f.v.message);
    double rel_l2 = test_rel_l2(raw, raw_ref, nraw);
    fprintf(stderr, "# %s raw decode rel L2 %.3g\n", model_rel, rel_l2);
    CHECK(rc == 0 && rel_l2 <= 1e-4, "raw decode rel L2 %g > 1e-4", rel_l2);
    sdrt_nn_free(f.nn);
    vae_net_release(&f.v);

    /* the full interface path: scaling, decode, (x/2+0.5).clamp */
    float *rgb = NULL;
    int h = 0, w = 0;
    sdrt_error *e = pp_decode(&g_plugin, m, lat, 1, 4, 8, 8, NULL, NULL, &rgb, &h, &w);
    REQUIRE(!e, "pp_decode: %s", e->message);
    CHECK(h == 64 && w == 64, "size %dx%d", w, h);
    double mae = mean_abs(rgb, img_ref, nimg);
    fprintf(stderr, "# %s image mean abs %.3g (x255 = %.3g)\n", model_rel, mae, mae * 255);
    CHECK(mae <= 2.0 / 255, "image mean abs error %g > 2/255", mae);

    /* decode_tensor: the same latents as a tensor on the device (on the
     * strict device, memory the host cannot read). Untiled it unscales on
     * the device, so equal to decode up to float rounding; tiled it takes
     * the host path, so bit-identical to decode with the same options. */
    sdrt_nn *nn = sdrt_nn_new(g_dev, NULL, NULL, NULL);
    int64_t shape[4] = {1, 4, 8, 8};
    sdrt_tensor *t = nn ? sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, shape, lat) : NULL;
    REQUIRE(t && sdrt_nn_synchronize(nn) == SDRT_OK, "latents upload");
    float *rgb2 = NULL;
    e = pp_decode_tensor(&g_plugin, m, g_dev, t, NULL, NULL, &rgb2, &h, &w);
    CHECK(!e && h == 64 && w == 64, "pp_decode_tensor: %s", e ? e->message : "size");
    double diff = rgb2 ? test_max_abs(rgb2, rgb, nimg) : 1.0;
    fprintf(stderr, "# %s decode_tensor vs decode max abs %.3g\n", model_rel, diff);
    CHECK(diff <= 1e-5, "decode_tensor differs from decode by %g", diff);
    fake_host_api()->error_free(e);
    sdrt_vae_options o;
    sdrt_vae_options_init(&o);
    o.tiling = SDRT_VAE_TILING_ON;
    o.tile_size = 64;
    o.tile_overlap = 16;
    float *tiled = NULL, *tiled2 = NULL;
    e = pp_decode(&g_plugin, m, lat, 1, 4, 8, 8, &o, NULL, &tiled, NULL, NULL);
    sdrt_error *e2 = pp_decode_tensor(&g_plugin, m, g_dev, t, &o, NULL, &tiled2, NULL, NULL);
    CHECK(!e && !e2 && memcmp(tiled, tiled2, nimg * sizeof *tiled) == 0, "tiled decode_tensor differs from decode");
    fake_host_api()->error_free(e);
    fake_host_api()->error_free(e2);
    sdrt_nn_drop(nn, t);
    sdrt_nn_free(nn);
    free(rgb2), free(tiled), free(tiled2);
    free(rgb), free(raw), free(lat), free(raw_ref), free(img_ref);
    store_free(m);
}

static void test_decode_sd15(void) { check_decode("tiny-sd15/diffusers", "tiny-sd15/t2i"); }
static void test_decode_sdxl(void) { check_decode("tiny-sdxl/diffusers", "tiny-sdxl/t2i"); }
/* Single-file checkpoint: original-layout names, attention as 1x1 convs. */
static void test_decode_sd15_single_file(void) { check_decode("tiny-sd15/tiny-sd15.safetensors", "tiny-sd15/t2i"); }

/* ---- encode parity ---- */

#define EH 48
#define EW 64

/* The image of gen_goldens.py, [EH,EW,3] in [0,1]. */
static float *encode_image(void) {
    float *rgb = malloc(sizeof(float) * EH * EW * 3);
    for (int y = 0; y < EH; y++)
        for (int x = 0; x < EW; x++)
            for (int c = 0; c < 3; c++) rgb[(y * EW + x) * 3 + c] = (float)(0.5 + 0.45 * sin(0.3 * x + 0.2 * y + c));
    return rgb;
}

static void check_encode(const char *model_rel, const char *tag) {
    REQUIRE(setup() == 0, "no CPU backend");
    sdrt_model *m = load(model_rel);
    REQUIRE(m, "model %s", model_rel);
    char rel[256];
    size_t nm = 0, ns = 0;
    snprintf(rel, sizeof rel, "tests/vae/data/%s_encode_mean.npy", tag);
    float *mean_ref = npy("SDRT_SOURCE_DIR", rel, &nm);
    snprintf(rel, sizeof rel, "tests/vae/data/%s_encode_sample.npy", tag);
    float *sample_ref = npy("SDRT_SOURCE_DIR", rel, &ns);
    REQUIRE(mean_ref && sample_ref && nm == 4 * 6 * 8 && ns == nm, "goldens (run tests/vae/gen_goldens.py)");
    vae_config cfg;
    char err[256];
    REQUIRE(vae_config_parse(fx_config(m, "vae"), &cfg, err, sizeof err) == 0, "%s", err);
    float *rgb = encode_image(), *lat = NULL;
    int ch = 0;
    sdrt_error *e = pp_encode(&g_plugin, m, rgb, 1, EH, EW, NULL, NULL, NULL, &lat, &ch);
    REQUIRE(!e, "pp_encode: %s", e->message);
    CHECK(ch == 4, "channels %d", ch);
    for (size_t i = 0; i < nm; i++) lat[i] /= cfg.scaling_factor; /* back to the posterior mean */
    double rel_mean = test_rel_l2(lat, mean_ref, nm);
    free(lat);
    /* the sampling path with the caller's noise: torch.manual_seed(7); randn */
    sdrt_rng g;
    float noise[4 * 6 * 8];
    sdrt_rng_seed(&g, 7);
    sdrt_rng_randn(&g, noise, nm);
    e = pp_encode(&g_plugin, m, rgb, 1, EH, EW, noise, NULL, NULL, &lat, NULL);
    REQUIRE(!e, "pp_encode(noise): %s", e->message);
    double rel_sample = test_rel_l2(lat, sample_ref, ns);
    fprintf(stderr, "# %s encode rel L2: mean %.3g, sample %.3g\n", tag, rel_mean, rel_sample);
    CHECK(rel_mean <= 1e-4, "encoder mean rel L2 %g > 1e-4", rel_mean);
    CHECK(rel_sample <= 1e-4, "encoder sample rel L2 %g > 1e-4", rel_sample);
    free(lat), free(rgb), free(mean_ref), free(sample_ref);
    store_free(m);
}

static void test_encode_sd15(void) { check_encode("tiny-sd15/diffusers", "sd15"); }
static void test_encode_sdxl(void) { check_encode("tiny-sdxl/diffusers", "sdxl"); }

/* ---- tiling ---- */

static float *random_latents(size_t n, uint64_t seed) {
    float *l = malloc(sizeof(float) * n);
    sdrt_rng g;
    sdrt_rng_seed(&g, seed);
    sdrt_rng_randn(&g, l, n);
    for (size_t i = 0; i < n; i++) l[i] *= 0.8f; /* the scale of final SD latents */
    return l;
}

static float *decode_with(sdrt_model *m, const float *lat, int lh, int lw, int tiling, int tile, int overlap,
                          uint64_t budget) {
    sdrt_vae_options o;
    sdrt_vae_options_init(&o);
    o.tiling = tiling, o.tile_size = tile, o.tile_overlap = overlap, o.memory_budget = budget;
    float *rgb = NULL;
    sdrt_error *e = pp_decode(&g_plugin, m, lat, 1, 4, lh, lw, &o, NULL, &rgb, NULL, NULL);
    if (e) fprintf(stderr, "# decode: %s\n", e->message), fake_host_api()->error_free(e);
    return rgb;
}

/* Tiles of 128 px with 64 px overlap over a 192x320 image (2x4 tiles)
 * against one untiled decode. Group norms see one tile at a time, so the
 * output is not identical; the crossfade hides the seams. Measured on the
 * tiny-sd15 VAE over several seeds: mean abs 6.4-7.3/255, max 0.30-0.34;
 * diffusers' own tiled_decode with the same tiles and overlap gives
 * 7.9/255, max 0.40 (on torch.randn latents of the same scale). */
static void test_tiled_decode(void) {
    REQUIRE(setup() == 0, "no CPU backend");
    sdrt_model *m = load("tiny-sd15/diffusers");
    REQUIRE(m, "model");
    int lh = 24, lw = 40;
    size_t npx = (size_t)lh * 8 * lw * 8 * 3;
    float *lat = random_latents((size_t)4 * lh * lw, test_seed());
    float *ref = decode_with(m, lat, lh, lw, SDRT_VAE_TILING_OFF, 0, 0, 0);
    float *tiled = decode_with(m, lat, lh, lw, SDRT_VAE_TILING_ON, 128, 64, 0);
    REQUIRE(ref && tiled, "decodes");
    double mae = mean_abs(tiled, ref, npx), mx = test_max_abs(tiled, ref, npx);
    fprintf(stderr, "# tiled vs untiled decode (tile 128, overlap 64): mean abs %.4f (%.2f/255), max abs %.4f\n", mae,
            mae * 255, mx);
    CHECK(mae <= 10.0 / 255, "tiled decode mean abs error %g > 10/255", mae);
    /* one tile covering everything is exactly the untiled decode */
    float *single = decode_with(m, lat, lh, lw, SDRT_VAE_TILING_ON, 512, 64, 0);
    CHECK(single && test_max_abs(single, ref, npx) == 0, "single-tile decode differs by %g",
          single ? test_max_abs(single, ref, npx) : -1.0);
    /* AUTO with a tiny budget tiles, with the same result as ON */
    float *autot = decode_with(m, lat, lh, lw, SDRT_VAE_TILING_AUTO, 128, 64, 1);
    CHECK(autot && test_max_abs(autot, tiled, npx) == 0, "auto tiling differs from explicit tiling");
    /* AUTO with the default budget does not tile this small image */
    float *autoun = decode_with(m, lat, lh, lw, SDRT_VAE_TILING_AUTO, 128, 64, 0);
    CHECK(autoun && test_max_abs(autoun, ref, npx) == 0, "auto tiled a small image");
    free(lat), free(ref), free(tiled), free(single), free(autot), free(autoun);
    store_free(m);
}

/* Mean |x[.., c] - x[.., c-1]| of one image [h, w, 3] over the columns
 * `cols` (n of them): the step across a vertical line. */
static double column_step(const float *rgb, int h, int w, const int *cols, int n) {
    double s = 0;
    for (int k = 0; k < n; k++)
        for (int y = 0; y < h; y++)
            for (int c = 0; c < 3; c++)
                s += fabs((double)rgb[((size_t)y * w + cols[k]) * 3 + c] - rgb[((size_t)y * w + cols[k] - 1) * 3 + c]);
    return s / ((double)n * h * 3);
}

/* Seams: where a tile ends inside its neighbour, an unblended tiling would
 * jump (each side's group norms saw other pixels). The crossfade makes the
 * step across every tile edge no larger than the untiled image's own step
 * there. 1 x 4 tiles of 128 px, overlap 64, over 320 px: tiles start at
 * 0, 64, 128, 192; edges (first column of a tile, last of the previous one)
 * at 64, 128, 192 and 128, 192, 256. Measured (CPU, three seeds): ratio 1.02-1.06;
 * lavapipe 1.034. */
static void test_tiled_seams(void) {
    REQUIRE(setup() == 0, "no backend");
    sdrt_model *m = load("tiny-sd15/diffusers");
    REQUIRE(m, "model");
    int lh = 16, lw = 40, h = lh * 8, w = lw * 8;
    float *lat = random_latents((size_t)4 * lh * lw, test_seed());
    float *ref = decode_with(m, lat, lh, lw, SDRT_VAE_TILING_OFF, 0, 0, 0);
    float *tiled = decode_with(m, lat, lh, lw, SDRT_VAE_TILING_ON, 128, 64, 0);
    REQUIRE(ref && tiled, "decodes");
    const int edges[] = {64, 128, 192, 256};
    double st = column_step(tiled, h, w, edges, 4), su = column_step(ref, h, w, edges, 4);
    /* elsewhere, for scale: the step over every column */
    int all[319];
    for (int i = 0; i < w - 1; i++) all[i] = i + 1;
    double avg = column_step(ref, h, w, all, w - 1);
    fprintf(stderr, "# step across tile edges: tiled %.4f, untiled %.4f (ratio %.3f); mean column step %.4f\n", st, su,
            st / su, avg);
    CHECK(st <= 1.15 * su, "tile edges show: step %.4f against %.4f untiled", st, su);
    free(lat), free(ref), free(tiled);
    store_free(m);
}

/* Slicing (one batch item at a time) and the offload modes change where
 * activations and weights live, never the arithmetic: a batch of two
 * decodes and encodes to the same values bit for bit. */
static void test_slicing_and_offload(void) {
    REQUIRE(setup() == 0, "no backend");
    sdrt_model *m = load("tiny-sd15/diffusers");
    REQUIRE(m, "model");
    int lh = 8, lw = 12, n = 2;
    size_t npx = (size_t)n * lh * 8 * lw * 8 * 3;
    float *lat = random_latents((size_t)n * 4 * lh * lw, test_seed());
    float *out[5] = {0};
    static const char *const what[5] = {"default", "slicing", "offload model", "offload sequential",
                                        "sliced sequential, tiled"};
    for (int k = 0; k < 5; k++) {
        sdrt_vae_options o;
        sdrt_vae_options_init(&o);
        o.tiling = SDRT_VAE_TILING_OFF;
        o.slicing = k == 1 || k == 4;
        o.offload = k == 2 ? SDRT_OFFLOAD_MODEL : k >= 3 ? SDRT_OFFLOAD_SEQUENTIAL : SDRT_OFFLOAD_NONE;
        if (k == 4) o.tiling = SDRT_VAE_TILING_ON, o.tile_size = 64, o.tile_overlap = 16;
        sdrt_error *e = pp_decode(&g_plugin, m, lat, n, 4, lh, lw, &o, NULL, &out[k], NULL, NULL);
        CHECK(!e, "%s: %s", what[k], e ? e->message : "");
        if (e) fake_host_api()->error_free(e);
    }
    for (int k = 1; k < 4; k++)
        CHECK(out[0] && out[k] && test_max_abs(out[0], out[k], npx) == 0, "%s decode differs by %g", what[k],
              out[0] && out[k] ? test_max_abs(out[0], out[k], npx) : -1.0);
    /* tiled per item: each image's tiling equals the batch's tiling */
    sdrt_vae_options o;
    sdrt_vae_options_init(&o);
    o.tiling = SDRT_VAE_TILING_ON, o.tile_size = 64, o.tile_overlap = 16;
    float *tiled = NULL;
    sdrt_error *e = pp_decode(&g_plugin, m, lat, n, 4, lh, lw, &o, NULL, &tiled, NULL, NULL);
    CHECK(!e && out[4] && test_max_abs(tiled, out[4], npx) == 0, "sliced tiled decode differs");
    if (e) fake_host_api()->error_free(e);
    /* a bad mode is refused, naming the field */
    o.offload = 3;
    float *bad = NULL;
    e = pp_decode(&g_plugin, m, lat, n, 4, lh, lw, &o, NULL, &bad, NULL, NULL);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "offload"), "offload 3: %s",
          e ? e->message : "accepted");
    if (e) fake_host_api()->error_free(e);
    /* encode: sliced and sequential equal the batch */
    int h = 64, w = 96;
    float *rgb = malloc(sizeof(float) * n * h * w * 3), *enc[3] = {0};
    for (size_t i = 0; i < (size_t)n * h * w * 3; i++) rgb[i] = (float)(0.5 + 0.4 * sin(0.013 * (double)i));
    for (int k = 0; k < 3; k++) {
        sdrt_vae_options_init(&o);
        o.tiling = SDRT_VAE_TILING_OFF;
        o.slicing = k == 1;
        o.offload = k == 2 ? SDRT_OFFLOAD_SEQUENTIAL : SDRT_OFFLOAD_NONE;
        e = pp_encode(&g_plugin, m, rgb, n, h, w, NULL, &o, NULL, &enc[k], NULL);
        CHECK(!e, "encode %d: %s", k, e ? e->message : "");
        if (e) fake_host_api()->error_free(e);
    }
    size_t nz = (size_t)n * 4 * (h / 8) * (w / 8);
    for (int k = 1; k < 3; k++)
        CHECK(enc[0] && enc[k] && test_max_abs(enc[0], enc[k], nz) == 0, "encode %s differs",
              k == 1 ? "sliced" : "sequential");
    for (int k = 0; k < 5; k++) free(out[k]);
    for (int k = 0; k < 3; k++) free(enc[k]);
    free(tiled), free(lat), free(rgb);
    store_free(m);
}

static void test_tiled_encode(void) {
    REQUIRE(setup() == 0, "no CPU backend");
    sdrt_model *m = load("tiny-sd15/diffusers");
    REQUIRE(m, "model");
    int h = 192, w = 256;
    float *rgb = malloc(sizeof(float) * h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) rgb[(y * w + x) * 3 + c] = (float)(0.5 + 0.45 * sin(0.05 * x + 0.07 * y + c));
    sdrt_vae_options o;
    sdrt_vae_options_init(&o);
    o.tiling = SDRT_VAE_TILING_OFF;
    float *ref = NULL, *tiled = NULL;
    sdrt_error *e = pp_encode(&g_plugin, m, rgb, 1, h, w, NULL, &o, NULL, &ref, NULL);
    REQUIRE(!e, "encode: %s", e->message);
    o.tiling = SDRT_VAE_TILING_ON, o.tile_size = 128, o.tile_overlap = 64;
    e = pp_encode(&g_plugin, m, rgb, 1, h, w, NULL, &o, NULL, &tiled, NULL);
    REQUIRE(!e, "tiled encode: %s", e->message);
    size_t n = (size_t)4 * (h / 8) * (w / 8);
    double rel = test_rel_l2(tiled, ref, n);
    fprintf(stderr, "# tiled vs untiled encode (tile 128, overlap 64): rel L2 %.4f, max abs %.4f\n", rel,
            test_max_abs(tiled, ref, n));
    /* measured 0.35: the encoder's group norms over 128 px tiles of a
     * random-weight VAE; img2img noises these latents anyway */
    CHECK(rel <= 0.5, "tiled encode rel L2 %g > 0.5", rel);
    free(rgb), free(ref), free(tiled);
    store_free(m);
}

/* ---- the demo model of sdrt-mkdemo ---- */

/* sdrt-mkdemo's output loads through the model store and its VAE runs
 * both ways with finite, in-range results. */
static void test_demo_model(void) {
    REQUIRE(setup() == 0, "no CPU backend");
    const char *dir = test_tmpdir();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' '%s/demo' 2>/dev/null", test_path("SDRT_BUILD_DIR", "bin/sdrt-mkdemo"), dir);
    REQUIRE(system(cmd) == 0, "sdrt-mkdemo failed: %s", cmd);
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/demo", dir);
    sdrt_model *m = NULL;
    REQUIRE(store_load(path, &m, err, sizeof err) == SDRT_OK, "store_load demo: %s", err);
    CHECK(store_tensor(m, "unet", "add_embedding.linear_1.weight") != NULL, "unet weights");
    CHECK(store_tensor(m, "text_encoder_2", "text_projection.weight") != NULL, "text_encoder_2 weights");
    float *lat = random_latents(4 * 8 * 8, test_seed()), *rgb = NULL, *back = NULL;
    sdrt_error *e = pp_decode(&g_plugin, m, lat, 1, 4, 8, 8, NULL, NULL, &rgb, NULL, NULL);
    REQUIRE(!e, "decode demo: %s", e->message);
    double mean = 0;
    int finite = 1;
    for (int i = 0; i < 64 * 64 * 3; i++) finite &= isfinite(rgb[i]) && rgb[i] >= 0 && rgb[i] <= 1, mean += rgb[i];
    mean /= 64 * 64 * 3;
    CHECK(finite && mean > 0.05 && mean < 0.95, "demo decode: finite %d, mean %g", finite, mean);
    e = pp_encode(&g_plugin, m, rgb, 1, 64, 64, NULL, NULL, NULL, &back, NULL);
    REQUIRE(!e, "encode demo: %s", e->message);
    for (int i = 0; i < 4 * 8 * 8; i++) finite &= isfinite(back[i]) && fabsf(back[i]) < 100;
    CHECK(finite, "demo encode produced non-finite or huge latents");
    free(lat), free(rgb), free(back);
    store_free(m);
}

/* ---- errors ---- */

static void test_errors(void) {
    REQUIRE(setup() == 0, "no CPU backend");
    sdrt_model *m = load("tiny-sd15/diffusers");
    REQUIRE(m, "model");
    float lat[4 * 16] = {0}, *rgb = (float *)1;
    sdrt_error *e = pp_decode(&g_plugin, m, lat, 1, 3, 4, 4, NULL, NULL, &rgb, NULL, NULL);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "channels"), "wrong channels: %s",
          e ? e->message : "accepted");
    CHECK(rgb == NULL, "rgb_out cleared");
    fake_host_api()->error_free(e);
    g_hidden = "decoder.up_blocks.1.resnets.2.conv2.weight";
    e = pp_decode(&g_plugin, m, lat, 1, 4, 4, 4, NULL, NULL, &rgb, NULL, NULL);
    g_hidden = NULL;
    CHECK(e && e->code == SDRT_NOT_FOUND && strstr(e->message, "decoder.up_blocks.1.resnets.2.conv2.weight"),
          "missing weight: %s", e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    sdrt_vae_options o;
    sdrt_vae_options_init(&o);
    o.tile_size = 100;
    e = pp_decode(&g_plugin, m, lat, 1, 4, 4, 4, &o, NULL, &rgb, NULL, NULL);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "tile_size"), "bad tile size: %s",
          e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    /* decode_tensor refuses what is not a 4-D contiguous float32 tensor. */
    sdrt_tensor host3 = {.struct_size = sizeof host3, .dtype = SDRT_DTYPE_F32, .ndim = 3, .shape = {4, 4, 4},
                         .strides = {16, 4, 1}, .data = lat};
    e = pp_decode_tensor(&g_plugin, m, NULL, &host3, NULL, NULL, &rgb, NULL, NULL);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "4-D"), "3-D latents: %s",
          e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    float img[8 * 12 * 3] = {0};
    e = pp_encode(&g_plugin, m, img, 1, 8, 12, NULL, NULL, NULL, &rgb, NULL);
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "multiples of 8"), "bad size: %s",
          e ? e->message : "accepted");
    fake_host_api()->error_free(e);
    store_free(m);
}

static void test_config_errors(void) {
    vae_config c;
    char err[256];
    CHECK(vae_config_parse("{\"block_out_channels\":[32,48]}", &c, err, sizeof err) == -1 &&
              strstr(err, "norm_num_groups"),
          "groups: %s", err);
    CHECK(vae_config_parse("{}", &c, err, sizeof err) == -1 && strstr(err, "block_out_channels"), "missing: %s", err);
    CHECK(vae_config_parse("{\"block_out_channels\":[32],\"layers_per_block\":\"2\"}", &c, err, sizeof err) == -1 &&
              strstr(err, "layers_per_block"),
          "type: %s", err);
    CHECK(vae_config_parse("{\"block_out_channels\":[32],\"shift_factor\":0.1159,\"scaling_factor\":0.3611}", &c, err,
                           sizeof err) == 0 &&
              fabsf(c.shift_factor - 0.1159f) < 1e-6f && fabsf(c.scaling_factor - 0.3611f) < 1e-6f,
          "shift_factor: %s", err);
}

/* ---- f16 checkpoint ---- */

/* Writes `dir`/vae/diffusion_pytorch_model.safetensors as the f16 copy of
 * the reference tiny SD1.5 VAE (every tensor rounded to f16), with its
 * config and a model_index.json naming only the vae. Returns 0 or -1. */
static int write_f16_vae(const char *dir) {
    const char *ref = test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/vae");
    char path[2048], cmd[4400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/vae' && cp '%s/config.json' '%s/vae/' && printf '%%s' "
             "'{\"_class_name\":\"StableDiffusionPipeline\",\"vae\":[\"diffusers\",\"AutoencoderKL\"]}' > "
             "'%s/model_index.json'", dir, ref, dir, dir);
    if (system(cmd) != 0) return -1;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", ref);
    FILE *f = fopen(path, "rb");
    uint64_t hlen = 0;
    if (!f || fread(&hlen, 8, 1, f) != 1 || hlen > (1u << 24)) return f ? fclose(f), -1 : -1;
    char *hdr = calloc(1, hlen + 1);
    fseek(f, 0, SEEK_END);
    long total = ftell(f);
    size_t nbytes = (size_t)total - 8 - hlen;
    uint8_t *data = malloc(nbytes ? nbytes : 1);
    fseek(f, 8, SEEK_SET);
    int ok = hdr && data && fread(hdr, 1, hlen, f) == hlen && fread(data, 1, nbytes, f) == nbytes;
    fclose(f);
    cJSON *root = ok ? cJSON_Parse(hdr) : NULL;
    uint16_t *out = malloc(nbytes / 2 + 2);
    size_t off = 0;
    for (cJSON *t = root ? root->child : NULL; t && out; t = t->next) {
        if (strcmp(t->string, "__metadata__") == 0) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype"), *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        size_t a = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble, b = (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0) { ok = 0; break; }
        for (size_t i = a; i < b; i += 4) {
            float v;
            memcpy(&v, data + i, 4);
            out[off + (i - a) / 4] = sdrt_f32_to_f16(v);
        }
        cJSON_SetValuestring(dt, "F16");
        cJSON_SetNumberValue(cJSON_GetArrayItem(offs, 0), (double)(off * 2));
        cJSON_SetNumberValue(cJSON_GetArrayItem(offs, 1), (double)(off * 2 + (b - a) / 2));
        off += (b - a) / 4;
    }
    char *text = ok && root ? cJSON_PrintUnformatted(root) : NULL;
    snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    FILE *o = text ? fopen(path, "wb") : NULL;
    uint64_t tlen = text ? strlen(text) : 0;
    ok = o && fwrite(&tlen, 8, 1, o) == 1 && fwrite(text, 1, tlen, o) == tlen && fwrite(out, 2, off, o) == off;
    if (o) ok = fclose(o) == 0 && ok;
    cJSON_free(text), cJSON_Delete(root), free(hdr), free(data), free(out);
    return ok ? 0 : -1;
}

/* f16 checkpoints: f16 biases and norm parameters once reached the
 * backend's element-wise ops and failed every decode. The golden is
 * diffusers decoding with the same f16-rounded weights in f32
 * (tests/inference/gen_goldens.py). */
static void test_decode_f16(void) {
    REQUIRE(setup() == 0, "no CPU backend");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/vae-f16", test_tmpdir());
    REQUIRE(write_f16_vae(dir) == 0, "writing the f16 VAE into %s", dir);
    sdrt_model *m = NULL;
    char err[512];
    REQUIRE(store_load(dir, &m, err, sizeof err) == SDRT_OK, "store_load: %s", err);
    const sdrt_tensor *bias = store_tensor(m, "vae", "decoder.conv_in.bias");
    CHECK(bias && bias->dtype == SDRT_DTYPE_F16, "the copy is f16");
    size_t nl = 0, nimg = 0;
    float *lat = npy("SDRT_REFERENCE", "rng/randn_seed0_1x4x8x8.npy", &nl);
    float *ref = npy("SDRT_SOURCE_DIR", "tests/vae/data/sd15_f16_decode.npy", &nimg);
    REQUIRE(lat && ref && nl == 256 && nimg == 64 * 64 * 3, "golden data");
    float *rgb = NULL;
    sdrt_error *e = pp_decode(&g_plugin, m, lat, 1, 4, 8, 8, NULL, NULL, &rgb, NULL, NULL);
    CHECK(!e, "pp_decode of an f16 VAE: %s", e ? e->message : "");
    if (!e) {
        double rel = test_rel_l2(rgb, ref, nimg);
        fprintf(stderr, "# f16 VAE decode rel L2 %.3g\n", rel);
        CHECK(rel <= 1e-4, "f16 decode rel L2 %g > 1e-4", rel);
    }
    if (e) g_plugin.api->error_free(e);
    float img[48 * 48 * 3], *z = NULL;
    for (int i = 0; i < 48 * 48 * 3; i++) img[i] = (float)(i % 251) / 250.0f;
    e = pp_encode(&g_plugin, m, img, 1, 48, 48, NULL, NULL, NULL, &z, NULL);
    CHECK(!e, "pp_encode of an f16 VAE: %s", e ? e->message : "");
    if (e) g_plugin.api->error_free(e);
    free(rgb), free(z), free(lat), free(ref);
    store_free(m);
}

const test_entry TESTS[] = {
    {"decode_f16", test_decode_f16},
    {"decode_sd15", test_decode_sd15},
    {"decode_sdxl", test_decode_sdxl},
    {"decode_sd15_single_file", test_decode_sd15_single_file},
    {"encode_sd15", test_encode_sd15},
    {"encode_sdxl", test_encode_sdxl},
    {"tiled_decode", test_tiled_decode},
    {"tiled_encode", test_tiled_encode},
    {"demo_model", test_demo_model},
    {"errors", test_errors},
    {"config_errors", test_config_errors},
    {"tiled_seams", test_tiled_seams},
    {"slicing_and_offload", test_slicing_and_offload},
    {0},
};
