/* plugins/scheduler/kdpm2.c - KDPM2DiscreteScheduler and
 * KDPM2AncestralDiscreteScheduler (k-diffusion "dpm_2" and
 * "dpm_2_ancestral", A1111 "DPM2" and "DPM2 a").
 *
 * Each solver step is two loop iterations (order 2): an Euler step to the
 * midpoint sigma (geometric mean, via torch.lerp of the logs), then a step
 * with the midpoint's derivative from the saved sample. The tables are
 * built as diffusers builds them, interleaved to the loop length
 * ([s0, s1, s1, ..., sN, sN]), and indexed exactly as diffusers indexes
 * them, so no off-by-one can creep in.
 *
 * priv = the interleaved sigmas_interpol, sigmas_up and sigmas_down
 * (n_sigmas floats each). buf[0] = x0 scratch, buf[1] = saved sample,
 * buf[2] = noise. ctr[0] = 1 while a second half is pending.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},  {SCHED_F_BETA_START, "0.00085"},
    {SCHED_F_BETA_END, "0.012"},            {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},        {SCHED_F_USE_KARRAS_SIGMAS, "false"},
    {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"}, {SCHED_F_USE_BETA_SIGMAS, "false"},
    {SCHED_F_PREDICTION_TYPE, "\"epsilon\""}, {SCHED_F_TIMESTEP_SPACING, "\"linspace\""},
    {SCHED_F_STEPS_OFFSET, "0"},            {0, NULL},
};

#define PENDING ctr[0]

typedef struct kdpm2_tables {
    float *interp, *up, *down; /* interleaved like s->sigmas */
} kdpm2_tables;

/* torch.lerp(start, end, 0.5) in float32 (the weight >= 0.5 branch). */
static float lerp_half(float start, float end) { return end - (end - start) * 0.5f; }

/* [x0, x1, x1, ..., xN, xN] from x[0..N]. */
static void interleave(const float *x, uint32_t N, float *out) {
    out[0] = x[0];
    for (uint32_t k = 1; k <= N; k++) out[2 * k - 1] = out[2 * k] = x[k];
    out[2 * N + 1] = x[N];
}

/* sigmas_interpol, sigmas_up, sigmas_down over the base sigmas sig[0..N]. */
static void base_tables(const float *sig, uint32_t N, int ancestral, float *interp, float *up, float *down) {
    for (uint32_t k = 0; k <= N; k++) {
        float next = k < N ? sig[k + 1] : 0.0f;
        float s2 = sig[k] * sig[k], n2 = next * next;
        up[k] = sqrtf(n2 * (s2 - n2) / s2);
        down[k] = k < N ? sqrtf(n2 - up[k] * up[k]) : 0.0f;
        if (ancestral) {
            interp[k] = expf(lerp_half(logf(sig[k]), logf(down[k])));
        } else {
            float prev = sig[k == 0 ? N : k - 1]; /* roll(1) */
            interp[k] = expf(lerp_half(logf(sig[k]), logf(prev)));
        }
    }
    if (ancestral) interp[N] = interp[N - 1] = 0.0f; /* sigmas_interpol[-2:] = 0 */
}

/* diffusers' _sigma_to_t as these classes call it: with torch float32
 * tensors, so the log-sigma differences are float32 (which matters near
 * t = 0, where they cancel). */
static double sigma_to_t_f32(float sigma, const float *log_sigmas, uint32_t n) {
    float ls = logf(sigma > 1e-10f ? sigma : 1e-10f);
    uint32_t lo = 0;
    for (uint32_t i = 0; i < n; i++)
        if (ls - log_sigmas[i] >= 0.0f) lo = i;
    if (lo > n - 2) lo = n - 2;
    float low = log_sigmas[lo], high = log_sigmas[lo + 1];
    float w = (low - ls) / (low - high);
    w = w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
    return (1.0 - (double)w) * lo + (double)w * (lo + 1);
}

/* Timesteps: [t0] + interleave(interp timesteps, t[1:]); the ancestral
 * class takes interp[0..N-2], the plain one interp[1..N-1]. */
static void make_timesteps(sdrt_sched *s, const double *ts, const float *interp, uint32_t N, int ancestral,
                           const float *logs) {
    s->timesteps[0] = (float)ts[0];
    for (uint32_t k = 1; k < N; k++) {
        float si = interp[ancestral ? k - 1 : k];
        s->timesteps[2 * k - 1] = (float)sigma_to_t_f32(si, logs, s->T);
        s->timesteps[2 * k] = (float)ts[k];
    }
}

static sdrt_status build(sdrt_sched *s, const double *ts, const double *sig, uint32_t N, int ancestral) {
    uint32_t NS = 2 * N + 2;
    float *base = malloc(4 * (N + 1) * sizeof *base);
    kdpm2_tables *t = calloc(1, sizeof *t);
    float *full = malloc(3 * NS * sizeof *full);
    float *logs = malloc(s->T * sizeof *logs);
    float *tsig = malloc(s->T * sizeof *tsig);
    sdrt_status st = (!base || !t || !full || !logs || !tsig)
                         ? sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory")
                         : sched_alloc_tables(s, 2 * N - 1, NS);
    if (!st) {
        float *b_sig = base, *b_int = base + (N + 1), *b_up = base + 2 * (N + 1), *b_down = base + 3 * (N + 1);
        for (uint32_t k = 0; k < N; k++) b_sig[k] = (float)sig[k];
        b_sig[N] = 0.0f;
        base_tables(b_sig, N, ancestral, b_int, b_up, b_down);
        interleave(b_sig, N, s->sigmas);
        t->interp = full;
        t->up = full + NS;
        t->down = full + 2 * NS;
        interleave(b_int, N, t->interp);
        interleave(b_up, N, t->up);
        interleave(b_down, N, t->down);
        sched_train_sigmas(s, tsig);
        for (uint32_t i = 0; i < s->T; i++) logs[i] = logf(tsig[i]);
        make_timesteps(s, ts, b_int, N, ancestral, logs);
        s->priv = t;
        t = NULL;
        full = NULL;
        sched_euler_init_noise_sigma(s);
    }
    free(base);
    free(t);
    free(full);
    free(logs);
    free(tsig);
    return st;
}

