/* test_ops_random.c - fresh random inputs each run (seed printed by the
 * harness) against naive double-precision references written here, on
 * strided views, every GEMM kernel this CPU runs, and several thread counts
 * (whose results must be bit-identical). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "harness.h"
#include "ops_common.h"
#include "sdrt/half.h"

#define TOL 1e-5

/* ---- GEMM kernels directly ------------------------------------------------ */

static float rounded(float v, sdrt_dtype dt) {
    if (dt == SDRT_DTYPE_F16) return sdrt_f16_to_f32(sdrt_f32_to_f16(v));
    if (dt == SDRT_DTYPE_BF16) return sdrt_bf16_to_f32(sdrt_f32_to_bf16(v));
    return v;
}

/* B (k x n) stored as dtype dt, either [k][n] or [n][k] (trans). */
static void *make_b(const float *bf, int64_t k, int64_t n, sdrt_dtype dt, int trans) {
    size_t es = dt == SDRT_DTYPE_F32 ? 4 : 2;
    char *p = malloc((size_t)(k * n) * es);
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < n; j++) {
            int64_t idx = trans ? j * k + i : i * n + j;
            float v = bf[i * n + j];
            if (dt == SDRT_DTYPE_F32) ((float *)(void *)p)[idx] = v;
            else ((uint16_t *)(void *)p)[idx] = dt == SDRT_DTYPE_F16 ? sdrt_f32_to_f16(v) : sdrt_f32_to_bf16(v);
        }
    return p;
}

static void check_gemm(const cpu_kernel *kern, int threads, int64_t m, int64_t n, int64_t k, sdrt_dtype dt, int trans) {
    float *a = malloc(sizeof(float) * (size_t)(m * k)), *bf = malloc(sizeof(float) * (size_t)(k * n));
    float *c = malloc(sizeof(float) * (size_t)(m * n)), *want = malloc(sizeof(float) * (size_t)(m * n));
    float *bn = malloc(sizeof(float) * (size_t)n), *bm = malloc(sizeof(float) * (size_t)m);
    ops_rand(a, (size_t)(m * k), 1.0f);
    ops_rand(bf, (size_t)(k * n), 1.0f);
    ops_rand(bn, (size_t)n, 1.0f);
    ops_rand(bm, (size_t)m, 1.0f);
    void *b = make_b(bf, k, n, dt, trans);
    int a_trans = ops_rand_int(0, 1); /* A stored column-major half the time */
    float *as = malloc(sizeof(float) * (size_t)(m * k));
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++) as[a_trans ? p * m + i : i * k + p] = a[i * k + p];
    float alpha = 0.75f;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++) s += (double)a[i * k + p] * rounded(bf[p * n + j], dt);
            want[i * n + j] = (float)(alpha * s + bn[j] + bm[i]);
        }
    cpu_ctx ctx;
    REQUIRE(cpu_ctx_init(&ctx, threads) == 0, "ctx");
    cpu_gemm_args g = {.m = m, .n = n, .k = k, .c = c, .ldc = n, .alpha = alpha, .bias_n = bn, .bias_m = bm,
                       .kern = kern,
                       .a = {.data = as, .dtype = SDRT_DTYPE_F32, .so = a_trans ? 1 : k, .sk = a_trans ? m : 1},
                       .b = {.data = b, .dtype = dt, .so = trans ? k : 1, .sk = trans ? 1 : n}};
    CHECK(cpu_gemm(&ctx, &g) == SDRT_OK, "gemm status");
    char what[128];
    snprintf(what, sizeof what, "gemm %s t%d %lldx%lldx%lld dt%d trans%d", kern->name, threads, (long long)m,
             (long long)n, (long long)k, (int)dt, trans);
    if (m * n >= 64) {
        ops_close(what, c, want, (size_t)(m * n), TOL);
    } else {
        /* Over a handful of outputs the L2 is one sum's relative float
         * rounding, unbounded when the sum cancels: bound the absolute
         * error by the float accumulation of k products of |x| <= 1
         * instead. A packing or tiling bug still shows as an O(1) error. */
        double err = test_max_abs(c, want, (size_t)(m * n));
        CHECK(err <= 1e-6 * (double)(k + 1), "%s: max abs %.3g", what, err);
    }
    cpu_ctx_release(&ctx);
    free(a), free(bf), free(c), free(want), free(bn), free(bm), free(b), free(as);
}

