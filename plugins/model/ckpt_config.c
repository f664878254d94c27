/* plugins/model/ckpt_config.c - diffusers config.json texts for single-file
 * checkpoints, read off the tensor shapes so any size works.
 *
 * What shapes cannot tell (head counts, sample sizes, VAE scaling factor)
 * follows the architecture's published configs: SD1 uses 8 heads per
 * block; SD2/SDXL a head dimension of 64 (16 below 256 channels, the
 * convention of the tiny test pipelines); CLIP encoders 64 per head (8 below
 * 256). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

#define MAX_LEVELS 8

static const sdrt_tensor *T(struct sdrt_model *m, const char *comp, const char *fmt, int a, int b) {
    char name[192];
    snprintf(name, sizeof name, fmt, a, b);
    return store_tensor(m, comp, name);
}

static int count(struct sdrt_model *m, const char *comp, const char *fmt, int a) {
    int n = 0;
    while (n < 64 && T(m, comp, fmt, a, n)) n++;
    return n;
}

static int count_layers(struct sdrt_model *m, const char *comp) {
    int n = 0;
    while (n < 256 && T(m, comp, "text_model.encoder.layers.%d.mlp.fc1.weight", n, 0)) n++;
    return n;
}

static cJSON *int_array(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *str_array(const char *const *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

static char *finish(cJSON *o) {
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static int unet_heads(const char *arch, int channels) {
    if (strcmp(arch, "sd1") == 0) return 8;
    int head_dim = channels >= 256 ? 64 : 16;
    return channels / head_dim > 0 ? channels / head_dim : 1;
}

/* The pooled text embedding width feeding SDXL's add_embedding. */
static int pooled_dim(struct sdrt_model *m) {
    const sdrt_tensor *p = store_tensor(m, "text_encoder_2", "text_projection.weight");
    return p ? (int)p->shape[0] : 0;
}

static void unet_addition(struct sdrt_model *m, cJSON *o) {
    const sdrt_tensor *l1 = store_tensor(m, "unet", "add_embedding.linear_1.weight");
    if (!l1) return;
    int in = (int)l1->shape[1];
    /* base: 6 time ids (sizes, crop, target); refiner: 5 (aesthetic score). */
    int ids = strcmp(m->arch, "sdxl-refiner") == 0 ? 5 : 6;
    /* No text encoder in the file (a ControlNet): SDXL's 256-wide time ids. */
    int pooled = pooled_dim(m) ? pooled_dim(m) : in - ids * 256;
    cJSON_AddStringToObject(o, "addition_embed_type", "text_time");
    cJSON_AddNumberToObject(o, "addition_time_embed_dim", (in - pooled) / ids);
    cJSON_AddNumberToObject(o, "projection_class_embeddings_input_dim", in);
}

