/* vae_tiled.c - tiled VAE decode/encode for images whose activations do not
 * fit the memory budget.
 *
 * The input is cut into overlapping tiles; each is run through the network
 * alone and written into the output with a weight that ramps linearly across
 * every overlap with a neighbour (a crossfade: the two weights sum to one),
 * then normalised by the accumulated weight. Tile edges, which lack context,
 * get the least weight. Group norms see one tile at a time, so the result is
 * close to, not identical with, an untiled run (tests/vae states the error).
 */
#include <stdlib.h>
#include <string.h>

#include "vae.h"

typedef int (*vae_run_fn)(vae_net *v, const float *in, int n, int h, int w, float *out);

/* Geometry of one run: input planes [n,cin,h,w] map to [n,cout,h*num/den,...]. */
typedef struct tile_job {
    vae_net *v;
    vae_run_fn run;
    int n, cin, cout, h, w;
    int num, den;
    int tile, overlap; /* input units */
} tile_job;

#define MAX_TILES 4096

/* Starts of tiles of length `tile` covering [0,len) with at least `overlap`;
 * the last one is pulled back to end at len. Returns the count. */
static int tile_starts(int len, int tile, int overlap, int *starts) {
    if (len <= tile) {
        starts[0] = 0;
        return 1;
    }
    int stride = tile - overlap, k = 0;
    for (int s = 0; k < MAX_TILES - 1; s += stride) {
        if (s + tile >= len) {
            starts[k++] = len - tile;
            break;
        }
        starts[k++] = s;
    }
    return k;
}

/* Linear crossfade weight of output index i in a tile of `len` output
 * pixels overlapping `prev` pixels with the previous tile and `next` with
 * the following one. */
static float ramp(int i, int len, int prev, int next) {
    float w = 1.f;
    if (prev > 0 && i < prev) w = (i + 0.5f) / prev;
    if (next > 0 && i >= len - next) {
        float d = (len - i - 0.5f) / next;
        if (d < w) w = d;
    }
    return w;
}

static void copy_in(const tile_job *j, const float *in, int y0, int x0, int th, int tw, float *dst) {
    for (int b = 0; b < j->n * j->cin; b++)
        for (int y = 0; y < th; y++)
            memcpy(dst + ((size_t)b * th + y) * tw, in + ((size_t)b * j->h + y0 + y) * j->w + x0,
                   (size_t)tw * sizeof *dst);
}

/* Overlap (output pixels) of tile k with its neighbours along one axis. */
static void overlaps(const int *starts, int count, int k, int tile, int len, const tile_job *j,
                     int *prev, int *next) {
    int ext = len < tile ? len : tile;
    *prev = k > 0 ? (starts[k - 1] + ext - starts[k]) * j->num / j->den : 0;
    *next = k + 1 < count ? (starts[k] + ext - starts[k + 1]) * j->num / j->den : 0;
}

static void accumulate(const tile_job *j, const float *tile_out, int oy0, int ox0, int oth, int otw,
                       const float *wy, const float *wx, float *acc, float *wsum) {
    int oh = j->h * j->num / j->den, ow = j->w * j->num / j->den;
    for (int y = 0; y < oth; y++)
        for (int x = 0; x < otw; x++) {
            float wt = wy[y] * wx[x];
            size_t o = (size_t)(oy0 + y) * ow + ox0 + x;
            wsum[o] += wt;
            for (int b = 0; b < j->n * j->cout; b++)
                acc[(size_t)b * oh * ow + o] += wt * tile_out[((size_t)b * oth + y) * otw + x];
        }
}

typedef struct tile_bufs {
    float *in, *out, *wy, *wx;
} tile_bufs;

static int run_tiles(const tile_job *j, const vae_tiling *t, const float *in, float *acc, float *wsum,
                     const int *ys, int ny, const int *xs, int nx, tile_bufs *bf) {
    int th = j->h < j->tile ? j->h : j->tile, tw = j->w < j->tile ? j->w : j->tile;
    int oth = th * j->num / j->den, otw = tw * j->num / j->den;
    for (int ky = 0; ky < ny; ky++)
        for (int kx = 0; kx < nx; kx++) {
            int py, ny_, px, nx_;
            overlaps(ys, ny, ky, j->tile, j->h, j, &py, &ny_);
            overlaps(xs, nx, kx, j->tile, j->w, j, &px, &nx_);
            for (int i = 0; i < oth; i++) bf->wy[i] = ramp(i, oth, py, ny_);
            for (int i = 0; i < otw; i++) bf->wx[i] = ramp(i, otw, px, nx_);
            copy_in(j, in, ys[ky], xs[kx], th, tw, bf->in);
            if (j->run(j->v, bf->in, j->n, th, tw, bf->out)) return -1;
            accumulate(j, bf->out, ys[ky] * j->num / j->den, xs[kx] * j->num / j->den, oth, otw,
                       bf->wy, bf->wx, acc, wsum);
            if (t->on_tile) t->on_tile(t->ctx, ky * nx + kx + 1, ny * nx);
        }
    return 0;
}

