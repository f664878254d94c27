/* tests/inference/test_img2img.c - img2img, inpainting (4- and 9-channel
 * UNets), the SDXL base -> refiner handoff and txt2img with LoRA adapters
 * (request field and prompt tags; the files of tests/lora/data) against
 * diffusers, and the errors of their fields. infer_run is driven with a fake host that loads
 * the real plugins, as in test_inference.c.
 *
 * The cases are tests/inference/data/cases.json, written with the golden
 * latents by gen_goldens.py (diffusers' StableDiffusion(XL)Img2ImgPipeline,
 * ...InpaintPipeline, the refiner as StableDiffusionXLImg2ImgPipeline).
 * The two generated models (a 9-channel inpainting UNet, a refiner UNet)
 * are committed alone; their other components are the reference tiny
 * models', linked into a temporary folder (read in place, never copied).
 *
 * Tolerance: final latents relative L2 <= 1e-3, the reference README's. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "infer_fixture.h"
#include "run.h"
#include "sdrt/postprocess.h"

#define LATENT_TOL 1e-3

static int g_started = -1;
static char g_out[1024], g_models[1100];
static cJSON *g_cases;
static int g_last_warnings; /* of the last check_case */

static int link_into(const char *dir, const char *name, const char *target) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return symlink(target, path) == 0 ? 0 : (fprintf(stderr, "# symlink %s: failed\n", path), -1);
}

/* models/<name>: model_index.json and unet from tests/inference/data, the
 * rest from the reference pipeline `ref`. */
static int assemble(const char *name, const char *ref, const char *const *comps) {
    char dir[1400], rel[256];
    snprintf(dir, sizeof dir, "%s/%s", g_models, name);
    if (mkdir(dir, 0755) != 0) return -1;
    int rc = 0;
    snprintf(rel, sizeof rel, "tests/inference/data/models/%s/model_index.json", name);
    rc |= link_into(dir, "model_index.json", test_path("SDRT_SOURCE_DIR", rel));
    snprintf(rel, sizeof rel, "tests/inference/data/models/%s/unet", name);
    rc |= link_into(dir, "unet", test_path("SDRT_SOURCE_DIR", rel));
    for (int i = 0; comps[i]; i++) {
        snprintf(rel, sizeof rel, "%s/%s", ref, comps[i]);
        rc |= link_into(dir, comps[i], test_path("SDRT_REFERENCE", rel));
    }
    return rc;
}

static int load_cases(void) {
    FILE *f = fopen(test_path("SDRT_SOURCE_DIR", "tests/inference/data/cases.json"), "rb");
    if (!f) return -1;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    g_cases = cJSON_Parse(buf);
    return cJSON_IsObject(g_cases) ? 0 : -1;
}

static int start(void) {
    static const char *const inpaint[] = {"text_encoder", "tokenizer", "vae", "scheduler", NULL};
    static const char *const refiner[] = {"text_encoder_2", "tokenizer_2", "vae", "scheduler", NULL};
    if (g_started >= 0) return g_started;
    g_started = ifx_start();
    if (!g_started) return 0;
    snprintf(g_out, sizeof g_out, "%s", ifx_out_dir());
    snprintf(g_models, sizeof g_models, "%s/models", g_out);
    g_started = mkdir(g_models, 0755) == 0 && assemble("tiny-sd15-inpaint", "tiny-sd15/diffusers", inpaint) == 0 &&
                assemble("tiny-sdxl-refiner", "tiny-sdxl/diffusers", refiner) == 0 && load_cases() == 0;
    return g_started;
}


/* Replaces the placeholders @REF/, @DATA/, @MODELS/, @LORA/ in every
 * string of `v`. */
