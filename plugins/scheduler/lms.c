/* plugins/scheduler/lms.c - LMSDiscreteScheduler (k-diffusion "lms",
 * A1111 "LMS").
 *
 * Linear multistep of order up to 4 over the Euler sigma schedule. The
 * coefficient of each stored derivative is the integral of its Lagrange
 * basis polynomial between sigmas[i] and sigmas[i+1]; diffusers gets it
 * from scipy.integrate.quad, which is exact for these low-degree
 * polynomials, so we integrate with 3-point Gauss-Legendre (exact up to
 * degree 5) in double.
 *
 * buf[0] = x0 scratch, buf[1..4] = derivatives (ring, newest at
 * ctr[1]); ctr[0] = how many are stored.
 */
#include <math.h>
#include <stdlib.h>

#include "sched.h"

#define LMS_ORDER 4 /* diffusers' step(order=4) default */
#define STORED ctr[0]
#define NEWEST ctr[1]

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},   {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},              {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},         {SCHED_F_USE_KARRAS_SIGMAS, "false"},
    {SCHED_F_USE_EXPONENTIAL_SIGMAS, "false"}, {SCHED_F_USE_BETA_SIGMAS, "false"},
    {SCHED_F_PREDICTION_TYPE, "\"epsilon\""}, {SCHED_F_TIMESTEP_SPACING, "\"linspace\""},
    {SCHED_F_STEPS_OFFSET, "0"},             {0, NULL},
};

static sdrt_status setup(sdrt_sched *s) {
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 1)) return s->diag.code;
    s->STORED = 0;
    s->NEWEST = 0;
    return sched_k_tables(s);
}

/* The Lagrange basis polynomial `cur` over sigmas[t], sigmas[t-1], ... */
static double basis(const sdrt_sched *s, int order, uint32_t t, int cur, double tau) {
    double prod = 1.0;
    for (int k = 0; k < order; k++) {
        if (k == cur) continue;
        double sk = s->sigmas[t - (uint32_t)k], sc = s->sigmas[t - (uint32_t)cur];
        prod *= (tau - sk) / (sc - sk);
    }
    return prod;
}

/* get_lms_coefficient: integral of the basis over [sigmas[t], sigmas[t+1]]. */
static double lms_coefficient(const sdrt_sched *s, int order, uint32_t t, int cur) {
    static const double node[3] = {-0.7745966692414834, 0.0, 0.7745966692414834};
    static const double weight[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};
    double a = s->sigmas[t], b = s->sigmas[t + 1];
    double half = 0.5 * (b - a), mid = 0.5 * (a + b), sum = 0.0;
    for (int q = 0; q < 3; q++) sum += weight[q] * basis(s, order, t, cur, mid + half * node[q]);
    return sum * half;
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    (void)rng;
    float sigma = s->sigmas[i];
    float *x0 = s->buf[0];
    sched_k_x0(s, sigma, e, x, x0, n);
    /* the oldest of a full history is overwritten by the new derivative */
    s->NEWEST = (s->NEWEST + 1) % LMS_ORDER;
    float *d = s->buf[1 + s->NEWEST];
    for (size_t k = 0; k < n; k++) d[k] = (x[k] - x0[k]) / sigma;
    if (s->STORED < LMS_ORDER) s->STORED++;
    /* diffusers: order = min(step_index + 1, 4) for the polynomial, and
     * zip() with the stored derivatives uses at most that many terms
     * (fewer after a begin index) */
    int order = i + 1 < LMS_ORDER ? (int)i + 1 : LMS_ORDER;
    int terms = order < s->STORED ? order : s->STORED;
    float coeff[LMS_ORDER];
    for (int c = 0; c < terms; c++) coeff[c] = (float)lms_coefficient(s, order, i, c);
    const float *dc[LMS_ORDER]; /* newest first, as zip(coeffs, reversed(derivatives)) */
    for (int c = 0; c < terms; c++) dc[c] = s->buf[1 + (s->NEWEST - c + LMS_ORDER) % LMS_ORDER];
    for (size_t k = 0; k < n; k++) {
        float acc = 0.0f;
        for (int c = 0; c < terms; c++) acc += coeff[c] * dc[c][k];
        x[k] = x[k] + acc;
    }
    return SDRT_OK;
}

const sched_kind sched_kind_lms = {
    .name = "LMSDiscreteScheduler",
    .fields = fields,
    .order = 1,
    .has_sigmas = 1,
    .setup = setup,
    .scale = sched_scale_sigma,
    .step = step,
    .n_bufs = 1 + LMS_ORDER,
};
