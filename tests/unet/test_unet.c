/* tests/unet/test_unet.c - UNet2DConditionModel parity with diffusers.
 *
 * Inputs and outputs of real UNet calls from the shared reference (tiny SD1.5
 * and SDXL, 8x8 latents, CFG batch of 2) and non-square / odd sizes from
 * tests/unet/gen_goldens.py. Tolerance: relative L2 <= 1e-4 in float32 (the
 * reference README's bar for UNet outputs); f16 weights are compared with
 * 5e-3, the error their rounding (2^-11 relative per weight) allows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "unet.h"

#define PARITY_TOL 1e-4
#define F16_TOL 5e-3

typedef struct unet_case {
    const char *model;       /* "tiny-sd15" / "tiny-sdxl" */
    const char *sample;      /* paths relative to their env root */
    const char *timestep;
    const char *time_ids;    /* NULL: from the reference call00 */
    const char *out;
    int local;               /* sample/timestep/time_ids/out under tests/unet/data */
} unet_case;

typedef struct loaded_unet {
    fx_weights *w;
    unet *u;
} loaded_unet;

static loaded_unet load_unet(const char *model, int f16) {
    char rel[256];
    loaded_unet l = {0};
    snprintf(rel, sizeof rel, "%s/diffusers/unet/diffusion_pytorch_model.safetensors", model);
    l.w = fx_weights_open(test_path("SDRT_REFERENCE", rel), f16);
    snprintf(rel, sizeof rel, "%s/diffusers/unet/config.json", model);
    char *cfg = fx_read_text(test_path("SDRT_REFERENCE", rel));
    char err[512] = "";
    sdrt_status st = cfg ? unet_new(cfg, fx_weights_get, l.w, &l.u, err, sizeof err) : SDRT_NOT_FOUND;
    CHECK(st == SDRT_OK, "unet_new(%s): %d %s", model, st, err);
    free(cfg);
    return l;
}

static void unload_unet(loaded_unet *l) {
    unet_free(l->u);
    fx_weights_close(l->w);
}

static sdrt_tensor *upload(sdrt_nn *nn, const char *path, int64_t *shape, int *ndim) {
    size_t n;
    float *data = fx_npy(path, shape, ndim, &n);
    sdrt_tensor *t = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, *ndim, shape, data);
    free(data);
    return t;
}

static const char *ref_call(const char *model, const char *what) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/t2i/euler_64x64.intermediates/unet_call00_%s.npy", model, what);
    return test_path("SDRT_REFERENCE", rel);
}

static const char *case_path(const unet_case *c, const char *rel) {
    return c->local ? test_path("SDRT_SOURCE_DIR", rel) : test_path("SDRT_REFERENCE", rel);
}

/* Runs one case and returns the relative L2 error (or 1e9 on failure). */
static double run_case(const unet_case *c, int f16) {
    loaded_unet l = load_unet(c->model, f16);
    if (!l.u) return 1e9;
    sdrt_nn *nn = sdrt_nn_new(fx_cpu_device(), "{\"threads\":2}", NULL, NULL);
    int64_t shape[8];
    int nd;
    size_t n_ts, n_ids = 0, n_out;
    sdrt_tensor *sample = upload(nn, case_path(c, c->sample), shape, &nd);
    sdrt_tensor *ctx = upload(nn, ref_call(c->model, "encoder_hidden_states"), shape, &nd);
    float *ts = fx_npy(case_path(c, c->timestep), NULL, NULL, &n_ts);
    float timesteps[2] = {ts[0], ts[n_ts - 1]};
    sdrt_tensor *text = NULL;
    float *ids = NULL;
    if (strcmp(c->model, "tiny-sdxl") == 0) {
        text = upload(nn, ref_call(c->model, "added_text_embeds"), shape, &nd);
        ids = fx_npy(c->time_ids ? case_path(c, c->time_ids) : ref_call(c->model, "added_time_ids"), NULL, NULL,
                     &n_ids);
    }
    unet_inputs in = {.sample = sample, .timesteps = timesteps, .context = ctx, .text_embeds = text, .time_ids = ids};
    sdrt_tensor *out = NULL;
    char err[512] = "";
    sdrt_status st = unet_forward(l.u, nn, &in, &out, err, sizeof err);
    CHECK(st == SDRT_OK, "%s: unet_forward: %d %s", c->sample, st, err);
    float *want = fx_npy(case_path(c, c->out), shape, &nd, &n_out);
    double rel = 1e9;
    if (out && sdrt_nn_numel(out) == (int64_t)n_out) {
        float *got = malloc(n_out * sizeof *got);
        if (sdrt_nn_to_host_f32(nn, out, got) == SDRT_OK) rel = test_rel_l2(got, want, n_out);
        free(got);
    }
    free(want);
    free(ts);
    free(ids);
    sdrt_nn_free(nn);
    unload_unet(&l);
    return rel;
}

static void check_case(const unet_case *c, int f16, double tol) {
    double rel = run_case(c, f16);
    printf("# %s %s%s: rel L2 %.3g\n", c->model, c->sample, f16 ? " (f16 weights)" : "", rel);
    CHECK(rel <= tol, "%s %s: rel L2 %.3g > %.1g", c->model, c->sample, rel, tol);
}

