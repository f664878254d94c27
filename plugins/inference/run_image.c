/* plugins/inference/run_image.c - img2img and inpainting inputs of
 * inference.run, as diffusers' StableDiffusion(XL)Img2ImgPipeline and
 * StableDiffusion(XL)InpaintPipeline prepare them:
 *
 *   init_image -> 8-bit RGB at the target size (Lanczos, image_prep.c)
 *   -> VAE encode, latent_dist.sample(generator)           [draw 1]
 *   -> noise = randn(generator)                            [draw 2]
 *   -> latents = add_noise(image_latents, noise, t_begin)
 *   mask_image -> gray, blur, binarise; masked image = image * (mask < 0.5)
 *   -> VAE encode, latent_dist.sample(generator)           [draw 3]
 *
 * The draws come from the request's one generator in diffusers' order, so
 * a seed gives diffusers' latents (and stochastic samplers, which draw
 * later, the same trajectory). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_prep.h"
#include "run_internal.h"
#include "sdrt/npy.h"

static sdrt_error *oom(run_ctx *c, const char *what) {
    return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "%s: out of memory", what);
}

/* An error of another component, prefixed with the request field (in
 * place of the generic "model_id: " the model plugin starts with). */
sdrt_error *run_field_error(run_ctx *c, sdrt_error *e, const char *field) {
    const char *msg = e->message ? e->message : "failed";
    if (strncmp(msg, "model_id: ", 10) == 0) msg += 10;
    sdrt_error *out = c->api->error_new(e->code, NULL, "%s: %s", field, msg);
    c->api->error_free(e);
    return out;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- reading ---------------------------------------------------------- */

/* init_image as latents saved by an earlier run (output.save_latents): the
 * SDXL base -> refiner handover across two requests. */
static sdrt_error *read_handover(run_ctx *c) {
    sdrt_error *e = NULL;
    char *path = c->api->resolve_path(c->p->host, "output", c->r.init_image, &e);
    if (!path)
        return e ? run_field_error(c, e, "init_image")
                 : c->api->error_new(SDRT_PERMISSION_DENIED, NULL, "init_image: not allowed");
    int64_t shape[8];
    int nd = 0;
    char err[512];
    int rc = sdrt_npy_read_f32(path, &c->handover, shape, &nd, err, sizeof err);
    c->api->free(path);
    if (rc != 0) return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "init_image: %s", err);
    if (nd != 4 || shape[0] != 1 || shape[1] < 1 || shape[1] > 16 || shape[2] < 1 || shape[3] < 1 ||
        shape[2] > INFER_MAX_SIZE / 8 || shape[3] > INFER_MAX_SIZE / 8)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "init_image: latents must have the shape [1, C, h, w]");
    int h = (int)shape[2] * 8, w = (int)shape[3] * 8;
    if ((c->r.width && c->r.width != w) || (c->r.height && c->r.height != h))
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "width/height: %dx%d differ from the %dx%d of the init_image latents", c->r.width,
                                 c->r.height, w, h);
    c->handover_channels = (int)shape[1];
    c->r.width = w;
    c->r.height = h;
    return NULL;
}

/* An image through sdrt.postprocess/1 as 8-bit RGB (what PIL would hold). */
sdrt_error *run_read_u8(run_ctx *c, const char *field, const char *source, uint8_t **out, int *w, int *h) {
    float *rgb = NULL;
    sdrt_error *e = c->post->read_image(c->post->self, source, &rgb, h, w);
    if (e) return run_field_error(c, e, field);
    size_t n = (size_t)*w * (size_t)*h * 3;
    *out = malloc(n);
    if (*out) iprep_to_u8(rgb, n, *out);
    c->post->free(c->post->self, rgb);
    return *out ? NULL : oom(c, field);
}

/* The target size: width/height when given, else the image's size rounded
 * down to a multiple of 8 (diffusers' VaeImageProcessor default). */
static sdrt_error *target_size(run_ctx *c, int w, int h) {
    if (!c->r.width) c->r.width = w / 8 * 8;
    if (!c->r.height) c->r.height = h / 8 * 8;
    if (c->r.width < 8 || c->r.height < 8)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "init_image: %dx%d is smaller than 8x8", w, h);
    return NULL;
}

/* The mask as given, [h, w, 3], blurred (VaeImageProcessor.blur on the
 * user's mask, per channel like PIL on an RGB image). */
