/* plugins/scheduler/euler.c - EulerDiscreteScheduler (k-diffusion "euler").
 *
 * The sigma-space schedule built here (spacing -> interpolated sigmas ->
 * optional karras/exponential/beta ramp -> final sigma) is shared with the
 * other k-diffusion style kinds through sched_build_sigmas().
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},   {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},              {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},         {SCHED_F_PREDICTION_TYPE, "\"epsilon\""},
    {SCHED_F_INTERPOLATION_TYPE, "\"linear\""}, {SCHED_F_USE_KARRAS_SIGMAS, "false"},
    {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"}, {SCHED_F_USE_BETA_SIGMAS, "false"},
    {SCHED_F_SIGMA_MIN, "null"},             {SCHED_F_SIGMA_MAX, "null"},
    {SCHED_F_TIMESTEP_SPACING, "\"linspace\""}, {SCHED_F_TIMESTEP_TYPE, "\"discrete\""},
    {SCHED_F_STEPS_OFFSET, "0"},             {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"},
    {SCHED_F_FINAL_SIGMAS_TYPE, "\"zero\""}, {SCHED_F_ALIGN_YOUR_STEPS, "false"}, {SCHED_F_AYS_MODEL, "\"auto\""},
    {0, NULL},
};

static int flag(const sched_config *c, sched_field f) { return c->v[f].present && cfg_bool(c, f); }

/* init_noise_sigma of the Euler family: max sigma, or sqrt(max^2 + 1) for
 * leading spacing. */
void sched_euler_init_noise_sigma(sdrt_sched *s) {
    float mx = 0;
    for (uint32_t i = 0; i < s->n_sigmas; i++)
        if (s->sigmas[i] > mx) mx = s->sigmas[i];
    const sched_config *c = &s->cfg;
    if (cfg_is(c, SCHED_F_TIMESTEP_SPACING, "linspace") || cfg_is(c, SCHED_F_TIMESTEP_SPACING, "trailing"))
        s->init_noise_sigma = mx;
    else
        s->init_noise_sigma = sqrtf(mx * mx + 1.0f);
}

/* The sigma schedule of EulerDiscreteScheduler.set_timesteps (also used by
 * Heun, LMS, KDPM2 with their own post-processing). Fills ts[0..N) and
 * sig[0..N] in double (before the float32 cast) and returns N. */
sdrt_status sched_build_sigmas(sdrt_sched *s, double *ts, double *sig, uint32_t *n_out) {
    const sched_config *c = &s->cfg;
    uint32_t T = s->T, N = (uint32_t)s->num_inference_steps;
    float *tsig = malloc(T * sizeof *tsig);
    double *logs = malloc(T * sizeof *logs);
    if (!tsig || !logs) {
        free(tsig);
        free(logs);
        return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    }
    sched_train_sigmas(s, tsig);
    for (uint32_t i = 0; i < T; i++) logs[i] = (double)logf(tsig[i]);
    if (sched_ays_enabled(s)) {
        /* set_timesteps(timesteps=AYS): no spacing (HeunDiscrete) */
        if (sched_ays_timesteps(s, N, ts)) {
            free(tsig);
            free(logs);
            return s->diag.code;
        }
    } else {
        N = sched_spacing(s, N, ts);
    }
    /* numpy: timesteps are float32 before they are interpolated */
    for (uint32_t i = 0; i < N; i++) ts[i] = (double)(float)ts[i];
    for (uint32_t i = 0; i < N; i++) sig[i] = sched_interp(ts[i], tsig, T);
    double smin = sig[N - 1], smax = sig[0];
    int ramp = 1;
    if (flag(c, SCHED_F_USE_KARRAS_SIGMAS)) sched_karras(s, smin, smax, N, sig);
    else if (flag(c, SCHED_F_USE_EXPONENTIAL_SIGMAS)) sched_exponential(s, smin, smax, N, sig);
    else if (flag(c, SCHED_F_USE_BETA_SIGMAS)) sched_beta_sigmas(s, smin, smax, N, sig);
    else ramp = 0;
    if (ramp)
        for (uint32_t i = 0; i < N; i++) ts[i] = sched_sigma_to_t(sig[i], logs, T);
    free(tsig);
    free(logs);
    *n_out = N;
    return SDRT_OK;
}

/* set_timesteps(sigmas=AYS): the sigmas as given (float32, last 0), the
 * timesteps from _sigma_to_t in float32; spacing, interpolation_type and
 * final_sigmas_type do not apply. */
static sdrt_status setup_ays(sdrt_sched *s) {
    uint32_t N = (uint32_t)s->num_inference_steps, T = s->T;
    double *sig = malloc((N + 1) * sizeof *sig);
    float *logs = malloc(T * sizeof *logs);
    if (!sig || !logs || sched_alloc_tables(s, N, N + 1)) {
        free(sig);
        free(logs);
        return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    }
    sched_ays_sigmas(s, N, sig);
    sched_train_sigmas(s, logs);
    for (uint32_t i = 0; i < T; i++) logs[i] = logf(logs[i]);
    for (uint32_t i = 0; i <= N; i++) s->sigmas[i] = (float)sig[i];
    const sched_config *c = &s->cfg;
    int continuous = cfg_is(c, SCHED_F_TIMESTEP_TYPE, "continuous") && cfg_is(c, SCHED_F_PREDICTION_TYPE, "v_prediction");
    for (uint32_t i = 0; i < N; i++)
        s->timesteps[i] = continuous ? 0.25f * logf(s->sigmas[i]) : (float)sched_sigma_to_t_f32(s->sigmas[i], logs, T);
    free(sig);
    free(logs);
    sched_euler_init_noise_sigma(s);
    return SDRT_OK;
}

