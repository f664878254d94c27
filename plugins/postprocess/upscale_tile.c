/* upscale_tile.c - running an upscaler tile by tile. Tiles of `tile` input
 * pixels step by tile - overlap; the last tile of a row/column is pulled
 * back to end at the image edge. Each output pixel is the weighted mean of
 * the tiles covering it, weights ramping linearly from the tile's edge
 * across the overlap (1 at image edges), so seams blend instead of showing
 * the network's border effects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upscale.h"

/* Tile origins and lengths along one axis of n pixels. Origins are
 * multiples of `align` (the pixel-unshuffle factor, so every tile groups
 * pixels as the whole image does); the last tile is pulled back to end at
 * the edge and may be up to align - 1 longer than `tile`. */
static int origins(int n, int tile, int overlap, int align, int *o, int *len, int max) {
    if (tile <= 0 || tile >= n) {
        o[0] = 0;
        len[0] = n;
        return 1;
    }
    int step = (tile - overlap) / align * align, k = 0;
    if (step < align) step = align;
    for (int p = 0;; p += step) {
        if (k == max) return -1;
        if (p + tile >= n) {
            o[k] = (n - tile) / align * align;
            len[k] = n - o[k];
            k++;
            break;
        }
        o[k] = p;
        len[k++] = tile;
    }
    return k;
}

/* Weight of output index i (0..len) of a tile side that starts at `first`
 * (no ramp at the image's own edges). */
static float ramp(int64_t i, int64_t len, int64_t ramp_len, int at_start_edge, int at_end_edge) {
    float w = 1.0f;
    if (ramp_len <= 0) return w;
    if (!at_start_edge && i < ramp_len) w = (float)(i + 0.5) / (float)ramp_len;
    if (!at_end_edge && len - 1 - i < ramp_len) {
        float v = (float)(len - 1 - i + 0.5) / (float)ramp_len;
        if (v < w) w = v;
    }
    return w;
}

#define UP_MAX_TILES_SIDE 4096

int up_run_tiled(const up_model *m, sdrt_nn *nn, const up_tiling *t, const float *in, int h, int w,
                 float *out, char *err, size_t errlen) {
    int tile = t ? t->tile : 0, overlap = t ? t->overlap : 0;
    int64_t s = m->scale, ow = (int64_t)w * s, oh = (int64_t)h * s;
    if (tile <= 0 || (tile >= w && tile >= h)) {
        int rc = up_model_run(m, nn, in, h, w, out, err, errlen);
        if (!rc && t && t->on_tile) t->on_tile(t->ctx, 1, 1);
        return rc;
    }
    int align = m->arch == UP_ARCH_RRDB ? m->shuffle : 1;
    int *ox = malloc(4 * UP_MAX_TILES_SIDE * sizeof *ox), *oy = ox ? ox + UP_MAX_TILES_SIDE : NULL;
    int *lx = ox ? oy + UP_MAX_TILES_SIDE : NULL, *ly = ox ? lx + UP_MAX_TILES_SIDE : NULL;
    float *wsum = calloc((size_t)(oh * ow), sizeof *wsum);
    int mw = (tile < w ? tile : w) + align, mh = (tile < h ? tile : h) + align;
    float *tin = malloc((size_t)mw * mh * 3 * sizeof *tin), *tout = malloc((size_t)(mw * s * mh * s * 3) * sizeof *tout);
    int nx = ox ? origins(w, tile, overlap, align, ox, lx, UP_MAX_TILES_SIDE) : -1;
    int ny = ox ? origins(h, tile, overlap, align, oy, ly, UP_MAX_TILES_SIDE) : -1;
    int rc = -1;
    if (!wsum || !tin || !tout || nx < 0 || ny < 0) {
        snprintf(err, errlen, "upscale: out of memory for tiling a %dx%d image", w, h);
        goto done;
    }
    memset(out, 0, (size_t)(oh * ow * 3) * sizeof *out);
    int64_t rl = (int64_t)overlap * s;
    int done = 0, total = nx * ny;
    for (int ty = 0; ty < ny; ty++)
        for (int tx = 0; tx < nx; tx++) {
            int x0 = ox[tx], y0 = oy[ty], tw = lx[tx], th = ly[ty];
            for (int y = 0; y < th; y++) memcpy(tin + (size_t)y * tw * 3, in + ((size_t)(y0 + y) * w + x0) * 3, (size_t)tw * 3 * sizeof *tin);
            if (up_model_run(m, nn, tin, th, tw, tout, err, errlen)) goto done;
            int64_t ttw = (int64_t)tw * s, tth = (int64_t)th * s;
            for (int64_t y = 0; y < tth; y++) {
                float wy = ramp(y, tth, rl, y0 == 0, y0 + th >= h);
                for (int64_t x = 0; x < ttw; x++) {
                    float wt = wy * ramp(x, ttw, rl, x0 == 0, x0 + tw >= w);
                    size_t o = (size_t)((y0 * s + y) * ow + x0 * s + x);
                    wsum[o] += wt;
                    for (int c = 0; c < 3; c++) out[o * 3 + c] += wt * tout[((size_t)y * ttw + x) * 3 + c];
                }
            }
            if (t->on_tile) t->on_tile(t->ctx, ++done, total);
        }
    for (size_t i = 0; i < (size_t)(oh * ow); i++)
        for (int c = 0; c < 3; c++) out[i * 3 + c] /= wsum[i];
    rc = 0;
done:
    free(ox);
    free(wsum);
    free(tin);
    free(tout);
    return rc;
}
