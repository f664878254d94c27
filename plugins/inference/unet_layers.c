/* plugins/inference/unet_layers.c - the UNet's layers over sdrt_nn:
 * ResnetBlock2D, Transformer2DModel with BasicTransformerBlock (self/cross
 * attention, GEGLU feed-forward), Upsample2D.
 *
 * Every function borrows its inputs and returns a new tensor owned by nn;
 * temporaries are dropped as soon as they are consumed so peak memory stays
 * near two activations of the largest layer. nn errors are sticky: once an
 * op fails the rest return NULL, so only views (which would dereference a
 * NULL tensor) need guarding. */
#include "unet_internal.h"

static const sdrt_tensor *wt(sdrt_nn *nn, const sdrt_tensor *w) {
    return w ? sdrt_nn_weight(nn, w) : NULL;
}

sdrt_tensor *unet_conv_fwd(sdrt_nn *nn, const unet_conv *c, const sdrt_tensor *x) {
    return sdrt_nn_conv2d(nn, x, wt(nn, c->w), wt(nn, c->b), c->stride, c->pad);
}

sdrt_tensor *unet_linear_fwd(sdrt_nn *nn, const unet_linear *l, const sdrt_tensor *x) {
    return sdrt_nn_linear(nn, x, wt(nn, l->w), wt(nn, l->b));
}

static sdrt_tensor *group_norm(sdrt_nn *nn, const unet_norm *n, const sdrt_tensor *x, int silu) {
    return sdrt_nn_group_norm(nn, x, wt(nn, n->g), wt(nn, n->b), n->groups, n->eps, silu);
}

static sdrt_tensor *layer_norm(sdrt_nn *nn, const unet_norm *n, const sdrt_tensor *x) {
    return sdrt_nn_layer_norm(nn, x, wt(nn, n->g), wt(nn, n->b), n->eps);
}

/* x + y, dropping y. */
static sdrt_tensor *add_drop(sdrt_nn *nn, const sdrt_tensor *x, sdrt_tensor *y) {
    sdrt_tensor *r = sdrt_nn_add(nn, x, y);
    sdrt_nn_drop(nn, y);
    return r;
}

/* norm1-silu-conv1 (+ time_emb_proj(silu(temb))) norm2-silu-conv2, plus the
 * shortcut, divided by output_scale_factor. `temb_act` is silu(temb),
 * computed once per forward pass since every resnet applies the same act. */
sdrt_tensor *unet_resnet_fwd(sdrt_nn *nn, const unet_resnet *r, const sdrt_tensor *x,
                             const sdrt_tensor *temb_act) {
    sdrt_tensor *h = group_norm(nn, &r->norm1, x, 1);
    sdrt_tensor *h1 = unet_conv_fwd(nn, &r->conv1, h);
    sdrt_nn_drop(nn, h);
    sdrt_tensor *t = unet_linear_fwd(nn, &r->temb, temb_act);
    if (!t || !h1) {
        sdrt_nn_drop(nn, t);
        sdrt_nn_drop(nn, h1);
        return NULL;
    }
    int64_t tshape[4] = {t->shape[0], t->shape[1], 1, 1};
    sdrt_tensor tv = sdrt_nn_view_reshape(t, 4, tshape);
    h = sdrt_nn_add(nn, h1, &tv);
    sdrt_nn_drop(nn, t);
    sdrt_nn_drop(nn, h1);
    h1 = group_norm(nn, &r->norm2, h, 1);
    sdrt_nn_drop(nn, h);
    h = unet_conv_fwd(nn, &r->conv2, h1);
    sdrt_nn_drop(nn, h1);
    sdrt_tensor *sc = r->shortcut.w ? unet_conv_fwd(nn, &r->shortcut, x) : NULL;
    sdrt_tensor *out = add_drop(nn, sc ? sc : x, h);
    sdrt_nn_drop(nn, sc);
    if (r->out_scale == 1.0f) return out;
    sdrt_tensor *scaled = sdrt_nn_scale(nn, out, 1.0f / r->out_scale, 0.0f);
    sdrt_nn_drop(nn, out);
    return scaled;
}

/* [B, L, H*D] contiguous -> a [B, H, L, D] view of the same memory. */
static sdrt_tensor heads_view(const sdrt_tensor *t, int heads) {
    int64_t shape[4] = {t->shape[0], t->shape[1], heads, t->shape[2] / heads};
    static const int perm[4] = {0, 2, 1, 3};
    sdrt_tensor r = sdrt_nn_view_reshape(t, 4, shape);
    return sdrt_nn_view_permute(&r, perm);
}

/* [B, H, L, D] -> contiguous [B, L, H*D]. */
static sdrt_tensor *merge_heads(sdrt_nn *nn, sdrt_tensor *o) {
    static const int perm[4] = {0, 2, 1, 3};
    if (!o) return NULL;
    sdrt_tensor ov = sdrt_nn_view_permute(o, perm);
    sdrt_tensor *c = sdrt_nn_copy(nn, &ov, SDRT_DTYPE_F32);
    int64_t shape[3] = {o->shape[0], o->shape[2], o->shape[1] * o->shape[3]};
    sdrt_nn_drop(nn, o);
    if (!c) return NULL;
    *c = sdrt_nn_view_reshape(c, 3, shape);
    return c;
}

