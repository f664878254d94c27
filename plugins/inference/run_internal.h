/* plugins/inference/run_internal.h - the state of one inference.run, shared
 * by the run stages (run.c) and the conditioning stage (run_cond.c). */
#ifndef SDRT_INFERENCE_RUN_INTERNAL_H
#define SDRT_INFERENCE_RUN_INTERNAL_H

#include "controlnet_run.h"
#include "denoise.h"
#include "request.h"
#include "response.h"
#include "run.h"
#include "sdrt/backend.h"
#include "sdrt/cond.h"
#include "sdrt/lora.h"
#include "sdrt/model.h"
#include "sdrt/postprocess.h"
#include "sdrt/rng.h"
#include "sdrt/scheduler.h"
#include "unet.h"

typedef struct run_ctx {
    const infer_plugin *p;
    const sdrt_host_api *api;
    sdrt_job *job;
    const char *data_json;    /* the request's data, borrowed */
    infer_request r;
    /* The run's precision (request, else the plugin's default); the VAE
     * calls get it through run_vae_options. */
    sdrt_precision precision;
    double t0, loop_start;

    /* Interfaces (acquired, released at the end). */
    const sdrt_model_iface *model;
    const sdrt_backend_iface *backend;
    const sdrt_scheduler_iface *sched;
    const sdrt_cond_iface *cond;
    const sdrt_postprocess_iface *post;
    const sdrt_lora_iface *lora;  /* optional: NULL when no lora plugin is loaded */

    sdrt_model *m;
    const char *arch;
    int is_sdxl;
    unet_config ucfg;         /* of the open model, parsed before the UNet is built */
    unet *u;
    /* The request's adapters plus the prompt's tags merged into the base
     * model (NULL: none); built by the conditioning stage, read by the
     * base UNet build, destroyed after the UNet is freed. */
    sdrt_lora_set *lora_set;
    int refining;             /* 1 once run_refiner replaced the base model */
    sdrt_sched *state;
    sdrt_nn *nn;
    sdrt_device *dev;         /* nn's device (the backend's default), once nn is made */

    /* Conditioning rows for the UNet ([uncond x batch, cond x batch]). */
    infer_cond cond_rows;
    float *cond_buf;          /* context, pooled and time ids, one block */

    uint64_t seed;
    sdrt_rng rng;
    int channels, lh, lw;     /* latents: the unet's out_channels */
    size_t n_latents;
    float *latents;
    infer_output *outs;
    int safety_skip;          /* checker on by config only, and the model has none */
    uint32_t begin, end;      /* timestep indices to run; end 0 = all */
    int sub_batch;            /* images per UNet call (< batch_size: split) */

    /* img2img and inpainting (run_image.c). */
    sdrt_model *vae_m;        /* model_id.vae, or NULL: the model's own */
    uint8_t *init_u8;         /* [H, W, 3] at the target size */
    float *handover;          /* init_image given as latents [1, C, h, w] */
    int handover_channels;
    uint8_t *mask_u8;         /* [H, W] grayscale at the target size */
    float *image_latents;     /* [batch, C, h, w] */
    float *noise;             /* [batch, C, h, w] */
    float *mask_latents;      /* [batch, 1, h, w] */
    float *extra;             /* [batch, 1 + C, h, w] (9-channel UNets) */
    /* padding_mask_crop: the image and (blurred, grayscale) mask as given,
     * and the crop box that was generated, for the final overlay. */
    uint8_t *orig_u8, *orig_mask;
    int orig_w, orig_h;
    int crop[4];

    /* The hires fix's second-pass input (run_hires.c). */
    float *hires_input;       /* [batch, C, h, w] upscaled latents before noise */
    uint8_t *hires_image;     /* image upscalers: [batch, hires_h, hires_w, 3] */
    int hires_w, hires_h;
    /* The first pass's size (0 without hires): A1111's "Size" in the PNG. */
    int first_w, first_h;
    /* The request with "infotext_extra" (A1111's hires entries) added, for
     * the PNG parameters; NULL = data_json as is. */
    char *params_json;
    /* ControlNets (run_controlnet.c): built nets with their images, and
     * the models they read (open until the run ends). */
    infer_cn_set cns;
    sdrt_model *cn_models[INFER_MAX_CONTROLNETS];
    /* The memory modes this run uses: the request's over the config's. */
    infer_memory mem;
} run_ctx;

/* run.c: stages the refiner pass repeats on its own model. */
sdrt_error *run_scheduler(run_ctx *c);
/* The VAE options of the run's memory modes (tiling, slicing, offload). */
void run_vae_options(const run_ctx *c, sdrt_vae_options *o);
/* Before another component (VAE, upscaler) runs: the UNet's graph arena is
 * freed, and with offload the weights c->nn holds (UNet, ControlNets)
 * leave the device too. */
