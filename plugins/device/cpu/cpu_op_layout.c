/* cpu_op_layout.c - data movement: COPY (permutes, dtype conversion),
 * CONCAT and UPSAMPLE2X. */
#include "cpu_internal.h"

#include <string.h>

typedef struct cpu_cp {
    const char *src;
    char *dst;
    sdrt_dtype st, dt;
    size_t ses, des;
} cpu_cp;

static void cpu_cp_row(void *arg, int64_t n, const int64_t *offs, const int64_t *inner) {
    const cpu_cp *c = arg;
    const char *s = c->src + (size_t)offs[0] * c->ses;
    char *d = c->dst + (size_t)offs[1] * c->des;
    int64_t ss = inner[0], ds = inner[1];
    if (c->st == c->dt) {
        if (ss == 1 && ds == 1) {
            memcpy(d, s, (size_t)n * c->ses);
        } else if (c->ses == 4) {
            for (int64_t i = 0; i < n; i++) ((uint32_t *)(void *)d)[i * ds] = ((const uint32_t *)(const void *)s)[i * ss];
        } else {
            for (int64_t i = 0; i < n; i++) ((uint16_t *)(void *)d)[i * ds] = ((const uint16_t *)(const void *)s)[i * ss];
        }
        return;
    }
    if (ss == 1 && ds == 1 && c->dt == SDRT_DTYPE_F32) {
        cpu_convert_row_f32((float *)(void *)d, s, c->st, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) cpu_store_f32(d, c->dt, i * ds, cpu_load_f32(s, c->st, i * ss));
}

sdrt_status cpu_copy_tensor(cpu_ctx *ctx, const sdrt_tensor *src, sdrt_tensor *dst) {
    if (!cpu_dtype_size(src->dtype) || !cpu_dtype_size(dst->dtype)) return SDRT_UNSUPPORTED;
    if (cpu_numel(src) != cpu_numel(dst)) return SDRT_INVALID_ARGUMENT;
    int64_t dstrides[SDRT_MAX_DIMS];
    if (cpu_same_shape(src, dst)) {
        memcpy(dstrides, dst->strides, sizeof dstrides);
    } else {
        /* A reshaping copy: logical order means dst is walked contiguously. */
        if (!cpu_is_contiguous(dst)) return SDRT_INVALID_ARGUMENT;
        sdrt_tensor t = *src;
        cpu_set_contiguous_strides(&t);
        memcpy(dstrides, t.strides, sizeof dstrides);
    }
    cpu_cp c = {.src = src->data, .dst = dst->data, .st = src->dtype, .dt = dst->dtype,
                .ses = cpu_dtype_size(src->dtype), .des = cpu_dtype_size(dst->dtype)};
    const int64_t *strides[2] = {src->strides, dstrides};
    cpu_iterate(ctx, src->ndim, src->shape, 2, strides, cpu_cp_row, &c);
    return SDRT_OK;
}

sdrt_status cpu_op_copy(cpu_ctx *ctx, const sdrt_op *op) { return cpu_copy_tensor(ctx, op->src[0], op->dst); }

sdrt_status cpu_op_concat(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1];
    sdrt_tensor *y = op->dst;
    if (!b || a->ndim != b->ndim || a->ndim != y->ndim || a->ndim == 0) return SDRT_INVALID_ARGUMENT;
    int dim = op->iparams[0] < 0 ? op->iparams[0] + a->ndim : op->iparams[0];
    if (dim < 0 || dim >= a->ndim) return SDRT_INVALID_ARGUMENT;
    for (int d = 0; d < a->ndim; d++) {
        int64_t want = d == dim ? a->shape[d] + b->shape[d] : a->shape[d];
        if (y->shape[d] != want || (d != dim && b->shape[d] != a->shape[d])) return SDRT_INVALID_ARGUMENT;
    }
    /* Two copies into the two slices of dst. */
    sdrt_tensor ya = *y, yb = *y;
    ya.shape[dim] = a->shape[dim];
    yb.shape[dim] = b->shape[dim];
    yb.data = (char *)y->data + (size_t)(a->shape[dim] * y->strides[dim]) * cpu_dtype_size(y->dtype);
    sdrt_status st = cpu_copy_tensor(ctx, a, &ya);
    return st != SDRT_OK ? st : cpu_copy_tensor(ctx, b, &yb);
}

/* ---- nearest 2x upsample: each dst row is one src row with pixels doubled */

typedef struct cpu_up {
    const sdrt_tensor *x, *y;
    int64_t rows, rows_per_task; /* rows = N*C*H of the source */
} cpu_up;

static void cpu_up_task(void *arg, int64_t t, int thread) {
    const cpu_up *u = arg;
    const sdrt_tensor *x = u->x, *y = u->y;
    int64_t c = x->shape[1], h = x->shape[2], w = x->shape[3];
    int64_t r1 = (t + 1) * u->rows_per_task;
    for (int64_t r = t * u->rows_per_task; r < r1 && r < u->rows; r++) {
        int64_t iy = r % h, ch = (r / h) % c, n = r / (h * c);
        const float *src = (const float *)x->data + n * x->strides[0] + ch * x->strides[1] + iy * x->strides[2];
        float *d0 = (float *)y->data + n * y->strides[0] + ch * y->strides[1] + 2 * iy * y->strides[2];
        float *d1 = d0 + y->strides[2];
        for (int64_t ix = 0; ix < w; ix++) {
            float v = src[ix * x->strides[3]];
            d0[2 * ix * y->strides[3]] = v;
            d0[(2 * ix + 1) * y->strides[3]] = v;
            d1[2 * ix * y->strides[3]] = v;
            d1[(2 * ix + 1) * y->strides[3]] = v;
        }
    }
}

sdrt_status cpu_op_upsample2x(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0], *y = op->dst;
    if (x->ndim != 4 || y->ndim != 4 || y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] ||
        y->shape[2] != 2 * x->shape[2] || y->shape[3] != 2 * x->shape[3])
        return SDRT_INVALID_ARGUMENT;
    cpu_up u = {.x = x, .y = y, .rows = x->shape[0] * x->shape[1] * x->shape[2]};
    if (u.rows == 0 || x->shape[3] == 0) return SDRT_OK;
    u.rows_per_task = cpu_div_up(u.rows, 4 * (int64_t)ctx->threads);
    cpu_ctx_run(ctx, cpu_div_up(u.rows, u.rows_per_task), cpu_up_task, &u);
    return SDRT_OK;
}
