/* plugins/inference/run.c - inference.run, as diffusers'
 * StableDiffusion(XL)Pipeline, ...Img2ImgPipeline and ...InpaintPipeline
 * __call__ run it:
 *
 *   request -> init image / mask (run_image.c) -> model (sdrt.model/1)
 *   -> UNet config + scheduler (sdrt.scheduler/1) -> prompt embeddings
 *   (sdrt.cond/1; its prepare_weights hook merges the LoRA adapters,
 *   sdrt.lora/1) -> UNet weights (merged ones first) -> seeded noise * init_noise_sigma, or VAE-encoded init image + noise
 *   -> denoising loop (denoise.c) -> SDXL refiner pass (run_refiner.c)
 *   -> VAE decode + PNG (sdrt.postprocess/1) -> response.
 *
 * Each stage is one function returning an sdrt_error (NULL = go on); the
 * run context owns everything acquired so far and run_release frees it
 * whatever stage failed. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "denoise.h"
#include "request.h"
#include "quality.h"
#include "response.h"
#include "run.h"
#include "run_internal.h"
#include "sdrt/backend.h"
#include "sdrt/model.h"
#include "sdrt/postprocess.h"
#include "sdrt/rng.h"
#include "sdrt/scheduler.h"
#include "unet.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- interfaces ------------------------------------------------------- */

static sdrt_error *acquire_one(run_ctx *c, const char *id, const void **out, const char *provider) {
    sdrt_error *err = NULL;
    *out = c->api->acquire(c->p->host, id, &err);
    if (*out) return NULL;
    if (err) c->api->error_free(err);
    return c->api->error_new(SDRT_UNAVAILABLE, NULL, "inference: interface %s is not available (is the %s plugin loaded?)",
                             id, provider);
}

static sdrt_error *run_acquire(run_ctx *c) {
    sdrt_error *e = acquire_one(c, SDRT_MODEL_IFACE_ID, (const void **)&c->model, "model");
    if (!e) e = acquire_one(c, SDRT_BACKEND_IFACE_ID, (const void **)&c->backend, "device");
    if (!e) e = acquire_one(c, SDRT_SCHEDULER_IFACE_ID, (const void **)&c->sched, "scheduler");
    if (!e) e = acquire_one(c, SDRT_COND_IFACE_ID, (const void **)&c->cond, "conditioning");
    if (!e) e = acquire_one(c, SDRT_POSTPROCESS_IFACE_ID, (const void **)&c->post, "postprocess");
    if (e) return e;
    /* Optional: only requests with adapters or prompt tags need it (tags
     * are checked when conditioning finds them). */
    sdrt_error *le = NULL;
    c->lora = c->api->acquire(c->p->host, SDRT_LORA_IFACE_ID, &le);
    if (le) c->api->error_free(le);
    if (!c->lora && c->r.n_loras)
        return c->api->error_new(SDRT_UNAVAILABLE, NULL, "lora.adapters: no lora plugin is loaded");
    return NULL;
}

static void release_ifaces(run_ctx *c) {
    if (c->model) c->api->release(c->p->host, SDRT_MODEL_IFACE_ID);
    if (c->backend) c->api->release(c->p->host, SDRT_BACKEND_IFACE_ID);
    if (c->sched) c->api->release(c->p->host, SDRT_SCHEDULER_IFACE_ID);
    if (c->cond) c->api->release(c->p->host, SDRT_COND_IFACE_ID);
    if (c->post) c->api->release(c->p->host, SDRT_POSTPROCESS_IFACE_ID);
    if (c->lora) c->api->release(c->p->host, SDRT_LORA_IFACE_ID);
}

/* ---- model and UNet --------------------------------------------------- */

typedef struct unet_source {
    const sdrt_model_iface *model;
    sdrt_model *m;
    const sdrt_lora_iface *lora;
    const sdrt_lora_set *set;
} unet_source;

/* A LoRA-merged copy when the request's set patches the tensor, else the
 * model's own. */
static const sdrt_tensor *unet_weight(void *ctx, const char *name) {
    unet_source *s = ctx;
    const sdrt_tensor *t = s->set ? s->lora->tensor(s->set, "unet", name) : NULL;
    return t ? t : s->model->tensor(s->m, "unet", name);
}