static void substitute(cJSON *v) {
    static const char *const keys[] = {"@REF/", "@DATA/", "@MODELS/", "@LORA/"};
    for (cJSON *it = v->child; it; it = it->next) {
        if (cJSON_IsObject(it) || cJSON_IsArray(it)) substitute(it);
        if (!cJSON_IsString(it)) continue;
        for (int k = 0; k < 4; k++) {
            size_t kl = strlen(keys[k]);
            if (strncmp(it->valuestring, keys[k], kl) != 0) continue;
            char path[2048];
            const char *rest = it->valuestring + kl;
            if (k == 0) snprintf(path, sizeof path, "%s", test_path("SDRT_REFERENCE", rest));
            else if (k == 1) snprintf(path, sizeof path, "%s/tests/inference/data/%s", test_path("SDRT_SOURCE_DIR", "."), rest);
            else if (k == 2) snprintf(path, sizeof path, "%s/%s", g_models, rest);
            else snprintf(path, sizeof path, "%s/tests/lora/data/%s", test_path("SDRT_SOURCE_DIR", "."), rest);
            cJSON_SetValuestring(it, path);
        }
    }
}

/* The written PNG against diffusers' final image (padding_mask_crop cases:
 * the overlay). Pixels differ only where float rounding of the two decodes
 * lands on the other side of a .5; mean abs error <= 1/255 (measured ~0). */
static void check_image(const char *id, const char *png, const char *golden) {
    sdrt_error *e = NULL;
    const sdrt_postprocess_iface *post = ifx_plugin()->api->acquire(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID, &e);
    REQUIRE(post, "no postprocess interface");
    char rel[512];
    snprintf(rel, sizeof rel, "tests/inference/data/%s", golden);
    float *got = NULL, *want = NULL;
    int gh = 0, gw = 0, wh = 0, ww = 0;
    sdrt_error *e1 = post->read_image(post->self, png, &got, &gh, &gw);
    sdrt_error *e2 = post->read_image(post->self, test_path("SDRT_SOURCE_DIR", rel), &want, &wh, &ww);
    CHECK(!e1 && !e2 && gh == wh && gw == ww, "%s: images %dx%d vs %dx%d", id, gw, gh, ww, wh);
    if (!e1 && !e2 && gh == wh && gw == ww) {
        double sum = 0, worst = 0;
        for (size_t i = 0; i < (size_t)gh * gw * 3; i++) {
            double d = got[i] > want[i] ? got[i] - want[i] : want[i] - got[i];
            sum += d;
            worst = d > worst ? d : worst;
        }
        double mae = sum / ((double)gh * gw * 3);
        printf("# %s: image %dx%d mean abs %.3g/255, max %.0f/255\n", id, gw, gh, mae * 255, worst * 255);
        CHECK(mae <= 1.0 / 255, "%s: image mean abs %.3g/255 > 1/255", id, mae * 255);
    }
    if (e1) ifx_plugin()->api->error_free(e1);
    if (e2) ifx_plugin()->api->error_free(e2);
    post->free(post->self, got);
    post->free(post->self, want);
    ifx_plugin()->api->release(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID);
}

static cJSON *case_request(const char *id, const cJSON **golden, const cJSON **image) {
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(g_cases, "cases"), *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(c, "id");
        if (!cJSON_IsString(cid) || strcmp(cid->valuestring, id) != 0) continue;
        cJSON *req = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "request"), 1);
        substitute(req);
        cJSON *out = cJSON_GetObjectItemCaseSensitive(req, "output");
        cJSON_AddStringToObject(out, "dir", g_out);
        *golden = cJSON_GetObjectItemCaseSensitive(c, "latents");
        *image = cJSON_GetObjectItemCaseSensitive(c, "image");
        return req;
    }
    return NULL;
}

