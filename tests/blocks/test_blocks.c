/* tests/blocks/test_blocks.c - the SDK block library (sdrt/nn_blocks.h)
 * against diffusers / transformers, block by block.
 *
 * data/blocks.safetensors (tests/blocks/gen_goldens.py) holds each block's
 * random weights under "<case>.", its inputs under "in.<case>." and the
 * torch module's output "out.<case>"; the block configurations below are
 * those of the generator. Tolerance: relative L2 <= 1e-5 (float32; the
 * blocks are a few ops deep, the measured error is ~1e-7). Also checks the
 * binding errors name the tensor.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "sdrt/nn_blocks.h"

#define TOL 1e-5

typedef struct fix {
    fx_weights *w;
    sdrt_nn *nn;
    sdrt_blk_mem *mem;
    sdrt_blk_loader L;
} fix;

static int fix_open(fix *f) {
    memset(f, 0, sizeof *f);
    f->w = fx_weights_open(test_path("SDRT_SOURCE_DIR", "tests/blocks/data/blocks.safetensors"), 0);
    f->nn = sdrt_nn_new(fx_cpu_device(), "{\"threads\":2}", NULL, NULL);
    sdrt_blk_loader_init(&f->L, "test", fx_weights_get, f->w, &f->mem);
    return f->nn != NULL;
}

static void fix_close(fix *f) {
    sdrt_nn_free(f->nn);
    sdrt_blk_mem_free(f->mem);
    fx_weights_close(f->w);
}

/* The golden tensor `name` on the device (a copy). */
static sdrt_tensor *input(fix *f, const char *name) {
    const sdrt_tensor *t = fx_weights_get(f->w, name);
    if (!t) return NULL;
    return sdrt_nn_from_host(f->nn, SDRT_DTYPE_F32, t->ndim, t->shape, t->data);
}

/* Compares y (dropped) with "out.<c>". */
static void expect(fix *f, const char *c, sdrt_tensor *y) {
    char name[64];
    const char *msg = NULL;
    snprintf(name, sizeof name, "out.%s", c);
    const sdrt_tensor *want = fx_weights_get(f->w, name);
    REQUIRE(want, "%s missing from the goldens", name);
    REQUIRE(y, "%s: forward failed: %s", c, (sdrt_nn_status(f->nn, &msg), msg));
    int same = y->ndim == want->ndim;
    for (int d = 0; same && d < y->ndim; d++) same = y->shape[d] == want->shape[d];
    if (!same) sdrt_nn_drop(f->nn, y);
    REQUIRE(same, "%s: output shape differs from diffusers'", c);
    size_t n = (size_t)sdrt_nn_numel(y);
    float *got = malloc(n * sizeof *got);
    REQUIRE(got, "oom");
    CHECK(sdrt_nn_to_host_f32(f->nn, y, got) == SDRT_OK, "%s: read back", c);
    sdrt_nn_drop(f->nn, y);
    double err = test_rel_l2(got, want->data, n);
    printf("# %-12s rel L2 %.3g (max abs %.3g)\n", c, err, test_max_abs(got, want->data, n));
    CHECK(err <= TOL, "%s: relative L2 %g > %g", c, err, TOL);
    free(got);
}

static void test_resnet(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_resnet r;
    sdrt_blk_bind_resnet(&f.L, "resnet", &r, 8, 16, 12, 4, 1e-5f, 2.0f);
    REQUIRE(f.L.status == SDRT_OK, "bind: %s", f.L.message);
    CHECK(r.shortcut.w && r.temb.w, "conv_shortcut and time_emb_proj bound");
    /* The goldens store the 1-D parameters as f16: bound as f32 copies. */
    CHECK(r.norm1.g->dtype == SDRT_DTYPE_F32 && r.conv1.b->dtype == SDRT_DTYPE_F32, "parameters converted");
    sdrt_tensor *x = input(&f, "in.resnet.x"), *t = input(&f, "in.resnet.temb_act");
    expect(&f, "resnet", sdrt_blk_resnet_fwd(f.nn, &r, x, t));
    sdrt_nn_drop(f.nn, x);
    sdrt_nn_drop(f.nn, t);
    fix_close(&f);
}

static void test_tblock(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_tblock t;
    sdrt_blk_bind_tblock(&f.L, "tblock", &t, 16, 2, 12, 0);
    REQUIRE(f.L.status == SDRT_OK, "bind: %s", f.L.message);
    CHECK(t.attn1.heads == 2 && t.attn1.head_dim == 8 && !t.attn1.cross && t.attn2.cross, "attention shape");
    CHECK(!t.attn1.q.b, "attention_bias=False: no q bias");
    sdrt_tensor *h = input(&f, "in.tblock.h"), *c = input(&f, "in.tblock.context");
    expect(&f, "tblock", sdrt_blk_tblock_fwd(f.nn, &t, h, c));
    sdrt_nn_drop(f.nn, h);
    sdrt_nn_drop(f.nn, c);
    fix_close(&f);
}

static void test_transformer(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_transformer t;
    sdrt_blk_bind_transformer(&f.L, "transformer", &t, 16, 2, 2, 12, 0, 4, 0);
    REQUIRE(f.L.status == SDRT_OK, "bind: %s", f.L.message);
    CHECK(t.proj_in.w->ndim == 2, "1x1 conv proj_in viewed as a matrix");
    sdrt_tensor *x = input(&f, "in.transformer.x"), *c = input(&f, "in.transformer.context");
    expect(&f, "transformer", sdrt_blk_transformer_fwd(f.nn, &t, x, c));
    sdrt_nn_drop(f.nn, x);
    sdrt_nn_drop(f.nn, c);
    fix_close(&f);
}

