/* plugins/model/ckpt_map.c - original-layout -> diffusers name mapping.
 *
 * Follows diffusers' convert_from_ckpt and ComfyUI's unet_to_diffusers. The
 * UNet's flat input_blocks/output_blocks numbering is turned into
 * (level, layer) pairs from the checkpoint's own downsample/upsample keys,
 * which is what lets tiny test models and full-size ones share one code. */
#include "ckpt_map.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNET_PREFIX "model.diffusion_model."
#define VAE_PREFIX "first_stage_model."

const char *ckpt_arch_name(ckpt_arch a) {
    static const char *names[] = {"unknown", "sd1", "sd2", "sdxl", "sdxl-refiner"};
    return names[a];
}

const char *ckpt_comp_name(ckpt_comp c) {
    static const char *names[] = {"unet", "vae", "text_encoder", "text_encoder_2"};
    return names[c];
}

/* Returns the rest of s after prefix, or NULL. */
static const char *after(const char *s, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* Parses "<int>." at s; returns the rest or NULL. */
static const char *take_index(const char *s, int *out) {
    if (!s || *s < '0' || *s > '9') return NULL;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '.' || v < 0 || v >= CKPT_MAX_BLOCKS) return NULL;
    *out = (int)v;
    return end + 1;
}

static int any_prefix(const char *const *names, size_t n, const char *prefix) {
    for (size_t i = 0; i < n; i++)
        if (after(names[i], prefix)) return 1;
    return 0;
}

ckpt_arch ckpt_detect(const char *const *names, size_t n) {
    if (!any_prefix(names, n, UNET_PREFIX)) return CKPT_UNKNOWN;
    if (any_prefix(names, n, "conditioner.embedders.1.model.")) return CKPT_SDXL;
    if (any_prefix(names, n, "conditioner.embedders.0.model.")) return CKPT_SDXL_REFINER;
    if (any_prefix(names, n, "cond_stage_model.model.")) return CKPT_SD2;
    if (any_prefix(names, n, "cond_stage_model.transformer.")) return CKPT_SD1;
    return CKPT_UNKNOWN;
}

/* Marks input blocks that hold a downsampler and output blocks that hold an
 * upsampler, then numbers levels and layers between those markers. */
void ckpt_layout_build(ckpt_layout *L, ckpt_arch arch, const char *const *names, size_t n) {
    memset(L, 0, sizeof *L);
    L->arch = arch;
    int in_max = -1, out_max = -1, up_marker[CKPT_MAX_BLOCKS] = {0};
    for (size_t k = 0; k < n; k++) {
        int i, j;
        const char *r;
        if ((r = take_index(after(names[k], UNET_PREFIX "input_blocks."), &i))) {
            if (i > in_max) in_max = i;
            if (strncmp(r, "0.op.", 5) == 0) L->in_down[i] = 1;
        } else if ((r = take_index(after(names[k], UNET_PREFIX "output_blocks."), &i))) {
            if (i > out_max) out_max = i;
            if ((r = take_index(r, &j)) && j > 0 && strncmp(r, "conv.", 5) == 0) up_marker[i] = 1;
        } else if ((r = take_index(after(names[k], VAE_PREFIX "decoder.up."), &i))) {
            if (i + 1 > L->vae_up_levels) L->vae_up_levels = i + 1;
        } else if ((r = take_index(after(names[k], "cond_stage_model.model.transformer.resblocks."), &i))) {
            if (i + 1 > L->text_layers) L->text_layers = i + 1;
        }
    }
    int level = 0, layer = 0;
    for (int i = 1; i <= in_max; i++) {
        L->in_level[i] = level;
        L->in_layer[i] = layer++;
        if (L->in_down[i]) level++, layer = 0;
    }
    level = 0, layer = 0;
    for (int i = 0; i <= out_max; i++) {
        L->out_level[i] = level;
        L->out_layer[i] = layer++;
        if (up_marker[i]) level++, layer = 0;
    }
}

__attribute__((format(printf, 4, 5)))
static int emit(ckpt_target *t, ckpt_comp comp, ckpt_op op, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->comp = comp;
    t->op = op;
    t->part = 0;
    return k > 0 && (size_t)k < sizeof t->name ? 1 : -1;
}

