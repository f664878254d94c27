/* plugins/inference/controlnet_run.h - the ControlNets of one generation
 * in the denoising loop, as diffusers' StableDiffusion(XL)ControlNet
 * pipelines (and their img2img / inpainting variants) apply them: at step
 * i of n, ControlNet k runs when not (i/n < guidance_start or (i+1)/n >
 * guidance_end), on the same (scaled, 4-channel) latents, text embeddings
 * and SDXL added conditions as the UNet, with its control image repeated
 * over the rows; its residuals times conditioning_scale are summed over
 * the ControlNets (MultiControlNetModel) and added in the UNet. guess_mode
 * with CFG: the residuals of the unconditional rows are zero.
 *
 * Thread: an infer_cn_set is read-only during the loop. */
#ifndef SDRT_INFERENCE_CONTROLNET_RUN_H
#define SDRT_INFERENCE_CONTROLNET_RUN_H

#include <stdint.h>

#include "controlnet.h"

typedef struct infer_cn {
    controlnet *net;
    float *image;             /* [3, H, W] in [0, 1], at the generation size */
    float scale;
    double start, end;        /* compared in double, as Python floats */
} infer_cn;

typedef struct infer_cn_set {
    infer_cn *v;
    int n;
    int guess_mode;
    int H, W;
} infer_cn_set;

/* Residuals for one UNet call on `k` rows. `in` is the UNet's input (its
 * sample may carry inpainting channels beyond `channels`: then the first
 * `channels` of every row of rows_host, in_row floats apart, are used).
 * The first n_uncond rows are unconditional (zeroed in guess mode). On
 * SDRT_OK, *ndown is 0 (no ControlNet active at this step) or the number of
 * residuals in down[] (owned by nn, like *mid). */
sdrt_status infer_cn_residuals(const infer_cn_set *s, sdrt_nn *nn, const unet_inputs *in, const float *rows_host,
                               size_t in_row, int channels, int k, int n_uncond, uint32_t step, uint32_t nsteps,
                               sdrt_tensor **down, int *ndown, sdrt_tensor **mid, char *err, size_t errlen);

#endif