void run_lora_free(run_ctx *c) {
    if (c->lora_set) c->lora->destroy(c->lora->self, c->lora_set);
    c->lora_set = NULL;
}

/* The size the model was trained at: unet sample_size x VAE factor 8. */
static int default_image_size(const char *unet_config_json) {
    cJSON *root = cJSON_Parse(unet_config_json);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "sample_size");
    int size = cJSON_IsNumber(s) && s->valuedouble >= 1 && s->valuedouble <= 1024 ? (int)s->valuedouble * 8 : 512;
    cJSON_Delete(root);
    return size;
}

/* The architecture and UNet config of the open model c->m; `field` names
 * the request field in errors ("model_id", "model_id.refiner"). */
sdrt_error *run_unet_config(run_ctx *c, const char *field) {
    const char *id = c->model->id(c->m);
    c->arch = c->model->arch(c->m);
    c->is_sdxl = c->arch && strncmp(c->arch, "sdxl", 4) == 0;
    const char *cfg = c->model->config_json(c->m, "unet");
    if (!cfg) return c->api->error_new(SDRT_NOT_FOUND, NULL, "%s: %s has no unet component", field, id);
    char err[512];
    sdrt_status st = unet_config_parse(cfg, &c->ucfg, err, sizeof err);
    return st == SDRT_OK ? NULL : c->api->error_new(st, NULL, "%s: %s: unet config: %s", field, id, err);
}

/* The UNet of c->m into c->u, reading c->lora_set's merged weights first. */
sdrt_error *run_build_unet(run_ctx *c, const char *field) {
    const char *id = c->model->id(c->m);
    unet_source src = {c->model, c->m, c->lora, c->lora_set};
    char err[512];
    sdrt_status st = unet_new(c->model->config_json(c->m, "unet"), unet_weight, &src, &c->u, err, sizeof err);
    return st == SDRT_OK ? NULL : c->api->error_new(st, NULL, "%s: %s: %s", field, id, err);
}

sdrt_error *run_load_unet(run_ctx *c, const char *field) {
    sdrt_error *e = run_unet_config(c, field);
    return e ? e : run_build_unet(c, field);
}

/* The base UNet, once conditioning has built the LoRA set. */
static sdrt_error *run_base_unet(run_ctx *c) {
    return run_build_unet(c, "model_id");
}

static sdrt_error *run_open_model(run_ctx *c) {
    sdrt_progress lp = {.struct_size = SDRT_STRUCT_SIZE(sdrt_progress, message), .progress = 0, .stage = "loading",
                        .message = "opening the model"};
    c->api->progress(c->job, &lp);
    sdrt_error *e = c->model->open(c->model->self, c->r.model_id, c->job, &c->m);
    if (!e) e = run_unet_config(c, "model_id");
    if (e) return e;
    infer_quality_apply(&c->r, c->arch); /* before the defaults below: a preset fills what was not given */
    const char *cfg = c->model->config_json(c->m, "unet");
    if (!c->r.width) c->r.width = default_image_size(cfg);
    if (!c->r.height) c->r.height = default_image_size(cfg);
    /* diffusers' pipeline defaults: 7.5 for SD1/SD2, 5.0 for SDXL. */
    if (c->r.guidance_scale < 0) c->r.guidance_scale = c->is_sdxl ? 5.0 : 7.5;
    return NULL;
}

/* ---- scheduler -------------------------------------------------------- */

/* The model's scheduler class ("_class_name"), for requests naming none. */
static char *model_scheduler_name(const char *scheduler_config_json) {
    cJSON *root = scheduler_config_json ? cJSON_Parse(scheduler_config_json) : NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    char *name = strdup(cJSON_IsString(n) ? n->valuestring : "EulerDiscreteScheduler");
    cJSON_Delete(root);
    return name;
}

/* The Align Your Steps family of the model's architecture, or NULL. */
static const char *ays_model_of(const char *arch) {
    if (!arch) return NULL;
    if (strcmp(arch, "sd1") == 0) return "sd1";
    if (strcmp(arch, "sdxl") == 0 || strcmp(arch, "sdxl-refiner") == 0) return "sdxl";
    return NULL;
}

/* The model's scheduler config with "ays_model" set from its architecture
 * (a scheduler config does not tell the family; docs/schedulers.md), as
 * malloc'd text; NULL when out of memory. */
