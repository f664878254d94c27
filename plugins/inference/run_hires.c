/* plugins/inference/run_hires.c - the hires fix's second pass (hires.h), as
 * A1111's sample_hr_pass:
 *
 *   first pass latents [B,C,h,w]
 *   -> latent upscalers: torch interpolate to the target latent size;
 *      image upscalers: VAE decode, 8-bit, Pillow resize, VAE encode
 *   -> crop when hr_resize_x and hr_resize_y both fix the box
 *   -> img2img as A1111's setup_img2img_steps with explicit steps: a
 *      schedule of int(steps / min(strength, 0.999)) steps of which the
 *      last `steps` run, noise added at the first of them; the generator is
 *      reseeded with the request's seed (A1111: same seeds, new shape).
 *
 * With output.save_latents the second pass's input is written next to each
 * image as <png stem>.hires_input.npy: the upscaled latents [1,C,h,w]
 * before noise (latent upscalers) or the upscaled image [H,W,3] in 0..1
 * before encoding (image upscalers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "image_prep.h"
#include "run_internal.h"
#include "sdrt/npy.h"
#include "sdrt/resample.h"

static sdrt_error *oom(run_ctx *c) {
    return c->api->error_new(SDRT_RESOURCE_EXHAUSTED, NULL, "hires: out of memory");
}

/* A1111's resize_image with an upscaler: model passes while the image is
 * smaller than the target (at most 3), each result clamped to 8 bits as
 * its PIL round trip does, then Pillow Lanczos to tw x th. */
static sdrt_error *model_upscale(run_ctx *c, const float *rgb, int h, int w, int tw, int th, uint8_t *dst) {
    /* A1111 upscales the first pass's 8-bit PIL image. */
    float *cur = malloc((size_t)h * w * 3 * sizeof(float));
    if (!cur) return oom(c);
    for (size_t i = 0; i < (size_t)h * w * 3; i++) {
        uint8_t v;
        iprep_to_u8(rgb + i, 1, &v);
        cur[i] = v / 255.f;
    }
    sdrt_error *e = NULL;
    for (int pass = 0; pass < 3 && !e && (w < tw || h < th); pass++) {
        float *out = NULL;
        int oh = 0, ow = 0;
        e = c->post->upscale(c->post->self, c->r.hires.upscaler_name, cur, h, w, c->job, &out, &oh, &ow);
        if (e) break;
        free(cur);
        cur = malloc((size_t)oh * ow * 3 * sizeof(float));
        if (!cur) {
            c->post->free(c->post->self, out);
            return oom(c);
        }
        /* The 8-bit image A1111 hands from one pass to the next. */
        for (size_t i = 0; i < (size_t)oh * ow * 3; i++) {
            uint8_t v;
            iprep_to_u8(out + i, 1, &v);
            cur[i] = v / 255.f;
        }
        c->post->free(c->post->self, out);
        h = oh;
        w = ow;
    }
    uint8_t *u8 = e ? NULL : malloc((size_t)h * w * 3);
    if (!e && !u8) e = oom(c);
    if (!e) {
        iprep_to_u8(cur, (size_t)h * w * 3, u8);
        if (w == tw && h == th) memcpy(dst, u8, (size_t)h * w * 3);
        else if (sdrt_resample_u8(u8, w, h, 3, NULL, SDRT_RESAMPLE_LANCZOS, dst, tw, th)) e = oom(c);
    }
    free(u8);
    free(cur);
    return e;
}

