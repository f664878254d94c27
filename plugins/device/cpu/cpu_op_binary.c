/* cpu_op_binary.c - ADD (with alpha on src1) and MUL, src1 broadcast to
 * src0's shape by NumPy rules: broadcast dims get stride 0 and the N-d
 * iterator does the rest. */
#include "cpu_internal.h"

typedef struct cpu_bin {
    const float *a, *b;
    float *y;
    int mul;
    float alpha;
} cpu_bin;

static void cpu_bin_row(void *arg, int64_t n, const int64_t *offs, const int64_t *inner) {
    const cpu_bin *c = arg;
    const float *a = c->a + offs[0], *b = c->b + offs[1];
    float *y = c->y + offs[2];
    int64_t sa = inner[0], sb = inner[1], sy = inner[2];
    if (sa == 1 && sy == 1 && (sb == 1 || sb == 0)) {
        /* The common layouts get loops the compiler vectorises. */
        if (c->mul && sb) for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
        else if (c->mul) for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[0];
        else if (sb) for (int64_t i = 0; i < n; i++) y[i] = a[i] + c->alpha * b[i];
        else for (int64_t i = 0; i < n; i++) y[i] = a[i] + c->alpha * b[0];
        return;
    }
    for (int64_t i = 0; i < n; i++)
        y[i * sy] = c->mul ? a[i * sa] * b[i * sb] : a[i * sa] + c->alpha * b[i * sb];
}

sdrt_status cpu_op_binary(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1];
    sdrt_tensor *y = op->dst;
    if (!b || !cpu_same_shape(a, y) || b->ndim > a->ndim) return SDRT_INVALID_ARGUMENT;
    int64_t bstrides[SDRT_MAX_DIMS] = {0};
    for (int d = 0; d < b->ndim; d++) {
        int ad = d + a->ndim - b->ndim;
        if (b->shape[d] == a->shape[ad]) bstrides[ad] = b->strides[d];
        else if (b->shape[d] != 1) return SDRT_INVALID_ARGUMENT;
    }
    cpu_bin c = {.a = a->data, .b = b->data, .y = y->data, .mul = op->kind == SDRT_OP_MUL,
                 .alpha = op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f};
    const int64_t *strides[3] = {a->strides, bstrides, y->strides};
    cpu_iterate(ctx, a->ndim, a->shape, 3, strides, cpu_bin_row, &c);
    return SDRT_OK;
}
