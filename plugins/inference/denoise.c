/* plugins/inference/denoise.c - see denoise.h.
 *
 * The latents live on the host (the scheduler's arithmetic is element-wise
 * on host arrays); each step uploads the scaled input, runs the UNet and
 * reads the prediction back. Those copies are a few hundred KB against
 * GFLOPs of UNet work. The conditioning tensors are uploaded once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "denoise.h"

typedef struct loop_bufs {
    sdrt_tensor *context, *pooled; /* device, uploaded once */
    float *model_in;              /* [rows, c, h, w] */
    float *pred;                  /* [rows, c, h, w] */
    float *guided;                /* [batch, c, h, w] (CFG only) */
    float *timesteps;             /* [rows] */
} loop_bufs;

void infer_guidance(const float *pred, float g, float *out, size_t n) {
    const float *uncond = pred, *text = pred + n;
    for (size_t k = 0; k < n; k++) out[k] = uncond[k] + g * (text[k] - uncond[k]);
}

static int rows_of(const infer_cond *c) {
    return c->cfg ? 2 * c->batch : c->batch;
}

static sdrt_status bufs_init(const infer_loop *L, loop_bufs *b, size_t n, char *err, size_t errlen) {
    const infer_cond *c = L->cond;
    int rows = rows_of(c);
    int64_t ctx_shape[3] = {rows, c->seq_len, c->dim};
    int64_t pooled_shape[2] = {rows, c->pooled_dim};
    size_t per_row = n / (size_t)c->batch;
    memset(b, 0, sizeof *b);
    b->model_in = malloc((size_t)rows * per_row * sizeof(float));
    b->pred = malloc((size_t)rows * per_row * sizeof(float));
    b->guided = c->cfg ? malloc(n * sizeof(float)) : NULL;
    b->timesteps = malloc((size_t)rows * sizeof(float));
    b->context = sdrt_nn_from_host(L->nn, SDRT_DTYPE_F32, 3, ctx_shape, c->context);
    if (c->pooled_dim > 0) b->pooled = sdrt_nn_from_host(L->nn, SDRT_DTYPE_F32, 2, pooled_shape, c->pooled);
    if (b->model_in && b->pred && (b->guided || !c->cfg) && b->timesteps && b->context &&
        (b->pooled || c->pooled_dim == 0))
        return SDRT_OK;
    snprintf(err, errlen, "denoise: out of memory for %d latent rows", rows);
    return SDRT_RESOURCE_EXHAUSTED;
}

static void bufs_free(const infer_loop *L, loop_bufs *b) {
    sdrt_nn_drop(L->nn, b->context);
    sdrt_nn_drop(L->nn, b->pooled);
    free(b->model_in);
    free(b->pred);
    free(b->guided);
    free(b->timesteps);
}

/* One UNet evaluation on b->model_in at timestep t into b->pred. */
static sdrt_status predict(const infer_loop *L, loop_bufs *b, float t, char *err, size_t errlen) {
    const infer_cond *c = L->cond;
    int rows = rows_of(c);
    int64_t shape[4] = {rows, L->channels, L->h, L->w};
    for (int r = 0; r < rows; r++) b->timesteps[r] = t;
    sdrt_tensor *sample = sdrt_nn_from_host(L->nn, SDRT_DTYPE_F32, 4, shape, b->model_in);
    if (!sample) {
        snprintf(err, errlen, "denoise: cannot upload the latents");
        const char *msg = NULL;
        sdrt_status st = sdrt_nn_status(L->nn, &msg);
        return st == SDRT_OK ? SDRT_RESOURCE_EXHAUSTED : st;
    }
    unet_inputs in = {.sample = sample, .timesteps = b->timesteps, .context = b->context,
                      .text_embeds = b->pooled, .time_ids = c->time_ids};
    sdrt_tensor *out = NULL;
    sdrt_status st = unet_forward(L->u, L->nn, &in, &out, err, errlen);
    sdrt_nn_drop(L->nn, sample);
    if (st != SDRT_OK) return st;
    st = sdrt_nn_to_host_f32(L->nn, out, b->pred);
    sdrt_nn_drop(L->nn, out);
    if (st != SDRT_OK) snprintf(err, errlen, "denoise: reading the UNet output failed");
    return st;
}

static sdrt_status sched_failed(sdrt_status st, const char *what, uint32_t i, char *err, size_t errlen) {
    snprintf(err, errlen, "scheduler: %s failed at step %u (status %d)", what, i, (int)st);
    return st;
}

static sdrt_status one_step(const infer_loop *L, loop_bufs *b, uint32_t i, float *latents, size_t n, char *err,
                            size_t errlen) {
    const sdrt_scheduler_iface *S = L->sched;
    sdrt_status st = S->scale_model_input(L->state, i, latents, b->model_in, n);
    if (st != SDRT_OK) return sched_failed(st, "scale_model_input", i, err, errlen);
    if (L->cond->cfg) memcpy(b->model_in + n, b->model_in, n * sizeof(float));
    st = predict(L, b, S->timesteps(L->state)[i], err, errlen);
    if (st != SDRT_OK) return st;
    const float *eps = b->pred;
    if (L->cond->cfg) {
        infer_guidance(b->pred, L->guidance_scale, b->guided, n);
        eps = b->guided;
    }
    st = S->step(L->state, i, eps, latents, n, L->rng);
    return st == SDRT_OK ? SDRT_OK : sched_failed(st, "step", i, err, errlen);
}

sdrt_status infer_denoise(const infer_loop *L, float *latents, char *err, size_t errlen) {
    size_t n = (size_t)L->cond->batch * (size_t)L->channels * (size_t)L->h * (size_t)L->w;
    loop_bufs b;
    sdrt_status st = bufs_init(L, &b, n, err, errlen);
    uint32_t total = L->sched->num_timesteps(L->state);
    /* txt2img runs every timestep, from index 0. */
    for (uint32_t i = 0; st == SDRT_OK && i < total; i++) {
        if (L->cancelled && L->cancelled(L->cb)) {
            snprintf(err, errlen, "inference: cancelled at step %u of %u", i, total);
            st = SDRT_CANCELLED;
            break;
        }
        st = one_step(L, &b, i, latents, n, err, errlen);
        if (st == SDRT_OK && L->on_step) L->on_step(L->cb, (int)i + 1, (int)total);
    }
    bufs_free(L, &b);
    return st;
}
