/* cpu_lowp.c - the opt-in low-precision weight products (int8, bf16):
 * the stream's precision, kernel choice, packing of weights (once, for the
 * weight cache) and of activations (per call), and the threaded driver.
 * Formats and arithmetic are described in cpu_internal.h; the micro-kernels
 * are in cpu_lowp_avx512.c, cpu_lowp_avx2.c and cpu_lowp_scalar.c.
 *
 * Driver: A is packed whole (all rows, all of K) by all threads into a
 * shared buffer, then tasks over blocks of rows x columns (column-major, so
 * consecutive tasks share a block of W) sweep K in slices: one B
 * micro-panel slice (NR columns x LP_KU blocks, 16-32 KB) stays in L1
 * while the row block's A slices stream from L2, and the C block stays in
 * L2 from one slice to the next. A transposed C (convolutions) is computed
 * into a per-task local block and written once. */
#include "cpu_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/half.h"
#include "sdrt/quant.h"

/* Blocks of 32 per K slice. */
#define LP_KU 16
/* Rows per task (a multiple of every MR: 3, 4, 6, 14 -> 84) and columns. */
#define LP_MC 84
#define LP_NC 256

/* ---- precision ------------------------------------------------------------------- */

const char *cpu_precision_name(cpu_precision p) {
    return p == CPU_PREC_BF16 ? "bf16" : p == CPU_PREC_INT8 ? "int8" : "f32";
}

static sdrt_status lp_refuse(sdrt_status st, char *msg, size_t len, const char *fmt, const char *v) {
    if (msg && len) snprintf(msg, len, fmt, v);
    return st;
}

sdrt_status cpu_precision_parse(const char *params_json, cpu_precision *out, char *msg, size_t len) {
    *out = CPU_PREC_F32;
    if (msg && len) msg[0] = 0;
    if (!params_json) return SDRT_OK;
    cJSON *root = cJSON_Parse(params_json);
    const cJSON *p = root ? cJSON_GetObjectItemCaseSensitive(root, "precision") : NULL;
    sdrt_status st = SDRT_OK;
    if (!p || cJSON_IsNull(p)) {
        st = SDRT_OK;
    } else if (!cJSON_IsString(p)) {
        st = lp_refuse(SDRT_INVALID_ARGUMENT, msg, len, "%s", "precision: must be a string (\"auto\", \"f32\", \"bf16\" or \"int8\")");
    } else {
        const char *v = p->valuestring;
        if (!strcmp(v, "auto") || !strcmp(v, "f32")) {
            *out = CPU_PREC_F32;
        } else if (!strcmp(v, "int8")) {
            *out = CPU_PREC_INT8;
        } else if (!strcmp(v, "bf16")) {
            if (cpu_lp_kernel_best(CPU_PREC_BF16)) *out = CPU_PREC_BF16;
            else
                st = lp_refuse(SDRT_UNSUPPORTED, msg, len, "%s",
                               "precision: \"bf16\" needs AVX-512 BF16 (vdpbf16ps), which this CPU (or the "
                               "SDRT_CPU_KERNEL level) lacks; use \"int8\" or \"f32\"");
        } else if (!strcmp(v, "f16")) {
            st = lp_refuse(SDRT_UNSUPPORTED, msg, len, "%s",
                           "precision: \"f16\" is not a CPU compute precision (f16 weights are widened to f32); "
                           "use \"f32\", \"bf16\" or \"int8\"");
        } else {
            st = lp_refuse(SDRT_INVALID_ARGUMENT, msg, len,
                           "precision: \"%.40s\" is unknown (use \"auto\", \"f32\", \"bf16\" or \"int8\")", v);
        }
    }
    cJSON_Delete(root);
    return st;
}

/* ---- kernels ----------------------------------------------------------------------- */

size_t cpu_lp_a_unit_bytes(const cpu_lp_kernel *k) {
    switch (k->afmt) {
    case CPU_LPA_U8: case CPU_LPA_S8: return (size_t)k->mr * (CPU_LP_K + 4);
    case CPU_LPA_S8ABS: return (size_t)k->mr * (2 * CPU_LP_K + 4);
    default: return (size_t)k->mr * CPU_LP_K * 2;
    }
}