static sdrt_error *read_mask(run_ctx *c, int iw, int ih, uint8_t **rgb) {
    int w = 0, h = 0;
    sdrt_error *e = run_read_u8(c, "mask_image", c->r.mask_image, rgb, &w, &h);
    if (e) return e;
    if (w != iw || h != ih)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "mask_image: %dx%d differs from the init_image's %dx%d", w,
                                 h, iw, ih);
    return iprep_gaussian_blur(*rgb, w, h, 3, (float)c->r.mask_blur) == 0 ? NULL : oom(c, "mask_blur");
}

/* padding_mask_crop: the region around the mask (VaeImageProcessor.
 * get_crop_region on the grayscale mask); keeps the original image and
 * mask for the overlay after decoding. */
static sdrt_error *plan_crop(run_ctx *c, uint8_t **img, const uint8_t *mask_rgb, int w, int h) {
    c->orig_mask = malloc((size_t)w * h);
    if (!c->orig_mask) return oom(c, "padding_mask_crop");
    iprep_gray(mask_rgb, (size_t)w * h, c->orig_mask);
    iprep_crop_region(c->orig_mask, w, h, c->r.width, c->r.height, c->r.padding_mask_crop, c->crop);
    c->orig_u8 = *img;
    *img = NULL;
    c->orig_w = w;
    c->orig_h = h;
    return NULL;
}

/* src [h, w, 3] to the target size: crop + fill with padding_mask_crop,
 * else a plain Lanczos resize (VaeImageProcessor resize_mode "default"). */
static uint8_t *to_target(run_ctx *c, const uint8_t *src, int w, int h) {
    uint8_t *dst = malloc((size_t)c->r.width * c->r.height * 3);
    int rc = !dst ? -1
             : c->orig_mask ? iprep_crop_fill(src, w, 3, c->crop, dst, c->r.width, c->r.height)
                            : iprep_resize(src, w, h, 3, dst, c->r.width, c->r.height);
    if (rc == 0) return dst;
    free(dst);
    return NULL;
}

static sdrt_error *prepare_images(run_ctx *c, uint8_t **img, int w, int h) {
    uint8_t *mask_rgb = NULL, *mask_t = NULL;
    sdrt_error *e = c->r.mask_image ? read_mask(c, w, h, &mask_rgb) : NULL;
    if (!e && c->r.padding_mask_crop >= 0) e = plan_crop(c, img, mask_rgb, w, h);
    const uint8_t *src = *img ? *img : c->orig_u8;
    if (!e && !(c->init_u8 = to_target(c, src, w, h))) e = oom(c, "init_image");
    if (!e && mask_rgb && !(mask_t = to_target(c, mask_rgb, w, h))) e = oom(c, "mask_image");
    if (!e && mask_t && !(c->mask_u8 = malloc((size_t)c->r.width * c->r.height))) e = oom(c, "mask_image");
    if (!e && mask_t) iprep_gray(mask_t, (size_t)c->r.width * c->r.height, c->mask_u8);
    free(mask_rgb);
    free(mask_t);
    return e;
}

sdrt_error *run_read_images(run_ctx *c) {
    if (!c->r.init_image) return NULL;
    if (has_suffix(c->r.init_image, ".npy")) {
        if (c->r.mask_image)
            return c->api->error_new(SDRT_UNSUPPORTED, NULL,
                                     "mask_image: inpainting needs an image init_image, not latents");
        return read_handover(c);
    }
    uint8_t *img = NULL;
    int w = 0, h = 0;
    sdrt_error *e = run_read_u8(c, "init_image", c->r.init_image, &img, &w, &h);
    if (!e) e = target_size(c, w, h);
    if (!e) e = prepare_images(c, &img, w, h);
    free(img);
    return e;
}

sdrt_error *run_overlay(run_ctx *c, const float *decoded, float **out, int *h, int *w) {
    size_t gen_n = (size_t)c->r.width * c->r.height * 3, orig_n = (size_t)c->orig_w * c->orig_h * 3;
    uint8_t *gen = malloc(gen_n), *merged = malloc(orig_n);
    *out = malloc(orig_n * (size_t)c->r.batch_size * sizeof(float));
    int rc = gen && merged && *out ? 0 : -1;
    for (int b = 0; rc == 0 && b < c->r.batch_size; b++) {
        /* numpy_to_pil: (x * 255).round() */
        for (size_t i = 0; i < gen_n; i++) gen[i] = (uint8_t)lrintf(decoded[(size_t)b * gen_n + i] * 255.0f);
        rc = iprep_overlay(c->orig_u8, c->orig_mask, c->orig_w, c->orig_h, gen, c->r.width, c->r.height, c->crop,
                           merged);
        for (size_t i = 0; rc == 0 && i < orig_n; i++) (*out)[(size_t)b * orig_n + i] = merged[i] / 255.f;
    }
    free(gen);
    free(merged);
    if (rc == 0) {
        *h = c->orig_h;
        *w = c->orig_w;
        return NULL;
    }
    free(*out);
    *out = NULL;
    return oom(c, "padding_mask_crop");
}

