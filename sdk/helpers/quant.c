/* quant.c - ggml block formats, transcribed from ggml-quants.c's reference
 * (dequantize_row_*, quantize_row_*_ref). The arithmetic keeps ggml's
 * order of float operations and is compiled without FMA contraction
 * (sdk/CMakeLists.txt) so that results are bit-identical to ggml and to
 * the `gguf` Python package; the bytes are read little-endian as GGUF
 * stores them. */
#include "sdrt/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/half.h"

#define QK 32
#define QK_K 256

static float f16_at(const uint8_t *p) { return sdrt_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void f16_put(uint8_t *p, float v) {
    uint16_t h = sdrt_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* ---- 32-element blocks ---------------------------------------------------- */

static void dq_q4_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((b[2 + j] & 0x0F) - 8) * d;
        y[j + QK / 2] = (float)((b[2 + j] >> 4) - 8) * d;
    }
}

static void dq_q4_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)(b[4 + j] & 0x0F) * d + m;
        y[j + QK / 2] = (float)(b[4 + j] >> 4) * d + m;
    }
}

static void dq_q5_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    uint32_t qh = u32_at(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < QK / 2; j++) {
        int xh0 = (int)(((qh >> j) << 4) & 0x10), xh1 = (int)((qh >> (j + 12)) & 0x10);
        y[j] = (float)(((qs[j] & 0x0F) | xh0) - 16) * d;
        y[j + QK / 2] = (float)(((qs[j] >> 4) | xh1) - 16) * d;
    }
}

static void dq_q5_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    uint32_t qh = u32_at(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < QK / 2; j++) {
        int xh0 = (int)(((qh >> j) << 4) & 0x10), xh1 = (int)((qh >> (j + 12)) & 0x10);
        y[j] = (float)((qs[j] & 0x0F) | xh0) * d + m;
        y[j + QK / 2] = (float)((qs[j] >> 4) | xh1) * d + m;
    }
}

static void dq_q8_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* ---- 256-element K blocks ------------------------------------------------- */

static void dq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *q = b + 16;
    float d = f16_at(b + 80), min = f16_at(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            uint8_t sc = scales[is++];
            float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
            for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
            sc = scales[is++];
            dl = d * (float)(sc & 0xF);
            ml = min * (float)(sc >> 4);
            for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16] >> shift) & 3) - ml;
            shift += 2;
        }
        q += 32;
    }
}

