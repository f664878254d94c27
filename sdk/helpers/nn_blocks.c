/* sdk/helpers/nn_blocks.c - sdrt/nn_blocks.h: weight binding by name and
 * the diffusers / transformers network blocks over sdrt/nn.h.
 *
 * nn errors are sticky: once an op fails every later op returns NULL, so a
 * block runs on and only guards views (which would dereference a NULL
 * tensor). The op order, and so the numerics, is that of the UNet, VAE and
 * CLIP code this replaced; drops follow each tensor's last use. */
#include "sdrt/nn_blocks.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory ------------------------------------------------------------- */

struct sdrt_blk_mem {
    sdrt_blk_mem *next;
    max_align_t data[]; /* the allocation */
};

void sdrt_blk_mem_free(sdrt_blk_mem *mem) {
    while (mem) {
        sdrt_blk_mem *next = mem->next;
        free(mem);
        mem = next;
    }
}

/* ---- loader ------------------------------------------------------------- */

void sdrt_blk_loader_init(sdrt_blk_loader *L, const char *model, sdrt_blk_lookup_fn get, void *ctx,
                          sdrt_blk_mem **mem) {
    memset(L, 0, sizeof *L);
    L->get = get;
    L->ctx = ctx;
    L->model = model ? model : "model";
    L->mem = mem;
    L->status = SDRT_OK;
}

void sdrt_blk_fail(sdrt_blk_loader *L, sdrt_status st, const char *fmt, ...) {
    if (L->status != SDRT_OK) return;
    L->status = st;
    int n = snprintf(L->message, sizeof L->message, "%s ", L->model);
    if (n < 0 || (size_t)n >= sizeof L->message) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->message + n, sizeof L->message - (size_t)n, fmt, ap);
    va_end(ap);
}

void *sdrt_blk_alloc(sdrt_blk_loader *L, size_t size) {
    if (L->status != SDRT_OK) return NULL;
    sdrt_blk_mem *m = calloc(1, sizeof *m + (size ? size : 1));
    if (!m) {
        sdrt_blk_fail(L, SDRT_RESOURCE_EXHAUSTED, "weights: out of memory");
        return NULL;
    }
    m->next = *L->mem;
    *L->mem = m;
    return m->data;
}

void sdrt_blk_name(char *out, const char *prefix, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(out, SDRT_BLK_NAME, "%s%s", prefix, *prefix ? "." : "");
    if (n < 0 || n >= SDRT_BLK_NAME) return; /* cut: fails as a missing weight */
    va_start(ap, fmt);
    vsnprintf(out + n, (size_t)(SDRT_BLK_NAME - n), fmt, ap);
    va_end(ap);
}

static void shape_text(char *out, size_t n, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(out + used, n - used, "]");
}

static int is_float_dtype(sdrt_dtype d) {
    return d == SDRT_DTYPE_F32 || d == SDRT_DTYPE_F16 || d == SDRT_DTYPE_BF16;
}

/* The tensor `name`, or NULL (NOT_FOUND recorded when required). */
static const sdrt_tensor *lookup(sdrt_blk_loader *L, const char *name, int required) {
    if (L->status != SDRT_OK) return NULL;
    const sdrt_tensor *t = L->get(L->ctx, name);
    if (!t && required) sdrt_blk_fail(L, SDRT_NOT_FOUND, "weight %s: missing from the model", name);
    return t;
}

