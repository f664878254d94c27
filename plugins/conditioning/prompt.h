/* prompt.h - A1111 prompt syntax: emphasis, BREAK, LoRA tags, chunking.
 * The rules implemented are documented in docs/prompt-syntax.md.
 * Pure functions over caller-owned data: thread-safe. */
#ifndef SDRT_COND_PROMPT_H
#define SDRT_COND_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "bpe.h"

typedef struct prompt_lora {
    char *name;
    float weight; /* text-encoder multiplier; 1.0 when omitted */
} prompt_lora;

typedef struct prompt_piece {
    char *text;     /* UTF-8, escapes resolved */
    double weight;  /* product of the enclosing emphasis multipliers */
    int is_break;   /* a BREAK marker (text empty) */
} prompt_piece;

typedef struct prompt_parsed {
    char *stripped;        /* the prompt with extra-network tags removed */
    prompt_piece *pieces;  /* runs of equal weight, merged as A1111 does */
    size_t npieces;
    prompt_lora *loras;
    size_t nloras;
} prompt_parsed;

/* Parses `text` (NUL-terminated UTF-8). Returns 0, or -1 with a message in
 * err (a LoRA tag whose weight is not a number; out of memory). On success
 * free with prompt_free. */
int prompt_parse(const char *text, prompt_parsed *out, char *err, size_t errlen);
void prompt_free(prompt_parsed *p);

/* True when the prompt uses no syntax at all: one piece of weight 1 whose
 * text is the stripped prompt itself (no brackets, escapes or BREAK). */
int prompt_is_plain(const prompt_parsed *p);

/* Token chunks of `len` = bpe_max_length ids each: [BOS] 75 tokens [EOS],
 * padded after the first EOS with the tokenizer's pad id, and one weight per
 * id (1 for BOS/EOS/padding). */
typedef struct prompt_chunks {
    int32_t *ids;     /* nchunks * len */
    float *weights;   /* nchunks * len */
    size_t nchunks;
    int len;
    size_t cap;       /* chunks allocated (grows geometrically: a prompt of
                         thousands of BREAKs must not cost quadratic copying) */
} prompt_chunks;

/* A1111's tokenize_line: BREAK starts a new chunk; a chunk that fills up
 * while a comma lies within the last `comma_backtrack` tokens moves the text
 * after that comma to the next chunk (A1111 default 20; 0 disables).
 * Returns 0 or -1 (out of memory). Free with prompt_chunks_free. */
int prompt_chunk(bpe_tokenizer *t, const prompt_parsed *p, int comma_backtrack, prompt_chunks *out);
/* The diffusers framing of one text: a single chunk, truncated, weights 1. */
int prompt_chunk_plain(bpe_tokenizer *t, const char *text, prompt_chunks *out);
/* The same with the text of each piece tokenized by `tok` (0, -1 out of
 * memory, or another negative code, passed on as the result; the
 * embeddings use it to put their tokens in). */
typedef int (*prompt_tokenize_fn)(void *ctx, bpe_tokenizer *t, const char *text, size_t len, int32_t **ids,
                                  size_t *n);
/* `group` (may be NULL) returns n > 0 when `id` starts an embedding of n
 * tokens: as A1111's tokenize_line, such a group that does not fit in the
 * current chunk starts the next one (it is never split, unless longer than
 * a chunk). */
typedef int (*prompt_group_fn)(void *ctx, int32_t id);
int prompt_chunk_with(bpe_tokenizer *t, const prompt_parsed *p, int comma_backtrack, prompt_tokenize_fn tok,
                      prompt_group_fn group, void *tok_ctx, prompt_chunks *out);
int prompt_chunk_plain_with(bpe_tokenizer *t, const char *text, prompt_tokenize_fn tok, void *tok_ctx,
                            prompt_chunks *out);
/* Appends `extra` chunks of the empty prompt (for equal cond/uncond length). */
int prompt_chunks_pad(bpe_tokenizer *t, prompt_chunks *c, size_t extra);
void prompt_chunks_free(prompt_chunks *c);

#endif
