/* plugins/scheduler/unipc.c - UniPCMultistepScheduler (Zhao et al.,
 * UniPC: predictor UniP + corrector UniC, B(h) variants bh1 and bh2;
 * A1111 "UniPC", ComfyUI uni_pc / uni_pc_bh2).
 *
 * The small linear systems diffusers solves with torch.linalg.solve (in
 * float32) are solved here by Gaussian elimination with partial pivoting
 * in float32, the algorithm LAPACK's sgesv uses.
 *
 * Buffers: buf[0..order) = converted model outputs, oldest first (rotated
 * by pointer); buf[3] = last_sample (input of the previous predictor);
 * buf[4] = this step's converted output before it joins the history.
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
    {SCHED_F_PREDICT_X0, "true"},            {SCHED_F_SOLVER_TYPE, "\"bh2\""},
    {SCHED_F_LOWER_ORDER_FINAL, "true"},     {SCHED_F_DISABLE_CORRECTOR, "[]"},
    {SCHED_F_SOLVER_P, "null"},              {SCHED_F_USE_KARRAS_SIGMAS, "false"},
    {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"}, {SCHED_F_USE_BETA_SIGMAS, "false"},
    {SCHED_F_USE_FLOW_SIGMAS, "false"},      {SCHED_F_FLOW_SHIFT, "1.0"},
    {SCHED_F_TIMESTEP_SPACING, "\"linspace\""}, {SCHED_F_STEPS_OFFSET, "0"},
    {SCHED_F_FINAL_SIGMAS_TYPE, "\"zero\""}, {SCHED_F_RESCALE_BETAS_ZERO_SNR, "false"},
    {SCHED_F_USE_DYNAMIC_SHIFTING, "false"}, {SCHED_F_TIME_SHIFT_TYPE, "\"exponential\""},
    {SCHED_F_SIGMA_MIN, "null"},             {SCHED_F_SIGMA_MAX, "null"},
    {SCHED_F_SHIFT_TERMINAL, "null"},        {0, NULL},
};

#define MAXO 3
#define LOWER_ORDER_NUMS ctr[0]
#define THIS_ORDER ctr[1]
#define HAS_LAST ctr[2]
#define BH2 ctr[3]

static sdrt_status check_solver(sdrt_sched *s) {
    sched_config *c = &s->cfg;
    sched_diag *d = &s->diag;
    /* diffusers maps the DPM-Solver names onto bh2 */
    if (cfg_is(c, SCHED_F_SOLVER_TYPE, "midpoint") || cfg_is(c, SCHED_F_SOLVER_TYPE, "heun") ||
        cfg_is(c, SCHED_F_SOLVER_TYPE, "logrho"))
        strcpy(c->v[SCHED_F_SOLVER_TYPE].str, "bh2");
    if (cfg_is(c, SCHED_F_SOLVER_TYPE, "bh2")) s->BH2 = 1;
    else if (cfg_is(c, SCHED_F_SOLVER_TYPE, "bh1")) s->BH2 = 0;
    else
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_type: '%s' is not one of bh1, bh2",
                          c->v[SCHED_F_SOLVER_TYPE].str);
    double order = cfg_num(c, SCHED_F_SOLVER_ORDER);
    if (order < 1 || order > MAXO)
        return sched_fail(d, SDRT_INVALID_ARGUMENT, "scheduler_config.solver_order: %.0f is not in 1..3", order);
    if (!cfg_null(c, SCHED_F_SOLVER_P))
        return sched_fail(d, SDRT_UNSUPPORTED,
                          "scheduler_config.solver_p: a second scheduler as predictor is not supported");
    if (!cfg_null(c, SCHED_F_SHIFT_TERMINAL))
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.shift_terminal: only allowed with use_flow_sigmas, which is not supported");
    if (!cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "zero") && !cfg_is(c, SCHED_F_FINAL_SIGMAS_TYPE, "sigma_min"))
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "scheduler_config.final_sigmas_type: '%s' is not one of zero, sigma_min",
                          c->v[SCHED_F_FINAL_SIGMAS_TYPE].str);
    return SDRT_OK;
}

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1) || check_solver(s)) return s->diag.code;
    s->LOWER_ORDER_NUMS = 0;
    s->THIS_ORDER = 0;
    s->HAS_LAST = 0;
    return sched_dpm_schedule(s, SCHED_VAR_UNIPC);
}

static int predict_x0(const sdrt_sched *s) { return cfg_bool(&s->cfg, SCHED_F_PREDICT_X0); }

