/* sdrt/philox.h - Philox4x32-10 and the "NV" normal generator of A1111.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011; the Random123 library) is a counter-based generator: the
 * output is a pure function of a 128-bit counter and a 64-bit key, so any
 * element of a stream can be computed without the ones before it. That is
 * what GPU generators (cuRAND, PyTorch CUDA) are built on.
 *
 * sdrt_philox_randn reproduces the generator AUTOMATIC1111's web UI calls
 * "NV" / "GPU" seeds (modules/rng_philox.py), which imitates
 * torch.randn(..., device="cuda") on the CPU: element i of a call is
 * philox(counter = {offset, 0, i, 0}, key = seed (low word, high word)),
 * its first two words turned into one normal by Box-Muller in double
 * precision, rounded to float32; every call then advances offset by one.
 * Element counts >= 2^32 carry into counter word 3 (A1111 would wrap).
 *
 * Pure CPU code in the static helper library `sdrt_helpers`; no GPU needed.
 * Thread: a generator is used by one thread at a time; the free functions
 * are thread-safe.
 */
#ifndef SDRT_PHILOX_H
#define SDRT_PHILOX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One Philox4x32 block with 10 rounds: out = philox(ctr, key). */
void sdrt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The generator state: a seed and the number of calls made so far. */
typedef struct sdrt_philox {
    uint32_t struct_size;
    uint64_t seed;
    uint64_t offset;
} sdrt_philox;

void sdrt_philox_seed(sdrt_philox *g, uint64_t seed);
/* Fills out[0..n) with standard normals (one call: offset advances by 1). */
void sdrt_philox_randn(sdrt_philox *g, float *out, size_t n);
/* Fills out[0..n) with uniforms in (0, 1): word 0 of each block scaled as
 * Box-Muller's u (x * 2^-32 + 2^-33), rounded to float and kept below 1.
 * Advances offset by 1. */
void sdrt_philox_rand(sdrt_philox *g, float *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_PHILOX_H */
