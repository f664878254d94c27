/* sdrt/nn_blocks.h - the network blocks of the diffusers / transformers
 * models, written once over sdrt/nn.h: ResnetBlock2D, Attention,
 * BasicTransformerBlock, Transformer2DModel, TimestepEmbedding,
 * Downsample2D / Upsample2D, the down / up / mid blocks of the UNet and the
 * VAE, and the CLIP encoder layer.
 *
 * Part of the helper library (`sdrt_helpers`), not of the binary ABI. A
 * model is a builder over it: it walks its config, binds each block's
 * weights by name (sdrt_blk_bind_*), keeps the bound structs, and runs the
 * blocks' forward functions (sdrt_blk_*_fwd) with an sdrt_nn context.
 *
 * Binding. Every weight is looked up as "<prefix>.<leaf>" in diffusers /
 * transformers naming through the model's lookup function, shape-checked
 * against what the config implies, and kept as the host tensor the lookup
 * returned (weights in their stored dtype, usually an mmap). 1-D parameters
 * (biases, norm scales) in f16/bf16 are converted to f32 in ONE place,
 * sdrt_blk_bind_param, because the element-wise ops take f32 parameters;
 * when the backend ops take half parameters that conversion goes away
 * there. A failed bind records the first error (status + message naming
 * the tensor) in the loader; later binds do nothing, so a builder checks
 * once at the end.
 *
 * Forward. Every weight is turned into an operand with sdrt_nn_weight() at
 * use, never cached in the structs, so the nn layer decides where weights
 * live. Unless a function says otherwise it borrows its inputs and returns
 * a new tensor owned by the nn context (release with sdrt_nn_drop), or NULL
 * once the context has failed (its sticky status says why). Temporaries are
 * dropped as soon as they are consumed, so peak memory stays near two
 * activations of the largest layer.
 *
 * Thread: bound structs are immutable after binding and may be used by
 * several threads at once, each with its own sdrt_nn context. A loader is
 * used by one thread. No global state.
 * Ownership: memory the binders allocate (converted parameters, weight
 * views, block arrays) belongs to the sdrt_blk_mem list the loader was
 * given and lives until sdrt_blk_mem_free; the host tensors the lookup
 * returns must outlive the bound structs.
 */
#ifndef SDRT_NN_BLOCKS_H
#define SDRT_NN_BLOCKS_H

#include <stddef.h>

#include "sdrt/nn.h"
#include "sdrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- binding ------------------------------------------------------------ */

/* Returns the host weight `name`, or NULL when the model has none. */
typedef const sdrt_tensor *(*sdrt_blk_lookup_fn)(void *ctx, const char *name);

/* Allocations made while binding; NULL is the empty list. */
typedef struct sdrt_blk_mem sdrt_blk_mem;
/* Frees every allocation of the list. NULL: no-op. */
void sdrt_blk_mem_free(sdrt_blk_mem *mem);

typedef struct sdrt_blk_loader {
    sdrt_blk_lookup_fn get;
    void *ctx;
    const char *model;   /* "unet", "vae", "text encoder": starts messages */
    sdrt_blk_mem **mem;  /* list receiving the allocations */
    sdrt_status status;  /* first failure, SDRT_OK if none */
    char message[320];   /* "<model> weight <name>: <reason>" */
} sdrt_blk_loader;

/* A loader over `get` (not NULL) and `ctx` (passed through; both borrowed
 * for the loader's life) that adds its allocations to *mem (mem not NULL,
 * *mem may be NULL). `model` (static text, NULL: "model") starts messages. */
void sdrt_blk_loader_init(sdrt_blk_loader *L, const char *model, sdrt_blk_lookup_fn get, void *ctx,
                          sdrt_blk_mem **mem);
/* Records a failure (the first one wins); the message is "<model> <text>". */
void sdrt_blk_fail(sdrt_blk_loader *L, sdrt_status st, const char *fmt, ...) SDRT_PRINTF(3, 4);
/* `size` zeroed bytes owned by the loader's list, or NULL (loader failed). */
void *sdrt_blk_alloc(sdrt_blk_loader *L, size_t size);

