/* test_ops_lowp.c - the int8 and bf16 stream precisions of the CPU backend
 * (cpu_lowp*.c) against double-precision references computed here from the
 * same quantised / rounded operands:
 *  - int8: A quantised per row and block of 32 by the documented rule
 *    (d = max|x| / 127 in float, q = nearest-even(x * (1/d))), written out
 *    again here; W quantised by sdrt_quant_row(Q8_0) (ggml's reference
 *    quantiser), or a Q8_0 weight's own blocks; the result must equal
 *    sum_blocks d_a d_w sum(q_a q_w) up to the f32 rounding of the block
 *    terms (the integer sums are exact);
 *  - bf16: both operands rounded to nearest-even bf16, products summed.
 * Every kernel this CPU runs (AVX-512 VNNI / BF16, AVX2, portable) on fresh
 * random shapes with ragged M, N and K (K not a multiple of 32, K over one
 * slice), strided A, several weight dtypes; the activation and weight
 * quantisers of every SIMD level against the rule / sdrt_quant_row; then
 * the MATMUL and CONV2D ops on int8 and bf16 streams (weights packed once
 * and cached: changing the weight's memory afterwards must not change the
 * result; convolutions against im2col rows built here), activation x
 * activation products staying f32, and the "precision" parameter's
 * refusals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "harness.h"
#include "ops_common.h"
#include "sdrt/half.h"
#include "sdrt/quant.h"

/* ---- references ------------------------------------------------------------------ */

/* The int8 mode's activation rule, written independently of cpu_lowp.c. */
static float ref_quant_block(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        if (a > amax) amax = a;
    }
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < 32; i++) {
        long r = lrintf(x[i] * id); /* default rounding: nearest even */
        q[i] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
    }
    return d;
}

/* A weight of n rows x k in dtype dt (Q8_0 needs k % 32 == 0) and its
 * values as floats (what the f32 path would read). */
static void *make_weight(const float *vals, int64_t n, int64_t k, sdrt_dtype dt, float *as_f32) {
    if (dt == SDRT_DTYPE_Q8_0) {
        size_t rb = (size_t)sdrt_dtype_bytes(dt, k);
        uint8_t *p = malloc(rb * (size_t)n);
        for (int64_t j = 0; j < n; j++) {
            sdrt_quant_row(dt, vals + j * k, p + rb * (size_t)j, k);
            sdrt_dequant_row(dt, p + rb * (size_t)j, as_f32 + j * k, k);
        }
        return p;
    }
    size_t es = dt == SDRT_DTYPE_F32 ? 4 : 2;
    char *p = malloc((size_t)(n * k) * es);
    for (int64_t i = 0; i < n * k; i++) {
        if (dt == SDRT_DTYPE_F32) ((float *)(void *)p)[i] = vals[i];
        else if (dt == SDRT_DTYPE_F16) ((uint16_t *)(void *)p)[i] = sdrt_f32_to_f16(vals[i]);
        else ((uint16_t *)(void *)p)[i] = sdrt_f32_to_bf16(vals[i]);
        as_f32[i] = cpu_load_f32(p, dt, i);
    }
    return p;
}

/* want[m x n] = alpha * (A W^T in the mode's arithmetic) + bias; bound[]
 * the sum of |terms| that bounds the f32 rounding. */
