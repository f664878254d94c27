/* plugins/scheduler/betas.c - the training noise schedule.
 *
 * betas -> alphas -> alphas_cumprod over num_train_timesteps, in float32
 * like diffusers' torch tensors. torch.cumprod on CPU accumulates a float
 * tensor in double and rounds each output, so we do the same.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

/* torch.linspace(a, b, n, dtype=float32) on CPU: a float step, the first
 * half anchored at a and the second at b. PyTorch's build contracts
 * `start + step * idx` into one fused multiply-add (verified bit for bit
 * against torch 2.x), so we round once with fmaf as well. */
void sched_torch_linspace_f32(float a, float b, uint32_t n, float *out) {
    if (n == 1) {
        out[0] = a;
        return;
    }
    float step = (b - a) / (float)(n - 1);
    uint32_t half = n / 2;
    for (uint32_t i = 0; i < n; i++)
        out[i] = i < half ? fmaf(step, (float)i, a) : fmaf(-step, (float)(n - i - 1), b);
}

static double cosine_alpha_bar(double t) {
    double c = cos((t + 0.008) / 1.008 * M_PI / 2.0);
    return c * c;
}

/* squaredcos_cap_v2 (Nichol & Dhariwal), computed in double like diffusers'
 * python loop, then stored as float32. */
static void cosine_betas(uint32_t n, float *out) {
    for (uint32_t i = 0; i < n; i++) {
        double t1 = (double)i / n, t2 = (double)(i + 1) / n;
        double b = 1.0 - cosine_alpha_bar(t2) / cosine_alpha_bar(t1);
        out[i] = (float)(b < 0.999 ? b : 0.999);
    }
}

static void cumprod(const float *a, uint32_t n, float *out) {
    double acc = 1.0;
    for (uint32_t i = 0; i < n; i++) {
        acc *= a[i];
        out[i] = (float)acc;
    }
}

/* rescale_zero_terminal_snr (Lin et al. 2023, Algorithm 1) in float32. */
static void rescale_zero_snr(float *betas, uint32_t n) {
    if (n < 2) return; /* callers guarantee T >= 2; the guard tells the compiler ab[0] is written */
    float *ab = malloc(n * sizeof *ab), *al = malloc(n * sizeof *al);
    if (!ab || !al) {
        free(ab);
        free(al);
        return;
    }
    for (uint32_t i = 0; i < n; i++) al[i] = 1.0f - betas[i];
    cumprod(al, n, ab);
    for (uint32_t i = 0; i < n; i++) ab[i] = sqrtf(ab[i]);
    float a0 = ab[0], aT = ab[n - 1];
    float scale = a0 / (a0 - aT);
    for (uint32_t i = 0; i < n; i++) {
        float v = (ab[i] - aT) * scale;
        ab[i] = v * v;
    }
    betas[0] = 1.0f - ab[0];
    for (uint32_t i = 1; i < n; i++) betas[i] = 1.0f - ab[i] / ab[i - 1];
    free(ab);
    free(al);
}

sdrt_status sched_make_betas(sdrt_sched *s) {
    const sched_config *c = &s->cfg;
    sched_diag *d = &s->diag;
    uint32_t T;
    if (!cfg_null(c, SCHED_F_TRAINED_BETAS) && c->v[SCHED_F_TRAINED_BETAS].arr) {
        T = c->v[SCHED_F_TRAINED_BETAS].n_arr;
        if (T < 2)
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.trained_betas: needs at least 2 values");
    } else {
        double nt = cfg_num(c, SCHED_F_NUM_TRAIN_TIMESTEPS);
        if (nt < 2 || nt > 100000)
            return sched_fail(d, SDRT_INVALID_ARGUMENT,
                              "scheduler_config.num_train_timesteps: %.0f is not in 2..100000", nt);
        T = (uint32_t)nt;
    }
    s->T = T;
    s->betas = malloc(T * sizeof(float));
    s->alphas = malloc(T * sizeof(float));
    s->alphas_cumprod = malloc(T * sizeof(float));
    if (!s->betas || !s->alphas || !s->alphas_cumprod)
        return sched_fail(d, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");

    if (!cfg_null(c, SCHED_F_TRAINED_BETAS) && c->v[SCHED_F_TRAINED_BETAS].arr) {
        memcpy(s->betas, c->v[SCHED_F_TRAINED_BETAS].arr, T * sizeof(float));
    } else {
        double b0 = cfg_num(c, SCHED_F_BETA_START), b1 = cfg_num(c, SCHED_F_BETA_END);
        if (!(b0 > 0 && b0 < 1))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.beta_start: %g is not in (0, 1)", b0);
        if (!(b1 > 0 && b1 < 1))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.beta_end: %g is not in (0, 1)", b1);
        /* A schedule whose noise shrinks over training time starts sampling
         * from almost no noise: every step "denoises" signal into a flat
         * (black) image. diffusers does not check; sdrt refuses it. */
        if (b0 > b1 && !cfg_is(c, SCHED_F_BETA_SCHEDULE, "squaredcos_cap_v2"))
            return sched_fail(d, SDRT_INVALID_ARGUMENT,
                              "scheduler_config.beta_start: %g is greater than beta_end %g (the noise schedule must "
                              "not decrease)", b0, b1);
        if (cfg_is(c, SCHED_F_BETA_SCHEDULE, "linear")) {
            sched_torch_linspace_f32((float)b0, (float)b1, T, s->betas);
        } else if (cfg_is(c, SCHED_F_BETA_SCHEDULE, "scaled_linear")) {
            sched_torch_linspace_f32((float)sqrt(b0), (float)sqrt(b1), T, s->betas);
            for (uint32_t i = 0; i < T; i++) s->betas[i] *= s->betas[i];
        } else if (cfg_is(c, SCHED_F_BETA_SCHEDULE, "squaredcos_cap_v2")) {
            cosine_betas(T, s->betas);
        } else {
            return sched_fail(d, SDRT_INVALID_ARGUMENT,
                              "scheduler_config.beta_schedule: '%s' is not one of linear, scaled_linear, "
                              "squaredcos_cap_v2",
                              c->v[SCHED_F_BETA_SCHEDULE].str);
        }
    }
    for (uint32_t i = 0; i < T; i++)
        if (!(s->betas[i] > 0.0f && s->betas[i] < 1.0f))
            return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config%s: beta[%u] = %g is not in (0, 1)",
                              !cfg_null(c, SCHED_F_TRAINED_BETAS) ? ".trained_betas" : "", i, s->betas[i]);
    int zero_snr = c->v[SCHED_F_RESCALE_BETAS_ZERO_SNR].present && cfg_bool(c, SCHED_F_RESCALE_BETAS_ZERO_SNR);
    if (zero_snr) rescale_zero_snr(s->betas, T);
    for (uint32_t i = 0; i < T; i++) s->alphas[i] = 1.0f - s->betas[i];
    cumprod(s->alphas, T, s->alphas_cumprod);
    /* diffusers: keeps the last sigma finite for sigma-based samplers */
    if (zero_snr && s->kind->has_sigmas) s->alphas_cumprod[T - 1] = 1.0f / 16777216.0f;
    return SDRT_OK;
}

void sched_train_sigmas(const sdrt_sched *s, float *out) {
    for (uint32_t i = 0; i < s->T; i++) {
        float a = s->alphas_cumprod[i];
        out[i] = sqrtf((1.0f - a) / a);
    }
}

float sched_alpha_at(const sdrt_sched *s, int64_t t) {
    if (t < 0) t = 0;
    if (t >= (int64_t)s->T) t = s->T - 1;
    return s->alphas_cumprod[t];
}
