/* plugins/scheduler/dpmsolver_sde.c - DPMSolverSDEScheduler (k-diffusion
 * "dpmpp_sde", A1111 "DPM++ SDE").
 *
 * Each solver step is two loop iterations (order 2): an ancestral
 * DPM-Solver++ step to the midpoint (geometric mean of the two sigmas),
 * then a step over the whole interval with the midpoint's x0 from the saved
 * sample. The noise of both halves comes from a Brownian tree over
 * [min positive sigma, max sigma] (brownian.c, torchsde's BrownianInterval),
 * so the two halves' noises are correlated exactly as in diffusers.
 *
 * Seed rule: the tree's entropy is noise_sampler_seed when set, else the
 * seed of the generator step() receives (the request seed). diffusers draws
 * a random one from torch's global RNG when the field is unset, so there a
 * seed does not reproduce an image; sdrt's default makes it reproduce.
 *
 * Tables as diffusers builds them: sigmas [s0, s1, s1, ..., sN-1, sN-1, 0],
 * timesteps [t0, m0, t1, m1, ..., tN-1] (m = the midpoints' timesteps).
 * Per-step scalar math in float32 in diffusers' order.
 *
 * priv = the Brownian tree (made at the first noisy step). buf[0] = x0,
 * buf[1] = saved sample, buf[2] = noise. ctr[0] = 1 while a second half is
 * pending.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},  {SCHED_F_BETA_START, "0.00085"},
    {SCHED_F_BETA_END, "0.012"},            {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},        {SCHED_F_PREDICTION_TYPE, "\"epsilon\""},
    {SCHED_F_USE_KARRAS_SIGMAS, "false"},   {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"},
    {SCHED_F_USE_BETA_SIGMAS, "false"},     {SCHED_F_NOISE_SAMPLER_SEED, "null"},
    {SCHED_F_TIMESTEP_SPACING, "\"linspace\""}, {SCHED_F_STEPS_OFFSET, "0"},
    {0, NULL},
};

#define PENDING ctr[0]

/* Seeds above 2^53 do not survive the JSON number. */
static sdrt_status check_seed(sdrt_sched *s) {
    const sched_config *c = &s->cfg;
    if (cfg_null(c, SCHED_F_NOISE_SAMPLER_SEED)) return SDRT_OK;
    double v = cfg_num(c, SCHED_F_NOISE_SAMPLER_SEED);
    if (v >= 0 && v <= 9007199254740992.0 && v == floor(v)) return SDRT_OK;
    return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                      "scheduler_config.noise_sampler_seed: %g is not an integer in [0, 2^53]", v);
}

/* The sigmas (double, before the float32 cast) and integer-grid timesteps
 * of set_timesteps; numpy keeps linspace timesteps in float64 here (Euler
 * casts them to float32, so sched_build_sigmas is not reused). */
static uint32_t base_schedule(sdrt_sched *s, const double *logs, const float *tsig, double *ts, double *sig) {
    const sched_config *c = &s->cfg;
    uint32_t N = sched_spacing(s, (uint32_t)s->num_inference_steps, ts);
    for (uint32_t i = 0; i < N; i++) sig[i] = sched_interp(ts[i], tsig, s->T);
    double smin = sig[N - 1], smax = sig[0];
    int ramp = 1;
    if (cfg_bool(c, SCHED_F_USE_KARRAS_SIGMAS)) sched_karras(s, smin, smax, N, sig);
    else if (cfg_bool(c, SCHED_F_USE_EXPONENTIAL_SIGMAS)) sched_exponential(s, smin, smax, N, sig);
    else if (cfg_bool(c, SCHED_F_USE_BETA_SIGMAS)) sched_beta_sigmas(s, smin, smax, N, sig);
    else ramp = 0;
    if (ramp)
        for (uint32_t i = 0; i < N; i++) ts[i] = sched_sigma_to_t(sig[i], logs, s->T);
    return N;
}

/* Fills the interleaved tables from N base sigmas and timesteps; the
 * midpoint timesteps are _second_order_timesteps (exp(-t) at the mean of
 * t = -log sigma, mapped back to a timestep). */
static void fill_tables(sdrt_sched *s, const double *logs, const double *ts, const double *sig, uint32_t N) {
    s->sigmas[0] = (float)sig[0];
    for (uint32_t k = 1; k < N; k++) s->sigmas[2 * k - 1] = s->sigmas[2 * k] = (float)sig[k];
    s->sigmas[2 * N - 1] = 0.0f;
    s->timesteps[0] = (float)ts[0];
    for (uint32_t k = 1; k < N; k++) {
        double t = -log(sig[k - 1]), t_next = -log(sig[k]);
        double mid = exp(-(t + (t_next - t) * 0.5));
        s->timesteps[2 * k - 1] = (float)sched_sigma_to_t(mid, logs, s->T);
        s->timesteps[2 * k] = (float)ts[k];
    }
}

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 0) || check_seed(s)) return s->diag.code;
    uint32_t N0 = (uint32_t)s->num_inference_steps, T = s->T;
    double *ts = calloc(N0 + 2, sizeof *ts), *sig = calloc(N0 + 2, sizeof *sig);
    double *logs = malloc(T * sizeof *logs);
    float *tsig = malloc(T * sizeof *tsig);
    sdrt_status st = (!ts || !sig || !logs || !tsig)
                         ? sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory")
                         : SDRT_OK;
    if (!st) {
        sched_train_sigmas(s, tsig);
        /* numpy's log of the float32 sigmas is float32 */
        for (uint32_t i = 0; i < T; i++) logs[i] = (double)logf(tsig[i]);
        uint32_t N = base_schedule(s, logs, tsig, ts, sig);
        st = sched_alloc_tables(s, 2 * N - 1, 2 * N);
        if (!st) fill_tables(s, logs, ts, sig, N);
    }
    if (!st) sched_euler_init_noise_sigma(s);
    s->PENDING = 0;
    free(ts);
    free(sig);
    free(logs);
    free(tsig);
    return st;
}

