/* vk_supports.c - which ops, dtypes and layouts the Vulkan kernels take.
 * Kept truthful: vk_op_record refuses exactly what this refuses (it calls
 * it first), and the shape checks there answer INVALID_ARGUMENT. Sources
 * may be F32/F16/BF16 wherever the op set allows a weight or parameter
 * dtype (the kernels widen through one load path); activations are F32;
 * the destination must be this device's memory. */
#include "vk_internal.h"
#include "layout_view.h"

static int vk_float(const sdrt_tensor *t) {
    return t->dtype == SDRT_DTYPE_F32 || t->dtype == SDRT_DTYPE_F16 || t->dtype == SDRT_DTYPE_BF16;
}

static int vk_f32(const sdrt_tensor *t) { return t && t->dtype == SDRT_DTYPE_F32; }
static int vk_opt_float(const sdrt_tensor *t) { return !t || vk_float(t); }

/* Descriptor words are 32-bit: element counts, strides and offsets must
 * fit, strides must not be negative, data must be element-aligned. */
static int vk_tensor_ok(const sdrt_tensor *t) {
    if (!t) return 1;
    if (t->ndim < 0 || t->ndim > SDRT_MAX_DIMS || !vk_float(t)) return 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0 || t->shape[d] > INT32_MAX || t->strides[d] < 0 || t->strides[d] > INT32_MAX) return 0;
    uint64_t es = t->dtype == SDRT_DTYPE_F32 ? 4 : 2;
    if ((uint64_t)(uintptr_t)t->data & VK_ADDR_TAG) return VK_ADDR_OFF(t->data) % es == 0;
    return 1;
}

/* Workgroup counts per dispatch dimension are at least 65535 everywhere:
 * the matmul batch (dst dims before the matrix) and conv's images x groups
 * run along one dimension. */
static int vk_grid_ok(const sdrt_op *op) {
    const sdrt_tensor *y = op->dst;
    if (op->kind == SDRT_OP_MATMUL) {
        int64_t batch = 1;
        for (int k = 0; k < y->ndim - 2; k++) batch *= y->shape[k];
        return batch <= 65535;
    }
    if (op->kind == SDRT_OP_CONV2D) {
        int64_t g = op->iparams[6] > 0 ? op->iparams[6] : 1;
        return op->src[0]->ndim < 1 || op->src[0]->shape[0] * g <= 65535;
    }
    if (op->kind == SDRT_OP_ATTENTION)
        return op->src[0]->ndim != 4 || (op->src[0]->shape[0] <= 65535 && op->src[0]->shape[1] <= 65535);
    return 1;
}

/* A tensor whose elements lie one after another in logical order. */
static int vk_contiguous(const sdrt_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

/* The layout ops' 6-D view multiplies strides by the factor (r*r for the
 * channel dim of a shuffle): each must still fit a 32-bit descriptor word.
 * Shapes that do not match the op are claimed: vk_op_record answers
 * INVALID_ARGUMENT for them. */
static int vk_layout_ok(const sdrt_op *op) {
    if (op->src[0]->ndim != 4 || (op->kind != SDRT_OP_UPSAMPLE2X && op->iparams[0] < 1)) return 0;
    devview v;
    if (devview_layout(op, &v) != 0) return 1;
    for (int d = 0; d < 6; d++)
        if (v.ne[d] > INT32_MAX || v.xs[d] > INT32_MAX || v.ys[d] > INT32_MAX) return 0;
    return 1;
}

int vk_supports_op(const vk_device *d, const sdrt_op *op) {
    if (!op || (unsigned)op->kind >= SDRT_OP_COUNT_ || !op->src[0] || !op->dst) return 0;
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++)
        if (!vk_tensor_ok(op->src[i])) return 0;
    if (!vk_tensor_ok(op->dst) || !vk_tensor_is_ours(d, op->dst) || !vk_grid_ok(op)) return 0;
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *c = op->src[2], *y = op->dst;
    int f32io = vk_f32(a) && vk_f32(y);
    switch (op->kind) {
    case SDRT_OP_MATMUL:
        return f32io && b && vk_opt_float(c) && a->ndim >= 2 && b->ndim >= 2;
    case SDRT_OP_CONV2D:
        return f32io && b && vk_opt_float(c) && a->ndim == 4 && b->ndim == 4;
    case SDRT_OP_GROUP_NORM:
        return f32io && a->ndim >= 2;
    case SDRT_OP_LAYER_NORM:
        return f32io && a->ndim >= 1;
    case SDRT_OP_ATTENTION:
        return f32io && vk_f32(b) && vk_f32(c) && a->ndim == 4 && b->ndim == 4 && c->ndim == 4 &&
               a->shape[3] <= 512 && c->shape[3] <= 512;
    case SDRT_OP_ADD:
    case SDRT_OP_MUL:
        return f32io && b;
    case SDRT_OP_CONCAT:
        return b != NULL;
    case SDRT_OP_COPY:
        return 1;
    case SDRT_OP_UPSAMPLE2X:
    case SDRT_OP_UPSAMPLE_NEAREST:
    case SDRT_OP_PIXEL_SHUFFLE:
    case SDRT_OP_PIXEL_UNSHUFFLE:
        return f32io && vk_layout_ok(op);
    case SDRT_OP_PRELU: /* slopes F32/F16/BF16: 1-D (any stride) or contiguous */
        return f32io && b && a->ndim >= 2 && (b->ndim == 1 || vk_contiguous(b));
    case SDRT_OP_TIMESTEP_EMB:
        return f32io && a->ndim == 1;
    case SDRT_OP_SOFTMAX:
        return f32io && a->ndim >= 1;
    case SDRT_OP_GELU:
    case SDRT_OP_GELU_TANH:
    case SDRT_OP_QUICK_GELU:
    case SDRT_OP_SILU:
    case SDRT_OP_GEGLU:
    case SDRT_OP_SCALE:
    case SDRT_OP_LEAKY_RELU:
        return f32io;
    default: /* every kind of the op set has its case above */
        return 0;
    }
}
