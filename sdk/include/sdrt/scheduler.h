/* sdrt/scheduler.h - the noise scheduler interface the scheduler plugin
 * publishes as "sdrt.scheduler/1".
 *
 * A scheduler run state reproduces one diffusers scheduler object after
 * `Class.from_config(model_config, **overrides)` and
 * `set_timesteps(num_inference_steps)`: the same timesteps, sigmas,
 * init_noise_sigma, and the same step() arithmetic in float32.
 *
 * The denoising loop of a pipeline maps onto it one to one:
 *
 *   sdrt_sched *s; iface->create(iface->self, &params, &s);
 *   latents *= iface->init_noise_sigma(s);            (txt2img)
 *   for (i = begin; i < iface->num_timesteps(s); i++) {
 *       iface->scale_model_input(s, i, latents, unet_in, n);
 *       eps = unet(unet_in, iface->timesteps(s)[i]);   (+ CFG)
 *       iface->step(s, i, eps, latents, n, rng);
 *   }
 *   iface->destroy(s);
 *
 * Latents are host float32 arrays holding all batch items contiguously
 * (NCHW, n = batch*4*h*w); the math is element-wise on the host (latents
 * are small, a step costs far less than a UNet call). The generator is
 * the one the caller seeded; stochastic samplers draw randn of the whole
 * latent from it at the point diffusers does (randn_tensor(shape,
 * generator) with a CPU generator), so a seed gives diffusers' trajectory.
 *
 * Threads: create/destroy and the queries may be called from any thread.
 * A run state is used by one thread at a time (it keeps solver history);
 * different states are independent. The interface table itself is
 * immutable and valid until the scheduler plugin shuts down.
 */
#ifndef SDRT_SCHEDULER_H
#define SDRT_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/plugin.h"
#include "sdrt/rng_state.h"
#include "sdrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_SCHEDULER_IFACE_ID "sdrt.scheduler/1"

/* One scheduler run (config + timesteps + solver history). Opaque. */
typedef struct sdrt_sched sdrt_sched;

/* What create() needs. All pointers are borrowed for the call only. */
typedef struct sdrt_scheduler_params {
    uint32_t struct_size; /* SDRT_STRUCT_SIZE(sdrt_scheduler_params, num_inference_steps) */
    /* A diffusers class name ("DPMSolverMultistepScheduler"), an A1111 label
     * ("DPM++ 2M Karras", "Euler a"), a ComfyUI sampler[_scheduler]
     * ("dpmpp_2m_karras") or an sd.cpp name. Required. See
     * docs/schedulers.md for the table. */
    const char *name;
    /* The model's scheduler/scheduler_config.json text, or NULL for the
     * class defaults. Fields of other classes in it are ignored silently
     * (as diffusers' from_config does). */
    const char *base_config_json;
    /* The request's `scheduler_config` object text, or NULL. Applied last.
     * Unknown fields give warnings; wrong types/ranges give errors. */
    const char *overrides_json;
    /* >= 1. */
    int32_t num_inference_steps;
} sdrt_scheduler_params;

static inline void sdrt_scheduler_params_init(sdrt_scheduler_params *p) {
    p->struct_size = SDRT_STRUCT_SIZE(sdrt_scheduler_params, num_inference_steps);
    p->name = NULL;
    p->base_config_json = NULL;
    p->overrides_json = NULL;
    p->num_inference_steps = 0;
}

