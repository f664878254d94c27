/* cpu_gemm_avx2.c - 6x16 f32 micro-kernel for AVX2+FMA: 12 accumulators,
 * 2 B vectors and 1 broadcast in the 16 ymm registers. */
#include "cpu_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MR 6
#define NR 16
#define T256 __attribute__((target("avx2,fma")))

T256 static inline void cpu_avx2_store_row(float *cr, __m256 v0, __m256 v1, const cpu_epilogue *e, int i,
                                           __m256 bn0, __m256 bn1) {
    if (e->accumulate) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
    }
    if (e->last) {
        __m256 alpha = _mm256_set1_ps(e->alpha);
        __m256 bm = _mm256_set1_ps(e->bias_m ? e->bias_m[i] : 0.0f);
        v0 = _mm256_fmadd_ps(v0, alpha, _mm256_add_ps(bn0, bm));
        v1 = _mm256_fmadd_ps(v1, alpha, _mm256_add_ps(bn1, bm));
    }
    _mm256_storeu_ps(cr, v0);
    _mm256_storeu_ps(cr + 8, v1);
}

T256 static void cpu_ukernel_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                  const cpu_epilogue *e) {
#define DECL(i) __m256 c##i##a = _mm256_setzero_ps(), c##i##b = _mm256_setzero_ps();
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5)
#undef DECL
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b);
        __m256 b1 = _mm256_load_ps(b + 8);
#define ROW(i)                                          \
    {                                                   \
        __m256 av = _mm256_broadcast_ss(a + (i));       \
        c##i##a = _mm256_fmadd_ps(av, b0, c##i##a);     \
        c##i##b = _mm256_fmadd_ps(av, b1, c##i##b);     \
    }
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
        a += MR;
        b += NR;
    }
    __m256 bn0 = _mm256_setzero_ps(), bn1 = _mm256_setzero_ps();
    if (e->last && e->bias_n) {
        bn0 = _mm256_loadu_ps(e->bias_n);
        bn1 = _mm256_loadu_ps(e->bias_n + 8);
    }
#define STORE(i) cpu_avx2_store_row(c + (i) * ldc, c##i##a, c##i##b, e, i, bn0, bn1);
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
}

const cpu_kernel cpu_kernel_avx2 = {"avx2-6x16", MR, NR, cpu_ukernel_avx2};
#else
const cpu_kernel cpu_kernel_avx2 = {"avx2-unavailable", 0, 0, NULL};
#endif
