/* cpu_op_activation.c - element-wise GELU, GELU_TANH, QUICK_GELU, SILU,
 * SCALE and the gated GEGLU, over any strides (cpu_iterate coalesces);
 * contiguous runs go to the vectorised rows of cpu_vact.c. */
#include "cpu_internal.h"

#include <math.h>

typedef struct cpu_act {
    const float *x;
    float *y;
    sdrt_op_kind kind;
    float a, b;
} cpu_act;

static void cpu_act_row(void *arg, int64_t n, const int64_t *offs, const int64_t *inner) {
    const cpu_act *c = arg;
    const float *x = c->x + offs[0];
    float *y = c->y + offs[1];
    int64_t sx = inner[0], sy = inner[1];
    if (c->kind == SDRT_OP_SCALE && sx == 1 && sy == 1) {
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * c->a + c->b;
        return;
    }
    if (c->kind == SDRT_OP_SCALE) {
        for (int64_t i = 0; i < n; i++) y[i * sy] = x[i * sx] * c->a + c->b;
        return;
    }
    if (sx == 1 && sy == 1) {
        cpu_act_row_f32(c->kind, x, y, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i * sy] = cpu_act1(c->kind, x[i * sx]);
}

sdrt_status cpu_op_activation(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0];
    sdrt_tensor *y = op->dst;
    if (!cpu_same_shape(x, y)) return SDRT_INVALID_ARGUMENT;
    cpu_act c = {.x = x->data, .y = y->data, .kind = op->kind, .a = op->fparams[0], .b = op->fparams[1]};
    const int64_t *strides[2] = {x->strides, y->strides};
    cpu_iterate(ctx, x->ndim, x->shape, 2, strides, cpu_act_row, &c);
    return SDRT_OK;
}

/* ---- GEGLU: dst[.., j] = x[.., j] * gelu(x[.., N + j]) -------------------- */

typedef struct cpu_geglu {
    const sdrt_tensor *x, *y;
    int64_t rows, rows_per_task;
} cpu_geglu;

static void cpu_geglu_task(void *arg, int64_t t, int thread) {
    const cpu_geglu *g = arg;
    int64_t n = g->y->shape[g->y->ndim - 1];
    int64_t sx = g->x->strides[g->x->ndim - 1], sy = g->y->strides[g->y->ndim - 1];
    int64_t r1 = (t + 1) * g->rows_per_task;
    for (int64_t r = t * g->rows_per_task; r < r1 && r < g->rows; r++) {
        const float *x = (const float *)g->x->data + cpu_row_offset(g->x, r);
        float *y = (float *)g->y->data + cpu_row_offset(g->y, r);
        if (sx == 1 && sy == 1) cpu_geglu_row_f32(x, x + n, y, n);
        else
            for (int64_t j = 0; j < n; j++) y[j * sy] = x[j * sx] * cpu_gelu1(x[(n + j) * sx]);
    }
}

sdrt_status cpu_op_geglu(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0], *y = op->dst;
    if (x->ndim < 1 || x->ndim != y->ndim) return SDRT_INVALID_ARGUMENT;
    for (int d = 0; d < x->ndim - 1; d++)
        if (x->shape[d] != y->shape[d]) return SDRT_INVALID_ARGUMENT;
    if (x->shape[x->ndim - 1] != 2 * y->shape[y->ndim - 1]) return SDRT_INVALID_ARGUMENT;
    cpu_geglu g = {.x = x, .y = y, .rows = cpu_rows(y)};
    if (g.rows == 0) return SDRT_OK;
    g.rows_per_task = cpu_div_up(g.rows, 4 * (int64_t)ctx->threads);
    cpu_ctx_run(ctx, cpu_div_up(g.rows, g.rows_per_task), cpu_geglu_task, &g);
    return SDRT_OK;
}
