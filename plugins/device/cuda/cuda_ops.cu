/* cuda_ops.cu - the memory-bound ops: element-wise (activations, SCALE,
 * LEAKY_RELU, ADD/MUL with broadcast, PRELU as a channel broadcast), GEGLU,
 * GROUP_NORM (+SiLU), LAYER_NORM, SOFTMAX, COPY/CONCAT (strides, dtype
 * conversion), the layout ops UPSAMPLE2X, UPSAMPLE_NEAREST, PIXEL_SHUFFLE
 * and PIXEL_UNSHUFFLE (copies over the 6-D views of ../layout_view.h, the
 * Vulkan family's indexing), and TIMESTEP_EMB.
 * Every kernel takes any strides; dims are coalesced on the host so the
 * contiguous case is a flat loop. Statistics accumulate in double where a
 * group holds up to ~10^5 values (group norm), as the CPU backend does. */
#include <math.h>

#include "cuda_common.cuh"
#include "../layout_view.h"

#define CU_THREADS 256

/* ---- element-wise ------------------------------------------------------- */

__device__ __forceinline__ float cu_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__device__ __forceinline__ float cu_act(int kind, float x, float a, float b) {
    switch (kind) {
    case SDRT_OP_GELU: return cu_gelu(x);
    case SDRT_OP_GELU_TANH: {
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    case SDRT_OP_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    case SDRT_OP_SILU: return x / (1.0f + expf(-x));
    case SDRT_OP_LEAKY_RELU: return x >= 0.0f ? x : x * a; /* a = the slope */
    default: return x * a + b; /* SCALE */
    }
}

__global__ void cu_unary_kernel(cu_iter it, int64_t n, const float *x, float *y, int kind, float a, float b) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[2];
        cu_offsets<2>(it, i, off);
        y[off[1]] = cu_act(kind, x[off[0]], a, b);
    }
}

enum { CU_BIN_ADD, CU_BIN_MUL, CU_BIN_PRELU };

/* y = a (+ alpha *|*) b, or PRELU's a >= 0 ? a : a * b; b broadcast
 * through stride-0 dims of the iterator. */
__global__ void cu_binary_kernel(cu_iter it, int64_t n, const float *a, const void *b, int bdt, float *y, int mode,
                                 float alpha) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[3];
        cu_offsets<3>(it, i, off);
        float av = a[off[0]], bv = cu_load(b, bdt, off[1]);
        y[off[2]] = mode == CU_BIN_MUL ? av * bv : mode == CU_BIN_PRELU ? (av >= 0.0f ? av : av * bv) : av + alpha * bv;
    }
}

extern "C" sdrt_status cuda_op_elementwise(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0], *y = op->dst;
    if (!cu_same_shape(x, y)) return SDRT_INVALID_ARGUMENT;
    int64_t n = cu_numel(x);
    if (op->kind == SDRT_OP_PRELU) {
        /* the slopes (C of them, or one) step along dim 1, stride 0 elsewhere;
         * cuda_supports_op takes them 1-D or contiguous */
        const sdrt_tensor *w = op->src[1];
        int64_t nw = cu_numel(w);
        if (x->ndim < 2 || (nw != 1 && nw != x->shape[1])) return SDRT_INVALID_ARGUMENT;
        int64_t wst[SDRT_MAX_DIMS] = {0};
        wst[1] = nw == 1 ? 0 : w->ndim == 1 ? w->strides[0] : 1;
        if (n == 0) return SDRT_OK;
        const int64_t *st[3] = {x->strides, wst, y->strides};
        cu_iter it = cu_iter_make(x->ndim, x->shape, 3, st);
        cu_binary_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, ex->stream>>>(
            it, n, (const float *)x->data, w->data, w->dtype, (float *)y->data, CU_BIN_PRELU, 1.0f);
        return SDRT_OK;
    }
    if (op->kind == SDRT_OP_ADD || op->kind == SDRT_OP_MUL) {
        const sdrt_tensor *b = op->src[1];
        if (!b || b->ndim > x->ndim) return SDRT_INVALID_ARGUMENT;
        int64_t bst[SDRT_MAX_DIMS] = {0};
        for (int d = 0; d < b->ndim; d++) {
            int ad = d + x->ndim - b->ndim;
            if (b->shape[d] == x->shape[ad]) bst[ad] = b->strides[d];
            else if (b->shape[d] != 1) return SDRT_INVALID_ARGUMENT;
        }
        if (n == 0) return SDRT_OK;
        const int64_t *st[3] = {x->strides, bst, y->strides};
        cu_iter it = cu_iter_make(x->ndim, x->shape, 3, st);
        float alpha = op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f;
        cu_binary_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, ex->stream>>>(
            it, n, (const float *)x->data, b->data, b->dtype, (float *)y->data,
            op->kind == SDRT_OP_MUL ? CU_BIN_MUL : CU_BIN_ADD, alpha);
        return SDRT_OK;
    }
    if (n == 0) return SDRT_OK;
    const int64_t *st[2] = {x->strides, y->strides};
    cu_iter it = cu_iter_make(x->ndim, x->shape, 2, st);
    float a = op->fparams[0];
    if (op->kind == SDRT_OP_LEAKY_RELU && a == 0.0f) a = 0.01f; /* backend.h: 0 -> 0.01 */
    cu_unary_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, ex->stream>>>(
        it, n, (const float *)x->data, (float *)y->data, op->kind, a, op->fparams[1]);
    return SDRT_OK;
}

