/* conf_ref.c - the independent reference of the conformance test: each op
 * written the obvious way over contiguous logical arrays, accumulating in
 * double, straight from the op comments in sdrt/backend.h. It shares no
 * code with any backend, so the CPU family is checked against it and every
 * other family against the CPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

/* Index helpers over contiguous logical arrays. */
static int64_t numel_of(const conf_tensor *t) { return conf_numel(t); }

/* Offset of dst-index `idx` (dst dims, right-aligned) into `t`, where t's
 * dims of size 1 broadcast. */
static int64_t bcast_offset(const conf_tensor *t, const int64_t *idx, int nd) {
    int64_t off = 0, stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int dd = d + nd - t->ndim;
        int64_t i = t->shape[d] == 1 ? 0 : idx[dd];
        off += i * stride;
        stride *= t->shape[d];
    }
    return off;
}

static void unravel(int64_t flat, const int64_t *shape, int nd, int64_t *idx) {
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
}

static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double act(sdrt_op_kind k, double x) {
    switch (k) {
    case SDRT_OP_GELU: return gelu(x);
    case SDRT_OP_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case SDRT_OP_QUICK_GELU: return x * sigmoid(1.702 * x);
    default: return x * sigmoid(x); /* SILU */
    }
}

static void ref_matmul(const conf_case *c, const float *const *in, float *out) {
    const conf_tensor *a = &c->src[0], *b = &c->src[1], *y = &c->dst;
    int trans = c->ip[0] == 1, nd = y->ndim;
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = y->shape[nd - 1];
    double alpha = c->fp[0] != 0.0f ? c->fp[0] : 1.0;
    int64_t batches = numel_of(y) / (m * n);
    /* Batch shapes: a, b viewed without their last two dims. */
    conf_tensor ab = *a, bb = *b, yb = *y;
    ab.ndim -= 2, bb.ndim -= 2, yb.ndim -= 2;
    for (int64_t bi = 0; bi < batches; bi++) {
        int64_t idx[SDRT_MAX_DIMS];
        unravel(bi, yb.shape, yb.ndim, idx);
        const float *A = in[0] + bcast_offset(&ab, idx, yb.ndim) * m * k;
        const float *B = in[1] + bcast_offset(&bb, idx, yb.ndim) * k * n;
        float *Y = out + bi * m * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0.0;
                for (int64_t q = 0; q < k; q++) s += (double)A[i * k + q] * (trans ? B[j * k + q] : B[q * n + j]);
                Y[i * n + j] = (float)(alpha * s + (c->src[2].used ? in[2][j] : 0.0));
            }
    }
}

static void ref_conv2d(const conf_case *c, const float *const *in, float *out) {
    const int64_t *xs = c->src[0].shape, *ws = c->src[1].shape, *ys = c->dst.shape;
    int64_t sh = c->ip[0] > 0 ? c->ip[0] : 1, sw = c->ip[1] > 0 ? c->ip[1] : 1, ph = c->ip[2], pw = c->ip[3];
    int64_t dh = c->ip[4] > 0 ? c->ip[4] : 1, dw = c->ip[5] > 0 ? c->ip[5] : 1, g = c->ip[6] > 0 ? c->ip[6] : 1;
    int64_t C = xs[1], H = xs[2], W = xs[3], O = ws[0], cg = ws[1], kh = ws[2], kw = ws[3];
    int64_t og = O / g;
    for (int64_t n = 0; n < ys[0]; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < ys[2]; oy++)
                for (int64_t ox = 0; ox < ys[3]; ox++) {
                    double s = c->src[2].used ? in[2][o] : 0.0;
                    int64_t grp = o / og;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                int64_t ch = grp * cg + ci;
                                s += (double)in[0][((n * C + ch) * H + iy) * W + ix] *
                                     in[1][((o * cg + ci) * kh + ky) * kw + kx];
                            }
                    out[((n * O + o) * ys[2] + oy) * ys[3] + ox] = (float)s;
                }
}