/* out (256 chars) = "<prefix>.<fmt...>", or just fmt when prefix is "". */
#define SDRT_BLK_NAME 256
void sdrt_blk_name(char *out, const char *prefix, const char *fmt, ...) SDRT_PRINTF(3, 4);

/* Binders: each records its first failure in L (status and a message
 * naming the tensor) and returns NULL / a zeroed struct then; once L has
 * failed they do nothing. Statuses: SDRT_NOT_FOUND (a required tensor is
 * missing), SDRT_INVALID_ARGUMENT (shape or dtype differs from what the
 * config implies), SDRT_RESOURCE_EXHAUSTED (host memory). Returned tensors
 * are the lookup's (they live as long as the model) or the list's. */

/* The weight "<prefix>.<leaf>" of shape [shape0..] in f32/f16/bf16, as
 * stored. */
const sdrt_tensor *sdrt_blk_bind_weight(sdrt_blk_loader *L, const char *prefix, const char *leaf, int ndim,
                                        const int64_t *shape);
/* The 1-D parameter "<prefix>.<leaf>" of n elements as contiguous f32 (the
 * one place where f16/bf16 parameters are converted). `required` 0: NULL
 * without failing when the model has none. */
const sdrt_tensor *sdrt_blk_bind_param(sdrt_blk_loader *L, const char *prefix, const char *leaf, int64_t n,
                                       int required);

/* ---- parameter structs ---------------------------------------------------- */

typedef struct sdrt_blk_linear {
    const sdrt_tensor *w; /* [out, in]; NULL: the block has no such layer */
    const sdrt_tensor *b; /* [out] f32, or NULL */
} sdrt_blk_linear;

typedef struct sdrt_blk_conv {
    const sdrt_tensor *w; /* [out, in, k, k]; NULL: no such layer */
    const sdrt_tensor *b; /* [out] f32 */
    int stride, pad;
} sdrt_blk_conv;

typedef struct sdrt_blk_norm {
    const sdrt_tensor *g, *b; /* [C] f32 */
    int groups;               /* GroupNorm groups; 0 for LayerNorm */
    float eps;
} sdrt_blk_norm;

enum {
    SDRT_BLK_BIAS_NONE = 0,     /* bias=False */
    SDRT_BLK_BIAS_OPTIONAL = 1, /* bound when the model has one */
    SDRT_BLK_BIAS_REQUIRED = 2
};
enum {
    SDRT_BLK_LINEAR_2D = 1,      /* nn.Linear [out, in] */
    SDRT_BLK_LINEAR_CONV1X1 = 2  /* nn.Conv2d 1x1 [out, in, 1, 1], viewed as [out, in] */
};

/* "<prefix>.weight" ([out, in] and/or [out, in, 1, 1] as `shapes` allows)
 * and "<prefix>.bias" per `bias`. */
sdrt_blk_linear sdrt_blk_bind_linear(sdrt_blk_loader *L, const char *prefix, int64_t out, int64_t in, int bias,
                                     int shapes);
/* A k x k Conv2d with bias. */
sdrt_blk_conv sdrt_blk_bind_conv(sdrt_blk_loader *L, const char *prefix, int64_t out, int64_t in, int k,
                                 int stride, int pad);
/* GroupNorm (groups > 0; checks c % groups) or LayerNorm (groups 0). */
sdrt_blk_norm sdrt_blk_bind_norm(sdrt_blk_loader *L, const char *prefix, int64_t c, int groups, float eps);

sdrt_tensor *sdrt_blk_linear_fwd(sdrt_nn *nn, const sdrt_blk_linear *l, const sdrt_tensor *x);
sdrt_tensor *sdrt_blk_conv_fwd(sdrt_nn *nn, const sdrt_blk_conv *c, const sdrt_tensor *x);
/* GroupNorm (optionally fused with SiLU) or LayerNorm, per n->groups. */
sdrt_tensor *sdrt_blk_norm_fwd(sdrt_nn *nn, const sdrt_blk_norm *n, const sdrt_tensor *x, int silu);

