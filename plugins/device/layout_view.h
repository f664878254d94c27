/* plugins/device/layout_view.h - PIXEL_SHUFFLE, PIXEL_UNSHUFFLE,
 * UPSAMPLE_NEAREST and UPSAMPLE2X as one strided copy over a 6-D view, for
 * the GPU families (the Vulkan ew kernel's COPY, the CUDA copy kernel): both
 * operands are walked over the same 6-D index space, each with its own
 * element strides, so every output element is written exactly once and no
 * family re-derives the index arithmetic. Header-only (static inline, C and
 * C++) because each family is its own shared object.
 *
 * Index spaces (r = the factor; xs/ys = src0/dst strides in elements):
 *   PIXEL_SHUFFLE   [N,C,r,r,H,W]: src [n, c*r*r + i*r + j, h, w]
 *                                   dst [n, c, h*r + i, w*r + j]
 *   PIXEL_UNSHUFFLE [N,C,r,r,H,W]: src [n, c, h*r + i, w*r + j]
 *                                   dst [n, c*r*r + i*r + j, h, w]
 *   UPSAMPLE_NEAREST / UPSAMPLE2X (r = 2)
 *                   [N,C,H,r,W,r]: src [n, c, h, w] (stride 0 on the r axes)
 *                                   dst [n, c, h*r + i, w*r + j]
 * Strides may be anything the tensors have (permuted views work). */
#ifndef SDRT_DEVICE_LAYOUT_VIEW_H
#define SDRT_DEVICE_LAYOUT_VIEW_H

#include <stdint.h>

#include "sdrt/backend.h"

typedef struct devview {
    int64_t ne[6];      /* the common index space */
    int64_t xs[6], ys[6]; /* src0 / dst element strides over it */
} devview;

/* Fills *v for `op` (one of the four kinds above). Returns 0, or -1 when the
 * shapes do not match the op's definition in sdrt/backend.h (factor < 1,
 * not 4-D, sizes inconsistent): the caller answers SDRT_INVALID_ARGUMENT.
 * Pure: reads op, writes *v. */
static inline int devview_layout(const sdrt_op *op, devview *v) {
    const sdrt_tensor *x = op->src[0], *y = op->dst;
    int64_t r = op->kind == SDRT_OP_UPSAMPLE2X ? 2 : op->iparams[0];
    if (!x || !y || r < 1 || x->ndim != 4 || y->ndim != 4 || y->shape[0] != x->shape[0]) return -1;
    const int64_t *xd = x->shape, *yd = y->shape, *xs = x->strides, *ys = y->strides;
    switch (op->kind) {
    case SDRT_OP_PIXEL_SHUFFLE: {
        if (xd[1] % (r * r) || yd[1] != xd[1] / (r * r) || yd[2] != xd[2] * r || yd[3] != xd[3] * r) return -1;
        const int64_t ne[6] = {xd[0], yd[1], r, r, xd[2], xd[3]};
        const int64_t sx[6] = {xs[0], r * r * xs[1], r * xs[1], xs[1], xs[2], xs[3]};
        const int64_t sy[6] = {ys[0], ys[1], ys[2], ys[3], r * ys[2], r * ys[3]};
        for (int d = 0; d < 6; d++) v->ne[d] = ne[d], v->xs[d] = sx[d], v->ys[d] = sy[d];
        return 0;
    }
    case SDRT_OP_PIXEL_UNSHUFFLE: {
        if (xd[2] % r || xd[3] % r || yd[1] != xd[1] * r * r || yd[2] != xd[2] / r || yd[3] != xd[3] / r) return -1;
        const int64_t ne[6] = {xd[0], xd[1], r, r, yd[2], yd[3]};
        const int64_t sx[6] = {xs[0], xs[1], xs[2], xs[3], r * xs[2], r * xs[3]};
        const int64_t sy[6] = {ys[0], r * r * ys[1], r * ys[1], ys[1], ys[2], ys[3]};
        for (int d = 0; d < 6; d++) v->ne[d] = ne[d], v->xs[d] = sx[d], v->ys[d] = sy[d];
        return 0;
    }
    case SDRT_OP_UPSAMPLE_NEAREST:
    case SDRT_OP_UPSAMPLE2X: {
        if (yd[1] != xd[1] || yd[2] != xd[2] * r || yd[3] != xd[3] * r) return -1;
        const int64_t ne[6] = {xd[0], xd[1], xd[2], r, xd[3], r};
        const int64_t sx[6] = {xs[0], xs[1], xs[2], 0, xs[3], 0};
        const int64_t sy[6] = {ys[0], ys[1], r * ys[2], ys[2], r * ys[3], ys[3]};
        for (int d = 0; d < 6; d++) v->ne[d] = ne[d], v->xs[d] = sx[d], v->ys[d] = sy[d];
        return 0;
    }
    default:
        return -1;
    }
}

#endif