void test_gemm_kernels(void) {
    const cpu_features *f = cpu_features_get();
    const cpu_kernel *kerns[5];
    int nk = 0;
    if (f->avx512f) kerns[nk++] = &cpu_kernel_avx512;
    if (f->avx512f) kerns[nk++] = &cpu_kernel_avx512_n16;
    if (f->avx512f) kerns[nk++] = &cpu_kernel_avx512_m8;
    if (f->avx2 && f->fma) kerns[nk++] = &cpu_kernel_avx2;
    kerns[nk++] = &cpu_kernel_scalar;
    static const int64_t shapes[][3] = {{1, 1, 1}, {13, 33, 7}, {14, 32, 384}, {29, 65, 800}, {100, 70, 300}, {3, 200, 50}};
    for (int ki = 0; ki < nk; ki++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            sdrt_dtype dt = (sdrt_dtype)(si % 3); /* F32, F16, BF16 in turn */
            check_gemm(kerns[ki], 1 + (int)(si % 3), shapes[si][0], shapes[si][1], shapes[si][2], dt, (int)(si & 1));
        }
    /* The choice by shape: 32 rows pad to 42 on the 14-row kernel and to
     * 32 on the 8-row one; 320 rows pad by 2 on the 14-row kernel. */
    if (cpu_kernel_best() == &cpu_kernel_avx512) {
        CHECK(cpu_kernel_for(32, 4096) == &cpu_kernel_avx512_m8, "m=32 picks %s", cpu_kernel_for(32, 4096)->name);
        CHECK(cpu_kernel_for(3, 4096) == &cpu_kernel_avx512_m8, "m=3 picks %s", cpu_kernel_for(3, 4096)->name);
        CHECK(cpu_kernel_for(320, 4096) == &cpu_kernel_avx512, "m=320 picks %s", cpu_kernel_for(320, 4096)->name);
        CHECK(cpu_kernel_for(4096, 40) == &cpu_kernel_avx512_n16, "n=40 picks %s", cpu_kernel_for(4096, 40)->name);
    }
    /* Random shapes on the best kernel. */
    for (int r = 0; r < 4; r++)
        check_gemm(cpu_kernel_best(), ops_rand_int(1, 3), ops_rand_int(1, 150), ops_rand_int(1, 150),
                   ops_rand_int(1, 900), (sdrt_dtype)ops_rand_int(0, 2), ops_rand_int(0, 1));
}

/* Every combination of odd sizes (edge tiles in every direction, one-row
 * and one-column products, depths below one SIMD block) on every kernel,
 * plus products whose K spans several slices and several packed-B groups. */
void test_gemm_odd_shapes(void) {
    const cpu_features *f = cpu_features_get();
    const cpu_kernel *kerns[5];
    int nk = 0;
    if (f->avx512f) kerns[nk++] = &cpu_kernel_avx512;
    if (f->avx512f) kerns[nk++] = &cpu_kernel_avx512_n16;
    if (f->avx512f) kerns[nk++] = &cpu_kernel_avx512_m8;
    if (f->avx2 && f->fma) kerns[nk++] = &cpu_kernel_avx2;
    kerns[nk++] = &cpu_kernel_scalar;
    static const int64_t sizes[] = {1, 3, 17, 77, 129};
    int case_no = 0;
    for (int ki = 0; ki < nk; ki++)
        for (int mi = 0; mi < 5; mi++)
            for (int ni = 0; ni < 5; ni++)
                for (int kk = 0; kk < 5; kk++, case_no++)
                    check_gemm(kerns[ki], 1 + case_no % 2, sizes[mi], sizes[ni], sizes[kk],
                               (sdrt_dtype)(case_no % 3), (case_no / 3) % 2);
    check_gemm(cpu_kernel_best(), 2, 3, 3000, 800, SDRT_DTYPE_F32, 1);
    check_gemm(cpu_kernel_best(), 2, 77, 129, 1537, SDRT_DTYPE_F16, 1);
}

/* ---- MATMUL op on strided, batched, broadcast operands ---------------------- */

void test_matmul_strided(void) {
    int64_t B = 3, M = ops_rand_int(1, 40), K = ops_rand_int(1, 60), N = ops_rand_int(1, 50);
    int trans = ops_rand_int(0, 1);
    size_t na = (size_t)(B * M * K), nb = (size_t)(K * N), nc = (size_t)(B * M * N);
    float *a = malloc(na * 4), *b = malloc(nb * 4), *c = malloc(nc * 4), *want = malloc(nc * 4);
    ops_rand(a, na, 1.0f);
    ops_rand(b, nb, 1.0f);
    /* a: logical [B,M,K] stored [M,B,K]; c: logical [B,M,N] stored [M,N,B]. */
    int64_t as[3] = {B, M, K}, cs[3] = {B, M, N};
    int ap[3] = {1, 0, 2}, cp[3] = {1, 2, 0};
    sdrt_tensor ta = ops_tensor_perm(a, 3, as, ap), tc = ops_tensor_perm(c, 3, cs, cp);
    int64_t bs[2] = {trans ? N : K, trans ? K : N};
    sdrt_tensor tb = ops_tensor(b, SDRT_DTYPE_F32, 2, bs);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t p = 0; p < K; p++)
                    s += (double)a[bi * ta.strides[0] + i * ta.strides[1] + p * ta.strides[2]] *
                         b[trans ? j * K + p : p * N + j];
                want[(bi * M + i) * N + j] = (float)s;
            }
    int32_t ip[8] = {trans};
    REQUIRE(ops_run(ops_stream(2), SDRT_OP_MATMUL, &ta, &tb, NULL, &tc, ip, NULL) == SDRT_OK, "matmul status");
    float *got = malloc(nc * 4);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                got[(bi * M + i) * N + j] = c[bi * tc.strides[0] + i * tc.strides[1] + j * tc.strides[2]];
    ops_close("matmul strided", got, want, nc, TOL);
    free(a), free(b), free(c), free(want), free(got);
}

