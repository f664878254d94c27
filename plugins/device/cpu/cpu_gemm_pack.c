/* cpu_gemm_pack.c - packing GEMM operands into the micro-kernels' panels.
 *
 * A panel of width w holds rows o..o+w of an operand as dst[k][w]. For an
 * operand whose rows are contiguous along k (Linear weights [N,K] used
 * transposed, activations [M,K], conv weights [O,C*kh*kw]) that is a
 * transpose. Done element by element it cost as much as the arithmetic
 * (one scattered store per element); the SIMD packers below move 16x16
 * (AVX-512) or 8x8 (AVX2) blocks through registers instead, widening
 * F16/BF16 on the way, and write the zero padding in the same stores.
 * Block-quantized weights (GGUF) are dequantised a chunk of k at a time
 * into a small staging tile, which the same transposing packers then
 * move: the weight is never widened as a whole. */
#include "cpu_internal.h"

#include <string.h>

#include "sdrt/quant.h"

#define CPU_PACK_CHUNK 512

/* ---- portable packers ---------------------------------------------------------- */

/* One row contiguous along k: widen it in chunks, then scatter it into its
 * lane of the panel. */
static void cpu_pack_row_kcontig(const cpu_operand *op, const char *base, size_t es, int64_t o, int64_t k0,
                                 int64_t kc, int w, float *d) {
    float tmp[CPU_PACK_CHUNK];
    const char *row = base + (size_t)(o * op->so + k0) * es;
    for (int64_t kk = 0; kk < kc; kk += CPU_PACK_CHUNK) {
        int64_t len = kc - kk < CPU_PACK_CHUNK ? kc - kk : CPU_PACK_CHUNK;
        const float *src = tmp;
        if (op->dtype == SDRT_DTYPE_F32) src = (const float *)(const void *)row + kk;
        else cpu_convert_row_f32(tmp, row + (size_t)kk * es, op->dtype, len);
        float *dk = d + kk * w;
        for (int64_t k = 0; k < len; k++) dk[k * w] = src[k];
    }
}

void cpu_pack_panel_kcontig_scalar(const cpu_operand *op, int64_t first, int rows, int64_t k0, int64_t kc, int w,
                                   float *d) {
    const char *base = op->data;
    size_t es = cpu_dtype_size(op->dtype);
    for (int r = 0; r < rows; r++) cpu_pack_row_kcontig(op, base, es, first + r, k0, kc, w, d + r);
    if (rows < w)
        for (int64_t k = 0; k < kc; k++) memset(d + k * w + rows, 0, (size_t)(w - rows) * sizeof(float));
}

/* ---- AVX-512: 16x16 blocks --------------------------------------------------------- */

#if defined(__x86_64__)
#include <immintrin.h>

#define T512 __attribute__((target("avx512f")))
#define T256 __attribute__((target("avx2,fma,f16c")))

/* 16 consecutive elements of a row as floats. */
T512 static inline __m512 cpu_pack_load16(const char *src, sdrt_dtype dt) {
    if (dt == SDRT_DTYPE_F32) return _mm512_loadu_ps(src);
    __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)src);
    if (dt == SDRT_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* BF16 */
}

/* The first n (< 16) elements, the rest zero: staged so no load runs past
 * the row. */
T512 static inline __m512 cpu_pack_load16_tail(const char *src, sdrt_dtype dt, size_t es, int n) {
    _Alignas(64) char tmp[64] = {0};
    memcpy(tmp, src, (size_t)n * es);
    return cpu_pack_load16(tmp, dt);
}

