/* sdrt/rng_state.h - the state of the PyTorch-compatible random generator,
 * as it crosses the plugin ABI (sdrt.scheduler: the inference plugin seeds
 * a generator and the scheduler draws ancestral noise from it).
 *
 * Only the plain struct is part of the contract. The functions that seed
 * and draw from it are machinery in the helper library (sdrt/rng.h,
 * sdrt_helpers), which each plugin links its own copy of.
 *
 * Thread: a generator is used by one thread at a time.
 */
#ifndef SDRT_RNG_STATE_H
#define SDRT_RNG_STATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_RNG_MT_N 624

/* A Mersenne twister in PyTorch's CPU generator layout. Append only. */
typedef struct sdrt_rng {
    uint32_t struct_size;
    uint32_t mt_index;
    uint32_t mt[SDRT_RNG_MT_N];
    uint64_t seed;
    /* PyTorch keeps one cached normal sample for the scalar path. */
    int32_t has_next_normal;
    double next_normal;
} sdrt_rng;

#ifdef __cplusplus
}
#endif

#endif /* SDRT_RNG_STATE_H */
