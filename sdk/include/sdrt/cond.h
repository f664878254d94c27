/* sdrt/cond.h - the text-conditioning interface the conditioning plugin
 * publishes: prompt text in, the embeddings a UNet consumes out.
 *
 * What encode does (docs/prompt-syntax.md has the details):
 *  - CLIP BPE tokenization as transformers' CLIPTokenizer, with the model's
 *    own tokenizer files;
 *  - A1111 prompt syntax: (word), (word:1.3), [word], \( escapes, BREAK,
 *    <lora:name:w> tags (removed and returned), prompts longer than 75
 *    tokens split into 77-token chunks whose embeddings are concatenated;
 *  - a prompt with no syntax and <= 75 tokens goes through exactly the
 *    diffusers encode_prompt path (SD1/SD2: last_hidden_state; SDXL: both
 *    encoders' penultimate hidden states concatenated, pooled output of
 *    text_encoder_2), bit for bit the plain encoder output;
 *  - clip_skip as diffusers: SD1 hidden_states[-(clip_skip+1)] then the
 *    final layer norm, SDXL hidden_states[-(clip_skip+2)]; like diffusers,
 *    the negative prompt is encoded without clip_skip;
 *  - SDXL force_zeros_for_empty_prompt (model_index.json): an empty or NULL
 *    negative prompt gives zero negative embeddings.
 */
#ifndef SDRT_COND_H
#define SDRT_COND_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/model.h"
#include "sdrt/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SDRT_COND_IFACE_ID "sdrt.cond/1"

/* A LoRA tag found in the prompt, e.g. <lora:name:0.8>. */
typedef struct sdrt_cond_lora {
    const char *name;   /* as written in the tag */
    float weight;       /* text-encoder multiplier; 1.0 when omitted */
} sdrt_cond_lora;

/* Inputs of encode. Fill with sdrt_cond_params_init, then set fields. */
typedef struct sdrt_cond_params {
    uint32_t struct_size;
    const char *prompt;           /* UTF-8; NULL = "" */
    /* UTF-8. NULL = absent: encoded as "" except on models with
     * force_zeros_for_empty_prompt (SDXL), where an absent negative gives
     * all-zero embeddings as diffusers does; "" is always encoded. */
    const char *negative_prompt;
    int32_t clip_skip;            /* 0 = none (default); diffusers' meaning */
    int32_t do_cfg;               /* non-zero: also produce negative embeddings (default 1) */

    /* --- since sdrt.cond/1 with struct_size covering them (else: none) ---
     * Per-request weights, e.g. a LoRA set (sdrt/lora.h). Both optional
     * (NULL = none); called on the encode's worker thread with `weights_ctx`.
     *
     * prepare_weights: called once per encode, after the prompt was parsed
     *   and before any text-encoder weight is read, with the prompt's
     *   <lora:name:w> tags (borrowed for the call; n may be 0). Lets the
     *   caller build the override from the request's adapters plus the
     *   tags. A non-NULL error aborts encode and is returned by it (encode
     *   takes ownership).
     * weight: the tensor to use for `name` of `component` ("text_encoder",
     *   "text_encoder_2") instead of the model's, or NULL for the model's
     *   own. The result must stay valid until encode returns. */
    sdrt_error *(*prepare_weights)(void *weights_ctx, const sdrt_cond_lora *loras, size_t n);
    const sdrt_tensor *(*weight)(void *weights_ctx, const char *component, const char *name);
    void *weights_ctx;

    /* --- appended (read only inside struct_size; NULL = absent) ---
     * weight_store: called after prepare_weights succeeded; the store
     *   holding device copies of the tensors `weight` returns (e.g.
     *   sdrt_lora_weights of the LoRA set just prepared), or NULL. It must
     *   stay valid until encode returns. Without it those tensors are
     *   uploaded privately for every encode on a non-host device. */
    sdrt_weight_store *(*weight_store)(void *weights_ctx);

    /* --- appended (read only inside struct_size) ---
     * device: where the caller wants the embeddings (borrowed; from the
     *   sdrt.backend/1 interface, valid until result_free). Non-NULL: the
     *   encoders run there and the result's *_dev members hold the
     *   embeddings as tensors on it, so they never pass through host
     *   memory. NULL: the backend's default device, host arrays only. */
    sdrt_device *device;

    /* --- appended (read only inside struct_size) ---
     * precision: the stream params "precision" the encoders run in
     *   ("auto", "f32", "f16", "bf16", "int8"; sdrt/backend.h stream_new),
     *   e.g. the inference.run request's, so one request computes in one
     *   precision. NULL = the conditioning plugin's default (its config,
     *   else the host's). A value the device cannot do fails encode with
     *   UNSUPPORTED naming `precision` and the device. Borrowed. */
    const char *precision;
    /* --- appended (read only inside struct_size; else NONE) ---
     * offload: sdrt_offload (sdrt/model.h), where the text encoders'
     *   weights live while they run: NONE = the model's resident copies;
     *   MODEL / SEQUENTIAL = uploads of the encode's own, freed before
     *   encode returns (the embeddings stay on the device). */
    int32_t offload;
} sdrt_cond_params;

