/* plugins/inference/unet_cost.c - multiply-accumulate count of one UNet
 * forward pass, walking the same structure as unet.c. Used by benchmarks to
 * relate step time to the machine's peak; element-wise ops and norms are
 * left out (they are memory-bound and small next to the matmuls). */
#include "unet_internal.h"

static double conv_macs(const sdrt_blk_conv *c, double ho, double wo) {
    if (!c->w) return 0.0;
    const int64_t *s = c->w->shape;
    return (double)s[0] * (double)s[1] * (double)s[2] * (double)s[3] * ho * wo;
}

static double linear_macs(const sdrt_blk_linear *l, double rows) {
    return l->w ? (double)l->w->shape[0] * (double)l->w->shape[1] * rows : 0.0;
}

static double resnet_macs(const sdrt_blk_resnet *r, double hw) {
    return conv_macs(&r->conv1, hw, 1) + conv_macs(&r->conv2, hw, 1) + conv_macs(&r->shortcut, hw, 1);
}

static double attn_macs(const sdrt_blk_attn *a, double lq, double lk) {
    double proj = linear_macs(&a->q, lq) + linear_macs(&a->k, lk) + linear_macs(&a->v, lk) + linear_macs(&a->out, lq);
    /* QK^T and PV: 2 x heads x Lq x Lk x head_dim. */
    return proj + 2.0 * a->heads * lq * lk * a->head_dim;
}

static double transformer_macs(const sdrt_blk_transformer *t, double hw, double ctx_len) {
    double m = linear_macs(&t->proj_in, hw) + linear_macs(&t->proj_out, hw);
    for (int k = 0; k < t->depth; k++) {
        const sdrt_blk_tblock *b = &t->blocks[k];
        m += attn_macs(&b->attn1, hw, b->attn1.cross ? ctx_len : hw);
        m += attn_macs(&b->attn2, hw, ctx_len);
        m += linear_macs(&b->ff_in, hw) + linear_macs(&b->ff_out, hw);
    }
    return m;
}

static double block_macs(const sdrt_blk_stage *blk, double hw, double ctx_len) {
    double m = 0.0;
    for (int j = 0; j < blk->nlayers; j++) {
        m += resnet_macs(&blk->resnets[j], hw);
        if (blk->attns) m += transformer_macs(&blk->attns[j], hw, ctx_len);
    }
    return m;
}

double unet_macs(const unet *u, int batch, int h, int w, int ctx_len) {
    const unet_config *cfg = &u->cfg;
    int hs[UNET_MAX_BLOCKS + 1], ws[UNET_MAX_BLOCKS + 1];
    hs[0] = h;
    ws[0] = w;
    for (int i = 0; i < cfg->nblocks; i++) { /* stride-2, pad-1, 3x3 conv sizes */
        hs[i + 1] = u->down[i].has_sampler ? (hs[i] + 1) / 2 : hs[i];
        ws[i + 1] = u->down[i].has_sampler ? (ws[i] + 1) / 2 : ws[i];
    }
    double m = conv_macs(&u->conv_in, h, w) + conv_macs(&u->conv_out, h, w);
    for (int i = 0; i < cfg->nblocks; i++) {
        double hw = (double)hs[i] * ws[i];
        m += block_macs(&u->down[i], hw, ctx_len);
        if (u->down[i].has_sampler) m += conv_macs(&u->down[i].sampler, hs[i + 1], ws[i + 1]);
    }
    int last = cfg->nblocks - 1;
    double hw_mid = (double)hs[last] * ws[last];
    if (cfg->has_mid)
        for (int j = 0; j <= u->mid.nlayers; j++) {
            m += resnet_macs(&u->mid.resnets[j], hw_mid);
            if (j < u->mid.nlayers) m += transformer_macs(&u->mid.transformers[j], hw_mid, ctx_len);
        }
    for (int i = 0; i < cfg->nblocks; i++) {
        int d = last - i;
        m += block_macs(&u->up[i], (double)hs[d] * ws[d], ctx_len);
        if (u->up[i].has_sampler) m += conv_macs(&u->up[i].sampler, hs[d - 1], ws[d - 1]);
    }
    return m * batch;
}
