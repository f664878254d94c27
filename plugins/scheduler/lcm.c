/* plugins/scheduler/lcm.c - LCMScheduler (latent consistency models,
 * A1111/ComfyUI "LCM").
 *
 * Each step predicts the clean latent through the consistency boundary
 * scalings and re-noises it to the next timestep with fresh randn (all
 * steps but the last), as diffusers does. The timestep subset of the
 * distillation schedule is shared with TCDScheduler (sched_lcm_timesteps).
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
    {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"}, {0, NULL},
};

/* set_timesteps of LCM/TCD (strength 1): N of the original_inference_steps
 * distillation timesteps [k-1, 2k-1, ...], k = T // original, taken at
 * floor(linspace(0, len, N, endpoint=False)) from the top. */
sdrt_status sched_lcm_timesteps(sdrt_sched *s) {
    sched_diag *d = &s->diag;
    double orig = cfg_num(&s->cfg, SCHED_F_ORIGINAL_INFERENCE_STEPS);
    uint32_t N = (uint32_t)s->num_inference_steps;
    if (orig < 1 || orig > s->T)
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.original_inference_steps: %.0f is not in 1..%u",
                          orig, s->T);
    uint32_t len = (uint32_t)orig, k = s->T / len;
    if (N > len)
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "num_inference_steps: %u is larger than original_inference_steps %u (the distillation "
                          "schedule has no more timesteps)",
                          N, len);
    if (sched_alloc_tables(s, N, 0)) return d->code;
    double step = (double)len / (double)N;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t idx = (uint32_t)floor((double)i * step);
        /* reversed origin timesteps: element idx is (len - idx) * k - 1 */
        s->timesteps[i] = (float)((int64_t)(len - idx) * k - 1);
    }
    s->init_noise_sigma = 1.0f;
    return SDRT_OK;
}

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1)) return s->diag.code;
    return sched_lcm_timesteps(s);
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    const sched_config *c = &s->cfg;
    int64_t t = (int64_t)s->timesteps[i];
    int64_t prev = i + 1 < s->n_ts ? (int64_t)s->timesteps[i + 1] : t;
    float a = sched_alpha_at(s, t), ap = sched_alpha_at(s, prev);
    float bp = 1.0f - ap;
    /* get_scalings_for_boundary_condition_discrete, float32 like torch */
    float st = (float)t * (float)cfg_num(c, SCHED_F_TIMESTEP_SCALING);
    float c_skip = 0.25f / (st * st + 0.25f), c_out = st / sqrtf(st * st + 0.25f);
    float *x0 = s->buf[0], *eps = s->buf[1], *z = s->buf[2];
    sched_alpha_predict(s, a, e, x, x0, eps, n);
    if (cfg_bool(c, SCHED_F_CLIP_SAMPLE)) {
        float r = (float)cfg_num(c, SCHED_F_CLIP_SAMPLE_RANGE);
        for (size_t k = 0; k < n; k++) x0[k] = x0[k] < -r ? -r : (x0[k] > r ? r : x0[k]);
    }
    for (size_t k = 0; k < n; k++) x[k] = c_out * x0[k] + c_skip * x[k];
    if (i == (uint32_t)s->num_inference_steps - 1) return SDRT_OK;
    if (sched_noise(s, rng, z, n)) return SDRT_INVALID_ARGUMENT;
    float sa = sqrtf(ap), sb = sqrtf(bp);
    for (size_t k = 0; k < n; k++) x[k] = sa * x[k] + sb * z[k];
    return SDRT_OK;
}

const sched_kind sched_kind_lcm = {
    .name = "LCMScheduler",
    .fields = fields,
    .order = 1,
    .stochastic = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_add_noise_alpha,
    .n_bufs = 3,
};
