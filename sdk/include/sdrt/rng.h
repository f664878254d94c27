/* sdrt/rng.h - a random generator that reproduces PyTorch's CPU generator.
 *
 * torch.manual_seed(s); torch.randn(shape) (float32) and torch.rand give the
 * same bits as sdrt_rng_seed(&g, s); sdrt_rng_randn(&g, out, n). The state is
 * a plain public struct so that plugins can hand one generator to each other
 * (the scheduler draws ancestral noise from the generator the inference
 * plugin seeded) while each links its own copy of the functions from the
 * static helper library `sdrt_helpers`.
 *
 * Thread: a generator is used by one thread at a time.
 */
#ifndef SDRT_RNG_H
#define SDRT_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_RNG_MT_N 624

typedef struct sdrt_rng {
    uint32_t struct_size;
    uint32_t mt_index;
    uint32_t mt[SDRT_RNG_MT_N];
    uint64_t seed;
    /* PyTorch keeps one cached normal sample for the scalar path. */
    int32_t has_next_normal;
    double next_normal;
    /* --- appended: the generator kind (read only inside struct_size) --- */
    uint32_t kind;          /* sdrt_rng_kind; sdrt_rng_seed sets MT */
    uint64_t philox_offset; /* calls made so far (SDRT_RNG_PHILOX) */
} sdrt_rng;

/* Which generator a sdrt_rng runs. PHILOX is A1111's "NV"/"GPU" seeds
 * (sdrt/philox.h): randn and rand then draw from Philox with the seed and
 * advance philox_offset by one per call, so whoever holds the generator
 * (the scheduler's ancestral noise too) draws from the same stream. */
typedef enum sdrt_rng_kind {
    SDRT_RNG_MT = 0,    /* PyTorch CPU (the default) */
    SDRT_RNG_PHILOX = 1 /* PyTorch CUDA as A1111 reproduces it */
} sdrt_rng_kind;

/* Seeds like torch.manual_seed(seed) / Generator.manual_seed(seed). */
void sdrt_rng_seed(sdrt_rng *g, uint64_t seed);
/* Seeds g as the Philox generator (kind SDRT_RNG_PHILOX, offset 0). */
void sdrt_rng_seed_philox(sdrt_rng *g, uint64_t seed);
/* Fills out[0..n) like torch.randn(n) (float32) drawing from g. */
void sdrt_rng_randn(sdrt_rng *g, float *out, size_t n);
/* Fills out[0..n) like torch.rand(n) (float32, [0,1)). */
void sdrt_rng_rand(sdrt_rng *g, float *out, size_t n);
/* Next raw 32-bit output of the Mersenne twister. */
uint32_t sdrt_rng_u32(sdrt_rng *g);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_RNG_H */
