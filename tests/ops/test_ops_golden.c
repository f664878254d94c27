/* test_ops_golden.c - every op against PyTorch outputs (data/, from
 * gen_goldens.py), run through the nn helper API so nn.c is covered too.
 * Tolerance: relative L2 1e-5 for f32 ops, stated per case where larger. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops_common.h"
#include "sdrt/half.h"
#include "sdrt/nn.h"

#define TOL_F32 1e-5

typedef struct gold {
    float *d;
    int64_t shape[SDRT_MAX_DIMS];
    int ndim;
} gold;

static sdrt_nn *g_nn;

static sdrt_nn *nn(void) {
    if (!g_nn) g_nn = sdrt_nn_new(ops_device(), "{\"threads\":2}", NULL, NULL);
    return g_nn;
}

/* Uploads input `name` of case `cas` (f32, or converted to dt). */
static sdrt_tensor *in_as(const char *cas, const char *name, sdrt_dtype dt) {
    gold g = {0};
    g.d = ops_golden(cas, name, g.shape, &g.ndim);
    if (!g.d) return NULL;
    size_t n = ops_numel(g.ndim, g.shape);
    sdrt_tensor *t;
    if (dt == SDRT_DTYPE_F32) {
        t = sdrt_nn_from_host(nn(), dt, g.ndim, g.shape, g.d);
    } else {
        uint16_t *h = malloc(n * sizeof *h);
        for (size_t i = 0; i < n; i++) h[i] = dt == SDRT_DTYPE_F16 ? sdrt_f32_to_f16(g.d[i]) : sdrt_f32_to_bf16(g.d[i]);
        t = sdrt_nn_from_host(nn(), dt, g.ndim, g.shape, h);
        free(h);
    }
    free(g.d);
    return t;
}

static sdrt_tensor *in(const char *cas, const char *name) { return in_as(cas, name, SDRT_DTYPE_F32); }

/* Compares t with data/<cas>__out.npy and releases t. */
static void expect(const char *cas, sdrt_tensor *t, double tol) {
    const char *msg = NULL;
    sdrt_status st = sdrt_nn_status(nn(), &msg);
    CHECK(st == SDRT_OK && t, "%s: nn status %d (%s)", cas, (int)st, msg ? msg : "");
    if (!t) {
        sdrt_nn_clear_status(nn());
        return;
    }
    gold g = {0};
    g.d = ops_golden(cas, "out", g.shape, &g.ndim);
    if (!g.d) return;
    size_t n = ops_numel(g.ndim, g.shape);
    CHECK(t->ndim == g.ndim && ops_numel(t->ndim, t->shape) == n, "%s: shape mismatch", cas);
    if (ops_numel(t->ndim, t->shape) == n) {
        float *got = malloc(n * sizeof *got);
        CHECK(sdrt_nn_to_host_f32(nn(), t, got) == SDRT_OK, "%s: to_host", cas);
        ops_close(cas, got, g.d, n, tol);
        free(got);
    }
    free(g.d);
    sdrt_nn_drop(nn(), t);
}

void test_golden_matmul(void) {
    expect("matmul_linear", sdrt_nn_linear(nn(), in("matmul_linear", "a"), in("matmul_linear", "w"),
                                           in("matmul_linear", "bias")), TOL_F32);
    expect("matmul_batched", sdrt_nn_matmul(nn(), in("matmul_batched", "a"), in("matmul_batched", "b"), 0, 0.5f),
           TOL_F32);
    expect("matmul_bcast", sdrt_nn_matmul(nn(), in("matmul_bcast", "a"), in("matmul_bcast", "b"), 0, 1.0f), TOL_F32);
    /* Weights stored rounded to f16/bf16, so the product is compared at
     * f32 precision against torch with the same rounded weights. */
    expect("matmul_f16", sdrt_nn_linear(nn(), in("matmul_f16", "a"), in_as("matmul_f16", "w", SDRT_DTYPE_F16),
                                        in("matmul_f16", "bias")), TOL_F32);
    expect("matmul_bf16", sdrt_nn_linear(nn(), in("matmul_bf16", "a"), in_as("matmul_bf16", "w", SDRT_DTYPE_BF16),
                                         in("matmul_bf16", "bias")), TOL_F32);
}

void test_golden_conv2d(void) {
    expect("conv_s2p1", sdrt_nn_conv2d(nn(), in("conv_s2p1", "x"), in("conv_s2p1", "w"), in("conv_s2p1", "bias"), 2, 1),
           TOL_F32);
    expect("conv_3x3", sdrt_nn_conv2d(nn(), in("conv_3x3", "x"), in("conv_3x3", "w"), in("conv_3x3", "bias"), 1, 1),
           TOL_F32);
    expect("conv_1x1", sdrt_nn_conv2d(nn(), in("conv_1x1", "x"), in("conv_1x1", "w"), in("conv_1x1", "bias"), 1, 0),
           TOL_F32);
    expect("conv_f16", sdrt_nn_conv2d(nn(), in("conv_f16", "x"), in_as("conv_f16", "w", SDRT_DTYPE_F16),
                                      in("conv_f16", "bias"), 1, 1), TOL_F32);
    /* Groups are not in the nn API: the op directly. */
    sdrt_tensor *x = in("conv_groups", "x"), *w = in("conv_groups", "w"), *b = in("conv_groups", "bias");
    int64_t shape[4] = {1, 8, 7, 7};
    sdrt_tensor *y = sdrt_nn_new_tensor(nn(), SDRT_DTYPE_F32, 4, shape);
    int32_t ip[8] = {1, 1, 1, 1, 1, 1, 4};
    CHECK(x && w && b && y && ops_run(ops_stream(2), SDRT_OP_CONV2D, x, w, b, y, ip, NULL) == SDRT_OK, "conv groups");
    expect("conv_groups", y, TOL_F32);
}

