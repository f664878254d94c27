/* sdk/helpers/philox.c - see sdrt/philox.h.
 *
 * The round function follows the Philox paper / Random123: with
 * (hi0, lo0) = M0 * c0 and (hi1, lo1) = M1 * c2 as 64-bit products,
 * c' = {hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0}, and the key is bumped by
 * the Weyl constants between rounds (9 bumps for 10 rounds).
 *
 * The normal transform is A1111's: u = x * 2^-32 + 2^-33 and
 * v = y * (2pi 2^-32) + (2pi 2^-32) / 2, both constants first rounded to
 * float32 as there, and the arithmetic in double because NumPy promotes
 * uint32 * float32 to float64; only the cosine-free half (s * sin v) is
 * kept. */
#include "sdrt/philox.h"

#include <math.h>

/* The expectations round every product separately (NumPy, Python): no
 * fused multiply-adds. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0], p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k[0];
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k[1];
    c[3] = lo0;
}

void sdrt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]}, k[2] = {key[0], key[1]};
    for (int r = 0; r < 10; r++) {
        if (r) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

void sdrt_philox_seed(sdrt_philox *g, uint64_t seed) {
    g->struct_size = (uint32_t)sizeof *g;
    g->seed = seed;
    g->offset = 0;
}

/* The block for element i of the call at `offset`. */
static void philox_block(const sdrt_philox *g, uint64_t i, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)g->offset, 0u, (uint32_t)i, (uint32_t)(i >> 32)};
    uint32_t key[2] = {(uint32_t)g->seed, (uint32_t)(g->seed >> 32)};
    sdrt_philox4x32_10(ctr, key, out);
}

/* float32(2^-32) and float32(2^-32 * 2pi) exactly as A1111 spells them. */
static double philox_inv32(void) { return (double)2.3283064e-10f; }
static double philox_inv32_2pi(void) { return (double)(float)(2.3283064e-10 * 6.2831855); }

void sdrt_philox_randn(sdrt_philox *g, float *out, size_t n) {
    const double a = philox_inv32(), b = philox_inv32_2pi();
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        philox_block(g, (uint64_t)i, w);
        double u = (double)w[0] * a + a / 2.0;
        double v = (double)w[1] * b + b / 2.0;
        double s = sqrt(-2.0 * log(u));
        out[i] = (float)(s * sin(v));
    }
    g->offset++;
}

void sdrt_philox_rand(sdrt_philox *g, float *out, size_t n) {
    const double a = philox_inv32();
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        philox_block(g, (uint64_t)i, w);
        float f = (float)((double)w[0] * a + a / 2.0);
        out[i] = f < 1.0f ? f : 0x1.fffffep-1f; /* the top words round up to 1 in float */
    }
    g->offset++;
}
