/* plugins/scheduler/sigmas.c - timestep spacings and sigma ramps.
 *
 * These reproduce the numpy expressions of diffusers' set_timesteps in
 * double (numpy's float64), including numpy's linspace/arange/round
 * semantics (round half to even), so integer timesteps agree exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

/* numpy.linspace(a, b, n) (endpoint=True): a + i*step, last element = b. */
void sched_np_linspace(double a, double b, uint32_t n, double *out) {
    if (n == 0) return;
    if (n == 1) {
        out[0] = a;
        return;
    }
    double step = (b - a) / (double)(n - 1);
    for (uint32_t i = 0; i < n; i++) out[i] = (double)i * step + a;
    out[n - 1] = b;
}

/* numpy.arange(start, stop, step) for a float step: length
 * ceil((stop-start)/step), values start + i*delta with delta taken from the
 * first two elements as numpy's fill does. Returns the count (<= cap). */
static uint32_t np_arange(double start, double stop, double step, double *out, uint32_t cap) {
    double len = ceil((stop - start) / step);
    if (!(len > 0)) return 0;
    uint32_t n = len > cap ? cap : (uint32_t)len;
    double delta = (start + step) - start;
    for (uint32_t i = 0; i < n; i++) out[i] = start + (double)i * delta;
    return n;
}

uint32_t sched_spacing(const sdrt_sched *s, uint32_t num, double *out) {
    const sched_config *c = &s->cfg;
    uint32_t T = s->T;
    if (cfg_is(c, SCHED_F_TIMESTEP_SPACING, "linspace")) {
        sched_np_linspace(0, (double)T - 1, num, out);
        for (uint32_t i = 0; i < num / 2; i++) {
            double t = out[i];
            out[i] = out[num - 1 - i];
            out[num - 1 - i] = t;
        }
        return num;
    }
    if (cfg_is(c, SCHED_F_TIMESTEP_SPACING, "leading")) {
        uint32_t ratio = T / num;
        double off = cfg_num(c, SCHED_F_STEPS_OFFSET);
        for (uint32_t i = 0; i < num; i++) out[i] = (double)(num - 1 - i) * ratio + off;
        return num;
    }
    /* trailing */
    double ratio = (double)T / (double)num;
    uint32_t n = np_arange((double)T, 0, -ratio, out, num + 1);
    for (uint32_t i = 0; i < n; i++) out[i] = nearbyint(out[i]) - 1.0;
    return n;
}

double sched_interp(double x, const float *fp, uint32_t n) {
    if (x <= 0) return fp[0];
    if (x >= (double)(n - 1)) return fp[n - 1];
    uint32_t j = (uint32_t)floor(x);
    double w = x - (double)j;
    /* numpy's interp: slope*(x - xp[j]) + fp[j] */
    double slope = ((double)fp[j + 1] - (double)fp[j]);
    return slope * w + (double)fp[j];
}

double sched_sigma_to_t(double sigma, const double *log_sigmas, uint32_t n) {
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    /* last index whose log sigma is <= ls (0 when none), at most n-2 */
    uint32_t lo = 0;
    for (uint32_t i = 0; i < n; i++)
        if (ls - log_sigmas[i] >= 0) lo = i;
    if (lo > n - 2) lo = n - 2;
    double low = log_sigmas[lo], high = log_sigmas[lo + 1];
    double w = (low - ls) / (low - high);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1 - w) * lo + w * (lo + 1);
}

/* Config sigma_min/sigma_max when the class has them and they are set. */
static void sigma_range(const sdrt_sched *s, double *smin, double *smax) {
    const sched_config *c = &s->cfg;
    if (c->v[SCHED_F_SIGMA_MIN].present && !cfg_null(c, SCHED_F_SIGMA_MIN)) *smin = cfg_num(c, SCHED_F_SIGMA_MIN);
    if (c->v[SCHED_F_SIGMA_MAX].present && !cfg_null(c, SCHED_F_SIGMA_MAX)) *smax = cfg_num(c, SCHED_F_SIGMA_MAX);
}

void sched_karras(const sdrt_sched *s, double smin, double smax, uint32_t num, double *out) {
    sigma_range(s, &smin, &smax);
    const double rho = 7.0;
    double lo = pow(smin, 1.0 / rho), hi = pow(smax, 1.0 / rho);
    sched_np_linspace(0, 1, num, out);
    for (uint32_t i = 0; i < num; i++) out[i] = pow(hi + out[i] * (lo - hi), rho);
}

void sched_exponential(const sdrt_sched *s, double smin, double smax, uint32_t num, double *out) {
    sigma_range(s, &smin, &smax);
    sched_np_linspace(log(smax), log(smin), num, out);
    for (uint32_t i = 0; i < num; i++) out[i] = exp(out[i]);
}

