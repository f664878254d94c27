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
    const unet_config *cfg = &c->ucfg;
    if (!cfg->text_time || cfg->addition_time_embed_dim <= 0) return 0;
    return (int)((cfg->add_embed_in - pooled_dim) / cfg->addition_time_embed_dim);
}

/* The device form of a result (sdrt/cond.h: all four or none), or NULL. */
typedef struct dev_embeds {
    const sdrt_tensor *pos, *neg, *pooled, *neg_pooled;
} dev_embeds;

static dev_embeds device_form(const sdrt_cond_result *res) {
    dev_embeds d = {0};
    if (SDRT_HAS_MEMBER(res, sdrt_cond_result, negative_pooled_prompt_embeds_dev) && res->prompt_embeds_dev)
        d = (dev_embeds){res->prompt_embeds_dev, res->negative_prompt_embeds_dev, res->pooled_prompt_embeds_dev,
                         res->negative_pooled_prompt_embeds_dev};
    return d;
}

static sdrt_error *check_result(run_ctx *c, const sdrt_cond_result *res, int cfg, int n_ids) {
    const unet_config *ucfg = &c->ucfg;
    dev_embeds d = device_form(res);
    int has_neg = d.pos ? d.neg != NULL : res->negative_prompt_embeds != NULL;
    int has_pooled = d.pos ? d.pooled != NULL : res->pooled_prompt_embeds != NULL;
    int has_neg_pooled = d.pos ? d.neg_pooled != NULL : res->negative_pooled_prompt_embeds != NULL;
    if (res->dim != ucfg->cross_dim[0] || res->seq < 1)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "model_id: text encoder width %lld differs from the unet's cross_attention_dim %d",
                                 (long long)res->dim, ucfg->cross_dim[0]);
    if (cfg && !has_neg)
        return c->api->error_new(SDRT_INTERNAL, NULL, "conditioning: no negative embeddings despite do_cfg");
    if (ucfg->text_time && (!has_pooled || n_ids < 1 || n_ids > 6 || (cfg && !has_neg_pooled)))
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "model_id: the text encoders give no pooled embeddings of the width the unet expects");
    return NULL;
}

/* ---- LoRA: the cond plugin's weight hooks ---------------------------- */

static sdrt_error *lora_no_plugin(run_ctx *c, const sdrt_cond_lora *tags, size_t n) {
    return c->api->error_new(SDRT_UNAVAILABLE, NULL, "prompt: <lora:%s> needs the lora plugin, which is not loaded",
                             n ? tags[0].name : "");
}

/* The request's adapters then the prompt's tags, merged into c->lora_set
 * before any text-encoder weight is read (the UNet is built after). */
static sdrt_error *lora_prepare(void *ctx, const sdrt_cond_lora *tags, size_t n_tags) {
    run_ctx *c = ctx;
    if (!c->r.lora_enabled) {
        for (size_t i = 0; i < n_tags; i++) {
            char msg[300];
            snprintf(msg, sizeof msg, "prompt: <lora:%s> ignored: lora.enabled is false", tags[i].name);
            c->api->warn(c->job, msg);
        }
        n_tags = 0;
    }
    size_t n = c->r.n_loras + n_tags;
    if (n == 0) return NULL;
    if (!c->lora) return lora_no_plugin(c, tags, n_tags);
    sdrt_lora_adapter *all = malloc(n * sizeof *all);
    if (!all) return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "lora: out of memory");
    for (size_t i = 0; i < c->r.n_loras; i++) all[i] = c->r.loras[i];
    for (size_t i = 0; i < n_tags; i++) {
        sdrt_lora_adapter_init(&all[c->r.n_loras + i]);
        all[c->r.n_loras + i].model_id = tags[i].name;
        all[c->r.n_loras + i].weight = tags[i].weight;
    }
    sdrt_error *e = c->lora->prepare(c->lora->self, c->m, all, n, c->job, &c->lora_set);
    free(all);
    return e ? run_field_error(c, e, c->r.n_loras ? "lora.adapters" : "prompt") : NULL;
}

static const sdrt_tensor *lora_weight(void *ctx, const char *component, const char *name) {
    run_ctx *c = ctx;
    return c->lora_set ? c->lora->tensor(c->lora_set, component, name) : NULL;
}

