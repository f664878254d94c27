/* tests/lora/test_keys.c - the LoRA key parser and SGM name mapping. */
#include <string.h>

#include "harness.h"
#include "keys.h"

static void expect(const char *key, int comp, lora_part part, const char *path, int sgm) {
    lora_key k;
    int rc = lora_key_parse(key, &k);
    CHECK(rc == 0, "%s: not parsed", key);
    if (rc) return;
    CHECK(k.component == comp, "%s: component %d", key, k.component);
    CHECK(k.part == part, "%s: part %s", key, lora_part_name(k.part));
    CHECK(!strcmp(k.path, path), "%s: path %s, want %s", key, k.path, path);
    CHECK(k.sgm == sgm, "%s: sgm %d", key, k.sgm);
}

static void test_kohya(void) {
    expect("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", 0, PART_DOWN,
           "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 0);
    expect("lora_unet_up_blocks_1_attentions_2_transformer_blocks_0_attn1_to_out_0.lora_up.weight", 0, PART_UP,
           "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0", 0);
    expect("lora_unet_down_blocks_0_resnets_0_time_emb_proj.alpha", 0, PART_ALPHA,
           "down_blocks.0.resnets.0.time_emb_proj", 0);
    expect("lora_te_text_model_encoder_layers_11_self_attn_out_proj.lora_down.weight", 1, PART_DOWN,
           "text_model.encoder.layers.11.self_attn.out_proj", 0);
    expect("lora_te2_text_model_encoder_layers_0_mlp_fc1.hada_w1_a", 2, PART_HADA_W1_A,
           "text_model.encoder.layers.0.mlp.fc1", 0);
    expect("lora_te1_text_model_encoder_layers_0_layer_norm1.diff", 1, PART_DIFF,
           "text_model.encoder.layers.0.layer_norm1", 0);
    expect("lora_unet_input_blocks_4_1_transformer_blocks_0_ff_net_0_proj.lokr_w1", 0, PART_LOKR_W1,
           "input_blocks.4.1.transformer_blocks.0.ff.net.0.proj", 1);
    expect("lora_unet_time_embed_0.lora_down.weight", 0, PART_DOWN, "time_embed.0", 1);
}

static void test_diffusers_peft(void) {
    expect("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_v.lora_A.weight", 0, PART_DOWN,
           "mid_block.attentions.0.transformer_blocks.0.attn2.to_v", 0);
    expect("text_encoder_2.text_model.encoder.layers.1.mlp.fc2.lora.up.weight", 2, PART_UP,
           "text_model.encoder.layers.1.mlp.fc2", 0);
    expect("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight", 1, PART_DOWN,
           "text_model.encoder.layers.0.self_attn.q_proj", 0);
    expect("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight", 0, PART_UP,
           "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0", 0);
    expect("text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.down.weight", 1, PART_DOWN,
           "text_model.encoder.layers.0.self_attn.k_proj", 0);
    expect("base_model.model.down_blocks.0.attentions.0.proj_in.lora_B.weight", 0, PART_UP,
           "down_blocks.0.attentions.0.proj_in", 0);
}

static void test_rejects(void) {
    const char *bad[] = {"", "lora_unet_", "lora_unet_.lora_down.weight", "lora_unet__x.alpha",
                         "lora_unet_a_.alpha", "model.diffusion_model.x.weight", ".alpha", "unet..lora_A.weight",
                         "foo.lora_A.weight", "lora_unet_x.lora_down.bias", NULL};
    for (int i = 0; bad[i]; i++) {
        lora_key k;
        CHECK(lora_key_parse(bad[i], &k) != 0 || strcmp(bad[i], "unet..lora_A.weight") == 0, "'%s' parsed", bad[i]);
    }
}

static void sgm(const lora_unet_layout *L, const char *in, const char *want) {
    char out[LORA_PATH_MAX];
    int rc = lora_sgm_to_diffusers(in, L, out, sizeof out);
    if (!want) {
        CHECK(rc != 0, "%s -> %s, want none", in, out);
        return;
    }
    CHECK(rc == 0 && !strcmp(out, want), "%s -> %s (rc %d), want %s", in, rc ? "-" : out, rc, want);
}

static void test_sgm_sdxl(void) {
    lora_unet_layout L;
    CHECK(lora_unet_layout_from_config("{\"layers_per_block\":2,\"down_block_types\":[\"DownBlock2D\","
                                       "\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\"],\"up_block_types\":"
                                       "[\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"UpBlock2D\"]}", &L) == 0,
          "config");
    sgm(&L, "input_blocks.4.1.transformer_blocks.0.attn1.to_q", "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q");
    sgm(&L, "input_blocks.8.1.proj_in", "down_blocks.2.attentions.1.proj_in");
    sgm(&L, "input_blocks.1.0.in_layers.2", "down_blocks.0.resnets.0.conv1");
    sgm(&L, "input_blocks.3.0.op", "down_blocks.0.downsamplers.0.conv");
    sgm(&L, "input_blocks.0.0", "conv_in");
    sgm(&L, "input_blocks.1.1.proj_in", NULL); /* level 0 has no attention */
    sgm(&L, "middle_block.1.transformer_blocks.9.attn2.to_k", "mid_block.attentions.0.transformer_blocks.9.attn2.to_k");
    sgm(&L, "middle_block.2.out_layers.3", "mid_block.resnets.1.conv2");
    sgm(&L, "output_blocks.2.2.conv", "up_blocks.0.upsamplers.0.conv");
    sgm(&L, "output_blocks.5.1.proj_out", "up_blocks.1.attentions.2.proj_out");
    sgm(&L, "output_blocks.6.0.skip_connection", "up_blocks.2.resnets.0.conv_shortcut");
    sgm(&L, "output_blocks.8.1.conv", NULL); /* the last level has no upsampler */
    sgm(&L, "time_embed.2", "time_embedding.linear_2");
    sgm(&L, "label_emb.0.0", "add_embedding.linear_1");
    sgm(&L, "out.2", "conv_out");
    sgm(&L, "input_blocks.x", NULL);
    sgm(&L, "input_blocks.99.0.in_layers.2", NULL);
}

const test_entry TESTS[] = {
    {"kohya", test_kohya},
    {"diffusers_peft", test_diffusers_peft},
    {"rejects", test_rejects},
    {"sgm_sdxl", test_sgm_sdxl},
    {0},
};
