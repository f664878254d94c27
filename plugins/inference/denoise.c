/* plugins/inference/denoise.c - see denoise.h.
 *
 * The latents live on the host (the scheduler's arithmetic is element-wise
 * on host arrays); each step uploads the scaled input, runs the UNet as one
 * recorded graph and reads the prediction back. Those copies are a few
 * hundred KB against GFLOPs of UNet work. The conditioning tensors arrive
 * on the device (infer_cond's *_dev) or are uploaded once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "denoise.h"

#include "controlnet_run.h"
#include "unet_internal.h"

typedef struct loop_bufs {
    const sdrt_tensor *context, *pooled; /* device: the caller's or uploaded once */
    sdrt_tensor *own_context, *own_pooled; /* the uploads (dropped at the end), or NULL */
    float *model_in;              /* [rows, c, h, w] */
    float *pred;                  /* [rows, c, h, w] */
    float *guided;                /* [batch, c, h, w] (CFG only) */
    float *timesteps;             /* [rows] */
    float *scaled;                /* [batch, c, h, w] (9-channel UNets only) */
    float *blend;                 /* [batch, c, h, w] (4-channel inpainting only) */
    uint32_t step, nsteps;      /* index in the run and run length (ControlNet windows) */
} loop_bufs;

void infer_guidance(const float *pred, float g, float *out, size_t n) {
    const float *uncond = pred, *text = pred + n;
    for (size_t k = 0; k < n; k++) out[k] = uncond[k] + g * (text[k] - uncond[k]);
}

static int rows_of(const infer_cond *c) {
    return c->cfg ? 2 * c->batch : c->batch;
}

static sdrt_status bufs_oom(int rows, char *err, size_t errlen) {
    snprintf(err, errlen, "denoise: out of memory for %d latent rows", rows);
    return SDRT_RESOURCE_EXHAUSTED;
}

static sdrt_status bufs_init(const infer_loop *L, loop_bufs *b, size_t n, char *err, size_t errlen) {
    const infer_cond *c = L->cond;
    int rows = rows_of(c);
    int64_t ctx_shape[3] = {rows, c->seq_len, c->dim};
    int64_t pooled_shape[2] = {rows, c->pooled_dim};
    size_t per_row = n / (size_t)c->batch / (size_t)L->channels * (size_t)(L->channels + L->extra_channels);
    memset(b, 0, sizeof *b);
    if (L->extra_channels > 0 && !(b->scaled = malloc(n * sizeof(float)))) return bufs_oom(rows, err, errlen);
    if (L->blend_mask && !(b->blend = malloc(n * sizeof(float)))) return bufs_oom(rows, err, errlen);
    b->model_in = malloc((size_t)rows * per_row * sizeof(float));
    b->pred = malloc((size_t)rows * per_row * sizeof(float));
    b->guided = c->cfg ? malloc(n * sizeof(float)) : NULL;
    b->timesteps = malloc((size_t)rows * sizeof(float));
    if (c->context_dev) b->context = c->context_dev;
    else b->context = b->own_context = sdrt_nn_from_host(L->nn, SDRT_DTYPE_F32, 3, ctx_shape, c->context);
    if (c->pooled_dim > 0 && c->pooled_dev) b->pooled = c->pooled_dev;
    else if (c->pooled_dim > 0)
        b->pooled = b->own_pooled = sdrt_nn_from_host(L->nn, SDRT_DTYPE_F32, 2, pooled_shape, c->pooled);
    if (b->model_in && b->pred && (b->guided || !c->cfg) && b->timesteps && b->context &&
        (b->pooled || c->pooled_dim == 0))
        return SDRT_OK;
    return bufs_oom(rows, err, errlen);
}

static void bufs_free(const infer_loop *L, loop_bufs *b) {
    sdrt_nn_drop(L->nn, b->own_context);
    sdrt_nn_drop(L->nn, b->own_pooled);
    free(b->model_in);
    free(b->pred);
    free(b->guided);
    free(b->timesteps);
    free(b->scaled);
    free(b->blend);
}

/* Time ids per row: SDXL 6 (refiner 5), 0 without text_time. */
static int time_ids_per_row(const infer_loop *L) {
    const unet_config *u = unet_get_config(L->u);
    if (!L->cond->time_ids || !u->text_time || u->addition_time_embed_dim <= 0) return 0;
    return (int)((u->add_embed_in - L->cond->pooled_dim) / u->addition_time_embed_dim);
}

