/* plugins/scheduler/dpm_single.c - DPMSolverSinglestepScheduler
 * (DPM-Solver / DPM-Solver++ single-step, orders 1-3; A1111 "DPM++ 2S").
 *
 * A single-step solver of order k spends k loop iterations per solver
 * step: the sample at the first iteration of a group is kept
 * (diffusers' self.sample) and the group's model outputs are combined at
 * its last iteration. order_list fixes the order of each iteration.
 *
 * Buffers: buf[0..order) = converted model outputs, oldest first (rotated
 * by pointer); buf[3] = the group's start sample; buf[4] = SDE noise.
 * priv = the order list (int8 per iteration).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},   {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},              {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},         {SCHED_F_SOLVER_ORDER, "2"},
    {SCHED_F_PREDICTION_TYPE, "\"epsilon\""}, {SCHED_F_THRESHOLDING, "false"},
    {SCHED_F_DYNAMIC_THRESHOLDING_RATIO, "0.995"}, {SCHED_F_SAMPLE_MAX_VALUE, "1.0"},
    {SCHED_F_ALGORITHM_TYPE, "\"dpmsolver++\""}, {SCHED_F_SOLVER_TYPE, "\"midpoint\""},
    {SCHED_F_LOWER_ORDER_FINAL, "false"},    {SCHED_F_USE_KARRAS_SIGMAS, "false"},
    {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"}, {SCHED_F_USE_BETA_SIGMAS, "false"},
    {SCHED_F_USE_FLOW_SIGMAS, "false"},      {SCHED_F_FLOW_SHIFT, "1.0"},
    {SCHED_F_FINAL_SIGMAS_TYPE, "\"zero\""}, {SCHED_F_LAMBDA_MIN_CLIPPED, "-inf"},
    {SCHED_F_VARIANCE_TYPE, "null"},         {SCHED_F_USE_DYNAMIC_SHIFTING, "false"},
    {SCHED_F_TIME_SHIFT_TYPE, "\"exponential\""}, {SCHED_F_ALIGN_YOUR_STEPS, "false"},
    {SCHED_F_AYS_MODEL, "\"auto\""}, {0, NULL},
};

enum { ALG_PP, ALG_SDE_PP, ALG_DPM };
#define FILLED ctr[0]
#define ALG ctr[1]
#define HEUN ctr[2]

static sdrt_status check_algorithm(sdrt_sched *s) {
    sched_config *c = &s->cfg;
    sched_diag *d = &s->diag;
    /* diffusers maps the sibling solvers' names onto its own */
    if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "deis")) strcpy(c->v[SCHED_F_ALGORITHM_TYPE].str, "dpmsolver++");
    if (cfg_is(c, SCHED_F_SOLVER_TYPE, "logrho") || cfg_is(c, SCHED_F_SOLVER_TYPE, "bh1") ||
        cfg_is(c, SCHED_F_SOLVER_TYPE, "bh2"))
        strcpy(c->v[SCHED_F_SOLVER_TYPE].str, "midpoint");
    if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "dpmsolver++")) s->ALG = ALG_PP;
    else if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "sde-dpmsolver++")) s->ALG = ALG_SDE_PP;
    else if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "dpmsolver")) s->ALG = ALG_DPM;
    else
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.algorithm_type: '%s' is not one of dpmsolver++, sde-dpmsolver++, dpmsolver",
                          c->v[SCHED_F_ALGORITHM_TYPE].str);
    if (cfg_is(c, SCHED_F_SOLVER_TYPE, "heun")) s->HEUN = 1;
    else if (!cfg_is(c, SCHED_F_SOLVER_TYPE, "midpoint"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_type: '%s' is not one of midpoint, heun",
                          c->v[SCHED_F_SOLVER_TYPE].str);
    double order = cfg_num(c, SCHED_F_SOLVER_ORDER);
    if (order < 1 || order > 3)
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_order: %.0f is not in 1..3", order);
    int zero = cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero");
    if (!zero && !cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "sigma_min"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.final_sigmas_type: '%s' is not one of zero, sigma_min",
                          c->v[SCHED_F_FINAL_SIGMAS_TYPE].str);
    if (s->ALG == ALG_DPM && zero)
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.final_sigmas_type: 'zero' is not supported for algorithm_type dpmsolver; "
                          "use sigma_min");
    if (!cfg_null(c, SCHED_F_VARIANCE_TYPE))
        return sched_fail(d, SDRT_UNSUPPORTED, "scheduler_config.variance_type: '%s' (learned variance) is not supported",
                          c->v[SCHED_F_VARIANCE_TYPE].str);
    return SDRT_OK;
}

/* get_order_list, after set_timesteps forced lower_order_final where
 * diffusers does (uneven step counts, final sigma zero). */
