/* plugins/scheduler/deis.c - DEISMultistepScheduler (Zhang & Chen, DEIS
 * with the log-rho multistep solver, orders 1-3; A1111/ComfyUI "DEIS").
 *
 * diffusers evaluates the integrated Lagrange coefficients (ind_fn) with
 * numpy logs of float32 scalars, i.e. in float32; so do we.
 *
 * Buffers: buf[0..order) = epsilon predictions, oldest first (rotated by
 * pointer); buf[3] = scratch for x0.
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
    {SCHED_F_ALGORITHM_TYPE, "\"deis\""},    {SCHED_F_SOLVER_TYPE, "\"logrho\""},
    {SCHED_F_LOWER_ORDER_FINAL, "true"},     {SCHED_F_USE_KARRAS_SIGMAS, "false"},
    {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"}, {SCHED_F_USE_BETA_SIGMAS, "false"},
    {SCHED_F_USE_FLOW_SIGMAS, "false"},      {SCHED_F_FLOW_SHIFT, "1.0"},
    {SCHED_F_TIMESTEP_SPACING, "\"linspace\""}, {SCHED_F_STEPS_OFFSET, "0"},
    {SCHED_F_USE_DYNAMIC_SHIFTING, "false"}, {SCHED_F_TIME_SHIFT_TYPE, "\"exponential\""},
    {0, NULL},
};

#define LOWER_ORDER_NUMS ctr[0]

static sdrt_status check_solver(sdrt_sched *s) {
    sched_config *c = &s->cfg;
    sched_diag *d = &s->diag;
    /* diffusers maps the sibling solvers' names onto its own */
    if (cfg_is(c, SCHED_F_ALGORITHM_TYPE, "dpmsolver") || cfg_is(c, SCHED_F_ALGORITHM_TYPE, "dpmsolver++"))
        strcpy(c->v[SCHED_F_ALGORITHM_TYPE].str, "deis");
    if (!cfg_is(c, SCHED_F_ALGORITHM_TYPE, "deis"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.algorithm_type: '%s' is not deis",
                          c->v[SCHED_F_ALGORITHM_TYPE].str);
    if (cfg_is(c, SCHED_F_SOLVER_TYPE, "midpoint") || cfg_is(c, SCHED_F_SOLVER_TYPE, "heun") ||
        cfg_is(c, SCHED_F_SOLVER_TYPE, "bh1") || cfg_is(c, SCHED_F_SOLVER_TYPE, "bh2"))
        strcpy(c->v[SCHED_F_SOLVER_TYPE].str, "logrho");
    if (!cfg_is(c, SCHED_F_SOLVER_TYPE, "logrho"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_type: '%s' is not logrho",
                          c->v[SCHED_F_SOLVER_TYPE].str);
    double order = cfg_num(c, SCHED_F_SOLVER_ORDER);
    if (order < 1 || order > 3)
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_order: %.0f is not in 1..3", order);
    return SDRT_OK;
}

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1) || check_solver(s)) return s->diag.code;
    s->LOWER_ORDER_NUMS = 0;
    return sched_dpm_schedule(s, SCHED_VAR_DEIS);
}

/* convert_model_output: x0 by prediction type, then back to epsilon. */
static void convert(const sdrt_sched *s, uint32_t i, const float *e, const float *x, float *x0, float *out,
                    size_t n) {
    float at, st;
    sched_alpha_sigma(s->sigmas[i], &at, &st);
    const sched_config *c = &s->cfg;
    if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "epsilon"))
        for (size_t k = 0; k < n; k++) x0[k] = (x[k] - st * e[k]) / at;
    else if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "sample"))
        memcpy(x0, e, n * sizeof *x0);
    else
        for (size_t k = 0; k < n; k++) x0[k] = at * x[k] - st * e[k];
    for (size_t k = 0; k < n; k++) out[k] = (x[k] - at * x0[k]) / st;
}