/* In-register transpose: v[r][c] -> v[c][r]. */
T512 static void cpu_transpose16(__m512 *v) {
    __m512 t[16], s[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    /* Per 128-bit lane, s[4g+e] = rows 4g..4g+3 of element e. */
    for (int g = 0; g < 4; g++) {
        s[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* Gather the 128-bit lanes: first rows 0-7 / 8-15, then all 16. */
    for (int e = 0; e < 4; e++) {
        t[e] = _mm512_shuffle_f32x4(s[e], s[4 + e], 0x88);
        t[4 + e] = _mm512_shuffle_f32x4(s[e], s[4 + e], 0xdd);
        t[8 + e] = _mm512_shuffle_f32x4(s[8 + e], s[12 + e], 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(s[8 + e], s[12 + e], 0xdd);
    }
    for (int e = 0; e < 8; e++) {
        v[e] = _mm512_shuffle_f32x4(t[e], t[8 + e], 0x88);
        v[8 + e] = _mm512_shuffle_f32x4(t[e], t[8 + e], 0xdd);
    }
}

/* Lanes [0, lanes) of a panel: `rows` (<= lanes <= 16) real rows from
 * `src` (row r at src + r*row_bytes), zeros above. */
T512 static void cpu_pack_group16(const char *src, size_t row_bytes, sdrt_dtype dt, size_t es, int rows, int lanes,
                                  int64_t kc, int w, float *d) {
    __mmask16 mask = (__mmask16)((1u << lanes) - 1);
    for (int64_t k = 0; k < kc; k += 16) {
        int kt = kc - k < 16 ? (int)(kc - k) : 16;
        __m512 v[16];
        for (int r = 0; r < 16; r++) {
            if (r >= rows) {
                v[r] = _mm512_setzero_ps();
                continue;
            }
            const char *p = src + r * row_bytes + (size_t)k * es;
            v[r] = kt == 16 ? cpu_pack_load16(p, dt) : cpu_pack_load16_tail(p, dt, es, kt);
        }
        cpu_transpose16(v);
        for (int t = 0; t < kt; t++) _mm512_mask_storeu_ps(d + (k + t) * w, mask, v[t]);
    }
}

T512 static void cpu_pack_panel_kcontig_avx512(const cpu_operand *op, int64_t first, int rows, int64_t k0,
                                               int64_t kc, int w, float *d) {
    size_t es = cpu_dtype_size(op->dtype), row_bytes = (size_t)op->so * es;
    const char *base = (const char *)op->data + (size_t)(first * op->so + k0) * es;
    for (int r0 = 0; r0 < w; r0 += 16) {
        int lanes = w - r0 < 16 ? w - r0 : 16;
        int real = rows - r0 < 0 ? 0 : rows - r0 < lanes ? rows - r0 : lanes;
        const char *src = real ? base + (size_t)r0 * row_bytes : base;
        cpu_pack_group16(src, row_bytes, op->dtype, es, real, lanes, kc, w, d + r0);
    }
}

/* ---- AVX2: 8x8 blocks ------------------------------------------------------------ */

T256 static inline __m256 cpu_pack_load8(const char *src, sdrt_dtype dt) {
    if (dt == SDRT_DTYPE_F32) return _mm256_loadu_ps((const float *)(const void *)src);
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)src);
    if (dt == SDRT_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* BF16 */
}

T256 static inline __m256 cpu_pack_load8_tail(const char *src, sdrt_dtype dt, size_t es, int n) {
    _Alignas(32) char tmp[32] = {0};
    memcpy(tmp, src, (size_t)n * es);
    return cpu_pack_load8(tmp, dt);
}

T256 static void cpu_transpose8(__m256 *v) {
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
    }
    for (int g = 0; g < 2; g++) {
        s[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int e = 0; e < 4; e++) {
        v[e] = _mm256_permute2f128_ps(s[e], s[4 + e], 0x20);
        v[4 + e] = _mm256_permute2f128_ps(s[e], s[4 + e], 0x31);
    }
}

T256 static void cpu_pack_group8(const char *src, size_t row_bytes, sdrt_dtype dt, size_t es, int rows, int lanes,
                                 int64_t kc, int w, float *d) {
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t k = 0; k < kc; k += 8) {
        int kt = kc - k < 8 ? (int)(kc - k) : 8;
        __m256 v[8];
        for (int r = 0; r < 8; r++) {
            if (r >= rows) {
                v[r] = _mm256_setzero_ps();
                continue;
            }
            const char *p = src + r * row_bytes + (size_t)k * es;
            v[r] = kt == 8 ? cpu_pack_load8(p, dt) : cpu_pack_load8_tail(p, dt, es, kt);
        }
        cpu_transpose8(v);
        for (int t = 0; t < kt; t++) _mm256_maskstore_ps(d + (k + t) * w, mask, v[t]);
    }
}

T256 static void cpu_pack_panel_kcontig_avx2(const cpu_operand *op, int64_t first, int rows, int64_t k0,
                                             int64_t kc, int w, float *d) {
    size_t es = cpu_dtype_size(op->dtype), row_bytes = (size_t)op->so * es;
    const char *base = (const char *)op->data + (size_t)(first * op->so + k0) * es;
    for (int r0 = 0; r0 < w; r0 += 8) {
        int lanes = w - r0 < 8 ? w - r0 : 8;
        int real = rows - r0 < 0 ? 0 : rows - r0 < lanes ? rows - r0 : lanes;
        const char *src = real ? base + (size_t)r0 * row_bytes : base;
        cpu_pack_group8(src, row_bytes, op->dtype, es, real, lanes, kc, w, d + r0);
    }
}
#endif

/* ---- dispatch -------------------------------------------------------------------- */

cpu_panel_pack_fn cpu_pack_panel_kcontig_for(int level) {
#if defined(__x86_64__)
    const cpu_features *f = cpu_features_get();
    if (level >= 2 && f->avx512f) return cpu_pack_panel_kcontig_avx512;
    if (level >= 1 && f->avx2 && f->fma && f->f16c) return cpu_pack_panel_kcontig_avx2;
#endif
    (void)level;
    return cpu_pack_panel_kcontig_scalar;
}

static cpu_panel_pack_fn g_kcontig;

static cpu_panel_pack_fn cpu_pack_kcontig_best(void) {
    /* A benign race: every thread computes the same answer. */
    cpu_panel_pack_fn fn = __atomic_load_n(&g_kcontig, __ATOMIC_ACQUIRE);
    if (fn) return fn;
    fn = cpu_pack_panel_kcontig_for(2);
    __atomic_store_n(&g_kcontig, fn, __ATOMIC_RELEASE);
    return fn;
}

/* Rows strided along k by one element-stride each: k-major copies. */
static void cpu_pack_panel_general(const cpu_operand *op, int64_t first, int rows, int64_t k0, int64_t kc, int w,
                                   float *d) {
    const char *base = op->data;
    size_t es = cpu_dtype_size(op->dtype);
    if (op->so == 1) {
        /* Each k gives `rows` contiguous values: convert straight in. */
        for (int64_t k = 0; k < kc; k++)
            cpu_convert_row_f32(d + k * w, base + (size_t)((k0 + k) * op->sk + first) * es, op->dtype, rows);
    } else {
        for (int64_t k = 0; k < kc; k++)
            for (int r = 0; r < rows; r++)
                d[k * w + r] = cpu_load_f32(base, op->dtype, (first + r) * op->so + (k0 + k) * op->sk);
    }
    if (rows < w)
        for (int64_t k = 0; k < kc; k++) memset(d + k * w + rows, 0, (size_t)(w - rows) * sizeof(float));
}

/* Rows of a quantized operand (k contiguous, so and k0 whole blocks, as
 * cpu_supports_op requires): each row's blocks covering the k window are
 * dequantised into `stage` ([rows][len] f32, 32 KiB on the stack), then
 * packed by the f32 panel packer. */
#define CPU_PACK_STAGE 8192
static void cpu_pack_panel_quant(const cpu_operand *op, int64_t first, int rows, int64_t k0, int64_t kc, int w,
                                 float *d) {
    float stage[CPU_PACK_STAGE], scratch[256];
    int64_t be = sdrt_dtype_block_elems(op->dtype);
    size_t bb = sdrt_dtype_block_bytes(op->dtype);
    int64_t chunk = CPU_PACK_STAGE / (rows > 0 ? rows : 1);
    chunk = chunk >= 16 ? chunk / 16 * 16 : chunk;
    cpu_panel_pack_fn f32_panel = cpu_pack_kcontig_best();
    for (int64_t kk = 0; kk < kc; kk += chunk) {
        int64_t len = kc - kk < chunk ? kc - kk : chunk;
        for (int r = 0; r < rows; r++) {
            const char *row = (const char *)op->data + (size_t)((first + r) * op->so / be) * bb;
            sdrt_dequant_range(op->dtype, row, k0 + kk, len, stage + r * len, scratch);
        }
        cpu_operand f = {.data = stage, .dtype = SDRT_DTYPE_F32, .so = len, .sk = 1};
        if (len > 1) {
            f32_panel(&f, 0, rows, 0, len, w, d + kk * w);
        } else {
            /* A one-column tail: the kcontig packers expect kc > 1. */
            for (int r = 0; r < w; r++) d[kk * w + r] = r < rows ? stage[r] : 0.0f;
        }
    }
}

void cpu_pack_strided(const cpu_operand *op, int64_t o0, int64_t on, int64_t k0, int64_t kc, int w, float *dst) {
    if (sdrt_dtype_is_quantized(op->dtype)) {
        for (int64_t p = 0; p * w < on; p++) {
            int rows = (int)(on - p * w < w ? on - p * w : w);
            cpu_pack_panel_quant(op, o0 + p * w, rows, k0, kc, w, dst + p * kc * w);
        }
        return;
    }
    int kcontig = op->sk == 1 && kc > 1;
    cpu_panel_pack_fn panel = kcontig ? cpu_pack_kcontig_best() : cpu_pack_panel_general;
    for (int64_t p = 0; p * w < on; p++) {
        int rows = (int)(on - p * w < w ? on - p * w : w);
        panel(op, o0 + p * w, rows, k0, kc, w, dst + p * kc * w);
    }
}
