/* plugins/inference/unet.c - UNet2DConditionModel.forward over the SDK block
 * library: time (and SDXL text_time) embeddings, the down blocks collecting
 * skip connections, the mid block, the up blocks consuming them, and the
 * output head. */
#include <stdio.h>
#include <string.h>

#include "unet_internal.h"

#define MAX_SKIPS UNET_MAX_SKIPS

typedef struct fwd_state {
    const unet *u;
    sdrt_nn *nn;
    const sdrt_tensor *context;
    sdrt_tensor *temb_act;       /* silu(time embedding) */
    sdrt_tensor *skips[MAX_SKIPS];
    int nskips;
    sdrt_tensor *h;              /* current activation; may also be the top skip */
} fwd_state;

static sdrt_status input_error(char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "unet input: %s", what);
    return SDRT_INVALID_ARGUMENT;
}

int unet_n_skips(const unet_config *cfg) {
    int n = 1;
    for (int i = 0; i < cfg->nblocks; i++) n += cfg->layers_down[i] + (i != cfg->nblocks - 1);
    return n;
}

sdrt_status unet_check_inputs(const unet_config *cfg, const unet_inputs *in, char *err, size_t errlen) {
    const sdrt_tensor *s = in->sample, *c = in->context;
    if (!s || s->ndim != 4 || s->shape[1] != cfg->in_channels)
        return input_error(err, errlen, "sample must be [B, in_channels, h, w]");
    if (!in->timesteps) return input_error(err, errlen, "timesteps missing");
    if (!c || c->ndim != 3 || c->shape[0] != s->shape[0])
        return input_error(err, errlen, "encoder_hidden_states must be [B, L, D] with the sample's batch");
    for (int i = 0; i < cfg->nblocks; i++) {
        if ((cfg->down_attn[i] || cfg->up_attn[cfg->nblocks - 1 - i]) && c->shape[2] != cfg->cross_dim[i])
            return input_error(err, errlen, "encoder_hidden_states width differs from cross_attention_dim");
    }
    if ((in->down_residuals || in->mid_residual) &&
        (!in->down_residuals || !in->mid_residual || !cfg->has_mid || in->n_down_residuals < 1))
        return input_error(err, errlen, "ControlNet residuals need every down residual, the mid residual and a mid block");
    if (in->down_residuals && in->n_down_residuals != unet_n_skips(cfg))
        return input_error(err, errlen, "the ControlNet's down residuals differ in number from the UNet's skips");
    if (!cfg->text_time) return SDRT_OK;
    const sdrt_tensor *te = in->text_embeds;
    if (!te || !in->time_ids || te->ndim != 2 || te->shape[0] != s->shape[0])
        return input_error(err, errlen, "SDXL needs text_embeds [B, P] and time_ids [B, k]");
    int64_t ids_width = cfg->add_embed_in - te->shape[1];
    if (ids_width <= 0 || ids_width % cfg->addition_time_embed_dim != 0)
        return input_error(err, errlen, "text_embeds width + time ids x addition_time_embed_dim differs from "
                                        "projection_class_embeddings_input_dim");
    return SDRT_OK;
}

/* SDXL: add_embedding(cat(text_embeds, sinusoid(time_ids) as [B, k*dim])),
 * k = 6 time ids for the base model, 5 for the refiner (aesthetic score):
 * whatever projection_class_embeddings_input_dim leaves after text_embeds. */
static sdrt_tensor *text_time_embedding(fwd_state *f, const unet_inputs *in) {
    const unet_config *cfg = &f->u->cfg;
    int64_t k = (cfg->add_embed_in - in->text_embeds->shape[1]) / cfg->addition_time_embed_dim;
    int64_t b = in->sample->shape[0], n = b * k;
    sdrt_tensor *ids = sdrt_nn_from_host(f->nn, SDRT_DTYPE_F32, 1, &n, in->time_ids);
    sdrt_tensor *e = sdrt_nn_timestep_embedding(f->nn, ids, cfg->addition_time_embed_dim, cfg->flip_sin_to_cos,
                                                cfg->freq_shift);
    sdrt_nn_drop(f->nn, ids);
    if (!e) return NULL;
    int64_t shape[2] = {b, k * cfg->addition_time_embed_dim};
    sdrt_tensor ev = sdrt_nn_view_reshape(e, 2, shape);
    sdrt_tensor *cat = sdrt_nn_concat(f->nn, in->text_embeds, &ev, 1);
    sdrt_nn_drop(f->nn, e);
    sdrt_tensor *aug = sdrt_blk_temb_fwd(f->nn, &f->u->add, cat);
    sdrt_nn_drop(f->nn, cat);
    return aug;
}

