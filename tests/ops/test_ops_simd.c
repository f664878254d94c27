/* test_ops_simd.c - the SIMD paths of the CPU backend against plain C
 * references: the k-contiguous panel packers (every width the kernels use,
 * odd row counts and depths, F32/F16/BF16, rows ending exactly at the end
 * of their allocation so an over-read shows under ASan) and the vectorised
 * activations (tails included) and the column-wise online softmax step
 * against double-precision formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "harness.h"
#include "ops_common.h"
#include "sdrt/half.h"

/* ---- packers ---------------------------------------------------------------- */

/* An operand of `outer` rows of `ld` elements of dtype dt, values from vals. */
static void *pack_source(const float *vals, int64_t count, sdrt_dtype dt) {
    size_t es = cpu_dtype_size(dt);
    char *p = malloc((size_t)count * es);
    for (int64_t i = 0; i < count; i++) {
        if (dt == SDRT_DTYPE_F32) ((float *)(void *)p)[i] = vals[i];
        else if (dt == SDRT_DTYPE_F16) ((uint16_t *)(void *)p)[i] = sdrt_f32_to_f16(vals[i]);
        else ((uint16_t *)(void *)p)[i] = sdrt_f32_to_bf16(vals[i]);
    }
    return p;
}

static void check_pack(int level, int w, int rows, int64_t k0, int64_t kc, sdrt_dtype dt) {
    int64_t first = 1, ld = k0 + kc, count = (first + rows) * ld; /* last row ends the buffer */
    float *vals = malloc(sizeof(float) * (size_t)count);
    ops_rand(vals, (size_t)count, 1.0f);
    void *src = pack_source(vals, count, dt);
    cpu_operand op = {.data = src, .dtype = dt, .so = ld, .sk = 1};
    float *got = malloc(sizeof(float) * (size_t)(kc * w));
    memset(got, 0xff, sizeof(float) * (size_t)(kc * w)); /* NaN: padding must be written */
    cpu_pack_panel_kcontig_for(level)(&op, first, rows, k0, kc, w, got);
    int bad = 0;
    for (int64_t k = 0; k < kc && !bad; k++)
        for (int r = 0; r < w && !bad; r++) {
            float want = r < rows ? cpu_load_f32(src, dt, (first + r) * ld + k0 + k) : 0.0f;
            if (memcmp(&got[k * w + r], &want, sizeof want) != 0) bad = 1;
        }
    CHECK(!bad, "pack level %d w=%d rows=%d k0=%lld kc=%lld dt=%d", level, w, rows, (long long)k0, (long long)kc,
          (int)dt);
    free(vals), free(src), free(got);
}

void test_pack_kcontig(void) {
    static const int widths[] = {4, 6, 8, 14, 16, 28, 32};
    static const int64_t depths[] = {1, 2, 3, 8, 16, 17, 77, 129};
    for (int level = 0; level <= 2; level++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
            for (size_t di = 0; di < sizeof depths / sizeof depths[0]; di++) {
                int w = widths[wi];
                int row_counts[3] = {1, w > 3 ? 3 : 2, w};
                for (int ri = 0; ri < 3; ri++)
                    for (int dt = 0; dt < 3; dt++)
                        check_pack(level, w, row_counts[ri] <= w ? row_counts[ri] : w, ri == 1 ? 5 : 0,
                                   depths[di], (sdrt_dtype)dt);
            }
}

/* ---- activations ------------------------------------------------------------ */

static double act_ref(sdrt_op_kind kind, double x) {
    switch (kind) {
    case SDRT_OP_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case SDRT_OP_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case SDRT_OP_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    default: return x / (1.0 + exp(-x));
    }
}

static const char *act_name(sdrt_op_kind kind) {
    return kind == SDRT_OP_GELU ? "gelu" : kind == SDRT_OP_GELU_TANH ? "gelu_tanh"
        : kind == SDRT_OP_QUICK_GELU ? "quick_gelu" : "silu";
}

/* Rel L2 a tenth of the 1e-5 op tolerance, and a per-element bound
 * (absolute near 0, relative elsewhere) so no range can hide in the L2. */
static void check_act(int level, sdrt_op_kind kind, int64_t n, float scale) {
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    float *want = malloc(sizeof(float) * (size_t)n);
    ops_rand(x, (size_t)n, scale);
    if (n > 4) x[0] = 0.0f, x[1] = -30.0f, x[2] = 30.0f, x[3] = -100.0f;
    for (int64_t i = 0; i < n; i++) want[i] = (float)act_ref(kind, x[i]);
    cpu_act_row_f32_level(level, kind, x, y, n);
    char what[96];
    snprintf(what, sizeof what, "%s level %d n=%lld scale %g", act_name(kind), level, (long long)n, scale);
    /* Over a few elements the L2 is one near-zero output's relative error
     * (1 + erf cancels in the negative tail, in libm's erff as well). */
    if (n >= 100) ops_close(what, y, want, (size_t)n, 1e-6);
    int64_t worst = -1;
    for (int64_t i = 0; i < n && worst < 0; i++) {
        double err = fabs((double)y[i] - want[i]), bound = 1e-6 * fmax(1.0, fabs((double)want[i]));
        if (!(err <= bound)) worst = i;
    }
    CHECK(worst < 0, "%s: x=%.9g got %.9g want %.9g", what, worst >= 0 ? x[worst] : 0.0,
          worst >= 0 ? y[worst] : 0.0, worst >= 0 ? want[worst] : 0.0);
    free(x), free(y), free(want);
}

void test_activation_simd(void) {
    static const sdrt_op_kind kinds[] = {SDRT_OP_GELU, SDRT_OP_GELU_TANH, SDRT_OP_QUICK_GELU, SDRT_OP_SILU};
    static const int64_t lengths[] = {1, 7, 8, 15, 16, 17, 1000};
    for (int level = 0; level <= 2; level++)
        for (size_t ki = 0; ki < 4; ki++)
            for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
                check_act(level, kinds[ki], lengths[li], 3.0f);
                check_act(level, kinds[ki], lengths[li], 12.0f);
            }
    /* GEGLU rows (the chosen level) against the scalar gate. */
    int64_t n = 37;
    float a[37], g[37], y[37], want[37];
    ops_rand(a, (size_t)n, 2.0f);
    ops_rand(g, (size_t)n, 5.0f);
    for (int64_t i = 0; i < n; i++) want[i] = (float)(a[i] * act_ref(SDRT_OP_GELU, g[i]));
    cpu_geglu_row_f32(a, g, y, n);
    ops_close("geglu row", y, want, (size_t)n, 1e-6);
}