static float rho_at(const sdrt_sched *s, uint32_t i, float *alpha) {
    float a, sg;
    sched_alpha_sigma(s->sigmas[i], &a, &sg);
    if (alpha) *alpha = a;
    return sg / a;
}

static float ind2(float t, float b, float c) {
    return t * (-logf(c) + logf(t) - 1.0f) / (logf(b) - logf(c));
}

static float ind3(float t, float b, float c, float d) {
    float lt = logf(t), lc = logf(c), ld = logf(d), lb = logf(b);
    float num = t * (lc * (ld - lt + 1.0f) - ld * lt + ld + lt * lt - 2.0f * lt + 2.0f);
    return num / ((lb - lc) * (lb - ld));
}

static void first_order(const sdrt_sched *s, uint32_t i, const float *m0, float *x, size_t n) {
    float at, st, as, ss;
    sched_alpha_sigma(s->sigmas[i + 1], &at, &st);
    sched_alpha_sigma(s->sigmas[i], &as, &ss);
    float h = (logf(at) - logf(st)) - (logf(as) - logf(ss));
    float cx = at / as, cm = st * (expf(h) - 1.0f);
    for (size_t k = 0; k < n; k++) x[k] = cx * x[k] - cm * m0[k];
}

static void second_order(const sdrt_sched *s, uint32_t i, const float *m0, const float *m1, float *x, size_t n) {
    float at, as0;
    float rt = rho_at(s, i + 1, &at), r0 = rho_at(s, i, &as0), r1 = rho_at(s, i - 1, NULL);
    float c1 = ind2(rt, r0, r1) - ind2(r0, r0, r1);
    float c2 = ind2(rt, r1, r0) - ind2(r0, r1, r0);
    for (size_t k = 0; k < n; k++) x[k] = at * (x[k] / as0 + c1 * m0[k] + c2 * m1[k]);
}

static void third_order(const sdrt_sched *s, uint32_t i, float *const *m, float *x, size_t n) {
    float at, as0;
    float rt = rho_at(s, i + 1, &at), r0 = rho_at(s, i, &as0), r1 = rho_at(s, i - 1, NULL),
          r2 = rho_at(s, i - 2, NULL);
    float c1 = ind3(rt, r0, r1, r2) - ind3(r0, r0, r1, r2);
    float c2 = ind3(rt, r1, r2, r0) - ind3(r0, r1, r2, r0);
    float c3 = ind3(rt, r2, r0, r1) - ind3(r0, r2, r0, r1);
    const float *m0 = m[2], *m1 = m[1], *m2 = m[0];
    for (size_t k = 0; k < n; k++) x[k] = at * (x[k] / as0 + c1 * m0[k] + c2 * m1[k] + c3 * m2[k]);
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    (void)rng;
    const sched_config *c = &s->cfg;
    int order = (int)cfg_num(c, SCHED_F_SOLVER_ORDER);
    uint32_t N = s->n_ts;
    int lof = cfg_bool(c, SCHED_F_LOWER_ORDER_FINAL) && N < 15;
    int lower_final = lof && i == N - 1, lower_second = lof && i == N - 2;
    float *oldest = s->buf[0];
    for (int k = 0; k < order - 1; k++) s->buf[k] = s->buf[k + 1];
    s->buf[order - 1] = oldest;
    float *m0 = s->buf[order - 1];
    convert(s, i, e, x, s->buf[3], m0, n);
    if (order == 1 || s->LOWER_ORDER_NUMS < 1 || lower_final)
        first_order(s, i, m0, x, n);
    else if (order == 2 || s->LOWER_ORDER_NUMS < 2 || lower_second)
        second_order(s, i, m0, s->buf[order - 2], x, n);
    else
        third_order(s, i, s->buf, x, n);
    if (s->LOWER_ORDER_NUMS < order) s->LOWER_ORDER_NUMS++;
    return SDRT_OK;
}

const sched_kind sched_kind_deis = {
    .name = "DEISMultistepScheduler",
    .fields = fields,
    .order = 1,
    .has_sigmas = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_dpm_add_noise,
    .n_bufs = 4,
};
