/* bpe.h - the CLIP byte-level BPE tokenizer (transformers CLIPTokenizer).
 *
 * A tokenizer is immutable after loading except for its word cache, which is
 * guarded by a mutex: one tokenizer may be used by several threads at once.
 */
#ifndef SDRT_COND_BPE_H
#define SDRT_COND_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/file.h"

typedef struct bpe_tokenizer bpe_tokenizer;

/* Loads vocab.json + merges.txt, and optionally tokenizer_config.json and
 * special_tokens_map.json (NULL: CLIP defaults: BOS <|startoftext|>, EOS,
 * PAD and UNK <|endoftext|>, 77 tokens). Returns NULL with a message naming
 * the file and the reason in err. */
bpe_tokenizer *bpe_load(const char *vocab_path, const char *merges_path,
                        const char *config_path, const char *special_map_path,
                        char *err, size_t errlen);
/* The same with each file opened through sdrt_file_open under `scope`
 * (NULL: type checks only): a FIFO is refused without blocking, and a file
 * whose real path leaves the roots (tokenizer/vocab.json linking to
 * /etc/passwd) is PERMISSION_DENIED, naming it. *status (may be NULL) gets
 * the failure's status (INVALID_ARGUMENT for malformed contents). */
bpe_tokenizer *bpe_load_scoped(const char *vocab_path, const char *merges_path, const char *config_path,
                               const char *special_map_path, const sdrt_file_scope *scope, sdrt_status *status,
                               char *err, size_t errlen);
/* The same from memory (texts borrowed for the call; lengths in bytes;
 * config texts may be NULL). `what` names the source in messages. */
bpe_tokenizer *bpe_load_mem(const char *vocab, size_t vocab_len, const char *merges,
                            size_t merges_len, const char *config, const char *special_map,
                            char *err, size_t errlen);
void bpe_free(bpe_tokenizer *t);

int32_t bpe_bos(const bpe_tokenizer *t);
int32_t bpe_eos(const bpe_tokenizer *t);
int32_t bpe_pad(const bpe_tokenizer *t);
int32_t bpe_comma(const bpe_tokenizer *t);   /* ",</w>", or -1 */
int bpe_max_length(const bpe_tokenizer *t);  /* model_max_length (77) */
size_t bpe_vocab_size(const bpe_tokenizer *t);

/* Token ids of `text` (len bytes of UTF-8) without BOS/EOS and untruncated,
 * as CLIPTokenizer.tokenize + convert_tokens_to_ids. Sets *ids (malloc'd,
 * caller frees; may be NULL when *n == 0). Returns 0, or -1 when out of
 * memory. */
int bpe_encode(bpe_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n);

/* The padded model input: [BOS] + ids[:max-2] + [EOS] + [PAD]..., exactly
 * bpe_max_length(t) entries written to out. */
void bpe_frame(const bpe_tokenizer *t, const int32_t *ids, size_t n, int32_t *out);

#endif