static void test_vae_mid(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_mid m;
    sdrt_blk_bind_mid(&f.L, "mid", &m, 16, 0, 4, 1e-6f, 1.0f, 1);
    REQUIRE(f.L.status == SDRT_OK, "bind: %s", f.L.message);
    sdrt_tensor *x = input(&f, "in.mid.x");
    expect(&f, "mid", sdrt_blk_mid_fwd(f.nn, &m, x, NULL, NULL));
    sdrt_nn_drop(f.nn, x);
    fix_close(&f);
}

static void test_samplers(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_conv down = sdrt_blk_bind_conv(&f.L, "down.conv", 4, 4, 3, 2, 0);
    sdrt_blk_conv up = sdrt_blk_bind_conv(&f.L, "up.conv", 4, 4, 3, 1, 1);
    REQUIRE(f.L.status == SDRT_OK, "bind: %s", f.L.message);
    sdrt_tensor *x = input(&f, "in.down.x");
    expect(&f, "down", sdrt_blk_downsample_fwd(f.nn, &down, x));
    sdrt_nn_drop(f.nn, x);
    x = input(&f, "in.up.x");
    expect(&f, "up", sdrt_blk_upsample_fwd(f.nn, &up, x, 9, 11));
    sdrt_nn_drop(f.nn, x);
    fix_close(&f);
}

static void test_temb(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_temb t;
    sdrt_blk_bind_temb(&f.L, "temb", &t, 8, 16);
    REQUIRE(f.L.status == SDRT_OK, "bind: %s", f.L.message);
    sdrt_tensor *x = input(&f, "in.temb.x");
    expect(&f, "temb", sdrt_blk_temb_fwd(f.nn, &t, x));
    sdrt_nn_drop(f.nn, x);
    fix_close(&f);
}

static void test_clip_layer(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_clip_layer l;
    sdrt_blk_bind_clip_layer(&f.L, "clip", &l, 16, 4, 40, 1e-5f, SDRT_BLK_QUICK_GELU, 1);
    REQUIRE(f.L.status == SDRT_OK, "bind: %s", f.L.message);
    /* The layer consumes its input. */
    expect(&f, "clip", sdrt_blk_clip_layer_fwd(f.nn, &l, input(&f, "in.clip.x")));
    fix_close(&f);
}

/* A lookup that hides one name (a checkpoint missing a tensor). */
static const char *g_hidden;
static const sdrt_tensor *hiding_get(void *ctx, const char *name) {
    return g_hidden && strcmp(name, g_hidden) == 0 ? NULL : fx_weights_get(ctx, name);
}

static void test_bind_errors(void) {
    fix f;
    REQUIRE(fix_open(&f), "no CPU device");
    sdrt_blk_resnet r;
    /* Missing tensor: NOT_FOUND naming it, and later binds do nothing. */
    sdrt_blk_loader L;
    sdrt_blk_loader_init(&L, "unet", hiding_get, f.w, &f.mem);
    g_hidden = "resnet.conv2.bias";
    sdrt_blk_bind_resnet(&L, "resnet", &r, 8, 16, 12, 4, 1e-5f, 1.0f);
    g_hidden = NULL;
    CHECK(L.status == SDRT_NOT_FOUND && strstr(L.message, "unet weight resnet.conv2.bias") &&
              strstr(L.message, "missing"),
          "missing: %d %s", L.status, L.message);
    CHECK(r.shortcut.w == NULL, "no bind after the first failure");
    /* Shape from a wrong config: INVALID_ARGUMENT naming tensor and shapes. */
    sdrt_blk_loader_init(&L, "unet", fx_weights_get, f.w, &f.mem);
    sdrt_blk_bind_resnet(&L, "resnet", &r, 8, 16, 10, 4, 1e-5f, 1.0f);
    CHECK(L.status == SDRT_INVALID_ARGUMENT && strstr(L.message, "resnet.time_emb_proj.weight") &&
              strstr(L.message, "[16,12]") && strstr(L.message, "[16,10]"),
          "shape: %d %s", L.status, L.message);
    /* Channels that groups cannot split. */
    sdrt_blk_loader_init(&L, "vae", fx_weights_get, f.w, &f.mem);
    sdrt_blk_bind_norm(&L, "resnet.norm2", 16, 3, 1e-6f);
    CHECK(L.status == SDRT_INVALID_ARGUMENT && strstr(L.message, "norm_num_groups"), "groups: %s", L.message);
    /* A Linear where only a 1x1 conv is allowed, and the reverse. */
    sdrt_blk_loader_init(&L, "unet", fx_weights_get, f.w, &f.mem);
    sdrt_blk_bind_linear(&L, "tblock.attn1.to_q", 16, 16, SDRT_BLK_BIAS_NONE, SDRT_BLK_LINEAR_CONV1X1);
    CHECK(L.status == SDRT_INVALID_ARGUMENT && strstr(L.message, "[16,16,1,1]"), "conv1x1: %s", L.message);
    sdrt_blk_loader_init(&L, "unet", fx_weights_get, f.w, &f.mem);
    sdrt_blk_linear l = sdrt_blk_bind_linear(&L, "transformer.proj_in", 16, 16, SDRT_BLK_BIAS_REQUIRED,
                                             SDRT_BLK_LINEAR_2D | SDRT_BLK_LINEAR_CONV1X1);
    CHECK(L.status == SDRT_OK && l.w && l.w->ndim == 2 && l.w->shape[1] == 16, "either shape: %s", L.message);
    fix_close(&f);
}

const test_entry TESTS[] = {
    {"resnet", test_resnet},
    {"tblock", test_tblock},
    {"transformer", test_transformer},
    {"vae_mid", test_vae_mid},
    {"samplers", test_samplers},
    {"temb", test_temb},
    {"clip_layer", test_clip_layer},
    {"bind_errors", test_bind_errors},
    {0},
};
