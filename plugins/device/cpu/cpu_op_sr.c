/* cpu_op_sr.c - the ops the super-resolution networks (ESRGAN/RealESRGAN
 * RRDBNet, SRVGGNetCompact) add to the set: LEAKY_RELU, PRELU,
 * PIXEL_SHUFFLE, PIXEL_UNSHUFFLE, UPSAMPLE_NEAREST. Contiguous src0 and dst
 * (cpu_supports_op checks it); parallel over [N*C] planes or element blocks. */
#include "cpu_internal.h"

typedef struct cpu_sr {
    const sdrt_op *op;
    const float *x;
    float *y;
    const float *w;      /* PRELU slopes [C] (widened) */
    int64_t n, c, h, w_, plane, per_task, r;
} cpu_sr;

#define CPU_SR_BLOCK 65536

static void cpu_leaky_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const cpu_sr *s = arg;
    float slope = s->op->fparams[0] != 0.0f ? s->op->fparams[0] : 0.01f;
    int64_t i0 = task * CPU_SR_BLOCK, i1 = i0 + CPU_SR_BLOCK < s->n ? i0 + CPU_SR_BLOCK : s->n;
    for (int64_t i = i0; i < i1; i++) {
        float v = s->x[i];
        s->y[i] = v >= 0.0f ? v : v * slope;
    }
}

static void cpu_prelu_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const cpu_sr *s = arg;
    float a = s->w[s->c == 1 ? 0 : task % s->c];
    const float *x = s->x + task * s->plane;
    float *y = s->y + task * s->plane;
    for (int64_t i = 0; i < s->plane; i++) y[i] = x[i] >= 0.0f ? x[i] : x[i] * a;
}

/* One output plane [n, c] of PIXEL_SHUFFLE: out[c][h*r+i][w*r+j] = in[c*r*r + i*r + j][h][w]. */
static void cpu_shuffle_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const cpu_sr *s = arg;
    int64_t r = s->r, H = s->h, W = s->w_, oc = task; /* task = n*C + c over output channels */
    float *y = s->y + oc * H * r * W * r;
    const float *x = s->x + oc * r * r * H * W;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < r; j++) {
            const float *xp = x + (i * r + j) * H * W;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) y[(h * r + i) * W * r + w * r + j] = xp[h * W + w];
        }
}

/* One input plane [n, c] of PIXEL_UNSHUFFLE (the inverse); H, W are output sizes. */
static void cpu_unshuffle_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const cpu_sr *s = arg;
    int64_t r = s->r, H = s->h, W = s->w_;
    const float *x = s->x + task * H * r * W * r;
    float *y = s->y + task * r * r * H * W;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < r; j++) {
            float *yp = y + (i * r + j) * H * W;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) yp[h * W + w] = x[(h * r + i) * W * r + w * r + j];
        }
}

static void cpu_nearest_task(void *arg, int64_t task, int thread) {
    (void)thread;
    const cpu_sr *s = arg;
    int64_t r = s->r, H = s->h, W = s->w_;
    const float *x = s->x + task * H * W;
    float *y = s->y + task * H * r * W * r;
    for (int64_t h = 0; h < H * r; h++) {
        const float *xr = x + (h / r) * W;
        float *yr = y + h * W * r;
        for (int64_t w = 0; w < W * r; w++) yr[w] = xr[w / r];
    }
}

sdrt_status cpu_op_sr(cpu_ctx *ctx, const sdrt_op *op) {
    const sdrt_tensor *x = op->src[0], *y = op->dst;
    cpu_sr s = {.op = op, .x = x->data, .y = y->data};
    switch (op->kind) {
    case SDRT_OP_LEAKY_RELU:
        if (!cpu_same_shape(x, y)) return SDRT_INVALID_ARGUMENT;
        s.n = cpu_numel(x);
        if (s.n) cpu_ctx_run(ctx, cpu_div_up(s.n, CPU_SR_BLOCK), cpu_leaky_task, &s);
        return SDRT_OK;
    case SDRT_OP_PRELU: {
        if (!cpu_same_shape(x, y) || x->ndim < 2) return SDRT_INVALID_ARGUMENT;
        s.c = cpu_numel(op->src[1]);
        if (s.c != 1 && s.c != x->shape[1]) return SDRT_INVALID_ARGUMENT;
        sdrt_status st = SDRT_OK;
        s.w = cpu_param_f32(ctx, op->src[1], s.c, 0, &st);
        if (st != SDRT_OK) return st;
        s.plane = 1;
        for (int d = 2; d < x->ndim; d++) s.plane *= x->shape[d];
        int64_t planes = x->shape[0] * x->shape[1];
        s.c = s.c == 1 ? 1 : x->shape[1];
        if (planes && s.plane) cpu_ctx_run(ctx, planes, cpu_prelu_task, &s);
        return SDRT_OK;
    }
    default:
        break;
    }
    /* Layout ops on [N,C,H,W]. */
    int64_t r = op->iparams[0];
    if (r < 1 || x->ndim != 4 || y->ndim != 4 || y->shape[0] != x->shape[0]) return SDRT_INVALID_ARGUMENT;
    s.r = r;
    const int64_t *xs = x->shape, *ys = y->shape;
    if (op->kind == SDRT_OP_PIXEL_SHUFFLE) {
        if (xs[1] % (r * r) || ys[1] != xs[1] / (r * r) || ys[2] != xs[2] * r || ys[3] != xs[3] * r)
            return SDRT_INVALID_ARGUMENT;
        s.h = xs[2];
        s.w_ = xs[3];
        if (cpu_numel(y)) cpu_ctx_run(ctx, ys[0] * ys[1], cpu_shuffle_task, &s);
    } else if (op->kind == SDRT_OP_PIXEL_UNSHUFFLE) {
        if (xs[2] % r || xs[3] % r || ys[1] != xs[1] * r * r || ys[2] != xs[2] / r || ys[3] != xs[3] / r)
            return SDRT_INVALID_ARGUMENT;
        s.h = ys[2];
        s.w_ = ys[3];
        if (cpu_numel(y)) cpu_ctx_run(ctx, xs[0] * xs[1], cpu_unshuffle_task, &s);
    } else { /* UPSAMPLE_NEAREST */
        if (ys[1] != xs[1] || ys[2] != xs[2] * r || ys[3] != xs[3] * r) return SDRT_INVALID_ARGUMENT;
        s.h = xs[2];
        s.w_ = xs[3];
        if (cpu_numel(y)) cpu_ctx_run(ctx, xs[0] * xs[1], cpu_nearest_task, &s);
    }
    return SDRT_OK;
}
