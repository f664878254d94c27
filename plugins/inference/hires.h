/* plugins/inference/hires.h - the hires fix of inference.run, as A1111's
 * StableDiffusionProcessingTxt2Img runs it: a first pass at width x height,
 * an upscale of its result (latents, or the decoded image), then a second
 * pass as img2img at the target size with the same seed.
 *
 * Request: "hires": {"scale" | "width"/"height", "upscaler", "steps",
 * "denoising_strength"}, or A1111's API names at the top level: enable_hr,
 * hr_scale, hr_upscaler, hr_second_pass_steps, hr_resize_x, hr_resize_y,
 * denoising_strength. Upscalers: "latent" (A1111 "Latent": bilinear),
 * "latent-bicubic" ("Latent (bicubic)"), "latent-nearest" ("Latent
 * (nearest)"), "lanczos", "nearest" (Pillow resizes of the decoded image),
 * or an upscaler model id (ESRGAN family, through sdrt.postprocess/1's
 * upscale; A1111's resize_image: model passes until the target is covered,
 * at most 3, then Lanczos to the target size).
 * Thread-safe (no shared state). */
#ifndef SDRT_INFERENCE_HIRES_H
#define SDRT_INFERENCE_HIRES_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "sdrt/status.h"

typedef enum infer_hr_upscaler {
    INFER_HR_LATENT,          /* torch interpolate bilinear, align_corners=False */
    INFER_HR_LATENT_BICUBIC,  /* bicubic (A = -0.75), align_corners=False */
    INFER_HR_LATENT_NEAREST,  /* nearest */
    INFER_HR_LANCZOS,         /* decode, Pillow LANCZOS, encode */
    INFER_HR_NEAREST,         /* decode, Pillow NEAREST, encode */
    INFER_HR_MODEL            /* decode, upscaler model (postprocess), Pillow LANCZOS to size, encode */
} infer_hr_upscaler;

typedef struct infer_hires {
    int enabled;
    double scale;             /* hr_scale (default 2) when no size is given */
    int resize_x, resize_y;   /* hr_resize_x/y; 0 = from scale */
    infer_hr_upscaler upscaler;
    char *upscaler_name;      /* as A1111 writes it in the infotext ("Latent"); the model id for models */
    int steps;                /* second pass steps; 0 = num_inference_steps */
    double denoising_strength; /* (0, 1]; default 0.7 */
} infer_hires;

/* Reads the hires fields of the inference.run data `root` (borrowed) into
 * *h. Returns SDRT_OK, or SDRT_INVALID_ARGUMENT / SDRT_UNSUPPORTED with err
 * naming the field. h->upscaler_name is malloc'd (infer_hires_free). */
sdrt_status infer_hires_parse(const cJSON *root, infer_hires *h, char *err, size_t errlen);
void infer_hires_free(infer_hires *h);

/* A1111's target size from the first pass's w x h: int(w * scale) x
 * int(h * scale), or hr_resize_x/y (the missing one keeping the aspect;
 * both given: upscale to cover, then crop, crop_x and crop_y pixels in
 * total). Sizes are then rounded down to multiples of 8 (the latent grid).
 * Returns 0, or -1 with err when the result is out of [8, max]. */
int infer_hires_target(const infer_hires *h, int w, int h_px, int max, int *tw, int *th, int *crop_x, int *crop_y,
                       char *err, size_t errlen);

/* torch.nn.functional.interpolate of in [n, c, ih, iw] to out [n, c, oh, ow]
 * (align_corners=False, no antialias) in `mode` (INFER_HR_LATENT bilinear,
 * _BICUBIC, _NEAREST). */
void infer_latent_resize(const float *in, int n, int c, int ih, int iw, float *out, int oh, int ow,
                         infer_hr_upscaler mode);

#endif