/* ---- GEGLU: y[.., j] = x[.., j] * gelu(x[.., N + j]) ------------------------ */

__global__ void cu_geglu_kernel(cu_iter it, int64_t n, const float *x, float *y, int64_t gate_off) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[2];
        cu_offsets<2>(it, i, off);
        y[off[1]] = x[off[0]] * cu_gelu(x[off[0] + gate_off]);
    }
}

extern "C" sdrt_status cuda_op_geglu(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0], *y = op->dst;
    if (x->ndim < 1 || x->ndim != y->ndim) return SDRT_INVALID_ARGUMENT;
    for (int d = 0; d < x->ndim - 1; d++)
        if (x->shape[d] != y->shape[d]) return SDRT_INVALID_ARGUMENT;
    int64_t half = y->shape[y->ndim - 1];
    if (x->shape[x->ndim - 1] != 2 * half) return SDRT_INVALID_ARGUMENT;
    int64_t n = cu_numel(y);
    if (n == 0) return SDRT_OK;
    const int64_t *st[2] = {x->strides, y->strides};
    cu_iter it = cu_iter_make(y->ndim, y->shape, 2, st);
    cu_geglu_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, ex->stream>>>(
        it, n, (const float *)x->data, (float *)y->data, half * x->strides[x->ndim - 1]);
    return SDRT_OK;
}

/* ---- group norm: one block per (image, group) ------------------------------ */

struct cu_gn {
    const float *x;
    float *y;
    const void *gamma, *beta;
    int gdt, bdt;
    int64_t gs, bs; /* parameter strides */
    int64_t c, groups, spatial;
    cu_iter sp; /* spatial dims: op 0 = x strides, op 1 = y strides */
    int64_t xn, xc, yn, yc;
    float eps;
    int silu;
};

__global__ void cu_group_norm_kernel(cu_gn g) {
    __shared__ double sh[32];
    int64_t n = blockIdx.x / g.groups, grp = blockIdx.x % g.groups, cg = g.c / g.groups;
    int64_t count = cg * g.spatial;
    const float *xb = g.x + n * g.xn + grp * cg * g.xc;
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
        int64_t off[2];
        cu_offsets<2>(g.sp, i % g.spatial, off);
        s += xb[(i / g.spatial) * g.xc + off[0]];
    }
    double mean = cu_block_sum<double>(s, sh) / (double)count;
    double v = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
        int64_t off[2];
        cu_offsets<2>(g.sp, i % g.spatial, off);
        double d = xb[(i / g.spatial) * g.xc + off[0]] - mean;
        v += d * d;
    }
    double var = cu_block_sum<double>(v, sh) / (double)count;
    float rstd = (float)(1.0 / sqrt(var + (double)g.eps)), fmean = (float)mean;
    float *yb = g.y + n * g.yn + grp * cg * g.yc;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
        int64_t off[2], ci = i / g.spatial, ch = grp * cg + ci;
        cu_offsets<2>(g.sp, i % g.spatial, off);
        float gam = g.gamma ? cu_load(g.gamma, g.gdt, ch * g.gs) : 1.0f;
        float bet = g.beta ? cu_load(g.beta, g.bdt, ch * g.bs) : 0.0f;
        float r = (xb[ci * g.xc + off[0]] - fmean) * rstd * gam + bet;
        if (g.silu) r = r / (1.0f + expf(-r));
        yb[ci * g.yc + off[1]] = r;
    }
}

