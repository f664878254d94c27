/* tests/fuzz/fuzz_gguf.c - libFuzzer target for the GGUF reader
 * (plugins/model/gguf.c, from memory). Accepted files must describe
 * tensors that lie inside the input; their blocks are dequantised (the
 * backends read them that way), so a size the reader got wrong shows as
 * an out-of-bounds read under ASan. */
#include <stdint.h>
#include <stdlib.h>

#include "gguf.h"
#include "sdrt/quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    char err[512];
    if (gguf_parse(data, size, &f, err, sizeof err) == 0) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            if (t->bytes) {
                volatile uint8_t last = t->data[t->bytes - 1];
                (void)last;
            }
            int64_t n = 1;
            for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
            if (t->dtype >= 0 && n <= 4096) {
                float *out = malloc((size_t)n * sizeof *out);
                if (out) sdrt_dequant_row((sdrt_dtype)t->dtype, t->data, out, n);
                free(out);
            }
        }
        gguf_close(f);
    }
    return 0;
}