/* convert_model_output: x0 with predict_x0, epsilon otherwise. */
static void convert(const sdrt_sched *s, uint32_t i, const float *e, const float *x, float *out, size_t n) {
    const sched_config *c = &s->cfg;
    float at, st;
    sched_alpha_sigma(s->sigmas[i], &at, &st);
    int x0 = predict_x0(s);
    if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "epsilon")) {
        if (x0) for (size_t k = 0; k < n; k++) out[k] = (x[k] - st * e[k]) / at;
        else memcpy(out, e, n * sizeof *out);
    } else if (cfg_is(c, SCHED_F_PREDICTION_TYPE, "sample")) {
        if (x0) memcpy(out, e, n * sizeof *out);
        else for (size_t k = 0; k < n; k++) out[k] = (x[k] - at * e[k]) / st;
    } else {
        if (x0) for (size_t k = 0; k < n; k++) out[k] = at * x[k] - st * e[k];
        else for (size_t k = 0; k < n; k++) out[k] = at * e[k] + st * x[k];
    }
}

static float lambda_at(const sdrt_sched *s, uint32_t i) {
    float a, sg;
    sched_alpha_sigma(s->sigmas[i], &a, &sg);
    return logf(a) - logf(sg);
}

/* Solves A y = b (n <= 3) in float32 with partial pivoting, in place. */
static void solve_f32(float A[MAXO][MAXO], float *b, int n) {
    for (int j = 0; j < n; j++) {
        int p = j;
        for (int r = j + 1; r < n; r++)
            if (fabsf(A[r][j]) > fabsf(A[p][j])) p = r;
        if (p != j) {
            for (int k = 0; k < n; k++) {
                float t = A[j][k];
                A[j][k] = A[p][k];
                A[p][k] = t;
            }
            float t = b[j];
            b[j] = b[p];
            b[p] = t;
        }
        float inv = 1.0f / A[j][j];
        for (int r = j + 1; r < n; r++) {
            float l = A[r][j] * inv;
            for (int k = j + 1; k < n; k++) A[r][k] -= l * A[j][k];
            b[r] -= l * b[j];
        }
    }
    for (int j = n - 1; j >= 0; j--) {
        for (int k = j + 1; k < n; k++) b[j] -= A[j][k] * b[k];
        b[j] /= A[j][j];
    }
}

/* The scalars shared by UniP and UniC for one update from sigma index s0
 * to t, with the history points rks (the last one is 1). */
typedef struct unic_coeffs {
    float at, st, as0, ss0, h, hh, h_phi_1, B_h;
    float rks[MAXO];
    float b[MAXO];
    float R[MAXO][MAXO];
} uni_coeffs;

static void uni_coeffs_fill(const sdrt_sched *s, uint32_t t, uint32_t s0, const uint32_t *si, int order,
                            uni_coeffs *q) {
    sched_alpha_sigma(s->sigmas[t], &q->at, &q->st);
    sched_alpha_sigma(s->sigmas[s0], &q->as0, &q->ss0);
    float l_t = logf(q->at) - logf(q->st), l_s0 = logf(q->as0) - logf(q->ss0);
    q->h = l_t - l_s0;
    for (int k = 0; k < order - 1; k++) q->rks[k] = (lambda_at(s, si[k]) - l_s0) / q->h;
    q->rks[order - 1] = 1.0f;
    q->hh = predict_x0(s) ? -q->h : q->h;
    q->h_phi_1 = expm1f(q->hh);
    float h_phi_k = q->h_phi_1 / q->hh - 1.0f;
    q->B_h = s->BH2 ? expm1f(q->hh) : q->hh;
    int factorial = 1;
    for (int i = 1; i <= order; i++) {
        for (int k = 0; k < order; k++) q->R[i - 1][k] = i == 1 ? 1.0f : (i == 2 ? q->rks[k] : q->rks[k] * q->rks[k]);
        q->b[i - 1] = h_phi_k * (float)factorial / q->B_h;
        factorial *= i + 1;
        h_phi_k = h_phi_k / q->hh - (float)(1.0 / factorial);
    }
}

/* x_t = c_x * x - c_m * m0 - c_r * res, the shared closing formula. */
static void uni_close(const sdrt_sched *s, const uni_coeffs *q, float *cx, float *cm, float *cr) {
    if (predict_x0(s)) {
        *cx = q->st / q->ss0;
        *cm = q->at * q->h_phi_1;
        *cr = q->at * q->B_h;
    } else {
        *cx = q->at / q->as0;
        *cm = q->st * q->h_phi_1;
        *cr = q->st * q->B_h;
    }
}

/* multistep_uni_p_bh_update: the predictor from x (in place). hist[K-1]
 * is m0, hist[K-1-k] the k-th older output. */
