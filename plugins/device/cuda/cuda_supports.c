/* cuda_supports.c - which ops, dtypes and operands the CUDA kernels take.
 * Kept truthful: compute refuses exactly what this refuses. Operands must be
 * reachable from the device: this device's VRAM or the family's pinned host
 * memory (mapped, unified addressing); malloc'd or mmap'd host memory
 * (buffer NULL or another family's) is not. */
#include "cuda_internal.h"

size_t cuda_dtype_size(sdrt_dtype dt) {
    switch (dt) {
    case SDRT_DTYPE_F32: return 4;
    case SDRT_DTYPE_F16: return 2;
    case SDRT_DTYPE_BF16: return 2;
    default: return 0;
    }
}

static int cu_reachable(const sdrt_tensor *t, const sdrt_buffer_type *vram, const sdrt_buffer_type *pinned) {
    if (!t) return 1;
    if (t->ndim < 0 || t->ndim > SDRT_MAX_DIMS) return 0;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) return 0;
        n *= t->shape[d];
    }
    if (n == 0) return 1;
    if (!t->data || !t->buffer || !cuda_buffer_is_ours(t->buffer)) return 0;
    /* VRAM of another CUDA device is not addressed by these kernels. */
    return t->buffer->type == vram || t->buffer->type == pinned;
}

static int cu_is(const sdrt_tensor *t, sdrt_dtype dt) { return t && t->dtype == dt; }

/* Elements one after another in logical order. */
static int cu_contiguous_c(const sdrt_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}
static int cu_weight(const sdrt_tensor *t) { return t && cuda_dtype_size(t->dtype) != 0; }
/* Biases, norm scales and shifts: F32, F16 or BF16 (read as F32). */
static int cu_opt_param(const sdrt_tensor *t) { return !t || cuda_dtype_size(t->dtype) != 0; }

int cuda_supports_op(const sdrt_op *op, const sdrt_buffer_type *vram, const sdrt_buffer_type *pinned) {
    if (!op || (unsigned)op->kind >= SDRT_OP_COUNT_ || !op->src[0] || !op->dst) return 0;
    for (int i = 0; i < SDRT_OP_MAX_SRC; i++)
        if (!cu_reachable(op->src[i], vram, pinned)) return 0;
    if (!cu_reachable(op->dst, vram, pinned)) return 0;
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *c = op->src[2], *y = op->dst;
    int f32io = cu_is(a, SDRT_DTYPE_F32) && cu_is(y, SDRT_DTYPE_F32);
    switch (op->kind) {
    case SDRT_OP_MATMUL:
        return f32io && cu_weight(b) && cu_opt_param(c) && a->ndim >= 2 && b->ndim >= 2 && a->ndim <= 6 &&
               b->ndim <= 6;
    case SDRT_OP_CONV2D:
        return f32io && cu_weight(b) && cu_opt_param(c) && a->ndim == 4 && b->ndim == 4;
    case SDRT_OP_GROUP_NORM:
        return f32io && cu_opt_param(b) && cu_opt_param(c) && a->ndim >= 2;
    case SDRT_OP_LAYER_NORM:
        return f32io && cu_opt_param(b) && cu_opt_param(c) && a->ndim >= 1;
    case SDRT_OP_ATTENTION:
        return f32io && cu_is(b, SDRT_DTYPE_F32) && cu_is(c, SDRT_DTYPE_F32) && a->ndim == 4 && b->ndim == 4 &&
               c->ndim == 4 && a->shape[3] <= CUDA_ATTN_MAX_D && c->shape[3] <= CUDA_ATTN_MAX_D;
    case SDRT_OP_ADD:
    case SDRT_OP_MUL:
        return f32io && cu_weight(b);
    case SDRT_OP_CONCAT:
        return b && cuda_dtype_size(a->dtype) && cuda_dtype_size(b->dtype) && cuda_dtype_size(y->dtype);
    case SDRT_OP_COPY:
        return cuda_dtype_size(a->dtype) && cuda_dtype_size(y->dtype);
    case SDRT_OP_UPSAMPLE2X:
        return f32io && a->ndim == 4;
    case SDRT_OP_UPSAMPLE_NEAREST:
    case SDRT_OP_PIXEL_SHUFFLE:
    case SDRT_OP_PIXEL_UNSHUFFLE: /* any strides: a copy over layout_view.h's view */
        return f32io && a->ndim == 4 && op->iparams[0] >= 1;
    case SDRT_OP_PRELU: /* slopes F32/F16/BF16, 1-D (any stride) or contiguous */
        return f32io && cu_weight(b) && a->ndim >= 2 && (b->ndim == 1 || cu_contiguous_c(b));
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
