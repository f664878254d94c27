/* embeddings.h - textual-inversion embeddings: the files, and their use in
 * prompts.
 *
 * Files (.safetensors): A1111 {"emb_params": [n, D]}, SDXL {"clip_l":
 * [n, 768], "clip_g": [n, 1280]}, and diffusers learned_embeds (one tensor
 * [D] or [n, D] under any name, usually the token); .pt/.bin torch.save
 * files (A1111 {"string_to_param": {"*": [n, D]}}, diffusers
 * learned_embeds.bin) through the model plugin's restricted unpickler
 * (pickle.h: no code runs, any other global refuses the file). An embedding
 * is named by its file name without extension, as A1111 does.
 *
 * Use: while a prompt piece is tokenized, every occurrence of a known name
 * (or of "embedding:name", ComfyUI's spelling) that stands as a word of its
 * own (no letter, digit or '_' on either side) becomes n new token ids
 * vocab_size + k, the way diffusers' load_textual_inversion adds tokens; the
 * text between occurrences goes through the BPE tokenizer. The vectors of
 * those ids are collected in an emb_use and replace the token-embedding rows
 * in the text encoder (clip_run.extra_rows).
 *
 * An emb_set is immutable after loading: any number of threads may read it.
 * An emb_use belongs to one encode call. */
#ifndef SDRT_COND_EMBEDDINGS_H
#define SDRT_COND_EMBEDDINGS_H

#include <stddef.h>
#include <stdint.h>

#include "bpe.h"

typedef struct emb_entry {
    char *name;        /* file name without extension */
    char *path;
    int nvec;          /* vectors (tokens) per encoder */
    int ntables;       /* 1: one table for every encoder; 2: clip_l + clip_g */
    int width[2];      /* D of each table */
    float *vec[2];     /* [nvec, width] f32 */
    char *error;       /* non-NULL: the file could not be read (why); nvec 0 */
} emb_entry;

typedef struct emb_set {
    emb_entry *v;      /* sorted by name */
    size_t n;
} emb_set;

/* Reads one embedding file into *e (caller frees with emb_entry_free).
 * Returns 0, or -1 with err naming the file and the reason. */
int emb_load_file(const char *path, emb_entry *e, char *err, size_t errlen);
void emb_entry_free(emb_entry *e);

/* Every embedding file directly inside or below the folders `roots` (n of
 * them; a missing folder is skipped). Files that fail to load are reported
 * through `skipped` (may be NULL; called with the path and the reason) and
 * kept as entries with `error` set, so that a prompt naming one fails with
 * the reason. The first file of a name wins. Returns 0 with *out (free with
 * emb_set_free), or -1 out of memory. */
int emb_scan(const char *const *roots, size_t n, void (*skipped)(void *ctx, const char *path, const char *why),
             void *ctx, emb_set **out);
void emb_set_free(emb_set *s);
const emb_entry *emb_find(const emb_set *s, const char *name, size_t len);

/* The embeddings one encoder sees during one encode: ids handed out and
 * their rows. */
typedef struct emb_use {
    const emb_set *set;
    int table;          /* the encoder's index: two-table files give it table 0 (clip_l) or 1 (clip_g) */
    int n_encoders;     /* the model's text encoders (a two-table file needs 2) */
    int width;          /* the encoder's hidden size */
    const char *encoder;/* for messages */
    int32_t base;       /* first new id (the tokenizer's vocabulary size) */
    const emb_entry **used; /* in order of first use */
    int32_t *first_id;
    size_t nused;
    float *rows;        /* [n_rows, width] */
    int64_t n_rows;
    char err[512];      /* set when a lookup fails (width mismatch) */
} emb_use;

void emb_use_init(emb_use *u, const emb_set *set, int table, int n_encoders, int width, const char *encoder,
                  int32_t base);
void emb_use_free(emb_use *u);

/* Tokenizes text[0..len) with embeddings substituted (see the top).
 * Returns 0 with *ids (malloc'd) and *n, -1 out of memory, or -2 when an
 * embedding does not fit this encoder (u->err names the file and widths). */
int emb_encode(emb_use *u, bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n);

/* n when `id` is the first id of an embedding of n tokens in u, else 0. */
int emb_group_at(const emb_use *u, int32_t id);

#endif
