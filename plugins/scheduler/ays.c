/* plugins/scheduler/ays.c - Align Your Steps schedules (Sabour et al.,
 * NVIDIA 2024; A1111 schedule type "Align Your Steps").
 *
 * NVIDIA published optimised 10-step schedules per model family. diffusers
 * ships them as `AysSchedules` and pipelines pass them through
 * set_timesteps(timesteps=...) or set_timesteps(sigmas=...); for other
 * step counts NVIDIA's how-to (and ComfyUI's AlignYourStepsScheduler)
 * interpolates the 11 noise levels log-linearly. A class that takes custom
 * sigmas (EulerDiscrete) gets the sigmas; the classes that only take custom
 * timesteps get integer timesteps, which for N != 10 are the interpolated
 * sigmas mapped back with diffusers' _sigma_to_t and rounded - the rule
 * that reproduces NVIDIA's own 10-step timestep lists from the noise
 * levels exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

enum { AYS_LEVELS = 11, AYS_STEPS = 10 };

typedef struct ays_table {
    const char *model;
    /* ComfyUI's NOISE_LEVELS (NVIDIA's values, full precision) */
    double levels[AYS_LEVELS];
    /* diffusers' AysSchedules["StableDiffusion[XL]Sigmas"] (3 decimals, last 0) */
    double sigmas[AYS_LEVELS];
    /* diffusers' AysSchedules["StableDiffusion[XL]Timesteps"] */
    int timesteps[AYS_STEPS];
} ays_table;

static const ays_table g_tables[] = {
    {"sd1",
     {14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
      0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582},
     {14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.0},
     {999, 850, 736, 645, 545, 455, 343, 233, 124, 24}},
    {"sdxl",
     {14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
      0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582},
     {14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.0},
     {999, 845, 730, 587, 443, 310, 193, 116, 53, 13}},
};

static const ays_table *table_of(const sdrt_sched *s) {
    for (size_t i = 0; i < sizeof g_tables / sizeof g_tables[0]; i++)
        if (cfg_is(&s->cfg, SCHED_F_AYS_MODEL, g_tables[i].model)) return &g_tables[i];
    return &g_tables[0];
}

int sched_ays_enabled(const sdrt_sched *s) {
    const sched_config *c = &s->cfg;
    return c->v[SCHED_F_ALIGN_YOUR_STEPS].present && cfg_bool(c, SCHED_F_ALIGN_YOUR_STEPS);
}

/* The sigma ramps diffusers refuses next to custom timesteps. */
static const sched_field g_ramps[] = {SCHED_F_USE_KARRAS_SIGMAS, SCHED_F_USE_EXPONENTIAL_SIGMAS,
                                      SCHED_F_USE_BETA_SIGMAS, SCHED_F_USE_LU_LAMBDAS};

sdrt_status sched_ays_check(sdrt_sched *s) {
    sched_config *c = &s->cfg;
    if (!c->v[SCHED_F_AYS_MODEL].present) return SDRT_OK;
    if (!cfg_is(c, SCHED_F_AYS_MODEL, "auto") && !cfg_is(c, SCHED_F_AYS_MODEL, "sd1") &&
        !cfg_is(c, SCHED_F_AYS_MODEL, "sdxl"))
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.ays_model: '%s' is not one of auto, sd1, sdxl",
                          c->v[SCHED_F_AYS_MODEL].str);
    if (!sched_ays_enabled(s)) return SDRT_OK;
    for (size_t i = 0; i < sizeof g_ramps / sizeof g_ramps[0]; i++)
        if (c->v[g_ramps[i]].present && cfg_bool(c, g_ramps[i]))
            return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                              "scheduler_config.align_your_steps: cannot be combined with %s (both set the sigmas)",
                              sched_field_name(g_ramps[i]));
    if (cfg_is(c, SCHED_F_AYS_MODEL, "auto")) {
        /* nothing told us the model family (see docs/schedulers.md) */
        sched_warn(&s->diag, "scheduler_config.ays_model: 'auto' with no model architecture known; using the SD1 "
                             "Align Your Steps schedule (set ays_model to sdxl for SDXL models)");
        strcpy(c->v[SCHED_F_AYS_MODEL].str, "sd1");
    }
    return SDRT_OK;
}

