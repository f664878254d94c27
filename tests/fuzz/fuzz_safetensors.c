/* tests/fuzz/fuzz_safetensors.c - libFuzzer target for the safetensors
 * validator (plugins/model/safetensors.c, from memory). Accepted files must
 * describe tensors that lie inside the input. */
#include <stdint.h>
#include <stdlib.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file *f = NULL;
    char err[512];
    if (st_parse(data, size, &f, err, sizeof err) == 0) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            const st_tensor *t = &f->tensors[i];
            if (t->end > t->begin) {
                volatile uint8_t last = t->data[t->end - t->begin - 1];
                (void)last;
            }
        }
        st_close(f);
    }
    return 0;
}
