/* cpu_lowp_avx512.c - low-precision micro-kernels for AVX-512:
 *  - int8 6x32 with VNNI: per block of 32 along k, 8 steps of vpdpbusd
 *    (u8 activations q+128 x s8 weights, 4 products per int32 lane) into
 *    12 int32 accumulators that start at -128*sum(q_w) (which removes the
 *    +128 offset exactly), then one convert and one FMA by d_a * d_w into
 *    12 f32 accumulators: 27 of the 32 zmm registers.
 *  - bf16 14x32 with vdpbf16ps: the f32 kernel's shape, two products per
 *    f32 lane and instruction (pairs of k), 28 f32 accumulators. */
#include "cpu_internal.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define TV __attribute__((target("avx512f,avx512bw,avx512vnni,fma")))
#define TB __attribute__((target("avx512f,avx512bw,avx512bf16,fma")))

static inline int32_t lp_ld32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* One row of the epilogue: (acc [+ c]) then, on the last slice,
 * c * alpha + bias_n. */
__attribute__((target("avx512f,fma"))) static inline void lp512_store(float *cr, __m512 v0, __m512 v1,
                                                                      const cpu_epilogue *e) {
    if (e->accumulate) {
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr));
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16));
    }
    if (e->last) {
        __m512 alpha = _mm512_set1_ps(e->alpha);
        __m512 bn0 = e->bias_n ? _mm512_loadu_ps(e->bias_n) : _mm512_setzero_ps();
        __m512 bn1 = e->bias_n ? _mm512_loadu_ps(e->bias_n + 16) : _mm512_setzero_ps();
        v0 = _mm512_fmadd_ps(v0, alpha, bn0);
        v1 = _mm512_fmadd_ps(v1, alpha, bn1);
    }
    _mm512_storeu_ps(cr, v0);
    _mm512_storeu_ps(cr + 16, v1);
}

/* ---- int8, VNNI ------------------------------------------------------------------ */

#define MR 6
#define NR 32

TV static void lp_int8_vnni512(int64_t units, const uint8_t *a, const uint8_t *b, float *c, int64_t ldc,
                               const cpu_epilogue *e) {
#define DECL(i) __m512 f##i##a = _mm512_setzero_ps(), f##i##b = _mm512_setzero_ps();
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5)
#undef DECL
    for (int64_t u = 0; u < units; u++) {
        __m512i n0 = _mm512_loadu_si512(b + NR * 36), n1 = _mm512_loadu_si512(b + NR * 36 + 64);
#define DECL(i) __m512i s##i##a = n0, s##i##b = n1;
        DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5)
#undef DECL
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m512i b0 = _mm512_loadu_si512(b + g * NR * 4), b1 = _mm512_loadu_si512(b + g * NR * 4 + 64);
#define ROW(i)                                                          \
    {                                                                   \
        __m512i av = _mm512_set1_epi32(lp_ld32(a + (i) * 32 + g * 4)); \
        s##i##a = _mm512_dpbusd_epi32(s##i##a, av, b0);                 \
        s##i##b = _mm512_dpbusd_epi32(s##i##b, av, b1);                 \
    }
            ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
        }
        __m512 d0 = _mm512_loadu_ps(b + NR * 32), d1 = _mm512_loadu_ps(b + NR * 32 + 64);
        const uint8_t *ad = a + MR * 32;
#define ROW(i)                                                                                        \
    {                                                                                                 \
        float dai;                                                                                    \
        memcpy(&dai, ad + (i) * 4, 4);                                                                \
        __m512 da = _mm512_set1_ps(dai);                                                              \
        f##i##a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s##i##a), _mm512_mul_ps(da, d0), f##i##a);       \
        f##i##b = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s##i##b), _mm512_mul_ps(da, d1), f##i##b);       \
    }
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
        a += MR * 36;
        b += NR * 40;
    }
#define STORE(i) lp512_store(c + (i) * ldc, f##i##a, f##i##b, e);
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
}

const cpu_lp_kernel cpu_lp_int8_vnni512 = {"int8-vnni512-6x32", CPU_PREC_INT8, CPU_LPA_U8, MR, NR, 2,
                                           lp_int8_vnni512};
#undef MR

/* ---- bf16 -------------------------------------------------------------------------- */

#define MR 14

TB static void lp_bf16_avx512(int64_t units, const uint8_t *a, const uint8_t *b, float *c, int64_t ldc,
                              const cpu_epilogue *e) {
#define DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps();
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5) DECL(6)
    DECL(7) DECL(8) DECL(9) DECL(10) DECL(11) DECL(12) DECL(13)
#undef DECL
    for (int64_t u = 0; u < units; u++) {
#pragma GCC unroll 2
        for (int p = 0; p < 16; p++) {
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR * 4);
            __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * NR * 4 + 64);
#define ROW(i)                                                                     \
    {                                                                              \
        __m512bh av = (__m512bh)_mm512_set1_epi32(lp_ld32(a + (i) * 64 + p * 4)); \
        c##i##a = _mm512_dpbf16_ps(c##i##a, av, b0);                               \
        c##i##b = _mm512_dpbf16_ps(c##i##b, av, b1);                               \
    }
            ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6)
            ROW(7) ROW(8) ROW(9) ROW(10) ROW(11) ROW(12) ROW(13)
#undef ROW
        }
        a += MR * 64;
        b += NR * 64;
    }
#define STORE(i) lp512_store(c + (i) * ldc, c##i##a, c##i##b, e);
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6)
    STORE(7) STORE(8) STORE(9) STORE(10) STORE(11) STORE(12) STORE(13)
#undef STORE
}

const cpu_lp_kernel cpu_lp_bf16_avx512 = {"bf16-avx512-14x32", CPU_PREC_BF16, CPU_LPA_BF16, MR, NR, 2,
                                          lp_bf16_avx512};
#else
const cpu_lp_kernel cpu_lp_int8_vnni512 = {"int8-vnni512-unavailable", CPU_PREC_INT8, CPU_LPA_U8, 6, 32, 2, NULL};
const cpu_lp_kernel cpu_lp_bf16_avx512 = {"bf16-avx512-unavailable", CPU_PREC_BF16, CPU_LPA_BF16, 14, 32, 2, NULL};
#endif