/* ---- CONV2D ------------------------------------------------------------------- */

typedef struct conv_shape {
    int64_t N, G, Cg, Og, H, W, kh, kw, s, p, d;
} conv_shape;

static void check_conv_shape(int nhwc, const conv_shape *cs) {
    int64_t N = cs->N, G = cs->G, Cg = cs->Cg, Og = cs->Og, H = cs->H, W = cs->W;
    int64_t C = G * Cg, O = G * Og, kh = cs->kh, kw = cs->kw, s = cs->s, p = cs->p, d = cs->d;
    int64_t Ho = (H + 2 * p - d * (kh - 1) - 1) / s + 1, Wo = (W + 2 * p - d * (kw - 1) - 1) / s + 1;
    if (Ho <= 0 || Wo <= 0) return;
    size_t nx = (size_t)(N * C * H * W), nw = (size_t)(O * Cg * kh * kw), ny = (size_t)(N * O * Ho * Wo);
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *bias = malloc((size_t)O * 4), *y = malloc(ny * 4),
          *want = malloc(ny * 4);
    ops_rand(x, nx, 1.0f), ops_rand(w, nw, 1.0f), ops_rand(bias, (size_t)O, 1.0f);
    int64_t xs[4] = {N, C, H, W}, ws[4] = {O, Cg, kh, kw}, ys[4] = {N, O, Ho, Wo}, bs[1] = {O};
    int perm_nhwc[4] = {0, 2, 3, 1}, perm_id[4] = {0, 1, 2, 3};
    sdrt_tensor tx = ops_tensor_perm(x, 4, xs, nhwc ? perm_nhwc : perm_id);
    sdrt_tensor tw = ops_tensor(w, SDRT_DTYPE_F32, 4, ws), tb = ops_tensor(bias, SDRT_DTYPE_F32, 1, bs);
    sdrt_tensor ty = ops_tensor(y, SDRT_DTYPE_F32, 4, ys);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = bias[o];
                    int64_t g = o / Og;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * s - p + ky * d, ix = ox * s - p + kx * d;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                int64_t ci = g * Cg + c;
                                acc += (double)x[n * tx.strides[0] + ci * tx.strides[1] + iy * tx.strides[2] +
                                                 ix * tx.strides[3]] *
                                       w[((o * Cg + c) * kh + ky) * kw + kx];
                            }
                    want[((n * O + o) * Ho + oy) * Wo + ox] = (float)acc;
                }
    int32_t ip[8] = {(int32_t)s, (int32_t)s, (int32_t)p, (int32_t)p, (int32_t)d, (int32_t)d, (int32_t)G};
    CHECK(ops_run(ops_stream(2), SDRT_OP_CONV2D, &tx, &tw, &tb, &ty, ip, NULL) == SDRT_OK, "conv status");
    char what[256];
    snprintf(what, sizeof what, "conv N%lld C%lld O%lld %lldx%lld k%lldx%lld s%lld p%lld d%lld g%lld nhwc%d",
             (long long)N, (long long)C, (long long)O, (long long)H, (long long)W, (long long)kh, (long long)kw,
             (long long)s, (long long)p, (long long)d, (long long)G, nhwc);
    ops_close(what, y, want, ny, TOL);
    free(x), free(w), free(bias), free(y), free(want);
}

static void check_conv(int nhwc) {
    /* One draw per statement: the order (and so a seed's case) is fixed. */
    conv_shape cs;
    cs.N = ops_rand_int(1, 2);
    cs.G = ops_rand_int(1, 2);
    cs.Cg = ops_rand_int(1, 5);
    cs.Og = ops_rand_int(1, 6);
    cs.H = ops_rand_int(1, 12);
    cs.W = ops_rand_int(1, 12);
    cs.kh = ops_rand_int(1, 3);
    cs.kw = ops_rand_int(1, 3);
    cs.s = ops_rand_int(1, 2);
    cs.p = ops_rand_int(0, 2);
    cs.d = ops_rand_int(1, 2);
    check_conv_shape(nhwc, &cs);
}

/* More images than one batched GEMM takes (weights shared across a batch
 * of products), K over several slices, odd pixel counts. */
