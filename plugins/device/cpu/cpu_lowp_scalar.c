/* cpu_lowp_scalar.c - the portable int8 micro-kernel (4x8): the same
 * arithmetic as the SIMD kernels (exact int32 sums per block of 32, then
 * d_a * d_w in f32), for CPUs without AVX2. */
#include "cpu_internal.h"

#define MR 4
#define NR 8

static void lp_int8_scalar(int64_t units, const uint8_t *a, const uint8_t *b, float *c, int64_t ldc,
                           const cpu_epilogue *e) {
    float acc[MR][NR] = {{0}};
    for (int64_t u = 0; u < units; u++) {
        const int8_t *qa = (const int8_t *)a, *qb = (const int8_t *)b;
        const float *da = (const float *)(const void *)(a + MR * 32);
        const float *db = (const float *)(const void *)(b + NR * 32);
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) {
                int32_t s = 0;
                for (int t = 0; t < 32; t++) s += (int32_t)qa[i * 32 + t] * qb[(t / 4) * NR * 4 + j * 4 + t % 4];
                acc[i][j] += (float)s * (da[i] * db[j]);
            }
        a += MR * 36;
        b += NR * 40;
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float v = acc[i][j] + (e->accumulate ? c[i * ldc + j] : 0.0f);
            if (e->last) v = v * e->alpha + (e->bias_n ? e->bias_n[j] : 0.0f);
            c[i * ldc + j] = v;
        }
}

const cpu_lp_kernel cpu_lp_int8_scalar = {"int8-scalar-4x8", CPU_PREC_INT8, CPU_LPA_S8, MR, NR, 0, lp_int8_scalar};
