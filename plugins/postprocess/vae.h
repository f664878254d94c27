/* vae.h - AutoencoderKL (diffusers) over the SDK block library: internal to the postprocess
 * plugin. Weights are looked up by diffusers names inside the "vae"
 * component ("decoder.conv_in.weight"), through a callback so that tests can
 * feed weights from any store. */
#ifndef PP_VAE_H
#define PP_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/nn.h"
#include "sdrt/nn_blocks.h"

#define VAE_MAX_BLOCKS 8

typedef struct vae_config {
    int block_out[VAE_MAX_BLOCKS];
    int n_blocks;
    int layers_per_block;
    int in_channels;      /* image channels, 3 */
    int out_channels;     /* image channels, 3 */
    int latent_channels;
    int norm_groups;
    float scaling_factor;
    float shift_factor;   /* 0 when the config has none (null) */
    int force_upcast;     /* diffusers' flag (default true): the VAE's streams run
                           * in "precision" f32 whatever the request asks */
    int use_quant_conv;
    int use_post_quant_conv;
} vae_config;

/* Parses a diffusers vae/config.json text. Returns 0, or -1 with a message
 * naming the field in err. */
int vae_config_parse(const char *json, vae_config *cfg, char *err, size_t errlen);

/* Returns the weight `name` (diffusers naming inside the VAE) or NULL. */
typedef const sdrt_tensor *(*vae_weight_fn)(void *ctx, const char *name);

/* The bound blocks of the Encoder or the Decoder (sdrt/nn_blocks.h). */
typedef struct vae_coder {
    int bound;
    sdrt_blk_conv quant;        /* quant_conv / post_quant_conv; w NULL when unused */
    sdrt_blk_conv conv_in, conv_out;
    sdrt_blk_stage blocks[VAE_MAX_BLOCKS];
    sdrt_blk_mid mid;
    sdrt_blk_norm norm_out;
} vae_coder;

/* One run of the network: the compute context, the weights, and the first
 * failure (sticky: once status != OK every function returns NULL/-1). */
typedef struct vae_net {
    const vae_config *cfg;
    sdrt_nn *nn;
    vae_weight_fn weight;
    void *weight_ctx;
    sdrt_status status;
    char message[320];
    /* Encoder and decoder blocks, bound from the weights on first use;
     * their converted parameters live in `mem` until vae_net_release. */
    vae_coder enc, dec;
    sdrt_blk_mem *mem;
} vae_net;

void vae_net_init(vae_net *v, const vae_config *cfg, sdrt_nn *nn, vae_weight_fn weight, void *ctx);
/* Frees what the net made (the bound blocks and their f32 parameters);
 * after sdrt_nn_free of its context, which may still reference them. */
void vae_net_release(vae_net *v);

/* Decoder on unscaled latents z [N,C,h,w] (already divided by the scaling
 * factor): post_quant_conv + decoder. Returns [N,3,8h,8w] in model range
 * (about [-1,1]) or NULL. z is borrowed. */
sdrt_tensor *vae_decode_tensor(vae_net *v, const sdrt_tensor *z);
/* Encoder on images x [N,3,H,W] in [-1,1]: encoder + quant_conv. Returns the
 * moments [N,2C,H/8,W/8] (mean, then logvar) or NULL. */
sdrt_tensor *vae_encode_tensor(vae_net *v, const sdrt_tensor *x);

/* Host wrappers: upload, run, download. out must hold the full result.
 * Return 0 or -1 (v->status/message set). */
int vae_decode_host(vae_net *v, const float *z, int n, int h, int w, float *out);
int vae_encode_host(vae_net *v, const float *x, int n, int h, int w, float *moments);

/* Records a failure on v (first one wins). Returns -1. */
int vae_fail(vae_net *v, sdrt_status st, const char *fmt, ...);

/* ---- tiling (vae_tiled.c) ---- */

typedef struct vae_tiling {
    int enabled;
    int tile;     /* tile edge in image pixels, multiple of 8 */
    int overlap;  /* image pixels, multiple of 8, < tile */
    /* Called after each tile (may be NULL). */
    void (*on_tile)(void *ctx, int done, int total);
    void *ctx;
} vae_tiling;

/* Estimated peak activation bytes of an untiled decode of [n,C,h,w] latents
 * (encode of an [n,3,8h,8w] image is about the same). */
uint64_t vae_activation_bytes(const vae_config *cfg, int n, int h, int w);

/* Decode / encode with the tiling given (t->enabled 0 runs untiled). z and
 * out as in vae_decode_host; x and moments as in vae_encode_host. */
int vae_decode_tiled(vae_net *v, const vae_tiling *t, const float *z, int n, int h, int w, float *out);
int vae_encode_tiled(vae_net *v, const vae_tiling *t, const float *x, int n, int h, int w,
                     float *moments);

/* ---- DiagonalGaussian (vae_latent.c) ---- */

/* From moments [n,2C,h,w] writes z [n,C,h,w] = mean (noise NULL) or
 * mean + exp(0.5 * clamp(logvar,-30,20)) * noise. */
void vae_gaussian_sample(const float *moments, const float *noise, int n, int c, int h, int w,
                         float *z);
/* latents for the UNet -> decoder input: x / scaling_factor + shift_factor. */
void vae_unscale_latents(const vae_config *cfg, const float *latents, size_t count, float *z);
/* encoder output -> latents for the UNet: (z - shift_factor) * scaling_factor. */
void vae_scale_latents(const vae_config *cfg, float *z, size_t count);
/* Decoder output [n,3,H,W] -> images [n,H,W,3]: (x/2+0.5).clamp(0,1). */
void vae_to_images(const float *raw, int n, int h, int w, float *rgb);
/* images [n,H,W,3] in [0,1] -> encoder input [n,3,H,W] in [-1,1]. */
void vae_from_images(const float *rgb, int n, int h, int w, float *x);

#endif
