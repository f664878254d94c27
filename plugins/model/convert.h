/* plugins/model/convert.h - model.convert: a single-file checkpoint
 * (.safetensors or .gguf) rewritten as GGUF with its weights quantised,
 * keeping the checkpoint's own (ldm) tensor names as stable-diffusion.cpp
 * files do, so the result also loads in sd.cpp and ComfyUI-GGUF. */
#ifndef SDRT_MODEL_CONVERT_H
#define SDRT_MODEL_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/status.h"
#include "sdrt/tensor.h"

typedef struct convert_stats {
    size_t tensors, quantised, skipped; /* skipped: dtypes GGUF readers do not share (U8, BOOL, I8, I16) */
    uint64_t bytes_in, bytes_out;
} convert_stats;

/* Whether a tensor is a matrix weight that weight_type applies to: named
 * "*.weight", 2-D (Linear) with the inner dim a whole number of blocks of
 * `dt`, not a token/position table (read row by row on
 * the host). 4-D conv
 * weights stay unquantised in GGUF (ggml's rows would be the 3-wide
 * kernel rows). */
int convert_applies(const char *name, int ndim, const int64_t *shape, sdrt_dtype dt);

/* Converts `src` into GGUF at `dst` (overwriting it). wt: a dtype
 * sdrt_quant_can_write accepts. Returns SDRT_OK or an error with err. */
sdrt_status model_convert(const char *src, const char *dst, sdrt_dtype wt, convert_stats *stats, char *err,
                          size_t errlen);

#endif
