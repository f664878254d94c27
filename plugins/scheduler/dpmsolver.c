/* plugins/scheduler/dpmsolver.c - DPMSolverMultistepScheduler: DPM-Solver
 * and DPM-Solver++ (Lu et al.), ODE and SDE variants, orders 1-3
 * (A1111 "DPM++ 2M", "DPM++ 2M SDE", ComfyUI dpmpp_2m / dpmpp_2m_sde).
 *
 * History buffers: buf[0..order) hold the last converted model outputs,
 * oldest first (rotated by pointer, no copies); buf[3] holds SDE noise.
 */
#include <math.h>
#include <string.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},   {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},              {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},         {SCHED_F_SOLVER_ORDER, "2"},
    {SCHED_F_PREDICTION_TYPE, "\"epsilon\""}, {SCHED_F_THRESHOLDING, "false"},
    {SCHED_F_DYNAMIC_THRESHOLDING_RATIO, "0.995"}, {SCHED_F_SAMPLE_MAX_VALUE, "1.0"},
    {SCHED_F_ALGORITHM_TYPE, "\"dpmsolver++\""}, {SCHED_F_SOLVER_TYPE, "\"midpoint\""},
    {SCHED_F_LOWER_ORDER_FINAL, "true"},     {SCHED_F_EULER_AT_FINAL, "false"},
    {SCHED_F_USE_KARRAS_SIGMAS, "false"},    {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"},
    {SCHED_F_USE_BETA_SIGMAS, "false"},      {SCHED_F_USE_LU_LAMBDAS, "false"},
    {SCHED_F_USE_FLOW_SIGMAS, "false"},      {SCHED_F_FLOW_SHIFT, "1.0"},
    {SCHED_F_FINAL_SIGMAS_TYPE, "\"zero\""}, {SCHED_F_LAMBDA_MIN_CLIPPED, "-inf"},
    {SCHED_F_VARIANCE_TYPE, "null"},         {SCHED_F_TIMESTEP_SPACING, "\"linspace\""},
    {SCHED_F_STEPS_OFFSET, "0"},             {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"},
    {SCHED_F_USE_DYNAMIC_SHIFTING, "false"}, {SCHED_F_TIME_SHIFT_TYPE, "\"exponential\""},
    {SCHED_F_ALIGN_YOUR_STEPS, "false"}, {SCHED_F_AYS_MODEL, "\"auto\""},
    {0, NULL},
};

enum { ALG_PP, ALG_SDE_PP, ALG_DPM, ALG_SDE_DPM };
#define LOWER_ORDER_NUMS ctr[0]
#define ALG ctr[1]
#define HEUN ctr[2]

static sdrt_status setup(sdrt_sched *s) {
    sched_config *c = &s->cfg;
    sched_diag *d = &s->diag;
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1)) return d->code;
    /* diffusers maps the names of sibling solvers onto its own */
    if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "deis")) strcpy(c->v[SCHED_F_ALGORITHM_TYPE].str, "dpmsolver++");
    if (cfg_is(c, SCHED_F_SOLVER_TYPE, "logrho") || cfg_is(c, SCHED_F_SOLVER_TYPE, "bh1") ||
        cfg_is(c, SCHED_F_SOLVER_TYPE, "bh2"))
        strcpy(c->v[SCHED_F_SOLVER_TYPE].str, "midpoint");
    if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "dpmsolver++")) s->ALG = ALG_PP;
    else if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "sde-dpmsolver++")) s->ALG = ALG_SDE_PP;
    else if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "dpmsolver")) s->ALG = ALG_DPM;
    else if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "sde-dpmsolver")) s->ALG = ALG_SDE_DPM;
    else
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.algorithm_type: '%s' is not one of dpmsolver++, sde-dpmsolver++, "
                          "dpmsolver, sde-dpmsolver",
                          c->v[SCHED_F_ALGORITHM_TYPE].str);
    if (cfg_is(c, SCHED_F_SOLVER_TYPE, "heun")) s->HEUN = 1;
    else if (!cfg_is(c, SCHED_F_SOLVER_TYPE, "midpoint"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_type: '%s' is not one of midpoint, heun",
                          c->v[SCHED_F_SOLVER_TYPE].str);
    double order = cfg_num(c, SCHED_F_SOLVER_ORDER);
    if (order < 1 || order > 3)
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_order: %.0f is not in 1..3", order);
    if (order == 3 && s->ALG == ALG_SDE_DPM)
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.solver_order: 3 is not defined for algorithm_type sde-dpmsolver");
    if (!cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero") && !cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "sigma_min"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.final_sigmas_type: '%s' is not one of zero, sigma_min",
                          c->v[SCHED_F_FINAL_SIGMAS_TYPE].str);
    if ((s->ALG == ALG_DPM || s->ALG == ALG_SDE_DPM) && cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.final_sigmas_type: 'zero' is not supported for algorithm_type %s; use "
                          "sigma_min",
                          c->v[SCHED_F_ALGORITHM_TYPE].str);
    if (!cfg_null(c, SCHED_F_VARIANCE_TYPE))
        return sched_fail(d, SDRT_UNSUPPORTED,
                          "scheduler_config.variance_type: '%s' (learned variance) is not supported",
                          c->v[SCHED_F_VARIANCE_TYPE].str);
    s->LOWER_ORDER_NUMS = 0;
    s->stochastic = s->ALG == ALG_SDE_PP || s->ALG == ALG_SDE_DPM;
    return sched_dpm_schedule(s, SCHED_VAR_DPM);
}

