/* vae.c - the AutoencoderKL network (diffusers Encoder/Decoder) on sdrt_nn.
 *
 * Convention: every block borrows its input and returns a new tensor owned
 * by the nn context; callers drop what they no longer need, so at most a
 * few activations of one resolution are alive at a time. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/nn.h"
#include "vae.h"

/* diffusers builds the VAE's resnets, attention and output norm with eps 1e-6. */
#define VAE_EPS 1e-6f

void vae_net_init(vae_net *v, const vae_config *cfg, sdrt_nn *nn, vae_weight_fn weight, void *ctx) {
    memset(v, 0, sizeof *v);
    v->cfg = cfg;
    v->nn = nn;
    v->weight = weight;
    v->weight_ctx = ctx;
    v->status = SDRT_OK;
}

int vae_fail(vae_net *v, sdrt_status st, const char *fmt, ...) {
    if (v->status != SDRT_OK) return -1;
    v->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof v->message, fmt, ap);
    va_end(ap);
    return -1;
}

void vae_net_release(vae_net *v) {
    while (v->params) {
        vae_f32_param *next = v->params->next;
        free(v->params);
        v->params = next;
    }
}

/* A 1-D parameter (bias, norm scale) as contiguous f32, converted once per
 * net: backends take f32 for the element-wise operands (an f16 bias made
 * every decode of an f16 checkpoint fail). */
static const sdrt_tensor *f32_param(vae_net *v, const sdrt_tensor *t, const char *name) {
    for (vae_f32_param *p = v->params; p; p = p->next)
        if (p->src == t) return &p->t;
    if (t->dtype != SDRT_DTYPE_F16 && t->dtype != SDRT_DTYPE_BF16 && t->dtype != SDRT_DTYPE_F32) {
        vae_fail(v, SDRT_INVALID_ARGUMENT, "vae weight %s: dtype is not f32, f16 or bf16", name);
        return NULL;
    }
    int64_t n = t->shape[0];
    vae_f32_param *p = malloc(sizeof *p + (size_t)n * sizeof(float));
    if (!p) {
        vae_fail(v, SDRT_RESOURCE_EXHAUSTED, "vae weight %s: out of memory", name);
        return NULL;
    }
    sdrt_nn_param_to_f32(t, p->data); /* dtype checked above */
    p->src = t;
    p->t = (sdrt_tensor){.struct_size = sizeof(sdrt_tensor), .dtype = SDRT_DTYPE_F32, .ndim = 1,
                         .shape = {n, 1, 1, 1, 1, 1}, .strides = {1}, .data = p->data};
    p->next = v->params;
    v->params = p;
    return &p->t;
}

/* The weight "<prefix>.<leaf>" as an operand on the device, or NULL with a
 * NOT_FOUND failure naming it. */
static const sdrt_tensor *weight(vae_net *v, const char *prefix, const char *leaf) {
    char name[320];
    snprintf(name, sizeof name, "%s.%s", prefix, leaf);
    const sdrt_tensor *t = v->weight(v->weight_ctx, name);
    if (!t) {
        vae_fail(v, SDRT_NOT_FOUND, "vae weight %s: missing", name);
        return NULL;
    }
    if (t->ndim == 1 && (t->dtype != SDRT_DTYPE_F32 || t->strides[0] != 1)) t = f32_param(v, t, name);
    return t ? sdrt_nn_weight(v->nn, t) : NULL;
}

/* Picks up a failure of the nn context (op error or cancellation). */
static int nn_failed(vae_net *v) {
    if (v->status != SDRT_OK) return 1;
    const char *msg = NULL;
    sdrt_status st = sdrt_nn_status(v->nn, &msg);
    if (st == SDRT_OK) return 0;
    vae_fail(v, st, "vae: %s", msg ? msg : "compute failed");
    return 1;
}

/* Formats a weight-name prefix into out[VAE_NAME]. vsnprintf: names are
 * bounded by construction (config limits), a cut one fails as "missing". */
#define VAE_NAME 256
static void fmt_name(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, VAE_NAME, fmt, ap);
    va_end(ap);
}

/* Drops *slot and stores next in it. */
static void replace(vae_net *v, sdrt_tensor **slot, sdrt_tensor *next) {
    sdrt_nn_drop(v->nn, *slot);
    *slot = next;
}

static sdrt_tensor *conv(vae_net *v, const sdrt_tensor *x, const char *prefix, int stride, int pad) {
    const sdrt_tensor *w = weight(v, prefix, "weight");
    const sdrt_tensor *b = weight(v, prefix, "bias");
    if (!w || !b || v->status != SDRT_OK) return NULL;
    return sdrt_nn_conv2d(v->nn, x, w, b, stride, pad);
}

