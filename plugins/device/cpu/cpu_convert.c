/* cpu_convert.c - dtype conversion for packing and COPY. Weights arrive as
 * F16/BF16 and are widened panel by panel; the F16C path matters because a
 * scalar half conversion costs as much as several FMAs per element. */
#include "cpu_internal.h"

#include <string.h>

#include "sdrt/half.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx,f16c"))) static void cpu_f16_row_f16c(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = sdrt_f16_to_f32(src[i]);
}
#endif

static void cpu_f16_row_scalar(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = sdrt_f16_to_f32(src[i]);
}

static void cpu_bf16_row(float *dst, const uint16_t *src, int64_t n) {
    /* A shift: the compiler vectorises this loop. */
    uint32_t *d = (uint32_t *)(void *)dst;
    for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

void cpu_convert_row_f32(float *dst, const void *src, sdrt_dtype dtype, int64_t n) {
    switch (dtype) {
    case SDRT_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    case SDRT_DTYPE_BF16:
        cpu_bf16_row(dst, src, n);
        return;
    case SDRT_DTYPE_F16:
#if defined(__x86_64__)
        if (cpu_features_get()->f16c) {
            cpu_f16_row_f16c(dst, src, n);
            return;
        }
#endif
        cpu_f16_row_scalar(dst, src, n);
        return;
    default:
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
}

size_t cpu_dtype_size(sdrt_dtype dtype) {
    switch (dtype) {
    case SDRT_DTYPE_F32: return 4;
    case SDRT_DTYPE_F16: return 2;
    case SDRT_DTYPE_BF16: return 2;
    default: return 0;
    }
}

float cpu_load_f32(const void *base, sdrt_dtype dtype, int64_t index) {
    switch (dtype) {
    case SDRT_DTYPE_F32: return ((const float *)base)[index];
    case SDRT_DTYPE_F16: return sdrt_f16_to_f32(((const uint16_t *)base)[index]);
    case SDRT_DTYPE_BF16: return sdrt_bf16_to_f32(((const uint16_t *)base)[index]);
    default: return 0.0f;
    }
}

void cpu_store_f32(void *base, sdrt_dtype dtype, int64_t index, float v) {
    switch (dtype) {
    case SDRT_DTYPE_F32: ((float *)base)[index] = v; return;
    case SDRT_DTYPE_F16: ((uint16_t *)base)[index] = sdrt_f32_to_f16(v); return;
    case SDRT_DTYPE_BF16: ((uint16_t *)base)[index] = sdrt_f32_to_bf16(v); return;
    default: return;
    }
}
