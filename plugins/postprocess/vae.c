/* vae.c - the AutoencoderKL network (diffusers Encoder/Decoder) as a
 * builder over the SDK block library (sdrt/nn_blocks.h): the blocks are
 * bound from the config and the weights on first use, then run; at most a
 * few activations of one resolution are alive at a time. */
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
    sdrt_blk_mem_free(v->mem);
    v->mem = NULL;
    memset(&v->enc, 0, sizeof v->enc);
    memset(&v->dec, 0, sizeof v->dec);
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

/* ---- binding ---------------------------------------------------------------- */

/* UNetMidBlock2D: resnet, Attention (one head over the H*W positions, group
 * norm, residual), resnet, at constant width. */
static void bind_mid(sdrt_blk_loader *L, const vae_config *cfg, const char *prefix, sdrt_blk_mid *m, int ch) {
    sdrt_blk_bind_mid(L, prefix, m, ch, 0, cfg->norm_groups, VAE_EPS, 1.0f, 1);
}

/* Decoder: conv_in, mid, UpDecoderBlock2Ds (layers_per_block + 1 resnets,
 * Upsample2D but in the last), GroupNorm + SiLU + conv_out. */
static void bind_decoder(sdrt_blk_loader *L, const vae_config *cfg, vae_coder *d) {
    int n = cfg->n_blocks, ch = cfg->block_out[n - 1];
    char p[SDRT_BLK_NAME];
    if (cfg->use_post_quant_conv)
        d->quant = sdrt_blk_bind_conv(L, "post_quant_conv", cfg->latent_channels, cfg->latent_channels, 1, 1, 0);
    d->conv_in = sdrt_blk_bind_conv(L, "decoder.conv_in", ch, cfg->latent_channels, 3, 1, 1);
    bind_mid(L, cfg, "decoder.mid_block", &d->mid, ch);
    for (int i = 0; i < n; i++) {
        sdrt_blk_stage *s = &d->blocks[i];
        int cout = cfg->block_out[n - 1 - i];
        if (!sdrt_blk_stage_alloc(L, s, cfg->layers_per_block + 1, 0)) return;
        for (int j = 0; j < s->nlayers; j++) {
            sdrt_blk_name(p, "decoder.up_blocks", "%d.resnets.%d", i, j);
            sdrt_blk_bind_resnet(L, p, &s->resnets[j], ch, cout, 0, cfg->norm_groups, VAE_EPS, 1.0f);
            ch = cout;
        }
        s->has_sampler = i < n - 1;
        if (!s->has_sampler) continue;
        sdrt_blk_name(p, "decoder.up_blocks", "%d.upsamplers.0.conv", i);
        s->sampler = sdrt_blk_bind_conv(L, p, cout, cout, 3, 1, 1);
    }
    d->norm_out = sdrt_blk_bind_norm(L, "decoder.conv_norm_out", ch, cfg->norm_groups, VAE_EPS);
    d->conv_out = sdrt_blk_bind_conv(L, "decoder.conv_out", cfg->out_channels, ch, 3, 1, 1);
}

/* Encoder: conv_in, DownEncoderBlock2Ds (Downsample2D(padding=0) but in
 * the last), mid, GroupNorm + SiLU + conv_out to mean and logvar. */
static void bind_encoder(sdrt_blk_loader *L, const vae_config *cfg, vae_coder *e) {
    int n = cfg->n_blocks, ch = cfg->block_out[0];
    char p[SDRT_BLK_NAME];
    e->conv_in = sdrt_blk_bind_conv(L, "encoder.conv_in", ch, cfg->in_channels, 3, 1, 1);
    for (int i = 0; i < n; i++) {
        sdrt_blk_stage *s = &e->blocks[i];
        int cout = cfg->block_out[i];
        if (!sdrt_blk_stage_alloc(L, s, cfg->layers_per_block, 0)) return;
        for (int j = 0; j < s->nlayers; j++) {
            sdrt_blk_name(p, "encoder.down_blocks", "%d.resnets.%d", i, j);
            sdrt_blk_bind_resnet(L, p, &s->resnets[j], ch, cout, 0, cfg->norm_groups, VAE_EPS, 1.0f);
            ch = cout;
        }
        s->has_sampler = i < n - 1;
        if (!s->has_sampler) continue;
        sdrt_blk_name(p, "encoder.down_blocks", "%d.downsamplers.0.conv", i);
        s->sampler = sdrt_blk_bind_conv(L, p, cout, cout, 3, 2, 0);
    }
    bind_mid(L, cfg, "encoder.mid_block", &e->mid, ch);
    e->norm_out = sdrt_blk_bind_norm(L, "encoder.conv_norm_out", ch, cfg->norm_groups, VAE_EPS);
    int moments = 2 * cfg->latent_channels;
    e->conv_out = sdrt_blk_bind_conv(L, "encoder.conv_out", moments, ch, 3, 1, 1);
    if (cfg->use_quant_conv) e->quant = sdrt_blk_bind_conv(L, "quant_conv", moments, moments, 1, 1, 0);
}