static sdrt_tensor *norm(vae_net *v, const sdrt_tensor *x, const char *prefix, int silu) {
    const sdrt_tensor *g = weight(v, prefix, "weight");
    const sdrt_tensor *b = weight(v, prefix, "bias");
    if (!g || !b || v->status != SDRT_OK) return NULL;
    return sdrt_nn_group_norm(v->nn, x, g, b, v->cfg->norm_groups, VAE_EPS, silu);
}

/* ResnetBlock2D without time embedding: x + conv2(silu(gn2(conv1(silu(gn1(x)))))),
 * with a 1x1 conv_shortcut on x when the channel count changes. */
static sdrt_tensor *resnet(vae_net *v, const sdrt_tensor *x, const char *prefix, int cin, int cout) {
    char p[VAE_NAME];
    fmt_name(p, "%s.norm1", prefix);
    sdrt_tensor *h = norm(v, x, p, 1);
    fmt_name(p, "%s.conv1", prefix);
    replace(v, &h, conv(v, h, p, 1, 1));
    fmt_name(p, "%s.norm2", prefix);
    replace(v, &h, norm(v, h, p, 1));
    fmt_name(p, "%s.conv2", prefix);
    replace(v, &h, conv(v, h, p, 1, 1));
    if (nn_failed(v)) {
        sdrt_nn_drop(v->nn, h);
        return NULL;
    }
    sdrt_tensor *out;
    if (cin != cout) {
        fmt_name(p, "%s.conv_shortcut", prefix);
        sdrt_tensor *sc = conv(v, x, p, 1, 0);
        out = sc ? sdrt_nn_add(v->nn, sc, h) : NULL;
        sdrt_nn_drop(v->nn, sc);
    } else {
        out = sdrt_nn_add(v->nn, x, h);
    }
    sdrt_nn_drop(v->nn, h);
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, out), NULL) : out;
}

/* A linear weight of attention as [C,C]: diffusers stores Linear [C,C],
 * original-layout checkpoints a 1x1 conv [C,C,1,1]; both are the same
 * matrix. `view` must outlive the use of the returned operand. */
static const sdrt_tensor *linear_weight(vae_net *v, const char *prefix, sdrt_tensor *view) {
    char name[320];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const sdrt_tensor *t = v->weight(v->weight_ctx, name);
    if (!t) {
        vae_fail(v, SDRT_NOT_FOUND, "vae weight %s: missing", name);
        return NULL;
    }
    int conv_shaped = t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1;
    if (t->ndim != 2 && !conv_shaped) {
        vae_fail(v, SDRT_INVALID_ARGUMENT, "vae weight %s: expected [C,C] or [C,C,1,1], got %d dims",
                 name, t->ndim);
        return NULL;
    }
    int64_t shape[2] = {t->shape[0], t->shape[1]};
    *view = conv_shaped ? sdrt_nn_view_reshape(t, 2, shape) : *t;
    return sdrt_nn_weight(v->nn, view);
}

static sdrt_tensor *project(vae_net *v, const sdrt_tensor *x, const char *prefix, const char *leaf) {
    char p[VAE_NAME];
    fmt_name(p, "%s.%s", prefix, leaf);
    sdrt_tensor view;
    const sdrt_tensor *w = linear_weight(v, p, &view);
    const sdrt_tensor *b = weight(v, p, "bias");
    if (!w || !b || v->status != SDRT_OK) return NULL;
    return sdrt_nn_linear(v->nn, x, w, b);
}

/* Single-head self-attention over the H*W positions with a residual:
 * x + to_out(softmax(q k^T / sqrt(C)) v), q/k/v from groupnorm(x). */