extern "C" sdrt_status cuda_op_group_norm(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0], *y = op->dst, *gm = op->src[1], *bt = op->src[2];
    if (x->ndim < 2 || !cu_same_shape(x, y)) return SDRT_INVALID_ARGUMENT;
    int64_t groups = op->iparams[0] > 0 ? op->iparams[0] : 32, c = x->shape[1];
    if (c % groups) return SDRT_INVALID_ARGUMENT;
    if ((gm && cu_numel(gm) != c) || (bt && cu_numel(bt) != c)) return SDRT_INVALID_ARGUMENT;
    if (x->shape[0] * c == 0) return SDRT_OK;
    cu_gn g;
    g.x = (const float *)x->data;
    g.y = (float *)y->data;
    g.gamma = gm ? gm->data : NULL;
    g.beta = bt ? bt->data : NULL;
    g.gdt = gm ? gm->dtype : SDRT_DTYPE_F32;
    g.bdt = bt ? bt->dtype : SDRT_DTYPE_F32;
    g.gs = gm ? gm->strides[gm->ndim - 1] : 0;
    g.bs = bt ? bt->strides[bt->ndim - 1] : 0;
    g.c = c;
    g.groups = groups;
    g.spatial = 1;
    for (int d = 2; d < x->ndim; d++) g.spatial *= x->shape[d];
    if (g.spatial == 0) return SDRT_OK;
    const int64_t *st[2] = {x->strides + 2, y->strides + 2};
    g.sp = cu_iter_make(x->ndim - 2, x->shape + 2, 2, st);
    g.xn = x->strides[0], g.xc = x->strides[1], g.yn = y->strides[0], g.yc = y->strides[1];
    g.eps = op->fparams[0] != 0.0f ? op->fparams[0] : 1e-5f;
    g.silu = op->iparams[1] == 1;
    cu_group_norm_kernel<<<(unsigned)(x->shape[0] * groups), 1024, 0, ex->stream>>>(g);
    return SDRT_OK;
}

/* ---- layer norm and softmax: one block per row ------------------------------ */

struct cu_rowop {
    const float *x;
    float *y;
    const void *gamma, *beta;
    int gdt, bdt;
    int64_t gs, bs;
    cu_rows xr, yr;
    int64_t n, sx, sy;
    float eps, scale;
};

__global__ void cu_layer_norm_kernel(cu_rowop r, int64_t rows) {
    __shared__ float sh[32];
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float *x = r.x + cu_row_offset(r.xr, row);
        float *y = r.y + cu_row_offset(r.yr, row);
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < r.n; i += blockDim.x) s += x[i * r.sx];
        float mean = cu_block_sum<float>(s, sh) / (float)r.n;
        float v = 0.0f;
        for (int64_t i = threadIdx.x; i < r.n; i += blockDim.x) {
            float d = x[i * r.sx] - mean;
            v += d * d;
        }
        float rstd = rsqrtf(cu_block_sum<float>(v, sh) / (float)r.n + r.eps);
        for (int64_t i = threadIdx.x; i < r.n; i += blockDim.x) {
            float gam = r.gamma ? cu_load(r.gamma, r.gdt, i * r.gs) : 1.0f;
            float bet = r.beta ? cu_load(r.beta, r.bdt, i * r.bs) : 0.0f;
            y[i * r.sy] = (x[i * r.sx] - mean) * rstd * gam + bet;
        }
    }
}

__global__ void cu_softmax_kernel(cu_rowop r, int64_t rows) {
    __shared__ float sh[32];
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const float *x = r.x + cu_row_offset(r.xr, row);
        float *y = r.y + cu_row_offset(r.yr, row);
        float m = -INFINITY;
        for (int64_t i = threadIdx.x; i < r.n; i += blockDim.x) m = fmaxf(m, x[i * r.sx] * r.scale);
        m = cu_block_max(m, sh);
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < r.n; i += blockDim.x) s += expf(x[i * r.sx] * r.scale - m);
        float inv = 1.0f / cu_block_sum<float>(s, sh);
        for (int64_t i = threadIdx.x; i < r.n; i += blockDim.x) y[i * r.sy] = expf(x[i * r.sx] * r.scale - m) * inv;
    }
}