static sdrt_status make_order_list(sdrt_sched *s) {
    sched_config *c = &s->cfg;
    int order = (int)cfg_num(c, SCHED_F_SOLVER_ORDER);
    uint32_t N = (uint32_t)s->num_inference_steps;
    if (N % (uint32_t)order != 0 || cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero"))
        c->v[SCHED_F_LOWER_ORDER_FINAL].num = 1.0;
    int8_t *o = calloc(N, 1);
    if (!o) return sched_fail(&s->diag, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    uint32_t full = N / (uint32_t)order, rem = N % (uint32_t)order;
    if (cfg_bool(c, SCHED_F_LOWER_ORDER_FINAL) && rem == 0 && order > 1) {
        /* the last group is shortened to [1, .., order-1] + [1] */
        full = full - 1;
        rem = (uint32_t)order;
    }
    uint32_t k = 0;
    for (uint32_t g = 0; g < full; g++)
        for (int j = 1; j <= order; j++) o[k++] = (int8_t)j;
    if (rem == (uint32_t)order) {
        for (int j = 1; j < order; j++) o[k++] = (int8_t)j;
        o[k++] = 1;
    } else {
        for (uint32_t j = 1; j <= rem; j++) o[k++] = (int8_t)j;
    }
    if (cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero")) o[N - 1] = 1;
    s->priv = o;
    return SDRT_OK;
}

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1) || check_algorithm(s)) return s->diag.code;
    s->FILLED = 0;
    s->stochastic = s->ALG == ALG_SDE_PP;
    if (sched_dpm_schedule(s, SCHED_VAR_SINGLE)) return s->diag.code;
    return make_order_list(s);
}

static void release(sdrt_sched *s) {
    free(s->priv);
    s->priv = NULL;
}

/* convert_model_output: x0 for the ++ variants, epsilon for dpmsolver. */
static void convert(const sdrt_sched *s, uint32_t i, const float *e, const float *x, float *out, size_t n) {
    const sched_config *c = &s->cfg;
    float at, st;
    sched_alpha_sigma(s->sigmas[i], &at, &st);
    int pp = s->ALG != ALG_DPM;
    if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "epsilon")) {
        if (pp) for (size_t k = 0; k < n; k++) out[k] = (x[k] - st * e[k]) / at;
        else memcpy(out, e, n * sizeof *out);
    } else if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "sample")) {
        if (pp) memcpy(out, e, n * sizeof *out);
        else for (size_t k = 0; k < n; k++) out[k] = (x[k] - at * e[k]) / st;
    } else {
        if (pp) for (size_t k = 0; k < n; k++) out[k] = at * x[k] - st * e[k];
        else for (size_t k = 0; k < n; k++) out[k] = at * e[k] + st * x[k];
    }
}

static float lambda_of(float a, float s) { return logf(a) - logf(s); }

/* x_t = cx*x + c0*D0 + c1*D1 + c2*D2 + cz*z with diffusers' signs folded
 * in (negating a product is exact, so the rounding is the same). */
typedef struct single_coeffs {
    float cx, c0, c1, c2, cz;
} single_coeffs;

/* Coefficients for a group of `order` from sigma index s (the group's
 * start) to t, with h over the whole group. */
static single_coeffs coeffs_for(const sdrt_sched *s, int order, uint32_t t, uint32_t si) {
    float at, st, as, ss;
    sched_alpha_sigma(s->sigmas[t], &at, &st);
    sched_alpha_sigma(s->sigmas[si], &as, &ss);
    float h = lambda_of(at, st) - lambda_of(as, ss);
    single_coeffs q = {0};
    int heun_d1 = order == 3 || s->HEUN; /* 3rd-order midpoint also uses the heun-style D1_1 term */
    switch (s->ALG) {
    case ALG_PP: {
        float e = at * (expf(-h) - 1.0f);
        q.cx = st / ss;
        q.c0 = -e;
        q.c1 = heun_d1 ? at * ((expf(-h) - 1.0f) / h + 1.0f) : -(0.5f * e);
        if (order == 3 && s->HEUN) q.c2 = -(at * ((expf(-h) - 1.0f + h) / (h * h) - 0.5f));
        break;
    }
    case ALG_DPM: {
        float e = st * (expf(h) - 1.0f);
        q.cx = at / as;
        q.c0 = -e;
        q.c1 = heun_d1 ? -(st * ((expf(h) - 1.0f) / h - 1.0f)) : -(0.5f * e);
        if (order == 3 && s->HEUN) q.c2 = -(st * ((expf(h) - 1.0f - h) / (h * h) - 0.5f));
        break;
    }
    default: {
        float e = at * (1.0f - expf(-2.0f * h));
        q.cx = st / ss * expf(-h);
        q.c0 = e;
        q.c1 = heun_d1 ? at * ((1.0f - expf(-2.0f * h)) / (-2.0f * h) + 1.0f) : 0.5f * e;
        if (order == 3 && s->HEUN) {
            float h2 = -2.0f * h;
            q.c2 = at * ((1.0f - expf(-2.0f * h) + h2) / (h2 * h2) - 0.5f);
        }
        q.cz = st * sqrtf(1.0f - expf(-2.0f * h));
        break;
    }
    }
    return q;
}

