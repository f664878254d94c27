/* sdrt/rng.h - a random generator that reproduces PyTorch's CPU generator.
 *
 * torch.manual_seed(s); torch.randn(shape) (float32) and torch.rand give the
 * same bits as sdrt_rng_seed(&g, s); sdrt_rng_randn(&g, out, n). The state
 * (sdrt/rng_state.h) is a plain ABI struct so that plugins can hand one
 * generator to each other (the scheduler draws ancestral noise from the
 * generator the inference plugin seeded); these functions are helper
 * machinery (sdk/helpers, static library `sdrt_helpers`), not ABI: each
 * plugin links its own copy.
 *
 * Thread: a generator is used by one thread at a time.
 */
#ifndef SDRT_RNG_H
#define SDRT_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/rng_state.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seeds like torch.manual_seed(seed) / Generator.manual_seed(seed). */
void sdrt_rng_seed(sdrt_rng *g, uint64_t seed);
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
