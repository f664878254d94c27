/* sdrt/resample.h - Pillow's Image.resize on 8-bit images, byte for byte
 * (libImaging/Resample.c: separable convolution with coefficients in
 * 22-bit fixed point, horizontal pass first into an 8-bit temporary;
 * NEAREST as Geometry.c's affine scale with its accumulated coordinate).
 * The one implementation of resizing: img2img/inpaint preparation, the
 * upscale message and the hires fix use it, so their images are the ones
 * diffusers / A1111 (PIL) produce. Part of sdrt_helpers; thread-safe (no
 * shared state). */
#ifndef SDRT_RESAMPLE_H
#define SDRT_RESAMPLE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdrt_resample_filter {
    SDRT_RESAMPLE_NEAREST = 0, /* Image.NEAREST */
    SDRT_RESAMPLE_BICUBIC = 1, /* Image.BICUBIC (a = -0.5) */
    SDRT_RESAMPLE_LANCZOS = 2  /* Image.LANCZOS (a = 3) */
} sdrt_resample_filter;

/* Resizes the region box = {x0, y0, x1, y1} of src [sh, sw, ch] (NULL box:
 * the whole image) to dst [dh, dw, ch] (caller-allocated), as
 * Image.resize((dw, dh), filter, box). Both are borrowed for the call.
 * NEAREST ignores a box other than the whole image. Returns 0, or -1 when
 * memory runs out or a size is not positive. */
int sdrt_resample_u8(const uint8_t *src, int sw, int sh, int ch, const double *box, sdrt_resample_filter filter,
                     uint8_t *dst, int dw, int dh);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_RESAMPLE_H */