void test_golden_norms(void) {
    const char *c = "groupnorm_silu";
    expect(c, sdrt_nn_group_norm(nn(), in(c, "x"), in(c, "gamma"), in(c, "beta"), 32, 1e-5f, 1), TOL_F32);
    c = "groupnorm";
    expect(c, sdrt_nn_group_norm(nn(), in(c, "x"), in(c, "gamma"), in(c, "beta"), 32, 1e-6f, 0), TOL_F32);
    c = "layernorm";
    expect(c, sdrt_nn_layer_norm(nn(), in(c, "x"), in(c, "gamma"), in(c, "beta"), 1e-5f), TOL_F32);
    expect("softmax", sdrt_nn_softmax(nn(), in("softmax", "x"), 0.7f), TOL_F32);
}

void test_golden_attention(void) {
    const char *cases[] = {"attn_self", "attn_cross", "attn_causal"};
    for (int i = 0; i < 3; i++)
        expect(cases[i], sdrt_nn_attention(nn(), in(cases[i], "q"), in(cases[i], "k"), in(cases[i], "v"), 0.0f, i == 2),
               TOL_F32);
}

void test_golden_elementwise(void) {
    expect("gelu", sdrt_nn_gelu(nn(), in("gelu", "x")), TOL_F32);
    expect("gelu_tanh", sdrt_nn_gelu_tanh(nn(), in("gelu_tanh", "x")), TOL_F32);
    expect("quick_gelu", sdrt_nn_quick_gelu(nn(), in("quick_gelu", "x")), TOL_F32);
    expect("silu", sdrt_nn_silu(nn(), in("silu", "x")), TOL_F32);
    expect("scale", sdrt_nn_scale(nn(), in("scale", "x"), 0.18215f, 0.5f), TOL_F32);
    expect("geglu", sdrt_nn_geglu(nn(), in("geglu", "x")), TOL_F32);
    expect("add_bcast", sdrt_nn_add(nn(), in("add_bcast", "a"), in("add_bcast", "b")), TOL_F32);
    expect("mul_bcast", sdrt_nn_mul(nn(), in("mul_bcast", "a"), in("mul_bcast", "b")), TOL_F32);
    /* alpha is not in the nn API: the op directly. */
    sdrt_tensor *a = in("add_alpha", "a"), *b = in("add_alpha", "b");
    sdrt_tensor *y = a ? sdrt_nn_new_tensor(nn(), SDRT_DTYPE_F32, a->ndim, a->shape) : NULL;
    float fp[8] = {0.5f};
    CHECK(y && b && ops_run(ops_stream(2), SDRT_OP_ADD, a, b, NULL, y, NULL, fp) == SDRT_OK, "add alpha");
    expect("add_alpha", y, TOL_F32);
}

void test_golden_layout(void) {
    expect("concat_dim1", sdrt_nn_concat(nn(), in("concat_dim1", "a"), in("concat_dim1", "b"), 1), 0.0);
    expect("concat_dim3", sdrt_nn_concat(nn(), in("concat_dim3", "a"), in("concat_dim3", "b"), -1), 0.0);
    expect("upsample", sdrt_nn_upsample2x(nn(), in("upsample", "x")), 0.0);
    sdrt_tensor *x = in("copy_permute", "x");
    if (x) {
        int perm[4] = {0, 2, 3, 1};
        sdrt_tensor v = sdrt_nn_view_permute(x, perm);
        expect("copy_permute", sdrt_nn_copy(nn(), &v, SDRT_DTYPE_F32), 0.0);
    }
}

void test_golden_timestep(void) {
    char cas[64];
    for (int dim = 32; dim <= 33; dim++)
        for (int flip = 0; flip <= 1; flip++)
            for (int shift = 0; shift <= 1; shift++) {
                snprintf(cas, sizeof cas, "timestep_d%d_f%d_s%d", dim, flip, shift);
                expect(cas, sdrt_nn_timestep_embedding(nn(), in(cas, "t"), dim, flip, (float)shift), TOL_F32);
            }
    /* t near 1000: sin/cos of arguments ~1e3 turn one ulp of a frequency
     * (expf vs PyTorch's exp) into ~6e-5 absolute on single elements; the
     * relative L2 stays ~4e-6, inside the f32 tolerance. */
    expect("timestep_large", sdrt_nn_timestep_embedding(nn(), in("timestep_large", "t"), 320, 1, 0.0f), TOL_F32);
}