void run_offload_unet(run_ctx *c);
sdrt_error *run_denoise(run_ctx *c);
/* run_hires.c: the hires fix's second pass (no-op without hires), and the
 * save of its input next to image i with output.save_latents. */
sdrt_error *run_hires(run_ctx *c);
sdrt_error *run_hires_save(run_ctx *c, int i, const char *png_path);
/* run_load_unet = run_unet_config (arch, c->ucfg) + run_build_unet (c->u,
 * with c->lora_set's tensors over the model's). */
sdrt_error *run_load_unet(run_ctx *c, const char *field);
sdrt_error *run_unet_config(run_ctx *c, const char *field);
sdrt_error *run_build_unet(run_ctx *c, const char *field);
/* Destroys c->lora_set (after the UNet that reads it is freed). */
void run_lora_free(run_ctx *c);

/* run_image.c: the init image and mask (before the model opens: they fix
 * the size), then the initial latents of img2img / inpainting. */
sdrt_error *run_read_images(run_ctx *c);
sdrt_error *run_open_vae(run_ctx *c);
sdrt_error *run_init_latents(run_ctx *c);
/* padding_mask_crop: decoded [batch, H, W, 3] pasted back into the original
 * image; *out (malloc'd) is [batch, h0, w0, 3] and *h, *w its size. */
sdrt_error *run_overlay(run_ctx *c, const float *decoded, float **out, int *h, int *w);
void run_image_free(run_ctx *c);
/* An image (path under the roots or data: URI) as [h, w, 3] 8-bit
 * (malloc'd); errors name `field`. */
sdrt_error *run_read_u8(run_ctx *c, const char *field, const char *source, uint8_t **out, int *w, int *h);
/* run_controlnet.c: opens and builds the request's ControlNets for the
 * base model (after its UNet config is known) and reads their images at
 * the generation size; run_controlnets_free releases them. */
sdrt_error *run_controlnets(run_ctx *c);
void run_controlnets_free(run_ctx *c);
/* Takes `e` and returns it as "<field>: <message>". */
sdrt_error *run_field_error(run_ctx *c, sdrt_error *e, const char *field);

/* device_check.c: the request's `device` against the devices there are
 * (NOT_FOUND / INVALID_ARGUMENT naming it; a warning when it is not the
 * deployment's device, where every request runs). */
sdrt_error *run_check_device(run_ctx *c);
/* The id ("cpu:0", "vulkan:1") of dev among b's families, into out ("?"
 * when b does not list it). */
void run_device_id(const sdrt_backend_iface *b, const sdrt_device *dev, char *out, size_t n);

/* resolved.c: what actually ran, for the image metadata. */
/* The request's data with every default resolved (model defaults for size
 * and guidance, the scheduler class and config that ran, the seed, steps,
 * strength): malloc'd JSON text, or NULL when out of memory. */
char *run_resolved_request_json(const run_ctx *c);
/* run_image.c: the strength img2img/inpainting runs with (request or the
 * pipeline's default); meaningful only with init_image. */
double run_strength(const run_ctx *c);
/* NaN or Inf anywhere in data[0..n): FAILED_PRECONDITION naming `what` and
 * the likely causes, else NULL. */
sdrt_error *run_check_finite(run_ctx *c, const float *data, size_t n, const char *what);

/* run_refiner.c: the SDXL refiner pass on the base's latents. */
sdrt_error *run_refiner(run_ctx *c);

/* run_safety.c: the safety checker on the decoded images rgb
 * [batch_size, h, w, 3] (zeroed in place when flagged and the action is
 * "black"); sets c->outs[i].safety_checked / nsfw. Needs c->outs. The
 * preflight (a stage right after the model opens) opens and checks the
 * checker, so a missing or broken one fails before any step. */
sdrt_error *run_safety(run_ctx *c, float *rgb, int h, int w);
sdrt_error *run_safety_preflight(run_ctx *c);

/* run_cond.c: prompt embeddings through sdrt.cond/1 into cond_rows; the
 * base pass also builds c->lora_set from the request's adapters and the
 * prompt's <lora:name:w> tags (the refiner gets no LoRA, as diffusers). */
sdrt_error *run_conditioning(run_ctx *c);
/* Forgets cond_rows: its device tensors belong to c->nn and go with it. */
void run_cond_free(run_ctx *c);
/* run.c: makes c->nn (and c->dev) on the backend's default device in the
 * run's precision unless made; UNSUPPORTED / INVALID_ARGUMENT naming
 * `precision` and the device when the device refuses it,
 * FAILED_PRECONDITION when no stream can be opened there. */
sdrt_error *run_open_nn(run_ctx *c);

/* preview.c: `preview` events (every r.preview_every steps and at the last
 * step) of c->latents after step `done` of `total`. A failure is a warning
 * and stops further previews. */
void run_preview(run_ctx *c, int done, int total);

#endif /* SDRT_INFERENCE_RUN_INTERNAL_H */