void test_conv2d_batched(void) {
    conv_shape a = {10, 1, 50, 33, 9, 11, 3, 3, 1, 1, 1}, b = {3, 2, 7, 17, 5, 13, 3, 3, 2, 1, 1};
    check_conv_shape(0, &a);
    check_conv_shape(1, &b);
}

void test_conv2d_random(void) {
    for (int r = 0; r < 12; r++) check_conv(r & 1);
}

/* ---- ATTENTION ------------------------------------------------------------------ */

/* Naive reference for rows [r0, r1) of every head; q/k/v logical
 * [B,H,L,D] views. */
static void attn_ref(const sdrt_tensor *q, const sdrt_tensor *k, const sdrt_tensor *v, int causal, int64_t r0,
                     int64_t r1, float *out) {
    int64_t B = q->shape[0], H = q->shape[1], D = q->shape[3], Lk = k->shape[2], Dv = v->shape[3];
    double scale = 1.0 / sqrt((double)D);
    double *s = malloc(sizeof(double) * (size_t)Lk);
    const float *Q = q->data, *K = k->data, *V = v->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = r0; i < r1; i++) {
                double mx = -INFINITY, sum = 0;
                int64_t valid = causal ? (i + 1 < Lk ? i + 1 : Lk) : Lk;
                for (int64_t j = 0; j < valid; j++) {
                    double acc = 0;
                    for (int64_t e = 0; e < D; e++)
                        acc += (double)Q[b * q->strides[0] + h * q->strides[1] + i * q->strides[2] + e * q->strides[3]] *
                               K[b * k->strides[0] + h * k->strides[1] + j * k->strides[2] + e * k->strides[3]];
                    s[j] = acc * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t j = 0; j < valid; j++) sum += s[j] = exp(s[j] - mx);
                for (int64_t e = 0; e < Dv; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < valid; j++)
                        acc += s[j] * V[b * v->strides[0] + h * v->strides[1] + j * v->strides[2] + e * v->strides[3]];
                    out[((b * H + h) * (r1 - r0) + (i - r0)) * Dv + e] = (float)(acc / sum);
                }
            }
    free(s);
}

static void check_attention(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, int causal,
                            int64_t check_rows) {
    /* Stored [B,L,H,D] (the layout after a Linear), viewed as [B,H,L,D]. */
    int perm[4] = {0, 2, 1, 3};
    int64_t qs[4] = {B, H, Lq, D}, ks[4] = {B, H, Lk, D}, vs[4] = {B, H, Lk, Dv}, os[4] = {B, H, Lq, Dv};
    size_t nq = ops_numel(4, qs), nk = ops_numel(4, ks), nv = ops_numel(4, vs), no = ops_numel(4, os);
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4), *o = malloc(no * 4);
    ops_rand(q, nq, 2.0f), ops_rand(k, nk, 2.0f), ops_rand(v, nv, 1.0f);
    sdrt_tensor tq = ops_tensor_perm(q, 4, qs, perm), tk = ops_tensor_perm(k, 4, ks, perm);
    sdrt_tensor tv = ops_tensor_perm(v, 4, vs, perm), to = ops_tensor_perm(o, 4, os, perm);
    int32_t ip[8] = {causal};
    REQUIRE(ops_run(ops_stream(2), SDRT_OP_ATTENTION, &tq, &tk, &tv, &to, ip, NULL) == SDRT_OK, "attention status");
    int64_t r0 = ops_rand_int(0, (int)(Lq - (check_rows < Lq ? check_rows : Lq)));
    int64_t r1 = r0 + (check_rows < Lq ? check_rows : Lq);
    size_t nref = (size_t)(B * H * (r1 - r0) * Dv);
    float *want = malloc(nref * 4), *got = malloc(nref * 4);
    attn_ref(&tq, &tk, &tv, causal, r0, r1, want);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = r0; i < r1; i++)
                for (int64_t e = 0; e < Dv; e++)
                    got[((b * H + h) * (r1 - r0) + (i - r0)) * Dv + e] =
                        o[b * to.strides[0] + h * to.strides[1] + i * to.strides[2] + e * to.strides[3]];
    char what[128];
    snprintf(what, sizeof what, "attention B%lld H%lld Lq%lld Lk%lld D%lld Dv%lld causal%d", (long long)B, (long long)H,
             (long long)Lq, (long long)Lk, (long long)D, (long long)Dv, causal);
    ops_close(what, got, want, nref, TOL);
    free(q), free(k), free(v), free(o), free(want), free(got);
}