static void release(sdrt_sched *s) {
    sched_brownian_destroy(s->priv);
    s->priv = NULL;
}

/* sigma_fn(t_fn(sigma) + (t_fn(next) - t_fn(sigma)) / 2) in float32. */
static float midpoint_sigma(float sigma, float next) {
    float t = -logf(sigma), t_next = -logf(next);
    return expf(-(t + (t_next - t) * 0.5f));
}

static void scale(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n) {
    float sigma = s->PENDING ? midpoint_sigma(s->sigmas[i - 1], s->sigmas[i]) : s->sigmas[i];
    float d = sqrtf(sigma * sigma + 1.0f);
    for (size_t k = 0; k < n; k++) out[k] = in[k] / d;
}

/* x0 at sigma_input, as this class writes it (v-prediction divides the
 * sample by sigma^2 + 1 rather than multiplying by c_skip). */
static void predict_x0(const sdrt_sched *s, float si, const float *e, const float *x, float *x0, size_t n) {
    if (cfg_is(&s->cfg, SCHED_F_PREDICTION_TYPE, "v_prediction")) {
        float d2 = si * si + 1.0f, c_out = -si / sqrtf(d2);
        for (size_t k = 0; k < n; k++) x0[k] = e[k] * c_out + x[k] / d2;
        return;
    }
    for (size_t k = 0; k < n; k++) x0[k] = x[k] - si * e[k];
}

/* The tree's noise for the step from sigma `from` down to `to`:
 * BrownianTreeNoiseSampler(from, to) = -W(to, from) / sqrt(|to - from|). */
static sdrt_status tree_noise(sdrt_sched *s, sdrt_rng *rng, float from, float to, float *z, size_t n) {
    if (!s->priv) {
        float lo = 0.0f, hi = 0.0f;
        for (uint32_t i = 0; i < s->n_sigmas; i++) {
            float v = s->sigmas[i];
            if (v > 0.0f && (lo == 0.0f || v < lo)) lo = v;
            if (v > hi) hi = v;
        }
        const sched_config *c = &s->cfg;
        uint64_t seed = cfg_null(c, SCHED_F_NOISE_SAMPLER_SEED) ? rng->seed
                                                                 : (uint64_t)cfg_num(c, SCHED_F_NOISE_SAMPLER_SEED);
        sched_brownian *b = NULL;
        sdrt_status st = sched_brownian_create(seed, lo, hi, n, &b);
        if (st) return st;
        s->priv = b;
    }
    float a = from < to ? from : to, b = from < to ? to : from;
    sdrt_status st = sched_brownian_increment(s->priv, a, b, z);
    if (st) return st;
    float sign = from < to ? 1.0f : -1.0f, d = sqrtf(fabsf(to - from));
    for (size_t k = 0; k < n; k++) z[k] = z[k] * sign / d;
    return SDRT_OK;
}

/* The ancestral DPM-Solver++ update from `base` at t = -log sigma to
 * sigma_to, plus the tree's noise scaled by sigma_up. */
static sdrt_status sde_update(sdrt_sched *s, sdrt_rng *rng, float sigma, float sigma_to, const float *base,
                              const float *x0, float *x, size_t n) {
    float t = -logf(sigma);
    float from = expf(-t);
    float up = sqrtf(sigma_to * sigma_to * (from * from - sigma_to * sigma_to) / (from * from));
    if (!(up < sigma_to)) up = sigma_to; /* Python's min(sigma_to, up) keeps sigma_to unless up is smaller */
    float down = sqrtf(sigma_to * sigma_to - up * up);
    float anc_t = -logf(down);
    float ratio = expf(-anc_t) / expf(-t), em1 = expm1f(t - anc_t);
    float *z = s->buf[2];
    sdrt_status st = tree_noise(s, rng, from, sigma_to, z, n);
    if (st) return st;
    for (size_t k = 0; k < n; k++) {
        float v = ratio * base[k] - em1 * x0[k];
        x[k] = v + z[k] * up;
    }
    return SDRT_OK;
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    int second = s->PENDING;
    float sigma = second ? s->sigmas[i - 1] : s->sigmas[i];
    float next = second ? s->sigmas[i] : s->sigmas[i + 1];
    float *x0 = s->buf[0], *saved = s->buf[1];
    float mid = next == 0.0f ? 0.0f : midpoint_sigma(sigma, next);
    predict_x0(s, second ? mid : sigma, e, x, x0, n);
    if (next == 0.0f) {
        /* the last iteration: an Euler step to sigma 0, no noise */
        float dt = next - sigma;
        for (size_t k = 0; k < n; k++) {
            float d = (x[k] - x0[k]) / sigma;
            x[k] = x[k] + d * dt;
        }
        return SDRT_OK;
    }
    if (second) {
        s->PENDING = 0;
        return sde_update(s, rng, sigma, expf(logf(next)), saved, x0, x, n);
    }
    memcpy(saved, x, n * sizeof *x);
    s->PENDING = 1;
    return sde_update(s, rng, sigma, mid, saved, x0, x, n);
}

const sched_kind sched_kind_dpmsolver_sde = {
    .name = "DPMSolverSDEScheduler",
    .fields = fields,
    .order = 2,
    .stochastic = 1,
    .has_sigmas = 1,
    .setup = setup,
    .scale = scale,
    .step = step,
    .release = release,
    .n_bufs = 3,
};
