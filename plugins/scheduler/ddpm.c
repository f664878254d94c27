/* plugins/scheduler/ddpm.c - DDPMScheduler (Ho et al., ancestral sampling
 * of the discrete chain; A1111/ComfyUI "DDPM").
 *
 * Every step but the one at t = 0 draws randn of the latent's shape from
 * the generator, as diffusers does. The learned variance types need a
 * model that predicts its variance (2x output channels), which SD1/SDXL
 * UNets do not, so they are refused.
 */
#include <math.h>
#include <stdlib.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},  {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},             {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},        {SCHED_F_VARIANCE_TYPE, "\"fixed_small\""},
    {SCHED_F_CLIP_SAMPLE, "true"},          {SCHED_F_PREDICTION_TYPE, "\"epsilon\""},
    {SCHED_F_THRESHOLDING, "false"},        {SCHED_F_DYNAMIC_THRESHOLDING_RATIO, "0.995"},
    {SCHED_F_CLIP_SAMPLE_RANGE, "1.0"},     {SCHED_F_SAMPLE_MAX_VALUE, "1.0"},
    {SCHED_F_TIMESTEP_SPACING, "\"leading\""}, {SCHED_F_STEPS_OFFSET, "0"},
    {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"}, {0, NULL},
};

enum { VAR_SMALL, VAR_SMALL_LOG, VAR_LARGE };
#define VARIANCE ctr[0]

static sdrt_status check_variance(sdrt_sched *s) {
    const sched_config *c = &s->cfg;
    if (cfg_null(c, SCHED_F_VARIANCE_TYPE) || cfg_is(c, SCHED_F_VARIANCE_TYPE, "fixed_small")) s->VARIANCE = VAR_SMALL;
    else if (cfg_is(c, SCHED_F_VARIANCE_TYPE, "fixed_small_log")) s->VARIANCE = VAR_SMALL_LOG;
    else if (cfg_is(c, SCHED_F_VARIANCE_TYPE, "fixed_large")) s->VARIANCE = VAR_LARGE;
    else if (cfg_is(c, SCHED_F_VARIANCE_TYPE, "learned") || cfg_is(c, SCHED_F_VARIANCE_TYPE, "learned_range"))
        return sched_fail(&s->diag, SDRT_UNSUPPORTED,
                          "scheduler_config.variance_type: '%s' needs a model that predicts its variance, which "
                          "SD1/SDXL UNets do not",
                          c->v[SCHED_F_VARIANCE_TYPE].str);
    else if (cfg_is(c, SCHED_F_VARIANCE_TYPE, "fixed_large_log"))
        return sched_fail(&s->diag, SDRT_UNSUPPORTED,
                          "scheduler_config.variance_type: 'fixed_large_log' gives NaN in diffusers' step() "
                          "(square root of a log variance)");
    else
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.variance_type: '%s' is not one of fixed_small, fixed_small_log, "
                          "fixed_large, fixed_large_log, learned, learned_range",
                          c->v[SCHED_F_VARIANCE_TYPE].str);
    return SDRT_OK;
}

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1) || check_variance(s)) return s->diag.code;
    if ((uint32_t)s->num_inference_steps > s->T)
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "num_inference_steps: %d is larger than num_train_timesteps %u", (int)s->num_inference_steps,
                          s->T);
    return sched_ddim_timesteps(s);
}

/* _get_variance(t) for the fixed types, as the factor of the noise. */
static float noise_scale(const sdrt_sched *s, float a, float ap) {
    float beta = 1.0f - a / ap;
    float var = (1.0f - ap) / (1.0f - a) * beta;
    if (var < 1e-20f) var = 1e-20f;
    switch (s->VARIANCE) {
    case VAR_SMALL_LOG: return expf(0.5f * logf(var));
    case VAR_LARGE: return sqrtf(beta);
    default: return sqrtf(var);
    }
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    const sched_config *c = &s->cfg;
    int64_t t = (int64_t)s->timesteps[i];
    float a = sched_alpha_at(s, t);
    float ap = i + 1 < s->n_ts ? sched_alpha_at(s, (int64_t)s->timesteps[i + 1]) : 1.0f;
    float b = 1.0f - a, bp = 1.0f - ap;
    float cur_a = a / ap, cur_b = 1.0f - cur_a;
    float *x0 = s->buf[0], *eps = s->buf[1], *z = s->buf[2];
    sched_alpha_predict(s, a, e, x, x0, eps, n);
    if (cfg_bool(c, SCHED_F_CLIP_SAMPLE)) {
        float r = (float)cfg_num(c, SCHED_F_CLIP_SAMPLE_RANGE);
        for (size_t k = 0; k < n; k++) x0[k] = x0[k] < -r ? -r : (x0[k] > r ? r : x0[k]);
    }
    float c0 = sqrtf(ap) * cur_b / b, cx = sqrtf(cur_a) * bp / b;
    for (size_t k = 0; k < n; k++) x[k] = c0 * x0[k] + cx * x[k];
    if (t <= 0) return SDRT_OK;
    if (sched_noise(s, rng, z, n)) return SDRT_INVALID_ARGUMENT;
    float sd = noise_scale(s, a, ap);
    for (size_t k = 0; k < n; k++) x[k] = x[k] + sd * z[k];
    return SDRT_OK;
}

const sched_kind sched_kind_ddpm = {
    .name = "DDPMScheduler",
    .fields = fields,
    .order = 1,
    .stochastic = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_add_noise_alpha,
    .n_bufs = 3,
};