/* silu(time_embedding(time_proj(t)) [+ add_embedding(...)]). */
static sdrt_tensor *time_embedding(fwd_state *f, const unet_inputs *in) {
    const unet_config *cfg = &f->u->cfg;
    int64_t b = in->sample->shape[0];
    sdrt_tensor *t = sdrt_nn_from_host(f->nn, SDRT_DTYPE_F32, 1, &b, in->timesteps);
    sdrt_tensor *p = sdrt_nn_timestep_embedding(f->nn, t, cfg->block_out[0], cfg->flip_sin_to_cos, cfg->freq_shift);
    sdrt_nn_drop(f->nn, t);
    sdrt_tensor *emb = sdrt_blk_temb_fwd(f->nn, &f->u->time, p);
    sdrt_nn_drop(f->nn, p);
    if (cfg->text_time) {
        sdrt_tensor *aug = text_time_embedding(f, in);
        sdrt_tensor *sum = sdrt_nn_add(f->nn, emb, aug);
        sdrt_nn_drop(f->nn, emb);
        sdrt_nn_drop(f->nn, aug);
        emb = sum;
    }
    sdrt_tensor *act = sdrt_nn_silu(f->nn, emb);
    sdrt_nn_drop(f->nn, emb);
    return act;
}

/* f->h exists and the context has not failed. */
static int alive(fwd_state *f) {
    return f->h != NULL && sdrt_nn_status(f->nn, NULL) == SDRT_OK;
}

/* The down blocks push every output as a skip; f->h ends as the last. */
static int down_path(fwd_state *f) {
    const unet_config *cfg = &f->u->cfg;
    f->skips[f->nskips++] = f->h;
    for (int i = 0; i < cfg->nblocks; i++) {
        f->h = sdrt_blk_down_fwd(f->nn, &f->u->down[i], f->h, f->temb_act, f->context, f->skips, &f->nskips);
        if (!alive(f)) return 0;
    }
    return 1;
}

/* f->h is the top skip here: the mid block borrows it. */
static int mid_block(fwd_state *f) {
    if (!f->u->cfg.has_mid) return 1;
    f->h = sdrt_blk_mid_fwd(f->nn, &f->u->mid, f->h, f->temb_act, f->context);
    return alive(f);
}

/* ControlNet: each skip += its residual, mid output += the mid residual
 * (diffusers adds them after the mid block ran on the unmodified sample). */
static int add_residuals(fwd_state *f, const unet_inputs *in) {
    if (!in->down_residuals) return 1;
    for (int i = 0; i < f->nskips; i++) {
        sdrt_tensor *s = sdrt_nn_add(f->nn, f->skips[i], in->down_residuals[i]);
        if (!s) return 0;
        sdrt_nn_drop(f->nn, f->skips[i]);
        f->skips[i] = s;
    }
    sdrt_tensor *h = sdrt_nn_add(f->nn, f->h, in->mid_residual);
    sdrt_nn_drop(f->nn, f->h);
    f->h = h;
    return alive(f);
}

static int up_path(fwd_state *f) {
    const unet_config *cfg = &f->u->cfg;
    for (int i = 0; i < cfg->nblocks; i++) {
        const sdrt_blk_stage *blk = &f->u->up[i];
        /* The skip the next block pops first fixes the upsampled size (it
         * differs from 2x for odd sizes). */
        int next = f->nskips - blk->nlayers - 1;
        int64_t oh = next >= 0 ? f->skips[next]->shape[2] : 0, ow = next >= 0 ? f->skips[next]->shape[3] : 0;
        f->h = sdrt_blk_up_fwd(f->nn, blk, f->h, f->temb_act, f->context, f->skips, &f->nskips, oh, ow);
        if (!alive(f)) return 0;
    }
    return 1;
}