/* ---- UNet ---------------------------------------------------------------- */

static const char *const RESNET_RENAMES[][2] = {
    {"in_layers.0.", "norm1."}, {"in_layers.2.", "conv1."}, {"emb_layers.1.", "time_emb_proj."},
    {"out_layers.0.", "norm2."}, {"out_layers.3.", "conv2."}, {"skip_connection.", "conv_shortcut."},
};

static int unet_resnet(ckpt_target *t, const char *base, const char *rest) {
    for (size_t i = 0; i < sizeof RESNET_RENAMES / sizeof RESNET_RENAMES[0]; i++) {
        const char *r = after(rest, RESNET_RENAMES[i][0]);
        if (r) return emit(t, COMP_UNET, OP_SAME, "%s%s%s", base, RESNET_RENAMES[i][1], r);
    }
    return -1;
}

static int unet_input_block(const ckpt_layout *L, int i, const char *r, ckpt_target *t) {
    int j;
    char base[96];
    if (!(r = take_index(r, &j))) return -1;
    if (i == 0) return j == 0 ? emit(t, COMP_UNET, OP_SAME, "conv_in.%s", r) : -1;
    int lv = L->in_level[i], ly = L->in_layer[i];
    if (L->in_down[i]) {
        const char *op = after(r, "op.");
        return j == 0 && op ? emit(t, COMP_UNET, OP_SAME, "down_blocks.%d.downsamplers.0.conv.%s", lv, op) : -1;
    }
    if (j == 0) {
        snprintf(base, sizeof base, "down_blocks.%d.resnets.%d.", lv, ly);
        return unet_resnet(t, base, r);
    }
    if (j == 1) return emit(t, COMP_UNET, OP_SAME, "down_blocks.%d.attentions.%d.%s", lv, ly, r);
    return -1;
}

static int unet_output_block(const ckpt_layout *L, int i, const char *r, ckpt_target *t) {
    int j;
    char base[96];
    if (!(r = take_index(r, &j))) return -1;
    int lv = L->out_level[i], ly = L->out_layer[i];
    const char *conv = after(r, "conv.");
    if (j > 0 && conv) return emit(t, COMP_UNET, OP_SAME, "up_blocks.%d.upsamplers.0.conv.%s", lv, conv);
    if (j == 0) {
        snprintf(base, sizeof base, "up_blocks.%d.resnets.%d.", lv, ly);
        return unet_resnet(t, base, r);
    }
    if (j == 1) return emit(t, COMP_UNET, OP_SAME, "up_blocks.%d.attentions.%d.%s", lv, ly, r);
    return -1;
}

static int unet_middle_block(const char *r, ckpt_target *t) {
    int j;
    if (!(r = take_index(r, &j))) return -1;
    if (j == 1) return emit(t, COMP_UNET, OP_SAME, "mid_block.attentions.0.%s", r);
    if (j == 0) return unet_resnet(t, "mid_block.resnets.0.", r);
    if (j == 2) return unet_resnet(t, "mid_block.resnets.1.", r);
    return -1;
}