static int check(sdrt_blk_loader *L, const sdrt_tensor *t, const char *name, int ndim, const int64_t *shape) {
    if (!is_float_dtype(t->dtype)) {
        sdrt_blk_fail(L, SDRT_INVALID_ARGUMENT, "weight %s: dtype is not f32, f16 or bf16", name);
        return 0;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (same) return 1;
    char want[96], got[96];
    shape_text(want, sizeof want, ndim, shape);
    shape_text(got, sizeof got, t->ndim, t->shape);
    sdrt_blk_fail(L, SDRT_INVALID_ARGUMENT, "weight %s: shape %s, expected %s from the config", name, got, want);
    return 0;
}

const sdrt_tensor *sdrt_blk_bind_weight(sdrt_blk_loader *L, const char *prefix, const char *leaf, int ndim,
                                        const int64_t *shape) {
    char name[SDRT_BLK_NAME];
    sdrt_blk_name(name, prefix, "%s", leaf);
    const sdrt_tensor *t = lookup(L, name, 1);
    return t && check(L, t, name, ndim, shape) ? t : NULL;
}

/* The one conversion of parameters: the element-wise ops (bias, norm scale
 * and shift) take f32 operands, and converting these vectors once at bind
 * time costs nothing next to the matrices, which stay as stored. Delete
 * this when the backends take f16/bf16 parameters. */
const sdrt_tensor *sdrt_blk_bind_param(sdrt_blk_loader *L, const char *prefix, const char *leaf, int64_t n,
                                       int required) {
    char name[SDRT_BLK_NAME];
    sdrt_blk_name(name, prefix, "%s", leaf);
    const sdrt_tensor *t = lookup(L, name, required);
    if (!t || !check(L, t, name, 1, &n)) return NULL;
    if (t->dtype == SDRT_DTYPE_F32 && t->strides[0] == 1) return t;
    sdrt_tensor *c = sdrt_blk_alloc(L, sizeof *c + (size_t)n * sizeof(float));
    if (!c) return NULL;
    float *data = (float *)(void *)(c + 1);
    sdrt_nn_param_to_f32(t, data); /* 1-D float: checked above */
    *c = (sdrt_tensor){.struct_size = sizeof(sdrt_tensor), .dtype = SDRT_DTYPE_F32, .ndim = 1,
                       .shape = {n, 1, 1, 1, 1, 1}, .strides = {1}, .data = data};
    return c;
}

/* A contiguous 1x1 conv weight [out, in, 1, 1] as a linear weight [out, in]. */
static const sdrt_tensor *conv1x1_as_matrix(sdrt_blk_loader *L, const sdrt_tensor *w, const char *name) {
    if (w->strides[1] != w->shape[2] * w->shape[3] || w->strides[0] != w->shape[1] * w->strides[1]) {
        sdrt_blk_fail(L, SDRT_INVALID_ARGUMENT, "weight %s: 1x1 conv weight is not contiguous", name);
        return NULL;
    }
    sdrt_tensor *v = sdrt_blk_alloc(L, sizeof *v);
    if (!v) return NULL;
    *v = *w;
    v->ndim = 2;
    v->shape[2] = v->shape[3] = 1;
    v->strides[0] = w->shape[1];
    v->strides[1] = 1;
    v->strides[2] = v->strides[3] = 0;
    return v;
}

sdrt_blk_linear sdrt_blk_bind_linear(sdrt_blk_loader *L, const char *prefix, int64_t out, int64_t in, int bias,
                                     int shapes) {
    sdrt_blk_linear l = {0};
    char name[SDRT_BLK_NAME];
    sdrt_blk_name(name, prefix, "weight");
    const sdrt_tensor *w = lookup(L, name, 1);
    if (w) {
        int as_conv = (shapes & SDRT_BLK_LINEAR_CONV1X1) && (!(shapes & SDRT_BLK_LINEAR_2D) || w->ndim == 4);
        int64_t shape[4] = {out, in, 1, 1};
        if (!check(L, w, name, as_conv ? 4 : 2, shape)) w = NULL;
        l.w = w && as_conv ? conv1x1_as_matrix(L, w, name) : w;
    }
    if (bias != SDRT_BLK_BIAS_NONE) l.b = sdrt_blk_bind_param(L, prefix, "bias", out, bias == SDRT_BLK_BIAS_REQUIRED);
    return l;
}

sdrt_blk_conv sdrt_blk_bind_conv(sdrt_blk_loader *L, const char *prefix, int64_t out, int64_t in, int k,
                                 int stride, int pad) {
    sdrt_blk_conv c = {0};
    int64_t shape[4] = {out, in, k, k};
    c.w = sdrt_blk_bind_weight(L, prefix, "weight", 4, shape);
    c.b = sdrt_blk_bind_param(L, prefix, "bias", out, 1);
    c.stride = stride;
    c.pad = pad;
    return c;
}

sdrt_blk_norm sdrt_blk_bind_norm(sdrt_blk_loader *L, const char *prefix, int64_t c, int groups, float eps) {
    sdrt_blk_norm n = {0};
    n.g = sdrt_blk_bind_param(L, prefix, "weight", c, 1);
    n.b = sdrt_blk_bind_param(L, prefix, "bias", c, 1);
    n.groups = groups;
    n.eps = eps;
    if (groups > 0 && c % groups != 0)
        sdrt_blk_fail(L, SDRT_INVALID_ARGUMENT, "%s: %lld channels are not a multiple of norm_num_groups %d",
                      prefix, (long long)c, groups);
    return n;
}

/* ---- layers --------------------------------------------------------------- */

/* The operand of a weight: obtained at every use, so the nn layer decides
 * where weights live. */
static const sdrt_tensor *wt(sdrt_nn *nn, const sdrt_tensor *w) {
    return w ? sdrt_nn_weight(nn, w) : NULL;
}

sdrt_tensor *sdrt_blk_linear_fwd(sdrt_nn *nn, const sdrt_blk_linear *l, const sdrt_tensor *x) {
    return sdrt_nn_linear(nn, x, wt(nn, l->w), wt(nn, l->b));
}

sdrt_tensor *sdrt_blk_conv_fwd(sdrt_nn *nn, const sdrt_blk_conv *c, const sdrt_tensor *x) {
    return sdrt_nn_conv2d(nn, x, wt(nn, c->w), wt(nn, c->b), c->stride, c->pad);
}

sdrt_tensor *sdrt_blk_norm_fwd(sdrt_nn *nn, const sdrt_blk_norm *n, const sdrt_tensor *x, int silu) {
    if (n->groups > 0) return sdrt_nn_group_norm(nn, x, wt(nn, n->g), wt(nn, n->b), n->groups, n->eps, silu);
    return sdrt_nn_layer_norm(nn, x, wt(nn, n->g), wt(nn, n->b), n->eps);
}

/* x + y, dropping y. */
static sdrt_tensor *add_drop(sdrt_nn *nn, const sdrt_tensor *x, sdrt_tensor *y) {
    sdrt_tensor *r = sdrt_nn_add(nn, x, y);
    sdrt_nn_drop(nn, y);
    return r;
}

/* ---- ResnetBlock2D ---------------------------------------------------------- */

void sdrt_blk_bind_resnet(sdrt_blk_loader *L, const char *prefix, sdrt_blk_resnet *r, int cin, int cout,
                          int temb_dim, int groups, float eps, float out_scale) {
    char p[SDRT_BLK_NAME];
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    r->out_scale = out_scale;
    sdrt_blk_name(p, prefix, "norm1");
    r->norm1 = sdrt_blk_bind_norm(L, p, cin, groups, eps);
    sdrt_blk_name(p, prefix, "conv1");
    r->conv1 = sdrt_blk_bind_conv(L, p, cout, cin, 3, 1, 1);
    if (temb_dim > 0) {
        sdrt_blk_name(p, prefix, "time_emb_proj");
        r->temb = sdrt_blk_bind_linear(L, p, cout, temb_dim, SDRT_BLK_BIAS_REQUIRED, SDRT_BLK_LINEAR_2D);
    }
    sdrt_blk_name(p, prefix, "norm2");
    r->norm2 = sdrt_blk_bind_norm(L, p, cout, groups, eps);
    sdrt_blk_name(p, prefix, "conv2");
    r->conv2 = sdrt_blk_bind_conv(L, p, cout, cout, 3, 1, 1);
    if (cin != cout) {
        sdrt_blk_name(p, prefix, "conv_shortcut");
        r->shortcut = sdrt_blk_bind_conv(L, p, cout, cin, 1, 1, 0);
    }
}

/* h + time_emb_proj(temb_act) broadcast over H, W; drops h. */
static sdrt_tensor *add_temb(sdrt_nn *nn, const sdrt_blk_resnet *r, sdrt_tensor *h, const sdrt_tensor *temb_act) {
    sdrt_tensor *t = sdrt_blk_linear_fwd(nn, &r->temb, temb_act);
    if (!t || !h) {
        sdrt_nn_drop(nn, t);
        sdrt_nn_drop(nn, h);
        return NULL;
    }
    int64_t tshape[4] = {t->shape[0], t->shape[1], 1, 1};
    sdrt_tensor tv = sdrt_nn_view_reshape(t, 4, tshape);
    sdrt_tensor *s = sdrt_nn_add(nn, h, &tv);
    sdrt_nn_drop(nn, t);
    sdrt_nn_drop(nn, h);
    return s;
}

sdrt_tensor *sdrt_blk_resnet_fwd(sdrt_nn *nn, const sdrt_blk_resnet *r, const sdrt_tensor *x,
                                 const sdrt_tensor *temb_act) {
    sdrt_tensor *h = sdrt_blk_norm_fwd(nn, &r->norm1, x, 1);
    sdrt_tensor *h1 = sdrt_blk_conv_fwd(nn, &r->conv1, h);
    sdrt_nn_drop(nn, h);
    if (r->temb.w && temb_act) {
        h1 = add_temb(nn, r, h1, temb_act);
        if (!h1) return NULL;
    }
    h = sdrt_blk_norm_fwd(nn, &r->norm2, h1, 1);
    sdrt_nn_drop(nn, h1);
    h1 = sdrt_blk_conv_fwd(nn, &r->conv2, h);
    sdrt_nn_drop(nn, h);
    sdrt_tensor *sc = r->shortcut.w ? sdrt_blk_conv_fwd(nn, &r->shortcut, x) : NULL;
    sdrt_tensor *out = h1 ? add_drop(nn, sc ? sc : x, h1) : NULL;
    sdrt_nn_drop(nn, sc);
    if (!out || r->out_scale == 1.0f) return out;
    sdrt_tensor *scaled = sdrt_nn_scale(nn, out, 1.0f / r->out_scale, 0.0f);
    sdrt_nn_drop(nn, out);
    return scaled;
}

/* ---- Attention ----------------------------------------------------------------- */

const sdrt_blk_attn_names sdrt_blk_diffusers_attn = {"to_q", "to_k", "to_v", "to_out.0"};
const sdrt_blk_attn_names sdrt_blk_clip_attn = {"q_proj", "k_proj", "v_proj", "out_proj"};

void sdrt_blk_bind_attn(sdrt_blk_loader *L, const char *prefix, const sdrt_blk_attn_names *names,
                        sdrt_blk_attn *a, int64_t dim, int64_t kv_dim, int heads, int qkv_bias,
                        int linear_shapes) {
    char p[SDRT_BLK_NAME];
    memset(a, 0, sizeof *a);
    a->heads = heads > 0 ? heads : 1;
    a->head_dim = (int)(dim / a->heads);
    if (dim % a->heads != 0)
        sdrt_blk_fail(L, SDRT_INVALID_ARGUMENT, "%s: width %lld is not a multiple of %d heads", prefix,
                      (long long)dim, a->heads);
    sdrt_blk_name(p, prefix, "%s", names->q);
    a->q = sdrt_blk_bind_linear(L, p, dim, dim, qkv_bias, linear_shapes);
    sdrt_blk_name(p, prefix, "%s", names->k);
    a->k = sdrt_blk_bind_linear(L, p, dim, kv_dim, qkv_bias, linear_shapes);
    sdrt_blk_name(p, prefix, "%s", names->v);
    a->v = sdrt_blk_bind_linear(L, p, dim, kv_dim, qkv_bias, linear_shapes);
    sdrt_blk_name(p, prefix, "%s", names->out);
    a->out = sdrt_blk_bind_linear(L, p, dim, dim, SDRT_BLK_BIAS_REQUIRED, linear_shapes);
}

/* [B, L, H*D] contiguous -> a [B, H, L, D] view of the same memory. */
static sdrt_tensor heads_view(const sdrt_tensor *t, int heads) {
    int64_t shape[4] = {t->shape[0], t->shape[1], heads, t->shape[2] / heads};
    static const int perm[4] = {0, 2, 1, 3};
    sdrt_tensor r = sdrt_nn_view_reshape(t, 4, shape);
    return sdrt_nn_view_permute(&r, perm);
}

/* [B, H, L, D] -> contiguous [B, L, H*D]; drops o. One head is a reshape. */
static sdrt_tensor *merge_heads(sdrt_nn *nn, sdrt_tensor *o) {
    static const int perm[4] = {0, 2, 1, 3};
    if (!o) return NULL;
    int64_t shape[3] = {o->shape[0], o->shape[2], o->shape[1] * o->shape[3]};
    if (o->shape[1] == 1) {
        *o = sdrt_nn_view_reshape(o, 3, shape);
        return o;
    }
    sdrt_tensor ov = sdrt_nn_view_permute(o, perm);
    sdrt_tensor *c = sdrt_nn_copy(nn, &ov, SDRT_DTYPE_F32);
    sdrt_nn_drop(nn, o);
    if (!c) return NULL;
    *c = sdrt_nn_view_reshape(c, 3, shape);
    return c;
}

/* out(attention(q(x), k(kv), v(kv))) on tokens; `dead` (may be NULL) is
 * dropped as soon as the projections no longer need it. */
static sdrt_tensor *attn_core(sdrt_nn *nn, const sdrt_blk_attn *a, const sdrt_tensor *x, const sdrt_tensor *kv,
                              sdrt_tensor *dead) {
    sdrt_tensor *q = sdrt_blk_linear_fwd(nn, &a->q, x);
    sdrt_tensor *k = sdrt_blk_linear_fwd(nn, &a->k, kv);
    sdrt_tensor *v = sdrt_blk_linear_fwd(nn, &a->v, kv);
    sdrt_nn_drop(nn, dead);
    sdrt_tensor *o = NULL;
    if (q && k && v) {
        sdrt_tensor qh = heads_view(q, a->heads), kh = heads_view(k, a->heads), vh = heads_view(v, a->heads);
        o = sdrt_nn_attention(nn, &qh, &kh, &vh, a->scale, a->causal);
    }
    sdrt_nn_drop(nn, q);
    sdrt_nn_drop(nn, k);
    sdrt_nn_drop(nn, v);
    sdrt_tensor *m = merge_heads(nn, o);
    sdrt_tensor *out = sdrt_blk_linear_fwd(nn, &a->out, m);
    sdrt_nn_drop(nn, m);
    return out;
}

/* Attention over the H*W positions of x [B, C, H, W]: the tokens are a
 * strided view of (group-normed) x, the result goes back to [B, C, H, W]. */
static sdrt_tensor *attn_spatial(sdrt_nn *nn, const sdrt_blk_attn *a, const sdrt_tensor *x,
                                 const sdrt_tensor *context) {
    int64_t n = x->shape[0], c = x->shape[1], hh = x->shape[2], ww = x->shape[3];
    static const int perm[3] = {0, 2, 1};
    sdrt_tensor *h = a->group_norm.g ? sdrt_blk_norm_fwd(nn, &a->group_norm, x, 0) : NULL;
    if (a->group_norm.g && !h) return NULL;
    int64_t ncl[3] = {n, c, hh * ww};
    sdrt_tensor flat = sdrt_nn_view_reshape(h ? h : x, 3, ncl);
    sdrt_tensor seq = sdrt_nn_view_permute(&flat, perm); /* [N, L, C] strided */
    sdrt_tensor *o = attn_core(nn, a, &seq, a->cross ? context : &seq, h);
    if (!o) return NULL;
    sdrt_tensor ot = sdrt_nn_view_permute(o, perm); /* [N, C, L] strided */
    sdrt_tensor *oc = sdrt_nn_copy(nn, &ot, SDRT_DTYPE_F32);
    sdrt_nn_drop(nn, o);
    if (!oc) return NULL;
    int64_t nchw[4] = {n, oc->shape[1], hh, ww};
    *oc = sdrt_nn_view_reshape(oc, 4, nchw);
    return oc;
}

sdrt_tensor *sdrt_blk_attn_fwd(sdrt_nn *nn, const sdrt_blk_attn *a, const sdrt_tensor *x,
                               const sdrt_tensor *context) {
    if (!x) return NULL;
    sdrt_tensor *y = x->ndim == 4 ? attn_spatial(nn, a, x, context)
                                  : attn_core(nn, a, x, a->cross ? context : x, NULL);
    return a->residual && y ? add_drop(nn, x, y) : y;
}

/* ---- BasicTransformerBlock / Transformer2DModel ---------------------------------- */

void sdrt_blk_bind_tblock(sdrt_blk_loader *L, const char *prefix, sdrt_blk_tblock *t, int64_t dim, int heads,
                          int cross_dim, int only_cross) {
    char p[SDRT_BLK_NAME];
    sdrt_blk_name(p, prefix, "norm1");
    t->norm1 = sdrt_blk_bind_norm(L, p, dim, 0, 1e-5f);
    sdrt_blk_name(p, prefix, "attn1");
    sdrt_blk_bind_attn(L, p, &sdrt_blk_diffusers_attn, &t->attn1, dim, only_cross ? cross_dim : dim, heads,
                       SDRT_BLK_BIAS_OPTIONAL, SDRT_BLK_LINEAR_2D);
    t->attn1.cross = only_cross;
    sdrt_blk_name(p, prefix, "norm2");
    t->norm2 = sdrt_blk_bind_norm(L, p, dim, 0, 1e-5f);
    sdrt_blk_name(p, prefix, "attn2");
    sdrt_blk_bind_attn(L, p, &sdrt_blk_diffusers_attn, &t->attn2, dim, cross_dim, heads, SDRT_BLK_BIAS_OPTIONAL,
                       SDRT_BLK_LINEAR_2D);
    t->attn2.cross = 1;
    sdrt_blk_name(p, prefix, "norm3");
    t->norm3 = sdrt_blk_bind_norm(L, p, dim, 0, 1e-5f);
    sdrt_blk_name(p, prefix, "ff.net.0.proj");
    t->ff_in = sdrt_blk_bind_linear(L, p, dim * 8, dim, SDRT_BLK_BIAS_REQUIRED, SDRT_BLK_LINEAR_2D);
    sdrt_blk_name(p, prefix, "ff.net.2");
    t->ff_out = sdrt_blk_bind_linear(L, p, dim, dim * 4, SDRT_BLK_BIAS_REQUIRED, SDRT_BLK_LINEAR_2D);
}

/* h + attn(norm(h)); the caller keeps h. */
static sdrt_tensor *attn_residual(sdrt_nn *nn, const sdrt_blk_norm *n, const sdrt_blk_attn *a,
                                  const sdrt_tensor *h, const sdrt_tensor *context) {
    sdrt_tensor *x = sdrt_blk_norm_fwd(nn, n, h, 0);
    sdrt_tensor *y = x ? attn_core(nn, a, x, a->cross ? context : x, NULL) : NULL;
    sdrt_nn_drop(nn, x);
    return add_drop(nn, h, y);
}

/* h + ff_out(geglu(ff_in(norm3(h)))). */
static sdrt_tensor *ff_residual(sdrt_nn *nn, const sdrt_blk_tblock *t, const sdrt_tensor *h) {
    sdrt_tensor *x = sdrt_blk_norm_fwd(nn, &t->norm3, h, 0);
    sdrt_tensor *p = sdrt_blk_linear_fwd(nn, &t->ff_in, x);
    sdrt_nn_drop(nn, x);
    sdrt_tensor *g = sdrt_nn_geglu(nn, p);
    sdrt_nn_drop(nn, p);
    sdrt_tensor *y = sdrt_blk_linear_fwd(nn, &t->ff_out, g);
    sdrt_nn_drop(nn, g);
    return add_drop(nn, h, y);
}

sdrt_tensor *sdrt_blk_tblock_fwd(sdrt_nn *nn, const sdrt_blk_tblock *t, const sdrt_tensor *h,
                                 const sdrt_tensor *context) {
    sdrt_tensor *h1 = attn_residual(nn, &t->norm1, &t->attn1, h, context);
    sdrt_tensor *h2 = attn_residual(nn, &t->norm2, &t->attn2, h1, context);
    sdrt_nn_drop(nn, h1);
    sdrt_tensor *h3 = ff_residual(nn, t, h2);
    sdrt_nn_drop(nn, h2);
    return h3;
}

void sdrt_blk_bind_transformer(sdrt_blk_loader *L, const char *prefix, sdrt_blk_transformer *t, int64_t c,
                               int heads, int depth, int cross_dim, int only_cross, int groups,
                               int linear_proj) {
    char p[SDRT_BLK_NAME];
    int shapes = linear_proj ? SDRT_BLK_LINEAR_2D : SDRT_BLK_LINEAR_CONV1X1;
    memset(t, 0, sizeof *t);
    t->channels = (int)c;
    t->depth = depth;
    sdrt_blk_name(p, prefix, "norm");
    t->norm = sdrt_blk_bind_norm(L, p, c, groups, 1e-6f);
    sdrt_blk_name(p, prefix, "proj_in");
    t->proj_in = sdrt_blk_bind_linear(L, p, c, c, SDRT_BLK_BIAS_REQUIRED, shapes);
    sdrt_blk_name(p, prefix, "proj_out");
    t->proj_out = sdrt_blk_bind_linear(L, p, c, c, SDRT_BLK_BIAS_REQUIRED, shapes);
    t->blocks = depth > 0 ? sdrt_blk_alloc(L, (size_t)depth * sizeof *t->blocks) : NULL;
    for (int k = 0; t->blocks && k < depth; k++) {
        sdrt_blk_name(p, prefix, "transformer_blocks.%d", k);
        sdrt_blk_bind_tblock(L, p, &t->blocks[k], c, heads, cross_dim, only_cross);
    }
}

/* [B, C, H, W] -> contiguous [B, H*W, C] (the token layout). */
static sdrt_tensor *to_tokens(sdrt_nn *nn, const sdrt_tensor *x) {
    static const int perm[3] = {0, 2, 1};
    if (!x) return NULL;
    int64_t shape[3] = {x->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
    sdrt_tensor v = sdrt_nn_view_reshape(x, 3, shape);
    sdrt_tensor p = sdrt_nn_view_permute(&v, perm);
    return sdrt_nn_copy(nn, &p, SDRT_DTYPE_F32);
}

/* [B, H*W, C] -> contiguous [B, C, H, W]. */
static sdrt_tensor *from_tokens(sdrt_nn *nn, const sdrt_tensor *t, int64_t h, int64_t w) {
    static const int perm[3] = {0, 2, 1};
    if (!t) return NULL;
    sdrt_tensor p = sdrt_nn_view_permute(t, perm);
    sdrt_tensor *c = sdrt_nn_copy(nn, &p, SDRT_DTYPE_F32);
    if (!c) return NULL;
    int64_t shape[4] = {t->shape[0], t->shape[2], h, w};
    *c = sdrt_nn_view_reshape(c, 4, shape);
    return c;
}

sdrt_tensor *sdrt_blk_transformer_fwd(sdrt_nn *nn, const sdrt_blk_transformer *t, const sdrt_tensor *x,
                                      const sdrt_tensor *context) {
    if (!x) return NULL;
    sdrt_tensor *n = sdrt_blk_norm_fwd(nn, &t->norm, x, 0);
    sdrt_tensor *tok = to_tokens(nn, n);
    sdrt_nn_drop(nn, n);
    sdrt_tensor *h = sdrt_blk_linear_fwd(nn, &t->proj_in, tok);
    sdrt_nn_drop(nn, tok);
    for (int k = 0; k < t->depth && h; k++) {
        sdrt_tensor *next = sdrt_blk_tblock_fwd(nn, &t->blocks[k], h, context);
        sdrt_nn_drop(nn, h);
        h = next;
    }
    sdrt_tensor *o = sdrt_blk_linear_fwd(nn, &t->proj_out, h);
    sdrt_nn_drop(nn, h);
    sdrt_tensor *img = from_tokens(nn, o, x->shape[2], x->shape[3]);
    sdrt_nn_drop(nn, o);
    return add_drop(nn, x, img);
}

/* ---- TimestepEmbedding ---------------------------------------------------------- */

void sdrt_blk_bind_temb(sdrt_blk_loader *L, const char *prefix, sdrt_blk_temb *t, int64_t in, int64_t dim) {
    char p[SDRT_BLK_NAME];
    sdrt_blk_name(p, prefix, "linear_1");
    t->linear_1 = sdrt_blk_bind_linear(L, p, dim, in, SDRT_BLK_BIAS_REQUIRED, SDRT_BLK_LINEAR_2D);
    sdrt_blk_name(p, prefix, "linear_2");
    t->linear_2 = sdrt_blk_bind_linear(L, p, dim, dim, SDRT_BLK_BIAS_REQUIRED, SDRT_BLK_LINEAR_2D);
}

sdrt_tensor *sdrt_blk_temb_fwd(sdrt_nn *nn, const sdrt_blk_temb *t, const sdrt_tensor *x) {
    sdrt_tensor *a = sdrt_blk_linear_fwd(nn, &t->linear_1, x);
    sdrt_tensor *s = sdrt_nn_silu(nn, a);
    sdrt_nn_drop(nn, a);
    sdrt_tensor *b = sdrt_blk_linear_fwd(nn, &t->linear_2, s);
    sdrt_nn_drop(nn, s);
    return b;
}

/* ---- Downsample2D / Upsample2D ----------------------------------------------------- */

/* Zeros [n, c, h, w] on the device. */
static sdrt_tensor *zeros(sdrt_nn *nn, int64_t n, int64_t c, int64_t h, int64_t w) {
    int64_t shape[4] = {n, c, h, w};
    size_t count = (size_t)(n * c * h * w);
    float *buf = calloc(count ? count : 1, sizeof *buf);
    /* A failed calloc fails the context ("data is NULL"). */
    sdrt_tensor *t = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, shape, buf);
    free(buf);
    return t;
}

/* diffusers Downsample2D(padding=0) pads (0, 1, 0, 1) before the stride-2
 * conv: the one-sided pad shifts the sampling grid, so a symmetric pad-1
 * conv would give a different result. */
sdrt_tensor *sdrt_blk_downsample_fwd(sdrt_nn *nn, const sdrt_blk_conv *c, const sdrt_tensor *x) {
    if (c->pad != 0 || !x) return sdrt_blk_conv_fwd(nn, c, x);
    int64_t n = x->shape[0], ch = x->shape[1], h = x->shape[2], w = x->shape[3];
    sdrt_tensor *col = zeros(nn, n, ch, h, 1);
    sdrt_tensor *padded = col ? sdrt_nn_concat(nn, x, col, 3) : NULL;
    sdrt_nn_drop(nn, col);
    sdrt_tensor *row = padded ? zeros(nn, n, ch, 1, w + 1) : NULL;
    sdrt_tensor *both = row ? sdrt_nn_concat(nn, padded, row, 2) : NULL;
    sdrt_nn_drop(nn, padded);
    sdrt_nn_drop(nn, row);
    sdrt_tensor *out = both ? sdrt_blk_conv_fwd(nn, c, both) : NULL;
    sdrt_nn_drop(nn, both);
    return out;
}

/* Nearest interpolation to out = 2n - 1 picks source floor(i * n / out),
 * which equals floor(i / 2) for every i < out: the first `out` rows of the
 * 2x upsample. That covers every size diffusers forwards (a UNet skip is
 * always ceil(2n / 2) after a stride-2 conv), so no general resize. */
sdrt_tensor *sdrt_blk_upsample_fwd(sdrt_nn *nn, const sdrt_blk_conv *c, const sdrt_tensor *x, int64_t out_h,
                                   int64_t out_w) {
    sdrt_tensor *u = sdrt_nn_upsample2x(nn, x);
    if (u && out_h > 0 && out_w > 0 && (out_h != u->shape[2] || out_w != u->shape[3])) {
        sdrt_tensor v = sdrt_nn_view_slice(u, 2, 0, out_h);
        sdrt_tensor v2 = sdrt_nn_view_slice(&v, 3, 0, out_w);
        sdrt_tensor *cropped = sdrt_nn_copy(nn, &v2, SDRT_DTYPE_F32);
        sdrt_nn_drop(nn, u);
        u = cropped;
    }
    sdrt_tensor *out = u ? sdrt_blk_conv_fwd(nn, c, u) : NULL;
    sdrt_nn_drop(nn, u);
    return out;
}

/* ---- down / up / mid blocks ------------------------------------------------------------ */

int sdrt_blk_stage_alloc(sdrt_blk_loader *L, sdrt_blk_stage *s, int nlayers, int with_attn) {
    memset(s, 0, sizeof *s);
    s->nlayers = nlayers;
    if (nlayers <= 0) return L->status == SDRT_OK;
    s->resnets = sdrt_blk_alloc(L, (size_t)nlayers * sizeof *s->resnets);
    if (with_attn) s->attns = sdrt_blk_alloc(L, (size_t)nlayers * sizeof *s->attns);
    return L->status == SDRT_OK;
}

/* resnet j, then its transformer when the stage has them. `consume`: h is
 * dropped as soon as the resnet has read it (before the transformer runs,
 * so the concatenated input of an up block is not alive beside it). */
static sdrt_tensor *stage_layer(sdrt_nn *nn, const sdrt_blk_stage *s, int j, sdrt_tensor *h,
                                const sdrt_tensor *temb_act, const sdrt_tensor *context, int consume) {
    sdrt_tensor *r = sdrt_blk_resnet_fwd(nn, &s->resnets[j], h, temb_act);
    if (consume) sdrt_nn_drop(nn, h);
    if (!s->attns || !r) return r;
    sdrt_tensor *a = sdrt_blk_transformer_fwd(nn, &s->attns[j], r, context);
    sdrt_nn_drop(nn, r);
    return a;
}

sdrt_tensor *sdrt_blk_down_fwd(sdrt_nn *nn, const sdrt_blk_stage *s, sdrt_tensor *x,
                               const sdrt_tensor *temb_act, const sdrt_tensor *context, sdrt_tensor **outputs,
                               int *noutputs) {
    sdrt_tensor *h = x;
    for (int j = 0; j < s->nlayers && h; j++) {
        h = stage_layer(nn, s, j, h, temb_act, context, !outputs);
        if (h && outputs) outputs[(*noutputs)++] = h;
    }
    if (s->has_sampler && h) {
        sdrt_tensor *next = sdrt_blk_downsample_fwd(nn, &s->sampler, h);
        if (!outputs) sdrt_nn_drop(nn, h);
        h = next;
        if (h && outputs) outputs[(*noutputs)++] = h;
    }
    return h;
}

sdrt_tensor *sdrt_blk_up_fwd(sdrt_nn *nn, const sdrt_blk_stage *s, sdrt_tensor *x, const sdrt_tensor *temb_act,
                             const sdrt_tensor *context, sdrt_tensor **skips, int *nskips, int64_t out_h,
                             int64_t out_w) {
    sdrt_tensor *h = x;
    for (int j = 0; j < s->nlayers && h; j++) {
        if (skips) {
            sdrt_tensor *skip = skips[--*nskips];
            sdrt_tensor *cat = sdrt_nn_concat(nn, h, skip, 1);
            if (h != skip) sdrt_nn_drop(nn, h);
            sdrt_nn_drop(nn, skip);
            h = cat;
            if (!h) break;
        }
        h = stage_layer(nn, s, j, h, temb_act, context, 1);
    }
    if (s->has_sampler && h) {
        sdrt_tensor *next = sdrt_blk_upsample_fwd(nn, &s->sampler, h, out_h, out_w);
        sdrt_nn_drop(nn, h);
        h = next;
    }
    return h;
}

int sdrt_blk_mid_alloc(sdrt_blk_loader *L, sdrt_blk_mid *m, int nlayers, int cross_attn) {
    memset(m, 0, sizeof *m);
    m->nlayers = nlayers > 0 ? nlayers : 0;
    m->resnets = sdrt_blk_alloc(L, (size_t)(m->nlayers + 1) * sizeof *m->resnets);
    if (m->nlayers > 0 && cross_attn)
        m->transformers = sdrt_blk_alloc(L, (size_t)m->nlayers * sizeof *m->transformers);
    else if (m->nlayers > 0)
        m->attns = sdrt_blk_alloc(L, (size_t)m->nlayers * sizeof *m->attns);
    return L->status == SDRT_OK;
}

void sdrt_blk_bind_mid(sdrt_blk_loader *L, const char *prefix, sdrt_blk_mid *m, int ch, int temb_dim, int groups,
                       float eps, float out_scale, int heads) {
    char p[SDRT_BLK_NAME];
    if (!sdrt_blk_mid_alloc(L, m, 1, 0)) return;
    sdrt_blk_name(p, prefix, "resnets.0");
    sdrt_blk_bind_resnet(L, p, &m->resnets[0], ch, ch, temb_dim, groups, eps, out_scale);
    sdrt_blk_name(p, prefix, "attentions.0");
    sdrt_blk_attn *a = &m->attns[0];
    /* diffusers stores the projections as Linear [C,C], original-layout
     * VAE checkpoints as 1x1 convs [C,C,1,1]: the same matrix. */
    sdrt_blk_bind_attn(L, p, &sdrt_blk_diffusers_attn, a, ch, ch, heads, SDRT_BLK_BIAS_REQUIRED,
                       SDRT_BLK_LINEAR_2D | SDRT_BLK_LINEAR_CONV1X1);
    sdrt_blk_name(p, prefix, "attentions.0.group_norm");
    a->group_norm = sdrt_blk_bind_norm(L, p, ch, groups, eps);
    a->scale = 1.0f / sqrtf((float)a->head_dim);
    a->residual = 1;
    sdrt_blk_name(p, prefix, "resnets.1");
    sdrt_blk_bind_resnet(L, p, &m->resnets[1], ch, ch, temb_dim, groups, eps, out_scale);
}

void sdrt_blk_bind_mid_cross(sdrt_blk_loader *L, const char *prefix, sdrt_blk_mid *m, int ch, int temb_dim,
                             int groups, float eps, float out_scale, int heads, int depth, int cross_dim,
                             int linear_proj) {
    char p[SDRT_BLK_NAME];
    if (!sdrt_blk_mid_alloc(L, m, 1, 1)) return;
    sdrt_blk_name(p, prefix, "resnets.0");
    sdrt_blk_bind_resnet(L, p, &m->resnets[0], ch, ch, temb_dim, groups, eps, out_scale);
    sdrt_blk_name(p, prefix, "attentions.0");
    sdrt_blk_bind_transformer(L, p, &m->transformers[0], ch, heads, depth, cross_dim, 0, groups, linear_proj);
    sdrt_blk_name(p, prefix, "resnets.1");
    sdrt_blk_bind_resnet(L, p, &m->resnets[1], ch, ch, temb_dim, groups, eps, out_scale);
}

sdrt_tensor *sdrt_blk_mid_fwd(sdrt_nn *nn, const sdrt_blk_mid *m, const sdrt_tensor *x,
                              const sdrt_tensor *temb_act, const sdrt_tensor *context) {
    sdrt_tensor *h = sdrt_blk_resnet_fwd(nn, &m->resnets[0], x, temb_act);
    for (int i = 0; i < m->nlayers && h; i++) {
        sdrt_tensor *a = m->transformers ? sdrt_blk_transformer_fwd(nn, &m->transformers[i], h, context)
                                         : sdrt_blk_attn_fwd(nn, &m->attns[i], h, context);
        sdrt_nn_drop(nn, h);
        h = a ? sdrt_blk_resnet_fwd(nn, &m->resnets[i + 1], a, temb_act) : NULL;
        sdrt_nn_drop(nn, a);
    }
    return h;
}

/* ---- CLIP encoder layer --------------------------------------------------------------- */

void sdrt_blk_bind_clip_layer(sdrt_blk_loader *L, const char *prefix, sdrt_blk_clip_layer *l, int hidden,
                              int heads, int intermediate, float eps, sdrt_blk_act act, int causal) {
    char p[SDRT_BLK_NAME];
    memset(l, 0, sizeof *l);
    l->act = act;
    sdrt_blk_name(p, prefix, "layer_norm1");
    l->ln1 = sdrt_blk_bind_norm(L, p, hidden, 0, eps);
    sdrt_blk_name(p, prefix, "self_attn");
    sdrt_blk_bind_attn(L, p, &sdrt_blk_clip_attn, &l->attn, hidden, hidden, heads, SDRT_BLK_BIAS_REQUIRED,
                       SDRT_BLK_LINEAR_2D);
    l->attn.causal = causal;
    sdrt_blk_name(p, prefix, "layer_norm2");
    l->ln2 = sdrt_blk_bind_norm(L, p, hidden, 0, eps);
    sdrt_blk_name(p, prefix, "mlp.fc1");
    l->fc1 = sdrt_blk_bind_linear(L, p, intermediate, hidden, SDRT_BLK_BIAS_REQUIRED, SDRT_BLK_LINEAR_2D);
    sdrt_blk_name(p, prefix, "mlp.fc2");
    l->fc2 = sdrt_blk_bind_linear(L, p, hidden, intermediate, SDRT_BLK_BIAS_REQUIRED, SDRT_BLK_LINEAR_2D);
}

static sdrt_tensor *activation(sdrt_nn *nn, sdrt_blk_act act, const sdrt_tensor *x) {
    switch (act) {
    case SDRT_BLK_GELU: return sdrt_nn_gelu(nn, x);
    case SDRT_BLK_GELU_TANH: return sdrt_nn_gelu_tanh(nn, x);
    default: return sdrt_nn_quick_gelu(nn, x);
    }
}

sdrt_tensor *sdrt_blk_clip_layer_fwd(sdrt_nn *nn, const sdrt_blk_clip_layer *l, sdrt_tensor *x) {
    sdrt_tensor *h = sdrt_blk_norm_fwd(nn, &l->ln1, x, 0);
    sdrt_tensor *a = h ? sdrt_blk_attn_fwd(nn, &l->attn, h, NULL) : NULL;
    sdrt_nn_drop(nn, h);
    sdrt_tensor *x2 = a ? sdrt_nn_add(nn, x, a) : NULL;
    sdrt_nn_drop(nn, a);
    sdrt_nn_drop(nn, x);
    if (!x2) return NULL;
    h = sdrt_blk_norm_fwd(nn, &l->ln2, x2, 0);
    sdrt_tensor *f1 = h ? sdrt_blk_linear_fwd(nn, &l->fc1, h) : NULL;
    sdrt_nn_drop(nn, h);
    sdrt_tensor *g = f1 ? activation(nn, l->act, f1) : NULL;
    sdrt_nn_drop(nn, f1);
    sdrt_tensor *m = g ? sdrt_blk_linear_fwd(nn, &l->fc2, g) : NULL;
    sdrt_nn_drop(nn, g);
    sdrt_tensor *x3 = m ? sdrt_nn_add(nn, x2, m) : NULL;
    sdrt_nn_drop(nn, m);
    sdrt_nn_drop(nn, x2);
    return x3;
}