/* One UNet call on rows [r0, r0 + k) of b->model_in into the same rows of
 * b->pred. The context and pooled rows are views of the uploaded ones.
 * The call is one recorded graph: its intermediates are planned into the
 * context's arena once (every step has the same shapes) and the whole
 * forward pass is submitted at once; from the second step on the graph is
 * identical (the sample is a graph input at a fixed arena place), so the
 * backend may replay it. */
static sdrt_status predict_rows(const infer_loop *L, loop_bufs *b, int r0, int k, char *err, size_t errlen) {
    const infer_cond *c = L->cond;
    size_t in_row = (size_t)(L->channels + L->extra_channels) * (size_t)L->h * (size_t)L->w;
    size_t out_row = (size_t)L->channels * (size_t)L->h * (size_t)L->w;
    int64_t shape[4] = {k, L->channels + L->extra_channels, L->h, L->w};
    sdrt_nn_graph_begin(L->nn);
    sdrt_tensor *sample = sdrt_nn_from_host(L->nn, SDRT_DTYPE_F32, 4, shape, b->model_in + (size_t)r0 * in_row);
    sdrt_tensor ctx = sdrt_nn_view_slice(b->context, 0, r0, k), pooled;
    if (b->pooled) pooled = sdrt_nn_view_slice(b->pooled, 0, r0, k);
    int n_ids = time_ids_per_row(L);
    unet_inputs in = {.sample = sample, .timesteps = b->timesteps + r0, .context = &ctx,
                      .text_embeds = b->pooled ? &pooled : NULL,
                      .time_ids = c->time_ids ? c->time_ids + (size_t)r0 * (size_t)n_ids : NULL};
    sdrt_tensor *out = NULL, *cn_down[UNET_MAX_SKIPS], *cn_mid = NULL;
    int cn_n = 0, n_uncond = c->cfg ? (c->batch - r0 < 0 ? 0 : c->batch - r0 < k ? c->batch - r0 : k) : 0;
    sdrt_status st = L->controlnets ? infer_cn_residuals(L->controlnets, L->nn, &in, b->model_in + (size_t)r0 * in_row,
                                                         in_row, L->channels, k, n_uncond, b->step, b->nsteps,
                                                         cn_down, &cn_n, &cn_mid, err, errlen)
                                    : SDRT_OK;
    in.down_residuals = cn_n ? cn_down : NULL;
    in.n_down_residuals = cn_n;
    in.mid_residual = cn_n ? cn_mid : NULL;
    if (st == SDRT_OK && sample) st = unet_forward(L->u, L->nn, &in, &out, err, errlen);
    for (int i = 0; i < cn_n; i++) sdrt_nn_drop(L->nn, cn_down[i]);
    sdrt_nn_drop(L->nn, cn_mid);
    sdrt_nn_drop(L->nn, sample);
    sdrt_status gst = sdrt_nn_graph_end(L->nn);
    if (st == SDRT_OK && gst != SDRT_OK) {
        const char *msg = NULL;
        sdrt_nn_status(L->nn, &msg);
        snprintf(err, errlen, "unet: %s", gst == SDRT_CANCELLED ? "cancelled" : msg && *msg ? msg : "compute failed");
        st = gst;
    }
    if (st == SDRT_OK && !sample) {
        snprintf(err, errlen, "denoise: cannot upload the latents");
        st = SDRT_RESOURCE_EXHAUSTED;
    }
    if (st != SDRT_OK) {
        sdrt_nn_drop(L->nn, out);
        return st;
    }
    st = sdrt_nn_to_host_f32(L->nn, out, b->pred + (size_t)r0 * out_row);
    sdrt_nn_drop(L->nn, out);
    if (st != SDRT_OK) snprintf(err, errlen, "denoise: reading the UNet output failed");
    return st;
}

/* The UNet on every row of b->model_in at timestep t into b->pred, in
 * calls of at most max_rows rows. */
static sdrt_status predict(const infer_loop *L, loop_bufs *b, float t, char *err, size_t errlen) {
    int rows = rows_of(L->cond), step = L->max_rows > 0 && L->max_rows < rows ? L->max_rows : rows;
    for (int r = 0; r < rows; r++) b->timesteps[r] = t;
    sdrt_status st = SDRT_OK;
    for (int r0 = 0; st == SDRT_OK && r0 < rows; r0 += step)
        st = predict_rows(L, b, r0, rows - r0 < step ? rows - r0 : step, err, errlen);
    return st;
}