size_t cpu_lp_b_unit_bytes(const cpu_lp_kernel *k) {
    return k->prec == CPU_PREC_INT8 ? (size_t)k->nr * (CPU_LP_K + 8) : (size_t)k->nr * CPU_LP_K * 2;
}

const cpu_lp_kernel *cpu_lp_kernel_for(cpu_precision prec, int level) {
    const cpu_features *f = cpu_features_get();
    if (prec == CPU_PREC_INT8) {
        if (level >= 2 && f->avx512f && f->avx512bw && f->avx512vnni && cpu_lp_int8_vnni512.fn)
            return &cpu_lp_int8_vnni512;
        if (level >= 1 && f->avx2 && f->fma && f->avx_vnni && cpu_lp_int8_avxvnni.fn) return &cpu_lp_int8_avxvnni;
        if (level >= 1 && f->avx2 && f->fma && cpu_lp_int8_avx2.fn) return &cpu_lp_int8_avx2;
        return &cpu_lp_int8_scalar;
    }
    if (prec == CPU_PREC_BF16 && level >= 2 && f->avx512f && f->avx512bw && f->avx512bf16 && cpu_lp_bf16_avx512.fn)
        return &cpu_lp_bf16_avx512;
    return NULL;
}

const cpu_lp_kernel *cpu_lp_kernel_best(cpu_precision prec) {
    const cpu_kernel *k = cpu_kernel_best();
    int level = k == &cpu_kernel_avx512 ? 2 : k == &cpu_kernel_avx2 ? 1 : 0;
    const cpu_lp_kernel *lk = cpu_lp_kernel_for(prec, level);
    /* SDRT_CPU_KERNEL=avx2: plain AVX2, as on a CPU without AVX-VNNI. */
    const char *want = getenv("SDRT_CPU_KERNEL");
    if (lk == &cpu_lp_int8_avxvnni && want && !strcmp(want, "avx2")) lk = &cpu_lp_int8_avx2;
    return lk;
}

/* ---- quantising / rounding 32 values ------------------------------------------------ */

float cpu_lp_quant32(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < CPU_LP_K; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < CPU_LP_K; i++) {
        float v = nearbyintf(x[i] * id);
        q[i] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
    }
    return d;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* The same as cpu_lp_quant32 (same float operations, round to nearest even
 * by the default MXCSR), 32 values in two vectors. */
__attribute__((target("avx512f,avx512bw"))) static float lp_quant32_avx512(const float *x, int8_t *q) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    __m512 vid = _mm512_set1_ps(id);
    __m512i r0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)), r1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
    _mm_storeu_si128((__m128i *)(void *)q, _mm512_cvtsepi32_epi8(r0));
    _mm_storeu_si128((__m128i *)(void *)(q + 16), _mm512_cvtsepi32_epi8(r1));
    return d;
}

/* Loads 32 floats into v and returns their largest magnitude. */
__attribute__((target("avx2,fma"))) static inline float lp_load_absmax32_avx2(const float *x, __m256 v[4]) {
    __m256 sign = _mm256_set1_ps(-0.0f), m = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* int32 -> int16 -> int8 with saturation (|r| <= 127 anyway); packs work
 * per 128-bit lane, so the order is restored afterwards. */
__attribute__((target("avx2,fma"))) static inline void lp_store_i8x32_avx2(const __m256i r[4], int8_t *q) {
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(void *)q, b);
}

__attribute__((target("avx2,fma"))) static float lp_quant32_avx2(const float *x, int8_t *q) {
    __m256 v[4];
    float d = lp_load_absmax32_avx2(x, v) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    __m256 vid = _mm256_set1_ps(id);
    __m256i r[4];
    for (int i = 0; i < 4; i++) r[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid));
    lp_store_i8x32_avx2(r, q);
    return d;
}

/* 32 floats to bf16, nearest even (vcvtne2ps2bf16). */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void lp_bf16_32(const float *x, uint16_t *y) {
    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
    _mm512_storeu_si512(y, (__m512i)v);
}
#endif