static char *scheduler_base_config(run_ctx *c) {
    const char *text = c->model->config_json(c->m, "scheduler");
    cJSON *root = text ? cJSON_Parse(text) : cJSON_CreateObject();
    if (text && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return strdup(text); /* the scheduler plugin names what is wrong with it */
    }
    const char *family = ays_model_of(c->arch);
    if (root && family && !cJSON_GetObjectItemCaseSensitive(root, "ays_model"))
        cJSON_AddStringToObject(root, "ays_model", family);
    char *printed = root ? cJSON_PrintUnformatted(root) : NULL;
    char *out = printed ? strdup(printed) : NULL; /* one deallocator (free) for both returns */
    cJSON_free(printed);
    cJSON_Delete(root);
    return out;
}

static sdrt_error *run_create_scheduler(run_ctx *c, const char *base) {
    char *fallback = c->r.scheduler ? NULL : model_scheduler_name(base);
    sdrt_scheduler_params p;
    sdrt_scheduler_params_init(&p);
    p.name = c->r.scheduler ? c->r.scheduler : fallback;
    p.base_config_json = base;
    p.overrides_json = c->r.scheduler_config_json;
    p.num_inference_steps = c->r.steps;
    sdrt_error *e = p.name ? c->sched->create(c->sched->self, &p, &c->state)
                           : c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "scheduler: out of memory");
    /* The request named no scheduler and the model's own class is one sdrt
     * does not know (a newer diffusers class) or a configuration it refuses:
     * generate with Euler, which every SD checkpoint supports, rather than
     * refusing a request that said nothing about schedulers. */
    if (e && fallback && (e->code == SDRT_UNSUPPORTED || e->code == SDRT_NOT_FOUND)) {
        char msg[600];
        snprintf(msg, sizeof msg, "scheduler: the model's %s is not available (%s); using EulerDiscreteScheduler",
                 fallback, e->message);
        c->api->error_free(e);
        c->api->warn(c->job, msg);
        p.name = "EulerDiscreteScheduler";
        e = c->sched->create(c->sched->self, &p, &c->state);
    }
    free(fallback);
    if (e) return e;
    for (uint32_t k = 0; k < c->sched->warning_count(c->state); k++)
        c->api->warn(c->job, c->sched->warning(c->state, k));
    return NULL;
}

sdrt_error *run_scheduler(run_ctx *c) {
    char *base = scheduler_base_config(c);
    if (!base) return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "scheduler: out of memory");
    sdrt_error *e = run_create_scheduler(c, base);
    free(base);
    return e;
}

/* ---- noise ------------------------------------------------------------ */

/* A seed for requests without one: 32 bits, like A1111's random seeds. */
static uint64_t draw_seed(void) {
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&v, sizeof v, 1, f) != 1) v = 0;
        fclose(f);
    }
    if (!v) v = (uint32_t)(now_s() * 1e9) ^ (uint32_t)time(NULL);
    return v;
}

/* diffusers prepare_latents with a CPU generator: one randn call over the
 * whole [batch, C, h, w] tensor, times init_noise_sigma (float32). */
static sdrt_error *txt2img_noise(run_ctx *c) {
    if (unet_get_config(c->u)->in_channels != c->channels)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "init_image: model_id is an inpainting model (unet in_channels %d): give init_image "
                                 "and mask_image",
                                 unet_get_config(c->u)->in_channels);
    c->latents = malloc(c->n_latents * sizeof(float));
    if (!c->latents)
        return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "width/height: latents of %dx%d x %d do not fit in memory",
                                 c->r.width, c->r.height, c->r.batch_size);
    sdrt_rng_randn(&c->rng, c->latents, c->n_latents);
    float sigma = c->sched->init_noise_sigma(c->state);
    for (size_t k = 0; k < c->n_latents; k++) c->latents[k] *= sigma;
    return NULL;
}

/* The initial latents and the timesteps to run: txt2img noise, or the
 * img2img / inpainting latents (run_image.c); denoising_end (default 0.8
 * when a refiner follows, as diffusers' ensemble-of-experts example). */
