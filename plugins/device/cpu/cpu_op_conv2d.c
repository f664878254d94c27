/* cpu_op_conv2d.c - CONV2D as implicit GEMM: dst[o, pixel] = W[o, (c,ky,kx)]
 * x im2col(x)[(c,ky,kx), pixel] (on int8 / bf16 streams through the
 * low-precision GEMM, see cpu_conv_lowp). The im2col matrix is never stored: the B
 * packer reads the input directly into NR-wide panels, copying whole runs
 * of a row at a time where stride and layout allow. 1x1 stride-1 convs use
 * the input as B directly. One GEMM per group covers up to CPU_CONV_BATCH
 * images, so each block of weights is packed once for all of them. */
#include "cpu_internal.h"

#include <string.h>

/* Images per GEMM: they share every packed block of weights. */
#define CPU_CONV_BATCH 8

typedef struct cpu_conv {
    int64_t n, c, h, w, o, kh, kw, ho, wo;
    int64_t sh, sw, ph, pw, dh, dw, groups;
} cpu_conv;

/* What the im2col packer needs for one image and group. */
typedef struct cpu_im2col {
    const float *x; /* image n, first channel of the group */
    int64_t sc, sy, sx; /* input strides */
    const cpu_conv *cv;
} cpu_im2col;

/* Weights [O, Cg, kh, kw] with arbitrary strides, as A (o, k=(c,ky,kx)). */
typedef struct cpu_conv_w {
    int64_t s[4];
    int64_t kh, kw;
} cpu_conv_w;

static int64_t cpu_conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static sdrt_status cpu_conv_plan(const sdrt_op *op, cpu_conv *cv) {
    const sdrt_tensor *x = op->src[0], *w = op->src[1], *b = op->src[2], *y = op->dst;
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4) return SDRT_INVALID_ARGUMENT;
    const int32_t *ip = op->iparams;
    cv->sh = ip[0] > 0 ? ip[0] : 1;
    cv->sw = ip[1] > 0 ? ip[1] : 1;
    cv->ph = ip[2];
    cv->pw = ip[3];
    cv->dh = ip[4] > 0 ? ip[4] : 1;
    cv->dw = ip[5] > 0 ? ip[5] : 1;
    cv->groups = ip[6] > 0 ? ip[6] : 1;
    if (cv->ph < 0 || cv->pw < 0) return SDRT_INVALID_ARGUMENT;
    cv->n = x->shape[0], cv->c = x->shape[1], cv->h = x->shape[2], cv->w = x->shape[3];
    cv->o = w->shape[0], cv->kh = w->shape[2], cv->kw = w->shape[3];
    if (cv->c % cv->groups || cv->o % cv->groups || w->shape[1] != cv->c / cv->groups)
        return SDRT_INVALID_ARGUMENT;
    cv->ho = cpu_conv_out(cv->h, cv->kh, cv->sh, cv->ph, cv->dh);
    cv->wo = cpu_conv_out(cv->w, cv->kw, cv->sw, cv->pw, cv->dw);
    if (cv->ho <= 0 || cv->wo <= 0) return SDRT_INVALID_ARGUMENT;
    if (y->shape[0] != cv->n || y->shape[1] != cv->o || y->shape[2] != cv->ho || y->shape[3] != cv->wo)
        return SDRT_INVALID_ARGUMENT;
    if (b && cpu_numel(b) != cv->o) return SDRT_INVALID_ARGUMENT;
    return SDRT_OK;
}

/* Fills lanes [0, len) of one k row for pixels starting at (oy, ox0). */
static void cpu_im2col_run(const cpu_im2col *ic, const float *xc, int64_t iy, int64_t ix0, int64_t len,
                           float *d) {
    const cpu_conv *cv = ic->cv;
    if (iy < 0 || iy >= cv->h) {
        memset(d, 0, (size_t)len * sizeof(float));
        return;
    }
    const float *row = xc + iy * ic->sy;
    if (cv->sw == 1 && ic->sx == 1) {
        int64_t lo = ix0 < 0 ? -ix0 : 0, hi = cv->w - ix0 < len ? cv->w - ix0 : len;
        if (lo > len) lo = len;
        if (hi < lo) hi = lo;
        memset(d, 0, (size_t)lo * sizeof(float));
        memcpy(d + lo, row + ix0 + lo, (size_t)(hi - lo) * sizeof(float));
        memset(d + hi, 0, (size_t)(len - hi) * sizeof(float));
        return;
    }
    for (int64_t t = 0; t < len; t++) {
        int64_t ix = ix0 + t * cv->sw;
        d[t] = ix >= 0 && ix < cv->w ? row[ix * ic->sx] : 0.0f;
    }
}