static cu_rowop cu_rowop_make(const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0], *y = op->dst;
    cu_rowop r;
    r.x = (const float *)x->data;
    r.y = (float *)y->data;
    r.gamma = op->src[1] ? op->src[1]->data : NULL;
    r.beta = op->src[2] ? op->src[2]->data : NULL;
    r.gdt = op->src[1] ? op->src[1]->dtype : SDRT_DTYPE_F32;
    r.bdt = op->src[2] ? op->src[2]->dtype : SDRT_DTYPE_F32;
    r.gs = op->src[1] ? op->src[1]->strides[op->src[1]->ndim - 1] : 0;
    r.bs = op->src[2] ? op->src[2]->strides[op->src[2]->ndim - 1] : 0;
    r.xr = cu_rows_make(x);
    r.yr = cu_rows_make(y);
    r.n = x->shape[x->ndim - 1];
    r.sx = x->strides[x->ndim - 1];
    r.sy = y->strides[y->ndim - 1];
    return r;
}

static int cu_row_threads(int64_t n) { return n >= 1024 ? 1024 : n >= 256 ? 256 : n > 64 ? 128 : 64; }
/* One block per row; rows beyond the grid limit loop. */
static unsigned cu_row_blocks(int64_t rows) { return (unsigned)(rows < INT32_MAX ? rows : INT32_MAX); }

extern "C" sdrt_status cuda_op_layer_norm(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0];
    if (x->ndim < 1 || !cu_same_shape(x, op->dst)) return SDRT_INVALID_ARGUMENT;
    int64_t n = x->shape[x->ndim - 1], rows = cu_numel(x) / (n ? n : 1);
    if ((op->src[1] && cu_numel(op->src[1]) != n) || (op->src[2] && cu_numel(op->src[2]) != n))
        return SDRT_INVALID_ARGUMENT;
    if (n == 0 || rows == 0) return SDRT_OK;
    cu_rowop r = cu_rowop_make(op);
    r.eps = op->fparams[0] != 0.0f ? op->fparams[0] : 1e-5f;
    cu_layer_norm_kernel<<<cu_row_blocks(rows), cu_row_threads(n), 0, ex->stream>>>(r, rows);
    return SDRT_OK;
}

extern "C" sdrt_status cuda_op_softmax(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0];
    if (x->ndim < 1 || !cu_same_shape(x, op->dst)) return SDRT_INVALID_ARGUMENT;
    int64_t n = x->shape[x->ndim - 1], rows = cu_numel(x) / (n ? n : 1);
    if (n == 0 || rows == 0) return SDRT_OK;
    cu_rowop r = cu_rowop_make(op);
    r.gamma = r.beta = NULL;
    r.scale = op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f;
    cu_softmax_kernel<<<cu_row_blocks(rows), cu_row_threads(n), 0, ex->stream>>>(r, rows);
    return SDRT_OK;
}

/* ---- COPY / CONCAT ---------------------------------------------------------- */

__global__ void cu_copy_kernel(cu_iter it, int64_t n, const void *src, int sdt, void *dst, int ddt) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[2];
        cu_offsets<2>(it, i, off);
        if (sdt == ddt && sdt != SDRT_DTYPE_F32) ((uint16_t *)dst)[off[1]] = ((const uint16_t *)src)[off[0]];
        else cu_store(dst, ddt, off[1], cu_load(src, sdt, off[0]));
    }
}

/* dst = src in logical order; shapes equal, or dst contiguous (reshape). */
static sdrt_status cu_copy_tensor(const cuda_exec *ex, const sdrt_tensor *src, const sdrt_tensor *dst) {
    int64_t n = cu_numel(src);
    if (n != cu_numel(dst)) return SDRT_INVALID_ARGUMENT;
    int64_t dst_st[SDRT_MAX_DIMS];
    if (cu_same_shape(src, dst)) {
        for (int d = 0; d < src->ndim; d++) dst_st[d] = dst->strides[d];
    } else {
        if (!cu_contiguous(dst)) return SDRT_INVALID_ARGUMENT;
        cu_contiguous_strides(src->ndim, src->shape, dst_st);
    }
    if (n == 0) return SDRT_OK;
    const int64_t *st[2] = {src->strides, dst_st};
    cu_iter it = cu_iter_make(src->ndim, src->shape, 2, st);
    cu_copy_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, ex->stream>>>(it, n, src->data, src->dtype, dst->data,
                                                                            dst->dtype);
    return SDRT_OK;
}