static sdrt_error *run_latents(run_ctx *c) {
    c->seed = c->r.seed_given ? c->r.seed : draw_seed();
    c->channels = unet_get_config(c->u)->out_channels;
    c->lh = c->r.height / 8;
    c->lw = c->r.width / 8;
    c->n_latents = (size_t)c->r.batch_size * (size_t)c->channels * (size_t)c->lh * (size_t)c->lw;
    if (c->r.rng_philox) sdrt_rng_seed_philox(&c->rng, c->seed);
    else sdrt_rng_seed(&c->rng, c->seed);
    if (c->r.refiner_id && c->r.denoising_end < 0) c->r.denoising_end = 0.8;
    if (c->r.denoising_end >= 0) c->end = c->sched->end_for_denoising_end(c->state, c->r.denoising_end);
    sdrt_error *e = c->r.init_image ? run_init_latents(c) : txt2img_noise(c);
    if (e || !c->end || c->end > c->begin) return e;
    return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "denoising_end: %g leaves no step of num_inference_steps %d",
                             c->r.denoising_end, c->r.steps);
}

/* ---- denoising -------------------------------------------------------- */

static void report_step(void *cb, int done, int total) {
    run_ctx *c = cb;
    double elapsed = now_s() - c->loop_start;
    double per_step = elapsed / done, eta = per_step * (total - done);
    char msg[160];
    snprintf(msg, sizeof msg, "step %d/%d, elapsed %.1f s, %.2f s/step, eta %.1f s", done, total, elapsed, per_step,
             eta);
    sdrt_progress p = {.struct_size = SDRT_STRUCT_SIZE(sdrt_progress, message),
                       .progress = (double)done / total, .stage = "inference", .step = done, .steps = total,
                       .message = msg};
    c->api->progress(c->job, &p);
    run_preview(c, done, total);
}

static int loop_cancelled(void *cb) {
    run_ctx *c = cb;
    if (c->api->is_cancelled(c->job)) return 1;
    return SDRT_HAS_MEMBER(c->api, sdrt_host_api, wait_if_paused) && c->api->wait_if_paused &&
           c->api->wait_if_paused(c->job);
}

/* Activation bytes of one UNet row (an image, or its CFG half) at latent
 * h x w, a deliberately coarse upper estimate: ~16 live feature maps of the
 * first block's width at full resolution, plus the attention scores of the
 * first attention level (heads x (h*w)^2 floats, the dominant term at
 * large sizes). */
static double unet_row_bytes(const unet_config *u, int h, int w) {
    double hw = (double)h * w, attn_hw = hw;
    int heads = 0;
    for (int b = 0; b < u->nblocks; b++, attn_hw /= 4) {
        if (!u->down_attn[b]) continue;
        heads = u->heads[b];
        break;
    }
    return 4.0 * (16.0 * u->block_out[0] * hw + (heads ? heads * attn_hw * attn_hw : 0));
}

/* Images per UNet call: the request's max_batch, else as many as half the
 * compute device's free memory holds (the other half for weights and the
 * backend's own buffers); 0 = the whole batch at once. */
static int plan_sub_batch(run_ctx *c, sdrt_device *dev) {
    int batch = c->r.batch_size;
    if (c->r.max_batch > 0) return c->r.max_batch < batch ? c->r.max_batch : 0;
    size_t free_b = 0, total_b = 0;
    if (dev && dev->iface->memory) dev->iface->memory(dev, &free_b, &total_b);
    if (!free_b) return 0;
    double per_image = unet_row_bytes(unet_get_config(c->u), c->lh, c->lw) * (c->cond_rows.cfg ? 2 : 1);
    double fit = (double)free_b / 2 / per_image;
    /* One image per call is the least there is: a batch of one is never split. */
    return fit >= batch || batch == 1 ? 0 : fit < 1 ? 1 : (int)fit;
}

/* Says in the warnings when the batch runs in several UNet calls. */
static void report_split(run_ctx *c) {
    if (c->sub_batch <= 0) return;
    char msg[200];
    int calls = (c->r.batch_size + c->sub_batch - 1) / c->sub_batch;
    snprintf(msg, sizeof msg, "batch_size %d runs as %d UNet calls of at most %d image(s) per step (%s); the "
             "results are those of one call", c->r.batch_size, calls, c->sub_batch,
             c->r.max_batch > 0 ? "max_batch" : "memory budget");
    c->api->warn(c->job, msg);
}

/* The plugin's stream params ({"threads":n} or NULL) with the run's
 * "precision" added (none for "auto"): malloc'd, or NULL for none. */
