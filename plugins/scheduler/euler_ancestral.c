/* plugins/scheduler/euler_ancestral.c - EulerAncestralDiscreteScheduler
 * (k-diffusion "euler_ancestral", A1111 "Euler a").
 *
 * Every step, the last one included, draws randn of the latent's shape from
 * the generator, as diffusers does.
 */
#include <math.h>
#include <stdlib.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},  {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},             {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},        {SCHED_F_PREDICTION_TYPE, "\"epsilon\""},
    {SCHED_F_TIMESTEP_SPACING, "\"linspace\""}, {SCHED_F_STEPS_OFFSET, "0"},
    {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"}, {0, NULL},
};

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 0)) return s->diag.code;
    return sched_k_tables(s);
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    float sigma = s->sigmas[i], to = s->sigmas[i + 1];
    float up = sqrtf(to * to * (sigma * sigma - to * to) / (sigma * sigma));
    float down = sqrtf(to * to - up * up);
    float dt = down - sigma;
    float *x0 = s->buf[0], *noise = s->buf[1];
    sched_k_x0(s, sigma, e, x, x0, n);
    for (size_t k = 0; k < n; k++) {
        float d = (x[k] - x0[k]) / sigma;
        x[k] = x[k] + d * dt;
    }
    if (sched_noise(s, rng, noise, n)) return SDRT_INVALID_ARGUMENT;
    for (size_t k = 0; k < n; k++) x[k] = x[k] + noise[k] * up;
    return SDRT_OK;
}

const sched_kind sched_kind_euler_ancestral = {
    .name = "EulerAncestralDiscreteScheduler",
    .fields = fields,
    .order = 1,
    .stochastic = 1,
    .has_sigmas = 1,
    .setup = setup,
    .scale = sched_scale_sigma,
    .step = step,
    .n_bufs = 2,
};