static void ref_lowp(cpu_precision prec, const float *a, const float *wf, const void *wq, sdrt_dtype wdt, int64_t m,
                     int64_t n, int64_t k, float alpha, const float *bias, double *want, double *bound) {
    int64_t units = (k + 31) / 32, kp = units * 32;
    float *ap = calloc((size_t)(m * kp), sizeof(float)), *wp = calloc((size_t)(n * kp), sizeof(float));
    for (int64_t i = 0; i < m; i++) memcpy(ap + i * kp, a + i * k, (size_t)k * sizeof(float));
    for (int64_t j = 0; j < n; j++) memcpy(wp + j * kp, wf + j * k, (size_t)k * sizeof(float));
    if (prec == CPU_PREC_BF16) {
        for (int64_t i = 0; i < m * kp; i++) ap[i] = sdrt_bf16_to_f32(sdrt_f32_to_bf16(ap[i]));
        for (int64_t i = 0; i < n * kp; i++) wp[i] = sdrt_bf16_to_f32(sdrt_f32_to_bf16(wp[i]));
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0, b = 0;
                for (int64_t p = 0; p < kp; p++) {
                    s += (double)ap[i * kp + p] * wp[j * kp + p];
                    b += fabs((double)ap[i * kp + p] * wp[j * kp + p]);
                }
                want[i * n + j] = alpha * s + (bias ? bias[j] : 0.0);
                bound[i * n + j] = fabs(alpha) * b + (bias ? fabs(bias[j]) : 0.0);
            }
    } else {
        int8_t *qa = malloc((size_t)(m * kp)), *qw = malloc((size_t)(n * kp));
        float *da = malloc(sizeof(float) * (size_t)(m * units)), *dw = malloc(sizeof(float) * (size_t)(n * units));
        for (int64_t i = 0; i < m; i++)
            for (int64_t u = 0; u < units; u++) da[i * units + u] = ref_quant_block(ap + i * kp + u * 32, qa + i * kp + u * 32);
        size_t rb = (size_t)sdrt_dtype_bytes(SDRT_DTYPE_Q8_0, kp);
        uint8_t *row = malloc(rb);
        for (int64_t j = 0; j < n; j++) {
            const uint8_t *blocks = row;
            if (wdt == SDRT_DTYPE_Q8_0) blocks = (const uint8_t *)wq + rb * (size_t)j; /* as they are */
            else sdrt_quant_row(SDRT_DTYPE_Q8_0, wp + j * kp, row, kp);
            for (int64_t u = 0; u < units; u++) {
                uint16_t h;
                memcpy(&h, blocks + u * 34, 2);
                dw[j * units + u] = sdrt_f16_to_f32(h);
                memcpy(qw + j * kp + u * 32, blocks + u * 34 + 2, 32);
            }
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0, b = 0;
                for (int64_t u = 0; u < units; u++) {
                    long dot = 0;
                    for (int t = 0; t < 32; t++) dot += (long)qa[i * kp + u * 32 + t] * qw[j * kp + u * 32 + t];
                    double term = (double)da[i * units + u] * dw[j * units + u] * (double)dot;
                    s += term;
                    b += fabs(term);
                }
                want[i * n + j] = alpha * s + (bias ? bias[j] : 0.0);
                bound[i * n + j] = fabs(alpha) * b + (bias ? fabs(bias[j]) : 0.0);
            }
        free(qa), free(qw), free(da), free(dw), free(row);
    }
    free(ap), free(wp);
}

/* ---- the GEMM ------------------------------------------------------------------------ */