static sdrt_status setup(sdrt_sched *s) {
    const sched_config *c = &s->cfg;
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1)) return s->diag.code;
    if (!cfg_is(c, SCHED_F_INTERPOLATION_TYPE, "linear") && !cfg_is(c, SCHED_F_INTERPOLATION_TYPE, "log_linear"))
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.interpolation_type: '%s' is not one of linear, log_linear",
                          c->v[SCHED_F_INTERPOLATION_TYPE].str);
    if (!cfg_is(c, SCHED_F_TIMESTEP_TYPE, "discrete") && !cfg_is(c, SCHED_F_TIMESTEP_TYPE, "continuous"))
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.timestep_type: '%s' is not one of discrete, continuous",
                          c->v[SCHED_F_TIMESTEP_TYPE].str);
    int sigma_min_final = cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "sigma_min");
    if (!sigma_min_final && !cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero"))
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.final_sigmas_type: '%s' is not one of zero, sigma_min",
                          c->v[SCHED_F_FINAL_SIGMAS_TYPE].str);
    if (sched_ays_enabled(s)) return setup_ays(s);
    uint32_t N0 = (uint32_t)s->num_inference_steps;
    double *ts = calloc(N0 + 2, sizeof *ts), *sig = calloc(N0 + 2, sizeof *sig);
    uint32_t N = 0, NS;
    if (!ts || !sig || sched_build_sigmas(s, ts, sig, &N)) {
        free(ts);
        free(sig);
        return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    }
    if (cfg_is(c, SCHED_F_INTERPOLATION_TYPE, "log_linear") && !flag(c, SCHED_F_USE_KARRAS_SIGMAS) &&
        !flag(c, SCHED_F_USE_EXPONENTIAL_SIGMAS) && !flag(c, SCHED_F_USE_BETA_SIGMAS)) {
        /* torch.linspace(log(sigma_max), log(sigma_min), N+1).exp() in float32;
         * diffusers keeps all N+1 values before appending the final sigma */
        float *tsig = malloc(s->T * sizeof *tsig);
        if (!tsig) return SDRT_RESOURCE_EXHAUSTED;
        sched_train_sigmas(s, tsig);
        float *ramp = malloc((N + 1) * sizeof *ramp);
        if (!ramp) {
            free(tsig);
            return SDRT_RESOURCE_EXHAUSTED;
        }
        sched_torch_linspace_f32(logf(tsig[s->T - 1]), logf(tsig[0]), N + 1, ramp);
        for (uint32_t i = 0; i <= N; i++) sig[i] = (double)expf(ramp[i]);
        free(ramp);
        free(tsig);
        NS = N + 2;
    } else {
        NS = N + 1;
    }
    float a0 = s->alphas_cumprod[0];
    sig[NS - 1] = sigma_min_final ? (double)sqrtf((1.0f - a0) / a0) : 0.0;
    if (sched_alloc_tables(s, N, NS)) {
        free(ts);
        free(sig);
        return s->diag.code;
    }
    for (uint32_t i = 0; i < NS; i++) s->sigmas[i] = (float)sig[i];
    int continuous = cfg_is(c, SCHED_F_TIMESTEP_TYPE, "continuous") && cfg_is(c, SCHED_F_PREDICTION_TYPE, "v_prediction");
    for (uint32_t i = 0; i < N; i++) s->timesteps[i] = continuous ? 0.25f * logf(s->sigmas[i]) : (float)ts[i];
    free(ts);
    free(sig);
    sched_euler_init_noise_sigma(s);
    return SDRT_OK;
}

/* x0 prediction of the k-diffusion family from the model output. */
void sched_k_x0(const sdrt_sched *s, float sigma, const float *e, const float *x, float *x0, size_t n) {
    const sched_config *c = &s->cfg;
    if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "epsilon")) {
        for (size_t k = 0; k < n; k++) x0[k] = x[k] - sigma * e[k];
    } else if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "v_prediction")) {
        float c1 = -sigma / sqrtf(sigma * sigma + 1.0f), c2 = sigma * sigma + 1.0f;
        for (size_t k = 0; k < n; k++) x0[k] = e[k] * c1 + x[k] / c2;
    } else {
        memcpy(x0, e, n * sizeof *x0);
    }
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    float sigma = s->sigmas[i];
    float dt = s->sigmas[i + 1] - sigma;
    float *x0 = s->buf[0];
    sched_k_x0(s, sigma, e, x, x0, n);
    for (size_t k = 0; k < n; k++) {
        float d = (x[k] - x0[k]) / sigma;
        x[k] = x[k] + d * dt;
    }
    return SDRT_OK;
}

const sched_kind sched_kind_euler = {
    .name = "EulerDiscreteScheduler",
    .fields = fields,
    .order = 1,
    .has_sigmas = 1,
    .setup = setup,
    .scale = sched_scale_sigma,
    .step = step,
    .n_bufs = 1,
};

sdrt_status sched_k_tables(sdrt_sched *s) {
    uint32_t N0 = (uint32_t)s->num_inference_steps, N = 0;
    double *ts = calloc(N0 + 2, sizeof *ts), *sig = calloc(N0 + 2, sizeof *sig);
    sdrt_status st = (!ts || !sig) ? sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory")
                                   : sched_build_sigmas(s, ts, sig, &N);
    if (!st) st = sched_alloc_tables(s, N, N + 1);
    if (!st) {
        for (uint32_t i = 0; i < N; i++) {
            s->timesteps[i] = (float)ts[i];
            s->sigmas[i] = (float)sig[i];
        }
        s->sigmas[N] = 0.0f;
        sched_euler_init_noise_sigma(s);
    }
    free(ts);
    free(sig);
    return st;
}
