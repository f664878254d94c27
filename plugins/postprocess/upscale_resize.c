/* upscale_resize.c - Pillow's Image.resize for 8-bit RGB, reproduced step
 * for step so results are byte-identical (A1111's "Lanczos"/"Nearest"
 * upscalers are Pillow resizes): libImaging/Resample.c's separable
 * convolution with coefficients normalised to 22-bit fixed point, the
 * horizontal pass first over the rows the vertical pass needs, and for
 * NEAREST the affine scale of libImaging/Geometry.c with its accumulated
 * source coordinate. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "upscale.h"

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos(double x) {
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
    return 0.0;
}

/* Coefficients of every output index: bounds[2*i] = first input, [2*i+1] =
 * count; kk[i*ksize + j] in 22-bit fixed point. Returns ksize or -1. */
static int coeffs(int in_size, int out_size, up_filter f, int **boundsp, int32_t **kkp) {
    double (*fn)(double) = f == UP_LANCZOS ? lanczos : bicubic;
    double support0 = f == UP_LANCZOS ? 3.0 : 2.0;
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc((size_t)ksize * sizeof *k);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    int32_t *kk = calloc((size_t)out_size * ksize, sizeof *kk);
    if (!k || !bounds || !kk) {
        free(k), free(bounds), free(kk);
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? k[x] / ww : k[x];
            kk[(size_t)xx * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                                               : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    *boundsp = bounds;
    *kkp = kk;
    return ksize;
}

static uint8_t clip8(int32_t in) {
    int32_t v = in >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int nearest(const uint8_t *in, int iw, int ih, uint8_t *out, int ow, int oh) {
    int *xin = malloc((size_t)ow * sizeof *xin);
    if (!xin) return -1;
    double a0 = (double)iw / ow, a4 = (double)ih / oh;
    double xo = a0 * 0.5, yo = a4 * 0.5;
    for (int x = 0; x < ow; x++, xo += a0) {
        int v = xo < 0.0 ? -1 : (int)xo;
        xin[x] = v < iw ? v : iw - 1;
    }
    for (int y = 0; y < oh; y++, yo += a4) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        if (yi >= ih) yi = ih - 1;
        for (int x = 0; x < ow; x++) memcpy(out + ((size_t)y * ow + x) * 3, in + ((size_t)yi * iw + xin[x]) * 3, 3);
    }
    free(xin);
    return 0;
}

int up_resize_u8(const uint8_t *in, int iw, int ih, uint8_t *out, int ow, int oh, up_filter f) {
    if (f == UP_NEAREST) return nearest(in, iw, ih, out, ow, oh);
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    int ksh = coeffs(iw, ow, f, &bh, &kh), ksv = ksh < 0 ? -1 : coeffs(ih, oh, f, &bv, &kv);
    if (ksh < 0 || ksv < 0) {
        free(bh), free(kh);
        return -1;
    }
    int need_h = ow != iw, need_v = oh != ih;
    int first = bv[0], last = bv[(oh - 1) * 2] + bv[(oh - 1) * 2 + 1];
    const uint8_t *src = in;
    int src_h = ih, src_w = iw;
    uint8_t *tmp = NULL;
    if (need_h) {
        /* Only the rows the vertical pass reads. */
        int rows = last - first;
        for (int i = 0; i < oh; i++) bv[i * 2] -= first;
        tmp = malloc((size_t)rows * ow * 3);
        if (!tmp) {
            free(bh), free(kh), free(bv), free(kv);
            return -1;
        }
        for (int y = 0; y < rows; y++)
            for (int xx = 0; xx < ow; xx++) {
                const int32_t *k = kh + (size_t)xx * ksh;
                int xmin = bh[xx * 2], xmax = bh[xx * 2 + 1];
                for (int c = 0; c < 3; c++) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < xmax; x++) ss += in[((size_t)(y + first) * iw + x + xmin) * 3 + c] * k[x];
                    tmp[((size_t)y * ow + xx) * 3 + c] = clip8(ss);
                }
            }
        src = tmp;
        src_h = rows;
        src_w = ow;
    }
    if (need_v) {
        for (int yy = 0; yy < oh; yy++) {
            const int32_t *k = kv + (size_t)yy * ksv;
            int ymin = bv[yy * 2], ymax = bv[yy * 2 + 1];
            for (int xx = 0; xx < ow; xx++)
                for (int c = 0; c < 3; c++) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    for (int y = 0; y < ymax; y++) ss += src[((size_t)(y + ymin) * src_w + xx) * 3 + c] * k[y];
                    out[((size_t)yy * ow + xx) * 3 + c] = clip8(ss);
                }
        }
    } else {
        memcpy(out, src + (size_t)(need_h ? 0 : 0) * src_w * 3, (size_t)oh * ow * 3);
    }
    (void)src_h;
    free(tmp);
    free(bh), free(kh), free(bv), free(kv);
    return 0;
}