/* Binds c (the encoder or decoder) on first use. Returns 0 or -1. */
static int bind(vae_net *v, vae_coder *c, int encoder) {
    if (v->status != SDRT_OK) return -1;
    if (c->bound) return 0;
    sdrt_blk_loader L;
    sdrt_blk_loader_init(&L, "vae", v->weight, v->weight_ctx, &v->mem);
    if (encoder) bind_encoder(&L, v->cfg, c);
    else bind_decoder(&L, v->cfg, c);
    if (L.status != SDRT_OK) return vae_fail(v, L.status, "%s", L.message);
    c->bound = 1;
    return 0;
}

/* ---- forward -------------------------------------------------------------- */

/* Drops *slot and stores next in it. */
static void replace(vae_net *v, sdrt_tensor **slot, sdrt_tensor *next) {
    sdrt_nn_drop(v->nn, *slot);
    *slot = next;
}

/* GroupNorm + SiLU + 3x3 conv: the tail of both Encoder and Decoder. */
static sdrt_tensor *output_head(vae_net *v, const vae_coder *c, const sdrt_tensor *x) {
    sdrt_tensor *h = sdrt_blk_norm_fwd(v->nn, &c->norm_out, x, 1);
    if (h) replace(v, &h, sdrt_blk_conv_fwd(v->nn, &c->conv_out, h));
    return h;
}

sdrt_tensor *vae_decode_tensor(vae_net *v, const sdrt_tensor *z) {
    const vae_config *cfg = v->cfg;
    const vae_coder *d = &v->dec;
    if (bind(v, &v->dec, 0)) return NULL;
    sdrt_tensor *h = d->quant.w ? sdrt_blk_conv_fwd(v->nn, &d->quant, z) : sdrt_nn_copy(v->nn, z, SDRT_DTYPE_F32);
    if (h) replace(v, &h, sdrt_blk_conv_fwd(v->nn, &d->conv_in, h));
    if (h) replace(v, &h, sdrt_blk_mid_fwd(v->nn, &d->mid, h, NULL, NULL));
    for (int i = 0; i < cfg->n_blocks && h; i++) h = sdrt_blk_up_fwd(v->nn, &d->blocks[i], h, NULL, NULL, NULL, NULL, 0, 0);
    if (h) replace(v, &h, output_head(v, d, h));
    return nn_failed(v) ? (sdrt_nn_drop(v->nn, h), NULL) : h;
}

sdrt_tensor *vae_encode_tensor(vae_net *v, const sdrt_tensor *x) {
    const vae_config *cfg = v->cfg;
    const vae_coder *e = &v->enc;
    if (bind(v, &v->enc, 1)) return NULL;
    sdrt_tensor *h = sdrt_blk_conv_fwd(v->nn, &e->conv_in, x);
    for (int i = 0; i < cfg->n_blocks && h; i++) h = sdrt_blk_down_fwd(v->nn, &e->blocks[i], h, NULL, NULL, NULL, NULL);
    if (h) replace(v, &h, sdrt_blk_mid_fwd(v->nn, &e->mid, h, NULL, NULL));
    if (h) replace(v, &h, output_head(v, e, h));
    if (h && e->quant.w) replace(v, &h, sdrt_blk_conv_fwd(v->nn, &e->quant, h));
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
