/* plugins/lora/merge.c - delta factors and the row-wise merge.
 *
 * Deltas, as A1111 / LyCORIS / diffusers compute them (weight shape
 * [rows, cols], cols = in x kh x kw):
 *   LoRA/LoCon  up[rows, r] @ down[r, cols]
 *   LoHa        (w1_a @ w1_b) * (w2_a @ w2_b)        (element-wise product)
 *   LoKr        kron(W1[a, b], W2[c, d x kh x kw])   W = w or w_a @ w_b
 *   diff        the stored difference
 * times scale = weight x alpha / rank (alpha absent or no rank: weight). */
#define _GNU_SOURCE
#include "merge.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/half.h"
#include "sdrt/plugin.h"


/* ---- kernels --------------------------------------------------------------- */

/* The hot loops; cloned per ISA (the host may run anywhere x86-64). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(_WIN32)
#define LORA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LORA_CLONES
#endif

LORA_CLONES static void axpy(float *restrict y, const float *restrict x, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

LORA_CLONES static void axpy_mul(float *restrict y, const float *restrict x, const float *restrict z, float a,
                                 int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i] * z[i];
}

/* AVX-512 paths for the common case (x86-64 with AVX-512F, chosen at run
 * time): f16 <-> f32 rows with the hardware converters (round to nearest
 * even, as sdrt_f32_to_f16), and LoRA rows four at a time with the
 * accumulators in registers, so each element of `down` loaded from cache
 * feeds four FMAs. Everything else takes the portable loops above. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(_WIN32)
#include <immintrin.h>
#define LORA_X86 1
#define LORA_GROUP 4

static int use_avx512(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return cached;
}

__attribute__((target("avx512f"))) static void f16_to_f32_avx512(const uint16_t *h, float *f, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(f + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
    for (; i < n; i++) f[i] = sdrt_f16_to_f32(h[i]);
}

__attribute__((target("avx512f"))) static void f32_to_f16_avx512(const float *f, uint16_t *h, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(h + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(f + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) h[i] = sdrt_f32_to_f16(f[i]);
}

/* acc[4][cols] += u[4][r] @ d[r][cols], 64 columns at a time. */
__attribute__((target("avx512f"))) static void lora4_avx512(float *acc, int64_t cols, const float *u, int64_t r,
                                                            const float *d) {
    int64_t j = 0;
    for (; j + 64 <= cols; j += 64) {
        __m512 a[LORA_GROUP][4];
#pragma GCC unroll 4
        for (int i = 0; i < LORA_GROUP; i++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) a[i][v] = _mm512_loadu_ps(acc + i * cols + j + 16 * v);
        for (int64_t k = 0; k < r; k++) {
            const float *dk = d + k * cols + j;
            __m512 d0 = _mm512_loadu_ps(dk), d1 = _mm512_loadu_ps(dk + 16), d2 = _mm512_loadu_ps(dk + 32),
                   d3 = _mm512_loadu_ps(dk + 48);
#pragma GCC unroll 4
            for (int i = 0; i < LORA_GROUP; i++) {
                __m512 b = _mm512_set1_ps(u[i * r + k]);
                a[i][0] = _mm512_fmadd_ps(b, d0, a[i][0]);
                a[i][1] = _mm512_fmadd_ps(b, d1, a[i][1]);
                a[i][2] = _mm512_fmadd_ps(b, d2, a[i][2]);
                a[i][3] = _mm512_fmadd_ps(b, d3, a[i][3]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < LORA_GROUP; i++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) _mm512_storeu_ps(acc + i * cols + j + 16 * v, a[i][v]);
    }
    for (; j < cols; j++)
        for (int i = 0; i < LORA_GROUP; i++)
            for (int64_t k = 0; k < r; k++) acc[i * cols + j] += u[i * r + k] * d[k * cols + j];
}
#else
#define LORA_X86 0
#define LORA_GROUP 4
static int use_avx512(void) { return 0; }
#endif

static void load_row(const sdrt_tensor *t, int64_t row, int64_t cols, float *out) {
    const uint8_t *p = t->data;
    if (t->dtype == SDRT_DTYPE_F32) {
        memcpy(out, p + (size_t)(row * cols) * 4, (size_t)cols * 4);
        return;
    }
    const uint16_t *h = (const uint16_t *)(const void *)(p + (size_t)(row * cols) * 2);
#if LORA_X86
    if (t->dtype == SDRT_DTYPE_F16 && use_avx512()) {
        f16_to_f32_avx512(h, out, cols);
        return;
    }
#endif
    if (t->dtype == SDRT_DTYPE_F16)
        for (int64_t i = 0; i < cols; i++) out[i] = sdrt_f16_to_f32(h[i]);
    else
        for (int64_t i = 0; i < cols; i++) out[i] = sdrt_bf16_to_f32(h[i]);
}

static void store_row(sdrt_tensor *t, int64_t row, int64_t cols, const float *in) {
    uint8_t *p = t->data;
    if (t->dtype == SDRT_DTYPE_F32) {
        memcpy(p + (size_t)(row * cols) * 4, in, (size_t)cols * 4);
        return;
    }
    uint16_t *h = (uint16_t *)(void *)(p + (size_t)(row * cols) * 2);
#if LORA_X86
    if (t->dtype == SDRT_DTYPE_F16 && use_avx512()) {
        f32_to_f16_avx512(in, h, cols);
        return;
    }
#endif
    if (t->dtype == SDRT_DTYPE_F16)
        for (int64_t i = 0; i < cols; i++) h[i] = sdrt_f32_to_f16(in[i]);
    else
        for (int64_t i = 0; i < cols; i++) h[i] = sdrt_f32_to_bf16(in[i]);
}

/* ---- targets --------------------------------------------------------------- */

sdrt_status lora_target_init(lora_target *t, char *err, size_t errlen) {
    const sdrt_tensor *b = t->base;
    int64_t numel = 1, expect = 1;
    int contiguous = 1;
    for (int i = b->ndim - 1; i >= 0; i--) {
        if (b->shape[i] > 1 && b->strides[i] != expect) contiguous = 0;
        expect *= b->shape[i];
        numel *= b->shape[i];
    }
    if (b->ndim < 1 || numel < 1 || !contiguous || !b->data ||
        (b->dtype != SDRT_DTYPE_F32 && b->dtype != SDRT_DTYPE_F16 && b->dtype != SDRT_DTYPE_BF16)) {
        lora_set_err(err, errlen, "%s: a LoRA can patch only contiguous f32/f16/bf16 host weights", t->name);
        return SDRT_INVALID_ARGUMENT;
    }
    t->rows = b->shape[0];
    t->cols = numel / t->rows;
    return SDRT_OK;
}

/* ---- factors --------------------------------------------------------------- */

static float *to_f32(const st_tensor *t, float scale) {
    size_t n = lora_st_numel(t);
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) return NULL;
    for (size_t i = 0; i < n; i++) f[i] = scale * lora_st_get(t, i);
    return f;
}

/* a[m, k] @ b[k, n] in f32 (small: LoKr factors). */
static float *matmul(const float *a, const float *b, int64_t m, int64_t k, int64_t n) {
    float *c = calloc((size_t)(m * n) + 1, sizeof *c);
    if (!c) return NULL;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++) axpy(c + i * n, b + j * n, a[i * k + j], n);
    return c;
}

