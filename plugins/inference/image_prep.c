/* plugins/inference/image_prep.c - see image_prep.h. The resampling and
 * blur follow Pillow's Resample.c and BoxBlur.c step for step (the same
 * coefficients, fixed-point rounding and edge handling), so an image
 * prepared here is the one diffusers hands to the VAE. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_prep.h"
#include "sdrt/resample.h"


void iprep_to_u8(const float *rgb, size_t count, uint8_t *out) {
    for (size_t i = 0; i < count; i++) {
        float v = rgb[i] * 255.0f;
        out[i] = (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : lrintf(v));
    }
}

/* ---- resampling: the shared Pillow-exact resizer (sdrt/resample.h) ---- */

int iprep_resize(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw, int dh) {
    return sdrt_resample_u8(src, sw, sh, ch, NULL, SDRT_RESAMPLE_LANCZOS, dst, dw, dh);
}

/* ---- "only masked" crops (VaeImageProcessor) -------------------------- */

static int column_empty(const uint8_t *g, int w, int h, int x) {
    for (int y = 0; y < h; y++)
        if (g[(size_t)y * w + x]) return 0;
    return 1;
}

static int row_empty(const uint8_t *g, int w, int y) {
    for (int x = 0; x < w; x++)
        if (g[(size_t)y * w + x]) return 0;
    return 1;
}

/* Grows [*a, *b) of an axis of `size` to `desired` length around its
 * centre, shifted back inside [0, size). */
static void grow_axis(int *a, int *b, double desired, int size) {
    int diff = (int)(desired - (*b - *a));
    *a -= diff / 2;
    *b += diff - diff / 2;
    if (*b >= size) {
        int over = *b - size;
        *b -= over;
        *a -= over;
    }
    if (*a < 0) {
        *b -= *a;
        *a = 0;
    }
    if (*b >= size) *b = size;
}

void iprep_crop_region(const uint8_t *gray, int w, int h, int width, int height, int pad, int box[4]) {
    int left = 0, right = 0, top = 0, bottom = 0;
    while (left < w && column_empty(gray, w, h, left)) left++;
    while (right < w && column_empty(gray, w, h, w - 1 - right)) right++;
    while (top < h && row_empty(gray, w, top)) top++;
    while (bottom < h && row_empty(gray, w, h - 1 - bottom)) bottom++;
    int x1 = left - pad > 0 ? left - pad : 0, y1 = top - pad > 0 ? top - pad : 0;
    int x2 = w - right + pad < w ? w - right + pad : w, y2 = h - bottom + pad < h ? h - bottom + pad : h;
    /* An empty mask gives x2 <= x1 (diffusers divides by zero there):
     * take the whole image. */
    if (x2 <= x1 || y2 <= y1) x1 = 0, y1 = 0, x2 = w, y2 = h;
    double ratio_crop = (double)(x2 - x1) / (y2 - y1), ratio = (double)width / height;
    if (ratio_crop > ratio) grow_axis(&y1, &y2, (x2 - x1) / ratio, h);
    else grow_axis(&x1, &x2, (y2 - y1) * ratio, w);
    box[0] = x1, box[1] = y1, box[2] = x2, box[3] = y2;
}

/* Pastes src [sh, sw, ch] into dst [dh, dw, ch] at (x, y), clipped. */
static void paste(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int ch, int x, int y) {
    for (int r = 0; r < sh; r++) {
        if (y + r < 0 || y + r >= dh) continue;
        for (int c = 0; c < sw; c++)
            if (x + c >= 0 && x + c < dw)
                memcpy(dst + ((size_t)(y + r) * dw + x + c) * ch, src + ((size_t)r * sw + c) * ch, (size_t)ch);
    }
}

/* The two fill strips of _resize_and_fill: the edge rows (columns) of
 * `resized` stretched by Pillow's resize with a zero-height (width) box,
 * which blends the samples nearest the edge (BICUBIC: diffusers passes no
 * resample there, and Pillow's default is bicubic). */
static int fill_strips(uint8_t *dst, int W, int H, const uint8_t *rs, int rw, int rh, int ch, int vertical, int fill) {
    int sw = vertical ? W : fill, sh = vertical ? fill : H;
    uint8_t *strip = malloc((size_t)sw * sh * ch);
    if (!strip) return -1;
    double first[4] = {0, 0, vertical ? W : 0, vertical ? 0 : H};
    double last[4] = {vertical ? 0 : rw, vertical ? rh : 0, vertical ? W : rw, vertical ? rh : H};
    int rc = sdrt_resample_u8(rs, rw, rh, ch, first, SDRT_RESAMPLE_BICUBIC, strip, sw, sh);
    if (rc == 0) paste(dst, W, H, strip, sw, sh, ch, 0, 0);
    if (rc == 0) rc = sdrt_resample_u8(rs, rw, rh, ch, last, SDRT_RESAMPLE_BICUBIC, strip, sw, sh);
    if (rc == 0) paste(dst, W, H, strip, sw, sh, ch, vertical ? 0 : fill + rw, vertical ? fill + rh : 0);
    free(strip);
    return rc;
}