/* ---- ResnetBlock2D -------------------------------------------------------- */

typedef struct sdrt_blk_resnet {
    int cin, cout;
    sdrt_blk_norm norm1, norm2;
    sdrt_blk_conv conv1, conv2;
    sdrt_blk_linear temb;     /* time_emb_proj; w NULL without time embedding */
    sdrt_blk_conv shortcut;   /* conv_shortcut; w NULL when cin == cout */
    float out_scale;          /* output_scale_factor */
} sdrt_blk_resnet;

/* temb_dim 0: no time_emb_proj (the VAE's resnets). */
void sdrt_blk_bind_resnet(sdrt_blk_loader *L, const char *prefix, sdrt_blk_resnet *r, int cin, int cout,
                          int temb_dim, int groups, float eps, float out_scale);
/* (x|shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + temb_proj(temb_act))))) / out_scale.
 * `temb_act` is silu(temb) [B, temb_dim] (computed once per forward pass:
 * every resnet applies the same activation), NULL without time embedding. */
sdrt_tensor *sdrt_blk_resnet_fwd(sdrt_nn *nn, const sdrt_blk_resnet *r, const sdrt_tensor *x,
                                 const sdrt_tensor *temb_act);

/* ---- Attention ---------------------------------------------------------------- */

typedef struct sdrt_blk_attn {
    int heads, head_dim;
    float scale;              /* 0: 1/sqrt(head_dim) */
    int causal;               /* CLIP's causal mask */
    int cross;                /* keys/values from the context (attn2) */
    sdrt_blk_norm group_norm; /* g NULL: none (the VAE's mid attention has one) */
    int residual;             /* residual_connection: adds the input */
    sdrt_blk_linear q, k, v, out;
} sdrt_blk_attn;

typedef struct sdrt_blk_attn_names {
    const char *q, *k, *v, *out; /* leaves under the prefix */
} sdrt_blk_attn_names;
/* diffusers Attention: to_q, to_k, to_v, to_out.0. */
extern const sdrt_blk_attn_names sdrt_blk_diffusers_attn;
/* transformers CLIPAttention: q_proj, k_proj, v_proj, out_proj. */
extern const sdrt_blk_attn_names sdrt_blk_clip_attn;

/* Binds an attention over query width `dim` with keys/values of width
 * `kv_dim`, `heads` heads of dim / heads. `qkv_bias` and `linear_shapes` as
 * in sdrt_blk_bind_linear (the output projection always has a bias). The
 * caller sets scale / causal / cross / residual / group_norm after. */
void sdrt_blk_bind_attn(sdrt_blk_loader *L, const char *prefix, const sdrt_blk_attn_names *names,
                        sdrt_blk_attn *a, int64_t dim, int64_t kv_dim, int heads, int qkv_bias,
                        int linear_shapes);
/* x [B, L, dim] tokens, or [B, dim, H, W] (group_norm, attention over the
 * H*W positions, back to [B, dim, H, W]); context [B, Lk, kv_dim] for a
 * cross attention (ignored otherwise). Adds x when a->residual. */
sdrt_tensor *sdrt_blk_attn_fwd(sdrt_nn *nn, const sdrt_blk_attn *a, const sdrt_tensor *x,
                               const sdrt_tensor *context);

/* ---- BasicTransformerBlock / Transformer2DModel -------------------------------- */

typedef struct sdrt_blk_tblock {
    sdrt_blk_norm norm1, norm2, norm3; /* LayerNorms */
    sdrt_blk_attn attn1, attn2;        /* self (or cross when only_cross), cross */
    sdrt_blk_linear ff_in, ff_out;     /* GEGLU proj [2 x inner, dim], out [dim, inner] */
} sdrt_blk_tblock;

/* GEGLU feed-forward with inner = 4 x dim, LayerNorm eps 1e-5. */
void sdrt_blk_bind_tblock(sdrt_blk_loader *L, const char *prefix, sdrt_blk_tblock *t, int64_t dim, int heads,
                          int cross_dim, int only_cross);
