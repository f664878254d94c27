/* sdk/helpers/rng.c - PyTorch's CPU generator, bit for bit.
 *
 * What torch does (ATen CPUGeneratorImpl + cpu/DistributionTemplates.h):
 *  - mt19937 seeded with the low 32 bits of the seed, the standard
 *    Knuth initialisation; one 32-bit draw per float uniform.
 *  - float uniform: (u32 & 0xffffff) * 2^-24.
 *  - randn float32 with n >= 16 (contiguous): fill all n uniforms, then
 *    Box-Muller over blocks of 16 (u1 = 1 - data[j], u2 = data[j+8]); when n
 *    is not a multiple of 16 the LAST 16 values are redrawn as fresh uniforms
 *    and transformed again, overwriting part of the previous block. With
 *    AVX2 the transform uses avx_mathfun's Cephes log/sincos in float, which
 *    we port lane by lane below (with the compiler's FMA fusions) so that
 *    the bits match.
 *  - randn with n < 16: at::normal_distribution<double> per element: two
 *    53-bit uniforms from 64-bit draws, Box-Muller in double, the sine
 *    sample cached in the generator for the next element (and next call).
 */
#include "sdrt/rng.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sdrt/philox.h"

/* PyTorch's AVX2 kernels are built with -mfma and GCC contracts the
 * intrinsics' mul+add pairs into fused multiply-adds. The goldens match only
 * with exactly those fusions, so they are spelled out with fmaf() below and
 * every other operation must round separately: no implicit contraction. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

void sdrt_rng_seed(sdrt_rng *g, uint64_t seed) {
    g->struct_size = (uint32_t)sizeof *g;
    g->seed = seed;
    g->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (uint32_t j = 1; j < SDRT_RNG_MT_N; j++)
        g->mt[j] = 1812433253u * (g->mt[j - 1] ^ (g->mt[j - 1] >> 30)) + j;
    /* Index N forces a twist before the first output, as torch's left_=1. */
    g->mt_index = SDRT_RNG_MT_N;
    g->has_next_normal = 0;
    g->next_normal = 0.0;
    g->kind = SDRT_RNG_MT;
    g->philox_offset = 0;
}

/* A generator seeded as Philox (philox.c) draws from there. */
static int rng_is_philox(const sdrt_rng *g) {
    return g->struct_size >= offsetof(sdrt_rng, philox_offset) + sizeof g->philox_offset && g->kind == SDRT_RNG_PHILOX;
}

static void rng_philox_draw(sdrt_rng *g, float *out, size_t n, int normal) {
    sdrt_philox p = {.struct_size = (uint32_t)sizeof p, .seed = g->seed, .offset = g->philox_offset};
    if (normal) sdrt_philox_randn(&p, out, n);
    else sdrt_philox_rand(&p, out, n);
    g->philox_offset = p.offset;
}

void sdrt_rng_seed_philox(sdrt_rng *g, uint64_t seed) {
    sdrt_rng_seed(g, seed);
    g->kind = SDRT_RNG_PHILOX;
}

static uint32_t mt_mix(uint32_t u, uint32_t v) {
    uint32_t y = (u & MT_UPPER) | (v & MT_LOWER);
    return (y >> 1) ^ ((v & 1u) ? MT_MATRIX_A : 0u);
}

static void mt_twist(uint32_t *mt) {
    int k = 0;
    for (; k < SDRT_RNG_MT_N - MT_M; k++) mt[k] = mt[k + MT_M] ^ mt_mix(mt[k], mt[k + 1]);
    for (; k < SDRT_RNG_MT_N - 1; k++) mt[k] = mt[k + MT_M - SDRT_RNG_MT_N] ^ mt_mix(mt[k], mt[k + 1]);
    mt[SDRT_RNG_MT_N - 1] = mt[MT_M - 1] ^ mt_mix(mt[SDRT_RNG_MT_N - 1], mt[0]);
}

uint32_t sdrt_rng_u32(sdrt_rng *g) {
    if (g->mt_index >= SDRT_RNG_MT_N) {
        mt_twist(g->mt);
        g->mt_index = 0;
    }
    uint32_t y = g->mt[g->mt_index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* torch random64(): first draw is the high word. */
static uint64_t rng_u64(sdrt_rng *g) {
    uint64_t hi = sdrt_rng_u32(g);
    uint64_t lo = sdrt_rng_u32(g);
    return (hi << 32) | lo;
}

static float rng_uniform_f32(sdrt_rng *g) {
    return (float)(sdrt_rng_u32(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

static double rng_uniform_f64(sdrt_rng *g) {
    return (double)(rng_u64(g) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

void sdrt_rng_rand(sdrt_rng *g, float *out, size_t n) {
    if (rng_is_philox(g)) {
        rng_philox_draw(g, out, n, 0);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = rng_uniform_f32(g);
}

/* ---- avx_mathfun (Julien Pommier, zlib licence) Cephes kernels, scalar ---- */

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* log256_ps for one lane; inputs here are in (0, 1]. */
static float cephes_logf(float x) {
    int invalid = !(x > 0.0f);
    float min_norm = f32_from_bits(0x00800000u);
    if (x < min_norm) x = min_norm;
    uint32_t bits = f32_bits(x);
    int32_t ex = (int32_t)(bits >> 23) - 0x7f;
    x = f32_from_bits((bits & ~0x7f800000u) | f32_bits(0.5f));
    float e = (float)ex + 1.0f;
    float tmp = 0.0f;
    if (x < 0.707106781186547524f) {
        tmp = x;
        e = e - 1.0f;
    }
    x = x - 1.0f;
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = fmaf(e, 0.693359375f, x + y);
    return invalid ? NAN : x;
}

/* sincos256_ps for one lane. */
static void cephes_sincosf(float xin, float *s, float *c) {
    uint32_t sign_sin = f32_bits(xin) & 0x80000000u;
    float x = f32_from_bits(f32_bits(xin) & 0x7fffffffu);
    float y = x * 1.27323954473516f;
    int32_t j = (int32_t)y; /* cvttps: truncation */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly_sin_is_y2 = ((uint32_t)j & 2u) == 0;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = ((uint32_t)~(j - 2) & 4u) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float vs = poly_sin_is_y2 ? ys : yc;
    float vc = poly_sin_is_y2 ? yc : ys;
    *s = f32_from_bits(f32_bits(vs) ^ sign_sin);
    *c = f32_from_bits(f32_bits(vc) ^ sign_cos);
}

/* normal_fill_16_AVX2 with mean 0, std 1 (the fmadd by 1 and 0 is exact). */
static void normal_fill_16(float *data) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - data[j];
        float u2 = data[j + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        data[j] = radius * c;
        data[j + 8] = radius * s;
    }
}

static void randn_vectorised(sdrt_rng *g, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = rng_uniform_f32(g);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = rng_uniform_f32(g);
        normal_fill_16(tail);
    }
}

static double randn_scalar_one(sdrt_rng *g) {
    if (g->has_next_normal) {
        g->has_next_normal = 0;
        return g->next_normal;
    }
    double u1 = rng_uniform_f64(g);
    double u2 = rng_uniform_f64(g);
    double r = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    g->next_normal = r * sin(theta);
    g->has_next_normal = 1;
    return r * cos(theta);
}

void sdrt_rng_randn(sdrt_rng *g, float *out, size_t n) {
    if (rng_is_philox(g)) {
        rng_philox_draw(g, out, n, 1);
        return;
    }
    if (n >= 16) {
        randn_vectorised(g, out, n);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = (float)randn_scalar_one(g);
}
