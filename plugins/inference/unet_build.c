/* plugins/inference/unet_build.c - binds every block of a
 * UNet2DConditionModel from the SDK block library (sdrt/nn_blocks.h),
 * following the channel bookkeeping of diffusers'
 * UNet2DConditionModel.__init__, so that a config/weight mismatch is reported
 * at load time with the tensor's name, not as a wrong shape mid-inference. */
#include <stdio.h>
#include <stdlib.h>

#include "unet_internal.h"

/* A ResnetBlock2D with the time embedding (the block library checks that
 * each norm's channels split into norm_num_groups). */
static void b_resnet(sdrt_blk_loader *L, const unet_config *cfg, const char *prefix, sdrt_blk_resnet *r, int cin,
                     int cout, float out_scale) {
    sdrt_blk_bind_resnet(L, prefix, r, cin, cout, cfg->time_embed_dim, cfg->norm_groups, cfg->norm_eps, out_scale);
}

static void b_transformer(sdrt_blk_loader *L, const unet_config *cfg, const char *prefix, sdrt_blk_transformer *t,
                          int c, int heads, int depth, int cross_dim, int only_cross) {
    sdrt_blk_bind_transformer(L, prefix, t, c, heads, depth, cross_dim, only_cross, cfg->norm_groups,
                              cfg->use_linear_projection);
}

static void b_down(sdrt_blk_loader *L, unet *u, int i, int cin) {
    const unet_config *cfg = &u->cfg;
    sdrt_blk_stage *blk = &u->down[i];
    int cout = cfg->block_out[i];
    char p[SDRT_BLK_NAME];
    if (!sdrt_blk_stage_alloc(L, blk, cfg->layers_down[i], cfg->down_attn[i])) return;
    for (int j = 0; j < blk->nlayers; j++) {
        sdrt_blk_name(p, "down_blocks", "%d.resnets.%d", i, j);
        b_resnet(L, cfg, p, &blk->resnets[j], j == 0 ? cin : cout, cout, cfg->resnet_out_scale);
        if (!blk->attns) continue;
        sdrt_blk_name(p, "down_blocks", "%d.attentions.%d", i, j);
        b_transformer(L, cfg, p, &blk->attns[j], cout, cfg->heads[i], cfg->tlayers_down[i], cfg->cross_dim[i],
                      cfg->only_cross[i]);
    }
    blk->has_sampler = i != cfg->nblocks - 1;
    if (!blk->has_sampler) return;
    sdrt_blk_name(p, "down_blocks", "%d.downsamplers.0.conv", i);
    blk->sampler = sdrt_blk_bind_conv(L, p, cout, cout, 3, 2, cfg->downsample_padding);
}

static void b_mid(sdrt_blk_loader *L, unet *u) {
    const unet_config *cfg = &u->cfg;
    int last = cfg->nblocks - 1;
    sdrt_blk_bind_mid_cross(L, "mid_block", &u->mid, cfg->block_out[last], cfg->time_embed_dim, cfg->norm_groups,
                            cfg->norm_eps, cfg->mid_scale, cfg->heads[last], cfg->tlayers_down[last],
                            cfg->cross_dim[last], cfg->use_linear_projection);
}

static void b_up(sdrt_blk_loader *L, unet *u, int i) {
    const unet_config *cfg = &u->cfg;
    int n = cfg->nblocks, d = n - 1 - i; /* d: the mirrored down block */
    int prev_out = cfg->block_out[i == 0 ? n - 1 : d + 1];
    int cout = cfg->block_out[d];
    int cin = cfg->block_out[d == 0 ? 0 : d - 1];
    sdrt_blk_stage *blk = &u->up[i];
    char p[SDRT_BLK_NAME];
    if (!sdrt_blk_stage_alloc(L, blk, cfg->layers_down[d] + 1, cfg->up_attn[i])) return;
    for (int j = 0; j < blk->nlayers; j++) {
        int skip = j == blk->nlayers - 1 ? cin : cout;
        int res_in = j == 0 ? prev_out : cout;
        sdrt_blk_name(p, "up_blocks", "%d.resnets.%d", i, j);
        b_resnet(L, cfg, p, &blk->resnets[j], res_in + skip, cout, cfg->resnet_out_scale);
        if (!blk->attns) continue;
        sdrt_blk_name(p, "up_blocks", "%d.attentions.%d", i, j);
        b_transformer(L, cfg, p, &blk->attns[j], cout, cfg->heads[d], cfg->tlayers_up[i][j], cfg->cross_dim[d],
                      cfg->only_cross[d]);
    }
    blk->has_sampler = i != n - 1;
    if (!blk->has_sampler) return;
    sdrt_blk_name(p, "up_blocks", "%d.upsamplers.0.conv", i);
    blk->sampler = sdrt_blk_bind_conv(L, p, cout, cout, 3, 1, 1);
}

void unet_bind_encoder(sdrt_blk_loader *L, unet *u) {
    const unet_config *cfg = &u->cfg;
    int kin = cfg->conv_in_kernel;
    u->conv_in = sdrt_blk_bind_conv(L, "conv_in", cfg->block_out[0], cfg->in_channels, kin, 1, (kin - 1) / 2);
    sdrt_blk_bind_temb(L, "time_embedding", &u->time, cfg->block_out[0], cfg->time_embed_dim);
    if (cfg->text_time) sdrt_blk_bind_temb(L, "add_embedding", &u->add, cfg->add_embed_in, cfg->time_embed_dim);
    for (int i = 0; i < cfg->nblocks; i++) b_down(L, u, i, i == 0 ? cfg->block_out[0] : cfg->block_out[i - 1]);
    if (cfg->has_mid) b_mid(L, u);
}

static void b_all(sdrt_blk_loader *L, unet *u) {
    const unet_config *cfg = &u->cfg;
    int kout = cfg->conv_out_kernel;
    unet_bind_encoder(L, u);
    for (int i = 0; i < cfg->nblocks; i++) b_up(L, u, i);
    u->norm_out = sdrt_blk_bind_norm(L, "conv_norm_out", cfg->block_out[0], cfg->norm_groups, cfg->norm_eps);
    u->conv_out = sdrt_blk_bind_conv(L, "conv_out", cfg->out_channels, cfg->block_out[0], kout, 1, (kout - 1) / 2);
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
    sdrt_blk_loader L;
    sdrt_blk_loader_init(&L, "unet", get, ctx, &u->mem);
    b_all(&L, u);
    if (L.status != SDRT_OK) {
        snprintf(err, errlen, "%s", L.message);
        unet_free(u);
        return L.status;
    }
    *out = u;
    return SDRT_OK;
}

void unet_free(unet *u) {
    if (!u) return;
    sdrt_blk_mem_free(u->mem);
    free(u);
}

const unet_config *unet_get_config(const unet *u) {
    return &u->cfg;
}

int unet_n_skips_of(const unet *u) {
    return unet_n_skips(&u->cfg);
}