static char *stream_params(const run_ctx *c) {
    if (c->precision == SDRT_PRECISION_AUTO) return c->p->stream_params ? strdup(c->p->stream_params) : NULL;
    cJSON *o = c->p->stream_params ? cJSON_Parse(c->p->stream_params) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "precision");
    cJSON_AddStringToObject(o, "precision", sdrt_precision_name(c->precision));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

sdrt_error *run_open_nn(run_ctx *c) {
    if (c->nn) return NULL;
    sdrt_device *dev = c->backend->default_device(c->backend->self);
    if (!dev) return c->api->error_new(SDRT_FAILED_PRECONDITION, NULL, "inference: no default compute device");
    char *params = stream_params(c), msg[400];
    sdrt_status st = sdrt_nn_create(dev, params, c->api->is_cancelled, c->job, &c->nn, msg, sizeof msg);
    free(params);
    /* A precision the device cannot run (UNSUPPORTED) or a malformed
     * params value: the backend's message names the field; the device id
     * is added where the family's device name is not it. */
    if (st == SDRT_UNSUPPORTED || st == SDRT_INVALID_ARGUMENT) {
        char id[64];
        run_device_id(c->backend, dev, id, sizeof id);
        return c->api->error_new(st, NULL, "%s%s%s%s", msg, strstr(msg, id) ? "" : " (device ", strstr(msg, id) ? "" : id,
                                 strstr(msg, id) ? "" : ")");
    }
    if (st != SDRT_OK)
        return c->api->error_new(SDRT_FAILED_PRECONDITION, NULL, "inference: no compute stream on the default device: %s",
                                 msg);
    c->dev = dev;
    /* The UNet's (and ControlNets') weights: resident, per run (model
     * offload), or per op (sequential). */
    if (sdrt_nn_set_offload(c->nn, c->mem.offload) != SDRT_OK)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "offload: mode %d unknown", c->mem.offload);
    return NULL;
}

void run_vae_options(const run_ctx *c, sdrt_vae_options *o) {
    infer_memory_vae_options(&c->mem, o);
    o->precision = c->precision == SDRT_PRECISION_AUTO ? NULL : sdrt_precision_name(c->precision);
}

void run_offload_unet(run_ctx *c) {
    if (!c->nn) return;
    /* In every mode the UNet's activations leave before the VAE's come. */
    sdrt_nn_release_arena(c->nn);
    if (c->mem.offload != SDRT_OFFLOAD_NONE) sdrt_nn_release_weights(c->nn);
}

sdrt_error *run_denoise(run_ctx *c) {
    sdrt_error *oe = run_open_nn(c);
    if (oe) return oe;
    sdrt_device *dev = c->dev;
    /* Weights resident on the device, shared with every request on this
     * model (merged LoRA tensors: the set's copies, freed with it). */
    sdrt_nn_add_weight_store(c->nn, sdrt_lora_weights(c->lora, c->lora_set));
    sdrt_nn_add_weight_store(c->nn, sdrt_model_weights(c->model, c->m));
    if (dev && !c->refining) {
        c->sub_batch = plan_sub_batch(c, dev);
        report_split(c);
    }
    int rows_per_image = c->cond_rows.cfg ? 2 : 1;
    int blend = c->mask_latents && !c->extra;
    infer_loop loop = {.u = c->u, .nn = c->nn, .sched = c->sched, .state = c->state, .rng = &c->rng,
                       .guidance_scale = (float)c->r.guidance_scale, .cond = &c->cond_rows,
                       .channels = c->channels, .h = c->lh, .w = c->lw, .begin = c->begin, .end = c->end,
                       .extra_channels = c->extra ? 1 + c->channels : 0, .extra = c->extra,
                       .blend_mask = blend ? c->mask_latents : NULL, .blend_image = blend ? c->image_latents : NULL,
                       .blend_noise = blend ? c->noise : NULL, .max_rows = c->sub_batch * rows_per_image,
                       .controlnets = c->cns.n && !c->refining ? &c->cns : NULL,
                       .on_step = report_step, .cancelled = loop_cancelled, .cb = c};
    char err[512];
    c->loop_start = now_s();
    sdrt_status st = infer_denoise(&loop, c->latents, err, sizeof err);
    if (st == SDRT_OK) return NULL;
    return c->api->error_new(st, NULL, "%s", err);
}

