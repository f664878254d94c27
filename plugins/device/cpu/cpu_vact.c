/* cpu_vact.c - the activations (GELU, GELU_TANH, QUICK_GELU, SILU, GEGLU's
 * gate) element by element: the portable definitions, and AVX-512 / AVX2
 * rows for contiguous data, where libm erff/expf per element cost more than
 * the feed-forward GEMM around them.
 *
 * The sigmoid forms share one vector shape, x / (1 + exp(-k(x))):
 *   SILU        k(x) = x
 *   QUICK_GELU  k(x) = 1.702 x
 *   GELU_TANH   k(x) = 2 * 0.7978845608 (x + 0.044715 x^3), because
 *               0.5 (1 + tanh(u)) = sigmoid(2u) exactly.
 * GELU uses erf (cpu_vmath.h). */
#include "cpu_internal.h"

#include <math.h>

#define CPU_SQRT1_2 0.70710678118654752f
#define CPU_SQRT_2_PI 0.79788456080286536f
#define CPU_QUICK_GELU_K 1.702f

float cpu_gelu1(float v) { return 0.5f * v * (1.0f + erff(v * CPU_SQRT1_2)); }

static float cpu_gelu_tanh1(float v) { return 0.5f * v * (1.0f + tanhf(CPU_SQRT_2_PI * (v + 0.044715f * v * v * v))); }

static float cpu_sigmoid_mul(float v, float k) { return v / (1.0f + expf(-k * v)); }

float cpu_act1(sdrt_op_kind kind, float v) {
    switch (kind) {
    case SDRT_OP_GELU: return cpu_gelu1(v);
    case SDRT_OP_GELU_TANH: return cpu_gelu_tanh1(v);
    case SDRT_OP_QUICK_GELU: return cpu_sigmoid_mul(v, CPU_QUICK_GELU_K);
    default: return cpu_sigmoid_mul(v, 1.0f); /* SILU */
    }
}

static void cpu_act_row_scalar(sdrt_op_kind kind, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = cpu_act1(kind, x[i]);
}

static void cpu_geglu_row_scalar(const float *a, const float *g, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * cpu_gelu1(g[i]);
}

#if defined(__x86_64__)
#include "cpu_vmath.h"

/* ---- AVX-512 ---------------------------------------------------------------- */

T512 static inline __m512 cpu_act512(sdrt_op_kind kind, __m512 x) {
    if (kind == SDRT_OP_GELU) {
        __m512 e = cpu_erf512(_mm512_mul_ps(x, _mm512_set1_ps(CPU_SQRT1_2)));
        return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    }
    __m512 k;
    if (kind == SDRT_OP_GELU_TANH) {
        __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        k = _mm512_mul_ps(_mm512_set1_ps(2.0f * CPU_SQRT_2_PI), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
    } else {
        k = kind == SDRT_OP_QUICK_GELU ? _mm512_mul_ps(_mm512_set1_ps(CPU_QUICK_GELU_K), x) : x;
    }
    __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), cpu_exp512(_mm512_sub_ps(_mm512_setzero_ps(), k)));
    return _mm512_div_ps(x, den);
}

T512 static void cpu_act_row_avx512(sdrt_op_kind kind, const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, cpu_act512(kind, _mm512_loadu_ps(x + i)));
    if (i == n) return;
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, cpu_act512(kind, _mm512_maskz_loadu_ps(m, x + i)));
}

T512 static void cpu_geglu_row_avx512(const float *a, const float *g, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gv = cpu_act512(SDRT_OP_GELU, _mm512_loadu_ps(g + i));
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(a + i), gv));
    }
    if (i == n) return;
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    __m512 gv = cpu_act512(SDRT_OP_GELU, _mm512_maskz_loadu_ps(m, g + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + i), gv));
}

/* ---- AVX2 (tails in scalar) --------------------------------------------------- */

T256 static inline __m256 cpu_act256(sdrt_op_kind kind, __m256 x) {
    if (kind == SDRT_OP_GELU) {
        __m256 e = cpu_erf256(_mm256_mul_ps(x, _mm256_set1_ps(CPU_SQRT1_2)));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
    __m256 k;
    if (kind == SDRT_OP_GELU_TANH) {
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        k = _mm256_mul_ps(_mm256_set1_ps(2.0f * CPU_SQRT_2_PI), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
    } else {
        k = kind == SDRT_OP_QUICK_GELU ? _mm256_mul_ps(_mm256_set1_ps(CPU_QUICK_GELU_K), x) : x;
    }
    __m256 den = _mm256_add_ps(_mm256_set1_ps(1.0f), cpu_exp256(_mm256_sub_ps(_mm256_setzero_ps(), k)));
    return _mm256_div_ps(x, den);
}

T256 static void cpu_act_row_avx2(sdrt_op_kind kind, const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, cpu_act256(kind, _mm256_loadu_ps(x + i)));
    cpu_act_row_scalar(kind, x + i, y + i, n - i);
}

T256 static void cpu_geglu_row_avx2(const float *a, const float *g, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = cpu_act256(SDRT_OP_GELU, _mm256_loadu_ps(g + i));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), gv));
    }
    cpu_geglu_row_scalar(a + i, g + i, y + i, n - i);
}
#endif

/* ---- dispatch ------------------------------------------------------------------- */

/* SDRT_CPU_KERNEL=scalar also forces the portable activations, so tests can
 * compare the paths on one machine. */
static int cpu_vact_level(void) {
    const cpu_kernel *k = cpu_kernel_best();
    if (k == &cpu_kernel_avx512) return 2;
    if (k == &cpu_kernel_avx2) return 1;
    return 0;
}

void cpu_act_row_f32_level(int level, sdrt_op_kind kind, const float *x, float *y, int64_t n) {
#if defined(__x86_64__)
    const cpu_features *f = cpu_features_get();
    if (level >= 2 && f->avx512f) {
        cpu_act_row_avx512(kind, x, y, n);
        return;
    }
    if (level >= 1 && f->avx2 && f->fma) {
        cpu_act_row_avx2(kind, x, y, n);
        return;
    }
#endif
    (void)level;
    cpu_act_row_scalar(kind, x, y, n);
}

void cpu_act_row_f32(sdrt_op_kind kind, const float *x, float *y, int64_t n) {
    cpu_act_row_f32_level(cpu_vact_level(), kind, x, y, n);
}

void cpu_geglu_row_f32(const float *a, const float *g, float *y, int64_t n) {
#if defined(__x86_64__)
    int level = cpu_vact_level();
    if (level >= 2) {
        cpu_geglu_row_avx512(a, g, y, n);
        return;
    }
    if (level >= 1) {
        cpu_geglu_row_avx2(a, g, y, n);
        return;
    }
#endif
    cpu_geglu_row_scalar(a, g, y, n);
}