float cpu_lp_quant32_level(int level, const float *x, int8_t *q) {
#if defined(__x86_64__)
    const cpu_features *f = cpu_features_get();
    if (level >= 2 && f->avx512f) return lp_quant32_avx512(x, q);
    if (level >= 1 && f->avx2 && f->fma) return lp_quant32_avx2(x, q);
#endif
    return cpu_lp_quant32(x, q);
}

/* ---- packing A (activations), per call ---------------------------------------------- */

typedef struct lp_apack {
    const cpu_lp_gemm_args *g;
    const cpu_lp_kernel *kern;
    cpu_ctx *ctx;
    int64_t units, panels, panels_per_task;
    size_t unit_bytes;
    uint8_t *dst;
} lp_apack;

static void lp_pack_a_row(const cpu_lp_kernel *kern, int level, const float *x, int64_t units, size_t ub,
                          int r, uint8_t *panel) {
    int mr = kern->mr;
    for (int64_t u = 0; u < units; u++) {
        uint8_t *unit = panel + (size_t)u * ub;
        const float *xu = x + u * CPU_LP_K;
        if (kern->afmt == CPU_LPA_BF16) {
            uint16_t *y = (uint16_t *)(void *)(unit + (size_t)r * CPU_LP_K * 2);
#if defined(__x86_64__)
            lp_bf16_32(xu, y);
#else
            for (int i = 0; i < CPU_LP_K; i++) y[i] = sdrt_f32_to_bf16(xu[i]);
#endif
            continue;
        }
        int8_t *q = (int8_t *)(unit + (size_t)r * CPU_LP_K);
        float d = cpu_lp_quant32_level(level, xu, q);
        if (kern->afmt == CPU_LPA_U8) {
            for (int i = 0; i < CPU_LP_K; i++) ((uint8_t *)q)[i] = (uint8_t)(q[i] + 128);
            memcpy(unit + (size_t)mr * CPU_LP_K + (size_t)r * 4, &d, 4);
        } else if (kern->afmt == CPU_LPA_S8ABS) {
            uint8_t *aq = unit + (size_t)mr * CPU_LP_K + (size_t)r * CPU_LP_K;
            for (int i = 0; i < CPU_LP_K; i++) aq[i] = (uint8_t)(q[i] < 0 ? -q[i] : q[i]);
            memcpy(unit + (size_t)mr * 2 * CPU_LP_K + (size_t)r * 4, &d, 4);
        } else {
            memcpy(unit + (size_t)mr * CPU_LP_K + (size_t)r * 4, &d, 4);
        }
    }
}

/* A row past m: zeros (and 128 = q 0 for U8), scale 0. */
static void lp_pack_a_zero_row(const cpu_lp_kernel *kern, int64_t units, size_t ub, int r, uint8_t *panel) {
    int mr = kern->mr;
    for (int64_t u = 0; u < units; u++) {
        uint8_t *unit = panel + (size_t)u * ub;
        if (kern->afmt == CPU_LPA_BF16) {
            memset(unit + (size_t)r * CPU_LP_K * 2, 0, CPU_LP_K * 2);
            continue;
        }
        memset(unit + (size_t)r * CPU_LP_K, kern->afmt == CPU_LPA_U8 ? 128 : 0, CPU_LP_K);
        size_t dofs = (size_t)mr * CPU_LP_K;
        if (kern->afmt == CPU_LPA_S8ABS) {
            memset(unit + dofs + (size_t)r * CPU_LP_K, 0, CPU_LP_K);
            dofs += (size_t)mr * CPU_LP_K;
        }
        memset(unit + dofs + (size_t)r * 4, 0, 4);
    }
}

/* Non-plain A operands are staged [kc][rows] by their packer for a group
 * of panels (about LP_AGROUP rows: long runs for im2col) and K chunks of
 * LP_ACHUNK, then transposed into rows. */
#define LP_ACHUNK 256
#define LP_AGROUP 64

static int lp_a_group(int mr) { return LP_AGROUP / mr > 1 ? LP_AGROUP / mr : 1; }

