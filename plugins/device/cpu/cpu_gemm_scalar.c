/* cpu_gemm_scalar.c - portable 4x8 micro-kernel: plain C the compiler may
 * vectorise with the baseline ISA; used where no SIMD kernel applies. */
#include "cpu_internal.h"

#define MR 4
#define NR 8

static void cpu_ukernel_scalar(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                               const cpu_epilogue *e) {
    float acc[MR][NR] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
        a += MR;
        b += NR;
    }
    for (int i = 0; i < MR; i++) {
        float *cr = c + i * ldc;
        for (int j = 0; j < NR; j++) {
            float v = acc[i][j] + (e->accumulate ? cr[j] : 0.0f);
            if (e->last) {
                v = v * e->alpha + (e->bias_n ? e->bias_n[j] : 0.0f) + (e->bias_m ? e->bias_m[i] : 0.0f);
            }
            cr[j] = v;
        }
    }
}

const cpu_kernel cpu_kernel_scalar = {"scalar-4x8", MR, NR, cpu_ukernel_scalar};
