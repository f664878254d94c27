/* plugins/inference/controlnet_run.c - see controlnet_run.h. */
#include "controlnet_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet_internal.h"

/* diffusers' controlnet_keep: 1 - float(i / n < start or (i + 1) / n > end),
 * in Python floats. */
static int active(const infer_cn *c, uint32_t i, uint32_t n) {
    double a = (double)i / n, b = (double)(i + 1) / n;
    return !(a < c->start || b > c->end);
}

static sdrt_tensor *fail_oom(sdrt_nn *nn) {
    (void)nn;
    return NULL;
}

/* The control image repeated over k rows, [k, 3, H, W]. */
static sdrt_tensor *cond_rows(const infer_cn_set *s, const infer_cn *c, sdrt_nn *nn, int k) {
    size_t per = (size_t)3 * (size_t)s->H * (size_t)s->W;
    float *buf = malloc(per * (size_t)k * sizeof *buf);
    if (!buf) return fail_oom(nn);
    for (int r = 0; r < k; r++) memcpy(buf + per * (size_t)r, c->image, per * sizeof *buf);
    int64_t shape[4] = {k, 3, s->H, s->W};
    sdrt_tensor *t = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, shape, buf);
    free(buf);
    return t;
}

/* The first `channels` of every row (inpainting UNets take more). */
static sdrt_tensor *latent_rows(sdrt_nn *nn, const unet_inputs *in, const float *rows_host, size_t in_row,
                                int channels, int k) {
    const sdrt_tensor *s = in->sample;
    size_t lat = (size_t)channels * (size_t)(s->shape[2] * s->shape[3]);
    float *buf = malloc(lat * (size_t)k * sizeof *buf);
    if (!buf) return fail_oom(nn);
    for (int r = 0; r < k; r++) memcpy(buf + lat * (size_t)r, rows_host + in_row * (size_t)r, lat * sizeof *buf);
    int64_t shape[4] = {k, channels, s->shape[2], s->shape[3]};
    sdrt_tensor *t = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, 4, shape, buf);
    free(buf);
    return t;
}

/* acc += x (both owned by nn); returns the sum, drops both. */
static sdrt_tensor *accumulate(sdrt_nn *nn, sdrt_tensor *acc, sdrt_tensor *x) {
    if (!acc) return x;
    sdrt_tensor *s = x ? sdrt_nn_add(nn, acc, x) : NULL;
    sdrt_nn_drop(nn, acc);
    sdrt_nn_drop(nn, x);
    return s;
}

/* Zeroes the first n rows of t (guess mode: the unconditional half) on the
 * device: t * mask with mask [rows,1,...] = 0 for the first n rows, 1 after
 * (exact: x*1 = x, x*0 = 0), so the residuals never leave the device and
 * the call stays one recorded graph. */
static sdrt_tensor *zero_rows(sdrt_nn *nn, sdrt_tensor *t, int n) {
    if (!t || n <= 0) return t;
    int64_t rows = t->shape[0], shape[SDRT_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) shape[d] = d == 0 ? rows : 1;
    float *m = malloc((size_t)rows * sizeof *m);
    sdrt_tensor *z = NULL;
    if (m) {
        for (int64_t r = 0; r < rows; r++) m[r] = r < n ? 0.0f : 1.0f;
        sdrt_tensor *mask = sdrt_nn_from_host(nn, SDRT_DTYPE_F32, t->ndim, shape, m);
        z = mask ? sdrt_nn_mul(nn, t, mask) : NULL;
        sdrt_nn_drop(nn, mask);
    }
    free(m);
    sdrt_nn_drop(nn, t);
    return z;
}

sdrt_status infer_cn_residuals(const infer_cn_set *s, sdrt_nn *nn, const unet_inputs *in, const float *rows_host,
                               size_t in_row, int channels, int k, int n_uncond, uint32_t step, uint32_t nsteps,
                               sdrt_tensor **down, int *ndown, sdrt_tensor **mid, char *err, size_t errlen) {
    *ndown = 0;
    *mid = NULL;
    int any = 0;
    for (int c = 0; c < s->n; c++) any |= active(&s->v[c], step, nsteps);
    if (!any) return SDRT_OK;
    int own_sample = in->sample->shape[1] != channels;
    sdrt_tensor *lat = own_sample ? latent_rows(nn, in, rows_host, in_row, channels, k) : NULL;
    if (own_sample && !lat) {
        snprintf(err, errlen, "controlnet: cannot upload the latents");
        return SDRT_RESOURCE_EXHAUSTED;
    }
    unet_inputs cin = *in;
    if (own_sample) cin.sample = lat;
    int n = 0;
    sdrt_status st = SDRT_OK;
    for (int c = 0; st == SDRT_OK && c < s->n; c++) {
        const infer_cn *cn = &s->v[c];
        if (!active(cn, step, nsteps)) continue;
        sdrt_tensor *img = cond_rows(s, cn, nn, k), *d[UNET_MAX_SKIPS], *m = NULL;
        st = img ? controlnet_forward(cn->net, nn, &cin, img, cn->scale, s->guess_mode, d, &m, err, errlen)
                 : SDRT_RESOURCE_EXHAUSTED;
        sdrt_nn_drop(nn, img);
        if (st != SDRT_OK) break;
        n = controlnet_n_down(cn->net);
        for (int i = 0; i < n; i++) down[i] = accumulate(nn, *ndown ? down[i] : NULL, d[i]);
        *mid = accumulate(nn, *mid, m);
        *ndown = n;
    }
    sdrt_nn_drop(nn, lat);
    if (st == SDRT_OK && s->guess_mode && n_uncond > 0) {
        for (int i = 0; i < *ndown; i++) down[i] = zero_rows(nn, down[i], n_uncond);
        *mid = zero_rows(nn, *mid, n_uncond);
    }
    int ok = st == SDRT_OK && (*ndown == 0 || *mid);
    for (int i = 0; ok && i < *ndown; i++) ok = down[i] != NULL;
    if (ok) return SDRT_OK;
    for (int i = 0; i < *ndown; i++) sdrt_nn_drop(nn, down[i]);
    sdrt_nn_drop(nn, *mid);
    *mid = NULL;
    *ndown = 0;
    if (st == SDRT_OK) {
        const char *msg = NULL;
        st = sdrt_nn_status(nn, &msg);
        if (st == SDRT_OK) st = SDRT_RESOURCE_EXHAUSTED;
        snprintf(err, errlen, "controlnet: %s", msg ? msg : "out of memory");
    }
    return st;
}