/* h + attn1(norm1 h), + attn2(norm2 .), + ff(norm3 .) on tokens [B, L, dim]. */
sdrt_tensor *sdrt_blk_tblock_fwd(sdrt_nn *nn, const sdrt_blk_tblock *t, const sdrt_tensor *h,
                                 const sdrt_tensor *context);

typedef struct sdrt_blk_transformer {
    int channels, depth;
    sdrt_blk_norm norm;                 /* GroupNorm */
    sdrt_blk_linear proj_in, proj_out;  /* Linear, or 1x1 Conv2d viewed as one */
    sdrt_blk_tblock *blocks;            /* depth entries */
} sdrt_blk_transformer;

/* Transformer2DModel with `depth` BasicTransformerBlocks; proj_in/proj_out
 * are Linear when `linear_proj` (use_linear_projection), else 1x1 convs. */
void sdrt_blk_bind_transformer(sdrt_blk_loader *L, const char *prefix, sdrt_blk_transformer *t, int64_t c,
                               int heads, int depth, int cross_dim, int only_cross, int groups,
                               int linear_proj);
/* x + proj_out(blocks(proj_in(tokens(norm(x))))) on x [B, C, H, W]. */
sdrt_tensor *sdrt_blk_transformer_fwd(sdrt_nn *nn, const sdrt_blk_transformer *t, const sdrt_tensor *x,
                                      const sdrt_tensor *context);

/* ---- TimestepEmbedding ------------------------------------------------------- */

typedef struct sdrt_blk_temb {
    sdrt_blk_linear linear_1, linear_2;
} sdrt_blk_temb;

void sdrt_blk_bind_temb(sdrt_blk_loader *L, const char *prefix, sdrt_blk_temb *t, int64_t in, int64_t dim);
/* linear_2(silu(linear_1(x))). */
sdrt_tensor *sdrt_blk_temb_fwd(sdrt_nn *nn, const sdrt_blk_temb *t, const sdrt_tensor *x);

/* ---- Downsample2D / Upsample2D ----------------------------------------------- */

/* A 3x3 stride-2 conv. pad 0 means diffusers' Downsample2D(padding=0): the
 * input is padded by one on the right and bottom only. */
sdrt_tensor *sdrt_blk_downsample_fwd(sdrt_nn *nn, const sdrt_blk_conv *c, const sdrt_tensor *x);
/* Nearest 2x upsampling cropped to out_h x out_w (0, 0: 2h x 2w; at most
 * 2h x 2w), then the conv. */
sdrt_tensor *sdrt_blk_upsample_fwd(sdrt_nn *nn, const sdrt_blk_conv *c, const sdrt_tensor *x, int64_t out_h,
                                   int64_t out_w);

/* ---- down / up / mid blocks ----------------------------------------------------- */

/* CrossAttnDownBlock2D / DownBlock2D / DownEncoderBlock2D, and
 * CrossAttnUpBlock2D / UpBlock2D / UpDecoderBlock2D: nlayers resnets (each
 * followed by a Transformer2DModel when attns), then an optional sampler
 * (Downsample2D / Upsample2D). */
typedef struct sdrt_blk_stage {
    int nlayers;
    sdrt_blk_resnet *resnets;
    sdrt_blk_transformer *attns; /* nlayers entries, or NULL */
    int has_sampler;
    sdrt_blk_conv sampler;
} sdrt_blk_stage;

/* Allocates the layer arrays (from the loader's list). Returns 1, or 0. */
int sdrt_blk_stage_alloc(sdrt_blk_loader *L, sdrt_blk_stage *s, int nlayers, int with_attn);

/* Down block. When `outputs` is not NULL, x is borrowed (in a UNet it is
 * itself a skip) and every layer's output and the sampler's are appended to
 * outputs[*noutputs...] and stay alive (the caller drops them; the return
 * value is the last of them). Otherwise x is consumed (dropped once dead,
 * also on failure) and so is every intermediate. An empty stage returns x. */
sdrt_tensor *sdrt_blk_down_fwd(sdrt_nn *nn, const sdrt_blk_stage *s, sdrt_tensor *x,
                               const sdrt_tensor *temb_act, const sdrt_tensor *context, sdrt_tensor **outputs,
                               int *noutputs);