/* ---- outputs ---------------------------------------------------------- */

static sdrt_error *save_image(run_ctx *c, int i, const float *rgb, int h, int w, const char *params,
                              const char *resolved) {
    char prefix[128];
    if (c->r.output_prefix) snprintf(prefix, sizeof prefix, "%s", c->r.output_prefix);
    else snprintf(prefix, sizeof prefix, "sdrt-%llu", (unsigned long long)c->seed);
    char *path = NULL;
    sdrt_error *e = c->post->write_png(c->post->self, rgb + (size_t)i * h * w * 3, h, w, c->r.output_dir, prefix,
                                       params, resolved ? resolved : c->data_json, &path);
    if (e) return e;
    c->outs[i].image_path = strdup(path);
    c->post->free(c->post->self, path);
    if (!c->outs[i].image_path) return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "inference: out of memory");
    if (!c->r.save_latents) return NULL;
    if ((e = run_hires_save(c, i, c->outs[i].image_path))) return e;
    char err[512];
    size_t per = c->n_latents / (size_t)c->r.batch_size;
    if (infer_write_latents(c->outs[i].image_path, c->latents + per * (size_t)i, c->channels, c->lh, c->lw,
                            &c->outs[i].latents_path, err, sizeof err) != 0)
        return c->api->error_new(SDRT_IO_ERROR, NULL, "output.save_latents: %s", err);
    return NULL;
}

/* The VAE decode of c->latents. With a postprocess plugin that decodes
 * device latents (decode_tensor), the latents go to the loop's device once
 * and the VAE reads them there; pixels come back for the files. */
static sdrt_error *decode_latents(run_ctx *c, float **decoded, int *h, int *w) {
    sdrt_model *vm = c->vae_m ? c->vae_m : c->m;
    const sdrt_postprocess_iface *pp = c->post;
    sdrt_vae_options o;
    run_vae_options(c, &o);
    run_offload_unet(c); /* model offload: the VAE runs alone on the device */
    if (!c->nn || !SDRT_HAS_MEMBER(pp, sdrt_postprocess_iface, decode_tensor) || !pp->decode_tensor)
        return pp->decode(pp->self, vm, c->latents, c->r.batch_size, c->channels, c->lh, c->lw, &o, c->job, decoded,
                          h, w);
    int64_t shape[4] = {c->r.batch_size, c->channels, c->lh, c->lw};
    sdrt_tensor *lat = sdrt_nn_from_host(c->nn, SDRT_DTYPE_F32, 4, shape, c->latents);
    if (!lat || sdrt_nn_synchronize(c->nn) != SDRT_OK) {
        sdrt_nn_drop(c->nn, lat);
        const char *msg = NULL;
        sdrt_status st = sdrt_nn_status(c->nn, &msg);
        return c->api->error_new(st != SDRT_OK ? st : SDRT_RESOURCE_EXHAUSTED, NULL, "decode: uploading the latents: %s",
                                 msg && *msg ? msg : "failed");
    }
    sdrt_error *e = pp->decode_tensor(pp->self, vm, c->dev, lat, &o, c->job, decoded, h, w);
    sdrt_nn_drop(c->nn, lat);
    return e;
}

static sdrt_error *run_outputs(run_ctx *c) {
    sdrt_progress p = {.struct_size = SDRT_STRUCT_SIZE(sdrt_progress, message), .progress = 1.0, .stage = "decode",
                       .message = "decoding latents"};
    c->api->progress(c->job, &p);
    float *decoded = NULL, *overlaid = NULL;
    int h = 0, w = 0;
    sdrt_error *e = run_check_finite(c, c->latents, c->n_latents, "latents");
    if (!e) e = decode_latents(c, &decoded, &h, &w);
    if (!e) e = run_check_finite(c, decoded, (size_t)c->r.batch_size * h * w * 3, "decoded image (VAE)");
    /* "only masked" inpainting: the crop goes back into the original. */
    if (!e && c->orig_u8) e = run_overlay(c, decoded, &overlaid, &h, &w);
    if (e) {
        c->post->free(c->post->self, decoded);
        return e;
    }
    float *rgb = overlaid ? overlaid : decoded;
    c->outs = calloc((size_t)c->r.batch_size, sizeof *c->outs);
    e = c->outs ? NULL : c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "inference: out of memory");
    if (!e) e = run_safety(c, rgb, h, w);
    sdrt_progress pp = {.struct_size = SDRT_STRUCT_SIZE(sdrt_progress, message), .progress = 1.0,
                        .stage = "postprocessing", .message = "writing images"};
    if (!e) c->api->progress(c->job, &pp);
    char *params = NULL, *resolved = e ? NULL : run_resolved_request_json(c);
    sdrt_error *pe = e ? NULL : c->post->format_parameters(c->post->self, resolved ? resolved : c->data_json, c->seed, &params);
    if (pe) c->api->error_free(pe); /* metadata is optional: the image is not */
    for (int i = 0; !e && i < c->r.batch_size; i++) e = save_image(c, i, rgb, h, w, params, resolved);
    free(resolved);
    c->post->free(c->post->self, params);
    c->post->free(c->post->self, decoded);
    free(overlaid);
    return e;
}

