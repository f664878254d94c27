/* configs.c - the JSON configs of the demo model, structured as diffusers
 * 0.27 / transformers 4.38 write them for SDXL (see the tiny-sdxl reference). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkdemo.h"

int md_write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%.3800s/%.200s", dir, name);
    FILE *f = fopen(path, "wb");
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    if (rc) fprintf(stderr, "sdrt-mkdemo: cannot write %s\n", path);
    return rc;
}

static const char model_index[] =
    "{\n  \"_class_name\": \"StableDiffusionXLPipeline\",\n  \"_diffusers_version\": \"0.27.2\",\n"
    "  \"feature_extractor\": [null, null],\n  \"force_zeros_for_empty_prompt\": true,\n"
    "  \"image_encoder\": [null, null],\n  \"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"],\n"
    "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    "  \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n"
    "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n  \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n"
    "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n}\n";

/* SDXL base's scheduler defaults. */
static const char scheduler[] =
    "{\n  \"_class_name\": \"EulerDiscreteScheduler\",\n  \"_diffusers_version\": \"0.27.2\",\n"
    "  \"beta_end\": 0.012,\n  \"beta_schedule\": \"scaled_linear\",\n  \"beta_start\": 0.00085,\n"
    "  \"clip_sample\": false,\n  \"interpolation_type\": \"linear\",\n  \"num_train_timesteps\": 1000,\n"
    "  \"prediction_type\": \"epsilon\",\n  \"rescale_betas_zero_snr\": false,\n  \"sample_max_value\": 1.0,\n"
    "  \"set_alpha_to_one\": false,\n  \"sigma_max\": null,\n  \"sigma_min\": null,\n  \"skip_prk_steps\": true,\n"
    "  \"steps_offset\": 1,\n  \"timestep_spacing\": \"leading\",\n  \"timestep_type\": \"discrete\",\n"
    "  \"trained_betas\": null,\n  \"use_karras_sigmas\": false\n}\n";

static int write_unet(const char *dir, const md_unet_cfg *u) {
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\n  \"_class_name\": \"UNet2DConditionModel\",\n  \"_diffusers_version\": \"0.27.2\",\n"
             "  \"act_fn\": \"silu\",\n  \"addition_embed_type\": \"text_time\",\n"
             "  \"addition_embed_type_num_heads\": 64,\n  \"addition_time_embed_dim\": %d,\n"
             "  \"attention_head_dim\": [%d, %d],\n  \"attention_type\": \"default\",\n"
             "  \"block_out_channels\": [%d, %d],\n  \"center_input_sample\": false,\n"
             "  \"class_embed_type\": null,\n  \"class_embeddings_concat\": false,\n  \"conv_in_kernel\": 3,\n"
             "  \"conv_out_kernel\": 3,\n  \"cross_attention_dim\": %d,\n  \"cross_attention_norm\": null,\n"
             "  \"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\"],\n  \"downsample_padding\": 1,\n"
             "  \"dropout\": 0.0,\n  \"dual_cross_attention\": false,\n  \"encoder_hid_dim\": null,\n"
             "  \"encoder_hid_dim_type\": null,\n  \"flip_sin_to_cos\": true,\n  \"freq_shift\": 0,\n"
             "  \"in_channels\": 4,\n  \"layers_per_block\": %d,\n  \"mid_block_only_cross_attention\": null,\n"
             "  \"mid_block_scale_factor\": 1,\n  \"mid_block_type\": \"UNetMidBlock2DCrossAttn\",\n"
             "  \"norm_eps\": 1e-05,\n  \"norm_num_groups\": 32,\n  \"num_attention_heads\": null,\n"
             "  \"num_class_embeds\": null,\n  \"only_cross_attention\": false,\n  \"out_channels\": 4,\n"
             "  \"projection_class_embeddings_input_dim\": %d,\n  \"resnet_out_scale_factor\": 1.0,\n"
             "  \"resnet_skip_time_act\": false,\n  \"resnet_time_scale_shift\": \"default\",\n"
             "  \"reverse_transformer_layers_per_block\": null,\n  \"sample_size\": 32,\n"
             "  \"time_cond_proj_dim\": null,\n  \"time_embedding_act_fn\": null,\n  \"time_embedding_dim\": null,\n"
             "  \"time_embedding_type\": \"positional\",\n  \"timestep_post_act\": null,\n"
             "  \"transformer_layers_per_block\": [%d, %d],\n"
             "  \"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\"],\n  \"upcast_attention\": false,\n"
             "  \"use_linear_projection\": true\n}\n",
             u->add_time_dim, u->head_dim[0], u->head_dim[1], u->block_out[0], u->block_out[1], u->cross_dim,
             u->layers_per_block, 6 * u->add_time_dim + u->pooled_dim, u->transformer_layers[0],
             u->transformer_layers[1]);
    return md_write_text(dir, "config.json", buf);
}

static int write_vae(const char *dir, const md_vae_cfg *v) {
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\n  \"_class_name\": \"AutoencoderKL\",\n  \"_diffusers_version\": \"0.27.2\",\n"
             "  \"act_fn\": \"silu\",\n  \"block_out_channels\": [%d, %d, %d, %d],\n"
             "  \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
             "\"DownEncoderBlock2D\"],\n  \"force_upcast\": true,\n  \"in_channels\": 3,\n"
             "  \"latent_channels\": %d,\n  \"latents_mean\": null,\n  \"latents_std\": null,\n"
             "  \"layers_per_block\": %d,\n  \"norm_num_groups\": 32,\n  \"out_channels\": 3,\n"
             "  \"sample_size\": 64,\n  \"scaling_factor\": 0.13025,\n"
             "  \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", "
             "\"UpDecoderBlock2D\"]\n}\n",
             v->block_out[0], v->block_out[1], v->block_out[2], v->block_out[3], v->latent_channels,
             v->layers_per_block);
    return md_write_text(dir, "config.json", buf);
}

