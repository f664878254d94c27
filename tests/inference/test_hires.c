/* tests/inference/test_hires.c - the hires fix: its latent upscalers against
 * torch.nn.functional.interpolate (data/hires, make_hires_ref.py), A1111's
 * target-size rules (hand-computed from processing.py), the request fields
 * (A1111's API names), and end to end on the tiny SD1.5 model: the first
 * pass is the plain txt2img of the same seed, the second pass's input is
 * the upscaled first-pass latents (latent upscalers) or the Pillow-resized
 * first-pass image (image upscalers), and the second pass runs hires.steps
 * steps at the target size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hires.h"
#include "infer_fixture.h"
#include "request.h"
#include "sdrt/npy.h"
#include "sdrt/postprocess.h"
#include "sdrt/resample.h"

static float *npy(const char *rel, int64_t *shape, int *nd) {
    float *d = NULL;
    char err[512], path[1024];
    snprintf(path, sizeof path, "tests/inference/data/hires/%s", rel);
    if (sdrt_npy_read_f32(test_path("SDRT_SOURCE_DIR", path), &d, shape, nd, err, sizeof err)) {
        fprintf(stderr, "# %s\n", err);
        return NULL;
    }
    return d;
}

static void test_latent_resize_vs_torch(void) {
    int64_t s[8];
    int nd;
    float *in = npy("in.npy", s, &nd);
    REQUIRE(in && nd == 4, "in.npy");
    static const char *const modes[] = {"bilinear", "bicubic", "nearest"};
    static const infer_hr_upscaler kinds[] = {INFER_HR_LATENT, INFER_HR_LATENT_BICUBIC, INFER_HR_LATENT_NEAREST};
    int sizes[2][2] = {{12, 16}, {10, 14}};
    for (int m = 0; m < 3; m++)
        for (int k = 0; k < 2; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%dx%d.npy", modes[m], sizes[k][0], sizes[k][1]);
            int64_t rs[8];
            int rnd;
            float *want = npy(name, rs, &rnd);
            REQUIRE(want, "%s", name);
            size_t n = (size_t)(s[0] * s[1]) * sizes[k][0] * sizes[k][1];
            float *got = malloc(n * sizeof *got);
            infer_latent_resize(in, (int)s[0], (int)s[1], (int)s[2], (int)s[3], got, sizes[k][0], sizes[k][1], kinds[m]);
            double maxd = 0;
            for (size_t i = 0; i < n; i++) maxd = fmax(maxd, fabs((double)got[i] - want[i]));
            CHECK(maxd <= 1e-5, "%s: max abs diff %.3g", name, maxd);
            free(got);
            free(want);
        }
    free(in);
}

static void target(const char *json, int w, int h, int tw, int th, int cx, int cy) {
    cJSON *root = cJSON_Parse(json);
    infer_hires hr;
    char err[256];
    REQUIRE(infer_hires_parse(root, &hr, err, sizeof err) == SDRT_OK, "%s", err);
    int gw, gh, gx, gy;
    REQUIRE(infer_hires_target(&hr, w, h, 8192, &gw, &gh, &gx, &gy, err, sizeof err) == 0, "%s", err);
    CHECK(gw == tw && gh == th && gx == cx && gy == cy, "%s on %dx%d: %dx%d crop %d,%d", json, w, h, gw, gh, gx, gy);
    infer_hires_free(&hr);
    cJSON_Delete(root);
}

static void test_target_sizes(void) {
    target("{\"enable_hr\":true}", 64, 48, 128, 96, 0, 0);                         /* hr_scale 2 */
    target("{\"enable_hr\":true,\"hr_scale\":1.5}", 72, 64, 104, 96, 0, 0);        /* int(108) -> 104 */
    target("{\"enable_hr\":true,\"hr_resize_x\":200}", 64, 48, 200, 144, 0, 0);    /* 200*48//64 = 150 -> 144 */
    target("{\"enable_hr\":true,\"hr_resize_y\":100}", 64, 48, 128, 96, 0, 0);     /* 100*64//48 = 133 -> 128; 100 -> 96 */
    target("{\"hires\":{\"width\":160,\"height\":160}}", 64, 48, 208, 160, 48, 0); /* cover: 213 -> 208, crop to 160 */
}