void test_attention_random(void) {
    for (int r = 0; r < 6; r++) {
        int64_t lq = ops_rand_int(1, 70);
        check_attention(ops_rand_int(1, 2), ops_rand_int(1, 3), lq, r & 1 ? lq : ops_rand_int(1, 100),
                        ops_rand_int(1, 72), ops_rand_int(1, 72), (r & 1) && ops_rand_int(0, 1), 1 << 20);
    }
    check_attention(1, 2, 77, 77, 64, 64, 1, 77);       /* CLIP causal self-attention */
    check_attention(2, 2, 300, 77, 40, 40, 0, 40);      /* cross-attention */
    /* Both sides of the CPU family's switch from the transposed (flash)
     * form to row strips at head dim 256, keys spanning several blocks. */
    check_attention(1, 2, 45, 300, 256, 256, 0, 45);
    check_attention(1, 1, 45, 300, 257, 200, 0, 45);
    check_attention(1, 1, 60, 60, 300, 300, 1, 60);     /* causal, row strips */
    check_attention(1, 1, 200, 330, 512, 512, 0, 30);   /* the VAE's single 512-wide head */
}

void test_attention_4096(void) {
    check_attention(1, 1, 4096, 4096, 40, 40, 0, 24);
    check_attention(1, 1, 4096, 4096, 64, 64, 0, 24);
}

/* ---- thread counts give identical bits --------------------------------------------- */

void test_threads_identical(void) {
    int64_t xs[4] = {1, 24, 19, 23}, ws[4] = {40, 24, 3, 3}, ys[4] = {1, 40, 19, 23};
    size_t nx = ops_numel(4, xs), nw = ops_numel(4, ws), ny = ops_numel(4, ys);
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *y1 = malloc(ny * 4), *y3 = malloc(ny * 4);
    ops_rand(x, nx, 1.0f), ops_rand(w, nw, 1.0f);
    sdrt_tensor tx = ops_tensor(x, SDRT_DTYPE_F32, 4, xs), tw = ops_tensor(w, SDRT_DTYPE_F32, 4, ws);
    sdrt_tensor t1 = ops_tensor(y1, SDRT_DTYPE_F32, 4, ys), t3 = ops_tensor(y3, SDRT_DTYPE_F32, 4, ys);
    int32_t ip[8] = {1, 1, 1, 1};
    CHECK(ops_run(ops_stream(1), SDRT_OP_CONV2D, &tx, &tw, NULL, &t1, ip, NULL) == SDRT_OK, "conv t1");
    CHECK(ops_run(ops_stream(3), SDRT_OP_CONV2D, &tx, &tw, NULL, &t3, ip, NULL) == SDRT_OK, "conv t3");
    CHECK(memcmp(y1, y3, ny * 4) == 0, "conv: 1 and 3 threads differ");
    int64_t qs[4] = {1, 3, 61, 24};
    size_t nq = ops_numel(4, qs);
    float *q = malloc(nq * 4), *o1 = malloc(nq * 4), *o3 = malloc(nq * 4);
    ops_rand(q, nq, 1.0f);
    sdrt_tensor tq = ops_tensor(q, SDRT_DTYPE_F32, 4, qs), to1 = ops_tensor(o1, SDRT_DTYPE_F32, 4, qs),
                to3 = ops_tensor(o3, SDRT_DTYPE_F32, 4, qs);
    CHECK(ops_run(ops_stream(1), SDRT_OP_ATTENTION, &tq, &tq, &tq, &to1, NULL, NULL) == SDRT_OK, "attn t1");
    CHECK(ops_run(ops_stream(3), SDRT_OP_ATTENTION, &tq, &tq, &tq, &to3, NULL, NULL) == SDRT_OK, "attn t3");
    CHECK(memcmp(o1, o3, nq * 4) == 0, "attention: 1 and 3 threads differ");
    free(x), free(w), free(y1), free(y3), free(q), free(o1), free(o3);
}

/* ---- norms, softmax, element-wise on strided views ------------------------------------- */

