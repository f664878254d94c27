/* pipeline.h - from prompt text to the embeddings a UNet consumes, for one
 * model: tokenizers + text encoders found in the model, the diffusers
 * encode_prompt conventions (SD1/SD2 and SDXL) and A1111 prompt weighting.
 * Independent of the host: the model is reached through cond_source, so
 * tests can supply weights from the model plugin's core directly. */
#ifndef SDRT_COND_PIPELINE_H
#define SDRT_COND_PIPELINE_H

#include "bpe.h"
#include "clip.h"
#include "embeddings.h"
#include "prompt.h"

/* Read access to one model (borrowed for the calls). */
typedef struct cond_source {
    void *ctx;
    /* component config.json text or NULL */
    const char *(*config_json)(void *ctx, const char *component);
    /* host weight or NULL */
    const sdrt_tensor *(*tensor)(void *ctx, const char *component, const char *name);
    /* absolute path of an auxiliary file or NULL */
    const char *(*file_path)(void *ctx, const char *component, const char *file);
    /* model_index.json text, or NULL (then force_zeros_for_empty_prompt
     * defaults to true for two-encoder SDXL base models) */
    const char *model_index_json;
    /* folders with vocab.json/merges.txt used when the model has no
     * tokenizer files (single-file checkpoints); may be NULL */
    const char *fallback_tokenizer_dir[2];
    /* Optional (NULL = none): called once per encode after the prompt was
     * parsed and before any weight is read, with its LoRA tags, so that a
     * per-request weight override (sdrt_cond_params.prepare_weights) can be
     * built from them. SDRT_OK, or a status with err. */
    sdrt_status (*prepare)(void *ctx, const prompt_parsed *parsed, char *err, size_t errlen);
    /* Where the model's own tokenizer files must lie (sdrt_file_open);
     * NULL = type checks only (tests). Not applied to the fallback folders. */
    const sdrt_file_scope *scope;
    /* Most 75-token chunks one prompt (or negative prompt) may become
     * (BREAK and long prompts add chunks; each costs a text-encoder pass and
     * 77 more cross-attention tokens in every UNet step). 0 = the default,
     * COND_DEFAULT_MAX_CHUNKS. */
    int max_chunks;
    /* Textual-inversion embeddings the prompts may name, or NULL (none). */
    const emb_set *embeddings;
} cond_source;

#define COND_DEFAULT_MAX_CHUNKS 32

typedef struct cond_encoder {
    char component[32];      /* "text_encoder" or "text_encoder_2" */
    bpe_tokenizer *tok;
    clip_config cfg;
    int has_projection;      /* CLIPTextModelWithProjection */
} cond_encoder;

typedef struct cond_model {
    cond_encoder enc[2];
    int n;
    int sdxl_style;          /* penultimate hidden state, pooled from the last encoder */
    int force_zeros;         /* zero negative embeddings for an empty negative prompt */
} cond_model;

/* Prepares tokenizers and configs. Returns SDRT_OK, or NOT_FOUND (no text
 * encoder or tokenizer files) / INVALID_ARGUMENT (malformed files) with err. */
sdrt_status cond_model_load(const cond_source *src, cond_model **out, char *err, size_t errlen);
void cond_model_free(cond_model *m);

typedef struct cond_output {
    float *embeds;           /* [1, L, D] */
    float *neg_embeds;       /* [1, L, D] or NULL without CFG */
    float *pooled;           /* [1, P] or NULL (no projection encoder) */
    float *neg_pooled;
    int64_t seq, dim, pooled_dim;
    prompt_parsed parsed;    /* the prompt's pieces and LoRA tags */
    /* cond_encode_ex on_device: the same four results as tensors of `nn`
     * (borrowed; must outlive the output) and the host arrays above NULL. */
    sdrt_nn *nn;
    sdrt_tensor *embeds_dev, *neg_embeds_dev, *pooled_dev, *neg_pooled_dev;
} cond_output;

/* Encodes prompt and negative prompt (NULL = empty). clip_skip as diffusers
 * (0 = none). Returns SDRT_OK or an error status with err; INVALID_ARGUMENT
 * naming the limit when a prompt becomes more than src->max_chunks chunks
 * (checked after tokenizing, before any encoder runs). On success free
 * `out` with cond_output_free. Thread: one nn context per call. */
sdrt_status cond_encode(const cond_model *m, const cond_source *src, sdrt_nn *nn, const char *prompt,
                        const char *negative, int clip_skip, int do_cfg, cond_output *out, char *err,
                        size_t errlen);
/* cond_encode, and with `on_device` non-zero the results stay on nn's
 * device (cond_output's *_dev members). Emphasis then runs there too; only
 * its per-token sums (2 x len floats per weighted chunk) come to the host,
 * for the mean-preserving ratio. */
sdrt_status cond_encode_ex(const cond_model *m, const cond_source *src, sdrt_nn *nn, const char *prompt,
                           const char *negative, int clip_skip, int do_cfg, int on_device, cond_output *out,
                           char *err, size_t errlen);
void cond_output_free(cond_output *o);

#endif
