/* cpu_op_norm.c - GROUP_NORM (optionally fused SiLU) and LAYER_NORM.
 * Statistics are accumulated in double: groups hold up to ~10^5 values and
 * a float sum would lose the 1e-5 agreement with PyTorch. */
#include "cpu_internal.h"

#include <math.h>

#define CPU_DEFAULT_EPS 1e-5f

/* ---- group norm ---------------------------------------------------------- */

typedef struct cpu_gn {
    const float *x;
    float *y;
    const float *gamma, *beta; /* contiguous, NULL = 1 / 0 */
    int64_t c, spatial, groups;
    float eps;
    int silu;
} cpu_gn;

static void cpu_gn_task(void *arg, int64_t t, int thread) {
    const cpu_gn *g = arg;
    int64_t n = t / g->groups, grp = t % g->groups, cg = g->c / g->groups;
    int64_t base = (n * g->c + grp * cg) * g->spatial, count = cg * g->spatial;
    const float *x = g->x + base;
    double sum = 0.0;
    for (int64_t i = 0; i < count; i++) sum += x[i];
    double mean = sum / (double)count, var = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    float rstd = (float)(1.0 / sqrt(var / (double)count + g->eps)), fmean = (float)mean;
    for (int64_t ci = 0; ci < cg; ci++) {
        int64_t ch = grp * cg + ci;
        float scale = rstd * (g->gamma ? g->gamma[ch] : 1.0f), shift = g->beta ? g->beta[ch] : 0.0f;
        const float *xc = x + ci * g->spatial;
        float *yc = g->y + base + ci * g->spatial;
        for (int64_t i = 0; i < g->spatial; i++) yc[i] = (xc[i] - fmean) * scale + shift;
        if (g->silu) cpu_act_row_f32(SDRT_OP_SILU, yc, yc, g->spatial);
    }
}

sdrt_status cpu_op_group_norm(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0];
    sdrt_tensor *y = op->dst;
    if (x->ndim < 2 || !cpu_same_shape(x, y)) return SDRT_INVALID_ARGUMENT;
    int64_t groups = op->iparams[0] > 0 ? op->iparams[0] : 32, c = x->shape[1];
    if (c % groups) return SDRT_INVALID_ARGUMENT;
    sdrt_status st;
    const float *gamma = cpu_param_f32(ctx, op->src[1], c, 0, &st);
    if (st != SDRT_OK) return st;
    const float *beta = cpu_param_f32(ctx, op->src[2], c, 1, &st);
    if (st != SDRT_OK) return st;
    sdrt_tensor xs, ys = *y;
    st = cpu_contiguous(ctx, x, CPU_SLOT_TMP_SRC, &xs);
    if (st != SDRT_OK) return st;
    int staged = !cpu_is_contiguous(y);
    if (staged) {
        ys.data = cpu_ctx_shared(ctx, CPU_SLOT_TMP_DST, (size_t)cpu_numel(y) * sizeof(float));
        if (!ys.data) return SDRT_RESOURCE_EXHAUSTED;
        cpu_set_contiguous_strides(&ys);
    }
    cpu_gn g = {.x = xs.data, .y = ys.data, .gamma = gamma, .beta = beta, .c = c,
                .spatial = cpu_numel(x) / (x->shape[0] * c), .groups = groups,
                .eps = op->fparams[0] != 0.0f ? op->fparams[0] : CPU_DEFAULT_EPS, .silu = op->iparams[1] == 1};
    if (x->shape[0] * c == 0) return SDRT_OK;
    cpu_ctx_run(ctx, x->shape[0] * groups, cpu_gn_task, &g);
    return staged ? cpu_copy_tensor(ctx, &ys, y) : SDRT_OK;
}

/* ---- layer norm ---------------------------------------------------------- */

typedef struct cpu_ln {
    const sdrt_tensor *x, *y;
    const float *gamma, *beta; /* contiguous, NULL = 1 / 0 */
    int64_t rows, rows_per_task;
    float eps;
} cpu_ln;

static void cpu_ln_row(const cpu_ln *l, int64_t r) {
    int64_t n = l->x->shape[l->x->ndim - 1];
    int64_t sx = l->x->strides[l->x->ndim - 1], sy = l->y->strides[l->y->ndim - 1];
    const float *x = (const float *)l->x->data + cpu_row_offset(l->x, r);
    float *y = (float *)l->y->data + cpu_row_offset(l->y, r);
    double sum = 0.0, var = 0.0;
    for (int64_t i = 0; i < n; i++) sum += x[i * sx];
    double mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i * sx] - mean;
        var += d * d;
    }
    float rstd = (float)(1.0 / sqrt(var / (double)n + l->eps)), fmean = (float)mean;
    for (int64_t i = 0; i < n; i++)
        y[i * sy] = (x[i * sx] - fmean) * rstd * (l->gamma ? l->gamma[i] : 1.0f) + (l->beta ? l->beta[i] : 0.0f);
}

static void cpu_ln_task(void *arg, int64_t t, int thread) {
    const cpu_ln *l = arg;
    int64_t r1 = (t + 1) * l->rows_per_task;
    for (int64_t r = t * l->rows_per_task; r < r1 && r < l->rows; r++) cpu_ln_row(l, r);
}

sdrt_status cpu_op_layer_norm(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0];
    if (x->ndim < 1 || !cpu_same_shape(x, op->dst)) return SDRT_INVALID_ARGUMENT;
    int64_t n = x->shape[x->ndim - 1];
    sdrt_status st;
    const float *gamma = cpu_param_f32(ctx, op->src[1], n, 0, &st);
    if (st != SDRT_OK) return st;
    const float *beta = cpu_param_f32(ctx, op->src[2], n, 1, &st);
    if (st != SDRT_OK) return st;
    cpu_ln l = {.x = x, .y = op->dst, .gamma = gamma, .beta = beta, .rows = cpu_rows(x),
                .eps = op->fparams[0] != 0.0f ? op->fparams[0] : CPU_DEFAULT_EPS};
    if (n == 0 || l.rows == 0) return SDRT_OK;
    l.rows_per_task = cpu_div_up(l.rows, 4 * (int64_t)ctx->threads);
    cpu_ctx_run(ctx, cpu_div_up(l.rows, l.rows_per_task), cpu_ln_task, &l);
    return SDRT_OK;
}
