/* plugins/scheduler/heun.c - HeunDiscreteScheduler (Karras et al. Alg. 2,
 * k-diffusion "heun", A1111 "Heun").
 *
 * Each step is two loop iterations (order 2): timesteps and sigmas are
 * interleaved as [t0, t1, t1, t2, t2, ...]. Even offsets from the start
 * take an Euler step and remember it; odd ones average the two slopes.
 * buf[0] = x0 scratch, buf[1] = first derivative, buf[2] = sample at the
 * first half. ctr[0] is 1 while a second half is pending.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},  {SCHED_F_BETA_START, "0.00085"},
    {SCHED_F_BETA_END, "0.012"},            {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},        {SCHED_F_PREDICTION_TYPE, "\"epsilon\""},
    {SCHED_F_USE_KARRAS_SIGMAS, "false"},   {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"},
    {SCHED_F_USE_BETA_SIGMAS, "false"},     {SCHED_F_CLIP_SAMPLE, "false"},
    {SCHED_F_CLIP_SAMPLE_RANGE, "1.0"},     {SCHED_F_TIMESTEP_SPACING, "\"linspace\""},
    {SCHED_F_STEPS_OFFSET, "0"},            {SCHED_F_ALIGN_YOUR_STEPS, "false"}, {SCHED_F_AYS_MODEL, "\"auto\""},
    {0, NULL},
};

#define PENDING ctr[0]
#define DT_BITS ctr[1] /* dt of the first half, as float bits */

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1)) return s->diag.code;
    uint32_t N0 = (uint32_t)s->num_inference_steps, N = 0;
    double *ts = calloc(N0 + 2, sizeof *ts), *sig = calloc(N0 + 2, sizeof *sig);
    sdrt_status st = (!ts || !sig) ? sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory")
                                   : sched_build_sigmas(s, ts, sig, &N);
    /* sigmas: [s0, s1, s1, ..., s_{N-1}, s_{N-1}, 0]; timesteps: [t0, t1, t1, ...] */
    if (!st) st = sched_alloc_tables(s, 2 * N - 1, 2 * N);
    if (!st) {
        s->sigmas[0] = (float)sig[0];
        for (uint32_t k = 1; k < N; k++) s->sigmas[2 * k - 1] = s->sigmas[2 * k] = (float)sig[k];
        s->sigmas[2 * N - 1] = 0.0f;
        s->timesteps[0] = (float)ts[0];
        for (uint32_t k = 1; k < N; k++) s->timesteps[2 * k - 1] = s->timesteps[2 * k] = (float)ts[k];
        sched_euler_init_noise_sigma(s);
        s->PENDING = 0;
    }
    free(ts);
    free(sig);
    return st;
}

static void clip(const sdrt_sched *s, float *x0, size_t n) {
    if (!cfg_bool(&s->cfg, SCHED_F_CLIP_SAMPLE)) return;
    float r = (float)cfg_num(&s->cfg, SCHED_F_CLIP_SAMPLE_RANGE);
    for (size_t k = 0; k < n; k++) x0[k] = x0[k] < -r ? -r : (x0[k] > r ? r : x0[k]);
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    float *x0 = s->buf[0], *d1 = s->buf[1], *x1 = s->buf[2];
    if (!s->PENDING) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        float dt = next - sigma;
        sched_k_x0(s, sigma, e, x, x0, n);
        clip(s, x0, n);
        for (size_t k = 0; k < n; k++) {
            d1[k] = (x[k] - x0[k]) / sigma;
            x1[k] = x[k];
            x[k] = x[k] + d1[k] * dt;
        }
        memcpy(&s->DT_BITS, &dt, sizeof dt);
        s->PENDING = 1;
        return SDRT_OK;
    }
    float next = s->sigmas[i], dt;
    memcpy(&dt, &s->DT_BITS, sizeof dt);
    sched_k_x0(s, next, e, x, x0, n);
    clip(s, x0, n);
    for (size_t k = 0; k < n; k++) {
        float d = (x[k] - x0[k]) / next;
        d = (d1[k] + d) / 2.0f;
        x[k] = x1[k] + d * dt;
    }
    s->PENDING = 0;
    return SDRT_OK;
}

/* scale_model_input uses sigmas[i] in both halves. */
const sched_kind sched_kind_heun = {
    .name = "HeunDiscreteScheduler",
    .fields = fields,
    .order = 2,
    .has_sigmas = 1,
    .setup = setup,
    .scale = sched_scale_sigma,
    .step = step,
    .n_bufs = 3,
};