static sdrt_tensor *attention(vae_net *v, const sdrt_tensor *x, const char *prefix) {
    int64_t n = x->shape[0], c = x->shape[1], hh = x->shape[2], ww = x->shape[3], l = hh * ww;
    char p[VAE_NAME];
    fmt_name(p, "%s.group_norm", prefix);
    sdrt_tensor *h = norm(v, x, p, 0);
    if (nn_failed(v)) return NULL;
    int64_t ncl[3] = {n, c, l};
    int perm[3] = {0, 2, 1};
    sdrt_tensor flat = sdrt_nn_view_reshape(h, 3, ncl);
    sdrt_tensor seq = sdrt_nn_view_permute(&flat, perm); /* [N,L,C] strided */
    sdrt_tensor *q = project(v, &seq, prefix, "to_q");
    sdrt_tensor *k = project(v, &seq, prefix, "to_k");
    sdrt_tensor *val = project(v, &seq, prefix, "to_v");
    sdrt_nn_drop(v->nn, h);
    sdrt_tensor *a = NULL;
    if (!nn_failed(v)) {
        int64_t n1lc[4] = {n, 1, l, c};
        sdrt_tensor q4 = sdrt_nn_view_reshape(q, 4, n1lc);
        sdrt_tensor k4 = sdrt_nn_view_reshape(k, 4, n1lc);
        sdrt_tensor v4 = sdrt_nn_view_reshape(val, 4, n1lc);
        a = sdrt_nn_attention(v->nn, &q4, &k4, &v4, 1.0f / sqrtf((float)c), 0);
    }
    sdrt_nn_drop(v->nn, q);
    sdrt_nn_drop(v->nn, k);
    sdrt_nn_drop(v->nn, val);
    if (nn_failed(v)) return (sdrt_nn_drop(v->nn, a), NULL);
    int64_t nlc[3] = {n, l, c};
    sdrt_tensor a3 = sdrt_nn_view_reshape(a, 3, nlc);
    sdrt_tensor *o = project(v, &a3, prefix, "to_out.0");
    sdrt_nn_drop(v->nn, a);
    if (nn_failed(v)) return (sdrt_nn_drop(v->nn, o), NULL);
    sdrt_tensor ot = sdrt_nn_view_permute(o, perm); /* [N,C,L] strided */
    sdrt_tensor *oc = sdrt_nn_copy(v->nn, &ot, SDRT_DTYPE_F32);
    sdrt_nn_drop(v->nn, o);
    if (nn_failed(v)) return (sdrt_nn_drop(v->nn, oc), NULL);
    int64_t nchw[4] = {n, c, hh, ww};
    sdrt_tensor o4 = sdrt_nn_view_reshape(oc, 4, nchw);
    sdrt_tensor *out = sdrt_nn_add(v->nn, x, &o4);
    sdrt_nn_drop(v->nn, oc);
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, out), NULL) : out;
}

/* UNetMidBlock2D of the VAE: resnet, attention, resnet at constant width. */
static sdrt_tensor *mid_block(vae_net *v, const sdrt_tensor *x, const char *prefix, int ch) {
    char p[VAE_NAME];
    fmt_name(p, "%s.resnets.0", prefix);
    sdrt_tensor *h = resnet(v, x, p, ch, ch);
    fmt_name(p, "%s.attentions.0", prefix);
    if (h) replace(v, &h, attention(v, h, p));
    fmt_name(p, "%s.resnets.1", prefix);
    if (h) replace(v, &h, resnet(v, h, p, ch, ch));
    return h;
}

/* A zero tensor on the device of the given shape. */
static sdrt_tensor *zeros(vae_net *v, int64_t n, int64_t c, int64_t h, int64_t w) {
    size_t count = (size_t)(n * c * h * w);
    float *buf = calloc(count ? count : 1, sizeof *buf);
    if (!buf) {
        vae_fail(v, SDRT_RESOURCE_EXHAUSTED, "vae: out of memory for padding");
        return NULL;
    }
    int64_t shape[4] = {n, c, h, w};
    sdrt_tensor *t = sdrt_nn_from_host(v->nn, SDRT_DTYPE_F32, 4, shape, buf);
    free(buf);
    return t;
}

/* diffusers Downsample2D(padding=0): F.pad(x, (0,1,0,1)) then a 3x3 conv with
 * stride 2 and no padding. The one-sided pad shifts the sampling grid, so a
 * symmetric padding=1 conv would give a different result. */
static sdrt_tensor *downsample(vae_net *v, const sdrt_tensor *x, const char *prefix) {
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
    sdrt_tensor *col = zeros(v, n, c, h, 1);
    sdrt_tensor *padded = col ? sdrt_nn_concat(v->nn, x, col, 3) : NULL;
    sdrt_nn_drop(v->nn, col);
    sdrt_tensor *row = padded ? zeros(v, n, c, 1, w + 1) : NULL;
    if (row) replace(v, &padded, sdrt_nn_concat(v->nn, padded, row, 2));
    sdrt_nn_drop(v->nn, row);
    if (nn_failed(v)) return (sdrt_nn_drop(v->nn, padded), NULL);
    char p[VAE_NAME];
    fmt_name(p, "%s.downsamplers.0.conv", prefix);
    sdrt_tensor *out = conv(v, padded, p, 2, 0);
    sdrt_nn_drop(v->nn, padded);
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, out), NULL) : out;
}

/* Upsample2D: nearest 2x then a 3x3 conv. */
static sdrt_tensor *upsample(vae_net *v, const sdrt_tensor *x, const char *prefix) {
    sdrt_tensor *u = sdrt_nn_upsample2x(v->nn, x);
    char p[VAE_NAME];
    fmt_name(p, "%s.upsamplers.0.conv", prefix);
    sdrt_tensor *out = u ? conv(v, u, p, 1, 1) : NULL;
    sdrt_nn_drop(v->nn, u);
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, out), NULL) : out;
}