static void first_order(const sdrt_sched *s, uint32_t i, const float *m0, const float *x0, const float *z, float *x,
                        size_t n) {
    single_coeffs q = coeffs_for(s, 1, i + 1, i);
    for (size_t k = 0; k < n; k++) {
        float v = q.cx * x0[k] + q.c0 * m0[k];
        x[k] = z ? v + q.cz * z[k] : v;
    }
}

static void second_order(const sdrt_sched *s, uint32_t i, const float *m0, const float *m1, const float *x0,
                         const float *z, float *x, size_t n) {
    float a0, s0, a1, s1, at, st;
    sched_alpha_sigma(s->sigmas[i + 1], &at, &st);
    sched_alpha_sigma(s->sigmas[i], &a0, &s0);
    sched_alpha_sigma(s->sigmas[i - 1], &a1, &s1);
    float l1 = lambda_of(a1, s1);
    float r0 = (lambda_of(a0, s0) - l1) / (lambda_of(at, st) - l1), inv = 1.0f / r0;
    single_coeffs q = coeffs_for(s, 2, i + 1, i - 1);
    for (size_t k = 0; k < n; k++) {
        float d1 = inv * (m0[k] - m1[k]);
        float v = q.cx * x0[k] + q.c0 * m1[k] + q.c1 * d1;
        x[k] = z ? v + q.cz * z[k] : v;
    }
}

static void third_order(const sdrt_sched *s, uint32_t i, const float *m0, const float *m1, const float *m2,
                        const float *x0, const float *z, float *x, size_t n) {
    float at, st, a0, s0, a1, s1, a2, s2;
    sched_alpha_sigma(s->sigmas[i + 1], &at, &st);
    sched_alpha_sigma(s->sigmas[i], &a0, &s0);
    sched_alpha_sigma(s->sigmas[i - 1], &a1, &s1);
    sched_alpha_sigma(s->sigmas[i - 2], &a2, &s2);
    float l2 = lambda_of(a2, s2);
    float h = lambda_of(at, st) - l2;
    float r0 = (lambda_of(a0, s0) - l2) / h, r1 = (lambda_of(a1, s1) - l2) / h;
    float i0 = 1.0f / r0, i1 = 1.0f / r1, dr = r0 - r1;
    single_coeffs q = coeffs_for(s, 3, i + 1, i - 2);
    for (size_t k = 0; k < n; k++) {
        float d10 = i1 * (m1[k] - m2[k]), d11 = i0 * (m0[k] - m2[k]);
        float v;
        if (s->HEUN) {
            float d1 = (r0 * d10 - r1 * d11) / dr, d2 = 2.0f * (d11 - d10) / dr;
            v = q.cx * x0[k] + q.c0 * m2[k] + q.c1 * d1 + q.c2 * d2;
        } else {
            v = q.cx * x0[k] + q.c0 * m2[k] + q.c1 * d11;
        }
        x[k] = z ? v + q.cz * z[k] : v;
    }
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    int K = (int)cfg_num(&s->cfg, SCHED_F_SOLVER_ORDER);
    float *oldest = s->buf[0];
    for (int k = 0; k < K - 1; k++) s->buf[k] = s->buf[k + 1];
    s->buf[K - 1] = oldest;
    float *m0 = s->buf[K - 1];
    convert(s, i, e, x, m0, n);
    if (s->FILLED < K) s->FILLED++;
    float *z = NULL;
    if (s->ALG == ALG_SDE_PP) {
        z = s->buf[4];
        if (sched_noise(s, rng, z, n)) return SDRT_INVALID_ARGUMENT;
    }
    int order = ((const int8_t *)s->priv)[i];
    while (order > s->FILLED) order--; /* diffusers: while model_outputs[-order] is None */
    float *start = s->buf[3];
    if (order == 1) memcpy(start, x, n * sizeof *x);
    if (order == 1) first_order(s, i, m0, start, z, x, n);
    else if (order == 2) second_order(s, i, m0, s->buf[K - 2], start, z, x, n);
    else third_order(s, i, m0, s->buf[K - 2], s->buf[K - 3], start, z, x, n);
    return SDRT_OK;
}

const sched_kind sched_kind_dpm_single = {
    .name = "DPMSolverSinglestepScheduler",
    .fields = fields,
    .order = 1,
    .has_sigmas = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_dpm_add_noise,
    .release = release,
    .n_bufs = 5,
};
