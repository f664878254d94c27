/* tests/fuzz/fuzz_prompt.c - libFuzzer target for the A1111 prompt parser
 * and chunker. Any text must parse (or fail cleanly on a bad LoRA weight),
 * weights must be finite for finite inputs, and chunking with the real CLIP
 * vocabulary (when ../shared/reference is present) must give whole 77-id
 * chunks that start with BOS. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    prompt_parsed p;
    char err[256] = "";
    if (prompt_parse(text, &p, err, sizeof err) != 0) {
        if (!err[0]) abort();
        free(text);
        return 0;
    }
    if (p.npieces == 0) abort();
    bpe_tokenizer *t = reference_tokenizer();
    prompt_chunks c;
    if (t && prompt_chunk(t, &p, 20, &c) == 0) {
        if (c.nchunks == 0 || c.len != 77) abort();
        for (size_t k = 0; k < c.nchunks; k++)
            if (c.ids[k * 77] != bpe_bos(t)) abort();
        prompt_chunks_free(&c);
    }
    (void)prompt_is_plain(&p);
    prompt_free(&p);
    free(text);
    return 0;
}
