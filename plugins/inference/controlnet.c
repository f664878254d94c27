/* plugins/inference/controlnet.c - ControlNetModel (see controlnet.h). */
#include "controlnet.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet_internal.h"

#define CN_MAX_EMBED 8

struct controlnet {
    struct unet enc;           /* encoder half; up blocks and head unbound */
    int cond_channels;
    int n_embed;               /* conditioning_embedding_out_channels entries */
    sdrt_blk_conv embed_in, embed_blocks[2 * (CN_MAX_EMBED - 1)], embed_out;
    sdrt_blk_conv down_zero[UNET_MAX_SKIPS], mid_zero;
    int n_down;
};

/* A ControlNet config has no up blocks; the UNet parser wants them, and the
 * ControlNet's encoder is exactly the UNet's for the mirrored list. */
static char *as_unet_config(cJSON *root) {
    const cJSON *down = cJSON_GetObjectItemCaseSensitive(root, "down_block_types");
    cJSON *up = cJSON_CreateArray();
    for (int i = cJSON_GetArraySize(down) - 1; up && i >= 0; i--) {
        const cJSON *d = cJSON_GetArrayItem(down, i);
        const char *name = cJSON_IsString(d) && strcmp(d->valuestring, "CrossAttnDownBlock2D") == 0
                               ? "CrossAttnUpBlock2D"
                               : "UpBlock2D";
        cJSON_AddItemToArray(up, cJSON_CreateString(name));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "up_block_types");
    cJSON_AddItemToObject(root, "up_block_types", up);
    return cJSON_PrintUnformatted(root);
}

static sdrt_status parse(controlnet *c, const char *json, int *embed_ch, char *err, size_t errlen) {
    cJSON *root = cJSON_Parse(json ? json : "");
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "controlnet config: not a JSON object");
        return SDRT_INVALID_ARGUMENT;
    }
    sdrt_status st = SDRT_OK;
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(root, "controlnet_conditioning_channel_order");
    const cJSON *pool = cJSON_GetObjectItemCaseSensitive(root, "global_pool_conditions");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "conditioning_channels");
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(root, "conditioning_embedding_out_channels");
    c->cond_channels = cJSON_IsNumber(ch) ? ch->valueint : 3;
    if (order && !(cJSON_IsString(order) && strcmp(order->valuestring, "rgb") == 0)) {
        snprintf(err, errlen, "controlnet config: controlnet_conditioning_channel_order: only \"rgb\" is supported");
        st = SDRT_UNSUPPORTED;
    } else if (cJSON_IsTrue(pool)) {
        snprintf(err, errlen, "controlnet config: global_pool_conditions: only false is supported");
        st = SDRT_UNSUPPORTED;
    } else if (c->cond_channels < 1 || c->cond_channels > 16) {
        snprintf(err, errlen, "controlnet config: conditioning_channels: must be 1..16");
        st = SDRT_INVALID_ARGUMENT;
    }
    if (st == SDRT_OK && emb) {
        int n = cJSON_GetArraySize(emb);
        if (!cJSON_IsArray(emb) || n < 1 || n > CN_MAX_EMBED) st = SDRT_INVALID_ARGUMENT;
        for (int i = 0; st == SDRT_OK && i < n; i++) {
            const cJSON *v = cJSON_GetArrayItem(emb, i);
            if (!cJSON_IsNumber(v) || v->valueint < 1 || v->valueint > 65536) st = SDRT_INVALID_ARGUMENT;
            else embed_ch[i] = v->valueint;
        }
        c->n_embed = n;
        if (st != SDRT_OK)
            snprintf(err, errlen, "controlnet config: conditioning_embedding_out_channels: must be a list of 1..%d "
                     "positive integers", CN_MAX_EMBED);
    } else if (st == SDRT_OK) {
        static const int def[4] = {16, 32, 96, 256};
        memcpy(embed_ch, def, sizeof def);
        c->n_embed = 4;
    }
    char *unet_json = st == SDRT_OK ? as_unet_config(root) : NULL;
    if (st == SDRT_OK) {
        char sub[384];
        st = unet_json ? unet_config_parse(unet_json, &c->enc.cfg, sub, sizeof sub) : SDRT_RESOURCE_EXHAUSTED;
        if (st != SDRT_OK) snprintf(err, errlen, "controlnet: %s", unet_json ? sub : "out of memory");
    }
    if (st == SDRT_OK && !c->enc.cfg.has_mid) {
        snprintf(err, errlen, "controlnet config: mid_block_type: a ControlNet needs a mid block");
        st = SDRT_UNSUPPORTED;
    }
    cJSON_free(unet_json);
    cJSON_Delete(root);
    return st;
}

