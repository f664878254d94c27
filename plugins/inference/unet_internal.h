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

/* The encoder half (conv_in, time and SDXL add embeddings, down blocks,
 * mid block), bound or run the same way for the UNet and for a ControlNet
 * (controlnet.c), whose encoder half is a UNet's. */
void unet_bind_encoder(sdrt_blk_loader *L, struct unet *u);
sdrt_status unet_check_inputs(const unet_config *cfg, const unet_inputs *in, char *err, size_t errlen);
/* silu(time_embedding(...) [+ add_embedding(...)]), [B, time_embed_dim]. */
sdrt_tensor *unet_time_act(const struct unet *u, sdrt_nn *nn, const unet_inputs *in);
/* Down blocks then the mid block from h (the conv_in output, pushed as the
 * first skip and so owned by skips): every down output is pushed onto
 * skips[*nskips...] (the caller drops them); *mid gets the mid block's
 * output (NULL without one). Returns 1, or 0 when an op failed. */
int unet_encoder_fwd(const struct unet *u, sdrt_nn *nn, sdrt_tensor *h, const sdrt_tensor *temb_act,
                     const sdrt_tensor *context, sdrt_tensor **skips, int *nskips, sdrt_tensor **mid);
/* Skip connections of the config: conv_in, each down layer and sampler. */
int unet_n_skips(const unet_config *cfg);
#define UNET_MAX_SKIPS (1 + UNET_MAX_BLOCKS * (UNET_MAX_BLOCKS + 1))

#endif /* SDRT_INFERENCE_UNET_INTERNAL_H */