/* One panel of `rows` output pixels starting at pixel j0, depth k0..k0+kc. */
static void cpu_im2col_panel(const cpu_im2col *ic, int64_t j0, int rows, int64_t k0, int64_t kc, int w,
                             float *d) {
    const cpu_conv *cv = ic->cv;
    int64_t khw = cv->kh * cv->kw;
    int64_t c = k0 / khw, ky = (k0 % khw) / cv->kw, kx = k0 % cv->kw;
    for (int64_t k = 0; k < kc; k++) {
        const float *xc = ic->x + c * ic->sc;
        float *dk = d + k * w;
        /* Split the panel into runs of pixels on the same output row. */
        for (int r = 0; r < rows;) {
            int64_t j = j0 + r, oy = j / cv->wo, ox = j % cv->wo;
            int64_t len = cv->wo - ox < rows - r ? cv->wo - ox : rows - r;
            cpu_im2col_run(ic, xc, oy * cv->sh - cv->ph + ky * cv->dh, ox * cv->sw - cv->pw + kx * cv->dw, len,
                           dk + r);
            r += (int)len;
        }
        if (rows < w) memset(dk + rows, 0, (size_t)(w - rows) * sizeof(float));
        if (++kx == cv->kw) {
            kx = 0;
            if (++ky == cv->kh) {
                ky = 0;
                c++;
            }
        }
    }
}

static void cpu_im2col_pack(const cpu_operand *op, int64_t o0, int64_t on, int64_t k0, int64_t kc, int w,
                            float *dst) {
    const cpu_im2col *ic = op->ctx;
    for (int64_t p = 0; p * w < on; p++) {
        int rows = (int)(on - p * w < w ? on - p * w : w);
        cpu_im2col_panel(ic, o0 + p * w, rows, k0, kc, w, dst + p * kc * w);
    }
}

/* Weights whose (c, ky, kx) dims do not flatten to one stride. */
static void cpu_conv_w_pack(const cpu_operand *op, int64_t o0, int64_t on, int64_t k0, int64_t kc, int w,
                            float *dst) {
    const cpu_conv_w *cw = op->ctx;
    int64_t khw = cw->kh * cw->kw;
    for (int64_t p = 0; p * w < on; p++) {
        float *d = dst + p * kc * w;
        for (int64_t k = 0; k < kc; k++) {
            int64_t kk = k0 + k, c = kk / khw, ky = (kk % khw) / cw->kw, kx = kk % cw->kw;
            for (int r = 0; r < w; r++) {
                int64_t o = o0 + p * w + r;
                d[k * w + r] = o < o0 + on
                    ? cpu_load_f32(op->data, op->dtype, o * cw->s[0] + c * cw->s[1] + ky * cw->s[2] + kx * cw->s[3])
                    : 0.0f;
            }
        }
    }
}

static void cpu_conv_a_operand(const sdrt_tensor *w, int64_t g, int64_t og, cpu_conv_w *cw, cpu_operand *a) {
    size_t es = cpu_dtype_size(w->dtype);
    *a = (cpu_operand){.data = (const char *)w->data + (size_t)(g * og * w->strides[0]) * es, .dtype = w->dtype,
                       .so = w->strides[0]};
    int flat = w->strides[2] == w->strides[3] * w->shape[3] && w->strides[1] == w->strides[2] * w->shape[2];
    if (flat || (w->shape[1] == 1 && w->shape[2] == 1 && w->shape[3] == 1)) {
        a->sk = w->strides[3];
        if (w->shape[3] == 1) a->sk = w->shape[2] > 1 ? w->strides[2] : w->strides[1];
        return;
    }
    memcpy(cw->s, w->strides, sizeof cw->s);
    cw->kh = w->shape[2];
    cw->kw = w->shape[3];
    a->pack = cpu_conv_w_pack;
    a->ctx = cw;
}

/* The input as B (pixel, k): directly for 1x1/stride 1/no pad over a
 * flattenable image, otherwise through the im2col packer. */
static void cpu_conv_b_operand(const sdrt_tensor *x, const cpu_conv *cv, const float *xg, cpu_im2col *ic,
                               cpu_operand *b) {
    *ic = (cpu_im2col){.x = xg, .sc = x->strides[1], .sy = x->strides[2], .sx = x->strides[3], .cv = cv};
    int pointwise = cv->kh == 1 && cv->kw == 1 && cv->sh == 1 && cv->sw == 1 && cv->ph == 0 && cv->pw == 0;
    if (pointwise && (cv->h == 1 || x->strides[2] == x->strides[3] * cv->w)) {
        *b = (cpu_operand){.data = xg, .dtype = SDRT_DTYPE_F32, .so = x->strides[3], .sk = x->strides[1]};
        return;
    }
    *b = (cpu_operand){.data = xg, .dtype = SDRT_DTYPE_F32, .pack = cpu_im2col_pack, .ctx = ic};
}

/* On an int8 / bf16 stream, a convolution whose weight is a weight (no
 * buffer) runs as C^T[pixel, o] = im2col(x)[pixel, k] W[o, k]^T through
 * the low-precision GEMM, the weight packed once per stream (cached),
 * each image's im2col rows quantised / rounded per call, the output
 * written transposed into [o][pixel]. */