/* ---- the run ---------------------------------------------------------- */

static void run_release(run_ctx *c) {
    sdrt_nn_free(c->nn);
    if (c->state) c->sched->destroy(c->state);
    unet_free(c->u);
    run_controlnets_free(c);
    run_lora_free(c); /* after the UNet and nn that may hold its tensors; before the model closes */
    run_cond_free(c);
    if (c->m) c->model->close(c->model->self, c->m);
    run_image_free(c);
    release_ifaces(c);
    free(c->latents);
    free(c->hires_input);
    free(c->hires_image);
    free(c->params_json);
    infer_outputs_free(c->outs, c->r.batch_size);
    infer_request_free(&c->r);
}

static sdrt_error *run_stages(run_ctx *c) {
    sdrt_error *(*const stages[])(run_ctx *) = {
        /* the stream first: a precision the device cannot run fails
         * before any model is read */
        run_acquire, run_check_device, run_open_nn, run_read_images, run_open_model, run_safety_preflight,
        run_open_vae, run_scheduler, run_conditioning,
        run_base_unet, run_controlnets, run_latents, run_denoise, run_hires, run_refiner, run_outputs,
    };
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        if (c->api->is_cancelled(c->job))
            return c->api->error_new(SDRT_CANCELLED, NULL, "inference: cancelled");
        sdrt_error *e = stages[i](c);
        if (e) return e;
    }
    return NULL;
}

sdrt_error *infer_run(const infer_plugin *p, const sdrt_request *req, char **result_json) {
    run_ctx c = {.p = p, .api = p->api, .job = req->job, .data_json = req->data_json, .t0 = now_s()};
    char err[512];
    *result_json = NULL;
    sdrt_status st = infer_request_parse(req->data_json, &c.r, err, sizeof err);
    if (st != SDRT_OK) return p->api->error_new(st, NULL, "%s", err);
    /* One precision for every stream of the run: the UNet's here, the text
     * encoders' (sdrt_cond_params.precision) and the VAE's
     * (run_vae_options; a force_upcast VAE runs f32 whatever it says). */
    c.precision = c.r.precision_given ? c.r.precision : p->precision;
    st = infer_memory_resolve(&p->memory, &c.r.memory, &c.mem, err, sizeof err);
    if (st != SDRT_OK) {
        infer_request_free(&c.r);
        return p->api->error_new(st, NULL, "%s", err);
    }
    /* Before anything loads: the fields alone bound the work (work_limits.h). */
    st = infer_limits_check(&p->limits, &c.r, err, sizeof err);
    if (st != SDRT_OK) {
        infer_request_free(&c.r);
        return p->api->error_new(st, NULL, "%s", err);
    }
    sdrt_error *e = run_stages(&c);
    /* Every plugin's uploads for this job (UNet here, text encoders in
     * conditioning, VAE in postprocess) are counted by the model plugin. */
    uint64_t uploaded = sdrt_model_take_uploaded_bytes(c.model, c.job);
    if (!e) {
        int out_w = c.orig_u8 ? c.orig_w : c.r.width, out_h = c.orig_u8 ? c.orig_h : c.r.height;
        *result_json = infer_response_json(p->api, c.outs, c.r.batch_size, c.seed, out_w, out_h,
                                           now_s() - c.t0, c.sub_batch, uploaded);
        if (!*result_json) e = p->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "inference: out of memory");
    }
    run_release(&c);
    return e;
}
