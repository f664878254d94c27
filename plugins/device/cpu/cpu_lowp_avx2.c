/* cpu_lowp_avx2.c - the int8 micro-kernels for AVX2-class CPUs: AVX2
 * (4x8, below) and AVX-VNNI (3x16, at the end). The AVX2 one: AVX2 has no
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

/* ---- AVX-VNNI (VEX vpdpbusd on ymm: AVX2-class Intel cores from Alder
 * Lake, Zen 5): the VNNI scheme of the AVX-512 kernel (u8 q+128 x s8,
 * int32 sums started at -128*sum(q_w)) at 3x16, 15 of the 16 ymm
 * registers. ---------------------------------------------------------------------- */
#if defined(__x86_64__)
#define MRV 3
#define NRV 16
#define TVNNI __attribute__((target("avx2,fma,avxvnni")))

TVNNI static void lp_int8_avxvnni(int64_t units, const uint8_t *a, const uint8_t *b, float *c, int64_t ldc,
                                  const cpu_epilogue *e) {
    __m256 f0a = _mm256_setzero_ps(), f0b = _mm256_setzero_ps(), f1a = _mm256_setzero_ps(),
           f1b = _mm256_setzero_ps(), f2a = _mm256_setzero_ps(), f2b = _mm256_setzero_ps();
    for (int64_t u = 0; u < units; u++) {
        __m256i n0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + NRV * 36));
        __m256i n1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + NRV * 36 + 32));
        __m256i s0a = n0, s0b = n1, s1a = n0, s1b = n1, s2a = n0, s2b = n1;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + g * NRV * 4));
            __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + g * NRV * 4 + 32));
#define ROW(i)                                                          \
    {                                                                   \
        __m256i av = _mm256_set1_epi32(lp_ld32(a + (i) * 32 + g * 4)); \
        s##i##a = _mm256_dpbusd_avx_epi32(s##i##a, av, b0);             \
        s##i##b = _mm256_dpbusd_avx_epi32(s##i##b, av, b1);             \
    }
            ROW(0) ROW(1) ROW(2)
#undef ROW
        }
        __m256 d0 = _mm256_loadu_ps((const float *)(const void *)(b + NRV * 32));
        __m256 d1 = _mm256_loadu_ps((const float *)(const void *)(b + NRV * 32 + 32));
        const uint8_t *ad = a + MRV * 32;
#define ROW(i)                                                                                   \
    {                                                                                            \
        float dai;                                                                               \
        memcpy(&dai, ad + (i) * 4, 4);                                                           \
        __m256 da = _mm256_set1_ps(dai);                                                         \
        f##i##a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s##i##a), _mm256_mul_ps(da, d0), f##i##a);  \
        f##i##b = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s##i##b), _mm256_mul_ps(da, d1), f##i##b);  \
    }
        ROW(0) ROW(1) ROW(2)
#undef ROW
        a += MRV * 36;
        b += NRV * 40;
    }
    cpu_epilogue e1 = *e;
    for (int i = 0; i < MRV; i++) {
        __m256 va = i == 0 ? f0a : i == 1 ? f1a : f2a, vb = i == 0 ? f0b : i == 1 ? f1b : f2b;
        e1.bias_n = e->bias_n;
        lp256_store(c + i * ldc, va, &e1);
        e1.bias_n = e->bias_n ? e->bias_n + 8 : NULL;
        lp256_store(c + i * ldc + 8, vb, &e1);
    }
}

const cpu_lp_kernel cpu_lp_int8_avxvnni = {"int8-avxvnni-3x16", CPU_PREC_INT8, CPU_LPA_U8, MRV, NRV, 1,
                                           lp_int8_avxvnni};
#else
const cpu_lp_kernel cpu_lp_int8_avxvnni = {"int8-avxvnni-unavailable", CPU_PREC_INT8, CPU_LPA_U8, 3, 16, 1, NULL};
#endif
