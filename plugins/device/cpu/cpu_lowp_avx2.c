/* cpu_lowp_avx2.c - the int8 micro-kernel for AVX2 (4x8). AVX2 has no
 * u8 x s8 -> s32 instruction, so each step is ggml's / llamafile's sign
 * trick: vpmaddubsw(|q_a|, sign(q_w, q_a)) multiplies 32 byte pairs and
 * adds adjacent ones into s16 (|q| <= 127, so a pair sum fits: no
 * saturation), vpmaddwd by ones widens to s32 sums of 4, vpaddd
 * accumulates. |q_a| is packed next to q_a (CPU_LPA_S8ABS). Per block of
 * 32, the int32 sums are converted and FMA'd by d_a * d_w into f32
 * accumulators: 13 of the 16 ymm registers. */
#include "cpu_internal.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define MR 4
#define NR 8
#define T256 __attribute__((target("avx2,fma")))

static inline int32_t lp_ld32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

T256 static inline void lp256_store(float *cr, __m256 v, const cpu_epilogue *e) {
    if (e->accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(cr));
    if (e->last) {
        __m256 bn = e->bias_n ? _mm256_loadu_ps(e->bias_n) : _mm256_setzero_ps();
        v = _mm256_fmadd_ps(v, _mm256_set1_ps(e->alpha), bn);
    }
    _mm256_storeu_ps(cr, v);
}

T256 static void lp_int8_avx2(int64_t units, const uint8_t *a, const uint8_t *b, float *c, int64_t ldc,
                              const cpu_epilogue *e) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f0 = _mm256_setzero_ps(), f1 = _mm256_setzero_ps(), f2 = _mm256_setzero_ps(), f3 = _mm256_setzero_ps();
    for (int64_t u = 0; u < units; u++) {
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256(), s2 = _mm256_setzero_si256(),
                s3 = _mm256_setzero_si256();
        const uint8_t *aq = a + MR * 32;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i bv = _mm256_loadu_si256((const __m256i *)(const void *)(b + g * NR * 4));
#define ROW(i)                                                                \
    {                                                                         \
        __m256i q = _mm256_set1_epi32(lp_ld32(a + (i) * 32 + g * 4));        \
        __m256i ab = _mm256_set1_epi32(lp_ld32(aq + (i) * 32 + g * 4));      \
        __m256i t = _mm256_maddubs_epi16(ab, _mm256_sign_epi8(bv, q));       \
        s##i = _mm256_add_epi32(s##i, _mm256_madd_epi16(t, ones));           \
    }
            ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
        }
        __m256 d = _mm256_loadu_ps((const float *)(const void *)(b + NR * 32));
        const uint8_t *ad = a + MR * 64;
#define ROW(i)                                                                              \
    {                                                                                       \
        float dai;                                                                          \
        memcpy(&dai, ad + (i) * 4, 4);                                                      \
        f##i = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s##i), _mm256_mul_ps(_mm256_set1_ps(dai), d), f##i); \
    }
        ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
        a += MR * 68;
        b += NR * 40;
    }
    lp256_store(c, f0, e);
    lp256_store(c + ldc, f1, e);
    lp256_store(c + 2 * ldc, f2, e);
    lp256_store(c + 3 * ldc, f3, e);
}

const cpu_lp_kernel cpu_lp_int8_avx2 = {"int8-avx2-4x8", CPU_PREC_INT8, CPU_LPA_S8ABS, MR, NR, 1, lp_int8_avx2};
#else
const cpu_lp_kernel cpu_lp_int8_avx2 = {"int8-avx2-unavailable", CPU_PREC_INT8, CPU_LPA_S8ABS, 4, 8, 1, NULL};
#endif
