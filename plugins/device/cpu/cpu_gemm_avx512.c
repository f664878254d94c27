/* cpu_gemm_avx512.c - 14x32 f32 micro-kernel for AVX-512F (and its 28x16
 * and 8x32 variants for narrow products).
 * 28 accumulators + 2 B vectors + 1 broadcast fill 31 of the 32 zmm
 * registers: each k step does 28 FMAs for 2 vector loads and 14
 * broadcasts, enough to keep both FMA ports busy from L1/L2. */
#include "cpu_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MR 14
#define NR 32
#define T512 __attribute__((target("avx512f,fma")))

T512 static inline void cpu_avx512_store_row(float *cr, __m512 v0, __m512 v1, const cpu_epilogue *e, int i,
                                             __m512 bn0, __m512 bn1) {
    if (e->accumulate) {
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr));
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16));
    }
    if (e->last) {
        __m512 alpha = _mm512_set1_ps(e->alpha);
        __m512 bm = _mm512_set1_ps(e->bias_m ? e->bias_m[i] : 0.0f);
        v0 = _mm512_fmadd_ps(v0, alpha, _mm512_add_ps(bn0, bm));
        v1 = _mm512_fmadd_ps(v1, alpha, _mm512_add_ps(bn1, bm));
    }
    _mm512_storeu_ps(cr, v0);
    _mm512_storeu_ps(cr + 16, v1);
}

/* One body for every 32-wide kernel: ROWS(X) applies X to each row index,
 * so the 14-row and 8-row kernels differ only in their row lists. Each row
 * keeps two accumulators (columns 0-15 and 16-31). */
#define K32_DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps();
#define K32_FMA(i)                                      \
    {                                                   \
        __m512 av = _mm512_set1_ps(a[i]);               \
        c##i##a = _mm512_fmadd_ps(av, b0, c##i##a);     \
        c##i##b = _mm512_fmadd_ps(av, b1, c##i##b);     \
    }
#define K32_STORE(i) cpu_avx512_store_row(c + (i) * ldc, c##i##a, c##i##b, e, i, bn0, bn1);
#define CPU_AVX512_KERNEL_N32(fn, mr, ROWS)                                                             \
    T512 static void fn(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,             \
                        const cpu_epilogue *e) {                                                        \
        ROWS(K32_DECL)                                                                                  \
        for (int64_t k = 0; k < kc; k++) {                                                              \
            __m512 b0 = _mm512_load_ps(b);                                                              \
            __m512 b1 = _mm512_load_ps(b + 16);                                                         \
            ROWS(K32_FMA)                                                                               \
            a += (mr);                                                                                  \
            b += NR;                                                                                    \
        }                                                                                               \
        __m512 bn0 = _mm512_setzero_ps(), bn1 = _mm512_setzero_ps();                                    \
        if (e->last && e->bias_n) {                                                                     \
            bn0 = _mm512_loadu_ps(e->bias_n);                                                           \
            bn1 = _mm512_loadu_ps(e->bias_n + 16);                                                      \
        }                                                                                               \
        ROWS(K32_STORE)                                                                                 \
    }

#define ROWS14(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

CPU_AVX512_KERNEL_N32(cpu_ukernel_avx512, MR, ROWS14)

const cpu_kernel cpu_kernel_avx512 = {"avx512-14x32", MR, NR, cpu_ukernel_avx512};

/* 8x32 variant for products with few rows (convolutions to 32 or 64
 * channels, as ESRGAN's dense blocks, or to 3 or 4 as the VAE's and UNet's
 * last layers): 14 rows would pad 32 to 42, 8 pad it to nothing. 16
 * accumulators still hide the FMA latency on two ports. */
#define MR8 8

CPU_AVX512_KERNEL_N32(cpu_ukernel_avx512_m8, MR8, ROWS8)

const cpu_kernel cpu_kernel_avx512_m8 = {"avx512-8x32", MR8, NR, cpu_ukernel_avx512_m8};

/* 28x16 variant for narrow N (attention's P V with head dim 40, N = 40
 * or 80): one B vector per k, so N pads to 16 instead of 32. */
#define MR16 28

T512 static inline void cpu_avx512_store_row16(float *cr, __m512 v, const cpu_epilogue *e, int i, __m512 bn) {
    if (e->accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(cr));
    if (e->last) {
        __m512 bm = _mm512_set1_ps(e->bias_m ? e->bias_m[i] : 0.0f);
        v = _mm512_fmadd_ps(v, _mm512_set1_ps(e->alpha), _mm512_add_ps(bn, bm));
    }
    _mm512_storeu_ps(cr, v);
}

T512 static void cpu_ukernel_avx512_n16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                        const cpu_epilogue *e) {
#define DECL(i) __m512 c##i = _mm512_setzero_ps();
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5) DECL(6) DECL(7) DECL(8) DECL(9) DECL(10) DECL(11) DECL(12)
    DECL(13) DECL(14) DECL(15) DECL(16) DECL(17) DECL(18) DECL(19) DECL(20) DECL(21) DECL(22) DECL(23) DECL(24)
    DECL(25) DECL(26) DECL(27)
#undef DECL
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b);
#define ROW(i) c##i = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, c##i);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7) ROW(8) ROW(9) ROW(10) ROW(11) ROW(12) ROW(13)
        ROW(14) ROW(15) ROW(16) ROW(17) ROW(18) ROW(19) ROW(20) ROW(21) ROW(22) ROW(23) ROW(24) ROW(25) ROW(26)
        ROW(27)
#undef ROW
        a += MR16;
        b += 16;
    }
    __m512 bn = e->last && e->bias_n ? _mm512_loadu_ps(e->bias_n) : _mm512_setzero_ps();
#define STORE(i) cpu_avx512_store_row16(c + (i) * ldc, c##i, e, i, bn);
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7) STORE(8) STORE(9) STORE(10)
    STORE(11) STORE(12) STORE(13) STORE(14) STORE(15) STORE(16) STORE(17) STORE(18) STORE(19) STORE(20)
    STORE(21) STORE(22) STORE(23) STORE(24) STORE(25) STORE(26) STORE(27)
#undef STORE
}

const cpu_kernel cpu_kernel_avx512_n16 = {"avx512-28x16", MR16, 16, cpu_ukernel_avx512_n16};
#else
const cpu_kernel cpu_kernel_avx512 = {"avx512-unavailable", 0, 0, NULL};
const cpu_kernel cpu_kernel_avx512_n16 = {"avx512-unavailable", 0, 0, NULL};
const cpu_kernel cpu_kernel_avx512_m8 = {"avx512-unavailable", 0, 0, NULL};
#endif