static void parse_err(const char *json, sdrt_status st, const char *needle) {
    infer_request r;
    char err[512] = "";
    sdrt_status got = infer_request_parse(json, &r, err, sizeof err);
    CHECK(got == st && strstr(err, needle), "%s -> %d '%s'", json, got, err);
    if (got == SDRT_OK) infer_request_free(&r);
}

static void test_request_fields(void) {
    infer_request r;
    char err[512];
    REQUIRE(infer_request_parse("{\"model_id\":\"m\",\"enable_hr\":true,\"hr_scale\":1.5,\"hr_upscaler\":\"Latent (bicubic)\","
                                "\"hr_second_pass_steps\":7,\"denoising_strength\":0.55}",
                                &r, err, sizeof err) == SDRT_OK,
            "%s", err);
    CHECK(r.hires.enabled && r.hires.scale == 1.5 && r.hires.upscaler == INFER_HR_LATENT_BICUBIC && r.hires.steps == 7 &&
              r.hires.denoising_strength == 0.55 && !strcmp(r.hires.upscaler_name, "Latent (bicubic)"),
          "A1111 names");
    infer_request_free(&r);
    REQUIRE(infer_request_parse("{\"model_id\":\"m\",\"hires\":{\"scale\":2,\"upscaler\":\"lanczos\"}}", &r, err, sizeof err) ==
                SDRT_OK,
            "%s", err);
    CHECK(r.hires.enabled && r.hires.upscaler == INFER_HR_LANCZOS && r.hires.denoising_strength == 0.7 && r.hires.steps == 0,
          "hires{} defaults");
    infer_request_free(&r);
    REQUIRE(infer_request_parse("{\"model_id\":\"m\",\"enable_hr\":false,\"hr_scale\":3}", &r, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(!r.hires.enabled, "enable_hr false is no hires");
    infer_request_free(&r);
    REQUIRE(infer_request_parse("{\"model_id\":\"m\",\"enable_hr\":true,\"hr_upscaler\":\"R-ESRGAN 4x+\"}", &r, err,
                                sizeof err) == SDRT_OK,
            "%s", err);
    CHECK(r.hires.upscaler == INFER_HR_MODEL && !strcmp(r.hires.upscaler_name, "R-ESRGAN 4x+"), "a model upscaler");
    infer_request_free(&r);
    parse_err("{\"model_id\":\"m\",\"hires\":{\"upscaler\":\"\"}}", SDRT_INVALID_ARGUMENT, "hires.upscaler: must not be empty");
    parse_err("{\"model_id\":\"m\",\"hires\":{\"upscaler\":\"Latent (antialiased)\"}}", SDRT_UNSUPPORTED, "hires.upscaler");
    parse_err("{\"model_id\":\"m\",\"hires\":{\"scale\":0}}", SDRT_INVALID_ARGUMENT, "hires.scale: must be a number in (0, 8]");
    parse_err("{\"model_id\":\"m\",\"hires\":{\"scale\":2,\"width\":128}}", SDRT_INVALID_ARGUMENT, "hires.scale: give either");
    parse_err("{\"model_id\":\"m\",\"hires\":{\"denoising_strength\":1.5}}", SDRT_INVALID_ARGUMENT, "hires.denoising_strength");
    parse_err("{\"model_id\":\"m\",\"enable_hr\":true,\"hr_second_pass_steps\":-1}", SDRT_INVALID_ARGUMENT, "hr_second_pass_steps");
    parse_err("{\"model_id\":\"m\",\"enable_hr\":\"yes\"}", SDRT_INVALID_ARGUMENT, "enable_hr: must be true or false");
    parse_err("{\"model_id\":\"m\",\"enable_hr\":true,\"hires\":{}}", SDRT_INVALID_ARGUMENT, "not both");
}

/* ---- end to end on tiny-sd15 ---- */

static char g_data[4096];

static const char *req(const char *extra) {
    snprintf(g_data, sizeof g_data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"num_inference_steps\":6,\"guidance_scale\":7.5,"
             "\"seed\":1234,\"scheduler\":\"EulerDiscreteScheduler\",\"width\":64,\"height\":48,"
             "\"output\":{\"dir\":\"%s\",\"save_latents\":true}%s}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), ifx_out_dir(), extra);
    return g_data;
}

static char *stem_path(const char *png, const char *suffix) {
    static char buf[4096];
    size_t n = strlen(png) - 4;
    snprintf(buf, sizeof buf, "%.*s%s", (int)n, png, suffix);
    return buf;
}

static void test_end_to_end(void) {
    REQUIRE(ifx_start(), "plugins did not start");
    struct sdrt_job job = {0};
    ifx_result a = ifx_call("inference.run", req(""), &job);
    REQUIRE(a.status == SDRT_OK, "plain: %s", a.message);
    size_t na = 0;
    float *lat_a = ifx_load_npy(ifx_json_string_at(a.data, "latents", 0), &na);
    REQUIRE(lat_a && na == 4 * 6 * 8, "first-pass latents (%zu)", na);
    /* Latent upscaler (A1111 names). */
    ifx_result b = ifx_call("inference.run", req(",\"enable_hr\":true,\"hr_scale\":2,\"hr_upscaler\":\"Latent\","
                                                 "\"hr_second_pass_steps\":3,\"denoising_strength\":0.6"), &job);
    REQUIRE(b.status == SDRT_OK, "hires latent: %s", b.message);
    CHECK(cJSON_GetObjectItem(b.data, "width")->valueint == 128 && cJSON_GetObjectItem(b.data, "height")->valueint == 96,
          "hires size");
    CHECK(job.last_steps == 3, "second pass ran %d steps, want 3", job.last_steps);
    printf("# tiny-sd15 processing_time: plain 64x48 6 steps %.3f s; + hires latent x2, 3 steps at 128x96 %.3f s\n",
           cJSON_GetObjectItem(a.data, "processing_time")->valuedouble, cJSON_GetObjectItem(b.data, "processing_time")->valuedouble);
    const char *png_b = ifx_json_string_at(b.data, "images", 0);
    {
        /* A1111's hires infotext; Size stays the first pass's. */
        FILE *f = fopen(png_b, "rb");
        static char bytes[1 << 17];
        size_t nb = f ? fread(bytes, 1, sizeof bytes - 1, f) : 0;
        if (f) fclose(f);
        const char *want1 = "Size: 64x48", *want2 =
            "Denoising strength: 0.6, Hires upscale: 2, Hires steps: 3, Hires upscaler: Latent, Version: sdrt";
        int h1 = 0, h2 = 0;
        for (size_t i = 0; i + strlen(want2) < nb; i++) {
            h1 |= memcmp(bytes + i, want1, strlen(want1)) == 0;
            h2 |= memcmp(bytes + i, want2, strlen(want2)) == 0;
        }
        CHECK(h1 && h2, "PNG parameters: size %d, hires entries %d", h1, h2);
    }
    size_t nin = 0, nfin = 0;
    float *hin = ifx_load_npy(stem_path(png_b, ".hires_input.npy"), &nin);
    float *fin = ifx_load_npy(ifx_json_string_at(b.data, "latents", 0), &nfin);
    REQUIRE(hin && nin == 4 * 12 * 16 && fin && nfin == nin, "hires input %zu, final %zu", nin, nfin);
    float *want = malloc(nin * sizeof *want);
    infer_latent_resize(lat_a, 1, 4, 6, 8, want, 12, 16, INFER_HR_LATENT);
    CHECK(memcmp(want, hin, nin * sizeof *want) == 0, "second-pass input != bilinear upscale of the first pass");
    double moved = 0;
    for (size_t i = 0; i < nin; i++) moved += fabs((double)fin[i] - hin[i]);
    CHECK(moved / nin > 1e-3, "the second pass changed nothing (%.3g)", moved / nin);
    free(want);
    free(hin);
    free(fin);
    cJSON_Delete(b.data);
    /* Image upscaler: the input is Pillow's Lanczos of the first-pass PNG. */
    ifx_result c = ifx_call("inference.run", req(",\"hires\":{\"scale\":2,\"upscaler\":\"lanczos\",\"steps\":2}"), &job);
    REQUIRE(c.status == SDRT_OK, "hires lanczos: %s", c.message);
    CHECK(job.last_steps == 2, "second pass ran %d steps, want 2", job.last_steps);
    printf("# tiny-sd15 processing_time: + hires lanczos x2 (decode, resize, encode), 2 steps at 128x96 %.3f s\n",
           cJSON_GetObjectItem(c.data, "processing_time")->valuedouble);
    const char *png_c = ifx_json_string_at(c.data, "images", 0);
    hin = ifx_load_npy(stem_path(png_c, ".hires_input.npy"), &nin);
    sdrt_error *e = NULL;
    const sdrt_postprocess_iface *post = ifx_plugin()->api->acquire(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID, &e);
    REQUIRE(post && hin && nin == 96 * 128 * 3, "hires input image (%zu)", nin);
    float *first = NULL;
    int fh = 0, fw = 0;
    REQUIRE(!post->read_image(post->self, ifx_json_string_at(a.data, "images", 0), &first, &fh, &fw) && fh == 48 && fw == 64,
            "first-pass PNG");
    uint8_t *u8 = malloc((size_t)fh * fw * 3), *big = malloc(nin);
    for (size_t i = 0; i < (size_t)fh * fw * 3; i++) u8[i] = (uint8_t)lrintf(first[i] * 255.f);
    REQUIRE(sdrt_resample_u8(u8, fw, fh, 3, NULL, SDRT_RESAMPLE_LANCZOS, big, 128, 96) == 0, "resample");
    size_t bad = 0;
    for (size_t i = 0; i < nin; i++) bad += (uint8_t)lrintf(hin[i] * 255.f) != big[i];
    CHECK(bad == 0, "second-pass input image differs from Lanczos(first pass) in %zu bytes", bad);
    post->free(post->self, first);
    free(u8);
    free(big);
    free(hin);
    ifx_plugin()->api->release(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID);
    cJSON_Delete(c.data);
    /* An upscaler model (SRVGGNetCompact x4 of tests/postprocess): one model
     * pass 64x48 -> 256x192, then Lanczos down to 128x96 (A1111's
     * resize_image). */
    char extra[2048];
    const char *model = test_path("SDRT_SOURCE_DIR", "tests/postprocess/data/upscale/compact_x4.pth");
    snprintf(extra, sizeof extra, ",\"hires\":{\"scale\":2,\"upscaler\":\"%s\",\"steps\":2}", model);
    ifx_result m = ifx_call("inference.run", req(extra), &job);
    REQUIRE(m.status == SDRT_OK, "hires model: %s", m.message);
    hin = ifx_load_npy(stem_path(ifx_json_string_at(m.data, "images", 0), ".hires_input.npy"), &nin);
    post = ifx_plugin()->api->acquire(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID, &e);
    REQUIRE(post && hin && nin == 96 * 128 * 3, "model hires input (%zu)", nin);
    REQUIRE(!post->read_image(post->self, ifx_json_string_at(a.data, "images", 0), &first, &fh, &fw), "first-pass PNG");
    float *x4 = NULL;
    int oh = 0, ow = 0;
    e = post->upscale(post->self, model, first, fh, fw, NULL, &x4, &oh, &ow);
    REQUIRE(!e && oh == 192 && ow == 256, "upscale %s", e ? e->message : "");
    u8 = malloc((size_t)oh * ow * 3);
    big = malloc(nin);
    for (size_t i = 0; i < (size_t)oh * ow * 3; i++) {
        float v = x4[i] * 255.f;
        u8[i] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrintf(v));
    }
    REQUIRE(sdrt_resample_u8(u8, ow, oh, 3, NULL, SDRT_RESAMPLE_LANCZOS, big, 128, 96) == 0, "resample");
    bad = 0;
    for (size_t i = 0; i < nin; i++) bad += (uint8_t)lrintf(hin[i] * 255.f) != big[i];
    CHECK(bad == 0, "model hires input differs from Lanczos(model(first pass)) in %zu bytes", bad);
    post->free(post->self, x4);
    post->free(post->self, first);
    free(u8);
    free(big);
    free(hin);
    ifx_plugin()->api->release(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID);
    cJSON_Delete(m.data);
    m = ifx_call("inference.run", req(",\"enable_hr\":true,\"hr_upscaler\":\"no-such-upscaler\""), &job);
    CHECK(m.status == SDRT_NOT_FOUND && strstr(m.message, "no-such-upscaler"), "%s", m.message);
    cJSON_Delete(m.data);
    /* SDXL: the second pass on the target size's time ids. */
    snprintf(g_data, sizeof g_data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox\",\"num_inference_steps\":4,\"seed\":5,"
             "\"scheduler\":\"EulerDiscreteScheduler\",\"width\":64,\"height\":64,\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"), ifx_out_dir());
    ifx_result xa = ifx_call("inference.run", g_data, &job);
    REQUIRE(xa.status == SDRT_OK, "sdxl plain: %s", xa.message);
    size_t nxa = 0;
    float *xlat = ifx_load_npy(ifx_json_string_at(xa.data, "latents", 0), &nxa);
    size_t gl = strlen(g_data);
    snprintf(g_data + gl - 1, sizeof g_data - gl + 1, ",\"hires\":{\"scale\":1.5,\"steps\":2,\"denoising_strength\":0.5}}");
    ifx_result xb = ifx_call("inference.run", g_data, &job);
    REQUIRE(xb.status == SDRT_OK, "sdxl hires: %s", xb.message);
    CHECK(cJSON_GetObjectItem(xb.data, "width")->valueint == 96 && job.last_steps == 2, "sdxl hires size/steps");
    size_t nxi = 0;
    float *xin = ifx_load_npy(stem_path(ifx_json_string_at(xb.data, "images", 0), ".hires_input.npy"), &nxi);
    REQUIRE(xlat && xin && nxa == 4 * 8 * 8 && nxi == 4 * 12 * 12, "sdxl latents %zu / %zu", nxa, nxi);
    float *xwant = malloc(nxi * sizeof *xwant);
    infer_latent_resize(xlat, 1, 4, 8, 8, xwant, 12, 12, INFER_HR_LATENT);
    CHECK(memcmp(xwant, xin, nxi * sizeof *xwant) == 0, "sdxl second-pass input != upscaled first pass");
    free(xwant);
    free(xin);
    free(xlat);
    cJSON_Delete(xa.data);
    cJSON_Delete(xb.data);
    /* Refusals at run time. */
    ifx_result d = ifx_call("inference.run", req(",\"enable_hr\":true,\"hr_scale\":0.01"), &job);
    CHECK(d.status == SDRT_INVALID_ARGUMENT && strstr(d.message, "hires: target size"), "%s", d.message);
    cJSON_Delete(d.data);
    free(lat_a);
    cJSON_Delete(a.data);
    ifx_stop();
}

const test_entry TESTS[] = {
    {"latent_resize_vs_torch", test_latent_resize_vs_torch},
    {"target_sizes", test_target_sizes},
    {"request_fields", test_request_fields},
    {"end_to_end", test_end_to_end},
    {0},
};
