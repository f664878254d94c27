/* plugins/scheduler/tcd.c - TCDScheduler (trajectory consistency
 * distillation, strategic stochastic sampling; ComfyUI/A1111 "TCD").
 *
 * `gamma` (diffusers' step(eta=0.3) argument, which the TCD paper calls
 * gamma) is a config field here, default 0.3. With gamma > 0 every step
 * but the last draws randn of the latent's shape, as diffusers does;
 * gamma = 0 is deterministic.
 */
#include <math.h>
#include <stdlib.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},   {SCHED_F_BETA_START, "0.00085"},
    {SCHED_F_BETA_END, "0.012"},             {SCHED_F_BETA_SCHEDULE, "\"scaled_linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},         {SCHED_F_ORIGINAL_INFERENCE_STEPS, "50"},
    {SCHED_F_CLIP_SAMPLE, "false"},          {SCHED_F_CLIP_SAMPLE_RANGE, "1.0"},
    {SCHED_F_SET_ALPHA_TO_ONE, "true"},      {SCHED_F_STEPS_OFFSET, "0"},
    {SCHED_F_PREDICTION_TYPE, "\"epsilon\""}, {SCHED_F_THRESHOLDING, "false"},
    {SCHED_F_DYNAMIC_THRESHOLDING_RATIO, "0.995"}, {SCHED_F_SAMPLE_MAX_VALUE, "1.0"},
    {SCHED_F_TIMESTEP_SPACING, "\"leading\""}, {SCHED_F_TIMESTEP_SCALING, "10.0"},
    {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"}, {SCHED_F_GAMMA, "0.3"},
    {0, NULL},
};

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1)) return s->diag.code;
    double gamma = cfg_num(&s->cfg, SCHED_F_GAMMA);
    if (!(gamma >= 0 && gamma <= 1))
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT, "scheduler_config.gamma: %g is not in 0..1", gamma);
    s->stochastic = gamma > 0;
    return sched_lcm_timesteps(s);
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    double gamma = cfg_num(&s->cfg, SCHED_F_GAMMA);
    int64_t t = (int64_t)s->timesteps[i];
    int64_t prev = i + 1 < s->n_ts ? (int64_t)s->timesteps[i + 1] : 0;
    /* torch.floor((1 - eta) * prev_timestep): a float32 product */
    int64_t ts = (int64_t)floorf((float)(1.0 - gamma) * (float)prev);
    float a = sched_alpha_at(s, t), ap = sched_alpha_at(s, prev), as = sched_alpha_at(s, ts);
    float sas = sqrtf(as), sbs = sqrtf(1.0f - as);
    float *x0 = s->buf[0], *eps = s->buf[1], *z = s->buf[2];
    sched_alpha_predict(s, a, e, x, x0, eps, n);
    for (size_t k = 0; k < n; k++) x[k] = sas * x0[k] + sbs * eps[k];
    if (!(gamma > 0) || i == (uint32_t)s->num_inference_steps - 1) return SDRT_OK;
    if (sched_noise(s, rng, z, n)) return SDRT_INVALID_ARGUMENT;
    float c1 = sqrtf(ap / as), c2 = sqrtf(1.0f - ap / as);
    for (size_t k = 0; k < n; k++) x[k] = c1 * x[k] + c2 * z[k];
    return SDRT_OK;
}

const sched_kind sched_kind_tcd = {
    .name = "TCDScheduler",
    .fields = fields,
    .order = 1,
    .stochastic = 1, /* with the default gamma 0.3; setup() decides */
    .setup = setup,
    .step = step,
    .add_noise = sched_add_noise_alpha,
    .n_bufs = 3,
};