/* Decoded first-pass images -> resized 8-bit images -> VAE latents. */
static sdrt_error *image_upscale(run_ctx *c, int tw, int th, float **out) {
    const infer_hires *h = &c->r.hires;
    int B = c->r.batch_size, dh = 0, dw = 0;
    float *rgb = NULL;
    sdrt_model *vae = c->vae_m ? c->vae_m : c->m;
    sdrt_vae_options o;
    run_vae_options(c, &o);
    run_offload_unet(c); /* model offload: VAE and upscaler run alone; the second pass uploads the UNet again */
    sdrt_error *e = c->post->decode(c->post->self, vae, c->latents, B, c->channels, c->lh, c->lw, &o, c->job, &rgb,
                                    &dh, &dw);
    if (e) return e;
    size_t in_px = (size_t)dh * dw * 3, out_px = (size_t)th * tw * 3;
    uint8_t *u8 = malloc(in_px);
    c->hires_image = malloc(out_px * (size_t)B);
    float *big = malloc(out_px * (size_t)B * sizeof(float));
    if (!u8 || !c->hires_image || !big) e = oom(c);
    if (!e && h->upscaler == INFER_HR_MODEL && !SDRT_HAS_MEMBER(c->post, sdrt_postprocess_iface, upscale))
        e = c->api->error_new(SDRT_UNSUPPORTED, NULL, "hires.upscaler: the postprocess plugin has no upscaler models");
    for (int b = 0; !e && b < B; b++) {
        if (h->upscaler == INFER_HR_MODEL) {
            e = model_upscale(c, rgb + in_px * (size_t)b, dh, dw, tw, th, c->hires_image + out_px * (size_t)b);
            continue;
        }
        iprep_to_u8(rgb + in_px * (size_t)b, in_px, u8);
        if (sdrt_resample_u8(u8, dw, dh, 3, NULL,
                             h->upscaler == INFER_HR_LANCZOS ? SDRT_RESAMPLE_LANCZOS : SDRT_RESAMPLE_NEAREST,
                             c->hires_image + out_px * (size_t)b, tw, th))
            e = oom(c);
    }
    c->post->free(c->post->self, rgb);
    free(u8);
    if (!e) {
        for (size_t i = 0; i < out_px * (size_t)B; i++) big[i] = c->hires_image[i] / 255.f;
        size_t nz = (size_t)B * c->channels * (th / 8) * (tw / 8);
        float *eps = malloc(nz * sizeof(float));
        int ch = 0;
        if (!eps) e = oom(c);
        if (!e) {
            /* latent_dist.sample's noise, drawn before the pass's noise (diffusers' img2img order). */
            sdrt_rng_randn(&c->rng, eps, nz);
            float *lat = NULL;
            e = c->post->encode(c->post->self, vae, big, B, th, tw, eps, &o, c->job, &lat, &ch);
            if (!e && ch != c->channels)
                e = c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "hires: the VAE gives %d channels, the unet takes %d", ch,
                                      c->channels);
            if (!e) {
                *out = malloc(nz * sizeof(float));
                if (*out) memcpy(*out, lat, nz * sizeof(float));
                else e = oom(c);
            }
            if (lat) c->post->free(c->post->self, lat);
        }
        free(eps);
    }
    free(big);
    c->hires_w = tw;
    c->hires_h = th;
    return e;
}

/* Crops [B,C,h,w] latents by (cx, cy) latent pixels as A1111's truncate_x/y. */
static float *crop(const float *in, int n, int h, int w, int cx, int cy) {
    int oh = h - cy, ow = w - cx;
    float *out = malloc((size_t)n * oh * ow * sizeof(float));
    for (int p = 0; out && p < n; p++)
        for (int y = 0; y < oh; y++)
            memcpy(out + ((size_t)p * oh + y) * ow, in + ((size_t)p * h + y + cy / 2) * w + cx / 2, (size_t)ow * sizeof(float));
    return out;
}

/* A1111's infotext entries of the hires fix (processing.py's
 * extra_generation_params, in its order), added to a copy of the request
 * as "infotext_extra" for the PNG parameters. Size stays the first pass's. */
static sdrt_error *infotext(run_ctx *c, int steps) {
    const infer_hires *h = &c->r.hires;
    char text[256];
    int k = snprintf(text, sizeof text, "Denoising strength: %g", h->denoising_strength);
    if (h->resize_x || h->resize_y)
        k += snprintf(text + k, sizeof text - (size_t)k, ", Hires resize: %dx%d", h->resize_x, h->resize_y);
    else
        k += snprintf(text + k, sizeof text - (size_t)k, ", Hires upscale: %g", h->scale);
    if (h->steps) k += snprintf(text + k, sizeof text - (size_t)k, ", Hires steps: %d", steps);
    snprintf(text + k, sizeof text - (size_t)k, ", Hires upscaler: %s", h->upscaler_name);
    cJSON *d = cJSON_Parse(c->data_json);
    if (!d) return oom(c);
    cJSON_DeleteItemFromObjectCaseSensitive(d, "infotext_extra");
    cJSON_AddStringToObject(d, "infotext_extra", text);
    char *p = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    c->params_json = p ? strdup(p) : NULL;
    cJSON_free(p);
    return c->params_json ? NULL : oom(c);
}

