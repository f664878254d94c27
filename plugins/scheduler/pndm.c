/* plugins/scheduler/pndm.c - PNDMScheduler (Liu et al., pseudo numerical
 * methods; A1111 "PLMS" is skip_prk_steps = true).
 *
 * Without skip_prk_steps the first three solver steps are Runge-Kutta
 * (four model calls each, 12 loop iterations), then linear multistep.
 * diffusers drives both by a call counter, not by the timestep index, so
 * we do too (counter = steps taken since the begin index).
 *
 * Buffers: buf[0..3] = past model outputs (ets, ring, newest at ctr[2]),
 * buf[4] = cur_sample, buf[5] = the Runge-Kutta running sum, buf[6] =
 * the combined model output.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

static const sched_field_default fields[] = {
    {SCHED_F_NUM_TRAIN_TIMESTEPS, "1000"},  {SCHED_F_BETA_START, "0.0001"},
    {SCHED_F_BETA_END, "0.02"},             {SCHED_F_BETA_SCHEDULE, "\"linear\""},
    {SCHED_F_TRAINED_BETAS, "null"},        {SCHED_F_SKIP_PRK_STEPS, "false"},
    {SCHED_F_SET_ALPHA_TO_ONE, "false"},    {SCHED_F_PREDICTION_TYPE, "\"epsilon\""},
    {SCHED_F_TIMESTEP_SPACING, "\"leading\""}, {SCHED_F_STEPS_OFFSET, "0"},
    {0, NULL},
};

#define PNDM_ORDER 4
#define PRK_STEPS 12 /* 3 Runge-Kutta steps x 4 model calls */
#define COUNTER ctr[0]
#define ETS_N ctr[1]
#define ETS_NEWEST ctr[2]

/* The spacing in ascending order (diffusers' _timesteps). */
static void ascending(const sdrt_sched *s, uint32_t N, int64_t *a) {
    const sched_config *c = &s->cfg;
    uint32_t T = s->T;
    if (cfg_is(c, SCHED_F_TIMESTEP_SPACING, "linspace")) {
        double *t = malloc(N * sizeof *t);
        if (!t) return;
        sched_np_linspace(0, (double)T - 1, N, t);
        for (uint32_t i = 0; i < N; i++) a[i] = (int64_t)nearbyint(t[i]);
        free(t);
    } else if (cfg_is(c, SCHED_F_TIMESTEP_SPACING, "leading")) {
        uint32_t ratio = T / N;
        for (uint32_t i = 0; i < N; i++) a[i] = (int64_t)i * ratio + (int64_t)cfg_num(c, SCHED_F_STEPS_OFFSET);
    } else {
        /* np.round(np.arange(T, 0, -T/N))[::-1] - 1 */
        double ratio = (double)T / (double)N, delta = ((double)T - ratio) - (double)T;
        for (uint32_t i = 0; i < N; i++) a[N - 1 - i] = (int64_t)nearbyint((double)T + (double)i * delta) - 1;
    }
}

static sdrt_status setup(sdrt_sched *s) {
    sched_diag *d = &s->diag;
    if (sched_check_sigma_flags(s) || sched_check_prediction(s, 0)) return d->code;
    uint32_t N = (uint32_t)s->num_inference_steps;
    int skip = cfg_bool(&s->cfg, SCHED_F_SKIP_PRK_STEPS);
    if (!skip && N < PNDM_ORDER)
        return sched_fail(d, SDRT_INVALID_ARGUMENT,
                          "num_inference_steps: %u is less than 4, which PNDM's Runge-Kutta warm-up needs; set "
                          "skip_prk_steps (PLMS)",
                          N);
    int64_t *a = calloc(N, sizeof *a);
    if (!a) return sched_fail(d, SDRT_RESOURCE_EXHAUSTED, "scheduler: out of memory");
    ascending(s, N, a);
    uint32_t n_ts = skip ? (N == 1 ? 1 : N + 1) : N + 9;
    if (sched_alloc_tables(s, n_ts, 0)) {
        free(a);
        return d->code;
    }
    uint32_t k = 0;
    if (skip) {
        /* concat(a[:-1], a[-2:-1], a[-1:])[::-1] */
        s->timesteps[k++] = (float)a[N - 1];
        if (N > 1) s->timesteps[k++] = (float)a[N - 2];
        for (uint32_t i = N - 1; i-- > 0;) s->timesteps[k++] = (float)a[i];
    } else {
        /* the last four timesteps and their midpoints, each inner value
         * twice: [t3, m2, m2, t2, t2, m1, m1, t1, t1, m0, m0, t0] */
        int64_t half = (int64_t)(s->T / N / 2), prk[2 * PNDM_ORDER];
        for (int j = 0; j < PNDM_ORDER; j++) {
            prk[2 * j] = a[N - PNDM_ORDER + (uint32_t)j];
            prk[2 * j + 1] = prk[2 * j] + half;
        }
        int64_t rep[4 * PNDM_ORDER - 2];
        for (int j = 0; j < 2 * PNDM_ORDER - 1; j++) rep[2 * j] = rep[2 * j + 1] = prk[j];
        for (int j = PRK_STEPS; j >= 1; j--) s->timesteps[k++] = (float)rep[j];
        for (uint32_t i = N - 3; i-- > 0;) s->timesteps[k++] = (float)a[i];
    }
    free(a);
    s->init_noise_sigma = 1.0f;
    s->COUNTER = 0;
    s->ETS_N = 0;
    s->ETS_NEWEST = 0;
    return SDRT_OK;
}

