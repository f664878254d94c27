/* plugins/inference/unet_config.c - diffusers unet/config.json -> unet_config.
 *
 * Replicates how UNet2DConditionModel.__init__ expands its arguments: scalars
 * broadcast to one value per block, the up path reads the reversed lists,
 * and `num_attention_heads` falls back to `attention_head_dim` (diffusers'
 * historical naming quirk: in SD1/SDXL configs that field holds the number
 * of heads, not their width).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "unet.h"

typedef struct cfg_ctx {
    const cJSON *root;
    char *err;
    size_t errlen;
    sdrt_status status;
} cfg_ctx;

static int cfg_fail(cfg_ctx *c, sdrt_status st, const char *field, const char *reason) {
    if (c->status == SDRT_OK) {
        snprintf(c->err, c->errlen, "unet config: %s: %s", field, reason);
        c->status = st;
    }
    return 0;
}

/* The item, or NULL when absent or JSON null (both mean "default"). */
static const cJSON *cfg_item(const cfg_ctx *c, const char *field) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, field);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

static int json_is_int(const cJSON *it) {
    return cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble) &&
           fabs(it->valuedouble) < 1e9;
}

static int cfg_int(cfg_ctx *c, const char *field, int def, int min, int max) {
    const cJSON *it = cfg_item(c, field);
    if (!it) return def;
    if (!json_is_int(it)) return cfg_fail(c, SDRT_INVALID_ARGUMENT, field, "not an integer"), def;
    int v = (int)it->valuedouble;
    if (v < min || v > max) return cfg_fail(c, SDRT_INVALID_ARGUMENT, field, "out of range"), def;
    return v;
}

static float cfg_float(cfg_ctx *c, const char *field, float def) {
    const cJSON *it = cfg_item(c, field);
    if (!it) return def;
    if (!cJSON_IsNumber(it)) return cfg_fail(c, SDRT_INVALID_ARGUMENT, field, "not a number"), def;
    return (float)it->valuedouble;
}

static int cfg_bool(cfg_ctx *c, const char *field, int def) {
    const cJSON *it = cfg_item(c, field);
    if (!it) return def;
    if (!cJSON_IsBool(it)) return cfg_fail(c, SDRT_INVALID_ARGUMENT, field, "not a boolean"), def;
    return cJSON_IsTrue(it);
}

/* Requires `field` to be absent/null, or equal to the string `ok`. */
static void cfg_require_default(cfg_ctx *c, const char *field, const char *ok) {
    const cJSON *it = cfg_item(c, field);
    if (!it) return;
    if (ok && cJSON_IsString(it) && strcmp(it->valuestring, ok) == 0) return;
    if (!ok && cJSON_IsFalse(it)) return;
    cfg_fail(c, SDRT_UNSUPPORTED, field, ok ? "only the default value is supported"
                                            : "must be null (not used by Stable Diffusion)");
}

/* An int or a list of n ints (bools when `is_bool`) into out[0..n). */
static void cfg_per_block(cfg_ctx *c, const char *field, int n, int def, int min, int is_bool,
                          int *out) {
    const cJSON *it = cfg_item(c, field);
    for (int i = 0; i < n; i++) out[i] = def;
    if (!it) return;
    if (cJSON_IsArray(it)) {
        if (cJSON_GetArraySize(it) != n) {
            cfg_fail(c, SDRT_INVALID_ARGUMENT, field, "list length differs from block_out_channels");
            return;
        }
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, it) {
            int ok = is_bool ? cJSON_IsBool(e) : (json_is_int(e) && e->valuedouble >= min);
            if (!ok) {
                cfg_fail(c, SDRT_INVALID_ARGUMENT, field, is_bool ? "list item is not a boolean"
                                                                  : "list item is not a valid integer");
                return;
            }
            out[i++] = is_bool ? cJSON_IsTrue(e) : (int)e->valuedouble;
        }
        return;
    }
    int ok = is_bool ? cJSON_IsBool(it) : (json_is_int(it) && it->valuedouble >= min);
    if (!ok) {
        cfg_fail(c, SDRT_INVALID_ARGUMENT, field, is_bool ? "not a boolean or list" : "not a valid integer or list");
        return;
    }
    for (int i = 0; i < n; i++) out[i] = is_bool ? cJSON_IsTrue(it) : (int)it->valuedouble;
}