static void check_case(const char *id) {
    REQUIRE(start(), "setup failed (plugins, model folders or cases.json; see stderr)");
    const cJSON *golden = NULL, *image = NULL;
    cJSON *req = case_request(id, &golden, &image);
    REQUIRE(req && cJSON_IsString(golden), "case %s not in cases.json", id);
    char *data = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char image_name[256] = "";
    if (cJSON_IsString(image)) snprintf(image_name, sizeof image_name, "%s", image->valuestring);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    cJSON_free(data);
    g_last_warnings = job.warnings;
    REQUIRE(r.status == SDRT_OK, "%s: status %d: %s", id, r.status, r.message);
    char rel[512];
    snprintf(rel, sizeof rel, "tests/inference/data/%s", golden->valuestring);
    const char *lat = ifx_json_string_at(r.data, "latents", 0);
    size_t n_got = 0, n_want = 0;
    float *got = lat ? ifx_load_npy(lat, &n_got) : NULL, *want = ifx_load_npy(test_path("SDRT_SOURCE_DIR", rel), &n_want);
    double e = ifx_check_latents(id, got, n_got, want, n_want, LATENT_TOL);
    printf("# %s: final latents rel L2 %.3g (%d steps run)\n", id, e, job.last_steps);
    if (image_name[0]) check_image(id, ifx_json_string_at(r.data, "images", 0), image_name);
    free(got);
    free(want);
    cJSON_Delete(r.data);
}

#define CASE(name) \
    static void test_##name(void) { check_case(#name); }
CASE(i2i_sd15_euler_a)
CASE(i2i_sd15_dpmpp_2m_karras)
CASE(i2i_sd15_ddim)
CASE(i2i_sdxl_euler_a)
CASE(i2i_sdxl_dpmpp_2m_karras)
CASE(i2i_sdxl_ddim)
CASE(inpaint_sd15_euler_a)
CASE(inpaint_sd15_ddim)
CASE(inpaint_sd15_dpmpp_2m_karras)
CASE(inpaint_sdxl_euler_a)
CASE(inpaint_sdxl_ddim)
CASE(inpaint_sdxl_dpmpp_2m_karras)
CASE(inpaint_sd15_euler_resize_blur)
CASE(inpaint_sd15_crop)
CASE(inpaint_sd15_crop_fill)
CASE(inpaint9_sd15_euler)
CASE(inpaint9_sd15_dpmpp_2m_karras)
CASE(refiner_sdxl_euler)
CASE(refiner_sdxl_euler_a)
CASE(lora_sd15_kohya)
CASE(lora_sd15_peft)
CASE(lora_sd15_two)
CASE(lora_sd15_tag)
CASE(lora_sdxl_kohya)
CASE(lora_sdxl_peft)

/* "DPM++ 2M AYS" on SDXL: the inference plugin tells the scheduler the
 * model family (ays_model from the architecture), so the SDXL table is used
 * (the latents match diffusers' timesteps=StableDiffusionXLTimesteps; the
 * SD1 table would differ from step 2 on) and no "using the SD1 schedule"
 * fallback warning is given. */
static void test_ays_sdxl(void) {
    check_case("ays_sdxl_dpmpp_2m");
    CHECK(g_last_warnings == 0, "AYS on SDXL: %d warning(s), want none", g_last_warnings);
}

/* The handoff across two requests: the base's saved latents (denoising_end
 * 0.8) as init_image of a refiner request with denoising_start 0.8 give
 * the one-request result (Euler draws nothing, so the generator's
 * continuation does not matter). */
