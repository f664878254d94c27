/* plugins/inference/unet_internal.h - the resolved weight tree of a unet,
 * shared by the builder (unet_build.c), the forward pass (unet.c) and the
 * cost model (unet_cost.c). Not used outside the UNet files. */
#ifndef SDRT_INFERENCE_UNET_INTERNAL_H
#define SDRT_INFERENCE_UNET_INTERNAL_H

#include "sdrt/nn_blocks.h"
#include "unet.h"

/* The UNet is a builder over the SDK block library: the structs below are
 * bound by unet_build.c and run by unet.c; converted parameters and block
 * arrays live in `mem`. */
struct unet {
    unet_config cfg;
    sdrt_blk_conv conv_in, conv_out;
    sdrt_blk_norm norm_out;
    sdrt_blk_temb time;         /* time_embedding */
    sdrt_blk_temb add;          /* SDXL add_embedding */
    sdrt_blk_stage down[UNET_MAX_BLOCKS];
    sdrt_blk_stage up[UNET_MAX_BLOCKS];
    sdrt_blk_mid mid;           /* nlayers 0 when !cfg.has_mid */
    sdrt_blk_mem *mem;
};

#endif /* SDRT_INFERENCE_UNET_INTERNAL_H */