static void ref_group_norm(const conf_case *c, const float *const *in, float *out) {
    const conf_tensor *x = &c->src[0];
    int64_t N = x->shape[0], C = x->shape[1], G = c->ip[0] > 0 ? c->ip[0] : 32;
    int64_t sp = numel_of(x) / (N * C), cg = C / G;
    double eps = c->fp[0] != 0.0f ? c->fp[0] : 1e-5;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            const float *xp = in[0] + (n * C + g * cg) * sp;
            int64_t cnt = cg * sp;
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < cnt; i++) mean += xp[i];
            mean /= (double)cnt;
            for (int64_t i = 0; i < cnt; i++) var += (xp[i] - mean) * (xp[i] - mean);
            double rstd = 1.0 / sqrt(var / (double)cnt + eps);
            for (int64_t ci = 0; ci < cg; ci++) {
                int64_t ch = g * cg + ci;
                double gm = c->src[1].used ? in[1][ch] : 1.0, bt = c->src[2].used ? in[2][ch] : 0.0;
                for (int64_t i = 0; i < sp; i++) {
                    double v = (xp[ci * sp + i] - mean) * rstd * gm + bt;
                    if (c->ip[1] == 1) v = v * sigmoid(v);
                    out[(n * C + ch) * sp + i] = (float)v;
                }
            }
        }
}

static void ref_layer_norm(const conf_case *c, const float *const *in, float *out) {
    const conf_tensor *x = &c->src[0];
    int64_t d = x->shape[x->ndim - 1], rows = d ? numel_of(x) / d : 0;
    double eps = c->fp[0] != 0.0f ? c->fp[0] : 1e-5;
    for (int64_t r = 0; r < rows; r++) {
        const float *xp = in[0] + r * d;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < d; i++) mean += xp[i];
        mean /= (double)d;
        for (int64_t i = 0; i < d; i++) var += (xp[i] - mean) * (xp[i] - mean);
        double rstd = 1.0 / sqrt(var / (double)d + eps);
        for (int64_t i = 0; i < d; i++)
            out[r * d + i] = (float)((xp[i] - mean) * rstd * (c->src[1].used ? in[1][i] : 1.0) +
                                     (c->src[2].used ? in[2][i] : 0.0));
    }
}

static void softmax_row(const double *x, int64_t n, double *y) {
    double mx = -INFINITY, sum = 0.0;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < n; i++) sum += (y[i] = exp(x[i] - mx));
    for (int64_t i = 0; i < n; i++) y[i] /= sum;
}

static void ref_softmax(const conf_case *c, const float *const *in, float *out) {
    const conf_tensor *x = &c->src[0];
    int64_t n = x->shape[x->ndim - 1], rows = n ? numel_of(x) / n : 0;
    double scale = c->fp[0] != 0.0f ? c->fp[0] : 1.0;
    double *row = malloc((size_t)(2 * n + 1) * sizeof(double)), *y = row + n;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++) row[i] = scale * in[0][r * n + i];
        softmax_row(row, n, y);
        for (int64_t i = 0; i < n; i++) out[r * n + i] = (float)y[i];
    }
    free(row);
}

static void ref_attention(const conf_case *c, const float *const *in, float *out) {
    const int64_t *qs = c->src[0].shape, *ks = c->src[1].shape, *vs = c->src[2].shape;
    int64_t B = qs[0], H = qs[1], Lq = qs[2], D = qs[3], Lk = ks[2], Dv = vs[3];
    double scale = c->fp[0] != 0.0f ? c->fp[0] : 1.0 / sqrt((double)D);
    double *s = malloc((size_t)(2 * Lk + 1) * sizeof(double)), *p = s + Lk;
    for (int64_t bh = 0; bh < B * H; bh++) {
        const float *Q = in[0] + bh * Lq * D, *K = in[1] + bh * Lk * D, *V = in[2] + bh * Lk * Dv;
        for (int64_t i = 0; i < Lq; i++) {
            int64_t valid = c->ip[0] == 1 ? (i + 1 < Lk ? i + 1 : Lk) : Lk;
            for (int64_t j = 0; j < valid; j++) {
                double acc = 0.0;
                for (int64_t q = 0; q < D; q++) acc += (double)Q[i * D + q] * K[j * D + q];
                s[j] = scale * acc;
            }
            softmax_row(s, valid, p);
            for (int64_t e = 0; e < Dv; e++) {
                double acc = 0.0;
                for (int64_t j = 0; j < valid; j++) acc += p[j] * V[j * Dv + e];
                out[(bh * Lq + i) * Dv + e] = (float)acc;
            }
        }
    }
    free(s);
}