static void test_handover(void) {
    REQUIRE(start(), "setup failed");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\","
             "\"num_inference_steps\":8,\"guidance_scale\":7.5,\"seed\":42,\"scheduler\":\"EulerDiscreteScheduler\","
             "\"width\":64,\"height\":64,\"denoising_end\":0.8,\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"), g_out);
    struct sdrt_job job = {0};
    ifx_result base = ifx_call("inference.run", data, &job);
    REQUIRE(base.status == SDRT_OK, "base: %d %s", base.status, base.message);
    CHECK(job.last_steps == 6, "base ran %d steps, want 6 of 8", job.last_steps);
    const char *lat = ifx_json_string_at(base.data, "latents", 0);
    REQUIRE(lat, "no latents");
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s/tiny-sdxl-refiner\",\"prompt\":\"a red fox in the snow\",\"negative_prompt\":\"blurry\","
             "\"num_inference_steps\":8,\"guidance_scale\":7.5,\"seed\":42,\"scheduler\":\"EulerDiscreteScheduler\","
             "\"init_image\":\"%s\",\"denoising_start\":0.8,\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             g_models, lat, g_out);
    cJSON_Delete(base.data);
    ifx_result r = ifx_call("inference.run", data, &job);
    REQUIRE(r.status == SDRT_OK, "refiner: %d %s", r.status, r.message);
    size_t n_got = 0, n_want = 0;
    float *got = ifx_load_npy(ifx_json_string_at(r.data, "latents", 0), &n_got);
    float *want = ifx_load_npy(test_path("SDRT_SOURCE_DIR", "tests/inference/data/refiner_sdxl_euler.latents.npy"), &n_want);
    double e = got && want && n_got == n_want ? test_rel_l2(got, want, n_want) : 1.0;
    printf("# handover via .npy: final latents rel L2 %.3g\n", e);
    CHECK(e <= LATENT_TOL, "handover rel L2 %.3g", e);
    free(got);
    free(want);
    cJSON_Delete(r.data);
}

/* init_image as a data: URI gives the same result as the file. */
static char *png_data_uri(const char *path) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    const char *head = "data:image/png;base64,";
    char *uri = malloc(strlen(head) + (n + 2) / 3 * 4 + 1), *o = uri;
    if (!uri) return NULL;
    o += sprintf(o, "%s", head);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)buf[i] << 16 | (i + 1 < n ? (unsigned)buf[i + 1] << 8 : 0) | (i + 2 < n ? buf[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *o = 0;
    return uri;
}

static void test_data_uri(void) {
    REQUIRE(start(), "setup failed");
    const cJSON *golden = NULL, *image = NULL;
    cJSON *req = case_request("i2i_sd15_euler_a", &golden, &image);
    char *uri = png_data_uri(test_path("SDRT_SOURCE_DIR", "tests/inference/data/init.png"));
    REQUIRE(req && uri, "case or data URI");
    cJSON_ReplaceItemInObjectCaseSensitive(req, "init_image", cJSON_CreateString(uri));
    free(uri);
    char *data = cJSON_PrintUnformatted(req), rel[512];
    snprintf(rel, sizeof rel, "tests/inference/data/%s", golden->valuestring);
    cJSON_Delete(req);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    cJSON_free(data);
    REQUIRE(r.status == SDRT_OK, "data URI: %d %s", r.status, r.message);
    size_t n_got = 0, n_want = 0;
    float *got = ifx_load_npy(ifx_json_string_at(r.data, "latents", 0), &n_got);
    float *want = ifx_load_npy(test_path("SDRT_SOURCE_DIR", rel), &n_want);
    double e = got && want && n_got == n_want ? test_rel_l2(got, want, n_want) : 1.0;
    CHECK(e <= LATENT_TOL, "data URI: rel L2 %.3g", e);
    free(got);
    free(want);
    cJSON_Delete(r.data);
}

/* ---- steps: strength 0.5 runs half of them ---- */

static void test_strength_steps(void) {
    REQUIRE(start(), "setup failed");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"num_inference_steps\":10,\"seed\":1,\"strength\":0.5,"
             "\"scheduler\":\"euler\",\"init_image\":\"%s\",\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), test_path("SDRT_SOURCE_DIR", "tests/inference/data/init.png"),
             g_out);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    CHECK(job.last_step == 5 && job.last_steps == 5, "ran %d/%d steps, want 5/5", job.last_step, job.last_steps);
    const cJSON *info = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.data, "images_info"), 0);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(info, "width");
    CHECK(cJSON_IsNumber(w) && w->valuedouble == 64, "size from the init image");
    cJSON_Delete(r.data);
}