/* A plain f32 row-major A: rows quantised straight from its memory. */
static int lp_a_direct(const cpu_operand *a) { return a->dtype == SDRT_DTYPE_F32 && a->sk == 1 && !a->pack; }

static void lp_pack_a_direct(const lp_apack *p, int64_t pi, float *row) {
    const cpu_lp_gemm_args *g = p->g;
    int mr = p->kern->mr;
    int64_t k = g->w->k, whole = k / CPU_LP_K;
    uint8_t *panel = p->dst + (size_t)pi * p->units * p->unit_bytes;
    int rows = (int)(g->m - pi * mr < mr ? g->m - pi * mr : mr);
    for (int r = rows; r < mr; r++) lp_pack_a_zero_row(p->kern, p->units, p->unit_bytes, r, panel);
    for (int r = 0; r < rows; r++) {
        const float *x = (const float *)g->a.data + (pi * mr + r) * g->a.so;
        lp_pack_a_row(p->kern, p->kern->level, x, whole, p->unit_bytes, r, panel);
        if (whole < p->units) { /* the ragged last block, zero-padded */
            memset(row, 0, CPU_LP_K * sizeof(float));
            memcpy(row, x + whole * CPU_LP_K, (size_t)(k - whole * CPU_LP_K) * sizeof(float));
            lp_pack_a_row(p->kern, p->kern->level, row, 1, p->unit_bytes, r, panel + (size_t)whole * p->unit_bytes);
        }
    }
}

/* Panels p0..p0+np of a non-plain A through its packer. */
static void lp_pack_a_staged(const lp_apack *p, int64_t p0, int64_t np, float *stage, float *row) {
    const cpu_lp_gemm_args *g = p->g;
    int mr = p->kern->mr, level = p->kern->level;
    int64_t k = g->w->k, kp = p->units * CPU_LP_K, r0 = p0 * mr;
    int64_t rows = g->m - r0 < np * mr ? g->m - r0 : np * mr, w = np * mr;
    for (int64_t pi = p0; pi < p0 + np; pi++)
        for (int r = 0; r < mr; r++)
            if (pi * mr + r >= g->m)
                lp_pack_a_zero_row(p->kern, p->units, p->unit_bytes, r, p->dst + (size_t)pi * p->units * p->unit_bytes);
    for (int64_t k0 = 0; k0 < kp; k0 += LP_ACHUNK) {
        int64_t kc = kp - k0 < LP_ACHUNK ? kp - k0 : LP_ACHUNK, kv = k - k0 < kc ? k - k0 : kc;
        /* (Every packer takes kc == 1: custom ones, and the strided one
         * then takes its general path.) */
        cpu_pack(&g->a, r0, rows, k0, kv, (int)w, stage);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t q = 0; q < kv; q++) row[q] = stage[q * w + r];
            for (int64_t q = kv; q < kc; q++) row[q] = 0.0f;
            int64_t pi = (r0 + r) / mr;
            lp_pack_a_row(p->kern, level, row, kc / CPU_LP_K, p->unit_bytes, (int)((r0 + r) % mr),
                          p->dst + (size_t)pi * p->units * p->unit_bytes + (size_t)(k0 / CPU_LP_K) * p->unit_bytes);
        }
    }
}

static void lp_pack_a_task(void *arg, int64_t t, int thread) {
    lp_apack *p = arg;
    float *stage = cpu_ctx_local(p->ctx, CPU_SLOT_LP_STAGE, thread);
    float *row = stage + (size_t)LP_ACHUNK * lp_a_group(p->kern->mr) * p->kern->mr;
    int64_t end = (t + 1) * p->panels_per_task < p->panels ? (t + 1) * p->panels_per_task : p->panels;
    int direct = lp_a_direct(&p->g->a);
    int group = lp_a_group(p->kern->mr);
    for (int64_t pi = t * p->panels_per_task; pi < end;) {
        if (direct) {
            lp_pack_a_direct(p, pi, row);
            pi++;
            continue;
        }
        int64_t np = end - pi < group ? end - pi : group;
        lp_pack_a_staged(p, pi, np, stage, row);
        pi += np;
    }
}