static float alpha_or_final(const sdrt_sched *s, int64_t t) {
    if (t >= 0) return sched_alpha_at(s, t);
    return cfg_bool(&s->cfg, SCHED_F_SET_ALPHA_TO_ONE) ? 1.0f : s->alphas_cumprod[0];
}

/* _get_prev_sample: x (in place) from `sample` at t to prev. */
static void prev_sample(const sdrt_sched *s, const float *sample, int64_t t, int64_t prev, const float *mo, float *x,
                        size_t n) {
    float a = sched_alpha_at(s, t), ap = alpha_or_final(s, prev);
    float b = 1.0f - a, bp = 1.0f - ap;
    int v = cfg_is(&s->cfg, SCHED_F_PREDICTION_TYPE, "v_prediction");
    float sa = sqrtf(a), sb = sqrtf(b);
    float coeff = sqrtf(ap / a);
    float denom = a * sqrtf(bp) + sqrtf(a * b * ap);
    float dap = ap - a;
    for (size_t k = 0; k < n; k++) {
        float m = v ? sa * mo[k] + sb * sample[k] : mo[k];
        x[k] = coeff * sample[k] - dap * m / denom;
    }
}

static float *ets(const sdrt_sched *s, int back) {
    return s->buf[(s->ETS_NEWEST - back + PNDM_ORDER) % PNDM_ORDER];
}

static void ets_push(sdrt_sched *s, const float *mo, size_t n) {
    s->ETS_NEWEST = (s->ETS_NEWEST + 1) % PNDM_ORDER;
    memcpy(s->buf[s->ETS_NEWEST], mo, n * sizeof *mo);
    if (s->ETS_N < PNDM_ORDER) s->ETS_N++;
}

static void step_prk(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n) {
    int c = s->COUNTER;
    int64_t t = (int64_t)s->timesteps[i];
    int64_t diff = c % 2 ? 0 : (int64_t)(s->T / (uint32_t)s->num_inference_steps / 2);
    /* diffusers indexes prk_timesteps by the counter, not by i */
    int64_t prev = t - diff, t_group = (int64_t)s->timesteps[c / 4 * 4];
    float *cur = s->buf[4], *acc = s->buf[5], *mo = s->buf[6];
    const float sixth = (float)(1.0 / 6.0), third = (float)(1.0 / 3.0);
    const float *use = e;
    switch (c % 4) {
    case 0:
        for (size_t k = 0; k < n; k++) acc[k] = sixth * e[k];
        ets_push(s, e, n);
        memcpy(cur, x, n * sizeof *x);
        break;
    case 1:
    case 2:
        for (size_t k = 0; k < n; k++) acc[k] = acc[k] + third * e[k];
        break;
    default:
        for (size_t k = 0; k < n; k++) mo[k] = acc[k] + sixth * e[k];
        use = mo;
        break;
    }
    prev_sample(s, cur, t_group, prev, use, x, n);
}

static void step_plms(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n) {
    int c = s->COUNTER;
    int64_t ratio = (int64_t)(s->T / (uint32_t)s->num_inference_steps);
    int64_t t = (int64_t)s->timesteps[i], prev = t - ratio;
    float *cur = s->buf[4], *mo = s->buf[6];
    const float *sample = x;
    if (c != 1) ets_push(s, e, n);
    else {
        prev = t;
        t = t + ratio;
    }
    if (s->ETS_N == 1 && c == 0) {
        memcpy(mo, e, n * sizeof *e);
        memcpy(cur, x, n * sizeof *x);
    } else if (s->ETS_N == 1 && c == 1) {
        const float *e1 = ets(s, 0);
        for (size_t k = 0; k < n; k++) mo[k] = (e[k] + e1[k]) / 2.0f;
        sample = cur;
    } else if (s->ETS_N == 2) {
        const float *e1 = ets(s, 0), *e2 = ets(s, 1);
        for (size_t k = 0; k < n; k++) mo[k] = (3.0f * e1[k] - e2[k]) / 2.0f;
    } else if (s->ETS_N == 3) {
        const float *e1 = ets(s, 0), *e2 = ets(s, 1), *e3 = ets(s, 2);
        for (size_t k = 0; k < n; k++) mo[k] = (23.0f * e1[k] - 16.0f * e2[k] + 5.0f * e3[k]) / 12.0f;
    } else {
        const float *e1 = ets(s, 0), *e2 = ets(s, 1), *e3 = ets(s, 2), *e4 = ets(s, 3);
        const float c24 = (float)(1.0 / 24.0);
        for (size_t k = 0; k < n; k++) mo[k] = c24 * (55.0f * e1[k] - 59.0f * e2[k] + 37.0f * e3[k] - 9.0f * e4[k]);
    }
    prev_sample(s, sample, t, prev, mo, x, n);
}

static sdrt_status step(sdrt_sched *s, uint32_t i, const float *e, float *x, size_t n, sdrt_rng *rng) {
    (void)rng;
    if (s->COUNTER < PRK_STEPS && !cfg_bool(&s->cfg, SCHED_F_SKIP_PRK_STEPS)) step_prk(s, i, e, x, n);
    else step_plms(s, i, e, x, n);
    s->COUNTER++;
    return SDRT_OK;
}

const sched_kind sched_kind_pndm = {
    .name = "PNDMScheduler",
    .fields = fields,
    .order = 1,
    .setup = setup,
    .step = step,
    .add_noise = sched_add_noise_alpha,
    .n_bufs = 7,
};