static void ref_binary(const conf_case *c, const float *const *in, float *out) {
    const conf_tensor *a = &c->src[0], *b = &c->src[1];
    double alpha = c->fp[0] != 0.0f ? c->fp[0] : 1.0;
    for (int64_t f = 0; f < numel_of(a); f++) {
        int64_t idx[SDRT_MAX_DIMS];
        unravel(f, a->shape, a->ndim, idx);
        double bv = in[1][bcast_offset(b, idx, a->ndim)];
        out[f] = (float)(c->kind == SDRT_OP_MUL ? (double)in[0][f] * bv : in[0][f] + alpha * bv);
    }
}

static void ref_concat(const conf_case *c, const float *const *in, float *out) {
    const conf_tensor *a = &c->src[0], *y = &c->dst;
    int dim = c->ip[0] < 0 ? c->ip[0] + a->ndim : c->ip[0];
    for (int64_t f = 0; f < numel_of(y); f++) {
        int64_t idx[SDRT_MAX_DIMS];
        unravel(f, y->shape, y->ndim, idx);
        int second = idx[dim] >= a->shape[dim];
        if (second) idx[dim] -= a->shape[dim];
        const conf_tensor *t = &c->src[second];
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off = off * t->shape[d] + idx[d];
        out[f] = in[second][off];
    }
}

static void ref_timestep(const conf_case *c, const float *const *in, float *out) {
    int64_t n = c->src[0].shape[0], dim = c->ip[0], half = dim / 2;
    double shift = c->fp[0], maxp = c->fp[1] != 0.0f ? c->fp[1] : 10000.0, scale = c->fp[2] != 0.0f ? c->fp[2] : 1.0;
    for (int64_t r = 0; r < n; r++) {
        float *row = out + r * dim;
        for (int64_t i = 0; i < half; i++) {
            double arg = scale * in[0][r] * exp(-log(maxp) * (double)i / ((double)half - shift));
            row[(c->ip[1] == 1 ? half : 0) + i] = (float)sin(arg);
            row[(c->ip[1] == 1 ? 0 : half) + i] = (float)cos(arg);
        }
        if (dim % 2) row[dim - 1] = 0.0f;
    }
}