/* ---- packing W (weights), once ------------------------------------------------------- */

typedef struct lp_wpack {
    cpu_ctx *ctx;
    const cpu_operand *w;
    cpu_lp_weight *out;
    int64_t panels_per_task;
} lp_wpack;

/* Block u of weight column j: 32 q in four-byte groups, d, -128 sum(q). */
static void lp_put_q8(uint8_t *unit, int nr, int j, const int8_t *q, float d) {
    int32_t sum = 0;
    for (int t = 0; t < CPU_LP_K; t++) sum += q[t];
    for (int g = 0; g < 8; g++) memcpy(unit + (size_t)g * nr * 4 + (size_t)j * 4, q + 4 * g, 4);
    int32_t corr = -128 * sum;
    memcpy(unit + (size_t)nr * CPU_LP_K + (size_t)j * 4, &d, 4);
    memcpy(unit + (size_t)nr * (CPU_LP_K + 4) + (size_t)j * 4, &corr, 4);
}

/* ggml's q8_0 of one block (quantize_row_q8_0_ref: d = amax / 127,
 * q = roundf(x / d) with halves away from zero, d stored as f16), here
 * vectorised; byte-identical to sdrt_quant_row (tests compare them). */
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint16_t lp_q8_0_block_avx512(const float *x, int8_t *q) {
    __m512 v[2] = {_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16)};
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int h = 0; h < 2; h++) {
        __m512 y = _mm512_mul_ps(v[h], _mm512_set1_ps(id));
        /* roundf: truncate, then step away from zero when the dropped
         * fraction (exact) is at least one half. */
        __m512 t = _mm512_roundscale_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(y, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
        __m512 one = _mm512_castsi512_ps(_mm512_or_epi32(_mm512_castps_si512(_mm512_set1_ps(1.0f)),
                                                         _mm512_and_epi32(_mm512_castps_si512(y),
                                                                          _mm512_set1_epi32((int)0x80000000u))));
        t = _mm512_mask_add_ps(t, up, t, one);
        _mm_storeu_si128((__m128i *)(void *)(q + 16 * h), _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(t)));
    }
    return sdrt_f32_to_f16(d);
}

__attribute__((target("avx2,fma"))) static uint16_t lp_q8_0_block_avx2(const float *x, int8_t *q) {
    __m256 sign = _mm256_set1_ps(-0.0f), v[4];
    float d = lp_load_absmax32_avx2(x, v) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    __m256i r[4];
    for (int i = 0; i < 4; i++) {
        __m256 y = _mm256_mul_ps(v[i], _mm256_set1_ps(id));
        __m256 t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(y, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
        __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(y, sign));
        r[i] = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)));
    }
    lp_store_i8x32_avx2(r, q);
    return sdrt_f32_to_f16(d);
}
#endif

uint16_t cpu_lp_q8_0_block(int level, const float *x, int8_t *q) {
#if defined(__x86_64__)
    const cpu_features *f = cpu_features_get();
    if (level >= 2 && f->avx512f) return lp_q8_0_block_avx512(x, q);
    if (level >= 1 && f->avx2 && f->fma) return lp_q8_0_block_avx2(x, q);
#endif
    (void)level;
    uint8_t blk[34];
    sdrt_quant_row(SDRT_DTYPE_Q8_0, x, blk, CPU_LP_K);
    memcpy(q, blk + 2, CPU_LP_K);
    uint16_t d;
    memcpy(&d, blk, 2);
    return d;
}

/* Weight row o as kp floats, zero-padded: dense rows through the SIMD
 * converter, anything else through its packer. */
static void lp_w_row(const cpu_operand *w, int64_t o, int64_t k, int64_t kp, float *x) {
    sdrt_dtype dt = w->dtype;
    if (w->sk == 1 && !w->pack && (dt == SDRT_DTYPE_F32 || dt == SDRT_DTYPE_F16 || dt == SDRT_DTYPE_BF16))
        cpu_convert_row_f32(x, (const char *)w->data + (size_t)(o * w->so) * cpu_dtype_size(dt), dt, k);
    else cpu_pack(w, o, 1, 0, k, 1, x);
    memset(x + k, 0, (size_t)(kp - k) * sizeof(float));
}

