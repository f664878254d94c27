/* vk_ops.c - turns each op of the op set into kernel dispatches: operand
 * views right-aligned to 6-D with their strides, broadcast as stride 0,
 * PyTorch's transposed weight as swapped strides, CONCAT as two copies,
 * PRELU as a channel-broadcast element-wise op, and UPSAMPLE2X,
 * UPSAMPLE_NEAREST, PIXEL_SHUFFLE and PIXEL_UNSHUFFLE as one copy over a
 * 6-D view (layout_view.h). Operands in host memory (or another device's)
 * are copied into a temporary device buffer first. */
#include "vk_internal.h"
#include "layout_view.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A 6-D view of an operand (right-aligned; leading dims 1 with stride 0). */
typedef struct vk_view {
    int64_t ne[6], nb[6];
} vk_view;

/* A resolved operand: the block buffer and the byte offset of element 0. */
typedef struct vk_ref {
    VkBuffer buf;
    uint32_t block;
    uint64_t off;
    sdrt_dtype dtype;
    uint32_t esize;
} vk_ref;

/* ew.comp's modes (M_*), in its order. */
enum {
    EW_COPY, EW_GELU, EW_GELU_TANH, EW_QUICK_GELU, EW_SILU, EW_SCALE, EW_ADD, EW_MUL, EW_GEGLU, EW_LEAKY_RELU,
    EW_PRELU
};

static uint32_t vk_esize(sdrt_dtype dt) {
    return dt == SDRT_DTYPE_F32 ? 4 : (dt == SDRT_DTYPE_F16 || dt == SDRT_DTYPE_BF16) ? 2 : 0;
}

