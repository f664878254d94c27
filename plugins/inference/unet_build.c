/* plugins/inference/unet_build.c - resolves and shape-checks every weight of
 * a UNet2DConditionModel, following the channel bookkeeping of diffusers'
 * UNet2DConditionModel.__init__ so that a config/weight mismatch is reported
 * at load time with the tensor's name, not as a wrong shape mid-inference. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt/nn.h"
#include "unet_internal.h"

struct unet_owned {
    unet_owned *next;
    sdrt_tensor t;
    float data[]; /* converted parameters; empty for views */
};

/* Longest diffusers weight name we build (they are < 100 characters). */
#define NAME_LEN 256

/* out = "<prefix>.<fmt...>", truncated to NAME_LEN (names never get near). */
static void b_name(char *out, const char *prefix, const char *fmt, ...) SDRT_PRINTF(3, 4);
static void b_name(char *out, const char *prefix, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(out, NAME_LEN, "%s%s", prefix, *prefix ? "." : "");
    if (n < 0 || n >= NAME_LEN) return;
    va_start(ap, fmt);
    vsnprintf(out + n, (size_t)(NAME_LEN - n), fmt, ap);
    va_end(ap);
}

typedef struct build_ctx {
    unet *u;
    unet_weight_fn get;
    void *ctx;
    char *err;
    size_t errlen;
    sdrt_status status;
} build_ctx;

static void b_fail(build_ctx *b, sdrt_status st, const char *fmt, const char *name, const char *detail) {
    if (b->status != SDRT_OK) return;
    b->status = st;
    snprintf(b->err, b->errlen, fmt, name, detail);
}

static void shape_text(char *out, size_t n, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(out + used, n - used, "]");
}

/* Block-quantized (GGUF, weight_type) matrices pass too: MATMUL/CONV2D
 * take them; the model plugin widens every 1-D parameter it loads. */
static int is_float_dtype(sdrt_dtype d) {
    return d == SDRT_DTYPE_F32 || d == SDRT_DTYPE_F16 || d == SDRT_DTYPE_BF16 || sdrt_dtype_is_quantized(d);
}

/* name (NAME_LEN chars) receives "<prefix>.<suffix>". */
static const sdrt_tensor *b_lookup(build_ctx *b, const char *prefix, const char *suffix, char *name) {
    b_name(name, prefix, "%s", suffix);
    return b->status == SDRT_OK ? b->get(b->ctx, name) : NULL;
}