static void dq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *q = b + 32, *sc12 = b + 96;
    float d_all = f16_at(b + 108);
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4] = {u32_at(sc12), u32_at(sc12 + 4), u32_at(sc12 + 8), 0};
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    for (int i = 0; i < 16; i++) scales[i] = (int8_t)(uint8_t)(aux[i / 4] >> (8 * (i % 4)));
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            float dl = d_all * (float)(scales[is++] - 32);
            for (int l = 0; l < 16; l++)
                *y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
            dl = d_all * (float)(scales[is++] - 32);
            for (int l = 0; l < 16; l++)
                *y++ = dl * (float)(((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
            shift += 2;
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

static void dq_q4_k(const uint8_t *b, float *y) {
    float d = f16_at(b), min = f16_at(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    int is = 0;
    for (int j = 0; j < QK_K; j += 64) {
        uint8_t sc, m;
        scale_min_k4(is + 0, scales, &sc, &m);
        float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        q += 32;
        is += 2;
    }
}

static void dq_q5_k(const uint8_t *b, float *y) {
    float d = f16_at(b), min = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < QK_K; j += 64) {
        uint8_t sc, m;
        scale_min_k4(is + 0, scales, &sc, &m);
        float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        ql += 32;
        is += 2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16_at(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

/* ---- AVX2 versions of the common formats ------------------------------------
 * GEMM packing dequantises every weight block once per use, so the scalar
 * loops above cost more than the arithmetic they feed. Same operations per
 * element (an exact int -> float conversion, one multiply, one add), so the
 * results stay bit-identical to the scalar code. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define QUANT_AVX2 __attribute__((target("avx2")))

QUANT_AVX2 static void dq_q8_0_avx2(const uint8_t *b, float *y) {
    __m256 d = _mm256_set1_ps(f16_at(b));
    for (int j = 0; j < QK; j += 8) {
        __m128i q = _mm_loadl_epi64((const __m128i *)(const void *)(b + 2 + j));
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
    }
}

QUANT_AVX2 static void dq_q4_0_avx2(const uint8_t *b, float *y) {
    __m256 d = _mm256_set1_ps(f16_at(b));
    __m256i eight = _mm256_set1_epi32(8), lo4 = _mm256_set1_epi32(0x0F);
    for (int j = 0; j < QK / 2; j += 8) {
        __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + 2 + j)));
        __m256i lo = _mm256_sub_epi32(_mm256_and_si256(q, lo4), eight);
        __m256i hi = _mm256_sub_epi32(_mm256_srli_epi32(q, 4), eight);
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), d));
        _mm256_storeu_ps(y + j + QK / 2, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), d));
    }
}

QUANT_AVX2 static void dq_q4_1_avx2(const uint8_t *b, float *y) {
    __m256 d = _mm256_set1_ps(f16_at(b)), m = _mm256_set1_ps(f16_at(b + 2));
    __m256i lo4 = _mm256_set1_epi32(0x0F);
    for (int j = 0; j < QK / 2; j += 8) {
        __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + 4 + j)));
        __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(q, lo4)), hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(q, 4));
        _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_mul_ps(lo, d), m));
        _mm256_storeu_ps(y + j + QK / 2, _mm256_add_ps(_mm256_mul_ps(hi, d), m));
    }
}

static int quant_has_avx2(void) {
    static int v = -1;
    int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (r < 0) {
        __builtin_cpu_init();
        /* SDRT_QUANT_SCALAR=1: the portable code only (tests compare both). */
        r = __builtin_cpu_supports("avx2") && !getenv("SDRT_QUANT_SCALAR");
        __atomic_store_n(&v, r, __ATOMIC_RELAXED);
    }
    return r;
}
#endif

typedef void (*dq_block_fn)(const uint8_t *b, float *y);

static dq_block_fn dq_for(sdrt_dtype dt) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (quant_has_avx2()) {
        if (dt == SDRT_DTYPE_Q8_0) return dq_q8_0_avx2;
        if (dt == SDRT_DTYPE_Q4_0) return dq_q4_0_avx2;
        if (dt == SDRT_DTYPE_Q4_1) return dq_q4_1_avx2;
    }
#endif
    switch (dt) {
    case SDRT_DTYPE_Q4_0: return dq_q4_0;
    case SDRT_DTYPE_Q4_1: return dq_q4_1;
    case SDRT_DTYPE_Q5_0: return dq_q5_0;
    case SDRT_DTYPE_Q5_1: return dq_q5_1;
    case SDRT_DTYPE_Q8_0: return dq_q8_0;
    case SDRT_DTYPE_Q2_K: return dq_q2_k;
    case SDRT_DTYPE_Q3_K: return dq_q3_k;
    case SDRT_DTYPE_Q4_K: return dq_q4_k;
    case SDRT_DTYPE_Q5_K: return dq_q5_k;
    case SDRT_DTYPE_Q6_K: return dq_q6_k;
    default: return NULL;
    }
}

int sdrt_dequant_row(sdrt_dtype dt, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    if (n < 0) return -1;
    switch (dt) {
    case SDRT_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case SDRT_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = f16_at(s + 2 * i);
        return 0;
    case SDRT_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = sdrt_bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return 0;
    default: break;
    }
    dq_block_fn fn = dq_for(dt);
    int64_t be = sdrt_dtype_block_elems(dt);
    if (!fn || n % be) return -1;
    size_t bb = sdrt_dtype_block_bytes(dt);
    for (int64_t i = 0; i < n / be; i++) fn(s + (size_t)i * bb, dst + i * be);
    return 0;
}

void sdrt_dequant_range(sdrt_dtype dt, const void *row, int64_t first, int64_t count, float *dst, float *scratch) {
    dq_block_fn fn = dq_for(dt);
    int64_t be = sdrt_dtype_block_elems(dt);
    size_t bb = sdrt_dtype_block_bytes(dt);
    const uint8_t *r = row;
    int64_t e = first, end = first + count;
    while (e < end) {
        int64_t blk = e / be, off = e - blk * be, len = be - off < end - e ? be - off : end - e;
        if (off == 0 && len == be) {
            fn(r + (size_t)blk * bb, dst);
        } else {
            fn(r + (size_t)blk * bb, scratch);
            memcpy(dst, scratch + off, (size_t)len * sizeof(float));
        }
        dst += len;
        e += len;
    }
}

/* ---- quantisers (ggml quantize_row_*_ref) ---------------------------------- */

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    f16_put(b, d);
    for (int j = 0; j < QK; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* The element of largest magnitude, sign kept (first one on ties). */
static float signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static int clampi(int v, int hi) { return v < 0 ? 0 : v > hi ? hi : v; }

static void q_q4_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x) / -8, id = d ? 1.0f / d : 0.0f;
    f16_put(b, d);
    for (int j = 0; j < QK / 2; j++) {
        int x0 = clampi((int)(int8_t)(x[j] * id + 8.5f), 15), x1 = clampi((int)(int8_t)(x[QK / 2 + j] * id + 8.5f), 15);
        b[2 + j] = (uint8_t)(x0 | x1 << 4);
    }
}

static void minmax(const float *x, float *mn, float *mx) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < QK; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static void q_q4_1(const float *x, uint8_t *b) {
    float mn, mx;
    minmax(x, &mn, &mx);
    float d = (mx - mn) / ((1 << 4) - 1), id = d ? 1.0f / d : 0.0f;
    f16_put(b, d);
    f16_put(b + 2, mn);
    for (int j = 0; j < QK / 2; j++) {
        int x0 = clampi((int)(int8_t)((x[j] - mn) * id + 0.5f), 15);
        int x1 = clampi((int)(int8_t)((x[QK / 2 + j] - mn) * id + 0.5f), 15);
        b[4 + j] = (uint8_t)(x0 | x1 << 4);
    }
}

static void q_q5_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x) / -16, id = d ? 1.0f / d : 0.0f;
    f16_put(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        int x0 = clampi((int)(int8_t)(x[j] * id + 16.5f), 31), x1 = clampi((int)(int8_t)(x[QK / 2 + j] * id + 16.5f), 31);
        b[6 + j] = (uint8_t)((x0 & 0x0F) | ((x1 & 0x0F) << 4));
        qh |= (uint32_t)((x0 & 0x10) >> 4) << j;
        qh |= (uint32_t)((x1 & 0x10) >> 4) << (j + QK / 2);
    }
    for (int i = 0; i < 4; i++) b[2 + i] = (uint8_t)(qh >> (8 * i));
}