/* convert_model_output: x0 for the ++ variants, epsilon otherwise. */
static void convert(const sdrt_sched *s, uint32_t i, const float *e, const float *x, float *out, size_t n) {
    const sched_config *c = &s->cfg;
    float at, st;
    sched_alpha_sigma(s->sigmas[i], &at, &st);
    int pp = s->ALG == ALG_PP || s->ALG == ALG_SDE_PP;
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

typedef struct coeffs {
    float at, st, as0, ss0, h;
} coeffs;

static float lambda_of(float a, float s) { return logf(a) - logf(s); }

static void first_order(const sdrt_sched *s, const coeffs *q, const float *m, const float *z, float *x, size_t n) {
    float h = q->h;
    switch (s->ALG) {
    case ALG_PP: {
        float c1 = q->st / q->ss0, c2 = q->at * (expf(-h) - 1.0f);
        for (size_t k = 0; k < n; k++) x[k] = c1 * x[k] - c2 * m[k];
        break;
    }
    case ALG_DPM: {
        float c1 = q->at / q->as0, c2 = q->st * (expf(h) - 1.0f);
        for (size_t k = 0; k < n; k++) x[k] = c1 * x[k] - c2 * m[k];
        break;
    }
    case ALG_SDE_PP: {
        float c1 = q->st / q->ss0 * expf(-h), c2 = q->at * (1.0f - expf(-2.0f * h));
        float c3 = q->st * sqrtf(1.0f - expf(-2.0f * h));
        for (size_t k = 0; k < n; k++) x[k] = c1 * x[k] + c2 * m[k] + c3 * z[k];
        break;
    }
    default: {
        float c1 = q->at / q->as0, c2 = 2.0f * (q->st * (expf(h) - 1.0f));
        float c3 = q->st * sqrtf(expf(2.0f * h) - 1.0f);
        for (size_t k = 0; k < n; k++) x[k] = c1 * x[k] - c2 * m[k] + c3 * z[k];
        break;
    }
    }
}

/* Coefficients of x, D0, D1 and the noise for the second-order update:
 * x_t = cx*x + c0*D0 + c1*D1 + cz*z (signs folded in). */
static void second_coeffs(const sdrt_sched *s, const coeffs *q, float *cx, float *c0, float *c1, float *cz) {
    float h = q->h;
    *cz = 0;
    switch (s->ALG) {
    case ALG_PP: {
        float e = q->at * (expf(-h) - 1.0f);
        *cx = q->st / q->ss0;
        *c0 = -e;
        *c1 = s->HEUN ? q->at * ((expf(-h) - 1.0f) / h + 1.0f) : -(0.5f * e);
        break;
    }
    case ALG_DPM: {
        float e = q->st * (expf(h) - 1.0f);
        *cx = q->at / q->as0;
        *c0 = -e;
        *c1 = s->HEUN ? -(q->st * ((expf(h) - 1.0f) / h - 1.0f)) : -(0.5f * e);
        break;
    }
    case ALG_SDE_PP: {
        float e = q->at * (1.0f - expf(-2.0f * h));
        *cx = q->st / q->ss0 * expf(-h);
        *c0 = e;
        *c1 = s->HEUN ? q->at * ((1.0f - expf(-2.0f * h)) / (-2.0f * h) + 1.0f) : 0.5f * e;
        *cz = q->st * sqrtf(1.0f - expf(-2.0f * h));
        break;
    }
    default: {
        float e = q->st * (expf(h) - 1.0f);
        *cx = q->at / q->as0;
        *c0 = -(2.0f * e);
        *c1 = s->HEUN ? -(2.0f * (q->st * ((expf(h) - 1.0f) / h - 1.0f))) : -e;
        *cz = q->st * sqrtf(expf(2.0f * h) - 1.0f);
        break;
    }
    }
}

static void second_order(const sdrt_sched *s, const coeffs *q, float h0, const float *m0, const float *m1,
                         const float *z, float *x, size_t n) {
    float r0 = h0 / q->h, inv = 1.0f / r0;
    float cx, c0, c1, cz;
    second_coeffs(s, q, &cx, &c0, &c1, &cz);
    for (size_t k = 0; k < n; k++) {
        float d1 = inv * (m0[k] - m1[k]);
        float v = cx * x[k] + c0 * m0[k] + c1 * d1;
        x[k] = cz != 0.0f ? v + cz * z[k] : v;
    }
}

static void third_order(const sdrt_sched *s, const coeffs *q, float h0, float h1, const float *m0, const float *m1,
                        const float *m2, const float *z, float *x, size_t n) {
    float h = q->h, r0 = h0 / h, r1 = h1 / h;
    float i0 = 1.0f / r0, i1 = 1.0f / r1, w = r0 / (r0 + r1), i01 = 1.0f / (r0 + r1);
    float cx, c0, c1, c2, cz = 0;
    if (s->ALG == ALG_PP) {
        cx = q->st / q->ss0;
        c0 = -(q->at * (expf(-h) - 1.0f));
        c1 = q->at * ((expf(-h) - 1.0f) / h + 1.0f);
        c2 = -(q->at * ((expf(-h) - 1.0f + h) / (h * h) - 0.5f));
    } else if (s->ALG == ALG_DPM) {
        cx = q->at / q->as0;
        c0 = -(q->st * (expf(h) - 1.0f));
        c1 = -(q->st * ((expf(h) - 1.0f) / h - 1.0f));
        c2 = -(q->st * ((expf(h) - 1.0f - h) / (h * h) - 0.5f));
    } else { /* sde-dpmsolver++ */
        cx = q->st / q->ss0 * expf(-h);
        c0 = q->at * (1.0f - expf(-2.0f * h));
        c1 = q->at * ((1.0f - expf(-2.0f * h)) / (-2.0f * h) + 1.0f);
        float h2 = 2.0f * h;
        c2 = q->at * ((1.0f - expf(-2.0f * h) - 2.0f * h) / (h2 * h2) - 0.5f);
        cz = q->st * sqrtf(1.0f - expf(-2.0f * h));
    }
    for (size_t k = 0; k < n; k++) {
        float d10 = i0 * (m0[k] - m1[k]), d11 = i1 * (m1[k] - m2[k]);
        float d1 = d10 + w * (d10 - d11), d2 = i01 * (d10 - d11);
        float v = cx * x[k] + c0 * m0[k] + c1 * d1 + c2 * d2;
        x[k] = cz != 0.0f ? v + cz * z[k] : v;
    }
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    const sched_config *c = &s->cfg;
    int order = (int)cfg_num(c, SCHED_F_SOLVER_ORDER);
    uint32_t N = s->n_ts;
    int lof = cfg_bool(c, SCHED_F_LOWER_ORDER_FINAL);
    int lower_final = i == N - 1 && (cfg_bool(c, SCHED_F_EULER_AT_FINAL) || (lof && N < 15) ||
                                     cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero"));
    int lower_second = i == N - 2 && lof && N < 15;

    /* rotate the history: the oldest buffer becomes the newest */
    float *oldest = s->buf[0];
    for (int k = 0; k < order - 1; k++) s->buf[k] = s->buf[k + 1];
    s->buf[order - 1] = oldest;
    float *m0 = s->buf[order - 1];
    convert(s, i, e, x, m0, n);

    float *z = NULL;
    if (s->ALG == ALG_SDE_PP || s->ALG == ALG_SDE_DPM) {
        z = s->buf[3];
        if (sched_noise(s, rng, z, n)) return SDRT_INVALID_ARGUMENT;
    }
    coeffs q;
    sched_alpha_sigma(s->sigmas[i + 1], &q.at, &q.st);
    sched_alpha_sigma(s->sigmas[i], &q.as0, &q.ss0);
    float lt = lambda_of(q.at, q.st), l0 = lambda_of(q.as0, q.ss0);
    q.h = lt - l0;
    if (order == 1 || s->LOWER_ORDER_NUMS < 1 || lower_final) {
        first_order(s, &q, m0, z, x, n);
    } else if (order == 2 || s->LOWER_ORDER_NUMS < 2 || lower_second) {
        float a1, s1;
        sched_alpha_sigma(s->sigmas[i - 1], &a1, &s1);
        second_order(s, &q, l0 - lambda_of(a1, s1), m0, s->buf[order - 2], z, x, n);
    } else {
        float a1, s1, a2, s2;
        sched_alpha_sigma(s->sigmas[i - 1], &a1, &s1);
        sched_alpha_sigma(s->sigmas[i - 2], &a2, &s2);
        float l1 = lambda_of(a1, s1), l2 = lambda_of(a2, s2);
        third_order(s, &q, l0 - l1, l1 - l2, m0, s->buf[1], s->buf[0], z, x, n);
    }
    if (s->LOWER_ORDER_NUMS < order) s->LOWER_ORDER_NUMS++;
    return SDRT_OK;
}

const sched_kind sched_kind_dpmsolver = {
    .name = "DPMSolverMultistepScheduler",
    .fields = fields,
    .order = 1,
    .stochastic = 0, /* setup() sets it for the SDE variants */
    .has_sigmas = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_dpm_add_noise,
    .n_bufs = 4,
};
