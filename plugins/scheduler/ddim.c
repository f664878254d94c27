/* plugins/scheduler/ddim.c - DDIMScheduler (Song et al.), with eta.
 *
 * `eta` is an argument of diffusers' step(), passed by pipelines as a call
 * argument; sdrt takes it as the config field "eta" (default 0, the
 * deterministic DDIM). With eta > 0 each step draws randn of the latent's
 * shape from the generator, as diffusers does.
 */
#include <math.h>
#include <stdlib.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},  {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},             {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},        {SCHED_F_CLIP_SAMPLE, "true"},
    {SCHED_F_SET_ALPHA_TO_ONE, "true"},     {SCHED_F_STEPS_OFFSET, "0"},
    {SCHED_F_PREDICTION_TYPE, "\"epsilon\""}, {SCHED_F_THRESHOLDING, "false"},
    {SCHED_F_DYNAMIC_THRESHOLDING_RATIO, "0.995"}, {SCHED_F_CLIP_SAMPLE_RANGE, "1.0"},
    {SCHED_F_SAMPLE_MAX_VALUE, "1.0"},      {SCHED_F_TIMESTEP_SPACING, "\"leading\""},
    {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"}, {SCHED_F_ETA, "0.0"},
    {0, NULL},
};

/* DDIM-style integer spacing (np.linspace(...).round() for linspace). */
sdrt_status sched_ddim_timesteps(sdrt_sched *s) {
    uint32_t N = (uint32_t)s->num_inference_steps;
    double *ts = malloc((N + 1) * sizeof *ts);
    if (!ts) return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    if (cfg_is(&s->cfg, SCHED_F_TIMESTEP_SPACING, "linspace")) {
        sched_np_linspace(0, (double)s->T - 1, N, ts);
        for (uint32_t i = 0; i < N / 2; i++) {
            double t = ts[i];
            ts[i] = ts[N - 1 - i];
            ts[N - 1 - i] = t;
        }
        for (uint32_t i = 0; i < N; i++) ts[i] = nearbyint(ts[i]);
    } else {
        N = sched_spacing(s, N, ts);
    }
    if (sched_alloc_tables(s, N, 0)) {
        free(ts);
        return s->diag.code;
    }
    for (uint32_t i = 0; i < N; i++) s->timesteps[i] = (float)ts[i];
    free(ts);
    s->init_noise_sigma = 1.0f;
    return SDRT_OK;
}

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1)) return s->diag.code;
    double eta = cfg_num(&s->cfg, SCHED_F_ETA);
    if (eta < 0)
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT, "scheduler_config.eta: %g is negative", eta);
    s->stochastic = eta > 0;
    return sched_ddim_timesteps(s);
}

/* x0 and epsilon predictions shared by the alpha-space samplers. */
void sched_alpha_predict(const sdrt_sched *s, float a, const float *e, const float *x, float *x0, float *eps,
                         size_t n) {
    const sched_config *c = &s->cfg;
    float b = 1.0f - a, sa = sqrtf(a), sb = sqrtf(b);
    if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "epsilon")) {
        for (size_t k = 0; k < n; k++) {
            x0[k] = (x[k] - sb * e[k]) / sa;
            eps[k] = e[k];
        }
    } else if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "sample")) {
        for (size_t k = 0; k < n; k++) {
            x0[k] = e[k];
            eps[k] = (x[k] - sa * e[k]) / sb;
        }
    } else {
        for (size_t k = 0; k < n; k++) {
            x0[k] = sa * x[k] - sb * e[k];
            eps[k] = sa * e[k] + sb * x[k];
        }
    }
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    const sched_config *c = &s->cfg;
    int64_t t = (int64_t)s->timesteps[i];
    int64_t prev = t - (int64_t)(s->T / (uint32_t)s->num_inference_steps);
    float a = sched_alpha_at(s, t);
    float final_a = cfg_bool(c, SCHED_F_SET_ALPHA_TO_ONE) ? 1.0f : s->alphas_cumprod[0];
    float ap = prev >= 0 ? s->alphas_cumprod[prev] : final_a;
    float *x0 = s->buf[0], *eps = s->buf[1], *z = s->buf[2];
    sched_alpha_predict(s, a, e, x, x0, eps, n);
    if (cfg_bool(c, SCHED_F_CLIP_SAMPLE)) {
        float r = (float)cfg_num(c, SCHED_F_CLIP_SAMPLE_RANGE);
        for (size_t k = 0; k < n; k++) x0[k] = x0[k] < -r ? -r : (x0[k] > r ? r : x0[k]);
    }
    float b = 1.0f - a, bp = 1.0f - ap;
    float variance = bp / b * (1.0f - a / ap);
    float eta = (float)cfg_num(c, SCHED_F_ETA);
    float std = eta * sqrtf(variance);
    float cdir = sqrtf(1.0f - ap - std * std), sap = sqrtf(ap);
    for (size_t k = 0; k < n; k++) x[k] = sap * x0[k] + cdir * eps[k];
    if (eta > 0) {
        if (sched_noise(s, rng, z, n)) return SDRT_INVALID_ARGUMENT;
        for (size_t k = 0; k < n; k++) x[k] = x[k] + std * z[k];
    }
    return SDRT_OK;
}

const sched_kind sched_kind_ddim = {
    .name = "DDIMScheduler",
    .fields = fields,
    .order = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_add_noise_alpha,
    .n_bufs = 3,
};