int conf_reference(const conf_case *c, const float *const *in, float *out) {
    const conf_tensor *y = &c->dst;
    int64_t n = numel_of(y);
    switch (c->kind) {
    case SDRT_OP_MATMUL: ref_matmul(c, in, out); break;
    case SDRT_OP_CONV2D: ref_conv2d(c, in, out); break;
    case SDRT_OP_GROUP_NORM: ref_group_norm(c, in, out); break;
    case SDRT_OP_LAYER_NORM: ref_layer_norm(c, in, out); break;
    case SDRT_OP_SOFTMAX: ref_softmax(c, in, out); break;
    case SDRT_OP_ATTENTION: ref_attention(c, in, out); break;
    case SDRT_OP_GELU: case SDRT_OP_GELU_TANH: case SDRT_OP_QUICK_GELU: case SDRT_OP_SILU:
        for (int64_t i = 0; i < n; i++) out[i] = (float)act(c->kind, in[0][i]);
        break;
    case SDRT_OP_GEGLU: {
        int64_t h = y->shape[y->ndim - 1];
        for (int64_t i = 0; i < n; i++) {
            int64_t r = i / h, j = i % h;
            out[i] = (float)(in[0][r * 2 * h + j] * gelu(in[0][r * 2 * h + h + j]));
        }
        break;
    }
    case SDRT_OP_ADD: case SDRT_OP_MUL: ref_binary(c, in, out); break;
    case SDRT_OP_SCALE:
        for (int64_t i = 0; i < n; i++) out[i] = (float)((double)in[0][i] * c->fp[0] + c->fp[1]);
        break;
    case SDRT_OP_CONCAT: ref_concat(c, in, out); break;
    case SDRT_OP_UPSAMPLE2X: {
        const int64_t *s = y->shape;
        for (int64_t i = 0; i < n; i++) {
            int64_t x = i % s[3], yy = (i / s[3]) % s[2], nc = i / (s[3] * s[2]);
            out[i] = in[0][(nc * (s[2] / 2) + yy / 2) * (s[3] / 2) + x / 2];
        }
        break;
    }
    case SDRT_OP_TIMESTEP_EMB: ref_timestep(c, in, out); break;
    case SDRT_OP_COPY: memcpy(out, in[0], (size_t)n * sizeof(float)); break;
    case SDRT_OP_LEAKY_RELU: {
        double slope = c->fp[0] != 0.0f ? c->fp[0] : 0.01;
        for (int64_t i = 0; i < n; i++) out[i] = (float)(in[0][i] >= 0 ? in[0][i] : in[0][i] * slope);
        break;
    }
    case SDRT_OP_PRELU: {
        int64_t C = y->shape[1], inner = n / (y->shape[0] * C), nw = numel_of(&c->src[1]);
        for (int64_t i = 0; i < n; i++) {
            double a = in[1][nw == 1 ? 0 : (i / inner) % C];
            out[i] = (float)(in[0][i] >= 0 ? in[0][i] : in[0][i] * a);
        }
        break;
    }
    case SDRT_OP_PIXEL_SHUFFLE: case SDRT_OP_PIXEL_UNSHUFFLE: case SDRT_OP_UPSAMPLE_NEAREST: {
        /* Walk the larger-resolution side: (n, c, h, w) at full size. */
        int64_t r = c->ip[0];
        const int64_t *hi = c->kind == SDRT_OP_PIXEL_UNSHUFFLE ? c->src[0].shape : y->shape;
        const int64_t *lo = c->kind == SDRT_OP_PIXEL_UNSHUFFLE ? y->shape : c->src[0].shape;
        for (int64_t i = 0; i < numel_of(c->kind == SDRT_OP_PIXEL_UNSHUFFLE ? &c->src[0] : y); i++) {
            int64_t w = i % hi[3], h = (i / hi[3]) % hi[2], ch = (i / (hi[3] * hi[2])) % hi[1], b = i / (hi[3] * hi[2] * hi[1]);
            int64_t lc = c->kind == SDRT_OP_UPSAMPLE_NEAREST ? ch : ch * r * r + (h % r) * r + (w % r);
            int64_t li = ((b * lo[1] + lc) * lo[2] + h / r) * lo[3] + w / r;
            if (c->kind == SDRT_OP_PIXEL_UNSHUFFLE) out[li] = in[0][i];
            else out[i] = in[0][li];
        }
        break;
    }
    default: return -1;
    }
    for (int64_t i = 0; i < n; i++) out[i] = conf_quantize(y->dtype, out[i]);
    return 0;
}

double conf_tolerance(const conf_case *c) {
    switch (c->kind) {
    case SDRT_OP_COPY: case SDRT_OP_CONCAT: case SDRT_OP_UPSAMPLE2X: return 1e-6;
    case SDRT_OP_LEAKY_RELU: case SDRT_OP_PRELU: case SDRT_OP_PIXEL_SHUFFLE: case SDRT_OP_PIXEL_UNSHUFFLE:
    case SDRT_OP_UPSAMPLE_NEAREST: return 1e-6;
    case SDRT_OP_ADD: case SDRT_OP_MUL: case SDRT_OP_SCALE: return 1e-6;
    /* t up to 1000: float rounding of the argument moves sin/cos by ~1e-4. */
    case SDRT_OP_TIMESTEP_EMB: return 2e-4;
    /* Reordered float accumulation over K (and f16 weights widened). */
    case SDRT_OP_MATMUL: case SDRT_OP_CONV2D: case SDRT_OP_ATTENTION: return 2e-5;
    default: return 1e-5;
    }
}