static void check_lp_gemm(const cpu_lp_kernel *kern, int threads, int64_t m, int64_t n, int64_t k, sdrt_dtype wdt,
                          int a_trans) {
    float *a = malloc(sizeof(float) * (size_t)(m * k)), *wv = malloc(sizeof(float) * (size_t)(n * k));
    float *wf = malloc(sizeof(float) * (size_t)(n * k)), *bias = malloc(sizeof(float) * (size_t)n);
    float *c = malloc(sizeof(float) * (size_t)(m * n)), *as = malloc(sizeof(float) * (size_t)(m * k));
    double *want = malloc(sizeof(double) * (size_t)(m * n)), *bound = malloc(sizeof(double) * (size_t)(m * n));
    ops_rand(a, (size_t)(m * k), 2.0f);
    ops_rand(wv, (size_t)(n * k), 0.5f);
    ops_rand(bias, (size_t)n, 1.0f);
    /* A few outliers per row, as real activations have. */
    for (int64_t i = 0; i < m; i++) a[i * k + ops_rand_int(0, (int)k - 1)] *= 20.0f;
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++) as[a_trans ? p * m + i : i * k + p] = a[i * k + p];
    void *w = make_weight(wv, n, k, wdt, wf);
    float alpha = 0.5f + (float)ops_rand_int(0, 4) * 0.25f;
    ref_lowp(kern->prec, a, wf, w, wdt, m, n, k, alpha, bias, want, bound);
    cpu_ctx ctx;
    REQUIRE(cpu_ctx_init(&ctx, threads) == 0, "ctx");
    cpu_operand wo = {.data = w, .dtype = wdt, .so = k, .sk = 1};
    cpu_lp_weight pw;
    CHECK(cpu_lp_pack_weight(&ctx, kern, &wo, n, k, &pw) == SDRT_OK, "pack weight");
    for (int64_t i = 0; i < m * n; i++) c[i] = NAN;
    cpu_lp_gemm_args g = {.m = m, .a = {.data = as, .dtype = SDRT_DTYPE_F32, .so = a_trans ? 1 : k, .sk = a_trans ? m : 1},
                          .w = &pw, .c = c, .ldc = n, .alpha = alpha, .bias_n = bias};
    CHECK(cpu_lp_gemm(&ctx, &g) == SDRT_OK, "lp gemm status");
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < m * n; i++) {
        /* f32 rounding of the per-block terms and their running sum. */
        double err = fabs(c[i] - want[i]) / (bound[i] * 2e-6 * (1.0 + k / 64.0) + 1e-30);
        if (!(err <= worst)) worst = err, at = i; /* NaN counts as worst */
    }
    if (getenv("LP_DEBUG")) printf("# %s %lldx%lldx%lld worst %.3g\n", kern->name, (long long)m, (long long)n, (long long)k, worst);
    CHECK(worst <= 1.0, "%s t%d %lldx%lldx%lld w%s a_trans %d: [%lld] got %.9g want %.9g (bound %.3g)", kern->name,
          threads, (long long)m, (long long)n, (long long)k, sdrt_dtype_ggml_name(wdt), a_trans, (long long)at, c[at],
          want[at], bound[at]);
    /* Sanity of the mode: close to the exact f32 product. */
    double num = 0, den = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++) s += (double)a[i * k + p] * wf[j * k + p];
            s = alpha * s + bias[j];
            num += (c[i * n + j] - s) * (c[i * n + j] - s);
            den += s * s;
        }
    double rel = sqrt(num / (den + 1e-30));
    /* (Over a handful of outputs one cancelling sum dominates the L2.) */
    if (m * n >= 64)
        CHECK(rel < (kern->prec == CPU_PREC_INT8 ? 3e-2 : 1e-2), "%s %lldx%lldx%lld: rel L2 vs f32 %.3g", kern->name,
              (long long)m, (long long)n, (long long)k, rel);
    cpu_lp_weight_free(&pw);
    cpu_ctx_release(&ctx);
    free(a), free(wv), free(wf), free(bias), free(c), free(as), free(want), free(bound), free(w);
}

static int lp_kernels(const cpu_lp_kernel **out) {
    int n = 0;
    const cpu_features *f = cpu_features_get();
    if (f->avx512f && f->avx512bw && f->avx512vnni) out[n++] = &cpu_lp_int8_vnni512;
    if (f->avx2 && f->fma && f->avx_vnni) out[n++] = &cpu_lp_int8_avxvnni;
    if (f->avx2 && f->fma) out[n++] = &cpu_lp_int8_avx2;
    out[n++] = &cpu_lp_int8_scalar;
    if (f->avx512f && f->avx512bw && f->avx512bf16) out[n++] = &cpu_lp_bf16_avx512;
    return n;
}

