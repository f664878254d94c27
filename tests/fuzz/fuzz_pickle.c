/* tests/fuzz/fuzz_pickle.c - libFuzzer target for the restricted torch.save
 * reader (plugins/model/pickle.c, zip container and pickle machine, from
 * memory). Accepted files must describe tensors that lie inside the input
 * or in copies the reader made. */
#include <stdint.h>
#include <stdlib.h>

#include "pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pt_file *f = NULL;
    char err[512];
    if (pt_parse(data, size, &f, err, sizeof err) == 0) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            const st_tensor *t = &f->tensors[i];
            if (t->end > t->begin) {
                volatile uint8_t first = t->data[0], last = t->data[t->end - t->begin - 1];
                (void)first;
                (void)last;
            }
        }
        pt_close(f);
    }
    return 0;
}
