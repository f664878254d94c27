/* sdrt/quant.h - ggml's block-quantized weight formats (Q4_0..Q8_0 and the
 * K quants), the one implementation in sdrt: backends dequantise with it
 * while packing GEMM operands, the model plugin quantises with it on load
 * and when writing GGUF.
 *
 * Results match ggml's reference (ggml-quants.c *_ref) and the `gguf`
 * Python package bit for bit (tests/gguf). Pure functions: thread-safe,
 * no allocation; buffers are owned by the caller. */
#ifndef SDRT_QUANT_H
#define SDRT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "sdrt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dst[0..n) = the n elements stored in `src` (n / block_elems whole
 * blocks, read from src[0 .. sdrt_dtype_bytes(dt, n))). dt may also be
 * F32, F16 or BF16. Returns 0, or -1 (dst untouched) when dt is not a
 * dtype this reads or n is not a whole number of blocks. */
int sdrt_dequant_row(sdrt_dtype dt, const void *src, float *dst, int64_t n);

/* Elements [first, first+count) of a quantized row starting at `row`
 * (block aligned), for a caller that needs a window: dequantises only the
 * blocks that overlap it. `scratch` holds one block (256 floats). */
void sdrt_dequant_range(sdrt_dtype dt, const void *row, int64_t first, int64_t count, float *dst, float *scratch);

/* Quantises src[0..n) into dst (sdrt_dtype_bytes(dt, n) bytes) as ggml's
 * reference quantiser does. Supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
 * (byte-identical to ggml, checked against gguf-py), Q4_K (ggml's
 * algorithm transcribed; gguf-py has no K quantiser to compare with), and
 * F16, BF16, F32 as plain conversion. Returns 0, or -1 for another dtype
 * or a partial block. */
int sdrt_quant_row(sdrt_dtype dt, const float *src, void *dst, int64_t n);
/* Whether sdrt_quant_row can write dt. */
int sdrt_quant_can_write(sdrt_dtype dt);

/* Lower-case ggml names ("q8_0", "q4_K", "f16", ...) and back; NULL / -1
 * when unknown. */
const char *sdrt_dtype_ggml_name(sdrt_dtype dt);
int sdrt_dtype_from_ggml_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