static sdrt_status sched_failed(sdrt_status st, const char *what, uint32_t i, char *err, size_t errlen) {
    snprintf(err, errlen, "scheduler: %s failed at step %u (%s)", what, i, sdrt_status_name(st));
    return st;
}

/* The UNet rows of a 9-channel UNet: per row [scaled latents, extra] of
 * its image (rows repeat the batch for CFG). */
static void compose_rows(const infer_loop *L, loop_bufs *b) {
    size_t plane = (size_t)L->h * (size_t)L->w;
    size_t lat = (size_t)L->channels * plane, ext = (size_t)L->extra_channels * plane;
    int rows = rows_of(L->cond);
    for (int r = 0; r < rows; r++) {
        int img = r % L->cond->batch;
        float *dst = b->model_in + (size_t)r * (lat + ext);
        memcpy(dst, b->scaled + (size_t)img * lat, lat * sizeof(float));
        memcpy(dst + lat, L->extra + (size_t)img * ext, ext * sizeof(float));
    }
}

static sdrt_status scale_input(const infer_loop *L, loop_bufs *b, uint32_t i, const float *latents, size_t n,
                               char *err, size_t errlen) {
    sdrt_status st = L->sched->scale_model_input(L->state, i, latents, L->extra ? b->scaled : b->model_in, n);
    if (st != SDRT_OK) return sched_failed(st, "scale_model_input", i, err, errlen);
    if (L->extra) compose_rows(L, b);
    else if (L->cond->cfg) memcpy(b->model_in + n, b->model_in, n * sizeof(float));
    return SDRT_OK;
}

/* StableDiffusion(XL)InpaintPipeline with a 4-channel UNet: keep the
 * unmasked area on the image's own noise trajectory. */
static sdrt_status blend_step(const infer_loop *L, loop_bufs *b, uint32_t i, uint32_t end, float *latents, size_t n,
                              char *err, size_t errlen) {
    const float *proper = L->blend_image;
    if (i + 1 < end) {
        sdrt_status st = L->sched->add_noise(L->state, L->blend_image, L->blend_noise, i + 1, b->blend, n);
        if (st != SDRT_OK) return sched_failed(st, "add_noise", i + 1, err, errlen);
        proper = b->blend;
    }
    size_t plane = (size_t)L->h * (size_t)L->w, per = (size_t)L->channels * plane;
    for (size_t k = 0; k < n; k++) {
        float m = L->blend_mask[(k / per) * plane + k % plane];
        latents[k] = (1.0f - m) * proper[k] + m * latents[k];
    }
    return SDRT_OK;
}

static sdrt_status one_step(const infer_loop *L, loop_bufs *b, uint32_t i, uint32_t end, float *latents, size_t n,
                            char *err, size_t errlen) {
    const sdrt_scheduler_iface *S = L->sched;
    sdrt_status st = scale_input(L, b, i, latents, n, err, errlen);
    if (st != SDRT_OK) return st;
    b->step = i - L->begin;
    b->nsteps = end - L->begin;
    st = predict(L, b, S->timesteps(L->state)[i], err, errlen);
    if (st != SDRT_OK) return st;
    const float *eps = b->pred;
    if (L->cond->cfg) {
        infer_guidance(b->pred, L->guidance_scale, b->guided, n);
        eps = b->guided;
    }
    st = S->step(L->state, i, eps, latents, n, L->rng);
    if (st != SDRT_OK) return sched_failed(st, "step", i, err, errlen);
    return L->blend_mask ? blend_step(L, b, i, end, latents, n, err, errlen) : SDRT_OK;
}

sdrt_status infer_denoise(const infer_loop *L, float *latents, char *err, size_t errlen) {
    size_t n = (size_t)L->cond->batch * (size_t)L->channels * (size_t)L->h * (size_t)L->w;
    loop_bufs b;
    sdrt_status st = bufs_init(L, &b, n, err, errlen);
    uint32_t all = L->sched->num_timesteps(L->state);
    uint32_t end = L->end && L->end < all ? L->end : all, total = end > L->begin ? end - L->begin : 0;
    for (uint32_t i = L->begin; st == SDRT_OK && i < end; i++) {
        uint32_t done = i - L->begin;
        if (L->cancelled && L->cancelled(L->cb)) {
            snprintf(err, errlen, "inference: cancelled at step %u of %u", done, total);
            st = SDRT_CANCELLED;
            break;
        }
        st = one_step(L, &b, i, end, latents, n, err, errlen);
        if (st == SDRT_OK && L->on_step) L->on_step(L->cb, (int)done + 1, (int)total);
    }
    bufs_free(L, &b);
    return st;
}
