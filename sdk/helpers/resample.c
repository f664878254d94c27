/* sdk/helpers/resample.c - see sdrt/resample.h. Moved from the inference
 * plugin's image_prep.c (parity-tested there against diffusers' inputs) and
 * extended by NEAREST for the upscale message. */
#include "sdrt/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)
#ifndef M_PI /* strict C11 (mingw) does not define it */
#define M_PI 3.14159265358979323846
#endif

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct coeffs {
    int ksize;
    int *bounds; /* [out, 2]: xmin, count */
    int *k;      /* [out, ksize] fixed point */
} coeffs;

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc: output samples over
 * the source interval [in0, in1) of an axis of `in` samples. */
static int coeffs_make(int in, double in0, double in1, int out, double (*fn)(double), double support0, coeffs *c) {
    double scale = (in1 - in0) / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support0 * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->bounds = malloc((size_t)out * 2 * sizeof(int));
    c->k = calloc((size_t)out * (size_t)c->ksize, sizeof(int));
    double *pre = malloc((size_t)c->ksize * sizeof(double));
    if (!c->bounds || !c->k || !pre) {
        free(pre);
        return -1;
    }
    for (int xx = 0; xx < out; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) ww += pre[x] = fn((x + xmin - center + 0.5) * ss);
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? pre[x] / ww : pre[x];
            c->k[(size_t)xx * c->ksize + x] = v < 0 ? (int)(-0.5 + v * (1 << PRECISION_BITS))
                                                    : (int)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[xx * 2] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    free(pre);
    return 0;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
}

static uint8_t clip8(int v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One axis: step_* move along it, line_* across it. */
static void resample_axis(const uint8_t *src, uint8_t *dst, const coeffs *c, int out, int lines, int ch,
                          size_t step_in, size_t line_in, size_t step_out, size_t line_out) {
    for (int l = 0; l < lines; l++)
        for (int xx = 0; xx < out; xx++) {
            const int *k = c->k + (size_t)xx * c->ksize;
            int xmin = c->bounds[xx * 2], n = c->bounds[xx * 2 + 1];
            for (int b = 0; b < ch; b++) {
                int ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < n; x++) ss += src[l * line_in + (size_t)(xmin + x) * step_in + b] * k[x];
                dst[l * line_out + (size_t)xx * step_out + b] = clip8(ss);
            }
        }
}

/* Geometry.c ImagingScaleAffine: the source coordinate accumulates a[0]. */
static int nearest(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw, int dh) {
    int *xin = malloc((size_t)dw * sizeof *xin);
    if (!xin) return -1;
    double a0 = (double)sw / dw, a4 = (double)sh / dh, xo = a0 * 0.5, yo = a4 * 0.5;
    for (int x = 0; x < dw; x++, xo += a0) {
        int v = xo < 0.0 ? -1 : (int)xo;
        xin[x] = v < sw ? v : sw - 1;
    }
    for (int y = 0; y < dh; y++, yo += a4) {
        int yi = yo < 0.0 ? 0 : (int)yo;
        if (yi >= sh) yi = sh - 1;
        for (int x = 0; x < dw; x++)
            memcpy(dst + ((size_t)y * dw + x) * ch, src + ((size_t)yi * sw + xin[x]) * ch, (size_t)ch);
    }
    free(xin);
    return 0;
}

int sdrt_resample_u8(const uint8_t *src, int sw, int sh, int ch, const double *box, sdrt_resample_filter filter,
                     uint8_t *dst, int dw, int dh) {
    if (!src || !dst || sw < 1 || sh < 1 || dw < 1 || dh < 1 || ch < 1) return -1;
    if (filter == SDRT_RESAMPLE_NEAREST) return nearest(src, sw, sh, ch, dst, dw, dh);
    const double whole[4] = {0, 0, sw, sh};
    if (!box) box = whole;
    double (*fn)(double) = filter == SDRT_RESAMPLE_LANCZOS ? lanczos : bicubic;
    double support = filter == SDRT_RESAMPLE_LANCZOS ? 3.0 : 2.0;
    int horizontal = dw != sw || box[0] != 0 || box[2] != sw;
    int vertical = dh != sh || box[1] != 0 || box[3] != sh;
    coeffs cx = {0}, cy = {0};
    /* Pillow resamples horizontally first, into an 8-bit temporary (here
     * over every row; Pillow's restriction to the rows the vertical pass
     * reads changes no output). */
    uint8_t *tmp = malloc((size_t)dw * sh * ch);
    int rc = tmp && (!horizontal || coeffs_make(sw, box[0], box[2], dw, fn, support, &cx) == 0) &&
                     (!vertical || coeffs_make(sh, box[1], box[3], dh, fn, support, &cy) == 0)
                 ? 0
                 : -1;
    if (rc == 0) {
        if (horizontal)
            resample_axis(src, tmp, &cx, dw, sh, ch, (size_t)ch, (size_t)sw * ch, (size_t)ch, (size_t)dw * ch);
        else
            memcpy(tmp, src, (size_t)sw * sh * ch);
        if (vertical)
            resample_axis(tmp, dst, &cy, dh, dw, ch, (size_t)dw * ch, (size_t)ch, (size_t)dw * ch, (size_t)ch);
        else
            memcpy(dst, tmp, (size_t)dw * dh * ch);
    }
    coeffs_free(&cx);
    coeffs_free(&cy);
    free(tmp);
    return rc;
}
