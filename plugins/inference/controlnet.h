/* plugins/inference/controlnet.h - diffusers ControlNetModel over sdrt_nn.
 *
 * Internal to the inference plugin. A ControlNet is a UNet's encoder half
 * (conv_in, time embeddings, down blocks, mid block: bound and run by the
 * UNet's own code, unet_bind_encoder / unet_encoder_fwd, over the SDK block
 * library) plus the conditioning image encoder (controlnet_cond_embedding)
 * and one 1x1 zero-conv per skip connection and for the mid block. Its
 * outputs are the residuals unet_inputs.down_residuals / mid_residual take.
 *
 * Thread: immutable after controlnet_new; several threads may run
 * controlnet_forward at once, each with its own sdrt_nn context. */
#ifndef SDRT_INFERENCE_CONTROLNET_H
#define SDRT_INFERENCE_CONTROLNET_H

#include "unet.h"

typedef struct controlnet controlnet;

/* Builds from the text of a diffusers ControlNetModel config.json (the
 * UNet fields plus conditioning_embedding_out_channels,
 * conditioning_channels, controlnet_conditioning_channel_order,
 * global_pool_conditions) and weights by diffusers name. Returns SDRT_OK,
 * or INVALID_ARGUMENT / UNSUPPORTED (config: "bgr" channel order and
 * global_pool_conditions are refused) / NOT_FOUND (a weight is missing)
 * with err naming the field or tensor. */
sdrt_status controlnet_new(const char *config_json, unet_weight_fn get, void *ctx, controlnet **out, char *err,
                           size_t errlen);
void controlnet_free(controlnet *c);
const unet_config *controlnet_get_config(const controlnet *c);
/* Channels of the conditioning image (3). */
int controlnet_cond_channels(const controlnet *c);
/* How many times larger than the latents the control image is: one
 * stride-2 conv per conditioning embedding stage after the first (8 for
 * every published ControlNet, the VAE's factor). */
int controlnet_cond_factor(const controlnet *c);
/* Residuals produced per forward: unet_n_skips of the config. */
int controlnet_n_down(const controlnet *c);

/* One evaluation. `in` as for the UNet (sample, timesteps, context, SDXL
 * text_embeds/time_ids; its residual fields are ignored); `cond` is the
 * control image [B, 3, f*h, f*w] in [0, 1] (f = controlnet_cond_factor). Residuals are multiplied by
 * `scale` (conditioning_scale), with guess_mode by diffusers' logspace(-1,
 * 0) ramp times scale. On success down[0..controlnet_n_down) and *mid are
 * owned by `nn` (drop them). */
sdrt_status controlnet_forward(const controlnet *c, sdrt_nn *nn, const unet_inputs *in, const sdrt_tensor *cond,
                               float scale, int guess_mode, sdrt_tensor **down, sdrt_tensor **mid, char *err,
                               size_t errlen);

#endif /* SDRT_INFERENCE_CONTROLNET_H */