char *ckpt_config_unet(struct sdrt_model *m) {
    const sdrt_tensor *cin = store_tensor(m, "unet", "conv_in.weight");
    const sdrt_tensor *cout = store_tensor(m, "unet", "conv_out.weight");
    if (!cin) return NULL; /* conv_out: absent in a ControlNet's encoder half */
    int levels = 0, ch[MAX_LEVELS], depth[MAX_LEVELS], heads[MAX_LEVELS], cross = 0, linear = 0;
    const char *down[MAX_LEVELS], *up[MAX_LEVELS];
    while (levels < MAX_LEVELS && T(m, "unet", "down_blocks.%d.resnets.%d.conv2.weight", levels, 0)) {
        int L = levels++;
        ch[L] = (int)T(m, "unet", "down_blocks.%d.resnets.%d.conv2.weight", L, 0)->shape[0];
        const sdrt_tensor *pin = T(m, "unet", "down_blocks.%d.attentions.%d.proj_in.weight", L, 0);
        depth[L] = pin ? count(m, "unet", "down_blocks.%d.attentions.0.transformer_blocks.%d.attn1.to_q.weight", L) : 1;
        down[L] = pin ? "CrossAttnDownBlock2D" : "DownBlock2D";
        heads[L] = unet_heads(m->arch, ch[L]);
        if (pin) linear = pin->ndim == 2;
        const sdrt_tensor *k = T(m, "unet", "down_blocks.%d.attentions.0.transformer_blocks.0.attn2.to_k.weight", L, 0);
        if (k) cross = (int)k->shape[1];
    }
    if (!levels) return NULL;
    for (int U = 0; U < levels; U++)
        up[U] = T(m, "unet", "up_blocks.%d.attentions.%d.proj_in.weight", U, 0) ? "CrossAttnUpBlock2D" : "UpBlock2D";
    int uniform = 1;
    for (int L = 1; L < levels; L++) uniform &= depth[L] == depth[0];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "UNet2DConditionModel");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.27.2");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    if (strcmp(m->arch, "sd1") == 0) cJSON_AddNumberToObject(o, "attention_head_dim", 8);
    else cJSON_AddItemToObject(o, "attention_head_dim", int_array(heads, levels));
    cJSON_AddItemToObject(o, "block_out_channels", int_array(ch, levels));
    cJSON_AddBoolToObject(o, "center_input_sample", 0);
    cJSON_AddNumberToObject(o, "cross_attention_dim", cross);
    cJSON_AddItemToObject(o, "down_block_types", str_array(down, levels));
    cJSON_AddNumberToObject(o, "downsample_padding", 1);
    cJSON_AddBoolToObject(o, "flip_sin_to_cos", 1);
    cJSON_AddNumberToObject(o, "freq_shift", 0);
    cJSON_AddNumberToObject(o, "in_channels", (double)cin->shape[1]);
    cJSON_AddNumberToObject(o, "layers_per_block", count(m, "unet", "down_blocks.%d.resnets.%d.conv1.weight", 0));
    cJSON_AddNumberToObject(o, "mid_block_scale_factor", 1);
    cJSON_AddStringToObject(o, "mid_block_type", store_tensor(m, "unet", "mid_block.attentions.0.proj_in.weight")
                                                     ? "UNetMidBlock2DCrossAttn" : "UNetMidBlock2D");
    cJSON_AddNumberToObject(o, "norm_eps", 1e-5);
    cJSON_AddNumberToObject(o, "norm_num_groups", 32);
    cJSON_AddNumberToObject(o, "out_channels", cout ? (double)cout->shape[0] : 4.0);
    int sample = !strcmp(m->arch, "sd2") ? 96 : !strncmp(m->arch, "sdxl", 4) ? 128 : 64;
    cJSON_AddNumberToObject(o, "sample_size", sample);
    if (uniform) cJSON_AddNumberToObject(o, "transformer_layers_per_block", depth[0]);
    else cJSON_AddItemToObject(o, "transformer_layers_per_block", int_array(depth, levels));
    cJSON_AddItemToObject(o, "up_block_types", str_array(up, levels));
    cJSON_AddBoolToObject(o, "upcast_attention", !strcmp(m->arch, "sd2"));
    cJSON_AddBoolToObject(o, "use_linear_projection", linear);
    unet_addition(m, o);
    return finish(o);
}

char *ckpt_config_vae(struct sdrt_model *m) {
    const sdrt_tensor *cin = store_tensor(m, "vae", "encoder.conv_in.weight");
    const sdrt_tensor *cout = store_tensor(m, "vae", "decoder.conv_out.weight");
    const sdrt_tensor *pq = store_tensor(m, "vae", "post_quant_conv.weight");
    if (!cin || !cout || !pq) return NULL;
    int levels = 0, ch[MAX_LEVELS];
    const char *down[MAX_LEVELS], *up[MAX_LEVELS];
    const sdrt_tensor *t;
    while (levels < MAX_LEVELS && (t = T(m, "vae", "encoder.down_blocks.%d.resnets.%d.conv2.weight", levels, 0))) {
        ch[levels] = (int)t->shape[0];
        down[levels] = "DownEncoderBlock2D";
        up[levels++] = "UpDecoderBlock2D";
    }
    if (!levels) return NULL;
    int xl = !strncmp(m->arch, "sdxl", 4);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "AutoencoderKL");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.27.2");
    cJSON_AddStringToObject(o, "act_fn", "silu");
    cJSON_AddItemToObject(o, "block_out_channels", int_array(ch, levels));
    cJSON_AddItemToObject(o, "down_block_types", str_array(down, levels));
    cJSON_AddBoolToObject(o, "force_upcast", 1);
    cJSON_AddNumberToObject(o, "in_channels", (double)cin->shape[1]);
    cJSON_AddNumberToObject(o, "latent_channels", (double)pq->shape[0]);
    cJSON_AddNumberToObject(o, "layers_per_block", count(m, "vae", "encoder.down_blocks.%d.resnets.%d.conv1.weight", 0));
    cJSON_AddNumberToObject(o, "norm_num_groups", 32);
    cJSON_AddNumberToObject(o, "out_channels", (double)cout->shape[0]);
    cJSON_AddNumberToObject(o, "sample_size", xl ? 1024 : !strcmp(m->arch, "sd2") ? 768 : 512);
    cJSON_AddNumberToObject(o, "scaling_factor", xl ? 0.13025 : 0.18215);
    cJSON_AddItemToObject(o, "up_block_types", str_array(up, levels));
    return finish(o);
}

