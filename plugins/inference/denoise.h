/* plugins/inference/denoise.h - the denoising loop of txt2img: scheduler
 * input scaling, the UNet call (batched [uncond, cond] for classifier-free
 * guidance), guidance, and the scheduler step, as diffusers'
 * StableDiffusion(XL)Pipeline.__call__ runs them. */
#ifndef SDRT_INFERENCE_DENOISE_H
#define SDRT_INFERENCE_DENOISE_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/rng.h"
#include "sdrt/scheduler.h"
#include "unet.h"

/* Text conditioning of every UNet row, host float32. With CFG the rows are
 * [uncond x batch, cond x batch] (diffusers' order), otherwise cond x batch. */
typedef struct infer_cond {
    int batch;               /* images */
    int cfg;                 /* 1: two rows per image */
    int64_t seq_len, dim;
    const float *context;    /* [rows, seq_len, dim] on the host, or NULL when context_dev */
    int64_t pooled_dim;      /* SDXL; 0 otherwise */
    const float *pooled;     /* [rows, pooled_dim] on the host, or NULL when pooled_dev */
    const float *time_ids;   /* [rows, k] (SDXL: 6 ids, refiner 5) */
    /* The same rows already on the loop's device (tensors the loop reads,
     * never drops), as the conditioning plugin left them there; NULL: the
     * loop uploads the host arrays once. */
    const sdrt_tensor *context_dev;
    const sdrt_tensor *pooled_dev;
} infer_cond;

typedef struct infer_loop {
    const unet *u;
    sdrt_nn *nn;
    const sdrt_scheduler_iface *sched;
    sdrt_sched *state;
    sdrt_rng *rng;
    float guidance_scale;
    const infer_cond *cond;
    int channels, h, w;       /* latent size */
    /* Timestep indices to run, [begin, end): img2img strength and SDXL
     * denoising_start set begin (the caller has called set_begin_index),
     * denoising_end sets end. end 0 = every remaining timestep. */
    uint32_t begin, end;
    /* 9-channel inpainting UNets: per image [extra_channels, h, w] (mask,
     * masked-image latents) appended to the scaled latents of every UNet
     * row, as diffusers' torch.cat([latents, mask, masked], dim=1). */
    int extra_channels;
    const float *extra;
    /* 4-channel inpainting: after every step but the last, latents =
     * (1 - mask) * add_noise(image, noise, t[i+1]) + mask * latents; after
     * the last, the image latents themselves. All three NULL = off. */
    const float *blend_mask;  /* [batch, 1, h, w], 0 keep / 1 repaint */
    const float *blend_image; /* [batch, channels, h, w] */
    const float *blend_noise; /* [batch, channels, h, w] */
    /* UNet rows per forward call (0 = all rows at once): the batch is
     * split into sub-batches to bound activation memory. Every step still
     * scales, guides and steps the whole batch with one generator, so the
     * result equals the unsplit run (each row's UNet output does not
     * depend on the other rows of its call). */
    int max_rows;
    /* ControlNets of the base pass (controlnet_run.h), or NULL. */
    const struct infer_cn_set *controlnets;
    /* Called after every step with (done, total); may be NULL. */
    void (*on_step)(void *cb, int done, int total);
    /* Polled before every step; non-zero stops with SDRT_CANCELLED. */
    int (*cancelled)(void *cb);
    void *cb;
} infer_loop;

/* Runs the scheduler steps [begin, end) on `latents` ([batch, channels, h,
 * w] host float32: noise times init_noise_sigma, or noised image latents),
 * in place. Returns
 * SDRT_OK, SDRT_CANCELLED, SDRT_RESOURCE_EXHAUSTED, or the UNet's or
 * scheduler's failure status, with err set. */
sdrt_status infer_denoise(const infer_loop *loop, float *latents, char *err, size_t errlen);

/* noise_uncond + g * (noise_text - noise_uncond) over n floats, with
 * `pred` = [uncond (n), text (n)]; the same float32 arithmetic as diffusers. */
void infer_guidance(const float *pred, float g, float *out, size_t n);

#endif /* SDRT_INFERENCE_DENOISE_H */