void test_rows_strided(void) {
    /* logical [2,5,33] stored [33,2,5]: the reduced dim is the outermost. */
    int64_t shp[3] = {2, 5, 33};
    int perm[3] = {2, 0, 1};
    size_t n = ops_numel(3, shp);
    float *x = malloc(n * 4), *y = malloc(n * 4), *want = malloc(n * 4), *got = malloc(n * 4);
    float gamma[33], beta[33];
    ops_rand(x, n, 3.0f), ops_rand(gamma, 33, 1.0f), ops_rand(beta, 33, 1.0f);
    sdrt_tensor tx = ops_tensor_perm(x, 3, shp, perm), ty = ops_tensor_perm(y, 3, shp, perm);
    int64_t gs[1] = {33};
    sdrt_tensor tg = ops_tensor(gamma, SDRT_DTYPE_F32, 1, gs), tb = ops_tensor(beta, SDRT_DTYPE_F32, 1, gs);
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t r = 0; r < 10; r++) {
            const float *xr = x + (r / 5) * tx.strides[0] + (r % 5) * tx.strides[1];
            double mean = 0, var = 0, mx = -INFINITY, sum = 0;
            for (int j = 0; j < 33; j++) mean += xr[j * tx.strides[2]] / 33.0;
            for (int j = 0; j < 33; j++) var += pow(xr[j * tx.strides[2]] - mean, 2) / 33.0;
            for (int j = 0; j < 33; j++) mx = fmax(mx, 0.5 * xr[j * tx.strides[2]]);
            for (int j = 0; j < 33; j++) sum += exp(0.5 * xr[j * tx.strides[2]] - mx);
            for (int j = 0; j < 33; j++) {
                double v = xr[j * tx.strides[2]];
                want[r * 33 + j] = pass == 0 ? (float)((v - mean) / sqrt(var + 1e-5) * gamma[j] + beta[j])
                                             : (float)(exp(0.5 * v - mx) / sum);
            }
        }
        float fp[8] = {pass == 0 ? 1e-5f : 0.5f};
        sdrt_op_kind kind = pass == 0 ? SDRT_OP_LAYER_NORM : SDRT_OP_SOFTMAX;
        CHECK(ops_run(ops_stream(2), kind, &tx, pass == 0 ? &tg : NULL, pass == 0 ? &tb : NULL, &ty, NULL, fp) ==
                  SDRT_OK, "status");
        for (int64_t r = 0; r < 10; r++)
            for (int j = 0; j < 33; j++)
                got[r * 33 + j] = y[(r / 5) * ty.strides[0] + (r % 5) * ty.strides[1] + j * ty.strides[2]];
        ops_close(pass == 0 ? "layer_norm strided" : "softmax strided", got, want, n, TOL);
    }
    free(x), free(y), free(want), free(got);
}

void test_groupnorm_nhwc(void) {
    int64_t shp[4] = {2, 8, 5, 6};
    int perm[4] = {0, 2, 3, 1};
    size_t n = ops_numel(4, shp);
    float *x = malloc(n * 4), *y = malloc(n * 4), *want = malloc(n * 4);
    ops_rand(x, n, 2.0f);
    sdrt_tensor tx = ops_tensor_perm(x, 4, shp, perm), ty = ops_tensor(y, SDRT_DTYPE_F32, 4, shp);
    for (int64_t b = 0; b < 2; b++)
        for (int64_t g = 0; g < 4; g++) {
            double mean = 0, var = 0;
            for (int pass = 0; pass < 3; pass++)
                for (int64_t c = g * 2; c < g * 2 + 2; c++)
                    for (int64_t i = 0; i < 30; i++) {
                        double v = x[b * tx.strides[0] + c * tx.strides[1] + (i / 6) * tx.strides[2] + (i % 6) * tx.strides[3]];
                        if (pass == 0) mean += v / 60.0;
                        else if (pass == 1) var += (v - mean) * (v - mean) / 60.0;
                        else {
                            double z = (v - mean) / sqrt(var + 1e-5);
                            want[(b * 8 + c) * 30 + i] = (float)(z / (1.0 + exp(-z)));
                        }
                    }
        }
    int32_t ip[8] = {4, 1};
    CHECK(ops_run(ops_stream(2), SDRT_OP_GROUP_NORM, &tx, NULL, NULL, &ty, ip, NULL) == SDRT_OK, "gn status");
    ops_close("group_norm nhwc + silu", y, want, n, TOL);
    free(x), free(y), free(want);
}

void test_binary_and_copy(void) {
    /* a [3,4,5] permuted storage, b [4,1] broadcast, dst contiguous. */
    int64_t as[3] = {3, 4, 5}, bs[2] = {4, 1};
    int perm[3] = {2, 1, 0};
    float a[60], b[4], y[60], want[60];
    ops_rand(a, 60, 1.0f), ops_rand(b, 4, 1.0f);
    sdrt_tensor ta = ops_tensor_perm(a, 3, as, perm), tb = ops_tensor(b, SDRT_DTYPE_F32, 2, bs);
    sdrt_tensor ty = ops_tensor(y, SDRT_DTYPE_F32, 3, as);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 5; k++)
                want[(i * 4 + j) * 5 + k] = a[i * ta.strides[0] + j * ta.strides[1] + k * ta.strides[2]] * b[j];
    CHECK(ops_run(ops_stream(2), SDRT_OP_MUL, &ta, &tb, NULL, &ty, NULL, NULL) == SDRT_OK, "mul");
    ops_close("mul strided broadcast", y, want, 60, 0.0);
    /* f32 -> f16 -> f32 matches the reference conversions exactly. */
    uint16_t h[60];
    float back[60];
    sdrt_tensor th = ops_tensor(h, SDRT_DTYPE_F16, 3, as), tback = ops_tensor(back, SDRT_DTYPE_F32, 3, as);
    CHECK(ops_run(ops_stream(2), SDRT_OP_COPY, &ta, NULL, NULL, &th, NULL, NULL) == SDRT_OK, "copy f16");
    CHECK(ops_run(ops_stream(2), SDRT_OP_COPY, &th, NULL, NULL, &tback, NULL, NULL) == SDRT_OK, "copy back");
    /* From a itself: recovering it as want / b is not exact in float and
     * could land on the other side of an f16 rounding tie. */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 5; k++)
                want[(i * 4 + j) * 5 + k] = sdrt_f16_to_f32(
                    sdrt_f32_to_f16(a[i * ta.strides[0] + j * ta.strides[1] + k * ta.strides[2]]));
    ops_close("copy f16 roundtrip", back, want, 60, 1e-6);
}

