/* cpu_op_binary.c - ADD (with alpha on src1) and MUL, src1 broadcast to
 * src0's shape by NumPy rules: broadcast dims get stride 0 and the N-d
 * iterator does the rest. src1 may be F16/BF16 (a bias or scale kept in
 * the weights' dtype): each run of it is widened into a stack block. */
#include "cpu_internal.h"

typedef struct cpu_bin {
    const float *a, *b;
    const void *b_raw; /* src1 when not F32 */
    sdrt_dtype b_dtype;
    float *y;
    int mul;
    float alpha;
} cpu_bin;

static void cpu_bin_row_f32(const cpu_bin *c, int64_t n, const float *a, const float *b, float *y, int64_t sa,
                            int64_t sb, int64_t sy) {
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

/* A run of a F16/BF16 src1: widened CPU_BIN_BLOCK elements at a time. */
#define CPU_BIN_BLOCK 256

static void cpu_bin_row(void *arg, int64_t n, const int64_t *offs, const int64_t *inner) {
    const cpu_bin *c = arg;
    const float *a = c->a + offs[0];
    float *y = c->y + offs[2];
    int64_t sa = inner[0], sb = inner[1], sy = inner[2];
    if (!c->b_raw) {
        cpu_bin_row_f32(c, n, a, c->b + offs[1], y, sa, sb, sy);
        return;
    }
    float blk[CPU_BIN_BLOCK];
    for (int64_t i0 = 0; i0 < n; i0 += CPU_BIN_BLOCK) {
        int64_t m = n - i0 < CPU_BIN_BLOCK ? n - i0 : CPU_BIN_BLOCK;
        int64_t bm = sb ? m : 1;
        for (int64_t i = 0; i < bm; i++) blk[i] = cpu_load_f32(c->b_raw, c->b_dtype, offs[1] + (i0 + i) * sb);
        cpu_bin_row_f32(c, m, a + i0 * sa, blk, y + i0 * sy, sa, sb ? 1 : 0, sy);
    }
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
    int is_f32 = b->dtype == SDRT_DTYPE_F32;
    cpu_bin c = {.a = a->data, .b = is_f32 ? b->data : NULL, .b_raw = is_f32 ? NULL : b->data, .b_dtype = b->dtype,
                 .y = y->data, .mul = op->kind == SDRT_OP_MUL,
                 .alpha = op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f};
    const int64_t *strides[3] = {a->strides, bstrides, y->strides};
    cpu_iterate(ctx, a->ndim, a->shape, 3, strides, cpu_bin_row, &c);
    return SDRT_OK;
}