/* ---- column-wise online softmax (attention) ----------------------------------- */

static void check_close_abs(const char *what, const float *got, const double *want, size_t n, double tol) {
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])))) bad = i;
    CHECK(bad == n, "%s: element %zu got %.9g want %.9g", what, bad, bad < n ? got[bad] : 0.0,
          bad < n ? want[bad] : 0.0);
}

/* Two key blocks through cpu_softmax2_cols_step against double precision:
 * nr 32 / 16 take the AVX-512 path where present (and the kernel level
 * allows), 8 the AVX2 one, 4 the portable one. Masked (-inf) scores must
 * give exactly 0. */
static void check_softmax2_cols(int nr, int64_t rows1, int64_t rows2) {
    enum { OROWS = 5 };
    float *s1 = cpu_aligned_alloc(sizeof(float) * (size_t)(rows1 * nr));
    float *s2 = cpu_aligned_alloc(sizeof(float) * (size_t)(rows2 * nr));
    float m[32], l[32], o[OROWS * 32], u[OROWS * 32];
    double *w2 = calloc((size_t)(rows2 * nr), sizeof(double)), wm[32] = {0}, wl[32] = {0}, wo[OROWS * 32] = {0};
    ops_rand(s1, (size_t)(rows1 * nr), 8.0f);
    ops_rand(s2, (size_t)(rows2 * nr), 12.0f);
    ops_rand(u, (size_t)(OROWS * nr), 1.0f);
    for (int64_t r = 0; r < rows2; r += 3) s2[r * nr + (r % nr)] = -INFINITY;
    for (int c = 0; c < nr; c++) {
        double m1 = -INFINITY, l1 = 0, m2;
        for (int64_t r = 0; r < rows1; r++) m1 = fmax(m1, s1[r * nr + c]);
        for (int64_t r = 0; r < rows1; r++) l1 += exp2((double)s1[r * nr + c] - m1);
        m2 = m1;
        for (int64_t r = 0; r < rows2; r++) m2 = fmax(m2, s2[r * nr + c]);
        double f = exp2(m1 - m2), l2 = l1 * f;
        for (int64_t r = 0; r < rows2; r++) {
            w2[r * nr + c] = exp2((double)s2[r * nr + c] - m2);
            l2 += w2[r * nr + c];
        }
        wm[c] = m2, wl[c] = l2;
        for (int r = 0; r < OROWS; r++) wo[r * nr + c] = u[r * nr + c] * f;
        m[c] = -INFINITY, l[c] = 0.0f;
    }
    memset(o, 0, sizeof o);
    cpu_softmax2_cols_step(s1, rows1, nr, m, l, o, OROWS);
    for (int i = 0; i < OROWS * nr; i++) {
        CHECK(o[i] == 0.0f, "softmax2 nr %d: first block left the accumulator at %g", nr, o[i]);
        o[i] = u[i];
    }
    cpu_softmax2_cols_step(s2, rows2, nr, m, l, o, OROWS);
    char what[64];
    snprintf(what, sizeof what, "softmax2 nr %d rows %lld+%lld", nr, (long long)rows1, (long long)rows2);
    check_close_abs(what, s2, w2, (size_t)(rows2 * nr), 1e-6);
    check_close_abs(what, l, wl, (size_t)nr, 1e-6);
    check_close_abs(what, o, wo, (size_t)(OROWS * nr), 1e-6);
    for (int c = 0; c < nr; c++) CHECK(m[c] == (float)wm[c], "%s: max of column %d", what, c);
    for (int64_t r = 0; r < rows2; r += 3)
        CHECK(s2[r * nr + (r % nr)] == 0.0f, "%s: a masked score gave %g", what, s2[r * nr + (r % nr)]);
    cpu_aligned_free(s1);
    cpu_aligned_free(s2);
    free(w2);
}

void test_softmax_cols_simd(void) {
    static const int widths[] = {32, 16, 8, 4};
    for (size_t i = 0; i < 4; i++) {
        check_softmax2_cols(widths[i], 1, 1);
        check_softmax2_cols(widths[i], 14, 126);
        check_softmax2_cols(widths[i], 77, 5);
    }
}