sdrt_error *run_open_vae(run_ctx *c) {
    if (!c->r.vae_id) return NULL;
    sdrt_error *e = c->model->open(c->model->self, c->r.vae_id, c->job, &c->vae_m);
    if (e) return run_field_error(c, e, "model_id.vae");
    if (!c->model->config_json(c->vae_m, "vae"))
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "model_id.vae: %s has no vae component", c->r.vae_id);
    return NULL;
}

/* ---- latents ---------------------------------------------------------- */

/* diffusers' default strength per pipeline. */
static double default_strength(const run_ctx *c) {
    if (c->r.mask_image) return c->is_sdxl ? 0.9999 : 1.0;
    return c->is_sdxl ? 0.3 : 0.8;
}

double run_strength(const run_ctx *c) { return c->r.strength >= 0 ? c->r.strength : default_strength(c); }

static sdrt_error *plan_steps(run_ctx *c) {
    const sdrt_scheduler_iface *S = c->sched;
    double strength = c->r.strength >= 0 ? c->r.strength : default_strength(c);
    c->begin = c->r.denoising_start >= 0 ? S->begin_for_denoising_start(c->state, c->r.denoising_start)
                                         : S->begin_for_strength(c->state, strength);
    if (c->begin >= S->num_timesteps(c->state))
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 c->r.denoising_start >= 0 ? "denoising_start: %g leaves no step of num_inference_steps %d"
                                                           : "strength: %g leaves no step of num_inference_steps %d",
                                 c->r.denoising_start >= 0 ? c->r.denoising_start : strength, c->r.steps);
    sdrt_status st = S->set_begin_index(c->state, c->begin);
    return st == SDRT_OK ? NULL : c->api->error_new(st, NULL, "scheduler: set_begin_index(%u) failed", c->begin);
}

/* VAE-encodes rgb8 [H, W, 3] (after `mask` zeroing when given) into
 * [1, C, h, w], drawing latent_dist.sample's noise from the generator. */
static sdrt_error *encode(run_ctx *c, const uint8_t *rgb8, const uint8_t *mask, float **out) {
    size_t npx = (size_t)c->r.width * c->r.height, nz = (size_t)c->channels * c->lh * c->lw;
    float *rgb = malloc(npx * 3 * sizeof(float)), *eps = malloc(nz * sizeof(float));
    sdrt_error *e = rgb && eps ? NULL : oom(c, "init_image");
    if (!e) {
        for (size_t i = 0; i < npx * 3; i++) rgb[i] = rgb8[i] / 255.f;
        if (mask) iprep_mask_image(rgb, mask, npx);
        sdrt_rng_randn(&c->rng, eps, nz);
        int ch = 0;
        sdrt_vae_options o;
        run_vae_options(c, &o);
        run_offload_unet(c);
        e = c->post->encode(c->post->self, c->vae_m ? c->vae_m : c->m, rgb, 1, c->r.height, c->r.width, eps, &o,
                            c->job, out, &ch);
        if (!e && ch != c->channels)
            e = c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                  "model_id: the VAE gives %d latent channels, the unet takes %d", ch, c->channels);
    }
    free(rgb);
    free(eps);
    return e;
}

/* [1, per] -> [batch, per] (diffusers repeats one image per prompt). */
static float *repeat_batch(const float *one, size_t per, int batch) {
    float *all = malloc(per * (size_t)batch * sizeof(float));
    for (int b = 0; all && b < batch; b++) memcpy(all + per * (size_t)b, one, per * sizeof(float));
    return all;
}

static sdrt_error *image_latents(run_ctx *c) {
    size_t per = (size_t)c->channels * c->lh * c->lw;
    if (c->handover) {
        if (c->handover_channels != c->channels)
            return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                     "init_image: latents have %d channels, the unet takes %d", c->handover_channels,
                                     c->channels);
        c->image_latents = repeat_batch(c->handover, per, c->r.batch_size);
        return c->image_latents ? NULL : oom(c, "init_image");
    }
    float *one = NULL;
    sdrt_error *e = encode(c, c->init_u8, NULL, &one);
    if (e) return e;
    c->image_latents = repeat_batch(one, per, c->r.batch_size);
    c->post->free(c->post->self, one);
    return c->image_latents ? NULL : oom(c, "init_image");
}