void test_lowp_gemm_kernels(void) {
    const cpu_lp_kernel *kerns[5];
    int nk = lp_kernels(kerns);
    printf("# low-precision kernels here:");
    for (int i = 0; i < nk; i++) printf(" %s", kerns[i]->name);
    printf("\n");
    static const sdrt_dtype wdts[4] = {SDRT_DTYPE_F32, SDRT_DTYPE_F16, SDRT_DTYPE_BF16, SDRT_DTYPE_Q8_0};
    for (int ki = 0; ki < nk; ki++) {
        /* Fixed edges: one row, one column, K of one element, K = 33,
         * exact tiles; then fresh random shapes. */
        const cpu_lp_kernel *kn = kerns[ki];
        check_lp_gemm(kn, 1, 1, 1, 1, SDRT_DTYPE_F32, 0);
        check_lp_gemm(kn, 2, kn->mr, kn->nr, 32, SDRT_DTYPE_F32, 0);
        check_lp_gemm(kn, 2, 2 * kn->mr + 1, kn->nr + 3, 33, SDRT_DTYPE_F16, 1);
        check_lp_gemm(kn, 3, 77, 70, 1100, SDRT_DTYPE_F16, 0); /* three K slices */
        for (int r = 0; r < 6; r++) {
            sdrt_dtype dt = wdts[ops_rand_int(0, 3)];
            if (dt == SDRT_DTYPE_Q8_0 && kn->prec == CPU_PREC_BF16) dt = SDRT_DTYPE_BF16;
            int64_t k = dt == SDRT_DTYPE_Q8_0 ? 32 * ops_rand_int(1, 20) : ops_rand_int(1, 700);
            check_lp_gemm(kn, ops_rand_int(1, 3), ops_rand_int(1, 200), ops_rand_int(1, 150), k, dt,
                          ops_rand_int(0, 1));
        }
    }
}

/* Every activation quantiser (portable, AVX2, AVX-512) equals the rule;
 * the weight quantisers equal sdrt_quant_row(Q8_0). */
void test_lowp_quantiser(void) {
    float x[32];
    int8_t q0[32], q1[32];
    for (int r = 0; r < 300; r++) {
        ops_rand(x, 32, r % 3 == 0 ? 1e-3f : 10.0f);
        if (r % 7 == 0) memset(x, 0, sizeof x);
        if (r % 11 == 0) {
            /* Exact halves: ties must round to even. */
            for (int i = 0; i < 32; i++) x[i] = (float)ops_rand_int(-254, 254) * 0.5f;
            x[0] = 127.0f;
        }
        float d0 = ref_quant_block(x, q0);
        for (int level = -1; level <= 2; level++) {
            float d1 = level < 0 ? cpu_lp_quant32(x, q1) : cpu_lp_quant32_level(level, x, q1);
            CHECK(d0 == d1 && memcmp(q0, q1, 32) == 0, "quantiser level %d differs from the rule (case %d)", level, r);
        }
        /* Weights: ggml's q8_0 (halves away from zero), byte for byte. */
        uint8_t blk[34];
        sdrt_quant_row(SDRT_DTYPE_Q8_0, x, blk, 32);
        for (int level = 0; level <= 2; level++) {
            uint16_t dh = cpu_lp_q8_0_block(level, x, q1);
            CHECK(memcmp(&dh, blk, 2) == 0 && memcmp(q1, blk + 2, 32) == 0,
                  "weight q8_0 level %d differs from sdrt_quant_row (case %d)", level, r);
        }
    }
}

/* ---- the op on low-precision streams ---------------------------------------------- */

static sdrt_stream *lp_stream(const char *prec) {
    char params[96];
    snprintf(params, sizeof params, "{\"threads\":2,\"precision\":\"%s\"}", prec);
    sdrt_device *dev = ops_device();
    return dev->iface->stream_new(dev, params);
}