static void q_q5_1(const float *x, uint8_t *b) {
    float mn, mx;
    minmax(x, &mn, &mx);
    float d = (mx - mn) / ((1 << 5) - 1), id = d ? 1.0f / d : 0.0f;
    f16_put(b, d);
    f16_put(b + 2, mn);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        int x0 = clampi((int)(int8_t)((x[j] - mn) * id + 0.5f), 31);
        int x1 = clampi((int)(int8_t)((x[QK / 2 + j] - mn) * id + 0.5f), 31);
        b[8 + j] = (uint8_t)((x0 & 0x0F) | ((x1 & 0x0F) << 4));
        qh |= (uint32_t)((x0 & 0x10) >> 4) << j;
        qh |= (uint32_t)((x1 & 0x10) >> 4) << (j + QK / 2);
    }
    for (int i = 0; i < 4; i++) b[4 + i] = (uint8_t)(qh >> (8 * i));
}

/* q4_K: ggml's quantize_row_q4_K_ref (make_qkx2_quants: per 32-element
 * sub-block a weighted least-squares scale and min searched over 21
 * candidate scales, then 6-bit sub-scales under one f16 d and dmin).
 * Transcribed, not byte-compared: the gguf package has no K quantiser, so
 * the tests check its round trip and decode it with the verified
 * dequantiser. */