typedef struct sdrt_scheduler_iface {
    uint32_t struct_size;
    void *self;

    /* Any thread. Creates a run state. On success returns NULL and sets
     * *out (owned by the caller until destroy). On failure returns an error
     * (owned by the caller) and sets *out to NULL:
     *   NOT_FOUND        the name is not a known scheduler;
     *   UNSUPPORTED      a known name or option sdrt does not implement
     *                    (message says why, e.g. "Euler a AYS": no
     *                    custom timesteps in that class);
     *   INVALID_ARGUMENT a config field of the wrong type or out of range
     *                    ("scheduler_config.solver_order: 4 is not in 1..3"),
     *                    or num_inference_steps < 1. */
    sdrt_error *(*create)(void *self, const sdrt_scheduler_params *p, sdrt_sched **out);
    /* Any thread. Frees the state. NULL is a no-op. */
    void (*destroy)(sdrt_sched *s);

    /* Warnings from create (unknown override fields), valid until destroy.
     * warning(s, k) for k >= warning_count(s) returns NULL. */
    uint32_t (*warning_count)(const sdrt_sched *s);
    const char *(*warning)(const sdrt_sched *s, uint32_t k);

    /* The loop length: len(scheduler.timesteps). Heun/KDPM2 have 2N-1. */
    uint32_t (*num_timesteps)(const sdrt_sched *s);
    /* scheduler.timesteps as float32 (integer-valued for the classes that
     * use int64). Valid until destroy. */
    const float *(*timesteps)(const sdrt_sched *s);
    /* scheduler.sigmas, or NULL (and count 0) for classes without sigmas
     * (DDIM, DDPM, PNDM, LCM, TCD). Valid until destroy. */
    uint32_t (*num_sigmas)(const sdrt_sched *s);
    const float *(*sigmas)(const sdrt_sched *s);
    /* scheduler.init_noise_sigma: the initial noise is multiplied by it. */
    float (*init_noise_sigma)(const sdrt_sched *s);
    /* The class attribute scheduler.order (2 for Heun/KDPM2: each step
     * takes two loop iterations), used by img2img's t_start * order. */
    uint32_t (*order)(const sdrt_sched *s);
    /* Non-zero when step() draws noise (ancestral, SDE, DDIM eta > 0):
     * the rng argument is then required. */
    int (*is_stochastic)(const sdrt_sched *s);

    /* The resolved diffusers class name and its full config as a JSON
     * object text; both valid until destroy. */
    const char *(*class_name)(const sdrt_sched *s);
    const char *(*config_json)(const sdrt_sched *s);
    /* A1111 sampler label ("DPM++ 2M") and schedule type ("Karras",
     * "Automatic", ...) for image metadata. Static strings. */
    void (*a1111_label)(const sdrt_sched *s, const char **label, const char **schedule_type);

    /* Starts the loop at timestep index k (img2img strength, SDXL
     * denoising_start), like scheduler.set_begin_index(k). Only before the
     * first step. INVALID_ARGUMENT if k >= num_timesteps,
     * FAILED_PRECONDITION after stepping began. */
    sdrt_status (*set_begin_index)(sdrt_sched *s, uint32_t k);
    /* Begin index for img2img strength in (0, 1], as
     * StableDiffusionImg2ImgPipeline.get_timesteps: t_start * order. */
    uint32_t (*begin_for_strength)(const sdrt_sched *s, double strength);
    /* Begin index for SDXL denoising_start in [0, 1) (refiner/img2img). */
    uint32_t (*begin_for_denoising_start)(const sdrt_sched *s, double denoising_start);
    /* Number of loop iterations to run for SDXL denoising_end in (0, 1]
     * (the base model of an ensemble of experts stops there). */
    uint32_t (*end_for_denoising_end)(const sdrt_sched *s, double denoising_end);

    /* scheduler.scale_model_input for iteration i: out = sample scaled
     * (identity for DDIM/DPM-Solver...). `sample` and `out` (n floats) may
     * be the same array. Does not advance the state. INVALID_ARGUMENT for
     * NULL arrays or i out of range. */
    sdrt_status (*scale_model_input)(sdrt_sched *s, uint32_t i, const float *sample, float *out, size_t n);
    /* scheduler.step for iteration i: replaces sample_inout (n floats) with
     * prev_sample. `model_output` (n floats, after guidance) is borrowed.
     * i must be begin_index on the first call and one more on each later
     * call (FAILED_PRECONDITION otherwise); n must stay the same
     * (INVALID_ARGUMENT). `rng` is used only by stochastic samplers and may
     * be NULL otherwise (INVALID_ARGUMENT if needed and NULL).
     * RESOURCE_EXHAUSTED if history buffers cannot be allocated. */
    sdrt_status (*step)(sdrt_sched *s, uint32_t i, const float *model_output, float *sample_inout, size_t n,
                        sdrt_rng *rng);
    /* scheduler.add_noise(original, noise, timesteps[i]) for img2img:
     * out = the noised latent at iteration i. Arrays of n floats; `out`
     * may alias `original`. INVALID_ARGUMENT for NULL arrays or bad i. */
    sdrt_status (*add_noise)(sdrt_sched *s, const float *original, const float *noise, uint32_t i, float *out,
                             size_t n);
} sdrt_scheduler_iface;

#ifdef __cplusplus
}
#endif

#endif /* SDRT_SCHEDULER_H */