int iprep_crop_fill(const uint8_t *src, int sw, int ch, const int box[4], uint8_t *dst, int W, int H) {
    int cw = box[2] - box[0], chh = box[3] - box[1];
    uint8_t *crop = malloc((size_t)cw * chh * ch);
    if (!crop) return -1;
    for (int y = 0; y < chh; y++)
        memcpy(crop + (size_t)y * cw * ch, src + ((size_t)(box[1] + y) * sw + box[0]) * ch, (size_t)cw * ch);
    double ratio = (double)W / H, src_ratio = (double)cw / chh;
    int rw = ratio < src_ratio ? W : cw * H / chh, rh = ratio >= src_ratio ? H : chh * W / cw;
    uint8_t *rs = malloc((size_t)rw * rh * ch);
    int rc = rs ? iprep_resize(crop, cw, chh, ch, rs, rw, rh) : -1;
    if (rc == 0) {
        memset(dst, 0, (size_t)W * H * ch);
        paste(dst, W, H, rs, rw, rh, ch, W / 2 - rw / 2, H / 2 - rh / 2);
        if (ratio < src_ratio && H / 2 - rh / 2 > 0) rc = fill_strips(dst, W, H, rs, rw, rh, ch, 1, H / 2 - rh / 2);
        if (ratio > src_ratio && W / 2 - rw / 2 > 0) rc = fill_strips(dst, W, H, rs, rw, rh, ch, 0, W / 2 - rw / 2);
    }
    free(crop);
    free(rs);
    return rc;
}

/* _resize_and_crop: cover W x H keeping the aspect, centre-cropped. */
static int resize_cover(const uint8_t *src, int sw, int sh, uint8_t *dst, int W, int H) {
    double ratio = (double)W / H, src_ratio = (double)sw / sh;
    int rw = ratio > src_ratio ? W : sw * H / sh, rh = ratio <= src_ratio ? H : sh * W / sw;
    uint8_t *rs = malloc((size_t)rw * rh * 3);
    int rc = rs ? iprep_resize(src, sw, sh, 3, rs, rw, rh) : -1;
    if (rc == 0) {
        memset(dst, 0, (size_t)W * H * 3);
        paste(dst, W, H, rs, rw, rh, 3, W / 2 - rw / 2, H / 2 - rh / 2);
    }
    free(rs);
    return rc;
}

