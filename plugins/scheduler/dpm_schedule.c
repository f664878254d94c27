/* plugins/scheduler/dpm_schedule.c - set_timesteps of DPMSolverMultistep,
 * UniPCMultistep and DEISMultistep.
 *
 * Their timesteps are int64 in diffusers: spacing over N+1 points with the
 * last dropped, or the sigma ramp mapped back to timesteps (rounded for
 * karras/lu, truncated by the int64 cast otherwise - a diffusers quirk we
 * keep for parity).
 */
#include <math.h>
#include <stdlib.h>

#include "sched.h"

static int flag(const sched_config *c, sched_field f) { return c->v[f].present && cfg_bool(c, f); }

/* DPM's lambda_min_clipped: the last usable training timestep. */
static uint32_t last_timestep(const sdrt_sched *s) {
    const sched_config *c = &s->cfg;
    if (!c->v[SCHED_F_LAMBDA_MIN_CLIPPED].present) return s->T;
    double lmin = cfg_num(c, SCHED_F_LAMBDA_MIN_CLIPPED);
    /* searchsorted(flip(lambda_t), lmin): how many lambdas (ascending after
     * the flip) are < lmin */
    uint32_t clipped = 0;
    for (uint32_t i = 0; i < s->T; i++) {
        float a = s->alphas_cumprod[i];
        float lam = logf(sqrtf(a)) - logf(sqrtf(1.0f - a));
        if ((double)lam < lmin) clipped++;
    }
    return s->T - clipped;
}

/* Integer spacing over N+1 points (linspace/leading), or trailing.
 * DPMSolverSinglestep has no timestep_spacing field: always linspace. */
static uint32_t int_spacing(const sdrt_sched *s, sched_dpm_variant v, uint32_t last, uint32_t N, double *ts) {
    const sched_config *c = &s->cfg;
    if (v == SCHED_VAR_SINGLE || cfg_is(c, SCHED_F_TIMESTEP_SPACING, "linspace")) {
        double *tmp = malloc((N + 1) * sizeof *tmp);
        if (!tmp) return 0;
        sched_np_linspace(0, (double)last - 1, N + 1, tmp);
        for (uint32_t i = 0; i < N; i++) ts[i] = nearbyint(tmp[N - i]);
        free(tmp);
        return N;
    }
    if (cfg_is(c, SCHED_F_TIMESTEP_SPACING, "leading")) {
        uint32_t ratio = last / (N + 1);
        double off = cfg_num(c, SCHED_F_STEPS_OFFSET);
        for (uint32_t i = 0; i < N; i++) ts[i] = (double)(N - i) * ratio + off;
        return N;
    }
    double ratio = (double)s->T / (double)N;
    double len = ceil(((double)0 - (double)last) / -ratio);
    uint32_t n = len > N + 1 ? N + 1 : (uint32_t)len;
    double delta = ((double)last - ratio) - (double)last;
    for (uint32_t i = 0; i < n; i++) ts[i] = nearbyint((double)last + (double)i * delta) - 1.0;
    return n;
}

sdrt_status sched_dpm_schedule(sdrt_sched *s, sched_dpm_variant v) {
    const sched_config *c = &s->cfg;
    uint32_t T = s->T, N = (uint32_t)s->num_inference_steps;
    double *ts = calloc(N + 2, sizeof *ts), *sig = calloc(N + 2, sizeof *sig), *logs = malloc(T * sizeof *logs);
    float *tsig = malloc(T * sizeof *tsig);
    if (!ts || !sig || !logs || !tsig) {
        free(ts), free(sig), free(logs), free(tsig);
        return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    }
    sched_train_sigmas(s, tsig);
    for (uint32_t i = 0; i < T; i++) logs[i] = (double)logf(tsig[i]);
    uint32_t last = (v == SCHED_VAR_DPM || v == SCHED_VAR_SINGLE) ? last_timestep(s) : T;
    /* set_timesteps(timesteps=AYS) replaces the spacing and lambda_min_clipped */
    sdrt_status st = SDRT_OK;
    if (sched_ays_enabled(s)) st = sched_ays_timesteps(s, N, ts);
    else N = int_spacing(s, v, last, N, ts);
    if (st) {
        free(ts), free(sig), free(logs), free(tsig);
        return st;
    }

    int sigma_min_final = c->v[SCHED_F_FINAL_SIGMAS_TYPE].present && cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "sigma_min");
    double smin = tsig[0], smax = tsig[T - 1];
    int ramp = 1, round_ts = 0;
    if (flag(c, SCHED_F_USE_KARRAS_SIGMAS)) {
        sched_karras(s, smin, smax, N, sig);
        round_ts = v != SCHED_VAR_DPM || !cfg_is(c, SCHED_F_BETA_SCHEDULE, "squaredcos_cap_v2");
    } else if (flag(c, SCHED_F_USE_LU_LAMBDAS)) {
        double lmin = logs[0], lmax = logs[T - 1];
        sched_np_linspace(0, 1, N, sig);
        for (uint32_t i = 0; i < N; i++) sig[i] = exp(lmax + sig[i] * (lmin - lmax));
        round_ts = !cfg_is(c, SCHED_F_BETA_SCHEDULE, "squaredcos_cap_v2");
    } else if (flag(c, SCHED_F_USE_EXPONENTIAL_SIGMAS)) {
        sched_exponential(s, smin, smax, N, sig);
    } else if (flag(c, SCHED_F_USE_BETA_SIGMAS)) {
        sched_beta_sigmas(s, smin, smax, N, sig);
    } else {
        ramp = 0;
        for (uint32_t i = 0; i < N; i++) sig[i] = sched_interp(ts[i], tsig, T);
    }
    if (ramp)
        for (uint32_t i = 0; i < N; i++) {
            double t = sched_sigma_to_t(sig[i], logs, T);
            ts[i] = round_ts ? nearbyint(t) : trunc(t);
        }

    float a0 = s->alphas_cumprod[0];
    double train_min = (double)sqrtf((1.0f - a0) / a0);
    double final;
    if (v == SCHED_VAR_DEIS) final = ramp ? sig[N - 1] : train_min;
    else if (!sigma_min_final) final = 0.0;
    else final = (ramp && v == SCHED_VAR_UNIPC) ? sig[N - 1] : train_min;
    sig[N] = final;

    st = sched_alloc_tables(s, N, N + 1);
    if (!st) {
        for (uint32_t i = 0; i < N; i++) s->timesteps[i] = (float)ts[i];
        for (uint32_t i = 0; i <= N; i++) s->sigmas[i] = (float)sig[i];
        s->init_noise_sigma = 1.0f;
    }
    free(ts), free(sig), free(logs), free(tsig);
    return st;
}

void sched_dpm_add_noise(sdrt_sched *s, const float *x0, const float *noise, uint32_t i, float *out, size_t n) {
    float at, st;
    sched_alpha_sigma(s->sigmas[i], &at, &st);
    for (size_t k = 0; k < n; k++) out[k] = at * x0[k] + st * noise[k];
}