#define REF_CASE(model, call)                                                                  \
    {model, model "/t2i/euler_64x64.intermediates/unet_" call "_sample.npy",                   \
     model "/t2i/euler_64x64.intermediates/unet_" call "_timestep.npy", NULL,                 \
     model "/t2i/euler_64x64.intermediates/unet_" call "_out.npy", 0}
#define LOCAL_CASE(model, size, ids)                                                         \
    {model, "tests/unet/data/" model "_" size "_sample.npy",                                  \
     "tests/unet/data/" model "_" size "_timestep.npy",                                       \
     (ids) ? "tests/unet/data/" model "_" size "_time_ids.npy" : NULL,                        \
     "tests/unet/data/" model "_" size "_out.npy", 1}

static void test_sd15_call00(void) {
    unet_case c = REF_CASE("tiny-sd15", "call00");
    check_case(&c, 0, PARITY_TOL);
}

static void test_sd15_call05(void) {
    unet_case c = REF_CASE("tiny-sd15", "call05");
    check_case(&c, 0, PARITY_TOL);
}

static void test_sdxl_call00(void) {
    unet_case c = REF_CASE("tiny-sdxl", "call00");
    check_case(&c, 0, PARITY_TOL);
}

static void test_sdxl_call07(void) {
    unet_case c = REF_CASE("tiny-sdxl", "call07");
    check_case(&c, 0, PARITY_TOL);
}

static void test_sd15_non_square(void) {
    unet_case a = LOCAL_CASE("tiny-sd15", "6x10", 0);
    unet_case b = LOCAL_CASE("tiny-sd15", "9x13", 0);
    check_case(&a, 0, PARITY_TOL);
    check_case(&b, 0, PARITY_TOL);
}

static void test_sdxl_non_square(void) {
    unet_case a = LOCAL_CASE("tiny-sdxl", "6x10", 1);
    unet_case b = LOCAL_CASE("tiny-sdxl", "9x13", 1);
    check_case(&a, 0, PARITY_TOL);
    check_case(&b, 0, PARITY_TOL);
}

static void test_f16_weights(void) {
    unet_case a = REF_CASE("tiny-sd15", "call00");
    unet_case b = REF_CASE("tiny-sdxl", "call00");
    check_case(&a, 1, F16_TOL);
    check_case(&b, 1, F16_TOL);
}

static int cancel_after_polls(sdrt_job *job) {
    static int polls;
    (void)job;
    return ++polls > 20;
}

/* The nn context's hook must stop a forward pass part-way with CANCELLED. */
static void test_cancel_mid_forward(void) {
    loaded_unet l = load_unet("tiny-sd15", 0);
    REQUIRE(l.u, "no unet");
    sdrt_nn *nn = sdrt_nn_new(fx_cpu_device(), NULL, cancel_after_polls, NULL);
    int64_t shape[8];
    int nd;
    sdrt_tensor *sample = upload(nn, ref_call("tiny-sd15", "sample"), shape, &nd);
    sdrt_tensor *ctx = upload(nn, ref_call("tiny-sd15", "encoder_hidden_states"), shape, &nd);
    float ts[2] = {500.0f, 500.0f};
    unet_inputs in = {.sample = sample, .timesteps = ts, .context = ctx};
    sdrt_tensor *out = NULL;
    char err[512] = "";
    sdrt_status st = unet_forward(l.u, nn, &in, &out, err, sizeof err);
    CHECK(st == SDRT_CANCELLED, "status %d (%s), want CANCELLED", st, err);
    CHECK(out == NULL, "output despite cancellation");
    sdrt_nn_free(nn);
    unload_unet(&l);
}

static void test_bad_inputs(void) {
    loaded_unet l = load_unet("tiny-sdxl", 0);
    REQUIRE(l.u, "no unet");
    sdrt_nn *nn = sdrt_nn_new(fx_cpu_device(), NULL, NULL, NULL);
    int64_t shape[8];
    int nd;
    sdrt_tensor *sample = upload(nn, ref_call("tiny-sdxl", "sample"), shape, &nd);
    sdrt_tensor *ctx = upload(nn, ref_call("tiny-sdxl", "encoder_hidden_states"), shape, &nd);
    float ts[2] = {500.0f, 500.0f};
    unet_inputs in = {.sample = sample, .timesteps = ts, .context = ctx}; /* no text_embeds */
    sdrt_tensor *out = NULL;
    char err[512] = "";
    sdrt_status st = unet_forward(l.u, nn, &in, &out, err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "text_embeds"), "status %d: %s", st, err);
    sdrt_nn_free(nn);
    unload_unet(&l);
}