/* A larger request size resizes the init image (Lanczos) and the mask. */
static void test_resize(void) {
    REQUIRE(start(), "setup failed");
    char data[4096], init[1024];
    snprintf(init, sizeof init, "%s", test_path("SDRT_SOURCE_DIR", "tests/inference/data/init.png"));
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"num_inference_steps\":2,\"seed\":1,\"width\":96,\"height\":80,"
             "\"init_image\":\"%s\",\"mask_image\":\"%s\",\"mask_blur\":4,\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), init,
             test_path("SDRT_SOURCE_DIR", "tests/inference/data/mask.png"), g_out);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    const cJSON *info = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.data, "images_info"), 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(info, "width")->valuedouble == 96 &&
              cJSON_GetObjectItemCaseSensitive(info, "height")->valuedouble == 80,
          "output size 96x80");
    cJSON_Delete(r.data);
}

/* preview 2 over 4 steps with 2 images: an event per image at steps 2
 * and 4, each with a PNG (data URI) of the latent size. */
static void test_preview(void) {
    REQUIRE(start(), "setup failed");
    char data[4096];
    snprintf(data, sizeof data,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"num_inference_steps\":4,\"seed\":1,\"batch_size\":2,"
             "\"width\":64,\"height\":64,\"scheduler\":\"euler\",\"preview\":2,\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), g_out);
    struct sdrt_job job = {.keep_events = 1};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_OK, "status %d: %s", r.status, r.message);
    CHECK(job.events == 4, "%d events, want 4 previews", job.events);
    CHECK(strcmp(job.last_event_name, "preview") == 0, "last event '%s'", job.last_event_name);
    cJSON *ev = job.last_event_data ? cJSON_Parse(job.last_event_data) : NULL;
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(ev, "image");
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(ev, "step"), *idx = cJSON_GetObjectItemCaseSensitive(ev, "index");
    CHECK(cJSON_IsNumber(step) && step->valuedouble == 4 && cJSON_IsNumber(idx) && idx->valuedouble == 1,
          "last preview: step 4 of image 1");
    REQUIRE(cJSON_IsString(img) && strncmp(img->valuestring, "data:image/png;base64,", 22) == 0, "no PNG data URI");
    sdrt_error *e = NULL;
    const sdrt_postprocess_iface *post = ifx_plugin()->api->acquire(ifx_plugin()->host, SDRT_POSTPROCESS_IFACE_ID, &e);
    float *rgb = NULL;
    int h = 0, w = 0;
    e = post ? post->read_image(post->self, img->valuestring, &rgb, &h, &w) : e;
    CHECK(!e && h == 8 && w == 8, "preview PNG decodes to %dx%d (want 8x8): %s", w, h, e ? e->message : "");
    if (e) ifx_plugin()->api->error_free(e);
    if (post) post->free(post->self, rgb);
    cJSON_Delete(ev);
    free(job.last_event_data);
    cJSON_Delete(r.data);
}

/* batch_size 5 with max_batch 2: three UNet calls per step ([2, 2, 1]
 * images), the same latents bit for bit as one call (one generator, one
 * scheduler over the whole batch; Euler a draws noise every step). */
static void run_batch(const char *model, int max_batch, float **lat, size_t *n, cJSON **data) {
    char req[4096];
    snprintf(req, sizeof req,
             "{\"model_id\":\"%s\",\"prompt\":\"fox\",\"num_inference_steps\":3,\"seed\":5,\"batch_size\":5,"
             "\"max_batch\":%d,\"width\":64,\"height\":64,\"scheduler\":\"euler_a\","
             "\"output\":{\"dir\":\"%s\",\"save_latents\":true}}",
             test_path("SDRT_REFERENCE", model), max_batch, g_out);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", req, &job);
    CHECK(r.status == SDRT_OK, "max_batch %d: %d %s", max_batch, r.status, r.message);
    CHECK(max_batch == 0 || job.warnings == 1, "split: %d warnings, want 1", job.warnings);
    for (int i = 0; i < 5; i++) {
        const char *p = ifx_json_string_at(r.data, "latents", i);
        lat[i] = p ? ifx_load_npy(p, &n[i]) : NULL;
    }
    *data = r.data;
}

