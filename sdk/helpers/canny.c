/* sdk/helpers/canny.c - cv2.Canny (see sdrt/canny.h). The steps follow
 * OpenCV's imgproc/src/canny.cpp (CANNY_SHIFT 15, TG22). */
#include "sdrt/canny.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CANNY_SHIFT 15
/* (int)(tan(22.5 deg) * 2^15 + 0.5) */
#define TG22 13573

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* 3x3 Sobel of channel c at (x, y), BORDER_REPLICATE. */
static void sobel(const uint8_t *s, int w, int h, int ch, int c, int x, int y, int *dx, int *dy) {
    int xm = clampi(x - 1, 0, w - 1), xp = clampi(x + 1, 0, w - 1);
    int ym = clampi(y - 1, 0, h - 1), yp = clampi(y + 1, 0, h - 1);
#define P(xx, yy) ((int)s[((size_t)(yy) * (size_t)w + (size_t)(xx)) * (size_t)ch + (size_t)c])
    *dx = (P(xp, ym) - P(xm, ym)) + 2 * (P(xp, y) - P(xm, y)) + (P(xp, yp) - P(xm, yp));
    *dy = (P(xm, yp) - P(xm, ym)) + 2 * (P(x, yp) - P(x, ym)) + (P(xp, yp) - P(xp, ym));
#undef P
}

int sdrt_canny(const uint8_t *src, int w, int h, int channels, double low_t, double high_t, uint8_t *dst) {
    if (!src || !dst || w < 1 || h < 1 || channels < 1 || channels > 4 || (int64_t)w * h > ((int64_t)1 << 30))
        return -1;
    if (low_t > high_t) {
        double t = low_t;
        low_t = high_t;
        high_t = t;
    }
    int low = (int)floor(low_t), high = (int)floor(high_t);
    size_t n = (size_t)w * (size_t)h;
    /* mag with a zero frame of one pixel; map with a frame of 1 (not edge). */
    size_t W = (size_t)w + 2, H = (size_t)h + 2;
    int *mag = calloc(W * H, sizeof *mag);
    int *gx = malloc(n * sizeof *gx), *gy = malloc(n * sizeof *gy);
    uint8_t *map = malloc(W * H);
    size_t *stack = malloc(n * sizeof *stack);
    if (!mag || !gx || !gy || !map || !stack) {
        free(mag), free(gx), free(gy), free(map), free(stack);
        return -1;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int best = -1, bx = 0, by = 0;
            for (int c = 0; c < channels; c++) {
                int dx, dy;
                sobel(src, w, h, channels, c, x, y, &dx, &dy);
                int m = abs(dx) + abs(dy);
                if (m > best) best = m, bx = dx, by = dy;
            }
            mag[(size_t)(y + 1) * W + (size_t)(x + 1)] = best;
            gx[(size_t)y * (size_t)w + (size_t)x] = bx;
            gy[(size_t)y * (size_t)w + (size_t)x] = by;
        }
    /* 0: candidate (weak), 1: not an edge, 2: edge. */
    memset(map, 1, W * H);
    size_t top = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t j = (size_t)(y + 1) * W + (size_t)(x + 1);
            int m = mag[j];
            if (m <= low) continue;
            int dx = gx[(size_t)y * (size_t)w + (size_t)x], dy = gy[(size_t)y * (size_t)w + (size_t)x];
            int xs = abs(dx), ys = abs(dy);
            long long yy = (long long)ys << CANNY_SHIFT, tg22x = (long long)xs * TG22;
            int keep;
            if (yy < tg22x) {
                keep = m > mag[j - 1] && m >= mag[j + 1];
            } else {
                long long tg67x = tg22x + ((long long)xs << (CANNY_SHIFT + 1));
                if (yy > tg67x) {
                    keep = m > mag[j - W] && m >= mag[j + W];
                } else {
                    int s = (dx ^ dy) < 0 ? -1 : 1;
                    keep = m > mag[j - W - (size_t)(ptrdiff_t)s] && m > mag[j + W + (size_t)(ptrdiff_t)s];
                }
            }
            if (!keep) continue;
            if (m > high) {
                map[j] = 2;
                stack[top++] = j;
            } else {
                map[j] = 0;
            }
        }
    /* Hysteresis: weak pixels 8-connected to an edge become edges. */
    const ptrdiff_t nb[8] = {-(ptrdiff_t)W - 1, -(ptrdiff_t)W, -(ptrdiff_t)W + 1, -1, 1,
                             (ptrdiff_t)W - 1, (ptrdiff_t)W, (ptrdiff_t)W + 1};
    while (top > 0) {
        size_t j = stack[--top];
        for (int k = 0; k < 8; k++) {
            size_t q = (size_t)((ptrdiff_t)j + nb[k]);
            if (map[q] == 0) {
                map[q] = 2;
                stack[top++] = q;
            }
        }
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            dst[(size_t)y * (size_t)w + (size_t)x] = map[(size_t)(y + 1) * W + (size_t)(x + 1)] == 2 ? 255 : 0;
    free(mag), free(gx), free(gy), free(map), free(stack);
    return 0;
}
