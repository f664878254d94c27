/* cpu_vexp.c - vectorised row max and exp(x - shift) with sum, for softmax
 * and attention, where libm expf per element would cost more than the
 * attention GEMMs themselves (the exp itself is in cpu_vmath.h). */
#include "cpu_internal.h"

#include <math.h>

#if defined(__x86_64__)
#include "cpu_vmath.h"

T512 static float cpu_row_max_avx512(const float *x, int64_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    if (i < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), (__mmask16)((1u << (n - i)) - 1), x + i));
    return _mm512_reduce_max_ps(m);
}

T512 static float cpu_exp_shift_sum_avx512(float *x, int64_t n, float shift) {
    __m512 s = _mm512_set1_ps(shift), acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = cpu_exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = cpu_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), s));
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

T256 static float cpu_exp_shift_sum_avx2(float *x, int64_t n, float shift) {
    __m256 s = _mm256_set1_ps(shift), acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = cpu_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float buf[8];
    _mm256_storeu_ps(buf, acc);
    float sum = buf[0] + buf[1] + buf[2] + buf[3] + buf[4] + buf[5] + buf[6] + buf[7];
    for (; i < n; i++) {
        x[i] = expf(x[i] - shift);
        sum += x[i];
    }
    return sum;
}
#endif

static float cpu_row_max_scalar(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static float cpu_exp_shift_sum_scalar(float *x, int64_t n, float shift) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - shift);
        sum += x[i];
    }
    return (float)sum;
}

float cpu_row_max(const float *x, int64_t n) {
#if defined(__x86_64__)
    if (cpu_features_get()->avx512f) return cpu_row_max_avx512(x, n);
#endif
    return cpu_row_max_scalar(x, n);
}

float cpu_exp_shift_sum(float *x, int64_t n, float shift) {
#if defined(__x86_64__)
    const cpu_features *f = cpu_features_get();
    if (f->avx512f) return cpu_exp_shift_sum_avx512(x, n, shift);
    if (f->avx2 && f->fma) return cpu_exp_shift_sum_avx2(x, n, shift);
#endif
    return cpu_exp_shift_sum_scalar(x, n, shift);
}

/* ---- column-wise online softmax (attention) ------------------------------- */

#if defined(__x86_64__)
T512 static void cpu_softmax2_cols_avx512(float *s, int64_t rows, int nr, float *m, float *l, float *o,
                                         int64_t orows) {
    for (int c = 0; c < nr; c += 16) {
        __m512 bm = _mm512_set1_ps(-INFINITY);
        for (int64_t r = 0; r < rows; r++) bm = _mm512_max_ps(bm, _mm512_load_ps(s + r * nr + c));
        __m512 mo = _mm512_loadu_ps(m + c), mn = _mm512_max_ps(mo, bm);
        /* 2^(-inf - finite) = 0 clears the initial (zero) accumulator. */
        __m512 f = cpu_exp2_neg512(_mm512_sub_ps(mo, mn)), sum = _mm512_setzero_ps();
        for (int64_t r = 0; r < rows; r++) {
            __m512 e = cpu_exp2_neg512(_mm512_sub_ps(_mm512_load_ps(s + r * nr + c), mn));
            _mm512_store_ps(s + r * nr + c, e);
            sum = _mm512_add_ps(sum, e);
        }
        _mm512_storeu_ps(m + c, mn);
        _mm512_storeu_ps(l + c, _mm512_fmadd_ps(_mm512_loadu_ps(l + c), f, sum));
        for (int64_t r = 0; r < orows; r++)
            _mm512_storeu_ps(o + r * nr + c, _mm512_mul_ps(_mm512_loadu_ps(o + r * nr + c), f));
    }
}

T256 static void cpu_softmax2_cols_avx2(float *s, int64_t rows, int nr, float *m, float *l, float *o,
                                       int64_t orows) {
    for (int c = 0; c < nr; c += 8) {
        __m256 bm = _mm256_set1_ps(-INFINITY);
        for (int64_t r = 0; r < rows; r++) bm = _mm256_max_ps(bm, _mm256_load_ps(s + r * nr + c));
        __m256 mo = _mm256_loadu_ps(m + c), mn = _mm256_max_ps(mo, bm);
        __m256 f = cpu_exp2_neg256(_mm256_sub_ps(mo, mn)), sum = _mm256_setzero_ps();
        for (int64_t r = 0; r < rows; r++) {
            __m256 e = cpu_exp2_neg256(_mm256_sub_ps(_mm256_load_ps(s + r * nr + c), mn));
            _mm256_store_ps(s + r * nr + c, e);
            sum = _mm256_add_ps(sum, e);
        }
        _mm256_storeu_ps(m + c, mn);
        _mm256_storeu_ps(l + c, _mm256_fmadd_ps(_mm256_loadu_ps(l + c), f, sum));
        for (int64_t r = 0; r < orows; r++)
            _mm256_storeu_ps(o + r * nr + c, _mm256_mul_ps(_mm256_loadu_ps(o + r * nr + c), f));
    }
}
#endif

static void cpu_softmax2_cols_scalar(float *s, int64_t rows, int nr, float *m, float *l, float *o,
                                    int64_t orows) {
    for (int c = 0; c < nr; c++) {
        float bm = -INFINITY;
        for (int64_t r = 0; r < rows; r++) bm = s[r * nr + c] > bm ? s[r * nr + c] : bm;
        float mn = m[c] > bm ? m[c] : bm, f = exp2f(m[c] - mn), sum = 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            float e = exp2f(s[r * nr + c] - mn);
            s[r * nr + c] = e;
            sum += e;
        }
        m[c] = mn;
        l[c] = l[c] * f + sum;
        for (int64_t r = 0; r < orows; r++) o[r * nr + c] *= f;
    }
}

/* The SIMD level follows the chosen GEMM kernel, as the activations do:
 * SDRT_CPU_KERNEL=avx2 runs this on AVX2 too, as on an AVX2-only CPU. */
void cpu_softmax2_cols_step(float *s, int64_t rows, int nr, float *m, float *l, float *o, int64_t orows) {
#if defined(__x86_64__)
    const cpu_features *f = cpu_features_get();
    const cpu_kernel *k = cpu_kernel_best();
    int level = k == &cpu_kernel_avx512 ? 2 : k == &cpu_kernel_avx2 ? 1 : 0;
    if (level >= 2 && f->avx512f && nr % 16 == 0 && ((uintptr_t)s & 63) == 0) {
        cpu_softmax2_cols_avx512(s, rows, nr, m, l, o, orows);
        return;
    }
    if (level >= 1 && f->avx2 && f->fma && nr % 8 == 0 && ((uintptr_t)s & 31) == 0) {
        cpu_softmax2_cols_avx2(s, rows, nr, m, l, o, orows);
        return;
    }
#endif
    cpu_softmax2_cols_scalar(s, rows, nr, m, l, o, orows);
}