static int write_clip(const char *dir, const md_clip_cfg *c, int vocab) {
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\n  \"architectures\": [\"%s\"],\n  \"attention_dropout\": 0.0,\n  \"bos_token_id\": %d,\n"
             "  \"eos_token_id\": %d,\n  \"hidden_act\": \"%s\",\n  \"hidden_size\": %d,\n"
             "  \"initializer_factor\": 1.0,\n  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n"
             "  \"layer_norm_eps\": 1e-05,\n  \"max_position_embeddings\": 77,\n"
             "  \"model_type\": \"clip_text_model\",\n  \"num_attention_heads\": %d,\n"
             "  \"num_hidden_layers\": %d,\n  \"pad_token_id\": 1,\n  \"projection_dim\": %d,\n"
             "  \"torch_dtype\": \"float32\",\n  \"transformers_version\": \"4.38.0\",\n  \"vocab_size\": %d\n}\n",
             c->projection ? "CLIPTextModelWithProjection" : "CLIPTextModel", vocab - 2, vocab - 1,
             c->projection ? "gelu" : "quick_gelu", c->hidden, c->intermediate, c->heads, c->layers,
             c->projection ? c->projection : c->hidden, vocab);
    return md_write_text(dir, "config.json", buf);
}

/* tokenizer_config.json; the second tokenizer pads with "!" (id 0) as SDXL's does. */
static int write_tokenizer_config(const char *dir, int vocab, int pad_bang) {
    char buf[2048], bang[256] = "";
    if (pad_bang)
        snprintf(bang, sizeof bang,
                 "    \"0\": {\"content\": \"!\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
                 "\"single_word\": false, \"special\": true},\n");
    snprintf(buf, sizeof buf,
             "{\n  \"add_prefix_space\": false,\n  \"added_tokens_decoder\": {\n%s"
             "    \"%d\": {\"content\": \"<|startoftext|>\", \"lstrip\": false, \"normalized\": true, "
             "\"rstrip\": false, \"single_word\": false, \"special\": true},\n"
             "    \"%d\": {\"content\": \"<|endoftext|>\", \"lstrip\": false, \"normalized\": true, "
             "\"rstrip\": false, \"single_word\": false, \"special\": true}\n  },\n"
             "  \"bos_token\": \"<|startoftext|>\",\n  \"clean_up_tokenization_spaces\": true,\n"
             "  \"do_lower_case\": true,\n  \"eos_token\": \"<|endoftext|>\",\n  \"errors\": \"replace\",\n"
             "  \"model_max_length\": 77,\n  \"pad_token\": \"%s\",\n  \"tokenizer_class\": \"CLIPTokenizer\",\n"
             "  \"unk_token\": \"<|endoftext|>\"\n}\n",
             bang, vocab - 2, vocab - 1, pad_bang ? "!" : "<|endoftext|>");
    return md_write_text(dir, "tokenizer_config.json", buf);
}

static int write_special_tokens(const char *dir, int pad_bang) {
    char buf[1024];
    const char *tok = "{\"content\": \"%s\", \"lstrip\": false, \"normalized\": true, \"rstrip\": false, "
                      "\"single_word\": false}";
    char bos[256], eos[256];
    snprintf(bos, sizeof bos, tok, "<|startoftext|>");
    snprintf(eos, sizeof eos, tok, "<|endoftext|>");
    snprintf(buf, sizeof buf,
             "{\n  \"bos_token\": %s,\n  \"eos_token\": %s,\n  \"pad_token\": \"%s\",\n  \"unk_token\": %s\n}\n",
             bos, eos, pad_bang ? "!" : "<|endoftext|>", eos);
    return md_write_text(dir, "special_tokens_map.json", buf);
}

static int tokenizer_dir(const char *root, const char *name, int pad_bang) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%.3800s/%.200s", root, name);
    int vocab = md_write_tokenizer_vocab(dir);
    if (vocab < 0) return -1;
    if (write_tokenizer_config(dir, vocab, pad_bang)) return -1;
    return write_special_tokens(dir, pad_bang);
}

int md_write_configs(const char *root, const md_unet_cfg *u, const md_vae_cfg *v, const md_clip_cfg *te1,
                     const md_clip_cfg *te2) {
    char dir[4096];
    int vocab = md_vocab_size();
    if (md_write_text(root, "model_index.json", model_index)) return -1;
    snprintf(dir, sizeof dir, "%.3800s/scheduler", root);
    if (md_write_text(dir, "scheduler_config.json", scheduler)) return -1;
    snprintf(dir, sizeof dir, "%.3800s/unet", root);
    if (write_unet(dir, u)) return -1;
    snprintf(dir, sizeof dir, "%.3800s/vae", root);
    if (write_vae(dir, v)) return -1;
    snprintf(dir, sizeof dir, "%.3800s/text_encoder", root);
    if (write_clip(dir, te1, vocab)) return -1;
    snprintf(dir, sizeof dir, "%.3800s/text_encoder_2", root);
    if (write_clip(dir, te2, vocab)) return -1;
    if (tokenizer_dir(root, "tokenizer", 0)) return -1;
    return tokenizer_dir(root, "tokenizer_2", 1);
}