char *ckpt_config_text(struct sdrt_model *m, const char *comp) {
    const sdrt_tensor *tok = store_tensor(m, comp, "text_model.embeddings.token_embedding.weight");
    const sdrt_tensor *pos = store_tensor(m, comp, "text_model.embeddings.position_embedding.weight");
    const sdrt_tensor *fc1 = store_tensor(m, comp, "text_model.encoder.layers.0.mlp.fc1.weight");
    if (!tok || !pos || !fc1) return NULL;
    const sdrt_tensor *proj = store_tensor(m, comp, "text_projection.weight");
    int hidden = (int)tok->shape[1];
    /* Encoders converted from OpenCLIP (SD2, SDXL's second) use exact GELU;
     * OpenAI CLIP-L uses quick_gelu. */
    int openclip = !strcmp(m->arch, "sd2") || !strcmp(comp, "text_encoder_2");
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString(proj ? "CLIPTextModelWithProjection" : "CLIPTextModel"));
    cJSON_AddItemToObject(o, "architectures", arch);
    cJSON_AddNumberToObject(o, "bos_token_id", 0);
    cJSON_AddNumberToObject(o, "eos_token_id", 2);
    cJSON_AddStringToObject(o, "hidden_act", openclip ? "gelu" : "quick_gelu");
    cJSON_AddNumberToObject(o, "hidden_size", hidden);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)fc1->shape[0]);
    cJSON_AddNumberToObject(o, "layer_norm_eps", 1e-5);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)pos->shape[0]);
    cJSON_AddStringToObject(o, "model_type", "clip_text_model");
    cJSON_AddNumberToObject(o, "num_attention_heads", hidden / (hidden >= 256 ? 64 : 8));
    cJSON_AddNumberToObject(o, "num_hidden_layers", count_layers(m, comp));
    cJSON_AddNumberToObject(o, "pad_token_id", 1);
    cJSON_AddNumberToObject(o, "projection_dim", proj ? (double)proj->shape[0] : hidden);
    cJSON_AddNumberToObject(o, "vocab_size", (double)tok->shape[0]);
    return finish(o);
}

char *ckpt_config_scheduler(struct sdrt_model *m) {
    int xl = !strncmp(m->arch, "sdxl", 4);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", xl ? "EulerDiscreteScheduler" : "PNDMScheduler");
    cJSON_AddNumberToObject(o, "beta_end", 0.012);
    cJSON_AddStringToObject(o, "beta_schedule", "scaled_linear");
    cJSON_AddNumberToObject(o, "beta_start", 0.00085);
    cJSON_AddBoolToObject(o, "clip_sample", 0);
    cJSON_AddNumberToObject(o, "num_train_timesteps", 1000);
    cJSON_AddStringToObject(o, "prediction_type", "epsilon");
    cJSON_AddBoolToObject(o, "set_alpha_to_one", 0);
    cJSON_AddBoolToObject(o, "skip_prk_steps", 1);
    cJSON_AddNumberToObject(o, "steps_offset", 1);
    cJSON_AddStringToObject(o, "timestep_spacing", "leading");
    if (xl) cJSON_AddStringToObject(o, "interpolation_type", "linear");
    return finish(o);
}