static sdrt_status setup_common(sdrt_sched *s, int ancestral) {
    /* diffusers raises NotImplementedError for prediction_type sample */
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 0)) return s->diag.code;
    uint32_t N0 = (uint32_t)s->num_inference_steps, N = 0;
    double *ts = calloc(N0 + 2, sizeof *ts), *sig = calloc(N0 + 2, sizeof *sig);
    sdrt_status st = (!ts || !sig) ? sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory")
                                   : sched_build_sigmas(s, ts, sig, &N);
    /* these classes round the karras timesteps (Euler does not) */
    if (!st && cfg_bool(&s->cfg, SCHED_F_USE_KARRAS_SIGMAS))
        for (uint32_t k = 0; k < N; k++) ts[k] = nearbyint(ts[k]);
    if (!st) st = build(s, ts, sig, N, ancestral);
    s->PENDING = 0;
    free(ts);
    free(sig);
    return st;
}

static sdrt_status setup_plain(sdrt_sched *s) { return setup_common(s, 0); }
static sdrt_status setup_ancestral(sdrt_sched *s) { return setup_common(s, 1); }

static void release(sdrt_sched *s) {
    kdpm2_tables *t = s->priv;
    if (t) free(t->interp);
    free(t);
    s->priv = NULL;
}

static const kdpm2_tables *tables(const sdrt_sched *s) { return s->priv; }

static void scale_plain(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n) {
    float sigma = s->PENDING ? tables(s)->interp[i] : s->sigmas[i];
    float d = sqrtf(sigma * sigma + 1.0f);
    for (size_t k = 0; k < n; k++) out[k] = in[k] / d;
}

static void scale_ancestral(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n) {
    float sigma = s->PENDING ? tables(s)->interp[i - 1] : s->sigmas[i];
    float d = sqrtf(sigma * sigma + 1.0f);
    for (size_t k = 0; k < n; k++) out[k] = in[k] / d;
}

/* x0 at sigma_input, then prev = base + (x - x0) / sigma_div * dt. */
static void euler_from(const sdrt_sched *s, float sigma_input, float sigma_div, float dt, const float *base,
                       const float *e, float *x, size_t n) {
    float *x0 = s->buf[0];
    sched_k_x0(s, sigma_input, e, x, x0, n);
    for (size_t k = 0; k < n; k++) {
        float d = (x[k] - x0[k]) / sigma_div;
        x[k] = base[k] + d * dt;
    }
}

static sdrt_status step_plain(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    (void)rng;
    const kdpm2_tables *t = tables(s);
    float *saved = s->buf[1];
    if (!s->PENDING) {
        float sigma = s->sigmas[i], interp = t->interp[i + 1];
        memcpy(saved, x, n * sizeof *x);
        euler_from(s, sigma, sigma, interp - sigma, saved, e, x, n);
        s->PENDING = 1;
        return SDRT_OK;
    }
    float sigma = s->sigmas[i - 1], interp = t->interp[i], next = s->sigmas[i];
    euler_from(s, interp, interp, next - sigma, saved, e, x, n);
    s->PENDING = 0;
    return SDRT_OK;
}

static sdrt_status step_ancestral(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    const kdpm2_tables *t = tables(s);
    float *saved = s->buf[1], *z = s->buf[2];
    if (!s->PENDING) {
        float sigma = s->sigmas[i], interp = t->interp[i];
        memcpy(saved, x, n * sizeof *x);
        euler_from(s, sigma, sigma, interp - sigma, saved, e, x, n);
        s->PENDING = 1;
        return SDRT_OK;
    }
    float sigma = s->sigmas[i - 1], interp = t->interp[i - 1], up = t->up[i - 1], down = t->down[i - 1];
    euler_from(s, interp, interp, down - sigma, saved, e, x, n);
    s->PENDING = 0;
    if (sched_noise(s, rng, z, n)) return SDRT_INVALID_ARGUMENT;
    for (size_t k = 0; k < n; k++) x[k] = x[k] + z[k] * up;
    return SDRT_OK;
}

const sched_kind sched_kind_kdpm2 = {
    .name = "KDPM2DiscreteScheduler",
    .fields = fields,
    .order = 2,
    .has_sigmas = 1,
    .setup = setup_plain,
    .scale = scale_plain,
    .step = step_plain,
    .release = release,
    .n_bufs = 2,
};

const sched_kind sched_kind_kdpm2_ancestral = {
    .name = "KDPM2AncestralDiscreteScheduler",
    .fields = fields,
    .order = 2,
    .stochastic = 1,
    .has_sigmas = 1,
    .setup = setup_ancestral,
    .scale = scale_ancestral,
    .step = step_ancestral,
    .release = release,
    .n_bufs = 3,
};