/* Up block; consumes x (dropped once dead, also on failure). With `skips`
 * (a stack of *nskips tensors owned by the caller) each layer first
 * concatenates the top of the stack on the channels, then pops and drops
 * it (x may itself be that skip). The sampler output is out_h x out_w
 * (0, 0: twice the size). An empty stage returns x. */
sdrt_tensor *sdrt_blk_up_fwd(sdrt_nn *nn, const sdrt_blk_stage *s, sdrt_tensor *x,
                             const sdrt_tensor *temb_act, const sdrt_tensor *context, sdrt_tensor **skips,
                             int *nskips, int64_t out_h, int64_t out_w);

/* UNetMidBlock2DCrossAttn (Transformer2DModels) or UNetMidBlock2D
 * (Attention with group norm): resnet, then nlayers x (attention, resnet). */
typedef struct sdrt_blk_mid {
    int nlayers;
    sdrt_blk_resnet *resnets;          /* nlayers + 1 */
    sdrt_blk_transformer *transformers; /* nlayers, or NULL */
    sdrt_blk_attn *attns;              /* nlayers, or NULL */
} sdrt_blk_mid;

/* Allocates the arrays: Transformer2DModels when `cross_attn`, else
 * Attentions. Returns 1, or 0 (loader failed). */
int sdrt_blk_mid_alloc(sdrt_blk_loader *L, sdrt_blk_mid *m, int nlayers, int cross_attn);
/* UNetMidBlock2D with one Attention of `heads` heads (the VAE's: one head,
 * attention_head_dim = channels), group norm and residual; temb_dim 0: no
 * time embedding. */
void sdrt_blk_bind_mid(sdrt_blk_loader *L, const char *prefix, sdrt_blk_mid *m, int ch, int temb_dim, int groups,
                       float eps, float out_scale, int heads);
/* UNetMidBlock2DCrossAttn with one Transformer2DModel of `depth` blocks
 * (diffusers never uses only_cross_attention there). */
void sdrt_blk_bind_mid_cross(sdrt_blk_loader *L, const char *prefix, sdrt_blk_mid *m, int ch, int temb_dim,
                             int groups, float eps, float out_scale, int heads, int depth, int cross_dim,
                             int linear_proj);
/* x borrowed. */
sdrt_tensor *sdrt_blk_mid_fwd(sdrt_nn *nn, const sdrt_blk_mid *m, const sdrt_tensor *x,
                              const sdrt_tensor *temb_act, const sdrt_tensor *context);

/* ---- CLIP encoder layer ---------------------------------------------------------- */

typedef enum sdrt_blk_act { SDRT_BLK_QUICK_GELU, SDRT_BLK_GELU, SDRT_BLK_GELU_TANH } sdrt_blk_act;

typedef struct sdrt_blk_clip_layer {
    sdrt_blk_norm ln1, ln2;      /* layer_norm1, layer_norm2 */
    sdrt_blk_attn attn;          /* self_attn */
    sdrt_blk_linear fc1, fc2;    /* mlp */
    sdrt_blk_act act;
} sdrt_blk_clip_layer;

/* transformers CLIPEncoderLayer "<prefix>" (e.g. "text_model.encoder.layers.3");
 * `causal` 1 for the text tower, 0 for the vision tower. */
void sdrt_blk_bind_clip_layer(sdrt_blk_loader *L, const char *prefix, sdrt_blk_clip_layer *l, int hidden,
                              int heads, int intermediate, float eps, sdrt_blk_act act, int causal);
/* x + attn(ln1 x), then + fc2(act(fc1(ln2 .))) on [B, L, hidden]. Consumes
 * x (dropped, also on failure): it is dead after the first residual, and
 * the text encoders run dozens of layers back to back. */
sdrt_tensor *sdrt_blk_clip_layer_fwd(sdrt_nn *nn, const sdrt_blk_clip_layer *l, sdrt_tensor *x);

#ifdef __cplusplus
}
#endif

#endif /* SDRT_NN_BLOCKS_H */