void sched_beta_sigmas(const sdrt_sched *s, double smin, double smax, uint32_t num, double *out) {
    sigma_range(s, &smin, &smax);
    sched_np_linspace(0, 1, num, out);
    for (uint32_t i = 0; i < num; i++) {
        double ppf = sched_beta_ppf(1.0 - out[i], 0.6, 0.6);
        out[i] = smin + ppf * (smax - smin);
    }
}

/* ---- checks shared by the kinds ---- */

sdrt_status sched_check_prediction(sdrt_sched *s, int allow_sample) {
    const sched_config *c = &s->cfg;
    if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "epsilon") || cfg_is(c, SCHED_F_PREDICTION_TYPE, "v_prediction"))
        return SDRT_OK;
    if (allow_sample && cfg_is(c, SCHED_F_PREDICTION_TYPE, "sample")) return SDRT_OK;
    return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                      "scheduler_config.prediction_type: '%s' is not one of epsilon, v_prediction%s for %s",
                      c->v[SCHED_F_PREDICTION_TYPE].str, allow_sample ? ", sample" : "", s->kind->name);
}

static int flag(const sched_config *c, sched_field f) { return c->v[f].present && cfg_bool(c, f); }

sdrt_status sched_check_sigma_flags(sdrt_sched *s) {
    const sched_config *c = &s->cfg;
    int n = flag(c, SCHED_F_USE_KARRAS_SIGMAS) + flag(c, SCHED_F_USE_EXPONENTIAL_SIGMAS) +
            flag(c, SCHED_F_USE_BETA_SIGMAS) + flag(c, SCHED_F_USE_LU_LAMBDAS);
    if (n > 1)
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "scheduler_config: only one of use_karras_sigmas, use_exponential_sigmas, "
                          "use_beta_sigmas, use_lu_lambdas can be true");
    if (flag(c, SCHED_F_USE_FLOW_SIGMAS))
        return sched_fail(&s->diag, SDRT_UNSUPPORTED,
                          "scheduler_config.use_flow_sigmas: flow-matching sigmas are not supported (SD1/SDXL "
                          "models are not flow-matching)");
    if (flag(c, SCHED_F_USE_DYNAMIC_SHIFTING))
        return sched_fail(&s->diag, SDRT_UNSUPPORTED,
                          "scheduler_config.use_dynamic_shifting: not supported (flow-matching only)");
    if (flag(c, SCHED_F_THRESHOLDING))
        return sched_fail(&s->diag, SDRT_UNSUPPORTED,
                          "scheduler_config.thresholding: dynamic thresholding is not supported (it is meant for "
                          "pixel-space models)");
    if (c->v[SCHED_F_TIMESTEP_SPACING].present && !cfg_is(c, SCHED_F_TIMESTEP_SPACING, "linspace") &&
        !cfg_is(c, SCHED_F_TIMESTEP_SPACING, "leading") && !cfg_is(c, SCHED_F_TIMESTEP_SPACING, "trailing"))
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.timestep_spacing: '%s' is not one of linspace, leading, trailing",
                          c->v[SCHED_F_TIMESTEP_SPACING].str);
    if (c->v[SCHED_F_STEPS_OFFSET].present &&
        (cfg_num(c, SCHED_F_STEPS_OFFSET) < 0 || cfg_num(c, SCHED_F_STEPS_OFFSET) >= s->T))
        return sched_fail(&s->diag, SDRT_INVALID_ARGUMENT, "scheduler_config.steps_offset: %.0f is not in 0..%u",
                          cfg_num(c, SCHED_F_STEPS_OFFSET), s->T - 1);
    return sched_ays_check(s);
}

sdrt_status sched_alloc_tables(sdrt_sched *s, uint32_t n_ts, uint32_t n_sigmas) {
    s->n_ts = n_ts;
    s->n_sigmas = n_sigmas;
    s->timesteps = calloc(n_ts ? n_ts : 1, sizeof(float));
    s->sigmas = n_sigmas ? calloc(n_sigmas, sizeof(float)) : NULL;
    if (!s->timesteps || (n_sigmas && !s->sigmas))
        return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    return SDRT_OK;
}

sdrt_status sched_noise(sdrt_sched *s, sdrt_rng *rng, float *buf, size_t n) {
    if (!rng) return SDRT_INVALID_ARGUMENT;
    sdrt_rng_randn(rng, buf, n);
    return SDRT_OK;
}

void sched_scale_sigma(sdrt_sched *s, uint32_t i, const float *in, float *out, size_t n) {
    float sigma = s->sigmas[i];
    float d = sqrtf(sigma * sigma + 1.0f);
    for (size_t k = 0; k < n; k++) out[k] = in[k] / d;
}

void sched_add_noise_alpha(sdrt_sched *s, const float *x0, const float *noise, uint32_t i, float *out,
                           size_t n) {
    float a = sched_alpha_at(s, (int64_t)s->timesteps[i]);
    float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    for (size_t k = 0; k < n; k++) out[k] = sa * x0[k] + sb * noise[k];
}