static void check_split(const char *model) {
    REQUIRE(start(), "setup failed");
    float *whole[5], *split[5];
    size_t nw[5], ns[5];
    cJSON *dw = NULL, *ds = NULL;
    run_batch(model, 0, whole, nw, &dw);
    run_batch(model, 2, split, ns, &ds);
    int same = 1;
    for (int i = 0; i < 5; i++) {
        same &= whole[i] && split[i] && nw[i] == ns[i] && memcmp(whole[i], split[i], nw[i] * sizeof(float)) == 0;
        free(whole[i]);
        free(split[i]);
    }
    CHECK(same, "%s: split batch latents differ from the unsplit run", model);
    CHECK(!cJSON_GetObjectItemCaseSensitive(dw, "batch_split"), "unsplit run reports no batch_split");
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(ds, "batch_split"));
    CHECK(text && strcmp(text, "[2,2,1]") == 0, "batch_split %s, want [2,2,1]", text ? text : "(none)");
    cJSON_free(text);
    cJSON_Delete(dw);
    cJSON_Delete(ds);
}

static void test_batch_split(void) {
    check_split("tiny-sd15/diffusers");
    check_split("tiny-sdxl/diffusers");
}

/* ---- bad inputs: status and the field named ---- */

static void expect(const char *extra, sdrt_status want, const char *text) {
    REQUIRE(start(), "setup failed");
    char data[8192], model[1200] = "";
    /* cJSON keeps the first of duplicate keys: a model_id in `extra` replaces the default */
    if (strncmp(extra, "\"model_id\"", 10) != 0)
        snprintf(model, sizeof model, "\"model_id\":\"%s\",", test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"));
    snprintf(data, sizeof data, "{%s%s\"num_inference_steps\":2,\"scheduler\":\"euler\",%s}", model,
             strstr(extra, "\"prompt\"") ? "" : "\"prompt\":\"x\",", extra);
    struct sdrt_job job = {0};
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == want && strstr(r.message, text), "%s -> %d \"%s\", want %d with \"%s\"", extra, r.status,
          r.message, want, text);
    cJSON_Delete(r.data);
}