static char *shape_of(const sdrt_tensor *t, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

static sdrt_status misfit(const lora_contrib *c, const lora_target *t, const char *what, int64_t r, int64_t k,
                          char *err, size_t errlen) {
    char s[96];
    lora_set_err(err, errlen, "lora '%s': key '%s': %s delta [%lld, %lld] does not fit %s.%s %s", c->file, c->m->base, what,
            (long long)r, (long long)k, t->component == 0 ? "unet" : t->component == 1 ? "text_encoder" : "text_encoder_2",
            t->name, shape_of(t->base, s, sizeof s));
    return SDRT_INVALID_ARGUMENT;
}

static float scale_of(const lora_module *m, float weight) {
    return m->has_alpha && m->rank > 0 ? weight * m->alpha / (float)m->rank : weight;
}

static sdrt_status prep_lora(lora_contrib *c, const lora_target *t, char *err, size_t errlen) {
    const st_tensor *d = c->m->part[PART_DOWN], *u = c->m->part[PART_UP];
    c->r1 = d->shape[0];
    int64_t cols = (int64_t)lora_st_numel(d) / c->r1;
    if (u->shape[0] != t->rows || cols != t->cols) return misfit(c, t, "LoRA", u->shape[0], cols, err, errlen);
    c->f[0] = to_f32(u, c->scale);
    c->f[1] = to_f32(d, 1.0f);
    return c->f[0] && c->f[1] ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

static sdrt_status prep_loha(lora_contrib *c, const lora_target *t, char *err, size_t errlen) {
    const lora_module *m = c->m;
    c->r1 = m->part[PART_HADA_W1_B]->shape[0];
    c->r2 = m->part[PART_HADA_W2_B]->shape[0];
    int64_t cols = (int64_t)lora_st_numel(m->part[PART_HADA_W1_B]) / c->r1;
    int64_t rows = m->part[PART_HADA_W1_A]->shape[0];
    if (rows != t->rows || cols != t->cols) return misfit(c, t, "LoHa", rows, cols, err, errlen);
    c->f[0] = to_f32(m->part[PART_HADA_W1_A], c->scale);
    c->f[1] = to_f32(m->part[PART_HADA_W1_B], 1.0f);
    c->f[2] = to_f32(m->part[PART_HADA_W2_A], 1.0f);
    c->f[3] = to_f32(m->part[PART_HADA_W2_B], 1.0f);
    return c->f[0] && c->f[1] && c->f[2] && c->f[3] ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

/* W = w, or w_a @ w_b; rows x (numel / rows). */
static float *lokr_side(const lora_module *m, lora_part full, lora_part pa, lora_part pb, float scale, int64_t *r,
                        int64_t *k) {
    if (m->part[full]) {
        *r = m->part[full]->shape[0];
        *k = (int64_t)lora_st_numel(m->part[full]) / *r;
        return to_f32(m->part[full], scale);
    }
    const st_tensor *a = m->part[pa], *b = m->part[pb];
    float *fa = to_f32(a, scale), *fb = to_f32(b, 1.0f);
    *r = a->shape[0];
    *k = (int64_t)lora_st_numel(b) / b->shape[0];
    float *w = fa && fb ? matmul(fa, fb, a->shape[0], a->shape[1], *k) : NULL;
    free(fa);
    free(fb);
    return w;
}

static sdrt_status prep_lokr(lora_contrib *c, const lora_target *t, char *err, size_t errlen) {
    const lora_module *m = c->m;
    c->f[0] = lokr_side(m, PART_LOKR_W1, PART_LOKR_W1_A, PART_LOKR_W1_B, c->scale, &c->ka, &c->kb);
    c->f[1] = lokr_side(m, PART_LOKR_W2, PART_LOKR_W2_A, PART_LOKR_W2_B, 1.0f, &c->kc, &c->kd);
    if (!c->f[0] || !c->f[1]) return SDRT_RESOURCE_EXHAUSTED;
    if (c->ka * c->kc != t->rows || c->kb * c->kd != t->cols)
        return misfit(c, t, "LoKr", c->ka * c->kc, c->kb * c->kd, err, errlen);
    return SDRT_OK;
}

static sdrt_status prep_diff(lora_contrib *c, const lora_target *t, char *err, size_t errlen) {
    const st_tensor *d = c->m->part[PART_DIFF];
    if (d->shape[0] != t->rows || (int64_t)lora_st_numel(d) != t->rows * t->cols)
        return misfit(c, t, "full", d->shape[0], (int64_t)lora_st_numel(d) / d->shape[0], err, errlen);
    c->f[0] = to_f32(d, c->scale);
    return c->f[0] ? SDRT_OK : SDRT_RESOURCE_EXHAUSTED;
}

sdrt_status lora_contrib_prepare(lora_contrib *c, const lora_target *t, char *err, size_t errlen) {
    c->scale = scale_of(c->m, c->scale);
    switch (c->m->algo) {
    case ALGO_LORA: return prep_lora(c, t, err, errlen);
    case ALGO_LOHA: return prep_loha(c, t, err, errlen);
    case ALGO_LOKR: return prep_lokr(c, t, err, errlen);
    case ALGO_DIFF: return prep_diff(c, t, err, errlen);
    default: lora_set_err(err, errlen, "lora '%s': key '%s': unknown algorithm", c->file, c->m->base); return SDRT_INTERNAL;
    }
}

void lora_contrib_free(lora_contrib *c) {
    for (int i = 0; i < 4; i++) {
        free(c->f[i]);
        c->f[i] = NULL;
    }
}

/* ---- rows ------------------------------------------------------------------ */

static void add_row(const lora_contrib *c, int64_t row, int64_t cols, float *acc, float *t1, float *t2) {
    switch (c->m->algo) {
    case ALGO_LORA:
        for (int64_t k = 0; k < c->r1; k++) axpy(acc, c->f[1] + k * cols, c->f[0][row * c->r1 + k], cols);
        return;
    case ALGO_LOHA:
        memset(t1, 0, (size_t)cols * sizeof *t1);
        memset(t2, 0, (size_t)cols * sizeof *t2);
        for (int64_t k = 0; k < c->r1; k++) axpy(t1, c->f[1] + k * cols, c->f[0][row * c->r1 + k], cols);
        for (int64_t k = 0; k < c->r2; k++) axpy(t2, c->f[3] + k * cols, c->f[2][row * c->r2 + k], cols);
        axpy_mul(acc, t1, t2, 1.0f, cols);
        return;
    case ALGO_LOKR: { /* row = i * kc + p; column block j holds W1[i, j] * W2[p, :] */
        int64_t i = row / c->kc, p = row % c->kc;
        for (int64_t j = 0; j < c->kb; j++) axpy(acc + j * c->kd, c->f[1] + p * c->kd, c->f[0][i * c->kb + j], c->kd);
        return;
    }
    case ALGO_DIFF: axpy(acc, c->f[0] + row * cols, 1.0f, cols); return;
    default: return;
    }
}

static void merge_row(const lora_target *t, int64_t r, float *scratch) {
    float *acc = scratch, *t1 = scratch + t->cols, *t2 = scratch + 2 * t->cols;
    load_row(t->base, r, t->cols, acc);
    for (size_t i = 0; i < t->nc; i++) add_row(&t->c[i], r, t->cols, acc, t1, t2);
    store_row((sdrt_tensor *)&t->out, r, t->cols, acc);
}

#if LORA_X86
/* LORA_GROUP rows at once: LoRA contributions through the register kernel. */
static void merge_group(const lora_target *t, int64_t r, float *scratch) {
    int64_t cols = t->cols;
    float *acc = scratch, *t1 = scratch + LORA_GROUP * cols, *t2 = t1 + cols;
    for (int i = 0; i < LORA_GROUP; i++) load_row(t->base, r + i, cols, acc + i * cols);
    for (size_t c = 0; c < t->nc; c++) {
        const lora_contrib *k = &t->c[c];
        if (k->m->algo == ALGO_LORA) {
            lora4_avx512(acc, cols, k->f[0] + r * k->r1, k->r1, k->f[1]);
            continue;
        }
        for (int i = 0; i < LORA_GROUP; i++) add_row(k, r + i, cols, acc + i * cols, t1, t2);
    }
    for (int i = 0; i < LORA_GROUP; i++) store_row((sdrt_tensor *)&t->out, r + i, cols, acc + i * cols);
}
#endif

void lora_merge_rows(const lora_target *t, int64_t r0, int64_t r1, float *scratch) {
    int64_t r = r0;
#if LORA_X86
    if (use_avx512())
        for (; r + LORA_GROUP <= r1; r += LORA_GROUP) merge_group(t, r, scratch);
#endif
    for (; r < r1; r++) merge_row(t, r, scratch);
}