static int map_unet(const ckpt_layout *L, const char *s, ckpt_target *t) {
    static const char *const SIMPLE[][2] = {
        {"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
        {"label_emb.0.0.", "add_embedding.linear_1."}, {"label_emb.0.2.", "add_embedding.linear_2."},
        {"out.0.", "conv_norm_out."}, {"out.2.", "conv_out."},
    };
    const char *r;
    int i;
    for (size_t k = 0; k < sizeof SIMPLE / sizeof SIMPLE[0]; k++)
        if ((r = after(s, SIMPLE[k][0]))) return emit(t, COMP_UNET, OP_SAME, "%s%s", SIMPLE[k][1], r);
    if ((r = take_index(after(s, "input_blocks."), &i))) return unet_input_block(L, i, r, t);
    if ((r = take_index(after(s, "output_blocks."), &i))) return unet_output_block(L, i, r, t);
    if ((r = after(s, "middle_block."))) return unet_middle_block(r, t);
    return -1;
}

/* ---- VAE ----------------------------------------------------------------- */

static int vae_mid(const char *coder, const char *r, ckpt_target *t) {
    static const char *const ATTN[][2] = {
        {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."},
    };
    const char *x;
    if ((x = after(r, "block_1."))) return emit(t, COMP_VAE, OP_SAME, "%s.mid_block.resnets.0.%s", coder, x);
    if ((x = after(r, "block_2."))) return emit(t, COMP_VAE, OP_SAME, "%s.mid_block.resnets.1.%s", coder, x);
    if (!(r = after(r, "attn_1."))) return -1;
    for (size_t k = 0; k < sizeof ATTN / sizeof ATTN[0]; k++) {
        if (!(x = after(r, ATTN[k][0]))) continue;
        /* q/k/v/proj_out are 1x1 convs stored [C,C,1,1]; diffusers uses Linear. */
        ckpt_op op = k > 0 && strcmp(x, "weight") == 0 ? OP_SQUEEZE : OP_SAME;
        return emit(t, COMP_VAE, op, "%s.mid_block.attentions.0.%s%s", coder, ATTN[k][1], x);
    }
    return -1;
}

static int vae_resnet(const char *base, int a, int b, const char *r, ckpt_target *t) {
    const char *x = after(r, "nin_shortcut.");
    if (x) return emit(t, COMP_VAE, OP_SAME, "%s.%d.resnets.%d.conv_shortcut.%s", base, a, b, x);
    return emit(t, COMP_VAE, OP_SAME, "%s.%d.resnets.%d.%s", base, a, b, r);
}

static int map_vae(const ckpt_layout *L, const char *s, ckpt_target *t) {
    const char *r, *x;
    int i, j;
    for (int d = 0; d < 2; d++) {
        const char *coder = d ? "decoder" : "encoder";
        char pre[16];
        snprintf(pre, sizeof pre, "%s.", coder);
        if (!(r = after(s, pre))) continue;
        if ((x = after(r, "norm_out."))) return emit(t, COMP_VAE, OP_SAME, "%s.conv_norm_out.%s", coder, x);
        if (after(r, "conv_in.") || after(r, "conv_out.")) return emit(t, COMP_VAE, OP_SAME, "%s", s);
        if ((x = after(r, "mid."))) return vae_mid(coder, x, t);
        if (d == 0 && (x = take_index(after(r, "down."), &i))) {
            if ((r = after(x, "downsample.conv.")))
                return emit(t, COMP_VAE, OP_SAME, "encoder.down_blocks.%d.downsamplers.0.conv.%s", i, r);
            if ((r = take_index(after(x, "block."), &j))) return vae_resnet("encoder.down_blocks", i, j, r, t);
            return -1;
        }
        if (d == 1 && (x = take_index(after(r, "up."), &i))) {
            int u = L->vae_up_levels - 1 - i; /* the original numbers up levels bottom-up */
            if ((r = after(x, "upsample.conv.")))
                return emit(t, COMP_VAE, OP_SAME, "decoder.up_blocks.%d.upsamplers.0.conv.%s", u, r);
            if ((r = take_index(after(x, "block."), &j))) return vae_resnet("decoder.up_blocks", u, j, r, t);
            return -1;
        }
        return -1;
    }
    if (after(s, "quant_conv.") || after(s, "post_quant_conv.")) return emit(t, COMP_VAE, OP_SAME, "%s", s);
    return -1;
}

/* ---- text encoders ------------------------------------------------------- */

static int map_hf_clip(ckpt_comp comp, const char *r, ckpt_target *t) {
    if (strstr(r, "embeddings.position_ids")) return 0; /* a buffer, not a weight */
    const char *x = after(r, "text_model.");
    return emit(t, comp, OP_SAME, "text_model.%s", x ? x : r);
}

static int openclip_layer(ckpt_comp comp, int i, const char *r, ckpt_target out[3]) {
    static const char *const RENAMES[][2] = {
        {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"mlp.c_fc.", "mlp.fc1."},
        {"mlp.c_proj.", "mlp.fc2."}, {"attn.out_proj.", "self_attn.out_proj."},
    };
    const char *x;
    for (size_t k = 0; k < sizeof RENAMES / sizeof RENAMES[0]; k++)
        if ((x = after(r, RENAMES[k][0])))
            return emit(out, comp, OP_SAME, "text_model.encoder.layers.%d.%s%s", i, RENAMES[k][1], x);
    const char *kind = strcmp(r, "attn.in_proj_weight") == 0 ? "weight" : strcmp(r, "attn.in_proj_bias") == 0 ? "bias" : NULL;
    if (!kind) return -1;
    static const char qkv[3] = {'q', 'k', 'v'};
    for (int p = 0; p < 3; p++) {
        if (emit(&out[p], comp, OP_ROWS3, "text_model.encoder.layers.%d.self_attn.%c_proj.%s", i, qkv[p], kind) < 0) return -1;
        out[p].part = p;
    }
    return 3;
}

static int map_openclip(const ckpt_layout *L, ckpt_comp comp, const char *r, ckpt_target out[3]) {
    const char *x;
    int i;
    if (strcmp(r, "positional_embedding") == 0)
        return emit(out, comp, OP_SAME, "text_model.embeddings.position_embedding.weight");
    if (strcmp(r, "token_embedding.weight") == 0)
        return emit(out, comp, OP_SAME, "text_model.embeddings.token_embedding.weight");
    if ((x = after(r, "ln_final."))) return emit(out, comp, OP_SAME, "text_model.final_layer_norm.%s", x);
    if (strcmp(r, "logit_scale") == 0 || strcmp(r, "attn_mask") == 0) return 0;
    if (strcmp(r, "text_projection") == 0) {
        /* SD2 uses the plain CLIPTextModel: no projection. OpenCLIP stores
         * x @ P, diffusers a Linear weight P^T. */
        if (L->arch == CKPT_SD2) return 0;
        return emit(out, comp, OP_TRANSPOSE, "text_projection.weight");
    }
    if ((x = take_index(after(r, "transformer.resblocks."), &i))) {
        /* diffusers' SD2 encoder has the last layer removed (penultimate
         * layer output); that layer's weights are unused. */
        if (L->arch == CKPT_SD2 && i == L->text_layers - 1) return 0;
        return openclip_layer(comp, i, x, out);
    }
    return -1;
}

/* Schedule buffers and EMA copies that original checkpoints carry. */
static int known_unused(const char *s) {
    static const char *const BUFFERS[] = {
        "alphas_cumprod", "alphas_cumprod_prev", "betas", "log_one_minus_alphas_cumprod",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "posterior_variance",
        "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod", "logvar", "model_ema.decay", "model_ema.num_updates",
    };
    for (size_t k = 0; k < sizeof BUFFERS / sizeof BUFFERS[0]; k++)
        if (strcmp(s, BUFFERS[k]) == 0) return 1;
    return after(s, "model_ema.") != NULL;
}

int ckpt_map_name(const ckpt_layout *L, const char *src, ckpt_target out[3]) {
    const char *r;
    if (known_unused(src)) return 0;
    if ((r = after(src, UNET_PREFIX))) return map_unet(L, r, out);
    if ((r = after(src, VAE_PREFIX))) return map_vae(L, r, out);
    switch (L->arch) {
    case CKPT_SD1:
        if ((r = after(src, "cond_stage_model.transformer."))) return map_hf_clip(COMP_TEXT, r, out);
        break;
    case CKPT_SD2:
        if ((r = after(src, "cond_stage_model.model."))) return map_openclip(L, COMP_TEXT, r, out);
        break;
    case CKPT_SDXL:
        if ((r = after(src, "conditioner.embedders.0.transformer."))) return map_hf_clip(COMP_TEXT, r, out);
        if ((r = after(src, "conditioner.embedders.1.model."))) return map_openclip(L, COMP_TEXT2, r, out);
        break;
    case CKPT_SDXL_REFINER:
        if ((r = after(src, "conditioner.embedders.0.model."))) return map_openclip(L, COMP_TEXT2, r, out);
        break;
    default:
        break;
    }
    return -1;
}
