/* arch_vae.c - tensor names and shapes of a diffusers AutoencoderKL with
 * four levels (8x spatial compression, as every SD VAE). */
#include <stdio.h>

#include "mkdemo.h"

static void resnet(md_list *l, const char *p, int cin, int cout) {
    char n[MD_NAME];
    md_name(n, "%s.norm1", p), md_norm(l, n, cin);
    md_name(n, "%s.conv1", p), md_conv(l, n, cout, cin, 3, MD_MATRIX);
    md_name(n, "%s.norm2", p), md_norm(l, n, cout);
    md_name(n, "%s.conv2", p), md_conv(l, n, cout, cout, 3, MD_RESIDUAL);
    if (cin != cout) md_name(n, "%s.conv_shortcut", p), md_conv(l, n, cout, cin, 1, MD_MATRIX);
}

static void mid_block(md_list *l, const char *part, int c) {
    char n[MD_NAME];
    md_name(n, "%s.mid_block.resnets.0", part), resnet(l, n, c, c);
    md_name(n, "%s.mid_block.attentions.0.group_norm", part), md_norm(l, n, c);
    const char *proj[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 4; i++) {
        md_name(n, "%s.mid_block.attentions.0.%s", part, proj[i]);
        md_linear(l, n, c, c, 1, i == 3 ? MD_RESIDUAL : MD_MATRIX);
    }
    md_name(n, "%s.mid_block.resnets.1", part), resnet(l, n, c, c);
}

static void encoder(md_list *l, const md_vae_cfg *c) {
    char n[MD_NAME];
    md_conv(l, "encoder.conv_in", c->block_out[0], 3, 3, MD_MATRIX);
    int ch = c->block_out[0];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            md_name(n, "encoder.down_blocks.%d.resnets.%d", i, j);
            resnet(l, n, ch, c->block_out[i]);
            ch = c->block_out[i];
        }
        if (i < 3) {
            md_name(n, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            md_conv(l, n, ch, ch, 3, MD_MATRIX);
        }
    }
    mid_block(l, "encoder", ch);
    md_norm(l, "encoder.conv_norm_out", ch);
    md_conv(l, "encoder.conv_out", 2 * c->latent_channels, ch, 3, MD_MATRIX);
}

static void decoder(md_list *l, const md_vae_cfg *c) {
    char n[MD_NAME];
    int ch = c->block_out[3];
    md_conv(l, "decoder.conv_in", ch, c->latent_channels, 3, MD_MATRIX);
    mid_block(l, "decoder", ch);
    for (int i = 0; i < 4; i++) {
        int out = c->block_out[3 - i];
        for (int j = 0; j <= c->layers_per_block; j++) {
            md_name(n, "decoder.up_blocks.%d.resnets.%d", i, j);
            resnet(l, n, ch, out);
            ch = out;
        }
        if (i < 3) {
            md_name(n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            md_conv(l, n, ch, ch, 3, MD_MATRIX);
        }
    }
    md_norm(l, "decoder.conv_norm_out", ch);
    md_conv(l, "decoder.conv_out", 3, ch, 3, MD_MATRIX);
}

void md_vae_tensors(md_list *l, const md_vae_cfg *c) {
    encoder(l, c);
    md_conv(l, "quant_conv", 2 * c->latent_channels, 2 * c->latent_channels, 1, MD_MATRIX);
    md_conv(l, "post_quant_conv", c->latent_channels, c->latent_channels, 1, MD_MATRIX);
    decoder(l, c);
}
