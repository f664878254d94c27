/* plugins/inference/image_prep.h - the pixel-side preprocessing of img2img
 * and inpainting, as diffusers' VaeImageProcessor does it on PIL images:
 * Lanczos resizing (PIL's Image.resize, 8-bit fixed point, bit-exact),
 * grayscale masks (PIL convert("L")), PIL's GaussianBlur (three box
 * blurs), binarisation, and the mask's nearest downsampling to latents.
 *
 * Images are 8-bit: [h, w, ch] uint8, as PIL holds them. */
#ifndef SDRT_INFERENCE_IMAGE_PREP_H
#define SDRT_INFERENCE_IMAGE_PREP_H

#include <stddef.h>
#include <stdint.h>

/* [h, w, 3] floats in [0, 1] (what sdrt.postprocess/1 read_image returns,
 * v / 255) back to the 8-bit values. */
void iprep_to_u8(const float *rgb, size_t count, uint8_t *out);

/* PIL Image.resize((dw, dh), Image.LANCZOS) of src [sh, sw, ch] into dst
 * [dh, dw, ch]. Returns 0, or -1 when out of memory. */
int iprep_resize(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw, int dh);

/* VaeImageProcessor.get_crop_region: the box (x1, y1, x2, y2) around the
 * non-zero pixels of gray [h, w], padded by `pad` and grown to the aspect
 * of width x height within the image. An all-black mask gives the whole
 * image. */
void iprep_crop_region(const uint8_t *gray, int w, int h, int width, int height, int pad, int box[4]);

/* VaeImageProcessor.preprocess with crops_coords and resize_mode "fill":
 * src [.., sw, ch] cropped to `box`, resized into W x H keeping its aspect,
 * centred, the rest filled from its edges. dst [H, W, ch]. Returns 0 / -1. */
int iprep_crop_fill(const uint8_t *src, int sw, int ch, const int box[4], uint8_t *dst, int W, int H);

/* VaeImageProcessor.apply_overlay: the generated gen [H, W, 3] resized to
 * the crop (resize_mode "crop"), pasted at `box` over the original
 * orig [h, w, 3], under the original where mask [h, w] (the mask as given,
 * grayscale) is not white, as Pillow's RGBa paste and alpha_composite do.
 * out [h, w, 3]. Returns 0 / -1. */
int iprep_overlay(const uint8_t *orig, const uint8_t *mask, int w, int h, const uint8_t *gen, int W, int H,
                  const int box[4], uint8_t *out);

/* PIL convert("L") of [npx, 3] RGB: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
void iprep_gray(const uint8_t *rgb, size_t npx, uint8_t *gray);

/* PIL ImageFilter.GaussianBlur(radius) on an [h, w, ch] image (each
 * channel alone), in place. Returns 0, or -1 when out of memory. */
int iprep_gaussian_blur(uint8_t *img, int w, int h, int ch, float radius);

/* The mask at latent resolution: diffusers binarises the [H, W] mask
 * (v / 255 < 0.5 -> 0, else 1) and takes torch's nearest interpolation to
 * [H/8, W/8]: out[y][x] = mask[8y][8x]. */
void iprep_mask_latent(const uint8_t *gray, int W, int H, float *out);

/* The masked image of inpainting, init_image * (mask < 0.5) in [-1, 1]:
 * masked pixels become 0, i.e. 0.5 in [0, 1]. rgb [H, W, 3] in place. */
void iprep_mask_image(float *rgb, const uint8_t *gray, size_t npx);

#endif /* SDRT_INFERENCE_IMAGE_PREP_H */