static void test_errors(void) {
    char init[1200], mask[1200], extra[4096];
    snprintf(init, sizeof init, "%s", test_path("SDRT_SOURCE_DIR", "tests/inference/data/init.png"));
    snprintf(mask, sizeof mask, "%s", test_path("SDRT_SOURCE_DIR", "tests/inference/data/mask.png"));
    expect("\"init_image\":\"/nonexistent/init.png\"", SDRT_NOT_FOUND, "init_image:");
    expect("\"init_image\":\"/sdrt-denied/init.png\"", SDRT_PERMISSION_DENIED, "init_image:");
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\",\"mask_image\":\"/nonexistent/m.png\"", init);
    expect(extra, SDRT_NOT_FOUND, "mask_image:");
    expect("\"init_image\":\"data:image/png;base64,AAAA\"", SDRT_INVALID_ARGUMENT, "init_image:");
    expect("\"init_image\":7", SDRT_INVALID_ARGUMENT, "init_image: must be a string");
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\",\"strength\":1.5", init);
    expect(extra, SDRT_INVALID_ARGUMENT, "strength: 1.5 is out of range (0, 1]");
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\",\"strength\":0", init);
    expect(extra, SDRT_INVALID_ARGUMENT, "strength: 0 is out of range");
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\",\"strength\":\"high\"", init);
    expect(extra, SDRT_INVALID_ARGUMENT, "strength: must be a number");
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\",\"strength\":0.01", init);
    expect(extra, SDRT_INVALID_ARGUMENT, "strength: 0.01 leaves no step");
    expect("\"strength\":0.5", SDRT_INVALID_ARGUMENT, "strength: needs init_image");
    snprintf(extra, sizeof extra, "\"mask_image\":\"%s\"", mask);
    expect(extra, SDRT_INVALID_ARGUMENT, "mask_image: needs init_image");
    /* a colour image as the mask is accepted (converted to grayscale, as PIL's convert("L")) */
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\",\"mask_image\":\"%s\"", init,
             test_path("SDRT_REFERENCE", "tiny-sd15/t2i/euler_64x64.png"));
    expect(extra, SDRT_OK, "");
    char small[1300];
    snprintf(small, sizeof small, "%s", test_path("SDRT_SOURCE_DIR", "tests/inference/data/small.png"));
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\",\"mask_image\":\"%s\"", init, small);
    expect(extra, SDRT_INVALID_ARGUMENT, "mask_image: 4x4 differs from the init_image's 64x64");
    snprintf(extra, sizeof extra, "\"init_image\":\"%s\"", small);
    expect(extra, SDRT_INVALID_ARGUMENT, "init_image: 4x4 is smaller than 8x8");
    expect("\"model_id\":{\"refiner\":\"x\"}", SDRT_INVALID_ARGUMENT, "model_id.base: is required");
    /* LoRA: a missing adapter file or tag, and a LoRA of another architecture */
    expect("\"lora\":{\"adapters\":[{\"model_id\":\"/nonexistent/x.safetensors\"}]}", SDRT_NOT_FOUND, "lora.adapters:");
    expect("\"prompt\":\"fox <lora:no_such_lora:0.5>\"", SDRT_NOT_FOUND, "prompt:");
    snprintf(extra, sizeof extra, "\"lora\":{\"adapters\":[{\"model_id\":\"%s\"}]}",
             test_path("SDRT_SOURCE_DIR", "tests/lora/data/sdxl_kohya.safetensors"));
    expect(extra, SDRT_INVALID_ARGUMENT, "lora.adapters:");
    /* enabled false: the tag is dropped with a warning, not looked up */
    expect("\"prompt\":\"fox <lora:no_such_lora:0.5>\",\"lora\":{\"enabled\":false}", SDRT_OK, "");
    expect("\"model_id\":{\"base\":\"x\",\"vae\":3}", SDRT_INVALID_ARGUMENT, "model_id.vae: must be a string");
}

/* The refiner of an SD1.5 base, a missing refiner, and an inpainting
 * model without a mask are refused by name. */
static void test_suite_errors(void) {
    REQUIRE(start(), "setup failed");
    char data[4096];
    struct sdrt_job job = {0};
    snprintf(data, sizeof data,
             "{\"model_id\":{\"base\":\"%s\",\"refiner\":\"/nonexistent/refiner\"},\"prompt\":\"x\","
             "\"num_inference_steps\":2,\"width\":64,\"height\":64,\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"), g_out);
    ifx_result r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_NOT_FOUND && strstr(r.message, "model_id.refiner:"), "%d %s", r.status, r.message);
    snprintf(data, sizeof data,
             "{\"model_id\":{\"base\":\"%s\",\"refiner\":\"%s/tiny-sdxl-refiner\"},\"prompt\":\"x\","
             "\"num_inference_steps\":2,\"width\":64,\"height\":64,\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), g_models, g_out);
    r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_INVALID_ARGUMENT && strstr(r.message, "model_id.refiner:"), "%d %s", r.status, r.message);
    snprintf(data, sizeof data, "{\"model_id\":\"%s/tiny-sd15-inpaint\",\"prompt\":\"x\",\"num_inference_steps\":2,"
             "\"width\":64,\"height\":64,\"output\":{\"dir\":\"%s\"}}", g_models, g_out);
    r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_INVALID_ARGUMENT && strstr(r.message, "inpainting model"), "%d %s", r.status, r.message);
    snprintf(data, sizeof data,
             "{\"model_id\":{\"base\":\"%s\",\"vae\":\"%s\"},\"prompt\":\"x\",\"num_inference_steps\":2,"
             "\"width\":64,\"height\":64,\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"), test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"),
             g_out);
    r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_OK, "vae override by a pipeline: %d %s", r.status, r.message);
    cJSON_Delete(r.data);
    /* a standalone AutoencoderKL folder (as sdxl-vae-fp16-fix is published) */
    snprintf(data, sizeof data,
             "{\"model_id\":{\"base\":\"%s\",\"vae\":\"%s\"},\"prompt\":\"x\",\"num_inference_steps\":2,"
             "\"width\":64,\"height\":64,\"strength\":0.5,\"init_image\":\"%s\",\"output\":{\"dir\":\"%s\"}}",
             test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers"), test_path("SDRT_REFERENCE", "tiny-sdxl/diffusers/vae"),
             test_path("SDRT_SOURCE_DIR", "tests/inference/data/init.png"), g_out);
    r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_OK, "vae override by a VAE folder: %d %s", r.status, r.message);
    cJSON_Delete(r.data);
    snprintf(data, sizeof data,
             "{\"model_id\":{\"base\":\"%s\",\"vae\":\"/nonexistent/vae\"},\"prompt\":\"x\",\"num_inference_steps\":2}",
             test_path("SDRT_REFERENCE", "tiny-sd15/diffusers"));
    r = ifx_call("inference.run", data, &job);
    CHECK(r.status == SDRT_NOT_FOUND && strstr(r.message, "model_id.vae:"), "%d %s", r.status, r.message);
}

