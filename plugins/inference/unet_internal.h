/* plugins/inference/unet_internal.h - the resolved weight tree of a unet,
 * shared by the builder (unet_build.c), the layers (unet_layers.c) and the
 * top-level forward pass (unet.c). Not used outside the UNet files. */
#ifndef SDRT_INFERENCE_UNET_INTERNAL_H
#define SDRT_INFERENCE_UNET_INTERNAL_H

#include "unet.h"

/* Weights point into the model's host memory, or into `unet.owned` for the
 * small parameters converted to f32 and the reshaped 1x1 conv views. */
typedef struct unet_linear {
    const sdrt_tensor *w; /* [out, in] */
    const sdrt_tensor *b; /* [out] f32, or NULL */
} unet_linear;

typedef struct unet_conv {
    const sdrt_tensor *w; /* [out, in, k, k] */
    const sdrt_tensor *b; /* [out] f32 */
    int stride, pad;
} unet_conv;

typedef struct unet_norm {
    const sdrt_tensor *g, *b; /* f32 [C] */
    int groups;               /* group norm only */
    float eps;
} unet_norm;

typedef struct unet_resnet {
    int cin, cout;
    unet_norm norm1, norm2;
    unet_conv conv1, conv2;
    unet_linear temb;      /* time_emb_proj */
    unet_conv shortcut;    /* w NULL when cin == cout */
    float out_scale;
} unet_resnet;

typedef struct unet_attn {
    int heads, head_dim;
    unet_linear q, k, v, out;
    int kv_from_context;   /* cross attention (attn2, or attn1 when only_cross) */
} unet_attn;

typedef struct unet_tblock {
    unet_norm ln1, ln2, ln3;
    unet_attn attn1, attn2;
    unet_linear ff_in, ff_out;  /* GEGLU proj, output */
} unet_tblock;

typedef struct unet_transformer {
    int channels;
    unet_norm norm;
    unet_linear proj_in, proj_out; /* 1x1 convs are viewed as linears */
    int depth;
    unet_tblock *blocks;
} unet_transformer;

typedef struct unet_block {
    int nlayers;
    unet_resnet *resnets;
    unet_transformer *attns;   /* nlayers entries, or NULL */
    int has_sampler;           /* Downsample2D / Upsample2D */
    unet_conv sampler;
} unet_block;

typedef struct unet_owned unet_owned; /* memory the unet allocated itself */

struct unet {
    unet_config cfg;
    unet_conv conv_in, conv_out;
    unet_norm norm_out;
    unet_linear time1, time2;
    unet_linear add1, add2;     /* SDXL add_embedding */
    unet_block down[UNET_MAX_BLOCKS];
    unet_block up[UNET_MAX_BLOCKS];
    unet_resnet mid_res[2];
    unet_transformer mid_attn;
    unet_owned *owned;
};

/* Layers (unet_layers.c). Each returns a new tensor owned by nn, or NULL
 * once nn has failed; inputs are borrowed and never dropped. */
sdrt_tensor *unet_conv_fwd(sdrt_nn *nn, const unet_conv *c, const sdrt_tensor *x);
sdrt_tensor *unet_linear_fwd(sdrt_nn *nn, const unet_linear *l, const sdrt_tensor *x);
sdrt_tensor *unet_resnet_fwd(sdrt_nn *nn, const unet_resnet *r, const sdrt_tensor *x,
                             const sdrt_tensor *temb_act);
sdrt_tensor *unet_transformer_fwd(sdrt_nn *nn, const unet_transformer *t, const sdrt_tensor *x,
                                  const sdrt_tensor *context);
/* Nearest 2x upsampling cropped to out_h x out_w (<= 2h x 2w), then conv. */
sdrt_tensor *unet_upsample_fwd(sdrt_nn *nn, const unet_conv *c, const sdrt_tensor *x,
                               int64_t out_h, int64_t out_w);

#endif /* SDRT_INFERENCE_UNET_INTERNAL_H */