/* ---- supports_op is truthful ------------------------------------------------------------- */

void test_supports_op(void) {
    sdrt_device *dev = ops_device();
    float x[8] = {0};
    int32_t iv[8] = {0};
    int64_t s1[1] = {8}, s2[2] = {2, 4}, s2t[2] = {4, 2};
    sdrt_tensor f = ops_tensor(x, SDRT_DTYPE_F32, 1, s1), h = ops_tensor(x, SDRT_DTYPE_F16, 1, s1);
    sdrt_tensor i32 = ops_tensor(iv, SDRT_DTYPE_I32, 2, s2t), a = ops_tensor(x, SDRT_DTYPE_F32, 2, s2);
    sdrt_tensor out = ops_tensor(x, SDRT_DTYPE_F32, 2, s2), w = ops_tensor(x, SDRT_DTYPE_F32, 2, s2);
    sdrt_op op = {.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_GELU, .src = {&h}, .dst = &f};
    CHECK(!dev->iface->supports_op(dev, &op), "gelu on f16 should be unsupported");
    CHECK(ops_run(ops_stream(1), SDRT_OP_GELU, &h, NULL, NULL, &f, NULL, NULL) == SDRT_UNSUPPORTED, "gelu f16");
    op = (sdrt_op){.struct_size = sizeof(sdrt_op), .kind = SDRT_OP_MATMUL, .src = {&a, &i32}, .dst = &out};
    CHECK(!dev->iface->supports_op(dev, &op), "matmul with i32 weights should be unsupported");
    op.src[1] = &w; /* [2,4] @ [2,4]: supported kinds, inconsistent shapes */
    CHECK(dev->iface->supports_op(dev, &op), "matmul f32 supported");
    CHECK(sdrt_stream_compute(ops_stream(1), &op) == SDRT_INVALID_ARGUMENT, "shape mismatch -> INVALID_ARGUMENT");
    for (int k = 0; k < SDRT_OP_COUNT_; k++) {
        sdrt_op any = {.struct_size = sizeof(sdrt_op), .kind = (sdrt_op_kind)k, .src = {&f, &f, &f}, .dst = &f};
        (void)dev->iface->supports_op(dev, &any); /* must not crash for any kind */
    }
}

/* Parameters (bias, norm scale/shift, the ADD/MUL operand) in F16/BF16:
 * widening is exact, so every op must give bit for bit what it gives with
 * F32 parameters holding the same values. Parameters are strided views in
 * the second round, which the F32 path must stage the same way. */
