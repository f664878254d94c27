/* tests/upscale/test_upscale.c - the upscaler networks against spandrel
 * (PyTorch) on small random-weight models, tiled against untiled, the
 * resizers against Pillow, and the refusals. Reference data is written by
 * tests/postprocess/make_upscale_ref.py (fresh random weights and image).
 *
 * Tolerances: network output relative L2 <= 1e-4 (float32 accumulation
 * order); resizes byte-identical; tiled vs untiled relative L2 <= 2e-2 for
 * 10-pixel tiles with 4-pixel overlap on the 17x13 input (measured values are
 * printed; the deviation comes from the receptive field cut at tile edges
 * and shrinks with larger tiles). */
#include <dlfcn.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "harness.h"
#include "pp.h"
#include "sdrt/npy.h"
#include "sdrt/resample.h"
#include "upscale.h"

static sdrt_device *g_dev;
static sdrt_backend_iface g_backend;
static pp_plugin g_plugin;

static sdrt_device *fx_default_device(void *self) { return self; }

static int setup(void) {
    if (g_dev) return 0;
    const char *so = test_path("SDRT_BUILD_DIR", "lib/sdrt/backends/sdrt_backend_cpu.so");
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return fprintf(stderr, "# dlopen %s: %s\n", so, dlerror()), -1;
    sdrt_backend_entry_fn entry = (sdrt_backend_entry_fn)dlsym(lib, SDRT_BACKEND_ENTRY_SYMBOL);
    sdrt_backend_reg *reg = entry ? entry(fake_host_api(), "{}") : NULL;
    if (!reg || reg->iface->device_count(reg) < 1) return fprintf(stderr, "# no CPU device\n"), -1;
    g_dev = reg->iface->device_get(reg, 0);
    g_backend = (sdrt_backend_iface){.struct_size = SDRT_STRUCT_SIZE(sdrt_backend_iface, default_device),
                                     .self = g_dev, .default_device = fx_default_device};
    fake_host_provide(SDRT_BACKEND_IFACE_ID, &g_backend);
    g_plugin.api = fake_host_api();
    pthread_mutex_init(&g_plugin.lock, NULL);
    return 0;
}

static const char *data(const char *name) {
    static char buf[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s", test_path("SDRT_SOURCE_DIR", "tests/postprocess/data/upscale"));
    size_t n = strlen(buf[k]);
    snprintf(buf[k] + n, sizeof buf[k] - n, "/%s", name);
    return buf[k];
}

static float *input_f32(int *h, int *w) {
    pp_image im;
    char err[512];
    if (pp_image_read_file(data("input.png"), NULL, &im, err, sizeof err) != SDRT_OK) {
        fprintf(stderr, "# %s\n", err);
        return NULL;
    }
    float *f = malloc((size_t)im.w * im.h * 3 * sizeof *f);
    for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++) f[i] = im.rgb[i] / 255.0f;
    *h = im.h;
    *w = im.w;
    free(im.rgb);
    return f;
}

static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

