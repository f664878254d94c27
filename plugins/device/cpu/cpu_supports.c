/* cpu_supports.c - which ops, dtypes and ranks the CPU backend accepts.
 * Kept truthful: compute() refuses exactly what this refuses. */
#include "cpu_internal.h"

static int cpu_is(const sdrt_tensor *t, sdrt_dtype dt) { return t && t->dtype == dt; }

static int cpu_weight_dtype(const sdrt_tensor *t) {
    return t && (t->dtype == SDRT_DTYPE_F32 || t->dtype == SDRT_DTYPE_F16 || t->dtype == SDRT_DTYPE_BF16);
}

/* Parameters (biases, norm scales/shifts, the ADD/MUL operand): F32, F16
 * or BF16, or absent. */
static int cpu_opt_param(const sdrt_tensor *t) { return !t || cpu_weight_dtype(t); }

static int cpu_tensor_ok(const sdrt_tensor *t) {
    if (!t) return 1;
    if (t->ndim < 0 || t->ndim > SDRT_MAX_DIMS) return 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0) return 0;
    /* Memory of another device (VRAM) is not addressable here. */
    sdrt_buffer_type *bt = t->buffer ? t->buffer->type : NULL;
    if (bt && bt->iface && bt->iface->is_host && !bt->iface->is_host(bt)) return 0;
    return t->data != NULL || cpu_numel(t) == 0;
}

static int cpu_rank(const sdrt_tensor *t, int lo, int hi) { return t->ndim >= lo && t->ndim <= hi; }

/* A block-quantized weight the GEMM packer dequantises (cpu_gemm_pack.c):
 * rows of `k` elements, k contiguous and a whole number of blocks, rows a
 * whole number of blocks apart, no batch dims (the packer addresses rows
 * by block). `inner` dims, from `first` on, flatten into k. */
static int cpu_quant_weight(const sdrt_tensor *w, int first) {
    int64_t be = sdrt_dtype_block_elems(w->dtype);
    if (be <= 1 || first < 1 || w->strides[w->ndim - 1] != 1) return 0;
    int64_t k = 1;
    for (int d = w->ndim - 1; d >= first; d--) {
        if (w->shape[d] != 1 && w->strides[d] != k) return 0;
        k *= w->shape[d];
    }
    for (int d = 0; d < first - 1; d++)
        if (w->shape[d] != 1) return 0;
    return k % be == 0 && w->strides[first - 1] % be == 0;
}

/* MATMUL's B: a plain weight dtype, or a quantized [N,K] Linear weight
 * used transposed (iparams[0] = 1). */
static int cpu_mm_weight(const sdrt_op *op, const sdrt_tensor *b) {
    if (cpu_weight_dtype(b)) return 1;
    return b && op->iparams[0] == 1 && b->ndim == 2 && cpu_quant_weight(b, 1);
}

/* CONV2D's weight: plain, or quantized [O,C,kh,kw] with C*kh*kw whole
 * blocks, contiguous, one group. */
static int cpu_conv_weight(const sdrt_op *op, const sdrt_tensor *b) {
    if (cpu_weight_dtype(b)) return 1;
    return b && b->ndim == 4 && op->iparams[6] <= 1 && cpu_quant_weight(b, 1);
}

int cpu_supports_op(const sdrt_op *op) {
    if (!op || (unsigned)op->kind >= SDRT_OP_COUNT_ || !op->src[0] || !op->dst) return 0;
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++)
        if (!cpu_tensor_ok(op->src[i])) return 0;
    if (!cpu_tensor_ok(op->dst)) return 0;
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *c = op->src[2], *y = op->dst;
    int f32io = cpu_is(a, SDRT_DTYPE_F32) && cpu_is(y, SDRT_DTYPE_F32);
    switch (op->kind) {
    case SDRT_OP_MATMUL:
        return f32io && cpu_mm_weight(op, b) && cpu_opt_param(c) && cpu_rank(a, 2, 6) && cpu_rank(b, 2, 6);
    case SDRT_OP_CONV2D:
        return f32io && cpu_conv_weight(op, b) && cpu_opt_param(c) && a->ndim == 4 && b->ndim == 4;
    case SDRT_OP_GROUP_NORM:
        return f32io && cpu_opt_param(b) && cpu_opt_param(c) && a->ndim >= 2;
    case SDRT_OP_LAYER_NORM:
        return f32io && cpu_opt_param(b) && cpu_opt_param(c) && a->ndim >= 1;
    case SDRT_OP_ATTENTION:
        return f32io && cpu_is(b, SDRT_DTYPE_F32) && cpu_is(c, SDRT_DTYPE_F32) && a->ndim == 4;
    case SDRT_OP_ADD:
    case SDRT_OP_MUL:
        return f32io && cpu_weight_dtype(b);
    case SDRT_OP_CONCAT:
        return b && cpu_dtype_size(a->dtype) && cpu_dtype_size(b->dtype) && cpu_dtype_size(y->dtype);
    case SDRT_OP_COPY:
        return cpu_dtype_size(a->dtype) && cpu_dtype_size(y->dtype);
    case SDRT_OP_UPSAMPLE2X:
        return f32io && a->ndim == 4;
    case SDRT_OP_TIMESTEP_EMB:
        return f32io && a->ndim == 1;
    case SDRT_OP_SOFTMAX:
        return f32io && a->ndim >= 1;
    case SDRT_OP_LEAKY_RELU:
        return f32io && cpu_is_contiguous(a) && cpu_is_contiguous(y);
    case SDRT_OP_PRELU:
        return f32io && cpu_weight_dtype(b) && a->ndim >= 2 && cpu_is_contiguous(a) && cpu_is_contiguous(y);
    case SDRT_OP_PIXEL_SHUFFLE:
    case SDRT_OP_PIXEL_UNSHUFFLE:
    case SDRT_OP_UPSAMPLE_NEAREST:
        return f32io && a->ndim == 4 && op->iparams[0] >= 1 && cpu_is_contiguous(a) && cpu_is_contiguous(y);
    default: /* GELU, GELU_TANH, QUICK_GELU, SILU, GEGLU, SCALE */
        return f32io;
    }
}