static void normalise(const tile_job *j, float *acc, const float *wsum) {
    size_t plane = (size_t)(j->h * j->num / j->den) * (j->w * j->num / j->den);
    for (int b = 0; b < j->n * j->cout; b++)
        for (size_t i = 0; i < plane; i++) acc[(size_t)b * plane + i] /= wsum[i];
}

static int run_tiled(const tile_job *j, const vae_tiling *t, const float *in, float *out) {
    static const int max_tiles = MAX_TILES;
    int *ys = malloc(sizeof(int) * max_tiles), *xs = malloc(sizeof(int) * max_tiles);
    int ny = ys ? tile_starts(j->h, j->tile, j->overlap, ys) : 0;
    int nx = xs ? tile_starts(j->w, j->tile, j->overlap, xs) : 0;
    int th = j->h < j->tile ? j->h : j->tile, tw = j->w < j->tile ? j->w : j->tile;
    size_t oth = (size_t)th * j->num / j->den, otw = (size_t)tw * j->num / j->den;
    size_t oplane = (size_t)(j->h * j->num / j->den) * (j->w * j->num / j->den);
    tile_bufs bf = {
        malloc(sizeof(float) * j->n * j->cin * th * tw), malloc(sizeof(float) * j->n * j->cout * oth * otw),
        malloc(sizeof(float) * oth), malloc(sizeof(float) * otw)};
    float *wsum = calloc(oplane, sizeof *wsum);
    int rc = -1;
    if (!ys || !xs || !bf.in || !bf.out || !bf.wy || !bf.wx || !wsum) {
        vae_fail(j->v, SDRT_RESOURCE_EXHAUSTED, "vae tiling: out of host memory");
    } else {
        memset(out, 0, sizeof(float) * j->n * j->cout * oplane);
        rc = run_tiles(j, t, in, out, wsum, ys, ny, xs, nx, &bf);
        if (!rc) normalise(j, out, wsum);
    }
    free(ys), free(xs), free(bf.in), free(bf.out), free(bf.wy), free(bf.wx), free(wsum);
    return rc;
}

int vae_decode_tiled(vae_net *v, const vae_tiling *t, const float *z, int n, int h, int w, float *out) {
    if (!t || !t->enabled) return vae_decode_host(v, z, n, h, w, out);
    tile_job j = {v, vae_decode_host, n, v->cfg->latent_channels, v->cfg->out_channels, h, w, 8, 1,
                  t->tile / 8, t->overlap / 8};
    return run_tiled(&j, t, z, out);
}

int vae_encode_tiled(vae_net *v, const vae_tiling *t, const float *x, int n, int h, int w,
                     float *moments) {
    if (!t || !t->enabled) return vae_encode_host(v, x, n, h, w, moments);
    tile_job j = {v, vae_encode_host, n, v->cfg->in_channels, 2 * v->cfg->latent_channels, h, w, 1, 8,
                  t->tile, t->overlap};
    return run_tiled(&j, t, x, moments);
}

uint64_t vae_activation_bytes(const vae_config *cfg, int n, int h, int w) {
    /* Peak over the decoder's stages: a resnet holds its input, a normed copy
     * and a conv output; an upsample holds its 4x larger result and conv. */
    uint64_t peak = 0, res = (uint64_t)h * w, cin = (uint64_t)cfg->block_out[cfg->n_blocks - 1];
    for (int i = 0; i < cfg->n_blocks; i++) {
        uint64_t cout = (uint64_t)cfg->block_out[cfg->n_blocks - 1 - i];
        uint64_t b = res * (cin + 2 * cout);
        if (i < cfg->n_blocks - 1) {
            uint64_t up = 4 * res * cout * 2 + res * cout;
            if (up > b) b = up;
            res *= 4;
        }
        if (b > peak) peak = b;
        cin = cout;
    }
    return peak * 4 * (uint64_t)n;
}