static void check_matmul_stream(cpu_precision prec) {
    const char *name = cpu_precision_name(prec);
    const cpu_lp_kernel *kern = cpu_lp_kernel_best(prec);
    if (!kern) return;
    sdrt_stream *s = lp_stream(name), *s32 = lp_stream("f32");
    REQUIRE(s && s32, "%s stream", name);
    int64_t m = ops_rand_int(1, 300), n = ops_rand_int(1, 200), k = ops_rand_int(1, 400), bsz = 2;
    float *a = malloc(sizeof(float) * (size_t)(bsz * m * k)), *wv = malloc(sizeof(float) * (size_t)(n * k));
    float *wf = malloc(sizeof(float) * (size_t)(n * k)), *bias = malloc(sizeof(float) * (size_t)n);
    float *c = malloc(sizeof(float) * (size_t)(bsz * m * n)), *c2 = malloc(sizeof(float) * (size_t)(bsz * m * n));
    double *want = malloc(sizeof(double) * (size_t)(bsz * m * n)), *bound = malloc(sizeof(double) * (size_t)(bsz * m * n));
    ops_rand(a, (size_t)(bsz * m * k), 1.0f);
    ops_rand(wv, (size_t)(n * k), 1.0f);
    ops_rand(bias, (size_t)n, 1.0f);
    uint16_t *w = make_weight(wv, n, k, SDRT_DTYPE_F16, wf);
    /* A Linear layer: [bsz, m, k] x [n, k]^T + bias, batch folded. */
    int64_t as[3] = {bsz, m, k}, ws[2] = {n, k}, bs[1] = {n}, cs[3] = {bsz, m, n};
    sdrt_tensor ta = ops_tensor(a, SDRT_DTYPE_F32, 3, as), tw = ops_tensor(w, SDRT_DTYPE_F16, 2, ws);
    sdrt_tensor tb = ops_tensor(bias, SDRT_DTYPE_F32, 1, bs), tc = ops_tensor(c, SDRT_DTYPE_F32, 3, cs);
    int32_t ip[SDRT_OP_MAX_PARAMS] = {1};
    float fp[SDRT_OP_MAX_PARAMS] = {0};
    CHECK(ops_run(s, SDRT_OP_MATMUL, &ta, &tw, &tb, &tc, ip, fp) == SDRT_OK, "%s matmul", name);
    ref_lowp(prec, a, wf, w, SDRT_DTYPE_F16, bsz * m, n, k, 1.0f, bias, want, bound);
    int bad = 0;
    for (int64_t i = 0; i < bsz * m * n && !bad; i++)
        if (!(fabs(c[i] - want[i]) <= bound[i] * 2e-6 * (1.0 + k / 64.0) + 1e-30)) bad = 1;
    CHECK(!bad, "%s matmul op differs from the reference (%lldx%lldx%lld)", name, (long long)(bsz * m),
          (long long)n, (long long)k);
    /* Packed once: the stream reads its cached copy, not the weight. */
    for (int64_t i = 0; i < n * k; i++) w[i] = sdrt_f32_to_f16(0.0f);
    tc.data = c2;
    CHECK(ops_run(s, SDRT_OP_MATMUL, &ta, &tw, &tb, &tc, ip, fp) == SDRT_OK, "%s matmul again", name);
    CHECK(memcmp(c, c2, sizeof(float) * (size_t)(bsz * m * n)) == 0, "%s: second call did not reuse the packed weight",
          name);
    /* B with a buffer (an activation): f32 on every stream. */
    sdrt_buffer_type *bt = ops_device()->iface->buffer_type(ops_device());
    sdrt_buffer *buf = bt->iface->alloc(bt, sizeof(float) * (size_t)(n * k));
    REQUIRE(buf, "buffer");
    float *wb = buf->iface->base(buf);
    memcpy(wb, wf, sizeof(float) * (size_t)(n * k));
    sdrt_tensor tbw = ops_tensor(wb, SDRT_DTYPE_F32, 2, ws);
    tbw.buffer = buf;
    tc.data = c;
    CHECK(ops_run(s, SDRT_OP_MATMUL, &ta, &tbw, &tb, &tc, ip, fp) == SDRT_OK, "%s matmul (activation B)", name);
    tc.data = c2;
    CHECK(ops_run(s32, SDRT_OP_MATMUL, &ta, &tbw, &tb, &tc, ip, fp) == SDRT_OK, "f32 matmul (activation B)");
    CHECK(memcmp(c, c2, sizeof(float) * (size_t)(bsz * m * n)) == 0, "%s: an activation B was not computed in f32",
          name);
    sdrt_buffer_free(buf);
    sdrt_stream_free(s);
    sdrt_stream_free(s32);
    free(a), free(wv), free(wf), free(bias), free(c), free(c2), free(want), free(bound), free(w);
}

void test_lowp_matmul_stream(void) {
    check_matmul_stream(CPU_PREC_INT8);
    check_matmul_stream(CPU_PREC_BF16);
}

/* CONV2D on a low-precision stream: the reference builds the im2col rows
 * (one per output pixel) and applies the mode's arithmetic to them. */