/* Masks and masked-image latents, after the noise (diffusers' order). */
static sdrt_error *mask_latents(run_ctx *c, int unet_in) {
    size_t plane = (size_t)c->lh * c->lw, per = (size_t)c->channels * plane;
    float *one_mask = malloc(plane * sizeof(float)), *masked = NULL;
    if (!one_mask) return oom(c, "mask_image");
    iprep_mask_latent(c->mask_u8, c->r.width, c->r.height, one_mask);
    sdrt_error *e = encode(c, c->init_u8, c->mask_u8, &masked);
    c->mask_latents = e ? NULL : repeat_batch(one_mask, plane, c->r.batch_size);
    if (!e && unet_in == 2 * c->channels + 1) {
        c->extra = malloc((plane + per) * (size_t)c->r.batch_size * sizeof(float));
        for (int b = 0; c->extra && b < c->r.batch_size; b++) {
            memcpy(c->extra + (plane + per) * (size_t)b, one_mask, plane * sizeof(float));
            memcpy(c->extra + (plane + per) * (size_t)b + plane, masked, per * sizeof(float));
        }
        if (!c->extra) e = oom(c, "mask_image");
    }
    if (!e && !c->mask_latents) e = oom(c, "mask_image");
    free(one_mask);
    if (masked) c->post->free(c->post->self, masked);
    return e;
}

static sdrt_error *check_unet_inputs(run_ctx *c, int unet_in) {
    if (!c->r.mask_image && unet_in != c->channels)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "mask_image: model_id's unet takes %d input channels (an inpainting model): "
                                 "give mask_image",
                                 unet_in);
    if (c->r.mask_image && unet_in != c->channels && unet_in != 2 * c->channels + 1)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "model_id: unet with %d input channels: inpainting needs %d or %d", unet_in,
                                 c->channels, 2 * c->channels + 1);
    if (c->r.mask_image && c->r.denoising_start >= 0)
        return c->api->error_new(SDRT_UNSUPPORTED, NULL, "denoising_start: not supported with mask_image");
    return NULL;
}

sdrt_error *run_init_latents(run_ctx *c) {
    int unet_in = unet_get_config(c->u)->in_channels;
    sdrt_error *e = check_unet_inputs(c, unet_in);
    if (!e) e = plan_steps(c);
    if (e) return e;
    c->n_latents = (size_t)c->r.batch_size * c->channels * c->lh * c->lw;
    double strength = c->r.strength >= 0 ? c->r.strength : default_strength(c);
    int strength_max = c->r.mask_image && strength == 1.0;
    /* Inpainting at strength 1 with a 9-channel UNet starts from pure noise
     * and never encodes the image itself (no draw either). */
    if (!strength_max || unet_in == c->channels) e = image_latents(c);
    if (e) return e;
    c->latents = malloc(c->n_latents * sizeof(float));
    if (!c->latents) return oom(c, "latents");
    if (c->r.denoising_start >= 0) {
        /* Latents handed over are already noisy: diffusers adds none. */
        memcpy(c->latents, c->image_latents, c->n_latents * sizeof(float));
    } else {
        if (!(c->noise = malloc(c->n_latents * sizeof(float)))) return oom(c, "latents");
        sdrt_rng_randn(&c->rng, c->noise, c->n_latents);
        if (strength_max) {
            float sigma = c->sched->init_noise_sigma(c->state);
            for (size_t k = 0; k < c->n_latents; k++) c->latents[k] = c->noise[k] * sigma;
        } else {
            sdrt_status st = c->sched->add_noise(c->state, c->image_latents, c->noise, c->begin, c->latents,
                                                 c->n_latents);
            if (st != SDRT_OK) return c->api->error_new(st, NULL, "scheduler: add_noise failed");
        }
    }
    return c->r.mask_image ? mask_latents(c, unet_in) : NULL;
}

void run_image_free(run_ctx *c) {
    if (c->vae_m) c->model->close(c->model->self, c->vae_m);
    free(c->init_u8);
    free(c->handover);
    free(c->mask_u8);
    free(c->image_latents);
    free(c->noise);
    free(c->mask_latents);
    free(c->extra);
    free(c->orig_u8);
    free(c->orig_mask);
}
