/* tests/inference/test_controlnet.c - ControlNet generations against
 * diffusers StableDiffusion(XL)ControlNet pipelines (goldens and requests
 * from gen_controlnet.py in data/controlnet): txt2img with two schedulers
 * and a guidance window, two ControlNets summed, guess mode, img2img and
 * inpainting on tiny-sd15, txt2img on tiny-sdxl; final latents within 1e-3
 * relative L2. And the request errors: an SD1.x ControlNet on SDXL, an
 * unreadable control image, an unsupported preprocessor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "infer_fixture.h"

#define LATENT_TOL 1e-3

static cJSON *g_cases;

static cJSON *cases(void) {
    if (g_cases) return g_cases;
    const char *path = test_path("SDRT_SOURCE_DIR", "tests/inference/data/controlnet/cases.json");
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return g_cases = cJSON_Parse(buf);
}

static void substitute(cJSON *v) {
    for (cJSON *it = v->child; it; it = it->next) {
        if (cJSON_IsObject(it) || cJSON_IsArray(it)) substitute(it);
        if (!cJSON_IsString(it)) continue;
        char path[2048];
        if (strncmp(it->valuestring, "@REF/", 5) == 0)
            snprintf(path, sizeof path, "%s", test_path("SDRT_REFERENCE", it->valuestring + 5));
        else if (strncmp(it->valuestring, "@DATA/", 6) == 0)
            snprintf(path, sizeof path, "%s/tests/inference/data/%s", test_path("SDRT_SOURCE_DIR", "."),
                     it->valuestring + 6);
        else continue;
        cJSON_SetValuestring(it, path);
    }
}

static cJSON *request(const char *id) {
    cJSON *all = cases(), *c = all ? cJSON_GetObjectItemCaseSensitive(all, id) : NULL;
    if (!c) return NULL;
    cJSON *r = cJSON_Duplicate(c, 1);
    substitute(r);
    cJSON *out = cJSON_AddObjectToObject(r, "output");
    cJSON_AddStringToObject(out, "dir", ifx_out_dir());
    cJSON_AddBoolToObject(out, "save_latents", 1);
    return r;
}

static ifx_result call(cJSON *r) {
    char *data = cJSON_PrintUnformatted(r);
    struct sdrt_job job = {0};
    ifx_result res = ifx_call("inference.run", data, &job);
    free(data);
    return res;
}

static void check_case(const char *id) {
    REQUIRE(ifx_start(), "plugins did not load (see stderr)");
    cJSON *r = request(id);
    REQUIRE(r, "case %s missing in data/controlnet/cases.json", id);
    ifx_result res = call(r);
    cJSON_Delete(r);
    REQUIRE(res.status == SDRT_OK, "%s: status %d: %s", id, res.status, res.message);
    const char *lat = ifx_json_string_at(res.data, "latents", 0);
    char rel[256];
    snprintf(rel, sizeof rel, "tests/inference/data/controlnet/%s.latents.npy", id);
    size_t n_got = 0, n_want = 0;
    float *got = lat ? ifx_load_npy(lat, &n_got) : NULL, *want = ifx_load_npy(test_path("SDRT_SOURCE_DIR", rel), &n_want);
    CHECK(got && want && n_got == n_want, "%s: latents missing or wrong size (%zu vs %zu)", id, n_got, n_want);
    if (got && want && n_got == n_want) {
        double e = test_rel_l2(got, want, n_want);
        printf("# %s: final latents rel L2 %.3g\n", id, e);
        CHECK(e <= LATENT_TOL, "%s: rel L2 %.3g > %.0e", id, e, LATENT_TOL);
    }
    free(got);
    free(want);
    cJSON_Delete(res.data);
}

#define CASE(name) \
    static void test_##name(void) { check_case(#name); }
CASE(t2i_euler)
CASE(t2i_dpmpp_window)
CASE(t2i_two)
CASE(t2i_guess)
CASE(i2i)
CASE(inpaint)
CASE(xl_t2i_euler)

/* Without its ControlNet the same request gives other latents: the field
 * is not ignored. */
static void test_controlnet_changes_output(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    cJSON *r = request("t2i_euler");
    REQUIRE(r, "case missing");
    cJSON_DeleteItemFromObject(r, "controlnet");
    ifx_result res = call(r);
    cJSON_Delete(r);
    REQUIRE(res.status == SDRT_OK, "%s", res.message);
    size_t n_got = 0, n_want = 0;
    const char *lat = ifx_json_string_at(res.data, "latents", 0);
    float *got = lat ? ifx_load_npy(lat, &n_got) : NULL;
    float *want = ifx_load_npy(test_path("SDRT_SOURCE_DIR", "tests/inference/data/controlnet/t2i_euler.latents.npy"), &n_want);
    if (got && want && n_got == n_want) CHECK(test_rel_l2(got, want, n_want) > 1e-2, "ControlNet had no effect");
    free(got);
    free(want);
    cJSON_Delete(res.data);
}

/* "preprocess": "canny" on ctrl_a.png gives the latents of the same request
 * with cv2.Canny's map of it (tests/canny/gen_canny.py) and "none". */