static void uni_p(sdrt_sched *s, uint32_t i, float *const *hist, int K, int order, float *x, size_t n) {
    uint32_t si[MAXO] = {0};
    for (int k = 1; k < order; k++) si[k - 1] = i - (uint32_t)k;
    uni_coeffs q;
    uni_coeffs_fill(s, i + 1, i, si, order, &q);
    float rhos[MAXO] = {0};
    if (order == 2) {
        rhos[0] = 0.5f;
    } else if (order == 3) {
        float A[MAXO][MAXO] = {{q.R[0][0], q.R[0][1]}, {q.R[1][0], q.R[1][1]}};
        rhos[0] = q.b[0];
        rhos[1] = q.b[1];
        solve_f32(A, rhos, 2);
    }
    float cx, cm, cr;
    uni_close(s, &q, &cx, &cm, &cr);
    const float *m0 = hist[K - 1];
    for (size_t k = 0; k < n; k++) {
        float res = 0.0f;
        for (int j = 1; j < order; j++) res += rhos[j - 1] * ((hist[K - 1 - j][k] - m0[k]) / q.rks[j - 1]);
        float v = cx * x[k] - cm * m0[k];
        x[k] = order > 1 ? v - cr * res : v - cr * 0.0f;
    }
}

/* multistep_uni_c_bh_update: corrects x (this sample) with the new model
 * output mt, from last_sample at sigma index i-1. */
static void uni_c(sdrt_sched *s, uint32_t i, float *const *hist, int K, int order, const float *mt,
                  const float *last, float *x, size_t n) {
    uint32_t si[MAXO] = {0};
    for (int k = 1; k < order; k++) si[k - 1] = i - (uint32_t)(k + 1);
    uni_coeffs q;
    uni_coeffs_fill(s, i, i - 1, si, order, &q);
    float rhos[MAXO];
    if (order == 1) {
        rhos[0] = 0.5f;
    } else {
        float A[MAXO][MAXO];
        memcpy(A, q.R, sizeof A);
        memcpy(rhos, q.b, sizeof rhos);
        solve_f32(A, rhos, order);
    }
    float cx, cm, cr;
    uni_close(s, &q, &cx, &cm, &cr);
    const float *m0 = hist[K - 1];
    float rlast = rhos[order - 1];
    for (size_t k = 0; k < n; k++) {
        float res = 0.0f;
        for (int j = 1; j < order; j++) res += rhos[j - 1] * ((hist[K - 1 - j][k] - m0[k]) / q.rks[j - 1]);
        float v = cx * last[k] - cm * m0[k];
        x[k] = v - cr * (res + rlast * (mt[k] - m0[k]));
    }
}

static int corrector_disabled(const sdrt_sched *s, uint32_t idx) {
    const sched_value *v = &s->cfg.v[SCHED_F_DISABLE_CORRECTOR];
    for (uint32_t k = 0; k < v->n_arr; k++)
        if (v->arr[k] == (float)idx) return 1;
    return 0;
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    (void)rng;
    const sched_config *c = &s->cfg;
    int K = (int)cfg_num(c, SCHED_F_SOLVER_ORDER);
    float *conv = s->buf[4], *last = s->buf[3];
    convert(s, i, e, x, conv, n);
    if (i > 0 && s->HAS_LAST && !corrector_disabled(s, i - 1))
        uni_c(s, i, s->buf, K, s->THIS_ORDER, conv, last, x, n);
    /* the history shifts by one: the oldest buffer is recycled */
    float *oldest = s->buf[0];
    for (int k = 0; k < K - 1; k++) s->buf[k] = s->buf[k + 1];
    s->buf[K - 1] = conv;
    s->buf[4] = oldest;
    int this_order = K;
    if (cfg_bool(c, SCHED_F_LOWER_ORDER_FINAL) && (int)(s->n_ts - i) < K) this_order = (int)(s->n_ts - i);
    if (this_order > s->LOWER_ORDER_NUMS + 1) this_order = s->LOWER_ORDER_NUMS + 1;
    s->THIS_ORDER = this_order;
    memcpy(last, x, n * sizeof *x);
    s->HAS_LAST = 1;
    uni_p(s, i, s->buf, K, this_order, x, n);
    if (s->LOWER_ORDER_NUMS < K) s->LOWER_ORDER_NUMS++;
    return SDRT_OK;
}

const sched_kind sched_kind_unipc = {
    .name = "UniPCMultistepScheduler",
    .fields = fields,
    .order = 1,
    .has_sigmas = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_dpm_add_noise,
    .n_bufs = 5,
};