extern "C" sdrt_status cuda_op_copy(const cuda_exec *ex, const sdrt_op *op) {
    return cu_copy_tensor(ex, op->src[0], op->dst);
}

extern "C" sdrt_status cuda_op_concat(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *y = op->dst;
    if (!b || a->ndim != b->ndim || a->ndim != y->ndim || a->ndim == 0) return SDRT_INVALID_ARGUMENT;
    int dim = op->iparams[0] < 0 ? op->iparams[0] + a->ndim : op->iparams[0];
    if (dim < 0 || dim >= a->ndim) return SDRT_INVALID_ARGUMENT;
    for (int d = 0; d < a->ndim; d++) {
        int64_t want = d == dim ? a->shape[d] + b->shape[d] : a->shape[d];
        if (y->shape[d] != want || (d != dim && b->shape[d] != a->shape[d])) return SDRT_INVALID_ARGUMENT;
    }
    sdrt_tensor ya = *y, yb = *y;
    ya.shape[dim] = a->shape[dim];
    yb.shape[dim] = b->shape[dim];
    yb.data = (char *)y->data + (size_t)(a->shape[dim] * y->strides[dim]) * cuda_dtype_size(y->dtype);
    sdrt_status st = cu_copy_tensor(ex, a, &ya);
    return st != SDRT_OK ? st : cu_copy_tensor(ex, b, &yb);
}

/* ---- UPSAMPLE2X, UPSAMPLE_NEAREST, PIXEL_SHUFFLE, PIXEL_UNSHUFFLE ------------
 * One F32 copy over the op's 6-D view: each thread writes one dst element. */

extern "C" sdrt_status cuda_op_layout(const cuda_exec *ex, const sdrt_op *op) {
    devview v;
    if (devview_layout(op, &v) != 0) return SDRT_INVALID_ARGUMENT;
    int64_t n = cu_numel(op->dst);
    if (n == 0) return SDRT_OK;
    const int64_t *st[2] = {v.xs, v.ys};
    cu_iter it = cu_iter_make(6, v.ne, 2, st);
    cu_copy_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, ex->stream>>>(it, n, op->src[0]->data, SDRT_DTYPE_F32,
                                                                            op->dst->data, SDRT_DTYPE_F32);
    return SDRT_OK;
}

/* ---- TIMESTEP_EMB: diffusers get_timestep_embedding, float at each step ------ */

__global__ void cu_timestep_kernel(const float *t, int64_t ts, float *y, int64_t y0, int64_t y1, int64_t rows,
                                   int64_t half, int64_t dim, int flip, float neg_log, float denom, float scale) {
    int64_t per = half > 0 ? half : 1, n = rows * per;
    for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n; k += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = k / per, i = k % per;
        if (half == 0) { /* dim 1: only the zero pad column */
            y[r * y0] = 0.0f;
            continue;
        }
        float freq = expf(neg_log * (float)i / denom);
        float arg = scale * (t[r * ts] * freq);
        float s = sinf(arg), c = cosf(arg);
        float *row = y + r * y0;
        row[(flip ? half + i : i) * y1] = s;
        row[(flip ? i : half + i) * y1] = c;
        if (i == 0 && (dim & 1)) row[(dim - 1) * y1] = 0.0f;
    }
}

extern "C" sdrt_status cuda_op_timestep_emb(const cuda_exec *ex, const sdrt_op *op) {
    const sdrt_tensor *t = op->src[0], *y = op->dst;
    int64_t dim = op->iparams[0];
    if (t->ndim != 1 || y->ndim != 2 || dim <= 0 || y->shape[0] != t->shape[0] || y->shape[1] != dim)
        return SDRT_INVALID_ARGUMENT;
    int64_t half = dim / 2, rows = t->shape[0];
    float max_period = op->fparams[1] != 0.0f ? op->fparams[1] : 10000.0f;
    float scale = op->fparams[2] != 0.0f ? op->fparams[2] : 1.0f;
    float neg_log = (float)-log((double)max_period), denom = (float)half - op->fparams[0];
    if (rows == 0) return SDRT_OK;
    cu_timestep_kernel<<<cu_blocks(rows * (half > 0 ? half : 1), CU_THREADS), CU_THREADS, 0, ex->stream>>>(
        (const float *)t->data, t->strides[0], (float *)y->data, y->strides[0], y->strides[1], rows, half, dim,
        op->iparams[1] == 1, neg_log, denom, scale);
    return SDRT_OK;
}