static void check_model(const char *file, const char *ref, int scale, const char *arch_word, double tiled_tol) {
    REQUIRE(setup() == 0, "CPU backend");
    up_model *m = NULL;
    char err[1024];
    REQUIRE(up_model_open(data(file), NULL, &m, err, sizeof err) == 0, "%s", err);
    char desc[160];
    up_model_describe(m, desc, sizeof desc);
    printf("# %s: %s\n", file, desc);
    CHECK(m->scale == scale && strstr(desc, arch_word), "%s: scale %d (%s)", file, m->scale, desc);
    int h, w;
    float *in = input_f32(&h, &w);
    REQUIRE(in, "input.png");
    size_t n = (size_t)h * scale * w * scale * 3, rn = 0;
    float *out = malloc(n * sizeof *out);
    sdrt_nn *nn = sdrt_nn_new(g_dev, NULL, NULL, NULL);
    REQUIRE(up_model_run(m, nn, in, h, w, out, err, sizeof err) == 0, "%s", err);
    int64_t shape[8];
    int nd;
    float *expect = NULL;
    REQUIRE(sdrt_npy_read_f32(data(ref), &expect, shape, &nd, err, sizeof err) == 0, "%s", err);
    rn = (size_t)(shape[0] * shape[1] * shape[2]);
    CHECK(nd == 3 && rn == n, "%s: reference shape differs", ref);
    if (rn == n) {
        double e = rel_l2(out, expect, n);
        printf("# %s vs spandrel: relative L2 %.3g\n", file, e);
        CHECK(e <= 1e-4, "%s: relative L2 %.3g > 1e-4", file, e);
    }
    /* Tiled: 10-pixel tiles, 4 overlap. */
    float *tiled = malloc(n * sizeof *tiled);
    up_tiling t = {.tile = 10, .overlap = 4};
    REQUIRE(up_run_tiled(m, nn, &t, in, h, w, tiled, err, sizeof err) == 0, "%s", err);
    double te = rel_l2(tiled, out, n);
    printf("# %s tiled (10/4) vs untiled: relative L2 %.3g\n", file, te);
    CHECK(te <= tiled_tol, "%s: tiled relative L2 %.3g > %.3g", file, te, tiled_tol);
    /* A tile as large as the image is the untiled run. */
    t.tile = 64;
    REQUIRE(up_run_tiled(m, nn, &t, in, h, w, tiled, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(tiled, out, n * sizeof *out) == 0, "%s: single-tile run differs", file);
    sdrt_nn_free(nn);
    free(tiled);
    free(expect);
    free(out);
    free(in);
    up_model_close(m);
}

static void test_rrdb_x4_old(void) { check_model("rrdb_x4_old.safetensors", "rrdb_x4_old.out.npy", 4, "ESRGAN keys", 2e-2); }
static void test_rrdb_x4_new(void) { check_model("rrdb_x4_new.pth", "rrdb_x4_new.out.npy", 4, "Real-ESRGAN keys", 2e-2); }
static void test_rrdb_x2_unshuffle(void) { check_model("rrdb_x2.pth", "rrdb_x2.out.npy", 2, "pixel-unshuffle", 1e-1); }
static void test_compact_x4(void) { check_model("compact_x4.pth", "compact_x4.out.npy", 4, "SRVGGNetCompact", 2e-2); }
static void test_compact_x2(void) { check_model("compact_x2.safetensors", "compact_x2.out.npy", 2, "SRVGGNetCompact", 2e-2); }

static void test_resize_vs_pillow(void) {
    pp_image in;
    char err[512];
    REQUIRE(pp_image_read_file(data("input.png"), NULL, &in, err, sizeof err) == SDRT_OK, "%s", err);
    static const char *const names[] = {"nearest", "bicubic", "lanczos"};
    int sizes[3][2] = {{in.w * 4, in.h * 4}, {40, 29}, {9, 7}};
    int checked = 0;
    for (int f = 0; f < 3; f++)
        for (int s = 0; s < 3; s++) {
            char name[64];
            snprintf(name, sizeof name, "pil_%s_%dx%d.png", names[f], sizes[s][0], sizes[s][1]);
            pp_image ref;
            REQUIRE(pp_image_read_file(data(name), NULL, &ref, err, sizeof err) == SDRT_OK, "%s", err);
            uint8_t *out = malloc((size_t)ref.w * ref.h * 3);
            REQUIRE(sdrt_resample_u8(in.rgb, in.w, in.h, 3, NULL, (sdrt_resample_filter)f, out, ref.w, ref.h) == 0, "resize");
            size_t diff = 0;
            int maxd = 0;
            for (size_t i = 0; i < (size_t)ref.w * ref.h * 3; i++)
                if (out[i] != ref.rgb[i]) {
                    diff++;
                    int d = abs(out[i] - ref.rgb[i]);
                    if (d > maxd) maxd = d;
                }
            CHECK(diff == 0, "%s: %zu bytes differ from Pillow (max %d)", name, diff, maxd);
            checked++;
            free(out);
            free(ref.rgb);
        }
    CHECK(checked == 9, "checked %d", checked);
    free(in.rgb);
}

static void test_refusals(void) {
    up_model *m = NULL;
    char err[1024];
    const char *sd = test_path("SDRT_SOURCE_DIR", "tests/model/data/pt/state_dict.pt");
    CHECK(up_model_open(sd, NULL, &m, err, sizeof err) == -1 && m == NULL, "accepted a non-upscaler");
    CHECK(strstr(err, "unknown upscaler architecture") && strstr(err, "ESRGAN {model.0.weight") &&
              strstr(err, "SRVGGNetCompact {body.0.weight, body.1.weight}"),
          "%s", err);
    const char *evil = test_path("SDRT_SOURCE_DIR", "tests/model/data/pt/evil.pt");
    CHECK(up_model_open(evil, NULL, &m, err, sizeof err) == -1 && strstr(err, "refused global"), "%s", err);
    CHECK(up_model_open(data("input.png"), NULL, &m, err, sizeof err) == -1 && strstr(err, "not a .safetensors, .pth or .pt"),
          "%s", err);
}

/* ---- the postprocess.upscale message, end to end in-process ---- */

static sdrt_error *call(const char *json, cJSON **res) {
    sdrt_request req = {sizeof req, "postprocess.upscale", "t", json, NULL, 0};
    char *out = NULL;
    sdrt_error *e = pp_handle_upscale(&g_plugin, &req, &out);
    *res = out ? cJSON_Parse(out) : NULL;
    free(out);
    return e;
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

static void test_message(void) {
    REQUIRE(setup() == 0, "CPU backend");
    const char *tmp = test_tmpdir();
    fake_host_set_output_root(tmp);
    char cfg[4400], src[4300];
    snprintf(cfg, sizeof cfg, "{\"upscaler_roots\":[\"%s\"]}", test_path("SDRT_SOURCE_DIR", "tests/postprocess/data/upscale"));
    g_plugin.config_json = cfg;
    snprintf(src, sizeof src, "%s/in.png", tmp);
    copy_file(data("input.png"), src);
    cJSON *res = NULL;
    /* A model by plain name, tiled, with the float32 result kept. */
    sdrt_error *e = call("{\"image\":\"in.png\",\"upscaler\":\"compact_x4\",\"tile\":16,\"tile_overlap\":4,"
                         "\"output\":{\"dir\":\"up\",\"save_npy\":true}}", &res);
    REQUIRE(!e, "%s", e ? e->message : "");
    const cJSON *imgs = cJSON_GetObjectItem(res, "images"), *npy = cJSON_GetObjectItem(res, "npy");
    CHECK(cJSON_GetObjectItem(res, "width")->valueint == 68 && cJSON_GetObjectItem(res, "height")->valueint == 52, "size");
    CHECK(cJSON_GetObjectItem(res, "tiles")->valueint == 2, "tiles %d", cJSON_GetObjectItem(res, "tiles")->valueint);
    CHECK(strstr(cJSON_GetObjectItem(res, "postprocessing")->valuestring, "Postprocess upscale by: 4, Postprocess upscaler: compact_x4") != NULL,
          "postprocessing text");
    REQUIRE(cJSON_GetArraySize(imgs) == 1 && cJSON_IsString(npy), "outputs");
    float *got = NULL, *ref = NULL;
    int64_t sh[8];
    int nd;
    char err[512];
    REQUIRE(sdrt_npy_read_f32(npy->valuestring, &got, sh, &nd, err, sizeof err) == 0, "%s", err);
    REQUIRE(sdrt_npy_read_f32(data("compact_x4.out.npy"), &ref, sh, &nd, err, sizeof err) == 0, "%s", err);
    size_t n = 52 * 68 * 3;
    double tl = rel_l2(got, ref, n);
    printf("# message, 16/4 tiles: relative L2 to spandrel's untiled output %.3g\n", tl);
    CHECK(tl <= 2e-2, "tiled message output vs spandrel %.3g", tl);
    pp_image png;
    REQUIRE(pp_image_read_file(cJSON_GetArrayItem(imgs, 0)->valuestring, NULL, &png, err, sizeof err) == SDRT_OK, "%s", err);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += png.rgb[i] != pp_to_u8(got[i]);
    CHECK(bad == 0, "PNG is not the quantised npy (%zu bytes)", bad);
    free(png.rgb);
    free(got);
    free(ref);
    cJSON_Delete(res);
    /* A source PNG's A1111 parameters are kept, the extras text added. */
    {
        pp_image src_img;
        REQUIRE(pp_image_read_file(data("input.png"), NULL, &src_img, err, sizeof err) == SDRT_OK, "%s", err);
        char ppath[4400];
        snprintf(ppath, sizeof ppath, "%s/with-params.png", tmp);
        FILE *fp = fopen(ppath, "wb");
        pp_png_text t[1] = {{"parameters", "a cat\nSteps: 20, Sampler: Euler, Seed: 7, Size: 17x13"}};
        REQUIRE(fp && pp_png_write_file(fp, src_img.rgb, src_img.w, src_img.h, t, 1, err) == 0, "write %s", err);
        fclose(fp);
        free(src_img.rgb);
        e = call("{\"image\":\"with-params.png\",\"upscaler\":\"nearest\",\"scale\":2,\"output\":{\"dir\":\"up\"}}", &res);
        REQUIRE(!e, "%s", e ? e->message : "");
        FILE *o = fopen(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "images"), 0)->valuestring, "rb");
        static char bytes[1 << 16];
        size_t nb = o ? fread(bytes, 1, sizeof bytes, o) : 0;
        if (o) fclose(o);
        const char *want1 = "parameters\0a cat\nSteps: 20, Sampler: Euler, Seed: 7, Size: 17x13";
        const char *want2 = "postprocessing\0Postprocess upscale by: 2, Postprocess upscaler: Nearest";
        int has1 = 0, has2 = 0;
        for (size_t i = 0; i + 80 < nb; i++) {
            has1 |= memcmp(bytes + i, want1, 64) == 0;
            has2 |= memcmp(bytes + i, want2, 71) == 0;
        }
        CHECK(has1 && has2, "PNG text: parameters kept %d, postprocessing added %d", has1, has2);
        cJSON_Delete(res);
    }
    /* Lanczos by scale: Pillow's bytes. */
    e = call("{\"image\":\"in.png\",\"upscaler\":\"lanczos\",\"scale\":4,\"output\":{\"dir\":\"up\"}}", &res);
    REQUIRE(!e, "%s", e ? e->message : "");
    pp_image a, b;
    REQUIRE(pp_image_read_file(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "images"), 0)->valuestring, NULL, &a, err, sizeof err) == SDRT_OK, "%s", err);
    REQUIRE(pp_image_read_file(data("pil_lanczos_68x52.png"), NULL, &b, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(a.w == b.w && a.h == b.h && memcmp(a.rgb, b.rgb, (size_t)a.w * a.h * 3) == 0, "lanczos message != Pillow");
    free(a.rgb);
    free(b.rgb);
    cJSON_Delete(res);
    /* Refusals, each naming its field. */
    static const struct { const char *json; sdrt_status st; const char *needle; } bad_cases[] = {
        {"{\"image\":\"in.png\",\"upscaler\":\"compact_x4\",\"scale\":2}", SDRT_INVALID_ARGUMENT, "scale: 2 is not what the model does"},
        {"{\"image\":\"in.png\",\"upscaler\":\"nope\"}", SDRT_NOT_FOUND, "model \"nope\" not found"},
        {"{\"image\":\"in.png\",\"upscaler\":\"../x\"}", SDRT_INVALID_ARGUMENT, "upscaler:"},
        {"{\"image\":\"in.png\"}", SDRT_INVALID_ARGUMENT, "upscaler: required"},
        {"{\"upscaler\":\"lanczos\"}", SDRT_INVALID_ARGUMENT, "image: required"},
        {"{\"image\":\"in.png\",\"upscaler\":\"lanczos\",\"scale\":-1}", SDRT_INVALID_ARGUMENT, "scale: must be"},
        {"{\"image\":\"in.png\",\"upscaler\":\"lanczos\",\"scale\":0.01}", SDRT_INVALID_ARGUMENT, "outside the image limits"},
        {"{\"image\":\"in.png\",\"upscaler\":\"compact_x4\",\"tile\":32,\"tile_overlap\":16}", SDRT_INVALID_ARGUMENT, "tile_overlap"},
        {"{\"image\":\"in.png\",\"upscaler\":\"lanczos\",\"output\":{\"save_npy\":1}}", SDRT_INVALID_ARGUMENT, "output.save_npy"},
        {"{\"image\":\"/etc/passwd\",\"upscaler\":\"lanczos\"}", SDRT_PERMISSION_DENIED, ""},
    };
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        e = call(bad_cases[i].json, &res);
        CHECK(e && e->code == bad_cases[i].st && strstr(e->message, bad_cases[i].needle), "%s -> %s", bad_cases[i].json,
              e ? e->message : "accepted");
        if (e) fake_host_api()->error_free(e);
        cJSON_Delete(res);
    }
    g_plugin.config_json = NULL;
    e = pp_upscale_check_config(fake_host_api(), "{\"upscaler_roots\":[\"a\",3]}");
    CHECK(e && e->code == SDRT_INVALID_ARGUMENT && strstr(e->message, "upscaler_roots"), "bad config accepted");
    if (e) fake_host_api()->error_free(e);
    CHECK(pp_upscale_check_config(fake_host_api(), "{\"upscaler_roots\":\"/m\"}") == NULL, "a single path refused");
}

const test_entry TESTS[] = {
    {"message", test_message},
    {"rrdb_x4_old", test_rrdb_x4_old},
    {"rrdb_x4_new", test_rrdb_x4_new},
    {"rrdb_x2_unshuffle", test_rrdb_x2_unshuffle},
    {"compact_x4", test_compact_x4},
    {"compact_x2", test_compact_x2},
    {"resize_vs_pillow", test_resize_vs_pillow},
    {"refusals", test_refusals},
    {0},
};
