/* vae_latent.c - the host-side maps around the VAE network: latent scaling,
 * the DiagonalGaussian posterior, and image layout/range conversions. */
#include <math.h>

#include "vae.h"

void vae_gaussian_sample(const float *moments, const float *noise, int n, int c, int h, int w,
                         float *z) {
    size_t plane = (size_t)c * h * w;
    for (int b = 0; b < n; b++) {
        const float *mean = moments + (size_t)b * 2 * plane;
        const float *logvar = mean + plane;
        float *dst = z + (size_t)b * plane;
        const float *eps = noise ? noise + (size_t)b * plane : NULL;
        for (size_t i = 0; i < plane; i++) {
            if (!eps) {
                dst[i] = mean[i];
                continue;
            }
            /* diffusers clamps logvar to [-30, 20] before exp */
            float lv = logvar[i] < -30.f ? -30.f : (logvar[i] > 20.f ? 20.f : logvar[i]);
            dst[i] = mean[i] + expf(0.5f * lv) * eps[i];
        }
    }
}

void vae_unscale_latents(const vae_config *cfg, const float *latents, size_t count, float *z) {
    for (size_t i = 0; i < count; i++) z[i] = latents[i] / cfg->scaling_factor + cfg->shift_factor;
}

void vae_scale_latents(const vae_config *cfg, float *z, size_t count) {
    for (size_t i = 0; i < count; i++) z[i] = (z[i] - cfg->shift_factor) * cfg->scaling_factor;
}

static float clamp01(float x) {
    /* NaN maps to 0 so that a broken decode never writes garbage bytes */
    if (!(x > 0.f)) return 0.f;
    return x < 1.f ? x : 1.f;
}

void vae_to_images(const float *raw, int n, int h, int w, float *rgb) {
    size_t plane = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        const float *src = raw + (size_t)b * 3 * plane;
        float *dst = rgb + (size_t)b * 3 * plane;
        for (size_t i = 0; i < plane; i++)
            for (int ch = 0; ch < 3; ch++) dst[i * 3 + ch] = clamp01(src[ch * plane + i] / 2.f + 0.5f);
    }
}

void vae_from_images(const float *rgb, int n, int h, int w, float *x) {
    size_t plane = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        const float *src = rgb + (size_t)b * 3 * plane;
        float *dst = x + (size_t)b * 3 * plane;
        for (size_t i = 0; i < plane; i++)
            for (int ch = 0; ch < 3; ch++) dst[ch * plane + i] = src[i * 3 + ch] * 2.f - 1.f;
    }
}
