/* mkdemo.h - sdrt-mkdemo: a tiny random-weight SDXL-architecture model in
 * diffusers layout, written with no downloads and no Python. */
#ifndef MKDEMO_H
#define MKDEMO_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/rng.h"

/* How a tensor is initialised. Scales keep activations near unit size:
 * matrices ~ N(0, 1/fan_in), the last layer of each residual branch 5x
 * smaller so that deep stacks do not blow up. */
typedef enum md_init {
    MD_MATRIX,   /* N(0, 1/fan_in) */
    MD_RESIDUAL, /* N(0, 0.04/fan_in): output of a residual branch */
    MD_BIAS,     /* N(0, 0.02^2) */
    MD_NORM_W,   /* 1 + N(0, 0.02^2) */
    MD_NORM_B,   /* N(0, 0.02^2) */
    MD_EMBED     /* N(0, 0.02^2), kept f32 (gathered, not multiplied) */
} md_init;

#define MD_MAX_DIMS 4

typedef struct md_tensor {
    char name[160];
    int ndim;
    int64_t shape[MD_MAX_DIMS];
    md_init init;
} md_tensor;

/* A growing list of tensors of one safetensors file. */
typedef struct md_list {
    md_tensor *items;
    size_t count, cap;
    int oom;
} md_list;

/* Formats a tensor name into out[MD_NAME]; names are short by construction,
 * an overlong one is cut (and then fails to match, loudly, in the loader). */
#define MD_NAME 160
void md_name(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void md_add(md_list *l, md_init init, const char *name, int ndim, const int64_t *shape);
/* Shorthands: a Linear (weight [out,in] + bias), a Conv2d, a norm. */
void md_linear(md_list *l, const char *prefix, int64_t out, int64_t in, int bias, md_init init);
void md_conv(md_list *l, const char *prefix, int64_t out, int64_t in, int k, md_init init);
void md_norm(md_list *l, const char *prefix, int64_t ch);
void md_list_free(md_list *l);

/* Writes the list as safetensors, values drawn from g in list order.
 * Matrices and convolutions are stored as F16 unless all_f32. */
int md_write_safetensors(const char *path, const md_list *l, sdrt_rng *g, int all_f32);

/* Architectures (arch_*.c). */
typedef struct md_unet_cfg {
    int block_out[2];
    int layers_per_block;
    int transformer_layers[2];
    int head_dim[2];
    int cross_dim;
    int time_embed_dim;
    int add_time_dim;
    int pooled_dim;
} md_unet_cfg;
void md_unet_tensors(md_list *l, const md_unet_cfg *c);

typedef struct md_vae_cfg {
    int block_out[4];
    int layers_per_block;
    int latent_channels;
} md_vae_cfg;
void md_vae_tensors(md_list *l, const md_vae_cfg *c);

typedef struct md_clip_cfg {
    int vocab;
    int hidden;
    int intermediate;
    int layers;
    int heads;
    int projection; /* 0 = CLIPTextModel, else CLIPTextModelWithProjection */
} md_clip_cfg;
void md_clip_tensors(md_list *l, const md_clip_cfg *c);

/* Tokenizer (bpe_vocab.c): writes vocab.json and merges.txt into dir and
 * returns the vocabulary size, or -1. */
int md_write_tokenizer_vocab(const char *dir);
int md_vocab_size(void);

/* Config files (configs.c). Each returns 0 or -1. */
int md_write_configs(const char *root, const md_unet_cfg *u, const md_vae_cfg *v, const md_clip_cfg *te1,
                     const md_clip_cfg *te2);

/* Writes text to "<dir>/<name>". 0 or -1 (message on stderr). */
int md_write_text(const char *dir, const char *name, const char *text);

#endif
