/* tests/fuzz/fuzz_tokenizer.c - libFuzzer target for the CLIP tokenizer.
 * First byte even: the rest is prompt text, encoded with the real CLIP
 * vocabulary (../shared/reference/tokenizer, or $SDRT_REFERENCE) and framed
 * to 77 ids; every id must lie inside the vocabulary.
 * First byte odd: the rest is "vocab.json \0 merges.txt \0 config", parsed
 * as tokenizer files; loading must succeed or fail with a message, and a
 * loaded tokenizer must encode a fixed text. Nothing may crash or leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"

#ifndef SDRT_SOURCE_DIR
#define SDRT_SOURCE_DIR "."
#endif

static bpe_tokenizer *reference_tokenizer(void) {
    static int tried;
    static bpe_tokenizer *t;
    if (tried) return t;
    tried = 1;
    const char *ref = getenv("SDRT_REFERENCE");
    char dir[1024], v[1100], m[1100], err[256];
    snprintf(dir, sizeof dir, "%s", ref ? ref : SDRT_SOURCE_DIR "/../shared/reference");
    snprintf(v, sizeof v, "%s/tokenizer/vocab.json", dir);
    snprintf(m, sizeof m, "%s/tokenizer/merges.txt", dir);
    t = bpe_load(v, m, NULL, NULL, err, sizeof err);
    return t;
}

static void fuzz_text(const uint8_t *data, size_t size) {
    bpe_tokenizer *t = reference_tokenizer();
    if (!t) return;
    int32_t *ids = NULL, framed[4096];
    size_t n = 0;
    if (bpe_encode(t, (const char *)data, size, &ids, &n) != 0) return;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= bpe_vocab_size(t)) abort();
    bpe_frame(t, ids, n, framed);
    if (framed[0] != bpe_bos(t)) abort();
    free(ids);
}

static void fuzz_files(const uint8_t *data, size_t size) {
    const char *parts[3] = {"", "", NULL};
    size_t lens[3] = {0, 0, 0};
    char *copy = malloc(size + 1);
    if (!copy) return;
    memcpy(copy, data, size);
    copy[size] = 0;
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i <= size && k < 3; i++) {
        if (i == size || copy[i] == 0) {
            parts[k] = copy + start;
            lens[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    char err[256];
    bpe_tokenizer *t = bpe_load_mem(parts[0], lens[0], parts[1], lens[1], k > 2 ? parts[2] : NULL, NULL, err,
                                    sizeof err);
    if (!t && err[0] == 0) abort(); /* failures must say why */
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (bpe_encode(t, "a photo, 8k!", 12, &ids, &n) == 0) free(ids);
        bpe_free(t);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] & 1) fuzz_files(data + 1, size - 1);
    else fuzz_text(data + 1, size - 1);
    return 0;
}
