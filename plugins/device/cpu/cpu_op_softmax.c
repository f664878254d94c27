/* cpu_op_softmax.c - SOFTMAX over the last dim of scale * x, max-subtracted
 * so large logits do not overflow. */
#include "cpu_internal.h"

#include <math.h>

typedef struct cpu_sm {
    const sdrt_tensor *x, *y;
    float scale;
    int64_t rows, rows_per_task;
} cpu_sm;

static void cpu_sm_row(const cpu_sm *s, int64_t r) {
    int64_t n = s->x->shape[s->x->ndim - 1];
    int64_t sx = s->x->strides[s->x->ndim - 1], sy = s->y->strides[s->y->ndim - 1];
    const float *x = (const float *)s->x->data + cpu_row_offset(s->x, r);
    float *y = (float *)s->y->data + cpu_row_offset(s->y, r);
    if (sx == 1 && sy == 1) {
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * s->scale;
        float sum = cpu_exp_shift_sum(y, n, cpu_row_max(y, n)), inv = 1.0f / sum;
        for (int64_t i = 0; i < n; i++) y[i] *= inv;
        return;
    }
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, x[i * sx] * s->scale);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i * sx] * s->scale - mx);
        y[i * sy] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) y[i * sy] *= inv;
}

static void cpu_sm_task(void *arg, int64_t t, int thread) {
    const cpu_sm *s = arg;
    int64_t r1 = (t + 1) * s->rows_per_task;
    for (int64_t r = t * s->rows_per_task; r < r1 && r < s->rows; r++) cpu_sm_row(s, r);
}

sdrt_status cpu_op_softmax(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0];
    if (x->ndim < 1 || !cpu_same_shape(x, op->dst)) return SDRT_INVALID_ARGUMENT;
    cpu_sm s = {.x = x, .y = op->dst, .scale = op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f, .rows = cpu_rows(x)};
    if (s.rows == 0 || x->shape[x->ndim - 1] == 0) return SDRT_OK;
    s.rows_per_task = cpu_div_up(s.rows, 4 * (int64_t)ctx->threads);
    cpu_ctx_run(ctx, cpu_div_up(s.rows, s.rows_per_task), cpu_sm_task, &s);
    return SDRT_OK;
}