/* c, kk, stride < 0: random. */
static void check_conv_stream(cpu_precision prec, int c_fix, int kk_fix, int stride_fix) {
    const char *name = cpu_precision_name(prec);
    if (!cpu_lp_kernel_best(prec)) return;
    sdrt_stream *s = lp_stream(name);
    REQUIRE(s, "%s stream", name);
    int64_t n = ops_rand_int(1, 2), c = c_fix > 0 ? c_fix : ops_rand_int(1, 40), o = ops_rand_int(1, 40),
            h = ops_rand_int(3, 19), w = ops_rand_int(3, 19);
    int kk = kk_fix > 0 ? kk_fix : ops_rand_int(0, 1) ? 3 : 1;
    int stride = stride_fix > 0 ? stride_fix : ops_rand_int(1, 2), pad = kk == 3 ? ops_rand_int(0, 1) : 0;
    int64_t ho = (h + 2 * pad - kk) / stride + 1, wo = (w + 2 * pad - kk) / stride + 1, k = c * kk * kk;
    float *x = malloc(sizeof(float) * (size_t)(n * c * h * w)), *wv = malloc(sizeof(float) * (size_t)(o * k));
    float *wf = malloc(sizeof(float) * (size_t)(o * k)), *bias = malloc(sizeof(float) * (size_t)o);
    float *y = malloc(sizeof(float) * (size_t)(n * o * ho * wo)), *cols = malloc(sizeof(float) * (size_t)(ho * wo * k));
    double *want = malloc(sizeof(double) * (size_t)(ho * wo * o)), *bound = malloc(sizeof(double) * (size_t)(ho * wo * o));
    ops_rand(x, (size_t)(n * c * h * w), 1.0f);
    ops_rand(wv, (size_t)(o * k), 0.3f);
    ops_rand(bias, (size_t)o, 1.0f);
    uint16_t *wt = make_weight(wv, o, k, SDRT_DTYPE_F16, wf);
    int64_t xs[4] = {n, c, h, w}, ws[4] = {o, c, kk, kk}, bs[1] = {o}, ys[4] = {n, o, ho, wo};
    sdrt_tensor tx = ops_tensor(x, SDRT_DTYPE_F32, 4, xs), tw = ops_tensor(wt, SDRT_DTYPE_F16, 4, ws);
    sdrt_tensor tb = ops_tensor(bias, SDRT_DTYPE_F32, 1, bs), ty = ops_tensor(y, SDRT_DTYPE_F32, 4, ys);
    int32_t ip[SDRT_OP_MAX_PARAMS] = {stride, stride, pad, pad, 1, 1, 1};
    float fp[SDRT_OP_MAX_PARAMS] = {0};
    CHECK(ops_run(s, SDRT_OP_CONV2D, &tx, &tw, &tb, &ty, ip, fp) == SDRT_OK, "%s conv", name);
    int bad = 0;
    for (int64_t img = 0; img < n && !bad; img++) {
        for (int64_t p = 0; p < ho * wo; p++)
            for (int64_t ci = 0; ci < c; ci++)
                for (int ky = 0; ky < kk; ky++)
                    for (int kx = 0; kx < kk; kx++) {
                        int64_t iy = p / wo * stride - pad + ky, ix = p % wo * stride - pad + kx;
                        cols[p * k + (ci * kk + ky) * kk + kx] =
                            iy >= 0 && iy < h && ix >= 0 && ix < w ? x[((img * c + ci) * h + iy) * w + ix] : 0.0f;
                    }
        ref_lowp(prec, cols, wf, wt, SDRT_DTYPE_F16, ho * wo, o, k, 1.0f, bias, want, bound);
        for (int64_t p = 0; p < ho * wo && !bad; p++)
            for (int64_t oc = 0; oc < o; oc++) {
                double got = y[(img * o + oc) * ho * wo + p];
                if (!(fabs(got - want[p * o + oc]) <= bound[p * o + oc] * 2e-6 * (1.0 + k / 64.0) + 1e-30)) {
                    CHECK(0, "%s conv %lldx%lldx%lldx%lld o%lld k%d s%d p%d: img %lld pixel %lld ch %lld got %.8g want %.8g",
                          name, (long long)n, (long long)c, (long long)h, (long long)w, (long long)o, kk, stride, pad,
                          (long long)img, (long long)p, (long long)oc, got, want[p * o + oc]);
                    bad = 1;
                    break;
                }
            }
    }
    sdrt_stream_free(s);
    free(x), free(wv), free(wf), free(bias), free(y), free(cols), free(want), free(bound), free(wt);
}