sdrt_error *run_hires(run_ctx *c) {
    const infer_hires *h = &c->r.hires;
    if (!h->enabled) return NULL;
    if (c->r.init_image)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "hires: the hires fix is for txt2img (drop init_image)");
    if (c->r.refiner_id)
        return c->api->error_new(SDRT_UNSUPPORTED, NULL, "hires: not supported together with model_id.refiner");
    int tw, th, cx, cy;
    char err[256];
    if (infer_hires_target(h, c->r.width, c->r.height, INFER_MAX_SIZE, &tw, &th, &cx, &cy, err, sizeof err))
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL, "%s", err);
    sdrt_rng_seed(&c->rng, c->seed);
    int B = c->r.batch_size, C = c->channels, nlh = th / 8, nlw = tw / 8;
    float *up = NULL;
    sdrt_error *e = NULL;
    if (h->upscaler == INFER_HR_LANCZOS || h->upscaler == INFER_HR_NEAREST || h->upscaler == INFER_HR_MODEL) {
        e = image_upscale(c, tw, th, &up);
    } else {
        up = malloc((size_t)B * C * nlh * nlw * sizeof(float));
        if (!up) return oom(c);
        infer_latent_resize(c->latents, B, C, c->lh, c->lw, up, nlh, nlw, h->upscaler);
    }
    if (e) {
        free(up);
        return e;
    }
    if (cx || cy) {
        float *cut = crop(up, B * C, nlh, nlw, cx / 8, cy / 8);
        free(up);
        if (!cut) return oom(c);
        up = cut;
        nlh -= cy / 8;
        nlw -= cx / 8;
    }
    c->hires_input = up;
    /* The second pass: img2img at the target size. */
    free(c->latents);
    c->latents = NULL;
    c->first_w = c->r.width;
    c->first_h = c->r.height;
    c->r.width = nlw * 8;
    c->r.height = nlh * 8;
    c->lh = nlh;
    c->lw = nlw;
    c->n_latents = (size_t)B * C * nlh * nlw;
    /* SDXL: the second pass is conditioned on the target size (A1111's
     * calculate_hr_conds: original_size = target_size = the hires size,
     * crop (0, 0)); the prompt embeddings stay. */
    if (c->cond_rows.time_ids && c->ucfg.addition_time_embed_dim > 0) {
        int rows = c->cond_rows.cfg ? 2 * B : B;
        int k = (int)((c->ucfg.add_embed_in - c->cond_rows.pooled_dim) / c->ucfg.addition_time_embed_dim);
        float *ids = (float *)c->cond_rows.time_ids; /* rows of c->cond_buf, owned by the run */
        for (int r = 0; k == 6 && r < rows; r++) {
            float *row = ids + (size_t)r * 6;
            row[0] = row[4] = (float)c->r.height;
            row[1] = row[5] = (float)c->r.width;
        }
    }
    int steps = h->steps ? h->steps : c->r.steps;
    if ((e = infotext(c, steps))) return e;
    double s = h->denoising_strength < 0.999 ? h->denoising_strength : 0.999;
    int total = (int)(steps / s);
    if (total > INFER_MAX_STEPS)
        return c->api->error_new(SDRT_INVALID_ARGUMENT, NULL,
                                 "hires.steps: %d at denoising_strength %g needs a schedule of %d steps (at most %d)", steps,
                                 h->denoising_strength, total, INFER_MAX_STEPS);
    if (c->state) c->sched->destroy(c->state);
    c->state = NULL;
    c->r.steps = total;
    if ((e = run_scheduler(c))) return e;
    c->begin = (uint32_t)(total - steps);
    c->end = 0;
    sdrt_status st = c->sched->set_begin_index(c->state, c->begin);
    if (st != SDRT_OK) return c->api->error_new(st, NULL, "scheduler: set_begin_index(%u) failed", c->begin);
    float *noise = malloc(c->n_latents * sizeof(float));
    c->latents = malloc(c->n_latents * sizeof(float));
    if (!noise || !c->latents) {
        free(noise);
        return oom(c);
    }
    sdrt_rng_randn(&c->rng, noise, c->n_latents);
    st = c->sched->add_noise(c->state, c->hires_input, noise, c->begin, c->latents, c->n_latents);
    free(noise);
    if (st != SDRT_OK) return c->api->error_new(st, NULL, "scheduler: add_noise failed");
    return run_denoise(c);
}

sdrt_error *run_hires_save(run_ctx *c, int i, const char *png_path) {
    if (!c->hires_input || !c->r.save_latents) return NULL;
    size_t len = strlen(png_path), stem = len > 4 && strcmp(png_path + len - 4, ".png") == 0 ? len - 4 : len;
    char *path = malloc(stem + sizeof ".hires_input.npy");
    if (!path) return oom(c);
    memcpy(path, png_path, stem);
    memcpy(path + stem, ".hires_input.npy", sizeof ".hires_input.npy");
    char err[512];
    int rc;
    if (c->hires_image) {
        size_t px = (size_t)c->hires_h * c->hires_w * 3;
        float *f = malloc(px * sizeof(float));
        for (size_t k = 0; f && k < px; k++) f[k] = c->hires_image[px * (size_t)i + k] / 255.f;
        int64_t shape[3] = {c->hires_h, c->hires_w, 3};
        rc = f ? sdrt_npy_write_f32(path, f, shape, 3, err, sizeof err) : -1;
        free(f);
    } else {
        size_t per = (size_t)c->channels * c->lh * c->lw;
        int64_t shape[4] = {1, c->channels, c->lh, c->lw};
        rc = sdrt_npy_write_f32(path, c->hires_input + per * (size_t)i, shape, 4, err, sizeof err);
    }
    free(path);
    return rc ? c->api->error_new(SDRT_IO_ERROR, NULL, "output.save_latents: hires input: %s", err) : NULL;
}
