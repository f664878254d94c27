/* upscale.h - postprocess.upscale internals (module prefix up_): upscaler
 * networks (upscale_net.c), tiling with blended seams (upscale_tile.c) and
 * the message (upscale_msg.c); resizing is sdrt/resample.h. */
#ifndef PP_UPSCALE_H
#define PP_UPSCALE_H

#include <stddef.h>
#include <stdint.h>

#include "pickle.h"
#include "safetensors.h"
#include "sdrt/nn.h"

#define UP_MAX_BLOCKS 64
#define UP_MAX_UPS 4
#define UP_MAX_CONVS 64

typedef enum up_arch { UP_ARCH_RRDB, UP_ARCH_COMPACT } up_arch;

/* A loaded upscaler: the file's tensors (kept open: the network's weights
 * point into them), the detected architecture and its hyper-parameters.
 * Any thread; immutable after up_model_open, so tiles may share it. */
typedef struct up_model {
    st_file *st;              /* exactly one of st / pt is set */
    pt_file *pt;
    char prefix[32];          /* "params_ema." etc. stripped from names */
    up_arch arch;
    const char *style;        /* key layout: "ESRGAN", "Real-ESRGAN", "BSRGAN", "SRVGGNetCompact" */
    int scale;                /* output pixels per input pixel per side */
    int in_nc, out_nc, nf;
    /* RRDB */
    int nb, gc, n_up, shuffle;
    const st_tensor *first[2], *trunk[2], *up[UP_MAX_UPS][2], *hr[2], *last[2];
    const st_tensor *rdb[UP_MAX_BLOCKS][3][5][2];
    /* Compact: convs[0..n_convs) interleaved with PReLU slopes, then the last conv. */
    int n_convs;
    const st_tensor *conv[UP_MAX_CONVS + 2][2], *prelu[UP_MAX_CONVS + 1];
} up_model;

/* Opens `path` (.safetensors, or .pt/.pth through the restricted unpickler)
 * and detects the architecture from its tensor names and shapes, as
 * spandrel does. Returns 0, or -1 with err naming the file and, for an
 * unknown architecture, the key sets that did not match. *out is owned by
 * the caller (up_model_close). */
int up_model_open(const char *path, const sdrt_file_scope *scope, up_model **out, char *err, size_t errlen);
void up_model_close(up_model *m);
/* "ESRGAN x4 (Real-ESRGAN keys, 64nf 23nb)"-style description. */
void up_model_describe(const up_model *m, char *buf, size_t len);

/* Runs the network on one image/tile: in = [h,w,3] float RGB in 0..1 (host),
 * out = [h*scale, w*scale, 3] (host, caller-allocated), raw network output
 * (not clamped). Returns 0, or -1 with the nn context's error in err. */
int up_model_run(const up_model *m, sdrt_nn *nn, const float *in, int h, int w, float *out, char *err,
                 size_t errlen);

/* ---- upscale_tile.c ---- */
typedef struct up_tiling {
    int tile;     /* input pixels per tile side; 0 = one pass over the whole image */
    int overlap;  /* input pixels shared by neighbouring tiles */
    void (*on_tile)(void *ctx, int done, int total);
    void *ctx;
} up_tiling;

/* Upscales in [h,w,3] into out [h*s,w*s,3] tile by tile: each tile runs
 * alone, and overlaps are blended with linear ramps across the overlap, so
 * memory is one tile's activations plus the output and a weight plane.
 * Returns 0 or -1 with err. */
int up_run_tiled(const up_model *m, sdrt_nn *nn, const up_tiling *t, const float *in, int h, int w,
                 float *out, char *err, size_t errlen);

#endif
