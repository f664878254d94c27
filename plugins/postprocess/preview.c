/* preview.c - latent -> RGB approximation for progress previews: a fixed
 * 4x3 linear map per latent space (the factors ComfyUI uses), no network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* rgb = latent @ factors + bias, then (rgb + 1) / 2 */
static const float sd1_factors[4][3] = {
    {0.3512f, 0.2297f, 0.3227f},
    {0.3250f, 0.4974f, 0.2350f},
    {-0.2829f, 0.1762f, 0.2721f},
    {-0.2120f, -0.2616f, -0.7177f},
};
static const float sd1_bias[3] = {0.f, 0.f, 0.f};

static const float sdxl_factors[4][3] = {
    {0.3651f, 0.4232f, 0.4341f},
    {-0.2533f, -0.0042f, 0.1068f},
    {0.1076f, 0.1111f, -0.0362f},
    {-0.3165f, -0.2492f, -0.2188f},
};
static const float sdxl_bias[3] = {0.1084f, -0.0175f, -0.0011f};

int pp_preview_factors(const char *arch, const float (**factors)[3], const float **bias) {
    if (!arch || strcmp(arch, "sd1") == 0 || strcmp(arch, "sd2") == 0) {
        *factors = sd1_factors;
        *bias = sd1_bias;
        return 0;
    }
    if (strcmp(arch, "sdxl") == 0 || strcmp(arch, "sdxl-refiner") == 0) {
        *factors = sdxl_factors;
        *bias = sdxl_bias;
        return 0;
    }
    return -1;
}

void pp_preview_rgb8(const float *latents, int h, int w, const float (*factors)[3], const float *bias,
                     uint8_t *rgb) {
    size_t plane = (size_t)h * w;
    for (size_t i = 0; i < plane; i++)
        for (int ch = 0; ch < 3; ch++) {
            float v = bias[ch];
            for (int c = 0; c < 4; c++) v += latents[c * plane + i] * factors[c][ch];
            rgb[i * 3 + ch] = pp_to_u8((v + 1.f) * 0.5f);
        }
}