static void lp_pack_w_task(void *arg, int64_t t, int thread) {
    lp_wpack *p = arg;
    cpu_lp_weight *pw = p->out;
    const cpu_operand *w = p->w;
    int nr = pw->kern->nr;
    int64_t kp = pw->units * CPU_LP_K;
    size_t ub = cpu_lp_b_unit_bytes(pw->kern);
    float *x = cpu_ctx_local(p->ctx, CPU_SLOT_LP_STAGE, thread);
    int direct_q8 = w->dtype == SDRT_DTYPE_Q8_0 && w->sk == 1 && !w->pack;
    int level = pw->kern->level;
    for (int64_t pi = t * p->panels_per_task; pi < (t + 1) * p->panels_per_task && pi < pw->panels; pi++) {
        uint8_t *panel = pw->data + (size_t)pi * pw->panel_bytes;
        memset(panel, 0, pw->panel_bytes); /* columns past n: q 0, d 0, corr 0 */
        for (int j = 0; j < nr && pi * nr + j < pw->n; j++) {
            int64_t o = pi * nr + j;
            if (direct_q8) {
                /* As they are: the file's own blocks (k is whole blocks). */
                const uint8_t *row = (const uint8_t *)w->data + (size_t)(o * w->so / 32) * 34;
                for (int64_t u = 0; u < pw->units; u++) {
                    uint16_t dh;
                    memcpy(&dh, row + u * 34, 2);
                    lp_put_q8(panel + (size_t)u * ub, nr, j, (const int8_t *)(row + u * 34 + 2), sdrt_f16_to_f32(dh));
                }
                continue;
            }
            lp_w_row(w, o, pw->k, kp, x);
            for (int64_t u = 0; u < pw->units; u++) {
                uint8_t *unit = panel + (size_t)u * ub;
                if (pw->kern->prec == CPU_PREC_BF16) {
                    uint16_t y[CPU_LP_K];
#if defined(__x86_64__)
                    lp_bf16_32(x + u * CPU_LP_K, y);
#else
                    for (int i = 0; i < CPU_LP_K; i++) y[i] = sdrt_f32_to_bf16(x[u * CPU_LP_K + i]);
#endif
                    for (int pr = 0; pr < CPU_LP_K / 2; pr++)
                        memcpy(unit + (size_t)pr * nr * 4 + (size_t)j * 4, y + 2 * pr, 4);
                } else {
                    int8_t q[CPU_LP_K];
                    uint16_t dh = cpu_lp_q8_0_block(level, x + u * CPU_LP_K, q);
                    lp_put_q8(unit, nr, j, q, sdrt_f16_to_f32(dh));
                }
            }
        }
    }
}