static sdrt_tensor *output_head(fwd_state *f) {
    const unet *u = f->u;
    sdrt_tensor *n = sdrt_blk_norm_fwd(f->nn, &u->norm_out, f->h, 1);
    sdrt_tensor *out = sdrt_blk_conv_fwd(f->nn, &u->conv_out, n);
    sdrt_nn_drop(f->nn, n);
    return out;
}

static sdrt_tensor *input_conv(fwd_state *f, const sdrt_tensor *sample) {
    if (!f->u->cfg.center_input_sample) return sdrt_blk_conv_fwd(f->nn, &f->u->conv_in, sample);
    sdrt_tensor *c = sdrt_nn_scale(f->nn, sample, 2.0f, -1.0f);
    sdrt_tensor *h = sdrt_blk_conv_fwd(f->nn, &f->u->conv_in, c);
    sdrt_nn_drop(f->nn, c);
    return h;
}

static void release_all(fwd_state *f) {
    int h_is_skip = 0;
    for (int i = 0; i < f->nskips; i++) h_is_skip |= f->skips[i] == f->h;
    if (!h_is_skip) sdrt_nn_drop(f->nn, f->h);
    while (f->nskips > 0) sdrt_nn_drop(f->nn, f->skips[--f->nskips]);
    sdrt_nn_drop(f->nn, f->temb_act);
    f->h = f->temb_act = NULL;
}

sdrt_tensor *unet_time_act(const unet *u, sdrt_nn *nn, const unet_inputs *in) {
    fwd_state f = {.u = u, .nn = nn, .context = in->context};
    return time_embedding(&f, in);
}

int unet_encoder_fwd(const unet *u, sdrt_nn *nn, sdrt_tensor *h, const sdrt_tensor *temb_act,
                     const sdrt_tensor *context, sdrt_tensor **skips, int *nskips, sdrt_tensor **mid) {
    /* temb_act is only read: fwd_state's field is non-const for release_all. */
    fwd_state f = {.u = u, .nn = nn, .context = context, .h = h, .temb_act = (sdrt_tensor *)temb_act};
    *mid = NULL;
    int r = down_path(&f);
    memcpy(skips, f.skips, (size_t)f.nskips * sizeof *skips);
    *nskips = f.nskips;
    if (!r) return 0;
    if (!u->cfg.has_mid) return 1;
    *mid = sdrt_blk_mid_fwd(nn, &u->mid, f.h, temb_act, context);
    return *mid && sdrt_nn_status(nn, NULL) == SDRT_OK;
}

static sdrt_status nn_failure(sdrt_nn *nn, char *err, size_t errlen) {
    const char *msg = NULL;
    sdrt_status st = sdrt_nn_status(nn, &msg);
    if (st == SDRT_OK) st = SDRT_INTERNAL; /* an op returned NULL without failing */
    snprintf(err, errlen, "unet: %s", st == SDRT_CANCELLED ? "cancelled" : (msg ? msg : "compute failed"));
    return st;
}

sdrt_status unet_forward(const unet *u, sdrt_nn *nn, const unet_inputs *in, sdrt_tensor **out, char *err,
                         size_t errlen) {
    *out = NULL;
    sdrt_status st = unet_check_inputs(&u->cfg, in, err, errlen);
    if (st != SDRT_OK) return st;
    fwd_state f = {.u = u, .nn = nn, .context = in->context};
    f.temb_act = time_embedding(&f, in);
    f.h = f.temb_act ? input_conv(&f, in->sample) : NULL;
    int ok = f.h && down_path(&f) && mid_block(&f) && add_residuals(&f, in) && up_path(&f);
    sdrt_tensor *result = ok ? output_head(&f) : NULL;
    release_all(&f);
    if (!result || sdrt_nn_status(nn, NULL) != SDRT_OK) {
        sdrt_nn_drop(nn, result);
        return nn_failure(nn, err, errlen);
    }
    *out = result;
    return SDRT_OK;
}