/* Builds the tiny SD1.5 weights against an edited config. */
static sdrt_status build_with(const char *find, const char *replace, char *err, size_t errlen) {
    fx_weights *w = fx_weights_open(test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/unet/diffusion_pytorch_model.safetensors"), 0);
    char *cfg = fx_read_text(test_path("SDRT_REFERENCE", "tiny-sd15/diffusers/unet/config.json"));
    char *hit = cfg ? strstr(cfg, find) : NULL;
    sdrt_status st = SDRT_INTERNAL;
    if (hit) {
        size_t pre = (size_t)(hit - cfg), total = strlen(cfg) - strlen(find) + strlen(replace) + 1;
        char *edited = malloc(total);
        snprintf(edited, total, "%.*s%s%s", (int)pre, cfg, replace, hit + strlen(find));
        unet *u = NULL;
        st = unet_new(edited, fx_weights_get, w, &u, err, errlen);
        unet_free(u);
        free(edited);
    }
    free(cfg);
    fx_weights_close(w);
    return st;
}

static void test_config_errors(void) {
    char err[512] = "";
    sdrt_status st = build_with("\"class_embed_type\": null", "\"class_embed_type\": \"timestep\"", err, sizeof err);
    CHECK(st == SDRT_UNSUPPORTED && strstr(err, "class_embed_type"), "class_embed_type: %d %s", st, err);
    st = build_with("\"layers_per_block\": 2", "\"layers_per_block\": 3", err, sizeof err);
    CHECK(st == SDRT_NOT_FOUND && strstr(err, "down_blocks.0.resnets.2"), "layers_per_block: %d %s", st, err);
    st = build_with("\"cross_attention_dim\": 32", "\"cross_attention_dim\": 48", err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "attn2.to_k.weight"), "cross_attention_dim: %d %s", st, err);
    st = build_with("\"down_block_types\": [", "\"down_block_types\": 3, \"x\": [", err, sizeof err);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(err, "down_block_types"), "down_block_types: %d %s", st, err);
}

/* The per-block values diffusers derives, for SD2 (heads from the list
 * "attention_head_dim") and an asymmetric SDXL-style depth. */
static void test_config_expansion(void) {
    const char *sd2 =
        "{\"block_out_channels\":[320,640,1280,1280],\"attention_head_dim\":[5,10,20,20],"
        "\"down_block_types\":[\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\",\"DownBlock2D\"],"
        "\"up_block_types\":[\"UpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\"],"
        "\"cross_attention_dim\":1024,\"use_linear_projection\":true,\"transformer_layers_per_block\":[1,2,3,4]}";
    unet_config c;
    char err[256] = "";
    REQUIRE(unet_config_parse(sd2, &c, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(c.nblocks == 4 && c.heads[0] == 5 && c.heads[3] == 20, "heads %d %d", c.heads[0], c.heads[3]);
    CHECK(c.cross_dim[2] == 1024 && c.use_linear_projection, "cross dim");
    CHECK(c.tlayers_up[0][0] == 4 && c.tlayers_up[3][2] == 1, "up depths %d %d", c.tlayers_up[0][0], c.tlayers_up[3][2]);
    CHECK(c.time_embed_dim == 1280 && c.has_mid && !c.text_time, "defaults");
    CHECK(c.down_attn[0] && !c.down_attn[3] && !c.up_attn[0] && c.up_attn[3], "block kinds");
}

/* SDXL refiner: 4 blocks, heads from a list, depth 4 everywhere, five
 * time ids (2560 = 1280 pooled + 5 x 256). */
static void test_config_refiner(void) {
    const char *refiner =
        "{\"addition_embed_type\":\"text_time\",\"addition_time_embed_dim\":256,\"attention_head_dim\":[6,12,24,24],"
        "\"block_out_channels\":[384,768,1536,1536],\"cross_attention_dim\":1280,"
        "\"down_block_types\":[\"DownBlock2D\",\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\",\"DownBlock2D\"],"
        "\"up_block_types\":[\"UpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"UpBlock2D\"],"
        "\"projection_class_embeddings_input_dim\":2560,\"transformer_layers_per_block\":4,"
        "\"use_linear_projection\":true,\"num_attention_heads\":null,\"class_embed_type\":null}";
    unet_config c;
    char err[256] = "";
    REQUIRE(unet_config_parse(refiner, &c, err, sizeof err) == SDRT_OK, "%s", err);
    CHECK(c.text_time && c.addition_time_embed_dim == 256 && c.add_embed_in == 2560, "text_time");
    CHECK((c.add_embed_in - 1280) / c.addition_time_embed_dim == 5, "five time ids");
    CHECK(c.heads[1] == 12 && c.block_out[1] / c.heads[1] == 64, "head width 64");
    CHECK(c.tlayers_down[2] == 4 && c.tlayers_up[1][2] == 4 && c.time_embed_dim == 1536, "depths / time dim");
}

const test_entry TESTS[] = {
    {"sd15_call00", test_sd15_call00},
    {"sd15_call05", test_sd15_call05},
    {"sdxl_call00", test_sdxl_call00},
    {"sdxl_call07", test_sdxl_call07},
    {"sd15_non_square", test_sd15_non_square},
    {"sdxl_non_square", test_sdxl_non_square},
    {"f16_weights", test_f16_weights},
    {"cancel_mid_forward", test_cancel_mid_forward},
    {"bad_inputs", test_bad_inputs},
    {"config_errors", test_config_errors},
    {"config_expansion", test_config_expansion},
    {"config_refiner", test_config_refiner},
    {0},
};