void test_param_dtypes(void) {
    enum { C = 24, H = 5, W = 7, N = 2, K = 16 };
    static float x[N * C * H * W], y32[N * C * H * W], yh[N * C * H * W], wf[C * C]; /* [C,K] or [C,C,1,1] */
    static float p32[2 * C * 2], praw[2 * C * 2];
    static uint16_t ph[2 * C * 2];
    static const sdrt_dtype dts[2] = {SDRT_DTYPE_F16, SDRT_DTYPE_BF16};
    ops_rand(x, N * C * H * W, 2.0f);
    ops_rand(wf, C * C, 0.5f);
    for (int d = 0; d < 2; d++) {
        for (int strided = 0; strided < 2; strided++) {
            ops_rand(praw, 4 * C, 1.5f);
            for (int i = 0; i < 4 * C; i++) {
                float v = 1.0f + praw[i];
                ph[i] = dts[d] == SDRT_DTYPE_F16 ? sdrt_f32_to_f16(v) : sdrt_f32_to_bf16(v);
                p32[i] = rounded(v, dts[d]);
            }
            /* gamma = elements 0.., beta = the second half; strided: every
             * other element. */
            int64_t pc[1] = {C};
            sdrt_tensor g32 = ops_tensor(p32, SDRT_DTYPE_F32, 1, pc), b32 = ops_tensor(p32 + 2 * C, SDRT_DTYPE_F32, 1, pc);
            sdrt_tensor gh = ops_tensor(ph, dts[d], 1, pc), bh = ops_tensor(ph + 2 * C, dts[d], 1, pc);
            if (strided) g32.strides[0] = b32.strides[0] = gh.strides[0] = bh.strides[0] = 2;
            int64_t xs[4] = {N, C, H, W}, ls[2] = {N * H * W, C}, ms[2] = {N * H * W, K}, ws[2] = {C, K};
            int64_t bs3[3] = {C, 1, 1};
            sdrt_tensor tx = ops_tensor(x, SDRT_DTYPE_F32, 4, xs), ty32 = ops_tensor(y32, SDRT_DTYPE_F32, 4, xs);
            sdrt_tensor tyh = ops_tensor(yh, SDRT_DTYPE_F32, 4, xs);
            const char *what[6] = {"group_norm", "layer_norm", "add [C,1,1]", "mul [C,1,1]", "matmul bias", "conv2d bias"};
            for (int k = 0; k < 6; k++) {
                sdrt_op op32 = {.struct_size = sizeof(sdrt_op), .dst = &ty32}, oph = {.struct_size = sizeof(sdrt_op), .dst = &tyh};
                sdrt_tensor lx, ly32, lyh, g3_32, g3_h, w, w4;
                size_t n = N * C * H * W;
                switch (k) {
                case 0:
                    op32.kind = oph.kind = SDRT_OP_GROUP_NORM;
                    op32.iparams[0] = oph.iparams[0] = 4;
                    op32.src[0] = oph.src[0] = &tx;
                    op32.src[1] = &g32, op32.src[2] = &b32, oph.src[1] = &gh, oph.src[2] = &bh;
                    break;
                case 1:
                    lx = ops_tensor(x, SDRT_DTYPE_F32, 2, ls), ly32 = ops_tensor(y32, SDRT_DTYPE_F32, 2, ls);
                    lyh = ops_tensor(yh, SDRT_DTYPE_F32, 2, ls);
                    op32.kind = oph.kind = SDRT_OP_LAYER_NORM;
                    op32.src[0] = oph.src[0] = &lx;
                    op32.src[1] = &g32, op32.src[2] = &b32, oph.src[1] = &gh, oph.src[2] = &bh;
                    op32.dst = &ly32, oph.dst = &lyh;
                    break;
                case 2:
                case 3:
                    g3_32 = ops_tensor(p32, SDRT_DTYPE_F32, 3, bs3), g3_h = ops_tensor(ph, dts[d], 3, bs3);
                    if (strided) g3_32.strides[0] = g3_h.strides[0] = 2;
                    op32.kind = oph.kind = k == 2 ? SDRT_OP_ADD : SDRT_OP_MUL;
                    op32.fparams[0] = oph.fparams[0] = k == 2 ? 0.5f : 0.0f;
                    op32.src[0] = oph.src[0] = &tx;
                    op32.src[1] = &g3_32, oph.src[1] = &g3_h;
                    break;
                case 4: {
                    int64_t kc[1] = {K};
                    lx = ops_tensor(x, SDRT_DTYPE_F32, 2, ls);
                    w = ops_tensor(wf, SDRT_DTYPE_F32, 2, ws);
                    ly32 = ops_tensor(y32, SDRT_DTYPE_F32, 2, ms), lyh = ops_tensor(yh, SDRT_DTYPE_F32, 2, ms);
                    g3_32 = ops_tensor(p32, SDRT_DTYPE_F32, 1, kc), g3_h = ops_tensor(ph, dts[d], 1, kc);
                    if (strided) g3_32.strides[0] = g3_h.strides[0] = 2;
                    op32.kind = oph.kind = SDRT_OP_MATMUL;
                    op32.src[0] = oph.src[0] = &lx;
                    op32.src[1] = oph.src[1] = &w;
                    op32.src[2] = &g3_32, oph.src[2] = &g3_h;
                    op32.dst = &ly32, oph.dst = &lyh;
                    n = (size_t)(N * H * W * K);
                    break;
                }
                default: {
                    int64_t w4s[4] = {C, C, 1, 1};
                    w4 = ops_tensor(wf, SDRT_DTYPE_F32, 4, w4s);
                    op32.kind = oph.kind = SDRT_OP_CONV2D;
                    op32.src[0] = oph.src[0] = &tx;
                    op32.src[1] = oph.src[1] = &w4;
                    op32.src[2] = &g32, oph.src[2] = &gh;
                    break;
                }
                }
                CHECK(ops_device()->iface->supports_op(ops_device(), &oph), "%s: %s params not claimed", what[k],
                      d ? "bf16" : "f16");
                memset(y32, 0, sizeof y32);
                memset(yh, 0xFF, sizeof yh);
                sdrt_status s1 = sdrt_stream_compute(ops_stream(2), &op32), s2 = sdrt_stream_compute(ops_stream(2), &oph);
                CHECK(s1 == SDRT_OK && s2 == SDRT_OK, "%s: status %d / %d", what[k], s1, s2);
                CHECK(memcmp(y32, yh, n * sizeof(float)) == 0, "%s with %s%s params differs from f32 params (max abs %g)",
                      what[k], d ? "bf16" : "f16", strided ? " strided" : "", test_max_abs(yh, y32, n));
            }
        }
    }
}
