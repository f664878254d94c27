/* plugins/inference/unet.h - diffusers UNet2DConditionModel over sdrt_nn.
 *
 * Internal to the inference plugin. A unet is built from the text of a
 * diffusers `unet/config.json` and a lookup of weights by their diffusers
 * names; it covers the SD1.x, SD2.x and SDXL (base and refiner)
 * architectures. Building resolves and shape-checks every weight up front,
 * so a forward pass cannot fail on a missing tensor.
 *
 * Thread: a unet is immutable after unet_new; several threads may run
 * unet_forward at once, each with its own sdrt_nn context.
 */
#ifndef SDRT_INFERENCE_UNET_H
#define SDRT_INFERENCE_UNET_H

#include <stddef.h>

#include "sdrt/nn.h"
#include "sdrt/status.h"
#include "sdrt/tensor.h"

#define UNET_MAX_BLOCKS 8

/* Returns the weight named `name` (diffusers naming, e.g.
 * "down_blocks.0.resnets.0.conv1.weight") in host memory, or NULL when the
 * model has none. The tensor must stay valid as long as the unet. */
typedef const sdrt_tensor *(*unet_weight_fn)(void *ctx, const char *name);

/* The parts of config.json the forward pass depends on, resolved to the
 * per-block values diffusers derives from it. */
typedef struct unet_config {
    int in_channels, out_channels;
    int nblocks;
    int block_out[UNET_MAX_BLOCKS];
    int down_attn[UNET_MAX_BLOCKS];   /* CrossAttnDownBlock2D? */
    int up_attn[UNET_MAX_BLOCKS];     /* CrossAttnUpBlock2D? (up order) */
    int layers_down[UNET_MAX_BLOCKS]; /* resnets per down block */
    int heads[UNET_MAX_BLOCKS];       /* attention heads per down block */
    int cross_dim[UNET_MAX_BLOCKS];   /* cross_attention_dim per down block */
    int only_cross[UNET_MAX_BLOCKS];  /* per down block */
    int tlayers_down[UNET_MAX_BLOCKS];
    /* Transformer depth per up block and layer (up order). */
    int tlayers_up[UNET_MAX_BLOCKS][UNET_MAX_BLOCKS];
    int has_mid;
    int norm_groups;
    float norm_eps;
    int flip_sin_to_cos;
    float freq_shift;
    int time_embed_dim;
    int use_linear_projection;
    int text_time;              /* addition_embed_type == "text_time" */
    int addition_time_embed_dim;
    int add_embed_in;           /* projection_class_embeddings_input_dim */
    float resnet_out_scale;
    float mid_scale;
    int conv_in_kernel, conv_out_kernel;
    int downsample_padding;
    int center_input_sample;
} unet_config;

/* Parses config.json text. Returns SDRT_OK, SDRT_INVALID_ARGUMENT (a field
 * of the wrong type or range) or SDRT_UNSUPPORTED (a feature SD does not
 * use, e.g. class embeddings), writing a message naming the field to err. */
sdrt_status unet_config_parse(const char *config_json, unet_config *cfg, char *err, size_t errlen);

typedef struct unet unet;

/* Builds a unet. `config_json` is borrowed for the call; `get`/`ctx` are
 * used during the call only, the tensors they return must outlive the unet.
 * On success stores a new unet (free with unet_free) and returns SDRT_OK;
 * otherwise SDRT_INVALID_ARGUMENT / SDRT_UNSUPPORTED (config),
 * SDRT_NOT_FOUND (a weight is missing), SDRT_INVALID_ARGUMENT (a weight has
 * the wrong shape or dtype) or SDRT_RESOURCE_EXHAUSTED, with err set. */
sdrt_status unet_new(const char *config_json, unet_weight_fn get, void *ctx, unet **out,
                     char *err, size_t errlen);
void unet_free(unet *u);

const unet_config *unet_get_config(const unet *u);
/* Skip connections of the model (what unet_inputs.n_down_residuals must be). */
int unet_n_skips_of(const unet *u);

/* Inputs of one evaluation. Tensors live on the nn context's device. */
typedef struct unet_inputs {
    const sdrt_tensor *sample;       /* [B, in_channels, h, w] f32 */
    const float *timesteps;          /* host [B] */
    const sdrt_tensor *context;      /* encoder_hidden_states [B, L, cross_dim] */
    const sdrt_tensor *text_embeds;  /* SDXL pooled [B, P]; NULL otherwise */
    /* SDXL host [B, k]; k = (projection_class_embeddings_input_dim - P) /
     * addition_time_embed_dim: 6 for the base model, 5 for the refiner. */
    const float *time_ids;
    /* Optional ControlNet residuals (summed over the ControlNets, scaled):
     * one per skip connection in down order (conv_in output, then every
     * down layer and sampler output), and the mid block's. NULL: none. */
    sdrt_tensor *const *down_residuals;
    int n_down_residuals;
    const sdrt_tensor *mid_residual;
} unet_inputs;

/* Runs the model once. On success stores the noise prediction
 * [B, out_channels, h, w] (owned by `nn`; drop it with sdrt_nn_drop) and
 * returns SDRT_OK. Returns SDRT_INVALID_ARGUMENT for inputs of the wrong
 * shape, SDRT_CANCELLED when the nn context's cancellation hook fired, or
 * the backend's status, with err set. Every intermediate is dropped. */
sdrt_status unet_forward(const unet *u, sdrt_nn *nn, const unet_inputs *in, sdrt_tensor **out,
                         char *err, size_t errlen);

/* Multiply-accumulate count of one forward pass for batch `batch`, latent
 * h x w and context length `ctx_len` (for benchmarks: FLOPs = 2 x MACs). */
double unet_macs(const unet *u, int batch, int h, int w, int ctx_len);

#endif /* SDRT_INFERENCE_UNET_H */