/* GroupNorm + SiLU + 3x3 conv: the tail of both Encoder and Decoder. */
static sdrt_tensor *output_head(vae_net *v, const sdrt_tensor *x, const char *part) {
    char p[VAE_NAME];
    fmt_name(p, "%s.conv_norm_out", part);
    sdrt_tensor *h = norm(v, x, p, 1);
    fmt_name(p, "%s.conv_out", part);
    if (h) replace(v, &h, conv(v, h, p, 1, 1));
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, h), NULL) : h;
}

static sdrt_tensor *up_block(vae_net *v, sdrt_tensor *h, int i, int *ch) {
    const vae_config *cfg = v->cfg;
    int cout = cfg->block_out[cfg->n_blocks - 1 - i];
    char p[VAE_NAME];
    for (int j = 0; j <= cfg->layers_per_block && h; j++) {
        fmt_name(p, "decoder.up_blocks.%d.resnets.%d", i, j);
        replace(v, &h, resnet(v, h, p, *ch, cout));
        *ch = cout;
    }
    if (h && i < cfg->n_blocks - 1) {
        fmt_name(p, "decoder.up_blocks.%d", i);
        replace(v, &h, upsample(v, h, p));
    }
    return h;
}

sdrt_tensor *vae_decode_tensor(vae_net *v, const sdrt_tensor *z) {
    const vae_config *cfg = v->cfg;
    sdrt_tensor *h = cfg->use_post_quant_conv ? conv(v, z, "post_quant_conv", 1, 0)
                                              : sdrt_nn_copy(v->nn, z, SDRT_DTYPE_F32);
    if (h) replace(v, &h, conv(v, h, "decoder.conv_in", 1, 1));
    int ch = cfg->block_out[cfg->n_blocks - 1];
    if (h) replace(v, &h, mid_block(v, h, "decoder.mid_block", ch));
    for (int i = 0; i < cfg->n_blocks && h; i++) {
        h = up_block(v, h, i, &ch);
        if (v->status != SDRT_OK) break;
    }
    if (h) replace(v, &h, output_head(v, h, "decoder"));
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, h), NULL) : h;
}

static sdrt_tensor *down_block(vae_net *v, sdrt_tensor *h, int i, int *ch) {
    const vae_config *cfg = v->cfg;
    int cout = cfg->block_out[i];
    char p[VAE_NAME];
    for (int j = 0; j < cfg->layers_per_block && h; j++) {
        fmt_name(p, "encoder.down_blocks.%d.resnets.%d", i, j);
        replace(v, &h, resnet(v, h, p, *ch, cout));
        *ch = cout;
    }
    if (h && i < cfg->n_blocks - 1) {
        fmt_name(p, "encoder.down_blocks.%d", i);
        replace(v, &h, downsample(v, h, p));
    }
    return h;
}

sdrt_tensor *vae_encode_tensor(vae_net *v, const sdrt_tensor *x) {
    const vae_config *cfg = v->cfg;
    sdrt_tensor *h = conv(v, x, "encoder.conv_in", 1, 1);
    int ch = cfg->block_out[0];
    for (int i = 0; i < cfg->n_blocks && h; i++) {
        h = down_block(v, h, i, &ch);
        if (v->status != SDRT_OK) break;
    }
    if (h) replace(v, &h, mid_block(v, h, "encoder.mid_block", ch));
    if (h) replace(v, &h, output_head(v, h, "encoder"));
    if (h && cfg->use_quant_conv) replace(v, &h, conv(v, h, "quant_conv", 1, 0));
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, h), NULL) : h;
}

/* Uploads src [n,c,h,w], runs fn, downloads into out. */
static int run_host(vae_net *v, sdrt_tensor *(*fn)(vae_net *, const sdrt_tensor *), const float *src,
                    int n, int c, int h, int w, float *out) {
    if (v->status != SDRT_OK) return -1;
    int64_t shape[4] = {n, c, h, w};
    sdrt_tensor *in = sdrt_nn_from_host(v->nn, SDRT_DTYPE_F32, 4, shape, src);
    if (nn_failed(v)) return (sdrt_nn_drop(v->nn, in), -1);
    sdrt_tensor *res = fn(v, in);
    sdrt_nn_drop(v->nn, in);
    if (!res) return nn_failed(v), -1;
    sdrt_status st = sdrt_nn_to_host_f32(v->nn, res, out);
    sdrt_nn_drop(v->nn, res);
    if (st != SDRT_OK) return vae_fail(v, st, "vae: reading the result back failed");
    return 0;
}

int vae_decode_host(vae_net *v, const float *z, int n, int h, int w, float *out) {
    return run_host(v, vae_decode_tensor, z, n, v->cfg->latent_channels, h, w, out);
}

int vae_encode_host(vae_net *v, const float *x, int n, int h, int w, float *moments) {
    return run_host(v, vae_encode_tensor, x, n, v->cfg->in_channels, h, w, moments);
}