static int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_mad = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        float diff = scale * L[i] + min - x[i];
        best_mad += weights[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                mad += weights[i] * (diff * diff);
            }
            if (mad < best_mad) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static void q_q4_k(const float *x, uint8_t *b) {
    uint8_t L[QK_K], Laux[32], *sc12 = b + 4, *q = b + 16;
    float weights[32], mins[QK_K / 32], scales[QK_K / 32], max_scale = 0, max_min = 0;
    memset(b, 0, 144);
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]), lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sc12[j] = ls;
            sc12[j + 4] = lm;
        } else {
            sc12[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc12[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc12[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    f16_put(b, max_scale / 63.f);
    f16_put(b + 2, max_min / 63.f);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        scale_min_k4(j, sc12, &sc, &m);
        const float d = f16_at(b) * sc;
        if (!d) continue;
        const float dm = f16_at(b + 2) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)(l < 0 ? 0 : l > 15 ? 15 : l);
        }
    }
    for (int j = 0; j < QK_K; j += 64) {
        for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

typedef void (*q_block_fn)(const float *x, uint8_t *b);

static q_block_fn q_for(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_Q4_0: return q_q4_0;
    case SDRT_DTYPE_Q4_1: return q_q4_1;
    case SDRT_DTYPE_Q5_0: return q_q5_0;
    case SDRT_DTYPE_Q5_1: return q_q5_1;
    case SDRT_DTYPE_Q8_0: return q_q8_0;
    case SDRT_DTYPE_Q4_K: return q_q4_k;
    default: return NULL;
    }
}

int sdrt_quant_can_write(sdrt_dtype dt) {
    return dt == SDRT_DTYPE_F32 || dt == SDRT_DTYPE_F16 || dt == SDRT_DTYPE_BF16 || q_for(dt) != NULL;
}

int sdrt_quant_row(sdrt_dtype dt, const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    if (n < 0) return -1;
    switch (dt) {
    case SDRT_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case SDRT_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) f16_put(d + 2 * i, src[i]);
        return 0;
    case SDRT_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = sdrt_f32_to_bf16(src[i]);
            d[2 * i] = (uint8_t)h;
            d[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return 0;
    default: break;
    }
    q_block_fn fn = q_for(dt);
    int64_t be = sdrt_dtype_block_elems(dt);
    if (!fn || n % be) return -1;
    size_t bb = sdrt_dtype_block_bytes(dt);
    for (int64_t i = 0; i < n / be; i++) fn(src + i * be, d + (size_t)i * bb);
    return 0;
}

static const char *const GGML_NAMES[SDRT_DTYPE_COUNT_] = {
    [SDRT_DTYPE_F32] = "f32",   [SDRT_DTYPE_F16] = "f16",   [SDRT_DTYPE_BF16] = "bf16",
    [SDRT_DTYPE_Q4_0] = "q4_0", [SDRT_DTYPE_Q4_1] = "q4_1", [SDRT_DTYPE_Q5_0] = "q5_0",
    [SDRT_DTYPE_Q5_1] = "q5_1", [SDRT_DTYPE_Q8_0] = "q8_0", [SDRT_DTYPE_Q2_K] = "q2_K",
    [SDRT_DTYPE_Q3_K] = "q3_K", [SDRT_DTYPE_Q4_K] = "q4_K", [SDRT_DTYPE_Q5_K] = "q5_K",
    [SDRT_DTYPE_Q6_K] = "q6_K",
};

const char *sdrt_dtype_ggml_name(sdrt_dtype dt) { return (unsigned)dt < SDRT_DTYPE_COUNT_ ? GGML_NAMES[dt] : NULL; }

int sdrt_dtype_from_ggml_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < SDRT_DTYPE_COUNT_; i++)
        if (GGML_NAMES[i] && strcmp(GGML_NAMES[i], name) == 0) return i;
    return -1;
}