static void test_canny_preprocess(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    float *lat[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        cJSON *r = request("t2i_euler");
        REQUIRE(r, "case missing");
        cJSON *cn = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "controlnet"), 0);
        if (k == 0) {
            cJSON_AddStringToObject(cn, "preprocess", "canny");
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(cn, "image");
            cJSON_AddStringToObject(cn, "image", test_path("SDRT_SOURCE_DIR", "tests/canny/data/ctrl_a_canny.png"));
        }
        ifx_result res = call(r);
        cJSON_Delete(r);
        CHECK(res.status == SDRT_OK, "canny case %d: %s", k, res.message);
        const char *p = ifx_json_string_at(res.data, "latents", 0);
        lat[k] = p ? ifx_load_npy(p, &n[k]) : NULL;
        cJSON_Delete(res.data);
    }
    CHECK(lat[0] && lat[1] && n[0] == n[1] && test_max_abs(lat[0], lat[1], n[0]) == 0,
          "canny in sdrt and cv2's map give different latents");
    free(lat[0]);
    free(lat[1]);
}

/* Single files: the folder's weights as one diffusers-named .safetensors and
 * as the original control_model.* layout (gen_controlnet_single.py, checked
 * by diffusers' from_single_file) give the folder's golden latents: the
 * derived config and the name mapping are right. */
static void test_single_files(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    const char *files[2] = {"tests/inference/data/controlnet/cn-sd15/diffusion_pytorch_model.safetensors",
                            "tests/inference/data/controlnet/cn-sd15-original.safetensors"};
    float *want = NULL;
    size_t n_want = 0;
    want = ifx_load_npy(test_path("SDRT_SOURCE_DIR", "tests/inference/data/controlnet/t2i_euler.latents.npy"), &n_want);
    for (int k = 0; k < 2; k++) {
        cJSON *r = request("t2i_euler");
        REQUIRE(r, "case missing");
        cJSON *cn = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "controlnet"), 0);
        cJSON_DeleteItemFromObjectCaseSensitive(cn, "model_id");
        cJSON_AddStringToObject(cn, "model_id", test_path("SDRT_SOURCE_DIR", files[k]));
        ifx_result res = call(r);
        cJSON_Delete(r);
        CHECK(res.status == SDRT_OK, "%s: %s", files[k], res.message);
        const char *p = ifx_json_string_at(res.data, "latents", 0);
        size_t n = 0;
        float *got = p ? ifx_load_npy(p, &n) : NULL;
        if (got && want && n == n_want) {
            double e = test_rel_l2(got, want, n);
            printf("# single file %s: final latents rel L2 %.3g\n", files[k], e);
            CHECK(e <= LATENT_TOL, "%s: rel L2 %.3g", files[k], e);
        } else {
            CHECK(0, "%s: latents missing", files[k]);
        }
        free(got);
        cJSON_Delete(res.data);
    }
    free(want);
}

static void expect_error(const char *id, const char *edit_key, const char *edit_json, sdrt_status want,
                         const char *needle) {
    cJSON *r = request(id);
    REQUIRE(r, "case missing");
    cJSON *cn = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "controlnet"), 0);
    cJSON *v = cJSON_Parse(edit_json);
    if (cJSON_IsString(v) && strncmp(v->valuestring, "@DATA/", 6) == 0) {
        cJSON *tmp = cJSON_CreateObject();
        cJSON_AddItemToObject(tmp, "x", v);
        substitute(tmp);
        v = cJSON_DetachItemFromObject(tmp, "x");
        cJSON_Delete(tmp);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(cn, edit_key);
    cJSON_AddItemToObject(cn, edit_key, v);
    ifx_result res = call(r);
    cJSON_Delete(r);
    printf("# %s=%s: %s\n", edit_key, edit_json, res.message);
    CHECK(res.status == want && strstr(res.message, needle), "%s=%s: status %d, %s", edit_key, edit_json,
          res.status, res.message);
    cJSON_Delete(res.data);
}

static void test_errors(void) {
    REQUIRE(ifx_start(), "plugins did not load");
    /* an SD1.x ControlNet on the SDXL model, and the reverse */
    expect_error("xl_t2i_euler", "model_id", "\"@DATA/controlnet/cn-sd15\"", SDRT_INVALID_ARGUMENT,
                 "controlnet[0].model_id");
    expect_error("t2i_euler", "model_id", "\"@DATA/controlnet/cn-sdxl\"", SDRT_INVALID_ARGUMENT,
                 "does not fit");
    /* a control image that cannot be read */
    expect_error("t2i_euler", "image", "\"@DATA/controlnet/cases.json\"", SDRT_INVALID_ARGUMENT,
                 "controlnet[0].image");
    expect_error("t2i_euler", "preprocess", "\"depth\"", SDRT_UNSUPPORTED, "\"depth\"");
    expect_error("t2i_euler", "guidance_end", "0", SDRT_INVALID_ARGUMENT, "controlnet[0].guidance_end");
    /* and the next request is served */
    check_case("t2i_euler");
}

static void test_shutdown(void) { ifx_stop(); }

const test_entry TESTS[] = {
    {"t2i_euler", test_t2i_euler},
    {"t2i_dpmpp_window", test_t2i_dpmpp_window},
    {"t2i_two", test_t2i_two},
    {"t2i_guess", test_t2i_guess},
    {"i2i", test_i2i},
    {"inpaint", test_inpaint},
    {"xl_t2i_euler", test_xl_t2i_euler},
    {"controlnet_changes_output", test_controlnet_changes_output},
    {"canny_preprocess", test_canny_preprocess},
    {"single_files", test_single_files},
    {"errors", test_errors},
    {"shutdown", test_shutdown},
    {0},
};