static sdrt_status cpu_conv_lowp(cpu_ctx *ctx, const cpu_lp_kernel *lk, const cpu_conv *cv, const cpu_operand *wa,
                                 const cpu_operand *b, float *const *c, int64_t count, int64_t ldc, const float *bias,
                                 int *done) {
    int64_t og = cv->o / cv->groups, k = cv->c / cv->groups * cv->kh * cv->kw;
    sdrt_status st;
    *done = 0;
    if (wa->pack) return SDRT_OK; /* weights that do not flatten: f32 */
    const cpu_lp_weight *pw = cpu_wcache_get(ctx, lk, wa, og, k, &st);
    if (!pw) return st == SDRT_RESOURCE_EXHAUSTED ? SDRT_OK : st; /* no memory for it: f32 */
    for (int64_t i = 0; i < count; i++) {
        cpu_lp_gemm_args lg = {.m = cv->ho * cv->wo, .a = b[i], .w = pw, .c = c[i], .ldc = ldc, .c_trans = 1,
                               .alpha = 1.0f, .bias_n = bias};
        st = cpu_lp_gemm(ctx, &lg);
        if (st != SDRT_OK) return st;
    }
    *done = 1;
    return SDRT_OK;
}

/* Images n0..n0+count of group g as one batched GEMM: the weights are
 * packed once per block for all of them. */
static sdrt_status cpu_conv_images(cpu_ctx *ctx, const cpu_conv *cv, const sdrt_tensor *x, const sdrt_tensor *w,
                                   const float *bias, const sdrt_tensor *out, int64_t g, int64_t n0,
                                   int64_t count) {
    int64_t cg = cv->c / cv->groups, og = cv->o / cv->groups;
    cpu_conv_w cw;
    cpu_im2col ic[CPU_CONV_BATCH];
    cpu_operand b[CPU_CONV_BATCH];
    float *c[CPU_CONV_BATCH];
    cpu_gemm_args a = {.m = og, .n = cv->ho * cv->wo, .k = cg * cv->kh * cv->kw, .alpha = 1.0f,
                       .ldc = out->strides[1], .batch = count, .b_batch = b, .c_batch = c};
    cpu_conv_a_operand(w, g, og, &cw, &a.a);
    for (int64_t i = 0; i < count; i++) {
        const float *xg = (const float *)x->data + (n0 + i) * x->strides[0] + g * cg * x->strides[1];
        cpu_conv_b_operand(x, cv, xg, &ic[i], &b[i]);
        c[i] = (float *)out->data + (n0 + i) * out->strides[0] + g * og * out->strides[1];
    }
    a.b = b[0];
    a.c = c[0];
    a.bias_m = bias ? bias + g * og : NULL;
    const cpu_lp_kernel *lk =
        ctx->precision != CPU_PREC_F32 && w->buffer == NULL ? cpu_lp_kernel_best(ctx->precision) : NULL;
    if (lk) {
        int done;
        sdrt_status st = cpu_conv_lowp(ctx, lk, cv, &a.a, b, c, count, out->strides[1], a.bias_m, &done);
        if (st != SDRT_OK || done) return st;
    }
    return cpu_gemm(ctx, &a);
}

sdrt_status cpu_op_conv2d(cpu_ctx *ctx, const sdrt_op *op) {
    cpu_conv cv;
    sdrt_status st = cpu_conv_plan(op, &cv);
    if (st != SDRT_OK) return st;
    const sdrt_tensor *x = op->src[0], *w = op->src[1];
    sdrt_tensor *y = op->dst;
    /* F16/BF16 or strided biases are staged as floats once per call. */
    const float *bias = cpu_param_f32(ctx, op->src[2], cv.o, 0, &st);
    if (st != SDRT_OK) return st;
    /* dst pixels must be one row of the GEMM; else stage contiguously. */
    int direct = y->strides[3] == 1 && (cv.ho == 1 || y->strides[2] == cv.wo);
    sdrt_tensor out = *y;
    if (!direct) {
        out.data = cpu_ctx_shared(ctx, CPU_SLOT_TMP_DST, (size_t)cpu_numel(y) * sizeof(float));
        if (!out.data) return SDRT_RESOURCE_EXHAUSTED;
        for (int64_t d = 3, s = 1; d >= 0; d--) {
            out.strides[d] = s;
            s *= y->shape[d];
        }
    }
    for (int64_t g = 0; g < cv.groups; g++) {
        for (int64_t n0 = 0; n0 < cv.n; n0 += CPU_CONV_BATCH) {
            int64_t count = cv.n - n0 < CPU_CONV_BATCH ? cv.n - n0 : CPU_CONV_BATCH;
            st = cpu_conv_images(ctx, &cv, x, w, bias, &out, g, n0, count);
            if (st != SDRT_OK) return st;
        }
    }
    return direct ? SDRT_OK : cpu_copy_tensor(ctx, &out, y);
}