sdrt_status cpu_lp_pack_weight(cpu_ctx *ctx, const cpu_lp_kernel *kern, const cpu_operand *w, int64_t n, int64_t k,
                               cpu_lp_weight *out) {
    *out = (cpu_lp_weight){.kern = kern, .n = n, .k = k};
    out->units = cpu_div_up(k > 0 ? k : 1, CPU_LP_K);
    out->panels = cpu_div_up(n, kern->nr);
    out->panel_bytes = (size_t)out->units * cpu_lp_b_unit_bytes(kern);
    out->data = cpu_aligned_alloc(out->panel_bytes * (size_t)out->panels);
    if (!out->data) return SDRT_RESOURCE_EXHAUSTED;
    int64_t kp = out->units * CPU_LP_K;
    if (cpu_ctx_reserve_local(ctx, CPU_SLOT_LP_STAGE, (size_t)kp * sizeof(float) + (size_t)out->units * 34 + 64) != 0) {
        cpu_lp_weight_free(out);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    lp_wpack p = {.ctx = ctx, .w = w, .out = out, .panels_per_task = cpu_div_up(out->panels, 8 * ctx->threads)};
    cpu_ctx_run(ctx, cpu_div_up(out->panels, p.panels_per_task), lp_pack_w_task, &p);
    return SDRT_OK;
}

void cpu_lp_weight_free(cpu_lp_weight *w) {
    if (!w) return;
    cpu_aligned_free(w->data);
    w->data = NULL;
}

/* ---- driver ------------------------------------------------------------------------- */

typedef struct lp_job {
    cpu_ctx *ctx;
    const cpu_lp_gemm_args *g;
    const cpu_lp_kernel *kern;
    const uint8_t *pa;
    size_t a_unit, b_unit;
    int64_t units, mblocks, nblocks, mc, nc;
} lp_job;

/* A tile sticking out of C: the kernel writes a full local tile. */
static void lp_edge(const cpu_lp_kernel *kern, int mr, int nr, int64_t units, const uint8_t *a, const uint8_t *b,
                    float *c, int64_t ldc, const cpu_epilogue *e) {
    _Alignas(64) float tile[16 * 32];
    float bn[32];
    cpu_epilogue ep = *e;
    int NR = kern->nr;
    if (e->accumulate)
        for (int i = 0; i < mr; i++) memcpy(tile + i * NR, c + i * ldc, (size_t)nr * sizeof(float));
    if (e->bias_n) {
        memset(bn, 0, sizeof bn);
        memcpy(bn, e->bias_n, (size_t)nr * sizeof(float));
        ep.bias_n = bn;
    }
    ep.bias_m = NULL;
    kern->fn(units, a, b, tile, NR, &ep);
    for (int i = 0; i < mr; i++) memcpy(c + i * ldc, tile + i * NR, (size_t)nr * sizeof(float));
}

/* A transposed C (c_trans): the task's block is computed into a local
 * row-major buffer padded to whole tiles (every tile full, no edge path,
 * no transposed read-modify-write per K slice), then added to C once,
 * transposed, with alpha and the bias. */
static void lp_block_trans(lp_job *j, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float *local) {
    const cpu_lp_gemm_args *g = j->g;
    const cpu_lp_weight *w = g->w;
    int MR = j->kern->mr, NR = j->kern->nr;
    int64_t ldl = cpu_round_up(j1 - j0, NR);
    for (int64_t u0 = 0; u0 < j->units; u0 += LP_KU) {
        int64_t uc = j->units - u0 < LP_KU ? j->units - u0 : LP_KU;
        cpu_epilogue e = {1.0f, NULL, NULL, u0 != 0, 0};
        for (int64_t jj = j0; jj < j1; jj += NR) {
            const uint8_t *b = w->data + (size_t)(jj / NR) * w->panel_bytes + (size_t)u0 * j->b_unit;
            for (int64_t ii = i0; ii < i1; ii += MR) {
                const uint8_t *a = j->pa + (size_t)(ii / MR) * j->units * j->a_unit + (size_t)u0 * j->a_unit;
                j->kern->fn(uc, a, b, local + (ii - i0) * ldl + (jj - j0), ldl, &e);
            }
        }
    }
    for (int64_t jj = j0; jj < j1; jj++) {
        float bias = g->bias_n ? g->bias_n[jj] : 0.0f, *c = g->c + jj * g->ldc;
        const float *l = local + (jj - j0);
        for (int64_t ii = i0; ii < i1; ii++) c[ii] = l[(ii - i0) * ldl] * g->alpha + bias;
    }
}

static void lp_block_task(void *arg, int64_t t, int thread) {
    lp_job *j = arg;
    const cpu_lp_gemm_args *g = j->g;
    const cpu_lp_weight *w = g->w;
    int MR = j->kern->mr, NR = j->kern->nr;
    /* Column-major task order: consecutive tasks (on every thread) share
     * one column block of W, which then stays in L2 while A streams. */
    int64_t i0 = (t % j->mblocks) * j->mc, j0 = (t / j->mblocks) * j->nc;
    int64_t i1 = i0 + j->mc < g->m ? i0 + j->mc : g->m, j1 = j0 + j->nc < w->n ? j0 + j->nc : w->n;
    if (g->c_trans) {
        lp_block_trans(j, i0, i1, j0, j1, cpu_ctx_local(j->ctx, CPU_SLOT_LP_C, thread));
        return;
    }
    for (int64_t u0 = 0; u0 < j->units; u0 += LP_KU) {
        int64_t uc = j->units - u0 < LP_KU ? j->units - u0 : LP_KU;
        cpu_epilogue e = {g->alpha, NULL, NULL, u0 != 0, u0 + uc == j->units};
        for (int64_t jj = j0; jj < j1; jj += NR) {
            const uint8_t *b = w->data + (size_t)(jj / NR) * w->panel_bytes + (size_t)u0 * j->b_unit;
            int nr = (int)(j1 - jj < NR ? j1 - jj : NR);
            e.bias_n = g->bias_n ? g->bias_n + jj : NULL;
            for (int64_t ii = i0; ii < i1; ii += MR) {
                const uint8_t *a = j->pa + (size_t)(ii / MR) * j->units * j->a_unit + (size_t)u0 * j->a_unit;
                int mr = (int)(i1 - ii < MR ? i1 - ii : MR);
                float *c = g->c + ii * g->ldc + jj;
                if (mr == MR && nr == NR) j->kern->fn(uc, a, b, c, g->ldc, &e);
                else lp_edge(j->kern, mr, nr, uc, a, b, c, g->ldc, &e);
            }
        }
    }
}

sdrt_status cpu_lp_gemm(cpu_ctx *ctx, const cpu_lp_gemm_args *g) {
    const cpu_lp_weight *w = g->w;
    const cpu_lp_kernel *kern = w->kern;
    if (g->m <= 0 || w->n <= 0) return SDRT_OK;
    int MR = kern->mr, NR = kern->nr;
    lp_job j = {.ctx = ctx, .g = g, .kern = kern, .a_unit = cpu_lp_a_unit_bytes(kern), .b_unit = cpu_lp_b_unit_bytes(kern),
                .units = w->units};
    int64_t panels = cpu_div_up(g->m, MR);
    uint8_t *pa = cpu_ctx_shared(ctx, CPU_SLOT_LP_A, (size_t)panels * j.units * j.a_unit);
    if (!pa) return SDRT_RESOURCE_EXHAUSTED;
    size_t stage = (size_t)LP_ACHUNK * ((size_t)lp_a_group(MR) * MR + 1) * sizeof(float);
    if (cpu_ctx_reserve_local(ctx, CPU_SLOT_LP_STAGE, stage) != 0) return SDRT_RESOURCE_EXHAUSTED;
    lp_apack ap = {.g = g, .kern = kern, .ctx = ctx, .units = j.units, .panels = panels, .unit_bytes = j.a_unit,
                   .dst = pa};
    ap.panels_per_task = cpu_div_up(panels, 4 * ctx->threads);
    if (!lp_a_direct(&g->a)) /* whole groups per task */
        ap.panels_per_task = cpu_round_up(ap.panels_per_task, lp_a_group(MR));
    cpu_ctx_run(ctx, cpu_div_up(panels, ap.panels_per_task), lp_pack_a_task, &ap);
    j.pa = pa;
    /* Task grid: LP_MC x LP_NC blocks, made finer until every thread has
     * a few tasks (columns first: rows re-read no packing either way). */
    j.mc = cpu_round_up(LP_MC, MR);
    j.nc = cpu_round_up(LP_NC, NR);
    for (;;) {
        j.mblocks = cpu_div_up(g->m, j.mc);
        j.nblocks = cpu_div_up(w->n, j.nc);
        if (j.mblocks * j.nblocks >= 4 * ctx->threads) break;
        if (j.nc > NR) j.nc = cpu_round_up(j.nc / 2, NR);
        else if (j.mc > MR) j.mc = cpu_round_up(j.mc / 2, MR);
        else break;
    }
    if (g->c_trans && cpu_ctx_reserve_local(ctx, CPU_SLOT_LP_C,
                                            (size_t)(cpu_round_up(j.mc, MR) * cpu_round_up(j.nc, NR)) * sizeof(float)) != 0)
        return SDRT_RESOURCE_EXHAUSTED;
    cpu_ctx_run(ctx, j.mblocks * j.nblocks, lp_block_task, &j);
    return SDRT_OK;
}
