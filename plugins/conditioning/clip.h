/* clip.h - CLIP text encoders (transformers CLIPTextModel and
 * CLIPTextModelWithProjection) over the nn.h ops. Sizes come from the
 * component's config.json; nothing is hard-coded. */
#ifndef SDRT_COND_CLIP_H
#define SDRT_COND_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/nn.h"

typedef enum clip_act { CLIP_QUICK_GELU, CLIP_GELU, CLIP_GELU_TANH } clip_act;

typedef struct clip_config {
    int hidden, layers, heads, intermediate, max_positions, projection_dim;
    int eos_token_id; /* 2 = legacy config: pooled at argmax(ids) */
    float eps;
    clip_act act;
} clip_config;

/* Parses a text encoder config.json. Returns 0, or -1 with err naming the
 * field and the reason. */
int clip_config_parse(const char *json, clip_config *c, char *err, size_t errlen);

/* Host weight `name` (transformers naming, "text_model.…"), or NULL. */
typedef const sdrt_tensor *(*clip_weight_fn)(void *ctx, const char *name);

typedef struct clip_run {
    const int32_t *ids;  /* [batch, len] */
    int batch, len;
    /* Which of transformers' hidden_states (0 = embeddings, layers = last
     * layer) to return, and whether final_layer_norm is applied to it. */
    int hidden_index;
    int final_ln;
    float *hidden_out;   /* [batch, len, hidden] */
    /* Optional: pooled output (final LN of the last layer at the EOS
     * position), projected by text_projection when `project`. */
    float *pooled_out;   /* [batch, hidden or projection_dim], or NULL */
    int project;
    /* Optional, instead of hidden_out / pooled_out (which are then
     * ignored): the results stay on the device as new tensors of the nn
     * context (the caller drops them). *hidden_dev receives [batch, len,
     * hidden]; *pooled_dev (NULL: no pooled output) receives the pooled
     * output of the FIRST sequence only, [1, hidden or projection_dim]. */
    sdrt_tensor **hidden_dev;
    sdrt_tensor **pooled_dev;
    /* Optional: rows for ids past the token table (textual-inversion
     * embeddings): id extra_base + k takes extra_rows[k], [n_extra, hidden]. */
    const float *extra_rows;
    int64_t n_extra;
    int32_t extra_base;
} clip_run;

/* Runs the encoder. Returns SDRT_OK, or a status with err naming the tensor
 * or op that failed (missing weight: NOT_FOUND; bad ids/shape:
 * INVALID_ARGUMENT; cancelled: CANCELLED). Temporaries are released. */
sdrt_status clip_encode(sdrt_nn *nn, const clip_config *cfg, clip_weight_fn weight, void *ctx,
                        const clip_run *run, char *err, size_t errlen);

#endif