/* block_out_channels fixes the number of blocks. */
static void cfg_blocks(cfg_ctx *c, unet_config *cfg) {
    const cJSON *it = cfg_item(c, "block_out_channels");
    static const int def[4] = {320, 640, 1280, 1280};
    if (!it) {
        cfg->nblocks = 4;
        memcpy(cfg->block_out, def, sizeof def);
        return;
    }
    int n = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : 0;
    if (n < 1 || n > UNET_MAX_BLOCKS) {
        cfg_fail(c, SDRT_INVALID_ARGUMENT, "block_out_channels", "must be a list of 1 to 8 integers");
        return;
    }
    cfg->nblocks = n;
    cfg_per_block(c, "block_out_channels", n, 0, 1, 0, cfg->block_out);
}

static void cfg_block_types(cfg_ctx *c, const char *field, const char *plain, const char *attn,
                            int n, int *out) {
    const cJSON *it = cfg_item(c, field);
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != n) {
        cfg_fail(c, SDRT_INVALID_ARGUMENT, field, "must be a list as long as block_out_channels");
        return;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, it) {
        if (cJSON_IsString(e) && strcmp(e->valuestring, plain) == 0) {
            out[i++] = 0;
        } else if (cJSON_IsString(e) && strcmp(e->valuestring, attn) == 0) {
            out[i++] = 1;
        } else {
            cfg_fail(c, SDRT_UNSUPPORTED, field, "only DownBlock2D/CrossAttnDownBlock2D and "
                                                 "UpBlock2D/CrossAttnUpBlock2D are supported");
            return;
        }
    }
}

/* reverse_transformer_layers_per_block: list (per up block) of lists (per
 * resnet) of ints; otherwise the reversed down values, one per resnet. */
static void cfg_up_depths(cfg_ctx *c, unet_config *cfg) {
    int n = cfg->nblocks;
    const cJSON *rev = cfg_item(c, "reverse_transformer_layers_per_block");
    for (int i = 0; i < n; i++) {
        int layers = cfg->layers_down[n - 1 - i] + 1;
        if (layers > UNET_MAX_BLOCKS) {
            cfg_fail(c, SDRT_UNSUPPORTED, "layers_per_block", "more than 7 layers per block");
            return;
        }
        for (int j = 0; j < layers; j++) cfg->tlayers_up[i][j] = cfg->tlayers_down[n - 1 - i];
        if (!rev) continue;
        const cJSON *row = cJSON_IsArray(rev) ? cJSON_GetArrayItem(rev, i) : NULL;
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != layers) {
            cfg_fail(c, SDRT_INVALID_ARGUMENT, "reverse_transformer_layers_per_block",
                     "must hold one list per up block with one integer per layer");
            return;
        }
        for (int j = 0; j < layers; j++) {
            const cJSON *e = cJSON_GetArrayItem(row, j);
            if (!json_is_int(e) || e->valuedouble < 1) {
                cfg_fail(c, SDRT_INVALID_ARGUMENT, "reverse_transformer_layers_per_block",
                         "item is not a positive integer");
                return;
            }
            cfg->tlayers_up[i][j] = (int)e->valuedouble;
        }
    }
}

static void cfg_unsupported_features(cfg_ctx *c) {
    static const char *const must_be_null[] = {
        "class_embed_type", "encoder_hid_dim_type", "encoder_hid_dim", "time_cond_proj_dim",
        "time_embedding_act_fn", "timestep_post_act", "cross_attention_norm", "num_class_embeds",
    };
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++)
        cfg_require_default(c, must_be_null[i], NULL);
    cfg_require_default(c, "act_fn", "silu");
    cfg_require_default(c, "resnet_time_scale_shift", "default");
    cfg_require_default(c, "attention_type", "default");
    cfg_require_default(c, "time_embedding_type", "positional");
    cfg_require_default(c, "mid_block_type", "UNetMidBlock2DCrossAttn");
    if (cfg_bool(c, "resnet_skip_time_act", 0))
        cfg_fail(c, SDRT_UNSUPPORTED, "resnet_skip_time_act", "only false is supported");
    if (cfg_bool(c, "dual_cross_attention", 0))
        cfg_fail(c, SDRT_UNSUPPORTED, "dual_cross_attention", "only false is supported");
    if (cfg_bool(c, "class_embeddings_concat", 0))
        cfg_fail(c, SDRT_UNSUPPORTED, "class_embeddings_concat", "only false is supported");
}