static int64_t vk_numel(const sdrt_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static void vk_view_of(const sdrt_tensor *t, vk_view *v) {
    for (int d = 0; d < 6; d++) v->ne[d] = 1, v->nb[d] = 0;
    for (int d = 0; d < t->ndim; d++) {
        v->ne[6 - t->ndim + d] = t->shape[d];
        v->nb[6 - t->ndim + d] = t->strides[d];
    }
}

/* Bytes from element 0 to one past the last element (strides >= 0). */
static uint64_t vk_extent(const vk_view *v, uint32_t esize) {
    uint64_t last = 0;
    for (int d = 0; d < 6; d++) {
        if (v->ne[d] == 0) return 0;
        last += (uint64_t)(v->ne[d] - 1) * (uint64_t)v->nb[d];
    }
    return (last + 1) * esize;
}

int vk_tensor_is_ours(const vk_device *d, const sdrt_tensor *t) {
    return t->buffer && t->buffer->iface == &vk_buffer_iface && ((vk_alloc *)t->buffer->context)->d == d;
}

/* Resolves `t` on the stream's device; host or foreign memory is uploaded
 * into a temporary buffer that lives until the stream's next wait. */
static sdrt_status vk_resolve(vk_stream *s, const sdrt_tensor *t, vk_ref *r) {
    vk_device *d = s->d;
    r->dtype = t->dtype;
    r->esize = vk_esize(t->dtype);
    if (vk_tensor_is_ours(d, t)) {
        vk_block *b = vk_block_of(d, t->data);
        if (!b) return SDRT_INVALID_ARGUMENT;
        r->buf = b->buf;
        r->block = VK_ADDR_BLOCK(t->data);
        r->off = VK_ADDR_OFF(t->data);
        return SDRT_OK;
    }
    vk_view v;
    vk_view_of(t, &v);
    uint64_t bytes = vk_extent(&v, r->esize);
    sdrt_buffer *tmp = vk_stream_temp(s, bytes ? bytes : 4);
    if (!tmp) {
        vk_log(d->fam, SDRT_LOG_WARN, "%s: out of memory: %llu bytes for a host operand", d->name,
               (unsigned long long)bytes);
        return SDRT_RESOURCE_EXHAUSTED;
    }
    void *base = tmp->iface->base(tmp);
    if (bytes) {
        sdrt_buffer *src = t->buffer;
        if (!src || sdrt_buffer_type_is_host(src->type)) {
            tmp->iface->write(tmp, base, t->data, bytes);
        } else {
            void *host = malloc(bytes);
            if (!host) return SDRT_RESOURCE_EXHAUSTED;
            src->iface->read(src, host, t->data, bytes);
            tmp->iface->write(tmp, base, host, bytes);
            free(host);
        }
    }
    r->buf = vk_block_of(d, base)->buf;
    r->block = VK_ADDR_BLOCK(base);
    r->off = VK_ADDR_OFF(base);
    return SDRT_OK;
}

/* Fills descriptor `slot` (0..3 src, 4 dst) and its span. */
static void vk_put(vk_dispatch *ds, int slot, const vk_ref *r, const vk_view *v) {
    uint32_t *w = ds->words + 16 + 16 * slot;
    w[0] = (uint32_t)(r->off / r->esize);
    w[1] = (uint32_t)r->dtype;
    w[2] = 6;
    w[3] = 0;
    for (int d = 0; d < 6; d++) {
        w[4 + d] = (uint32_t)v->ne[d];
        w[10 + d] = (uint32_t)(int32_t)v->nb[d];
    }
    ds->bind[slot] = r->buf;
    ds->spans[slot] = (vk_span){r->block, r->off, r->off + vk_extent(v, r->esize)};
}

static void vk_dispatch_init(vk_dispatch *ds, vk_kernel k, const sdrt_op *op) {
    memset(ds, 0, sizeof *ds);
    ds->kernel = k;
    for (int i = 0; i < 8; i++) {
        ds->words[i] = (uint32_t)op->iparams[i];
        memcpy(&ds->words[8 + i], &op->fparams[i], 4);
    }
    ds->groups[0] = ds->groups[1] = ds->groups[2] = 1;
}

static void vk_xf(vk_dispatch *ds, int i, float f) { memcpy(&ds->words[96 + i], &f, 4); }

/* Spreads n workgroups over x and y (x at most 65535). */
static void vk_groups_1d(vk_dispatch *ds, uint64_t n) {
    ds->groups[0] = (uint32_t)(n < 65535 ? n : 65535);
    ds->groups[1] = (uint32_t)((n + 65534) / 65535);
    if (n == 0) ds->groups[0] = 0;
}

/* ---- element-wise ------------------------------------------------------------- */

/* One ew dispatch over vy's elements; k is the mode's scalar (ADD's alpha on
 * src1, LEAKY_RELU's slope), defaults already applied by the caller. */
static sdrt_status vk_ew(vk_stream *s, const sdrt_op *op, int mode, float k, const vk_ref *a, const vk_view *va,
                         const vk_ref *b, const vk_view *vb, const vk_ref *y, const vk_view *vy) {
    vk_dispatch ds;
    vk_dispatch_init(&ds, VK_K_ew, op);
    uint64_t n = 1;
    for (int d = 0; d < 6; d++) n *= (uint64_t)vy->ne[d];
    if (n == 0) return SDRT_OK;
    vk_put(&ds, 0, a, va);
    if (b) vk_put(&ds, 1, b, vb);
    vk_put(&ds, 4, y, vy);
    ds.words[96] = (uint32_t)mode;
    ds.words[97] = (uint32_t)n;
    vk_xf(&ds, 2, k);
    vk_groups_1d(&ds, (n + 255) / 256);
    return vk_stream_dispatch(s, &ds);
}

static int vk_same_shape(const sdrt_tensor *a, const sdrt_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static sdrt_status vk_op_unary(vk_stream *s, const sdrt_op *op, const vk_ref *a, const vk_ref *y) {
    const sdrt_tensor *x = op->src[0], *t = op->dst;
    if (op->kind == SDRT_OP_COPY ? vk_numel(x) != vk_numel(t) : !vk_same_shape(x, t)) return SDRT_INVALID_ARGUMENT;
    static const int modes[SDRT_OP_COUNT_] = {[SDRT_OP_COPY] = EW_COPY, [SDRT_OP_GELU] = EW_GELU,
                                              [SDRT_OP_GELU_TANH] = EW_GELU_TANH,
                                              [SDRT_OP_QUICK_GELU] = EW_QUICK_GELU, [SDRT_OP_SILU] = EW_SILU,
                                              [SDRT_OP_SCALE] = EW_SCALE, [SDRT_OP_LEAKY_RELU] = EW_LEAKY_RELU};
    float k = op->kind == SDRT_OP_LEAKY_RELU ? (op->fparams[0] != 0.0f ? op->fparams[0] : 0.01f) : 1.0f;
    vk_view va, vy;
    vk_view_of(x, &va);
    vk_view_of(t, &vy);
    return vk_ew(s, op, modes[op->kind], k, a, &va, NULL, NULL, y, &vy);
}

static sdrt_status vk_op_binary(vk_stream *s, const sdrt_op *op, const vk_ref *a, const vk_ref *b, const vk_ref *y) {
    const sdrt_tensor *x0 = op->src[0], *x1 = op->src[1], *t = op->dst;
    if (!vk_same_shape(x0, t) || x1->ndim > x0->ndim) return SDRT_INVALID_ARGUMENT;
    vk_view va, vb, vy;
    vk_view_of(x0, &va);
    vk_view_of(x1, &vb);
    vk_view_of(t, &vy);
    for (int d = 0; d < 6; d++) {
        if (vb.ne[d] == vy.ne[d]) continue;
        if (vb.ne[d] != 1) return SDRT_INVALID_ARGUMENT;
        vb.ne[d] = vy.ne[d];
        vb.nb[d] = 0;
    }
    return vk_ew(s, op, op->kind == SDRT_OP_ADD ? EW_ADD : EW_MUL, op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f, a,
                 &va, b, &vb, y, &vy);
}

/* dst = x >= 0 ? x : x * slope[c]: the slopes (C of them, or 1) walked along
 * dim 1 of x and broadcast (stride 0) over every other dim. */
static sdrt_status vk_op_prelu(vk_stream *s, const sdrt_op *op, const vk_ref *a, const vk_ref *b, const vk_ref *y) {
    const sdrt_tensor *x = op->src[0], *w = op->src[1], *t = op->dst;
    int64_t nw = vk_numel(w);
    if (!vk_same_shape(x, t) || x->ndim < 2 || (nw != 1 && nw != x->shape[1])) return SDRT_INVALID_ARGUMENT;
    vk_view va, vb, vy;
    vk_view_of(x, &va);
    vk_view_of(t, &vy);
    vb = vy;
    for (int d = 0; d < 6; d++) vb.nb[d] = 0;
    /* vk_supports_op takes 1-D slopes or contiguous ones: one element step */
    vb.nb[6 - x->ndim + 1] = nw == 1 ? 0 : w->ndim == 1 ? w->strides[0] : 1;
    return vk_ew(s, op, EW_PRELU, 1.0f, a, &va, b, &vb, y, &vy);
}

static sdrt_status vk_op_geglu(vk_stream *s, const sdrt_op *op, const vk_ref *a, const vk_ref *y) {
    const sdrt_tensor *x = op->src[0], *t = op->dst;
    if (x->ndim < 1 || x->ndim != t->ndim || x->shape[x->ndim - 1] != 2 * t->shape[t->ndim - 1])
        return SDRT_INVALID_ARGUMENT;
    for (int d = 0; d < x->ndim - 1; d++)
        if (x->shape[d] != t->shape[d]) return SDRT_INVALID_ARGUMENT;
    vk_view va, vy;
    vk_view_of(x, &va);
    vk_view_of(t, &vy);
    va.ne[5] = vy.ne[5];
    vk_ref g = *a;
    g.off += (uint64_t)(vy.ne[5] * va.nb[5]) * a->esize;
    return vk_ew(s, op, EW_GEGLU, 1.0f, a, &va, &g, &va, y, &vy);
}

static sdrt_status vk_op_concat(vk_stream *s, const sdrt_op *op, const vk_ref *a, const vk_ref *b, const vk_ref *y) {
    const sdrt_tensor *x0 = op->src[0], *x1 = op->src[1], *t = op->dst;
    if (x0->ndim != x1->ndim || x0->ndim != t->ndim || x0->ndim == 0) return SDRT_INVALID_ARGUMENT;
    int dim = op->iparams[0] < 0 ? op->iparams[0] + x0->ndim : op->iparams[0];
    if (dim < 0 || dim >= x0->ndim) return SDRT_INVALID_ARGUMENT;
    for (int d = 0; d < x0->ndim; d++) {
        int64_t want = d == dim ? x0->shape[d] + x1->shape[d] : x0->shape[d];
        if (t->shape[d] != want || (d != dim && x1->shape[d] != x0->shape[d])) return SDRT_INVALID_ARGUMENT;
    }
    vk_view va, vb, ya, yb;
    vk_view_of(x0, &va);
    vk_view_of(x1, &vb);
    vk_view_of(t, &ya);
    yb = ya;
    int d6 = 6 - t->ndim + dim;
    ya.ne[d6] = va.ne[d6];
    yb.ne[d6] = vb.ne[d6];
    vk_ref y2 = *y;
    y2.off += (uint64_t)(va.ne[d6] * ya.nb[d6]) * y->esize;
    sdrt_status st = vk_ew(s, op, EW_COPY, 1.0f, a, &va, NULL, NULL, y, &ya);
    return st != SDRT_OK ? st : vk_ew(s, op, EW_COPY, 1.0f, b, &vb, NULL, NULL, &y2, &yb);
}

/* UPSAMPLE2X, UPSAMPLE_NEAREST, PIXEL_SHUFFLE, PIXEL_UNSHUFFLE: one COPY
 * over the op's 6-D view (layout_view.h); vk_supports_op checked that the
 * view's strides fit the descriptor's 32-bit words. */
static sdrt_status vk_op_layout(vk_stream *s, const sdrt_op *op, const vk_ref *a, const vk_ref *y) {
    devview lv;
    if (devview_layout(op, &lv) != 0) return SDRT_INVALID_ARGUMENT;
    vk_view vx, vy;
    for (int d = 0; d < 6; d++) {
        vx.ne[d] = vy.ne[d] = lv.ne[d];
        vx.nb[d] = lv.xs[d];
        vy.nb[d] = lv.ys[d];
    }
    return vk_ew(s, op, EW_COPY, 1.0f, a, &vx, NULL, NULL, y, &vy);
}

/* ---- reductions ------------------------------------------------------------------ */

static sdrt_status vk_op_row(vk_stream *s, const sdrt_op *op, const vk_ref *r) {
    const sdrt_tensor *x = op->src[0], *t = op->dst;
    if (!vk_same_shape(x, t) || x->ndim < 1) return SDRT_INVALID_ARGUMENT;
    vk_dispatch ds;
    vk_dispatch_init(&ds, VK_K_row, op);
    vk_view v;
    vk_view_of(x, &v);
    vk_put(&ds, 0, &r[0], &v);
    int64_t n = x->shape[x->ndim - 1];
    int ln = op->kind == SDRT_OP_LAYER_NORM;
    for (int i = 1; ln && i <= 2; i++) {
        const sdrt_tensor *p = op->src[i];
        if (!p) continue;
        if (vk_numel(p) != n) return SDRT_INVALID_ARGUMENT;
        vk_view vp;
        vk_view_of(p, &vp);
        /* gamma/beta of any rank with n elements: walk them contiguously */
        if (p->ndim != 1) vp.nb[5] = 1;
        vp.ne[5] = n;
        for (int d = 0; d < 5; d++) vp.ne[d] = 1, vp.nb[d] = 0;
        vk_put(&ds, i, &r[i], &vp);
        ds.words[96 + 1 + i] = 1;
    }
    vk_view_of(t, &v);
    vk_put(&ds, 4, &r[4], &v);
    ds.words[96] = ln ? 1 : 0;
    uint64_t rows = n ? (uint64_t)(vk_numel(x) / n) : 0;
    ds.words[97] = (uint32_t)rows;
    vk_groups_1d(&ds, rows);
    return vk_stream_dispatch(s, &ds);
}

static sdrt_status vk_op_groupnorm(vk_stream *s, const sdrt_op *op, const vk_ref *r) {
    const sdrt_tensor *x = op->src[0], *t = op->dst;
    if (!vk_same_shape(x, t) || x->ndim < 2) return SDRT_INVALID_ARGUMENT;
    int64_t groups = op->iparams[0] > 0 ? op->iparams[0] : 32, c = x->shape[1];
    if (c % groups) return SDRT_INVALID_ARGUMENT;
    vk_dispatch ds;
    vk_dispatch_init(&ds, VK_K_groupnorm, op);
    vk_view v;
    vk_view_of(x, &v);
    vk_put(&ds, 0, &r[0], &v);
    for (int i = 1; i <= 2; i++) {
        const sdrt_tensor *p = op->src[i];
        if (!p) continue;
        if (vk_numel(p) != c) return SDRT_INVALID_ARGUMENT;
        vk_view vp;
        vk_view_of(p, &vp);
        if (p->ndim != 1) vp.nb[5] = 1;
        vp.ne[5] = c;
        for (int d = 0; d < 5; d++) vp.ne[d] = 1, vp.nb[d] = 0;
        vk_put(&ds, i, &r[i], &vp);
        ds.words[96 + 1 + i] = 1;
    }
    vk_view_of(t, &v);
    vk_put(&ds, 4, &r[4], &v);
    int64_t n = x->shape[0], sp = c && n ? vk_numel(x) / (n * c) : 0;
    ds.words[96] = (uint32_t)groups;
    ds.words[100] = (uint32_t)c;
    ds.words[101] = (uint32_t)sp;
    ds.words[102] = (uint32_t)(8 - x->ndim); /* first spatial dim of the 6-D view */
    if (sp == 0) return SDRT_OK;
    ds.groups[0] = (uint32_t)(n * groups);
    return vk_stream_dispatch(s, &ds);
}

static sdrt_status vk_op_timestep(vk_stream *s, const sdrt_op *op, const vk_ref *r) {
    const sdrt_tensor *x = op->src[0], *t = op->dst;
    int64_t dim = op->iparams[0];
    if (x->ndim != 1 || t->ndim != 2 || dim <= 0 || t->shape[0] != x->shape[0] || t->shape[1] != dim)
        return SDRT_INVALID_ARGUMENT;
    vk_dispatch ds;
    vk_dispatch_init(&ds, VK_K_timestep, op);
    vk_view v;
    vk_view_of(x, &v);
    vk_put(&ds, 0, &r[0], &v);
    vk_view_of(t, &v);
    vk_put(&ds, 4, &r[4], &v);
    ds.groups[0] = (uint32_t)((dim / 2 + 1 + 63) / 64);
    ds.groups[1] = (uint32_t)x->shape[0];
    return vk_stream_dispatch(s, &ds);
}

/* ---- GEMM family ------------------------------------------------------------------- */

static sdrt_status vk_op_matmul(vk_stream *s, const sdrt_op *op, const vk_ref *r) {
    const sdrt_tensor *a = op->src[0], *b = op->src[1], *bias = op->src[2], *c = op->dst;
    int trans = op->iparams[0] == 1;
    if (a->ndim < 2 || b->ndim < 2 || c->ndim < 2 || c->ndim != (a->ndim > b->ndim ? a->ndim : b->ndim))
        return SDRT_INVALID_ARGUMENT;
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t bk = b->shape[b->ndim - (trans ? 1 : 2)], N = b->shape[b->ndim - (trans ? 2 : 1)];
    if (bk != K || c->shape[c->ndim - 2] != M || c->shape[c->ndim - 1] != N) return SDRT_INVALID_ARGUMENT;
    if (bias && vk_numel(bias) != N) return SDRT_INVALID_ARGUMENT;
    vk_view va, vb, vc;
    vk_view_of(a, &va);
    vk_view_of(b, &vb);
    vk_view_of(c, &vc);
    uint64_t batch = 1;
    for (int d = 0; d < 4; d++) {
        batch *= (uint64_t)vc.ne[d];
        vk_view *vs[2] = {&va, &vb};
        for (int i = 0; i < 2; i++) {
            if (vs[i]->ne[d] == vc.ne[d]) continue;
            if (vs[i]->ne[d] != 1) return SDRT_INVALID_ARGUMENT;
            vs[i]->ne[d] = vc.ne[d];
            vs[i]->nb[d] = 0;
        }
    }
    if (batch > 65535) return SDRT_UNSUPPORTED; /* supports_op refuses it too */
    if (trans) { /* [.., N, K] read as (k, n) */
        int64_t t = vb.nb[4];
        vb.nb[4] = vb.nb[5];
        vb.nb[5] = t;
        vb.ne[4] = K;
        vb.ne[5] = N;
    }
    vk_dispatch ds;
    vk_dispatch_init(&ds, s->d->cpu_like ? VK_K_matmul_direct : VK_K_matmul, op);
    vk_put(&ds, 0, &r[0], &va);
    vk_put(&ds, 1, &r[1], &vb);
    if (bias) {
        vk_view vz;
        vk_view_of(bias, &vz);
        if (bias->ndim != 1) vz.nb[5] = 1;
        for (int d = 0; d < 5; d++) vz.ne[d] = 1, vz.nb[d] = 0;
        vz.ne[5] = N;
        vk_put(&ds, 2, &r[2], &vz);
    }
    vk_put(&ds, 4, &r[4], &vc);
    ds.words[96] = (uint32_t)M;
    ds.words[97] = (uint32_t)N;
    ds.words[98] = (uint32_t)K;
    ds.words[99] = bias != NULL;
    ds.words[100] = va.nb[5] == 1;
    ds.words[101] = vb.nb[4] == 1;
    vk_xf(&ds, 6, op->fparams[0] != 0.0f ? op->fparams[0] : 1.0f);
    ds.groups[0] = (uint32_t)((N + 63) / 64);
    ds.groups[1] = (uint32_t)((M + 63) / 64);
    ds.groups[2] = (uint32_t)batch;
    if (M == 0 || N == 0) return SDRT_OK;
    return vk_stream_dispatch(s, &ds);
}

static int64_t vk_conv_out(int64_t in, int64_t k, int64_t st, int64_t p, int64_t dl) {
    return (in + 2 * p - dl * (k - 1) - 1) / st + 1;
}

static sdrt_status vk_op_conv2d(vk_stream *s, const sdrt_op *op, const vk_ref *r) {
    const sdrt_tensor *x = op->src[0], *w = op->src[1], *bias = op->src[2], *y = op->dst;
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4) return SDRT_INVALID_ARGUMENT;
    const int32_t *ip = op->iparams;
    int64_t sh = ip[0] > 0 ? ip[0] : 1, sw = ip[1] > 0 ? ip[1] : 1, ph = ip[2], pw = ip[3];
    int64_t dh = ip[4] > 0 ? ip[4] : 1, dw = ip[5] > 0 ? ip[5] : 1, g = ip[6] > 0 ? ip[6] : 1;
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t o = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    if (ph < 0 || pw < 0 || c % g || o % g || w->shape[1] != c / g) return SDRT_INVALID_ARGUMENT;
    int64_t ho = vk_conv_out(h, kh, sh, ph, dh), wo = vk_conv_out(wd, kw, sw, pw, dw);
    if (ho <= 0 || wo <= 0 || y->shape[0] != n || y->shape[1] != o || y->shape[2] != ho || y->shape[3] != wo)
        return SDRT_INVALID_ARGUMENT;
    if (bias && vk_numel(bias) != o) return SDRT_INVALID_ARGUMENT;
    if (n * g > 65535) return SDRT_UNSUPPORTED;
    vk_dispatch ds;
    vk_dispatch_init(&ds, s->d->cpu_like ? VK_K_conv2d_direct : VK_K_conv2d, op);
    vk_view v;
    vk_view_of(x, &v);
    vk_put(&ds, 0, &r[0], &v);
    vk_view_of(w, &v);
    vk_put(&ds, 1, &r[1], &v);
    if (bias) {
        vk_view_of(bias, &v);
        if (bias->ndim != 1) v.nb[5] = 1;
        for (int d = 0; d < 5; d++) v.ne[d] = 1, v.nb[d] = 0;
        v.ne[5] = o;
        vk_put(&ds, 2, &r[2], &v);
    }
    vk_view_of(y, &v);
    vk_put(&ds, 4, &r[4], &v);
    uint32_t *e = ds.words + 96;
    e[0] = (uint32_t)(o / g);
    e[1] = (uint32_t)(ho * wo);
    e[2] = (uint32_t)(c / g * kh * kw);
    e[3] = bias != NULL;
    e[4] = (uint32_t)g;
    e[5] = (uint32_t)kh, e[6] = (uint32_t)kw, e[7] = (uint32_t)sh, e[8] = (uint32_t)sw;
    e[9] = (uint32_t)ph, e[10] = (uint32_t)pw, e[11] = (uint32_t)dh, e[12] = (uint32_t)dw;
    e[13] = (uint32_t)h, e[14] = (uint32_t)wd, e[15] = (uint32_t)wo;
    ds.groups[0] = (uint32_t)((ho * wo + 63) / 64);
    ds.groups[1] = (uint32_t)((o / g + 63) / 64);
    ds.groups[2] = (uint32_t)(n * g);
    return vk_stream_dispatch(s, &ds);
}

#define VK_ATTN_DMAX 512

static sdrt_status vk_op_attention(vk_stream *s, const sdrt_op *op, const vk_ref *r) {
    const sdrt_tensor *q = op->src[0], *k = op->src[1], *v = op->src[2], *o = op->dst;
    if (!k || !v || q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || o->ndim != 4) return SDRT_INVALID_ARGUMENT;
    int64_t B = q->shape[0], H = q->shape[1], Lq = q->shape[2], D = q->shape[3], Lk = k->shape[2], Dv = v->shape[3];
    if (k->shape[0] != B || k->shape[1] != H || k->shape[3] != D || v->shape[0] != B || v->shape[1] != H ||
        v->shape[2] != Lk || o->shape[0] != B || o->shape[1] != H || o->shape[2] != Lq || o->shape[3] != Dv)
        return SDRT_INVALID_ARGUMENT;
    if (B * H * Lq * Dv == 0) return SDRT_OK;
    if (Lk == 0) return SDRT_INVALID_ARGUMENT;
    if (D > VK_ATTN_DMAX || Dv > VK_ATTN_DMAX || B > 65535 || H > 65535) return SDRT_UNSUPPORTED;
    vk_dispatch ds;
    vk_dispatch_init(&ds, VK_K_attention, op);
    const sdrt_tensor *ts[3] = {q, k, v};
    vk_view vw;
    for (int i = 0; i < 3; i++) {
        vk_view_of(ts[i], &vw);
        vk_put(&ds, i, &r[i], &vw);
    }
    vk_view_of(o, &vw);
    vk_put(&ds, 4, &r[4], &vw);
    ds.words[96] = (uint32_t)Lq;
    ds.words[97] = (uint32_t)Lk;
    ds.words[98] = (uint32_t)D;
    ds.words[99] = (uint32_t)Dv;
    ds.words[100] = op->iparams[0] == 1;
    vk_xf(&ds, 5, op->fparams[0] != 0.0f ? op->fparams[0] : (float)(1.0 / sqrt((double)D)));
    ds.groups[0] = (uint32_t)((Lq + 7) / 8);
    ds.groups[1] = (uint32_t)H;
    ds.groups[2] = (uint32_t)B;
    return vk_stream_dispatch(s, &ds);
}

/* ---- entry ---------------------------------------------------------------------- */

sdrt_status vk_op_record(vk_stream *s, const sdrt_op *op) {
    if (!vk_supports_op(s->d, op)) return SDRT_UNSUPPORTED;
    vk_ref r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++) {
        if (!op->src[i]) continue;
        sdrt_status st = vk_resolve(s, op->src[i], &r[i]);
        if (st != SDRT_OK) return st;
    }
    sdrt_status st = vk_resolve(s, op->dst, &r[4]);
    if (st != SDRT_OK) return st;
    switch (op->kind) {
    case SDRT_OP_MATMUL: return vk_op_matmul(s, op, r);
    case SDRT_OP_CONV2D: return vk_op_conv2d(s, op, r);
    case SDRT_OP_GROUP_NORM: return vk_op_groupnorm(s, op, r);
    case SDRT_OP_LAYER_NORM:
    case SDRT_OP_SOFTMAX: return vk_op_row(s, op, r);
    case SDRT_OP_ATTENTION: return vk_op_attention(s, op, r);
    case SDRT_OP_GEGLU: return vk_op_geglu(s, op, &r[0], &r[4]);
    case SDRT_OP_ADD:
    case SDRT_OP_MUL: return vk_op_binary(s, op, &r[0], &r[1], &r[4]);
    case SDRT_OP_CONCAT: return vk_op_concat(s, op, &r[0], &r[1], &r[4]);
    case SDRT_OP_PRELU: return vk_op_prelu(s, op, &r[0], &r[1], &r[4]);
    case SDRT_OP_UPSAMPLE2X:
    case SDRT_OP_UPSAMPLE_NEAREST:
    case SDRT_OP_PIXEL_SHUFFLE:
    case SDRT_OP_PIXEL_UNSHUFFLE: return vk_op_layout(s, op, &r[0], &r[4]);
    case SDRT_OP_TIMESTEP_EMB: return vk_op_timestep(s, op, r);
    default: return vk_op_unary(s, op, &r[0], &r[4]);
    }
}