void test_lowp_conv_stream(void) {
    for (int p = 0; p < 2; p++) {
        cpu_precision prec = p ? CPU_PREC_BF16 : CPU_PREC_INT8;
        check_conv_stream(prec, 1, 1, 2);   /* K = 1 through the im2col packer */
        check_conv_stream(prec, 40, 3, 1);  /* K = 360: two staging chunks */
        check_conv_stream(prec, 3, 3, 2);   /* K = 27: one ragged block */
        for (int r = 0; r < 4; r++) check_conv_stream(prec, -1, -1, -1);
    }
}

void test_lowp_precision_param(void) {
    cpu_precision p;
    char msg[256];
    CHECK(cpu_precision_parse(NULL, &p, msg, sizeof msg) == SDRT_OK && p == CPU_PREC_F32, "no params");
    CHECK(cpu_precision_parse("{\"threads\":2}", &p, msg, sizeof msg) == SDRT_OK && p == CPU_PREC_F32, "absent");
    CHECK(cpu_precision_parse("{\"precision\":\"auto\"}", &p, msg, sizeof msg) == SDRT_OK && p == CPU_PREC_F32, "auto");
    CHECK(cpu_precision_parse("{\"precision\":\"f32\"}", &p, msg, sizeof msg) == SDRT_OK && p == CPU_PREC_F32, "f32");
    CHECK(cpu_precision_parse("{\"precision\":\"int8\"}", &p, msg, sizeof msg) == SDRT_OK && p == CPU_PREC_INT8, "int8");
    sdrt_status st = cpu_precision_parse("{\"precision\":\"f16\"}", &p, msg, sizeof msg);
    CHECK(st == SDRT_UNSUPPORTED && strstr(msg, "precision") && strstr(msg, "f16"), "f16: %d %s", st, msg);
    st = cpu_precision_parse("{\"precision\":\"fp8\"}", &p, msg, sizeof msg);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(msg, "precision") && strstr(msg, "fp8"), "unknown: %d %s", st, msg);
    st = cpu_precision_parse("{\"precision\":8}", &p, msg, sizeof msg);
    CHECK(st == SDRT_INVALID_ARGUMENT && strstr(msg, "precision"), "number: %d %s", st, msg);
    st = cpu_precision_parse("{\"precision\":\"bf16\"}", &p, msg, sizeof msg);
    const cpu_features *f = cpu_features_get();
    int has_bf16 = f->avx512bf16 && f->avx512bw && cpu_kernel_best() == &cpu_kernel_avx512;
    if (has_bf16) CHECK(st == SDRT_OK && p == CPU_PREC_BF16, "bf16 here: %d %s", st, msg);
    else CHECK(st == SDRT_UNSUPPORTED && strstr(msg, "AVX-512 BF16"), "bf16 without AVX-512 BF16: %d %s", st, msg);
    /* Through the device: refused streams are not made. */
    sdrt_stream *s = lp_stream("f16");
    CHECK(s == NULL, "an f16 stream was made");
    sdrt_stream_free(s);
    s = lp_stream("int8");
    CHECK(s != NULL, "no int8 stream");
    sdrt_stream_free(s);
    s = lp_stream("bf16");
    CHECK((s != NULL) == has_bf16, "bf16 stream %s", s ? "made" : "refused");
    sdrt_stream_free(s);
    const char *info = ops_device()->iface->info_json(ops_device());
    CHECK(strstr(info, "\"precisions\":[\"auto\",\"f32\",\"int8\"") != NULL, "info_json precisions: %s", info);
    CHECK((strstr(info, "\"bf16\"]") != NULL) == has_bf16, "info_json bf16: %s", info);
    printf("# %s\n", info);
}