static int b_check(build_ctx *b, const sdrt_tensor *t, const char *name, int ndim, const int64_t *shape) {
    char want[96], got[96];
    if (!is_float_dtype(t->dtype)) {
        b_fail(b, SDRT_INVALID_ARGUMENT, "unet weight %s: %s", name, "dtype is not f32, f16, bf16 or a GGUF block type");
        return 0;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (same) return 1;
    shape_text(want, sizeof want, ndim, shape);
    shape_text(got, sizeof got, t->ndim, t->shape);
    if (b->status != SDRT_OK) return 0;
    b->status = SDRT_INVALID_ARGUMENT;
    snprintf(b->err, b->errlen, "unet weight %s: shape %s, expected %s from config.json", name, got, want);
    return 0;
}

/* A required weight of the given shape, as stored. */
static const sdrt_tensor *b_weight(build_ctx *b, const char *prefix, const char *suffix, int ndim,
                                   const int64_t *shape) {
    char name[NAME_LEN];
    const sdrt_tensor *t = b_lookup(b, prefix, suffix, name);
    if (b->status != SDRT_OK) return NULL;
    if (!t) {
        b_fail(b, SDRT_NOT_FOUND, "unet weight %s: %s", name, "missing from the model");
        return NULL;
    }
    return b_check(b, t, name, ndim, shape) ? t : NULL;
}

static unet_owned *owned_new(unet *u, size_t nfloats) {
    unet_owned *o = calloc(1, sizeof *o + nfloats * sizeof(float));
    if (!o) return NULL;
    o->next = u->owned;
    u->owned = o;
    return o;
}

/* A 1-D parameter [n] as contiguous f32: norms and biases are applied by
 * element-wise ops that take f32 only, and converting them once here costs
 * nothing next to the matrices, which stay in their stored dtype. */
static const sdrt_tensor *b_param_opt(build_ctx *b, const char *prefix, const char *suffix, int64_t n,
                                      int required) {
    char name[NAME_LEN];
    const sdrt_tensor *t = b_lookup(b, prefix, suffix, name);
    if (b->status != SDRT_OK) return NULL;
    if (!t) {
        if (required) b_fail(b, SDRT_NOT_FOUND, "unet weight %s: %s", name, "missing from the model");
        return NULL;
    }
    if (!b_check(b, t, name, 1, &n)) return NULL;
    if (t->dtype == SDRT_DTYPE_F32 && t->strides[0] == 1) return t;
    unet_owned *o = owned_new(b->u, (size_t)n);
    if (!o) {
        b_fail(b, SDRT_RESOURCE_EXHAUSTED, "unet weight %s: %s", name, "out of memory");
        return NULL;
    }
    if (sdrt_nn_param_to_f32(t, o->data) != 0) {
        b_fail(b, SDRT_INVALID_ARGUMENT, "unet weight %s: %s", name, "dtype is not f32, f16 or bf16");
        return NULL;
    }
    o->t = (sdrt_tensor){.struct_size = sizeof(sdrt_tensor), .dtype = SDRT_DTYPE_F32, .ndim = 1,
                         .shape = {n, 1, 1, 1, 1, 1}, .strides = {1}, .data = o->data};
    return &o->t;
}

static const sdrt_tensor *b_param(build_ctx *b, const char *prefix, const char *suffix, int64_t n) {
    return b_param_opt(b, prefix, suffix, n, 1);
}

static unet_linear b_linear(build_ctx *b, const char *prefix, int64_t out, int64_t in, int bias_required) {
    unet_linear l = {0};
    char w[NAME_LEN];
    int64_t shape[2] = {out, in};
    b_name(w, prefix, "weight");
    l.w = b_weight(b, "", w, 2, shape);
    b_name(w, prefix, "bias");
    l.b = b_param_opt(b, "", w, out, bias_required);
    return l;
}

static unet_conv b_conv(build_ctx *b, const char *prefix, int64_t out, int64_t in, int k, int stride, int pad) {
    unet_conv c = {0};
    int64_t shape[4] = {out, in, k, k};
    c.w = b_weight(b, prefix, "weight", 4, shape);
    c.b = b_param(b, prefix, "bias", out);
    c.stride = stride;
    c.pad = pad;
    return c;
}

static unet_norm b_norm(build_ctx *b, const char *prefix, int64_t c, int groups, float eps) {
    unet_norm n = {0};
    n.g = b_param(b, prefix, "weight", c);
    n.b = b_param(b, prefix, "bias", c);
    n.groups = groups;
    n.eps = eps;
    return n;
}

/* A 1x1 conv weight [out,in,1,1] viewed as a linear weight [out,in]. */
static const sdrt_tensor *b_conv1x1_as_matrix(build_ctx *b, const sdrt_tensor *w, const char *name) {
    if (!w) return NULL;
    if (w->strides[1] != w->shape[2] * w->shape[3] || w->strides[0] != w->shape[1] * w->strides[1]) {
        b_fail(b, SDRT_INVALID_ARGUMENT, "unet weight %s: %s", name, "1x1 conv weight is not contiguous");
        return NULL;
    }
    unet_owned *o = owned_new(b->u, 0);
    if (!o) {
        b_fail(b, SDRT_RESOURCE_EXHAUSTED, "unet weight %s: %s", name, "out of memory");
        return NULL;
    }
    o->t = *w;
    o->t.ndim = 2;
    o->t.shape[2] = o->t.shape[3] = 1;
    o->t.strides[0] = w->shape[1];
    o->t.strides[1] = 1;
    o->t.strides[2] = o->t.strides[3] = 0;
    return &o->t;
}

/* proj_in / proj_out: a Linear, or a 1x1 Conv2d when !use_linear_projection. */
static unet_linear b_proj(build_ctx *b, const char *prefix, int64_t c) {
    if (b->u->cfg.use_linear_projection) return b_linear(b, prefix, c, c, 1);
    unet_linear l = {0};
    int64_t shape[4] = {c, c, 1, 1};
    char name[NAME_LEN];
    b_name(name, prefix, "weight");
    l.w = b_conv1x1_as_matrix(b, b_weight(b, prefix, "weight", 4, shape), name);
    l.b = b_param(b, prefix, "bias", c);
    return l;
}

static unet_attn b_attn(build_ctx *b, const char *prefix, int64_t c, int heads, int64_t kv_dim, int cross) {
    unet_attn a = {.heads = heads, .head_dim = (int)(c / heads), .kv_from_context = cross};
    char p[NAME_LEN];
    b_name(p, prefix, "to_q");
    a.q = b_linear(b, p, c, c, 0);
    b_name(p, prefix, "to_k");
    a.k = b_linear(b, p, c, kv_dim, 0);
    b_name(p, prefix, "to_v");
    a.v = b_linear(b, p, c, kv_dim, 0);
    b_name(p, prefix, "to_out.0");
    a.out = b_linear(b, p, c, c, 1);
    return a;
}

static void b_tblock(build_ctx *b, const char *prefix, unet_tblock *t, int64_t c, int heads, int cross_dim,
                     int only_cross) {
    char p[NAME_LEN];
    b_name(p, prefix, "norm1");
    t->ln1 = b_norm(b, p, c, 0, 1e-5f);
    b_name(p, prefix, "attn1");
    t->attn1 = b_attn(b, p, c, heads, only_cross ? cross_dim : c, only_cross);
    b_name(p, prefix, "norm2");
    t->ln2 = b_norm(b, p, c, 0, 1e-5f);
    b_name(p, prefix, "attn2");
    t->attn2 = b_attn(b, p, c, heads, cross_dim, 1);
    b_name(p, prefix, "norm3");
    t->ln3 = b_norm(b, p, c, 0, 1e-5f);
    b_name(p, prefix, "ff.net.0.proj");
    t->ff_in = b_linear(b, p, c * 8, c, 1); /* GEGLU: 2 x (4 x dim) */
    b_name(p, prefix, "ff.net.2");
    t->ff_out = b_linear(b, p, c, c * 4, 1);
}

static void b_transformer(build_ctx *b, const char *prefix, unet_transformer *t, int64_t c, int heads,
                          int depth, int cross_dim, int only_cross) {
    char p[NAME_LEN];
    t->channels = (int)c;
    t->depth = depth;
    b_name(p, prefix, "norm");
    t->norm = b_norm(b, p, c, b->u->cfg.norm_groups, 1e-6f);
    b_name(p, prefix, "proj_in");
    t->proj_in = b_proj(b, p, c);
    b_name(p, prefix, "proj_out");
    t->proj_out = b_proj(b, p, c);
    t->blocks = calloc((size_t)depth, sizeof *t->blocks);
    if (!t->blocks) {
        b_fail(b, SDRT_RESOURCE_EXHAUSTED, "unet %s: %s", prefix, "out of memory");
        return;
    }
    for (int k = 0; k < depth; k++) {
        b_name(p, prefix, "transformer_blocks.%d", k);
        b_tblock(b, p, &t->blocks[k], c, heads, cross_dim, only_cross);
    }
}

static void b_resnet(build_ctx *b, const char *prefix, unet_resnet *r, int cin, int cout, float out_scale) {
    const unet_config *cfg = &b->u->cfg;
    char p[NAME_LEN];
    r->cin = cin;
    r->cout = cout;
    r->out_scale = out_scale;
    b_name(p, prefix, "norm1");
    r->norm1 = b_norm(b, p, cin, cfg->norm_groups, cfg->norm_eps);
    b_name(p, prefix, "conv1");
    r->conv1 = b_conv(b, p, cout, cin, 3, 1, 1);
    b_name(p, prefix, "time_emb_proj");
    r->temb = b_linear(b, p, cout, cfg->time_embed_dim, 1);
    b_name(p, prefix, "norm2");
    r->norm2 = b_norm(b, p, cout, cfg->norm_groups, cfg->norm_eps);
    b_name(p, prefix, "conv2");
    r->conv2 = b_conv(b, p, cout, cout, 3, 1, 1);
    if (cin != cout) {
        b_name(p, prefix, "conv_shortcut");
        r->shortcut = b_conv(b, p, cout, cin, 1, 1, 0);
    }
    if (cin % cfg->norm_groups != 0)
        b_fail(b, SDRT_INVALID_ARGUMENT, "unet %s: %s", prefix, "input channels not a multiple of norm_num_groups");
}

static int b_alloc_block(build_ctx *b, unet_block *blk, int nlayers, int with_attn) {
    blk->nlayers = nlayers;
    blk->resnets = calloc((size_t)nlayers, sizeof *blk->resnets);
    blk->attns = with_attn ? calloc((size_t)nlayers, sizeof *blk->attns) : NULL;
    if (blk->resnets && (!with_attn || blk->attns)) return 1;
    b_fail(b, SDRT_RESOURCE_EXHAUSTED, "unet %s: %s", "blocks", "out of memory");
    return 0;
}

static void b_down(build_ctx *b, int i, int cin) {
    const unet_config *cfg = &b->u->cfg;
    unet_block *blk = &b->u->down[i];
    int cout = cfg->block_out[i];
    char p[NAME_LEN];
    if (!b_alloc_block(b, blk, cfg->layers_down[i], cfg->down_attn[i])) return;
    for (int j = 0; j < blk->nlayers; j++) {
        b_name(p, "down_blocks", "%d.resnets.%d", i, j);
        b_resnet(b, p, &blk->resnets[j], j == 0 ? cin : cout, cout, cfg->resnet_out_scale);
        if (!blk->attns) continue;
        b_name(p, "down_blocks", "%d.attentions.%d", i, j);
        b_transformer(b, p, &blk->attns[j], cout, cfg->heads[i], cfg->tlayers_down[i], cfg->cross_dim[i],
                      cfg->only_cross[i]);
    }
    blk->has_sampler = i != cfg->nblocks - 1;
    if (!blk->has_sampler) return;
    b_name(p, "down_blocks", "%d.downsamplers.0.conv", i);
    blk->sampler = b_conv(b, p, cout, cout, 3, 2, cfg->downsample_padding);
}

static void b_mid(build_ctx *b) {
    const unet_config *cfg = &b->u->cfg;
    int last = cfg->nblocks - 1, c = cfg->block_out[last];
    b_resnet(b, "mid_block.resnets.0", &b->u->mid_res[0], c, c, cfg->mid_scale);
    /* diffusers' UNetMidBlock2DCrossAttn never uses only_cross_attention. */
    b_transformer(b, "mid_block.attentions.0", &b->u->mid_attn, c, cfg->heads[last], cfg->tlayers_down[last],
                  cfg->cross_dim[last], 0);
    b_resnet(b, "mid_block.resnets.1", &b->u->mid_res[1], c, c, cfg->mid_scale);
}

static void b_up(build_ctx *b, int i) {
    const unet_config *cfg = &b->u->cfg;
    int n = cfg->nblocks, d = n - 1 - i; /* d: the mirrored down block */
    int prev_out = cfg->block_out[i == 0 ? n - 1 : d + 1];
    int cout = cfg->block_out[d];
    int cin = cfg->block_out[d == 0 ? 0 : d - 1];
    unet_block *blk = &b->u->up[i];
    char p[NAME_LEN];
    if (!b_alloc_block(b, blk, cfg->layers_down[d] + 1, cfg->up_attn[i])) return;
    for (int j = 0; j < blk->nlayers; j++) {
        int skip = j == blk->nlayers - 1 ? cin : cout;
        int res_in = j == 0 ? prev_out : cout;
        b_name(p, "up_blocks", "%d.resnets.%d", i, j);
        b_resnet(b, p, &blk->resnets[j], res_in + skip, cout, cfg->resnet_out_scale);
        if (!blk->attns) continue;
        b_name(p, "up_blocks", "%d.attentions.%d", i, j);
        b_transformer(b, p, &blk->attns[j], cout, cfg->heads[d], cfg->tlayers_up[i][j], cfg->cross_dim[d],
                      cfg->only_cross[d]);
    }
    blk->has_sampler = i != n - 1;
    if (!blk->has_sampler) return;
    b_name(p, "up_blocks", "%d.upsamplers.0.conv", i);
    blk->sampler = b_conv(b, p, cout, cout, 3, 1, 1);
}

static void b_embeddings(build_ctx *b) {
    const unet_config *cfg = &b->u->cfg;
    int ted = cfg->time_embed_dim;
    b->u->time1 = b_linear(b, "time_embedding.linear_1", ted, cfg->block_out[0], 1);
    b->u->time2 = b_linear(b, "time_embedding.linear_2", ted, ted, 1);
    if (!cfg->text_time) return;
    b->u->add1 = b_linear(b, "add_embedding.linear_1", ted, cfg->add_embed_in, 1);
    b->u->add2 = b_linear(b, "add_embedding.linear_2", ted, ted, 1);
}

static void b_all(build_ctx *b) {
    const unet_config *cfg = &b->u->cfg;
    int kin = cfg->conv_in_kernel, kout = cfg->conv_out_kernel;
    b->u->conv_in = b_conv(b, "conv_in", cfg->block_out[0], cfg->in_channels, kin, 1, (kin - 1) / 2);
    b_embeddings(b);
    for (int i = 0; i < cfg->nblocks; i++) b_down(b, i, i == 0 ? cfg->block_out[0] : cfg->block_out[i - 1]);
    if (cfg->has_mid) b_mid(b);
    for (int i = 0; i < cfg->nblocks; i++) b_up(b, i);
    b->u->norm_out = b_norm(b, "conv_norm_out", cfg->block_out[0], cfg->norm_groups, cfg->norm_eps);
    b->u->conv_out = b_conv(b, "conv_out", cfg->out_channels, cfg->block_out[0], kout, 1, (kout - 1) / 2);
}

sdrt_status unet_new(const char *config_json, unet_weight_fn get, void *ctx, unet **out, char *err,
                     size_t errlen) {
    *out = NULL;
    unet *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "unet: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    sdrt_status st = unet_config_parse(config_json, &u->cfg, err, errlen);
    if (st != SDRT_OK) {
        free(u);
        return st;
    }
    build_ctx b = {u, get, ctx, err, errlen, SDRT_OK};
    b_all(&b);
    if (b.status != SDRT_OK) {
        unet_free(u);
        return b.status;
    }
    *out = u;
    return SDRT_OK;
}

static void free_transformer(unet_transformer *t) {
    free(t->blocks);
}

static void free_block(unet_block *blk) {
    for (int j = 0; blk->attns && j < blk->nlayers; j++) free_transformer(&blk->attns[j]);
    free(blk->attns);
    free(blk->resnets);
}

void unet_free(unet *u) {
    if (!u) return;
    for (int i = 0; i < UNET_MAX_BLOCKS; i++) {
        free_block(&u->down[i]);
        free_block(&u->up[i]);
    }
    free_transformer(&u->mid_attn);
    while (u->owned) {
        unet_owned *next = u->owned->next;
        free(u->owned);
        u->owned = next;
    }
    free(u);
}

const unet_config *unet_get_config(const unet *u) {
    return &u->cfg;
}