static void cfg_addition_embed(cfg_ctx *c, unet_config *cfg) {
    const cJSON *it = cfg_item(c, "addition_embed_type");
    if (!it) return;
    if (!cJSON_IsString(it) || strcmp(it->valuestring, "text_time") != 0) {
        cfg_fail(c, SDRT_UNSUPPORTED, "addition_embed_type", "only null or \"text_time\" is supported");
        return;
    }
    cfg->text_time = 1;
    cfg->addition_time_embed_dim = cfg_int(c, "addition_time_embed_dim", 0, 2, 1 << 16);
    cfg->add_embed_in = cfg_int(c, "projection_class_embeddings_input_dim", 0, 1, 1 << 20);
    if (c->status == SDRT_OK && (cfg->addition_time_embed_dim == 0 || cfg->add_embed_in == 0))
        cfg_fail(c, SDRT_INVALID_ARGUMENT, "addition_time_embed_dim",
                 "text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim");
}

/* Heads per block: num_attention_heads, else attention_head_dim (quirk). */
static void cfg_heads(cfg_ctx *c, unet_config *cfg) {
    const char *field = cfg_item(c, "num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
    cfg_per_block(c, field, cfg->nblocks, 8, 1, 0, cfg->heads);
}

static void cfg_body(cfg_ctx *c, unet_config *cfg) {
    int n;
    cfg_unsupported_features(c);
    cfg->in_channels = cfg_int(c, "in_channels", 4, 1, 1 << 16);
    cfg->out_channels = cfg_int(c, "out_channels", 4, 1, 1 << 16);
    cfg_blocks(c, cfg);
    if (c->status != SDRT_OK) return;
    n = cfg->nblocks;
    cfg_block_types(c, "down_block_types", "DownBlock2D", "CrossAttnDownBlock2D", n, cfg->down_attn);
    cfg_block_types(c, "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D", n, cfg->up_attn);
    cfg_per_block(c, "layers_per_block", n, 2, 1, 0, cfg->layers_down);
    cfg_heads(c, cfg);
    cfg_per_block(c, "cross_attention_dim", n, 1280, 1, 0, cfg->cross_dim);
    cfg_per_block(c, "only_cross_attention", n, 0, 0, 1, cfg->only_cross);
    cfg_per_block(c, "transformer_layers_per_block", n, 1, 1, 0, cfg->tlayers_down);
    if (c->status != SDRT_OK) return;
    cfg_up_depths(c, cfg);
    /* Absent means the default mid block; an explicit null means none. */
    cfg->has_mid = !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c->root, "mid_block_type"));
    cfg->norm_groups = cfg_int(c, "norm_num_groups", 32, 1, 1 << 16);
    cfg->norm_eps = cfg_float(c, "norm_eps", 1e-5f);
    cfg->flip_sin_to_cos = cfg_bool(c, "flip_sin_to_cos", 1);
    cfg->freq_shift = cfg_float(c, "freq_shift", 0.0f);
    cfg->time_embed_dim = cfg_int(c, "time_embedding_dim", cfg->block_out[0] * 4, 1, 1 << 20);
    cfg->use_linear_projection = cfg_bool(c, "use_linear_projection", 0);
    cfg->resnet_out_scale = cfg_float(c, "resnet_out_scale_factor", 1.0f);
    cfg->mid_scale = cfg_float(c, "mid_block_scale_factor", 1.0f);
    cfg->conv_in_kernel = cfg_int(c, "conv_in_kernel", 3, 1, 15);
    cfg->conv_out_kernel = cfg_int(c, "conv_out_kernel", 3, 1, 15);
    cfg->downsample_padding = cfg_int(c, "downsample_padding", 1, 1, 1);
    cfg->center_input_sample = cfg_bool(c, "center_input_sample", 0);
    cfg_addition_embed(c, cfg);
}

static void cfg_check_divisibility(cfg_ctx *c, const unet_config *cfg) {
    for (int i = 0; i < cfg->nblocks; i++) {
        if (cfg->block_out[i] % cfg->norm_groups != 0)
            cfg_fail(c, SDRT_INVALID_ARGUMENT, "block_out_channels", "not a multiple of norm_num_groups");
        if (cfg->block_out[i] % cfg->heads[i] != 0)
            cfg_fail(c, SDRT_INVALID_ARGUMENT, "attention_head_dim",
                     "block_out_channels is not a multiple of the number of heads");
        if (cfg->resnet_out_scale == 0.0f || cfg->mid_scale == 0.0f)
            cfg_fail(c, SDRT_INVALID_ARGUMENT, "resnet_out_scale_factor", "must not be 0");
    }
}

sdrt_status unet_config_parse(const char *config_json, unet_config *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(config_json ? config_json : "");
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "unet config: not a JSON object");
        return SDRT_INVALID_ARGUMENT;
    }
    cfg_ctx c = {root, err, errlen, SDRT_OK};
    cfg_body(&c, cfg);
    if (c.status == SDRT_OK) cfg_check_divisibility(&c, cfg);
    cJSON_Delete(root);
    return c.status;
}