static void test_shutdown(void) {
    ifx_stop();
    cJSON_Delete(g_cases);
}

const test_entry TESTS[] = {
    {"i2i_sd15_euler_a", test_i2i_sd15_euler_a},
    {"i2i_sd15_dpmpp_2m_karras", test_i2i_sd15_dpmpp_2m_karras},
    {"i2i_sd15_ddim", test_i2i_sd15_ddim},
    {"i2i_sdxl_euler_a", test_i2i_sdxl_euler_a},
    {"i2i_sdxl_dpmpp_2m_karras", test_i2i_sdxl_dpmpp_2m_karras},
    {"i2i_sdxl_ddim", test_i2i_sdxl_ddim},
    {"inpaint_sd15_euler_a", test_inpaint_sd15_euler_a},
    {"inpaint_sd15_ddim", test_inpaint_sd15_ddim},
    {"inpaint_sd15_dpmpp_2m_karras", test_inpaint_sd15_dpmpp_2m_karras},
    {"inpaint_sdxl_euler_a", test_inpaint_sdxl_euler_a},
    {"inpaint_sdxl_ddim", test_inpaint_sdxl_ddim},
    {"inpaint_sdxl_dpmpp_2m_karras", test_inpaint_sdxl_dpmpp_2m_karras},
    {"inpaint_sd15_euler_resize_blur", test_inpaint_sd15_euler_resize_blur},
    {"inpaint_sd15_crop", test_inpaint_sd15_crop},
    {"inpaint_sd15_crop_fill", test_inpaint_sd15_crop_fill},
    {"inpaint9_sd15_euler", test_inpaint9_sd15_euler},
    {"inpaint9_sd15_dpmpp_2m_karras", test_inpaint9_sd15_dpmpp_2m_karras},
    {"refiner_sdxl_euler", test_refiner_sdxl_euler},
    {"refiner_sdxl_euler_a", test_refiner_sdxl_euler_a},
    {"lora_sd15_kohya", test_lora_sd15_kohya},
    {"lora_sd15_peft", test_lora_sd15_peft},
    {"lora_sd15_two", test_lora_sd15_two},
    {"lora_sd15_tag", test_lora_sd15_tag},
    {"lora_sdxl_kohya", test_lora_sdxl_kohya},
    {"lora_sdxl_peft", test_lora_sdxl_peft},
    {"ays_sdxl", test_ays_sdxl},
    {"handover", test_handover},
    {"data_uri", test_data_uri},
    {"strength_steps", test_strength_steps},
    {"resize", test_resize},
    {"preview", test_preview},
    {"batch_split", test_batch_split},
    {"errors", test_errors},
    {"suite_errors", test_suite_errors},
    {"shutdown", test_shutdown},
    {0},
};
