/* arch_unet.c - tensor names and shapes of a diffusers UNet2DConditionModel
 * in SDXL form: two levels (DownBlock2D, CrossAttnDownBlock2D), text_time
 * added conditioning, linear-projection transformers. */
#include <stdio.h>

#include "mkdemo.h"

static void resnet(md_list *l, const char *p, int cin, int cout, int temb) {
    char n[MD_NAME];
    md_name(n, "%s.norm1", p), md_norm(l, n, cin);
    md_name(n, "%s.conv1", p), md_conv(l, n, cout, cin, 3, MD_MATRIX);
    md_name(n, "%s.time_emb_proj", p), md_linear(l, n, cout, temb, 1, MD_MATRIX);
    md_name(n, "%s.norm2", p), md_norm(l, n, cout);
    md_name(n, "%s.conv2", p), md_conv(l, n, cout, cout, 3, MD_RESIDUAL);
    if (cin != cout) md_name(n, "%s.conv_shortcut", p), md_conv(l, n, cout, cin, 1, MD_MATRIX);
}

static void attn(md_list *l, const char *p, int c, int kv) {
    char n[MD_NAME];
    md_name(n, "%s.to_q", p), md_linear(l, n, c, c, 0, MD_MATRIX);
    md_name(n, "%s.to_k", p), md_linear(l, n, c, kv, 0, MD_MATRIX);
    md_name(n, "%s.to_v", p), md_linear(l, n, c, kv, 0, MD_MATRIX);
    md_name(n, "%s.to_out.0", p), md_linear(l, n, c, c, 1, MD_RESIDUAL);
}

/* BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward. */
static void transformer_block(md_list *l, const char *p, int c, int cross) {
    char n[MD_NAME];
    md_name(n, "%s.norm1", p), md_norm(l, n, c);
    md_name(n, "%s.attn1", p), attn(l, n, c, c);
    md_name(n, "%s.norm2", p), md_norm(l, n, c);
    md_name(n, "%s.attn2", p), attn(l, n, c, cross);
    md_name(n, "%s.norm3", p), md_norm(l, n, c);
    md_name(n, "%s.ff.net.0.proj", p), md_linear(l, n, 8 * c, c, 1, MD_MATRIX);
    md_name(n, "%s.ff.net.2", p), md_linear(l, n, c, 4 * c, 1, MD_RESIDUAL);
}

static void transformer2d(md_list *l, const char *p, int c, int depth, int cross) {
    char n[MD_NAME];
    md_name(n, "%s.norm", p), md_norm(l, n, c);
    md_name(n, "%s.proj_in", p), md_linear(l, n, c, c, 1, MD_MATRIX);
    for (int d = 0; d < depth; d++) {
        md_name(n, "%s.transformer_blocks.%d", p, d);
        transformer_block(l, n, c, cross);
    }
    md_name(n, "%s.proj_out", p), md_linear(l, n, c, c, 1, MD_RESIDUAL);
}

static void down_blocks(md_list *l, const md_unet_cfg *c, int temb) {
    char n[MD_NAME];
    int ch = c->block_out[0];
    for (int i = 0; i < 2; i++) {
        int out = c->block_out[i];
        for (int j = 0; j < c->layers_per_block; j++) {
            md_name(n, "down_blocks.%d.resnets.%d", i, j);
            resnet(l, n, j == 0 ? ch : out, out, temb);
            if (i == 1) { /* CrossAttnDownBlock2D */
                md_name(n, "down_blocks.%d.attentions.%d", i, j);
                transformer2d(l, n, out, c->transformer_layers[i], c->cross_dim);
            }
        }
        if (i == 0) md_conv(l, "down_blocks.0.downsamplers.0.conv", out, out, 3, MD_MATRIX);
        ch = out;
    }
}

static void up_blocks(md_list *l, const md_unet_cfg *c, int temb) {
    char n[MD_NAME];
    int rev[2] = {c->block_out[1], c->block_out[0]};
    int rev_depth[2] = {c->transformer_layers[1], c->transformer_layers[0]};
    int prev = c->block_out[1];
    for (int i = 0; i < 2; i++) {
        int out = rev[i], in = rev[i < 1 ? i + 1 : 1];
        for (int j = 0; j <= c->layers_per_block; j++) {
            int skip = j == c->layers_per_block ? in : out;
            md_name(n, "up_blocks.%d.resnets.%d", i, j);
            resnet(l, n, (j == 0 ? prev : out) + skip, out, temb);
            if (i == 0) { /* CrossAttnUpBlock2D */
                md_name(n, "up_blocks.%d.attentions.%d", i, j);
                transformer2d(l, n, out, rev_depth[i], c->cross_dim);
            }
        }
        if (i == 0) md_conv(l, "up_blocks.0.upsamplers.0.conv", out, out, 3, MD_MATRIX);
        prev = out;
    }
}

void md_unet_tensors(md_list *l, const md_unet_cfg *c) {
    int temb = c->time_embed_dim, top = c->block_out[1];
    md_conv(l, "conv_in", c->block_out[0], 4, 3, MD_MATRIX);
    md_linear(l, "time_embedding.linear_1", temb, c->block_out[0], 1, MD_MATRIX);
    md_linear(l, "time_embedding.linear_2", temb, temb, 1, MD_MATRIX);
    md_linear(l, "add_embedding.linear_1", temb, 6 * c->add_time_dim + c->pooled_dim, 1, MD_MATRIX);
    md_linear(l, "add_embedding.linear_2", temb, temb, 1, MD_MATRIX);
    down_blocks(l, c, temb);
    resnet(l, "mid_block.resnets.0", top, top, temb);
    transformer2d(l, "mid_block.attentions.0", top, c->transformer_layers[1], c->cross_dim);
    resnet(l, "mid_block.resnets.1", top, top, temb);
    up_blocks(l, c, temb);
    md_norm(l, "conv_norm_out", c->block_out[0]);
    md_conv(l, "conv_out", 4, c->block_out[0], 3, MD_MATRIX);
}