/* numpy.interp(x, xp, fp) for increasing xp (numpy's arr_interp). */
static double np_interp(double x, const double *xp, const double *fp, uint32_t n) {
    if (x >= xp[n - 1]) return fp[n - 1];
    if (x < xp[0]) return fp[0];
    uint32_t j = 0;
    while (j + 1 < n && xp[j + 1] <= x) j++;
    if (xp[j] == x) return fp[j];
    double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    return slope * (x - xp[j]) + fp[j];
}

/* ComfyUI's loglinear_interp(levels, num): interpolates log(levels) over
 * linspace(0, 1) in increasing order, then reverses back. */
static void loglinear_interp(const double *levels, uint32_t num, double *out) {
    double xs[AYS_LEVELS], ys[AYS_LEVELS];
    sched_np_linspace(0, 1, AYS_LEVELS, xs);
    for (uint32_t i = 0; i < AYS_LEVELS; i++) ys[i] = log(levels[AYS_LEVELS - 1 - i]);
    for (uint32_t i = 0; i < num; i++) {
        /* new_xs[i] of linspace(0, 1, num), written at the reversed place */
        double x = num == 1 ? 0.0 : (i == num - 1 ? 1.0 : (double)i * (1.0 / (double)(num - 1)));
        out[num - 1 - i] = exp(np_interp(x, xs, ys, AYS_LEVELS));
    }
}

void sched_ays_sigmas(const sdrt_sched *s, uint32_t N, double *out) {
    const ays_table *t = table_of(s);
    if (N == AYS_STEPS) {
        memcpy(out, t->sigmas, sizeof t->sigmas);
        return;
    }
    loglinear_interp(t->levels, N + 1, out);
    out[N] = 0.0;
}

sdrt_status sched_ays_timesteps(sdrt_sched *s, uint32_t N, double *out) {
    const ays_table *t = table_of(s);
    if (N == AYS_STEPS) {
        for (uint32_t i = 0; i < N; i++) out[i] = t->timesteps[i];
        return SDRT_OK;
    }
    double *sig = malloc((N + 1) * sizeof *sig), *logs = malloc(s->T * sizeof *logs);
    float *tsig = malloc(s->T * sizeof *tsig);
    if (!sig || !logs || !tsig) {
        free(sig), free(logs), free(tsig);
        return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    }
    sched_ays_sigmas(s, N, sig);
    sched_train_sigmas(s, tsig);
    for (uint32_t i = 0; i < s->T; i++) logs[i] = (double)logf(tsig[i]);
    for (uint32_t i = 0; i < N; i++) out[i] = nearbyint(sched_sigma_to_t(sig[i], logs, s->T));
    free(sig), free(logs), free(tsig);
    return SDRT_OK;
}

double sched_sigma_to_t_f32(float sigma, const float *log_sigmas, uint32_t n) {
    float ls = logf(sigma > 1e-10f ? sigma : 1e-10f);
    uint32_t lo = 0;
    for (uint32_t i = 0; i < n; i++)
        if (ls - log_sigmas[i] >= 0.0f) lo = i;
    if (lo > n - 2) lo = n - 2;
    float low = log_sigmas[lo], high = log_sigmas[lo + 1];
    float w = (low - ls) / (low - high);
    if (w < 0.0f) w = 0.0f;
    if (w > 1.0f) w = 1.0f;
    /* float32 weights times int64 indices: numpy promotes to float64 */
    return (double)(1.0f - w) * (double)lo + (double)w * (double)(lo + 1);
}
