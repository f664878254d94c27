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