static uint8_t div255(uint32_t a) {
    uint32_t t = a + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* One pixel of apply_overlay: the original with alpha 255 - mask
 * (premultiplied by Pillow's RGBA -> RGBa -> RGBA round trip) composited
 * over the generated pixel `g` (opaque; black outside the crop, where
 * diffusers' base image is empty), as Image.alpha_composite does. */
static void overlay_pixel(const uint8_t *o, uint8_t m, const uint8_t *g, uint8_t *out) {
    const uint32_t ga = 255u;
    uint32_t sa = 255u - m, s[3];
    for (int k = 0; k < 3; k++) {
        uint32_t pre = div255((uint32_t)o[k] * sa);      /* RGBA -> RGBa, pasted through the mask */
        uint32_t un = sa == 0 || sa == 255 ? pre : (255u * pre) / sa;
        s[k] = un > 255 ? 255 : un;                      /* RGBa -> RGBA */
    }
    if (sa == 0) {
        memcpy(out, g, 3);
        return;
    }
    uint32_t blend = ga * (255u - sa), outa255 = sa * 255u + blend;
    uint32_t coef1 = sa * 255u * 255u * (1u << 7) / outa255, coef2 = 255u * (1u << 7) - coef1;
    for (int k = 0; k < 3; k++) {
        uint32_t t = s[k] * coef1 + g[k] * coef2 + (0x80u << 7);
        out[k] = (uint8_t)(((t >> 8) + t) >> 8 >> 7);
    }
}

int iprep_overlay(const uint8_t *orig, const uint8_t *mask, int w, int h, const uint8_t *gen, int W, int H,
                  const int box[4], uint8_t *out) {
    int cw = box[2] - box[0], chh = box[3] - box[1];
    uint8_t *fit = malloc((size_t)cw * chh * 3);
    if (!fit || resize_cover(gen, W, H, fit, cw, chh) != 0) {
        free(fit);
        return -1;
    }
    static const uint8_t black[3] = {0, 0, 0};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int inside = x >= box[0] && x < box[2] && y >= box[1] && y < box[3];
            const uint8_t *g = inside ? fit + ((size_t)(y - box[1]) * cw + (x - box[0])) * 3 : black;
            overlay_pixel(orig + i * 3, mask[i], g, out + i * 3);
        }
    free(fit);
    return 0;
}

void iprep_gray(const uint8_t *rgb, size_t npx, uint8_t *gray) {
    for (size_t i = 0; i < npx; i++)
        gray[i] = (uint8_t)((rgb[3 * i] * 19595u + rgb[3 * i + 1] * 38470u + rgb[3 * i + 2] * 7471u + 0x8000u) >> 16);
}

/* ---- GaussianBlur (Pillow BoxBlur.c) ---------------------------------- */

/* The box radius whose three passes approximate a Gaussian of `radius`
 * (Gwosdek et al., as Pillow computes it in float). */
static float box_radius(float radius, int passes) {
    float sigma2 = radius * radius / passes;
    float L = (float)sqrt(12.0 * sigma2 + 1.0);
    float l = (float)floor((L - 1.0) / 2.0);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

typedef struct box_line {
    int radius, edge_a, edge_b, last;
    uint32_t ww, fw;
} box_line;

static uint8_t box_save(uint32_t bulk) {
    return (uint8_t)((bulk + (1u << 23)) >> 24);
}

/* One line of Pillow's ImagingLineBoxBlur8: `in` contiguous, `out` every
 * `step` bytes. Its three edge ranges are the clamped indices below. */
static void box_blur_line(const box_line *b, const uint8_t *in, uint8_t *out, size_t step) {
    int r = b->radius, last = b->last;
    uint32_t acc = in[0] * (uint32_t)(r + 1);
    for (int x = 0; x < b->edge_a - 1; x++) acc += in[x];
    acc += in[last] * (uint32_t)(r - b->edge_a + 1);
    for (int x = 0; x <= last; x++) {
        int sub = x - r - 1 < 0 ? 0 : x - r - 1;
        int add = x + r > last ? last : x + r;
        int far = x + r + 1 > last ? last : x + r + 1;
        acc += (uint32_t)in[add] - (uint32_t)in[sub];
        out[(size_t)x * step] = box_save(acc * b->ww + ((uint32_t)in[sub] + in[far]) * b->fw);
    }
}

static void box_blur_axis(uint8_t *img, uint8_t *line, int n, int lines, size_t step, size_t line_step,
                          float fr) {
    box_line b = {.radius = (int)fr, .last = n - 1};
    b.ww = (uint32_t)((float)(1 << 24) / (fr * 2 + 1));
    b.fw = ((1u << 24) - (uint32_t)(b.radius * 2 + 1) * b.ww) / 2;
    b.edge_a = b.radius + 1 < n ? b.radius + 1 : n;
    b.edge_b = n - b.radius - 1 > 0 ? n - b.radius - 1 : 0;
    for (int l = 0; l < lines; l++) {
        uint8_t *p = img + (size_t)l * line_step;
        for (int x = 0; x < n; x++) line[x] = p[(size_t)x * step];
        box_blur_line(&b, line, p, step);
    }
}

int iprep_gaussian_blur(uint8_t *img, int w, int h, int ch, float radius) {
    if (radius <= 0.0f) return 0;
    float r = box_radius(radius, 3);
    uint8_t *line = malloc((size_t)(w > h ? w : h));
    if (!line) return -1;
    size_t row = (size_t)w * ch;
    /* Pillow: every horizontal pass, then every vertical one */
    for (int c = 0; c < ch; c++)
        for (int pass = 0; pass < 3; pass++) box_blur_axis(img + c, line, w, h, (size_t)ch, row, r);
    for (int c = 0; c < ch; c++)
        for (int pass = 0; pass < 3; pass++) box_blur_axis(img + c, line, h, w, row, (size_t)ch, r);
    free(line);
    return 0;
}

/* ---- masks ------------------------------------------------------------ */

void iprep_mask_latent(const uint8_t *gray, int W, int H, float *out) {
    int w = W / 8, h = H / 8;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) out[y * w + x] = gray[(size_t)(8 * y) * W + 8 * x] / 255.0f < 0.5f ? 0.0f : 1.0f;
}

void iprep_mask_image(float *rgb, const uint8_t *gray, size_t npx) {
    for (size_t i = 0; i < npx; i++)
        if (!(gray[i] / 255.0f < 0.5f)) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 0.5f;
}
