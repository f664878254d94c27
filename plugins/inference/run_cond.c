/* plugins/inference/run_cond.c - the conditioning stage of inference.run:
 * prompt embeddings from sdrt.cond/1, laid out as the UNet's batch rows the
 * way diffusers' pipelines build them (prompt_embeds repeated per image,
 * then cat([negative, positive])), plus SDXL's pooled embeds and
 * add_time_ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_internal.h"

/* Copies `src` (len floats) into rows [first, first + count) of `dst`. */
static void fill_rows(float *dst, const float *src, size_t len, int first, int count) {
    for (int r = first; r < first + count; r++) memcpy(dst + (size_t)r * len, src, len * sizeof(float));
}

/* SDXL add_time_ids: original_size + crops_coords_top_left + target_size,
 * all from the requested size with crop (0, 0) (the pipeline's defaults);
 * the refiner's 5 ids end with the aesthetic score (request's
 * aesthetic_score / negative_aesthetic_score, diffusers' 6.0 / 2.5). */
static void time_ids_row(const infer_request *r, float *row, int k, int negative) {
    float ids[6] = {(float)r->height, (float)r->width, 0.0f, 0.0f, (float)r->height, (float)r->width};
    if (k == 5) ids[4] = (float)(negative ? r->negative_aesthetic_score : r->aesthetic_score);
    memcpy(row, ids, (size_t)k * sizeof(float));
}

static int time_id_count(const run_ctx *c, int64_t pooled_dim) {
    const unet_config *cfg = unet_get_config(c->u);
    if (!cfg->text_time || cfg->addition_time_embed_dim <= 0) return 0;
    return (int)((cfg->add_embed_in - pooled_dim) / cfg->addition_time_embed_dim);
}

static sdrt_error *check_result(run_ctx *c, const sdrt_cond_result *res, int cfg, int n_ids) {
    const unet_config *ucfg = unet_get_config(c->u);
    if (res->dim != ucfg->cross_dim[0] || res->seq < 1)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "model_id: text encoder width %lld differs from the unet's cross_attention_dim %d",
                                 (long long)res->dim, ucfg->cross_dim[0]);
    if (cfg && !res->negative_prompt_embeds)
        return c->api->error_new(SDRT_INTERNAL, NULL, "conditioning: no negative embeddings despite do_cfg");
    if (ucfg->text_time && (!res->pooled_prompt_embeds || n_ids < 1 || n_ids > 6 || (cfg && !res->negative_pooled_prompt_embeds)))
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "model_id: the text encoders give no pooled embeddings of the width the unet expects");
    return NULL;
}

static void warn_lora_tags(run_ctx *c, const sdrt_cond_result *res) {
    for (size_t i = 0; i < res->n_loras; i++) {
        char msg[300];
        snprintf(msg, sizeof msg, "prompt: <lora:%s> ignored: this inference plugin does not apply LoRA", res->loras[i].name);
        c->api->warn(c->job, msg);
    }
}

/* Lays the result out as rows [uncond x batch, cond x batch] (or cond only). */
static sdrt_error *build_rows(run_ctx *c, const sdrt_cond_result *res, int cfg, int n_ids) {
    int batch = c->r.batch_size, rows = cfg ? 2 * batch : batch, cond0 = cfg ? batch : 0;
    size_t ctx_len = (size_t)(res->seq * res->dim), pooled = n_ids ? (size_t)res->pooled_dim : 0;
    size_t total = (size_t)rows * (ctx_len + pooled + (size_t)n_ids);
    c->cond_buf = malloc(total * sizeof(float));
    if (!c->cond_buf) return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "conditioning: out of memory");
    float *ctx = c->cond_buf, *pool = ctx + (size_t)rows * ctx_len, *ids = pool + (size_t)rows * pooled;
    if (cfg) fill_rows(ctx, res->negative_prompt_embeds, ctx_len, 0, batch);
    fill_rows(ctx, res->prompt_embeds, ctx_len, cond0, batch);
    for (int r = 0; n_ids && r < rows; r++) {
        int negative = r < cond0;
        memcpy(pool + (size_t)r * pooled, negative ? res->negative_pooled_prompt_embeds : res->pooled_prompt_embeds,
               pooled * sizeof(float));
        time_ids_row(&c->r, ids + (size_t)r * n_ids, n_ids, negative);
    }
    c->cond_rows = (infer_cond){.batch = batch, .cfg = cfg, .seq_len = res->seq, .dim = res->dim, .context = ctx,
                                .pooled_dim = (int64_t)pooled, .pooled = n_ids ? pool : NULL,
                                .time_ids = n_ids ? ids : NULL};
    return NULL;
}

sdrt_error *run_conditioning(run_ctx *c) {
    /* diffusers: do_classifier_free_guidance = guidance_scale > 1. */
    int cfg = c->r.guidance_scale > 1.0;
    sdrt_cond_params p;
    sdrt_cond_params_init(&p);
    p.prompt = c->r.prompt;
    p.negative_prompt = c->r.has_negative_prompt ? c->r.negative_prompt : NULL;
    p.clip_skip = c->r.clip_skip;
    p.do_cfg = cfg;
    sdrt_cond_result *res = NULL;
    sdrt_error *e = c->cond->encode(c->cond->self, c->m, &p, c->job, &res);
    if (e) return e;
    int n_ids = time_id_count(c, res->pooled_dim);
    e = check_result(c, res, cfg, n_ids);
    if (!e) e = build_rows(c, res, cfg, n_ids);
    if (!e) warn_lora_tags(c, res);
    c->cond->result_free(c->cond->self, res);
    return e;
}

void run_cond_free(run_ctx *c) {
    free(c->cond_buf);
    c->cond_buf = NULL;
}