static inline void sdrt_cond_params_init(sdrt_cond_params *p) {
    p->struct_size = SDRT_STRUCT_SIZE(sdrt_cond_params, offload);
    p->prompt = NULL;
    p->negative_prompt = NULL;
    p->clip_skip = 0;
    p->do_cfg = 1;
    p->prepare_weights = NULL;
    p->weight = NULL;
    p->weights_ctx = NULL;
    p->weight_store = NULL;
    p->device = NULL;
    p->precision = NULL;
    p->offload = 0;
}


/* Output of encode. Owned by the interface: valid until result_free.
 * Embeddings come either as host float32 arrays (C order) or, when the
 * caller named a device (sdrt_cond_params.device), as device tensors
 * (members after n_loras; read them only inside struct_size). Exactly one
 * of the two forms is set per result: the device form when a device was
 * named and the plugin supports it (this one always does), else the host
 * arrays. */
typedef struct sdrt_cond_result {
    uint32_t struct_size;
    float *prompt_embeds;                    /* [1, seq, dim] */
    float *negative_prompt_embeds;           /* [1, seq, dim]; NULL when do_cfg == 0 */
    float *pooled_prompt_embeds;             /* [1, pooled_dim]; NULL when the model has none (SD1/SD2) */
    float *negative_pooled_prompt_embeds;    /* [1, pooled_dim]; NULL without CFG or pooled output */
    int64_t seq;                             /* 77 per chunk */
    int64_t dim;                             /* 768 SD1, 1024 SD2, 2048 SDXL base */
    int64_t pooled_dim;                      /* 1280 SDXL; 0 when none */
    const sdrt_cond_lora *loras;             /* LoRA tags of the prompt */
    size_t n_loras;

    /* --- appended: the same embeddings on the caller's device, contiguous
     * float32 of the shapes above (negative ones NULL without CFG, pooled
     * ones NULL without a pooled output), complete when encode returns (its
     * stream was synchronized), read-only to the caller; or all NULL (then
     * the host members hold them). --- */
    const sdrt_tensor *prompt_embeds_dev;
    const sdrt_tensor *negative_prompt_embeds_dev;
    const sdrt_tensor *pooled_prompt_embeds_dev;
    const sdrt_tensor *negative_pooled_prompt_embeds_dev;
} sdrt_cond_result;

typedef struct sdrt_cond_iface {
    uint32_t struct_size;
    void *self;

    /* Worker thread; thread-safe (several jobs may encode at once). `m` is
     * a model the caller opened through SDRT_MODEL_IFACE_ID and keeps open
     * for the call; `params` is borrowed; `job` (may be NULL) receives
     * cancellation checks. On success returns NULL and sets *out to a new
     * result (free with result_free). On failure returns an error and sets
     * *out to NULL: INVALID_ARGUMENT (clip_skip out of range, a malformed
     * LoRA tag, malformed tokenizer files), NOT_FOUND (model without a text
     * encoder or tokenizer), UNAVAILABLE (no compute backend),
     * RESOURCE_EXHAUSTED, CANCELLED. */
    sdrt_error *(*encode)(void *self, sdrt_model *m, const sdrt_cond_params *params, sdrt_job *job,
                          sdrt_cond_result **out);
    /* Any thread. Frees a result from encode. NULL: no-op. */
    void (*result_free)(void *self, sdrt_cond_result *r);
} sdrt_cond_iface;

#ifdef __cplusplus
}
#endif

#endif /* SDRT_COND_H */
