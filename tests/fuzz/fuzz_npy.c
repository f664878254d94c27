/* tests/fuzz/fuzz_npy.c - libFuzzer target for the .npy parser.
 * Any input must return 0 or -1 without crashing, leaking or reading past
 * `size`; on success the reported shape must match the element count. */
#include <stdint.h>
#include <stdlib.h>

#include "sdrt/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float *out = NULL;
    int64_t shape[SDRT_NPY_MAX_DIMS];
    int ndim = 0;
    char err[256];
    if (sdrt_npy_parse_f32(data, size, &out, shape, &ndim, err, sizeof err) == 0) {
        size_t n = 1;
        for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
        /* Touch the last element so ASan checks the allocation size. */
        if (n) out[n - 1] += 0.0f;
        free(out);
    }
    return 0;
}