static sdrt_tensor *attention(sdrt_nn *nn, const unet_attn *a, const sdrt_tensor *x, const sdrt_tensor *kv_src) {
    sdrt_tensor *q = unet_linear_fwd(nn, &a->q, x);
    sdrt_tensor *k = unet_linear_fwd(nn, &a->k, kv_src);
    sdrt_tensor *v = unet_linear_fwd(nn, &a->v, kv_src);
    sdrt_tensor *o = NULL;
    if (q && k && v) {
        sdrt_tensor qh = heads_view(q, a->heads), kh = heads_view(k, a->heads), vh = heads_view(v, a->heads);
        o = sdrt_nn_attention(nn, &qh, &kh, &vh, 0.0f, 0);
    }
    sdrt_nn_drop(nn, q);
    sdrt_nn_drop(nn, k);
    sdrt_nn_drop(nn, v);
    sdrt_tensor *m = merge_heads(nn, o);
    sdrt_tensor *out = unet_linear_fwd(nn, &a->out, m);
    sdrt_nn_drop(nn, m);
    return out;
}

/* h + attn(norm(h)), or h + ff(norm(h)); the caller keeps h. */
static sdrt_tensor *attn_residual(sdrt_nn *nn, const unet_norm *n, const unet_attn *a, const sdrt_tensor *h,
                                  const sdrt_tensor *context) {
    sdrt_tensor *x = layer_norm(nn, n, h);
    sdrt_tensor *y = attention(nn, a, x, a->kv_from_context ? context : x);
    sdrt_nn_drop(nn, x);
    return add_drop(nn, h, y);
}

static sdrt_tensor *ff_residual(sdrt_nn *nn, const unet_tblock *t, const sdrt_tensor *h) {
    sdrt_tensor *x = layer_norm(nn, &t->ln3, h);
    sdrt_tensor *p = unet_linear_fwd(nn, &t->ff_in, x);
    sdrt_nn_drop(nn, x);
    sdrt_tensor *g = sdrt_nn_geglu(nn, p);
    sdrt_nn_drop(nn, p);
    sdrt_tensor *y = unet_linear_fwd(nn, &t->ff_out, g);
    sdrt_nn_drop(nn, g);
    return add_drop(nn, h, y);
}

static sdrt_tensor *tblock_fwd(sdrt_nn *nn, const unet_tblock *t, const sdrt_tensor *h, const sdrt_tensor *context) {
    sdrt_tensor *h1 = attn_residual(nn, &t->ln1, &t->attn1, h, context);
    sdrt_tensor *h2 = attn_residual(nn, &t->ln2, &t->attn2, h1, context);
    sdrt_nn_drop(nn, h1);
    sdrt_tensor *h3 = ff_residual(nn, t, h2);
    sdrt_nn_drop(nn, h2);
    return h3;
}

/* [B, C, H, W] -> contiguous [B, H*W, C] (the token layout). */
static sdrt_tensor *to_tokens(sdrt_nn *nn, sdrt_tensor *x) {
    static const int perm[3] = {0, 2, 1};
    if (!x) return NULL;
    int64_t shape[3] = {x->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
    sdrt_tensor v = sdrt_nn_view_reshape(x, 3, shape);
    sdrt_tensor p = sdrt_nn_view_permute(&v, perm);
    return sdrt_nn_copy(nn, &p, SDRT_DTYPE_F32);
}

/* [B, H*W, C] -> contiguous [B, C, H, W]. */
static sdrt_tensor *from_tokens(sdrt_nn *nn, sdrt_tensor *t, int64_t h, int64_t w) {
    static const int perm[3] = {0, 2, 1};
    if (!t) return NULL;
    sdrt_tensor p = sdrt_nn_view_permute(t, perm);
    sdrt_tensor *c = sdrt_nn_copy(nn, &p, SDRT_DTYPE_F32);
    if (!c) return NULL;
    int64_t shape[4] = {t->shape[0], t->shape[2], h, w};
    *c = sdrt_nn_view_reshape(c, 4, shape);
    return c;
}

sdrt_tensor *unet_transformer_fwd(sdrt_nn *nn, const unet_transformer *t, const sdrt_tensor *x,
                                  const sdrt_tensor *context) {
    sdrt_tensor *n = group_norm(nn, &t->norm, x, 0);
    sdrt_tensor *tok = to_tokens(nn, n);
    sdrt_nn_drop(nn, n);
    sdrt_tensor *h = unet_linear_fwd(nn, &t->proj_in, tok);
    sdrt_nn_drop(nn, tok);
    for (int k = 0; k < t->depth && h; k++) {
        sdrt_tensor *next = tblock_fwd(nn, &t->blocks[k], h, context);
        sdrt_nn_drop(nn, h);
        h = next;
    }
    sdrt_tensor *o = unet_linear_fwd(nn, &t->proj_out, h);
    sdrt_nn_drop(nn, h);
    sdrt_tensor *img = from_tokens(nn, o, x->shape[2], x->shape[3]);
    sdrt_nn_drop(nn, o);
    return add_drop(nn, x, img);
}

/* Nearest interpolation to out = 2n - 1 picks source floor(i * n / out),
 * which equals floor(i / 2) for every i < out: the first `out` rows of the
 * 2x upsample. That covers every size diffusers forwards (a skip is always
 * ceil(2n / 2) after a stride-2 conv), so no general resize is needed. */
sdrt_tensor *unet_upsample_fwd(sdrt_nn *nn, const unet_conv *c, const sdrt_tensor *x, int64_t out_h,
                               int64_t out_w) {
    sdrt_tensor *u = sdrt_nn_upsample2x(nn, x);
    if (u && (out_h != u->shape[2] || out_w != u->shape[3])) {
        sdrt_tensor v = sdrt_nn_view_slice(u, 2, 0, out_h);
        sdrt_tensor v2 = sdrt_nn_view_slice(&v, 3, 0, out_w);
        sdrt_tensor *cropped = sdrt_nn_copy(nn, &v2, SDRT_DTYPE_F32);
        sdrt_nn_drop(nn, u);
        u = cropped;
    }
    sdrt_tensor *out = unet_conv_fwd(nn, c, u);
    sdrt_nn_drop(nn, u);
    return out;
}