/* Device copies of the set's merged text-encoder tensors (freed with it). */
static sdrt_weight_store *lora_store(void *ctx) {
    run_ctx *c = ctx;
    return sdrt_lora_weights(c->lora, c->lora_set);
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

/* `t` ([1, ...]) appended `count` times along dim 0 to `acc` (NULL: none)
 * as a new tensor of c->nn; acc is dropped. NULL when an op failed. */
static sdrt_tensor *append_rows(sdrt_nn *nn, sdrt_tensor *acc, const sdrt_tensor *t, int count) {
    for (int i = 0; i < count; i++) {
        sdrt_tensor *next = acc ? sdrt_nn_concat(nn, acc, t, 0) : sdrt_nn_copy(nn, t, SDRT_DTYPE_F32);
        sdrt_nn_drop(nn, acc);
        if (!next) return NULL;
        acc = next;
    }
    return acc;
}

/* build_rows for embeddings on the device: the rows are laid out there by
 * copies (no host round trip); only the time ids are host numbers. */
static sdrt_error *build_rows_dev(run_ctx *c, const sdrt_cond_result *res, const dev_embeds *d, int cfg, int n_ids) {
    int batch = c->r.batch_size, rows = cfg ? 2 * batch : batch;
    sdrt_nn *nn = c->nn;
    sdrt_tensor *ctx = cfg ? append_rows(nn, NULL, d->neg, batch) : NULL;
    if (ctx || !cfg) ctx = append_rows(nn, ctx, d->pos, batch);
    sdrt_tensor *pool = NULL;
    if (ctx && n_ids) {
        pool = cfg ? append_rows(nn, NULL, d->neg_pooled, batch) : NULL;
        if (pool || !cfg) pool = append_rows(nn, pool, d->pooled, batch);
    }
    c->cond_buf = malloc(((size_t)rows * (size_t)n_ids + 1) * sizeof(float));
    if (!ctx || (n_ids && !pool) || !c->cond_buf) {
        sdrt_nn_drop(nn, ctx);
        sdrt_nn_drop(nn, pool);
        const char *msg = NULL;
        sdrt_status st = sdrt_nn_status(nn, &msg);
        if (st != SDRT_OK) return c->api->error_new(st, NULL, "conditioning rows: %s", msg ? msg : "device op failed");
        return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "conditioning: out of memory");
    }
    for (int r = 0; r < rows && n_ids; r++) time_ids_row(&c->r, c->cond_buf + (size_t)r * n_ids, n_ids, r < (cfg ? batch : 0));
    c->cond_rows = (infer_cond){.batch = batch, .cfg = cfg, .seq_len = res->seq, .dim = res->dim,
                                .pooled_dim = n_ids ? res->pooled_dim : 0, .time_ids = n_ids ? c->cond_buf : NULL,
                                .context_dev = ctx, .pooled_dev = pool};
    return NULL;
}

sdrt_error *run_conditioning(run_ctx *c) {
    /* The embeddings are made on the denoising loop's device and stay there. */
    sdrt_error *oe = run_open_nn(c);
    if (oe) return oe;
    /* diffusers: do_classifier_free_guidance = guidance_scale > 1. */
    int cfg = c->r.guidance_scale > 1.0;
    sdrt_cond_params p;
    sdrt_cond_params_init(&p);
    p.prompt = c->r.prompt;
    p.negative_prompt = c->r.has_negative_prompt ? c->r.negative_prompt : NULL;
    p.clip_skip = c->r.clip_skip;
    p.do_cfg = cfg;
    p.device = c->dev;
    p.precision = c->precision == SDRT_PRECISION_AUTO ? NULL : sdrt_precision_name(c->precision);
    p.offload = c->mem.offload;
    /* The base pass only: the refiner gets no LoRA (run_refiner.c). */
    if (!c->refining) {
        p.prepare_weights = lora_prepare;
        p.weight = lora_weight;
        p.weights_ctx = c;
        p.weight_store = lora_store;
    }
    sdrt_cond_result *res = NULL;
    sdrt_error *e = c->cond->encode(c->cond->self, c->m, &p, c->job, &res);
    if (e) return e;
    int n_ids = time_id_count(c, res->pooled_dim);
    e = check_result(c, res, cfg, n_ids);
    dev_embeds d = device_form(res);
    if (!e) e = d.pos ? build_rows_dev(c, res, &d, cfg, n_ids) : build_rows(c, res, cfg, n_ids);
    c->cond->result_free(c->cond->self, res);
    return e;
}

void run_cond_free(run_ctx *c) {
    free(c->cond_buf);
    c->cond_buf = NULL;
    memset(&c->cond_rows, 0, sizeof c->cond_rows); /* device rows: released with c->nn */
}