static void bind(sdrt_blk_loader *L, controlnet *c, const int *embed_ch) {
    const unet_config *cfg = &c->enc.cfg;
    char p[SDRT_BLK_NAME];
    unet_bind_encoder(L, &c->enc);
    c->embed_in = sdrt_blk_bind_conv(L, "controlnet_cond_embedding.conv_in", embed_ch[0], c->cond_channels, 3, 1, 1);
    for (int i = 0; i + 1 < c->n_embed; i++) {
        sdrt_blk_name(p, "controlnet_cond_embedding", "blocks.%d", 2 * i);
        c->embed_blocks[2 * i] = sdrt_blk_bind_conv(L, p, embed_ch[i], embed_ch[i], 3, 1, 1);
        sdrt_blk_name(p, "controlnet_cond_embedding", "blocks.%d", 2 * i + 1);
        c->embed_blocks[2 * i + 1] = sdrt_blk_bind_conv(L, p, embed_ch[i + 1], embed_ch[i], 3, 2, 1);
    }
    c->embed_out = sdrt_blk_bind_conv(L, "controlnet_cond_embedding.conv_out", cfg->block_out[0],
                                      embed_ch[c->n_embed - 1], 3, 1, 1);
    /* One zero conv per skip, with the channels of that skip. */
    int k = 0;
    c->down_zero[k++] = sdrt_blk_bind_conv(L, "controlnet_down_blocks.0", cfg->block_out[0], cfg->block_out[0], 1, 1, 0);
    for (int i = 0; i < cfg->nblocks; i++) {
        int n = cfg->layers_down[i] + (i != cfg->nblocks - 1);
        for (int j = 0; j < n; j++, k++) {
            sdrt_blk_name(p, "controlnet_down_blocks", "%d", k);
            c->down_zero[k] = sdrt_blk_bind_conv(L, p, cfg->block_out[i], cfg->block_out[i], 1, 1, 0);
        }
    }
    c->n_down = k;
    c->mid_zero = sdrt_blk_bind_conv(L, "controlnet_mid_block", cfg->block_out[cfg->nblocks - 1],
                                     cfg->block_out[cfg->nblocks - 1], 1, 1, 0);
}

sdrt_status controlnet_new(const char *config_json, unet_weight_fn get, void *ctx, controlnet **out, char *err,
                           size_t errlen) {
    *out = NULL;
    controlnet *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "controlnet: out of memory");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    int embed_ch[CN_MAX_EMBED];
    sdrt_status st = parse(c, config_json, embed_ch, err, errlen);
    if (st != SDRT_OK) {
        free(c);
        return st;
    }
    sdrt_blk_loader L;
    sdrt_blk_loader_init(&L, "controlnet", get, ctx, &c->enc.mem);
    bind(&L, c, embed_ch);
    if (L.status != SDRT_OK) {
        snprintf(err, errlen, "%s", L.message);
        controlnet_free(c);
        return L.status;
    }
    *out = c;
    return SDRT_OK;
}

void controlnet_free(controlnet *c) {
    if (!c) return;
    sdrt_blk_mem_free(c->enc.mem);
    free(c);
}

const unet_config *controlnet_get_config(const controlnet *c) { return &c->enc.cfg; }
int controlnet_cond_channels(const controlnet *c) { return c->cond_channels; }
int controlnet_n_down(const controlnet *c) { return c->n_down; }
int controlnet_cond_factor(const controlnet *c) { return 1 << (c->n_embed - 1); }

/* conv + silu, dropping the input. */
static sdrt_tensor *conv_silu(sdrt_nn *nn, const sdrt_blk_conv *cv, sdrt_tensor *x, int silu) {
    sdrt_tensor *y = sdrt_blk_conv_fwd(nn, cv, x);
    sdrt_nn_drop(nn, x);
    if (!silu || !y) return y;
    sdrt_tensor *z = sdrt_nn_silu(nn, y);
    sdrt_nn_drop(nn, y);
    return z;
}

