/* vae_config.c - reading diffusers' vae/config.json (AutoencoderKL). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "vae.h"

static const cJSON *field(const cJSON *root, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(root, name);
}

/* Reads an optional integer field; absent keeps *out. */
static int read_int(const cJSON *root, const char *name, int min, int max, int *out, char *err,
                    size_t errlen) {
    const cJSON *f = field(root, name);
    if (!f || cJSON_IsNull(f)) return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble != (double)(int)f->valuedouble) {
        snprintf(err, errlen, "vae config: %s: not an integer", name);
        return -1;
    }
    if (f->valueint < min || f->valueint > max) {
        snprintf(err, errlen, "vae config: %s: %d is outside [%d, %d]", name, f->valueint, min, max);
        return -1;
    }
    *out = f->valueint;
    return 0;
}

/* Reads an optional number; absent or null keeps *out. */
static int read_float(const cJSON *root, const char *name, float *out, char *err, size_t errlen) {
    const cJSON *f = field(root, name);
    if (!f || cJSON_IsNull(f)) return 0;
    if (!cJSON_IsNumber(f)) {
        snprintf(err, errlen, "vae config: %s: not a number", name);
        return -1;
    }
    *out = (float)f->valuedouble;
    return 0;
}

static int read_bool(const cJSON *root, const char *name, int *out) {
    const cJSON *f = field(root, name);
    if (cJSON_IsBool(f)) *out = cJSON_IsTrue(f);
    return 0;
}

static int read_blocks(const cJSON *root, vae_config *cfg, char *err, size_t errlen) {
    const cJSON *arr = field(root, "block_out_channels");
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "vae config: block_out_channels: missing or not an array");
        return -1;
    }
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > VAE_MAX_BLOCKS) {
        snprintf(err, errlen, "vae config: block_out_channels: %d entries, expected 1..%d", n,
                 VAE_MAX_BLOCKS);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(v) || v->valueint < 1 || v->valueint > 65536) {
            snprintf(err, errlen, "vae config: block_out_channels[%d]: not a positive integer", i);
            return -1;
        }
        cfg->block_out[i] = v->valueint;
    }
    cfg->n_blocks = n;
    return 0;
}

static int check_groups(const vae_config *cfg, char *err, size_t errlen) {
    for (int i = 0; i < cfg->n_blocks; i++) {
        if (cfg->block_out[i] % cfg->norm_groups != 0) {
            snprintf(err, errlen,
                     "vae config: block_out_channels[%d]=%d is not a multiple of norm_num_groups=%d",
                     i, cfg->block_out[i], cfg->norm_groups);
            return -1;
        }
    }
    return 0;
}

int vae_config_parse(const char *json, vae_config *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    cfg->layers_per_block = 1; /* diffusers' defaults */
    cfg->in_channels = 3;
    cfg->out_channels = 3;
    cfg->latent_channels = 4;
    cfg->norm_groups = 32;
    cfg->scaling_factor = 0.18215f;
    cfg->use_quant_conv = 1;
    cfg->use_post_quant_conv = 1;
    cfg->force_upcast = 1; /* AutoencoderKL's default */
    if (!json) {
        snprintf(err, errlen, "vae config: missing");
        return -1;
    }
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "vae config: not a JSON object");
        return -1;
    }
    int rc = read_blocks(root, cfg, err, errlen);
    if (!rc) rc = read_int(root, "layers_per_block", 1, 64, &cfg->layers_per_block, err, errlen);
    if (!rc) rc = read_int(root, "in_channels", 1, 64, &cfg->in_channels, err, errlen);
    if (!rc) rc = read_int(root, "out_channels", 1, 64, &cfg->out_channels, err, errlen);
    if (!rc) rc = read_int(root, "latent_channels", 1, 1024, &cfg->latent_channels, err, errlen);
    if (!rc) rc = read_int(root, "norm_num_groups", 1, 1024, &cfg->norm_groups, err, errlen);
    if (!rc) rc = read_float(root, "scaling_factor", &cfg->scaling_factor, err, errlen);
    if (!rc) rc = read_float(root, "shift_factor", &cfg->shift_factor, err, errlen);
    if (!rc) rc = read_bool(root, "force_upcast", &cfg->force_upcast);
    if (!rc) rc = read_bool(root, "use_quant_conv", &cfg->use_quant_conv);
    if (!rc) rc = read_bool(root, "use_post_quant_conv", &cfg->use_post_quant_conv);
    if (!rc) rc = check_groups(cfg, err, errlen);
    if (!rc && !(cfg->scaling_factor > 0)) {
        snprintf(err, errlen, "vae config: scaling_factor: must be > 0");
        rc = -1;
    }
    cJSON_Delete(root);
    return rc;
}