static sdrt_tensor *cond_embedding(const controlnet *c, sdrt_nn *nn, const sdrt_tensor *cond) {
    sdrt_tensor *x = sdrt_blk_conv_fwd(nn, &c->embed_in, cond);
    sdrt_tensor *y = x ? sdrt_nn_silu(nn, x) : NULL;
    sdrt_nn_drop(nn, x);
    for (int i = 0; y && i < 2 * (c->n_embed - 1); i++) y = conv_silu(nn, &c->embed_blocks[i], y, 1);
    return y ? conv_silu(nn, &c->embed_out, y, 0) : NULL;
}

/* zero conv, then the scale (dropping nothing: x is a skip). */
static sdrt_tensor *residual(sdrt_nn *nn, const sdrt_blk_conv *cv, const sdrt_tensor *x, float scale) {
    sdrt_tensor *y = sdrt_blk_conv_fwd(nn, cv, x);
    if (!y || scale == 1.0f) return y;
    sdrt_tensor *s = sdrt_nn_scale(nn, y, scale, 0.0f);
    sdrt_nn_drop(nn, y);
    return s;
}

sdrt_status controlnet_forward(const controlnet *c, sdrt_nn *nn, const unet_inputs *in, const sdrt_tensor *cond,
                               float scale, int guess_mode, sdrt_tensor **down, sdrt_tensor **mid, char *err,
                               size_t errlen) {
    const unet_config *cfg = &c->enc.cfg;
    unet_inputs plain = *in;
    plain.down_residuals = NULL;
    plain.mid_residual = NULL;
    char sub[384];
    sdrt_status st = unet_check_inputs(cfg, &plain, sub, sizeof sub);
    if (st != SDRT_OK) {
        snprintf(err, errlen, "controlnet: %s", sub);
        return st;
    }
    const sdrt_tensor *s = in->sample;
    int64_t f = controlnet_cond_factor(c);
    if (!cond || cond->ndim != 4 || cond->shape[0] != s->shape[0] || cond->shape[1] != c->cond_channels ||
        cond->shape[2] != s->shape[2] * f || cond->shape[3] != s->shape[3] * f) {
        snprintf(err, errlen, "controlnet: the control image must be [B, %d, %lldh, %lldw] for latents [B, C, h, w]",
                 c->cond_channels, (long long)f, (long long)f);
        return SDRT_INVALID_ARGUMENT;
    }
    sdrt_tensor *temb = unet_time_act(&c->enc, nn, in);
    sdrt_tensor *h0 = temb ? sdrt_blk_conv_fwd(nn, &c->enc.conv_in, s) : NULL;
    sdrt_tensor *ce = h0 ? cond_embedding(c, nn, cond) : NULL;
    sdrt_tensor *h = ce ? sdrt_nn_add(nn, h0, ce) : NULL;
    sdrt_nn_drop(nn, h0);
    sdrt_nn_drop(nn, ce);
    sdrt_tensor *skips[UNET_MAX_SKIPS], *m = NULL;
    int nskips = 0;
    int ok = h && unet_encoder_fwd(&c->enc, nn, h, temb, in->context, skips, &nskips, &m);
    if (!h) ok = 0;
    ok = ok && nskips == c->n_down;
    /* diffusers: scales = logspace(-1, 0, n + 1) * conditioning_scale in
     * guess mode (float32 torch.logspace: 10 ** linspace). */
    int n = c->n_down;
    for (int i = 0; i < n; i++) down[i] = NULL;
    for (int i = 0; ok && i < n; i++) {
        float sc = guess_mode ? (float)pow(10.0, -1.0 + (double)i / n) * scale : scale;
        down[i] = residual(nn, &c->down_zero[i], skips[i], sc);
        ok = down[i] != NULL;
    }
    *mid = ok ? residual(nn, &c->mid_zero, m, scale) : NULL;
    ok = ok && *mid;
    for (int i = 0; i < nskips; i++) sdrt_nn_drop(nn, skips[i]);
    sdrt_nn_drop(nn, m);
    sdrt_nn_drop(nn, temb);
    if (ok && sdrt_nn_status(nn, NULL) == SDRT_OK) return SDRT_OK;
    for (int i = 0; i < n; i++) sdrt_nn_drop(nn, down[i]);
    sdrt_nn_drop(nn, *mid);
    *mid = NULL;
    const char *msg = NULL;
    st = sdrt_nn_status(nn, &msg);
    if (st == SDRT_OK) st = SDRT_INTERNAL;
    snprintf(err, errlen, "controlnet: %s", msg ? msg : "compute failed");
    return st;
}
